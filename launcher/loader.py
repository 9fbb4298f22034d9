"""Reading the guest kernel file: an i386 ELF (a vmlinux) or a bzImage (spec 8, "Kernel loading").

This is the first step of the launcher's journey: before any memory is laid out we must know what
goes where.  ``read_kernel`` turns a file into a ``KernelImage``: the pieces to copy into guest
memory at their guest-physical addresses, and the address the guest starts at.  It copies nothing
itself; ``launcher.layout`` checks the pieces against the memory it has and places them.

* An ELF must be what 2.6.24's launcher accepted: ``ET_EXEC``, ``EM_386``, 32-byte program headers,
  1 to 2048 of them.  Each ``PT_LOAD`` goes at its *physical* address (``p_paddr``): a vmlinux is
  linked at 0xC0000000 and up but loaded low, and the guest runs with paging on from its first
  instruction, on the launcher's identity map.  The entry point is ``e_entry`` as it is (for a
  vmlinux, the physical ``startup_32``).  Only ``p_filesz`` bytes are copied; the kernel clears its
  own BSS, but the whole ``p_memsz`` must still fit.
* Anything else must be a bzImage: "HdrS" at 0x202; everything after the ``setup_sects + 1``
  512-byte setup sectors goes at 0x100000, and the entry point is ``code32_start``.
"""

import io
import struct
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from launcher.errors import LaunchError
from lguestfs.abi import (
    BOOT_CODE32_START,
    BOOT_HDRS_MAGIC,
    BOOT_SETUP_SECTS,
    BZIMAGE_LOAD_ADDR,
)

ELF_MAGIC = b"\x7fELF"
ELFCLASS32 = 1
ELF_PHENTSIZE_32 = 32
ELF_PHNUM_MAX = 2048  # 2.6.24's sanity bound on program headers
BZIMAGE_HEADER_BYTES = 4096
BZIMAGE_SECTOR = 512


@dataclass(frozen=True)
class Segment:
    """One piece of the kernel: ``data`` goes at guest-physical ``paddr``; it owns ``memsz``."""

    paddr: int
    data: bytes
    memsz: int
    name: str  # how error messages refer to it, e.g. "segment 1"

    @property
    def end(self) -> int:
        return self.paddr + self.memsz


@dataclass(frozen=True)
class KernelImage:
    kind: str  # "ELF" or "bzImage"
    entry: int  # the guest's first EIP
    segments: list[Segment]


def read_kernel(path: Path) -> KernelImage:
    """Parse ``path`` as an i386 ELF or a bzImage; ``LaunchError`` says why it is neither."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LaunchError(f"{path}: no such guest kernel file") from None
    except IsADirectoryError:
        raise LaunchError(f"{path}: is a directory, not a guest kernel") from None
    except OSError as error:
        raise LaunchError(f"{path}: cannot read the guest kernel: {error.strerror}") from None
    if data[:4] == ELF_MAGIC:
        return _read_elf(path, data)
    if data[BOOT_HDRS_MAGIC : BOOT_HDRS_MAGIC + 4] == b"HdrS":
        return _read_bzimage(path, data)
    raise LaunchError(f"{path}: not an ELF file or a bzImage (no \\x7fELF magic, no HdrS header)")


def _read_elf(path: Path, data: bytes) -> KernelImage:
    # Check the class by hand first: pyelftools would happily parse a 64-bit file.
    if len(data) < 5 or data[4] != ELFCLASS32:
        kind = "64-bit" if len(data) > 4 and data[4] == 2 else "not 32-bit"
        raise LaunchError(f"{path}: ELF file is {kind}; lguest guests are 32-bit i386 (ELFCLASS32)")
    try:
        elf = ELFFile(io.BytesIO(data))
        machine = elf["e_machine"]
        file_type = elf["e_type"]
        if machine != "EM_386":
            raise LaunchError(f"{path}: ELF file is for {machine}; lguest guests are EM_386")
        if file_type != "ET_EXEC":
            raise LaunchError(
                f"{path}: ELF file is {file_type}; lguest needs an ET_EXEC (statically linked)"
            )
        if elf["e_phentsize"] != ELF_PHENTSIZE_32:
            raise LaunchError(f"{path}: ELF program headers are {elf['e_phentsize']} bytes, not 32")
        if not 1 <= elf["e_phnum"] <= ELF_PHNUM_MAX:
            raise LaunchError(
                f"{path}: ELF file has {elf['e_phnum']} program headers (need 1 to {ELF_PHNUM_MAX})"
            )
        segments = []
        for index, header in enumerate(elf.iter_segments()):
            if header["p_type"] != "PT_LOAD":
                continue
            offset, filesz, memsz = header["p_offset"], header["p_filesz"], header["p_memsz"]
            name = f"segment {index}"
            if offset + filesz > len(data):
                raise LaunchError(f"{path}: ELF {name} runs past the end of the file (truncated?)")
            if filesz > memsz:
                raise LaunchError(f"{path}: ELF {name} has p_filesz larger than p_memsz")
            segments.append(Segment(header["p_paddr"], data[offset : offset + filesz], memsz, name))
        entry = elf["e_entry"]
    except (ELFError, struct.error, ValueError) as error:
        raise LaunchError(f"{path}: malformed ELF file: {error}") from None
    if not segments:
        raise LaunchError(f"{path}: ELF file has no PT_LOAD segment: nothing to load")
    return KernelImage("ELF", entry, segments)


def _read_bzimage(path: Path, data: bytes) -> KernelImage:
    header = data[:BZIMAGE_HEADER_BYTES]
    if len(header) < BOOT_CODE32_START + 4:
        raise LaunchError(f"{path}: bzImage header is truncated")
    setup_sects = header[BOOT_SETUP_SECTS]
    (code32_start,) = struct.unpack_from("<I", header, BOOT_CODE32_START)
    payload = data[(setup_sects + 1) * BZIMAGE_SECTOR :]
    if not payload:
        raise LaunchError(f"{path}: bzImage has no protected-mode kernel after its setup sectors")
    return KernelImage(
        "bzImage",
        code32_start,
        [Segment(BZIMAGE_LOAD_ADDR, payload, len(payload), "protected-mode kernel")],
    )
