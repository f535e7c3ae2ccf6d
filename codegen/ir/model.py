"""The resolved, target-independent model of an SBE schema.

Theory of operation
-------------------
The parser (``codegen.schema``) reads XML, checks it against the SBE rules, and
produces this model.  By the time a model exists every question a code
generator or a run-time codec could ask has been answered once:

* every type reference is resolved to the node it names (named types are
  shared objects, so ``is`` identity means "the same schema type");
* every field, composite member, group and var-data section has its byte
  offset and size (explicit ``offset`` attributes honoured, otherwise packed);
* every primitive has its effective presence, null, min and max values, byte
  order and character encoding;
* constants carry their value, with ``valueRef`` already looked up.

Wire layout in one paragraph: a message is an SBE header (``schema.header``),
then the root block of ``block_length`` bytes holding the fixed ``fields``,
then each repeating group in order (a dimension composite giving the entry
block length and count, then the entries, each a block followed by its own
nested groups and var data), then each var-data section in order (a length
prefix, then that many bytes).

All nodes are frozen dataclasses.  ``codegen.ir.dump`` renders a schema as a
stable line-per-node text used by golden tests.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ByteOrder",
    "Choice",
    "CompositeType",
    "EncodedType",
    "Encoding",
    "EnumType",
    "EnumValue",
    "Field",
    "Group",
    "Member",
    "Message",
    "Presence",
    "Primitive",
    "Schema",
    "SetType",
    "TypeNode",
    "VarData",
]


class Primitive(enum.Enum):
    """SBE primitive types: (xml name, size in bytes, struct code, null, min, max)."""

    CHAR = ("char", 1, "B", 0, 0x20, 0x7E)
    INT8 = ("int8", 1, "b", -(2**7), -(2**7) + 1, 2**7 - 1)
    UINT8 = ("uint8", 1, "B", 2**8 - 1, 0, 2**8 - 2)
    INT16 = ("int16", 2, "h", -(2**15), -(2**15) + 1, 2**15 - 1)
    UINT16 = ("uint16", 2, "H", 2**16 - 1, 0, 2**16 - 2)
    INT32 = ("int32", 4, "i", -(2**31), -(2**31) + 1, 2**31 - 1)
    UINT32 = ("uint32", 4, "I", 2**32 - 1, 0, 2**32 - 2)
    INT64 = ("int64", 8, "q", -(2**63), -(2**63) + 1, 2**63 - 1)
    UINT64 = ("uint64", 8, "Q", 2**64 - 1, 0, 2**64 - 2)
    FLOAT = ("float", 4, "f", math.nan, -3.4028234663852886e38, 3.4028234663852886e38)
    DOUBLE = ("double", 8, "d", math.nan, -1.7976931348623157e308, 1.7976931348623157e308)

    def __init__(self, xml_name: str, size: int, struct_code: str, null: float, lo: float, hi: float) -> None:
        self.xml_name = xml_name
        self.size = size
        self.struct_code = struct_code
        self.default_null = null
        self.default_min = lo
        self.default_max = hi

    @property
    def is_float(self) -> bool:
        return self in (Primitive.FLOAT, Primitive.DOUBLE)

    @property
    def is_signed(self) -> bool:
        return self.struct_code in "bhiqfd"

    @property
    def wire_min(self) -> float:
        """Smallest value the wire representation can hold (null included)."""
        if self.is_float:
            return -math.inf
        return -(2 ** (8 * self.size - 1)) if self.is_signed else 0

    @property
    def wire_max(self) -> float:
        if self.is_float:
            return math.inf
        top: int = 2 ** (8 * self.size - 1) - 1 if self.is_signed else 2 ** (8 * self.size) - 1
        return top

    @classmethod
    def from_xml(cls, name: str) -> Primitive | None:
        return _BY_XML_NAME.get(name)


_BY_XML_NAME = {p.xml_name: p for p in Primitive}


class ByteOrder(enum.Enum):
    LITTLE_ENDIAN = ("littleEndian", "<")
    BIG_ENDIAN = ("bigEndian", ">")

    def __init__(self, xml_name: str, struct_prefix: str) -> None:
        self.xml_name = xml_name
        self.struct_prefix = struct_prefix


class Presence(enum.Enum):
    REQUIRED = "required"
    OPTIONAL = "optional"
    CONSTANT = "constant"


Scalar = int | float


@dataclass(frozen=True, slots=True)
class Encoding:
    """How one primitive value sits on the wire, and what its special values are.

    ``null_value`` is the effective null (explicit ``nullValue`` or the
    primitive's default), ``constant`` the value of a constant (an ``int`` or
    ``float`` for a scalar, a ``str`` for a char array constant).
    """

    primitive: Primitive
    byte_order: ByteOrder
    presence: Presence = Presence.REQUIRED
    null_value: Scalar = 0
    min_value: Scalar = 0
    max_value: Scalar = 0
    constant: Scalar | str | None = None
    character_encoding: str | None = None
    semantic_type: str | None = None

    @property
    def struct_code(self) -> str:
        return self.primitive.struct_code


@dataclass(frozen=True, slots=True, eq=False)
class EncodedType:
    """An SBE ``<type>``: a primitive scalar (``length == 1``), a fixed array, or a
    var-data element (``length == 0``)."""

    name: str
    encoding: Encoding
    length: int = 1
    value_ref: str | None = None
    description: str | None = None
    since_version: int = 0
    deprecated: int | None = None
    line: int = 0
    kind: Literal["type"] = "type"

    @property
    def primitive(self) -> Primitive:
        return self.encoding.primitive

    @property
    def presence(self) -> Presence:
        return self.encoding.presence

    @property
    def is_constant(self) -> bool:
        return self.encoding.presence is Presence.CONSTANT

    @property
    def is_array(self) -> bool:
        return self.length != 1

    @property
    def is_text(self) -> bool:
        """A char array (or char var-data element): decoded as a string."""
        return self.encoding.primitive is Primitive.CHAR and self.length != 1

    @property
    def size(self) -> int:
        return 0 if self.is_constant else self.encoding.primitive.size * self.length


@dataclass(frozen=True, slots=True)
class EnumValue:
    name: str
    value: int
    literal: str
    description: str | None = None
    since_version: int = 0
    deprecated: int | None = None


@dataclass(frozen=True, slots=True, eq=False)
class EnumType:
    """An SBE ``<enum>``; char enums store each value as its character code."""

    name: str
    encoding: Encoding
    values: tuple[EnumValue, ...]
    description: str | None = None
    since_version: int = 0
    deprecated: int | None = None
    line: int = 0
    kind: Literal["enum"] = "enum"

    @property
    def size(self) -> int:
        return self.encoding.primitive.size

    @property
    def null_value(self) -> int:
        return int(self.encoding.null_value)

    def value_named(self, name: str) -> EnumValue | None:
        for v in self.values:
            if v.name == name:
                return v
        return None


@dataclass(frozen=True, slots=True)
class Choice:
    name: str
    bit: int
    description: str | None = None
    since_version: int = 0
    deprecated: int | None = None


@dataclass(frozen=True, slots=True, eq=False)
class SetType:
    """An SBE ``<set>``: a bit set over an unsigned integer (or char)."""

    name: str
    encoding: Encoding
    choices: tuple[Choice, ...]
    description: str | None = None
    since_version: int = 0
    deprecated: int | None = None
    line: int = 0
    kind: Literal["set"] = "set"

    @property
    def size(self) -> int:
        return self.encoding.primitive.size


@dataclass(frozen=True, slots=True)
class Member:
    """One element of a composite, at ``offset`` from the composite's start.

    ``name`` is the element's name in the composite (a ``ref``'s own name, or the
    inline type's name); ``type`` is the node it stands for.
    """

    name: str
    offset: int
    type: TypeNode
    since_version: int = 0
    deprecated: int | None = None
    description: str | None = None

    @property
    def size(self) -> int:
        return self.type.size


@dataclass(frozen=True, slots=True, eq=False)
class CompositeType:
    name: str
    members: tuple[Member, ...]
    size: int
    description: str | None = None
    semantic_type: str | None = None
    since_version: int = 0
    deprecated: int | None = None
    line: int = 0
    kind: Literal["composite"] = "composite"

    def member(self, name: str) -> Member | None:
        for m in self.members:
            if m.name == name:
                return m
        return None


TypeNode = EncodedType | EnumType | SetType | CompositeType


@dataclass(frozen=True, slots=True)
class Field:
    """A fixed-size field in a message or group block.

    ``presence`` is the field's effective presence (its own attribute, or its
    type's).  A constant field occupies no bytes (``size == 0``) and its value is
    ``constant`` (for an enum constant: the enum value's integer).
    """

    name: str
    id: int
    offset: int
    type: TypeNode
    presence: Presence = Presence.REQUIRED
    value_ref: str | None = None
    constant: Scalar | str | None = None
    since_version: int = 0
    deprecated: int | None = None
    description: str | None = None
    semantic_type: str | None = None
    epoch: str | None = None
    time_unit: str | None = None
    line: int = 0

    @property
    def is_constant(self) -> bool:
        return self.presence is Presence.CONSTANT

    @property
    def size(self) -> int:
        return 0 if self.is_constant else self.type.size


@dataclass(frozen=True, slots=True)
class VarData:
    """A variable-length section: a length prefix then ``length`` bytes."""

    name: str
    id: int
    type: CompositeType
    length: EncodedType
    data: EncodedType
    data_offset: int
    since_version: int = 0
    deprecated: int | None = None
    description: str | None = None
    semantic_type: str | None = None
    line: int = 0

    @property
    def character_encoding(self) -> str | None:
        return self.data.encoding.character_encoding

    @property
    def is_text(self) -> bool:
        return self.character_encoding is not None


@dataclass(frozen=True, slots=True)
class Group:
    """A repeating group: a dimension composite (entry block length, entry count),
    then that many entries of ``block_length`` bytes plus nested sections."""

    name: str
    id: int
    dimension: CompositeType
    block_length_member: Member
    num_in_group_member: Member
    block_length: int
    fields: tuple[Field, ...]
    groups: tuple[Group, ...]
    var_data: tuple[VarData, ...]
    since_version: int = 0
    deprecated: int | None = None
    description: str | None = None
    semantic_type: str | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    name: str
    id: int
    block_length: int
    fields: tuple[Field, ...]
    groups: tuple[Group, ...]
    var_data: tuple[VarData, ...]
    description: str | None = None
    semantic_type: str | None = None
    since_version: int = 0
    deprecated: int | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class Schema:
    """A whole schema.  ``types`` lists every named type (top level and inline in
    composites) in document order; ``sha256`` is the hash of the main file's bytes."""

    package: str
    id: int
    version: int
    semantic_version: str | None
    byte_order: ByteOrder
    description: str | None
    header: CompositeType
    types: tuple[TypeNode, ...]
    messages: tuple[Message, ...]
    source: str = ""
    sha256: str = ""
    includes: tuple[str, ...] = field(default=())

    def message_by_id(self, template_id: int) -> Message | None:
        for m in self.messages:
            if m.id == template_id:
                return m
        return None

    def message_named(self, name: str) -> Message | None:
        for m in self.messages:
            if m.name == name:
                return m
        return None

    def type_named(self, name: str) -> TypeNode | None:
        for t in self.types:
            if t.name == name:
                return t
        return None
