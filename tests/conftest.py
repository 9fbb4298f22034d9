"""Fixtures every test may use.

* ``mount``: a freshly mounted lguestfs daemon on a temporary directory (``tests.support.mount``),
  unmounted and checked for internal errors after the test; skipped without root or /dev/fuse.
* ``client_builds``: a directory where the C clients of ``tests/clients`` are compiled once per run.
* ``guest_os``: the default guest's ELF; ``peer``: a UDP socket for a launcher's network link.
* ``halt_image``, ``spin_image``: the ``halt`` and ``spin`` test guests laid out in a memfd, for
  ``tests.clients.open_guest`` (a halted guest's read blocks for ever; a spinning one's too, busy).
* ``run_tmpdir``: a TMPDIR for one ``scripts/run``, checked afterwards for anything left behind.
* ``linux_build``: the Linux 2.6.24 guest (vmlinux, initramfs, disk template), built once per run
  and cached across runs; tests using it skip when there is no source tarball
  (``tests.support.linux``).
"""

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.guests.build import build_guest
from launcher.guests.linux import LinuxBuild
from tests.clients import GuestImage, guest_image
from tests.support.linux import build_or_skip
from tests.support.mount import Mount, mounted, skip_reason
from tests.support.run import leftovers


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Mount]:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with mounted(tmp_path / "mnt") as mounted_fs:
        yield mounted_fs


@pytest.fixture(scope="session")
def client_builds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clients")


@pytest.fixture(scope="session")
def guest_os() -> Path:
    """The default guest's ELF (``launcher/guests/os``), built once per run."""
    return build_guest("os")


@pytest.fixture
def halt_image() -> Iterator[GuestImage]:
    image = guest_image("halt")
    yield image
    image.close()


@pytest.fixture
def spin_image() -> Iterator[GuestImage]:
    image = guest_image("spin")
    yield image
    image.close()


@pytest.fixture
def peer() -> Iterator[socket.socket]:
    """A UDP socket on loopback: the far end of a launcher's ``--net=udp:`` link."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(30)
        yield sock


@pytest.fixture
def run_tmpdir(tmp_path: Path) -> Iterator[Path]:
    """A TMPDIR of this test's own for ``scripts/run``; nothing may remain in it afterwards."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    yield tmpdir
    assert leftovers(tmpdir) == [], "scripts/run left something behind"


@pytest.fixture(scope="session")
def linux_build() -> LinuxBuild:
    """The Linux guest's files, built (or found in the cache) once per run."""
    return build_or_skip()
