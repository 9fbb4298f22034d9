"""The lguest ABI of Linux 2.6.24, as constants: the one header both sides share.

In the kernel these numbers lived in ``include/linux/lguest_launcher.h``,
``include/linux/lguest.h``, ``include/asm-x86/lguest_hcall.h`` and the 2.6.24
virtio headers, and both the Host and the launcher included them.  Here they
live in this one module: the daemon (``lguestfs``) uses all of it, and the
launcher (``launcher``) may import it and ``lguestfs.node`` (the node's names and
the mount table) and nothing else of ``lguestfs``.

Every value is restated from ``shared/spec/lguest-abi.md``; the section of the
spec that explains a group is named beside it.  Nothing here does anything.
"""

from typing import Final

# --- Machine facts (spec preamble) -------------------------------------------------------

PAGE_SIZE: Final = 4096
PAGE_SHIFT: Final = 12

# --- Requests written to the node (spec 1.1) ---------------------------------------------
# The first word of every write says what the launcher wants.

LHREQ_INITIALIZE: Final = 0  # + base, pfnlimit, pgdir, start: become the guest's owner
LHREQ_GETDMA: Final = 1  # obsolete in 2.6.24: always EINVAL
LHREQ_IRQ: Final = 2  # + irq: make that interrupt pending
LHREQ_BREAK: Final = 3  # + 0 (release the breakers) or nonzero (break out the owner, then block)

INITIALIZE_ARGS: Final = 4  # base, pfnlimit, pgdir, start
REQUEST_NAMES: Final = {
    LHREQ_INITIALIZE: "INITIALIZE",
    LHREQ_GETDMA: "GETDMA",
    LHREQ_IRQ: "IRQ",
    LHREQ_BREAK: "BREAK",
}

# --- Hypercalls (spec 3) -------------------------------------------------------------------
# The guest executes ``int $0x1f`` with EAX = call, EDX = arg1, EBX = arg2, ECX = arg3.

LGUEST_TRAP_ENTRY: Final = 0x1F

LHCALL_FLUSH_ASYNC: Final = 0  # no-op: entering the Host drains the async ring anyway
LHCALL_LGUEST_INIT: Final = 1  # arg1 = physical address of struct lguest_data; must be first
LHCALL_CRASH: Final = 2  # arg1 = physical address of a message: the guest dies with it
LHCALL_LOAD_GDT: Final = 3  # arg1 = table, arg2 = number of entries
LHCALL_NEW_PGTABLE: Final = 4  # arg1 = page directory
LHCALL_FLUSH_TLB: Final = 5  # arg1 = 0: user mappings only, else everything
LHCALL_LOAD_IDT_ENTRY: Final = 6  # arg1 = vector, arg2 = low dword, arg3 = high dword
LHCALL_SET_STACK: Final = 7  # arg1 = segment, arg2 = esp (virtual), arg3 = pages
LHCALL_TS: Final = 8  # arg1 = the guest's view of CR0.TS (0 or 8)
LHCALL_SET_CLOCKEVENT: Final = 9  # arg1 = nanoseconds from now (0 cancels): then irq 0
LHCALL_HALT: Final = 10  # sleep until an interrupt
LHCALL_SET_PTE: Final = 14  # arg1 = pgdir, arg2 = vaddr, arg3 = pte
LHCALL_SET_PMD: Final = 15  # arg1 = pgdir, arg2 = index
LHCALL_LOAD_TLS: Final = 16  # arg1 = three descriptors (24 bytes), arg2 = cpu (ignored)
LHCALL_NOTIFY: Final = 17  # arg1 = address: the launcher's read returns it

HYPERCALL_NAMES: Final = {
    LHCALL_FLUSH_ASYNC: "FLUSH_ASYNC",
    LHCALL_LGUEST_INIT: "LGUEST_INIT",
    LHCALL_CRASH: "CRASH",
    LHCALL_LOAD_GDT: "LOAD_GDT",
    LHCALL_NEW_PGTABLE: "NEW_PGTABLE",
    LHCALL_FLUSH_TLB: "FLUSH_TLB",
    LHCALL_LOAD_IDT_ENTRY: "LOAD_IDT_ENTRY",
    LHCALL_SET_STACK: "SET_STACK",
    LHCALL_TS: "TS",
    LHCALL_SET_CLOCKEVENT: "SET_CLOCKEVENT",
    LHCALL_HALT: "HALT",
    LHCALL_SET_PTE: "SET_PTE",
    LHCALL_SET_PMD: "SET_PMD",
    LHCALL_LOAD_TLS: "LOAD_TLS",
    LHCALL_NOTIFY: "NOTIFY",
}

CRASH_MESSAGE_BYTES: Final = 128  # CRASH reads exactly this much, and forces the last byte to NUL

# --- The async hypercall ring inside lguest_data (spec 3.2) --------------------------------

LHCALL_RING_SIZE: Final = 64
HCALL_SLOT_BYTES: Final = 16  # {call, arg2, arg3, arg1}: the saved eax, ebx, ecx, edx
HCALL_STATUS_DONE: Final = 0xFF  # written by the Host; anything else means "pending"

# --- struct lguest_data (spec 4): shared between guest and Host, 1136 bytes on i386 --------

LGUEST_IRQS: Final = 32
LGUEST_DATA_SIZE: Final = 1136

LD_IRQ_ENABLED: Final = 0  # u32: the guest's virtual IF, X86_EFLAGS_IF (0x200) or 0
LD_BLOCKED_INTERRUPTS: Final = 4  # u32 bitmap: bit n set = irq n masked
LD_CR2: Final = 8  # u32: the faulting address, written before a #PF is reflected
LD_TIME: Final = 12  # s32 seconds, s32 nanoseconds: wall clock, refreshed by the Host
LD_HCALL_STATUS: Final = 20  # u8[64]: the async ring's status bytes
LD_HCALLS: Final = 84  # 64 slots of 16 bytes
LD_RESERVE_MEM: Final = 1108  # u32, Host-written at INIT: the Host's share at the top of memory
LD_TSC_KHZ: Final = 1112  # u32, Host-written at INIT: 0 = do not use the TSC
LD_PGDIR: Final = 1116  # u32, Host-written at INIT: the initial page directory
LD_NOIRQ_START: Final = 1120  # u32: no interrupt is injected while noirq_start <= EIP < noirq_end
LD_NOIRQ_END: Final = 1124
LD_KERNEL_ADDRESS: Final = 1128  # u32: where the guest kernel's virtual addresses start
LD_SYSCALL_VEC: Final = 1132  # u32: must be SYSCALL_VECTOR

X86_EFLAGS_IF: Final = 0x200
SYSCALL_VECTOR: Final = 0x80
FIRST_EXTERNAL_VECTOR: Final = 0x20  # irq n arrives on vector 0x20 + n; the timer is irq 0
TIMER_IRQ: Final = 0

# --- The Host's share of the address space (spec 6) ----------------------------------------

HOST_RESERVED_MEM: Final = 0x400000  # written to reserve_mem: the top 4 MB of every guest
SWITCHER_ADDR: Final = 0xFFC00000  # PDE 1023: touching it kills "attempt to access switcher pages"
SWITCHER_PDE: Final = 1023
SHADOW_CACHE: Final = 4  # lg->pgdirs[4]: the page directories the Host keeps a shadow of

# Page-table entry flags (i386, 2-level, no PAE).
PTE_PRESENT: Final = 0x001
PTE_RW: Final = 0x002
PTE_USER: Final = 0x004
PTE_PWT: Final = 0x008
PTE_PCD: Final = 0x010
PTE_ACCESSED: Final = 0x020
PTE_DIRTY: Final = 0x040
PTE_PSE: Final = 0x080
PTE_GLOBAL: Final = 0x100
PDE_ALLOWED_FLAGS: Final = PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY  # 0x67

# A page fault's error code (i386): why the access faulted.
PF_ERR_PRESENT: Final = 1  # the page was mapped (a protection fault); clear: not present
PF_ERR_WRITE: Final = 2  # a write
PF_ERR_USER: Final = 4  # from user mode (CPL 3)

# --- Traps (spec 5.2) ----------------------------------------------------------------------

TRAP_DE: Final = 0  # divide error
TRAP_UD: Final = 6  # invalid opcode
TRAP_NM: Final = 7  # device not available (TS)
TRAP_DF: Final = 8  # double fault: never has a guest handler
TRAP_GP: Final = 13  # general protection: port I/O is emulated here
TRAP_PF: Final = 14  # page fault: cr2 goes to lguest_data first
TRAPS_WITH_ERROR_CODE: Final = frozenset({8, 10, 11, 12, 13, 14, 17})
IDT_IGNORED_VECTORS: Final = frozenset({2, 8, 15, LGUEST_TRAP_ENTRY})  # LOAD_IDT_ENTRY skips these
IDT_ENTRIES: Final = 256
IDT_TYPE_INTERRUPT_GATE: Final = 0xE
IDT_TYPE_TRAP_GATE: Final = 0xF

# --- Segments (spec 7) ---------------------------------------------------------------------

GDT_ENTRIES: Final = 32
GDT_ENTRY_TLS_MIN: Final = 6  # LOAD_TLS fills entries 6, 7, 8
GDT_ENTRY_TLS_ENTRIES: Final = 3
GDT_ENTRY_KERNEL_CS: Final = 12
GDT_ENTRY_KERNEL_DS: Final = 13
GUEST_CS: Final = 0x61  # __KERNEL_CS with RPL 1: the guest kernel runs at privilege level 1
GUEST_DS: Final = 0x69  # __KERNEL_DS with RPL 1
GUEST_PL: Final = 1
INITIAL_EFLAGS: Final = 0x202  # the real IF is always on; the guest's IF is irq_enabled
KERNEL_CS_DESCRIPTOR: Final = (0x0000FFFF, 0x00CFBB00)  # flat code, DPL 1 (lo, hi)
KERNEL_DS_DESCRIPTOR: Final = (0x0000FFFF, 0x00CFB300)  # flat data, DPL 1

# --- The boot protocol the launcher sets up (spec 8) ---------------------------------------

BOOT_E820_ENTRIES: Final = 0x1E8  # u8
BOOT_E820_MAP: Final = 0x2D0  # {u64 addr, u64 size, u32 type}
BOOT_VERSION: Final = 0x206  # u16
BOOT_TYPE_OF_LOADER: Final = 0x210  # u8
BOOT_LOADFLAGS: Final = 0x211  # u8
BOOT_RAMDISK_IMAGE: Final = 0x218  # u32
BOOT_RAMDISK_SIZE: Final = 0x21C  # u32
BOOT_CMD_LINE_PTR: Final = 0x228  # u32
BOOT_HARDWARE_SUBARCH: Final = 0x23C  # u32
BOOT_HDRS_MAGIC: Final = 0x202  # "HdrS" in a bzImage
BOOT_SETUP_SECTS: Final = 0x1F1  # u8
BOOT_CODE32_START: Final = 0x214  # u32

BOOT_PROTOCOL_VERSION: Final = 0x0207
KEEP_SEGMENTS: Final = 0x40
E820_RAM: Final = 1
HARDWARE_SUBARCH_LGUEST: Final = 1
COMMAND_LINE_ADDR: Final = 0x1000
COMMAND_LINE_MAX: Final = 2048
BZIMAGE_LOAD_ADDR: Final = 0x100000
PAGE_OFFSET: Final = 0xC0000000  # where Linux (and our guests) link the kernel

DEVICE_PAGES_MAX: Final = 256  # pages the launcher may carve out above guest memory

# --- Virtio as of 2.6.24 (spec 9) ----------------------------------------------------------

VIRTIO_ID_NET: Final = 1
VIRTIO_ID_BLOCK: Final = 2
VIRTIO_ID_CONSOLE: Final = 3

# Device descriptor: u8 type (0 ends the list), u8 config_len, u8 status, then config TLVs.
DEVICE_DESC_HEADER: Final = 3

VIRTIO_CONFIG_S_ACKNOWLEDGE: Final = 1
VIRTIO_CONFIG_S_DRIVER: Final = 2
VIRTIO_CONFIG_S_DRIVER_OK: Final = 4
VIRTIO_CONFIG_S_FAILED: Final = 0x80

CONFIG_TLV_CONSUMED: Final = 0x80  # the guest ORs this into a TLV's type when it reads it
VIRTIO_CONFIG_F_VIRTQUEUE: Final = 2  # {u16 num, u16 irq, u32 pfn}
VIRTIO_BLK_F_FEATURES: Final = 0x40
VIRTIO_BLK_F_CAPACITY: Final = 0x41  # u64 sectors
VIRTIO_BLK_F_SIZE_MAX: Final = 0x42
VIRTIO_BLK_F_SEG_MAX: Final = 0x43  # u32
VIRTIO_NET_F_FEATURES: Final = 0x40
VIRTIO_NET_F_MAC: Final = 0x41  # 6 bytes

VIRTQUEUE_NUM: Final = 128  # entries per queue
VIRTQUEUE_PAGES: Final = 2  # each queue's ring takes two pages
VRING_DESC_BYTES: Final = 16  # u64 addr, u32 len, u16 flags, u16 next
VRING_DESC_F_NEXT: Final = 1
VRING_DESC_F_WRITE: Final = 2  # the device writes into this buffer
VRING_USED_F_NO_NOTIFY: Final = 1  # Host to guest: don't kick me
VRING_AVAIL_F_NO_INTERRUPT: Final = 1  # guest to Host: don't interrupt me
VRING_ALIGN: Final = 4096  # the used ring starts at the next page

VIRTIO_BLK_T_IN: Final = 0
VIRTIO_BLK_T_OUT: Final = 1
VIRTIO_BLK_T_SCSI_CMD: Final = 2
VIRTIO_BLK_T_BARRIER: Final = 0x80000000
VIRTIO_BLK_S_OK: Final = 0
VIRTIO_BLK_S_IOERR: Final = 1
VIRTIO_BLK_S_UNSUPP: Final = 2
VIRTIO_BLK_OUTHDR_BYTES: Final = 24  # u32 type, u32 ioprio, u64 sector, u64 id
SECTOR_SIZE: Final = 512
BLOCK_SEG_MAX: Final = 126

# 2.6.24's struct virtio_net_hdr: u8 flags, u8 gso_type, u16 gso_size, csum_start, csum_offset.
# (u16 hdr_len, making it 10 bytes, arrived in 2.6.25; a 2.6.24 guest sends and expects 8.)
VIRTIO_NET_HDR_BYTES: Final = 8


def vring_size(num: int) -> int:
    """Bytes of a 2.6.24 ring of ``num`` entries: descriptors, avail, then page-aligned used."""
    before_used = VRING_DESC_BYTES * num + 2 * (2 + num)
    return (before_used + VRING_ALIGN - 1) // VRING_ALIGN * VRING_ALIGN + 4 + 8 * num
