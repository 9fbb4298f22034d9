"""The lguestfs daemon a bench run measures: mounted in a temporary directory, always unmounted.

The daemon is started by ``lguestfs.mounting`` (the helper the tests and ``scripts/run`` use), as
it would run for a user: without ``--debug``, which the tests pass, because the logging of every
request would be measured too.  Its log is kept in a file beside the mount, and copied to
``build/`` if it reports an error.  On the way out the helper stops it with SIGTERM (it stops its
guests and unmounts) and detaches a mount it left behind.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from benchlib.report import progress
from lguestfs.mounting import mounted

KEPT_LOG = Path(__file__).resolve().parents[2] / "build" / "bench-daemon.log"


@contextlib.contextmanager
def mounted_daemon() -> Iterator[tuple[Path, int]]:
    """Yield (mountpoint, daemon pid) of a freshly mounted lguestfs."""
    workdir = Path(tempfile.mkdtemp(prefix="lguestfs-bench-"))
    mountpoint = workdir / "mnt"
    log_path = workdir / "daemon.log"
    try:
        with mounted(mountpoint, log_path) as mount:
            yield mountpoint, mount.process.pid
    finally:
        if log_path.exists():
            _keep_log_if_troubled(log_path)
            log_path.unlink()
        if mountpoint.exists():
            mountpoint.rmdir()  # unmounted by now: an error here means it is not
        workdir.rmdir()


def _keep_log_if_troubled(log_path: Path) -> None:
    """A daemon that logged an error or a traceback keeps its log, in ``build/``, for its owner."""
    text = log_path.read_text(errors="replace")
    if "Traceback" in text or " ERROR" in text or " CRITICAL" in text:
        kept = KEPT_LOG
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(text)
        progress(f"the daemon logged errors during the run: see {kept}")
