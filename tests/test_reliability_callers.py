"""Hostile callers: a descriptor used by a process or thread other than its opener.

Issue 11's breaks 4, 5, 6 and 7, each through a real mount and real processes.  The daemon
learns the caller of every request from the kernel (``lguestfs.callers``), so:

* a forked child using the owner's descriptor may only BREAK, as in 2.6.24 (its read and IRQ
  are EPERM), and its held BREAK is the thread watched for signals: its own handled signal
  ends it (break 4; SIGKILL: ``test_protocol_shared_descriptor.py``);
* INITIALIZE maps the memory of the process that makes it, never the opener's (break 5);
* a handle costs the daemon no descriptor at rest, one process may hold
  ``MAX_HANDLES_PER_PROCESS`` of them, and a daemon out of descriptors says EMFILE, never ESRCH
  (break 6);
* a read after the opening thread has exited is not interrupted by that thread's absence (break 7).
"""

import ctypes
import errno
import mmap
import os
import resource
import signal
import time
from pathlib import Path

import pytest

from lguestfs.abi import LHREQ_BREAK, LHREQ_IRQ
from lguestfs.fs import MAX_HANDLES_PER_PROCESS
from tests.clients import Client, GuestImage, load_guest, open_guest
from tests.support.mount import Mount, mounted, skip_reason
from tests.support.polling import wait_until

HOLD = 0.3  # seconds a request must stay blocked to count as left alone
DEATH_TIMEOUT = 5.0  # seconds: a liveness bound, not a performance figure
FD_SLACK = 8  # descriptors the daemon may open for its own reasons meanwhile


def daemon_fds(mount: Mount) -> int:
    return len(os.listdir(f"/proc/{mount.process.pid}/fd"))


def process_state(pid: int) -> str:
    """The state letter of ``pid`` ("Z" once dead and not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_a_forked_child_may_only_break_on_the_owners_descriptor(
    mount: Mount, client_builds: Path, spin_image: GuestImage
) -> None:
    """2.6.24's owner rule (``current != lg->tsk`` in lguest_user.c): a forked child's read and
    IRQ on the owner's descriptor are EPERM; its BREAK goes through (2.6.24's Waker)."""
    with Client.start("c32", client_builds, pass_fds=(spin_image.fd,)) as launcher:
        fd = open_guest(launcher, mount.node, spin_image)
        reader = launcher.request(f"forkread {fd} 8").number
        assert launcher.request(f"wait {reader}").values == [str(errno.EPERM), "0"]
        irq = launcher.request(f"forkwrite 0 {fd} {LHREQ_IRQ} 0").number
        assert launcher.request(f"wait {irq}").values == [str(errno.EPERM), "0"]
        breaker = launcher.request(f"forkwrite 0 {fd} {LHREQ_BREAK} 0").number
        assert launcher.request(f"wait {breaker}").values == ["0", "0"]
        assert "not the owner" in mount.log()


def test_a_forked_breaker_is_the_thread_watched_for_its_signals(
    mount: Mount, client_builds: Path, spin_image: GuestImage
) -> None:
    """The child's BREAK 1 on the owner's descriptor is held; no signal anywhere keeps it held,
    its own handled signal ends it with EINTR, and the break it set stays on (2.6.24's
    break_guest): the owner's next read is EAGAIN."""
    with Client.start("c32", client_builds, pass_fds=(spin_image.fd,)) as launcher:
        assert launcher.request(f"catch {signal.SIGUSR1}").ok  # inherited by the child
        fd = open_guest(launcher, mount.node, spin_image)
        breaker = launcher.request(f"forkwrite 0 {fd} {LHREQ_BREAK} 1").number
        wait_until(lambda: process_state(breaker) == "S", DEATH_TIMEOUT, "held in its BREAK")
        time.sleep(HOLD)
        assert process_state(breaker) == "S", "the child's BREAK ended with no signal sent"
        os.kill(breaker, signal.SIGUSR1)
        assert launcher.request(f"wait {breaker}").values == [str(errno.EINTR), "0"]
        assert launcher.read(fd, 8).errno_name == "EAGAIN"
        assert launcher.write(fd, LHREQ_BREAK, 0).number == 0


def test_initialize_maps_the_memory_of_its_caller_not_of_the_opener(
    mount: Mount, client_builds: Path, halt_image: GuestImage
) -> None:
    """The test process opens the node and maps a guest; a process that inherited the
    descriptor INITIALIZEs with the opener's address: refused, as it has nothing there."""
    image = halt_image
    node = os.open(mount.node, os.O_RDWR)
    memory = mmap.mmap(image.fd, image.pages * mmap.PAGESIZE, mmap.MAP_SHARED)
    anchor = ctypes.c_char.from_buffer(memory)
    try:
        opener_base = ctypes.addressof(anchor)
        with Client.start("c64", client_builds, pass_fds=(node, image.fd)) as other:
            refused = other.write(node, 0, opener_base, image.pfnlimit, image.pgdir, image.entry)
            assert refused.errno_name == "EFAULT"
            assert os.listdir(mount.guests) == []
            load_guest(other, node, image)  # its own memory: accepted, and the guest is its own
            assert os.listdir(mount.guests) == [str(other.pid)]
    finally:
        del anchor
        memory.close()
        os.close(node)


def test_handles_cost_no_descriptor_and_one_process_holds_a_bounded_number(
    mount: Mount,
) -> None:
    before = daemon_fds(mount)
    handles: list[int] = []
    try:
        for _ in range(MAX_HANDLES_PER_PROCESS):
            handles.append(os.open(mount.node, os.O_RDWR))
        assert daemon_fds(mount) <= before + FD_SLACK, daemon_fds(mount) - before
        with pytest.raises(OSError) as refused:
            handles.append(os.open(mount.node, os.O_RDWR))
        assert refused.value.errno == errno.EMFILE
        assert f"holds {MAX_HANDLES_PER_PROCESS} handles" in mount.log()
    finally:
        for handle in handles:
            os.close(handle)


def test_a_daemon_out_of_descriptors_answers_emfile_not_esrch(mount: Mount) -> None:
    daemon = mount.process.pid
    soft, hard = resource.prlimit(daemon, resource.RLIMIT_NOFILE)
    resource.prlimit(daemon, resource.RLIMIT_NOFILE, (daemon_fds(mount), hard))
    try:
        with pytest.raises(OSError) as refused:
            os.close(os.open(mount.node, os.O_RDWR))
    finally:
        resource.prlimit(daemon, resource.RLIMIT_NOFILE, (soft, hard))
    assert refused.value.errno in (errno.EMFILE, errno.ENFILE)
    assert "out of descriptors" in mount.log()
    os.close(os.open(mount.node, os.O_RDWR))  # and it recovers


def test_the_daemon_raises_its_descriptor_limit_to_the_hard_limit(tmp_path: Path) -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard // 2), hard))  # inherited
    try:
        with mounted(tmp_path / "mnt") as mount:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            assert resource.prlimit(mount.process.pid, resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_read_after_the_opening_thread_exited_is_not_interrupted(
    mount: Mount, client_builds: Path, halt_image: GuestImage
) -> None:
    with Client.start("c32", client_builds, pass_fds=(halt_image.fd,)) as launcher:
        assert launcher.request(f"catch {signal.SIGUSR1}").ok
        fd = launcher.request(f"threadopen {mount.node}").number
        load_guest(launcher, fd, halt_image)
        launcher.send(f"read {fd} 8")
        launcher.no_answer(HOLD)
        launcher.kill(signal.SIGUSR1)  # and its reader's signals are seen
        assert launcher.answer(DEATH_TIMEOUT).errno_name == "EINTR"
