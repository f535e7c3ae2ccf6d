"""Shared pytest set-up: the ``--rewrite`` flag for golden files, and the shared reference directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.needs import need_reference
from support.paths import REFERENCE

REPO = Path(__file__).resolve().parents[1]

# tests/codegen and tests/generated are test folders without __init__.py; with only tests/ on sys.path
# (plain `pytest`, not `python -m pytest`) `import codegen` would find them as namespace packages. A
# regular package anywhere on the path wins over a namespace portion, so the repository root goes first.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rewrite",
        action="store_true",
        default=False,
        help="rewrite golden files (tests/testdata) from the current output instead of comparing",
    )


@pytest.fixture
def rewrite(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--rewrite"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A case parametrized with a file under ``../shared`` (a path, or a list of paths) needs it before
    its fixtures and its test run: without it the case is skipped, or failed under CI
    (``support.needs.need_reference``), before a hypothesis test draws a single example."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return
    for value in callspec.params.values():
        for path in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(path, Path):
                need_reference(path)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``../shared/reference`` beside the checkout; without it a skip, or a failure under CI."""
    return need_reference(REFERENCE)
