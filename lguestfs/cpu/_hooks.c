/* lguestfs.cpu._hooks: Unicorn's two hot hooks in C: the TLB miss, and the common traps.

Where this sits: Unicorn runs the guest with a software TLB (``UC_TLB_VIRTUAL``); every miss
calls the ``UC_HOOK_TLB_FILL`` hook, and every exception or ``int`` the ``UC_HOOK_INTR`` hook.  A
real Linux guest misses hundreds of times per fork+exec (each address-space switch empties the
TLB, as it does on hardware), takes about 50 page faults and a dozen system calls, and makes
about 100 page-table hypercalls; each answered in Python costs microseconds, ctypes' callback
included.  So the hooks Unicorn calls are these, and Python (``slow_fill``, ``slow_trap``) only
gets what needs a decision.

``fill``, the TLB miss:
1. the entry of the current shadow (a flat array of i386 PTEs, one per virtual page, kept by
   ``lguestfs.pagetables``) allows the access: map it;
2. else ``demand_page`` walks the guest's own tables as ``PageTables.demand_page`` does (that
   Python is the reference; this is its common path, line for line): the guest allows it ->
   set Accessed (and Dirty) in the guest's PTE, install the shadow entry, map it; the guest
   forbids it -> refuse with the guest's own page fault (``perms`` = ``guest_page_fault``, the
   error code in ``paddr``): the project's Unicorn (``patches/unicorn/0003``) raises #PF there
   and calls ``trap``, the run going on;
3. anything that needs a decision (a bad entry or address that kills the guest, the switcher
   pages, an address beyond the table) goes to Python, which decides.
Unicorn calls it without first restoring the CPU state to the access (``patches/unicorn/0004``):
neither it nor Python's fill reads EIP; a refusal raises with the state restored.

``trap``, the INTR hook, does two things itself.  A hypercall from the guest kernel whose
call, and every call queued in the async ring before it, is FLUSH_ASYNC, SET_PMD or a SET_PTE
that does not kill, is done here exactly as ``hypercalls`` and ``PageTables.set_pte`` /
``set_pmd`` do (those are the reference): counted, the ring's slots marked done, every cached
shadow (``shadows``, told by ``PageTables``) changed, the TLB flushed where a change outdates
it.  At the first call that is not one of these, Python goes on from that slot of the ring, as
it would have from the start.  And a page fault from a fill, or a system call (``int $0x80``
through the guest's own trap gate, which its DPL allows), is reflected here exactly as
``interrupts.set_guest_interrupt`` does (that Python is the reference): the frame on the guest's
stack, CR2 into ``lguest_data`` for a fault, the privilege change and the jump to the handler in
one batch write of the registers (``lguestfs.cpu`` says why a batch), the guest's interrupt flag
cleared for an interrupt gate.  Everything else, and anything out of the ordinary (no gate, a
stack or ``lguest_data`` outside guest memory, an interrupt pending that the Host may inject at
this exit, a trap after an instruction that must fault), goes to the Python hook, which does it
all again from the start: nothing here is done halfway.

The ``struct hook_state`` is written by ``lguestfs.cpu._cpu`` (through a ctypes mirror, checked
against ``STATE_SIZE`` at import), on the thread that runs the CPU, never during a hook, except
``irqs_pending``, which other threads set under the guest's lock (a 32-bit store: the hook sees
the old or the new value, and a new interrupt also stops the CPU).  It holds no Python object:
the shadow's arrays stay mapped until the CPU is freed, and the guest's memory is guarded
against a launcher that shrinks it (``lguestfs/_memguard.c``).
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Unicorn 2's uc_tlb_entry and its TLB-fill callback. */
struct tlb_entry {
    uint64_t paddr;
    uint32_t perms;
};
typedef bool (*fill_fn)(void *uc, uint64_t vaddr, int access, struct tlb_entry *entry, void *data);
typedef int (*stop_fn)(void *uc);
/* ...its INTR callback, and uc_reg_read_batch / uc_reg_write_batch. */
typedef void (*trap_fn)(void *uc, uint32_t intno, void *data);
typedef int (*regs_fn)(void *uc, const int32_t *ids, void *const *values, int count);
/* ...uc_ctl, and QEMU's tlb_flush_page(CPUState *, vaddr). */
typedef int (*ctl_fn)(void *uc, int control, ...);
typedef void (*flush_page_fn)(void *cpu, uint64_t vaddr);

/* One cached shadow (PageTables.slots): its PTE array, its slot bytes, its page directory. */
struct shadow {
    uint32_t *ptes; /* NULL: an empty slot */
    uint8_t *tables;
    uint64_t gpgdir;
};

struct hook_state {
    uint32_t *ptes;           /* the current shadow: PTE of virtual page n at ptes[n] */
    uint8_t *tables;          /* ...and its page-directory slots looked at (1 byte each) */
    uint32_t *hflags;         /* the CPU's live hflags: the CPL in the bits of cpl_mask */
    uint8_t *memory;          /* guest-physical 0 */
    uint64_t pfnlimit;        /* the Host touches guest memory below this page only */
    uint64_t gpgdir;          /* the guest's page directory the current shadow is for */
    uint64_t pages;           /* how many entries ``ptes`` has (0: no table yet) */
    uint64_t host_vaddr;      /* the Host's page (the GDT): read-only, at this address... */
    uint64_t host_paddr;      /* ...mapped to this physical one */
    fill_fn slow_fill;        /* the Python hooks, for whatever these do not decide */
    trap_fn slow_trap;
    stop_fn stop;             /* uc_emu_stop */
    uint64_t fills;           /* misses since the TLB was last flushed */
    uint64_t stop_at_fills;   /* stop the CPU when ``fills`` reaches this (0: never) */
    uint32_t guest_page_fault; /* the perms that refuse with the guest's #PF (patch 0003) */
    int32_t access_write;     /* Unicorn's UC_MEM_WRITE */
    uint32_t prot_rx;         /* Unicorn's UC_PROT_READ | UC_PROT_EXEC */
    uint32_t prot_write;      /* Unicorn's UC_PROT_WRITE */
    uint32_t cpl_mask;
    uint32_t page_shift;      /* the i386 paging constants (lguestfs.abi) */
    uint32_t pte_present;
    uint32_t pte_rw;
    uint32_t pte_user;
    uint32_t pte_accessed;
    uint32_t pte_dirty;
    uint32_t pte_global;
    uint32_t pte_refused;     /* PWT | PSE: a PTE with either kills */
    uint32_t pde_allowed;     /* the flags a PDE may have */
    uint32_t switcher_pde;    /* the first page-directory slot of the Host's */
    uint32_t err_present;     /* the page-fault error code's bits */
    uint32_t err_write;
    uint32_t err_user;
    /* the traps */
    regs_fn read_regs;        /* uc_reg_read_batch */
    regs_fn write_regs;       /* uc_reg_write_batch */
    const uint32_t *idt;      /* the guest's gates: low and high word of each (high 0: absent) */
    const int32_t *error_code; /* the engine's env (calibrated): the exception's error code, */
    const int32_t *exception_is_int; /* ...raised by an int instruction?, */
    int32_t *old_exception;   /* ...the exception in flight (-1: none) */
    const uint64_t *fault_address; /* the faulting byte of a refused fill: CR2 */
    uint64_t lguest_data;     /* guest-physical; 0 until LGUEST_INIT */
    uint64_t traps;           /* traps reflected (by Python too), for status */
    uint64_t page_faults;     /* ...of them page faults */
    uint32_t irqs_pending;    /* the guest's pending interrupts: Python injects them */
    uint32_t traps_to_python; /* 1 while a trap waits for the run to end (traps._defer) */
    uint32_t ss1;             /* SET_STACK: the kernel stack a trap from user mode lands on */
    uint32_t esp1;
    int32_t trap_regs[5];     /* SS, ESP, EFLAGS, CS, EIP: what a trap frame holds */
    int32_t enter_regs[5];    /* SS, CS, ESP, EIP, EFLAGS: a privilege change */
    int32_t jump_regs[3];     /* ESP, CS, EIP: a trap at the same level */
    uint32_t trap_pf;         /* the ABI constants (lguestfs.abi) */
    uint32_t syscall_vector;
    uint32_t guest_pl;
    uint32_t guest_cs;
    uint32_t trap_gate;
    uint32_t interrupt_gate;
    uint32_t eflags_if;
    uint32_t ld_irq_enabled;
    uint32_t ld_cr2;
    /* the page-table hypercalls */
    struct shadow shadows[4]; /* every cached shadow, the current one (``ptes``) among them */
    uint64_t kernel_address;  /* SET_PTE at or above it changes every shadow */
    uint64_t *hypercalls;     /* the hypercall counters, by number (Lguest.hypercall_counts)... */
    uint32_t other_hypercalls; /* ...the last, at this index, for all other numbers */
    uint32_t next_hcall;      /* the async ring's cursor (lg->next_hcall) */
    ctl_fn ctl;               /* uc_ctl, called with tlb_flush: Cpu.flush_tlb */
    int32_t tlb_flush;
    flush_page_fn flush_page; /* tlb_flush_page on... */
    void *cpu;                /* ...the engine's CPUState: Cpu.flush_tlb_page */
    int32_t hypercall_regs[5]; /* CS, EAX, EDX, EBX, ECX: what a hypercall reads */
    uint32_t trap_entry;      /* LGUEST_TRAP_ENTRY, and the calls done here */
    uint32_t hcall_flush_async;
    uint32_t hcall_set_pte;
    uint32_t hcall_set_pmd;
    uint32_t ld_hcall_status; /* the ring in lguest_data: status bytes, slots, their count */
    uint32_t ld_hcalls;
    uint32_t ring_size;
    uint32_t slot_bytes;
    uint8_t status_done;
};

enum walk { MAPPED, FORBIDDEN, DECIDE_IN_PYTHON };

/* GuestMemory.ok(addr, length): the kernel's lguest_address_ok(). */
static bool guest_range_ok(const struct hook_state *s, uint64_t addr, uint64_t length)
{
    uint64_t end = (addr + length) & 0xFFFFFFFFu;
    return addr <= end && end >> s->page_shift < s->pfnlimit;
}

static bool guest_ok(const struct hook_state *s, uint64_t addr)
{
    return guest_range_ok(s, addr, 4);
}

/* GuestMemory.read_u32: false, nothing read, outside guest memory. */
static bool read_guest(const struct hook_state *s, uint64_t addr, uint32_t *value)
{
    if (!guest_ok(s, addr))
        return false;
    memcpy(value, s->memory + addr, 4);
    return true;
}

/* Where the guest's PTE for vaddr is, in the page table its PDE gpde points at. */
static uint64_t gpte_address(const struct hook_state *s, uint32_t gpde, uint64_t vaddr)
{
    uint32_t flags = (1u << s->page_shift) - 1;
    return (gpde & ~flags) + ((vaddr >> s->page_shift) & 1023u) * 4u;
}

static enum walk demand_page(struct hook_state *s, uint64_t vaddr, bool write, bool user)
{
    uint32_t pde_index = (uint32_t)(vaddr >> 22), gpde, gpte, spte;
    uint64_t pde_addr = s->gpgdir + pde_index * 4u, pte_addr;
    uint32_t flags = (1u << s->page_shift) - 1;

    if (pde_index >= s->switcher_pde || !read_guest(s, pde_addr, &gpde))
        return DECIDE_IN_PYTHON; /* kills */
    if (!(gpde & s->pte_present))
        return FORBIDDEN;
    if (!s->tables[pde_index]) {
        if ((gpde & flags & ~s->pde_allowed) || gpde >> s->page_shift >= s->pfnlimit)
            return DECIDE_IN_PYTHON; /* "bad page directory entry" */
        s->tables[pde_index] = 1;
    }
    pte_addr = gpte_address(s, gpde, vaddr);
    if (!read_guest(s, pte_addr, &gpte))
        return DECIDE_IN_PYTHON;
    if (!(gpte & s->pte_present) || (write && !(gpte & s->pte_rw))
        || (user && !(gpte & s->pte_user)))
        return FORBIDDEN;
    if ((gpte & s->pte_refused) || gpte >> s->page_shift >= s->pfnlimit)
        return DECIDE_IN_PYTHON; /* "bad page table entry" */
    gpte |= s->pte_accessed | (write ? s->pte_dirty : 0);
    spte = gpte & ~s->pte_global;
    if (!(gpte & s->pte_dirty))
        spte &= ~s->pte_rw;
    s->ptes[vaddr >> s->page_shift] = spte;
    memcpy(s->memory + pte_addr, &gpte, 4);
    return MAPPED;
}

static bool fill(void *uc, uint64_t vaddr, int access, struct tlb_entry *entry, void *data)
{
    struct hook_state *s = data;
    bool write = access == s->access_write, user;
    uint32_t pte, needed;

    if (++s->fills == s->stop_at_fills)
        s->stop(uc); /* the run ends at the next block: the runner flushes so the TLB can grow */
    if (vaddr == s->host_vaddr && !write) {
        entry->paddr = s->host_paddr;
        entry->perms = s->prot_rx;
        return true;
    }
    if (vaddr >> s->page_shift >= s->pages)
        return s->slow_fill(uc, vaddr, access, entry, data);
    user = (*s->hflags & s->cpl_mask) == 3;
    pte = s->ptes[vaddr >> s->page_shift];
    needed = s->pte_present | (write ? s->pte_rw : 0) | (user ? s->pte_user : 0);
    if ((pte & needed) != needed) {
        switch (demand_page(s, vaddr, write, user)) {
        case MAPPED:
            pte = s->ptes[vaddr >> s->page_shift];
            break;
        case FORBIDDEN:
            entry->paddr = (pte ? s->err_present : 0) | (write ? s->err_write : 0)
                           | (user ? s->err_user : 0);
            entry->perms = s->guest_page_fault;
            return false;
        case DECIDE_IN_PYTHON:
            return s->slow_fill(uc, vaddr, access, entry, data);
        }
    }
    entry->paddr = pte & ~(uint32_t)((1u << s->page_shift) - 1);
    entry->perms = s->prot_rx | (pte & s->pte_rw ? s->prot_write : 0);
    return true;
}

/* PageTables.guest_pa: the guest-physical address of vaddr by a plain walk of the guest's
   tables; false where Python kills ("Bad address", or an entry outside guest memory). */
static bool guest_pa(const struct hook_state *s, uint32_t vaddr, uint64_t *pa)
{
    uint32_t flags = (1u << s->page_shift) - 1, gpde, gpte;

    if (!read_guest(s, s->gpgdir + (vaddr >> 22) * 4u, &gpde) || !(gpde & s->pte_present)
        || !read_guest(s, gpte_address(s, gpde, vaddr), &gpte) || !(gpte & s->pte_present))
        return false;
    *pa = (gpte & ~flags) | (vaddr & flags);
    return true;
}

/* Five registers in one uc_reg_read_batch, 32 bits each (a segment register fills 2 bytes). */
static bool read_five(const struct hook_state *s, void *uc, const int32_t ids[5], uint32_t regs[5])
{
    uint64_t slots[5] = {0};
    void *refs[5] = {&slots[0], &slots[1], &slots[2], &slots[3], &slots[4]};
    int i;

    if (s->read_regs(uc, ids, refs, 5) != 0)
        return false;
    for (i = 0; i < 5; i++)
        regs[i] = (uint32_t)slots[i];
    return true;
}

/* count (at most five) registers in one uc_reg_write_batch: see lguestfs.cpu for why a batch. */
static bool write_regs(const struct hook_state *s, void *uc, const int32_t *ids,
                       const uint32_t *values, int count)
{
    uint64_t slots[5];
    void *refs[5];
    int i;

    for (i = 0; i < count; i++) {
        slots[i] = values[i];
        refs[i] = &slots[i];
    }
    return s->write_regs(uc, ids, refs, count) == 0;
}

/* interrupts.set_guest_interrupt for a page fault or a system call; false (nothing done) for
   whatever Python must decide. */
static bool reflect(struct hook_state *s, void *uc, uint32_t intno)
{
    bool fault = intno == s->trap_pf && !*s->exception_is_int, user;
    uint32_t lo, hi, cpl, regs[5], ss, esp, eflags, irq_enabled, frame[6], words = 0;
    uint32_t new_ss, stack, new_esp, handler, old_hflags;
    uint64_t top, bottom;

    if (s->traps_to_python || s->irqs_pending || !s->lguest_data)
        return false;
    if (!fault && intno != s->syscall_vector)
        return false;
    lo = s->idt[2 * intno];
    hi = s->idt[2 * intno + 1];
    if (!hi)
        return false; /* "unhandled trap" */
    cpl = *s->hflags & s->cpl_mask;
    /* int $0x80 goes through the guest's own gate only if it is a trap gate the CPL may use */
    if (!fault && (((hi >> 8) & 0xF) != s->trap_gate || ((hi >> 13) & 3) < cpl))
        return false;

    if (!read_five(s, uc, s->trap_regs, regs))
        return false;
    ss = regs[0], esp = regs[1], eflags = regs[2];
    user = (ss & 3) != s->guest_pl;
    new_ss = user ? s->ss1 : ss;
    stack = user ? s->esp1 : esp;
    if (!guest_pa(s, stack, &top)
        || !read_guest(s, s->lguest_data + s->ld_irq_enabled, &irq_enabled)
        || (fault && !guest_ok(s, s->lguest_data + s->ld_cr2)))
        return false;

    /* The frame, lowest address first: error code, EIP, CS, EFLAGS, then ESP, SS from user. */
    if (fault)
        frame[words++] = (uint32_t)*s->error_code;
    frame[words++] = regs[4];
    frame[words++] = regs[3];
    frame[words++] = irq_enabled & s->eflags_if ? eflags : eflags & ~s->eflags_if;
    if (user) {
        frame[words++] = esp;
        frame[words++] = ss;
    }
    if (top < 4u * words || !guest_range_ok(s, top - 4u * words, 4u * words))
        return false; /* Python pushes word by word and names the word that falls outside */
    bottom = top - 4u * words;
    new_esp = stack - 4u * words;
    handler = (lo & 0xFFFFu) | (hi & 0xFFFF0000u);

    if (user) {
        /* Cpu.enter: the CPL first, so Unicorn's descriptor checks accept the new SS */
        old_hflags = *s->hflags;
        *s->hflags = (old_hflags & ~s->cpl_mask) | (new_ss & s->cpl_mask);
        uint32_t enter[5] = {new_ss, s->guest_cs, new_esp, handler, eflags};
        if (!write_regs(s, uc, s->enter_regs, enter, 5)) {
            *s->hflags = old_hflags; /* SS refused, before anything was loaded: Python kills */
            return false;
        }
    } else {
        uint32_t jump[3] = {new_esp, s->guest_cs, handler};
        if (!write_regs(s, uc, s->jump_regs, jump, 3))
            return false;
    }
    memcpy(s->memory + bottom, frame, 4u * words);
    if (fault) {
        uint32_t cr2 = (uint32_t)*s->fault_address;
        memcpy(s->memory + s->lguest_data + s->ld_cr2, &cr2, 4);
        *s->old_exception = -1; /* handled: the next fault is no double fault */
        s->page_faults++;
    }
    if (((hi >> 8) & 0xF) == s->interrupt_gate)
        memset(s->memory + s->lguest_data + s->ld_irq_enabled, 0, 4);
    s->traps++;
    return true;
}

/* pagetables._outdates: does a TLB entry made from shadow entry old go wrong with new? */
static bool outdates(const struct hook_state *s, uint32_t old, uint32_t new)
{
    uint32_t lost = old & ~new & (s->pte_present | s->pte_rw | s->pte_user);
    return (old & s->pte_present) && (lost || (old ^ new) >> s->page_shift);
}

/* Cpu.flush_tlb, the whole TLB. */
static void flush_tlb(struct hook_state *s, void *uc)
{
    s->ctl(uc, s->tlb_flush);
    s->fills = 0;
}

/* Would PageTables.set_pte kill?  (The page-directory slot of the Host, or an entry with A or
   D set that points outside guest memory or has PWT or PSE.)  Then Python does it all. */
static bool set_pte_kills(const struct hook_state *s, uint32_t vaddr, uint32_t gpte)
{
    return vaddr >> 22 >= s->switcher_pde
           || ((gpte & (s->pte_accessed | s->pte_dirty))
               && ((gpte & s->pte_refused) || gpte >> s->page_shift >= s->pfnlimit));
}

/* PageTables.set_pte (one that does not kill). */
static void set_pte(struct hook_state *s, uint32_t gpgdir, uint32_t vaddr, uint32_t gpte)
{
    uint32_t vpn = vaddr >> s->page_shift, spte = 0, old;
    bool every_shadow = vaddr >= s->kernel_address;
    int i;

    if (gpte & (s->pte_accessed | s->pte_dirty)) { /* _shadow_pte */
        spte = gpte & ~s->pte_global;
        if (!(gpte & s->pte_dirty))
            spte &= ~s->pte_rw;
    }
    for (i = 0; i < 4; i++) {
        struct shadow *shadow = &s->shadows[i];
        if (!shadow->ptes || (!every_shadow && shadow->gpgdir != gpgdir)
            || !shadow->tables[vaddr >> 22])
            continue;
        old = shadow->ptes[vpn];
        shadow->ptes[vpn] = spte;
        if (outdates(s, old, spte) && shadow->ptes == s->ptes)
            s->flush_page(s->cpu, (uint64_t)vpn << s->page_shift);
    }
}

/* PageTables.set_pmd. */
static void set_pmd(struct hook_state *s, void *uc, uint32_t gpgdir, uint32_t index)
{
    int i;

    if (index >= s->switcher_pde)
        return;
    for (i = 0; i < 4; i++) {
        struct shadow *shadow = &s->shadows[i];
        if (!shadow->ptes || shadow->gpgdir != gpgdir || !shadow->tables[index])
            continue;
        shadow->tables[index] = 0; /* Shadow.forget_pde */
        memset(shadow->ptes + index * 1024u, 0, 4096);
        if (shadow->ptes == s->ptes)
            flush_tlb(s, uc);
    }
}

/* A call done here (FLUSH_ASYNC, SET_PTE, SET_PMD) that does not kill; false for Python. */
static bool hcall_here(const struct hook_state *s, uint32_t call, uint32_t arg2, uint32_t arg3)
{
    return call == s->hcall_flush_async || call == s->hcall_set_pmd
           || (call == s->hcall_set_pte && !set_pte_kills(s, arg2, arg3));
}

/* Lguest.count_hypercall, then hypercalls.do_hcall for the calls above. */
static void do_hcall(struct hook_state *s, void *uc, const uint32_t args[4])
{
    s->hypercalls[args[0] < s->other_hypercalls ? args[0] : s->other_hypercalls]++;
    if (args[0] == s->hcall_set_pte)
        set_pte(s, args[1], args[2], args[3]);
    else if (args[0] == s->hcall_set_pmd)
        set_pmd(s, uc, args[1], args[2]);
}

/* hypercalls.trapped_hypercall, while it and every call queued in the async ring before it
   is one done here; false (the ring's cursor on the first that is not) for Python, which goes
   on from there exactly as it would have from the start. */
static bool hypercall(struct hook_state *s, void *uc)
{
    uint32_t regs[5], args[4], slot[4], n;
    uint8_t *status = s->memory + s->lguest_data + s->ld_hcall_status;
    const uint8_t *ring = s->memory + s->lguest_data + s->ld_hcalls;
    int i;

    if (s->traps_to_python || s->irqs_pending || !s->lguest_data)
        return false;
    if (!read_five(s, uc, s->hypercall_regs, regs))
        return false;
    if ((regs[0] & 3) != s->guest_pl || !hcall_here(s, regs[1], regs[3], regs[4]))
        return false; /* from user mode a #GP; else a call only Python does */
    /* do_async_hcalls: the ring is inside lguest_data, which LGUEST_INIT checked */
    for (i = 0; i < (int)s->ring_size && status[s->next_hcall] != s->status_done; i++) {
        n = s->next_hcall;
        memcpy(slot, ring + n * s->slot_bytes, sizeof(slot)); /* call, arg2, arg3, arg1 */
        if (!hcall_here(s, slot[0], slot[1], slot[2]))
            return false;
        s->next_hcall = (n + 1) % s->ring_size;
        args[0] = slot[0], args[1] = slot[3], args[2] = slot[1], args[3] = slot[2];
        do_hcall(s, uc, args);
        status[n] = s->status_done;
    }
    args[0] = regs[1], args[1] = regs[2], args[2] = regs[3], args[3] = regs[4];
    do_hcall(s, uc, args);
    return true;
}

static void trap(void *uc, uint32_t intno, void *data)
{
    struct hook_state *s = data;

    if (intno == s->trap_entry ? !hypercall(s, uc) : !reflect(s, uc, intno))
        s->slow_trap(uc, intno, data);
}

static PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "lguestfs.cpu._hooks",
    .m_doc = "Unicorn's TLB-fill and INTR hooks in C: FILL and TRAP are their addresses, "
             "STATE_SIZE their state's size.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__hooks(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    PyObject *fill_address = PyLong_FromVoidPtr((void *)fill);
    PyObject *trap_address = PyLong_FromVoidPtr((void *)trap);
    int failed = fill_address == NULL || trap_address == NULL
                 || PyModule_AddObjectRef(m, "FILL", fill_address) < 0
                 || PyModule_AddObjectRef(m, "TRAP", trap_address) < 0
                 || PyModule_AddIntConstant(m, "STATE_SIZE", sizeof(struct hook_state)) < 0;
    Py_XDECREF(fill_address);
    Py_XDECREF(trap_address);
    if (failed) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
