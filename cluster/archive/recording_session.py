"""``RecordingSession``: one image copied into one recording's segment files.

Theory of operation
-------------------
Each image that appears on a recording subscription becomes a recording session (a new recording, or
the continuation of a stopped one when it was asked for with ``extend_recording``). Every duty cycle the
session takes one block of whole frames straight from the image's term (``Image.block_poll``) and the
``RecordingWriter`` copies it, headers included, into the segment file at the block's position and syncs
it at the archive's file-sync level. Only then does the recording-position counter move: the counter
is what is durable (to the sync level), which is what Aeron Cluster relies on when it reads the counter
as a member's append position.

The session ends when its image goes (end of stream, or the publisher timed out), when it is aborted
(stop requests, shutdown), or when writing fails (a ``StorageError`` or ``SegmentError``: the recording
keeps what was written before the failure). The conductor then records the stop position and time in
the catalog, sends the STOP signal and releases the counter.
"""

from __future__ import annotations

import enum
from typing import Any

from cluster.archive.errors import ArchiveError
from cluster.storage import StorageError
from cluster.transport.counters import Counter
from cluster.transport.image import Image

__all__ = ["RecordingSession", "RecordingSessionState"]


class RecordingSessionState(enum.IntEnum):
    RECORDING = 0
    STOPPING = 1
    DONE = 2


class RecordingSession:
    def __init__(
        self,
        *,
        recording_id: int,
        correlation_id: int,
        control_session: Any,
        subscription_id: int,
        image: Image,
        writer: Any,
        position_counter: Counter,
        auto_stop: bool,
        block_length_limit: int,
    ) -> None:
        self.recording_id = recording_id
        self.correlation_id = correlation_id
        self.control_session = control_session
        self.subscription_id = subscription_id
        self.image = image
        self.writer = writer
        self.position_counter = position_counter
        self.auto_stop = auto_stop
        self.block_length_limit = block_length_limit
        self.state = RecordingSessionState.RECORDING
        self.reason = ""
        self.error: Exception | None = None

    @property
    def recorded_position(self) -> int:
        return int(self.writer.position)

    def abort(self, reason: str) -> None:
        if self.state == RecordingSessionState.RECORDING:
            self.state = RecordingSessionState.STOPPING
            self.reason = reason

    def do_work(self, now_ns: int) -> int:
        if self.state != RecordingSessionState.RECORDING:
            return 0
        image = self.image
        try:
            consumed = image.committed_block_poll(self.writer.on_block, self.block_length_limit)
        except (StorageError, ArchiveError) as error:
            self.error = error
            self.abort(f"recording {self.recording_id} failed: {error}")
            return 1
        if consumed > 0:
            self.position_counter.set(self.writer.position)
            return 1
        if image.is_closed or image.is_end_of_stream:
            self.abort("image closed" if image.is_closed else "end of stream")
            return 1
        return 0

    def close(self) -> None:
        self.state = RecordingSessionState.DONE
        try:
            self.writer.close()
        finally:
            self.position_counter.close()
