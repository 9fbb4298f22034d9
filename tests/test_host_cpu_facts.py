"""The facts about Unicorn that the CPU fence measures at start, each checked on its own.

``lguestfs.cpu`` lists what the Host relies on; ``_calibrate.FACTS`` checks each calibrated one
against a value it did not use to find it.  Here every check runs by name on this machine's
Unicorn, and is shown to fail for an offset one word off, so that a check which cannot fail
would show up.  Then what a Unicorn that does not match does to the daemon: one line at start,
exit status 1; and a ``CpuError`` at INITIALIZE is ENOMEM with a log line, not EIO.
"""

import dataclasses
import errno
import logging
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pyfuse3
import pytest
import trio

from lguestfs.callers import Caller
from lguestfs.cpu import CpuError, calibrate
from lguestfs.cpu._calibrate import FACTS, Calibration
from lguestfs.guest import GuestContract
from lguestfs.protocol import DeviceHandle, Registry
from tests.support.mount import REPO_ROOT


def check(fact: str, calibration: Calibration | None = None) -> None:
    FACTS[fact](calibration or calibrate())


def off_by_a_word(fact: str) -> Calibration:
    found = calibrate()
    return dataclasses.replace(found, **{fact: getattr(found, fact) + 8})


def test_every_fact_has_its_test() -> None:
    tests = {name[len("test_") :] for name in globals() if name.startswith("test_")}
    assert set(FACTS) <= tests


def test_eip() -> None:
    check("eip")


def test_hflags() -> None:
    check("hflags")


def test_gdt_base() -> None:
    check("gdt_base")


def test_error_code() -> None:
    check("error_code")


def test_exception_is_int() -> None:
    check("exception_is_int")


def test_old_exception() -> None:
    check("old_exception")


def test_no_exit_request() -> None:
    check("no_exit_request")


def test_fault_address() -> None:
    check("fault_address")


def test_cpu() -> None:
    check("cpu")


def test_env() -> None:
    check("env")


@pytest.mark.parametrize("fact", sorted(FACTS))
def test_a_wrong_offset_fails_its_check(fact: str) -> None:
    with pytest.raises(CpuError):
        check(fact, off_by_a_word(fact))


def test_a_unicorn_without_the_private_parts_fails_at_start_in_one_line(tmp_path: Path) -> None:
    """The binding's private names are checked too: without one, the daemon does not mount."""
    program = (
        "import sys, unicorn.unicorn_py3.unicorn as binding\n"
        "del binding.uc_tlb_entry\n"
        "from lguestfs.cli import main\n"
        f"sys.exit(main([{str(tmp_path)!r}]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lguestfs: unicorn ") and "uc_tlb_entry" in lines[0], lines[0]


def test_cpu_error_at_initialize_is_enomem_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def starter(caller: Caller, base: int, pfnlimit: int, pgdir: int, start: int) -> GuestContract:
        raise CpuError("uc_hook_add(2) failed: 1")

    async def scenario() -> int:
        handle = DeviceHandle(Caller(threading.get_native_id()), Registry(), starter)
        word = "I" if handle.word_bytes == 4 else "Q"
        with pytest.raises(pyfuse3.FUSEError) as failure:
            await handle.write(struct.pack(f"<5{word}", 0, 0, 1, 0, 0), threading.get_native_id())
        await handle.release()
        return failure.value.errno

    with caplog.at_level(logging.ERROR, logger="lguestfs.protocol"):
        assert trio.run(scenario) == errno.ENOMEM
    assert "no CPU for the guest: uc_hook_add(2) failed: 1" in caplog.text
