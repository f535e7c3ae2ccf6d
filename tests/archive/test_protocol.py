"""The archive's control protocol, request by request, over the simulated network and disk: authentication,
session liveness, listings, recording, replay, the order of responses and recording signals, and a storage
failure while recording. Timeouts are the simulator's virtual time; nothing here waits on a wall clock.

The order of responses and signals is the one a Java 1.47.3 archive sends (docs/archive.md, "Signals";
``test_java_interop`` holds it against the capture): a request's OK comes before the signal it causes
-- StartRecording: OK, then START when the image arrives; StopRecordingSubscription: OK, then STOP;
ExtendRecording: OK, then EXTEND; TruncateRecording: OK, then DELETE; PurgeRecording: OK, then DELETE.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from support.archive_protocol import (
    REPLAY_STREAM,
    STREAM,
    Collector,
    ProtocolWorld,
)
from support.archive_world import TERM_LENGTH

from cluster.archive.auth import SessionProxy
from cluster.archive.client import (
    ArchiveClient,
    ArchiveProxy,
    ArchiveRequestError,
    ArchiveTimeoutError,
    ControlResponse,
    ControlResponsePoller,
    RecordingSignalEvent,
)
from cluster.archive.control_session import MAX_QUEUED_MESSAGES, ControlSessionState
from cluster.archive.protocol import (
    NULL_POSITION,
    NULL_VALUE,
    PROTOCOL_SEMANTIC_VERSION,
    REPLAY_ALL_AND_FOLLOW,
    REPLAY_ALL_AND_STOP,
    ArchiveErrorCode,
    semantic_version,
)
from cluster.transport.counters import Counter
from cluster.transport.driver import Transport, TransportConfig
from generated import aeron_archive_codecs as codecs
from generated.aeron_archive_codecs import (
    ControlResponseCode,
    RecordingSignal,
    RecordingState,
    SourceLocation,
)

NS_PER_S = 1_000_000_000


@pytest.fixture
def pw() -> Iterator[ProtocolWorld]:
    world = ProtocolWorld(seed=11)
    try:
        yield world
    finally:
        world.close()


def responses(client: ArchiveClient) -> list[Any]:
    """What has arrived on the client's response stream and was not taken by a request (the poller's
    messages, in order). Call only while no request is waiting."""
    client.poller.poll()
    return client.poller.take()


class RawSession:
    """A control session opened by hand, byte for byte: a request publication, a response subscription and
    a poller that keeps every message on it."""

    def __init__(self, pw: ProtocolWorld, transport: Transport, host: str, port: int) -> None:
        self.pw = pw
        self.subscription = transport.add_subscription(f"aeron:udp?endpoint={host}:{port}", 20)
        self.publication = transport.add_exclusive_publication(pw.control, 10)
        assert pw.run_until(lambda: self.publication.is_connected)
        self.proxy = ArchiveProxy(self.publication, retry=pw.step)
        self.poller = ControlResponsePoller(self.subscription)
        self.response_channel = f"aeron:udp?endpoint={host}:{port}|session-id={self.publication.session_id}"
        self.received: list[Any] = []

    def connect(self, correlation_id: int = 1, version: int = PROTOCOL_SEMANTIC_VERSION) -> None:
        assert self.proxy.send(
            codecs.AuthConnectRequestEncoder,
            correlation_id=correlation_id,
            response_stream_id=20,
            version=version,
            response_channel=self.response_channel,
            encoded_credentials=b"",
        )

    def poll(self) -> list[Any]:
        self.poller.poll()
        self.received.extend(self.poller.take())
        return self.received

    def response(self, correlation_id: int, timeout_s: float = 2.0) -> ControlResponse:
        def found() -> ControlResponse | None:
            for message in self.poll():
                if isinstance(message, ControlResponse) and message.correlation_id == correlation_id:
                    return message
            return None

        assert self.pw.run_until(lambda: found() is not None, timeout_s=timeout_s), self.received
        result = found()
        assert result is not None
        return result


# -------------------------------------------------------------------------------------------- authentication


class ChallengeAuthenticator:
    """Challenges every session with ``b"who goes there?"`` and lets in the one that answers ``b"friend"``."""

    CHALLENGE = b"who goes there?"
    ANSWER = b"friend"

    def __init__(self) -> None:
        self.credentials: dict[int, bytes] = {}
        self.answers: dict[int, bytes] = {}

    def on_connect_request(self, session_id: int, encoded_credentials: bytes, now_ms: int) -> None:
        self.credentials[session_id] = encoded_credentials

    def on_challenge_response(self, session_id: int, encoded_credentials: bytes, now_ms: int) -> None:
        self.answers[session_id] = encoded_credentials

    def on_connected_session(self, proxy: SessionProxy, now_ms: int) -> None:
        proxy.challenge(self.CHALLENGE)

    def on_challenged_session(self, proxy: SessionProxy, now_ms: int) -> None:
        answer = self.answers.get(proxy.session_id)
        if answer == self.ANSWER:
            proxy.authenticate(b"principal")
        elif answer is not None:
            proxy.reject()


class UndecidedAuthenticator:
    """Never decides."""

    def on_connect_request(self, session_id: int, encoded_credentials: bytes, now_ms: int) -> None:
        pass

    def on_challenge_response(self, session_id: int, encoded_credentials: bytes, now_ms: int) -> None:
        pass

    def on_connected_session(self, proxy: SessionProxy, now_ms: int) -> None:
        pass

    def on_challenged_session(self, proxy: SessionProxy, now_ms: int) -> None:
        pass


def test_a_challenge_answered_right_lets_the_client_in() -> None:
    pw = ProtocolWorld(seed=3)
    authenticator = ChallengeAuthenticator()
    pw.archive.ctx.authenticator = authenticator  # sessions from now on
    try:
        challenges: list[bytes] = []

        def answer(challenge: bytes) -> bytes:
            challenges.append(challenge)
            return ChallengeAuthenticator.ANSWER

        client = pw.connect(credentials=b"alice", on_challenge=answer)
        assert challenges == [ChallengeAuthenticator.CHALLENGE]
        session = pw.archive.control_sessions[client.control_session_id]
        assert session.state == ControlSessionState.ACTIVE
        assert session.encoded_principal == b"principal"
        assert authenticator.credentials[client.control_session_id] == b"alice"
        assert client.archive_id == pw.archive.archive_id
        assert client.list_recordings(0, 10) == []
    finally:
        pw.close()


def test_a_challenge_answered_wrong_is_rejected() -> None:
    pw = ProtocolWorld(seed=3)
    pw.archive.ctx.authenticator = ChallengeAuthenticator()
    try:
        with pytest.raises(ArchiveRequestError) as rejected:
            pw.connect(on_challenge=lambda challenge: b"foe")
        assert rejected.value.code == ArchiveErrorCode.AUTHENTICATION_REJECTED
        assert pw.run_until(lambda: list(pw.archive.control_sessions) == [pw.client.control_session_id])
    finally:
        pw.close()


def test_an_undecided_session_is_closed_after_the_connect_timeout() -> None:
    pw = ProtocolWorld(seed=3)
    try:
        pw.archive.ctx.authenticator = UndecidedAuthenticator()
        host = pw.world.host()
        raw = RawSession(pw, pw.world.transport(host), host, 9100)
        raw.connect(correlation_id=7)

        def connected() -> Any:
            for session in pw.archive.control_sessions.values():
                if session.correlation_id == 7 and session.state == ControlSessionState.CONNECTED:
                    return session
            return None

        assert pw.run_until(lambda: connected() is not None)
        session = connected()
        connected_ns = pw.world.clock.nano_time()
        timeout_ns = pw.archive.ctx.connect_timeout_ns
        # still undecided, and still there, just before the timeout
        assert not pw.run_until(lambda: session.is_done, timeout_s=(timeout_ns - 10_000_000) / NS_PER_S)
        assert session.state == ControlSessionState.CONNECTED
        assert pw.run_until(lambda: session.is_done, timeout_s=0.1)
        assert pw.world.clock.nano_time() - connected_ns >= timeout_ns
        assert session.control_session_id not in pw.archive.control_sessions
        assert "connect timeout" in session.reason
        assert not any(isinstance(m, ControlResponse) and m.correlation_id == 7 for m in raw.poll())
    finally:
        pw.close()


def test_a_client_of_another_major_version_is_refused_naming_both_versions(pw: ProtocolWorld) -> None:
    host = pw.world.host()
    raw = RawSession(pw, pw.world.transport(host), host, 9100)
    raw.connect(correlation_id=5, version=semantic_version(2, 3, 4))
    refused = raw.response(5)
    assert refused.code == ControlResponseCode.ERROR
    assert "2.3.4" in refused.error_message and "1.11.0" in refused.error_message, refused.error_message
    assert pw.run_until(lambda: refused.control_session_id not in pw.archive.control_sessions)
    # another minor or patch of the same major is welcome
    host2 = pw.world.host()
    raw2 = RawSession(pw, pw.world.transport(host2), host2, 9101)
    raw2.connect(correlation_id=6, version=semantic_version(1, 99, 7))
    assert raw2.response(6).code == ControlResponseCode.OK


def test_a_response_channel_without_a_term_length_gets_the_control_term_length() -> None:
    """As Aeron's archive does (``aeron.archive.control.term.buffer.length``, 64 KiB): not the transport's
    default term for UDP (16 MiB, a 48 MiB log for every session). A term length the client names is kept."""
    pw = ProtocolWorld(seed=3)
    try:
        host = pw.world.host()
        transport = Transport(pw.world.network, TransportConfig(bind_host=host, seed=99))
        pw.world.transports.append(transport)
        pw.world.agents.append(transport.do_work)
        assert transport.config.udp_term_length == 16 * 1024 * 1024
        archive_transport = Transport(pw.world.network, TransportConfig(bind_host=pw.archive_host, seed=98))
        assert archive_transport.config.udp_term_length == 16 * 1024 * 1024
        pw.world.transports.append(archive_transport)
        pw.world.agents.append(archive_transport.do_work)
        control = f"aeron:udp?endpoint={pw.archive_host}:8011"
        archive = pw.world.archive(archive_transport, "big-terms", control_channel=control)
        client = ArchiveClient.connect(
            transport,
            control_request_channel=f"{control}|term-length=64k",
            control_response_channel=f"aeron:udp?endpoint={host}:0",
            invoker=pw.step,
        )
        (image,) = client.poller.subscription.images
        assert image.term_length == 64 * 1024
        named = ArchiveClient.connect(
            transport,
            control_request_channel=f"{control}|term-length=64k",
            control_response_channel=f"aeron:udp?endpoint={host}:0|term-length=128k",
            invoker=pw.step,
        )
        (image,) = named.poller.subscription.images
        assert image.term_length == 128 * 1024
        assert len(archive.control_sessions) == 2
    finally:
        pw.close()


# -------------------------------------------------------------------------------------------------- liveness


def test_an_idle_session_gets_a_liveness_ok_about_once_per_interval(pw: ProtocolWorld) -> None:
    client = pw.client
    interval_ns = pw.archive.ctx.session_liveness_check_interval_ns
    seen: list[tuple[int, ControlResponse]] = []

    def poll() -> bool:
        for message in responses(client):
            seen.append((pw.world.clock.nano_time(), message))
        return False

    start_ns = pw.world.clock.nano_time()
    pw.run_until(poll, timeout_s=5.5 * interval_ns / NS_PER_S)
    assert [(m.correlation_id, m.relevant_id, m.code) for _, m in seen] == [
        (NULL_VALUE, NULL_VALUE, ControlResponseCode.OK)
    ] * len(seen)
    assert len(seen) == 5, [t - start_ns for t, _ in seen]
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(seen)]
    assert all(interval_ns <= gap < interval_ns + 10_000_000 for gap in gaps), gaps
    # the probe is a timer, not an idle check: a busy session gets it too, as the Java archive's does in
    # the capture (pings 0.999 s apart with requests and responses in between)
    seen.clear()
    busy_start_ns = pw.world.clock.nano_time()
    for _ in range(8):
        client.get_archive_id()
        pw.run_for(interval_ns / 2 / NS_PER_S)
        poll()
    assert len(seen) == 4, [t - busy_start_ns for t, _ in seen]


@pytest.mark.parametrize("how", ["close", "abort"])
def test_a_client_that_goes_away_loses_its_session(pw: ProtocolWorld, how: str) -> None:
    host = pw.world.host()
    transport = pw.world.transport(host)
    client = pw.connect(transport, host)
    session = pw.archive.control_sessions[client.control_session_id]
    if how == "close":
        transport.close()  # end of stream on its publication: the request image goes at once
    else:
        transport.abort()  # a killed process: the response publication and request image time out
    pw.world.agents.remove(transport.do_work)
    assert pw.run_until(lambda: session.is_done, timeout_s=15.0), session.state
    assert session.control_session_id not in pw.archive.control_sessions
    assert session.publication is not None and session.publication.is_closed
    assert pw.client.get_archive_id() == pw.archive.archive_id


def test_close_session_request_closes_the_session(pw: ProtocolWorld) -> None:
    host = pw.world.host()
    client = pw.connect(pw.world.transport(host), host)
    session = pw.archive.control_sessions[client.control_session_id]
    client.close()
    assert pw.run_until(lambda: session.is_done, timeout_s=0.1)
    assert session.reason == "close requested by the client"
    assert client.control_session_id not in pw.archive.control_sessions
    assert pw.client.get_archive_id() == pw.archive.archive_id


# -------------------------------------------------------------------------------------------------- listings


def add_stopped(
    pw: ProtocolWorld, count: int, *, stream_id: int = STREAM, channel: str | None = None
) -> list[int]:
    """``count`` stopped recordings straight into the catalog (no segment files: listings only read the
    catalog)."""
    channel = channel or pw.channel
    ids = []
    for i in range(count):
        ids.append(
            pw.archive.catalog.add_recording(
                start_position=0,
                start_timestamp=1000 + i,
                initial_term_id=7,
                segment_file_length=256 * 1024,
                term_buffer_length=TERM_LENGTH,
                mtu_length=1408,
                session_id=100 + i,
                stream_id=stream_id,
                stripped_channel=channel,
                original_channel=channel,
                source_identity="10.0.0.9:4000",
                stop_position=32 * (i + 1),
                stop_timestamp=2000 + i,
            )
        )
    return ids


def raw_listing(
    pw: ProtocolWorld, client: ArchiveClient, encoder: Any, correlation_id: int, **fields: Any
) -> tuple[list[Any], ControlResponse | None]:
    """Send a listing request and collect what comes back with its correlation id up to the response that
    ends it (None if the listing ended on its count)."""
    assert client.proxy.send(
        encoder, control_session_id=client.control_session_id, correlation_id=correlation_id, **fields
    )
    entries: list[Any] = []
    end: list[ControlResponse] = []

    def poll() -> bool:
        for message in responses(client):
            if getattr(message, "correlation_id", None) != correlation_id:
                continue
            if isinstance(message, ControlResponse):
                end.append(message)
            else:
                entries.append(message)
        return bool(end)

    pw.run_until(poll, timeout_s=1.0)
    return entries, end[0] if end else None


def test_a_listing_stops_at_a_purged_recording_with_recording_unknown(pw: ProtocolWorld) -> None:
    ids = add_stopped(pw, 3)
    pw.client.purge_recording(ids[1])
    entries, end = raw_listing(
        pw, pw.client, codecs.ListRecordingsRequestEncoder, 50, from_recording_id=0, record_count=100
    )
    assert [e.descriptor.recording_id for e in entries] == [ids[0]]
    assert end is not None
    assert (end.code, end.relevant_id) == (ControlResponseCode.RECORDING_UNKNOWN, ids[1])
    # from after the purged one, the listing goes on to the end of the catalog
    entries, end = raw_listing(
        pw, pw.client, codecs.ListRecordingsRequestEncoder, 51, from_recording_id=ids[2], record_count=100
    )
    assert [e.descriptor.recording_id for e in entries] == [ids[2]]
    assert end is not None and (end.code, end.relevant_id) == (
        ControlResponseCode.RECORDING_UNKNOWN,
        ids[2] + 1,
    )
    # a listing that gets its count ends without a response
    entries, end = raw_listing(
        pw, pw.client, codecs.ListRecordingsRequestEncoder, 52, from_recording_id=ids[2], record_count=1
    )
    assert [e.descriptor.recording_id for e in entries] == [ids[2]] and end is None
    assert pw.client.list_recording(ids[1]) is None
    assert [d.recording_id for d in pw.client.list_recordings(0, 100)] == [ids[0]]


def test_list_recordings_for_uri_filters_by_stream_and_channel_fragment(pw: ProtocolWorld) -> None:
    other = f"aeron:udp?endpoint={pw.archive_host}:8099"
    a = add_stopped(pw, 2)
    b = add_stopped(pw, 2, channel=other)
    c = add_stopped(pw, 2, stream_id=STREAM + 1)
    d = add_stopped(pw, 1)
    listed = pw.client.list_recordings_for_uri(0, 100, ":8020", STREAM)
    assert [x.recording_id for x in listed] == a + d
    assert [x.recording_id for x in pw.client.list_recordings_for_uri(0, 100, "8099", STREAM)] == b
    assert [x.recording_id for x in pw.client.list_recordings_for_uri(0, 100, "", STREAM + 1)] == c
    assert [x.recording_id for x in pw.client.list_recordings_for_uri(0, 2, "aeron:udp", STREAM)] == a
    assert [x.recording_id for x in pw.client.list_recordings_for_uri(a[1], 100, "", STREAM)] == a[1:] + b + d
    assert pw.client.list_recordings_for_uri(0, 100, "nowhere", STREAM) == []
    entries, end = raw_listing(
        pw,
        pw.client,
        codecs.ListRecordingsForUriRequestEncoder,
        60,
        from_recording_id=0,
        record_count=100,
        stream_id=STREAM + 1,
        channel="8020",
    )
    assert [e.descriptor.recording_id for e in entries] == c
    assert end is not None and (end.code, end.relevant_id) == (
        ControlResponseCode.RECORDING_UNKNOWN,
        d[0] + 1,
    )


def test_a_second_listing_while_one_is_active_gets_active_listing(pw: ProtocolWorld) -> None:
    add_stopped(pw, 100)
    client = pw.client
    for correlation_id in (70, 71):
        assert client.proxy.send(
            codecs.ListRecordingsRequestEncoder,
            control_session_id=client.control_session_id,
            correlation_id=correlation_id,
            from_recording_id=0,
            record_count=100,
        )
    listed: list[int] = []
    refused: list[ControlResponse] = []

    def poll() -> bool:
        for message in responses(client):
            if isinstance(message, ControlResponse) and message.correlation_id == 71:
                refused.append(message)
            elif getattr(message, "correlation_id", None) == 70:
                listed.append(message.descriptor.recording_id)
        return len(listed) == 100 and bool(refused)

    assert pw.run_until(poll, timeout_s=2.0), (len(listed), refused)
    assert listed == list(range(100))
    assert [(r.code, r.relevant_id) for r in refused] == [
        (ControlResponseCode.ERROR, ArchiveErrorCode.ACTIVE_LISTING)
    ]
    # once it is over, the next listing is welcome
    assert [d.recording_id for d in client.list_recordings(98, 10)] == [98, 99]


def test_a_large_listing_arrives_complete_and_in_order(pw: ProtocolWorld) -> None:
    ids = add_stopped(pw, 100)
    listed = pw.client.list_recordings(0, 1000)
    assert [d.recording_id for d in listed] == ids
    for descriptor, i in zip(listed, range(100), strict=True):
        assert descriptor.stop_position == 32 * (i + 1)
        assert descriptor.session_id == 100 + i
        assert descriptor.original_channel == pw.channel
        assert (
            descriptor.control_session_id == pw.client.control_session_id
        )  # the listing's, not the recording's
    assert [d.recording_id for d in pw.client.list_recordings(40, 25)] == ids[40:65]


def test_list_recording_subscriptions(pw: ProtocolWorld) -> None:
    client = pw.client
    other = f"aeron:udp?endpoint={pw.archive_host}:8099"
    s1 = client.start_recording(pw.channel, STREAM, SourceLocation.REMOTE)
    s2 = client.start_recording(pw.channel, STREAM + 1, SourceLocation.REMOTE)
    s3 = client.start_recording(other, STREAM, SourceLocation.REMOTE)

    def listed(
        pseudo_index: int, count: int, fragment: str, stream_id: int, apply: bool
    ) -> list[tuple[int, int, str]]:
        return [
            (d.subscription_id, d.stream_id, d.stripped_channel)
            for d in client.list_recording_subscriptions(
                pseudo_index, count, fragment, stream_id, apply_stream_id=apply
            )
        ]

    assert listed(0, 10, "", 0, False) == [
        (s1, STREAM, pw.channel),
        (s2, STREAM + 1, pw.channel),
        (s3, STREAM, other),
    ]
    assert listed(0, 10, "", STREAM, True) == [(s1, STREAM, pw.channel), (s3, STREAM, other)]
    assert listed(0, 10, "8099", 0, False) == [(s3, STREAM, other)]
    assert listed(1, 10, "", 0, False) == [(s2, STREAM + 1, pw.channel), (s3, STREAM, other)]
    assert listed(0, 2, "", 0, False) == [(s1, STREAM, pw.channel), (s2, STREAM + 1, pw.channel)]
    assert listed(0, 10, "nowhere", 0, False) == []
    assert listed(5, 10, "", 0, False) == []
    client.stop_recording_subscription(s2)
    assert listed(0, 10, "", 0, False) == [(s1, STREAM, pw.channel), (s3, STREAM, other)]


# ------------------------------------------------------------------------------------------------- recording


def test_local_recording_of_a_udp_publication_of_the_archive_transport_is_a_spy(pw: ProtocolWorld) -> None:
    channel = f"aeron:udp?endpoint={pw.client_host}:8060"
    receiver = pw.client_transport.add_subscription(channel, STREAM)  # the publication's real subscriber
    subscription_id = pw.client.start_recording(channel, STREAM, SourceLocation.LOCAL)
    (entry,) = pw.archive.recording_subscriptions.values()
    assert entry.subscription.channel.startswith("aeron-spy:")
    publication = pw.archive_transport.add_exclusive_publication(channel, STREAM)
    start = pw.await_signal(RecordingSignal.START)
    assert (start.subscription_id, start.position) == (subscription_id, 0)
    sent = pw.publish(publication, 0, 20)
    assert pw.run_until(lambda: pw.client.get_recording_position(start.recording_id) == sent[-1][1])
    pw.client.stop_recording(channel, STREAM)
    assert pw.await_signal(RecordingSignal.STOP).position == sent[-1][1]
    descriptor = pw.client.list_recording(start.recording_id)
    assert descriptor is not None and descriptor.session_id == publication.session_id
    pw.replay_all(start.recording_id, sent)
    receiver.close()


def test_local_recording_of_an_ipc_publication(pw: ProtocolWorld) -> None:
    pw.client.start_recording("aeron:ipc", STREAM, SourceLocation.LOCAL)
    publication = pw.archive_transport.add_exclusive_publication("aeron:ipc?term-length=64k", STREAM)
    start = pw.await_signal(RecordingSignal.START)
    sent = pw.publish(publication, 0, 20, length=3000)  # fragmented
    assert pw.run_until(lambda: pw.client.get_recording_position(start.recording_id) == sent[-1][1])
    publication.close()  # the image ends: the recording stops, the subscription stays
    assert pw.await_signal(RecordingSignal.STOP).position == sent[-1][1]
    assert len(pw.archive.recording_subscriptions) == 1
    descriptor = pw.client.list_recording(start.recording_id)
    assert descriptor is not None
    assert (descriptor.stripped_channel, descriptor.term_buffer_length) == ("aeron:ipc", TERM_LENGTH)
    pw.replay_all(start.recording_id, sent)


def test_auto_stop_closes_the_subscription_when_the_image_ends(pw: ProtocolWorld) -> None:
    client = pw.client
    subscription_id = client.start_recording(pw.channel, STREAM, SourceLocation.REMOTE, auto_stop=True)
    with pytest.raises(ArchiveRequestError) as duplicate:
        client.start_recording(pw.channel, STREAM, SourceLocation.REMOTE)
    assert duplicate.value.code == ArchiveErrorCode.ACTIVE_SUBSCRIPTION
    publication = pw.client_transport.add_exclusive_publication(pw.channel, STREAM)
    start = pw.await_signal(RecordingSignal.START)
    sent = pw.publish(publication, 0, 5)
    publication.close()
    stop = pw.await_signal(RecordingSignal.STOP)
    assert (stop.recording_id, stop.subscription_id, stop.position) == (
        start.recording_id,
        subscription_id,
        sent[-1][1],
    )
    assert pw.run_until(lambda: not pw.archive.recording_subscriptions)
    assert client.list_recording_subscriptions(0, 10, "", 0, apply_stream_id=False) == []
    # the channel is free again
    again = client.start_recording(pw.channel, STREAM, SourceLocation.REMOTE)
    assert again != subscription_id
    with pytest.raises(ArchiveRequestError) as gone:
        client.stop_recording_subscription(subscription_id)
    assert gone.value.code == ArchiveErrorCode.UNKNOWN_SUBSCRIPTION


def test_max_concurrent_recordings() -> None:
    pw = ProtocolWorld(seed=5, max_concurrent_recordings=2)
    try:
        client = pw.client
        client.start_recording(pw.channel, STREAM, SourceLocation.REMOTE)
        client.start_recording(pw.channel, STREAM + 1, SourceLocation.REMOTE)
        with pytest.raises(ArchiveRequestError) as full:
            client.start_recording(pw.channel, STREAM + 2, SourceLocation.REMOTE)
        assert full.value.code == ArchiveErrorCode.MAX_RECORDINGS
        client.stop_recording(pw.channel, STREAM + 1)
        client.start_recording(pw.channel, STREAM + 2, SourceLocation.REMOTE)
    finally:
        pw.close()


def test_stop_recording_by_channel_and_by_identity(pw: ProtocolWorld) -> None:
    client = pw.client
    client.start_recording(pw.channel, STREAM, SourceLocation.REMOTE)
    publication = pw.client_transport.add_exclusive_publication(pw.channel, STREAM)
    first = pw.await_signal(RecordingSignal.START)
    sent = pw.publish(publication, 0, 3)
    assert pw.run_until(lambda: client.get_recording_position(first.recording_id) == sent[-1][1])
    client.stop_recording(pw.channel, STREAM)
    assert pw.await_signal(RecordingSignal.STOP).position == sent[-1][1]
    with pytest.raises(ArchiveRequestError) as unknown:
        client.stop_recording(pw.channel, STREAM)
    assert unknown.value.code == ArchiveErrorCode.UNKNOWN_SUBSCRIPTION
    publication.close()

    client.start_recording(pw.channel, STREAM + 1, SourceLocation.REMOTE)
    second_publication = pw.client_transport.add_exclusive_publication(pw.channel, STREAM + 1)
    second = pw.await_signal(RecordingSignal.START, 2)
    assert client.try_stop_recording_by_identity(second.recording_id) is True
    assert pw.await_signal(RecordingSignal.STOP, 2).recording_id == second.recording_id
    assert client.try_stop_recording_by_identity(second.recording_id) is False  # stopped already
    assert client.try_stop_recording_by_identity(first.recording_id) is False
    with pytest.raises(ArchiveRequestError) as missing:
        client.try_stop_recording_by_identity(999)
    assert missing.value.code == ArchiveErrorCode.UNKNOWN_RECORDING
    assert not pw.archive.recording_subscriptions  # its only recording stopped: the subscription went too
    second_publication.close()


def extension_channel(base: str, *, initial_term_id: int, position: int, term_length: int, mtu: int) -> str:
    shift = term_length.bit_length() - 1
    separator = "|" if "?" in base else "?"
    return (
        f"{base}{separator}init-term-id={initial_term_id}|term-id={initial_term_id + (position >> shift)}"
        f"|term-offset={position & (term_length - 1)}|term-length={term_length}|mtu={mtu}"
    )


@pytest.mark.parametrize("mismatch", ["initial_term_id", "term_length", "mtu", "join_position"])
def test_an_extension_that_does_not_continue_the_recording_is_refused(
    pw: ProtocolWorld, mismatch: str
) -> None:
    recording_id, _, sent = pw.record(count=5)
    before = pw.archive.catalog.recording(recording_id)
    assert before is not None
    end = sent[-1][1]
    params = {
        "initial_term_id": before.initial_term_id,
        "position": end,
        "term_length": before.term_buffer_length,
        "mtu": before.mtu_length,
    }
    params[{"join_position": "position"}.get(mismatch, mismatch)] = {
        "initial_term_id": before.initial_term_id + 1,
        "term_length": before.term_buffer_length * 2,
        "mtu": before.mtu_length - 32,
        "join_position": end + 1024,
    }[mismatch]
    extend_subscription = pw.client.extend_recording(recording_id, pw.channel, STREAM, SourceLocation.REMOTE)
    publication = pw.client_transport.add_exclusive_publication(
        extension_channel(pw.channel, **params), STREAM
    )
    errors: list[ControlResponse] = []
    signals: list[RecordingSignalEvent] = []

    def refused() -> bool:
        for message in responses(pw.client):
            if isinstance(message, ControlResponse) and message.code == ControlResponseCode.ERROR:
                errors.append(message)
            elif isinstance(message, RecordingSignalEvent):
                signals.append(message)
        return bool(errors)

    assert pw.run_until(refused), mismatch
    (error,) = errors
    assert error.relevant_id == ArchiveErrorCode.INVALID_EXTENSION, error
    assert "cannot extend recording" in error.error_message
    assert pw.archive.catalog.recording(recording_id) == before
    assert recording_id not in pw.archive.recording_sessions
    pw.publish(publication, 100, 3)
    pw.run_for(0.05)
    refused()
    assert signals == []  # no EXTEND, no STOP
    assert pw.archive.catalog.recording(recording_id) == before  # nothing of it was written either
    pw.client.stop_recording_subscription(extend_subscription)
    pw.replay_all(recording_id, sent)


def test_truncating_an_active_recording_is_refused(pw: ProtocolWorld) -> None:
    pw.client.start_recording(pw.channel, STREAM, SourceLocation.REMOTE)
    publication = pw.client_transport.add_exclusive_publication(pw.channel, STREAM)
    start = pw.await_signal(RecordingSignal.START)
    pw.publish(publication, 0, 3)
    with pytest.raises(ArchiveRequestError) as active:
        pw.client.truncate_recording(start.recording_id, 0)
    assert active.value.code == ArchiveErrorCode.ACTIVE_RECORDING
    with pytest.raises(ArchiveRequestError) as purge_active:
        pw.client.purge_recording(start.recording_id)
    assert purge_active.value.code == ArchiveErrorCode.ACTIVE_RECORDING


def test_purging_a_recording_with_an_active_replay_is_refused(pw: ProtocolWorld) -> None:
    recording_id, _, sent = pw.record(count=5)
    subscription = pw.client_transport.add_subscription(pw.replay_channel, REPLAY_STREAM)
    limit = pw.archive_transport.counters_manager.allocate(1001, "hold the replay open")
    limit.set(sent[1][1])
    replay = pw.client.start_bounded_replay(
        recording_id, 0, REPLAY_ALL_AND_FOLLOW, limit.id, pw.replay_channel, REPLAY_STREAM
    )
    assert pw.run_until(lambda: pw.replay_image(subscription, replay) is not None)
    with pytest.raises(ArchiveRequestError) as busy:
        pw.client.purge_recording(recording_id)
    assert busy.value.code == ArchiveErrorCode.ACTIVE_RECORDING
    assert "active replay" in str(busy.value)
    descriptor = pw.archive.catalog.recording(recording_id)
    assert descriptor is not None and descriptor.state == RecordingState.VALID
    pw.client.stop_replay(replay)
    assert pw.run_until(lambda: not pw.archive.replay_sessions)
    assert pw.client.purge_recording(recording_id) == 1
    assert pw.client.list_recording(recording_id) is None


# ---------------------------------------------------------------------------------------------------- replay


class Replay:
    """A replay's image on the client, kept once it appears, and what it delivered."""

    def __init__(self, pw: ProtocolWorld, stream_id: int = REPLAY_STREAM) -> None:
        self.pw = pw
        self.subscription = pw.client_transport.add_subscription(pw.replay_channel, stream_id)
        self.stream_id = stream_id
        self.collector = Collector()
        self.image: Any = None
        self.replay_session_id = NULL_VALUE

    def start(self, recording_id: int, position: int, length: int) -> Replay:
        self.replay_session_id = self.pw.client.start_replay(
            recording_id, position, length, self.pw.replay_channel, self.stream_id
        )
        return self

    def poll(self) -> bool:
        if self.image is None:
            self.image = self.pw.replay_image(self.subscription, self.replay_session_id)
        self.collector.poll(self.image)
        return False

    @property
    def messages(self) -> list[tuple[bytes, int]]:
        return self.collector.messages

    def until(self, count: int, timeout_s: float = 5.0) -> list[tuple[bytes, int]]:
        assert self.pw.run_until(lambda: self.poll() or len(self.messages) >= count, timeout_s=timeout_s), (
            f"{len(self.messages)} of {count}"
        )
        return self.messages

    def ended(self) -> bool:
        self.poll()
        return self.image is not None and self.image.is_closed

    def wait_end(self) -> int:
        assert self.pw.run_until(self.ended, timeout_s=5.0)
        assert self.image.is_end_of_stream
        return int(self.image.end_of_stream_position)

    def idle_for(self, seconds: float) -> None:
        self.pw.run_until(lambda: self.poll(), timeout_s=seconds)


def live_recording(pw: ProtocolWorld) -> tuple[int, Any]:
    pw.client.start_recording(pw.channel, STREAM, SourceLocation.REMOTE)
    publication = pw.client_transport.add_exclusive_publication(pw.channel, STREAM)
    return pw.await_signal(RecordingSignal.START).recording_id, publication


@pytest.mark.parametrize("length", [REPLAY_ALL_AND_FOLLOW, NULL_VALUE])
def test_a_replay_follows_a_live_recording_and_ends_at_its_stop(pw: ProtocolWorld, length: int) -> None:
    recording_id, publication = live_recording(pw)
    sent = pw.publish(publication, 0, 5)
    assert pw.run_until(lambda: pw.client.get_recording_position(recording_id) == sent[-1][1])
    replay = Replay(pw).start(recording_id, 0, length)
    assert replay.until(5) == sent
    replay.idle_for(0.2)
    assert not replay.ended()  # waiting for more
    sent += pw.publish(publication, 5, 10)
    assert replay.until(15) == sent
    sent += pw.publish(publication, 15, 5)
    assert pw.run_until(lambda: pw.client.get_recording_position(recording_id) == sent[-1][1])
    pw.client.stop_recording(pw.channel, STREAM)
    stop = pw.await_signal(RecordingSignal.STOP)
    assert stop.position == sent[-1][1]
    assert replay.wait_end() == stop.position
    assert replay.messages == sent
    assert not pw.archive.replay_sessions


def bounded_replay(pw: ProtocolWorld, recording_id: int, limit_position: int) -> tuple[Replay, Counter]:
    """A replay of the whole recording bounded by a fresh counter set to ``limit_position``."""
    limit = pw.archive_transport.counters_manager.allocate(1001, "replay limit")
    limit.set(limit_position)
    replay = Replay(pw)
    replay.replay_session_id = pw.client.start_bounded_replay(
        recording_id, 0, REPLAY_ALL_AND_FOLLOW, limit.id, pw.replay_channel, REPLAY_STREAM
    )
    return replay, limit


def test_a_bounded_replay_never_passes_its_limit_counter(pw: ProtocolWorld) -> None:
    recording_id, _, sent = pw.record(count=10)
    replay, limit = bounded_replay(pw, recording_id, sent[2][1])
    assert replay.until(3) == sent[:3]
    replay.idle_for(0.2)
    assert replay.messages == sent[:3] and not replay.ended()
    limit.set(sent[6][1])
    assert replay.until(7) == sent[:7]
    replay.idle_for(0.2)
    assert replay.messages == sent[:7]
    limit.set(sent[-1][1])
    assert replay.until(10) == sent
    with pytest.raises(ArchiveRequestError) as missing:
        pw.client.start_bounded_replay(recording_id, 0, 100, 4242, pw.replay_channel, REPLAY_STREAM + 1)
    assert "limit counter" in str(missing.value)
    # a start past the limit is refused
    limit.set(sent[1][1])
    with pytest.raises(ArchiveRequestError) as past:
        pw.client.start_bounded_replay(
            recording_id, sent[4][1], 1024, limit.id, pw.replay_channel, REPLAY_STREAM + 1
        )
    assert past.value.code == ArchiveErrorCode.INVALID_POSITION


def record_lengths(pw: ProtocolWorld, lengths: list[int]) -> tuple[int, list[tuple[bytes, int]]]:
    """Record one message of each length (each one frame) and stop: (recording id, messages with the
    position after each)."""
    recording_id, publication = live_recording(pw)
    sent = [pw.publish(publication, i, 1, length)[0] for i, length in enumerate(lengths)]
    assert pw.run_until(lambda: pw.client.get_recording_position(recording_id) == sent[-1][1])
    pw.client.stop_recording(pw.channel, STREAM)
    pw.await_signal(RecordingSignal.STOP)
    publication.close()
    return recording_id, sent


def test_a_bounded_replay_sends_no_frame_that_ends_past_its_limit(pw: ProtocolWorld) -> None:
    # a limit inside a frame holds that frame back until the limit reaches its end (Aeron sends whole
    # frames that end at or before the limit), however far inside it falls -- under a header's length too
    recording_id, sent = record_lengths(pw, [100, 40, 700, 1000, 10, 300, 1300, 60])
    ends = [position for _, position in sent]
    replay, limit = bounded_replay(pw, recording_id, ends[2] + 8)
    assert replay.until(3) == sent[:3]
    for inside in (ends[2] + 8, ends[2] + 64, ends[3] - 32, ends[3] - 1):
        limit.set(inside)
        replay.idle_for(0.1)
        assert replay.messages == sent[:3], inside
        assert replay.image.position == ends[2] and not replay.ended()
    limit.set(ends[3])
    assert replay.until(4) == sent[:4]
    limit.set(ends[6] - 100)  # several frames at once, the last of them held back
    assert replay.until(6) == sent[:6]
    replay.idle_for(0.1)
    assert replay.messages == sent[:6] and replay.image.position == ends[5]
    limit.set(ends[-1])
    assert replay.until(len(sent)) == sent
    assert len(pw.archive.replay_sessions) == 1  # still following its counter


def test_a_replay_length_that_ends_inside_a_frame_sends_that_frame_whole(pw: ProtocolWorld) -> None:
    # the length is not a limit: a frame that starts before its end goes whole (as Aeron's does), even
    # when the length ends under a header's length into it
    recording_id, sent = record_lengths(pw, [100, 700, 40])
    ends = [position for _, position in sent]
    for length in (ends[0] + 8, ends[0] + 200):
        replay = Replay(pw).start(recording_id, 0, length)
        assert replay.wait_end() == ends[1]
        assert replay.messages == sent[:2]
        replay.subscription.close()  # else it would hold the next replay's image open, never polled


def test_a_recording_truncated_inside_a_frame_replays_up_to_that_frame(pw: ProtocolWorld) -> None:
    # the stop position is a final limit: the frame it cuts (its tail erased by the truncation) is not
    # sent, and the replay ends at its start instead of waiting for ever
    recording_id, sent = record_lengths(pw, [100, 700, 40])
    ends = [position for _, position in sent]
    pw.client.truncate_recording(recording_id, ends[0] + 32)
    replay = Replay(pw).start(recording_id, 0, REPLAY_ALL_AND_STOP)
    assert replay.wait_end() == ends[0]
    assert replay.messages == sent[:1]
    assert pw.run_until(lambda: not pw.archive.replay_sessions)


def test_a_stopped_recording_with_a_hole_below_its_stop_fails_the_replay_rather_than_end_it(
    pw: ProtocolWorld,
) -> None:
    # the second frame's header is gone (zeros: a hole the disk left): the replay sends the first frame,
    # then reports the missing data instead of ending as if the recording ended there
    recording_id, sent = record_lengths(pw, [100, 700, 40])
    ends = [position for _, position in sent]
    segment = pw.archive.ctx.storage.open(f"{recording_id}-0.rec")
    segment.write(ends[0], bytes(32))
    segment.close()
    replay = Replay(pw).start(recording_id, 0, REPLAY_ALL_AND_STOP)
    errors: list[ControlResponse] = []

    def failed() -> bool:
        replay.poll()
        errors.extend(
            m
            for m in responses(pw.client)
            if isinstance(m, ControlResponse) and m.code == ControlResponseCode.ERROR
        )
        return bool(errors)

    assert pw.run_until(failed, timeout_s=5.0)
    expected = f"no frame at position {ends[0]}, below the recording's limit {ends[-1]}"
    assert expected in errors[0].error_message
    assert replay.messages == sent[:1]
    assert pw.run_until(lambda: not pw.archive.replay_sessions)


def test_replays_from_the_middle_and_all_and_stop(pw: ProtocolWorld) -> None:
    recording_id, _, sent = pw.record(count=10)
    middle = Replay(pw).start(recording_id, sent[3][1], sent[7][1] - sent[3][1])
    assert middle.until(4) == sent[4:8]
    assert middle.wait_end() == sent[7][1]
    everything = Replay(pw, REPLAY_STREAM + 1).start(recording_id, NULL_POSITION, REPLAY_ALL_AND_STOP)
    assert everything.until(10) == sent
    assert everything.wait_end() == sent[-1][1]


def test_replay_all_and_stop_of_a_live_recording_stops_at_the_recorded_position(pw: ProtocolWorld) -> None:
    recording_id, publication = live_recording(pw)
    sent = pw.publish(publication, 0, 4)
    assert pw.run_until(lambda: pw.client.get_recording_position(recording_id) == sent[-1][1])
    replay = Replay(pw).start(recording_id, 0, REPLAY_ALL_AND_STOP)
    assert replay.until(4) == sent
    pw.publish(publication, 4, 4)
    assert replay.wait_end() == sent[-1][1]
    assert replay.messages == sent


def test_stop_replay_and_stop_all_replays_end_the_replay_images(pw: ProtocolWorld) -> None:
    recording_id, publication = live_recording(pw)
    sent = pw.publish(publication, 0, 3)
    assert pw.run_until(lambda: pw.client.get_recording_position(recording_id) == sent[-1][1])
    replays = [Replay(pw, REPLAY_STREAM + i).start(recording_id, 0, REPLAY_ALL_AND_FOLLOW) for i in range(4)]
    for replay in replays:
        assert replay.until(3) == sent
    pw.client.stop_replay(replays[0].replay_session_id)
    assert replays[0].wait_end() == sent[-1][1]
    assert not any(r.ended() for r in replays[1:])
    pw.client.stop_all_replays(recording_id + 1)  # another recording's: none of these
    replays[1].idle_for(0.1)
    assert not any(r.ended() for r in replays[1:])
    pw.client.stop_all_replays(recording_id)
    for replay in replays[1:]:
        assert replay.wait_end() == sent[-1][1]
    assert not pw.archive.replay_sessions
    again = Replay(pw, REPLAY_STREAM + 9).start(recording_id, 0, REPLAY_ALL_AND_FOLLOW)
    assert again.until(3) == sent
    pw.client.stop_all_replays()  # every recording
    assert again.wait_end() == sent[-1][1]
    # a replay that is over (or never was): OK all the same, as in Aeron since its response-channel replays
    # (older archives answered UNKNOWN_REPLAY)
    pw.client.stop_replay(again.replay_session_id)


def test_replays_with_a_bad_position_are_refused_with_their_error_codes(pw: ProtocolWorld) -> None:
    initial = 1000
    start = 1024
    channel = extension_channel(
        pw.channel, initial_term_id=initial, position=start, term_length=TERM_LENGTH, mtu=1408
    )
    pw.client.start_recording(pw.channel, STREAM, SourceLocation.REMOTE)
    publication = pw.client_transport.add_exclusive_publication(channel, STREAM)
    recording_id = pw.await_signal(RecordingSignal.START).recording_id
    sent = pw.publish(publication, 0, 4)
    assert pw.run_until(lambda: pw.client.get_recording_position(recording_id) == sent[-1][1])
    pw.client.stop_recording(pw.channel, STREAM)
    stop = pw.await_signal(RecordingSignal.STOP).position
    assert pw.client.get_start_position(recording_id) == start

    def refused(position: int, length: int = 256) -> ArchiveRequestError:
        with pytest.raises(ArchiveRequestError) as error:
            pw.client.start_replay(recording_id, position, length, pw.replay_channel, REPLAY_STREAM)
        return error.value

    unaligned = refused(start + 33)
    assert unaligned.code == ArchiveErrorCode.GENERIC and "FRAME_ALIGNMENT" in str(unaligned)
    assert refused(start - 32).code == ArchiveErrorCode.INVALID_POSITION
    assert refused(0).code == ArchiveErrorCode.INVALID_POSITION
    assert refused(stop).code == ArchiveErrorCode.INVALID_POSITION
    assert refused(stop + 1024).code == ArchiveErrorCode.INVALID_POSITION
    assert refused(start, length=-5).code == ArchiveErrorCode.GENERIC
    empty = pw.archive.catalog.add_recording(
        start_position=0,
        start_timestamp=1,
        initial_term_id=0,
        segment_file_length=256 * 1024,
        term_buffer_length=TERM_LENGTH,
        mtu_length=1408,
        session_id=1,
        stream_id=STREAM,
        stripped_channel=pw.channel,
        original_channel=pw.channel,
        source_identity="",
        stop_position=0,
        stop_timestamp=2,
    )
    with pytest.raises(ArchiveRequestError) as nothing:
        pw.client.start_replay(empty, NULL_POSITION, REPLAY_ALL_AND_STOP, pw.replay_channel, REPLAY_STREAM)
    assert nothing.value.code == ArchiveErrorCode.EMPTY_RECORDING
    with pytest.raises(ArchiveRequestError) as unknown:
        pw.client.start_replay(999, 0, 256, pw.replay_channel, REPLAY_STREAM)
    assert unknown.value.code == ArchiveErrorCode.UNKNOWN_RECORDING
    assert not pw.archive.replay_sessions
    # and the recording replays from its start
    replay = Replay(pw).start(recording_id, start, stop - start)
    assert replay.until(4) == sent


def test_max_concurrent_replays() -> None:
    pw = ProtocolWorld(seed=5, max_concurrent_replays=2)
    try:
        recording_id, publication = live_recording(pw)  # replays that follow it do not end
        sent = pw.publish(publication, 0, 3)
        assert pw.run_until(lambda: pw.client.get_recording_position(recording_id) == sent[-1][1])
        first = Replay(pw).start(recording_id, 0, REPLAY_ALL_AND_FOLLOW)
        Replay(pw, REPLAY_STREAM + 1).start(recording_id, 0, REPLAY_ALL_AND_FOLLOW)
        with pytest.raises(ArchiveRequestError) as full:
            Replay(pw, REPLAY_STREAM + 2).start(recording_id, 0, REPLAY_ALL_AND_FOLLOW)
        assert full.value.code == ArchiveErrorCode.MAX_REPLAYS
        assert first.until(3) == sent
        pw.client.stop_replay(first.replay_session_id)
        assert first.wait_end() == sent[-1][1]
        assert Replay(pw, REPLAY_STREAM + 2).start(recording_id, 0, REPLAY_ALL_AND_FOLLOW).until(3) == sent
    finally:
        pw.close()


def test_a_replay_whose_subscriber_never_connects_fails_after_the_connect_timeout(pw: ProtocolWorld) -> None:
    recording_id, _, _ = pw.record(count=3)
    nowhere = f"aeron:udp?endpoint={pw.client_host}:9999"
    started_ns = pw.world.clock.nano_time()
    replay_session_id = pw.client.start_replay(recording_id, 0, REPLAY_ALL_AND_STOP, nowhere, REPLAY_STREAM)
    (replay,) = pw.archive.replay_sessions.values()
    assert replay.replay_session_id == replay_session_id
    timeout_ns = pw.archive.ctx.connect_timeout_ns
    errors: list[ControlResponse] = []

    def failed() -> bool:
        errors.extend(
            m
            for m in responses(pw.client)
            if isinstance(m, ControlResponse) and m.code == ControlResponseCode.ERROR
        )
        return bool(errors)

    assert not pw.run_until(failed, timeout_s=(timeout_ns - 20_000_000) / NS_PER_S)
    assert pw.archive.replay_sessions
    assert pw.run_until(failed, timeout_s=0.1)
    assert pw.world.clock.nano_time() - started_ns >= timeout_ns
    (error,) = errors
    assert error.correlation_id == replay.correlation_id
    assert "no connection established for replay" in error.error_message
    assert not pw.archive.replay_sessions
    assert replay.publication.is_closed
    assert pw.archive.counters.replay_errors == 1


# ---------------------------------------------------------------------------------------------- signal order


class Conversation:
    """Requests sent byte for byte on the client's session, and everything that comes back, in order."""

    def __init__(self, pw: ProtocolWorld) -> None:
        self.pw = pw
        self.client = pw.client
        self.correlation_id = 100
        self.log: list[
            tuple[str, int, int, int]
        ] = []  # (what, correlation id, relevant / recording id, position)

    def send(self, encoder: Any, **fields: Any) -> int:
        self.correlation_id += 1
        assert self.client.proxy.send(
            encoder,
            control_session_id=self.client.control_session_id,
            correlation_id=self.correlation_id,
            **fields,
        )
        return self.correlation_id

    def poll(self) -> None:
        for message in responses(self.client):
            if isinstance(message, ControlResponse):
                if message.correlation_id != NULL_VALUE:  # not the liveness probe
                    self.log.append(
                        (
                            ControlResponseCode(message.code).name,
                            message.correlation_id,
                            message.relevant_id,
                            NULL_VALUE,
                        )
                    )
            elif isinstance(message, RecordingSignalEvent):
                self.log.append(
                    (
                        RecordingSignal(message.signal).name,
                        message.correlation_id,
                        message.recording_id,
                        message.position,
                    )
                )

    def until(self, count: int) -> list[tuple[str, int, int, int]]:
        assert self.pw.run_until(lambda: self.poll() or len(self.log) >= count), self.log
        self.pw.run_for(0.05)
        self.poll()
        log, self.log = self.log, []
        return log


def test_responses_come_before_the_signals_they_cause_as_in_the_java_capture(pw: ProtocolWorld) -> None:
    bystander_host = pw.world.host()
    bystander = pw.connect(pw.world.transport(bystander_host), bystander_host)
    talk = Conversation(pw)
    start = talk.send(
        codecs.StartRecordingRequestEncoder,
        stream_id=STREAM,
        source_location=SourceLocation.REMOTE,
        channel=pw.channel,
    )
    ((ok, correlation_id, subscription_id, _),) = talk.until(1)
    assert (ok, correlation_id) == ("OK", start)
    publication = pw.client_transport.add_exclusive_publication(pw.channel, STREAM)
    ((signal, correlation_id, recording_id, position),) = talk.until(1)
    assert (signal, correlation_id, position) == ("START", start, 0)
    sent = pw.publish(publication, 0, 5)
    end = sent[-1][1]
    assert pw.run_until(lambda: pw.archive.recording_sessions[recording_id].recorded_position == end)

    stop = talk.send(codecs.StopRecordingSubscriptionRequestEncoder, subscription_id=subscription_id)
    assert talk.until(2) == [("OK", stop, 0, NULL_VALUE), ("STOP", start, recording_id, end)]
    publication.close()
    # past its linger (see test_an_extension_is_not_offered_the_image_of_a_lingering_publication)
    pw.run_for(6.0)

    extend = talk.send(
        codecs.ExtendRecordingRequestEncoder,
        recording_id=recording_id,
        stream_id=STREAM,
        source_location=SourceLocation.REMOTE,
        channel=pw.channel,
    )
    ((ok, correlation_id, extend_subscription, _),) = talk.until(1)
    assert (ok, correlation_id) == ("OK", extend)
    extension = pw.client_transport.add_exclusive_publication(
        extension_channel(
            pw.channel,
            initial_term_id=publication.initial_term_id,
            position=end,
            term_length=TERM_LENGTH,
            mtu=publication.mtu,
        ),
        STREAM,
    )
    assert talk.until(1) == [("EXTEND", extend, recording_id, end)]
    more = pw.publish(extension, 5, 5)
    assert pw.run_until(lambda: pw.archive.recording_sessions[recording_id].recorded_position == more[-1][1])
    stop = talk.send(codecs.StopRecordingRequestEncoder, stream_id=STREAM, channel=pw.channel)
    assert talk.until(2) == [("OK", stop, 0, NULL_VALUE), ("STOP", extend, recording_id, more[-1][1])]
    assert extend_subscription not in pw.archive.recording_subscriptions

    truncate = talk.send(codecs.TruncateRecordingRequestEncoder, recording_id=recording_id, position=end)
    assert talk.until(2) == [("OK", truncate, 0, NULL_VALUE), ("DELETE", truncate, recording_id, NULL_VALUE)]
    purge = talk.send(codecs.PurgeRecordingRequestEncoder, recording_id=recording_id)
    assert talk.until(2) == [("OK", purge, 1, NULL_VALUE), ("DELETE", purge, recording_id, NULL_VALUE)]
    descriptor = pw.archive.catalog.recording(recording_id)
    assert descriptor is not None and descriptor.state == RecordingState.DELETED
    # the signals went to the session that asked, and to no other
    assert [m for m in responses(bystander) if m.correlation_id != NULL_VALUE] == []


def test_stop_by_identity_answers_before_the_stop_signal(pw: ProtocolWorld) -> None:
    talk = Conversation(pw)
    start = talk.send(
        codecs.StartRecordingRequestEncoder,
        stream_id=STREAM,
        source_location=SourceLocation.REMOTE,
        channel=pw.channel,
    )
    talk.until(1)
    publication = pw.client_transport.add_exclusive_publication(pw.channel, STREAM)
    ((_, _, recording_id, _),) = talk.until(1)
    sent = pw.publish(publication, 0, 2)
    assert pw.run_until(lambda: pw.archive.recording_sessions[recording_id].recorded_position == sent[-1][1])
    stop = talk.send(codecs.StopRecordingByIdentityRequestEncoder, recording_id=recording_id)
    assert talk.until(2) == [("OK", stop, 1, NULL_VALUE), ("STOP", start, recording_id, sent[-1][1])]


# ------------------------------------------------------------------------------------------- storage failure


@pytest.mark.parametrize("error_number", [errno.EIO, errno.ENOSPC])
def test_a_storage_failure_stops_that_recording_and_nothing_else(
    pw: ProtocolWorld, error_number: int
) -> None:
    disk = pw.world.disk
    assert disk is not None
    client = pw.client
    client.start_recording(pw.channel, STREAM, SourceLocation.REMOTE)
    client.start_recording(pw.channel, STREAM + 1, SourceLocation.REMOTE)
    failing = pw.client_transport.add_exclusive_publication(pw.channel, STREAM)
    healthy = pw.client_transport.add_exclusive_publication(pw.channel, STREAM + 1)
    starts = {
        e.recording_id
        for e in (pw.await_signal(RecordingSignal.START, 1), pw.await_signal(RecordingSignal.START, 2))
    }
    by_stream = {pw.archive.catalog.recording(r).stream_id: r for r in starts}  # type: ignore[union-attr]
    a, b = by_stream[STREAM], by_stream[STREAM + 1]
    sent_a = pw.publish(failing, 0, 5)
    sent_b = pw.publish(healthy, 0, 5)
    assert pw.run_until(
        lambda: (
            pw.archive.recording_sessions[a].recorded_position == sent_a[-1][1]
            and pw.archive.recording_sessions[b].recorded_position == sent_b[-1][1]
        )
    )
    written = sent_a[-1][1]
    disk.fail_next("write", error_number, name=f"{a}-0.rec")
    start_correlation_id = pw.archive.recording_sessions[a].correlation_id
    pw.publish(failing, 5, 5)
    seen: list[Any] = []

    def stopped() -> bool:
        seen.extend(m for m in responses(client) if m.correlation_id != NULL_VALUE)
        return any(isinstance(m, RecordingSignalEvent) and m.signal == RecordingSignal.STOP for m in seen)

    assert pw.run_until(stopped)
    error, stop = seen
    assert isinstance(error, ControlResponse) and error.code == ControlResponseCode.ERROR, seen
    assert error.correlation_id == start_correlation_id
    # a full disk is Aeron's STORAGE_SPACE; any other storage failure is GENERIC
    expected_code = (
        ArchiveErrorCode.STORAGE_SPACE if error_number == errno.ENOSPC else ArchiveErrorCode.GENERIC
    )
    assert error.relevant_id == expected_code
    assert f"{a}-0.rec" in error.error_message and errno.errorcode[error_number] in error.error_message, error
    assert (stop.recording_id, stop.position) == (a, written)
    assert pw.archive.counters.recording_errors >= 1
    assert a not in pw.archive.recording_sessions
    descriptor = pw.archive.catalog.recording(a)
    assert descriptor is not None and descriptor.stop_position == written
    # the other recording goes on, and the archive answers
    sent_b += pw.publish(healthy, 5, 5)
    assert pw.run_until(lambda: client.get_recording_position(b) == sent_b[-1][1])
    assert client.get_stop_position(a) == written
    pw.replay_all(a, sent_a)
    stops = len(pw.signals.of(RecordingSignal.STOP))  # the one above was read by hand, not counted here
    client.stop_recording(pw.channel, STREAM + 1)
    assert pw.await_signal(RecordingSignal.STOP, stops + 1).position == sent_b[-1][1]
    pw.replay_all(b, sent_b)


def test_an_extension_is_not_offered_the_image_of_a_lingering_publication(pw: ProtocolWorld) -> None:
    """The recorded publication, closed, still lingers when the extend subscription is added: it must not
    give that subscription an image (a closed publication takes no new receivers), else the archive
    would take it for a second image of the extension and answer the extend request with an error."""
    recording_id, _, sent = pw.record(count=5)  # closes its publication just after the STOP
    end = sent[-1][1]
    publication_initial_term_id = pw.archive.catalog.recording(recording_id).initial_term_id  # type: ignore[union-attr]
    pw.client.extend_recording(recording_id, pw.channel, STREAM, SourceLocation.REMOTE)
    extension = pw.client_transport.add_exclusive_publication(
        extension_channel(
            pw.channel,
            initial_term_id=publication_initial_term_id,
            position=end,
            term_length=TERM_LENGTH,
            mtu=1408,
        ),
        STREAM,
    )
    assert pw.await_signal(RecordingSignal.EXTEND).position == end
    pw.run_for(0.5)
    assert [
        m
        for m in responses(pw.client)
        if isinstance(m, ControlResponse) and m.code == ControlResponseCode.ERROR
    ] == []
    more = pw.publish(extension, 5, 3)
    assert pw.run_until(lambda: pw.client.get_recording_position(recording_id) == more[-1][1])


@pytest.mark.parametrize(("operation", "error_number"), [("create", errno.ENOSPC), ("truncate", errno.EIO)])
def test_a_segment_file_that_cannot_be_created_fails_that_recording_only(
    pw: ProtocolWorld, operation: Any, error_number: int
) -> None:
    """As with Aeron, whose recorder opens the file after the conductor sent START: START, then the ERROR
    and STOP at the start position; the recording stays in the catalog, empty and stopped."""
    disk = pw.world.disk
    assert disk is not None
    other, _, other_sent = pw.record(stream_id=STREAM + 1, count=3)  # a healthy recording before
    talk = Conversation(pw)
    start = talk.send(
        codecs.StartRecordingRequestEncoder,
        stream_id=STREAM,
        source_location=SourceLocation.REMOTE,
        channel=pw.channel,
    )
    assert talk.until(1)[0][:2] == ("OK", start)
    disk.fail_next(operation, error_number, name=f"{other + 1}-0.rec")
    publication = pw.client_transport.add_exclusive_publication(pw.channel, STREAM)
    log = talk.until(3)
    assert [(what, correlation_id) for what, correlation_id, _, _ in log] == [
        ("START", start),
        ("ERROR", start),
        ("STOP", start),
    ]
    recording_id = log[0][2]
    assert log[2][2:] == (recording_id, 0)
    descriptor = pw.archive.catalog.recording(recording_id)
    assert descriptor is not None and (descriptor.start_position, descriptor.stop_position) == (0, 0)
    assert pw.archive.counters.recording_errors == 1
    assert recording_id not in pw.archive.recording_sessions
    # the archive goes on: a recording of another stream, the old one replayed
    publication.close()
    recording, _, sent = pw.record(stream_id=STREAM + 2, count=3)
    pw.replay_all(recording, sent)
    pw.replay_all(other, other_sent)


def test_an_extension_whose_segment_file_cannot_be_read_stops_where_it_was(pw: ProtocolWorld) -> None:
    disk = pw.world.disk
    assert disk is not None
    recording_id, _, sent = pw.record(count=4)
    end = sent[-1][1]
    before = pw.archive.catalog.recording(recording_id)
    pw.run_for(6.0)  # the recorded publication's linger is over
    talk = Conversation(pw)
    extend = talk.send(
        codecs.ExtendRecordingRequestEncoder,
        recording_id=recording_id,
        stream_id=STREAM,
        source_location=SourceLocation.REMOTE,
        channel=pw.channel,
    )
    assert talk.until(1)[0][:2] == ("OK", extend)
    disk.fail_next(
        "read", errno.EIO, name=f"{recording_id}-0.rec"
    )  # the check that the file is clean after the stop
    assert before is not None
    pw.client_transport.add_exclusive_publication(
        extension_channel(
            pw.channel,
            initial_term_id=before.initial_term_id,
            position=end,
            term_length=TERM_LENGTH,
            mtu=1408,
        ),
        STREAM,
    )
    log = talk.until(3)
    assert [(what, correlation_id, position) for what, correlation_id, _, position in log] == [
        ("EXTEND", extend, end),
        ("ERROR", extend, NULL_VALUE),
        ("STOP", extend, end),
    ]
    after = pw.archive.catalog.recording(recording_id)
    assert after is not None and after.stop_position == end
    pw.replay_all(recording_id, sent)


def test_truncating_a_recording_with_an_active_replay_is_refused(pw: ProtocolWorld) -> None:
    """As Aeron's archive does (which is why Aeron Cluster calls stopAllReplays before it truncates)."""
    recording_id, _, sent = pw.record(count=6)
    replay, limit = bounded_replay(pw, recording_id, sent[3][1])  # held open at the limit
    assert replay.until(4) == sent[:4]
    assert pw.archive.replay_sessions
    with pytest.raises(ArchiveRequestError) as busy:
        pw.client.truncate_recording(recording_id, sent[2][1])
    assert busy.value.code == ArchiveErrorCode.ACTIVE_RECORDING
    assert "active replay" in str(busy.value)
    assert pw.client.get_stop_position(recording_id) == sent[-1][1]
    assert not replay.ended()
    limit.set(sent[-1][1])
    assert replay.until(6) == sent  # the replay was left alone
    pw.client.stop_all_replays(recording_id)
    assert replay.wait_end() == sent[-1][1]
    assert pw.run_until(lambda: not pw.archive.replay_sessions)
    assert pw.client.truncate_recording(recording_id, sent[2][1]) == 0
    assert pw.client.get_stop_position(recording_id) == sent[2][1]
    pw.replay_all(recording_id, sent[:3])


def test_a_client_that_stops_reading_is_dropped_when_its_queue_is_full(pw: ProtocolWorld) -> None:
    add_stopped(pw, 100)
    host = pw.world.host()
    lazy = pw.connect(pw.world.transport(host), host)  # sends listings and never reads the answers
    session = pw.archive.control_sessions[lazy.control_session_id]
    for correlation_id in range(1000, 1100):
        assert lazy.proxy.send(
            codecs.ListRecordingsRequestEncoder,
            control_session_id=lazy.control_session_id,
            correlation_id=correlation_id,
            from_recording_id=0,
            record_count=100,
        )
        pw.run_for(0.01)
        if session.is_done:
            break
    assert session.is_done, session.queued_messages
    assert session.reason == f"the client is not reading: {MAX_QUEUED_MESSAGES} messages queued"
    assert lazy.control_session_id not in pw.archive.control_sessions
    assert [d.recording_id for d in pw.client.list_recordings(0, 100)] == list(range(100))


def test_connects_past_the_maximum_of_control_sessions_are_refused() -> None:
    pw = ProtocolWorld(seed=5, max_control_sessions=2)
    try:
        host = pw.world.host()
        transport = pw.world.transport(host)
        second = pw.connect(transport, host)
        with pytest.raises(ArchiveTimeoutError):
            pw.connect(transport, host, message_timeout_ns=NS_PER_S)
        assert pw.archive.counters.refused_sessions == 1
        second.close()
        assert pw.run_until(lambda: len(pw.archive.control_sessions) == 1)
        assert pw.connect(transport, host).archive_id == pw.archive.archive_id
    finally:
        pw.close()


def test_a_second_image_for_an_extension_in_progress_gets_active_recording(pw: ProtocolWorld) -> None:
    """Aeron answers a second image of an extend subscription, while the first is recording, with
    ACTIVE_RECORDING ("cannot extend active recording"); the first goes on."""
    recording_id, _, sent = pw.record(count=3)
    pw.run_for(6.0)  # the recorded publication's linger is over
    end = sent[-1][1]
    descriptor = pw.archive.catalog.recording(recording_id)
    assert descriptor is not None
    channel = extension_channel(
        pw.channel,
        initial_term_id=descriptor.initial_term_id,
        position=end,
        term_length=TERM_LENGTH,
        mtu=1408,
    )
    talk = Conversation(pw)
    extend = talk.send(
        codecs.ExtendRecordingRequestEncoder,
        recording_id=recording_id,
        stream_id=STREAM,
        source_location=SourceLocation.REMOTE,
        channel=pw.channel,
    )
    assert talk.until(1)[0][:2] == ("OK", extend)
    first = pw.client_transport.add_exclusive_publication(channel, STREAM)
    assert talk.until(1) == [("EXTEND", extend, recording_id, end)]
    pw.client_transport.add_exclusive_publication(channel, STREAM)  # another session, the same stream
    assert talk.until(1) == [("ERROR", extend, ArchiveErrorCode.ACTIVE_RECORDING, NULL_VALUE)]
    more = pw.publish(first, 3, 3)
    assert pw.run_until(lambda: pw.client.get_recording_position(recording_id) == more[-1][1])
