"""Tests that need something from outside the repository: a tool (tshark, the Aeron C driver) or the
shared reference directory (``../shared/reference`` beside the checkout). Skipped where it is missing
on a developer's machine or in a plain clone, failed in CI, where ``.ci/run`` provides everything --
there a skip would hide a broken install step or lost reference files."""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest

from support.paths import REFERENCE, REPO, SHARED

__all__ = ["cases_per_file", "missing", "need_module", "need_program", "need_reference"]


def missing(reason: str, provided_by: str = ".ci/run installs it") -> NoReturn:
    """Skip with ``reason``, or fail when ``CI`` is set; ``provided_by`` says why CI has it."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI runs every test ({provided_by})", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def need_program(name: str) -> str:
    """The path of program ``name``, or a skip (a failure in CI)."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed")
    return path


def need_module(name: str, what: str) -> ModuleType:
    """Module ``name`` imported, or a skip (a failure in CI); ``what`` says what it is."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"{name} ({what}) is not installed")


def need_reference(path: Path) -> Path:
    """``path``, a file or folder under ``../shared``, or a skip (a failure in CI) when it is not there.

    Any other path (the project's own files) is returned as it is, so a test parametrized over both
    kinds can call this on every case.
    """
    if path.exists() or not path.is_relative_to(SHARED):
        return path
    provided_by = ".ci/run runs with ../shared beside the checkout"
    if not REFERENCE.is_dir():
        missing("../shared/reference is not beside the checkout", provided_by)
    missing(f"../{path.relative_to(REPO.parent).as_posix()} is missing", provided_by)


def cases_per_file(
    paths: Iterable[Path],
    cases_of: Callable[[Path], Iterable[Any]],
    label: Callable[[Path], str],
    width: int,
) -> list[Any]:
    """The cases ``cases_of(path)`` lists for every file of ``paths`` that is there (``pytest.param``s
    whose first value is the path). A missing file still gives one case, ``(path, None, ...)`` with
    ``width`` values and the id ``<label>-missing``, so the set never shrinks unseen: that case is
    skipped (failed in CI) before its test runs, by ``need_reference`` on its path parameter (a hook in
    ``tests/conftest.py``)."""
    out: list[Any] = []
    for path in paths:
        if path.exists():
            out.extend(cases_of(path))
        else:
            out.append(pytest.param(path, *[None] * (width - 1), id=f"{label(path)}-missing"))
    return out
