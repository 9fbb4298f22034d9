"""The raw Unicorn reference: the bench guest's own loops, run by Unicorn in this process.

The compute figure asks what the whole daemon costs a guest that only computes.  The fair reference
runs *the identical machine code*: the loops are taken byte for byte from the bench guest's ELF
(between the symbols ``bench_<loop>_loop`` and ``bench_<loop>_loop_end``), mapped at the same
virtual address, and run by a bare ``Uc`` with ``emu_start(start, end)``.  No paging, no privilege
level 1, no hooks unless asked: the Unicorn facts say neither paging nor idle hooks change the
steady-state rate, so whatever the daemon's figure loses against this one is the daemon's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import unicorn
from elftools.elf.elffile import ELFFile
from unicorn.unicorn_const import UC_ARCH_X86, UC_HOOK_INTR, UC_MODE_32, UC_PROT_ALL
from unicorn.x86_const import (
    UC_X86_REG_EAX,
    UC_X86_REG_ECX,
    UC_X86_REG_EDI,
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


class RawLoop:
    """One loop of the bench guest, runnable without the daemon."""

    def __init__(self, elf_path: Path, loop: str, *, empty_hypercall_hook: bool = False) -> None:
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
        if empty_hypercall_hook:
            self.uc.hook_add(UC_HOOK_INTR, _empty_hook)

    def seconds(self, iterations: int, eax: int = 0) -> float:
        """Wall time of one run of the loop with ECX = iterations."""
        uc = self.uc
        uc.reg_write(UC_X86_REG_ECX, iterations)
        uc.reg_write(UC_X86_REG_EAX, eax)
        uc.reg_write(UC_X86_REG_EDI, SCRATCH)
        uc.reg_write(UC_X86_REG_ESP, SCRATCH + 2 * PAGE - 16)
        start = time.perf_counter()
        uc.emu_start(self.start, self.end)
        return time.perf_counter() - start


def _empty_hook(uc: Any, intno: int, user_data: Any) -> None:
    return None
