"""The generated plugins on captures of our own making: every SBE test schema of the codec tests and
hypothesis-made random schemas, with random messages written into Aeron DATA frames (fragmented when
longer than a frame, several small frames to a datagram), dissected by tshark. Every message's fields
equal the Python codec's; damaged and truncated messages are marked malformed exactly when the codec
refuses them, and never raise a Lua error.

tshark runs once per batch of schemas (their ids and packages distinct, so their plugins can be loaded
together), not once per message, to keep the suite fast.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support.needs import need_program, need_reference
from support.paths import AERON_SCHEMAS, OWN_TEST_SCHEMAS, SBE_EXAMPLE_SCHEMAS, SBE_TEST_SCHEMAS
from support.random_schemas import schemas as random_schemas
from support.sbe_values import values_for
from support.tshark_sbe import (
    PI_WARN,
    AeronWriter,
    TsharkSbe,
    dissect_json,
    dissected_messages,
    tshark_command,
    write_aeron_capture,
    write_plugins,
)

from codegen import load_schema
from codegen.ir import CompositeType, Schema
from codegen.otf import OtfCodec
from codegen.runtime.errors import CodecError, EncodeValueError
from codegen.schema import parse_schema_bytes
from codegen.targets.lua.context import proto_name, text_kind

pytestmark = pytest.mark.interop

TSHARK = need_program("tshark")
SCHEMA_FILES = [*SBE_TEST_SCHEMAS, *SBE_EXAMPLE_SCHEMAS, *OWN_TEST_SCHEMAS, *AERON_SCHEMAS]
MALFORMED = 0x00800000  # expert severity error
# A failing example is kept as it is: shrinking would rerun tshark hundreds of times.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
SLOW_OK = [
    HealthCheck.function_scoped_fixture,
    HealthCheck.large_base_example,
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
]


def normalize(value: Any) -> Any:
    """NaN equal to itself, for comparing decoded values."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def same(shown: Any, decoded: Any) -> bool:
    """Equal, but floats only to the digits Wireshark prints (FLT_DIG, 6, for a float; DBL_DIG, 15, for a
    double: its JSON and text show no more)."""
    if isinstance(shown, float) and isinstance(decoded, float):
        if math.isinf(shown) and not math.isinf(decoded):  # DBL_MAX to 15 digits reads back as infinity
            return abs(decoded) > 1.7976931348623e308 and (shown > 0) == (decoded > 0)
        return math.isclose(shown, decoded, rel_tol=1e-5, abs_tol=1e-300) or shown == decoded
    if isinstance(shown, str) and isinstance(decoded, str):  # a Wireshark string ends at its first NUL
        return shown == decoded.split("\x00")[0]
    if isinstance(shown, dict) and isinstance(decoded, dict):
        return shown.keys() == decoded.keys() and all(same(shown[k], decoded[k]) for k in shown)
    if isinstance(shown, list) and isinstance(decoded, list):
        return len(shown) == len(decoded) and all(same(a, b) for a, b in zip(shown, decoded, strict=True))
    return bool(shown == decoded)


def header_layout(schema: Schema) -> tuple[Any, ...]:
    return (schema.header.size, schema.byte_order, dump_header(schema))


def dump_header(schema: Schema) -> tuple[Any, ...]:
    return tuple((m.name, m.offset, m.size) for m in schema.header.members)


def batches(schemas: Sequence[Schema]) -> list[list[Schema]]:
    """Schemas in groups whose ids and protocol names are distinct and whose message headers are laid
    out alike (each plugin reads the schema id where its own header has it): one tshark run each."""
    out: list[list[Schema]] = []
    for schema in schemas:
        for batch in out:
            if header_layout(batch[0]) == header_layout(schema) and all(
                s.id != schema.id and proto_name(s.package) != proto_name(schema.package) for s in batch
            ):
                batch.append(schema)
                break
        else:
            out.append([schema])
    return out


def run(
    tmp_path: Path, items: list[tuple[Schema, list[bytes]]], *, preferences: bool = True
) -> tuple[dict[tuple[int, ...], Any], dict[tuple[int, ...], Any]]:
    """Write every schema's messages as its own Aeron stream, dissect the capture once; returns what the
    codec decodes and what tshark shows, both by (session, stream, term id, term offset)."""
    writers = []
    expected: dict[tuple[int, ...], Any] = {}
    for k, (schema, messages) in enumerate(items):
        writer = AeronWriter(session_id=0x5000 + k, stream_id=100 + k, source=("127.0.0.1", 41000 + k))
        writer.send(messages, batch=3)
        writers.append(writer)
        codec = OtfCodec(schema)
        for (term_id, term_offset), payload in zip(writer.positions, messages, strict=True):
            key = (writer.session_id, writer.stream_id, term_id, term_offset)
            try:
                decoded = codec.decode(payload)
            except CodecError as exc:
                expected[key] = ("malformed", str(exc))
            else:
                trailing = payload[decoded.length :].hex() or None
                expected[key] = normalize({"sbe": decoded.to_json_obj(), "trailingHex": trailing})
    directory = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    directory.mkdir()
    schemas = [schema for schema, _ in items]
    plugins = write_plugins(directory, schemas)
    capture = write_aeron_capture(directory / "capture.pcap", writers)
    packets = dissect_json(tshark_command(TSHARK, capture, plugins, preferences=preferences))
    readers = {r.proto: r for r in (TsharkSbe(s) for s in schemas)}
    shown: dict[tuple[int, ...], Any] = {}
    first_frames = {w.session_id: w for w in writers}
    for message in dissected_messages(packets, set(readers)):
        if message.term_offset is None:  # reassembled: the first fragment's position is the writer's
            writer = first_frames[message.session_id]
            key = next(k for k in _keys(writer) if k not in shown)
        else:
            key = (message.session_id, message.stream_id, message.term_id, message.term_offset)
        errors = [text for severity, text in message.experts if severity >= MALFORMED]
        assert not any("dissector error" in text for text in errors), errors
        if errors:
            shown[key] = ("malformed", errors)
            continue
        assert not [e for e in message.experts if e[0] >= PI_WARN], message.experts
        reader = readers[message.proto]
        shown[key] = normalize(
            {"sbe": reader.message(message.tree), "trailingHex": reader.trailing_hex(message.tree)}
        )
    return expected, shown


def _keys(writer: AeronWriter) -> list[tuple[int, ...]]:
    return [(writer.session_id, writer.stream_id, t, o) for t, o in writer.positions]


def check(
    expected: dict[tuple[int, ...], Any], shown: dict[tuple[int, ...], Any], schemas: list[Schema]
) -> None:
    for key, value in expected.items():
        got = shown.get(key)
        assert not isinstance(value, tuple), f"{key}: the codec refuses a message it encoded: {value}"
        assert same(got, value), f"{key} of {[s.package for s in schemas]}:\ncodec:  {value}\ntshark: {got}"


def encode_all(schema: Schema, data: st.DataObject, per_message: int) -> list[bytes]:
    codec = OtfCodec(schema)
    out = []
    for message in schema.messages:
        for _ in range(per_message):
            fields = data.draw(values_for(schema, message))
            version = data.draw(st.integers(0, schema.version))
            try:
                out.append(codec.encode(message.name, fields, version=version))
            except EncodeValueError:
                out.append(codec.encode(message.name, fields))
    return out


def damaged(payloads: list[bytes], rng: random.Random, header_size: int) -> list[bytes]:
    """Each message truncated or with a byte replaced (by a non-zero byte: text never gains a NUL)."""
    out = []
    for payload in payloads:
        if len(payload) <= header_size + 1:
            continue
        if rng.random() < 0.5:
            out.append(payload[: rng.randrange(header_size, len(payload))])
        else:
            data = bytearray(payload)
            where = rng.randrange(0, len(data))
            if where in (2, 3, 4, 5) and header_size == 8:  # keep template and schema id mostly intact
                where = rng.randrange(6, len(data))
            data[where] = rng.choice([b for b in range(1, 256) if b != data[where]])
            out.append(bytes(data))
    return out


def converts_all_text(schema: Schema) -> bool:
    """No text in an encoding the plugin shows as hex (GB18030): damaged bytes there decode differently."""
    return all(
        text_kind(node.encoding.character_encoding) != "other"
        for node in schema.types
        if not isinstance(node, CompositeType) and node.encoding.character_encoding
    )


@pytest.fixture(scope="module")
def test_schemas() -> list[Schema]:
    return [load_schema(need_reference(path)) for path in SCHEMA_FILES]


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
@settings(max_examples=2, deadline=None, phases=NO_SHRINK, suppress_health_check=SLOW_OK)
@given(data=st.data())
def test_every_test_schema_dissects_as_the_codec_decodes(
    path: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    schema = load_schema(need_reference(path))
    tmp_path = tmp_path_factory.mktemp("schema")
    expected, shown = run(tmp_path, [(schema, encode_all(schema, data, 1))])
    check(expected, shown, [schema])
    assert set(shown) == set(expected)


@settings(max_examples=4, deadline=None, phases=NO_SHRINK, suppress_health_check=SLOW_OK)
@given(drawn=st.lists(random_schemas(), min_size=1, max_size=3), data=st.data())
def test_random_schemas_dissect_as_the_codec_decodes(
    drawn: list[Any], data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp_path = tmp_path_factory.mktemp("random")
    schemas: list[Schema] = []
    for k, rs in enumerate(drawn):
        xml = rs.xml.replace('package="random.schema"', f'package="random.schema{k}"')
        schema = parse_schema_bytes(xml.encode(), source=f"<random {k}>")
        if all(s.id != schema.id for s in schemas):
            schemas.append(schema)
    items = [(schema, encode_all(schema, data, 2)) for schema in schemas]
    expected, shown = run(tmp_path, items)
    check(expected, shown, schemas)
    assert set(shown) == set(expected)


@settings(max_examples=2, deadline=None, phases=NO_SHRINK, suppress_health_check=SLOW_OK)
@given(data=st.data())
def test_damaged_and_truncated_messages_are_malformed_exactly_when_the_codec_refuses_them(
    test_schemas: list[Schema], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    tmp_path = tmp_path_factory.mktemp("damaged")
    rng = data.draw(st.randoms(use_true_random=False))
    schemas = [s for s in test_schemas if converts_all_text(s) and len(s.messages) <= 8]
    refused = 0
    for batch in batches(schemas):
        items = [(schema, damaged(encode_all(schema, data, 2), rng, schema.header.size)) for schema in batch]
        expected, shown = run(tmp_path, items)
        for key, value in expected.items():
            got = shown.get(key)
            if isinstance(value, tuple):
                refused += 1
                # a damaged schema or template id is not ours: tshark leaves it alone or marks it
                assert got is None or isinstance(got, tuple), (
                    f"{key}: codec refuses ({value[1]}), tshark: {got}"
                )
                if value[1].startswith(("schema", "a message header")) or "schemaId" in value[1]:
                    continue
                assert got is not None, f"{key}: the codec refuses it ({value[1]}), tshark shows nothing"
            else:
                assert same(got, value), f"{key}:\ncodec:  {value}\ntshark: {got}"
    assert refused, "the damage made no message invalid"
