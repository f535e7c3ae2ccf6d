"""The archive's mark file (``archive-mark.dat``): who runs this archive directory, and its error log.

Theory of operation
-------------------
An archive directory belongs to one running archive at a time. The mark file says which one and whether
it is still alive: the archive writes its identity and settings into it when it starts, moves the
*activity timestamp* forward while it runs (epoch milliseconds), and writes ``-1`` there when it closes
cleanly. A second archive that finds a timestamp within the liveness timeout (10 s by default) of its own
clock refuses the directory (``MarkFileError``); a timestamp older than that -- a process that was killed
-- or ``-1`` lets it take over.

Layout (Aeron Archive 1.47, confirmed on the files Java wrote; docs/archive.md, "Files")::

    0      SBE message header: blockLength 128, templateId 200, schemaId 100, version 2
    8      MarkFileHeader block (128 bytes): version i32 @0 (semantic version, 3.1.0 = 196864),
           activityTimestamp i64 @8, startTimestamp i64 @16, pid i64 @24, controlStreamId i32 @32,
           localControlStreamId i32 @36, eventsStreamId i32 @40, headerLength i32 @44 (8192),
           errorBufferLength i32 @48 (1 MiB), archiveId i64 @56, the rest reserved
    136    var data: controlChannel, localControlChannel, eventsChannel, aeronDirectory
           (each a uint32 length and that many US-ASCII bytes)
    8192   the error log: errorBufferLength bytes (Agrona's distinct error log, below)

The file is ``headerLength + errorBufferLength`` bytes long. Every field is read and written through the
generated ``generated.aeron_archive_mark_codecs`` codecs; a change is written as the byte range in which
the newly encoded header differs from the old one (so updating the activity timestamp writes 8 bytes).

Creating follows Aeron's order: the header is written with ``version`` 0, synced, and only then is the
version written -- a reader that finds 0 knows the file is not initialised yet. A fresh file replaces
whatever was there before, error log included.

**The error log** holds one record per distinct error, each aligned to 8 bytes::

    0 length i32 (of the record, header included; 0 ends the log) | 4 observationCount i32
    8 lastObservationTimestamp i64 | 16 firstObservationTimestamp i64 | 24 the error text, UTF-8

A repeated error (the same text) is not written again: its count goes up and its last timestamp moves.
The record's length is written last, so a reader never sees half a record. ``read_error_log`` reads
the log of any Aeron mark file laid out this way (the cluster's mark files use the same error log).
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, replace
from typing import Any

from cluster.archive.errors import MarkFileError
from cluster.storage import Storage, StorageError, StorageFile, SyncLevel
from codegen.runtime import CodecError
from generated import aeron_archive_mark_codecs as mark_codecs

__all__ = [
    "ARCHIVE_MAJOR_VERSION",
    "ARCHIVE_MINOR_VERSION",
    "ARCHIVE_PATCH_VERSION",
    "ARCHIVE_VERSION",
    "DEFAULT_LIVENESS_TIMEOUT_MS",
    "ERROR_BUFFER_LENGTH",
    "ERROR_RECORD_ALIGNMENT",
    "ERROR_RECORD_HEADER_LENGTH",
    "HEADER_LENGTH",
    "MARK_FILE_NAME",
    "ArchiveMarkFile",
    "ArchiveMarkFileHeader",
    "ErrorObservation",
    "compose_version",
    "is_active",
    "read_error_log",
    "version_text",
]

MARK_FILE_NAME = "archive-mark.dat"
HEADER_LENGTH = 8192
"""Bytes before the error log; the header and its channel strings must fit in it."""
ERROR_BUFFER_LENGTH = 1024 * 1024
DEFAULT_LIVENESS_TIMEOUT_MS = 10_000

ARCHIVE_MAJOR_VERSION = 3
ARCHIVE_MINOR_VERSION = 1
ARCHIVE_PATCH_VERSION = 0

ERROR_RECORD_HEADER_LENGTH = 24
ERROR_RECORD_ALIGNMENT = 8

_MESSAGE_HEADER = mark_codecs.HEADER_SIZE
_BLOCK = mark_codecs.MarkFileHeaderDecoder.BLOCK_LENGTH
# The error log's record header (not an SBE record: Agrona's own layout).
_ERROR_RECORD = struct.Struct("<iiqq")


def compose_version(major: int, minor: int, patch: int) -> int:
    """Aeron's semantic version as one int: ``major << 16 | minor << 8 | patch``."""
    return (major & 0xFF) << 16 | (minor & 0xFF) << 8 | (patch & 0xFF)


def version_text(version: int) -> str:
    """``"3.1.0"`` for 196864."""
    return f"{version >> 16 & 0xFF}.{version >> 8 & 0xFF}.{version & 0xFF}"


ARCHIVE_VERSION = compose_version(ARCHIVE_MAJOR_VERSION, ARCHIVE_MINOR_VERSION, ARCHIVE_PATCH_VERSION)
"""The version the mark file and the catalog carry: 3.1.0, i.e. 196864."""


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) & ~(alignment - 1)


def is_active(activity_timestamp: int, now_ms: int, liveness_timeout_ms: int) -> bool:
    """Whether a mark file whose activity timestamp is ``activity_timestamp`` belongs to a live archive:
    its age ``now_ms - activity_timestamp`` is at most the timeout. ``-1``, a clean close, is never
    live. A timestamp in the future is live only within the timeout too: both archives run on the
    machine that holds the directory, so they share a clock, and a timestamp further ahead is garbage
    (a write a crash tore), which must not lock the directory until the clock catches up. Aeron counts
    any future timestamp as live."""
    return activity_timestamp != -1 and abs(now_ms - activity_timestamp) <= liveness_timeout_ms


@dataclass(frozen=True, slots=True)
class ArchiveMarkFileHeader:
    """The decoded header of an archive mark file, with the SBE message header's values.

    ``header_length``, ``error_buffer_length`` and ``archive_id`` hold their raw values, as Aeron
    prints them: ``0``, ``0`` and ``-1`` mean "not set" (and are what a version-0 header reads as)."""

    template_id: int
    schema_id: int
    schema_version: int
    block_length: int
    version: int
    activity_timestamp: int
    start_timestamp: int
    pid: int
    control_stream_id: int
    local_control_stream_id: int
    events_stream_id: int
    header_length: int
    error_buffer_length: int
    archive_id: int
    control_channel: str
    local_control_channel: str
    events_channel: str
    aeron_directory: str

    @property
    def semantic_version(self) -> str:
        return version_text(self.version)

    def to_json(self) -> dict[str, Any]:
        """The header under Aeron's names (those ``ArchiveTool describe`` prints)."""
        return {
            "sbeTemplateId": self.template_id,
            "sbeSchemaId": self.schema_id,
            "sbeSchemaVersion": self.schema_version,
            "sbeBlockLength": self.block_length,
            "version": self.version,
            "activityTimestamp": self.activity_timestamp,
            "startTimestamp": self.start_timestamp,
            "pid": self.pid,
            "controlStreamId": self.control_stream_id,
            "localControlStreamId": self.local_control_stream_id,
            "eventsStreamId": self.events_stream_id,
            "headerLength": self.header_length,
            "errorBufferLength": self.error_buffer_length,
            "archiveId": self.archive_id,
            "controlChannel": self.control_channel,
            "localControlChannel": self.local_control_channel,
            "eventsChannel": self.events_channel,
            "aeronDirectory": self.aeron_directory,
        }


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


def _location(storage: Storage) -> str:
    return f"{storage.location}/{MARK_FILE_NAME}"


def _codec_error(exc: CodecError, file: str, base: int = 0) -> MarkFileError:
    field = exc.message_name if exc.field is None else f"{exc.message_name}.{exc.field}"
    offset = None if exc.offset is None else base + exc.offset
    return MarkFileError(exc.reason, file=file, offset=offset, field=field)


def _decode_header(data: bytes | bytearray, file: str) -> tuple[ArchiveMarkFileHeader, int]:
    """Decode the message header, the block and the channel strings from the start of ``data``; also
    return how many bytes they take."""
    try:
        decoder = mark_codecs.MarkFileHeaderDecoder().wrap_header(data, 0)
        message = mark_codecs.MessageHeaderDecoder().wrap(data, 0)
        header_length = decoder.header_length
        error_buffer_length = decoder.error_buffer_length
        archive_id = decoder.archive_id
        header = ArchiveMarkFileHeader(
            template_id=message.template_id,
            schema_id=message.schema_id,
            schema_version=message.version,
            block_length=message.block_length,
            version=decoder.version,
            activity_timestamp=decoder.activity_timestamp,
            start_timestamp=decoder.start_timestamp,
            pid=decoder.pid,
            control_stream_id=decoder.control_stream_id,
            local_control_stream_id=decoder.local_control_stream_id,
            events_stream_id=decoder.events_stream_id,
            header_length=0 if header_length is None else header_length,
            error_buffer_length=0 if error_buffer_length is None else error_buffer_length,
            archive_id=-1 if archive_id is None else archive_id,
            control_channel=decoder.control_channel_str(),
            local_control_channel=decoder.local_control_channel_str(),
            events_channel=decoder.events_channel_str(),
            aeron_directory=decoder.aeron_directory_str(),
        )
        return header, _MESSAGE_HEADER + decoder.total_length()
    except CodecError as exc:
        raise _codec_error(exc, file) from None


def _encode_header(header: ArchiveMarkFileHeader, file: str) -> bytes:
    """The header's bytes (message header, block, channel strings), as the generated encoder writes them."""
    strings = (
        header.control_channel,
        header.local_control_channel,
        header.events_channel,
        header.aeron_directory,
    )
    buffer = bytearray(_MESSAGE_HEADER + _BLOCK + sum(4 + len(text) for text in strings))
    try:
        encoder = mark_codecs.MarkFileHeaderEncoder().wrap_and_apply_header(buffer, 0)
        encoder.version = header.version
        encoder.activity_timestamp = header.activity_timestamp
        encoder.start_timestamp = header.start_timestamp
        encoder.pid = header.pid
        encoder.control_stream_id = header.control_stream_id
        encoder.local_control_stream_id = header.local_control_stream_id
        encoder.events_stream_id = header.events_stream_id
        encoder.header_length = header.header_length
        encoder.error_buffer_length = header.error_buffer_length
        encoder.archive_id = header.archive_id
        encoder.put_control_channel(header.control_channel)
        encoder.put_local_control_channel(header.local_control_channel)
        encoder.put_events_channel(header.events_channel)
        encoder.put_aeron_directory(header.aeron_directory)
        length = _MESSAGE_HEADER + encoder.encoded_length()
    except CodecError as exc:
        raise _codec_error(exc, file) from None
    return bytes(buffer[:length])


def _write_changes(file: StorageFile, offset: int, old: bytes, new: bytes) -> None:
    """Write the one byte range in which ``new`` differs from ``old`` (same length), if any."""
    first = next((i for i in range(len(new)) if old[i] != new[i]), None)
    if first is None:
        return
    last = next(i for i in range(len(new) - 1, -1, -1) if old[i] != new[i])
    file.write(offset + first, new[first : last + 1])


def read_error_log(
    buffer: bytes | bytearray | memoryview, *, file: str = "error log", base: int = 0
) -> list[ErrorObservation]:
    """The records of a distinct error log held in ``buffer``; a zero length ends the log.

    ``base`` is where ``buffer`` starts in its file (for offsets and messages). A record whose length is
    shorter than its header or runs past the buffer raises ``MarkFileError``."""
    view = memoryview(buffer).cast("B")
    out: list[ErrorObservation] = []
    offset = 0
    while offset + ERROR_RECORD_HEADER_LENGTH <= len(view):
        length, count, last, first = _ERROR_RECORD.unpack_from(view, offset)
        if length == 0:
            break
        if length < ERROR_RECORD_HEADER_LENGTH or offset + length > len(view):
            raise MarkFileError(
                f"error record length {length} is outside {ERROR_RECORD_HEADER_LENGTH}..{len(view) - offset}",
                file=file,
                offset=base + offset,
                field="errorLog.length",
            )
        text = bytes(view[offset + ERROR_RECORD_HEADER_LENGTH : offset + length]).decode("utf-8", "replace")
        out.append(ErrorObservation(base + offset, count, first, last, text))
        offset += _align(length, ERROR_RECORD_ALIGNMENT)
    return out


class ArchiveMarkFile:
    """An archive's mark file, owned by this process from ``create`` until ``close``."""

    FILE_NAME = MARK_FILE_NAME

    def __init__(
        self,
        storage: Storage,
        file: StorageFile,
        header: ArchiveMarkFileHeader,
        image: bytes,
        sync_level: SyncLevel,
    ) -> None:
        """Use ``ArchiveMarkFile.create``."""
        self._storage = storage
        self._file: StorageFile | None = file
        self._header = header
        self._image = image  # the header's bytes as last written
        self._sync_level = sync_level
        self._errors: dict[str, ErrorObservation] = {}
        self._error_end = 0  # where the next error record goes, relative to the error log

    # ------------------------------------------------------------------------------------- reading

    @staticmethod
    def read(storage: Storage) -> ArchiveMarkFileHeader:
        """The header of the mark file in ``storage``: ``MarkFileError`` when it is missing or damaged
        (a message header that is not template 200 of schema 100, strings running past the header,
        a file shorter than its header and error log)."""
        location = _location(storage)
        if not storage.exists(MARK_FILE_NAME):
            raise MarkFileError("there is no mark file", file=location)
        with storage.open(MARK_FILE_NAME) as file:
            size = file.size()
            data = file.read(0, min(size, HEADER_LENGTH))
            try:
                header_length = mark_codecs.MarkFileHeaderDecoder().wrap_header(data, 0).header_length
            except CodecError as exc:
                raise _codec_error(exc, location) from None
            if header_length is not None and len(data) < header_length <= size:
                data = file.read(0, header_length)  # a header longer than Aeron's 8 KiB
            header, encoded_length = _decode_header(data, location)
        for value, at, name in (
            (header.header_length, 44, "headerLength"),
            (header.error_buffer_length, 48, "errorBufferLength"),
        ):
            if value < 0:
                raise MarkFileError(
                    f"{name} {value} is negative",
                    file=location,
                    offset=_MESSAGE_HEADER + at,
                    field=f"MarkFileHeader.{name}",
                )
        if header.header_length:
            if header.header_length < encoded_length:
                raise MarkFileError(
                    f"header length {header.header_length} is shorter than the header written in it",
                    file=location,
                    offset=_MESSAGE_HEADER + 44,
                    field="MarkFileHeader.headerLength",
                )
            if size < header.header_length + header.error_buffer_length:
                raise MarkFileError(
                    f"the file is {size} bytes, shorter than its header and error log "
                    f"({header.header_length} + {header.error_buffer_length})",
                    file=location,
                    offset=_MESSAGE_HEADER + 48,
                    field="MarkFileHeader.errorBufferLength",
                )
        return header

    @staticmethod
    def read_errors(storage: Storage) -> list[ErrorObservation]:
        """The error log of the mark file in ``storage`` (empty for a header without one)."""
        header = ArchiveMarkFile.read(storage)
        if not header.header_length or not header.error_buffer_length:
            return []
        with storage.open(MARK_FILE_NAME) as file:
            data = file.read(header.header_length, header.error_buffer_length)
        return read_error_log(data, file=_location(storage), base=header.header_length)

    # ------------------------------------------------------------------------------------ creating

    @classmethod
    def create(
        cls,
        storage: Storage,
        *,
        archive_id: int,
        control_channel: str,
        control_stream_id: int,
        local_control_channel: str,
        local_control_stream_id: int,
        events_channel: str,
        events_stream_id: int,
        aeron_directory: str,
        pid: int,
        now_ms: int,
        liveness_timeout_ms: int = DEFAULT_LIVENESS_TIMEOUT_MS,
        error_buffer_length: int = ERROR_BUFFER_LENGTH,
        file_sync_level: SyncLevel = SyncLevel.DATA,
    ) -> ArchiveMarkFile:
        """Take the directory: write a new mark file (header, then an empty error log of
        ``error_buffer_length`` bytes) stamped ``now_ms``.

        ``MarkFileError`` when the mark file there is still active (its activity timestamp within
        ``liveness_timeout_ms`` of ``now_ms``) or carries another major version, as Aeron refuses both;
        a file too short to hold those fields is a torn leftover and is replaced."""
        location = _location(storage)
        if liveness_timeout_ms <= 0:
            raise MarkFileError(f"liveness timeout {liveness_timeout_ms} ms is not positive", file=location)
        if not 0 < error_buffer_length <= 0x7FFF_FFFF - HEADER_LENGTH:
            raise MarkFileError(
                f"error buffer length {error_buffer_length} is outside 1..{0x7FFF_FFFF - HEADER_LENGTH}",
                file=location,
            )
        header = ArchiveMarkFileHeader(
            template_id=mark_codecs.MarkFileHeaderEncoder.TEMPLATE_ID,
            schema_id=mark_codecs.SCHEMA_ID,
            schema_version=mark_codecs.SCHEMA_VERSION,
            block_length=_BLOCK,
            version=ARCHIVE_VERSION,
            activity_timestamp=now_ms,
            start_timestamp=now_ms,
            pid=pid,
            control_stream_id=control_stream_id,
            local_control_stream_id=local_control_stream_id,
            events_stream_id=events_stream_id,
            header_length=HEADER_LENGTH,
            error_buffer_length=error_buffer_length,
            archive_id=archive_id,
            control_channel=control_channel,
            local_control_channel=local_control_channel,
            events_channel=events_channel,
            aeron_directory=aeron_directory,
        )
        image = _encode_header(header, location)
        unready = _encode_header(replace(header, version=0), location)
        if len(image) > HEADER_LENGTH:
            raise MarkFileError(
                f"the header with its channels takes {len(image)} bytes, more than {HEADER_LENGTH}",
                file=location,
            )
        if storage.exists(MARK_FILE_NAME):
            _refuse_if_active(storage, location, now_ms, liveness_timeout_ms)
        file = storage.open(MARK_FILE_NAME, create=True)
        try:
            file.truncate(0)
            file.truncate(HEADER_LENGTH + error_buffer_length)
            file.write(0, unready)
            file.sync(file_sync_level)
            if file_sync_level != SyncLevel.NONE:
                storage.sync_directory()
            _write_changes(file, 0, unready, image)
            file.sync(file_sync_level)
        except BaseException:
            file.close()
            raise
        return cls(storage, file, header, image, file_sync_level)

    # ------------------------------------------------------------------------------------- running

    @property
    def header(self) -> ArchiveMarkFileHeader:
        """The header as last written."""
        return self._header

    def _open_file(self) -> StorageFile:
        if self._file is None:
            raise MarkFileError("the mark file is closed", file=_location(self._storage))
        return self._file

    def _rewrite(self, header: ArchiveMarkFileHeader) -> None:
        file = self._open_file()
        image = _encode_header(header, _location(self._storage))
        _write_changes(file, 0, self._image, image)
        self._image = image
        self._header = header

    def update_activity_timestamp(self, now_ms: int) -> None:
        """Say this archive is alive at ``now_ms`` (not synced: liveness needs no durability)."""
        self._rewrite(replace(self._header, activity_timestamp=now_ms))

    def record_error(self, text: str, *, now_ms: int) -> bool:
        """Add an observation of the error ``text`` at ``now_ms`` to the error log: a new record for a
        text not seen before, else one more observation of its record. ``False`` when a new record does
        not fit in what is left of the log (the error is then not recorded, as in Agrona)."""
        file = self._open_file()
        base = self._header.header_length
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
        if self._error_end + _align(length, ERROR_RECORD_ALIGNMENT) > self._header.error_buffer_length:
            return False
        offset = base + self._error_end
        record = _ERROR_RECORD.pack(length, 1, now_ms, now_ms) + encoded
        file.write(offset + 4, record[4:])
        file.write(offset, record[:4])  # the length last: the record exists once it is complete
        self._errors[text] = ErrorObservation(offset, 1, now_ms, now_ms, text)
        self._error_end += _align(length, ERROR_RECORD_ALIGNMENT)
        return True

    def errors(self) -> list[ErrorObservation]:
        """The error log as it is in the file now."""
        file = self._open_file()
        data = file.read(self._header.header_length, self._header.error_buffer_length)
        return read_error_log(data, file=_location(self._storage), base=self._header.header_length)

    def close(self) -> None:
        """Leave the directory: activity timestamp ``-1`` (a clean close), synced. Idempotent."""
        if self._file is None:
            return
        try:
            self._rewrite(replace(self._header, activity_timestamp=-1))
            self._file.sync(max(self._sync_level, SyncLevel.DATA))
        finally:
            file, self._file = self._file, None
            file.close()

    def __enter__(self) -> ArchiveMarkFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _refuse_if_active(storage: Storage, location: str, now_ms: int, liveness_timeout_ms: int) -> None:
    """``MarkFileError`` if the existing mark file belongs to a live archive or another major version.

    Like Aeron, this reads the version and activity timestamp at their fixed places without trusting
    the rest of the header; a file too short to hold them is a torn leftover of a creation."""
    try:
        with storage.open(MARK_FILE_NAME) as file:
            data = file.read(0, min(file.size(), _MESSAGE_HEADER + _BLOCK))
    except StorageError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise
    if len(data) < _MESSAGE_HEADER + _BLOCK:
        return
    decoder = mark_codecs.MarkFileHeaderDecoder().wrap(
        data, _MESSAGE_HEADER, _BLOCK, mark_codecs.SCHEMA_VERSION
    )
    version = decoder.version
    activity = decoder.activity_timestamp
    if version == 0 and activity == 0:
        return  # all zeros where the header goes: a creation that never wrote it
    # Major version 0 is no archive's: a version field whose write a crash tore (it is written last).
    if version >> 16 & 0xFF not in (0, ARCHIVE_MAJOR_VERSION):
        raise MarkFileError(
            f"mark file major version {version >> 16 & 0xFF} ({version_text(version)}) does not match "
            f"this archive's {ARCHIVE_MAJOR_VERSION}",
            file=location,
            offset=_MESSAGE_HEADER,
            field="MarkFileHeader.version",
        )
    if is_active(activity, now_ms, liveness_timeout_ms):
        raise MarkFileError(
            f"active mark file detected: activity timestamp {activity} is {now_ms - activity} ms before "
            f"now ({now_ms}), within the liveness timeout of {liveness_timeout_ms} ms",
            file=location,
            offset=_MESSAGE_HEADER + 8,
            field="MarkFileHeader.activityTimestamp",
        )
