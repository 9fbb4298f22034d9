"""Real Linux 2.6.24 through a real mount: the product's main workload as the test bed.

The kernel, its klibc initramfs and its ext2 disk are the ones ``python -m launcher.guests.linux``
builds (``linux_build``, once per run).  Each test boots it with ``lguest-launch`` and talks to
its shell: the boot reaches the prompt; /proc and dmesg read; a file written to the disk
survives a reboot and is read on the host; 200 fork+exec; a signal sent inside the guest; four
guests at once; input that reaches a guest busy computing (only a break gets the launcher out of
its read then); a launcher SIGKILLed during boot leaves nothing in the daemon.  All skip, saying
where to put one, when there is no 2.6.24 source tarball.
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from launcher.guests.handguest import footprint
from launcher.guests.linux import LinuxBuild, copy_disk
from tests.support.launch import Launcher, run_launcher
from tests.support.linux import MEM_MB, PROMPT, linux_options
from tests.support.mount import Mount
from tests.support.polling import wait_until

BOOT_TIMEOUT = 120.0  # seconds: a boot takes about one, but the machine may be busy
GUESTS_AT_ONCE = 4
LARGE_MEM_MB = 1000


@pytest.fixture
def disk(linux_build: LinuxBuild, tmp_path: Path) -> Path:
    return copy_disk(linux_build.disk_template, tmp_path / "disk.ext2")


def session(mount: Mount, build: LinuxBuild, commands: bytes, disk: Path | None = None) -> str:
    """Boot, run ``commands`` as piped input, and return the console output once it powered off
    (the terminal's CR LF turned into LF)."""
    result = run_launcher(
        mount, MEM_MB, build.vmlinux, options=linux_options(build, disk), stdin=commands,
        timeout=BOOT_TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 0, result.output + result.errors
    assert "lguest: CRASH: Power down" in result.errors
    return result.output.replace("\r\n", "\n")


def answers(output: str) -> str:
    """The output with each prompt replaced by a newline: every answer is then a whole line."""
    return output.replace(PROMPT.decode(), "\n")


def test_boots_to_the_shell_prompt_and_uname_says_2_6_24(
    mount: Mount, linux_build: LinuxBuild
) -> None:
    output = session(mount, linux_build, b"uname -r\n")
    assert "Booting paravirtualized kernel on lguest" in output
    assert "Time: lguest clocksource has been installed." in output
    assert PROMPT.decode() in output
    assert "\n2.6.24\n" in answers(output)
    assert "init: the shell exited: powering off" in output  # the end of input was an EOF


def test_proc_cpuinfo_interrupts_and_dmesg_read(mount: Mount, linux_build: LinuxBuild) -> None:
    output = session(mount, linux_build, b"cat /proc/cpuinfo\ncat /proc/interrupts\ndmesg\n")
    assert "vendor_id" in output and "model name" in output
    assert "CPU0" in output and "lguest" in output
    assert output.count("Linux version 2.6.24") == 2  # the boot, then dmesg again


def test_a_file_on_the_disk_survives_a_reboot_and_is_read_on_the_host(
    mount: Mount, linux_build: LinuxBuild, disk: Path
) -> None:
    first = session(mount, linux_build, b"echo written in the guest > /mnt/note\n", disk)
    assert "init: /dev/vda mounted on /mnt" in first
    second = session(mount, linux_build, b"cat /mnt/note\ncat /mnt/README\n", disk)
    assert "\nwritten in the guest\n" in answers(second)
    assert "lguestfs Linux guest's disk" in second  # made on the host by mke2fs -d
    debugfs = shutil.which("debugfs") or "/sbin/debugfs"
    on_host = subprocess.run(
        [debugfs, "-R", "cat /note", str(disk)], capture_output=True, text=True, check=True
    )
    assert on_host.stdout == "written in the guest\n"


def test_a_guest_above_the_kernels_low_memory_finds_its_initrd(
    mount: Mount, linux_build: LinuxBuild
) -> None:
    # 1000 MB: more than the 892 MB a 2.6.24 kernel maps, so the launcher puts the initrd
    # below 892 MB (launcher/layout.py) and the HIGHMEM kernel uses the rest as high memory.
    result = run_launcher(
        mount, LARGE_MEM_MB, linux_build.vmlinux, options=linux_options(linux_build),
        stdin=b"cat /proc/meminfo\n", timeout=BOOT_TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 0, result.output + result.errors
    assert "892MB LOWMEM available." in result.output
    assert "Freeing initrd memory" in result.output
    assert "HighTotal:" in result.output and "HighTotal:           0 kB" not in result.output


def test_200_fork_and_exec(mount: Mount, linux_build: LinuxBuild) -> None:
    loop = b"i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done; echo ran $i\n"
    assert "\nran 200\n" in answers(session(mount, linux_build, loop))


def test_a_signal_sent_inside_the_guest_ends_its_target(
    mount: Mount, linux_build: LinuxBuild
) -> None:
    # The child shell signals itself: no race with its start-up (an interactive shell's
    # background child ignores SIGTERM, as its parent does, until it has reset its signals).
    commands = b"sh -c 'kill -TERM $$; echo not reached'; echo status $?\n"
    output = answers(session(mount, linux_build, commands))
    assert "\nstatus 143\n" in output  # 128 + SIGTERM
    assert "\nnot reached\n" not in output


def test_four_linux_guests_at_once(mount: Mount, linux_build: LinuxBuild) -> None:
    launchers = [
        Launcher(mount, MEM_MB, linux_build.vmlinux, options=linux_options(linux_build))
        for _ in range(GUESTS_AT_ONCE)
    ]
    try:
        for number, launcher in enumerate(launchers):
            launcher.send(f"echo guest {number}; uname -r\n".encode())
        for number, launcher in enumerate(launchers):
            launcher.expect(f"guest {number}\r\n2.6.24\r\n".encode(), BOOT_TIMEOUT)
            launcher.close_stdin()
        assert [launcher.wait(BOOT_TIMEOUT) for launcher in launchers] == [0] * GUESTS_AT_ONCE
    finally:
        for launcher in launchers:
            launcher.__exit__(None, None, None)


def test_input_reaches_a_guest_busy_computing_through_the_waker(
    mount: Mount, linux_build: LinuxBuild
) -> None:
    # A loop in the background keeps the CPU busy: the guest never halts, so the launcher only
    # leaves its read (to hand over what we type) when its waker breaks it out.
    options = linux_options(linux_build)
    with Launcher(mount, MEM_MB, linux_build.vmlinux, options=options) as launcher:
        launcher.send(b"while :; do :; done &\n")
        launcher.expect(PROMPT, BOOT_TIMEOUT)
        time.sleep(1.0)  # the loop is running
        breaks_before = breaks(mount, launcher.pid)
        launcher.send(b"echo still answering\n")
        launcher.expect(b"\nstill answering\r\n", 60)
        assert breaks(mount, launcher.pid) > breaks_before
        launcher.send(b"kill %1\npoweroff\n")
        assert launcher.wait(60) == 0


def breaks(mount: Mount, pid: int) -> int:
    status = mount.status(pid)
    return int(next(line for line in status.splitlines() if line.startswith("breaks:")).split()[1])


def test_launcher_sigkilled_during_boot_leaves_nothing_behind(
    mount: Mount, linux_build: LinuxBuild, disk: Path
) -> None:
    session(mount, linux_build, b"")  # warm up: the first guest fills caches that stay
    wait_until(lambda: not os.listdir(mount.guests), 20.0, "no guests")
    before = footprint(mount.process.pid)
    mounts_before = mounts_under(disk.parent)
    options = linux_options(linux_build, disk)
    with Launcher(mount, MEM_MB, linux_build.vmlinux, options=options) as launcher:
        launcher.expect(b"Booting paravirtualized kernel on lguest", BOOT_TIMEOUT)
        entry = mount.guests / str(launcher.pid)
        assert entry.exists()
        launcher.process.send_signal(signal.SIGKILL)
        launcher.wait(30)
    wait_until(lambda: not entry.exists(), 20.0, f"{entry} gone")

    def back_to_before() -> bool:
        now = footprint(mount.process.pid)
        return now.threads <= before.threads and now.fds <= before.fds

    wait_until(back_to_before, 20.0, f"daemon back to {before}")
    assert mounts_under(disk.parent) == mounts_before == [str(mount.path)]
    assert os.listdir(mount.guests) == []


def mounts_under(directory: Path) -> list[str]:
    """Mount points in this test's own directory (other tests may mount elsewhere meanwhile)."""
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [point for point in points if point.startswith(f"{directory}/")]
