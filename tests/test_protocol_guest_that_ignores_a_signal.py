"""A guest that never stops for a signal must not leave its launcher unkillable.

That can only happen through a Host bug (a hypercall stuck in a loop), so this is a unit test of
the protocol's defence: a real :class:`~lguestfs.protocol.DeviceHandle` of this process whose
reader "has a signal" (its ``/proc`` look is replaced), driving a stand-in guest that ignores
``interrupt()``.  The read must end with EINTR after ``STOP_GRACE``, later reads are EBUSY
until the guest reports back, and the daemon says what went wrong (an "internal error" line,
which the ``mount`` fixture treats as a failure of any real test).
"""

import errno
import logging
import struct
import threading
from collections.abc import Callable

import pyfuse3
import pytest
import trio

from lguestfs.callers import Caller, HeldThread, ThreadState
from lguestfs.guest import GuestContract, RunExit
from lguestfs.protocol import STOP_GRACE, DeviceHandle, Registry
from tests.support.standin import StandInGuest


class DeafGuest(StandInGuest):
    """Runs for ever: ``interrupt()`` is ignored; ``finish()`` ends the run late."""

    on_exit: Callable[[RunExit, int], None] | None = None

    def run(self, on_exit: Callable[[RunExit, int], None]) -> None:
        self.on_exit = on_exit

    def finish(self) -> None:
        assert self.on_exit is not None
        threading.Thread(target=self.on_exit, args=(RunExit.SIGNAL, 0)).start()


async def read_errno(handle: DeviceHandle) -> int:
    with pytest.raises(pyfuse3.FUSEError) as failure:
        await handle.read(8, threading.get_native_id())
    return failure.value.errno


def test_read_ends_with_eintr_when_the_guest_ignores_the_signal(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    guest = DeafGuest()
    monkeypatch.setattr(HeldThread, "state", lambda self: ThreadState.SIGNALLED)

    def starter(caller: Caller, base: int, pfnlimit: int, pgdir: int, start: int) -> GuestContract:
        return guest

    async def scenario() -> list[int]:
        caller = Caller(threading.get_native_id())
        handle = DeviceHandle(caller, Registry(), starter)
        word = "I" if handle.word_bytes == 4 else "Q"
        await handle.write(struct.pack(f"<5{word}", 0, 0, 1, 0, 0), threading.get_native_id())
        started = trio.current_time()
        answers = [await read_errno(handle)]
        assert trio.current_time() - started >= STOP_GRACE
        answers.append(await read_errno(handle))  # the first run has not ended yet
        guest.finish()
        await trio.sleep(0.1)
        assert handle.session is not None and not handle.session.running  # reads may run again
        await handle.release()
        return answers

    with caplog.at_level(logging.WARNING, logger="lguestfs.protocol"):
        answers = trio.run(scenario)
    assert answers == [errno.EINTR, errno.EBUSY]
    assert "ignored a signal" in caplog.text
