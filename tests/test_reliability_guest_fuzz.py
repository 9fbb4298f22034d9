"""Guest fuzzing: guests of random bytes, and guests making random hypercalls, each either run or
die with a reason, while the daemon and a canary guest beside them keep working.

Each fuzz guest is machine code written straight over a small carrier guest's entry point
(``launcher.guests.handguest``): it runs at privilege level 1 from its first instruction on the
launcher's identity-mapped tables.  Random bytes mostly fault at once (no IDT yet: "unhandled
trap ..."); the hypercall guests first make a valid LGUEST_INIT, then a few hypercalls with random
numbers and arguments drawn towards the edges (zero, the memory limit, the Host's top 4 MB, all
ones).  A guest still running after ``RUN_LIMIT`` is fine too: its read is ended by a signal (the
daemon answers EINTR), and closing the handle must stop it.

Many guests share one daemon, one after another, while the canary (a guest that NOTIFYs in a loop)
must keep answering.  The ``mount`` fixture fails the test if the daemon logged an internal error;
a watchdog kills a daemon that stops answering, so that such a bug fails the test instead of
hanging it.
``LGUESTFS_LONG=1`` runs ten times as many.  The seed is printed, and ``LGUESTFS_FUZZ_SEED``
replays a run.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from launcher.guests.handguest import (
    LGUEST_DATA_AT,
    SPIN,
    GuestDied,
    HandGuest,
    code_at_entry,
    hypercall,
    initialised_guest,
    loop_back,
)
from launcher.layout import PreparedGuest
from lguestfs import abi
from tests.support import LONG
from tests.support.guests import test_guest
from tests.support.mount import Mount

GUESTS_PER_KIND = 6000 if LONG else 600
RUN_LIMIT = 0.03  # seconds a fuzz guest may run before its read is ended
READS_PER_GUEST = 4  # NOTIFYs a guest may make before we stop listening
CANARY_EVERY = 50  # fuzz guests between two looks at the canary
STUCK_AFTER = 15.0  # seconds one guest may keep the test waiting before the daemon is declared hung
MEM_MB = 2  # the carrier loads at 1 MB
CANARY_WORD = 0xCA7A1  # what the canary NOTIFYs, again and again
FUZZ_DONE_WORD = 0xF022  # what a hypercall guest NOTIFYs when it survived its calls
Patch = Callable[[PreparedGuest], None]
MEMORY_LIMIT = MEM_MB << 20  # pfnlimit * 4096: a HandGuest has no device pages


def seed() -> int:
    chosen = int(os.environ.get("LGUESTFS_FUZZ_SEED", random.randrange(1 << 32)))
    print(f"fuzz seed {chosen} (replay with LGUESTFS_FUZZ_SEED={chosen})")
    return chosen


class Canary:
    """A guest that NOTIFYs CANARY_WORD in a loop: every read of it must return that at once."""

    def __init__(self, mount: Mount, carrier: Path) -> None:
        code = loop_back(hypercall(abi.LHCALL_NOTIFY, CANARY_WORD))
        self.guest = HandGuest(mount.path, carrier, mem_mb=MEM_MB, patch=initialised_guest(code))

    def check(self) -> None:
        assert self.guest.read(timeout=5.0) == CANARY_WORD, "the canary guest stopped answering"


def outcome(mount: Mount, carrier: Path, patch: Patch) -> str:
    """Run one fuzz guest: "died" (with a reason), "survived" (a hypercall guest reached its
    last NOTIFY), "running" (still going at the time limit) or "notifying" (NOTIFYs galore)."""
    with HandGuest(mount.path, carrier, mem_mb=MEM_MB, patch=patch) as guest:
        try:
            for _ in range(READS_PER_GUEST):
                word = guest.read(timeout=RUN_LIMIT)
                if word is None:
                    return "running"
                if word == FUZZ_DONE_WORD:
                    return "survived"
        except GuestDied as death:
            assert death.reason.strip(), "a guest died without a reason"
            assert death.reason == guest.reason(), "the reason changed between two reads"
            return "died"
        return "notifying"


def interesting_word(rng: random.Random) -> int:
    """An argument drawn towards the places where bounds checks live."""
    return rng.choice(
        [
            0,
            1,
            rng.randrange(64),
            rng.randrange(1 << 32),
            rng.randrange(1 << 32),
            MEMORY_LIMIT - rng.randrange(1, 2 * abi.PAGE_SIZE),
            MEMORY_LIMIT + rng.randrange(abi.PAGE_SIZE),
            LGUEST_DATA_AT,
            abi.PAGE_OFFSET + rng.randrange(MEM_MB << 20),
            abi.SWITCHER_ADDR + rng.randrange(abi.HOST_RESERVED_MEM),
            0xFFFFFFFF,
        ]
    )


def random_hypercalls(rng: random.Random) -> bytes:
    calls = b""
    for _ in range(rng.randint(1, 8)):
        number = rng.choice([rng.randrange(20), rng.randrange(20), rng.randrange(1 << 32)])
        calls += hypercall(number, *(interesting_word(rng) for _ in range(3)))
    return calls + hypercall(abi.LHCALL_NOTIFY, FUZZ_DONE_WORD) + SPIN


class Watchdog:
    """Kills the daemon if one guest keeps the test waiting for ``STUCK_AFTER`` seconds.

    A read the daemon never answers cannot be interrupted from our side (FUSE has no
    FUSE_INTERRUPT here; the daemon's own signal polling is what ends it), so a daemon that
    stopped answering would hang the test for ever.  Killing it ends the read (ECONNABORTED) and
    the test fails, naming the guest that did it.
    """

    def __init__(self, mount: Mount) -> None:
        self.mount = mount
        self.current = b""
        self.since = time.monotonic()
        self.fired: bytes | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="fuzz-watchdog", daemon=True)
        self.thread.start()

    def guest(self, code: bytes) -> None:
        self.current, self.since = code, time.monotonic()

    def _watch(self) -> None:
        while not self.stop.wait(0.5):
            if time.monotonic() - self.since > STUCK_AFTER:
                self.fired = self.current
                self.mount.process.kill()
                return

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        if self.fired is not None:
            raise AssertionError(
                f"the daemon stopped answering for {STUCK_AFTER} s on the guest whose code is "
                f"{self.fired.hex()} (so it was killed)"
            )


def fuzz(
    mount: Mount, make_code: Callable[[random.Random], bytes], place: Callable[[bytes], Patch]
) -> dict[str, int]:
    """Run GUESTS_PER_KIND guests of ``make_code``'s code, each put in memory by ``place``."""
    rng = random.Random(seed())
    carrier = test_guest("spin")
    canary = Canary(mount, carrier)
    watchdog = Watchdog(mount)
    tally = dict.fromkeys(("died", "survived", "running", "notifying"), 0)
    try:
        canary.check()
        for index in range(GUESTS_PER_KIND):
            code = make_code(rng)
            watchdog.guest(code)
            tally[outcome(mount, carrier, place(code))] += 1
            if index % CANARY_EVERY == 0:
                canary.check()
        canary.check()
    except OSError:
        if watchdog.fired is None:
            raise
    finally:
        watchdog.close()
        canary.guest.close()
    print(f"{GUESTS_PER_KIND} guests: {tally}")
    return tally


def test_random_byte_guests_each_run_or_die_with_a_reason_and_the_canary_keeps_running(
    mount: Mount,
) -> None:
    tally = fuzz(mount, lambda rng: rng.randbytes(4096), code_at_entry)
    assert tally["died"] > 0


def test_random_hypercall_guests_each_run_or_die_with_a_reason_and_the_canary_keeps_running(
    mount: Mount,
) -> None:
    tally = fuzz(mount, random_hypercalls, initialised_guest)
    assert tally["died"] > 0 and tally["survived"] > 0
