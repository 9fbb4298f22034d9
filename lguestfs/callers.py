"""Who is on the other end of a handle: the process and thread that opened it.

A character device learns its caller from ``current`` on every call.  A FUSE daemon does not:
pyfuse3 hands ``open()`` a context whose ``pid`` is the opener's *thread* id, and ``read()`` and
``write()`` no context at all.  So lguestfs binds everything it needs to know about a caller to the
open (see the essay in ``lguestfs.fs``), and this module gathers it there, once:

* the **word size** of the opening process: an ``unsigned long`` is 4 bytes for a 32-bit program
  and 8 for a 64-bit one, read from the ELF class of ``/proc/<pid>/exe`` -- never guessed from the
  length of a write;
* a **pin** on the process: a pidfd and a ``/proc/<pid>`` directory descriptor, both tied to the
  kernel's ``struct pid`` rather than to the number, so that a reused pid can never be mistaken
  for a launcher that has gone (``lguestfs.sharing`` reads the launcher's memory map through it);
* the opener thread's ``/proc/<pid>/task/<tid>/status``, kept open, so that a request held
  for that thread can see a signal arrive: pyfuse3 drops FUSE_INTERRUPT, and a thread blocked in a
  FUSE read that gets any signal, SIGKILL included, sleeps in state D until the daemon answers.

Path: launcher -> node (``fs``) -> **caller** -> handle (``protocol``) -> guest.
"""

import enum
import logging
import os
import select
import struct

log = logging.getLogger(__name__)

NATIVE_WORD_BYTES = struct.calcsize("L")
ELF_MAGIC = b"\x7fELF"
ELF_CLASS_WORD_BYTES = {1: 4, 2: 8}  # e_ident[EI_CLASS]: ELFCLASS32, ELFCLASS64


class ThreadState(enum.Enum):
    """What a handle's opener thread is doing, seen in ``/proc`` while we hold its request."""

    WAITING = "waiting"  # asleep in the FUSE request, no signal: keep holding it
    SIGNALLED = "signalled"  # a signal arrived: the request must end with EINTR
    GONE = "gone"  # the thread no longer exists


class CallerGoneError(Exception):
    """The opener vanished before it could be identified (it raced us to exit)."""


def word_bytes_of(proc_dir: int) -> int:
    """The ``unsigned long`` size of the process whose ``/proc/<pid>`` is ``proc_dir``."""
    try:
        exe = os.open("exe", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_dir)
    except OSError as error:
        log.warning("cannot read the opener's executable (%s): assuming native words", error)
        return NATIVE_WORD_BYTES
    try:
        ident = os.pread(exe, 5, 0)
    finally:
        os.close(exe)
    if len(ident) < 5 or not ident.startswith(ELF_MAGIC) or ident[4] not in ELF_CLASS_WORD_BYTES:
        log.warning("the opener's executable is not an ELF file: assuming native words")
        return NATIVE_WORD_BYTES
    return ELF_CLASS_WORD_BYTES[ident[4]]


def _field(status: str, name: str) -> str:
    for line in status.splitlines():
        if line.startswith(name):
            return line[len(name) :].strip()
    return ""


def _mask(status: str, name: str) -> int:
    return int(_field(status, name) or "0", 16)


class Caller:
    """The thread that opened a handle, and its process, pinned for as long as the handle lives.

    ``tid``: the opener thread; ``pid``: its process (tgid), the number ``guests/<pid>`` shows;
    ``word_bytes``: 4 or 8.  ``proc_dir`` is an ``O_PATH`` descriptor of ``/proc/<pid>``: paths
    opened relative to it reach this process or fail with ESRCH, never a newcomer with its pid.
    """

    def __init__(self, tid: int) -> None:
        # The opener is blocked in our open() while this runs, so neither number can be reused yet.
        self.tid = tid
        try:
            with open(f"/proc/{tid}/status", encoding="ascii", errors="replace") as status:
                self.pid = int(_field(status.read(), "Tgid:"))
        except (OSError, ValueError) as error:
            raise CallerGoneError(f"thread {tid}: {error}") from error
        self._fds: list[int] = []
        try:
            self.pidfd = self._keep(os.pidfd_open(self.pid))
            self.proc_dir = self._keep(os.open(f"/proc/{self.pid}", os.O_PATH | os.O_DIRECTORY))
            task = f"task/{tid}/"
            flags = os.O_RDONLY | os.O_CLOEXEC
            self._status = self._keep(os.open(task + "status", flags, dir_fd=self.proc_dir))
        except OSError as error:
            self.close()
            raise CallerGoneError(f"thread {tid} of process {self.pid}: {error}") from error
        self.word_bytes = word_bytes_of(self.proc_dir)

    def _keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def __repr__(self) -> str:
        return f"pid {self.pid}/{self.tid} {self.word_bytes * 8}-bit"

    def thread_state(self) -> ThreadState:
        """Look at the opener thread now (about 10 us): has a signal come for it, is it still ours?

        A signal shows either as state D (the FUSE kernel has moved the request from its
        interruptible sleep to the uninterruptible one, which only our answer ends) or as a pending,
        unblocked signal that has not yet woken it.
        """
        try:
            status = os.pread(self._status, 4096, 0).decode("ascii", "replace")
        except OSError:  # ESRCH: the thread has gone (it cannot be another with its tid)
            return ThreadState.GONE
        state = _field(status, "State:")[:1]
        pending = _mask(status, "SigPnd:") | _mask(status, "ShdPnd:")
        blocked = _mask(status, "SigBlk:")
        if state == "D" or pending & ~blocked:
            return ThreadState.SIGNALLED
        if state in ("Z", "X", ""):
            return ThreadState.GONE
        return ThreadState.WAITING

    def process_alive(self) -> bool:
        """False once the pinned process has exited, whatever process now holds its number."""
        readable, _, _ = select.select([self.pidfd], [], [], 0)
        return not readable

    def close(self) -> None:
        """Drop the pins; idempotent."""
        while self._fds:
            os.close(self._fds.pop())
