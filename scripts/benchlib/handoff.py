"""A third reference: what one trio -> thread -> trio hand-off costs in this interpreter.

The daemon serves FUSE on trio's thread and runs a guest that outlasts a read's first
``RUN_HERE_FOR`` on a thread of its own, so such a read crosses threads twice: the read wakes the
guest thread, and the guest's exit wakes trio (``TrioToken.run_sync_soon``).  This measures
exactly that pair of wake-ups with nothing else (a ``queue.SimpleQueue`` to the thread,
``run_sync_soon`` back): what every notify round trip would cost on top of the bare read if it
were not served on trio's thread, which is why short reads are.
"""

from __future__ import annotations

import queue
import threading
import time

import trio


def round_trip_seconds(iterations: int) -> float:
    """Seconds per trio -> thread -> trio hand-off, measured in a fresh trio run."""

    async def measure() -> float:
        token = trio.lowlevel.current_trio_token()
        requests: queue.SimpleQueue[trio.Event | None] = queue.SimpleQueue()

        def worker() -> None:
            while (event := requests.get()) is not None:
                token.run_sync_soon(event.set)

        thread = threading.Thread(target=worker, name="bench-handoff")
        thread.start()
        try:
            for _ in range(min(iterations, 1000)):  # warm up
                event = trio.Event()
                requests.put(event)
                await event.wait()
            start = time.perf_counter()
            for _ in range(iterations):
                event = trio.Event()
                requests.put(event)
                await event.wait()
            return (time.perf_counter() - start) / iterations
        finally:
            requests.put(None)
            thread.join()

    return trio.run(measure)
