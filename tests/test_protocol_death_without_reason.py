"""Row 24: a guest whose death reason could not be allocated answers ENOMEM on every later read.

In 2.6.24 that happens when ``kasprintf`` fails.  A real guest here dies with a reason unless the
daemon runs out of memory making it, which no test can arrange honestly, so this is a unit test
of the pure protocol logic: a real :class:`~lguestfs.protocol.DeviceHandle` of this very process,
driving a stand-in guest that dies without a reason.
"""

import errno
import struct
import threading
from collections.abc import Callable

import pyfuse3
import pytest
import trio

from lguestfs.callers import Caller
from lguestfs.guest import GuestContract, RunExit
from lguestfs.protocol import DeviceHandle, Registry
from tests.support.standin import StandInGuest


class ReasonlessGuest(StandInGuest):
    """Dies on its first run, from its own thread, leaving ``death`` None."""

    def run(self, on_exit: Callable[[RunExit, int], None]) -> None:
        threading.Thread(target=on_exit, args=(RunExit.DIED, 0)).start()


def reasonless_starter(
    caller: Caller, base: int, pfnlimit: int, pgdir: int, start: int
) -> GuestContract:
    return ReasonlessGuest()


async def read_errno(handle: DeviceHandle, size: int) -> int:
    with pytest.raises(pyfuse3.FUSEError) as failure:
        await handle.read(size, threading.get_native_id())
    return failure.value.errno


def test_reads_after_a_death_without_reason_are_enomem() -> None:
    async def scenario() -> list[int]:
        caller = Caller(threading.get_native_id())
        handle = DeviceHandle(caller, Registry(), reasonless_starter)
        word = handle.word_bytes
        request = struct.pack(f"<5{'I' if word == 4 else 'Q'}", 0, 0, 1, 0, 0)
        assert await handle.write(request, threading.get_native_id()) == 4 * word
        answers = [await read_errno(handle, 1024) for _ in range(3)]
        await handle.release()
        return answers

    assert trio.run(scenario) == [errno.ENOENT, errno.ENOMEM, errno.ENOMEM]
