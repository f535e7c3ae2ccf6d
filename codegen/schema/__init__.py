"""SBE XML schema parsing and validation, producing the IR (``codegen.ir``)."""

from codegen.schema.errors import SchemaError
from codegen.schema.parser import load_schema, parse_schema_bytes

__all__ = ["SchemaError", "load_schema", "parse_schema_bytes"]
