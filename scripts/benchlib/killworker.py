"""One launcher of the SIGKILL figure: a bench guest spinning, its launcher blocked in a read.

``python -m benchlib.killworker MOUNT ELF``: boots a bench guest (its own process, so its own
``guests/<pid>``), leaves it the SPIN command, prints ``reading`` and reads the node.  The guest
spins without a single exit, so the read stays in the daemon until the parent's SIGKILL ends this
process.  Should the read ever return, the worker says what it got and exits with status 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchlib.session import BenchGuest, Op


def main(mountpoint: str, elf: str) -> int:
    with BenchGuest(Path(mountpoint), Path(elf)) as guest:
        guest.command(Op.SPIN)
        print("reading", flush=True)
        word = guest.read()
        print(f"returned {word:#x}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
