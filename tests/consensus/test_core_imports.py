"""The consensus core is sans-IO (``docs/ARCHITECTURE.md``): no sockets, files, threads, clocks or
randomness, and neither the transport nor the archive. ``lint-imports`` holds most of this too; this
test also covers ``cluster.archive`` (which import-linter cannot name until it exists) and the file,
process and thread modules, and catches imports hidden inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "cluster" / "consensus" / "core"
FORBIDDEN = {
    "socket",
    "selectors",
    "ssl",
    "threading",
    "_thread",
    "multiprocessing",
    "concurrent",
    "subprocess",
    "signal",
    "time",
    "random",
    "secrets",
    "asyncio",
    "os",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "mmap",
    "cluster.transport",
    "cluster.archive",
}


def is_forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)


def forbidden_imports(source: str) -> list[str]:
    """``line N: module`` for each forbidden import anywhere in ``source`` (also inside functions)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            # ``from cluster import transport`` names the forbidden module only in its alias
            names = (
                [node.module]
                if is_forbidden(node.module)
                else [f"{node.module}.{a.name}" for a in node.names]
            )
        else:
            continue
        found += [f"line {node.lineno}: {name}" for name in names if is_forbidden(name)]
    return sorted(found)


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda path: path.name)
def test_core_module_imports_nothing_forbidden(path: Path) -> None:
    assert forbidden_imports(path.read_text(encoding="utf-8")) == [], f"{path.name} imports I/O"


def test_the_checker_can_fail() -> None:
    """A canary: the checker sees top-level, nested and from-imports."""
    source = (
        "import os.path\n"
        "def f():\n"
        "    from cluster.transport import uri\n"
        "from time import monotonic_ns\n"
        "from cluster import archive\n"
    )
    assert forbidden_imports(source) == [
        "line 1: os.path",
        "line 3: cluster.transport",
        "line 4: time",
        "line 5: cluster.archive",
    ]
    assert forbidden_imports("import timeit, randomness\nfrom cluster import consensus\n") == []
