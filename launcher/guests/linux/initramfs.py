"""The guest's initramfs: klibc's shell and tools, the project's own tools, ``/init``, gzipped cpio.

Contents (all owned by root):

* ``/init``: the shell script ``init`` beside this module (mounts, hostname, disk, network,
  with ``console_idle=S`` a watch that powers off after S idle seconds, banner, then
  ``ctty /dev/hvc0 /bin/sh -i`` (``/dev/ttyS0`` on a PC) and ``poweroff`` when the shell ends);
* ``/bin``: klibc's programs (``launcher.guests.linux.klibc``) and every ``tools/NAME.c``
  compiled to ``/bin/NAME`` (freestanding i386, see ``tools/tool.h``), so a tool dropped into
  ``tools/`` is in the next initramfs; ``/lib``: klibc's shared library;
* ``/etc/banner``, ``/etc/profile`` (the prompt ``lguest# ``, read through ``$ENV``);
* ``/dev/console`` (5:1, which the kernel opens for ``/init``), ``/dev/hvc0`` (229:0, the
  virtio console as a tty), ``/dev/ttyS0`` (4:64, a PC's first serial port), ``/dev/null``,
  ``/dev/zero``, ``/dev/tty``; ``/dev/vda`` is made by ``/init`` from sysfs, since virtio_blk's
  major number is dynamic;
* empty ``/proc``, ``/sys``, ``/mnt`` (the disk), ``/tmp``, ``/root``.
"""

import gzip
import tempfile
from pathlib import Path

from launcher.guests.linux import klibc
from launcher.guests.linux.cpio import Archive
from launcher.guests.linux.steps import Steps

HERE = Path(__file__).resolve().parent
TOOLS_DIR = HERE / "tools"
INIT = HERE / "init"
BANNER = HERE / "banner"
PROFILE = HERE / "profile"

TOOL_CFLAGS: tuple[str, ...] = (
    "-m32",
    "-march=i686",
    "-static",
    "-nostdlib",
    "-ffreestanding",
    "-fno-pic",
    "-no-pie",
    "-fno-stack-protector",
    "-fcf-protection=none",
    "-fno-asynchronous-unwind-tables",
    "-Os",
    "-s",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wl,--build-id=none",
)
DIRECTORIES = ("bin", "dev", "etc", "lib", "mnt", "proc", "root", "sys", "tmp")
DEVICES = (  # name, major, minor, mode
    ("console", 5, 1, 0o600),
    ("tty", 5, 0, 0o666),
    ("hvc0", 229, 0, 0o600),
    ("ttyS0", 4, 64, 0o600),
    ("null", 1, 3, 0o666),
    ("zero", 1, 5, 0o666),
)
GZIP_LEVEL = 9


def tool_sources() -> list[Path]:
    return sorted(TOOLS_DIR.glob("*.c"))


def inputs() -> list[Path]:
    """Every file the initramfs is made of (for the cache key), klibc's included."""
    return [
        INIT, BANNER, PROFILE, Path(__file__), Path(__file__).with_name("cpio.py"),
        *sorted(TOOLS_DIR.glob("*.[ch]")), *klibc.programs(), *klibc.libraries(),
    ]  # fmt: skip


def build_initramfs(output: Path, steps: Steps) -> None:
    """Write the gzipped cpio archive to ``output`` (atomically)."""
    klibc.require()
    steps.say(f"making the initramfs (klibc, {len(tool_sources())} own tools, /init)")
    archive = Archive()
    for directory in DIRECTORIES:
        archive.directory(directory)
    for name, major, minor, mode in DEVICES:
        archive.char_device(f"dev/{name}", major, minor, mode)
    archive.file("init", INIT.read_bytes(), 0o755)
    archive.file("etc/banner", BANNER.read_bytes())
    archive.file("etc/profile", PROFILE.read_bytes())
    for library in klibc.libraries():
        archive.file(f"lib/{library.name}", library.read_bytes(), 0o755)
    for program in klibc.programs():
        archive.file(f"bin/{program.name}", program.read_bytes(), 0o755)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".tools-") as scratch:
        for source in tool_sources():
            binary = Path(scratch) / source.stem
            steps.run(
                f"compiling tools/{source.name}",
                ["gcc", *TOOL_CFLAGS, f"-I{TOOLS_DIR}", "-o", str(binary), str(source)],
            )
            archive.file(f"bin/{source.stem}", binary.read_bytes(), 0o755)
    staged = output.with_name(output.name + ".tmp")
    staged.write_bytes(gzip.compress(bytes(archive), GZIP_LEVEL, mtime=0))
    staged.replace(output)
