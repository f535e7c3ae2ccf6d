"""Bad input never escapes as anything but a CodecError: truncated buffers, corrupted bytes, random
bodies behind a valid header, and random JSON given to the encoder."""

from __future__ import annotations

import json
import struct
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.needs import need_reference
from support.paths import CAR_SCHEMAS, OFFSETS_AND_CONSTANTS, SBE_TESTS, SCHEMAS, VECTORS

from codegen import load_schema
from codegen.ir import EncodedType
from codegen.otf import DecodedMessage, OtfCodec
from codegen.runtime.errors import BufferTooShortError, CodecError

# Our schemas, wire-identical to the Aeron schemas the cluster and archive vectors were made with.
SCHEMA_OF = {"cluster": SCHEMAS / "aeron-cluster-codecs.xml", "archive": SCHEMAS / "aeron-archive-codecs.xml"}
# Schemas for random bodies: the project's own, and SBE's where the shared reference directory is there.
BODY_SCHEMAS = {
    "project": [SCHEMAS / "aeron-cluster-codecs.xml", CAR_SCHEMAS[1], OFFSETS_AND_CONSTANTS],
    "reference": [SBE_TESTS / "composite-offsets-schema.xml"],
}


@cache
def codec_for(path: Path) -> OtfCodec:
    return OtfCodec(load_schema(path))


def _vectors() -> list[tuple[Path, bytes]]:
    out = []
    for name in ("car", "cluster", "archive"):
        with open(VECTORS / f"{name}-vectors.json") as f:
            for v in json.load(f)["vectors"]:
                path = CAR_SCHEMAS[v["schemaVersion"]] if name == "car" else SCHEMA_OF[name]
                out.append((path, bytes.fromhex(v["hex"])))
    return out


VECTORS_ = _vectors()


def _decode_or_codec_error(codec: OtfCodec, data: bytes) -> DecodedMessage | CodecError:
    try:
        return codec.decode(data)
    except CodecError as exc:
        assert exc.offset is None or 0 <= exc.offset <= len(data), exc
        return exc


@pytest.mark.parametrize(("schema_path", "data"), VECTORS_, ids=[f"v{k}" for k in range(len(VECTORS_))])
def test_every_truncation_raises_buffer_too_short(schema_path: Path, data: bytes) -> None:
    codec = codec_for(schema_path)
    name = codec.decode(data).name
    for length in range(len(data)):
        with pytest.raises(BufferTooShortError) as excinfo:
            codec.decode(data[:length])
        exc = excinfo.value
        assert exc.offset is not None and exc.offset <= length
        if length >= codec.header_length:
            assert exc.message_name == name


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    vector=st.sampled_from(VECTORS_),
    corruptions=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.none() | st.integers(0, 10_000),
)
def test_corrupted_bytes_decode_or_raise_codec_error(
    vector: tuple[Path, bytes], corruptions: list[tuple[int, int]], cut: int | None
) -> None:
    path, original = vector
    data = bytearray(original)
    for position, value in corruptions:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    result = _decode_or_codec_error(codec_for(path), bytes(data))
    if isinstance(result, DecodedMessage):
        assert result.length <= len(data)
        json.dumps(result.to_json_obj())  # always serialisable


@pytest.mark.parametrize("pool", [pytest.param(paths, id=pool) for pool, paths in BODY_SCHEMAS.items()])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_bodies_behind_a_valid_header_decode_or_raise_codec_error(
    pool: list[Path], data: st.DataObject
) -> None:
    codec = codec_for(need_reference(data.draw(st.sampled_from(pool))))
    message = data.draw(st.sampled_from(codec.schema.messages))
    version = data.draw(st.integers(0, codec.schema.version + 1))
    block_length = data.draw(st.sampled_from([message.block_length, 0, message.block_length // 2, 65534]))
    header = _header(codec, message.id, version, block_length)
    body = data.draw(st.binary(max_size=300))
    result = _decode_or_codec_error(codec, header + body)
    if isinstance(result, DecodedMessage):
        assert result.length <= len(header) + len(body)


def _header(codec: OtfCodec, template_id: int, version: int, block_length: int) -> bytes:
    """A header written independently of the codec (so any block length can be claimed)."""
    header = codec.schema.header
    out = bytearray(header.size)
    values = {
        "blockLength": block_length,
        "templateId": template_id,
        "schemaId": codec.schema.id,
        "version": version,
    }
    for name, value in values.items():
        member = header.member(name)
        assert member is not None and isinstance(member.type, EncodedType)
        fmt = codec.schema.byte_order.struct_prefix + member.type.primitive.struct_code
        struct.pack_into(fmt, out, member.offset, value)
    return bytes(out)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_json_encodes_or_raises_codec_error(data: st.DataObject) -> None:
    codec = codec_for(CAR_SCHEMAS[1])
    message = data.draw(st.sampled_from(codec.schema.messages))
    names = [
        "serialNumber",
        "someNumbers",
        "vehicleCode",
        "extras",
        "engine",
        "uuid",
        "fuelFigures",
        "performanceFigures",
        "manufacturer",
        "code",
        "available",
        "cupHolderCount",
    ]
    fields: dict[str, Any] = data.draw(st.dictionaries(st.sampled_from(names) | st.text(max_size=3), _JSON))
    version = data.draw(st.none() | st.integers(-1, 3))
    try:
        encoded = codec.encode(message.name, fields, version=version)
    except CodecError:
        return
    assert codec.decode(encoded).length == len(encoded)
