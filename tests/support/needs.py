"""Tests that need a tool outside Python (tshark, the Aeron C driver): skipped where it is missing on a
developer's machine, failed in CI, where ``.ci/run`` installs everything -- there a skip would hide a
broken install step."""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest

__all__ = ["missing", "need_module", "need_program"]


def missing(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI runs every test (.ci/run installs it)", pytrace=False)
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
