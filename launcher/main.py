"""lguest-launch: boot a guest through the lguest node, and service its devices (spec 8).

This is where the journey starts.  The launcher is an ordinary program; the hypervisor is on the
other side of a file.  In order:

1. ``layout.prepare_guest``: shared guest memory with the kernel, page tables, zero page and
   command line in it;
2. the devices, in command-line order, then the console (``devices``, ``block``, ``net``,
   ``console``): their descriptors on the device page, their queues above it;
3. open the node and write INITIALIZE ``{0, base, pfnlimit, pgdir, entry}``: now there is a guest;
4. fork the waker (``waker``), which breaks us out when input arrives;
5. read, for ever.  While we sit in ``read()`` the guest runs, on the daemon's emulated CPU.  The
   read returns when:

   * the guest did NOTIFY: one word, an address.  If it is the first page of a virtqueue, that
     queue's device serves it; otherwise it is early-console text: a NUL-terminated string there;
   * the waker (or ``lguest-waker``) broke us out: EAGAIN.  Feed the ready input to the devices,
     then BREAK 0 to release the breaker (without it every read would return EAGAIN at once);
   * the guest died: ENOENT.  The next read gives the reason; print ``lguest: <reason>`` and exit
     1, or 0 when the guest powered itself off ("CRASH: Power down").

A notify read returns one word; a read on a dead guest returns its reason.  We read with room for
a whole reason, so that the one case where death is reported without ENOENT (the guest notified
and died in the same pass, spec 1.3) is seen for what it is instead of being taken for an address.
"""

import argparse
import contextlib
import errno
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from launcher import identity
from launcher.block import Block
from launcher.console import Console, ThreeCtrlC
from launcher.devices import DeviceTable
from launcher.errors import GuestBroke, LaunchError
from launcher.layout import MAX_MEM_MB, MIN_MEM_MB, PreparedGuest, prepare_guest
from launcher.net import Link, Net, UdpLink
from launcher.node import WORD_BYTES, default_device, unpack_word, waker_path, write_break
from launcher.tap import TapLink
from launcher.waker import Waker
from lguestfs.abi import VIRTIO_ID_NET
from lguestfs.node import NODE_NAME

PROGRAM = "lguest-launch"
REASON_MAX = 1023  # 2.6.24 read at most this much of the death reason
POWER_DOWN = "CRASH: Power down"
EXIT_DIED = 1
EXIT_CTRL_C = 2  # three Ctrl-C, as 2.6.24's exit(2)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, not a usage block: ``lguest-launch: <what is wrong> (see --help)``."""
        self.exit(2, f"{PROGRAM}: {message} (see --help)\n")


@dataclass(frozen=True)
class DeviceOption:
    """A device the command line can add: its option, and how to put one in the device table."""

    flag: str
    metavar: str
    help: str
    add: Callable[[DeviceTable, str], object]


def _network(link: Callable[[str, int], Link]) -> Callable[[DeviceTable, str], object]:
    """Add a network device carried by ``link(value, number)``; they are numbered 0, 1, ..."""

    def add(table: DeviceTable, value: str) -> Net:
        number = sum(device.device_type == VIRTIO_ID_NET for device in table.devices)
        return Net(table, link(value, number), number)

    return add


# Every device the command line knows, in --help order.  A new device is one more entry.
DEVICE_OPTIONS = (
    DeviceOption(
        "--block",
        "FILE",
        "a virtio block device backed by FILE (its size, in 512-byte sectors, is the disk's; "
        "writes past its end stop the guest); may be repeated",
        lambda table, value: Block(table, Path(value)),
    ),
    DeviceOption(
        "--net",
        "udp:HOST:PORT[,local=[HOST:]PORT]",
        "a virtio network device whose Ethernet frames travel as UDP datagrams to and from "
        "HOST:PORT (another launcher, a test, a bridge); local= fixes our own port; may be "
        "repeated",
        _network(UdpLink),
    ),
    DeviceOption(
        "--tunnet",
        "IP|bridge:BRIDGE",
        "2.6.24's network device: a new tap interface (lguest0, ...) given the IPv4 address IP, "
        "or added to BRIDGE; needs root and /dev/net/tun",
        _network(lambda value, number: TapLink(value)),
    ),
)


class _AddDevice(argparse.Action):
    """Keep the devices in the order given on the command line: that is the order of the page."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any,
        option_string: str | None = None,
    ) -> None:  # fmt: skip
        namespace.devices = [*namespace.devices, (self.const, value)]


def command(
    mount: os.PathLike[str] | str | None,
    mem_mb: int | str,
    guest: Path | str,
    *args: str,
    options: Sequence[str] = (),
) -> list[str]:
    """argv that runs this program (``python -m launcher``, the same as ``lguest-launch``) on the
    node under ``mount`` (``None``: the default node), for tests, the bench and scripts."""
    device = ["--device", str(Path(mount) / NODE_NAME)] if mount is not None else []
    return [sys.executable, "-m", "launcher", *device, *options, str(mem_mb), str(guest), *args]


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROGRAM,
        description="Boot an i386 lguest guest through the lguest node (a mounted lguestfs, or "
        "/dev/lguest) and run its console, block and network devices.  Guest output goes to "
        "stdout, stdin goes to the guest; when the guest dies the launcher prints "
        "'lguest: <reason>' on stderr and exits 1, or 0 when the guest powered off.",
        epilog="Exit status: 0 when the guest powers off, 1 when it dies or on an error, 2 after "
        "three Ctrl-C within a second (or a bad command line).  From another shell, "
        "'lguest-waker PID' breaks the launcher out to service its input.",
    )
    parser.set_defaults(devices=[])
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="say what the launcher does, on stderr"
    )
    for option in DEVICE_OPTIONS:
        parser.add_argument(
            option.flag, metavar=option.metavar, action=_AddDevice, const=option, help=option.help
        )
    parser.add_argument(
        "--initrd",
        metavar="FILE",
        type=Path,
        help="load FILE at the top of guest memory (below 892 MB in a larger guest, where a "
        "2.6.24 kernel reaches it)",
    )
    parser.add_argument(
        "--device",
        metavar="PATH",
        type=Path,
        help="the lguest node, or an lguestfs mount point (default: 'lguest' in the first "
        "mounted lguestfs, else /dev/lguest)",
    )
    parser.add_argument(
        "mem", metavar="MEM_MB", help=f"guest memory in megabytes ({MIN_MEM_MB}-{MAX_MEM_MB})"
    )
    parser.add_argument(
        "guest",
        metavar="GUEST",
        type=Path,
        help="the guest kernel: an i386 ELF (vmlinux) or bzImage",
    )
    parser.add_argument(
        "args", metavar="GUEST ARGS", nargs=argparse.REMAINDER, help="the guest's command line"
    )
    return parser


def _memory_size(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise LaunchError(f"MEM_MB must be a whole number of megabytes, not {text!r}") from None


def _open_node(device: Path) -> int:
    try:
        return os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        if device == Path("/dev/lguest"):
            raise LaunchError(
                "no lguest node: no lguestfs is mounted (start 'lguestfs MOUNTPOINT') "
                "and /dev/lguest does not exist"
            ) from None
        raise LaunchError(f"{device}: no such lguest node (is lguestfs mounted there?)") from None
    except OSError as error:
        raise LaunchError(f"{device}: cannot open the lguest node: {error.strerror}") from None


def _say(message: str) -> None:
    print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        identity.check()  # at every start: the ``launcher`` package in use is lguestfs's
    except ImportError as error:
        _say(str(error))
        return 1
    options = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        return launch(options)
    except LaunchError as error:
        _say(str(error))
        return 1
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except OSError as error:  # anything the checks above did not foresee: still one line
        _say(f"{error.strerror or error}{f': {error.filename}' if error.filename else ''}")
        return 1


def launch(options: argparse.Namespace) -> int:
    verbose = _say if options.verbose else None
    device = options.device or default_device()
    if device.is_dir():  # the mount point itself: its node is what was meant
        device = device / NODE_NAME
    guest = prepare_guest(_memory_size(options.mem), options.guest, options.args, options.initrd)
    table = DeviceTable(guest, verbose=verbose)
    for option, value in options.devices:
        option.add(table, value)
    console = Console(table)  # always last
    fd = _open_node(device)
    try:
        waker_handle = waker_path(device, os.getpid())  # a stat() of the mount: a node error too
        os.write(fd, guest.initialize_request())
    except OSError as error:
        os.close(fd)
        raise _node_error(device, "INITIALIZE", error) from None
    if verbose:
        base, pfnlimit, pgdir, entry = guest.initialize_args()
        verbose(f"guest: base {base:#x} pfnlimit {pfnlimit:#x} pgdir {pgdir:#x} entry {entry:#x}")
    table.fd = fd
    waker = Waker(waker_handle, fd, table.watched)
    table.watch_listener = waker.watch
    console.raw_terminal()
    try:
        return _run(fd, device, guest, table)
    except ThreeCtrlC:
        _say("three Ctrl-C: stopping the guest")
        return EXIT_CTRL_C
    finally:
        console.restore_terminal()
        with contextlib.suppress(OSError):
            write_break(fd, 0)  # let a waker caught in BREAK go, so that it can leave by itself
        waker.stop()
        with contextlib.suppress(OSError):  # a dead daemon fails even this (ENOTCONN)
            os.close(fd)


def _run(fd: int, device: Path, guest: PreparedGuest, table: DeviceTable) -> int:
    """The main loop: read, and do what the read says (see the module docstring)."""
    while True:
        try:
            data = os.read(fd, REASON_MAX + 1)
        except OSError as error:
            if error.errno == errno.ENOENT:
                return _guest_died(fd)
            if error.errno == errno.EAGAIN:
                if table.tracing:
                    table.verbose("break: servicing input")
                table.service_input()
                _release_breakers(fd, device)
                continue
            raise _node_error(device, "read", error) from None
        if len(data) != WORD_BYTES:
            return _report_death(data)  # died in the same pass as a notify: this is the reason
        address = unpack_word(data)
        if not table.notify(address):
            _early_console(guest, address)


def _node_error(device: Path, request: str, error: OSError) -> LaunchError:
    """What to say when the node refuses a request we had every right to make."""
    if error.errno in (errno.ECONNABORTED, errno.ENOTCONN):  # the FUSE connection is gone
        return LaunchError(f"{device}: the lguestfs daemon has gone away")
    return LaunchError(f"{device}: {request} failed: {error.strerror}")


def _release_breakers(fd: int, device: Path) -> None:
    try:
        write_break(fd, 0)
    except OSError as error:
        if error.errno != errno.ENOENT:  # a dead guest: the next read says why
            raise _node_error(device, "BREAK 0", error) from None


def _guest_died(fd: int) -> int:
    try:
        reason = os.read(fd, REASON_MAX)
    except OSError as error:
        reason = f"(the reason could not be read: {error.strerror})".encode()
    return _report_death(reason)


def _report_death(reason: bytes) -> int:
    text = reason.split(b"\0", 1)[0].decode(errors="replace")
    print(f"lguest: {text}", file=sys.stderr, flush=True)
    return 0 if text == POWER_DOWN else EXIT_DIED


def _early_console(guest: PreparedGuest, address: int) -> None:
    """NOTIFY of anything but a queue: print the NUL-terminated string at ``address``."""
    if address >= guest.limit:
        raise GuestBroke(
            f"Bad NOTIFY {address:#x}: neither a virtqueue nor a string inside guest memory "
            f"(limit {guest.limit:#x})"
        )
    end = guest.memory.find(b"\0", address, guest.limit)
    text = guest.memory[address : end if end >= 0 else guest.limit]
    while text:
        try:
            text = text[os.write(sys.stdout.fileno(), text) :]
        except BrokenPipeError:
            raise LaunchError("standard output was closed: stopping the guest") from None


if __name__ == "__main__":
    sys.exit(main())
