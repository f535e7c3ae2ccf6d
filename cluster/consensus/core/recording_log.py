"""The recording log (``recording.log``): the cluster's history of terms and snapshots.

The rules and the record format are in docs/consensus.md, "Recording log".

Theory of operation
-------------------
The cluster log is one archive recording that grows across leadership terms. ``recording.log`` says
how to read it back: a **TERM** entry per leadership term (the log recording id, the position where the
term began, where it ended -- ``-1`` while it is open) and a **SNAPSHOT** entry per service per snapshot
(the snapshot recording id and the log position it covers). On start-up the consensus module turns it
into a ``RecoveryPlan``: load the newest valid snapshot set, then replay the log from the snapshot's
position to the end of the log recording.

This module is the pure model: ``RecordingLog`` holds the entries and enforces the rules; the bytes are
``encode_entries``/``decode_entries``. It never opens a file -- the driver persists
``RecordingLog.to_bytes()`` after each change (mutating methods return the entries they touched, for a
driver that prefers Aeron's in-place field writes) and hands ``RecordingLog.from_bytes`` what it read.

Entries are kept in Aeron's order: by leadership term, then TERM before SNAPSHOT before
STANDBY_SNAPSHOT; a term's snapshots by log position, then service id *descending*, so a snapshot set
reads ``service n-1, ..., service 0, consensus module (-1)``. Each entry also has an ``entry_index``: its
ordinal in the file, which never changes. The rules, each broken one raising ``RecordingLogError``:

* **TERM**: one valid entry per leadership term id; every TERM uses the same (non-negative) log
  recording id; positions never go backwards: a term starts no earlier than the term before it, and
  exactly where that term ended if it is term N-1 and already closed. Appending term N closes an open
  term N-1 at N's base, and is itself closed at once if term N+1 already exists (Aeron). Committing a
  term's end position keeps it >= its base and equal to the next term's base if there is one.
* **SNAPSHOT**: services' entries are appended first, the consensus module's (service id -1) last, all
  with the same term, term base and position; the term base must match the term's TERM entry if there is
  one; a second *valid* snapshot for the same service, term and position is refused. Appending a
  snapshot that matches an *invalidated* one (same term, base, position, service) revalidates that
  entry in place with the new recording id and timestamp instead of adding one (Aeron).
* **Invalidation** clears the entry's valid flag (bit 31 of the type field on disk); an invalid entry
  is kept but ignored. ``invalidate_latest_snapshot`` invalidates the newest valid snapshot set, so the
  next recovery falls back to the one before it and replays more log.
* ``ensure_coherent`` makes sure the term the node is entering has a TERM entry, back-filling an empty
  TERM (base == end) for each term between the last known one and it -- terms whose elections failed
  or whose entries this node never saw -- and closing the previous term where the new one starts.
* ``truncate_to`` is used when a node's uncommitted tail diverged from the new leader's log
  (docs/consensus.md, "Election"):
  the term holding the cut is closed at the cut and every entry of a later term is removed. Cutting
  below a valid snapshot is refused: a snapshot covers committed log, which Raft never truncates.

Record format (Aeron's ``RecordingLog``; docs/consensus.md, "Recording log"): little-endian, each record
padded to 64 bytes:

    0 recordingId i64 | 8 leadershipTermId i64 | 16 termBaseLogPosition i64 | 24 logPosition i64
    32 timestamp i64 | 40 serviceId i32 | 44 entryType i32 (bit 31 = invalidated; -1 = removed record)
    48 STANDBY_SNAPSHOT only: archiveEndpoint length i32, then that many ASCII bytes

``decode_entries`` skips removed records (type -1) but counts them in ``entry_index``; everything else
that is not exactly this format -- a partial record, an unknown type, a bad endpoint length -- raises
``RecordingLogError`` naming the record and byte offset. A file is at most ``MAX_RECORDS`` records.
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from cluster.consensus.core.errors import RecordingLogError

__all__ = [
    "CM_SERVICE_ID",
    "ENDPOINT_OFFSET",
    "INVALID_FLAG",
    "MAX_ENDPOINT_LENGTH",
    "MAX_RECORDS",
    "NULL_POSITION",
    "NULL_VALUE",
    "RECORD_ALIGNMENT",
    "REMOVED_TYPE",
    "EntryType",
    "RecordingLog",
    "RecordingLogEntry",
    "RecoveryLog",
    "RecoveryPlan",
    "decode_entries",
    "encode_entries",
]

NULL_VALUE = -1
NULL_POSITION = -1
CM_SERVICE_ID = -1  # the consensus module's own snapshot (ConsensusModule.Configuration.SERVICE_ID)

RECORD_ALIGNMENT = 64
MAX_ENTRY_LENGTH = 4096
ENDPOINT_OFFSET = 48
MAX_ENDPOINT_LENGTH = MAX_ENTRY_LENGTH - ENDPOINT_OFFSET - 4
MAX_RECORDS = 1 << 20  # 64 MiB of 64-byte records; a real log holds a few per election and snapshot
INVALID_FLAG = 1 << 31
REMOVED_TYPE = -1

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_HEADER = struct.Struct("<qqqqqii")  # recordingId .. entryType: 48 bytes
_LENGTH = struct.Struct("<i")
_ENDPOINT = re.compile(rb"[!-~]+")  # printable ASCII, no whitespace


class EntryType(enum.IntEnum):
    """The type field of a record (without the invalid flag)."""

    TERM = 0
    SNAPSHOT = 1
    STANDBY_SNAPSHOT = 2


_TYPE_CODES = frozenset(int(entry_type) for entry_type in EntryType)


def _align(length: int) -> int:
    return (length + RECORD_ALIGNMENT - 1) & ~(RECORD_ALIGNMENT - 1)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordingLogError(f"{name}={value!r} is not an int")
    if not low <= value <= high:
        raise RecordingLogError(f"{name}={value} is out of range [{low}, {high}]")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingLogEntry:
    """One record of the recording log. ``log_position`` is -1 for an open TERM; ``service_id`` is -1
    for the consensus module's snapshot (and for TERM entries); ``entry_index`` is the record's ordinal
    in the file. Only STANDBY_SNAPSHOT entries carry an ``archive_endpoint``."""

    recording_id: int
    leadership_term_id: int
    term_base_log_position: int
    log_position: int
    timestamp: int
    service_id: int
    entry_type: EntryType
    is_valid: bool = True
    archive_endpoint: str | None = None
    entry_index: int

    def __post_init__(self) -> None:
        for name in (
            "recording_id",
            "leadership_term_id",
            "term_base_log_position",
            "log_position",
            "timestamp",
        ):
            _check_int(name, getattr(self, name), INT64_MIN, INT64_MAX)
        _check_int("service_id", self.service_id, INT32_MIN, INT32_MAX)
        _check_int("entry_index", self.entry_index, 0, MAX_RECORDS - 1)
        if not isinstance(self.is_valid, bool):
            raise RecordingLogError(f"is_valid={self.is_valid!r} is not a bool")
        try:
            entry_type = EntryType(self.entry_type)
        except ValueError:
            raise RecordingLogError(
                f"entry_type={self.entry_type!r} is not TERM, SNAPSHOT or STANDBY_SNAPSHOT"
            ) from None
        object.__setattr__(self, "entry_type", entry_type)
        endpoint = self.archive_endpoint
        if entry_type is EntryType.STANDBY_SNAPSHOT:
            if not isinstance(endpoint, str) or _ENDPOINT.fullmatch(endpoint.encode("utf-8")) is None:
                raise RecordingLogError(
                    f"entry {self.entry_index}: a STANDBY_SNAPSHOT needs an archive_endpoint of printable "
                    f"ASCII without spaces, not {endpoint!r}"
                )
            if len(endpoint) > MAX_ENDPOINT_LENGTH:
                raise RecordingLogError(
                    f"entry {self.entry_index}: archive_endpoint is {len(endpoint)} characters; "
                    f"at most {MAX_ENDPOINT_LENGTH}"
                )
        elif endpoint is not None:
            raise RecordingLogError(
                f"entry {self.entry_index}: a {entry_type.name} has no archive_endpoint, got {endpoint!r}"
            )

    @property
    def is_term(self) -> bool:
        return self.entry_type is EntryType.TERM

    @property
    def is_snapshot(self) -> bool:
        """A SNAPSHOT entry (a STANDBY_SNAPSHOT is not one: recovery never uses those directly)."""
        return self.entry_type is EntryType.SNAPSHOT

    @property
    def length_bytes(self) -> int:
        """The record's length on disk: 64, or more for a STANDBY_SNAPSHOT with a long endpoint."""
        if self.archive_endpoint is None:
            return RECORD_ALIGNMENT
        return _align(ENDPOINT_OFFSET + _LENGTH.size + len(self.archive_endpoint))


def _sort_key(entry: RecordingLogEntry) -> tuple[int, int, int, int, int]:
    """Aeron's entry order; ``entry_index`` last so that equal keys still sort deterministically."""
    if entry.entry_type is EntryType.TERM:
        return (entry.leadership_term_id, entry.entry_type, entry.entry_index, 0, 0)
    return (
        entry.leadership_term_id,
        entry.entry_type,
        entry.log_position,
        -entry.service_id,
        entry.entry_index,
    )


# ------------------------------------------------------------------------------------------ bytes


def encode_entries(entries: Iterable[RecordingLogEntry], *, record_count: int | None = None) -> bytes:
    """The file bytes for ``entries``, each written at its ``entry_index``.

    Records are written in ``entry_index`` order; an index with no entry (a removed record) becomes a
    64-byte record of type -1, as is every index from the last entry up to ``record_count``.
    """
    by_index: dict[int, RecordingLogEntry] = {}
    for entry in entries:
        if not isinstance(entry, RecordingLogEntry):
            raise RecordingLogError(f"not a RecordingLogEntry: {type(entry).__name__}")
        if entry.entry_index in by_index:
            raise RecordingLogError(f"two entries have entry_index {entry.entry_index}")
        by_index[entry.entry_index] = entry
    count = max(by_index, default=-1) + 1
    if record_count is not None:
        if record_count < count:
            raise RecordingLogError(
                f"record_count={record_count} is below the highest entry_index + 1 ({count})"
            )
        if record_count > MAX_RECORDS:
            raise RecordingLogError(f"record_count={record_count} is above MAX_RECORDS ({MAX_RECORDS})")
        count = record_count
    removed = _HEADER.pack(0, 0, 0, 0, 0, 0, REMOVED_TYPE).ljust(RECORD_ALIGNMENT, b"\0")
    out = bytearray()
    for index in range(count):
        found = by_index.get(index)
        if found is None:
            out += removed
            continue
        entry = found
        raw_type = int(entry.entry_type) | (0 if entry.is_valid else INVALID_FLAG)
        if raw_type > INT32_MAX:
            raw_type -= 1 << 32
        record = _HEADER.pack(
            entry.recording_id,
            entry.leadership_term_id,
            entry.term_base_log_position,
            entry.log_position,
            entry.timestamp,
            entry.service_id,
            raw_type,
        )
        if entry.archive_endpoint is not None:
            endpoint = entry.archive_endpoint.encode("ascii")
            record += _LENGTH.pack(len(endpoint)) + endpoint
        out += record.ljust(entry.length_bytes, b"\0")
    return bytes(out)


def decode_entries(data: bytes | bytearray | memoryview) -> list[RecordingLogEntry]:
    """The entries in file order (removed records skipped); ``RecordingLogError`` on malformed bytes."""
    return _decode(data)[0]


def _decode(data: bytes | bytearray | memoryview) -> tuple[list[RecordingLogEntry], int]:
    """``(entries, record_count)``; the record count includes removed records."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise RecordingLogError(f"recording log bytes must be bytes-like, not {type(data).__name__}")
    view = memoryview(data).cast("B")
    length = len(view)
    entries: list[RecordingLogEntry] = []
    offset = 0
    index = 0
    while offset < length:
        where = f"record {index} at offset {offset}"
        if index >= MAX_RECORDS:
            raise RecordingLogError(f"{where}: more than MAX_RECORDS ({MAX_RECORDS}) records")
        if length - offset < RECORD_ALIGNMENT:
            raise RecordingLogError(
                f"{where}: {length - offset} bytes left, a record is {RECORD_ALIGNMENT} (torn write?)"
            )
        recording_id, term_id, term_base, log_position, timestamp, service_id, raw_type = _HEADER.unpack_from(
            view, offset
        )
        if raw_type == REMOVED_TYPE:
            offset += RECORD_ALIGNMENT
            index += 1
            continue
        type_code = raw_type & (INVALID_FLAG - 1)
        if type_code not in _TYPE_CODES:
            raise RecordingLogError(f"{where}: unknown entry type {type_code} (type field {raw_type:#x})")
        entry_type = EntryType(type_code)
        endpoint: str | None = None
        record_length = RECORD_ALIGNMENT
        if entry_type is EntryType.STANDBY_SNAPSHOT:
            (endpoint_length,) = _LENGTH.unpack_from(view, offset + ENDPOINT_OFFSET)
            if not 1 <= endpoint_length <= MAX_ENDPOINT_LENGTH:
                raise RecordingLogError(
                    f"{where}: STANDBY_SNAPSHOT archive endpoint length {endpoint_length} "
                    f"is not in [1, {MAX_ENDPOINT_LENGTH}]"
                )
            record_length = _align(ENDPOINT_OFFSET + _LENGTH.size + endpoint_length)
            if offset + record_length > length:
                raise RecordingLogError(
                    f"{where}: STANDBY_SNAPSHOT needs {record_length} bytes, {length - offset} left"
                )
            start = offset + ENDPOINT_OFFSET + _LENGTH.size
            raw_endpoint = bytes(view[start : start + endpoint_length])
            if _ENDPOINT.fullmatch(raw_endpoint) is None:
                raise RecordingLogError(
                    f"{where}: archive endpoint {raw_endpoint[:120]!r} is not printable ASCII"
                )
            endpoint = raw_endpoint.decode("ascii")
        entries.append(
            RecordingLogEntry(
                recording_id=recording_id,
                leadership_term_id=term_id,
                term_base_log_position=term_base,
                log_position=log_position,
                timestamp=timestamp,
                service_id=service_id,
                entry_type=entry_type,
                is_valid=(raw_type & INVALID_FLAG) == 0,
                archive_endpoint=endpoint,
                entry_index=index,
            )
        )
        offset += record_length
        index += 1
    return entries, index


# ---------------------------------------------------------------------------------- recovery plan


@dataclass(frozen=True, slots=True)
class RecoveryLog:
    """The part of the log recording to replay on recovery: from ``start_position`` (the snapshot's
    position, else the recording's start) to ``stop_position`` (the recording's stop position)."""

    recording_id: int
    leadership_term_id: int
    term_base_log_position: int
    log_position: int
    start_position: int
    stop_position: int


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    """What to load and replay on start-up (docs/consensus.md, "Recording log", "Recovery plan").

    ``snapshots`` is the newest valid snapshot set ordered by service id: the consensus module's (-1)
    first, then services 0..n-1; empty if there is none. ``log`` is ``None`` if there is no TERM entry.
    """

    last_leadership_term_id: int
    last_term_base_log_position: int
    appended_log_position: int
    committed_log_position: int
    snapshots: tuple[RecordingLogEntry, ...]
    log: RecoveryLog | None

    @property
    def has_replay(self) -> bool:
        """Is there log beyond the snapshot to replay?"""
        return self.log is not None and self.log.stop_position > self.log.start_position

    def snapshot_for(self, service_id: int) -> RecordingLogEntry | None:
        """The snapshot entry for ``service_id`` (-1 = consensus module), or ``None``."""
        for snapshot in self.snapshots:
            if snapshot.service_id == service_id:
                return snapshot
        return None


# ---------------------------------------------------------------------------------- recording log


class RecordingLog:
    """The entries of a recording log, in Aeron's order, and the operations that keep it coherent.

    Mutable (like Aeron's); every change either completes or raises ``RecordingLogError`` leaving the
    log unchanged. ``entries`` is a tuple snapshot; ``copy()`` gives an independent log.
    """

    __slots__ = ("_entries", "_next_entry_index")

    def __init__(
        self, entries: Iterable[RecordingLogEntry] = (), *, next_entry_index: int | None = None
    ) -> None:
        items = list(entries)
        indices: set[int] = set()
        term_ids: dict[int, int] = {}
        recording_id: int | None = None
        for entry in items:
            if not isinstance(entry, RecordingLogEntry):
                raise RecordingLogError(f"not a RecordingLogEntry: {type(entry).__name__}")
            if entry.entry_index in indices:
                raise RecordingLogError(f"two entries have entry_index {entry.entry_index}")
            indices.add(entry.entry_index)
            if entry.is_term:
                if entry.recording_id < 0:
                    raise RecordingLogError(
                        f"entry {entry.entry_index}: TERM recording_id={entry.recording_id}"
                    )
                if recording_id is None:
                    recording_id = entry.recording_id
                elif entry.recording_id != recording_id:
                    raise RecordingLogError(
                        f"entry {entry.entry_index}: TERM recording_id={entry.recording_id}, "
                        f"but other TERM entries use {recording_id}"
                    )
                if entry.is_valid:
                    other = term_ids.setdefault(entry.leadership_term_id, entry.entry_index)
                    if other != entry.entry_index:
                        raise RecordingLogError(
                            f"entries {other} and {entry.entry_index} are both valid TERM entries "
                            f"for leadership_term_id={entry.leadership_term_id}"
                        )
        lowest_next = max(indices, default=-1) + 1
        if next_entry_index is None:
            next_entry_index = lowest_next
        elif not lowest_next <= next_entry_index <= MAX_RECORDS:
            raise RecordingLogError(
                f"next_entry_index={next_entry_index} is not in [{lowest_next}, {MAX_RECORDS}]"
            )
        items.sort(key=_sort_key)
        self._entries = items
        self._next_entry_index = next_entry_index

    # ------------------------------------------------------------------ bytes

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> RecordingLog:
        """Load a recording log from its file bytes (removed records keep their indices)."""
        entries, record_count = _decode(data)
        return cls(entries, next_entry_index=record_count)

    def to_bytes(self) -> bytes:
        """The file bytes: every entry at its ``entry_index``, removed records as type -1."""
        return encode_entries(self._entries, record_count=self._next_entry_index)

    # ------------------------------------------------------------------ views

    @property
    def entries(self) -> tuple[RecordingLogEntry, ...]:
        return tuple(self._entries)

    @property
    def next_entry_index(self) -> int:
        return self._next_entry_index

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[RecordingLogEntry]:
        return iter(tuple(self._entries))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecordingLog):
            return NotImplemented
        return self._entries == other._entries and self._next_entry_index == other._next_entry_index

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RecordingLog({self._entries!r}, next_entry_index={self._next_entry_index})"

    def copy(self) -> RecordingLog:
        return RecordingLog(self._entries, next_entry_index=self._next_entry_index)

    @property
    def term_recording_id(self) -> int:
        """The log recording id every TERM entry uses, or -1 if there is no TERM entry."""
        for entry in self._entries:
            if entry.is_term:
                return entry.recording_id
        return NULL_VALUE

    def find_term(self, leadership_term_id: int) -> RecordingLogEntry | None:
        """The valid TERM entry for ``leadership_term_id``, or ``None``."""
        for entry in self._entries:
            if entry.is_term and entry.is_valid and entry.leadership_term_id == leadership_term_id:
                return entry
        return None

    def get_term(self, leadership_term_id: int) -> RecordingLogEntry:
        """The valid TERM entry for ``leadership_term_id``; ``RecordingLogError`` if there is none."""
        entry = self.find_term(leadership_term_id)
        if entry is None:
            raise RecordingLogError(f"no TERM entry for leadership_term_id={leadership_term_id}")
        return entry

    def find_last_term(self) -> RecordingLogEntry | None:
        """The valid TERM entry with the highest leadership term id, or ``None``."""
        for entry in reversed(self._entries):
            if entry.is_term and entry.is_valid:
                return entry
        return None

    def _valid_terms(self) -> list[RecordingLogEntry]:
        return [entry for entry in self._entries if entry.is_term and entry.is_valid]

    @property
    def terms(self) -> tuple[RecordingLogEntry, ...]:
        """The valid TERM entries, by leadership term id: the log's term history."""
        return tuple(self._valid_terms())

    def _neighbours(
        self, leadership_term_id: int
    ) -> tuple[RecordingLogEntry | None, RecordingLogEntry | None]:
        """The valid TERM entries just below and just above ``leadership_term_id``."""
        below: RecordingLogEntry | None = None
        for entry in self._valid_terms():
            if entry.leadership_term_id < leadership_term_id:
                below = entry
            elif entry.leadership_term_id > leadership_term_id:
                return below, entry
        return below, None

    # ------------------------------------------------------------------ changes

    def _check_room(self) -> None:
        if self._next_entry_index >= MAX_RECORDS:
            raise RecordingLogError(f"the recording log is full ({MAX_RECORDS} records)")

    def _add(self, entry: RecordingLogEntry) -> RecordingLogEntry:
        self._check_room()
        self._entries.append(entry)
        self._entries.sort(key=_sort_key)
        self._next_entry_index += 1
        return entry

    def _set(self, old: RecordingLogEntry, new: RecordingLogEntry) -> RecordingLogEntry:
        self._entries[self._entries.index(old)] = new
        self._entries.sort(key=_sort_key)
        return new

    def append_term(
        self, recording_id: int, leadership_term_id: int, term_base_log_position: int, timestamp: int
    ) -> RecordingLogEntry:
        """Append the TERM entry for ``leadership_term_id``; closes an open term N-1 at this term's base."""
        where = f"TERM leadership_term_id={leadership_term_id}"
        self._check_room()
        _check_int("recording_id", recording_id, 0, INT64_MAX)
        _check_int("leadership_term_id", leadership_term_id, 0, INT64_MAX)
        _check_int("term_base_log_position", term_base_log_position, 0, INT64_MAX)
        _check_int("timestamp", timestamp, INT64_MIN, INT64_MAX)
        expected = self.term_recording_id
        if expected != NULL_VALUE and recording_id != expected:
            raise RecordingLogError(
                f"{where}: recording_id={recording_id}, but the log's TERM entries use {expected}"
            )
        existing = self.find_term(leadership_term_id)
        if existing is not None:
            raise RecordingLogError(f"{where}: duplicate; entry {existing.entry_index} is that term")
        below, above = self._neighbours(leadership_term_id)
        if below is not None:
            _check_follows(where, term_base_log_position, below, leadership_term_id)
        log_position = NULL_POSITION
        if above is not None:
            if term_base_log_position > above.term_base_log_position:
                raise RecordingLogError(
                    f"{where}: term_base_log_position={term_base_log_position} is after the base "
                    f"{above.term_base_log_position} of later term {above.leadership_term_id}"
                )
            if above.leadership_term_id == leadership_term_id + 1:
                log_position = above.term_base_log_position
        if (
            below is not None
            and below.leadership_term_id == leadership_term_id - 1
            and below.log_position == -1
        ):
            self._set(below, replace(below, log_position=term_base_log_position))
        return self._add(
            RecordingLogEntry(
                recording_id=recording_id,
                leadership_term_id=leadership_term_id,
                term_base_log_position=term_base_log_position,
                log_position=log_position,
                timestamp=timestamp,
                service_id=NULL_VALUE,
                entry_type=EntryType.TERM,
                entry_index=self._next_entry_index,
            )
        )

    def commit_log_position(self, leadership_term_id: int, log_position: int) -> RecordingLogEntry:
        """Record where term ``leadership_term_id`` ended (its TERM entry's ``log_position``)."""
        where = f"commit leadership_term_id={leadership_term_id}"
        _check_int("log_position", log_position, 0, INT64_MAX)
        term = self.find_term(leadership_term_id)
        if term is None:
            raise RecordingLogError(f"{where}: no TERM entry for that term")
        if log_position < term.term_base_log_position:
            raise RecordingLogError(
                f"{where}: log_position={log_position} is before its base {term.term_base_log_position}"
            )
        _, after = self._neighbours(leadership_term_id)
        if after is not None and (
            log_position > after.term_base_log_position
            or (
                after.leadership_term_id == leadership_term_id + 1
                and log_position != after.term_base_log_position
            )
        ):
            raise RecordingLogError(
                f"{where}: log_position={log_position}, but term {after.leadership_term_id} "
                f"starts at {after.term_base_log_position}"
            )
        if term.log_position == log_position:
            return term
        return self._set(term, replace(term, log_position=log_position))

    def append_snapshot(
        self,
        recording_id: int,
        leadership_term_id: int,
        term_base_log_position: int,
        log_position: int,
        timestamp: int,
        service_id: int,
    ) -> RecordingLogEntry:
        """Append one service's (or, with ``service_id`` -1, the consensus module's) snapshot entry."""
        return self._append_snapshot(
            EntryType.SNAPSHOT,
            recording_id,
            leadership_term_id,
            term_base_log_position,
            log_position,
            timestamp,
            service_id,
            None,
        )

    def put_snapshot(
        self,
        recording_id: int,
        leadership_term_id: int,
        term_base_log_position: int,
        log_position: int,
        timestamp: int,
        service_id: int,
    ) -> RecordingLogEntry:
        """``append_snapshot``, superseding a valid entry of the same service, term and position: a crash
        between the entries of a snapshot leaves some of them, and the snapshot taken again at that
        position (on the member's next read of its action) replaces them."""
        for entry in self._entries:
            if (
                entry.is_valid
                and entry.entry_type is EntryType.SNAPSHOT
                and entry.service_id == service_id
                and entry.leadership_term_id == leadership_term_id
                and entry.log_position == log_position
            ):
                self.invalidate_entry(entry.entry_index)
        return self.append_snapshot(
            recording_id, leadership_term_id, term_base_log_position, log_position, timestamp, service_id
        )

    def append_standby_snapshot(
        self,
        recording_id: int,
        leadership_term_id: int,
        term_base_log_position: int,
        log_position: int,
        timestamp: int,
        service_id: int,
        archive_endpoint: str,
    ) -> RecordingLogEntry:
        """Append a STANDBY_SNAPSHOT entry: a snapshot held by the archive at ``archive_endpoint``."""
        return self._append_snapshot(
            EntryType.STANDBY_SNAPSHOT,
            recording_id,
            leadership_term_id,
            term_base_log_position,
            log_position,
            timestamp,
            service_id,
            archive_endpoint,
        )

    def _append_snapshot(
        self,
        entry_type: EntryType,
        recording_id: int,
        leadership_term_id: int,
        term_base_log_position: int,
        log_position: int,
        timestamp: int,
        service_id: int,
        archive_endpoint: str | None,
    ) -> RecordingLogEntry:
        where = f"{entry_type.name} service_id={service_id} leadership_term_id={leadership_term_id}"
        _check_int("recording_id", recording_id, 0, INT64_MAX)
        _check_int("leadership_term_id", leadership_term_id, 0, INT64_MAX)
        _check_int("term_base_log_position", term_base_log_position, 0, INT64_MAX)
        _check_int("log_position", log_position, 0, INT64_MAX)
        _check_int("timestamp", timestamp, INT64_MIN, INT64_MAX)
        _check_int("service_id", service_id, CM_SERVICE_ID, INT32_MAX)
        if log_position < term_base_log_position:
            raise RecordingLogError(
                f"{where}: log_position={log_position} < term_base_log_position={term_base_log_position}"
            )
        term = self.find_term(leadership_term_id)
        if term is not None and term.term_base_log_position != term_base_log_position:
            raise RecordingLogError(
                f"{where}: term_base_log_position={term_base_log_position}, but the term's TERM entry "
                f"says {term.term_base_log_position}"
            )
        revalidate: RecordingLogEntry | None = None
        for entry in reversed(self._entries):
            if (
                entry.entry_type is entry_type
                and entry.leadership_term_id == leadership_term_id
                and entry.log_position == log_position
                and entry.service_id == service_id
            ):
                if entry.is_valid:
                    raise RecordingLogError(
                        f"{where}: entry {entry.entry_index} is already valid at log_position={log_position}"
                    )
                if entry.term_base_log_position == term_base_log_position and revalidate is None:
                    revalidate = entry
        if revalidate is not None:
            return self._set(
                revalidate,
                replace(
                    revalidate,
                    recording_id=recording_id,
                    timestamp=timestamp,
                    is_valid=True,
                    archive_endpoint=archive_endpoint,
                ),
            )
        return self._add(
            RecordingLogEntry(
                recording_id=recording_id,
                leadership_term_id=leadership_term_id,
                term_base_log_position=term_base_log_position,
                log_position=log_position,
                timestamp=timestamp,
                service_id=service_id,
                entry_type=entry_type,
                archive_endpoint=archive_endpoint,
                entry_index=self._next_entry_index,
            )
        )

    def invalidate_entry(self, entry_index: int) -> RecordingLogEntry:
        """Mark the entry with ``entry_index`` invalid (idempotent); an invalid TERM no longer counts."""
        for entry in self._entries:
            if entry.entry_index == entry_index:
                if not entry.is_valid:
                    return entry
                return self._set(entry, replace(entry, is_valid=False))
        raise RecordingLogError(f"no entry with entry_index={entry_index}")

    def invalidate_latest_snapshot(self) -> tuple[RecordingLogEntry, ...]:
        """Invalidate the newest valid snapshot set (the consensus module's entry and every valid service
        snapshot with its term and position); returns them, consensus module first, or ``()`` if none."""
        latest = self._latest_cm_snapshot()
        if latest is None:
            return ()
        if self.find_term(latest.leadership_term_id) is None:
            raise RecordingLogError(
                f"snapshot entry {latest.entry_index}: no TERM entry for its "
                f"leadership_term_id={latest.leadership_term_id}"
            )
        members = [latest] + [
            entry
            for entry in self._entries
            if entry.is_snapshot
            and entry.is_valid
            and entry.service_id >= 0
            and entry.leadership_term_id == latest.leadership_term_id
            and entry.log_position == latest.log_position
        ]
        members.sort(key=lambda entry: entry.service_id)
        return tuple(self._set(entry, replace(entry, is_valid=False)) for entry in members)

    def _latest_cm_snapshot(self) -> RecordingLogEntry | None:
        for entry in reversed(self._entries):
            if entry.is_snapshot and entry.is_valid and entry.service_id == CM_SERVICE_ID:
                return entry
        return None

    def latest_snapshots(self, service_count: int) -> tuple[RecordingLogEntry, ...]:
        """The newest valid snapshot set: the consensus module's entry, then services 0..n-1 (same term
        and position, before it in the log); ``()`` if there is no valid consensus module snapshot.
        A set missing a service's entry raises ``RecordingLogError``."""
        _check_int("service_count", service_count, 0, INT32_MAX)
        latest = self._latest_cm_snapshot()
        if latest is None:
            return ()
        cm_position = self._entries.index(latest)
        found: dict[int, RecordingLogEntry] = {}
        for entry in self._entries[:cm_position]:
            if (
                entry.is_snapshot
                and entry.is_valid
                and 0 <= entry.service_id < service_count
                and entry.leadership_term_id == latest.leadership_term_id
                and entry.log_position == latest.log_position
            ):
                found[entry.service_id] = entry
        missing = [service_id for service_id in range(service_count) if service_id not in found]
        if missing:
            raise RecordingLogError(
                f"snapshot entry {latest.entry_index} (leadership_term_id={latest.leadership_term_id}, "
                f"log_position={latest.log_position}) has no valid snapshot for service "
                f"{', '.join(map(str, missing))} of {service_count}"
            )
        return (latest, *(found[service_id] for service_id in range(service_count)))

    def latest_snapshot_set(self) -> tuple[RecordingLogEntry, ...]:
        """The newest valid snapshot set without a service count: the consensus module's entry, then the
        entries of services 0, 1, 2, ... found where Aeron's order puts them -- just before it, each a
        valid SNAPSHOT with its term and position -- for as long as they go on. ``()`` if there is no
        valid consensus module snapshot. This is how Aeron's ClusterTool finds the set it seeds a new log
        from; ``latest_snapshots`` is the check a node makes, knowing how many services it runs."""
        latest = self._latest_cm_snapshot()
        if latest is None:
            return ()
        found = [latest]
        for entry in reversed(self._entries[: self._entries.index(latest)]):
            if not (
                entry.is_snapshot
                and entry.is_valid
                and entry.service_id == len(found) - 1
                and entry.leadership_term_id == latest.leadership_term_id
                and entry.log_position == latest.log_position
            ):
                break
            found.append(entry)
        return tuple(found)

    @property
    def is_sorted(self) -> bool:
        """Whether the file holds the entries in Aeron's order: entry ``i`` of ``entries`` is record ``i``
        (Aeron's ClusterTool test; trailing removed records do not count)."""
        return all(entry.entry_index == index for index, entry in enumerate(self._entries))

    def sorted_copy(self) -> RecordingLog:
        """The same entries renumbered in Aeron's order, removed records dropped: what ClusterTool's
        sort-recording-log writes (a node reads the same log from it; only the record order changes)."""
        return RecordingLog(replace(entry, entry_index=index) for index, entry in enumerate(self._entries))

    def seeded_from_latest_snapshot(self) -> RecordingLog:
        """A new log holding only the newest valid snapshot set (``latest_snapshot_set``), as Aeron's
        ClusterTool seed-recording-log-from-snapshot writes it: each entry keeps its recording id, term,
        timestamp and service id, its term base and log position become 0, and there are no TERM entries,
        so the log of a node started on it begins afresh at position 0 from the snapshot's state.
        ``RecordingLogError`` if there is no valid snapshot to seed from."""
        snapshot_set = self.latest_snapshot_set()
        if not snapshot_set:
            raise RecordingLogError("no valid consensus module snapshot to seed a recording log from")
        return RecordingLog(
            replace(entry, term_base_log_position=0, log_position=0, entry_index=index)
            for index, entry in enumerate(reversed(snapshot_set))
        )

    def is_seeded(self, entry: RecordingLogEntry) -> bool:
        """Whether snapshot ``entry`` is one ``seeded_from_latest_snapshot`` wrote: at term base and log
        position 0, with no TERM entry for its term. Such a snapshot begins a new log at position 0,
        whatever position its own BEGIN marker names."""
        return (
            entry.is_snapshot
            and entry.log_position == 0
            and entry.term_base_log_position == 0
            and self.find_term(entry.leadership_term_id) is None
        )

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
        """Make sure term ``leadership_term_id`` has a TERM entry, back-filling the terms before it.

        * No TERM yet: terms ``max(0, initial_log_leadership_term_id)`` .. N-1 are appended starting at
          ``initial_term_base_log_position`` (the log this node recovered from), then term N at
          ``term_base_log_position``; term N-1 thus spans the initial base to N's base.
        * Last TERM below N: an open last term is first closed at ``term_base_log_position`` (which
          must then be given, not -1); then every missing term up to N is appended, empty, at the
          last term's end, and N starts there too. A given ``term_base_log_position`` must equal it.
        * Term N or a later one known: nothing is appended.

        In every case ``log_position`` (unless -1) is then committed as term N's end. Returns term N's
        entry. On any error the log is left as it was.
        """
        where = f"ensure_coherent leadership_term_id={leadership_term_id}"
        _check_int("leadership_term_id", leadership_term_id, 0, INT64_MAX)
        _check_int("term_base_log_position", term_base_log_position, NULL_POSITION, INT64_MAX)
        _check_int("log_position", log_position, NULL_POSITION, INT64_MAX)
        before = (list(self._entries), self._next_entry_index)
        try:
            last = self.find_last_term()
            if last is None:
                if term_base_log_position == NULL_POSITION:
                    raise RecordingLogError(f"{where}: no TERM entries and no term_base_log_position given")
                for term_id in range(max(0, initial_log_leadership_term_id), leadership_term_id):
                    self.append_term(recording_id, term_id, initial_term_base_log_position, timestamp)
                self.append_term(recording_id, leadership_term_id, term_base_log_position, timestamp)
            elif last.leadership_term_id < leadership_term_id:
                if last.log_position == NULL_POSITION:
                    if term_base_log_position == NULL_POSITION:
                        raise RecordingLogError(
                            f"{where}: last term {last.leadership_term_id} is open and no "
                            "term_base_log_position was given to close it"
                        )
                    last = self.commit_log_position(last.leadership_term_id, term_base_log_position)
                base = last.log_position
                if term_base_log_position not in (NULL_POSITION, base):
                    raise RecordingLogError(
                        f"{where}: term_base_log_position={term_base_log_position}, but the last term "
                        f"{last.leadership_term_id} ended at {base}"
                    )
                for term_id in range(last.leadership_term_id + 1, leadership_term_id + 1):
                    self.append_term(recording_id, term_id, base, timestamp)
            if self.find_term(leadership_term_id) is None:
                raise RecordingLogError(
                    f"{where}: it has no TERM entry but a later term does "
                    "(ensure_coherent back-fills only after the last term)"
                )
            if log_position != NULL_POSITION:
                return self.commit_log_position(leadership_term_id, log_position)
            return self.get_term(leadership_term_id)
        except RecordingLogError:
            self._entries, self._next_entry_index = before
            raise

    def truncate_to(
        self, log_position: int, leadership_term_id: int | None = None, *, reopen: bool = False
    ) -> tuple[RecordingLogEntry, ...]:
        """Cut the log's history at ``log_position`` after the local log recording was truncated there.

        The term holding the cut -- ``leadership_term_id``, or by default the last valid term starting
        at or before ``log_position`` -- is closed at ``log_position`` (it must start at or before it,
        and not have ended before it), and every entry of a later term is removed (TERM entries, valid or
        not, and invalid snapshots). With ``reopen`` the holding term is left open instead (its end
        unknown again), for a cut inside a term that goes on past the cut in the leader's log.
        ``leadership_term_id=NULL_VALUE`` says no term holds the cut: every term must start at or after
        it, and every entry goes. Refused if a valid snapshot lies beyond the cut or in a later term.
        Returns the removed entries.
        """
        _check_int("log_position", log_position, 0, INT64_MAX)
        if leadership_term_id == NULL_VALUE:
            where = f"truncate_to log_position={log_position} with no term holding it"
            for entry in self._entries:
                if entry.is_valid and entry.is_term and entry.term_base_log_position < log_position:
                    raise RecordingLogError(
                        f"{where}: term {entry.leadership_term_id} starts before it, at "
                        f"{entry.term_base_log_position}"
                    )
                if entry.is_valid and not entry.is_term:
                    raise RecordingLogError(f"{where}: valid snapshot entry {entry.entry_index} would go")
            removed = tuple(self._entries)
            self._entries = []
            return removed
        if leadership_term_id is None:
            candidates = [
                entry for entry in self._valid_terms() if entry.term_base_log_position <= log_position
            ]
            if not candidates:
                raise RecordingLogError(
                    f"truncate_to log_position={log_position}: no term starts at or before it"
                )
            term = candidates[-1]
        else:
            term = self.get_term(leadership_term_id)
        where = f"truncate_to log_position={log_position} in leadership_term_id={term.leadership_term_id}"
        if term.term_base_log_position > log_position:
            raise RecordingLogError(f"{where}: the term starts later, at {term.term_base_log_position}")
        if term.log_position != NULL_POSITION and term.log_position < log_position:
            raise RecordingLogError(
                f"{where}: the term already ended at {term.log_position}; this would extend it"
            )
        for entry in self._entries:
            if (
                entry.is_valid
                and not entry.is_term
                and (entry.log_position > log_position or entry.leadership_term_id > term.leadership_term_id)
            ):
                raise RecordingLogError(
                    f"{where}: valid snapshot entry {entry.entry_index} (leadership_term_id="
                    f"{entry.leadership_term_id}, log_position={entry.log_position}) is beyond the cut"
                )
        removed = tuple(
            entry for entry in self._entries if entry.leadership_term_id > term.leadership_term_id
        )
        self._entries = [
            entry for entry in self._entries if entry.leadership_term_id <= term.leadership_term_id
        ]
        end = NULL_POSITION if reopen else log_position
        if term.log_position != end:
            self._set(term, replace(term, log_position=end))
        return removed

    # ------------------------------------------------------------------ recovery

    def recovery_plan(
        self, service_count: int, log_stop_position: int, *, log_start_position: int = 0
    ) -> RecoveryPlan:
        """The recovery plan (Aeron's ``RecordingLog.createRecoveryPlan``): the newest valid snapshot set and
        the log to replay after it.

        ``log_stop_position`` is the archive's stop position of the log recording (the driver asks the
        archive; -1 is accepted only when there is no TERM entry); ``log_start_position`` its start.
        Values: with a snapshot, term and positions start from it; with a TERM entry, the last term
        gives the term id and base, the appended position is the recording's stop position, and the
        committed position is that term's end if known, else the snapshot's position (else 0).
        """
        snapshots = self.latest_snapshots(service_count)
        _check_int("log_stop_position", log_stop_position, NULL_POSITION, INT64_MAX)
        _check_int("log_start_position", log_start_position, 0, INT64_MAX)
        last_term_id = NULL_VALUE
        last_term_base = 0
        appended = 0
        committed = 0
        if snapshots:
            snapshot = snapshots[0]
            last_term_id = snapshot.leadership_term_id
            last_term_base = snapshot.term_base_log_position
            appended = committed = snapshot.log_position
        log: RecoveryLog | None = None
        term = self.find_last_term()
        if term is not None:
            if log_stop_position == NULL_POSITION:
                raise RecordingLogError(
                    f"recovery plan: TERM entry {term.entry_index} needs the stop position of log "
                    f"recording {term.recording_id}, got -1"
                )
            log = RecoveryLog(
                recording_id=term.recording_id,
                leadership_term_id=term.leadership_term_id,
                term_base_log_position=term.term_base_log_position,
                log_position=term.log_position,
                start_position=snapshots[0].log_position if snapshots else log_start_position,
                stop_position=log_stop_position,
            )
            last_term_id = term.leadership_term_id
            last_term_base = term.term_base_log_position
            appended = log_stop_position
            if term.log_position != NULL_POSITION:
                committed = term.log_position
        return RecoveryPlan(
            last_leadership_term_id=last_term_id,
            last_term_base_log_position=last_term_base,
            appended_log_position=appended,
            committed_log_position=committed,
            snapshots=snapshots,
            log=log,
        )


def _check_follows(where: str, base: int, below: RecordingLogEntry, leadership_term_id: int) -> None:
    """A term starting at ``base`` may follow ``below``: not earlier than it started, nor than it ended;
    exactly where it ended if it is the term just before and already closed."""
    if base < below.term_base_log_position:
        raise RecordingLogError(
            f"{where}: term_base_log_position={base} goes backwards from term "
            f"{below.leadership_term_id}'s base {below.term_base_log_position}"
        )
    if below.log_position == NULL_POSITION:
        return
    if below.leadership_term_id == leadership_term_id - 1 and base != below.log_position:
        raise RecordingLogError(
            f"{where}: term_base_log_position={base}, but term {below.leadership_term_id} ended at "
            f"{below.log_position} (truncate_to first if the log was cut)"
        )
    if base < below.log_position:
        raise RecordingLogError(
            f"{where}: term_base_log_position={base} is before term {below.leadership_term_id}'s end "
            f"{below.log_position}"
        )
