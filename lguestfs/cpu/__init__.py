"""The guest's CPU: Unicorn i386 at privilege level 1, behind one fence.

Where this sits: ``guest`` runs the loop of spec 2; each "run the guest" of that loop is one
``Cpu.run()``, which returns when a hook asked Unicorn to stop (a hypercall that leaves the guest,
a kill), when another thread kicked the CPU (break, signal, timer, irq, close), or when a page
walk killed the guest.  A trap the guest handles itself (a system call, a page fault) is
reflected inside the INTR hook and the run goes on.  The hooks themselves are ``traps`` (and
``pagetables`` for the TLB), behind the C hooks of ``_hooks`` that answer the common cases
alone; this package only owns Unicorn.

This package is the only place that imports ``unicorn`` or touches its internals.  Its private
modules: ``_binding`` (the import, and the binding's private parts), ``_calibrate`` (where this
libunicorn keeps the hidden state, measured at mount: ``calibrate()``), ``_cpu`` (the ``Cpu``),
``_hooks`` (the TLB-fill and INTR hooks, in C).

Some facts about Unicorn 2.1.4 that the code relies on.  Each was measured on the machine this
was written on (Debian 12, Python 3.11, the PyPI wheel); the ones marked *calibrated* are
measured again at every start and each has its own test (``tests/test_host_cpu_facts.py``).

* **Privilege level** (calibrated: ``hflags``).  QEMU keeps the CPL in ``env->hflags`` (bits
  0-1) and only changes it when SS is loaded from a descriptor.  ``uc_reg_write(SS)`` refuses a
  selector whose RPL or DPL differs from the current CPL (``UC_ERR_EXCEPTION``), and writing
  CS = 0x71 is accepted but leaves the CPL at 0.  So the Host changes ring the way the hardware
  would after checking: it patches the two CPL bits of the live ``hflags``, and then loads SS
  and CS through Unicorn's own descriptor loader, which fills the hidden caches and the other
  ``hflags`` bits from the GDT.  The guest is put at CPL 1 this way before its first
  instruction, and a trap taken in user mode (CPL 3) reaches the guest kernel at CPL 1 the same
  way, inside the INTR hook, with one batch write (next fact but one).
* **Exceptions** (calibrated: ``error_code``, ``exception_is_int``, ``old_exception``).  With an
  INTR hook the IDT is never used; without one any exception ends ``emu_start`` with
  ``UC_ERR_EXCEPTION``.  For ``int $n`` (and ``int3``, ``into``) EIP in the hook is past the
  instruction; for a fault it is on the faulting instruction.  #UD is not an INTR but
  ``UC_HOOK_INSN_INVALID``.  The error code, "was it an ``int``" and the "exception in flight"
  marker live only in ``env`` (the register API has none of them), and the last must be cleared
  after every fault the Host handles: QEMU clears it only when it delivers through the IDT, which
  a hook never does, so the next fault is reported as a double fault (intno 8, error 0) and the
  one after that is a silent triple fault (``emu_start`` returns OK, no hook called).  The C
  INTR hook (``_hooks.c``) reads and clears them through pointers into ``env``.
* **Stopping.**  ``emu_stop`` from another thread is a no-op when no emulation runs, and is lost
  if it lands in the first ~10 us of ``emu_start`` (77% lost right after the worker said "entering
  emu_start"; 1 in 600 after 10 us; none after 100 us).  ``guest`` therefore checks its own stop
  flag before each run and repeats the stop until the run returns.  ``emu_start`` writes EIP from
  ``begin``, so we pass the current EIP.
* **Stops land between blocks only** (calibrated: ``no_exit_request``).  Unicorn 2.1.4 looks for a
  pending stop at the start of every translated block and also after every guest memory access,
  and a stop caught after a store rewinds EIP to the storing instruction, whose write has already
  happened: resuming runs it again, so a read-modify-write (``addl $4, 4(%esp)``) adds twice.
  (Measured: a third of the stops from another thread replayed a store in a loop built that way;
  a guest OS went wrong about once in 15 test runs under frequent stops.)  The translator has a
  switch that emits no per-access check, ``uc->no_exit_request``, which the API does not expose.
  Each engine sets it before its first translation (its place in the engine is read from the
  machine code of ``check_exit_request``, and checked: a stop on a store must land after it); a
  stop then takes effect at the next block start, where the block before it has fully run.  So a
  stop asked for inside an instruction hook lets the rest of that block run first (see
  ``traps``); traps and hypercalls stop at once, as they leave the block anyway.
* **A hook moves EIP in one batch write.**  ``uc_reg_write(EIP)`` from a hook sets the engine's
  ``skip_sync_pc_on_exit``: for the rest of that ``emu_start``, a stop landing between two
  translated blocks leaves EIP at the value the hook wrote, and resuming there replays guest
  code.  (Measured: a guest reflecting one trap every 64 loops was corrupted within 40 breaks,
  and a privilege change done so, 300 user programs under a 1000 Hz timer.)
  ``uc_reg_write_batch`` does not set it: it ends the current block only (``quit_request``) and
  the run goes on at the new EIP, the next block looked up with the new CS, SS and CPL.  So a
  hook moves EIP only with a batch (``jump``, ``enter``: a reflected trap, an injected
  interrupt); ``set_reg(EIP)`` during a run also stops it, and the next ``emu_start`` begins
  clean.  ``tests/test_host_stopping.py`` pins both.
* **The MMU** (calibrated: ``fault_address``).  Unicorn runs in ``UC_TLB_VIRTUAL`` mode: every
  TLB miss calls the ``UC_HOOK_TLB_FILL`` hook, which sets ``entry.paddr`` and ``entry.perms``.
  That hook is C (``_hooks.c``): it answers from the current shadow page table, or walks the
  guest's own tables as ``pagetables.demand_page`` does and maps or refuses; only a miss that
  needs a decision (one that kills) calls ``pagetables`` in Python (a ctypes callback costs
  about 2 us, and a real Linux guest misses ~800 times per fork+exec).  A stock Unicorn ends
  the run on any refused miss (``UC_ERR_EXCEPTION``); the project's (``patches/unicorn/0003``)
  raises the guest's own #PF instead when the refusal says so (``perms`` = the value the library
  exports as ``lguestfs_guest_page_fault``, the error code in ``paddr``): the INTR hook gets
  intno 14 with EIP on the faulting instruction, and the run goes on.  Either way the faulting
  byte is kept in the engine (``uc->invalid_addr``, found by refusing two known addresses).
  A stock Unicorn also restores EIP to the access before every fill, which costs a block lookup
  by host address each time; the project's restores it only for a refusal (0004), so a fill
  hook must not read EIP.
  Unicorn sizes its TLB (256 entries at first) only when it is flushed, growing it when it was
  >70% full, so a large working set misses on every access until something flushes
  (``TLB_GROW_FILLS``).
* **The engine's CPU** (calibrated: ``cpu``, ``env``).  ``uc->cpu`` is QEMU's ``CPUState``; its
  ``env`` holds the live registers a context blob copies.  Found by planting registers and
  looking, through /proc/self/mem, for the object that holds them, points at them near its start
  (``env_ptr``) and back at the engine.  ``tlb_flush_page`` (exported by libunicorn) on it drops
  one page from the TLB, so a page-table change flushes only what it invalidates
  (``pagetables``); the hidden state above is read and written there, live, with no call into
  the library (a context save and restore copied all of ``env`` twice for one field).
* **The GDT, out of the guest's reach** (calibrated: ``gdt_base``).  Unicorn reads descriptors from
  GDTR.base + index at the privilege of the code that loads a segment, through the same TLB as
  the guest's own accesses, so the GDT must be mapped somewhere, yet no guest access may reach it
  (every address in the top 4 MB must fault and kill).  QEMU keeps GDTR.base as a 64-bit value
  and adds the index without truncating, while 32-bit code can only form 32-bit linear addresses.
  So the Host's GDT page is mapped at 4 GB (``GDT_VADDR``): ``uc_reg_write`` truncates the base to
  32 bits in this mode, so the Host writes it into the live ``env``.  (The guest's ``sgdt``
  shows base 0.)
* **``until`` must be mapped.**  When a run ends Unicorn invalidates the code at ``until - 1``,
  which takes a TLB fill for that page; unmapped, the fill fails and leaves ``old_exception = 14``
  behind (the double-fault trap above).  ``STOP_ADDR`` is inside the Host's page at 4 GB: mapped,
  and no guest EIP can equal it.
* **Port I/O and fast system calls do not fault.**  At CPL 1 with IOPL 0, ``in``/``out`` run
  without a #GP (``in`` reads 0); ``sysenter`` and ``syscall`` are no-ops.  ``UC_HOOK_INSN`` hooks
  for each are where the Host's rules start (``traps``).  Inside the ``in`` hook EIP is on the
  instruction and EAX still holds the old value; a value written to EAX there sticks.  An access
  to a physical address outside every mapping calls ``UC_HOOK_MEM_UNMAPPED`` with that address.
* **Threads and cost.**  The GIL is released while Unicorn emulates, so two guests run on two
  cores; every hook takes it back.  INTR, MEM_UNMAPPED and INSN_INVALID hooks cost nothing until
  they fire; CODE, BLOCK and MEM_READ/WRITE hooks slow every instruction (a Python CODE hook: 2.7
  MIPS; any MEM hook: stores -26%), so the Host has none.  An empty INTR hook costs 0.4 us, the
  binding's ``reg_read``/``reg_write`` 2 us each, the C function called through ctypes with
  integer arguments 0.5 us: the hot paths call libunicorn directly (``_binding``).  On a stock
  2.1.4 every guest store takes QEMU's slow path (about 35 ns each, loads 4 ns) because every page
  is executable; the project's build (``patches/unicorn``, logged at start) keeps that path for
  pages holding translated code, so a store still invalidates code it rewrites through any alias.
* **Shared memory is not copied.**  ``mem_map_ptr`` maps the launcher's pages (shared into the
  daemon by ``sharing``) as guest-physical memory; ``mem_read``/``mem_write`` take physical
  addresses.  Code rewritten behind Unicorn's back (through the raw pointer) keeps running its
  old translation; the Host never writes guest code, and the guest's own stores are tracked.
"""

from lguestfs.cpu._binding import VERSION as UNICORN_VERSION
from lguestfs.cpu._binding import CpuError
from lguestfs.cpu._calibrate import calibrate
from lguestfs.cpu._cpu import (
    ACCESS_WRITE,
    CS,
    DS,
    EAX,
    EBP,
    EBX,
    ECX,
    EDI,
    EDX,
    EFLAGS,
    EIP,
    ES,
    ESI,
    ESP,
    FS,
    GDT_VADDR,
    GS,
    PROT_RX,
    PROT_WRITE,
    SS,
    STOP_ADDR,
    Cpu,
    CpuHooks,
)

__all__ = [
    "ACCESS_WRITE",
    "CS",
    "DS",
    "EAX",
    "EBP",
    "EBX",
    "ECX",
    "EDI",
    "EDX",
    "EFLAGS",
    "EIP",
    "ES",
    "ESI",
    "ESP",
    "FS",
    "GDT_VADDR",
    "GS",
    "PROT_RX",
    "PROT_WRITE",
    "SS",
    "STOP_ADDR",
    "UNICORN_VERSION",
    "Cpu",
    "CpuError",
    "CpuHooks",
    "calibrate",
]
