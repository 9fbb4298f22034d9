"""2.6.24's network link: a tap device (``--tunnet=IP`` or ``--tunnet=bridge:BRIDGE``).

The launcher opens ``/dev/net/tun`` and asks for a new tap interface (``lguest0``, ``lguest1``,
...); frames the guest sends come out of that interface into the host's network stack, and frames
the host sends to it reach the guest.  Like 2.6.24 it then either gives the interface an IPv4
address or adds it to an existing bridge, brings it up, and tells the guest the interface's own
MAC address.  This needs root (CAP_NET_ADMIN) and ``/dev/net/tun``; without them the option fails
with one line and ``--net=udp:...`` (``launcher.net``) is the way.  The interface disappears when
the launcher exits.
"""

import fcntl
import os
import socket
import struct

from launcher.errors import LaunchError

TUN_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000  # frames only, no packet-information prefix
IFF_UP = 0x1
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFADDR = 0x8916
SIOCGIFHWADDR = 0x8927
SIOCGIFINDEX = 0x8933
SIOCBRADDIF = 0x89A2
IFNAMSIZ = 16
IFREQ_BYTES = 40
BRIDGE_PREFIX = "bridge:"
NAME_PATTERN = b"lguest%d"


def _ifreq(name: bytes, payload: bytes = b"") -> bytes:
    return name.ljust(IFNAMSIZ, b"\0") + payload.ljust(IFREQ_BYTES - IFNAMSIZ, b"\0")


class TapLink:
    """A tap interface configured as 2.6.24 did it; frames are read and written whole."""

    def __init__(self, arg: str) -> None:
        try:
            self.fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_CLOEXEC)
        except OSError as error:
            raise LaunchError(
                f"--tunnet={arg}: cannot open {TUN_DEVICE}: {error.strerror} "
                "(use --net=udp:HOST:PORT instead)"
            ) from None
        try:
            request = _ifreq(NAME_PATTERN, struct.pack("<H", IFF_TAP | IFF_NO_PI))
            answer = fcntl.ioctl(self.fd, TUNSETIFF, request)
            self.name = answer[:IFNAMSIZ].rstrip(b"\0")
            self.mac = self._configure(arg)
        except OSError as error:
            os.close(self.fd)
            raise LaunchError(f"--tunnet={arg}: {error.strerror}") from None
        except LaunchError:
            os.close(self.fd)
            raise
        self.description = f"tap {self.name.decode()} ({arg})"

    def _configure(self, arg: str) -> bytes:
        """Address or bridge, then up; returns the interface's MAC for the guest (2.6.24)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
            if arg.startswith(BRIDGE_PREFIX):
                bridge = arg[len(BRIDGE_PREFIX) :].encode()
                index = fcntl.ioctl(control, SIOCGIFINDEX, _ifreq(self.name))
                (ifindex,) = struct.unpack_from("<i", index, IFNAMSIZ)
                fcntl.ioctl(control, SIOCBRADDIF, _ifreq(bridge, struct.pack("<i", ifindex)))
            else:
                try:
                    address = socket.inet_aton(arg)
                except OSError:
                    raise LaunchError(
                        f"--tunnet={arg}: expected an IPv4 address or bridge:NAME"
                    ) from None
                sockaddr = struct.pack("<H", socket.AF_INET) + b"\0\0" + address
                fcntl.ioctl(control, SIOCSIFADDR, _ifreq(self.name, sockaddr))
            flags = fcntl.ioctl(control, SIOCGIFFLAGS, _ifreq(self.name))
            (current,) = struct.unpack_from("<H", flags, IFNAMSIZ)
            fcntl.ioctl(
                control, SIOCSIFFLAGS, _ifreq(self.name, struct.pack("<H", current | IFF_UP))
            )
            hwaddr = fcntl.ioctl(control, SIOCGIFHWADDR, _ifreq(self.name))
            return bytes(hwaddr[IFNAMSIZ + 2 : IFNAMSIZ + 8])  # sockaddr: family, then the MAC

    def fileno(self) -> int:
        return self.fd

    def send(self, frame: bytes) -> int:
        try:
            return os.write(self.fd, frame)
        except OSError:
            return 0  # the interface is down or the frame is malformed: dropped, as on a wire

    def receive(self, buffers: list[memoryview]) -> int | None:
        try:
            return os.readv(self.fd, buffers)
        except BlockingIOError:
            return None
