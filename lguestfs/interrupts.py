"""Interrupts and traps: the guest's IDT, injection (spec 5.1) and reflection (5.2-5.4).

Where this sits: after every guest exit the runner (``guest``) or the hooks (``traps``) call
``maybe_do_interrupt`` (step 5 of the run loop), and ``traps`` calls ``reflect_or_kill`` (or
``handle_page_fault``) for any trap the CPU reported (from Unicorn's INTR, invalid-instruction,
port I/O and fault-window paths).  Everything here works on the guest's state (``state``).
Both end in ``set_guest_interrupt``, which builds the frame on the guest's stack exactly as
2.6.24 does and points the CPU at the guest's handler.  The CPU's C INTR hook does the same for
the common page fault and system call without calling Python (``lguestfs/cpu/_hooks.c``); this
module is its reference, and does every case the C hook leaves.  This is the
Host's half of the guest's paravirtual interrupt flag: the real EFLAGS.IF is always 1, the
guest's IF is ``lguest_data.irq_enabled``.

The IDT is never given to Unicorn: every trap comes to the Host first, and the Host reflects the
ones the guest handles.  2.6.24 lets the CPU deliver "direct" trap gates itself (pushing the real
EFLAGS, IF set); we reflect those too, with the IF bit taken from ``irq_enabled`` (spec 5.3 [impl]).
An ``int N`` instruction is checked as the hardware would check the gate it would have used:
the guest's own trap gate for a direct vector, else the Host's DPL-0 gate (DPL 1 for 0x1F), and
fails with #GP(N*8+2).
"""

from __future__ import annotations

import struct
import time

from lguestfs.abi import (
    FIRST_EXTERNAL_VECTOR,
    GUEST_CS,
    GUEST_PL,
    IDT_ENTRIES,
    IDT_TYPE_INTERRUPT_GATE,
    LD_BLOCKED_INTERRUPTS,
    LD_CR2,
    LD_IRQ_ENABLED,
    LD_TIME,
    LGUEST_IRQS,
    TRAP_PF,
    TRAPS_WITH_ERROR_CODE,
    X86_EFLAGS_IF,
)
from lguestfs.cpu import EIP, CpuError
from lguestfs.memory import GuestAccessError, GuestMemory
from lguestfs.state import Lguest

_TIMESPEC = struct.Struct("<ii")
_WORD = 0xFFFFFFFF
# A trap frame: EIP, CS, EFLAGS, then an error code and SS:ESP (from user mode) if any.
_FRAMES = {words: struct.Struct(f"<{words}I") for words in range(3, 7)}


def _handler(gate: tuple[int, int]) -> int:
    return (gate[0] & 0xFFFF) | (gate[1] & 0xFFFF0000)


def write_timestamp(g: Lguest) -> None:
    if g.lguest_data is None:
        return
    now = time.time_ns()
    try:
        g.memory.write(
            g.lguest_data + LD_TIME, _TIMESPEC.pack(now // 1_000_000_000, now % 1_000_000_000)
        )
    except GuestAccessError:
        g.kill("Writing timestamp")


def set_guest_interrupt(g: Lguest, gate: tuple[int, int], errcode: int | None) -> None:
    """Push the trap frame of spec 5.4 and enter the guest's handler."""
    cpu = g.cpu
    ss, esp, eflags, cs, eip = cpu.trap_regs()
    user = (ss & 3) != GUEST_PL
    if user:
        new_ss, virtstack = g.ss1, g.pagetables.stack[0]
    else:
        new_ss, virtstack = ss, esp
    origstack = g.pagetables.guest_pa(virtstack)
    if origstack is None:
        return
    pushed_eflags = eflags
    irq_enabled = g.read_lguest_u32(LD_IRQ_ENABLED)
    if irq_enabled is not None and not irq_enabled & X86_EFLAGS_IF:
        pushed_eflags &= ~X86_EFLAGS_IF
    pushes = [ss, esp] if user else []
    pushes += [pushed_eflags, cs, eip]
    if errcode is not None:
        pushes.append(errcode & _WORD)
    try:
        gstack = _push(g.memory, origstack, pushes)
    except GuestAccessError as e:
        g.kill(str(e))
        return
    new_esp = (virtstack + gstack - origstack) & _WORD
    try:
        if user:
            cpu.enter(GUEST_CS, new_ss, new_esp, _handler(gate), eflags)
        else:
            cpu.jump(GUEST_CS, new_esp, _handler(gate))
    except CpuError:
        # 2.6.24 would fault in the Switcher loading that SS for the guest: its "trap 256".
        g.kill(f"unhandled trap 256 at {_handler(gate):#x} ({new_ss & 0xFFFC:#x})")
        return
    if (gate[1] >> 8) & 0xF == IDT_TYPE_INTERRUPT_GATE and g.write_lguest_u32(
        LD_IRQ_ENABLED, 0
    ) is False:
        g.kill("Disabling interrupts")


def _push(memory: GuestMemory, top: int, words: list[int]) -> int:
    """2.6.24's ``push_guest_stack()`` of each word in turn, below guest-physical ``top``;
    returns the new top (``words`` is used up).  One write when the whole frame is inside
    guest memory; else word by word, so the first word that falls outside is the one the error
    names, as in 2.6.24."""
    bottom = top - 4 * len(words)
    if memory.ok(bottom, top - bottom):
        words.reverse()  # the last pushed is the lowest
        memory.write(bottom, _FRAMES[len(words)].pack(*words))
        return bottom
    for word in words:
        top = (top - 4) & _WORD  # 32-bit, as the kernel's unsigned long
        memory.write_u32(top, word)
    return top


def deliver_trap(g: Lguest, num: int, errcode: int) -> bool:
    """Reflect trap ``num`` through the guest's IDT; False if the guest has no handler."""
    gate = g.idt.gate(num) if num < IDT_ENTRIES else None
    if gate is None:
        return False
    set_guest_interrupt(g, gate, errcode if num in TRAPS_WITH_ERROR_CODE else None)
    return True


def reflect_or_kill(g: Lguest, num: int, errcode: int, detail: int | None = None) -> None:
    """The end of ``lguest_arch_handle_trap``: reflect, or kill "unhandled trap"."""
    g.cpu.traps += 1
    if not deliver_trap(g, num, errcode):
        shown = errcode if detail is None else detail
        g.kill(f"unhandled trap {num} at {g.cpu.reg(EIP):#x} ({shown:#x})")


def maybe_do_interrupt(g: Lguest) -> bool:
    """Step 5 of the run loop: inject at most one pending, unmasked interrupt (spec 5.1).

    Returns True while interrupts stay pending after the attempt (masked, the noirq window,
    interrupts disabled, no gate, or more than one): the caller must look again soon.  2.6.24
    looked at every guest exit, and the host's own timer ticks made sure exits kept coming, so
    a guest that unmasks with a plain store got its interrupt within a tick.
    """
    if g.lguest_data is None or not g.cpu.irqs_pending:
        return False
    blocked = g.read_lguest_u32(LD_BLOCKED_INTERRUPTS)
    if blocked is None:
        return True
    candidates = g.cpu.irqs_pending & ~blocked & ((1 << LGUEST_IRQS) - 1)
    if not candidates:
        return True
    irq = (candidates & -candidates).bit_length() - 1
    eip = g.cpu.reg(EIP)
    if g.noirq_start <= eip < g.noirq_end:
        return True
    if g.halted:
        if g.write_lguest_u32(LD_IRQ_ENABLED, X86_EFLAGS_IF) is False:
            g.kill("Re-enabling interrupts")
        g.halted = False
    elif not g.read_lguest_u32(LD_IRQ_ENABLED):
        return True
    gate = g.idt.gate(FIRST_EXTERNAL_VECTOR + irq)
    if gate is not None:
        g.clear_irq(irq)
        g.interrupts_delivered += 1
        set_guest_interrupt(g, gate, None)
    write_timestamp(g)
    return bool(g.cpu.irqs_pending)


def handle_page_fault(g: Lguest, cr2: int, errcode: int) -> None:
    """A #PF the guest's own tables do not allow: cr2 into lguest_data, then reflect."""
    if g.lguest_data is not None and g.write_lguest_u32(LD_CR2, cr2) is False:
        g.kill("Writing cr2")
    reflect_or_kill(g, TRAP_PF, errcode, cr2)
