"""Every message of every schema we know round-trips through the OTF codec: for valid values drawn
from the IR (``support.sbe_values``), ``decode(encode(values)) == values`` and re-encoding the decoded
values gives the same bytes.  Schemas from the shared reference directory (SBE's and upstream Aeron's)
are skipped, or failed under CI, where it is missing.  Also pins one big-endian encoding computed by
hand."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.needs import cases_per_file, need_reference
from support.paths import (
    AERON,
    AERON_SCHEMAS,
    CAR_BIG_ENDIAN,
    FRAMES_SCHEMA,
    OWN_TEST_SCHEMAS,
    SBE_CAR_SCHEMAS,
    SBE_TEST_SCHEMAS,
    SBE_TESTS,
    SCHEMAS,
)
from support.sbe_values import values_for

from codegen import load_schema
from codegen.ir import ByteOrder
from codegen.otf import OtfCodec

SCHEMA_FILES = [
    *AERON_SCHEMAS,
    *OWN_TEST_SCHEMAS,
    *SBE_TEST_SCHEMAS,
    AERON / "aeron-cluster-mark-codecs-v0.xml",
    *SBE_CAR_SCHEMAS.values(),
]


@cache
def codec_for(path: Path) -> OtfCodec:
    return OtfCodec(load_schema(path))


def _cases() -> list[Any]:
    return cases_per_file(
        SCHEMA_FILES,
        lambda path: [
            pytest.param(path, message.name, id=f"{path.stem}-{message.name}")
            for message in load_schema(path).messages
        ],
        lambda path: path.stem,
        width=2,
    )


def test_the_schema_set_is_complete() -> None:
    assert len(SBE_TEST_SCHEMAS) == 16
    assert set(SCHEMAS.glob("*.xml")) == {*AERON_SCHEMAS, FRAMES_SCHEMA}
    assert {case.values[0] for case in _cases()} == set(SCHEMA_FILES)


@pytest.mark.parametrize(("schema_path", "message_name"), _cases())
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_message_round_trips(schema_path: Path, message_name: str, data: st.DataObject) -> None:
    codec = codec_for(need_reference(schema_path))
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


def big_endian_car(numbers: int) -> dict[str, Any]:
    """A Car for a big-endian car schema whose ``someNumbers`` array has ``numbers`` elements."""
    return {**BIG_ENDIAN_CAR, "someNumbers": list(range(1, numbers + 1))}


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
# byte first; var data lengths are uint32, group dimensions two uint16. The project's big-endian car
# (tests/testdata/schemas/car-bigendian-schema.xml) is the same but for someNumbers, four elements
# instead of five (a 45-byte block): see big_endian_car_hex.
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


def big_endian_car_hex(numbers: int) -> list[tuple[str, str]]:
    """BIG_ENDIAN_CAR_HEX for a big-endian car whose someNumbers has ``numbers`` elements."""
    assert BIG_ENDIAN_CAR_HEX[0][1] == "0031 0001 0001 0000" and BIG_ENDIAN_CAR_HEX[5][0].startswith(
        "someNumbers"
    )
    block_length = 49 - 4 * (5 - numbers)
    return [
        (
            f"header: blockLength {block_length}, templateId 1, schemaId 1, version 0",
            f"{block_length:04x} 0001 0001 0000",
        ),
        *BIG_ENDIAN_CAR_HEX[1:5],
        (f"someNumbers uint32[{numbers}]", " ".join(f"{n:08x}" for n in range(1, numbers + 1))),
        *BIG_ENDIAN_CAR_HEX[6:],
    ]


BIG_ENDIAN_CARS = [
    pytest.param(CAR_BIG_ENDIAN, 4, id="test-car-bigendian"),
    pytest.param(SBE_TESTS / "example-bigendian-test-schema.xml", 5, id="sbe-tests-example-bigendian"),
]


def test_the_big_endian_hex_for_five_numbers_is_the_hand_computed_one() -> None:
    assert big_endian_car_hex(5) == BIG_ENDIAN_CAR_HEX
    assert big_endian_car(5) == BIG_ENDIAN_CAR


@pytest.mark.parametrize(("path", "numbers"), BIG_ENDIAN_CARS)
def test_big_endian_car_encodes_to_the_hand_computed_bytes(path: Path, numbers: int) -> None:
    codec = codec_for(need_reference(path))
    assert codec.schema.byte_order is ByteOrder.BIG_ENDIAN
    expected = bytes.fromhex("".join(part for _, part in big_endian_car_hex(numbers)))
    assert codec.encode("Car", big_endian_car(numbers)) == expected
    decoded = codec.decode(expected)
    assert (decoded.block_length, decoded.length) == (45 + 4 * (numbers - 4), len(expected))
    assert decoded.fields == big_endian_car(numbers)


@pytest.mark.parametrize(("path", "numbers"), BIG_ENDIAN_CARS)
def test_big_endian_header_and_fields_are_most_significant_byte_first(path: Path, numbers: int) -> None:
    big = codec_for(need_reference(path)).encode("Car", big_endian_car(numbers))
    assert big[:2] == bytes([0, 45 + 4 * (numbers - 4)])  # blockLength 45 or 49
    assert big[8:16] == bytes(range(1, 9))  # serialNumber 0x0102030405060708
