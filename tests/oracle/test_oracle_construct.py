"""The generated codecs (and the OTF codec) agree byte for byte with an independent ``construct`` oracle.

First the oracle proves itself against the real SBE tool: every reference vector decodes to exactly its
``fields`` and those fields encode to exactly its bytes, and the cross-version car messages read as an
SBE reader reads them.  Then, for every message of every schema we have (ours, the SBE Car example and
its extension, the SBE tool's 16 test schemas), random valid values (``support.sbe_values``) must encode
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
from support.paths import AERON, AERON_SCHEMAS, SBE, SBE_TESTS, SCHEMAS, VECTORS
from support.sbe_values import values_for

from codegen import load_schema
from codegen.ir.model import ByteOrder, Schema
from codegen.otf import OtfCodec

SCHEMA_FILES = [
    *AERON_SCHEMAS,
    SBE / "example-schema.xml",
    SBE / "example-extension-schema.xml",
    *sorted(SBE_TESTS.glob("*.xml")),
]


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


def _vector_files() -> list[Path]:
    return sorted(VECTORS.glob("*.json"))


@cache
def _schema_with_sha(file_name: str, sha256: str) -> Schema:
    for folder in (AERON, SBE, SCHEMAS):
        path = folder / file_name
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
            return load_schema(path)
    raise AssertionError(f"no copy of {file_name} with sha256 {sha256}")


def _vectors() -> list[tuple[str, dict[str, Any], dict[str, Schema]]]:
    out = []
    for path in _vector_files():
        data = json.loads(path.read_text())
        schemas = {s["package"]: _schema_with_sha(s["file"], s["sha256"]) for s in data["schemas"]}
        for vector in data["vectors"]:
            out.append(
                (f"{path.stem}:{vector['message']}:{vector['variant']}:{vector['package']}", vector, schemas)
            )
    return out


VECTORS_CASES = _vectors()


def test_reference_vectors_exist() -> None:
    assert len(_vector_files()) >= 3
    assert len(VECTORS_CASES) >= 100


@pytest.mark.interop
@pytest.mark.parametrize(
    ("vector", "schemas"), [case[1:] for case in VECTORS_CASES], ids=[case[0] for case in VECTORS_CASES]
)
def test_oracle_reproduces_reference_vector(vector: dict[str, Any], schemas: dict[str, Schema]) -> None:
    schema = schemas[vector["package"]]
    raw = bytes.fromhex(vector["hex"])
    assert len(raw) == vector["length"]
    name, fields = oracle_decode(schema, raw)
    assert name == vector["message"]
    assert_same_json(fields, vector["fields"])
    assert oracle_encode(schema, vector["message"], vector["fields"]) == raw


def _cross_version_cases() -> list[dict[str, Any]]:
    data = json.loads((VECTORS / "car-vectors.json").read_text())
    return list(data["crossVersionDecode"])


@pytest.mark.interop
@pytest.mark.parametrize(
    "case",
    _cross_version_cases(),
    ids=lambda case: f"{case['encodedWithPackage']}->{case['decodedWithPackage']}:{case['variant']}",
)
def test_oracle_reads_other_versions_as_sbe_readers_do(case: dict[str, Any]) -> None:
    """A reader of either car version sees the writer's values; fields the writer lacks are null."""
    data = json.loads((VECTORS / "car-vectors.json").read_text())
    schemas = {s["package"]: _schema_with_sha(s["file"], s["sha256"]) for s in data["schemas"]}
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


CASES = [(path, message.name) for path in SCHEMA_FILES for message in schema_at(path).messages]


def test_every_schema_is_covered() -> None:
    assert len(SCHEMA_FILES) == 5 + 2 + 16
    assert len(CASES) >= 120


@pytest.mark.parametrize(("path", "message"), CASES, ids=[f"{p.stem}:{m}" for p, m in CASES])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_codecs_encode_and_decode_like_the_oracle(path: Path, message: str, data: st.DataObject) -> None:
    schema = schema_at(path)
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
    _, vector, schemas = next(case for case in VECTORS_CASES if case[1]["message"] == "Car")
    schema = schemas[vector["package"]]
    raw = bytes.fromhex(vector["hex"])
    flipped = dataclasses.replace(schema, byte_order=ByteOrder.BIG_ENDIAN)
    assert oracle_encode(flipped, "Car", vector["fields"]) != raw
    with pytest.raises(OracleError):
        oracle_decode(schema, raw[:-1])
    with pytest.raises(OracleError):
        oracle_decode(schema, raw + b"\x00")
