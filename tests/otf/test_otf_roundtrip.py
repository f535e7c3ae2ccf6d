"""Every message of every schema we know round-trips through the OTF codec: for valid values drawn
from the IR (``support.sbe_values``), ``decode(encode(values)) == values`` and re-encoding the decoded
values gives the same bytes.  Also pins one big-endian encoding computed by hand."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.paths import AERON, AERON_SCHEMAS, FRAMES_SCHEMA, SBE, SBE_TESTS, SCHEMAS
from support.sbe_values import values_for

from codegen import load_schema
from codegen.ir import ByteOrder
from codegen.otf import OtfCodec

SCHEMA_FILES = [
    *sorted(SBE_TESTS.glob("*.xml")),
    *AERON_SCHEMAS,
    AERON / "aeron-cluster-mark-codecs-v0.xml",
    SBE / "example-schema.xml",
    SBE / "example-extension-schema.xml",
]


@cache
def codec_for(path: Path) -> OtfCodec:
    return OtfCodec(load_schema(path))


def _cases() -> list[Any]:
    cases = []
    for path in SCHEMA_FILES:
        for message in load_schema(path).messages:
            cases.append(pytest.param(path, message.name, id=f"{path.stem}-{message.name}"))
    return cases


def test_the_schema_set_is_complete() -> None:
    assert len(list(SBE_TESTS.glob("*.xml"))) == 16
    assert set(SCHEMAS.glob("*.xml")) == {*AERON_SCHEMAS, FRAMES_SCHEMA}


@pytest.mark.parametrize(("schema_path", "message_name"), _cases())
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_message_round_trips(schema_path: Path, message_name: str, data: st.DataObject) -> None:
    codec = codec_for(schema_path)
    fields = data.draw(values_for(codec.schema, message_name), label="fields")
    encoded = codec.encode(message_name, fields)
    decoded = codec.decode(encoded)
    assert decoded.name == message_name
    assert decoded.version == codec.schema.version
    assert decoded.length == len(encoded)
    assert decoded.fields == fields
    assert codec.encode(message_name, decoded.fields) == encoded


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_concatenated_messages_round_trip(data: st.DataObject) -> None:
    codec = codec_for(SCHEMAS / "aeron-cluster-codecs.xml")
    names = data.draw(st.lists(st.sampled_from([m.name for m in codec.schema.messages]), max_size=5))
    messages = [(name, data.draw(values_for(codec.schema, name))) for name in names]
    blob = b"".join(codec.encode(name, fields) for name, fields in messages)
    assert [(m.name, m.fields) for m in codec.decode_all(blob)] == messages


# ----------------------------------------------------------------------------------------- big-endian

BIG_ENDIAN_CAR = {
    "serialNumber": 0x0102030405060708,
    "modelYear": 2013,
    "available": "T",
    "code": "A",
    "someNumbers": [1, 2, 3, 4, 5],
    "vehicleCode": "abcdef",
    "extras": ["sunRoof", "cruiseControl"],
    "engine": {
        "capacity": 2000,
        "numCylinders": 4,
        "manufacturerCode": "123",
        "efficiency": 35,
        "boosterEnabled": "T",
        "booster": {"BoostType": "NITROUS", "horsePower": 200},
    },
    "fuelFigures": [{"speed": 30, "mpg": 35.5, "usageDescription": "Urban"}],
    "performanceFigures": [{"octaneRating": 95, "acceleration": [{"mph": 30, "seconds": 4.0}]}],
    "manufacturer": "Honda",
    "model": "Civic",
    "activationCode": "",
}

# Computed by hand from example-bigendian-test-schema.xml: every integer and float most significant
# byte first; var data lengths are uint32, group dimensions two uint16.
BIG_ENDIAN_CAR_HEX = [
    ("header: blockLength 49, templateId 1, schemaId 1, version 0", "0031 0001 0001 0000"),
    ("serialNumber uint64", "0102030405060708"),
    ("modelYear uint16 2013", "07dd"),
    ("available BooleanType T", "01"),
    ("code Model A", "41"),
    ("someNumbers uint32[5]", "00000001 00000002 00000003 00000004 00000005"),
    ("vehicleCode char[6]", "616263646566"),
    ("extras: sunRoof (bit 0) | cruiseControl (bit 2)", "05"),
    ("engine.capacity uint16 2000", "07d0"),
    ("engine.numCylinders uint8", "04"),
    ("engine.manufacturerCode char[3]", "313233"),
    ("engine.efficiency int8 35", "23"),
    ("engine.boosterEnabled T", "01"),
    ("engine.booster: BoostType N, horsePower 200", "4e c8"),
    ("fuelFigures dimension: blockLength 6, numInGroup 1", "0006 0001"),
    ("fuelFigures[0]: speed 30, mpg 35.5f", "001e 420e0000"),
    ("fuelFigures[0].usageDescription", "00000005 557262616e"),
    ("performanceFigures dimension: blockLength 1, numInGroup 1", "0001 0001"),
    ("performanceFigures[0].octaneRating 95", "5f"),
    ("acceleration dimension: blockLength 6, numInGroup 1", "0006 0001"),
    ("acceleration[0]: mph 30, seconds 4.0f", "001e 40800000"),
    ("manufacturer", "00000005 486f6e6461"),
    ("model", "00000005 4369766963"),
    ("activationCode", "00000000"),
]


def test_big_endian_car_encodes_to_the_hand_computed_bytes() -> None:
    codec = codec_for(SBE_TESTS / "example-bigendian-test-schema.xml")
    assert codec.schema.byte_order is ByteOrder.BIG_ENDIAN
    expected = bytes.fromhex("".join(part for _, part in BIG_ENDIAN_CAR_HEX))
    assert codec.encode("Car", BIG_ENDIAN_CAR) == expected
    decoded = codec.decode(expected)
    assert (decoded.block_length, decoded.length) == (49, len(expected))
    assert decoded.fields == BIG_ENDIAN_CAR


def test_big_endian_header_and_fields_are_most_significant_byte_first() -> None:
    big = codec_for(SBE_TESTS / "example-bigendian-test-schema.xml").encode("Car", BIG_ENDIAN_CAR)
    assert big[:2] == b"\x00\x31"  # blockLength 49
    assert big[8:16] == bytes(range(1, 9))  # serialNumber 0x0102030405060708
