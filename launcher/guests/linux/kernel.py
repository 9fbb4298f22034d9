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

A ``Variant`` says what is built: ``LGUEST`` is the ``vmlinux`` above; ``PC_SERIAL`` is a
``bzImage`` of the same source and config plus only what a PC with a serial console needs (the
8250 UART and its console) and two more fixes (``patches/pc/``: the real-mode setup code without
PIE, and the decompressor's linker scripts, missing from the tarball), for ``scripts/bench``'s
QEMU reference; the lguest guest support stays in it, unused on a PC.

The output is cached in ``<cache>/linux/kernel-<key>/<image>``, where the key hashes the
tarball's content, the patches, the config, the variant, the make flags and the compiler's and
linker's versions; the scratch tree is removed afterwards (success or not), the log kept beside it.
"""

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Variant:
    """A kernel build: its make target, where the image lands in the object tree, the config
    options set on top of ``lguest.config`` (each replaces that option's line there), and the
    fixes it needs beyond the four (``patches/<patch_dir>/*.patch``)."""

    target: str
    image: str
    options: tuple[str, ...] = ()
    patch_dir: str = ""

    def patches(self) -> list[Path]:
        extra = sorted((PATCH_DIR / self.patch_dir).glob("*.patch")) if self.patch_dir else []
        return [*patches(), *extra]

    @property
    def name(self) -> str:
        return Path(self.image).name

    def config(self) -> str:
        """``lguest.config`` with this variant's options set."""
        names = {option.split("=")[0] for option in self.options}
        kept = [
            line
            for line in CONFIG.read_text().splitlines()
            if line.split("=")[0] not in names
            and line.removeprefix("# ").split(" ")[0] not in names
        ]
        return "\n".join([*kept, *self.options]) + "\n"


LGUEST = Variant("vmlinux", "vmlinux")
PC_SERIAL = Variant(
    "bzImage",
    "arch/x86/boot/bzImage",
    ("CONFIG_SERIAL_8250=y", "CONFIG_SERIAL_8250_CONSOLE=y", "CONFIG_SERIAL_8250_NR_UARTS=4",
     "CONFIG_SERIAL_8250_RUNTIME_UARTS=4"),
    "pc",  # what only a bzImage builds: the real-mode setup code, the decompressor
)  # fmt: skip


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


def kernel_key(tarball_digest: str, toolchain: str, variant: Variant = LGUEST) -> str:
    """The hash of everything the kernel is built from."""
    digest = hashlib.sha256()
    # The lguest kernel's key predates variants: it stays as it was, and so does its cache.
    extra = (variant.target, variant.image, *variant.options) if variant != LGUEST else ()
    for part in (tarball_digest, toolchain, *MAKE_FLAGS, *extra):
        digest.update(part.encode() + b"\0")
    for path in (*variant.patches(), CONFIG):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_kernel(tarball: Path, output: Path, steps: Steps, variant: Variant = LGUEST) -> None:
    """Build ``variant`` from ``tarball`` into ``output`` (atomically), saying each stage."""
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
        fixes = variant.patches()
        steps.say(f"applying {len(fixes)} compatibility fixes ({PATCH_DIR.name}/)")
        apply_patches(tree, fixes, steps)
        more = f" + {', '.join(variant.options)}" if variant.options else ""
        steps.say(f"configuring ({CONFIG.name}{more})")
        (objects / ".config").write_text(variant.config())
        make = ["make", "-C", str(tree), f"O={objects}", *MAKE_FLAGS]
        with open(os.devnull, "rb") as no_answers:  # every question has its answer in the config
            steps.run("make oldconfig", [*make, "oldconfig"], stdin=no_answers)
        jobs = os.cpu_count() or 1
        steps.say(f"compiling {variant.target} with {jobs} jobs (about 40 s on 2 idle cores)")
        steps.run("compiling the kernel", [*make, f"-j{jobs}", variant.target], live=True)
        staged = output.with_name(output.name + ".tmp")
        shutil.copyfile(objects / variant.image, staged)
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
