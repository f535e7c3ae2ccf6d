"""The flyweight API of the generated codecs: access order, buffers, value types, errors, dispatch.

SBE lays out what follows a block (groups, then var data) one section after another, so a flyweight
must read them in order.  Ours forgives the caller (``codegen/runtime/flyweight.py``): a later section
skips the ones in between, an earlier one rewinds, a half-read group is finished first.  Encoders
demand schema order, write a jumped-over section empty, and refuse a group with fewer entries than
declared.  Bad values raise ``EncodeValueError`` and bad buffers a ``CodecError``, never a raw
``struct.error``, ``TypeError`` or ``ValueError``.
"""

from __future__ import annotations

import array
import contextlib
import itertools
import json
import mmap
import struct
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.generated_import import import_schema_file
from support.paths import AERON_SCHEMAS, CAR_SCHEMAS, GROUP_VAR_DATA, NESTED_GROUPS, VECTORS
from support.sbe_values import values_for

import generated
from codegen.runtime.errors import (
    BufferTooShortError,
    CodecError,
    EncodeValueError,
    SchemaIdMismatchError,
    UnknownTemplateError,
)
from codegen.schema import load_schema
from codegen.targets.python import package_name_for


@cache
def car(version: int = 0) -> ModuleType:
    return import_schema_file(CAR_SCHEMAS[version])


@cache
def group_data() -> ModuleType:
    return import_schema_file(GROUP_VAR_DATA)


@cache
def car_vector() -> dict[str, Any]:
    with open(VECTORS / "car-vectors.json") as f:
        vectors = json.load(f)["vectors"]
    vector: dict[str, Any] = next(
        v for v in vectors if v["variant"] == "representative" and v["schemaVersion"] == 0
    )
    return vector


def car_bytes() -> bytes:
    return bytes.fromhex(car_vector()["hex"])


FIELDS = car_vector()["fields"]
USAGE = [f["usageDescription"] for f in FIELDS["fuelFigures"]]
ACCELERATION = [[a["mph"] for a in p["acceleration"]] for p in FIELDS["performanceFigures"]]


def decode_car(data: Any = None) -> Any:
    return car().decode(car_bytes() if data is None else data)


# ------------------------------------------------------------------------ decoding in any section order


def test_var_data_read_before_the_groups_skips_them() -> None:
    decoder = decode_car()
    assert decoder.activation_code_str() == "abcdef"  # the last section first
    assert decoder.manufacturer_str() == "Honda"  # then an earlier one: rewinds
    assert [(f.speed, f.usage_description_str()) for f in decoder.fuel_figures()] == [
        (30, USAGE[0]),
        (55, USAGE[1]),
        (75, USAGE[2]),
    ]
    assert decoder.model_str() == "Civic VTi"
    assert [p.octane_rating for p in decoder.performance_figures()] == [95, 99]


def test_every_section_order_reads_the_same_values() -> None:
    readers: dict[str, Callable[[Any], Any]] = {
        "fuel": lambda d: [(f.speed, f.mpg, f.usage_description_str()) for f in d.fuel_figures()],
        "performance": lambda d: [
            (p.octane_rating, [(a.mph, a.seconds) for a in p.acceleration()]) for p in d.performance_figures()
        ],
        "manufacturer": lambda d: d.manufacturer_str(),
        "model": lambda d: d.model_str(),
        "activation": lambda d: d.activation_code_str(),
    }
    expected = {name: read(decode_car()) for name, read in readers.items()}
    for order in itertools.permutations(readers):
        decoder = decode_car()
        assert {name: readers[name](decoder) for name in order} == expected, order


def test_a_group_read_partially_then_a_later_section() -> None:
    decoder = decode_car()
    fuel = decoder.fuel_figures()
    first = next(iter(fuel))
    assert first.speed == 30  # its var data not read, two entries left
    assert decoder.manufacturer_str() == "Honda"
    assert decoder.model_str() == "Civic VTi"


def test_a_nested_group_read_partially_then_a_later_section() -> None:
    decoder = decode_car()
    performance = decoder.performance_figures()
    entry = next(performance)
    acceleration = entry.acceleration()
    assert next(acceleration).mph == 30
    assert decoder.model_str() == "Civic VTi"
    assert decoder.activation_code_str() == "abcdef"


def test_a_group_entry_var_data_before_its_block_fields_and_twice() -> None:
    decoder = decode_car()
    seen = []
    for entry in decoder.fuel_figures():
        text = entry.usage_description_str()
        assert entry.usage_description_str() == text  # re-reading rewinds within the entry
        seen.append((text, entry.speed))
    assert seen == [(USAGE[0], 30), (USAGE[1], 55), (USAGE[2], 75)]
    assert decoder.manufacturer_str() == "Honda"


def test_rereading_an_earlier_section() -> None:
    decoder = decode_car()
    assert decoder.model_str() == "Civic VTi"
    assert decoder.model_str() == "Civic VTi"
    assert [f.speed for f in decoder.fuel_figures()] == [30, 55, 75]
    assert [f.speed for f in decoder.fuel_figures()] == [30, 55, 75]
    assert decoder.activation_code_bytes() == b"abcdef"
    assert decoder.manufacturer_bytes() == b"Honda"
    assert decoder.to_dict() == FIELDS  # to_dict after anything still sees everything
    assert decoder.to_dict() == FIELDS


def test_nested_groups_iterate_with_count_and_len() -> None:
    decoder = decode_car()
    fuel = decoder.fuel_figures()
    assert fuel.count == len(fuel) == 3
    performance = decoder.performance_figures()
    assert performance.count == len(performance) == 2
    got = []
    for entry in performance:
        acceleration = entry.acceleration()
        assert acceleration.count == len(acceleration) == 3
        got.append([a.mph for a in acceleration])
    assert got == ACCELERATION
    assert len(performance) == 2  # the count stays after iterating
    assert list(performance) == []  # an iterated group is exhausted


def test_triple_nested_groups_read_in_order_and_out_of_order() -> None:
    module = import_schema_file(NESTED_GROUPS)
    fields = {
        "trunk": 1,
        "branches": [
            {
                "branch": 2,
                "twigs": [{"twig": 3, "leaves": [{"leaf": 4}, {"leaf": 5}]}, {"twig": 6, "leaves": []}],
            },
            {"branch": 7, "twigs": [{"twig": 8, "leaves": [{"leaf": 9}]}]},
        ],
    }
    data = module.encode_dict("Tree", fields)
    decoder = module.decode(data)
    tree = [
        (b.branch, [(t.twig, [x.leaf for x in t.leaves()]) for t in b.twigs()]) for b in decoder.branches()
    ]
    assert tree == [(2, [(3, [4, 5]), (6, [])]), (7, [(8, [9])])]
    decoder = module.decode(data)
    branches = decoder.branches()
    twigs = next(branches).twigs()
    assert next(twigs).leaves().count == 2  # leave everything half-read ...
    assert decoder.total_length() == len(data) - module.HEADER_SIZE  # ... and the rest is skipped
    assert decoder.to_dict() == fields


def test_total_length_after_partial_reads() -> None:
    decoder = decode_car()
    next(decoder.fuel_figures())
    assert car().HEADER_SIZE + decoder.total_length() == len(car_bytes())


# ----------------------------------------------------------------------------------- encoder sections


def _car_encoder(size: int = 512) -> tuple[bytearray, Any]:
    """A Car encoder with the vector's block written and no section yet."""
    buffer = bytearray(size)
    encoder = car().CarEncoder().wrap_and_apply_header(buffer, 0)
    encoder.serial_number = FIELDS["serialNumber"]
    encoder.model_year = FIELDS["modelYear"]
    encoder.available = car().BooleanType[FIELDS["available"]]
    encoder.code = car().Model[FIELDS["code"]]
    encoder.some_numbers = FIELDS["someNumbers"]
    encoder.vehicle_code = FIELDS["vehicleCode"]
    encoder.extras = car().OptionalExtras.sunRoof | car().OptionalExtras.cruiseControl
    car().EngineEncoder().wrap(buffer, car().HEADER_SIZE + 35).from_dict(FIELDS["engine"])
    return buffer, encoder


def test_encoder_sections_out_of_order_raise() -> None:
    _, encoder = _car_encoder()
    encoder.put_manufacturer("Honda")
    with pytest.raises(EncodeValueError) as excinfo:
        encoder.fuel_figures_count(0)
    assert excinfo.value.message_name == "Car" and excinfo.value.field == "fuelFigures"
    _, encoder = _car_encoder()
    encoder.put_model("x")
    with pytest.raises(EncodeValueError):
        encoder.put_manufacturer("y")
    _, encoder = _car_encoder()
    encoder.put_model("x")
    with pytest.raises(EncodeValueError):
        encoder.put_model("x")  # the same section twice is out of order too


def test_encoder_group_entry_sections_out_of_order_raise() -> None:
    module = group_data()
    encoder = module.ShipmentEncoder().wrap_and_apply_header(bytearray(256), 0)
    crates = encoder.crates_count(1)
    crates.next().put_crate_note("late")
    with pytest.raises(EncodeValueError):
        crates.parcels_count(0)


def test_encoder_skipped_sections_are_written_empty() -> None:
    buffer, encoder = _car_encoder()
    encoder.fuel_figures_count(1).next().speed = 10  # usageDescription skipped
    encoder.put_model("Jazz")  # performanceFigures and manufacturer skipped
    length = car().HEADER_SIZE + encoder.encoded_length()  # activationCode never written
    got = car().decode(bytes(buffer[:length])).to_dict()
    assert got["fuelFigures"] == [{"speed": 10, "mpg": 0.0, "usageDescription": ""}]
    assert (got["performanceFigures"], got["manufacturer"], got["model"], got["activationCode"]) == (
        [],
        "",
        "Jazz",
        "",
    )
    expected = {
        **FIELDS,
        "fuelFigures": [{"speed": 10, "mpg": 0.0}],
        "performanceFigures": None,
        "manufacturer": None,
        "model": "Jazz",
        "activationCode": None,
    }
    assert bytes(buffer[:length]) == car().encode_dict("Car", expected)


def test_encoder_with_no_sections_written_writes_them_all_empty() -> None:
    buffer, encoder = _car_encoder()
    length = car().HEADER_SIZE + encoder.encoded_length()
    assert length == car().HEADER_SIZE + 45 + 4 + 4 + 3 * 4
    assert car().decode(bytes(buffer[:length])).to_dict() == {
        **FIELDS,
        "fuelFigures": [],
        "performanceFigures": [],
        "manufacturer": "",
        "model": "",
        "activationCode": "",
    }


def test_group_with_fewer_entries_than_declared_raises() -> None:
    _, encoder = _car_encoder()
    fuel = encoder.fuel_figures_count(2)
    fuel.next().speed = 1
    with pytest.raises(EncodeValueError) as excinfo:
        encoder.performance_figures_count(0)
    assert excinfo.value.field == "fuelFigures"
    _, encoder = _car_encoder()
    encoder.fuel_figures_count(1)
    with pytest.raises(EncodeValueError):
        encoder.encoded_length()
    _, encoder = _car_encoder()
    performance = encoder.performance_figures_count(1)
    performance.next().acceleration_count(2).next()
    with pytest.raises(EncodeValueError):  # the nested group is short
        encoder.put_manufacturer("x")


def test_group_with_more_entries_than_declared_raises() -> None:
    _, encoder = _car_encoder()
    fuel = encoder.fuel_figures_count(1)
    fuel.next()
    with pytest.raises(EncodeValueError):
        fuel.next()


def test_group_count_out_of_range_raises() -> None:
    for count in (-1, 65535, 1 << 20):
        _, encoder = _car_encoder(1 << 20)
        with pytest.raises(EncodeValueError):
            encoder.fuel_figures_count(count)
    encoder = group_data().ParcelEncoder().wrap_and_apply_header(bytearray(1 << 16), 0)
    with pytest.raises(EncodeValueError):
        encoder.items_count(256)  # numInGroup is uint8 here


def _finish_after_rejection(
    module: ModuleType, buffer: bytearray, encoder: Any, retry: Callable[[], Any]
) -> None:
    """After a rejected write the encoder may accept a retry or refuse to finish, but whatever it
    finishes must be a well-formed message (never one with a section silently missing)."""
    with contextlib.suppress(EncodeValueError):
        retry()
    try:
        length = module.HEADER_SIZE + encoder.encoded_length()
    except CodecError:
        return
    module.decode(bytes(buffer[:length])).to_dict()


def test_a_rejected_group_count_does_not_leave_a_malformed_message() -> None:
    buffer, encoder = _car_encoder()
    with pytest.raises(EncodeValueError):
        encoder.fuel_figures_count(70000)
    _finish_after_rejection(car(), buffer, encoder, lambda: encoder.fuel_figures_count(0))


def test_rejected_var_data_does_not_leave_a_malformed_message() -> None:
    module = group_data()
    buffer = bytearray(4096)
    encoder = module.ParcelEncoder().wrap_and_apply_header(buffer, 0)
    items = encoder.items_count(1)
    items.next()
    with pytest.raises(EncodeValueError):
        items.put_note(b"x" * 300)
    _finish_after_rejection(module, buffer, encoder, lambda: items.put_note(b"short"))


def test_var_data_too_long_for_its_length_type_raises() -> None:
    module = group_data()  # shortText has a uint8 length
    encoder = module.ParcelEncoder().wrap_and_apply_header(bytearray(4096), 0)
    items = encoder.items_count(1)
    items.next()
    items.put_note(b"x" * 254)  # the longest that fits (uint8's 255 is its null value)
    encoder = module.ParcelEncoder().wrap_and_apply_header(bytearray(4096), 0)
    items = encoder.items_count(1)
    items.next()
    with pytest.raises(EncodeValueError) as excinfo:
        items.put_note(b"x" * 255)
    assert excinfo.value.field == "note"
    with pytest.raises(EncodeValueError):
        module.encode_dict(
            "Parcel",
            {"parcelId": 1, "items": [{"label": "a", "quantity": 1, "note": "é" * 128}]},
        )  # 256 bytes in UTF-8


def test_var_data_that_does_not_fit_the_buffer_raises_buffer_too_short() -> None:
    buffer, encoder = _car_encoder(45 + 8 + 8 + 10)
    with pytest.raises(BufferTooShortError):
        encoder.put_manufacturer("a long manufacturer name")
    assert len(buffer) == 71


# -------------------------------------------------------------------------------- bad encoder values


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("serial_number", -1),
        ("serial_number", 1 << 64),
        ("model_year", 1 << 16),
        ("model_year", "2013"),
        ("model_year", 1.5),
        ("model_year", None),
        ("available", 256),
        ("available", "T"),
        ("code", -1),
        ("some_numbers", [1, 2, 3]),
        ("some_numbers", [1, 2, 3, 1 << 32]),
        ("some_numbers", None),
        ("some_numbers", 5),
        ("some_numbers", ["a", 1, 2, 3]),
        ("vehicle_code", "abcdefg"),
        ("vehicle_code", "é"),
        ("extras", 256),
        ("extras", -1),
    ],
)
def test_out_of_range_values_raise_encode_value_error(attribute: str, value: Any) -> None:
    _, encoder = _car_encoder()
    with pytest.raises(EncodeValueError) as excinfo:
        setattr(encoder, attribute, value)
    assert excinfo.value.message_name == "Car"


def test_out_of_range_values_in_composites_groups_and_dicts_raise_encode_value_error() -> None:
    _, encoder = _car_encoder()
    with pytest.raises(EncodeValueError):
        encoder.engine.capacity = 1 << 16
    with pytest.raises(EncodeValueError):
        encoder.engine.efficiency = 128  # int8
    with pytest.raises(EncodeValueError):
        encoder.engine.booster.horse_power = -1
    with pytest.raises(EncodeValueError):
        encoder.engine.manufacturer_code = "1234"
    fuel = encoder.fuel_figures_count(1).next()
    with pytest.raises(EncodeValueError):
        fuel.speed = -1
    with pytest.raises(EncodeValueError):
        fuel.mpg = "fast"
    for bad in (
        {"serialNumber": -1},
        {"code": "Z"},
        {"extras": ["moonRoof"]},
        {"someNumbers": [1]},
        {"engine": {"capacity": -5}},
        {"fuelFigures": [{"speed": 1 << 16}]},
        {"fuelFigures": [{"speed": 1, "mpg": 1e39}]},
        {"manufacturer": {"hex": "zz"}},
        {"fuelFigures": {"speed": 1}},
        {"modelYear": None},
    ):
        with pytest.raises(EncodeValueError):
            car().encode_dict("Car", {**FIELDS, **bad})
    with pytest.raises(EncodeValueError):
        car().encode_dict("NoSuchMessage", {})


def test_float_out_of_float32_range_raises_encode_value_error() -> None:
    _, encoder = _car_encoder()
    fuel = encoder.fuel_figures_count(1).next()
    with pytest.raises(EncodeValueError) as excinfo:
        fuel.mpg = 1e39  # finite, but beyond float32
    assert excinfo.value.field == "mpg"


def test_pack_into_with_bad_values_raises_encode_value_error() -> None:
    block = car().CarDecoder().wrap_header(car_bytes(), 0).read_block()
    buffer = bytearray(100)
    assert car().CarEncoder.pack_into(buffer, 0, *block) == 8 + 45
    assert buffer[:53] == car_bytes()[:53]
    with pytest.raises(EncodeValueError):
        car().CarEncoder.pack_into(bytearray(100), 0, -1, *block[1:])
    with pytest.raises(CodecError):
        car().CarEncoder.pack_into(bytearray(10), 0, *block)  # buffer too short


# --------------------------------------------------------------------------------------------- buffers


def test_read_only_buffer_given_to_an_encoder_raises_codec_error() -> None:
    for buffer in (bytes(512), memoryview(bytes(512))):
        with pytest.raises(CodecError):
            car().CarEncoder().wrap(buffer, 0)
        with pytest.raises(CodecError):
            car().CarEncoder().wrap_and_apply_header(buffer, 0)
        with pytest.raises(CodecError):
            car().encode_dict("Car", FIELDS, buffer, 0)
        with pytest.raises(CodecError):
            generated.aeron_cluster_codecs.SessionMessageHeaderEncoder().wrap_and_apply_header(buffer, 0)


def test_encoder_buffer_too_short_raises_buffer_too_short() -> None:
    with pytest.raises(BufferTooShortError):
        car().CarEncoder().wrap_and_apply_header(bytearray(20), 0)
    with pytest.raises(BufferTooShortError):
        car().CarEncoder().wrap(bytearray(100), 60)
    with pytest.raises(BufferTooShortError):
        car().encode_dict("Car", FIELDS, bytearray(100), 0)


def _buffers(data: bytes) -> Iterator[tuple[str, Any]]:
    yield "bytes", data
    yield "bytearray", bytearray(data)
    yield "memoryview", memoryview(data)
    yield "memoryview-slice", memoryview(b"\x00\x01\x02" + data + b"\xff")[3:-1]
    yield "array", array.array("B", data)
    mm = mmap.mmap(-1, len(data))
    mm.write(data)
    yield "mmap", mm


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "memoryview-slice", "array", "mmap"])
def test_decoders_accept_every_byte_buffer_type(kind: str) -> None:
    buffer = dict(_buffers(car_bytes()))[kind]
    decoder = car().decode(buffer)
    assert decoder.to_dict() == FIELDS
    decoder = car().CarDecoder().wrap(buffer, car().HEADER_SIZE, 45, 0)
    assert decoder.manufacturer_str() == "Honda"
    assert [f.usage_description_bytes() for f in decoder.fuel_figures()] == [u.encode() for u in USAGE]
    assert car().CarDecoder().wrap_header(buffer, 0).to_dict() == FIELDS
    assert car().CarDecoder.unpack(buffer)[:3] == (1234, 2013, 1)
    assert bytes(car().CarDecoder.unpack(buffer)[-1]) == b"abcdef"


def test_decoders_accept_a_memoryview_of_another_item_format() -> None:
    """Offsets are in bytes whatever the view's format: struct reads bytes, and so must var data."""
    data = car_bytes() + bytes(-len(car_bytes()) % 4)
    view = memoryview(bytearray(data)).cast("I")
    decoder = car().decode(view)
    assert decoder.manufacturer_str() == "Honda"
    assert car().decode(view).to_dict() == FIELDS
    assert bytes(car().CarDecoder.unpack(view)[-1]) == b"abcdef"


def test_encoders_write_into_a_memoryview_of_another_item_format_or_raise_codec_error() -> None:
    """A typed view is a writable buffer: the flyweight writes bytes into it, or refuses with a
    CodecError -- never a raw ValueError from slice assignment."""
    view = memoryview(bytearray(512)).cast("I")
    try:
        encoder = car().CarEncoder().wrap_and_apply_header(view, 0)
        encoder.fuel_figures_count(1).next().put_usage_description("Urban")
        encoder.put_manufacturer("Honda")
        length = car().HEADER_SIZE + encoder.encoded_length()
    except CodecError:
        return
    decoder = car().decode(bytes(view.cast("B")[:length]))
    assert [f.usage_description_str() for f in decoder.fuel_figures()] == ["Urban"]
    assert decoder.manufacturer_str() == "Honda"


def test_encoders_write_into_bytearray_memoryview_and_mmap() -> None:
    expected = car_bytes()
    mm = mmap.mmap(-1, 512)
    for buffer in (bytearray(512), memoryview(bytearray(512)), mm, memoryview(bytearray(520))[8:]):
        assert car().encode_dict("Car", FIELDS, buffer, 0) == expected
        assert bytes(buffer[: len(expected)]) == expected


# ------------------------------------------------------------------------------------ values returned


def _car_with(**block: Any) -> bytes:
    """The car vector with raw block bytes patched: ``name=(offset, format, value)``."""
    data = bytearray(car_bytes())
    for offset, fmt, value in block.values():
        struct.pack_into(fmt, data, car().HEADER_SIZE + offset, value)
    return bytes(data)


def test_enum_known_unknown_and_null_values() -> None:
    module = car()
    decoder = decode_car()
    assert decoder.code is module.Model.A and isinstance(decoder.code, module.Model)
    assert decoder.code_raw == 65
    unknown = module.decode(_car_with(code=(11, "<B", ord("Z"))))
    assert unknown.code == 90 and type(unknown.code) is int
    assert unknown.code_raw == 90
    assert unknown.to_dict()["code"] == 90
    null = module.decode(_car_with(code=(11, "<B", 0)))
    assert null.code is module.Model.NULL_VALUE
    assert null.to_dict()["code"] is None
    assert module.decode(_car_with(available=(10, "<B", 255))).available is module.BooleanType.NULL_VALUE
    assert module.decode(_car_with(available=(10, "<B", 7))).available == 7
    assert decode_car().engine.booster.boost_type is module.BoostType.NITROUS
    # Encoding an unknown number writes it unchanged; null writes the null value.
    assert module.encode_dict("Car", {**FIELDS, "code": 90}) == _car_with(code=(11, "<B", 90))
    assert module.encode_dict("Car", {**FIELDS, "code": None}) == _car_with(code=(11, "<B", 0))


def test_optional_primitives_are_none_when_null() -> None:
    module = car(1)
    fields = {**FIELDS, "uuid": [1, 2], "cupHolderCount": None}
    decoder = module.decode(module.encode_dict("Car", fields))
    assert decoder.cup_holder_count is None
    assert decoder.to_dict()["cupHolderCount"] is None
    decoder = module.decode(module.encode_dict("Car", {**fields, "cupHolderCount": 0}))
    assert decoder.cup_holder_count == 0
    # Arrays keep their null values (docs/sbe-json.md).
    null64 = -(1 << 63)
    decoder = module.decode(module.encode_dict("Car", {**fields, "uuid": [null64, null64]}))
    assert decoder.uuid == (null64, null64)
    cluster = generated.aeron_cluster_codecs  # version_t: optional int32 with nullValue 0
    event = {
        "clusterSessionId": 1,
        "correlationId": 2,
        "leadershipTermId": 3,
        "leaderMemberId": 4,
        "code": "OK",
        "version": None,
        "detail": "",
    }
    decoder = cluster.decode(cluster.encode_dict("SessionEvent", event))
    assert decoder.version is None and decoder.to_dict() == event
    assert cluster.decode(cluster.encode_dict("SessionEvent", {**event, "version": 65536})).version == 65536


def test_sets_are_int_flags_with_named_choices() -> None:
    module = car()
    extras = decode_car().extras
    assert isinstance(extras, module.OptionalExtras)
    assert extras == module.OptionalExtras.sunRoof | module.OptionalExtras.cruiseControl
    assert module.OptionalExtras.sunRoof in extras and module.OptionalExtras.sportsPack not in extras
    assert decode_car().extras_raw == 0b101
    assert [m.name for m in module.OptionalExtras] == ["sunRoof", "sportsPack", "cruiseControl"]
    odd = module.decode(_car_with(extras=(34, "<B", 0b10000010)))
    assert odd.extras_raw == 0b10000010
    assert module.OptionalExtras.sportsPack in odd.extras
    assert odd.to_dict()["extras"] == ["sportsPack", 7]  # unnamed bits as numbers
    empty = module.decode(_car_with(extras=(34, "<B", 0)))
    assert empty.extras == module.OptionalExtras(0) and empty.to_dict()["extras"] == []
    assert module.encode_dict("Car", {**FIELDS, "extras": ["sportsPack", 7]}) == _car_with(
        extras=(34, "<B", 0x82)
    )
    buffer, encoder = _car_encoder()
    encoder.extras = module.OptionalExtras.sportsPack | module.OptionalExtras.cruiseControl
    assert module.decode(bytes(buffer)).extras_raw == 0b110


def test_char_arrays_strip_trailing_nuls() -> None:
    module = car()
    decoder = module.decode(module.encode_dict("Car", {**FIELDS, "vehicleCode": "ab"}))
    assert decoder.vehicle_code == "ab"
    assert decoder.vehicle_code_bytes == b"ab\x00\x00\x00\x00"
    decoder = module.decode(module.encode_dict("Car", {**FIELDS, "vehicleCode": ""}))
    assert decoder.vehicle_code == "" and decoder.to_dict()["vehicleCode"] == ""
    decoder = module.decode(_car_with(vehicleCode=(28, "<6s", b"a\x00b\x00\x00\x00")))
    assert decoder.vehicle_code == "a\x00b"  # only trailing NULs go
    assert decoder.engine.manufacturer_code == "123"


def test_var_data_accessors_view_bytes_and_str() -> None:
    decoder = decode_car()
    view = decoder.manufacturer()
    assert isinstance(view, memoryview) and view.tobytes() == b"Honda"
    assert decoder.model_bytes() == b"Civic VTi" and isinstance(decoder.model_bytes(), bytes)
    assert decoder.activation_code_str() == "abcdef"


# --------------------------------------------------------------------------------------------- dispatch


OUR_SCHEMAS = AERON_SCHEMAS


@cache
def our_schema(path: Path) -> Any:
    return load_schema(path)


def our_module(path: Path) -> ModuleType:
    module: ModuleType = getattr(generated, package_name_for(path))
    return module


@pytest.mark.parametrize("path", OUR_SCHEMAS, ids=[p.stem for p in OUR_SCHEMAS])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_decode_dispatches_each_of_our_schemas(path: Path, data: st.DataObject) -> None:
    module = our_module(path)
    assert generated.SCHEMAS[module.SCHEMA_ID] is module
    message = data.draw(st.sampled_from([m.name for m in our_schema(path).messages]))
    fields = data.draw(values_for(our_schema(path), message))
    encoded = module.encode_dict(message, fields)
    decoder = generated.decode(encoded)
    assert type(decoder) is module.MESSAGES_BY_NAME[message][0]
    assert decoder.to_dict() == fields
    framed = b"\x00" * 5 + encoded
    assert generated.decode(framed, 5).to_dict() == fields


@pytest.mark.parametrize("path", OUR_SCHEMAS, ids=[p.stem for p in OUR_SCHEMAS])
def test_unknown_template_and_wrong_schema_id_raise(path: Path) -> None:
    module = our_module(path)
    message = our_schema(path).messages[0]
    header = module.MessageHeaderDecoder.SIZE
    encoded = bytearray(module.HEADER_SIZE + message.block_length + 64)
    encoder = module.MESSAGES_BY_NAME[message.name][1]().wrap_and_apply_header(encoded, 0)
    assert header == module.HEADER_SIZE and encoder is not None
    unknown = bytearray(encoded)
    struct.pack_into("<H", unknown, 2, 65000)
    with pytest.raises(UnknownTemplateError) as excinfo:
        module.decode(bytes(unknown))
    assert excinfo.value.offset == 0
    with pytest.raises(UnknownTemplateError):
        generated.decode(bytes(unknown))
    wrong = bytearray(encoded)
    struct.pack_into("<H", wrong, 4, 999)
    with pytest.raises(SchemaIdMismatchError):
        module.decode(bytes(wrong))
    with pytest.raises(SchemaIdMismatchError):
        generated.decode(bytes(wrong))
    with pytest.raises(SchemaIdMismatchError):
        module.MESSAGES_BY_NAME[message.name][0]().wrap_header(bytes(wrong), 0)


def test_wrap_header_and_from_header_with_a_wrong_template_raise() -> None:
    module = generated.aeron_cluster_codecs
    session_event = module.encode_dict(
        "SessionEvent",
        {
            "clusterSessionId": 1,
            "correlationId": 2,
            "leadershipTermId": 3,
            "leaderMemberId": 4,
            "code": "OK",
            "version": None,
            "detail": "x",
        },
    )
    with pytest.raises(UnknownTemplateError) as excinfo:
        module.SessionMessageHeaderDecoder().wrap_header(session_event, 0)
    assert excinfo.value.message_name == "SessionMessageHeader"
    header = module.MessageHeaderDecoder().wrap(session_event, 0)
    with pytest.raises(UnknownTemplateError):
        module.SessionMessageHeaderDecoder.from_header(header)
    assert module.SessionEventDecoder.from_header(header).detail_str() == "x"
    with pytest.raises(UnknownTemplateError):
        car().CarDecoder().wrap_header(_with_template(car_bytes(), 2), 0)


def _with_template(data: bytes, template_id: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<H", out, 2, template_id)
    return bytes(out)


def test_decode_of_a_too_short_header_raises_buffer_too_short() -> None:
    for n in range(8):
        with pytest.raises(BufferTooShortError):
            car().decode(car_bytes()[:n])
        with pytest.raises(BufferTooShortError):
            generated.decode(car_bytes()[:n])
    with pytest.raises(BufferTooShortError):
        car().decode(car_bytes(), len(car_bytes()))
    with pytest.raises(CodecError):
        car().decode(car_bytes(), -1)


def test_negative_and_past_the_end_offsets_raise_codec_error() -> None:
    data = car_bytes()
    for offset in (-len(data), -1, len(data), len(data) + 5):
        with pytest.raises(CodecError):
            car().CarDecoder.unpack(data, offset)  # not read from the end, as struct would
        with pytest.raises(CodecError):
            car().CarDecoder().wrap_header(data, offset)
        with pytest.raises(CodecError):
            car().decode(data, offset)
    with pytest.raises(CodecError):
        car().CarDecoder().wrap(data, -1, 45, 0)
    with pytest.raises(CodecError):
        car().CarEncoder().wrap(bytearray(100), -1)
