"""Each figure of issue 6, measured through the whole path beside its reference.

A measurement alternates its reference and its subject repetition by repetition, so that the
drift of a shared VM hits both alike; the figure is the median of the repetitions.  Every function
here returns its figures; one that cannot run (a piece missing, a guest that died) raises, and
``__main__`` turns that into "n/a (reason)" lines for exactly the figures it would have given.
"""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import barefuse, rawcpu
from benchlib import handoff as handoffs
from benchlib.rawcpu import RawLoop
from benchlib.report import Figure, Goal, median, percentile
from benchlib.session import BENCH_DONE, BENCH_IRQ_SEEN, BENCH_TICK, BenchGuest, Op
from launcher.node import pack_words
from lguestfs.abi import LHREQ_BREAK
from lguestfs.node import waker_path

COMPUTE_INSTRUCTIONS_PER_ITERATION = 4  # add, xor, dec, jnz (bench_ops.c)
BENCH_IRQ = 1  # the device irq the interrupt figure raises (irq 0 is the timer)
MiB = 1 << 20


@dataclasses.dataclass(frozen=True)
class Spec:
    label: str
    unit: str
    goal: Goal | None = None
    reference_label: str = ""
    note: str = ""


# Every figure a run prints, in table order: what it is called, its unit and its goal.
SPECS: dict[str, Spec] = {
    "guest_compute": Spec(
        "guest compute",
        "instr/s",
        Goal("ratio", at_least=0.95),
        "raw Unicorn",
        "add/xor/dec/jnz loop through the daemon vs the same bytes in a bare Uc",
    ),
    "guest_stores": Spec("guest stores", "stores/s", None, "raw Unicorn"),
    "hypercalls": Spec(
        "hypercalls in the guest",
        "calls/s",
        Goal("value", at_least=250_000),
        "Uc + empty hook",
        "FLUSH_ASYNC in a loop (the CPU's C hook does it); reference: the same loop with an empty "
        "Python INTR hook",
    ),
    "notify_round_trip": Spec(
        "notify round trip",
        "µs",
        Goal("ratio", at_most=2.0),
        "bare pyfuse3 read",
        "guest NOTIFY -> read returns -> read again -> guest resumes, per iteration",
    ),
    "notify_in_handler": Spec(
        "NOTIFY run inside the read handler",
        "µs",
        None,
        "bare pyfuse3 read",
        "the floor of lguestfs's fast path: a bare Uc runs the guest loop to its next hypercall "
        "on trio's thread, inside the bare daemon's read",
    ),
    "thread_handoff": Spec(
        "trio -> thread -> trio hand-off",
        "µs",
        note="context for the notify figure: the two thread wake-ups a read that outlasts the "
        "fast path pays, alone, no FUSE, no guest",
    ),
    "break_latency_median": Spec(
        "break latency median",
        "µs",
        None,
        "raw emu_stop",
        "waker BREAK 1 -> owner's read returns EAGAIN, guest spinning without exits; reference: "
        "emu_stop from another thread -> emu_start returns, bare Uc, same loop and retries",
    ),
    "break_latency_p99": Spec(
        "break latency p99", "µs", Goal("value", at_most=1000.0), "raw emu_stop"
    ),
    "kill_release_median": Spec(
        "SIGKILL release median",
        "ms",
        note="a launcher blocked in a read of a spinning guest gets SIGKILL -> it has exited "
        "(the daemon sees the signal in /proc, stops the guest, answers the read)",
    ),
    "kill_release_p99": Spec("SIGKILL release p99", "ms", Goal("value", at_most=15.0)),
    "irq_latency_median": Spec(
        "interrupt latency median",
        "µs",
        note="LHREQ_IRQ write -> handler entered -> its NOTIFY returns the owner's read",
    ),
    "irq_latency_p99": Spec("interrupt latency p99", "µs"),
    "timer_error_median": Spec("timer error median", "µs"),
    "timer_error_p99": Spec("timer error p99", "µs", Goal("value", at_most=1000.0)),
    "boot": Spec(
        "boot to first console byte",
        "s",
        Goal("value", at_most=0.5),
        note="lguest-launch of the default guest OS, from process start",
    ),
    "scale_1": Spec("scale: 1 guest", "instr/s"),
    "scale_2": Spec("scale: 2 guests aggregate", "instr/s", Goal("ratio", at_least=1.8), "1 guest"),
    "scale_4": Spec("scale: 4 guests aggregate", "instr/s", Goal("ratio", at_least=1.8), "1 guest"),
    "scale_8": Spec("scale: 8 guests aggregate", "instr/s", Goal("ratio", at_least=1.8), "1 guest"),
    **{
        f"scale_raw_{threads}": Spec(
            f"scale reference: {threads} bare Uc threads",
            "instr/s",
            None,
            "1 bare Uc thread",
            "the same compute loop in bare Unicorn engines, one per thread of one process, no "
            "daemon: the ceiling this machine sets for the guests' ratio",
        )
        for threads in (2, 4, 8)
    },
    "daemon_memory_per_guest": Spec(
        "daemon memory per extra guest",
        "MiB",
        Goal("value", at_most=5.0),
        note="daemon RssAnon, 8 guests vs 1 (guest RAM is the launchers' memfd: RssShmem)",
    ),
    "block_read": Spec("virtio-block sequential read", "MB/s"),
    "block_write": Spec("virtio-block sequential write", "MB/s"),
    "linux_boot": Spec(
        "Linux: boot to the shell prompt",
        "s",
        None,
        "QEMU TCG",
        "Linux 2.6.24, 128 MB, klibc initramfs, from the process's start until 'lguest# ': "
        "lguest-launch (with a disk) vs qemu-system-i386 -accel tcg (serial console bzImage)",
    ),
    "linux_shell_loop": Spec(
        "Linux: 20,000 shell loop iterations", "s", None, "QEMU TCG", "klibc sh: while, [, $(( ))"
    ),
    "linux_fork_exec": Spec("Linux: 200 x fork+exec of /bin/true", "s", None, "QEMU TCG"),
    "linux_ramfs_write": Spec(
        "Linux: 4 x 16 MiB written to ramfs",
        "s",
        None,
        "QEMU TCG",
        "dd from /dev/zero to a file in the initramfs's root, 1 MiB blocks",
    ),
    "linux_ramfs_read": Spec(
        "Linux: 8 x 16 MiB read from ramfs",
        "s",
        None,
        "QEMU TCG",
        "dd of that file to /dev/null, 1 MiB blocks",
    ),
    "linux_user_buffer": Spec(
        "Linux: 64 x 4 MiB into a user buffer",
        "s",
        None,
        "QEMU TCG",
        "dd if=/dev/zero of=/dev/null bs=4M: the kernel clears a user buffer",
    ),
    "linux_disk_read": Spec(
        "Linux: sequential disk read",
        "MB/s",
        note="lguestfs only: dd of a 32 MiB virtio disk, 1 MiB blocks, page cache dropped first",
    ),
    "linux_ping": Spec(
        "Linux: 20 pings through the guest's network stack",
        "s",
        note="lguestfs only: ping -c 20 -i 0 to launcher.netpeer's peer on --net=udp:",
    ),
}


def figure(
    key: str,
    samples: list[float],
    value: float | None = None,
    reference: float | None = None,
    note: str = "",
    reference_samples: list[float] | None = None,
) -> Figure:
    """The figure ``key`` of SPECS: the median of ``samples`` unless ``value`` says otherwise;
    the reference is the median of ``reference_samples`` when they are given."""
    spec = SPECS[key]
    if reference_samples:
        reference = median(reference_samples)
    return Figure(
        key,
        spec.label,
        spec.unit,
        median(samples) if value is None else value,
        reference,
        spec.reference_label,
        spec.goal,
        samples,
        note=note or spec.note,
        reference_samples=reference_samples or [],
    )


def not_measured(key: str, reason: str) -> Figure:
    spec = SPECS[key]
    return Figure(key, spec.label, spec.unit, goal=spec.goal, unavailable=reason, note=spec.note)


@dataclasses.dataclass
class Plan:
    """What a run measures and how long: quick by default, more repetitions with ``--long``."""

    long: bool
    mountpoint: Path
    daemon_pid: int
    bench_elf: Path
    repetitions: int = 5
    seconds_per_sample: float = 0.3  # for the rate figures
    latency_samples: int = 300
    scale_seconds: float = 1.5
    kill_samples: int = 30  # launchers started, blocked in a read and killed

    @classmethod
    def make(cls, long: bool, mountpoint: Path, daemon_pid: int, bench_elf: Path) -> Plan:
        if long:
            return cls(long, mountpoint, daemon_pid, bench_elf, 15, 1.0, 3000, 4.0, 200)
        return cls(long, mountpoint, daemon_pid, bench_elf)


def _calibrated(run: Callable[[int], float], seconds: float) -> int:
    """Iterations that ``run(iterations) -> seconds`` takes about ``seconds`` over."""
    probe = 10_000
    run(probe)  # translate the loop once
    while (took := run(probe)) < 0.02:
        probe *= 4
    return max(1000, int(probe * seconds / took))


def _rate_against_raw(
    plan: Plan, op: Op, loop: str, per_iteration: int, *, hook: bool = False
) -> tuple[list[float], list[float]]:
    """Items per second of one bench_ops loop: (through the daemon, raw Unicorn), per repetition."""
    raw = RawLoop(plan.bench_elf, loop, hypercalls="empty" if hook else "none")
    raw_count = _calibrated(raw.seconds, plan.seconds_per_sample)
    through, reference = [], []
    with BenchGuest(plan.mountpoint, plan.bench_elf) as guest:
        count = _calibrated(lambda n: guest.run(op, n), plan.seconds_per_sample)
        for _ in range(plan.repetitions):
            reference.append(per_iteration * raw_count / raw.seconds(raw_count))
            through.append(per_iteration * count / guest.run(op, count))
    return through, reference


def compute(plan: Plan) -> list[Figure]:
    through, raw = _rate_against_raw(
        plan, Op.COMPUTE, "compute", COMPUTE_INSTRUCTIONS_PER_ITERATION
    )
    return [figure("guest_compute", through, reference=median(raw))]


def stores(plan: Plan) -> list[Figure]:
    through, raw = _rate_against_raw(plan, Op.STORE, "store", 1)
    return [figure("guest_stores", through, reference=median(raw))]


def hypercalls(plan: Plan) -> list[Figure]:
    through, raw = _rate_against_raw(plan, Op.HYPERCALL, "hypercall", 1, hook=True)
    return [figure("hypercalls", through, reference=median(raw))]


def notify_round_trip(plan: Plan) -> list[Figure]:
    iterations = 20_000 if plan.long else 3_000
    through, bare, in_handler = [], [], []
    with (
        barefuse.mounted() as node,
        barefuse.mounted(guest=plan.bench_elf) as guest_node,
        BenchGuest(plan.mountpoint, plan.bench_elf) as guest,
    ):
        for _ in range(plan.repetitions):
            bare.append(barefuse.read_round_trip(node, iterations) * 1e6)
            in_handler.append(barefuse.read_round_trip(guest_node, iterations) * 1e6)
            guest.command(Op.NOTIFY, iterations)
            start = time.perf_counter()
            for _ in range(iterations):
                if (word := guest.read()) != BENCH_TICK:
                    raise RuntimeError(f"notify loop read {word:#x}")
            through.append((time.perf_counter() - start) / iterations * 1e6)
            guest.wait_for(BENCH_DONE)
    handoff = [handoffs.round_trip_seconds(iterations) * 1e6 for _ in range(plan.repetitions)]
    return [
        figure("notify_round_trip", through, reference=median(bare)),
        figure("notify_in_handler", in_handler, reference=median(bare)),
        figure("thread_handoff", handoff),
    ]


def break_latency(plan: Plan) -> list[Figure]:
    """Waker BREAK 1 written -> the owner's read returns EAGAIN; the guest spins without exits."""
    samples: list[float] = []
    failure: list[BaseException] = []
    with BenchGuest(plan.mountpoint, plan.bench_elf) as guest:
        sent_at: list[float] = []
        opened = threading.Event()

        def waker() -> None:
            # The waker opens a descriptor of its own, as wakers do: on the owner's descriptor
            # its BREAK would queue behind the owner's read (the f_pos lock, ``lguestfs.fs``).
            try:
                fd = os.open(waker_path(plan.mountpoint, os.getpid()), os.O_RDWR)
            except BaseException as error:
                failure.append(error)
                return
            finally:
                opened.set()
            try:
                for _ in range(plan.latency_samples):
                    time.sleep(0.002)  # let the owner get back into its read
                    sent_at.append(time.perf_counter())
                    os.write(fd, pack_words(LHREQ_BREAK, 1))  # returns at the BREAK 0
            except BaseException as error:
                failure.append(error)
            finally:
                os.close(fd)

        thread = threading.Thread(target=waker, name="bench-waker")
        thread.start()
        opened.wait()
        guest.command(Op.SPIN)
        try:
            while len(samples) < plan.latency_samples and not failure:
                try:
                    word = guest.read()
                except BlockingIOError:  # EAGAIN: the break arrived
                    samples.append((time.perf_counter() - sent_at[-1]) * 1e6)
                    guest.release_breakers()
                    continue
                raise RuntimeError(f"spinning guest notified {word:#x}")
        finally:
            thread.join(timeout=10)
        if failure:
            raise failure[0]
        guest.set_op(Op.IDLE)
        guest.wait_for(BENCH_DONE)
    floor = rawcpu.stop_latencies(plan.bench_elf, plan.latency_samples)
    median_figure, p99_figure = _latency_figures("break_latency", samples)
    median_figure.reference = median(floor)
    p99_figure.reference = percentile(floor, 0.99)
    return [median_figure, p99_figure]


def _latency_figures(key: str, samples: list[float]) -> list[Figure]:
    return [
        figure(f"{key}_median", samples),
        figure(f"{key}_p99", samples, value=percentile(samples, 0.99)),
    ]


def kill_release(plan: Plan) -> list[Figure]:
    """SIGKILL to a launcher blocked in a read of a spinning guest -> the launcher has exited.

    Each launcher is a process of its own (``benchlib.killworker``): the bench guest, left the
    SPIN command, runs without a single exit, so the read is held by the daemon until the kill.
    """
    argv = [sys.executable, "-m", "benchlib.killworker", str(plan.mountpoint), str(plan.bench_elf)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    samples: list[float] = []
    for _ in range(plan.kill_samples):
        with subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
        ) as launcher:
            try:
                _expect(launcher, "reading")
                assert launcher.stdout is not None
                if select.select([launcher.stdout], [], [], 0.02)[0]:  # the read must be held
                    said = launcher.stdout.read()
                    raise RuntimeError(f"the spinning guest's read ended: {said!r}")
                pidfd = os.pidfd_open(launcher.pid)
                try:
                    start = time.perf_counter()
                    os.kill(launcher.pid, signal.SIGKILL)
                    select.select([pidfd], [], [])  # readable once the process has exited
                    samples.append((time.perf_counter() - start) * 1e3)
                finally:
                    os.close(pidfd)
            finally:
                if launcher.poll() is None:
                    launcher.kill()
            if launcher.wait() != -signal.SIGKILL:
                raise RuntimeError(f"the launcher exited by itself ({launcher.returncode})")
    return _latency_figures("kill_release", samples)


def interrupt_latency(plan: Plan) -> list[Figure]:
    """LHREQ_IRQ written by the owner -> its next read returns the handler's NOTIFY."""
    samples: list[float] = []
    with BenchGuest(plan.mountpoint, plan.bench_elf) as guest:
        guest.command(Op.IRQ, arg=BENCH_IRQ)
        guest.raise_irq(BENCH_IRQ)  # the guest halts at once: an irq must be on its way
        guest.wait_for(BENCH_IRQ_SEEN)
        for _ in range(plan.latency_samples):
            start = time.perf_counter()
            guest.raise_irq(BENCH_IRQ)
            guest.wait_for(BENCH_IRQ_SEEN)
            samples.append((time.perf_counter() - start) * 1e6)
        guest.set_op(Op.IDLE)  # back from the handler, the guest sees it and leaves its loop
        guest.wait_for(BENCH_DONE)
    return _latency_figures("irq_latency", samples)


def timer_accuracy(plan: Plan) -> list[Figure]:
    """SET_CLOCKEVENT(ns) -> the timer irq's delivery, against the time asked for."""
    requested_ns = (500_000, 1_000_000, 2_000_000)
    host_view: list[float] = []
    launcher_view: list[float] = []
    with BenchGuest(plan.mountpoint, plan.bench_elf) as guest:
        for i in range(plan.latency_samples):
            ns = requested_ns[i % len(requested_ns)]
            guest.command(Op.TIMER, ns)
            asked_real = time.time_ns()
            start = time.perf_counter()
            guest.wait_for(BENCH_DONE)
            launcher_view.append(((time.perf_counter() - start) * 1e9 - ns) / 1e3)
            _, _, _, sec, nsec = guest.result()
            delivered_real = sec * 1_000_000_000 + nsec
            host_view.append((delivered_real - asked_real - ns) / 1e3)
    # The Host stamps lguest_data.time when it delivers: the truest "actual delivery" when it is
    # there; if it never moved (a Host that does not write it) the launcher's view bounds it.
    stamped = all(-1e6 < error < 1e6 for error in host_view)
    errors = host_view if stamped else launcher_view
    magnitudes = [abs(error) for error in errors]
    how = "the Host's delivery stamp" if stamped else "the launcher's read (an upper bound)"
    note = f"SET_CLOCKEVENT 0.5/1/2 ms then HALT; |delivery - asked| from {how}"
    return [
        figure("timer_error_median", errors, value=median(magnitudes), note=note),
        figure("timer_error_p99", errors, value=percentile(magnitudes, 0.99)),
    ]


def rss_anon_bytes(pid: int) -> int:
    """The daemon's anonymous resident memory: what it allocates itself, guest RAM excluded
    (guest RAM is the launchers' memfd, counted as RssShmem)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no RssAnon in /proc/{pid}/status")


def scale(plan: Plan) -> list[Figure]:
    """1, 2, 4, 8 compute guests at once, each in a launcher process of its own."""
    chunk = _calibrated(RawLoop(plan.bench_elf, "compute").seconds, 0.05)
    repetitions = max(1, plan.repetitions // 2 + 1)
    aggregate: dict[int, list[float]] = {}
    raw: dict[int, list[float]] = {}
    cores: dict[int, list[float]] = {}
    rss: dict[int, int] = {}
    for _ in range(repetitions):  # interleaved, so that the VM's drift hits every count alike
        for guests in (1, 2, 4, 8):
            rate, busy, rss[guests] = _run_scale(plan, guests, chunk)
            aggregate.setdefault(guests, []).append(rate)
            cores.setdefault(guests, []).append(busy)
            iterations = rawcpu.threads_iteration_rate(
                plan.bench_elf, guests, chunk, plan.scale_seconds
            )
            raw.setdefault(guests, []).append(iterations * COMPUTE_INSTRUCTIONS_PER_ITERATION)

    def busy_note(guests: int) -> str:
        # What the daemon itself got of the machine: when other work shares the two cores, the
        # wall-clock ratio says less about the daemon than this does.
        return f"the daemon kept {median(cores[guests]):.2f} cores busy"

    note = f"compute guests, each in its own launcher, busy together {plan.scale_seconds:g} s; "
    single = median(aggregate[1])
    figures = [figure("scale_1", aggregate[1], note=note + busy_note(1))]
    figures += [
        figure(f"scale_{guests}", aggregate[guests], reference=single, note=busy_note(guests))
        for guests in (2, 4, 8)
    ]
    figures += [
        figure(f"scale_raw_{threads}", raw[threads], reference=median(raw[1]))
        for threads in (2, 4, 8)
    ]
    figures.append(figure("daemon_memory_per_guest", [(rss[8] - rss[1]) / 7 / MiB]))
    return figures


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_scale(plan: Plan, guests: int, chunk: int) -> tuple[float, float, int]:
    """Aggregate instructions/s of ``guests`` busy at once, the cores the daemon kept busy
    meanwhile, and its RssAnon with them all alive."""
    argv = [
        sys.executable,
        "-m",
        "benchlib.scaleworker",
        str(plan.mountpoint),
        str(plan.bench_elf),
        str(chunk),
        str(plan.scale_seconds),
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    workers = [
        subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(guests)
    ]
    try:
        for worker in workers:
            _expect(worker, "ready")
        used, start = cpu_seconds(plan.daemon_pid), time.perf_counter()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        rates = [float(_expect(worker, "rate")) for worker in workers]
        busy = (cpu_seconds(plan.daemon_pid) - used) / (time.perf_counter() - start)
        return sum(rates), busy, rss_anon_bytes(plan.daemon_pid)
    finally:
        for worker in workers:
            if worker.stdin is not None:
                worker.stdin.close()  # the worker's cue to close its guest and exit
        for worker in workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()


def _expect(worker: subprocess.Popen[str], word: str) -> str:
    assert worker.stdout is not None
    line = worker.stdout.readline().split()
    if not line or line[0] != word:
        raise RuntimeError(f"bench worker said {line!r} instead of {word!r}")
    return line[1] if len(line) > 1 else ""


def boot(
    plan: Plan, os_elf: Path, launcher_argv: Callable[[Path, Path], list[str]]
) -> list[Figure]:
    """Launcher start -> the first byte it prints for the default guest OS."""
    samples = []
    for _ in range(plan.repetitions):
        start = time.perf_counter()
        launcher = subprocess.Popen(
            launcher_argv(plan.mountpoint, os_elf),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert launcher.stdout is not None
            first = os.read(launcher.stdout.fileno(), 1)
            took = time.perf_counter() - start
            if not first:
                assert launcher.stderr is not None
                raise RuntimeError(
                    "the launcher printed nothing: " + launcher.stderr.read().decode()[-200:]
                )
            samples.append(took)
        finally:
            launcher.kill()
            launcher.communicate()
    return [figure("boot", samples)]


def block(
    plan: Plan, elf: Path, launcher_argv: Callable[[Path, Path, str], list[str]]
) -> list[Figure]:
    """Sequential virtio-block MB/s: bench_block.c reads then writes a whole disk file, through
    the real launcher; the bench times the lines it prints around each pass."""
    size = (64 if plan.long else 16) * MiB
    reads: list[float] = []
    writes: list[float] = []
    with tempfile.TemporaryDirectory(prefix="lguestfs-bench-block-") as workdir:
        disk = Path(workdir) / "disk.img"
        disk.write_bytes(os.urandom(size))
        for _ in range(max(3, plan.repetitions // 2)):
            marks = _timed_lines(launcher_argv(plan.mountpoint, elf, f"--block={disk}"))
            try:
                reads.append(size / (marks["read done"] - marks["read start"]) / 1e6)
                writes.append(size / (marks["write done"] - marks["write start"]) / 1e6)
            except KeyError as missing:
                raise RuntimeError(f"bench_block never said {missing}") from None
    note = f"{size // MiB} MiB disk file, 64 KiB requests, lguest-launch --block"
    return [figure("block_read", reads, note=note), figure("block_write", writes)]


def _timed_lines(argv: list[str]) -> dict[str, float]:
    """Run a launcher to its end; when each ``bench_block: <what>`` line arrived."""
    marks: dict[str, float] = {}
    launcher = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert launcher.stdout is not None
        for line in launcher.stdout:
            text = line.decode(errors="replace").strip()
            if text.startswith("bench_block: "):
                marks[" ".join(text.split()[1:3])] = time.perf_counter()
        assert launcher.stderr is not None
        said = launcher.stderr.read().decode(errors="replace").strip()
        if launcher.wait(timeout=60) != 0:
            raise RuntimeError(f"the block launcher failed: {said[-200:]}")
        return marks
    finally:
        if launcher.poll() is None:
            launcher.kill()
        launcher.communicate()
