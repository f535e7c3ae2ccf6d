"""Turn the IR into the template context of the Python target: names, struct formats, accessors.

Everything that needs thought is decided here, in Python, so the templates stay
simple loops.  The context objects are plain dataclasses; each field accessor
carries the snippets (struct names, offsets, null checks) its template needs.
"""

from __future__ import annotations

import keyword
import math
import re
import struct
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from codegen.ir.model import (
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
)

__all__ = [
    "Accessor",
    "BlockCtx",
    "CompositeCtx",
    "EnumCtx",
    "GroupCtx",
    "HeaderCtx",
    "MessageCtx",
    "ModuleContext",
    "Section",
    "SetCtx",
    "StructDef",
    "StructRegistry",
    "build_context",
    "class_name",
    "layout_comment",
    "layout_fmt",
    "snake",
    "upper_snake",
]

_RESERVED = (
    set(keyword.kwlist)
    | {
        "wrap",
        "wrap_header",
        "wrap_and_apply_header",
        "from_header",
        "to_dict",
        "from_dict",
        "read_block",
        "unpack",
        "pack_into",
        "count",
        "next",
        "total_length",
        "encoded_length",
        "self",
        "buffer",
        "offset",
        "acting_version",
        "acting_block_length",
        "limit",
        "finish",
        "property",  # used at class level by the generated encoders
        "staticmethod",
        "None",
        "True",
        "False",
    }
)


def snake(name: str) -> str:
    """``leadershipTermId`` -> ``leadership_term_id``; ``EC`` -> ``ec``; ``S8`` -> ``s8``."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = s.lower()
    if s in _RESERVED or s.startswith("_"):
        s = s.lstrip("_") + "_"
    return s


def class_name(name: str) -> str:
    base = name.lstrip("_") or "T"
    base = base[:1].upper() + base[1:]
    if keyword.iskeyword(base):
        base += "_"
    return base


# Names the generated module defines itself; a schema type may not take them.
MODULE_GLOBALS = frozenset(
    {
        "Any",
        "BYTE_ORDER",
        "CodecError",
        "DECODERS",
        "ENCODERS",
        "HEADER_SIZE",
        "MESSAGES_BY_NAME",
        "SCHEMA_ID",
        "SCHEMA_PACKAGE",
        "SCHEMA_SHA256",
        "SCHEMA_VERSION",
        "decode",
        "encode_dict",
    }
)

# Attributes of Enum/Flag members and classes that a member name must not shadow.
_ENUM_INTERNALS = frozenset({"name", "value", "mro", "NULL_VALUE"})


def member_names(names: list[str]) -> list[str]:
    """Names usable as enum or set members: schema names kept where Python allows, unique."""
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        py = name.lstrip("_") or "v"
        if py[0].isdigit():
            py = f"v{py}"
        if keyword.iskeyword(py) or py in _ENUM_INTERNALS:
            py += "_"
        while py in seen or py in _ENUM_INTERNALS:
            py += "_"
        seen.add(py)
        out.append(py)
    return out


class NameAllocator:
    """Python names for the accessors of one class.  A field ``x`` also owns ``x_raw``, ``x_bytes``,
    ``x_str``, ``x_count``, ``put_x`` and ``_set_x`` (whichever its kind generates), so every one of
    those is reserved together and a later field that would collide is renamed instead."""

    def __init__(self) -> None:
        self.taken: set[str] = set(_RESERVED)

    @staticmethod
    def derived(py: str) -> set[str]:
        return {py, f"{py}_raw", f"{py}_bytes", f"{py}_str", f"{py}_count", f"put_{py}", f"_set_{py}"}

    def allocate(self, schema_name: str) -> str:
        py = snake(schema_name)
        while self.derived(py) & self.taken:
            py += "_"
        self.taken |= self.derived(py)
        return py


def literal(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "_NAN"
        if math.isinf(value):
            return "_INF" if value > 0 else "-_INF"
        return repr(value)
    return repr(value)


# Struct codes -> the SBE type a field struct is named after (CHAR arrays read as bytes, "Ns", apart).
_TYPE_NAMES = {
    "b": "INT8",
    "B": "UINT8",
    "h": "INT16",
    "H": "UINT16",
    "i": "INT32",
    "I": "UINT32",
    "q": "INT64",
    "Q": "UINT64",
    "f": "FLOAT",
    "d": "DOUBLE",
}
_ORDER_NAMES = {"<": "LE", ">": "BE"}


def upper_snake(name: str) -> str:
    """``SessionMessageHeader`` -> ``SESSION_MESSAGE_HEADER``: a schema name as a constant's stem."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return re.sub(r"_+", "_", s).strip("_").upper() or "T"


@dataclass
class StructDef:
    """One module-level ``struct.Struct`` constant, with the comment lines written above it."""

    name: str
    fmt: str
    comment: list[str] = field(default_factory=list)


class StructRegistry:
    """The module-level ``struct.Struct`` constants of one generated module, by name.

    Two kinds, named so that a reader knows what a read or write does without looking them up:

    * field structs, named by SBE type, byte order and count, shared by every field of that type:
      ``_INT64_LE`` (``"<q"``), ``_UINT8`` (one-byte types have no byte order), ``_UINT32_BE_X4``
      (``uint32[4]``), ``_CHAR_X6`` (``char[6]``, read as bytes; ``_CHAR`` for a single char).  The
      offset is not in the struct: every read and write names it, ``self._offset + 8``.
    * layout structs, one per composite, message block or group entry block, named after what they
      cover (``_MESSAGE_HEADER_LAYOUT``, ``_SESSION_MESSAGE_HEADER_BLOCK``,
      ``_SESSION_MESSAGE_HEADER_WITH_HEADER``), with the fields and offsets they cover listed in a
      comment; the fast paths read or write a whole block with them in one call.

    No struct covers zero bytes: fields and blocks without bytes are read and written without one.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.fields: dict[str, StructDef] = {}  # emitted once at the top of the module
        self.zero_structs: dict[str, StructDef] = {}  # and these after them
        self.taken: set[str] = set()

    def _check(self, name: str, fmt: str) -> None:
        assert struct.calcsize(fmt) > 0, f"{name}: a struct of no bytes ({fmt!r})"

    def primitive(self, code: str, count: int = 1, *, char: bool = False) -> str:
        """The field struct of ``count`` values of struct code ``code`` (``char``: a char array)."""
        if char:
            name = "_CHAR" if count == 1 else f"_CHAR_X{count}"
            fmt = f"{self.prefix}{count}s"
        else:
            name = f"_{_TYPE_NAMES[code]}"
            if struct.calcsize(code) > 1:
                name += f"_{_ORDER_NAMES[self.prefix]}"
            if count != 1:
                name += f"_X{count}"
            fmt = self.prefix + (code if count == 1 else f"{count}{code}")
        existing = self.fields.get(name)
        if existing is None:
            self._check(name, fmt)
            self.fields[name] = StructDef(name, fmt)
            self.taken.add(name)
        else:
            assert existing.fmt == fmt, (name, existing.fmt, fmt)
        return name

    def zeros(self, header_fmt: str, size: int, *, with_header: bool) -> str:
        """A struct writing ``size`` zero bytes (after the message header, if ``with_header``)."""
        assert size > 0
        if with_header:
            name, fmt = f"_HEADER_AND_ZEROS_{size}", f"{header_fmt}{size}x"
        else:
            name, fmt = f"_ZEROS_{size}", f"{self.prefix}{size}x"
        if name not in self.zero_structs:
            self._check(name, fmt)
            self.zero_structs[name] = StructDef(name, fmt)
            self.taken.add(name)
        return name

    def layout(self, stem: str, fmt: str, comment: list[str]) -> StructDef:
        """A new layout struct named ``_<STEM>`` (made unique); the caller emits it beside its class."""
        base = f"_{stem}"
        name = base
        n = 2
        while name in self.taken:
            name = f"{base}_{n}"
            n += 1
        self._check(name, fmt)
        self.taken.add(name)
        return StructDef(name, fmt, comment)

    def field_items(self) -> list[StructDef]:
        """The field structs, in a fixed order: by type (chars first), then size."""
        order = ["CHAR", *_TYPE_NAMES.values()]

        def key(d: StructDef) -> tuple[int, int]:
            return (order.index(d.name[1:].split("_")[0]), struct.calcsize(d.fmt))

        return sorted(self.fields.values(), key=key)

    def zero_items(self) -> list[StructDef]:
        """The zero structs: ``_ZEROS_<n>`` by size, then ``_HEADER_AND_ZEROS_<n>`` by size."""
        return sorted(
            self.zero_structs.values(), key=lambda d: (d.name.startswith("_HEADER"), struct.calcsize(d.fmt))
        )


Kind = Literal["int", "float", "enum", "set", "text", "array", "composite", "constant"]


@dataclass
class Accessor:
    """One fixed-size field or composite member, as the templates need it."""

    json_name: str
    py_name: str
    kind: Kind
    offset: int
    size: int
    since_version: int
    end: int
    struct: str = ""  # the field struct (by type and byte order); "" for a field of no bytes
    fmt: str = ""
    optional: bool = False
    null: str = ""
    is_float: bool = False
    length: int = 1
    type_class: str = ""
    decoder_class: str = ""  # composites: the flyweight classes
    encoder_class: str = ""
    encoding: str = ""
    constant: str = ""
    constant_json: str = ""
    primitive: str = ""
    deprecated: bool = False
    check: str = ""
    doc: str = ""


@dataclass
class Section:
    """A group or var-data section of a message or group entry."""

    kind: Literal["group", "data"]
    json_name: str
    py_name: str
    index: int
    since_version: int
    # group
    decoder: str = ""
    encoder: str = ""
    group: GroupCtx | None = None
    # var data
    length_struct: str = ""
    prefix: int = 0
    max_length: int = 0
    encoding: str = ""
    check: str = ""


class _BlockParts(TypedDict):
    name: str
    json_name: str
    decoder: str
    encoder: str
    block_length: int
    fields: list[Accessor]
    sections: list[Section]
    doc: str
    base_end: int
    max_since: int
    block_struct: str
    block_fmt: str
    block_plan: list[tuple[int, int, int, int]]
    flat_count: int
    struct_defs: list[StructDef]


@dataclass
class BlockCtx:
    """What messages and group entries share: a fixed block, then sections."""

    name: str
    json_name: str
    decoder: str
    encoder: str
    block_length: int
    base_end: int
    max_since: int
    fields: list[Accessor]
    sections: list[Section]
    block_struct: str  # the whole block in one read ("" when the block holds no values)
    block_fmt: str
    block_plan: list[tuple[int, int, int, int]]
    flat_count: int
    struct_defs: list[StructDef]  # the layout structs emitted just before the block's classes
    doc: str = ""
    zero_struct: str = ""  # packs BLOCK_LENGTH zero bytes ("" for a block of no bytes)
    header_zero_struct: str = ""  # packs the header then BLOCK_LENGTH zero bytes


@dataclass
class GroupCtx(BlockCtx):
    dim_decoder: str = ""
    dim_struct: str = ""
    dim_size: int = 0
    bl_index: int = 0
    count_index: int = 1
    dim_pack_struct: str = ""
    max_count: int = 0
    groups: list[GroupCtx] = field(default_factory=list)
    bl_order_first: bool = True
    section_min: int = 0  # the fewest bytes an entry's version-0 sections can take (empty groups, empty data)


@dataclass
class MessageCtx(BlockCtx):
    template_id: int = 0
    full_struct: str = ""
    header_items: int = 0
    header_indices: dict[str, int] = field(default_factory=dict)
    flat_names: list[str] = field(default_factory=list)
    groups: list[GroupCtx] = field(default_factory=list)
    all_groups: list[GroupCtx] = field(default_factory=list)
    fast_max_since: int = 0
    fast_unpack: str = ""  # the generated body of unpack()
    pack_params: str = ""
    pack_args: str = ""


@dataclass
class EnumCtx:
    name: str
    json_name: str
    members: list[tuple[str, int, str]]
    null: int
    primitive: str
    doc: str


@dataclass
class SetCtx:
    name: str
    json_name: str
    choices: list[tuple[str, int, str]]
    primitive: str
    doc: str


@dataclass
class CompositeCtx:
    name: str
    json_name: str
    decoder: str
    encoder: str
    size: int
    fields: list[Accessor]
    doc: str
    struct: str = ""  # every member in one read or write (constants take no bytes; gaps are padding)
    flat_names: list[str] = field(default_factory=list)
    struct_defs: list[StructDef] = field(default_factory=list)  # emitted just before the classes


@dataclass
class HeaderCtx:
    decoder: str
    encoder: str
    size: int
    struct: str
    fmt: str
    indices: dict[str, int]
    pack_order: list[str]
    name: str = "messageHeader"  # the schema's header composite


@dataclass
class ModuleContext:
    schema: Schema
    package: str
    source_name: str
    enums: list[EnumCtx]
    sets: list[SetCtx]
    composites: list[CompositeCtx]
    messages: list[MessageCtx]
    header: HeaderCtx
    struct_registry: StructRegistry


def _doc(text: str | None) -> str:
    if not text:
        return ""
    return " ".join(text.split()).replace("\\", "\\\\").replace('"', '\\"')


class _Builder:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.prefix = schema.byte_order.struct_prefix
        self.structs = StructRegistry(self.prefix)
        self.type_classes: dict[int, str] = {}
        self.used_classes: set[str] = set(MODULE_GLOBALS)
        self.composite_classes: dict[int, tuple[str, str]] = {}
        self.composite_ctxs: dict[int, CompositeCtx] = {}
        self.enum_members: dict[int, dict[str, str]] = {}
        self.composites: list[CompositeCtx] = []
        self.enums: list[EnumCtx] = []
        self.sets: list[SetCtx] = []

    # -- naming ----------------------------------------------------------------

    def unique_class(self, base: str) -> str:
        name = class_name(base)
        candidate = name
        n = 2
        while candidate in self.used_classes:
            candidate = f"{name}{n}"
            n += 1
        self.used_classes.add(candidate)
        return candidate

    def type_class(self, node: TypeNode) -> str:
        key = id(node)
        existing = self.type_classes.get(key)
        if existing is not None:
            return existing
        name = self.unique_class(node.name)
        self.type_classes[key] = name
        if isinstance(node, EnumType):
            self.enums.append(self.enum_ctx(node, name))
        elif isinstance(node, SetType):
            self.sets.append(self.set_ctx(node, name))
        elif isinstance(node, CompositeType):
            decoder, encoder = self.unique_class(f"{name}Decoder"), self.unique_class(f"{name}Encoder")
            self.composite_classes[key] = (decoder, encoder)
            ctx = CompositeCtx(node.name, node.name, decoder, encoder, node.size, [], _doc(node.description))
            self.composites.append(ctx)
            self.composite_ctxs[key] = ctx
            ctx.fields = self.accessors(
                [
                    (
                        m.name,
                        m.offset,
                        m.type,
                        self.member_presence(m),
                        None,
                        m.since_version,
                        m.deprecated,
                        m.description,
                    )
                    for m in node.members
                ],
                NameAllocator(),
            )
            for acc in ctx.fields:
                if acc.since_version > 0:
                    acc.check = f"self._acting_version < {acc.since_version}"
            fmt = self.prefix + self.fmt_of(node)
            if struct.calcsize(fmt):  # a composite of no bytes (constants only) has no layout struct
                layout = self.structs.layout(
                    f"{upper_snake(node.name)}_LAYOUT",
                    fmt,
                    layout_comment(
                        f"{node.name} (composite, {node.size} bytes): LAYOUT, one value per member",
                        self.rows(node, 0),
                    ),
                )
                ctx.struct = layout.name
                ctx.struct_defs.append(layout)
            flat: list[str] = []
            for m in node.members:
                flat += self.flat_names(snake(m.name), m.type)
            ctx.flat_names = _unique_names(flat)
        return name

    def member_presence(self, m: Member) -> Presence:
        t = m.type
        if isinstance(t, EncodedType):
            return t.presence
        if isinstance(t, (EnumType, SetType)):
            return t.encoding.presence
        return Presence.REQUIRED

    def enum_ctx(self, node: EnumType, name: str) -> EnumCtx:
        members = list(
            zip(
                member_names([v.name for v in node.values]),
                [v.value for v in node.values],
                [v.name for v in node.values],
                strict=True,
            )
        )
        self.enum_members[id(node)] = {json: py for py, _, json in members}
        return EnumCtx(
            name,
            node.name,
            members,
            int(node.encoding.null_value),
            node.encoding.primitive.xml_name,
            _doc(node.description),
        )

    def set_ctx(self, node: SetType, name: str) -> SetCtx:
        choices = list(
            zip(
                member_names([c.name for c in node.choices]),
                [c.bit for c in node.choices],
                [c.name for c in node.choices],
                strict=True,
            )
        )
        return SetCtx(name, node.name, choices, node.encoding.primitive.xml_name, _doc(node.description))

    # -- accessors -------------------------------------------------------------

    def fmt_of(self, node: TypeNode) -> str:
        """The struct format of a node's bytes (without byte-order prefix)."""
        if isinstance(node, EncodedType):
            if node.is_constant:
                return ""
            if node.primitive is Primitive.CHAR:
                return f"{node.length}s"
            code = node.primitive.struct_code
            if node.length == 1:
                return code
            return f"{node.length}{code}" if node.length else ""
        if isinstance(node, (EnumType, SetType)):
            return node.encoding.primitive.struct_code
        return layout_fmt([(m.offset, self.fmt_of(m.type), m.size) for m in node.members], node.size)

    def flat_names(self, prefix: str, node: TypeNode) -> list[str]:
        """Python names for the values ``fmt_of(node)`` unpacks to (array elements and composite
        members get suffixes), as used for ``pack_into`` parameters."""
        if isinstance(node, EncodedType):
            if node.is_constant:
                return []
            if node.primitive is Primitive.CHAR or node.length == 1:
                return [prefix]
            return [f"{prefix}_{i}" for i in range(node.length)]
        if isinstance(node, (EnumType, SetType)):
            return [prefix]
        names: list[str] = []
        for m in node.members:
            names += self.flat_names(f"{prefix}_{snake(m.name).rstrip('_')}", m.type)
        return names

    def plan_entries(
        self, node: TypeNode, offset: int, since: int, index: int, plan: list[tuple[int, int, int, int]]
    ) -> int:
        """Append ``(since_version, end, first slot, slot count)`` for ``node``'s values in the flat block
        tuple (composite members separately, as each may have its own ``sinceVersion``); return the
        next slot index."""
        if isinstance(node, CompositeType):
            for m in node.members:
                index = self.plan_entries(m.type, offset + m.offset, max(since, m.since_version), index, plan)
            return index
        n = self.flat_items(node)
        if n:
            plan.append((since, offset + node.size, index, n))
        return index + n

    def flat_items(self, node: TypeNode) -> int:
        """How many values ``fmt_of(node)`` unpacks to."""
        if isinstance(node, EncodedType):
            if node.is_constant:
                return 0
            return 1 if node.primitive is Primitive.CHAR else node.length
        if isinstance(node, (EnumType, SetType)):
            return 1
        return sum(self.flat_items(m.type) for m in node.members)

    def accessors(
        self,
        items: list[tuple[str, int, TypeNode, Presence, object, int, int | None, str | None]],
        names: NameAllocator,
    ) -> list[Accessor]:
        out: list[Accessor] = []
        for json_name, offset, node, presence, constant, since, deprecated, description in items:
            py = names.allocate(json_name)
            size = 0 if presence is Presence.CONSTANT else node.size
            acc = Accessor(
                json_name,
                py,
                "int",
                offset,
                size,
                since,
                offset + size,
                deprecated=deprecated is not None,
                doc=_doc(description),
            )
            if presence is Presence.CONSTANT:
                acc.kind = "constant"
                value = (
                    constant
                    if constant is not None
                    else getattr(getattr(node, "encoding", None), "constant", None)
                )
                if isinstance(node, EnumType):
                    acc.type_class = self.type_class(node)
                    ev = next(v for v in node.values if v.value == value)
                    acc.constant = f"{acc.type_class}.{self.enum_members[id(node)][ev.name]}"
                elif isinstance(value, str):
                    acc.constant = repr(value)
                else:
                    acc.constant = literal(value)
                out.append(acc)
                continue
            if isinstance(node, EncodedType):
                prim = node.primitive
                acc.primitive = prim.xml_name
                acc.fmt = self.prefix + self.fmt_of(node)
                if node.size:
                    acc.struct = self.structs.primitive(
                        prim.struct_code, node.length, char=prim is Primitive.CHAR
                    )
                acc.length = node.length
                if prim is Primitive.CHAR:
                    acc.kind = "text"
                    acc.encoding = node.encoding.character_encoding or "US-ASCII"
                    if node.length == 1 and presence is Presence.OPTIONAL:
                        acc.optional = True
                        acc.null = repr(bytes([int(node.encoding.null_value)]))
                elif node.length != 1:
                    acc.kind = "array"
                    acc.is_float = prim.is_float
                    acc.optional = presence is Presence.OPTIONAL
                    acc.null = literal(node.encoding.null_value)
                else:
                    acc.kind = "float" if prim.is_float else "int"
                    acc.is_float = prim.is_float
                    acc.optional = presence is Presence.OPTIONAL
                    null = node.encoding.null_value
                    if prim is Primitive.FLOAT and not math.isnan(null):
                        null = struct.unpack("<f", struct.pack("<f", null))[0]  # what a float32 reads back as
                    acc.null = literal(null)
            elif isinstance(node, EnumType):
                acc.kind = "enum"
                acc.type_class = self.type_class(node)
                acc.fmt = self.prefix + node.encoding.primitive.struct_code
                acc.struct = self.structs.primitive(node.encoding.primitive.struct_code)
                acc.null = literal(int(node.encoding.null_value))
                acc.optional = presence is Presence.OPTIONAL
            elif isinstance(node, SetType):
                acc.kind = "set"
                acc.type_class = self.type_class(node)
                acc.fmt = self.prefix + node.encoding.primitive.struct_code
                acc.struct = self.structs.primitive(node.encoding.primitive.struct_code)
            else:
                acc.kind = "composite"
                acc.type_class = self.type_class(node)
                acc.decoder_class, acc.encoder_class = self.composite_classes[id(node)]
            out.append(acc)
        return out

    def field_items(
        self, fields: tuple[Field, ...]
    ) -> list[tuple[str, int, TypeNode, Presence, object, int, int | None, str | None]]:
        return [
            (f.name, f.offset, f.type, f.presence, f.constant, f.since_version, f.deprecated, f.description)
            for f in fields
        ]

    # -- blocks ----------------------------------------------------------------

    def block(
        self,
        owner_class: str,
        node: Message | Group,
        decoder: str,
        encoder: str,
    ) -> tuple[_BlockParts, list[GroupCtx]]:
        """What messages and group entries share: accessors, sections and the block's struct."""
        fields, groups, var_data, block_length = node.fields, node.groups, node.var_data, node.block_length
        names = NameAllocator()
        accessors = self.accessors(self.field_items(fields), names)
        for acc in accessors:
            if acc.since_version > 0:
                acc.check = (
                    f"self._acting_version < {acc.since_version} or self._acting_block_length < {acc.end}"
                )
        base_end = max((f.offset + f.size for f in fields if f.since_version == 0), default=0)
        fmt = self.prefix + layout_fmt(
            [(f.offset, self.fmt_of(f.type) if not f.is_constant else "", f.size) for f in fields],
            block_length,
        )
        plan: list[tuple[int, int, int, int]] = []
        index = 0
        for f in fields:
            if not f.is_constant:
                index = self.plan_entries(f.type, f.offset, f.since_version, index, plan)
        struct_defs: list[StructDef] = []
        if index:  # a block of no values (no fields, or constants and padding only) needs no struct
            if isinstance(node, Message):
                title = f"{node.name} (template {node.id})"
            else:
                title = f"{owner_class} ({node.name} group entry)"
            rows: list[tuple[int, str, str]] = []
            for f in fields:
                rows += self.rows(f.type, f.offset, f.name, f.since_version, f.presence)
            struct_defs.append(
                self.structs.layout(
                    f"{upper_snake(owner_class)}_BLOCK",
                    fmt,
                    layout_comment(f"{title}: the {block_length}-byte block, one value per field", rows),
                )
            )
        sections: list[Section] = []
        group_ctxs: list[GroupCtx] = []
        for g in groups:
            gctx = self.group_ctx(owner_class, g)
            group_ctxs.append(gctx)
            py = names.allocate(g.name)
            sections.append(
                Section("group", g.name, py, len(sections), g.since_version, gctx.decoder, gctx.encoder, gctx)
            )
        for d in var_data:
            py = names.allocate(d.name)
            sections.append(
                Section(
                    "data",
                    d.name,
                    py,
                    len(sections),
                    d.since_version,
                    length_struct=self.structs.primitive(d.length.primitive.struct_code),
                    prefix=d.length.primitive.size,
                    max_length=int(min(d.length.encoding.max_value, d.length.primitive.wire_max)),
                    encoding=d.character_encoding or "",
                )
            )
        for s in sections:
            if s.since_version > 0:
                s.check = f"self._acting_version < {s.since_version}"
        parts = _BlockParts(
            name=node.name,
            json_name=node.name,
            decoder=decoder,
            encoder=encoder,
            block_length=block_length,
            fields=accessors,
            sections=sections,
            doc=_doc(node.description),
            base_end=base_end,
            max_since=max((entry[0] for entry in plan), default=0),
            block_struct=struct_defs[0].name if struct_defs else "",
            block_fmt=fmt,
            block_plan=plan,
            flat_count=index,
            struct_defs=struct_defs,
        )
        return parts, group_ctxs

    def group_ctx(self, owner_class: str, g: Group) -> GroupCtx:
        base = f"{owner_class}{class_name(g.name)}"
        decoder = self.unique_class(f"{base}Decoder")
        encoder = self.unique_class(f"{base}Encoder")
        parts, nested = self.block(base, g, decoder, encoder)
        dim = g.dimension
        # One struct reads and writes the dimension: blockLength and numInGroup at their offsets, in
        # offset order; every other byte of the dimension is padding (written as zeros).
        pair = sorted((g.block_length_member, g.num_in_group_member), key=lambda m: m.offset)
        dim_fmt = self.prefix + layout_fmt([(m.offset, self.fmt_of(m.type), m.size) for m in pair], dim.size)
        bl_index = pair.index(g.block_length_member)
        count_index = 1 - bl_index
        assert isinstance(g.num_in_group_member.type, EncodedType)
        num_type = g.num_in_group_member.type
        max_count = int(min(num_type.encoding.max_value, num_type.primitive.wire_max))
        dim_struct = self.dimension_struct(dim, dim_fmt, pair)
        return GroupCtx(
            **parts,
            dim_decoder=self.type_class(dim),
            dim_struct=dim_struct,
            dim_size=dim.size,
            bl_index=bl_index,
            count_index=count_index,
            dim_pack_struct=dim_struct,
            max_count=max_count,
            groups=nested,
            bl_order_first=bl_index == 0,
            section_min=sum(
                (s.group.dim_size if s.group is not None else s.prefix)
                for s in parts["sections"]
                if s.since_version == 0
            ),
        )

    def dimension_struct(self, dim: CompositeType, fmt: str, pair: list[Member]) -> str:
        """The struct reading a group dimension's blockLength and numInGroup: the composite's LAYOUT when
        that holds nothing else, else a struct of the two (emitted beside the composite)."""
        self.type_class(dim)
        ctx = self.composite_ctxs[id(dim)]
        if ctx.struct_defs[0].fmt == fmt:
            return ctx.struct
        for d in ctx.struct_defs[1:]:
            if d.fmt == fmt:
                return d.name
        rows = [(m.offset, m.name, self.rows(m.type, m.offset)[0][2]) for m in pair]
        title = f"{dim.name} read as a group dimension, its other bytes skipped"
        extra = self.structs.layout(f"{upper_snake(dim.name)}_DIMENSIONS", fmt, layout_comment(title, rows))
        ctx.struct_defs.append(extra)
        return extra.name

    def rows(
        self, node: TypeNode, offset: int, name: str = "", since: int = 0, presence: Presence | None = None
    ) -> list[tuple[int, str, str]]:
        """``(offset, name, type)`` for each value ``fmt_of(node)`` unpacks to, for layout comments:
        composite members flattened under dotted names, constants (no bytes) left out."""
        if isinstance(node, CompositeType):
            out: list[tuple[int, str, str]] = []
            for m in node.members:
                inner = f"{name}.{m.name}" if name else m.name
                out += self.rows(
                    m.type, offset + m.offset, inner, max(since, m.since_version), self.member_presence(m)
                )
            return out
        if isinstance(node, EncodedType):
            if node.is_constant or self.flat_items(node) == 0:
                return []
            label = node.primitive.xml_name + (f"[{node.length}]" if node.length != 1 else "")
        elif isinstance(node, EnumType):
            label = f"{self.type_class(node)} (enum of {node.encoding.primitive.xml_name})"
        else:
            label = f"{self.type_class(node)} (set of {node.encoding.primitive.xml_name})"
        if presence is Presence.OPTIONAL:
            label += ", optional"
        if since:
            label += f", since version {since}"
        return [(offset, name, label)]

    def message_ctx(self, m: Message, header: HeaderCtx) -> MessageCtx:
        cls = class_name(m.name)
        decoder = self.unique_class(f"{cls}Decoder")
        encoder = self.unique_class(f"{cls}Encoder")
        parts, groups = self.block(cls, m, decoder, encoder)
        full_fmt = header.fmt + parts["block_fmt"][1:]
        flat_names: list[str] = []
        for f in m.fields:
            if not f.is_constant:
                flat_names += self.flat_names(snake(f.name), f.type)
        flat_names = _unique_names(flat_names)
        h = self.schema.header
        above = "the block above" if parts["struct_defs"] else f"the {m.block_length}-byte block (no values)"
        full = self.structs.layout(
            f"{upper_snake(cls)}_WITH_HEADER",
            full_fmt,
            [
                f"{h.name} ({h.size} bytes), then {above} at offset {h.size}:",
                "unpack() and pack_into() read and write both in one call",
            ],
        )
        parts["struct_defs"].append(full)
        ctx = MessageCtx(
            **parts,
            template_id=m.id,
            full_struct=full.name,
            header_items=len(header.pack_order),
            header_indices=header.indices,
            flat_names=flat_names,
            groups=groups,
        )
        ctx.all_groups = list(_walk_groups(groups))
        ctx.fast_max_since = max(
            [
                ctx.max_since,
                *(s.since_version for s in ctx.sections),
                *(g.max_since for g in ctx.all_groups),
                *(s.since_version for g in ctx.all_groups for s in g.sections),
            ]
        )
        return ctx

    def header_ctx(self) -> HeaderCtx:
        h = self.schema.header
        self.type_class(h)  # registers the header's flyweight classes
        fmt = self.prefix + self.fmt_of(h)
        slots: list[str] = []
        for m in h.members:
            names = self.flat_names(m.name, m.type)
            slots += [m.name] if len(names) == 1 else names
        indices = {n: slots.index(n) for n in ("blockLength", "templateId", "schemaId", "version")}
        layout = self.composite_ctxs[id(h)].struct
        return HeaderCtx(*self.composite_classes[id(h)], h.size, layout, fmt, indices, slots, h.name)


def _unique_names(names: list[str]) -> list[str]:
    seen: set[str] = {"buffer", "offset"}
    out: list[str] = []
    for n in names:
        while n in seen:
            n += "_"
        seen.add(n)
        out.append(n)
    return out


def _walk_groups(groups: list[GroupCtx]) -> list[GroupCtx]:
    out: list[GroupCtx] = []
    for g in groups:
        out.append(g)
        out.extend(_walk_groups(g.groups))
    return out


def layout_comment(title: str, rows: list[tuple[int, str, str]]) -> list[str]:
    """The comment lines above a layout struct: a title, then one ``offset  name  type`` row per value."""
    if not rows:
        return [f"{title}: no values, padding only"]
    ow = max(len(str(offset)) for offset, _, _ in rows)
    nw = max(len(name) for _, name, _ in rows)
    lines = [f"{title} (offset, name, type):"]
    lines += [f"  {offset:>{ow}}  {name:<{nw}}  {label}" for offset, name, label in rows]
    return lines


def layout_fmt(parts: list[tuple[int, str, int]], total: int) -> str:
    """A struct format (no prefix) placing each ``(offset, fmt, size)`` and padding to ``total``."""
    out: list[str] = []
    position = 0
    for offset, fmt, size in sorted((p for p in parts if p[1]), key=lambda p: p[0]):
        if offset > position:
            out.append(f"{offset - position}x")
        out.append(fmt)
        position = offset + size
    if total > position:
        out.append(f"{total - position}x")
    return "".join(out)


def build_context(schema: Schema, package: str, source_name: str) -> ModuleContext:
    b = _Builder(schema)
    header = b.header_ctx()
    for t in schema.types:
        b.type_class(t)
    messages = [b.message_ctx(m, header) for m in schema.messages]
    return ModuleContext(
        schema, package, source_name, b.enums, b.sets, b.composites, messages, header, b.structs
    )
