"""An independent SBE test oracle: encode and decode messages with ``construct``, built from the IR.

Theory of operation
-------------------
The generated codecs (``codegen.targets.python``) and the run-time codec (``codegen.otf``) both compile
the IR into ``struct`` formats of their own.  This module shares none of that: it reads the IR's
offsets, sizes, presence, null values and names and spells the wire format out as ``construct``
declarations, in the plainest way it can:

* a primitive is construct's ``Int8ul``/``Int16sb``/``Float32l``/... picked by the primitive's XML
  name and the schema's byte order, from a table below (the IR's struct codes are not used);
* a block (a message's root block or a group entry's block) or a composite is a ``Struct`` of its
  non-constant parts sorted by offset, with ``Padding`` for every gap and for the bytes after the last
  part; each part's width comes from construct's ``sizeof()`` and is checked against the IR's size;
* a group is its dimension composite, then ``Array(numInGroup, entry)``, an entry being the block (of
  the dimension's ``blockLength`` bytes), then the entry's nested groups, then its var data;
* var data is ``Prefixed(length primitive, GreedyBytes)``;
* a message is the header composite, then the root block, then groups, then var data.

Values are converted to and from the JSON form of ``docs/sbe-json.md`` by ``ExprAdapter``s around
those constructs.  A lone ``char`` is a one-character string (``""`` for a NUL byte); an *optional*
lone ``char`` holding its null value is ``None``, as for any optional primitive scalar.

Decoding honours the header's acting version and block length like an SBE reader: a block shorter
than the schema's is read as if zero-padded, and a field that does not fit in it, or whose
``sinceVersion`` is above the acting version, is ``None``; a group or var-data section newer than the
acting version is absent from the wire and ``None``.  Encoding always writes the schema's version and
full block lengths.  Performance does not matter here; being obviously right does.
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Callable, Mapping
from typing import Any

import construct as c

from codegen.ir.model import (
    ByteOrder,
    CompositeType,
    EncodedType,
    EnumType,
    Field,
    Group,
    Message,
    Presence,
    Schema,
    SetType,
    TypeNode,
    VarData,
)

__all__ = ["OracleError", "oracle_decode", "oracle_encode"]

BLOCK = "@block"  # not an SBE name, so it cannot clash with a group or var data name

# Primitive XML name -> (big-endian construct, little-endian construct).
_PRIMITIVES: dict[str, tuple[c.Construct, c.Construct]] = {
    "char": (c.Int8ub, c.Int8ul),
    "int8": (c.Int8sb, c.Int8sl),
    "uint8": (c.Int8ub, c.Int8ul),
    "int16": (c.Int16sb, c.Int16sl),
    "uint16": (c.Int16ub, c.Int16ul),
    "int32": (c.Int32sb, c.Int32sl),
    "uint32": (c.Int32ub, c.Int32ul),
    "int64": (c.Int64sb, c.Int64sl),
    "uint64": (c.Int64ub, c.Int64ul),
    "float": (c.Float32b, c.Float32l),
    "double": (c.Float64b, c.Float64l),
}


class OracleError(Exception):
    """The oracle was given something it cannot encode or decode."""


# ------------------------------------------------------------------------------------------ helpers


def _is_constant(node: TypeNode) -> bool:
    return not isinstance(node, CompositeType) and node.encoding.presence is Presence.CONSTANT


def _codec_name(encoding: str | None) -> str:
    return codecs.lookup(encoding or "US-ASCII").name


def _is_null(value: Any, null: float) -> bool:
    if isinstance(null, float) and math.isnan(null):
        return isinstance(value, float) and math.isnan(value)
    return bool(value == null)


def _layout(parts: list[tuple[str, int, int, c.Construct]], size: int, where: str) -> c.Struct:
    """A Struct placing each named part at its offset, padding gaps and the tail up to ``size``."""
    subcons: list[c.Construct] = []
    position = 0
    for name, offset, ir_size, con in sorted(parts, key=lambda part: part[1]):
        width = con.sizeof()
        if width != ir_size:
            raise OracleError(f"{where}.{name}: construct size {width} but the IR says {ir_size}")
        if offset < position:
            raise OracleError(f"{where}.{name}: offset {offset} overlaps the previous part (ends {position})")
        if offset > position:
            subcons.append(c.Padding(offset - position))
        subcons.append(name / con)
        position = offset + width
    if position > size:
        raise OracleError(f"{where}: parts end at {position}, beyond the size {size}")
    if size > position:
        subcons.append(c.Padding(size - position))
    return c.Struct(*subcons)


class _Builder:
    """Turns IR nodes into constructs for one schema's byte order."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.big = schema.byte_order is ByteOrder.BIG_ENDIAN

    def primitive(self, xml_name: str) -> c.Construct:
        big, little = _PRIMITIVES[xml_name]
        return big if self.big else little

    # -- types -------------------------------------------------------------------------------

    def type_con(self, node: TypeNode, optional: bool, where: str) -> c.Construct:
        """The construct of a non-constant type, parsing to (and building from) its JSON value."""
        if isinstance(node, CompositeType):
            return self.composite(node, where)
        if isinstance(node, EnumType):
            return self.enum(node)
        if isinstance(node, SetType):
            return self.set(node)
        return self.encoded(node, optional, where)

    def encoded(self, node: EncodedType, optional: bool, where: str) -> c.Construct:
        prim = node.encoding.primitive.xml_name
        if prim == "char":
            return self.text(node, optional, where)
        element = self.primitive(prim)
        null = node.encoding.null_value
        if node.length != 1:
            length = node.length

            def array_out(value: Any, _ctx: Any) -> list[Any]:
                return list(value)

            def array_in(value: Any, _ctx: Any) -> list[Any]:
                if value is None:
                    return [null] * length
                if len(value) != length:
                    raise OracleError(f"{where}: expected {length} elements, got {len(value)}")
                return list(value)

            return c.ExprAdapter(c.Array(length, element), array_out, array_in)

        def scalar_out(value: Any, _ctx: Any) -> Any:
            return None if optional and _is_null(value, null) else value

        def scalar_in(value: Any, _ctx: Any) -> Any:
            if value is None:
                if not optional:
                    raise OracleError(f"{where}: a required value cannot be null")
                return null
            return value

        return c.ExprAdapter(element, scalar_out, scalar_in)

    def text(self, node: EncodedType, optional: bool, where: str) -> c.Construct:
        """A char array, or a lone char: NUL-padded bytes as text."""
        length = node.length
        codec = _codec_name(node.encoding.character_encoding)
        null = int(node.encoding.null_value)
        lone_optional = optional and length == 1

        def text_out(raw: bytes, _ctx: Any) -> str | None:
            if lone_optional and raw[0] == null:
                return None
            return raw.rstrip(b"\x00").decode(codec)

        def text_in(value: str | None, _ctx: Any) -> bytes:
            if value is None:
                if lone_optional:
                    return bytes([null])
                value = ""
            raw = value.encode(codec)
            if len(raw) > length:
                raise OracleError(f"{where}: {value!r} is longer than {length} bytes")
            return raw + bytes(length - len(raw))

        return c.ExprAdapter(c.Bytes(length), text_out, text_in)

    def enum(self, node: EnumType) -> c.Construct:
        by_value = {v.value: v.name for v in node.values}
        by_name = {v.name: v.value for v in node.values}
        null = int(node.encoding.null_value)

        def enum_out(value: int, _ctx: Any) -> str | int | None:
            if value in by_value:
                return by_value[value]
            return None if value == null else value

        def enum_in(value: str | int | None, _ctx: Any) -> int:
            if value is None:
                return null
            if isinstance(value, str):
                return by_name[value]
            return value

        return c.ExprAdapter(self.primitive(node.encoding.primitive.xml_name), enum_out, enum_in)

    def set(self, node: SetType) -> c.Construct:
        choices = [(choice.name, choice.bit) for choice in node.choices]
        bit_of = dict(choices)

        def set_out(value: int, _ctx: Any) -> list[str | int]:
            names: list[str | int] = [name for name, bit in choices if value >> bit & 1]
            named = {bit for _, bit in choices}
            extra = [bit for bit in range(value.bit_length()) if value >> bit & 1 and bit not in named]
            return names + extra

        def set_in(value: list[str | int] | None, _ctx: Any) -> int:
            out = 0
            for item in value or []:
                out |= 1 << (bit_of[item] if isinstance(item, str) else item)
            return out

        return c.ExprAdapter(self.primitive(node.encoding.primitive.xml_name), set_out, set_in)

    def composite(self, node: CompositeType, where: str) -> c.Construct:
        members = [m for m in node.members if not _is_constant(m.type)]
        parts = []
        for m in members:
            optional = not isinstance(m.type, CompositeType) and m.type.encoding.presence is Presence.OPTIONAL
            parts.append((m.name, m.offset, m.size, self.type_con(m.type, optional, f"{where}.{m.name}")))
        struct = _layout(parts, node.size, where)
        names = [m.name for m in members]

        def composite_out(value: Mapping[str, Any], _ctx: Any) -> dict[str, Any]:
            return {name: value[name] for name in names}

        def composite_in(value: Mapping[str, Any] | None, _ctx: Any) -> dict[str, Any]:
            value = value or {}
            return {name: value.get(name) for name in names}

        return c.ExprAdapter(struct, composite_out, composite_in)

    def raw_composite(self, node: CompositeType, where: str) -> c.Struct:
        """A composite of plain integers (the message header, a group's dimension)."""
        parts = []
        for m in node.members:
            if _is_constant(m.type):
                continue
            if not isinstance(m.type, EncodedType) or m.type.length != 1:
                raise OracleError(f"{where}.{m.name}: only scalar members are supported here")
            parts.append((m.name, m.offset, m.size, self.primitive(m.type.encoding.primitive.xml_name)))
        return _layout(parts, node.size, where)

    # -- blocks and sections -------------------------------------------------------------------

    def block(
        self,
        fields: tuple[Field, ...],
        block_length: int,
        acting_version: int,
        acting_block_length: Callable[[Any], int],
        where: str,
    ) -> c.Construct:
        """The fixed fields, read from a block of the acting length, as an ordered dict of JSON values."""
        present = [f for f in fields if not f.is_constant and not _is_constant(f.type)]
        parts = [
            (
                f.name,
                f.offset,
                f.size,
                self.type_con(f.type, f.presence is Presence.OPTIONAL, f"{where}.{f.name}"),
            )
            for f in present
        ]
        struct = _layout(parts, block_length, where)

        def block_out(raw: bytes, _ctx: Any) -> dict[str, Any]:
            have = len(raw)
            data = raw[:block_length] + bytes(max(block_length - have, 0))
            parsed = struct.parse(data)
            out: dict[str, Any] = {}
            for f in present:
                absent = f.since_version > acting_version or f.offset + f.size > have
                out[f.name] = None if absent else parsed[f.name]
            return out

        def block_in(value: Mapping[str, Any], _ctx: Any) -> bytes:
            return bytes(struct.build({f.name: value.get(f.name) for f in present}))

        return c.ExprAdapter(c.Bytes(acting_block_length), block_out, block_in)

    def body(
        self,
        fields: tuple[Field, ...],
        groups: tuple[Group, ...],
        var_data: tuple[VarData, ...],
        block_length: int,
        acting_version: int,
        acting_block_length: Callable[[Any], int],
        where: str,
    ) -> c.Construct:
        """A message body or group entry: block, groups, var data, as one flat dict of JSON values."""
        sections: list[tuple[str, c.Construct]] = []
        for g in groups:
            sections.append((g.name, self.group(g, acting_version, f"{where}.{g.name}")))
        for v in var_data:
            sections.append((v.name, self.var_data(v, acting_version, f"{where}.{v.name}")))
        names = [name for name, _ in sections]
        if BLOCK in names:
            raise OracleError(f"{where}: a section is named {BLOCK}")
        struct = c.Struct(
            BLOCK / self.block(fields, block_length, acting_version, acting_block_length, where),
            *(name / con for name, con in sections),
        )

        def body_out(value: Mapping[str, Any], _ctx: Any) -> dict[str, Any]:
            out = dict(value[BLOCK])
            for name in names:
                out[name] = value[name]
            return out

        def body_in(value: Mapping[str, Any], _ctx: Any) -> dict[str, Any]:
            out: dict[str, Any] = {BLOCK: value}
            for name in names:
                out[name] = value.get(name)
            return out

        return c.ExprAdapter(struct, body_out, body_in)

    def group(self, g: Group, acting_version: int, where: str) -> c.Construct:
        if g.since_version > acting_version:
            return c.Computed(None)
        dimension = self.raw_composite(g.dimension, f"{where}<dimension>")
        bl_name = g.block_length_member.name
        num_name = g.num_in_group_member.name
        entry = self.body(
            g.fields,
            g.groups,
            g.var_data,
            g.block_length,
            acting_version,
            lambda ctx: ctx._["dim"][bl_name],
            where,
        )
        struct = c.Struct("dim" / dimension, "entries" / c.Array(lambda ctx: ctx["dim"][num_name], entry))
        others = [
            m.name
            for m in g.dimension.members
            if m.name not in (bl_name, num_name) and not _is_constant(m.type)
        ]

        def group_out(value: Mapping[str, Any], _ctx: Any) -> list[dict[str, Any]]:
            return list(value["entries"])

        def group_in(value: list[Mapping[str, Any]] | None, _ctx: Any) -> dict[str, Any]:
            entries = list(value or [])
            dim = {bl_name: g.block_length, num_name: len(entries), **dict.fromkeys(others, 0)}
            return {"dim": dim, "entries": entries}

        return c.ExprAdapter(struct, group_out, group_in)

    def var_data(self, v: VarData, acting_version: int, where: str) -> c.Construct:
        if v.since_version > acting_version:
            return c.Computed(None)
        length_member = next((m for m in v.type.members if m.type is v.length), None)
        if length_member is None or length_member.offset != 0 or v.data_offset != v.length.size:
            raise OracleError(f"{where}: only a length prefix directly followed by the data is supported")
        if not isinstance(v.length, EncodedType) or v.length.length != 1:
            raise OracleError(f"{where}: the length is not a scalar")
        prefixed = c.Prefixed(self.primitive(v.length.encoding.primitive.xml_name), c.GreedyBytes)
        codec = _codec_name(v.character_encoding) if v.character_encoding is not None else None

        def data_out(raw: bytes, _ctx: Any) -> str | dict[str, str]:
            return raw.decode(codec) if codec is not None else {"hex": raw.hex()}

        def data_in(value: str | Mapping[str, str] | None, _ctx: Any) -> bytes:
            if value is None:
                return b""
            if codec is not None:
                if not isinstance(value, str):
                    raise OracleError(f"{where}: expected text, got {value!r}")
                return value.encode(codec)
            if not isinstance(value, Mapping):
                raise OracleError(f"{where}: expected {{'hex': ...}}, got {value!r}")
            return bytes.fromhex(value["hex"])

        return c.ExprAdapter(prefixed, data_out, data_in)

    # -- whole messages ----------------------------------------------------------------------

    def header(self) -> c.Struct:
        return self.raw_composite(self.schema.header, "messageHeader")

    def message(self, message: Message, acting_version: int, acting_block_length: int) -> c.Construct:
        return self.body(
            message.fields,
            message.groups,
            message.var_data,
            message.block_length,
            acting_version,
            lambda _ctx: acting_block_length,
            message.name,
        )


# ------------------------------------------------------------------------------------------ API

_HEADER_WORDS = ("blockLength", "templateId", "schemaId", "version")


def oracle_encode(schema: Schema, message_name: str, fields_json: Mapping[str, Any]) -> bytes:
    """The whole message (header included) at the schema's version and block lengths."""
    message = schema.message_named(message_name)
    if message is None:
        raise OracleError(f"no message named {message_name!r}")
    builder = _Builder(schema)
    header = {m.name: 0 for m in schema.header.members if not _is_constant(m.type)}
    header.update(
        blockLength=message.block_length, templateId=message.id, schemaId=schema.id, version=schema.version
    )
    body = builder.message(message, schema.version, message.block_length)
    try:
        return bytes(builder.header().build(header) + body.build(dict(fields_json)))
    except (c.ConstructError, KeyError, TypeError, ValueError) as exc:
        raise OracleError(f"{message_name}: cannot encode {fields_json!r}: {exc!r}") from exc


def oracle_decode(schema: Schema, buffer: bytes) -> tuple[str, dict[str, Any]]:
    """``(message name, fields)`` of the one message filling ``buffer`` exactly (header included)."""
    builder = _Builder(schema)
    header_con = builder.header()
    size = header_con.sizeof()
    data = bytes(buffer)
    if len(data) < size:
        raise OracleError(f"{len(data)} bytes cannot hold the {size}-byte header")
    header = header_con.parse(data[:size])
    block_length, template_id, schema_id, version = (header[word] for word in _HEADER_WORDS)
    if schema_id != schema.id:
        raise OracleError(f"schemaId {schema_id} is not {schema.id}")
    message = schema.message_by_id(template_id)
    if message is None:
        raise OracleError(f"no message with templateId {template_id}")
    whole = c.Struct("body" / builder.message(message, version, block_length), c.Terminated)
    try:
        body: dict[str, Any] = whole.parse(data[size:])["body"]
    except c.ConstructError as exc:
        raise OracleError(f"{message.name}: cannot decode the body: {exc}") from exc
    return message.name, body
