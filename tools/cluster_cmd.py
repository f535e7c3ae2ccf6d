"""``python -m tools cluster``: look into an Aeron Cluster node's directory (ours or Java's).

::

    python -m tools cluster describe DIR [--json]

``describe`` reads the node's three files -- the consensus module's mark file (``cluster-mark.dat``),
the node state (``node-state.dat``) and the recording log (``recording.log``) -- and prints them. DIR
is the cluster directory, or a directory holding it as ``cluster/`` (as Java's node directories do:
``node0/cluster/``). With ``--json`` it prints one JSON object::

    {"markFile": {...every field of the MarkFileHeader, under the schema's names...},
     "nodeState": {"version": 768, "candidateTerm": {"candidateTermId": ..., "timestamp": ...,
                   "logPosition": ...}, "clusterMembers": null},
     "recordingLog": [{"type": "TERM", "recordingId": 0, "leadershipTermId": 0,
                       "termBaseLogPosition": 0, "logPosition": -1, "timestamp": ..., "serviceId": -1,
                       "isValid": true}, ...]}

Without it, the same as text: one ``name: value`` line per field, and the recording log as a table.

It only reads: nothing is changed, so it is safe on a directory a running node owns. A recording log
with a crash's torn leftovers is shown as a node would load it, with a note of the repair the node
would make. A missing file or a bad directory is one ``error: ...`` line and exit status 2.

Sub-commands live in ``SUBCOMMANDS`` (as in ``tools.archive_cmd``), so ``cluster up`` can join
``describe`` there.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

from cluster.consensus.core.recording_log import RecordingLogEntry
from cluster.consensus.files import (
    CLUSTER_MARK_FILE_NAME,
    NODE_STATE_FILE_NAME,
    RECORDING_LOG_FILE_NAME,
    ClusterMarkFile,
    NodeStateFile,
    RecordingLogFile,
)
from cluster.storage import RealStorage, Storage
from cluster.storage.markfile import version_text
from tools.subcommands import Subcommand, add_subcommands, run_subcommand

__all__ = [
    "SUBCOMMANDS",
    "ClusterDirectoryError",
    "Subcommand",
    "configure",
    "describe",
    "find_cluster_dir",
    "run",
]

NODE_FILES = (CLUSTER_MARK_FILE_NAME, NODE_STATE_FILE_NAME, RECORDING_LOG_FILE_NAME)


class ClusterDirectoryError(Exception):
    """The directory given is not a cluster directory, or lacks one of the node's files."""

    is_user_error = True


def find_cluster_dir(path: str | Path) -> Path:
    """The cluster directory at ``path``: ``path`` itself if it holds any of the node's files, else its
    ``cluster/`` sub-directory if that does; ``ClusterDirectoryError`` otherwise."""
    directory = Path(path)
    if not directory.is_dir():
        raise ClusterDirectoryError(f"{directory}: not a directory")
    for candidate in (directory, directory / "cluster"):
        if candidate.is_dir() and any((candidate / name).is_file() for name in NODE_FILES):
            return candidate
    raise ClusterDirectoryError(
        f"{directory}: not a cluster directory (it holds none of {', '.join(NODE_FILES)}, nor does "
        f"{directory / 'cluster'})"
    )


def entry_json(entry: RecordingLogEntry) -> dict[str, Any]:
    """One recording-log entry under ClusterTool's names, the type by name."""
    return {
        "type": entry.entry_type.name,
        "recordingId": entry.recording_id,
        "leadershipTermId": entry.leadership_term_id,
        "termBaseLogPosition": entry.term_base_log_position,
        "logPosition": entry.log_position,
        "timestamp": entry.timestamp,
        "serviceId": entry.service_id,
        "isValid": entry.is_valid,
    }


class Described(NamedTuple):
    """What ``describe`` read: the JSON form, and notes (repairs a node would make) for the text form."""

    json: dict[str, Any]
    entry_indices: list[int]
    notes: list[str]


def describe(storage: Storage) -> Described:
    """Read the node's three files in ``storage`` (a ``ClusterDirectoryError`` names a missing one)."""
    missing = [name for name in NODE_FILES if not storage.exists(name)]
    if missing:
        raise ClusterDirectoryError(f"{storage.location}: missing {', '.join(missing)}")
    mark = ClusterMarkFile.read(storage)
    node_state = NodeStateFile.read(storage)
    reading = RecordingLogFile.read(storage)
    entries = sorted(reading.log.entries, key=lambda entry: entry.entry_index)
    notes = [
        f"{RECORDING_LOG_FILE_NAME} would be repaired when a node opens it: {repair}"
        for repair in reading.repairs
    ]
    return Described(
        {
            "markFile": mark.to_json(),
            "nodeState": node_state.to_json(),
            "recordingLog": [entry_json(entry) for entry in entries],
        },
        [entry.entry_index for entry in entries],
        notes,
    )


def _utc(timestamp_ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp_ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{timestamp_ms % 1000:03d} UTC"


def _field(name: str, value: Any) -> str:
    if name == "version" and isinstance(value, int):
        return f"  {name}: {value} ({version_text(value)})"
    if name in ("activityTimestamp", "startTimestamp") and isinstance(value, int) and value > 0:
        return f"  {name}: {value} ({_utc(value)})"
    if isinstance(value, str) and name != "componentType":
        return f"  {name}: {value!r}"
    return f"  {name}: {value}"


_COLUMNS = (
    "entryIndex",
    "type",
    "recordingId",
    "leadershipTermId",
    "termBaseLogPosition",
    "logPosition",
    "timestamp",
    "serviceId",
    "isValid",
)


def describe_text(directory: str, described: Described) -> list[str]:
    """The text form of ``describe``."""
    data = described.json
    lines = [f"cluster directory: {directory}", f"mark file ({CLUSTER_MARK_FILE_NAME}):"]
    lines += [_field(name, value) for name, value in data["markFile"].items()]
    node_state = data["nodeState"]
    lines.append(f"node state ({NODE_STATE_FILE_NAME}):")
    lines.append(_field("version", node_state["version"]))
    lines += [_field(name, value) for name, value in node_state["candidateTerm"].items()]
    if node_state["clusterMembers"] is not None:
        lines += [_field(name, value) for name, value in node_state["clusterMembers"].items()]
    entries = data["recordingLog"]
    lines.append(f"recording log ({RECORDING_LOG_FILE_NAME}): {len(entries)} entries")
    if entries:
        rows = [list(_COLUMNS)]
        for index, entry in zip(described.entry_indices, entries, strict=True):
            rows.append(
                [
                    str(index),
                    *(
                        str(entry[name]).lower() if name == "isValid" else str(entry[name])
                        for name in _COLUMNS[1:]
                    ),
                ]
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
        for row in rows:
            cells = [cell.ljust(widths[i]) if i == 1 else cell.rjust(widths[i]) for i, cell in enumerate(row)]
            lines.append("  " + "  ".join(cells).rstrip())
    lines += [f"note: {note}" for note in described.notes]
    return lines


def _describe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directory", metavar="DIR", help="the cluster directory, or a node directory holding it as cluster/"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _run_describe(args: argparse.Namespace) -> int:
    directory = find_cluster_dir(args.directory)
    described = describe(RealStorage(directory))
    if args.json:
        sys.stdout.write(json.dumps(described.json) + "\n")
    else:
        sys.stdout.write("\n".join(describe_text(str(directory), described)) + "\n")
    return 0


SUBCOMMANDS: dict[str, Subcommand] = {
    "describe": Subcommand(
        "show a node's mark file, node state and recording log (offline)", _describe_arguments, _run_describe
    ),
}


def configure(parser: argparse.ArgumentParser) -> None:
    add_subcommands(parser, SUBCOMMANDS, "cluster_command")


def run(args: argparse.Namespace) -> int:
    return run_subcommand(args)
