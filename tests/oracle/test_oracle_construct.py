"""The generated codecs (and the OTF codec) agree byte for byte with an independent ``construct`` oracle.

First the oracle proves itself against the real SBE tool: every reference vector decodes to exactly its
``fields`` and those fields encode to exactly its bytes, and the cross-version car messages read as an
SBE reader reads them -- with the project's wire-identical schemas (``schemas/`` and the car stand-ins)
and, where the shared reference directory is there, with the very files the vectors were made from.
Then, for every message of every schema we have (ours, the tests' own in ``tests/testdata/schemas``
and, from the shared reference directory, the SBE Car example and its extension and the SBE tool's 16
test schemas), random valid values (``support.sbe_values``) must encode
to the oracle's bytes in the generated codec and in ``codegen.otf``, and both must decode the oracle's
bytes back to the values, keys in schema order (``docs/sbe-json.md``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.construct_oracle import OracleError, oracle_decode, oracle_encode
from support.generated_import import import_schema
from support.needs import cases_per_file, need_reference
from support.paths import (
    AERON,
    AERON_SCHEMAS,
    CAR_SCHEMAS,
    OWN_TEST_SCHEMAS,
    SBE,
    SBE_CAR_SCHEMAS,
    SBE_TEST_SCHEMAS,
    SCHEMAS,
    VECTOR_FILES,
    VECTORS,
)
from support.sbe_values import values_for

from codegen import load_schema
from codegen.ir.model import ByteOrder, Schema
from codegen.otf import OtfCodec

SCHEMA_FILES = [*AERON_SCHEMAS, *OWN_TEST_SCHEMAS, *SBE_CAR_SCHEMAS.values(), *SBE_TEST_SCHEMAS]


@cache
def schema_at(path: Path) -> Schema:
    return load_schema(path)


@cache
def module_at(path: Path) -> ModuleType:
    return import_schema(schema_at(path), path.stem.replace("-", "_"))


@cache
def otf_at(path: Path) -> Any:
    return OtfCodec(schema_at(path))


def assert_same_json(actual: Any, expected: Any) -> None:
    """Equal values, and every object's keys in the same order."""
    assert actual == expected
    assert json.dumps(actual) == json.dumps(expected), "same values, keys in another order"


# ------------------------------------------------------------------------- the oracle vs the SBE tool


# Where each schema a vector file names is found: "project" reads the project's wire-identical copy
# (checked against upstream in tests/schemas), "reference" the very file the vectors were made from.
STAND_INS = {
    "aeron-cluster-codecs.xml": SCHEMAS / "aeron-cluster-codecs.xml",
    "aeron-archive-codecs.xml": SCHEMAS / "aeron-archive-codecs.xml",
    "example-schema.xml": CAR_SCHEMAS[0],
    "example-extension-schema.xml": CAR_SCHEMAS[1],
}
SOURCES = ["project", "reference"]


@cache
def _vector_file(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@cache
def _schema_from(source: str, file_name: str, sha256: str) -> Schema:
    if source == "project":
        return load_schema(STAND_INS[file_name])
    path = need_reference((AERON if file_name.startswith("aeron-") else SBE) / file_name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256, f"{path} is not the file of the vectors"
    return load_schema(path)


def vector_schemas(source: str, vector_file: Path) -> dict[str, Schema]:
    """The schemas of ``vector_file``'s vectors by package, read from ``source``."""
    return {
        s["package"]: _schema_from(source, s["file"], s["sha256"])
        for s in _vector_file(vector_file)["schemas"]
    }


def _vectors() -> list[tuple[str, Path, dict[str, Any]]]:
    out = []
    for path in VECTOR_FILES:
        for vector in _vector_file(path)["vectors"]:
            out.append(
                (f"{path.stem}:{vector['message']}:{vector['variant']}:{vector['package']}", path, vector)
            )
    return out


VECTORS_CASES = _vectors()


def test_reference_vectors_exist() -> None:
    assert sorted(VECTORS.glob("*.json")) == sorted(VECTOR_FILES)
    assert len(VECTORS_CASES) >= 100
    assert {s["file"] for path in VECTOR_FILES for s in _vector_file(path)["schemas"]} == set(STAND_INS)


@pytest.mark.interop
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    ("vector_file", "vector"), [case[1:] for case in VECTORS_CASES], ids=[case[0] for case in VECTORS_CASES]
)
def test_oracle_reproduces_reference_vector(source: str, vector_file: Path, vector: dict[str, Any]) -> None:
    schema = vector_schemas(source, vector_file)[vector["package"]]
    raw = bytes.fromhex(vector["hex"])
    assert len(raw) == vector["length"]
    name, fields = oracle_decode(schema, raw)
    assert name == vector["message"]
    assert_same_json(fields, vector["fields"])
    assert oracle_encode(schema, vector["message"], vector["fields"]) == raw


CAR_VECTORS = VECTORS / "car-vectors.json"


def _cross_version_cases() -> list[dict[str, Any]]:
    return list(_vector_file(CAR_VECTORS)["crossVersionDecode"])


@pytest.mark.interop
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    "case",
    _cross_version_cases(),
    ids=lambda case: f"{case['encodedWithPackage']}->{case['decodedWithPackage']}:{case['variant']}",
)
def test_oracle_reads_other_versions_as_sbe_readers_do(source: str, case: dict[str, Any]) -> None:
    """A reader of either car version sees the writer's values; fields the writer lacks are null."""
    schemas = vector_schemas(source, CAR_VECTORS)
    raw = bytes.fromhex(case["hex"])
    _, written = oracle_decode(schemas[case["encodedWithPackage"]], raw)
    name, read = oracle_decode(schemas[case["decodedWithPackage"]], raw)
    assert name == case["message"]
    reader = schemas[case["decodedWithPackage"]].message_named(name)
    assert reader is not None
    names = [f.name for f in reader.fields if not f.is_constant]
    names += [g.name for g in reader.groups] + [v.name for v in reader.var_data]
    assert_same_json(read, {key: written.get(key) for key in names})


# --------------------------------------------------------------------- codecs vs the oracle, by schema


CASES = cases_per_file(
    SCHEMA_FILES,
    lambda path: [pytest.param(path, m.name, id=f"{path.stem}:{m.name}") for m in schema_at(path).messages],
    lambda path: path.stem,
    width=2,
)


def test_every_schema_is_covered() -> None:
    assert len(SCHEMA_FILES) == 5 + 6 + 2 + 16
    assert {case.values[0] for case in CASES} == set(SCHEMA_FILES)
    assert len(CASES) >= 120


@pytest.mark.parametrize(("path", "message"), CASES)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_codecs_encode_and_decode_like_the_oracle(path: Path, message: str, data: st.DataObject) -> None:
    schema = schema_at(need_reference(path))
    fields = data.draw(values_for(schema, message), label="fields")
    expected = oracle_encode(schema, message, fields)
    name, oracle_fields = oracle_decode(schema, expected)
    assert name == message
    assert oracle_fields == fields  # the oracle's keys are in schema order; Hypothesis shuffles ``fields``

    module = module_at(path)
    assert module.encode_dict(message, fields) == expected
    assert_same_json(module.decode(expected).to_dict(), oracle_fields)

    otf = otf_at(path)
    assert otf.encode(message, fields) == expected
    decoded = otf.decode(expected)
    assert decoded.name == message
    assert_same_json(decoded.fields, oracle_fields)


# ------------------------------------------------------------------------------------------ canaries


def test_canary_the_oracle_notices_a_wrong_byte_order_or_a_short_buffer() -> None:
    """The checks above can fail: a broken oracle (byte order flipped) or broken bytes are caught."""
    _, vector_file, vector = next(case for case in VECTORS_CASES if case[2]["message"] == "Car")
    schema = vector_schemas("project", vector_file)[vector["package"]]
    raw = bytes.fromhex(vector["hex"])
    flipped = dataclasses.replace(schema, byte_order=ByteOrder.BIG_ENDIAN)
    assert oracle_encode(flipped, "Car", vector["fields"]) != raw
    with pytest.raises(OracleError):
        oracle_decode(schema, raw[:-1])
    with pytest.raises(OracleError):
        oracle_decode(schema, raw + b"\x00")
