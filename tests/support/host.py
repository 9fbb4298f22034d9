"""Helpers for the Host's in-process tests: tiny assembly guests on a real Unicorn CPU.

The proof that the Host works is the guest-row tests through the real mount and launcher; these
helpers serve the fast, exact checks beside them: a guest written in a few lines of GNU assembly
(``as --32``), loaded into an anonymous shared mapping laid out like the launcher's (identity
tables for low memory, the same tables aliased at 0xC0000000), and a ``Guest`` run on it directly.

Layout (guest-physical): code at 0x10000 (linked at 0xC0010000), ``lguest_data`` at 0x20000,
scratch data at 0x21000, kernel stack top at 0x30000, page directory at 0x1000, PTE pages from
0x2000, memory 4 MB unless asked.  ``user_guest`` adds user-mode segments and drops to CPL 3.
"""

from __future__ import annotations

import mmap
import shutil
import struct
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from lguestfs.abi import (
    KERNEL_CS_DESCRIPTOR,
    KERNEL_DS_DESCRIPTOR,
    LD_HCALL_STATUS,
    LD_KERNEL_ADDRESS,
    LD_SYSCALL_VEC,
    PAGE_OFFSET,
)
from lguestfs.guest import Guest, RunExit
from lguestfs.memory import GuestMemory

CODE = 0x10000
DATA = 0x20000  # lguest_data
SCRATCH = 0x21000
STACK_TOP = 0x30000
PGDIR = 0x1000
PTES = 0x2000

PRELUDE = f"""
.code32
.set PAGE_OFFSET, {PAGE_OFFSET:#x}
.set DATA, {DATA:#x}
.set SCRATCH, {SCRATCH:#x}
.set STACK_TOP, {STACK_TOP:#x}
.macro hcall call, a1=0, a2=0, a3=0
    movl $\\call, %eax
    movl $\\a1, %edx
    movl $\\a2, %ebx
    movl $\\a3, %ecx
    int $0x1f
.endm
.macro init
    movl $(STACK_TOP + PAGE_OFFSET), %esp
    hcall 1, DATA
.endm
# gate VECTOR, HANDLER[, TYPE]: LOAD_IDT_ENTRY of a gate (a DPL-0 trap gate unless told)
.macro gate vec, handler, type=0x8f00
    movl $\\handler, %ebx
    andl $0xffff, %ebx
    orl $0x610000, %ebx
    movl $\\handler, %ecx
    andl $0xffff0000, %ecx
    orl $\\type, %ecx
    movl $6, %eax
    movl $\\vec, %edx
    int $0x1f
.endm
.text
.globl _start
_start:
"""

needs_as = pytest.mark.skipif(
    shutil.which("as") is None, reason="GNU as is needed to build test guests"
)


def assemble(source: str) -> bytes:
    """Assemble ``source`` (after the prelude) into a flat binary linked at CODE + PAGE_OFFSET."""
    with tempfile.TemporaryDirectory() as tmp:
        s, o, b = Path(tmp, "g.s"), Path(tmp, "g.o"), Path(tmp, "g.bin")
        s.write_text(PRELUDE + source + "\n")
        subprocess.run(["as", "--32", "-o", str(o), str(s)], check=True)
        subprocess.run(
            [
                "ld",
                "-m",
                "elf_i386",
                "-Ttext",
                hex(PAGE_OFFSET + CODE),
                "--oformat",
                "binary",
                "-o",
                str(b),
                str(o),
            ],
            check=True,
        )
        return b.read_bytes()


def guest_memory(mem_bytes: int = 4 << 20) -> GuestMemory:
    """A shared anonymous mapping with identity tables for [0, mem) aliased at 0xC0000000."""
    backing = mmap.mmap(-1, mem_bytes, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
    pages = mem_bytes // 4096
    for i in range(pages):
        struct.pack_into("<I", backing, PTES + i * 4, i * 4096 | 7)
    for k in range((pages + 1023) // 1024):
        pde = (PTES + k * 4096) | 7
        struct.pack_into("<I", backing, PGDIR + k * 4, pde)
        struct.pack_into("<I", backing, PGDIR + (768 + k) * 4, pde)
    # lguest_data as a well-behaved guest initialises it (spec 10)
    backing[DATA + LD_HCALL_STATUS : DATA + LD_HCALL_STATUS + 64] = b"\xff" * 64
    struct.pack_into("<I", backing, DATA + LD_KERNEL_ADDRESS, PAGE_OFFSET)
    struct.pack_into("<I", backing, DATA + LD_SYSCALL_VEC, 0x80)
    struct.pack_into("<I", backing, DATA + 4, 0xFFFFFFFF)  # blocked_interrupts: all masked
    return GuestMemory(backing, pages)


def make_guest(source: str, mem_bytes: int = 4 << 20) -> Guest:
    memory = guest_memory(mem_bytes)
    code = assemble(source)
    memory.write(CODE, code)
    return Guest(memory, PGDIR, PAGE_OFFSET + CODE, name="test")


class Reads:
    """Drive ``Guest.run`` like the daemon's reads, synchronously."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest

    def read(self, timeout: float = 10.0, *, signal_pending: bool = False) -> tuple[RunExit, int]:
        """One read; with ``signal_pending``, the reader's signal is there before the loop starts
        (the run goes to the guest thread, which cannot start it until the signal is in)."""
        done = threading.Event()
        result: list[tuple[RunExit, int]] = []

        def on_exit(kind: RunExit, value: int) -> None:
            result.append((kind, value))
            done.set()

        if signal_pending:
            self.guest._inline_ok = False
            with self.guest._cond:  # the guest thread waits for it before it looks at the run
                self.guest.run(on_exit)
                self.guest.interrupt()
        else:
            self.guest.run(on_exit)
        if not done.wait(timeout):
            raise AssertionError("the guest did not return from run()")
        return result[0]

    def start(self) -> Pending:
        """Start a read without waiting for it."""
        pending = Pending()
        self.guest.run(pending.on_exit)
        return pending


class Pending:
    """A read in progress: ``wait`` gives its (kind, value), or None on timeout."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._result: tuple[RunExit, int] | None = None

    def on_exit(self, kind: RunExit, value: int) -> None:
        self._result = (kind, value)
        self._done.set()

    def wait(self, timeout: float) -> tuple[RunExit, int] | None:
        self._done.wait(timeout)
        return self._result


USER_CS, USER_DS = 0x73, 0x7B
GDT_TABLE = SCRATCH + 0x100
FRAME = SCRATCH + 0x800  # where the handlers copy what they found on the stack

# Kernel set-up (and the caller's), then iret to user mode at user_code with a user stack in
# SCRATCH; a #GP copies its frame to FRAME and notifies 0x77.
TO_USER = """
    init
    hcall 3, GDT_TABLE, 32
    hcall 7, 0x69, STACK_TOP + PAGE_OFFSET, 1
    gate 13, gp_handler
{kernel_setup}
    pushl $0x7b
    pushl $(SCRATCH + PAGE_OFFSET + 0x700)
    pushl $0x202
    pushl $0x73
    pushl $user_code
    iret
gp_handler:
    movl %esp, %esi
    movl $(FRAME + PAGE_OFFSET), %edi
    movl $6, %ecx
    rep movsl
    hcall 17, 0x77
"""


def gdt_table() -> bytes:
    """The Host-checked GDT with user code and data segments (DPL 3) at 0x73 and 0x7B."""
    entries = [(0, 0)] * 32
    entries[12], entries[13] = KERNEL_CS_DESCRIPTOR, KERNEL_DS_DESCRIPTOR
    entries[14], entries[15] = (0x0000FFFF, 0x00CFFB00), (0x0000FFFF, 0x00CFF300)
    return b"".join(struct.pack("<II", lo, hi) for lo, hi in entries)


def user_guest(user_code: str, kernel_setup: str = "") -> Guest:
    """A guest that runs ``kernel_setup`` at CPL 1, then ``user_code`` at CPL 3."""
    source = (
        f".set GDT_TABLE, {GDT_TABLE:#x}\n.set FRAME, {FRAME:#x}\n"
        + TO_USER.format(kernel_setup=kernel_setup)
        + "user_code:\n"
        + user_code
    )
    g = make_guest(source)
    g.lguest.memory.write(GDT_TABLE, gdt_table())
    return g
