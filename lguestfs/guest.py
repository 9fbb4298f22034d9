"""One guest, run: 2.6.24's ``run_guest()`` loop, its threads, and being stopped from outside.

Where this sits: ``protocol`` (the daemon's per-handle state machine) makes a ``Guest`` at
INITIALIZE and calls ``run()`` for each read of the owner; it sees only ``GuestContract``.
``run()`` runs the loop on the CPU and calls ``on_exit`` exactly once when the read must return:
a notify, a break, a signal, or the death.  The guest's state is an ``Lguest`` (``state``), on
which the hooks (``traps``), hypercalls, interrupts and the MMU work; this module owns only
the threads that run it, the hand-offs between them, and the kicks that stop it.

Threads and hand-offs, and why:

* **A short run inline, on trio's thread, first.**  A notify round trip is mostly a guest that
  runs a few microseconds between two reads, and handing each read to another thread and back
  costs two thread wake-ups, 30-60 us each.  So ``run()`` starts the loop on the caller's (trio's)
  thread, with a deadline ``INLINE_FOR`` ahead.  The loop checks it at every exit; for a guest
  spinning without exits the clock looks every ``INLINE_WATCH`` while reads run inline and kicks
  the CPU (with the repeats below) once the deadline has passed.  A read that has not ended by
  its deadline, or whose guest halts, is handed to the guest thread.  After a read that overran,
  reads go straight to the guest thread until one ends within ``INLINE_FOR`` again: a guest that
  computes or spins for long holds trio once, not per read.  (Waking the clock thread while
  trio's thread spins in the CPU can take 1-2 ms on this machine, so a deadline kick is not as
  prompt as ``INLINE_FOR`` suggests.)  Unicorn is only ever entered by one thread: the guest
  thread is idle until that hand-off, and ``close()`` waits for an inline run to end before it
  frees the CPU.
* **The guest thread** runs the rest.  Unicorn releases the GIL while it emulates, so two guests
  run on two cores; hooks take the GIL back only while they run.  Between reads the thread waits
  on a ``SimpleQueue`` (the cheapest wake-up Python has); while the guest is halted it sleeps on
  a condition.  Neither burns CPU.
* **Stopping a running guest** (a break, a signal, an irq, a timer expiry, close) sets the reason,
  then kicks (``Kicker``): a "stop requested" flag plus ``uc_emu_stop()``.  A stop landing in the
  first microseconds of ``emu_start`` is lost, so the loop clears the flag before it looks at the
  reasons and skips the run if it is set again, and the clock repeats ``emu_stop`` every
  ``KICK_REPEAT`` until the loop has cleared the flag.
* **Interrupts are injected only at loop boundaries** (spec 2, step 5).  2.6.24 got a boundary at
  every guest exit, and the host's own timer ticks made sure exits kept coming; a guest spinning
  here makes none.  So while an interrupt stays pending (masked, the noirq window, interrupts
  off), the guest is stopped every ``IRQ_POLL`` to look again.
"""

from __future__ import annotations

import ctypes
import enum
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Final, Protocol

from lguestfs import interrupts
from lguestfs.clock import clock
from lguestfs.hypercalls import do_hypercalls
from lguestfs.memory import MEMORY_LOST, GuestMemory
from lguestfs.state import GuestStatus, Lguest
from lguestfs.traps import Traps

__all__ = ["Guest", "GuestContract", "GuestStatus", "Kicker", "RunExit"]

log = logging.getLogger(__name__)
# glibc keeps what a guest freed (its thread's arena, Unicorn's engine, the Python objects) for
# reuse, off the top of its heaps.  Measured: four bursts of 40 guests took the daemon from 61 MB
# to 100-130 MB of anonymous memory, kept; with ``malloc_trim`` after each guest, from 24 to 29.
_malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", lambda _pad: 0)

KICK_REPEAT: Final = 0.001  # seconds between repeated emu_stop calls until the guest thread sees it
INLINE_FOR: Final = 200e-6  # seconds a read runs the guest inline, on trio's thread...
INLINE_WATCH: Final = 0.0005  # ...give or take this: how often the clock looks while reads do
IRQ_POLL: Final = 0.001  # how soon to look again at an interrupt the guest cannot take yet


class RunExit(enum.Enum):
    """Why a read of the owner returns (spec 1.3 step 5)."""

    NOTIFY = "notify"  # value = the address the guest notified
    BREAK = "break"  # EAGAIN
    SIGNAL = "signal"  # EINTR / ERESTARTSYS
    DIED = "died"  # ENOENT


class GuestContract(Protocol):
    """All ``protocol`` needs of a guest (a ``Guest``, or a test's stand-in)."""

    @property
    def death(self) -> str | None:
        """Why the guest was killed, once it was (spec 1.3 step 3's text)."""

    def run(self, on_exit: Callable[[RunExit, int], None]) -> None:
        """One read's worth of the loop; ``on_exit`` is called once, from any thread."""

    def set_break(self, on: bool) -> None: ...

    def raise_irq(self, irq: int) -> None: ...

    def interrupt(self) -> None:
        """The reader got a signal: the run in progress ends with SIGNAL."""

    def check_memory(self) -> bool:
        """From any thread: was the guest's memory lost (``memory.lost``)?  Then it is dead."""

    def close(self) -> None: ...

    def status(self) -> GuestStatus: ...


class Kicker:
    """Stopping the CPU from another thread so that the loop is sure to look (module notes).

    It is also what the hooks see of the loop (``traps.RunLoop``).
    """

    def __init__(self, g: Lguest) -> None:
        self._g = g
        self.stop_requested = False  # the loop must look at its reasons before running again
        self.in_cpu = False  # the loop's thread is in (or about to enter) emu_start
        self._repeating = False  # a repeat is in the clock's heap
        self._poll_pending = False
        self._lock = threading.Lock()  # guards Unicorn against stop-after-close
        self._open = True

    def kick(self) -> None:
        """Make the loop look at its reasons again, soon.

        The order matters: the flag is set before ``in_cpu`` is read, and the loop sets
        ``in_cpu`` before it reads the flag for the last time, so either it sees the flag or we
        see it in the CPU and keep stopping it until it does.  A thread that is not in the CPU
        (halted, between reads) needs no repeats: it reads the flag before it runs again.
        """
        self.stop_requested = True
        with self._lock:
            if not self._open:
                return
            self._g.cpu.stop()
            if self._repeating or not self.in_cpu:
                return
            self._repeating = True
        clock.call_at(time.monotonic() + KICK_REPEAT, self._again)

    def _again(self) -> None:
        with self._lock:
            repeat = self.stop_requested and self.in_cpu and self._open
            if repeat:
                self._g.cpu.stop()
            else:
                self._repeating = False
        if repeat:
            clock.call_at(time.monotonic() + KICK_REPEAT, self._again)

    def poll_later(self) -> None:
        """Stop the guest again in a moment: 2.6.24 retried a blocked injection at every exit,
        and the host's own timer ticks made sure exits kept coming; ours is this poll."""
        if self._poll_pending:
            return
        self._poll_pending = True

        def poll() -> None:
            self._poll_pending = False
            self.kick()

        clock.call_at(time.monotonic() + IRQ_POLL, poll)

    def close(self) -> bool:
        """No more kicks; True the first time (the caller then frees the CPU)."""
        with self._lock:
            was_open, self._open = self._open, False
            return was_open


class InlineWatch:
    """The clock's look at inline runs (the module notes): kick one that is past its deadline.

    The loop itself checks the deadline at each exit; this is for a guest that spins without
    any.  Arming a clock deadline for every read would wake the clock thread for every read,
    which cost a notify round trip 20 us, so the clock looks every ``INLINE_WATCH`` instead,
    for as long as reads keep running inline, and stops once they do not.  A kick that
    arrives after the run ended only makes the guest look at its reasons once more, as any
    kick may.
    """

    def __init__(self, kicker: Kicker) -> None:
        self._kicker = kicker
        self._lock = threading.Lock()
        self._deadline: float | None = None  # the inline run's deadline, while one runs
        self._ran = False  # an inline run started since the clock looked
        self._watching = False  # the clock will look again (_look is in its heap)

    def begin(self, deadline: float) -> None:
        """An inline run starts, to end by ``deadline``."""
        with self._lock:
            self._deadline = deadline
            self._ran = True
            watch, self._watching = not self._watching, True
        if watch:
            clock.call_at(deadline, self._look)

    def end(self) -> None:
        self._deadline = None

    def _look(self) -> None:
        with self._lock:
            deadline, ran = self._deadline, self._ran
            self._ran = False
            now = time.monotonic()
            if deadline is not None and now < deadline:
                again = deadline
            elif deadline is not None or ran:
                again = now + INLINE_WATCH
            else:
                self._watching = False
                return
        if deadline is not None and now >= deadline:
            self._kicker.kick()
        clock.call_at(again, self._look)


class Guest:
    """The runner: one guest's thread, its inline runs, and the loop of spec 2."""

    def __init__(self, memory: GuestMemory, pgdir: int, start: int, *, name: str) -> None:
        self.name = name
        self.lguest = Lguest(memory, name=name, on_timer=self._timer_fired)
        self.kicker = Kicker(self.lguest)
        self.traps = Traps(self.lguest, self.kicker)
        self._watch = InlineWatch(self.kicker)
        self.break_out = False
        self._signal = False
        self._closing = False
        self._wakeup = False
        self._on_exit: Callable[[RunExit, int], None] | None = None
        self._cond = threading.Condition()  # halted sleeps, and everything that wakes them
        # run() and close() to _main: one item per run handed off, so the guest thread never
        # wakes for a run that ends inline
        self._runs: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._inline = threading.Lock()  # held by an inline run; close() waits for it
        self._inline_ok = True  # no read has overrun INLINE_FOR since one last ended sooner
        self._run_started = 0.0  # time.monotonic() when the current read began
        try:
            self.lguest.boot(self.traps, pgdir, start)
        except BaseException:
            memory.close()  # we own it from the first line
            raise
        self._thread = threading.Thread(target=self._main, name=f"lguest-{name}", daemon=True)
        self._thread.start()

    @property
    def death(self) -> str | None:
        return self.lguest.death

    # --- the contract with protocol --------------------------------------------------------------

    def run(self, on_exit: Callable[[RunExit, int], None]) -> None:
        """Run one read's worth of the loop; ``on_exit`` is called once when the read must return.

        Returns within about ``INLINE_FOR``: either the read ended inline (``on_exit`` has been
        called, from here) or the guest thread goes on with it (``on_exit`` will be called from
        there).
        """
        with self._cond:
            if self._on_exit is not None:
                raise RuntimeError("a run is already in progress")
            self._on_exit = on_exit
            self._signal = False
        self._run_started = time.monotonic()
        result = self._run_inline() if self._inline_ok and not self.lguest.halted else None
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
            self.kicker.kick()

    def raise_irq(self, irq: int) -> None:
        """LHREQ_IRQ: mark ``irq`` pending.  A running guest is stopped so that the injection
        happens at once; a halted one is not woken (as in 2.6.24)."""
        self.lguest.raise_irq(irq)
        self.kicker.kick()

    def interrupt(self) -> None:
        """The reader got a signal: the current run ends with SIGNAL."""
        self._wake("_signal")

    def check_memory(self) -> bool:
        """From any thread: was our memory lost (``memory.lost``: the launcher shrank the object
        or its tmpfs is full)?  Then the guest dies with ``MEMORY_LOST`` and its loop stops."""
        lost = self.lguest.memory.lost
        if lost:
            self.kill_from_outside(MEMORY_LOST)
        return lost

    def kill_from_outside(self, reason: str) -> None:
        """``kill_guest()`` from a thread that does not run this guest (``adopt``): the loop is
        woken and the CPU kicked; safe against a guest closed meanwhile."""
        with self._cond:
            self.lguest.record_death(reason)
        self._wake("_wakeup")

    def close(self) -> None:
        """Stop the guest wherever it is, cancel its timer, end its thread, free everything."""
        self._wake("_closing")
        self._runs.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join()
        with self._inline:  # an inline run has left the CPU
            if self.kicker.close():
                self.lguest.close()
        self.lguest.memory.close()
        _malloc_trim(0)  # what this guest held goes back to the kernel, not to a free list

    def status(self) -> GuestStatus:
        return self.lguest.status(running=self._on_exit is not None)

    # --- waking the loop from other threads ------------------------------------------------------

    def _wake(self, flag: str) -> None:
        """Set one of the loop's reasons (``_signal``, ``_closing``), wake it, kick the CPU."""
        with self._cond:
            setattr(self, flag, True)
            self._wakeup = True
            self._cond.notify_all()
        self.kicker.kick()

    def _timer_fired(self) -> None:
        """The clock thread: SET_CLOCKEVENT's deadline passed; irq 0, which wakes a halted guest."""
        self.lguest.raise_irq(0)
        with self._cond:
            if self.lguest.halted:
                self._wakeup = True
                self._cond.notify_all()
        self.kicker.kick()

    # --- the two threads a run uses --------------------------------------------------------------

    def _run_inline(self) -> tuple[RunExit, int] | None:
        """The start of a read on the caller's thread: its exit, or None to hand the rest off."""
        with self._inline:
            if self._closing:  # close() may have freed the CPU already
                return None
            deadline = self._run_started + INLINE_FOR
            self._watch.begin(deadline)
            try:
                return self._run_guest(deadline)
            finally:
                self._watch.end()

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
            if not self._inline_ok and time.monotonic() - self._run_started < INLINE_FOR:
                self._inline_ok = True  # reads are short again: run them inline
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
            self.lguest.kill(f"internal error: {e!r}")
            return RunExit.DIED, 0

    def _loop(self, deadline: float | None) -> tuple[RunExit, int] | None:
        """2.6.24's ``run_guest()``: one read's worth.

        With a ``deadline`` (an inline run) it returns None instead of sleeping while the guest
        is halted, and once the deadline has passed: the guest thread goes on.

        The kernel looked at ``dead`` at the top of each pass and ran the trapped hypercall at
        step 1, after that look; here the hook has already run it, so a notify it left pending is
        returned before the death it may also have caused (spec 1.3: that read returns the notify,
        the next one the reason).
        """
        g, kicker = self.lguest, self.kicker
        while True:
            kicker.stop_requested = False
            # 1. A hypercall the async ring's notify kept pending.  The hook already ran this
            # step for the call that trapped, so it only applies once that notify is out.
            if g.pending_hcall is not None and not g.pending_notify and g.death is None:
                args, g.pending_hcall = g.pending_hcall, None
                do_hypercalls(g, args)
            if g.pending_notify:  # 2.
                notify, g.pending_notify = g.pending_notify, 0
                return RunExit.NOTIFY, notify
            if g.death is not None:
                break
            if self._signal or self._closing:  # 3.
                return RunExit.SIGNAL, 0
            if self.break_out:  # 4.
                return RunExit.BREAK, 0
            if interrupts.maybe_do_interrupt(g):  # 5.
                kicker.poll_later()
            if g.death is not None:  # 6.
                break
            if g.halted:  # 7.
                if deadline is not None:
                    return None
                with self._cond:
                    while not (self._wakeup or self._signal or self.break_out or self._closing):
                        self._cond.wait()
                    self._wakeup = False
                continue
            if deadline is not None and time.monotonic() >= deadline:
                self._inline_ok = False  # a guest that runs long: its next reads go to its thread
                return None
            kicker.in_cpu = True  # before the last look at the flag: see Kicker.kick
            if kicker.stop_requested:
                kicker.in_cpu = False
                continue
            try:
                g.cpu.run()  # 8.
                self.traps.after_run()
            finally:
                kicker.in_cpu = False
        return RunExit.DIED, 0
