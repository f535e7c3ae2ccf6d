"""Shared pytest set-up: the ``--rewrite`` flag for golden files, and paths to the shared references."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# tests/codegen and tests/generated are test folders without __init__.py; with only tests/ on sys.path
# (plain `pytest`, not `python -m pytest`) `import codegen` would find them as namespace packages. A
# regular package anywhere on the path wins over a namespace portion, so the repository root goes first.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"


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


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``../shared/reference`` beside the checkout; tests that need it fail loudly without it."""
    if not REFERENCE.is_dir():
        pytest.fail(f"the shared reference directory {REFERENCE} is missing")
    return REFERENCE
