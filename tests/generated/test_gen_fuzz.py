"""Bad input to the generated codecs: only ``CodecError`` may escape, and it says what and where.

For valid encodings (the reference vectors, and hypothesis-made messages with groups and var data) we
try every truncation and random corruption -- overwritten bytes, flipped bits, and targeted damage
to the length fields: huge group counts, huge or tiny group block lengths, huge var-data lengths --
and read the result every way a user can: ``decode(...).to_dict()``, the ``unpack()`` fast path, and
the flyweight API (iterating groups, reading var data as views and as text, out of order too).

Bad input raises a ``CodecError`` that names message, field and offset (README, "Using the codecs"):
a raw ``IndexError``, ``struct.error``, ``UnicodeDecodeError``, ``KeyError``, ``ValueError`` that is
not a ``CodecError``, ``RecursionError`` or ``MemoryError`` escaping is a bug, and so is an error that
does not name the message (or its header or group) and an offset.

Reproduce a failure with ``pytest tests/generated/test_gen_fuzz.py -k <name>``: hypothesis prints the
falsifying example and replays it from its database.
"""

from __future__ import annotations

import json
import struct
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support.generated_import import import_schema_file
from support.needs import need_reference
from support.paths import (
    AERON_SCHEMAS,
    CAR_BIG_ENDIAN,
    CAR_SCHEMAS,
    GROUP_VAR_DATA,
    NESTED_GROUPS,
    OFFSETS_AND_CONSTANTS,
    SBE,
    SBE_TESTS,
    SCHEMAS,
    VECTORS,
)
from support.sbe_values import values_for

import generated
from codegen.ir.model import CompositeType, EncodedType, Group, Message, Schema, VarData
from codegen.runtime.errors import BufferTooShortError, CodecError
from codegen.schema import load_schema
from codegen.targets.python import package_name_for

OURS = {"cluster": SCHEMAS / "aeron-cluster-codecs.xml", "archive": SCHEMAS / "aeron-archive-codecs.xml"}


@cache
def schema_of(path: Path) -> Schema:
    return load_schema(path)


@cache
def module_of(path: Path) -> ModuleType:
    if path.parent == SCHEMAS:
        module: ModuleType = getattr(generated, package_name_for(path))
        return module
    return import_schema_file(path)


# ------------------------------------------------------------------------------------------- read all


def names_in(schema: Schema, message_name: str) -> set[str]:
    """Names an error about this message may carry: the message, its groups and composites (the
    header's name is added by the checker)."""
    message = schema.message_named(message_name)
    assert message is not None
    names = {message.name}

    def walk(node: Message | Group) -> None:
        for f in node.fields:
            if isinstance(f.type, CompositeType):
                names.add(f.type.name)
        for g in node.groups:
            names.add(g.name)
            walk(g)

    walk(message)
    return names


def read_everything(module: ModuleType, data: Any) -> None:
    """Every way of reading a message; raises whatever the codec raises."""
    decoder = module.decode(data)
    decoder.to_dict()
    decoder_class = type(decoder)
    decoder_class.unpack(data, 0)
    _walk(module.decode(data), reverse=True)
    _walk(module.decode(data), reverse=False)


def _walk(decoder: Any, reverse: bool) -> None:
    """Read the sections through the flyweight API: last first (skips and rewinds), or in order."""
    decoder.read_block()
    sections = list(decoder._UNPACK)
    for kind, attribute in reversed(sections) if reverse else sections:
        if kind == "group":
            group = getattr(decoder, attribute)()
            assert len(group) == group.count
            for entry in group:
                _walk(entry, reverse)
        else:
            view = getattr(decoder, attribute)()
            bytes(view)
            if hasattr(decoder, f"{attribute}_str"):
                getattr(decoder, f"{attribute}_str")()


def check_only_codec_errors(module: ModuleType, data: bytes, schema: Schema | None) -> CodecError | None:
    """Read ``data`` every way; only a CodecError may come out, naming the message and an offset.

    The message named must be the one the (possibly damaged) header announces, one of its groups or
    composites, or the header itself."""
    try:
        read_everything(module, data)
    except CodecError as exc:
        assert exc.message_name is not None, f"no message named: {exc!r}"
        assert exc.offset is not None, f"no offset: {exc!r}"
        assert 0 <= exc.offset <= len(data), exc
        assert exc.message_name in str(exc) and f"offset {exc.offset}" in str(exc)
        if schema is not None:
            assert exc.message_name in announced_names(module, schema, data), exc
        return exc
    return None


def announced_names(module: ModuleType, schema: Schema, data: bytes) -> set[str]:
    names = {module.MessageHeaderDecoder.NAME}
    if len(data) >= module.HEADER_SIZE:
        decoder_class = module.DECODERS.get(module.MessageHeaderDecoder().wrap(data, 0).template_id)
        if decoder_class is not None:
            names |= names_in(schema, decoder_class.NAME)
    return names


# ------------------------------------------------------------------------------- layout of the bytes


def length_fields(
    schema: Schema, module: ModuleType, message: Message, data: bytes
) -> list[tuple[int, int, str]]:
    """Where a valid encoding's length fields are: ``(offset, size, kind)`` for every group dimension
    (``blockLength``, ``numInGroup``) and every var-data length prefix, walking the bytes."""
    order = schema.byte_order.struct_prefix
    out: list[tuple[int, int, str]] = []
    header = module.MessageHeaderDecoder().wrap(data, 0)
    pos = module.HEADER_SIZE + header.block_length

    def number(at: int, node: EncodedType) -> int:
        value: int = struct.unpack_from(order + node.encoding.primitive.struct_code, data, at)[0]
        return value

    def sections(node: Message | Group) -> None:
        nonlocal pos
        for g in node.groups:
            bl, num = g.block_length_member, g.num_in_group_member
            assert isinstance(bl.type, EncodedType) and isinstance(num.type, EncodedType)
            out.append((pos + bl.offset, bl.type.encoding.primitive.size, "blockLength"))
            out.append((pos + num.offset, num.type.encoding.primitive.size, "numInGroup"))
            block, count = number(pos + bl.offset, bl.type), number(pos + num.offset, num.type)
            pos += g.dimension.size
            for _ in range(count):
                pos += block
                sections(g)
        for v in node.var_data:
            pos = var_data(v, pos)

    def var_data(v: VarData, at: int) -> int:
        member = next(m for m in v.type.members if m.name == v.length.name)
        out.append((at + member.offset, v.length.encoding.primitive.size, "length"))
        return at + v.data_offset + number(at + member.offset, v.length)

    sections(message)
    assert pos == len(data)
    return out


# ------------------------------------------------------------------------------- valid encodings: vectors


def _vectors() -> list[tuple[Path, str, bytes]]:
    out = []
    for name in ("car", "cluster", "archive"):
        with open(VECTORS / f"{name}-vectors.json") as f:
            for v in json.load(f)["vectors"]:
                path = CAR_SCHEMAS[v["schemaVersion"]] if name == "car" else OURS[name]
                out.append((path, v["message"], bytes.fromhex(v["hex"])))
    return out


VECTOR_CASES = _vectors()
VECTOR_IDS = [f"{p.stem}-{m}-{k}" for k, (p, m, _) in enumerate(VECTOR_CASES)]


@pytest.mark.parametrize(("path", "message", "data"), VECTOR_CASES, ids=VECTOR_IDS)
def test_every_truncation_of_a_vector_raises_buffer_too_short(path: Path, message: str, data: bytes) -> None:
    module = module_of(path)
    read_everything(module, data)  # the whole message is fine
    for length in range(len(data)):
        exc = check_only_codec_errors(module, data[:length], schema_of(path))
        assert isinstance(exc, BufferTooShortError), f"truncated to {length} of {len(data)}: {exc!r}"
        assert exc.offset is not None and exc.offset <= length
        with pytest.raises(BufferTooShortError):
            module.DECODERS[module.MessageHeaderDecoder().wrap(data, 0).template_id].unpack(data[:length])


# --------------------------------------------------------------------------------------- corruptions


@st.composite
def corrupted(draw: st.DrawFn, data: bytes, targets: list[tuple[int, int, str]]) -> bytes:
    """``data`` damaged: random bytes overwritten, bits flipped, length fields set huge or tiny."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4), label="damages")):
        how = draw(st.sampled_from(["byte", "bit", "length"] if targets else ["byte", "bit"]))
        if how == "byte":
            at = draw(st.integers(0, len(out) - 1))
            out[at] = draw(st.integers(0, 255))
        elif how == "bit":
            at = draw(st.integers(0, len(out) - 1))
            out[at] ^= 1 << draw(st.integers(0, 7))
        else:
            at, size, _kind = draw(st.sampled_from(targets))
            top = (1 << (8 * size)) - 1
            value = draw(
                st.sampled_from([top, top - 1, top >> 1, (top >> 1) + 1, 0, 1]) | st.integers(0, top)
            )
            for k in range(size):  # either byte order: the extremes read the same, the rest is random
                out[at + k] = (value >> (8 * k)) & 0xFF
    if draw(st.booleans(), label="cut"):
        out = out[: draw(st.integers(0, len(out)))]
    return bytes(out)


FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@FUZZ
@given(data=st.data())
def test_corrupted_vectors_raise_only_codec_errors(data: st.DataObject) -> None:
    path, message, original = data.draw(st.sampled_from(VECTOR_CASES), label="vector")
    schema, module = schema_of(path), module_of(path)
    found = schema.message_named(message)
    assert found is not None
    targets = length_fields(schema, module, found, original)
    damaged = data.draw(corrupted(original, targets), label="damaged")
    check_only_codec_errors(module, damaged, schema)


# ------------------------------------------------------------------- valid encodings: hypothesis-made


# Schemas with groups or var data (or a big-endian layout), where damage has most to hit: the
# project's own, and SBE's where the shared reference directory is there.
RICH_SCHEMAS = {
    "project": [
        *CAR_SCHEMAS.values(),
        CAR_BIG_ENDIAN,
        GROUP_VAR_DATA,
        NESTED_GROUPS,
        OFFSETS_AND_CONSTANTS,
        *AERON_SCHEMAS,
    ],
    "reference": [
        SBE / "example-bigendian-test-schema.xml",
        SBE_TESTS / "group-with-data-schema.xml",
        SBE_TESTS / "nested-group-schema.xml",
        SBE_TESTS / "basic-variable-length-schema.xml",
        SBE_TESTS / "json-printer-test-schema.xml",
    ],
}
POOLS = [pytest.param(paths, id=pool) for pool, paths in RICH_SCHEMAS.items()]


@cache
def rich_messages(paths: tuple[Path, ...]) -> list[tuple[Path, str]]:
    """The messages of these schemas with groups or var data (every message outside ours)."""
    out = []
    for path in paths:
        for m in schema_of(need_reference(path)).messages:
            if m.groups or m.var_data or path.parent != SCHEMAS:
                out.append((path, m.name))
    return out


@pytest.mark.parametrize("pool", POOLS)
@FUZZ
@given(data=st.data())
def test_corrupted_made_up_messages_raise_only_codec_errors(pool: list[Path], data: st.DataObject) -> None:
    path, message = data.draw(st.sampled_from(rich_messages(tuple(pool))), label="message")
    schema, module = schema_of(path), module_of(path)
    fields = data.draw(values_for(schema, message, max_entries=3), label="fields")
    original = module.encode_dict(message, fields)
    found = schema.message_named(message)
    assert found is not None
    targets = length_fields(schema, module, found, original)
    damaged = data.draw(corrupted(original, targets), label="damaged")
    check_only_codec_errors(module, damaged, schema)


# Every length of every example is costly: no shrinking (the failing length is in the message).
@pytest.mark.parametrize("pool", POOLS)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    report_multiple_bugs=False,
)
@given(data=st.data())
def test_every_truncation_of_a_made_up_message_raises_buffer_too_short(
    pool: list[Path], data: st.DataObject
) -> None:
    path, message = data.draw(st.sampled_from(rich_messages(tuple(pool))), label="message")
    schema, module = schema_of(path), module_of(path)
    original = module.encode_dict(message, data.draw(values_for(schema, message), label="fields"))
    for length in range(len(original)):
        exc = check_only_codec_errors(module, original[:length], schema)
        assert isinstance(exc, BufferTooShortError), f"truncated to {length} of {len(original)}: {exc!r}"


@pytest.mark.parametrize("pool", POOLS)
@FUZZ
@given(data=st.data())
def test_random_bodies_behind_a_valid_header_raise_only_codec_errors(
    pool: list[Path], data: st.DataObject
) -> None:
    path, message = data.draw(st.sampled_from(rich_messages(tuple(pool))), label="message")
    schema, module = schema_of(path), module_of(path)
    header = _header(module, message)
    body = data.draw(st.binary(max_size=300), label="body")
    check_only_codec_errors(module, header + body, schema)


def _header(module: ModuleType, message: str) -> bytes:
    encoder_class = module.MESSAGES_BY_NAME[message][1]
    buffer = bytearray(module.HEADER_SIZE + encoder_class.BLOCK_LENGTH)
    encoder_class().wrap_and_apply_header(buffer, 0)
    return bytes(buffer[: module.HEADER_SIZE])


@FUZZ
@given(blob=st.binary(max_size=200))
def test_random_bytes_through_the_dispatcher_raise_only_codec_errors(blob: bytes) -> None:
    try:
        decoder = generated.decode(blob)
        decoder.to_dict()
        type(decoder).unpack(blob, 0)
    except CodecError as exc:
        assert exc.offset is not None and exc.message_name is not None, exc


def test_a_canary_the_checker_catches_a_raw_error() -> None:
    """The checker itself must fail when a non-CodecError escapes (a deliberately broken reader)."""

    class Broken:
        MessageHeaderDecoder = generated.aeron_cluster_codecs.MessageHeaderDecoder

        @staticmethod
        def decode(data: Any) -> Any:
            raise IndexError("raw")

    with pytest.raises(IndexError):
        check_only_codec_errors(Broken, b"", None)  # type: ignore[arg-type]
