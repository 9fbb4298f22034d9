"""Signals that 2.6.24 restarted through leave a launcher's blocked read in flight.

2.6.24 answered a signal with -ERESTARTSYS: the kernel re-issued the read unless the signal ran
a handler (EINTR) or ended the process.  A FUSE daemon cannot restart a call, so it decides from
``/proc`` what the signal will do (``lguestfs.callers``, facts 3-5).  These tests put a 32-bit C
launcher (a real non-Python program: Python would retry an EINTR and hide it) in a read of a
halted guest, send it what 2.6.24 restarted through, check that the read is still blocked and
the launcher running, and then end the read with a handled signal: it answers EINTR, so the
same read was in flight all along.
"""

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients import Client, GuestImage, open_guest
from tests.support.mount import Mount
from tests.support.polling import wait_until

HOLD = 0.3  # seconds a read must stay blocked to count as left in flight
ANSWER_TIMEOUT = 5.0  # seconds: a liveness bound, not a performance figure
HANDLED = signal.SIGUSR1  # the launcher catches it (no SA_RESTART): its read answers EINTR
IGNORED = signal.SIGUSR2  # the launcher sets it to SIG_IGN
BLOCKED = signal.SIGALRM  # the launcher blocks it


def proc_status(pid: int, field: str) -> str:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    return ""


@pytest.fixture
def blocked(mount: Mount, client_builds: Path, halt_image: GuestImage) -> Iterator[Client]:
    """A C launcher blocked in a read of its halted guest, catching, ignoring, blocking signals."""
    with Client.start("c32", client_builds, pass_fds=(halt_image.fd,)) as launcher:
        assert launcher.request(f"catch {HANDLED}").ok
        assert launcher.request(f"ignore {IGNORED}").ok
        assert launcher.request(f"block {BLOCKED}").ok
        fd = open_guest(launcher, mount.node, halt_image)
        launcher.send(f"read {fd} 8")
        launcher.no_answer(0.2)
        yield launcher


@contextlib.contextmanager
def traced(launcher: Client) -> Iterator[None]:
    """``strace -p`` attached to ``launcher`` for the block; the tracer killed at its end.

    The tracer's own detach would wait for the trap stop that only the read's end brings (see
    the README's differences); a tracer that dies detaches at once.
    """
    tracer = subprocess.Popen(
        ["strace", "-p", str(launcher.pid), "-o", "/dev/null"], stderr=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: proc_status(launcher.pid, "TracerPid") != "0", 5.0, "traced")
        yield
    finally:
        tracer.kill()
        tracer.wait()


def still_in_flight(launcher: Client) -> None:
    """The read is blocked and the launcher running; a handled signal then ends it with EINTR."""
    launcher.no_answer(HOLD)
    assert launcher.process.poll() is None
    launcher.kill(HANDLED)
    assert launcher.answer(ANSWER_TIMEOUT).errno_name == "EINTR"


def test_stop_then_continue_leaves_the_read_in_flight(blocked: Client) -> None:
    blocked.kill(signal.SIGSTOP)
    blocked.no_answer(HOLD)
    blocked.kill(signal.SIGCONT)
    still_in_flight(blocked)


@pytest.mark.parametrize(
    "signum",
    [IGNORED, BLOCKED, signal.SIGCHLD, signal.SIGWINCH, signal.SIGCONT, signal.SIGTSTP],
    ids=lambda signum: signal.Signals(signum).name,
)
def test_a_signal_without_handler_or_death_leaves_the_read_in_flight(
    blocked: Client, signum: int
) -> None:
    blocked.kill(signum)
    if signum == signal.SIGTSTP:  # a stop: the launcher stops once the read has returned
        blocked.no_answer(HOLD)
        blocked.kill(signal.SIGCONT)
    still_in_flight(blocked)


def test_strace_attach_and_detach_leave_the_read_in_flight(blocked: Client) -> None:
    with traced(blocked):
        blocked.no_answer(HOLD)
    wait_until(lambda: proc_status(blocked.pid, "TracerPid") == "0", 5.0, "detached")
    still_in_flight(blocked)


def test_stop_then_continue_leave_a_held_break_in_flight(
    mount: Mount, client_builds: Path, blocked: Client
) -> None:
    with Client.start("c32", client_builds) as waker:
        assert waker.request(f"catch {HANDLED}").ok
        fd = waker.open(mount.waker(blocked.pid))
        waker.send(f"write {fd} 3 1")  # BREAK 1: the owner's read ends, the waker waits
        assert blocked.answer(ANSWER_TIMEOUT).errno_name == "EAGAIN"
        waker.kill(signal.SIGSTOP)
        waker.no_answer(HOLD)
        waker.kill(signal.SIGCONT)
        still_in_flight(waker)


def test_a_fatal_signal_still_ends_a_traced_launcher(blocked: Client) -> None:
    with traced(blocked):
        blocked.kill(signal.SIGKILL)
        assert blocked.process.wait(ANSWER_TIMEOUT) == -signal.SIGKILL
