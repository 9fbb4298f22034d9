"""The guest side: freestanding i386 programs that speak the lguest paravirtual ABI.

``rt/`` is the C runtime every guest links (``rt/lguest.h`` documents it), ``os/`` the default
guest OS, and ``build.py`` turns them, or one of the test guests in ``tests/guests/``, into an
ELF file the launcher boots: ``launcher.guests.build.build_guest("os")`` or ``build_single(path)``.
"""
