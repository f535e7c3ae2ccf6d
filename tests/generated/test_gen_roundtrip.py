"""Round trips through the generated flyweight codecs, for every message of every schema we have.

SBE's basic promise: what an encoder writes, a decoder of the same schema reads back unchanged.  For
our five checked-in packages, the tests' own schemas (``tests/testdata/schemas``: the car stand-ins,
big-endian included, nested groups, var data in groups, explicit offsets and constants) and, where the
shared reference directory is there, every reference schema (SBE's car schemas, big-endian included,
the 16 SBE tool test schemas and the Aeron reference schemas), hypothesis draws valid field dicts
(``support.sbe_values``) and checks

* ``decode(encode_dict(name, values)).to_dict() == values`` (``docs/sbe-json.md``), also when the
  message sits at an odd offset inside a larger buffer;
* the straight-line ``unpack()`` fast path gives the same raw tuple as the general slow path
  ``codegen.runtime.records.unpack_record`` on the same bytes;
* a message written field by field through the flyweight encoder is byte-for-byte what
  ``encode_dict`` writes (hand-written cases: Car with groups, nested groups and var data).

Reproduce a failure with ``pytest tests/generated/test_gen_roundtrip.py -k <id>``; hypothesis prints
the falsifying values and its database replays them.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.generated_import import import_schema_file
from support.needs import cases_per_file, need_reference
from support.paths import (
    AERON_SCHEMAS,
    CAR_SCHEMAS,
    GROUP_VAR_DATA,
    NESTED_GROUPS,
    OWN_TEST_SCHEMAS,
    REFERENCE_SCHEMAS,
    SBE_TEST_SCHEMAS,
    SCHEMAS,
    VECTORS,
)
from support.sbe_values import values_for

import generated
from codegen.ir.model import CompositeType, Presence, Schema
from codegen.runtime.records import unpack_record
from codegen.schema import load_schema
from codegen.targets.python import package_name_for

# --------------------------------------------------------------------------------------------- schemas

OUR_SCHEMAS = AERON_SCHEMAS
ALL_SCHEMAS = OUR_SCHEMAS + OWN_TEST_SCHEMAS + REFERENCE_SCHEMAS


@cache
def schema_of(path: Path) -> Schema:
    return load_schema(path)


@cache
def module_of(path: Path) -> ModuleType:
    """Our schemas: the checked-in package; the others: generated in memory."""
    if path.parent == SCHEMAS:
        module: ModuleType = getattr(generated, package_name_for(path))
        return module
    return import_schema_file(path)


def _label(path: Path) -> str:
    if path.parent == SCHEMAS:
        return f"ours/{path.stem}"
    return ("test" if path in OWN_TEST_SCHEMAS else path.parent.name) + "/" + path.stem


def _messages_of(path: Path) -> list[Any]:
    return [
        pytest.param(path, message.name, id=f"{_label(path)}-{message.name}")
        for message in schema_of(path).messages
    ]


MESSAGE_CASES = cases_per_file(ALL_SCHEMAS, _messages_of, _label, width=2)


def test_the_cases_cover_every_schema_kind() -> None:
    assert len(OUR_SCHEMAS) == 5
    assert len(SBE_TEST_SCHEMAS) == 16
    assert any(schema_of(p).byte_order.name == "BIG_ENDIAN" for p in OWN_TEST_SCHEMAS)
    covered = {case.values[0] for case in MESSAGE_CASES}
    assert covered == set(ALL_SCHEMAS)


# ---------------------------------------------------------------------------------------------- helpers


def comparable(value: Any) -> Any:
    """A raw-tuple value in a form ``==`` compares fully: views as bytes, NaN as a marker."""
    if isinstance(value, memoryview):
        return ("view", value.tobytes())
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, [comparable(v) for v in value])
    return value


def fast_and_slow(module: ModuleType, data: Any, offset: int = 0) -> tuple[Any, Any]:
    header = module.MessageHeaderDecoder().wrap(data, offset)
    decoder_class = module.DECODERS[header.template_id]
    fast = decoder_class.unpack(data, offset)
    slow = unpack_record(decoder_class().wrap_header(data, offset))
    return comparable(fast), comparable(slow)


def _json_names(node: Any) -> list[str]:
    """The JSON keys of a message, group or composite in schema order (constants omitted)."""
    if isinstance(node, CompositeType):
        return [m.name for m in node.members if not _constant(m.type)]
    names = [f.name for f in node.fields if not (f.is_constant or _constant(f.type))]
    return names + [g.name for g in node.groups] + [v.name for v in node.var_data]


def _constant(node: Any) -> bool:
    return not isinstance(node, CompositeType) and node.encoding.presence is Presence.CONSTANT


def assert_schema_order(value: dict[str, Any], node: Any) -> None:
    """``to_dict`` keys come in schema order: fields, groups, var data (docs/sbe-json.md)."""
    assert list(value) == _json_names(node), node.name
    children: dict[str, Any] = {g.name: g for g in getattr(node, "groups", ())}
    for f in getattr(node, "fields", ()):
        if isinstance(f.type, CompositeType):
            children[f.name] = f.type
    for m in getattr(node, "members", ()):
        if isinstance(m.type, CompositeType):
            children[m.name] = m.type
    for name, child in children.items():
        inner = value.get(name)
        for item in inner if isinstance(inner, list) else [inner]:
            if isinstance(item, dict):
                assert_schema_order(item, child)


SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


# ------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize(("path", "message"), MESSAGE_CASES)
@SETTINGS
@given(data=st.data())
def test_decode_of_encode_is_identity(path: Path, message: str, data: st.DataObject) -> None:
    module = module_of(need_reference(path))
    values = data.draw(values_for(schema_of(path), message), label="values")
    encoded = module.encode_dict(message, values)

    decoder = module.decode(encoded)
    assert message == decoder.NAME
    assert decoder.acting_version == module.SCHEMA_VERSION
    assert decoder.to_dict() == values
    assert_schema_order(decoder.to_dict(), schema_of(path).message_named(message))
    assert module.HEADER_SIZE + decoder.total_length() == len(encoded)

    # The same message inside a larger buffer, at an odd offset, written by the buffer variant.
    offset = data.draw(st.integers(1, 9), label="offset")
    buffer = bytearray(b"\xa5" * (offset + len(encoded) + 7))
    assert module.encode_dict(message, values, buffer, offset) == encoded
    assert module.decode(buffer, offset).to_dict() == values

    # Fast path == slow path, at offset 0 and inside the larger buffer.
    fast, slow = fast_and_slow(module, encoded)
    assert fast == slow
    fast, slow = fast_and_slow(module, bytes(buffer), offset)
    assert fast == slow


OUR_MESSAGES = [(path, m.name) for path in OUR_SCHEMAS for m in schema_of(path).messages]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_decode_dispatches_our_round_trips_by_schema_id(data: st.DataObject) -> None:
    path, message = data.draw(st.sampled_from(OUR_MESSAGES), label="message")
    module = module_of(path)
    values = data.draw(values_for(schema_of(path), message), label="values")
    decoder = generated.decode(module.encode_dict(message, values))
    assert type(decoder) is module.MESSAGES_BY_NAME[message][0]
    assert decoder.to_dict() == values


# ------------------------------------------------------------------- fast path == slow path on vectors


def _vector_cases() -> list[Any]:
    ours = {"cluster": SCHEMAS / "aeron-cluster-codecs.xml", "archive": SCHEMAS / "aeron-archive-codecs.xml"}
    cases = []
    for name in ("car", "cluster", "archive"):
        with open(VECTORS / f"{name}-vectors.json") as f:
            for v in json.load(f)["vectors"]:
                path = CAR_SCHEMAS[v["schemaVersion"]] if name == "car" else ours[name]
                cases.append(
                    pytest.param(path, v, id=f"{name}-{v['message']}-{v['variant']}-v{v['schemaVersion']}")
                )
    return cases


@pytest.mark.parametrize(("path", "vector"), _vector_cases())
def test_unpack_fast_path_equals_slow_path_on_reference_vectors(path: Path, vector: dict[str, Any]) -> None:
    fast, slow = fast_and_slow(module_of(path), bytes.fromhex(vector["hex"]))
    assert fast == slow


def test_unpack_of_an_older_version_falls_back_to_the_slow_path() -> None:
    """Car v0 bytes through the v1 codec: the fast path must hand over, absent fields ``None``."""
    v1 = module_of(CAR_SCHEMAS[1])
    v0 = module_of(CAR_SCHEMAS[0])
    fields = _car_fields()
    data = v0.encode_dict("Car", fields)
    fast, slow = fast_and_slow(v1, data)
    assert fast == slow
    raw = v1.CarDecoder.unpack(data)
    block = v1.CarDecoder().wrap_header(data, 0).read_block()
    assert raw[: len(block)] == block
    assert block[-3:] == (None, None, None)  # uuid[2], cupHolderCount


# ------------------------------------------------------------- flyweight encoder == encode_dict output


def _car_fields() -> dict[str, Any]:
    with open(VECTORS / "car-vectors.json") as f:
        vectors = json.load(f)["vectors"]
    fields: dict[str, Any] = next(
        v["fields"] for v in vectors if v["variant"] == "representative" and v["schemaVersion"] == 0
    )
    return fields


def _build_car(module: ModuleType, fields: dict[str, Any]) -> bytes:
    buffer = bytearray(1024)
    car = module.CarEncoder().wrap_and_apply_header(buffer, 0)
    car.serial_number = fields["serialNumber"]
    car.model_year = fields["modelYear"]
    car.available = module.BooleanType[fields["available"]]
    car.code = module.Model[fields["code"]]
    car.some_numbers = fields["someNumbers"]
    car.vehicle_code = fields["vehicleCode"]
    extras = module.OptionalExtras(0)
    for name in fields["extras"]:
        extras |= module.OptionalExtras[name]
    car.extras = extras
    engine = car.engine
    engine.capacity = fields["engine"]["capacity"]
    engine.num_cylinders = fields["engine"]["numCylinders"]
    engine.manufacturer_code = fields["engine"]["manufacturerCode"]
    engine.efficiency = fields["engine"]["efficiency"]
    engine.booster_enabled = module.BooleanType[fields["engine"]["boosterEnabled"]]
    engine.booster.boost_type = module.BoostType[fields["engine"]["booster"]["BoostType"]]
    engine.booster.horse_power = fields["engine"]["booster"]["horsePower"]
    if "cupHolderCount" in fields:
        car.uuid = fields["uuid"]
        car.cup_holder_count = fields["cupHolderCount"]
    fuel = car.fuel_figures_count(len(fields["fuelFigures"]))
    for entry in fields["fuelFigures"]:
        fuel.next()
        fuel.speed = entry["speed"]
        fuel.mpg = entry["mpg"]
        fuel.put_usage_description(entry["usageDescription"])
    performance = car.performance_figures_count(len(fields["performanceFigures"]))
    for entry in fields["performanceFigures"]:
        performance.next().octane_rating = entry["octaneRating"]
        acceleration = performance.acceleration_count(len(entry["acceleration"]))
        for a in entry["acceleration"]:
            acceleration.next()
            acceleration.mph = a["mph"]
            acceleration.seconds = a["seconds"]
    car.put_manufacturer(fields["manufacturer"])
    car.put_model(fields["model"].encode())  # bytes are accepted as well as str
    car.put_activation_code(fields["activationCode"])
    return bytes(buffer[: module.HEADER_SIZE + car.encoded_length()])


def test_flyweight_encoder_writes_what_encode_dict_writes_car_v0() -> None:
    module = module_of(CAR_SCHEMAS[0])
    fields = _car_fields()
    built = _build_car(module, fields)
    assert built == module.encode_dict("Car", fields)
    assert module.decode(built).to_dict() == fields


def test_flyweight_encoder_writes_what_encode_dict_writes_car_v1() -> None:
    module = module_of(CAR_SCHEMAS[1])
    fields = {**_car_fields(), "uuid": [7, 3], "cupHolderCount": 5}
    built = _build_car(module, fields)
    assert built == module.encode_dict("Car", fields)
    assert module.decode(built).to_dict() == {k: fields[k] for k in module.decode(built).to_dict()}


def test_flyweight_encoder_writes_what_encode_dict_writes_triple_nested_groups() -> None:
    module = module_of(NESTED_GROUPS)
    fields = {
        "trunk": 1,
        "branches": [
            {
                "branch": 2,
                "twigs": [{"twig": 3, "leaves": [{"leaf": 4}, {"leaf": 5}]}, {"twig": 6, "leaves": []}],
            },
            {"branch": 7, "twigs": []},
            {"branch": 8, "twigs": [{"twig": 9, "leaves": [{"leaf": 10}]}]},
        ],
    }
    buffer = bytearray(256)
    tree = module.TreeEncoder().wrap_and_apply_header(buffer, 0)
    tree.trunk = fields["trunk"]
    branches = tree.branches_count(len(fields["branches"]))
    for branch in fields["branches"]:
        branches.next().branch = branch["branch"]
        twigs = branches.twigs_count(len(branch["twigs"]))
        for twig in branch["twigs"]:
            twigs.next().twig = twig["twig"]
            leaves = twigs.leaves_count(len(twig["leaves"]))
            for leaf in twig["leaves"]:
                leaves.next().leaf = leaf["leaf"]
    built = bytes(buffer[: module.HEADER_SIZE + tree.encoded_length()])
    assert built == module.encode_dict("Tree", fields)
    assert module.decode(built).to_dict() == fields


def test_flyweight_encoder_writes_what_encode_dict_writes_nested_group_with_var_data() -> None:
    module = module_of(GROUP_VAR_DATA)
    fields = {
        "shipmentId": 99,
        "crates": [
            {
                "label": "abcdefghi",
                "parcels": [
                    {"weight": -1, "parcelNote": "é nested"},
                    {"weight": 2, "parcelNote": ""},
                ],
                "crateNote": "outer one",
            },
            {"label": "xy", "parcels": [], "crateNote": "outer two"},
        ],
    }
    buffer = bytearray(256)
    message = module.ShipmentEncoder().wrap_and_apply_header(buffer, 0)
    message.shipment_id = fields["shipmentId"]
    crates = message.crates_count(len(fields["crates"]))
    for crate in fields["crates"]:
        crates.next().label = crate["label"]
        parcels = crates.parcels_count(len(crate["parcels"]))
        for parcel in crate["parcels"]:
            parcels.next().weight = parcel["weight"]
            parcels.put_parcel_note(parcel["parcelNote"])
        crates.put_crate_note(crate["crateNote"])
    built = bytes(buffer[: module.HEADER_SIZE + message.encoded_length()])
    assert built == module.encode_dict("Shipment", fields)
    assert module.decode(built).to_dict() == fields


def test_flyweight_encoder_writes_what_encode_dict_writes_aeron_group_with_var_data() -> None:
    """StandbySnapshot (a group whose entries carry var data, then two var data) through our package."""
    module = generated.aeron_cluster_codecs
    snapshots = [
        {
            "recordingId": 11,
            "leadershipTermId": 2,
            "termBaseLogPosition": 0,
            "logPosition": 4096,
            "timestamp": 1_700_000_000_000,
            "serviceId": 0,
            "archiveEndpoint": "localhost:8010",
        },
        {
            "recordingId": 12,
            "leadershipTermId": 2,
            "termBaseLogPosition": 0,
            "logPosition": 4096,
            "timestamp": 1_700_000_000_001,
            "serviceId": -1,
            "archiveEndpoint": "",
        },
    ]
    fields = {
        "correlationId": 5,
        "version": 1,
        "responseStreamId": 102,
        "snapshots": snapshots,
        "responseChannel": "aeron:udp?endpoint=localhost:9020",
        "encodedCredentials": {"hex": "00ff10"},
    }
    buffer = bytearray(512)
    encoder = module.StandbySnapshotEncoder().wrap_and_apply_header(buffer, 0)
    encoder.correlation_id = 5
    encoder.version = 1
    encoder.response_stream_id = 102
    group = encoder.snapshots_count(len(snapshots))
    for s in snapshots:
        group.next()
        group.recording_id = s["recordingId"]
        group.leadership_term_id = s["leadershipTermId"]
        group.term_base_log_position = s["termBaseLogPosition"]
        group.log_position = s["logPosition"]
        group.timestamp = s["timestamp"]
        group.service_id = s["serviceId"]
        group.put_archive_endpoint(s["archiveEndpoint"])
    encoder.put_response_channel(fields["responseChannel"])
    encoder.put_encoded_credentials(bytes.fromhex("00ff10"))
    built = bytes(buffer[: module.HEADER_SIZE + encoder.encoded_length()])
    assert built == module.encode_dict("StandbySnapshot", fields)
    assert generated.decode(built).to_dict() == fields
