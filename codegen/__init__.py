"""SBE code generation: schema parser -> IR -> Python codecs, plus a run-time (OTF) codec.

The layers, each usable alone:

* ``codegen.schema`` reads SBE XML (with XInclude), validates it, and reports
  problems as :class:`codegen.schema.SchemaError` naming file and line.
* ``codegen.ir`` is the resolved, target-independent model of a schema, with a
  stable text dump used by golden tests.
* ``codegen.targets.python`` renders the IR through jinja2 templates into
  flyweight codecs (the checked-in ``generated/`` package).
* ``codegen.otf`` encodes and decodes any schema at run time from its IR.
* ``codegen.runtime`` is the small runtime that generated code imports; it has
  no third-party dependencies.

This package imports lxml and jinja2 lazily, so ``codegen.runtime`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from codegen.ir import Schema

__all__ = ["load_schema"]


def load_schema(path: str | Path) -> Schema:
    """Parse, validate and resolve the SBE schema at ``path`` into its IR."""
    from codegen.schema import load_schema as _load

    return _load(path)
