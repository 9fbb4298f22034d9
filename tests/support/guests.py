"""Build and locate the one-behaviour test guests of ``tests/guests/``.

Each ``tests/guests/<name>.c`` is a guest program linked with the runtime of
``launcher/guests/rt`` by ``launcher.guests.build``; the ELF is cached in the project's cache
directory (``launcher.guests.cache``) and rebuilt when a source is newer.  Tests pass the path
to the launcher (``lguest-launch``).
"""

from pathlib import Path

from launcher.guests.build import build_single

TEST_GUESTS_DIR = Path(__file__).resolve().parents[1] / "guests"


def test_guest(name: str) -> Path:
    """The ELF file of ``tests/guests/<name>.c``, built on first use."""
    return build_single(TEST_GUESTS_DIR / f"{name}.c")


test_guest.__test__ = False  # type: ignore[attr-defined]  # a helper, not a pytest test
