"""The checked-in codecs read like hand-written code: offset, type and byte order at every read and write.

SBE's own Java codecs read a field as ``buffer.getLong(offset + 8, LITTLE_ENDIAN)``; ours read it as
``_INT64_LE.unpack_from(self._buffer, self._offset + 8)[0]`` and write it with the same struct at the
same offset.  These tests hold every package under ``generated/`` to that:

* no numbered structs (``_S20u``), no struct of no bytes, no ``type: ignore`` in files that carry
  ``mypy: ignore-errors`` anyway, and no struct a module does not use;
* each field struct's name says its format (the table below is written independently of the
  generator): ``_UINT32_BE_X4`` must be ``">4I"``;
* every single-value primitive field of every message and group, found through the schema's IR,
  is read by its decoder property and written by its encoder setter with the struct of its type and
  byte order at ``self._offset + <its offset>``.
"""

from __future__ import annotations

import inspect
import re
import struct
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
from support.paths import REPO, SCHEMAS

import generated
from codegen.ir.model import EncodedType, Group, Message, Primitive
from codegen.schema import load_schema
from codegen.targets.python import package_name_for
from generated.aeron_cluster_codecs import SessionMessageHeaderDecoder, SessionMessageHeaderEncoder

GENERATED = REPO / "generated"
PACKAGES = sorted(p for p in GENERATED.glob("*/__init__.py"))
SCHEMA_FILES = sorted(SCHEMAS.glob("*.xml"))

STRUCT_DEF = re.compile(r'^(_[A-Z0-9_]+) = _struct\.Struct\("([^"]*)"\)$', re.MULTILINE)
# SBE type -> struct code, and byte order -> prefix: what a field struct's name promises.
TYPE_CODES = {
    "INT8": "b",
    "UINT8": "B",
    "INT16": "h",
    "UINT16": "H",
    "INT32": "i",
    "UINT32": "I",
    "INT64": "q",
    "UINT64": "Q",
    "FLOAT": "f",
    "DOUBLE": "d",
}
FIELD_STRUCT = re.compile(r"_(CHAR|[A-Z]+[0-9]+|FLOAT|DOUBLE)(?:_(LE|BE))?(?:_X([0-9]+))?")


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _ids(paths: list[Path]) -> list[str]:
    return [p.parent.name if p.name == "__init__.py" else p.stem for p in paths]


def test_generated_packages_are_found() -> None:
    assert len(PACKAGES) == len(SCHEMA_FILES) >= 6


@pytest.mark.parametrize("path", PACKAGES, ids=_ids(PACKAGES))
def test_no_numbered_structs_and_no_type_ignores(path: Path) -> None:
    text = _text(path)
    assert "# mypy: ignore-errors" in text
    assert not re.search(r"\b_S[0-9]+[up]?\b", text), "numbered struct names are back"
    assert "type: ignore" not in text


@pytest.mark.parametrize("path", PACKAGES, ids=_ids(PACKAGES))
def test_every_struct_covers_bytes_and_is_used(path: Path) -> None:
    text = _text(path)
    defs = STRUCT_DEF.findall(text)
    assert defs, f"{path}: no struct definitions found (has the pattern gone stale?)"
    assert text.count("_struct.Struct(") == len(defs), "a struct is defined outside the module level"
    names = Counter(re.findall(r"\b_[A-Z][A-Z0-9_]*\b", text))
    for name, fmt in defs:
        assert struct.calcsize(fmt) > 0, f"{name} = Struct({fmt!r}) covers no bytes"
        assert names[name] > 1, f"{name} is defined but never used"


@pytest.mark.parametrize("path", PACKAGES, ids=_ids(PACKAGES))
def test_field_struct_names_say_type_byte_order_and_count(path: Path) -> None:
    module = _module(path)
    prefix = "<" if module.BYTE_ORDER == "littleEndian" else ">"
    checked = 0
    for name, fmt in STRUCT_DEF.findall(_text(path)):
        match = FIELD_STRUCT.fullmatch(name)
        if match is None:
            assert name.endswith(("_LAYOUT", "_BLOCK", "_WITH_HEADER", "_DIMENSIONS")) or "ZEROS_" in name, (
                name
            )
            continue
        kind, order, count = match[1], match[2], int(match[3] or 1)
        if kind == "CHAR":
            assert order is None and fmt == f"{prefix}{count}s", (name, fmt)
        else:
            code = TYPE_CODES[kind]
            assert (order is None) == (struct.calcsize(code) == 1), f"{name}: byte order named iff it matters"
            if order is not None:
                assert prefix == {"LE": "<", "BE": ">"}[order], f"{name} in a {module.BYTE_ORDER} schema"
            assert fmt == prefix + (code if count == 1 else f"{count}{code}"), (name, fmt)
        checked += 1
    assert checked


def _module(path: Path) -> ModuleType:
    module = getattr(generated, path.parent.name)
    assert isinstance(module, ModuleType)
    return module


def test_session_message_header_reads_and_writes_cluster_session_id_at_offset_8() -> None:
    """The example of the issue: type, byte order and offset at the read and at the write."""
    read = inspect.getsource(SessionMessageHeaderDecoder.cluster_session_id.fget)
    write = inspect.getsource(SessionMessageHeaderEncoder._set_cluster_session_id)
    assert "return _INT64_LE.unpack_from(self._buffer, self._offset + 8)[0]" in read
    assert "_INT64_LE.pack_into(self._buffer, self._offset + 8, value)" in write


def _blocks(message: Message) -> list[tuple[str, Message | Group]]:
    """(class stem, block) for the message and each of its groups, nested ones too."""
    out: list[tuple[str, Message | Group]] = [(message.name[:1].upper() + message.name[1:], message)]
    index = 0
    while index < len(out):
        stem, block = out[index]
        out += [(stem + g.name[:1].upper() + g.name[1:], g) for g in block.groups]
        index += 1
    return out


def _field_struct(primitive: Primitive, prefix: str) -> str:
    name = primitive.name
    assert TYPE_CODES[name] == primitive.struct_code
    if primitive.size > 1:
        name += "_LE" if prefix == "<" else "_BE"
    return f"_{name}"


@pytest.mark.parametrize("schema_path", SCHEMA_FILES, ids=[p.stem for p in SCHEMA_FILES])
def test_every_primitive_field_names_its_struct_and_offset_on_both_sides(schema_path: Path) -> None:
    schema = load_schema(schema_path)
    module = getattr(generated, package_name_for(schema_path))
    prefix = schema.byte_order.struct_prefix
    checked = 0
    for message in schema.messages:
        for stem, block in _blocks(message):
            decoder, encoder = getattr(module, f"{stem}Decoder"), getattr(module, f"{stem}Encoder")
            attributes = {row[1]: row[2] for row in decoder._JSON if row[0] == "value"}
            for f in block.fields:
                node = f.type
                if (
                    f.is_constant
                    or not isinstance(node, EncodedType)
                    or node.length != 1
                    or node.primitive is Primitive.CHAR
                ):
                    continue
                attribute = attributes[f.name]
                at = f"self._offset + {f.offset}" if f.offset else "self._offset"
                struct_name = _field_struct(node.primitive, prefix)
                read = inspect.getsource(getattr(decoder, attribute).fget)
                write = inspect.getsource(getattr(encoder, f"_set_{attribute}"))
                assert f"{struct_name}.unpack_from(self._buffer, {at})[0]" in read, (stem, f.name, read)
                assert f"{struct_name}.pack_into(self._buffer, {at}, value)" in write, (stem, f.name, write)
                checked += 1
    if schema.messages:
        assert checked, f"no primitive fields checked in {schema_path.name}"
