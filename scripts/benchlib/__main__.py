"""``scripts/bench``: measure every figure, print the table, write the JSON.

Quick by default (about a minute); ``--long`` repeats more and runs longer.  ``--only GROUP`` (again
for more) limits the run to some groups; ``--json PATH`` says where the JSON goes.  The bench mounts
its own lguestfs daemon in a temporary directory and always unmounts it.  A figure that cannot be
measured (a piece missing, a guest that died, a watchdog that fired) is printed as "n/a (reason)".
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from benchlib import figures
from benchlib.daemon import mounted_daemon
from benchlib.figures import Plan, not_measured
from benchlib.report import Figure, environment, progress, table, write_json

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_JSON = REPO_ROOT / "build" / "bench.json"
GUESTS_DIR = Path(__file__).resolve().parent / "guests"  # the bench's own guests

Measure = Callable[[Plan], list[Figure]]


def bench_guest(name: str) -> Path:
    """The ELF of ``benchlib/guests/<name>.c``, linked with the guest runtime on first use."""
    from launcher.guests.build import build_single

    return build_single(GUESTS_DIR / f"{name}.c")


def _boot(plan: Plan) -> list[Figure]:
    from launcher.guests.build import build_guest
    from launcher.main import command as launcher_command

    os_elf = build_guest("os")
    return figures.boot(plan, os_elf, lambda mount, elf: launcher_command(mount, 64, elf))


def _block(plan: Plan) -> list[Figure]:
    from launcher.main import command as launcher_command

    return figures.block(
        plan,
        bench_guest("bench_block"),
        lambda mount, elf, option: launcher_command(mount, 32, elf, options=[option]),
    )


def _linux(plan: Plan) -> list[Figure]:
    from benchlib.linux import linux

    return linux(plan)


# Groups in run order: their name for --only, the figures they give, how they are measured.
GROUPS: list[tuple[str, tuple[str, ...], Measure]] = [
    ("compute", ("guest_compute",), figures.compute),
    ("hypercalls", ("hypercalls",), figures.hypercalls),
    ("stores", ("guest_stores",), figures.stores),
    (
        "notify",
        ("notify_round_trip", "notify_in_handler", "thread_handoff"),
        figures.notify_round_trip,
    ),
    ("break", ("break_latency_median", "break_latency_p99"), figures.break_latency),
    ("irq", ("irq_latency_median", "irq_latency_p99"), figures.interrupt_latency),
    ("signal", ("kill_release_median", "kill_release_p99"), figures.kill_release),
    ("timer", ("timer_error_median", "timer_error_p99"), figures.timer_accuracy),
    ("boot", ("boot",), _boot),
    (
        "scale",
        (
            "scale_1",
            "scale_2",
            "scale_4",
            "scale_8",
            "scale_raw_2",
            "scale_raw_4",
            "scale_raw_8",
            "daemon_memory_per_guest",
        ),
        figures.scale,
    ),
    ("block", ("block_read", "block_write"), _block),
    (
        "linux",
        (
            "linux_boot",
            "linux_shell_loop",
            "linux_fork_exec",
            "linux_ramfs_write",
            "linux_ramfs_read",
            "linux_user_buffer",
            "linux_disk_read",
            "linux_ping",
        ),
        _linux,
    ),
]

# Groups that may take longer than the watchdog's 300 s (1800 s with --long), and how many times
# longer: the linux group boots two real kernels per pair and runs seconds-long workloads in each.
GROUP_SECONDS = {"linux": 4}


class Watchdog(Exception):
    """A group ran past its time: SIGALRM ends even a read the daemon never answers (the daemon
    sees the signal pending and fails the read with EINTR, and the handler raises this)."""


@contextlib.contextmanager
def watchdog(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: FrameType | None) -> None:
        raise Watchdog(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:90]


def run_groups(plan: Plan, chosen: list[str]) -> list[Figure]:
    results: list[Figure] = []
    for name, keys, measure in GROUPS:
        if chosen and name not in chosen:
            continue
        progress(f"measuring {name}")
        try:
            with watchdog(GROUP_SECONDS.get(name, 1) * (1800 if plan.long else 300)):
                measured = {fig.key: fig for fig in measure(plan)}
        except Exception as error:  # any failure is one figure's "n/a (why)", never the run's end
            progress(f"{name}: {type(error).__name__}: {error}")
            measured = {key: not_measured(key, _reason(error)) for key in keys}
        results += [measured.get(key) or not_measured(key, "not measured") for key in keys]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help="more repetitions, longer samples")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the JSON")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        choices=[name for name, _, _ in GROUPS],
        help="measure only this group (repeatable)",
    )
    args = parser.parse_args(argv)
    mode = "long" if args.long else "quick"
    env = environment()
    if env["load_average"] > (env["cores"] or 1) / 2:
        progress(
            f"the machine is busy (load {env['load_average']} on {env['cores']} cores): "
            "latencies and the scale figures will suffer"
        )
    keys = [key for name, keys, _ in GROUPS if not args.only or name in args.only for key in keys]
    try:
        bench_elf = bench_guest("bench_ops")
        with mounted_daemon() as (mountpoint, daemon_pid):
            plan = Plan.make(args.long, mountpoint, daemon_pid, bench_elf)
            results = run_groups(plan, args.only)
    except Exception as error:
        progress(f"cannot measure through the daemon: {type(error).__name__}: {error}")
        results = [not_measured(key, _reason(error)) for key in keys]
    print(table(results, env, mode))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, results, env, mode)
    progress(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
