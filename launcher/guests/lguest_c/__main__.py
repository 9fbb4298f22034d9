"""``python -m launcher.guests.lguest_c [--source TARBALL] [--unpatched]``: build the launcher.

Prints the program's path on stdout, progress on stderr; on a failure one line on stderr (with
the log's path) and exit status 1.  ``--fetch-zlib`` only makes zlib's i386 header available
(``scripts/setup`` runs it).  Run the program as the README says: ``/dev/lguest`` a symbolic
link to ``MOUNTPOINT/lguest``, then ``lguest [--block=FILE] MEM_MB vmlinux [ARGS...]``.
"""

import argparse
import sys

from launcher.guests.lguest_c import LinuxBuildError, build_lguest_c, fetch_zlib
from launcher.guests.linux import add_source_argument


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m launcher.guests.lguest_c",
        description="Build Linux 2.6.24's launcher (Documentation/lguest/lguest.c) with the "
        "project's patches as a 32-bit program in the cache, and print its path.",
    )
    add_source_argument(parser)
    parser.add_argument(
        "--unpatched", action="store_true",
        help="build lguest.c as shipped, without the project's patches (the daemon adopts its "
        "private memory and lets its waker break on the inherited descriptor)",
    )  # fmt: skip
    parser.add_argument(
        "--fetch-zlib", action="store_true",
        help="only download and unpack zlib's i386 header when missing (scripts/setup)",
    )  # fmt: skip
    options = parser.parse_args()
    try:
        if options.fetch_zlib:
            fetch_zlib(lambda step: print(f"setup: {step}", file=sys.stderr, flush=True))
            return 0
        print(build_lguest_c(options.source, patched=not options.unpatched))
    except LinuxBuildError as error:
        print(f"lguest.c: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
