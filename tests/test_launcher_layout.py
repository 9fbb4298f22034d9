"""The launcher's guest memory layout, byte for byte against spec 8, and the loader's bad inputs.

Pure logic: no mount needed.  The kernels are hand-made ELF files (``tests.support.launch.elf32``).
"""

import ctypes
import mmap
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.errors import LaunchError
from launcher.layout import LOWMEM_TOP, MAX_MEM_MB, PreparedGuest, prepare_guest
from launcher.node import WORD_BYTES
from tests.support.launch import elf32

MB = 1 << 20
CODE = b"\xf4" * 64  # hlt: content does not matter, only where it lands


def u32(guest: PreparedGuest, address: int) -> int:
    value: int = struct.unpack_from("<I", guest.memory, address)[0]
    return value


@pytest.fixture
def kernel(tmp_path: Path) -> Path:
    path = tmp_path / "guest.elf"
    path.write_bytes(elf32([(0x100000, CODE, 0x2000)], entry=0x100000))
    return path


@pytest.fixture
def guest64(kernel: Path) -> Iterator[PreparedGuest]:
    guest = prepare_guest(64, kernel, ["quiet", "init=/bin/sh"])
    yield guest
    guest.close()


# The spec's example table for 64 MB: pgdir, PTE pages, PDE values.
SPEC_64MB = {"pgdir": 0x3FFF000, "pte_first": 0x3FEF000, "pte_last_end": 0x3FFF000}


def test_64mb_page_directory_sits_one_page_below_the_top(guest64: PreparedGuest) -> None:
    assert guest64.pgdir == SPEC_64MB["pgdir"]


@pytest.mark.parametrize("k", range(16))
def test_64mb_pde_k_points_at_pte_page_k_with_flags_7(guest64: PreparedGuest, k: int) -> None:
    assert u32(guest64, guest64.pgdir + 4 * k) == 0x3FEF007 + k * 0x1000


def test_64mb_pdes_beyond_16_are_empty_no_high_alias(guest64: PreparedGuest) -> None:
    assert guest64.read(guest64.pgdir + 16 * 4, 4096 - 16 * 4) == bytes(4096 - 16 * 4)


@pytest.mark.parametrize("page", [0, 1, 0x100, 0x3FEF, 0x3FFF])
def test_64mb_pte_for_page_i_identity_maps_it(guest64: PreparedGuest, page: int) -> None:
    assert u32(guest64, SPEC_64MB["pte_first"] + 4 * page) == page * 4096 | 7


def test_pte_pages_end_exactly_at_the_page_directory(guest64: PreparedGuest) -> None:
    last_pte = SPEC_64MB["pte_last_end"] - 4
    assert u32(guest64, last_pte) == (64 * MB - 4096) | 7


ZERO_PAGE_FIELDS = [
    ("e820_entries", 0x1E8, "<B", 1),
    ("e820 addr", 0x2D0, "<Q", 0),
    ("e820 size", 0x2D8, "<Q", 64 * MB),
    ("e820 type RAM", 0x2E0, "<I", 1),
    ("version", 0x206, "<H", 0x0207),
    ("loadflags KEEP_SEGMENTS", 0x211, "<B", 0x40),
    ("cmd_line_ptr", 0x228, "<I", 0x1000),
    ("hardware_subarch lguest", 0x23C, "<I", 1),
    ("no ramdisk_image", 0x218, "<I", 0),
    ("no ramdisk_size", 0x21C, "<I", 0),
    ("no type_of_loader", 0x210, "<B", 0),
]


@pytest.mark.parametrize(("field", "offset", "fmt", "value"), ZERO_PAGE_FIELDS)
def test_zero_page_field(
    guest64: PreparedGuest, field: str, offset: int, fmt: str, value: int
) -> None:
    assert struct.unpack_from(fmt, guest64.memory, offset)[0] == value, field


def test_command_line_is_each_argument_and_a_space_then_nul(guest64: PreparedGuest) -> None:
    assert guest64.read(0x1000, 25) == b"quiet init=/bin/sh \0" + bytes(5)


def test_elf_segment_is_copied_at_its_physical_address(guest64: PreparedGuest) -> None:
    assert guest64.read(0x100000, len(CODE)) == CODE


def test_entry_is_e_entry_as_is(guest64: PreparedGuest) -> None:
    assert guest64.entry == 0x100000


def test_device_pages_start_at_mem_and_raise_pfnlimit(guest64: PreparedGuest) -> None:
    assert guest64.pfnlimit == 0x4000
    assert guest64.add_device_pages(1) == 0x4000000
    assert guest64.add_device_pages(2) == 0x4001000
    assert guest64.add_device_pages(2) == 0x4003000
    assert guest64.pfnlimit == 0x4005  # the spec's console-only example


def test_device_pages_are_limited_to_256(guest64: PreparedGuest) -> None:
    guest64.add_device_pages(256)
    with pytest.raises(LaunchError, match="too many devices"):
        guest64.add_device_pages(1)


def test_initialize_request_is_five_native_words(guest64: PreparedGuest) -> None:
    guest64.add_device_pages(5)
    words = struct.unpack(f"@5{'L'}", guest64.initialize_request())
    assert len(guest64.initialize_request()) == 5 * WORD_BYTES
    assert words == (0, guest64.base, 0x4005, 0x3FFF000, 0x100000)


def test_base_is_the_address_of_the_shared_mapping(guest64: PreparedGuest) -> None:
    # Write through the mapping, read back through the address INITIALIZE will hand the node.
    guest64.write(0x5000, b"lguest")
    assert ctypes.string_at(guest64.base + 0x5000, 6) == b"lguest"


def test_memory_covers_ram_plus_256_device_pages(guest64: PreparedGuest) -> None:
    assert len(guest64.memory) == 64 * MB + 256 * 4096


def test_memory_is_a_shared_memfd_mapping(guest64: PreparedGuest) -> None:
    maps = Path("/proc/self/maps").read_text().splitlines()
    line = next(line for line in maps if int(line.split("-")[0], 16) == guest64.base)
    assert line.split()[1] == "rw-s"
    assert "memfd:" in line


def test_initrd_goes_at_the_top_and_pushes_the_tables_down(kernel: Path, tmp_path: Path) -> None:
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"R" * 5000)  # two pages once aligned
    with prepare_guest(64, kernel, [], initrd) as guest:
        assert guest.read(64 * MB - 8192, 5000) == b"R" * 5000
        assert guest.pgdir == 64 * MB - 8192 - 4096
        assert u32(guest, 0x218) == 64 * MB - 8192
        assert u32(guest, 0x21C) == 8192
        assert guest.memory[0x210] == 0xFF
        assert u32(guest, guest.pgdir) == guest.pgdir - 16 * 4096 | 7


def test_initrd_stays_below_the_kernels_low_memory_in_a_large_guest(
    kernel: Path, tmp_path: Path
) -> None:
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"R" * 5000)
    assert LOWMEM_TOP == 892 * MB
    with prepare_guest(1000, kernel, [], initrd) as guest:
        assert guest.read(LOWMEM_TOP - 8192, 5000) == b"R" * 5000
        assert u32(guest, 0x218) == LOWMEM_TOP - 8192
        assert u32(guest, 0x21C) == 8192
        assert guest.pgdir == 1000 * MB - 4096
        assert u32(guest, guest.pgdir) == guest.pgdir - 250 * 4096 | 7


def test_memory_not_a_multiple_of_4mb_gets_a_partial_pte_page(kernel: Path) -> None:
    with prepare_guest(6, kernel, []) as guest:
        assert guest.pgdir == 6 * MB - 4096
        assert u32(guest, guest.pgdir + 4) == guest.pgdir - 4096 | 7  # 2 PTE pages
        assert u32(guest, guest.pgdir + 8) == 0


def test_close_unmaps(kernel: Path) -> None:
    guest = prepare_guest(8, kernel, [])
    guest.close()
    guest.close()
    assert guest.memory.closed


# --- Bad input: one clear LaunchError each --------------------------------------------------


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "bad-guest"
    path.write_bytes(data)
    return path


BAD_KERNELS = [
    ("not_an_elf", b"#!/bin/sh\necho hello\n" * 50, "not an ELF file or a bzImage"),
    ("empty_file", b"", "not an ELF file or a bzImage"),
    ("64_bit_elf", elf32([(0x100000, CODE, 64)], 0x100000, elf_class=2), "64-bit"),
    ("x86_64_machine", elf32([(0x100000, CODE, 64)], 0x100000, machine=62), "EM_X86_64"),
    ("arm_machine", elf32([(0x100000, CODE, 64)], 0x100000, machine=40), "EM_ARM"),
    ("shared_object", elf32([(0x100000, CODE, 64)], 0x100000, elf_type=3), "ET_DYN"),
    ("no_segments", elf32([], 0x100000), "program headers"),
    ("truncated_elf", elf32([(0x100000, CODE, 64)], 0x100000)[:-10], "past the end"),
    ("segment_outside_memory", elf32([(63 * MB, CODE, 2 * MB)], 63 * MB), "outside guest memory"),
    ("segment_over_tables", elf32([(62 * MB, CODE, 1 * MB + 0x800000)], 62 * MB), "outside"),
    ("segment_into_tables", elf32([(0x100000, CODE, 63 * MB)], 0x100000), "larger than memory"),
    ("segment_over_zero_page", elf32([(0, CODE, 64)], 0), "zero page"),
]


@pytest.mark.parametrize(
    ("data", "message"), [case[1:] for case in BAD_KERNELS], ids=[c[0] for c in BAD_KERNELS]
)
def test_bad_kernel_is_refused_with_a_clear_message(
    tmp_path: Path, data: bytes, message: str
) -> None:
    with pytest.raises(LaunchError, match=message) as error:
        prepare_guest(64, write(tmp_path, data), [])
    assert "\n" not in str(error.value)


def test_missing_kernel_file(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="no such guest kernel file"):
        prepare_guest(64, tmp_path / "nothing.elf", [])


def test_missing_initrd_file(kernel: Path, tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="no such initrd file"):
        prepare_guest(64, kernel, [], tmp_path / "nothing.img")


def test_initrd_larger_than_memory(kernel: Path, tmp_path: Path) -> None:
    initrd = tmp_path / "initrd"
    initrd.write_bytes(bytes(3 * MB))
    with pytest.raises(LaunchError, match="too small"):
        prepare_guest(2, kernel, [], initrd)


MEMORY_OUT_OF_RANGE = [(0, "too small"), (-1, "too small"), (MAX_MEM_MB + 1, "too large")]


@pytest.mark.parametrize(("mem_mb", "word"), MEMORY_OUT_OF_RANGE)
def test_memory_out_of_range(kernel: Path, mem_mb: int, word: str) -> None:
    with pytest.raises(LaunchError, match=word):
        prepare_guest(mem_mb, kernel, [])


def test_largest_memory_is_accepted(kernel: Path) -> None:
    with prepare_guest(MAX_MEM_MB, kernel, []) as guest:
        assert guest.pfnlimit == MAX_MEM_MB * 256


def test_command_line_too_long(kernel: Path) -> None:
    with pytest.raises(LaunchError, match="command line"):
        prepare_guest(64, kernel, ["x" * 2048])


# --- bzImage ----------------------------------------------------------------------------------


def bzimage(setup_sects: int, payload: bytes, code32_start: int = 0x100000) -> bytes:
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<I", setup, 0x214, code32_start)
    return bytes(setup) + payload


def test_bzimage_payload_goes_at_1mb_and_starts_at_code32_start(tmp_path: Path) -> None:
    path = write(tmp_path, bzimage(4, b"PAYLOAD" * 100, code32_start=0x100020))
    with prepare_guest(16, path, []) as guest:
        assert guest.read(0x100000, 700) == b"PAYLOAD" * 100
        assert guest.entry == 0x100020
        assert guest.read(0x1F1, 1) == b"\0"  # the setup header is not copied into the zero page


def test_bzimage_larger_than_memory(tmp_path: Path) -> None:
    path = write(tmp_path, bzimage(1, bytes(2 * MB)))
    with pytest.raises(LaunchError, match="larger than memory"):
        prepare_guest(2, path, [])


def test_prepared_memory_is_an_mmap(guest64: PreparedGuest) -> None:
    assert isinstance(guest64.memory, mmap.mmap)
