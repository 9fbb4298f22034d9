"""The guest's GDT: LOAD_GDT and LOAD_TLS (spec 7.2).

Where this sits: ``hypercalls`` hands us the table address; we keep the guest's 32 entries as
2.6.24's ``lg->gdt`` does, fix them up (DPL 0 becomes 1, accessed always set, so the CPU never
writes the Host's page), and ``cpu`` copies the result into the Host's GDT page (mapped at 4 GB,
out of the guest's reach), which is the GDT Unicorn actually uses.  Segment registers are not
reloaded: as on hardware, a new descriptor takes effect at the guest's next segment load.

The slots the Host keeps for itself (10 and 11, the switcher's CS/DS; 16, the TSS; 31, the
double-fault TSS) are stored but not fixed up, and stay empty in the GDT Unicorn sees, so a
guest selector can never name them.
"""

from __future__ import annotations

import struct
from typing import Final

from lguestfs.abi import (
    GDT_ENTRIES,
    GDT_ENTRY_KERNEL_CS,
    GDT_ENTRY_KERNEL_DS,
    GDT_ENTRY_TLS_ENTRIES,
    GDT_ENTRY_TLS_MIN,
    GUEST_PL,
    KERNEL_CS_DESCRIPTOR,
    KERNEL_DS_DESCRIPTOR,
)
from lguestfs.memory import GuestMemory, signed32

HOST_GDT_ENTRIES: Final = frozenset({10, 11, 16, 31})  # switcher CS, DS, TSS, double-fault TSS
_DPL_MASK: Final = 0x6000
_ACCESSED: Final = 0x100
_DESCRIPTOR = struct.Struct("<II")


class Gdt:
    """The guest's 32 descriptors, as (low word, high word) pairs."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, int]] = [(0, 0)] * GDT_ENTRIES
        self.entries[GDT_ENTRY_KERNEL_CS] = KERNEL_CS_DESCRIPTOR
        self.entries[GDT_ENTRY_KERNEL_DS] = KERNEL_DS_DESCRIPTOR

    def load(self, memory: GuestMemory, table: int, count: int) -> str | None:
        """LOAD_GDT(table, count): the kill reason, or None."""
        if count > GDT_ENTRIES:
            return f"too many gdt entries {signed32(count)}"
        data = memory.read(table, count * 8)  # GuestAccessError: the caller's kill
        for i in range(count):
            self.entries[i] = _DESCRIPTOR.unpack_from(data, i * 8)
        self._fix_up(range(GDT_ENTRIES))
        return None

    def load_tls(self, memory: GuestMemory, table: int) -> None:
        """LOAD_TLS(table): three descriptors into entries 6, 7, 8."""
        data = memory.read(table, GDT_ENTRY_TLS_ENTRIES * 8)
        for i in range(GDT_ENTRY_TLS_ENTRIES):
            self.entries[GDT_ENTRY_TLS_MIN + i] = _DESCRIPTOR.unpack_from(data, i * 8)
        self._fix_up(range(GDT_ENTRY_TLS_MIN, GDT_ENTRY_TLS_MIN + GDT_ENTRY_TLS_ENTRIES))

    def _fix_up(self, indices: range) -> None:
        for i in indices:
            if i in HOST_GDT_ENTRIES:
                continue
            lo, hi = self.entries[i]
            if not hi & _DPL_MASK:
                hi |= GUEST_PL << 13
            self.entries[i] = (lo, hi | _ACCESSED)

    def descriptor(self, selector: int) -> tuple[int, int]:
        return self.entries[(selector >> 3) % GDT_ENTRIES]

    def host_table(self) -> bytes:
        """The bytes of the GDT Unicorn uses: the guest's entries, the Host's slots empty."""
        out = bytearray(GDT_ENTRIES * 8)
        for i, (lo, hi) in enumerate(self.entries):
            if i not in HOST_GDT_ENTRIES:
                _DESCRIPTOR.pack_into(out, i * 8, lo, hi)
        return bytes(out)
