"""Isolation: a guest reaches only its own memory, and only the daemon's user reaches the node.

A guest names memory by guest-physical page numbers, and every page it can name is checked
against its own ``pfnlimit`` (spec 6): a page table entry beyond it, a page directory entry beyond
it, or a touch of the Host's top 4 MB kills the guest with the spec's reason, every time, while a
guest beside it keeps its memory and keeps running.  Each case is repeated with random pages and
addresses: the guests are machine code written at the entry point, and the tables they use are
the launcher's own boot tables, edited before INITIALIZE.

Then users: the node is the daemon's user's (mode 0600, like ``/dev/lguest``).  Another user
gets EACCES on the node and on a running guest's waker, with or without ``--allow-other``.
"""

from __future__ import annotations

import errno
import os
import random
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from launcher.guests.handguest import (
    SPIN,
    GuestDied,
    HandGuest,
    hypercall,
    initialised_guest,
    load,
    loop_back,
)
from launcher.layout import PreparedGuest
from lguestfs import abi
from tests.support import LONG
from tests.support.guests import test_guest
from tests.support.mount import Mount, mounted, skip_reason

REPEATS = 200 if LONG else 20
MEM_MB = 4
PFNLIMIT = (MEM_MB << 20) // abi.PAGE_SIZE  # a HandGuest has no device pages
SCRATCH = 0x200000  # guest-physical pages between the carrier and the boot tables
NOBODY = 65534
NOTIFY_WORD = 0x50AF


def rng() -> random.Random:
    return random.Random(int(os.environ.get("LGUESTFS_FUZZ_SEED", random.randrange(1 << 32))))


def with_table_edits(code: bytes, edits: dict[str, tuple[int, int]]) -> Callable[..., None]:
    """A patch: ``code`` at the entry, lguest_data in place, and the launcher's boot tables edited:
    ``{"pte": (va, value)}`` sets va's page table entry, ``{"pde": (va, value)}`` its directory
    entry."""
    place = initialised_guest(code)  # a proper guest, until it misbehaves

    def patch(prepared: PreparedGuest) -> None:
        place(prepared)
        for kind, (va, value) in edits.items():
            pde_at = prepared.pgdir + (va >> 22) * 4
            if kind == "pde":
                prepared.write(pde_at, struct.pack("<I", value))
            else:
                (pde,) = struct.unpack("<I", prepared.read(pde_at, 4))
                pte_at = (pde & ~0xFFF) + ((va >> 12) & 1023) * 4
                prepared.write(pte_at, struct.pack("<I", value))

    return patch


def death(mount: Mount, patch: Callable[..., None], what: str) -> str:
    """The reason the guest died with; fails if it lived (``what`` says what it did)."""
    with HandGuest(mount.path, test_guest("spin"), mem_mb=MEM_MB, patch=patch) as guest:
        try:
            word = guest.read(timeout=10.0)
        except GuestDied as died:
            return died.reason
        state = "still running" if word is None else f"NOTIFY {word:#x}"
        raise AssertionError(f"a guest that {what} was not killed ({state})")


def test_page_table_entries_beyond_pfnlimit_kill_bad_page_table_entry_every_time(
    mount: Mount,
) -> None:
    r = rng()
    for _ in range(REPEATS):
        va = SCRATCH + r.randrange(256) * abi.PAGE_SIZE
        pfn = r.choice([PFNLIMIT, r.randrange(PFNLIMIT, 1 << 20), (1 << 20) - 1])
        pte = pfn << 12 | abi.PTE_PRESENT | abi.PTE_RW | abi.PTE_USER
        what = f"read {va:#x} through a PTE to pfn {pfn:#x}"
        reason = death(mount, with_table_edits(load(va) + SPIN, {"pte": (va, pte)}), what)
        assert reason == "bad page table entry", f"pfn {pfn:#x}: {reason!r}"


def test_page_directory_entries_beyond_pfnlimit_kill_bad_page_directory_entry_every_time(
    mount: Mount,
) -> None:
    r = rng()
    for _ in range(REPEATS):
        va = r.randrange(MEM_MB << 20, abi.PAGE_OFFSET) & ~0xFFF
        pfn = r.choice([PFNLIMIT, r.randrange(PFNLIMIT, 1 << 20)])
        pde = pfn << 12 | abi.PTE_PRESENT | abi.PTE_RW | abi.PTE_USER
        what = f"read {va:#x} through a PDE to pfn {pfn:#x}"
        reason = death(mount, with_table_edits(load(va) + SPIN, {"pde": (va, pde)}), what)
        assert reason == "bad page directory entry", f"va {va:#x} pfn {pfn:#x}: {reason!r}"


def test_touching_the_hosts_top_4mb_kills_attempt_to_access_switcher_pages_every_time(
    mount: Mount,
) -> None:
    r = rng()
    # Its first and last pages every time (the last is where a Host might keep a page of its
    # own), then random places.
    edges = [abi.SWITCHER_ADDR, 0xFFFFF000, 0xFFFFFFFC]
    for i in range(REPEATS):
        va = (
            edges[i]
            if i < len(edges)
            else abi.SWITCHER_ADDR + (r.randrange(abi.HOST_RESERVED_MEM) & ~3)
        )
        # Half the time the guest even points PDE 1023 at a table of its own first.
        edits = {"pde": (va, SCRATCH | 7)} if i % 2 else {}
        what = f"read {va:#x}" + (" after pointing PDE 1023 at a table" if edits else "")
        reason = death(mount, with_table_edits(load(va) + SPIN, edits), what)
        assert reason == "attempt to access switcher pages", f"va {va:#x}: {reason!r}"


def test_a_guest_aiming_beyond_its_memory_never_touches_the_guest_beside_it(mount: Mount) -> None:
    """The neighbour's memory is another launcher's memfd: no page number of ours reaches it."""
    pattern = bytes(range(256)) * 16
    body = hypercall(abi.LHCALL_NOTIFY, NOTIFY_WORD)
    neighbour_code = initialised_guest(loop_back(body), {SCRATCH: pattern})
    r = rng()
    with HandGuest(
        mount.path, test_guest("spin"), mem_mb=MEM_MB, patch=neighbour_code
    ) as neighbour:
        assert neighbour.read(timeout=10.0) == NOTIFY_WORD
        for _ in range(REPEATS):
            va = SCRATCH + r.randrange(256) * abi.PAGE_SIZE
            pfn = r.randrange(PFNLIMIT, 1 << 20)
            store = b"\xc7\x05" + struct.pack("<II", va, 0xDEADBEEF)  # movl $..., va
            pte = pfn << 12 | abi.PTE_PRESENT | abi.PTE_RW | abi.PTE_USER
            what = f"wrote {va:#x} through a PTE to pfn {pfn:#x}"
            reason = death(mount, with_table_edits(store + SPIN, {"pte": (va, pte)}), what)
            assert reason == "bad page table entry"
            assert neighbour.read(timeout=10.0) == NOTIFY_WORD
        assert neighbour.prepared.read(SCRATCH, len(pattern)) == pattern


@contextmanager
def reachable_mount(*options: str) -> Iterator[Mount]:
    """A mount in a directory every user may traverse, so that a refusal comes from lguestfs."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    workdir = Path(tempfile.mkdtemp(prefix="lguestfs-users-"))
    workdir.chmod(0o755)
    try:
        with mounted(workdir / "mnt", *options) as mount:
            yield mount
    finally:
        for leftover in workdir.iterdir():
            if leftover.is_file():
                leftover.unlink()
            else:
                leftover.rmdir()
        workdir.rmdir()


def errnos_as_nobody(paths: list[Path]) -> list[int]:
    """Open each path O_RDWR as user nobody (a forked child): 0 for success, else the errno."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        results = []
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.stat(paths[0].parent.parent)  # the mount's parent: traversable, or the test lies
            for path in paths:
                try:
                    os.close(os.open(path, os.O_RDWR))
                    results.append(0)
                except OSError as error:
                    results.append(error.errno or -1)
            os.write(writer, struct.pack(f"<{len(results)}i", *results))
        finally:
            os._exit(0)
    os.close(writer)
    try:
        data = os.read(reader, 4 * len(paths))
    finally:
        os.close(reader)
        os.waitpid(pid, 0)
    assert len(data) == 4 * len(paths), "the child running as nobody could not even look"
    return list(struct.unpack(f"<{len(paths)}i", data))


@pytest.mark.parametrize("options", [(), ("--allow-other",)], ids=["default", "allow-other"])
def test_another_user_gets_eacces_on_the_node_and_on_a_running_guests_waker(
    options: tuple[str, ...],
) -> None:
    body = hypercall(abi.LHCALL_NOTIFY, NOTIFY_WORD)
    code = initialised_guest(loop_back(body))
    with (
        reachable_mount(*options) as mount,
        HandGuest(mount.path, test_guest("spin"), mem_mb=MEM_MB, patch=code) as guest,
    ):
        assert guest.read(timeout=10.0) == NOTIFY_WORD
        waker = mount.waker(os.getpid())
        assert waker.exists()
        assert errnos_as_nobody([mount.node, waker]) == [errno.EACCES, errno.EACCES]
        assert guest.read(timeout=10.0) == NOTIFY_WORD  # and the guest never noticed
