"""``ControlSession``: one client's conversation with the archive.

Theory of operation
-------------------
A client opens a session with a connect request naming its response channel and stream. The archive
adds an exclusive publication there (with the client's request ``session-id`` if the channel names one,
as Aeron's client does, so the response image has the session id the client expects) and the session
walks these states, one transition function recording why (``ControlSessionState``, Aeron's names and
codes)::

    INIT -> CONNECTING --(response publication connected)--> CONNECTED
    CONNECTED --(version ok; authenticator)--> AUTHENTICATED | CHALLENGED | REJECTED
    CHALLENGED --(challenge response; authenticator)--> AUTHENTICATED | REJECTED
    AUTHENTICATED --(OK response sent, relevantId = controlSessionId)--> ACTIVE
    REJECTED --(ERROR response sent)--> INACTIVE
    any --(timeout, close request, response publication lost, abort)--> INACTIVE -> DONE

While ACTIVE the conductor handles its requests. Every message for the client goes through one
bounded FIFO queue in front of the publication, so responses, listing entries and recording signals
reach the client in the order the archive produced them, whatever the back pressure; a client that
lets the queue fill (``MAX_QUEUED_MESSAGES``) is dropped. Once every liveness interval (the first a
whole interval after the connect request), busy or not, an ACTIVE session sends an OK with
correlationId -1 and relevantId -1 (``NULL_VALUE``), which lets both ends notice a dead peer: Java's
archive does the same (its capture shows one every second, the first right behind other responses).
A session that cannot connect its response publication, or is undecided by the authenticator, within
the connect timeout goes INACTIVE; so does one whose response publication loses its subscriber.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from cluster.archive.auth import Authenticator
from cluster.archive.catalog import RecordingDescriptor
from cluster.archive.control_proxy import ControlResponseProxy
from cluster.archive.errors import ArchiveError
from cluster.archive.protocol import NULL_VALUE, ArchiveErrorCode
from cluster.transport.errors import TransportError
from cluster.transport.publication import Publication
from generated.aeron_archive_codecs import ControlResponseCode, RecordingSignal

if TYPE_CHECKING:
    from cluster.archive.listing import ListingSession

__all__ = ["MAX_QUEUED_MESSAGES", "ControlSession", "ControlSessionState"]

MAX_QUEUED_MESSAGES = 4096


class ControlSessionState(enum.IntEnum):
    INIT = 0
    CONNECTING = 1
    CONNECTED = 2
    CHALLENGED = 3
    AUTHENTICATED = 4
    ACTIVE = 5
    INACTIVE = 6
    REJECTED = 7
    DONE = 8


class ControlSession:
    """One client session (see the module docstring)."""

    def __init__(
        self,
        *,
        control_session_id: int,
        correlation_id: int,
        request_image_session_id: int | None,
        response_publication_factory: Callable[[], Publication],
        proxy: ControlResponseProxy,
        authenticator: Authenticator,
        invalid_version_message: str | None,
        connect_timeout_ns: int,
        liveness_interval_ns: int,
        now_ns: int,
        epoch_ms: Callable[[], int],
        on_state: Callable[[ControlSession, ControlSessionState, ControlSessionState, str], None]
        | None = None,
    ) -> None:
        self.control_session_id = control_session_id
        self.correlation_id = correlation_id
        self.request_image_session_id = request_image_session_id
        self._publication_factory = response_publication_factory
        self.publication: Publication | None = None
        self._proxy = proxy
        self._authenticator = authenticator
        self._invalid_version_message = invalid_version_message
        self._connect_timeout_ns = connect_timeout_ns
        self._liveness_interval_ns = liveness_interval_ns
        self._deadline_ns = now_ns + connect_timeout_ns
        self._liveness_deadline_ns = now_ns + liveness_interval_ns
        self._epoch_ms = epoch_ms
        self._on_state = on_state
        self._queue: deque[bytes] = deque()
        self.state = ControlSessionState.INIT
        self.reason = ""
        self.encoded_principal = b""
        self.active_listing: ListingSession | None = None

    # ------------------------------------------------------------------ state

    def _transition(self, state: ControlSessionState, reason: str) -> None:
        old = self.state
        if old == state:
            return
        self.state = state
        self.reason = reason
        if self._on_state is not None:
            self._on_state(self, old, state, reason)

    @property
    def is_active(self) -> bool:
        return self.state == ControlSessionState.ACTIVE

    @property
    def is_done(self) -> bool:
        return self.state == ControlSessionState.DONE

    def abort(self, reason: str) -> None:
        """Close the session on the next duty cycle (a close request, a lost client, shutdown)."""
        if self.state not in (ControlSessionState.INACTIVE, ControlSessionState.DONE):
            self._transition(ControlSessionState.INACTIVE, reason)

    # ------------------------------------------------------------------ sending

    def _send(self, message: bytes) -> None:
        """Queue ``message`` behind anything not yet sent, then send what the publication takes."""
        if self.state in (ControlSessionState.INACTIVE, ControlSessionState.DONE):
            return
        if len(self._queue) >= MAX_QUEUED_MESSAGES:
            self.abort(f"the client is not reading: {MAX_QUEUED_MESSAGES} messages queued")
            return
        self._queue.append(message)
        self._drain()

    def _drain(self) -> int:
        publication = self.publication
        if publication is None or not self._queue:
            return 0
        sent = 0
        queue = self._queue
        while queue:
            if not self._proxy.offer(publication, queue[0]):
                break
            queue.popleft()
            sent += 1
        return sent

    def send_ok(self, correlation_id: int, relevant_id: int = 0) -> None:
        self._send(
            self._proxy.response_bytes(
                self.control_session_id, correlation_id, relevant_id, ControlResponseCode.OK
            )
        )

    def send_error(
        self, correlation_id: int, message: str, code: ArchiveErrorCode = ArchiveErrorCode.GENERIC
    ) -> None:
        self._send(
            self._proxy.response_bytes(
                self.control_session_id, correlation_id, int(code), ControlResponseCode.ERROR, message
            )
        )

    def send_recording_unknown(self, correlation_id: int, recording_id: int) -> None:
        self._send(
            self._proxy.response_bytes(
                self.control_session_id, correlation_id, recording_id, ControlResponseCode.RECORDING_UNKNOWN
            )
        )

    def send_subscription_unknown(self, correlation_id: int) -> None:
        self._send(
            self._proxy.response_bytes(
                self.control_session_id, correlation_id, 0, ControlResponseCode.SUBSCRIPTION_UNKNOWN
            )
        )

    def send_descriptor(self, correlation_id: int, descriptor: RecordingDescriptor) -> None:
        self._send(self._proxy.descriptor_bytes(self.control_session_id, correlation_id, descriptor))

    def send_subscription_descriptor(
        self, correlation_id: int, subscription_id: int, stream_id: int, channel: str
    ) -> None:
        self._send(
            self._proxy.subscription_descriptor_bytes(
                self.control_session_id, correlation_id, subscription_id, stream_id, channel
            )
        )

    def send_signal(
        self,
        correlation_id: int,
        recording_id: int,
        subscription_id: int,
        position: int,
        signal: RecordingSignal,
    ) -> None:
        self._send(
            self._proxy.signal_bytes(
                self.control_session_id, correlation_id, recording_id, subscription_id, position, int(signal)
            )
        )

    @property
    def queued_messages(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------------ authentication (SessionProxy)

    @property
    def session_id(self) -> int:
        return self.control_session_id

    def challenge(self, encoded_challenge: bytes) -> bool:
        if self.state != ControlSessionState.CONNECTED:
            return False
        self._send(
            self._proxy.challenge_bytes(self.control_session_id, self.correlation_id, encoded_challenge)
        )
        self._transition(ControlSessionState.CHALLENGED, "authenticator challenged")
        return True

    def authenticate(self, encoded_principal: bytes = b"") -> bool:
        if self.state not in (ControlSessionState.CONNECTED, ControlSessionState.CHALLENGED):
            return False
        self.encoded_principal = bytes(encoded_principal)
        self._transition(ControlSessionState.AUTHENTICATED, "authenticator accepted")
        return True

    def reject(self) -> None:
        if self.state in (ControlSessionState.CONNECTED, ControlSessionState.CHALLENGED):
            self._transition(ControlSessionState.REJECTED, "authenticator rejected")

    def on_challenge_response(self, correlation_id: int, encoded_credentials: bytes) -> None:
        if self.state == ControlSessionState.CHALLENGED:
            self.correlation_id = correlation_id
            self._authenticator.on_challenge_response(
                self.control_session_id, encoded_credentials, self._epoch_ms()
            )

    # ------------------------------------------------------------------ duty cycle

    def do_work(self, now_ns: int) -> int:
        return _STATE_WORK[self.state](self, now_ns)

    def _work_init(self, now_ns: int) -> int:
        try:
            self.publication = self._publication_factory()
        except (ArchiveError, TransportError, OSError) as error:  # this session fails, nothing else
            self.abort(f"cannot add the response publication: {error}")
            return 1
        self._transition(ControlSessionState.CONNECTING, "response publication added")
        return 1

    def _work_connecting(self, now_ns: int) -> int:
        assert self.publication is not None
        if self.publication.is_connected:
            self._deadline_ns = now_ns + self._connect_timeout_ns
            self._transition(ControlSessionState.CONNECTED, "response publication connected")
            return 1
        if now_ns >= self._deadline_ns:
            self.abort("response publication not connected within the connect timeout")
            return 1
        return 0

    def _work_connected(self, now_ns: int) -> int:
        if self._invalid_version_message is not None:
            self.send_error(self.correlation_id, self._invalid_version_message)
            self._transition(ControlSessionState.INACTIVE, self._invalid_version_message)
            return 1
        self._authenticator.on_connected_session(self, self._epoch_ms())
        return self._check_undecided(now_ns)

    def _work_challenged(self, now_ns: int) -> int:
        work = self._drain()
        self._authenticator.on_challenged_session(self, self._epoch_ms())
        return work + self._check_undecided(now_ns)

    def _check_undecided(self, now_ns: int) -> int:
        if self.state in (ControlSessionState.CONNECTED, ControlSessionState.CHALLENGED):
            if now_ns >= self._deadline_ns:
                self.abort("authentication not decided within the connect timeout")
            return 0
        return 1

    def _work_authenticated(self, now_ns: int) -> int:
        self.send_ok(self.correlation_id, self.control_session_id)
        self._transition(ControlSessionState.ACTIVE, "connected")
        return 1

    def _work_active(self, now_ns: int) -> int:
        work = self._drain()
        publication = self.publication
        assert publication is not None
        if not publication.is_connected:
            self.abort("response publication lost its subscriber")
            return 1
        if now_ns >= self._liveness_deadline_ns:
            self._liveness_deadline_ns = now_ns + self._liveness_interval_ns
            self.send_ok(NULL_VALUE, NULL_VALUE)
            work += 1
        return work

    def _work_rejected(self, now_ns: int) -> int:
        self.send_error(
            self.correlation_id, "authentication rejected", ArchiveErrorCode.AUTHENTICATION_REJECTED
        )
        self._drain()
        self._transition(ControlSessionState.INACTIVE, "authentication rejected")
        return 1

    def _work_inactive(self, now_ns: int) -> int:
        self._drain()  # a last try for an error response
        if self.publication is not None:
            self.publication.close()
        self._queue.clear()
        self.active_listing = None
        self._transition(ControlSessionState.DONE, self.reason)
        return 1

    def _work_done(self, now_ns: int) -> int:
        return 0


_STATE_WORK: dict[ControlSessionState, Callable[[ControlSession, int], int]] = {
    ControlSessionState.INIT: ControlSession._work_init,
    ControlSessionState.CONNECTING: ControlSession._work_connecting,
    ControlSessionState.CONNECTED: ControlSession._work_connected,
    ControlSessionState.CHALLENGED: ControlSession._work_challenged,
    ControlSessionState.AUTHENTICATED: ControlSession._work_authenticated,
    ControlSessionState.ACTIVE: ControlSession._work_active,
    ControlSessionState.INACTIVE: ControlSession._work_inactive,
    ControlSessionState.REJECTED: ControlSession._work_rejected,
    ControlSessionState.DONE: ControlSession._work_done,
}
