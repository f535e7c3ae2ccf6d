"""Our archive and archive client side by side with Java Aeron 1.47.3's, on the Java reference run whose
files ``support.paths`` names (``JAVA_ARCHIVE_CAPTURE``, ``JAVA_ARCHIVES``).

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

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
from support.archive_transcript import (
    ControlMessage,
    Transcript,
    capture_transcript,
    request_fields,
    tap_transcript,
)
from support.archive_world import World
from support.needs import need_reference
from support.paths import JAVA_ARCHIVE_CAPTURE, JAVA_ARCHIVES, JavaArchive
from support.pcap import TapRecorder
from support.recordings import DESCRIPTOR_FIELDS

from cluster.archive.archive import Archive
from cluster.archive.catalog import Catalog, RecordingDescriptor
from cluster.archive.client import ArchiveClient, RecordingSignalEvent, encode_request
from cluster.archive.context import ArchiveContext
from cluster.archive.control_proxy import ControlResponseProxy
from cluster.storage import RealStorage, Storage
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

    transcript: Transcript
    signals: dict[str, list[RecordingSignalEvent]]  # what each client's signal handler got, by archive
    replayed: list[bytes]
    replication_id: int
    storages: dict[str, Storage]


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
        assert descriptor is not None and descriptor.stop_position == STOP
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
        assert [d.recording_id for d in client.list_recordings(0, 100)] == [0]
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
        assert [d.recording_id for d in client.list_recordings(0, 100)] == [0]
        # step 4: replicate A's recording 0 to B
        client_b = connect(B_CONTROL, B_RESPONSE, "B")
        replication_id = client_b.replicate(0, -1, CONTROL_STREAM, A_CONTROL)
        await_signal(client_b, "B", RecordingSignal.STOP, 1)
        assert [d.stop_position for d in client_b.list_recordings(0, 100)] == [STOP]
        # step 5: close B's session, then A's; let the archives see it, then stop them
        client_b.close()
        client.close()
        archives = world.archives
        assert world.run_until(lambda: not any(archive.control_sessions for archive in archives))
    finally:
        world.close()
    return OurRun(
        transcript=tap_transcript(tap.datagrams),
        signals={name: s.events for name, s in signals.items()},
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
def java() -> Transcript:
    """The Java run's control transcript (streams 10 and 20)."""
    return capture_transcript(need_reference(JAVA_ARCHIVE_CAPTURE))


@pytest.fixture(scope="module")
def ours() -> OurRun:
    """Our run of the same steps (it needs no reference file)."""
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
def test_our_request_encoder_writes_the_bytes_java_sent(java: Transcript, name: str) -> None:
    sent = [m for m in java if m.name == name]
    assert sent, f"the capture has no {name}"
    assert all(m.stream_id == CONTROL_STREAM for m in sent)
    for m in sent:
        buffer = bytearray(2048)
        length = encode_request(buffer, getattr(codecs, f"{name}Encoder"), **request_fields(m))
        assert bytes(buffer[:length]) == m.payload, m


def test_every_request_in_the_capture_is_checked(java: Transcript) -> None:
    assert {m.name for m in java if m.stream_id == CONTROL_STREAM} == set(JAVA_REQUESTS)


@pytest.mark.parametrize("name", ["ControlResponse", "RecordingSignalEvent", "RecordingDescriptor"])
def test_our_response_encoder_writes_the_bytes_java_sent(java: Transcript, name: str) -> None:
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
    ours: aerons
    for ours, aerons in DESCRIPTOR_FIELDS.items()
    if ours not in ("control_session_id", "correlation_id")
}


# --------------------------------------------------------------------- conversations, in normal form

FIXED_PORTS = frozenset({9251, 9252, 9261, 9262, 9270, 9275})
_PORT = re.compile(r"127\.0\.0\.1:(\d+)")


@dataclass
class Conversation:
    """One control session: the requests its client sent and what the archive sent back."""

    requests: list[ControlMessage]
    responses: list[ControlMessage]


def conversations(transcript: list[ControlMessage]) -> dict[str, Conversation]:
    """The control sessions of a run by who talked to whom: ``client-A``, ``client-B`` (the client's
    sessions with A and B) and ``B-A`` (archive B's session with A while replicating). A session's
    requests and responses travel on images with the same session id (the response channel's
    ``session-id`` is the request publication's)."""
    by_session: dict[int, list[ControlMessage]] = {}
    for m in transcript:
        by_session.setdefault(m.session_id, []).append(m)
    out: dict[str, Conversation] = {}
    for messages in by_session.values():
        requests = [m for m in messages if m.stream_id == CONTROL_STREAM]
        connect = requests[0]
        assert connect.name == "AuthConnectRequest", connect
        archive = {9251: "A", 9261: "B"}[connect.destination_port]
        match = _PORT.search(connect.get("responseChannel"))
        assert match is not None, connect
        client = "client" if int(match.group(1)) in FIXED_PORTS else "B"
        name = f"{client}-{archive}"
        assert name not in out, name
        out[name] = Conversation(requests, [m for m in messages if m.stream_id != CONTROL_STREAM])
    return out


class Names:
    """Run-time ids replaced by names: the n-th distinct value of a kind is ``<kind>#n`` (-1, Aeron's
    null value, stays). Two runs whose messages name the same ids in the same places get the same names
    -- a one-to-one correspondence between their ids."""

    def __init__(self) -> None:
        self._seen: dict[str, dict[int, int]] = {}

    def __call__(self, kind: str, value: int) -> str | int:
        if value == -1:
            return -1
        table = self._seen.setdefault(kind, {})
        return f"{kind}#{table.setdefault(value, len(table))}"


def _channel(text: str) -> str:
    """A channel with ephemeral ports named, its parameters in sorted order."""
    text = _PORT.sub(lambda m: m.group(0) if int(m.group(1)) in FIXED_PORTS else "127.0.0.1:<port>", text)
    media, _, params = text.partition("?")
    return f"{media}?{'|'.join(sorted(params.split('|')))}" if params else media


# What a response's relevantId is, by the request it answers.
_RELEVANT_KIND = {
    "AuthConnectRequest": "session",
    "StartRecordingRequest": "sub",
    "ExtendRecordingRequest": "sub",
    "ReplicateRequest2": "corr",  # the replication id: its signals' correlation id
}


def is_position_poll(m: ControlMessage) -> bool:
    return m.name == "RecordingPositionRequest"


def is_ping(m: ControlMessage) -> bool:
    """The archive's liveness probe: an OK with correlationId -1 (Java sends one every second)."""
    return m.name == "ControlResponse" and m.get("correlationId") == -1


def normal_form(conversation: Conversation) -> tuple[list[Any], list[Any]]:
    """The conversation with run-time ids named (``Names``), times left out, ephemeral ports named,
    liveness probes left out, and each run of position polls cut to its last request and answer (the
    client polls until the archive has recorded the whole stream: how often is a matter of timing)."""
    names = Names()
    requests = conversation.requests
    polls = [
        m
        for m, after in zip(requests, [*requests[1:], None], strict=True)
        if is_position_poll(m) and after is not None and is_position_poll(after)
    ]
    dropped = {m.get("correlationId") for m in polls}
    asked = {m.get("correlationId"): m.name for m in requests}

    def value(m: ControlMessage, key: str, v: Any) -> Any:
        if key == "controlSessionId":
            return names("session", v)
        if key == "correlationId":
            return names("corr", v)
        if key == "subscriptionId":
            return names("sub", v)
        if key in ("startTimestamp", "stopTimestamp"):
            return "<time>"
        if key == "relevantId" and m.name == "ControlResponse":
            answered = asked.get(m.get("correlationId"))
            if answered == "ReplayRequest":  # replay id << 32 | the replay image's session id
                return f"replay {v >> 32}, image {names('image', v & 0xFFFF_FFFF)}"
            if answered is None:  # not a request's answer: a replication's recording subscription
                return names("sub", v)
            kind = _RELEVANT_KIND.get(answered)
            return v if kind is None else names(kind, v)
        if key == "responseChannel":
            return _channel(v.replace(f"session-id={m.session_id}", "session-id=<own>"))
        if key.endswith("Channel") or key == "sourceIdentity":
            return _channel(v)
        return v

    def form(m: ControlMessage) -> Any:
        return (m.name, {key: value(m, key, v) for key, v in m.fields.items()})

    return (
        [form(m) for m in requests if m not in polls],
        [form(m) for m in conversation.responses if not is_ping(m) and m.get("correlationId") not in dropped],
    )


# ------------------------------------------------------------------- 2. the conversations, side by side


def _sessions(transcript: list[ControlMessage]) -> dict[str, Conversation]:
    found = conversations(transcript)
    assert sorted(found) == ["B-A", "client-A", "client-B"]
    return found


def test_our_client_connects_as_java_s_does(java: Transcript, ours: OurRun) -> None:
    """AuthConnectRequest (version 1.11.0; the response channel names the request publication's
    session id, then Java's control-stream defaults), ArchiveIdRequest, then a KeepAliveRequest with
    correlationId -1; the archive answers on an image of that same session id."""
    theirs, mine = _sessions(java), _sessions(ours.transcript)
    for name, response in (("client-A", A_RESPONSE), ("client-B", B_RESPONSE)):
        for conversation in (theirs[name], mine[name]):
            connect, archive_id, keep_alive = conversation.requests[:3]
            session = connect.session_id
            assert connect.name == "AuthConnectRequest"
            assert connect.fields == {
                "correlationId": connect.get("correlationId"),
                "responseStreamId": 20,
                "version": 68352,
                "responseChannel": f"{response}|session-id={session}|term-length=65536|sparse=true|mtu=1408",
                "encodedCredentials": {"hex": ""},
            }
            accepted = conversation.responses[0]
            assert accepted.session_id == session
            assert accepted.fields["correlationId"] == connect.get("correlationId")
            assert accepted.fields["relevantId"] == accepted.fields["controlSessionId"]
            control_session_id = accepted.get("controlSessionId")
            assert archive_id.name == "ArchiveIdRequest"
            assert archive_id.get("controlSessionId") == control_session_id
            assert archive_id.get("correlationId") > connect.get("correlationId")
            assert (keep_alive.name, keep_alive.fields) == (
                "KeepAliveRequest",
                {"controlSessionId": control_session_id, "correlationId": -1},
            )


@pytest.mark.parametrize("name", ["client-A", "client-B"])
def test_our_control_streams_are_made_as_java_s(java: Transcript, ours: OurRun, name: str) -> None:
    """The client's request publication and the archive's response publication: 64 KiB terms and
    MTU 1408, as the client's channels ask."""
    for transcript in (java, ours.transcript):
        session = _sessions(transcript)[name].requests[0].session_id
        for stream in (CONTROL_STREAM, 20):
            setup = transcript.setups[(session, stream)]
            assert (setup.term_length, setup.mtu, setup.term_offset) == (65536, MTU, 0)


@pytest.mark.parametrize("name", ["client-A", "client-B"])
def test_our_client_sends_java_s_requests(java: Transcript, ours: OurRun, name: str) -> None:
    """The same requests in the same order with the same fields, run-time ids aside (``normal_form``)."""
    assert normal_form(_sessions(ours.transcript)[name])[0] == normal_form(_sessions(java)[name])[0]


@pytest.mark.parametrize("name", ["client-A", "client-B"])
def test_our_archive_answers_as_java_s_does(java: Transcript, ours: OurRun, name: str) -> None:
    """The same responses, listing entries and signals in the same order: codes, relevant ids
    (positions 1042272, 1461440 and 207040, recording ids 0 and 1, RECORDING_UNKNOWN 1 after a listing,
    truncate OK 0 then DELETE with subscriptionId -1 and position -1, purge OK 1 then DELETE, archive
    ids 101 and 202), descriptors, and the replication's REPLICATE, OK with its recording subscription,
    EXTEND, SYNC, REPLICATE_END, STOP -- run-time ids aside (``normal_form``)."""
    assert normal_form(_sessions(ours.transcript)[name])[1] == normal_form(_sessions(java)[name])[1]


def test_the_answers_compared_are_those_the_readme_names(java: Transcript) -> None:
    """A check of the comparison itself: Java's answers as the README tells them."""
    responses = [m for m in _sessions(java)["client-A"].responses if not is_ping(m)]
    ok = {m.get("correlationId"): m.get("relevantId") for m in responses if m.get("code") == "OK"}
    assert (ok[10], ok[17], ok[29], ok[20], ok[32], ok[23]) == (
        STOP,
        EXTENDED_STOP,
        SECOND_STOP,
        0,
        1,
        7300766721,
    )
    unknown = [
        (m.get("correlationId"), m.get("relevantId"))
        for m in responses
        if m.get("code") == "RECORDING_UNKNOWN"
    ]
    assert unknown == [(21, 1), (33, 1)]
    signals = [
        (m.get("signal"), m.get("recordingId"), m.get("position"))
        for m in responses
        if m.name == "RecordingSignalEvent"
    ]
    assert signals == [
        ("START", 0, 0),
        ("STOP", 0, STOP),
        ("EXTEND", 0, STOP),
        ("STOP", 0, EXTENDED_STOP),
        ("DELETE", 0, -1),
        ("START", 1, 0),
        ("STOP", 1, SECOND_STOP),
        ("DELETE", 1, -1),
    ]
    replication = [
        m.get("signal") for m in _sessions(java)["client-B"].responses if m.name == "RecordingSignalEvent"
    ]
    assert replication == ["REPLICATE", "EXTEND", "SYNC", "REPLICATE_END", "STOP"]


def test_ids_count_up_as_java_s_do(java: Transcript, ours: OurRun) -> None:
    """Control session ids are sequential per archive, and a replication id is the next one: A's
    session for B is the client's + 1, and B's replication id its client session's + 1."""
    for transcript in (java, ours.transcript):
        sessions = _sessions(transcript)
        client_a, b_on_a, client_b = (
            sessions[name].responses[0].get("controlSessionId") for name in ("client-A", "B-A", "client-B")
        )
        assert b_on_a == client_a + 1
        replicate = next(m for m in sessions["client-B"].requests if m.name == "ReplicateRequest2")
        replication_id = next(
            m.get("relevantId")
            for m in sessions["client-B"].responses
            if m.get("correlationId") == replicate.get("correlationId")
        )
        assert replication_id == client_b + 1
    assert (
        ours.replication_id == _sessions(ours.transcript)["client-B"].responses[0].get("controlSessionId") + 1
    )


def test_listed_times_relate_as_java_s_do(java: Transcript, ours: OurRun) -> None:
    """Timestamps differ between runs; how they relate does not: a stop time is not before the start,
    extending moves it on, truncating keeps it, and the replicated recording keeps the source's start
    time and gets its own stop time."""
    for transcript in (java, ours.transcript):
        sessions = _sessions(transcript)
        listed = [m.fields for m in sessions["client-A"].responses if m.name == "RecordingDescriptor"]
        first, truncated, after_purge = listed
        assert first["startTimestamp"] <= first["stopTimestamp"] <= truncated["stopTimestamp"]
        assert truncated["startTimestamp"] == first["startTimestamp"]
        assert after_purge == {**truncated, "correlationId": after_purge["correlationId"]}
        (replicated,) = [m.fields for m in sessions["client-B"].responses if m.name == "RecordingDescriptor"]
        assert replicated["startTimestamp"] == first["startTimestamp"]
        assert replicated["stopTimestamp"] >= truncated["stopTimestamp"]


def test_our_client_hands_over_the_signals_java_s_did(java: Transcript, ours: OurRun) -> None:
    """Java's client logged 13 signals: 8 from A, 5 from B. Ours hands the same to its handler."""
    for archive in "AB":
        sent = [m for m in _sessions(java)[f"client-{archive}"].responses if m.name == "RecordingSignalEvent"]
        got = ours.signals[archive]
        assert [RecordingSignal(e.signal).name for e in got] == [m.get("signal") for m in sent]
        assert [(e.recording_id, e.position) for e in got] == [
            (m.get("recordingId"), m.get("position")) for m in sent
        ]


def test_the_replay_gives_back_the_recorded_messages(ours: OurRun) -> None:
    """Java's client got all 500 messages back byte for byte (README, step 2); so does ours."""
    assert ours.replayed == [message(i) for i in range(500)]


# ---------------------------------------------------------------- the replication's session with A


def test_replication_asks_the_source_as_java_s_does(java: Transcript, ours: OurRun) -> None:
    """Archive B, replicating, is a client of A: it lists the source recording, asks for a replay from 0
    on the recording's stream into its replication channel with the recording's session id, and closes
    its session. A's answer to the replay names replay 2 of the run and the image session id asked for:
    11660861540 = 2 << 32 | (-1224040348 & 0xFFFFFFFF), in both runs."""
    for transcript in (java, ours.transcript):
        b_on_a = _sessions(transcript)["B-A"]
        requests = [m for m in b_on_a.requests if m.name not in ("ArchiveIdRequest", "KeepAliveRequest")]
        assert [m.name for m in requests] == [
            "AuthConnectRequest",
            "ListRecordingRequest",
            "ReplayRequest",
            "CloseSessionRequest",
        ]
        control_session_id = b_on_a.responses[0].get("controlSessionId")
        listing, replay, close = requests[1:]
        assert listing.get("recordingId") == 0 and listing.get("controlSessionId") == control_session_id
        assert {
            k: replay.get(k) for k in ("recordingId", "position", "replayStreamId", "fileIoMaxLength")
        } == {
            "recordingId": 0,
            "position": 0,
            "replayStreamId": STREAM,
            "fileIoMaxLength": -1,
        }
        assert "session-id=-1224040348" in replay.get("replayChannel").split("?")[1].split("|")
        assert close.fields == {"controlSessionId": control_session_id}
        answer = next(m for m in b_on_a.responses if m.get("correlationId") == replay.get("correlationId"))
        assert (answer.get("code"), answer.get("relevantId")) == ("OK", 11660861540)


def test_replication_connects_to_the_source_as_java_s_client_does(java: Transcript, ours: OurRun) -> None:
    """Java's archive connects to the source with its AeronArchive client's sequence: AuthConnectRequest,
    ArchiveIdRequest, KeepAliveRequest(-1), then ListRecordingRequest."""
    expected = ["AuthConnectRequest", "ArchiveIdRequest", "KeepAliveRequest", "ListRecordingRequest"]
    assert [m.name for m in _sessions(java)["B-A"].requests[:4]] == expected
    assert [m.name for m in _sessions(ours.transcript)["B-A"].requests[:4]] == expected


def test_replication_response_channel_has_the_control_defaults(java: Transcript, ours: OurRun) -> None:
    """Java's replication asks the source for responses on its replication channel with the control
    stream defaults: ``aeron:udp?endpoint=127.0.0.1:<port>|sparse=true|term-length=65536|session-id=...
    |mtu=1408`` (in Java's hash order)."""
    for transcript in (java, ours.transcript):
        connect = _sessions(transcript)["B-A"].requests[0]
        params = set(connect.get("responseChannel").split("?")[1].split("|"))
        assert {"term-length=65536", "sparse=true", "mtu=1408"} <= params


def test_replication_replays_with_null_length(java: Transcript, ours: OurRun) -> None:
    """Java's replication of a stopped recording without a stop position asks for a replay of length -1
    (to the end of the recording) and stops recording at the source's stop position."""
    for transcript in (java, ours.transcript):
        replay = next(m for m in _sessions(transcript)["B-A"].requests if m.name == "ReplayRequest")
        assert replay.get("length") == -1


def test_replication_session_with_the_source_is_java_s(java: Transcript, ours: OurRun) -> None:
    assert normal_form(_sessions(ours.transcript)["B-A"]) == normal_form(_sessions(java)["B-A"])


# ------------------------------------------------------------------------- 3. the archives' files

# What the archive directories hold after the run: recording 1's segment file was purged.
ARCHIVE_FILES = ["0-0.rec", "archive-mark.dat", "archive.catalog"]
SEGMENT_FILE_LENGTH = 128 * 1024 * 1024
FRAMES = 998  # the frames of messages 0..499 (fragments of the 5000-byte ones included)


def _recordings(storage: Storage) -> tuple[Any, list[RecordingDescriptor]]:
    with Catalog(storage, read_only=True) as catalog:
        return catalog.header, list(catalog.recordings(include_deleted=True))


def _request_ids(transcript: list[ControlMessage], archive: str) -> dict[int, tuple[int, int]]:
    """The (controlSessionId, correlationId) the archive's catalog should keep for each recording,
    by Java's rule: 0 and 0 for a new recording; an extension's control session and request
    correlation id; for a replicated recording, the replicating session and the replication id."""
    sessions = _sessions(transcript)
    if archive == "A":
        extend = next(m for m in sessions["client-A"].requests if m.name == "ExtendRecordingRequest")
        return {0: (extend.get("controlSessionId"), extend.get("correlationId")), 1: (0, 0)}
    replicate = next(m for m in sessions["client-B"].requests if m.name == "ReplicateRequest2")
    replication_id = next(
        m.get("relevantId")
        for m in sessions["client-B"].responses
        if m.get("correlationId") == replicate.get("correlationId")
    )
    return {0: (replicate.get("controlSessionId"), replication_id)}


def _last_listed(transcript: list[ControlMessage], archive: str) -> dict[int, dict[str, Any]]:
    name = f"client-{archive}"
    return {
        m.get("recordingId"): m.fields
        for m in _sessions(transcript)[name].responses
        if m.name == "RecordingDescriptor"
    }


@pytest.mark.parametrize("case", [ARCHIVE_A, ARCHIVE_B], ids=lambda case: case.name)
def test_our_catalog_holds_java_s_descriptors(
    case: JavaArchive,
    java_archive: Callable[[JavaArchive], Path],
    java: Transcript,
    ours: OurRun,
) -> None:
    """Field by field: the same header and recordings (A: recording 0 truncated back to 1042272 with the
    extension's session id, recording 1 DELETED; B: the replica of A's recording 0). Timestamps are the
    ones each archive listed last; the source identity is the recorded publication's address; the
    session's ids follow Java's rule (``_request_ids``)."""
    archive = case.name[-1]
    their_header, theirs = _recordings(RealStorage(java_archive(case)))
    our_header, mine = _recordings(ours.storages[archive])
    assert our_header == their_header
    assert len(mine) == len(theirs)
    for transcript, recordings in ((java, theirs), (ours.transcript, mine)):
        ids = _request_ids(transcript, archive)
        listed = _last_listed(transcript, archive)
        for d in recordings:
            assert (d.control_session_id, d.correlation_id) == ids[d.recording_id], d
            if d.recording_id in listed:
                assert (d.start_timestamp, d.stop_timestamp) == (
                    listed[d.recording_id]["startTimestamp"],
                    listed[d.recording_id]["stopTimestamp"],
                )
            assert 0 < d.start_timestamp <= d.stop_timestamp
    for our, their in zip(mine, theirs, strict=True):
        differ = (
            "control_session_id",
            "correlation_id",
            "start_timestamp",
            "stop_timestamp",
            "source_identity",
        )
        assert _without(our, differ) == _without(their, differ)
        assert _channel(our.source_identity) == _channel(their.source_identity) == "127.0.0.1:<port>"


def _without(descriptor: RecordingDescriptor, names: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in asdict(descriptor).items() if k not in names}


def _segment(storage: Storage, length: int) -> tuple[int, bytes]:
    file = storage.open("0-0.rec")
    try:
        return file.size(), file.read(0, length)
    finally:
        file.close()


@pytest.mark.parametrize("case", [ARCHIVE_A, ARCHIVE_B], ids=lambda case: case.name)
def test_our_segment_file_holds_java_s_bytes(
    case: JavaArchive, java_archive: Callable[[JavaArchive], Path], ours: OurRun
) -> None:
    """The same files, and a segment file of the same length whose bytes are Java's: the 998 frames of
    0..1042272 (the publications pinned to Java's session ids and initial term id), then zeros where
    the truncated extension was."""
    archive = case.name[-1]
    directory = java_archive(case)
    assert sorted(path.name for path in directory.iterdir()) == ARCHIVE_FILES
    assert sorted(ours.storages[archive].list()) == ARCHIVE_FILES
    extent = EXTENDED_STOP + 64 * 1024
    their_size, theirs = _segment(RealStorage(directory), extent)
    our_size, mine = _segment(ours.storages[archive], extent)
    assert our_size == their_size == SEGMENT_FILE_LENGTH
    assert len(_frames(theirs)) == FRAMES
    assert mine[:STOP] == theirs[:STOP]
    assert not any(mine[STOP:]) and not any(theirs[STOP:])


def _frames(segment: bytes) -> list[int]:
    """The offsets of the frames at the start of ``segment`` (up to the first zero frame length)."""
    offsets = []
    offset = 0
    while offset + 32 <= len(segment):
        length = int.from_bytes(segment[offset : offset + 4], "little", signed=True)
        if length <= 0:
            break
        offsets.append(offset)
        offset += (length + 31) & ~31
    return offsets


def test_the_replica_differs_from_the_source_only_in_session_ids(ours: OurRun) -> None:
    """As the README says of Java's B and A: every frame keeps the session id of the publication that
    wrote it in A (-1224040349) and gets the replay's (-1224040348, A's descriptor's latest) in B."""
    _, a = _segment(ours.storages["A"], STOP)
    _, b = _segment(ours.storages["B"], STOP)
    offsets = _frames(a)
    assert len(offsets) == FRAMES and offsets == _frames(b)
    session_ids = {offset + 12 for offset in offsets}
    for segment, session_id in ((a, FIRST.session_id), (b, EXTENSION.session_id)):
        assert {int.from_bytes(segment[o : o + 4], "little", signed=True) for o in session_ids} == {
            session_id
        }
    masked = [bytearray(a), bytearray(b)]
    for segment in masked:
        for offset in session_ids:
            segment[offset : offset + 4] = bytes(4)
    assert masked[0] == masked[1]


# ----------------------------------------------------------------- ours alone (no reference needed)


def test_our_client_connects_with_a_keep_alive(ours: OurRun) -> None:
    """AuthConnectRequest, ArchiveIdRequest, KeepAliveRequest(-1): Java's connect sequence."""
    for name, response in (("client-A", A_RESPONSE), ("client-B", B_RESPONSE)):
        conversation = _sessions(ours.transcript)[name]
        connect, archive_id, keep_alive = conversation.requests[:3]
        assert connect.get("responseChannel") == (
            f"{response}|session-id={connect.session_id}|term-length=65536|sparse=true|mtu=1408"
        )
        assert (archive_id.name, keep_alive.name, keep_alive.get("correlationId")) == (
            "ArchiveIdRequest",
            "KeepAliveRequest",
            -1,
        )


def test_our_listing_entries_carry_their_catalog_padding(ours: OurRun) -> None:
    """A RecordingDescriptor message is the catalog entry's length (a multiple of 64 with its 32-byte
    header) plus the message header: 232 bytes for these descriptors, as Java sends them."""
    listed = [m for m in ours.transcript if m.name == "RecordingDescriptor"]
    assert listed and {len(m.payload) for m in listed} == {232}
    assert all(not any(m.payload[181:]) for m in listed)


def test_a_new_recording_keeps_no_session_ids_in_the_catalog(ours: OurRun) -> None:
    """Java's rule: a new recording's catalog entry has controlSessionId 0 and correlationId 0 (recording
    1 here); an extension writes its request's (recording 0)."""
    _, recordings = _recordings(ours.storages["A"])
    assert [(d.recording_id, d.state) for d in recordings] == [
        (0, RecordingState.VALID),
        (1, RecordingState.DELETED),
    ]
    assert (recordings[1].control_session_id, recordings[1].correlation_id) == (0, 0)
    assert recordings[0].control_session_id != 0 and recordings[0].correlation_id != 0


# ----------------------------------------------------------------------------------- liveness probes


def test_java_s_archive_probes_liveness_busy_or_not(java: Transcript) -> None:
    """Java's archive sent client A's session two probes (OK, correlationId -1, relevantId -1) a second
    apart over its 2.3 s; the first went out in the same datagram as the purge's answers, so a busy
    session gets them too."""
    responses = _sessions(java)["client-A"].responses
    pings = [m for m in responses if is_ping(m)]
    assert len(pings) == 2
    assert all(m.fields["relevantId"] == -1 and m.fields["code"] == "OK" for m in pings)
    same_datagram = [m.name for m in responses if m.datagram == pings[0].datagram and not is_ping(m)]
    assert same_datagram == ["ControlResponse", "RecordingSignalEvent"]


def test_our_archive_probes_liveness_busy_or_not() -> None:
    """A session that asks something every 200 ms for 2.4 s (virtual time) gets a probe after 1 s and
    after 2 s, as Java's does; it has the probe's bytes (the session's id aside)."""
    world = World("sim", seed=5)
    tap = TapRecorder()
    world.network.tap = tap
    archive_transport = world.transport(HOST)
    _archive(world, archive_transport, "archive", A_CONTROL, A_ID)
    client = ArchiveClient.connect(
        world.transport(HOST),
        control_request_channel=A_CONTROL,
        control_response_channel=A_RESPONSE,
        invoker=world.step,
    )
    try:
        for _ in range(12):
            assert client.get_archive_id() == A_ID
            assert not world.run_until(lambda: False, timeout_s=0.2)
        client.close()
        assert world.run_until(lambda: not world.archives[0].control_sessions)
    finally:
        world.close()
    responses = _sessions_of(tap_transcript(tap.datagrams))
    pings = [m for m in responses if is_ping(m)]
    assert len(pings) == 2
    between = responses[responses.index(pings[0]) + 1 : responses.index(pings[1])]
    assert between and all(m.get("relevantId") == A_ID for m in between)  # busy all along
    assert pings[0].payload == ControlResponseProxy().response_bytes(
        client.control_session_id, -1, -1, codecs.ControlResponseCode.OK
    )


def _sessions_of(transcript: list[ControlMessage]) -> list[ControlMessage]:
    """The responses of the one session of a transcript."""
    (session,) = conversations(transcript).values()
    return session.responses
