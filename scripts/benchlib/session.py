"""Driving the bench guest through the node: the bench plays the launcher.

``BenchGuest`` is a ``launcher.guests.handguest.HandGuest`` (guest memory laid out by the launcher's
own ``prepare_guest``, ``MOUNT/lguest`` opened and INITIALIZEd here) that reads until the guest's
first BENCH_DONE.  From then on every measured operation is: write a command into
``bench_command`` through the shared memory (the guest is stopped between two reads), then read
until the guest NOTIFYs BENCH_DONE.  The handle is the guest's owner, and the thread that opened it
is the one the daemon watches for signals, so that thread does the reads; any other thread may open
``guests/<pid>/waker`` and send BREAKs.
"""

from __future__ import annotations

import enum
import struct
import time
from pathlib import Path

from benchlib.elfinfo import physical, symbols
from launcher.closing import Closing
from launcher.guests.handguest import HandGuest
from lguestfs.abi import LHREQ_BREAK, LHREQ_IRQ

# The words bench_ops.c NOTIFYs.
BENCH_DONE = 0xBE0C0001
BENCH_TICK = 0xBE0C0002
BENCH_IRQ_SEEN = 0xBE0C0003

COMMAND = struct.Struct("<4I")  # op, count, arg, seq
RESULT = struct.Struct("<3I2i")  # seq, irqs, timer_irqs, timer_sec, timer_nsec


class Op(enum.IntEnum):
    """bench_ops.c's operations."""

    IDLE = 0
    COMPUTE = 1
    STORE = 2
    HYPERCALL = 3
    NOTIFY = 4
    SPIN = 5
    IRQ = 6
    TIMER = 7


class BenchGuest(Closing):
    """One bench_ops guest, owned by the thread that created it."""

    def __init__(self, mountpoint: Path, elf: Path, mem_mb: int = 8) -> None:
        found = symbols(elf, "bench_command", "bench_result")
        self.command_at = physical(found["bench_command"])
        self.result_at = physical(found["bench_result"])
        self.seq = 0
        self.other_notifies = 0  # console text and the like, which the bench skips
        # The first command, written before INITIALIZE, tells the guest a bench is driving it.
        self.hand = HandGuest(
            mountpoint,
            elf,
            mem_mb=mem_mb,
            patch=lambda prepared: prepared.write(self.command_at, self._command(Op.IDLE)),
        )
        self.prepared = self.hand.prepared
        try:
            self.wait_for(BENCH_DONE)
        except BaseException:
            self.close()
            raise

    def read(self) -> int:
        """One read of the node: the guest's NOTIFY word (``GuestDied`` says why it died)."""
        word = self.hand.read()
        assert word is not None  # no timeout was asked for
        return word

    def wait_for(self, word: int) -> None:
        while (got := self.read()) != word:
            self.other_notifies += 1
            if got in (BENCH_DONE, BENCH_TICK, BENCH_IRQ_SEEN):
                raise RuntimeError(
                    f"bench guest said {got:#x} while the bench waited for {word:#x}"
                )

    def _command(self, op: Op, count: int = 0, arg: int = 0) -> bytes:
        self.seq += 1
        return COMMAND.pack(op, count, arg, self.seq)

    def command(self, op: Op, count: int = 0, arg: int = 0) -> None:
        """Leave the next command for the guest (it runs at the next read)."""
        self.prepared.write(self.command_at, self._command(op, count, arg))

    def set_op(self, op: Op) -> None:
        """Change only the op: how the bench ends SPIN and IRQ, which re-read it while they run."""
        self.prepared.write(self.command_at, struct.pack("<I", op))

    def run(self, op: Op, count: int = 0, arg: int = 0) -> float:
        """Seconds from the read that starts ``op`` to the read that returns its BENCH_DONE."""
        self.command(op, count, arg)
        start = time.perf_counter()
        self.wait_for(BENCH_DONE)
        return time.perf_counter() - start

    def result(self) -> tuple[int, int, int, int, int]:
        seq, irqs, timer_irqs, sec, nsec = RESULT.unpack(
            self.prepared.read(self.result_at, RESULT.size)
        )
        return seq, irqs, timer_irqs, sec, nsec

    def raise_irq(self, irq: int) -> None:
        self.hand.write(LHREQ_IRQ, irq)

    def release_breakers(self) -> None:
        self.hand.write(LHREQ_BREAK, 0)

    def close(self) -> None:
        self.hand.close()
