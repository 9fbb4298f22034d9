"""One launcher of the scale figure: a compute guest, busy for a fixed time when told to go.

``python -m benchlib.scaleworker MOUNT ELF CHUNK SECONDS``: boots a bench guest (its own process, so
its own ``guests/<pid>``), prints ``ready``, waits for ``go`` on stdin, runs compute chunks of CHUNK
iterations for SECONDS, prints ``rate <instructions per second>`` and waits for stdin to close.
The parent starts all its workers' clocks together, so their busy times overlap.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from benchlib.figures import COMPUTE_INSTRUCTIONS_PER_ITERATION
from benchlib.session import BenchGuest, Op


def main(mountpoint: str, elf: str, chunk: str, seconds: str) -> None:
    iterations = int(chunk)
    with BenchGuest(Path(mountpoint), Path(elf)) as guest:
        guest.run(Op.COMPUTE, iterations)
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return
        done = 0
        start = time.perf_counter()
        while time.perf_counter() - start < float(seconds):
            guest.run(Op.COMPUTE, iterations)
            done += iterations
        rate = done * COMPUTE_INSTRUCTIONS_PER_ITERATION / (time.perf_counter() - start)
        print(f"rate {rate}", flush=True)
        sys.stdin.read()  # stay (and keep the guest) until the parent has measured the daemon


if __name__ == "__main__":
    main(*sys.argv[1:5])
