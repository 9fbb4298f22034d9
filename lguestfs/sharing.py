"""Mapping the launcher's guest memory into the daemon, page for page, without a copy.

In 2.6.24 the Host simply used the launcher's address space: guest-physical P was the launcher's
address ``base + P``, reached with ``copy_from_user``.  A FUSE daemon lives in another address
space, so at INITIALIZE it maps *the same pages* into its own: it finds the mapping that covers
``[base, base + pfnlimit * 4096)`` in ``/proc/<pid>/maps``, opens the object behind it through
``/proc/<pid>/map_files/<start>-<end>`` (root only: the kernel asks for CAP_SYS_ADMIN or
CAP_CHECKPOINT_RESTORE), and maps that object ``MAP_SHARED`` at the right offset.  From then on a
byte the launcher writes is a byte the guest reads, and the other way round, at once.

This only works for memory that *is* shared: a memfd, a file in /dev/shm or elsewhere, or
``MAP_SHARED|MAP_ANONYMOUS``, mapped readable and writable, one object from ``base`` to the limit.
A private mapping has no pages the daemon could share (writes would go to copies), so it is
refused, as is a range with holes; the node answers EFAULT and the reason goes to the log.

Path: launcher -> node -> handle (``protocol``: INITIALIZE) -> **sharing** -> ``GuestMemory``.
"""

import errno
import mmap
import os
from dataclasses import dataclass

from lguestfs.abi import PAGE_SIZE


class SharingError(Exception):
    """The range cannot be shared with the daemon; ``str()`` says why (for the log)."""


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


def mappings_covering(proc_dir: int, start: int, end: int) -> list[Mapping]:
    """The launcher's mappings that overlap ``[start, end)``, in address order."""
    fd = os.open("maps", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_dir)
    with os.fdopen(fd, encoding="utf-8", errors="replace") as maps:
        found = []
        for line in maps:
            mapping = Mapping.parse(line)
            if mapping.end > start and mapping.start < end:
                found.append(mapping)
    return found


def check_shareable(pieces: list[Mapping], start: int, end: int) -> None:
    """Raise SharingError unless ``pieces`` cover ``[start, end)`` with one shared object."""
    if not pieces or pieces[0].start > start:
        raise SharingError(f"{start:#x} is not mapped in the launcher")
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
    cannot be shared and MemoryError when the daemon cannot map that much.
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
