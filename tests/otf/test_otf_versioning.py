"""SBE versioning and error rules of the OTF codec, one property per test.

* Acting version: a field, group or var data newer than the header's version is ``None``.
* Acting block length: extra block bytes are skipped; a field beyond a shorter block is absent.
* Group entries are skipped by the dimension's block length, not the schema's.
* Errors name the message, the field path and the byte offset.
"""

from __future__ import annotations

import json
import struct
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from support.needs import need_reference
from support.paths import CAR_SCHEMAS, SBE_TESTS, SCHEMAS, VECTORS
from support.scratch_schema import scratch_codecs

from codegen import load_schema
from codegen.otf import OtfCodec
from codegen.runtime.errors import (
    BufferTooShortError,
    CodecError,
    EncodeValueError,
    SchemaIdMismatchError,
    UnknownTemplateError,
)
from codegen.schema import parse_schema_bytes

# The car schemas at version 0 and 1: the project's stand-ins for SBE's example-schema.xml and
# example-extension-schema.xml.
BASELINE = CAR_SCHEMAS[0]
EXTENSION = CAR_SCHEMAS[1]


@cache
def codec_for(path: Path) -> OtfCodec:
    return OtfCodec(load_schema(path))


def _car(variant: str, version: int) -> dict[str, Any]:
    with open(VECTORS / "car-vectors.json") as f:
        for v in json.load(f)["vectors"]:
            if v["variant"] == variant and v["schemaVersion"] == version:
                found: dict[str, Any] = v
                return found
    raise LookupError(variant)


CAR_V0 = _car("representative", 0)
CAR_V1 = _car("representative", 1)

# ---------------------------------------------------------------------------------------- acting version


def test_fields_newer_than_the_acting_version_are_null_even_when_their_bytes_are_present() -> None:
    data = bytearray.fromhex(CAR_V1["hex"])
    struct.pack_into(
        "<H", data, 6, 0
    )  # claim version 0; the block (62 bytes) still holds uuid and cupHolderCount
    message = codec_for(EXTENSION).decode(bytes(data))
    assert (message.version, message.block_length) == (0, 62)
    assert message.fields["uuid"] is None and message.fields["cupHolderCount"] is None
    assert {k: v for k, v in message.fields.items() if k not in ("uuid", "cupHolderCount")} == CAR_V0[
        "fields"
    ]


def test_encoding_an_older_version_still_writes_newer_fields_when_the_block_has_room() -> None:
    codec = codec_for(EXTENSION)
    data = codec.encode("Car", CAR_V1["fields"], version=0)
    assert data[8:] == bytes.fromhex(CAR_V1["hex"])[8:]
    assert struct.unpack_from("<HHHH", data) == (62, 1, 1, 0)
    # ...and a baseline reader skips them as extra block bytes.
    assert codec_for(BASELINE).decode(data).fields == CAR_V0["fields"]


def test_a_missing_required_field_newer_than_the_version_is_written_as_its_null_value() -> None:
    codec = versioned_codec()
    data = codec.encode("Versioned", {"a": 1, "c": {"p": 4}}, version=0)
    assert codec.decode(data).fields["b"] is None  # required, but sinceVersion 1: null at acting version 0
    with pytest.raises(EncodeValueError) as excinfo:
        codec.encode("Versioned", {"a": 1, "c": {"p": 4}}, version=1)
    assert excinfo.value.field == "b"


def test_a_missing_required_field_newer_than_the_version_is_written_as_its_null_value_sbe() -> None:
    """The same with the SBE tool's json-printer-test-schema.xml (from the shared reference directory)."""
    codec = codec_for(need_reference(SBE_TESTS / "json-printer-test-schema.xml"))
    fields = {k: v for k, v in _json_printer_car().items() if k != "uuid"}
    data = codec.encode("Car", fields, version=1)
    assert codec.decode(data).fields["uuid"] is None  # sinceVersion 2: null at acting version 1


def _json_printer_car() -> dict[str, Any]:
    return {
        "serialNumber": 1,
        "modelYear": 2,
        "available": "T",
        "code": "A",
        "someNumbers": [1, 2, 3, 4, 5],
        "vehicleCode": "abc",
        "extras": [],
        "engine": {"capacity": 1, "numCylinders": 2, "manufacturerCode": "x"},
        "uuid": [1, 2],
        "cupHolderCount": 3,
        "fuelFigures": [],
        "performanceFigures": [],
        "manufacturer": "m",
        "model": "n",
        "activationCode": "o",
    }


VERSIONED_SCHEMA = b"""<?xml version="1.0" encoding="UTF-8"?>
<sbe:messageSchema xmlns:sbe="http://fixprotocol.io/2016/sbe" package="versioned" id="77" version="2"
                   byteOrder="littleEndian">
    <types>
        <composite name="messageHeader">
            <type name="blockLength" primitiveType="uint16"/>
            <type name="templateId" primitiveType="uint16"/>
            <type name="schemaId" primitiveType="uint16"/>
            <type name="version" primitiveType="uint16"/>
        </composite>
        <composite name="groupSizeEncoding">
            <type name="blockLength" primitiveType="uint16"/>
            <type name="numInGroup" primitiveType="uint16"/>
        </composite>
        <composite name="varAsciiEncoding">
            <type name="length" primitiveType="uint32" maxValue="1073741824"/>
            <type name="varData" primitiveType="uint8" length="0" characterEncoding="US-ASCII"/>
        </composite>
        <composite name="Pair">
            <type name="p" primitiveType="int16"/>
            <type name="q" primitiveType="int16" sinceVersion="1"/>
        </composite>
    </types>
    <sbe:message name="Versioned" id="1">
        <field name="a" id="1" type="int32"/>
        <field name="b" id="2" type="int64" sinceVersion="1"/>
        <field name="c" id="7" type="Pair"/>
        <group name="g" id="3" sinceVersion="1">
            <field name="x" id="4" type="uint8"/>
            <data name="note" id="5" type="varAsciiEncoding"/>
        </group>
        <data name="d" id="6" type="varAsciiEncoding" sinceVersion="2"/>
    </sbe:message>
</sbe:messageSchema>
"""

VERSIONED_FULL = {"a": 1, "b": 2, "c": {"p": 4, "q": 5}, "g": [{"x": 3, "note": "n"}], "d": "dd"}


@cache
def versioned_codec() -> OtfCodec:
    return OtfCodec(parse_schema_bytes(VERSIONED_SCHEMA, source="versioned.xml"))


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (0, {"a": 1, "b": None, "c": {"p": 4, "q": None}, "g": None, "d": None}),
        (1, {"a": 1, "b": 2, "c": {"p": 4, "q": 5}, "g": [{"x": 3, "note": "n"}], "d": None}),
        (2, VERSIONED_FULL),
    ],
)
def test_groups_and_var_data_newer_than_the_acting_version_are_null_and_take_no_bytes(
    version: int, expected: dict[str, Any]
) -> None:
    codec = versioned_codec()
    fields = {k: v for k, v in VERSIONED_FULL.items() if expected[k] is not None or k == "b"}
    data = codec.encode("Versioned", fields, version=version)
    message = codec.decode(data)
    assert message.fields == expected
    assert message.length == len(data)
    if version == 0:
        assert len(data) == 8 + 16  # header and block only: no group dimension, no var-data prefix
    # A block cut short (here: before c) reads the same fields through the field-by-field path.
    short = codec.encode("Versioned", {**fields, "c": None}, version=version, block_length=12)
    assert codec.decode(short).fields == {**expected, "c": None}


def test_groups_and_var_data_newer_than_the_version_must_be_empty_when_encoding() -> None:
    codec = versioned_codec()
    with pytest.raises(EncodeValueError, match="sinceVersion 1") as excinfo:
        codec.encode("Versioned", VERSIONED_FULL, version=0)
    assert excinfo.value.field == "g"
    with pytest.raises(EncodeValueError, match="sinceVersion 2") as excinfo:
        codec.encode("Versioned", VERSIONED_FULL, version=1)
    assert excinfo.value.field == "d"
    empty = codec.encode("Versioned", {"a": 1, "c": {"p": 0}, "g": [], "d": ""}, version=0)
    assert codec.decode(empty).fields["g"] is None


def test_an_archive_request_from_an_older_version_has_no_newer_var_data() -> None:
    codec = codec_for(SCHEMAS / "aeron-archive-codecs.xml")
    message = codec.schema.message_named("ReplicateRequest2")
    assert message is not None
    with open(VECTORS / "archive-vectors.json") as f:
        vector = next(v for v in json.load(f)["vectors"] if v["message"] == "ReplicateRequest2")
    fields = {**vector["fields"], "encodedCredentials": None, "srcResponseChannel": None}
    data = codec.encode("ReplicateRequest2", fields, version=7)
    full = bytes.fromhex(vector["hex"])
    assert len(data) < len(full)  # two fewer length prefixes, no credentials, no channel
    decoded = codec.decode(data)
    assert decoded.version == 7
    newer_fields = {f.name for f in message.fields if f.since_version > 7}
    assert newer_fields  # replicationSessionId: present in the block, but null for a version-7 reader
    assert decoded.fields == {k: None if k in newer_fields else v for k, v in fields.items()}


# ----------------------------------------------------------------------------------- acting block length


def test_extra_block_bytes_beyond_the_schema_block_are_skipped() -> None:
    codec = codec_for(BASELINE)
    data = codec.encode("Car", CAR_V0["fields"], version=0, block_length=45 + 7)
    message = codec.decode(data)
    assert (message.block_length, message.length) == (52, len(CAR_V0["hex"]) // 2 + 7)
    assert message.fields == CAR_V0["fields"]


def test_fields_beyond_a_shorter_acting_block_are_absent() -> None:
    codec = codec_for(EXTENSION)
    fields = {**CAR_V1["fields"], "uuid": None, "cupHolderCount": None}
    data = codec.encode("Car", fields, block_length=45)  # a v1 message whose block stops before uuid
    message = codec.decode(data)
    assert (message.version, message.block_length) == (1, 45)
    assert message.fields == fields


def test_a_shorter_acting_block_cuts_off_even_required_fields() -> None:
    codec = codec_for(SCHEMAS / "aeron-cluster-codecs.xml")
    header = codec.decode(bytes.fromhex(_cluster_vector("SessionMessageHeader")))
    data = codec.encode("SessionMessageHeader", {**header.fields, "timestamp": None}, block_length=16)
    assert codec.decode(data).fields == {**header.fields, "timestamp": None}
    with pytest.raises(EncodeValueError, match="does not fit") as excinfo:
        codec.encode("SessionMessageHeader", header.fields, block_length=16)
    assert excinfo.value.field == "timestamp"


def _cluster_vector(message: str) -> str:
    with open(VECTORS / "cluster-vectors.json") as f:
        for v in json.load(f)["vectors"]:
            if v["message"] == message:
                found: str = v["hex"]
                return found
    raise LookupError(message)


def test_group_entries_are_skipped_by_the_dimension_block_length() -> None:
    """A newer writer may append bytes to every group entry; an older reader must skip them."""
    codec = codec_for(BASELINE)
    fields = CAR_V0["fields"]
    data = bytearray(codec.encode("Car", {**fields, "fuelFigures": fields["fuelFigures"][:1]}))
    # fuelFigures starts right after the 45-byte block: dimension (uint16 blockLength, uint16 count).
    pos = 8 + 45
    assert struct.unpack_from("<HH", data, pos) == (6, 1)
    entry_end = pos + 4 + 6
    widened = (
        bytes(data[:pos]) + struct.pack("<HH", 9, 1) + bytes(data[pos + 4 : entry_end]) + b"\xaa\xbb\xcc"
    )
    widened += bytes(data[entry_end:])
    assert codec.decode(widened).fields == {**fields, "fuelFigures": fields["fuelFigures"][:1]}


# ------------------------------------------------------------------------------------------------ errors


def test_a_truncated_var_data_names_its_group_entry_path() -> None:
    codec = codec_for(BASELINE)
    data = bytes.fromhex(CAR_V0["hex"])
    # Find where fuelFigures[1].usageDescription's text starts, and cut the buffer inside it.
    marker = data.index(b"Combined Cycle")
    with pytest.raises(BufferTooShortError) as excinfo:
        codec.decode(data[: marker + 3])
    exc = excinfo.value
    assert (exc.message_name, exc.field, exc.offset) == ("Car", "fuelFigures[1].usageDescription", marker)
    assert "Car.fuelFigures[1].usageDescription" in str(exc) and f"offset {marker}" in str(exc)


def test_an_absurd_group_count_fails_before_any_entry_is_decoded() -> None:
    codec = codec_for(BASELINE)
    data = bytearray.fromhex(CAR_V0["hex"])
    struct.pack_into("<H", data, 8 + 45 + 2, 65534)  # fuelFigures numInGroup
    with pytest.raises(BufferTooShortError, match="65534 entries") as excinfo:
        codec.decode(bytes(data))
    assert (excinfo.value.field, excinfo.value.offset) == ("fuelFigures", 8 + 45)


def test_a_wrong_schema_id_is_rejected() -> None:
    data = bytes.fromhex(_cluster_vector("SessionMessageHeader"))
    with pytest.raises(SchemaIdMismatchError, match="111"):
        codec_for(SCHEMAS / "aeron-archive-codecs.xml").decode(data)


def test_an_unknown_template_id_is_rejected() -> None:
    data = bytearray.fromhex(_cluster_vector("SessionMessageHeader"))
    struct.pack_into("<H", data, 2, 9999)
    with pytest.raises(UnknownTemplateError, match="9999") as excinfo:
        codec_for(SCHEMAS / "aeron-cluster-codecs.xml").decode(bytes(data))
    assert excinfo.value.offset == 0


def test_text_that_is_not_valid_in_its_encoding_is_a_codec_error() -> None:
    codec = codec_for(BASELINE)
    data = bytearray.fromhex(CAR_V0["hex"])
    data[data.index(b"abcdef")] = 0xFF  # vehicleCode is char[6] ASCII
    with pytest.raises(CodecError, match="ASCII") as excinfo:
        codec.decode(bytes(data))
    assert excinfo.value.field == "vehicleCode"
    car = codec.schema.message_named("Car")
    assert car is not None
    assert excinfo.value.offset == 8 + next(f.offset for f in car.fields if f.name == "vehicleCode")


def test_the_header_may_carry_extra_members() -> None:
    """The node-state schema's 16-byte header adds frameLength and padding; they are skipped."""
    codec = codec_for(SCHEMAS / "aeron-cluster-node-state-codecs.xml")
    assert codec.header_length == 16
    fields = {"leadershipTermId": 5, "memberId": 1, "highMemberId": 2, "clusterMembers": "0,a:1|1,b:2"}
    data = bytearray(codec.encode("ClusterMembers", fields))
    assert data[8:16] == bytes(8)
    struct.pack_into("<i", data, 8, len(data))  # what a writer of the node-state file would put there
    assert codec.decode(bytes(data)).fields == fields


@pytest.mark.parametrize(
    ("fields", "field", "match"),
    [
        ({"leadershipTermId": "7"}, "leadershipTermId", "expected an integer"),
        ({"leadershipTermId": 2**63}, "leadershipTermId", "out of range"),
        ({"leadershipTermId": None}, "leadershipTermId", "required"),
        ({"nope": 1}, "nope", "no field 'nope'"),
    ],
)
def test_bad_values_name_the_field(fields: dict[str, Any], field: str, match: str) -> None:
    codec = codec_for(SCHEMAS / "aeron-cluster-codecs.xml")
    base = {"leadershipTermId": 1, "clusterSessionId": 2, "timestamp": 3}
    with pytest.raises(EncodeValueError, match=match) as excinfo:
        codec.encode("SessionMessageHeader", {**base, **fields})
    assert (excinfo.value.message_name, excinfo.value.field) == ("SessionMessageHeader", field)


@pytest.mark.parametrize(
    ("change", "field", "match"),
    [
        ({"vehicleCode": "abcdefg"}, "vehicleCode", "do not fit"),
        ({"code": "Z"}, "code", "not a value"),
        ({"extras": ["sunRoof", "moonRoof"]}, "extras", "not a choice"),
        ({"someNumbers": [1, 2, 3]}, "someNumbers", "list of 4"),
        ({"someNumbers": [1, 2, -3, 4]}, "someNumbers[2]", "out of range"),
        ({"engine": {"capacity": 1, "bogus": 2}}, "engine", "no member 'bogus'"),
        (
            {"engine": {**CAR_V0["fields"]["engine"], "booster": {"BoostType": "X"}}},
            "engine.booster.BoostType",
            "not a value",
        ),
        (
            {"fuelFigures": [{"speed": 1, "mpg": 1.0}, {"speed": 1, "mpg": 1e39}]},
            "fuelFigures[1].mpg",
            "range",
        ),
        ({"manufacturer": {"hex": "zz"}}, "manufacturer", "hex"),
    ],
)
def test_bad_car_values_name_the_field_path(change: dict[str, Any], field: str, match: str) -> None:
    with pytest.raises(EncodeValueError, match=match) as excinfo:
        codec_for(BASELINE).encode("Car", {**CAR_V0["fields"], **change}, version=0)
    assert excinfo.value.field == field


def test_encoding_an_unknown_message_is_rejected() -> None:
    with pytest.raises(UnknownTemplateError):
        codec_for(BASELINE).encode("Boat", {})


LOGIN = """
<sbe:message name="Login" id="1">
    <data name="user" id="1" type="varStringEncoding"/>
    <data name="secret" id="2" type="varDataEncoding"/>
</sbe:message>
"""


def _credentials(source: str) -> tuple[OtfCodec, str, str, str]:
    """A codec and the names of a message with a text var data, then a binary one."""
    if source == "scratch":
        return scratch_codecs(messages=LOGIN)[2], "Login", "user", "secret"
    codec = codec_for(need_reference(SBE_TESTS / "json-printer-test-schema.xml"))
    return codec, "Credentials", "login", "encryptedPassword"


@pytest.mark.parametrize("source", ["scratch", "sbe-json-printer"])
def test_binary_var_data_is_hex_and_text_var_data_accepts_hex_too(source: str) -> None:
    codec, message, text, binary = _credentials(source)
    data = codec.encode(message, {text: {"hex": "616263"}, binary: {"hex": "00ff"}})
    assert codec.decode(data).fields == {text: "abc", binary: {"hex": "00ff"}}
    with pytest.raises(EncodeValueError, match="hex"):
        codec.encode(message, {binary: "plain text"})
