"""Adopting a 32-bit launcher's *private* guest memory at INITIALIZE, as 2.6.24's launcher maps it.

2.6.24's own launcher (``Documentation/lguest/lguest.c``) maps guest memory ``MAP_PRIVATE`` from
``/dev/zero`` and maps the kernel file ``MAP_FIXED|MAP_PRIVATE`` into it.  In 2.6.24 the Host used
the launcher's address space directly; a FUSE daemon cannot share private pages (``sharing``), so
it *adopts* them, the way checkpoint/restore tools move a process's memory:

1. **Copy** (before INITIALIZE is answered, while the calling thread waits in it): the daemon
   makes a memfd of the range's size and copies the launcher's bytes into it through
   ``/proc/<pid>/mem``.  The guest runs on the memfd from its first instruction.
2. **Stop** (still before the answer): the daemon ``PTRACE_SEIZE``\\ s the calling thread and
   ``PTRACE_INTERRUPT``\\ s it.  A thread waiting in a FUSE request cannot stop, so it stops on its
   way out of the INITIALIZE write, before it runs one more instruction of its own.  A launcher
   that is traced already (a debugger, strace) cannot be seized: INITIALIZE is EFAULT, as for any
   memory the daemon cannot share, with the reason in the log.
3. **Replace** (after the answer, on the tracer's own thread: ptrace requests must come from the
   thread that seized): with the thread stopped, the daemon makes it run three system calls
   through ``int $0x80`` (the launcher is an i386 program; its code segment is checked): ``open``
   of ``/proc/<daemon pid>/fd/<memfd>``, ``mmap2(base, length, prot, MAP_SHARED|MAP_FIXED, fd, 0)``
   over the private range, and ``close``.  Each runs from an ``int $0x80`` already in the
   program (the one the INITIALIZE write returned through, in the vDSO) or, failing that, two
   bytes written at the thread's EIP and put back; the path is written into the private range
   being replaced.  Then the registers are restored (the write still returns what the daemon
   answered), signals that came meanwhile are given back, and the thread is detached.
   From then on launcher and daemon share the pages, exactly as with a launcher that mapped
   shared memory itself.

If the launcher dies or a step fails after the answer, the guest is killed with the reason
(the launcher's next read gets ENOENT, then the reason); the daemon goes on.  Only the calling
thread is stopped: another thread or process sharing the launcher's memory (2.6.24's block I/O
"thread" is a ``clone(CLONE_VM)`` process) that writes guest memory between the copy and the
replacement loses those writes; 2.6.24's launcher does not.  The launcher opens the daemon's
memfd through ``/proc``, which the kernel allows a launcher running as root (or as the daemon's
user); another launcher's guest is killed with "open of the daemon's copy in the launcher
failed: EACCES".

Why not share the private pages themselves (measured on this kernel, 6.18): ``/proc/<pid>/
map_files`` of a private mapping opens the object behind it (``/dev/zero``, the kernel file),
not the launcher's copies of its pages; ``/proc/<pid>/mem`` can be read and written but not
mapped (ENODEV); ``process_vm_readv``/``writev`` copy; soft-dirty tracking is not built in, so
a copy kept in step at every read would have to compare all of guest memory each time.  A
single replacement at INITIALIZE costs one copy and leaves the shared path as it is.

Path: launcher -> node -> handle (``protocol``: INITIALIZE) -> ``sharing`` -> **adopt** ->
``GuestMemory``.
"""

import contextlib
import ctypes
import errno
import logging
import mmap
import os
import signal
import threading
from collections.abc import Callable

from lguestfs.abi import PAGE_SIZE
from lguestfs.callers import Caller
from lguestfs.sharing import SharingError

log = logging.getLogger(__name__)

PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_SINGLESTEP = 9
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_EVENT_STOP = 128  # status >> 16 of a stop made by PTRACE_INTERRUPT or a group stop
WAIT_ALL = 0x40000000  # __WALL: wait for a thread that is not a process's leader too
I386_WORD_BYTES = 4  # adoption runs i386 system calls: 32-bit launchers only
I386_USER_CS = 0x23  # the code segment of a 32-bit program on an x86-64 kernel
INT_0X80 = b"\xcd\x80"
# i386 system call numbers (arch/x86/entry/syscalls/syscall_32.tbl)
NR_OPEN = 5
NR_CLOSE = 6
NR_MMAP2 = 192
I386_O_RDWR_CLOEXEC = 0o2 | 0o2000000
MAP_SHARED_FIXED = mmap.MAP_SHARED | 0x10  # MAP_FIXED
ERRNO_LIMIT = 4096  # a system call result in [-4095, -1] is an errno


class _Regs(ctypes.Structure):
    """``struct user_regs_struct`` of x86-64 (a 32-bit tracee's registers, widened)."""

    _fields_ = [
        (name, ctypes.c_ulonglong)
        for name in [
            "r15",
            "r14",
            "r13",
            "r12",
            "rbp",
            "rbx",
            "r11",
            "r10",
            "r9",
            "r8",
            "rax",
            "rcx",
            "rdx",
            "rsi",
            "rdi",
            "orig_rax",
            "rip",
            "cs",
            "eflags",
            "rsp",
            "ss",
            "fs_base",
            "gs_base",
            "ds",
            "es",
            "fs",
            "gs",
        ]
    ]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p)


class AdoptionError(Exception):
    """A step of the replacement failed; ``str()`` is the guest's kill reason."""


def _ptrace(request: int, tid: int, address: int = 0, data: int | _Regs | None = None) -> None:
    pointer = ctypes.addressof(data) if isinstance(data, _Regs) else data
    if _libc.ptrace(request, tid, address, pointer) == -1:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _result(name: str, value: int) -> int:
    """An i386 system call's result, or AdoptionError for an errno."""
    if -ERRNO_LIMIT < _signed32(value) < 0:
        code = -_signed32(value)
        raise AdoptionError(f"{name} in the launcher failed: {errno.errorcode.get(code, code)}")
    return value & 0xFFFFFFFF


def copy_private_memory(mem_fd: int, base: int, length: int, name: str) -> tuple[int, mmap.mmap]:
    """A memfd holding the launcher's bytes ``[base, base + length)``, and the daemon's mapping of
    it.  ``mem_fd``: the launcher's ``/proc/<pid>/mem``.  Raises SharingError or MemoryError."""
    memfd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.ftruncate(memfd, length)
        backing = mmap.mmap(memfd, length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError as error:
        os.close(memfd)
        if error.errno in (errno.ENOMEM, errno.ENOSPC):
            raise MemoryError(f"no room for a {length}-byte copy of guest memory") from error
        raise SharingError(f"cannot make a copy of guest memory: {error}") from error
    try:
        view = memoryview(backing)
        done = 0
        while done < length:
            count = os.preadv(mem_fd, [view[done:]], base + done)
            if count <= 0:
                raise SharingError(f"the launcher's memory at {base + done:#x} cannot be read")
            done += count
        view.release()
    except OSError as error:
        backing.close()
        os.close(memfd)
        raise SharingError(f"cannot read the launcher's memory: {error}") from error
    except BaseException:
        backing.close()
        os.close(memfd)
        raise
    return memfd, backing


def prepare(
    caller: Caller, proc_dir: int, base: int, pfnlimit: int, prot: int
) -> tuple["Adoption", mmap.mmap]:
    """Steps 1 of the module docstring: the copy, and the adoption that will replace the
    caller's range by it (:meth:`Adoption.stop_caller` does step 2).  ``proc_dir``: the caller's
    pinned ``/proc/<pid>``.  Raises SharingError or MemoryError."""
    length = pfnlimit * PAGE_SIZE
    try:
        mem_fd = os.open("mem", os.O_RDWR | os.O_CLOEXEC, dir_fd=proc_dir)
    except OSError as error:
        raise SharingError(f"cannot open the launcher's memory: {error}") from error
    try:
        memfd, backing = copy_private_memory(mem_fd, base, length, f"lguestfs-{caller.pid}")
    except BaseException:
        os.close(mem_fd)
        raise
    return Adoption(caller.tid, caller.pid, mem_fd, memfd, base, length, prot), backing


class Adoption:
    """The replacement of one launcher's private range by the daemon's copy, on its own thread.

    :meth:`stop_caller` (before INITIALIZE is answered) seizes the calling thread; the thread of
    this object then waits for it to stop and replaces the mapping (module docstring, step 3).
    It owns ``memfd`` and ``mem_fd``: its thread closes both when it ends, :meth:`close` when
    there is no thread."""

    def __init__(
        self, tid: int, pid: int, mem_fd: int, memfd: int, base: int, length: int, prot: int
    ):
        self.tid, self.pid = tid, pid
        self.mem_fd, self.memfd = mem_fd, memfd
        self.base, self.length, self.prot = base, length, prot
        self.kill: Callable[[str], None] = lambda reason: None
        self._seized = threading.Event()
        self._seize_error: OSError | None = None
        self._signals: list[int] = []  # signals that stopped the thread meanwhile: given back
        self._started = False

    def close(self) -> None:
        """Close the descriptors, unless :meth:`stop_caller` handed them to the thread."""
        if not self._started:
            self._started = True
            os.close(self.mem_fd)
            os.close(self.memfd)

    def stop_caller(self, kill: Callable[[str], None]) -> None:
        """Seize and interrupt the caller (it stops when INITIALIZE returns).  ``kill`` ends the
        guest if the replacement fails.  Raises SharingError if the caller cannot be traced."""
        self.kill = kill
        thread = threading.Thread(target=self._main, name=f"adopt-{self.pid}", daemon=True)
        self._started = True  # the thread closes the descriptors
        thread.start()
        self._seized.wait()
        if self._seize_error is not None:
            thread.join()
            error = self._seize_error
            why = (
                "it is traced already, or exiting" if error.errno == errno.EPERM else error.strerror
            )
            raise SharingError(
                f"private memory cannot be adopted: cannot trace the launcher: {why}"
            )

    def _main(self) -> None:
        try:
            try:
                _ptrace(PTRACE_SEIZE, self.tid)
                _ptrace(PTRACE_INTERRUPT, self.tid)
            except OSError as error:
                self._seize_error = error
                return
            finally:
                self._seized.set()
            self._adopt()
        finally:
            os.close(self.mem_fd)
            os.close(self.memfd)

    def _adopt(self) -> None:
        try:
            self._wait_stop()
            saved = _Regs()
            _ptrace(PTRACE_GETREGS, self.tid, 0, saved)
            if saved.cs != I386_USER_CS:
                raise AdoptionError(f"the launcher is not a 32-bit program (cs {saved.cs:#x})")
            restore = self._find_int80(saved.rip)
            try:
                self._replace(saved, restore[0])
            finally:
                if restore[1] is not None:
                    os.pwrite(self.mem_fd, restore[1], restore[0])
                _ptrace(PTRACE_SETREGS, self.tid, 0, saved)
        except (AdoptionError, OSError) as error:
            reason = f"lguestfs: the launcher's private memory was not adopted: {error}"
            log.warning("launcher %d: %s", self.pid, reason)
            self.kill(reason)
        except _Gone:
            log.info("launcher %d ended while its private memory was adopted", self.pid)
            return
        self._detach()

    def _replace(self, saved: _Regs, int80: int) -> None:
        path = f"/proc/{os.getpid()}/fd/{self.memfd}".encode() + b"\0"
        os.pwrite(self.mem_fd, path, self.base)  # into the private page being replaced
        fd = _result(
            "open of the daemon's copy",
            self._syscall(saved, int80, NR_OPEN, self.base, I386_O_RDWR_CLOEXEC),
        )
        try:
            mapped = self._syscall(
                saved, int80, NR_MMAP2, self.base, self.length, self.prot, MAP_SHARED_FIXED, fd, 0
            )
            if _result("mmap2 of the daemon's copy", mapped) != self.base & 0xFFFFFFFF:
                raise AdoptionError(f"mmap2 in the launcher mapped at {mapped:#x}")
        finally:
            self._syscall(saved, int80, NR_CLOSE, fd)
        log.info(
            "launcher %d: private guest memory %#x+%#x adopted", self.pid, self.base, self.length
        )

    def _find_int80(self, eip: int) -> tuple[int, bytes | None]:
        """Where to run ``int $0x80``, and the bytes to put back there (None: nothing written)."""
        with contextlib.suppress(OSError):  # eip - 2 may be on an unmapped page
            if os.pread(self.mem_fd, 2, eip - 2) == INT_0X80:  # the write returned through it
                return eip - 2, None
        original = os.pread(self.mem_fd, 2, eip)
        os.pwrite(self.mem_fd, INT_0X80, eip)
        return eip, original

    def _syscall(self, saved: _Regs, int80: int, number: int, *args: int) -> int:
        call = _Regs.from_buffer_copy(saved)
        call.rax, call.orig_rax, call.rip = number, (1 << 64) - 1, int80
        for name, value in zip(("rbx", "rcx", "rdx", "rsi", "rdi", "rbp"), args, strict=False):
            setattr(call, name, value & 0xFFFFFFFF)
        _ptrace(PTRACE_SETREGS, self.tid, 0, call)
        while True:
            _ptrace(PTRACE_SINGLESTEP, self.tid)
            status = self._wait_stop()
            _ptrace(PTRACE_GETREGS, self.tid, 0, call)
            if call.rip == int80 + len(INT_0X80) and os.WSTOPSIG(status) == signal.SIGTRAP:
                return int(call.rax)

    def _wait_stop(self) -> int:
        """The next stop of the thread; a signal that stopped it is kept to be given back."""
        try:
            _, status = os.waitpid(self.tid, WAIT_ALL)
        except ChildProcessError as error:
            raise _Gone from error
        if not os.WIFSTOPPED(status):
            raise _Gone
        number = os.WSTOPSIG(status)
        if number != signal.SIGTRAP and status >> 16 != PTRACE_EVENT_STOP:
            self._signals.append(number)
        return status

    def _detach(self) -> None:
        first, *others = self._signals or [0]
        try:
            _ptrace(PTRACE_DETACH, self.tid, 0, first)
            for number in others:
                os.kill(self.pid, number)
        except OSError as error:  # it was killed meanwhile
            log.info("launcher %d: detaching after adoption: %s", self.pid, error)


class _Gone(Exception):
    """The traced thread ended (killed): nothing to restore, nothing to detach."""
