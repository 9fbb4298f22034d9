"""The ``linux`` group: real Linux 2.6.24 on lguestfs beside the same kernel on QEMU's TCG.

Every workload is a named shell snippet (``WORKLOADS``) that the guest's shell runs between two
console markers: the runner types ``echo @@"B"N; SNIPPET; echo @@"E"N:$?`` and times, in host
wall time, from the moment ``@@BN`` appears on the console to the moment ``@@EN:`` does (the
quotes keep the echoed command line from matching); a status other than 0 fails the group.

Both guests boot the same source, config (plus a serial console for the PC), initramfs and shell:
on lguestfs the ``vmlinux`` of ``launcher.guests.linux.build_linux`` through ``lguest-launch``
(with a scratch disk for the disk figure and ``launcher.netpeer.NetPeer`` on ``--net=udp:`` for
the ping figure), on QEMU the ``bzImage`` of ``build_pc_kernel`` (``benchlib.qemu``).  A
repetition boots lguestfs's guest and runs every workload, then QEMU's and runs every workload
it can (the disk read and the ping are lguestfs's alone); repetitions alternate like that, so
the drift of a shared machine hits both alike.  A figure is the median over the repetitions,
QEMU's median is its reference and the ratio is lguestfs's time over QEMU's: 1.0 is level, 10 is
ten times slower.  The table's spread column is each side's (max - min) / 2 / median, the noise
of that figure.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchlib.console import Console
from benchlib.figures import Plan, figure
from benchlib.qemu import qemu_console
from benchlib.report import Figure, progress
from launcher.guests.linux import PROMPT
from launcher.main import command
from launcher.netpeer import PEER_IP, NetPeer

QUICK_PAIRS = 3  # lguestfs-then-QEMU repetitions in a quick run (--long: plan.repetitions)
MEM_MB = 128
DISK_MB = 32  # the scratch disk read by "linux_disk_read"; raw bytes, not a file system
BOOT_TIMEOUT = 300.0
WORKLOAD_TIMEOUT = 300.0
LGUEST_STOP_SECONDS = 10.0  # after "exit", the guest's /init powers off and the launcher ends
MiB = 1 << 20
MB = 1_000_000
RAMFS_FILE = "/tmp/bench"  # the initramfs's root is a ramfs
PINGS = 20  # echo requests in one "linux_ping" run, back to back


def repeat(times: int, command: str) -> str:
    """``command`` ``times`` times in klibc's sh; the status is 0 only if every run succeeded."""
    return (
        f"i=0; while [ $i -lt {times} ]; do {command} || break; i=$((i+1)); done; "
        f"[ $i -eq {times} ]"
    )


@dataclasses.dataclass(frozen=True)
class Workload:
    """A shell snippet; its figure is the seconds one run takes (or MB/s, when ``megabytes``)."""

    key: str
    snippet: str
    prepare: str = ""  # run before every timed run, untimed
    megabytes: float = 0.0  # what one run reads, for a MB/s figure
    lguest_only: bool = False


# The same work on both guests, in run order (the ramfs read reads what the write wrote).
WORKLOADS = (
    Workload("linux_shell_loop", repeat(20_000, ":")),
    Workload("linux_fork_exec", repeat(200, "/bin/true")),
    Workload(
        "linux_ramfs_write",
        repeat(4, f"dd if=/dev/zero of={RAMFS_FILE} bs={MiB} count=16 2>/dev/null"),
    ),
    Workload(
        "linux_ramfs_read", repeat(8, f"dd if={RAMFS_FILE} of=/dev/null bs={MiB} 2>/dev/null")
    ),
    Workload(
        "linux_user_buffer", f"dd if=/dev/zero of=/dev/null bs={4 * MiB} count=64 2>/dev/null"
    ),
    Workload(
        "linux_disk_read",
        f"dd if=/dev/vda of=/dev/null bs={MiB} count={DISK_MB} 2>/dev/null",
        prepare="echo 3 > /proc/sys/vm/drop_caches",
        megabytes=DISK_MB * MiB / MB,
        lguest_only=True,
    ),
    Workload("linux_ping", f"ping -q -c {PINGS} -i 0 {PEER_IP} >/dev/null", lguest_only=True),
)


def run_once(console: Console, workload: Workload, number: int) -> float:
    """Seconds the guest took for one run of ``workload``, between its two markers; an error if
    the snippet's exit status was not 0."""
    if workload.prepare:
        console.type(f'{workload.prepare}; echo @@"P"{number}')
        console.wait_for(f"@@P{number}".encode(), WORKLOAD_TIMEOUT)
    console.type(f'echo @@"B"{number}; {workload.snippet}; echo @@"E"{number}:$?')
    begin = console.wait_for(f"@@B{number}".encode(), WORKLOAD_TIMEOUT)
    end = console.wait_for(f"@@E{number}:".encode(), WORKLOAD_TIMEOUT)
    status = console.rest_of_line(WORKLOAD_TIMEOUT)
    if status.strip() != b"0":
        raise RuntimeError(f"{workload.key}: '{workload.snippet}' exited with {status.decode()}")
    return end - begin


def run_all(
    console: Console, start: float, samples: dict[str, list[float]], numbers: Iterator[int]
) -> None:
    """Wait for the prompt (the boot figure, from ``start``), then every workload the guest can
    run; each adds one sample to ``samples[key]``."""
    samples["linux_boot"].append(console.wait_for(PROMPT, BOOT_TIMEOUT) - start)
    for workload in WORKLOADS:
        if workload.lguest_only and workload.key not in samples:
            continue
        seconds = run_once(console, workload, next(numbers))
        samples[workload.key].append(
            workload.megabytes / seconds if workload.megabytes else seconds
        )


def lguest_console(
    plan: Plan, initramfs: Path, vmlinux: Path, disk: Path, peer: NetPeer
) -> Console:
    """``lguest-launch`` of the Linux guest on the bench's mount, as a console."""
    options = [f"--initrd={initramfs}", f"--block={disk}", peer.net_option]
    console = Console(command(plan.mountpoint, MEM_MB, vmlinux, options=options))
    console.stop_seconds = LGUEST_STOP_SECONDS
    return console


def linux(plan: Plan) -> list[Figure]:
    """Boot each guest and run every workload, lguestfs then QEMU, ``QUICK_PAIRS`` times (with
    ``--long``, ``plan.repetitions`` times)."""
    from launcher.guests.linux import build_linux, build_pc_kernel

    build, bzimage = build_linux(), build_pc_kernel()
    numbers = itertools.count()
    keys = ["linux_boot", *(workload.key for workload in WORKLOADS)]
    lguest: dict[str, list[float]] = {key: [] for key in keys}
    qemu: dict[str, list[float]] = {
        key: [] for key in keys if key not in {w.key for w in WORKLOADS if w.lguest_only}
    }
    with tempfile.TemporaryDirectory(prefix="lguestfs-bench-linux-") as workdir, NetPeer() as peer:
        scratch = Path(workdir) / "scratch.img"
        scratch.write_bytes(os.urandom(DISK_MB * MiB))
        pairs = plan.repetitions if plan.long else QUICK_PAIRS
        for pair in range(pairs):
            progress(f"linux: pair {pair + 1} of {pairs} (load {os.getloadavg()[0]:.2f})")
            start = time.perf_counter()
            with lguest_console(plan, build.initramfs, build.vmlinux, scratch, peer) as console:
                run_all(console, start, lguest, numbers)
                console.type("exit")
            start = time.perf_counter()
            with qemu_console(bzimage, build.initramfs, MEM_MB) as console:
                run_all(console, start, qemu, numbers)
    return [figure(key, lguest[key], reference_samples=qemu.get(key, [])) for key in keys]
