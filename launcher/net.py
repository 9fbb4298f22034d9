"""The virtio network device, carried over UDP: each Ethernet frame is one datagram (spec 8, 9).

2.6.24 connected the guest to a tap device (``--tunnet``).  A tap needs ``/dev/net/tun``, a network
namespace to be useful, and root to configure; and the other end of it is the host's IP stack,
which a test cannot easily talk to without more privileges.  A UDP socket needs nothing: frames go
to a peer address, and datagrams from that peer come back as frames.  The peer can be a test, a
small bridge process, or another launcher, so two guests can talk to each other::

    lguest-launch --net=udp:127.0.0.1:7001,local=7000 64 guest.elf   # guest A
    lguest-launch --net=udp:127.0.0.1:7000,local=7001 64 guest.elf   # guest B

The socket is connected to the peer, so the kernel drops datagrams from anyone else.  Without
``local=`` the launcher binds an ephemeral port (``--verbose`` prints it).

The device: two queues, *receive* (guest offers writable buffers) then *send* (read-only), and
the MAC field (0x41), ``02:6c:67:PP:PP:NN`` (locally administered; PP = the local port, NN = the
device number).  Every chain starts with a buffer of exactly the 10-byte ``virtio_net_hdr``
(2-byte aligned): on send it is ignored and the used length excludes it; on receive we zero its
flags and gso_type and the used length is 10 plus the frame.
"""

import errno
import socket
import struct

from launcher.devices import DeviceTable
from launcher.errors import GuestBroke, LaunchError
from launcher.virtqueue import Buffer, Chain, Virtqueue, gather, views
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


class Net:
    def __init__(self, table: DeviceTable, spec: str, number: int = 0) -> None:
        peer, local = parse_net(spec)
        self.table = table
        self.socket = _connected_socket(spec, peer, local)
        self.local = self.socket.getsockname()
        port = self.local[1]
        mac = bytes([0x02, 0x6C, 0x67, port >> 8, port & 0xFF, number & 0xFF])
        device = table.add_device(VIRTIO_ID_NET, f"net{number}")
        fd = self.socket.fileno()
        # A kick on the receive queue means "here are buffers": watch the socket again.
        self.receive_queue = table.add_queue(device, "receive", on_notify=lambda: table.watch(fd))
        self.send_queue = table.add_queue(device, "send", on_notify=self.send)
        table.add_field(device, VIRTIO_NET_F_MAC, mac)
        table.add_input(fd, self.receive)
        table.verbose(
            f"{device.name}: UDP {self.local[0]}:{port} <-> {peer[0]}:{peer[1]}, MAC {mac.hex(':')}"
        )

    def _header(self, queue: Virtqueue, chain: Chain, buffers: list[Buffer]) -> Buffer:
        if not buffers or buffers[0].length != VIRTIO_NET_HDR_BYTES:
            raise GuestBroke(
                f"guest broke the {queue.name} queue: chain {chain.head} must start with the "
                f"{VIRTIO_NET_HDR_BYTES}-byte virtio_net_hdr"
            )
        if buffers[0].address % HEADER_ALIGN:
            raise GuestBroke(
                f"guest broke the {queue.name} queue: chain {chain.head} has its virtio_net_hdr "
                f"at {buffers[0].address:#x}, not 2-byte aligned"
            )
        return buffers[0]

    def send(self) -> None:
        """Every frame the guest queued becomes one datagram to the peer."""
        queue = self.send_queue
        sent_any = False
        while (chain := queue.pop()) is not None:
            if chain.writable:
                raise GuestBroke(
                    f"guest broke the {queue.name} queue: chain {chain.head} has writable buffers"
                )
            self._header(queue, chain, chain.readable)
            frame = gather(self.table.guest.memory, chain.readable[1:])
            try:
                sent = self.socket.send(frame)
            except OSError as error:
                if error.errno not in DROPPED_SEND_ERRORS:
                    raise LaunchError(f"{queue.name}: sending a frame: {error.strerror}") from None
                self.table.verbose(f"{queue.name}: frame of {len(frame)} bytes dropped: {error}")
                sent = 0
            queue.push_used(chain.head, sent)
            sent_any = True
        if sent_any:
            self.table.trigger(queue)

    def receive(self) -> bool:
        """A datagram is waiting: put it in the guest's next receive buffer."""
        queue = self.receive_queue
        chain = queue.pop()
        if chain is None:
            return False  # no buffer: wait for the guest to kick the receive queue
        if chain.readable:
            raise GuestBroke(
                f"guest broke the {queue.name} queue: chain {chain.head} has read-only buffers"
            )
        header = self._header(queue, chain, chain.writable)
        memory = self.table.guest.memory
        try:
            size = self.socket.recvmsg_into(
                views(memoryview(memory), chain.writable[1:]), 0, socket.MSG_DONTWAIT
            )[0]
        except (BlockingIOError, ConnectionRefusedError):
            # Nothing after all, or the peer's ICMP "port unreachable" for an earlier frame.
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
