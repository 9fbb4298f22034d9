"""The guest's page tables, and every rule of spec 6 the Host enforces on them.

Where this sits: the guest runs with paging on from its first instruction, on tables it builds in
its own memory.  Unicorn (``cpu``) runs in ``UC_TLB_VIRTUAL`` mode: every TLB miss is answered
by the CPU's own C fill, from the current shadow (below) or by the common path of
``demand_page``, and the misses that need a decision land in ``PageTables.fill`` here (called
by ``traps``, the CPU's hooks), which is the reference for all of it: that is our MMU.  A hypercall
(``hypercalls``) changes what it maps (NEW_PGTABLE, SET_PTE, SET_PMD, FLUSH_TLB); ``traps``
reflects the faults we refuse.

The design is 2.6.24's shadow paging, kept as data instead of as real page tables:

* A *shadow* is what the Host has agreed to map for one guest page directory: which page
  directory slots it has looked at (``tables``) and, per virtual page, the entry it installed
  (``ptes``: the guest's PTE with Global dropped and RW dropped until the guest's D bit is set).
  Up to four shadows are cached, evicted at random, exactly like ``lg->pgdirs``; each holds at
  most 4 MB, in pages given back as soon as it forgets them or the guest ends (``Shadow``).
* A TLB miss first consults the current shadow, as the hardware would walk the real shadow
  tables: if the access is allowed there, the CPU maps it in C (``Cpu.fill_from``: the shadow's
  ``ptes`` are a flat array of i386 PTEs it reads directly), with no Python at all.
* Otherwise it is a page fault, handled like ``demand_page()``: walk the guest's tables with every
  check (PDE flags within 0x67 and pfn < pfnlimit, PTE without PWT/PSE and pfn < pfnlimit, PDE
  1023 = switcher pages), set Accessed (and Dirty on a write) in the guest's PTE, install the
  shadow entry and retry (the C fill does all of this itself unless the guest must die; then
  it asks ``fill``).  If the guest's own tables forbid the access, the fault is reflected:
  the error code has P set when the *shadow* already mapped the page, W for a write, U at CPL 3.
* Such a fault is the guest's own: ``fill`` refuses with it (``entry.perms`` =
  ``guest_page_fault``, the error code in ``entry.paddr``), and the CPU raises #PF on the
  faulting instruction, as the hardware would, with the faulting byte as CR2; ``traps`` reflects
  it from the INTR hook and the run goes on.  Any other refusal (a kill) ends the run.
* Unicorn's TLB only ever holds entries of the current shadow (switching shadows flushes it), so it
  is flushed only when an entry of the current shadow is dropped, moved to another page or loses a
  permission (``_outdates``), and for SET_PTE only that page (QEMU's ``tlb_flush_page``, which also
  forgets the translated-block jumps into it).  A new or widened entry needs no flush: a miss, or an
  access the cached entry does not allow, comes back to ``fill``, which reads the shadow.

The top 4 MB (PDE 1023) are the Host's.  A fault there kills "attempt to access switcher
pages" whatever the guest's own PDE 1023 says (spec 6), as does SET_PTE there; nothing of the
Host is mapped there.  The Host's one page, the GDT Unicorn reads descriptors from, is mapped
read-only at 4 GB, where 32-bit guest code cannot point, by the CPU's fill (see ``cpu``).

SET_PTE of an entry with Accessed or Dirty set is checked at once against every table it
targets, even one whose page-directory slot has no shadow yet (spec 6).  The CPU's C hook does
SET_PTE and SET_PMD as ``set_pte`` and ``set_pmd`` here do, unless one kills: it is told every
cached shadow and the kernel's start as they change (``Cpu.cache_shadows``).
"""

from __future__ import annotations

import ctypes
import mmap
import random
from collections.abc import Callable
from typing import Any, Final

from lguestfs.abi import (
    PAGE_SHIFT,
    PAGE_SIZE,
    PDE_ALLOWED_FLAGS,
    PF_ERR_PRESENT,
    PF_ERR_USER,
    PF_ERR_WRITE,
    PTE_ACCESSED,
    PTE_DIRTY,
    PTE_GLOBAL,
    PTE_PRESENT,
    PTE_PSE,
    PTE_PWT,
    PTE_RW,
    PTE_USER,
    SHADOW_CACHE,
    SWITCHER_PDE,
)
from lguestfs.cpu import ACCESS_WRITE, PROT_RX, PROT_WRITE
from lguestfs.memory import GuestAccessError, GuestMemory

STACK_PAGES_MAX: Final = 2  # SET_STACK's limit on the kernel stack
_PTES_PER_PAGE: Final = 1024
_FLAGS: Final = 0xFFF
# A shadow's PTEs: 4 GB of pages, and one page more, which the only address above 4 GB that
# reaches a fill (the GDT page) indexes when it is written: it reads 0, as any absent entry.
_SHADOW_BYTES: Final = (_PTES_PER_PAGE + 1) * _PTES_PER_PAGE * 4
_TABLES_AT: Final = _SHADOW_BYTES  # where a shadow's ``tables`` bytes start in its mapping
_HAS_TABLE: Final = b"\x01"
_MAP_NORESERVE: Final = 0x4000  # Linux's; the mmap module of Python 3.11 does not name it
_SHADOW_FLAGS: Final = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE
# The highest address a fill can index: the GDT page's last byte (see _SHADOW_BYTES).
_LAST_ADDRESS: Final = _SHADOW_BYTES // 4 * PAGE_SIZE - 1
# Unicorn's engine is x86-64's: for a few instructions in 32-bit mode (a fuzzed guest found one:
# a fetch at 0xffffffffa5dc0000) it hands the fill a linear address sign-extended to 64 bits.
# An i386 has only the low 32 bits, so that is the address translated.
_SIGN_EXTENDED: Final = 0xFFFFFFFF
_NO_PTES: Final = memoryview(bytes(PAGE_SIZE)).cast("I")  # one shadow page table, all absent


class Shadow:
    """What the Host maps for one guest page directory (one slot of ``lg->pgdirs``).

    ``ptes`` has one shadow PTE per virtual page, 0 where none is installed, in an anonymous
    mapping of 4 MB that the kernel fills with pages only where entries are written: like
    2.6.24's shadow page tables, at most one 4 KiB page per page-directory slot the guest uses,
    whatever its tables say (a directory whose 1023 slots share one table costs 4 MB, not one
    Python object per page), given back when the guest ends (``close``).  After them, one byte
    per page-directory slot, ``tables``: 1 once the slot has a shadow page table.  The CPU's C
    fill reads and fills both (``Cpu.fill_from``), so they are plain arrays at fixed addresses.
    """

    def __init__(self, gpgdir: int) -> None:
        self.gpgdir = gpgdir
        self._map = mmap.mmap(-1, _TABLES_AT + PAGE_SIZE, flags=_SHADOW_FLAGS)
        whole = memoryview(self._map)
        self.ptes = whole[:_TABLES_AT].cast("I")  # virtual page number -> shadow PTE
        self.tables = whole[_TABLES_AT : _TABLES_AT + _PTES_PER_PAGE]  # slot -> 1: has a table
        whole.release()
        self.address = ctypes.addressof(ctypes.c_char.from_buffer(self._map))  # where the CPU reads
        self.tables_address = self.address + _TABLES_AT

    def install(self, vpn: int, spte: int) -> bool:
        """Set one entry; True if a TLB entry made from the old one is now wrong."""
        old = self.ptes[vpn]
        self.ptes[vpn] = spte
        return _outdates(old, spte)

    def forget_pde(self, index: int) -> bool:
        """Drop one page-directory slot's entries; True if it had any."""
        if not self.tables[index]:
            return False
        self.tables[index] = 0
        self.ptes[index * _PTES_PER_PAGE : (index + 1) * _PTES_PER_PAGE] = _NO_PTES
        return True

    def forget_below(self, index: int) -> None:
        """Drop the entries of every slot below ``index`` (the search runs in C: ``mmap.find``)."""
        end = _TABLES_AT + index
        found = self._map.find(_HAS_TABLE, _TABLES_AT, end)
        while found >= 0:
            self.forget_pde(found - _TABLES_AT)
            found = self._map.find(_HAS_TABLE, found + 1, end)

    def close(self) -> None:
        self.ptes.release()
        self.tables.release()
        self._map.close()


class PageTables:
    """The guest's MMU: shadows, the TLB-miss callback, and the page-table hypercalls."""

    def __init__(
        self,
        memory: GuestMemory,
        pgdir: int,
        *,
        cpl: Callable[[], int],
        fill_from: Callable[[int, int, int, int], None],
        cache_shadows: Callable[[list[tuple[int, int, int] | None], int], None],
        guest_page_fault: int,
        flush_tlb: Callable[[], None],
        flush_tlb_page: Callable[[int], None],
        kill: Callable[[str], None],
    ) -> None:
        self._memory = memory
        self._cpl = cpl
        self._fill_from = fill_from
        self._cache_shadows = cache_shadows
        self._guest_page_fault = guest_page_fault  # the perms that refuse with the guest's #PF
        self.flush_tlb = flush_tlb  # empty Unicorn's TLB: the shadows stay
        self._flush_tlb_page = flush_tlb_page
        self._kill = kill
        self._kernel_address = 0
        self.shadow = self._use(Shadow(pgdir))
        self.slots: list[Shadow | None] = [self.shadow] + [None] * (SHADOW_CACHE - 1)
        self._tell_cpu()
        self.stack: tuple[int, int] = (
            0,
            0,
        )  # (esp1, pages) from SET_STACK, re-pinned on new shadows

    def _use(self, shadow: Shadow) -> Shadow:
        """Make ``shadow`` the one the CPU fills its TLB from (the caller flushes the TLB)."""
        self._fill_from(shadow.address, shadow.tables_address, _SHADOW_BYTES // 4, shadow.gpgdir)
        return shadow

    def _tell_cpu(self) -> None:
        """The CPU's C hook does the common SET_PTE and SET_PMD itself (``Cpu.cache_shadows``):
        it must see every cached shadow and where the kernel starts, as they change."""
        self._cache_shadows(
            [None if s is None else (s.address, s.tables_address, s.gpgdir) for s in self.slots],
            self._kernel_address,
        )

    @property
    def gpgdir(self) -> int:
        return self.shadow.gpgdir

    @property
    def kernel_address(self) -> int:
        """Where the guest kernel's addresses start (from lguest_data at LGUEST_INIT)."""
        return self._kernel_address

    @kernel_address.setter
    def kernel_address(self, address: int) -> None:
        self._kernel_address = address
        self._tell_cpu()

    # --- the TLB miss: our MMU ----------------------------------------------------------------

    def fill(self, vaddr: int, access: int, entry: Any) -> bool:
        """A TLB miss the CPU's C fill (``Cpu.fill_from``) left to Python, which decides it
        in full: map it from the shadow, demand-page ``vaddr``, or refuse (the guest's page
        fault, or a kill)."""
        write = access == ACCESS_WRITE
        if vaddr > _LAST_ADDRESS:  # never on the hot path: see _SIGN_EXTENDED
            if vaddr >> 32 != _SIGN_EXTENDED:
                return self._refuse_beyond_4gb(vaddr)
            vaddr &= 0xFFFFFFFF
        user = self._cpl() == 3
        vpn = vaddr >> PAGE_SHIFT
        spte = self.shadow.ptes[vpn]
        if not spte or not _allows(spte, write, user):
            errcode = (
                (PF_ERR_PRESENT if spte else 0)
                | (PF_ERR_WRITE if write else 0)
                | (PF_ERR_USER if user else 0)
            )
            if not self.demand_page(vaddr, errcode):
                entry.paddr, entry.perms = errcode, self._guest_page_fault
                return False
            spte = self.shadow.ptes[vpn]
        entry.paddr = spte & ~_FLAGS
        entry.perms = PROT_RX | (PROT_WRITE if spte & PTE_RW else 0)
        return True

    def _refuse_beyond_4gb(self, vaddr: int) -> bool:
        """A fill above the Host's GDT page: no 32-bit guest address is there."""
        self._kill(f"attempt to access switcher pages (linear address {vaddr:#x})")
        return False

    def unmapped(self, address: int) -> bool:
        """An access reached a physical address outside guest memory: never allowed."""
        self._kill(f"unexpected access to host physical address {address:#x}")
        return False

    def demand_page(self, vaddr: int, errcode: int) -> bool:
        """2.6.24's ``demand_page()``: map ``vaddr`` if the guest allows it; kill on bad tables."""
        pde_index = vaddr >> 22
        if pde_index >= SWITCHER_PDE:
            self._kill("attempt to access switcher pages")
            return False
        try:
            gpde = self._memory.read_u32(self.shadow.gpgdir + pde_index * 4)
            if not gpde & PTE_PRESENT:
                return False
            if not self.shadow.tables[pde_index]:
                if (
                    gpde & _FLAGS & ~PDE_ALLOWED_FLAGS
                    or gpde >> PAGE_SHIFT >= self._memory.pfnlimit
                ):
                    self._kill("bad page directory entry")
                    return False
                self.shadow.tables[pde_index] = 1
            gpte_addr = (gpde & ~_FLAGS) + ((vaddr >> PAGE_SHIFT) & (_PTES_PER_PAGE - 1)) * 4
            gpte = self._memory.read_u32(gpte_addr)
            if not gpte & PTE_PRESENT:
                return False
            if errcode & PF_ERR_WRITE and not gpte & PTE_RW:
                return False
            if errcode & PF_ERR_USER and not gpte & PTE_USER:
                return False
            if not self._check_gpte(gpte):
                return False
            gpte |= PTE_ACCESSED | (PTE_DIRTY if errcode & PF_ERR_WRITE else 0)
            self.shadow.install(vaddr >> PAGE_SHIFT, _shadow_pte(gpte))
            self._memory.write_u32(gpte_addr, gpte)
        except GuestAccessError as e:
            self._kill(str(e))
            return False
        return True

    def _check_gpte(self, gpte: int) -> bool:
        if gpte & (PTE_PWT | PTE_PSE) or gpte >> PAGE_SHIFT >= self._memory.pfnlimit:
            self._kill("bad page table entry")
            return False
        return True

    # --- hypercalls (spec 6) ------------------------------------------------------------------

    def new_pgtable(self, gpgdir: int) -> None:
        """NEW_PGTABLE: switch to a cached shadow, or take a random slot for a fresh one."""
        for shadow in self.slots:
            if shadow is not None and shadow.gpgdir == gpgdir:
                self.shadow = self._use(shadow)
                self.flush_tlb()
                return
        index = random.randrange(SHADOW_CACHE)
        shadow = self.slots[index]
        blank = shadow is None
        if shadow is None:
            shadow = Shadow(gpgdir)
            self.slots[index] = shadow
        shadow.gpgdir = gpgdir
        shadow.forget_below(self.kernel_address >> 22)
        self.shadow = self._use(shadow)
        self._tell_cpu()
        self.flush_tlb()
        if blank:
            self.pin_stack_pages()

    def set_pte(self, gpgdir: int, vaddr: int, gpte: int) -> None:
        """SET_PTE: kernel addresses change every cached shadow, user ones only gpgdir's."""
        if vaddr >= self.kernel_address:
            targets = [s for s in self.slots if s is not None]
        else:
            targets = [s for s in self.slots if s is not None and s.gpgdir == gpgdir]
        for shadow in targets:
            pde_index = vaddr >> 22
            if pde_index >= SWITCHER_PDE:
                self._kill("attempt to access switcher pages")
                pde_index = 0
            young = bool(gpte & (PTE_DIRTY | PTE_ACCESSED))
            if young and not self._check_gpte(gpte):
                continue
            if not shadow.tables[pde_index]:
                continue
            vpn = (pde_index << 10) | ((vaddr >> PAGE_SHIFT) & (_PTES_PER_PAGE - 1))
            outdated = shadow.install(vpn, _shadow_pte(gpte) if young else 0)
            if outdated and shadow is self.shadow:
                self._flush_tlb_page(vpn << PAGE_SHIFT)

    def set_pmd(self, gpgdir: int, index: int) -> None:
        """SET_PMD: forget one page-directory slot of gpgdir's shadow (1023 and up: ignored)."""
        if index >= SWITCHER_PDE:
            return
        for shadow in self.slots:
            if shadow is None or shadow.gpgdir != gpgdir:
                continue
            if shadow.forget_pde(index) and shadow is self.shadow:
                self.flush_tlb()

    def flush_user(self) -> None:
        """FLUSH_TLB(0): forget the user part of the current shadow."""
        self.shadow.forget_below(self.kernel_address >> 22)
        self.flush_tlb()

    def clear_all(self) -> None:
        """FLUSH_TLB(non-zero) and LGUEST_INIT: forget every cached shadow's contents."""
        for shadow in self.slots:
            if shadow is not None:
                shadow.forget_below(SWITCHER_PDE)
        self.flush_tlb()
        self.pin_stack_pages()

    def pin_stack_pages(self) -> None:
        """Map the kernel stack writable now, so reflecting a trap can never fault on it."""
        esp1, pages = self.stack
        # SET_STACK with more than 2 pages has already killed the guest; 2.6.24 still walked
        # them all, which for a random count would keep the Host busy for minutes.
        for i in range(min(pages, STACK_PAGES_MAX)):
            vaddr = (esp1 - 1 - i * 4096) & 0xFFFFFFFF
            if self.shadow.ptes[vaddr >> PAGE_SHIFT] & PTE_RW:
                continue
            if not self.demand_page(vaddr, PF_ERR_WRITE):
                self._kill(f"bad stack page {(esp1 - i * 4096) & 0xFFFFFFFF:#x}")

    def close(self) -> None:
        """Give every shadow's pages back (the CPU that filled from them is gone)."""
        for shadow in self.slots:
            if shadow is not None:
                shadow.close()

    # --- the Host's own walks (frames, instruction bytes) --------------------------------------

    def guest_pa(self, vaddr: int) -> int | None:
        """2.6.24's ``guest_pa()``: a plain walk of the guest's tables (no checks, no A/D).

        Not present at either level kills "Bad address"; returns None once the guest is dead.
        """
        try:
            gpde = self._memory.read_u32(self.shadow.gpgdir + (vaddr >> 22) * 4)
            if gpde & PTE_PRESENT:
                gpte_addr = (gpde & ~_FLAGS) + ((vaddr >> PAGE_SHIFT) & (_PTES_PER_PAGE - 1)) * 4
                gpte = self._memory.read_u32(gpte_addr)
                if gpte & PTE_PRESENT:
                    return (gpte & ~_FLAGS) | (vaddr & _FLAGS)
        except GuestAccessError as e:
            self._kill(str(e))
            return None
        self._kill(f"Bad address {vaddr:#x}")
        return None


def _shadow_pte(gpte: int) -> int:
    spte = gpte & ~PTE_GLOBAL
    if not gpte & PTE_DIRTY:
        spte &= ~PTE_RW
    return spte


def _outdates(old: int, new: int) -> bool:
    """Whether replacing shadow entry ``old`` by ``new`` makes a TLB entry made from ``old``
    wrong: it maps another page, or allows what ``new`` does not."""
    if not old & PTE_PRESENT:
        return False
    lost = old & ~new & (PTE_PRESENT | PTE_RW | PTE_USER)
    return bool(lost) or (old ^ new) & ~_FLAGS != 0


def _allows(spte: int, write: bool, user: bool) -> bool:
    return (
        bool(spte & PTE_PRESENT)
        and (not write or bool(spte & PTE_RW))
        and (not user or bool(spte & PTE_USER))
    )
