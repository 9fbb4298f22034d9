"""Which launcher memory INITIALIZE can share (``lguestfs.sharing``): pure logic over maps lines.

The end-to-end cases (a memfd works, a private mapping is EFAULT) run through the mount in
``test_protocol_rows.py``; here are the shapes of ``/proc/<pid>/maps`` that are hard to make
on purpose: holes, split mappings, two objects back to back, read-only pieces.
"""

import pytest

from lguestfs.sharing import Mapping, SharingError, check_shareable

MEMFD = "00:01 1234 /memfd:guest (deleted)"
OTHER = "00:01 9999 /dev/shm/other"


def maps(*lines: str) -> list[Mapping]:
    return [Mapping.parse(line) for line in lines]


def test_one_shared_mapping_covering_the_range_is_shareable() -> None:
    check_shareable(maps(f"10000-20000 rw-s 00000000 {MEMFD}"), 0x10000, 0x20000)


def test_a_mapping_split_in_two_with_contiguous_offsets_is_shareable() -> None:
    pieces = maps(f"10000-18000 rw-s 00000000 {MEMFD}", f"18000-20000 rw-s 00008000 {MEMFD}")
    check_shareable(pieces, 0x10000, 0x20000)


@pytest.mark.parametrize(
    ("lines", "why"),
    [
        ([f"10000-20000 rw-p 00000000 {MEMFD}"], "private mapping"),
        (["10000-20000 rw-p 00000000 00:00 0"], "private mapping"),
        ([f"10000-20000 r--s 00000000 {MEMFD}"], "not readable and writable"),
        ([f"11000-20000 rw-s 00000000 {MEMFD}"], "is not mapped"),
        ([f"10000-18000 rw-s 00000000 {MEMFD}"], "ends at 0x18000"),
        ([f"10000-18000 rw-s 00000000 {MEMFD}", f"19000-20000 rw-s 00009000 {MEMFD}"], "ends"),
        ([f"10000-18000 rw-s 00000000 {MEMFD}", f"18000-20000 rw-s 00000000 {OTHER}"], "ends"),
        ([f"10000-18000 rw-s 00000000 {MEMFD}", f"18000-20000 rw-s 00010000 {MEMFD}"], "ends"),
        ([], "is not mapped"),
    ],
)
def test_ranges_that_cannot_be_shared_say_why(lines: list[str], why: str) -> None:
    with pytest.raises(SharingError, match=why):
        check_shareable(maps(*lines), 0x10000, 0x20000)
