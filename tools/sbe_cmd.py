"""``python -m tools sbe``: decode or encode SBE messages of any schema, driven by its XML.

::

    python -m tools sbe decode --schema XML (--hex HEX | FILE)   # FILE may be '-' for stdin
    python -m tools sbe encode --schema XML < lines.json

``decode`` prints one JSON line per message (``docs/sbe-json.md``) for a buffer of concatenated
messages; a message that cannot be decoded prints ``{"error": ..., "offset": N}`` and the exit status
is 1.  ``encode`` reads one JSON object per line, ``{"message": NAME, "fields": {...}}`` with optional
``version`` and ``blockLength`` (a line printed by ``decode`` is accepted too), and prints the encoded
message as one line of lowercase hex; a bad line is reported on stderr and the exit status is 1.
A schema that cannot be loaded is reported as ``error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Final

from codegen import load_schema
from codegen.otf import OtfCodec
from codegen.runtime.errors import CodecError
from codegen.schema import SchemaError

__all__ = ["configure", "run"]

DATA_ERROR_STATUS: Final = 1
USER_ERROR_STATUS: Final = 2


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="sbe_action", metavar="<action>", required=True)

    decode = actions.add_parser(
        "decode",
        help="decode concatenated binary messages to JSON lines",
        description="Decode one or more concatenated SBE messages; print one JSON line per message.",
    )
    decode.add_argument("--schema", required=True, metavar="XML", help="the SBE schema file")
    source = decode.add_mutually_exclusive_group(required=True)
    source.add_argument("--hex", metavar="HEX", help="the message bytes as hex (whitespace is ignored)")
    source.add_argument("file", nargs="?", metavar="FILE", help="a file of message bytes; '-' reads stdin")

    encode = actions.add_parser(
        "encode",
        help="encode JSON lines from stdin to hex lines",
        description='Read JSON lines {"message": NAME, "fields": {...}} (optional "version", '
        '"blockLength") from stdin; print each encoded message as a line of lowercase hex.',
    )
    encode.add_argument("--schema", required=True, metavar="XML", help="the SBE schema file")


def run(args: argparse.Namespace) -> int:
    try:
        codec = OtfCodec(load_schema(args.schema))
    except SchemaError as exc:
        return _user_error(str(exc))
    if args.sbe_action == "decode":
        return _decode(codec, args)
    return _encode(codec)


def _user_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return USER_ERROR_STATUS


def _read_input(args: argparse.Namespace) -> bytes | str:
    """The bytes to decode, or an error message."""
    if args.hex is not None:
        text = "".join(args.hex.split())
        try:
            return bytes.fromhex(text)
        except ValueError:
            return f"--hex is not a string of hex digits: {args.hex!r}"
    if args.file == "-":
        return sys.stdin.buffer.read()
    try:
        with open(args.file, "rb") as f:
            return f.read()
    except OSError as exc:
        return f"cannot read {args.file}: {exc.strerror}"


def _decode(codec: OtfCodec, args: argparse.Namespace) -> int:
    data = _read_input(args)
    if isinstance(data, str):
        return _user_error(data)
    out = sys.stdout
    offset = 0
    while offset < len(data):
        try:
            message = codec.decode(data, offset)
        except CodecError as exc:
            where = offset if exc.offset is None else exc.offset
            out.write(json.dumps({"error": str(exc), "offset": where}) + "\n")
            out.flush()
            return DATA_ERROR_STATUS
        out.write(json.dumps(message.to_json_obj()) + "\n")
        offset += message.length
    out.flush()
    return 0


def _encode(codec: OtfCodec) -> int:
    out = sys.stdout
    for lineno, line in enumerate(sys.stdin.buffer, start=1):
        if not line.strip():
            continue
        try:
            data = _encode_line(codec, line)
        except (ValueError, CodecError) as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            print(f"error: line {lineno}: {exc}", file=sys.stderr)
            out.flush()
            return DATA_ERROR_STATUS
        out.write(data.hex() + "\n")
    out.flush()
    return 0


def _encode_line(codec: OtfCodec, line: bytes) -> bytes:
    obj: Any = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    name = obj.get("message")
    if not isinstance(name, str):
        raise ValueError('expected "message": the name of a message')
    fields = obj.get("fields", {})
    schema = codec.schema
    if "schemaId" in obj and obj["schemaId"] != schema.id:
        raise ValueError(f'"schemaId" {obj["schemaId"]!r} is not this schema\'s id {schema.id}')
    message = schema.message_named(name)
    if message is not None and "templateId" in obj and obj["templateId"] != message.id:
        raise ValueError(f'"templateId" {obj["templateId"]!r} is not the id of {name} ({message.id})')
    return codec.encode(name, fields, version=obj.get("version"), block_length=obj.get("blockLength"))
