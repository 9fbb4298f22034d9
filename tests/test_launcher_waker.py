"""The waker: input breaks the launcher out of its read, and ``lguest-waker PID`` does it from
another shell.  Also how the launcher ends: three Ctrl-C, SIGTERM, and the terminal put back.
"""

import os
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

from launcher.main import command as launcher_command
from tests.support.launch import Launcher
from tests.support.mount import Mount

PROMPT = b"lguest> "


def waker(mount: Mount, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "launcher.waker", "--mount", str(mount.path), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def test_lguest_waker_breaks_a_running_launcher_out_once(mount: Mount, guest_os: Path) -> None:
    with Launcher(mount, 32, guest_os, "quiet") as launcher:
        launcher.expect(PROMPT, timeout=60)
        result = waker(mount, str(launcher.pid))
        # BREAK 1 returns only once the launcher has serviced its input and written BREAK 0.
        assert result.returncode == 0, result.stderr
        launcher.send(b"echo still alive\n")
        launcher.expect(b"still alive\n")
        launcher.send(b"poweroff\n")
        assert launcher.wait(30) == 0


def test_lguest_waker_every_ms_keeps_breaking_until_the_guest_ends(
    mount: Mount, guest_os: Path
) -> None:
    with Launcher(mount, 32, guest_os, "quiet") as launcher:
        launcher.expect(PROMPT, timeout=60)
        process = subprocess.Popen(
            [sys.executable, "-m", "launcher.waker", "--mount", str(mount.path),
             str(launcher.pid), "--every", "20"],
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            time.sleep(1)
            launcher.send(b"echo under fire\n")
            launcher.expect(b"under fire\n")
            launcher.send(b"poweroff\n")
            assert launcher.wait(30) == 0
            assert process.wait(30) == 0
        finally:
            process.kill()
            process.wait()


def test_lguest_waker_for_a_pid_without_a_guest_says_so(mount: Mount) -> None:
    result = waker(mount, "999999")
    assert result.returncode == 1
    assert "no guest with pid 999999" in result.stderr


def test_the_launcher_forks_exactly_one_waker_and_it_ends_with_the_launcher(
    mount: Mount, guest_os: Path
) -> None:
    with Launcher(mount, 32, guest_os, "quiet") as launcher:
        launcher.expect(PROMPT, timeout=60)
        (waker_pid,) = child_pids(launcher.pid)
        launcher.send(b"poweroff\n")
        assert launcher.wait(30) == 0
    assert not Path(f"/proc/{waker_pid}").exists()


def test_three_ctrl_c_within_a_second_end_the_launcher_with_status_2(
    mount: Mount, guest_os: Path
) -> None:
    with Launcher(mount, 32, guest_os, "quiet") as launcher:
        launcher.expect(PROMPT, timeout=60)
        for _ in range(3):
            launcher.send(b"\x03")  # one byte per read, as from a keyboard
            time.sleep(0.1)
        assert launcher.wait(30) == 2
        assert "three Ctrl-C" in launcher.result().errors


def test_sigterm_ends_the_launcher_and_its_waker(mount: Mount, guest_os: Path) -> None:
    with Launcher(mount, 32, guest_os, "quiet") as launcher:
        launcher.expect(PROMPT, timeout=60)
        (waker_pid,) = child_pids(launcher.pid)
        launcher.signal(signal.SIGTERM)
        assert launcher.wait(30) == 128 + signal.SIGTERM
    assert not Path(f"/proc/{waker_pid}").exists()
    assert not (mount.guests / str(launcher.pid)).exists()


def test_terminal_goes_raw_while_running_and_is_restored(mount: Mount, guest_os: Path) -> None:
    main, tty = os.openpty()
    before = termios.tcgetattr(tty)
    process = subprocess.Popen(
        launcher_command(mount, 32, guest_os, "quiet"), stdin=tty, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        seen = b""
        while PROMPT not in seen:
            chunk = os.read(process.stdout.fileno(), 4096)
            assert chunk, seen
            seen += chunk
        raw = termios.tcgetattr(tty)
        assert not raw[3] & (termios.ICANON | termios.ECHO | termios.ISIG)
        os.write(main, b"poweroff\n")
        assert process.wait(30) == 0
        assert termios.tcgetattr(tty) == before
    finally:
        process.kill()
        process.wait()
        os.close(main)
        os.close(tty)
