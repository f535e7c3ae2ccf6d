"""Prove our SBE schemas are wire-identical to the upstream Aeron reference.

The upstream schemas are not part of the repository: they are the shared reference material that CI
keeps beside the checkout (README, "Tests and the shared reference"; ``support.paths`` names the
files). Without it these tests are skipped, or failed under CI.
They are used as a specification only: our files in ``<repo>/schemas`` are independently
written, share the exact wire layout, and carry their own prose.  This test uses lxml
directly so it does not depend on the project's code generator.
"""

from __future__ import annotations

import difflib
from collections import Counter
from pathlib import Path

import pytest
from lxml import etree
from support.needs import need_reference
from support.paths import AERON, SCHEMAS

SCHEMA_FILES = [
    "aeron-cluster-codecs.xml",
    "aeron-archive-codecs.xml",
    "aeron-cluster-mark-codecs.xml",
    "aeron-cluster-node-state-codecs.xml",
    "aeron-archive-mark-codecs.xml",
]

# Descriptions at least this long must never be copied verbatim from upstream.
MAX_SHARED_DESCRIPTION_LENGTH = 20
# Upper bound on the fraction of our descriptions that may coincide with upstream's.
MAX_SHARED_DESCRIPTION_FRACTION = 0.10

ProjectionEntry = tuple[str, tuple[tuple[str, str], ...], str]


def _parse(path: Path) -> etree._ElementTree:
    if not path.is_file():
        pytest.fail(f"Schema file missing: {path}")
    parser = etree.XMLParser(remove_blank_text=True)
    tree = etree.parse(str(path), parser)
    tree.xinclude()
    return tree


def _local_name(tag: str) -> str:
    return etree.QName(tag).localname


def projection(path: Path) -> list[ProjectionEntry]:
    """Wire-relevant view of a schema: every element in document order with its
    non-description attributes (sorted) and stripped text; comments, processing
    instructions, whitespace and attribute order are ignored."""
    tree = _parse(path)
    entries: list[ProjectionEntry] = []
    for element in tree.getroot().iter(tag=etree.Element):
        attributes = tuple(
            sorted(
                (_local_name(name), value)
                for name, value in element.attrib.items()
                if _local_name(name) != "description"
            )
        )
        text = (element.text or "").strip()
        entries.append((_local_name(element.tag), attributes, text))
    return entries


def descriptions(path: Path) -> list[str]:
    tree = _parse(path)
    found = []
    for element in tree.getroot().iter(tag=etree.Element):
        for name, value in element.attrib.items():
            if _local_name(name) == "description" and value.strip():
                found.append(value.strip())
    return found


def _comments(path: Path) -> set[str]:
    """Whitespace-normalised text of every comment, including those outside the root."""
    return {" ".join(str(c.text).split()) for c in _parse(path).xpath("//comment()")}


def _render(entries: list[ProjectionEntry]) -> list[str]:
    lines = []
    for tag, attributes, text in entries:
        attrs = " ".join(f'{name}="{value}"' for name, value in attributes)
        lines.append(f"<{tag} {attrs}>{text}".rstrip())
    return lines


@pytest.mark.parametrize("file_name", SCHEMA_FILES)
def test_schema_is_wire_identical_to_reference(file_name: str) -> None:
    ours = projection(SCHEMAS / file_name)
    theirs = projection(need_reference(AERON / file_name))
    if ours != theirs:
        diff = "\n".join(
            difflib.unified_diff(
                _render(theirs),
                _render(ours),
                fromfile=f"reference/{file_name}",
                tofile=f"schemas/{file_name}",
                lineterm="",
            )
        )
        pytest.fail(f"{file_name} differs from the reference on the wire:\n{diff}")


@pytest.mark.parametrize("file_name", SCHEMA_FILES)
def test_schema_descriptions_are_our_own(file_name: str) -> None:
    ours = descriptions(SCHEMAS / file_name)
    theirs = descriptions(need_reference(AERON / file_name))
    assert ours, f"{file_name} has no descriptions at all"

    shared = Counter(ours) & Counter(theirs)
    long_copies = sorted(d for d in shared if len(d) > MAX_SHARED_DESCRIPTION_LENGTH)
    assert not long_copies, f"{file_name} copies upstream descriptions verbatim: {long_copies}"

    shared_count = sum(shared.values())
    assert shared_count <= MAX_SHARED_DESCRIPTION_FRACTION * len(ours), (
        f"{file_name}: {shared_count} of {len(ours)} descriptions match upstream: {sorted(shared.elements())}"
    )


@pytest.mark.parametrize("file_name", SCHEMA_FILES)
def test_schema_comments_are_our_own(file_name: str) -> None:
    """XML comments longer than a few words must not be lifted from upstream either."""
    ours = _comments(SCHEMAS / file_name)
    theirs = _comments(need_reference(AERON / file_name))
    copied = sorted(c for c in ours & theirs if len(c) > MAX_SHARED_DESCRIPTION_LENGTH)
    assert not copied, f"{file_name} copies upstream comments verbatim: {copied}"
