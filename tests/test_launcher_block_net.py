"""The block and network devices end to end: the default guest reads and writes a disk file and
exchanges Ethernet frames, through a real mount and a real ``lguest-launch`` process.

The network is carried over UDP (``--net=udp:HOST:PORT``): the test's own UDP socket is the peer.
"""

import os
import re
import socket
from pathlib import Path

import pytest

from launcher.netpeer import free_udp_ports
from tests.support.launch import Launcher, run_launcher
from tests.support.mount import Mount

PROMPT = b"lguest> "
SECTOR = 512


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    path.write_bytes(b"hello from sector 0".ljust(SECTOR, b"\0") + bytes(7 * SECTOR))
    return path


def test_guest_reads_a_sector_of_the_block_file(mount: Mount, guest_os: Path, disk: Path) -> None:
    result = run_launcher(
        mount, 32, guest_os, "quiet", options=[f"--block={disk}"], stdin=b"blk read 0\n"
    )
    assert 'blk: sector 0: "hello from sector 0"' in result.output, result.output + result.errors
    assert result.returncode == 0


def test_guest_writes_what_it_read_back_to_the_file(
    mount: Mount, guest_os: Path, disk: Path
) -> None:
    commands = b"blk read 0\nblk write 5 written back\n"
    result = run_launcher(mount, 32, guest_os, "quiet", options=[f"--block={disk}"], stdin=commands)
    assert "blk: wrote 12 bytes to sector 5" in result.output, result.output + result.errors
    data = disk.read_bytes()
    assert data[5 * SECTOR : 6 * SECTOR] == b"written back".ljust(SECTOR, b"\0")
    assert len(data) == 8 * SECTOR


def test_guest_frame_arrives_at_the_udp_peer_and_a_reply_arrives_in_the_guest(
    mount: Mount, guest_os: Path, peer: socket.socket
) -> None:
    address = f"--net=udp:127.0.0.1:{peer.getsockname()[1]}"
    with Launcher(mount, 32, guest_os, "quiet", options=[address]) as launcher:
        launcher.expect(PROMPT, timeout=60)
        launcher.send(b"net send ping\n")
        frame, source = peer.recvfrom(2048)
        assert frame[:6] == b"\xff" * 6  # broadcast
        assert frame[12:14] == b"\x88\xb5"
        assert frame[14:18] == b"ping"
        reply = frame[6:12] + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + b"pong"  # to the guest
        peer.sendto(reply.ljust(60, b"\0"), source)
        launcher.expect(b'net: received 60 bytes from 02:00:00:00:00:01, type 0x88b5: "pong"')
        launcher.send(b"poweroff\n")
        assert launcher.wait(30) == 0


def test_two_guests_exchange_frames_over_udp(mount: Mount, guest_os: Path) -> None:
    ports = free_udp_ports(2)  # one per launcher
    a_net = f"--net=udp:127.0.0.1:{ports[1]},local=127.0.0.1:{ports[0]}"
    b_net = f"--net=udp:127.0.0.1:{ports[0]},local=127.0.0.1:{ports[1]}"
    with (
        Launcher(mount, 32, guest_os, "quiet", options=[a_net]) as a,
        Launcher(mount, 32, guest_os, "quiet", options=[b_net]) as b,
    ):
        a.expect(PROMPT, timeout=60)
        b.expect(PROMPT, timeout=60)
        a.send(b"net send hello b\n")
        b.expect(b'type 0x88b5: "hello b"')
        b.send(b"net send hello a\n")
        a.expect(b'type 0x88b5: "hello a"')
        a.send(b"poweroff\n")
        b.send(b"poweroff\n")
        assert (a.wait(30), b.wait(30)) == (0, 0)


ETH_P_ALL = 0x0003
TAP_ADDRESS = "10.213.77.1"


def test_guest_frame_comes_out_of_a_tap_interface_and_back(mount: Mount, guest_os: Path) -> None:
    if not os.path.exists("/dev/net/tun") or os.geteuid() != 0:
        pytest.skip("--tunnet needs root and /dev/net/tun")
    options = ["--verbose", f"--tunnet={TAP_ADDRESS}"]
    with Launcher(mount, 32, guest_os, "quiet", options=options) as launcher:
        try:
            launcher.expect(PROMPT, timeout=60)
        except AssertionError:
            if "--tunnet" in launcher.stderr.decode():
                pytest.skip(f"no tap device here: {launcher.stderr.decode().strip()}")
            raise
        match = re.search(rb"tap (lguest\d+)", launcher.stderr)
        assert match, launcher.stderr
        interface = match.group(1).decode()
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as wire:
            wire.bind((interface, 0))
            wire.settimeout(30)
            launcher.send(b"net send over the tap\n")
            frame = wire.recv(2048)
            while frame[12:14] != b"\x88\xb5":  # the host's own chatter on a new interface
                frame = wire.recv(2048)
            assert frame[14:26] == b"over the tap"
            wire.send(
                (frame[6:12] + b"\x02\x00\x00\x00\x00\x02\x88\xb5" + b"tap reply").ljust(60, b"\0")
            )
            launcher.expect(b'type 0x88b5: "tap reply"')
        launcher.send(b"poweroff\n")
        assert launcher.wait(30) == 0
