"""``recording.log`` on the storage layer (``cluster.consensus.files.recording_log_file``): round trips on
real and simulated storage, Aeron's write pattern, the crash repairs, crash sweeps under ``SimDisk``
(process crashes and power losses), fuzzed bytes, and Java's files (read as ClusterTool printed them,
written back byte for byte)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.clustertool import clustertool_recording_log
from support.paths import JAVA_CLUSTER_NODES, JavaClusterNode

from cluster.consensus.core.errors import RecordingLogError
from cluster.consensus.core.recording_log import EntryType, RecordingLog, RecordingLogEntry
from cluster.consensus.files import RecordingLogFile, RecordingLogFileError
from cluster.storage import RealStorage, SimDisk, SimulatedCrash, Storage, SyncLevel

NAME = "recording.log"

# A short history: a term, a snapshot, the next term (closing the first in place), an invalidation,
# the snapshot taken again (revalidated in place), the second term's end, back-filled terms.
Change = Callable[[RecordingLog], Any]
HISTORY: list[Change] = [
    lambda log: log.append_term(0, 0, 0, 100),
    lambda log: log.append_snapshot(1, 0, 0, 500, 101, 0),
    lambda log: log.append_snapshot(2, 0, 0, 500, 101, -1),
    lambda log: log.append_term(0, 1, 900, 102),
    lambda log: log.invalidate_latest_snapshot(),
    lambda log: log.append_snapshot(3, 0, 0, 500, 103, 0),
    lambda log: log.append_snapshot(4, 0, 0, 500, 103, -1),
    lambda log: log.commit_log_position(1, 1500),
    lambda log: log.ensure_coherent(0, -1, 0, 4, 1500, -1, 104),
]
# Only under process crashes: a closed term's end rewritten (see the module docstring on tears).
TRUNCATE: Change = lambda log: log.truncate_to(1200, 1)  # noqa: E731


def _model_after(changes: list[Change]) -> RecordingLog:
    log = RecordingLog()
    for change in changes:
        change(log)
    return log


def _storages(tmp_path: Path) -> list[Storage]:
    return [RealStorage(tmp_path), SimDisk(1).storage("node")]


# ------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("kind", ["real", "sim"])
def test_every_change_is_in_the_file_and_reloads_equal(kind: str, tmp_path: Path) -> None:
    storage = RealStorage(tmp_path) if kind == "real" else SimDisk(1).storage("node")
    with RecordingLogFile.open(storage) as file:
        assert file.entries == () and file.repairs == ()
        for count, change in enumerate([*HISTORY, TRUNCATE], 1):
            file.update(change)
            expected = _model_after([*HISTORY, TRUNCATE][:count])
            assert file.log == expected
            assert RecordingLogFile.read(storage).log == expected
    with RecordingLogFile.open(storage) as again:
        assert again.log == expected and again.repairs == ()


def test_removed_records_keep_their_fields_and_the_type_minus_one(tmp_path: Path) -> None:
    """Aeron removes an entry by writing -1 into its type field only."""
    storage = RealStorage(tmp_path)
    with RecordingLogFile.open(storage) as file:
        for change in HISTORY:
            file.update(change)
        before = storage.read_file(NAME)
        removed = file.truncate_to(1200, 1)
    after = storage.read_file(NAME)
    assert [entry.leadership_term_id for entry in removed] == [2, 3, 4]
    for entry in removed:
        offset = entry.entry_index * 64
        assert after[offset : offset + 44] == before[offset : offset + 44]
        assert struct.unpack_from("<i", after, offset + 44)[0] == -1


class _Recording(Storage):
    """``inner``, with every write and sync of ``recording.log`` noted."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.calls: list[tuple[str, int, int]] = []

    @property
    def location(self) -> str:
        return self.inner.location

    def open(self, name: str, *, create: bool = False) -> Any:
        file = self.inner.open(name, create=create)
        calls = self.calls
        write, sync = file.write, file.sync

        def noted_write(offset: int, data: Any) -> None:
            calls.append(("write", offset, len(data)))
            write(offset, data)

        def noted_sync(level: SyncLevel) -> None:
            calls.append(("sync", int(level), 0))
            sync(level)

        file.write = noted_write  # type: ignore[method-assign]
        file.sync = noted_sync  # type: ignore[method-assign]
        return file

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)

    def list(self) -> list[str]:
        return self.inner.list()

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def sync_directory(self) -> None:
        self.inner.sync_directory()


def test_aeron_write_pattern_in_place_then_whole_records_appended_then_one_sync() -> None:
    storage = _Recording(SimDisk(1).storage("node"))
    with RecordingLogFile.open(storage, sync_level=SyncLevel.ALL) as file:
        for change in HISTORY[:3]:
            file.update(change)
        storage.calls.clear()
        file.update(HISTORY[3])  # term 1: term 0's logPosition in place, then the new record
        assert storage.calls == [("write", 24, 8), ("write", 192, 64), ("sync", 2, 0)]
        storage.calls.clear()
        file.update(HISTORY[4])  # invalidation: the top byte of two type fields, last record first
        assert storage.calls == [("write", 128 + 47, 1), ("write", 64 + 47, 1), ("sync", 2, 0)]
        storage.calls.clear()
        assert file.update(lambda log: log.find_term(0)) is not None
        assert storage.calls == []  # a change that changes nothing writes nothing


def test_a_refused_change_leaves_model_and_file_alone() -> None:
    storage = SimDisk(1).storage("node")
    with RecordingLogFile.open(storage) as file:
        file.update(HISTORY[0])
        before = (file.log, storage.read_file(NAME))
        with pytest.raises(RecordingLogError):
            file.append_term(0, 0, 0, 1)  # a duplicate term
        assert (file.log, storage.read_file(NAME)) == before


def test_after_a_failed_sync_the_file_refuses_further_use() -> None:
    disk = SimDisk(1)
    storage = disk.storage("node")
    with RecordingLogFile.open(storage) as file:
        disk.fail_next("sync", 5)
        with pytest.raises(OSError):
            file.update(HISTORY[0])
        with pytest.raises(RecordingLogFileError, match="reopen"):
            file.update(HISTORY[0])


# --------------------------------------------------------------------------------------- repairs


def _written(changes: list[Change]) -> bytes:
    storage = SimDisk(1).storage("node")
    with RecordingLogFile.open(storage) as file:
        for change in changes:
            file.update(change)
    return storage.read_file(NAME)


def _open_with(data: bytes) -> tuple[RecordingLogFile, Storage]:
    storage = SimDisk(1).storage("node")
    with storage.open(NAME, create=True) as handle:
        handle.write(0, data)
    return RecordingLogFile.open(storage), storage


@pytest.mark.parametrize("cut", [1, 20, 44, 63])
def test_a_torn_append_is_dropped_and_reported(cut: int) -> None:
    whole = _written(HISTORY[:3])
    file, storage = _open_with(whole[: 128 + cut])
    assert file.log == _model_after(HISTORY[:2])
    assert [(r.offset, r.length_bytes) for r in file.repairs] == [(128, cut)]
    assert "torn append" in str(file.repairs[0])
    assert storage.read_file(NAME) == whole[:128]  # the repair is written


def test_records_of_zeros_at_the_end_are_a_torn_append() -> None:
    whole = _written(HISTORY[:2])
    file, _ = _open_with(whole + bytes(128))
    assert file.log == _model_after(HISTORY[:2])
    assert len(file.repairs) == 2


def test_a_torn_log_position_reopens_the_term() -> None:
    whole = bytearray(_written(HISTORY[:4]))
    whole[24:32] = b"\xff" * 8
    whole[24:27] = (900).to_bytes(8, "little")[:3]  # the low bytes of term 0's commit over -1
    file, storage = _open_with(bytes(whole))
    assert file.log.find_term(0) is not None
    assert file.log.get_term(0).log_position == -1
    assert "torn TERM logPosition" in file.repairs[0].reason
    assert RecordingLogFile.read(storage).repairs == ()


@pytest.mark.parametrize("low_bytes", [1, 2, 3])
def test_a_torn_removal_is_completed(low_bytes: int) -> None:
    whole = bytearray(_written(HISTORY[:4]))
    whole[192 + 44 : 192 + 44 + low_bytes] = b"\xff" * low_bytes  # term 1's type field
    file, _ = _open_with(bytes(whole))
    assert file.log.find_term(1) is None
    assert "torn removal" in file.repairs[0].reason


def test_read_reports_the_repairs_but_changes_nothing() -> None:
    whole = _written(HISTORY[:3])
    storage = SimDisk(1).storage("node")
    with storage.open(NAME, create=True) as handle:
        handle.write(0, whole[:150])
    reading = RecordingLogFile.read(storage)
    assert len(reading.repairs) == 1 and reading.log == _model_after(HISTORY[:2])
    assert storage.read_file(NAME) == whole[:150]


def test_other_damage_raises_naming_file_and_offset() -> None:
    whole = bytearray(_written(HISTORY[:3]))
    whole[64 + 44] = 9  # an unknown type in the middle
    with pytest.raises(RecordingLogFileError, match=r"sim://.*recording\.log: record 1 at offset 64"):
        _open_with(bytes(whole))


def test_missing_file_without_create_is_an_error() -> None:
    storage = SimDisk(1).storage("node")
    with pytest.raises(RecordingLogFileError, match="there is no recording log"):
        RecordingLogFile.open(storage, create=False)
    with pytest.raises(RecordingLogFileError, match="there is no recording log"):
        RecordingLogFile.read(storage)


# ---------------------------------------------------------------------------------- crash sweeps


def _by_index(log: RecordingLog) -> dict[int, RecordingLogEntry]:
    return {entry.entry_index: entry for entry in log.entries}


def _check_between(loaded: RecordingLog, before: RecordingLog, after: RecordingLog) -> None:
    """Every entry is as it was before the change in progress or as that change made it: nothing that
    was synced and reported is lost, nothing is invented. An entry invalid before and after the crash
    may hold some of a revalidation's new fields (the flag is the last byte written)."""
    found, old, new = _by_index(loaded), _by_index(before), _by_index(after)
    for index in found.keys() | old.keys() | new.keys():
        entry = found.get(index)
        if entry is not None and not entry.is_valid and index in old and not old[index].is_valid:
            continue
        assert entry in (old.get(index), new.get(index)), (index, entry, old.get(index), new.get(index))


def _run(storage: Storage, changes: list[Change], reported: list[RecordingLog]) -> None:
    with RecordingLogFile.open(storage) as file:
        reported.append(file.log)
        for change in changes:
            file.update(change)
            reported.append(file.log)


def _sweep(changes: list[Change], seeds: list[int], power_loss: bool) -> tuple[int, int]:
    """Crash at every storage operation of ``changes`` with each seed; return the operation count and how
    many runs needed a repair (so a test can tell that tears were met, not only clean prefixes)."""
    repaired = 0
    probe = SimDisk(0)
    _run(probe.storage("node"), changes, [])
    count = probe.operation_count
    for crash_at in range(1, count + 1):
        for seed in seeds:
            disk = SimDisk(seed)
            disk.crash_at(crash_at)
            reported: list[RecordingLog] = []
            with pytest.raises(SimulatedCrash):
                _run(disk.storage("node"), changes, reported)
            disk.crash(power_loss=power_loss)
            before = reported[-1] if reported else RecordingLog()
            done = max(len(reported) - 1, 0)
            after = _model_after(changes[: done + 1]) if reported and done < len(changes) else before
            with RecordingLogFile.open(disk.storage("node")) as file:
                repaired += bool(file.repairs)
                where = f"crash at operation {crash_at}, seed {seed}, power loss {power_loss}"
                try:
                    _check_between(file.log, before, after)
                except AssertionError as exc:
                    raise AssertionError(f"{where}: {exc}") from None
                # The repaired file takes the rest of the history.
                for change in changes[done + 1 if reported else 0 :]:
                    try:
                        file.update(change)
                    except RecordingLogError:
                        break  # the history after a change that did not complete can be refused
    return count, repaired


def test_crash_sweep_process_crash_at_every_operation() -> None:
    count, repaired = _sweep([*HISTORY, TRUNCATE], seeds=[0], power_loss=False)
    assert count > 20 and repaired == 0  # a process crash loses nothing, so nothing is torn


def test_crash_sweep_power_loss_at_every_operation() -> None:
    count, repaired = _sweep(HISTORY, seeds=list(range(16)), power_loss=True)
    assert count > 20 and repaired > 5


def test_replace_writes_a_whole_new_file_and_keeps_a_backup() -> None:
    storage = SimDisk(1).storage("node")
    whole = _written(HISTORY)
    with storage.open(NAME, create=True) as handle:
        handle.write(0, whole)
    sorted_log = _model_after(HISTORY).sorted_copy()
    old = RecordingLogFile.replace(storage, sorted_log, backup="recording.log.bak")
    assert old.log == _model_after(HISTORY)
    assert storage.list() == ["recording.log", "recording.log.bak"]
    assert storage.read_file("recording.log.bak") == whole
    assert RecordingLogFile.read(storage).log == sorted_log
    with pytest.raises(RecordingLogFileError, match="there is no recording log"):
        RecordingLogFile.replace(SimDisk(1).storage("empty"), sorted_log)


def test_replace_under_power_loss_leaves_the_old_log_or_the_new_one() -> None:
    before = _model_after(HISTORY)
    new = before.seeded_from_latest_snapshot()
    for seed in range(8):
        for crash_point in range(1, 13):  # backup: 6 operations, then the log: 6
            disk = SimDisk(seed)
            storage = disk.storage("node")
            _run(storage, HISTORY, [])
            old_bytes = storage.read_file(NAME)
            disk.crash_at(disk.operation_count + crash_point)
            with pytest.raises(SimulatedCrash):
                RecordingLogFile.replace(storage, new, backup="recording.log.bak")
            disk.crash(power_loss=True)
            loaded = RecordingLogFile.read(storage)
            assert loaded.repairs == () and loaded.log in (before, new), (seed, crash_point)
            if crash_point >= 6:  # the backup's rename was synced before the log was touched
                assert storage.read_file("recording.log.bak") == old_bytes


# ---------------------------------------------------------------------------------------- fuzzing


def _read_bytes(data: bytes) -> None:
    storage = SimDisk(1).storage("fuzz")
    with storage.open(NAME, create=True) as handle:
        handle.write(0, data)
    try:
        RecordingLogFile.read(storage)
    except RecordingLogFileError:
        return
    try:
        RecordingLogFile.open(storage).close()
    except RecordingLogFileError:
        pytest.fail("open refused what read accepted")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_arbitrary_bytes_load_repair_or_raise_recording_log_file_error(data: bytes) -> None:
    _read_bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_files_load_repair_or_raise_recording_log_file_error(data: st.DataObject) -> None:
    whole = bytearray(_written(HISTORY))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(whole) - 1))
        whole[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(whole)))
    _read_bytes(bytes(whole[:cut]))


# ----------------------------------------------------------------------------------- Java's files


CASES = [pytest.param(node, id=node.name) for node in JAVA_CLUSTER_NODES]


@pytest.mark.parametrize("node", CASES)
def test_java_recording_log_reads_as_clustertool_printed_it(
    node: JavaClusterNode, java_cluster: Callable[[JavaClusterNode], Path]
) -> None:
    expected = clustertool_recording_log(node.recording_log)
    reading = RecordingLogFile.read(RealStorage(java_cluster(node)))
    assert reading.repairs == ()
    ours = [
        {
            "recordingId": entry.recording_id,
            "leadershipTermId": entry.leadership_term_id,
            "termBaseLogPosition": entry.term_base_log_position,
            "logPosition": entry.log_position,
            "timestamp": entry.timestamp,
            "serviceId": entry.service_id,
            "type": entry.entry_type.name,
            "isValid": entry.is_valid,
            "entryIndex": entry.entry_index,
        }
        for entry in reading.log.entries
    ]
    assert ours == expected


@pytest.mark.parametrize("node", CASES)
def test_java_recording_log_written_again_is_byte_identical(
    node: JavaClusterNode, java_cluster: Callable[[JavaClusterNode], Path], tmp_path: Path
) -> None:
    """Once from the entries (the model's encoder), once by replaying the entries as a node would append
    them through the file (terms closed in place by the next term or by a commit)."""
    java = (java_cluster(node) / NAME).read_bytes()
    log = RecordingLogFile.read(RealStorage(java_cluster(node))).log
    assert log.to_bytes() == java
    with RecordingLogFile.open(RealStorage(tmp_path)) as file:
        for entry in sorted(log.entries, key=lambda entry: entry.entry_index):
            if entry.entry_type is EntryType.TERM:
                file.append_term(
                    entry.recording_id,
                    entry.leadership_term_id,
                    entry.term_base_log_position,
                    entry.timestamp,
                )
            else:
                file.append_snapshot(
                    entry.recording_id,
                    entry.leadership_term_id,
                    entry.term_base_log_position,
                    entry.log_position,
                    entry.timestamp,
                    entry.service_id,
                )
        last = log.find_last_term()
        assert last is not None
        if last.log_position != -1:
            file.commit_log_position(last.leadership_term_id, last.log_position)
    assert (tmp_path / NAME).read_bytes() == java
