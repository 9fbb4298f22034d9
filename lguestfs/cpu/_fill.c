/* lguestfs.cpu._fill: Unicorn's TLB miss answered in C: the shadow, and 2.6.24's demand_page.

Where this sits: Unicorn runs the guest with a software TLB (``UC_TLB_VIRTUAL``); every miss
calls the ``UC_HOOK_TLB_FILL`` hook.  A real Linux guest misses hundreds of times per fork+exec
(each address-space switch empties the TLB, as it does on hardware), and a miss answered in
Python costs 2-4 us, ctypes' callback included: with Python answering them, the misses were a
third of a fork's time.  So the hook Unicorn calls is ``fill`` below:

1. the entry of the current shadow (a flat array of i386 PTEs, one per virtual page, kept by
   ``lguestfs.pagetables``) allows the access: map it;
2. else ``demand_page`` walks the guest's own tables as ``PageTables.demand_page`` does (that
   Python is the reference; this is its common path, line for line): the guest allows it ->
   set Accessed (and Dirty) in the guest's PTE, install the shadow entry, map it; the guest
   forbids it -> refuse with the guest's own page fault (``perms`` = ``guest_page_fault``, the
   error code in ``paddr``): the project's Unicorn (``patches/unicorn/0003``) raises #PF there
   and the INTR hook reflects it, the run going on;
3. anything that needs a decision (a bad entry or address that kills the guest, the switcher
   pages, an address beyond the table) goes to the Python hook (``slow``), which decides.

The ``struct fill_state`` is written by ``lguestfs.cpu._cpu`` (through a ctypes mirror, checked
against ``STATE_SIZE`` at import), always on the thread that runs the CPU, never during a fill.
It holds no Python object: the shadow's arrays stay mapped until the CPU is freed, and the
guest's memory is guarded against a launcher that shrinks it (``lguestfs/_memguard.c``).
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

struct fill_state {
    uint32_t *ptes;           /* the current shadow: PTE of virtual page n at ptes[n] */
    uint8_t *tables;          /* ...and its page-directory slots looked at (1 byte each) */
    const uint32_t *hflags;   /* the CPU's live hflags: the CPL in the bits of cpl_mask */
    uint8_t *memory;          /* guest-physical 0 */
    uint64_t pfnlimit;        /* the Host touches guest memory below this page only */
    uint64_t gpgdir;          /* the guest's page directory the current shadow is for */
    uint64_t pages;           /* how many entries ``ptes`` has (0: no table yet) */
    uint64_t host_vaddr;      /* the Host's page (the GDT): read-only, at this address... */
    uint64_t host_paddr;      /* ...mapped to this physical one */
    fill_fn slow;             /* the Python hook, for whatever this one does not decide */
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
};

enum walk { MAPPED, FORBIDDEN, DECIDE_IN_PYTHON };

/* GuestMemory.ok(addr, 4): the kernel's lguest_address_ok(). */
static bool guest_ok(const struct fill_state *s, uint64_t addr)
{
    uint64_t end = (addr + 4) & 0xFFFFFFFFu;
    return addr <= end && end >> s->page_shift < s->pfnlimit;
}

static enum walk demand_page(struct fill_state *s, uint64_t vaddr, bool write, bool user)
{
    uint32_t pde_index = (uint32_t)(vaddr >> 22), gpde, gpte, spte;
    uint64_t pde_addr = s->gpgdir + pde_index * 4u, pte_addr;
    uint32_t flags = (1u << s->page_shift) - 1;

    if (pde_index >= s->switcher_pde || !guest_ok(s, pde_addr))
        return DECIDE_IN_PYTHON; /* kills */
    memcpy(&gpde, s->memory + pde_addr, 4);
    if (!(gpde & s->pte_present))
        return FORBIDDEN;
    if (!s->tables[pde_index]) {
        if ((gpde & flags & ~s->pde_allowed) || gpde >> s->page_shift >= s->pfnlimit)
            return DECIDE_IN_PYTHON; /* "bad page directory entry" */
        s->tables[pde_index] = 1;
    }
    pte_addr = (gpde & ~flags) + ((vaddr >> s->page_shift) & 1023u) * 4u;
    if (!guest_ok(s, pte_addr))
        return DECIDE_IN_PYTHON;
    memcpy(&gpte, s->memory + pte_addr, 4);
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
    struct fill_state *s = data;
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
        return s->slow(uc, vaddr, access, entry, data);
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
            return s->slow(uc, vaddr, access, entry, data);
        }
    }
    entry->paddr = pte & ~(uint32_t)((1u << s->page_shift) - 1);
    entry->perms = s->prot_rx | (pte & s->pte_rw ? s->prot_write : 0);
    return true;
}

static PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "lguestfs.cpu._fill",
    .m_doc = "Unicorn's TLB-fill hook in C: FILL is its address, STATE_SIZE its state's size.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__fill(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    PyObject *address = PyLong_FromVoidPtr((void *)fill);
    int failed = address == NULL || PyModule_AddObjectRef(m, "FILL", address) < 0
                 || PyModule_AddIntConstant(m, "STATE_SIZE", sizeof(struct fill_state)) < 0;
    Py_XDECREF(address);
    if (failed) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
