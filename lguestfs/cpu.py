"""The guest's CPU: Unicorn i386 at privilege level 1, and the ways back into the Host.

Where this sits: ``guest`` runs the loop of spec 2; each "run the guest" of that loop is one
``Cpu.run()``, which returns when a hook asked Unicorn to stop (a hypercall that leaves the guest,
a kill), when another thread kicked the CPU (break, signal, timer, irq, close), or when a page
walk failed (``pagetables`` refused a translation: a #PF to reflect or a kill).  The hooks
themselves belong to ``guest``; this module only owns Unicorn.

Some facts about Unicorn 2.1.4 that the code below relies on (measured, see
``shared/notes/unicorn-on-this-machine.md``):

* **Privilege level.**  QEMU keeps the CPL in ``env->hflags`` (bits 0-1) and only changes it
  when SS is loaded from a descriptor.  ``uc_reg_write(SS)`` refuses a selector whose RPL or DPL
  differs from the current CPL, and ``reg_write`` has no way to change the CPL itself.  So the
  Host changes ring the way the hardware would after checking: it patches the two CPL bits of
  ``hflags`` in a saved context blob, restores it, and then loads SS and CS through Unicorn's own
  descriptor loader, which fills the hidden caches and the other ``hflags`` bits from the GDT.
  The guest is put at CPL 1 this way before its first instruction, and a trap taken in user mode
  (CPL 3) reaches the guest kernel at CPL 1 the same way, always between two runs: done inside
  a hook, it corrupted the guest kernel's state now and then.  Offsets inside the blob are found at
  start-up (``_Offsets``), not hard-coded.
* **Exceptions.**  With an INTR hook the IDT is never used.  The error code, "was it an ``int``"
  and the "exception in flight" marker live only in the blob; the last must be cleared after every
  fault we handle, or the next fault is reported as a double fault and the one after that is a
  silent triple fault.
* **Stopping.**  ``emu_stop`` from another thread is lost if it lands in the first microseconds
  of ``emu_start``; ``guest`` therefore checks its own stop flag before each run and repeats the
  stop until the run returns.  ``emu_start`` writes EIP from ``begin``, so we pass the current EIP.
* **Stops land between blocks only.**  Unicorn 2.1.4 looks for a pending stop at the start of
  every translated block and also after every guest memory access, and a stop caught after a
  store rewinds EIP to the storing instruction, whose write has already happened: resuming runs
  it again, so a read-modify-write (``addl $4, 4(%esp)``) adds twice.  (Measured: a third of the
  stops from another thread replayed a store in a loop built that way; a guest OS went wrong
  about once in 15 test runs under frequent stops.)  The translator has a switch that emits no
  per-access check, ``uc->no_exit_request``, which the API does not expose.  Each engine sets it
  before its first translation (its place in the engine is read from the code of
  ``check_exit_request``, and checked at start-up: a stop on a store must land after it); a
  stop then takes effect at the next block start, where the block before it has fully run.
  So a stop asked for inside an instruction hook lets the rest of that block run first (see
  ``guest._refuse``); traps and hypercalls stop at once, as they leave the block anyway.
* **A hook that moves EIP ends the run.**  Once a hook has written EIP (a trap reflected, an
  interrupt delivered), Unicorn stops syncing EIP when a later stop lands between two translated
  blocks, for the rest of that ``emu_start``: a stop from another thread then leaves EIP at the
  value the hook wrote, and resuming there replays guest code.  (Measured: a guest reflecting one
  trap every 64 loops was corrupted within 40 breaks.)  So ``set_reg(EIP)`` during a run also
  stops it, and the next ``emu_start`` begins clean.
* **The MMU.**  Unicorn runs in ``UC_TLB_VIRTUAL`` mode: every TLB miss calls ``pagetables``,
  which walks the guest's own tables in Python and enforces spec 6 (see there).  A refused miss
  ends the run on the faulting instruction with ``UC_ERR_EXCEPTION``; the faulting address is
  kept in the engine (``uc->invalid_addr``, found at start-up by refusing two known addresses).
* **The GDT, out of the guest's reach.**  Unicorn reads descriptors from GDTR.base + index at
  the privilege of the code that loads a segment, through the same TLB as the guest's own
  accesses, so the GDT must be mapped somewhere, yet no guest access may reach it (every
  address in the top 4 MB must fault and kill).  QEMU keeps GDTR.base as a 64-bit value and adds
  the index without truncating, while 32-bit code can only form 32-bit linear addresses.  So the
  Host's GDT page is mapped at 4 GB (``GDT_VADDR``): ``uc_reg_write`` truncates the base to 32
  bits in this mode, so the Host writes it into a saved context blob.  (The guest's ``sgdt``
  shows base 0.)  ``until`` is an address inside that page too: no guest EIP can equal it, and
  Unicorn's invalidation of the code at ``until - 1`` when a run ends finds it mapped.
"""

from __future__ import annotations

import ctypes
import enum
import struct
from typing import Any, Final, Protocol

import unicorn as _unicorn_module
from unicorn import unicorn_const as uc_const
from unicorn import x86_const as x86

from lguestfs.abi import (
    GDT_ENTRIES,
    GUEST_CS,
    GUEST_DS,
    INITIAL_EFLAGS,
    PAGE_SIZE,
)
from lguestfs.memory import GuestMemory

# The binding ships Python-2-era annotations that mypy takes for its API: use it untyped.
unicorn: Any = _unicorn_module
# The binding's ctypes library: calling it directly costs 0.5 µs, the binding's wrappers 2 µs.
_uclib: Any = unicorn.unicorn_py3.unicorn.uclib

# Registers the hot paths read and write (Unicorn ids).
EAX: Final = x86.UC_X86_REG_EAX
EBX: Final = x86.UC_X86_REG_EBX
ECX: Final = x86.UC_X86_REG_ECX
EDX: Final = x86.UC_X86_REG_EDX
ESI: Final = x86.UC_X86_REG_ESI
EDI: Final = x86.UC_X86_REG_EDI
EBP: Final = x86.UC_X86_REG_EBP
ESP: Final = x86.UC_X86_REG_ESP
EIP: Final = x86.UC_X86_REG_EIP
EFLAGS: Final = x86.UC_X86_REG_EFLAGS
CS: Final = x86.UC_X86_REG_CS
SS: Final = x86.UC_X86_REG_SS
DS: Final = x86.UC_X86_REG_DS
ES: Final = x86.UC_X86_REG_ES
FS: Final = x86.UC_X86_REG_FS
GS: Final = x86.UC_X86_REG_GS

# The Host's page, the GDT Unicorn uses, sits above 4 GB: see the module notes.
GDT_VADDR: Final = 0x1_0000_0000
STOP_ADDR: Final = GDT_VADDR + PAGE_SIZE - 1  # emu_start's ``until``: mapped, and no guest EIP
_CR0_PG: Final = 0x80000000
_HF_CPL_MASK: Final = 3
_HF_PE_MASK: Final = 0x80  # hflags mirrors CR0.PE here
_MMU_ERRORS: Final = frozenset(
    {
        uc_const.UC_ERR_READ_UNMAPPED,
        uc_const.UC_ERR_WRITE_UNMAPPED,
        uc_const.UC_ERR_FETCH_UNMAPPED,
        uc_const.UC_ERR_EXCEPTION,
    }
)
_TLB_FLUSH: Final = (uc_const.UC_CTL_IO_WRITE << 30) | uc_const.UC_CTL_TLB_FLUSH


class CpuError(Exception):
    """Unicorn refused something the Host asked of it (a bad selector for a ring change, ...)."""


class _Offsets:
    """Where the fields we need sit inside a ``uc_context_save`` blob of this libunicorn, and
    the two we need inside its engine (``no_exit_request``, the faulting address).

    QEMU's ``CPUX86State`` starts with the 16 general registers, then ``eip``, ``eflags``, three
    ``cc_*`` words, ``cc_op``, ``df`` and ``hflags``; and ``error_code``, ``exception_is_int``,
    ``exception_next_eip`` sit together with ``old_exception`` 112 bytes after ``error_code``.
    We find ``eip`` and ``error_code`` by planting values, derive the rest, and check each
    derived field against a value we know, so a differently built library fails loudly here
    instead of corrupting guests later.
    """

    def __init__(self) -> None:
        uc = unicorn.Uc(uc_const.UC_ARCH_X86, uc_const.UC_MODE_32)
        uc.mem_map(0, 0x10000)
        uc.reg_write(EIP, 0x13579BDF)
        blob = bytes(uc.context_save())
        self.eip = _find_u32(blob, 0x13579BDF)
        self.hflags = self.eip + 48
        eflags = int.from_bytes(blob[self.eip + 8 : self.eip + 12], "little")
        hflags = int.from_bytes(blob[self.hflags : self.hflags + 4], "little")
        protected = bool(uc.reg_read(x86.UC_X86_REG_CR0) & 1)
        if eflags != uc.reg_read(EFLAGS) or bool(hflags & _HF_PE_MASK) != protected:
            raise CpuError("libunicorn's CPU state layout is not the one this Host knows")
        uc.reg_write(x86.UC_X86_REG_GDTR, (0, 0xABCD0000, 0xFF, 0))
        self.gdt_base = _find_u32(bytes(uc.context_save()), 0xABCD0000)
        self.error_code = self._calibrate_error_code()
        self.exception_is_int = self.error_code + 4
        self.old_exception = self.error_code + 112
        self.no_exit_request = _no_exit_request_offset()
        self.fault_address = self._calibrate_fault_address()
        if _stop_on_a_store(None) != (0x1000, 1) or _stop_on_a_store(self) != (0x2000, 1):
            raise CpuError("libunicorn does not stop the way this Host knows (no_exit_request)")

    def _calibrate_fault_address(self) -> int:
        """Refuse a store and a push; the 8 bytes of the engine that held each faulting address.

        (Another field holds the store's address too, but not the push's: ESP before it.)
        """
        found: set[int] | None = None
        for code, address in (
            (b"\xa3" + struct.pack("<I", 0x5678), 0x5678),  # mov %eax, (0x5678)
            (b"\xbc\x10\x90\x00\x00\x50", 0x900C),  # mov $0x9010, %esp; push %eax
        ):
            engine = _engine_after_a_refused_access(code, address, self)
            word = address.to_bytes(8, "little")
            here = {o for o in range(0, len(engine) - 8, 8) if engine[o : o + 8] == word}
            found = here if found is None else found & here
        if found is None or len(found) != 1:
            raise CpuError("cannot find the faulting address inside libunicorn's engine")
        return found.pop()

    def _calibrate_error_code(self) -> int:
        """Load a bad selector (#GP with that selector as error code) twice; intersect."""
        found: set[int] | None = None
        for selector in (0x7F8, 0x7F0):
            uc = unicorn.Uc(uc_const.UC_ARCH_X86, uc_const.UC_MODE_32)
            uc.mem_map(0, 0x10000)
            uc.mem_write(
                0x1000, bytes(8) + struct.pack("<II", 0x0000FFFF, 0x00CF9300)
            )  # null, data
            uc.reg_write(x86.UC_X86_REG_GDTR, (0, 0x1000, 15, 0))
            uc.reg_write(x86.UC_X86_REG_CR0, uc.reg_read(x86.UC_X86_REG_CR0) | 1)
            # mov $selector, %ax; mov %ax, %ds; hlt
            code = b"\x66\xb8" + selector.to_bytes(2, "little") + b"\x8e\xd8\xf4"
            uc.mem_write(0x2000, code)
            blobs: list[bytes] = []

            def on_gp(u: Any, _intno: int, _data: Any, blobs: list[bytes] = blobs) -> None:
                blobs.append(bytes(u.context_save()))
                u.emu_stop()

            uc.hook_add(uc_const.UC_HOOK_INTR, on_gp)
            uc.emu_start(0x2000, 0x2000 + len(code))
            if len(blobs) != 1:
                raise CpuError("libunicorn did not report #GP for a bad selector")
            here = {
                o
                for o in range(0, len(blobs[0]) - 4, 4)
                if blobs[0][o : o + 4] == selector.to_bytes(4, "little")
            }
            found = here if found is None else found & here
        candidates = sorted(
            o for o in (found or set()) if blobs[0][o + 112 : o + 116] == (13).to_bytes(4, "little")
        )
        if len(candidates) != 1:
            raise CpuError("cannot find the error code inside libunicorn's CPU state")
        return candidates[0]


def _no_exit_request_offset() -> int:
    """Where ``uc->no_exit_request`` sits in the engine: the byte the x86 translator's
    ``check_exit_request`` tests first (``mov d32(%rdi),%rsi; cmpb $0,d32(%rsi); je``)."""
    address = ctypes.cast(_uclib.check_exit_request_x86_64, ctypes.c_void_p).value
    assert address is not None
    code = ctypes.string_at(address, 15)
    if code[0:3] != b"\x48\x8b\xb7" or code[7:9] != b"\x80\xbe" or code[13:15] != b"\x00\x74":
        raise CpuError(f"unexpected code in libunicorn's check_exit_request: {code.hex()}")
    return int.from_bytes(code[9:13], "little", signed=True)


def _stop_on_a_store(offsets: _Offsets | None) -> tuple[int, int]:
    """(EIP, counter) after a memory-write hook stops ``addl $1, (0x3000)`` at 0x1000.

    Stock 2.1.4 gives (0x1000, 1): the add is done and EIP is back on it.  With the per-access
    checks off (``offsets`` given) the stop lands at the next block: (0x2000, 1).
    """
    uc = unicorn.Uc(uc_const.UC_ARCH_X86, uc_const.UC_MODE_32)
    if offsets is not None:
        _disable_exit_checks(uc._uch.value, offsets)
    uc.mem_map(0, 0x10000)
    # 0x1000: addl $1, (0x3000); nop; jmp 0x2000        0x2000: jmp 0x1000
    uc.mem_write(0x1000, bytes.fromhex("8305003000000190e9") + struct.pack("<i", 0x2000 - 0x100D))
    uc.mem_write(0x2000, b"\xe9" + struct.pack("<i", 0x1000 - 0x2005))
    uc.hook_add(uc_const.UC_HOOK_MEM_WRITE, lambda u, *_: u.emu_stop(), begin=0x3000, end=0x3003)
    uc.emu_start(0x1000, 0xFFFF)
    return uc.reg_read(EIP), int.from_bytes(uc.mem_read(0x3000, 4), "little")


def _engine_after_a_refused_access(code: bytes, address: int, offsets: _Offsets) -> bytes:
    """The first 16 KiB of an engine that ran ``code`` and had ``address``'s page refused."""
    uc = unicorn.Uc(uc_const.UC_ARCH_X86, uc_const.UC_MODE_32)
    _disable_exit_checks(uc._uch.value, offsets)
    uc.ctl_set_tlb_mode(uc_const.UC_TLB_VIRTUAL)

    def fill(_u: Any, vaddr: int, _access: int, entry: Any, _data: Any) -> bool:
        if vaddr >> 12 == address >> 12:
            return False
        entry.paddr, entry.perms = vaddr, uc_const.UC_PROT_ALL
        return True

    uc.hook_add(uc_const.UC_HOOK_TLB_FILL, fill)
    uc.mem_map(0, 0x10000)
    uc.mem_write(0x1000, code + b"\xf4")  # ...; hlt
    status = _uclib.uc_emu_start(uc._uch, 0x1000, 0x1001 + len(code), 0, 0)
    if status != uc_const.UC_ERR_EXCEPTION:
        raise CpuError("libunicorn does not end a run on a refused translation")
    return ctypes.string_at(uc._uch.value, 0x4000)


def _disable_exit_checks(handle: int, offsets: _Offsets) -> None:
    """Set ``no_exit_request`` (see the module notes); before the engine translates anything."""
    ctypes.c_uint8.from_address(handle + offsets.no_exit_request).value = 1


def _find_u32(blob: bytes, value: int) -> int:
    offset = blob.find(value.to_bytes(4, "little"))
    if offset < 0:
        raise CpuError("cannot find a planted register inside libunicorn's CPU state")
    return offset


_offsets: _Offsets | None = None


def _blob_offsets() -> _Offsets:
    global _offsets
    if _offsets is None:
        _offsets = _Offsets()
    return _offsets


class RunEnd(enum.Enum):
    """Why ``Cpu.run`` returned."""

    STOPPED = "stopped"  # a hook or another thread stopped it, or a hook raised (re-raised by run)
    MMU = "mmu"  # pagetables refused a translation (or an access left guest memory): it knows why


class CpuHooks(Protocol):
    """What the Host does when Unicorn calls back (all on the guest thread, inside ``run``)."""

    def on_tlb_fill(self, vaddr: int, access: int, entry: Any) -> bool:
        """A TLB miss on the page at ``vaddr``: set ``entry.paddr``/``entry.perms`` and return
        True, or return False to refuse it (the run ends on the faulting instruction)."""

    def on_trap(self, intno: int) -> None:
        """An ``int`` instruction or an exception (never delivered through an IDT)."""

    def on_invalid_instruction(self) -> bool:
        """#UD; return True to go on at the (possibly changed) EIP."""

    def on_port_in(self, port: int, size: int) -> int:
        """``in``: the value for AL/AX/EAX."""

    def on_port_out(self, port: int, size: int, value: int) -> None:
        """``out``."""

    def on_unmapped(self, address: int) -> bool:
        """An access to a physical address outside every mapping (never allowed)."""

    def on_sysenter(self) -> None:
        """``sysenter`` (Unicorn would run it as a no-op)."""

    def on_syscall(self) -> None:
        """``syscall`` (Unicorn would run it as a no-op)."""


_INTR_CFUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
_TLB_FILL_CFUNC = ctypes.CFUNCTYPE(
    ctypes.c_bool,
    ctypes.c_void_p,
    ctypes.c_uint64,
    ctypes.c_int,
    ctypes.POINTER(unicorn.unicorn_py3.unicorn.uc_tlb_entry),
    ctypes.c_void_p,
)
_HYPERCALL_REGS: Final = (CS, EAX, EDX, EBX, ECX)
_HYPERCALL_FORMAT: Final = struct.Struct("<5Q")


def _fast(name: str, *argtypes: Any) -> Any:
    """A libunicorn function taking plain integers: ctypes converts ints far faster than the
    binding's pointer-typed prototypes (0.4 µs a call instead of 1.2)."""
    address = ctypes.cast(getattr(_uclib, name), ctypes.c_void_p).value
    assert address is not None
    return ctypes.CFUNCTYPE(ctypes.c_int, *argtypes)(address)


_P, _I = ctypes.c_void_p, ctypes.c_int
_reg_read = _fast("uc_reg_read", _P, _I, _P)
_reg_write = _fast("uc_reg_write", _P, _I, _P)
_reg_read_batch = _fast("uc_reg_read_batch", _P, _P, _P, _I)
_context_save = _fast("uc_context_save", _P, _P)
_context_restore = _fast("uc_context_restore", _P, _P)
_emu_stop = _fast("uc_emu_stop", _P)
_ctl = _fast("uc_ctl", _P, _I)


class Cpu:
    """One Unicorn x86 CPU in 32-bit protected mode, with the guest's memory at physical 0."""

    def __init__(self, memory: GuestMemory, hooks: CpuHooks) -> None:
        self._offsets = _blob_offsets()
        uc = unicorn.Uc(uc_const.UC_ARCH_X86, uc_const.UC_MODE_32)
        _disable_exit_checks(uc._uch.value, self._offsets)
        self.uc: Any = uc
        self._uch = uc._uch
        uc.ctl_set_tlb_mode(uc_const.UC_TLB_VIRTUAL)
        uc.mem_map_ptr(0, memory.size, uc_const.UC_PROT_ALL, memory.address)
        # The Host's page lives just above guest memory (4 MB aligned) in Unicorn's physical space;
        # only pagetables' switcher mapping reaches it, read-only.
        self.host_page = (memory.size + 0x3FFFFF) & ~0x3FFFFF
        uc.mem_map(self.host_page, PAGE_SIZE, uc_const.UC_PROT_ALL)
        self._handle: int = uc._uch.value
        self._running = False  # inside run(): hooks are being called
        self._install_hooks(hooks)
        self._value = ctypes.c_uint64()
        self._value_addr = ctypes.addressof(self._value)
        self._batch_ids = (ctypes.c_int32 * len(_HYPERCALL_REGS))(*_HYPERCALL_REGS)
        self._batch_values = (ctypes.c_uint64 * len(_HYPERCALL_REGS))()
        base = ctypes.addressof(self._batch_values)
        self._batch_refs = (ctypes.c_void_p * len(_HYPERCALL_REGS))(
            *(base + 8 * i for i in range(len(_HYPERCALL_REGS)))
        )
        self._batch_ids_addr = ctypes.addressof(self._batch_ids)
        self._batch_refs_addr = ctypes.addressof(self._batch_refs)
        self._context = unicorn.unicorn_py3.unicorn.uc_context()
        if _uclib.uc_context_alloc(self._uch, ctypes.byref(self._context)) != uc_const.UC_ERR_OK:
            raise CpuError("uc_context_alloc failed")
        self._context_addr: int = self._context.value or 0

    def _install_hooks(self, hooks: CpuHooks) -> None:
        """INTR and TLB fill are hot: raw ctypes callbacks, not the binding's wrapped ones.

        A Python exception cannot cross a ctypes callback, so each raw hook keeps the first one
        and stops the CPU; ``run`` raises it.  The rare hooks go through the binding, which
        does the same with its own ``_hook_exception``.
        """
        self._hook_error: BaseException | None = None

        def on_interrupt(_uc: int, intno: int, _data: int) -> None:
            try:
                hooks.on_trap(intno)
            except BaseException as e:
                self._hook_failed(e)

        def on_tlb_fill(_uc: int, vaddr: int, access: int, entry: Any, _data: int) -> bool:
            try:
                return hooks.on_tlb_fill(vaddr, access, entry.contents)
            except BaseException as e:
                self._hook_failed(e)
                return False

        self._raw_hooks = (_INTR_CFUNC(on_interrupt), _TLB_FILL_CFUNC(on_tlb_fill))
        for htype, callback in zip(
            (uc_const.UC_HOOK_INTR, uc_const.UC_HOOK_TLB_FILL), self._raw_hooks, strict=True
        ):
            handle = unicorn.unicorn_py3.unicorn.uc_hook_h()
            status = _uclib.uc_hook_add(
                self._uch,
                ctypes.byref(handle),
                htype,
                ctypes.cast(callback, ctypes.c_void_p),
                None,
                1,
                0,
            )
            if status != uc_const.UC_ERR_OK:
                raise CpuError(f"uc_hook_add({htype}) failed: {status}")
        uc = self.uc
        uc.hook_add(uc_const.UC_HOOK_INSN_INVALID, lambda _u, _d: hooks.on_invalid_instruction())
        uc.hook_add(
            uc_const.UC_HOOK_INSN,
            lambda _u, port, size, _d: hooks.on_port_in(port, size),
            aux1=x86.UC_X86_INS_IN,
        )
        uc.hook_add(
            uc_const.UC_HOOK_INSN,
            lambda _u, port, size, value, _d: hooks.on_port_out(port, size, value),
            aux1=x86.UC_X86_INS_OUT,
        )
        uc.hook_add(
            uc_const.UC_HOOK_INSN, lambda _u, _d: hooks.on_sysenter(), aux1=x86.UC_X86_INS_SYSENTER
        )
        uc.hook_add(
            uc_const.UC_HOOK_INSN, lambda _u, _d: hooks.on_syscall(), aux1=x86.UC_X86_INS_SYSCALL
        )
        uc.hook_add(
            uc_const.UC_HOOK_MEM_UNMAPPED,
            lambda _u, _access, address, _size, _value, _d: hooks.on_unmapped(address),
        )

    def _hook_failed(self, error: BaseException) -> None:
        if self._hook_error is None:
            self._hook_error = error
        self.stop()

    # --- registers, through the C library directly (the binding's reg_read costs 2 µs) -----------

    def reg(self, reg_id: int) -> int:
        self._value.value = 0  # a 16-bit register (CS, SS...) only fills the low bytes
        _reg_read(self._handle, reg_id, self._value_addr)
        return self._value.value & 0xFFFFFFFF

    def set_reg(self, reg_id: int, value: int) -> None:
        self._value.value = value & 0xFFFFFFFF
        if _reg_write(self._handle, reg_id, self._value_addr) != uc_const.UC_ERR_OK:
            raise CpuError(f"cannot load register {reg_id} with {value:#x}")
        if reg_id == EIP and self._running:
            _emu_stop(self._handle)  # a hook moved EIP: end the run (see the module notes)

    def cpl(self) -> int:
        return self.reg(CS) & 3

    def hypercall_regs(self) -> tuple[int, int, int, int, int]:
        """CS, EAX, EDX, EBX, ECX in one call: what a hypercall needs."""
        _reg_read_batch(self._handle, self._batch_ids_addr, self._batch_refs_addr, 5)
        cs, eax, edx, ebx, ecx = _HYPERCALL_FORMAT.unpack_from(self._batch_values)
        return cs & 0xFFFF, eax & 0xFFFFFFFF, edx & 0xFFFFFFFF, ebx & 0xFFFFFFFF, ecx & 0xFFFFFFFF

    # --- the hidden state only the context blob holds ------------------------------------------

    def _save(self) -> None:
        _context_save(self._handle, self._context_addr)

    def _restore(self) -> None:
        _context_restore(self._handle, self._context_addr)

    def _blob_int(self, offset: int) -> ctypes.c_int32:
        return ctypes.c_int32.from_address(self._context_addr + offset)

    def exception_info(self) -> tuple[int, bool]:
        """(error code, raised by an ``int`` instruction?) of the exception being handled."""
        self._save()
        return self._blob_int(self._offsets.error_code).value, bool(
            self._blob_int(self._offsets.exception_is_int).value
        )

    def clear_old_exception(self) -> None:
        """Forget the exception in flight, so the next fault is not taken for a double fault."""
        self._save()
        self._blob_int(self._offsets.old_exception).value = -1
        self._restore()

    def enter(self, cs: int, ss: int, esp: int, eip: int, eflags: int) -> None:
        """Load CS:EIP, SS:ESP and EFLAGS as a privilege change would (see the module notes).

        The CPL becomes ``ss & 3``; SS and CS go through Unicorn's descriptor checks against
        the Host GDT, which raise ``CpuError`` for a selector the hardware would refuse.
        """
        self._save()
        hflags = self._blob_int(self._offsets.hflags)
        hflags.value = (hflags.value & ~_HF_CPL_MASK) | (ss & 3)
        self._restore()
        self.set_reg(SS, ss)
        self.set_reg(CS, cs)
        self.set_reg(ESP, esp)
        self.set_reg(EIP, eip)
        self.set_reg(EFLAGS, eflags)

    # --- set-up ------------------------------------------------------------------------------

    def start(self, gdt: bytes, eip: int) -> None:
        """The state of spec 7.1: flat DPL-1 segments, paging on, EFLAGS 0x202, CPL 1 at ``eip``."""
        self.load_gdt(gdt)
        self.uc.reg_write(x86.UC_X86_REG_GDTR, (0, 0, GDT_ENTRIES * 8 - 1, 0))
        self._save()
        ctypes.c_uint64.from_address(self._context_addr + self._offsets.gdt_base).value = GDT_VADDR
        self._restore()
        self.uc.reg_write(x86.UC_X86_REG_CR0, self.uc.reg_read(x86.UC_X86_REG_CR0) | 1 | _CR0_PG)
        self.enter(GUEST_CS, GUEST_DS, 0, eip, INITIAL_EFLAGS)
        for seg in (DS, ES):
            self.set_reg(seg, GUEST_DS)
        for seg in (FS, GS):
            self.set_reg(seg, 0)
        for reg in (EAX, EBX, ECX, EDX, ESI, EDI, EBP):
            self.set_reg(reg, 0)

    def load_gdt(self, gdt: bytes) -> None:
        """Write the Host GDT (all 32 entries, already fixed up by ``segments``)."""
        self.uc.mem_write(self.host_page, gdt)

    # --- running -----------------------------------------------------------------------------

    def run(self) -> RunEnd:
        """Run from the current EIP until stopped; an exception raised by a hook propagates."""
        self._running = True
        try:
            status = _uclib.uc_emu_start(self._uch, self.reg(EIP), STOP_ADDR, 0, 0)
        finally:
            self._running = False
        raised = self._hook_error or self.uc._hook_exception
        if raised is not None:
            self._hook_error = self.uc._hook_exception = None
            raise raised
        if status == uc_const.UC_ERR_OK:
            return RunEnd.STOPPED
        if status in _MMU_ERRORS:
            return RunEnd.MMU
        raise unicorn.UcError(status)

    def stop(self) -> None:
        """Ask a running ``run`` to return (from any thread; lost if it lands too early)."""
        _emu_stop(self._handle)

    def flush_tlb(self) -> None:
        _ctl(self._handle, _TLB_FLUSH)

    def fault_address(self) -> int:
        """The address whose translation ``pagetables`` refused, ending the last run."""
        return ctypes.c_uint64.from_address(self._handle + self._offsets.fault_address).value

    def close(self) -> None:
        """Free the Unicorn instance; the guest's memory must outlive this call."""
        if self._context_addr:
            _uclib.uc_context_free(self._context)
            self._context_addr = 0
        self.uc._Uc__finalizer()
