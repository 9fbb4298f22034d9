"""The lguestfs daemon a bench run measures: mounted in a temporary directory, always unmounted.

The daemon runs as it would for a user (``python -m lguestfs MOUNTPOINT``, in the foreground, in a
process of its own), not as the tests' ``tests.support.mount`` runs it: that one passes
``--debug``, and the logging of every request would be measured too.  Its log is kept in a file
beside the mount, and copied to ``build/`` if it reports an error.  On the way out it gets SIGTERM
(it stops its guests and unmounts); if the mount is still there afterwards, a lazy unmount
removes it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchlib.barefuse import unmount
from benchlib.report import progress
from tests.support.mount import is_mounted

MOUNT_TIMEOUT = 15.0
KEPT_LOG = Path(__file__).resolve().parents[2] / "build" / "bench-daemon.log"


@contextlib.contextmanager
def mounted_daemon() -> Iterator[tuple[Path, int]]:
    """Yield (mountpoint, daemon pid) of a freshly mounted lguestfs."""
    workdir = Path(tempfile.mkdtemp(prefix="lguestfs-bench-"))
    mountpoint = workdir / "mnt"
    mountpoint.mkdir()
    log_path = workdir / "daemon.log"
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "lguestfs", str(mountpoint)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
        )
    try:
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not is_mounted(mountpoint):
            if daemon.poll() is not None or time.monotonic() > deadline:
                said = log_path.read_text(errors="replace").strip().splitlines()
                raise RuntimeError(f"lguestfs did not mount: {said[-1] if said else 'no output'}")
            time.sleep(0.02)
        yield mountpoint, daemon.pid
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        unmount(mountpoint)
        mountpoint.rmdir()
        _keep_log_if_troubled(log_path)
        workdir.rmdir()


def _keep_log_if_troubled(log_path: Path) -> None:
    """A daemon that logged an error or a traceback keeps its log, in ``build/``, for its owner."""
    text = log_path.read_text(errors="replace")
    if "Traceback" in text or " ERROR" in text or " CRITICAL" in text:
        kept = KEPT_LOG
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(text)
        progress(f"the daemon logged errors during the run: see {kept}")
    log_path.unlink()
