"""A thousand guests, one after another: the daemon ends where it started.

Every guest costs the daemon a thread, a mapping of the launcher's memory, a Unicorn CPU and a
``guests/`` entry, and all of it must go when the guest's handle is released, whichever way the
guest ended: it NOTIFYed and was closed, it died (CRASH) and its reason was read, or it was
still running when its read was interrupted by a signal and its handle closed.  We run the three
kinds in turn and compare what the daemon holds after the warm-up and after the thousand.

Tolerance ("flat"): threads and fds exactly as before (give or take a couple of idle worker
threads), mappings within 32 (allocator arenas; a leak would be one per guest), anonymous memory
within 16 MiB in all, which is 16 KiB per guest: a guest that leaked its CPU or its mapping
would cost far more.
"""

from __future__ import annotations

import os
import time

from launcher.guests.handguest import (
    LGUEST_DATA_AT,
    SPIN,
    GuestDied,
    HandGuest,
    footprint,
    hypercall,
    initialised_guest,
)
from lguestfs import abi
from tests.support import LONG
from tests.support.guests import test_guest
from tests.support.mount import Mount

GUESTS = 10_000 if LONG else 1000
WARM_UP = 100
MEM_MB = 4
NOTIFY_WORD = 0x5E0
EXTRA_THREADS = 2
EXTRA_MAPPINGS = 32
EXTRA_RSS_KIB = 16 * 1024
SETTLE_TIMEOUT = 20.0


def one_guest(mount: Mount, kind: int) -> None:
    """Start a guest, let it do one thing, end it: 0 notifies, 1 crashes, 2 is interrupted."""
    calls = [
        hypercall(abi.LHCALL_NOTIFY, NOTIFY_WORD),
        hypercall(abi.LHCALL_CRASH, LGUEST_DATA_AT),  # the message: lguest_data's first bytes
        b"",
    ][kind]
    patch = initialised_guest(calls + SPIN)
    with HandGuest(mount.path, test_guest("spin"), mem_mb=MEM_MB, patch=patch) as guest:
        if kind == 0:
            assert guest.read(timeout=10.0) == NOTIFY_WORD
        elif kind == 1:
            try:
                guest.read(timeout=10.0)
            except GuestDied as died:
                assert died.reason.startswith("CRASH: ")
            else:
                raise AssertionError("a crashing guest did not die")
        else:
            assert guest.read(timeout=0.005) is None


def test_a_thousand_guests_in_sequence_leave_threads_fds_and_memory_flat(mount: Mount) -> None:
    for index in range(WARM_UP):
        one_guest(mount, index % 3)
    time.sleep(1.0)
    before = footprint(mount.process.pid)
    for index in range(GUESTS):
        one_guest(mount, index % 3)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        after = footprint(mount.process.pid)
        flat = (
            after.threads <= before.threads + EXTRA_THREADS
            and after.fds <= before.fds
            and after.mappings <= before.mappings + EXTRA_MAPPINGS
            and after.rss_anon_kib <= before.rss_anon_kib + EXTRA_RSS_KIB
        )
        if flat or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    print(f"daemon after {WARM_UP} guests: {before}; after {GUESTS} more: {after}")
    assert os.listdir(mount.guests) == []
    assert flat, f"after {GUESTS} guests the daemon holds {after}, against {before} before"
