"""``MessageRecorder``: a list of messages made into a new recording of the local archive, a duty cycle at
a time -- how a service and the consensus module write their snapshots.

Theory of operation
-------------------
The recorder adds an exclusive publication on ``channel`` and ``stream_id`` (IPC: ``aeron:ipc?alias=
snapshot`` and 106 or 107 for snapshots), asks the archive to record that publication's session alone
(a LOCAL recording of the channel with its ``session-id``), and then, from ``do_work``:

1. **awaits the recording**: the archive has started it once a recording-position counter for the
   publication's session exists; its key names the recording id;
2. **writes** the messages in order, as many as the publication takes each cycle (back pressure, or a
   publication that still waits for the archive's subscription, leaves the rest for the next cycle);
3. **awaits the archive**: once the recording's position reaches the publication's, every byte is in
   the recording; the recorder stops the recording and closes its publication, and is ``DONE`` with
   ``recording_id``.

Nothing blocks: the node's single thread runs the archive between the recorder's cycles. Any step that
takes longer than ``timeout_ns`` on the transport's clock, a message the publication refuses for good
(too long, closed), or an archive request that fails ends it ``FAILED`` with ``error`` saying why; it then
stops its recording (when it has one) and closes its publication. The recording a failure leaves behind
is not named anywhere, so nobody loads it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Final

from cluster.archive.archive import RECORDING_POSITION_TYPE_ID
from cluster.archive.client import ArchiveClient
from cluster.archive.errors import ArchiveError
from cluster.transport.counters import Counter
from cluster.transport.driver import Transport
from cluster.transport.errors import TransportError
from cluster.transport.logbuffer import ADMIN_ACTION, BACK_PRESSURED, NOT_CONNECTED
from cluster.transport.publication import offer_past_rotation
from cluster.transport.uri import ChannelUri
from generated.aeron_archive_codecs import SourceLocation

__all__ = ["DEFAULT_TIMEOUT_NS", "MessageRecorder", "RecorderState"]

DEFAULT_TIMEOUT_NS: Final = 10_000_000_000
_WAIT_RESULTS: Final = frozenset({BACK_PRESSURED, NOT_CONNECTED, ADMIN_ACTION})
_NULL_SUBSCRIPTION: Final = -1


class RecorderState(enum.Enum):
    AWAITING_RECORDING = "awaiting the recording"
    WRITING = "writing"
    AWAITING_ARCHIVE = "awaiting the archive"
    DONE = "done"
    FAILED = "failed"


class MessageRecorder:
    """Records ``messages`` into a new local recording (see the module docstring)."""

    def __init__(
        self,
        transport: Transport,
        archive: ArchiveClient,
        channel: str,
        stream_id: int,
        messages: Iterable[bytes | bytearray | memoryview],
        *,
        timeout_ns: int = DEFAULT_TIMEOUT_NS,
    ) -> None:
        self.transport = transport
        self.archive = archive
        self.stream_id = stream_id
        self.timeout_ns = timeout_ns
        self._messages = list(messages)
        self._next = 0
        self.recording_id = -1
        self.error = ""
        self.state = RecorderState.AWAITING_RECORDING
        self._counter: Counter | None = None
        self._subscription_id = _NULL_SUBSCRIPTION
        self._since_ns = transport.clock.nano_time()
        self.publication = transport.add_exclusive_publication(channel, stream_id)
        self.session_id = self.publication.session_id
        recorded = ChannelUri.parse(channel).with_params(session_id=self.session_id).build()
        try:
            self._subscription_id = archive.start_recording(recorded, stream_id, SourceLocation.LOCAL)
        except ArchiveError as error:
            self._fail(f"the archive would not record {recorded} stream {stream_id}: {error}")

    @property
    def done(self) -> bool:
        """Finished, either way: ``DONE`` (``recording_id`` holds every message) or ``FAILED``."""
        return self.state in (RecorderState.DONE, RecorderState.FAILED)

    def do_work(self) -> int:
        state = self.state
        if state == RecorderState.AWAITING_RECORDING:
            return self._await_recording()
        if state == RecorderState.WRITING:
            return self._write()
        if state == RecorderState.AWAITING_ARCHIVE:
            return self._await_archive()
        return 0

    def close(self) -> None:
        """Give up (a recorder that is not done fails) and release the publication."""
        if not self.done:
            self._fail("closed before it was done")

    # ------------------------------------------------------------------ steps

    def _timed_out(self, what: str) -> bool:
        if self.transport.clock.nano_time() - self._since_ns < self.timeout_ns:
            return False
        self._fail(f"timed out {what} after {self.timeout_ns // 1_000_000} ms")
        return True

    def _move(self, state: RecorderState) -> None:
        self.state = state
        self._since_ns = self.transport.clock.nano_time()

    def _await_recording(self) -> int:
        session_id = self.session_id.to_bytes(4, "little", signed=True)
        counter = self.transport.counters_manager.find(
            RECORDING_POSITION_TYPE_ID, lambda key: len(key) >= 12 and key[8:12] == session_id
        )
        if counter is None:
            self._timed_out("waiting for the archive to start recording")
            return 0
        self._counter = counter
        self.recording_id = int.from_bytes(counter.key[:8], "little", signed=True)
        self._move(RecorderState.WRITING)
        return 1

    def _write(self) -> int:
        messages = self._messages
        publication = self.publication
        written = 0
        while self._next < len(messages):
            try:
                result = offer_past_rotation(publication, messages[self._next])
            except TransportError as error:
                self._fail(f"the publication refused message {self._next}: {error}")
                return written + 1
            if result < 0:
                if result not in _WAIT_RESULTS:
                    self._fail(f"the publication refused message {self._next} ({result})")
                    return written + 1
                if written == 0:
                    self._timed_out(f"writing message {self._next} of {len(messages)}")
                return written
            self._next += 1
            written += 1
            self._since_ns = self.transport.clock.nano_time()
        self._move(RecorderState.AWAITING_ARCHIVE)
        return written + 1

    def _await_archive(self) -> int:
        counter = self._counter
        assert counter is not None
        if counter.is_closed or counter.get() < self.publication.position:
            if counter.is_closed:
                self._fail("the recording stopped before it held every message")
            else:
                self._timed_out("waiting for the archive to record every message")
            return 0
        self._release()
        self.state = RecorderState.DONE
        return 1

    def _release(self) -> None:
        subscription_id, self._subscription_id = self._subscription_id, _NULL_SUBSCRIPTION
        try:
            if subscription_id != _NULL_SUBSCRIPTION:
                self.archive.stop_recording_subscription(subscription_id)
        finally:
            self.publication.close()

    def _fail(self, why: str) -> None:
        self.state = RecorderState.FAILED
        self.error = why
        try:
            self._release()
        except ArchiveError as error:
            self.error = f"{why}; stopping the recording failed too: {error}"
