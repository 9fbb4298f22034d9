"""The default guest's block and network devices, end to end through a real mount: what the guest
writes lands in the launcher's backing file and survives to the next boot; frames cross to a UDP
peer (the launcher's network backend) and back.
"""

import socket
from pathlib import Path

from tests.support.launch import Launcher, run_launcher
from tests.support.mount import Mount

SECTOR = 512
PROMPT = b"lguest> "


def test_block_write_lands_in_the_file_and_is_read_back_on_the_next_boot(
    mount: Mount, guest_os: Path, tmp_path: Path
) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(16 * SECTOR))
    block = [f"--block={disk}"]

    first = run_launcher(mount, 32, guest_os, "quiet", options=block, stdin=b"blk write 7 kept\n")
    assert "blk: wrote 4 bytes to sector 7" in first.output, first.output + first.errors
    assert first.returncode == 0
    assert disk.read_bytes()[7 * SECTOR : 8 * SECTOR] == b"kept".ljust(SECTOR, b"\0")

    second = run_launcher(mount, 32, guest_os, "quiet", options=block, stdin=b"blk read 7\n")
    assert 'blk: sector 7: "kept"' in second.output, second.output + second.errors
    assert second.returncode == 0


def test_block_read_past_the_end_is_refused_by_the_guest(
    mount: Mount, guest_os: Path, tmp_path: Path
) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(4 * SECTOR))
    result = run_launcher(
        mount, 32, guest_os, "quiet", options=[f"--block={disk}"], stdin=b"blk read 4\n"
    )
    assert "blk: sector 4 is past the end (4 sectors)" in result.output
    assert result.returncode == 0


def test_guest_frame_reaches_the_peer_and_the_peers_frame_is_shown(
    mount: Mount, guest_os: Path, peer: socket.socket
) -> None:
    net = [f"--net=udp:127.0.0.1:{peer.getsockname()[1]}"]
    with Launcher(mount, 32, guest_os, "quiet", options=net) as launcher:
        launcher.expect(PROMPT)
        launcher.send(b"net send hello peer\n")
        frame, launcher_address = peer.recvfrom(2048)
        assert frame[:6] == b"\xff" * 6  # broadcast
        assert frame[12:14] == b"\x88\xb5"
        assert frame[14:].rstrip(b"\0") == b"hello peer"
        assert len(frame) == 60  # padded to Ethernet's minimum
        launcher.expect(b"net: sent 60-byte frame")

        # The guest sits at its prompt, halted: the frame must wake it through its irq.
        reply = frame[6:12] + b"\x02\x00\x00\x00\x00\x09" + b"\x88\xb5" + b"hello guest"
        peer.sendto(reply, launcher_address)
        launcher.expect(
            b'net: received 25 bytes from 02:00:00:00:00:09, type 0x88b5: "hello guest"'
        )
        launcher.send(b"poweroff\n")
        assert launcher.wait(30) == 0


def test_without_devices_the_commands_say_what_is_missing(mount: Mount, guest_os: Path) -> None:
    result = run_launcher(mount, 32, guest_os, "quiet", stdin=b"blk read 0\nnet send x\n")
    assert "blk: no block device (give the launcher --block=FILE)" in result.output
    assert "net: no network device (give the launcher --net=...)" in result.output
    assert result.returncode == 0
