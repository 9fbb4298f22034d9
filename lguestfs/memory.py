"""Guest-physical memory: the launcher's shared pages, as the Host sees them.

Where this sits: the launcher maps its guest memory ``MAP_SHARED``; at INITIALIZE the daemon
(``sharing``) maps the same pages into itself and hands the mapping to a ``GuestMemory``.  From
then on every access the Host makes on the guest's behalf goes through here: the CRASH text,
``lguest_data``, GDT/TLS/IDT arguments, page-table walks, the frames pushed when a trap is
reflected, the instruction bytes of an emulated ``in``/``out``.  Unicorn maps the very same pages
at guest-physical 0 (``address`` is what ``cpu`` passes to ``uc.mem_map_ptr``), so nothing is
ever copied.

The bounds rule is the kernel's ``lguest_address_ok()`` (spec 6), quirk included: ``len`` bytes at
``addr`` are allowed iff ``(addr + len) / 4096 < pfnlimit`` with 32-bit arithmetic and no
wrap-around, so a range that ends exactly at ``pfnlimit * 4096`` is refused.  A refusal raises
``GuestAccessError`` whose text is the spec's kill reason; the caller kills the guest with it.

The launcher keeps its memory object and may shrink it under us (``ftruncate``).  Touching a page
past the new end would raise SIGBUS and end the daemon, so the mapping is guarded from creation to
close by ``_memguard``: such a fault replaces the whole range with zero pages and sets ``lost``,
and the Host kills the guest with ``MEMORY_LOST`` (the guard's C source says how, and why it is
safe inside a signal handler).
"""

from __future__ import annotations

import ctypes
import mmap
import struct
import threading

from lguestfs import _memguard
from lguestfs.abi import PAGE_SHIFT, PAGE_SIZE

_U32 = struct.Struct("<I")
_WORD_MASK = 0xFFFFFFFF
# The kill reason once ``lost`` is set.
MEMORY_LOST = "guest memory lost: the launcher shrank it or its tmpfs is full"


def signed32(value: int) -> int:
    """A 32-bit word read as the kernel's ``int`` (kill reasons print a few words signed)."""
    return value - (1 << 32) if value & 0x80000000 else value


class GuestAccessError(Exception):
    """A Host access outside guest memory; ``str(e)`` is the kill reason of spec 3.3."""


class GuestMemory:
    """Bounds-checked reads and writes of one guest's physical memory."""

    def __init__(self, backing: mmap.mmap, pfnlimit: int) -> None:
        if len(backing) != pfnlimit * PAGE_SIZE:
            raise ValueError(
                f"backing is {len(backing)} bytes, pfnlimit {pfnlimit} needs {pfnlimit * PAGE_SIZE}"
            )
        self.pfnlimit = pfnlimit
        self.size = pfnlimit * PAGE_SIZE
        self._backing: mmap.mmap | None = backing
        # The ctypes view pins the buffer export; it is dropped in close() before the unmap.
        self._anchor: ctypes.Array[ctypes.c_char] | None = (ctypes.c_char * self.size).from_buffer(
            backing
        )
        self.address = ctypes.addressof(self._anchor)
        self.view = memoryview(backing)
        self._closing = threading.Lock()  # two closes at once (release and shutdown)
        try:
            self._guard = _memguard.guard(self.address, self.size)
        except MemoryError:  # the guard's table is full: unpin, so that the caller can unmap
            self.view.release()
            self._anchor = None
            raise

    @property
    def lost(self) -> bool:
        """Did the launcher shrink the object under us?  (The pages read as zeros from then on.)"""
        return self._backing is not None and _memguard.lost(self._guard)

    def ok(self, addr: int, length: int) -> bool:
        """The kernel's ``lguest_address_ok()``: may the Host touch ``length`` bytes at ``addr``?"""
        end = (addr + length) & _WORD_MASK
        return 0 <= addr <= end and end >> PAGE_SHIFT < self.pfnlimit

    def check_read(self, addr: int, length: int) -> None:
        if not self.ok(addr, length):
            raise GuestAccessError(f"bad read address {addr & _WORD_MASK:#x} len {length}")

    def check_write(self, addr: int, length: int) -> None:
        if not self.ok(addr, length):
            raise GuestAccessError(f"bad write address {addr & _WORD_MASK:#x} len {length}")

    def read(self, addr: int, length: int) -> bytes:
        self.check_read(addr, length)
        return bytes(self.view[addr : addr + length])

    def write(self, addr: int, data: bytes) -> None:
        self.check_write(addr, len(data))
        self.view[addr : addr + len(data)] = data

    # The two below are on every hot path (page walks, trap frames): ``ok`` is inlined.

    def read_u32(self, addr: int) -> int:
        end = (addr + 4) & _WORD_MASK
        if not (0 <= addr <= end and end >> PAGE_SHIFT < self.pfnlimit):
            self.check_read(addr, 4)
        value: int = _U32.unpack_from(self.view, addr)[0]
        return value

    def write_u32(self, addr: int, value: int) -> None:
        end = (addr + 4) & _WORD_MASK
        if not (0 <= addr <= end and end >> PAGE_SHIFT < self.pfnlimit):
            self.check_write(addr, 4)
        _U32.pack_into(self.view, addr, value & _WORD_MASK)

    def close(self) -> None:
        """Unmap the pages (idempotent, from any thread).  Unicorn must no longer map them."""
        with self._closing:
            if self._backing is None:
                return
            _memguard.unguard(self._guard)  # once only: the slot may be another guest's next
            self.view.release()
            self._anchor = None
            self._backing.close()
            self._backing = None
