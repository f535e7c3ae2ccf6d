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

The liveness rule, the creation order, the in-place rewrites and the distinct error log are every
Aeron mark file's, and live in ``cluster.storage.markfile`` (the cluster's mark files use them too);
``read_error_log`` reads the error log of any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from cluster.archive.errors import MarkFileError
from cluster.storage import Storage, SyncLevel
from cluster.storage import markfile as shared
from cluster.storage.markfile import (
    DEFAULT_LIVENESS_TIMEOUT_MS,
    ERROR_RECORD_ALIGNMENT,
    ERROR_RECORD_HEADER_LENGTH,
    ErrorObservation,
    MarkFileWriter,
    compose_version,
    is_active,
    version_text,
)
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

ARCHIVE_MAJOR_VERSION = 3
ARCHIVE_MINOR_VERSION = 1
ARCHIVE_PATCH_VERSION = 0

_MESSAGE_HEADER = mark_codecs.HEADER_SIZE
_BLOCK = mark_codecs.MarkFileHeaderDecoder.BLOCK_LENGTH


ARCHIVE_VERSION = compose_version(ARCHIVE_MAJOR_VERSION, ARCHIVE_MINOR_VERSION, ARCHIVE_PATCH_VERSION)
"""The version the mark file and the catalog carry: 3.1.0, i.e. 196864."""


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


def read_error_log(
    buffer: bytes | bytearray | memoryview, *, file: str = "error log", base: int = 0
) -> list[ErrorObservation]:
    """The records of a distinct error log held in ``buffer`` (``cluster.storage.markfile``); a damaged
    record raises ``MarkFileError``."""
    return shared.read_error_log(buffer, file=file, base=base, error=MarkFileError)


class ArchiveMarkFile:
    """An archive's mark file, owned by this process from ``create`` until ``close``."""

    FILE_NAME = MARK_FILE_NAME

    def __init__(self, storage: Storage, writer: MarkFileWriter, header: ArchiveMarkFileHeader) -> None:
        """Use ``ArchiveMarkFile.create``."""
        self._storage = storage
        self._writer = writer
        self._header = header

    # ------------------------------------------------------------------------------------- reading

    @staticmethod
    def read(storage: Storage) -> ArchiveMarkFileHeader:
        """The header of the mark file in ``storage``: ``MarkFileError`` when it is missing or damaged
        (a message header that is not template 200 of schema 100, strings running past the header,
        a file shorter than its header and error log)."""
        location = _location(storage)
        data, size = shared.read_header_region(
            storage, MARK_FILE_NAME, HEADER_LENGTH, lambda data: _header_length(data, location), MarkFileError
        )
        header, encoded_length = _decode_header(data, location)
        shared.check_region(
            header_length=header.header_length,
            error_buffer_length=header.error_buffer_length,
            encoded_length=encoded_length,
            size=size,
            header_length_offset=_MESSAGE_HEADER + 44,
            error_buffer_length_offset=_MESSAGE_HEADER + 48,
            file=location,
            error=MarkFileError,
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
        shared.check_settings(
            liveness_timeout_ms, error_buffer_length, HEADER_LENGTH, location, MarkFileError
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
        # Major version 0 is no archive's: a version field whose write a crash tore (it is written last).
        shared.refuse_if_active(
            storage,
            MARK_FILE_NAME,
            now_ms=now_ms,
            liveness_timeout_ms=liveness_timeout_ms,
            major_versions=(0, ARCHIVE_MAJOR_VERSION),
            error=MarkFileError,
        )
        writer = MarkFileWriter.create(
            storage,
            MARK_FILE_NAME,
            unready=unready,
            image=image,
            header_length=HEADER_LENGTH,
            error_buffer_length=error_buffer_length,
            sync_level=file_sync_level,
            error=MarkFileError,
        )
        return cls(storage, writer, header)

    # ------------------------------------------------------------------------------------- running

    @property
    def header(self) -> ArchiveMarkFileHeader:
        """The header as last written."""
        return self._header

    def _rewrite(self, header: ArchiveMarkFileHeader) -> None:
        self._writer.rewrite(_encode_header(header, _location(self._storage)))
        self._header = header

    def update_activity_timestamp(self, now_ms: int) -> None:
        """Say this archive is alive at ``now_ms`` (not synced: liveness needs no durability)."""
        self._rewrite(replace(self._header, activity_timestamp=now_ms))

    def record_error(self, text: str, *, now_ms: int) -> bool:
        """Add an observation of the error ``text`` at ``now_ms`` to the error log
        (``MarkFileWriter.record_error``); ``False`` when a new record does not fit."""
        return self._writer.record_error(text, now_ms=now_ms)

    def errors(self) -> list[ErrorObservation]:
        """The error log as it is in the file now."""
        return self._writer.errors()

    def close(self) -> None:
        """Leave the directory: activity timestamp ``-1`` (a clean close), synced. Idempotent."""
        if self._writer.is_closed:
            return
        header = replace(self._header, activity_timestamp=-1)
        self._writer.close(_encode_header(header, _location(self._storage)))
        self._header = header

    def __enter__(self) -> ArchiveMarkFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _header_length(data: bytes, location: str) -> int | None:
    try:
        return mark_codecs.MarkFileHeaderDecoder().wrap_header(data, 0).header_length
    except CodecError as exc:
        raise _codec_error(exc, location) from None
