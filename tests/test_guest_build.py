"""The guest toolchain (launcher/guests/build.py): ELF files linked like a vmlinux, built from
the repository's C with the machine's gcc, cached, rebuilt when a source changes, and failing
with the compiler's own words.  No mount needed: this is the step before the launcher."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from launcher.guests import build
from lguestfs import abi
from tests.support.guests import test_guest

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_guest_elf_is_linked_like_a_vmlinux() -> None:
    """Physical entry, p_paddr = p_vaddr - PAGE_OFFSET, two PT_LOAD segments and nothing else."""
    with test_guest("crash").open("rb") as file:
        elf = ELFFile(file)
        segments = [s for s in elf.iter_segments() if s["p_type"] != "PT_NULL"]
        assert [s["p_type"] for s in segments] == ["PT_LOAD", "PT_LOAD"]
        for segment in segments:
            assert segment["p_vaddr"] - segment["p_paddr"] == abi.PAGE_OFFSET
        assert elf["e_entry"] == segments[0]["p_paddr"] == abi.BZIMAGE_LOAD_ADDR
        assert (elf["e_machine"], elf["e_type"], elf.elfclass) == ("EM_386", "ET_EXEC", 32)
        symbols = elf.get_section_by_name(".symtab")
        assert isinstance(symbols, SymbolTableSection)
        startup = symbols.get_symbol_by_name("startup")
        assert startup and startup[0]["st_value"] == abi.PAGE_OFFSET + elf["e_entry"]


def test_abi_header_defines_every_constant_from_abi_py() -> None:
    text = build.abi_header_text()
    assert f"#define LHCALL_NOTIFY {abi.LHCALL_NOTIFY}\n" in text
    assert "#define SWITCHER_ADDR 0xFFC00000\n" in text
    assert f"#define KERNEL_CS_DESCRIPTOR_1 0x{abi.KERNEL_CS_DESCRIPTOR[1]:X}\n" in text
    assert "#define TRAPS_WITH_ERROR_CODE_MASK 0x27D00\n" in text  # 8, 10-14, 17


def test_single_guest_is_cached_and_rebuilt_when_its_source_changes(tmp_path: Path) -> None:
    source = tmp_path / "probe.c"
    source.write_text('#include "lguest.h"\nint main(void) { return 0; }\n')
    name = f"cache-probe-{os.getpid()}"  # its own output, whatever else runs the build
    try:
        first = build.build_single(source, name=name)
        built_at = first.stat().st_mtime_ns
        assert build.build_single(source, name=name).stat().st_mtime_ns == built_at
        source.write_text('#include "lguest.h"\nint main(void) { early_puts("x"); return 0; }\n')
        os.utime(source, ns=(built_at + 10**9, built_at + 10**9))
        assert build.build_single(source, name=name).stat().st_mtime_ns != built_at
    finally:
        for leftover in build.BUILD_DIR.glob(f"single/{name}.elf*"):
            leftover.unlink()


def test_compiler_errors_raise_with_gccs_output(tmp_path: Path) -> None:
    source = tmp_path / f"broken-probe-{os.getpid()}.c"
    source.write_text('#include "lguest.h"\nint main(void) { return undeclared_name; }\n')
    with pytest.raises(build.GuestBuildError, match="undeclared_name"):
        build.build_single(source)


def run_build_command(*names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "launcher.guests.build", *names],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )


def test_command_line_builds_the_named_programs() -> None:
    result = run_build_command("os")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).name == "os.elf"


def test_command_line_builds_a_single_file_guest() -> None:
    result = run_build_command("tests/guests/crash.c")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == test_guest("crash")


def test_command_line_reports_a_missing_program() -> None:
    result = run_build_command("no_such_guest")
    assert result.returncode == 1
    assert "no_such_guest" in result.stderr
