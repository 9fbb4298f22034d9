"""The launcher: an ordinary program that boots a guest through the lguest node.

It reaches the daemon only through the node, with ``os.open``, ``os.read`` and ``os.write``, as
the 2.6.24 launcher reached ``/dev/lguest``; of ``lguestfs`` it imports only the interface:
``lguestfs.abi`` (the constants) and ``lguestfs.node`` (the node's names and the mount table).
Read it in the order a guest comes to life:

1. ``main``      -- ``lguest-launch``: the command line, INITIALIZE, and the read loop.
2. ``layout``    -- shared guest memory, page tables, zero page, command line (spec 8).
3. ``loader``    -- the kernel file: an i386 ELF or a bzImage.
4. ``devices``   -- the device page, queue pages, interrupt numbers, NOTIFY and input routing.
5. ``virtqueue`` -- walking the guest's rings, and every rule a guest can break (spec 9).
6. ``console``, ``block``, ``net`` (with ``tap``) -- the three virtio devices.
7. ``waker``     -- the process that breaks us out of ``read()`` when input arrives, and
   ``lguest-waker PID`` for another shell.
8. ``node``      -- finding the node, and the words requests are made of.
9. ``errors``    -- ``LaunchError``: every failure is one line.
10. ``identity`` -- making sure this ``launcher`` is lguestfs's: the name is a common one.
11. ``netpeer``  -- a host at 10.0.2.2 on the other end of ``--net=udp:`` (ARP, ICMP echo).

``layout.prepare_guest`` is also what ``guests.handguest`` uses to drive a guest by hand (tests
and the bench).
"""

__project__ = "lguestfs"  # what launcher.identity looks for

from launcher.identity import check  # after the mark it checks

check()
