"""The default guest's life from boot options to death, end to end through a real mount: how it
ends (``crash`` is exit 1 with the reason, ``poweroff`` and the end of input are exit 0), what the
command line changes, and typed input waking a halted guest through the waker and an interrupt.
"""

import re
import time
from pathlib import Path

from tests.support.launch import Launcher, run_launcher
from tests.support.mount import Mount

PROMPT = b"lguest> "


def test_crash_ends_the_launcher_with_status_1_and_the_reason(mount: Mount, guest_os: Path) -> None:
    result = run_launcher(
        mount, 32, guest_os, "quiet", stdin=b"crash the sky is falling\necho no\n"
    )
    assert result.returncode == 1
    assert "lguest: CRASH: the sky is falling" in result.errors
    assert "\nno\n" not in result.output  # nothing runs after the crash


def test_crash_reason_is_cut_at_127_characters(mount: Mount, guest_os: Path) -> None:
    result = run_launcher(mount, 32, guest_os, "quiet", stdin=b"crash " + b"x" * 200 + b"\n")
    assert result.returncode == 1
    assert f"lguest: CRASH: {'x' * 127}\n" in result.errors


def test_poweroff_ends_the_launcher_with_status_0(mount: Mount, guest_os: Path) -> None:
    result = run_launcher(mount, 32, guest_os, "quiet", stdin=b"poweroff\necho no\n")
    assert result.returncode == 0
    assert "lguest: CRASH: Power down" in result.errors
    assert "\nno\n" not in result.output


def test_ctrl_d_on_an_empty_line_powers_off(mount: Mount, guest_os: Path) -> None:
    with Launcher(mount, 32, guest_os, "quiet") as launcher:
        launcher.expect(PROMPT)
        launcher.send(b"\x04")
        assert launcher.wait(30) == 0


def test_quiet_prints_nothing_before_the_prompt(mount: Mount, guest_os: Path) -> None:
    result = run_launcher(mount, 32, guest_os, "quiet", stdin=b"")
    assert result.output == "lguest> ", result.output
    assert result.returncode == 0


def test_run_options_execute_before_the_prompt(mount: Mount, guest_os: Path) -> None:
    result = run_launcher(mount, 32, guest_os, "quiet", "run=echo,one", "run=echo,two", stdin=b"")
    assert result.output.startswith("lguest> echo one\none\nlguest> echo two\ntwo\nlguest> ")


def test_run_poweroff_makes_a_guest_that_boots_and_stops(mount: Mount, guest_os: Path) -> None:
    with Launcher(mount, 32, guest_os, "quiet", "run=poweroff") as launcher:
        assert launcher.wait(30) == 0  # stdin left open: the guest did not wait for it


def test_unknown_options_are_reported_and_ignored(mount: Mount, guest_os: Path) -> None:
    result = run_launcher(mount, 32, guest_os, "bogus", "hz=fast", stdin=b"cmdline\n")
    assert "boot: ignoring unknown option 'bogus'" in result.output
    assert "boot: hz=fast is not a rate from 0 to 10000: keeping 100" in result.output
    assert 'command line: "bogus hz=fast"' in result.output
    assert result.returncode == 0


def test_typing_wakes_a_halted_guest_through_the_console_interrupt(
    mount: Mount, guest_os: Path
) -> None:
    # hz=0: no timer, so nothing but the console's irq can end the guest's HALT.
    with Launcher(mount, 32, guest_os, "quiet", "hz=0") as launcher:
        launcher.expect(PROMPT)
        time.sleep(0.2)  # the guest is asleep in HALT by now
        launcher.send(b"echo awake\n")
        launcher.expect(b"awake\n")
        launcher.send(b"stats\n")
        output = launcher.expect(b"system calls 0\n").decode()
        match = re.search(r"interrupts  timer 0, console (\d+)\nhypercalls  HALT (\d+)", output)
        assert match and int(match[1]) >= 1 and int(match[2]) >= 1, output
        launcher.close_stdin()
        assert launcher.wait(30) == 0


def test_noecho_leaves_typed_input_unechoed(mount: Mount, guest_os: Path) -> None:
    result = run_launcher(mount, 32, guest_os, "quiet", "noecho", stdin=b"echo said\n")
    assert result.output == "lguest> said\nlguest> ", result.output


def test_an_initrd_stays_reserved_at_the_top_of_memory(
    mount: Mount, guest_os: Path, tmp_path: Path
) -> None:
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(b"\x5a" * 100_000)  # 25 pages once the launcher rounds it up
    result = run_launcher(
        mount, 32, guest_os, "quiet", options=[f"--initrd={initrd}"], stdin=b"mem\n"
    )
    assert "  initrd 0x01fe7000-0x02000000  100 KB (reserved)" in result.output, result.output
    assert result.returncode == 0


def test_user_programs_under_a_fast_timer_leave_the_kernel_intact(
    mount: Mount, guest_os: Path
) -> None:
    runs = 300
    result = run_launcher(mount, 32, guest_os, "quiet", "hz=1000", stdin=b"user\n" * runs)
    assert result.output.count("program exited with status 5050") == runs, result.errors
    assert result.returncode == 0, result.errors
