"""Whole messages of a generated schema, built with its encoders: the block's fields by keyword, then
the variable-length data in the schema's order -- one call for the messages that carry var data (the
fixed-size ones also have ``Encoder.pack_into``)."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["pack"]

_VAR_LENGTH_FIELD: Final = 4  # the widest var-data length prefix (uint32)
_MESSAGE_HEADER: Final = 8


def pack(encoder_type: Any, var: dict[str, bytes | str] | None = None, **fields: int) -> bytes:
    """A message of ``encoder_type``: its header, the block's ``fields``, then the ``var`` data (in the
    schema's order, which is the dict's; text is encoded as ASCII, as the schemas' var strings are)."""
    data = {
        name: value.encode("ascii") if isinstance(value, str) else value
        for name, value in (var or {}).items()
    }
    size = (
        _MESSAGE_HEADER + encoder_type.BLOCK_LENGTH + sum(_VAR_LENGTH_FIELD + len(v) for v in data.values())
    )
    buffer = bytearray(size)
    encoder = encoder_type().wrap_and_apply_header(buffer, 0)
    for name, value in fields.items():
        setattr(encoder, name, value)
    for name, data_value in data.items():
        getattr(encoder, f"put_{name}")(data_value)
    return bytes(buffer[: _MESSAGE_HEADER + encoder.encoded_length()])
