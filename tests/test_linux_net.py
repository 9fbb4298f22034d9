"""The real Linux 2.6.24 guest on the network, through a real mount and real launchers.

The guest's ``/init`` runs ``netup eth0`` (``launcher/guests/linux/tools``): eth0 gets the
kernel command line's ``ip=`` (default 10.0.2.15/24), and ``ping`` is the guest's own.  Three
ways to reach it: ``--net=udp:`` to ``NetPeer`` (``launcher.netpeer``, a host at 10.0.2.2
that answers ARP and echo requests and pings back), two launchers whose ``--net=udp:`` point at
each other, and ``--tunnet`` to the host's own IP stack.  The tap test runs its launcher in a
network namespace of its own (``unshare --net``): the tap device, its address and its route
exist only there and vanish with the launcher; nothing touches the machine's network.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from launcher.guests.linux import LinuxBuild
from launcher.netpeer import PEER_IP, NetPeer, free_udp_ports
from tests.support.launch import Launcher
from tests.support.linux import MEM_MB, PROMPT, linux_options
from tests.support.mount import REPO_ROOT, Mount

GUEST_IP = "10.0.2.15"  # netup's default
PING_SUMMARY = rb"(\d+) packets transmitted, (\d+) received, (\d+)% packet loss"


def guest_ping(launcher: Launcher, address: str, count: int = 3) -> bytes:
    """Run the guest's ping; its output, which must report every reply."""
    before = len(launcher.stdout)
    launcher.send(f"ping -c {count} -i 0.2 {address}\n".encode())
    launcher.expect(f"{address} ping statistics".encode(), timeout=60)
    launcher.expect(b"rtt min/avg/max", timeout=10)
    output = launcher.stdout[before:]
    summary = re.search(PING_SUMMARY, output)
    assert summary and summary.groups() == (b"%d" % count, b"%d" % count, b"0"), output
    assert output.count(f"bytes from {address}: icmp_seq=".encode()) == count, output
    return output


def power_off(*launchers: Launcher) -> None:
    for launcher in launchers:
        launcher.send(b"poweroff\n")
    assert [launcher.wait(30) for launcher in launchers] == [0] * len(launchers)


def test_linux_guest_and_a_udp_peer_ping_each_other(mount: Mount, linux_build: LinuxBuild) -> None:
    with NetPeer() as peer:
        options = [*linux_options(linux_build), peer.net_option]
        with Launcher(mount, MEM_MB, linux_build.vmlinux, options=options) as launcher:
            launcher.expect(PROMPT, timeout=60)
            assert f"netup: eth0 {GUEST_IP} netmask 255.255.255.0 up".encode() in launcher.stdout
            guest_ping(launcher, PEER_IP)
            assert peer.echo_requests == 3
            assert all(peer.ping(GUEST_IP, seq) is not None for seq in (1, 2, 3))
            power_off(launcher)


def test_netup_takes_ip_from_the_command_line_and_refuses_what_is_not_there(
    mount: Mount, linux_build: LinuxBuild
) -> None:
    with NetPeer() as peer:
        options = [*linux_options(linux_build), peer.net_option]
        args = ("ip=10.0.2.77::10.0.2.2:255.255.255.0",)
        with Launcher(mount, MEM_MB, linux_build.vmlinux, *args, options=options) as launcher:
            launcher.expect(PROMPT, timeout=60)
            assert (
                b"netup: eth0 10.0.2.77 netmask 255.255.255.0 gateway 10.0.2.2 up"
                in launcher.stdout
            )
            assert peer.ping("10.0.2.77", 1) is not None
            launcher.send(b"netup eth9 10.0.3.1/24; echo no_device=$?\n")
            launcher.expect(b"no_device=1")
            assert b"netup: eth9: setting the address: no such device" in launcher.stdout
            launcher.send(b"netup eth0 10.0.2.300; echo bad_address=$?\n")
            launcher.expect(b"bad_address=1")
            assert b"usage: netup [IFACE [ADDRESS[/PREFIX] [GATEWAY]]]" in launcher.stdout
            power_off(launcher)


def test_two_linux_guests_ping_each_other_over_udp(mount: Mount, linux_build: LinuxBuild) -> None:
    ports = free_udp_ports(2)  # one per launcher
    a_options = [
        *linux_options(linux_build),
        f"--net=udp:127.0.0.1:{ports[1]},local=127.0.0.1:{ports[0]}",
    ]
    b_options = [
        *linux_options(linux_build),
        f"--net=udp:127.0.0.1:{ports[0]},local=127.0.0.1:{ports[1]}",
    ]
    with (
        Launcher(mount, MEM_MB, linux_build.vmlinux, "ip=10.0.2.15", options=a_options) as a,
        Launcher(mount, MEM_MB, linux_build.vmlinux, "ip=10.0.2.16", options=b_options) as b,
    ):
        a.expect(PROMPT, timeout=60)
        b.expect(PROMPT, timeout=60)
        guest_ping(a, "10.0.2.16")
        guest_ping(b, "10.0.2.15")
        power_off(a, b)


# The tap's namespace: no IPv6 there, so the host sends nothing on the new interface by itself.
# (A frame that reaches a 2.6.24 guest between the receive-queue kick of virtnet_open and its
# napi_enable is answered by an interrupt that switches receive interrupts off for good: the
# guest never receives again.  2.6.25 fixed the driver; a quiet link avoids the window.)
NAMESPACE_SETUP = 'echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null; exec "$@"'
TAP_IP = "10.0.2.2"


def test_tunnet_connects_a_linux_guest_to_the_host(mount: Mount, linux_build: LinuxBuild) -> None:
    if not os.path.exists("/dev/net/tun") or os.geteuid() != 0:
        pytest.skip("--tunnet needs root and /dev/net/tun")
    if not (shutil.which("unshare") and shutil.which("nsenter")):
        pytest.skip("the tap test runs in a network namespace: it needs unshare and nsenter")
    in_namespace = ["unshare", "--net", "--", "sh", "-c", NAMESPACE_SETUP, "sh"]
    options = [*linux_options(linux_build), f"--tunnet={TAP_IP}"]
    with Launcher(
        mount, MEM_MB, linux_build.vmlinux, options=options, prefix=in_namespace
    ) as launcher:
        launcher.expect(PROMPT, timeout=60)
        guest_ping(launcher, TAP_IP)
        namespace = f"--net=/proc/{launcher.pid}/ns/net"
        pinger = [sys.executable, "-m", "launcher.netpeer", "ping", GUEST_IP]
        host_ping = subprocess.run(
            ["nsenter", namespace, "--", *pinger],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert host_ping.returncode == 0, host_ping.stdout + host_ping.stderr
        power_off(launcher)
