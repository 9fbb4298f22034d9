"""The node as seen from outside: its names, its mount's file-system name, the mount table.

Everything a program other than the daemon needs to find a mounted lguestfs and the files in it,
in one place: the launcher, ``lguest-waker``, the tests, ``scripts/run`` and the bench read it
here, and the daemon names its files and mounts itself with the same constants.  Like ``abi``, it
is part of the interface: the launcher may import ``lguestfs.abi`` and this module, and nothing
else of ``lguestfs``.  So it holds constants and pure functions only, and imports nothing of the
daemon (no pyfuse3, no trio, no Unicorn).

The tree a mount shows::

    MOUNT/lguest                the node (2.6.24's /dev/lguest)
    MOUNT/guests/<pid>/waker    a non-owner handle on the guest of launcher <pid>: BREAK only
    MOUNT/guests/<pid>/status   that guest's state and counters, as text

A process that initialises a second guest while its first one lives gets ``guests/<pid>.2``
(then ``.3``, ...).

The mount table: ``/proc/self/mountinfo`` lists every mount this process can see, one per line,
with the mount point in field 5 and, after a lone ``-``, the file-system type and the source.
lguestfs mounts with source ``lguestfs`` and type ``fuse.lguestfs``.  The kernel writes a space,
tab, newline or backslash inside a path as a backslash and three octal digits (``\\040``); the
parser turns them back into bytes before decoding the path as the file system does
(``os.fsdecode``), so a mount point with a space or a non-UTF-8 byte in it is found too.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

FSNAME: Final = "lguestfs"  # the mount's source in the mount table, and its FUSE subtype
NODE_NAME: Final = "lguest"
GUESTS_NAME: Final = "guests"
WAKER_NAME: Final = "waker"
STATUS_NAME: Final = "status"
MOUNT_TABLE: Final = Path("/proc/self/mountinfo")

_OCTAL_ESCAPE = re.compile(rb"\\([0-7]{3})")


def guest_name(pid: int, serial: int = 1) -> str:
    """The directory under ``guests/`` of launcher ``pid``'s ``serial``-th live guest."""
    return str(pid) if serial == 1 else f"{pid}.{serial}"


def guest_dir(mountpoint: Path, pid: int | str) -> Path:
    """``MOUNT/guests/<pid>``; ``pid`` may also be a directory name such as ``"123.2"``."""
    return mountpoint / GUESTS_NAME / str(pid)


def waker_path(mountpoint: Path, pid: int | str) -> Path:
    """``MOUNT/guests/<pid>/waker``: where a waker of that guest opens its own handle."""
    return guest_dir(mountpoint, pid) / WAKER_NAME


def status_path(mountpoint: Path, pid: int | str) -> Path:
    """``MOUNT/guests/<pid>/status``."""
    return guest_dir(mountpoint, pid) / STATUS_NAME


@dataclass(frozen=True)
class MountEntry:
    """One line of the mount table."""

    point: Path
    fstype: str  # "fuse.lguestfs", "fuse", "ext4", ...
    source: str  # lguestfs's fsname, or a device, or whatever the mounter said

    @property
    def is_fuse(self) -> bool:
        return self.fstype.split(".")[0] in ("fuse", "fuseblk")  # "fuse.<subtype>" too

    @property
    def is_lguestfs(self) -> bool:
        return self.source == FSNAME and self.is_fuse


def unescape(field: bytes) -> str:
    """A mount-table field as the path it names: octal escapes undone, decoded like a path."""
    return os.fsdecode(_OCTAL_ESCAPE.sub(lambda match: bytes([int(match[1], 8)]), field))


def parse_mount_table(text: bytes) -> list[MountEntry]:
    """The entries of a ``mountinfo`` text, in mount order."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if b"-" not in fields:
            continue
        rest = fields[fields.index(b"-") + 1 :]
        if len(fields) < 5 or len(rest) < 2:
            continue
        entries.append(MountEntry(Path(unescape(fields[4])), unescape(rest[0]), unescape(rest[1])))
    return entries


def mount_table() -> list[MountEntry]:
    """Every mount this process sees (reading it never touches a mount, not even a dead one)."""
    return parse_mount_table(MOUNT_TABLE.read_bytes())


def is_mounted(path: os.PathLike[str] | str) -> bool:
    """Is there a mount, live or dead, at ``path`` (an absolute path)?"""
    point = Path(path)
    return any(entry.point == point for entry in mount_table())


def lguestfs_mounts() -> list[Path]:
    """Mount points of every lguestfs this process sees, in mount order (none without /proc)."""
    try:
        return [entry.point for entry in mount_table() if entry.is_lguestfs]
    except OSError:
        return []


def reachable(path: Path) -> bool:
    """Like ``Path.exists``, but a dead mount (ENOTCONN) just means "not there"."""
    try:
        os.stat(path)
    except OSError:
        return False
    return True
