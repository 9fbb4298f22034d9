"""Fixtures every test may use.

* ``mount``: a freshly mounted lguestfs daemon on a temporary directory (``tests.support.mount``),
  unmounted and checked for internal errors after the test; skipped without root or /dev/fuse.
* ``client_builds``: a directory where the C clients of ``tests/clients`` are compiled once per run.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mount import Mount, mounted, skip_reason


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Mount]:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with mounted(tmp_path / "mnt") as mounted_fs:
        yield mounted_fs


@pytest.fixture(scope="session")
def client_builds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clients")
