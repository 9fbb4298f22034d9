"""``python -m launcher.guests.linux [--source TARBALL] [--force]``: build the Linux guest.

Prints the three paths (vmlinux, initramfs, disk template) on stdout, progress on stderr; on a
failure one line on stderr (with the log's path) and exit status 1.  ``--fetch-klibc`` only
makes klibc's programs available (``scripts/setup`` runs it; ``setup:`` and a line per step).
"""

import argparse
import sys

from launcher.guests.linux import LinuxBuildError, add_source_argument, build_linux, klibc


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m launcher.guests.linux",
        description="Build the Linux 2.6.24 guest (vmlinux, initramfs, ext2 disk) from a source "
        "tarball into the cache, and print the three paths.",
    )
    add_source_argument(parser)
    parser.add_argument("--force", action="store_true", help="rebuild even what is cached")
    parser.add_argument(
        "--fetch-klibc", action="store_true",
        help="only download and unpack klibc's i386 programs when missing (scripts/setup)",
    )  # fmt: skip
    options = parser.parse_args()
    if options.fetch_klibc:
        try:
            klibc.fetch(lambda step: print(f"setup: {step}", file=sys.stderr, flush=True))
        except LinuxBuildError as error:
            print(f"setup: klibc: {error}", file=sys.stderr)
            return 1
        return 0
    try:
        build = build_linux(options.source, force=options.force)
    except LinuxBuildError as error:
        print(f"linux: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("linux: interrupted", file=sys.stderr)
        return 130
    print(build.vmlinux)
    print(build.initramfs)
    print(build.disk_template)
    return 0


if __name__ == "__main__":
    sys.exit(main())
