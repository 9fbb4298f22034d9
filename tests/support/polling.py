"""Waiting for what another process does: poll a condition until it holds or a deadline passes.

The timeouts are liveness bounds (how long before a test gives up), never performance figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Whether ``condition()`` became true within ``timeout`` seconds (looked at every 10 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """``wait_for``, failing the test with "still not ``what``" when the deadline passes."""
    if not wait_for(condition, timeout):
        raise AssertionError(f"still not {what} after {timeout} s")
