"""The generated Python of a small schema of ours, pinned by golden files, and shown to work.

``tests/testdata/generated/showcase.xml`` has one message with every kind of field -- primitives of
several types, an optional one, one added in a later version, an enum over uint8 and one over char,
a set, an array, a char array, a composite with bytes and one without, a group with a nested group
and var data, var data with two length types -- and one message of no fields.  Its module is compared
with ``showcase.py.txt`` beside it, so a change to the generator shows up as a diff of generated code
and is reviewed like code; ``pytest --rewrite`` regenerates it.  The same schema made big-endian must
render to that golden text with only the byte order changed (``<`` formats become ``>``, ``_LE`` names
``_BE``, and the schema's hash): no second golden file to review.

A golden file pins text, not behaviour; the tests after the comparison import the same modules and
check they encode and decode as the OTF codec does, put every value in its byte order at its offset,
and handle the shapes only this schema reaches (a block of no bytes, a composite of no bytes, group
entries of no values, a group dimension with a member besides ``blockLength`` and ``numInGroup``).
"""

from __future__ import annotations

import math
import re
import struct
from functools import cache
from types import ModuleType
from typing import Any

import pytest
from support.generated_import import import_schema
from support.golden import check_golden, text_diff
from support.paths import TESTDATA

from codegen.ir.model import Schema
from codegen.otf import OtfCodec
from codegen.runtime.errors import BufferTooShortError, EncodeValueError
from codegen.runtime.records import unpack_record
from codegen.schema import parse_schema_bytes
from codegen.targets.python import render_module

GOLDEN_DIR = TESTDATA / "generated"
SCHEMA_PATH = GOLDEN_DIR / "showcase.xml"
VARIANTS = ("big-endian", "little-endian")
GOLDEN = GOLDEN_DIR / "showcase.py.txt"

# One Order with every field set (discount null), in the JSON form of docs/sbe-json.md.
ORDER: dict[str, Any] = {
    "orderId": 2**64 - 2,
    "price": {"mantissa": -12345},
    "quantity": -7,
    "side": "SELL",
    "flags": ["urgent", "hidden"],
    "symbol": "ABCDEF",
    "weights": [1, 2, 3, 4],
    "ratio": 0.5,
    "grade": "B",
    "venue": {},
    "discount": None,
    "expireTime": 1_700_000_000,
    "fills": [
        {
            "fillPrice": {"mantissa": 10},
            "fillQty": 3,
            "legs": [{"tag": {"hex": ""}}, {"tag": {"hex": "07"}}, {"tag": {"hex": ""}}],
            "note": "first",
        },
        {"fillPrice": {"mantissa": 11}, "fillQty": 4, "legs": [], "note": ""},
    ],
    "comment": "h\u00e9llo",
    "payload": {"hex": "00ff"},
}


@cache
def showcase_schema(variant: str) -> Schema:
    source = SCHEMA_PATH.read_bytes()
    if variant == "big-endian":
        source = source.replace(b'byteOrder="littleEndian"', b'byteOrder="bigEndian"')
        assert b'byteOrder="bigEndian"' in source
    return parse_schema_bytes(source, source=str(SCHEMA_PATH))


def showcase_text(variant: str) -> str:
    return render_module(showcase_schema(variant), "showcase", SCHEMA_PATH.name)


@cache
def showcase(variant: str) -> ModuleType:
    return import_schema(showcase_schema(variant), f"showcase_{variant.replace('-', '_')}")


def test_generated_module_matches_golden(rewrite: bool) -> None:
    actual = showcase_text("little-endian")
    check_golden(GOLDEN, actual, rewrite=rewrite, what="the generated module", actual_name="generated")


def _as_big_endian(little: str) -> str:
    """The golden little-endian module with its byte order, and nothing else, changed."""
    text = re.sub(r'Struct\("<', 'Struct(">', little)
    text = re.sub(r"(_[A-Z0-9]+)_LE(?![A-Za-z0-9])", r"\1_BE", text)
    text = text.replace('"littleEndian"', '"bigEndian"').replace("(LE: littleEndian)", "(BE: bigEndian)")
    little_sha = showcase_schema("little-endian").sha256
    return text.replace(little_sha, showcase_schema("big-endian").sha256)


def test_big_endian_module_differs_from_the_golden_only_in_byte_order() -> None:
    expected = _as_big_endian(GOLDEN.read_text(encoding="utf-8"))
    actual = showcase_text("big-endian")
    assert expected != GOLDEN.read_text(encoding="utf-8")
    if actual != expected:
        diff = text_diff(expected, actual, "expected", "big-endian")
        pytest.fail("the big-endian module differs in more than byte order:\n" + diff)


def test_no_stale_golden_files() -> None:
    """The one generated-code golden file is the one tested here (a rename leaves none behind)."""
    assert {p.name for p in GOLDEN_DIR.glob("*.py.txt")} == {GOLDEN.name}


def _plain(value: Any) -> Any:
    """A raw tuple made comparable: views as bytes, NaN (a float null) as a marker, lists as tuples."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    return value


@pytest.mark.parametrize("variant", VARIANTS)
def test_order_round_trips_and_matches_the_otf_codec(variant: str) -> None:
    module = showcase(variant)
    otf = OtfCodec(showcase_schema(variant))
    data = module.encode_dict("Order", ORDER)
    assert data == otf.encode("Order", ORDER)
    assert module.decode(data).to_dict() == ORDER
    assert otf.decode(data).fields == ORDER
    fast = module.OrderDecoder.unpack(data)
    general = unpack_record(module.OrderDecoder().wrap_header(data))
    assert _plain(fast) == _plain(general)
    # the legs of the first fill: three entries of no values (a block of padding only), then their tags
    assert _plain(fast[-3][0][2]) == ((b"",), (b"\x07",), (b"",))


@pytest.mark.parametrize(("variant", "order"), [("little-endian", "<"), ("big-endian", ">")])
def test_each_value_is_at_its_offset_in_the_schema_byte_order(variant: str, order: str) -> None:
    data = showcase(variant).encode_dict("Order", ORDER)
    body = 8  # after the message header
    assert struct.unpack_from(f"{order}HHHH", data) == (66, 1, 42, 2)
    assert struct.unpack_from(f"{order}Q", data, body + 0)[0] == ORDER["orderId"]
    assert struct.unpack_from(f"{order}q", data, body + 8)[0] == ORDER["price"]["mantissa"]
    assert struct.unpack_from(f"{order}i", data, body + 16)[0] == ORDER["quantity"]
    assert struct.unpack_from(f"{order}H", data, body + 21)[0] == 0b1001  # urgent (bit 0), hidden (bit 3)
    assert struct.unpack_from(f"{order}4I", data, body + 29) == (1, 2, 3, 4)
    assert struct.unpack_from(f"{order}d", data, body + 45)[0] == ORDER["ratio"]
    assert struct.unpack_from(f"{order}Q", data, body + 58)[0] == ORDER["expireTime"]
    fills = body + 66
    assert struct.unpack_from(f"{order}HH", data, fills) == (12, 2)
    assert struct.unpack_from(f"{order}H2xB", data, fills + 4 + 12) == (4, 3)  # legDimension


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_message_of_no_fields_has_a_block_of_no_bytes(variant: str) -> None:
    module = showcase(variant)
    buffer = bytearray(8)
    encoder = module.HeartbeatEncoder().wrap_and_apply_header(buffer, 0)
    assert encoder.encoded_length() == 0
    assert module.HeartbeatDecoder.unpack(bytes(buffer)) == ()
    assert module.decode(bytes(buffer)).read_block() == ()
    module.HeartbeatEncoder().wrap(bytearray(0), 0)  # nothing to write, nothing to clear
    with pytest.raises(EncodeValueError, match="not writable"):
        module.HeartbeatEncoder().wrap(bytes(8), 0)
    with pytest.raises(EncodeValueError, match="not writable"):
        module.OrderEncoder().wrap(bytes(66), 0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_composite_of_no_bytes_has_no_layout(variant: str) -> None:
    module = showcase(variant)
    assert module.VenueDecoder.LAYOUT is None and module.VenueEncoder.LAYOUT is None
    assert module.VenueDecoder.unpack(b"", 0) == ()
    assert module.VenueDecoder.unpack(b"ab", 2) == ()
    with pytest.raises(BufferTooShortError):
        module.VenueDecoder.unpack(b"ab", 3)
    with pytest.raises(BufferTooShortError):
        module.VenueDecoder.unpack(b"ab", -1)
    assert module.VenueDecoder().wrap(b"", 0).region == "EU"


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_truncated_entry_of_no_values_falls_back_to_the_precise_error(variant: str) -> None:
    """The fast path reads no struct for an entry of no values, so it checks the bytes itself."""
    module = showcase(variant)
    data = module.encode_dict("Order", ORDER)
    for end in range(8 + 66, len(data)):
        with pytest.raises(BufferTooShortError):
            module.OrderDecoder.unpack(data[:end])
