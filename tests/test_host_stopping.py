"""Stopping a guest from another thread: break, signal, close, two guests at once (spec 2)."""

from __future__ import annotations

import random
import threading
import time

from lguestfs.guest import Guest, RunExit
from tests.support.host import (
    DATA,
    PGDIR,
    PTES,
    Pending,
    Reads,
    make_guest,
    needs_as,
    user_guest,
)

pytestmark = needs_as

SPIN = "init\n1: jmp 1b\n"
STORE_SPIN = "init\n1: incl (SCRATCH + PAGE_OFFSET)\n jmp 1b\n"


def test_break_stops_a_spinning_guest() -> None:
    g = make_guest(SPIN)
    try:
        reads = Reads(g)
        pending = reads.start()
        time.sleep(0.05)
        g.set_break(True)
        assert pending.wait(2) == (RunExit.BREAK, 0)
        assert reads.read() == (RunExit.BREAK, 0)  # the flag stays until released
        g.set_break(False)
    finally:
        g.close()


def test_interrupt_ends_the_read_with_signal() -> None:
    g = make_guest(STORE_SPIN)
    try:
        pending = Reads(g).start()
        time.sleep(0.05)
        g.interrupt()
        assert pending.wait(2) == (RunExit.SIGNAL, 0)
    finally:
        g.close()


def test_signal_pending_at_start_returns_before_running() -> None:
    g = make_guest("init\n hcall 17, 0x55\n")
    try:
        reads = Reads(g)
        assert reads.read(signal_pending=True) == (RunExit.SIGNAL, 0)
        assert reads.read() == (RunExit.NOTIFY, 0x55)
    finally:
        g.close()


def test_close_stops_a_spinning_guest_and_joins_its_thread() -> None:
    before = threading.active_count()
    g = make_guest(SPIN)
    Reads(g).start()
    time.sleep(0.05)
    g.close()
    assert not g._thread.is_alive()
    assert threading.active_count() <= before + 1  # at most the shared clock thread


def test_close_of_a_halted_guest() -> None:
    g = make_guest("init\n hcall 10\n")
    Reads(g).start()
    time.sleep(0.05)
    g.close()
    assert not g._thread.is_alive()


def test_two_guests_run_at_once() -> None:
    a, b = make_guest(STORE_SPIN), make_guest(STORE_SPIN)
    try:
        da, db = Reads(a).start(), Reads(b).start()
        time.sleep(0.2)
        a.set_break(True)
        b.set_break(True)
        assert da.wait(2) == db.wait(2) == (RunExit.BREAK, 0)
        counts = [int.from_bytes(g.lguest.memory.read(0x21000, 4), "little") for g in (a, b)]
        assert all(c > 1000 for c in counts)
    finally:
        a.close()
        b.close()


TIMER_GUEST = """
    init
    movl $0, (DATA + PAGE_OFFSET + 4)       # unmask every irq
    gate 0x20, timer, 0x8e00
    hcall 9, {ns}                           # SET_CLOCKEVENT
    {then}
timer:
    hcall 17, 0x71
"""


def test_timer_wakes_a_halted_guest_with_irq_0() -> None:
    g = make_guest(TIMER_GUEST.format(ns=20_000_000, then="hcall 10\n 1: jmp 1b"))
    try:
        start = time.monotonic()
        assert Reads(g).read() == (RunExit.NOTIFY, 0x71)
        assert time.monotonic() - start >= 0.019
        assert (
            g.lguest.memory.read_u32(DATA) == 0
        )  # interrupt gate: irq_enabled cleared after 0x200
        assert not g.lguest.halted
    finally:
        g.close()


def test_timer_interrupts_a_spinning_guest() -> None:
    g = make_guest(
        TIMER_GUEST.format(ns=5_000_000, then="movl $0x200, (DATA + PAGE_OFFSET)\n1: jmp 1b")
    )
    try:
        assert Reads(g).read() == (RunExit.NOTIFY, 0x71)
    finally:
        g.close()


def test_clockevent_zero_cancels_the_timer() -> None:
    source = TIMER_GUEST.format(ns=5_000_000, then="hcall 9, 0\n hcall 10\n 1: jmp 1b")
    g = make_guest(source)
    try:
        pending = Reads(g).start()
        assert pending.wait(0.1) is None
        assert g.status().state == "halted"
    finally:
        g.close()


def test_a_masked_irq_arrives_once_a_spinning_guest_unmasks_it_with_a_store() -> None:
    # No exit follows the unmasking store: only the Host's polling of pending interrupts can
    # deliver it (2.6.24 relied on the exits of host timer ticks).
    then = """
    movl $0x200, (DATA + PAGE_OFFSET)
    movl $0xffffffff, (DATA + PAGE_OFFSET + 4)
    hcall 17, 0x70
    movl $3000000, %ecx
2:  decl %ecx
    jnz 2b
    movl $0, (DATA + PAGE_OFFSET + 4)
1:  jmp 1b
"""
    g = make_guest(TIMER_GUEST.format(ns=0, then=then))
    try:
        reads = Reads(g)
        assert reads.read() == (RunExit.NOTIFY, 0x70)
        g.raise_irq(0)
        assert reads.read() == (RunExit.NOTIFY, 0x71)
    finally:
        g.close()


def test_a_short_read_ends_on_the_callers_thread() -> None:
    """A notify a few instructions away is returned inside run(), without a thread hop.

    The first reads also boot the guest and translate its loop, and a read that overran
    ``INLINE_FOR`` sends the next one to the guest thread, so warm reads are the ones looked at;
    one of several must end inline (any single one may overrun if this thread is preempted).
    """
    g = make_guest("init\n1: hcall 17, 0x55\n jmp 1b\n")
    try:
        inline: list[bool] = []
        for _ in range(2 + 5):
            exits: list[tuple[RunExit, int, int]] = []
            ended = threading.Event()

            def on_exit(kind: RunExit, value: int) -> None:
                exits.append((kind, value, threading.get_ident()))  # noqa: B023
                ended.set()  # noqa: B023

            g.run(on_exit)
            assert ended.wait(5.0), "the read never ended"
            assert exits[0][:2] == (RunExit.NOTIFY, 0x55)
            inline.append(exits[0][2] == threading.get_ident())
        assert any(inline[2:]), inline
    finally:
        g.close()


def test_a_spinning_guest_is_handed_to_its_own_thread() -> None:
    """run() returns although the guest never exits; the read goes on on the guest's thread."""
    g = make_guest(SPIN)
    try:
        # the first read overruns on the caller's thread, the next starts on the guest's
        assert break_a_read_that_spins(g) == [g._thread.ident]
        assert break_a_read_that_spins(g) == [g._thread.ident]
    finally:
        g.close()


def break_a_read_that_spins(g: Guest) -> list[int | None]:
    """Start a read from a thread of its own, break it once run() returned: on_exit's threads."""
    returned = threading.Event()
    exits: list[int | None] = []
    pending = Pending()

    def on_exit(kind: RunExit, value: int) -> None:
        exits.append(threading.get_ident())
        pending.on_exit(kind, value)

    def read() -> None:
        g.run(on_exit)
        returned.set()

    caller = threading.Thread(target=read)
    caller.start()
    assert returned.wait(5), "run() did not hand the spinning guest to its thread"
    g.set_break(True)
    assert pending.wait(2) == (RunExit.BREAK, 0)
    g.set_break(False)
    caller.join()
    return exits


# Counts in EBX and, one call deeper, in EDI, storing across 512 pages; every 64 rounds it takes
# a trap through its own gate (``int $0x80``).  Any replayed instruction makes the counts differ,
# and it jumps to ``bad``.
COUNTING = """
    xorl %ebx, %ebx
    xorl %edi, %edi
loop:
    incl %ebx
    pushl %ebx
    call count
    addl $4, %esp
    cmpl %ebx, %edi
    jne bad
    testl $63, %ebx
    jnz loop
    int $0x80
    jmp loop
count:
    movl 4(%esp), %eax
    andl $511, %eax
    shll $12, %eax
    movl 4(%esp), %ecx
    movl %ecx, 0xC0100000(%eax)
    cmpl 0xC0100000(%eax), %ecx
    jne bad
    incl %edi
    ret
"""
# ...in the kernel, the trap reflected from inside a hook; ``bad`` notifies 0xBAD.
SELF_CHECKING = (
    """
    init
    gate 0x80, trap, 0xaf00
"""
    + COUNTING
    + """
trap:
    iret
bad:
    hcall 17, 0xBAD
"""
)


def break_at_random_moments(g: Guest, breaks: int) -> None:
    """Start a read, break it up to 0.5 ms later, and again: each read must end with BREAK."""
    reads = Reads(g)
    for _ in range(breaks):
        pending = reads.start()
        time.sleep(random.random() * 0.0005)
        g.set_break(True)
        assert pending.wait(2) == (RunExit.BREAK, 0), g.death
        g.set_break(False)


def test_breaks_at_random_moments_never_replay_guest_code() -> None:
    """A trap reflected inside a hook moves EIP; a break landing later in that run must still
    leave the guest where it was (Unicorn stops syncing EIP after a hook has written it)."""
    g = make_guest(SELF_CHECKING)
    try:
        break_at_random_moments(g, 1000)
        assert g.status().traps > 0
    finally:
        g.close()


# ``count`` sits on a page of its own and starts with a read-modify-write of its argument; it
# leaves for the next page with a jump.  A stop that lands right after that store must not leave
# EIP on the ``addl``: resuming there would add 4 twice, and the guest notifies 0xBAD.
STORE_THEN_LEAVE = """
    init
    xorl %esi, %esi
    xorl %edi, %edi
loop:
    incl %esi
    pushl %esi
    call count
    addl $4, %esp
    cmpl %esi, %edi
    jne bad
    jmp loop
bad:
    hcall 17, 0xBAD
.p2align 12
count:
    addl $4, 4(%esp)
    jmp count2
.p2align 12
count2:
    movl 4(%esp), %eax
    subl $4, %eax
    cmpl %eax, %esi
    jne bad
    incl %edi
    ret
"""


def test_breaks_never_replay_a_store() -> None:
    """Stock Unicorn 2.1.4 also looks for a stop after each memory access and then rewinds EIP
    to the storing instruction (a third of these breaks replayed the ``addl``): the Host turns
    those checks off, so stops land between blocks."""
    g = make_guest(STORE_THEN_LEAVE)
    try:
        break_at_random_moments(g, 1000)
    finally:
        g.close()


# The same count at CPL 3.  Every 64 rounds a system call (its own trap gate, DPL 3) unmaps the
# page the next round stores to (SET_PTE of 0), so that store takes a user page fault, whose
# handler maps it back; both are reflected inside the INTR hook, with the change to CPL 1, and
# ``iret`` returns to CPL 3.  A replayed instruction or a wrong fault makes user code ``int
# $0x1f`` (a #GP at CPL 3: the guest notifies 0x77), or the kernel notify 0xBAD.
USER_KERNEL_SETUP = f"""
    .set PGDIR, {PGDIR:#x}
    .set PTES, {PTES:#x}
    gate 0x80, unmap_next_page, 0xef00
    gate 14, map_faulting_page, 0x8e00
"""
USER_SELF_CHECKING = (
    COUNTING
    + """
bad:
    int $0x1f
unmap_next_page:             # the page of round EBX + 1: its PTE to 0, and tell the Host
    pushal
    leal 1(%ebx), %eax
    andl $511, %eax
    shll $12, %eax
    addl $0xC0100000, %eax
    movl %eax, %esi
    shrl $12, %esi
    andl $1023, %esi
    movl $0, (PTES + PAGE_OFFSET)(,%esi,4)
    movl %eax, %ebx
    xorl %ecx, %ecx
    movl $14, %eax
    movl $PGDIR, %edx
    int $0x1f
    popal
    iret
map_faulting_page:           # a user write to a page not present: map CR2's page back
    pushal
    cmpl $6, 32(%esp)
    jne kernel_bad
    movl (DATA + PAGE_OFFSET + 8), %eax
    andl $0xFFFFF000, %eax
    movl %eax, %ebx
    movl %eax, %esi
    shrl $12, %esi
    andl $1023, %esi
    subl $PAGE_OFFSET, %eax
    orl $7, %eax
    movl %eax, (PTES + PAGE_OFFSET)(,%esi,4)
    movl %eax, %ecx
    movl $14, %eax
    movl $PGDIR, %edx
    int $0x1f
    popal
    addl $4, %esp
    iret
kernel_bad:
    hcall 17, 0xBAD
"""
)


def test_breaks_never_replay_user_code_around_traps_reflected_in_the_run() -> None:
    """System calls and page faults from user mode are reflected inside the hook, privilege
    change and all, and the run goes on: a break landing anywhere later must still leave the
    guest where it was (the batch write of the registers keeps Unicorn syncing EIP)."""
    g = user_guest(USER_SELF_CHECKING, USER_KERNEL_SETUP)
    try:
        break_at_random_moments(g, 1000)
        status = g.status()
        assert status.page_faults_reflected > 10
        assert status.traps > 2 * status.page_faults_reflected - 2  # a call and a fault a time
    finally:
        g.close()
