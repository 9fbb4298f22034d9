"""One 2.6.24 virtqueue, seen from the launcher's side of guest memory (spec 9, "Ring").

The guest puts buffers in a ring inside two pages the launcher handed it; the launcher takes them
out (``pop``), does the work, and hands them back (``push_used``).  Everything in the ring was
written by the guest, so everything is checked before it is trusted: a guest that breaks a rule
stops the launcher with ``GuestBroke`` naming the queue and the rule (spec 8, "Queue walking"),
exactly the rules 2.6.24's ``get_vq_desc`` enforced:

* ``(u16)(avail.idx - last_seen) > num``: the guest moved its index by more than the ring holds;
* a head ``>= num``;
* a descriptor whose ``addr >= limit`` or ``addr + len >= limit`` (2.6.24's check: a buffer may
  not even end exactly at the limit);
* a ``next >= num``;
* a read-only ("out") descriptor after a writable ("in") one;
* a chain longer than ``num`` (a loop).

Each queue also knows which way its device moves data (``Direction``), and so what shape every
chain on it must have: only read-only buffers (the guest's output), only writable ones (input for
the guest), or both (a request and room for its answer).  2.6.24's ``get_vq_desc`` took any shape
and each device ``errx()``-ed on the shapes it could not use; here the queue checks the shape its
device declared, so the devices only check what is particular to them (a header's size), and
``Virtqueue.broke`` is the one place the "guest broke the ... queue" message is made.

Layout for ``num`` entries at ``pfn << 12``: ``desc[num]`` (16 bytes: u64 addr, u32 len, u16 flags,
u16 next), then ``avail`` (u16 flags, u16 idx, u16 ring[num]), then at the next 4096 boundary
``used`` (u16 flags, u16 idx, {u32 id, u32 len}[num]).  There are no event-index fields in 2.6.24.

Guest memory is any writable buffer (the launcher's shared mmap, or a bytearray in tests) with
a ``limit``: the launcher's ``guest_limit``, which includes the device pages.
"""

import enum
import mmap
import struct
from dataclasses import dataclass, field
from typing import Protocol

from launcher.errors import GuestBroke
from lguestfs.abi import (
    PAGE_SIZE,
    VRING_ALIGN,
    VRING_AVAIL_F_NO_INTERRUPT,
    VRING_DESC_BYTES,
    VRING_DESC_F_NEXT,
    VRING_DESC_F_WRITE,
)

Memory = mmap.mmap | bytearray
DESCRIPTOR = struct.Struct("<QIHH")
USED_ELEM = struct.Struct("<II")


class GuestSpace(Protocol):
    """Where queues live: guest memory and its limit (``PreparedGuest`` is one)."""

    @property
    def memory(self) -> Memory: ...

    @property
    def limit(self) -> int: ...


@dataclass(frozen=True)
class Buffer:
    """One descriptor's buffer: ``length`` bytes at guest-physical ``address``."""

    address: int
    length: int


@dataclass
class Chain:
    """The buffers of one request: the read-only ones (guest to device) come first."""

    head: int
    readable: list[Buffer] = field(default_factory=list)
    writable: list[Buffer] = field(default_factory=list)


class Direction(enum.Enum):
    """Which way a queue's buffers carry data, and so what every chain on it must hold."""

    OUT = "out"  # guest to device: read-only buffers only (console output, network send)
    IN = "in"  # device to guest: writable buffers only (console input, network receive)
    REQUEST = "request"  # a read-only request, then writable room for the answer (block)
    EITHER = "either"  # any shape: only the ring's own rules, as 2.6.24's get_vq_desc


class Virtqueue:
    """The launcher's view of one ring: ``num`` entries at page ``pfn``, interrupt ``irq``."""

    def __init__(
        self, space: GuestSpace, name: str, pfn: int, num: int, irq: int, direction: Direction
    ) -> None:
        if num & (num - 1) or num == 0:
            raise ValueError(f"virtqueue size must be a power of 2, not {num}")
        self.space = space
        self.name = name
        self.direction = direction
        self.pfn = pfn
        self.num = num
        self.irq = irq
        self.last_avail = 0  # how far we have taken buffers (2.6.24's last_avail_idx)
        base = pfn * PAGE_SIZE
        self.desc = base
        self.avail = base + VRING_DESC_BYTES * num
        avail_end = self.avail + 2 * (2 + num)
        self.used = (avail_end + VRING_ALIGN - 1) // VRING_ALIGN * VRING_ALIGN

    # --- Reading what the guest wrote ---------------------------------------------------------

    def _u16(self, address: int) -> int:
        value: int = struct.unpack_from("<H", self.space.memory, address)[0]
        return value

    def broke(self, rule: str) -> GuestBroke:
        """What stops the launcher when the guest broke ``rule`` on this queue (spec 8)."""
        return GuestBroke(f"guest broke the {self.name} queue: {rule}")

    @property
    def avail_idx(self) -> int:
        return self._u16(self.avail + 2)

    @property
    def interrupts_wanted(self) -> bool:
        """False while the guest has set NO_INTERRUPT in avail.flags."""
        return not self._u16(self.avail) & VRING_AVAIL_F_NO_INTERRUPT

    def pending(self) -> int:
        """How many buffers the guest has made available that we have not taken."""
        new = (self.avail_idx - self.last_avail) & 0xFFFF
        if new > self.num:
            raise self.broke(
                f"avail.idx moved from {self.last_avail} to {self.avail_idx}, "
                f"more than the {self.num} entries the ring holds"
            )
        return new

    def pop(self) -> Chain | None:
        """Take the next available chain, or None when the guest has offered nothing new."""
        if not self.pending():
            return None
        head = self._u16(self.avail + 4 + 2 * (self.last_avail % self.num))
        if head >= self.num:
            raise self.broke(f"avail ring offers descriptor {head}, but the ring has {self.num}")
        self.last_avail = (self.last_avail + 1) & 0xFFFF
        chain = Chain(head)
        limit = self.space.limit
        index = head
        while True:
            address, length, flags, next_index = DESCRIPTOR.unpack_from(
                self.space.memory, self.desc + VRING_DESC_BYTES * index
            )
            if address >= limit or address + length >= limit:
                raise self.broke(
                    f"descriptor {index} buffer {address:#x}+{length:#x} is not inside guest "
                    f"memory (limit {limit:#x})"
                )
            if flags & VRING_DESC_F_WRITE:
                chain.writable.append(Buffer(address, length))
            elif chain.writable:
                raise self.broke(
                    f"descriptor {index} is read-only but follows a writable descriptor "
                    "(all read-only buffers must come first)"
                )
            else:
                chain.readable.append(Buffer(address, length))
            if len(chain.readable) + len(chain.writable) > self.num:
                raise self.broke(
                    f"the chain from head {head} is longer than the {self.num} descriptors: a loop"
                )
            if not flags & VRING_DESC_F_NEXT:
                self._check_direction(chain)
                return chain
            if next_index >= self.num:
                raise self.broke(
                    f"descriptor {index} has next {next_index}, but the ring has {self.num}"
                )
            index = next_index

    def _check_direction(self, chain: Chain) -> None:
        head, direction = chain.head, self.direction
        if direction is Direction.OUT and chain.writable:
            raise self.broke(f"chain {head} has writable buffers (this queue's must be read-only)")
        if direction is Direction.IN and chain.readable:
            raise self.broke(f"chain {head} has read-only buffers (this queue's must be writable)")
        if direction is Direction.REQUEST and not (chain.readable and chain.writable):
            raise self.broke(f"chain {head} needs a read-only header and a writable status")

    def discard(self) -> None:
        """Give back the chain ``pop`` just took (the device could not use it after all)."""
        self.last_avail = (self.last_avail - 1) & 0xFFFF

    # --- Handing buffers back -----------------------------------------------------------------

    def push_used(self, head: int, length: int) -> None:
        """Tell the guest chain ``head`` is done and ``length`` bytes were written into it."""
        memory = self.space.memory
        used_idx = self._u16(self.used + 2)
        USED_ELEM.pack_into(
            memory, self.used + 4 + USED_ELEM.size * (used_idx % self.num), head, length
        )
        struct.pack_into("<H", memory, self.used + 2, (used_idx + 1) & 0xFFFF)


def gather(memory: Memory, buffers: list[Buffer]) -> bytes:
    """The bytes of ``buffers``, in order (they were checked against the limit by ``pop``)."""
    return b"".join(memory[b.address : b.address + b.length] for b in buffers)


def views(view: memoryview, buffers: list[Buffer]) -> list[memoryview]:
    """Writable views of ``buffers`` inside ``view`` (of all guest memory), for readv/preadv."""
    return [view[b.address : b.address + b.length] for b in buffers]
