"""Our archive run on directories Java's archive left behind: it starts on them (recovering a recording
that was active when Java's process was killed), lists Java's recordings, replays Java's data exactly,
and goes on recording where Java stopped -- an extension of Java's recording and new recordings whose
ids follow Java's."""

from __future__ import annotations

from pathlib import Path

from support.archive_world import World
from support.recordings import extract_java

from cluster.archive.catalog import Catalog
from cluster.archive.client import ArchiveClient, RecordingSignalEvent
from cluster.archive.verify import verify_archive
from cluster.storage import RealStorage
from cluster.transport.logbuffer import FragmentAssembler, Header
from generated.aeron_archive_codecs import RecordingSignal, RecordingState, SourceLocation

CONTROL = "aeron:ipc?term-length=64k"


def java_message(i: int) -> bytes:
    """Message i of the Java archive run: length [32, 1000, 5000][i % 3], byte j = (i + j) % 251."""
    return bytes((i + j) % 251 for j in range((32, 1000, 5000)[i % 3]))


class OnJava:
    """Our archive (control over IPC) on a writable copy of a Java archive directory."""

    def __init__(self, name: str, tmp_path: Path) -> None:
        self.directory = extract_java(name, tmp_path / "java")
        self.world = World("udp", tmp_path=tmp_path)
        self.transport = self.world.transport("127.0.0.1", max_receive_term_length=64 * 1024 * 1024)
        self.signals: list[RecordingSignalEvent] = []
        self.archive = self.world.archive_on(self.transport, RealStorage(self.directory))
        self.client = ArchiveClient.connect(
            self.transport,
            control_request_channel=CONTROL,
            control_response_channel="aeron:ipc",
            invoker=self.world.step,
            on_recording_signal=self.signals.append,
        )

    def replay(
        self, recording_id: int, position: int, length: int, expected_count: int
    ) -> list[tuple[bytes, int]]:
        got: list[tuple[bytes, int]] = []

        def on_message(buffer: memoryview, header: Header) -> None:
            got.append((bytes(buffer), header.position()))

        assembler = FragmentAssembler(on_message)
        subscription = self.transport.add_subscription("aeron:ipc", 2002)
        self.client.start_replay(recording_id, position, length, "aeron:ipc", 2002)
        assert self.world.run_until(
            lambda: subscription.poll(assembler.on_fragment, 64) >= 0 and len(got) >= expected_count,
            timeout_s=60,
        ), f"replayed {len(got)} of {expected_count}"
        subscription.close()
        return got

    def has_signal(self, signal: RecordingSignal) -> bool:
        self.client.poll_for_recording_signals()
        return any(event.signal == signal for event in self.signals)

    def close(self) -> None:
        self.client.close()
        self.world.close()


def test_our_archive_replays_and_extends_a_java_recording(tmp_path: Path) -> None:
    java = OnJava("archiveA", tmp_path)
    try:
        client = java.client
        listed = client.list_recordings(0, 10)
        # recording 1 was purged by Java: the listing ends there, as Java's own did
        assert [d.recording_id for d in listed] == [0]
        descriptor = listed[0]
        assert (descriptor.start_position, descriptor.stop_position) == (0, 1042272)
        assert (descriptor.initial_term_id, descriptor.term_buffer_length) == (-1611572675, 16 * 1024 * 1024)
        replayed = java.replay(0, 0, 1042272, 500)
        assert [payload for payload, _ in replayed] == [java_message(i) for i in range(500)]
        assert replayed[-1][1] == 1042272

        # extend Java's recording with a publication that continues its stream
        term_length = descriptor.term_buffer_length
        channel = "aeron:ipc"
        continuation = (
            f"aeron:ipc?init-term-id={descriptor.initial_term_id}|term-id={descriptor.initial_term_id}"
            f"|term-offset={descriptor.stop_position}|term-length={term_length}|mtu={descriptor.mtu_length}"
        )
        # Java recorded stream 1001 on a UDP channel; our extension records the same stream over IPC
        client.extend_recording(0, channel, 1001, SourceLocation.LOCAL)
        publication = java.transport.add_exclusive_publication(continuation, 1001)
        assert java.world.run_until(lambda: java.has_signal(RecordingSignal.EXTEND)), (
            java.signals,
            client.poll_for_error_response(),
        )
        positions = []
        for i in range(500, 520):
            while (position := publication.offer(java_message(i))) < 0:
                java.world.step()
            positions.append(position)
        assert java.world.run_until(lambda: client.get_recording_position(0) == positions[-1])
        client.stop_recording(channel, 1001)
        assert client.get_stop_position(0) == positions[-1]
        tail = java.replay(0, 1042272, positions[-1] - 1042272, 20)
        assert tail == [(java_message(500 + k), positions[k]) for k in range(20)]

        # a new recording takes the id after Java's last (1, purged by Java)
        client.start_recording("aeron:ipc", 3003, SourceLocation.LOCAL)
        other = java.transport.add_exclusive_publication("aeron:ipc", 3003)
        while other.offer(b"after java") < 0:
            java.world.step()
        assert java.world.run_until(lambda: java.has_signal(RecordingSignal.START))
        started = next(s for s in java.signals if s.signal == RecordingSignal.START)
        assert started.recording_id == 2
    finally:
        java.close()
    # Java's tool view of the result: every recording checks out
    report = verify_archive(RealStorage(java.directory), now_ms=java.world.clock.epoch_ms() + 60_000)
    assert report.ok, report.lines
    with Catalog(RealStorage(java.directory), read_only=True) as catalog:
        states = {d.recording_id: d.state for d in catalog.recordings(include_deleted=True)}
    assert states == {0: RecordingState.VALID, 1: RecordingState.DELETED, 2: RecordingState.VALID}


def test_our_archive_recovers_the_recording_java_was_killed_during(tmp_path: Path) -> None:
    """node0's archive was killed while recording the cluster log (stop position -1, data to 768544);
    our archive's recovery finds the stop where ArchiveTool's verify did, and the log replays."""
    java = OnJava("node0", tmp_path)
    try:
        descriptor = java.client.list_recording(0)
        assert descriptor is not None
        assert descriptor.stop_position == 768544
        assert any("768544" in line for line in java.archive.recovered)
        replayed = java.replay(0, 0, 768544, 1)
        assert replayed and replayed[-1][1] <= 768544
    finally:
        java.close()
