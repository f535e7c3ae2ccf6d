"""Value slots: how one schema type sits inside a block, compiled once from the IR.

A :class:`Slot` describes a fixed-size value (a scalar, an array, a char array, an enum, a set or a
composite) as a fragment of a ``struct`` format string plus two converters:

* ``decode(raw, i)`` turns the items a block's ``Struct.unpack_from`` produced, starting at index
  ``i``, into the JSON value of ``docs/sbe-json.md`` (``None`` when the raw item already *is* the
  value, so the hot loop can skip the call);
* ``encode(value, out, null_ok, version)`` validates a JSON value and appends the raw items to
  ``out`` in the same order, ready for ``Struct.pack_into``.  ``null_ok`` lets a required value be
  ``None`` (it is then written as its null value): the block encoder sets it for fields newer than
  the ``version`` being written, and a composite for its members newer than that version.

Fragments never carry a byte-order prefix: a block concatenates its fields' fragments (with ``x``
padding between them) into one format under the schema's byte order, so a whole block is read or
written by a single ``Struct`` call.  A composite is just the concatenation of its members.

Converters report bad values by raising :class:`ValueFault`; the block that owns the value turns it
into a :class:`~codegen.runtime.errors.CodecError` naming message, field path and byte offset.
"""

from __future__ import annotations

import codecs
import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from codegen.ir.model import (
    CompositeType,
    EncodedType,
    Encoding,
    EnumType,
    Presence,
    Primitive,
    SetType,
    TypeNode,
)

__all__ = [
    "RawDecode",
    "RawEncode",
    "Slot",
    "TextCodec",
    "ValueFault",
    "compile_slot",
    "is_constant",
    "type_is_optional",
]

RawDecode = Callable[[tuple[Any, ...], int], Any]
RawEncode = Callable[[Any, list[Any], bool, int], None]
Restrict = Callable[[Any, int], Any]


class ValueFault(Exception):
    """A value could not be decoded or encoded; ``path`` says where inside the slot (``.x``, ``[3]``)."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path

    def within(self, step: str) -> ValueFault:
        """The same fault seen from one level up (``step`` is ``.member`` or ``[index]``)."""
        return ValueFault(self.reason, step + self.path)


@dataclass(frozen=True, slots=True)
class Slot:
    """One fixed-size value of a block: its ``struct`` fragment and converters (see the module doc)."""

    kind: str
    fmt: str
    size: int
    count: int
    decode: RawDecode | None
    encode: RawEncode
    max_since: int = 0
    """The highest ``sinceVersion`` of any composite member inside (0 for non-composites)."""
    restrict: Restrict | None = None
    """For a composite with versioned members: null the members newer than an acting version."""


class TextCodec:
    """A character encoding, resolved once; failures become :class:`ValueFault`."""

    __slots__ = ("_decode", "_encode", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        try:
            info = codecs.lookup(name)
        except LookupError:
            self._decode: Callable[..., tuple[str, int]] | None = None
            self._encode: Callable[..., tuple[bytes, int]] | None = None
        else:
            self._decode = info.decode
            self._encode = info.encode

    def decode(self, data: bytes | bytearray | memoryview) -> str:
        if self._decode is None:
            raise ValueFault(f"unknown characterEncoding '{self.name}'")
        try:
            return self._decode(data, "strict")[0]
        except UnicodeDecodeError as exc:
            reason = f"bytes are not valid {self.name} text ({exc.reason} at byte {exc.start})"
            raise ValueFault(reason) from None

    def encode(self, text: str) -> bytes:
        if self._encode is None:
            raise ValueFault(f"unknown characterEncoding '{self.name}'")
        try:
            return self._encode(text, "strict")[0]
        except UnicodeEncodeError as exc:
            raise ValueFault(f"text cannot be encoded as {self.name} ({exc.reason} at {exc.start})") from None


def is_constant(node: TypeNode) -> bool:
    """A constant occupies no bytes and is omitted from JSON."""
    if isinstance(node, CompositeType):
        return False
    return node.encoding.presence is Presence.CONSTANT


def type_is_optional(node: TypeNode) -> bool:
    """The presence a type declares itself (a composite member's presence)."""
    return not isinstance(node, CompositeType) and node.encoding.presence is Presence.OPTIONAL


def compile_slot(node: TypeNode, optional: bool) -> Slot:
    """The slot of a non-constant type; ``optional`` is the effective presence of the field or member."""
    if isinstance(node, CompositeType):
        return _composite(node)
    if isinstance(node, EnumType):
        return _enum(node)
    if isinstance(node, SetType):
        return _set(node)
    prim = node.encoding.primitive
    if prim is Primitive.CHAR and node.length != 1:
        return _char_array(node)
    if node.length != 1:
        return _array(node)
    if prim is Primitive.CHAR:
        return _char(node.encoding, optional)
    return _scalar(node.encoding, optional)


# ---------------------------------------------------------------------------------------------- scalars


def _check_int(prim: Primitive) -> Callable[[Any], int]:
    lo = int(prim.wire_min)
    hi = int(prim.wire_max)

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueFault(f"expected an integer for {prim.xml_name}, got {value!r}")
        if not lo <= value <= hi:
            raise ValueFault(f"{value} is out of range for {prim.xml_name} [{lo}, {hi}]")
        return value

    return check


_F32 = struct.Struct("<f")


def _check_float(prim: Primitive) -> Callable[[Any], float]:
    single = prim is Primitive.FLOAT

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueFault(f"expected a number for {prim.xml_name}, got {value!r}")
        try:
            number = float(value)
            if single:
                _F32.pack(number)
        except OverflowError:
            raise ValueFault(f"{value!r} is out of range for {prim.xml_name}") from None
        return number

    return check


def _element_check(prim: Primitive) -> Callable[[Any], Any]:
    return _check_float(prim) if prim.is_float else _check_int(prim)


def _scalar(enc: Encoding, optional: bool) -> Slot:
    prim = enc.primitive
    null: Any = enc.null_value if prim.is_float else int(enc.null_value)
    check = _element_check(prim)
    decode: RawDecode | None = None
    if optional:
        if prim.is_float and math.isnan(null):

            def decode(raw: tuple[Any, ...], i: int) -> Any:
                value = raw[i]
                return None if value != value else value  # NaN is the null value
        else:

            def decode(raw: tuple[Any, ...], i: int) -> Any:
                value = raw[i]
                return None if value == null else value

    def encode(value: Any, out: list[Any], null_ok: bool, version: int) -> None:
        if value is None:
            if not (optional or null_ok):
                raise ValueFault(f"a required {prim.xml_name} is null")
            out.append(null)
        else:
            out.append(check(value))

    return Slot("optional" if optional else "scalar", prim.struct_code, prim.size, 1, decode, encode)


def _char(enc: Encoding, optional: bool) -> Slot:
    """A single ``char``: a one-character string; the NUL byte (or the null value) is ``""``/``None``."""
    text = TextCodec(enc.character_encoding or "US-ASCII")
    null_byte = bytes([int(enc.null_value)])

    def decode(raw: tuple[Any, ...], i: int) -> Any:
        value: bytes = raw[i]
        if value == null_byte and optional:
            return None
        if value == b"\x00":
            return ""
        return text.decode(value)

    def encode(value: Any, out: list[Any], null_ok: bool, version: int) -> None:
        if value is None:
            if not (optional or null_ok):
                raise ValueFault("a required char is null")
            out.append(null_byte)
        elif isinstance(value, str):
            data = text.encode(value) if value else b"\x00"
            if len(data) != 1:
                raise ValueFault(f"expected one {text.name} character, got {value!r}")
            out.append(data)
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
            out.append(bytes([value]))
        else:
            raise ValueFault(f"expected a one-character string, got {value!r}")

    return Slot("char", "c", 1, 1, decode, encode)


# ----------------------------------------------------------------------------------------------- arrays


def _array(node: EncodedType) -> Slot:
    enc = node.encoding
    prim = enc.primitive
    n = node.length
    check = _element_check(prim)
    null: Any = enc.null_value if prim.is_float else int(enc.null_value)
    optional = enc.presence is Presence.OPTIONAL

    def decode(raw: tuple[Any, ...], i: int) -> Any:
        return list(raw[i : i + n])

    def encode(value: Any, out: list[Any], null_ok: bool, version: int) -> None:
        if value is None:
            if not (optional or null_ok):
                raise ValueFault(f"a required {prim.xml_name}[{n}] array is null")
            out.extend([null] * n)
            return
        if not isinstance(value, (list, tuple)):
            raise ValueFault(f"expected a list of {n} numbers, got {value!r}")
        if len(value) != n:
            raise ValueFault(f"expected a list of {n} numbers, got {len(value)}")
        for k, item in enumerate(value):
            try:
                out.append(check(item))
            except ValueFault as fault:
                raise fault.within(f"[{k}]") from None

    return Slot("array", f"{n}{prim.struct_code}", prim.size * n, n, decode, encode)


def _char_array(node: EncodedType) -> Slot:
    enc = node.encoding
    n = node.length
    text = TextCodec(enc.character_encoding or "US-ASCII")
    optional = enc.presence is Presence.OPTIONAL

    def decode(raw: tuple[Any, ...], i: int) -> Any:
        return text.decode(raw[i].rstrip(b"\x00"))

    def encode(value: Any, out: list[Any], null_ok: bool, version: int) -> None:
        if value is None:
            if not (optional or null_ok):
                raise ValueFault(f"a required char[{n}] is null")
            out.append(b"")
            return
        if not isinstance(value, str):
            raise ValueFault(f"expected a string, got {value!r}")
        data = text.encode(value)
        if len(data) > n:
            raise ValueFault(f"{len(data)} bytes of text do not fit in char[{n}]")
        out.append(data)  # struct pads it with NUL bytes

    return Slot("chars", f"{n}s", n, 1, decode, encode)


# ----------------------------------------------------------------------------------------- enums, sets


def _enum_code(enc: Encoding) -> str:
    return "B" if enc.primitive is Primitive.CHAR else enc.primitive.struct_code


def _enum(node: EnumType) -> Slot:
    enc = node.encoding
    null = node.null_value
    names: dict[int, str | None] = {null: None}
    names.update((v.value, v.name) for v in node.values)  # a valid value wins over the null value
    by_name = {v.name: v.value for v in node.values}
    check = _check_int(enc.primitive if enc.primitive is not Primitive.CHAR else Primitive.UINT8)

    def decode(raw: tuple[Any, ...], i: int) -> Any:
        value = raw[i]
        return names.get(value, value)

    def encode(value: Any, out: list[Any], null_ok: bool, version: int) -> None:
        if value is None:
            out.append(null)
        elif isinstance(value, str):
            code = by_name.get(value)
            if code is None:
                raise ValueFault(f"'{value}' is not a value of enum {node.name}")
            out.append(code)
        else:
            out.append(check(value))

    return Slot("enum", _enum_code(enc), enc.primitive.size, 1, decode, encode)


def _set(node: SetType) -> Slot:
    enc = node.encoding
    bits = 8 * enc.primitive.size
    choices = tuple((1 << c.bit, c.name) for c in node.choices)
    known = 0
    for mask, _ in choices:
        known |= mask
    by_name = dict((name, mask) for mask, name in choices)

    def decode(raw: tuple[Any, ...], i: int) -> Any:
        value: int = raw[i]
        names: list[str | int] = [name for mask, name in choices if value & mask]
        unknown = value & ~known
        if unknown:
            names.extend(bit for bit in range(bits) if unknown >> bit & 1)
        return names

    def encode(value: Any, out: list[Any], null_ok: bool, version: int) -> None:
        if value is None:
            out.append(0)
            return
        if not isinstance(value, (list, tuple)):
            raise ValueFault(f"expected a list of {node.name} choices, got {value!r}")
        word = 0
        for item in value:
            if isinstance(item, str):
                mask = by_name.get(item)
                if mask is None:
                    raise ValueFault(f"'{item}' is not a choice of set {node.name}")
                word |= mask
            elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item < bits:
                word |= 1 << item
            else:
                raise ValueFault(f"{item!r} is not a choice name or a bit number below {bits}")
        out.append(word)

    return Slot("set", _enum_code(enc), enc.primitive.size, 1, decode, encode)


# ------------------------------------------------------------------------------------------- composites


def _composite(node: CompositeType) -> Slot:
    members = sorted((m for m in node.members if not is_constant(m.type)), key=lambda m: m.offset)
    constants = frozenset(m.name for m in node.members if is_constant(m.type))
    fmt: list[str] = []
    pos = 0
    count = 0
    placed: list[tuple[str, int, Slot, int]] = []  # name, raw index, slot, since
    for m in members:
        slot = compile_slot(m.type, type_is_optional(m.type))
        assert m.offset >= pos, f"composite {node.name}: member {m.name} overlaps its predecessor"
        if m.offset > pos:
            fmt.append(f"{m.offset - pos}x")
        fmt.append(slot.fmt)
        placed.append((m.name, count, slot, m.since_version))
        count += slot.count
        pos = m.offset + slot.size
    assert pos <= node.size, f"composite {node.name}: members end at {pos}, beyond its size {node.size}"
    if node.size > pos:
        fmt.append(f"{node.size - pos}x")
    by_offset = tuple((name, slot.encode, since) for name, _, slot, since in placed)
    known = frozenset(name for name, _, _, _ in placed) | constants
    # Output keeps the schema's member order; the raw tuple follows offsets (the same for valid schemas).
    order = {m.name: k for k, m in enumerate(node.members)}
    steps = tuple(
        sorted(
            ((name, index, slot.decode) for name, index, slot, _ in placed), key=lambda step: order[step[0]]
        )
    )

    def decode(raw: tuple[Any, ...], i: int) -> Any:
        out: dict[str, Any] = {}
        name = ""
        try:
            for name, j, conv in steps:
                out[name] = raw[i + j] if conv is None else conv(raw, i + j)
        except ValueFault as fault:
            raise fault.within(f".{name}") from None
        return out

    def encode(value: Any, out: list[Any], null_ok: bool, version: int) -> None:
        if value is None:
            value = {}
        elif not isinstance(value, Mapping):
            raise ValueFault(f"expected an object for composite {node.name}, got {value!r}")
        for key in value:
            if key not in known:
                raise ValueFault(f"composite {node.name} has no member '{key}'")
        name = ""
        try:
            for name, enc, since in by_offset:
                enc(value.get(name), out, null_ok or since > version, version)
        except ValueFault as fault:
            raise fault.within(f".{name}") from None

    max_since = max((max(since, slot.max_since) for _, _, slot, since in placed), default=0)
    restrict: Restrict | None = None
    if max_since:
        versioned = tuple((name, since, slot.restrict) for name, _, slot, since in placed)

        def restrict(value: Any, version: int) -> Any:
            for name, since, inner in versioned:
                if since > version:
                    value[name] = None
                elif inner is not None:
                    value[name] = inner(value[name], version)
            return value

    return Slot("composite", "".join(fmt), node.size, count, decode, encode, max_since, restrict)
