"""What a guest can make the daemon hold: bounded by the guest, and given back when it ends.

2.6.24 kept at most four shadow page directories per guest, each with at most one shadow page
table per slot, and one timer; here too.  Each test runs a hostile guest written straight into
memory through a real mount, and reads the daemon's anonymous memory (``RssAnon`` in its
``/proc`` status) before it, while it lives, and after its release.

* A page directory whose slots all point at one page table maps 4 GB with one page of the
  guest's: walking 1 GB of it once made the daemon hold one Python object per page (about 40
  MB; 600 MB for 4 GB in four directories), kept after the release.  Now a shadow holds at
  most 4 KiB per slot, in pages given back when the guest ends.
* SET_CLOCKEVENT(0xffffffff) in a loop queued one clock entry per call (tens of MB for a few
  hundred thousand calls); now a timer has one entry, and re-arming it later costs nothing.
* Bursts of many guests at once, started and ended again and again: the daemon's memory after
  the last burst is what it was after the first (a leak of a few hundred KB per guest would
  show), because everything a guest allocated is freed and the allocator gives it back.

Tolerances: ``GROWTH_KIB`` while a guest lives (its CPU, thread and tables: a few MB; the old
leaks were tens of MB), ``LEFT_KIB`` after it ends.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from contextlib import ExitStack

from launcher.guests.handguest import (
    SPIN,
    HandGuest,
    footprint,
    hypercall,
    initialised_guest,
)
from launcher.layout import PreparedGuest
from lguestfs import abi
from tests.support import LONG
from tests.support.guests import test_guest
from tests.support.mount import Mount

MEM_MB = 4
NOTIFY_WORD = 0x3E3
GROWTH_KIB = 12 * 1024  # while one hostile guest lives
LEFT_KIB = 4 * 1024  # after it is released
SCRATCH_PD = 0x200000  # guest-physical: a page directory of the guest's own...
SCRATCH_PT = 0x201000  # ...whose every slot points at this one page table
TOUCHED_BYTES = 1 << 30  # the walk: 1 GB of virtual addresses, one load per page
CLOCKEVENTS = 400_000 if LONG else 200_000
BURSTS = 8 if LONG else 4
BURST_GUESTS = 100 if LONG else 40
BURST_LEFT_KIB = 8 * 1024  # after the last burst, against after the first


def rss_anon_kib(mount: Mount) -> int:
    return footprint(mount.process.pid).rss_anon_kib


def settled_rss(mount: Mount, at_most: int, timeout: float = 10.0) -> int:
    """The daemon's RssAnon once it is at most ``at_most`` KiB, or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (rss := rss_anon_kib(mount)) > at_most and time.monotonic() < deadline:
        time.sleep(0.1)
    return rss


def steady_rss(mount: Mount, timeout: float = 20.0) -> int:
    """The daemon's RssAnon once releases have run their course (two looks 0.5 s apart agree
    within 1 MiB): a release ends after the launcher's ``close()`` has returned."""
    deadline = time.monotonic() + timeout
    previous = rss_anon_kib(mount)
    while True:
        time.sleep(0.5)
        now = rss_anon_kib(mount)
        if abs(now - previous) < 1024 or time.monotonic() > deadline:
            return now
        previous = now


def assert_bounded(mount: Mount, what: str, code: bytes, *, tables: bool = False) -> None:
    """Run ``code`` (after LGUEST_INIT; then NOTIFY) to its NOTIFY: while the guest lives the
    daemon has grown by less than ``GROWTH_KIB``, after its release it keeps under ``LEFT_KIB``.
    ``tables``: with the page directory of ``one_table_everywhere`` in memory."""
    before = warm(mount)
    code += hypercall(abi.LHCALL_NOTIFY, NOTIFY_WORD) + SPIN
    patch = one_table_everywhere(code) if tables else initialised_guest(code)
    with HandGuest(mount.path, test_guest("spin"), mem_mb=MEM_MB, patch=patch) as guest:
        assert guest.read(timeout=120.0) == NOTIFY_WORD
        alive = rss_anon_kib(mount)
    after = settled_rss(mount, before + LEFT_KIB)
    print(f"daemon RssAnon: {before} KiB before, {alive} with the guest, {after} after")
    assert alive - before < GROWTH_KIB, f"{what} cost the daemon {alive - before} KiB"
    assert after - before < LEFT_KIB, f"the released guest left {after - before} KiB behind"


def warm(mount: Mount) -> int:
    """Start and end a few plain guests (caches that stay), then the daemon's RssAnon."""
    patch = initialised_guest(hypercall(abi.LHCALL_NOTIFY, NOTIFY_WORD) + SPIN)
    for _ in range(3):
        with HandGuest(mount.path, test_guest("spin"), mem_mb=MEM_MB, patch=patch) as guest:
            assert guest.read(timeout=30.0) == NOTIFY_WORD
    return steady_rss(mount)


def one_table_everywhere(code: bytes) -> Callable[[PreparedGuest], None]:
    """LGUEST_INIT, then ``code``, with a page directory at ``SCRATCH_PD`` whose slots below the
    Host's all hold the same page table, which maps the first 4 MB of guest memory."""
    table = b"".join(struct.pack("<I", page << 12 | 0x7) for page in range(1024))
    directory = struct.pack("<I", SCRATCH_PT | 0x7) * abi.SWITCHER_PDE
    return initialised_guest(code, {SCRATCH_PD: directory, SCRATCH_PT: table})


def walk(start: int, length: int) -> bytes:
    """``mov $start, %eax; 1: mov (%eax), %ebx; add $4096, %eax; cmp $end, %eax; jne 1b``."""
    loop = b"\x8b\x18" + b"\x05" + struct.pack("<I", 4096) + b"\x3d"
    loop += struct.pack("<I", (start + length) & 0xFFFFFFFF)
    return b"\xb8" + struct.pack("<I", start) + loop + bytes([0x75, (-(len(loop) + 2)) & 0xFF])


def test_a_guest_walking_4_gb_through_one_page_table_costs_the_daemon_little(
    mount: Mount,
) -> None:
    code = hypercall(abi.LHCALL_NEW_PGTABLE, SCRATCH_PD) + walk(0, TOUCHED_BYTES)
    assert_bounded(mount, "walking 1 GB", code, tables=True)


def test_set_clockevent_in_a_loop_costs_the_daemon_little(mount: Mount) -> None:
    arm = hypercall(abi.LHCALL_SET_CLOCKEVENT, 0xFFFFFFFF)
    loop = arm + b"\x4e" + b"\x0f\x85" + struct.pack("<i", -(len(arm) + 7))  # dec %esi; jnz
    code = b"\xbe" + struct.pack("<I", CLOCKEVENTS) + loop  # mov $CLOCKEVENTS, %esi
    assert_bounded(mount, f"{CLOCKEVENTS} timer arms", code)


def burst(mount: Mount) -> None:
    """``BURST_GUESTS`` guests alive at once, each having run a little, then all released."""
    patch = initialised_guest(hypercall(abi.LHCALL_NOTIFY, NOTIFY_WORD) + SPIN)
    with ExitStack() as stack:
        for _ in range(BURST_GUESTS):
            guest = stack.enter_context(
                HandGuest(mount.path, test_guest("spin"), mem_mb=MEM_MB, patch=patch)
            )
            assert guest.read(timeout=30.0) == NOTIFY_WORD


def test_bursts_of_guests_leave_the_daemon_where_the_first_burst_did(mount: Mount) -> None:
    warm(mount)
    burst(mount)
    first = steady_rss(mount)
    for _ in range(BURSTS - 1):
        burst(mount)
    last = settled_rss(mount, first + BURST_LEFT_KIB)
    print(f"daemon RssAnon after the first burst {first} KiB, after {BURSTS} bursts {last}")
    assert last - first < BURST_LEFT_KIB, f"{BURSTS - 1} more bursts left {last - first} KiB"
