"""The catalog (``archive.catalog``): Java Aeron's catalogs read field for field as ArchiveTool printed
them, ours written byte for byte as Java writes them, alignment 1024, growth, publication order,
repairs, errors that say where, and corrupt input fuzzed."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.paths import JAVA_ARCHIVES, JavaArchive
from support.recordings import DESCRIPTOR_FIELDS

from cluster.archive import (
    ARCHIVE_VERSION,
    Catalog,
    CatalogError,
    CatalogHeader,
    RecordingDescriptor,
    RecordingState,
)
from cluster.archive.catalog import CATALOG_FILE_NAME
from cluster.storage import RealStorage, Storage, SyncLevel
from generated import aeron_archive_codecs as codecs

CASES = [pytest.param(case, id=case.name) for case in JAVA_ARCHIVES]
ARCHIVE_A = JAVA_ARCHIVES[0]
ARCHIVE_B = JAVA_ARCHIVES[1]
NODE0 = JAVA_ARCHIVES[2]

# The fields a RecordingDescriptor and ArchiveTool share, ours -> Aeron's name.


def _java_catalog(
    java_archive: Callable[[JavaArchive], Path], case: JavaArchive
) -> list[RecordingDescriptor]:
    with Catalog(RealStorage(java_archive(case)), read_only=True) as catalog:
        return list(catalog.recordings(include_deleted=True))


def _add_like(catalog: Catalog, descriptor: RecordingDescriptor) -> int:
    """Add a recording with every field of ``descriptor`` (and its state)."""
    recording_id = catalog.add_recording(
        start_position=descriptor.start_position,
        start_timestamp=descriptor.start_timestamp,
        initial_term_id=descriptor.initial_term_id,
        segment_file_length=descriptor.segment_file_length,
        term_buffer_length=descriptor.term_buffer_length,
        mtu_length=descriptor.mtu_length,
        session_id=descriptor.session_id,
        stream_id=descriptor.stream_id,
        stripped_channel=descriptor.stripped_channel,
        original_channel=descriptor.original_channel,
        source_identity=descriptor.source_identity,
        control_session_id=descriptor.control_session_id,
        correlation_id=descriptor.correlation_id,
        stop_position=descriptor.stop_position,
        stop_timestamp=descriptor.stop_timestamp,
    )
    if descriptor.state != RecordingState.VALID:
        catalog.change_state(recording_id, descriptor.state)
    return recording_id


def _sample(recording_id: int = 0, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "start_position": 0,
        "start_timestamp": 1_700_000_000_000 + recording_id,
        "initial_term_id": 7 + recording_id,
        "segment_file_length": 128 * 1024 * 1024,
        "term_buffer_length": 64 * 1024,
        "mtu_length": 1408,
        "session_id": 1000 + recording_id,
        "stream_id": 1001,
        "stripped_channel": "aeron:udp?endpoint=127.0.0.1:9270",
        "original_channel": "aeron:udp?endpoint=127.0.0.1:9270|term-length=64k",
        "source_identity": "127.0.0.1:40000",
    }
    values.update(changes)
    return values


# ---------------------------------------------------------------------------- Java's catalogs, read


@pytest.mark.parametrize("case", CASES)
def test_java_catalog_reads_as_archivetool_printed_it(
    case: JavaArchive,
    java_archive: Callable[[JavaArchive], Path],
    archivetool_describe: Callable[[Path], Any],
    files_fingerprint: Callable[[Path], dict[str, str]],
) -> None:
    directory = java_archive(case)
    before = files_fingerprint(directory)
    expected = archivetool_describe(case.describe)
    with Catalog(RealStorage(directory), read_only=True) as catalog:
        assert catalog.capacity_bytes == expected.capacity == 1024 * 1024
        assert catalog.problems == ()
        recordings = list(catalog.recordings(include_deleted=True))
        assert catalog.header == CatalogHeader(ARCHIVE_VERSION, 32, len(recordings), 64)
    # ArchiveTool describes the recordings that are not DELETED; each field must be what it printed.
    shown = [descriptor for descriptor in recordings if descriptor.state != RecordingState.DELETED]
    assert [descriptor.recording_id for descriptor in shown] == sorted(expected.descriptors)
    for descriptor in shown:
        printed = expected.descriptors[descriptor.recording_id]
        ours = {aeron: getattr(descriptor, name) for name, aeron in DESCRIPTOR_FIELDS.items()}
        assert ours == {aeron: printed[aeron] for aeron in DESCRIPTOR_FIELDS.values()}
        assert descriptor.state == RecordingState.VALID and descriptor.checksum == 0
    assert [descriptor.recording_id for descriptor in recordings] == list(range(len(recordings)))
    assert files_fingerprint(directory) == before, "a read-only catalog changed a file"


def test_archive_a_recording_1_was_purged_and_is_deleted(java_archive: Callable[[JavaArchive], Path]) -> None:
    with Catalog(RealStorage(java_archive(ARCHIVE_A)), read_only=True) as catalog:
        deleted = catalog.recording(1)
        assert deleted is not None and deleted.state == RecordingState.DELETED
        assert (deleted.stream_id, deleted.stop_position) == (1002, 207040)
        assert [d.recording_id for d in catalog.recordings()] == [0]
        assert [d.recording_id for d in catalog.recordings(include_deleted=True)] == [0, 1]
        assert catalog.recording(2) is None
        assert catalog.entry_offset(0) == 32 and catalog.entry_offset(1) == 32 + 256
        # The truncated and extended recording 0: the extension's session and correlation ids.
        extended = catalog.recording(0)
        assert extended is not None
        assert (extended.session_id, extended.correlation_id, extended.stop_position) == (
            -1224040348,
            14,
            1042272,
        )


def test_node0_was_killed_while_recording_its_log(java_archive: Callable[[JavaArchive], Path]) -> None:
    with Catalog(RealStorage(java_archive(NODE0)), read_only=True) as catalog:
        log = catalog.recording(0)
        assert log is not None and log.state == RecordingState.VALID
        assert (log.stop_position, log.stop_timestamp) == (-1, -1) and catalog.stop_position(0) == -1
        assert catalog.find_last(0, log.session_id, 100, "alias=log") == 0
        assert catalog.find_last(1, log.session_id, 100, "alias=log") == -1


# ---------------------------------------------------------------------------- ours, byte for byte


@pytest.mark.parametrize("case", CASES)
def test_a_catalog_we_write_is_java_s_file_byte_for_byte(
    case: JavaArchive, java_archive: Callable[[JavaArchive], Path], tmp_path: Path
) -> None:
    """The same recordings added in the same order give Java's whole file: the 32-byte header (version
    3.1.0, length 32, nextRecordingId, alignment 64), every entry with its padding, and zeros to 1 MiB.
    No field has to differ: the header holds nothing but the format and the next id."""
    recordings = _java_catalog(java_archive, case)
    with Catalog(RealStorage(tmp_path)) as catalog:
        for descriptor in recordings:
            _add_like(catalog, descriptor)
    ours = (tmp_path / CATALOG_FILE_NAME).read_bytes()
    theirs = (java_archive(case) / CATALOG_FILE_NAME).read_bytes()
    assert len(ours) == len(theirs) == 1024 * 1024
    assert ours[:32] == theirs[:32]
    first_entry = 32 + 32 + codecs.RecordingDescriptorHeaderDecoder().wrap(theirs, 32, 32, 10).length
    assert ours[32:first_entry] == theirs[32:first_entry]
    assert ours == theirs


def test_archive_a_s_history_replayed_through_the_catalog_gives_java_s_file(
    java_archive: Callable[[JavaArchive], Path], tmp_path: Path
) -> None:
    """README's archive run, step by step: record, stop, extend (new session, correlation id 14),
    stop, truncate, record again, stop, purge."""
    channel = "aeron:udp?endpoint=127.0.0.1:9270"
    common = {
        "start_position": 0,
        "segment_file_length": 134217728,
        "term_buffer_length": 16777216,
        "mtu_length": 1408,
        "stripped_channel": channel,
        "original_channel": channel,
        "source_identity": "127.0.0.1:48073",
    }
    with Catalog(RealStorage(tmp_path), epoch_clock=lambda: 1796527047941) as catalog:
        first = catalog.add_recording(
            start_timestamp=1796527047052,
            initial_term_id=-1611572675,
            session_id=-1224040349,
            stream_id=1001,
            **common,
        )
        active = catalog.recording(first)
        assert active is not None and (active.stop_position, active.stop_timestamp) == (-1, -1)
        catalog.update_stop(first, 1042272, 1796527047300)
        catalog.extend(first, control_session_id=1215499472, correlation_id=14, session_id=-1224040348)
        extended = catalog.recording(first)
        assert extended is not None and (extended.stop_position, extended.stop_timestamp) == (-1, -1)
        catalog.update_stop(first, 1461440, 1796527047412)
        catalog.update_stop(first, 1042272, 1796527047412)  # TruncateRecordingRequest(0, 1042272)
        second = catalog.add_recording(
            start_timestamp=1796527047851,
            initial_term_id=-771862817,
            session_id=-1224040347,
            stream_id=1002,
            **common,
        )
        catalog.update_stop(second, 207040)  # the epoch clock's now
        catalog.change_state(second, RecordingState.DELETED)
        assert (first, second) == (0, 1)
    ours = (tmp_path / CATALOG_FILE_NAME).read_bytes()
    assert ours == (java_archive(ARCHIVE_A) / CATALOG_FILE_NAME).read_bytes()


# ---------------------------------------------------------------------------------- our own files


def test_recordings_round_trip_through_a_reopened_catalog(tmp_path: Path) -> None:
    with Catalog(RealStorage(tmp_path), file_sync_level=SyncLevel.ALL) as catalog:
        ids = [catalog.add_recording(**_sample(i, stream_id=1001 + i % 2)) for i in range(5)]
        assert ids == [0, 1, 2, 3, 4] and catalog.next_recording_id == 5
        catalog.update_stop(1, 4096, 1_700_000_001_000)
        catalog.update_start_position(2, 1024)
        catalog.extend(3, control_session_id=9, correlation_id=10, session_id=11)
        catalog.change_state(4, RecordingState.INVALID)
        before = list(catalog.recordings(include_deleted=True))
    with Catalog(RealStorage(tmp_path), create=False) as catalog:
        after = list(catalog.recordings(include_deleted=True))
        assert catalog.problems == ()
    assert after == before
    assert (after[1].stop_position, after[1].stop_timestamp) == (4096, 1_700_000_001_000)
    assert after[2].start_position == 1024
    assert (after[3].control_session_id, after[3].correlation_id, after[3].session_id) == (9, 10, 11)
    assert after[4].state == RecordingState.INVALID
    assert [d.recording_id for d in after] == ids
    with Catalog(RealStorage(tmp_path), create=False) as catalog:  # the field read alone says the same
        stops = [catalog.stop_position(i) for i in ids]
        assert stops == [d.stop_position for d in after] == [-1, 4096, -1, -1, -1]
        assert catalog.stop_position(len(ids)) is None
    assert after[0] == RecordingDescriptor(
        recording_id=0,
        control_session_id=0,
        correlation_id=0,
        stop_timestamp=-1,
        stop_position=-1,
        state=RecordingState.VALID,
        checksum=0,
        **_sample(0),
    )


def test_to_json_uses_aeron_s_names_and_the_state_s_name(tmp_path: Path) -> None:
    with Catalog(RealStorage(tmp_path)) as catalog:
        catalog.add_recording(**_sample())
        catalog.change_state(0, RecordingState.DELETED)
        descriptor = catalog.recording(0)
    assert descriptor is not None
    values = descriptor.to_json()
    assert set(values) >= {*DESCRIPTOR_FIELDS.values(), "state"}
    assert values["state"] == "DELETED" and values["recordingId"] == 0 and values["stopPosition"] == -1


def test_an_update_writes_only_the_bytes_that_change(tmp_path: Path) -> None:
    with Catalog(RealStorage(tmp_path)) as catalog:
        catalog.add_recording(**_sample())
        before = (tmp_path / CATALOG_FILE_NAME).read_bytes()
        catalog.update_stop(0, 0x1234, 0x5678)
        after = (tmp_path / CATALOG_FILE_NAME).read_bytes()
    changed = [i for i in range(len(before)) if before[i] != after[i]]
    # stopTimestamp at descriptor offset 32 and stopPosition at 48; the descriptor starts at 64.
    assert min(changed) >= 64 + 32 and max(changed) < 64 + 56


def test_find_last_matches_session_stream_fragment_and_valid_state(tmp_path: Path) -> None:
    with Catalog(RealStorage(tmp_path)) as catalog:
        for recording_id, (session, stream, channel) in enumerate(
            [
                (5, 10, "aeron:udp?endpoint=localhost:1|alias=log"),
                (5, 10, "aeron:udp?endpoint=localhost:2"),
                (6, 10, "aeron:udp?endpoint=localhost:1|alias=log"),
                (5, 11, "aeron:udp?endpoint=localhost:1|alias=log"),
                (5, 10, "aeron:udp?endpoint=localhost:1|alias=log"),
            ]
        ):
            catalog.add_recording(
                **_sample(recording_id, session_id=session, stream_id=stream, stripped_channel=channel)
            )
        assert catalog.find_last(0, 5, 10, "alias=log") == 4
        assert catalog.find_last(0, 5, 10, "localhost:2") == 1
        assert catalog.find_last(0, 5, 10, "") == 4
        catalog.change_state(4, RecordingState.DELETED)
        assert catalog.find_last(0, 5, 10, "alias=log") == 0
        assert catalog.find_last(1, 5, 10, "alias=log") == -1
        catalog.change_state(0, RecordingState.INVALID)
        assert catalog.find_last(0, 5, 10, "alias=log") == -1
        assert catalog.find_last(0, 6, 10, "alias") == 2
        assert catalog.find_last(0, 5, 12, "") == -1


def test_the_file_grows_by_half_when_an_entry_does_not_fit(tmp_path: Path) -> None:
    with Catalog(RealStorage(tmp_path), capacity_bytes=256) as catalog:
        assert catalog.capacity_bytes == (tmp_path / CATALOG_FILE_NAME).stat().st_size == 256
        capacities = []
        for i in range(6):
            catalog.add_recording(**_sample(i))
            capacities.append(catalog.capacity_bytes)
        assert (tmp_path / CATALOG_FILE_NAME).stat().st_size == catalog.capacity_bytes
    # Entries of 256 bytes after the 32-byte header: each growth is by half, until the entry fits.
    assert capacities == [384, 576, 864, 1296, 1944, 1944]
    with Catalog(RealStorage(tmp_path), read_only=True) as catalog:
        assert [d.recording_id for d in catalog.recordings()] == list(range(6))
        assert catalog.problems == ()


@pytest.mark.parametrize("header_length", [32, 1024])
def test_a_catalog_aligned_to_1024_bytes_reads_and_grows(tmp_path: Path, header_length: int) -> None:
    """Older Aerons padded each entry to 1024 bytes; the file is built here with the codecs alone."""
    buffer = bytearray(header_length + 2 * 1024)
    header = codecs.CatalogHeaderEncoder().wrap(buffer, 0)
    header.version = ARCHIVE_VERSION
    header.length = header_length
    header.next_recording_id = 2
    header.alignment = 1024
    offset = header_length
    for recording_id in range(2):
        values = _sample(recording_id)
        encoder = codecs.RecordingDescriptorEncoder().wrap(buffer, offset + 32)
        encoder.recording_id = recording_id
        encoder.stop_position = encoder.stop_timestamp = -1
        for name in (
            "start_position",
            "start_timestamp",
            "initial_term_id",
            "segment_file_length",
            "term_buffer_length",
            "mtu_length",
            "session_id",
            "stream_id",
        ):
            setattr(encoder, name, values[name])
        encoder.put_stripped_channel(values["stripped_channel"])
        encoder.put_original_channel(values["original_channel"])
        encoder.put_source_identity(values["source_identity"])
        descriptor_header = codecs.RecordingDescriptorHeaderEncoder().wrap(buffer, offset)
        descriptor_header.length = 1024 - 32
        descriptor_header.state = RecordingState.VALID
        offset += 1024
    (tmp_path / CATALOG_FILE_NAME).write_bytes(bytes(buffer))

    with Catalog(RealStorage(tmp_path)) as catalog:
        assert catalog.header == CatalogHeader(ARCHIVE_VERSION, header_length, 2, 1024)
        assert catalog.problems == ()
        assert [(d.recording_id, d.session_id) for d in catalog.recordings()] == [(0, 1000), (1, 1001)]
        assert catalog.add_recording(**_sample(2)) == 2
        assert catalog.entry_offset(2) == header_length + 2048
        assert catalog.capacity_bytes >= header_length + 3 * 1024
    with Catalog(RealStorage(tmp_path), read_only=True) as catalog:
        assert [d.session_id for d in catalog.recordings()] == [1000, 1001, 1002]
        assert catalog.problems == ()


# -------------------------------------------------------------------------- publication and repair


def test_a_torn_add_is_invisible_and_its_leftovers_are_overwritten(tmp_path: Path) -> None:
    """A crash after the descriptor was written but before its header's length: the entry does not
    exist, and the next add zeros the header slot after itself, where the leftovers could be."""
    with Catalog(RealStorage(tmp_path)) as catalog:
        catalog.add_recording(**_sample(0))
        torn_at = 32 + 256
    with (tmp_path / CATALOG_FILE_NAME).open("r+b") as file:
        file.seek(torn_at + 32)
        file.write(b"\xaa" * 700)  # a long descriptor that never got its length
    with Catalog(RealStorage(tmp_path)) as catalog:
        assert [d.recording_id for d in catalog.recordings()] == [0]
        assert catalog.add_recording(**_sample(1)) == 1
        assert catalog.entry_offset(1) == torn_at
    with Catalog(RealStorage(tmp_path), read_only=True) as catalog:
        assert [d.recording_id for d in catalog.recordings()] == [0, 1]
        assert catalog.problems == ()


def _patch_next_recording_id(path: Path, value: int) -> None:
    data = bytearray(path.read_bytes())
    decoder = codecs.CatalogHeaderDecoder().wrap(data, 0, 32, 10)
    version, length, alignment = decoder.version, decoder.length, decoder.alignment
    encoder = codecs.CatalogHeaderEncoder().wrap(data, 0)  # zeros the block
    encoder.version, encoder.length, encoder.alignment = version, length, alignment
    encoder.next_recording_id = value
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("stale", [1, -5])
def test_a_stale_next_recording_id_is_reported_read_only_and_repaired_otherwise(
    tmp_path: Path, stale: int
) -> None:
    with Catalog(RealStorage(tmp_path)) as catalog:
        for i in range(3):
            catalog.add_recording(**_sample(i))
    path = tmp_path / CATALOG_FILE_NAME
    _patch_next_recording_id(path, stale)
    before = path.read_bytes()
    with Catalog(RealStorage(tmp_path), read_only=True) as catalog:
        assert catalog.next_recording_id == stale
        [problem] = catalog.problems
        assert (problem.field, problem.repaired, problem.offset) == (
            "CatalogHeader.nextRecordingId",
            False,
            0,
        )
        assert "highest recording id 2" in problem.message
        with pytest.raises(CatalogError, match="read-only"):
            catalog.add_recording(**_sample(3))
    assert path.read_bytes() == before
    with Catalog(RealStorage(tmp_path)) as catalog:
        assert catalog.next_recording_id == 3
        assert [p.repaired for p in catalog.problems] == [True]
        assert catalog.add_recording(**_sample(3)) == 3
    with Catalog(RealStorage(tmp_path)) as catalog:
        assert catalog.problems == () and catalog.next_recording_id == 4


def test_an_all_zero_catalog_is_created_afresh_unless_read_only(tmp_path: Path) -> None:
    path = tmp_path / CATALOG_FILE_NAME
    path.write_bytes(bytes(4096))
    with pytest.raises(CatalogError, match=r"CatalogHeader\.version"):
        Catalog(RealStorage(tmp_path), read_only=True)
    with Catalog(RealStorage(tmp_path), capacity_bytes=8192) as catalog:
        assert [p.repaired for p in catalog.problems] == [True]
        assert catalog.capacity_bytes == 8192 and catalog.next_recording_id == 0
        assert catalog.add_recording(**_sample()) == 0
    path.write_bytes(b"")
    with Catalog(RealStorage(tmp_path)) as catalog:
        assert catalog.capacity_bytes == 1024 * 1024 and catalog.problems[0].repaired


def test_a_missing_catalog_is_an_error_when_it_may_not_be_created(tmp_path: Path) -> None:
    for kwargs in ({"create": False}, {"read_only": True}):
        with pytest.raises(CatalogError, match="there is no catalog") as excinfo:
            Catalog(RealStorage(tmp_path), **kwargs)
        assert excinfo.value.file == f"{tmp_path}/{CATALOG_FILE_NAME}"
    assert not (tmp_path / CATALOG_FILE_NAME).exists()


def test_misuse_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="alignment 48"):
        Catalog(RealStorage(tmp_path), alignment=48)
    with pytest.raises(CatalogError, match="capacity 16"):
        Catalog(RealStorage(tmp_path), capacity_bytes=16)
    catalog = Catalog(RealStorage(tmp_path))
    with pytest.raises(CatalogError, match="unknown recording id 3"):
        catalog.update_stop(3, 0, 0)
    catalog.add_recording(**_sample())
    with pytest.raises(CatalogError, match="no epoch clock"):
        catalog.update_stop(0, 0)
    with pytest.raises(CatalogError, match="not a recording state"):
        catalog.change_state(0, RecordingState.NULL_VALUE)
    with pytest.raises(CatalogError, match="cannot be encoded"):
        catalog.add_recording(**_sample(stripped_channel="aeron:udp?endpoint=caf\u00e9:1"))
    assert catalog.next_recording_id == 1
    catalog.close()
    catalog.close()
    with pytest.raises(CatalogError, match="closed"):
        catalog.recording(0)


# ------------------------------------------------------------------------ damaged files, and where


def _two_entry_catalog(directory: Path) -> bytearray:
    with Catalog(RealStorage(directory)) as catalog:
        catalog.add_recording(**_sample(0))
        catalog.add_recording(**_sample(1))
    return bytearray((directory / CATALOG_FILE_NAME).read_bytes())


def _put(data: bytearray, offset: int, fmt: str, value: int) -> None:
    struct.pack_into(fmt, data, offset, value)


DAMAGE = [
    ("version 2.0.0", 0, "<i", 2 << 16, 0, "CatalogHeader.version"),
    ("header length", 4, "<i", 8, 4, "CatalogHeader.length"),
    ("alignment 48", 16, "<i", 48, 16, "CatalogHeader.alignment"),
    ("entry length past the end", 32, "<i", 0x7FFF_0000, 32, "RecordingDescriptorHeader.length"),
    ("negative entry length", 32, "<i", -64, 32, "RecordingDescriptorHeader.length"),
    ("state 9", 36, "<i", 9, 36, "RecordingDescriptorHeader.state"),
    ("strippedChannel length", 64 + 80, "<I", 5000, 64 + 84, "RecordingDescriptor.strippedChannel"),
    ("second id not ascending", 288 + 32 + 16, "<q", 0, 288 + 32 + 16, "RecordingDescriptor.recordingId"),
    ("negative id", 64 + 16, "<q", -3, 64 + 16, "RecordingDescriptor.recordingId"),
    ("non-ASCII channel", 64 + 84, "<B", 0xE9, 64 + 84, "RecordingDescriptor.strippedChannel"),
]


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "at", "field"), [pytest.param(*d[1:], id=d[0]) for d in DAMAGE]
)
def test_damage_is_a_catalog_error_naming_file_offset_and_field(
    tmp_path: Path, offset: int, fmt: str, value: int, at: int, field: str
) -> None:
    data = _two_entry_catalog(tmp_path)
    _put(data, offset, fmt, value)
    (tmp_path / CATALOG_FILE_NAME).write_bytes(bytes(data))
    for read_only in (True, False):
        with pytest.raises(CatalogError) as excinfo:
            Catalog(RealStorage(tmp_path), read_only=read_only)
        error = excinfo.value
        assert (error.file, error.offset, error.field) == (f"{tmp_path}/{CATALOG_FILE_NAME}", at, field)
        assert str(error).startswith(f"{tmp_path}/{CATALOG_FILE_NAME}, offset {at}, {field}: ")


# ----------------------------------------------------------------------------------------- fuzzing


@pytest.fixture(scope="module")
def valid_catalog(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    directory = tmp_path_factory.mktemp("valid-catalog")
    with Catalog(RealStorage(directory), capacity_bytes=1536) as catalog:
        for i in range(3):
            catalog.add_recording(**_sample(i, stripped_channel="aeron:udp?endpoint=h:1" + "x" * 30 * i))
        catalog.update_stop(1, 640, 5)
        catalog.change_state(2, RecordingState.DELETED)
    return (directory / CATALOG_FILE_NAME).read_bytes()


def _exercise(storage: Storage, *, read_only: bool) -> None:
    """Open; on success read everything, and (when writable) add a recording: CatalogError or success."""
    try:
        catalog = Catalog(storage, read_only=read_only, capacity_bytes=1536)
    except CatalogError:
        return
    with catalog:
        recordings = list(catalog.recordings(include_deleted=True))
        assert [d.recording_id for d in recordings] == sorted({d.recording_id for d in recordings})
        for descriptor in recordings:
            assert catalog.recording(descriptor.recording_id) == descriptor
        catalog.find_last(0, 1000, 1001, "aeron")
        if read_only:
            assert not any(problem.repaired for problem in catalog.problems)
        if not read_only:
            try:
                recording_id = catalog.add_recording(**_sample(9))
            except CatalogError:
                return
            assert catalog.recording(recording_id) is not None


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scratch directory for every example: each example writes its catalog there first."""
    return tmp_path_factory.mktemp("catalog-fuzz")


def _check_corrupt(directory: Path, strict: Callable[[Storage], Storage], data: bytes) -> None:
    for read_only in (True, False):
        (directory / CATALOG_FILE_NAME).write_bytes(data)
        _exercise(strict(RealStorage(directory)), read_only=read_only)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flips=st.lists(st.tuples(st.integers(0, 1535), st.integers(1, 255)), max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 1536)),
)
def test_flipped_or_truncated_catalogs_open_or_raise_catalog_error(
    valid_catalog: bytes,
    fuzz_dir: Path,
    strict: Callable[[Storage], Storage],
    flips: list[tuple[int, int]],
    cut: int | None,
) -> None:
    data = bytearray(valid_catalog)
    for index, mask in flips:
        data[index] ^= mask
    if cut is not None:
        del data[cut:]
    _check_corrupt(fuzz_dir, strict, bytes(data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.tuples(
        st.integers(-(2**31), 2**31 - 1),
        st.integers(-(2**31), 2**31 - 1),
        st.integers(-(2**63), 2**63 - 1),
        st.sampled_from([0, 1, 32, 48, 64, 1024, 1 << 20, 1 << 21, -64]),
    ),
    body=st.binary(max_size=1500),
)
def test_random_bytes_behind_a_plausible_header_open_or_raise_catalog_error(
    fuzz_dir: Path,
    strict: Callable[[Storage], Storage],
    header: tuple[int, int, int, int],
    body: bytes,
) -> None:
    version, length, next_id, alignment = header
    data = bytearray(32)
    encoder = codecs.CatalogHeaderEncoder().wrap(data, 0)
    encoder.version = version if version % 3 else ARCHIVE_VERSION
    encoder.length = length if length % 2 else 32
    encoder.next_recording_id = next_id
    encoder.alignment = alignment
    _check_corrupt(fuzz_dir, strict, bytes(data) + body)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_open_or_raise_catalog_error(
    fuzz_dir: Path, strict: Callable[[Storage], Storage], data: bytes
) -> None:
    _check_corrupt(fuzz_dir, strict, data)


def test_a_copy_of_a_java_catalog_is_writable(
    java_archive: Callable[[JavaArchive], Path], tmp_path: Path
) -> None:
    """Java's catalog opened for writing (on a copy): node0's active log recording stopped, a new one
    added after the existing entries."""
    shutil.copy(java_archive(NODE0) / CATALOG_FILE_NAME, tmp_path / CATALOG_FILE_NAME)
    with Catalog(RealStorage(tmp_path)) as catalog:
        assert catalog.problems == ()
        catalog.update_stop(0, 768544, 1796527008657)
        assert catalog.add_recording(**_sample(3)) == 3
        assert catalog.entry_offset(3) == 32 + 3 * 256
    with Catalog(RealStorage(tmp_path), read_only=True) as catalog:
        log = catalog.recording(0)
        assert log is not None and (log.stop_position, log.stop_timestamp) == (768544, 1796527008657)
        assert [d.recording_id for d in catalog.recordings()] == [0, 1, 2, 3]


# ------------------------------------------------------------------- crashes, on the simulated disk


def _crash_scenario(storage: Storage, level: SyncLevel, done: list[int]) -> None:
    with Catalog(storage, file_sync_level=level, capacity_bytes=512) as catalog:
        for i in range(4):  # long channels: lengths above 255 can tear, and the file grows
            done.append(
                catalog.add_recording(**_sample(i, stripped_channel="aeron:ipc?alias=" + "x" * 90 * i))
            )
        catalog.update_stop(1, 4096, 5)
        catalog.change_state(2, RecordingState.DELETED)
        done.append(-1)


@pytest.mark.parametrize("level", [SyncLevel.DATA, SyncLevel.NONE], ids=["synced", "unsynced"])
def test_a_power_loss_at_any_write_leaves_a_catalog_that_opens(level: SyncLevel) -> None:
    """Every storage operation of a run is in turn the last before a power loss (several seeds each):
    the catalog then opens for writing -- repairing a torn creation, a torn publication, a stale
    nextRecordingId -- with ids 0, 1, ... and each descriptor whole; synced, every add that returned
    is there. Runs where ``cluster.storage.sim`` (the simulated disk) is present."""
    sim = pytest.importorskip("cluster.storage.sim", reason="the simulated disk is not on this branch")
    probe = sim.SimDisk(seed=0)
    _crash_scenario(probe.storage("archive"), level, [])
    for operation in range(1, probe.operation_count + 1):
        for seed in range(6):
            disk = sim.SimDisk(seed=seed)
            storage = disk.storage("archive")
            done: list[int] = []
            disk.crash_at(operation)
            with pytest.raises(sim.SimulatedCrash):
                _crash_scenario(storage, level, done)
            disk.crash(power_loss=True)
            with Catalog(storage, capacity_bytes=512) as catalog:
                recordings = list(catalog.recordings(include_deleted=True))
                ids = [descriptor.recording_id for descriptor in recordings]
                assert ids == list(range(len(ids))), (operation, seed)
                for descriptor in recordings:
                    assert (
                        descriptor.stripped_channel == "aeron:ipc?alias=" + "x" * 90 * descriptor.recording_id
                    )
                if level != SyncLevel.NONE:
                    assert len(ids) >= len([i for i in done if i >= 0]), (operation, seed)
                    assert -1 not in done or recordings[2].state == RecordingState.DELETED
                assert catalog.add_recording(**_sample(9)) == len(ids)
            with Catalog(storage, read_only=True) as catalog:
                assert catalog.problems == (), (operation, seed)
