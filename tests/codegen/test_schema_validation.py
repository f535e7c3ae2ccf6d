"""The schema parser rejects every SBE rule violation with a SchemaError that says where and what.

Each file in ``tests/testdata/bad_schemas`` breaks exactly one rule (its opening comment says which)
and marks the offending line with ``<!-- ERROR -->`` (or ``<!-- ERROR: next line -->`` just above it,
where the offending element's start tag spans several lines).  ``BAD_SCHEMAS`` records, per file, the
line the error must name and words the message must contain; ``str(error)`` must start with
``"<file>:<line>: "`` so an editor can jump to it.

The fuzz test mutates valid schemas (our own and the tests' own; and the SBE and Aeron references
where the shared reference directory is there) the way a careless edit would -- drop an attribute,
put garbage in a value, duplicate, delete or reorder elements, truncate the file -- and checks that
the parser either accepts the result or raises SchemaError: a raw ``KeyError``/``ValueError``/lxml
error escaping is a bug (errors name file and line, ``docs/ARCHITECTURE.md``).  Hypothesis
prints the failing example and keeps it in its database, so a failure reproduces on the next run.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from support.needs import need_reference
from support.paths import CAR_SCHEMAS, REFERENCE_SCHEMAS, SCHEMAS, TEST_SCHEMAS, TESTDATA

from codegen.ir import dump
from codegen.schema import SchemaError, load_schema, parse_schema_bytes

BAD = TESTDATA / "bad_schemas"

# file -> (line the error must name, words the message must contain)
BAD_SCHEMAS: dict[str, tuple[int, str]] = {
    # identity: names and ids are unique where the spec says so
    "duplicate-message-id.xml": (15, "duplicate message id 7"),
    "duplicate-message-name.xml": (15, "duplicate message name 'Same'"),
    "duplicate-type-name.xml": (12, "duplicate type name 'Price'"),
    "duplicate-field-name.xml": (14, "duplicate name 'qty' in message 'Msg'"),
    "duplicate-field-id.xml": (14, "duplicate id 1 in message 'Msg'"),
    "duplicate-group-field-name.xml": (19, "duplicate name 'px' in group 'entries'"),
    "duplicate-group-field-id.xml": (19, "duplicate id 3 in group 'entries'"),
    "duplicate-composite-member.xml": (13, "duplicate member name 'x' in composite 'Pair'"),
    "duplicate-enum-value.xml": (13, "'Sell' repeats the value of 'Buy'"),
    "duplicate-set-choice-bit.xml": (13, "'b' repeats bit 3 of 'a'"),
    "invalid-name.xml": (14, "'2fast' is not a valid SBE symbolic name"),
    "non-integer-id.xml": (14, "id='two' is not an integer"),
    # references resolve
    "unknown-field-type.xml": (14, "unknown type 'NoSuchType'"),
    "unknown-ref-type.xml": (13, "unknown type 'NoSuchComposite'"),
    "unknown-dimension-type.xml": (13, "unknown type 'NoSuchDimension'"),
    "unknown-encoding-type.xml": (11, "unknown encodingType 'NoSuchType'"),
    "unknown-data-type.xml": (14, "unknown type 'NoSuchVarData'"),
    "unknown-primitive-type.xml": (11, "unknown primitive type 'int128'"),
    "missing-field-type.xml": (14, "missing the required attribute 'type'"),
    "type-reference-cycle.xml": (11, "type reference cycle: Alpha -> Beta -> Alpha"),
    "value-ref-missing-value.xml": (17, "enum 'TimeUnit' has no value 'minute'"),
    "value-ref-not-enum.xml": (14, "names 'Count', which is not an enum"),
    "value-ref-without-constant.xml": (17, "valueRef is only allowed when presence is constant"),
    "value-ref-out-of-range.xml": (14, "100000"),
    "float-null-out-of-range.xml": (11, "does not fit in float"),
    "header-type-missing.xml": (3, "headerType 'customHeader' is not a composite"),
    # layout
    "overlapping-field-offset.xml": (14, "field 'b' at offset 4 overlaps"),
    "overlapping-member-offset.xml": (13, "member 'second' at offset 6 overlaps"),
    "block-length-too-small.xml": (12, "blockLength=8 of message 'Msg' is smaller than its fields need (12)"),
    "field-after-data.xml": (19, "field 'b' in message 'Msg' comes after a group or var data"),
    "group-after-data.xml": (23, "group 'entries' in message 'Msg' comes after var data"),
    "field-after-group.xml": (21, "field 'b' in message 'Msg' comes after a group or var data"),
    "unexpected-element-in-message.xml": (14, "unexpected <ref> in message 'Msg'"),
    # values and ranges
    "enum-value-out-of-range.xml": (13, "'Code.huge' = 300 is outside the uint8 range"),
    "char-enum-two-characters.xml": (13, "'Side.Sell' must be one character"),
    "enum-float-encoding.xml": (11, "enum 'Level' cannot be encoded as double"),
    "set-choice-bit-out-of-range.xml": (13, "'Flags.high' bit 8 is outside 0..7"),
    "set-signed-encoding.xml": (11, "set 'Flags' must be encoded as an unsigned integer"),
    "invalid-presence.xml": (11, "presence='sometimes' is not one of required, optional, constant"),
    "constant-without-value.xml": (11, "constant type 'Venue' has no value"),
    "null-value-on-required.xml": (11, "nullValue is only allowed when presence is optional"),
    "min-greater-than-max.xml": (11, "minValue 100 is greater than maxValue 0"),
    "invalid-byte-order.xml": (3, "byteOrder='middleEndian'"),
    "unknown-character-encoding.xml": (11, "'X-NO-SUCH-CHARSET' is not a known character encoding"),
    "character-encoding-with-quote.xml": (11, "is not a known character encoding"),
    # versioning
    "since-version-field.xml": (14, "sinceVersion=3 is above the schema version 2"),
    "since-version-group.xml": (18, "sinceVersion=2 is above the schema version 1"),
    "since-version-data.xml": (18, "sinceVersion=5 is above the schema version 1"),
    "since-version-type.xml": (11, "sinceVersion=4 is above the schema version 1"),
    "since-version-valid-value.xml": (13, "sinceVersion=2 is above the schema version 1"),
    # headers, dimensions and var data composites
    "header-missing-template-id.xml": (5, "header composite 'messageHeader' has no 'templateId' member"),
    "dimension-type-not-composite.xml": (14, "dimensionType 'Count' of group 'entries' is not a composite"),
    "dimension-missing-num-in-group.xml": (17, "has no 'numInGroup' member"),
    "var-data-missing-length.xml": (17, "composite 'badVarData' needs members 'length' and 'varData'"),
    "var-data-missing-var-data.xml": (17, "composite 'badVarData' needs members 'length' and 'varData'"),
    "var-data-int64-length.xml": (17, "the length of 'badVarData' must be uint8, uint16 or uint32"),
    "var-data-not-after-length.xml": (17, "its bytes right after it (found length @0, varData @4)"),
    "dimension-signed-block-length.xml": (17, "'signedDim.blockLength' must be an unsigned integer type"),
    "dimension-signed-num-in-group.xml": (17, "'signedDim.numInGroup' must be an unsigned integer type"),
    "group-block-length-exceeds-dimension.xml": (17, "blockLength"),
    "message-id-exceeds-header.xml": (12, "message 'Msg' id 70000 does not fit in the header's templateId"),
    # the document itself
    "not-well-formed.xml": (14, "not well-formed XML"),
    "wrong-root-element.xml": (3, "the root element is <types>, not <messageSchema>"),
    "xinclude-error-in-included-file.xml": (10, "unknown primitive type 'uint128'"),
    "xinclude-missing-file.xml": (5, "XInclude failed"),
    "multiline-start-tag.xml": (14, "blockLength=2 of message 'Msg' is smaller than its fields need (8)"),
    "char-constant-longer-than-length.xml": (11, "constant"),
}

# Errors inside an XIncluded file name that file, not the one that includes it.
REPORTED_IN: dict[str, str] = {
    "xinclude-error-in-included-file.xml": "include/types-with-unknown-primitive.xml",
}

ERROR_MARK = "<!-- ERROR -->"
ERROR_NEXT_LINE_MARK = "<!-- ERROR: next line -->"


def _marked_lines(path: Path) -> list[int]:
    lines = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if ERROR_MARK in text:
            lines.append(number)
        elif ERROR_NEXT_LINE_MARK in text:
            lines.append(number + 1)
    return lines


def _bad_cases() -> list[object]:
    cases = []
    for name, (line, words) in BAD_SCHEMAS.items():
        cases.append(pytest.param(name, line, words, id=name.removesuffix(".xml")))
    return cases


def test_every_bad_schema_file_is_in_the_table() -> None:
    on_disk = {p.name for p in BAD.glob("*.xml")}
    untabled, missing = sorted(on_disk - set(BAD_SCHEMAS)), sorted(set(BAD_SCHEMAS) - on_disk)
    assert not untabled and not missing, f"untabled files: {untabled}; missing files: {missing}"


@pytest.mark.parametrize("name", sorted(BAD_SCHEMAS))
def test_table_line_matches_the_error_marker(name: str) -> None:
    reported = BAD / REPORTED_IN.get(name, name)
    assert _marked_lines(reported) == [BAD_SCHEMAS[name][0]]


@pytest.mark.parametrize(("name", "line", "words"), _bad_cases())
def test_bad_schema_is_rejected_naming_file_line_and_problem(name: str, line: int, words: str) -> None:
    path = BAD / name
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    err = info.value
    reported = BAD / REPORTED_IN.get(name, name)
    assert str(err).startswith(f"{reported}:{line}: "), str(err)
    assert words in err.problem, str(err)
    assert err.file == str(reported) and err.line == line


def test_error_names_the_path_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BAD)
    with pytest.raises(SchemaError) as info:
        load_schema("invalid-name.xml")
    assert str(info.value).startswith("invalid-name.xml:14: ")


def test_in_memory_schema_errors_name_the_source() -> None:
    data = (BAD / "duplicate-type-name.xml").read_bytes()
    with pytest.raises(SchemaError) as info:
        parse_schema_bytes(data, source="<editor buffer>")
    assert str(info.value).startswith("<editor buffer>:12: duplicate type name 'Price'")


# --------------------------------------------------------------------------------------------- fuzz


# Valid schemas to mutate: the project's own, and the references (listed by name) where they are there.
VALID_SCHEMAS = {
    "project": [*sorted(SCHEMAS.glob("*.xml")), CAR_SCHEMAS[0], *sorted(TEST_SCHEMAS.glob("*.xml"))],
    "reference": REFERENCE_SCHEMAS,
}

GARBAGE = [
    "",
    " ",
    "x",
    "-1",
    "0",
    "1.5",
    "0x",
    "NaN",
    "inf",
    "1e9",
    "99999999999999999999",
    "65536",
    "4294967296",
    "\u0663",
    "a.b",
    "Enum.",
    ".x",
    "constant",
    "optional",
    "uint8",
    "char",
    "int128",
    "messageHeader",
    "groupSizeEncoding",
    "&amp;",
    "\U0001f600",
]
NUMBER = re.compile(r"^\s*-?\d+\s*$")


def _elements(root: etree._Element) -> list[etree._Element]:
    return [e for e in root.iter() if isinstance(e.tag, str)]


@st.composite
def mutated_schemas(draw: st.DrawFn, paths: list[Path]) -> tuple[Path, bytes]:
    """A valid schema of ``paths`` with one to three careless edits applied."""
    path = draw(st.sampled_from(paths))
    root = etree.fromstring(path.read_bytes())
    for _ in range(draw(st.integers(1, 3))):
        elements = _elements(root)
        kind = draw(
            st.sampled_from(
                ["drop-attr", "garbage-attr", "garbage-number", "garbage-text", "duplicate", "delete", "swap"]
            )
        )
        el = elements[draw(st.integers(0, len(elements) - 1))]
        if kind == "drop-attr" and el.attrib:
            del el.attrib[draw(st.sampled_from(sorted(el.attrib)))]
        elif kind == "garbage-attr" and el.attrib:
            el.set(draw(st.sampled_from(sorted(el.attrib))), draw(st.sampled_from(GARBAGE)))
        elif kind == "garbage-number":
            numeric = [(e, k) for e in elements for k, v in e.attrib.items() if NUMBER.match(v)]
            numeric += [(e, None) for e in elements if e.text and NUMBER.match(e.text)]
            if numeric:
                target, key = numeric[draw(st.integers(0, len(numeric) - 1))]
                value = draw(st.sampled_from(GARBAGE))
                if key is None:
                    target.text = value
                else:
                    target.set(key, value)
        elif kind == "garbage-text" and el is not root:
            el.text = draw(st.sampled_from(GARBAGE))
        elif kind == "duplicate" and el is not root:
            el.addnext(copy.deepcopy(el))
        elif kind == "delete" and el is not root:
            parent = el.getparent()
            assert parent is not None
            parent.remove(el)
        elif kind == "swap":
            children = [c for c in el if isinstance(c.tag, str)]
            if len(children) >= 2:
                i = draw(st.integers(0, len(children) - 2))
                j = draw(st.integers(i + 1, len(children) - 1))
                a, b = children[i], children[j]
                marker = etree.Element("swap-marker")
                a.addprevious(marker)
                b.addprevious(a)
                marker.addprevious(b)
                el.remove(marker)
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    if draw(st.integers(0, 19)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return path, data


@pytest.mark.parametrize("pool", [pytest.param(paths, id=pool) for pool, paths in VALID_SCHEMAS.items()])
@settings(max_examples=200, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
@given(draws=st.data())
def test_mutated_schemas_raise_nothing_but_schema_error(pool: list[Path], draws: st.DataObject) -> None:
    path, data = draws.draw(mutated_schemas([need_reference(p) for p in pool]), label="case")
    try:
        schema = parse_schema_bytes(data, source=str(path), base_dir=path.parent)
    except SchemaError as err:
        assert err.line is None or err.line >= 1
        assert str(err).startswith(f"{err.file}:{err.line if err.line is not None else '?'}: ")
        assert err.problem
        return
    dump(schema)
