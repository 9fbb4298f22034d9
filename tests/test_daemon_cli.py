"""``lguestfs MOUNTPOINT``: refusing bad mount points in one line, recovering dead ones, and
unmounting cleanly on SIGINT and SIGTERM, even with a launcher blocked in read."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.clients import Client, guest_image, load_guest
from tests.support.mount import REPO_ROOT, Mount, is_mounted, mounted, skip_reason

RUN_TIMEOUT = 30.0


@pytest.fixture(autouse=True)
def needs_fuse() -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)


def run_daemon(
    *args: str, python: tuple[str, ...] = ("-m", "lguestfs")
) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, *python, *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def assert_refused(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lguestfs: ") and words in lines[0], lines[0]


def test_missing_mountpoint_is_refused_in_one_line(tmp_path: Path) -> None:
    assert_refused(run_daemon(str(tmp_path / "nowhere")), "does not exist")


def test_file_as_mountpoint_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert_refused(run_daemon(str(tmp_path / "file")), "is not a directory")


def test_a_pyfuse3_that_cannot_name_callers_is_refused_in_one_line(tmp_path: Path) -> None:
    """Without the project's pyfuse3 patch no request would know its caller."""
    daemon = (
        "import sys, pyfuse3; del pyfuse3.current_request; "
        "from lguestfs.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = run_daemon(str(tmp_path), python=("-c", daemon))
    assert_refused(result, "lacks current_request(): run scripts/setup")


def test_live_fuse_mount_is_refused_in_one_line(mount: Mount) -> None:
    assert_refused(run_daemon(str(mount.path)), "already a live FUSE mount")


def test_mountpoint_left_dead_by_a_killed_daemon_is_recovered(tmp_path: Path) -> None:
    path = tmp_path / "mnt"
    with mounted(path) as first:
        first.crash()  # dies without unmounting: "Transport endpoint is not connected"
        with pytest.raises(OSError, match="not connected"):
            os.stat(first.node)
        with mounted(path) as second:
            assert os.stat(second.node).st_mode & 0o777 == 0o600
            assert "not connected" in second.log()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=str)
def test_signal_unmounts_cleanly_with_a_launcher_blocked_in_read(
    tmp_path: Path, client_builds: Path, signum: int
) -> None:
    image = guest_image("halt")
    try:
        with (
            mounted(tmp_path / "mnt") as mount,
            Client.start("c32", client_builds, pass_fds=(image.fd,)) as launcher,
        ):
            fd = launcher.open(mount.node)
            load_guest(launcher, fd, image)
            launcher.send(f"read {fd} 8")
            launcher.no_answer(0.2)
            assert mount.stop(signum) == 0
            assert not is_mounted(mount.path)
            assert launcher.answer().errno_name in ("ENOTCONN", "ECONNABORTED")
            assert "unmounted" in mount.log()
    finally:
        image.close()


def test_forced_unmount_aborts_blocked_reads_and_ends_the_daemon(
    tmp_path: Path, client_builds: Path
) -> None:
    image = guest_image("halt")
    try:
        with (
            mounted(tmp_path / "mnt") as mount,
            Client.start("c32", client_builds, pass_fds=(image.fd,)) as launcher,
        ):
            fd = launcher.open(mount.node)
            load_guest(launcher, fd, image)
            launcher.send(f"read {fd} 8")
            launcher.no_answer(0.2)
            subprocess.run(["umount", "-f", str(mount.path)], capture_output=True, check=False)
            assert launcher.answer().errno_name == "ECONNABORTED"
            assert mount.process.wait(RUN_TIMEOUT) == 0
            assert not is_mounted(mount.path)
    finally:
        image.close()


def test_unmount_from_outside_ends_the_daemon(tmp_path: Path) -> None:
    with mounted(tmp_path / "mnt") as mount:
        subprocess.run(["fusermount3", "-u", str(mount.path)], check=True)
        assert mount.process.wait(RUN_TIMEOUT) == 0


def test_debug_logs_every_refused_request(mount: Mount, client_builds: Path) -> None:
    with Client.start("c32", client_builds) as launcher:
        fd = launcher.open(mount.node)
        assert launcher.write(fd, 2, 1).errno_name == "EINVAL"
    deadline = time.monotonic() + 5
    while "IRQ before INITIALIZE" not in mount.log() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "EINVAL" in mount.log() and "IRQ before INITIALIZE" in mount.log()
