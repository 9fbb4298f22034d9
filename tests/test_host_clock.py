"""The clock's timers: the last arming wins, each expiry fires once, and re-arming costs O(1).

Pure logic on the real clock thread; the guest-level proofs (a timer waking a halted guest,
SET_CLOCKEVENT(0) cancelling) are in ``test_host_stopping``, the memory bound through a real
mount in ``test_reliability_memory``.
"""

import threading
import time

from lguestfs.clock import Clock, Timer, clock


def expiries() -> tuple[Timer, list[float]]:
    fired: list[float] = []
    return Timer(lambda: fired.append(time.monotonic())), fired


def test_an_armed_timer_fires_once_after_its_delay() -> None:
    timer, fired = expiries()
    start = time.monotonic()
    timer.arm(20_000_000)
    time.sleep(0.2)
    assert len(fired) == 1 and fired[0] - start >= 0.019


def test_rearming_later_moves_the_expiry_and_it_still_fires_once() -> None:
    timer, fired = expiries()
    start = time.monotonic()
    timer.arm(10_000_000)
    timer.arm(60_000_000)
    time.sleep(0.3)
    assert len(fired) == 1 and fired[0] - start >= 0.059


def test_rearming_sooner_fires_sooner_and_once() -> None:
    timer, fired = expiries()
    start = time.monotonic()
    timer.arm(2_000_000_000)
    timer.arm(10_000_000)
    time.sleep(0.2)
    assert len(fired) == 1 and fired[0] - start < 1.0
    timer.cancel()


def test_cancel_and_zero_stop_an_armed_timer() -> None:
    timer, fired = expiries()
    timer.arm(10_000_000)
    timer.cancel()
    other, other_fired = expiries()
    other.arm(10_000_000)
    other.arm(0)
    time.sleep(0.1)
    assert fired == other_fired == []


def test_a_timer_rearmed_in_a_loop_keeps_one_entry_in_the_heap() -> None:
    before = len(clock._heap)
    timer, fired = expiries()
    for _ in range(100_000):
        timer.arm(0xFFFFFFFF)
    assert len(clock._heap) <= before + 1
    timer.cancel()
    assert fired == []


def test_stale_entries_are_dropped_once_they_are_half_the_heap() -> None:
    own = Clock()
    done = threading.Event()
    entries = [own.call_at(time.monotonic() + 3600, done.set) for _ in range(1000)]
    for entry in entries[:900]:
        own.drop(entry)
    assert len(own._heap) <= 200
