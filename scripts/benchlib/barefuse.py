"""The bare pyfuse3 reference: a FUSE file whose read returns at once, served the way lguestfs is.

The notify round trip through lguestfs costs one FUSE read per iteration plus whatever the daemon
adds to reach its guest and back.  Its fair reference is the same FUSE read against a daemon that
adds nothing: this one.  It uses the same stack as lguestfs (pyfuse3 + trio, in a process of its
own, the node a regular file opened with ``direct_io`` and ``nonseekable``), answers every read with
one 8-byte word at once, and accepts every write.

With a guest ELF (``mounted(guest=...)``) each read first runs the bench guest's hypercall loop
in a bare Unicorn, on trio's thread, up to its next hypercall: what a NOTIFY round trip costs
when the guest runs inside the read handler with nothing around it.  lguestfs runs the first
``RUN_HERE_FOR`` of each read the same way (longer runs go on on the guest's own thread, so a
guest never stalls other requests for long): this is the floor of that fast path.

Run as ``python -m benchlib.barefuse MOUNTPOINT [GUEST_ELF]``; ``mounted()`` starts it in a
temporary directory and always unmounts it and ends it, even when the bench fails.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lguestfs.node import is_mounted

NODE_NAME = b"node"
NODE_INODE = 2
WORD = b"\x00\x10\x00\x04\x00\x00\x00\x00"  # what a 64-bit launcher's notify read returns


def serve(mountpoint: str, guest_elf: str | None) -> None:
    """The reference daemon itself: one file, answered without a thread hop or a wait."""
    import pyfuse3
    import trio

    from benchlib.rawcpu import RawLoop

    guest = RawLoop(Path(guest_elf), "hypercall", hypercalls="stop") if guest_elf else None
    if guest is not None:
        guest.start_endless()

    class BareOperations(pyfuse3.Operations):
        async def getattr(self, inode: int, ctx: Any = None) -> Any:
            attrs = pyfuse3.EntryAttributes()
            attrs.st_ino = inode
            if inode == pyfuse3.ROOT_INODE:
                attrs.st_mode = stat.S_IFDIR | 0o755
                attrs.st_nlink = 2
            elif inode == NODE_INODE:
                attrs.st_mode = stat.S_IFREG | 0o600
                attrs.st_nlink = 1
            else:
                raise pyfuse3.FUSEError(errno.ENOENT)
            return attrs

        async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> Any:
            if parent_inode != pyfuse3.ROOT_INODE or name != NODE_NAME:
                raise pyfuse3.FUSEError(errno.ENOENT)
            return await self.getattr(NODE_INODE)

        async def open(self, inode: int, flags: int, ctx: Any) -> Any:
            if inode != NODE_INODE:
                raise pyfuse3.FUSEError(errno.EISDIR)
            return pyfuse3.FileInfo(fh=inode, direct_io=True, nonseekable=True)

        async def read(self, fh: int, off: int, size: int) -> bytes:
            if guest is not None:
                guest.run_to_next_hypercall()
            return WORD[:size]

        async def write(self, fh: int, off: int, buf: bytes) -> int:
            return len(buf)

        async def flush(self, fh: int) -> None:
            return None

        async def release(self, fh: int) -> None:
            return None

    options = set(pyfuse3.default_options)
    options.add("fsname=lguestfs-bench-bare")
    pyfuse3.init(BareOperations(), mountpoint, options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)


def unmount(mountpoint: Path) -> None:
    if is_mounted(mountpoint):
        done = subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True)
        if done.returncode != 0:
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True)


@contextlib.contextmanager
def mounted(guest: Path | None = None, timeout: float = 10.0) -> Iterator[Path]:
    """Mount the reference daemon in a temporary directory; yield the path of its file."""
    mountpoint = Path(tempfile.mkdtemp(prefix="lguestfs-bench-bare-"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchlib.barefuse",
            str(mountpoint),
            *([str(guest)] if guest else []),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while not is_mounted(mountpoint):
            if daemon.poll() is not None:
                raise RuntimeError(f"bare pyfuse3 daemon exited with {daemon.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("bare pyfuse3 daemon did not mount in time")
            time.sleep(0.01)
        yield mountpoint / NODE_NAME.decode()
    finally:
        unmount(mountpoint)  # a clean unmount ends pyfuse3.main(), and with it the daemon
        try:
            daemon.wait(timeout=5)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        unmount(mountpoint)
        mountpoint.rmdir()


def read_round_trip(node: Path, reads: int) -> float:
    """Seconds per read of one word from ``node``: the cost of one bare FUSE round trip."""
    fd = os.open(node, os.O_RDWR)
    try:
        for _ in range(min(reads, 1000)):  # warm the path first
            os.read(fd, 8)
        start = time.perf_counter()
        for _ in range(reads):
            os.read(fd, 8)
        return (time.perf_counter() - start) / reads
    finally:
        os.close(fd)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
