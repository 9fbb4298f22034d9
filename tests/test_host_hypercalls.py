"""Hypercalls on a real Unicorn CPU, in process (spec 3; test-vector rows 27-39)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lguestfs.guest import Guest, RunExit
from tests.support.host import SCRATCH, Reads, make_guest, needs_as

pytestmark = needs_as


@pytest.fixture
def guests() -> Iterator[list[Guest]]:
    made: list[Guest] = []
    yield made
    for g in made:
        g.close()


def run_to_death(guests: list[Guest], source: str) -> str | None:
    g = make_guest(source)
    guests.append(g)
    assert Reads(g).read() == (RunExit.DIED, 0)
    return g.death


def test_notify_returns_the_address_then_the_guest_resumes(guests: list[Guest]) -> None:
    g = make_guest("init\n hcall 17, 0x4001000\n hcall 17, 0x1234\n hcall 10\n")
    guests.append(g)
    reads = Reads(g)
    assert reads.read() == (RunExit.NOTIFY, 0x4001000)
    assert reads.read() == (RunExit.NOTIFY, 0x1234)


def test_notify_of_zero_is_dropped(guests: list[Guest]) -> None:
    g = make_guest("init\n hcall 17, 0\n hcall 17, 0x99\n")
    guests.append(g)
    assert Reads(g).read() == (RunExit.NOTIFY, 0x99)


def test_first_hypercall_must_be_init(guests: list[Guest]) -> None:
    assert run_to_death(guests, "hcall 5") == "hypercall 5 before INIT"


def test_init_with_lguest_data_past_the_limit(guests: list[Guest]) -> None:
    source = "movl $1, %eax\n movl $(0x400000 - 100), %edx\n int $0x1f"
    assert run_to_death(guests, source) == "bad guest page 00000000"


def test_init_twice(guests: list[Guest]) -> None:
    assert run_to_death(guests, "init\n init") == "already have lguest_data"


@pytest.mark.parametrize("call", [11, 12, 13, 18, 0xFFFFFFFF])
def test_unknown_hypercall_kills_with_newline(guests: list[Guest], call: int) -> None:
    shown = call if call < 0x80000000 else call - (1 << 32)
    assert run_to_death(guests, f"init\n hcall {call}") == f"Bad hypercall {shown}\n"


def test_crash_kills_with_the_message(guests: list[Guest]) -> None:
    source = "init\n movl $0x73706f6f, (SCRATCH + PAGE_OFFSET)\n hcall 2, SCRATCH"
    assert run_to_death(guests, source) == "CRASH: oops"


def test_crash_message_too_close_to_the_limit(guests: list[Guest]) -> None:
    addr = 0x400000 - 100
    assert run_to_death(guests, f"init\n hcall 2, {addr}") == f"bad read address {addr:#x} len 128"


def test_crash_reads_at_most_127_characters(guests: list[Guest]) -> None:
    g = make_guest(f"init\n hcall 2, {SCRATCH}")
    guests.append(g)
    g.lguest.memory.write(SCRATCH, b"x" * 200)
    Reads(g).read()
    assert g.death == "CRASH: " + "x" * 127


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ("0x68, STACK_TOP, 1", "bad stack segment 104"),
        ("0x69, STACK_TOP, 3", "bad stack pages 3"),
    ],
)
def test_set_stack_checks(guests: list[Guest], args: str, reason: str) -> None:
    assert run_to_death(guests, f"init\n hcall 7, {args}") == reason


def test_load_idt_entry_beyond_256(guests: list[Guest]) -> None:
    assert run_to_death(guests, "init\n hcall 6, 256, 0, 0x8e00") == "Setting idt entry 256"


def test_load_idt_entry_bad_type(guests: list[Guest]) -> None:
    assert run_to_death(guests, "init\n hcall 6, 0x30, 0, 0x8c00") == "bad IDT type 12"


def test_load_gdt_too_many_entries(guests: list[Guest]) -> None:
    assert run_to_death(guests, f"init\n hcall 3, {SCRATCH}, 33") == "too many gdt entries 33"


def test_halt_sleeps_until_break_and_stays_halted(guests: list[Guest]) -> None:
    g = make_guest("init\n hcall 10\n hcall 17, 0x77\n")
    guests.append(g)
    reads = Reads(g)
    pending = reads.start()
    assert pending.wait(0.2) is None
    assert g.status().state == "halted"
    g.set_break(True)
    assert pending.wait(5) == (RunExit.BREAK, 0)
    g.set_break(False)
    assert g.lguest.halted


def test_async_ring_stops_at_a_notify_and_keeps_the_direct_call_pending(
    guests: list[Guest],
) -> None:
    # Two queued NOTIFYs (slots 0, 1), then a direct one: three reads, in order, none lost.
    source = """
    init
    movl $17, (DATA + PAGE_OFFSET + 84)
    movl $0xA1, (DATA + PAGE_OFFSET + 84 + 12)
    movl $17, (DATA + PAGE_OFFSET + 100)
    movl $0xA2, (DATA + PAGE_OFFSET + 100 + 12)
    movw $0, (DATA + PAGE_OFFSET + 20)
    hcall 17, 0xA3
    hcall 10
"""
    g = make_guest(source)
    guests.append(g)
    reads = Reads(g)
    assert [reads.read() for _ in range(3)] == [
        (RunExit.NOTIFY, 0xA1),
        (RunExit.NOTIFY, 0xA2),
        (RunExit.NOTIFY, 0xA3),
    ]
    assert g.lguest.memory.read(0x20000 + 20, 2) == b"\xff\xff"
    assert g.status().hypercalls["NOTIFY"] == 3


def test_a_notify_and_a_death_in_the_same_pass_return_the_notify_first(
    guests: list[Guest],
) -> None:
    # Spec 1.3's edge: the ring's slot 0 kills (bad hypercall), slot 1 notifies, in one pass.
    source = """
    init
    movl $11, (DATA + PAGE_OFFSET + 84)
    movl $17, (DATA + PAGE_OFFSET + 100)
    movl $0xB1, (DATA + PAGE_OFFSET + 100 + 12)
    movw $0, (DATA + PAGE_OFFSET + 20)
    hcall 0
    hcall 10
"""
    g = make_guest(source)
    guests.append(g)
    reads = Reads(g)
    assert reads.read() == (RunExit.NOTIFY, 0xB1)
    assert reads.read() == (RunExit.DIED, 0)
    assert g.death == "Bad hypercall 11\n"
