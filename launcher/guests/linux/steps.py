"""The build's voice and its log: one line per stage, a live line during a long step, one error.

Every step of ``launcher.guests.linux`` runs its commands through a ``Steps``: their output goes
to a log file in the cache (never to the terminal), the user sees ``linux: <stage>`` on stderr,
and a step that fails raises ``LinuxBuildError`` whose one line names the step and the log.
During a long command (the kernel compile) a line says how many files are done and for how
long, rewritten in place on a terminal and printed every ``QUIET_INTERVAL`` seconds otherwise.
"""

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

PREFIX = "linux"
LIVE_INTERVAL = 1.0  # seconds between rewrites of the live line on a terminal
QUIET_INTERVAL = 10.0  # seconds between progress lines when stderr is not a terminal
# Lines of kbuild's quiet output that stand for one compiled, assembled or linked file.
WORK_PREFIXES = ("  CC ", "  AS ", "  LD ", "  HOSTCC ", "  AR ")


class LinuxBuildError(Exception):
    """One line: what failed, and where the log is."""


class Steps:
    """Stages and commands of one build, logged to ``log_path``."""

    def __init__(self, log_path: Path, stream: IO[str] | None = None) -> None:
        self.log_path = log_path
        self.stream = stream if stream is not None else sys.stderr
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log_path, "w", encoding="utf-8", errors="replace")  # noqa: SIM115

    def close(self) -> None:
        self.log.close()

    def say(self, message: str) -> None:
        print(f"{PREFIX}: {message}", file=self.stream, flush=True)
        self.log.write(f"=== {message}\n")
        self.log.flush()

    def fail(self, message: str) -> LinuxBuildError:
        """The error to raise: the message, then the log's path."""
        self.log.write(f"=== failed: {message}\n")
        self.log.flush()
        return LinuxBuildError(f"{message} (log: {self.log_path})")

    def run(
        self, what: str, command: Sequence[str], cwd: Path | None = None, live: bool = False,
        stdin: IO[bytes] | None = None,
    ) -> None:  # fmt: skip
        """Run ``command``, its output into the log; raise ``fail(what ...)`` unless it exits 0.

        ``live``: show progress while it runs (files done, seconds).
        """
        self.log.write(f"$ {' '.join(command)}\n")
        self.log.flush()
        try:
            process = subprocess.Popen(
                list(command), cwd=cwd, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            )  # fmt: skip
        except FileNotFoundError:
            raise self.fail(f"{what}: {command[0]} not found (scripts/setup installs it)") from None
        assert process.stdout is not None
        started = shown = time.monotonic()
        done = 0
        live_line = live and self.stream.isatty()
        with process:
            for line in process.stdout:
                self.log.write(line)
                if not live:
                    continue
                done += line.startswith(WORK_PREFIXES)
                now = time.monotonic()
                if now - shown >= (LIVE_INTERVAL if live_line else QUIET_INTERVAL):
                    shown = now
                    text = f"{PREFIX}:   {done} files, {now - started:.0f} s"
                    end = "\r" if live_line else "\n"
                    print(f"{text}\033[K" if live_line else text, end=end, file=self.stream,
                          flush=True)  # fmt: skip
        if live_line:
            print("\r\033[K", end="", file=self.stream, flush=True)
        self.log.flush()
        if process.returncode != 0:
            raise self.fail(f"{what} failed (exit {process.returncode})")
