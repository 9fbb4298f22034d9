"""The 2.6.24 launcher exactly as shipped boots the real Linux 2.6.24 guest: no patch at all.

``lguest.c`` built 32-bit from the source tarball with none of the project's patches
(``build_lguest_c(patched=False)``), run against the node linked as ``/dev/lguest``.  Two things
make that possible (README, "Differences from the kernel device"): its private guest memory
(``/dev/zero`` and the kernel file, ``MAP_PRIVATE``) is adopted at INITIALIZE
(``lguestfs.adopt``), and its forked Waker's BREAK on the inherited descriptor goes through
while the launcher's read is held (``lguestfs.fs``, facts 2 and 3).  The shell is typed into
(each key is a Waker BREAK on the shared descriptor), the disk read and written (checked on the
host after ``poweroff``).
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.guests.linux import LinuxBuild, copy_disk
from tests.support.launch import Launcher
from tests.support.linux import MEM_MB, PROMPT, linux_options
from tests.support.mount import Mount
from tests.support.original import dev_lguest, original_launcher

BOOT_TIMEOUT = 120.0
PROOF = b"written by Linux under the unpatched 2.6.24 launcher"


@pytest.fixture(scope="module")
def lguest_as_shipped() -> Path:
    return original_launcher(patched=False)


@pytest.fixture
def booted(
    mount: Mount, lguest_as_shipped: Path, linux_build: LinuxBuild, tmp_path: Path
) -> Iterator[tuple[Launcher, Path]]:
    """The unpatched launcher running Linux to its shell, with a fresh copy of the disk."""
    disk = copy_disk(linux_build.disk_template, tmp_path / "disk.ext2")
    options = linux_options(linux_build, disk)
    with (
        dev_lguest(mount),
        Launcher(
            None, MEM_MB, linux_build.vmlinux, options=options, program=lguest_as_shipped
        ) as launcher,
    ):
        launcher.expect(PROMPT, timeout=BOOT_TIMEOUT)
        yield launcher, disk


def test_it_boots_linux_to_a_shell_that_reads_and_writes_the_disk(
    booted: tuple[Launcher, Path], mount: Mount
) -> None:
    launcher, disk = booted
    assert b"Booting paravirtualized kernel on lguest" in launcher.stdout
    assert f"launcher {launcher.pid}: private guest memory" in mount.log()
    launcher.send(b"echo $((6 * 7)) typed\n")
    launcher.expect(b"42 typed")
    launcher.send(b"cat /mnt/README\n")
    launcher.expect(b"The guest mounts it on /mnt")
    launcher.send(b"echo '" + PROOF + b"' > /mnt/proof; sync; exit\n")
    assert launcher.wait(60) == 1  # init powers off after the shell; 2.6.24 exits 1
    assert b"lguest: CRASH: Power down" in launcher.stderr, launcher.stderr
    assert PROOF in disk.read_bytes()
