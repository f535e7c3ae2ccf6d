"""Our archive and archive client side by side with Java Aeron 1.47.3's, on the reference run of
``../shared/reference/java/archive`` (its README, "Data set 2: archive/").

The Java run: an ``AeronArchive`` client records 500 messages on stream 1001 in archive A, stops,
extends the recording with 200 more, truncates it back, replays it, records and purges a second
recording (stream 1002), then asks archive B to replicate A's recording 0 and closes both sessions. Its
capture holds every datagram; ``support.archive_transcript`` decodes the control streams (10 and 20)
into a transcript.

Our run does the same over the simulated network and disk, with the same addresses (everything on
127.0.0.1, the same fixed ports), the same archive ids, the same data, and publications pinned to the
Java publications' session ids and initial term ids -- so positions, descriptors and segment bytes can
be compared as they are. Its datagrams are tapped and decoded by the same decoder. Then:

1. requests: our request encoder gives the bytes of every request in the Java capture from the same
   field values; our client, driven through the same steps, sends the same requests as Java's client
   (the same connect sequence, the same fields) up to the ids that are chosen at run time;
2. responses: our archive answers the same sequence with the same messages, codes, relevant ids and
   signals in the same order, and lists the same descriptors; archive B replicates with Java's signals;
3. files: our catalogs of A and B hold Java's descriptors, and our segment files Java's bytes.

What is chosen at run time in both implementations (control session ids, subscription and
registration ids, correlation ids, session ids of control and replay publications, timestamps, source
ports) is compared by structure: a Java id and ours must correspond one to one, wherever either
appears.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from support.archive_transcript import ControlMessage, capture_transcript, request_fields, tap_transcript
from support.archive_world import World
from support.needs import need_reference
from support.paths import JAVA_ARCHIVE_CAPTURE, JAVA_ARCHIVES, JavaArchive
from support.pcap import TapRecorder

from cluster.archive.archive import Archive
from cluster.archive.catalog import RecordingDescriptor
from cluster.archive.client import ArchiveClient, RecordingSignalEvent, encode_request
from cluster.archive.context import ArchiveContext
from cluster.archive.control_proxy import ControlResponseProxy
from cluster.storage import Storage
from cluster.transport.logbuffer import FragmentAssembler, Header
from generated import aeron_archive_codecs as codecs
from generated.aeron_archive_codecs import RecordingSignal, RecordingState, SourceLocation

HOST = "127.0.0.1"
A_CONTROL = "aeron:udp?endpoint=127.0.0.1:9251"
A_RESPONSE = "aeron:udp?endpoint=127.0.0.1:9252"
B_CONTROL = "aeron:udp?endpoint=127.0.0.1:9261"
B_RESPONSE = "aeron:udp?endpoint=127.0.0.1:9262"
RECORDED = "aeron:udp?endpoint=127.0.0.1:9270"
REPLAY = "aeron:udp?endpoint=127.0.0.1:9275"
REPLICATION = "aeron:udp?endpoint=127.0.0.1:0"
A_ID, B_ID = 101, 202
STREAM, SECOND_STREAM, REPLAY_STREAM, CONTROL_STREAM = 1001, 1002, 1010, 10
TERM_LENGTH = 16 * 1024 * 1024
MTU = 1408
LENGTHS = (32, 1000, 5000)
# Where the Java run's streams ended (README, steps 1 to 3).
STOP = 1_042_272
EXTENDED_STOP = 1_461_440
SECOND_STOP = 207_040


@dataclass(frozen=True)
class JavaPublication:
    """One of the Java client's recorded publications, from the capture's SETUP frames."""

    session_id: int
    initial_term_id: int
    term_offset: int

    def channel(self) -> str:
        return (
            f"{RECORDED}|term-length={TERM_LENGTH}|mtu={MTU}|init-term-id={self.initial_term_id}"
            f"|term-id={self.initial_term_id}|term-offset={self.term_offset}|session-id={self.session_id}"
        )


FIRST = JavaPublication(-1224040349, -1611572675, 0)
EXTENSION = JavaPublication(-1224040348, -1611572675, STOP)
SECOND = JavaPublication(-1224040347, -771862817, 0)

ARCHIVE_A: JavaArchive = JAVA_ARCHIVES[0]
ARCHIVE_B: JavaArchive = JAVA_ARCHIVES[1]


def message(i: int) -> bytes:
    return bytes((i + j) % 251 for j in range(LENGTHS[i % 3]))


# ------------------------------------------------------------------------------------------- our run


@dataclass
class OurRun:
    """What our run left: its control transcript, what the clients saw, and the archives' storages."""

    transcript: list[ControlMessage]
    client_sessions: dict[str, int]  # "A", "B": the session id of each client's request publication
    signals: dict[str, list[RecordingSignalEvent]]
    listed: dict[str, list[RecordingDescriptor]]
    replayed: list[bytes]
    replication_id: int
    storages: dict[str, Storage]
    recording_requests: list[str] = field(default_factory=list)


class _Signals:
    def __init__(self) -> None:
        self.events: list[RecordingSignalEvent] = []

    def __call__(self, event: RecordingSignalEvent) -> None:
        self.events.append(event)

    def count(self, signal: RecordingSignal) -> int:
        return sum(1 for event in self.events if event.signal == signal)


def _archive(world: World, transport: Any, name: str, control: str, archive_id: int) -> Archive:
    archive = Archive(
        transport,
        ArchiveContext(
            storage=world.storage(name),
            control_channel=control,
            archive_id=archive_id,
            replication_channel=REPLICATION,
            seed=archive_id,
        ),
    )
    world.archives.append(archive)
    world.agents.append(archive.do_work)
    return archive


def run_java_scenario() -> OurRun:
    """The Java client's steps (README, "Steps and results"), against our archives A and B."""
    world = World("sim", seed=47)
    tap = TapRecorder()
    world.network.tap = tap
    a_transport = world.transport(HOST)
    b_transport = world.transport(HOST)
    client_transport = world.transport(HOST)
    _archive(world, a_transport, "archiveA", A_CONTROL, A_ID)
    _archive(world, b_transport, "archiveB", B_CONTROL, B_ID)
    signals = {"A": _Signals(), "B": _Signals()}
    listed: dict[str, list[RecordingDescriptor]] = {}

    def connect(request: str, response: str, name: str) -> ArchiveClient:
        return ArchiveClient.connect(
            client_transport,
            control_request_channel=request,
            control_response_channel=response,
            invoker=world.step,
            on_recording_signal=signals[name],
        )

    def await_signal(client: ArchiveClient, name: str, signal: RecordingSignal, count: int) -> None:
        def seen() -> bool:
            client.poll_for_recording_signals()
            return signals[name].count(signal) >= count

        assert world.run_until(seen), f"no {signal.name} signal {count}: {signals[name].events}"

    def publish(publication: Any, first: int, count: int) -> int:
        position = 0
        for i in range(first, first + count):
            payload = message(i)
            while (position := publication.offer(payload)) <= 0:
                world.step()
        return position

    def await_position(client: ArchiveClient, recording_id: int, position: int) -> None:
        assert world.run_until(lambda: client.get_recording_position(recording_id) == position)

    try:
        client = connect(A_CONTROL, A_RESPONSE, "A")
        # step 1: record 500 messages on stream 1001
        subscription_id = client.start_recording(RECORDED, STREAM, SourceLocation.REMOTE)
        publication = client_transport.add_exclusive_publication(FIRST.channel(), STREAM)
        await_signal(client, "A", RecordingSignal.START, 1)
        assert publish(publication, 0, 500) == STOP
        await_position(client, 0, STOP)
        client.stop_recording_subscription(subscription_id)
        await_signal(client, "A", RecordingSignal.STOP, 1)
        publication.close()
        # step 2: list, extend by 200 messages, truncate back, list, replay
        descriptor = client.list_recording(0)
        assert descriptor is not None
        listed["ListRecordingRequest"] = [descriptor]
        subscription_id = client.extend_recording(0, RECORDED, STREAM, SourceLocation.REMOTE)
        extension = client_transport.add_exclusive_publication(EXTENSION.channel(), STREAM)
        await_signal(client, "A", RecordingSignal.EXTEND, 1)
        assert publish(extension, 500, 200) == EXTENDED_STOP
        await_position(client, 0, EXTENDED_STOP)
        client.stop_recording_subscription(subscription_id)
        await_signal(client, "A", RecordingSignal.STOP, 2)
        extension.close()
        client.truncate_recording(0, STOP)
        await_signal(client, "A", RecordingSignal.DELETE, 1)
        listed["ListRecordingsRequest-1"] = client.list_recordings(0, 100)
        replayed = _replay(world, client_transport, client)
        # step 3: record 100 messages on stream 1002, then purge that recording
        subscription_id = client.start_recording(RECORDED, SECOND_STREAM, SourceLocation.REMOTE)
        second = client_transport.add_exclusive_publication(SECOND.channel(), SECOND_STREAM)
        await_signal(client, "A", RecordingSignal.START, 2)
        assert publish(second, 0, 100) == SECOND_STOP
        await_position(client, 1, SECOND_STOP)
        client.stop_recording_subscription(subscription_id)
        await_signal(client, "A", RecordingSignal.STOP, 3)
        second.close()
        client.purge_recording(1)
        await_signal(client, "A", RecordingSignal.DELETE, 2)
        listed["ListRecordingsRequest-2"] = client.list_recordings(0, 100)
        # step 4: replicate A's recording 0 to B
        client_b = connect(B_CONTROL, B_RESPONSE, "B")
        replication_id = client_b.replicate(0, -1, CONTROL_STREAM, A_CONTROL)
        await_signal(client_b, "B", RecordingSignal.STOP, 1)
        listed["B"] = client_b.list_recordings(0, 100)
        # step 5: close B's session, then A's; let the archives see it, then stop them
        client_sessions = {
            "A": client.proxy.publication.session_id,
            "B": client_b.proxy.publication.session_id,
        }
        client_b.close()
        client.close()
        archives = world.archives
        assert world.run_until(lambda: not any(archive.control_sessions for archive in archives))
    finally:
        world.close()
    return OurRun(
        transcript=tap_transcript(tap.datagrams),
        client_sessions=client_sessions,
        signals={name: s.events for name, s in signals.items()},
        listed=listed,
        replayed=replayed,
        replication_id=replication_id,
        storages={"A": world.storage("archiveA"), "B": world.storage("archiveB")},
    )


def _replay(world: World, transport: Any, client: ArchiveClient) -> list[bytes]:
    """Replay recording 0 over [0, STOP) to the replay channel and collect the messages."""
    subscription = transport.add_subscription(REPLAY, REPLAY_STREAM)
    replay_session_id = client.start_replay(0, 0, STOP, REPLAY, REPLAY_STREAM)
    image_session_id = ((replay_session_id & 0xFFFF_FFFF) ^ 0x8000_0000) - 0x8000_0000
    received: list[bytes] = []

    def on_message(payload: memoryview, header: Header) -> None:
        received.append(bytes(payload))

    assembler = FragmentAssembler(on_message)

    def done() -> bool:
        image = subscription.image_by_session_id(image_session_id)
        if image is not None:
            image.poll(assembler.on_fragment, 64)
        return len(received) >= 500

    assert world.run_until(done, timeout_s=30), f"replay gave {len(received)} of 500 messages"
    subscription.close()
    return received


# ----------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def java() -> list[ControlMessage]:
    """The Java run's control transcript (streams 10 and 20)."""
    return capture_transcript(need_reference(JAVA_ARCHIVE_CAPTURE))


@pytest.fixture(scope="module")
def ours() -> OurRun:
    """Our run of the same steps (it needs nothing from ../shared)."""
    return run_java_scenario()


# ------------------------------------------------------------------------ 1. requests, byte for byte

# Every request the Java client and archive B (replicating) sent in the capture.
JAVA_REQUESTS = [
    "AuthConnectRequest",
    "ArchiveIdRequest",
    "KeepAliveRequest",
    "StartRecordingRequest",
    "RecordingPositionRequest",
    "StopRecordingSubscriptionRequest",
    "ListRecordingRequest",
    "ExtendRecordingRequest",
    "TruncateRecordingRequest",
    "ListRecordingsRequest",
    "ReplayRequest",
    "PurgeRecordingRequest",
    "ReplicateRequest2",
    "CloseSessionRequest",
]


@pytest.mark.parametrize("name", JAVA_REQUESTS)
def test_our_request_encoder_writes_the_bytes_java_sent(java: list[ControlMessage], name: str) -> None:
    sent = [m for m in java if m.name == name]
    assert sent, f"the capture has no {name}"
    assert all(m.stream_id == CONTROL_STREAM for m in sent)
    for m in sent:
        buffer = bytearray(2048)
        length = encode_request(buffer, getattr(codecs, f"{name}Encoder"), **request_fields(m))
        assert bytes(buffer[:length]) == m.payload, m


def test_every_request_in_the_capture_is_checked(java: list[ControlMessage]) -> None:
    assert {m.name for m in java if m.stream_id == CONTROL_STREAM} == set(JAVA_REQUESTS)


@pytest.mark.parametrize("name", ["ControlResponse", "RecordingSignalEvent", "RecordingDescriptor"])
def test_our_response_encoder_writes_the_bytes_java_sent(java: list[ControlMessage], name: str) -> None:
    """What the archives sent, from the same values: a listing entry comes with the padding of its
    catalog entry (Java's catalog alignment is 64, as ours)."""
    proxy = ControlResponseProxy()
    sent = [m for m in java if m.name == name]
    assert sent and all(m.stream_id == 20 for m in sent)
    for m in sent:
        f = m.fields
        if name == "ControlResponse":
            code = codecs.ControlResponseCode[f["code"]]
            ours = proxy.response_bytes(
                f["controlSessionId"], f["correlationId"], f["relevantId"], code, f["errorMessage"]
            )
        elif name == "RecordingSignalEvent":
            ours = proxy.signal_bytes(
                f["controlSessionId"],
                f["correlationId"],
                f["recordingId"],
                f["subscriptionId"],
                f["position"],
                RecordingSignal[f["signal"]],
            )
        else:
            ours = proxy.descriptor_bytes(f["controlSessionId"], f["correlationId"], _descriptor(f))
        assert ours == m.payload, m


def _descriptor(fields: dict[str, Any], state: RecordingState = RecordingState.VALID) -> RecordingDescriptor:
    """A catalog descriptor from a RecordingDescriptor message's fields."""
    return RecordingDescriptor(
        control_session_id=fields["controlSessionId"],
        correlation_id=fields["correlationId"],
        state=state,
        checksum=0,
        **{name: fields[aeron] for name, aeron in _DESCRIPTOR_FIELDS.items()},
    )


# RecordingDescriptor fields other than the session's ids: our name -> Aeron's.
_DESCRIPTOR_FIELDS = {
    "recording_id": "recordingId",
    "start_timestamp": "startTimestamp",
    "stop_timestamp": "stopTimestamp",
    "start_position": "startPosition",
    "stop_position": "stopPosition",
    "initial_term_id": "initialTermId",
    "segment_file_length": "segmentFileLength",
    "term_buffer_length": "termBufferLength",
    "mtu_length": "mtuLength",
    "session_id": "sessionId",
    "stream_id": "streamId",
    "stripped_channel": "strippedChannel",
    "original_channel": "originalChannel",
    "source_identity": "sourceIdentity",
}
