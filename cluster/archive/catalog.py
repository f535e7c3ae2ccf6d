"""The archive's catalog (``archive.catalog``): one descriptor per recording, in Aeron's format.

Theory of operation
-------------------
The catalog is a file of fixed-layout SBE records without SBE message headers (layouts confirmed on
the catalogs Java Aeron 1.47 wrote; docs/archive.md, "Files")::

    0             CatalogHeader (32 bytes): version i32 @0 (3.1.0 = 196864), length i32 @4 (32: where
                  the first entry starts), nextRecordingId i64 @8, alignment i32 @16, reserved to 32
    length        entry 0: RecordingDescriptorHeader (32 bytes: length i32 @0, state i32 @4, checksum
                  i32 @8, reserved) + RecordingDescriptor (80-byte block, then strippedChannel,
                  originalChannel, sourceIdentity) + zero padding
    ...           entry 1, 2, ...: each entry (header + descriptor + padding) is a multiple of the
                  alignment long -- 64 for new catalogs, 1024 in older ones -- and the descriptor
                  header's ``length`` counts the descriptor and its padding (any power of two from
                  32 to 1 MiB is accepted as the alignment)
    ...           zeros to the end of the file: a descriptor header whose length is 0 ends the entries

The file is created at its capacity (1 MiB by default) full of zeros and grows by half its size each
time an entry does not fit. Recording ids are handed out from ``nextRecordingId``, 0, 1, 2, ...; an
entry is never removed, deleting a recording marks it ``DELETED``. ``-1`` in ``stopPosition`` and
``stopTimestamp`` means the recording is still active (or its archive died while it was); ``-1`` is
also "none" for ids.

**Opening** reads the header and scans the entries once, building the index recording id -> file
offset; descriptors are read from the file when asked for, so the catalog holds no copy of them.
What cannot be read safely -- a header that is not a version-3 catalog header, an entry whose length
runs past the end of the file, a descriptor that does not decode, a state that is not a
``RecordingState``, recording ids that do not ascend -- raises ``CatalogError`` naming the file, the
byte offset and the field. What can be read but is not as Aeron leaves it is collected in
``Catalog.problems`` (``CatalogProblem``: offset, recording id, field, message, whether it was
repaired), for ``archive verify`` and friends:

* ``nextRecordingId`` not above the highest recording id in the file (an entry was published but the
  header update was lost): repaired on a writable open, as Aeron does, else reported;
* the last entry's length torn by a crash while it was being published (the low bytes of the right
  value, a whole descriptor behind it, nothing after it): the entry was never published, so it ends
  the entries like a zero length; its length is zeroed on a writable open, else reported;
* recording ids that skip a value; an entry whose length is not a multiple of the alignment: reported.

A writable open also repairs a catalog with no valid header and nothing but zeros after it (a crash
while the catalog was being created) by creating it afresh.

**Writing** goes through ``Storage`` positional writes (nothing is mapped), every record through the
generated ``generated.aeron_archive_codecs`` codecs. ``add_recording`` writes the descriptor (and zeros
over the next entry's header), then the rest of its descriptor header, syncs (at ``file_sync_level``),
and only then writes the descriptor header's ``length``: the entry exists once that is written, so a
crash before it leaves a zero length -- the end of the entries -- and never a half-written entry.
``nextRecordingId`` follows, then a sync. An update (``update_stop``, ``extend``, ...) encodes the entry
before and after the change and writes only the byte range that differs; a crash that tears such a
write can leave a field mixing old and new bytes. For the stop position such a mix could look like a
position (a truncate's, say: the low bytes of the new value under the high bytes of the old), so an
update that changes it first writes the field's top byte alone as ``0x80``: until the range write's
last byte lands, the field is negative and not -1, which the archive's recovery takes for a torn stop
position and re-derives from the segment files (``recovery.torn_stop_position``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from cluster.archive.errors import CatalogError
from cluster.archive.markfile import ARCHIVE_MAJOR_VERSION, ARCHIVE_VERSION, version_text
from cluster.storage import Storage, StorageFile, SyncLevel
from cluster.storage.markfile import write_changes
from codegen.runtime import CodecError
from generated import aeron_archive_codecs as codecs
from generated.aeron_archive_codecs import RecordingState

__all__ = [
    "CATALOG_FILE_NAME",
    "CATALOG_HEADER_LENGTH",
    "DEFAULT_ALIGNMENT",
    "DEFAULT_CAPACITY",
    "DESCRIPTOR_HEADER_LENGTH",
    "LEGACY_ALIGNMENT",
    "MAX_ALIGNMENT",
    "MAX_CATALOG_CAPACITY",
    "NULL_POSITION",
    "NULL_RECORD_ID",
    "NULL_TIMESTAMP",
    "Catalog",
    "CatalogHeader",
    "CatalogProblem",
    "RecordingDescriptor",
    "RecordingState",
]

CATALOG_FILE_NAME = "archive.catalog"
CATALOG_HEADER_LENGTH = codecs.CatalogHeaderDecoder.BLOCK_LENGTH
DESCRIPTOR_HEADER_LENGTH = codecs.RecordingDescriptorHeaderDecoder.BLOCK_LENGTH
DEFAULT_ALIGNMENT = 64
"""Entry alignment of new catalogs: a cache line."""
LEGACY_ALIGNMENT = 1024
"""Entry alignment of catalogs written by older Aerons (read, never chosen)."""
DEFAULT_CAPACITY = 1024 * 1024
MAX_ALIGNMENT = 1024 * 1024
"""The largest entry alignment accepted (Aeron uses 64, and 1024 in older catalogs)."""
MAX_CATALOG_CAPACITY = 0x7FFF_FFFF
"""Growth stops here: offsets and lengths in the catalog are int32."""
NULL_POSITION = -1
NULL_TIMESTAMP = -1
NULL_RECORD_ID = -1

_VERSION = codecs.SCHEMA_VERSION
_BLOCK = codecs.RecordingDescriptorDecoder.BLOCK_LENGTH
_VAR_DATA_PREFIX = 4
_MIN_DESCRIPTOR = _BLOCK + 3 * _VAR_DATA_PREFIX
_INT32_MAX = 0x7FFF_FFFF
_INT64_MAX = 0x7FFF_FFFF_FFFF_FFFF
_STOP_POSITION_OFFSET = 48  # RecordingDescriptor.stopPosition, an int64
_TORN_STOP_TOP_BYTE = b"\x80"  # its top byte while it is being rewritten: a negative value, not -1


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) & ~(alignment - 1)


def _is_alignment(value: int) -> bool:
    return CATALOG_HEADER_LENGTH <= value <= MAX_ALIGNMENT and value & (value - 1) == 0


@dataclass(frozen=True, slots=True)
class CatalogHeader:
    """The catalog's first record."""

    version: int
    length: int
    next_recording_id: int
    alignment: int

    @property
    def semantic_version(self) -> str:
        return version_text(self.version)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "length": self.length,
            "nextRecordingId": self.next_recording_id,
            "alignment": self.alignment,
        }


@dataclass(frozen=True, slots=True)
class RecordingDescriptor:
    """One recording's catalog entry: its descriptor, with the state and checksum of its header."""

    recording_id: int
    control_session_id: int
    correlation_id: int
    start_timestamp: int
    stop_timestamp: int
    start_position: int
    stop_position: int
    initial_term_id: int
    segment_file_length: int
    term_buffer_length: int
    mtu_length: int
    session_id: int
    stream_id: int
    stripped_channel: str
    original_channel: str
    source_identity: str
    state: RecordingState
    checksum: int

    def to_json(self) -> dict[str, Any]:
        """The entry under Aeron's field names; ``state`` by name (``"VALID"``, ``"DELETED"``, ...)."""
        return {
            "recordingId": self.recording_id,
            "controlSessionId": self.control_session_id,
            "correlationId": self.correlation_id,
            "startTimestamp": self.start_timestamp,
            "stopTimestamp": self.stop_timestamp,
            "startPosition": self.start_position,
            "stopPosition": self.stop_position,
            "initialTermId": self.initial_term_id,
            "segmentFileLength": self.segment_file_length,
            "termBufferLength": self.term_buffer_length,
            "mtuLength": self.mtu_length,
            "sessionId": self.session_id,
            "streamId": self.stream_id,
            "strippedChannel": self.stripped_channel,
            "originalChannel": self.original_channel,
            "sourceIdentity": self.source_identity,
            "state": self.state.name,
            "checksum": self.checksum,
        }


@dataclass(frozen=True, slots=True)
class CatalogProblem:
    """Something in the catalog that is readable but not as Aeron leaves it.

    ``offset`` is the byte offset of the entry (0: the catalog header), ``recording_id`` the entry's
    recording id (``None`` for the header), ``field`` the record and field
    (``"CatalogHeader.nextRecordingId"``), ``repaired`` whether opening the catalog fixed it in the file."""

    offset: int
    recording_id: int | None
    field: str
    message: str
    repaired: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "recordingId": self.recording_id,
            "field": self.field,
            "message": self.message,
            "repaired": self.repaired,
        }


# ------------------------------------------------------------------------------------ record codecs


def _encode_catalog_header(header: CatalogHeader) -> bytes:
    buffer = bytearray(CATALOG_HEADER_LENGTH)
    encoder = codecs.CatalogHeaderEncoder().wrap(buffer, 0)
    encoder.version = header.version
    encoder.length = header.length
    encoder.next_recording_id = header.next_recording_id
    encoder.alignment = header.alignment
    return bytes(buffer)


def _encode_descriptor_header(length: int, state: int, checksum: int) -> bytes:
    buffer = bytearray(DESCRIPTOR_HEADER_LENGTH)
    encoder = codecs.RecordingDescriptorHeaderEncoder().wrap(buffer, 0)
    encoder.length = length
    encoder.state = state
    encoder.checksum = checksum
    return bytes(buffer)


def encode_descriptor(descriptor: RecordingDescriptor) -> bytes:
    """The RecordingDescriptor record (block and var data, no padding)."""
    strings = (descriptor.stripped_channel, descriptor.original_channel, descriptor.source_identity)
    buffer = bytearray(_MIN_DESCRIPTOR + sum(len(text) for text in strings))
    encoder = codecs.RecordingDescriptorEncoder().wrap(buffer, 0)
    encoder.control_session_id = descriptor.control_session_id
    encoder.correlation_id = descriptor.correlation_id
    encoder.recording_id = descriptor.recording_id
    encoder.start_timestamp = descriptor.start_timestamp
    encoder.stop_timestamp = descriptor.stop_timestamp
    encoder.start_position = descriptor.start_position
    encoder.stop_position = descriptor.stop_position
    encoder.initial_term_id = descriptor.initial_term_id
    encoder.segment_file_length = descriptor.segment_file_length
    encoder.term_buffer_length = descriptor.term_buffer_length
    encoder.mtu_length = descriptor.mtu_length
    encoder.session_id = descriptor.session_id
    encoder.stream_id = descriptor.stream_id
    encoder.put_stripped_channel(descriptor.stripped_channel)
    encoder.put_original_channel(descriptor.original_channel)
    encoder.put_source_identity(descriptor.source_identity)
    return bytes(buffer[: encoder.encoded_length()])


class Catalog:
    """The catalog of the archive directory ``storage`` (see the module docstring).

    ``create``: make a new catalog (``alignment``, ``capacity_bytes``) when there is none; with
    ``create=False`` or ``read_only=True`` a missing catalog is a ``CatalogError``. ``read_only``: never
    write (no repairs either; problems are only reported). ``file_sync_level``: how far each change is
    synced (Aeron's ``archive.file.sync.level``). ``epoch_clock``: epoch milliseconds, for the stop
    timestamp ``update_stop`` writes when it is given none."""

    def __init__(
        self,
        storage: Storage,
        *,
        create: bool = True,
        read_only: bool = False,
        file_sync_level: SyncLevel = SyncLevel.NONE,
        alignment: int = DEFAULT_ALIGNMENT,
        capacity_bytes: int = DEFAULT_CAPACITY,
        epoch_clock: Callable[[], int] | None = None,
    ) -> None:
        self._storage = storage
        self._location = f"{storage.location}/{CATALOG_FILE_NAME}"
        self._read_only = read_only
        self._sync_level = SyncLevel(file_sync_level)
        self._epoch_clock = epoch_clock
        self._file: StorageFile | None = None
        self._header = CatalogHeader(ARCHIVE_VERSION, CATALOG_HEADER_LENGTH, 0, alignment)
        self._index: dict[int, int] = {}
        self._problems: list[CatalogProblem] = []
        self._next_offset = 0
        self._capacity = 0
        if not _is_alignment(alignment):
            raise CatalogError(
                f"alignment {alignment} is not a power of two in 32..{MAX_ALIGNMENT}", file=self._location
            )
        if not CATALOG_HEADER_LENGTH <= capacity_bytes <= MAX_CATALOG_CAPACITY:
            raise CatalogError(
                f"capacity {capacity_bytes} is outside {CATALOG_HEADER_LENGTH}..{MAX_CATALOG_CAPACITY}",
                file=self._location,
            )
        self._new_alignment = alignment
        self._new_capacity = capacity_bytes
        if not storage.exists(CATALOG_FILE_NAME):
            if read_only or not create:
                raise CatalogError("there is no catalog", file=self._location)
            self._file = storage.open(CATALOG_FILE_NAME, create=True)
            try:
                self._initialise()
            except BaseException:
                self.close()
                raise
            return
        self._file = storage.open(CATALOG_FILE_NAME)
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    # --------------------------------------------------------------------------------- open/create

    def _error(self, reason: str, offset: int | None = None, field: str | None = None) -> CatalogError:
        return CatalogError(reason, file=self._location, offset=offset, field=field)

    def _codec_error(self, exc: CodecError, base: int) -> CatalogError:
        field = exc.message_name if exc.field is None else f"{exc.message_name}.{exc.field}"
        offset = base if exc.offset is None else base + exc.offset
        return self._error(exc.reason, offset, field)

    def _initialise(self) -> None:
        """Write a new, empty catalog over whatever the file holds."""
        file = self._writable()
        self._header = CatalogHeader(ARCHIVE_VERSION, CATALOG_HEADER_LENGTH, 0, self._new_alignment)
        file.truncate(0)
        file.truncate(self._new_capacity)
        file.write(0, _encode_catalog_header(self._header))
        self._sync()
        if self._sync_level != SyncLevel.NONE:
            self._storage.sync_directory()
        self._capacity = self._new_capacity
        self._next_offset = self._header.length
        self._index = {}

    def _is_blank(self, size: int, start: int = 0) -> bool:
        """Whether the file holds nothing but zeros from ``start`` to ``size``."""
        file = self._open_file()
        chunk = 64 * 1024
        return not any(
            any(file.read(offset, min(chunk, size - offset))) for offset in range(start, size, chunk)
        )

    def _check_header(self, head: bytes, size: int) -> CatalogHeader:
        """The catalog header in ``head`` (the file's first bytes), checked."""
        if len(head) < CATALOG_HEADER_LENGTH:
            raise self._error(
                f"the file is {size} bytes, shorter than the {CATALOG_HEADER_LENGTH}-byte catalog header", 0
            )
        decoder = codecs.CatalogHeaderDecoder().wrap(head, 0, CATALOG_HEADER_LENGTH, _VERSION)
        header = CatalogHeader(decoder.version, decoder.length, decoder.next_recording_id, decoder.alignment)
        if header.version >> 16 & 0xFF != ARCHIVE_MAJOR_VERSION:
            raise self._error(
                f"catalog version {header.version} ({header.semantic_version}) is not major version "
                f"{ARCHIVE_MAJOR_VERSION}",
                0,
                "CatalogHeader.version",
            )
        if not CATALOG_HEADER_LENGTH <= header.length <= size:
            raise self._error(
                f"header length {header.length} is outside {CATALOG_HEADER_LENGTH}..{size} (the file's size)",
                4,
                "CatalogHeader.length",
            )
        if not _is_alignment(header.alignment):
            raise self._error(
                f"alignment {header.alignment} is not a power of two in 32..{MAX_ALIGNMENT}",
                16,
                "CatalogHeader.alignment",
            )
        return header

    def _load(self) -> None:
        file = self._open_file()
        size = file.size()
        head = file.read(0, min(size, CATALOG_HEADER_LENGTH))
        try:
            header = self._check_header(head, size)
        except CatalogError:
            # A header that never got written whole (a crash while the catalog was created) with nothing
            # after it: no entry can be lost by starting afresh.
            if self._read_only or not self._is_blank(size, CATALOG_HEADER_LENGTH):
                raise
            self._initialise()
            self._problems.append(
                CatalogProblem(
                    0, None, "CatalogHeader", "no valid header and no entries: created afresh", True
                )
            )
            return
        self._capacity = size
        self._header = header
        last_id = self._scan(size)
        if header.next_recording_id <= last_id or header.next_recording_id < 0:
            if last_id < 0:
                message = f"nextRecordingId {header.next_recording_id} is negative"
            else:
                message = (
                    f"nextRecordingId {header.next_recording_id} is not above "
                    f"the highest recording id {last_id}"
                )
            repair = not self._read_only and last_id < _INT64_MAX
            if repair:
                self._write_catalog_header(replace(header, next_recording_id=last_id + 1))
                self._sync()
                message += f": set to {last_id + 1}"
            self._problems.append(CatalogProblem(0, None, "CatalogHeader.nextRecordingId", message, repair))

    def _scan(self, size: int) -> int:
        """Index the entries; return the highest recording id (-1 for none)."""
        offset = self._header.length
        last_id = -1
        while offset + DESCRIPTOR_HEADER_LENGTH <= size:
            try:
                header_bytes, descriptor_bytes = self._read_entry(offset, size)
                if header_bytes is None:
                    break
                descriptor = self._decode(offset, header_bytes, descriptor_bytes)
            except CatalogError:
                if not self._torn_publication(offset, size):
                    raise
                break
            recording_id = descriptor.recording_id
            if recording_id <= last_id:
                raise self._error(
                    f"recording id {recording_id} does not ascend (the entry before has {last_id})",
                    offset + DESCRIPTOR_HEADER_LENGTH + 16,
                    "RecordingDescriptor.recordingId",
                )
            if recording_id != last_id + 1:
                self._problems.append(
                    CatalogProblem(
                        offset,
                        recording_id,
                        "RecordingDescriptor.recordingId",
                        f"recording id {recording_id} follows {last_id}: the ids in between are missing",
                        False,
                    )
                )
            entry_length = DESCRIPTOR_HEADER_LENGTH + len(descriptor_bytes)
            if entry_length % self._header.alignment:
                self._problems.append(
                    CatalogProblem(
                        offset,
                        recording_id,
                        "RecordingDescriptorHeader.length",
                        f"entry length {entry_length} is not a multiple of "
                        f"the alignment {self._header.alignment}",
                        False,
                    )
                )
            self._index[recording_id] = offset
            last_id = recording_id
            offset += entry_length
        self._next_offset = offset
        return last_id

    def _torn_publication(self, offset: int, size: int) -> bool:
        """Whether the unreadable entry at ``offset`` is the last one, caught by a crash while its length
        was written: a whole descriptor follows its header, the length holds the low bytes of the right
        value (a torn little-endian write) and nothing comes after the entry. Such an entry was never
        published, as if its length were still 0: it is zeroed (reported when read-only)."""
        file = self._open_file()
        header_bytes = file.read(offset, DESCRIPTOR_HEADER_LENGTH)
        available = size - offset - DESCRIPTOR_HEADER_LENGTH
        if len(header_bytes) < DESCRIPTOR_HEADER_LENGTH or available < _MIN_DESCRIPTOR:
            return False
        torn = (
            codecs.RecordingDescriptorHeaderDecoder()
            .wrap(header_bytes, 0, DESCRIPTOR_HEADER_LENGTH, _VERSION)
            .length
        )
        try:
            body = file.read(offset + DESCRIPTOR_HEADER_LENGTH, available)
            encoded = codecs.RecordingDescriptorDecoder().wrap(body, 0, _BLOCK, _VERSION).total_length()
        except CodecError:
            return False
        length = _align(DESCRIPTOR_HEADER_LENGTH + encoded, self._header.alignment) - DESCRIPTOR_HEADER_LENGTH
        if (
            length > available
            or torn == length
            or torn not in (length & 0xFF, length & 0xFFFF, length & 0xFF_FFFF)
        ):
            return False
        after = offset + DESCRIPTOR_HEADER_LENGTH + length
        if after + 4 <= size and any(file.read(after, 4)):
            return False
        message = f"descriptor length {torn} is a torn write of {length}: the entry was never published"
        repaired = not self._read_only
        if repaired:
            file.write(offset, bytes(4))
            self._sync()
            message += "; its length is set to 0"
        self._problems.append(
            CatalogProblem(offset, None, "RecordingDescriptorHeader.length", message, repaired)
        )
        return True

    def _read_entry(self, offset: int, size: int | None = None) -> tuple[bytes | None, bytes]:
        """The descriptor header and descriptor (with its padding) of the entry at ``offset``;
        ``(None, b"")`` at the end of the entries. Never reads past the end of the file."""
        file = self._open_file()
        if size is None:
            size = self._capacity
        header_bytes = file.read(offset, DESCRIPTOR_HEADER_LENGTH)
        if len(header_bytes) < DESCRIPTOR_HEADER_LENGTH:
            raise self._error("the entry's header is cut off by the end of the file", offset)
        header = codecs.RecordingDescriptorHeaderDecoder().wrap(
            header_bytes, 0, DESCRIPTOR_HEADER_LENGTH, _VERSION
        )
        length = header.length
        if length == 0:
            return None, b""
        end = offset + DESCRIPTOR_HEADER_LENGTH + length
        if length < 0 or end > size:
            raise self._error(
                f"descriptor length {length} is outside 1..{size - offset - DESCRIPTOR_HEADER_LENGTH} "
                f"(the bytes left in the file)",
                offset,
                "RecordingDescriptorHeader.length",
            )
        descriptor_bytes = file.read(offset + DESCRIPTOR_HEADER_LENGTH, length)
        if len(descriptor_bytes) < length:
            raise self._error(
                "the descriptor is cut off by the end of the file", offset + DESCRIPTOR_HEADER_LENGTH
            )
        return header_bytes, descriptor_bytes

    def _decode(self, offset: int, header_bytes: bytes, descriptor_bytes: bytes) -> RecordingDescriptor:
        header = codecs.RecordingDescriptorHeaderDecoder().wrap(
            header_bytes, 0, DESCRIPTOR_HEADER_LENGTH, _VERSION
        )
        state = header.state
        if not isinstance(state, RecordingState) or state == RecordingState.NULL_VALUE:
            raise self._error(
                f"state {header.state_raw} is not a RecordingState",
                offset + 4,
                "RecordingDescriptorHeader.state",
            )
        base = offset + DESCRIPTOR_HEADER_LENGTH
        try:
            d = codecs.RecordingDescriptorDecoder().wrap(descriptor_bytes, 0, _BLOCK, _VERSION)
            descriptor = RecordingDescriptor(
                recording_id=d.recording_id,
                control_session_id=d.control_session_id,
                correlation_id=d.correlation_id,
                start_timestamp=d.start_timestamp,
                stop_timestamp=d.stop_timestamp,
                start_position=d.start_position,
                stop_position=d.stop_position,
                initial_term_id=d.initial_term_id,
                segment_file_length=d.segment_file_length,
                term_buffer_length=d.term_buffer_length,
                mtu_length=d.mtu_length,
                session_id=d.session_id,
                stream_id=d.stream_id,
                stripped_channel=d.stripped_channel_str(),
                original_channel=d.original_channel_str(),
                source_identity=d.source_identity_str(),
                state=state,
                checksum=header.checksum,
            )
        except CodecError as exc:
            raise self._codec_error(exc, base) from None
        if descriptor.recording_id < 0:
            raise self._error(
                f"recording id {descriptor.recording_id} is negative",
                base + 16,
                "RecordingDescriptor.recordingId",
            )
        return descriptor

    # ------------------------------------------------------------------------------------ plumbing

    def _open_file(self) -> StorageFile:
        if self._file is None:
            raise self._error("the catalog is closed")
        return self._file

    def _writable(self) -> StorageFile:
        file = self._open_file()
        if self._read_only:
            raise self._error("the catalog was opened read-only")
        return file

    def _sync(self) -> None:
        if self._sync_level != SyncLevel.NONE:
            self._open_file().sync(self._sync_level)

    def _write_catalog_header(self, header: CatalogHeader) -> None:
        file = self._writable()
        write_changes(file, 0, _encode_catalog_header(self._header), _encode_catalog_header(header))
        self._header = header

    def _offset_of(self, recording_id: int) -> int:
        offset = self._index.get(recording_id)
        if offset is None:
            raise self._error(f"unknown recording id {recording_id}")
        return offset

    def _grow(self, needed: int) -> None:
        """Make the file at least ``needed`` bytes long, growing by half its size at a time."""
        if needed > MAX_CATALOG_CAPACITY:
            raise self._error(
                f"the catalog is full: the entry needs the file to be {needed} bytes, more than the "
                f"maximum {MAX_CATALOG_CAPACITY}"
            )
        capacity = self._capacity
        while capacity < needed:
            capacity = min(capacity + max(capacity >> 1, 1), MAX_CATALOG_CAPACITY)
        self._writable().truncate(capacity)
        self._sync()
        self._capacity = capacity

    def _update(self, recording_id: int, **changes: Any) -> None:
        """Rewrite the fields ``changes`` of an entry, writing only the bytes that change."""
        file = self._writable()
        offset = self._offset_of(recording_id)
        header_bytes, descriptor_bytes = self._read_entry(offset)
        if header_bytes is None:
            raise self._error(f"the entry of recording {recording_id} is gone", offset)  # pragma: no cover
        old = self._decode(offset, header_bytes, descriptor_bytes)
        new = replace(old, **changes)
        length = len(descriptor_bytes)
        try:
            old_bytes, new_bytes = encode_descriptor(old), encode_descriptor(new)
            if new.stop_position != old.stop_position:
                # The stop position's top byte goes to 0x80 first, alone: until the last byte of the
                # write below lands, the field reads as a negative number other than -1, never as a
                # mix of old and new bytes that looks like a position (module docstring).
                top = _STOP_POSITION_OFFSET + 7
                file.write(offset + DESCRIPTOR_HEADER_LENGTH + top, _TORN_STOP_TOP_BYTE)
                old_bytes = old_bytes[:top] + _TORN_STOP_TOP_BYTE + old_bytes[top + 1 :]
            changed = write_changes(file, offset + DESCRIPTOR_HEADER_LENGTH, old_bytes, new_bytes)
            changed |= write_changes(
                file,
                offset,
                _encode_descriptor_header(length, old.state, old.checksum),
                _encode_descriptor_header(length, new.state, new.checksum),
            )
        except CodecError as exc:
            raise self._codec_error(exc, offset) from None
        if changed:
            self._sync()

    # -------------------------------------------------------------------------------------- reading

    @property
    def header(self) -> CatalogHeader:
        """The catalog header as it is in the file."""
        return self._header

    @property
    def next_recording_id(self) -> int:
        return self._header.next_recording_id

    @property
    def capacity_bytes(self) -> int:
        """The file's length: the room for entries before it has to grow."""
        return self._capacity

    @property
    def alignment(self) -> int:
        return self._header.alignment

    @property
    def problems(self) -> tuple[CatalogProblem, ...]:
        """What opening found readable but wrong, in file order (the header's first); see the module
        docstring for what is reported and what repaired."""
        return tuple(sorted(self._problems, key=lambda p: (p.offset, p.field)))

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def location(self) -> str:
        """The catalog file, for messages."""
        return self._location

    @property
    def epoch_clock(self) -> Callable[[], int] | None:
        return self._epoch_clock

    def entry_offset(self, recording_id: int) -> int | None:
        """The byte offset of the recording's entry (its descriptor header), ``None`` if unknown."""
        return self._index.get(recording_id)

    def recording(self, recording_id: int) -> RecordingDescriptor | None:
        """The recording's descriptor in any state; ``None`` if the id was never allocated."""
        offset = self._index.get(recording_id)
        if offset is None:
            return None
        header_bytes, descriptor_bytes = self._read_entry(offset)
        if header_bytes is None:
            raise self._error(f"the entry of recording {recording_id} is gone", offset)
        return self._decode(offset, header_bytes, descriptor_bytes)

    def stop_position(self, recording_id: int) -> int | None:
        """The recording's stop position as its entry holds it (``recording(...).stop_position``, read
        alone: one field, no descriptor decoded); ``None`` if the id was never allocated."""
        offset = self._index.get(recording_id)
        if offset is None:
            return None
        field = self._open_file().read(offset + DESCRIPTOR_HEADER_LENGTH + _STOP_POSITION_OFFSET, 8)
        if len(field) < 8:
            raise self._error(f"the entry of recording {recording_id} is cut off by the file's end", offset)
        return int.from_bytes(field, "little", signed=True)

    def recordings(self, *, include_deleted: bool = False) -> Iterator[RecordingDescriptor]:
        """Every recording, ascending by id: VALID and INVALID ones, and DELETED ones when asked."""
        for recording_id in list(self._index):
            descriptor = self.recording(recording_id)
            if descriptor is not None and (include_deleted or descriptor.state != RecordingState.DELETED):
                yield descriptor

    def find_last(self, min_recording_id: int, session_id: int, stream_id: int, channel_fragment: str) -> int:
        """Aeron's FindLastMatchingRecording: the highest id >= ``min_recording_id`` of a VALID recording
        with this session and stream whose stripped channel contains ``channel_fragment``; -1 if none."""
        for recording_id in sorted(self._index, reverse=True):
            if recording_id < min_recording_id:
                break
            descriptor = self.recording(recording_id)
            if (
                descriptor is not None
                and descriptor.state == RecordingState.VALID
                and descriptor.session_id == session_id
                and descriptor.stream_id == stream_id
                and channel_fragment in descriptor.stripped_channel
            ):
                return recording_id
        return NULL_RECORD_ID

    # -------------------------------------------------------------------------------------- writing

    def add_recording(
        self,
        *,
        start_position: int,
        start_timestamp: int,
        initial_term_id: int,
        segment_file_length: int,
        term_buffer_length: int,
        mtu_length: int,
        session_id: int,
        stream_id: int,
        stripped_channel: str,
        original_channel: str,
        source_identity: str,
        control_session_id: int = 0,
        correlation_id: int = 0,
        stop_position: int = NULL_POSITION,
        stop_timestamp: int = NULL_TIMESTAMP,
    ) -> int:
        """Append a VALID entry for a new recording and return its id (``nextRecordingId``, which then
        goes up by one). The entry is published only once complete (see the module docstring)."""
        file = self._writable()
        recording_id = self._header.next_recording_id
        if not 0 <= recording_id < _INT64_MAX:
            raise self._error(f"no recording id left to allocate: nextRecordingId is {recording_id}")
        descriptor = RecordingDescriptor(
            recording_id=recording_id,
            control_session_id=control_session_id,
            correlation_id=correlation_id,
            start_timestamp=start_timestamp,
            stop_timestamp=stop_timestamp,
            start_position=start_position,
            stop_position=stop_position,
            initial_term_id=initial_term_id,
            segment_file_length=segment_file_length,
            term_buffer_length=term_buffer_length,
            mtu_length=mtu_length,
            session_id=session_id,
            stream_id=stream_id,
            stripped_channel=stripped_channel,
            original_channel=original_channel,
            source_identity=source_identity,
            state=RecordingState.VALID,
            checksum=0,
        )
        try:
            body = encode_descriptor(descriptor)
        except CodecError as exc:
            raise self._error(f"recording {recording_id} cannot be encoded: {exc}") from None
        frame_length = _align(DESCRIPTOR_HEADER_LENGTH + len(body), self._header.alignment)
        if frame_length - DESCRIPTOR_HEADER_LENGTH > _INT32_MAX:
            raise self._error(f"recording {recording_id}'s descriptor is too long ({len(body)} bytes)")
        offset = self._next_offset
        end = offset + frame_length
        if end > self._capacity:
            self._grow(end)
        # The descriptor, its padding and a zero header for the entry after it (a torn earlier attempt
        # may have left bytes there), then the descriptor header without its length.
        next_header = min(DESCRIPTOR_HEADER_LENGTH, self._capacity - end)
        file.write(
            offset + DESCRIPTOR_HEADER_LENGTH,
            body + bytes(frame_length - DESCRIPTOR_HEADER_LENGTH - len(body) + next_header),
        )
        header = _encode_descriptor_header(frame_length - DESCRIPTOR_HEADER_LENGTH, RecordingState.VALID, 0)
        file.write(offset + 4, header[4:])
        self._sync()
        file.write(offset, header[:4])  # publish: the entry exists from here on
        self._index[recording_id] = offset
        self._next_offset = end
        self._write_catalog_header(replace(self._header, next_recording_id=recording_id + 1))
        self._sync()
        return recording_id

    def update_stop(self, recording_id: int, stop_position: int, stop_timestamp: int | None = None) -> None:
        """The recording stopped at ``stop_position`` at ``stop_timestamp`` (default: the epoch clock's
        now)."""
        if stop_timestamp is None:
            if self._epoch_clock is None:
                raise self._error("update_stop needs a stop timestamp: the catalog has no epoch clock")
            stop_timestamp = self._epoch_clock()
        self._update(recording_id, stop_position=stop_position, stop_timestamp=stop_timestamp)

    def extend(
        self, recording_id: int, *, control_session_id: int, correlation_id: int, session_id: int
    ) -> None:
        """A new image continues the recording: new control session, correlation and session ids, and
        the recording is active again (stop position and timestamp -1)."""
        self._update(
            recording_id,
            control_session_id=control_session_id,
            correlation_id=correlation_id,
            session_id=session_id,
            stop_position=NULL_POSITION,
            stop_timestamp=NULL_TIMESTAMP,
        )

    def update_start_position(self, recording_id: int, start_position: int) -> None:
        """The recording now starts at ``start_position`` (its earlier segments were purged)."""
        self._update(recording_id, start_position=start_position)

    def change_state(self, recording_id: int, state: RecordingState) -> None:
        """Set the entry's state: DELETED when a recording is deleted, INVALID when it is unusable."""
        if not isinstance(state, RecordingState) or state == RecordingState.NULL_VALUE:
            raise self._error(f"{state!r} is not a recording state")
        self._update(recording_id, state=state)

    def close(self) -> None:
        """Release the file. Idempotent."""
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
