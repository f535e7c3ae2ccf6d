"""The Lua target: IR -> one Wireshark Lua plugin per schema, rendered with jinja2.

``generate(schema, output)`` writes ``<package, dots as underscores>.lua`` through an
:class:`codegen.output.Output`. The plugin dissects the schema's messages in the payload of Aeron DATA
frames, under Wireshark's own Aeron dissector (docs/wireshark.md says how it is hooked and why).
``context.py`` makes every decision about a field; the templates arrange it into Lua.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2

from codegen.ir.model import Schema
from codegen.output import Output
from codegen.targets.lua.context import build_context, comment_text, proto_name

__all__ = ["generate", "plugin_file_name", "proto_name", "render_plugin"]

_TEMPLATES = Path(__file__).parent / "templates"


def plugin_file_name(schema: Schema) -> str:
    """``io.aeron.cluster.codecs`` -> ``io_aeron_cluster_codecs.lua``."""
    return re.sub(r"[^0-9A-Za-z_]", "_", schema.package.replace(".", "_")) + ".lua"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    env.globals["comment"] = comment_text
    return env


def render_plugin(schema: Schema, source_name: str) -> str:
    ctx = build_context(schema)
    text = (
        _environment()
        .get_template("plugin.lua.j2")
        .render(
            source_name=comment_text(source_name),
            schema=schema,
            proto=ctx.proto,
            little_endian=ctx.little_endian,
            header=ctx.header,
            fields=ctx.fields,
            enums=ctx.enums,
            messages=ctx.messages,
        )
    )
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.rstrip("\n") + "\n"


def generate(schema: Schema, output: Output) -> str:
    """Write the plugin for ``schema``; returns its file name."""
    name = plugin_file_name(schema)
    source_name = Path(schema.source).name if schema.source else "<memory>"
    output.write(name, render_plugin(schema, source_name))
    return name
