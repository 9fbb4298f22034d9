"""The CPU's hooks: traps, hypercalls, the instructions the Host refuses (2.6.24's x86/core.c).

Where this sits: ``Traps`` is the ``cpu.CpuHooks`` of one guest, so Unicorn calls it on the
guest's thread, inside ``Cpu.run``: the INTR hook (hypercalls, ``int``, exceptions), #UD, port
I/O, ``sysenter``/``syscall``, the TLB miss (handed to ``pagetables``) and accesses outside
memory.  It works on the guest's state (``state``); of the runner (``guest``) it only sees the
two things a hook needs (``RunLoop``): whether a stop was asked for, and a way to look again at
an interrupt the guest cannot take yet.  This is 2.6.24's ``lguest_arch_handle_trap``: a trap
the guest handles (a system call, a page fault from user mode or the kernel) is reflected right
in the INTR hook, privilege change included, and the CPU goes on in the guest's handler without
ending the run; only an instruction that must fault instead of running waits for the run to end
(``_defer``, delivered by ``after_run``).

Hypercalls that stay in the guest are handled inside the INTR hook, including steps 2-5 of the
run loop (notify, signal and break checks, interrupt injection: ``after_exit``), so a hypercall
costs a few microseconds and never a thread switch; anything else stops the CPU and the loop
takes over.  The commonest (SET_PTE, SET_PMD, FLUSH_ASYNC) and the commonest traps never reach
this module: the CPU's C hook does them when nothing is pending that the loop must look at.
"""

from __future__ import annotations

from typing import Any, Protocol

from lguestfs import interrupts
from lguestfs.abi import GUEST_PL, LGUEST_TRAP_ENTRY, TRAP_GP, TRAP_NM, TRAP_PF, TRAP_UD
from lguestfs.cpu import EAX, EIP
from lguestfs.hypercalls import trapped_hypercall
from lguestfs.state import Lguest


class RunLoop(Protocol):
    """What the hooks see of the runner (``guest``)."""

    stop_requested: bool  # a break, signal, irq, timer or close asked the loop to look again

    def poll_later(self) -> None:
        """Stop the guest again in a moment, to retry an interrupt it could not take."""


class Traps:
    """One guest's ``CpuHooks``."""

    def __init__(self, g: Lguest, loop: RunLoop) -> None:
        self.g = g
        self.loop = loop
        # (EIP, trap, error code) of a trap to deliver once the run has ended (see _defer)
        self.deferred: tuple[int, int, int] | None = None

    # --- after each run (on the loop's thread, outside the CPU) ----------------------------------

    def after_run(self) -> None:
        """Deliver the trap of an instruction that had to fault (``_defer``), if one did."""
        if self.deferred is not None:
            eip, trap, errcode = self.deferred
            self.deferred = None
            self.g.cpu.traps_to_python(False)
            self.g.cpu.set_reg(EIP, eip)
            interrupts.reflect_or_kill(self.g, trap, errcode)

    def after_exit(self) -> None:
        """Steps 2-5 of the loop without leaving the CPU; stop it if the loop must act.

        A signal, a break and close all kick, so ``stop_requested`` covers steps 3 and 4.  A trap
        waiting for the run to end (``_defer``) comes first: it is still the guest's next event.
        """
        g = self.g
        if (
            g.pending_notify
            or g.halted
            or self.loop.stop_requested
            or self.deferred is not None
            or g.death is not None
        ):
            g.cpu.stop()
            return
        if g.cpu.irqs_pending:
            if interrupts.maybe_do_interrupt(g):
                self.loop.poll_later()
            if g.death is not None:
                g.cpu.stop()

    # --- the hooks (the guest thread, inside emu_start) ------------------------------------------

    def on_tlb_fill(self, vaddr: int, access: int, entry: Any) -> bool:
        return self.g.pagetables.fill(vaddr, access, entry)

    def on_trap(self, intno: int) -> None:
        g = self.g
        cpu = g.cpu
        if intno == LGUEST_TRAP_ENTRY and self.deferred is None:
            # The hot path: a hypercall from the guest kernel (from user mode it is a #GP below).
            cs, call, arg1, arg2, arg3 = cpu.hypercall_regs()
            if cs & 3 == GUEST_PL:
                trapped_hypercall(g, (call, arg1, arg2, arg3))
                self.after_exit()
                return
        if self.deferred is not None:
            self._after_deferred_instruction()
            return
        if intno >= 32 or intno == LGUEST_TRAP_ENTRY:
            # Only an ``int`` instruction raises these; EIP is already past it.
            if cpu.cpl() > g.idt.int_gate_dpl(intno):
                cpu.set_reg(EIP, cpu.reg(EIP) - 2)
                interrupts.reflect_or_kill(g, TRAP_GP, intno * 8 + 2)
            else:
                interrupts.reflect_or_kill(g, intno, 0)
            self.after_exit()
            return
        errcode, is_int = cpu.exception_info()
        if is_int:
            # int3 / into / int $n below 32: the gate DPL check as above, frame after the insn.
            if cpu.cpl() > g.idt.int_gate_dpl(intno):
                length = 1 if intno in (3, 4) and self._byte_before_eip() in (0xCC, 0xCE) else 2
                cpu.set_reg(EIP, cpu.reg(EIP) - length)
                interrupts.reflect_or_kill(g, TRAP_GP, intno * 8 + 2)
            else:
                interrupts.reflect_or_kill(g, intno, 0)
        else:
            cpu.clear_old_exception()
            if intno == TRAP_PF:
                # A fill refused the access: the guest's own page fault (a kill has stopped it).
                if g.death is None:
                    g.cpu.page_faults += 1
                    interrupts.handle_page_fault(g, cpu.fault_address() & 0xFFFFFFFF, errcode)
            elif intno == TRAP_NM and not g.ts:
                pass  # 2.6.24 swallows #NM when the guest's TS is clear
            else:
                interrupts.reflect_or_kill(g, intno, errcode)
        self.after_exit()

    def on_invalid_instruction(self) -> bool:
        if self.deferred is not None:
            self._after_deferred_instruction()
            return True
        interrupts.reflect_or_kill(self.g, TRAP_UD, 0)
        self.after_exit()
        return True

    def on_port_in(self, port: int, size: int) -> int:
        """``in``: Unicorn never faults port I/O, so the #GP path of 2.6.24 starts here.

        At CPL 1 it is emulated as 2.6.24 does: all ones into EAX, EIP past the instruction
        (Unicorn moves EIP).  At CPL 3 2.6.24 reflects the #GP; see ``_defer``.
        """
        g = self.g
        cpu = g.cpu
        eip, eax = cpu.reg(EIP), cpu.reg(EAX)
        if cpu.cpl() == 3:
            self._defer(eip, TRAP_GP, 0)
            return eax & ((1 << (8 * size)) - 1)
        pa = g.pagetables.guest_pa(eip)
        prefix = pa is not None and g.memory.view[pa] == 0x66
        opa = g.pagetables.guest_pa(eip + 1) if prefix else pa
        opcode = g.memory.view[opa] if opa is not None else 0
        if opcode & 1:
            eax = 0xFFFFFFFF
        else:
            eax |= 0xFFFF0000 if prefix else 0xFFFF
        cpu.set_reg(EAX, eax)
        return eax & ((1 << (8 * size)) - 1)

    def on_port_out(self, port: int, size: int, value: int) -> None:
        """``out`` has no effect at CPL 1 (2.6.24 skips it); at CPL 3 it is a #GP."""
        if self.g.cpu.cpl() == 3:
            self._defer(self.g.cpu.reg(EIP), TRAP_GP, 0)

    def on_sysenter(self) -> None:
        """``sysenter``: 2.6.24 zeroed SYSENTER_CS while a guest ran, so it is a #GP(0)."""
        self._defer(self.g.cpu.reg(EIP), TRAP_GP, 0)

    def on_syscall(self) -> None:
        """``syscall``: not an i386 instruction (legacy mode, SCE clear): #UD."""
        self._defer(self.g.cpu.reg(EIP), TRAP_UD, 0)

    def on_unmapped(self, address: int) -> bool:
        return self.g.pagetables.unmapped(address)

    def _byte_before_eip(self) -> int | None:
        pa = self.g.pagetables.guest_pa(self.g.cpu.reg(EIP) - 1)
        return None if pa is None else self.g.memory.view[pa]

    # --- instructions that must fault -------------------------------------------------------------

    def _defer(self, eip: int, trap: int, errcode: int) -> None:
        """Deliver ``trap`` with EIP = ``eip`` once the run has ended.

        For an instruction Unicorn would run that must fault instead (its hook is called
        first), stopping from the hook ends the run at the end of its translated block (the
        facts in ``lguestfs.cpu``: stops land between blocks); ``after_run`` then puts EIP back
        on it and reflects the trap.  The hook has left the registers as they were (``in``
        returns the old value; the others have no effect).  ``sysenter`` and ``syscall`` end
        their block, so the trap is exact; after a user-mode ``in`` or ``out`` the rest of its
        block has run (the README lists this difference).
        """
        self.deferred = (eip, trap, errcode)
        self.g.cpu.traps_to_python(True)  # a trap later in the block must not be reflected
        self.g.cpu.stop()

    def _after_deferred_instruction(self) -> None:
        """An instruction after a deferred one reached a hook before the stop did (an invalid
        opcode or an ``int`` in the same translation block): it never ran."""
        self.g.cpu.clear_old_exception()
        self.g.cpu.stop()
