"""lguest-launch's command line: every bad input gives one clear line and a non-zero exit status.

Real processes (``python -m launcher``), no mount: all of these are refused before the node is
opened, except the missing node itself.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.launch import elf32, run_launcher

GOOD = elf32([(0x100000, b"\xf4", 16)], 0x100000)


@pytest.fixture
def kernel(tmp_path: Path) -> Path:
    path = tmp_path / "guest.elf"
    path.write_bytes(GOOD)
    return path


def kernel_file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "bad.elf"
    path.write_bytes(data)
    return path


def assert_one_clear_line(stderr: str, message: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert message in lines[0]


HLT = b"\xf4"
BAD_KERNELS = {
    "not_an_elf": (b"hello world\n" * 100, "not an ELF file or a bzImage"),
    "wrong_class": (elf32([(0x100000, HLT, 16)], 0x100000, elf_class=2), "64-bit"),
    "wrong_machine": (elf32([(0x100000, HLT, 16)], 0x100000, machine=62), "EM_X86_64"),
    "segment_outside_memory": (elf32([(0x4000000, HLT, 16)], 0x4000000), "outside guest memory"),
    "guest_larger_than_memory": (elf32([(0x100000, HLT, 0x3F00000)], 0x100000), "larger than"),
}


@pytest.mark.parametrize("case", sorted(BAD_KERNELS))
def test_bad_kernel_gives_one_line_and_exit_1(tmp_path: Path, case: str) -> None:
    data, message = BAD_KERNELS[case]
    result = run_launcher(None, 64, kernel_file(tmp_path, data), timeout=20)
    assert result.returncode == 1
    assert_one_clear_line(result.errors, message)


@pytest.mark.parametrize(
    ("mem", "message"),
    [("0", "too small"), ("100000", "too large"), ("lots", "whole number of megabytes")],
)
def test_bad_memory_size_gives_one_line_and_exit_1(kernel: Path, mem: str, message: str) -> None:
    result = run_launcher(None, mem, kernel, timeout=20)
    assert result.returncode == 1
    assert_one_clear_line(result.errors, message)


def test_missing_kernel_file(tmp_path: Path) -> None:
    result = run_launcher(None, 64, tmp_path / "nothing.elf", timeout=20)
    assert result.returncode == 1
    assert_one_clear_line(result.errors, "no such guest kernel file")


def test_missing_block_file(kernel: Path, tmp_path: Path) -> None:
    result = run_launcher(None, 64, kernel, options=[f"--block={tmp_path}/no.img"], timeout=20)
    assert result.returncode == 1
    assert_one_clear_line(result.errors, "no such file")


def test_malformed_net_option(kernel: Path) -> None:
    result = run_launcher(None, 64, kernel, options=["--net=tap0"], timeout=20)
    assert result.returncode == 1
    assert_one_clear_line(result.errors, "expected udp:HOST:PORT")


def test_missing_node(kernel: Path, tmp_path: Path) -> None:
    result = run_launcher(
        None, 64, kernel, options=["--device", str(tmp_path / "lguest")], timeout=20
    )
    assert result.returncode == 1
    assert_one_clear_line(result.errors, "no such lguest node")


def test_missing_arguments_give_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "launcher", "64"], capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 2
    assert_one_clear_line(result.stderr, "GUEST")


def test_help_explains_every_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "launcher", "--help"], capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 0
    for option in ("--verbose", "--block", "--net", "--initrd", "--device", "MEM_MB", "GUEST"):
        assert option in result.stdout


def test_waker_without_such_guest_says_so(tmp_path: Path) -> None:
    (tmp_path / "guests").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "launcher.waker", "999999", "--mount", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 1
    assert_one_clear_line(result.stderr, "no guest with pid 999999")
