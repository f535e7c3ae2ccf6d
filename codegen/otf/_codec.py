"""The run-time codec: :class:`OtfCodec` decodes and encodes any message of a schema from its IR."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from codegen.ir.model import Schema
from codegen.otf._plan import BlockPlan, Buffer, HeaderPlan, message_plan
from codegen.runtime.errors import (
    BufferTooShortError,
    CodecError,
    EncodeValueError,
    SchemaIdMismatchError,
    UnknownTemplateError,
)

__all__ = ["DecodedMessage", "OtfCodec"]


@dataclass(frozen=True, slots=True)
class DecodedMessage:
    """One decoded message: the header's values (acting version and block length), its name, its
    fields as JSON values (``docs/sbe-json.md``) and ``length``, the bytes it occupies incl. the header."""

    schema_id: int
    template_id: int
    version: int
    block_length: int
    name: str
    fields: dict[str, Any]
    length: int

    def to_json_obj(self) -> dict[str, Any]:
        """The JSON object ``tools sbe decode`` prints, keys in the documented order."""
        return {
            "schemaId": self.schema_id,
            "templateId": self.template_id,
            "version": self.version,
            "blockLength": self.block_length,
            "message": self.name,
            "fields": self.fields,
        }


@dataclass(frozen=True, slots=True)
class _MessagePlan:
    name: str
    template_id: int
    block_length: int
    body: BlockPlan


def _view(buffer: Buffer) -> memoryview:
    """A flat byte view of ``buffer``, whatever its item format or shape (offsets then count bytes)."""
    try:
        view = memoryview(buffer)
    except TypeError:
        raise CodecError(f"cannot decode a {type(buffer).__name__}: it is not a buffer") from None
    if not view.c_contiguous:
        raise CodecError("a memoryview must be C-contiguous to be decoded")
    if view.ndim != 1 or view.itemsize != 1 or view.format != "B":
        view = view.cast("B")
    return view


def _named(exc: CodecError, message_name: str) -> CodecError:
    return type(exc)(exc.reason, message_name=message_name, field=exc.field, offset=exc.offset)


class OtfCodec:
    """Decode and encode every message of ``schema``, with plans compiled once at construction.

    >>> codec = OtfCodec(load_schema("car.xml"))           # doctest: +SKIP
    >>> message = codec.decode(data)                       # doctest: +SKIP
    >>> codec.encode(message.name, message.fields, version=message.version) == data  # doctest: +SKIP
    """

    __slots__ = ("_by_id", "_by_name", "_header", "schema")

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._header = HeaderPlan(schema.header, schema.byte_order)
        plans = [
            _MessagePlan(m.name, m.id, m.block_length, message_plan(m, schema.byte_order))
            for m in schema.messages
        ]
        self._by_id = {p.template_id: p for p in plans}
        self._by_name = {p.name: p for p in plans}

    @property
    def header_length(self) -> int:
        return self._header.size

    def decode(self, buffer: Buffer, offset: int = 0) -> DecodedMessage:
        """Decode the message at ``offset``: header, then the body at the header's acting version and
        block length.  Raises a :class:`~codegen.runtime.errors.CodecError` on any bad input."""
        buf = _view(buffer)
        buflen = len(buf)
        header = self._header
        if offset < 0 or offset + header.size > buflen:
            raise BufferTooShortError(
                f"a message header needs {header.size} bytes, {max(buflen - offset, 0)} remain",
                field="messageHeader",
                offset=offset,
            )
        block_length, template_id, schema_id, version = header.read(buf, offset)
        if schema_id != self.schema.id:
            raise SchemaIdMismatchError(
                f"the header's schemaId is {schema_id}, this schema's is {self.schema.id}", offset=offset
            )
        plan = self._by_id.get(template_id)
        if plan is None:
            raise UnknownTemplateError(
                f"schema {self.schema.id} has no message with templateId {template_id}", offset=offset
            )
        try:
            fields, end = plan.body.decode(buf, offset + header.size, buflen, block_length, version)
        except CodecError as exc:
            raise _named(exc, plan.name) from None
        return DecodedMessage(schema_id, template_id, version, block_length, plan.name, fields, end - offset)

    def decode_all(self, buffer: Buffer) -> Iterator[DecodedMessage]:
        """Decode concatenated messages until the buffer ends; the first bad one raises."""
        buf = _view(buffer)
        offset = 0
        while offset < len(buf):
            message = self.decode(buf, offset)
            offset += message.length
            yield message

    def encode(
        self,
        message_name: str,
        fields: Mapping[str, Any],
        *,
        version: int | None = None,
        block_length: int | None = None,
    ) -> bytes:
        """Encode a message (header and body) from its JSON fields (``docs/sbe-json.md``).

        ``version`` (default: the schema's) goes in the header; fields newer than it are still written
        when the block has room, groups and var data newer than it must be empty.  ``block_length``
        (default: the schema's) sets the root block's size: a longer block is zero-padded, a shorter
        one may only omit fields that are null.
        """
        plan = self._by_name.get(message_name)
        if plan is None:
            raise UnknownTemplateError(f"schema {self.schema.id} has no message named '{message_name}'")
        acting_version = self.schema.version if version is None else version
        acting_bl = plan.block_length if block_length is None else block_length
        if not isinstance(fields, Mapping):
            raise EncodeValueError(f"expected an object of fields, got {fields!r}", message_name=plan.name)
        for what, value in (("version", acting_version), ("blockLength", acting_bl)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise EncodeValueError(f"{what} must be an integer, got {value!r}", message_name=plan.name)
        out = bytearray()
        try:
            self._header.write(out, (acting_bl, plan.template_id, self.schema.id, acting_version))
            plan.body.encode(fields, out, acting_bl, acting_version)
        except CodecError as exc:
            raise _named(exc, plan.name) from None
        return bytes(out)
