"""The IR of every reference schema and of ours, pinned by golden dumps and checked against SBE facts.

Golden files live in ``tests/testdata/ir/<name>.txt``, one per schema, named by source so they cannot
collide: ``ref-sbe-*`` (the SBE examples), ``ref-sbe-tests-*`` (the SBE tool's test schemas),
``ref-aeron-*`` (upstream Aeron), ``ours-*`` (``schemas/``), ``bench-*`` (the benchmark's Car) and
``test-*`` (the tests' own, ``tests/testdata/schemas``).  The ``ref-*`` schemas come from the shared
reference directory; without it their cases are skipped (failed under CI).  A change to the parser or
to a schema shows up as a diff of these files; ``pytest --rewrite`` regenerates them and the diff is
reviewed like code.

The targeted tests below do not go through the dump: they check sizes, offsets and block lengths
against numbers the SBE tool's own tests and the Aeron codecs assert, so a golden rewritten from a
wrong parser cannot hide a layout bug.  Each runs on the SBE or Aeron schema it was written for and
on a schema of the project's with the same feature, worked out by hand the same way.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.golden import check_golden, text_diff
from support.needs import need_reference
from support.paths import (
    AERON,
    AERON_REFERENCE_SCHEMAS,
    CAR_BIG_ENDIAN,
    CAR_SCHEMAS,
    GROUP_VAR_DATA,
    OFFSETS_AND_CONSTANTS,
    SBE,
    SBE_CAR_SCHEMAS,
    SBE_EXAMPLE_SCHEMAS,
    SBE_TEST_SCHEMAS,
    SBE_TESTS,
    SCHEMAS,
    TEST_SCHEMAS,
    TESTDATA,
)

from codegen.ir import (
    ByteOrder,
    CompositeType,
    EncodedType,
    EnumType,
    Field,
    Message,
    Presence,
    Primitive,
    Schema,
    SetType,
    VarData,
    dump,
)
from codegen.schema import load_schema, parse_schema_bytes

GOLDEN_DIR = TESTDATA / "ir"

# The schemas of ours that must be wire-identical to upstream Aeron's.
OUR_SCHEMAS = [
    "aeron-archive-codecs.xml",
    "aeron-archive-mark-codecs.xml",
    "aeron-cluster-codecs.xml",
    "aeron-cluster-mark-codecs.xml",
    "aeron-cluster-node-state-codecs.xml",
]


# golden-name prefix -> the schemas, named one by one for the shared reference directory (so that a
# missing file is a skipped or failed case, never a smaller set; tests/schemas/test_stand_ins.py checks
# that the lists name every schema there)
SOURCES: dict[str, list[Path]] = {
    "ref-sbe": SBE_EXAMPLE_SCHEMAS,
    "ref-sbe-tests": SBE_TEST_SCHEMAS,
    "ref-aeron": AERON_REFERENCE_SCHEMAS,
    "ours": sorted(SCHEMAS.glob("*.xml")),
    "bench": [CAR_SCHEMAS[0]],
    "test": sorted(TEST_SCHEMAS.glob("*.xml")),
}


def _golden_sources() -> dict[str, Path]:
    sources: dict[str, Path] = {}
    for prefix, paths in SOURCES.items():
        for path in paths:
            name = f"{prefix}-{path.stem}"
            assert name not in sources, f"golden name collision: {name}"
            sources[name] = path
    return sources


GOLDEN_SOURCES = _golden_sources()


@pytest.mark.parametrize("prefix", sorted(SOURCES))
def test_every_schema_source_has_goldens(prefix: str) -> None:
    """A missing reference directory must not shrink the golden set to nothing: its files are listed,
    each has a golden, and without them this is a skip (a failure under CI), not a pass."""
    paths = SOURCES[prefix]
    assert paths, f"no schemas listed for {prefix}"
    for path in paths:
        assert need_reference(path).is_file(), f"{path} is missing"
        assert (GOLDEN_DIR / f"{prefix}-{path.stem}.txt").is_file(), f"no golden for {path}"


def test_no_stale_golden_files() -> None:
    """A golden whose schema is gone is dead weight (and hides a rename)."""
    stale = sorted(p.stem for p in GOLDEN_DIR.glob("*.txt") if p.stem not in GOLDEN_SOURCES)
    assert not stale, f"golden files without a schema (delete them): {stale}"


@pytest.mark.parametrize("name", sorted(GOLDEN_SOURCES))
def test_ir_dump_matches_golden(name: str, rewrite: bool) -> None:
    actual = dump(load_schema(need_reference(GOLDEN_SOURCES[name])))
    golden = GOLDEN_DIR / f"{name}.txt"
    what = f"IR of {GOLDEN_SOURCES[name]}"
    check_golden(golden, actual, rewrite=rewrite, what=what, actual_name="dump(parsed schema)")


@pytest.mark.parametrize("file_name", OUR_SCHEMAS)
def test_our_schema_ir_is_wire_identical_to_aeron(file_name: str) -> None:
    """Our schemas carry our own prose but must lay out every byte exactly as upstream's do."""
    ours = SCHEMAS / file_name
    if not ours.is_file():
        pytest.fail(f"{ours} is missing")
    theirs = dump(load_schema(need_reference(AERON / file_name)), descriptions=False)
    mine = dump(load_schema(ours), descriptions=False)
    if mine != theirs:
        diff = text_diff(theirs, mine, str(AERON / file_name), "dump(parsed schema)")
        pytest.fail(f"{file_name} is not wire-identical to Aeron's:\n{diff}")


@pytest.mark.parametrize("path", [CAR_SCHEMAS[0], SBE_CAR_SCHEMAS[0]], ids=["bench", "sbe"])
def test_dump_is_deterministic(path: Path) -> None:
    need_reference(path)
    assert dump(load_schema(path)) == dump(load_schema(path))


# ------------------------------------------------------------------------------------ SBE facts


def _message(schema: Schema, name: str) -> Message:
    msg = schema.message_named(name)
    assert msg is not None, f"no message {name}"
    return msg


def _field(fields: tuple[Field, ...], name: str) -> Field:
    for f in fields:
        if f.name == name:
            return f
    raise AssertionError(f"no field {name}")


def _composite(schema: Schema, name: str) -> CompositeType:
    node = schema.type_named(name)
    assert isinstance(node, CompositeType), f"{name} is not a composite"
    return node


def _offsets(fields: tuple[Field, ...]) -> dict[str, int]:
    return {f.name: f.offset for f in fields}


def _member_offsets(node: CompositeType) -> dict[str, int]:
    return {m.name: m.offset for m in node.members}


@pytest.fixture(scope="module", params=[CAR_SCHEMAS[0], SBE_CAR_SCHEMAS[0]], ids=["bench", "sbe"])
def car_schema(request: pytest.FixtureRequest) -> Schema:
    """SBE's Car example, and the benchmark's copy of it (whose composites are written inline)."""
    path: Path = request.param
    return load_schema(need_reference(path))


def test_car_block_length_and_field_offsets(car_schema: Schema) -> None:
    car = _message(car_schema, "Car")
    assert car.id == 1
    assert car.block_length == 45
    assert _offsets(car.fields) == {
        "serialNumber": 0,
        "modelYear": 8,
        "available": 10,
        "code": 11,
        "someNumbers": 12,
        "vehicleCode": 28,
        "extras": 34,
        "discountedModel": 35,
        "engine": 35,
    }
    assert _field(car.fields, "discountedModel").size == 0
    assert _field(car.fields, "engine").size == 10


def test_car_constant_enum_field_resolves_value_ref(car_schema: Schema) -> None:
    discounted = _field(_message(car_schema, "Car").fields, "discountedModel")
    assert discounted.is_constant and discounted.presence is Presence.CONSTANT
    assert discounted.value_ref == "Model.C"
    assert discounted.constant == ord("C")
    assert isinstance(discounted.type, EnumType) and discounted.type.name == "Model"


def test_car_types_from_xinclude() -> None:
    car_schema = load_schema(need_reference(SBE_CAR_SCHEMAS[0]))
    assert car_schema.includes == ("common-types.xml",)
    _assert_car_header(car_schema)


def test_types_from_an_xinclude_of_our_own(tmp_path: Path) -> None:
    """The benchmark's Car with its first ``<types>`` moved to a file of its own and XIncluded."""
    text = CAR_SCHEMAS[0].read_text(encoding="utf-8")
    start, end = text.index("    <types>"), text.index("    </types>") + len("    </types>")
    fragment = text[start:end].replace("<types>", '<types xmlns:sbe="http://fixprotocol.io/2016/sbe">', 1)
    (tmp_path / "car-types.xml").write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n{fragment}\n')
    include = '    <xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="car-types.xml"/>'
    schema = parse_schema_bytes((text[:start] + include + text[end:]).encode(), "car.xml", tmp_path)
    assert schema.includes == ("car-types.xml",)
    _assert_car_header(schema)
    assert dump(schema) == dump(load_schema(CAR_SCHEMAS[0])).replace(str(CAR_SCHEMAS[0]), "car.xml")


def _assert_car_header(car_schema: Schema) -> None:
    assert car_schema.header.name == "messageHeader" and car_schema.header.size == 8
    assert _member_offsets(car_schema.header) == {
        "blockLength": 0,
        "templateId": 2,
        "schemaId": 4,
        "version": 6,
    }
    assert _composite(car_schema, "groupSizeEncoding").size == 4


def test_car_engine_composite_layout(car_schema: Schema) -> None:
    engine = _composite(car_schema, "Engine")
    assert engine.size == 10
    assert _member_offsets(engine) == {
        "capacity": 0,
        "numCylinders": 2,
        "maxRpm": 3,
        "manufacturerCode": 3,
        "fuel": 6,
        "efficiency": 6,
        "boosterEnabled": 7,
        "booster": 8,
    }
    max_rpm = engine.member("maxRpm")
    assert max_rpm is not None and isinstance(max_rpm.type, EncodedType)
    assert max_rpm.type.is_constant and max_rpm.type.encoding.constant == 9000 and max_rpm.size == 0
    fuel = engine.member("fuel")
    assert fuel is not None and isinstance(fuel.type, EncodedType) and fuel.type.encoding.constant == "Petrol"
    assert _composite(car_schema, "Booster").size == 2


def test_car_groups_and_var_data(car_schema: Schema) -> None:
    car = _message(car_schema, "Car")
    fuel, perf = car.groups
    assert (fuel.name, fuel.block_length) == ("fuelFigures", 6)
    assert _offsets(fuel.fields) == {"speed": 0, "mpg": 2}
    assert [d.name for d in fuel.var_data] == ["usageDescription"]
    assert (perf.name, perf.block_length) == ("performanceFigures", 1)
    (accel,) = perf.groups
    assert (accel.name, accel.block_length) == ("acceleration", 6)
    assert accel.num_in_group_member.offset == 2 and accel.dimension.size == 4
    assert [d.name for d in car.var_data] == ["manufacturer", "model", "activationCode"]
    for d in car.var_data:
        assert d.length.primitive is Primitive.UINT32 and d.data_offset == 4


def test_car_set_and_enums(car_schema: Schema) -> None:
    extras = car_schema.type_named("OptionalExtras")
    assert isinstance(extras, SetType) and extras.size == 1
    choices = [(c.name, c.bit) for c in extras.choices]
    assert choices == [("sunRoof", 0), ("sportsPack", 1), ("cruiseControl", 2)]
    model = car_schema.type_named("Model")
    assert isinstance(model, EnumType) and model.encoding.primitive is Primitive.CHAR
    assert [v.value for v in model.values] == [ord("A"), ord("B"), ord("C")]


def test_composite_offsets_schema_honours_explicit_offsets() -> None:
    """SBE CompositeOffsetsTest: header members at 0/4/8/10 give a 12-byte header; dimensions are 8 bytes."""
    schema = load_schema(need_reference(SBE_TESTS / "composite-offsets-schema.xml"))
    assert _member_offsets(schema.header) == {"blockLength": 0, "templateId": 4, "schemaId": 8, "version": 10}
    assert schema.header.size == 12
    entries = _message(schema, "TestMessage1").groups[0]
    assert entries.dimension.size == 8 and entries.num_in_group_member.offset == 7
    assert entries.block_length == 16
    msg2 = _message(schema, "TestMessage2")
    assert _offsets(msg2.fields) == {"fieldOne": 0, "fieldTwo": 8, "fieldThree": 24}
    test_composite = _composite(schema, "testComposite")
    assert test_composite.size == 16
    assert _member_offsets(test_composite) == {"compositeFieldOne": 0, "compositeFieldTwo": 8}
    assert msg2.block_length == 32


def test_our_offsets_schema_honours_explicit_offsets() -> None:
    """offsets-and-constants.xml: header members at 0/4/6/12 give a 14-byte header, the dimension's
    count at 6 an 8-byte dimension, Interval's second member at 12 a 16-byte composite."""
    schema = load_schema(OFFSETS_AND_CONSTANTS)
    assert _member_offsets(schema.header) == {"blockLength": 0, "templateId": 4, "schemaId": 6, "version": 12}
    assert schema.header.size == 14
    reading = _message(schema, "Reading")
    (samples,) = reading.groups
    assert samples.dimension.size == 8 and samples.num_in_group_member.offset == 6
    assert _offsets(samples.fields) == {"value": 0, "flags": 12}
    assert samples.block_length == 13
    interval = _composite(schema, "Interval")
    assert interval.size == 16
    assert _member_offsets(interval) == {"start": 0, "length": 12}
    # Constants take no bytes and sit where the next field would start.
    assert _offsets(reading.fields) == {
        "stamp": 0,
        "interval": 8,
        "count": 28,
        "unit": 32,
        "answer": 32,
        "grade": 32,
        "site": 32,
        "level": 34,
    }
    assert reading.block_length == 40  # declared; the fields end at 36


def test_explicit_message_block_length_is_kept() -> None:
    schema = load_schema(need_reference(SBE_TESTS / "message-block-length-test.xml"))
    msg = _message(schema, "msgName")
    assert msg.block_length == 11
    assert _offsets(msg.fields) == {"field1": 0, "field2": 8}
    assert msg.groups[0].block_length == 16
    assert msg.groups[0].dimension.size == 3


def test_explicit_block_lengths_of_our_own_are_kept() -> None:
    schema = load_schema(GROUP_VAR_DATA)
    crate = _message(schema, "Crate")
    assert crate.block_length == 16  # declared; crateId takes 4
    assert _offsets(crate.fields) == {"crateId": 0}
    (items,) = crate.groups
    assert _offsets(items.fields) == {"label": 0, "quantity": 9}
    assert items.block_length == 24  # declared; the fields end at 17
    assert items.dimension.size == 3  # uint16 blockLength, uint8 numInGroup
    assert _message(schema, "Parcel").groups[0].block_length == 17  # not declared: the fields' end


# (schema, message, var data, id) with a uint8 length and char data
UINT8_LENGTH_VAR_DATA = [
    pytest.param(GROUP_VAR_DATA, "Letter", "heading", 5, id="group-var-data"),
    pytest.param(
        SBE_TESTS / "basic-variable-length-schema.xml",
        "TestMessage1",
        "encryptedNewPassword",
        1404,
        id="sbe-basic-variable-length",
    ),
]


def _var_data(path: Path, message: str, name: str) -> VarData:
    msg = _message(load_schema(need_reference(path)), message)
    groups = list(msg.groups)
    candidates = list(msg.var_data)
    while groups:
        group = groups.pop()
        candidates += group.var_data
        groups += group.groups
    (data,) = [d for d in candidates if d.name == name]
    return data


@pytest.mark.parametrize(("path", "message", "name", "data_id"), UINT8_LENGTH_VAR_DATA)
def test_var_data_with_uint8_length_prefix(path: Path, message: str, name: str, data_id: int) -> None:
    data = _var_data(path, message, name)
    assert data.id == data_id
    assert data.length.primitive is Primitive.UINT8
    assert data.data.primitive is Primitive.CHAR
    assert data.data_offset == 1
    assert data.length.size == 1


@pytest.mark.parametrize(("path", "message", "name", "data_id"), UINT8_LENGTH_VAR_DATA)
def test_var_data_composite_size_is_its_length_prefix(
    path: Path, message: str, name: str, data_id: int
) -> None:
    data = _var_data(path, message, name)
    assert data.type.size == 1
    assert data.data.size == 0


def test_var_data_with_uint16_length_prefix() -> None:
    (data,) = _message(load_schema(OFFSETS_AND_CONSTANTS), "Reading").var_data
    assert data.length.primitive is Primitive.UINT16 and data.data.primitive is Primitive.UINT8
    assert (data.data_offset, data.type.size, data.data.size) == (2, 2, 0)


@pytest.mark.parametrize(
    ("path", "block_length", "engine_offset"),
    [
        # as the little-endian Car, but someNumbers has 5 elements, not 4
        pytest.param(SBE / "example-bigendian-test-schema.xml", 49, 39, id="sbe"),
        pytest.param(SBE_TESTS / "example-bigendian-test-schema.xml", 49, 39, id="sbe-tests"),
        # the benchmark's Car, big-endian: the same layout as the little-endian one
        pytest.param(CAR_BIG_ENDIAN, 45, 35, id="test-car-bigendian"),
    ],
)
def test_big_endian_schema_encodes_every_primitive_big_endian(
    path: Path, block_length: int, engine_offset: int
) -> None:
    schema = load_schema(need_reference(path))
    assert schema.byte_order is ByteOrder.BIG_ENDIAN
    orders = {t.encoding.byte_order for t in _all_encoded(schema)}
    assert orders == {ByteOrder.BIG_ENDIAN}
    car = _message(schema, "Car")
    assert car.block_length == block_length
    assert _field(car.fields, "engine").offset == engine_offset


def _all_encoded(schema: Schema) -> list[EncodedType | EnumType | SetType]:
    found: list[EncodedType | EnumType | SetType] = []

    def visit(node: object) -> None:
        if isinstance(node, CompositeType):
            for m in node.members:
                visit(m.type)
        elif isinstance(node, (EncodedType, EnumType, SetType)):
            found.append(node)

    for t in schema.types:
        visit(t)
    return found


def test_value_ref_constants_resolve_to_enum_values() -> None:
    schema = load_schema(need_reference(SBE_TESTS / "value-ref-schema.xml"))
    nanos = _composite(schema, "UTCTimestampNanos")
    unit = nanos.member("unit")
    assert unit is not None and isinstance(unit.type, EncodedType)
    assert unit.type.encoding.constant == 9 and unit.size == 0
    assert nanos.size == 8
    two = schema.type_named("testConstantTwo")
    assert isinstance(two, EncodedType) and two.encoding.constant == 9
    one = schema.type_named("testConstantOne")
    assert isinstance(one, EncodedType) and one.encoding.constant == 7
    assert _field(_message(schema, "MsgTwo").fields, "timeUnitTypeOne").constant == 3
    assert _field(_message(schema, "MsgThree").fields, "timeUnitTypeOne").constant == 3
    assert _field(_message(schema, "MsgFive").fields, "testConstantTwoField").constant == 9
    for name in ("MsgTwo", "MsgThree", "MsgFour", "MsgFive"):
        assert _message(schema, name).block_length == 0


def test_our_constants_resolve_by_value_and_by_value_ref() -> None:
    schema = load_schema(OFFSETS_AND_CONSTANTS)
    stamp = _composite(schema, "Stamp")
    unit = stamp.member("unit")
    assert unit is not None and isinstance(unit.type, EncodedType)
    assert unit.type.encoding.constant == 6 and unit.size == 0  # Unit.MICRO
    assert stamp.size == 8
    constants = {"answer": 42, "finestUnit": 9, "grade": ord("B"), "site": "XLON"}
    for name, value in constants.items():
        node = schema.type_named(name)
        assert isinstance(node, EncodedType) and node.encoding.constant == value, name
        assert node.is_constant and node.size == 0
    reading = _message(schema, "Reading")
    unit_field = _field(reading.fields, "unit")
    assert unit_field.is_constant and unit_field.value_ref == "Unit.MILLI" and unit_field.constant == 3
    assert isinstance(unit_field.type, EnumType) and unit_field.type.name == "Unit"
    marker = _message(schema, "Marker")
    assert {f.name: f.constant for f in marker.fields} == {"finest": 9, "unit": 0, "answer": 42}
    assert marker.block_length == 0


AERON_CLUSTER = [
    pytest.param(SCHEMAS / "aeron-cluster-codecs.xml", id="ours"),
    pytest.param(AERON / "aeron-cluster-codecs.xml", id="aeron"),
]


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(SCHEMAS / "aeron-cluster-node-state-codecs.xml", id="ours"),
        pytest.param(AERON / "aeron-cluster-node-state-codecs.xml", id="aeron"),
    ],
)
def test_node_state_header_is_sixteen_bytes(path: Path) -> None:
    schema = load_schema(need_reference(path))
    assert schema.header.size == 16
    assert _member_offsets(schema.header) == {
        "blockLength": 0,
        "templateId": 2,
        "schemaId": 4,
        "version": 6,
        "frameLength": 8,
        "padding": 12,
    }


@pytest.mark.parametrize("path", AERON_CLUSTER)
@pytest.mark.parametrize(
    ("message", "block_length"),
    [
        ("SessionMessageHeader", 24),
        ("AppendPosition", 21),
        ("CommitPosition", 20),
        ("BackupResponse", 60),
    ],
)
def test_aeron_cluster_block_lengths(path: Path, message: str, block_length: int) -> None:
    schema = load_schema(need_reference(path))
    assert _message(schema, message).block_length == block_length


@pytest.mark.parametrize("path", AERON_CLUSTER)
def test_aeron_cluster_backup_response_layout(path: Path) -> None:
    schema = load_schema(need_reference(path))
    assert (schema.id, schema.header.size) == (111, 8)
    msg = _message(schema, "BackupResponse")
    member_id = _field(msg.fields, "memberId")
    assert (member_id.offset, member_id.since_version) == (56, 10)
    (snapshots,) = msg.groups
    assert snapshots.block_length == 44
    assert _offsets(snapshots.fields) == {
        "recordingId": 0,
        "leadershipTermId": 8,
        "termBaseLogPosition": 16,
        "logPosition": 24,
        "timestamp": 32,
        "serviceId": 40,
    }
    assert [d.name for d in msg.var_data] == ["clusterMembers"]


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(GROUP_VAR_DATA, id="group-var-data"),
        pytest.param(SBE_TESTS / "basic-variable-length-schema.xml", id="sbe-basic-variable-length"),
    ],
)
def test_char_constant_is_a_character(path: Path) -> None:
    source = need_reference(path).read_text(encoding="utf-8")
    source = source.replace(
        "    </types>",
        '        <type name="Digit" primitiveType="char" presence="constant">5</type>\n    </types>',
    )
    digit = parse_schema_bytes(source.encode(), source="<char-constant>").type_named("Digit")
    assert isinstance(digit, EncodedType)
    assert digit.encoding.constant == ord("5")
