"""What every Aeron mark file shares: the liveness rule, the version number, the distinct error log, and
the order in which one is created, kept alive and closed.

Theory of operation
-------------------
A mark file says which process owns a directory and whether it is still alive. The archive's
(``archive-mark.dat``, ``cluster.archive.markfile``) and the cluster's (``cluster-mark.dat`` and
``cluster-mark-service-<id>.dat``, ``cluster.consensus.files.mark_file``) differ only in their SBE header
(another schema, other fields); around it they are the same file:

    0              the header: an SBE message header and block whose ``version`` is an int32 at offset 8
                   and whose ``activityTimestamp`` (epoch ms) an int64 at offset 16, then its strings
    headerLength   the distinct error log, ``errorBufferLength`` bytes

**Liveness.** The owner moves the activity timestamp forward while it runs and writes ``-1`` there when
it closes cleanly. A timestamp within the liveness timeout (10 s by default) of now belongs to a live
process (``is_active``), which a second one must not disturb.

**Creation order.** The new header is written with ``version`` 0 over a file cut to nothing and grown to
its full length (so the old error log goes), synced, the directory synced, and only then is the
version written and synced: a reader that finds version 0 knows the file is not initialised yet. A
change afterwards is written as the one byte range in which the newly encoded header differs from the
old one (``write_changes``), so keeping the file alive writes 8 bytes.

**The error log** holds one record per distinct error, each aligned to 8 bytes (Agrona's layout)::

    0 length i32 (of the record, header included; 0 ends the log) | 4 observationCount i32
    8 lastObservationTimestamp i64 | 16 firstObservationTimestamp i64 | 24 the error text, UTF-8

A repeated error (the same text) is not written again: its count goes up and its last timestamp moves.
The record's length is written last, so a reader never sees half a record.

Everything here is independent of the header's schema: the callers encode and decode their headers and
pass a ``FileErrorFactory`` that makes their own error type.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any, Protocol

from cluster.storage.api import Storage, StorageFile, SyncLevel
from cluster.storage.errors import StorageError

__all__ = [
    "DEFAULT_LIVENESS_TIMEOUT_MS",
    "ERROR_RECORD_ALIGNMENT",
    "ERROR_RECORD_HEADER_LENGTH",
    "ErrorObservation",
    "FileErrorFactory",
    "MarkFileWriter",
    "check_region",
    "check_settings",
    "compose_version",
    "is_active",
    "read_error_log",
    "read_header_region",
    "read_liveness",
    "refuse_if_active",
    "version_text",
    "write_changes",
]

DEFAULT_LIVENESS_TIMEOUT_MS = 10_000
ERROR_RECORD_HEADER_LENGTH = 24
ERROR_RECORD_ALIGNMENT = 8

# Where every mark file keeps the two fields a second process reads before trusting anything else: the
# block starts after an 8-byte SBE message header.
VERSION_OFFSET = 8
ACTIVITY_TIMESTAMP_OFFSET = 16
_VERSION = struct.Struct("<i")
_TIMESTAMP = struct.Struct("<q")
# The error log's record header (not an SBE record: Agrona's own layout).
_ERROR_RECORD = struct.Struct("<iiqq")


class FileErrorFactory(Protocol):
    """Makes the caller's error about the bytes of a file (``MarkFileError``, ``ClusterMarkFileError``)."""

    def __call__(
        self, reason: str, *, file: str | None = None, offset: int | None = None, field: str | None = None
    ) -> Exception: ...


def compose_version(major: int, minor: int, patch: int) -> int:
    """Aeron's semantic version as one int: ``major << 16 | minor << 8 | patch``."""
    return (major & 0xFF) << 16 | (minor & 0xFF) << 8 | (patch & 0xFF)


def version_text(version: int) -> str:
    """``"3.1.0"`` for 196864."""
    return f"{version >> 16 & 0xFF}.{version >> 8 & 0xFF}.{version & 0xFF}"


def is_active(activity_timestamp: int, now_ms: int, liveness_timeout_ms: int) -> bool:
    """Whether a mark file whose activity timestamp is ``activity_timestamp`` belongs to a live process:
    its age ``now_ms - activity_timestamp`` is at most the timeout. ``-1``, a clean close, is never
    live. A timestamp in the future is live only within the timeout too: both processes run on the
    machine that holds the directory, so they share a clock, and a timestamp further ahead is garbage
    (a write a crash tore), which must not lock the directory until the clock catches up. Aeron counts
    any future timestamp as live."""
    return activity_timestamp != -1 and abs(now_ms - activity_timestamp) <= liveness_timeout_ms


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) & ~(alignment - 1)


def write_changes(file: StorageFile, offset: int, old: bytes, new: bytes) -> bool:
    """Write the one byte range in which ``new`` differs from ``old`` (same length); whether any did."""
    first = next((i for i in range(len(new)) if old[i] != new[i]), None)
    if first is None:
        return False
    last = next(i for i in range(len(new) - 1, -1, -1) if old[i] != new[i])
    file.write(offset + first, new[first : last + 1])
    return True


@dataclass(frozen=True, slots=True)
class ErrorObservation:
    """One record of a distinct error log: an error seen ``observation_count`` times."""

    offset: int
    observation_count: int
    first_observation_timestamp: int
    last_observation_timestamp: int
    text: str

    def to_json(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "observationCount": self.observation_count,
            "firstObservationTimestamp": self.first_observation_timestamp,
            "lastObservationTimestamp": self.last_observation_timestamp,
            "text": self.text,
        }


def read_error_log(
    buffer: bytes | bytearray | memoryview, *, file: str, base: int, error: FileErrorFactory
) -> list[ErrorObservation]:
    """The records of a distinct error log held in ``buffer``; a zero length ends the log.

    ``base`` is where ``buffer`` starts in its file (for offsets and messages). A record whose length is
    shorter than its header or runs past the buffer raises ``error(...)``."""
    view = memoryview(buffer).cast("B")
    out: list[ErrorObservation] = []
    offset = 0
    while offset + ERROR_RECORD_HEADER_LENGTH <= len(view):
        length, count, last, first = _ERROR_RECORD.unpack_from(view, offset)
        if length == 0:
            break
        if length < ERROR_RECORD_HEADER_LENGTH or offset + length > len(view):
            raise error(
                f"error record length {length} is outside {ERROR_RECORD_HEADER_LENGTH}..{len(view) - offset}",
                file=file,
                offset=base + offset,
                field="errorLog.length",
            )
        text = bytes(view[offset + ERROR_RECORD_HEADER_LENGTH : offset + length]).decode("utf-8", "replace")
        out.append(ErrorObservation(base + offset, count, first, last, text))
        offset += _align(length, ERROR_RECORD_ALIGNMENT)
    return out


def read_liveness(storage: Storage, name: str) -> tuple[int, int] | None:
    """``(version, activityTimestamp)`` of the mark file ``name``, read at their fixed places without
    trusting the rest of the header; ``None`` when there is no file or it is too short to hold them."""
    try:
        with storage.open(name) as file:
            data = file.read(0, min(file.size(), ACTIVITY_TIMESTAMP_OFFSET + _TIMESTAMP.size))
    except StorageError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    if len(data) < ACTIVITY_TIMESTAMP_OFFSET + _TIMESTAMP.size:
        return None
    return _VERSION.unpack_from(data, VERSION_OFFSET)[0], _TIMESTAMP.unpack_from(
        data, ACTIVITY_TIMESTAMP_OFFSET
    )[0]


def check_settings(
    liveness_timeout_ms: int,
    error_buffer_length: int,
    header_length: int,
    location: str,
    error: FileErrorFactory,
) -> None:
    """``error(...)`` unless the liveness timeout is positive and the error log fits an int32 length."""
    if liveness_timeout_ms <= 0:
        raise error(f"liveness timeout {liveness_timeout_ms} ms is not positive", file=location)
    if not 0 < error_buffer_length <= 0x7FFF_FFFF - header_length:
        raise error(
            f"error buffer length {error_buffer_length} is outside 1..{0x7FFF_FFFF - header_length}",
            file=location,
        )


def read_header_region(
    storage: Storage,
    name: str,
    header_length: int,
    declared_header_length: Callable[[bytes], int | None],
    error: FileErrorFactory,
) -> tuple[bytes, int]:
    """``(bytes, file size)``: the header region of the mark file ``name`` -- its first ``header_length``
    bytes, or more when ``declared_header_length(first bytes)`` says the header is longer and the file
    holds it. ``error(...)`` when there is no such file."""
    location = f"{storage.location}/{name}"
    if not storage.exists(name):
        raise error("there is no mark file", file=location)
    with storage.open(name) as file:
        size = file.size()
        data = file.read(0, min(size, header_length))
        declared = declared_header_length(data)
        if declared is not None and len(data) < declared <= size:
            data = file.read(0, declared)  # a header longer than Aeron's 8 KiB
    return data, size


def check_region(
    *,
    header_length: int,
    error_buffer_length: int,
    encoded_length: int,
    size: int,
    header_length_offset: int,
    error_buffer_length_offset: int,
    file: str,
    error: FileErrorFactory,
) -> None:
    """``error(...)`` unless the header's two lengths are sound: not negative, the header region at least
    as long as the header written in it, and the file long enough for the region and the error log.
    A ``header_length`` of 0 (a header of an older version without one) is not checked further."""
    for value, offset, name in (
        (header_length, header_length_offset, "headerLength"),
        (error_buffer_length, error_buffer_length_offset, "errorBufferLength"),
    ):
        if value < 0:
            raise error(
                f"{name} {value} is negative", file=file, offset=offset, field=f"MarkFileHeader.{name}"
            )
    if not header_length:
        return
    if header_length < encoded_length:
        raise error(
            f"header length {header_length} is shorter than the header written in it",
            file=file,
            offset=header_length_offset,
            field="MarkFileHeader.headerLength",
        )
    if size < header_length + error_buffer_length:
        raise error(
            f"the file is {size} bytes, shorter than its header and error log "
            f"({header_length} + {error_buffer_length})",
            file=file,
            offset=error_buffer_length_offset,
            field="MarkFileHeader.errorBufferLength",
        )


def refuse_if_active(
    storage: Storage,
    name: str,
    *,
    now_ms: int,
    liveness_timeout_ms: int,
    major_versions: Collection[int],
    error: FileErrorFactory,
    owner: str = "",
) -> None:
    """Raise ``error(...)`` if the mark file ``name`` belongs to a live process or carries a major version
    not in ``major_versions``. A file too short to hold the two fields, or all zeros where they go, is
    a torn leftover of a creation and is no obstacle. ``owner`` (such as ``"pid 4242"``) is named in
    the message."""
    found = read_liveness(storage, name)
    if found is None:
        return
    version, activity = found
    location = f"{storage.location}/{name}"
    if version == 0 and activity == 0:
        return  # all zeros where the header goes: a creation that never wrote it
    major = version >> 16 & 0xFF
    if major not in major_versions:
        raise error(
            f"mark file major version {major} ({version_text(version)}) is not one this process reads "
            f"({', '.join(map(str, sorted(major_versions)))})",
            file=location,
            offset=VERSION_OFFSET,
            field="MarkFileHeader.version",
        )
    if is_active(activity, now_ms, liveness_timeout_ms):
        whose = f" (owner: {owner})" if owner else ""
        raise error(
            f"active mark file detected{whose}: activity timestamp {activity} is {now_ms - activity} ms "
            f"before now ({now_ms}), within the liveness timeout of {liveness_timeout_ms} ms",
            file=location,
            offset=ACTIVITY_TIMESTAMP_OFFSET,
            field="MarkFileHeader.activityTimestamp",
        )


class MarkFileWriter:
    """The owner's side of a mark file: its header rewritten in place, its error log, its clean close.

    ``create`` makes the file in the creation order above; ``image`` is the header's bytes as last
    written; ``closed_error`` is raised by any use after ``close``."""

    def __init__(
        self,
        file: StorageFile,
        image: bytes,
        *,
        header_length: int,
        error_buffer_length: int,
        sync_level: SyncLevel,
        location: str,
        error: FileErrorFactory,
    ) -> None:
        """Use ``MarkFileWriter.create``."""
        self._file: StorageFile | None = file
        self._image = image
        self._header_length = header_length
        self._error_buffer_length = error_buffer_length
        self._sync_level = sync_level
        self._location = location
        self._error = error
        self._errors: dict[str, ErrorObservation] = {}
        self._error_end = 0  # where the next error record goes, relative to the error log

    @classmethod
    def create(
        cls,
        storage: Storage,
        name: str,
        *,
        unready: bytes,
        image: bytes,
        header_length: int,
        error_buffer_length: int,
        sync_level: SyncLevel,
        error: FileErrorFactory,
    ) -> MarkFileWriter:
        """Write a new mark file ``name``: ``unready`` (the header with version 0) over an empty file of
        ``header_length + error_buffer_length`` bytes, synced with the directory, then the changes that
        make it ``image``, synced."""
        assert len(unready) == len(image) <= header_length
        file = storage.open(name, create=True)
        try:
            file.truncate(0)
            file.truncate(header_length + error_buffer_length)
            file.write(0, unready)
            file.sync(sync_level)
            if sync_level != SyncLevel.NONE:
                storage.sync_directory()
            write_changes(file, 0, unready, image)
            file.sync(sync_level)
        except BaseException:
            file.close()
            raise
        return cls(
            file,
            image,
            header_length=header_length,
            error_buffer_length=error_buffer_length,
            sync_level=sync_level,
            location=f"{storage.location}/{name}",
            error=error,
        )

    @property
    def is_closed(self) -> bool:
        return self._file is None

    def _open_file(self) -> StorageFile:
        if self._file is None:
            raise self._error("the mark file is closed", file=self._location)
        return self._file

    def rewrite(self, image: bytes) -> None:
        """Make the header ``image`` (as long as the old one): only the bytes that changed are written."""
        file = self._open_file()
        if len(image) != len(self._image):
            raise self._error(
                f"a rewritten header is {len(image)} bytes, the file's is {len(self._image)}",
                file=self._location,
            )
        write_changes(file, 0, self._image, image)
        self._image = image

    def record_error(self, text: str, *, now_ms: int) -> bool:
        """Add an observation of the error ``text`` at ``now_ms`` to the error log: a new record for a
        text not seen before, else one more observation of its record. ``False`` when a new record does
        not fit in what is left of the log (the error is then not recorded, as in Agrona)."""
        file = self._open_file()
        seen = self._errors.get(text)
        if seen is not None:
            count = seen.observation_count + 1
            record = _ERROR_RECORD.pack(0, count, now_ms, seen.first_observation_timestamp)
            file.write(seen.offset + 8, record[8:16])
            file.write(seen.offset + 4, record[4:8])
            self._errors[text] = replace(seen, observation_count=count, last_observation_timestamp=now_ms)
            return True
        encoded = text.encode("utf-8")
        length = ERROR_RECORD_HEADER_LENGTH + len(encoded)
        if self._error_end + _align(length, ERROR_RECORD_ALIGNMENT) > self._error_buffer_length:
            return False
        offset = self._header_length + self._error_end
        record = _ERROR_RECORD.pack(length, 1, now_ms, now_ms) + encoded
        file.write(offset + 4, record[4:])
        file.write(offset, record[:4])  # the length last: the record exists once it is complete
        self._errors[text] = ErrorObservation(offset, 1, now_ms, now_ms, text)
        self._error_end += _align(length, ERROR_RECORD_ALIGNMENT)
        return True

    def errors(self) -> list[ErrorObservation]:
        """The error log as it is in the file now."""
        file = self._open_file()
        data = file.read(self._header_length, self._error_buffer_length)
        return read_error_log(data, file=self._location, base=self._header_length, error=self._error)

    def close(self, image: bytes) -> None:
        """Write the closing header ``image`` (activity timestamp ``-1``), sync it (at least ``DATA``: a
        clean close must survive), and release the file. Idempotent."""
        if self._file is None:
            return
        try:
            self.rewrite(image)
            self._file.sync(max(self._sync_level, SyncLevel.DATA))
        finally:
            file, self._file = self._file, None
            file.close()
