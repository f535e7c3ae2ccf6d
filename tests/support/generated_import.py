"""Generate a schema's codec in memory and import it as a throwaway module."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from codegen.ir.model import Schema
from codegen.schema import load_schema
from codegen.targets.python import render_module


def import_schema(schema: Schema, name_hint: str = "schema") -> ModuleType:
    """Render ``schema`` with the Python target and import the result (cached by its text)."""
    text = render_module(schema, name_hint, Path(schema.source).name if schema.source else "<memory>")
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    module_name = f"_generated_{name_hint}_{key}"
    cached = sys.modules.get(module_name)
    if cached is not None:
        return cached
    spec = importlib.util.spec_from_loader(module_name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = f"<generated {name_hint}>"
    sys.modules[module_name] = module
    try:
        exec(compile(text, module.__file__, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def import_schema_file(path: str | Path) -> ModuleType:
    p = Path(path)
    return import_schema(load_schema(p), p.stem.replace("-", "_"))
