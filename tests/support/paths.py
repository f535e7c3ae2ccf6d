"""Where the reference material and the project's schemas are."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
REFERENCE = REPO.parent / "shared" / "reference"
AERON = REFERENCE / "aeron"
SBE = REFERENCE / "sbe"
SBE_TESTS = SBE / "tests"
VECTORS = REFERENCE / "vectors"
TESTDATA = REPO / "tests" / "testdata"
