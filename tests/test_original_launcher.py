"""The 2.6.24 launcher itself (``lguest.c``, 32-bit, the project's three patches) against the node.

A client nobody here wrote, through a real mount with ``/dev/lguest`` linked to the node
(``tests.support.original``): it boots the project's OS with console input and output, a block
device checked on the host, breaks from ``lguest-waker`` while the guest is busy, its three
Ctrl-C, its console end of file, and a SIGKILL that must leave nothing behind; and the real
Linux 2.6.24 guest (``tests/test_original_launcher_linux.py``).  The 2.6.24 launcher exits 1
with the guest's reason on stderr when the guest powers off ("CRASH: Power down"), 2 after three
Ctrl-C.  Every test skips, saying where to put one, when there is no 2.6.24 source tarball.
"""

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.guests.handguest import footprint
from tests.support.launch import Launcher
from tests.support.mount import Mount
from tests.support.original import dev_lguest, original_launcher
from tests.support.polling import wait_for, wait_until

PROMPT = b"lguest> "
MEM_MB = 32
BOOT_TIMEOUT = 60.0
SECTOR = 512
# What the daemon may keep after a guest is gone: a few threads of trio's worker cache.
EXTRA_THREADS = 2


@pytest.fixture(scope="module")
def lguest_c() -> Path:
    return original_launcher()


@pytest.fixture
def node(mount: Mount) -> Iterator[Mount]:
    """The mount, with ``/dev/lguest`` linked to its node for the test."""
    with dev_lguest(mount):
        yield mount


def launch(lguest_c: Path, guest: Path, *args: str, options: tuple[str, ...] = ()) -> Launcher:
    return Launcher(None, MEM_MB, guest, *args, options=options, program=lguest_c)


def breaks(mount: Mount, pid: int) -> int:
    found = re.search(r"breaks\D*(\d+)", mount.status(pid))
    assert found, mount.status(pid)
    return int(found.group(1))


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_it_boots_the_os_console_both_ways_and_its_block_device_reaches_the_host_file(
    node: Mount, lguest_c: Path, guest_os: Path, tmp_path: Path
) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(
        bytes(2 * SECTOR) + b"written by the host".ljust(SECTOR, b"\0") + bytes(SECTOR)
    )
    with launch(lguest_c, guest_os, "quiet", options=(f"--block={disk}",)) as launcher:
        launcher.expect(PROMPT, timeout=BOOT_TIMEOUT)
        launcher.send(b"blk read 2\n")
        launcher.expect(b'blk: sector 2: "written by the host"')
        launcher.send(b"blk write 1 from the guest\n")
        launcher.expect(b"blk: wrote 14 bytes to sector 1")
        launcher.send(b"echo typed, echoed\n")
        launcher.expect(b"typed, echoed\n")
        launcher.send(b"poweroff\n")
        assert launcher.wait(30) == 1  # 2.6.24: the guest's reason, then exit 1
    assert b"lguest: CRASH: Power down" in launcher.stderr, launcher.stderr
    assert disk.read_bytes()[SECTOR : SECTOR + 14] == b"from the guest"


def test_lguest_waker_breaks_it_while_the_guest_is_busy(
    node: Mount, lguest_c: Path, guest_os: Path
) -> None:
    with launch(lguest_c, guest_os, "quiet") as launcher:
        launcher.expect(PROMPT, timeout=BOOT_TIMEOUT)
        before = breaks(node, launcher.pid)
        launcher.send(b"bench\n")
        launcher.expect(b"bench: three loops")
        # Once, while the guest computes: BREAK 1 returns when the launcher has written BREAK 0.
        waker = subprocess.run(
            [sys.executable, "-m", "launcher.waker", "--mount", str(node.path),
             str(launcher.pid)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert waker.returncode == 0, waker.stderr
        assert b"bench: stores" not in launcher.stdout, "the bench ended before the break"
        launcher.expect(b"bench: stores")
        assert breaks(node, launcher.pid) > before
        launcher.send(b"echo still here\n")
        launcher.expect(b"still here\n")


def test_three_ctrl_c_within_a_second_end_it_with_status_2(
    node: Mount, lguest_c: Path, guest_os: Path
) -> None:
    with launch(lguest_c, guest_os, "quiet") as launcher:
        launcher.expect(PROMPT, timeout=BOOT_TIMEOUT)
        for count in range(3):  # each ^C must reach the launcher in a read of its own
            launcher.send(b"\x03")
            if count < 2:
                launcher.expect((b"^C\n" + PROMPT) * (count + 1))
        assert launcher.wait(30) == 2
    assert not (node.guests / str(launcher.pid)).exists()


def test_at_console_end_of_file_the_os_with_idle_powers_itself_off(
    node: Mount, lguest_c: Path, guest_os: Path
) -> None:
    with launch(lguest_c, guest_os, "quiet", "idle=1") as launcher:
        launcher.send(b"echo last words\n")
        launcher.close_stdin()
        assert launcher.wait(60) == 1
    assert b"Failed to get console input, ignoring console." in launcher.stderr
    # Nothing after the guest's own lines: no ring bytes printed as an early-console string.
    assert launcher.stdout.endswith(
        b"last words\n" + PROMPT + b"\nconsole: no input for 1 s (idle=1): end of input\n"
    ), launcher.stdout
    assert b"lguest: CRASH: Power down" in launcher.stderr


def test_sigkill_leaves_no_guest_no_children_and_nothing_in_the_daemon(
    node: Mount, lguest_c: Path, guest_os: Path, tmp_path: Path
) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(8 * SECTOR))
    daemon = node.process.pid
    baseline = footprint(daemon)
    with launch(lguest_c, guest_os, "quiet", options=(f"--block={disk}",)) as launcher:
        launcher.expect(PROMPT, timeout=BOOT_TIMEOUT)
        launcher.send(b"blk read 0\n")
        launcher.expect(b"blk: sector 0")
        entry = node.guests / str(launcher.pid)
        assert entry.exists()
        launcher.send(b"bench\n")  # killed while its guest runs
        launcher.expect(b"bench: three loops")
        launcher.process.send_signal(signal.SIGKILL)
        launcher.wait(10)
        wait_until(lambda: not entry.exists(), 10.0, f"freed: {entry}")
        # Its waker and its block I/O process follow it (both see their pipe close).
        wait_until(lambda: group_gone(launcher.pid), 10.0, "without the launcher's children")

    def settled() -> bool:
        now = footprint(daemon)
        return now.threads <= baseline.threads + EXTRA_THREADS and now.fds <= baseline.fds

    assert wait_for(settled, 10.0), f"daemon before {baseline}, after {footprint(daemon)}"
    assert os.listdir(node.guests) == []
