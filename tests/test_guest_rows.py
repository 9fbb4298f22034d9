"""The one-behaviour guests of ``tests/guests/`` through the real mount and the real launcher.

This pins the guest rows (27-45) of the spec's test vectors (shared/spec/lguest-abi.md section
11) and the rest of sections 3-7 that a guest can observe: every hypercall, every kill reason,
traps, interrupts, paging and segments.  Each guest, built by the project's toolchain, is run
as ``lguest-launch 16 GUEST`` against a freshly mounted daemon, so the whole path is real:
launcher → node → handle → guest → CPU → hypercall → back.

A guest's verdict reaches the test the way any guest speaks to its launcher:

* a behaviour guest prints ``PASS <name>`` on the early console (NOTIFY) and powers off
  (exit 0), or crashes with ``FAIL <name>: <detail>`` (``lguest: CRASH: FAIL ...``, exit 1);
* a kill-reason guest just does the forbidden thing: the Host's kill reason, printed by the
  launcher as ``lguest: <reason>`` with exit status 1, is the verdict.

A handful of the guests also run four at a time on the one mount: a Host keeps timers, page
tables, rings and segments per guest, so each verdict must stay the same.

Row 45 (a halted guest with everything masked) and a guest spinning with no exits need a
waker: the tests write BREAK on ``MOUNT/guests/<pid>/waker``, which returns only once the
launcher's read got EAGAIN and it released the break.
"""

import contextlib
import os
import re
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from lguestfs.abi import LHREQ_BREAK
from tests.support.guests import test_guest
from tests.support.launch import Launcher, LaunchResult, run_launcher
from tests.support.mount import Mount, mounted, skip_reason

MEM_MB = 16
TIMEOUT = 60.0


@dataclass(frozen=True)
class Row:
    """One guest and what the launcher must show for it."""

    row: str  # the spec's test-vector row, or the spec section for other behaviours
    guest: str
    reason: str | None = None  # kill reason, exactly; None: the guest must PASS
    pattern: str | None = None  # kill reason as a regular expression, when it holds an address

    @property
    def id(self) -> str:
        return f"{self.row}-{self.guest}"


ROWS = [
    Row("27", "init_not_first", "hypercall 5 before INIT"),
    Row("28", "init_bad_page", "bad guest page 00000000"),
    Row("29", "init_bad_syscall_vec", "bad syscall vector"),
    Row("30", "init_bad_kernel_address", "bad kernel address 0xffc00000"),
    Row("31", "init_twice", "already have lguest_data"),
    Row("32", "bad_hypercall", "Bad hypercall 11\n"),
    Row("33", "crash", "CRASH: oops"),
    Row("34", "crash_near_limit", pattern=r"bad read address 0x[0-9a-f]+ len 128"),
    Row("35", "set_stack_bad_segment", "bad stack segment 104"),
    Row("35", "set_stack_bad_pages", "bad stack pages 3"),
    Row("36", "idt_entry_256", "Setting idt entry 256"),
    Row("37", "idt_bad_type", "bad IDT type 12"),
    Row("38", "idt_ignored"),
    Row("39", "gdt_too_many", "too many gdt entries 33"),
    Row("40", "ud_unhandled", "unhandled trap 6 at 0x100123 (0x0)"),
    Row("41", "in_port"),
    Row("42", "bad_pte_pse", "bad page table entry"),
    Row("42", "bad_pte_pfn", "bad page table entry"),
    Row("43", "set_pmd_1023"),
    Row("44", "halt_timer"),
    Row("19", "notify_zero"),
    # Hypercalls (spec 3, 3.2)
    Row("3", "bad_hypercall_negative", "Bad hypercall -1\n"),
    Row("3", "set_stack_unmapped", pattern=r"bad stack page 0x[0-9a-f]+"),
    Row("3", "timer_cancel"),
    Row("3.1", "lguest_data_init"),
    Row("4", "time_refresh"),
    Row("3", "ts_nm"),
    Row("3.2", "async_notify_stop"),
    Row("3.2", "async_batch"),
    # Interrupts (spec 5.1)
    Row("5.1", "timer_spinning"),
    Row("5.1", "irq_blocked"),
    Row("5.1", "irq_disabled"),
    Row("5.1", "noirq_window"),
    Row("5.1", "user_timer"),
    # Traps (spec 5.2-5.4)
    Row("5.2", "port_io_forms"),
    Row("5.2", "pf_reflect"),
    Row("5.2", "user_page_fault"),
    Row("5.2", "user_port_io"),
    Row("5.2", "pf_unhandled", pattern=r"unhandled trap 14 at 0x[0-9a-f]+ \(0x80000010\)"),
    Row("5.2", "gp_unhandled", pattern=r"unhandled trap 13 at 0x[0-9a-f]+ \(0x0\)"),
    Row("5.2", "gp_reflect"),
    Row("5.2", "divide_error"),
    Row("5.2", "breakpoint"),
    Row("5.3", "idt_erase", pattern=r"unhandled trap 6 at 0x[0-9a-f]+ \(0x0\)"),
    Row("5.3", "user_syscall"),
    Row("5.3", "user_gp_dpl1"),
    Row("5.3", "user_hypercall_gp"),
    Row("5.3", "user_int3_gp"),
    Row("5.4", "trap_flags"),
    Row("5.4", "trap_bad_stack", "Bad address 0x80000000"),
    Row("5.4", "trap_stack_beyond_memory", "bad write address 0xf000000c len 4"),
    # Page tables (spec 6)
    Row("6", "pte_accessed_dirty"),
    Row("6", "new_pgtable"),
    Row("6", "flush_tlb"),
    Row("6", "set_pte_refresh"),
    Row("6", "set_pmd_refresh"),
    Row("6", "bad_pde", "bad page directory entry"),
    Row("6", "bad_pde_pfn", "bad page directory entry"),
    Row("6", "bad_pte_pwt", "bad page table entry"),
    Row("6", "set_pte_bad_immediate", "bad page table entry"),
    Row("6", "switcher_set_pte", "attempt to access switcher pages"),
    Row("6", "switcher_touch", "attempt to access switcher pages"),
    # Segments (spec 7.2)
    Row("7.2", "gdt_load"),
    Row("7.2", "tls_load"),
    # The runtime's own library (printf formats, memmove)
    Row("rt", "rt_library"),
    # The CPU: code rewritten in place, through an alias, and one instruction ahead
    Row("cpu", "self_modifying"),
]


@pytest.fixture(scope="module")
def shared_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    """One daemon for the module's guests (each guest is its own launcher, handle and CPU):
    the same mount and cleanup path as the ``mount`` fixture, paid for once."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with mounted(tmp_path_factory.mktemp("guest-rows") / "mnt") as mount:
        yield mount


def launch(mount: Mount, guest: str) -> LaunchResult:
    return run_launcher(mount, MEM_MB, test_guest(guest), timeout=TIMEOUT)


def describe(result: LaunchResult) -> str:
    return f"exit {result.returncode}\nstdout: {result.output!r}\nstderr: {result.errors!r}"


def assert_verdict(row: Row, result: LaunchResult) -> None:
    """The launcher showed what ``row`` expects: PASS and power-off, or exactly its kill."""
    assert not result.timed_out, describe(result)
    if row.reason is None and row.pattern is None:
        assert f"PASS {row.guest}\n" in result.output, describe(result)
        assert result.errors.endswith("lguest: CRASH: Power down\n"), describe(result)
        assert result.returncode == 0, describe(result)
        return
    assert result.returncode == 1, describe(result)
    if row.reason is not None:
        assert result.errors.endswith(f"lguest: {row.reason}\n"), describe(result)
    else:
        assert row.pattern is not None
        assert re.search(f"lguest: {row.pattern}\n$", result.errors), describe(result)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_guest_row(shared_mount: Mount, row: Row) -> None:
    assert_verdict(row, launch(shared_mount, row.guest))


# Timers, user mode, paging, the async ring and segments: state a Host must keep per guest.
SIDE_BY_SIDE = ("timer_spinning", "noirq_window", "user_timer", "pf_reflect", "async_batch",
                "new_pgtable", "irq_blocked", "tls_load")  # fmt: skip


def test_guests_side_by_side_keep_their_verdicts(shared_mount: Mount) -> None:
    """Four launchers at once on one mount (two CPUs' worth of guests, and more): each guest's
    verdict is the same as when it runs alone."""
    rows = [row for row in ROWS if row.guest in SIDE_BY_SIDE]
    assert len(rows) == len(SIDE_BY_SIDE)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda row: launch(shared_mount, row.guest), rows))
    for row, result in zip(rows, results, strict=True):
        assert_verdict(row, result)


def test_crash_beyond_the_limit_names_the_text_address(shared_mount: Mount) -> None:
    """Row 34 exactly: the address in the kill reason is the one the guest passed."""
    result = launch(shared_mount, "crash_near_limit")
    printed = re.search(r"CRASH text at (0x[0-9a-f]+)", result.output)
    assert printed, describe(result)
    assert result.errors.endswith(f"lguest: bad read address {printed[1]} len 128\n")


def test_notify_zero_never_reaches_the_launcher(shared_mount: Mount) -> None:
    """Row 19: the string at guest-physical 0 would be printed if NOTIFY(0) got through."""
    result = launch(shared_mount, "notify_zero")
    assert "LEAKED" not in result.output, describe(result)
    assert result.returncode == 0, describe(result)


def test_async_notifies_arrive_one_per_read_in_order(shared_mount: Mount) -> None:
    """Spec 3.2: the ring stops at a NOTIFY, so none overwrites another."""
    result = launch(shared_mount, "async_notify_stop")
    assert result.output.startswith("ring one\nring two\ndirect three\n"), describe(result)


def test_poweroff_exits_0(shared_mount: Mount) -> None:
    result = launch(shared_mount, "poweroff")
    assert result.errors.endswith("lguest: CRASH: Power down\n"), describe(result)
    assert result.returncode == 0, describe(result)


def send_break(mount: Mount, pid: int, timeout: float = TIMEOUT) -> None:
    """BREAK 1 on the guest's waker: returns once the launcher's read got EAGAIN and the launcher
    wrote BREAK 0.  Fails the test if that takes longer than ``timeout``."""
    outcome: list[BaseException | int] = []
    fd = os.open(mount.waker(pid), os.O_WRONLY)

    def write() -> None:
        try:
            outcome.append(os.write(fd, struct.pack("<2Q", LHREQ_BREAK, 1)))
        except OSError as error:
            outcome.append(error)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(timeout)
    try:
        assert not writer.is_alive(), "BREAK was never released: the launcher's read did not end"
        assert outcome == [0], f"BREAK write gave {outcome}"
    finally:
        if writer.is_alive():  # release the blocked writer ourselves, then let it finish
            os.write(fd, struct.pack("<2Q", LHREQ_BREAK, 0))
            writer.join(5)
        os.close(fd)


def wait_for_state(mount: Mount, pid: int, state: str, timeout: float = TIMEOUT) -> None:
    """Wait until the guest's status file says ``state: <state>``."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):  # not initialised yet
            status = mount.status(pid)
        if f"state: {state}\n" in status:
            return
        time.sleep(0.05)
    raise AssertionError(f"guest status never said state {state!r}:\n{status}")


def test_halted_guest_with_everything_masked_sleeps_until_a_break(shared_mount: Mount) -> None:
    """Row 45: HALT with every irq masked and no timer: only a BREAK ends the read (EAGAIN),
    and the guest is still halted, and alive, after the launcher reads again."""
    with Launcher(shared_mount, MEM_MB, test_guest("halt")) as launcher:
        for _ in range(2):
            wait_for_state(shared_mount, launcher.pid, "halted")
            send_break(shared_mount, launcher.pid)
            assert launcher.process.poll() is None, describe(launcher.result())
        wait_for_state(shared_mount, launcher.pid, "halted")


def test_spinning_guest_is_broken_out_by_a_waker(shared_mount: Mount) -> None:
    """A guest looping with no exits still ends the launcher's read at a BREAK: the Host stops
    the CPU from outside.  Twice, so the guest resumed spinning in between."""
    with Launcher(shared_mount, MEM_MB, test_guest("spin")) as launcher:
        wait_for_state(shared_mount, launcher.pid, "running")
        for _ in range(2):
            send_break(shared_mount, launcher.pid)
            assert launcher.process.poll() is None, describe(launcher.result())
        wait_for_state(shared_mount, launcher.pid, "running")
