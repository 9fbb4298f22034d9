"""Where built guests live: one cache directory, outside the source tree and site-packages.

Every guest the project builds (the runtime, the default OS and test guests of
``launcher.guests.build``; the Linux kernel, initramfs and disk of ``launcher.guests.linux``)
goes under one directory, so that a read-only or installed source tree still works and a
rebuilt checkout reuses what an earlier one built:

* ``$LGUESTFS_CACHE`` when set (tests and CI may point it anywhere);
* otherwise ``${XDG_CACHE_HOME:-~/.cache}/lguestfs``, the XDG base directory rule.

Each user takes a subdirectory (``guests/``, ``linux/``) and keys its outputs by its inputs.
"""

import os
from pathlib import Path

CACHE_ENV = "LGUESTFS_CACHE"


def cache_dir() -> Path:
    """The project's cache directory (not created here)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lguestfs"
