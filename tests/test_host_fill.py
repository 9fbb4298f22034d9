"""The C TLB fill (``lguestfs/cpu/_hooks.c``) decides every miss as ``PageTables.fill`` does.

The C fill is the common path of the Python one, which stays the reference: for random guest
page tables, shadow contents, accesses and privilege levels, the C fill alone (called through
its function pointer, no Unicorn) and ``PageTables`` on an identical copy of guest memory must
agree: the same translation and the same Accessed/Dirty bits written back; the same refusal and
page-fault error code; and every miss that kills in Python handed to Python by C.
"""

from __future__ import annotations

import ctypes
import mmap
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from lguestfs.cpu import ACCESS_WRITE, PROT_RX, PROT_WRITE, calibrate
from lguestfs.cpu._cpu import hook_state
from lguestfs.cpu._hooks import FILL
from lguestfs.memory import GuestMemory
from lguestfs.pagetables import PageTables, Shadow

PAGES = 16
PGDIR = 0x1000
ACCESS_READ, ACCESS_FETCH = ACCESS_WRITE - 1, ACCESS_WRITE + 1  # Unicorn's UC_MEM_*
SHADOW_PAGES = 1025 * 1024  # Shadow's PTE array: 4 GB of pages and the GDT page
GUEST_PAGE_FAULT = calibrate().binding.guest_page_fault  # the refusal that raises a #PF


class TlbEntry(ctypes.Structure):
    _fields_ = (("paddr", ctypes.c_uint64), ("perms", ctypes.c_uint32))


FILL_FN = ctypes.CFUNCTYPE(
    ctypes.c_bool, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p
)
STOP_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


def guest_memory(gpde: int, slot: int, gpte: int, vpn_in_table: int) -> GuestMemory:
    memory = GuestMemory(
        mmap.mmap(-1, PAGES * 4096, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS), PAGES
    )
    memory.write_u32(PGDIR + slot * 4, gpde)
    table = gpde & ~0xFFF
    if memory.ok(table + vpn_in_table * 4, 4):
        memory.write_u32(table + vpn_in_table * 4, gpte)
    return memory


# Mostly the flags that decide (present, RW, user, accessed, dirty, global), sometimes any
# 12 bits (PWT, PSE and the rest kill); page numbers mostly inside guest memory.
usual_flags = st.lists(st.sampled_from([0x001, 0x002, 0x004, 0x020, 0x040, 0x100]), unique=True)
entries = st.builds(
    lambda pfn, flags: (pfn << 12) | flags,
    st.integers(0, PAGES + 2),
    st.one_of(usual_flags.map(sum), usual_flags.map(sum), st.integers(0, 0xFFF)),
)


@settings(max_examples=400, deadline=None)
@given(
    slot=st.sampled_from([0, 1, 700, 1022, 1023]),
    page=st.integers(0, 1023),
    gpde=entries,
    gpte=entries,
    shadow_pte=st.one_of(st.just(0), entries),
    has_table=st.booleans(),
    access=st.sampled_from([ACCESS_READ, ACCESS_WRITE, ACCESS_FETCH]),
    cpl=st.sampled_from([1, 3]),
)
def test_c_fill_agrees_with_pagetables(
    slot: int,
    page: int,
    gpde: int,
    gpte: int,
    shadow_pte: int,
    has_table: bool,
    access: int,
    cpl: int,
) -> None:
    vaddr = (slot << 22) | (page << 12)
    vpn = vaddr >> 12
    in_c, in_python = (guest_memory(gpde, slot, gpte, page) for _ in range(2))
    kills: list[str] = []
    pagetables = PageTables(
        in_python,
        PGDIR,
        cpl=lambda: cpl,
        fill_from=lambda _ptes, _tables, _pages, _gpgdir: None,
        cache_shadows=lambda _shadows, _kernel_address: None,
        guest_page_fault=GUEST_PAGE_FAULT,
        flush_tlb=lambda: None,
        flush_tlb_page=lambda _vaddr: None,
        kill=kills.append,
    )
    shadow = Shadow(PGDIR)
    try:
        for each in (shadow, pagetables.shadow):
            each.ptes[vpn] = shadow_pte
            each.tables[slot] = has_table
        asked_python: list[int] = []

        def slow(_uc: int, address: int, _access: int, _entry: int, _data: int) -> bool:
            asked_python.append(address)
            return False

        slow_fn, stop_fn = FILL_FN(slow), STOP_FN(lambda _uc: 0)
        hflags = ctypes.c_uint32(cpl)
        state = hook_state(
            in_c,
            hflags=ctypes.addressof(hflags),
            host_page=PAGES * 4096,
            stop=ctypes.cast(stop_fn, ctypes.c_void_p).value or 0,
            guest_page_fault=GUEST_PAGE_FAULT,
        )
        state.slow_fill = ctypes.cast(slow_fn, ctypes.c_void_p).value
        state.ptes, state.tables = shadow.address, shadow.tables_address
        state.pages, state.gpgdir = SHADOW_PAGES, PGDIR
        c_entry, python_entry = TlbEntry(), SimpleNamespace(paddr=None, perms=None)

        mapped_in_c = FILL_FN(FILL)(
            None, vaddr, access, ctypes.addressof(c_entry), ctypes.addressof(state)
        )
        mapped_in_python = pagetables.fill(vaddr, access, python_entry)

        if asked_python:
            assert kills, "C handed Python a miss that Python decided without killing"
            return
        assert not kills, f"Python killed ({kills}) where C decided"
        assert mapped_in_c == mapped_in_python
        assert bytes(in_c.view) == bytes(in_python.view)  # the same A/D bits written back
        assert shadow.ptes[vpn] == pagetables.shadow.ptes[vpn]
        assert shadow.tables[slot] == pagetables.shadow.tables[slot]
        # the same mapping, or the same page fault (its error code in paddr)
        assert (c_entry.paddr, c_entry.perms) == (python_entry.paddr, python_entry.perms)
        if mapped_in_c:
            assert c_entry.perms in (PROT_RX, PROT_RX | PROT_WRITE)
        else:
            assert c_entry.perms == GUEST_PAGE_FAULT
    finally:
        shadow.close()
        pagetables.close()
        in_c.close()
        in_python.close()
