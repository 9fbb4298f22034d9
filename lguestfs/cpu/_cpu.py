"""The ``Cpu``: one Unicorn engine as the guest's i386 CPU, driven through libunicorn directly.

The hot calls (registers, stop, the INTR hook) go to the C library through ctypes prototypes
taking plain integers (``_binding``); a TLB miss is answered in C from the shadow page table
(``_hooks``), as are the common traps and page-table hypercalls, Python being called only for
what needs a decision; the hidden state is read and written live, in the engine's ``env``, at
the offsets ``_calibrate`` measured.  Why each of these is needed is in ``lguestfs.cpu``.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any, Final, Protocol

from lguestfs.abi import (
    GDT_ENTRIES,
    GUEST_CS,
    GUEST_DS,
    GUEST_PL,
    HCALL_SLOT_BYTES,
    HCALL_STATUS_DONE,
    IDT_TYPE_INTERRUPT_GATE,
    IDT_TYPE_TRAP_GATE,
    INITIAL_EFLAGS,
    LD_CR2,
    LD_HCALL_STATUS,
    LD_HCALLS,
    LD_IRQ_ENABLED,
    LGUEST_TRAP_ENTRY,
    LHCALL_FLUSH_ASYNC,
    LHCALL_RING_SIZE,
    LHCALL_SET_PMD,
    LHCALL_SET_PTE,
    PAGE_SHIFT,
    PAGE_SIZE,
    PDE_ALLOWED_FLAGS,
    PF_ERR_PRESENT,
    PF_ERR_USER,
    PF_ERR_WRITE,
    PTE_ACCESSED,
    PTE_DIRTY,
    PTE_GLOBAL,
    PTE_PRESENT,
    PTE_PSE,
    PTE_PWT,
    PTE_RW,
    PTE_USER,
    SHADOW_CACHE,
    SWITCHER_PDE,
    SYSCALL_VECTOR,
    TRAP_PF,
    X86_EFLAGS_IF,
)
from lguestfs.cpu._binding import CpuError, const, handle, new_uc, unicorn, x86_const
from lguestfs.cpu._calibrate import HF_CPL_MASK, calibrate
from lguestfs.cpu._hooks import FILL, STATE_SIZE, TRAP
from lguestfs.memory import GuestMemory

# Registers the hot paths read and write (Unicorn ids).
EAX: Final[int] = x86_const.UC_X86_REG_EAX
EBX: Final[int] = x86_const.UC_X86_REG_EBX
ECX: Final[int] = x86_const.UC_X86_REG_ECX
EDX: Final[int] = x86_const.UC_X86_REG_EDX
ESI: Final[int] = x86_const.UC_X86_REG_ESI
EDI: Final[int] = x86_const.UC_X86_REG_EDI
EBP: Final[int] = x86_const.UC_X86_REG_EBP
ESP: Final[int] = x86_const.UC_X86_REG_ESP
EIP: Final[int] = x86_const.UC_X86_REG_EIP
EFLAGS: Final[int] = x86_const.UC_X86_REG_EFLAGS
CS: Final[int] = x86_const.UC_X86_REG_CS
SS: Final[int] = x86_const.UC_X86_REG_SS
DS: Final[int] = x86_const.UC_X86_REG_DS
ES: Final[int] = x86_const.UC_X86_REG_ES
FS: Final[int] = x86_const.UC_X86_REG_FS
GS: Final[int] = x86_const.UC_X86_REG_GS
_CR0: Final[int] = x86_const.UC_X86_REG_CR0

# What a TLB fill is told and answers (``pagetables``).
ACCESS_WRITE: Final[int] = const.UC_MEM_WRITE
PROT_RX: Final[int] = const.UC_PROT_READ | const.UC_PROT_EXEC
PROT_WRITE: Final[int] = const.UC_PROT_WRITE

# The Host's page, the GDT Unicorn uses, sits above 4 GB: see the facts in ``lguestfs.cpu``.
GDT_VADDR: Final = 0x1_0000_0000
STOP_ADDR: Final = GDT_VADDR + PAGE_SIZE - 1  # emu_start's ``until``: mapped, and no guest EIP
_CR0_PE: Final = 1
_CR0_TS: Final = 8
_CR0_PG: Final = 0x80000000
# How a run ends: stopped (OK), or a hook refused a translation or an access outside guest memory
# (the hook that refused knows why: it killed the guest).
_RUN_ENDS: Final = frozenset(
    {
        const.UC_ERR_OK,
        const.UC_ERR_READ_UNMAPPED,
        const.UC_ERR_WRITE_UNMAPPED,
        const.UC_ERR_FETCH_UNMAPPED,
        const.UC_ERR_EXCEPTION,
    }
)
_TLB_FLUSH: Final = (const.UC_CTL_IO_WRITE << 30) | const.UC_CTL_TLB_FLUSH
# Unicorn (QEMU) sizes its TLB only when it is flushed, growing it when it was >70% full; it
# starts at 256 entries.  A guest whose working set is larger misses on every access until
# something flushes: after this many misses the fill stops the CPU and ``run`` flushes, so the
# TLB can grow.
TLB_GROW_FILLS: Final = 4096
_HYPERCALL_REGS: Final = (CS, EAX, EDX, EBX, ECX)  # what a hypercall reads
_TRAP_REGS: Final = (SS, ESP, EFLAGS, CS, EIP)  # what a trap frame holds
_ENTER_REGS: Final = (SS, CS, ESP, EIP, EFLAGS)  # a privilege change, in the hardware's order
_JUMP_REGS: Final = (ESP, CS, EIP)  # a trap taken at the same level


class _RegBatch:
    """Registers read or written in one call into the library (``uc_reg_*_batch``)."""

    def __init__(self, lib: Any, handle: int, ids: tuple[int, ...]) -> None:
        self._lib, self._handle, self._count = lib, handle, len(ids)
        self._ids = (ctypes.c_int32 * len(ids))(*ids)
        self._values = (ctypes.c_uint64 * len(ids))()
        base = ctypes.addressof(self._values)
        self._refs = (ctypes.c_void_p * len(ids))(*(base + 8 * i for i in range(len(ids))))
        self._ids_addr, self._refs_addr = ctypes.addressof(self._ids), ctypes.addressof(self._refs)
        # A read fills the low 4 bytes of a slot (2 for a segment register), the rest stays 0.
        self._format = struct.Struct("<" + "I4x" * len(ids))

    def read(self) -> tuple[int, ...]:
        self._lib.reg_read_batch(self._handle, self._ids_addr, self._refs_addr, self._count)
        return self._format.unpack_from(self._values)

    def write(self, *values: int) -> None:
        """Load the registers (a batch is either read or written, never both).  A register
        takes the low 32 bits of its slot, so a value needs no masking (ctypes wraps it)."""
        self._values[:] = list(values)
        status = self._lib.reg_write_batch(
            self._handle, self._ids_addr, self._refs_addr, self._count
        )
        if status != const.UC_ERR_OK:
            raise CpuError(f"cannot load registers {tuple(self._ids)} with {values}: {status}")


class _Shadow(ctypes.Structure):
    """``struct shadow``: one cached shadow as the C hypercalls see it (``Cpu.cache_shadows``)."""

    _fields_ = (("ptes", ctypes.c_void_p), ("tables", ctypes.c_void_p), ("gpgdir", ctypes.c_uint64))


class _HookState(ctypes.Structure):
    """``struct hook_state`` of ``_hooks.c``: what the C hooks read (see there)."""

    _fields_ = (
        ("ptes", ctypes.c_void_p),
        ("tables", ctypes.c_void_p),
        ("hflags", ctypes.c_void_p),
        ("memory", ctypes.c_void_p),
        ("pfnlimit", ctypes.c_uint64),
        ("gpgdir", ctypes.c_uint64),
        ("pages", ctypes.c_uint64),
        ("host_vaddr", ctypes.c_uint64),
        ("host_paddr", ctypes.c_uint64),
        ("slow_fill", ctypes.c_void_p),
        ("slow_trap", ctypes.c_void_p),
        ("stop", ctypes.c_void_p),
        ("fills", ctypes.c_uint64),
        ("stop_at_fills", ctypes.c_uint64),
        ("guest_page_fault", ctypes.c_uint32),
        ("access_write", ctypes.c_int32),
        ("prot_rx", ctypes.c_uint32),
        ("prot_write", ctypes.c_uint32),
        ("cpl_mask", ctypes.c_uint32),
        ("page_shift", ctypes.c_uint32),
        ("pte_present", ctypes.c_uint32),
        ("pte_rw", ctypes.c_uint32),
        ("pte_user", ctypes.c_uint32),
        ("pte_accessed", ctypes.c_uint32),
        ("pte_dirty", ctypes.c_uint32),
        ("pte_global", ctypes.c_uint32),
        ("pte_refused", ctypes.c_uint32),
        ("pde_allowed", ctypes.c_uint32),
        ("switcher_pde", ctypes.c_uint32),
        ("err_present", ctypes.c_uint32),
        ("err_write", ctypes.c_uint32),
        ("err_user", ctypes.c_uint32),
        ("read_regs", ctypes.c_void_p),
        ("write_regs", ctypes.c_void_p),
        ("idt", ctypes.c_void_p),
        ("error_code", ctypes.c_void_p),
        ("exception_is_int", ctypes.c_void_p),
        ("old_exception", ctypes.c_void_p),
        ("fault_address", ctypes.c_void_p),
        ("lguest_data", ctypes.c_uint64),
        ("traps", ctypes.c_uint64),
        ("page_faults", ctypes.c_uint64),
        ("irqs_pending", ctypes.c_uint32),
        ("traps_to_python", ctypes.c_uint32),
        ("ss1", ctypes.c_uint32),
        ("esp1", ctypes.c_uint32),
        ("trap_regs", ctypes.c_int32 * 5),
        ("enter_regs", ctypes.c_int32 * 5),
        ("jump_regs", ctypes.c_int32 * 3),
        ("trap_pf", ctypes.c_uint32),
        ("syscall_vector", ctypes.c_uint32),
        ("guest_pl", ctypes.c_uint32),
        ("guest_cs", ctypes.c_uint32),
        ("trap_gate", ctypes.c_uint32),
        ("interrupt_gate", ctypes.c_uint32),
        ("eflags_if", ctypes.c_uint32),
        ("ld_irq_enabled", ctypes.c_uint32),
        ("ld_cr2", ctypes.c_uint32),
        ("shadows", _Shadow * SHADOW_CACHE),
        ("kernel_address", ctypes.c_uint64),
        ("hypercalls", ctypes.c_void_p),
        ("other_hypercalls", ctypes.c_uint32),
        ("next_hcall", ctypes.c_uint32),
        ("ctl", ctypes.c_void_p),
        ("tlb_flush", ctypes.c_int32),
        ("flush_page", ctypes.c_void_p),
        ("cpu", ctypes.c_void_p),
        ("hypercall_regs", ctypes.c_int32 * 5),
        ("trap_entry", ctypes.c_uint32),
        ("hcall_flush_async", ctypes.c_uint32),
        ("hcall_set_pte", ctypes.c_uint32),
        ("hcall_set_pmd", ctypes.c_uint32),
        ("ld_hcall_status", ctypes.c_uint32),
        ("ld_hcalls", ctypes.c_uint32),
        ("ring_size", ctypes.c_uint32),
        ("slot_bytes", ctypes.c_uint32),
        ("status_done", ctypes.c_uint8),
    )


if ctypes.sizeof(_HookState) != STATE_SIZE:
    raise ImportError(f"_hooks.c's state is {STATE_SIZE} bytes, its mirror here {_HookState}")


def hook_state(
    memory: GuestMemory, *, hflags: int, host_page: int, stop: int, guest_page_fault: int
) -> _HookState:
    """The C fill's state for ``memory``, reading the CPL at address ``hflags``, mapping the Host's
    page at ``host_page``, stopping the CPU with the C function at ``stop`` and refusing with
    the guest's page fault as ``perms`` = ``guest_page_fault``; the shadow comes later
    (``Cpu.fill_from``), and what the C trap needs from ``Cpu`` itself.  (Also how
    ``tests/test_host_fill.py`` runs the C fill alone.)"""
    return _HookState(
        hflags=hflags,
        memory=memory.address,
        pfnlimit=memory.pfnlimit,
        host_vaddr=GDT_VADDR,
        host_paddr=host_page,
        stop=stop,
        stop_at_fills=TLB_GROW_FILLS,
        guest_page_fault=guest_page_fault,
        access_write=ACCESS_WRITE,
        prot_rx=PROT_RX,
        prot_write=PROT_WRITE,
        cpl_mask=HF_CPL_MASK,
        page_shift=PAGE_SHIFT,
        pte_present=PTE_PRESENT,
        pte_rw=PTE_RW,
        pte_user=PTE_USER,
        pte_accessed=PTE_ACCESSED,
        pte_dirty=PTE_DIRTY,
        pte_global=PTE_GLOBAL,
        pte_refused=PTE_PWT | PTE_PSE,
        pde_allowed=PDE_ALLOWED_FLAGS,
        switcher_pde=SWITCHER_PDE,
        err_present=PF_ERR_PRESENT,
        err_write=PF_ERR_WRITE,
        err_user=PF_ERR_USER,
        trap_regs=(ctypes.c_int32 * 5)(*_TRAP_REGS),
        enter_regs=(ctypes.c_int32 * 5)(*_ENTER_REGS),
        jump_regs=(ctypes.c_int32 * 3)(*_JUMP_REGS),
        trap_pf=TRAP_PF,
        syscall_vector=SYSCALL_VECTOR,
        guest_pl=GUEST_PL,
        guest_cs=GUEST_CS,
        trap_gate=IDT_TYPE_TRAP_GATE,
        interrupt_gate=IDT_TYPE_INTERRUPT_GATE,
        eflags_if=X86_EFLAGS_IF,
        ld_irq_enabled=LD_IRQ_ENABLED,
        ld_cr2=LD_CR2,
        tlb_flush=_TLB_FLUSH,
        hypercall_regs=(ctypes.c_int32 * 5)(*_HYPERCALL_REGS),
        trap_entry=LGUEST_TRAP_ENTRY,
        hcall_flush_async=LHCALL_FLUSH_ASYNC,
        hcall_set_pte=LHCALL_SET_PTE,
        hcall_set_pmd=LHCALL_SET_PMD,
        ld_hcall_status=LD_HCALL_STATUS,
        ld_hcalls=LD_HCALLS,
        ring_size=LHCALL_RING_SIZE,
        slot_bytes=HCALL_SLOT_BYTES,
        status_done=HCALL_STATUS_DONE,
    )


def _address(function: Any) -> int:
    """The C address of a ctypes function object."""
    return ctypes.cast(function, ctypes.c_void_p).value or 0


class CpuHooks(Protocol):
    """What the Host does when Unicorn calls back (all on the guest thread, inside ``run``)."""

    def on_tlb_fill(self, vaddr: int, access: int, entry: Any) -> bool:
        """A TLB miss on the page at ``vaddr`` that the C fill (``fill_from``) leaves to
        Python: set ``entry.paddr``/``entry.perms`` and return True; or return False to refuse
        it, with ``entry.perms`` = ``Cpu.guest_page_fault`` and the error code in
        ``entry.paddr`` for the guest's own page fault (``on_trap`` gets it), else the run ends
        on the faulting instruction.  EIP is not the access's during the call (the project's
        Unicorn restores it only for a refusal): never read it here."""

    def on_trap(self, intno: int) -> None:
        """An ``int`` instruction or an exception (never delivered through an IDT) that the C
        hook left to Python (``_hooks.c`` does the common hypercalls, page faults and system
        calls); a page fault a fill refused is intno 14, its CR2 ``fault_address()``.
        Registers written here (``jump``, ``enter``) take effect when the hook returns, and the
        run goes on."""

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


class _HookStateField:
    """An ``int`` attribute of the ``Cpu`` kept in the C hooks' state (``_hooks.c``)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, cpu: Cpu, owner: type) -> int:
        return int(getattr(cpu._state, self._name))

    def __set__(self, cpu: Cpu, value: int) -> None:
        setattr(cpu._state, self._name, value)


class Cpu:
    """One Unicorn x86 CPU in 32-bit protected mode, with the guest's memory at physical 0."""

    # Kept where the C hooks read, count or move them too: the guest's pending interrupts
    # (while any is, every trap and hypercall goes to ``on_trap``, which may inject one at that
    # exit; its owner sets them under its lock), the async ring's cursor (``lg->next_hcall``),
    # and the traps and page faults reflected into the guest.
    irqs_pending = _HookStateField()
    next_hcall = _HookStateField()
    traps = _HookStateField()
    page_faults = _HookStateField()

    def __init__(
        self, memory: GuestMemory, hooks: CpuHooks, *, idt: int, hypercalls: ctypes.Array[Any]
    ) -> None:
        """``idt``: the address of the guest's gates as the C trap reads them (``Idt.address``);
        ``hypercalls``: the guest's hypercall counters by number, the last for all other
        numbers, which the C hook counts in too (``Lguest.hypercall_counts``)."""
        calibration = calibrate()
        self._offsets = calibration
        lib = self._lib = calibration.binding
        uc = new_uc()
        self._handle: int = handle(uc)
        # Before the engine translates anything: stops land between blocks only (the facts).
        ctypes.c_uint8.from_address(self._handle + calibration.no_exit_request).value = 1
        self._uc: Any = uc
        self._uch = uc._uch
        uc.ctl_set_tlb_mode(const.UC_TLB_VIRTUAL)
        uc.mem_map_ptr(0, memory.size, const.UC_PROT_ALL, memory.address)
        # The Host's page lives just above guest memory (4 MB aligned) in Unicorn's physical space;
        # only pagetables' switcher mapping reaches it, read-only.
        self.host_page = (memory.size + 0x3FFFFF) & ~0x3FFFFF
        uc.mem_map(self.host_page, PAGE_SIZE, const.UC_PROT_ALL)
        # the C entry points, on the instance: the hot paths look nothing up in modules
        self._reg_read, self._reg_write = lib.reg_read, lib.reg_write
        self._emu_stop, self._ctl, self._flush_page = lib.emu_stop, lib.ctl, lib.flush_page
        self._cpu_state = ctypes.c_uint64.from_address(self._handle + calibration.cpu).value
        # The live registers (calibrated ``env``); among them hflags: the CPL without a call.
        self._env = self._cpu_state + calibration.env
        self._hflags = ctypes.c_uint32.from_address(self._env + calibration.hflags)
        self._eip = ctypes.c_uint32.from_address(self._env + calibration.eip)
        self._fault_address = ctypes.c_uint64.from_address(self._handle + calibration.fault_address)
        self._running = False  # inside run(): hooks are being called
        self._state = hook_state(
            memory,
            hflags=ctypes.addressof(self._hflags),
            host_page=self.host_page,
            stop=_address(lib.emu_stop),
            guest_page_fault=lib.guest_page_fault,
        )
        state = self._state
        state.read_regs, state.write_regs = (
            _address(lib.reg_read_batch),
            _address(lib.reg_write_batch),
        )
        state.idt = idt
        state.error_code = self._env + calibration.error_code
        state.exception_is_int = self._env + calibration.exception_is_int
        state.old_exception = self._env + calibration.old_exception
        state.fault_address = ctypes.addressof(self._fault_address)
        state.hypercalls, state.other_hypercalls = ctypes.addressof(hypercalls), len(hypercalls) - 1
        state.ctl, state.flush_page = _address(lib.ctl), _address(lib.flush_page)
        state.cpu = self._cpu_state
        self._install_hooks(hooks)
        self._value = ctypes.c_uint64()
        self._value_addr = ctypes.addressof(self._value)
        self._hypercall_regs = _RegBatch(lib, self._handle, _HYPERCALL_REGS)
        self._trap_regs = _RegBatch(lib, self._handle, _TRAP_REGS)
        self._enter_regs = _RegBatch(lib, self._handle, _ENTER_REGS)
        self._jump_regs = _RegBatch(lib, self._handle, _JUMP_REGS)

    def _install_hooks(self, hooks: CpuHooks) -> None:
        """INTR and TLB fill are hot: raw ctypes callbacks, not the binding's wrapped ones.

        The hooks Unicorn calls are ``_hooks``' C functions; they call ``on_interrupt`` and
        ``on_tlb_fill`` below for what they leave to Python.  A Python exception cannot cross a
        ctypes callback, so each raw hook keeps the first one and stops the CPU; ``run`` raises
        it.  The rare hooks go through the binding, which does the same with its own
        ``_hook_exception``.
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

        lib = self._lib
        self._raw_hooks = (lib.intr_callback(on_interrupt), lib.tlb_fill_callback(on_tlb_fill))
        self._state.slow_trap = _address(self._raw_hooks[0])
        self._state.slow_fill = _address(self._raw_hooks[1])
        for htype, callback in ((const.UC_HOOK_INTR, TRAP), (const.UC_HOOK_TLB_FILL, FILL)):
            hook = lib.hook_type()
            status = lib.lib.uc_hook_add(
                self._uch,
                ctypes.byref(hook),
                htype,
                ctypes.c_void_p(callback),
                ctypes.byref(self._state),
                1,
                0,
            )
            if status != const.UC_ERR_OK:
                raise CpuError(f"uc_hook_add({htype}) failed: {status}")
        uc = self._uc
        uc.hook_add(const.UC_HOOK_INSN_INVALID, lambda _u, _d: hooks.on_invalid_instruction())
        uc.hook_add(
            const.UC_HOOK_INSN,
            lambda _u, port, size, _d: hooks.on_port_in(port, size),
            aux1=x86_const.UC_X86_INS_IN,
        )
        uc.hook_add(
            const.UC_HOOK_INSN,
            lambda _u, port, size, value, _d: hooks.on_port_out(port, size, value),
            aux1=x86_const.UC_X86_INS_OUT,
        )
        uc.hook_add(
            const.UC_HOOK_INSN,
            lambda _u, _d: hooks.on_sysenter(),
            aux1=x86_const.UC_X86_INS_SYSENTER,
        )
        uc.hook_add(
            const.UC_HOOK_INSN, lambda _u, _d: hooks.on_syscall(), aux1=x86_const.UC_X86_INS_SYSCALL
        )
        uc.hook_add(
            const.UC_HOOK_MEM_UNMAPPED,
            lambda _u, _access, address, _size, _value, _d: hooks.on_unmapped(address),
        )

    def _hook_failed(self, error: BaseException) -> None:
        if self._hook_error is None:
            self._hook_error = error
        self.stop()

    # --- registers, through the C library directly (the binding's reg_read costs 2 µs) -----------

    def reg(self, reg_id: int) -> int:
        self._value.value = 0  # a 16-bit register (CS, SS...) only fills the low bytes
        self._reg_read(self._handle, reg_id, self._value_addr)
        return self._value.value & 0xFFFFFFFF

    def set_reg(self, reg_id: int, value: int) -> None:
        self._value.value = value & 0xFFFFFFFF
        if self._reg_write(self._handle, reg_id, self._value_addr) != const.UC_ERR_OK:
            raise CpuError(f"cannot load register {reg_id} with {value:#x}")
        if reg_id == EIP and self._running:
            self._emu_stop(self._handle)  # a hook moved EIP: end the run (see the module notes)

    def cpl(self) -> int:
        return self._hflags.value & HF_CPL_MASK

    def set_ts(self, on: bool) -> None:
        """CR0.TS: with it set, FPU instructions raise #NM."""
        cr0 = self._uc.reg_read(_CR0)
        self._uc.reg_write(_CR0, cr0 | _CR0_TS if on else cr0 & ~_CR0_TS)

    def hypercall_regs(self) -> tuple[int, ...]:
        """CS, EAX, EDX, EBX, ECX in one call: what a hypercall needs."""
        return self._hypercall_regs.read()

    def trap_regs(self) -> tuple[int, ...]:
        """SS, ESP, EFLAGS, CS, EIP in one call: what a trap frame holds."""
        return self._trap_regs.read()

    def jump(self, cs: int, esp: int, eip: int) -> None:
        """Load CS:EIP and ESP at the current privilege level (a trap taken in the kernel).

        From a hook the run goes on at the new EIP (one batch write: see the module notes)."""
        self._jump_regs.write(esp, cs, eip)

    def enter(self, cs: int, ss: int, esp: int, eip: int, eflags: int) -> None:
        """Load CS:EIP, SS:ESP and EFLAGS as a privilege change would (see the module notes).

        The CPL becomes ``ss & 3`` (in the live ``hflags``); SS and CS go through Unicorn's
        descriptor checks against the Host GDT, which raise ``CpuError`` for a selector the
        hardware would refuse.  From the INTR hook the run goes on there (the module notes).
        """
        self._hflags.value = (self._hflags.value & ~HF_CPL_MASK) | (ss & HF_CPL_MASK)
        self._enter_regs.write(ss, cs, esp, eip, eflags)

    # --- the hidden state the register API does not reach: live, in the engine's env ----------

    def _env_int(self, offset: int) -> ctypes.c_int32:
        return ctypes.c_int32.from_address(self._env + offset)

    def exception_info(self) -> tuple[int, bool]:
        """(error code, raised by an ``int`` instruction?) of the exception being handled."""
        return self._env_int(self._offsets.error_code).value, bool(
            self._env_int(self._offsets.exception_is_int).value
        )

    def clear_old_exception(self) -> None:
        """Forget the exception in flight, so the next fault is not taken for a double fault."""
        self._env_int(self._offsets.old_exception).value = -1

    # --- set-up ------------------------------------------------------------------------------

    def start(self, gdt: bytes, eip: int) -> None:
        """The state of spec 7.1: flat DPL-1 segments, paging on, EFLAGS 0x202, CPL 1 at ``eip``."""
        self.load_gdt(gdt)
        self._uc.reg_write(x86_const.UC_X86_REG_GDTR, (0, 0, GDT_ENTRIES * 8 - 1, 0))
        ctypes.c_uint64.from_address(self._env + self._offsets.gdt_base).value = GDT_VADDR
        self._uc.reg_write(_CR0, self._uc.reg_read(_CR0) | _CR0_PE | _CR0_PG)
        self.enter(GUEST_CS, GUEST_DS, 0, eip, INITIAL_EFLAGS)
        for seg in (DS, ES):
            self.set_reg(seg, GUEST_DS)
        for seg in (FS, GS):
            self.set_reg(seg, 0)
        for reg in (EAX, EBX, ECX, EDX, ESI, EDI, EBP):
            self.set_reg(reg, 0)

    def load_gdt(self, gdt: bytes) -> None:
        """Write the Host GDT (all 32 entries, already fixed up by ``segments``)."""
        self._uc.mem_write(self.host_page, gdt)

    # --- running -----------------------------------------------------------------------------

    def run(self) -> None:
        """Run from the current EIP until a hook or another thread stops it, or a hook refuses a
        translation (and kills); an exception raised by a hook propagates."""
        if self._state.fills >= TLB_GROW_FILLS:
            self.flush_tlb()
        self._running = True
        try:
            status = self._lib.lib.uc_emu_start(self._uch, self._eip.value, STOP_ADDR, 0, 0)
        finally:
            self._running = False
        raised = self._hook_error or self._uc._hook_exception
        if raised is not None:
            self._hook_error = self._uc._hook_exception = None
            raise raised
        if status not in _RUN_ENDS:
            raise CpuError(f"emu_start failed: {unicorn.UcError(status)}")

    def stop(self) -> None:
        """Ask a running ``run`` to return (from any thread; lost if it lands too early)."""
        self._emu_stop(self._handle)

    def fill_from(self, ptes: int, tables: int, pages: int, gpgdir: int) -> None:
        """Answer TLB misses from a shadow of the guest's page directory ``gpgdir``: its i386
        PTEs at address ``ptes`` (one for each of the ``pages`` first virtual pages) and a byte
        per page-directory slot at ``tables`` (1: looked at), filled as ``PageTables`` fills
        them (``_hooks.c``).  ``on_tlb_fill`` gets the misses that need a decision.  Both arrays
        must stay mapped until ``close``."""
        state = self._state
        state.ptes, state.tables, state.pages, state.gpgdir = ptes, tables, pages, gpgdir

    def flush_tlb(self) -> None:
        self._ctl(self._handle, _TLB_FLUSH)
        self._state.fills = 0

    def flush_tlb_page(self, vaddr: int) -> None:
        """Drop the TLB entries of one page (QEMU's ``tlb_flush_page``: calibrated ``cpu``)."""
        self._flush_page(self._cpu_state, vaddr)

    @property
    def guest_page_fault(self) -> int:
        """The ``perms`` a TLB fill refuses with to raise the guest's page fault (patch 0003)."""
        return int(self._state.guest_page_fault)

    def fault_address(self) -> int:
        """The faulting byte of the last translation refused (the page fault's CR2)."""
        return self._fault_address.value

    # --- the traps the C hook reflects itself (``_hooks.c``) ----------------------------------

    def reflect_through(self, lguest_data: int, ss1: int, esp1: int) -> None:
        """Where a trap reflected in C writes: ``lguest_data`` (guest-physical, from
        LGUEST_INIT) and the kernel stack a trap from user mode lands on (SET_STACK)."""
        state = self._state
        state.lguest_data, state.ss1, state.esp1 = lguest_data, ss1, esp1

    def cache_shadows(
        self, shadows: list[tuple[int, int, int] | None], kernel_address: int
    ) -> None:
        """The shadows the C hook's SET_PTE and SET_PMD change: for each cached one, the
        addresses of its PTEs and slot bytes and its page directory (``PageTables.slots``); and
        where the kernel's addresses start.  Each array must stay mapped until ``close``."""
        for slot, shadow in zip(self._state.shadows, shadows, strict=True):
            slot.ptes, slot.tables, slot.gpgdir = shadow or (0, 0, 0)
        self._state.kernel_address = kernel_address

    def traps_to_python(self, on: bool) -> None:
        """Hand every trap to ``on_trap`` until told otherwise (a trap waits for the run's end)."""
        self._state.traps_to_python = on

    def close(self) -> None:
        """Free the Unicorn instance; the guest's memory must outlive this call."""
        self._uc._Uc__finalizer()
