"""2.6.24's Waker: a forked child writes BREAK on the descriptor its parent is reading.

In 2.6.24 the launcher forked its Waker after INITIALIZE; the Waker wrote ``LHREQ_BREAK 1`` on
the inherited descriptor while the launcher sat in ``read()`` on it, the read returned EAGAIN,
and the launcher's ``LHREQ_BREAK 0`` released the Waker.  On a FUSE file the kernel would hold
the Waker's write behind the read (the f_pos lock) and the launcher's BREAK 0 behind the Waker's
held write (the inode lock); the node's opens answer ``FOPEN_STREAM |
FOPEN_PARALLEL_DIRECT_WRITES`` and report a size beyond any write (``lguestfs.fs``, facts 2 and
3), so here the exchange goes through, through a real mount and real processes: the C client's
``forkwrite`` is the Waker, and each request is seen with its own caller (the Waker's held BREAK
watches the Waker).
"""

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from lguestfs.abi import LHREQ_BREAK, LHREQ_IRQ
from tests.clients import Client, GuestImage, guest_image, load_guest
from tests.support.mount import Mount

WAKER_DELAY_MS = 300  # the Waker writes once the launcher's read is surely held
DEATH_TIMEOUT = 5.0  # seconds: a liveness bound, not a performance figure
C_KINDS = ("c32", "c64")  # forkwrite is the C client's


@pytest.fixture
def spin() -> Iterator[GuestImage]:
    image = guest_image("spin")
    yield image
    image.close()


@pytest.mark.parametrize("kind", C_KINDS)
def test_a_forked_waker_breaks_the_read_on_the_shared_descriptor(
    mount: Mount, client_builds: Path, spin: GuestImage, kind: str
) -> None:
    with Client.start(kind, client_builds, pass_fds=(spin.fd,)) as launcher:
        fd = launcher.open(mount.node)
        load_guest(launcher, fd, spin)
        waker = launcher.request(f"forkwrite {WAKER_DELAY_MS} {fd} {LHREQ_BREAK} 1").number
        # The guest spins: only the Waker's BREAK 1 can end this read.
        assert launcher.read(fd, launcher.word_bytes).errno_name == "EAGAIN"
        assert launcher.write(fd, LHREQ_IRQ, 0).number == 0  # while the Waker's BREAK is held
        assert launcher.write(fd, LHREQ_BREAK, 0).number == 0  # releases the Waker
        assert launcher.request(f"wait {waker}").values == ["0", "0"]


def test_the_waker_held_in_break_on_the_shared_descriptor_is_its_own_caller(
    mount: Mount, client_builds: Path, spin: GuestImage
) -> None:
    """A SIGKILL for the Waker frees its held BREAK 1, and the launcher, reading the same
    descriptor, is not interrupted by it: each request watches the thread that made it."""
    with Client.start("c32", client_builds, pass_fds=(spin.fd,)) as launcher:
        fd = launcher.open(mount.node)
        load_guest(launcher, fd, spin)
        waker = launcher.request(f"forkwrite 0 {fd} {LHREQ_BREAK} 1").number
        assert launcher.read(fd, launcher.word_bytes).errno_name == "EAGAIN"
        os.kill(waker, signal.SIGKILL)  # held in its BREAK 1: nothing cleared the break
        assert launcher.request(f"wait {waker}", DEATH_TIMEOUT).values == ["-1", "9"]
        assert launcher.write(fd, LHREQ_BREAK, 0).number == 0
        launcher.send(f"read {fd} {launcher.word_bytes}")
        launcher.no_answer(0.3)  # the guest spins on: the dead Waker's signal is not ours


def test_the_node_answers_opens_with_the_flags_the_kernel_knows(mount: Mount) -> None:
    assert "the kernel's FUSE protocol is 7." in mount.log()
    assert os.stat(mount.node).st_size == (1 << 31) - 1  # beyond any write; no EOVERFLOW
