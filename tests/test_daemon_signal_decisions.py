"""Which pending signal ends a held request (``callers.interrupting_signal``): pure logic.

The daemon reads ``/proc/<tid>/status`` and answers EINTR only for a signal that will run a
handler or end the process, as 2.6.24's -ERESTARTSYS let the kernel decide.  The end-to-end
cases run through a mount in ``test_daemon_launcher_restarts.py``; here is the whole table.
"""

import signal

import pytest

from lguestfs.callers import interrupting_signal


def bit(*signums: int) -> str:
    mask = 0
    for signum in signums:
        mask |= 1 << (signum - 1)
    return f"{mask:016x}"


def status(
    pending: tuple[int, ...] = (),
    shared: tuple[int, ...] = (),
    blocked: tuple[int, ...] = (),
    ignored: tuple[int, ...] = (),
    caught: tuple[int, ...] = (),
    state: str = "D (disk sleep)",
) -> str:
    return (
        f"Name:\tlauncher\nState:\t{state}\nTgid:\t10\nPid:\t10\nTracerPid:\t0\n"
        f"SigPnd:\t{bit(*pending)}\nShdPnd:\t{bit(*shared)}\nSigBlk:\t{bit(*blocked)}\n"
        f"SigIgn:\t{bit(*ignored)}\nSigCgt:\t{bit(*caught)}\n"
    )


USR1, USR2, TERM, KILL = signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGKILL


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (status(), None),  # state D and nothing pending: after STOP+CONT, or a ptrace trap
        (status(pending=(KILL,)), KILL),
        (status(pending=(USR1,), caught=(USR1,)), USR1),  # a handler will run
        (status(shared=(USR1,), caught=(USR1,)), USR1),  # process-directed
        (status(pending=(TERM,)), TERM),  # default action: terminate
        (status(pending=(signal.SIGRTMIN + 1,)), signal.SIGRTMIN + 1),  # real-time: terminate
        (status(pending=(USR1,), caught=(USR1,), blocked=(USR1,)), None),
        (status(pending=(USR2,), ignored=(USR2,)), None),  # pending only under ptrace
        (status(pending=(signal.SIGSTOP,)), None),
        (status(shared=(signal.SIGTSTP,)), None),
        (status(pending=(signal.SIGTTIN, signal.SIGTTOU)), None),
        (status(pending=(signal.SIGCHLD, signal.SIGCONT, signal.SIGWINCH, signal.SIGURG)), None),
        (status(pending=(signal.SIGCONT,), caught=(signal.SIGCONT,)), signal.SIGCONT),
        (status(pending=(signal.SIGSTOP, USR2), ignored=(USR2,), blocked=(TERM,)), None),
        (status(pending=(USR1, KILL), caught=(USR1,)), KILL),  # SIGKILL first
    ],
)
def test_interrupting_signal(text: str, expected: int | None) -> None:
    assert interrupting_signal(text) == expected
