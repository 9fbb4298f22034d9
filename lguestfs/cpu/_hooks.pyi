"""Types of the C hooks (``_hooks.c`` says how they work)."""

FILL: int  # the address of the UC_HOOK_TLB_FILL callback
TRAP: int  # the address of the UC_HOOK_INTR callback
STATE_SIZE: int  # sizeof(struct hook_state), which its ctypes mirror in ``_cpu`` must match
