"""Recovery at archive start: make the catalog and the segment files agree after a crash.

Theory of operation
-------------------
An archive that dies while recording leaves its active recordings with ``stopPosition`` -1 in the
catalog (they are only stopped when the recording ends) and, in the last segment file of each, whatever
the crash left of the block being written. ``recover`` runs when the archive starts, before it accepts
any request, and for every recording in the catalog:

* **VALID, stop position -1** (it was active when the process died): the real end is found by the
  recovery scan (``segments.find_stop_position``: the end of the last whole, valid frame, scanning from
  the base of the last segment file), the tail after it is cut (``segments.repair_tail``: the rest of
  that file is zeroed and later files deleted, so an extension writes into zeros, as the writer needs),
  and the catalog gets that stop position with ``now_ms`` as the stop timestamp -- what Aeron's
  ArchiveTool verify does to such a recording. The files are repaired before the catalog is updated: a
  crash in between leaves -1 in the catalog, and the next recovery finds the same position again.
* **VALID, stop position torn** (negative but not -1: a crash tore an update of it -- a stop, an
  extension, a truncate -- before it was durable; see the catalog's module docstring): as for -1. The
  files still hold what they held before that update (the catalog is written before a truncate cuts
  them), so the scan finds the old end, and an unanswered truncate is simply not done.
* **VALID, stopped**: the file holding the last byte must exist, or the recording cannot be replayed
  (reported; the catalog is left alone -- ``archive verify --apply`` marks such recordings INVALID).
  Data after the stop position -- a frame header there, or segment files after the stop's file -- is the
  remains of a truncate that was interrupted (the catalog's stop position is written first) or of a
  writer that failed: the tail is cut as above.
* **DELETED**: segment files still there are the remains of an interrupted purge and are deleted.
* **INVALID**: left alone.

A recording whose descriptor cannot describe segment files (a term length that is not a power of two,
a segment length that is not a multiple of it, positions off the 32-byte frame alignment) is reported
and left alone. ``recover`` returns one line per thing it did or found (``"recording 3: ..."``); an
empty list means there was nothing to do. Storage errors propagate: the archive must not start on a
directory it cannot repair.
"""

from __future__ import annotations

from dataclasses import dataclass

from cluster.archive.catalog import NULL_POSITION, Catalog, RecordingDescriptor, RecordingState
from cluster.archive.errors import SegmentError
from cluster.archive.segments import (
    HEADER_LENGTH,
    check_layout,
    check_position,
    delete_recording_files,
    find_stop_position,
    repair_tail,
    segment_file_base_position,
    segment_file_name,
    segment_files,
)
from cluster.storage import Storage

__all__ = [
    "RecoveryAction",
    "layout_problem",
    "leftover_after_stop",
    "recover",
    "recovery_actions",
    "scanned_stop_position",
    "torn_stop_position",
]


@dataclass(frozen=True, slots=True)
class RecoveryAction:
    """One thing recovery did (``repaired``) or found and left (a problem it cannot repair)."""

    recording_id: int
    text: str
    repaired: bool

    def __str__(self) -> str:
        return f"recording {self.recording_id}: {self.text}"


def layout_problem(descriptor: RecordingDescriptor) -> str | None:
    """Why ``descriptor`` cannot describe segment files, or ``None``."""
    try:
        check_layout(descriptor.term_buffer_length, descriptor.segment_file_length)
        check_position("startPosition", descriptor.start_position)
        if descriptor.stop_position != NULL_POSITION and not torn_stop_position(descriptor):
            check_position("stopPosition", descriptor.stop_position)
            if descriptor.stop_position < descriptor.start_position:
                return (
                    f"stopPosition {descriptor.stop_position} is before startPosition "
                    f"{descriptor.start_position}"
                )
    except SegmentError as exc:
        return str(exc)
    return None


def torn_stop_position(descriptor: RecordingDescriptor) -> bool:
    """Whether the stop position is what a crash left of an update of it: negative but not -1 (the
    catalog writes the field's top byte as 0x80 before rewriting it, so a torn write reads so)."""
    return descriptor.stop_position < NULL_POSITION


def scanned_stop_position(storage: Storage, descriptor: RecordingDescriptor) -> int:
    """Where the recording's frames really end: recovery's scan of its segment files
    (``segments.find_stop_position``) with the descriptor's layout -- the stop position recovery gives a
    recording left at -1 or torn. It only reads."""
    return find_stop_position(
        storage,
        recording_id=descriptor.recording_id,
        start_position=descriptor.start_position,
        term_length=descriptor.term_buffer_length,
        segment_length=descriptor.segment_file_length,
        initial_term_id=descriptor.initial_term_id,
        stream_id=descriptor.stream_id,
    )


def leftover_after_stop(storage: Storage, descriptor: RecordingDescriptor) -> list[str]:
    """What lies after a stopped recording's stop position that should not: segment files after the
    file holding the stop position (a file starting exactly at it is allowed empty, as Aeron's writer
    creates it), and a frame header that is not all zeros at the stop position."""
    stop = descriptor.stop_position
    start = descriptor.start_position
    term_length = descriptor.term_buffer_length
    segment_length = descriptor.segment_file_length
    base = segment_file_base_position(start, stop, term_length, segment_length)
    found = []
    files = segment_files(storage, descriptor.recording_id)
    for file_base, name in files:
        if file_base > base:
            found.append(f"{name} lies after the stop position {stop}")
    name = segment_file_name(descriptor.recording_id, base)
    if any(file_base == base for file_base, _ in files):
        with storage.open(name) as file:
            header = file.read(stop - base, HEADER_LENGTH)
        if header.count(0) != len(header):
            found.append(f"{name} holds data at the stop position {stop} (offset {stop - base})")
    return found


def _last_file_missing(storage: Storage, descriptor: RecordingDescriptor) -> str | None:
    start, stop = descriptor.start_position, descriptor.stop_position
    if stop <= start:
        return None
    base = segment_file_base_position(
        start, stop - 1, descriptor.term_buffer_length, descriptor.segment_file_length
    )
    name = segment_file_name(descriptor.recording_id, base)
    if storage.exists(name):
        return None
    return f"its last segment file {name} (holding the stop position {stop}) is missing"


def recovery_actions(storage: Storage, catalog: Catalog, *, now_ms: int) -> list[RecoveryAction]:
    """Recover every recording of ``catalog`` (see the module docstring); what was done and found."""
    actions: list[RecoveryAction] = []
    for descriptor in list(catalog.recordings(include_deleted=True)):
        recording_id = descriptor.recording_id
        if descriptor.state == RecordingState.DELETED:
            for name in delete_recording_files(storage, recording_id):
                actions.append(
                    RecoveryAction(recording_id, f"deleted {name} (the recording is DELETED)", True)
                )
            continue
        if descriptor.state != RecordingState.VALID:
            continue
        problem = layout_problem(descriptor)
        if problem is not None:
            actions.append(RecoveryAction(recording_id, f"left alone: {problem}", False))
            continue
        layout = {
            "recording_id": recording_id,
            "start_position": descriptor.start_position,
            "term_length": descriptor.term_buffer_length,
            "segment_length": descriptor.segment_file_length,
        }
        if descriptor.stop_position == NULL_POSITION or torn_stop_position(descriptor):
            stop = scanned_stop_position(storage, descriptor)
            for line in repair_tail(storage, **layout, stop_position=stop):
                actions.append(RecoveryAction(recording_id, line, True))
            catalog.update_stop(recording_id, stop, now_ms)
            torn = "" if descriptor.stop_position == NULL_POSITION else " (torn by a crash)"
            actions.append(
                RecoveryAction(
                    recording_id,
                    f"stopPosition {descriptor.stop_position}{torn} set to {stop}, stopTimestamp {now_ms}",
                    True,
                )
            )
            continue
        missing = _last_file_missing(storage, descriptor)
        if missing is not None:
            actions.append(RecoveryAction(recording_id, missing, False))
        if leftover_after_stop(storage, descriptor):
            for line in repair_tail(storage, **layout, stop_position=descriptor.stop_position):
                actions.append(RecoveryAction(recording_id, f"{line} (after the stop position)", True))
    return actions


def recover(storage: Storage, catalog: Catalog, *, now_ms: int) -> list[str]:
    """Make the catalog and the segment files of the archive directory ``storage`` agree after a crash;
    one line per repair or problem found (see the module docstring). ``now_ms`` (epoch milliseconds)
    becomes the stop timestamp of the recordings it stops."""
    return [str(action) for action in recovery_actions(storage, catalog, now_ms=now_ms)]
