"""Who makes a request, and what a signal sent to it means for the request we hold.

A character device learns its caller from ``current`` on every call; this module gives the FUSE
daemon the same: the thread that made *this* request (read, write, open...), its process, and,
while we hold the request, whether a signal has come that 2.6.24 would have acted on.  It is
shaped by what the FUSE kernel on this machine does (measured with small test daemons, kernel
6.18, libfuse 3.14, pyfuse3 3.5):

Some facts about FUSE callers and signals
-----------------------------------------
1. **Every request names its caller.**  The kernel writes the calling thread's id, uid and gid
   into the header of every FUSE request (``fuse_in_header.pid``: a *thread* id), and libfuse
   gives it to every handler as ``fuse_req_ctx(req)``.  pyfuse3 3.5.0 passes it to ``open()``
   and a few others, not to ``read()`` or ``write()``, so the project builds pyfuse3 with a small
   patch (``patches/pyfuse3/``) adding ``pyfuse3.current_request()``;
   :func:`require_request_callers` refuses to mount without it.  So the reader of a descriptor
   is whoever reads it: a forked child, another thread, a process the descriptor was passed to.
2. **A held caller cannot go away.**  Once the daemon has read a request, the calling thread waits
   for the answer and nothing but the answer (or an aborted connection) ends the wait: even
   SIGKILL leaves it in state D.  So while we hold a request, its thread id, and its process
   id, name that very thread and process; ``/proc/<tid>`` opened meanwhile cannot be a newcomer.
3. **What a signal does to a thread blocked in a FUSE request** (``request_wait_answer`` in
   ``fs/fuse/dev.c``): the thread sleeps interruptibly (state S) until a signal it neither blocks
   nor ignores arrives, or a ptrace attach traps it (ignored signals are dropped at sending,
   unless the thread is traced; blocked ones stay pending without waking it).  Then the kernel
   queues FUSE_INTERRUPT, which pyfuse3 drops, and the thread sleeps *killably* (state D) until
   we answer, and after a fatal signal uninterruptibly.  Nothing in the kernel ends the request
   for us, and **state D only says that something woke the thread once**: after SIGSTOP and
   SIGCONT, or a strace attach, it stays in D with nothing pending.
4. **What 2.6.24 did, and what FUSE lets us do.**  ``lguest_user.c`` ran the guest until
   ``signal_pending(current)`` and returned -ERESTARTSYS: the signal was taken on the way out and
   the read re-issued by the kernel, unless the signal ran a handler (EINTR; re-issued too with
   SA_RESTART) or ended the process.  A FUSE daemon cannot answer -ERESTARTSYS (the kernel
   refuses errors beyond -511), so the daemon decides what the pending signal will do
   (:func:`interrupting_signal`, from ``/proc/<tid>/status``): a signal that will run a handler
   (``SigCgt``) or end the process (SIGKILL, or a default action that terminates) ends the request
   with EINTR; a stop, SIGCONT, a ptrace trap, an ignored (``SigIgn``) or blocked (``SigBlk``)
   signal leaves it in flight, and the thread stops or is traced when the request returns, as
   2.6.24's restart looked from outside.  ``/proc`` cannot show SA_RESTART, so a handled signal
   is always EINTR.
5. **Who gets a process-directed signal.**  ``kill(pid)`` puts it in the process's shared queue
   (``ShdPnd``, seen by every thread), and one thread that does not block it takes it.  If another
   thread takes it first it leaves the queue and the request stays in flight, as a restart would.
   A fatal signal to a process puts SIGKILL in every thread's own queue (``SigPnd``).
6. **Nothing kept open at rest.**  An identity costs no descriptor: a process is pinned by its
   pid *and* its start time (``/proc/<pid>/stat`` field 22), so a reused pid is never taken for
   a launcher that has gone.  A held request opens its thread's ``status`` once, at its first
   look, and closes it when it ends; most reads end before the first look (``POLL_INTERVAL``).

Path: launcher -> node (``fs``) -> **caller** -> handle (``protocol``) -> guest.
"""

import contextlib
import enum
import errno
import logging
import os
import signal
import struct
from collections.abc import Iterator

import pyfuse3

log = logging.getLogger(__name__)

NATIVE_WORD_BYTES = struct.calcsize("L")
ELF_MAGIC = b"\x7fELF"
ELF_CLASS_WORD_BYTES = {1: 4, 2: 8}  # e_ident[EI_CLASS]: ELFCLASS32, ELFCLASS64
STAT_START_TIME_FIELD = 22  # /proc/<pid>/stat: starttime, in clock ticks since boot
DESCRIPTOR_EXHAUSTION = (errno.EMFILE, errno.ENFILE)

# Signals whose default action leaves the process running (signal(7)): stop, or ignore.
DEFAULT_STOPS = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})
DEFAULT_IGNORED = frozenset({signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH})


class CallerGoneError(Exception):
    """The caller vanished before it could be identified (it raced us to exit)."""


class DaemonOutOfFilesError(Exception):
    """The daemon has no descriptor left to look at a caller; ``errno`` is EMFILE or ENFILE."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.errno = code


def require_request_callers() -> None:
    """Raise RuntimeError (one line) unless pyfuse3 tells every handler its request's caller."""
    if not hasattr(pyfuse3, "current_request"):
        raise RuntimeError(
            f"pyfuse3 {getattr(pyfuse3, '__version__', '?')} lacks current_request(): "
            "run scripts/setup (it builds pyfuse3 with patches/pyfuse3)"
        )


def request_tid() -> int:
    """The thread id of the caller of the request being handled (valid in any handler)."""
    tid: int = pyfuse3.current_request().pid
    return tid


def _field(status: str, name: str) -> str:
    for line in status.splitlines():
        if line.startswith(name):
            return line[len(name) :].strip()
    return ""


def _mask(status: str, name: str) -> int:
    return int(_field(status, name) or "0", 16)


def _signals(mask: int) -> Iterator[int]:
    """Signal numbers in a ``/proc`` mask (bit ``n - 1`` is signal ``n``), lowest first."""
    number = 1
    while mask:
        if mask & 1:
            yield number
        mask >>= 1
        number += 1


def _bit(signum: int) -> int:
    return 1 << (signum - 1)


def interrupting_signal(status: str) -> int | None:
    """The pending signal that will run a handler or end the process, from ``/proc/<tid>/status``.

    None when nothing pending will: no signal, only blocked ones, ignored ones (pending only
    under ptrace), stop signals and SIGCONT with their default action.  SIGKILL first.
    """
    pending = (_mask(status, "SigPnd:") | _mask(status, "ShdPnd:")) & ~_mask(status, "SigBlk:")
    if pending & _bit(signal.SIGKILL):
        return signal.SIGKILL
    caught, ignored = _mask(status, "SigCgt:"), _mask(status, "SigIgn:")
    for signum in _signals(pending):
        if caught & _bit(signum):
            return signum  # a handler will run
        if ignored & _bit(signum) or signum in DEFAULT_STOPS or signum in DEFAULT_IGNORED:
            continue
        return signum  # the default action ends the process
    return None


def signal_name(signum: int) -> str:
    with contextlib.suppress(ValueError):
        return signal.Signals(signum).name
    return f"signal {signum}"


class ThreadState(enum.Enum):
    """What a held request's thread is doing, seen in ``/proc``."""

    WAITING = "waiting"  # no signal that 2.6.24 would act on: keep holding the request
    SIGNALLED = "signalled"  # a signal will run a handler or end the process: answer EINTR
    GONE = "gone"  # the thread no longer exists (the connection was aborted under it)


class HeldThread:
    """The thread blocked in one held request, looked at every ``POLL_INTERVAL`` in ``/proc``.

    Its ``status`` is opened at the first look (fact 2: it is the requester's) and kept until
    :meth:`close`.  ``why`` says what the last look saw, for the log.
    """

    def __init__(self, tid: int) -> None:
        self.tid = tid
        self._status: int | None = None
        self.why = "no signal"

    def __repr__(self) -> str:
        return f"thread {self.tid}"

    def state(self) -> ThreadState:
        """Look now (about 10 us); raise DaemonOutOfFilesError if the daemon cannot even look."""
        try:
            if self._status is None:
                self._status = os.open(f"/proc/{self.tid}/status", os.O_RDONLY | os.O_CLOEXEC)
            text = os.pread(self._status, 4096, 0).decode("ascii", "replace")
        except OSError as error:
            if error.errno in DESCRIPTOR_EXHAUSTION:
                raise DaemonOutOfFilesError(error.errno, f"{self}: {error}") from error
            self.why = f"gone ({error.strerror})"
            return ThreadState.GONE
        if _field(text, "State:")[:1] in ("Z", "X", ""):
            self.why = "gone (exited)"
            return ThreadState.GONE
        signum = interrupting_signal(text)
        if signum is not None:
            self.why = signal_name(signum)
            return ThreadState.SIGNALLED
        tracer = _field(text, "TracerPid:")
        self.why = f"traced by {tracer}" if tracer not in ("", "0") else "no signal"
        return ThreadState.WAITING

    def close(self) -> None:
        if self._status is not None:
            os.close(self._status)
            self._status = None


def word_bytes_of(pid: int) -> int:
    """The ``unsigned long`` size of process ``pid``: the ELF class of its executable."""
    try:
        exe = os.open(f"/proc/{pid}/exe", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        if error.errno in DESCRIPTOR_EXHAUSTION:
            raise DaemonOutOfFilesError(error.errno, f"process {pid}: {error}") from error
        log.warning("cannot read the executable of %d (%s): assuming native words", pid, error)
        return NATIVE_WORD_BYTES
    try:
        ident = os.pread(exe, 5, 0)
    finally:
        os.close(exe)
    if len(ident) < 5 or not ident.startswith(ELF_MAGIC) or ident[4] not in ELF_CLASS_WORD_BYTES:
        log.warning("the executable of %d is not an ELF file: assuming native words", pid)
        return NATIVE_WORD_BYTES
    return ELF_CLASS_WORD_BYTES[ident[4]]


def _read_proc(path: str, dir_fd: int | None = None) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        return os.read(fd, 4096).decode("ascii", "replace")
    finally:
        os.close(fd)


def _start_time(stat_text: str) -> int:
    """Field 22 of ``/proc/<pid>/stat`` (the name in parentheses may hold spaces)."""
    return int(stat_text[stat_text.rindex(")") + 2 :].split()[STAT_START_TIME_FIELD - 3])


class Caller:
    """The thread that made a request, and its process, identified while it waits for us.

    ``tid``: the thread; ``pid``: its process (tgid), the number ``guests/<pid>`` shows;
    ``word_bytes``: 4 or 8; ``start_time``: the process's start, which pins ``pid`` to it.
    Build it only while the request is held (fact 2).  It holds no descriptor.
    """

    def __init__(self, tid: int) -> None:
        self.tid = tid
        try:
            self.pid = int(_field(_read_proc(f"/proc/{tid}/status"), "Tgid:"))
            self.start_time = _start_time(_read_proc(f"/proc/{self.pid}/stat"))
        except OSError as error:
            if error.errno in DESCRIPTOR_EXHAUSTION:
                raise DaemonOutOfFilesError(error.errno, f"thread {tid}: {error}") from error
            raise CallerGoneError(f"thread {tid}: {error}") from error
        except ValueError as error:
            raise CallerGoneError(f"thread {tid}: {error}") from error
        self.word_bytes = word_bytes_of(self.pid)

    def __repr__(self) -> str:
        return f"pid {self.pid}/{self.tid} {self.word_bytes * 8}-bit"

    @contextlib.contextmanager
    def proc_dir(self) -> Iterator[int]:
        """An ``O_PATH`` descriptor of ``/proc/<pid>`` for this process, closed on leaving.

        Paths opened relative to it reach this process or fail with ESRCH, never a newcomer
        with its pid; the start time is checked through it, so it is this process's.
        """
        try:
            fd = os.open(f"/proc/{self.pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as error:
            if error.errno in DESCRIPTOR_EXHAUSTION:
                raise DaemonOutOfFilesError(error.errno, f"{self}: {error}") from error
            raise CallerGoneError(f"{self}: {error}") from error
        try:
            try:
                same = _start_time(_read_proc("stat", dir_fd=fd)) == self.start_time
            except (OSError, ValueError):
                same = False
            if not same:
                raise CallerGoneError(f"{self}: the process has gone")
            yield fd
        finally:
            os.close(fd)

    def process_alive(self) -> bool:
        """False once this process has exited (a zombie counts as gone), whoever has its pid."""
        try:
            text = _read_proc(f"/proc/{self.pid}/stat")
            return _start_time(text) == self.start_time and text[text.rindex(")") + 2] != "Z"
        except (OSError, ValueError):
            return False
