"""Run-time support imported by generated codecs: errors and small helpers. No third-party imports."""

from codegen.runtime.errors import (
    BufferTooShortError,
    CodecError,
    EncodeValueError,
    SchemaIdMismatchError,
    UnknownTemplateError,
    UnsupportedVersionError,
)

__all__ = [
    "BufferTooShortError",
    "CodecError",
    "EncodeValueError",
    "SchemaIdMismatchError",
    "UnknownTemplateError",
    "UnsupportedVersionError",
]
