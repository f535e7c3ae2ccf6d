"""``python -m tools wireshark install [--schema XML ...]``: put the generated SBE dissectors into Wireshark.

Writes the Lua plugin of every built-in schema that has messages, plus one for each ``--schema``, into
the user's personal Lua plugin folder, and turns on the four Aeron preferences the plugins' hook needs
(``aeron.sequence_analysis``, ``aeron.stream_analysis``, ``aeron.reassemble_fragments``,
``aeron.use_heuristic_subdissectors``; docs/wireshark.md) in the user's ``preferences`` file, changing
no other line of it. It prints every file written and every preference set.

The folders are the ones ``tshark -G folders`` names ("Personal Lua Plugins", "Personal
configuration"); without tshark, Wireshark's defaults for the platform. ``--plugin-dir`` and
``--config-dir`` choose others.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import schemas
from codegen.output import DirectoryOutput
from codegen.schema import load_schema
from codegen.targets import lua

__all__ = ["AERON_PREFERENCES", "configure", "run", "set_preferences"]

AERON_PREFERENCES = (
    "aeron.sequence_analysis",
    "aeron.stream_analysis",
    "aeron.reassemble_fragments",
    "aeron.use_heuristic_subdissectors",
)


class WiresharkInstallError(Exception):
    is_user_error = True


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    install = sub.add_parser("install", help="install the SBE dissectors and turn on the Aeron preferences")
    install.add_argument(
        "--schema",
        action="append",
        default=[],
        type=Path,
        metavar="XML",
        help="an SBE schema of your own to dissect too (repeatable); the Aeron schemas are built in",
    )
    install.add_argument(
        "--plugin-dir", type=Path, default=None, help="Wireshark's personal Lua plugin folder"
    )
    install.add_argument(
        "--config-dir", type=Path, default=None, help="Wireshark's personal configuration folder"
    )


def _tshark_folders() -> dict[str, str]:
    tshark = shutil.which("tshark")
    if tshark is None:
        return {}
    try:
        result = subprocess.run(
            [tshark, "-G", "folders"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError:
        return {}
    folders = {}
    for line in result.stdout.splitlines():
        name, _, value = line.partition(":")
        if value.strip():
            folders[name.strip()] = value.strip()
    return folders


def _default_folders() -> tuple[Path, Path]:
    """Wireshark's personal Lua plugin and configuration folders when no tshark says where they are."""
    if sys.platform == "win32":
        appdata = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "Wireshark"
        return appdata / "plugins", appdata
    config = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "wireshark"
    return Path.home() / ".local" / "lib" / "wireshark" / "plugins", config


def set_preferences(text: str, names: tuple[str, ...] = AERON_PREFERENCES) -> tuple[str, list[str]]:
    """``text`` (a Wireshark ``preferences`` file) with each preference in ``names`` set to TRUE, other
    lines untouched; a preference already set is rewritten in place, a missing one appended. Returns the
    new text and what changed."""
    lines = text.splitlines()
    changed = []
    for name in names:
        pattern = re.compile(rf"^\s*{re.escape(name)}\s*:(.*)$")
        found = False
        for k, line in enumerate(lines):
            match = pattern.match(line)
            if match is None:
                continue
            found = True
            if match.group(1).strip().upper() != "TRUE":
                lines[k] = f"{name}: TRUE"
                changed.append(f"{name}: TRUE (was {match.group(1).strip()})")
        if not found:
            lines.append(f"{name}: TRUE")
            changed.append(f"{name}: TRUE (added)")
    return "\n".join(lines) + "\n", changed


def run(args: argparse.Namespace) -> int:
    folders = _tshark_folders()
    plugin_default, config_default = _default_folders()
    plugin_dir: Path = args.plugin_dir or Path(folders.get("Personal Lua Plugins", plugin_default))
    config_dir: Path = args.config_dir or Path(folders.get("Personal configuration", config_default))
    paths = [*schemas.builtin_schemas(), *args.schema]
    out = DirectoryOutput(plugin_dir)
    names: dict[str, Path] = {}
    for path in paths:
        if not path.is_file():
            raise WiresharkInstallError(f"no such schema file: {path}")
        schema = load_schema(path)
        if not schema.messages:
            continue
        name = lua.plugin_file_name(schema)
        if name in names:
            raise WiresharkInstallError(f"{path} and {names[name]} have the same package, {schema.package}")
        names[name] = path
        lua.generate(schema, out)
        print(
            f"plugin {plugin_dir / name} (schema {schema.id}, {schema.package}, "
            f"protocol {lua.proto_name(schema.package)})"
        )
    preferences = config_dir / "preferences"
    old = preferences.read_text(encoding="utf-8") if preferences.is_file() else ""
    new, changed = set_preferences(old)
    if changed:
        config_dir.mkdir(parents=True, exist_ok=True)
        preferences.write_text(new, encoding="utf-8")
    for change in changed:
        print(f"preference {change} in {preferences}")
    if not changed:
        print(f"preferences: the four Aeron preferences were already on in {preferences}")
    print("mark Aeron traffic as Aeron: Decode As... UDP port -> Aeron, or enable the aeron_udp heuristic")
    return 0
