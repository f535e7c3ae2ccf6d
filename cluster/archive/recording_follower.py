"""``RecordingFollower``: one recording read back as whole messages through bounded replays of the local
archive, from a position, never past a limit counter, across the replays' ends and the recording's stops
and extensions.

Theory of operation
-------------------
The follower reads recording ``recording_id()`` from ``position`` onwards and hands each whole message to
``poll``'s handler with the position of the message's end, in order, once (a handler that returns
``True`` ends that poll after its message: a container stops at a snapshot). How far it may read is the
value of a counter (``limit_counter()``): a service container reads the cluster's log recording bounded
by the node's commit position.

It reads through an archive *bounded replay* (``BoundedReplayRequest``): the archive replays the recording
from the follower's position onto a publication on ``replay_channel`` and ``replay_stream_id`` (IPC by
default), never past the limit counter's value, and keeps following the counter as it grows. The replay
publication starts at the recorded position with the recording's term layout, so the image's positions
are the recording's positions. The follower

1. starts a replay lazily: only once the recording exists (``recording_id() >= 0``) and the limit is
   above its position;
2. adds its subscription *before* it asks for the replay, so the replay publication has its reader from
   the start and the image joins exactly at the position asked for, then takes only the replay's image
   (its session id is the low 32 bits of the replay session id);
3. reads that image with a controlled poll bounded by the limit read at the start of the poll, so no
   fragment that ends past the limit is delivered -- the archive already stops there; this is the
   second wall -- and reassembles fragmented messages;
4. when the image goes -- the replay ended: the recording was stopped under it and the archive finished,
   someone stopped every replay of the recording (the consensus module does so before it truncates),
   the replay failed -- closes the subscription and starts a new replay from its own position;
5. when the limit counter goes or is replaced (a new counter owner), or the recording id changes, stops
   its replay at once (``StopReplayRequest``) and reads nothing more from it: a replay whose limit counter
   closed would run on to the recording's stop position;
6. when its owner moves it (``seek``: the consensus module reads its log from where its state is), stops
   its replay the same way and starts the next one at the new position.

Its position is the end of the last message it delivered (or, between messages, the end of the padding
it has read), so a new replay starts on a message boundary: a message cut off by an ended image is read
again whole from the new replay -- no gap, no duplicate. A handler that raises has still consumed its
message: the poll stops there, the position is past it, and the exception propagates from ``poll``.

**Other readers of the replay stream.** IPC subscriptions of our transport take every session of their
stream, and an IPC publication may run only a term window ahead of the slowest of its subscribers. A
subscription on the replay stream therefore also holds images of other replays (another container's
follower on the same node), and must keep them moving or it would stall them: the follower drains every
image of its subscription that is not its own replay's, a whole block at a time, without looking at it.

**The archive client is the follower's own.** The follower polls its ``ArchiveClient``'s responses every
poll (errors for replays that failed after they started are counted in ``archive_errors``): every IPC
archive client on a node shares the response stream, and an unread response image would hold back the
archive's answers to the others.

A replay request the archive refuses (or that times out) is counted in ``replay_failures`` and tried again
no sooner than ``retry_interval_ns`` later, on the transport's clock -- the follower never waits itself.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cluster.archive.client import MAX_PENDING_ERRORS, ArchiveClient
from cluster.archive.errors import ArchiveError
from cluster.archive.protocol import NULL_VALUE, REPLAY_ALL_AND_FOLLOW
from cluster.transport.counters import Counter
from cluster.transport.image import ControlledAction, Image, Subscription
from cluster.transport.logbuffer import MAX_MESSAGE_LENGTH, FragmentAssembler, Header
from cluster.transport.uri import ChannelUri
from generated.aeron_transport_frames import DataFlags

__all__ = [
    "DEFAULT_REPLAY_CHANNEL",
    "DEFAULT_REPLAY_STREAM_ID",
    "FollowerState",
    "MessageHandler",
    "RecordingFollower",
    "RecordingFollowerError",
]

NS_PER_MS: Final = 1_000_000
DEFAULT_REPLAY_CHANNEL: Final = "aeron:ipc"
DEFAULT_REPLAY_STREAM_ID: Final = 103  # Aeron Cluster's replay stream
DEFAULT_RETRY_INTERVAL_NS: Final = 100 * NS_PER_MS
DEFAULT_IMAGE_TIMEOUT_NS: Final = 5_000 * NS_PER_MS  # the archive's connect timeout for a replay

_END: Final = int(DataFlags.END)
_UNFRAGMENTED: Final = int(DataFlags.BEGIN | DataFlags.END)

MessageHandler = Callable[[memoryview, int], object]
"""``handler(message, end_position)``: one whole message (valid during the call only) and the log position
of its end."""


class RecordingFollowerError(ArchiveError):
    """The follower was configured or used wrongly; the message names the bad value."""


class FollowerState(enum.IntEnum):
    """Where the follower is: no replay running, a replay asked for whose image has not appeared yet, or
    reading the replay's image; CLOSED after ``close``."""

    IDLE = 0
    AWAITING_IMAGE = 1
    READING = 2
    CLOSED = 3


@dataclass(slots=True)
class _Replay:
    """One replay the follower asked for, and the subscription that reads it."""

    recording_id: int
    counter: Counter
    replay_session_id: int
    session_id: int
    subscription: Subscription
    start_position: int
    requested_ns: int
    image: Image | None = None


def _discard(*_: object) -> None:
    return None


def _int32(value: int) -> int:
    return ((value & 0xFFFF_FFFF) ^ 0x8000_0000) - 0x8000_0000


class RecordingFollower:
    """Reads one recording as whole messages, never past a limit counter (see the module docstring)."""

    def __init__(
        self,
        archive: ArchiveClient,
        *,
        recording_id: Callable[[], int],
        limit_counter: Callable[[], Counter | None],
        position: int = 0,
        replay_channel: str = DEFAULT_REPLAY_CHANNEL,
        replay_stream_id: int = DEFAULT_REPLAY_STREAM_ID,
        retry_interval_ns: int = DEFAULT_RETRY_INTERVAL_NS,
        image_timeout_ns: int = DEFAULT_IMAGE_TIMEOUT_NS,
        max_message_length: int = MAX_MESSAGE_LENGTH,
    ) -> None:
        """``recording_id()``: the recording to read (negative while there is none); ``limit_counter()``:
        the live counter bounding the read (``None`` while there is none); ``position``: where to start,
        a frame boundary of the recording."""
        if isinstance(position, bool) or not isinstance(position, int) or position < 0 or position & 31:
            raise RecordingFollowerError(f"position must be a non-negative multiple of 32: {position!r}")
        for name, value in (("retry_interval_ns", retry_interval_ns), ("image_timeout_ns", image_timeout_ns)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RecordingFollowerError(f"{name} must be a non-negative int: {value!r}")
        ChannelUri.parse(replay_channel)  # a bad channel fails here, not at the first replay
        self.archive = archive
        self.transport = archive.transport
        self._recording_id = recording_id
        self._limit_counter = limit_counter
        self._position = position
        self.replay_channel = replay_channel
        self.replay_stream_id = replay_stream_id
        self.retry_interval_ns = retry_interval_ns
        self.image_timeout_ns = image_timeout_ns
        self.max_message_length = max_message_length
        self.state = FollowerState.IDLE
        self.reason = "created"
        self._replay: _Replay | None = None
        self._retry_at_ns = 0
        self._assembler = FragmentAssembler(self._on_message, max_message_length)
        self._handler: MessageHandler = _discard
        self._in_message = False
        self._error: BaseException | None = None
        self._end_poll = False  # the handler asked to end the poll after its message
        # what happened, for tools and tests
        self.messages = 0
        self.replays_started = 0
        self.replays_ended = 0
        self.replays_stopped = 0
        self.replay_failures = 0
        self.archive_errors = 0
        self.foreign_bytes_drained = 0

    # ------------------------------------------------------------------ what it tells

    @property
    def position(self) -> int:
        """The log position up to which every message has been delivered."""
        return self._position

    @property
    def replay_session_id(self) -> int:
        """The running replay's session id, or ``NULL_VALUE`` (-1)."""
        return NULL_VALUE if self._replay is None else self._replay.replay_session_id

    @property
    def dropped_messages(self) -> int:
        """Messages the reassembly dropped (too long, broken sequence): never, for a recorded log."""
        a = self._assembler
        return a.broken_sequence_count + a.too_long_count + a.session_limit_count + a.buffer_limit_count

    def _transition(self, state: FollowerState, reason: str) -> None:
        self.state = state
        self.reason = reason

    def seek(self, position: int) -> None:
        """Read on from ``position`` (a message boundary of the recording) instead: a running replay is
        stopped, and the next poll starts one there. Nothing happens if the follower is already there."""
        if isinstance(position, bool) or not isinstance(position, int) or position < 0 or position & 31:
            raise RecordingFollowerError(f"position must be a non-negative multiple of 32: {position!r}")
        if self.state == FollowerState.CLOSED:
            raise RecordingFollowerError("the follower is closed")
        if position == self._position:
            return
        if self._replay is not None:
            self._stop(f"moved from {self._position} to {position}")
        self._position = position

    # ------------------------------------------------------------------ the duty cycle

    def poll(self, handler: MessageHandler, fragment_limit: int) -> int:
        """Deliver what the limit allows, up to ``fragment_limit`` fragments; start, restart or stop the
        replay as needed. Returns the work done (fragments read, plus one per replay started or ended)."""
        if self.state == FollowerState.CLOSED:
            return 0
        if fragment_limit < 1:
            raise RecordingFollowerError(f"fragment_limit must be positive: {fragment_limit!r}")
        work = self._poll_archive()
        counter = self._limit_counter()
        recording_id = self._recording_id()
        replay = self._replay
        if replay is not None:
            stale = self._stale(replay, counter, recording_id)
            if stale is not None:
                self._stop(stale)
                replay = None
                work += 1
        if replay is None:
            if counter is None or recording_id < 0 or counter.get() <= self._position:
                return work
            replay = self._start(counter, recording_id)
            if replay is None:  # refused, or waiting to ask again: nothing to do until then (no busy loop)
                return work
            work += 1
        work += self._drain_foreign(replay)
        image = replay.image
        if image is None:
            image = replay.subscription.image_by_session_id(replay.session_id)
            if image is None:
                if self.transport.clock.nano_time() - replay.requested_ns >= self.image_timeout_ns:
                    self._stop(f"no image of replay {replay.replay_session_id} within the timeout")
                    work += 1
                return work
            # subscribed before the request: the image joins where the replay starts
            assert image.join_position == replay.start_position, (image.join_position, replay.start_position)
            replay.image = image
            self._transition(FollowerState.READING, f"reading replay {replay.replay_session_id}")
        assert counter is not None
        work += self._read(image, handler, fragment_limit, counter.get())
        if image.is_closed:
            self._end(replay, f"replay {replay.replay_session_id} ended at {image.position}")
            work += 1
        return work

    def _stale(self, replay: _Replay, counter: Counter | None, recording_id: int) -> str | None:
        """Why the running replay must stop, or ``None``."""
        if counter is None:
            return "the limit counter is gone"
        if counter is not replay.counter:
            return "the limit counter was replaced"
        if recording_id != replay.recording_id:
            return f"the recording changed from {replay.recording_id} to {recording_id}"
        return None

    def _start(self, counter: Counter, recording_id: int) -> _Replay | None:
        now_ns = self.transport.clock.nano_time()
        if now_ns < self._retry_at_ns:
            return None
        position = self._position
        subscription = self.transport.add_subscription(self.replay_channel, self.replay_stream_id)
        try:
            replay_session_id = self.archive.start_bounded_replay(
                recording_id,
                position,
                REPLAY_ALL_AND_FOLLOW,
                counter.id,
                self.replay_channel,
                self.replay_stream_id,
            )
        except ArchiveError as error:
            subscription.close()
            self.replay_failures += 1
            self._retry_at_ns = now_ns + self.retry_interval_ns
            self._transition(
                FollowerState.IDLE, f"replay of recording {recording_id} from {position} refused: {error}"
            )
            return None
        replay = _Replay(
            recording_id=recording_id,
            counter=counter,
            replay_session_id=replay_session_id,
            session_id=_int32(replay_session_id),
            subscription=subscription,
            start_position=position,
            requested_ns=now_ns,
        )
        self._replay = replay
        self._assembler = FragmentAssembler(self._on_message, self.max_message_length)
        self._in_message = False
        self.replays_started += 1
        self._transition(
            FollowerState.AWAITING_IMAGE,
            f"replay {replay_session_id} of recording {recording_id} from {position}",
        )
        return replay

    def _read(self, image: Image, handler: MessageHandler, fragment_limit: int, bound: int) -> int:
        self._handler = handler
        try:
            fragments = image.controlled_poll(self._on_fragment, fragment_limit, bound)
        finally:
            self._handler = _discard
        if not self._in_message and self._position < image.position <= bound:
            self._position = image.position  # padding read past the last message
        error = self._error
        if error is not None:
            self._error = None
            raise error
        return fragments

    def _on_fragment(self, payload: memoryview, header: Header) -> ControlledAction:
        # the image delivers no frame that ends past the bound
        flags = header.values[2]
        if flags & _UNFRAGMENTED == _UNFRAGMENTED and not self._in_message:
            self._on_message(payload, header)  # a whole message in one frame: nothing to assemble
        else:
            self._in_message = not flags & _END
            self._assembler.on_fragment(payload, header)
        if self._error is not None or self._end_poll:
            self._end_poll = False
            return ControlledAction.BREAK  # the message is consumed; an error leaves from poll
        return ControlledAction.CONTINUE

    def _on_message(self, message: memoryview, header: Header) -> None:
        end_position = header.position()
        self._position = end_position
        self.messages += 1
        try:
            self._end_poll = self._handler(message, end_position) is True
        except BaseException as error:  # re-raised from poll once the image's position is past it
            self._error = error

    def _drain_foreign(self, replay: _Replay) -> int:
        drained = 0
        for image in replay.subscription.images:
            if image.session_id != replay.session_id:
                drained += image.block_poll(_discard, image.term_length)
        self.foreign_bytes_drained += drained
        return 1 if drained else 0

    def _poll_archive(self) -> int:
        errors = 0
        while errors < MAX_PENDING_ERRORS and self.archive.poll_for_error_response() is not None:
            errors += 1
        self.archive_errors += errors
        return errors

    def _end(self, replay: _Replay, reason: str) -> None:
        """The replay's image went: let the subscription go; the next poll starts a new replay."""
        self._replay = None
        replay.subscription.close()
        self.replays_ended += 1
        self._transition(FollowerState.IDLE, reason)

    def _stop(self, reason: str) -> None:
        """Stop the running replay (read nothing more of it) and let its subscription go."""
        replay = self._replay
        assert replay is not None
        self._replay = None
        replay.subscription.close()
        try:
            self.archive.stop_replay(replay.replay_session_id)
        except ArchiveError:
            self.archive_errors += 1
        self.replays_stopped += 1
        self._transition(FollowerState.IDLE, reason)

    def close(self) -> None:
        """Stop the replay, if one runs; the follower reads nothing more. The archive client stays the
        caller's. Idempotent."""
        if self.state == FollowerState.CLOSED:
            return
        if self._replay is not None:
            self._stop("closed")
        self._transition(FollowerState.CLOSED, "closed")
