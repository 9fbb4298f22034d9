"""The device page, the console bytes of spec 9, interrupt numbering, and block requests on a file.

Pure logic on a prepared guest's memory: the guest's half of each ring is played by
``tests.support.launch.Ring``.  No mount is needed; interrupts are recorded, not sent.
"""

import contextlib
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

import launcher.devices
from launcher.block import Block
from launcher.console import Console, ThreeCtrlC
from launcher.devices import DeviceTable
from launcher.errors import GuestBroke, LaunchError
from launcher.layout import PreparedGuest, prepare_guest
from launcher.net import Net, UdpLink, parse_net
from tests.support.launch import Ring, elf32

MB = 1 << 20
SPEC_CONSOLE_BYTES = bytes.fromhex("031400020880000100014000 000208800002000340000000")


@pytest.fixture
def guest(tmp_path: Path) -> Iterator[PreparedGuest]:
    kernel = tmp_path / "guest.elf"
    kernel.write_bytes(elf32([(0x100000, b"\xf4", 16)], 0x100000))
    with prepare_guest(64, kernel, []) as prepared:
        yield prepared


@pytest.fixture
def irqs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Interrupts the devices raise, instead of writing them to a node."""
    raised: list[int] = []

    def record(fd: int, irq: int) -> int:
        raised.append(irq)
        return 0

    monkeypatch.setattr(launcher.devices, "write_irq", record)
    return raised


@pytest.fixture
def stdin() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        with contextlib.suppress(OSError):
            os.close(fd)


def make_table(guest: PreparedGuest) -> DeviceTable:
    """A device table as after INITIALIZE (the ``irqs`` fixture catches its interrupts)."""
    table = DeviceTable(guest)
    table.fd = -1
    return table


def device_page(guest: PreparedGuest, length: int) -> bytes:
    return guest.read(64 * MB, length)


def test_console_only_device_page_matches_spec_9(
    guest: PreparedGuest, stdin: tuple[int, int]
) -> None:
    Console(make_table(guest), stdin=stdin[0])
    assert device_page(guest, len(SPEC_CONSOLE_BYTES)) == SPEC_CONSOLE_BYTES
    assert guest.pfnlimit == 0x4005


def test_console_queues_are_at_pfn_4001_and_4003_with_irqs_1_and_2(
    guest: PreparedGuest, stdin: tuple[int, int]
) -> None:
    console = Console(make_table(guest), stdin=stdin[0])
    assert (console.input.pfn, console.input.irq) == (0x4001, 1)
    assert (console.output.pfn, console.output.irq) == (0x4003, 2)


def test_devices_in_command_line_order_then_console_irqs_from_1(
    guest: PreparedGuest, stdin: tuple[int, int], tmp_path: Path
) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(4096))
    table = make_table(guest)
    block = Block(table, disk)
    link = UdpLink("udp:127.0.0.1:9", 0)
    net = Net(table, link)
    console = Console(table, stdin=stdin[0])
    assert [d.device_type for d in table.devices] == [2, 1, 3]
    queues = [block.queue, net.receive_queue, net.send_queue, console.input, console.output]
    assert [q.irq for q in queues] == [1, 2, 3, 4, 5]
    assert [q.pfn for q in queues] == [0x4001, 0x4003, 0x4005, 0x4007, 0x4009]
    link.close()


def test_block_descriptor_has_its_queue_then_capacity_then_seg_max(
    guest: PreparedGuest, tmp_path: Path
) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(10 * 512 + 100))  # the odd tail is not a sector
    Block(make_table(guest), disk)
    expected = (
        bytes([2, 10 + 10 + 6, 0])
        + bytes([2, 8]) + struct.pack("<HHI", 128, 1, 0x4001)
        + bytes([0x41, 8]) + struct.pack("<Q", 10)
        + bytes([0x43, 4]) + struct.pack("<I", 126)
        + b"\0"
    )  # fmt: skip
    assert device_page(guest, len(expected)) == expected


def test_net_descriptor_has_two_queues_then_the_mac(guest: PreparedGuest) -> None:
    link = UdpLink("udp:127.0.0.1:9,local=127.0.0.1:0", 0)
    Net(make_table(guest), link)
    port = link.port
    page = device_page(guest, 3 + 10 + 10 + 8)
    assert page[:3] == bytes([1, 28, 0])
    assert page[23:31] == bytes([0x41, 6, 0x02, 0x6C, 0x67, port >> 8, port & 0xFF, 0])
    link.close()


@pytest.mark.parametrize(
    ("spec", "peer", "local"),
    [
        ("udp:127.0.0.1:7000", ("127.0.0.1", 7000), ("", 0)),
        ("udp:localhost:7000,local=7001", ("localhost", 7000), ("", 7001)),
        ("udp:[::1]:7000,local=[::1]:7001", ("::1", 7000), ("::1", 7001)),
    ],
)
def test_net_option_forms(spec: str, peer: tuple[str, int], local: tuple[str, int]) -> None:
    assert parse_net(spec) == (peer, local)


@pytest.mark.parametrize("spec", ["tap0", "udp:", "udp:host", "udp:host:99999", "udp:h:1,x=2"])
def test_malformed_net_option_is_refused(spec: str) -> None:
    with pytest.raises(LaunchError, match="expected udp:HOST:PORT"):
        parse_net(spec)


def test_notify_of_a_queue_page_runs_its_handler_else_not(
    guest: PreparedGuest, stdin: tuple[int, int], irqs: list[int]
) -> None:
    table = make_table(guest)
    console = Console(table, stdin=stdin[0], stdout=stdin[1])
    assert table.notify(console.output.pfn << 12)
    assert not table.notify(0x100000)
    assert not table.notify((console.output.pfn + 1) << 12)  # the second page is not the queue


# --- Console ------------------------------------------------------------------------------------


def test_console_output_goes_to_stdout_with_used_length_written(
    guest: PreparedGuest, irqs: list[int]
) -> None:
    out_read, out_write = os.pipe()
    in_read, _ = os.pipe()
    table = make_table(guest)
    console = Console(table, stdin=in_read, stdout=out_write)
    ring = Ring.of(console.output)
    guest.write(0x200000, b"hello, ")
    guest.write(0x201000, b"world\n")
    ring.chain((0x200000, 7, False), (0x201000, 6, False))
    table.notify(console.output.pfn << 12)
    assert os.read(out_read, 100) == b"hello, world\n"
    assert ring.used() == (1, [(0, 13)])
    assert irqs == [2]


def test_console_input_fills_a_guest_buffer_from_stdin(
    guest: PreparedGuest, stdin: tuple[int, int], irqs: list[int]
) -> None:
    table = make_table(guest)
    console = Console(table, stdin=stdin[0])
    ring = Ring.of(console.input)
    ring.chain((0x300000, 64, True))
    os.write(stdin[1], b"ls\n")
    table.service_input()
    assert guest.read(0x300000, 3) == b"ls\n"
    assert ring.used() == (1, [(0, 3)])
    assert irqs == [1]


def test_console_input_without_a_buffer_stops_watching_until_kicked(
    guest: PreparedGuest, stdin: tuple[int, int], irqs: list[int]
) -> None:
    table = make_table(guest)
    console = Console(table, stdin=stdin[0])
    os.write(stdin[1], b"x")
    table.service_input()
    assert stdin[0] not in table.watched
    Ring.of(console.input).chain((0x300000, 64, True))
    table.notify(console.input.pfn << 12)
    assert stdin[0] in table.watched
    table.service_input()
    assert guest.read(0x300000, 1) == b"x"


def test_console_end_of_input_hands_eot_then_an_empty_buffer_and_forgets_stdin(
    guest: PreparedGuest, stdin: tuple[int, int], irqs: list[int]
) -> None:
    table = make_table(guest)
    console = Console(table, stdin=stdin[0])
    ring = Ring.of(console.input)
    first = ring.chain((0x300000, 64, True))
    second = ring.chain((0x301000, 64, True))
    os.close(stdin[1])
    table.service_input()
    assert ring.used() == (2, [(first, 1), (second, 0)])
    assert guest.read(0x300000, 1) == b"\x04"  # ^D: a Linux terminal's end-of-file
    table.notify(console.input.pfn << 12)
    assert stdin[0] not in table.watched


def test_console_output_with_a_writable_buffer_is_fatal(
    guest: PreparedGuest, stdin: tuple[int, int]
) -> None:
    table = make_table(guest)
    console = Console(table, stdin=stdin[0], stdout=stdin[1])
    Ring.of(console.output).chain((0x200000, 7, True))
    with pytest.raises(GuestBroke, match="console output queue: chain 0 has writable buffers"):
        table.notify(console.output.pfn << 12)


# --- Block --------------------------------------------------------------------------------------

HEADER, DATA, STATUS = 0x400000, 0x401000, 0x402000


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    path.write_bytes(b"".join(bytes([n]) * 512 for n in range(8)))  # sector n is full of n
    return path


def request(
    guest: PreparedGuest, block: Block, kind: int, sector: int, *data: tuple[int, int, bool]
) -> int:
    """Queue one request (header, data buffers, status), kick, and return the used length."""
    guest.write(HEADER, struct.pack("<IIQQ", kind, 0, sector, 42))
    ring = Ring.of(block.queue)
    ring.free = block.queue.last_avail * 4 % block.queue.num
    ring.chain((HEADER, 24, False), *data, (STATUS, 1, True))
    block.table.notify(block.queue.pfn << 12)
    idx, used = ring.used()
    return used[idx - 1][1]


def test_block_read_fills_the_buffers_and_reports_ok(
    guest: PreparedGuest, disk: Path, irqs: list[int]
) -> None:
    block = Block(make_table(guest), disk)
    used = request(guest, block, 0, 3, (DATA, 512, True), (DATA + 512, 512, True))
    assert guest.read(DATA, 1024) == bytes([3]) * 512 + bytes([4]) * 512
    assert (used, guest.read(STATUS, 1)) == (1 + 1024, b"\0")
    assert irqs == [1]


def test_block_read_at_the_end_returns_what_there_is(
    guest: PreparedGuest, disk: Path, irqs: list[int]
) -> None:
    block = Block(make_table(guest), disk)
    assert request(guest, block, 0, 7, (DATA, 1024, True)) == 1 + 512


def test_block_write_lands_in_the_file(guest: PreparedGuest, disk: Path, irqs: list[int]) -> None:
    block = Block(make_table(guest), disk)
    guest.write(DATA, b"W" * 512)
    used = request(guest, block, 1, 2, (DATA, 512, False))
    assert (used, guest.read(STATUS, 1)) == (1, b"\0")
    assert disk.read_bytes()[1024:1536] == b"W" * 512


def test_block_barrier_write_syncs_and_writes(
    guest: PreparedGuest, disk: Path, irqs: list[int]
) -> None:
    block = Block(make_table(guest), disk)
    guest.write(DATA, b"B" * 512)
    assert request(guest, block, 0x80000001, 0, (DATA, 512, False)) == 1
    assert disk.read_bytes()[:512] == b"B" * 512


def test_block_scsi_command_is_unsupported(
    guest: PreparedGuest, disk: Path, irqs: list[int]
) -> None:
    block = Block(make_table(guest), disk)
    assert request(guest, block, 2, 0, (DATA, 512, True)) == 1
    assert guest.read(STATUS, 1) == b"\2"


def test_block_write_past_the_end_is_refused_and_the_file_does_not_grow(
    guest: PreparedGuest, disk: Path, irqs: list[int]
) -> None:
    block = Block(make_table(guest), disk)
    before = disk.read_bytes()
    with pytest.raises(GuestBroke, match="past the end"):
        request(guest, block, 1, 7, (DATA, 1024, False))
    assert disk.read_bytes() == before


def test_block_request_with_a_short_header_is_fatal(guest: PreparedGuest, disk: Path) -> None:
    block = Block(make_table(guest), disk)
    ring = Ring.of(block.queue)
    ring.chain((HEADER, 16, False), (STATUS, 1, True))
    with pytest.raises(GuestBroke, match="the header is 16 bytes, not 24"):
        block.serve()


def test_block_request_without_status_is_fatal(guest: PreparedGuest, disk: Path) -> None:
    block = Block(make_table(guest), disk)
    Ring.of(block.queue).chain((HEADER, 24, False), (DATA, 512, False))
    with pytest.raises(GuestBroke, match="needs a read-only header and a writable status"):
        block.serve()


def test_block_missing_file_is_a_clear_error(guest: PreparedGuest, tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="no such file"):
        Block(make_table(guest), tmp_path / "nothing.img")


def test_block_file_in_use_by_another_device_is_refused(guest: PreparedGuest, disk: Path) -> None:
    table = make_table(guest)
    Block(table, disk)
    with pytest.raises(LaunchError, match="in use by another launcher"):
        Block(table, disk)


# --- Net: 2.6.24's virtio_net_hdr is 8 bytes (flags, gso_type, gso_size, csum_start, csum_offset)

FRAME = bytes(range(60))


def make_net(guest: PreparedGuest, peer: socket.socket) -> Net:
    link = UdpLink(f"udp:127.0.0.1:{peer.getsockname()[1]},local=127.0.0.1:0", 0)
    peer.connect(("127.0.0.1", link.port))
    return Net(make_table(guest), link)


def test_net_send_takes_an_8_byte_header_and_sends_the_frame_behind_it(
    guest: PreparedGuest, peer: socket.socket, irqs: list[int]
) -> None:
    net = make_net(guest, peer)
    guest.write(DATA, FRAME)
    Ring.of(net.send_queue).chain((HEADER, 8, False), (DATA, len(FRAME), False))
    net.send()
    assert peer.recv(2048) == FRAME
    assert Ring.of(net.send_queue).used() == (1, [(0, len(FRAME))])


def test_net_receive_zeroes_the_8_byte_header_and_counts_it_in_the_used_length(
    guest: PreparedGuest, peer: socket.socket, irqs: list[int]
) -> None:
    net = make_net(guest, peer)
    guest.write(HEADER, b"\xff" * 10)
    Ring.of(net.receive_queue).chain((HEADER, 8, True), (DATA, 1514, True))
    peer.send(FRAME)  # loopback UDP: queued on the link's socket before send() returns
    assert net.receive()
    assert guest.read(DATA, len(FRAME)) == FRAME
    assert guest.read(HEADER, 10)[:2] == b"\0\0"
    assert Ring.of(net.receive_queue).used() == (1, [(0, 8 + len(FRAME))])


def test_net_header_of_2_6_25s_10_bytes_is_fatal(guest: PreparedGuest, peer: socket.socket) -> None:
    net = make_net(guest, peer)
    Ring.of(net.send_queue).chain((HEADER, 10, False), (DATA, len(FRAME), False))
    with pytest.raises(GuestBroke, match="must start with the 8-byte virtio_net_hdr"):
        net.send()


@pytest.mark.parametrize(
    ("typed", "stops"),
    [(b"\x03\x03\x03", True), (b"\x03\x03x\x03", False), (b"ls\x03\x03\x03", True)],
)
def test_three_ctrl_c_in_a_row_stop_the_launcher_even_in_one_read(
    guest: PreparedGuest, stdin: tuple[int, int], irqs: list[int], typed: bytes, stops: bool
) -> None:
    table = make_table(guest)
    console = Console(table, stdin=stdin[0])
    Ring.of(console.input).chain((0x300000, 64, True))
    os.write(stdin[1], typed)
    if stops:
        with pytest.raises(ThreeCtrlC):
            table.service_input()
    else:
        table.service_input()


def test_more_queues_than_guest_interrupts_is_refused(guest: PreparedGuest, tmp_path: Path) -> None:
    table = make_table(guest)
    for n in range(32):  # irqs 1..31: one block queue each, then one too many
        disk = tmp_path / f"disk{n}.img"
        disk.write_bytes(bytes(512))
        if n < 31:
            Block(table, disk)
    with pytest.raises(LaunchError, match="too many devices: the guest has 31 device interrupts"):
        Block(table, disk)
