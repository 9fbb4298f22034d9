"""lguestfs: Linux 2.6.24's ``/dev/lguest``, served from user space by a FUSE daemon.

A launcher opens ``MOUNTPOINT/lguest``, writes requests (arrays of pointer-sized words) and reads
from it to run a guest kernel on an emulated i386 CPU.  Read the daemon in the order a request
travels through it:

1. ``cli``         -- mounting, signals, recovering a mountpoint a crashed daemon left dead.
2. ``fs``          -- the FUSE adapter: the node tree (``lguest``, ``guests/<pid>/{waker,status}``).
3. ``callers``     -- who is on the other end of a request: word size, process pinning, signals.
4. ``protocol``    -- the request state machine of one handle: every request and errno of spec 1.
5. ``sharing``     -- mapping the launcher's guest memory into the daemon without copying.
   ``status``      -- the text of ``guests/<pid>/status``.
6. ``guest``       -- one guest: its thread, the run loop of spec 2, the timer, being stopped.
7. ``cpu``         -- the Unicorn i386 CPU at privilege level 1, and how it gets back to the Host.
8. ``hypercalls``  -- every hypercall of spec 3, and the async ring.
9. ``interrupts``  -- injecting interrupts and reflecting traps through the guest's IDT (spec 5).
10. ``pagetables`` -- the guest's page tables and the rules the Host enforces on them (spec 6).
11. ``segments``   -- the GDT and TLS entries (spec 7).
12. ``memory``     -- bounds-checked access to guest-physical memory.

The launcher shares exactly two modules of this package, the interface: ``abi`` holds every
constant of the requests and of the guest ABI; ``node`` is the node as seen from outside (its
file names, the mount's fsname, the mount table).  Programs that need a live mount for a while
(the tests, ``scripts/run``, the bench) start and stop the daemon with ``mounting``.
The launcher's own reading order is in ``launcher/__init__.py``; the guest side (C) is in
``launcher/guests/``.
"""
