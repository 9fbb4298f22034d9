"""Running the daemon from another program: ``lguestfs MOUNTPOINT`` as a subprocess, always undone.

The tests, ``scripts/run`` and the bench all need a live mount for a while and none afterwards,
however their work ends.  :func:`mounted` is the one way they get it::

    with mounted(Path("/tmp/x/mnt"), Path("/tmp/x/lguestfs.log")) as mount:
        fd = os.open(mount.node, os.O_RDWR)         # MOUNT/lguest
        ... mount.waker(pid), mount.status(pid) ...  # MOUNT/guests/<pid>/...

It creates the mount point if it is missing, starts ``python -m lguestfs MOUNTPOINT [ARGS]`` (the
very ``lguestfs`` this process imported, under this Python) in a session of its own, so that a
terminal's Ctrl-C reaches only the caller, with its stdout and stderr in ``log_path``, and waits
until the node answers.  However the block ends, the daemon gets SIGTERM (it stops its guests and
unmounts), then, if it is stuck, SIGUSR1 (every thread's stack to its log) and SIGKILL; a mount it
left behind is detached with ``fusermount3 -u -z``.  Afterwards ``mount.exit_status`` and
``mount.left_mounted`` say how it went, for callers that check (the tests do).

This is the daemon seen from outside, not the daemon: it imports neither pyfuse3 nor trio nor the
daemon's modules, only ``lguestfs.node`` for the names and the mount table.  The launcher does not
use it (a launcher finds a mount; it never makes one).
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lguestfs import node

START_TIMEOUT = 15.0  # seconds for the daemon to mount (a cold import of pyfuse3/trio/unicorn)
STOP_TIMEOUT = 10.0  # seconds for it to stop its guests and unmount after SIGTERM
STACKS_GRACE = 0.5  # seconds a stuck daemon gets to write its threads' stacks before SIGKILL
POLL = 0.02
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # where this lguestfs is imported from


class MountFailed(RuntimeError):
    """The daemon did not mount; ``str()`` says why and holds its log."""


class Mount:
    """A running daemon: ``path`` (the mount point), ``node`` (``path/lguest``), ``guests``.

    Path-like: ``Path(mount) / "lguest"`` and ``mount / "lguest"`` both work."""

    def __init__(self, path: Path, process: "subprocess.Popen[bytes]", log_path: Path) -> None:
        self.path = path
        self.node = path / node.NODE_NAME
        self.guests = path / node.GUESTS_NAME
        self.process = process
        self.log_path = log_path
        self.crashed = False  # crash() was called: a non-zero exit is expected
        self.exit_status: int | None = None  # after the block: None if it had to be killed
        self.left_mounted = False  # after the block: the daemon did not unmount by itself

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __repr__(self) -> str:
        return f"Mount({self.path})"

    def log(self) -> str:
        """Everything the daemon has logged so far."""
        return self.log_path.read_text(errors="replace")

    def waker(self, pid: int | str) -> Path:
        return node.waker_path(self.path, pid)

    def status(self, pid: int | str) -> str:
        return node.status_path(self.path, pid).read_text()

    def crash(self) -> None:
        """SIGKILL the daemon on purpose: its mount point is left dead, as after a crash."""
        self.crashed = True
        self.process.kill()
        self.process.wait()

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int | None:
        """Signal the daemon and wait for it; its exit status, or None if it had to be killed."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGUSR1)  # stuck: every thread's stack to the log
            time.sleep(STACKS_GRACE)
            self.process.kill()
            self.process.wait()
            return None


def detach(path: Path) -> None:
    """Lazily unmount whatever is at ``path`` (live or dead); nothing if nothing is."""
    if node.is_mounted(path):
        subprocess.run(["fusermount3", "-u", "-z", str(path)], capture_output=True, check=False)


def start(path: Path, log_path: Path, *args: str) -> Mount:
    """Start the daemon on ``path`` and wait until its node answers; MountFailed if it does not."""
    python_path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "lguestfs", str(path), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=python_path),
            cwd=PACKAGE_ROOT,  # ``-m`` looks in the working directory first: make it ours
            start_new_session=True,  # a terminal's Ctrl-C is the caller's to pass on, not ours
        )
    mount = Mount(path, process, log_path)
    try:
        _wait_until_mounted(mount)
    except BaseException as error:
        mount.stop()
        detach(path)
        if isinstance(error, MountFailed):  # after stop(): the log is complete now
            raise MountFailed(f"{error}; its log:\n{mount.log().strip()}") from None
        raise
    return mount


def _wait_until_mounted(mount: Mount) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not (node.is_mounted(mount.path) and node.reachable(mount.node)):
        status = mount.process.poll()
        if status is not None:
            raise MountFailed(f"lguestfs exited ({status}) before mounting {mount.path}")
        if time.monotonic() > deadline:
            raise MountFailed(f"lguestfs did not mount {mount.path} within {START_TIMEOUT} s")
        time.sleep(POLL)


@contextmanager
def mounted(path: Path, log_path: Path, *args: str) -> Iterator[Mount]:
    """Mount lguestfs on ``path`` for the ``with`` block, then stop it and unmount, always."""
    if not node.is_mounted(path):  # a dead mount point cannot even be stat()ed
        path.mkdir(parents=True, exist_ok=True)
    mount = start(path, log_path, *args)
    try:
        yield mount
    finally:
        mount.exit_status = mount.stop()
        mount.left_mounted = node.is_mounted(path)
        detach(path)
