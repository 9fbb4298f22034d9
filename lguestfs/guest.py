"""One guest: its thread, the run loop of spec 2, its timer, and being stopped from outside.

Where this sits: ``protocol`` (the daemon's per-handle state machine) creates a ``Guest`` at
INITIALIZE and calls ``run()`` for each read of the owner.  ``run()`` runs 2.6.24's
``run_guest()`` loop on the CPU (``cpu``) and calls ``on_exit`` exactly once when the read must
return: a notify, a break, a signal, or the death.  It runs the loop first on the caller's thread
for at most ``RUN_HERE_FOR``; if the read has not ended by then, the guest's own thread goes on
and calls ``on_exit`` from there.
Hypercalls (``hypercalls``), interrupts and traps (``interrupts``) and the MMU (``pagetables``)
work on the state kept here, which is 2.6.24's ``struct lguest``; the CPU's hooks (``on_*``)
are methods of this class.

Threads and hand-offs, and why:

* **A short run on the caller's thread first.**  A notify round trip is mostly a guest that runs
  a few microseconds between two reads, and handing each read to another thread and back costs
  two thread wake-ups, 30-60 us each.  So ``run()`` starts the loop on trio's own thread, with a
  deadline ``RUN_HERE_FOR`` ahead.  The loop checks it at every exit; for a guest spinning
  without exits the clock looks every ``HERE_WATCH`` while reads run there and kicks the CPU (with
  the repeats below) once the deadline has passed.  A read that has not ended by its deadline, or
  whose guest halts, is handed to the guest thread.
  After a read that overran, reads go straight to the guest thread until one ends within
  ``RUN_HERE_FOR`` again: a guest that computes or spins for long holds trio once, not per
  read.  (Waking the clock thread while trio's thread spins in the CPU can take 1-2 ms on this
  machine, so a deadline kick is not as prompt as ``RUN_HERE_FOR`` suggests.)
  Unicorn is only ever entered by one thread: the guest thread is idle until that hand-off, and
  ``close()`` waits for a run on the caller's thread to end before it frees the CPU.
* **The guest thread** runs the rest.  Unicorn releases the GIL while it emulates, so two guests
  run on two cores; hooks take the GIL back only while they run.  Between reads the thread waits
  on a ``SimpleQueue`` (the cheapest wake-up Python has); while the guest is halted it sleeps on
  a condition.  Neither burns CPU.
* **Stopping a running guest** (a break, a signal, an irq, a timer expiry, close) sets the reason,
  then ``_kick()``: a "stop requested" flag plus ``uc_emu_stop()``.  A stop landing in the first
  microseconds of ``emu_start`` is lost, so the loop clears the flag before it looks at the
  reasons and skips the run if it is set again, and the clock thread repeats ``emu_stop`` every
  millisecond until the loop has cleared the flag.
* **The clock** is one daemon-wide thread with a heap of deadlines: guest timers
  (SET_CLOCKEVENT), the repeats of kicks, its looks at runs on the caller's thread, and the
  polls below.  Sleeping guests cost it nothing, and a deadline later than the next one already
  in the heap does not wake it.
* **Interrupts are injected only at loop boundaries** (spec 2, step 5).  2.6.24 got a boundary at
  every guest exit, and the host's own timer ticks made sure exits kept coming; a guest spinning
  here makes none.  So while an interrupt stays pending (masked, the noirq window, interrupts
  off), the guest is stopped every millisecond to look again.
* Hypercalls that stay in the guest are handled inside the INTR hook, including steps 2-5 of the
  loop (notify, signal and break checks, interrupt injection), so a hypercall costs a few
  microseconds and never a thread switch; anything else stops the CPU and the loop takes over.
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from unicorn import x86_const as x86

from lguestfs import interrupts
from lguestfs.abi import (
    GUEST_PL,
    HYPERCALL_NAMES,
    LGUEST_TRAP_ENTRY,
    TRAP_GP,
    TRAP_NM,
    TRAP_UD,
)
from lguestfs.cpu import EAX, EIP, Cpu, RunEnd
from lguestfs.hypercalls import do_hypercalls
from lguestfs.memory import GuestAccessError, GuestMemory
from lguestfs.pagetables import PageTables
from lguestfs.segments import Gdt

log = logging.getLogger(__name__)

KICK_REPEAT: Final = 0.001  # seconds between repeated emu_stop calls until the guest thread sees it
RUN_HERE_FOR: Final = 200e-6  # seconds a read runs the guest on the caller's thread...
HERE_WATCH: Final = 0.0005  # ...give or take this: how often the clock looks while reads run there
_OTHER_HYPERCALLS: Final = max(HYPERCALL_NAMES) + 1
# Unicorn (QEMU) sizes its TLB only when it is flushed, growing it when it was >70% full; it
# starts at 256 entries.  A guest whose working set is larger misses on every access, each miss a
# Python call, until something flushes: after this many misses we flush so the TLB can grow.
TLB_GROW_FILLS: Final = 4096
IRQ_POLL: Final = 0.001  # how soon to look again at an interrupt the guest cannot take yet
_CR0_TS: Final = 8


class RunExit(enum.Enum):
    """Why a read of the owner returns (spec 1.3 step 5)."""

    NOTIFY = "notify"  # value = the address the guest notified
    BREAK = "break"  # EAGAIN
    SIGNAL = "signal"  # EINTR / ERESTARTSYS
    DIED = "died"  # ENOENT


@dataclasses.dataclass(frozen=True)
class GuestStatus:
    """A snapshot for ``guests/<pid>/status``."""

    state: str  # "running" | "halted" | "dead" | "stopped" (no read in progress)
    reason: str | None
    pfnlimit: int
    memory_bytes: int
    hypercalls: dict[str, int]
    traps: int
    interrupts_delivered: int
    page_faults_reflected: int
    irqs_pending: int
    instructions: str  # Unicorn does not count them cheaply: always "unknown"


class _Clock:
    """One thread for every guest's timer and for repeating kicks (see the module notes)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def call_at(self, deadline: float, action: Callable[[], None]) -> int:
        """Run ``action`` on the clock thread at ``time.monotonic()`` >= deadline; returns a key."""
        with self._lock:
            key = next(self._seq)
            heapq.heappush(self._heap, (deadline, key, action))
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name="lguest-clock", daemon=True)
                self._thread.start()
            if self._heap[0][1] == key:  # otherwise the clock wakes up before this one is due
                self._lock.notify()
            return key

    def _main(self) -> None:
        while True:
            with self._lock:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._lock.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _, _, action = heapq.heappop(self._heap)
            try:
                action()
            except Exception:
                log.exception("clock action failed")


_clock = _Clock()


class Guest:
    """A guest: CPU, memory, 2.6.24's per-guest state, and the thread that runs it."""

    def __init__(self, memory: GuestMemory, pgdir: int, start: int, *, name: str) -> None:
        self.name = name
        self.memory = memory
        self.dead_reason: str | None = None
        # 2.6.24's struct lguest
        self.lguest_data: int | None = None  # guest-physical, set by LGUEST_INIT
        self.halted = False
        self.pending_notify = 0
        self.pending_hcall: tuple[int, int, int, int] | None = None
        self.noirq_start = 0
        self.noirq_end = 0
        self.next_hcall = 0
        self.ss1 = 0
        self.ts = 0
        self.irqs_pending = 0
        self.idt = interrupts.Idt()
        self.gdt = Gdt()
        # counters for status
        self.hypercall_counts = [0] * (_OTHER_HYPERCALLS + 1)  # by number; the last: all others
        self.traps = 0
        self.interrupts_delivered = 0
        self.page_faults = 0
        # the run: owner-visible flags, set from other threads
        self.break_out = False
        self._signal = False
        self._closing = False
        self._wakeup = False
        self._stop_requested = False
        self._kick_pending = False
        self._in_cpu = False  # the loop's thread is in (or about to enter) emu_start
        self._poll_pending = False
        # (EIP, trap, error code) of a trap to deliver once the run has ended (see _refuse)
        self._refused: tuple[int, int, int] | None = None
        self._timer_token: object | None = None  # the armed SET_CLOCKEVENT, if any
        self._on_exit: Callable[[RunExit, int], None] | None = None
        self._cond = threading.Condition()  # halted sleeps, and everything that wakes them
        # run() and close() to _main: one item per run handed off, so the guest thread never
        # wakes for a run that ends on the caller's thread
        self._runs: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._here = threading.Lock()  # held by a run on the caller's thread; close() waits for it
        self._here_deadline: float | None = None  # that run's deadline (see _watch_here)
        self._ran_here = False  # a run on the caller's thread started since the clock looked
        self._watching = False  # the clock will look again (_watch_here is in its heap)
        self._here_ok = True  # no read has overrun RUN_HERE_FOR since one last ended sooner
        self._run_started = 0.0  # time.monotonic() when the current read began
        self._irq_lock = threading.Lock()
        self._uc_lock = threading.Lock()  # guards Unicorn against stop-after-close
        self._cpu_open = True

        try:
            self.cpu = Cpu(memory, self)
            self.pagetables = PageTables(
                memory,
                pgdir,
                host_page=self.cpu.host_page,
                cpl=self.cpu.cpl,
                flush_tlb=self.cpu.flush_tlb,
                kill=self.kill,
            )
            self.cpu.start(self.gdt.host_table(), start)
        except BaseException:
            memory.close()  # we own it from the first line
            raise
        self._thread = threading.Thread(target=self._main, name=f"lguest-{name}", daemon=True)
        self._thread.start()

    # --- the contract with protocol --------------------------------------------------------------

    def run(self, on_exit: Callable[[RunExit, int], None], *, signal_pending: bool = False) -> None:
        """Run one read's worth of the loop; ``on_exit`` is called once when the read must return.

        Returns within about ``RUN_HERE_FOR``: either the read ended on this thread (``on_exit``
        has been called, from here) or the guest thread goes on with it (``on_exit`` will be
        called from there).
        """
        with self._cond:
            if self._on_exit is not None:
                raise RuntimeError("a run is already in progress")
            self._on_exit = on_exit
            self._signal = signal_pending
        self._run_started = time.monotonic()
        result = self._run_here() if self._here_ok and not self.halted else None
        if result is None:
            self._runs.put(None)  # the cheapest hand-off there is: a futex wake, no allocation
        else:
            self._end_run(on_exit, result)

    def set_break(self, on: bool) -> None:
        """LHREQ_BREAK's flag: set wakes a halted guest and stops a running one."""
        with self._cond:
            self.break_out = on
            if on:
                self._wakeup = True
                self._cond.notify_all()
        if on:
            self._kick()

    def raise_irq(self, irq: int) -> None:
        """LHREQ_IRQ: mark ``irq`` pending.  A running guest is stopped so that the injection
        happens at once; a halted one is not woken (as in 2.6.24)."""
        with self._irq_lock:
            self.irqs_pending |= 1 << irq
        self._kick()

    def interrupt(self) -> None:
        """The reader got a signal: the current run ends with SIGNAL."""
        with self._cond:
            self._signal = True
            self._wakeup = True
            self._cond.notify_all()
        self._kick()

    def close(self) -> None:
        """Stop the guest wherever it is, cancel its timer, end its thread, free everything."""
        with self._cond:
            self._closing = True
            self._wakeup = True
            self._cond.notify_all()
        self._runs.put(None)
        self._kick()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        self._timer_token = None
        with self._here, self._uc_lock:  # a run on a caller's thread has left the CPU
            if self._cpu_open:
                self._cpu_open = False
                self.cpu.close()
        self.memory.close()

    def status(self) -> GuestStatus:
        if self.dead_reason is not None:
            state = "dead"
        elif self.halted:
            state = "halted"
        elif self._on_exit is not None:
            state = "running"
        else:
            state = "stopped"
        return GuestStatus(
            state=state,
            reason=self.dead_reason,
            pfnlimit=self.memory.pfnlimit,
            memory_bytes=self.memory.size,
            hypercalls=self._hypercalls_by_name(),
            traps=self.traps,
            interrupts_delivered=self.interrupts_delivered,
            page_faults_reflected=self.page_faults,
            irqs_pending=self.irqs_pending,
            instructions="unknown",
        )

    # --- state helpers used by hypercalls, interrupts, pagetables --------------------------------

    def kill(self, reason: str) -> None:
        """2.6.24's ``kill_guest()``: only the first reason is kept; the CPU stops soon."""
        if self.dead_reason is None:
            self.dead_reason = reason
            log.info("guest %s killed: %s", self.name, reason.rstrip("\n"))
        self.cpu.stop()

    def read_lguest_u32(self, offset: int) -> int | None:
        """A field of lguest_data (``get_user``), or None if unreadable."""
        assert self.lguest_data is not None
        try:
            return self.memory.read_u32(self.lguest_data + offset)
        except GuestAccessError:
            return None

    def write_lguest_u32(self, offset: int, value: int) -> bool:
        """Store a field of lguest_data (``put_user``); False if it faulted."""
        assert self.lguest_data is not None
        try:
            self.memory.write_u32(self.lguest_data + offset, value)
        except GuestAccessError:
            return False
        return True

    def clear_irq(self, irq: int) -> None:
        with self._irq_lock:
            self.irqs_pending &= ~(1 << irq)

    def count_hypercall(self, call: int) -> None:
        self.hypercall_counts[call if call < _OTHER_HYPERCALLS else _OTHER_HYPERCALLS] += 1

    def _hypercalls_by_name(self) -> dict[str, int]:
        counts = self.hypercall_counts
        named = {HYPERCALL_NAMES.get(n, str(n)): c for n, c in enumerate(counts[:-1]) if c}
        if counts[-1]:
            named["other"] = counts[-1]
        return named

    def set_ts(self, ts: int) -> None:
        """TS: the guest's view of CR0.TS; with it set, FPU instructions raise #NM."""
        self.ts = ts
        cr0 = self.cpu.uc.reg_read(x86.UC_X86_REG_CR0)
        self.cpu.uc.reg_write(x86.UC_X86_REG_CR0, cr0 | _CR0_TS if ts else cr0 & ~_CR0_TS)

    def set_clockevent(self, ns: int) -> None:
        """SET_CLOCKEVENT: one-shot irq 0 after ``ns`` nanoseconds; 0 cancels.

        Each arming gets a fresh token; an expiry whose token is no longer the current one was
        cancelled or replaced.  The token is in place before the clock can fire.
        """
        token = object()
        self._timer_token = token if ns else None
        if not ns:
            return

        def expire() -> None:
            if self._timer_token is token:
                self._timer_token = None
                self._timer_fired()

        _clock.call_at(time.monotonic() + ns / 1e9, expire)

    def _timer_fired(self) -> None:
        with self._irq_lock:
            self.irqs_pending |= 1
        with self._cond:
            if self.halted:
                self._wakeup = True
                self._cond.notify_all()
        self._kick()

    # --- stopping a running CPU from another thread ----------------------------------------------

    def _kick(self) -> None:
        """Make the guest thread look at the run loop's reasons again, soon.

        The order matters: the flag is set before ``_in_cpu`` is read, and the guest thread sets
        ``_in_cpu`` before it reads the flag for the last time, so either it sees the flag or we
        see it in the CPU and keep stopping it until it does.  A thread that is not in the CPU
        (halted, between reads) needs no repeats: it reads the flag before it runs again.
        """
        self._stop_requested = True
        with self._uc_lock:
            if not self._cpu_open:
                return
            self.cpu.stop()
            if self._kick_pending or not self._in_cpu:
                return
            self._kick_pending = True
        _clock.call_at(time.monotonic() + KICK_REPEAT, self._kick_again)

    def _kick_again(self) -> None:
        with self._uc_lock:
            repeat = self._stop_requested and self._in_cpu and self._cpu_open
            if repeat:
                self.cpu.stop()
            else:
                self._kick_pending = False
        if repeat:
            _clock.call_at(time.monotonic() + KICK_REPEAT, self._kick_again)

    def _poll_later(self) -> None:
        """Stop the guest again in a moment: 2.6.24 retried a blocked injection at every exit,
        and the host's own timer ticks made sure exits kept coming; ours is this poll."""
        if self._poll_pending:
            return
        self._poll_pending = True

        def poll() -> None:
            self._poll_pending = False
            self._kick()

        _clock.call_at(time.monotonic() + IRQ_POLL, poll)

    # --- the two threads a run uses --------------------------------------------------------------

    def _run_here(self) -> tuple[RunExit, int] | None:
        """The start of a read on the caller's thread: its exit, or None to hand the rest off."""
        with self._here:
            if self._closing:  # close() may have freed the CPU already
                return None
            deadline = self._run_started + RUN_HERE_FOR
            with self._cond:
                self._here_deadline = deadline
                self._ran_here = True
                watch, self._watching = not self._watching, True
            if watch:
                _clock.call_at(deadline, self._watch_here)
            try:
                return self._run_guest(deadline)
            finally:
                self._here_deadline = None

    def _watch_here(self) -> None:
        """The clock's look at runs on the caller's thread: kick one that is past its deadline.

        The loop itself checks the deadline at each exit; this is for a guest that spins without
        any.  Arming a clock deadline for every read would wake the clock thread for every read,
        which cost a notify round trip 20 us, so the clock looks every ``HERE_WATCH`` instead, for
        as long as reads keep running here, and stops once they do not.  A kick that arrives after
        the run ended only makes the guest look at its reasons once more, as any kick may.
        """
        with self._cond:
            deadline, ran = self._here_deadline, self._ran_here
            self._ran_here = False
            now = time.monotonic()
            if deadline is not None and now < deadline:
                again = deadline
            elif deadline is not None or ran:
                again = now + HERE_WATCH
            else:
                self._watching = False
                return
        if deadline is not None and now >= deadline:
            self._kick()
        _clock.call_at(again, self._watch_here)

    def _main(self) -> None:
        while True:
            self._runs.get()
            with self._cond:
                if self._closing:
                    return
                on_exit = self._on_exit
                if on_exit is None:
                    continue
            result = self._run_guest()
            assert result is not None  # without a deadline the loop only returns an exit
            if not self._here_ok and time.monotonic() - self._run_started < RUN_HERE_FOR:
                self._here_ok = True  # reads are short again: run them on the caller's thread
            if not self._end_run(on_exit, result):
                return

    def _end_run(
        self, on_exit: Callable[[RunExit, int], None], result: tuple[RunExit, int]
    ) -> bool:
        """Report a run's exit, unless the guest is closing (then False: the run is abandoned)."""
        with self._cond:
            self._on_exit = None
            if self._closing:
                return False
        try:
            on_exit(*result)
        except Exception:
            log.exception("guest %s: on_exit failed", self.name)
        return True

    def _run_guest(self, deadline: float | None = None) -> tuple[RunExit, int] | None:
        """The loop, guarded: a Host bug must not leave the reader blocked forever."""
        try:
            return self._loop(deadline)
        except Exception as e:
            log.exception("guest %s: internal error", self.name)
            self.kill(f"internal error: {e!r}")
            return RunExit.DIED, 0

    def _loop(self, deadline: float | None) -> tuple[RunExit, int] | None:
        """2.6.24's ``run_guest()``: one read's worth.

        With a ``deadline`` (a run on the caller's thread) it returns None instead of sleeping
        while the guest is halted, and once the deadline has passed: the guest thread goes on.

        The kernel looked at ``dead`` at the top of each pass and ran the trapped hypercall at
        step 1, after that look; here the hook has already run it, so a notify it left pending is
        returned before the death it may also have caused (spec 1.3: that read returns the notify,
        the next one the reason).
        """
        while True:
            self._stop_requested = False
            # 1. A hypercall the async ring's notify kept pending.  The hook already ran this
            # step for the call that trapped, so it only applies once that notify is out.
            if self.pending_hcall is not None and not self.pending_notify and not self.dead_reason:
                args, self.pending_hcall = self.pending_hcall, None
                do_hypercalls(self, args)
            if self.pending_notify:  # 2.
                notify, self.pending_notify = self.pending_notify, 0
                return RunExit.NOTIFY, notify
            if self.dead_reason is not None:
                break
            if self._signal or self._closing:  # 3.
                return RunExit.SIGNAL, 0
            if self.break_out:  # 4.
                return RunExit.BREAK, 0
            if interrupts.maybe_do_interrupt(self):  # 5.
                self._poll_later()
            if self.dead_reason is not None:  # 6.
                break
            if self.halted:  # 7.
                if deadline is not None:
                    return None
                with self._cond:
                    while not (self._wakeup or self._signal or self.break_out or self._closing):
                        self._cond.wait()
                    self._wakeup = False
                continue
            if deadline is not None and time.monotonic() >= deadline:
                self._here_ok = False  # a guest that runs long: its next reads go to its thread
                return None
            if self.pagetables.fills >= TLB_GROW_FILLS:
                self.pagetables.flush_tlb()
            self._in_cpu = True  # before the last look at the flag: see _kick
            if self._stop_requested:
                self._in_cpu = False
                continue
            try:
                self._run_once()  # 8.
            finally:
                self._in_cpu = False
        return RunExit.DIED, 0

    def _run_once(self) -> None:
        """Run the CPU until something needs the loop, then handle what stopped it."""
        end = self.cpu.run()
        if self._refused is not None:
            eip, trap, errcode = self._refused
            self._refused = None
            self.cpu.set_reg(EIP, eip)
            interrupts.reflect_or_kill(self, trap, errcode)
        elif end is RunEnd.MMU:
            fault = self.pagetables.take_fault(self.cpu.fault_address())
            if fault is not None and self.dead_reason is None:
                self.page_faults += 1
                interrupts.handle_page_fault(self, *fault)

    # --- Unicorn hooks: the guest thread, inside emu_start ---------------------------------------

    def _after_exit(self) -> None:
        """Steps 2-5 of the loop without leaving the CPU; stop it if the loop must act.

        A signal, a break and close all kick, so ``_stop_requested`` covers steps 3 and 4.  A trap
        waiting for the run to end (``_refuse``) comes first: it is still the guest's next event.
        """
        if (
            self.pending_notify
            or self.halted
            or self._stop_requested
            or self._refused is not None
            or self.dead_reason is not None
        ):
            self.cpu.stop()
            return
        if self.irqs_pending:
            if interrupts.maybe_do_interrupt(self):
                self._poll_later()
            if self.dead_reason is not None:
                self.cpu.stop()

    def on_tlb_fill(self, vaddr: int, access: int, entry: Any) -> bool:
        if self.pagetables.fills == TLB_GROW_FILLS:
            self.cpu.stop()  # _run_guest flushes, which lets Unicorn grow its TLB
        return self.pagetables.fill(vaddr, access, entry)

    def on_trap(self, intno: int) -> None:
        cpu = self.cpu
        if intno == LGUEST_TRAP_ENTRY and self._refused is None:
            # The hot path: a hypercall from the guest kernel (from user mode it is a #GP below).
            cs, call, arg1, arg2, arg3 = cpu.hypercall_regs()
            if cs & 3 == GUEST_PL:
                self.hypercall_counts[call if call < _OTHER_HYPERCALLS else _OTHER_HYPERCALLS] += 1
                do_hypercalls(self, (call, arg1, arg2, arg3))
                self._after_exit()
                return
        if self._refused is not None:
            self._after_refused_instruction()
            return
        if intno >= 32 or intno == LGUEST_TRAP_ENTRY:
            # Only an ``int`` instruction raises these; EIP is already past it.
            if cpu.cpl() > self.idt.int_gate_dpl(intno):
                cpu.set_reg(EIP, cpu.reg(EIP) - 2)
                self._reflect(TRAP_GP, intno * 8 + 2)
            else:
                self._reflect(intno, 0)
            self._after_exit()
            return
        errcode, is_int = cpu.exception_info()
        if is_int:
            # int3 / into / int $n below 32: the gate DPL check as above, frame after the insn.
            if cpu.cpl() > self.idt.int_gate_dpl(intno):
                length = 1 if intno in (3, 4) and self._byte_before_eip() in (0xCC, 0xCE) else 2
                cpu.set_reg(EIP, cpu.reg(EIP) - length)
                self._reflect(TRAP_GP, intno * 8 + 2)
            else:
                self._reflect(intno, 0)
        else:
            cpu.clear_old_exception()
            if intno == TRAP_NM and not self.ts:
                pass  # 2.6.24 swallows #NM when the guest's TS is clear
            else:
                self._reflect(intno, errcode)
        self._after_exit()

    def _reflect(self, trap: int, errcode: int) -> None:
        """Reflect a trap the CPU just reported, from inside its hook.

        From user mode the delivery changes privilege level, which the Host does by rewriting
        the CPU state (``Cpu.enter``).  Done inside Unicorn's hook, that corrupted the guest
        kernel's registers or stack now and then (300 user programs under a 1000 Hz timer); so
        it waits until ``emu_start`` has returned, like a refused instruction: the hook only
        notes the trap and stops the CPU, and no privilege change ever happens inside a hook.
        """
        if self.cpu.cpl() == 3:
            self._refuse(self.cpu.reg(EIP), trap, errcode)
        else:
            interrupts.reflect_or_kill(self, trap, errcode)

    def _byte_before_eip(self) -> int | None:
        pa = self.pagetables.guest_pa(self.cpu.reg(EIP) - 1)
        return None if pa is None else self.memory.view[pa]

    def on_invalid_instruction(self) -> bool:
        if self._refused is not None:
            self._after_refused_instruction()
            return True
        self._reflect(TRAP_UD, 0)
        self._after_exit()
        return True

    def on_port_in(self, port: int, size: int) -> int:
        """``in``: Unicorn never faults port I/O, so the #GP path of 2.6.24 starts here.

        At CPL 1 it is emulated as 2.6.24 does: all ones into EAX, EIP past the instruction
        (Unicorn moves EIP).  At CPL 3 2.6.24 reflects the #GP; see ``_refuse``.
        """
        cpu = self.cpu
        eip, eax = cpu.reg(EIP), cpu.reg(EAX)
        if cpu.cpl() == 3:
            self._refuse(eip, TRAP_GP, 0)
            return eax & ((1 << (8 * size)) - 1)
        pa = self.pagetables.guest_pa(eip)
        prefix = pa is not None and self.memory.view[pa] == 0x66
        opa = self.pagetables.guest_pa(eip + 1) if prefix else pa
        opcode = self.memory.view[opa] if opa is not None else 0
        if opcode & 1:
            eax = 0xFFFFFFFF
        else:
            eax |= 0xFFFF0000 if prefix else 0xFFFF
        cpu.set_reg(EAX, eax)
        return eax & ((1 << (8 * size)) - 1)

    def on_port_out(self, port: int, size: int, value: int) -> None:
        """``out`` has no effect at CPL 1 (2.6.24 skips it); at CPL 3 it is a #GP."""
        if self.cpu.cpl() == 3:
            self._refuse(self.cpu.reg(EIP), TRAP_GP, 0)

    def on_sysenter(self) -> None:
        """``sysenter``: 2.6.24 zeroed SYSENTER_CS while a guest ran, so it is a #GP(0)."""
        self._refuse(self.cpu.reg(EIP), TRAP_GP, 0)

    def on_syscall(self) -> None:
        """``syscall``: not an i386 instruction (legacy mode, SCE clear): #UD."""
        self._refuse(self.cpu.reg(EIP), TRAP_UD, 0)

    def _refuse(self, eip: int, trap: int, errcode: int) -> None:
        """Deliver ``trap`` with EIP = ``eip`` once the run has ended.

        For an instruction Unicorn would run that must fault instead (its hook is called
        first), stopping from the hook ends the run at the end of its translated block (``cpu``:
        stops land between blocks); ``_run_once`` then puts EIP back on it and reflects the
        trap.  The hook has left the registers as they were (``in`` returns the old value; the
        others have no effect).  ``sysenter`` and ``syscall`` end their block, so the trap is
        exact; after a user-mode ``in`` or ``out`` the rest of its block has run (the README
        lists this difference).  ``_reflect`` uses the same path for traps from user mode,
        taken between instructions, so exactly.
        """
        self._refused = (eip, trap, errcode)
        self.cpu.stop()

    def _after_refused_instruction(self) -> None:
        """An instruction after a refused one reached a hook before the stop did (an invalid
        opcode or an ``int`` in the same translation block): it never ran."""
        self.cpu.clear_old_exception()
        self.cpu.stop()

    def on_unmapped(self, address: int) -> bool:
        return self.pagetables.unmapped(address)
