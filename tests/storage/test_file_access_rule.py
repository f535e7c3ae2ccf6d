"""The file-access rule: in ``cluster/``, only ``cluster/storage/real.py`` touches the file system.

Everything else reads and writes files through a ``cluster.storage.Storage`` handed to it. That is what
lets the simulator run the archive and the cluster exactly as production does, with a ``SimDisk`` in
place of ``RealStorage``: a module that opened a file of its own would write to the real disk in the
middle of a simulation, outside the seed, and nothing it wrote would be lost at a simulated crash.

The rule is checked on the syntax tree of every ``.py`` file under ``cluster/`` (imports inside
functions included). Forbidden outside ``real.py``:

* importing a module whose business is files: ``io``, ``pathlib``, ``mmap``, ``shutil``, ``tempfile``,
  ``fcntl``, ``glob`` and their kin below (``FORBIDDEN_MODULES``), or ``os.path``;
* the builtin ``open`` -- any use of the name, called or passed on -- and ``builtins.open``;
* the file functions of ``os`` (``OS_FILE_FUNCTIONS``), as ``os.<f>`` (also under an alias of ``os``) or
  ``from os import <f>``, and ``from os import *``;
* ``__import__`` and ``importlib.import_module`` of a forbidden module named by a string.

One exception is memory, not a file: ``cluster/transport/logbuffer.py`` allocates the log buffers as
anonymous memory mappings, so it may ``import mmap`` -- and every use of it there must be a call
``mmap.mmap(-1, ...)``, a mapping of no file, or the flag ``mmap.MAP_PRIVATE`` (``ANONYMOUS_MEMORY``).

``os`` itself stays allowed, for what is not a file: ``os.sched_yield`` (the idle strategies of
``cluster/transport/agent.py``), the environment, the process id. Sockets are not files here: the
transport's ``media.py`` opens them, and the simulator replaces them with ``SimNetwork`` the same way.
The check is syntactic; ``getattr(os, "open")`` would get past it, and is left to review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
ALLOWED = {Path("cluster/storage/real.py")}
ANONYMOUS_MEMORY = {Path("cluster/transport/logbuffer.py")}  # may map anonymous memory (module docstring)

FORBIDDEN_MODULES = frozenset(
    {
        "io",
        "_io",
        "pathlib",
        "mmap",
        "shutil",
        "tempfile",
        "fcntl",
        "glob",
        "fnmatch",
        "fileinput",
        "filecmp",
        "linecache",
        "zipfile",
        "tarfile",
        "sqlite3",
        "dbm",
        "shelve",
        "posix",  # what os is built on: posix.open is os.open
        "os.path",
    }
)
OS_FILE_FUNCTIONS = frozenset(
    {
        "open",
        "fdopen",
        "close",
        "dup",
        "dup2",
        "pread",
        "pwrite",
        "preadv",
        "pwritev",
        "read",
        "readv",
        "write",
        "writev",
        "lseek",
        "unlink",
        "remove",
        "removedirs",
        "rename",
        "renames",
        "replace",
        "listdir",
        "scandir",
        "makedirs",
        "mkdir",
        "rmdir",
        "truncate",
        "ftruncate",
        "posix_fallocate",
        "posix_fadvise",
        "fsync",
        "fdatasync",
        "sync",
        "stat",
        "lstat",
        "fstat",
        "statvfs",
        "fstatvfs",
        "access",
        "path",
        "walk",
        "fwalk",
        "chdir",
        "getcwd",
        "chmod",
        "fchmod",
        "chown",
        "fchown",
        "utime",
        "link",
        "symlink",
        "readlink",
        "mkfifo",
        "mknod",
        "memfd_create",
        "sendfile",
        "copy_file_range",
    }
)


def is_forbidden_module(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_MODULES)


def _is_minus_one(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and node.operand.value == 1
    ) or (isinstance(node, ast.Constant) and node.value == -1)


def anonymous_memory_only(source: str) -> tuple[str, list[tuple[int, str]]]:
    """``source`` with its ``import mmap`` lines taken out, and ``(line, what)`` for every use of
    ``mmap`` that is not a call ``mmap.mmap(-1, ...)`` (a mapping of no file)."""
    tree = ast.parse(source)
    found: list[tuple[int, str]] = []
    calls = {
        id(node.func)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and node.args and _is_minus_one(node.args[0])
    }
    allowed = {  # the ``mmap`` names of mmap.mmap(-1, ...) calls and of mmap.MAP_PRIVATE
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and ((node.attr == "mmap" and id(node) in calls) or node.attr == "MAP_PRIVATE")
    }
    import_lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and [a.name for a in node.names] == ["mmap"]:
            if node.names[0].asname is None:
                import_lines.add(node.lineno)
        elif (
            isinstance(node, ast.Name)
            and node.id == "mmap"
            and isinstance(node.ctx, ast.Load)
            and id(node) not in allowed
        ):
            found.append((node.lineno, "mmap other than mmap.mmap(-1, ...)"))
    lines = source.splitlines()
    kept = "\n".join("" if number in import_lines else line for number, line in enumerate(lines, 1))
    return kept, found


def file_access(source: str) -> list[tuple[int, str]]:
    """``(line, what)`` for every file-system access in ``source``, sorted."""
    tree = ast.parse(source)
    os_names = {"os"}  # names bound to the os module: ``import os as o`` adds "o"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names.update(alias.asname for alias in node.names if alias.name == "os" and alias.asname)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if is_forbidden_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            module = node.module
            if is_forbidden_module(module):
                found.append((node.lineno, f"from {module} import ..."))
                continue
            for alias in node.names:
                if is_forbidden_module(f"{module}.{alias.name}"):  # from os import path
                    found.append((node.lineno, f"from {module} import {alias.name}"))
                elif module == "os" and (alias.name in OS_FILE_FUNCTIONS or alias.name == "*"):
                    found.append((node.lineno, f"from os import {alias.name}"))
                elif module == "builtins" and alias.name in ("open", "*"):
                    found.append((node.lineno, f"from builtins import {alias.name}"))
        elif isinstance(node, ast.Name) and node.id == "open" and isinstance(node.ctx, ast.Load):
            found.append((node.lineno, "builtin open"))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner = node.value.id
            if owner in os_names and node.attr in OS_FILE_FUNCTIONS:
                found.append((node.lineno, f"{owner}.{node.attr}"))
            elif owner == "builtins" and node.attr == "open":
                found.append((node.lineno, "builtins.open"))
        elif isinstance(node, ast.Call) and node.args:
            function = node.func
            named = (isinstance(function, ast.Name) and function.id in ("__import__", "import_module")) or (
                isinstance(function, ast.Attribute) and function.attr == "import_module"
            )
            first = node.args[0]
            if (
                named
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and is_forbidden_module(first.value)
            ):
                found.append((node.lineno, f"dynamic import of {first.value}"))
    return sorted(found)


def cluster_sources() -> list[Path]:
    return sorted(path.relative_to(REPO) for path in CLUSTER.rglob("*.py"))


def _violations(path: Path) -> list[tuple[int, str]]:
    source = (REPO / path).read_text(encoding="utf-8")
    if path not in ANONYMOUS_MEMORY:
        return file_access(source)
    kept, found = anonymous_memory_only(source)
    return sorted(found + file_access(kept))


def test_only_the_storage_layer_touches_files() -> None:
    violations = [
        f"{path}:{line}: {what}"
        for path in cluster_sources()
        if path not in ALLOWED
        for line, what in _violations(path)
    ]
    assert violations == [], "file-system access outside cluster/storage/real.py:\n" + "\n".join(violations)


def test_the_walk_sees_the_tree() -> None:
    """The rule is not vacuous: it reads the modules it is about, the allowed one included."""
    sources = cluster_sources()
    for expected in ALLOWED | {Path("cluster/storage/sim.py"), Path("cluster/transport/agent.py")}:
        assert expected in sources
    real = file_access((REPO / "cluster/storage/real.py").read_text(encoding="utf-8"))
    assert {what for _, what in real} >= {"os.open", "os.pread", "os.fsync", "os.path"}


@pytest.mark.parametrize(
    "snippet, what",
    [
        ("import io", "import io"),
        ("import pathlib", "import pathlib"),
        ("import mmap", "import mmap"),
        ("import shutil", "import shutil"),
        ("import tempfile", "import tempfile"),
        ("import fcntl", "import fcntl"),
        ("import glob", "import glob"),
        ("import os.path", "import os.path"),
        ("import posix", "import posix"),
        ("from pathlib import Path", "from pathlib import ..."),
        ("from io import BytesIO", "from io import ..."),
        ("from os.path import join", "from os.path import ..."),
        ("from os import path", "from os import path"),
        ("from os import pwrite", "from os import pwrite"),
        ("from os import *", "from os import *"),
        ("from builtins import open", "from builtins import open"),
        ("open('f')", "builtin open"),
        ("with open('f', 'rb') as f: pass", "builtin open"),
        ("reader = open", "builtin open"),
        ("import builtins\nbuiltins.open('f')", "builtins.open"),
        ("import os\nos.path.join('a', 'b')", "os.path"),
        ("__import__('shutil')", "dynamic import of shutil"),
        ("import importlib\nimportlib.import_module('mmap')", "dynamic import of mmap"),
    ]
    + [(f"import os\nos.{name}", f"os.{name}") for name in sorted(OS_FILE_FUNCTIONS)],
)
def test_the_checker_flags(snippet: str, what: str) -> None:
    assert what in [found for _, found in file_access(snippet)]


def test_the_checker_flags_aliases_and_nested_code() -> None:
    source = (
        "import os as _os\n"
        "def f():\n"
        "    import tempfile\n"
        "    return _os.fsync(3)\n"
        "class C:\n"
        "    def g(self):\n"
        "        return open\n"
    )
    assert file_access(source) == [(3, "import tempfile"), (4, "_os.fsync"), (7, "builtin open")]


def test_the_checker_allows_what_is_not_a_file() -> None:
    source = (
        "import os, socket, errno, io_uring_like, pathlibx\n"
        "from os import sched_yield, getpid, environ\n"
        "os.sched_yield(); os.getpid(); os.environ.get('X'); os.strerror(2)\n"
        "storage.open('log', create=True)\n"
        "self.network.open(('127.0.0.1', 0))\n"
        "socket.socket().close()\n"
        "def open_publication(open_files=0): return open_files\n"
        "from cluster.storage import Storage\n"
    )
    assert file_access(source) == []


@pytest.mark.parametrize(
    "snippet, ok",
    [
        ("import mmap\nbuffer = mmap.mmap(-1, 4096)", True),
        ("import mmap\nbuffer = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE)", True),
        ("import mmap\nbuffer = mmap.mmap(fd, 4096, flags=mmap.MAP_PRIVATE)", False),
        ("import mmap\nbuffer = mmap.mmap(fd, 4096)", False),  # a file's mapping
        ("import mmap\nbuffer = mmap.mmap(3, 4096)", False),
        ("import mmap\nsize = mmap.PAGESIZE", False),
        ("import mmap\nmap_ = mmap\n", False),
        ("import mmap as m\nbuffer = m.mmap(-1, 4096)", False),  # under another name: not recognised
    ],
)
def test_anonymous_memory_means_mmap_of_no_file_only(snippet: str, ok: bool) -> None:
    kept, found = anonymous_memory_only(snippet)
    assert (found == [] and file_access(kept) == []) is ok
