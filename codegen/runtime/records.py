"""Whole-record helpers for generated codecs: evolved blocks, raw tuples, and dicts.

Generated classes describe themselves with small tables, and these functions
walk them, so dict conversion and the slow (schema-evolution) paths exist once
here instead of once per message:

* ``_JSON`` on decoders and encoders: one row per field or section,
  ``(kind, json_name, attribute, extra)``; kinds are ``value``, ``enum``,
  ``set``, ``composite``, ``group`` and ``data``.
* ``_UNPACK`` on decoders: the section accessors in order, for raw tuples.
* ``_PLAN`` on decoders: per field ``(since_version, end, first, count)``,
  giving the slots of the flat block tuple that each field fills.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from codegen.runtime.errors import CodecError, EncodeValueError
from codegen.runtime.flyweight import decode_text, encode_text, enum_to_json, set_to_json

__all__ = ["Fallback", "from_dict", "read_block_evolved", "to_dict", "unpack_record"]


class Fallback(Exception):
    """Raised inside a generated fast path to hand over to the general path."""


def read_block_evolved(
    buffer: Any,
    offset: int,
    acting_block_length: int,
    acting_version: int,
    block: struct.Struct,
    block_length: int,
    plan: tuple[tuple[int, int, int, int], ...],
) -> tuple[Any, ...]:
    """The flat block tuple of a block written at another version: absent fields are ``None``."""
    have = min(acting_block_length, block_length)
    data = bytes(buffer[offset : offset + have]) + bytes(block_length - have)
    values: list[Any] = list(block.unpack(data))
    for since, end, first, count in plan:
        if since > acting_version or end > acting_block_length:
            values[first : first + count] = [None] * count
    return tuple(values)


def unpack_record(decoder: Any) -> tuple[Any, ...]:
    """The raw tuple of a message or group entry: its block values, then each section."""
    block = decoder.read_block()
    sections = decoder._UNPACK
    if not sections:
        return block  # type: ignore[no-any-return]
    out: list[Any] = []
    for kind, attribute in sections:
        accessor = getattr(decoder, attribute)
        if kind == "group":
            out.append([unpack_record(entry) for entry in accessor()])
        else:
            out.append(accessor())
    return block + tuple(out)  # type: ignore[no-any-return]


def to_dict(decoder: Any) -> dict[str, Any]:
    """The JSON-ready dict of a decoder (see docs/sbe-json.md)."""
    out: dict[str, Any] = {}
    for row in decoder._JSON:
        kind, name, attribute = row[0], row[1], row[2]
        if kind == "value":
            value = getattr(decoder, attribute)
            out[name] = list(value) if isinstance(value, tuple) else value
        elif kind == "enum":
            raw = getattr(decoder, attribute)
            out[name] = None if raw is None else enum_to_json(raw, row[3], row[4])
        elif kind == "set":
            raw = getattr(decoder, attribute)
            out[name] = None if raw is None else set_to_json(raw, row[3])
        elif kind == "composite":
            inner = getattr(decoder, attribute)
            out[name] = None if inner is None else to_dict(inner)
        elif kind == "group":
            since = row[3]
            entries = getattr(decoder, attribute)()
            if since and decoder._acting_version < since:
                out[name] = None
            else:
                out[name] = [to_dict(entry) for entry in entries]
        else:  # data
            since, encoding = row[3], row[4]
            view = getattr(decoder, attribute)()
            if since and decoder._acting_version < since:
                out[name] = None
            elif encoding:
                out[name] = decode_text(view, encoding, decoder.NAME, name, decoder._root._limit - len(view))
            else:
                out[name] = {"hex": view.hex()}
    return out


def _hex_bytes(value: Any, owner: str, name: str) -> bytes:
    if isinstance(value, Mapping) and isinstance(value.get("hex"), str):
        try:
            return bytes.fromhex(value["hex"])
        except ValueError:
            raise EncodeValueError("invalid hex string", message_name=owner, field=name) from None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise EncodeValueError(
        f'binary data must be {{"hex": ...}}, not {type(value).__name__}', message_name=owner, field=name
    )


def _enum_value(value: Any, by_name: Mapping[str, int], null: int, owner: str, name: str) -> int:
    if value is None:
        return null
    if isinstance(value, str):
        found = by_name.get(value)
        if found is None:
            raise EncodeValueError(f"'{value}' is not a value of this enum", message_name=owner, field=name)
        return found
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise EncodeValueError(
        f"enum value must be a name or an integer, not {type(value).__name__}", message_name=owner, field=name
    )


def _set_value(value: Any, by_name: Mapping[str, int], owner: str, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, (list, tuple)):
        raise EncodeValueError("a set must be a list of choice names", message_name=owner, field=name)
    bits = 0
    for choice in value:
        if isinstance(choice, str):
            bit = by_name.get(choice)
            if bit is None:
                raise EncodeValueError(
                    f"'{choice}' is not a choice of this set", message_name=owner, field=name
                )
        elif isinstance(choice, int) and not isinstance(choice, bool):
            bit = choice
        else:
            raise EncodeValueError("set choices must be names or bit numbers", message_name=owner, field=name)
        bits |= 1 << bit
    return bits


def from_dict(encoder: Any, values: Mapping[str, Any]) -> None:
    """Write a JSON-style dict through an encoder (sections in schema order)."""
    if not isinstance(values, Mapping):
        raise EncodeValueError(f"expected an object, not {type(values).__name__}", message_name=encoder.NAME)
    owner = encoder.NAME
    rows = encoder._JSON
    if len(values) > len(rows) or any(key not in encoder._KEYS for key in values):
        unknown = sorted(
            str(key) for key in values if key not in encoder._KEYS and key not in encoder._CONSTANTS
        )
        if unknown:
            raise EncodeValueError(f"there is no field {unknown[0]!r}", message_name=owner, field=unknown[0])
    for row in rows:
        kind, name, attribute = row[0], row[1], row[2]
        value = values.get(name)
        try:
            if kind == "value":
                if isinstance(value, bool):
                    raise EncodeValueError(
                        f"expected a number or text, not {value!r}", message_name=owner, field=name
                    )
                if value is None and not row[3]:
                    raise EncodeValueError("a value is required", message_name=owner, field=name)
                setattr(encoder, attribute, value)
            elif kind == "enum":
                setattr(encoder, attribute, _enum_value(value, row[3], row[4], owner, name))
            elif kind == "set":
                setattr(encoder, attribute, _set_value(value, row[3], owner, name))
            elif kind == "composite":
                from_dict(getattr(encoder, attribute), value if value is not None else {})
            elif kind == "group":
                entries = value if value is not None else []
                if not isinstance(entries, list):
                    raise EncodeValueError("a group must be a list", message_name=owner, field=name)
                group = getattr(encoder, attribute)(len(entries))
                for entry in entries:
                    from_dict(group.next(), entry)
            else:  # data
                encoding = row[3]
                if value is None:
                    data = b""
                elif isinstance(value, str) and encoding:
                    data = encode_text(value, encoding, owner, name)
                else:
                    data = _hex_bytes(value, owner, name)
                getattr(encoder, attribute)(data)
        except CodecError:
            raise
        except (TypeError, ValueError, struct.error, OverflowError) as exc:
            raise EncodeValueError(f"bad value {value!r}: {exc}", message_name=owner, field=name) from None
