"""The one module that imports ``unicorn``: its constants, and the private parts of its binding.

Everything the fence needs from the Python binding beyond its public API is looked up here, once, by
``Binding()`` (called from ``calibrate``): the ctypes library behind it (``uclib``: calling it
directly costs 0.5 us, the binding's wrappers 2 us) and four symbols inside it (two exported by
the project's own build, ``patches/unicorn``), two of its ctypes types, and three private
attributes of a ``Uc`` (``_uch``, the engine handle; ``_hook_exception``, where its wrapped hooks
keep what they raised; the name-mangled finalizer that frees the engine).  A binding without one
of them is a ``CpuError`` naming it, at mount, before any guest exists.
"""

from __future__ import annotations

import ctypes
from typing import Any, Final

import unicorn as _unicorn_module
from unicorn import unicorn_const as uc_const
from unicorn import x86_const as x86

# The binding ships Python-2-era annotations that mypy takes for its API: use it untyped.
unicorn: Any = _unicorn_module
const: Any = uc_const
x86_const: Any = x86
VERSION: Final[str] = str(unicorn.__version__)

# The private attributes of a ``Uc`` the fence uses (see the module notes).
UC_PRIVATE: Final = ("_uch", "_hook_exception", "_Uc__finalizer")
# The private names inside the binding's module, and one symbol inside libunicorn.
MODULE_PRIVATE: Final = ("uclib", "uc_tlb_entry", "uc_hook_h")
ENGINE_SYMBOL: Final = "check_exit_request_x86_64"  # where no_exit_request is read (_calibrate)
FLUSH_PAGE_SYMBOL: Final = "tlb_flush_page_x86_64"  # QEMU's tlb_flush_page(CPUState *, addr)
# Exported by the project's build of libunicorn (patches/unicorn/0001-store-fast-path.patch).
PATCH_MARKER: Final = "lguestfs_store_fast_path"
# ...and the TLB-fill refusal that raises the guest's page fault (0003-guest-page-fault-*.patch).
GUEST_PAGE_FAULT_SYMBOL: Final = "lguestfs_guest_page_fault"


class CpuError(Exception):
    """Unicorn refused something the Host asked of it, or is not the Unicorn the Host knows."""


def new_uc() -> Any:
    """A fresh i386 engine (protected-mode capable, 32-bit)."""
    return unicorn.Uc(uc_const.UC_ARCH_X86, uc_const.UC_MODE_32)


def handle(uc: Any) -> int:
    """The engine's address: the ``uc_struct`` the calibrated offsets point into."""
    value: int = uc._uch.value
    return value


class Binding:
    """The binding's private parts, checked to exist, and the fast C entry points built on them."""

    def __init__(self) -> None:
        module: Any = getattr(getattr(unicorn, "unicorn_py3", None), "unicorn", None)
        missing = [name for name in MODULE_PRIVATE if not hasattr(module, name)]
        if missing:
            raise CpuError(f"unicorn {VERSION}'s binding has no {', '.join(missing)}")
        uc = new_uc()
        missing = [name for name in UC_PRIVATE if not hasattr(uc, name)]
        if missing:
            raise CpuError(f"unicorn {VERSION}'s Uc has no {', '.join(missing)}")
        uc._Uc__finalizer()
        self.lib: Any = module.uclib
        self.tlb_entry: Any = module.uc_tlb_entry
        self.hook_type: Any = module.uc_hook_h
        try:
            self.engine_symbol = ctypes.cast(getattr(self.lib, ENGINE_SYMBOL), ctypes.c_void_p)
        except AttributeError:
            raise CpuError(f"libunicorn {VERSION} exports no {ENGINE_SYMBOL}") from None
        marker = self._project_export(ctypes.c_char, PATCH_MARKER)
        self.patches = ctypes.string_at(ctypes.addressof(marker)).decode()
        self.guest_page_fault = self._project_export(ctypes.c_uint32, GUEST_PAGE_FAULT_SYMBOL).value
        p, i = ctypes.c_void_p, ctypes.c_int
        self.reg_read = self.fast("uc_reg_read", p, i, p)
        self.reg_write = self.fast("uc_reg_write", p, i, p)
        self.reg_read_batch = self.fast("uc_reg_read_batch", p, p, p, i)
        self.reg_write_batch = self.fast("uc_reg_write_batch", p, p, p, i)
        self.emu_stop = self.fast("uc_emu_stop", p)
        self.ctl = self.fast("uc_ctl", p, i)
        if not hasattr(self.lib, FLUSH_PAGE_SYMBOL):
            raise CpuError(f"libunicorn {VERSION} exports no {FLUSH_PAGE_SYMBOL}")
        self.flush_page = self.fast(FLUSH_PAGE_SYMBOL, p, ctypes.c_uint64)
        self.intr_callback = ctypes.CFUNCTYPE(None, p, ctypes.c_uint32, p)
        self.tlb_fill_callback = ctypes.CFUNCTYPE(
            ctypes.c_bool, p, ctypes.c_uint64, i, ctypes.POINTER(self.tlb_entry), p
        )

    def _project_export(self, ctype: Any, name: str) -> Any:
        """A value the project's build of libunicorn exports (``patches/unicorn``).  A stock
        build has none: there every guest store takes Unicorn's slow path and a guest page fault
        would end the run and be lost, so the Host refuses it."""
        try:
            return ctype.in_dll(self.lib, name)
        except ValueError:
            raise CpuError(
                f"libunicorn {VERSION} lacks the project's patches (patches/unicorn: it exports "
                f"no {name}): run scripts/setup"
            ) from None

    def fast(self, name: str, *argtypes: Any) -> Any:
        """A libunicorn function taking plain integers: ctypes converts ints far faster than the
        binding's pointer-typed prototypes (0.4 us a call instead of 1.2)."""
        address = ctypes.cast(getattr(self.lib, name), ctypes.c_void_p).value
        assert address is not None
        return ctypes.CFUNCTYPE(ctypes.c_int, *argtypes)(address)
