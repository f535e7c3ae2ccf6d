"""``RecordingWriter``: blocks of a synthetic stream written and read back byte for byte, PAD frames
header-only, segment roll-over, recordings that start mid-term and are extended, syncs at Aeron's file
sync levels, blocks that do not fit the position, and Aeron's own segment file re-recorded byte for
byte."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.recordings import JAVA_BY_NAME, SyntheticStream

from cluster.archive.errors import SegmentError
from cluster.archive.recording_reader import RecordingReader
from cluster.archive.recording_writer import RecordingWriter
from cluster.archive.segments import HEADER_LENGTH, find_stop_position, segment_files
from cluster.storage import RealStorage, Storage, StorageError, StorageFile, SyncLevel
from generated.aeron_transport_frames import DataHeaderEncoder, FrameType

KIB = 1024
MIB = 1024 * KIB
TERM = 64 * KIB
SEGMENT = 128 * KIB


def _stream(messages: int, start_position: int = 0, initial_term_id: int = 1000) -> SyntheticStream:
    stream = SyntheticStream(TERM, initial_term_id=initial_term_id, start_position=start_position)
    for i in range(messages):
        stream.append(bytes((3 * i + j) % 256 for j in range([0, 100, 1400, 5000, 250][i % 5])))
    return stream


def _writer(
    storage: Storage, stream: SyntheticStream, position: int | None = None, **overrides: object
) -> RecordingWriter:
    arguments: dict[str, object] = {
        "recording_id": 3,
        "start_position": stream.start_position,
        "position": stream.start_position if position is None else position,
        "term_length": stream.term_length,
        "segment_length": SEGMENT,
        "file_sync_level": SyncLevel.NONE,
    }
    arguments.update(overrides)
    return RecordingWriter(storage, **arguments)  # type: ignore[arg-type]


def _write(writer: RecordingWriter, stream: SyntheticStream, start: int, end: int, max_block: int) -> int:
    count = 0
    for block in stream.blocks(start, end, max_block):
        assert writer.position == block.position
        writer.on_block(block.buffer, block.offset, block.length, block.session_id, block.term_id)
        count += 1
    assert writer.position == end
    return count


def _check_read_back(storage: Storage, stream: SyntheticStream, start: int | None = None) -> None:
    """Every frame reads back with the bytes the stream had (a PAD as its header), and the file is zero
    after the last frame."""
    start = stream.start_position if start is None else start
    expected = [(p, a) for p, a in stream.frames if p >= start]
    with RecordingReader(
        storage,
        recording_id=3,
        start_position=stream.start_position,
        stop_position=stream.position,
        term_length=stream.term_length,
        segment_length=SEGMENT,
        initial_term_id=stream.initial_term_id,
        from_position=start,
        stream_id=stream.stream_id,
    ) as reader:
        got = []
        for position, header, payload in reader.frames():
            frame = stream.frame_bytes(position)
            assert bytes(DataHeaderEncoder.LAYOUT.pack(*header)) == frame[:HEADER_LENGTH]
            assert bytes(payload) == frame[HEADER_LENGTH:]
            got.append((position, (header[0] + 31) & -32))
        assert got == expected
        assert reader.position == stream.position
    assert (
        find_stop_position(
            storage,
            recording_id=3,
            start_position=stream.start_position,
            term_length=stream.term_length,
            segment_length=SEGMENT,
            initial_term_id=stream.initial_term_id,
        )
        == stream.position
    )


@pytest.mark.parametrize("max_block", [32, 1408, 4096, 65536])
def test_round_trip_with_pad_frames_and_roll_over(tmp_path: Path, max_block: int) -> None:
    storage = RealStorage(tmp_path)
    stream = _stream(250)  # over 5 terms of 64 KiB: PADs at term ends, 3 segment files
    pads = [p for p, _ in stream.frames if stream.frame_bytes(p)[6] == FrameType.PAD]
    assert len(pads) >= 3 and stream.position > 2 * SEGMENT
    with _writer(storage, stream) as writer:
        blocks = _write(writer, stream, 0, stream.position, max_block)
    assert blocks >= len(pads)
    bases = [base for base, _ in segment_files(storage, 3)]
    assert bases == list(range(0, stream.position + 1, SEGMENT))[: len(bases)]
    assert bases[-1] <= stream.position < bases[-1] + SEGMENT
    for _, name in segment_files(storage, 3):
        with storage.open(name) as file:
            assert file.size() == SEGMENT  # created at full length
    _check_read_back(storage, stream)
    # a PAD is in the file as its header only: the padding's bytes stay zero
    for pad in pads:
        name = f"3-{pad - pad % SEGMENT}.rec"
        length = int.from_bytes(stream.frame_bytes(pad)[:4], "little")
        data = storage.read_file(name)[pad % SEGMENT : pad % SEGMENT + length]
        assert data[:HEADER_LENGTH] == stream.frame_bytes(pad)
        assert data[HEADER_LENGTH:].count(0) == length - HEADER_LENGTH


def test_next_segment_is_created_at_the_boundary(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    stream = _stream(0)
    while stream.position < SEGMENT:
        stream.append(b"x" * 2000)
        if stream.position & (TERM - 1) > TERM - 3000:
            stream.pad_to_term_end()
    assert stream.position == SEGMENT
    with _writer(storage, stream) as writer:
        _write(writer, stream, 0, SEGMENT, 8192)
    # as Aeron does: the next file exists, empty, as soon as the position reaches it
    assert [base for base, _ in segment_files(storage, 3)] == [0, SEGMENT]
    assert storage.read_file("3-131072.rec").count(0) == SEGMENT
    _check_read_back(storage, stream)


def test_recording_that_starts_mid_term_and_is_extended(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    start = 5 * TERM + 37 * 32
    stream = _stream(60, start_position=start, initial_term_id=-(2**31) + 2)  # term ids wrap
    middle = stream.position
    for i in range(120):
        stream.append(bytes([i]) * (i * 37 % 3000))
    with _writer(storage, stream) as writer:
        _write(writer, stream, start, middle, 3000)
    # the first file starts at the start term's base; its bytes before the start are not used
    assert segment_files(storage, 3)[0] == (5 * TERM, "3-327680.rec")
    assert storage.read_file("3-327680.rec")[: start - 5 * TERM].count(0) == start - 5 * TERM
    # extend: a new writer continues at the stop position, the initial term id given this time
    with _writer(storage, stream, position=middle, initial_term_id=stream.initial_term_id) as writer:
        _write(writer, stream, middle, stream.position, 5000)
    _check_read_back(storage, stream)
    _check_read_back(storage, stream, start=middle)


def test_java_segment_file_re_recorded_byte_for_byte(
    tmp_path: Path, java_archive: Callable[[Any], Path], archivetool_describe: Callable[[Path], Any]
) -> None:
    """Aeron's own recording, fed block by block to our writer, gives the same file."""
    java = java_archive(JAVA_BY_NAME["archiveA"])
    descriptor = archivetool_describe(JAVA_BY_NAME["archiveA"].describe).descriptors[0]
    term_length = int(descriptor["termBufferLength"])
    initial_term_id = int(descriptor["initialTermId"])
    original = (java / "0-0.rec").read_bytes()
    stop = int(descriptor["stopPosition"])
    storage = RealStorage(tmp_path / "ours", create=True)
    with RecordingWriter(
        storage,
        recording_id=0,
        start_position=0,
        position=0,
        term_length=term_length,
        segment_length=int(descriptor["segmentFileLength"]),
        file_sync_level=SyncLevel.NONE,
    ) as writer:
        # the term as a receiver rebuilt it, handed over in blocks of up to 4 KiB of whole frames
        term = memoryview(bytearray(original[:term_length]))
        offset = 0
        while offset < stop:
            length = 0
            while offset + length < stop:
                aligned = (int.from_bytes(term[offset + length : offset + length + 4], "little") + 31) & -32
                if length and length + aligned > 4096:
                    break
                length += aligned
            writer.on_block(term, offset, length, -1224040349, initial_term_id)
            offset += length
        assert writer.position == stop
    assert (tmp_path / "ours" / "0-0.rec").read_bytes() == original


# ------------------------------------------------------------------------------------------ syncs


class _Counting(Storage):
    """A storage that logs the mutating calls of its files, in order."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.log: list[tuple[str, ...]] = []

    @property
    def location(self) -> str:
        return self.inner.location

    def open(self, name: str, *, create: bool = False) -> StorageFile:
        return _CountingFile(self, self.inner.open(name, create=create))

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)

    def list(self) -> list[str]:
        return self.inner.list()

    def delete(self, name: str) -> None:
        self.log.append(("delete", name))
        self.inner.delete(name)

    def sync_directory(self) -> None:
        self.log.append(("sync_directory",))
        self.inner.sync_directory()


class _CountingFile(StorageFile):
    def __init__(self, storage: _Counting, inner: StorageFile) -> None:
        self.storage = storage
        self.inner = inner
        self.name = inner.name
        self.fail_writes = False

    def read(self, offset: int, length: int) -> bytes:
        return self.inner.read(offset, length)

    def read_into(self, offset: int, buffer: bytearray | memoryview) -> int:
        return self.inner.read_into(offset, buffer)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self.storage.log.append(("write", self.name, str(offset), str(len(data))))
        self.inner.write(offset, data)

    def size(self) -> int:
        return self.inner.size()

    def truncate(self, length: int) -> None:
        self.storage.log.append(("truncate", self.name, str(length)))
        self.inner.truncate(length)

    def sync(self, level: SyncLevel) -> None:
        self.storage.log.append(("sync", self.name, level.name))
        self.inner.sync(level)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("level", list(SyncLevel))
def test_each_block_is_synced_at_the_file_sync_level(tmp_path: Path, level: SyncLevel) -> None:
    storage = _Counting(RealStorage(tmp_path))
    stream = _stream(100)
    with _writer(storage, stream, file_sync_level=level) as writer:
        blocks = _write(writer, stream, 0, stream.position, 4096)
    syncs = [entry for entry in storage.log if entry[0] == "sync"]
    files = len(segment_files(storage, 3))
    if level == SyncLevel.NONE:
        assert syncs == [] and ("sync_directory",) not in storage.log
    else:
        assert all(entry[2] == level.name for entry in syncs)
        assert len(syncs) == blocks + files  # one per block, one per new file
        assert storage.log.count(("sync_directory",)) == files
    # every block ends with its length word: a 1-byte write (short frame), or a 4-byte one after the
    # 0x80 byte that keeps the word invalid while it is written
    writes = [entry for entry in storage.log if entry[0] == "write"]
    assert len(writes) >= 2 * blocks
    _check_read_back(storage.inner, stream)


def test_block_is_written_length_word_last(tmp_path: Path) -> None:
    storage = _Counting(RealStorage(tmp_path))
    stream = _stream(3)  # frames of 32 (an empty message), 132, then 1408 and 56 (a 1400-byte message)
    with _writer(storage, stream) as writer:
        storage.log.clear()
        for block in stream.blocks(0, stream.position, 32):
            writer.on_block(block.buffer, block.offset, block.length, block.session_id, block.term_id)
    writes = [(int(entry[2]), int(entry[3])) for entry in storage.log if entry[0] == "write"]
    assert writes == [
        (1, 31), (0, 1),  # 32-byte frame: all but byte 0, then byte 0
        (33, 159), (32, 1),  # 132 bytes (160 aligned)
        (196, 1404), (195, 1), (192, 4),  # 1408 bytes: from byte 4, then byte 3 = 0x80, then the word
        (1601, 63), (1600, 1),  # 56 bytes
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------ errors


def test_blocks_that_do_not_fit_are_refused_before_writing(tmp_path: Path) -> None:
    storage = _Counting(RealStorage(tmp_path))
    stream = _stream(10)
    blocks = list(stream.blocks(0, stream.position, 4096))
    with _writer(storage, stream) as writer:
        first = blocks[0]
        storage.log.clear()
        cases = [
            (
                (first.buffer, first.offset + 32, first.length, first.session_id, first.term_id),
                "term offset 32",
            ),
            (
                (first.buffer, first.offset, first.length, first.session_id, first.term_id + 1),
                "term_id is 1000, the block's is 1001",
            ),
            ((first.buffer, first.offset, 48, first.session_id, first.term_id), "block of length 48"),
            ((first.buffer, first.offset, 0, first.session_id, first.term_id), "block of length 0"),
            ((first.buffer, first.offset, first.length, 99, first.term_id), "session_id is 7"),
            ((first.buffer[:100], first.offset, first.length, first.session_id, first.term_id), "buffer"),
        ]
        for args, message in cases:
            with pytest.raises(SegmentError, match=message):
                writer.on_block(*args)  # type: ignore[arg-type]
        # a first frame whose length runs past the block
        term = bytearray(first.buffer)
        DataHeaderEncoder.pack_into(term, 0, 5000, 0, 0xC0, 1, 0, 7, 1001, 1000, 0)
        with pytest.raises(SegmentError, match="runs past the block's end"):
            writer.on_block(memoryview(term), 0, 4096, 7, 1000)
        DataHeaderEncoder.pack_into(term, 0, 64, 0, 0, 9, 0, 7, 1001, 1000, 0)
        with pytest.raises(SegmentError, match="type is 9"):
            writer.on_block(memoryview(term), 0, 64, 7, 1000)
        assert storage.log == []  # nothing was written
        assert writer.position == 0
        _write(writer, stream, 0, stream.position, 4096)  # the writer still works
    # knowing the initial term id, the writer names the term it expected
    storage.inner.delete("3-0.rec")
    with (
        _writer(storage.inner, stream, initial_term_id=1000) as writer,
        pytest.raises(SegmentError, match="block of term 1001, expected term 1000"),
    ):
        writer.on_block(first.buffer, first.offset, first.length, first.session_id, first.term_id + 1)
    with _writer(storage.inner, stream, initial_term_id=1000) as writer:
        _write(writer, stream, 0, stream.position, 4096)
    with pytest.raises(SegmentError, match="closed"):
        writer.on_block(first.buffer, first.offset, first.length, first.session_id, first.term_id)
    _check_read_back(storage.inner, stream)


def test_writer_refuses_a_tail_that_is_not_zero(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    stream = _stream(10)
    with _writer(storage, stream) as writer:
        _write(writer, stream, 0, stream.position, 4096)
    with storage.open("3-0.rec") as file:
        file.write(stream.position + 100, b"\x07")
    with pytest.raises(
        SegmentError, match=rf"3-0\.rec, offset {stream.position + 100}: the file holds data after"
    ):
        _writer(storage, stream, position=stream.position)


def test_argument_checks(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    stream = _stream(0)
    for overrides, message in [
        ({"term_length": 1000}, "not a power of two"),
        ({"segment_length": TERM // 2}, "not a multiple"),
        ({"position": 48}, "multiple of 32"),
        ({"start_position": 64, "position": 32}, "before the start position"),
        ({"recording_id": -1}, "recording id"),
    ]:
        with pytest.raises(SegmentError, match=message):
            _writer(storage, stream, **overrides)


def test_storage_error_breaks_the_writer_and_erases_the_block(tmp_path: Path) -> None:
    storage = _Counting(RealStorage(tmp_path))
    stream = _stream(20)
    blocks = list(stream.blocks(0, stream.position, 4096))
    writer = _writer(storage, stream)
    for block in blocks[:2]:
        writer.on_block(block.buffer, block.offset, block.length, block.session_id, block.term_id)
    stop = writer.position
    file = writer._file
    assert isinstance(file, _CountingFile)
    original_write = file.inner.write
    calls = []

    def failing_write(offset: int, data: bytes | bytearray | memoryview) -> None:
        calls.append(offset)
        if len(calls) == 2:  # the body lands, then the length word fails
            raise StorageError(28, "write: no space left")
        original_write(offset, data)

    file.inner.write = failing_write  # type: ignore[method-assign]
    block = blocks[2]
    with pytest.raises(StorageError):
        writer.on_block(block.buffer, block.offset, block.length, block.session_id, block.term_id)
    assert writer.position == stop
    with pytest.raises(SegmentError, match="broken by an earlier storage error"):
        writer.on_block(block.buffer, block.offset, block.length, block.session_id, block.term_id)
    writer.close()
    # the half-written block was erased: the tail is zero, and a new writer can go on from the stop
    assert storage.inner.read_file("3-0.rec")[stop:].count(0) == SEGMENT - stop
    with _writer(storage.inner, stream, position=stop) as again:
        _write(again, stream, stop, stream.position, 4096)
    _check_read_back(storage.inner, stream)


def test_java_default_segment_length_with_a_large_term(tmp_path: Path) -> None:
    """Aeron's defaults: a 128 MiB segment holds eight 16 MiB terms; the file is sparse."""
    storage = RealStorage(tmp_path)
    stream = SyntheticStream(16 * MIB, initial_term_id=0)
    for i in range(50):
        stream.append(bytes([i]) * 3000)
    with RecordingWriter(
        storage,
        recording_id=3,
        start_position=0,
        position=0,
        term_length=16 * MIB,
        segment_length=128 * MIB,
        file_sync_level=SyncLevel.NONE,
    ) as writer:
        for block in stream.blocks(0, stream.position, 1 * MIB):
            writer.on_block(block.buffer, block.offset, block.length, block.session_id, block.term_id)
    assert (tmp_path / "3-0.rec").stat().st_size == 128 * MIB
    assert (tmp_path / "3-0.rec").stat().st_blocks * 512 < 16 * MIB
