"""``MessageRecorder``: messages become a new local recording, a duty cycle at a time -- every message, in
order, across back pressure and term ends -- and every way it can fail ends FAILED with a reason, its
publication closed and its recording stopped."""

from __future__ import annotations

from support.archive_world import TERM_LENGTH, World

from cluster.archive.client import ArchiveClient
from cluster.archive.message_recorder import MessageRecorder, RecorderState
from cluster.archive.message_replay import replay_messages
from cluster.archive.protocol import DEFAULT_LOCAL_CONTROL_CHANNEL
from cluster.archive.recording_reader import RecordingReader

CHANNEL = "aeron:ipc?alias=snapshot"


class Node:
    def __init__(self, seed: int = 3) -> None:
        self.world = World("sim", seed=seed)
        self.transport = self.world.transport(self.world.host())
        self.archive = self.world.archive(self.transport, "archive")
        self.client = ArchiveClient.connect(
            self.transport,
            control_request_channel=DEFAULT_LOCAL_CONTROL_CHANNEL,
            control_response_channel="aeron:ipc",
            invoker=self.world.step,
        )

        self.recorders: list[MessageRecorder] = []

    def recorder(self, messages: list[bytes], **options: int) -> MessageRecorder:
        recorder = MessageRecorder(self.transport, self.client, CHANNEL, 106, messages, **options)
        self.recorders.append(recorder)
        return recorder

    def run_until_done(self) -> None:
        """The world's duty cycles, then the recorders' -- outside the client's invoker, as in a node,
        where the archive client's waits run the transport and the archive but no other agent."""

        def step() -> bool:
            for recorder in self.recorders:
                recorder.do_work()
            return all(recorder.done for recorder in self.recorders)

        assert self.world.run_until(step, timeout_s=30)

    def record(self, messages: list[bytes], **options: int) -> MessageRecorder:
        recorder = self.recorder(messages, **options)
        self.run_until_done()
        return recorder

    def read_back(self, recording_id: int) -> list[bytes]:
        descriptor = self.client.list_recording(recording_id)
        assert descriptor is not None
        storage = self.archive.ctx.storage
        with RecordingReader.of(storage, descriptor, stop_position=descriptor.stop_position) as reader:
            return [message for _, message in reader.messages()]


def test_every_message_is_recorded_in_order_across_back_pressure_and_term_ends() -> None:
    node = Node()
    # several terms' worth (the IPC term is 64 KiB: the publication runs out of window many times), some
    # messages longer than a frame
    messages = [bytes((i + j) % 251 for j in range((i * 389) % 5000)) for i in range(120)]
    recorder = node.record(messages)
    assert recorder.state == RecorderState.DONE, recorder.error
    assert recorder.publication.is_closed
    assert recorder.recording_id >= 0
    descriptor = node.client.list_recording(recorder.recording_id)
    assert descriptor is not None
    assert descriptor.stop_position == recorder.publication.position > 2 * TERM_LENGTH
    assert (descriptor.stream_id, descriptor.session_id) == (106, recorder.session_id)
    assert node.read_back(recorder.recording_id) == messages


def test_two_recorders_side_by_side_each_record_only_their_own_session() -> None:
    node = Node(seed=4)
    first = node.recorder([b"a" * 100] * 50)
    second = node.recorder([b"b" * 70] * 30)
    node.run_until_done()
    assert (first.state, second.state) == (RecorderState.DONE, RecorderState.DONE)
    assert first.recording_id != second.recording_id
    assert node.read_back(first.recording_id) == [b"a" * 100] * 50
    assert node.read_back(second.recording_id) == [b"b" * 70] * 30


def test_an_empty_list_makes_an_empty_recording() -> None:
    node = Node(seed=5)
    recorder = node.record([])
    assert recorder.state == RecorderState.DONE
    assert node.read_back(recorder.recording_id) == []


def test_a_message_the_publication_can_never_take_fails_the_recorder() -> None:
    node = Node(seed=6)
    recorder = node.record([b"ok", b"x" * (TERM_LENGTH // 8 + 1)])  # over the term's max message length
    assert recorder.state == RecorderState.FAILED
    assert "refused message 1" in recorder.error
    assert recorder.publication.is_closed


def test_an_archive_that_does_not_answer_the_recording_request_fails_the_recorder() -> None:
    node = Node(seed=7)
    node.world.agents.remove(node.archive.do_work)  # the archive answers no more
    recorder = node.recorder([b"a"])
    assert recorder.state == RecorderState.FAILED
    assert "the archive would not record aeron:ipc?alias=snapshot|session-id=" in recorder.error
    assert recorder.publication.is_closed


def test_a_recorder_that_waits_too_long_for_the_archive_fails() -> None:
    node = Node(seed=8)
    recorder = node.recorder([b"a" * 64] * 10, timeout_ns=20_000_000)
    node.world.agents.remove(node.archive.do_work)  # recording requested; the archive stops working
    node.run_until_done()
    assert recorder.state == RecorderState.FAILED
    assert "timed out" in recorder.error
    assert recorder.publication.is_closed


def test_closing_a_recorder_before_it_is_done_fails_it() -> None:
    node = Node(seed=9)
    recorder = node.recorder([b"a" * 64] * 10)
    recorder.close()
    assert recorder.state == RecorderState.FAILED and "closed" in recorder.error
    assert recorder.publication.is_closed


def test_replay_messages_reads_a_recording_back_whole_or_up_to_the_message_until_accepts() -> None:
    node = Node(seed=10)
    messages = [bytes([i]) * (100 + 37 * i) for i in range(200)]  # several IPC terms' worth
    recording_id = node.record(messages).recording_id
    assert replay_messages(node.client, recording_id) == messages

    seen: list[bytes] = []

    def until(message: bytes) -> bool:
        seen.append(message)
        return message[:1] == bytes([4])

    assert replay_messages(node.client, recording_id, until=until) == messages[:5]
    assert seen == messages[:5]  # nothing after the accepted message is handed on
    # the rest is never read: the replay was stopped, not left to run out against a closed subscription
    replays = [
        replay for replay in node.archive.replay_sessions.values() if replay.recording_id == recording_id
    ]
    assert all(replay.reason == "stop replay" for replay in replays)
    assert replay_messages(node.client, recording_id, until=lambda _: False) == messages
