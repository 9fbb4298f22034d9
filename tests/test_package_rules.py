"""The project's import rules, read from the sources (no mount needed).

The launcher shares exactly the interface with the daemon, ``lguestfs.abi`` and ``lguestfs.node``,
and ``lguestfs`` never imports ``launcher``; the interface modules import nothing of the daemon,
and ``lguestfs.mounting`` (the daemon seen from outside) only the node's view.  Nothing outside
the tests imports them: not the product, not ``scripts/run``, not the bench.
"""

import ast
from pathlib import Path

from tests.support.mount import REPO_ROOT

INTERFACE = {"lguestfs.abi", "lguestfs.node"}


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports: ``from lguestfs import node`` is ``lguestfs.node``,
    ``from lguestfs.abi import PAGE_SIZE`` is ``lguestfs.abi``."""
    names: set[str] = set()
    for statement in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(statement, ast.Import):
            names.update(alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom) and statement.module and not statement.level:
            if "." in statement.module:
                names.add(statement.module)
            else:  # a top-level package: what is imported from it may be its modules
                names.update(f"{statement.module}.{alias.name}" for alias in statement.names)
    return names


def imports_of(package: str, modules: set[str]) -> set[str]:
    return {name for name in modules if name == package or name.startswith(f"{package}.")}


def test_the_launcher_imports_only_the_interface_of_lguestfs() -> None:
    for path in sorted((REPO_ROOT / "launcher").rglob("*.py")):
        used = imports_of("lguestfs", imported(path))
        assert used <= INTERFACE, f"{path.relative_to(REPO_ROOT)} imports {used - INTERFACE}"


def test_lguestfs_never_imports_the_launcher() -> None:
    for path in sorted((REPO_ROOT / "lguestfs").rglob("*.py")):
        assert not imports_of("launcher", imported(path)), path.relative_to(REPO_ROOT)


def test_the_outside_view_imports_nothing_of_the_daemon() -> None:
    allowed = {
        "abi.py": set(),
        "node.py": set(),
        "mounting.py": {"lguestfs.node"},
    }
    for name, may in allowed.items():
        path = REPO_ROOT / "lguestfs" / name
        assert imports_of("lguestfs", imported(path)) <= may, name
        assert not {"pyfuse3", "trio", "unicorn"} & imported(path), name


def test_nothing_outside_the_tests_imports_them() -> None:
    paths = [REPO_ROOT / "scripts" / "run"]
    for top in ("lguestfs", "launcher", "scripts/benchlib"):
        paths += sorted((REPO_ROOT / top).rglob("*.py"))
    for path in paths:
        assert not imports_of("tests", imported(path)), path.relative_to(REPO_ROOT)
