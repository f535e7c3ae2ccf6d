"""Segment files: names, the base-position arithmetic, reading and scanning Aeron's own segment files,
truncate, purge and tail repair, and corrupt bytes (which must give ``SegmentError``, nothing else)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.recordings import JAVA_BY_NAME, NODE0_DESCRIBE_AFTER_VERIFY, SyntheticStream

from cluster.archive.errors import ArchiveError, SegmentError
from cluster.archive.recording_reader import RecordingReader
from cluster.archive.recording_writer import RecordingWriter
from cluster.archive.segments import (
    DEFAULT_SEGMENT_FILE_LENGTH,
    FRAME_ALIGNMENT,
    HEADER_LENGTH,
    SEGMENT_FILE_SUFFIX,
    check_layout,
    delete_recording_files,
    find_stop_position,
    frame_problem,
    parse_segment_file_name,
    purge_position,
    repair_tail,
    segment_file_base_position,
    segment_file_name,
    segment_files,
    truncate_recording_files,
)
from cluster.storage import RealStorage, SyncLevel

KIB = 1024
MIB = 1024 * KIB


# ------------------------------------------------------------------------------------------ names


def test_constants() -> None:
    assert HEADER_LENGTH == 32
    assert FRAME_ALIGNMENT == 32
    assert DEFAULT_SEGMENT_FILE_LENGTH == 128 * MIB
    assert SEGMENT_FILE_SUFFIX == ".rec"


def test_segment_file_names() -> None:
    assert segment_file_name(0, 0) == "0-0.rec"
    assert segment_file_name(12, 134217728) == "12-134217728.rec"
    assert parse_segment_file_name("12-134217728.rec") == (12, 134217728)
    assert parse_segment_file_name("0-0.rec") == (0, 0)
    for name in [
        "archive.catalog", "archive-mark.dat", "0-0.rec.tmp", "0-0.REC", "01-0.rec", "0-00.rec",
        "-1-0.rec", "0--1.rec", "a-0.rec", "0-0", "0.rec", "0-0-0.rec", " 0-0.rec",
        "0-9223372036854775808.rec",
    ]:  # fmt: skip
        assert parse_segment_file_name(name) is None, name
    with pytest.raises(SegmentError):
        segment_file_name(-1, 0)
    with pytest.raises(SegmentError):
        segment_file_name(0, -32)


@given(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
def test_segment_file_name_round_trip(recording_id: int, base: int) -> None:
    assert parse_segment_file_name(segment_file_name(recording_id, base)) == (recording_id, base)


def test_segment_files_lists_one_recording_by_base(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    for name in ["1-0.rec", "1-1073741824.rec", "1-268435456.rec", "10-0.rec", "2-0.rec", "1-x.rec", "x"]:
        storage.open(name, create=True).close()
    assert segment_files(storage, 1) == [
        (0, "1-0.rec"),
        (268435456, "1-268435456.rec"),
        (1073741824, "1-1073741824.rec"),
    ]
    assert segment_files(storage, 3) == []


# ------------------------------------------------------------------------------------------ arithmetic


def test_segment_base_examples() -> None:
    term, segment = 64 * KIB, 128 * KIB
    assert segment_file_base_position(0, 0, term, segment) == 0
    assert segment_file_base_position(0, segment - 32, term, segment) == 0
    assert segment_file_base_position(0, segment, term, segment) == segment
    # a recording that starts mid-term: its first segment starts at that term's base
    start = 3 * term + 4096
    assert segment_file_base_position(start, start, term, segment) == 3 * term
    assert segment_file_base_position(start, 5 * term - 32, term, segment) == 3 * term
    assert segment_file_base_position(start, 5 * term, term, segment) == 5 * term
    # Aeron's defaults: 128 MiB segments of 16 MiB terms
    assert segment_file_base_position(0, 1042272, 16 * MIB, 128 * MIB) == 0
    assert segment_file_base_position(0, 128 * MIB + 1, 16 * MIB, 128 * MIB) == 128 * MIB


layouts = st.integers(16, 30).flatmap(
    lambda term_bits: st.tuples(
        st.just(1 << term_bits), st.integers(term_bits, 30).map(lambda bits: 1 << bits)
    )
)


@given(layouts, st.integers(0, 2**40).map(lambda v: v * 32), st.integers(0, 2**45))
def test_segment_base_against_the_formula(layout: tuple[int, int], start: int, distance: int) -> None:
    term, segment = layout
    position = start + distance
    base = segment_file_base_position(start, position, term, segment)
    start_term_base = start - (start & (term - 1))
    assert base == start_term_base + ((position - start_term_base) // segment) * segment
    # what the formula means: the file holds the position, starts a whole number of segments after the
    # start term's base, and holds whole terms
    assert base <= position < base + segment
    assert (base - start_term_base) % segment == 0
    assert base % term == 0
    # every position of the same term is in the same file
    term_base = position - (position & (term - 1))
    assert segment_file_base_position(start, max(term_base, start), term, segment) == base
    assert segment_file_base_position(start, term_base + term - 1, term, segment) == base


def test_layout_and_position_checks() -> None:
    check_layout(64 * KIB, 128 * MIB)
    check_layout(1024 * MIB, 1024 * MIB)
    bad = [
        ((48 * KIB, 128 * MIB), "not a power of two"),
        ((32 * KIB, 128 * MIB), "outside"),
        ((2048 * MIB, 2048 * MIB), "outside"),
        ((64 * KIB, 96 * KIB), "not a multiple of the term length"),
        ((128 * KIB, 64 * KIB), "not a multiple of the term length"),
        ((64 * KIB, 192 * KIB), "not a power of two"),
        ((64 * KIB, 2048 * MIB), "more than"),
    ]
    for (term, segment), message in bad:
        with pytest.raises(SegmentError, match=message):
            check_layout(term, segment)
    with pytest.raises(SegmentError, match="before the start position"):
        segment_file_base_position(4096, 32, 64 * KIB, 128 * KIB)
    with pytest.raises(SegmentError, match="not a position"):
        segment_file_base_position(-32, 0, 64 * KIB, 128 * KIB)
    assert issubclass(SegmentError, ArchiveError) and SegmentError.is_user_error


# ------------------------------------------------------------------------------------------ Java files


class JavaDirectory(NamedTuple):
    storage: RealStorage
    descriptors: dict[int, dict[str, Any]]  # what ArchiveTool describe printed, by recording id


@pytest.fixture(scope="module")
def java(
    java_archive: Callable[[Any], Path], archivetool_describe: Callable[[Path], Any]
) -> dict[str, JavaDirectory]:
    """The Java archive directories (shared: read only) with ArchiveTool's descriptors of them."""
    out = {}
    for name in ("archiveA", "archiveB", "node0", "node1"):
        case = JAVA_BY_NAME[name]
        out[name] = JavaDirectory(
            RealStorage(java_archive(case)), archivetool_describe(case.describe).descriptors
        )
    out["node0-after-verify"] = JavaDirectory(
        out["node0"].storage, archivetool_describe(NODE0_DESCRIBE_AFTER_VERIFY).descriptors
    )
    return out


def _reader(storage: RealStorage, descriptor: dict[str, Any], **overrides: object) -> RecordingReader:
    stop = int(descriptor["stopPosition"])
    arguments: dict[str, object] = {
        "recording_id": int(descriptor["recordingId"]),
        "start_position": int(descriptor["startPosition"]),
        "stop_position": None if stop == -1 else stop,
        "term_length": int(descriptor["termBufferLength"]),
        "segment_length": int(descriptor["segmentFileLength"]),
        "initial_term_id": int(descriptor["initialTermId"]),
        "stream_id": int(descriptor["streamId"]),
    }
    arguments.update(overrides)
    return RecordingReader(storage, **arguments)  # type: ignore[arg-type]


def _messages(reader: RecordingReader) -> list[bytes]:
    """Reassemble the reader's frames by their BEGIN/END flags."""
    messages, parts = [], []
    for _, header, payload in reader.frames():
        if header[3] != 1:
            continue
        flags = header[2]
        if flags & 0x80:
            parts = []
        parts.append(bytes(payload))
        if flags & 0x40:
            messages.append(b"".join(parts))
    return messages


@pytest.mark.parametrize("archive", ["archiveA", "archiveB"])
def test_java_archive_recording_reassembles_every_message(
    java: dict[str, JavaDirectory], archive: str
) -> None:
    descriptor = java[archive].descriptors[0]
    assert descriptor["stopPosition"] == 1042272
    with _reader(java[archive].storage, descriptor) as reader:
        messages = _messages(reader)
        assert reader.position == 1042272
    assert len(messages) == 500
    for i, message in enumerate(messages):
        assert len(message) == [32, 1000, 5000][i % 3]
        assert message == bytes((i + j) % 251 for j in range(len(message))), i


def test_java_frames_are_all_valid_and_mtu_sized(java: dict[str, JavaDirectory]) -> None:
    descriptor = java["archiveA"].descriptors[0]
    count = 0
    with _reader(java["archiveA"].storage, descriptor) as reader:
        for position, header, payload in reader.frames():
            assert header[0] <= 1408 and len(payload) == header[0] - HEADER_LENGTH
            assert header[4] == position & (16 * MIB - 1)
            assert header[5] == -1224040349  # archive A keeps the session id of the publication
            count += 1
    assert count == 998


def test_java_cluster_log_frames_valid_to_its_stop(java: dict[str, JavaDirectory]) -> None:
    descriptor = java["node1"].descriptors[0]
    assert descriptor["stopPosition"] == 895584
    sessions = set()
    end = 0
    with _reader(java["node1"].storage, descriptor) as reader:
        for position, header, _ in reader.frames():
            sessions.add(header[5])
            end = position + ((header[0] + 31) & -32)
        assert reader.position == end == 895584
    # the log was extended by the leader of term 1: two publications, one recording
    assert sessions == {2021085391, -817021328}


def test_read_block_limits(java: dict[str, JavaDirectory]) -> None:
    descriptor = java["node1"].descriptors[0]
    term_length = int(descriptor["termBufferLength"])
    frame_starts = []
    with _reader(java["node1"].storage, descriptor) as reader:
        frame_starts = [position for position, _, _ in reader.frames()]
    for max_length in (32, 100, 1408, 4096, 65536):
        with _reader(java["node1"].storage, descriptor) as reader:
            seen = []
            while True:
                position = reader.position
                block = reader.read_block(max_length)
                if block is None:
                    break
                assert len(block) <= max_length or _one_frame(block)
                assert (position & (term_length - 1)) + len(block) <= term_length
                assert reader.position == position + len(block)
                offset = 0
                while offset < len(block):
                    seen.append(position + offset)
                    offset += (int.from_bytes(block[offset : offset + 4], "little") + 31) & -32
            assert seen == frame_starts
            assert reader.position == 895584


def _one_frame(block: memoryview) -> bool:
    return (int.from_bytes(block[:4], "little") + 31) & -32 == len(block)


def test_read_from_a_later_position_and_to_an_earlier_stop(java: dict[str, JavaDirectory]) -> None:
    descriptor = java["node1"].descriptors[0]
    with _reader(java["node1"].storage, descriptor) as reader:
        starts = [position for position, _, _ in reader.frames()]
    middle = starts[len(starts) // 2]
    with _reader(java["node1"].storage, descriptor, from_position=middle, stop_position=768544) as reader:
        assert [position for position, _, _ in reader.frames()] == [p for p in starts if middle <= p < 768544]
        assert reader.position == 768544
    # a stop inside a frame: only whole frames below it
    with _reader(java["node1"].storage, descriptor, stop_position=starts[3] + 32) as reader:
        assert [position for position, _, _ in reader.frames()] == starts[:3]
        assert reader.read_block() is None


@pytest.mark.parametrize(
    ("archive", "recording_id"), [*(("node0", i) for i in range(3)), *(("node1", i) for i in range(5))]
)
def test_find_stop_position_on_java_recordings(
    java: dict[str, JavaDirectory], archive: str, recording_id: int
) -> None:
    descriptor = java[archive].descriptors[recording_id]
    expected = int(descriptor["stopPosition"])
    if expected == -1:  # node0's log, killed while recording: ArchiveTool verify set it to 768544
        expected = int(java["node0-after-verify"].descriptors[recording_id]["stopPosition"])
        assert expected == 768544
    found = find_stop_position(
        java[archive].storage,
        recording_id=recording_id,
        start_position=int(descriptor["startPosition"]),
        term_length=int(descriptor["termBufferLength"]),
        segment_length=int(descriptor["segmentFileLength"]),
        initial_term_id=int(descriptor["initialTermId"]),
        stream_id=int(descriptor["streamId"]),
    )
    assert found == expected


def test_find_stop_position_on_node0_log(java: dict[str, JavaDirectory]) -> None:
    arguments = dict(
        recording_id=0, start_position=0, term_length=64 * MIB, segment_length=128 * MIB, initial_term_id=0
    )
    assert find_stop_position(java["node0"].storage, **arguments) == 768544
    assert find_stop_position(java["node0"].storage, **arguments, from_position=384416) == 768544
    # a wrong initial term id makes the very first frame invalid
    assert find_stop_position(java["node0"].storage, **{**arguments, "initial_term_id": 5}) == 0
    # the reader without a stop position ends where the frames do
    with RecordingReader(java["node0"].storage, stop_position=None, **arguments) as reader:
        assert sum(1 for _ in reader.frames()) == 1005
        assert reader.position == 768544


def test_missing_segment_and_unknown_stop(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    arguments = dict(
        recording_id=4, start_position=0, term_length=64 * KIB, segment_length=128 * KIB, initial_term_id=0
    )
    assert find_stop_position(storage, **arguments) == 0
    with RecordingReader(storage, stop_position=None, **arguments) as reader:
        assert reader.read_block() is None
    with (
        RecordingReader(storage, stop_position=4096, **arguments) as reader,
        pytest.raises(SegmentError, match=r"4-0\.rec: the segment file is missing"),
    ):
        reader.read_block()
    storage.open("4-0.rec", create=True).close()  # an empty file: the data below the stop is not there
    with (
        RecordingReader(storage, stop_position=4096, **arguments) as reader,
        pytest.raises(SegmentError, match="the file ends"),
    ):
        reader.read_block()


# ------------------------------------------------------------------------------------------ synthetic


TERM = 64 * KIB
SEGMENT = 128 * KIB


def _record(
    storage: RealStorage, stream: SyntheticStream, recording_id: int = 0, max_block: int = 4096
) -> None:
    with RecordingWriter(
        storage,
        recording_id=recording_id,
        start_position=stream.start_position,
        position=stream.start_position,
        term_length=stream.term_length,
        segment_length=SEGMENT,
        file_sync_level=SyncLevel.NONE,
    ) as writer:
        for block in stream.blocks(stream.start_position, stream.position, max_block):
            writer.on_block(block.buffer, block.offset, block.length, block.session_id, block.term_id)
        assert writer.position == stream.position


def _stream(messages: int, start_position: int = 0, seed: int = 1) -> SyntheticStream:
    stream = SyntheticStream(TERM, initial_term_id=-5, start_position=start_position)
    for i in range(messages):
        stream.append(bytes((i + seed + j) % 251 for j in range([10, 700, 3000, 0][i % 4])))
    return stream


def _file_bytes(storage: RealStorage, name: str) -> bytes:
    return storage.read_file(name)


@pytest.fixture(scope="module")
def padded(tmp_path_factory: pytest.TempPathFactory) -> tuple[RealStorage, int]:
    """A recording of a bit more than one term, a PAD at the term's end: (storage, stop position)."""
    storage = RealStorage(tmp_path_factory.mktemp("padded"))
    stream = _stream(120)
    _record(storage, stream)
    return storage, stream.position


def _block_frame_ends(position: int, block: bytes) -> list[int]:
    """Where each frame of a block read at ``position`` ends (a PAD block: its whole aligned length)."""
    ends, offset = [], 0
    while offset < len(block):
        offset += (int.from_bytes(block[offset : offset + 4], "little") + 31) & -32
        ends.append(position + offset)
    return ends


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.integers(0, 80 * KIB), min_size=1, max_size=5).map(sorted),
    st.sampled_from([32, 100, 1408, 4096, 65536]),
    st.booleans(),
)
def test_a_read_limit_cuts_each_block_at_the_last_frame_end_at_or_before_it(
    padded: tuple[RealStorage, int], limits: list[int], max_length: int, with_stop: bool
) -> None:
    # what a bounded replay reads: the block a read without the limit gives, cut after its last frame
    # that ends at or before the limit (DATA or PAD); None, with the position kept, when no frame does
    storage, stop = padded
    layout = dict(
        recording_id=0, start_position=0, term_length=TERM, segment_length=SEGMENT, initial_term_id=-5
    )
    with RecordingReader(storage, **layout, stop_position=stop) as whole:  # type: ignore[arg-type]
        frames = [(position + ((header[0] + 31) & -32), header[3]) for position, header, _ in whole.frames()]
    ends = [end for end, _ in frames]
    assert (TERM, 0) in frames  # the PAD at the term's end
    with RecordingReader(storage, **layout, stop_position=stop if with_stop else None) as reader:
        for limit in limits:
            while True:
                position = reader.position
                with RecordingReader(storage, **layout, stop_position=None, from_position=position) as free:
                    unbounded = free.read_block(max_length)
                    whole = b"" if unbounded is None else bytes(unbounded)
                kept = [end for end in _block_frame_ends(position, whole) if end <= limit]
                block = reader.read_block(max_length, limit)
                if block is None:
                    assert not kept and reader.position == position
                    break
                # (a PAD block is its header alone: the slice past that is the header)
                assert bytes(block) == whole[: kept[-1] - position]
                assert reader.position == kept[-1] <= limit
            assert reader.position == max([0, *(end for end in ends if end <= limit)])


def test_truncate_mid_segment_and_at_a_segment_base(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    stream = _stream(300)  # a bit more than 4 terms: files 0-0, 0-131072, 0-262144
    _record(storage, stream)
    stop = stream.position
    assert 2 * SEGMENT < stop < 3 * SEGMENT
    assert [base for base, _ in segment_files(storage, 0)] == [0, SEGMENT, 2 * SEGMENT]
    starts = [p for p, _ in stream.frames]
    cut = next(p for p in starts if p > SEGMENT + 1000)
    layout = dict(recording_id=0, start_position=0, term_length=TERM, segment_length=SEGMENT)
    done = truncate_recording_files(storage, **layout, stop_position=stop, position=cut)
    assert done == ["deleted 0-262144.rec", f"erased 0-131072.rec from offset {cut - SEGMENT}"]
    assert [base for base, _ in segment_files(storage, 0)] == [0, SEGMENT]
    data = _file_bytes(storage, "0-131072.rec")
    assert len(data) == SEGMENT and data[cut - SEGMENT :].count(0) == SEGMENT - (cut - SEGMENT)
    assert find_stop_position(storage, **layout, initial_term_id=-5) == cut
    with RecordingReader(storage, **layout, stop_position=cut, initial_term_id=-5) as reader:
        assert [p for p, _, _ in reader.frames()] == [p for p in starts if p < cut]
    # truncating again to where it is changes nothing
    assert truncate_recording_files(storage, **layout, stop_position=cut, position=cut) == []
    # exactly at a segment base: that file goes too
    assert truncate_recording_files(storage, **layout, stop_position=cut, position=SEGMENT) == [
        "deleted 0-131072.rec"
    ]
    assert find_stop_position(storage, **layout, initial_term_id=-5) == SEGMENT
    # to the start: everything goes
    assert truncate_recording_files(storage, **layout, stop_position=SEGMENT, position=0) == [
        "deleted 0-0.rec"
    ]
    assert segment_files(storage, 0) == []


def test_truncate_a_recording_that_starts_mid_term(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    start = 3 * TERM + 4096
    stream = _stream(30, start_position=start)
    _record(storage, stream)
    assert [base for base, _ in segment_files(storage, 0)] == [3 * TERM]  # the start term's base
    layout = dict(recording_id=0, start_position=start, term_length=TERM, segment_length=SEGMENT)
    assert find_stop_position(storage, **layout, initial_term_id=-5) == stream.position
    done = truncate_recording_files(storage, **layout, stop_position=stream.position, position=start)
    assert done == ["erased 0-196608.rec from offset 4096"]
    assert find_stop_position(storage, **layout, initial_term_id=-5) == start


def test_truncate_argument_checks(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    layout = dict(recording_id=0, start_position=64, term_length=TERM, segment_length=SEGMENT)
    with pytest.raises(SegmentError, match="active"):
        truncate_recording_files(storage, **layout, stop_position=-1, position=64)
    with pytest.raises(SegmentError, match="outside the recording"):
        truncate_recording_files(storage, **layout, stop_position=1024, position=2048)
    with pytest.raises(SegmentError, match="outside the recording"):
        truncate_recording_files(storage, **layout, stop_position=1024, position=32)
    with pytest.raises(SegmentError, match="multiple of 32"):
        truncate_recording_files(storage, **layout, stop_position=1024, position=100)


def test_delete_recording_files(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    _record(storage, _stream(300), recording_id=1)
    _record(storage, _stream(10), recording_id=2)
    assert delete_recording_files(storage, 1) == ["1-262144.rec", "1-131072.rec", "1-0.rec"]
    assert storage.list() == ["2-0.rec"]
    assert delete_recording_files(storage, 1) == []


def test_repair_tail_erases_a_torn_block_and_later_files(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    stream = _stream(200)
    _record(storage, stream)
    stop = stream.position
    layout = dict(recording_id=0, start_position=0, term_length=TERM, segment_length=SEGMENT)
    # a crash left: a block whose length word never landed, then garbage, in the last file
    file_offset = stop - SEGMENT * (stop // SEGMENT)
    name = segment_file_name(0, SEGMENT * (stop // SEGMENT))
    with storage.open(name) as file:
        file.write(file_offset + 4, b"\x01" * 500)
    assert find_stop_position(storage, **layout, initial_term_id=-5) == stop
    assert repair_tail(storage, **layout, stop_position=stop) == [f"erased {name} from offset {file_offset}"]
    assert _file_bytes(storage, name)[file_offset:].count(0) == SEGMENT - file_offset
    assert repair_tail(storage, **layout, stop_position=stop) == []
    # the writer can go on from there
    more = _stream(250)
    with RecordingWriter(
        storage, **layout, position=stop, file_sync_level=SyncLevel.NONE, initial_term_id=-5
    ) as writer:
        for block in more.blocks(stop, more.position, 4096):
            writer.on_block(block.buffer, block.offset, block.length, block.session_id, block.term_id)
    assert find_stop_position(storage, **layout, initial_term_id=-5) == more.position


def test_frame_problem_names_the_field() -> None:
    good = (64, 0, 0xC0, 1, 4096, 7, 1001, -5, 0)
    assert frame_problem(good, 4096, TERM, -5) is None
    assert frame_problem(good, 4096, TERM, -5, stream_id=1001) is None
    cases = [
        ((16, *good[1:]), "frame_length is 16"),
        ((-2147483584, *good[1:]), "frame_length is -2147483584"),
        ((TERM, *good[1:]), "runs past the end of the term"),
        ((*good[:3], 2, *good[4:]), "type is 2"),
        ((*good[:4], 4128, *good[5:]), "term_offset is 4128, expected 4096"),
        ((*good[:7], -4, 0), "term_id is -4, expected -5"),
    ]
    for values, message in cases:
        assert message in (frame_problem(values, 4096, TERM, -5) or ""), values
    assert frame_problem(good, 4096, TERM, -5, stream_id=9) == "stream_id is 1001, expected 9"
    # term ids wrap at 32 bits
    assert frame_problem((64, 0, 0xC0, 1, 0, 7, 1001, -(2**31), 0), TERM, TERM, 2**31 - 1) is None


def test_corrupt_frame_is_named_by_file_offset_and_field(tmp_path: Path) -> None:
    storage = RealStorage(tmp_path)
    stream = _stream(20)
    _record(storage, stream)
    victim = stream.frames[5][0]
    with storage.open("0-0.rec") as file:
        file.write(victim + 8, (victim + 32).to_bytes(4, "little"))  # its term offset
    layout = dict(
        recording_id=0, start_position=0, term_length=TERM, segment_length=SEGMENT, initial_term_id=-5
    )
    with RecordingReader(storage, **layout, stop_position=stream.position) as reader:
        seen = []
        with pytest.raises(SegmentError) as caught:
            for position, _, _ in reader.frames():
                seen.append(position)
    assert seen == [p for p, _ in stream.frames[:5]]  # the good frames first
    message = str(caught.value)
    assert message.endswith(
        f"0-0.rec, offset {victim}, dataHeader.term_offset: bad frame at position {victim}: "
        f"term_offset is {victim + 32}, expected {victim}"
    )
    assert caught.value.offset == victim and caught.value.field == "dataHeader.term_offset"
    assert find_stop_position(storage, **layout) == victim


@pytest.fixture(scope="module")
def corruptible() -> tuple[SyntheticStream, bytes]:
    """A small recording's first segment file, written once."""
    with tempfile.TemporaryDirectory() as directory:
        storage = RealStorage(directory)
        stream = _stream(120)  # a bit more than one term, with a PAD at the term end
        _record(storage, stream)
        return stream, storage.read_file("0-0.rec")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.integers(0, 80 * KIB), st.binary(min_size=1, max_size=8)), min_size=1, max_size=6),
    st.sampled_from([None, "stop"]),
    st.integers(1, 8).map(lambda n: n * 32 * 37),
)
def test_corrupt_segment_bytes_give_segment_error_or_valid_frames(
    corruptible: tuple[SyntheticStream, bytes],
    damage: list[tuple[int, bytes]],
    stop_kind: str | None,
    max_length: int,
) -> None:
    stream, original = corruptible
    data = bytearray(original)
    for offset, garbage in damage:
        data[offset : offset + len(garbage)] = garbage
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "0-0.rec"), "wb") as out:
            out.write(data)
        storage = RealStorage(directory)
        layout = dict(
            recording_id=0, start_position=0, term_length=TERM, segment_length=SEGMENT, initial_term_id=-5
        )
        found = find_stop_position(storage, **layout)
        assert 0 <= found <= SEGMENT and found % 32 == 0
        stop = stream.position if stop_kind else None
        frames = 0
        try:
            with RecordingReader(storage, **layout, stop_position=stop) as reader:
                while (block := reader.read_block(max_length)) is not None:
                    frames += 1
                    assert len(block) >= HEADER_LENGTH
        except SegmentError:
            pass
        # the scan and an open-ended reader agree on every frame before the scan's end
        with RecordingReader(storage, **layout, stop_position=found) as reader:
            for position, header, payload in reader.frames():
                assert frame_problem(header, position, TERM, -5) is None
                assert header[3] == 0 or len(payload) == header[0] - HEADER_LENGTH
            assert reader.position == found


@pytest.mark.parametrize(
    ("start", "position", "expected"),
    [
        (0, 0, None),  # the snapshot is in the first segment: nothing below it to purge
        (0, 64 * 1024 - 32, None),
        (0, 64 * 1024, 64 * 1024),  # the first segment goes
        (0, 200 * 1024, 192 * 1024),  # whole segments only: the one holding the position stays
        (64 * 1024, 130 * 1024, 128 * 1024),  # a recording purged before
        (96 * 1024, 120 * 1024, None),  # its first segment, [64 KiB, 128 KiB), holds the position
        (96 * 1024, 130 * 1024, 128 * 1024),
    ],
)
def test_purge_position_is_the_base_of_the_segment_holding_the_position(
    start: int, position: int, expected: int | None
) -> None:
    assert purge_position(start, position, 64 * 1024, 64 * 1024) == expected
