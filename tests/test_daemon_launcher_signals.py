"""Signals to a launcher blocked in read: it must never be left unkillable, and nothing leaks.

pyfuse3 drops FUSE_INTERRUPT, so a thread blocked in a FUSE read that gets a signal (SIGKILL
included) sleeps uninterruptibly until the daemon answers; the daemon sees the signal in
``/proc`` and answers EINTR.  These tests send each fatal signal to a launcher whose guest is
halted for ever or spinning without an exit, and check that the launcher dies of it and that its
guest goes with it: ``guests/<pid>`` removed, the daemon back to its threads and descriptors.
"""

import contextlib
import os
import signal
from pathlib import Path

import pytest

from tests.clients import Client, GuestImage, guest_image, load_guest
from tests.support.mount import Mount
from tests.support.polling import wait_for

DEATH_TIMEOUT = 5.0  # seconds: a liveness bound, not a performance figure


def daemon_threads(mount: Mount) -> int:
    """The daemon's threads, less trio's cache of idle workers (which come and go by themselves)."""
    names = []
    for task in Path(f"/proc/{mount.process.pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            names.append((task / "comm").read_text())
    return sum(not name.startswith("Trio thread") for name in names)


def daemon_fds(mount: Mount) -> int:
    return len(os.listdir(f"/proc/{mount.process.pid}/fd"))


def run_until_blocked(launcher: Client, mount: Mount, image: GuestImage) -> None:
    """Start ``image`` and leave ``launcher`` blocked in a read of it."""
    fd = launcher.open(mount.node)
    load_guest(launcher, fd, image)
    launcher.send(f"read {fd} 8")
    launcher.no_answer(0.2)


def warm_up(mount: Mount, builds: Path, image: GuestImage) -> tuple[int, int]:
    """Run, interrupt and release one guest first: threads the daemon keeps are then there."""
    with Client.start("c32", builds, pass_fds=(image.fd,)) as launcher:
        assert launcher.request(f"catch {signal.SIGUSR1}").ok
        run_until_blocked(launcher, mount, image)
        launcher.kill(signal.SIGUSR1)
        assert launcher.answer(DEATH_TIMEOUT).errno_name == "EINTR"
    assert wait_for(lambda: os.listdir(mount.guests) == [])
    return daemon_threads(mount), daemon_fds(mount)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=str)
@pytest.mark.parametrize(
    ("kind", "guest"), [("c32", "halt"), ("py64", "halt"), ("c32", "spin")], ids=str
)
def test_fatal_signal_kills_a_launcher_blocked_in_read_and_frees_its_guest(
    mount: Mount, client_builds: Path, signum: int, kind: str, guest: str
) -> None:
    image = guest_image(guest)
    try:
        threads, fds = warm_up(mount, client_builds, image)
        with Client.start(kind, client_builds, pass_fds=(image.fd,)) as launcher:
            run_until_blocked(launcher, mount, image)
            assert (mount.guests / str(launcher.pid)).exists()
            launcher.kill(signum)
            returncode = launcher.process.wait(DEATH_TIMEOUT)
        if kind == "c32":
            assert returncode == -signum
        else:  # Python turns SIGINT into KeyboardInterrupt, then exits with status 1
            assert returncode in (-signum, 1)
        assert wait_for(lambda: os.listdir(mount.guests) == [])
        assert wait_for(lambda: daemon_threads(mount) <= threads), daemon_threads(mount)
        assert wait_for(lambda: daemon_fds(mount) <= fds), os.listdir(
            f"/proc/{mount.process.pid}/fd"
        )
    finally:
        image.close()


def test_signal_ends_a_read_of_a_spinning_guest_with_eintr(
    mount: Mount, client_builds: Path
) -> None:
    image = guest_image("spin")
    try:
        with Client.start("c32", client_builds, pass_fds=(image.fd,)) as launcher:
            assert launcher.request(f"catch {signal.SIGUSR1}").ok
            run_until_blocked(launcher, mount, image)
            launcher.kill(signal.SIGUSR1)
            assert launcher.answer(DEATH_TIMEOUT).errno_name == "EINTR"
    finally:
        image.close()
