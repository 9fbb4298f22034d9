/* lguestfs.cpu._fill: Unicorn's TLB miss answered in C from the guest's shadow page table.

Where this sits: Unicorn runs the guest with a software TLB (``UC_TLB_VIRTUAL``); every miss
calls the ``UC_HOOK_TLB_FILL`` hook.  A real Linux guest misses hundreds of times per fork+exec
(each address-space switch empties the TLB, as it does on hardware), and a miss answered in
Python costs about 2 us, ctypes' callback included: with Python answering them, the misses were
a third of a fork's time.  Yet almost every miss needs no decision at all: the shadow entry
``pagetables`` installed is there and allows the access.  So the hook Unicorn calls is ``fill``
below, which looks the entry up in the current shadow (a flat array of i386 PTEs, one per
virtual page) and answers at once; anything else goes to the Python hook (``slow``), which
walks the guest's tables, enforces spec 6 and installs the entry, or refuses the miss.

The ``struct fill_state`` is written by ``lguestfs.cpu._cpu`` (through a ctypes mirror, checked
against ``STATE_SIZE`` at import), always on the thread that runs the CPU, never during a fill.
It holds no Python object: the shadow's array stays mapped until the CPU is freed.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdbool.h>
#include <stdint.h>

/* Unicorn 2's uc_tlb_entry and its TLB-fill callback. */
struct tlb_entry {
    uint64_t paddr;
    uint32_t perms;
};
typedef bool (*fill_fn)(void *uc, uint64_t vaddr, int access, struct tlb_entry *entry, void *data);
typedef int (*stop_fn)(void *uc);

struct fill_state {
    const uint32_t *ptes;     /* the current shadow: PTE of virtual page n at ptes[n] */
    const uint32_t *hflags;   /* the CPU's live hflags: the CPL in the bits of cpl_mask */
    uint64_t pages;           /* how many entries ``ptes`` has (0: no table yet) */
    uint64_t host_vaddr;      /* the Host's page (the GDT): read-only, at this address... */
    uint64_t host_paddr;      /* ...mapped to this physical one */
    fill_fn slow;             /* the Python hook, for whatever this one does not answer */
    stop_fn stop;             /* uc_emu_stop */
    uint64_t fills;           /* misses since the TLB was last flushed */
    uint64_t stop_at_fills;   /* stop the CPU when ``fills`` reaches this (0: never) */
    int32_t access_write;     /* Unicorn's UC_MEM_WRITE */
    uint32_t prot_rx;         /* Unicorn's UC_PROT_READ | UC_PROT_EXEC */
    uint32_t prot_write;      /* Unicorn's UC_PROT_WRITE */
    uint32_t pte_present;     /* the i386 PTE bits (lguestfs.abi) */
    uint32_t pte_rw;
    uint32_t pte_user;
    uint32_t cpl_mask;
    uint32_t page_shift;
};

static bool fill(void *uc, uint64_t vaddr, int access, struct tlb_entry *entry, void *data)
{
    struct fill_state *s = data;
    bool write = access == s->access_write;

    if (++s->fills == s->stop_at_fills)
        s->stop(uc); /* the run ends at the next block: the runner flushes so the TLB can grow */
    if (vaddr == s->host_vaddr && !write) {
        entry->paddr = s->host_paddr;
        entry->perms = s->prot_rx;
        return true;
    }
    if (vaddr >> s->page_shift < s->pages) {
        uint32_t pte = s->ptes[vaddr >> s->page_shift];
        uint32_t needed = s->pte_present | (write ? s->pte_rw : 0)
                          | ((*s->hflags & s->cpl_mask) == 3 ? s->pte_user : 0);
        if ((pte & needed) == needed) {
            entry->paddr = pte & ~(uint32_t)((1u << s->page_shift) - 1);
            entry->perms = s->prot_rx | (pte & s->pte_rw ? s->prot_write : 0);
            return true;
        }
    }
    return s->slow(uc, vaddr, access, entry, data);
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
