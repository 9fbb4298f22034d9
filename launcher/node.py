"""Talking to the node: finding it, and the words every request is made of (spec 1).

The launcher reaches the daemon only through a file: ``MOUNT/lguest`` on a mounted lguestfs (or a
real ``/dev/lguest``), with ``os.open``, ``os.read`` and ``os.write``.  A request is an array of
the caller's ``unsigned long``: 8 bytes in this 64-bit Python, 4 in a 32-bit process.  The daemon
learns which from the caller, so we simply write native words.

A mounted lguestfs shows up in ``/proc/mounts`` with the file-system name ``lguestfs``; its
``guests/<pid>/waker`` is the handle a waker must use on this kernel (see ``launcher.waker``).
"""

import os
import re
import struct
from pathlib import Path

from lguestfs.abi import LHREQ_BREAK, LHREQ_IRQ

WORD = "L"  # C unsigned long, native size: what the kernel (and the daemon) read per word
WORD_BYTES = struct.calcsize(WORD)
REAL_DEVICE = Path("/dev/lguest")
FSNAME = "lguestfs"  # the daemon mounts with this fsname
NODE_NAME = "lguest"


def pack_words(*words: int) -> bytes:
    """A request as the node reads it: native unsigned longs (``{3, 1}`` is BREAK 1)."""
    return struct.pack(f"@{len(words)}{WORD}", *words)


def unpack_word(data: bytes) -> int:
    """The one word a notify read returns (the guest's NOTIFY address)."""
    (word,) = struct.unpack(f"@{WORD}", data[:WORD_BYTES])
    return int(word)


# /proc/mounts writes space, tab, newline and backslash in paths as octal escapes: \040.
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(match: re.Match[str]) -> str:
    return chr(int(match.group(1), 8))


def mounted_lguestfs() -> list[Path]:
    """Mount points of every lguestfs in ``/proc/mounts``, in mount order."""
    found = []
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) >= 3 and fields[0] == FSNAME and fields[2].startswith("fuse"):
                    found.append(Path(_OCTAL_ESCAPE.sub(_unescape, fields[1])))
    except OSError:
        pass
    return found


def default_device() -> Path:
    """The node of the first mounted lguestfs that answers, else the 2.6.24 character device.

    A mount whose daemon died stays in /proc/mounts ("Transport endpoint is not connected"):
    it is passed over."""
    for mount in mounted_lguestfs():
        if reachable(mount / NODE_NAME):
            return mount / NODE_NAME
    return REAL_DEVICE


def reachable(path: Path) -> bool:
    """Like ``Path.exists``, but a dead mount (ENOTCONN) just means "not there"."""
    try:
        os.stat(path)
    except OSError:
        return False
    return True


def waker_path(device: Path, pid: int) -> Path | None:
    """Where guest ``pid``'s waker handle lives next to ``device``, or None for a real /dev/lguest.

    A real character device has no ``guests/`` directory: there, as in 2.6.24, a waker may share
    the launcher's file descriptor.  On lguestfs it must not (the kernel would deadlock it).
    """
    guests = device.parent / "guests"
    return guests / str(pid) / "waker" if guests.is_dir() else None


def write_break(fd: int, value: int) -> None:
    """BREAK: nonzero breaks the owner out and blocks until released; 0 releases every breaker."""
    os.write(fd, pack_words(LHREQ_BREAK, value))


def write_irq(fd: int, irq: int) -> int:
    """IRQ: make guest interrupt ``irq`` pending; returns what the write returned (0 is right)."""
    return os.write(fd, pack_words(LHREQ_IRQ, irq))
