"""Calibration: where this libunicorn keeps the hidden state the Host needs, measured at mount.

The register API does not reach everything the Host needs (see the facts in ``lguestfs.cpu``): the
CPL bits of ``hflags``, the exception's error code and "was it an ``int``", the exception in flight,
GDTR's 64-bit base, the engine's ``no_exit_request`` switch, the faulting address of a refused
translation and the engine's CPU (for QEMU's ``tlb_flush_page``).  They are read and written at
offsets inside a ``uc_context_save`` blob or the engine, found here by planting known values, never
hard-coded: a rebuilt Unicorn of the same version (the project's patched wheel) moves them.

``calibrate()`` runs once, from ``lguestfs.cli`` before the mount (and from the first ``Cpu`` if
nothing called it).  It measures each offset, then checks every fact on its own against a value
it did not use to find it (``FACTS``; the tests run each one by name).  A Unicorn that does not
match fails there, in one ``CpuError`` line, instead of corrupting guests later.

QEMU's ``CPUX86State`` starts with the 16 general registers, then ``eip``, ``eflags``, three
``cc_*`` words, ``cc_op``, ``df`` and ``hflags``; and ``error_code``, ``exception_is_int``,
``exception_next_eip`` sit together with ``old_exception`` 112 bytes after ``error_code``.
"""

from __future__ import annotations

import ctypes
import dataclasses
import struct
from collections.abc import Callable
from typing import Any, Final

from lguestfs.cpu._binding import Binding, CpuError, const, handle, new_uc, x86_const

HF_CPL_MASK: Final = 3
HF_PE_MASK: Final = 0x80  # hflags mirrors CR0.PE here
_TRAP_GP: Final = 13
_PLANTED_EIP: Final = 0x13579BDF
_PLANTED_GDT_BASE: Final = 0xABCD0000
_BAD_SELECTORS: Final = (0x7F8, 0x7F0)
_INT_VECTOR: Final = 0x21


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The binding's private parts, and byte offsets inside a context blob or the engine."""

    binding: Binding
    eip: int  # blob: env->eip
    hflags: int  # blob: env->hflags (CPL in bits 0-1, CR0.PE mirrored in bit 7)
    gdt_base: int  # blob: env->gdt.base, 64 bits
    error_code: int  # blob: env->error_code
    exception_is_int: int  # blob: env->exception_is_int
    old_exception: int  # blob: env->old_exception
    no_exit_request: int  # engine: uc->no_exit_request (a byte)
    fault_address: int  # engine: the address a refused translation faulted on (64 bits)
    cpu: int  # engine: uc->cpu, the CPUState that QEMU's tlb_flush_page takes
    env: int  # CPUState + this + a blob offset: that field, live (the blob holds a copy of env)


def _find(blob: bytes, value: int, size: int = 4, step: int = 1) -> set[int]:
    word = value.to_bytes(size, "little")
    return {o for o in range(0, len(blob) - size + 1, step) if blob[o : o + size] == word}


def _one(found: set[int] | None, what: str) -> int:
    if found is None or len(found) != 1:
        raise CpuError(f"cannot find {what} inside libunicorn")
    return found.pop()


def _blob_at_trap(code: bytes, gdt: bool = False) -> bytes:
    """The context blob inside the INTR hook of the first trap ``code`` (at 0x2000) raises."""
    uc = new_uc()
    uc.mem_map(0, 0x10000)
    if gdt:  # a null and a flat data descriptor, protected mode
        uc.mem_write(0x1000, bytes(8) + struct.pack("<II", 0x0000FFFF, 0x00CF9300))
        uc.reg_write(x86_const.UC_X86_REG_GDTR, (0, 0x1000, 15, 0))
        uc.reg_write(x86_const.UC_X86_REG_CR0, uc.reg_read(x86_const.UC_X86_REG_CR0) | 1)
    uc.mem_write(0x2000, code + b"\xf4")  # ...; hlt
    blobs: list[bytes] = []

    def on_trap(u: Any, _intno: int, _data: Any) -> None:
        blobs.append(bytes(u.context_save()))
        u.emu_stop()

    uc.hook_add(const.UC_HOOK_INTR, on_trap)
    uc.emu_start(0x2000, 0x2001 + len(code))
    if len(blobs) != 1:
        raise CpuError("libunicorn did not report a trap through its INTR hook")
    return blobs[0]


def _bad_selector_load(selector: int) -> bytes:
    """``mov $selector, %ax; mov %ax, %ds``: a #GP with the selector as its error code."""
    return _blob_at_trap(b"\x66\xb8" + selector.to_bytes(2, "little") + b"\x8e\xd8", gdt=True)


def _stop_on_a_store(no_exit_request: int | None) -> tuple[int, int]:
    """(EIP, counter) after a memory-write hook stops ``addl $1, (0x3000)`` at 0x1000.

    Stock 2.1.4 gives (0x1000, 1): the add is done and EIP is back on it.  With the per-access
    checks off (``no_exit_request`` given) the stop lands at the next block: (0x2000, 1).
    """
    uc = new_uc()
    if no_exit_request is not None:
        ctypes.c_uint8.from_address(handle(uc) + no_exit_request).value = 1
    uc.mem_map(0, 0x10000)
    # 0x1000: addl $1, (0x3000); nop; jmp 0x2000        0x2000: jmp 0x1000
    uc.mem_write(0x1000, bytes.fromhex("8305003000000190e9") + struct.pack("<i", 0x2000 - 0x100D))
    uc.mem_write(0x2000, b"\xe9" + struct.pack("<i", 0x1000 - 0x2005))
    uc.hook_add(const.UC_HOOK_MEM_WRITE, lambda u, *_: u.emu_stop(), begin=0x3000, end=0x3003)
    uc.emu_start(0x1000, 0xFFFF)
    return uc.reg_read(x86_const.UC_X86_REG_EIP), int.from_bytes(uc.mem_read(0x3000, 4), "little")


def _engine_after_a_refused_access(binding: Binding, no_exit_request: int, code: bytes) -> bytes:
    """The first 16 KiB of an engine that ran ``code`` with the page of 0x5000-0x9fff refused."""
    uc = new_uc()
    ctypes.c_uint8.from_address(handle(uc) + no_exit_request).value = 1
    uc.ctl_set_tlb_mode(const.UC_TLB_VIRTUAL)

    def fill(_u: Any, vaddr: int, _access: int, entry: Any, _data: Any) -> bool:
        if 0x5000 <= vaddr < 0xA000:
            return False
        entry.paddr, entry.perms = vaddr, const.UC_PROT_ALL
        return True

    uc.hook_add(const.UC_HOOK_TLB_FILL, fill)
    uc.mem_map(0, 0x10000)
    uc.mem_write(0x1000, code + b"\xf4")  # ...; hlt
    status = binding.lib.uc_emu_start(uc._uch, 0x1000, 0x1001 + len(code), 0, 0)
    if status != const.UC_ERR_EXCEPTION:
        raise CpuError("libunicorn does not end a run on a refused translation")
    return ctypes.string_at(handle(uc), 0x4000)


# A store and a push into the refused range, with the byte each faulted on.  (Another field of
# the engine holds the store's address too, but not the push's: ESP before it.)
_REFUSED_ACCESSES: Final = (
    (b"\xa3" + struct.pack("<I", 0x5678), 0x5678),  # mov %eax, (0x5678)
    (b"\xbc\x10\x90\x00\x00\x50", 0x900C),  # mov $0x9010, %esp; push %eax
)


def _no_exit_request_in_code(binding: Binding) -> int:
    """The byte the x86 translator's ``check_exit_request`` tests first
    (``mov d32(%rdi),%rsi; cmpb $0,d32(%rsi); je``): ``uc->no_exit_request``."""
    address = binding.engine_symbol.value
    assert address is not None
    code = ctypes.string_at(address, 15)
    if code[0:3] != b"\x48\x8b\xb7" or code[7:9] != b"\x80\xbe" or code[13:15] != b"\x00\x74":
        raise CpuError(f"unexpected code in libunicorn's check_exit_request: {code.hex()}")
    return int.from_bytes(code[9:13], "little", signed=True)


# Registers planted to recognise the CPU's state in memory: EAX, ECX, EDX, EBX lead ``env``.
_PLANTED_REGS: Final = (0x5EED0000, 0x5EED1111, 0x5EED2222, 0x5EED3333)
_CPU_STATE_SPAN: Final = 0x40000  # CPUState, and QEMU's TLB after it, precede env by less
_ENV_PTR_WITHIN: Final = 0x1000  # CPUState's env_ptr sits near its start


def _planted_engine() -> Any:
    uc = new_uc()
    x86 = x86_const
    regs = (x86.UC_X86_REG_EAX, x86.UC_X86_REG_ECX, x86.UC_X86_REG_EDX, x86.UC_X86_REG_EBX)
    for reg, value in zip(regs, _PLANTED_REGS, strict=True):
        uc.reg_write(reg, value)
    return uc


def _env_offset(uc: Any, address: int) -> int | None:
    """Whether ``address`` holds the ``CPUState`` of planted engine ``uc``: its ``env`` (the
    planted registers) follows within ``_CPU_STATE_SPAN``, it points at that ``env`` in its first
    ``_ENV_PTR_WITHIN`` bytes (``env_ptr``) and back at the engine (``uc``); then where ``env``
    starts in it, else None.  Read through /proc/self/mem, so a word that is no pointer at all
    is only an error, never a crash."""
    if not 0x10000 <= address < 1 << 47 or address & 7:
        return None
    try:
        with open("/proc/self/mem", "rb", buffering=0) as mem:
            mem.seek(address)
            state = mem.read(_CPU_STATE_SPAN)
    except (OSError, ValueError):
        return None
    env = state.find(b"".join(value.to_bytes(8, "little") for value in _PLANTED_REGS))
    if env <= 0:
        return None
    words = struct.unpack_from(f"<{env // 8}Q", state)
    if address + env in words[: _ENV_PTR_WITHIN // 8] and handle(uc) in words:
        return env
    return None


def _blob_env(uc: Any) -> int:
    """Where a context blob's copy of ``env`` starts: at the planted registers."""
    blob = bytes(uc.context_save())
    signature = b"".join(value.to_bytes(8, "little") for value in _PLANTED_REGS)
    return _one(_find(blob, int.from_bytes(signature, "little"), len(signature)), "the blob's env")


def _cpu_pointer(uc: Any, offset: int) -> int:
    return ctypes.c_uint64.from_address(handle(uc) + offset).value


def _fills_after_flushing_a_page(c: Calibration) -> list[int]:
    """Load from 0x3000 and 0x4000, flush the page of 0x3000, run again: the pages refilled."""
    uc = _planted_engine()
    if _env_offset(uc, _cpu_pointer(uc, c.cpu)) is None:
        raise CpuError("libunicorn keeps its CPU elsewhere in the engine")
    uc.ctl_set_tlb_mode(const.UC_TLB_VIRTUAL)
    fills: list[int] = []

    def fill(_u: Any, vaddr: int, _access: int, entry: Any, _data: Any) -> bool:
        fills.append(vaddr & ~0xFFF)
        entry.paddr, entry.perms = vaddr, const.UC_PROT_ALL
        return True

    uc.hook_add(const.UC_HOOK_TLB_FILL, fill)
    uc.mem_map(0, 0x10000)
    code = b"\xa1" + struct.pack("<I", 0x3000) + b"\xa1" + struct.pack("<I", 0x4000) + b"\xf4"
    uc.mem_write(0x1000, code)  # mov (0x3000), %eax; mov (0x4000), %eax; hlt
    uc.emu_start(0x1000, 0x1000 + len(code) - 1)
    fills.clear()
    c.binding.flush_page(_cpu_pointer(uc, c.cpu), 0x3000)
    uc.emu_start(0x1000, 0x1000 + len(code) - 1)
    return fills


def measure(binding: Binding) -> Calibration:
    """Find every offset (not yet checked: see ``FACTS``)."""
    uc = new_uc()
    uc.mem_map(0, 0x10000)
    uc.reg_write(x86_const.UC_X86_REG_EIP, _PLANTED_EIP)
    eip = _one(_find(bytes(uc.context_save()), _PLANTED_EIP), "the saved EIP")
    uc.reg_write(x86_const.UC_X86_REG_GDTR, (0, _PLANTED_GDT_BASE, 0xFF, 0))
    gdt_base = _one(_find(bytes(uc.context_save()), _PLANTED_GDT_BASE), "the GDT base")
    found: set[int] | None = None
    for selector in _BAD_SELECTORS:
        blob = _bad_selector_load(selector)
        here = _find(blob, selector, step=4)
        # the one whose old_exception, 112 bytes on, is the #GP being handled
        here = {o for o in here if _blob_u32(blob, o + 112) == _TRAP_GP}
        found = here if found is None else found & here
    error_code = _one(found, "the error code")
    no_exit_request = _no_exit_request_in_code(binding)
    found = None
    for code, address in _REFUSED_ACCESSES:
        engine = _engine_after_a_refused_access(binding, no_exit_request, code)
        here = _find(engine, address, size=8, step=8)
        found = here if found is None else found & here
    planted = _planted_engine()
    engine = ctypes.string_at(handle(planted), 0x4000)
    envs = {o: _env_offset(planted, _cpu_pointer(planted, o)) for o in range(0, len(engine), 8)}
    cpu = {o for o, env in envs.items() if env is not None}
    return Calibration(
        binding=binding,
        eip=eip,
        hflags=eip + 48,
        gdt_base=gdt_base,
        error_code=error_code,
        exception_is_int=error_code + 4,
        old_exception=error_code + 112,
        no_exit_request=no_exit_request,
        fault_address=_one(found, "the faulting address"),
        cpu=(cpu_offset := _one(cpu, "the CPU state")),
        env=(envs[cpu_offset] or 0) - _blob_env(planted),
    )


def _blob_u32(blob: bytes, offset: int) -> int:
    return int.from_bytes(blob[offset : offset + 4], "little")


def check_eip(c: Calibration) -> None:
    """A saved EIP other than the planted one is where ``eip`` says."""
    uc = new_uc()
    uc.reg_write(x86_const.UC_X86_REG_EIP, 0x2468ACE0)
    if _blob_u32(bytes(uc.context_save()), c.eip) != 0x2468ACE0:
        raise CpuError("libunicorn keeps EIP elsewhere in its saved state")


def check_hflags(c: Calibration) -> None:
    """48 bytes after EIP: ``hflags``, its PE bit following CR0.PE (and EFLAGS 8 after EIP)."""
    for protected in (False, True):
        uc = new_uc()
        if protected:
            uc.reg_write(x86_const.UC_X86_REG_CR0, uc.reg_read(x86_const.UC_X86_REG_CR0) | 1)
        blob = bytes(uc.context_save())
        if _blob_u32(blob, c.eip + 8) != uc.reg_read(x86_const.UC_X86_REG_EFLAGS) or bool(
            _blob_u32(blob, c.hflags) & HF_PE_MASK
        ) != bool(uc.reg_read(x86_const.UC_X86_REG_CR0) & 1):
            raise CpuError("libunicorn's CPU state layout is not the one this Host knows")


def check_gdt_base(c: Calibration) -> None:
    """GDTR's base sits there, as a 64-bit word (the Host writes 4 GB into it: ``Cpu.start``)."""
    uc = new_uc()
    uc.reg_write(x86_const.UC_X86_REG_GDTR, (0, 0x5000, 0xFF, 0))
    if int.from_bytes(bytes(uc.context_save())[c.gdt_base : c.gdt_base + 8], "little") != 0x5000:
        raise CpuError("libunicorn keeps the GDT base elsewhere in its saved state")


def check_error_code(c: Calibration) -> None:
    """A third bad selector's #GP leaves that selector there."""
    if _blob_u32(_bad_selector_load(0x7E8), c.error_code) != 0x7E8:
        raise CpuError("libunicorn keeps the error code elsewhere in its saved state")


def check_exception_is_int(c: Calibration) -> None:
    """4 bytes after the error code: 1 for ``int $n``, 0 for a fault (#GP)."""
    by_int = _blob_u32(_blob_at_trap(bytes([0xCD, _INT_VECTOR])), c.exception_is_int)
    by_fault = _blob_u32(_bad_selector_load(0x7F8), c.exception_is_int)
    if (by_int, by_fault) != (1, 0):
        raise CpuError("libunicorn keeps 'raised by an int instruction' elsewhere")


def check_old_exception(c: Calibration) -> None:
    """112 bytes after the error code: the exception in flight (13 inside a #GP's hook)."""
    if _blob_u32(_bad_selector_load(0x7F8), c.old_exception) != _TRAP_GP:
        raise CpuError("libunicorn keeps the exception in flight elsewhere")


def check_no_exit_request(c: Calibration) -> None:
    """Setting that byte moves a stop caught on a store to the next block, without a replay."""
    if _stop_on_a_store(None) != (0x1000, 1):
        raise CpuError("libunicorn does not stop on a store the way this Host knows")
    if _stop_on_a_store(c.no_exit_request) != (0x2000, 1):
        raise CpuError("libunicorn's no_exit_request does not do what this Host knows")


def check_fault_address(c: Calibration) -> None:
    """After a refused load, the engine holds the byte it faulted on there."""
    code = b"\xa1" + struct.pack("<I", 0x6ABC)  # mov (0x6abc), %eax
    engine = _engine_after_a_refused_access(c.binding, c.no_exit_request, code)
    if int.from_bytes(engine[c.fault_address : c.fault_address + 8], "little") != 0x6ABC:
        raise CpuError("libunicorn keeps a refused translation's address elsewhere")


def check_cpu(c: Calibration) -> None:
    """``tlb_flush_page`` on the CPU found there drops that page, and only it, from the TLB."""
    if _fills_after_flushing_a_page(c) != [0x3000]:
        raise CpuError("libunicorn's tlb_flush_page does not do what this Host knows")


def check_env(c: Calibration) -> None:
    """The live state there holds what the register API wrote: EAX first, EIP and ``hflags``
    where the blob has them (the Host reads the CPL there: ``Cpu.cpl``)."""
    uc = _planted_engine()
    cpu = _cpu_pointer(uc, c.cpu)
    if _env_offset(uc, cpu) != c.env + _blob_env(uc):
        raise CpuError("libunicorn keeps its live CPU state elsewhere")
    uc.reg_write(x86_const.UC_X86_REG_EIP, 0x2468ACE0)
    uc.reg_write(x86_const.UC_X86_REG_CR0, uc.reg_read(x86_const.UC_X86_REG_CR0) | 1)
    if (
        ctypes.c_uint32.from_address(cpu + c.env + c.eip).value,
        ctypes.c_uint32.from_address(cpu + c.env + c.hflags).value & HF_PE_MASK,
    ) != (0x2468ACE0, HF_PE_MASK):
        raise CpuError("libunicorn keeps its live CPU state elsewhere")


FACTS: Final[dict[str, Callable[[Calibration], None]]] = {
    "eip": check_eip,
    "hflags": check_hflags,
    "gdt_base": check_gdt_base,
    "error_code": check_error_code,
    "exception_is_int": check_exception_is_int,
    "old_exception": check_old_exception,
    "no_exit_request": check_no_exit_request,
    "fault_address": check_fault_address,
    "cpu": check_cpu,
    "env": check_env,
}

_calibration: Calibration | None = None


def calibrate() -> Calibration:
    """Measure and check this Unicorn once per process; ``CpuError`` if it does not match."""
    global _calibration
    if _calibration is None:
        try:
            found = measure(Binding())
            for check in FACTS.values():
                check(found)
        except CpuError:
            raise
        except Exception as error:  # a binding that fails in its own way: still one line
            raise CpuError(f"unicorn does not work as this Host knows: {error!r}") from error
        _calibration = found
    return _calibration
