"""Crash recovery of segment files on the simulated disk: a recording written through
``RecordingWriter`` at file-sync-level 1 and 2 is crashed at every operation, for several seeds, with
and without power loss; ``find_stop_position`` and ``repair_tail`` must keep every synced frame and no
torn one, and leave a tail that the writer can extend. Canaries -- a writer that writes a block in one
go, and one that writes the length word without making it invalid first -- show the sweep catches a
torn frame."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.recordings import SyntheticStream, extract_java

from cluster.archive.catalog import Catalog, RecordingState
from cluster.archive.recording_reader import RecordingReader
from cluster.archive.recording_writer import RecordingWriter
from cluster.archive.recovery import recover
from cluster.archive.segments import (
    find_stop_position,
    repair_tail,
    segment_file_base_position,
    segment_files,
)
from cluster.storage import RealStorage, SimDisk, SimulatedCrash, Storage, SyncLevel

KIB = 1024
TERM = 64 * KIB
SEGMENT = 128 * KIB
INITIAL_TERM_ID = 77
LAYOUT = {"recording_id": 0, "term_length": TERM, "segment_length": SEGMENT}


def _stream(start_position: int) -> SyntheticStream:
    """Messages of every size class (one-byte lengths, two-byte lengths, fragmented), over a term end
    (with a PAD) and a segment end."""
    stream = SyntheticStream(TERM, initial_term_id=INITIAL_TERM_ID, start_position=start_position)
    sizes = [0, 40, 200, 1300, 3000, 90, 2600]
    index = 0
    first_segment_end = start_position - start_position % TERM + SEGMENT
    while stream.position < first_segment_end + 12 * KIB:
        stream.append(bytes((index * 7 + j) % 256 or 1 for j in range(sizes[index % len(sizes)])))
        index += 1
    return stream


STREAMS = {"start-0": _stream(0), "start-mid-term": _stream(TERM + 40 * KIB)}
Writer = Callable[[Storage, SyntheticStream, int, SyncLevel, list[int]], None]


def _record(
    storage: Storage, stream: SyntheticStream, position: int, level: SyncLevel, done: list[int]
) -> None:
    """Write the stream from ``position`` in blocks of up to 4 KiB; ``done`` gets the position after each
    block that ``on_block`` returned from (so it was synced)."""
    with RecordingWriter(
        storage,
        start_position=stream.start_position,
        position=position,
        file_sync_level=level,
        initial_term_id=INITIAL_TERM_ID,
        **LAYOUT,
    ) as writer:
        for block in stream.blocks(position, stream.position, 4096):
            writer.on_block(block.buffer, block.offset, block.length, block.session_id, block.term_id)
            done.append(writer.position)


class _OneWriteWriter(RecordingWriter):
    """Canary: the whole block in one write, as a naive writer would."""

    def on_block(self, buffer: memoryview, offset: int, length: int, session_id: int, term_id: int) -> None:
        data_end = self._check_block(buffer, offset, length, session_id, term_id)
        assert self._file is not None
        self._file.write(self._position - self._segment_base, buffer[offset:data_end])
        self._file.sync(self._sync_level)
        self._position += length
        if self._position - self._segment_base >= self._segment_length:
            self._roll_over()


class _PlainLengthWordWriter(RecordingWriter):
    """Canary: the body, then the 4-byte length word, with nothing to keep a torn word invalid."""

    def on_block(self, buffer: memoryview, offset: int, length: int, session_id: int, term_id: int) -> None:
        data_end = self._check_block(buffer, offset, length, session_id, term_id)
        assert self._file is not None
        file_offset = self._position - self._segment_base
        self._file.write(file_offset + 4, buffer[offset + 4 : data_end])
        self._file.write(file_offset, buffer[offset : offset + 4])
        self._file.sync(self._sync_level)
        self._position += length
        if self._position - self._segment_base >= self._segment_length:
            self._roll_over()


def _canary_record(writer_type: type[RecordingWriter]) -> Writer:
    def record(
        storage: Storage, stream: SyntheticStream, position: int, level: SyncLevel, done: list[int]
    ) -> None:
        with writer_type(
            storage,
            start_position=stream.start_position,
            position=position,
            file_sync_level=level,
            initial_term_id=INITIAL_TERM_ID,
            **LAYOUT,
        ) as writer:
            for block in stream.blocks(position, stream.position, 4096):
                writer.on_block(block.buffer, block.offset, block.length, block.session_id, block.term_id)
                done.append(writer.position)

    return record


def _disk_seed(seed: int, point: int) -> int:
    """The disk's seed for one crash: a disk draws the same luck for the same history, so each crash
    point gets its own seed, or every crash of a sweep seed would tear its last write the same way."""
    return seed * 1_000_003 + point


def _recover(storage: Storage, stream: SyntheticStream) -> int:
    stop = find_stop_position(
        storage, start_position=stream.start_position, initial_term_id=INITIAL_TERM_ID, **LAYOUT
    )
    repair_tail(storage, start_position=stream.start_position, stop_position=stop, **LAYOUT)
    return stop


def _problem(storage: Storage, stream: SyntheticStream, stop: int, synced: int) -> str | None:
    """What is wrong with a recovered recording, or ``None``."""
    frame_ends = {p + a for p, a in stream.frames} | {stream.start_position}
    if stop not in frame_ends:
        return f"stop {stop} is not at a frame boundary"
    if stop < synced:
        return f"stop {stop} is before the synced position {synced}"
    with RecordingReader(
        storage,
        start_position=stream.start_position,
        stop_position=stop,
        initial_term_id=INITIAL_TERM_ID,
        **LAYOUT,
    ) as reader:
        for position, header, payload in reader.frames():
            frame = stream.frame_bytes(position)
            if bytes(payload) != frame[32:] or header[0] != int.from_bytes(frame[:4], "little"):
                return f"frame at {position} differs from what was written"
    # the tail is clean: nothing after the stop in its file, no file after it
    base = segment_file_base_position(stream.start_position, stop, TERM, SEGMENT)
    for file_base, name in segment_files(storage, 0):
        if file_base > base or (file_base == base == stop and stop != stream.start_position):
            return f"{name} is still there after the stop {stop}"
        if file_base == base:
            data = storage.read_file(name)[stop - base :]
            if data.count(0) != len(data):
                return f"{name} is not zero after the stop {stop}"
    return None


def _sweep(
    record: Writer,
    stream: SyntheticStream,
    level: SyncLevel,
    seeds: range,
    *,
    extend: bool = True,
) -> tuple[int, list[str]]:
    """Crash at every operation for every seed, with power loss and without; return the number of
    runs and the problems found."""
    counting = SimDisk(0)
    record(counting.storage("archive"), stream, stream.start_position, level, [])
    points = counting.operation_count
    runs = 0
    problems: list[str] = []
    for point in range(1, points + 1):
        for seed in seeds:
            for power_loss in (True, False):
                disk = SimDisk(_disk_seed(seed, point))
                storage = disk.storage("archive")
                done: list[int] = []
                disk.crash_at(point)
                with pytest.raises(SimulatedCrash):
                    record(storage, stream, stream.start_position, level, done)
                disk.crash(power_loss=power_loss)
                synced = done[-1] if done else stream.start_position
                stop = _recover(storage, stream)
                runs += 1
                problem = _problem(storage, stream, stop, synced)
                if problem is None and extend:
                    # the repaired tail takes the rest of the stream, and all of it reads back
                    record(storage, stream, stop, level, [])
                    problem = _problem(storage, stream, _recover(storage, stream), stream.position)
                    if problem is None and _recover(storage, stream) != stream.position:
                        problem = "the extended recording does not end where the stream does"
                if problem is not None:
                    problems.append(
                        f"crash at {point}/{points}, seed {seed}, power loss {power_loss}: {problem}"
                    )
    return runs, problems


@pytest.mark.parametrize("level", [SyncLevel.DATA, SyncLevel.ALL])
@pytest.mark.parametrize("name", sorted(STREAMS))
def test_crash_sweep_keeps_synced_frames_and_no_torn_frame(name: str, level: SyncLevel) -> None:
    stream = STREAMS[name]
    seeds = range(4) if level == SyncLevel.DATA else range(2)
    runs, problems = _sweep(_record, stream, level, seeds)
    points = runs // (2 * len(seeds))
    print(
        f"\n{name} {level.name}: {points} crash points x {len(seeds)} seeds x power loss or not = {runs} runs"
    )
    assert problems == []
    assert points > 100


def test_crash_during_recovery_is_recovered_by_the_next_one() -> None:
    """A crash while ``repair_tail`` cuts the tail: the next recovery finishes the job."""
    stream = STREAMS["start-0"]
    counting = SimDisk(0)
    _record(counting.storage("archive"), stream, 0, SyncLevel.DATA, [])
    points = counting.operation_count
    runs = 0
    for point in range(1, points + 1, 3):
        for seed in range(3):
            disk = SimDisk(_disk_seed(seed, point))
            storage = disk.storage("archive")
            done: list[int] = []
            disk.crash_at(point)
            with pytest.raises(SimulatedCrash):
                _record(storage, stream, 0, SyncLevel.DATA, done)
            disk.crash(power_loss=True)
            synced = done[-1] if done else 0
            before = disk.operation_count
            _recover(storage, stream)
            repair_operations = disk.operation_count - before
            for inner in range(1, repair_operations + 1):
                again = SimDisk(_disk_seed(seed, point))  # the same history: same seed, same calls
                storage = again.storage("archive")
                again.crash_at(point)
                with pytest.raises(SimulatedCrash):
                    _record(storage, stream, 0, SyncLevel.DATA, [])
                again.crash(power_loss=True)
                again.crash_at(again.operation_count + inner)
                with pytest.raises(SimulatedCrash):
                    _recover(storage, stream)
                again.crash(power_loss=True)
                stop = _recover(storage, stream)
                assert _problem(storage, stream, stop, synced) is None, (point, seed, inner)
                runs += 1
    print(f"\n{runs} crashes inside recovery")
    assert runs > 0


@pytest.mark.parametrize(
    "writer_type", [_OneWriteWriter, _PlainLengthWordWriter], ids=["one-write", "plain-length-word"]
)
def test_canaries_keep_a_torn_frame(writer_type: type[RecordingWriter]) -> None:
    runs, problems = _sweep(
        _canary_record(writer_type), STREAMS["start-0"], SyncLevel.DATA, range(6), extend=False
    )
    assert runs > 0
    assert problems, f"the sweep did not catch the {writer_type.__name__} canary"
    assert any("differs" in problem or "frame boundary" in problem for problem in problems)


# ------------------------------------------------------------------------------------------ recover()

NOW_MS = 1_796_540_000_000


def test_recover_node0_stops_the_log_where_archivetool_did(tmp_path: Path) -> None:
    directory = extract_java("node0", tmp_path)
    storage = RealStorage(directory)
    segment_mtime = (directory / "0-0.rec").stat().st_mtime_ns
    with Catalog(storage) as catalog:
        assert catalog.recording(0).stop_position == -1  # type: ignore[union-attr]
        assert recover(storage, catalog, now_ms=NOW_MS) == [
            f"recording 0: stopPosition -1 set to 768544, stopTimestamp {NOW_MS}"
        ]
        descriptor = catalog.recording(0)
        assert descriptor is not None
        assert (descriptor.stop_position, descriptor.stop_timestamp) == (768544, NOW_MS)
        # the snapshots were stopped already, and nothing else changed
        assert [d.stop_position for d in catalog.recordings()] == [768544, 8448, 352]
        assert recover(storage, catalog, now_ms=NOW_MS + 1) == []
    assert (directory / "0-0.rec").stat().st_mtime_ns == segment_mtime  # the tail was clean already


def test_recover_finishes_an_interrupted_truncate_and_purge(tmp_path: Path) -> None:
    node1 = RealStorage(extract_java("node1", tmp_path / "node1"))
    with Catalog(node1) as catalog:
        # a truncate that wrote the new stop position and died before cutting the file
        catalog.update_stop(0, 384416, NOW_MS)
        assert recover(node1, catalog, now_ms=NOW_MS) == [
            "recording 0: erased 0-0.rec from offset 384416 (after the stop position)"
        ]
        assert recover(node1, catalog, now_ms=NOW_MS) == []
    assert find_stop_position(node1, **_node_log_layout()) == 384416
    archive_a = RealStorage(extract_java("archiveA", tmp_path / "a"))
    archive_a.open("1-0.rec", create=True).close()  # a purge that died before deleting the file
    with Catalog(archive_a) as catalog:
        assert recover(archive_a, catalog, now_ms=NOW_MS) == [
            "recording 1: deleted 1-0.rec (the recording is DELETED)"
        ]
    assert not archive_a.exists("1-0.rec")


def _node_log_layout() -> dict[str, int]:
    return {
        "recording_id": 0,
        "start_position": 0,
        "term_length": 64 * 1024 * 1024,
        "segment_length": 128 * 1024 * 1024,
        "initial_term_id": 0,
    }


def test_recover_reports_what_it_cannot_repair(tmp_path: Path) -> None:
    node1 = RealStorage(extract_java("node1", tmp_path))
    node1.delete("3-0.rec")
    with Catalog(node1) as catalog:
        bad = catalog.add_recording(
            start_position=0,
            start_timestamp=NOW_MS,
            initial_term_id=0,
            segment_file_length=128 * 1024 * 1024,
            term_buffer_length=1000,
            mtu_length=1408,
            session_id=1,
            stream_id=2,
            stripped_channel="aeron:ipc",
            original_channel="aeron:ipc",
            source_identity="aeron:ipc",
        )
        assert recover(node1, catalog, now_ms=NOW_MS) == [
            "recording 3: its last segment file 3-0.rec (holding the stop position 8544) is missing",
            f"recording {bad}: left alone: term length 1000 is not a power of two",
        ]
        assert catalog.recording(3).state == RecordingState.VALID  # type: ignore[union-attr]
        assert catalog.recording(bad).stop_position == -1  # type: ignore[union-attr]


def test_recover_after_crashes_with_the_catalog() -> None:
    """A recording registered in a catalog on the simulated disk, crashed while recording at every few
    operations: recover() sets the stop position the scan finds, which keeps every synced frame."""
    stream = STREAMS["start-0"]
    counting = SimDisk(0)
    _with_catalog(counting.storage("archive"), stream, [])
    points = counting.operation_count
    runs = 0
    for point in range(1, points + 1, 2):
        for seed in range(2):
            disk = SimDisk(_disk_seed(seed, point))
            storage = disk.storage("archive")
            done: list[int] = []
            disk.crash_at(point)
            with pytest.raises(SimulatedCrash):
                _with_catalog(storage, stream, done)
            disk.crash(power_loss=True)
            if not storage.exists("archive.catalog"):
                continue  # the crash came before the catalog existed
            with Catalog(storage, file_sync_level=SyncLevel.DATA) as catalog:
                if catalog.recording(0) is None:
                    continue  # ... or before the recording was in it
                lines = recover(storage, catalog, now_ms=NOW_MS)
                descriptor = catalog.recording(0)
                assert descriptor is not None
                stop = descriptor.stop_position
                assert lines[-1] == f"recording 0: stopPosition -1 set to {stop}, stopTimestamp {NOW_MS}"
                synced = done[-1] if done else 0
                assert _problem(storage, stream, stop, synced) is None, (point, seed)
                assert recover(storage, catalog, now_ms=NOW_MS) == []
            runs += 1
    print(f"\n{runs} crashes recovered through the catalog")
    assert runs > 50


def _with_catalog(storage: Storage, stream: SyntheticStream, done: list[int]) -> None:
    with Catalog(storage, file_sync_level=SyncLevel.DATA) as catalog:
        recording_id = catalog.add_recording(
            start_position=stream.start_position,
            start_timestamp=NOW_MS,
            initial_term_id=INITIAL_TERM_ID,
            segment_file_length=SEGMENT,
            term_buffer_length=TERM,
            mtu_length=stream.mtu,
            session_id=stream.session_id,
            stream_id=stream.stream_id,
            stripped_channel="aeron:ipc",
            original_channel="aeron:ipc",
            source_identity="aeron:ipc",
        )
        assert recording_id == 0
        _record(storage, stream, stream.start_position, SyncLevel.DATA, done)
