"""The 2.6.24 launcher itself, ``Documentation/lguest/lguest.c``, built to run against the node.

Beside ``launcher/`` (the project's own launcher) this is a client nobody here wrote: the
program 2.6.24 shipped, built from the same source tarball as the Linux guest
(``launcher.guests.linux.find_source``) as a 32-bit program, with three small patches of the
project's (``patches/``, each explaining itself): guest memory from a shared mapping, the
kernel read into memory instead of mapped over it, and the waker breaking through
``guests/<pid>/waker`` instead of the inherited descriptor.  It opens ``/dev/lguest``, which
must be a symbolic link to ``MOUNTPOINT/lguest``.  Built with ``patched=False`` (``--unpatched``)
it is the program byte for byte as shipped: the daemon adopts its private guest memory
(``lguestfs.adopt``) and lets its waker break on the inherited descriptor (``lguestfs.fs``, facts
2 and 3), so it needs none of the three.

Only the 32-bit build: the 64-bit one has pointer-size bugs of its own (page-table entries
written 8 bytes wide, a 32-bit mask in ``vring_init``).  The recipe:

1. unpack the tarball's top-level ``Makefile``, ``Documentation/lguest/`` and ``include/``
   into a scratch directory and check it is 2.6.24;
2. apply ``patches/*.patch`` in order (unless unpatched);
3. compile as ``Documentation/lguest/Makefile`` does (its ``CFLAGS``, ``-I../../include``
   for ``linux/lguest_launcher.h``, the virtio headers, ``asm-x86/bootparam.h``,
   ``linux/if_tun.h`` and ``linux/sockios.h``; ``LDLIBS=-lz``) plus ``-m32``.  The C
   library's i386 headers come from gcc-multilib.  ``lguest.c`` includes ``<zlib.h>`` but calls
   no zlib function, and Debian's ``zlib1g-dev:i386`` cannot be installed beside the amd64
   C library's headers, so ``zlib1g-dev:i386`` and ``zlib1g:i386`` are downloaded and unpacked
   into the cache (``apt-get download``, ``dpkg -x``; nothing installed) for the header and
   ``libz.so.1``; ``--as-needed`` then drops the unused library, so the program needs none.

API: ``build_lguest_c(source=None, patched=True) -> Path`` (raises ``LinuxBuildError``); command
line: ``python -m launcher.guests.lguest_c [--source TARBALL] [--unpatched]`` prints the
program's path.  Outputs live in ``<cache>/lguest-c/`` (``launcher.guests.cache``),
``<key>/lguest`` keyed by the tarball's content, the patches applied, the flags and the
compiler; zlib's files in
``<cache>/zlib-i386/``.
"""

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from launcher.guests.cache import cache_dir
from launcher.guests.linux import source_or_fail
from launcher.guests.linux.kernel import (
    apply_patches,
    check_version,
    file_digest,
    toolchain_versions,
)
from launcher.guests.linux.steps import LinuxBuildError, Steps

__all__ = ["LinuxBuildError", "build_lguest_c", "fetch_zlib"]

HERE = Path(__file__).resolve().parent
PATCH_DIR = HERE / "patches"
SOURCE = Path("Documentation") / "lguest" / "lguest.c"
# What the build unpacks: the version check, the launcher, the headers it includes.
MEMBERS = ("*/Makefile", "*/Documentation/lguest", "*/include")
# Documentation/lguest/Makefile's CFLAGS, and -m32.
CFLAGS = ("-m32", "-Wall", "-Wmissing-declarations", "-Wmissing-prototypes", "-O3")
OUTPUT_DIR = cache_dir() / "lguest-c"
ZLIB_PACKAGES = ("zlib1g-dev:i386", "zlib1g:i386")
ZLIB_ROOT = cache_dir() / "zlib-i386"
ZLIB_INCLUDE = ZLIB_ROOT / "usr" / "include"
ZLIB_LIBRARY_DIR = ZLIB_ROOT / "lib" / "i386-linux-gnu"


def patches() -> list[Path]:
    return sorted(PATCH_DIR.glob("*.patch"))


def build_lguest_c(
    source: Path | None = None, stream: IO[str] | None = None, *, patched: bool = True
) -> Path:
    """The 32-bit ``lguest`` program (built when not cached).  ``source``: the 2.6.24 tarball
    (default ``find_source()``); ``stream``: where progress lines go (stderr); ``patched``: with
    the project's patches, or as shipped."""
    source = source_or_fail(source)
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    with _lock(OUTPUT_DIR):
        applied = patches() if patched else []
        output = OUTPUT_DIR / _key(source, applied) / "lguest"  # the name its messages start with
        if output.is_file():
            return output
        output.parent.mkdir(exist_ok=True)
        steps = Steps(output.with_name("build.log"), stream)
        try:
            fetch_zlib(steps.say)
            _build(source, applied, output, steps)
        finally:
            steps.close()
    return output


def fetch_zlib(say: Callable[[str], None]) -> None:
    """Download and unpack zlib's i386 header and library into the cache, when missing."""
    if (ZLIB_INCLUDE / "zlib.h").is_file() and (ZLIB_LIBRARY_DIR / "libz.so.1").exists():
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    if "i386" not in _output(["dpkg", "--print-foreign-architectures"]).split():
        say("enabling Debian's i386 architecture (for zlib's i386 header)")
        _check([*sudo, "dpkg", "--add-architecture", "i386"])
        _check([*sudo, "apt-get", "update", "-qq"])
    say(f"downloading {' '.join(ZLIB_PACKAGES)}")
    ZLIB_ROOT.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ZLIB_ROOT.parent, prefix=".zlib-") as scratch:
        os.chmod(scratch, 0o755)  # apt's download sandbox user must be able to write here
        download = ["apt-get", "download", "-qq", *ZLIB_PACKAGES]
        if subprocess.run(download, cwd=scratch, capture_output=True).returncode != 0:
            _check([*sudo, "apt-get", "update", "-qq"])  # a stale index: once more
            _check(download, cwd=Path(scratch))
        staged = Path(scratch) / "root"
        for deb in sorted(Path(scratch).glob("*.deb")):
            _check(["dpkg", "-x", str(deb), str(staged)])
        shutil.rmtree(ZLIB_ROOT, ignore_errors=True)
        os.replace(staged, ZLIB_ROOT)
    if not (ZLIB_INCLUDE / "zlib.h").is_file():
        raise LinuxBuildError(f"{' '.join(ZLIB_PACKAGES)} unpacked in {ZLIB_ROOT} hold no zlib.h")


def _build(source: Path, applied: list[Path], output: Path, steps: Steps) -> None:
    with tempfile.TemporaryDirectory(dir=OUTPUT_DIR, prefix=".build-") as scratch:
        tree = Path(scratch)
        steps.say(f"unpacking lguest.c and the headers from {source.name}")
        steps.run(
            f"unpacking {source} (a corrupt or unreadable tarball?)",
            ["tar", "-xf", str(source), "-C", str(tree), "--strip-components=1",
             "--wildcards", "--no-wildcards-match-slash", *MEMBERS],
        )  # fmt: skip
        check_version(tree, source, steps)
        if applied:
            steps.say(f"applying {len(applied)} patches ({PATCH_DIR.relative_to(HERE.parents[2])})")
            apply_patches(tree, applied, steps)
        steps.say("compiling lguest.c (gcc -m32)")
        staged = tree / "lguest"
        steps.run(
            "compiling lguest.c",
            ["gcc", *CFLAGS, f"-I{tree / 'include'}", f"-I{ZLIB_INCLUDE}",
             "-o", str(staged), str(tree / SOURCE),
             f"-L{ZLIB_LIBRARY_DIR}", "-Wl,--as-needed", "-l:libz.so.1"],
        )  # fmt: skip
        os.replace(staged, output)


def _key(source: Path, applied: list[Path]) -> str:
    """The hash of everything the program is built from."""
    digest = hashlib.sha256()
    for part in (file_digest(source), toolchain_versions(), *CFLAGS, *ZLIB_PACKAGES):
        digest.update(part.encode() + b"\0")
    for path in (*applied, Path(__file__)):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@contextmanager
def _lock(directory: Path) -> Iterator[None]:
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _output(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=False).stdout


def _check(command: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise LinuxBuildError(
            f"{' '.join(command)} failed (exit {result.returncode}): "
            f"{lines[-1] if lines else 'no output'}"
        )
