"""Real Linux 2.6.24 as a guest: its kernel, initramfs and disk, built here and cached.

This is the main workload of the path launcher -> node -> handle -> guest -> CPU: a stock
2.6.24 ``vmlinux`` (built from the released source with this machine's gcc and the project's
four fixes), an initramfs with klibc's shell, and an ext2 disk.  Users:

* ``python -m launcher.guests.linux [--source TARBALL] [--force]`` builds and prints the paths;
* ``scripts/run`` boots it; tests and ``scripts/bench`` use the API below.

API::

    source = find_source()            # the 2.6.24 tarball, or None (then skip, or boot the own OS)
    build = build_linux(source)       # LinuxBuild(vmlinux, initramfs, disk_template); cached
    bzimage = build_pc_kernel(source) # the same kernel for a PC with a serial console (QEMU)
    disk = copy_disk(build.disk_template, tmp / "disk.ext2")
    # lguest-launch --block=DISK --initrd=INITRAMFS MEM VMLINUX [KERNEL ARGS]

The source: ``$LGUESTFS_LINUX_SOURCE`` when set, else ``linux-2.6.24.tar.xz`` or
``linux-2.6.24.tar.bz2`` in ``shared/linux-2.6.24/`` beside the repository (``../shared``), or
beside a directory above it (a git worktree further down finds the same files).  Outputs live in
``<cache>/linux/`` (``launcher.guests.cache``): ``kernel-<key>/vmlinux`` keyed by the tarball's
content, patches, config, flags and toolchain (``kernel-<key>/bzImage`` likewise, for the
``PC_SERIAL`` variant); ``initramfs-<key>.cpio.gz`` by its files, klibc
and the toolchain; ``disk-<key>.ext2`` by the disk recipe.  Nothing is rebuilt when nothing
changed; builds take a lock, so concurrent callers wait for one build.  Each build writes a log
(``<output>.log``); a failure raises ``LinuxBuildError``, one line ending with the log's path.
"""

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from launcher.guests.cache import cache_dir
from launcher.guests.linux import disk, initramfs, kernel
from launcher.guests.linux.disk import copy_disk
from launcher.guests.linux.steps import LinuxBuildError, Steps

__all__ = [
    "PROMPT",
    "WHERE_TO_PUT_SOURCE",
    "LinuxBuild",
    "LinuxBuildError",
    "add_source_argument",
    "build_linux",
    "build_pc_kernel",
    "copy_disk",
    "find_source",
]

SOURCE_ENV = "LGUESTFS_LINUX_SOURCE"
REPO_ROOT = Path(__file__).resolve().parents[3]
SHARED_SUBDIR = Path("shared") / "linux-2.6.24"
TARBALL_NAMES = ("linux-2.6.24.tar.xz", "linux-2.6.24.tar.bz2", "linux-2.6.24.tar.gz")
LINUX_CACHE = cache_dir() / "linux"
PROMPT = b"lguest# "  # the guest shell's prompt, $PS1 in ``profile``
DIGESTS = LINUX_CACHE / "tarball-digests.json"  # path -> [size, mtime_ns, sha256]
WHERE_TO_PUT_SOURCE = (
    f"put linux-2.6.24.tar.xz (or kernel.org's linux-2.6.24.tar.bz2) in "
    f"{REPO_ROOT.parent / SHARED_SUBDIR}, or set {SOURCE_ENV}=TARBALL"
)


@dataclass(frozen=True)
class LinuxBuild:
    """The three files a Linux guest boots from (the disk is a template: copy it)."""

    vmlinux: Path
    initramfs: Path
    disk_template: Path


def find_source() -> Path | None:
    """The 2.6.24 source tarball to build from, or None when there is none."""
    explicit = os.environ.get(SOURCE_ENV)
    if explicit:
        return Path(explicit)
    for directory in REPO_ROOT.parents:
        for name in TARBALL_NAMES:
            if (directory / SHARED_SUBDIR / name).is_file():
                return directory / SHARED_SUBDIR / name
    return None


def add_source_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--source TARBALL`` option of every command that builds from the 2.6.24 tree."""
    parser.add_argument(
        "--source", type=Path, metavar="TARBALL",
        help="linux-2.6.24.tar.xz or .tar.bz2 (default: shared/linux-2.6.24/ beside the "
        f"repository, or ${SOURCE_ENV})",
    )  # fmt: skip


def source_or_fail(source: Path | None) -> Path:
    """``source`` (default ``find_source()``), which must be a file; else ``LinuxBuildError``."""
    source = source if source is not None else find_source()
    if source is None:
        raise LinuxBuildError(f"no Linux 2.6.24 source: {WHERE_TO_PUT_SOURCE}")
    if not source.is_file():
        raise LinuxBuildError(f"{source}: no such source tarball")
    return source


def build_linux(
    source: Path | None = None, *, force: bool = False, stream: IO[str] | None = None
) -> LinuxBuild:
    """Build (or find in the cache) the kernel, initramfs and disk.  ``source``: the tarball
    (default ``find_source()``); ``force``: rebuild even what is cached; ``stream``: where the
    progress lines go (stderr).  Raises ``LinuxBuildError``."""
    source = source_or_fail(source)
    LINUX_CACHE.mkdir(parents=True, exist_ok=True)
    with _lock():
        toolchain = kernel.toolchain_versions()
        vmlinux = _kernel_path(source, toolchain, kernel.LGUEST)
        initrd = LINUX_CACHE / f"initramfs-{_key(toolchain, initramfs.inputs())}.cpio.gz"
        template = LINUX_CACHE / f"disk-{_key(disk.MKE2FS, [Path(disk.__file__)])}.ext2"
        _make(vmlinux, lambda steps: kernel.build_kernel(source, vmlinux, steps), force, stream)
        _make(initrd, lambda steps: initramfs.build_initramfs(initrd, steps), force, stream)
        _make(template, lambda steps: disk.build_disk_template(template, steps), force, stream)
    return LinuxBuild(vmlinux, initrd, template)


def build_pc_kernel(
    source: Path | None = None, *, force: bool = False, stream: IO[str] | None = None
) -> Path:
    """Build (or find in the cache) the ``bzImage`` of ``kernel.PC_SERIAL``: the guest kernel's
    source and config for a PC with a serial console, which boots with ``build_linux``'s
    initramfs in QEMU.  Arguments and errors as ``build_linux``."""
    source = source_or_fail(source)
    LINUX_CACHE.mkdir(parents=True, exist_ok=True)
    with _lock():
        variant = kernel.PC_SERIAL
        bzimage = _kernel_path(source, kernel.toolchain_versions(), variant)
        _make(
            bzimage,
            lambda steps: kernel.build_kernel(source, bzimage, steps, variant),
            force,
            stream,
        )
    return bzimage


def _kernel_path(source: Path, toolchain: str, variant: kernel.Variant) -> Path:
    key = kernel.kernel_key(_digest(source), toolchain, variant)
    return LINUX_CACHE / f"kernel-{key}" / variant.name


def _make(output: Path, make: Callable[[Steps], None], force: bool, stream: IO[str] | None) -> None:
    """Run ``make`` for ``output`` unless it is there already (or ``force``), with its log."""
    if force or not output.is_file():
        output.parent.mkdir(parents=True, exist_ok=True)
        steps = Steps(output.with_name(output.name + ".log"), stream)
        try:
            make(steps)
        finally:
            steps.close()


def _key(*parts: str | list[Path]) -> str:
    """A short hash of strings and of files' names and contents."""
    digest = hashlib.sha256()
    for part in parts:
        for item in [part] if isinstance(part, str) else part:
            data = (
                item.encode() if isinstance(item, str) else item.name.encode() + item.read_bytes()
            )
            digest.update(data + b"\0")
    return digest.hexdigest()[:16]


def _digest(tarball: Path) -> str:
    """The tarball's sha256, remembered by path, size and mtime (hashing 40 MB takes a while)."""
    stat = tarball.stat()
    known: dict[str, list[object]] = {}
    with contextlib.suppress(OSError, ValueError):
        known = json.loads(DIGESTS.read_text())
    entry = known.get(str(tarball.resolve()))
    if entry and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
        return str(entry[2])
    digest = kernel.file_digest(tarball)
    known[str(tarball.resolve())] = [stat.st_size, stat.st_mtime_ns, digest]
    staged = DIGESTS.with_suffix(".tmp")
    staged.write_text(json.dumps(known))
    staged.replace(DIGESTS)
    return digest


@contextmanager
def _lock() -> Iterator[None]:
    with open(LINUX_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
