/* lguestfs._memguard: a launcher that shrinks its guest memory costs that guest, not the daemon.

Where this sits: ``sharing`` maps the launcher's memory object (a memfd, a /dev/shm file) into the
daemon, and ``memory.GuestMemory`` registers that range here.  The launcher still holds the
object, and may ftruncate() it at any moment.  A page past the new end has nothing behind it: the
next touch by Unicorn's translated code, or by the Host's own Python reading a page table, raises
SIGBUS, whose default action kills the whole daemon, every guest with it.  (So does a hole the
daemon writes into when the object's tmpfs is full: a sparse file in /dev/shm, which any user can
fill.)

So this module installs a SIGBUS handler (``sigaction``, ``SA_SIGINFO``).  For a fault inside a
registered range it maps anonymous zero pages over the *whole* range with ``MAP_FIXED``, sets that
range's "lost" flag and returns: the faulting instruction, native or Python's memcpy, is retried
on the zero pages and completes harmlessly.  The Host then sees the flag (``GuestMemory.lost``)
and kills that guest with a clear reason; the zero pages go with the guest's mapping at close.
Any other SIGBUS is passed on to the handler that was there before (Python's faulthandler, or
the default action, which ends the process as it would have without this module).

Async-signal safety: the handler touches only a fixed, statically allocated table of ranges (no
locks, no allocation) and makes one ``mmap`` system call.  A range is published by storing its
end last (release), withdrawn by storing end 0; the handler reads end first (acquire).  Python
registers a range right after mapping it and withdraws it before unmapping it, both under the
GIL, so the table never names pages that belong to something else.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define SLOTS 4096 /* live guests at once; a full table refuses INITIALIZE (ENOMEM) */

struct range {
    uintptr_t start;
    uintptr_t end; /* 0: slot free */
    int lost;
};

static struct range ranges[SLOTS];
static struct sigaction previous;
static int installed;

static void chain(int sig, siginfo_t *info, void *context)
{
    if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(sig, info, context);
        return;
    }
    if (previous.sa_handler == SIG_DFL || previous.sa_handler == SIG_IGN) {
        /* The faulting instruction runs again and the default action ends the process. */
        signal(sig, SIG_DFL);
        return;
    }
    previous.sa_handler(sig);
}

static void on_sigbus(int sig, siginfo_t *info, void *context)
{
    if (info->si_code == BUS_ADRERR) { /* a page past the end of its object */
        uintptr_t address = (uintptr_t)info->si_addr;
        for (int i = 0; i < SLOTS; i++) {
            uintptr_t end = __atomic_load_n(&ranges[i].end, __ATOMIC_ACQUIRE);
            uintptr_t start = ranges[i].start;
            if (end == 0 || address < start || address >= end)
                continue;
            void *zeros = mmap((void *)start, end - start, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
            if (zeros == MAP_FAILED)
                break;
            __atomic_store_n(&ranges[i].lost, 1, __ATOMIC_RELEASE);
            return;
        }
    }
    chain(sig, info, context);
}

static int install(void)
{
    if (installed)
        return 0;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGBUS, &action, &previous) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    installed = 1;
    return 0;
}

static PyObject *guard(PyObject *module, PyObject *args)
{
    unsigned long long start, length;
    if (!PyArg_ParseTuple(args, "KK:guard", &start, &length))
        return NULL;
    if (length == 0 || start + length < start) {
        PyErr_SetString(PyExc_ValueError, "empty or wrapping range");
        return NULL;
    }
    if (install() != 0)
        return NULL;
    for (int i = 0; i < SLOTS; i++) {
        if (__atomic_load_n(&ranges[i].end, __ATOMIC_ACQUIRE) != 0)
            continue;
        ranges[i].start = (uintptr_t)start;
        __atomic_store_n(&ranges[i].lost, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&ranges[i].end, (uintptr_t)(start + length), __ATOMIC_RELEASE);
        return PyLong_FromLong(i);
    }
    return PyErr_Format(PyExc_MemoryError, "more than %d guest memory ranges guarded", SLOTS);
}

static int slot_of(PyObject *args, const char *format)
{
    int slot;
    if (!PyArg_ParseTuple(args, format, &slot))
        return -1;
    if (slot < 0 || slot >= SLOTS || __atomic_load_n(&ranges[slot].end, __ATOMIC_ACQUIRE) == 0) {
        PyErr_Format(PyExc_ValueError, "slot %d is not guarded", slot);
        return -1;
    }
    return slot;
}

static PyObject *unguard(PyObject *module, PyObject *args)
{
    int slot = slot_of(args, "i:unguard");
    if (slot < 0)
        return NULL;
    __atomic_store_n(&ranges[slot].end, 0, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

static PyObject *lost(PyObject *module, PyObject *args)
{
    int slot = slot_of(args, "i:lost");
    if (slot < 0)
        return NULL;
    return PyBool_FromLong(__atomic_load_n(&ranges[slot].lost, __ATOMIC_ACQUIRE));
}

static PyMethodDef methods[] = {
    {"guard", guard, METH_VARARGS,
     "guard(start, length) -> slot: catch SIGBUS in [start, start + length) from now on."},
    {"unguard", unguard, METH_VARARGS, "unguard(slot): stop guarding (before unmapping)."},
    {"lost", lost, METH_VARARGS,
     "lost(slot) -> bool: did a SIGBUS replace the range with zero pages?"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "lguestfs._memguard",
    "Catch SIGBUS on guest memory whose object the launcher shrank (see _memguard.c).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__memguard(void)
{
    return PyModule_Create(&module);
}
