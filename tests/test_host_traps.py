"""Traps and their reflection on a real Unicorn CPU, in process (spec 5.2-5.4)."""

from __future__ import annotations

import struct

import pytest

from lguestfs.abi import LD_IRQ_ENABLED
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
    try:
        assert Reads(g).read() == (RunExit.DIED, 0)
        assert g.death == "unhandled trap 6 at 0xc001001b (0x0)"
    finally:
        g.close()


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
    try:
        assert Reads(g).read() == (RunExit.DIED, 0)
        assert g.death == "unhandled trap 14 at 0x80000000 (0x80000000)"
    finally:
        g.close()


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
    try:
        assert Reads(g).read() == (RunExit.DIED, 0)
        assert g.death == "attempt to access switcher pages"
    finally:
        g.close()
