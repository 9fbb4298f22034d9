"""klibc's i386 shell and tools, from Debian's packages: the userland of the Linux guest.

Debian's i386 glibc refuses kernels older than 3.2 ("FATAL: kernel too old"); klibc's
programs run on 2.6.24 (``shared/linux-2.6.24/NOTES.md``).  ``fetch`` makes them available in
``<cache>/klibc/``: it enables Debian's i386 architecture (``dpkg --add-architecture i386`` and
``apt-get update``) when needed, downloads ``libklibc:i386`` and ``klibc-utils:i386`` with
``apt-get download`` and unpacks them with ``dpkg -x``.  It does nothing when they are there.
``scripts/setup`` runs it (``python -m launcher.guests.linux --fetch-klibc``), one line per
step taken.

The guest gets ``usr/lib/klibc/bin/*`` as ``/bin/*`` and ``lib/klibc-<hash>.so`` (the shared
library every klibc program names as its interpreter) as ``/lib/``.  Not there: ``rm`` (klibc
has ``nuke``), ``cp``, ``ps`` (``minips``), ``hostname``; ``ipconfig`` fails on 2.6.24, whose
i386 sockets go through ``socketcall``.
"""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from launcher.guests.cache import cache_dir
from launcher.guests.linux.steps import LinuxBuildError

PACKAGES = ("libklibc:i386", "klibc-utils:i386")
KLIBC_DIR = cache_dir() / "klibc"
ROOT = KLIBC_DIR / "root"
BIN_DIR = ROOT / "usr" / "lib" / "klibc" / "bin"
LIB_DIR = ROOT / "lib"


def programs() -> list[Path]:
    """klibc's programs (for ``/bin``), empty when not fetched."""
    return sorted(p for p in BIN_DIR.glob("*") if p.is_file()) if BIN_DIR.is_dir() else []


def libraries() -> list[Path]:
    """klibc's shared library (for ``/lib``), empty when not fetched."""
    return sorted(LIB_DIR.glob("klibc-*.so")) if LIB_DIR.is_dir() else []


def present() -> bool:
    return bool(libraries()) and (BIN_DIR / "sh").is_file()


def require() -> None:
    if not present():
        raise LinuxBuildError(
            f"klibc's i386 programs are not in {KLIBC_DIR}: run scripts/setup "
            "(or python -m launcher.guests.linux --fetch-klibc)"
        )


def fetch(say: Callable[[str], None]) -> None:
    """Download and unpack klibc when it is missing; ``say`` each step taken."""
    if present():
        return
    root_prefix = [] if os.geteuid() == 0 else ["sudo"]
    foreign = _output(["dpkg", "--print-foreign-architectures"]).split()
    if "i386" not in foreign:
        say("enabling Debian's i386 architecture (for klibc's guest programs)")
        _check([*root_prefix, "dpkg", "--add-architecture", "i386"])
        _check([*root_prefix, "apt-get", "update", "-qq"])
    say(f"downloading {' '.join(PACKAGES)}")
    KLIBC_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=KLIBC_DIR, prefix=".fetch-") as scratch:
        os.chmod(scratch, 0o755)  # apt's download sandbox user must be able to write here
        if subprocess.run(_download(), cwd=scratch, capture_output=True).returncode != 0:
            _check([*root_prefix, "apt-get", "update", "-qq"])  # a stale index: once more
            _check(_download(), cwd=Path(scratch))
        staged = Path(scratch) / "root"
        for deb in sorted(Path(scratch).glob("*.deb")):
            _check(["dpkg", "-x", str(deb), str(staged)])
        shutil.rmtree(ROOT, ignore_errors=True)
        os.replace(staged, ROOT)
    if not present():
        raise LinuxBuildError(f"the klibc packages unpacked in {ROOT} hold no sh or klibc-*.so")


def _download() -> list[str]:
    return ["apt-get", "download", "-qq", *PACKAGES]


def _output(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=False).stdout


def _check(command: list[str], cwd: Path | None = None) -> None:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise LinuxBuildError(f"{command[0]} not found: klibc comes from Debian's apt") from None
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()
        raise LinuxBuildError(
            f"{' '.join(command)} failed (exit {result.returncode}): "
            f"{output[-1] if output else 'no output'}"
        )
