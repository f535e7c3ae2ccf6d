"""The Python target: IR -> flyweight codec modules, rendered with jinja2.

``generate(schema, output)`` writes one package per schema (``<package>/__init__.py``)
through an :class:`codegen.output.Output`, so tests and ``codegen --check`` can
generate in memory.  ``package_name_for(path)`` gives the package name used for a
schema file (its file name, snake-cased).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2

from codegen.ir.model import Schema
from codegen.output import Output
from codegen.targets.python.context import BlockCtx, GroupCtx, MessageCtx, Section, _doc, build_context

__all__ = ["comment_safe", "generate", "package_name_for", "registry_module", "render_module"]

_TEMPLATES = Path(__file__).parent / "templates"


def package_name_for(path: str | Path) -> str:
    """``aeron-cluster-codecs.xml`` -> ``aeron_cluster_codecs``."""
    stem = Path(path).name.removesuffix(".xml")
    name = re.sub(r"[^0-9A-Za-z_]+", "_", stem).strip("_").lower()
    if not name or name[0].isdigit():
        name = f"schema_{name}"
    return name


def _tuple_literal(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_tuple_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    env.filters["tuple_literal"] = _tuple_literal
    env.globals["doc"] = _doc
    return env


class _FastPath:
    """Writes the straight-line body of ``unpack()``: one header+block read, then each section."""

    def __init__(self, message: MessageCtx, schema_id: int) -> None:
        self.m = message
        self.schema_id = schema_id
        self.lines: list[str] = []
        self.counter = 0
        self.uses_view = False

    def var(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def sections(self, depth: int, block: BlockCtx) -> list[str]:
        names: list[str] = []
        for s in block.sections:
            names.append(self.group(depth, s) if s.kind == "group" else self.data(depth, s))
        return names

    def data(self, depth: int, s: Section) -> str:
        n = self.var("n")
        v = self.var("v")
        self.uses_view = True
        self.emit(depth, f"{n} = {s.length_struct}.unpack_from(buffer, pos)[0]")
        self.emit(depth, f"pos += {s.prefix}")
        self.emit(depth, f"if pos + {n} > end:")
        self.emit(depth + 1, "raise _records.Fallback")
        self.emit(depth, f"{v} = view[pos:pos + {n}]")
        self.emit(depth, f"pos += {n}")
        return v

    def group(self, depth: int, s: Section) -> str:
        g = s.group
        assert isinstance(g, GroupCtx)
        d = self.var("d")
        out = self.var("g")
        self.emit(depth, f"{d} = {g.dim_struct}.unpack_from(buffer, pos)")
        self.emit(depth, f"if {d}[{g.bl_index}] != {g.block_length}:")
        self.emit(depth + 1, "raise _records.Fallback")
        self.emit(depth, f"pos += {g.dim_size}")
        entry_min = g.block_length + g.section_min
        self.emit(depth, f"if pos + {d}[{g.count_index}] * {entry_min} > end:")
        self.emit(depth + 1, "raise _records.Fallback")
        if entry_min == 0:  # entries of no bytes: the general path enforces the cap on their count
            self.emit(depth, f"if {d}[{g.count_index}] > _rt.MAX_EMPTY_ENTRIES:")
            self.emit(depth + 1, "raise _records.Fallback")
        if not g.sections:
            # the count check above proves every entry's block is in the buffer
            self.emit(depth, f"{out} = []")
            self.emit(depth, f"for _ in range({d}[{g.count_index}]):")
            self.emit(depth + 1, f"{out}.append({self.entry_block(g)})")
            self.emit(depth + 1, f"pos += {g.block_length}")
            return out
        self.emit(depth, f"{out} = []")
        self.emit(depth, f"for _ in range({d}[{g.count_index}]):")
        e = self.var("e")
        if not g.block_struct and g.block_length:  # no struct read to fail on a short buffer: check
            self.emit(depth + 1, f"if pos + {g.block_length} > end:")
            self.emit(depth + 2, "raise _records.Fallback")
        self.emit(depth + 1, f"{e} = {self.entry_block(g)}")
        self.emit(depth + 1, f"pos += {g.block_length}")
        inner = self.sections(depth + 1, g)
        self.emit(depth + 1, f"{out}.append({e} + ({', '.join(inner)},))")
        return out

    @staticmethod
    def entry_block(g: GroupCtx) -> str:
        """The expression reading a group entry's block values at ``pos`` (none: an empty tuple)."""
        return f"{g.block_struct}.unpack_from(buffer, pos)" if g.block_struct else "()"

    def render(self) -> str:
        m = self.m
        body: list[str] = []
        self.emit(3, f"t = {m.full_struct}.unpack_from(buffer, offset)")
        idx = self.m.header_indices
        cond = (
            f"t[{idx['templateId']}] != {m.template_id} or t[{idx['schemaId']}] != {self.schema_id}"
            f" or t[{idx['blockLength']}] != {m.block_length}"
        )
        if m.fast_max_since:
            cond += f" or t[{idx['version']}] < {m.fast_max_since}"
        cond += " or offset < 0"
        self.emit(3, f"if {cond}:")
        self.emit(4, "raise _records.Fallback")
        if not m.sections:
            self.emit(3, f"return t[{m.header_items}:]")
        else:
            self.emit(3, "end = _buffer_length(buffer)")
            self.emit(3, f"pos = offset + HEADER_SIZE + {m.block_length}")
            names = self.sections(3, m)
            self.emit(3, f"return t[{m.header_items}:] + ({', '.join(names)},)")
        body.append("        try:")
        if self.uses_view:
            body.append("            view = memoryview(buffer)")
            body.append('            if view.format != "B":')
            body.append("                raise _records.Fallback")
        body.extend(self.lines)
        body.append("        except (_struct.error, _records.Fallback, BufferError):")
        body.append(f"            return _records.unpack_record({m.decoder}().wrap_header(buffer, offset))")
        return "\n".join(body)


def comment_safe(text: str) -> str:
    """``text`` made safe for a ``#`` comment line: no line breaks or other control characters."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def render_module(schema: Schema, package: str, source_name: str) -> str:
    source_name = comment_safe(source_name)
    ctx = build_context(schema, package, source_name)
    for m in ctx.messages:
        m.fast_unpack = _FastPath(m, schema.id).render()
        names = m.flat_names
        m.pack_params = ", ".join(f"{n}: Any" for n in names)
        m.pack_args = ", ".join(names)
    registry = ctx.struct_registry
    for block in [*ctx.messages, *(g for m in ctx.messages for g in m.all_groups)]:
        if block.block_length:
            block.zero_struct = registry.zeros(ctx.header.fmt, block.block_length, with_header=False)
        if isinstance(block, MessageCtx):
            block.header_zero_struct = (
                registry.zeros(ctx.header.fmt, block.block_length, with_header=True)
                if block.block_length
                else ctx.header.struct
            )
    order = ctx.header.pack_order

    def header_literal(block_length: int, template_id: int) -> str:
        known = {
            "blockLength": str(block_length),
            "templateId": str(template_id),
            "schemaId": str(schema.id),
            "version": str(schema.version),
        }
        return ", ".join(known.get(n, "0") for n in order)

    env = _environment()
    env.globals["header_literal"] = header_literal
    template = env.get_template("module.py.j2")
    text = template.render(
        schema=schema,
        source_name=source_name,
        structs=registry.field_items(),
        zero_structs=registry.zero_items(),
        enums=ctx.enums,
        sets=ctx.sets,
        composites=ctx.composites,
        messages=ctx.messages,
        header=ctx.header,
        schema_id=schema.id,
        order="LE" if schema.byte_order.struct_prefix == "<" else "BE",
    )
    return _tidy(text)


def _tidy(text: str) -> str:
    """Collapse runs of blank lines left by template control flow (at most two, as PEP 8 has)."""
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    text = re.sub(r"(\n    [^\n]*\n)\n\n+(    )", r"\1\n\2", text)
    return text.rstrip("\n") + "\n"


def registry_module(packages: dict[int, str], header: str) -> str:
    """The ``__init__.py`` of an output folder: a dispatcher over every generated schema by schema id."""
    imports = "\n".join(f"from . import {name}" for name in sorted(packages.values()))
    entries = "\n".join(f"    {sid}: {name}," for sid, name in sorted(packages.items()))
    return f'''{header}"""Codecs generated from SBE schemas; one package per schema.  Do not edit by hand.

``decode(buffer)`` picks the package by the schema id in the message header and
returns a decoder wrapped on the message.
"""

from typing import Any

from codegen.runtime.errors import SchemaIdMismatchError

{imports}

SCHEMAS = {{
{entries}
}}


def decode(buffer: Any, offset: int = 0) -> Any:
    """A decoder for the message at ``offset``, chosen by schema id and template id.

    Each schema reads the header with its own layout and byte order; the first
    whose schema id matches decodes the message.
    """
    for package in SCHEMAS.values():
        try:
            return package.decode(buffer, offset)
        except SchemaIdMismatchError:
            continue
    raise SchemaIdMismatchError(
        "no generated schema matches the message header", message_name="messageHeader", field="schemaId",
        offset=offset,
    )
'''


def generate(schema: Schema, output: Output, *, package: str | None = None) -> str:
    """Write the package for ``schema``; returns the package name."""
    name = package or package_name_for(schema.source or schema.package)
    source_name = Path(schema.source).name if schema.source else "<memory>"
    output.write(f"{name}/__init__.py", render_module(schema, name, source_name))
    return name
