"""The clock: one daemon-wide thread for every guest's timer and every delayed look.

Where this sits: ``state`` gives each guest a ``Timer`` (SET_CLOCKEVENT, spec 4); ``guest`` uses
``call_at`` for the repeats of its kicks, its looks at reads running on trio's thread, and the
polls of an interrupt the guest cannot take yet.  Sleeping guests cost the clock nothing, and a
deadline later than the next one already in the heap does not wake it.

Bounded, whatever a guest does: a ``Timer`` has at most one live entry in the heap.  Re-arming it
for later (the common case: a guest that sets its next tick before the last one fired, or loops
on SET_CLOCKEVENT) only moves its deadline, O(1); the entry fires early, sees the later deadline
and goes back in.  Re-arming it for sooner, or cancelling it, leaves the old entry behind as
stale; stale entries are dropped from the heap once they are as many as the live ones.  So the
heap holds at most about twice one entry per timer plus one per pending look, and a closed
guest's entry lets go of everything at once.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Final

log = logging.getLogger(__name__)

_COMPACT_MIN: Final = 64  # stale entries tolerated before the heap is rebuilt at all


class _Entry:
    """One heap entry; ``action`` None once it is stale (cancelled or replaced)."""

    __slots__ = ("action", "deadline", "key")

    def __init__(self, deadline: float, key: int, action: Callable[[], None] | None) -> None:
        self.deadline, self.key, self.action = deadline, key, action

    def __lt__(self, other: _Entry) -> bool:
        return (self.deadline, self.key) < (other.deadline, other.key)


class Clock:
    """A heap of deadlines and the thread that runs each action when it is due."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[_Entry] = []
        self._stale = 0
        self._keys = itertools.count()
        self._thread: threading.Thread | None = None

    def call_at(self, deadline: float, action: Callable[[], None]) -> _Entry:
        """Run ``action`` on the clock thread at ``time.monotonic()`` >= deadline."""
        with self._lock:
            entry = _Entry(deadline, next(self._keys), action)
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name="lguest-clock", daemon=True)
                self._thread.start()
            if self._heap[0] is entry:  # otherwise the clock wakes up before this one is due
                self._lock.notify()
            return entry

    def drop(self, entry: _Entry) -> None:
        """Make ``entry`` stale: it will not run, and holds nothing any more."""
        with self._lock:
            if entry.action is None:
                return
            entry.action = None
            self._stale += 1
            if self._stale > _COMPACT_MIN and self._stale * 2 > len(self._heap):
                self._heap = [e for e in self._heap if e.action is not None]
                heapq.heapify(self._heap)
                self._stale = 0

    def _main(self) -> None:
        while True:
            with self._lock:
                while not self._heap or self._heap[0].deadline > time.monotonic():
                    due = self._heap[0].deadline if self._heap else None
                    self._lock.wait(None if due is None else due - time.monotonic())
                entry = heapq.heappop(self._heap)
                action, entry.action = entry.action, None
                if action is None:
                    self._stale -= 1
                    continue
            try:
                action()
            except Exception:
                log.exception("clock action failed")


clock = Clock()


class Timer:
    """One guest's one-shot timer (2.6.24's ``hrtimer`` in ``struct lguest``).

    ``on_expiry`` runs on the clock thread when the armed deadline passes.  Arming, re-arming and
    cancelling may happen on any thread; the last one wins.
    """

    def __init__(self, on_expiry: Callable[[], None]) -> None:
        self._on_expiry = on_expiry
        self._lock = threading.Lock()
        self._deadline: float | None = None  # the armed deadline, None when not armed
        self._entry: _Entry | None = None  # the one live heap entry, due at or before it

    def arm(self, ns: int) -> None:
        """SET_CLOCKEVENT: expire ``ns`` nanoseconds from now; 0 cancels."""
        if not ns:
            self.cancel()
            return
        deadline = time.monotonic() + ns / 1e9
        with self._lock:
            self._deadline = deadline
            entry = self._entry
            if entry is not None and entry.action is not None and entry.deadline <= deadline:
                return  # it fires first and re-queues itself for this deadline
            self._entry = clock.call_at(deadline, self._due)
        if entry is not None:
            clock.drop(entry)

    def cancel(self) -> None:
        with self._lock:
            entry, self._entry, self._deadline = self._entry, None, None
        if entry is not None:
            clock.drop(entry)

    def _due(self) -> None:
        with self._lock:
            deadline, live = self._deadline, self._entry
            if deadline is None or (live is not None and live.action is not None):
                return  # cancelled, or re-armed sooner: a newer entry is queued
            if deadline > time.monotonic():  # re-armed for later since this entry was queued
                self._entry = clock.call_at(deadline, self._due)
                return
            self._deadline = self._entry = None
        self._on_expiry()
