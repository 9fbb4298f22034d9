"""QEMU's TCG, the reference of the linux group: the same kernel source and config, the same
initramfs, the same shell, on an emulated PC instead of lguestfs.

``qemu-system-i386`` is Debian's ``qemu-system-x86`` (``scripts/bench`` installs it when it is
missing).  It runs with ``-accel tcg`` (QEMU's own JIT; no KVM: the comparison is emulator
against emulator), no default devices, the guest's first serial port on stdin/stdout, and boots
``launcher.guests.linux.build_pc_kernel()``'s ``bzImage`` (``kernel.PC_SERIAL``: the lguest
guest's config plus the 8250 UART and its console) with ``build_linux()``'s initramfs; ``/init``
gives the shell ``/dev/ttyS0`` there.  The guest has no disk: the disk figure is lguestfs's alone.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from benchlib.console import Console

QEMU = "qemu-system-i386"
KERNEL_ARGS = "console=ttyS0"


def qemu_console(bzimage: Path, initramfs: Path, mem_mb: int) -> Console:
    """A QEMU TCG guest booting ``bzimage`` with ``initramfs``, its serial port as the console."""
    program = shutil.which(QEMU)
    if program is None:
        raise RuntimeError(f"{QEMU} not found (scripts/bench installs qemu-system-x86)")
    return Console(
        [
            program,
            "-accel", "tcg",
            "-m", str(mem_mb),
            "-nodefaults",
            "-display", "none",
            "-serial", "stdio",
            "-monitor", "none",
            "-no-reboot",
            "-kernel", str(bzimage),
            "-initrd", str(initramfs),
            "-append", KERNEL_ARGS,
        ]
    )  # fmt: skip
