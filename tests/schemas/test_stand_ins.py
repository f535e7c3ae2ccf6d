"""What lets the tests run from a plain clone stays true to the shared reference material.

A plain clone has none of that material (README, "Tests and the shared reference"); the tests then use
the project's own stand-ins:

* the car vectors are read with ``tools/bench/car-schema.xml`` (SBE's Car example, written out) and its
  version-1 extension in ``tests/testdata/schemas`` -- both must lay out every byte as SBE's
  ``example-schema.xml`` and ``example-extension-schema.xml`` do;
* the vector files are copies in ``tests/testdata/vectors`` -- they must stay byte for byte the
  reference files;
* the reference schemas are named one by one in ``support.paths`` (so a lost file is a skipped or
  failed case, never a silently smaller parametrization) -- the lists must name every schema there.

The checks against the reference material are skipped without it, and fail under CI. The others need
nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.needs import need_reference
from support.paths import (
    AERON,
    AERON_REFERENCE_SCHEMAS,
    CAR_BIG_ENDIAN,
    CAR_SCHEMAS,
    OWN_TEST_SCHEMAS,
    REFERENCE_VECTORS,
    SBE,
    SBE_CAR_SCHEMAS,
    SBE_EXAMPLE_SCHEMAS,
    SBE_TEST_SCHEMAS,
    SBE_TESTS,
    TEST_SCHEMAS,
    VECTOR_FILES,
    VECTORS,
)

from codegen.ir import dump
from codegen.schema import load_schema, parse_schema_bytes


def wire_dump(schema_path: Path) -> str:
    """The IR dump without descriptions: every name, type, offset and size, no prose."""
    return dump(load_schema(schema_path), descriptions=False)


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected exactly one {old!r}"
    return text.replace(old, new)


# ------------------------------------------------------------------------------ the car stand-ins


def test_the_car_extension_is_the_bench_car_plus_two_version_1_fields() -> None:
    """SBE's extension example, made from our version 0 the way SBE makes it from its own."""
    text = CAR_SCHEMAS[0].read_text(encoding="utf-8")
    text = _replace_once(text, 'package="baseline"', 'package="extension"')
    text = _replace_once(text, 'version="0"', 'version="1"')
    text = _replace_once(
        text,
        "    </types>\n    <sbe:message",
        '<type name="uuid_t" primitiveType="int64" length="2" presence="optional" sinceVersion="1"/>'
        '<type name="cupHolderCount_t" primitiveType="uint8" presence="optional" sinceVersion="1"/>'
        "</types><sbe:message",
    )
    text = _replace_once(
        text,
        '<field name="engine" id="9" type="Engine"/>',
        '<field name="engine" id="9" type="Engine"/>'
        '<field name="uuid" id="100" type="uuid_t" sinceVersion="1"/>'
        '<field name="cupHolderCount" id="101" type="cupHolderCount_t" sinceVersion="1"/>',
    )
    made = dump(parse_schema_bytes(text.encode(), source="made.xml"), descriptions=False)
    assert wire_dump(CAR_SCHEMAS[1]) == made
    car = load_schema(CAR_SCHEMAS[1]).message_named("Car")
    assert car is not None and car.block_length == 45 + 16 + 1


def test_the_big_endian_car_is_the_bench_car_in_the_other_byte_order() -> None:
    little = wire_dump(CAR_SCHEMAS[0])
    assert "bigEndian" not in little
    expected = _replace_once(little, "schema baseline ", "schema bigendian ").replace(
        "littleEndian", "bigEndian"
    )
    assert wire_dump(CAR_BIG_ENDIAN) == expected


@pytest.mark.parametrize("version", [0, 1])
def test_the_car_stand_ins_lay_out_every_byte_as_sbe_example_schemas(version: int) -> None:
    theirs = wire_dump(need_reference(SBE_CAR_SCHEMAS[version]))
    assert wire_dump(CAR_SCHEMAS[version]) == theirs


def test_every_schema_of_the_tests_is_listed() -> None:
    """A schema added to tests/testdata/schemas but not to OWN_TEST_SCHEMAS would be tested nowhere."""
    listed = sorted(p for p in OWN_TEST_SCHEMAS if p.parent == TEST_SCHEMAS)
    assert sorted(TEST_SCHEMAS.glob("*.xml")) == listed
    assert all(p.is_file() for p in OWN_TEST_SCHEMAS)


# ------------------------------------------------------------------------------------- the vectors


def test_the_vector_copies_are_the_files_the_tests_read() -> None:
    assert sorted(VECTORS.glob("*.json")) == sorted(VECTOR_FILES)
    assert (VECTORS / "README.md").is_file()


@pytest.mark.parametrize("copy", VECTOR_FILES, ids=lambda p: p.name)
def test_the_vector_copy_is_byte_for_byte_the_reference_file(copy: Path) -> None:
    reference = need_reference(REFERENCE_VECTORS / copy.name)
    assert copy.read_bytes() == reference.read_bytes(), f"{copy} differs from {reference}: copy it again"


def test_every_reference_vector_file_has_a_copy() -> None:
    there = sorted(p.name for p in need_reference(REFERENCE_VECTORS).glob("*.json"))
    assert there == sorted(p.name for p in VECTOR_FILES)


# ------------------------------------------------------------------------ the reference schema lists


@pytest.mark.parametrize(
    ("folder", "listed"),
    [
        pytest.param(SBE, SBE_EXAMPLE_SCHEMAS, id="sbe"),
        pytest.param(SBE_TESTS, SBE_TEST_SCHEMAS, id="sbe-tests"),
        pytest.param(AERON, AERON_REFERENCE_SCHEMAS, id="aeron"),
    ],
)
def test_the_reference_schema_lists_name_every_schema_there(folder: Path, listed: list[Path]) -> None:
    there = sorted(p for p in need_reference(folder).glob("*.xml") if p.name != "common-types.xml")
    assert there == sorted(listed)
