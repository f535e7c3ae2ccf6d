"""A stable, line-per-node text rendering of the IR, for golden tests and for people.

Every line is ``<indent><kind> <name> key=value ...`` with keys in a fixed order
and defaults omitted, so a dump changes only when the schema's meaning does.
``descriptions=False`` leaves out the prose, which is how two schemas are shown
to be wire-identical.
"""

from __future__ import annotations

import math

from codegen.ir.model import (
    CompositeType,
    EncodedType,
    Encoding,
    EnumType,
    Field,
    Group,
    Member,
    Message,
    Presence,
    Schema,
    SetType,
    TypeNode,
    VarData,
)

__all__ = ["dump"]


def _num(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    return str(value)


class _Dumper:
    def __init__(self, descriptions: bool) -> None:
        self.lines: list[str] = []
        self.descriptions = descriptions

    def emit(self, depth: int, head: str, *pairs: tuple[str, object]) -> None:
        parts = [head]
        for key, value in pairs:
            if value is None or value is False:
                continue
            if key == "description" and not self.descriptions:
                continue
            parts.append(f"{key}={_num(value)}")
        self.lines.append("  " * depth + " ".join(parts))

    def common(self, node: object) -> list[tuple[str, object]]:
        since = getattr(node, "since_version", 0)
        return [
            ("sinceVersion", since or None),
            ("deprecated", getattr(node, "deprecated", None)),
            ("description", getattr(node, "description", None)),
        ]

    def encoding(self, enc: Encoding) -> list[tuple[str, object]]:
        pairs: list[tuple[str, object]] = [
            ("primitive", enc.primitive.xml_name),
            ("byteOrder", enc.byte_order.xml_name),
            ("presence", enc.presence.value),
        ]
        if enc.presence is Presence.CONSTANT:
            pairs.append(("constant", enc.constant))
        else:
            pairs += [("null", enc.null_value), ("min", enc.min_value), ("max", enc.max_value)]
        pairs += [
            ("characterEncoding", enc.character_encoding),
            ("semanticType", enc.semantic_type),
        ]
        return pairs

    def type_node(self, depth: int, node: TypeNode, *, expand: bool) -> None:
        if isinstance(node, EncodedType):
            self.emit(
                depth,
                f"type {node.name}",
                ("size", node.size),
                ("length", node.length if node.length != 1 else None),
                *self.encoding(node.encoding),
                ("valueRef", node.value_ref),
                *self.common(node),
            )
        elif isinstance(node, EnumType):
            self.emit(
                depth,
                f"enum {node.name}",
                ("size", node.size),
                *self.encoding(node.encoding),
                *self.common(node),
            )
            if expand:
                for v in node.values:
                    self.emit(depth + 1, f"value {v.name}", ("value", v.value), *self.common(v))
        elif isinstance(node, SetType):
            self.emit(
                depth,
                f"set {node.name}",
                ("size", node.size),
                *self.encoding(node.encoding),
                *self.common(node),
            )
            if expand:
                for c in node.choices:
                    self.emit(depth + 1, f"choice {c.name}", ("bit", c.bit), *self.common(c))
        else:
            self.composite(depth, node, expand=expand)

    def composite(self, depth: int, node: CompositeType, *, expand: bool) -> None:
        self.emit(
            depth,
            f"composite {node.name}",
            ("size", node.size),
            ("semanticType", node.semantic_type),
            *self.common(node),
        )
        if expand:
            for m in node.members:
                self.member(depth + 1, m)

    def member(self, depth: int, m: Member) -> None:
        self.emit(
            depth,
            f"member {m.name} @{m.offset}",
            ("ref", m.type.name if m.type.name != m.name else None),
            *self.common(m),
        )
        self.type_node(depth + 1, m.type, expand=isinstance(m.type, CompositeType))

    def field(self, depth: int, f: Field) -> None:
        self.emit(
            depth,
            f"field {f.name} id={f.id} @{f.offset}",
            ("type", f.type.name),
            ("size", f.size),
            ("presence", f.presence.value),
            ("valueRef", f.value_ref),
            ("constant", f.constant if f.is_constant else None),
            ("semanticType", f.semantic_type),
            ("epoch", f.epoch),
            ("timeUnit", f.time_unit),
            *self.common(f),
        )

    def var_data(self, depth: int, d: VarData) -> None:
        self.emit(
            depth,
            f"data {d.name} id={d.id}",
            ("type", d.type.name),
            ("length", d.length.primitive.xml_name),
            ("lengthMax", d.length.encoding.max_value),
            ("dataOffset", d.data_offset),
            ("element", d.data.primitive.xml_name),
            ("characterEncoding", d.character_encoding),
            ("semanticType", d.semantic_type),
            *self.common(d),
        )

    def body(self, depth: int, node: Message | Group) -> None:
        for f in node.fields:
            self.field(depth, f)
        for g in node.groups:
            self.group(depth, g)
        for d in node.var_data:
            self.var_data(depth, d)

    def group(self, depth: int, g: Group) -> None:
        self.emit(
            depth,
            f"group {g.name} id={g.id}",
            ("blockLength", g.block_length),
            ("dimension", g.dimension.name),
            ("semanticType", g.semantic_type),
            *self.common(g),
        )
        self.body(depth + 1, g)

    def schema(self, s: Schema) -> None:
        self.emit(
            0,
            f"schema {s.package}",
            ("id", s.id),
            ("version", s.version),
            ("semanticVersion", s.semantic_version),
            ("byteOrder", s.byte_order.xml_name),
            ("headerType", s.header.name),
            ("description", s.description),
        )
        self.emit(0, "types")
        for t in s.types:
            self.type_node(1, t, expand=True)
        for m in s.messages:
            self.emit(
                0,
                f"message {m.name} id={m.id}",
                ("blockLength", m.block_length),
                ("semanticType", m.semantic_type),
                *self.common(m),
            )
            self.body(1, m)


def dump(schema: Schema, *, descriptions: bool = True) -> str:
    """Render ``schema`` as stable text; with ``descriptions=False`` only wire facts remain."""
    d = _Dumper(descriptions)
    d.schema(schema)
    return "\n".join(d.lines) + "\n"
