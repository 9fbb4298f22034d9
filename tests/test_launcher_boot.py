"""lguest-launch boots the default guest through a real mount: console out and in, death, power-off.

Everything real: the daemon mounted by the ``mount`` fixture, ``python -m launcher`` as a process,
the default guest OS (``launcher/guests/os``) built by the project, driven through its shell.
"""

from pathlib import Path

from tests.support.launch import Launcher, run_launcher
from tests.support.mount import Mount

PROMPT = b"lguest> "


def test_early_console_and_virtio_console_both_reach_stdout(mount: Mount, guest_os: Path) -> None:
    result = run_launcher(mount, 32, guest_os, "run=poweroff", timeout=60)
    # The first line is printed through NOTIFY (early console), the later ones through the
    # virtio console's output queue.
    assert "lguest-os: booting" in result.output
    assert "lguest-os: up in" in result.output
    assert result.returncode == 0, result.errors


def test_poweroff_prints_the_reason_and_exits_0(mount: Mount, guest_os: Path) -> None:
    result = run_launcher(mount, 32, guest_os, "quiet", stdin=b"poweroff\n", timeout=60)
    assert result.errors.strip() == "lguest: CRASH: Power down"
    assert result.returncode == 0


def test_crash_prints_the_reason_and_exits_1(mount: Mount, guest_os: Path) -> None:
    result = run_launcher(mount, 32, guest_os, "quiet", stdin=b"crash it hurts\n", timeout=60)
    assert result.errors.strip() == "lguest: CRASH: it hurts"
    assert result.returncode == 1


def test_typed_input_reaches_the_guest_shell(mount: Mount, guest_os: Path) -> None:
    # No timer tick (hz=0): the guest halts until the waker breaks the launcher out and the
    # console input interrupt wakes it.
    with Launcher(mount, 32, guest_os, "quiet", "hz=0") as launcher:
        launcher.expect(PROMPT, timeout=60)
        launcher.send(b"echo first line\n")
        launcher.expect(b"first line\n", timeout=30)
        launcher.send(b"echo second line\n")
        launcher.expect(b"second line\n", timeout=30)
        launcher.send(b"poweroff\n")
        assert launcher.wait(30) == 0


def test_end_of_input_powers_the_guest_off(mount: Mount, guest_os: Path) -> None:
    result = run_launcher(mount, 32, guest_os, "quiet", stdin=b"echo bye\n", timeout=60)
    assert "bye" in result.output
    assert result.returncode == 0


def test_the_command_line_reaches_the_guest(mount: Mount, guest_os: Path) -> None:
    result = run_launcher(mount, 32, guest_os, "quiet", "hz=50", stdin=b"cmdline\n", timeout=60)
    assert "hz=50" in result.output
