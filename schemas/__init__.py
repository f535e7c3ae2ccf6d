"""The SBE schemas this project is built on, shipped as package data.

The XML files beside this module describe Aeron's archive and cluster messages, the cluster's mark and
node-state files, and the UDP transport's frame headers. They are the source of ``generated/`` and the
built-in schemas of ``aeron-cluster decode``. Reach them through this module, never through a path
relative to a source checkout: installed from a wheel, they live wherever the package was installed.

The module has no dependencies, so any layer may use it.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = ["builtin_schema", "builtin_schemas", "schema_directory"]


def schema_directory() -> Path:
    """The directory holding the built-in schema files.

    A package installed from a wheel or a source checkout is a plain directory on disk; a package
    imported from a zip archive is not supported, because the schema parser resolves XInclude by path.
    """
    folder: Traversable = resources.files(__name__)
    if not isinstance(folder, Path) or not folder.is_dir():
        raise FileNotFoundError(f"the built-in schemas are not in a directory on disk: {folder}")
    return folder


def builtin_schemas() -> list[Path]:
    """Every built-in schema file, sorted by name."""
    return sorted(schema_directory().glob("*.xml"))


def builtin_schema(name: str) -> Path:
    """The built-in schema file ``name`` (for example ``"aeron-cluster-codecs.xml"``)."""
    path = schema_directory() / name
    if not path.is_file():
        known = ", ".join(p.name for p in builtin_schemas())
        raise FileNotFoundError(f"no built-in schema named {name!r}; the built-in schemas are: {known}")
    return path
