"""The codec errors: every bad-input path in generated and run-time codecs raises one of these."""

from __future__ import annotations

__all__ = [
    "BufferTooShortError",
    "CodecError",
    "EncodeValueError",
    "SchemaIdMismatchError",
    "UnknownTemplateError",
    "UnsupportedVersionError",
]


class CodecError(ValueError):
    """A message could not be decoded or encoded.

    ``message_name``, ``field`` and ``offset`` say where: the SBE message (or
    composite/group) being processed, the field within it, and the byte offset
    in the buffer at which the problem was found.
    """

    is_user_error = True

    def __init__(
        self,
        reason: str,
        *,
        message_name: str | None = None,
        field: str | None = None,
        offset: int | None = None,
    ) -> None:
        self.reason = reason
        self.message_name = message_name
        self.field = field
        self.offset = offset
        where = []
        if message_name is not None:
            where.append(message_name if field is None else f"{message_name}.{field}")
        elif field is not None:
            where.append(field)
        if offset is not None:
            where.append(f"offset {offset}")
        super().__init__(f"{reason} ({', '.join(where)})" if where else reason)


class BufferTooShortError(CodecError):
    """The buffer ends before the bytes the message says it has."""


class SchemaIdMismatchError(CodecError):
    """The message header names another schema."""


class UnknownTemplateError(CodecError):
    """The message header names a template id this schema does not define."""


class UnsupportedVersionError(CodecError):
    """The acting version or block length cannot be decoded by this codec."""


class EncodeValueError(CodecError):
    """A value given to an encoder cannot be represented on the wire."""
