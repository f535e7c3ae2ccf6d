"""``ReplaySession``: a recording read back from its segment files onto a publication.

Theory of operation
-------------------
The conductor creates the replay publication with the recording's initial term id, term length and MTU
and an initial position equal to the replay's start (``init-term-id``, ``term-id`` and ``term-offset`` on
the channel), so a subscriber sees every frame at the position it was recorded at. The replay session id
is ``(replay_id << 32) | publication_session_id``; its low 32 bits are the session id of the image the
client subscribes to.

Once the publication is connected (within the connect timeout, else the replay fails), each duty cycle
reads the next run of whole frames (at most ``file_io_max_length`` bytes, never across a term end) from
the segment files, writes the publication's session id and the replay stream id into each frame header
(everything else -- flags, term id, term offset, reserved value, payload -- stays as recorded), and
appends the run with ``offer_block``. A run the publication refuses (back pressure) is kept and offered
again; nothing is read twice or skipped.

How far it goes: ``replay_length`` bytes from the start, and never past the *limit*: the recording's stop
position once it has stopped, the recording-position counter of a live recording (so a replay can follow
a recording that is still being written), or the counter a bounded replay names. When a followed
recording stops, the replay finishes at the stop position. Closing the publication ends the stream
(the subscriber sees end of stream, unless the channel says ``eos=false``).

The two ends differ where they fall inside a frame, as in Aeron. A frame that starts before the end of
``replay_length`` goes whole, and the replay ends after it. The limit is a position no replayed byte may
pass: only frames that end at or before it are sent (the reader cuts each block at the last such frame
end, ``RecordingReader.read_block(max_length, limit_position)``), so a bounded replay whose counter stands
inside a frame holds that frame back until the counter reaches its end. A limit that can no longer move
(a stopped recording, a closed counter) with no whole frame below it ends the replay there: a recording
truncated inside a frame replays up to that frame's start. If no frame is there at all -- data missing
below the recording's own limit -- the replay fails with an error instead. When the limit is at or
beyond the end of what a read may take -- the common case -- the block is the same as without it.
"""

from __future__ import annotations

import enum
import struct
import sys
from array import array
from collections.abc import Callable
from typing import Any

from cluster.archive.errors import ArchiveError
from cluster.archive.protocol import ArchiveErrorCode
from cluster.storage import StorageError
from cluster.transport.publication import Publication

__all__ = ["ReplaySession", "ReplaySessionState", "rewrite_frame_ids"]

HEADER_LENGTH = 32
_SESSION_AND_STREAM = struct.Struct("<ii")  # session_id @12, stream_id @16 of a data frame header
_FRAME_LENGTH = struct.Struct("<i")
_LENGTH_AND_TYPE = struct.Struct("<i2xH")  # frame_length @0, type @6
_PAD = 0


_REWRITE_RUNS = sys.byteorder == "little"  # the run rewrite writes the two ids as one native int64
_MIN_RUN_LENGTH = 8 * 64  # below this the frame-by-frame rewrite is as quick


def _rewrite_run(block: bytearray, length: int, session_id: int, stream_id: int) -> bool:
    """Rewrite ``block[:length]`` at once if it is frames of one length that cover it exactly; ``False``
    (nothing written) if not."""
    frame_length = _FRAME_LENGTH.unpack_from(block, 0)[0]
    if frame_length < HEADER_LENGTH:
        return False
    aligned = (frame_length + 31) & -32
    if length % aligned:
        return False
    count = length // aligned
    with memoryview(block) as view:
        with view[:length].cast("i") as words:
            step = aligned >> 2  # frame_length of every frame but the first == that of the one before it
            if words[: (length >> 2) - step : step] != words[step::step]:
                return False
        # the 8 bytes at 12 in each frame (session_id, stream_id) are long 1 of a view from byte 4 on
        with view[4 : length - 4].cast("q") as longs:
            longs[1 :: aligned >> 3] = array("q", ((stream_id << 32) | (session_id & 0xFFFF_FFFF),)) * count
    return True


class ReplaySessionState(enum.IntEnum):
    CONNECTING = 0
    REPLAY = 1
    INACTIVE = 2
    DONE = 3


def rewrite_frame_ids(block: bytearray, length: int, session_id: int, stream_id: int) -> None:
    """Write ``session_id`` and ``stream_id`` into every frame header of ``block[:length]``.

    Frames that all have the same length (a stream of equal messages) are rewritten at once, with one
    strided memoryview assignment; otherwise frame by frame."""
    if _REWRITE_RUNS and length >= _MIN_RUN_LENGTH and _rewrite_run(block, length, session_id, stream_id):
        return
    offset = 0
    pack = _SESSION_AND_STREAM.pack_into
    unpack = _FRAME_LENGTH.unpack_from
    while offset < length:
        frame_length = unpack(block, offset)[0]
        pack(block, offset + 12, session_id, stream_id)
        offset += (frame_length + 31) & -32


class ReplaySession:
    def __init__(
        self,
        *,
        replay_session_id: int,
        recording_id: int,
        correlation_id: int,
        control_session: Any,
        publication: Publication,
        reader: Any,
        replay_position: int,
        replay_length: int,
        limit_position: Callable[[], tuple[int, bool]],
        file_io_max_length: int,
        connect_timeout_ns: int,
        now_ns: int,
    ) -> None:
        self.replay_session_id = replay_session_id
        self.recording_id = recording_id
        self.correlation_id = correlation_id
        self.control_session = control_session
        self.publication = publication
        self.reader = reader
        self.position = replay_position
        self.end_position = replay_position + replay_length if replay_length < (1 << 62) else 1 << 62
        self._limit_position = limit_position
        self.file_io_max_length = file_io_max_length
        self._deadline_ns = now_ns + connect_timeout_ns
        self.state = ReplaySessionState.CONNECTING
        self.reason = ""
        self.error_code: ArchiveErrorCode | None = None
        self._pending = bytearray(max(file_io_max_length, HEADER_LENGTH))
        self._pending_length = 0

    @property
    def is_done(self) -> bool:
        return self.state == ReplaySessionState.DONE

    def abort(self, reason: str) -> None:
        if self.state in (ReplaySessionState.CONNECTING, ReplaySessionState.REPLAY):
            self.state = ReplaySessionState.INACTIVE
            self.reason = reason

    def _fail(self, reason: str, code: ArchiveErrorCode = ArchiveErrorCode.GENERIC) -> None:
        self.error_code = code
        self.abort(reason)

    def _end_at_final_limit(self, limit: int) -> int:
        """The limit can no longer move and no whole frame fits below it: complete if a frame is there
        and only ends past the limit (a recording truncated inside a frame); fail if none is -- the
        recording's data is missing below its own limit (a lost segment file, a hole)."""
        try:
            beyond = self.reader.read_block(HEADER_LENGTH)  # at least one whole frame, whatever its end
        except (StorageError, ArchiveError) as error:
            self._fail(f"replay of recording {self.recording_id} failed: {error}")
            return 1
        if beyond is None:
            self._fail(
                f"replay of recording {self.recording_id} failed: no frame at position {self.position}, "
                f"below the recording's limit {limit}"
            )
        else:
            self.abort("replay complete")
        return 1

    def do_work(self, now_ns: int) -> int:
        state = self.state
        if state == ReplaySessionState.CONNECTING:
            if self.publication.is_connected:
                self.state = ReplaySessionState.REPLAY
                return 1
            if now_ns >= self._deadline_ns:
                self._fail("no connection established for replay")
                return 1
            return 0
        if state == ReplaySessionState.REPLAY:
            return self._replay()
        if state == ReplaySessionState.INACTIVE:
            self.close()
            return 1
        return 0

    def _replay(self) -> int:
        if not self.publication.is_connected:
            self.abort("replay publication is not connected")
            return 1
        if self._pending_length == 0:
            limit, may_grow = self._limit_position()
            end = min(self.end_position, limit)
            if self.position >= end:
                if self.position >= self.end_position or not may_grow:
                    self.abort("replay complete")
                    return 1
                return 0  # following a live recording: wait for more
            # no further than the publication may go: a block is appended whole once it starts below
            # the limit, and a block that ran a term past the slowest reader would have the publication
            # clean the partition that reader is still in (a frame longer than the window still goes)
            window = self.publication.position_limit - self.position
            if window <= 0:
                return 0
            # the read is as long as the length, the file I/O length and the window allow (a frame that
            # starts before the replay's end but ends after it still goes whole) and holds only frames
            # that end at or before the limit: the reader cuts a block there, frame by frame
            max_length = min(self.file_io_max_length, self.end_position - self.position, window)
            try:
                block = self.reader.read_block(max(max_length, HEADER_LENGTH), limit)
            except (StorageError, ArchiveError) as error:
                self._fail(f"replay of recording {self.recording_id} failed: {error}")
                return 1
            if block is None:
                if may_grow:
                    return 0  # the next frame ends past the limit, or is not written yet: wait
                return self._end_at_final_limit(limit)
            length = len(block)
            pending = self._pending
            pending[:length] = block
            frame_length, frame_type = _LENGTH_AND_TYPE.unpack_from(pending, 0)
            if frame_type == _PAD and length == HEADER_LENGTH and frame_length > HEADER_LENGTH:
                # the recording keeps a padding frame's header only; the log needs all of it
                length = (frame_length + 31) & -32
                if len(pending) < length:
                    self._pending = pending = bytearray(length)
                    pending[:HEADER_LENGTH] = block
                else:
                    pending[HEADER_LENGTH:length] = bytes(length - HEADER_LENGTH)
            self._pending_length = length
            rewrite_frame_ids(self._pending, length, self.publication.session_id, self.publication.stream_id)
        length = self._pending_length
        result = self.publication.offer_block(self._pending, 0, length)
        if result > 0:
            self.position += length
            self._pending_length = 0
            return 1
        return 0

    def close(self) -> None:
        if self.state != ReplaySessionState.DONE:
            self.state = ReplaySessionState.DONE
            self.publication.close()
            close = getattr(self.reader, "close", None)
            if close is not None:
                close()
