"""``recording.log`` on a ``Storage``: the recording-log model kept in Aeron's file, crash-safe.

Theory of operation
-------------------
``cluster.consensus.core.recording_log`` is the model: the entries, their rules, and their bytes
(``RecordingLog.to_bytes``). This module keeps a file equal to it. Every change runs on a copy of the
model (so a refused change leaves both alone), and the file is then brought to the copy's bytes the
way Aeron writes it:

1. records already in the file that changed are written **in place**, the changed bytes only, from the
   last record to the first: a TERM's ``logPosition`` (8 bytes), an invalidation (the top byte of the
   type field), a revalidated snapshot (recording id, timestamp, type), a removed record (its type
   field set to ``-1``; its other fields stay, as Aeron leaves them);
2. new records are **appended** as whole records (64 bytes, more for a STANDBY_SNAPSHOT with a long
   endpoint) at the end, in one write;
3. the file is **synced** at the configured ``SyncLevel`` (Aeron forces ``recording.log`` after every
   change). Only then does the change return: a returned change is durable.

**What a crash can leave, and the repair.** A crash loses or tears only what was written after the
last sync, and (on ``SimDisk`` and ext4's ordered mode) writeback keeps order, so the file holds a prefix
of the last change's writes, the last of them possibly torn at any byte. Loading recognises exactly
those leftovers and repairs them, each reported as a ``RecordingLogRepair``:

* a **torn append**: the last record is shorter than its length (a partial 64 bytes, or a
  STANDBY_SNAPSHOT cut short), or whole records of zeros end the file (a file system that grew the
  file before its data landed; no record we write is all zeros) -- they are dropped;
* a **torn logPosition**: a TERM's end was being written over ``-1``; its low bytes landed and its high
  bytes still read ``0xff``, so it reads below ``-1`` -- it is set back to ``-1`` (the term is open
  again, as it was before the change that did not complete);
* a **torn removal**: a type field with its low bytes ``0xff`` and its high bytes those of a real type
  -- the removal is completed (type ``-1``). Removals run from the last record backwards, so what a
  crash leaves removed is always a tail of the entries being removed.

An invalidation changes one byte and cannot tear. Anything else that is not the format raises
``RecordingLogFileError`` naming the file and the byte offset: a damaged file is not a crash's
leftover, and guessing would hide it.

What a tear cannot be seen in: a closed TERM's end rewritten to another value (``truncate_to``)
is an 8-byte write that a byte-granular tear could mix. Real devices write an aligned 8-byte field
within one sector whole; ``SimDisk`` tears at any byte, so the crash tests leave truncation out of
their power-loss sweeps.

``RecordingLogFile.open`` repairs (and syncs the repair); ``RecordingLogFile.read`` only reads and
reports what it would repair, so a tool can look at a directory a node owns. ``RecordingLogFile.replace``
is the one whole-file rewrite, for tools working on a stopped node's directory (sorting the records,
seeding a log from a snapshot): a temporary file, synced, renamed over ``recording.log``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from cluster.consensus.core.errors import RecordingLogError
from cluster.consensus.core.recording_log import (
    ENDPOINT_OFFSET,
    INVALID_FLAG,
    MAX_ENDPOINT_LENGTH,
    RECORD_ALIGNMENT,
    REMOVED_TYPE,
    EntryType,
    RecordingLog,
    RecordingLogEntry,
)
from cluster.consensus.files.errors import RecordingLogFileError
from cluster.storage import Storage, StorageFile, SyncLevel

__all__ = [
    "RECORDING_LOG_FILE_NAME",
    "RecordingLogFile",
    "RecordingLogReading",
    "RecordingLogRepair",
]

RECORDING_LOG_FILE_NAME = "recording.log"

T = TypeVar("T")

_INT32 = struct.Struct("<i")
_INT64 = struct.Struct("<q")
_LOG_POSITION_OFFSET = 24
_TYPE_OFFSET = 44
_REMOVED = _INT32.pack(REMOVED_TYPE)
_ZERO_RECORD = bytes(RECORD_ALIGNMENT)
_NULL_POSITION = _INT64.pack(-1)
_TYPE_MASK = INVALID_FLAG - 1
# The type fields a record can hold (unsigned), before a removal tears over one of them.
_REAL_TYPES = tuple(code | flag for code in map(int, EntryType) for flag in (0, INVALID_FLAG))


@dataclass(frozen=True, slots=True)
class RecordingLogRepair:
    """One leftover of a crash that loading found and repaired (see the module docstring)."""

    offset: int
    length_bytes: int
    reason: str

    def __str__(self) -> str:
        return f"offset {self.offset} ({self.length_bytes} bytes): {self.reason}"


@dataclass(frozen=True, slots=True)
class RecordingLogReading:
    """What ``RecordingLogFile.read`` found: the log, and the repairs opening the file would make."""

    log: RecordingLog
    repairs: tuple[RecordingLogRepair, ...]


@dataclass(slots=True)
class _Scan:
    """The file's bytes with the repairs applied, where each record starts and how long it is, and the
    writes that make the file equal to ``data``: patches in place, then the new length."""

    data: bytearray
    extents: list[tuple[int, int]]
    repairs: list[RecordingLogRepair]
    patches: list[tuple[int, bytes]]
    length: int


def _torn_removal(raw_type: int) -> bool:
    """Whether a type field reads as ``-1`` written over a real type and torn: the low 1..3 bytes are
    ``0xff`` and the rest are the real type's."""
    unsigned = raw_type & 0xFFFF_FFFF
    for count in (1, 2, 3):
        low = (1 << (8 * count)) - 1
        if unsigned & low == low and any(unsigned & ~low == real & ~low for real in _REAL_TYPES):
            return True
    return False


def _scan(raw: bytes) -> _Scan:
    """Find the records of ``raw`` by their framing and repair a crash's leftovers; the model judges the
    contents afterwards."""
    data = bytearray(raw)
    scan = _Scan(data, [], [], [], len(data))
    offset = 0
    end = len(data)
    while offset < end:
        left = end - offset
        length = RECORD_ALIGNMENT
        if left >= RECORD_ALIGNMENT:
            (raw_type,) = _INT32.unpack_from(data, offset + _TYPE_OFFSET)
            if raw_type != REMOVED_TYPE and raw_type & _TYPE_MASK == EntryType.STANDBY_SNAPSHOT:
                (endpoint_length,) = _INT32.unpack_from(data, offset + ENDPOINT_OFFSET)
                if 1 <= endpoint_length <= MAX_ENDPOINT_LENGTH:
                    length = (
                        -(-(ENDPOINT_OFFSET + 4 + endpoint_length) // RECORD_ALIGNMENT) * RECORD_ALIGNMENT
                    )
        if length > left:
            scan.repairs.append(
                RecordingLogRepair(
                    offset, left, f"a torn append: {left} bytes of a {length}-byte record dropped"
                )
            )
            end = offset
            break
        _repair_fields(scan, offset)
        scan.extents.append((offset, length))
        offset += length
    while scan.extents and data[scan.extents[-1][0] : end] == _ZERO_RECORD:
        offset, _ = scan.extents.pop()
        scan.repairs.append(
            RecordingLogRepair(offset, end - offset, "a torn append: a record of zeros at the end dropped")
        )
        end = offset
    del data[end:]
    scan.length = end
    return scan


def _repair_fields(scan: _Scan, offset: int) -> None:
    """Repair a torn in-place write in the whole record at ``offset``."""
    data = scan.data
    (raw_type,) = _INT32.unpack_from(data, offset + _TYPE_OFFSET)
    if _torn_removal(raw_type):
        data[offset + _TYPE_OFFSET : offset + _TYPE_OFFSET + 4] = _REMOVED
        scan.patches.append((offset + _TYPE_OFFSET, _REMOVED))
        scan.repairs.append(
            RecordingLogRepair(
                offset + _TYPE_OFFSET,
                4,
                f"a torn removal: type field {raw_type & 0xFFFF_FFFF:#010x} set to -1",
            )
        )
        return
    if raw_type != REMOVED_TYPE and raw_type & _TYPE_MASK == EntryType.TERM:
        (log_position,) = _INT64.unpack_from(data, offset + _LOG_POSITION_OFFSET)
        if log_position < -1:
            where = offset + _LOG_POSITION_OFFSET
            data[where : where + 8] = _NULL_POSITION
            scan.patches.append((where, _NULL_POSITION))
            scan.repairs.append(
                RecordingLogRepair(
                    where, 8, f"a torn TERM logPosition: {log_position} set back to -1 (the term is open)"
                )
            )


def _load(raw: bytes, location: str) -> tuple[RecordingLog, _Scan]:
    scan = _scan(raw)
    try:
        log = RecordingLog.from_bytes(scan.data)
    except RecordingLogError as exc:
        raise RecordingLogFileError(str(exc), file=location) from None
    return log, scan


def _extents_of(log: RecordingLog) -> list[tuple[int, int]]:
    """Where each record of ``log.to_bytes()`` starts and how long it is, by entry index."""
    lengths = [RECORD_ALIGNMENT] * log.next_entry_index
    for entry in log.entries:
        lengths[entry.entry_index] = entry.length_bytes
    extents = []
    offset = 0
    for length in lengths:
        extents.append((offset, length))
        offset += length
    return extents


def _changed_range(old: bytes | bytearray, new: bytes | bytearray) -> tuple[int, int] | None:
    """The first and one past the last index at which ``old`` and ``new`` (same length) differ."""
    first = next((i for i in range(len(new)) if old[i] != new[i]), None)
    if first is None:
        return None
    last = next(i for i in range(len(new) - 1, -1, -1) if old[i] != new[i])
    return first, last + 1


class RecordingLogFile:
    """``recording.log`` of a cluster directory, open for changes (see the module docstring).

    The model is ``log`` (a copy: change it through this class, which persists every change). After a
    storage failure the object refuses further use: what the file holds is then unknown, and a node
    must stop and reopen it (Aeron treats a failed write of the recording log as fatal too)."""

    FILE_NAME = RECORDING_LOG_FILE_NAME

    def __init__(
        self,
        storage: Storage,
        file: StorageFile,
        log: RecordingLog,
        image: bytearray,
        extents: list[tuple[int, int]],
        sync_level: SyncLevel,
        repairs: tuple[RecordingLogRepair, ...],
    ) -> None:
        """Use ``RecordingLogFile.open``."""
        self._storage = storage
        self._file: StorageFile | None = file
        self._log = log
        self._image = image  # the file's bytes as last synced
        self._extents = extents  # (offset, length) of each record, by entry index
        self._sync_level = sync_level
        self._repairs = repairs
        self._failed = False

    # ------------------------------------------------------------------------------------- opening

    @classmethod
    def open(
        cls, storage: Storage, *, sync_level: SyncLevel = SyncLevel.DATA, create: bool = True
    ) -> RecordingLogFile:
        """Open ``recording.log`` in ``storage`` -- created empty if it is not there and ``create`` -- and
        repair what a crash left (``repairs`` lists it; the repair is synced before this returns).
        ``RecordingLogFileError`` if the file is damaged otherwise, or missing and not ``create``."""
        location = _location(storage)
        if not storage.exists(RECORDING_LOG_FILE_NAME):
            if not create:
                raise RecordingLogFileError("there is no recording log", file=location)
            file = storage.open(RECORDING_LOG_FILE_NAME, create=True)
            if sync_level != SyncLevel.NONE:
                file.sync(sync_level)
                storage.sync_directory()
        else:
            file = storage.open(RECORDING_LOG_FILE_NAME)
        try:
            log, scan = _load(file.read(0, file.size()), location)
            if scan.repairs:
                for offset, patch in scan.patches:
                    file.write(offset, patch)
                if file.size() != scan.length:
                    file.truncate(scan.length)
                file.sync(sync_level)
        except BaseException:
            file.close()
            raise
        return cls(storage, file, log, scan.data, scan.extents, sync_level, tuple(scan.repairs))

    @staticmethod
    def read(storage: Storage) -> RecordingLogReading:
        """The recording log in ``storage`` without changing it: the log as ``open`` would load it and the
        repairs ``open`` would make. ``RecordingLogFileError`` if it is missing or damaged."""
        location = _location(storage)
        if not storage.exists(RECORDING_LOG_FILE_NAME):
            raise RecordingLogFileError("there is no recording log", file=location)
        log, scan = _load(storage.read_file(RECORDING_LOG_FILE_NAME), location)
        return RecordingLogReading(log, tuple(scan.repairs))

    @staticmethod
    def replace(storage: Storage, log: RecordingLog, *, backup: str = "") -> RecordingLogReading:
        """Write ``log`` as a new ``recording.log`` in ``storage``, in place of the one there: whole, through
        a synced temporary renamed over it (``Storage.replace_file``), so a crash leaves the old file or
        the new one. With ``backup`` (a file name) the old file's bytes are first kept, as durably, under
        that name. For tools rewriting the log of a stopped node (Aeron's ClusterTool sort and seed); a
        node changes its log in place (``update``). Returns the old file's reading;
        ``RecordingLogFileError`` if there is no recording log or it is damaged."""
        old = RecordingLogFile.read(storage)
        if backup:
            storage.replace_file(backup, storage.read_file(RECORDING_LOG_FILE_NAME))
        storage.replace_file(RECORDING_LOG_FILE_NAME, log.to_bytes())
        return old

    # ------------------------------------------------------------------------------------- reading

    @property
    def log(self) -> RecordingLog:
        """A copy of the model, as the file now holds it."""
        return self._log.copy()

    @property
    def entries(self) -> tuple[RecordingLogEntry, ...]:
        return self._log.entries

    @property
    def repairs(self) -> tuple[RecordingLogRepair, ...]:
        """What ``open`` repaired (empty for a file a crash did not touch)."""
        return self._repairs

    @property
    def location(self) -> str:
        return _location(self._storage)

    # ------------------------------------------------------------------------------------- changing

    def update(self, change: Callable[[RecordingLog], T]) -> T:
        """Run ``change`` on a copy of the model and make the file equal to the result, durably; return
        what ``change`` returned. A change that raises leaves the model and the file as they were."""
        file = self._use()
        candidate = self._log.copy()
        result = change(candidate)
        writes, length = self._plan(candidate)
        if writes:
            try:
                for offset, data in writes:
                    file.write(offset, data)
                file.sync(self._sync_level)
            except BaseException:
                self._failed = True
                raise
            for offset, data in writes:
                self._image[offset : offset + len(data)] = data
            self._extents = self._extents + _extents_of(candidate)[len(self._extents) :]
        assert len(self._image) == length
        self._log = candidate
        return result

    def _plan(self, candidate: RecordingLog) -> tuple[list[tuple[int, bytes]], int]:
        """The writes that take the file to ``candidate``: in place from the last record back, then the
        appended records in one write; and the file's length afterwards."""
        new = candidate.to_bytes()
        new_extents = _extents_of(candidate)
        image = self._image
        writes: list[tuple[int, bytes]] = []
        for index in range(len(self._extents) - 1, -1, -1):
            offset, length = self._extents[index]
            if new_extents[index] != (offset, length):
                raise RecordingLogFileError(
                    f"entry {index} would change length from {length} to {new_extents[index][1]} bytes, "
                    "which cannot be written in place",
                    file=self.location,
                    offset=offset,
                )
            type_at = offset + _TYPE_OFFSET
            if new[type_at : type_at + 4] == _REMOVED:
                if image[type_at : type_at + 4] != _REMOVED:
                    writes.append((type_at, _REMOVED))
                continue
            changed = _changed_range(image[offset : offset + length], new[offset : offset + length])
            if changed is not None:
                writes.append((offset + changed[0], new[offset + changed[0] : offset + changed[1]]))
        if len(new) > len(image):
            writes.append((len(image), new[len(image) :]))
        return writes, max(len(new), len(image))

    def _use(self) -> StorageFile:
        if self._file is None:
            raise RecordingLogFileError("the recording log is closed", file=self.location)
        if self._failed:
            raise RecordingLogFileError(
                "an earlier write or sync failed; what the file holds is unknown: reopen it",
                file=self.location,
            )
        return self._file

    def append_term(
        self, recording_id: int, leadership_term_id: int, term_base_log_position: int, timestamp: int
    ) -> RecordingLogEntry:
        """``RecordingLog.append_term``, persisted."""
        return self.update(
            lambda log: log.append_term(recording_id, leadership_term_id, term_base_log_position, timestamp)
        )

    def append_snapshot(
        self,
        recording_id: int,
        leadership_term_id: int,
        term_base_log_position: int,
        log_position: int,
        timestamp: int,
        service_id: int,
    ) -> RecordingLogEntry:
        """``RecordingLog.append_snapshot``, persisted."""
        return self.update(
            lambda log: log.append_snapshot(
                recording_id, leadership_term_id, term_base_log_position, log_position, timestamp, service_id
            )
        )

    def put_snapshots(self, entries: Iterable[tuple[int, int, int, int, int, int]]) -> None:
        """``RecordingLog.put_snapshot`` for each of a snapshot's entries (``(recording_id,
        leadership_term_id, term_base_log_position, log_position, timestamp, service_id)``), persisted
        together."""
        listed = list(entries)
        self.update(lambda log: [log.put_snapshot(*entry) for entry in listed])

    def commit_log_position(self, leadership_term_id: int, log_position: int) -> RecordingLogEntry:
        """``RecordingLog.commit_log_position``, persisted."""
        return self.update(lambda log: log.commit_log_position(leadership_term_id, log_position))

    def invalidate_entry(self, entry_index: int) -> RecordingLogEntry:
        """``RecordingLog.invalidate_entry``, persisted."""
        return self.update(lambda log: log.invalidate_entry(entry_index))

    def invalidate_latest_snapshot(self) -> tuple[RecordingLogEntry, ...]:
        """``RecordingLog.invalidate_latest_snapshot``, persisted."""
        return self.update(lambda log: log.invalidate_latest_snapshot())

    def ensure_coherent(
        self,
        recording_id: int,
        initial_log_leadership_term_id: int,
        initial_term_base_log_position: int,
        leadership_term_id: int,
        term_base_log_position: int,
        log_position: int,
        timestamp: int,
    ) -> RecordingLogEntry:
        """``RecordingLog.ensure_coherent``, persisted."""
        return self.update(
            lambda log: log.ensure_coherent(
                recording_id,
                initial_log_leadership_term_id,
                initial_term_base_log_position,
                leadership_term_id,
                term_base_log_position,
                log_position,
                timestamp,
            )
        )

    def truncate_to(
        self, log_position: int, leadership_term_id: int | None = None, *, reopen: bool = False
    ) -> tuple[RecordingLogEntry, ...]:
        """``RecordingLog.truncate_to``, persisted (removed records get type -1 in place)."""
        return self.update(lambda log: log.truncate_to(log_position, leadership_term_id, reopen=reopen))

    # ------------------------------------------------------------------------------------- closing

    def close(self) -> None:
        """Release the file (every change is already durable). Idempotent."""
        if self._file is not None:
            file, self._file = self._file, None
            file.close()

    def __enter__(self) -> RecordingLogFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _location(storage: Storage) -> str:
    return f"{storage.location}/{RECORDING_LOG_FILE_NAME}"
