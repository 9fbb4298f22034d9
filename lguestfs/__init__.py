"""lguestfs: Linux 2.6.24's ``/dev/lguest``, served from user space by a FUSE daemon.

A launcher opens ``MOUNTPOINT/lguest``, writes requests (arrays of pointer-sized words) and reads
from it to run a guest kernel on an emulated i386 CPU.  Read the daemon in the order a request
travels through it:

1. ``cli``         -- starting: Unicorn checked (``cpu.calibrate``), mounting, signals, recovering
                      a mountpoint a crashed daemon left dead.
2. ``fs``          -- the FUSE adapter: the node tree (``lguest``, ``guests/<pid>/{waker,status}``).
3. ``callers``     -- who is on the other end of a request: word size, process pinning, signals.
4. ``protocol``    -- the request state machine of one handle: every request and errno of spec 1.
                      It sees a guest only through ``guest.GuestContract``.
5. ``sharing``     -- INITIALIZE: mapping the launcher's guest memory into the daemon, no copy.
   ``adopt``       -- a 32-bit launcher's private memory: copied, then mapped back over it.
   ``status``      -- the text of ``guests/<pid>/status``.
6. ``guest``       -- the runner: ``run()`` for each read, 2.6.24's ``run_guest()`` loop, inline on
                      trio's thread or on the guest's own thread, and the kicks that stop it.
   ``clock``       -- one thread for every guest's timer and every delayed kick.
7. ``state``       -- one guest's state, 2.6.24's ``struct lguest``, and its kill.
8. ``cpu``         -- Unicorn, behind a fence: the only package that imports it; the facts the
                      Host relies on, calibrated at start (``_calibrate``), and the ``Cpu``.
9. ``traps``       -- the CPU's hooks, 2.6.24's ``x86/core.c``: hypercalls, traps, refused
                      instructions, the TLB miss; around each run, what stopped it.
10. ``hypercalls`` -- every hypercall of spec 3, and the async ring.
11. ``interrupts`` -- injecting interrupts and reflecting traps through the guest's IDT (spec 5);
    ``idt``        -- the gates themselves.
12. ``pagetables`` -- the MMU: shadow tables and the rules the Host enforces on the guest's (6).
13. ``segments``   -- the GDT and TLS entries (spec 7).
14. ``memory``     -- bounds-checked access to guest-physical memory.

INITIALIZE goes cli (at start) -> fs -> protocol -> sharing -> memory -> guest -> state -> cpu.
A read goes fs -> protocol -> guest (the loop) -> cpu (``Cpu.run``) -> traps -> hypercalls,
interrupts, pagetables, segments (each working on ``state``) -> back out of ``Cpu.run`` to the
loop, which calls the read's ``on_exit`` -> protocol -> fs.  There is no import cycle: nothing
after ``guest`` imports it or ``traps``; ``hypercalls``, ``interrupts`` and ``traps`` import
``state``, the data they work on, and ``state`` imports none of them.

The launcher shares exactly two modules of this package, the interface: ``abi`` holds every
constant of the requests and of the guest ABI; ``node`` is the node as seen from outside (its
file names, the mount's fsname, the mount table).  Programs that need a live mount for a while
(the tests, ``scripts/run``, the bench) start and stop the daemon with ``mounting``.
The launcher's own reading order is in ``launcher/__init__.py``; the guest side (C) is in
``launcher/guests/``.
"""
