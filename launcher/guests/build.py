"""Turn guest C and assembly sources into i386 ELF files that the launcher can boot.

This is the first step of the path launcher → node → handle → guest → CPU: the program the
emulated CPU runs is built here, with the machine's own gcc and ld, on demand and cached.

What a guest is: the runtime in ``launcher/guests/rt/`` (entry code, hypercalls, lguest_data,
traps, console; see ``rt/lguest.h``) plus a program, either a directory
``launcher/guests/<name>/`` (the default OS is ``os``) or a single C file (the one-behaviour test
guests in ``tests/guests/``, the bench's guests in ``scripts/benchlib/guests/``).  Each is
linked like a 2.6.24 vmlinux by ``rt/guest.lds``: virtual addresses from 0xC0100000, physical
load addresses (``p_paddr``) and a physical entry point, two PT_LOAD segments and nothing else.

The facts the build relies on (see shared/notes/unicorn-on-this-machine.md section 1):

* ``gcc -m32 -ffreestanding -fno-pic`` gives ET_EXEC code for i386; gcc-multilib provides a
  32-bit ``libgcc.a`` for 64-bit division, which ``-nostdlib`` drops, so it is linked by path.
* The runtime is an archive, so a guest links only the parts it uses (the virtio drivers
  live there too); ``entry.o`` is linked explicitly because nothing references it by name.
* Every ABI constant comes from ``lguestfs/abi.py``: a header ``lguest_abi.h`` is generated
  into the build directory, so C and Python share one definition.

Outputs live in ``guests/<checkout>/`` of the project's cache directory
(``launcher.guests.cache``: ``$LGUESTFS_CACHE`` or ``${XDG_CACHE_HOME:-~/.cache}/lguestfs``),
never in the source tree; ``<checkout>`` is a short hash of this source tree's path, so two
checkouts (git worktrees) do not rebuild each other's runtime over and over.
An output is rebuilt when its fingerprint (every input's path, size and mtime, and the
compiler flags) changes, so an edited, added or removed source, header, linker script,
``abi.py`` or this file all trigger a rebuild.  Builds take a
file lock and replace outputs atomically, so concurrent test processes are safe.

Command line: ``python -m launcher.guests.build [NAME ...]`` builds the named programs (all
program directories when none is given; a name ending in .c or .S is a single-file guest, e.g.
``tests/guests/crash.c``) and prints each ELF path.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from launcher.guests.cache import cache_dir
from lguestfs import abi

GUESTS_DIR = Path(__file__).resolve().parent
RUNTIME_DIR = GUESTS_DIR / "rt"
CHECKOUT_KEY_CHARS = 12
BUILD_DIR = (
    cache_dir()
    / "guests"
    / hashlib.sha256(str(GUESTS_DIR).encode()).hexdigest()[:CHECKOUT_KEY_CHARS]
)
LINKER_SCRIPT = RUNTIME_DIR / "guest.lds"
ABI_HEADER = "lguest_abi.h"

CC = os.environ.get("LGUEST_GUEST_CC", "gcc")
LD = os.environ.get("LGUEST_GUEST_LD", "ld")

CFLAGS: tuple[str, ...] = (
    "-m32",
    "-march=i686",
    "-std=gnu11",
    "-ffreestanding",
    "-fno-pic",
    "-fno-stack-protector",
    "-fcf-protection=none",
    "-fno-asynchronous-unwind-tables",
    "-mgeneral-regs-only",  # no x87/SSE state to save in interrupt handlers
    "-nostdlib",
    "-O2",
    "-g",
    "-Wall",
    "-Wextra",
    "-Werror",
)
LDFLAGS: tuple[str, ...] = (
    "-m",
    "elf_i386",
    "--build-id=none",
    "-static",
    "-nostdlib",
    "-z",
    "noexecstack",  # assembly objects carry no .note.GNU-stack; there is no stack segment
)

SOURCE_SUFFIXES = (".c", ".S")


class GuestBuildError(Exception):
    """A guest failed to build; ``str()`` holds the command and the tool's own output."""


def build_guest(name: str) -> Path:
    """Build ``launcher/guests/<name>/`` with the runtime; return the ELF path (cached)."""
    program_dir = GUESTS_DIR / name
    sources = _sources_in(program_dir)
    if not sources:
        raise GuestBuildError(f"guest program {name!r}: no .c or .S files in {program_dir}")
    return _build_program(name, sources, include_dirs=[program_dir])


def build_single(source: Path, *, name: str | None = None) -> Path:
    """Build one C or assembly file with the runtime, as ``single/<name>.elf`` in the cache.

    For the one-behaviour test guests (``tests/guests/<name>.c``) and the bench's guests
    (``scripts/benchlib/guests/<name>.c``); headers next to the file may be included.
    """
    source = source.resolve()
    if not source.is_file():
        raise GuestBuildError(f"guest source {source} does not exist")
    return _build_program(f"single/{name or source.stem}", [source], include_dirs=[source.parent])


def program_names() -> list[str]:
    """The guest programs under ``launcher/guests/``: every directory with sources but ``rt``."""
    return sorted(
        path.name
        for path in GUESTS_DIR.iterdir()
        if path.is_dir() and path != RUNTIME_DIR and _sources_in(path)
    )


def _sources_in(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in SOURCE_SUFFIXES and p.is_file())


def _build_program(name: str, sources: Sequence[Path], include_dirs: Sequence[Path]) -> Path:
    output = BUILD_DIR / f"{name}.elf"
    headers = [p for d in include_dirs for p in sorted(d.glob("*.h"))]
    with _build_lock():
        runtime_entry, runtime_archive = _build_runtime()
        inputs = [*sources, *headers, runtime_entry, runtime_archive, LINKER_SCRIPT]
        if _up_to_date(output, inputs):
            return output
        with tempfile.TemporaryDirectory(dir=BUILD_DIR, prefix=".tmp-") as tmp:
            objects = [
                _compile(src, Path(tmp) / f"{i}-{src.stem}.o", include_dirs)
                for i, src in enumerate(sources)
            ]
            staged = Path(tmp) / "guest.elf"
            _run(
                [
                    LD,
                    *LDFLAGS,
                    "-T",
                    str(LINKER_SCRIPT),
                    "-o",
                    str(staged),
                    str(runtime_entry),
                    *map(str, objects),
                    str(runtime_archive),
                    _libgcc(),
                ]
            )
            _install(staged, output, inputs)
    return output


def _build_runtime() -> tuple[Path, Path]:
    """The runtime's entry object and archive of everything else, rebuilt when stale."""
    out_dir = BUILD_DIR / "rt"
    entry, archive = out_dir / "entry.o", out_dir / "librt.a"
    header = _generate_abi_header()
    inputs = [*sorted(p for p in RUNTIME_DIR.iterdir() if p.is_file()), header]
    if _up_to_date(archive, inputs) and entry.exists():
        return entry, archive
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_DIR, prefix=".tmp-") as tmp:
        objects = [
            _compile(src, Path(tmp) / f"{src.stem}{src.suffix.replace('.', '-')}.o", [])
            for src in _sources_in(RUNTIME_DIR)
        ]
        staged_entry = Path(tmp) / "entry.o"
        members = [obj for obj in objects if obj.name != "entry-S.o"]
        if not (Path(tmp) / "entry-S.o").exists():
            raise GuestBuildError(f"runtime has no entry.S in {RUNTIME_DIR}")
        shutil.copyfile(Path(tmp) / "entry-S.o", staged_entry)
        staged_archive = Path(tmp) / "librt.a"
        _run(["ar", "rcsD", str(staged_archive), *map(str, members)])
        os.replace(staged_entry, entry)
        _install(staged_archive, archive, inputs)
    return entry, archive


def _compile(source: Path, obj: Path, include_dirs: Sequence[Path]) -> Path:
    includes = [f"-I{d}" for d in (*include_dirs, RUNTIME_DIR, _generated_include_dir())]
    _run([CC, *CFLAGS, *includes, "-c", str(source), "-o", str(obj)])
    return obj


def _run(command: list[str]) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise GuestBuildError(f"{command[0]} not found: install gcc and binutils") from e
    if result.returncode != 0:
        raise GuestBuildError(
            f"guest build step failed (exit {result.returncode}):\n  {' '.join(command)}\n"
            f"{result.stdout}{result.stderr}".rstrip()
        )


def _libgcc() -> str:
    """32-bit libgcc.a (64-bit division and friends), which -nostdlib leaves out."""
    result = subprocess.run(
        [CC, "-m32", "-print-libgcc-file-name"], capture_output=True, text=True, check=False
    )
    path = result.stdout.strip()
    if result.returncode != 0 or not Path(path).is_file():
        raise GuestBuildError(
            f"no 32-bit libgcc.a ({path or result.stderr.strip()}): install gcc-multilib"
        )
    return path


# --- The ABI header ------------------------------------------------------------------------


def _generated_include_dir() -> Path:
    return BUILD_DIR / "include"


def abi_header_text() -> str:
    """``lguest_abi.h``: every integer constant of ``lguestfs.abi`` as a C/assembler #define.

    Tuples of integers become NAME_0, NAME_1, ...; sets of small integers (< 32) become a
    NAME_MASK bitmap.  Values that do not fit a signed int are written in hex, so C types them
    unsigned.  No suffixes, so the assembler can read the header too.
    """
    lines = [
        "/* Generated from lguestfs/abi.py by launcher/guests/build.py: do not edit. */",
        "#ifndef LGUEST_ABI_H",
        "#define LGUEST_ABI_H",
    ]
    for name, value in vars(abi).items():
        if not name.isupper() or name.startswith("_"):
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            lines.append(f"#define {name} {_c_int(value)}")
        elif isinstance(value, tuple) and all(isinstance(v, int) for v in value):
            lines.extend(f"#define {name}_{i} {_c_int(v)}" for i, v in enumerate(value))
        elif isinstance(value, frozenset) and all(
            isinstance(v, int) and 0 <= v < 32 for v in value
        ):
            lines.append(f"#define {name}_MASK {_c_int(sum(1 << v for v in value))}")
    lines.append("#endif")
    return "\n".join(lines) + "\n"


def _c_int(value: int) -> str:
    if not 0 <= value <= 0xFFFFFFFF:
        raise GuestBuildError(f"ABI constant {value} does not fit a 32-bit guest")
    return str(value) if value < 0x10000 else f"0x{value:X}"


def _generate_abi_header() -> Path:
    """Write the header only when its text changes, so its mtime means something."""
    path = _generated_include_dir() / ABI_HEADER
    text = abi_header_text()
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_suffix(".tmp")
        staged.write_text(text)
        os.replace(staged, path)
    return path


# --- Caching -------------------------------------------------------------------------------


def _fingerprint(inputs: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for part in (CC, LD, *CFLAGS, *LDFLAGS):
        digest.update(part.encode() + b"\0")
    for path in (*inputs, Path(abi.__file__), Path(__file__)):
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _stamp(output: Path) -> Path:
    return output.with_name(output.name + ".inputs")


def _up_to_date(output: Path, inputs: Sequence[Path]) -> bool:
    stamp = _stamp(output)
    return output.exists() and stamp.exists() and stamp.read_text() == _fingerprint(inputs)


def _install(staged: Path, output: Path, inputs: Sequence[Path]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, output)
    _stamp(output).write_text(_fingerprint(inputs))


@contextmanager
def _build_lock() -> Iterator[None]:
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with open(BUILD_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def main(argv: Sequence[str] | None = None) -> int:
    """Build each NAME (a program under launcher/guests/, or a .c/.S file) and print its ELF."""
    parser = argparse.ArgumentParser(
        prog="python -m launcher.guests.build",
        description="Build lguest guests with this machine's gcc and print each ELF's path "
        f"(cached in {BUILD_DIR}).",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="a program under launcher/guests/ (such as 'os'), or a guest .c/.S file; "
        "default: every program",
    )
    names = parser.parse_args(argv).names or program_names()
    try:
        for name in names:
            single = name.endswith(SOURCE_SUFFIXES)
            print(build_single(Path(name)) if single else build_guest(name))
    except GuestBuildError as e:
        print(f"lguest guest build: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
