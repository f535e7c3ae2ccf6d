"""Detached segments: a stopped or live recording's start moves forward to a later segment base (detach),
the files before it go (delete detached, or both at once: purge), or come back while they are still there
(attach) -- with Aeron's rules for where a start may move, and every refusal an error that changes
nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.archive_protocol import REPLAY_STREAM, STREAM, ProtocolWorld, payload

from cluster.archive.client import ArchiveRequestError
from cluster.archive.protocol import REPLAY_ALL_AND_FOLLOW
from cluster.archive.segments import segment_file_name, segment_files
from generated.aeron_archive_codecs import RecordingSignal, SourceLocation

SEGMENT = 64 * 1024  # one term per segment file


@pytest.fixture
def pw() -> Iterator[ProtocolWorld]:
    world = ProtocolWorld(seed=21, segment_file_length=SEGMENT)
    try:
        yield world
    finally:
        world.close()


def _files(pw: ProtocolWorld, recording_id: int) -> list[int]:
    return [base for base, _ in segment_files(pw.archive.ctx.storage, recording_id)]


def _start(pw: ProtocolWorld, recording_id: int) -> int:
    descriptor = pw.client.list_recording(recording_id)
    assert descriptor is not None
    return descriptor.start_position


def _recorded(pw: ProtocolWorld, count: int = 1000) -> tuple[int, list[tuple[bytes, int]]]:
    recording_id, _, sent = pw.record(count=count)
    assert sent[-1][1] > 3 * SEGMENT  # four segment files at least
    return recording_id, sent


def test_detach_moves_the_start_and_keeps_the_files_until_they_are_deleted(pw: ProtocolWorld) -> None:
    recording_id, sent = _recorded(pw)
    files = _files(pw, recording_id)
    pw.client.detach_segments(recording_id, 2 * SEGMENT)
    assert _start(pw, recording_id) == 2 * SEGMENT
    assert _files(pw, recording_id) == files  # detached, still there
    pw.replay_all(recording_id, [(m, p) for m, p in sent if p > 2 * SEGMENT], position=2 * SEGMENT)
    assert pw.client.delete_detached_segments(recording_id) == 2
    assert _files(pw, recording_id) == files[2:]
    pw.await_signal(RecordingSignal.DELETE)
    assert pw.client.delete_detached_segments(recording_id) == 0  # nothing is left to delete


def test_purge_detaches_and_deletes_in_one_request_and_a_replay_before_the_start_is_refused(
    pw: ProtocolWorld,
) -> None:
    recording_id, sent = _recorded(pw)
    assert pw.client.purge_segments(recording_id, 3 * SEGMENT) == 3
    assert _start(pw, recording_id) == 3 * SEGMENT
    assert _files(pw, recording_id)[0] == 3 * SEGMENT
    with pytest.raises(ArchiveRequestError, match="less than recording start"):
        pw.client.start_replay(recording_id, 0, -1, pw.replay_channel, REPLAY_STREAM)
    pw.replay_all(recording_id, [(m, p) for m, p in sent if p > 3 * SEGMENT], position=3 * SEGMENT)


def test_attach_takes_back_the_detached_files_still_there(pw: ProtocolWorld) -> None:
    recording_id, sent = _recorded(pw)
    pw.client.detach_segments(recording_id, 3 * SEGMENT)
    assert pw.client.attach_segments(recording_id) == 3
    assert _start(pw, recording_id) == 0
    pw.replay_all(recording_id, sent)
    assert pw.client.attach_segments(recording_id) == 0  # nothing before the start any more


def test_attach_stops_at_the_first_missing_file(pw: ProtocolWorld) -> None:
    recording_id, _ = _recorded(pw)
    pw.client.detach_segments(recording_id, 3 * SEGMENT)
    pw.archive.ctx.storage.delete(segment_file_name(recording_id, SEGMENT))
    assert pw.client.attach_segments(recording_id) == 1  # 2 * SEGMENT only: SEGMENT is gone
    assert _start(pw, recording_id) == 2 * SEGMENT


def test_attach_of_a_recording_that_began_inside_its_first_file_starts_at_its_first_frame(
    pw: ProtocolWorld,
) -> None:
    """A recording that joined a stream mid-term: its first file has zeros up to its start."""
    channel = f"aeron:udp?endpoint={pw.client_host}:8061"
    receiver = pw.client_transport.add_subscription(channel, STREAM)  # the stream runs before recording
    pw.world.agents.append(lambda: receiver.poll(lambda *_: None, 100))  # a reader that keeps up
    publication = pw.archive_transport.add_exclusive_publication(channel, STREAM)
    assert pw.run_until(lambda: publication.is_connected)
    early = pw.publish(publication, 0, 40)
    subscription_id = pw.client.start_recording(channel, STREAM, SourceLocation.LOCAL)
    start = pw.await_signal(RecordingSignal.START)
    assert start.position >= early[-1][1] > 0  # mid-term, not a segment base
    later = pw.publish(publication, 40, 1000)
    recording_id = start.recording_id
    assert pw.run_until(lambda: pw.client.get_recording_position(recording_id) == later[-1][1])
    pw.client.stop_recording_subscription(subscription_id)
    pw.await_signal(RecordingSignal.STOP)
    pw.client.detach_segments(recording_id, 2 * SEGMENT)
    assert pw.client.attach_segments(recording_id) == 2
    assert _start(pw, recording_id) == start.position
    pw.replay_all(recording_id, [(m, p) for m, p in later], position=start.position)


@pytest.mark.parametrize(
    ("position", "message"),
    [
        (SEGMENT + 32, "invalid segment start"),  # not a segment base
        (-SEGMENT, "invalid segment start"),
        (0, "lowerBound"),  # the first segment: nothing to detach
        (9 * SEGMENT, "in use"),  # past the segment holding the end
    ],
)
def test_a_start_that_breaks_the_rules_is_refused_and_nothing_changes(
    pw: ProtocolWorld, position: int, message: str
) -> None:
    recording_id, _ = _recorded(pw)
    files = _files(pw, recording_id)
    for request in (pw.client.detach_segments, pw.client.purge_segments):
        with pytest.raises(ArchiveRequestError, match=message):
            request(recording_id, position)
    assert _start(pw, recording_id) == 0 and _files(pw, recording_id) == files


def test_a_live_recording_keeps_the_segment_being_written_and_a_replay_keeps_what_it_reads(
    pw: ProtocolWorld,
) -> None:
    pw.client.start_recording(pw.channel, STREAM, SourceLocation.REMOTE)
    publication = pw.client_transport.add_exclusive_publication(pw.channel, STREAM)
    recording_id = pw.await_signal(RecordingSignal.START).recording_id
    sent = pw.publish(publication, 0, 1000)
    assert pw.run_until(lambda: pw.client.get_recording_position(recording_id) == sent[-1][1])
    end_base = sent[-1][1] // SEGMENT * SEGMENT
    with pytest.raises(ArchiveRequestError, match="in use"):
        pw.client.purge_segments(recording_id, end_base + SEGMENT)
    subscription = pw.client_transport.add_subscription(pw.replay_channel, REPLAY_STREAM)
    replay = pw.client.start_replay(
        recording_id, SEGMENT, REPLAY_ALL_AND_FOLLOW, pw.replay_channel, REPLAY_STREAM
    )
    assert pw.run_until(lambda: pw.replay_image(subscription, replay) is not None)
    with pytest.raises(ArchiveRequestError, match="replay in progress"):
        pw.client.purge_segments(recording_id, 2 * SEGMENT)
    assert pw.client.purge_segments(recording_id, SEGMENT) == 1  # below what the replay reads
    assert _start(pw, recording_id) == SEGMENT
    pw.client.stop_replay(replay)
    more = pw.publish(publication, 1000, 10)
    assert pw.run_until(lambda: pw.client.get_recording_position(recording_id) == more[-1][1])


def test_requests_for_an_unknown_recording_are_refused(pw: ProtocolWorld) -> None:
    for request in (
        lambda: pw.client.detach_segments(77, SEGMENT),
        lambda: pw.client.purge_segments(77, SEGMENT),
        lambda: pw.client.delete_detached_segments(77),
        lambda: pw.client.attach_segments(77),
    ):
        with pytest.raises(ArchiveRequestError, match="unknown recording"):
            request()


def test_a_detached_file_that_is_not_a_segment_of_the_recording_is_refused_on_attach(
    pw: ProtocolWorld,
) -> None:
    recording_id, _ = _recorded(pw)
    pw.client.detach_segments(recording_id, 2 * SEGMENT)
    storage = pw.archive.ctx.storage
    with storage.open(segment_file_name(recording_id, SEGMENT)) as file:
        file.write(0, payload(1, 64))  # no frame header where the segment's first frame was
    with pytest.raises(ArchiveRequestError, match="attach of segments of recording"):
        pw.client.attach_segments(recording_id)
    assert _start(pw, recording_id) == 2 * SEGMENT
