"""Mapping the launcher's guest memory into the daemon, page for page, without a copy.

In 2.6.24 the Host simply used the launcher's address space: guest-physical P was the launcher's
address ``base + P``, reached with ``copy_from_user``.  A FUSE daemon lives in another address
space, so at INITIALIZE it maps *the same pages* into its own: it finds the mapping that covers
``[base, base + pfnlimit * 4096)`` in ``/proc/<pid>/maps``, opens the object behind it through
``/proc/<pid>/map_files/<start>-<end>`` (root only: the kernel asks for CAP_SYS_ADMIN or
CAP_CHECKPOINT_RESTORE), and maps that object ``MAP_SHARED`` at the right offset.  From then on a
byte the launcher writes is a byte the guest reads, and the other way round, at once.

This only works for memory that *is* shared: a memfd, a file in /dev/shm, or
``MAP_SHARED|MAP_ANONYMOUS``, mapped readable and writable, one object from ``base`` to the limit.
A private mapping has no pages the daemon could share (writes would go to copies): a range that
is all private, readable and writable memory (2.6.24's launcher: ``/dev/zero`` and the kernel
file, ``MAP_PRIVATE``) raises :class:`PrivateMemoryError`, and a 32-bit launcher's is adopted
(``adopt``); anything else is refused, as is a range with holes: the node answers EFAULT and the
reason goes to the log.

The object must also live in shmem (``fstatfs`` says ``TMPFS_MAGIC``: all three kinds above do).
A page fault on a file elsewhere can block for as long as its file system likes (an ext4 frozen
with FIFREEZE, a FUSE file served by the launcher itself, NFS), and the daemon's thread that
takes it may hold Python's interpreter lock: every guest would stop.  Shmem pages are in memory
or swap; tmpfs cannot be frozen (FIFREEZE answers EOPNOTSUPP).  A launcher that shrinks the object
later is ``memory``'s business (its pages turn to zeros and the guest dies).

Path: launcher -> node -> handle (``protocol``: INITIALIZE) -> **sharing** -> ``GuestMemory``.
"""

import bisect
import ctypes
import errno
import mmap
import os
from dataclasses import dataclass

from lguestfs.abi import PAGE_SIZE

MAPS_CHUNK = 1 << 20  # bytes per read of /proc/<pid>/maps
TMPFS_MAGIC = 0x01021994  # statfs.f_type of shmem: memfd, /dev/shm, shared anonymous memory
_libc = ctypes.CDLL(None, use_errno=True)


class _Statfs(ctypes.Structure):
    """``struct statfs``: only ``f_type`` (the first field) is read; the rest is room."""

    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 256)]


def filesystem_type(fd: int) -> int:
    """``fstatfs(fd).f_type``: which kind of file system holds the open object."""
    found = _Statfs()
    if _libc.fstatfs(fd, ctypes.byref(found)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    kind: int = found.f_type & 0xFFFFFFFF
    return kind


class SharingError(Exception):
    """The range cannot be shared with the daemon; ``str()`` says why (for the log)."""


class PrivateMemoryError(SharingError):
    """The range is private memory, readable and writable, without holes: it may be adopted.
    ``prot``: the ``PROT_*`` bits its mappings have in common."""

    def __init__(self, why: str, prot: int) -> None:
        super().__init__(why)
        self.prot = prot


@dataclass(frozen=True)
class Mapping:
    """One line of ``/proc/<pid>/maps``."""

    start: int
    end: int
    perms: str
    offset: int
    device: str
    inode: int
    name: str

    @classmethod
    def parse(cls, line: str) -> "Mapping":
        fields = line.split(maxsplit=5)
        start, end = (int(part, 16) for part in fields[0].split("-"))
        name = fields[5].strip() if len(fields) > 5 else ""
        return cls(start, end, fields[1], int(fields[2], 16), fields[3], int(fields[4]), name)

    def describe(self) -> str:
        return f"{self.start:#x}-{self.end:#x} {self.perms} {self.name or '[anonymous]'}"


def _end_of(line: bytes) -> int:
    """The end address of one line of ``/proc/<pid>/maps`` (``start-end perms ...``)."""
    return int(line[line.index(b"-") + 1 : line.index(b" ")], 16)


def mappings_covering(proc_dir: int, start: int, end: int) -> list[Mapping]:
    """The launcher's mappings that overlap ``[start, end)``, in address order.

    A launcher may have tens of thousands of mappings, and this runs while other guests want the
    interpreter lock: the file is read in large chunks (the kernel's work, without the lock),
    split in C, and only the lines around ``start`` are parsed, found by bisection (the file is
    in address order).  With 65,000 mappings, parsing every line took 0.45 s under the lock;
    this takes 0.08 s, of which ~0.01 s under the lock (measured here, 2 cores).
    """
    fd = os.open("maps", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_dir)
    try:
        chunks = []
        while chunk := os.read(fd, MAPS_CHUNK):
            chunks.append(chunk)
    finally:
        os.close(fd)
    lines = b"".join(chunks).splitlines()
    found = []
    for line in lines[bisect.bisect_right(lines, start, key=_end_of) :]:
        mapping = Mapping.parse(line.decode("utf-8", "replace"))
        if mapping.start >= end:
            break
        found.append(mapping)
    return found


def check_private(pieces: list[Mapping], start: int, end: int) -> None:
    """Raise PrivateMemoryError if ``pieces`` cover ``[start, end)`` with private read-write
    mappings and nothing else, without holes."""
    expected, prot = start, mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC
    for piece in pieces:
        if piece.start > expected or piece.perms[3] != "p" or piece.perms[:2] != "rw":
            return
        if piece.perms[2] != "x":
            prot &= ~mmap.PROT_EXEC
        expected = piece.end
    if expected >= end:
        raise PrivateMemoryError(f"private mapping {pieces[0].describe()}", prot)


def check_shareable(pieces: list[Mapping], start: int, end: int) -> None:
    """Raise SharingError unless ``pieces`` cover ``[start, end)`` with one shared object."""
    if not pieces or pieces[0].start > start:
        raise SharingError(f"{start:#x} is not mapped in the launcher")
    check_private(pieces, start, end)
    first = pieces[0]
    expected = first.start
    for piece in pieces:
        same_object = (piece.device, piece.inode) == (first.device, first.inode)
        in_line = piece.offset - first.offset == piece.start - first.start
        if piece.start != expected or not same_object or not in_line:
            break
        if piece.perms[3] != "s":
            raise SharingError(f"private mapping {piece.describe()}: use a memfd or MAP_SHARED")
        if piece.perms[:2] != "rw":
            raise SharingError(f"mapping not readable and writable: {piece.describe()}")
        expected = piece.end
    if expected < end:
        raise SharingError(
            f"the launcher's shared memory at {start:#x} ends at {expected:#x}, before {end:#x}"
        )


def share_launcher_memory(proc_dir: int, base: int, pfnlimit: int) -> mmap.mmap:
    """The launcher's pages ``[base, base + pfnlimit * 4096)``, mapped shared into this process.

    ``proc_dir`` is the pinned ``/proc/<pid>`` of the launcher.  Raises SharingError when the range
    cannot be shared (PrivateMemoryError when it is private memory that ``adopt`` may take over)
    and MemoryError when the daemon cannot map that much.
    """
    length = pfnlimit * PAGE_SIZE
    end = base + length
    if pfnlimit == 0:
        raise SharingError("pfnlimit is 0: no guest memory")
    if base % PAGE_SIZE:
        raise SharingError(f"base {base:#x} is not page aligned")
    if end > 1 << 64:
        raise SharingError(f"base {base:#x} + {pfnlimit:#x} pages wraps around")
    try:
        pieces = mappings_covering(proc_dir, base, end)
    except OSError as error:
        raise SharingError(f"cannot read the launcher's memory map: {error}") from error
    check_shareable(pieces, base, end)
    first = pieces[0]
    name = f"map_files/{first.start:x}-{first.end:x}"
    try:
        fd = os.open(name, os.O_RDWR | os.O_CLOEXEC, dir_fd=proc_dir)
    except OSError as error:
        raise SharingError(f"cannot open the launcher's {name}: {error}") from error
    try:
        kind = filesystem_type(fd)
        if kind != TMPFS_MAGIC:
            raise SharingError(
                f"{first.describe()} is not shmem (file system type {kind:#x}): a page fault "
                "on it could block the daemon; use a memfd, /dev/shm or MAP_SHARED|MAP_ANONYMOUS"
            )
        offset = first.offset + (base - first.start)
        protection = mmap.PROT_READ | mmap.PROT_WRITE
        return mmap.mmap(fd, length, mmap.MAP_SHARED, protection, offset=offset)
    except ValueError as error:  # the object is smaller than the range (it would SIGBUS)
        raise SharingError(f"{first.describe()}: {error}") from error
    except OSError as error:
        if error.errno == errno.ENOMEM:
            raise MemoryError(str(error)) from error
        raise SharingError(f"cannot map {first.describe()}: {error}") from error
    finally:
        os.close(fd)
