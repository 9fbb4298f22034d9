"""What lguest-launch does with what a guest tells it (and its mistakes), through a real mount.

The guests are a few i386 instructions in a hand-made ELF (``tests.support.launch.elf32``, code
builders from ``launcher.guests.handguest``): LGUEST_INIT, then exactly the NOTIFY or ring write
under test.  So each test pins one launcher behaviour, independent of the default guest OS.
"""

import struct
import subprocess
import time
from pathlib import Path

from launcher.guests.handguest import SPIN, hypercall, lguest_data_image
from lguestfs import abi
from tests.support.launch import Launcher, elf32, run_launcher
from tests.support.mount import Mount

MEM_MB = 32
MEM = MEM_MB << 20
PGDIR = MEM - 4096  # no initrd: the launcher's page directory is the last page of RAM
ENTRY = 0x100000  # code
LGUEST_DATA = 0x101000
PTE_PAGE = 0x102000  # maps the device pages, which the launcher's identity map leaves out
TEXT = 0x103000  # strings
CONSOLE_OUTPUT_QUEUE = MEM + 3 * 4096  # device page, console input (2 pages), then output
AVAIL_IDX = CONSOLE_OUTPUT_QUEUE + 16 * 128 + 2


def store32(address: int, value: int) -> bytes:
    """``movl $value, address``."""
    return b"\xc7\x05" + struct.pack("<II", address, value)


def store16(address: int, value: int) -> bytes:
    """``movw $value, address``."""
    return b"\x66\xc7\x05" + struct.pack("<IH", address, value)


def guest(
    tmp_path: Path, code: bytes, text: bytes = b"", queued: tuple[tuple[int, int], ...] = ()
) -> Path:
    """An ELF whose one segment holds ``code`` at the entry, lguest_data (with ``queued``
    (call, arg1) hypercalls already pending in its async ring), a PTE page mapping the device
    pages at their own addresses, and ``text``."""
    ptes = struct.pack("<8I", *((MEM + 4096 * i) | 7 for i in range(8)))
    lguest_data = bytearray(lguest_data_image())
    for slot, (call, arg1) in enumerate(queued):
        struct.pack_into("<4I", lguest_data, abi.LD_HCALLS + 16 * slot, call, 0, 0, arg1)
        lguest_data[abi.LD_HCALL_STATUS + slot] = 0  # pending
    image = (
        (abi_init() + code + SPIN).ljust(0x1000, b"\x90")
        + bytes(lguest_data).ljust(0x1000, b"\0")
        + ptes.ljust(0x1000, b"\0")
        + text
    )
    path = tmp_path / "guest.elf"
    path.write_bytes(elf32([(ENTRY, image, len(image))], ENTRY))
    return path


def abi_init() -> bytes:
    return hypercall(abi.LHCALL_LGUEST_INIT, LGUEST_DATA)


def map_device_pages() -> bytes:
    """PDE 8 (guest-physical 32 MB up) -> our PTE page, then flush so the Host sees it."""
    return store32(PGDIR + 4 * (MEM >> 22), PTE_PAGE | 7) + hypercall(abi.LHCALL_FLUSH_TLB, 1)


def test_notify_of_a_string_prints_it_on_the_early_console(mount: Mount, tmp_path: Path) -> None:
    code = hypercall(abi.LHCALL_NOTIFY, TEXT) + hypercall(abi.LHCALL_CRASH, TEXT + 64)
    text = b"hello from the early console\n\0".ljust(64, b"\0") + b"bye\0".ljust(128, b"\0")
    result = run_launcher(mount, MEM_MB, guest(tmp_path, code, text))
    assert result.output == "hello from the early console\n"
    assert result.errors == "lguest: CRASH: bye\n"
    assert result.returncode == 1


def test_death_reported_after_a_notify_of_the_same_pass_is_still_a_death(
    mount: Mount, tmp_path: Path
) -> None:
    # Spec 1.3's edge: the async ring crashes the guest, then queues a NOTIFY; that read returns
    # the notify, and the next one the reason, with no ENOENT in between.
    queued = ((abi.LHCALL_CRASH, TEXT + 64), (abi.LHCALL_NOTIFY, TEXT))
    text = b"notified\n\0".ljust(64, b"\0") + b"died in the same pass\0".ljust(128, b"\0")
    code = hypercall(abi.LHCALL_FLUSH_ASYNC)
    result = run_launcher(mount, MEM_MB, guest(tmp_path, code, text, queued))
    assert (result.output, result.errors) == (
        "notified\n",
        "lguest: CRASH: died in the same pass\n",
    )
    assert result.returncode == 1


def test_power_down_is_exit_status_0(mount: Mount, tmp_path: Path) -> None:
    code = hypercall(abi.LHCALL_CRASH, TEXT)
    result = run_launcher(mount, MEM_MB, guest(tmp_path, code, b"Power down".ljust(128, b"\0")))
    assert (result.returncode, result.errors) == (0, "lguest: CRASH: Power down\n")


def test_a_host_kill_reason_is_printed_and_exit_status_1(mount: Mount, tmp_path: Path) -> None:
    result = run_launcher(mount, MEM_MB, guest(tmp_path, hypercall(11)))
    # The Host's reason ends in a newline of its own (spec 3): printed as it is, as 2.6.24 did.
    assert (result.returncode, result.errors) == (1, "lguest: Bad hypercall 11\n\n")


def test_notify_beyond_guest_memory_is_fatal(mount: Mount, tmp_path: Path) -> None:
    result = run_launcher(mount, MEM_MB, guest(tmp_path, hypercall(abi.LHCALL_NOTIFY, 0x7000000)))
    assert result.returncode == 1
    assert result.errors.startswith("lguest-launch: Bad NOTIFY 0x7000000"), result.errors


def test_a_malformed_ring_stops_the_launcher_naming_the_rule(mount: Mount, tmp_path: Path) -> None:
    code = (
        map_device_pages()
        + store16(AVAIL_IDX, 200)
        + hypercall(abi.LHCALL_NOTIFY, CONSOLE_OUTPUT_QUEUE)
    )
    result = run_launcher(mount, MEM_MB, guest(tmp_path, code))
    assert result.returncode == 1
    assert result.errors == (
        "lguest-launch: guest broke the console output queue: avail.idx moved from 0 to 200, "
        "more than the 128 entries the ring holds\n"
    )


def test_initrd_is_where_the_zero_page_says(mount: Mount, tmp_path: Path) -> None:
    # mov ramdisk_image (zero page 0x218), %edx; then NOTIFY it: the initrd's text is printed.
    notify_initrd = (
        b"\x8b\x15" + struct.pack("<I", abi.BOOT_RAMDISK_IMAGE)
        + b"\xb8" + struct.pack("<I", abi.LHCALL_NOTIFY)
        + bytes([0xCD, abi.LGUEST_TRAP_ENTRY])
    )  # fmt: skip
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"the initrd says hello\n\0")
    code = notify_initrd + hypercall(abi.LHCALL_CRASH, TEXT)
    kernel = guest(tmp_path, code, b"Power down".ljust(128, b"\0"))
    result = run_launcher(mount, MEM_MB, kernel, options=[f"--initrd={initrd}"])
    assert result.output == "the initrd says hello\n"
    assert result.returncode == 0


def test_a_daemon_that_dies_under_a_running_guest_is_one_line(mount: Mount, tmp_path: Path) -> None:
    with Launcher(mount, MEM_MB, guest(tmp_path, b"")) as launcher:  # INIT, then spin
        deadline = time.monotonic() + 30
        while not (mount.guests / str(launcher.pid)).exists():
            assert time.monotonic() < deadline, launcher.result()
            time.sleep(0.02)
        mount.crash()
        try:
            assert launcher.wait(30) == 1
            assert launcher.result().errors.endswith("the lguestfs daemon has gone away\n")
        finally:  # the crash left the mount point dead: clear it, as a user would
            subprocess.run(["fusermount3", "-u", "-z", str(mount.path)], check=False)
