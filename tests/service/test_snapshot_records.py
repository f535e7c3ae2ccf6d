"""Snapshot records (``cluster.snapshots``): the snapshots Java Aeron 1.47 wrote load, and re-encode to the
same bytes; random snapshots survive the round trip; a damaged snapshot is refused with ``SnapshotError``
and nothing else; ``RecordingReader.messages`` puts a recording's fragmented messages back together."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.paths import JAVA_ARCHIVES, JavaArchive
from support.recordings import SyntheticStream
from support.tarballs import Extractor

from cluster.archive.catalog import Catalog
from cluster.archive.errors import SegmentError
from cluster.archive.recording_reader import RecordingReader
from cluster.archive.recording_writer import RecordingWriter
from cluster.messages import pack
from cluster.session_message import session_message
from cluster.snapshots import (
    CONSENSUS_MODULE_TYPE_ID,
    SERVICE_TYPE_ID,
    ConsensusModuleSnapshot,
    ConsensusModuleSnapshotLoader,
    PendingMessages,
    ServiceSnapshot,
    ServiceSnapshotLoader,
    SnapshotClientSession,
    SnapshotClusterSession,
    SnapshotError,
    SnapshotMarker,
    SnapshotTimer,
    load_consensus_module_snapshot,
    load_service_snapshot,
)
from cluster.storage import RealStorage, SyncLevel
from generated import aeron_cluster_codecs as codecs

NODES = {case.name: case for case in JAVA_ARCHIVES if case.name.startswith("node")}
MILLIS = int(codecs.ClusterTimeUnit.MILLIS)


@pytest.fixture(scope="module")
def java_node(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    extractor = Extractor(tmp_path_factory)

    def archive_dir(name: str) -> Path:
        case: JavaArchive = NODES[name]
        return extractor(case.tarball, case.name) / case.directory

    return archive_dir


def recording_messages(archive_dir: Path, recording_id: int) -> list[bytes]:
    storage = RealStorage(archive_dir)
    with Catalog(storage, read_only=True) as catalog:
        descriptor = catalog.recording(recording_id)
    assert descriptor is not None
    with RecordingReader.of(storage, descriptor, stop_position=descriptor.stop_position) as reader:
        return [message for _, message in reader.messages()]


def java_service_state(message_count: int, byte_count: int) -> list[bytes]:
    """The Java run's service snapshot (its README): a header, then seq % 128 -> last seq, by key."""
    last = {seq % 128: seq for seq in range(message_count)}
    return [struct.pack("<iiqq", 1, len(last), message_count, byte_count)] + [
        struct.pack("<iiqq", 2, 0, key, last[key]) for key in sorted(last)
    ]


# the Java run (docs/snapshots.md, "Checked against Java"): the snapshot at 384416 on every member, and the
# shutdown's at 895584 on members 1 and 2, which holds client B's open session 2
JAVA_SNAPSHOTS = [
    ("node0", 1, 2, 384416, 0, 2, (), 300, 357600),
    ("node1", 1, 2, 384416, 0, 2, (), 300, 357600),
    ("node1", 3, 4, 895584, 1, 3, (2,), 700, 833272),
    ("node2", 3, 4, 895584, 1, 3, (2,), 700, 833272),
]


@pytest.mark.parametrize(
    (
        "node",
        "service_recording",
        "cm_recording",
        "position",
        "term",
        "next_session",
        "open",
        "count",
        "size",
    ),
    JAVA_SNAPSHOTS,
)
def test_java_snapshots_load_and_encode_to_the_same_bytes(
    java_node: Callable[[str], Path],
    node: str,
    service_recording: int,
    cm_recording: int,
    position: int,
    term: int,
    next_session: int,
    open: tuple[int, ...],
    count: int,
    size: int,
) -> None:
    archive = java_node(node)
    marker = {"log_position": position, "leadership_term_id": term, "index": 0, "time_unit": MILLIS}

    java_cm = recording_messages(archive, cm_recording)
    cm = load_consensus_module_snapshot(java_cm)
    assert cm.marker == SnapshotMarker(CONSENSUS_MODULE_TYPE_ID, app_version=1, **marker)
    assert cm.next_session_id == next_session
    assert [s.cluster_session_id for s in cm.sessions] == list(open)
    for session in cm.sessions:
        assert (session.correlation_id, session.opened_log_position, session.close_reason) == (
            10,
            384544,
            None,
        )
        assert (session.response_stream_id, session.response_channel) == (
            102,
            "aeron:udp?endpoint=127.0.0.1:9281",
        )
    assert cm.timers == ()
    assert [(p.service_id, p.pending_message_capacity, p.messages) for p in cm.pending] == [(0, 0, ())]
    assert list(cm.messages()) == java_cm

    java_service = recording_messages(archive, service_recording)
    service, own = load_service_snapshot(java_service)
    assert service.marker == SnapshotMarker(SERVICE_TYPE_ID, app_version=1, **marker)
    assert [(s.cluster_session_id, s.response_stream_id, s.encoded_principal) for s in service.sessions] == [
        (session, 102, b"") for session in open
    ]
    assert own == java_service_state(count, size)
    assert [*service.messages(), *own] == java_service


def test_a_fragmented_recording_reads_back_as_whole_messages(java_node: Callable[[str], Path]) -> None:
    # the log: client messages of 64, 512 and 3000 bytes after a 32-byte session header; the 3000-byte
    # ones took three frames (the Java run's README)
    log = recording_messages(java_node("node2"), 0)
    sessions = [codecs.decode(m) for m in log if codecs.MessageHeaderDecoder.unpack(m)[1] == 1]
    payload_lengths = [len(m) - 32 for m in log if codecs.MessageHeaderDecoder.unpack(m)[1] == 1]
    assert len(sessions) == 700
    assert payload_lengths == [(64, 512, 3000)[seq % 3] for seq in range(700)]


# ------------------------------------------------------------------------------------- round trips

ints64 = st.integers(-(2**63) + 1, 2**63 - 1)  # the null value is for absent optional fields only
ints32 = st.integers(-(2**31) + 1, 2**31 - 1)
channels = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


def markers(type_id: int) -> st.SearchStrategy[SnapshotMarker]:
    return st.builds(
        SnapshotMarker,
        st.just(type_id),
        ints64,
        ints64,
        st.just(0),
        st.sampled_from(
            [None, *(int(u) for u in codecs.ClusterTimeUnit if u != codecs.ClusterTimeUnit.NULL_VALUE)]
        ),
        st.one_of(st.none(), st.integers(1, 2**31 - 1)),
    )


service_snapshots = st.builds(
    ServiceSnapshot,
    markers(SERVICE_TYPE_ID),
    st.lists(
        st.builds(SnapshotClientSession, ints64, ints32, channels, st.binary(max_size=40)), max_size=5
    ).map(tuple),
)
pending_messages = st.builds(
    PendingMessages,
    ints32,
    ints64,
    ints64,
    st.integers(0, 2**31 - 1),
    st.lists(
        st.builds(session_message, ints64, st.integers(-(2**63) + 1, -1), ints64, st.binary(max_size=50)),
        max_size=3,
    ).map(tuple),
)
cm_snapshots = st.builds(
    ConsensusModuleSnapshot,
    markers(CONSENSUS_MODULE_TYPE_ID),
    ints64,
    st.one_of(st.none(), ints64),
    st.one_of(st.none(), ints64),
    st.one_of(st.none(), st.integers(1, 2**31 - 1)),
    sessions=st.lists(
        st.builds(
            SnapshotClusterSession,
            ints64,
            ints64,
            ints64,
            ints64,
            ints32,
            channels,
            st.sampled_from(
                [None, *(int(r) for r in codecs.CloseReason if r != codecs.CloseReason.NULL_VALUE)]
            ),
        ),
        max_size=4,
    ).map(tuple),
    timers=st.lists(st.builds(SnapshotTimer, ints64, ints64), max_size=4).map(tuple),
    pending=st.lists(pending_messages, max_size=3, unique_by=lambda p: p.service_id).map(tuple),
)


@given(service_snapshots, st.lists(st.binary(max_size=30), max_size=4))
def test_a_service_snapshot_survives_the_round_trip(snapshot: ServiceSnapshot, own: list[bytes]) -> None:
    assert load_service_snapshot([*snapshot.messages(), *own]) == (snapshot, own)


@given(cm_snapshots)
def test_a_consensus_module_snapshot_survives_the_round_trip(snapshot: ConsensusModuleSnapshot) -> None:
    assert load_consensus_module_snapshot(snapshot.messages()) == snapshot


# ------------------------------------------------------------------------------------- refusals

MARKER = SnapshotMarker(CONSENSUS_MODULE_TYPE_ID, 4096, 3, 0, MILLIS, 1)
CM = ConsensusModuleSnapshot(MARKER, 7, sessions=(SnapshotClusterSession(5, 1, 64, 0, 102, "aeron:ipc"),))


def cm_messages() -> list[bytes]:
    return list(CM.messages())


@pytest.mark.parametrize(
    ("messages", "why"),
    [
        (lambda m: m[1:], "the first message must be a BEGIN marker, not ConsensusModule"),
        (lambda m: [b"\x00" * 4, *m], "not a whole message"),
        (lambda m: m[:-1], "ends before its END marker"),
        (
            lambda m: [*m[:-1], SnapshotMarker(1, 4096, 4, 0, MILLIS, 1).encode(codecs.SnapshotMark.END)],
            "does not match",
        ),
        (lambda m: [*m[:1], *m], "a second BEGIN marker"),
        (lambda m: [m[0], m[1], m[1], *m[2:]], "a second ConsensusModule record"),
        (lambda m: [m[0], *m[2:]], "no ConsensusModule record"),
        (
            lambda m: [
                m[0],
                pack(
                    codecs.ServiceAckEncoder,
                    log_position=1,
                    timestamp=2,
                    ack_id=3,
                    relevant_id=4,
                    service_id=0,
                ),
                *m[1:],
            ],
            "holds no ServiceAck",
        ),
        (
            lambda m: [next(ServiceSnapshot(SnapshotMarker(SERVICE_TYPE_ID, 1, 1)).messages()), *m[1:]],
            "BEGIN marks a service snapshot",
        ),
        (lambda m: [*m[:2], m[2][:20], *m[3:]], "a malformed record"),
    ],
)
def test_a_damaged_consensus_module_snapshot_is_refused(
    messages: Callable[[list[bytes]], list[bytes]], why: str
) -> None:
    with pytest.raises(SnapshotError, match=why):
        load_consensus_module_snapshot(messages(cm_messages()))


def test_a_service_snapshot_holds_nothing_but_sessions_before_end() -> None:
    begin, end = (
        SnapshotMarker(SERVICE_TYPE_ID, 64, 0).encode(mark)
        for mark in (codecs.SnapshotMark.BEGIN, codecs.SnapshotMark.END)
    )
    timer = SnapshotTimer(1, 2).encode()
    with pytest.raises(SnapshotError, match="service snapshot, message 2: a service snapshot holds no Timer"):
        load_service_snapshot([begin, timer, end])
    loader = ServiceSnapshotLoader()
    assert not loader.on_message(begin) and loader.on_message(end)
    with pytest.raises(SnapshotError, match="after END"):
        loader.on_message(b"own")


def test_section_markers_cluster_members_and_extensions_are_tolerated() -> None:
    section = MARKER.encode(codecs.SnapshotMark.SECTION)
    members = pack(codecs.ClusterMembersEncoder, {"cluster_members": "0,a:1"}, member_id=0, high_member_id=2)
    extension = struct.pack("<HHHH", 4, 1, 999, 0) + b"\x01\x02\x03\x04"
    messages = cm_messages()
    loaded = load_consensus_module_snapshot(
        [messages[0], section, members, *messages[1:-1], extension, messages[-1]]
    )
    assert loaded == ConsensusModuleSnapshot(MARKER, 7, sessions=CM.sessions, extension=(extension,))


def test_pending_messages_before_any_tracker_are_service_zeros() -> None:
    pending = session_message(3, -5, 9, b"late")
    messages = cm_messages()
    loaded = load_consensus_module_snapshot([*messages[:-1], pending, messages[-1]])
    assert loaded.pending == (PendingMessages(0, 0, 0, 0, (pending,)),)


def shuffled_bytes(data: st.DataObject, messages: list[bytes]) -> Iterator[bytes]:
    for message in messages:
        if data.draw(st.booleans()):
            message = bytearray(message)
            for _ in range(data.draw(st.integers(1, 4))):
                if message:
                    message[data.draw(st.integers(0, len(message) - 1))] = data.draw(st.integers(0, 255))
            yield bytes(message[: data.draw(st.integers(0, len(message)))])
        else:
            yield message


@settings(max_examples=300)
@given(st.data())
def test_loaders_give_a_snapshot_or_a_snapshot_error_for_any_bytes(data: st.DataObject) -> None:
    for loader_type, base in (
        (ConsensusModuleSnapshotLoader, cm_messages()),
        (ServiceSnapshotLoader, list(ServiceSnapshot(SnapshotMarker(SERVICE_TYPE_ID, 1, 1)).messages())),
    ):
        messages = list(shuffled_bytes(data, base)) + data.draw(st.lists(st.binary(max_size=64), max_size=2))
        loader = loader_type()
        try:
            for message in messages:
                if loader.on_message(message):
                    break
            loader.snapshot  # noqa: B018  # complete, or the error says why not
        except SnapshotError:
            pass


TERM = 64 * 1024


def synthetic_recording(tmp_path: Path, messages: list[bytes]) -> tuple[RealStorage, SyntheticStream]:
    stream = SyntheticStream(TERM, initial_term_id=77)
    for message in messages:
        stream.append(message)
    storage = RealStorage(tmp_path)
    writer = RecordingWriter(
        storage,
        recording_id=3,
        start_position=0,
        position=0,
        term_length=TERM,
        segment_length=2 * TERM,
        file_sync_level=SyncLevel.NONE,
    )
    for block in stream.blocks(0, stream.position, 4096):
        writer.on_block(block.buffer, block.offset, block.length, block.session_id, block.term_id)
    writer.close()
    return storage, stream


def reader(storage: RealStorage, stream: SyntheticStream, from_position: int = 0) -> RecordingReader:
    return RecordingReader(
        storage,
        recording_id=3,
        start_position=0,
        stop_position=stream.position,
        term_length=TERM,
        segment_length=2 * TERM,
        initial_term_id=77,
        from_position=from_position,
    )


def test_messages_are_put_back_together_across_fragments_and_term_ends(tmp_path: Path) -> None:
    messages = [bytes((i + j) % 251 for j in range((i * 977) % 9000)) for i in range(40)]
    storage, stream = synthetic_recording(tmp_path, messages)
    assert any(position % TERM == 0 for position, _ in stream.frames[1:])  # it crossed term ends
    with reader(storage, stream) as recording:
        got = list(recording.messages(max_length=2048))
    assert [message for _, message in got] == messages
    assert got[-1][0] == stream.position


def test_a_reader_on_a_continuation_fragment_is_refused(tmp_path: Path) -> None:
    storage, stream = synthetic_recording(tmp_path, [b"a" * 100, b"b" * 3000])
    second_fragment = stream.frames[2][0]
    with (
        reader(storage, stream, second_fragment) as recording,
        pytest.raises(SegmentError, match="a continuation with no message begun"),
    ):
        list(recording.messages())
