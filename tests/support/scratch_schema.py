"""Small throwaway schemas for tests: wrap a few type and message XML snippets in a whole schema.

``scratch_codecs(types, messages)`` returns the parsed IR, the generated Python module (imported in
memory) and an OTF codec for the same schema, so a test can state one property about a few lines of
XML and check both codecs against each other.  Every scratch schema has the standard
``messageHeader`` and ``groupSizeEncoding``, ``varDataEncoding`` (uint32 length, binary bytes) and
``varStringEncoding`` (the same, UTF-8 text); the snippets add whatever else the test needs.
"""

from __future__ import annotations

from types import ModuleType
from xml.sax.saxutils import quoteattr

from codegen.ir.model import Schema
from codegen.otf import OtfCodec
from codegen.schema import parse_schema_bytes
from support.generated_import import import_schema

SOURCE = "scratch.xml"
SCHEMA_ID = 7

STANDARD_TYPES = """
<composite name="messageHeader">
  <type name="blockLength" primitiveType="uint16"/>
  <type name="templateId" primitiveType="uint16"/>
  <type name="schemaId" primitiveType="uint16"/>
  <type name="version" primitiveType="uint16"/>
</composite>
<composite name="groupSizeEncoding">
  <type name="blockLength" primitiveType="uint16"/>
  <type name="numInGroup" primitiveType="uint16"/>
</composite>
<composite name="varDataEncoding">
  <type name="length" primitiveType="uint32" maxValue="1073741824"/>
  <type name="varData" primitiveType="uint8" length="0"/>
</composite>
<composite name="varStringEncoding">
  <type name="length" primitiveType="uint32" maxValue="1073741824"/>
  <type name="varData" primitiveType="uint8" length="0" characterEncoding="UTF-8"/>
</composite>
"""


def scratch_xml(
    types: str = "",
    messages: str = "",
    *,
    version: int = 0,
    package: str = "scratch",
    description: str | None = None,
) -> bytes:
    """The whole schema document: the standard types, then ``types``; then ``messages``.

    ``package`` and ``description`` are taken as plain text and escaped for the XML attribute.
    """
    described = "" if description is None else f" description={quoteattr(description)}"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<sbe:messageSchema xmlns:sbe="http://fixprotocol.io/2016/sbe"'
        f' package={quoteattr(package)} id="{SCHEMA_ID}" version="{version}"{described}>\n'
        f"<types>{STANDARD_TYPES}{types}\n</types>\n"
        f"{messages}\n"
        "</sbe:messageSchema>\n"
    ).encode()


def scratch_schema(
    types: str = "",
    messages: str = "",
    *,
    version: int = 0,
    package: str = "scratch",
    description: str | None = None,
) -> Schema:
    """Parse the scratch schema (arguments as for :func:`scratch_xml`); a bad one raises SchemaError."""
    data = scratch_xml(types, messages, version=version, package=package, description=description)
    return parse_schema_bytes(data, source=SOURCE)


def scratch_codecs(
    types: str = "",
    messages: str = "",
    *,
    version: int = 0,
    package: str = "scratch",
    description: str | None = None,
) -> tuple[Schema, ModuleType, OtfCodec]:
    """The scratch schema's IR, its generated module and its OTF codec."""
    schema = scratch_schema(types, messages, version=version, package=package, description=description)
    return schema, import_schema(schema, "scratch"), OtfCodec(schema)
