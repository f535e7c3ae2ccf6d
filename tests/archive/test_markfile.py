"""The archive mark file (``archive-mark.dat``): Java's read as ArchiveTool printed them, ours written
byte for byte as Java's, the liveness rule, the distinct error log (checked against the error logs of
Java's cluster mark files and ClusterTool's ``errors`` output), and corrupt input fuzzed."""

from __future__ import annotations

import contextlib
import datetime
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.clustertool import clustertool_errors
from support.paths import JAVA_ARCHIVES, JAVA_CLUSTER_ERRORS, JavaArchive

from cluster.archive import ARCHIVE_VERSION, ArchiveMarkFile, MarkFileError, read_error_log
from cluster.archive.markfile import MARK_FILE_NAME, compose_version, is_active, version_text
from cluster.storage import RealStorage, Storage
from generated import aeron_cluster_mark_codecs

CASES = [pytest.param(case, id=case.name) for case in JAVA_ARCHIVES]
NODE0 = JAVA_ARCHIVES[2]


def _settings_of(header: Any) -> dict[str, Any]:
    """``ArchiveMarkFile.create``'s arguments that give ``header`` back."""
    return {
        "archive_id": header.archive_id,
        "control_channel": header.control_channel,
        "control_stream_id": header.control_stream_id,
        "local_control_channel": header.local_control_channel,
        "local_control_stream_id": header.local_control_stream_id,
        "events_channel": header.events_channel,
        "events_stream_id": header.events_stream_id,
        "aeron_directory": header.aeron_directory,
        "pid": header.pid,
    }


SETTINGS = {
    "archive_id": 7,
    "control_channel": "aeron:udp?endpoint=localhost:8010",
    "control_stream_id": 10,
    "local_control_channel": "aeron:ipc",
    "local_control_stream_id": 10,
    "events_channel": "aeron:udp?control-mode=dynamic|control=localhost:8030",
    "events_stream_id": 30,
    "aeron_directory": "/dev/shm/aeron-test",
    "pid": 4242,
}


# ----------------------------------------------------------------------------------- Java's files


@pytest.mark.parametrize("case", CASES)
def test_java_mark_file_reads_as_archivetool_printed_it(
    case: JavaArchive,
    java_archive: Callable[[JavaArchive], Path],
    archivetool_describe: Callable[[Path], Any],
) -> None:
    expected = archivetool_describe(case.describe).mark_file
    storage = RealStorage(java_archive(case))
    header = ArchiveMarkFile.read(storage)
    assert header.to_json() == expected
    assert (header.version, header.semantic_version) == (ARCHIVE_VERSION, "3.1.0") == (196864, "3.1.0")
    assert (header.header_length, header.error_buffer_length) == (8192, 1024 * 1024)
    assert (java_archive(case) / MARK_FILE_NAME).stat().st_size == 8192 + 1024 * 1024
    assert ArchiveMarkFile.read_errors(storage) == []
    # Killed (node0) or closed cleanly (-1).
    assert (header.activity_timestamp == -1) == (case.name != "node0")


@pytest.mark.parametrize("case", CASES)
def test_a_mark_file_we_write_is_java_s_file_byte_for_byte(
    case: JavaArchive, java_archive: Callable[[JavaArchive], Path], tmp_path: Path
) -> None:
    java_file = java_archive(case) / MARK_FILE_NAME
    java = ArchiveMarkFile.read(RealStorage(java_archive(case)))
    mark_file = ArchiveMarkFile.create(
        RealStorage(tmp_path), now_ms=java.start_timestamp, **_settings_of(java)
    )
    if java.activity_timestamp == -1:
        mark_file.close()  # a clean close
    else:
        mark_file.update_activity_timestamp(java.activity_timestamp)  # killed: the last activity stays
    assert (tmp_path / MARK_FILE_NAME).read_bytes() == java_file.read_bytes()
    mark_file.close()


def test_a_killed_archive_s_directory_is_refused_for_the_liveness_timeout(
    java_archive: Callable[[JavaArchive], Path], tmp_path: Path
) -> None:
    """README: member 1's restart 5 s after a kill failed ("active Mark file detected"); 14 s after, it
    started. Here on a copy of killed node0's mark file."""
    shutil.copy(java_archive(NODE0) / MARK_FILE_NAME, tmp_path / MARK_FILE_NAME)
    storage = RealStorage(tmp_path)
    killed = ArchiveMarkFile.read(storage).activity_timestamp
    assert killed == 1796526882318
    for age in (5_000, 10_000):
        with pytest.raises(MarkFileError, match="active mark file detected") as excinfo:
            ArchiveMarkFile.create(storage, now_ms=killed + age, **SETTINGS)
        assert (excinfo.value.offset, excinfo.value.field) == (16, "MarkFileHeader.activityTimestamp")
    assert ArchiveMarkFile.read(storage).activity_timestamp == killed, "a refused create changed the file"
    with ArchiveMarkFile.create(storage, now_ms=killed + 14_000, **SETTINGS) as mark_file:
        assert mark_file.header.start_timestamp == killed + 14_000
        assert ArchiveMarkFile.read(storage).pid == SETTINGS["pid"]


# -------------------------------------------------------------------------------------- our own


def test_create_read_update_close(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    mark_file = ArchiveMarkFile.create(storage, now_ms=1_000_000, error_buffer_length=4096, **SETTINGS)
    header = ArchiveMarkFile.read(storage)
    assert header == mark_file.header
    assert header.to_json() == {
        "sbeTemplateId": 200,
        "sbeSchemaId": 100,
        "sbeSchemaVersion": 2,
        "sbeBlockLength": 128,
        "version": 196864,
        "activityTimestamp": 1_000_000,
        "startTimestamp": 1_000_000,
        "pid": 4242,
        "controlStreamId": 10,
        "localControlStreamId": 10,
        "eventsStreamId": 30,
        "headerLength": 8192,
        "errorBufferLength": 4096,
        "archiveId": 7,
        "controlChannel": "aeron:udp?endpoint=localhost:8010",
        "localControlChannel": "aeron:ipc",
        "eventsChannel": "aeron:udp?control-mode=dynamic|control=localhost:8030",
        "aeronDirectory": "/dev/shm/aeron-test",
    }
    assert (tmp_path / MARK_FILE_NAME).stat().st_size == 8192 + 4096
    before = (tmp_path / MARK_FILE_NAME).read_bytes()
    mark_file.update_activity_timestamp(0x0102030405)
    after = (tmp_path / MARK_FILE_NAME).read_bytes()
    changed = [i for i in range(len(before)) if before[i] != after[i]]
    assert min(changed) >= 16 and max(changed) < 24, "only activityTimestamp (8 + 8) may change"
    assert ArchiveMarkFile.read(storage).activity_timestamp == 0x0102030405
    mark_file.close()
    mark_file.close()
    assert ArchiveMarkFile.read(storage).activity_timestamp == -1
    with pytest.raises(MarkFileError, match="closed"):
        mark_file.update_activity_timestamp(1)


def test_liveness_is_the_activity_timestamp_within_the_timeout(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    first = ArchiveMarkFile.create(storage, now_ms=50_000, **SETTINGS)
    first.update_activity_timestamp(60_000)
    for now in (60_000, 70_000, 55_000):  # the age is at most the timeout (or negative)
        with pytest.raises(MarkFileError, match="active"):
            ArchiveMarkFile.create(storage, now_ms=now, **SETTINGS)
    with pytest.raises(MarkFileError, match="active"):
        ArchiveMarkFile.create(storage, now_ms=62_000, liveness_timeout_ms=2_000, **SETTINGS)
    ArchiveMarkFile.create(storage, now_ms=62_001, liveness_timeout_ms=2_000, **SETTINGS).close()
    first.close()
    # A clean close is never active, not even to a clock near zero (a simulator's).
    ArchiveMarkFile.create(storage, now_ms=0, **SETTINGS).close()
    assert is_active(100, 100, 0) and not is_active(-1, 0, 10_000) and not is_active(0, 10_001, 10_000)
    # A timestamp from the future: live within the timeout (clock steps), garbage beyond it.
    assert is_active(20_000, 10_000, 10_000) and not is_active(20_001, 10_000, 10_000)


def test_another_major_version_is_refused(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    ArchiveMarkFile.create(storage, now_ms=1, **SETTINGS).close()
    path = tmp_path / MARK_FILE_NAME
    data = bytearray(path.read_bytes())
    struct.pack_into("<i", data, 8, compose_version(2, 9, 1))
    path.write_bytes(bytes(data))
    with pytest.raises(MarkFileError, match=r"major version 2 \(2\.9\.1\)") as excinfo:
        ArchiveMarkFile.create(storage, now_ms=10**12, **SETTINGS)
    assert excinfo.value.field == "MarkFileHeader.version"
    assert version_text(ARCHIVE_VERSION) == "3.1.0"


def test_a_torn_or_blank_leftover_is_replaced(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    path = tmp_path / MARK_FILE_NAME
    for leftover in (b"", bytes(100), bytes(8192)):
        path.write_bytes(leftover)
        with pytest.raises(MarkFileError):
            ArchiveMarkFile.read(storage)
        ArchiveMarkFile.create(storage, now_ms=5, **SETTINGS).close()
        assert ArchiveMarkFile.read(storage).start_timestamp == 5


def test_missing_or_oversized_is_a_mark_file_error(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    with pytest.raises(MarkFileError, match="there is no mark file") as excinfo:
        ArchiveMarkFile.read(storage)
    assert excinfo.value.file == f"{tmp_path}/{MARK_FILE_NAME}"
    with pytest.raises(MarkFileError, match="more than 8192"):
        ArchiveMarkFile.create(storage, now_ms=1, **{**SETTINGS, "aeron_directory": "/x" * 5000})
    assert not (tmp_path / MARK_FILE_NAME).exists()
    for bad in ({"error_buffer_length": 0}, {"liveness_timeout_ms": 0}):
        with pytest.raises(MarkFileError):
            ArchiveMarkFile.create(storage, now_ms=1, **SETTINGS, **bad)
    with pytest.raises(MarkFileError, match="US-ASCII"):
        ArchiveMarkFile.create(storage, now_ms=1, **{**SETTINGS, "aeron_directory": "/d\u00e9v"})


def test_a_truncated_file_is_reported_with_the_field_that_says_how_long_it_should_be(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    ArchiveMarkFile.create(storage, now_ms=1, error_buffer_length=1024, **SETTINGS).close()
    path = tmp_path / MARK_FILE_NAME
    path.write_bytes(path.read_bytes()[:9000])
    with pytest.raises(MarkFileError, match="shorter than its header and error log") as excinfo:
        ArchiveMarkFile.read(storage)
    assert (excinfo.value.offset, excinfo.value.field) == (56, "MarkFileHeader.errorBufferLength")
    path.write_bytes(path.read_bytes()[:250])  # into the last string
    with pytest.raises(MarkFileError, match="aeronDirectory"):
        ArchiveMarkFile.read(storage)


# ------------------------------------------------------------------------------------ error log


def test_the_error_log_keeps_distinct_errors_and_counts_repeats(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    with ArchiveMarkFile.create(storage, now_ms=1, error_buffer_length=4096, **SETTINGS) as mark_file:
        assert mark_file.record_error("io.aeron.archive.ArchiveException: boom\n", now_ms=100)
        assert mark_file.record_error("une erreur accentu\u00e9e", now_ms=150)
        assert mark_file.record_error("io.aeron.archive.ArchiveException: boom\n", now_ms=200)
        errors = mark_file.errors()
    boom = "io.aeron.archive.ArchiveException: boom\n"
    assert [
        (e.offset, e.observation_count, e.first_observation_timestamp, e.last_observation_timestamp, e.text)
        for e in errors
    ] == [
        (8192, 2, 100, 200, boom),
        (8192 + 64, 1, 150, 150, "une erreur accentu\u00e9e"),  # 24 + 40 bytes, aligned to 8
    ]
    assert ArchiveMarkFile.read_errors(storage) == errors
    raw = (tmp_path / MARK_FILE_NAME).read_bytes()
    assert struct.unpack_from("<iiqq", raw, 8192) == (24 + len(boom), 2, 200, 100)
    assert raw[8192 + 24 : 8192 + 24 + len(boom)] == boom.encode()


def test_a_full_error_log_drops_new_errors_but_counts_known_ones(tmp_path: Path) -> None:
    with ArchiveMarkFile.create(
        RealStorage(tmp_path), now_ms=1, error_buffer_length=64, **SETTINGS
    ) as mark_file:
        assert mark_file.record_error("x" * 30, now_ms=2)  # 54 bytes, 56 aligned
        assert not mark_file.record_error("y", now_ms=3)
        assert mark_file.record_error("x" * 30, now_ms=4)
        assert [(e.text, e.observation_count) for e in mark_file.errors()] == [("x" * 30, 2)]


def _utc(timestamp_ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp_ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{timestamp_ms % 1000:03d}+0000"


@pytest.mark.parametrize("node", [pytest.param(i, id=f"node{i}") for i in range(3)])
def test_java_cluster_mark_file_error_logs_read_as_clustertool_printed_them(
    node: int, java_archive: Callable[[JavaArchive], Path]
) -> None:
    """The archive mark files of these runs have empty error logs; the cluster's mark files, which use
    the same distinct error log after their 8 KiB header, have errors, and ClusterTool printed them."""
    expected = clustertool_errors(JAVA_CLUSTER_ERRORS[node])
    cluster_dir = java_archive(JAVA_ARCHIVES[2 + node]).parent / "cluster"
    for name, printed in zip(("cluster-mark.dat", "cluster-mark-service-0.dat"), expected, strict=True):
        data = (cluster_dir / name).read_bytes()
        header = aeron_cluster_mark_codecs.decode(data)
        log = data[header.header_length : header.header_length + header.error_buffer_length]
        ours = [
            (
                e.observation_count,
                _utc(e.first_observation_timestamp),
                _utc(e.last_observation_timestamp),
                e.text,
            )
            for e in read_error_log(log, base=header.header_length)
        ]
        assert ours == printed, name
    assert node == 0 or any(expected), "members 1 and 2 logged errors"


# --------------------------------------------------------------------------------------- fuzzing


@pytest.fixture(scope="module")
def valid_mark_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    directory = tmp_path_factory.mktemp("valid-mark-file")
    with ArchiveMarkFile.create(
        RealStorage(directory), now_ms=77, error_buffer_length=256, **SETTINGS
    ) as mark_file:
        mark_file.record_error("first error", now_ms=78)
        mark_file.record_error("second error, longer than the first", now_ms=79)
        mark_file.record_error("first error", now_ms=80)
    return (directory / MARK_FILE_NAME).read_bytes()


@pytest.fixture(scope="module")
def mark_fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mark-file-fuzz")


def _check_mark_file(directory: Path, strict: Callable[[Storage], Storage], data: bytes) -> None:
    (directory / MARK_FILE_NAME).write_bytes(data)
    storage = strict(RealStorage(directory))
    try:
        header = ArchiveMarkFile.read(storage)
        assert header.template_id == 200
    except MarkFileError:
        pass
    with contextlib.suppress(MarkFileError):
        ArchiveMarkFile.read_errors(storage)
    try:
        mark_file = ArchiveMarkFile.create(storage, now_ms=10**12, error_buffer_length=256, **SETTINGS)
    except MarkFileError:
        return
    mark_file.close()
    assert ArchiveMarkFile.read(storage).activity_timestamp == -1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flips=st.lists(st.tuples(st.integers(0, 8192 + 255), st.integers(1, 255)), max_size=6),
    hot=st.lists(st.tuples(st.integers(0, 300), st.integers(1, 255)), max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 8192 + 256)),
)
def test_flipped_or_truncated_mark_files_read_or_raise_mark_file_error(
    valid_mark_file: bytes,
    mark_fuzz_dir: Path,
    strict: Callable[[Storage], Storage],
    flips: list[tuple[int, int]],
    hot: list[tuple[int, int]],
    cut: int | None,
) -> None:
    data = bytearray(valid_mark_file)
    for index, mask in flips:
        data[index] ^= mask
    for index, mask in hot:  # the header and the first error records
        data[index if index < 200 else 8192 + index - 200] ^= mask
    if cut is not None:
        del data[cut:]
    _check_mark_file(mark_fuzz_dir, strict, bytes(data))


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=400))
def test_random_bytes_read_or_raise_mark_file_error(
    mark_fuzz_dir: Path, strict: Callable[[Storage], Storage], data: bytes
) -> None:
    _check_mark_file(mark_fuzz_dir, strict, data)


# ------------------------------------------------------------------- crashes, on the simulated disk


def _crash_scenario(storage: Storage) -> None:
    with ArchiveMarkFile.create(storage, now_ms=1_000, error_buffer_length=256, **SETTINGS) as mark_file:
        mark_file.update_activity_timestamp(0x01_0203_0405)
        mark_file.record_error("an error of some length", now_ms=2_000)
        mark_file.record_error("an error of some length", now_ms=3_000)


def test_after_a_power_loss_at_any_write_a_restart_takes_the_directory() -> None:
    """A crash at each storage operation of a run (several seeds each), then a restart long after: the
    new archive takes the directory -- a torn version or timestamp must not lock it -- and its mark
    file reads back. Runs where ``cluster.storage.sim`` (the simulated disk) is present."""
    sim = pytest.importorskip("cluster.storage.sim", reason="the simulated disk is not on this branch")
    probe = sim.SimDisk(seed=0)
    _crash_scenario(probe.storage("archive"))
    for operation in range(1, probe.operation_count + 1):
        for seed in range(6):
            disk = sim.SimDisk(seed=seed)
            storage = disk.storage("archive")
            disk.crash_at(operation)
            with pytest.raises(sim.SimulatedCrash):
                _crash_scenario(storage)
            disk.crash(power_loss=True)
            with contextlib.suppress(MarkFileError):
                ArchiveMarkFile.read_errors(storage)
            ArchiveMarkFile.create(storage, now_ms=10**13, **SETTINGS).close()
            assert ArchiveMarkFile.read(storage).start_timestamp == 10**13, (operation, seed)


def test_a_wall_clock_stepped_forward_and_back_leaves_no_activity_timestamp_in_the_future(
    tmp_path: Path,
) -> None:
    """The archive updates its mark file once a second by the monotonic clock: after its wall clock was
    stepped 30 s ahead and back (an operator, NTP), the next update writes the true time again. (Due by
    the wall clock, the update waited those 30 s, and a crash in between left a mark file that a restart
    took as a live archive's; a chaos run found it.)"""
    from cluster.archive.archive import Archive
    from cluster.archive.context import ArchiveContext
    from cluster.storage import RealStorage
    from cluster.storage.markfile import read_liveness
    from cluster.transport.clock import AdjustableClock, ManualClock
    from cluster.transport.driver import Transport, TransportConfig
    from cluster.transport.media import UdpNetwork

    base = ManualClock(1_000_000_000, epoch_base_ms=1_796_000_000_000)
    clock = AdjustableClock(base)
    storage = RealStorage(tmp_path / "archive", create=True)
    transport = Transport(UdpNetwork(clock), TransportConfig(bind_host="127.0.0.1"))
    archive = Archive(transport, ArchiveContext(storage=storage))
    try:

        def written_after(seconds: float) -> int:
            base.advance(int(seconds * 1e9))
            archive.do_work()
            found = read_liveness(storage, MARK_FILE_NAME)
            assert found is not None
            return found[1]

        assert written_after(1.1) == base.epoch_ms()
        clock.set_offsets(epoch_offset_ms=30_000, nano_offset_ns=0)
        assert written_after(1.1) == base.epoch_ms() + 30_000
        clock.set_offsets(epoch_offset_ms=0, nano_offset_ns=0)
        assert written_after(1.1) == base.epoch_ms()
    finally:
        archive.close()
        transport.close()
