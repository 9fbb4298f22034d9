"""Launcher-like client processes for tests, in both word sizes, driven one request at a time.

A test must talk to the node the way a launcher does: from another process, with ``open``,
``read`` and ``write``.  ``lguest_client.c`` (built here with ``gcc -m32`` for 4-byte words, or
natively for 8-byte words) and its twin ``lguest_client.py`` read one command per line and answer
one line each (the command language is at the top of the C file).  :class:`Client` drives one::

    with Client.start("c32", builds) as launcher:
        fd = launcher.open(mount.node)
        assert launcher.request(f"write {fd} 2 1").errno_name == "EINVAL"
        launcher.send(f"read {fd} 8")                 # blocks in the daemon...
        launcher.no_answer(0.2)                       # ...and stays blocked
        os.kill(launcher.pid, signal.SIGUSR1)
        assert launcher.answer().errno_name == "EINTR"

``load_guest(launcher, "notify")`` gives a client the memory of a test guest (``tests/guests``)
laid out by ``launcher.layout`` and INITIALIZEs it; the client then owns that guest.
"""

import errno
import mmap
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from launcher.closing import Closing

CLIENTS_DIR = Path(__file__).resolve().parent
C_SOURCE = CLIENTS_DIR / "lguest_client.c"
PY_CLIENT = CLIENTS_DIR / "lguest_client.py"
ANSWER_TIMEOUT = 10.0
WORD_BYTES = {"c32": 4, "c64": 8, "py64": 8}
KINDS = ("c32", "py64")  # one of each word size: what most tests run with


def build_c_client(kind: str, directory: Path) -> Path:
    """Compile the C client for ``kind`` ("c32" or "c64") into ``directory``."""
    executable = directory / f"lguest_client_{kind}"
    if not executable.exists():
        bits = ["-m32"] if kind == "c32" else []
        subprocess.run(
            ["gcc", *bits, "-O2", "-Wall", "-Werror", "-o", str(executable), str(C_SOURCE)],
            check=True,
        )
    return executable


@dataclass
class Answer:
    """One answer line: ``ok VALUE...`` or ``err ERRNO``."""

    ok: bool
    values: list[str]

    @property
    def errno(self) -> int:
        assert not self.ok, f"expected an error, got ok {self.values}"
        return int(self.values[0])

    @property
    def errno_name(self) -> str:
        return errno.errorcode[self.errno] if not self.ok else f"ok {' '.join(self.values)}"

    @property
    def number(self) -> int:
        assert self.ok, f"expected ok, got {errno.errorcode.get(int(self.values[0]))}"
        return int(self.values[0], 0)

    @property
    def data(self) -> bytes:
        """The bytes a ``read`` returned."""
        assert self.ok, f"expected ok, got {errno.errorcode.get(int(self.values[0]))}"
        return bytes.fromhex(self.values[1]) if len(self.values) > 1 else b""


class Client(Closing):
    """One client process; killed on exit from the ``with`` block whatever happened."""

    def __init__(self, argv: list[str], word_bytes: int, pass_fds: tuple[int, ...] = ()) -> None:
        self.word_bytes = word_bytes
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=pass_fds,
            bufsize=0,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._stdin = self.process.stdin
        self._stdout = self.process.stdout
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._stdout, selectors.EVENT_READ)
        self._pending = b""
        pid, tid = self.request("pid").values
        self.pid, self.tid = int(pid), int(tid)

    @classmethod
    def start(cls, kind: str, builds: Path, pass_fds: tuple[int, ...] = ()) -> "Client":
        """A client of ``kind`` ("c32", "c64" or "py64"); C clients are compiled into ``builds``."""
        if kind == "py64":
            argv = [sys.executable, str(PY_CLIENT)]
        else:
            argv = [str(build_c_client(kind, builds))]
        return cls(argv, WORD_BYTES[kind], pass_fds)

    def send(self, line: str) -> None:
        """Send a command without waiting for its answer (it may block in the daemon)."""
        self._stdin.write(line.encode() + b"\n")

    def answer(self, timeout: float = ANSWER_TIMEOUT) -> Answer:
        """The next answer line; TimeoutError if none comes in time."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._selector.select(remaining):
                raise TimeoutError(f"client {self.pid}: no answer within {timeout} s")
            chunk = os.read(self._stdout.fileno(), 65536)
            if not chunk:
                raise EOFError(f"client {self.pid} exited ({self.process.wait()})")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        status, *values = line.decode().split()
        return Answer(status == "ok", values)

    def no_answer(self, seconds: float) -> None:
        """Assert that the last command is still blocked after ``seconds``."""
        try:
            answer = self.answer(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected the request to block, it answered {answer}")

    def request(self, line: str, timeout: float = ANSWER_TIMEOUT) -> Answer:
        self.send(line)
        return self.answer(timeout)

    def open(self, path: os.PathLike[str] | str) -> int:
        return self.request(f"open {os.fspath(path)}").number

    def write(self, fd: int, *words: int) -> Answer:
        return self.request(f"write {fd} {' '.join(str(word) for word in words)}")

    def read(self, fd: int, size: int) -> Answer:
        return self.request(f"read {fd} {size}")

    def kill(self, signum: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signum)

    def close(self) -> None:
        self.kill()
        self.process.wait()
        self._selector.close()
        self._stdin.close()
        self._stdout.close()


@dataclass
class GuestImage:
    """A test guest laid out in a memfd that a client can map: what INITIALIZE needs."""

    fd: int
    pages: int
    pfnlimit: int
    pgdir: int
    entry: int

    def close(self) -> None:
        os.close(self.fd)


def guest_image(name: str, mem_mb: int = 4) -> GuestImage:
    """Build ``tests/guests/<name>.c`` and lay it out as the launcher would (spec 8)."""
    from launcher.layout import prepare_guest
    from tests.support.guests import test_guest

    with prepare_guest(mem_mb, test_guest(name), []) as prepared:
        size = len(prepared.memory)
        fd = os.memfd_create(f"lguest-test-{name}")
        os.ftruncate(fd, size)
        with mmap.mmap(fd, size, mmap.MAP_SHARED) as copy:
            copy[:] = prepared.memory[:]
        return GuestImage(
            fd, size // mmap.PAGESIZE, prepared.pfnlimit, prepared.pgdir, prepared.entry
        )


def load_guest(client: Client, fd: int, image: GuestImage) -> None:
    """Have ``client`` map ``image`` (inherited as ``image.fd``) and INITIALIZE ``fd`` with it."""
    base = client.request(f"mapfd {image.fd} {image.pages}").number
    answer = client.write(fd, 0, base, image.pfnlimit, image.pgdir, image.entry)
    assert answer.number == 4 * client.word_bytes, answer


def open_guest(client: Client, node: os.PathLike[str] | str, image: GuestImage) -> int:
    """Have ``client`` open ``node`` and load ``image`` on it: the client's descriptor, an owner."""
    fd = client.open(node)
    load_guest(client, fd, image)
    return fd
