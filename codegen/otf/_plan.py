"""Plans: a message, group or var-data section compiled once from the IR, with its decoder and encoder.

A :class:`BlockPlan` is the fixed block of a message or of one group entry, followed by its groups and
var data.  The whole block is one ``struct.Struct`` (fields at their offsets, ``x`` padding between
them), so when the acting version and block length are the schema's own (the common case) a block
is decoded by one ``unpack_from`` and a loop over precomputed ``(name, index, converter)`` steps.

Versioning, as SBE readers do it (``docs/sbe-json.md``):

* a field, group or var-data section whose ``sinceVersion`` is above the acting version is ``None``
  and a group or var-data section then occupies no bytes;
* the acting block length (from the message header, or from a group's dimension) says where the
  block ends: extra bytes beyond the schema's block are skipped, and a field whose
  ``offset + size`` lies beyond a *shorter* acting block is ``None`` (absent), whatever its
  presence.  This takes the slower per-field path.

Bounds: every read is checked against the end of the buffer first, and a group's count is checked
against the bytes left before any entry is decoded (``count * minimum entry size``), so a corrupt
count fails at once instead of looping.  Errors name the field path (``fuelFigures[1].speed``) and
the absolute byte offset.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, Final

from codegen.ir.model import (
    ByteOrder,
    CompositeType,
    EncodedType,
    Field,
    Group,
    Member,
    Message,
    Presence,
    VarData,
)
from codegen.otf._values import RawDecode, Slot, TextCodec, ValueFault, compile_slot, is_constant
from codegen.runtime.errors import BufferTooShortError, CodecError, EncodeValueError

__all__ = ["BlockPlan", "GroupPlan", "HeaderPlan", "VarDataPlan", "message_plan", "within"]

MAX_EMPTY_ENTRIES: Final = 1 << 16
"""A group whose entries can be zero bytes long may not claim more entries than this."""

Buffer = bytes | bytearray | memoryview


def within(exc: CodecError, prefix: str) -> CodecError:
    """``exc`` re-raised one level up: its field path gains ``prefix`` (``fuelFigures[1]``)."""
    path = prefix if exc.field is None else f"{prefix}.{exc.field}"
    return type(exc)(exc.reason, message_name=exc.message_name, field=path, offset=exc.offset)


def _member_struct(order: ByteOrder, composite: CompositeType, members: list[Member]) -> struct.Struct:
    """A Struct reading the given integer members of a composite (in offset order), padded to its size."""
    fmt = [order.struct_prefix]
    pos = 0
    for m in members:
        assert isinstance(m.type, EncodedType) and m.offset >= pos
        if m.offset > pos:
            fmt.append(f"{m.offset - pos}x")
        fmt.append(m.type.primitive.struct_code)
        pos = m.offset + m.type.size
    if composite.size > pos:
        fmt.append(f"{composite.size - pos}x")
    return struct.Struct("".join(fmt))


class HeaderPlan:
    """The message header: only blockLength, templateId, schemaId and version matter; other members
    (such as the node-state schema's frameLength) are skipped on decode and written as zero."""

    __slots__ = ("index", "limits", "size", "struct")

    NAMES: Final = ("blockLength", "templateId", "schemaId", "version")

    def __init__(self, header: CompositeType, order: ByteOrder) -> None:
        members = []
        for name in self.NAMES:
            m = header.member(name)
            assert m is not None and isinstance(m.type, EncodedType), f"header has no integer '{name}'"
            members.append(m)
        by_offset = sorted(members, key=lambda m: m.offset)
        self.struct = _member_struct(order, header, by_offset)
        self.size = header.size
        self.index = tuple(by_offset.index(m) for m in members)
        self.limits = tuple(
            (int(m.type.primitive.wire_min), int(m.type.primitive.wire_max))
            for m in members
            if isinstance(m.type, EncodedType)
        )

    def read(self, buf: Buffer, pos: int) -> tuple[int, int, int, int]:
        raw = self.struct.unpack_from(buf, pos)
        bl, tid, sid, ver = self.index
        return raw[bl], raw[tid], raw[sid], raw[ver]

    def write(self, out: bytearray, values: tuple[int, int, int, int]) -> None:
        for name, value, (lo, hi) in zip(self.NAMES, values, self.limits, strict=True):
            if not lo <= value <= hi:
                raise EncodeValueError(f"header {name} {value} is out of range [{lo}, {hi}]", offset=len(out))
        raw = [0, 0, 0, 0]
        for k, index in enumerate(self.index):
            raw[index] = values[k]
        base = len(out)
        out += bytes(self.size)
        self.struct.pack_into(out, base, *raw)


Steps = tuple[tuple[str, int, RawDecode | None], ...]

MAX_CACHED_VERSIONS: Final = 16
"""Decode steps are kept for at most this many older acting versions per block."""


def _absent(raw: tuple[Any, ...], i: int) -> None:
    return None


def _at_version(slot: Slot, since: int, conv: RawDecode | None, version: int) -> RawDecode | None:
    """A field's converter at an older acting version: absent, or with its newer members nulled."""
    if since > version:
        return _absent
    restrict = slot.restrict
    if restrict is None or version >= slot.max_since:
        return conv
    assert conv is not None

    def restricted(raw: tuple[Any, ...], i: int) -> Any:
        return restrict(conv(raw, i), version)

    return restricted


class _FieldPlan:
    __slots__ = ("name", "offset", "since_version", "size", "slot", "struct")

    def __init__(self, f: Field, slot: Slot, order: ByteOrder) -> None:
        self.name = f.name
        self.offset = f.offset
        self.size = slot.size
        self.since_version = f.since_version
        self.slot = slot
        self.struct = struct.Struct(order.struct_prefix + slot.fmt)


class BlockPlan:
    """A message body or a group entry: the fixed block, then groups, then var data."""

    __slots__ = (
        "block_length",
        "by_offset",
        "fields",
        "groups",
        "known",
        "max_since",
        "older_steps",
        "steps",
        "struct",
        "var_data",
    )

    def __init__(
        self,
        fields: tuple[Field, ...],
        groups: tuple[Group, ...],
        var_data: tuple[VarData, ...],
        block_length: int,
        order: ByteOrder,
    ) -> None:
        plans = [
            _FieldPlan(f, compile_slot(f.type, f.presence is Presence.OPTIONAL), order)
            for f in fields
            if not f.is_constant and not is_constant(f.type)
        ]
        self.fields = tuple(plans)
        self.by_offset = tuple(sorted(plans, key=lambda p: p.offset))
        fmt = [order.struct_prefix]
        pos = 0
        count = 0
        index: dict[str, int] = {}
        for p in self.by_offset:
            assert p.offset >= pos, f"field {p.name} overlaps its predecessor"
            if p.offset > pos:
                fmt.append(f"{p.offset - pos}x")
            fmt.append(p.slot.fmt)
            index[p.name] = count
            count += p.slot.count
            pos = p.offset + p.size
        assert pos <= block_length, f"fields end at {pos}, beyond the block length {block_length}"
        if block_length > pos:
            fmt.append(f"{block_length - pos}x")
        self.struct = struct.Struct("".join(fmt))
        self.block_length = block_length
        self.steps: Steps = tuple((p.name, index[p.name], p.slot.decode) for p in plans)
        self.max_since = max((max(p.since_version, p.slot.max_since) for p in plans), default=0)
        self.older_steps: dict[int, Steps] = {}  # steps at acting versions below max_since, made on demand
        self.groups = tuple(GroupPlan(g, order) for g in groups)
        self.var_data = tuple(VarDataPlan(v, order) for v in var_data)
        self.known = frozenset(
            [f.name for f in fields] + [g.name for g in groups] + [v.name for v in var_data]
        )

    # -- decoding ----------------------------------------------------------------------------------------

    def decode(
        self, buf: Buffer, pos: int, buflen: int, acting_bl: int, version: int
    ) -> tuple[dict[str, Any], int]:
        """Decode the block at ``pos`` and what follows it; return the values and the end position."""
        if pos + acting_bl > buflen:
            raise self._short(buflen - pos, pos, acting_bl)
        if acting_bl >= self.block_length:
            steps = self.steps if version >= self.max_since else self._steps_at(version)
            raw = self.struct.unpack_from(buf, pos)
            values: dict[str, Any] = {}
            name = ""
            try:
                for name, i, conv in steps:
                    values[name] = raw[i] if conv is None else conv(raw, i)
            except ValueFault as fault:
                raise self._fault(fault, name, pos) from None
        else:
            values = self._decode_partial(buf, pos, acting_bl, version)
        pos += acting_bl
        for group in self.groups:
            values[group.name], pos = group.decode(buf, pos, buflen, version)
        for var in self.var_data:
            values[var.name], pos = var.decode(buf, pos, buflen, version)
        return values, pos

    def _steps_at(self, version: int) -> Steps:
        """The decode steps for an acting version older than some field: those fields read as None."""
        steps = self.older_steps.get(version)
        if steps is None:
            steps = tuple(
                (name, i, _at_version(p.slot, p.since_version, conv, version))
                for (name, i, conv), p in zip(self.steps, self.fields, strict=True)
            )
            if len(self.older_steps) < MAX_CACHED_VERSIONS:
                self.older_steps[version] = steps
        return steps

    def _decode_partial(self, buf: Buffer, pos: int, acting_bl: int, version: int) -> dict[str, Any]:
        """Field by field, for a block shorter than the schema's."""
        values: dict[str, Any] = {}
        for p in self.fields:
            if p.since_version > version or p.offset + p.size > acting_bl:
                values[p.name] = None
                continue
            raw = p.struct.unpack_from(buf, pos + p.offset)
            slot = p.slot
            try:
                value = raw[0] if slot.decode is None else slot.decode(raw, 0)
            except ValueFault as fault:
                raise self._fault(fault, p.name, pos) from None
            if slot.restrict is not None and version < slot.max_since:
                value = slot.restrict(value, version)
            values[p.name] = value
        return values

    def _fault(self, fault: ValueFault, name: str, pos: int) -> CodecError:
        offset = next((pos + p.offset for p in self.fields if p.name == name), pos)
        return CodecError(fault.reason, field=name + fault.path, offset=offset)

    def _short(self, available: int, pos: int, acting_bl: int) -> BufferTooShortError:
        """The block runs past the buffer: name the first field cut off, at its offset (or at the
        buffer's end, when the buffer ends in padding before it)."""
        reason = f"the buffer ends {available} bytes into a block of {acting_bl} bytes"
        for p in self.by_offset:
            if p.offset + p.size > available:
                return BufferTooShortError(reason, field=p.name, offset=pos + min(p.offset, available))
        return BufferTooShortError(reason, offset=pos + available)

    # -- encoding ----------------------------------------------------------------------------------------

    def encode(self, values: Mapping[str, Any], out: bytearray, acting_bl: int, version: int) -> None:
        """Append the block (``acting_bl`` bytes), its groups and its var data to ``out``."""
        base = len(out)
        for key in values:
            if key not in self.known:
                raise EncodeValueError(f"there is no field '{key}'", field=str(key), offset=base)
        out += bytes(acting_bl)
        get = values.get
        if acting_bl >= self.block_length:
            raw: list[Any] = []
            p = None
            try:
                for p in self.by_offset:
                    p.slot.encode(get(p.name), raw, p.since_version > version, version)
            except ValueFault as fault:
                assert p is not None
                raise EncodeValueError(
                    fault.reason, field=p.name + fault.path, offset=base + p.offset
                ) from None
            self.struct.pack_into(out, base, *raw)
        else:
            for p in self.by_offset:
                value = get(p.name)
                if p.offset + p.size > acting_bl:
                    if value is not None:
                        raise EncodeValueError(
                            f"the field does not fit in a block of {acting_bl} bytes",
                            field=p.name,
                            offset=base + p.offset,
                        )
                    continue
                raw = []
                try:
                    p.slot.encode(value, raw, p.since_version > version, version)
                except ValueFault as fault:
                    raise EncodeValueError(
                        fault.reason, field=p.name + fault.path, offset=base + p.offset
                    ) from None
                p.struct.pack_into(out, base + p.offset, *raw)
        for group in self.groups:
            group.encode(get(group.name), out, version)
        for var in self.var_data:
            var.encode(get(var.name), out, version)


class GroupPlan:
    """A repeating group: a dimension (entry block length, entry count), then the entries."""

    __slots__ = (
        "bl_index",
        "block",
        "dim_size",
        "dim_struct",
        "name",
        "num_index",
        "num_max",
        "since_version",
        "tail",
    )

    def __init__(self, g: Group, order: ByteOrder) -> None:
        self.name = g.name
        self.since_version = g.since_version
        bl, num = g.block_length_member, g.num_in_group_member
        by_offset = sorted([bl, num], key=lambda m: m.offset)
        self.dim_struct = _member_struct(order, g.dimension, by_offset)
        self.dim_size = g.dimension.size
        self.bl_index = by_offset.index(bl)
        self.num_index = by_offset.index(num)
        assert isinstance(num.type, EncodedType)
        self.num_max = min(int(num.type.encoding.max_value), int(num.type.primitive.wire_max))
        self.block = BlockPlan(g.fields, g.groups, g.var_data, g.block_length, order)
        # What every entry needs beyond its block: nested dimensions and var-data length prefixes.
        self.tail = tuple(
            [(n.since_version, n.dimension.size) for n in g.groups]
            + [(v.since_version, v.data_offset) for v in g.var_data]
        )

    def decode(self, buf: Buffer, pos: int, buflen: int, version: int) -> tuple[list[Any] | None, int]:
        if self.since_version > version:
            return None, pos
        if pos + self.dim_size > buflen:
            raise BufferTooShortError(
                f"the group dimension needs {self.dim_size} bytes, {buflen - pos} remain",
                field=self.name,
                offset=pos,
            )
        dim = self.dim_struct.unpack_from(buf, pos)
        acting_bl = dim[self.bl_index]
        count = dim[self.num_index]
        if count < 0 or acting_bl < 0:
            raise CodecError(
                f"negative group dimension (blockLength {acting_bl}, numInGroup {count})",
                field=self.name,
                offset=pos,
            )
        pos += self.dim_size
        if count == 0:
            return [], pos
        entry_min = acting_bl + sum(size for since, size in self.tail if since <= version)
        if count * entry_min > buflen - pos:
            raise BufferTooShortError(
                f"{count} entries of at least {entry_min} bytes do not fit in the {buflen - pos} bytes left",
                field=self.name,
                offset=pos - self.dim_size,
            )
        if entry_min == 0 and count > MAX_EMPTY_ENTRIES:
            raise CodecError(
                f"{count} zero-length entries is more than {MAX_EMPTY_ENTRIES}",
                field=self.name,
                offset=pos - self.dim_size,
            )
        block = self.block
        entries: list[Any] = []
        try:
            for _ in range(count):
                entry, pos = block.decode(buf, pos, buflen, acting_bl, version)
                entries.append(entry)
        except CodecError as exc:
            raise within(exc, f"{self.name}[{len(entries)}]") from None
        return entries, pos

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        if value is None:
            value = []
        elif not isinstance(value, (list, tuple)):
            raise EncodeValueError(
                f"expected a list of entries, got {value!r}", field=self.name, offset=len(out)
            )
        if self.since_version > version:
            if value:
                raise EncodeValueError(
                    f"the group is newer (sinceVersion {self.since_version}) than version {version}",
                    field=self.name,
                    offset=len(out),
                )
            return
        if len(value) > self.num_max:
            raise EncodeValueError(
                f"{len(value)} entries is more than numInGroup allows ({self.num_max})",
                field=self.name,
                offset=len(out),
            )
        block = self.block
        dim = [0, 0]
        dim[self.bl_index] = block.block_length
        dim[self.num_index] = len(value)
        base = len(out)
        out += bytes(self.dim_size)
        self.dim_struct.pack_into(out, base, *dim)
        for k, entry in enumerate(value):
            try:
                if not isinstance(entry, Mapping):
                    raise EncodeValueError(f"expected an object, got {entry!r}", offset=len(out))
                block.encode(entry, out, block.block_length, version)
            except CodecError as exc:
                raise within(exc, f"{self.name}[{k}]") from None


class VarDataPlan:
    """A var-data section: a length prefix, then that many bytes (text or binary)."""

    __slots__ = (
        "length_offset",
        "length_struct",
        "max_length",
        "name",
        "prefix_size",
        "since_version",
        "text",
    )

    def __init__(self, v: VarData, order: ByteOrder) -> None:
        self.name = v.name
        self.since_version = v.since_version
        length = v.type.member("length")
        assert length is not None
        self.length_offset = length.offset
        self.length_struct = struct.Struct(order.struct_prefix + v.length.primitive.struct_code)
        self.prefix_size = max(v.data_offset, length.offset + v.length.size)
        self.max_length = min(int(v.length.encoding.max_value), int(v.length.primitive.wire_max))
        self.text = TextCodec(v.character_encoding) if v.character_encoding is not None else None

    def decode(self, buf: Buffer, pos: int, buflen: int, version: int) -> tuple[Any, int]:
        if self.since_version > version:
            return None, pos
        start = pos + self.prefix_size
        if start > buflen:
            raise BufferTooShortError(
                f"the length prefix needs {self.prefix_size} bytes, {buflen - pos} remain",
                field=self.name,
                offset=pos,
            )
        (length,) = self.length_struct.unpack_from(buf, pos + self.length_offset)
        end = start + length
        if end > buflen:
            raise BufferTooShortError(
                f"var data of {length} bytes runs past the end of the buffer ({buflen - start} bytes remain)",
                field=self.name,
                offset=start,
            )
        data = buf[start:end]
        if self.text is None:
            return {"hex": data.hex()}, end
        try:
            return self.text.decode(data), end
        except ValueFault as fault:
            raise CodecError(fault.reason, field=self.name, offset=start) from None

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        data = self._bytes_of(value, len(out))
        if self.since_version > version:
            if data:
                raise EncodeValueError(
                    f"the var data is newer (sinceVersion {self.since_version}) than version {version}",
                    field=self.name,
                    offset=len(out),
                )
            return
        if len(data) > self.max_length:
            raise EncodeValueError(
                f"{len(data)} bytes is more than the length prefix allows ({self.max_length})",
                field=self.name,
                offset=len(out),
            )
        base = len(out)
        out += bytes(self.prefix_size)
        self.length_struct.pack_into(out, base + self.length_offset, len(data))
        out += data

    def _bytes_of(self, value: Any, offset: int) -> bytes:
        if value is None:
            return b""
        if isinstance(value, str) and self.text is not None:
            try:
                return self.text.encode(value)
            except ValueFault as fault:
                raise EncodeValueError(fault.reason, field=self.name, offset=offset) from None
        if isinstance(value, Mapping) and list(value) == ["hex"] and isinstance(value["hex"], str):
            try:
                return bytes.fromhex(value["hex"])
            except ValueError:
                raise EncodeValueError(
                    f"'hex' is not a hex string: {value['hex']!r}", field=self.name, offset=offset
                ) from None
        expected = 'a string or {"hex": ...}' if self.text is not None else '{"hex": ...}'
        raise EncodeValueError(f"expected {expected}, got {value!r}", field=self.name, offset=offset)


def message_plan(message: Message, order: ByteOrder) -> BlockPlan:
    return BlockPlan(message.fields, message.groups, message.var_data, message.block_length, order)
