"""The virtio network device, and the UDP link that carries its frames (spec 8, 9).

The device: two queues, *receive* (the guest offers writable buffers) then *send* (read-only),
and the MAC field (0x41).  Every chain starts with a buffer of exactly 2.6.24's 8-byte
``virtio_net_hdr`` (2-byte aligned; 2.6.25 made it 10): on send it is ignored and the used length
excludes it; on receive we zero its flags and gso_type and the used length is 8 plus the frame.
A send header must be 2-byte aligned (spec 8); a receive header need not be.

Where the frames go is a ``Link``.  2.6.24 used a tap device (``--tunnet``, ``launcher.tap``):
that needs root, ``/dev/net/tun`` and network configuration, and its other end is the host's IP
stack.  The default here is ``--net=udp:HOST:PORT``: each Ethernet frame is one UDP datagram to a
peer, and datagrams from that peer come back as frames.  It needs no privilege and no setup, and
the peer can be a test, a small bridge process, or another launcher, so two guests can talk::

    lguest-launch --net=udp:127.0.0.1:7001,local=7000 64 guest.elf   # guest A
    lguest-launch --net=udp:127.0.0.1:7000,local=7001 64 guest.elf   # guest B

The socket is connected to the peer, so the kernel drops datagrams from anyone else.  Without
``local=`` it binds an ephemeral port (``--verbose`` prints it).  The guest's MAC is
``02:6c:67:PP:PP:NN``: locally administered, PP the local port, NN the device number.
"""

import errno
import socket
import struct
from typing import Protocol

from launcher.devices import DeviceTable
from launcher.errors import LaunchError
from launcher.virtqueue import Buffer, Chain, Direction, Virtqueue, gather, views
from lguestfs.abi import VIRTIO_ID_NET, VIRTIO_NET_F_MAC, VIRTIO_NET_HDR_BYTES

SCHEME = "udp:"
HEADER_ALIGN = 2  # __alignof__(struct virtio_net_hdr)
# Sending can fail for reasons that are the network's, not the guest's: the frame is dropped.
DROPPED_SEND_ERRORS = {errno.ECONNREFUSED, errno.EMSGSIZE, errno.ENOBUFS, errno.EHOSTUNREACH,
                       errno.ENETUNREACH, errno.EAGAIN}  # fmt: skip


def parse_net(spec: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """``udp:HOST:PORT[,local=[HOST:]PORT]`` -> (peer, local); LaunchError if malformed."""
    usage = f"--net={spec}: expected udp:HOST:PORT[,local=[HOST:]PORT]"
    if not spec.startswith(SCHEME):
        raise LaunchError(f"{usage} (the network is carried over UDP)")
    peer_part, _, local_part = spec[len(SCHEME) :].partition(",")
    peer = _host_port(peer_part, usage)
    local = ("", 0)
    if local_part:
        if not local_part.startswith("local="):
            raise LaunchError(usage)
        value = local_part[len("local=") :]
        local = _host_port(value, usage) if ":" in value else ("", _port(value, usage))
    return peer, local


def _host_port(text: str, usage: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")  # [::1]:7000
    if not host:
        raise LaunchError(usage)
    return host, _port(port, usage)


def _port(text: str, usage: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise LaunchError(f"{usage}: {text!r} is not a port number")
    return int(text)


class Link(Protocol):
    """Where a network device's frames go and come from."""

    mac: bytes  # the MAC address the guest is given
    description: str  # for --verbose

    def fileno(self) -> int: ...

    def send(self, frame: bytes) -> int:
        """Send one frame; bytes sent (0 if the network dropped it)."""
        ...

    def receive(self, buffers: list[memoryview]) -> int | None:
        """Read one frame into ``buffers``; its length, or None if there was none after all."""
        ...


class UdpLink:
    """Frames as UDP datagrams, to and from one peer (``udp:HOST:PORT[,local=[HOST:]PORT]``)."""

    def __init__(self, spec: str, number: int) -> None:
        peer, local = parse_net(spec)
        self.socket = _connected_socket(spec, peer, local)
        host, port = self.socket.getsockname()[:2]
        self.mac = bytes([0x02, 0x6C, 0x67, port >> 8, port & 0xFF, number & 0xFF])
        self.port = port
        self.description = f"UDP {host}:{port} <-> {peer[0]}:{peer[1]}"

    def fileno(self) -> int:
        return self.socket.fileno()

    def send(self, frame: bytes) -> int:
        try:
            return self.socket.send(frame)
        except OSError as error:
            if error.errno not in DROPPED_SEND_ERRORS:
                raise LaunchError(f"net: sending a frame: {error.strerror}") from None
            return 0

    def receive(self, buffers: list[memoryview]) -> int | None:
        try:
            return self.socket.recvmsg_into(buffers, 0, socket.MSG_DONTWAIT)[0]
        except (BlockingIOError, ConnectionRefusedError):
            # Nothing after all, or the peer's ICMP "port unreachable" for an earlier frame.
            return None

    def close(self) -> None:
        self.socket.close()


class Net:
    def __init__(self, table: DeviceTable, link: Link, number: int = 0) -> None:
        self.table = table
        self.link = link
        device = table.add_device(VIRTIO_ID_NET, f"net{number}")
        fd = link.fileno()
        # A kick on the receive queue means "here are buffers": watch the link again.
        self.receive_queue = table.add_queue(
            device, "receive", Direction.IN, lambda: table.watch(fd)
        )
        self.send_queue = table.add_queue(device, "send", Direction.OUT, self.send)
        table.add_field(device, VIRTIO_NET_F_MAC, link.mac)
        table.add_input(fd, self.receive)
        table.verbose(f"{device.name}: {link.description}, MAC {link.mac.hex(':')}")

    def _header(
        self, queue: Virtqueue, chain: Chain, buffers: list[Buffer], *, aligned: bool
    ) -> Buffer:
        """The chain's first buffer, which must be exactly the virtio_net_hdr.  Spec 8 asks for
        2-byte alignment on send only (2.6.24 read that header's u16 fields in place)."""
        if not buffers or buffers[0].length != VIRTIO_NET_HDR_BYTES:
            raise queue.broke(
                f"chain {chain.head} must start with the {VIRTIO_NET_HDR_BYTES}-byte virtio_net_hdr"
            )
        if aligned and buffers[0].address % HEADER_ALIGN:
            raise queue.broke(
                f"chain {chain.head} has its virtio_net_hdr at {buffers[0].address:#x}, "
                "not 2-byte aligned"
            )
        return buffers[0]

    def send(self) -> None:
        """Every frame the guest queued goes out on the link."""
        queue = self.send_queue
        sent_any = False
        while (chain := queue.pop()) is not None:
            self._header(queue, chain, chain.readable, aligned=True)
            queue.push_used(
                chain.head, self.link.send(gather(self.table.guest.memory, chain.readable[1:]))
            )
            sent_any = True
        if sent_any:
            self.table.trigger(queue)

    def receive(self) -> bool:
        """A frame is waiting on the link: put it in the guest's next receive buffer."""
        queue = self.receive_queue
        chain = queue.pop()
        if chain is None:
            return False  # no buffer: wait for the guest to kick the receive queue
        header = self._header(queue, chain, chain.writable, aligned=False)
        memory = self.table.guest.memory
        size = self.link.receive(views(memoryview(memory), chain.writable[1:]))
        if size is None:
            queue.discard()
            return True
        struct.pack_into("<BB", memory, header.address, 0, 0)  # flags, gso_type: plain frame
        queue.push_used(chain.head, VIRTIO_NET_HDR_BYTES + size)
        self.table.trigger(queue)
        return True


def _connected_socket(spec: str, peer: tuple[str, int], local: tuple[str, int]) -> socket.socket:
    try:
        family, _, _, _, address = socket.getaddrinfo(peer[0], peer[1], type=socket.SOCK_DGRAM)[0]
    except socket.gaierror as error:
        raise LaunchError(f"--net={spec}: cannot resolve {peer[0]}: {error.strerror}") from None
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind(local)
        sock.connect(address)
    except OSError as error:
        sock.close()
        raise LaunchError(f"--net={spec}: {error.strerror}") from None
    return sock
