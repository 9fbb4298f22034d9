"""``python -m launcher.guests.linux``: bad input gives one line naming the log and exit status 1;
a cached build answers at once without rebuilding; the initramfs is a well-formed newc archive
with what ``/init`` needs.

The bad-input cases use small fake source trees (a Makefile that is or is not 2.6.24's), so they
fail before any compiling; each run gets a cache of its own (``LGUESTFS_CACHE``).
"""

import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

from launcher.guests.linux import LinuxBuild, build_linux, kernel
from tests.support.run import REPO_ROOT

FAKE_MAKEFILE = "VERSION = 2\nPATCHLEVEL = 6\nSUBLEVEL = {sublevel}\nEXTRAVERSION =\n"


def fake_tarball(tmp_path: Path, name: str, sublevel: int) -> Path:
    """A source tarball whose tree is only a top-level Makefile saying 2.6.<sublevel>."""
    tree = tmp_path / "linux-2.6.x"
    tree.mkdir()
    (tree / "Makefile").write_text(FAKE_MAKEFILE.format(sublevel=sublevel))
    tarball = tmp_path / name
    subprocess.run(["tar", "-caf", str(tarball), "-C", str(tmp_path), tree.name], check=True)
    return tarball


def build_command(tmp_path: Path, *args: str, path: str | None = None) -> tuple[int, str]:
    """Run the build command with a cache in ``tmp_path``; (exit status, stderr)."""
    environment = dict(os.environ, LGUESTFS_CACHE=str(tmp_path / "cache"))
    if path is not None:
        environment["PATH"] = path
    result = subprocess.run(
        [sys.executable, "-m", "launcher.guests.linux", *args],
        capture_output=True, text=True, env=environment, cwd=REPO_ROOT, timeout=120,
    )  # fmt: skip
    return result.returncode, result.stderr


def failure_line(stderr: str) -> str:
    """The one line of a failure: the last, starting with ``linux: ``."""
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("linux: "), stderr
    return last


def test_a_missing_tarball_is_one_line(tmp_path: Path) -> None:
    status, stderr = build_command(tmp_path, "--source", str(tmp_path / "nothing.tar.xz"))
    assert status == 1
    assert stderr == f"linux: {tmp_path / 'nothing.tar.xz'}: no such source tarball\n"


def test_a_corrupt_tarball_names_the_step_and_the_log(tmp_path: Path) -> None:
    tarball = tmp_path / "linux-2.6.24.tar.xz"
    tarball.write_bytes(b"\xfd7zXZ\0 this is not the rest of an xz stream")
    status, stderr = build_command(tmp_path, "--source", str(tarball))
    line = failure_line(stderr)
    assert status == 1
    assert f"unpacking {tarball} (a corrupt or unreadable tarball?) failed" in line
    log = Path(line.rsplit("(log: ", 1)[1].rstrip(")"))
    assert log.is_file() and "tar" in log.read_text()


def test_a_tree_that_is_not_2_6_24_is_refused(tmp_path: Path) -> None:
    tarball = fake_tarball(tmp_path, "linux-2.6.25.tar.xz", sublevel=25)
    status, stderr = build_command(tmp_path, "--source", str(tarball))
    assert status == 1
    assert f"{tarball}: not Linux 2.6.24 (2.6.25) (log: " in failure_line(stderr)


def test_a_bz2_tarball_unpacks_the_same_and_a_failed_patch_is_one_line(tmp_path: Path) -> None:
    # Says 2.6.24, so it gets as far as the fixes, which find no files to patch.
    tarball = fake_tarball(tmp_path, "linux-2.6.24.tar.bz2", sublevel=24)
    status, stderr = build_command(tmp_path, "--source", str(tarball))
    assert status == 1
    assert "linux: applying 4 compatibility fixes" in stderr
    assert "applying 0001-makefile-split-mixed-rules.patch failed (exit " in failure_line(stderr)


def test_no_compiler_is_one_line(tmp_path: Path) -> None:
    tarball = fake_tarball(tmp_path, "linux-2.6.24.tar.xz", sublevel=24)
    no_tools = tmp_path / "bin"
    no_tools.mkdir()
    status, stderr = build_command(tmp_path, "--source", str(tarball), path=str(no_tools))
    assert status == 1
    assert "gcc not found: install gcc and binutils (scripts/setup does)" in failure_line(stderr)


def test_a_cached_build_answers_at_once_and_rebuilds_nothing(linux_build: LinuxBuild) -> None:
    files = [linux_build.vmlinux, linux_build.initramfs, linux_build.disk_template]
    before = [path.stat().st_mtime_ns for path in files]
    started = time.monotonic()
    again = build_linux()
    assert again == linux_build
    assert time.monotonic() - started < 10  # hashing, no compiling (a build takes a minute)
    assert [path.stat().st_mtime_ns for path in files] == before


def test_the_initramfs_is_newc_with_init_the_shell_tools_and_device_nodes(
    linux_build: LinuxBuild,
) -> None:
    archive = gzip.decompress(linux_build.initramfs.read_bytes())
    entries = {}
    offset = 0
    while True:
        header = archive[offset : offset + 110]
        assert header[:6] == b"070701"
        fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        mode, size, rdev, name_size = fields[1], fields[6], (fields[9], fields[10]), fields[11]
        name = archive[offset + 110 : offset + 110 + name_size - 1].decode()
        offset = (offset + 110 + name_size + 3) & ~3
        offset = (offset + size + 3) & ~3
        if name == "TRAILER!!!":
            break
        entries[name] = (mode, rdev)
    assert entries["init"][0] == 0o100755
    assert {"bin/sh", "bin/mount", "bin/poweroff", "bin/ctty"} <= entries.keys()
    assert entries["dev/console"] == (0o20600, (5, 1))
    assert entries["dev/hvc0"] == (0o20600, (229, 0))
    assert entries["dev/ttyS0"] == (0o20600, (4, 64))  # the PC kernel's console (QEMU, bench)
    assert any(name.startswith("lib/klibc-") for name in entries)


def test_the_pc_variant_is_the_guest_config_with_a_serial_console_and_keys_apart() -> None:
    base = kernel.CONFIG.read_text().splitlines()
    pc = kernel.PC_SERIAL.config().splitlines()
    assert "# CONFIG_SERIAL_8250 is not set" in base
    assert "# CONFIG_SERIAL_8250 is not set" not in pc
    assert [line for line in pc if line not in base] == list(kernel.PC_SERIAL.options)
    assert [line for line in base if line not in pc] == ["# CONFIG_SERIAL_8250 is not set"]
    assert kernel.LGUEST.config() == kernel.CONFIG.read_text()
    assert kernel.kernel_key("t", "gcc") == kernel.kernel_key("t", "gcc", kernel.LGUEST)
    assert kernel.kernel_key("t", "gcc") != kernel.kernel_key("t", "gcc", kernel.PC_SERIAL)
    fixes = kernel.PC_SERIAL.patches()
    assert fixes[: len(kernel.patches())] == kernel.patches()
    assert {fix.parent.name for fix in fixes[len(kernel.patches()) :]} == {"pc"}
