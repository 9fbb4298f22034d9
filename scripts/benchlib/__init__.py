"""benchlib: the code behind ``scripts/bench``, the project's figures as one reproducible command.

It is not part of the product: it drives the product from outside, the way a user would.  A run
mounts a real lguestfs daemon and plays the launcher itself (``os.open``, ``os.write``, ``os.read``
on ``MOUNT/lguest``, guest memory laid out by ``launcher.layout``) or runs the real
``lguest-launch``, and times the whole path launcher → node → handle → guest → CPU → hypercall →
back.  Every figure that has a reference is measured beside it, in the same run.  Reading order:

1. ``report``       -- a figure, its goal, medians and percentiles, the table and the JSON.
2. ``rawcpu``       -- reference: the bench guest's own loops in a bare Unicorn, no daemon.
3. ``barefuse``     -- reference: a bare pyfuse3 file whose read returns at once.
4. ``handoff``      -- reference: one trio -> thread -> trio hand-off, alone.
5. ``elfinfo``      -- where the bench guest's loops and command block are.
6. ``daemon``       -- the lguestfs daemon under test, mounted in a temporary directory.
7. ``session``      -- the bench as launcher: one bench guest driven through the node.
8. ``figures``      -- each figure of issue 6, measured through the whole path.
9. ``scaleworker``  -- one launcher process of the scale figure.
10. ``killworker``  -- one launcher process of the SIGKILL figure, killed in its read.
11. ``__main__``    -- the command line: quick or ``--long``, ``--json PATH``, ``--only``.

The guest side is the bench's own: ``guests/bench_ops.c`` (every figure the bench drives itself)
and ``guests/bench_block.c`` (block throughput, run by ``lguest-launch``), freestanding C linked
with the guest runtime of ``launcher/guests/rt`` by ``launcher.guests.build.build_single``.
The bench uses the product and ``launcher``'s hand launcher, never the tests.
"""
