"""The device rows (1-26) of the spec's test vectors (``shared/spec/lguest-abi.md`` section 11).

Every test runs against a real mount, from client processes of both word sizes: ``c32`` is a C
program built with ``gcc -m32`` (4-byte words), ``py64`` a Python one writing 8-byte words.  The
owner is the client that opened ``lguest`` and INITIALIZEd it; "other" is a client holding that
guest's ``guests/<pid>/waker`` (on this kernel a waker cannot share the owner's descriptor).
Rows that need a guest to run use the one-behaviour guests of ``tests/guests``.
"""

import mmap
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients import KINDS, Client, GuestImage, guest_image, load_guest, open_guest
from tests.support.mount import Mount, mounted, skip_reason

MEMORY_PAGES = 16
BLOCKED = 0.3  # seconds a request must stay blocked to count as "blocks"


@pytest.fixture(scope="module")
def mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    """One daemon for the whole table, paid for once: the ``mount`` fixture's mount and cleanup,
    module-wide.  Every test uses processes and handles of its own, so none sees another's."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with mounted(tmp_path_factory.mktemp("rows") / "mnt") as mounted_fs:
        yield mounted_fs


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def owner(kind: str, client_builds: Path) -> Iterator[Client]:
    with Client.start(kind, client_builds) as client:
        yield client


@pytest.fixture
def other(kind: str, client_builds: Path) -> Iterator[Client]:
    with Client.start(kind, client_builds) as client:
        yield client


def initialise(owner: Client, mount: Mount) -> int:
    """Open the node and INITIALIZE it with fresh shared memory (the guest never runs)."""
    fd = owner.open(mount.node)
    base = owner.request(f"memfd {MEMORY_PAGES}").number
    assert owner.write(fd, 0, base, MEMORY_PAGES, 0, 0).number == 4 * owner.word_bytes
    return fd


def image_fixture(name: str):  # type: ignore[no-untyped-def]
    @pytest.fixture
    def image() -> Iterator[GuestImage]:
        built = guest_image(name)
        try:
            yield built
        finally:
            built.close()

    return image


notify_image = image_fixture("notify")
crash_image = image_fixture("crash")


@pytest.fixture
def halted_owner(kind: str, client_builds: Path, halt_image: GuestImage) -> Iterator[Client]:
    with Client.start(kind, client_builds, pass_fds=(halt_image.fd,)) as client:
        yield client


@pytest.fixture
def crashing_owner(kind: str, client_builds: Path, crash_image: GuestImage) -> Iterator[Client]:
    with Client.start(kind, client_builds, pass_fds=(crash_image.fd,)) as client:
        yield client


def dead_guest(owner: Client, mount: Mount, image: GuestImage) -> int:
    fd = open_guest(owner, mount.node, image)
    assert owner.read(fd, 1024).errno_name == "ENOENT"
    return fd


# --- Rows 1-2, 7, 26: a fresh handle ---------------------------------------------------------


def test_read_on_a_fresh_handle_is_einval(mount: Mount, owner: Client) -> None:  # row 1
    fd = owner.open(mount.node)
    assert owner.read(fd, 8).errno_name == "EINVAL"


@pytest.mark.parametrize("words", [(2, 1), (3, 1), (3, 0), (7,), (1,)], ids=str)
def test_requests_before_initialize_are_einval_and_break_does_not_block(  # row 2
    mount: Mount, owner: Client, words: tuple[int, ...]
) -> None:
    fd = owner.open(mount.node)
    assert owner.write(fd, *words).errno_name == "EINVAL"


def test_write_shorter_than_a_word_is_efault(mount: Mount, owner: Client) -> None:  # row 7
    fd = owner.open(mount.node)
    short = "00" * (owner.word_bytes - 1)
    assert owner.request(f"raw {fd} {short}").errno_name == "EFAULT"


def test_closed_and_reopened_node_is_a_fresh_handle(mount: Mount, owner: Client) -> None:  # row 26
    fd = initialise(owner, mount)
    assert owner.request(f"close {fd}").ok
    fd = owner.open(mount.node)
    assert owner.read(fd, 8).errno_name == "EINVAL"


# --- Rows 3-6: INITIALIZE --------------------------------------------------------------------


def test_initialize_returns_the_four_argument_words(mount: Mount, owner: Client) -> None:  # row 3
    fd = owner.open(mount.node)
    base = owner.request(f"memfd {MEMORY_PAGES}").number
    assert owner.write(fd, 0, base, MEMORY_PAGES, 0, 0).number == 4 * owner.word_bytes


def test_second_initialize_by_the_owner_is_ebusy(mount: Mount, owner: Client) -> None:  # row 4
    fd = initialise(owner, mount)
    base = owner.request(f"memfd {MEMORY_PAGES}").number
    assert owner.write(fd, 0, base, MEMORY_PAGES, 0, 0).errno_name == "EBUSY"
    assert owner.write(fd, 0).errno_name == "EBUSY"  # checked before the arguments


def test_initialize_by_another_task_is_eperm(mount: Mount, owner: Client, other: Client) -> None:
    fd = initialise(owner, mount)  # row 5
    waker = other.open(mount.waker(owner.pid))
    base = other.request(f"memfd {MEMORY_PAGES}").number
    assert other.write(waker, 0, base, MEMORY_PAGES, 0, 0).errno_name == "EPERM"
    assert owner.write(fd, 2, 0).number == 0  # the owner is unaffected


@pytest.mark.parametrize("arguments", [0, 1, 2, 3])
def test_initialize_with_missing_argument_words_is_efault(  # row 6
    mount: Mount, owner: Client, arguments: int
) -> None:
    fd = owner.open(mount.node)
    base = owner.request(f"memfd {MEMORY_PAGES}").number
    words = (base, MEMORY_PAGES, 0, 0)[:arguments]
    assert owner.write(fd, 0, *words).errno_name == "EFAULT"


def test_initialize_with_private_memory_is_efault_and_says_why(
    mount: Mount, client_builds: Path
) -> None:
    """A 64-bit launcher's; a 32-bit launcher's private memory is adopted (test_adopt.py)."""
    with Client.start("py64", client_builds) as owner:
        fd = owner.open(mount.node)
        base = owner.request(f"private {MEMORY_PAGES}").number
        assert owner.write(fd, 0, base, MEMORY_PAGES, 0, 0).errno_name == "EFAULT"
        assert "private mapping" in mount.log()
        assert owner.read(fd, 8).errno_name == "EINVAL"  # still uninitialised


def test_initialize_beyond_the_shared_memory_is_efault(mount: Mount, owner: Client) -> None:
    fd = owner.open(mount.node)
    base = owner.request(f"memfd {MEMORY_PAGES}").number
    assert owner.write(fd, 0, base, MEMORY_PAGES + 1, 0, 0).errno_name == "EFAULT"


# --- Rows 8-13: IRQ, unknown requests, BREAK 0 -----------------------------------------------


@pytest.mark.parametrize("irq", [0, 31])
def test_irq_in_range_by_the_owner_returns_0(mount: Mount, owner: Client, irq: int) -> None:
    fd = initialise(owner, mount)  # row 8
    assert owner.write(fd, 2, irq).number == 0


@pytest.mark.parametrize("irq", [32, 0xFFFFFFFF])
def test_irq_out_of_range_is_einval(mount: Mount, owner: Client, irq: int) -> None:  # row 9
    fd = initialise(owner, mount)
    assert owner.write(fd, 2, irq).errno_name == "EINVAL"


def test_irq_by_another_task_is_eperm(mount: Mount, owner: Client, other: Client) -> None:
    initialise(owner, mount)  # row 10
    waker = other.open(mount.waker(owner.pid))
    assert other.write(waker, 2, 5).errno_name == "EPERM"


@pytest.mark.parametrize("request_word", [7, 4, 1])
def test_unknown_requests_by_the_owner_are_einval(  # row 11
    mount: Mount, owner: Client, request_word: int
) -> None:
    fd = initialise(owner, mount)
    assert owner.write(fd, request_word).errno_name == "EINVAL"


def test_unknown_request_by_another_task_is_eperm(
    mount: Mount, owner: Client, other: Client
) -> None:
    initialise(owner, mount)  # row 12
    waker = other.open(mount.waker(owner.pid))
    assert other.write(waker, 7).errno_name == "EPERM"


def test_break_0_with_nothing_pending_returns_0_for_anyone(
    mount: Mount, owner: Client, other: Client
) -> None:
    fd = initialise(owner, mount)  # row 13
    waker = other.open(mount.waker(owner.pid))
    assert owner.write(fd, 3, 0).number == 0
    assert other.write(waker, 3, 0).number == 0


# --- Rows 14-17: BREAK 1, reads by others, signals ------------------------------------------


@pytest.mark.parametrize("value", [1, 2])
def test_break_by_another_task_blocks_until_break_0(
    mount: Mount, owner: Client, other: Client, value: int
) -> None:
    fd = initialise(owner, mount)  # row 14
    waker = other.open(mount.waker(owner.pid))
    other.send(f"write {waker} 3 {value}")
    other.no_answer(BLOCKED)
    assert owner.write(fd, 3, 0).number == 0
    assert other.answer().number == 0


def test_break_by_the_owner_itself_blocks_until_another_task_sends_break_0(
    mount: Mount, owner: Client, other: Client
) -> None:
    fd = initialise(owner, mount)  # spec 1.5: "if the owner itself writes BREAK 1 it blocks"
    waker = other.open(mount.waker(owner.pid))
    owner.send(f"write {fd} 3 1")
    owner.no_answer(BLOCKED)
    assert other.write(waker, 3, 0).number == 0
    assert owner.answer().number == 0


def test_signal_ends_a_blocked_break_with_eintr_and_the_flag_stays_set(
    mount: Mount, halted_owner: Client, other: Client, halt_image: GuestImage
) -> None:
    fd = open_guest(halted_owner, mount.node, halt_image)  # row 14
    waker = other.open(mount.waker(halted_owner.pid))
    assert other.request(f"catch {signal.SIGUSR1}").ok
    other.send(f"write {waker} 3 1")
    other.no_answer(BLOCKED)
    other.kill(signal.SIGUSR1)
    assert other.answer().errno_name == "EINTR"
    assert halted_owner.read(fd, 8).errno_name == "EAGAIN"  # the flag is still set
    assert halted_owner.write(fd, 3, 0).number == 0


def test_owner_read_while_break_is_set_is_eagain_until_break_0(
    mount: Mount, halted_owner: Client, other: Client, halt_image: GuestImage
) -> None:
    fd = open_guest(halted_owner, mount.node, halt_image)  # row 15
    halted_owner.send(f"read {fd} 8")
    halted_owner.no_answer(BLOCKED)  # the guest is halted for ever
    waker = other.open(mount.waker(halted_owner.pid))
    other.send(f"write {waker} 3 1")
    assert halted_owner.answer().errno_name == "EAGAIN"
    assert halted_owner.read(fd, 8).errno_name == "EAGAIN"  # every read, until BREAK 0
    other.no_answer(0.05)
    assert halted_owner.write(fd, 3, 0).number == 0
    assert other.answer().number == 0
    halted_owner.send(f"read {fd} 8")
    halted_owner.no_answer(BLOCKED)  # halted again: "still halted on the next read"


def test_read_by_another_task_is_eperm_alive_and_dead(
    mount: Mount, crashing_owner: Client, other: Client, crash_image: GuestImage
) -> None:
    fd = crashing_owner.open(mount.node)  # row 16
    load_guest(crashing_owner, fd, crash_image)
    waker = other.open(mount.waker(crashing_owner.pid))
    assert other.read(waker, 8).errno_name == "EPERM"
    assert crashing_owner.read(fd, 1024).errno_name == "ENOENT"
    assert other.read(waker, 1024).errno_name == "EPERM"


def test_signal_ends_a_blocked_read_with_eintr(
    mount: Mount, halted_owner: Client, halt_image: GuestImage
) -> None:
    fd = open_guest(halted_owner, mount.node, halt_image)  # row 17
    assert halted_owner.request(f"catch {signal.SIGUSR1}").ok
    halted_owner.send(f"read {fd} 8")
    halted_owner.no_answer(BLOCKED)
    halted_owner.kill(signal.SIGUSR1)
    assert halted_owner.answer().errno_name == "EINTR"
    halted_owner.send(f"read {fd} 8")  # the next read runs the guest again
    halted_owner.no_answer(BLOCKED)


# --- Rows 18-25: notify and death -------------------------------------------------------------


def test_guest_notify_returns_one_word_with_the_address(
    mount: Mount, kind: str, client_builds: Path, notify_image: GuestImage
) -> None:
    with Client.start(kind, client_builds, pass_fds=(notify_image.fd,)) as owner:
        fd = open_guest(owner, mount.node, notify_image)  # row 18
        seen = [owner.read(fd, 64).data for _ in range(2)]  # the "hello" string, then 0x4001000
        expected = struct.pack("<I" if owner.word_bytes == 4 else "<Q", 0x4001000)
        assert seen[1] == expected
        assert expected[:4] == bytes.fromhex("00100004")
        assert all(len(word) == owner.word_bytes for word in seen)


def test_guest_notify_0_is_dropped_and_the_guest_keeps_running(
    mount: Mount, kind: str, client_builds: Path
) -> None:
    image = guest_image("notify_zero")  # row 19: NOTIFY(0), then prints PASS and powers off
    try:
        with (
            Client.start(kind, client_builds, pass_fds=(image.fd,)) as owner,
            mmap.mmap(image.fd, image.pages * mmap.PAGESIZE, mmap.MAP_SHARED) as memory,
        ):
            fd = open_guest(owner, mount.node, image)
            printed = b""
            while (answer := owner.read(fd, 64)).ok:
                address = int.from_bytes(answer.data, "little")
                assert address != 0
                printed += memory[address : memory.find(b"\0", address)]
            assert answer.errno_name == "ENOENT"
            assert b"PASS notify_zero" in printed and b"LEAKED" not in printed
            assert owner.read(fd, 1024).data == b"CRASH: Power down\0"
    finally:
        image.close()


def test_64_bit_c_launcher_writes_and_reads_8_byte_words(
    mount: Mount, client_builds: Path, notify_image: GuestImage
) -> None:
    with Client.start("c64", client_builds, pass_fds=(notify_image.fd,)) as owner:
        fd = open_guest(
            owner, mount.node, notify_image
        )  # INITIALIZE returned 32 (load_guest checks)
        owner.read(fd, 64)  # the "hello" string
        assert owner.read(fd, 64).data == struct.pack("<Q", 0x4001000)
        # {2, 1} in 4-byte words is, to a 64-bit caller, the one word 0x100000002: no such request.
        assert owner.request(f"raw {fd} 0200000001000000").errno_name == "EINVAL"


def test_read_during_which_the_guest_dies_is_enoent(
    mount: Mount, crashing_owner: Client, crash_image: GuestImage
) -> None:
    fd = open_guest(crashing_owner, mount.node, crash_image)  # row 20
    assert crashing_owner.read(fd, 1024).errno_name == "ENOENT"


def test_reads_after_death_return_the_reason_and_nul_every_time(
    mount: Mount, crashing_owner: Client, crash_image: GuestImage
) -> None:
    fd = dead_guest(crashing_owner, mount, crash_image)  # row 21
    for _ in range(3):
        assert crashing_owner.read(fd, 1024).data == b"CRASH: oops\0"


def test_short_read_after_death_returns_the_first_characters_without_nul(
    mount: Mount, crashing_owner: Client, crash_image: GuestImage
) -> None:
    fd = dead_guest(crashing_owner, mount, crash_image)  # row 22
    assert crashing_owner.read(fd, 5).data == b"CRASH"


def test_empty_read_after_death_returns_0(
    mount: Mount, crashing_owner: Client, crash_image: GuestImage
) -> None:
    fd = dead_guest(crashing_owner, mount, crash_image)  # row 23
    answer = crashing_owner.read(fd, 0)
    assert answer.number == 0


@pytest.mark.parametrize("words", [(0, 0, 1, 0, 0), (2, 1), (3, 0), (3, 1), (7,), (1,)], ids=str)
def test_every_write_on_a_dead_guest_is_enoent_whoever_sends_it(  # row 25
    mount: Mount,
    crashing_owner: Client,
    other: Client,
    crash_image: GuestImage,
    words: tuple[int, ...],
) -> None:
    fd = dead_guest(crashing_owner, mount, crash_image)
    waker = other.open(mount.waker(crashing_owner.pid))
    assert crashing_owner.write(fd, *words).errno_name == "ENOENT"
    assert other.write(waker, *words).errno_name == "ENOENT"
