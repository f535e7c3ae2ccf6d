"""What Aeron's ClusterTool printed for the Java cluster directories (``support.paths.JAVA_CLUSTER_NODES``):
the mark file headers of ``describe`` and the entries of ``recording-log``, as dicts of Aeron's names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from support.needs import need_reference

__all__ = ["clustertool_mark_files", "clustertool_recording_log"]

_LINE = re.compile(r"^\[MarkFileHeader\]\(([^)]*)\):(.*)$")
_PAIR = re.compile(r"(\w+)=('[^']*'|[^|,}]*)")
_ENTRY = re.compile(r"Entry\{([^}]*)\}")


def _value(text: str) -> Any:
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        return text


def _pairs(text: str) -> dict[str, Any]:
    return {match.group(1): _value(match.group(2).strip()) for match in _PAIR.finditer(text)}


def clustertool_mark_files(path: Path) -> list[dict[str, Any]]:
    """The MarkFileHeader fields of every mark file ``ClusterTool describe`` printed, in order (the
    consensus module's, then the service container's)."""
    out = []
    for line in need_reference(path).read_text(encoding="utf-8").splitlines():
        match = _LINE.match(line)
        if match is not None:
            out.append(_pairs(match.group(2)))
    assert out, f"{path} is not ClusterTool describe output"
    return out


def clustertool_recording_log(path: Path) -> list[dict[str, Any]]:
    """The entries ``ClusterTool recording-log`` printed (Aeron's ``Entry{...}`` fields)."""
    text = need_reference(path).read_text(encoding="utf-8")
    entries = [_pairs(match.group(1)) for match in _ENTRY.finditer(text)]
    assert entries, f"{path} is not ClusterTool recording-log output"
    return entries
