"""Symbols of the bench guest's ELF: where its loops and its command block are.

The bench reaches into the guest only at addresses its ELF names: ``bench_command`` and
``bench_result`` (written and read through the shared guest memory between two reads of the node)
and the loop labels the raw-Unicorn reference runs.  Guests are linked at PAGE_OFFSET and up, so a
symbol's guest-physical address is its value minus PAGE_OFFSET.
"""

from __future__ import annotations

from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from lguestfs.abi import PAGE_OFFSET


def symbols(elf_path: Path, *names: str) -> dict[str, int]:
    """The virtual address of each named symbol; ``RuntimeError`` names any that is missing."""
    with elf_path.open("rb") as stream:
        symtab = ELFFile(stream).get_section_by_name(".symtab")
        if not isinstance(symtab, SymbolTableSection):
            raise RuntimeError(f"{elf_path} has no symbol table")
        found: dict[str, int] = {}
        for name in names:
            entries = symtab.get_symbol_by_name(name)
            if not entries:
                raise RuntimeError(f"{elf_path} has no symbol {name}")
            found[name] = int(entries[0]["st_value"])
        return found


def physical(virtual: int) -> int:
    return virtual - PAGE_OFFSET
