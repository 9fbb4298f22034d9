"""``scripts/run`` with Linux 2.6.24, as the README's first command runs it: piped input runs and
powers the guest off (exit 0), one Ctrl-C on a terminal interrupts the guest's command and
``poweroff`` exits 0, three Ctrl-C exit 2,
the terminal is put back, and nothing is left behind.  Each session uses a copy of the disk
template (``--block``), so the user's own kept disk is not touched.  Skipped without a 2.6.24
source tarball.
"""

import os
import pty
import signal
import subprocess
import termios
import time
from pathlib import Path

import pytest

from launcher.guests.linux import LinuxBuild, copy_disk
from tests.support.linux import PROMPT
from tests.support.run import RUN, read_until, run_environment

SESSION_TIMEOUT = 180.0
STEP_PAUSE = 0.5  # seconds after each step's answer: the guest's command gets going


@pytest.fixture
def disk(linux_build: LinuxBuild, tmp_path: Path) -> Path:
    return copy_disk(linux_build.disk_template, tmp_path / "disk.ext2")


def test_piped_commands_run_then_the_guest_powers_off(run_tmpdir: Path, disk: Path) -> None:
    result = subprocess.run(
        [str(RUN), f"--block={disk}"],
        input=b"uname -r\necho kept > /mnt/kept\n",
        capture_output=True,
        env=run_environment(run_tmpdir),
        timeout=SESSION_TIMEOUT,
        check=False,
    )
    output = result.stdout.decode(errors="replace").replace("\r\n", "\n")
    assert result.returncode == 0, output + result.stderr.decode(errors="replace")
    assert "Booting paravirtualized kernel on lguest" in output
    assert f"{PROMPT.decode()}2.6.24\n" in output
    assert b"lguest: CRASH: Power down" in result.stderr
    on_host = subprocess.run(
        ["debugfs", "-R", "cat /kept", str(disk)], capture_output=True, text=True, check=True
    )
    assert on_host.stdout == "kept\n"


def terminal_session(run_tmpdir: Path, disk: Path) -> tuple[int, int]:
    """scripts/run on a new terminal, forked: (child pid, terminal fd)."""
    pid, terminal = pty.fork()
    if pid == 0:
        os.execve(str(RUN), [str(RUN), f"--block={disk}"], run_environment(run_tmpdir))
    return pid, terminal


def finish(pid: int, terminal: int, steps: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """Wait for the prompt, check the terminal is raw, then for each step type its keys and read
    until its text; return (exit status, output), checking the terminal was put back."""
    with os.fdopen(terminal, "rb", buffering=0) as terminal_file:
        try:
            cooked = termios.tcgetattr(terminal)[3]
            seen = read_until(terminal_file, PROMPT, timeout=SESSION_TIMEOUT)
            assert not termios.tcgetattr(terminal)[3] & termios.ICANON  # raw while it runs
            for typed, until in steps:
                for byte in typed:
                    os.write(terminal, bytes([byte]))
                    time.sleep(0.05)
                seen += read_until(terminal_file, until, timeout=60)
                time.sleep(STEP_PAUSE)
            _, status = os.waitpid(pid, 0)
            pid = 0
            assert termios.tcgetattr(terminal)[3] == cooked  # the terminal is put back
            return os.waitstatus_to_exitcode(status), seen
        finally:
            if pid:  # SIGTERM first: scripts/run then stops its daemon and unmounts
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 30
                while os.waitpid(pid, os.WNOHANG) == (0, 0):
                    if time.monotonic() > deadline:
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                        break
                    time.sleep(0.1)


def test_ctrl_c_stops_a_command_and_poweroff_exits_0(run_tmpdir: Path, disk: Path) -> None:
    # One Ctrl-C is the guest's: its terminal sends SIGINT to the foreground job.
    steps = [
        (b"sleep 600; echo slept\r", b"sleep 600; echo slept\r"),
        (b"\x03", PROMPT),
        (b"poweroff\r", b"Power down"),
    ]
    status, seen = finish(*terminal_session(run_tmpdir, disk), steps)
    assert status == 0, seen
    assert b"slept" not in seen.replace(b"echo slept", b"")


def test_three_ctrl_c_on_the_terminal_exit_2(run_tmpdir: Path, disk: Path) -> None:
    status, seen = finish(*terminal_session(run_tmpdir, disk), [(b"\x03" * 3, b"three Ctrl-C")])
    assert status == 2, seen
