"""Talking to the node: finding it, and the words every request is made of (spec 1).

The launcher reaches the daemon only through a file: ``MOUNT/lguest`` on a mounted lguestfs (or a
real ``/dev/lguest``), with ``os.open``, ``os.read`` and ``os.write``.  A request is an array of
the caller's ``unsigned long``: 8 bytes in this 64-bit Python, 4 in a 32-bit process.  The daemon
learns which from the caller, so we simply write native words.

Where a mounted lguestfs is and what its files are called is ``lguestfs.node``, part of the
interface like ``lguestfs.abi``: its ``guests/<pid>/waker`` is the handle a waker must use on this
kernel (see ``launcher.waker``).
"""

import os
import struct
from pathlib import Path

from lguestfs import node
from lguestfs.abi import LHREQ_BREAK, LHREQ_IRQ

WORD = "L"  # C unsigned long, native size: what the kernel (and the daemon) read per word
WORD_BYTES = struct.calcsize(WORD)
REAL_DEVICE = Path("/dev/lguest")


def pack_words(*words: int) -> bytes:
    """A request as the node reads it: native unsigned longs (``{3, 1}`` is BREAK 1)."""
    return struct.pack(f"@{len(words)}{WORD}", *words)


def unpack_word(data: bytes) -> int:
    """The one word a notify read returns (the guest's NOTIFY address)."""
    (word,) = struct.unpack(f"@{WORD}", data[:WORD_BYTES])
    return int(word)


def default_device() -> Path:
    """The node of the first mounted lguestfs that answers, else the 2.6.24 character device.

    A mount whose daemon died stays in the mount table ("Transport endpoint is not connected"):
    it is passed over."""
    for mount in node.lguestfs_mounts():
        if node.reachable(mount / node.NODE_NAME):
            return mount / node.NODE_NAME
    return REAL_DEVICE


def waker_path(device: Path, pid: int) -> Path | None:
    """Where guest ``pid``'s waker handle lives next to ``device``, or None for a real /dev/lguest.

    A real character device has no ``guests/`` directory: there, as in 2.6.24, a waker may share
    the launcher's file descriptor.  On lguestfs it must not (the kernel would deadlock it).
    """
    mount = device.parent
    return node.waker_path(mount, pid) if (mount / node.GUESTS_NAME).is_dir() else None


def write_break(fd: int, value: int) -> None:
    """BREAK: nonzero breaks the owner out and blocks until released; 0 releases every breaker."""
    os.write(fd, pack_words(LHREQ_BREAK, value))


def write_irq(fd: int, irq: int) -> int:
    """IRQ: make guest interrupt ``irq`` pending; returns what the write returned (0 is right)."""
    return os.write(fd, pack_words(LHREQ_IRQ, irq))
