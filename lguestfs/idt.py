"""The guest's IDT: the gates LOAD_IDT_ENTRY stores, and the DPL an ``int`` instruction meets.

Where this sits: ``hypercalls`` stores each gate here (spec 5.3); ``interrupts`` reads them to
reflect traps and inject interrupts, and ``traps`` to check an ``int N`` as the hardware would.
The IDT is never given to Unicorn: every trap comes to the Host first (see ``interrupts``); the
gates live in a flat array of words that the CPU's C trap hook reads too (``Idt.address``).
"""

from __future__ import annotations

import ctypes
from typing import Final

from lguestfs.abi import (
    FIRST_EXTERNAL_VECTOR,
    GUEST_CS,
    GUEST_PL,
    IDT_ENTRIES,
    IDT_IGNORED_VECTORS,
    IDT_TYPE_INTERRUPT_GATE,
    IDT_TYPE_TRAP_GATE,
    LGUEST_TRAP_ENTRY,
    SYSCALL_VECTOR,
    TRAP_GP,
    TRAP_NM,
    TRAP_PF,
)

_PRESENT: Final = 0x8000
_HOST_HANDLED: Final = frozenset({TRAP_NM, TRAP_GP, TRAP_PF, LGUEST_TRAP_ENTRY})


class Idt:
    """The guest's 256 gates as stored by LOAD_IDT_ENTRY: (lo, hi), or None when absent."""

    def __init__(self) -> None:
        # gate n's low and high words at 2n and 2n + 1; a high word of 0 is an absent gate (a
        # stored one always has its present bit)
        self._words = (ctypes.c_uint32 * (2 * IDT_ENTRIES))()
        self.address = ctypes.addressof(self._words)

    def gate(self, num: int) -> tuple[int, int] | None:
        """Gate ``num`` (below IDT_ENTRIES): (lo, hi), or None when absent."""
        lo, hi = self._words[2 * num], self._words[2 * num + 1]
        return (lo, hi) if hi else None

    def load_entry(self, num: int, lo: int, hi: int) -> str | None:
        """LOAD_IDT_ENTRY: store the gate; return a kill reason (the gate is still stored)."""
        if num in IDT_IGNORED_VECTORS:
            return None
        if num >= IDT_ENTRIES:
            return f"Setting idt entry {num}"
        if not hi & _PRESENT:
            self._words[2 * num : 2 * num + 2] = [0, 0]
            return None
        gate_type = (hi >> 8) & 0xF
        self._words[2 * num : 2 * num + 2] = [(GUEST_CS << 16) | (lo & 0xFFFF), hi & 0xFFFFEF00]
        if gate_type not in (IDT_TYPE_INTERRUPT_GATE, IDT_TYPE_TRAP_GATE):
            return f"bad IDT type {gate_type}"
        return None

    def int_gate_dpl(self, vector: int) -> int:
        """The DPL of the gate ``int vector`` meets on 2.6.24 (direct trap gates: the guest's)."""
        gate = self.gate(vector)
        direct = (
            gate is not None
            and (gate[1] >> 8) & 0xF == IDT_TYPE_TRAP_GATE
            and (vector < FIRST_EXTERNAL_VECTOR or vector == SYSCALL_VECTOR)
            and vector not in _HOST_HANDLED
        )
        if direct and gate is not None:
            return (gate[1] >> 13) & 3
        return GUEST_PL if vector == LGUEST_TRAP_ENTRY else 0
