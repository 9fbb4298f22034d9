"""The default guest's shell, end to end: every command typed into the console of a real launcher
booting ``launcher/guests/os`` through a real mount.

Booting costs about a second, so one guest runs the whole script of commands below (piped in, as
a user's ``printf ... | lguest-launch`` would) and each test checks the part of the transcript its
command produced.  The guest echoes each line after the prompt, which is how a command's output
is found: from ``lguest> COMMAND`` up to the next prompt.
"""

import re
from collections.abc import Iterator

import pytest

from launcher.guests.build import build_guest
from tests.support.launch import LaunchResult, run_launcher
from tests.support.mount import mounted, skip_reason

PROMPT = "lguest> "
SCRIPT = [
    "help",
    "echo hello, world",
    "uptime",
    "mem",
    "devices",
    "cmdline",
    "user",
    "user peek",
    "fault",
    "bench",
    "no-such-command",
    "stats",
    "mem ",  # the same command again (the trailing blank tells the transcripts apart)
]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaunchResult]:
    """One boot of the default guest running SCRIPT, then the end of input."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    guest = build_guest("os")
    with mounted(tmp_path_factory.mktemp("os-shell") / "mnt") as mount:
        stdin = "".join(f"{line}\n" for line in SCRIPT).encode()
        yield run_launcher(mount, 32, guest, "hz=100", stdin=stdin, timeout=120)


def output_of(session: LaunchResult, command: str) -> str:
    """What ``command`` printed: from its echoed line to the next prompt."""
    text = session.output
    start = text.index(PROMPT + command + "\n") + len(PROMPT + command + "\n")
    end = text.find(PROMPT, start)
    return text[start : end if end >= 0 else len(text)]


def test_guest_boots_to_the_prompt(session: LaunchResult) -> None:
    assert "lguest-os: booting" in session.output
    assert re.search(r"mm: 32 MB RAM, .* own page tables at 0x[0-9a-f]+", session.output)
    assert "Type 'help' for the commands." in session.output
    assert PROMPT in session.output, session.output + session.errors


def test_end_of_input_powers_the_guest_off_with_status_0(session: LaunchResult) -> None:
    assert "end of input: powering off" in session.output
    assert "lguest: CRASH: Power down" in session.errors
    assert session.returncode == 0


def test_help_lists_every_command(session: LaunchResult) -> None:
    listed = output_of(session, "help")
    for command in ("help", "uptime", "echo", "mem", "blk read", "blk write", "net send"):
        assert f"  {command}" in listed
    for command in ("stats", "user", "fault", "bench", "crash", "poweroff"):
        assert f"  {command}" in listed


def test_echo_prints_its_text(session: LaunchResult) -> None:
    assert output_of(session, "echo hello, world") == "hello, world\n"


def test_uptime_counts_seconds_and_timer_ticks(session: LaunchResult) -> None:
    assert re.fullmatch(
        r"up \d+\.\d{3} s, \d+ timer ticks? at 100 Hz\n", output_of(session, "uptime")
    )


def test_mem_shows_the_memory_map_and_free_pages(session: LaunchResult) -> None:
    shown = output_of(session, "mem")
    assert "RAM      0x00000000-0x02000000  32768 KB (e820)" in shown
    assert "devices  0x02000000-" in shown  # the device page sits just above RAM
    match = re.search(r"pages: 8192 total, (\d+) free \(\d+ KB\), (\d+) in use", shown)
    assert match and int(match[1]) + int(match[2]) == 8192 and int(match[1]) > 7000


def test_devices_are_acknowledged_and_driver_ok(session: LaunchResult) -> None:
    shown = output_of(session, "devices")
    assert re.search(r"console +type 3, status 0x07 ack driver ok", shown), shown


def test_cmdline_shows_the_launchers_arguments(session: LaunchResult) -> None:
    assert 'command line: "hz=100"' in output_of(session, "cmdline")


def test_user_program_runs_at_privilege_3_and_exits_through_int_0x80(
    session: LaunchResult,
) -> None:
    shown = output_of(session, "user")
    assert "user: hello from user mode\n" in shown
    assert (
        "user: program exited with status 5050 after 2 system calls from cs 0x73 "
        "(privilege level 3)" in shown
    )


def test_user_program_touching_kernel_memory_is_killed_by_its_page_fault(
    session: LaunchResult,
) -> None:
    shown = output_of(session, "user peek")
    assert "user: page fault at eip 0x8048" in shown
    assert "(cr2 0xc0100000, error 0x5): program killed" in shown  # present, read, user mode


def test_fault_handler_reports_cr2_and_recovers(session: LaunchResult) -> None:
    shown = output_of(session, "fault")
    assert "page fault: write at cr2=0x40000000 (page not present)" in shown
    assert "fault: recovered from 1 page fault, read back 0x1234abcd" in shown


def test_bench_prints_its_own_speed(session: LaunchResult) -> None:
    shown = output_of(session, "bench")
    for loop in ("ALU loop", "stores", "hypercalls"):
        assert re.search(
            rf"bench: {loop} +\d+\.\d{{3}} million .*/s \(\d+ rounds in \d+ ms\)", shown
        )


def test_unknown_command_says_so(session: LaunchResult) -> None:
    assert (
        output_of(session, "no-such-command") == "no-such-command: unknown command (try 'help')\n"
    )


def test_stats_count_interrupts_faults_and_system_calls(session: LaunchResult) -> None:
    shown = output_of(session, "stats")
    match = re.search(r"interrupts  timer (\d+), console (\d+)", shown)
    assert match and int(match[1]) > 0 and int(match[2]) > 0, shown  # typing arrives by irq
    # fault: one recovered fault; user: 2 system calls, user peek: 1 (then its fault kills it)
    faults = re.search(
        r"traps       page faults (\d+) \((\d+) recovered\), system calls (\d+)", shown
    )
    assert faults and int(faults[1]) >= 1 and int(faults[2]) == 1 and int(faults[3]) >= 3, shown


def free_pages(shown: str) -> int:
    match = re.search(r"pages: \d+ total, (\d+) free", shown)
    assert match, shown
    return int(match[1])


def test_user_programs_and_faults_give_back_every_page(session: LaunchResult) -> None:
    assert free_pages(output_of(session, "mem ")) == free_pages(output_of(session, "mem"))
