"""A guest's console as the linux group sees it: a process whose stdin is the keyboard and whose
stdout is the console, for ``lguest-launch`` and ``qemu-system-i386`` alike.

``Console(argv)`` starts the process with pipes on all three streams; ``type`` sends a line;
``wait_for`` blocks until text appears on stdout after what was waited for before, and returns the
host's ``time.perf_counter()`` when the chunk holding it arrived (the clock the linux figures are
made of); ``rest_of_line`` gives what follows, to the end of its line.  ``close`` (the ``with``
block's end) gives the process ``stop_seconds`` to end by itself (0 unless set: a guest told to
power off needs a moment), then kills it.  stderr is collected, for error messages.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Sequence

from launcher.closing import Closing

READ_SIZE = 65536


class ConsoleError(RuntimeError):
    """The process ended, or ``timeout`` passed, before the console showed the text."""


class Console(Closing):
    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.output = b""
        self.errors = b""
        self.seen = 0  # console bytes already waited past
        self.stop_seconds = 0.0
        self.process = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._selector = selectors.DefaultSelector()
        for stream in (self.process.stdout, self.process.stderr):
            os.set_blocking(stream.fileno(), False)
            self._selector.register(stream, selectors.EVENT_READ)

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def wait_for(self, text: bytes, timeout: float) -> float:
        arrived = self._until(text, timeout)
        self.seen = self.output.index(text, self.seen) + len(text)
        return arrived

    def rest_of_line(self, timeout: float) -> bytes:
        start = self.seen
        self._until(b"\n", timeout)
        self.seen = self.output.index(b"\n", start)
        return self.output[start : self.seen]

    def close(self) -> None:
        try:
            self.process.wait(self.stop_seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._selector.close()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def _until(self, text: bytes, timeout: float) -> float:
        """Read until ``text`` is on the console after ``seen``; when its chunk arrived."""
        deadline = time.monotonic() + timeout
        arrived = time.perf_counter()
        while self.output.find(text, self.seen) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._selector.get_map():
                tail = self.output[-400:].decode(errors="replace")
                errors = self.errors[-400:].decode(errors="replace")
                raise ConsoleError(
                    f"{os.path.basename(self.argv[0])} never printed {text!r} "
                    f"(exit {self.process.poll()}); console ends {tail!r}; stderr {errors!r}"
                )
            for key, _ in self._selector.select(remaining):
                stream = key.fileobj
                assert not isinstance(stream, int)
                chunk = os.read(stream.fileno(), READ_SIZE)
                arrived = time.perf_counter()
                if not chunk:
                    self._selector.unregister(stream)
                elif stream is self.process.stdout:
                    self.output += chunk
                else:
                    self.errors += chunk
        return arrived
