"""The node tree: ``lguest``, ``guests/<pid>/{waker,status}``, their modes, inodes and lifetimes."""

import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients import Client
from tests.support.mount import Mount, mounted, skip_reason
from tests.support.polling import wait_for

PAGES = 16
NOBODY = 65534


@pytest.fixture
def launcher(client_builds: Path) -> Iterator[Client]:
    with Client.start("c32", client_builds) as client:
        yield client


def initialise(launcher: Client, mount: Mount) -> int:
    fd = launcher.open(mount.node)
    base = launcher.request(f"memfd {PAGES}").number
    assert launcher.write(fd, 0, base, PAGES, 0, 0).number == 16
    return fd


def test_node_is_a_regular_file_0600_owned_by_the_daemon_user(mount: Mount) -> None:
    info = os.stat(mount.node)
    assert stat.S_ISREG(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid())


def test_every_lookup_of_the_node_gives_a_fresh_inode(mount: Mount) -> None:
    inodes = {os.stat(mount.node).st_ino for _ in range(5)}
    assert len(inodes) == 5


def test_root_lists_the_node_and_the_guests_directory(mount: Mount) -> None:
    assert sorted(os.listdir(mount)) == ["guests", "lguest"]
    assert os.listdir(mount.guests) == []


def test_guest_directory_appears_on_initialize_and_goes_on_release(
    mount: Mount, launcher: Client
) -> None:
    fd = initialise(launcher, mount)
    assert os.listdir(mount.guests) == [str(launcher.pid)]
    assert sorted(os.listdir(mount.guests / str(launcher.pid))) == ["status", "waker"]
    assert stat.S_IMODE(os.stat(mount.waker(launcher.pid)).st_mode) == 0o600
    assert launcher.request(f"close {fd}").ok
    assert wait_for(lambda: os.listdir(mount.guests) == [])
    assert not (mount.guests / str(launcher.pid)).exists()


def test_status_shows_state_word_size_memory_and_counters(mount: Mount, launcher: Client) -> None:
    fd = initialise(launcher, mount)
    assert launcher.write(fd, 2, 3).number == 0
    text = mount.status(launcher.pid)
    for line in [
        f"guest: {launcher.pid}",
        "word size: 32-bit",
        "pfnlimit: 0x10",
        "memory size: 65536",
        "irqs sent: 1",
        "reads: 0",
    ]:
        assert line in text, text
    assert "state: " in text


def test_waker_of_a_released_guest_answers_enoent(
    mount: Mount, launcher: Client, client_builds: Path
) -> None:
    fd = initialise(launcher, mount)
    with Client.start("py64", client_builds) as waker:
        waker_fd = waker.open(mount.waker(launcher.pid))
        assert launcher.request(f"close {fd}").ok
        assert waker.write(waker_fd, 3, 0).errno_name == "ENOENT"


def test_release_of_the_owner_frees_a_waker_blocked_in_break(
    mount: Mount, launcher: Client, client_builds: Path
) -> None:
    fd = initialise(launcher, mount)
    with Client.start("py64", client_builds) as waker:
        waker_fd = waker.open(mount.waker(launcher.pid))
        waker.send(f"write {waker_fd} 3 1")
        waker.no_answer(0.2)
        assert launcher.request(f"close {fd}").ok
        assert waker.answer().errno_name == "ENOENT"


def test_a_process_with_two_guests_gets_two_directories(mount: Mount, launcher: Client) -> None:
    initialise(launcher, mount)
    initialise(launcher, mount)
    assert sorted(os.listdir(mount.guests)) == [str(launcher.pid), f"{launcher.pid}.2"]


def test_other_users_cannot_open_the_node_even_when_the_mount_allows_them() -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="lguestfs-others-") as top:
        os.chmod(top, 0o755)  # let the other user reach the mount point itself
        with mounted(Path(top) / "mnt", "--allow-other") as mount:
            listing = subprocess.run(
                ["ls", mount.path], capture_output=True, text=True, user=NOBODY, group=NOBODY
            )
            assert listing.returncode == 0 and "lguest" in listing.stdout
            opening = subprocess.run(
                ["sh", "-c", f": <> {mount.node}"],
                capture_output=True,
                text=True,
                user=NOBODY,
                group=NOBODY,
            )
            assert opening.returncode != 0
            assert "Permission denied" in opening.stderr


def test_shell_redirection_opens_the_node_like_a_device(mount: Mount) -> None:
    irq_1 = "\\002" + "\\000" * 7 + "\\001" + "\\000" * 7  # {2, 1} in 8-byte words: IRQ 1
    result = subprocess.run(
        ["sh", "-c", f"printf '{irq_1}' > {mount.node}"], capture_output=True, text=True
    )
    assert result.returncode != 0  # the write is refused: the handle is not INITIALIZEd...
    assert "Function not implemented" not in result.stderr  # ...but O_TRUNC opened it
    assert wait_for(lambda: "IRQ before INITIALIZE" in mount.log())


def test_node_mode_cannot_be_changed(mount: Mount) -> None:
    with pytest.raises(PermissionError):
        os.chmod(mount.node, 0o666)
