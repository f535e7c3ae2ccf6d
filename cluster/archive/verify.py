"""``verify``: check an archive directory the way Aeron's ArchiveTool verify does, and optionally repair it.

Theory of operation
-------------------
For every recording in the catalog, in id order, ``verify_archive`` prints one of:

* ``(recordingId=N) OK`` -- nothing wrong;
* ``(recordingId=N) skipping: DELETED`` (or ``INVALID``) -- as ArchiveTool prints it; a DELETED
  recording whose segment files are still there is a problem too (an interrupted purge);
* one line per problem, ``(recordingId=N) ERR: ...``:

  - the descriptor: start or stop position not a multiple of 32, stop before start, a term length that
    is not a power of two in [64 KiB, 1 GiB], a segment length that is not a power-of-two multiple of
    it;
  - the files: a segment file missing between the start and the stop position, segment files or data
    after the stop position;
  - the frames: every frame from the start to the stop position is read and checked
    (``segments.frame_check``), so a corrupt frame is named by file, offset and field;
  - stop position -1 while no process holds the archive (its mark file is not active): the recording
    was active when its archive died, and ``stopPosition -1 would be set to X`` says where the recovery
    scan finds its end (``X`` is what ArchiveTool verify writes); a stop position that a crash tore
    (negative, not -1: ``recovery.torn_stop_position``) is reported and repaired the same way.

Files in the directory that look like segment files of recordings the catalog does not have are
reported as ``(file NAME) ERR: ...``, and problems opening the catalog (``Catalog.problems``) as
``(catalog) ERR: ...``.

Without ``apply`` nothing is changed -- unlike ArchiveTool, which repairs as it goes -- so it is safe to
run on any directory. With ``apply`` it then repairs what the archive's own recovery would
(``recovery.recover``: stops the recordings whose stop position is -1 at the position found, cuts
torn tails and leftovers, finishes interrupted purges), marks INVALID the VALID recordings it cannot
repair (bad descriptor, missing segment file, corrupt frames before the stop position), and prints what
it did. Files of unknown recordings are left where they are. ``apply`` refuses to touch an archive whose
mark file says it is running (a ``MarkFileError``), unless ``force``; without ``apply`` the recordings
such an archive is recording (stop position -1) are reported as active, not as problems.

``VerifyReport.problems`` counts the problems found (before any repair); the command's exit status is
0 when there were none and 1 otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cluster.archive.catalog import NULL_POSITION, Catalog, RecordingDescriptor, RecordingState
from cluster.archive.errors import MarkFileError, SegmentError
from cluster.archive.markfile import DEFAULT_LIVENESS_TIMEOUT_MS, ArchiveMarkFile, is_active
from cluster.archive.recording_reader import RecordingReader
from cluster.archive.recovery import (
    layout_problem,
    leftover_after_stop,
    recovery_actions,
    scanned_stop_position,
    torn_stop_position,
)
from cluster.archive.segments import (
    parse_segment_file_name,
    segment_file_base_position,
    segment_file_name,
    segment_files,
)
from cluster.storage import Storage

__all__ = ["VerifyReport", "verify_archive"]

_READ_LENGTH = 1024 * 1024


@dataclass
class VerifyReport:
    """What ``verify_archive`` printed (``lines``), how many problems it found, and what it changed."""

    lines: list[str] = field(default_factory=list)
    problems: int = 0
    repairs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problems == 0


def _archive_is_running(storage: Storage, now_ms: int, liveness_timeout_ms: int) -> tuple[bool, str]:
    """Whether the mark file says an archive holds the directory, and a description of it."""
    try:
        header = ArchiveMarkFile.read(storage)
    except MarkFileError:
        return False, "no readable mark file"
    running = is_active(header.activity_timestamp, now_ms, liveness_timeout_ms)
    return running, f"pid {header.pid}, activity timestamp {header.activity_timestamp}"


def _missing_files(storage: Storage, descriptor: RecordingDescriptor, end: int) -> list[str]:
    """The segment files that must hold [start, end) and are not there."""
    start = descriptor.start_position
    if end <= start:
        return []
    term_length, segment_length = descriptor.term_buffer_length, descriptor.segment_file_length
    first = segment_file_base_position(start, start, term_length, segment_length)
    last = segment_file_base_position(start, end - 1, term_length, segment_length)
    present = {base for base, _ in segment_files(storage, descriptor.recording_id)}
    return [
        segment_file_name(descriptor.recording_id, base)
        for base in range(first, last + 1, segment_length)
        if base not in present
    ]


def _frame_problem(storage: Storage, descriptor: RecordingDescriptor, stop: int) -> str | None:
    """The first bad frame between the start and ``stop``, or ``None``."""
    try:
        with RecordingReader.of(storage, descriptor, stop_position=stop) as reader:
            while reader.read_block(_READ_LENGTH) is not None:
                pass
            if reader.position != stop:
                return f"the frames end at {reader.position}, the stop position {stop} is inside a frame"
    except SegmentError as exc:
        return f"corrupt frame: {exc}"
    return None


def _check_recording(
    storage: Storage, descriptor: RecordingDescriptor, running: bool
) -> tuple[list[str], bool, bool]:
    """``(problem lines, repairable by recovery, active)`` of one VALID recording."""
    problem = layout_problem(descriptor)
    if problem is not None:
        return [problem], False, False
    stop = descriptor.stop_position
    if stop == NULL_POSITION or torn_stop_position(descriptor):
        if running and stop == NULL_POSITION:
            return [], True, True
        found = scanned_stop_position(storage, descriptor)
        torn = "" if stop == NULL_POSITION else " (torn by a crash)"
        problems = [f"stopPosition {stop}{torn} would be set to {found}"]
        missing = _missing_files(storage, descriptor, found)
        frames = None if missing else _frame_problem(storage, descriptor, found)
        repairable = not missing and frames is None
        problems += [f"segment file {name} is missing" for name in missing]
        if frames is not None:
            problems.append(frames)
        return problems, repairable, False
    problems = []
    missing = _missing_files(storage, descriptor, stop)
    problems += [f"segment file {name} is missing" for name in missing]
    frames = None if missing else _frame_problem(storage, descriptor, stop)
    if frames is not None:
        problems.append(frames)
    repairable = not problems
    problems += leftover_after_stop(storage, descriptor)
    return problems, repairable, False


def verify_archive(
    storage: Storage,
    *,
    now_ms: int,
    apply: bool = False,
    force: bool = False,
    liveness_timeout_ms: int = DEFAULT_LIVENESS_TIMEOUT_MS,
) -> VerifyReport:
    """Check (and with ``apply`` repair) the archive directory ``storage``; see the module docstring.
    ``now_ms`` is the epoch-millisecond clock: the mark file's liveness, and the stop timestamp of the
    recordings it stops."""
    report = VerifyReport()
    running, who = _archive_is_running(storage, now_ms, liveness_timeout_ms)
    if running and force:
        running = False
    if apply and running:
        raise MarkFileError(
            f"the archive is running ({who}): verify --apply changes nothing under a running archive "
            "(--force if its mark file is stale)"
        )
    unrepairable: list[int] = []
    with Catalog(storage, read_only=not apply, create=False) as catalog:
        for catalog_problem in catalog.problems:
            report.problems += 0 if catalog_problem.repaired else 1
            repaired = " (repaired)" if catalog_problem.repaired else ""
            report.lines.append(
                f"(catalog) ERR: offset {catalog_problem.offset}, {catalog_problem.field}: "
                f"{catalog_problem.message}{repaired}"
            )
        known = set()
        for descriptor in list(catalog.recordings(include_deleted=True)):
            recording_id = descriptor.recording_id
            known.add(recording_id)
            prefix = f"(recordingId={recording_id})"
            if descriptor.state != RecordingState.VALID:
                report.lines.append(f"{prefix} skipping: {descriptor.state.name}")
                if descriptor.state == RecordingState.DELETED:
                    for _, name in segment_files(storage, recording_id):
                        report.problems += 1
                        report.lines.append(
                            f"{prefix} ERR: segment file {name} remains of the DELETED recording"
                        )
                continue
            problems, repairable, active = _check_recording(storage, descriptor, running)
            if active:
                report.lines.append(f"{prefix} active: being recorded by the running archive ({who})")
                continue
            if not problems:
                report.lines.append(f"{prefix} OK")
                continue
            report.problems += len(problems)
            report.lines.extend(f"{prefix} ERR: {problem}" for problem in problems)
            if not repairable:
                unrepairable.append(recording_id)
        for name in storage.list():
            parsed = parse_segment_file_name(name)
            if parsed is not None and parsed[0] not in known:
                report.problems += 1
                report.lines.append(f"(file {name}) ERR: recording {parsed[0]} is not in the catalog")
        if apply:
            _apply(storage, catalog, report, unrepairable, now_ms)
    return report


def _apply(
    storage: Storage, catalog: Catalog, report: VerifyReport, unrepairable: list[int], now_ms: int
) -> None:
    for recording_id in unrepairable:
        catalog.change_state(recording_id, RecordingState.INVALID)
        report.repairs.append(f"(recordingId={recording_id}) marked INVALID")
    for action in recovery_actions(storage, catalog, now_ms=now_ms):
        if action.repaired:
            report.repairs.append(f"(recordingId={action.recording_id}) {action.text}")
    report.lines.extend(report.repairs)
