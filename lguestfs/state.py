"""One guest's state: 2.6.24's ``struct lguest``, and its kill.

Where this sits: ``guest`` (the runner) makes one ``Lguest`` per INITIALIZE and boots it; the
hooks (``traps``), the hypercalls (``hypercalls``), interrupt injection (``interrupts``) and the
MMU (``pagetables``) all work on it, and on nothing else of the guest.  It is plain data, as the
kernel's struct was, with the few helpers every stage needs: ``kill`` (2.6.24's ``kill_guest``),
``lguest_data`` access (``get_user``/``put_user``), the pending-interrupt bits (set from other
threads, hence their lock) and the counters ``guests/<pid>/status`` shows.

It knows no thread: who runs the CPU, and how it is stopped from outside, is ``guest``'s.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Final

from lguestfs.abi import HYPERCALL_NAMES
from lguestfs.clock import Timer
from lguestfs.cpu import Cpu, CpuHooks
from lguestfs.idt import Idt
from lguestfs.memory import MEMORY_LOST, GuestAccessError, GuestMemory
from lguestfs.pagetables import PageTables
from lguestfs.segments import Gdt

log = logging.getLogger(__name__)

OTHER_HYPERCALLS: Final = max(HYPERCALL_NAMES) + 1  # the counters' last slot: every other number


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


class Lguest:
    """A guest's CPU, memory and per-guest state (``lg->...`` in 2.6.24)."""

    cpu: Cpu
    pagetables: PageTables

    def __init__(self, memory: GuestMemory, *, name: str, on_timer: Callable[[], None]) -> None:
        self.name = name
        self.memory = memory
        self.death: str | None = None  # why it was killed (``lg->dead``); None while it lives
        self.lguest_data: int | None = None  # guest-physical, set by LGUEST_INIT
        self.halted = False
        self.pending_notify = 0
        self.pending_hcall: tuple[int, int, int, int] | None = None
        self.noirq_start = 0
        self.noirq_end = 0
        self.ss1 = 0
        self.ts = 0
        self._irq_lock = threading.Lock()
        self.idt = Idt()
        self.gdt = Gdt()
        self.timer = Timer(on_timer)
        # counters for status
        # by number, the last for all others; the CPU's C hook counts in them too
        self.hypercall_counts = (ctypes.c_uint64 * (OTHER_HYPERCALLS + 1))()
        self.interrupts_delivered = 0

    def boot(self, hooks: CpuHooks, pgdir: int, start: int) -> None:
        """Make the CPU (calling ``hooks``) and the MMU, and put the CPU at ``start`` (spec 7.1)."""
        self.cpu = Cpu(self.memory, hooks, idt=self.idt.address, hypercalls=self.hypercall_counts)
        self.pagetables = PageTables(
            self.memory,
            pgdir,
            cpl=self.cpu.cpl,
            fill_from=self.cpu.fill_from,
            cache_shadows=self.cpu.cache_shadows,
            guest_page_fault=self.cpu.guest_page_fault,
            flush_tlb=self.cpu.flush_tlb,
            flush_tlb_page=self.cpu.flush_tlb_page,
            kill=self.kill,
        )
        self.cpu.start(self.gdt.host_table(), start)

    def kill(self, reason: str) -> None:
        """2.6.24's ``kill_guest()``: only the first reason is kept; the CPU stops soon."""
        self.record_death(reason)
        self.cpu.stop()

    def record_death(self, reason: str) -> None:
        """Keep the first reason (lost memory, when it was, explains whatever came next)."""
        if self.memory.lost:
            reason = MEMORY_LOST
        if self.death is None:
            self.death = reason
            log.info("guest %s killed: %s", self.name, reason.rstrip("\n"))

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

    # The pending interrupts live in the CPU's hook state, where its C hook reads them.

    def raise_irq(self, irq: int) -> None:
        with self._irq_lock:
            self.cpu.irqs_pending |= 1 << irq

    def clear_irq(self, irq: int) -> None:
        with self._irq_lock:
            self.cpu.irqs_pending &= ~(1 << irq)

    def set_ts(self, ts: int) -> None:
        """TS: the guest's view of CR0.TS; with it set, FPU instructions raise #NM."""
        self.ts = ts
        self.cpu.set_ts(bool(ts))

    def count_hypercall(self, call: int) -> None:
        self.hypercall_counts[call if call < OTHER_HYPERCALLS else OTHER_HYPERCALLS] += 1

    def hypercalls_by_name(self) -> dict[str, int]:
        counts = self.hypercall_counts
        named = {HYPERCALL_NAMES.get(n, str(n)): c for n, c in enumerate(counts[:-1]) if c}
        if counts[-1]:
            named["other"] = counts[-1]
        return named

    def status(self, *, running: bool) -> GuestStatus:
        """The snapshot; ``running``: a read is in progress (the runner knows)."""
        if self.death is not None:
            state = "dead"
        elif self.halted:
            state = "halted"
        else:
            state = "running" if running else "stopped"
        return GuestStatus(
            state=state,
            reason=self.death,
            pfnlimit=self.memory.pfnlimit,
            memory_bytes=self.memory.size,
            hypercalls=self.hypercalls_by_name(),
            traps=self.cpu.traps,
            interrupts_delivered=self.interrupts_delivered,
            page_faults_reflected=self.cpu.page_faults,
            irqs_pending=self.cpu.irqs_pending,
            instructions="unknown",
        )

    def close(self) -> None:
        """Free the CPU and the MMU's tables; the memory is the runner's to close after."""
        self.timer.cancel()
        self.cpu.close()
        self.pagetables.close()
