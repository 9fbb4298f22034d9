"""The 2.6.24 launcher, patched and as shipped (``tests.support.original``), boots Linux 2.6.24.

Kernel, initramfs and ext2 disk come from ``launcher.guests.linux`` (built once, cached); the
launcher is the program 2.6.24 shipped, so this is 2007's launcher and kernel on lguestfs.  Every
test runs twice: with the project's three patches, and byte for byte as shipped
(``build_lguest_c(patched=False)``), whose private guest memory is adopted at INITIALIZE
(``lguestfs.adopt``) and whose forked Waker breaks on the inherited descriptor while the
launcher's read is held (``lguestfs.fs``, facts 2 and 3).  The shell on the console is typed
into (the waker breaks the launcher's read for every key: through ``guests/<pid>/waker`` when
patched, on the shared descriptor as shipped), the disk is read (its README) and written
(checked on the host after ``poweroff``); at the end of its console input ``/init``'s
``console_idle=`` ends the session.  Also here: stopping and tracing the launcher while it
is blocked in its read must not kill it (2.6.24 restarted the read; the daemon leaves it in
flight).
"""

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.guests.linux import LinuxBuild
from tests.support.launch import Launcher
from tests.support.linux import MEM_MB, PROMPT, linux_options
from tests.support.mount import Mount
from tests.support.original import LINUX_BOOT_TIMEOUT, dev_lguest, linux_booted, original_launcher
from tests.support.polling import wait_until

PROOF = b"written by Linux under the 2.6.24 launcher"
STOPPED_FOR = 1.0  # seconds the launcher stays stopped, or traced, in the middle of its read


@pytest.fixture(scope="module", params=[True, False], ids=["patched", "as-shipped"])
def lguest_c(request: pytest.FixtureRequest) -> Path:
    return original_launcher(patched=request.param)


@pytest.fixture
def booted(
    mount: Mount, lguest_c: Path, linux_build: LinuxBuild, tmp_path: Path
) -> Iterator[tuple[Launcher, Path]]:
    with linux_booted(mount, lguest_c, linux_build, tmp_path) as running:
        yield running


def test_at_console_end_of_file_init_with_console_idle_powers_the_guest_off(
    mount: Mount, lguest_c: Path, linux_build: LinuxBuild
) -> None:
    """2.6.24's launcher stops reading its console at end of file without a word to the guest;
    with ``console_idle=2`` /init ends the session once the shell has been idle that long (a
    command that runs longer, as this ``sleep``, keeps it alive)."""
    options = linux_options(linux_build)
    with (
        dev_lguest(mount),
        Launcher(
            None, MEM_MB, linux_build.vmlinux, "console_idle=2", options=options, program=lguest_c
        ) as launcher,
    ):
        launcher.expect(PROMPT, timeout=LINUX_BOOT_TIMEOUT)
        launcher.send(b"sleep 5; echo woke after $((2 + 3)) s\n")
        launcher.close_stdin()
        assert launcher.wait(60) == 1
    assert b"Failed to get console input, ignoring console." in launcher.stderr
    assert b"woke after 5 s" in launcher.stdout
    assert b"init: no console input for 2 s (console_idle=2): powering off" in launcher.stdout
    assert b"lguest: CRASH: Power down" in launcher.stderr


def blocked_in_read(pid: int) -> bool:
    """The launcher's main thread is asleep (in its read of the node, the guest running)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "S"


def tracer_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("TracerPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no TracerPid in /proc/{pid}/status")


def test_it_boots_linux_to_a_shell_that_reads_and_writes_the_disk(
    booted: tuple[Launcher, Path],
) -> None:
    launcher, disk = booted
    assert b"Booting paravirtualized kernel on lguest" in launcher.stdout
    launcher.send(b"echo $((6 * 7)) typed\n")
    launcher.expect(b"42 typed")
    launcher.send(b"cat /mnt/README\n")
    launcher.expect(b"The guest mounts it on /mnt")
    launcher.send(b"echo '" + PROOF + b"' > /mnt/proof; sync; exit\n")
    assert launcher.wait(60) == 1  # init powers off after the shell; 2.6.24 exits 1
    assert b"lguest: CRASH: Power down" in launcher.stderr, launcher.stderr
    assert PROOF in disk.read_bytes()


def test_sigstop_and_sigcont_while_it_reads_leave_it_running(
    booted: tuple[Launcher, Path],
) -> None:
    launcher, _ = booted
    wait_until(lambda: blocked_in_read(launcher.pid), 5.0, "asleep in its read")
    os.kill(launcher.pid, signal.SIGSTOP)
    time.sleep(STOPPED_FOR)
    os.kill(launcher.pid, signal.SIGCONT)
    launcher.send(b"echo still $((40 + 2))\n")
    launcher.expect(b"still 42", timeout=30)
    assert launcher.process.poll() is None, launcher.stderr


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (Debian package strace)")
def test_strace_attaching_while_it_reads_leaves_it_running(
    booted: tuple[Launcher, Path],
) -> None:
    launcher, _ = booted
    wait_until(lambda: blocked_in_read(launcher.pid), 5.0, "asleep in its read")
    tracer = subprocess.Popen(
        ["strace", "-p", str(launcher.pid), "-o", os.devnull], stderr=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: tracer_of(launcher.pid) != 0, 5.0, "traced")
        time.sleep(STOPPED_FOR)
    finally:
        # strace's own detach (on SIGINT) waits for the trap stop that only the read's end brings
        # (README, differences: a trace takes hold when the request returns); a tracer that dies
        # detaches at once.
        tracer.kill()
        tracer.wait()
    wait_until(lambda: tracer_of(launcher.pid) == 0, 5.0, "detached")
    launcher.send(b"echo traced $((40 + 2))\n")
    launcher.expect(b"traced 42", timeout=30)
    assert launcher.process.poll() is None, launcher.stderr
