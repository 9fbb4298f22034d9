"""The core's layout rules, read from the sources: Unicorn only behind its fence, no import cycle.

``lguestfs/cpu`` is the only package that imports ``unicorn`` (and inside it only ``_binding``);
the daemon's modules import each other without a cycle, so each can be read before the ones it
calls (the reading order in ``lguestfs/__init__.py``).
"""

from pathlib import Path

from tests.support.mount import REPO_ROOT
from tests.test_package_rules import imported, imports_of

FENCE_IMPORTER = REPO_ROOT / "lguestfs" / "cpu" / "_binding.py"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_only_the_fence_imports_unicorn() -> None:
    for top in ("lguestfs", "launcher"):
        for path in sorted((REPO_ROOT / top).rglob("*.py")):
            if path != FENCE_IMPORTER:
                assert not imports_of("unicorn", imported(path)), path.relative_to(REPO_ROOT)


def test_the_daemon_has_no_import_cycle() -> None:
    paths = sorted((REPO_ROOT / "lguestfs").rglob("*.py"))
    # C modules (their stubs name them) import nothing of the daemon
    c_modules = {module_name(stub): set[str]() for stub in (REPO_ROOT / "lguestfs").rglob("*.pyi")}
    modules = {module_name(path) for path in paths} | set(c_modules)
    graph = c_modules | {
        module_name(path): {
            name if name in modules else name.rsplit(".", 1)[0]
            for name in imports_of("lguestfs", imported(path))
        }
        & modules
        for path in paths
    }
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        for dependency in sorted(graph[module] - {module}):
            assert dependency not in path, " -> ".join([*path, dependency])
            if dependency not in done:
                visit(dependency, [*path, dependency])
        done.add(module)

    for module in sorted(graph):
        visit(module, [module])
