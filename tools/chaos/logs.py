"""After a chaos run: the members' logs, read back from their archives with ``python -m tools archive
dump``, must agree frame for frame and message for message up to the position every member committed.

Each member's log recording is the one its ``recording.log`` names for its terms; ``archive dump
--json`` of it gives one JSON object per frame and per message, each with its log position. Everything
below the commit position must be the same on every member: the same frames (type, length, flags,
term id and offset) and the same messages with the same fields -- all but the frame's session id. A
member that caught up with its leader received the entries it lacked as a replay of the leader's
recording into its log subscription, stamped with the session id of the leader's log publication in
the term it joined (as Aeron's catch-up does), so an entry of an earlier term can carry a later term's
session id in one member's log and its own term's in another's. A member whose recording ends before the
commit position is missing committed entries, which is also a violation. The dump runs as the command
a user would run, after every member has stopped, on the directories the members left.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cluster.consensus.files import RecordingLogFile
from cluster.consensus.node_config import NodeConfig
from cluster.storage import RealStorage

__all__ = ["LogComparison", "compare_logs"]

DUMP_TIMEOUT_S: Final = 120.0


@dataclass(frozen=True, slots=True)
class LogComparison:
    """What the comparison saw: the log bytes compared on each member, and what disagreed."""

    position: int
    """The commit position every member reached: everything below it was compared."""
    records: int
    """Frames and messages compared, per member."""
    violations: tuple[str, ...]


def _member_log(config: NodeConfig) -> list[dict[str, Any]]:
    """Member ``config`` 's log recording as ``archive dump --json`` prints it."""
    reading = RecordingLogFile.read(RealStorage(Path(config.cluster_dir)))
    recording_id = reading.log.term_recording_id
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools",
            "archive",
            "dump",
            config.archive_dir,
            "--recording",
            str(recording_id),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=DUMP_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"archive dump of member {config.member_id}'s recording {recording_id}: exit status "
            f"{done.returncode}: {done.stderr.strip()[-500:]}"
        )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _end(record: dict[str, Any]) -> int:
    """Where a dumped frame ends in the log (aligned to 32 bytes, as frames are laid out)."""
    return int(record["position"]) + ((int(record.get("frameLength", 0)) + 31) & ~31)


def compare_logs(configs: Sequence[NodeConfig], position: int) -> LogComparison:
    """Dump every member's log and compare everything below ``position`` (module docstring)."""
    violations: list[str] = []
    below: dict[int, list[dict[str, Any]]] = {}
    for config in configs:
        try:
            records = _member_log(config)
        except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as error:
            violations.append(f"member {config.member_id}'s log could not be read: {error}")
            continue
        frames = [record for record in records if record.get("kind") == "frame"]
        reached = max((_end(frame) for frame in frames), default=0)
        if reached < position:
            violations.append(
                f"member {config.member_id}'s log ends at {reached}, below the commit position {position}"
            )
        errors = [record for record in records if record.get("kind") == "error"]
        if errors:
            violations.append(f"member {config.member_id}'s log has a damaged frame: {errors[0]}")
        below[config.member_id] = [
            {key: value for key, value in record.items() if key != "sessionId"}
            for record in records
            if int(record.get("position", 0)) < position
        ]
    members = sorted(below)
    if members:
        first = members[0]
        reference = below[first]
        for member in members[1:]:
            other = below[member]
            for index, (mine, theirs) in enumerate(zip(reference, other, strict=False)):
                if mine != theirs:
                    violations.append(
                        f"the logs of members {first} and {member} differ below the commit position, at "
                        f"record {index} (position {mine.get('position')}): {mine} against {theirs}"
                    )
                    break
            else:
                if len(reference) != len(other):
                    violations.append(
                        f"below the commit position member {first}'s log holds {len(reference)} records and "
                        f"member {member}'s {len(other)}"
                    )
    compared = len(below[members[0]]) if members else 0
    return LogComparison(position, compared, tuple(violations))
