"""Killing things: launchers SIGKILLed at random moments, and the daemon killed under its guests.

When the daemon dies under a launcher blocked in read, that read fails with ECONNABORTED and every
later request with ENOTCONN (the launcher turns that into "the lguestfs daemon has gone away");
a new daemon can then mount on the same, dead, mount point.

A launcher can die at any instant: before it opens the node, during INITIALIZE, in the middle of a
read that runs its guest, while its waker is blocked in BREAK 1.  Every time, the daemon must free
that guest entirely: its thread, its mapping of the launcher's memory, its timer, its ``guests/``
entry.  We kill a hundred of them at random moments and then count what the daemon holds
(threads, fds, mappings, anonymous memory) against what it held before.

The launchers here are forks of the test process driving a guest by hand
(``launcher.guests.handguest``), so that a random delay of a few milliseconds lands inside the
protocol rather than inside an interpreter's start-up; the daemon-killing test uses the real
``lguest-launch``.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

from launcher.guests.handguest import (
    Footprint,
    GuestDied,
    HandGuest,
    footprint,
    hypercall,
    initialised_guest,
    loop_back,
)
from launcher.layout import PreparedGuest
from launcher.main import command as launcher_command
from lguestfs import abi
from tests.support import LONG
from tests.support.guests import test_guest
from tests.support.mount import Mount, is_mounted, mounted, skip_reason
from tests.support.polling import wait_until

KILL_CYCLES = 1000 if LONG else 100
KILL_WITHIN = 0.03  # seconds after the launcher starts: INITIALIZE happens in the first few ms
MEM_MB = 4
SETTLE_TIMEOUT = 20.0
# What "flat" allows after the cycles: a few threads of trio's worker cache, a few mappings of
# the allocator's arenas, some memory that Python keeps for reuse; never one per guest.
EXTRA_THREADS = 2
EXTRA_MAPPINGS = 32
EXTRA_RSS_KIB = 24 * 1024


def notify_loop_patch() -> Callable[[PreparedGuest], None]:
    """A guest that NOTIFYs in a loop: its launcher spends its life going in and out of read."""
    return initialised_guest(loop_back(hypercall(abi.LHCALL_NOTIFY, 0x1234)))


def launcher_child(mountpoint: Path, kernel: Path, notify_loop: bool) -> NoReturn:
    """A launcher by hand: read for ever, answering each EAGAIN with BREAK 0.  Never returns."""
    status = 0
    try:
        patch = notify_loop_patch() if notify_loop else None
        with HandGuest(mountpoint, kernel, mem_mb=MEM_MB, patch=patch) as guest:
            while True:
                try:
                    guest.read()
                except BlockingIOError:
                    guest.write(abi.LHREQ_BREAK, 0)
    except GuestDied:
        status = 3
    except BaseException:
        status = 4
    finally:
        os._exit(status)


def waker_child(waker: Path) -> NoReturn:
    """A waker: BREAK 1 again and again (each blocks until the launcher's BREAK 0)."""
    status = 0
    try:
        deadline = time.monotonic() + 2
        while not waker.exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        fd = os.open(waker, os.O_RDWR)
        while True:
            os.write(fd, abi.LHREQ_BREAK.to_bytes(8, "little") + (1).to_bytes(8, "little"))
            time.sleep(0.001)
    except BaseException:
        status = 5
    finally:
        os._exit(status)


def fork(child: Callable[[], NoReturn]) -> int:
    pid = os.fork()
    if pid == 0:
        child()
    return pid


def end(pid: int) -> None:
    """SIGKILL and reap a child of ours (a zombie takes the signal harmlessly)."""
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def kill_cycle(mount: Mount, rng: random.Random, kernels: list[Path]) -> bool:
    """One launcher (and sometimes its waker), SIGKILLed at a random moment; its guest must go.
    Whether the guest existed (INITIALIZE done) when the first kill landed."""
    kernel = rng.choice(kernels)
    notify_loop = rng.random() < 0.3
    launcher = fork(lambda: launcher_child(mount.path, kernel, notify_loop))
    children = [launcher]
    if rng.random() < 0.6:
        children.append(fork(lambda: waker_child(mount.guests / str(launcher) / "waker")))
    entry = mount.guests / str(launcher)
    try:
        if rng.random() < 0.5:  # anywhere in the launcher's first moments, INITIALIZE included
            time.sleep(rng.uniform(0, KILL_WITHIN))
        else:  # somewhere in the life of a running guest: in read, in BREAK, between the two
            wait_until(entry.exists, 5.0, f"initialised: {entry}")
            time.sleep(rng.uniform(0, KILL_WITHIN / 3))
        victim = rng.choice(children)  # the waker dies alone sometimes: in BREAK 1
        initialized = entry.exists()
        os.kill(victim, signal.SIGKILL)
        if victim != launcher:
            time.sleep(rng.uniform(0, KILL_WITHIN))
    finally:
        for pid in children:
            end(pid)
    wait_until(lambda: not entry.exists(), 5.0, f"freed: {entry}")
    return initialized


def settled(pid: int, baseline: Footprint) -> Callable[[], bool]:
    def check() -> bool:
        now = footprint(pid)
        return (
            now.threads <= baseline.threads + EXTRA_THREADS
            and now.fds <= baseline.fds
            and now.mappings <= baseline.mappings + EXTRA_MAPPINGS
            and now.rss_anon_kib <= baseline.rss_anon_kib + EXTRA_RSS_KIB
        )

    return check


def test_launchers_sigkilled_at_random_moments_leave_nothing_behind_in_the_daemon(
    mount: Mount,
) -> None:
    rng = random.Random(int(os.environ.get("LGUESTFS_FUZZ_SEED", random.randrange(1 << 32))))
    # Spinning, halted, notifying, and halted with a timer armed (the timer must go too).
    kernels = [test_guest(name) for name in ("spin", "halt", "notify", "halt_timer")]
    for _ in range(5):  # warm up: the first guests fill caches that stay
        kill_cycle(mount, rng, kernels)
    wait_until(lambda: not os.listdir(mount.guests), SETTLE_TIMEOUT, "without guests")
    time.sleep(1.0)
    baseline = footprint(mount.process.pid)
    with_guest = sum(kill_cycle(mount, rng, kernels) for _ in range(KILL_CYCLES))
    print(f"{with_guest} of {KILL_CYCLES} kills landed after INITIALIZE; daemon before: {baseline}")
    assert with_guest >= KILL_CYCLES // 2, "too few kills reached a running guest to prove much"
    assert os.listdir(mount.guests) == []
    try:
        wait_until(settled(mount.process.pid, baseline), SETTLE_TIMEOUT, "back to the baseline")
        print(f"daemon after: {footprint(mount.process.pid)}")
    except AssertionError:
        raise AssertionError(
            f"after {KILL_CYCLES} killed launchers the daemon holds {footprint(mount.process.pid)}"
            f", against {baseline} before"
        ) from None


@contextmanager
def daemon_to_kill(path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A daemon the test will SIGKILL (the ``mount`` fixture insists on a clean exit)."""
    log = open(path.parent / "killed-daemon.log", "wb")  # noqa: SIM115 - closed below
    daemon = subprocess.Popen(
        [sys.executable, "-m", "lguestfs", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: is_mounted(path) and (path / "lguest").exists(), 15.0, "mounted")
        yield daemon
    finally:
        if daemon.poll() is None:
            daemon.kill()
        daemon.wait()
        log.close()


def read_until_the_daemon_dies(path: Path, saw: list[int]) -> None:
    """A launcher by hand in this thread: its read blocks on a spinning guest until the daemon
    dies (ECONNABORTED); its next request finds the connection gone (ENOTCONN)."""
    with HandGuest(path, test_guest("spin"), mem_mb=MEM_MB) as guest:
        for request in (guest.read, lambda: guest.write(abi.LHREQ_BREAK, 0)):
            try:
                request()
            except OSError as error:
                saw.append(error.errno or 0)


def test_daemon_killed_under_running_guests_fails_their_launchers_and_can_mount_again() -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    workdir = Path(tempfile.mkdtemp(prefix="lguestfs-kill-"))
    path = workdir / "mnt"
    path.mkdir()
    launchers: list[subprocess.Popen[bytes]] = []
    reader_saw: list[int] = []
    try:
        with daemon_to_kill(path) as daemon:
            for name in ("spin", "halt", "spin"):
                launchers.append(
                    subprocess.Popen(
                        launcher_command(path, 16, test_guest(name)),
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                    )
                )
            thread = threading.Thread(target=read_until_the_daemon_dies, args=(path, reader_saw))
            thread.start()
            wait_until(lambda: len(os.listdir(path / "guests")) == 4, 20.0, "four guests up")
            time.sleep(0.1)  # the in-process reader is inside its read by now
            daemon.kill()
        for launcher in launchers:
            _, said = launcher.communicate(timeout=20)
            text = said.decode(errors="replace")
            assert launcher.returncode not in (0, None)
            assert "daemon has gone away" in text or any(
                os.strerror(code) in text for code in (errno.ECONNABORTED, errno.ENOTCONN)
            ), f"launcher said: {text!r}"
        thread.join(10)
        assert reader_saw == [errno.ECONNABORTED, errno.ENOTCONN], [
            errno.errorcode.get(code, code) for code in reader_saw
        ]
        with (
            mounted(path) as again,
            HandGuest(
                again.path, test_guest("notify"), mem_mb=MEM_MB, patch=notify_loop_patch()
            ) as guest,
        ):
            assert guest.read(timeout=5.0) == 0x1234
    finally:
        for launcher in launchers:
            if launcher.poll() is None:
                launcher.kill()
            launcher.communicate()
        if is_mounted(path):
            subprocess.run(["fusermount3", "-u", "-z", str(path)], check=False)
        for leftover in workdir.iterdir():
            if leftover.is_file():
                leftover.unlink()
        path.rmdir()
        workdir.rmdir()
