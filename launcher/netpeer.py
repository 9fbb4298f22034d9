"""A host on the other end of ``--net=udp:``: it answers ARP and ICMP echo, and pings the guest.

``lguest-launch --net=udp:HOST:PORT`` carries each Ethernet frame as one UDP datagram
(``launcher.net``).  A guest with a real IP stack (Linux 2.6.24) needs someone there who speaks
IPv4: ``NetPeer`` is that someone, at ``PEER_IP`` with ``PEER_MAC``, on a UDP socket of its own.
A thread answers ARP requests for its address and echo requests to it; ``ping`` sends an echo
request to the guest (after learning its MAC by ARP) and times the reply.  The peer picks the
launcher's UDP port too (``net_option`` says both), so it can speak first.

``free_udp_ports`` finds ports for launchers that talk to each other.  ``host_ping`` is the
host's own ping (a raw socket), for a guest on a tap device (``--tunnet``);
``python -m launcher.netpeer ping ADDRESS`` runs it (in another network namespace, say)
and prints the round trip in ms, exiting 1 without a reply.

Used by the Linux network tests and by ``scripts/bench --only linux``.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable

from launcher.closing import Closing

PEER_IP = "10.0.2.2"
PEER_MAC = bytes.fromhex("02006c670202")
BROADCAST = b"\xff" * 6
ETH_ARP, ETH_IP = 0x0806, 0x0800
ARP_REQUEST, ARP_REPLY = 1, 2
ICMP_ECHO_REPLY, ICMP_ECHO = 0, 8
IP_ICMP = 1
POLL_SECONDS = 0.05  # how often the thread looks at its stop flag


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_packet(source: bytes, destination: bytes, payload: bytes, ttl: int = 64) -> bytes:
    """An IPv4 header (no options) for an ICMP ``payload``, then the payload."""
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, ttl, IP_ICMP, 0, source, destination
    )
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def icmp_echo(kind: int, ident: int, seq: int, data: bytes) -> bytes:
    body = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + data
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def arp(op: int, sender_mac: bytes, sender_ip: bytes, target_mac: bytes, target_ip: bytes) -> bytes:
    return struct.pack(
        "!HHBBH6s4s6s4s", 1, ETH_IP, 6, 4, op, sender_mac, sender_ip, target_mac, target_ip
    )


def free_udp_ports(count: int) -> list[int]:
    """``count`` distinct loopback UDP ports that were free a moment ago (for ``local=``)."""
    probes = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def host_ping(address: str, timeout: float = 10.0) -> float | None:
    """One echo request from this host's own IP stack (a raw socket: root) to ``address``; the
    round trip in seconds, None if no reply came within ``timeout``."""
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        ident, deadline = os.getpid() & 0xFFFF, time.monotonic() + timeout
        sent = time.monotonic()
        sock.sendto(icmp_echo(ICMP_ECHO, ident, 1, bytes(range(56))), (address, 0))
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                packet, (source, _) = sock.recvfrom(2048)
            except TimeoutError:
                break
            icmp = packet[(packet[0] & 0xF) * 4 :]
            if (
                source == address
                and icmp[0] == ICMP_ECHO_REPLY
                and icmp[4:6] == ident.to_bytes(2, "big")
            ):
                return time.monotonic() - sent
    return None


class NetPeer(Closing):
    """A UDP-carried Ethernet host at ``PEER_IP``; a context manager that stops its thread."""

    def __init__(self) -> None:
        self.ip = socket.inet_aton(PEER_IP)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(POLL_SECONDS)
        self.port: int = self.socket.getsockname()[1]
        self.launcher = ("127.0.0.1", free_udp_ports(1)[0])  # the launcher's end
        self.macs: dict[bytes, bytes] = {}  # IPv4 address -> MAC, from the guest's frames
        self.echo_requests = 0  # answered
        self._replies: dict[int, float] = {}  # echo sequence -> monotonic time of its reply
        self._changed = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, name="netpeer", daemon=True)
        self._thread.start()

    @property
    def net_option(self) -> str:
        """The launcher option that makes this peer the guest's network."""
        return f"--net=udp:127.0.0.1:{self.port},local=127.0.0.1:{self.launcher[1]}"

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.socket.close()

    def ping(self, guest_ip: str, seq: int, timeout: float = 5.0) -> float | None:
        """Send one echo request to ``guest_ip``; the round trip in seconds, None if no reply."""
        target = socket.inet_aton(guest_ip)
        deadline = time.monotonic() + timeout
        while target not in self.macs:
            if time.monotonic() >= deadline:
                return None
            self._send(BROADCAST, ETH_ARP, arp(ARP_REQUEST, PEER_MAC, self.ip, bytes(6), target))
            self._wait(lambda: target in self.macs, min(1.0, deadline - time.monotonic()))
        request = icmp_echo(ICMP_ECHO, 0x6C67, seq, bytes(range(56)))
        sent = time.monotonic()
        self._send(self.macs[target], ETH_IP, ip_packet(self.ip, target, request))
        if not self._wait(lambda: seq in self._replies, deadline - time.monotonic()):
            return None
        return self._replies.pop(seq) - sent

    def _wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(condition, max(timeout, 0))

    def _send(self, destination: bytes, kind: int, payload: bytes) -> None:
        frame = destination + PEER_MAC + struct.pack("!H", kind) + payload
        self.socket.sendto(frame.ljust(60, b"\0"), self.launcher)

    def _serve(self) -> None:
        while not self._stop:
            try:
                frame = self.socket.recv(2048)
            except (TimeoutError, ConnectionRefusedError):
                continue
            if len(frame) >= 14:
                with self._changed:
                    self._frame(frame)
                    self._changed.notify_all()

    def _frame(self, frame: bytes) -> None:
        source_mac, kind, payload = frame[6:12], struct.unpack("!H", frame[12:14])[0], frame[14:]
        if kind == ETH_ARP and len(payload) >= 28:
            op, sender_mac, sender_ip, _, target_ip = struct.unpack("!6xH6s4s6s4s", payload[:28])
            self.macs[sender_ip] = sender_mac
            if op == ARP_REQUEST and target_ip == self.ip:
                self._send(
                    source_mac, ETH_ARP, arp(ARP_REPLY, PEER_MAC, self.ip, sender_mac, sender_ip)
                )
        elif kind == ETH_IP and len(payload) >= 28 and payload[9] == IP_ICMP:
            header = (payload[0] & 0xF) * 4
            total = struct.unpack("!H", payload[2:4])[0]
            sender, target = payload[12:16], payload[16:20]
            icmp = payload[header:total]
            self.macs[sender] = source_mac
            if icmp[0] == ICMP_ECHO and target == self.ip:
                self.echo_requests += 1
                ident, seq = struct.unpack("!HH", icmp[4:8])
                reply = icmp_echo(ICMP_ECHO_REPLY, ident, seq, icmp[8:])
                self._send(source_mac, ETH_IP, ip_packet(self.ip, sender, reply))
            elif icmp[0] == ICMP_ECHO_REPLY and target == self.ip:
                self._replies[struct.unpack("!H", icmp[6:8])[0]] = time.monotonic()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "ping":
        sys.exit("usage: python -m launcher.netpeer ping ADDRESS")
    rtt = host_ping(sys.argv[2])
    print("no reply" if rtt is None else f"{rtt * 1000:.3f} ms")
    sys.exit(rtt is None)
