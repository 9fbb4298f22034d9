"""Traps and their reflection on a real Unicorn CPU, in process (spec 5.2-5.4)."""

from __future__ import annotations

import struct

import pytest

from lguestfs.abi import LD_IRQ_ENABLED, LGUEST_TRAP_ENTRY
from lguestfs.guest import Guest, RunExit
from tests.support.host import (
    DATA,
    FRAME,
    SCRATCH,
    USER_CS,
    USER_DS,
    Reads,
    make_guest,
    needs_as,
    user_guest,
)

pytestmark = needs_as


def death_of(g: Guest) -> str | None:
    """Run ``g`` until it dies (its first read must end so), close it, and say why it died."""
    try:
        assert Reads(g).read() == (RunExit.DIED, 0)
        return g.death
    finally:
        g.close()


def frame(g: Guest, words: int = 6) -> list[int]:
    return list(struct.unpack(f"<{words}I", g.lguest.memory.read(FRAME, words * 4)))


def test_user_mode_in_is_a_general_protection_fault() -> None:
    g = user_guest("    movl $0x12345678, %eax\n    inb $0x60, %al\n1:  jmp 1b\n")
    try:
        assert Reads(g).read() == (RunExit.NOTIFY, 0x77)
        err, eip, cs, eflags, esp, ss = frame(g)
        assert (err, cs, ss, esp) == (0, USER_CS, USER_DS, 0xC0000000 + SCRATCH + 0x700)
        assert g.lguest.memory.read(eip - 0xC0000000, 2) == b"\xe4\x60"  # EIP still on the in
        assert eflags & 0x200 == 0  # irq_enabled was 0: IF cleared in the pushed EFLAGS
    finally:
        g.close()


def test_user_mode_hypercall_is_gp_with_error_0xfa() -> None:
    g = user_guest("    movl $17, %eax\n    int $0x1f\n1:  jmp 1b\n")
    try:
        assert Reads(g).read() == (RunExit.NOTIFY, 0x77)
        err, eip, cs, _eflags, _esp, _ss = frame(g)
        assert (err, cs) == (0xFA, USER_CS)
        assert g.lguest.memory.read(eip - 0xC0000000, 2) == b"\xcd\x1f"
    finally:
        g.close()


def test_kernel_in_is_emulated_with_all_ones() -> None:
    source = """
    init
    movl $0x12345678, %eax
    inb $0x60, %al
    movl %eax, (SCRATCH + PAGE_OFFSET)
    movl $0x12345678, %eax
    inl $0x60, %eax
    movl %eax, (SCRATCH + PAGE_OFFSET + 4)
    movl $0x12345678, %eax
    .byte 0x66
    inb $0x60, %al
    movl %eax, (SCRATCH + PAGE_OFFSET + 8)
    movl $0x12345678, %eax
    outb %al, $0x80
    movl %eax, (SCRATCH + PAGE_OFFSET + 12)
    hcall 17, 1
"""
    g = make_guest(source)
    try:
        assert Reads(g).read() == (RunExit.NOTIFY, 1)
        values = struct.unpack("<4I", g.lguest.memory.read(SCRATCH, 16))
        assert values == (0x1234FFFF, 0xFFFFFFFF, 0xFFFF5678, 0x12345678)
    finally:
        g.close()


def test_unhandled_invalid_opcode_kills_with_eip() -> None:
    g = make_guest("init\n ud2\n")  # init is 27 bytes: ud2 at 0xc001001b
    assert death_of(g) == "unhandled trap 6 at 0xc001001b (0x0)"


def test_interrupt_gate_clears_irq_enabled_and_pushes_if() -> None:
    source = """
    init
    gate 0x20, timer, 0x8e00
    movl $0, (DATA + PAGE_OFFSET + 4)
    movl $0x200, (DATA + PAGE_OFFSET)
1:  jmp 1b
timer:
    movl (%esp), %eax
    movl %eax, (SCRATCH + PAGE_OFFSET)
    movl 8(%esp), %eax
    movl %eax, (SCRATCH + PAGE_OFFSET + 4)
    hcall 17, 0x20
"""
    g = make_guest(source)
    try:
        g.raise_irq(0)
        assert Reads(g).read() == (RunExit.NOTIFY, 0x20)
        _eip, eflags = struct.unpack("<II", g.lguest.memory.read(SCRATCH, 8))
        assert eflags & 0x200
        assert g.lguest.memory.read_u32(DATA + LD_IRQ_ENABLED) == 0
        assert g.status().interrupts_delivered == 1
    finally:
        g.close()


def test_fetch_from_an_unmapped_page_is_a_page_fault_with_cr2() -> None:
    g = make_guest("init\n movl $0x80000000, %eax\n jmp *%eax\n")
    assert death_of(g) == "unhandled trap 14 at 0x80000000 (0x80000000)"


@pytest.mark.parametrize(
    ("before", "errcode"),
    [("", 2), ("movl (SCRATCH + PAGE_OFFSET + 8), %eax", 3)],
    ids=["first-touch", "after-a-read"],
)
def test_write_to_a_read_only_page_reflects_cr2_and_the_shadow_error_code(
    before: str, errcode: int
) -> None:
    """P is set only if the Host had already mapped the page (read-only) for an earlier read."""
    source = f"""
    init
    gate 14, pf_handler, 0x8e00
    {before}
    movl $0x1234, (SCRATCH + PAGE_OFFSET + 8)
1:  jmp 1b
pf_handler:
    movl (%esp), %eax
    movl %eax, (FRAME + PAGE_OFFSET)
    movl (DATA + PAGE_OFFSET + 8), %eax
    movl %eax, (FRAME + PAGE_OFFSET + 4)
    hcall 17, 14
"""
    g = make_guest(f".set FRAME, {SCRATCH + 0x1000:#x}\n" + source)  # outside the read-only page
    try:
        pte = 0x2000 + (SCRATCH >> 12) * 4
        g.lguest.memory.write_u32(pte, g.lguest.memory.read_u32(pte) & ~2)
        assert Reads(g).read() == (RunExit.NOTIFY, 14), g.death
        found = struct.unpack("<II", g.lguest.memory.read(SCRATCH + 0x1000, 8))
        assert found == (errcode, 0xC0000000 + SCRATCH + 8)
        assert g.status().page_faults_reflected == 1
    finally:
        g.close()


@pytest.mark.parametrize(
    ("insn", "reason"),
    [
        ("sysenter", "unhandled trap 13 at 0xc001001b (0x0)"),  # SYSENTER_CS is 0 in a guest
        ("syscall", "unhandled trap 6 at 0xc001001b (0x0)"),  # not an i386 instruction
    ],
)
def test_fast_system_call_instructions_fault(insn: str, reason: str) -> None:
    g = make_guest(f"init\n {insn}\n incl (SCRATCH + PAGE_OFFSET)\n hcall 17, 1\n")
    try:
        assert Reads(g).read() == (RunExit.DIED, 0)
        assert g.death == reason
        assert g.lguest.memory.read_u32(SCRATCH) == 0  # nothing after it ran
    finally:
        g.close()


def test_user_mode_can_load_a_segment_from_the_hosts_gdt() -> None:
    # Unicorn reads the descriptor at CPL 3: the Host's GDT page must serve that read.
    g = user_guest("    movl $0x7b, %eax\n    movl %eax, %es\n    int $0x1f\n1:  jmp 1b\n")
    try:
        assert Reads(g).read() == (RunExit.NOTIFY, 0x77), g.death
        assert frame(g)[0] == 0xFA  # it got as far as the hypercall gate's #GP
    finally:
        g.close()


@pytest.mark.parametrize("address", [0xFFC00000, 0xFFFFF000, 0xFFFFFFFC])
def test_any_access_to_the_top_4mb_kills(address: int) -> None:
    g = make_guest(f"init\n movl {address:#x}, %eax\n")
    assert death_of(g) == "attempt to access switcher pages"


# A trap from user mode into a handler that copies what it found to FRAME: the frame (six words
# from its ESP), CR2 and the guest's interrupt flag from lguest_data; then it notifies 0x80.
COPY_WHAT_THE_HANDLER_FOUND = """
    gate 0x80, copy_and_notify, 0xef00
    gate 14, copy_and_notify, 0x8e00
"""
HANDLER = """
1:  jmp 1b
copy_and_notify:
    movl %esp, %esi
    movl $(FRAME + PAGE_OFFSET), %edi
    movl $6, %ecx
    rep movsl
    movl (DATA + PAGE_OFFSET + 8), %eax
    movl %eax, (FRAME + PAGE_OFFSET + 24)
    movl (DATA + PAGE_OFFSET), %eax
    movl %eax, (FRAME + PAGE_OFFSET + 28)
    hcall 17, 0x80
"""
USER_TRAPS = {
    "system call": "    int $0x80\n",
    "page fault": "    movl %eax, 0x00400000\n",  # above the 4 MB the tables map
}


def what_the_handler_found(trap: str, in_python: bool) -> tuple[bytes, int, int]:
    """(FRAME's 32 bytes, traps, page faults) after ``trap``; ``in_python``: every trap handed
    to Python, which must then see one (else it must see none but hypercalls)."""
    g = user_guest(USER_TRAPS[trap] + HANDLER, COPY_WHAT_THE_HANDLER_FOUND)
    seen_by_python: list[int] = []
    on_trap = g.traps.on_trap

    def counting_on_trap(intno: int) -> None:
        seen_by_python.append(intno)
        on_trap(intno)

    g.traps.on_trap = counting_on_trap  # type: ignore[method-assign]
    try:
        g.lguest.memory.write_u32(DATA + LD_IRQ_ENABLED, 0x200)
        g.lguest.cpu.traps_to_python(in_python)
        assert Reads(g).read() == (RunExit.NOTIFY, 0x80), g.death
        assert bool(set(seen_by_python) - {LGUEST_TRAP_ENTRY}) == in_python
        status = g.status()
        return g.lguest.memory.read(FRAME, 32), status.traps, status.page_faults_reflected
    finally:
        g.close()


@pytest.mark.parametrize("trap", USER_TRAPS)
def test_the_c_hook_reflects_a_trap_exactly_as_python_does(trap: str) -> None:
    """The CPU's C INTR hook reflects a user-mode system call or page fault itself; with every
    trap handed to Python (``traps_to_python``), the reference, the guest finds the same."""
    in_c = what_the_handler_found(trap, in_python=False)
    assert in_c == what_the_handler_found(trap, in_python=True)
    words = struct.unpack("<8I", in_c[0])
    if trap == "page fault":  # error code, EIP, CS, EFLAGS, ESP, SS; CR2, irq_enabled
        assert (words[0], words[2], words[5], words[6]) == (6, USER_CS, USER_DS, 0x400000)
        assert words[7] == 0  # an interrupt gate: the guest's IF cleared
        assert in_c[1:] == (1, 1)
    else:  # EIP, CS, EFLAGS, ESP, SS
        assert (words[1], words[4]) == (USER_CS, USER_DS)
        assert words[7] == 0x200  # a trap gate leaves it
        assert in_c[1:] == (1, 0)


def test_a_page_fault_onto_an_unmapped_kernel_stack_kills_as_python_does() -> None:
    """The C hook declines what would kill; Python then kills with 2.6.24's reason."""
    g = make_guest(
        "init\n gate 14, pf, 0x8e00\n movl $0x80000000, %esp\n movl (0x00400000), %eax\n"
        "1: jmp 1b\npf:\n hcall 17, 1\n"
    )
    assert death_of(g) == "Bad address 0x80000000"


def test_a_system_call_onto_a_stack_segment_the_cpu_refuses_kills_as_python_does() -> None:
    """SET_STACK took 0x71 (RPL 1, but a code segment): loading it as SS fails (trap 256)."""
    g = user_guest(
        "    int $0x80\n1:  jmp 1b\nsyscall:\n    hcall 17, 1\n",
        "    gate 0x80, syscall, 0xef00\n    hcall 7, 0x71, STACK_TOP + PAGE_OFFSET, 1\n",
    )
    death = death_of(g)
    assert death is not None and death.startswith("unhandled trap 256 at 0xc001")
    assert death.endswith("(0x70)")
