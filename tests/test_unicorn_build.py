"""The project's Unicorn build (``patches/unicorn``) on the bare engine, no mount needed.

``0001-store-fast-path.patch`` lets guest stores skip Unicorn's slow path on pages that hold no
translated code.  These tests pin what must not change with it, in the TLB mode the Host uses
(``UC_TLB_VIRTUAL``, every miss answered by a hook): a store reaches code it rewrites whichever
virtual address it goes through, and a write hook sees every store.  The guest-level check is
``tests/guests/self_modifying.c`` (in ``test_guest_rows``); the speed is ``scripts/bench``'s
"guest stores" figure.  ``0002-inline-exit-check.patch`` tests for a pending stop inline at
each block's start: a stop from another thread must still end a loop that never leaves its
block (the guest-level guarantees are ``tests/test_host_stopping.py``).
"""

import struct
import subprocess
import sys
from typing import Any, cast

import unicorn
from unicorn import unicorn_const as uc_const
from unicorn import x86_const as x86

from lguestfs.cpu import calibrate

CODE_PHYS = 0x3000  # one physical page of code, reached through two virtual pages
CODE_VADDR = 0x10000
ALIAS_VADDR = 0x20000
WRITER = 0x1000  # mov %ebx, (ALIAS_VADDR + 1); hlt
UNTIL = 0x7000  # emu_start's end: mapped, away from the code (Unicorn drops the block before it)
ALIASES = {CODE_VADDR >> 12: CODE_PHYS, ALIAS_VADDR >> 12: CODE_PHYS}


def engine() -> Any:
    """A 32-bit CPU whose TLB misses map ``ALIASES`` and everything else one to one."""
    uc: Any = cast(Any, unicorn).Uc(uc_const.UC_ARCH_X86, uc_const.UC_MODE_32)  # untyped binding
    uc.ctl_set_tlb_mode(uc_const.UC_TLB_VIRTUAL)

    def fill(_uc: Any, vaddr: int, _access: int, entry: Any, _data: Any) -> bool:
        entry.paddr = ALIASES.get(vaddr >> 12, vaddr & ~0xFFF)
        entry.perms = uc_const.UC_PROT_ALL
        return True

    uc.hook_add(uc_const.UC_HOOK_TLB_FILL, fill)
    uc.mem_map(0, 0x10000)
    uc.mem_write(CODE_PHYS, b"\xb8" + struct.pack("<I", 0) + b"\xf4")  # mov $0, %eax; hlt
    uc.mem_write(WRITER, b"\x89\x1d" + struct.pack("<I", ALIAS_VADDR + 1) + b"\xf4")
    return uc


def rewrite_through_alias(uc: Any, value: int) -> None:
    uc.reg_write(x86.UC_X86_REG_EBX, value)
    uc.emu_start(WRITER, UNTIL)


def run_code(uc: Any) -> int:
    uc.emu_start(CODE_VADDR, UNTIL)
    return int(uc.reg_read(x86.UC_X86_REG_EAX))


def test_the_installed_unicorn_is_the_project_build() -> None:
    assert calibrate().binding.patches is not None, (
        "libunicorn lacks the project's patches: run scripts/setup (scripts/build-unicorn)"
    )


def test_a_store_through_an_alias_reaches_code_translated_after_it() -> None:
    """The alias's TLB entry was made fast while its page held no code; the code translated
    since must make it slow again, or the second rewrite would leave the old block running."""
    uc = engine()
    rewrite_through_alias(uc, 1)
    assert run_code(uc) == 1
    rewrite_through_alias(uc, 2)
    assert run_code(uc) == 2
    rewrite_through_alias(uc, 3)
    assert run_code(uc) == 3


def test_a_write_hook_added_late_sees_stores_to_a_page_without_code() -> None:
    uc = engine()
    rewrite_through_alias(uc, 1)  # the alias's entry is fast now: its page holds no code
    seen: list[tuple[int, int]] = []
    uc.hook_add(
        uc_const.UC_HOOK_MEM_WRITE, lambda _u, _a, addr, _s, value, _d: seen.append((addr, value))
    )
    rewrite_through_alias(uc, 7)
    assert seen == [(CODE_PHYS + 1, 7)]


# A CPU spinning on ``jmp .`` (one block chained to itself), stopped from another thread.
SPIN_AND_STOP = """
import threading, time, unicorn
from unicorn import unicorn_const as c
uc = unicorn.Uc(c.UC_ARCH_X86, c.UC_MODE_32)
uc.mem_map(0x1000, 0x2000)
uc.mem_write(0x1000, bytes([0xEB, 0xFE]))
def stop():
    time.sleep(0.2)
    while True:
        uc.emu_stop()
        time.sleep(0.01)
threading.Thread(target=stop, daemon=True).start()
uc.emu_start(0x1000, 0x2FFF)
print("stopped")
"""


def test_a_stop_from_another_thread_ends_a_block_looping_on_itself() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SPIN_AND_STOP], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "stopped", result.stderr
