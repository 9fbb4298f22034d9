"""The guest side: the programs that speak the lguest paravirtual ABI, built on this machine.

``linux/`` builds the main workload, a real Linux 2.6.24 kernel with its initramfs and disk
(``launcher.guests.linux.build_linux()``).  ``rt/`` is the C runtime every freestanding guest
links (``rt/lguest.h`` documents it), ``os/`` the project's own small OS, and ``build.py`` turns
them, or a single-file guest (the test guests in ``tests/guests/``, the bench's in
``scripts/benchlib/guests/``), into an ELF file the launcher boots:
``launcher.guests.build.build_guest("os")`` or ``build_single(path)``.  Everything built goes
to the cache directory of ``cache.py``.  ``handguest.py`` drives a guest by hand through the
node (no devices), with small i386 code builders, for the tests and the bench.
"""
