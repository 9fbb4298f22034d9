"""``scripts/run``, the main job, as a user runs it: it mounts its own lguestfs in a temporary
directory, boots the default guest with a disk and a network peer, and leaves nothing behind
(no mount, no temporary directory, no process) however the session ends.

Each run gets its own TMPDIR (``run_tmpdir``), so "nothing behind" is checked on a directory no
one else uses.
"""

import os
import pty
import signal
import subprocess
import time
from pathlib import Path

from tests.support.run import RUN, read_until, run_environment


def test_piped_session_runs_its_commands_then_powers_off_and_cleans_up(run_tmpdir: Path) -> None:
    commands = b"echo from the main job\nblk read 0\nnet send ping\nuptime\n"
    result = subprocess.run(
        [str(RUN), "--os", "quiet"],
        input=commands,
        capture_output=True,
        env=run_environment(run_tmpdir),
        timeout=180,
        check=False,
    )
    output = result.stdout.decode(errors="replace")
    assert result.returncode == 0, output + result.stderr.decode(errors="replace")
    assert "lguest> echo from the main job\nfrom the main job\n" in output
    assert 'blk: sector 0: "Hello from sector 0 of the temporary disk' in output
    assert 'type 0x88b5: "echo: ping"' in output  # the echo peer answered the frame
    assert "end of input: powering off" not in output  # quiet
    assert b"lguest: CRASH: Power down" in result.stderr


def test_sigterm_mid_session_stops_everything_and_cleans_up(run_tmpdir: Path) -> None:
    process = subprocess.Popen(
        [str(RUN), "--os", "quiet"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=run_environment(run_tmpdir),
    )
    try:
        assert process.stdout is not None
        read_until(process.stdout, b"lguest> ", timeout=120)
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode != 0
    assert b"scripts/run: stopped by SIGTERM" in errors


def test_terminal_session_is_interactive_and_three_ctrl_c_end_it_cleanly(
    run_tmpdir: Path,
) -> None:
    # On a terminal the launcher turns off echo, line editing and keyboard signals: the guest
    # echoes what is typed, and Ctrl-C is a byte for the guest, three of them end the session.
    pid, terminal = pty.fork()
    if pid == 0:  # the child: scripts/run on the terminal
        os.execve(str(RUN), [str(RUN), "--os", "quiet"], run_environment(run_tmpdir))
    terminal_file = os.fdopen(terminal, "rb", buffering=0)  # owns the fd from here
    try:
        read_until(terminal_file, b"lguest> ", timeout=120)
        os.write(terminal, b"echo typed\r")
        read_until(terminal_file, b"echo typed\r\ntyped\r\nlguest> ", timeout=30)
        for _ in range(3):
            os.write(terminal, b"\x03")
            time.sleep(0.1)
        read_until(terminal_file, b"three Ctrl-C", timeout=30)
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 2
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        terminal_file.close()
