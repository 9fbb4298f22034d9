"""Guest memory and what the launcher puts in it before the guest's first instruction (spec 8).

The guest's "physical" memory is simply a piece of the launcher's address space: guest-physical
address P is launcher address ``base + P``.  The daemon must be able to map the same pages (it runs
the CPU on them), so the memory is a memfd mapped ``MAP_SHARED``; a private mapping would be
invisible to it (the node answers EFAULT).

``prepare_guest`` builds everything of spec 8 that does not involve devices, top down:

====================================  ==================================================
``[mem, mem + 256 pages)``            device pages, handed out later by ``add_device_pages``
``[mem - initrd, mem)``               the initrd (page-aligned size), if there is one
``mem - initrd - 4096``               the page directory (``pgdir``)
the ``ceil(mem / 4 MB)`` pages below  PTE pages identity-mapping ``[0, mem)``, flags 7
kernel segments                       at their physical addresses (``launcher.loader``)
``0x1000``                            the command line: each argument and a space, then NUL
``0``                                 the zero page: e820, version, loadflags, cmd_line_ptr, ...
====================================  ==================================================

For 64 MB without an initrd that gives ``pgdir`` 0x3FFF000 and PTE pages 0x3FEF000-0x3FFEFFF,
with ``PDE[k] = 0x3FEF007 + k * 0x1000``.

The initrd rule: the initrd ends at ``min(mem, LOWMEM_TOP)``.  A 2.6.24 i386 kernel without
HIGHMEM uses only its low memory, ``4 GB - 4 MB (the Host's top) - 3 GB (PAGE_OFFSET) - 128 MB
(__VMALLOC_RESERVE)`` = 892 MB, and drops an initrd that ends above it ("initrd extends beyond
end of memory").  Up to 892 MB the table above holds (the initrd at the very top, as 2.6.24's
launcher put it); in a larger guest the initrd sits just below 892 MB and the page directory
and PTE pages at the top of memory.  (A ``vmalloc=`` boot option larger than 128 MB lowers the
kernel's limit below ``LOWMEM_TOP``: such a guest needs less memory or a smaller vmalloc.)

Typical use, by the launcher and by tests that boot a guest by hand::

    guest = prepare_guest(64, Path("guest.elf"), ["quiet"])
    device_page = guest.add_device_pages(1)          # optional, before INITIALIZE
    os.write(fd, guest.initialize_request())         # {0, base, pfnlimit, pgdir, entry}
    ...
    guest.close()

Bad input raises ``LaunchError`` with one line saying what is wrong.
"""

import ctypes
import mmap
import os
import struct
from pathlib import Path

from launcher.closing import Closing
from launcher.errors import LaunchError
from launcher.loader import KernelImage, read_kernel
from launcher.node import pack_words
from lguestfs.abi import (
    BOOT_CMD_LINE_PTR,
    BOOT_E820_ENTRIES,
    BOOT_E820_MAP,
    BOOT_HARDWARE_SUBARCH,
    BOOT_LOADFLAGS,
    BOOT_PROTOCOL_VERSION,
    BOOT_RAMDISK_IMAGE,
    BOOT_RAMDISK_SIZE,
    BOOT_TYPE_OF_LOADER,
    BOOT_VERSION,
    COMMAND_LINE_ADDR,
    COMMAND_LINE_MAX,
    DEVICE_PAGES_MAX,
    E820_RAM,
    HARDWARE_SUBARCH_LGUEST,
    HOST_RESERVED_MEM,
    KEEP_SEGMENTS,
    LHREQ_INITIALIZE,
    PAGE_OFFSET,
    PAGE_SIZE,
    PTE_PRESENT,
    PTE_RW,
    PTE_USER,
)

MB = 1 << 20
PTRS_PER_PTE = 1024
BOOT_PAGE_FLAGS = PTE_PRESENT | PTE_RW | PTE_USER  # 2.6.24's PAGE_PRESENT: 7
TYPE_OF_LOADER_UNKNOWN = 0xFF  # what the launcher tells the guest about itself with an initrd
# The boot structures at the bottom of memory: the zero page, then the command line page.
BOOT_AREA_END = COMMAND_LINE_ADDR + PAGE_SIZE

VMALLOC_RESERVE = 128 * MB  # 2.6.24 i386's __VMALLOC_RESERVE, with no vmalloc= option
# The top of a no-HIGHMEM 2.6.24 guest's low memory (892 MB): an initrd must end below it.
LOWMEM_TOP = (1 << 32) - HOST_RESERVED_MEM - PAGE_OFFSET - VMALLOC_RESERVE

MIN_MEM_MB = 1
# The guest maps all of its memory (and the device pages) at PAGE_OFFSET, below the Host's top 4 MB.
MAX_MEM_MB = ((1 << 32) - HOST_RESERVED_MEM - PAGE_OFFSET - DEVICE_PAGES_MAX * PAGE_SIZE) >> 20


def page_align(size: int) -> int:
    return (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def host_address(memory: mmap.mmap) -> int:
    """The launcher's virtual address of the first byte of ``memory`` (the INITIALIZE ``base``)."""
    anchor = ctypes.c_char.from_buffer(memory)
    try:
        return ctypes.addressof(anchor)
    finally:
        del anchor  # an exported buffer would keep memory.close() from working


class PreparedGuest(Closing):
    """Guest memory, laid out and ready for INITIALIZE.

    ``memory``: the shared mapping, guest-physical 0 to ``mem + 256 pages`` (``memory[p]`` is the
    byte at guest-physical ``p``).  ``base``: its address in this process.  ``mem``: bytes of RAM.
    ``pgdir``, ``entry``: the INITIALIZE values.  ``limit``: ``mem`` plus the device pages handed
    out so far (2.6.24's ``guest_limit``); ``pfnlimit`` is that in pages.
    """

    def __init__(self, memory: mmap.mmap, mem: int, pgdir: int, kernel: KernelImage) -> None:
        self.memory = memory
        self.base = host_address(memory)
        self.mem = mem
        self.pgdir = pgdir
        self.entry = kernel.entry
        self.image = kernel
        self.limit = mem

    @property
    def pfnlimit(self) -> int:
        return self.limit // PAGE_SIZE

    def add_device_pages(self, count: int = 1) -> int:
        """Hand out ``count`` zeroed pages above RAM; returns their guest-physical address.

        Call before INITIALIZE: the node learns ``pfnlimit`` only then.  The first page handed
        out (at ``mem``) is the device page; each 2.6.24 virtqueue takes 2 more.
        """
        if count < 1:
            raise ValueError(f"device page count must be positive, not {count}")
        if self.limit + count * PAGE_SIZE > self.mem + DEVICE_PAGES_MAX * PAGE_SIZE:
            raise LaunchError(
                f"too many devices: they need more than the {DEVICE_PAGES_MAX} device pages"
            )
        address = self.limit
        self.limit += count * PAGE_SIZE
        return address

    def initialize_args(self) -> tuple[int, int, int, int]:
        """INITIALIZE's four words: base, pfnlimit (device pages included), pgdir, start."""
        return (self.base, self.pfnlimit, self.pgdir, self.entry)

    def initialize_request(self) -> bytes:
        """The INITIALIZE write, in this process's words: ``{0, base, pfnlimit, pgdir, entry}``."""
        return pack_words(LHREQ_INITIALIZE, *self.initialize_args())

    def read(self, address: int, length: int) -> bytes:
        """Bytes at a guest-physical address (for tests and devices; bounds are the caller's)."""
        return self.memory[address : address + length]

    def write(self, address: int, data: bytes) -> None:
        self.memory[address : address + len(data)] = data

    def close(self) -> None:
        """Unmap the memory (idempotent).  The daemon keeps its own mapping while it needs one."""
        if not self.memory.closed:
            self.memory.close()


def prepare_guest(
    mem_mb: int, kernel: Path, cmdline: list[str], initrd: Path | None = None
) -> PreparedGuest:
    """Create ``mem_mb`` MB of shared guest memory, load ``kernel`` (and ``initrd``), build the boot
    page tables, the zero page and the command line (spec 8).  Raises ``LaunchError``."""
    if not MIN_MEM_MB <= mem_mb <= MAX_MEM_MB:
        side = "too small" if mem_mb < MIN_MEM_MB else "too large"
        raise LaunchError(
            f"guest memory of {mem_mb} MB is {side}: give {MIN_MEM_MB} to {MAX_MEM_MB} MB"
        )
    mem = mem_mb * MB
    command_line = _command_line(cmdline)
    image = read_kernel(kernel)
    initrd_data = _read_initrd(initrd) if initrd is not None else None
    initrd_size = page_align(len(initrd_data)) if initrd_data is not None else 0
    pte_pages = (mem // PAGE_SIZE + PTRS_PER_PTE - 1) // PTRS_PER_PTE
    if mem <= LOWMEM_TOP:  # the initrd at the top, the tables below it
        initrd_start = mem - initrd_size
        pgdir = initrd_start - PAGE_SIZE
    else:  # the tables at the top, the initrd below the kernel's low-memory limit
        initrd_start = LOWMEM_TOP - initrd_size
        pgdir = mem - PAGE_SIZE
    tables = pgdir - pte_pages * PAGE_SIZE
    lowest = min(tables, initrd_start)
    if lowest < BOOT_AREA_END:
        raise LaunchError(
            f"guest memory of {mem_mb} MB is too small for the "
            f"{'initrd, ' if initrd_size else ''}page tables and boot pages"
        )
    _check_segments(kernel, image, mem, lowest)

    memory = _shared_memory(mem + DEVICE_PAGES_MAX * PAGE_SIZE)
    try:
        for segment in image.segments:
            memory[segment.paddr : segment.paddr + len(segment.data)] = segment.data
        if initrd_data is not None:
            memory[initrd_start : initrd_start + len(initrd_data)] = initrd_data
        _write_page_tables(memory, mem, pgdir, tables)
        initrd_place = (initrd_start, initrd_size) if initrd_data is not None else None
        _write_zero_page(memory, mem, initrd_place)
        memory[COMMAND_LINE_ADDR : COMMAND_LINE_ADDR + len(command_line)] = command_line
        return PreparedGuest(memory, mem, pgdir, image)
    except BaseException:
        memory.close()
        raise


def _command_line(args: list[str]) -> bytes:
    """2.6.24's concatenation: every argument followed by a space, then a NUL."""
    line = "".join(arg + " " for arg in args).encode()
    if b"\0" in line:
        raise LaunchError("guest arguments cannot contain a NUL byte")
    if len(line) + 1 > COMMAND_LINE_MAX:
        raise LaunchError(
            f"guest command line is {len(line)} bytes; the guest reads at most "
            f"{COMMAND_LINE_MAX - 1} and a NUL"
        )
    return line + b"\0"


def _read_initrd(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise LaunchError(f"{path}: no such initrd file") from None
    except OSError as error:
        raise LaunchError(f"{path}: cannot read the initrd: {error.strerror}") from None


def _check_segments(path: Path, image: KernelImage, mem: int, tables: int) -> None:
    """Every segment inside RAM, clear of the boot pages below and the tables/initrd above
    (``tables``: the lowest of them)."""
    for segment in image.segments:
        where = f"{segment.name} at {segment.paddr:#x}-{segment.end - 1:#x}"
        if segment.end > mem:
            raise LaunchError(
                f"{path}: {image.kind} {where} lies outside guest memory (0x0-{mem - 1:#x}); "
                "the guest is larger than memory"
            )
        if segment.paddr < BOOT_AREA_END:
            raise LaunchError(
                f"{path}: {image.kind} {where} overlaps the zero page and command line "
                f"(0x0-{BOOT_AREA_END - 1:#x})"
            )
        if segment.end > tables:
            raise LaunchError(
                f"{path}: {image.kind} {where} overlaps the page tables and initrd "
                f"(from {tables:#x}): the guest is larger than memory; give more MB"
            )


def _shared_memory(size: int) -> mmap.mmap:
    """Zeroed memory the daemon can map too: a memfd, mapped shared (the fd itself is not kept)."""
    fd = os.memfd_create("lguest-guest-memory", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        return mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError as error:
        raise LaunchError(f"cannot create {size >> 20} MB of guest memory: {error}") from None
    finally:
        os.close(fd)


def _write_page_tables(memory: mmap.mmap, mem: int, pgdir: int, tables: int) -> None:
    """PTE i maps page i (flags 7); PDE k points at the k-th PTE page.  No high alias: the guest
    copies its PDEs to 0xC0000000 itself."""
    pages = mem // PAGE_SIZE
    memory[tables : tables + pages * 4] = struct.pack(
        f"<{pages}I", *range(BOOT_PAGE_FLAGS, mem, PAGE_SIZE)
    )
    pte_pages = (pages + PTRS_PER_PTE - 1) // PTRS_PER_PTE
    memory[pgdir : pgdir + pte_pages * 4] = struct.pack(
        f"<{pte_pages}I",
        *(tables + k * PAGE_SIZE | BOOT_PAGE_FLAGS for k in range(pte_pages)),
    )


def _write_zero_page(memory: mmap.mmap, mem: int, initrd: tuple[int, int] | None) -> None:
    """boot_params at 0: one e820 RAM entry, boot protocol 2.07, KEEP_SEGMENTS (the guest can't
    lgdt at privilege level 1), the command line pointer and "I am lguest" (subarch 1); and the
    initrd's (start, page-aligned size) if there is one."""
    memory[BOOT_E820_ENTRIES] = 1
    struct.pack_into("<QQI", memory, BOOT_E820_MAP, 0, mem, E820_RAM)
    struct.pack_into("<H", memory, BOOT_VERSION, BOOT_PROTOCOL_VERSION)
    memory[BOOT_LOADFLAGS] |= KEEP_SEGMENTS
    struct.pack_into("<I", memory, BOOT_CMD_LINE_PTR, COMMAND_LINE_ADDR)
    struct.pack_into("<I", memory, BOOT_HARDWARE_SUBARCH, HARDWARE_SUBARCH_LGUEST)
    if initrd is not None:
        struct.pack_into("<I", memory, BOOT_RAMDISK_IMAGE, initrd[0])
        struct.pack_into("<I", memory, BOOT_RAMDISK_SIZE, initrd[1])
        memory[BOOT_TYPE_OF_LOADER] = TYPE_OF_LOADER_UNKNOWN
