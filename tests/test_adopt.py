"""A 32-bit launcher's private guest memory is adopted at INITIALIZE (``lguestfs.adopt``).

2.6.24's launcher maps guest memory ``MAP_PRIVATE``; the daemon copies it into a memfd, stops
the caller on its way out of INITIALIZE, and has it map the copy ``MAP_SHARED|MAP_FIXED`` over
the private range.  Through a real mount with the 32-bit C client: the guest runs on the copy,
the launcher's range is then the daemon's memfd, a launcher that is traced already is refused
with EFAULT and a reason, and a launcher killed after or during its adoption leaves nothing
behind.  (A 64-bit launcher's
private memory is still EFAULT: ``test_protocol_rows.py``.)
"""

import os
import random
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lguestfs.abi import LHREQ_INITIALIZE
from lguestfs.sharing import Mapping
from tests.clients import Client, GuestImage, build_c_client, guest_image
from tests.support.mount import Mount
from tests.support.polling import wait_for

KILLED_PAGES = 16384  # 64 MB of private memory: its copy takes long enough to be interrupted
KILLS = 12  # launchers killed at random moments of their adoption
KILL_WITHIN = 0.05  # seconds after sending INITIALIZE
NOTIFY_ADDRESS = 0x4001000  # what tests/guests/notify.c notifies
CLEANUP_TIMEOUT = 5.0  # seconds: a liveness bound, not a performance figure


@pytest.fixture
def notify() -> Iterator[GuestImage]:
    image = guest_image("notify")
    yield image
    image.close()


def mapping_at(pid: int, address: int) -> Mapping:
    with open(f"/proc/{pid}/maps", encoding="utf-8") as maps:
        for line in maps:
            mapping = Mapping.parse(line)
            if mapping.start <= address < mapping.end:
                return mapping
    raise AssertionError(f"{address:#x} is not mapped in {pid}")


def initialize_private(launcher: Client, mount: Mount, image: GuestImage) -> tuple[int, int]:
    """Map ``image`` private, as lguest.c maps its kernel, and INITIALIZE: (fd, base)."""
    base = launcher.request(f"privmap {image.fd} {image.pages}").number
    fd = launcher.open(mount.node)
    answer = launcher.write(fd, LHREQ_INITIALIZE, base, image.pfnlimit, image.pgdir, image.entry)
    assert answer.number == 16, answer
    return fd, base


def test_private_memory_is_adopted_and_the_guest_runs_on_it(
    mount: Mount, client_builds: Path, notify: GuestImage
) -> None:
    with Client.start("c32", client_builds, pass_fds=(notify.fd,)) as launcher:
        fd, base = initialize_private(launcher, mount, notify)
        adopted = mapping_at(launcher.pid, base)
        assert adopted.perms.startswith("rw") and adopted.perms[3] == "s", adopted.describe()
        assert f"memfd:lguestfs-{launcher.pid}" in adopted.name, adopted.describe()
        assert adopted.end - base >= notify.pfnlimit * 4096
        assert launcher.read(fd, 4).ok  # early_puts("hello\n"): a notify of its address
        assert launcher.read(fd, 4).data == struct.pack("<I", NOTIFY_ADDRESS)
        assert launcher.request("pid").ok  # it runs on, registers intact
    assert "private guest memory" in mount.log()


def open_fds(mount: Mount) -> int:
    """How many descriptors the daemon has open."""
    return len(os.listdir(f"/proc/{mount.process.pid}/fd"))


def test_a_launcher_killed_after_adoption_leaves_nothing(
    mount: Mount, client_builds: Path, notify: GuestImage
) -> None:
    daemon_fds = open_fds(mount)
    with Client.start("c32", client_builds, pass_fds=(notify.fd,)) as launcher:
        initialize_private(launcher, mount, notify)
        assert os.listdir(mount.guests) == [str(launcher.pid)]
    assert wait_for(lambda: os.listdir(mount.guests) == [], CLEANUP_TIMEOUT)
    # The guest's directory goes at release; its descriptors a moment later, when it has closed.
    assert wait_for(lambda: open_fds(mount) <= daemon_fds, CLEANUP_TIMEOUT)


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (Debian package strace)")
def test_a_launcher_traced_already_is_refused_with_efault_and_a_reason(
    mount: Mount, client_builds: Path, notify: GuestImage
) -> None:
    program = build_c_client("c32", client_builds)
    argv = ["strace", "-f", "-qq", "-o", os.devnull, str(program)]
    with Client(argv, 4, pass_fds=(notify.fd,)) as launcher:
        base = launcher.request(f"privmap {notify.fd} {notify.pages}").number
        fd = launcher.open(mount.node)
        refused = launcher.write(fd, LHREQ_INITIALIZE, base, notify.pfnlimit, 0, 0)
        assert refused.errno_name == "EFAULT"
        assert launcher.read(fd, 4).errno_name == "EINVAL"  # still uninitialised
    assert "it is traced already" in mount.log()


def test_launchers_killed_during_adoption_leave_the_daemon_as_it_was(
    mount: Mount, client_builds: Path
) -> None:
    """SIGKILL while the copy is made, while the caller is seized, or while it runs the
    daemon's system calls: each ends with no guest, no descriptor and no tracee left."""
    daemon_fds = open_fds(mount)
    seed = random.randrange(1 << 32)
    chance = random.Random(seed)
    for _ in range(KILLS):
        with Client.start("c32", client_builds) as launcher:
            base = launcher.request(f"private {KILLED_PAGES}").number
            fd = launcher.open(mount.node)
            launcher.send(f"write {fd} {LHREQ_INITIALIZE} {base} {KILLED_PAGES} 0 0")
            time.sleep(chance.uniform(0, KILL_WITHIN))
    assert wait_for(lambda: os.listdir(mount.guests) == [], CLEANUP_TIMEOUT), f"seed {seed}"
    assert wait_for(lambda: open_fds(mount) <= daemon_fds, CLEANUP_TIMEOUT), f"seed {seed}"
    with Client.start("c32", client_builds) as survivor:  # the daemon goes on
        base = survivor.request(f"private {KILLED_PAGES}").number
        fd = survivor.open(mount.node)
        assert survivor.write(fd, LHREQ_INITIALIZE, base, KILLED_PAGES, 0, 0).number == 16
    assert "Traceback" not in mount.log()
