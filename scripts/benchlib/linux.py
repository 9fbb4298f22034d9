"""The ``linux`` group: real Linux 2.6.24 through the whole path, timed at its shell prompt.

Every workload is a named shell snippet (``WORKLOADS``) that the guest's shell runs between two
console markers: the runner types ``echo @@"B"N; SNIPPET; echo @@"E"N`` and times, in host wall
time, from the moment ``@@BN`` appears on the console to the moment ``@@EN`` does (the quotes
keep the echoed command line from matching).  Each workload runs several times; its figure is
the median.  The workloads know nothing of lguestfs: a second runner (QEMU, say) that can type
into a shell and watch its console reuses them as they are, through ``measure``.

The guest: the kernel, initramfs and disk of ``launcher.guests.linux`` (built once and cached),
booted by ``lguest-launch`` with a scratch disk for the read figure and ``NetPeer``
(``tests.support.netpeer``) on ``--net=udp:`` for the ping figure.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from benchlib.figures import Plan, figure
from benchlib.report import Figure, progress
from tests.support.launch import Launcher
from tests.support.linux import PROMPT, linux_options
from tests.support.netpeer import PEER_IP, NetPeer

MEM_MB = 128
DISK_MB = 32  # the scratch disk read by "disk_read"; raw bytes, not a file system
BOOT_TIMEOUT = 120.0
WORKLOAD_TIMEOUT = 300.0
MB = 1_000_000


class Shell(Protocol):
    """A guest shell a workload can run in: type a line, watch the console."""

    def type(self, line: str) -> None: ...

    def wait_for(self, text: bytes, timeout: float) -> float:
        """Block until ``text`` appears on the console (after what was waited for before); the
        host's ``time.perf_counter()`` when it arrived."""
        ...

    def rest_of_line(self, timeout: float) -> bytes:
        """What follows the text last waited for, up to the end of its line."""
        ...


@dataclasses.dataclass(frozen=True)
class Workload:
    """A shell snippet, run with ``{n}`` replaced by ``count``; its figure is ``count`` divided
    by the seconds it took (``per_second``) or the seconds per item in µs."""

    key: str
    snippet: str
    count: int
    per_second: bool
    scale: float = 1.0  # what one item is worth in the figure's unit (MB for disk reads)
    prepare: str = ""  # run before every timed run, untimed


# The same work on any runner: the shell is klibc's sh; /dev/vda is the scratch disk; the network
# peer answers at PEER_IP.
WORKLOADS = (
    Workload(
        "linux_fork_exec",
        "i=0; while [ $i -lt {n} ]; do /bin/true; i=$((i+1)); done",
        200,
        per_second=True,
    ),
    Workload("linux_shell_loop", "i=0; while [ $i -lt {n} ]; do i=$((i+1)); done", 5000, True),
    Workload(
        "linux_disk_read",
        "dd if=/dev/vda of=/dev/null bs=1048576 count={n}",
        DISK_MB,
        per_second=True,
        scale=1048576 / MB,
        prepare="echo 3 > /proc/sys/vm/drop_caches",
    ),
    Workload("linux_ping", f"ping -q -i 0 -c {{n}} {PEER_IP}", 50, per_second=False),
)


def run_once(shell: Shell, workload: Workload, number: int) -> float:
    """Seconds the guest took for one run of ``workload``, between its two markers; an error if
    the snippet's exit status was not 0."""
    if workload.prepare:
        shell.type(f'{workload.prepare}; echo @@"P"{number}')
        shell.wait_for(f"@@P{number}".encode(), WORKLOAD_TIMEOUT)
    snippet = workload.snippet.format(n=workload.count)
    shell.type(f'echo @@"B"{number}; {snippet}; echo @@"E"{number}:$?')
    begin = shell.wait_for(f"@@B{number}".encode(), WORKLOAD_TIMEOUT)
    end = shell.wait_for(f"@@E{number}:".encode(), WORKLOAD_TIMEOUT)
    status = shell.rest_of_line(WORKLOAD_TIMEOUT)
    if status.strip() != b"0":
        raise RuntimeError(f"{workload.key}: '{snippet}' exited with status {status.decode()}")
    return end - begin


def measure(
    shell: Shell, workload: Workload, repetitions: int, numbers: Iterator[int]
) -> list[float]:
    """``repetitions`` samples of ``workload`` in its figure's unit."""
    samples = []
    for _ in range(repetitions):
        seconds = run_once(shell, workload, next(numbers))
        items = workload.count * workload.scale
        samples.append(items / seconds if workload.per_second else seconds / items * 1e6)
    return samples


class LguestShell:
    """The guest's shell through a running ``lguest-launch`` (``tests.support.launch``)."""

    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher
        self.seen = 0  # console bytes already waited past

    def type(self, line: str) -> None:
        self.launcher.send(line.encode() + b"\n")

    def wait_for(self, text: bytes, timeout: float) -> float:
        self.launcher.expect(text, timeout, start=self.seen)
        arrived = time.perf_counter()
        self.seen = self.launcher.stdout.index(text, self.seen) + len(text)
        return arrived

    def rest_of_line(self, timeout: float) -> bytes:
        start = self.seen
        self.launcher.expect(b"\n", timeout, start=start)
        self.seen = self.launcher.stdout.index(b"\n", start)
        return self.launcher.stdout[start : self.seen]


@contextmanager
def booted(plan: Plan, scratch: Path, peer: NetPeer) -> Iterator[tuple[LguestShell, float]]:
    """A Linux guest at its prompt, and the seconds from the launcher's start to the prompt."""
    from launcher.guests.linux import build_linux

    build = build_linux()
    options = [*linux_options(build, scratch), peer.net_option]
    start = time.perf_counter()
    with Launcher(plan.mountpoint, MEM_MB, build.vmlinux, options=options) as launcher:
        shell = LguestShell(launcher)
        took = shell.wait_for(PROMPT, BOOT_TIMEOUT) - start
        try:
            yield shell, took
        finally:
            shell.type("poweroff")
            launcher.wait(10)


def linux(plan: Plan) -> list[Figure]:
    """Launch to the prompt, then every workload, alternating them repetition by repetition."""
    numbers = itertools.count()
    boots: list[float] = []
    samples: dict[str, list[float]] = {workload.key: [] for workload in WORKLOADS}
    with tempfile.TemporaryDirectory(prefix="lguestfs-bench-linux-") as workdir, NetPeer() as peer:
        scratch = Path(workdir) / "scratch.img"
        scratch.write_bytes(os.urandom(DISK_MB << 20))
        for repetition in range(plan.repetitions):
            progress(f"linux: repetition {repetition + 1} of {plan.repetitions}")
            with booted(plan, scratch, peer) as (shell, took):
                boots.append(took)
                for workload in WORKLOADS:
                    samples[workload.key] += measure(shell, workload, 1, numbers)
    return [figure("linux_boot", boots)] + [
        figure(workload.key, samples[workload.key]) for workload in WORKLOADS
    ]
