"""Hypothesis strategies for valid SBE field values, derived generically from the IR.

``values_for(schema, message)`` draws a fields dict in the JSON form of ``docs/sbe-json.md`` that any
conforming codec must round-trip exactly: ``decode(encode(values)) == values``.  So it draws only
values that survive the trip:

* integers within the type's minValue..maxValue; an optional scalar is ``None`` or a non-null value;
* floats representable in the wire width (float32 for ``float``), never NaN, never infinite;
* char arrays as text of the type's character encoding that fits in the array and has no NUL;
* enums as valid value names (``None`` too when optional), sets as choice names in choice order;
* arrays as lists of exactly ``length`` numbers, composites as objects of their non-constant members;
* groups as lists of up to ``max_entries`` entries, var data as text or ``{"hex": ...}``.

Constants are never drawn (codecs omit them).  Usage::

    from support.sbe_values import values_for

    @given(st.data())
    def test_round_trip(data):
        fields = data.draw(values_for(schema, "Car"))
"""

from __future__ import annotations

import codecs
from typing import Any

from hypothesis import strategies as st

from codegen.ir import (
    CompositeType,
    EncodedType,
    EnumType,
    Field,
    Group,
    Message,
    Presence,
    Primitive,
    Schema,
    SetType,
    TypeNode,
    VarData,
)

__all__ = ["type_values", "values_for"]

_ASCII_NAMES = {"ascii", "us-ascii"}


def values_for(
    schema: Schema, message: Message | str, *, max_entries: int = 3, max_text: int = 24
) -> st.SearchStrategy[dict[str, Any]]:
    """A strategy of valid fields dicts for ``message`` (a Message or its name) of ``schema``."""
    if isinstance(message, str):
        found = schema.message_named(message)
        if found is None:
            raise KeyError(f"schema {schema.package} has no message {message!r}")
        message = found
    return _body(message.fields, message.groups, message.var_data, max_entries, max_text)


def _body(
    fields: tuple[Field, ...],
    groups: tuple[Group, ...],
    var_data: tuple[VarData, ...],
    max_entries: int,
    max_text: int,
) -> st.SearchStrategy[dict[str, Any]]:
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for f in fields:
        if f.is_constant or _is_constant(f.type):
            continue
        parts[f.name] = type_values(f.type, optional=f.presence is Presence.OPTIONAL)
    for g in groups:
        num = g.num_in_group_member.type
        assert isinstance(num, EncodedType)
        limit = min(max_entries, int(num.encoding.max_value))
        entry = _body(g.fields, g.groups, g.var_data, max(max_entries - 1, 1), max_text)
        parts[g.name] = st.lists(entry, max_size=limit)
    for v in var_data:
        parts[v.name] = _var_data(v, max_text)
    return st.fixed_dictionaries(parts)


def _is_constant(node: TypeNode) -> bool:
    return not isinstance(node, CompositeType) and node.encoding.presence is Presence.CONSTANT


def _declares_optional(node: TypeNode) -> bool:
    return not isinstance(node, CompositeType) and node.encoding.presence is Presence.OPTIONAL


def type_values(node: TypeNode, *, optional: bool = False) -> st.SearchStrategy[Any]:
    """Valid JSON values of one (non-constant) type; ``optional`` is the field's effective presence."""
    if isinstance(node, CompositeType):
        return st.fixed_dictionaries(
            {
                m.name: type_values(m.type, optional=_declares_optional(m.type))
                for m in node.members
                if not _is_constant(m.type)
            }
        )
    if isinstance(node, EnumType):
        names: st.SearchStrategy[Any] = (
            st.sampled_from([v.name for v in node.values]) if node.values else st.none()
        )
        return st.none() | names if optional else names
    if isinstance(node, SetType):
        choices = [c.name for c in node.choices]
        return st.lists(st.booleans(), min_size=len(choices), max_size=len(choices)).map(
            lambda picks: [name for name, picked in zip(choices, picks, strict=True) if picked]
        )
    prim = node.encoding.primitive
    if prim is Primitive.CHAR and node.length != 1:
        return _text(node.encoding.character_encoding, node.length, node.length)
    element = _scalar(node)
    if node.length != 1:
        return st.lists(element, min_size=node.length, max_size=node.length)
    if optional:
        null = node.encoding.null_value
        return st.none() | element.filter(lambda value: value != null)
    return element


def _scalar(node: EncodedType) -> st.SearchStrategy[Any]:
    enc = node.encoding
    prim = enc.primitive
    if prim is Primitive.CHAR:
        lo, hi = int(enc.min_value), int(enc.max_value)
        return st.integers(max(lo, 1), hi).map(chr)
    if prim.is_float:
        return st.floats(
            min_value=float(enc.min_value),
            max_value=float(enc.max_value),
            width=32 if prim is Primitive.FLOAT else 64,
            allow_nan=False,
            allow_infinity=False,
        )
    return st.integers(int(enc.min_value), int(enc.max_value))


def _text(encoding: str | None, max_bytes: int, max_chars: int) -> st.SearchStrategy[str]:
    name = (encoding or "US-ASCII").lower()
    if name in _ASCII_NAMES:
        alphabet = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    else:
        codec = codecs.lookup(name).name
        alphabet = st.characters(codec=codec, exclude_characters="\x00", exclude_categories=["Cs"])
    return st.text(alphabet, max_size=max_chars).filter(lambda text: len(text.encode(name)) <= max_bytes)


def _var_data(v: VarData, max_text: int) -> st.SearchStrategy[Any]:
    limit = min(int(v.length.encoding.max_value), max_text)
    if v.character_encoding is not None:
        return _text(v.character_encoding, limit, limit)
    return st.binary(max_size=limit).map(lambda data: {"hex": data.hex()})
