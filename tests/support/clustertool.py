"""What Aeron's ClusterTool printed for the Java cluster directories (``support.paths.JAVA_CLUSTER_NODES``):
the mark file headers of ``describe``, the entries of ``recording-log``, the plan of ``recovery-plan``
(as dicts of Aeron's names), and the observations of ``errors``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from support.needs import need_reference

__all__ = [
    "clustertool_errors",
    "clustertool_mark_files",
    "clustertool_recording_log",
    "clustertool_recovery_plan",
]

_LINE = re.compile(r"^\[MarkFileHeader\]\(([^)]*)\):(.*)$")
_PAIR = re.compile(r"(\w+)=('[^']*'|[^|,}]*)")
_ENTRY = re.compile(r"Entry\{([^}]*)\}")
_PLAN = re.compile(r"^RecoveryPlan\{(.*), snapshots=\[(.*)\], log=Log\{(.*)\}\}$")
_SNAPSHOT = re.compile(r"Snapshot\{([^}]*)\}")
_OBSERVATION = re.compile(
    r"(\d+) observations from (\S+ \S+) to (\S+ \S+) for:\n(.*?)\n\n"
    r"(?=\d+ observations from |\d+ distinct errors)",
    re.DOTALL,
)


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


def clustertool_recovery_plan(path: Path) -> dict[str, Any]:
    """The plan ``ClusterTool recovery-plan`` printed: its four positions and ids, ``snapshots`` (a list
    of Aeron's ``Snapshot{...}`` fields) and ``log`` (the fields of ``Log{...}``)."""
    text = need_reference(path).read_text(encoding="utf-8").strip()
    match = _PLAN.match(text)
    assert match is not None, f"{path} is not ClusterTool recovery-plan output"
    return {
        **_pairs(match.group(1)),
        "snapshots": [_pairs(snapshot.group(1)) for snapshot in _SNAPSHOT.finditer(match.group(2))],
        "log": _pairs(match.group(3)),
    }


def clustertool_errors(path: Path) -> list[list[tuple[int, str, str, str]]]:
    """ClusterTool ``errors``: per "Cluster component error log" (cluster-mark.dat, then the service's
    cluster-mark-service-0.dat), its observations as (count, first, last, text); the times as printed
    (``2026-12-06 03:14:52.880+0000``)."""
    text = need_reference(path).read_text(encoding="utf-8")
    sections = text.split("Cluster component error log:\n")[1:]
    out = []
    for section in sections:
        section = section.split("Aeron driver error log")[0]
        out.append([(int(m[1]), m[2], m[3], m[4]) for m in _OBSERVATION.finditer(section)])
    return out
