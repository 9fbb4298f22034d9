"""The text of ``guests/<pid>/status``: one guest, as a person reading it with ``cat`` wants it.

Anyone who can reach the mount may read it (0444, like ``/proc/<pid>/status``), other users too on
an ``--allow-other`` mount, so it says nothing about the launcher's address space: the memory's
size, never its address (that would help an attack on the launcher, which may be root).

The protocol side (word size, memory, counters of reads, notifies, breaks and irqs) comes from the
owner's :class:`~lguestfs.protocol.Session`; the CPU side (state and why, hypercalls by name, traps,
interrupts delivered, instructions) from ``Guest.status()``, whatever fields it has, in order.

Path: a person -> node (``fs``) -> **status** <- session (``protocol``) <- guest.
"""

import dataclasses
from collections.abc import Mapping

from lguestfs.abi import PAGE_SIZE
from lguestfs.protocol import Session

SHOWN_ABOVE = frozenset({"state", "reason", "pfnlimit", "memory_bytes", "memory_size"})


def _line(name: str, value: object) -> list[str]:
    label = name.replace("_", " ")
    if isinstance(value, Mapping):
        if not value:
            return [f"{label}: none"]
        width = max(len(str(key)) for key in value)
        return [f"{label}:"] + [f"  {key!s:<{width}}  {count}" for key, count in value.items()]
    if isinstance(value, int) and not isinstance(value, bool) and name.endswith(("size", "bytes")):
        return [f"{label}: {value} ({value / (1 << 20):.1f} MiB)"]
    return [f"{label}: {value}"]


def render(session: Session) -> str:
    """The whole file, one ``name: value`` per line (maps indented below their name)."""
    guest = session.guest.status()
    state = "dead" if session.dead else getattr(guest, "state", "unknown")
    reason = session.guest.death
    lines = [f"guest: {session.name}", f"state: {state}"]
    if reason is not None:
        lines.append(f"reason: {reason.rstrip()}")
    owner = session.owner
    alive = "running" if owner.process_alive() else "exited"
    lines += [
        f"launcher: pid {owner.pid} ({alive}), tid {owner.tid}",
        f"word size: {owner.word_bytes * 8}-bit",
        f"pfnlimit: {session.pfnlimit:#x}",
    ]
    lines += _line("memory_size", session.pfnlimit * PAGE_SIZE)
    for name, value in dataclasses.asdict(session.counters).items():
        lines += _line(name, value)
    if dataclasses.is_dataclass(guest) and not isinstance(guest, type):
        for item in dataclasses.fields(guest):
            if item.name not in SHOWN_ABOVE:
                lines += _line(item.name, getattr(guest, item.name))
    return "\n".join(lines) + "\n"
