"""The raw Unicorn reference: the bench guest's own loops, run by Unicorn in this process.

The compute figure asks what the whole daemon costs a guest that only computes.  The fair reference
runs *the identical machine code*: the loops are taken byte for byte from the bench guest's ELF
(between the symbols ``bench_<loop>_loop`` and ``bench_<loop>_loop_end``), mapped at the same
virtual address, and run by a bare ``Uc`` with ``emu_start(start, end)``.  No paging, no privilege
level 1, no hooks unless asked: the Unicorn facts say neither paging nor idle hooks change the
steady-state rate, so whatever the daemon's figure loses against this one is the daemon's.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Literal, cast

import unicorn
from elftools.elf.elffile import ELFFile
from unicorn.unicorn_const import UC_ARCH_X86, UC_HOOK_INTR, UC_MODE_32, UC_PROT_ALL
from unicorn.x86_const import (
    UC_X86_REG_EAX,
    UC_X86_REG_ECX,
    UC_X86_REG_EDI,
    UC_X86_REG_EIP,
    UC_X86_REG_ESP,
)

from benchlib.elfinfo import symbols
from lguestfs import abi

SCRATCH = 0x10000  # a data page (and a stack) for the loops, away from the code
PAGE = abi.PAGE_SIZE


def _page_down(addr: int) -> int:
    return addr & ~(PAGE - 1)


def _page_up(addr: int) -> int:
    return (addr + PAGE - 1) & ~(PAGE - 1)


HypercallHook = Literal["none", "empty", "stop"]


class RawLoop:
    """One loop of the bench guest, runnable without the daemon.

    ``hypercalls``: "none" (the loop must not make any), "empty" (a Python INTR hook that does
    nothing: the cheapest a Python Host can be), "stop" (each hypercall ends the run, as a
    NOTIFY ends a read: see ``run_to_next_hypercall``).
    """

    def __init__(self, elf_path: Path, loop: str, *, hypercalls: HypercallHook = "none") -> None:
        loop_symbols = symbols(elf_path, f"bench_{loop}_loop", f"bench_{loop}_loop_end")
        self.start, self.end = loop_symbols.values()
        with elf_path.open("rb") as stream:
            segment = next(
                seg
                for seg in ELFFile(stream).iter_segments()
                if seg["p_type"] == "PT_LOAD"
                and seg["p_vaddr"] <= self.start < seg["p_vaddr"] + seg["p_filesz"]
            )
            base = _page_down(segment["p_vaddr"])
            image = bytes(segment["p_vaddr"] - base) + segment.data()
        self.uc: Any = cast(Any, unicorn).Uc(UC_ARCH_X86, UC_MODE_32)  # the binding is untyped
        self.uc.mem_map(base, _page_up(len(image)), UC_PROT_ALL)
        self.uc.mem_write(base, image)
        self.uc.mem_map(SCRATCH, 2 * PAGE, UC_PROT_ALL)
        if hypercalls != "none":
            self.uc.hook_add(UC_HOOK_INTR, _stop_hook if hypercalls == "stop" else _empty_hook)

    def _prepare(self, iterations: int) -> None:
        uc = self.uc
        uc.reg_write(UC_X86_REG_ECX, iterations)
        uc.reg_write(UC_X86_REG_EAX, 0)  # for the hypercall loop: FLUSH_ASYNC
        uc.reg_write(UC_X86_REG_EDI, SCRATCH)
        uc.reg_write(UC_X86_REG_ESP, SCRATCH + 2 * PAGE - 16)
        uc.reg_write(UC_X86_REG_EIP, self.start)

    def seconds(self, iterations: int) -> float:
        """Wall time of one run of the loop with ECX = iterations."""
        self._prepare(iterations)
        start = time.perf_counter()
        self.uc.emu_start(self.start, self.end)
        return time.perf_counter() - start

    def start_endless(self) -> None:
        """Ready the loop for (practically) endless ``run_to_next_hypercall`` calls."""
        self._prepare(0xFFFFFFFF)

    def run_to_next_hypercall(self) -> None:
        """Run from where the last run stopped to the next hypercall (hook "stop")."""
        self.uc.emu_start(self.uc.reg_read(UC_X86_REG_EIP), self.end)


def _empty_hook(uc: Any, intno: int, user_data: Any) -> None:
    return None


def _stop_hook(uc: Any, intno: int, user_data: Any) -> None:
    uc.emu_stop()


def stop_latencies(elf_path: Path, samples: int) -> list[float]:
    """Microseconds from ``emu_stop`` (called from another thread) to ``emu_start`` returning,
    for the compute loop spinning in a bare Uc: the floor under the break figure, which adds the
    daemon and FUSE to the same stop.  As the Host does, a stop is repeated every millisecond
    until it takes (one that lands before the run really starts is lost)."""
    raw = RawLoop(elf_path, "compute")

    def spin(started: threading.Event, returned: threading.Event) -> None:
        started.set()
        raw.uc.emu_start(raw.start, raw.end)
        returned.set()

    latencies: list[float] = []
    for _ in range(samples):
        raw.start_endless()
        started, returned = threading.Event(), threading.Event()
        runner = threading.Thread(target=spin, args=(started, returned), name="bench-raw-spin")
        runner.start()
        started.wait()
        time.sleep(0.002)
        begin = time.perf_counter()
        raw.uc.emu_stop()
        while not returned.wait(0.001):
            raw.uc.emu_stop()
        latencies.append((time.perf_counter() - begin) * 1e6)
        runner.join()
    return latencies


def threads_iteration_rate(elf_path: Path, threads: int, chunk: int, seconds: float) -> float:
    """Compute-loop iterations/s of ``threads`` bare Uc engines at once, one per thread, each
    running chunks of ``chunk`` iterations for ``seconds``: what this machine gives the scale
    figure's guests with no daemon at all (Unicorn releases the GIL while it emulates)."""
    loops = [RawLoop(elf_path, "compute") for _ in range(threads)]
    done = [0] * threads
    go = threading.Barrier(threads + 1)

    def work(index: int) -> None:
        go.wait()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            loops[index].seconds(chunk)
            done[index] += chunk

    workers = [
        threading.Thread(target=work, args=(i,), name="bench-raw-scale") for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    go.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    return sum(done) / (time.perf_counter() - start)
