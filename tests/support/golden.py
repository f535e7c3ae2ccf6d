"""Golden files: a test's output compared with a reviewed copy under ``tests/testdata``.

``check_golden`` fails with a unified diff when the output changed; with ``pytest --rewrite`` it writes
the output instead, and the diff is reviewed like code.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

__all__ = ["check_golden", "text_diff"]


def text_diff(expected: str, actual: str, expected_name: str, actual_name: str) -> str:
    """A unified diff of two texts, line by line."""
    lines = difflib.unified_diff(
        expected.splitlines(), actual.splitlines(), expected_name, actual_name, lineterm=""
    )
    return "\n".join(lines)


def check_golden(golden: Path, actual: str, *, rewrite: bool, what: str, actual_name: str = "actual") -> None:
    """``actual`` must be the text of ``golden``; with ``rewrite`` it becomes that text."""
    if rewrite:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual, encoding="utf-8")
        return
    if not golden.is_file():
        pytest.fail(f"{golden} is missing; run pytest with --rewrite to create it, then review it")
    expected = golden.read_text(encoding="utf-8")
    if actual != expected:
        pytest.fail(
            f"{what} changed (rerun with --rewrite if intended):\n"
            + text_diff(expected, actual, str(golden), actual_name)
        )
