"""``RecordingFollower`` against an in-process archive over the simulated network and disk: one node's
transport and archive, a recorded IPC log publication, and a limit counter the test moves by hand.

The follower delivers exactly the recorded messages that end at or below the limit, whole and in order,
each once with its end position: when the limit rises, when the replay is stopped under it, when the
recording stops and is extended by a new publication, when its message is cut by the limit, and beside
another follower on the same replay stream. Waits are bounded in simulated time or in duty cycles.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.archive_world import TERM_LENGTH, World

from cluster.archive.client import ArchiveClient, RecordingSignalEvent
from cluster.archive.protocol import DEFAULT_LOCAL_CONTROL_CHANNEL, NULL_VALUE
from cluster.archive.recording_follower import FollowerState, RecordingFollower, RecordingFollowerError
from cluster.transport.counters import Counter
from cluster.transport.publication import Publication
from generated.aeron_archive_codecs import RecordingSignal, SourceLocation

LOG_CHANNEL = "aeron:ipc"
LOG_STREAM = 100
COMMIT_POSITION_TYPE_ID = 203
FRAGMENT_FRAME = 1408  # a whole fragment of a fragmented message: the MTU
IDLE_CYCLES = 200  # duty cycles that would be plenty to deliver anything the limit allowed


def message(i: int, length: int) -> bytes:
    return bytes((i * 31 + j) % 251 for j in range(length))


class LogWorld:
    """One node: a transport, its archive recording the log publication, and the limit counter."""

    def __init__(self, seed: int = 1) -> None:
        self.world = World("sim", seed=seed)
        self.transport = self.world.transport(self.world.host())
        self.archive = self.world.archive(self.transport, "archive")
        self.signals: list[RecordingSignalEvent] = []
        self.cm = self.client(on_recording_signal=self.signals.append)
        self.limit = self.transport.counters_manager.allocate(
            COMMIT_POSITION_TYPE_ID, "Cluster commit-pos: clusterId=0", struct.pack("<i", 0)
        )
        self.sent: list[tuple[bytes, int]] = []
        self.recording_id = NULL_VALUE
        self.publication: Publication | None = None
        self.initial_term_id = 0
        self.mtu = 0

    def client(self, **kwargs: object) -> ArchiveClient:
        return ArchiveClient.connect(
            self.transport,
            control_request_channel=DEFAULT_LOCAL_CONTROL_CHANNEL,
            control_response_channel="aeron:ipc",
            invoker=self.world.step,
            **kwargs,  # type: ignore[arg-type]
        )

    def step(self) -> None:
        self.world.step()
        self.cm.poll_for_recording_signals()

    def run_until(self, condition: Callable[[], object], timeout_s: float = 10.0) -> bool:
        def done() -> bool:
            self.cm.poll_for_recording_signals()
            return bool(condition())

        return self.world.run_until(done, timeout_s=timeout_s)

    def signal(self, signal: RecordingSignal, count: int = 1) -> RecordingSignalEvent:
        assert self.run_until(lambda: sum(s.signal == signal for s in self.signals) >= count)
        return [s for s in self.signals if s.signal == signal][count - 1]

    def start_log(self) -> None:
        self.cm.start_recording(LOG_CHANNEL, LOG_STREAM, SourceLocation.LOCAL)
        self.publication = self.transport.add_exclusive_publication(LOG_CHANNEL, LOG_STREAM)
        self.initial_term_id, self.mtu = self.publication.initial_term_id, self.publication.mtu
        self.recording_id = self.signal(RecordingSignal.START).recording_id

    def append(self, *lengths: int) -> list[tuple[bytes, int]]:
        """Offer messages of these lengths on the log and wait until the archive has recorded them."""
        publication = self.publication
        assert publication is not None
        for length in lengths:
            data = message(len(self.sent), length)
            assert self.run_until(lambda data=data: publication.offer(data) > 0)
            self.sent.append((data, publication.position))
        end = self.sent[-1][1]
        assert self.run_until(lambda: self.cm.get_recording_position(self.recording_id) >= end)
        return self.sent

    def stop_log(self) -> int:
        """Stop the recording (as an election does) and close the publication; the stop position."""
        assert self.publication is not None
        stops = sum(s.signal == RecordingSignal.STOP for s in self.signals)
        self.cm.stop_recording(LOG_CHANNEL, LOG_STREAM)
        stop = self.signal(RecordingSignal.STOP, stops + 1).position
        self.publication.close()
        self.publication = None
        return stop

    def extend_log(self, position: int) -> None:
        """A new publication continuing the log at ``position``, extending the same recording."""
        initial_term_id = self.initial_term_id
        shift = TERM_LENGTH.bit_length() - 1
        channel = (
            f"{LOG_CHANNEL}?init-term-id={initial_term_id}|term-id={initial_term_id + (position >> shift)}"
            f"|term-offset={position & (TERM_LENGTH - 1)}|term-length={TERM_LENGTH}|mtu={self.mtu}"
        )
        extends = sum(s.signal == RecordingSignal.EXTEND for s in self.signals)
        self.cm.extend_recording(self.recording_id, LOG_CHANNEL, LOG_STREAM, SourceLocation.LOCAL)
        self.publication = self.transport.add_exclusive_publication(channel, LOG_STREAM)
        self.signal(RecordingSignal.EXTEND, extends + 1)

    def close(self) -> None:
        self.world.close()


class Reader:
    """A follower and what it delivered."""

    def __init__(self, log: LogWorld, **kwargs: object) -> None:
        self.log = log
        self.client = log.client()
        self.got: list[tuple[bytes, int]] = []
        self.follower = RecordingFollower(
            self.client,
            recording_id=kwargs.pop("recording_id", lambda: log.recording_id),  # type: ignore[arg-type]
            limit_counter=kwargs.pop("limit_counter", lambda: log.limit),  # type: ignore[arg-type]
            **kwargs,  # type: ignore[arg-type]
        )

    def on_message(self, data: memoryview, end_position: int) -> None:
        self.got.append((bytes(data), end_position))

    def poll(self) -> int:
        return self.follower.poll(self.on_message, 10)

    def until(self, count: int) -> list[tuple[bytes, int]]:
        assert self.log.run_until(lambda: self.poll() >= 0 and len(self.got) >= count), (len(self.got), count)
        return self.got

    def idle(self, cycles: int = IDLE_CYCLES) -> list[tuple[bytes, int]]:
        for _ in range(cycles):
            self.poll()
            self.log.step()
        return self.got


def up_to(sent: list[tuple[bytes, int]], limit: int) -> list[tuple[bytes, int]]:
    return [(data, end) for data, end in sent if end <= limit]


@pytest.fixture
def log() -> Iterator[LogWorld]:
    world = LogWorld(seed=7)
    try:
        yield world
    finally:
        world.close()


def test_nothing_is_read_past_the_limit_and_a_raised_limit_delivers_more(log: LogWorld) -> None:
    log.start_log()
    sent = log.append(*[100 + 37 * i for i in range(20)])
    reader = Reader(log)
    assert reader.idle() == [] and reader.follower.replays_started == 0  # limit 0: no replay yet
    log.limit.set(sent[4][1])
    assert reader.until(5) == sent[:5]
    assert reader.idle() == sent[:5] and reader.follower.position == sent[4][1]
    log.limit.set(sent[4][1] + 32)  # not a whole message more
    assert reader.idle() == sent[:5]
    log.limit.set(sent[-1][1])
    assert reader.until(20) == sent
    assert reader.idle() == sent
    assert reader.follower.replays_started == 1 and reader.follower.state == FollowerState.READING


def test_a_fragmented_message_is_delivered_whole_and_only_once_its_end_is_allowed(log: LogWorld) -> None:
    log.start_log()
    sent = log.append(64, 5000, 64, 8000, 8)  # 5000 and 8000 bytes take 4 and 6 fragments of 1408 bytes
    reader = Reader(log)
    log.limit.set(sent[0][1] + 2 * FRAGMENT_FRAME)  # two fragments of the second message
    assert reader.until(1) == sent[:1]
    assert reader.idle() == sent[:1] and reader.follower.position == sent[0][1]
    log.limit.set(sent[1][1])
    assert reader.until(2) == sent[:2]
    log.limit.set(sent[2][1] + 5 * FRAGMENT_FRAME)  # all but the last fragment of the 8000 bytes
    assert reader.until(3) == sent[:3]
    assert reader.idle() == sent[:3]
    log.limit.set(sent[-1][1])
    assert reader.until(5) == sent
    assert [len(data) for data, _ in reader.got] == [64, 5000, 64, 8000, 8]


def test_a_limit_inside_a_frame_holds_that_frame_back(log: LogWorld) -> None:
    # A commit position is always a frame's end; a limit inside a frame is not one the archive expects: it
    # hands over the whole frame it would have to cut. The follower's own check holds it back.
    log.start_log()
    sent = log.append(1000, 1000, 1000)
    reader = Reader(log)
    log.limit.set(sent[1][1] - 32)
    assert reader.until(1) == sent[:1]
    assert reader.idle() == sent[:1] and reader.follower.position == sent[0][1]
    log.limit.set(sent[-1][1])
    assert reader.until(3) == sent


def test_a_replay_stopped_midway_is_restarted_from_the_followers_position(log: LogWorld) -> None:
    log.start_log()
    sent = log.append(*[300] * 10, 4000, *[300] * 10)
    reader = Reader(log)
    log.limit.set(sent[9][1] + FRAGMENT_FRAME)  # the first fragment of the 4000 bytes
    assert reader.until(10) == sent[:10]
    first = reader.follower.replay_session_id
    log.cm.stop_all_replays(log.recording_id)  # as the consensus module does before a truncation
    log.limit.set(sent[-1][1])
    assert reader.until(21) == sent
    assert reader.idle() == sent
    follower = reader.follower
    assert follower.replay_session_id not in (first, NULL_VALUE)
    assert (follower.replays_started, follower.replays_ended, follower.replays_stopped) == (2, 1, 0)


def test_the_recording_stopped_and_extended_by_a_new_publication_is_read_across(log: LogWorld) -> None:
    log.start_log()
    log.append(*[200] * 8)
    reader = Reader(log)
    log.limit.set(log.sent[-1][1])
    assert reader.until(8) == log.sent
    stop = log.stop_log()  # an election: the log recording stops ...
    assert stop == log.sent[-1][1]
    log.cm.stop_all_replays(log.recording_id)  # ... every replay of it is stopped ...
    assert reader.idle() == log.sent
    log.extend_log(stop)  # ... and the next term's publication extends it
    sent = log.append(*[900] * 5, 3000)
    log.limit.set(sent[-1][1])
    assert reader.until(14) == sent
    assert reader.idle() == sent


def test_seek_stops_the_replay_and_reads_on_from_the_new_position(log: LogWorld) -> None:
    # the consensus module moves its reader to where its state is: forward past entries it appended
    # itself, or back after an election undid what it had read
    log.start_log()
    sent = log.append(*[200 + 8 * i for i in range(12)])
    reader = Reader(log)
    log.limit.set(sent[3][1])
    assert reader.until(4) == sent[:4]
    first = reader.follower.replay_session_id
    reader.follower.seek(sent[7][1])  # forward, over four messages
    assert reader.follower.position == sent[7][1] and reader.follower.state == FollowerState.IDLE
    log.limit.set(sent[-1][1])
    assert reader.until(8)[4:] == sent[8:]
    reader.follower.seek(sent[1][1])  # back
    assert reader.until(18)[8:] == sent[2:]
    assert reader.idle()[8:] == sent[2:]
    follower = reader.follower
    assert follower.replay_session_id not in (first, NULL_VALUE)
    assert (follower.replays_started, follower.replays_stopped) == (3, 2)
    reader.follower.seek(follower.position)  # where it is: the replay goes on
    assert follower.replays_stopped == 2 and follower.state == FollowerState.READING


@pytest.mark.parametrize("position", [-32, 33, 1.0, True])
def test_seek_refuses_a_position_that_is_no_frame_boundary(log: LogWorld, position: object) -> None:
    reader = Reader(log)
    with pytest.raises(RecordingFollowerError, match="multiple of 32"):
        reader.follower.seek(position)  # type: ignore[arg-type]
    reader.follower.close()
    with pytest.raises(RecordingFollowerError, match="closed"):
        reader.follower.seek(0)


def test_a_replay_left_running_across_a_stop_and_extension_goes_on(log: LogWorld) -> None:
    log.start_log()
    log.append(*[200] * 4)
    reader = Reader(log)
    log.limit.set(log.sent[-1][1])
    assert reader.until(4) == log.sent
    log.extend_log(log.stop_log())
    sent = log.append(*[200] * 4)
    log.limit.set(sent[-1][1])
    assert reader.until(8) == sent
    assert reader.follower.replays_started == 1


def test_no_replay_starts_before_the_recording_and_the_counter_exist(log: LogWorld) -> None:
    counter: list[Counter] = []
    reader = Reader(log, limit_counter=lambda: counter[0] if counter else None)
    assert reader.idle(20) == [] and reader.follower.replays_started == 0  # no recording yet
    log.start_log()
    sent = log.append(100, 200)
    assert reader.idle(20) == [] and reader.follower.replays_started == 0  # no counter yet
    counter.append(log.limit)
    log.limit.set(sent[-1][1])
    assert reader.until(2) == sent


def test_a_refused_replay_is_asked_again_later_and_the_wait_is_no_work(log: LogWorld) -> None:
    """A replay the archive refuses (here: a recording it does not have) is asked for again after the
    retry interval; until then a poll does nothing and says so -- work reported there kept a node's duty
    cycle from ever idling (a busy loop, found by the simulator sweep as a seed that crawled)."""
    log.start_log()
    sent = log.append(100)
    log.limit.set(sent[-1][1])
    reader = Reader(log, recording_id=lambda: log.recording_id + 99)
    assert reader.log.run_until(lambda: reader.poll() >= 0 and reader.follower.replay_failures == 1)
    assert reader.follower.state == FollowerState.IDLE and "refused" in reader.follower.reason
    assert [reader.poll() for _ in range(50)] == [0] * 50  # waiting to ask again: no work
    assert reader.follower.replay_failures == 1


def test_a_closed_or_replaced_limit_counter_stops_the_replay_at_once(log: LogWorld) -> None:
    log.start_log()
    sent = log.append(*[100] * 10)
    reader = Reader(log, limit_counter=lambda: log.limit if not log.limit.is_closed else None)
    log.limit.set(sent[3][1])
    assert reader.until(4) == sent[:4]
    log.limit.close()  # the consensus module went: its counter's replay would run to the stop position
    assert reader.idle() == sent[:4]
    assert reader.follower.replays_stopped == 1 and not log.archive.replay_sessions
    # the next life of the consensus module: a new counter, learning the commit position again
    log.limit = log.transport.counters_manager.allocate(
        COMMIT_POSITION_TYPE_ID, "commit", struct.pack("<i", 0)
    )
    assert reader.idle(20) == sent[:4]
    log.limit.set(sent[7][1])
    assert reader.until(8) == sent[:8]
    assert reader.idle() == sent[:8]


def test_two_followers_on_one_replay_stream_do_not_hold_each_other_back(log: LogWorld) -> None:
    log.start_log()
    sent = log.append(*[1000] * 300)  # several terms: a follower that held the other's image would stall it
    first, second = Reader(log), Reader(log)
    log.limit.set(sent[-1][1])
    assert log.run_until(
        lambda: first.poll() >= 0 and second.poll() >= 0 and len(first.got) == len(second.got) == 300
    )
    assert first.got == second.got == sent
    assert first.follower.foreign_bytes_drained > 0 and second.follower.foreign_bytes_drained > 0


def test_a_replay_never_runs_more_than_a_window_ahead_of_a_reader_that_does_not_read(log: LogWorld) -> None:
    # a block is appended whole once it starts below the publication's limit: the replay must read no more
    # than the window allows, or one block runs a term past the reader, the next rotation cleans the
    # partition the reader is still in, and what it had not read is gone (a reader beside a faster one on
    # the replay stream once stalled for ever that way)
    log.start_log()
    log.append(*[1000] * 200)  # three terms of 64 KiB
    subscription = log.transport.add_subscription("aeron:ipc", 103)  # joins, then never reads
    log.cm.start_replay(log.recording_id, 0, 1 << 62, "aeron:ipc", 103)
    for _ in range(IDLE_CYCLES):
        log.step()
    (replay,) = log.archive.replay_sessions.values()
    publication = replay.publication
    assert publication.position > 0  # it replayed what the window allows ...
    window = publication.position_limit  # ... the reader at 0: the limit is the window
    assert publication.position <= window + FRAGMENT_FRAME  # ... and at most one frame past it
    assert [image.position for image in subscription.images] == [0]


def test_a_handler_that_raises_has_consumed_its_message(log: LogWorld) -> None:
    log.start_log()
    sent = log.append(100, 200, 300)
    reader = Reader(log)
    log.limit.set(sent[-1][1])

    def fail_on_second(data: memoryview, end_position: int) -> None:
        reader.on_message(data, end_position)
        if len(reader.got) == 2:
            raise RuntimeError("the service failed")

    with pytest.raises(RuntimeError, match="the service failed"):
        for _ in range(IDLE_CYCLES):
            reader.follower.poll(fail_on_second, 10)
            log.step()
    assert reader.follower.position == sent[1][1]
    assert reader.until(3) == sent  # the third once, the second not again


def test_bad_arguments_are_refused_with_the_followers_error(log: LogWorld) -> None:
    client = log.client()
    with pytest.raises(RecordingFollowerError, match="position"):
        RecordingFollower(client, recording_id=lambda: 0, limit_counter=lambda: None, position=33)
    follower = RecordingFollower(client, recording_id=lambda: 0, limit_counter=lambda: None)
    with pytest.raises(RecordingFollowerError, match="fragment_limit"):
        follower.poll(lambda data, position: None, 0)
    follower.close()
    assert follower.poll(lambda data, position: None, 10) == 0


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=6000), min_size=1, max_size=25),
    steps=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=5),
    stop_replays=st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_the_delivered_stream_is_the_recorded_messages_up_to_the_limit(
    lengths: list[int], steps: list[float], stop_replays: list[bool]
) -> None:
    log = LogWorld(seed=len(lengths))
    try:
        log.start_log()
        sent = log.append(*lengths)
        end = sent[-1][1]
        reader = Reader(log)
        limit = 0
        for i, fraction in enumerate([*sorted(steps), 1.0]):
            # any multiple of 32: between messages, between fragments, and inside frames (which the archive
            # hands over whole and the follower holds back)
            limit = max(limit, int(end * fraction) & -32)
            log.limit.set(limit)
            expected = up_to(sent, limit)
            if expected:
                reader.until(len(expected))
            assert reader.idle(50) == expected
            if i < len(stop_replays) and stop_replays[i]:
                log.cm.stop_all_replays(log.recording_id)
        assert reader.got == sent
    finally:
        log.close()
