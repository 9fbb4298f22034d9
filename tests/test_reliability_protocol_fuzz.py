"""Protocol fuzzing: random opens, writes, reads and closes on many handles and wakers at once.

A hypothesis state machine plays a crowd of launchers and wakers against one daemon: fresh
handles that get random bytes and malformed requests, guests that NOTIFY in a loop or NOTIFY once
and crash, wakers opened on them whose BREAK 1 blocks in a thread of its own until the owner
answers its EAGAIN with BREAK 0.  After every step the answer must be one that spec 1 allows for
that handle in that state (the model below), and the ``mount`` fixture fails the test if the
daemon logged an internal error.  At least 20,000 operations run in CI (``LGUESTFS_LONG=1``:
ten times as many).

Two facts of this daemon shape the model (``lguestfs/fs.py``, ``lguestfs/protocol.py``):
ownership belongs to the thread that INITIALIZEd, on that handle (every owner request here comes
from the test's own thread), and a held request watches the thread that made it for signals; a
BREAK 1 thread opens its own waker descriptor.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import os
import struct
import threading
import time
from pathlib import Path
from typing import ClassVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from launcher.guests.handguest import SPIN, HandGuest, hypercall, initialised_guest, loop_back
from lguestfs import abi
from tests.support import LONG
from tests.support.guests import test_guest
from tests.support.mount import Mount

EXAMPLES = 1500 if LONG else 150
STEPS = 200
MIN_OPERATIONS = 20_000 * (10 if LONG else 1)
WORD = 8  # this process is 64-bit: requests and notifies are 8-byte words
MEM_MB = 4
MESSAGE_AT = 0x90000
MESSAGE = b"fuzz crash"
NOTIFY_WORD = 0xF00D
MAX_GUESTS = 3
BREAK_TIMEOUT = 5.0

Outcome = int | bytes | str  # a write's count, a read's bytes, or an errno name


def errname(code: int) -> str:
    return errno.errorcode[code]


def attempt_write(fd: int, data: bytes) -> Outcome:
    """The write's count or errno name.  An empty write never reaches the daemon (the kernel
    answers 0 itself), nor does an empty read: the rules below leave those two out."""
    try:
        return os.write(fd, data)
    except OSError as error:
        return errname(error.errno or 0)


def attempt_read(fd: int, size: int) -> Outcome:
    try:
        return os.read(fd, size)
    except OSError as error:
        return errname(error.errno or 0)


def request_words(data: bytes) -> tuple[int | None, int | None]:
    """The request word and its first argument, if the write carries them."""
    request = struct.unpack_from("<Q", data)[0] if len(data) >= WORD else None
    argument = struct.unpack_from("<Q", data, WORD)[0] if len(data) >= 2 * WORD else None
    return request, argument


def guest_code(crasher: bool) -> bytes:
    """A looper NOTIFYs for ever; a crasher NOTIFYs once, then CRASHes with MESSAGE."""
    notify = hypercall(abi.LHCALL_NOTIFY, NOTIFY_WORD)
    if crasher:
        return notify + hypercall(abi.LHCALL_CRASH, MESSAGE_AT) + SPIN
    return loop_back(notify)


@dataclasses.dataclass
class Breaker:
    """A waker's BREAK 1, blocked in a thread that opened its own waker descriptor."""

    thread: threading.Thread
    result: list[Outcome]


@dataclasses.dataclass
class Guest:
    hand: HandGuest
    name: str
    crasher: bool
    notified: bool = False  # the crasher's one notify has been consumed
    dead: bool = False  # the read that saw the death has returned ENOENT
    breakers: list[Breaker] = dataclasses.field(default_factory=list)

    @property
    def reason(self) -> bytes:
        return b"CRASH: " + MESSAGE + b"\0"


@dataclasses.dataclass
class Waker:
    fd: int
    guest: Guest
    closed_guest: bool = False  # the owner has been released under it


requests = st.sampled_from([0, 1, 2, 3, 4, 7]) | st.integers(0, 2**64 - 1)
arguments = st.sampled_from([0, 1, 31, 32, 2**32 - 1, 2**64 - 1]) | st.integers(0, 2**64 - 1)


@st.composite
def writes(draw: st.DrawFn) -> bytes:
    """Mostly well-formed requests (often cut short); sometimes any bytes at all."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(min_size=1, max_size=48))
    words = [draw(requests), *draw(st.lists(arguments, max_size=5))]
    data = struct.pack(f"<{len(words)}Q", *words)
    return data[: draw(st.integers(1, len(data)))] if draw(st.booleans()) else data


sizes = st.sampled_from([1, 4, 7, 8, 9, 16, 64, 1024]) | st.integers(1, 4096)


class ProtocolMachine(RuleBasedStateMachine):
    mount: Mount
    kernel: Path
    operations = 0
    outcomes: ClassVar[collections.Counter[str]] = collections.Counter()

    def __init__(self) -> None:
        super().__init__()
        self.fresh: list[int] = []
        self.guests: list[Guest] = []
        self.wakers: list[Waker] = []

    def count(self, what: str = "") -> None:
        ProtocolMachine.operations += 1
        if what:
            ProtocolMachine.outcomes[what] += 1

    # --- fresh handles: uninitialised, every request but INITIALIZE is EINVAL -----------------

    @rule()
    def open_fresh(self) -> None:
        self.fresh.append(os.open(self.mount.node, os.O_RDWR))
        self.count()

    @precondition(lambda self: self.fresh)
    @rule(index=st.integers(0), data=writes())
    def write_fresh(self, index: int, data: bytes) -> None:
        fd = self.fresh[index % len(self.fresh)]
        request, _ = request_words(data)
        got = attempt_write(fd, data)
        self.count()
        if request is None:
            assert got == "EFAULT", (data, got)
        elif request != abi.LHREQ_INITIALIZE:
            assert got == "EINVAL", (data, got)
        elif len(data) < (1 + abi.INITIALIZE_ARGS) * WORD:
            assert got == "EFAULT", (data, got)
        else:  # random memory: it cannot be shared
            assert got in ("EFAULT", "ENOMEM"), (data, got)

    @precondition(lambda self: self.fresh)
    @rule(index=st.integers(0), size=sizes)
    def read_fresh(self, index: int, size: int) -> None:
        got = attempt_read(self.fresh[index % len(self.fresh)], size)
        self.count()
        assert got == "EINVAL", (size, got)

    @precondition(lambda self: self.fresh)
    @rule(index=st.integers(0))
    def close_fresh(self, index: int) -> None:
        os.close(self.fresh.pop(index % len(self.fresh)))
        self.count()

    # --- guests and their owners ---------------------------------------------------------------

    @precondition(lambda self: len(self.guests) < MAX_GUESTS)
    @rule(crasher=st.booleans())
    def start_guest(self, crasher: bool) -> None:
        before = set(os.listdir(self.mount.guests))
        hand = HandGuest(
            self.mount.path,
            self.kernel,
            mem_mb=MEM_MB,
            patch=initialised_guest(guest_code(crasher), {MESSAGE_AT: MESSAGE + b"\0"}),
        )
        (name,) = set(os.listdir(self.mount.guests)) - before
        self.guests.append(Guest(hand, name, crasher))
        self.count()

    def guest(self, index: int) -> Guest:
        return self.guests[index % len(self.guests)]

    @precondition(lambda self: self.guests)
    @rule(index=st.integers(0), size=sizes)
    def read_owner(self, index: int, size: int) -> None:
        guest = self.guest(index)
        got = attempt_read(guest.hand.fd, size)
        self.count()
        if guest.dead:
            assert got == guest.reason[:size], (size, got)
            return
        notify = struct.pack("<Q", NOTIFY_WORD) if size >= WORD else "EFAULT"
        if guest.crasher and guest.notified:
            allowed: list[Outcome] = ["ENOENT"]
        else:
            allowed = [notify]
        if guest.breakers:
            allowed.append("EAGAIN")
        assert got in allowed, (size, got, allowed)
        ProtocolMachine.outcomes[f"owner read {got if isinstance(got, str) else 'notify'}"] += 1
        if got == "ENOENT":
            guest.dead = True
        elif got == "EAGAIN":
            self.release_breakers(guest, guest.hand.fd)
        elif guest.crasher:
            guest.notified = True

    def release_breakers(self, guest: Guest, fd: int) -> None:
        """BREAK 0 (the answer to EAGAIN): 0, and every blocked BREAK 1 returns 0."""
        assert attempt_write(fd, struct.pack("<2Q", abi.LHREQ_BREAK, 0)) == 0
        self.count()
        for breaker in guest.breakers:
            breaker.thread.join(BREAK_TIMEOUT)
            assert not breaker.thread.is_alive(), "BREAK 0 did not release a BREAK 1"
            assert breaker.result == [0], breaker.result
        guest.breakers.clear()

    @precondition(lambda self: self.guests)
    @rule(index=st.integers(0), data=writes())
    def write_owner(self, index: int, data: bytes) -> None:
        guest = self.guest(index)
        request, argument = request_words(data)
        if request == abi.LHREQ_BREAK and argument:
            return  # an owner's own BREAK 1 would block it for ever (spec 1.5)
        got = attempt_write(guest.hand.fd, data)
        self.count()
        if request is None:
            expected: Outcome = "EFAULT"
        elif guest.dead:
            expected = "ENOENT"
        elif request == abi.LHREQ_INITIALIZE:
            expected = "EBUSY"
        elif request in (abi.LHREQ_IRQ, abi.LHREQ_BREAK) and argument is None:
            expected = "EFAULT"
        elif request == abi.LHREQ_IRQ:
            expected = "EINVAL" if argument is not None and argument >= abi.LGUEST_IRQS else 0
        elif request == abi.LHREQ_BREAK:
            expected = 0
        else:
            expected = "EINVAL"
        assert got == expected, (data, got, expected)
        if request == abi.LHREQ_BREAK and got == 0:
            for breaker in guest.breakers:  # the BREAK 0 released them
                breaker.thread.join(BREAK_TIMEOUT)
                assert breaker.result == [0], breaker.result
            guest.breakers.clear()

    @precondition(lambda self: self.guests)
    @rule(index=st.integers(0))
    def close_guest(self, index: int) -> None:
        guest = self.guests.pop(index % len(self.guests))
        guest.hand.close()
        self.count()
        for breaker in guest.breakers:  # released with the guest: 0 or ENOENT, never a hang
            breaker.thread.join(BREAK_TIMEOUT)
            assert not breaker.thread.is_alive(), "closing the guest did not end a BREAK 1"
            assert breaker.result in ([0], ["ENOENT"]), breaker.result
        for waker in self.wakers:
            if waker.guest is guest:
                waker.closed_guest = True

    # --- wakers ----------------------------------------------------------------------------------

    @precondition(lambda self: self.guests)
    @rule(index=st.integers(0))
    def open_waker(self, index: int) -> None:
        guest = self.guest(index)
        self.wakers.append(
            Waker(os.open(self.mount.guests / guest.name / "waker", os.O_RDWR), guest)
        )
        self.count()

    @precondition(lambda self: self.wakers)
    @rule(index=st.integers(0), data=writes())
    def write_waker(self, index: int, data: bytes) -> None:
        waker = self.wakers[index % len(self.wakers)]
        request, argument = request_words(data)
        gone = waker.closed_guest or waker.guest.dead
        if request == abi.LHREQ_BREAK and argument and not gone:
            self.break_from_a_thread(waker.guest, data)
            return
        got = attempt_write(waker.fd, data)
        self.count()
        if request is None:
            expected: Outcome = "EFAULT"
        elif gone:
            expected = "ENOENT"
        elif request != abi.LHREQ_BREAK:
            expected = "EPERM"
        elif argument is None:
            expected = "EFAULT"
        else:
            expected = 0
        assert got == expected, (data, got, expected)
        if request == abi.LHREQ_BREAK and got == 0:
            self.release_breakers_released(waker.guest)

    @precondition(lambda self: self.guests)
    @rule(index=st.integers(0), argument=st.integers(1, 2**64 - 1))
    def break_guest(self, index: int, argument: int) -> None:
        """What a waker is for: BREAK 1 (blocks), to be answered by the owner's EAGAIN."""
        guest = self.guest(index)
        data = struct.pack("<2Q", abi.LHREQ_BREAK, argument)
        if guest.dead:
            fd = os.open(self.mount.guests / guest.name / "waker", os.O_RDWR)
            try:
                assert attempt_write(fd, data) == "ENOENT"
            finally:
                os.close(fd)
            self.count()
        elif not guest.breakers:
            self.break_from_a_thread(guest, data)

    def release_breakers_released(self, guest: Guest) -> None:
        for breaker in guest.breakers:
            breaker.thread.join(BREAK_TIMEOUT)
            assert breaker.result == [0], breaker.result
        guest.breakers.clear()

    def break_from_a_thread(self, guest: Guest, data: bytes) -> None:
        """BREAK 1 blocks until a BREAK 0: run it in a thread with its own waker descriptor,
        and wait until the daemon has counted it, so that the model knows the flag is set."""
        status = self.mount.guests / guest.name / "status"
        counted = self.breaks_counted(status)
        result: list[Outcome] = []

        def send() -> None:
            fd = os.open(self.mount.guests / guest.name / "waker", os.O_RDWR)
            try:
                result.append(attempt_write(fd, data))
            finally:
                os.close(fd)

        thread = threading.Thread(target=send, name="fuzz-breaker", daemon=True)
        thread.start()
        guest.breakers.append(Breaker(thread, result))
        self.count("BREAK 1 from a waker thread")
        deadline = time.monotonic() + BREAK_TIMEOUT
        while self.breaks_counted(status) == counted:
            assert time.monotonic() < deadline, "a BREAK 1 was never counted"
            assert not result, f"BREAK 1 returned at once: {result}"
            time.sleep(0.001)

    @staticmethod
    def breaks_counted(status: Path) -> int:
        for line in status.read_text().splitlines():
            if line.startswith("breaks:"):
                return int(line.split()[1])
        raise AssertionError(f"no breaks line in {status}")

    @precondition(lambda self: self.wakers)
    @rule(index=st.integers(0), size=sizes)
    def read_waker(self, index: int, size: int) -> None:
        waker = self.wakers[index % len(self.wakers)]
        got = attempt_read(waker.fd, size)
        self.count()
        assert got == "EPERM", (size, got)

    @precondition(lambda self: self.wakers)
    @rule(index=st.integers(0))
    def close_waker(self, index: int) -> None:
        os.close(self.wakers.pop(index % len(self.wakers)).fd)
        self.count()

    @invariant()
    def no_guest_left_behind(self) -> None:
        """The guests/ directory lists exactly the guests whose owners are open."""
        listed = set(os.listdir(self.mount.guests))
        assert {guest.name for guest in self.guests} <= listed

    def teardown(self) -> None:
        for guest in self.guests:
            if guest.breakers and not guest.dead:
                self.release_breakers(guest, guest.hand.fd)
            guest.hand.close()
            for breaker in guest.breakers:
                breaker.thread.join(BREAK_TIMEOUT)
        for waker in self.wakers:
            os.close(waker.fd)
        for fd in self.fresh:
            os.close(fd)


def test_random_requests_on_many_handles_and_wakers_get_only_answers_the_spec_allows(
    mount: Mount,
) -> None:
    ProtocolMachine.mount = mount
    ProtocolMachine.kernel = test_guest("spin")
    ProtocolMachine.operations = 0
    ProtocolMachine.outcomes.clear()
    machine = ProtocolMachine.TestCase
    machine.settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    machine().runTest()
    print(f"{ProtocolMachine.operations} operations; {dict(ProtocolMachine.outcomes)}")
    assert ProtocolMachine.operations >= MIN_OPERATIONS
    deadline = time.monotonic() + 10
    while os.listdir(mount.guests) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert os.listdir(mount.guests) == [], "guests outlived their owners"
