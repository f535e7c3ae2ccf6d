"""The offline verbs of ``python -m tools cluster``: look into a stopped (or running) node's cluster
directory, ours or one Java's Aeron wrote, and make the few repairs Aeron's ClusterTool makes to it.

The command lines are listed in ``tools.cluster_cmd``; each verb takes ``DIR`` and ``--json``.

Theory of operation
-------------------
DIR is the cluster directory, or a directory holding it as ``cluster/`` (Java's ``node0/`` holds
``node0/cluster/`` beside ``node0/archive/``, and our nodes lay theirs out the same way by default):
``find_cluster_dir``. Every file is read and written through ``cluster.storage`` and the classes of
``cluster.consensus.files``; the rules of the recording log are the model's
(``cluster.consensus.core.recording_log``), so the tool and a node never disagree about them.

**Reading verbs** change nothing, so they are safe on a directory a running node owns:

* ``describe``: the consensus module's mark file, the node state, the recording log, and the latest
  valid snapshot (the consensus module's entry and its services' entries);
* ``recording-log``: one line per entry (``--json``: one JSON object per line, ``describe``'s keys);
* ``recovery-plan``: what a node would recover from (``RecordingLog.recovery_plan``): the newest valid
  snapshot set and the log to replay after it. The appended position is the log recording's stop
  position, which only the archive's catalog knows: the catalog of ``--archive-dir`` (default: the
  directory ``archive`` beside the cluster directory) is read. A recording whose stop position is -1
  (its archive stopped while recording, as a ``kill -9`` leaves it) gets the position the archive's
  recovery would set, found by the same scan of its segment files (``recovery.scanned_stop_position``),
  and the text form says so. The snapshot set has ``--service-count`` services; by default as many as
  the latest snapshot set holds (Aeron's ClusterTool asks for the number);
* ``errors``: the distinct error log of the consensus module's mark file and of each service's
  (``cluster-mark-service-<id>.dat``): each error's observation count, first and last observation
  times and text;
* ``pid``: the pid in the consensus module's mark file.

**Changing verbs** refuse to run while the node is running, and then change nothing. Running is
decided as Aeron decides it: a live consensus module (or service container) writes the current time
into its mark file's activity timestamp once a second and ``-1`` when it closes cleanly, so a mark file
whose activity timestamp lies within the liveness timeout (10 s, Aeron's default and our nodes') of
now belongs to a running process (``ClusterMarkFile.refuse_if_active``, the rule a node applies before
it takes a directory). A node killed with ``kill -9`` counts as running for those 10 s.

* ``invalidate-latest-snapshot``: marks the newest valid snapshot set invalid in place (one byte per
  entry, which cannot tear), so a node recovers from the set before it, or from the start of the log;
* ``seed-recording-log-from-snapshot``: keeps the old ``recording.log`` as ``recording.log.bak`` and
  writes a new one holding only the newest valid snapshot set, each entry with term base and log
  position 0 and no TERM entries: a node started on it loads that snapshot and begins a new log at
  position 0 (``RecordingLog.seeded_from_latest_snapshot``, ClusterTool's semantics). Unlike Aeron's,
  with no valid snapshot it refuses instead of deleting the log;
* ``sort-recording-log``: rewrites ``recording.log`` with its records in Aeron's order, renumbered,
  removed records dropped (``RecordingLog.sorted_copy``). A log already in order is left alone (exit
  status 0; Aeron's tool reports that as a failure).

Whole-file rewrites go through a synced temporary file renamed over ``recording.log``
(``RecordingLogFile.replace``), so a crash leaves the old log or the new one. Any bad input -- a missing
or damaged file, a directory that is not a node's, no snapshot to work on -- is a user error: one
``error: ...`` line on stderr and exit status 2 (``tools.__main__``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cluster.archive import CATALOG_FILE_NAME, Catalog, RecordingDescriptor
from cluster.archive.recovery import layout_problem, scanned_stop_position, torn_stop_position
from cluster.consensus.core.recording_log import RecordingLog, RecordingLogEntry
from cluster.consensus.files import (
    CLUSTER_MARK_FILE_NAME,
    NODE_STATE_FILE_NAME,
    RECORDING_LOG_FILE_NAME,
    ClusterMarkFile,
    ClusterMarkFileError,
    NodeStateFile,
    RecordingLogFile,
    RecordingLogReading,
)
from cluster.storage import RealStorage, Storage
from cluster.storage.markfile import ErrorObservation, version_text
from tools.subcommands import Subcommand

__all__ = [
    "BACKUP_FILE_NAME",
    "NODE_FILES",
    "SUBCOMMANDS",
    "ClusterAdminError",
    "ClusterDirectoryError",
    "Described",
    "describe",
    "describe_text",
    "entry_json",
    "error_logs",
    "find_cluster_dir",
    "invalidate_latest_snapshot",
    "recovery_plan",
    "refuse_while_running",
    "seed_recording_log",
    "sort_recording_log",
]

NODE_FILES = (CLUSTER_MARK_FILE_NAME, NODE_STATE_FILE_NAME, RECORDING_LOG_FILE_NAME)
BACKUP_FILE_NAME = f"{RECORDING_LOG_FILE_NAME}.bak"
"""Where ``seed-recording-log-from-snapshot`` keeps the old log (Aeron's name)."""
SNAPSHOT_KEYS = (
    "recordingId",
    "leadershipTermId",
    "termBaseLogPosition",
    "logPosition",
    "timestamp",
    "serviceId",
)
"""The fields of a snapshot in a recovery plan (Aeron's ``RecoveryPlan`` prints these)."""


class ClusterDirectoryError(Exception):
    """The directory given is not a cluster directory, or lacks one of the node's files."""

    is_user_error = True


class ClusterAdminError(Exception):
    """An offline verb cannot do what it was asked: the node is running, there is no snapshot to work
    on, the archive is not where the recovery plan needs it. Nothing was changed."""

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


def _require(storage: Storage, *names: str) -> None:
    missing = [name for name in names if not storage.exists(name)]
    if missing:
        raise ClusterDirectoryError(f"{storage.location}: missing {', '.join(missing)}")


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


def _indexed_json(entry: RecordingLogEntry) -> dict[str, Any]:
    return {"entryIndex": entry.entry_index, **entry_json(entry)}


def _entry_line(entry: RecordingLogEntry) -> str:
    """``entryIndex=0 type=TERM recordingId=0 ...``: one entry on one line."""
    return " ".join(
        f"{name}={str(value).lower() if isinstance(value, bool) else value}"
        for name, value in _indexed_json(entry).items()
    )


def latest_snapshot_json(log: RecordingLog) -> dict[str, Any] | None:
    """The newest valid snapshot set: ``{"consensusModule": entry, "services": [entry, ...]}`` (by service
    id, each entry with its ``entryIndex``), or ``None``."""
    snapshot_set = log.latest_snapshot_set()
    if not snapshot_set:
        return None
    return {
        "consensusModule": _indexed_json(snapshot_set[0]),
        "services": [_indexed_json(entry) for entry in snapshot_set[1:]],
    }


def _utc(timestamp_ms: int) -> str:
    """Epoch milliseconds as a UTC time; a value no calendar holds (a damaged field) as it is."""
    try:
        moment = datetime.datetime.fromtimestamp(timestamp_ms / 1000, datetime.UTC)
    except (OverflowError, ValueError, OSError):
        return f"{timestamp_ms} ms since the epoch, out of the calendar's range"
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{timestamp_ms % 1000:03d} UTC"


def latest_snapshot_text(latest: dict[str, Any] | None) -> list[str]:
    if latest is None:
        return ["latest snapshot: none"]
    cm = latest["consensusModule"]
    lines = [
        f"latest snapshot: leadershipTermId {cm['leadershipTermId']}, termBaseLogPosition "
        f"{cm['termBaseLogPosition']}, logPosition {cm['logPosition']}, timestamp {cm['timestamp']}",
        f"  consensus module: recordingId {cm['recordingId']} (entry {cm['entryIndex']})",
    ]
    lines += [
        f"  service {entry['serviceId']}: recordingId {entry['recordingId']} (entry {entry['entryIndex']})"
        for entry in latest["services"]
    ]
    return lines


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _directory_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directory", metavar="DIR", help="the cluster directory, or a node directory holding it as cluster/"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _write(lines: Iterable[str]) -> None:
    sys.stdout.write("".join(f"{line}\n" for line in lines))


def _notes(reading: RecordingLogReading) -> list[str]:
    return [
        f"{RECORDING_LOG_FILE_NAME} would be repaired when a node opens it: {repair}"
        for repair in reading.repairs
    ]


# ------------------------------------------------------------------------------------------ describe


class Described(NamedTuple):
    """What ``describe`` read: the JSON form, and notes (repairs a node would make) for the text form."""

    json: dict[str, Any]
    entry_indices: list[int]
    notes: list[str]


def describe(storage: Storage) -> Described:
    """Read the node's three files in ``storage`` (a ``ClusterDirectoryError`` names a missing one)."""
    _require(storage, *NODE_FILES)
    mark = ClusterMarkFile.read(storage)
    node_state = NodeStateFile.read(storage)
    reading = RecordingLogFile.read(storage)
    entries = sorted(reading.log.entries, key=lambda entry: entry.entry_index)
    return Described(
        {
            "markFile": mark.to_json(),
            "nodeState": node_state.to_json(),
            "recordingLog": [entry_json(entry) for entry in entries],
            "latestSnapshot": latest_snapshot_json(reading.log),
        },
        [entry.entry_index for entry in entries],
        _notes(reading),
    )


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
    lines += latest_snapshot_text(data["latestSnapshot"])
    lines += [f"note: {note}" for note in described.notes]
    return lines


def _run_describe(args: argparse.Namespace) -> int:
    directory = find_cluster_dir(args.directory)
    described = describe(RealStorage(directory))
    if args.json:
        _write([json.dumps(described.json)])
    else:
        _write(describe_text(str(directory), described))
    return 0


# ------------------------------------------------------------------------------------- recording-log


def _run_recording_log(args: argparse.Namespace) -> int:
    reading = RecordingLogFile.read(RealStorage(find_cluster_dir(args.directory)))
    entries = sorted(reading.log.entries, key=lambda entry: entry.entry_index)
    if args.json:
        _write(json.dumps(entry_json(entry)) for entry in entries)
    else:
        _write(_entry_line(entry) for entry in entries)
    for note in _notes(reading):
        print(f"note: {note}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------- recovery-plan


class Plan(NamedTuple):
    """A recovery plan in its JSON form, and notes for the text form."""

    json: dict[str, Any]
    notes: list[str]


def _log_stop_position(archive: Storage, descriptor: RecordingDescriptor) -> tuple[int, str | None]:
    """The recording's stop position: the catalog's, or for a recording stopped by a crash (-1, or a
    torn update) the one the archive's recovery would find in its segment files, with a note."""
    stop = descriptor.stop_position
    if stop != -1 and not torn_stop_position(descriptor):
        return stop, None
    problem = layout_problem(descriptor)
    if problem is not None:
        raise ClusterAdminError(
            f"{archive.location}: recording {descriptor.recording_id} cannot be scanned for its stop "
            f"position: {problem}"
        )
    found = scanned_stop_position(archive, descriptor)
    return found, (
        f"the catalog's stopPosition of log recording {descriptor.recording_id} is {stop} (it is still "
        f"being recorded, or its archive stopped while recording): {found} is where its segment files "
        "end, as the archive's recovery would find it"
    )


def recovery_plan(log: RecordingLog, archive: Storage | None, service_count: int | None = None) -> Plan:
    """The recovery plan of ``log`` (``RecordingLog.recovery_plan``), its log recording read from the
    catalog in ``archive`` (needed only when the log has a TERM entry). ``service_count`` defaults to
    the services of the latest snapshot set."""
    if service_count is None:
        service_count = max(len(log.latest_snapshot_set()) - 1, 0)
    term = log.find_last_term()
    descriptor: RecordingDescriptor | None = None
    stop, note = -1, None
    if term is not None:
        if archive is None:
            raise ClusterAdminError(
                f"the recovery plan needs the stop position of log recording {term.recording_id}, which "
                "is in the archive's catalog: give --archive-dir"
            )
        if not archive.exists(CATALOG_FILE_NAME):
            raise ClusterAdminError(
                f"{archive.location}: no {CATALOG_FILE_NAME} (is it the node's archive directory? "
                "give --archive-dir)"
            )
        with Catalog(archive, read_only=True) as catalog:
            descriptor = catalog.recording(term.recording_id)
        if descriptor is None:
            raise ClusterAdminError(
                f"{archive.location}/{CATALOG_FILE_NAME}: no log recording {term.recording_id} (named by "
                f"TERM entry {term.entry_index} of {RECORDING_LOG_FILE_NAME})"
            )
        stop, note = _log_stop_position(archive, descriptor)
    plan = log.recovery_plan(
        service_count, stop, log_start_position=0 if descriptor is None else descriptor.start_position
    )
    recovery_log: dict[str, Any] | None = None
    if plan.log is not None:
        assert descriptor is not None
        recovery_log = {
            "recordingId": plan.log.recording_id,
            "leadershipTermId": plan.log.leadership_term_id,
            "termBaseLogPosition": plan.log.term_base_log_position,
            "logPosition": plan.log.log_position,
            "startPosition": plan.log.start_position,
            "stopPosition": plan.log.stop_position,
            "initialTermId": descriptor.initial_term_id,
            "termBufferLength": descriptor.term_buffer_length,
            "mtuLength": descriptor.mtu_length,
            "sessionId": descriptor.session_id,
        }
    return Plan(
        {
            "lastLeadershipTermId": plan.last_leadership_term_id,
            "lastTermBaseLogPosition": plan.last_term_base_log_position,
            "appendedLogPosition": plan.appended_log_position,
            "committedLogPosition": plan.committed_log_position,
            "snapshots": [{key: entry_json(entry)[key] for key in SNAPSHOT_KEYS} for entry in plan.snapshots],
            "log": recovery_log,
        },
        [] if note is None else [note],
    )


def _plan_text(plan: dict[str, Any]) -> list[str]:
    lines = [f"{name}: {plan[name]}" for name in list(plan)[:4]]
    lines.append(f"snapshots: {len(plan['snapshots'])}")
    for snapshot in plan["snapshots"]:
        lines.append("  " + " ".join(f"{key}={value}" for key, value in snapshot.items()))
    if plan["log"] is None:
        lines.append("log: none (no TERM entry)")
    else:
        lines.append("log: " + " ".join(f"{key}={value}" for key, value in plan["log"].items()))
    return lines


def _recovery_plan_arguments(parser: argparse.ArgumentParser) -> None:
    _directory_arguments(parser)
    parser.add_argument(
        "--service-count",
        type=int,
        metavar="N",
        help="the services of the snapshot set (default: as many as the latest snapshot set holds)",
    )
    parser.add_argument(
        "--archive-dir",
        metavar="ARCHIVE",
        help="the node's archive directory (default: 'archive' beside the cluster directory)",
    )


def _run_recovery_plan(args: argparse.Namespace) -> int:
    directory = find_cluster_dir(args.directory)
    reading = RecordingLogFile.read(RealStorage(directory))
    archive_dir = Path(args.archive_dir) if args.archive_dir is not None else directory.parent / "archive"
    archive = RealStorage(archive_dir) if archive_dir.is_dir() else None
    if archive is None and reading.log.find_last_term() is not None:
        raise ClusterAdminError(
            f"{archive_dir}: no archive directory there; the recovery plan needs the log recording's stop "
            "position from the node's archive catalog (give --archive-dir)"
        )
    plan = recovery_plan(reading.log, archive, args.service_count)
    if args.json:
        _write([json.dumps(plan.json)])
    else:
        _write(_plan_text(plan.json) + [f"note: {note}" for note in plan.notes + _notes(reading)])
    return 0


# -------------------------------------------------------------------------------------------- errors


def _errors_json(observations: Sequence[ErrorObservation]) -> list[dict[str, Any]]:
    return [observation.to_json() for observation in observations]


def error_logs(storage: Storage) -> dict[str, Any]:
    """The distinct error logs of the consensus module's mark file and of each service's:
    ``{"markFile", "errors", "services": [{"serviceId", "markFile", "errors"}, ...]}``."""
    _require(storage, CLUSTER_MARK_FILE_NAME)
    return {
        "markFile": CLUSTER_MARK_FILE_NAME,
        "errors": _errors_json(ClusterMarkFile.read_errors(storage)),
        "services": [
            {
                "serviceId": service_id,
                "markFile": name,
                "errors": _errors_json(ClusterMarkFile.read_errors(storage, name)),
            }
            for service_id, name in ClusterMarkFile.service_mark_files(storage)
        ],
    }


def _plural(count: int, word: str, plural: str = "") -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _error_log_text(title: str, errors: list[dict[str, Any]]) -> list[str]:
    lines = [f"{title}: {_plural(len(errors), 'distinct error')}"]
    for error in errors:
        lines.append(
            f"  {_plural(error['observationCount'], 'observation')} from "
            f"{_utc(error['firstObservationTimestamp'])} to {_utc(error['lastObservationTimestamp'])}:"
        )
        lines += [f"    {line}" for line in error["text"].splitlines()]
    return lines


def _run_errors(args: argparse.Namespace) -> int:
    logs = error_logs(RealStorage(find_cluster_dir(args.directory)))
    if args.json:
        _write([json.dumps(logs)])
        return 0
    lines = _error_log_text(f"{logs['markFile']} (consensus module)", logs["errors"])
    for service in logs["services"]:
        lines += _error_log_text(f"{service['markFile']} (service {service['serviceId']})", service["errors"])
    _write(lines)
    return 0


# ----------------------------------------------------------------------------------------------- pid


def _run_pid(args: argparse.Namespace) -> int:
    storage = RealStorage(find_cluster_dir(args.directory))
    _require(storage, CLUSTER_MARK_FILE_NAME)
    pid = ClusterMarkFile.read(storage).pid
    _write([json.dumps({"pid": pid}) if args.json else str(pid)])
    return 0


# -------------------------------------------------------------------------------------- the changes


def refuse_while_running(storage: Storage, verb: str, *, now_ms: int) -> None:
    """``ClusterAdminError`` if the consensus module or a service container of the node in ``storage``
    is running: its mark file's activity timestamp is within the liveness timeout of ``now_ms``
    (module docstring)."""
    names = [CLUSTER_MARK_FILE_NAME, *(name for _, name in ClusterMarkFile.service_mark_files(storage))]
    for name in names:
        try:
            ClusterMarkFile.refuse_if_active(storage, name, now_ms=now_ms)
        except ClusterMarkFileError as exc:
            raise ClusterAdminError(
                f"{verb} refused: the node is running ({exc}); stop it first; nothing was changed"
            ) from None


def invalidate_latest_snapshot(storage: Storage, *, now_ms: int) -> tuple[RecordingLogEntry, ...]:
    """Invalidate the newest valid snapshot set in ``recording.log`` (``RecordingLogFile``'s in-place
    write); the entries invalidated, the consensus module's first."""
    refuse_while_running(storage, "invalidate-latest-snapshot", now_ms=now_ms)
    trial = RecordingLogFile.read(storage).log
    if not trial.invalidate_latest_snapshot():  # the rules checked on a copy before the file is opened
        raise ClusterAdminError(
            f"{RECORDING_LOG_FILE_NAME} has no valid snapshot to invalidate; nothing was changed"
        )
    with RecordingLogFile.open(storage, create=False) as file:
        return file.invalidate_latest_snapshot()


def seed_recording_log(storage: Storage, *, now_ms: int) -> RecordingLog:
    """Replace ``recording.log`` by one seeded from its newest valid snapshot set
    (``RecordingLog.seeded_from_latest_snapshot``), the old one kept as ``recording.log.bak``."""
    refuse_while_running(storage, "seed-recording-log-from-snapshot", now_ms=now_ms)
    seeded = RecordingLogFile.read(storage).log.seeded_from_latest_snapshot()
    RecordingLogFile.replace(storage, seeded, backup=BACKUP_FILE_NAME)
    return seeded


def sort_recording_log(storage: Storage, *, now_ms: int) -> tuple[RecordingLog, bool]:
    """Rewrite ``recording.log`` in Aeron's order (``RecordingLog.sorted_copy``) unless it is in that
    order already; the log as the file now holds it, and whether the file changed."""
    refuse_while_running(storage, "sort-recording-log", now_ms=now_ms)
    reading = RecordingLogFile.read(storage)
    if reading.log.is_sorted and not reading.repairs:
        return reading.log, False
    ordered = reading.log.sorted_copy()
    RecordingLogFile.replace(storage, ordered)
    return ordered, True


def _run_invalidate(args: argparse.Namespace) -> int:
    storage = RealStorage(find_cluster_dir(args.directory))
    invalidated = invalidate_latest_snapshot(storage, now_ms=_now_ms())
    latest = latest_snapshot_json(RecordingLogFile.read(storage).log)
    if args.json:
        _write(
            [
                json.dumps(
                    {"invalidated": [_indexed_json(entry) for entry in invalidated], "latestSnapshot": latest}
                )
            ]
        )
        return 0
    cm = invalidated[0]
    where = f"leadershipTermId {cm.leadership_term_id}, logPosition {cm.log_position}"
    lines = [f"invalidated the snapshot at {where}:"]
    lines += ["  " + _entry_line(entry) for entry in invalidated]
    lines += latest_snapshot_text(latest)
    if latest is None:
        lines.append("a node will now replay its log from the start")
    _write(lines)
    return 0


def _run_seed(args: argparse.Namespace) -> int:
    storage = RealStorage(find_cluster_dir(args.directory))
    seeded = seed_recording_log(storage, now_ms=_now_ms())
    if args.json:
        _write(
            [
                json.dumps(
                    {"backup": BACKUP_FILE_NAME, "recordingLog": [entry_json(e) for e in seeded.entries]}
                )
            ]
        )
        return 0
    lines = [
        f"{RECORDING_LOG_FILE_NAME} seeded from the latest snapshot (the old log is now {BACKUP_FILE_NAME}): "
        f"{_plural(len(seeded), 'entry', 'entries')}"
    ]
    lines += ["  " + _entry_line(entry) for entry in seeded.entries]
    _write(lines)
    return 0


def _run_sort(args: argparse.Namespace) -> int:
    storage = RealStorage(find_cluster_dir(args.directory))
    log, changed = sort_recording_log(storage, now_ms=_now_ms())
    if args.json:
        _write([json.dumps({"changed": changed, "recordingLog": [entry_json(e) for e in log.entries]})])
        return 0
    if changed:
        lines = [
            f"{RECORDING_LOG_FILE_NAME} rewritten in Aeron's order: {_plural(len(log), 'entry', 'entries')}"
        ]
    else:
        lines = [f"{RECORDING_LOG_FILE_NAME} is in Aeron's order already; nothing was changed"]
    lines += ["  " + _entry_line(entry) for entry in log.entries]
    _write(lines)
    return 0


SUBCOMMANDS: dict[str, Subcommand] = {
    "describe": Subcommand(
        "show a node's mark file, node state, recording log and latest snapshot (offline)",
        _directory_arguments,
        _run_describe,
    ),
    "recording-log": Subcommand(
        "print a node's recording log, one line per entry (offline)", _directory_arguments, _run_recording_log
    ),
    "recovery-plan": Subcommand(
        "print what a node would recover from: snapshots and the log to replay (offline; reads the catalog)",
        _recovery_plan_arguments,
        _run_recovery_plan,
    ),
    "errors": Subcommand(
        "print the distinct error logs of a node's mark files (offline)", _directory_arguments, _run_errors
    ),
    "pid": Subcommand("print the pid in a node's mark file (offline)", _directory_arguments, _run_pid),
    "invalidate-latest-snapshot": Subcommand(
        "mark the latest snapshot invalid so the one before it is loaded (refused while the node runs)",
        _directory_arguments,
        _run_invalidate,
    ),
    "seed-recording-log-from-snapshot": Subcommand(
        "replace the recording log by one holding only the latest valid snapshot, keeping a backup "
        "(refused while the node runs)",
        _directory_arguments,
        _run_seed,
    ),
    "sort-recording-log": Subcommand(
        "rewrite the recording log in Aeron's order (refused while the node runs)",
        _directory_arguments,
        _run_sort,
    ),
}
