"""The CPU's C hook does SET_PTE, SET_PMD and FLUSH_ASYNC as ``hypercalls`` and ``pagetables``
do (``lguestfs/cpu/_hooks.c``), on a real Unicorn CPU, in process.

A seeded random guest switches between three page directories, queues page-table hypercalls in
the async ring or makes them directly, and reads pages whose contents name them, summing what
it read (a stale TLB entry would change the sum).  It runs twice: with the C hook, then with
every trap and hypercall handed to Python (``Cpu.traps_to_python``), the reference.  Both must
leave the same shadows, counters, ring and sum.
"""

from __future__ import annotations

import random

import pytest

from lguestfs.abi import (
    HCALL_SLOT_BYTES,
    LD_HCALL_STATUS,
    LD_HCALLS,
    LHCALL_FLUSH_ASYNC,
    LHCALL_NEW_PGTABLE,
    LHCALL_RING_SIZE,
    LHCALL_SET_PMD,
    LHCALL_SET_PTE,
    PAGE_OFFSET,
)
from lguestfs.guest import Guest, RunExit
from tests.support.host import DATA, PGDIR, SCRATCH, Reads, make_guest, needs_as

pytestmark = needs_as

PGDIRS = (PGDIR, 0x4000, 0x5000)  # the second and third copy the first
PAGES = range(0x100, 0x300)  # the pages mapped: 1 MB to 3 MB, each holding its own number
WINDOWS = (0x00100000, PAGE_OFFSET + 0x00100000)  # where they are read: user and kernel slots
READ_PAGES = 8  # pages read in each window: few, so a page is read again after it is remapped
SUM = SCRATCH + 0x10  # the guest's sum of what it read
# Reads and SET_PTEs mostly: SET_PMD and NEW_PGTABLE flush the whole TLB, which would hide a
# stale entry.  A queued NEW_PGTABLE is one the C hook leaves to Python, from that slot on.
KINDS = ("read", "pte", "queued pte", "pmd", "queued pmd", "new", "queued new")
WEIGHTS = (12, 4, 4, 1, 1, 1, 1)
FLAGS = (0x001, 0x002, 0x004, 0x020, 0x040, 0x100)  # present, RW, user, accessed, dirty, global

# A read that faults (a page not present in the guest's own tables) skips its 5-byte ``movl``.
PROLOGUE = """
    init
    gate 14, skip_the_read, 0x8e00
    xorl %esi, %esi
"""
EPILOGUE = f"""
    movl %esi, {SUM + PAGE_OFFSET:#x}
    hcall 17, 0x5e
skip_the_read:
    addl $5, 4(%esp)
    addl $4, %esp
    iret
"""


def random_guest(seed: int, operations: int) -> str:
    """The guest's code: ``operations`` random steps, every queued call flushed in time."""
    rng = random.Random(seed)
    lines, queued = [PROLOGUE], 0
    for _ in range(operations):
        kind = rng.choices(KINDS, WEIGHTS)[0]
        pgdir = rng.choice(PGDIRS)
        vaddr = rng.choice(WINDOWS) + rng.randrange(READ_PAGES) * 4096
        pte = rng.choice((0, rng.choice(PAGES) << 12)) | sum(f for f in FLAGS if rng.random() < 0.5)
        if kind == "read":
            lines.append(f"    movl {vaddr:#x}, %eax\n    addl %eax, %esi\n")
        elif kind == "new":
            lines.append(f"    hcall {LHCALL_NEW_PGTABLE}, {pgdir:#x}\n")
        else:
            call, arg2, arg3 = {
                "pte": (LHCALL_SET_PTE, vaddr, pte),
                "pmd": (LHCALL_SET_PMD, vaddr >> 22, 0),
                "new": (LHCALL_NEW_PGTABLE, 0, 0),
            }[kind.split()[-1]]
            if kind.startswith("queued"):
                slot = (
                    DATA + PAGE_OFFSET + LD_HCALLS + (queued % LHCALL_RING_SIZE) * HCALL_SLOT_BYTES
                )
                status = DATA + PAGE_OFFSET + LD_HCALL_STATUS + queued % LHCALL_RING_SIZE
                lines.append(
                    f"    movl ${call}, {slot:#x}\n    movl ${arg2:#x}, {slot + 4:#x}\n"
                    f"    movl ${arg3:#x}, {slot + 8:#x}\n    movl ${pgdir:#x}, {slot + 12:#x}\n"
                    f"    movb $0, {status:#x}\n"
                )
                queued += 1
                if rng.random() < 0.2 or queued % LHCALL_RING_SIZE == 0:
                    lines.append(f"    hcall {LHCALL_FLUSH_ASYNC}\n")
            else:
                lines.append(f"    hcall {call}, {pgdir:#x}, {arg2:#x}, {arg3:#x}\n")
    lines.append(f"    hcall {LHCALL_FLUSH_ASYNC}\n")
    return "".join(lines) + EPILOGUE


def what_the_host_kept(g: Guest) -> tuple[object, ...]:
    """Every cached shadow's directory, slot bytes and PTEs of the two windows; the counters,
    the ring, and the guest's sum."""
    pagetables = g.lguest.pagetables
    shadows = [
        None
        if s is None
        else (
            s.gpgdir,
            bytes(s.tables),
            bytes(s.ptes[0:1024]),
            bytes(s.ptes[768 * 1024 : 769 * 1024]),
        )
        for s in pagetables.slots
    ]
    ring = g.lguest.memory.read(DATA + LD_HCALL_STATUS, LHCALL_RING_SIZE)
    return (
        shadows,
        list(g.lguest.hypercall_counts),
        g.lguest.cpu.next_hcall,
        ring,
        g.lguest.memory.read_u32(SUM),
    )


def run(source: str, seed: int, in_python: bool) -> tuple[object, ...]:
    g = make_guest(source)
    try:
        memory = g.lguest.memory
        for pgdir in PGDIRS[1:]:
            memory.write(pgdir, memory.read(PGDIR, 4096))
        for page in PAGES:
            memory.write_u32(page << 12, page)
        g.lguest.cpu.traps_to_python(in_python)
        random.seed(seed)  # NEW_PGTABLE's choice of a slot to reuse
        assert Reads(g).read() == (RunExit.NOTIFY, 0x5E), g.death
        return what_the_host_kept(g)
    finally:
        g.close()


@pytest.mark.parametrize("seed", range(6))
def test_the_c_hook_keeps_the_shadows_as_python_does(seed: int) -> None:
    source = random_guest(seed, 400)
    in_c = run(source, seed, in_python=False)
    assert in_c == run(source, seed, in_python=True)
    counts = in_c[1]
    assert isinstance(counts, list) and counts[LHCALL_SET_PTE] > 50 and counts[LHCALL_SET_PMD] > 10
