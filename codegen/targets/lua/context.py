"""The Lua target's template context: the IR flattened into what ``plugin.lua.j2`` writes.

Every decision about a field is made here, once, and handed to the template as plain values: the
Wireshark field it fills (``ProtoField`` constructor, filter name, label), its offset in its block, the
acting-version and block-length guards around it, its null value as a Lua expression and, for text,
which character encoding the dissector checks. The template only arranges these into Lua.

Names. The protocol is ``sbe_<package, dots as underscores>`` (lower case, as Wireshark requires of
protocol names). A field's filter name is its path below the protocol: ``<proto>.<Message>.<field>``,
``<proto>.<Message>.<group>.<field>``, ``<proto>.<Message>.<field>.<member>`` for composite members and
``<proto>.<Message>.<field>.<choice>`` for the flags of a set. A group is a counted item named after
the group, its entries are ``<group>.entry`` items (``entry_`` and so on if the group has a field of
that name).
"""

from __future__ import annotations

import codecs
import math
import re
from dataclasses import dataclass, field

from codegen.ir.model import (
    ByteOrder,
    CompositeType,
    EncodedType,
    EnumType,
    Field,
    Group,
    Member,
    Message,
    Presence,
    Primitive,
    Schema,
    SetType,
    TypeNode,
    VarData,
)

__all__ = [
    "FieldDecl",
    "FixedCtx",
    "GroupCtx",
    "HeaderCtx",
    "MessageCtx",
    "PluginCtx",
    "VarDataCtx",
    "build_context",
    "proto_name",
]


def proto_name(package: str) -> str:
    """``io.aeron.cluster.codecs`` -> ``sbe_io_aeron_cluster_codecs``."""
    return "sbe_" + re.sub(r"[^0-9a-z_]", "_", package.lower().replace(".", "_"))


def lua_string(text: str) -> str:
    """A double-quoted Lua string literal (ASCII; other characters as decimal byte escapes)."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte}")
    return '"' + "".join(out) + '"'


def comment_text(text: str) -> str:
    """``text`` on one line, safe inside a ``--`` comment."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


# ProtoField constructors by primitive (a char is a string of one character).
_PROTO_FIELD = {
    Primitive.INT8: "int8",
    Primitive.UINT8: "uint8",
    Primitive.INT16: "int16",
    Primitive.UINT16: "uint16",
    Primitive.INT32: "int32",
    Primitive.UINT32: "uint32",
    Primitive.INT64: "int64",
    Primitive.UINT64: "uint64",
    Primitive.FLOAT: "float",
    Primitive.DOUBLE: "double",
    Primitive.CHAR: "string",
}


def text_kind(encoding: str | None) -> str:
    """How the dissector treats text of a ``characterEncoding``: checked as ``ascii`` or ``utf8``,
    converted from ``latin1``, or ``other`` (shown as it is when it is plain ASCII)."""
    try:
        name = codecs.lookup(encoding or "US-ASCII").name
    except LookupError:
        return "unknown"
    if name == "ascii":
        return "ascii"
    if name == "utf-8":
        return "utf8"
    if name in ("latin-1", "iso8859-1"):
        return "latin1"
    return "other"


def _int_literal(value: int, primitive: Primitive) -> str:
    """An integer as Lua sees the values the dissector reads: a number, or Int64/UInt64 for 64 bits."""
    if primitive is Primitive.INT64:
        return f'Int64.fromhex("{value & (2**64 - 1):016x}")'
    if primitive is Primitive.UINT64:
        return f'UInt64.fromhex("{value:016x}")'
    return str(value)


def _float_literal(value: float) -> str:
    if math.isnan(value):
        return "NAN_NULL"
    if math.isinf(value):
        return "math.huge" if value > 0 else "-math.huge"
    return repr(value)


@dataclass(slots=True)
class FieldDecl:
    """One ``ProtoField``: ``F[key] = ProtoField.<ctor>("<proto>.<key>", label, args...)``."""

    key: str
    ctor: str
    label: str
    args: str = ""


@dataclass(slots=True)
class FixedCtx:
    """A fixed-size field or composite member, at ``offset`` from its block (or composite) start.

    ``kind``: ``scalar`` (integers and floats, enums too), ``set``, ``char``, ``chars``, ``array``,
    ``composite`` or ``constant``. ``since`` > 0 guards it with the acting version; ``block_end`` (a
    field of a block, not a composite member) guards it with the acting block length.
    """

    kind: str
    key: str
    label: str
    offset: int
    size: int
    since: int = 0
    block_end: int | None = None
    primitive: str = ""
    little_endian: str = "true"
    null: str = "nil"
    text: str = "ascii"
    null_byte: str = "nil"
    length: int = 1
    value: str = "nil"
    choices: list[str] = field(default_factory=list)
    members: list[FixedCtx] = field(default_factory=list)
    var: str = ""
    comment: str = ""


@dataclass(slots=True)
class VarDataCtx:
    key: str
    label: str
    since: int
    prefix_size: int
    length_offset: int
    length_size: int
    length_primitive: str
    text: str | None
    comment: str


@dataclass(slots=True)
class GroupCtx:
    key: str
    entry_key: str
    label: str
    since: int
    depth: int
    dim_size: int
    bl_offset: int
    bl_size: int
    bl_primitive: str
    num_offset: int
    num_size: int
    num_primitive: str
    block_length: int
    tail: str  # Lua expression: bytes every entry needs beyond its block, at the acting version
    block: BlockCtx
    comment: str


@dataclass(slots=True)
class BlockCtx:
    depth: int
    fields: list[FixedCtx]
    groups: list[GroupCtx]
    var_data: list[VarDataCtx]


@dataclass(slots=True)
class MessageCtx:
    name: str
    template_id: int
    block_length: int
    since: int
    block: BlockCtx
    comment: str


@dataclass(slots=True)
class HeaderMember:
    name: str
    offset: int
    size: int
    primitive: str


@dataclass(slots=True)
class HeaderCtx:
    size: int
    members: dict[str, HeaderMember]


@dataclass(slots=True)
class PluginCtx:
    proto: str
    schema: Schema
    little_endian: str
    header: HeaderCtx
    fields: list[FieldDecl]
    enums: list[tuple[str, list[tuple[str, str]]]]
    messages: list[MessageCtx]


class _Builder:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.fields: list[FieldDecl] = []
        self.keys: set[str] = set()
        self.enums: dict[int, str] = {}  # id(EnumType) -> Lua name of its value-string table
        self.enum_tables: list[tuple[str, list[tuple[str, str]]]] = []
        self.counter = 0

    # ----------------------------------------------------------------------------- declarations

    def declare(self, key: str, ctor: str, label: str, args: str = "") -> str:
        assert key not in self.keys, f"two Wireshark fields named {key}"
        self.keys.add(key)
        self.fields.append(FieldDecl(key, ctor, lua_string(label), args))
        return key

    def enum_table(self, node: EnumType) -> str:
        name = self.enums.get(id(node))
        if name is None:
            name = f"ENUM_{len(self.enum_tables)}_{re.sub(r'[^0-9A-Za-z_]', '_', node.name)}"
            self.enums[id(node)] = name
            self.enum_tables.append((name, [(str(v.value), lua_string(v.name)) for v in node.values]))
        return name

    def var(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    # ------------------------------------------------------------------------------- fixed parts

    def fixed(
        self,
        key: str,
        label: str,
        node: TypeNode,
        offset: int,
        *,
        optional: bool,
        since: int,
        block_end: int | None,
        constant: object = None,
    ) -> FixedCtx:
        if isinstance(node, CompositeType):
            ctx = FixedCtx("composite", key, label, offset, node.size, since, block_end, var=self.var("c"))
            self.declare(key, "ProtoField.none", label)
            for m in node.members:
                ctx.members.append(self.member(f"{key}.{m.name}", m))
            ctx.comment = f"{label}: composite {node.name}, {node.size} bytes at offset {offset}"
            return ctx
        order = node.encoding.byte_order
        little = "true" if order is ByteOrder.LITTLE_ENDIAN else "false"
        prim = node.encoding.primitive
        where = f"at offset {offset}, {order.xml_name}"
        if constant is not None or node.encoding.presence is Presence.CONSTANT:
            return self.constant(key, label, node, offset, constant, since, block_end)
        if isinstance(node, EnumType):
            table = self.enum_table(node)
            ctor = _PROTO_FIELD[Primitive.UINT8 if prim is Primitive.CHAR else prim]
            self.declare(key, f"ProtoField.{ctor}", label, f", base.DEC, {table}")
            valid = {v.value for v in node.values}
            null = "nil" if node.null_value in valid else _int_literal(node.null_value, prim)
            read_prim = "uint8" if prim is Primitive.CHAR else prim.xml_name
            comment = f"{label}: enum {node.name} ({prim.xml_name}) {where}"
            return FixedCtx(
                "scalar",
                key,
                label,
                offset,
                prim.size,
                since,
                block_end,
                read_prim,
                little,
                null,
                comment=comment,
            )
        if isinstance(node, SetType):
            bits = 8 * prim.size
            ctor = _PROTO_FIELD[Primitive.UINT8 if prim is Primitive.CHAR else prim]
            self.declare(key, f"ProtoField.{ctor}", label, ", base.HEX")
            ctx = FixedCtx(
                "set",
                key,
                label,
                offset,
                prim.size,
                since,
                block_end,
                little_endian=little,
                comment=f"{label}: set {node.name} ({prim.xml_name}) {where}",
            )
            for choice in node.choices:
                choice_key = f"{key}.{choice.name}"
                if choice.bit < 32:
                    self.declare(
                        choice_key, "ProtoField.bool", choice.name, f", {bits}, nil, 0x{1 << choice.bit:x}"
                    )
                    ctx.choices.append(f'F["{choice_key}"]')
                else:  # Wireshark 4.0 takes 32-bit masks only: the plugin tests the bit itself
                    self.declare(choice_key, "ProtoField.bool", choice.name, ", base.NONE")
                    ctx.choices.append(f'{{ F["{choice_key}"], {choice.bit} }}')
            return ctx
        assert isinstance(node, EncodedType)
        enc = node.encoding
        if prim is Primitive.CHAR and node.length == 1:
            self.declare(key, "ProtoField.string", label)
            null_byte = str(int(enc.null_value)) if optional else "nil"
            return FixedCtx(
                "char",
                key,
                label,
                offset,
                1,
                since,
                block_end,
                text=text_kind(enc.character_encoding),
                null_byte=null_byte,
                comment=f"{label}: char at offset {offset}",
            )
        if prim is Primitive.CHAR:
            self.declare(key, "ProtoField.string", label)
            return FixedCtx(
                "chars",
                key,
                label,
                offset,
                node.length,
                since,
                block_end,
                text=text_kind(enc.character_encoding),
                length=node.length,
                comment=f"{label}: char[{node.length}] {enc.character_encoding or 'US-ASCII'} at {offset}",
            )
        ctor = _PROTO_FIELD[prim]
        base = "" if prim.is_float else ", base.DEC"
        self.declare(key, f"ProtoField.{ctor}", label, base)
        if node.length != 1:
            return FixedCtx(
                "array",
                key,
                label,
                offset,
                node.size,
                since,
                block_end,
                prim.xml_name,
                little,
                length=node.length,
                comment=f"{label}: {prim.xml_name}[{node.length}] {where}",
            )
        null = "nil"
        if optional:
            null = (
                _float_literal(float(enc.null_value))
                if prim.is_float
                else _int_literal(int(enc.null_value), prim)
            )
        kind = "optional " if optional else ""
        return FixedCtx(
            "scalar",
            key,
            label,
            offset,
            prim.size,
            since,
            block_end,
            prim.xml_name,
            little,
            null,
            comment=f"{label}: {kind}{prim.xml_name} {where}",
        )

    def constant(
        self,
        key: str,
        label: str,
        node: TypeNode,
        offset: int,
        value: object,
        since: int,
        block_end: int | None,
    ) -> FixedCtx:
        assert not isinstance(node, CompositeType)
        prim = node.encoding.primitive
        if value is None:
            value = node.encoding.constant
        if isinstance(node, EnumType):
            ctor = _PROTO_FIELD[Primitive.UINT8 if prim is Primitive.CHAR else prim]
            self.declare(key, f"ProtoField.{ctor}", label, f", base.DEC, {self.enum_table(node)}")
            literal = _int_literal(int(value), prim)  # type: ignore[call-overload]
        elif prim is Primitive.CHAR:
            self.declare(key, "ProtoField.string", label)
            text = value if isinstance(value, str) else chr(int(value))  # type: ignore[call-overload]
            literal = lua_string(text)
        elif prim.is_float:
            self.declare(key, f"ProtoField.{_PROTO_FIELD[prim]}", label)
            literal = _float_literal(float(value))  # type: ignore[arg-type]
        else:
            self.declare(key, f"ProtoField.{_PROTO_FIELD[prim]}", label, ", base.DEC")
            literal = _int_literal(int(value), prim)  # type: ignore[call-overload]
        return FixedCtx(
            "constant",
            key,
            label,
            offset,
            0,
            since,
            None,
            value=literal,
            comment=f"{label}: constant {prim.xml_name} = {comment_text(str(value))}",
        )

    def member(self, key: str, m: Member) -> FixedCtx:
        node = m.type
        optional = not isinstance(node, CompositeType) and node.encoding.presence is Presence.OPTIONAL
        return self.fixed(
            key, m.name, node, m.offset, optional=optional, since=m.since_version, block_end=None
        )

    def field(self, prefix: str, f: Field) -> FixedCtx:
        key = f"{prefix}.{f.name}"
        if f.is_constant:
            return self.constant(key, f.name, f.type, f.offset, f.constant, f.since_version, None)
        return self.fixed(
            key,
            f.name,
            f.type,
            f.offset,
            optional=f.presence is Presence.OPTIONAL,
            since=f.since_version,
            block_end=f.offset + f.size,
        )

    # ------------------------------------------------------------------------------- blocks

    def block(
        self,
        prefix: str,
        fields: tuple[Field, ...],
        groups: tuple[Group, ...],
        var: tuple[VarData, ...],
        depth: int,
    ) -> BlockCtx:
        return BlockCtx(
            depth,
            [self.field(prefix, f) for f in fields],
            [self.group(prefix, g, depth + 1) for g in groups],
            [self.var_data(prefix, v) for v in var],
        )

    def group(self, prefix: str, g: Group, depth: int) -> GroupCtx:
        key = f"{prefix}.{g.name}"
        bl, num = g.block_length_member, g.num_in_group_member
        assert isinstance(bl.type, EncodedType) and isinstance(num.type, EncodedType)
        self.declare(key, f"ProtoField.{_PROTO_FIELD[num.type.primitive]}", g.name, ", base.DEC")
        taken = {f.name for f in g.fields} | {n.name for n in g.groups} | {v.name for v in g.var_data}
        entry = "entry"
        while entry in taken:
            entry += "_"
        entry_key = self.declare(f"{key}.{entry}", "ProtoField.none", f"{g.name} entry")
        tail = [(n.since_version, n.dimension.size) for n in g.groups]
        tail += [(v.since_version, _prefix_size(v)) for v in g.var_data]
        fixed_tail = sum(size for since, size in tail if since == 0)
        parts = [str(fixed_tail)] + [f"(version >= {since} and {size} or 0)" for since, size in tail if since]
        return GroupCtx(
            key=key,
            entry_key=entry_key,
            label=g.name,
            since=g.since_version,
            depth=depth,
            dim_size=g.dimension.size,
            bl_offset=bl.offset,
            bl_size=bl.type.size,
            bl_primitive=bl.type.primitive.xml_name,
            num_offset=num.offset,
            num_size=num.type.size,
            num_primitive=num.type.primitive.xml_name,
            block_length=g.block_length,
            tail=" + ".join(parts),
            block=self.block(key, g.fields, g.groups, g.var_data, depth),
            comment=f"group {g.name} (id {g.id}): {g.dimension.name}, entries of {g.block_length} bytes",
        )

    def var_data(self, prefix: str, v: VarData) -> VarDataCtx:
        key = f"{prefix}.{v.name}"
        length = v.type.member("length")
        assert length is not None
        text = text_kind(v.character_encoding) if v.is_text else None
        self.declare(key, "ProtoField.string" if text else "ProtoField.bytes", v.name)
        what = f"{v.character_encoding} text" if text else "bytes"
        return VarDataCtx(
            key=key,
            label=v.name,
            since=v.since_version,
            prefix_size=_prefix_size(v),
            length_offset=length.offset,
            length_size=v.length.size,
            length_primitive=v.length.primitive.xml_name,
            text=text,
            comment=f"var data {v.name} (id {v.id}): {v.length.primitive.xml_name} length, then {what}",
        )

    def message(self, m: Message) -> MessageCtx:
        return MessageCtx(
            name=m.name,
            template_id=m.id,
            block_length=m.block_length,
            since=m.since_version,
            block=self.block(m.name, m.fields, m.groups, m.var_data, 0),
            comment=f"{m.name} (template {m.id}): block of {m.block_length} bytes",
        )


def _prefix_size(v: VarData) -> int:
    length = v.type.member("length")
    assert length is not None
    return max(v.data_offset, length.offset + v.length.size)


def _header(schema: Schema) -> HeaderCtx:
    members = {}
    for name in ("blockLength", "templateId", "schemaId", "version"):
        m = schema.header.member(name)
        assert m is not None and isinstance(m.type, EncodedType), f"header has no integer '{name}'"
        members[name] = HeaderMember(name, m.offset, m.type.size, m.type.primitive.xml_name)
    return HeaderCtx(schema.header.size, members)


def build_context(schema: Schema) -> PluginCtx:
    builder = _Builder(schema)
    header = _header(schema)
    builder.declare("message", "ProtoField.string", "Message")
    for key, member, label in (
        ("template_id", "templateId", "Template id"),
        ("schema_id", "schemaId", "Schema id"),
        ("version", "version", "Version"),
        ("block_length", "blockLength", "Block length"),
    ):
        builder.declare(key, f"ProtoField.{header.members[member].primitive}", label, ", base.DEC")
    builder.declare("trailing", "ProtoField.bytes", "Bytes after the message")
    builder.declare("partial", "ProtoField.none", "Partial message (first fragment only)")
    messages = [builder.message(m) for m in schema.messages]
    return PluginCtx(
        proto=proto_name(schema.package),
        schema=schema,
        little_endian="true" if schema.byte_order is ByteOrder.LITTLE_ENDIAN else "false",
        header=header,
        fields=builder.fields,
        enums=builder.enum_tables,
        messages=messages,
    )
