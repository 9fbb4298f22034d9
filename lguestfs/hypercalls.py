"""Hypercalls: the guest's ``int $0x1f`` requests, the first-call rules and the async ring (spec 3).

Where this sits: the CPU's INTR hook (``traps``) sees ``int $0x1f`` at CPL 1 and calls
``do_hypercalls`` with the four argument registers, while the CPU is stopped inside the hook, so
a call that does not leave the guest costs a few microseconds.  Everything here works on the
guest's state (``state``), never on the thread that runs it.  The order is 2.6.24's: the very
first call must be LGUEST_INIT; after that the async ring in ``lguest_data`` runs first, and the
synchronous call is kept pending if the ring produced a notify (it then runs at step 1 of the next
read).  Calls that change what the guest sees go to their owners: ``pagetables`` (spec 6),
``segments`` (7.2), the IDT (``idt``, 5.3), the timer (``clock``); halt and notify are flags the
run loop (``guest``) looks at.  Every hypercall is counted here, once, for ``status``.

The CPU's C hook (``lguestfs/cpu/_hooks.c``) does the common case itself, without calling
Python: a SET_PTE, SET_PMD or FLUSH_ASYNC with only such calls queued in the ring before it,
nothing that kills, no interrupt pending.  This module is its reference and does the rest, from
the ring slot the C hook stopped at.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

from lguestfs.abi import (
    CRASH_MESSAGE_BYTES,
    HCALL_SLOT_BYTES,
    HCALL_STATUS_DONE,
    HOST_RESERVED_MEM,
    LD_HCALL_STATUS,
    LD_HCALLS,
    LD_KERNEL_ADDRESS,
    LD_NOIRQ_END,
    LD_NOIRQ_START,
    LD_PGDIR,
    LD_RESERVE_MEM,
    LD_SYSCALL_VEC,
    LD_TSC_KHZ,
    LGUEST_DATA_SIZE,
    LHCALL_CRASH,
    LHCALL_FLUSH_ASYNC,
    LHCALL_FLUSH_TLB,
    LHCALL_HALT,
    LHCALL_LGUEST_INIT,
    LHCALL_LOAD_GDT,
    LHCALL_LOAD_IDT_ENTRY,
    LHCALL_LOAD_TLS,
    LHCALL_NEW_PGTABLE,
    LHCALL_NOTIFY,
    LHCALL_RING_SIZE,
    LHCALL_SET_CLOCKEVENT,
    LHCALL_SET_PMD,
    LHCALL_SET_PTE,
    LHCALL_SET_STACK,
    LHCALL_TS,
    SWITCHER_PDE,
    SYSCALL_VECTOR,
)
from lguestfs.interrupts import write_timestamp
from lguestfs.memory import GuestAccessError, signed32
from lguestfs.pagetables import STACK_PAGES_MAX
from lguestfs.state import Lguest

# struct hcall_args overlays the saved eax, ebx, ecx, edx: call, arg2, arg3, arg1.
_SLOT = struct.Struct("<IIII")


Args = tuple[int, int, int, int]  # (call, arg1, arg2, arg3)


def trapped_hypercall(g: Lguest, args: Args) -> None:
    """The guest's ``int $0x1f``: counted, then run (``do_hypercalls``)."""
    g.count_hypercall(args[0])
    do_hypercalls(g, args)


def do_hypercalls(g: Lguest, args: Args) -> None:
    """One synchronous hypercall, as 2.6.24's ``do_hypercalls()`` (also the kept one, at step 1)."""
    if g.lguest_data is None:
        initialize(g, args)
        return
    do_async_hcalls(g)
    if g.pending_notify:
        g.pending_hcall = args  # runs at step 1 of the next read
        return
    do_hcall(g, args)


def initialize(g: Lguest, args: Args) -> None:
    """LGUEST_INIT, which must come first (spec 3.1); every failure kills, the steps go on."""
    call, data = args[0], args[1]
    if call != LHCALL_LGUEST_INIT:
        g.kill(f"hypercall {signed32(call)} before INIT")
        return
    if not g.memory.ok(data, LGUEST_DATA_SIZE):
        g.kill("bad guest page 00000000")
        return
    g.lguest_data = data
    _tell_cpu(g)
    g.write_lguest_u32(LD_TSC_KHZ, 0)
    if g.read_lguest_u32(LD_SYSCALL_VEC) != SYSCALL_VECTOR:
        g.kill("bad syscall vector")
    g.noirq_start = g.read_lguest_u32(LD_NOIRQ_START) or 0
    g.noirq_end = g.read_lguest_u32(LD_NOIRQ_END) or 0
    write_timestamp(g)
    kernel_address = g.read_lguest_u32(LD_KERNEL_ADDRESS) or 0
    g.pagetables.kernel_address = kernel_address
    g.write_lguest_u32(LD_RESERVE_MEM, HOST_RESERVED_MEM)
    g.write_lguest_u32(LD_PGDIR, g.pagetables.gpgdir)
    if kernel_address >> 22 >= SWITCHER_PDE:
        g.kill(f"bad kernel address {kernel_address:#x}")
    g.pagetables.clear_all()


def do_async_hcalls(g: Lguest) -> None:
    """Run the pending slots of the ring, from the Host's cursor, until one is done (0xFF)."""
    assert g.lguest_data is not None
    status_addr = g.lguest_data + LD_HCALL_STATUS
    memory = g.memory
    if memory.view[status_addr + g.cpu.next_hcall] == HCALL_STATUS_DONE:
        return  # the common case: nothing queued
    status = bytes(memory.view[status_addr : status_addr + LHCALL_RING_SIZE])
    for _ in range(LHCALL_RING_SIZE):
        n = g.cpu.next_hcall
        if status[n] == HCALL_STATUS_DONE:
            break
        g.cpu.next_hcall = (n + 1) % LHCALL_RING_SIZE
        try:
            call, arg2, arg3, arg1 = _SLOT.unpack(
                memory.read(g.lguest_data + LD_HCALLS + n * HCALL_SLOT_BYTES, 16)
            )
        except GuestAccessError:
            g.kill("Fetching async hypercalls")
            break
        g.count_hypercall(call)
        do_hcall(g, (call, arg1, arg2, arg3))
        try:
            memory.write(status_addr + n, bytes([HCALL_STATUS_DONE]))
        except GuestAccessError:
            g.kill("Writing result for async hypercall")
            break
        if g.pending_notify:
            break


def do_hcall(g: Lguest, args: Args) -> None:
    """One hypercall after INIT (2.6.24's ``do_hcall()`` and ``lguest_arch_do_hcall()``)."""
    handler = _HANDLERS.get(args[0])
    if handler is None:
        g.kill(f"Bad hypercall {signed32(args[0])}\n")
        return
    try:
        handler(g, args[1], args[2], args[3])
    except GuestAccessError as e:
        g.kill(str(e))


def _flush_async(g: Lguest, _a1: int, _a2: int, _a3: int) -> None:
    pass  # entering the Host already drained the ring


def _init_again(g: Lguest, _a1: int, _a2: int, _a3: int) -> None:
    g.kill("already have lguest_data")


def _crash(g: Lguest, msg: int, _a2: int, _a3: int) -> None:
    text = g.memory.read(msg, CRASH_MESSAGE_BYTES)[: CRASH_MESSAGE_BYTES - 1]
    g.kill("CRASH: " + text.split(b"\0", 1)[0].decode("utf-8", "surrogateescape"))


def _load_gdt(g: Lguest, table: int, count: int, _a3: int) -> None:
    reason = g.gdt.load(g.memory, table, count)
    if reason is not None:
        g.kill(reason)
        return
    g.cpu.load_gdt(g.gdt.host_table())


def _new_pgtable(g: Lguest, pgdir: int, _a2: int, _a3: int) -> None:
    g.pagetables.new_pgtable(pgdir)


def _flush_tlb(g: Lguest, everything: int, _a2: int, _a3: int) -> None:
    if everything:
        g.pagetables.clear_all()
    else:
        g.pagetables.flush_user()


def _load_idt_entry(g: Lguest, num: int, lo: int, hi: int) -> None:
    reason = g.idt.load_entry(num, lo, hi)
    if reason is not None:
        g.kill(reason)


def _set_stack(g: Lguest, seg: int, esp: int, pages: int) -> None:
    if seg & 3 != 1:
        g.kill(f"bad stack segment {signed32(seg)}")
    if pages > STACK_PAGES_MAX:
        g.kill(f"bad stack pages {pages}")
    g.ss1 = seg
    g.pagetables.stack = (esp, pages)
    _tell_cpu(g)
    g.pagetables.pin_stack_pages()


def _tell_cpu(g: Lguest) -> None:
    """The CPU's C trap hook reflects into ``lguest_data`` and onto the kernel stack too."""
    g.cpu.reflect_through(g.lguest_data or 0, g.ss1, g.pagetables.stack[0])


def _ts(g: Lguest, ts: int, _a2: int, _a3: int) -> None:
    g.set_ts(ts)


def _set_clockevent(g: Lguest, ns: int, _a2: int, _a3: int) -> None:
    g.timer.arm(ns)


def _halt(g: Lguest, _a1: int, _a2: int, _a3: int) -> None:
    g.halted = True


def _set_pte(g: Lguest, pgdir: int, vaddr: int, pte: int) -> None:
    g.pagetables.set_pte(pgdir, vaddr, pte)


def _set_pmd(g: Lguest, pgdir: int, index: int, _a3: int) -> None:
    g.pagetables.set_pmd(pgdir, index)


def _load_tls(g: Lguest, table: int, _cpu: int, _a3: int) -> None:
    g.gdt.load_tls(g.memory, table)
    g.cpu.load_gdt(g.gdt.host_table())


def _notify(g: Lguest, addr: int, _a2: int, _a3: int) -> None:
    g.pending_notify = addr


_HANDLERS: Final[dict[int, Callable[[Lguest, int, int, int], None]]] = {
    LHCALL_FLUSH_ASYNC: _flush_async,
    LHCALL_LGUEST_INIT: _init_again,
    LHCALL_CRASH: _crash,
    LHCALL_LOAD_GDT: _load_gdt,
    LHCALL_NEW_PGTABLE: _new_pgtable,
    LHCALL_FLUSH_TLB: _flush_tlb,
    LHCALL_LOAD_IDT_ENTRY: _load_idt_entry,
    LHCALL_SET_STACK: _set_stack,
    LHCALL_TS: _ts,
    LHCALL_SET_CLOCKEVENT: _set_clockevent,
    LHCALL_HALT: _halt,
    LHCALL_SET_PTE: _set_pte,
    LHCALL_SET_PMD: _set_pmd,
    LHCALL_LOAD_TLS: _load_tls,
    LHCALL_NOTIFY: _notify,
}
