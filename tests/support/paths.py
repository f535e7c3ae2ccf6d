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

# Our schemas of SBE messages: the five Aeron schemas, wire-identical to upstream's.
AERON_SCHEMAS = [
    SCHEMAS / name
    for name in (
        "aeron-archive-codecs.xml",
        "aeron-archive-mark-codecs.xml",
        "aeron-cluster-codecs.xml",
        "aeron-cluster-mark-codecs.xml",
        "aeron-cluster-node-state-codecs.xml",
    )
]
# The transport's frame layouts: composites only, no SBE messages.
FRAMES_SCHEMA = SCHEMAS / "aeron-transport-frames.xml"
