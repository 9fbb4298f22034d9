"""Walking 2.6.24 rings from the launcher's side: each rule of spec 8 "Queue walking", on bytes.

The guest side is played by ``tests.support.launch.Ring``: it writes descriptors and the avail
ring the way a 2.6.24 driver does.  No mount is needed.
"""

import struct

import pytest

from launcher.errors import GuestBroke
from launcher.virtqueue import Buffer, Direction, Virtqueue, gather
from lguestfs.abi import vring_size
from tests.support.launch import NEXT, Ring, Space

NUM = 8
PFN = 1
LIMIT = 0x10000


@pytest.fixture
def ring() -> Ring:
    return Ring(Space(bytearray(LIMIT), LIMIT), "test", NUM, PFN)


def test_ring_of_128_has_avail_at_2048_and_used_at_4096() -> None:
    queue = Virtqueue(Space(bytearray(0x20000), 0x20000), "q", 0x10, 128, 1, Direction.EITHER)
    assert (queue.avail - queue.desc, queue.used - queue.desc) == (2048, 4096)
    assert vring_size(128) == 5124


def test_nothing_offered_pops_none(ring: Ring) -> None:
    assert ring.queue.pop() is None


def test_chain_comes_back_read_only_buffers_first(ring: Ring) -> None:
    head = ring.chain((0x3000, 24, False), (0x3100, 512, True), (0x3400, 1, True))
    chain = ring.queue.pop()
    assert chain is not None
    assert chain.head == head
    assert chain.readable == [Buffer(0x3000, 24)]
    assert chain.writable == [Buffer(0x3100, 512), Buffer(0x3400, 1)]
    assert ring.queue.pop() is None


def test_chains_come_in_the_order_offered(ring: Ring) -> None:
    first = ring.chain((0x3000, 4, False))
    second = ring.chain((0x3100, 4, False))
    heads = [ring.queue.pop(), ring.queue.pop()]
    assert [c.head for c in heads if c is not None] == [first, second]


def test_push_used_fills_the_used_ring_and_bumps_its_index(ring: Ring) -> None:
    ring.queue.push_used(5, 100)
    ring.queue.push_used(2, 7)
    assert ring.used() == (2, [(5, 100), (2, 7)])


def test_avail_index_wraps_at_16_bits(ring: Ring) -> None:
    ring.queue.last_avail = 0xFFFF
    struct.pack_into("<H", ring.space.memory, ring.queue.avail + 2, 0xFFFF)
    ring.chain((0x3000, 4, False))
    assert ring.queue.pop() is not None
    assert ring.queue.last_avail == 0


def test_no_interrupt_flag_is_honoured(ring: Ring) -> None:
    assert ring.queue.interrupts_wanted
    struct.pack_into("<H", ring.space.memory, ring.queue.avail, 1)
    assert not ring.queue.interrupts_wanted


def test_discard_gives_the_chain_back(ring: Ring) -> None:
    head = ring.chain((0x3000, 4, True))
    ring.queue.pop()
    ring.queue.discard()
    chain = ring.queue.pop()
    assert chain is not None and chain.head == head


def test_gather_follows_the_buffers(ring: Ring) -> None:
    memory = ring.space.memory
    memory[0x3000:0x3003] = b"abc"
    memory[0x4000:0x4004] = b"defg"
    assert gather(memory, [Buffer(0x3000, 3), Buffer(0x4000, 4)]) == b"abcdefg"


def test_a_chain_of_exactly_num_descriptors_is_fine(ring: Ring) -> None:
    ring.chain(*[(0x3000 + 16 * i, 16, False) for i in range(NUM)])
    chain = ring.queue.pop()
    assert chain is not None and len(chain.readable) == NUM


# --- Every malformed ring is fatal and names the rule -----------------------------------------


def broken_by_index_jump(ring: Ring) -> None:
    struct.pack_into("<H", ring.space.memory, ring.queue.avail + 2, NUM + 1)


def broken_by_head(ring: Ring) -> None:
    ring.offer(NUM)


def broken_by_address(ring: Ring) -> None:
    ring.chain((LIMIT, 4, False))


def broken_by_end_at_limit(ring: Ring) -> None:
    ring.chain((LIMIT - 16, 16, False))  # 2.6.24: addr + len >= limit is refused


def broken_by_next(ring: Ring) -> None:
    ring.desc(0, 0x3000, 4, NEXT, NUM)
    ring.offer(0)


def broken_by_out_after_in(ring: Ring) -> None:
    ring.chain((0x3000, 4, True), (0x3100, 4, False))


def broken_by_loop(ring: Ring) -> None:
    ring.desc(0, 0x3000, 4, NEXT, 1)
    ring.desc(1, 0x3100, 4, NEXT, 0)
    ring.offer(0)


MALFORMED = [
    (broken_by_index_jump, "avail.idx moved from 0 to 9, more than the 8 entries"),
    (broken_by_head, "avail ring offers descriptor 8, but the ring has 8"),
    (broken_by_address, "descriptor 0 buffer 0x10000\\+0x4 is not inside guest memory"),
    (broken_by_end_at_limit, "descriptor 0 buffer 0xfff0\\+0x10 is not inside guest memory"),
    (broken_by_next, "descriptor 0 has next 8, but the ring has 8"),
    (broken_by_out_after_in, "descriptor 1 is read-only but follows a writable descriptor"),
    (broken_by_loop, "the chain from head 0 is longer than the 8 descriptors: a loop"),
]


@pytest.mark.parametrize(("breakage", "rule"), MALFORMED, ids=[m[0].__name__ for m in MALFORMED])
def test_malformed_ring_is_fatal_naming_the_rule(ring: Ring, breakage: object, rule: str) -> None:
    assert callable(breakage)
    breakage(ring)
    with pytest.raises(GuestBroke, match=f"^guest broke the test queue: {rule}"):
        ring.queue.pop()
