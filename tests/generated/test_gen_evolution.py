"""Schema evolution through the generated codecs: SBE's extension promises.

SBE lets a schema grow by appending fields to a message or group block (with ``sinceVersion``) and var
data at the end, and promises that old and new codecs still understand each other:

* an older reader skips the block bytes it does not know, using the ``blockLength`` on the wire (the
  message header's for the root block, each group's dimension header for its entries), and still
  finds every group and var data;
* a newer reader sees fields newer than the acting version as absent (null), and fields beyond the
  acting block length as absent too;
* a block shorter than the version-0 fields cannot be decoded (``UnsupportedVersionError``).

The car schemas (v0 and v1: the project's stand-ins for SBE's ``example-schema.xml`` and
``example-extension-schema.xml``, ``support.paths.CAR_SCHEMAS``) are SBE's own example of this; a v2
variant made here appends fields to every group block (nested too) and a var data, to simulate a
newer sender; hand-made bytes check the same without relying on our encoder.
"""

from __future__ import annotations

import copy
import struct
from functools import cache
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.generated_import import import_schema, import_schema_file
from support.paths import CAR_SCHEMAS, GROUP_VAR_DATA, NESTED_GROUPS
from support.sbe_values import values_for

import generated
from codegen.ir.model import Schema
from codegen.runtime.errors import UnsupportedVersionError
from codegen.runtime.records import unpack_record
from codegen.schema import load_schema
from codegen.schema.parser import parse_schema_bytes

NEWER = ("uuid", "cupHolderCount")  # sinceVersion 1 in the extension schema
V2_NEWER = {"co2", "cetane", "gear", "notes"}  # sinceVersion 2 in the variant made below

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def car(version: int) -> ModuleType:
    if version == 2:
        return import_schema(car_v2_schema(), "car_v2")
    return import_schema_file(CAR_SCHEMAS[version])


@cache
def car_schema(version: int) -> Schema:
    if version == 2:
        return car_v2_schema()
    return load_schema(CAR_SCHEMAS[version])


def _variant(path: Any, version: int, replacements: list[tuple[str, str]]) -> Schema:
    """``path``'s schema at ``version`` with text replacements applied (each must match once)."""
    text = path.read_text(encoding="utf-8")
    head = text.index("version=", text.index("messageSchema"))
    quote = text.index('"', head + len('version="'))
    text = text[:head] + f'version="{version}"' + text[quote + 1 :]
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return parse_schema_bytes(text.encode(), f"{path.stem}-v{version}.xml", path.parent)


@cache
def car_v2_schema() -> Schema:
    """The extension schema plus a v2: a field appended to each group block, and a var data appended."""
    return _variant(
        CAR_SCHEMAS[1],
        2,
        [
            (
                '<field name="mpg" id="12" type="float"/>',
                '<field name="mpg" id="12" type="float"/>'
                '<field name="co2" id="300" type="uint32" presence="optional" sinceVersion="2"/>',
            ),
            (
                '<field name="octaneRating" id="14" type="Ron"/>',
                '<field name="octaneRating" id="14" type="Ron"/>'
                '<field name="cetane" id="302" type="int64" sinceVersion="2"/>',
            ),
            (
                '<field name="seconds" id="17" type="float"/>',
                '<field name="seconds" id="17" type="float"/>'
                '<field name="gear" id="301" type="uint8" presence="optional" sinceVersion="2"/>',
            ),
            (
                '<data name="activationCode" id="20" type="varAsciiEncoding"/>',
                '<data name="activationCode" id="20" type="varAsciiEncoding"/>'
                '<data name="notes" id="303" type="varStringEncoding" sinceVersion="2"/>',
            ),
        ],
    )


def without(fields: dict[str, Any], names: set[str] | tuple[str, ...]) -> dict[str, Any]:
    """``fields`` with the named keys dropped at every depth (groups and composites too)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in names:
            continue
        if isinstance(value, list) and value and isinstance(value[0], dict):
            out[key] = [without(v, names) for v in value]
        elif isinstance(value, dict) and "hex" not in value:
            out[key] = without(value, names)
        else:
            out[key] = value
    return out


def nulled(fields: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """``fields`` with the named keys set to ``None`` at every depth."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in names:
            out[key] = None
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out[key] = [nulled(v, names) for v in value]
        else:
            out[key] = value
    return out


def car_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "serialNumber": 1234,
        "modelYear": 2013,
        "available": "T",
        "code": "A",
        "someNumbers": [0, 1, 2, 3],
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
        "fuelFigures": [
            {"speed": 30, "mpg": 35.5, "usageDescription": "Urban Cycle"},
            {"speed": 55, "mpg": 49.0, "usageDescription": "Combined Cycle"},
        ],
        "performanceFigures": [
            {"octaneRating": 95, "acceleration": [{"mph": 30, "seconds": 4.0}, {"mph": 60, "seconds": 7.5}]},
            {"octaneRating": 99, "acceleration": [{"mph": 100, "seconds": 11.75}]},
        ],
        "manufacturer": "Honda",
        "model": "Civic VTi",
        "activationCode": "abcdef",
    }
    fields.update(overrides)
    return fields


# ------------------------------------------------------------ (a) newer data, older reader: skip extras


def test_car_v1_bytes_decode_with_the_v0_codec() -> None:
    fields = car_fields(uuid=[7, 3], cupHolderCount=5)
    data = car(1).encode_dict("Car", fields)
    decoder = car(0).decode(data)
    assert (decoder.acting_version, decoder.acting_block_length) == (1, 62)
    assert decoder.to_dict() == without(fields, NEWER)
    assert car(0).HEADER_SIZE + decoder.total_length() == len(data)
    # The groups and var data are found past the 17 unknown block bytes, one by one too.
    decoder = car(0).decode(data)
    assert [f.speed for f in decoder.fuel_figures()] == [30, 55]
    assert decoder.manufacturer_str() == "Honda"
    assert decoder.activation_code_str() == "abcdef"


@SETTINGS
@given(data=st.data())
def test_any_car_v1_message_decodes_with_the_v0_codec(data: st.DataObject) -> None:
    fields = data.draw(values_for(car_schema(1), "Car"))
    encoded = car(1).encode_dict("Car", fields)
    assert car(0).decode(encoded).to_dict() == without(fields, NEWER)
    assert car(0).CarDecoder.unpack(encoded)[:10] == car(1).CarDecoder.unpack(encoded)[:10]


@SETTINGS
@given(data=st.data())
def test_any_car_v2_message_with_longer_group_blocks_decodes_with_older_codecs(data: st.DataObject) -> None:
    fields = data.draw(values_for(car_schema(2), "Car"))
    encoded = car(2).encode_dict("Car", fields)
    for version in (0, 1):
        decoder = car(version).decode(encoded)
        expected = without(fields, V2_NEWER if version == 1 else V2_NEWER | set(NEWER))
        assert decoder.to_dict() == expected
        # The trailing var data the old codec does not know is not part of what it reads.
        notes = len(fields["notes"].encode()) + 4
        assert car(version).HEADER_SIZE + car(version).decode(encoded).total_length() == len(encoded) - notes
        # Fast path and slow path agree even when every group block is longer than known.
        slow = unpack_record(car(version).CarDecoder().wrap_header(encoded, 0))
        assert _plain(car(version).CarDecoder.unpack(encoded)) == _plain(slow)


def _plain(value: Any) -> Any:
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def test_larger_group_blocks_are_skipped_in_nested_groups_hand_made_bytes() -> None:
    """A newer sender's Tree (tests/testdata/schemas/nested-groups.xml) with a longer root block and
    longer entries at every depth: each entry is stepped over by the block length in its own
    dimension header."""
    module = import_schema_file(NESTED_GROUPS)
    pad = b"\xee"
    out = bytearray(struct.pack("<HHHH", 16 + 4, 1, 42, 1))  # blockLength 20 (16 known), version 1
    out += bytes([1]) + bytes(15) + pad * 4  # trunk=1, then 4 unknown bytes
    out += bytes([4, 2])  # branches: entries of 4 bytes (1 known), 2 entries
    out += bytes([2]) + pad * 3  # branch=2
    out += bytes([3, 1])  # twigs: entries of 3 bytes (1 known), 1 entry
    out += bytes([3]) + pad * 2  # twig=3
    out += bytes([5, 2])  # leaves: entries of 5 bytes (1 known), 2 entries
    out += bytes([4]) + pad * 4 + bytes([5]) + pad * 4  # leaf=4, leaf=5
    out += bytes([7]) + pad * 3  # branch=7
    out += bytes([3, 0])  # twigs: no entries
    expected = {
        "trunk": 1,
        "branches": [
            {"branch": 2, "twigs": [{"twig": 3, "leaves": [{"leaf": 4}, {"leaf": 5}]}]},
            {"branch": 7, "twigs": []},
        ],
    }
    data = bytes(out)
    decoder = module.decode(data)
    assert decoder.to_dict() == expected
    assert module.HEADER_SIZE + decoder.total_length() == len(data)
    # Entries skipped without being read are skipped by their own block length too.
    decoder = module.decode(data)
    entries = list(decoder.branches())
    assert len(entries) == 2 and decoder.total_length() == len(data) - 8
    assert _plain(module.TreeDecoder.unpack(data)) == _plain(
        unpack_record(module.TreeDecoder().wrap_header(data, 0))
    )
    assert _plain(module.TreeDecoder.unpack(data)) == [1, [[2, [[3, [[4], [5]]]]], [7, []]]]


@cache
def group_data_v1() -> Schema:
    """group-var-data.xml, v1: fields appended to the outer and nested entries of Shipment."""
    return _variant(
        GROUP_VAR_DATA,
        1,
        [
            (
                '<field name="label" id="3" type="Label"/>\n            <group name="parcels"',
                '<field name="label" id="3" type="Label"/>'
                '<field name="extra1" id="8" type="int32" sinceVersion="1"/>'
                '\n            <group name="parcels"',
            ),
            (
                '<field name="weight" id="5" type="int64"/>',
                '<field name="weight" id="5" type="int64"/>'
                '<field name="extra2" id="9" type="uint16" presence="optional" sinceVersion="1"/>',
            ),
        ],
    )


@cache
def group_data_module(version: int) -> ModuleType:
    if version == 0:
        return import_schema_file(GROUP_VAR_DATA)
    return import_schema(group_data_v1(), "group_with_data_v1")


@SETTINGS
@given(data=st.data())
def test_nested_group_entries_with_var_data_and_longer_blocks_decode_with_the_old_codec(
    data: st.DataObject,
) -> None:
    old = group_data_module(0)
    new = group_data_module(1)
    fields = data.draw(values_for(group_data_v1(), "Shipment"))
    encoded = new.encode_dict("Shipment", fields)
    assert old.decode(encoded).to_dict() == without(fields, {"extra1", "extra2"})
    # ... and the old bytes read by the new codec: the new entry fields are null.
    old_fields = without(fields, {"extra1", "extra2"})
    old_bytes = old.encode_dict("Shipment", old_fields)
    decoder = new.decode(old_bytes)
    assert decoder.to_dict() == nulled(fields, {"extra1", "extra2"})
    for entry in decoder.crates():
        assert entry.extra1 is None
        assert entry.read_block()[-1] is None
        for nested in entry.parcels():
            assert nested.extra2 is None
            assert nested.read_block()[-1] is None


# ------------------------------------------------------------ (b) older data, newer reader: fields null


def test_car_v0_bytes_decode_with_the_v1_codec_new_fields_null() -> None:
    fields = car_fields()
    data = car(0).encode_dict("Car", fields)
    decoder = car(1).decode(data)
    assert (decoder.acting_version, decoder.acting_block_length) == (0, 45)
    assert decoder.cup_holder_count is None
    assert decoder.uuid is None
    as_dict = decoder.to_dict()
    assert as_dict["cupHolderCount"] is None and as_dict["uuid"] is None
    assert as_dict == {**fields, "uuid": None, "cupHolderCount": None}
    assert car(1).HEADER_SIZE + decoder.total_length() == len(data)


@SETTINGS
@given(data=st.data())
def test_any_car_v0_message_decodes_with_the_v1_and_v2_codecs(data: st.DataObject) -> None:
    fields = data.draw(values_for(car_schema(0), "Car"))
    encoded = car(0).encode_dict("Car", fields)
    got = car(1).decode(encoded).to_dict()
    assert got == {**fields, "uuid": None, "cupHolderCount": None}
    got2 = car(2).decode(encoded).to_dict()
    expected2 = copy.deepcopy({**fields, "uuid": None, "cupHolderCount": None, "notes": None})
    for entry in expected2["fuelFigures"]:
        entry["co2"] = None
    for entry in expected2["performanceFigures"]:
        entry["cetane"] = None
        for a in entry["acceleration"]:
            a["gear"] = None
    assert got2 == expected2


def test_a_version_1_header_with_a_version_0_block_reads_the_missing_fields_as_null() -> None:
    """The acting block length decides too: a field beyond it is absent whatever the version says."""
    data = bytearray(car(0).encode_dict("Car", car_fields()))
    struct.pack_into("<H", data, 6, 1)  # version 1, block still 45 bytes
    decoder = car(1).decode(bytes(data))
    assert (decoder.acting_version, decoder.acting_block_length) == (1, 45)
    assert decoder.uuid is None and decoder.cup_holder_count is None
    assert decoder.read_block()[-3:] == (None, None, None)
    assert decoder.to_dict() == {**car_fields(), "uuid": None, "cupHolderCount": None}


def test_newer_var_data_is_empty_and_null_for_an_older_version() -> None:
    data = car(1).encode_dict("Car", {**car_fields(), "uuid": [1, 2], "cupHolderCount": 3})
    decoder = car(2).decode(data)
    assert decoder.notes_bytes() == b""
    assert decoder.to_dict()["notes"] is None


# ---------------------------------------------------- (d) a block shorter than version 0: unsupported


def test_message_block_shorter_than_version_0_raises_unsupported_version() -> None:
    data = bytearray(car(0).encode_dict("Car", car_fields()))
    struct.pack_into("<H", data, 0, 44)  # one byte short of the 45 every version has
    for module in (car(0), car(1)):
        with pytest.raises(UnsupportedVersionError) as excinfo:
            module.decode(bytes(data))
        assert excinfo.value.message_name == "Car"
        with pytest.raises(UnsupportedVersionError):
            module.CarDecoder().wrap(bytes(data), module.HEADER_SIZE, 44, 0)
        with pytest.raises(UnsupportedVersionError):
            module.CarDecoder().wrap_header(bytes(data), 0)
        with pytest.raises(UnsupportedVersionError):
            module.CarDecoder.unpack(bytes(data))


def test_group_block_shorter_than_version_0_raises_unsupported_version() -> None:
    module = car(0)
    data = bytearray(module.encode_dict("Car", car_fields()))
    group_at = module.HEADER_SIZE + 45
    struct.pack_into("<H", data, group_at, 5)  # fuelFigures entries are 6 bytes at version 0
    with pytest.raises(UnsupportedVersionError) as excinfo:
        module.decode(bytes(data)).to_dict()
    assert excinfo.value.field == "fuelFigures" and excinfo.value.offset == group_at
    with pytest.raises(UnsupportedVersionError):
        module.decode(bytes(data)).manufacturer()  # skipping the group checks it too
    with pytest.raises(UnsupportedVersionError):
        module.CarDecoder.unpack(bytes(data))


def test_aeron_message_block_shorter_than_version_0_raises_unsupported_version() -> None:
    module = generated.aeron_cluster_codecs
    data = bytearray(
        module.encode_dict(
            "SessionMessageHeader", {"leadershipTermId": 1, "clusterSessionId": 2, "timestamp": 3}
        )
    )
    struct.pack_into("<H", data, 0, 23)
    with pytest.raises(UnsupportedVersionError):
        module.decode(bytes(data))
    with pytest.raises(UnsupportedVersionError):
        generated.decode(bytes(data))


# ---------------------------------------------------- (e) read_block of an older version: None if absent


def test_read_block_of_an_older_car_gives_none_for_absent_fields() -> None:
    data = car(0).encode_dict("Car", car_fields())
    old = car(1).decode(data).read_block()
    current = car(1).decode(car(1).encode_dict("Car", {**car_fields(), "uuid": [5, 6], "cupHolderCount": 2}))
    block = current.read_block()
    assert len(old) == len(block)
    assert old[-3:] == (None, None, None)
    assert block[-3:] == (5, 6, 2)
    assert old[:-3] == block[:-3]
    assert old[:-3] == car(0).decode(data).read_block()


def test_read_block_of_an_older_aeron_message_gives_none_for_absent_fields() -> None:
    """BackupResponse gained ``memberId`` (the block's last 4 bytes) in version 10."""
    module = generated.aeron_cluster_codecs
    fields = {
        "correlationId": 1,
        "logRecordingId": 2,
        "logLeadershipTermId": 3,
        "logTermBaseLogPosition": 4,
        "lastLeadershipTermId": 5,
        "lastTermBaseLogPosition": 6,
        "commitPositionCounterId": 7,
        "leaderMemberId": 8,
        "memberId": 9,
        "snapshots": [
            {
                "recordingId": 10,
                "leadershipTermId": 11,
                "termBaseLogPosition": 12,
                "logPosition": 13,
                "timestamp": 14,
                "serviceId": 15,
            }
        ],
        "clusterMembers": "0,a:1,b:2,c:3,d:4,e",
    }
    current = module.encode_dict("BackupResponse", fields)
    old = bytearray(current[: 8 + 56] + current[8 + 60 :])  # a version-9 sender's block has no memberId
    struct.pack_into("<HHHH", old, 0, 56, 78, 111, 9)
    decoder = module.decode(bytes(old))
    assert decoder.member_id is None
    assert decoder.read_block() == (*module.decode(current).read_block()[:-1], None)
    assert decoder.to_dict() == {**fields, "memberId": None}
    assert module.HEADER_SIZE + decoder.total_length() == len(old)
    # A version-9 header with the full block: memberId is newer than the acting version, so absent.
    header9 = bytearray(current)
    struct.pack_into("<H", header9, 6, 9)
    assert module.decode(bytes(header9)).member_id is None
    assert module.decode(bytes(header9)).read_block()[-1] is None
