"""Running ``lguest-launch`` against a mounted node, for tests: the launcher as a real process.

Two ways, both ending with the launcher gone (killed if need be) however the test ends:

* ``run_launcher(mount, 64, guest, "arg", stdin=b"...", timeout=30)`` runs it to the end and returns
  a ``LaunchResult`` (exit status, stdout, stderr).  On timeout the launcher is killed and the
  result says so (``timed_out``), with whatever it printed.
* ``with Launcher(mount, 64, guest) as launcher:`` for a conversation: ``launcher.send(b"...")``
  writes to its stdin, ``launcher.expect(b"text", timeout=10)`` waits until stdout contains it,
  ``launcher.wait(timeout)`` collects the exit status.

``Launcher(..., program=PATH)`` runs another launcher that takes 2.6.24's command line (the
2.6.24 launcher itself: ``tests.support.original``) in a session of its own, so its waker and
I/O children can be found by its process group.  ``mount`` is the mount point directory (the
node is ``mount / "lguest"``).  Guest early-console and
console output go to stdout; the launcher's own lines, like ``lguest: CRASH: ...`` when the guest
dies, go to stderr, as in 2.6.24.  ``options`` are launcher options: ``["--block=disk.img"]``.

``elf32(...)`` writes small hand-made i386 ELF files, for the loader's bad-input cases, and
``Ring`` plays the guest's half of a virtqueue, for device tests that need no guest.
"""

import contextlib
import os
import selectors
import signal
import struct
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from launcher.closing import Closing
from launcher.main import command as launcher_command
from launcher.virtqueue import Direction, GuestSpace, Virtqueue

DEFAULT_TIMEOUT = 30.0
MountLike = os.PathLike[str] | str  # the mount fixture's Mount, or a mount point path


@dataclass
class LaunchResult:
    returncode: int | None  # None when it had to be killed on timeout
    stdout: bytes
    stderr: bytes
    timed_out: bool

    @property
    def output(self) -> str:
        """stdout as text, for assertions."""
        return self.stdout.decode(errors="replace")

    @property
    def errors(self) -> str:
        return self.stderr.decode(errors="replace")


def run_launcher(
    mount: MountLike | None,
    mem_mb: int | str,
    guest: Path | str,
    *args: str,
    options: Sequence[str] = (),
    stdin: bytes = b"",
    timeout: float = DEFAULT_TIMEOUT,
) -> LaunchResult:
    """Run the launcher to its end (or ``timeout``), feeding it ``stdin``."""
    with Launcher(mount, mem_mb, guest, *args, options=options) as launcher:
        launcher.send(stdin)
        launcher.close_stdin()
        launcher.wait(timeout)
        return launcher.result()


class Launcher(Closing):
    """A running launcher with pipes on stdin, stdout and stderr; killed on exit if still alive."""

    def __init__(
        self,
        mount: MountLike | None,
        mem_mb: int | str,
        guest: Path | str,
        *args: str,
        options: Sequence[str] = (),
        prefix: Sequence[str] = (),
        program: Path | None = None,
    ) -> None:
        """``prefix``: a command the launcher runs under (``["unshare", "--net", "--"]``);
        ``program``: another launcher with 2.6.24's command line, run in a session of its own."""
        self.stdout = b""
        self.stderr = b""
        self.timed_out = False
        if program is None:
            command = launcher_command(mount, mem_mb, guest, *args, options=options)
        else:
            command = [str(program), *options, str(mem_mb), str(guest), *args]
        self.process = subprocess.Popen(
            [*prefix, *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=program is not None,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._selector = selectors.DefaultSelector()
        for stream in (self.process.stdout, self.process.stderr):
            os.set_blocking(stream.fileno(), False)
            self._selector.register(stream, selectors.EVENT_READ)

    @property
    def pid(self) -> int:
        """The launcher's process id: its guest is ``MOUNT/guests/<pid>``."""
        return self.process.pid

    def send(self, data: bytes) -> None:
        """Write to the launcher's stdin (what a user would type)."""
        assert self.process.stdin is not None
        if data:
            self.process.stdin.write(data)
            self.process.stdin.flush()

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        if not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()

    def expect(self, text: bytes, timeout: float = DEFAULT_TIMEOUT, start: int = 0) -> bytes:
        """Wait until stdout contains ``text`` (at or after offset ``start``); returns stdout so
        far.  AssertionError on timeout or if the launcher exits first, with what it printed."""
        deadline = time.monotonic() + timeout
        while self.stdout.find(text, start) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._pump(remaining):
                raise AssertionError(
                    f"launcher never printed {text!r}; exit {self.process.poll()}\n"
                    f"stdout: {self.stdout!r}\nstderr: {self.stderr!r}"
                )
        return self.stdout

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int | None:
        """Collect output until the launcher exits; kill it at ``timeout``.  Returns the status
        (None if it had to be killed)."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.timed_out = True
                self.kill()
                break
            self._pump(min(remaining, 0.05))
        # Drain what is left, without trusting EOF: a stray child could hold the pipes open.
        drain_until = time.monotonic() + 1.0
        while time.monotonic() < drain_until and self._pump(0.05):
            pass
        return None if self.timed_out else self.process.returncode

    def result(self) -> LaunchResult:
        status = None if self.timed_out else self.process.returncode
        return LaunchResult(status, self.stdout, self.stderr, self.timed_out)

    def signal(self, signum: int = signal.SIGINT) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def _pump(self, timeout: float) -> bool:
        """Read what is available within ``timeout``; False once both pipes are at EOF."""
        if not self._selector.get_map():
            return False
        for key, _ in self._selector.select(timeout):
            stream = key.fileobj
            assert not isinstance(stream, int)
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                self._selector.unregister(stream)
            elif stream is self.process.stdout:
                self.stdout += chunk
            else:
                self.stderr += chunk
        return bool(self._selector.get_map())

    def close(self) -> None:
        """Kill the launcher if it still runs, and close its pipes (the ``with`` block's end)."""
        self.kill()
        self.close_stdin()
        self._selector.close()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


# --- Hand-made ELF files ------------------------------------------------------------------------

ELF_HEADER = struct.Struct("<16sHHIIIIIHHHHHH")  # 52 bytes
PROGRAM_HEADER = struct.Struct("<IIIIIIII")  # 32 bytes
PT_LOAD = 1
ET_EXEC = 2
EM_386 = 3


def elf32(
    segments: Sequence[tuple[int, bytes, int]],
    entry: int,
    *,
    elf_class: int = 1,
    machine: int = EM_386,
    elf_type: int = ET_EXEC,
    vaddr_offset: int = 0xC0000000,
) -> bytes:
    """An ELF file with one PT_LOAD per ``(paddr, data, memsz)``, linked like a vmlinux
    (``p_vaddr = paddr + vaddr_offset``).  ``elf_class`` 2 makes it claim to be 64-bit."""
    ident = b"\x7fELF" + bytes([elf_class, 1, 1]) + bytes(9)
    phoff = ELF_HEADER.size
    data_offset = phoff + PROGRAM_HEADER.size * len(segments)
    headers = b""
    body = b""
    for paddr, data, memsz in segments:
        headers += PROGRAM_HEADER.pack(
            PT_LOAD, data_offset + len(body), paddr + vaddr_offset, paddr, len(data), memsz, 7, 4096
        )
        body += data
    header = ELF_HEADER.pack(
        ident, elf_type, machine, 1, entry, phoff, 0, 0, ELF_HEADER.size,
        PROGRAM_HEADER.size, len(segments), 0, 0, 0,
    )  # fmt: skip
    return header + headers + body


# --- The guest's half of a virtqueue, for device tests without a guest ---------------------------

NEXT, WRITE = 1, 2  # descriptor flags


@dataclass
class Space:
    """Guest memory for ring tests that need no guest: a bytearray and its limit."""

    memory: bytearray
    limit: int


class Ring:
    """The guest's half of a ring, as a 2.6.24 driver fills it: descriptors, avail, reading used."""

    def __init__(self, space: GuestSpace, name: str, num: int, pfn: int) -> None:
        self.space = space
        self.num = num
        self.queue = Virtqueue(space, name, pfn, num, irq=0, direction=Direction.EITHER)
        self.free = 0

    @classmethod
    def of(cls, queue: Virtqueue) -> "Ring":
        """The guest's half of an existing queue (one the launcher's devices made)."""
        ring = cls(queue.space, queue.name, queue.num, queue.pfn)
        ring.queue = queue
        return ring

    def desc(self, index: int, address: int, length: int, flags: int = 0, next_: int = 0) -> None:
        struct.pack_into(
            "<QIHH", self.space.memory, self.queue.desc + 16 * index, address, length, flags, next_
        )

    def offer(self, head: int) -> None:
        idx = struct.unpack_from("<H", self.space.memory, self.queue.avail + 2)[0]
        struct.pack_into("<H", self.space.memory, self.queue.avail + 4 + 2 * (idx % self.num), head)
        struct.pack_into("<H", self.space.memory, self.queue.avail + 2, (idx + 1) & 0xFFFF)

    def chain(self, *buffers: tuple[int, int, bool]) -> int:
        """Descriptors for (address, length, writable) buffers, linked and offered; their head."""
        head = self.free
        for i, (address, length, writable) in enumerate(buffers):
            last = i == len(buffers) - 1
            flags = (WRITE if writable else 0) | (0 if last else NEXT)
            self.desc(self.free, address, length, flags, self.free + 1)
            self.free += 1
        self.offer(head)
        return head

    def used(self) -> tuple[int, list[tuple[int, int]]]:
        memory = self.space.memory
        idx = struct.unpack_from("<H", memory, self.queue.used + 2)[0]
        elems = [struct.unpack_from("<II", memory, self.queue.used + 4 + 8 * i) for i in range(idx)]
        return idx, elems
