"""Types of the C TLB fill (``_fill.c`` says how it works)."""

FILL: int  # the address of the UC_HOOK_TLB_FILL callback
STATE_SIZE: int  # sizeof(struct fill_state), which its ctypes mirror in ``_cpu`` must match
