"""Regression tests for the generated-codec bugs a code review found (fixed in 9c53a05).

Each test states one property on a scratch schema of a few lines (``support/scratch_schema.py``) and,
where the OTF codec can express the same thing, checks that the generated codec and OTF agree byte for
byte and value for value.  The bugs they pin down: dimension composites with other members
(padding, extra counters), accessor and class names derived from schema names that collide with each
other or with the module's own globals, schema text reaching the generated source, composite members
newer than the acting version, groups of zero-byte entries with huge counts, enum nulls declared on a
named type, float nulls that a float32 cannot hold exactly, loose encoder input, signed dimensions,
unknown character encodings and non-contiguous buffers.
"""

from __future__ import annotations

import struct
from types import ModuleType
from typing import Any

import pytest
from support.scratch_schema import scratch_codecs, scratch_xml

from codegen.otf import OtfCodec
from codegen.runtime import errors as runtime_errors
from codegen.runtime.errors import CodecError, EncodeValueError
from codegen.runtime.records import unpack_record
from codegen.schema import SchemaError, parse_schema_bytes

HEADER_SIZE = 8  # the scratch schema's messageHeader: four uint16
PLAIN_MESSAGE = '<sbe:message name="M" id="1"><field name="x" id="1" type="uint8"/></sbe:message>'
E_MESSAGE = '<sbe:message name="M" id="1"><field name="e" id="1" type="E"/></sbe:message>'

DIM_PADDED = """
<composite name="dimPad">
  <type name="blockLength" primitiveType="uint16"/>
  <type name="reserved" primitiveType="uint8" length="2"/>
  <type name="numInGroup" primitiveType="uint16"/>
</composite>"""

DIM_EXTRA = """
<composite name="dim4">
  <type name="blockLength" primitiveType="uint16"/>
  <type name="numInGroup" primitiveType="uint16"/>
  <type name="numGroups" primitiveType="uint16"/>
  <type name="numVarDataFields" primitiveType="uint16"/>
</composite>"""

DIM_UINT32 = """
<composite name="dim32">
  <type name="blockLength" primitiveType="uint16"/>
  <type name="numInGroup" primitiveType="uint32"/>
</composite>"""


def assert_codecs_agree(gen: ModuleType, otf: OtfCodec, name: str, value: dict[str, Any]) -> bytes:
    """Both codecs encode ``value`` to the same bytes, and both decode those bytes back to ``value``."""
    encoded = gen.encode_dict(name, value)
    assert encoded == otf.encode(name, value)
    assert gen.decode(encoded).to_dict() == value
    assert otf.decode(encoded).fields == value
    return encoded


def line_of(xml: bytes, needle: str) -> int:
    """The 1-based line of the one line of ``xml`` that contains ``needle``."""
    lines = [n for n, text in enumerate(xml.decode().splitlines(), start=1) if needle in text]
    assert len(lines) == 1, (needle, lines)
    return lines[0]


def rejected(types: str, messages: str) -> tuple[SchemaError, bytes]:
    xml = scratch_xml(types, messages)
    with pytest.raises(SchemaError) as info:
        parse_schema_bytes(xml, source="scratch.xml")
    return info.value, xml


# ------------------------------------------------------------------------------------ dimension layout


def test_dimension_member_between_block_length_and_count_is_skipped_by_its_offset() -> None:
    """numInGroup is read at its own offset (4 here), not right after blockLength."""
    _, gen, otf = scratch_codecs(
        DIM_PADDED,
        '<sbe:message name="M" id="1"><group name="g" id="2" dimensionType="dimPad">'
        '<field name="x" id="3" type="uint8"/></group></sbe:message>',
    )
    value = {"g": [{"x": 1}, {"x": 2}, {"x": 3}]}
    encoded = assert_codecs_agree(gen, otf, "M", value)
    assert struct.unpack_from("<HxxH", encoded, HEADER_SIZE) == (1, 3)
    assert len(gen.decode(encoded).g()) == 3
    assert [entry.x for entry in gen.decode(encoded).g()] == [1, 2, 3]
    assert gen.MDecoder.unpack(encoded) == ([(1,), (2,), (3,)],)


@pytest.mark.parametrize("entries", [[{"x": 1}], []], ids=["one-entry", "empty"])
def test_dimension_extra_members_are_written_as_zero_over_a_dirty_buffer(entries: list[Any]) -> None:
    """The whole dimension is written, extra members zero, whatever the buffer held before."""
    _, gen, otf = scratch_codecs(
        DIM_EXTRA,
        '<sbe:message name="M" id="1"><group name="g" id="2" dimensionType="dim4">'
        '<field name="x" id="3" type="uint8"/></group></sbe:message>',
    )
    value = {"g": entries}
    buffer = bytearray(b"\xff" * 64)
    encoded = gen.encode_dict("M", value, buffer=buffer)
    assert encoded == otf.encode("M", value)
    assert bytes(buffer[: len(encoded)]) == encoded
    assert struct.unpack_from("<4H", encoded, HEADER_SIZE) == (1, len(entries), 0, 0)
    assert gen.decode(encoded).to_dict() == value


def test_dimension_extra_members_are_zero_when_a_group_is_jumped_over() -> None:
    """A group skipped on the way to a later section is written empty with a clean dimension."""
    _, gen, otf = scratch_codecs(
        DIM_EXTRA,
        '<sbe:message name="M" id="1"><group name="g" id="2" dimensionType="dim4">'
        '<field name="x" id="3" type="uint8"/></group>'
        '<data name="d" id="4" type="varDataEncoding"/></sbe:message>',
    )
    buffer = bytearray(b"\xff" * 64)
    encoder = gen.MEncoder().wrap_and_apply_header(buffer, 0)
    encoder.put_d(b"\x01")
    encoded = bytes(buffer[: HEADER_SIZE + encoder.encoded_length()])
    assert encoded == otf.encode("M", {"g": [], "d": {"hex": "01"}})


# --------------------------------------------------------------------------- derived names do not clash

SIDE_ENUM = (
    '<enum name="Side" encodingType="uint8"><validValue name="BUY">1</validValue>'
    '<validValue name="SELL">2</validValue></enum>'
)
CHAR4 = '<type name="C4" primitiveType="char" length="4"/>'

DERIVED_NAME_CASES = [
    pytest.param(
        SIDE_ENUM,
        '<field name="side" id="1" type="Side"/><field name="sideRaw" id="2" type="uint8"/>',
        {"side": "SELL", "sideRaw": 99},
        id="enum-side-and-uint8-sideRaw",
    ),
    pytest.param(
        "",
        '<field name="fooStr" id="1" type="uint32"/><data name="foo" id="2" type="varStringEncoding"/>',
        {"fooStr": 5, "foo": "hi"},
        id="uint32-fooStr-and-text-data-foo",
    ),
    pytest.param(
        "",
        '<field name="fooCount" id="1" type="uint32"/>'
        '<group name="foo" id="2"><field name="x" id="3" type="uint8"/></group>',
        {"fooCount": 5, "foo": [{"x": 1}, {"x": 2}]},
        id="uint32-fooCount-and-group-foo",
    ),
    pytest.param(
        "",
        '<field name="putFoo" id="1" type="uint32"/><data name="foo" id="2" type="varDataEncoding"/>',
        {"putFoo": 5, "foo": {"hex": "aa"}},
        id="uint32-putFoo-and-data-foo",
    ),
    pytest.param(
        CHAR4,
        '<field name="name" id="1" type="C4"/><field name="nameBytes" id="2" type="uint32"/>',
        {"name": "ab", "nameBytes": 5},
        id="char4-name-then-uint32-nameBytes",
    ),
    pytest.param(
        CHAR4,
        '<field name="nameBytes" id="1" type="uint32"/><field name="name" id="2" type="C4"/>',
        {"nameBytes": 5, "name": "ab"},
        id="uint32-nameBytes-then-char4-name",
    ),
]


@pytest.mark.parametrize(("types", "body", "value"), DERIVED_NAME_CASES)
def test_derived_accessor_names_do_not_clash_with_field_names(
    types: str, body: str, value: dict[str, Any]
) -> None:
    _, gen, otf = scratch_codecs(types, f'<sbe:message name="M" id="1">{body}</sbe:message>')
    assert_codecs_agree(gen, otf, "M", value)


# --------------------------------------------------------------------- schema text in generated source

AWKWARD_TEXTS = ['the "x"', "ends in a backslash \\", 'has """ triple quotes and \\" an escape']


@pytest.mark.parametrize("text", AWKWARD_TEXTS, ids=["quote", "backslash", "triple-quote"])
@pytest.mark.parametrize("where", ["field", "composite", "schema"])
def test_description_text_cannot_break_the_generated_module(where: str, text: str) -> None:
    attr = f'description="{text.replace("&", "&amp;").replace(chr(34), "&quot;")}"'
    types, messages, description = "", PLAIN_MESSAGE, None
    if where == "field":
        messages = f'<sbe:message name="M" id="1"><field name="x" id="1" type="uint8" {attr}/></sbe:message>'
    elif where == "composite":
        types = f'<composite name="C" {attr}><type name="v" primitiveType="uint8"/></composite>'
        messages = f'<sbe:message name="M" id="1"><field name="x" id="1" type="C" {attr}/></sbe:message>'
    else:
        description = text
    _, gen, otf = scratch_codecs(types, messages, description=description)
    value = {"x": {"v": 3}} if where == "composite" else {"x": 3}
    assert_codecs_agree(gen, otf, "M", value)
    if where == "schema":
        assert gen.__doc__ is not None and " ".join(text.split()) in gen.__doc__


@pytest.mark.parametrize("package", ['t"q', 'p"""', "ends\\"], ids=["quote", "triple-quote", "backslash"])
def test_package_text_cannot_break_the_generated_module(package: str) -> None:
    _, gen, otf = scratch_codecs("", PLAIN_MESSAGE, package=package)
    assert package == gen.SCHEMA_PACKAGE
    assert_codecs_agree(gen, otf, "M", {"x": 3})


INJECTION = 'US-ASCII", print("INJECTED") or "x'


@pytest.mark.parametrize("encoding", [INJECTION, 'a"b', "X-NOSUCH"], ids=["injection", "quote", "unknown"])
def test_character_encoding_must_be_a_known_encoding(encoding: str) -> None:
    escaped = encoding.replace('"', "&quot;")
    err, xml = rejected(
        f'<type name="C4" primitiveType="char" length="4" characterEncoding="{escaped}"/>',
        '<sbe:message name="M" id="1"><field name="c" id="1" type="C4"/></sbe:message>',
    )
    assert f"characterEncoding '{encoding}' is not a known character encoding" in err.problem
    assert err.line == line_of(xml, '<type name="C4"')
    assert str(err).startswith(f"scratch.xml:{err.line}: ")


# ------------------------------------------------------------------------- schema rules on composites


def test_var_data_bytes_must_follow_the_length_directly() -> None:
    err, xml = rejected(
        '<composite name="padVar"><type name="length" primitiveType="uint16"/>'
        '<type name="varData" primitiveType="uint8" length="0" offset="4"/></composite>',
        '<sbe:message name="M" id="1">\n<data name="d" id="2" type="padVar"/>\n</sbe:message>',
    )
    assert "'padVar' must hold its length at offset 0 and its bytes right after it" in err.problem
    assert err.line == line_of(xml, '<data name="d"')


@pytest.mark.parametrize("signed", ["blockLength", "numInGroup"])
def test_dimension_members_must_be_unsigned(signed: str) -> None:
    members = "".join(
        f'<type name="{m}" primitiveType="{"int16" if m == signed else "uint16"}"/>'
        for m in ("blockLength", "numInGroup")
    )
    err, xml = rejected(
        f'<composite name="sdim">{members}</composite>',
        '<sbe:message name="M" id="1">\n<group name="g" id="2" dimensionType="sdim">'
        '<field name="x" id="3" type="uint8"/></group>\n</sbe:message>',
    )
    assert f"'sdim.{signed}' must be an unsigned integer type" in err.problem
    assert err.line == line_of(xml, '<group name="g"')


# ------------------------------------------------------------------------------------------- versions


def test_composite_member_newer_than_the_acting_version_is_null() -> None:
    _, gen, otf = scratch_codecs(
        '<composite name="C"><type name="a" primitiveType="uint32"/>'
        '<type name="b" primitiveType="uint32" sinceVersion="1"/></composite>',
        '<sbe:message name="M" id="1"><field name="c" id="1" type="C"/></sbe:message>',
        version=1,
    )
    encoded = otf.encode("M", {"c": {"a": 1, "b": 2}}, version=0)
    assert struct.unpack_from("<2I", encoded, HEADER_SIZE) == (1, 2)  # b is on the wire, but too new
    expected = {"c": {"a": 1, "b": None}}
    assert otf.decode(encoded).fields == expected
    assert gen.decode(encoded).to_dict() == expected
    composite = gen.decode(encoded).c
    assert (composite.a, composite.b) == (1, None)
    assert gen.MDecoder.unpack(encoded) == (1, None)


# ------------------------------------------------------------------------------ zero-byte group entries

ZERO_BYTE_GROUPS = [
    pytest.param(
        '<group name="g" id="2" dimensionType="dim32">'
        '<field name="x" id="3" type="uint64" sinceVersion="1"/></group>',
        id="fields-newer-than-acting-version",
    ),
    pytest.param('<group name="g" id="2" dimensionType="dim32"/>', id="no-fields"),
]


def huge_zero_byte_group(group: str) -> tuple[ModuleType, OtfCodec, bytes]:
    """A 14-byte message at acting version 0 whose group claims 2**32-1 entries of zero bytes."""
    _, gen, otf = scratch_codecs(
        DIM_UINT32,
        f'<sbe:message name="M" id="1">{group}<data name="d" id="4" type="varDataEncoding"/></sbe:message>',
        version=1,
    )
    header = struct.pack("<4H", 0, 1, 7, 0)
    return gen, otf, header + struct.pack("<HI", 0, 2**32 - 1) + struct.pack("<I", 0)


@pytest.mark.parametrize("group", ZERO_BYTE_GROUPS)
@pytest.mark.parametrize(
    "decode",
    [
        pytest.param(lambda gen, otf, data: list(gen.decode(data).g()), id="flyweight-iterate"),
        pytest.param(lambda gen, otf, data: gen.decode(data).d(), id="flyweight-skip-to-var-data"),
        pytest.param(lambda gen, otf, data: gen.decode(data).to_dict(), id="to_dict"),
        pytest.param(lambda gen, otf, data: gen.MDecoder.unpack(data), id="unpack"),
        pytest.param(lambda gen, otf, data: otf.decode(data), id="otf"),
    ],
)
def test_huge_count_of_zero_byte_entries_is_rejected_not_walked(group: str, decode: Any) -> None:
    """No bytes bound the loop, so the count must be: a regression here hangs instead of failing."""
    gen, otf, data = huge_zero_byte_group(group)
    with pytest.raises(CodecError, match="4294967295"):
        decode(gen, otf, data)


# ---------------------------------------------------------------------------- enum and set member names


@pytest.mark.parametrize(
    ("types", "values"),
    [
        pytest.param(
            '<enum name="E" encodingType="uint8"><validValue name="A">1</validValue>'
            '<validValue name="NULL_VALUE">2</validValue></enum>',
            ["A", "NULL_VALUE", None],
            id="enum-NULL_VALUE",
        ),
        pytest.param(
            '<enum name="E" encodingType="uint8"><validValue name="name">1</validValue>'
            '<validValue name="name_">2</validValue></enum>',
            ["name", "name_", None],
            id="enum-name-and-name_",
        ),
        pytest.param(
            '<enum name="E" encodingType="uint8"><validValue name="_x">1</validValue>'
            '<validValue name="x_">2</validValue></enum>',
            ["_x", "x_", None],
            id="enum-_x-and-x_",
        ),
        pytest.param(
            '<set name="E" encodingType="uint8"><choice name="value">0</choice>'
            '<choice name="value_">1</choice></set>',
            [["value"], ["value_"], ["value", "value_"], []],
            id="set-value-and-value_",
        ),
    ],
)
def test_enum_and_set_member_names_that_python_would_mangle_stay_distinct(
    types: str, values: list[Any]
) -> None:
    _, gen, otf = scratch_codecs(types, E_MESSAGE)
    encodings = [assert_codecs_agree(gen, otf, "M", {"e": value}) for value in values]
    assert len(set(encodings)) == len(values)


# ------------------------------------------------------------------------------ type names vs. globals


@pytest.mark.parametrize(
    ("types", "body", "value"),
    [
        pytest.param(
            '<enum name="CodecError" encodingType="uint8"><validValue name="A">1</validValue></enum>',
            '<field name="e" id="1" type="CodecError"/>',
            {"e": "A"},
            id="enum-CodecError",
        ),
        pytest.param(
            '<enum name="SCHEMA_ID" encodingType="uint8"><validValue name="A">1</validValue></enum>',
            '<field name="e" id="1" type="SCHEMA_ID"/>',
            {"e": "A"},
            id="enum-SCHEMA_ID",
        ),
        pytest.param(
            '<enum name="FooDecoder" encodingType="uint8"><validValue name="A">1</validValue></enum>'
            '<composite name="Foo"><type name="x" primitiveType="uint8"/></composite>',
            '<field name="e" id="1" type="FooDecoder"/><field name="f" id="2" type="Foo"/>',
            {"e": "A", "f": {"x": 3}},
            id="enum-FooDecoder-and-composite-Foo",
        ),
        pytest.param(
            '<composite name="MDecoder"><type name="x" primitiveType="uint8"/></composite>',
            '<field name="f" id="1" type="MDecoder"/>',
            {"f": {"x": 3}},
            id="composite-MDecoder-and-message-M",
        ),
        pytest.param(
            '<composite name="M"><type name="x" primitiveType="uint8"/></composite>',
            '<field name="f" id="1" type="M"/>',
            {"f": {"x": 3}},
            id="composite-M-and-message-M",
        ),
    ],
)
def test_type_names_do_not_shadow_module_globals(types: str, body: str, value: dict[str, Any]) -> None:
    _, gen, otf = scratch_codecs(types, f'<sbe:message name="M" id="1">{body}</sbe:message>')
    encoded = assert_codecs_agree(gen, otf, "M", value)
    assert gen.CodecError is runtime_errors.CodecError
    assert type(gen.SCHEMA_ID) is int and gen.SCHEMA_ID == 7
    decoded = gen.decode(encoded)
    assert type(decoded) is gen.MESSAGES_BY_NAME["M"][0] is gen.DECODERS[1]
    assert type(decoded).unpack(encoded) == unpack_record(gen.decode(encoded))
    # every class the codec hands out is the module global of that name, not one shadowed by another
    for cls in [type(decoded), *(type(getattr(decoded, name)) for name in value)]:
        assert getattr(gen, cls.__name__) is cls


def test_enum_named_codec_error_leaves_error_paths_raising_codec_error() -> None:
    _, gen, _ = scratch_codecs(
        '<enum name="CodecError" encodingType="uint8"><validValue name="A">1</validValue></enum>',
        '<sbe:message name="M" id="1"><field name="e" id="1" type="CodecError"/>'
        '<group name="g" id="2"><field name="x" id="3" type="uint8"/></group>'
        '<data name="d" id="4" type="varDataEncoding"/></sbe:message>',
    )
    encoder = gen.MEncoder().wrap_and_apply_header(bytearray(12), 0)
    with pytest.raises(runtime_errors.CodecError):
        encoder.put_d(b"x" * 100)
    encoder = gen.MEncoder().wrap_and_apply_header(bytearray(64), 0)
    with pytest.raises(runtime_errors.EncodeValueError):
        encoder.g_count("2")


# ---------------------------------------------------------------------------------------- null values

ENUM_NULL_CASES = [
    pytest.param(
        '<type name="u8o" primitiveType="uint8" presence="optional" nullValue="0"/>'
        '<enum name="E" encodingType="u8o"><validValue name="A">1</validValue></enum>',
        id="encodingType-optional-named-type",
    ),
    pytest.param(
        '<enum name="E" encodingType="uint8" presence="optional" nullValue="0">'
        '<validValue name="A">1</validValue></enum>',
        id="nullValue-on-the-enum",
    ),
    pytest.param(
        '<type name="u8" primitiveType="uint8"/>'
        '<enum name="E" encodingType="u8" presence="optional" nullValue="0">'
        '<validValue name="A">1</validValue></enum>',
        id="nullValue-on-the-enum-over-a-named-type",
    ),
]


@pytest.mark.parametrize("types", ENUM_NULL_CASES)
def test_enum_declared_null_value_decodes_to_none_and_encodes_from_none(types: str) -> None:
    _, gen, otf = scratch_codecs(types, E_MESSAGE)
    encoded = assert_codecs_agree(gen, otf, "M", {"e": None})
    assert encoded[HEADER_SIZE:] == b"\x00"
    assert assert_codecs_agree(gen, otf, "M", {"e": "A"})[HEADER_SIZE:] == b"\x01"


def test_optional_float_null_value_round_trips_through_float32() -> None:
    """nullValue 0.1 is not a float32; the null is the float32 nearest it, on both sides."""
    _, gen, otf = scratch_codecs(
        '<type name="F" primitiveType="float" presence="optional" nullValue="0.1"/>',
        '<sbe:message name="M" id="1"><field name="f" id="1" type="F"/></sbe:message>',
    )
    encoded = assert_codecs_agree(gen, otf, "M", {"f": None})
    assert encoded[HEADER_SIZE:] == struct.pack("<f", 0.1)
    assert gen.decode(encoded).f is None
    assert_codecs_agree(gen, otf, "M", {"f": 0.5})


# ------------------------------------------------------------------------------ encoder input strictness

STRICT_TYPES = (
    '<type name="C4" primitiveType="char" length="4"/>'
    '<type name="OA" primitiveType="int32" length="2" presence="optional"/>'
)
STRICT_MESSAGE = (
    '<sbe:message name="M" id="1"><field name="c4" id="1" type="C4"/><field name="c1" id="2" type="char"/>'
    '<field name="oa" id="3" type="OA"/><field name="n" id="4" type="uint32"/>'
    '<group name="g" id="5"><field name="x" id="6" type="uint8"/></group>'
    '<data name="d" id="7" type="varDataEncoding"/></sbe:message>'
)
STRICT_VALUE = {"c4": "ab", "c1": "x", "oa": [1, 2], "n": 5, "g": [{"x": 1}], "d": {"hex": "aa"}}


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"c4": None}, id="required-char4-None"),
        pytest.param({"c1": None}, id="required-char-None"),
        pytest.param({"oaa": [3, 4]}, id="misspelled-key"),
        pytest.param({"c4": 3}, id="char4-given-an-int"),
        pytest.param({"n": True}, id="bool-for-uint32"),
        pytest.param({"g": [{"x": True}]}, id="bool-for-uint8-in-group"),
    ],
)
def test_encoders_reject_values_that_do_not_fit_the_field(change: dict[str, Any]) -> None:
    _, gen, otf = scratch_codecs(STRICT_TYPES, STRICT_MESSAGE)
    assert_codecs_agree(gen, otf, "M", STRICT_VALUE)
    value = {**STRICT_VALUE, **change}
    with pytest.raises(EncodeValueError):
        gen.encode_dict("M", value)
    with pytest.raises(EncodeValueError):
        otf.encode("M", value)


def test_optional_array_given_none_encodes_null_elements() -> None:
    _, gen, otf = scratch_codecs(STRICT_TYPES, STRICT_MESSAGE)
    value = {**STRICT_VALUE, "oa": None}
    encoded = gen.encode_dict("M", value)
    assert encoded == otf.encode("M", value)
    assert struct.unpack_from("<2i", encoded, HEADER_SIZE + 5) == (-(2**31), -(2**31))


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda encoder: encoder.put_d("abc"), id="binary-put_d-str"),
        pytest.param(lambda encoder: encoder.put_d(5), id="binary-put_d-int"),
        pytest.param(lambda encoder: encoder.g_count("2"), id="group-count-str"),
    ],
)
def test_flyweight_encoder_rejects_wrong_section_input(write: Any) -> None:
    _, gen, _ = scratch_codecs(STRICT_TYPES, STRICT_MESSAGE)
    encoder = gen.MEncoder().wrap_and_apply_header(bytearray(128), 0)
    with pytest.raises(EncodeValueError):
        write(encoder)


# ------------------------------------------------------------------------------------------- buffers


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            '<field name="x" id="1" type="uint32"/><data name="d" id="2" type="varDataEncoding"/>',
            id="with-var-data",
        ),
        pytest.param('<field name="x" id="1" type="uint32"/>', id="block-only"),
    ],
)
@pytest.mark.parametrize(
    "decode",
    [
        pytest.param(lambda gen, otf, view: gen.decode(view).to_dict(), id="generated-decode"),
        pytest.param(lambda gen, otf, view: gen.MDecoder.unpack(view), id="generated-unpack"),
        pytest.param(lambda gen, otf, view: otf.decode(view), id="otf-decode"),
    ],
)
def test_non_contiguous_memoryview_is_rejected(body: str, decode: Any) -> None:
    _, gen, otf = scratch_codecs("", f'<sbe:message name="M" id="1">{body}</sbe:message>')
    value = {"x": 5, "d": {"hex": "aa"}} if "<data" in body else {"x": 5}
    encoded = assert_codecs_agree(gen, otf, "M", value)
    view = memoryview(bytes(b for byte in encoded for b in (byte, 0)))[::2]
    assert bytes(view) == encoded and not view.c_contiguous
    with pytest.raises(CodecError, match="C-contiguous"):
        decode(gen, otf, view)


def test_a_schema_file_name_cannot_add_lines_to_the_generated_module() -> None:
    from codegen.targets.python import render_module

    schema = parse_schema_bytes(scratch_xml("", '<sbe:message name="M" id="1"/>'), source="x.xml")
    text = render_module(schema, "scratch", "evil.xml\nraise SystemExit('injected')\n#")
    assert "\nraise SystemExit" not in text
    compile(text, "<generated>", "exec")  # still a valid module
