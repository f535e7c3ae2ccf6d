"""Record, replay, extend, truncate, purge, list and replicate through the control protocol -- over the
simulated network and disk, over real UDP on 127.0.0.1 with real files, and over IPC.

A client publishes messages of the lengths of the Java reference run (32, 1000 and 5000 bytes, the long
ones fragmented at the MTU) and remembers where each ended; every replay must give back the same bytes at
the same positions."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.archive_world import TERM_LENGTH, World

from cluster.archive.archive import Archive
from cluster.archive.client import ArchiveClient, ArchiveRequestError, RecordingSignalEvent
from cluster.archive.protocol import NULL_POSITION, NULL_VALUE, ArchiveErrorCode
from cluster.transport.logbuffer import FragmentAssembler, Header
from generated.aeron_archive_codecs import RecordingSignal, SourceLocation

STREAM = 1001
REPLAY_STREAM = 1010
LENGTHS = (32, 1000, 5000)


def message(i: int) -> bytes:
    length = LENGTHS[i % 3]
    return bytes((i + j) % 251 for j in range(length))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Signals:
    def __init__(self) -> None:
        self.events: list[RecordingSignalEvent] = []

    def __call__(self, event: RecordingSignalEvent) -> None:
        self.events.append(event)

    def of(self, signal: RecordingSignal) -> list[RecordingSignalEvent]:
        return [event for event in self.events if event.signal == signal]


class Collector:
    def __init__(self) -> None:
        self.messages: list[tuple[bytes, int]] = []
        self.assembler = FragmentAssembler(self._on_message)

    def _on_message(self, payload: memoryview, header: Header) -> None:
        self.messages.append((bytes(payload), header.position()))


class Setup:
    def __init__(self, kind: str, tmp_path: Path, seed: int = 7) -> None:
        self.world = World("sim" if kind == "sim" else "udp", seed=seed, tmp_path=tmp_path)
        self.kind = kind
        world = self.world
        self.archive_host = world.host()
        self.client_host = world.host()
        if kind == "ipc":
            self.archive_transport = world.transport(self.archive_host)
            self.client_transport = self.archive_transport
            self.archive = world.archive(self.archive_transport, "archive-a")
            control = "aeron:ipc?term-length=64k"
            self.channel = "aeron:ipc"
            self.location = SourceLocation.LOCAL
            self.replay_channel = "aeron:ipc"
        else:
            port = 8010 if kind == "sim" else free_port()
            self.archive_transport = world.transport(self.archive_host)
            self.client_transport = world.transport(self.client_host)
            control = f"aeron:udp?endpoint={self.archive_host}:{port}"
            self.archive = world.archive(self.archive_transport, "archive-a", control_channel=control)
            record_port = 8020 if kind == "sim" else free_port()
            replay_port = 8030 if kind == "sim" else free_port()
            self.channel = f"aeron:udp?endpoint={self.archive_host}:{record_port}"
            self.location = SourceLocation.REMOTE
            self.replay_channel = f"aeron:udp?endpoint={self.client_host}:{replay_port}"
        self.control = control
        self.signals = Signals()
        self.client = world.client(
            self.client_transport, control, self.client_host, on_recording_signal=self.signals
        )
        self.published: list[tuple[bytes, int]] = []

    def publish(self, publication: object, first: int, count: int) -> None:
        for i in range(first, first + count):
            payload = message(i)
            while True:
                result = publication.offer(payload)  # type: ignore[attr-defined]
                if result > 0:
                    self.published.append((payload, result))
                    break
                self.world.step()

    def await_signal(self, signal: RecordingSignal, count: int = 1) -> RecordingSignalEvent:
        assert self.world.run_until(
            lambda: (self.client.poll_for_recording_signals() >= 0) and len(self.signals.of(signal)) >= count
        ), f"no {signal.name} signal; signals so far: {self.signals.events}"
        return self.signals.of(signal)[count - 1]

    def replay(
        self,
        client: ArchiveClient,
        recording_id: int,
        position: int,
        length: int,
        expected: list[tuple[bytes, int]],
    ) -> None:
        subscription = self.client_transport.add_subscription(self.replay_channel, REPLAY_STREAM)
        replay_session_id = client.start_replay(
            recording_id, position, length, self.replay_channel, REPLAY_STREAM
        )
        image_session_id = ((replay_session_id & 0xFFFF_FFFF) + 0x8000_0000) % (1 << 32) - 0x8000_0000
        collector = Collector()

        def poll() -> bool:
            image = subscription.image_by_session_id(image_session_id)
            if image is not None:
                image.poll(collector.assembler.on_fragment, 64)
            return len(collector.messages) >= len(expected)

        assert self.world.run_until(poll, timeout_s=30), (
            f"replay gave {len(collector.messages)} of {len(expected)} messages"
        )
        assert collector.messages == expected
        subscription.close()

    def record_stopped(self, count: int) -> tuple[int, int]:
        """Record ``count`` messages on STREAM and stop: the recording id and its stop position."""
        client = self.client
        subscription_id = client.start_recording(self.channel, STREAM, self.location)
        publication = self.client_transport.add_exclusive_publication(self.channel, STREAM)
        recording_id = self.await_signal(RecordingSignal.START).recording_id
        self.publish(publication, 0, count)
        end = self.published[-1][1]
        assert self.world.run_until(lambda: client.get_recording_position(recording_id) == end)
        client.stop_recording_subscription(subscription_id)
        self.await_signal(RecordingSignal.STOP)
        return recording_id, end

    def second_archive(self, port: int) -> tuple[Archive, ArchiveClient, Signals, str]:
        """Archive B on a host of its own, and a client of it (from the client's transport)."""
        world = self.world
        host = world.host()
        control = f"aeron:udp?endpoint={host}:{port if self.kind == 'sim' else free_port()}"
        archive = world.archive(
            world.transport(host),
            "archive-b",
            control_channel=control,
            replication_channel=f"aeron:udp?endpoint={host}:0",
        )
        signals = Signals()
        client = world.client(self.client_transport, control, self.client_host, on_recording_signal=signals)
        return archive, client, signals, host

    def close(self) -> None:
        self.client.close()
        self.world.close()


@pytest.fixture(params=["sim", "udp", "ipc"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    value = Setup(request.param, tmp_path)
    try:
        yield value
    finally:
        value.close()


def test_record_replay_extend_truncate_purge_and_list(setup: Setup) -> None:
    client = setup.client
    transport = setup.client_transport
    assert client.archive_id == setup.archive.archive_id

    subscription_id = client.start_recording(setup.channel, STREAM, setup.location)
    publication = transport.add_exclusive_publication(setup.channel, STREAM)
    start = setup.await_signal(RecordingSignal.START)
    recording_id = start.recording_id
    assert (start.subscription_id, start.position) == (subscription_id, 0)
    setup.publish(publication, 0, 60)
    end = setup.published[-1][1]
    assert setup.world.run_until(lambda: client.get_recording_position(recording_id) == end)
    client.stop_recording_subscription(subscription_id)
    stop = setup.await_signal(RecordingSignal.STOP)
    assert (stop.recording_id, stop.position) == (recording_id, end)
    assert client.get_recording_position(recording_id) == NULL_POSITION
    assert client.get_stop_position(recording_id) == end
    assert client.get_max_recorded_position(recording_id) == end
    assert client.get_start_position(recording_id) == 0

    descriptor = client.list_recording(recording_id)
    assert descriptor is not None
    assert (descriptor.start_position, descriptor.stop_position) == (0, end)
    assert descriptor.term_buffer_length == TERM_LENGTH
    assert descriptor.session_id == publication.session_id
    assert descriptor.initial_term_id == publication.initial_term_id
    assert descriptor.stream_id == STREAM
    assert descriptor.original_channel == setup.channel

    setup.replay(client, recording_id, 0, end, list(setup.published))
    setup.replay(
        client, recording_id, setup.published[29][1], end - setup.published[29][1], setup.published[30:]
    )

    # extend with a publication that continues the stream at the stop position
    publication.close()
    shift = TERM_LENGTH.bit_length() - 1
    separator = "|" if "?" in setup.channel else "?"
    extend_channel = (
        f"{setup.channel}{separator}init-term-id={publication.initial_term_id}"
        f"|term-id={publication.initial_term_id + (end >> shift)}"
        f"|term-offset={end & (TERM_LENGTH - 1)}|term-length={TERM_LENGTH}|mtu={publication.mtu}"
    )
    extend_subscription = client.extend_recording(recording_id, setup.channel, STREAM, setup.location)
    extension = transport.add_exclusive_publication(extend_channel, STREAM)
    extend = setup.await_signal(RecordingSignal.EXTEND)
    assert (extend.recording_id, extend.subscription_id, extend.position) == (
        recording_id,
        extend_subscription,
        end,
    )
    setup.publish(extension, 60, 30)
    extended_end = setup.published[-1][1]
    assert setup.world.run_until(lambda: client.get_recording_position(recording_id) == extended_end)
    client.stop_recording(setup.channel, STREAM)
    assert setup.await_signal(RecordingSignal.STOP, 2).position == extended_end
    listed = client.list_recording(recording_id)
    assert listed is not None and listed.stop_position == extended_end
    assert listed.session_id == extension.session_id
    setup.replay(client, recording_id, 0, extended_end, list(setup.published))

    # truncate back to the first stop (no replay may be running: stop them first, as Aeron Cluster does)
    client.stop_all_replays(recording_id)
    with pytest.raises(ArchiveRequestError) as bad:
        client.truncate_recording(recording_id, end + 1)
    assert bad.value.code == ArchiveErrorCode.INVALID_POSITION
    client.truncate_recording(recording_id, end)
    assert setup.await_signal(RecordingSignal.DELETE).recording_id == recording_id
    assert client.get_stop_position(recording_id) == end
    setup.replay(client, recording_id, 0, end, setup.published[:60])

    # a second recording, then purge it: the listing ends at it
    other_stream = STREAM + 1
    second_subscription = client.start_recording(setup.channel, other_stream, setup.location)
    second = transport.add_exclusive_publication(setup.channel, other_stream)
    second_id = setup.await_signal(RecordingSignal.START, 2).recording_id
    assert second_id == recording_id + 1
    setup.publish(second, 0, 5)
    assert setup.world.run_until(lambda: client.get_recording_position(second_id) == second.position)
    client.stop_recording_subscription(second_subscription)
    setup.await_signal(RecordingSignal.STOP, 3)
    assert [d.recording_id for d in client.list_recordings(0, 100)] == [recording_id, second_id]
    client.purge_recording(second_id)
    assert setup.await_signal(RecordingSignal.DELETE, 2).recording_id == second_id
    assert [d.recording_id for d in client.list_recordings(0, 100)] == [recording_id]
    assert client.list_recording(second_id) is None
    with pytest.raises(ArchiveRequestError) as unknown:
        client.get_stop_position(second_id)
    assert unknown.value.code == ArchiveErrorCode.UNKNOWN_RECORDING
    assert client.find_last_matching_recording(0, "", STREAM, extension.session_id) == recording_id
    assert client.find_last_matching_recording(0, "", STREAM, 12345) == NULL_VALUE


def test_requests_that_break_the_rules_get_errors(setup: Setup) -> None:
    client = setup.client
    with pytest.raises(ArchiveRequestError) as error:
        client.start_replay(99, 0, 100, setup.replay_channel, REPLAY_STREAM)
    assert error.value.code == ArchiveErrorCode.UNKNOWN_RECORDING
    client.start_recording(setup.channel, STREAM, setup.location)
    with pytest.raises(ArchiveRequestError) as duplicate:
        client.start_recording(setup.channel, STREAM, setup.location)
    assert duplicate.value.code == ArchiveErrorCode.ACTIVE_SUBSCRIPTION
    with pytest.raises(ArchiveRequestError) as missing:
        client.stop_recording_subscription(123456789)
    assert missing.value.code == ArchiveErrorCode.UNKNOWN_SUBSCRIPTION
    with pytest.raises(ArchiveRequestError):
        client.stop_replication(42)
    assert client.list_recordings(0, 10) == []


@pytest.mark.parametrize("kind", ["sim", "udp"])
def test_replicate_a_stopped_recording_to_another_archive(kind: str, tmp_path: Path) -> None:
    setup = Setup(kind, tmp_path)
    try:
        world = setup.world
        client = setup.client
        recording_id, end = setup.record_stopped(40)

        archive_b, client_b, b_signals, _ = setup.second_archive(8110)
        replication_id = client_b.replicate(recording_id, NULL_VALUE, 10, setup.control)

        def done() -> bool:
            client_b.poll_for_recording_signals()
            return any(e.signal == RecordingSignal.STOP for e in b_signals.events)

        assert world.run_until(done, timeout_s=30), b_signals.events
        names = [RecordingSignal(e.signal).name for e in b_signals.events]
        assert names == ["REPLICATE", "EXTEND", "SYNC", "REPLICATE_END", "STOP"]
        assert {e.correlation_id for e in b_signals.events} == {replication_id}
        dst = b_signals.events[0].recording_id
        copied = client_b.list_recording(dst)
        source = client.list_recording(recording_id)
        assert copied is not None and source is not None
        assert (copied.start_position, copied.stop_position) == (0, end)
        for field in ("initial_term_id", "term_buffer_length", "mtu_length", "stream_id", "start_timestamp"):
            assert getattr(copied, field) == getattr(source, field), field
        assert archive_b.catalog.recording(dst) is not None
        setup.replay(client_b, dst, 0, end, list(setup.published))
        client_b.close()
    finally:
        setup.close()


@pytest.mark.parametrize("kind", ["sim", "udp"])
def test_replicate_and_merge_with_the_live_stream(kind: str, tmp_path: Path) -> None:
    """Archive A records a live multi-destination stream; archive B replicates that recording while it
    is still being written, then merges with the live stream sent to its live destination: its copy
    holds every message, before and after the merge, at the positions they were published at.

    The live publication uses min flow control, so it never runs more than a receiver window ahead of
    archive B; with max flow control a receiver that falls that far behind loses the stream for good,
    here as in Aeron."""
    setup = Setup(kind, tmp_path)
    try:
        world = setup.world
        client = setup.client
        a_port = int(setup.channel.rsplit(":", 1)[1])
        control_port = 8040 if kind == "sim" else free_port()
        live_channel = f"aeron:udp?control={setup.client_host}:{control_port}|control-mode=manual|fc=min"
        publication = setup.client_transport.add_exclusive_publication(live_channel, STREAM)
        setup.client_transport.add_destination(
            publication, f"aeron:udp?endpoint={setup.archive_host}:{a_port}"
        )
        client.start_recording(setup.channel, STREAM, setup.location)
        recording_id = setup.await_signal(RecordingSignal.START).recording_id
        setup.publish(publication, 0, 30)

        archive_b, client_b, b_signals, b_host = setup.second_archive(8110)
        live_port = 8120 if kind == "sim" else free_port()
        live_destination = f"aeron:udp?endpoint={b_host}:{live_port}"
        replication_id = client_b.replicate(
            recording_id, NULL_VALUE, 10, setup.control, live_destination=live_destination
        )
        setup.client_transport.add_destination(publication, live_destination)

        next_message = 30

        def merged() -> bool:
            nonlocal next_message
            client_b.poll_for_recording_signals()
            if next_message < 400 and publication.offer(message(next_message)) > 0:
                setup.published.append((message(next_message), publication.position))
                next_message += 1
            return any(e.signal == RecordingSignal.MERGE for e in b_signals.events)

        assert world.run_until(merged, timeout_s=30), b_signals.events
        # one multi-destination subscription, left with the live destination alone
        (entry,) = archive_b.recording_subscriptions.values()
        receive = entry.subscription._endpoint  # type: ignore[attr-defined]
        assert receive.is_mds and [d.socket.local_address[1] for d in receive.destinations] == [live_port]
        setup.publish(publication, next_message, 20)
        end = publication.position
        dst = b_signals.events[0].recording_id
        assert world.run_until(lambda: client_b.get_recording_position(dst) == end, timeout_s=30)
        names = [RecordingSignal(e.signal).name for e in b_signals.events]
        assert names == ["REPLICATE", "EXTEND", "MERGE", "REPLICATE_END"]
        assert {e.correlation_id for e in b_signals.events} == {replication_id}
        merge = b_signals.events[2]
        assert 0 < merge.position <= end
        setup.replay(client_b, dst, 0, end, list(setup.published))
        client_b.close()
    finally:
        setup.close()


def test_a_merge_with_the_live_stream_needs_an_active_source_recording(tmp_path: Path) -> None:
    """As Aeron's replication: the source's recorded position is what the merge waits for, and a stopped
    recording has none."""
    setup = Setup("sim", tmp_path)
    try:
        recording_id, _ = setup.record_stopped(10)
        _, client_b, _, b_host = setup.second_archive(8110)
        replication_id = client_b.replicate(
            recording_id, NULL_VALUE, 10, setup.control, live_destination=f"aeron:udp?endpoint={b_host}:8120"
        )
        errors = []

        def failed() -> bool:
            error = client_b.poll_for_error_response()
            if error is not None:
                errors.append(error)
            return bool(errors)

        assert setup.world.run_until(failed, timeout_s=30)
        assert errors[0].correlation_id == replication_id
        assert "without an active source recording" in errors[0].error_message
        client_b.close()
    finally:
        setup.close()


def test_replicate_to_a_position_then_extend_the_copy_to_the_end(tmp_path: Path) -> None:
    """A replication that stops at a position, then a second one into the same destination recording
    (``dst_recording_id``), which continues it from where it stopped to the source's end."""
    setup = Setup("sim", tmp_path)
    try:
        world = setup.world
        recording_id, end = setup.record_stopped(40)

        _, client_b, b_signals, _ = setup.second_archive(8110)
        middle = setup.published[19][1]

        def stopped(count: int) -> bool:
            client_b.poll_for_recording_signals()
            return len(b_signals.of(RecordingSignal.STOP)) >= count

        client_b.replicate(recording_id, NULL_VALUE, 10, setup.control, stop_position=middle)
        assert world.run_until(lambda: stopped(1), timeout_s=30), b_signals.events
        dst = b_signals.events[0].recording_id
        assert client_b.get_stop_position(dst) == middle
        assert b_signals.of(RecordingSignal.SYNC)[0].position == middle

        with pytest.raises(ArchiveRequestError) as unknown:
            client_b.replicate(recording_id, dst + 7, 10, setup.control)
        assert unknown.value.code == ArchiveErrorCode.UNKNOWN_RECORDING

        second = client_b.replicate(recording_id, dst, 10, setup.control)
        assert world.run_until(lambda: stopped(2), timeout_s=30), b_signals.events
        later = [e for e in b_signals.events if e.correlation_id == second]
        assert [RecordingSignal(e.signal).name for e in later] == [
            "REPLICATE",
            "EXTEND",
            "SYNC",
            "REPLICATE_END",
            "STOP",
        ]
        assert later[1].position == middle  # the extension starts where the first copy stopped
        assert client_b.get_stop_position(dst) == end
        setup.replay(client_b, dst, 0, end, list(setup.published))
        client_b.close()
    finally:
        setup.close()


@pytest.mark.parametrize("version", ["ReplicateRequest", "TaggedReplicateRequest"])
def test_the_older_replicate_requests_replicate_too(version: str, tmp_path: Path) -> None:
    """Versions 50 and 62 of the replicate request (no stop position, replication channel or
    credentials): the destination uses its own replication channel and copies to the source's end."""
    from generated import aeron_archive_codecs as codecs

    setup = Setup("sim", tmp_path)
    try:
        world = setup.world
        recording_id, end = setup.record_stopped(10)
        _, client_b, b_signals, _ = setup.second_archive(8110)
        fields: dict[str, object] = {
            "src_recording_id": recording_id,
            "dst_recording_id": NULL_VALUE,
            "src_control_stream_id": 10,
            "src_control_channel": setup.control,
            "live_destination": "",
        }
        encoder: type = codecs.ReplicateRequestEncoder
        if version == "TaggedReplicateRequest":
            encoder = codecs.TaggedReplicateRequestEncoder
            fields.update(channel_tag_id=NULL_VALUE, subscription_tag_id=NULL_VALUE)
        client_b._call(encoder, **fields)

        def stopped() -> bool:
            client_b.poll_for_recording_signals()
            return bool(b_signals.of(RecordingSignal.STOP))

        assert world.run_until(stopped, timeout_s=30), b_signals.events
        dst = b_signals.events[0].recording_id
        assert client_b.get_stop_position(dst) == end
        client_b.close()
    finally:
        setup.close()
