"""Running ``scripts/run`` as a user does, for tests: its path, an environment giving it a
TMPDIR of the test's own (so "nothing left behind" is checked on a directory no one else uses),
the check of that directory, and reading a stream until some text arrives.  The ``run_tmpdir``
fixture (``tests/conftest.py``) makes the directory and checks it afterwards.
"""

import os
import selectors
import time
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN = REPO_ROOT / "scripts" / "run"


def leftovers(tmpdir: Path) -> list[str]:
    """Mounts, files and processes that still refer to ``tmpdir``."""
    found = [str(p) for p in tmpdir.iterdir()]
    with open("/proc/self/mountinfo") as mountinfo:
        found += [line for line in mountinfo if str(tmpdir) in line]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(tmpdir).encode() in cmdline:
            found.append(f"process {pid}: {cmdline!r}")
    return found


def run_environment(tmpdir: Path) -> dict[str, str]:
    return dict(os.environ, TMPDIR=str(tmpdir))


def read_until(stream: IO[bytes], text: bytes, timeout: float) -> bytes:
    """Read ``stream`` until ``text`` appears; AssertionError at EOF or after ``timeout``."""
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while text not in seen:
            remaining = deadline - time.monotonic()
            assert remaining > 0 and selector.select(remaining), f"no {text!r} in {seen!r}"
            chunk = os.read(stream.fileno(), 4096)
            assert chunk, f"EOF before {text!r}: {seen!r}"
            seen += chunk
    return seen
