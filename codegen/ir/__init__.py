"""The resolved, target-independent schema model (see ``codegen.ir.model``) and its text dump."""

from codegen.ir.dump import dump
from codegen.ir.model import (
    ByteOrder,
    Choice,
    CompositeType,
    EncodedType,
    Encoding,
    EnumType,
    EnumValue,
    Field,
    Group,
    Member,
    Message,
    Presence,
    Primitive,
    Schema,
    SetType,
    TypeNode,
    VarData,
)

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
    "dump",
]
