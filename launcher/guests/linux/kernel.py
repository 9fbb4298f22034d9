"""The guest kernel: Linux 2.6.24's ``vmlinux``, built from its source tarball with our gcc.

The recipe (``shared/linux-2.6.24/NOTES.md`` has the measurements behind it):

1. unpack the tarball (``.tar.xz``, ``.tar.bz2`` or ``.tar.gz``: tar detects which) into a
   scratch directory in the cache, dropping its top directory;
2. check it is 2.6.24: the top-level Makefile says VERSION 2, PATCHLEVEL 6, SUBLEVEL 24;
3. apply the project's four compatibility fixes, ``patches/*.patch`` in order (each explains
   itself: make 4.3's mixed rules, gcc 12's ``-m elf_i386``, ``fastcall do_IRQ`` and the
   mutex slow paths that gcc 12 would drop);
4. the project's ``lguest.config`` as ``O=/.config``, confirmed by ``make oldconfig``: the
   shared ``known-good.config`` (an ``allnoconfig`` with the lguest guest, virtio console,
   block and network, initramfs, ext2; no SMP, no modules) plus ``INET`` (the network),
   ``PROC_SYSCTL`` (the hostname) and ``HIGHMEM4G``: without it a guest above 892 MB loses
   its devices, which the kernel looks for at its end of memory, cut to 892 MB;
5. ``make ARCH=i386 O=obj KCFLAGS=... KAFLAGS=... -jN vmlinux``.  Debian's gcc builds PIE by
   default: ``-fno-pie`` (and no unwind tables) keeps the kernel as 2.6.24 expects, and 30%
   smaller.

The output is cached in ``<cache>/linux/kernel-<key>/vmlinux``, where the key hashes the
tarball's content, the patches, the config, the make flags and the compiler's and linker's
versions; the scratch tree is removed afterwards (success or not), the log kept beside it.
"""

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from launcher.guests.linux.steps import LinuxBuildError, Steps

HERE = Path(__file__).resolve().parent
PATCH_DIR = HERE / "patches"
CONFIG = HERE / "lguest.config"
VERSION = (2, 6, 24)
MAKE_FLAGS: tuple[str, ...] = (
    "ARCH=i386",
    "KCFLAGS=-fno-pie -fno-asynchronous-unwind-tables",
    "KAFLAGS=-fno-pie",
)
CC = "gcc"
LD = "ld"
HASH_CHUNK = 1 << 20


def patches() -> list[Path]:
    return sorted(PATCH_DIR.glob("*.patch"))


def toolchain_versions() -> str:
    """The first line of ``gcc --version`` and ``ld --version``: part of every output's key."""
    lines = []
    for tool in (CC, LD):
        try:
            result = subprocess.run([tool, "--version"], capture_output=True, text=True)
        except FileNotFoundError:
            message = f"{tool} not found: install gcc and binutils (scripts/setup does)"
            raise LinuxBuildError(message) from None
        lines.append(result.stdout.splitlines()[0] if result.stdout else tool)
    return "\n".join(lines)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def kernel_key(tarball_digest: str, toolchain: str) -> str:
    """The hash of everything the kernel is built from."""
    digest = hashlib.sha256()
    for part in (tarball_digest, toolchain, *MAKE_FLAGS):
        digest.update(part.encode() + b"\0")
    for path in (*patches(), CONFIG):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_kernel(tarball: Path, output: Path, steps: Steps) -> None:
    """Build ``vmlinux`` from ``tarball`` into ``output`` (atomically), saying each stage."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".build-") as scratch:
        tree, objects = Path(scratch) / "src", Path(scratch) / "obj"
        tree.mkdir()
        objects.mkdir()
        steps.say(f"unpacking {tarball.name}")
        steps.run(
            f"unpacking {tarball} (a corrupt or unreadable tarball?)",
            ["tar", "-xf", str(tarball), "-C", str(tree), "--strip-components=1"],
        )
        check_version(tree, tarball, steps)
        steps.say(f"applying {len(patches())} compatibility fixes ({PATCH_DIR.name}/)")
        apply_patches(tree, patches(), steps)
        steps.say(f"configuring ({CONFIG.name})")
        shutil.copyfile(CONFIG, objects / ".config")
        make = ["make", "-C", str(tree), f"O={objects}", *MAKE_FLAGS]
        with open(os.devnull, "rb") as no_answers:  # every question has its answer in the config
            steps.run("make oldconfig", [*make, "oldconfig"], stdin=no_answers)
        jobs = os.cpu_count() or 1
        steps.say(f"compiling vmlinux with {jobs} jobs (about 40 s on 2 idle cores)")
        steps.run("compiling the kernel", [*make, f"-j{jobs}", "vmlinux"], live=True)
        staged = output.with_name(output.name + ".tmp")
        shutil.copyfile(objects / "vmlinux", staged)
        os.replace(staged, output)


def apply_patches(tree: Path, patch_files: list[Path], steps: Steps) -> None:
    """Apply each ``-p1`` patch to the unpacked ``tree``, in order."""
    for patch in patch_files:
        with open(patch, "rb") as text:
            steps.run(
                f"applying {patch.name}",
                ["patch", "-p1", "--forward", "--batch"], cwd=tree, stdin=text,
            )  # fmt: skip


def check_version(tree: Path, tarball: Path, steps: Steps) -> None:
    """The unpacked tree must be Linux 2.6.24 (its top-level Makefile says so)."""
    makefile = tree / "Makefile"
    text = makefile.read_text(errors="replace") if makefile.is_file() else ""
    fields = dict(re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL) = (\d+)$", text, re.MULTILINE))
    found = tuple(int(fields.get(name, -1)) for name in ("VERSION", "PATCHLEVEL", "SUBLEVEL"))
    if found != VERSION:
        what = ".".join(map(str, found)) if -1 not in found else "not a Linux source tree"
        raise steps.fail(f"{tarball}: not Linux 2.6.24 ({what})")
