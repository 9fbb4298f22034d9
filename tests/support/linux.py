"""The Linux 2.6.24 guest in tests: its build (once per run, and cached across runs), and how to
launch it.

``linux_build`` (a session fixture in ``tests/conftest.py``) calls
``launcher.guests.linux.build_linux``: the first run on a machine compiles the kernel (about a
minute on 2 cores), later runs find it in the cache.  Without a 2.6.24 source tarball every
Linux test skips, saying where to put one.

``linux_options(build, disk)`` gives the launcher options for a boot (the initramfs, and the
disk when given); the guest's shell prompt is ``PROMPT``.
"""

from pathlib import Path

import pytest

from launcher.guests.linux import PROMPT as PROMPT  # the tests' name for it
from launcher.guests.linux import (
    WHERE_TO_PUT_SOURCE,
    LinuxBuild,
    LinuxBuildError,
    build_linux,
    find_source,
)

MEM_MB = 64


def build_or_skip() -> LinuxBuild:
    source = find_source()
    if source is None:
        pytest.skip(f"no Linux 2.6.24 source tarball: {WHERE_TO_PUT_SOURCE}")
    try:
        return build_linux(source)
    except LinuxBuildError as error:
        pytest.fail(f"the Linux guest did not build: {error}")


def linux_options(build: LinuxBuild, disk: Path | None = None) -> list[str]:
    """``--initrd=...`` and, with a disk, ``--block=...``."""
    return [f"--initrd={build.initramfs}", *([f"--block={disk}"] if disk else [])]
