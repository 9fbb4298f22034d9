"""Hostile launchers: what one launcher does to its own memory and handles costs its guest only.

Each test is an attack that once took the whole daemon down or stalled every guest on the mount
(issue 11), made through a real mount by real processes, with an innocent guest beside it that
must keep running:

* shrinking the guest memory object (``ftruncate`` of the memfd) between or during reads, or
  filling the tmpfs of a sparse object: only that guest dies, "guest memory lost: ..."
  (``lguestfs/_memguard.c``);
* guest memory on a frozen file system: INITIALIZE refuses anything that is not shmem (EFAULT),
  so no daemon thread can ever block in a page fault of it;
* a thousand waker handles each holding BREAK 1: past ``protocol.HELD_BREAKS_PER_GUEST`` they
  get EAGAIN at once, so the owner's BREAK 0 and other guests are always served;
* many guests each holding BREAK 1 within their own bound, together at ``protocol.HELD_BREAKS``:
  the next gets EAGAIN at once, and the owners' BREAK 0 and other guests' reads are served;
* two guests looping SET_CLOCKEVENT(1 ns), halting or not: an innocent guest goes on (it keeps
  about a third of its notify rate, as beside two guests making ordinary notify round trips);
* other users reading ``status`` of a guest on an ``--allow-other`` mount (EACCES);
* a private ``mmap`` of the node, whose page faults would run the guest.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import mmap
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

from launcher.guests.handguest import (
    GuestDied,
    HandGuest,
    hypercall,
    initialised_guest,
    load,
    loop_back,
)
from launcher.layout import PreparedGuest, prepare_guest
from launcher.node import pack_words
from lguestfs import abi
from lguestfs.node import waker_path
from lguestfs.protocol import HELD_BREAKS, HELD_BREAKS_PER_GUEST
from tests.support.guests import test_guest
from tests.support.mount import Mount
from tests.support.polling import wait_until
from tests.test_reliability_isolation import reachable_mount

MEM_MB = 4
NOTIFY_WORD = 0x50AF
INNOCENT_READS = 50
NOBODY = 65534
MEMORY_LOST = (
    "guest memory lost: the launcher shrank it or its tmpfs is full"  # the reason README promises
)


UPPER_QUARTER = (MEM_MB << 20) * 3 // 4  # a guest-physical address above half the memory


def notify_loop(touching: int = 0) -> Callable[[PreparedGuest], None]:
    """A guest that reads guest-physical ``touching`` and NOTIFYs, for ever: each read returns
    ``NOTIFY_WORD``."""
    code = load(touching) + hypercall(abi.LHCALL_NOTIFY, NOTIFY_WORD)
    return initialised_guest(code + bytes([0xEB, (-(len(code) + 2)) & 0xFF]))


def storer(address: int) -> Callable[[PreparedGuest], None]:
    """A guest that writes guest-physical ``address``, then NOTIFYs, for ever."""
    code = b"\xc7\x05" + struct.pack("<II", address, 0x600DF00D) + hypercall(abi.LHCALL_NOTIFY)
    return initialised_guest(code + bytes([0xEB, (-(len(code) + 2)) & 0xFF]))


def toucher(address: int) -> Callable[[PreparedGuest], None]:
    """A guest that reads guest-physical ``address`` for ever, never leaving the CPU."""
    code = load(address)
    return initialised_guest(code + bytes([0xEB, (-(len(code) + 2)) & 0xFF]))


def innocent_goes_on(innocent: HandGuest) -> None:
    for _ in range(INNOCENT_READS):
        assert innocent.read(timeout=10.0) == NOTIFY_WORD


def memory_object(prepared: PreparedGuest) -> int:
    """A descriptor of the launcher's guest memory object (the memfd it did not keep)."""
    end = prepared.base + len(prepared.memory)
    return os.open(f"/proc/self/map_files/{prepared.base:x}-{end:x}", os.O_RDWR)


# --- 1. the memory object shrunk under the daemon ---------------------------------------------


@pytest.mark.parametrize("new_size", [0, MEM_MB << 19], ids=["to-zero", "to-half"])
def test_a_memory_object_shrunk_between_reads_kills_only_its_guest(
    mount: Mount, new_size: int
) -> None:
    kernel = test_guest("spin")
    with (
        HandGuest(mount.path, kernel, mem_mb=MEM_MB, patch=notify_loop()) as innocent,
        HandGuest(mount.path, kernel, mem_mb=MEM_MB, patch=notify_loop(UPPER_QUARTER)) as victim,
    ):
        assert victim.read(timeout=10.0) == NOTIFY_WORD
        fd = memory_object(victim.prepared)
        try:
            os.ftruncate(fd, new_size)
        finally:
            os.close(fd)
        with pytest.raises(GuestDied) as died:
            victim.read(timeout=10.0)
        assert died.value.reason == MEMORY_LOST
        innocent_goes_on(innocent)
    assert mount.process.poll() is None
    assert MEMORY_LOST in mount.log()


def test_a_memory_object_shrunk_during_a_read_kills_only_its_guest(mount: Mount) -> None:
    """The guest is inside the CPU reading a page above the new end when it goes."""
    kernel = test_guest("spin")
    with (
        HandGuest(mount.path, kernel, mem_mb=MEM_MB, patch=notify_loop()) as innocent,
        HandGuest(mount.path, kernel, mem_mb=MEM_MB, patch=toucher(UPPER_QUARTER)) as victim,
    ):
        fd = memory_object(victim.prepared)
        shrink = threading.Timer(0.3, os.ftruncate, (fd, MEM_MB << 19))
        shrink.start()
        try:
            with pytest.raises(GuestDied) as died:
                victim.read(timeout=10.0)
        finally:
            shrink.join()
            os.close(fd)
        assert died.value.reason == MEMORY_LOST
        innocent_goes_on(innocent)
    assert mount.process.poll() is None


# --- 3. guest memory whose page faults block ----------------------------------------------------

FIFREEZE = 0xC0045877  # _IOWR('X', 119, int)
FITHAW = 0xC0045878
THAW_AFTER = 30.0  # seconds: a watchdog thaws even if the test is stuck (as it was before the fix)
EXT4_MB = 32


@contextmanager
def ext4_mount(where: Path) -> Iterator[Path]:
    """A fresh ext4 on a loop device, mounted at ``where``; thawed and unmounted however it ends."""
    for tool in ("mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (Debian packages e2fsprogs, mount)")
    image = where.with_suffix(".img")
    with open(image, "wb") as blank:
        blank.truncate(EXT4_MB << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    where.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(where)], check=True)
    try:
        yield where
    finally:
        thaw(where)
        subprocess.run(["umount", str(where)], check=False)
        image.unlink()


def thaw(where: Path) -> None:
    fd = os.open(where, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FITHAW, 0)
    except OSError as error:
        if error.errno != errno.EINVAL:  # EINVAL: not frozen
            raise
    finally:
        os.close(fd)


def freeze(where: Path) -> None:
    fd = os.open(where, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FIFREEZE, 0)
    finally:
        os.close(fd)


def file_backed_copy(prepared: PreparedGuest, path: Path) -> PreparedGuest:
    """The same guest, its memory a ``MAP_SHARED`` file at ``path`` instead of a memfd."""
    with open(path, "w+b") as backing:
        backing.write(prepared.memory[:])
        backing.flush()
        memory = mmap.mmap(backing.fileno(), len(prepared.memory), mmap.MAP_SHARED)
    return PreparedGuest(memory, prepared.mem, prepared.pgdir, prepared.image)


def test_guest_memory_on_a_frozen_file_system_is_refused_and_others_go_on(
    mount: Mount, tmp_path: Path
) -> None:
    kernel = test_guest("spin")
    with (
        ext4_mount(tmp_path / "ext4") as ext4,
        HandGuest(mount.path, kernel, mem_mb=MEM_MB, patch=notify_loop()) as innocent,
        HandGuest(mount.path, kernel, mem_mb=MEM_MB, patch=notify_loop()) as model,
    ):
        on_ext4 = file_backed_copy(model.prepared, ext4 / "guest-memory")
        watchdog = threading.Timer(THAW_AFTER, thaw, (ext4,))
        child = -1
        try:
            freeze(ext4)
            watchdog.start()
            child = os.fork()
            if child == 0:  # the victim: INITIALIZE on frozen memory, then a read that writes it
                status = 1
                try:
                    fd = os.open(mount.node, os.O_RDWR)
                    os.write(fd, on_ext4.initialize_request())
                    os.read(fd, 8)
                    status = 0
                except OSError as error:
                    status = 10 if error.errno == errno.EFAULT else 11
                finally:
                    os._exit(status)
            started = time.monotonic()
            innocent_goes_on(innocent)
            took = time.monotonic() - started
            _, status = os.waitpid(child, 0)
            child = -1
            assert os.waitstatus_to_exitcode(status) == 10, "INITIALIZE was not refused (EFAULT)"
            assert took < THAW_AFTER / 2, f"the innocent guest waited for the thaw ({took:.1f} s)"
        finally:
            watchdog.cancel()
            thaw(ext4)
            if child > 0:
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
            on_ext4.close()
    assert "is not shmem" in mount.log()


# --- 2. a thousand held BREAKs -------------------------------------------------------------------

ATTACKERS = 5  # processes, each holding ATTACKING_WAKERS: more than pyfuse3's workers in all
ATTACKING_WAKERS = 220  # (fs.MAX_TASKS), less than one process's handles (MAX_HANDLES_PER_PROCESS)
ATTACK_SETTLES_WITHIN = 20.0  # seconds for the attacker's threads to open and write
ANSWER_WITHIN = 5.0  # seconds: a liveness bound, never a speed figure
BREAK_1 = pack_words(abi.LHREQ_BREAK, 1)


def wakers_attack(waker: Path, ready: int) -> NoReturn:
    """An attacker: ``ATTACKING_WAKERS`` handles on the guest's waker (opened one by one, so
    that each has an inode of its own), then one thread per handle holding BREAK 1.  Says "ready"
    on ``ready`` once all but the held have been answered; exits 0 once every thread has ended and
    those answered early were refused with EAGAIN."""
    status = 1
    try:
        fds = [os.open(waker, os.O_RDWR) for _ in range(ATTACKING_WAKERS)]
        refused: list[int] = []

        def hold(fd: int) -> None:
            try:
                os.write(fd, BREAK_1)
            except OSError as error:
                refused.append(error.errno or 0)

        threading.stack_size(256 << 10)
        threads = [threading.Thread(target=hold, args=(fd,), daemon=True) for fd in fds]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + ATTACK_SETTLES_WITHIN
        while len(refused) < ATTACKING_WAKERS - HELD_BREAKS_PER_GUEST:  # all but the held
            if time.monotonic() > deadline:  # (before the fix nobody was refused)
                break
            time.sleep(0.01)
        os.write(ready, b"!")
        for thread in threads:
            thread.join()
        status = 0 if refused and set(refused) == {errno.EAGAIN} else 2
    finally:
        os._exit(status)


def all_exited_0(children: list[int]) -> bool:
    """Wait for each forked child (taken off the list once reaped): did every one exit 0?"""
    statuses = []
    while children:
        _, status = os.waitpid(children.pop(), 0)
        statuses.append(os.waitstatus_to_exitcode(status))
    return all(status == 0 for status in statuses)


def kill_all(children: list[int]) -> None:
    """SIGKILL and reap the forked children still on the list (a test's cleanup)."""
    while children:
        pid = children.pop()
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def answered(action: Callable[[], object], timeout: float = ANSWER_WITHIN) -> bool:
    """Did ``action`` (requests to the node) finish within ``timeout``?  A request the daemon never
    takes up cannot be interrupted, so it runs in a thread that is left behind if it hangs."""
    done = threading.Event()

    def run() -> None:
        action()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(timeout)


def test_a_thousand_wakers_held_in_break_leave_the_daemon_serving_everyone(mount: Mount) -> None:
    kernel = test_guest("spin")
    with HandGuest(mount.path, kernel, mem_mb=MEM_MB, patch=notify_loop()) as owner:
        assert owner.read(timeout=10.0) == NOTIFY_WORD
        waker = mount.waker(os.getpid())  # the owner is this process
        ready, said_ready = os.pipe()
        attackers = []
        try:
            for _ in range(ATTACKERS):
                attacker = os.fork()
                if attacker == 0:
                    os.close(ready)
                    wakers_attack(waker, said_ready)
                attackers.append(attacker)
            os.close(said_ready)
            said_ready = -1
            for _ in attackers:
                assert os.read(ready, 1) == b"!"

            def newcomer() -> None:
                os.close(os.open(mount.node, os.O_RDWR))

            def another_guest() -> None:
                with HandGuest(mount.path, kernel, mem_mb=MEM_MB, patch=notify_loop()) as other:
                    for _ in range(10):
                        assert other.read() == NOTIFY_WORD  # (timeouts: main thread only)

            assert answered(newcomer), "a newcomer's open was not answered"
            assert answered(another_guest, 3 * ANSWER_WITHIN), "another guest was not served"
            assert answered(lambda: owner.write(abi.LHREQ_BREAK, 0)), "BREAK 0 was not answered"
            assert all_exited_0(attackers), "the excess wakers got no EAGAIN"
        finally:
            kill_all(attackers)
            os.close(ready)
            if said_ready >= 0:
                os.close(said_ready)
    assert "BREAK 1 writers already held" in mount.log()


BREAKING_GUESTS = HELD_BREAKS // HELD_BREAKS_PER_GUEST  # owners, each holding its guest's bound


def guest_full_of_breaks(mountpoint: Path, kernel: Path, ready: int, go: int) -> NoReturn:
    """An owner process: its guest, then one more than ``HELD_BREAKS_PER_GUEST`` threads each
    writing BREAK 1 on a waker handle of its own.  Says "ready" on ``ready`` once the one too many
    was refused (so the rest are held), writes BREAK 0 once ``go`` says so; exits 0 once every
    thread has ended, the held ones released and the extra one refused with EAGAIN."""
    status = 1
    try:
        with HandGuest(mountpoint, kernel, mem_mb=MEM_MB) as owner:
            waker = waker_path(mountpoint, os.getpid())
            fds = [os.open(waker, os.O_RDWR) for _ in range(HELD_BREAKS_PER_GUEST + 1)]
            refused: list[int] = []
            released: list[int] = []

            def hold(fd: int) -> None:
                try:
                    os.write(fd, BREAK_1)
                    released.append(fd)
                except OSError as error:
                    refused.append(error.errno or 0)

            threads = [threading.Thread(target=hold, args=(fd,), daemon=True) for fd in fds]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + ATTACK_SETTLES_WITHIN
            while not refused and time.monotonic() < deadline:
                time.sleep(0.01)
            os.write(ready, b"!")
            os.read(go, 1)
            owner.write(abi.LHREQ_BREAK, 0)
            for thread in threads:
                thread.join()
            if refused == [errno.EAGAIN] and len(released) == HELD_BREAKS_PER_GUEST:
                status = 0
            else:
                status = 2
    finally:
        os._exit(status)


def test_breaks_held_on_many_guests_are_bounded_for_the_whole_daemon(mount: Mount) -> None:
    kernel = test_guest("spin")
    ready, said_ready = os.pipe()
    wait_go, go = os.pipe()
    owners: list[int] = []
    try:
        for _ in range(BREAKING_GUESTS):
            pid = os.fork()
            if pid == 0:
                os.close(ready)
                os.close(go)
                guest_full_of_breaks(mount.path, kernel, said_ready, wait_go)
            owners.append(pid)
        os.close(said_ready)
        said_ready = -1
        for _ in owners:
            said = select.select([ready], [], [], 2 * ATTACK_SETTLES_WITHIN)[0]
            assert said and os.read(ready, 1) == b"!", "an owner could not hold its BREAKs"
        with HandGuest(mount.path, kernel, mem_mb=MEM_MB, patch=notify_loop()) as other:
            assert other.read(timeout=10.0) == NOTIFY_WORD
            refusals: list[int] = []

            def one_too_many() -> None:
                fd = os.open(mount.waker(os.getpid()), os.O_RDWR)
                try:
                    os.write(fd, BREAK_1)
                except OSError as error:
                    refusals.append(error.errno or 0)
                finally:
                    os.close(fd)

            assert answered(one_too_many), "the BREAK past the daemon's bound was held"
            assert refusals == [errno.EAGAIN]
            for _ in range(10):
                assert other.read(timeout=10.0) == NOTIFY_WORD
        os.write(go, b"!" * len(owners))
        assert all_exited_0(owners), "an owner's BREAKs were not served"
    finally:
        kill_all(owners)
        for fd in (ready, said_ready, wait_go, go):
            if fd >= 0:
                os.close(fd)
    assert f"{HELD_BREAKS} BREAK 1 writers already held by the daemon" in mount.log()


# --- also seen: a timer storm ---------------------------------------------------------------------

STORMERS = 2  # guests asking for an interrupt 1 ns from now, for ever
STORM = hypercall(abi.LHCALL_SET_CLOCKEVENT, 1)
STORMING = 1000  # SET_CLOCKEVENTs each stormer has made before the innocent starts
STORMED_READS = 1000  # the innocent's notifies during the storm (a fraction of a second alone)


def storming(mount: Mount, pid: int) -> bool:
    """Has launcher ``pid``'s guest made ``STORMING`` SET_CLOCKEVENTs (says its status)?"""
    try:
        status = mount.status(pid)
    except FileNotFoundError:  # no guest yet
        return False
    found = re.search(r"^\s*SET_CLOCKEVENT\s+(\d+)$", status, re.MULTILINE)
    return found is not None and int(found.group(1)) >= STORMING


def run_for_ever(
    mountpoint: Path, kernel: Path, patch: Callable[[PreparedGuest], None]
) -> NoReturn:
    """A launcher process whose guest never NOTIFYs: one read, until it is killed."""
    try:
        with HandGuest(mountpoint, kernel, mem_mb=MEM_MB, patch=patch) as guest:
            guest.read()
    finally:
        os._exit(0)


@pytest.mark.parametrize("halting", [False, True], ids=["spinning", "halting"])
def test_a_timer_storm_from_two_guests_leaves_an_innocent_guest_running(
    mount: Mount, halting: bool
) -> None:
    kernel = test_guest("spin")
    code = STORM + hypercall(abi.LHCALL_HALT) if halting else STORM
    stormers: list[int] = []
    try:
        for _ in range(STORMERS):
            pid = os.fork()
            if pid == 0:
                run_for_ever(mount.path, kernel, initialised_guest(loop_back(code)))
            stormers.append(pid)
        for pid in stormers:
            wait_until(functools.partial(storming, mount, pid), ANSWER_WITHIN, "storming")
        with HandGuest(mount.path, kernel, mem_mb=MEM_MB, patch=notify_loop()) as one:
            for _ in range(STORMED_READS):
                assert one.read(timeout=10.0) == NOTIFY_WORD
        for pid in stormers:
            assert os.waitpid(pid, os.WNOHANG) == (0, 0), "a storming guest ended"
    finally:
        kill_all(stormers)


# --- also seen: what other users learn from status ------------------------------------------------


def read_as_nobody(path: Path) -> bytes:
    """``path``'s bytes, read by a forked child running as user nobody."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(writer, path.read_bytes())
        finally:
            os._exit(0)
    os.close(writer)
    try:
        return os.read(reader, 1 << 16)
    finally:
        os.close(reader)
        os.waitpid(pid, 0)


def test_status_tells_other_users_nothing_of_the_launchers_address_space() -> None:
    with (
        reachable_mount("--allow-other") as mount,
        HandGuest(mount.path, test_guest("spin"), mem_mb=MEM_MB, patch=notify_loop()) as guest,
    ):
        assert guest.read(timeout=10.0) == NOTIFY_WORD
        text = read_as_nobody(mount.guests / str(os.getpid()) / "status").decode()
        assert "pfnlimit: 0x400" in text  # nobody may read it...
        assert f"{guest.prepared.base:x}" not in text  # ...but learns no address of root's


@contextmanager
def small_tmpfs(where: Path, pages: int) -> Iterator[Path]:
    """A tmpfs of ``pages`` pages mounted at ``where``; unmounted however the test ends."""
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={pages * 4}k", "tmpfs", str(where)])
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_sparse_object_on_a_full_tmpfs_kills_only_its_guest(mount: Mount, tmp_path: Path) -> None:
    """Anyone can fill /dev/shm: the daemon's store into a hole of a sparse object then has no
    page to get (SIGBUS, as for a shrunk object)."""
    kernel = test_guest("spin")
    with HandGuest(mount.path, kernel, mem_mb=MEM_MB, patch=notify_loop()) as innocent:
        layout = prepare_guest(MEM_MB, kernel, [])
        storer(UPPER_QUARTER)(layout)
        size = len(layout.memory)
        used = [at for at in range(0, size, abi.PAGE_SIZE) if any(layout.read(at, abi.PAGE_SIZE))]
        with small_tmpfs(tmp_path / "shm", len(used) + 16) as shm:
            fd = os.open(shm / "guest-memory", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                os.ftruncate(fd, size)  # sparse: only the pages in use are written
                for at in used:
                    os.pwrite(fd, layout.read(at, abi.PAGE_SIZE), at)
                with (
                    open(shm / "the-rest", "wb", buffering=0) as rest,
                    contextlib.suppress(OSError),  # ENOSPC: full
                ):
                    while True:
                        rest.write(bytes(abi.PAGE_SIZE))
                memory = mmap.mmap(fd, size, mmap.MAP_SHARED)
            finally:
                os.close(fd)
            sparse = PreparedGuest(memory, layout.mem, layout.pgdir, layout.image)
            node = os.open(mount.node, os.O_RDWR)
            try:
                os.write(node, sparse.initialize_request())
                with pytest.raises(FileNotFoundError):  # ENOENT: the guest died
                    os.read(node, 8)
                assert os.read(node, 200).rstrip(b"\0").decode() == MEMORY_LOST
            finally:
                os.close(node)
                sparse.close()
                layout.close()
        innocent_goes_on(innocent)
    assert mount.process.poll() is None
