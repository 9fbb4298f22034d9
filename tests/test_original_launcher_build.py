"""Building the 2.6.24 launcher (``launcher.guests.lguest_c``): what comes out, and bad input.

The build itself runs once (cached); these look at its output without a mount: a 32-bit i386
program that needs no zlib at run time, whose source carries the three patches.
"""

from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from launcher.guests.lguest_c import LinuxBuildError, build_lguest_c, patches
from tests.support.original import original_launcher


def test_it_is_a_32_bit_i386_program_that_needs_only_the_c_library() -> None:
    with open(original_launcher(), "rb") as program:
        elf = ELFFile(program)
        assert (elf.elfclass, elf["e_machine"]) == (32, "EM_386")
        needed = [
            tag.needed  # type: ignore[attr-defined]  # set for DT_NEEDED tags only
            for section in elf.iter_sections()
            if isinstance(section, DynamicSection)
            for tag in section.iter_tags()
            if tag.entry.d_tag == "DT_NEEDED"
        ]
    assert needed == ["libc.so.6"]  # lguest.c calls nothing in zlib: --as-needed dropped it


def test_each_patch_says_why_before_its_diff() -> None:
    assert [patch.name[:4] for patch in patches()] == ["0001", "0002", "0003"]
    for patch in patches():
        header = patch.read_text().split("\n--- a/", 1)[0]
        assert "Why:" in header, patch.name
        assert "+++ b/Documentation/lguest/lguest.c" in patch.read_text(), patch.name


def test_a_missing_tarball_is_one_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(LinuxBuildError, match="no such source tarball"):
        build_lguest_c(tmp_path / "linux-2.6.24.tar.bz2")
