"""Read an SBE 1.0 XML schema, check it against the spec, and resolve it into the IR.

Theory of operation
-------------------
1. lxml parses the file with line numbers kept and XInclude resolved; included
   elements remember their own file (``element.base``), so errors point into
   the right document.
2. Every ``<types>`` child is indexed by name.  Types are resolved on demand,
   memoised, with a stack to reject reference cycles.  Resolving a composite
   lays out its members (explicit ``offset`` honoured, else packed), and
   registers inline enums, sets and composites as named types.
3. Messages and groups are resolved recursively: fields first, then groups,
   then var data, each in schema order, with offsets computed the same way.
4. Every rule violation raises :class:`SchemaError` at the element's line.

Element names are matched by local name, so schemas with or without the
``sbe:`` prefix (or another prefix for the same namespace) read the same.
"""

from __future__ import annotations

import codecs
import hashlib
import math
import re
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NoReturn

from lxml import etree

from codegen.ir.model import (
    ByteOrder,
    Choice,
    CompositeType,
    EncodedType,
    Encoding,
    EnumType,
    EnumValue,
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
from codegen.schema.errors import SchemaError

__all__ = ["load_schema", "parse_schema_bytes"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_HEX = re.compile(r"^[+-]?0[xX][0-9A-Fa-f]+$")
_HEADER_MEMBERS = ("blockLength", "templateId", "schemaId", "version")
_TYPE_TAGS = ("type", "composite", "enum", "set")

Element = etree._Element


def _local(el: Element) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return etree.QName(tag).localname


def _line(el: Element) -> int:
    line = el.sourceline
    return line if isinstance(line, int) else 0


def _children(el: Element) -> list[Element]:
    return [c for c in el if isinstance(c.tag, str)]


@dataclass(slots=True)
class _Layout:
    """Running offset while laying out a block or composite."""

    position: int = 0
    end: int = 0


class _Parser:
    def __init__(self, source: str, base_url: str = "", text: str = "") -> None:
        self.source = source
        self.base_url = base_url
        self.lines = text.splitlines()
        self.byte_order = ByteOrder.LITTLE_ENDIAN
        self.version = 0
        self.raw_types: dict[str, Element] = {}
        self.resolved: dict[str, TypeNode] = {}
        self.resolving: list[str] = []

    # -- errors and attributes -------------------------------------------------

    def fail(self, el: Element | None, problem: str) -> NoReturn:
        file = self.source
        line = None
        if el is not None:
            line = self.line_of(el) or None
            base = el.base
            if base and base != self.base_url:
                file = _display_path(base, self.source)
        raise SchemaError(problem, file=file, line=line)

    def line_of(self, el: Element) -> int:
        """The line where ``el``'s start tag begins.

        libxml2 reports the line on which a start tag *ends*; Aeron's schemas spread attributes over
        several lines, so for elements of the main document we walk back to the ``<tag``.
        """
        line = _line(el)
        if not line or (el.base and el.base != self.base_url):
            return line
        pattern = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?" + re.escape(_local(el)) + r"(?=[\s/>]|$)")
        for candidate in range(min(line, len(self.lines)), max(0, line - 200), -1):
            if pattern.search(self.lines[candidate - 1]):
                return candidate
        return line

    def attr(self, el: Element, name: str, default: str | None = None) -> str | None:
        value = el.get(name)
        return default if value is None else value

    def required(self, el: Element, name: str) -> str:
        value = el.get(name)
        if value is None or value == "":
            self.fail(el, f"<{_local(el)}> is missing the required attribute '{name}'")
        return value

    def name_of(self, el: Element) -> str:
        name = self.required(el, "name")
        if not _NAME.match(name):
            self.fail(el, f"'{name}' is not a valid SBE symbolic name")
        return name

    def int_attr(self, el: Element, name: str, default: int | None = None, *, minimum: int = 0) -> int:
        raw = el.get(name)
        if raw is None:
            if default is None:
                self.fail(el, f"<{_local(el)}> is missing the required attribute '{name}'")
            return default
        if not _INTEGER.match(raw.strip()):
            self.fail(el, f"attribute {name}='{raw}' is not an integer")
        value = int(raw.strip())
        if value < minimum:
            self.fail(el, f"attribute {name}={value} must be at least {minimum}")
        return value

    def version_attrs(self, el: Element) -> tuple[int, int | None]:
        since = self.int_attr(el, "sinceVersion", 0)
        if since > self.version:
            self.fail(el, f"sinceVersion={since} is above the schema version {self.version}")
        deprecated = el.get("deprecated")
        dep = None if deprecated is None else self.int_attr(el, "deprecated")
        return since, dep

    def number(self, el: Element, primitive: Primitive, raw: str, what: str) -> int | float:
        text = raw.strip()
        if primitive is Primitive.CHAR and len(text) == 1:
            return ord(text)  # SBE reads a char value as the character itself, digits included
        if _INTEGER.match(text) and not primitive.is_float:
            return int(text)
        if _HEX.match(text) and not primitive.is_float:
            return int(text, 16)
        if primitive.is_float:
            try:
                return float(text)
            except ValueError:
                pass
        self.fail(el, f"{what} '{raw}' is not a valid {primitive.xml_name}")

    def check_range(self, el: Element, primitive: Primitive, value: float, what: str) -> None:
        if primitive.is_float:
            finite = not (math.isnan(value) or math.isinf(value))
            if primitive is Primitive.FLOAT and finite and abs(value) > Primitive.FLOAT.default_max:
                self.fail(el, f"{what} {value} does not fit in float")
            return
        if not (primitive.wire_min <= value <= primitive.wire_max):
            self.fail(el, f"{what} {value} does not fit in {primitive.xml_name}")

    # -- primitive encodings ---------------------------------------------------

    def primitive_of(self, el: Element, name: str) -> Primitive:
        prim = Primitive.from_xml(name)
        if prim is None:
            self.fail(el, f"unknown primitive type '{name}'")
        return prim

    def encoding(
        self, el: Element, primitive: Primitive, presence: Presence, constant: int | float | str | None = None
    ) -> Encoding:
        null_raw = el.get("nullValue")
        min_raw = el.get("minValue")
        max_raw = el.get("maxValue")
        if null_raw is not None and presence is not Presence.OPTIONAL:
            self.fail(el, "nullValue is only allowed when presence is optional")
        null = (
            primitive.default_null if null_raw is None else self.number(el, primitive, null_raw, "nullValue")
        )
        lo = primitive.default_min if min_raw is None else self.number(el, primitive, min_raw, "minValue")
        hi = primitive.default_max if max_raw is None else self.number(el, primitive, max_raw, "maxValue")
        for value, what in ((null, "nullValue"), (lo, "minValue"), (hi, "maxValue")):
            self.check_range(el, primitive, value, what)
        if not (isinstance(lo, float) and math.isnan(lo)) and lo > hi:
            self.fail(el, f"minValue {lo} is greater than maxValue {hi}")
        char_enc = el.get("characterEncoding")
        if char_enc is None and primitive is Primitive.CHAR:
            char_enc = "US-ASCII"
        if char_enc is not None:
            try:
                codecs.lookup(char_enc)
            except LookupError:
                self.fail(el, f"characterEncoding '{char_enc}' is not a known character encoding")
        if primitive is Primitive.FLOAT and isinstance(null, float) and math.isfinite(null):
            null = _as_float32(null)  # the value a float32 field holding the null reads back as
        return Encoding(
            primitive=primitive,
            byte_order=self.byte_order,
            presence=presence,
            null_value=null,
            min_value=lo,
            max_value=hi,
            constant=constant,
            character_encoding=char_enc,
            semantic_type=el.get("semanticType"),
        )

    def presence_of(self, el: Element, default: Presence = Presence.REQUIRED) -> Presence:
        raw = el.get("presence")
        if raw is None:
            return default
        try:
            return Presence(raw)
        except ValueError:
            self.fail(el, f"presence='{raw}' is not one of required, optional, constant")

    # -- named types -----------------------------------------------------------

    def index_types(self, root: Element) -> None:
        for types_el in root:
            if not isinstance(types_el.tag, str) or _local(types_el) != "types":
                continue
            for el in _children(types_el):
                tag = _local(el)
                if tag not in _TYPE_TAGS:
                    self.fail(el, f"unexpected <{tag}> in <types>")
                self.index_one(el)

    def index_one(self, el: Element) -> None:
        name = self.name_of(el)
        if Primitive.from_xml(name) is not None:
            self.fail(el, f"type name '{name}' clashes with a primitive type")
        if name in self.raw_types:
            first = self.raw_types[name]
            self.fail(el, f"duplicate type name '{name}' (first defined at line {self.line_of(first)})")
        self.raw_types[name] = el
        if _local(el) == "composite":
            for child in _children(el):
                if _local(child) in ("composite", "enum", "set"):
                    self.index_one(child)

    def lookup(self, el: Element, name: str, presence: Presence = Presence.REQUIRED) -> TypeNode:
        """The type ``name`` refers to; a primitive name gives an anonymous type whose encoding
        attributes (``nullValue`` and the like) come from ``el`` itself."""
        if name in self.resolved:
            return self.resolved[name]
        raw = self.raw_types.get(name)
        if raw is None:
            prim = Primitive.from_xml(name)
            if prim is not None:
                return EncodedType(name=name, encoding=self.encoding(el, prim, presence), line=0)
            self.fail(el, f"unknown type '{name}'")
        return self.resolve_named(raw)

    def resolve_named(self, el: Element) -> TypeNode:
        name = self.name_of(el)
        if name in self.resolved:
            return self.resolved[name]
        if name in self.resolving:
            chain = " -> ".join([*self.resolving, name])
            self.fail(el, f"type reference cycle: {chain}")
        self.resolving.append(name)
        try:
            node = self.resolve_type_element(el)
        finally:
            self.resolving.pop()
        self.resolved[name] = node
        return node

    def resolve_type_element(self, el: Element) -> TypeNode:
        tag = _local(el)
        if tag == "type":
            return self.encoded_type(el)
        if tag == "enum":
            return self.enum_type(el)
        if tag == "set":
            return self.set_type(el)
        return self.composite_type(el)

    def encoded_type(self, el: Element) -> EncodedType:
        name = self.name_of(el)
        prim = self.primitive_of(el, self.required(el, "primitiveType"))
        presence = self.presence_of(el)
        since, dep = self.version_attrs(el)
        value_ref = el.get("valueRef")
        constant: int | float | str | None = None
        length = self.int_attr(el, "length", 1)
        if presence is Presence.CONSTANT:
            if value_ref is not None:
                constant = self.resolve_value_ref(el, value_ref)
                self.check_range(el, prim, constant, f"valueRef '{value_ref}' value")
            else:
                text = el.text or ""
                if text.strip() == "" and not (prim is Primitive.CHAR and text):
                    self.fail(el, f"constant type '{name}' has no value")
                if prim is Primitive.CHAR and (length != 1 or len(text.strip()) != 1):
                    constant = text.strip()
                    if el.get("length") is None:
                        length = len(constant)
                    elif len(constant) > length:
                        self.fail(el, f"constant '{constant}' is longer than the length {length} of '{name}'")
                else:
                    constant = self.number(el, prim, text, "constant value")
                    self.check_range(el, prim, constant, "constant value")
        elif value_ref is not None:
            self.fail(el, "valueRef is only allowed when presence is constant")
        return EncodedType(
            name=name,
            encoding=self.encoding(el, prim, presence, constant),
            length=length,
            value_ref=value_ref,
            description=el.get("description"),
            since_version=since,
            deprecated=dep,
            line=self.line_of(el),
        )

    def resolve_value_ref(self, el: Element, ref: str) -> int:
        enum_name, dot, value_name = ref.partition(".")
        if not dot or not enum_name or not value_name:
            self.fail(el, f"valueRef '{ref}' must have the form Enum.value")
        raw = self.raw_types.get(enum_name)
        if raw is None or _local(raw) != "enum":
            self.fail(el, f"valueRef '{ref}' names '{enum_name}', which is not an enum")
        enum_node = self.resolve_named(raw)
        assert isinstance(enum_node, EnumType)
        value = enum_node.value_named(value_name)
        if value is None:
            self.fail(el, f"valueRef '{ref}': enum '{enum_name}' has no value '{value_name}'")
        return value.value

    def encoding_primitive(self, el: Element) -> tuple[Primitive, EncodedType | None]:
        """The primitive under an enum or set: a primitive name, or a named scalar ``<type>``."""
        enc_name = self.required(el, "encodingType")
        prim = Primitive.from_xml(enc_name)
        if prim is not None:
            return prim, None
        raw = self.raw_types.get(enc_name)
        if raw is None:
            self.fail(el, f"unknown encodingType '{enc_name}'")
        node = self.resolve_named(raw)
        if not isinstance(node, EncodedType) or node.length != 1 or node.is_constant:
            self.fail(el, f"encodingType '{enc_name}' must be a scalar primitive type")
        return node.primitive, node

    def enum_set_encoding(self, el: Element, prim: Primitive, via: EncodedType | None) -> Encoding:
        """An enum's or set's encoding: its own attributes first, then its named encoding type's,
        then the primitive's defaults (as sbe-tool resolves them)."""
        if via is None:
            return self.encoding(el, prim, self.presence_of(el))
        base = via.encoding
        presence = self.presence_of(el, base.presence)
        null_raw = el.get("nullValue")
        if null_raw is not None and presence is not Presence.OPTIONAL:
            self.fail(el, "nullValue is only allowed when presence is optional")
        null = base.null_value if null_raw is None else self.number(el, prim, null_raw, "nullValue")
        self.check_range(el, prim, null, "nullValue")
        return replace(
            base,
            presence=presence,
            null_value=null,
            semantic_type=el.get("semanticType") or base.semantic_type,
        )

    def enum_type(self, el: Element) -> EnumType:
        name = self.name_of(el)
        prim, via = self.encoding_primitive(el)
        if prim.is_float:
            self.fail(el, f"enum '{name}' cannot be encoded as {prim.xml_name}")
        since, dep = self.version_attrs(el)
        encoding = self.enum_set_encoding(el, prim, via)
        values: list[EnumValue] = []
        seen_names: set[str] = set()
        seen_values: dict[int, str] = {}
        for child in _children(el):
            if _local(child) != "validValue":
                self.fail(child, f"unexpected <{_local(child)}> in enum '{name}'")
            vname = self.name_of(child)
            text = (child.text or "").strip()
            if text == "":
                self.fail(child, f"enum value '{name}.{vname}' has no value")
            if prim is Primitive.CHAR:
                if len(text) != 1:
                    self.fail(child, f"char enum value '{name}.{vname}' must be one character, got '{text}'")
                value = ord(text)
            else:
                try:
                    value = int(text)
                except ValueError:
                    self.fail(child, f"enum value '{name}.{vname}' = '{text}' is not an integer")
            lo, hi = encoding.min_value, encoding.max_value
            if not (lo <= value <= hi):
                self.fail(
                    child,
                    f"enum value '{name}.{vname}' = {text} is outside the {prim.xml_name} range {lo}..{hi}",
                )
            if vname in seen_names:
                self.fail(child, f"duplicate value name '{vname}' in enum '{name}'")
            if value in seen_values:
                self.fail(child, f"enum '{name}': '{vname}' repeats the value of '{seen_values[value]}'")
            seen_names.add(vname)
            seen_values[value] = vname
            vsince, vdep = self.version_attrs(child)
            values.append(EnumValue(vname, value, text, child.get("description"), vsince, vdep))
        if not values:
            self.fail(el, f"enum '{name}' has no validValue")
        return EnumType(name, encoding, tuple(values), el.get("description"), since, dep, self.line_of(el))

    def set_type(self, el: Element) -> SetType:
        name = self.name_of(el)
        prim, via = self.encoding_primitive(el)
        if prim.is_float or prim.is_signed:
            self.fail(el, f"set '{name}' must be encoded as an unsigned integer, not {prim.xml_name}")
        since, dep = self.version_attrs(el)
        encoding = self.enum_set_encoding(el, prim, via)
        choices: list[Choice] = []
        seen: set[str] = set()
        bits: dict[int, str] = {}
        for child in _children(el):
            if _local(child) != "choice":
                self.fail(child, f"unexpected <{_local(child)}> in set '{name}'")
            cname = self.name_of(child)
            text = (child.text or "").strip()
            try:
                bit = int(text)
            except ValueError:
                self.fail(child, f"set choice '{name}.{cname}' = '{text}' is not a bit number")
            if not (0 <= bit < prim.size * 8):
                self.fail(child, f"set choice '{name}.{cname}' bit {bit} is outside 0..{prim.size * 8 - 1}")
            if cname in seen:
                self.fail(child, f"duplicate choice name '{cname}' in set '{name}'")
            if bit in bits:
                self.fail(child, f"set '{name}': '{cname}' repeats bit {bit} of '{bits[bit]}'")
            seen.add(cname)
            bits[bit] = cname
            csince, cdep = self.version_attrs(child)
            choices.append(Choice(cname, bit, child.get("description"), csince, cdep))
        return SetType(name, encoding, tuple(choices), el.get("description"), since, dep, self.line_of(el))

    def composite_type(self, el: Element) -> CompositeType:
        name = self.name_of(el)
        since, dep = self.version_attrs(el)
        layout = _Layout()
        members: list[Member] = []
        seen: set[str] = set()
        for child in _children(el):
            tag = _local(child)
            if tag == "ref":
                mname = self.name_of(child)
                node = self.lookup(child, self.required(child, "type"))
                msince, mdep = self.version_attrs(child)
            elif tag == "type":
                mname = self.name_of(child)
                node = self.encoded_type(child)
                if mname == "varData" and child.get("length") is None:
                    node = replace(node, length=0)  # the bytes of var data; SBE sizes it as 0
                msince, mdep = node.since_version, node.deprecated
            elif tag in ("enum", "set", "composite"):
                node = self.resolve_named(child)
                mname = node.name
                msince, mdep = node.since_version, node.deprecated
            else:
                self.fail(child, f"unexpected <{tag}> in composite '{name}'")
            if mname in seen:
                self.fail(child, f"duplicate member name '{mname}' in composite '{name}'")
            seen.add(mname)
            offset = self.place(child, layout, node.size, f"member '{mname}'")
            members.append(Member(mname, offset, node, msince, mdep, child.get("description")))
        if not members:
            self.fail(el, f"composite '{name}' has no members")
        return CompositeType(
            name,
            tuple(members),
            layout.end,
            el.get("description"),
            el.get("semanticType"),
            since,
            dep,
            self.line_of(el),
        )

    def place(self, el: Element, layout: _Layout, size: int, what: str) -> int:
        """Lay out ``size`` bytes, honouring an explicit ``offset``; return the offset."""
        raw = el.get("offset")
        if raw is None:
            offset = layout.position
        else:
            offset = self.int_attr(el, "offset")
            if offset < layout.position:
                self.fail(
                    el,
                    f"{what} at offset {offset} overlaps the previous element, "
                    f"which ends at {layout.position}",
                )
        if size:
            layout.position = offset + size
        else:
            layout.position = max(layout.position, offset)
        layout.end = max(layout.end, layout.position)
        return offset

    # -- messages ------------------------------------------------------------

    def field(self, el: Element, layout: _Layout) -> Field:
        name = self.name_of(el)
        fid = self.int_attr(el, "id")
        type_name = self.required(el, "type")
        node = self.lookup(el, type_name, self.presence_of(el))
        since, dep = self.version_attrs(el)
        type_presence = node.presence if isinstance(node, EncodedType) else node_presence(node)
        presence = self.presence_of(el, type_presence)
        value_ref = el.get("valueRef")
        constant: int | float | str | None = None
        if presence is Presence.CONSTANT:
            if value_ref is not None:
                constant = self.resolve_value_ref(el, value_ref)
                if isinstance(node, EnumType) and value_ref.partition(".")[0] != node.name:
                    self.fail(el, f"valueRef '{value_ref}' does not name a value of enum '{node.name}'")
            elif isinstance(node, EncodedType) and node.is_constant:
                constant = node.encoding.constant
            else:
                self.fail(el, f"constant field '{name}' needs a valueRef or a constant type")
        elif value_ref is not None:
            self.fail(el, "valueRef is only allowed when presence is constant")
        elif isinstance(node, EncodedType) and node.is_constant:
            self.fail(el, f"field '{name}' has a constant type but presence '{presence.value}'")
        size = 0 if presence is Presence.CONSTANT else node.size
        offset = self.place(el, layout, size, f"field '{name}'")
        return Field(
            name=name,
            id=fid,
            offset=offset,
            type=node,
            presence=presence,
            value_ref=value_ref,
            constant=constant,
            since_version=since,
            deprecated=dep,
            description=el.get("description"),
            semantic_type=el.get("semanticType"),
            epoch=el.get("epoch"),
            time_unit=el.get("timeUnit"),
            line=self.line_of(el),
        )

    def var_data(self, el: Element) -> VarData:
        name = self.name_of(el)
        did = self.int_attr(el, "id")
        node = self.lookup(el, self.required(el, "type"))
        if not isinstance(node, CompositeType):
            self.fail(el, f"var data '{name}' must use a composite type with 'length' and 'varData'")
        length = node.member("length")
        data = node.member("varData")
        if length is None or data is None:
            self.fail(el, f"var data '{name}': composite '{node.name}' needs members 'length' and 'varData'")
        if (
            not isinstance(length.type, EncodedType)
            or length.type.is_array
            or length.type.primitive
            not in (
                Primitive.UINT8,
                Primitive.UINT16,
                Primitive.UINT32,
            )
        ):
            self.fail(el, f"var data '{name}': the length of '{node.name}' must be uint8, uint16 or uint32")
        if length.offset != 0 or data.offset != length.type.size:
            self.fail(
                el,
                f"var data '{name}': '{node.name}' must hold its length at offset 0 and its bytes right "
                f"after it (found length @{length.offset}, varData @{data.offset})",
            )
        if not isinstance(data.type, EncodedType) or data.type.primitive.size != 1:
            self.fail(el, f"var data '{name}': varData of '{node.name}' must be a uint8 or char element")
        since, dep = self.version_attrs(el)
        return VarData(
            name=name,
            id=did,
            type=node,
            length=length.type,
            data=data.type,
            data_offset=data.offset,
            since_version=since,
            deprecated=dep,
            description=el.get("description"),
            semantic_type=el.get("semanticType"),
            line=self.line_of(el),
        )

    def body(
        self, el: Element, owner: str
    ) -> tuple[tuple[Field, ...], tuple[Group, ...], tuple[VarData, ...], int]:
        fields: list[Field] = []
        groups: list[Group] = []
        datas: list[VarData] = []
        layout = _Layout()
        names: dict[str, int] = {}
        ids: dict[int, str] = {}
        for child in _children(el):
            tag = _local(child)
            if tag == "field":
                if groups or datas:
                    self.fail(
                        child, f"field '{child.get('name')}' in {owner} comes after a group or var data"
                    )
                new_field = self.field(child, layout)
                fields.append(new_field)
                item: Field | Group | VarData = new_field
            elif tag == "group":
                if datas:
                    self.fail(child, f"group '{child.get('name')}' in {owner} comes after var data")
                new_group = self.group(child)
                groups.append(new_group)
                item = new_group
            elif tag == "data":
                new_data = self.var_data(child)
                datas.append(new_data)
                item = new_data
            else:
                self.fail(child, f"unexpected <{tag}> in {owner}")
            if item.name in names:
                self.fail(
                    child, f"duplicate name '{item.name}' in {owner} (first at line {names[item.name]})"
                )
            if item.id in ids:
                self.fail(child, f"duplicate id {item.id} in {owner}: '{item.name}' and '{ids[item.id]}'")
            names[item.name] = self.line_of(child)
            ids[item.id] = item.name
        block_length = layout.end
        explicit = el.get("blockLength")
        if explicit is not None:
            declared = self.int_attr(el, "blockLength")
            if declared < block_length:
                self.fail(
                    el, f"blockLength={declared} of {owner} is smaller than its fields need ({block_length})"
                )
            block_length = declared
        return tuple(fields), tuple(groups), tuple(datas), block_length

    def group(self, el: Element) -> Group:
        name = self.name_of(el)
        gid = self.int_attr(el, "id")
        dim_name = el.get("dimensionType", "groupSizeEncoding")
        dim = self.lookup(el, dim_name)
        if not isinstance(dim, CompositeType):
            self.fail(el, f"dimensionType '{dim_name}' of group '{name}' is not a composite")
        bl = dim.member("blockLength")
        num = dim.member("numInGroup")
        for member, mname in ((bl, "blockLength"), (num, "numInGroup")):
            if member is None:
                self.fail(el, f"dimensionType '{dim_name}' of group '{name}' has no '{mname}' member")
            if (
                not isinstance(member.type, EncodedType)
                or member.type.is_array
                or member.type.primitive.is_float
                or member.type.primitive.is_signed
                or member.type.is_constant
            ):
                self.fail(el, f"'{dim_name}.{mname}' must be an unsigned integer type")
        assert bl is not None and num is not None
        since, dep = self.version_attrs(el)
        fields, groups, datas, block_length = self.body(el, f"group '{name}'")
        assert isinstance(bl.type, EncodedType)
        bl_max = bl.type.primitive.wire_max
        if block_length > bl_max:
            self.fail(
                el,
                f"group '{name}' blockLength {block_length} does not fit in '{dim_name}.blockLength' "
                f"(at most {bl_max:g})",
            )
        return Group(
            name=name,
            id=gid,
            dimension=dim,
            block_length_member=bl,
            num_in_group_member=num,
            block_length=block_length,
            fields=fields,
            groups=groups,
            var_data=datas,
            since_version=since,
            deprecated=dep,
            description=el.get("description"),
            semantic_type=el.get("semanticType"),
            line=self.line_of(el),
        )

    def message(self, el: Element) -> Message:
        name = self.name_of(el)
        mid = self.int_attr(el, "id")
        since, dep = self.version_attrs(el)
        fields, groups, datas, block_length = self.body(el, f"message '{name}'")
        return Message(
            name=name,
            id=mid,
            block_length=block_length,
            fields=fields,
            groups=groups,
            var_data=datas,
            description=el.get("description"),
            semantic_type=el.get("semanticType"),
            since_version=since,
            deprecated=dep,
            line=self.line_of(el),
        )

    # -- the schema ------------------------------------------------------------

    def header(self, root: Element, header_name: str) -> CompositeType:
        raw = self.raw_types.get(header_name)
        if raw is None or _local(raw) != "composite":
            self.fail(root, f"headerType '{header_name}' is not a composite defined in <types>")
        node = self.resolve_named(raw)
        assert isinstance(node, CompositeType)
        for member_name in _HEADER_MEMBERS:
            m = node.member(member_name)
            if m is None:
                self.fail(raw, f"header composite '{header_name}' has no '{member_name}' member")
            if (
                not isinstance(m.type, EncodedType)
                or m.type.is_array
                or m.type.primitive.is_float
                or m.type.is_constant
            ):
                self.fail(raw, f"header member '{header_name}.{member_name}' must be an integer type")
        return node

    def schema(self, root: Element, data: bytes, includes: tuple[str, ...]) -> Schema:
        if _local(root) != "messageSchema":
            self.fail(root, f"the root element is <{_local(root)}>, not <messageSchema>")
        package = root.get("package") or ""
        schema_id = self.int_attr(root, "id")
        self.version = self.int_attr(root, "version", 0)
        order = root.get("byteOrder", "littleEndian")
        for candidate in ByteOrder:
            if candidate.xml_name == order:
                self.byte_order = candidate
                break
        else:
            self.fail(root, f"byteOrder='{order}' is not littleEndian or bigEndian")
        self.index_types(root)
        header = self.header(root, root.get("headerType", "messageHeader"))
        self.check_header_fits(root, header, schema_id)
        for raw in self.raw_types.values():
            self.resolve_named(raw)
        messages: list[Message] = []
        names: dict[str, Message] = {}
        ids: dict[int, Message] = {}
        for el in _children(root):
            tag = _local(el)
            if tag == "message":
                msg = self.message(el)
                self.check_message_fits(el, header, msg)
                if msg.name in names:
                    self.fail(
                        el, f"duplicate message name '{msg.name}' (first at line {names[msg.name].line})"
                    )
                if msg.id in ids:
                    self.fail(el, f"duplicate message id {msg.id}: '{msg.name}' and '{ids[msg.id].name}'")
                names[msg.name] = ids[msg.id] = msg
                messages.append(msg)
            elif tag != "types":
                self.fail(el, f"unexpected <{tag}> in <messageSchema>")
        ordered = [self.resolved[name] for name in self.raw_types if self.resolved[name] is not header]
        return Schema(
            package=package,
            id=schema_id,
            version=self.version,
            semantic_version=root.get("semanticVersion"),
            byte_order=self.byte_order,
            description=root.get("description"),
            header=header,
            types=(header, *ordered),
            messages=tuple(messages),
            source=self.source,
            sha256=hashlib.sha256(data).hexdigest(),
            includes=includes,
        )

    def check_header_fits(self, root: Element, header: CompositeType, schema_id: int) -> None:
        if schema_id > self.header_limit(header, "schemaId"):
            self.fail(root, f"schema id {schema_id} does not fit in the header's schemaId")
        if self.version > self.header_limit(header, "version"):
            self.fail(root, f"schema version {self.version} does not fit in the header's version")

    def check_message_fits(self, el: Element, header: CompositeType, msg: Message) -> None:
        if msg.id > self.header_limit(header, "templateId"):
            self.fail(el, f"message '{msg.name}' id {msg.id} does not fit in the header's templateId")
        if msg.block_length > self.header_limit(header, "blockLength"):
            self.fail(el, f"message '{msg.name}' blockLength {msg.block_length} does not fit in the header")

    @staticmethod
    def header_limit(header: CompositeType, member: str) -> float:
        m = header.member(member)
        assert m is not None and isinstance(m.type, EncodedType)
        return m.type.primitive.wire_max


def _as_float32(value: float) -> float:
    rounded: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return rounded


def node_presence(node: TypeNode) -> Presence:
    if isinstance(node, (EnumType, SetType)):
        return node.encoding.presence
    return Presence.REQUIRED


def _display_path(base: str, fallback: str) -> str:
    if base.startswith("file://"):
        base = base[len("file://") :]
    return base or fallback


def parse_schema_bytes(data: bytes, source: str = "<memory>", base_dir: str | Path | None = None) -> Schema:
    """Parse schema XML held in memory; ``base_dir`` resolves relative XIncludes."""
    parser = etree.XMLParser(remove_comments=True, resolve_entities=False, no_network=True, huge_tree=False)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    base_url = str(base / Path(source).name)
    try:
        root = etree.fromstring(data, parser, base_url=base_url)
    except etree.XMLSyntaxError as exc:
        raise SchemaError(f"not well-formed XML: {exc.msg}", file=source, line=exc.lineno) from None
    includes: list[str] = []
    for inc in root.iter("{http://www.w3.org/2001/XInclude}include"):
        includes.append(inc.get("href", ""))
    if includes:
        try:
            tree = root.getroottree()
            tree.xinclude()
            root = tree.getroot()
        except etree.XIncludeError as exc:
            last = exc.error_log.last_error if exc.error_log else None
            line = last.line if last is not None and last.line > 0 else None
            raise SchemaError(f"XInclude failed: {exc}", file=source, line=line) from None
    text = data.decode("utf-8", errors="replace")
    return _Parser(source, base_url, text).schema(root, data, tuple(includes))


def load_schema(path: str | Path) -> Schema:
    """Parse, validate and resolve the schema file at ``path``."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise SchemaError(f"cannot read schema: {exc.strerror}", file=str(path), line=None) from None
    return parse_schema_bytes(data, source=str(path), base_dir=p.resolve().parent)
