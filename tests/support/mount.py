"""The one way tests mount lguestfs, and the one way they check it afterwards.

``tests/conftest.py`` turns :func:`mounted` into the ``mount`` fixture; use that::

    def test_something(mount):
        fd = os.open(mount.node, os.O_RDWR)          # MOUNT/lguest
        ... mount.waker(pid), mount.status(pid) ...  # MOUNT/guests/<pid>/...
        print(mount.log())                           # what the daemon said so far

:func:`mounted` runs the real daemon through ``lguestfs.mounting`` (the helper ``scripts/run`` and
the bench use too) with ``--debug``, on a directory created if missing, its log beside it.
However the test ends, the daemon gets SIGTERM (then SIGKILL) and the mount point is unmounted;
then the test fails if the daemon logged an internal error (a traceback, or a line saying
"internal error"), exited non-zero or left its mount behind.  On failure the daemon's log is
printed, so pytest shows it with the test's output.

A :class:`Mount` is path-like: ``Path(mount) / "lguest"`` and ``mount / "lguest"`` both work.
``mount.stop(signal.SIGINT)`` stops the daemon yourself (its exit status is returned);
``mount.crash()`` SIGKILLs it on purpose, leaving a dead mount point.  To share one daemon
between the tests of a module, wrap ``mounted()`` in a module-scoped fixture (as
``test_protocol_rows.py`` does).  A stuck daemon is asked for its threads' stacks (SIGUSR1)
before it is killed, so its log says where it hung.
"""

import itertools
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lguestfs import mounting
from lguestfs.mounting import Mount
from lguestfs.node import is_mounted

__all__ = ["REPO_ROOT", "Mount", "is_mounted", "mounted", "skip_reason"]

REPO_ROOT = Path(__file__).resolve().parents[2]
_daemons = itertools.count(1)  # numbers each daemon's log file
INTERNAL_ERROR_MARKS = ("Traceback (most recent call last)", "internal error")


def skip_reason() -> str | None:
    """Why mounting tests cannot run here, or None."""
    if os.geteuid() != 0:
        return (
            "lguestfs tests need root (the daemon maps launchers' memory via /proc/PID/map_files)"
        )
    if not os.path.exists("/dev/fuse"):
        return "lguestfs tests need /dev/fuse"
    if shutil.which("fusermount3") is None:
        return "lguestfs tests need fusermount3 (Debian package fuse3)"
    return None


def internal_errors(mount: Mount) -> list[str]:
    """The lines of the daemon's log that say something went wrong inside it."""
    return [
        line for line in mount.log().splitlines() if any(m in line for m in INTERNAL_ERROR_MARKS)
    ]


@contextmanager
def mounted(path: Path, *extra_args: str) -> Iterator[Mount]:
    """Mount lguestfs on ``path`` (created if missing) for the ``with`` block; always clean up."""
    log_path = path.parent / f"{path.name}.lguestfs-{next(_daemons)}.log"
    mount: Mount | None = None
    try:
        with mounting.mounted(path, log_path, "--debug", *extra_args) as mount:
            yield mount
    except BaseException:
        if mount is not None:
            print(f"--- lguestfs log ({mount.log_path}) ---\n{mount.log()}")
        raise
    status = mount.exit_status
    errors = internal_errors(mount)
    bad_exit = status != 0 and not mount.crashed
    if errors or mount.left_mounted or bad_exit:
        print(f"--- lguestfs log ({mount.log_path}) ---\n{mount.log()}")
    assert not mount.left_mounted, f"lguestfs left {path} mounted after SIGTERM"
    assert not bad_exit, f"lguestfs exited with {status} after SIGTERM"
    assert not errors, "lguestfs logged internal errors:\n" + "\n".join(errors)
