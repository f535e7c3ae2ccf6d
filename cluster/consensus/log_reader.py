"""``LogReader``: the consensus module reads its own log back (the core's ``ReadLog``), through a bounded
replay of the log recording from the node's archive.

Theory of operation
-------------------
The core asks for the log from a position up to a limit (``read(position, limit)``). The reader keeps the
limit in a counter of its own, and asks the archive for a replay of the log recording from its position,
with no length, bounded by that counter (a *bounded replay*): the archive sends nothing past the counter
and follows it as it grows. The replay arrives over IPC on the replay stream; the reader takes only its
own replay's image (the image's session id is the replay session id's low 32 bits) and hands every whole
message (fragments reassembled) to ``on_entry(message, end position)``, and a position reached with no
message ending there (padding at a term's end) to ``on_position``.

A ``read`` from somewhere else than where the reader is, a replay that ends (the archive stops every
replay before it truncates the recording) or an image that goes: the reader stops its replay and starts a
new one from its own position on its next poll -- so the entries come without a gap and without a
repeat.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Final

from cluster.archive.client import ArchiveClient, ArchiveClientError
from cluster.archive.protocol import NULL_VALUE
from cluster.transport.counters import Counter
from cluster.transport.driver import Transport
from cluster.transport.image import Image, Subscription
from cluster.transport.logbuffer import FragmentAssembler, Header

__all__ = ["LOG_READ_LIMIT_TYPE_ID", "LogReader"]

LOG_READ_LIMIT_TYPE_ID: Final = 1_100  # our own counter type: how far the consensus module reads its log
_MAX_LENGTH: Final = (1 << 63) - 1


class LogReader:
    """Reads the log recording back to the consensus module (see the module docstring)."""

    def __init__(
        self,
        transport: Transport,
        archive: ArchiveClient,
        *,
        member_id: int,
        replay_channel: str,
        replay_stream_id: int,
    ) -> None:
        self.transport = transport
        self.archive = archive
        self.position = 0
        self.limit = 0
        self.recording_id = -1
        self._limit_counter: Counter = transport.counters_manager.allocate(
            LOG_READ_LIMIT_TYPE_ID, f"Cluster log read limit: memberId={member_id}"
        )
        self._subscription: Subscription = transport.add_subscription(replay_channel, replay_stream_id)
        self._replay_channel = replay_channel
        self._replay_stream_id = replay_stream_id
        self._replay_session_id = NULL_VALUE
        self._image: Image | None = None
        self._assembler = FragmentAssembler(self._on_fragment)
        self._on_entry: Callable[[memoryview, int], object] | None = None
        self.restarts = 0
        self.is_closed = False

    def read(self, recording_id: int, position: int, limit: int) -> None:
        """Read ``recording_id`` from ``position`` up to ``limit`` (a new replay unless the reader is
        already at ``position``)."""
        moved = recording_id != self.recording_id or position != self.position
        if moved or limit < self._limit_counter.get():
            # elsewhere, or a lower limit than the replay may already have sent to: a new replay
            self._stop_replay()
            self.recording_id = recording_id
            self.position = position
        self.limit = limit
        self._limit_counter.set(limit)

    def _replay_active(self) -> bool:
        return self._replay_session_id != NULL_VALUE

    def poll(
        self,
        on_entry: Callable[[memoryview, int], object],
        on_position: Callable[[int], object],
        fragment_limit: int,
    ) -> int:
        """Deliver what the replay has brought, up to the limit; start or restart the replay as needed."""
        if self.is_closed or self.recording_id < 0 or self.position >= self.limit:
            return 0
        if not self._replay_active():
            self._start_replay()
            return 1
        image = self._image
        if image is None:
            image = self._subscription.image_by_session_id(self._replay_session_id & 0xFFFFFFFF)
            if image is None:
                return 0
            self._image = image
        if image.is_closed:
            self._stop_replay()  # the replay ended or was stopped: start again from our position
            self.restarts += 1
            return 1
        self._on_entry = on_entry
        before = self.position
        work = image.poll(self._assembler.on_fragment, fragment_limit)
        reached = image.position
        if reached > self.position and reached <= self.limit:
            self.position = reached
            on_position(reached)
        if image.is_end_of_stream and reached == before:
            self._stop_replay()
        return work

    def _on_fragment(self, buffer: memoryview, header: Header) -> None:
        end = header.position()
        if end > self.limit or end <= self.position:
            return  # cannot happen with a bounded replay; never hand the core what it did not ask for
        self.position = end
        assert self._on_entry is not None
        self._on_entry(buffer, end)

    def _start_replay(self) -> None:
        self._limit_counter.set(self.limit)
        self._replay_session_id = self.archive.start_bounded_replay(
            self.recording_id,
            self.position,
            _MAX_LENGTH,
            self._limit_counter.id,
            self._replay_channel,
            self._replay_stream_id,
        )
        self._image = None

    def _stop_replay(self) -> None:
        if self._replay_active():
            replay, self._replay_session_id = self._replay_session_id, NULL_VALUE
            image = self._image
            self._image = None
            if image is not None:
                self._assembler.free_session(image.session_id)
            if not self.archive.is_closed:
                with contextlib.suppress(ArchiveClientError):  # the replay had already ended
                    self.archive.stop_replay(replay)

    def close(self) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        self._stop_replay()
        self._subscription.close()
        self._limit_counter.close()
