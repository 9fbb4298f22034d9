"""The waker from another process, and two guests at once: no deadlock, no cross-talk.

On this kernel a waker sharing the launcher's descriptor would deadlock on the f_pos lock, and
one opening the same inode on the inode lock (``lguestfs.fs``); the waker opens
``guests/<pid>/waker`` instead.  These tests run the whole 2.6.24 exchange many times over:
the launcher blocked in read, the waker's BREAK 1 (which blocks), the launcher's EAGAIN, its
BREAK 0, and the waker's write returning 0.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from lguestfs.protocol import HELD_BREAKS_PER_GUEST
from tests.clients import KINDS, Client, GuestImage, open_guest
from tests.support.mount import Mount

ROUNDS = 20
BLOCKED = 0.2


def break_round(launcher: Client, fd: int, waker: Client, waker_fd: int) -> None:
    """One 2.6.24 waker exchange, from a launcher blocked in read."""
    launcher.send(f"read {fd} 8")
    launcher.no_answer(0.02)
    waker.send(f"write {waker_fd} 3 1")
    assert launcher.answer().errno_name == "EAGAIN"
    waker.no_answer(0.01)  # BREAK 1 blocks until the launcher's BREAK 0
    assert launcher.write(fd, 3, 0).number == 0
    assert waker.answer().number == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("guest", ["halt", "spin"])
def test_waker_process_breaks_the_guest_again_and_again_without_deadlock(
    mount: Mount,
    client_builds: Path,
    kind: str,
    guest: str,
    halt_image: GuestImage,
    spin_image: GuestImage,
) -> None:
    image = halt_image if guest == "halt" else spin_image
    with (
        Client.start(kind, client_builds, pass_fds=(image.fd,)) as launcher,
        Client.start(kind, client_builds) as waker,
    ):
        fd = open_guest(launcher, mount.node, image)
        waker_fd = waker.open(mount.waker(launcher.pid))
        for _ in range(ROUNDS):
            break_round(launcher, fd, waker, waker_fd)


def test_two_wakers_both_block_until_one_break_0(
    mount: Mount, client_builds: Path, halt_image: GuestImage
) -> None:
    with (
        Client.start("c32", client_builds, pass_fds=(halt_image.fd,)) as launcher,
        Client.start("c32", client_builds) as first,
        Client.start("py64", client_builds) as second,
    ):
        fd = open_guest(launcher, mount.node, halt_image)
        wakers = [(waker, waker.open(mount.waker(launcher.pid))) for waker in (first, second)]
        for waker, waker_fd in wakers:
            waker.send(f"write {waker_fd} 3 1")
            waker.no_answer(BLOCKED)
        assert launcher.read(fd, 8).errno_name == "EAGAIN"
        assert launcher.write(fd, 3, 0).number == 0
        assert [waker.answer().number for waker, _ in wakers] == [0, 0]


def test_two_guests_run_at_once_and_a_break_reaches_only_its_own(
    mount: Mount, client_builds: Path, halt_image: GuestImage, spin_image: GuestImage
) -> None:
    with (
        Client.start("c32", client_builds, pass_fds=(halt_image.fd,)) as halted,
        Client.start("py64", client_builds, pass_fds=(spin_image.fd,)) as spinning,
        Client.start("c32", client_builds) as waker,
    ):
        halted_fd = open_guest(halted, mount.node, halt_image)
        spinning_fd = open_guest(spinning, mount.node, spin_image)
        assert sorted(p.name for p in mount.guests.iterdir()) == sorted(
            [str(halted.pid), str(spinning.pid)]
        )
        halted.send(f"read {halted_fd} 8")
        spinning.send(f"read {spinning_fd} 8")
        halted.no_answer(BLOCKED)
        spinning.no_answer(0.01)
        waker_fd = waker.open(mount.waker(spinning.pid))
        for _ in range(3):
            waker.send(f"write {waker_fd} 3 1")
            assert spinning.answer().errno_name == "EAGAIN"
            assert spinning.write(spinning_fd, 3, 0).number == 0
            assert waker.answer().number == 0
            spinning.send(f"read {spinning_fd} 8")
        halted.no_answer(0.01)  # never disturbed
        spinning.no_answer(0.01)


def test_killed_waker_leaves_the_break_flag_set_and_nothing_behind(
    mount: Mount, client_builds: Path, halt_image: GuestImage
) -> None:
    with (
        Client.start("c32", client_builds, pass_fds=(halt_image.fd,)) as launcher,
        Client.start("c32", client_builds) as waker,
    ):
        fd = open_guest(launcher, mount.node, halt_image)
        waker_fd = waker.open(mount.waker(launcher.pid))
        waker.send(f"write {waker_fd} 3 1")
        waker.no_answer(BLOCKED)
        waker.kill()
        assert waker.process.wait(10) == -9  # not left unkillable in its BREAK
        assert launcher.read(fd, 8).errno_name == "EAGAIN"  # the flag outlives the waker
        assert launcher.write(fd, 3, 0).number == 0
        launcher.send(f"read {fd} 8")
        launcher.no_answer(BLOCKED)  # halted again, nothing left over


MANY_BREAKERS = 150  # more than pyfuse3's default of 99 worker tasks, and than one guest may hold

# Each thread has a handle of its own, opened one after another: two opens at once may share an
# inode, and a write queued in the kernel behind a held BREAK would only arrive after BREAK 0.
BREAKERS_SCRIPT = """
import errno, os, struct, sys, threading
path, count = sys.argv[1], int(sys.argv[2])
fds = [os.open(path, os.O_RDWR) for _ in range(count)]
def breaker(fd):
    try:
        os.write(fd, struct.pack("<2Q", 3, 1))
        os.write(1, b"released\\n")  # one write per line: threads share stdout
    except OSError as error:
        os.write(1, f"refused {errno.errorcode[error.errno]}\\n".encode())
threads = [threading.Thread(target=breaker, args=(fd,)) for fd in fds]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


def test_many_held_breaks_never_stall_other_requests(
    mount: Mount, client_builds: Path, halt_image: GuestImage
) -> None:
    with Client.start("c32", client_builds, pass_fds=(halt_image.fd,)) as launcher:
        fd = open_guest(launcher, mount.node, halt_image)
        breakers = subprocess.Popen(
            [
                sys.executable,
                "-c",
                BREAKERS_SCRIPT,
                str(mount.waker(launcher.pid)),
                str(MANY_BREAKERS),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert breakers.stdout is not None
            for _ in range(MANY_BREAKERS - HELD_BREAKS_PER_GUEST):  # the rest: EAGAIN at once
                assert breakers.stdout.readline() == "refused EAGAIN\n"
            assert f"breaks: {HELD_BREAKS_PER_GUEST}\n" in mount.status(launcher.pid)  # held
            other = launcher.open(mount.node)  # open, write and release still get through
            assert launcher.write(other, 2, 1).errno_name == "EINVAL"
            assert launcher.request(f"close {other}").ok
            assert launcher.read(fd, 8).errno_name == "EAGAIN"
            assert launcher.write(fd, 3, 0).number == 0
            output, _ = breakers.communicate(timeout=30)
            assert output.count("released") == HELD_BREAKS_PER_GUEST
        finally:
            breakers.kill()
            breakers.wait()
