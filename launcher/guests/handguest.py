"""A launcher by hand: one guest driven through the node from this thread, for tests and the bench.

Where ``tests.support.launch`` runs the real ``lguest-launch``, a ``HandGuest`` *is* the launcher,
minus devices: guest memory laid out by ``launcher.layout.prepare_guest`` (a shared memfd),
optionally patched before the guest's first instruction (code written at the entry point, a
command for the guest), then ``MOUNT/lguest`` opened and INITIALIZEd by the calling thread, which
becomes the owner.  ``read()`` returns the guest's NOTIFY word, raises ``GuestDied`` with the
node's reason (spec 1.3: the read that sees the death gets ENOENT, the next one the text), or
with a ``timeout`` gives up on a guest that is still running (a SIGALRM the daemon turns into
EINTR: main thread only).

Also here: small i386 code builders for guests made of machine code written straight into
memory (fuzzers, isolation tests), and ``Footprint``, what a process holds (threads, fds,
mappings, anonymous memory), for the no-leak checks.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from launcher.closing import Closing
from launcher.layout import PreparedGuest, prepare_guest
from launcher.node import pack_words, unpack_word
from lguestfs import abi

REASON_BYTES = 1024


class GuestDied(Exception):
    """The guest is dead; ``reason`` is what the node said (spec 1.3)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the guest died: {reason}")
        self.reason = reason


class _Expired(Exception):
    """The read's time ran out (raised by the SIGALRM handler, which ends the read with EINTR)."""


@contextmanager
def alarm_after(seconds: float) -> Iterator[None]:
    """Raise ``_Expired`` in this (main) thread if the block runs longer than ``seconds``."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise _Expired

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class HandGuest(Closing):
    """One guest, owned by the thread that created it; ``close()`` releases it."""

    def __init__(
        self,
        mountpoint: Path,
        kernel: Path,
        *,
        mem_mb: int = 4,
        patch: Callable[[PreparedGuest], None] | None = None,
    ) -> None:
        self.prepared: PreparedGuest = prepare_guest(mem_mb, kernel, [])
        self.fd = -1
        try:
            if patch is not None:
                patch(self.prepared)
            self.fd = os.open(mountpoint / "lguest", os.O_RDWR)
            os.write(self.fd, self.prepared.initialize_request())
        except BaseException:
            self.close()
            raise

    def read(self, timeout: float | None = None) -> int | None:
        """The guest's next NOTIFY word; None if ``timeout`` passed with the guest still running."""
        try:
            if timeout is None:
                return unpack_word(os.read(self.fd, 8))
            with alarm_after(timeout):
                return unpack_word(os.read(self.fd, 8))
        except _Expired:
            return None
        except OSError as error:
            if error.errno != errno.ENOENT:
                raise
        raise GuestDied(self.reason())

    def reason(self) -> str:
        """The dead guest's reason, as every read after the death returns it."""
        return os.read(self.fd, REASON_BYTES).rstrip(b"\0").decode(errors="replace")

    def write(self, *words: int) -> int:
        return os.write(self.fd, pack_words(*words))

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        try:
            if fd >= 0:
                os.close(fd)  # the descriptor is gone even when close reports an error
        except OSError as error:
            if error.errno not in (errno.ENOTCONN, errno.ECONNABORTED):  # a dead daemon's flush
                raise
        finally:
            self.prepared.close()


# --- i386 machine code, for guests written straight into memory ------------------------------


def mov_imm(register: str, value: int) -> bytes:
    """``mov $value, %reg`` for eax, ecx, edx, ebx (opcode B8 + register number)."""
    number = {"eax": 0, "ecx": 1, "edx": 2, "ebx": 3}[register]
    return bytes([0xB8 + number]) + struct.pack("<I", value & 0xFFFFFFFF)


def hypercall(call: int, arg1: int = 0, arg2: int = 0, arg3: int = 0) -> bytes:
    """EAX = call, EDX = arg1, EBX = arg2, ECX = arg3, ``int $0x1f`` (spec 3)."""
    return (
        mov_imm("eax", call)
        + mov_imm("edx", arg1)
        + mov_imm("ebx", arg2)
        + mov_imm("ecx", arg3)
        + bytes([0xCD, abi.LGUEST_TRAP_ENTRY])
    )


def load(address: int) -> bytes:
    """``mov address, %eax``: one 4-byte read of a virtual address."""
    return b"\xa1" + struct.pack("<I", address)


SPIN = b"\xeb\xfe"  # jmp . : run for ever without an exit


def loop_back(code: bytes) -> bytes:
    """``code`` for ever: followed by a short jump back to its start (at most 126 bytes)."""
    return code + bytes([0xEB, (-(len(code) + 2)) & 0xFF])


def lguest_data_image() -> bytes:
    """A struct lguest_data that LGUEST_INIT accepts (spec 3.1, 10): ring free, kernel at
    PAGE_OFFSET, syscall vector 0x80; interrupts off, none blocked."""
    data = bytearray(abi.LGUEST_DATA_SIZE)
    data[abi.LD_HCALL_STATUS : abi.LD_HCALL_STATUS + abi.LHCALL_RING_SIZE] = (
        bytes([abi.HCALL_STATUS_DONE]) * abi.LHCALL_RING_SIZE
    )
    struct.pack_into("<I", data, abi.LD_KERNEL_ADDRESS, abi.PAGE_OFFSET)
    struct.pack_into("<I", data, abi.LD_SYSCALL_VEC, abi.SYSCALL_VECTOR)
    return bytes(data)


def code_at_entry(
    code: bytes, data: dict[int, bytes] | None = None
) -> Callable[[PreparedGuest], None]:
    """A ``patch`` that replaces the kernel's first instructions with ``code`` (and writes each
    ``data`` blob at its guest-physical address): the guest runs it from its first instruction,
    at privilege level 1 with the launcher's identity-mapped page tables."""

    def patch(prepared: PreparedGuest) -> None:
        prepared.write(prepared.entry, code)
        for address, blob in (data or {}).items():
            prepared.write(address, blob)

    return patch


LGUEST_DATA_AT = 0x80000  # where such guests keep their lguest_data: below the kernel at 1 MB
INIT = hypercall(abi.LHCALL_LGUEST_INIT, LGUEST_DATA_AT)  # spec 3.1: every guest's first call


def initialised_guest(
    code: bytes, data: dict[int, bytes] | None = None
) -> Callable[[PreparedGuest], None]:
    """A ``patch`` for a well-behaved start: LGUEST_INIT with a valid lguest_data, then ``code``."""
    return code_at_entry(INIT + code, {LGUEST_DATA_AT: lguest_data_image(), **(data or {})})


# --- What a process holds, for the no-leak checks ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class Footprint:
    threads: int
    fds: int
    mappings: int
    rss_anon_kib: int

    def __str__(self) -> str:
        return (
            f"{self.threads} threads, {self.fds} fds, {self.mappings} mappings, "
            f"{self.rss_anon_kib} KiB anonymous"
        )


def footprint(pid: int) -> Footprint:
    proc = Path(f"/proc/{pid}")
    rss = 0
    for line in (proc / "status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            rss = int(line.split()[1])
    return Footprint(
        threads=len(os.listdir(proc / "task")),
        fds=len(os.listdir(proc / "fd")),
        mappings=len((proc / "maps").read_text().splitlines()),
        rss_anon_kib=rss,
    )
