"""The one way tests mount lguestfs, and the one way they clean it up.

``tests/conftest.py`` turns :func:`mounted` into the ``mount`` fixture; use that::

    def test_something(mount):
        fd = os.open(mount.node, os.O_RDWR)          # MOUNT/lguest
        ... mount.guests / str(pid) / "waker" ...    # MOUNT/guests
        print(mount.log())                           # what the daemon said so far

:func:`mounted` starts the real daemon (``python -m lguestfs MOUNT --debug``) as a subprocess on
an empty directory, waits until the node answers, and yields a :class:`Mount`.  However the test
ends, the daemon gets SIGTERM (then SIGKILL), the mount point is unmounted (``fusermount3 -u -z``
if the daemon could not do it), and the test fails if the daemon logged an internal error (a
traceback, or a line saying "internal error") or left its mount behind.  On failure the
daemon's log is printed, so pytest shows it with the test's output.

A ``Mount`` is path-like: ``Path(mount) / "lguest"`` and ``mount / "lguest"`` both work.
``mount.stop(signal.SIGINT)`` stops the daemon yourself (its exit status is returned);
``mount.crash()`` SIGKILLs it on purpose, leaving a dead mount point.  To share one daemon
between the tests of a module, wrap ``mounted()`` in a module-scoped fixture (as
``test_protocol_rows.py`` does).  A stuck daemon is asked for its threads' stacks (SIGUSR1)
before it is killed, so its log says where it hung.
"""

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 15.0  # seconds for the daemon to mount (a cold import of pyfuse3/trio/unicorn)
STOP_TIMEOUT = 10.0
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


def is_mounted(path: Path) -> bool:
    """Is there a mount (live or dead) at ``path``?  Read from /proc: never touches the mount."""
    target = os.fsencode(path)
    with open("/proc/self/mountinfo", "rb") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].decode("unicode_escape").encode("latin-1")
            if point == target:
                return True
    return False


class Mount:
    """A mounted lguestfs: ``path`` (the mount point), ``node`` (``path/lguest``), ``guests``."""

    def __init__(self, path: Path, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.path = path
        self.node = path / "lguest"
        self.guests = path / "guests"
        self.process = process
        self.log_path = log_path
        self.crashed = False

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __repr__(self) -> str:
        return f"Mount({self.path})"

    def log(self) -> str:
        """Everything the daemon has logged so far."""
        return self.log_path.read_text(errors="replace")

    def waker(self, pid: int) -> Path:
        return self.guests / str(pid) / "waker"

    def status(self, pid: int) -> str:
        return (self.guests / str(pid) / "status").read_text()

    def internal_errors(self) -> list[str]:
        return [
            line for line in self.log().splitlines() if any(m in line for m in INTERNAL_ERROR_MARKS)
        ]

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
            time.sleep(0.5)
            self.process.kill()
            self.process.wait()
            return None


def _start(path: Path, log_path: Path, extra_args: tuple[str, ...]) -> Mount:
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    environment = dict(os.environ, PYTHONPATH=python_path)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "lguestfs", str(path), "--debug", *extra_args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=REPO_ROOT,
        )
    mount = Mount(path, process, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not (is_mounted(path) and _answers(mount.node)):
            if process.poll() is not None:
                raise RuntimeError(f"lguestfs exited ({process.returncode}) before mounting")
            if time.monotonic() > deadline:
                raise RuntimeError(f"lguestfs did not mount within {START_TIMEOUT} s")
            time.sleep(0.02)
    except BaseException as error:
        mount.stop()
        _force_unmount(path)
        error.add_note(f"--- lguestfs log ---\n{mount.log()}")
        raise
    return mount


def _answers(node: Path) -> bool:
    try:
        os.stat(node)
    except OSError:  # not there yet, or the dead mount a killed daemon left
        return False
    return True


def _force_unmount(path: Path) -> None:
    if is_mounted(path):
        subprocess.run(["fusermount3", "-u", "-z", str(path)], capture_output=True, check=False)


@contextmanager
def mounted(path: Path, *extra_args: str) -> Iterator[Mount]:
    """Mount lguestfs on ``path`` (created if missing) for the ``with`` block; always clean up."""
    if not is_mounted(path):  # a dead mount point cannot even be stat()ed
        path.mkdir(parents=True, exist_ok=True)
    log_path = path.parent / f"{path.name}.lguestfs-{next(_daemons)}.log"
    mount = _start(path, log_path, extra_args)
    failed = True
    try:
        yield mount
        failed = False
    finally:
        status = mount.stop()
        left_mounted = is_mounted(path)
        _force_unmount(path)
        errors = mount.internal_errors()
        bad_exit = status != 0 and not mount.crashed
        if failed or errors or left_mounted or bad_exit:
            print(f"--- lguestfs log ({mount.log_path}) ---\n{mount.log()}")
    assert not left_mounted, f"lguestfs left {path} mounted after SIGTERM"
    assert not bad_exit, f"lguestfs exited with {status} after SIGTERM"
    assert not errors, "lguestfs logged internal errors:\n" + "\n".join(errors)
