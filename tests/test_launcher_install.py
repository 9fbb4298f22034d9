"""An installed lguestfs: a wheel of the project, installed (not editable) into a fresh venv.

The wheel is built offline from a copy of the sources (so the checkout gets no ``build/`` or
``egg-info``), installed with ``pip --python`` into a venv made without pip, and given the
project's dependencies through a ``.pth`` file naming this venv's ``site-packages`` (so nothing is
downloaded).  Its entry points must start from anywhere; and because ``launcher`` is a common
top-level name, a foreign ``launcher`` beside it, or one that replaced its ``__init__.py``, must
be refused with a clear line instead of being hidden or used (``launcher.identity``).
"""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.support.mount import REPO_ROOT

SOURCES = ("pyproject.toml", "README.md", "lguestfs", "launcher")
IGNORED = shutil.ignore_patterns("__pycache__")
pytestmark = pytest.mark.slow


class Installed:
    def __init__(self, venv: Path) -> None:
        self.venv = venv
        (self.site,) = venv.glob("lib/python*/site-packages")

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / program), *args],
            capture_output=True,
            text=True,
            cwd=self.venv.parent,  # not the checkout: nothing of it may be on sys.path
            env={"PATH": "/usr/bin:/bin"},
            timeout=60,
            check=False,
        )

    def add_path(self, name: str, directory: Path) -> None:
        """Put ``directory`` on the installed Python's sys.path, after site-packages."""
        (self.site / f"{name}.pth").write_text(f"{directory}\n")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    top = tmp_path_factory.mktemp("install")
    source = top / "src"
    source.mkdir()
    for name in SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name, ignore=IGNORED)
        else:
            shutil.copy(REPO_ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", top, source],
        check=True,
    )
    (wheel,) = top.glob("lguestfs-*.whl")
    venv = top / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    subprocess.run(
        [*pip, "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index", wheel],
        check=True,
    )
    result = Installed(venv)
    result.add_path("lguestfs_test_dependencies", Path(sysconfig.get_paths()["purelib"]))
    return result


def test_the_installed_entry_points_start_from_anywhere(installed: Installed) -> None:
    for program, usage in [
        ("lguest-launch", "usage: lguest-launch"),
        ("lguest-waker", "usage: lguest-waker"),
        ("lguestfs", "usage: lguestfs"),
    ]:
        done = installed.run(program, "--help")
        assert (done.returncode, done.stderr) == (0, ""), program
        assert done.stdout.startswith(usage)


def test_both_packages_come_from_the_venv_not_the_checkout(installed: Installed) -> None:
    done = installed.run("python", "-c", "import launcher, lguestfs; print(launcher.__file__)")
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).parent == installed.site / "launcher"


def test_a_foreign_launcher_on_the_path_is_refused_not_hidden(
    installed: Installed, tmp_path: Path
) -> None:
    (tmp_path / "launcher").mkdir()
    (tmp_path / "launcher" / "__init__.py").write_text('"""Somebody else\'s launcher."""\n')
    installed.add_path("zz_foreign", tmp_path)
    try:
        done = installed.run("lguest-launch", "--help")
    finally:
        (installed.site / "zz_foreign.pth").unlink()
    assert done.returncode != 0
    assert f"another top-level 'launcher' is installed at {tmp_path}" in done.stderr


def test_a_launcher_whose_init_was_replaced_is_refused(installed: Installed) -> None:
    init = installed.site / "launcher" / "__init__.py"
    ours = init.read_text()
    init.write_text('"""Another distribution\'s launcher package."""\n')
    try:
        done = installed.run("lguest-launch", "--help")
    finally:
        init.write_text(ours)
    assert done.returncode == 1
    assert done.stderr.startswith("lguest-launch: the package 'launcher' at ")
    assert "is not lguestfs's" in done.stderr
