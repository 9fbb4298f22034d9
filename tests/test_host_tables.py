"""The Host's pure rules, table-driven against the spec: bounds (6), GDT fix-up (7.2), IDT (5.3)."""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator

import pytest

from lguestfs.cpu import calibrate
from lguestfs.idt import Idt
from lguestfs.memory import GuestAccessError, GuestMemory
from lguestfs.pagetables import PageTables
from lguestfs.segments import Gdt

PAGES = 16
LIMIT = PAGES * 4096


@pytest.fixture
def memory() -> Iterator[GuestMemory]:
    guest_memory = GuestMemory(
        mmap.mmap(-1, LIMIT, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS), PAGES
    )
    yield guest_memory
    guest_memory.close()


@pytest.mark.parametrize(
    ("addr", "length", "ok"),
    [
        (0, 4, True),
        (LIMIT - 5, 4, True),  # ends one byte before the limit
        (LIMIT - 4, 4, False),  # ends exactly at the limit: the quirk refuses it
        (LIMIT, 0, False),
        (0xFFFFFFFC, 8, False),  # wraps around
        (LIMIT - 100, 1136, False),  # lguest_data that does not fit (row 28)
    ],
)
def test_bounds_rule_is_lguest_address_ok(
    memory: GuestMemory, addr: int, length: int, ok: bool
) -> None:
    assert memory.ok(addr, length) is ok


def test_refused_read_and_write_name_the_address_and_length(memory: GuestMemory) -> None:
    with pytest.raises(GuestAccessError, match=r"^bad read address 0xfffc len 128$"):
        memory.read(LIMIT - 4, 128)
    with pytest.raises(GuestAccessError, match=r"^bad write address 0x0 len 70000$"):
        memory.write(0, bytes(70000))


def test_close_is_idempotent(memory: GuestMemory) -> None:
    memory.close()
    memory.close()


@pytest.mark.parametrize(
    ("hi", "fixed"),
    [
        (0x00CF9300, 0x00CFB300),  # DPL 0 becomes 1, accessed already set
        (0x00CF9200, 0x00CFB300),  # and the accessed bit is set
        (0x00CFF200, 0x00CFF300),  # DPL 3 stays
        (0x00000000, 0x00002100),  # an empty entry too
    ],
)
def test_load_gdt_fixes_up_dpl_and_accessed(memory: GuestMemory, hi: int, fixed: int) -> None:
    memory.write(0x1000, struct.pack("<II", 0x0000FFFF, hi) * 32)
    gdt = Gdt()
    assert gdt.load(memory, 0x1000, 32) is None
    assert gdt.entries[14] == (0x0000FFFF, fixed)
    assert gdt.entries[10] == (0x0000FFFF, hi)  # a Host slot: stored, not fixed up
    assert gdt.host_table()[10 * 8 : 11 * 8] == bytes(8)  # ...and never used


def test_load_gdt_keeps_the_entries_it_does_not_overwrite(memory: GuestMemory) -> None:
    memory.write(0x1000, bytes(8))
    gdt = Gdt()
    gdt.load(memory, 0x1000, 1)
    assert gdt.entries[12] == (0x0000FFFF, 0x00CFBB00)


def test_load_gdt_too_many_entries_prints_signed(memory: GuestMemory) -> None:
    assert Gdt().load(memory, 0, 33) == "too many gdt entries 33"
    assert Gdt().load(memory, 0, 0xFFFFFFFF) == "too many gdt entries -1"


def test_load_tls_fills_entries_6_to_8(memory: GuestMemory) -> None:
    memory.write(0x1000, struct.pack("<6I", 1, 0x9200, 2, 0x9200, 3, 0xF200))
    gdt = Gdt()
    gdt.load_tls(memory, 0x1000)
    assert gdt.entries[6:9] == [(1, 0xB300), (2, 0xB300), (3, 0xF300)]


@pytest.mark.parametrize(
    ("num", "lo", "hi", "reason", "stored"),
    [
        (0x20, 0x00601234, 0xC0108E00, None, (0x00611234, 0xC0108E00)),  # selector forced to 0x61
        (0x80, 0x00001234, 0xC010FF00, None, (0x00611234, 0xC010EF00)),  # bit 12 cleared
        (0x30, 0, 0x8C00, "bad IDT type 12", (0x00610000, 0x8C00)),
        (256, 0, 0x8E00, "Setting idt entry 256", None),
    ],
)
def test_load_idt_entry(
    num: int, lo: int, hi: int, reason: str | None, stored: tuple[int, int] | None
) -> None:
    idt = Idt()
    assert idt.load_entry(num, lo, hi) == reason
    if stored is not None:
        assert idt.gate(num) == stored


@pytest.mark.parametrize("num", [2, 8, 15, 0x1F])
def test_load_idt_entry_ignores_host_vectors(num: int) -> None:
    idt = Idt()
    assert idt.load_entry(num, 0x1234, 0x8E00) is None
    assert idt.gate(num) is None


def test_not_present_gate_erases_the_entry() -> None:
    idt = Idt()
    idt.load_entry(0x21, 0x1234, 0x8E00)
    idt.load_entry(0x21, 0x1234, 0x0E00)
    assert idt.gate(0x21) is None


@pytest.mark.parametrize(
    ("vector", "gate_hi", "dpl"),
    [
        (0x80, 0xEF00, 3),  # a DPL-3 trap gate at the syscall vector goes direct
        (0x80, 0xEE00, 0),  # an interrupt gate never does: the Host's DPL-0 gate
        (3, 0xEF00, 3),  # int3 through a DPL-3 trap gate
        (13, 0xEF00, 0),  # #GP is always the Host's
        (0x20, 0xEF00, 0),  # hardware interrupt vectors are the Host's
        (0x1F, 0x8E00, 1),  # the hypercall gate has DPL 1
    ],
)
def test_int_gate_dpl(vector: int, gate_hi: int, dpl: int) -> None:
    idt = Idt()
    idt.load_entry(vector, 0x1234, gate_hi)
    assert idt.int_gate_dpl(vector) == dpl


# --- which page-table changes flush Unicorn's TLB (spec 6; pagetables' module notes) ----------

KERNEL = 0x3000  # PAGE_OFFSET of the tables below: the kernel's pages start at 12 KiB
PGDIR_A, PGDIR_B, TABLE = 0x1000, 0x2000, 0x4000
PRESENT_RW_USER = 0x007
GUEST_PAGE_FAULT = calibrate().binding.guest_page_fault  # the refusal that raises a #PF
YOUNG = 0x060  # Accessed and Dirty: SET_PTE installs it at once


class FlushCounter:
    """Unicorn's flushes: whole (``flushes``) and of one page (``pages``)."""

    def __init__(self) -> None:
        self.flushes = 0
        self.pages: list[int] = []

    def __call__(self) -> None:
        self.flushes += 1


@pytest.fixture
def tables(memory: GuestMemory) -> Iterator[tuple[PageTables, FlushCounter]]:
    """Two page directories whose slot 0 maps one table; A's shadow is current and has slot 0."""
    for pgdir in (PGDIR_A, PGDIR_B):
        memory.write_u32(pgdir, TABLE | PRESENT_RW_USER)
    counter = FlushCounter()
    pagetables = PageTables(
        memory,
        PGDIR_A,
        cpl=lambda: 1,
        fill_from=lambda _ptes, _tables, _pages, _gpgdir: None,
        cache_shadows=lambda _shadows, _kernel_address: None,
        guest_page_fault=GUEST_PAGE_FAULT,
        flush_tlb=counter,
        flush_tlb_page=counter.pages.append,
        kill=pytest.fail,
    )
    pagetables.kernel_address = KERNEL
    memory.write_u32(TABLE, 0x5000 | PRESENT_RW_USER)
    assert pagetables.demand_page(0, 0)  # gives A's shadow its slot 0
    counter.flushes = 0
    yield pagetables, counter
    pagetables.close()


@pytest.mark.parametrize(
    ("gpte", "pages"),
    [
        (0x5000 | PRESENT_RW_USER | YOUNG, []),  # the same page, writable now: widened
        (0x6000 | PRESENT_RW_USER | YOUNG, [0]),  # another page
        (0x5000 | 0x005 | YOUNG, [0]),  # read-only now
        (0x5000 | 0x003 | YOUNG, [0]),  # the kernel's only now
        (0, [0]),  # gone
    ],
)
def test_set_pte_flushes_only_the_page_it_narrows(
    tables: tuple[PageTables, FlushCounter], gpte: int, pages: list[int]
) -> None:
    pagetables, counter = tables
    assert pagetables.shadow.ptes[0] == 0x5000 | 0x025  # Accessed, read-only until Dirty
    pagetables.set_pte(PGDIR_A, 0, 0x5000 | PRESENT_RW_USER | YOUNG)  # writable: no flush
    assert counter.pages == []
    pagetables.set_pte(PGDIR_A, 0, gpte)
    assert (counter.flushes, counter.pages) == (0, pages)


def test_set_pte_of_an_absent_entry_or_another_shadow_does_not_flush(
    tables: tuple[PageTables, FlushCounter],
) -> None:
    pagetables, counter = tables
    pagetables.set_pte(PGDIR_A, 0x1000, 0x6000 | PRESENT_RW_USER | YOUNG)  # new entry
    pagetables.set_pte(PGDIR_B, 0, 0)  # B has no shadow
    pagetables.set_pmd(PGDIR_A, 1)  # a slot A's shadow never filled
    assert (counter.flushes, counter.pages) == (0, [])
    pagetables.set_pmd(PGDIR_A, 0)
    assert counter.flushes == 1
    pagetables.new_pgtable(PGDIR_B)  # another address space: always
    assert counter.flushes == 2
