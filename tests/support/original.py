"""The 2.6.24 launcher (``launcher.guests.lguest_c``) as a test client: its build, ``/dev/lguest``.

``original_launcher()`` is the patched 32-bit ``lguest`` program (``patched=False``: as shipped),
built once into the cache, or a pytest skip saying where to put a 2.6.24 source tarball when
there is none; ``linux_booted()`` runs one to the Linux guest's shell.  The program opens
``/dev/lguest`` and its waker finds ``guests/<pid>/waker`` beside the file that links to, so
``dev_lguest(mount)`` makes ``/dev/lguest`` a symbolic link to ``MOUNT/lguest`` for a ``with``
block.  One machine has one ``/dev/lguest``: the link is taken under a lock (concurrent test
runs wait for each other); a symbolic link that was there is put back afterwards, even on
failure (unless a killed run of the suite left it), and anything else there (a real lguest
device, a file) is left alone and skips the test.
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from launcher.guests.cache import cache_dir
from launcher.guests.lguest_c import build_lguest_c
from launcher.guests.linux import WHERE_TO_PUT_SOURCE, LinuxBuild, copy_disk, find_source
from tests.support.launch import Launcher
from tests.support.linux import MEM_MB, PROMPT, linux_options
from tests.support.mount import Mount

LINUX_BOOT_TIMEOUT = 120.0  # seconds to the Linux guest's shell prompt
DEV_LGUEST = Path("/dev/lguest")
NODE_NAME = "lguest"  # MOUNT/lguest
PYTEST_TEMP = "/pytest-of-"  # in the path of every mount point the suite makes


def original_launcher(*, patched: bool = True) -> Path:
    """The 2.6.24 launcher, patched or as shipped, or skip when there is no source tarball."""
    if find_source() is None:
        pytest.skip(f"no Linux 2.6.24 source for the 2.6.24 launcher: {WHERE_TO_PUT_SOURCE}")
    return build_lguest_c(patched=patched)


@contextmanager
def dev_lguest(mount: Mount) -> Iterator[Path]:
    """``/dev/lguest`` -> ``MOUNT/lguest`` while the block runs; then what was there before."""
    lock_path = cache_dir() / "dev-lguest.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        previous = os.readlink(DEV_LGUEST) if DEV_LGUEST.is_symlink() else None
        if previous is None and os.path.lexists(DEV_LGUEST):
            pytest.skip(f"{DEV_LGUEST} exists and is not a symbolic link: left alone")
        if previous is not None:
            DEV_LGUEST.unlink()  # we hold the lock: no other run of the suite is using it
            if previous.endswith(f"/{NODE_NAME}") and PYTEST_TEMP in previous:
                previous = None  # a link a killed run of the suite left: not put back
        os.symlink(mount.node, DEV_LGUEST)
        try:
            yield DEV_LGUEST
        finally:
            DEV_LGUEST.unlink()
            if previous is not None:
                os.symlink(previous, DEV_LGUEST)


@contextmanager
def linux_booted(
    mount: Mount, program: Path, linux_build: LinuxBuild, scratch: Path
) -> Iterator[tuple[Launcher, Path]]:
    """``program`` (a 2.6.24 launcher) running Linux to its shell through ``/dev/lguest``, with a
    fresh copy of the disk in ``scratch``: (launcher, disk)."""
    disk = copy_disk(linux_build.disk_template, scratch / "disk.ext2")
    options = linux_options(linux_build, disk)
    with (
        dev_lguest(mount),
        Launcher(None, MEM_MB, linux_build.vmlinux, options=options, program=program) as launcher,
    ):
        launcher.expect(PROMPT, timeout=LINUX_BOOT_TIMEOUT)
        yield launcher, disk
