"""Client sessions, the services' timers and the services' messages: the consensus module's state that
the log carries, sans-IO.

Theory of operation
-------------------
``ClientSessions`` is owned by ``ConsensusCore``, which calls it with what arrives and hands it an
``Out`` to put actions in (docs/sessions.md has the whole flow).

**Two ways to learn.** A *leader* changes this state as it appends: it opens a session when its
SessionOpenEvent is appended (``on_log_appended``), fires a timer when its TimerEvent is, and so on --
before the entry commits. Every other member learns the same state only from the committed log, which
the driver reads back to it (``on_log_entry``). ``consumed_position`` is how far the state reflects the
log. What a leader did that is not committed yet is remembered (docs/sessions.md, "Rollback"): when an
election starts, it is undone -- sessions opened after the commit position are closed (their clients are
told CLOSED "election"), connects in progress are dropped, closes are taken back, fired timers are
scheduled again, appended service messages go back to the queue -- and the log is read again from the
commit position, so that the state is once more the log's.

**Connect** (leader; a follower answers REDIRECT with the members' ingress endpoints). A connect request
gets a session id and an egress (``OpenEgress``); the version's major must be 0 and the number of
sessions below ``max_sessions``, else the client gets SessionEvent ERROR. The ``Authenticator`` is asked
(Aeron's four callbacks); once the egress is connected it may challenge, authenticate or reject through
a ``SessionProxy``. An authenticated session's SessionOpenEvent is appended; once it is, the session is
OPEN and the client gets SessionEvent OK.

**Steady state** (leader): a session message with the leader's term from an OPEN session is appended
(a stale term is dropped, as Aeron drops it); a keepalive refreshes the session; a session idle for the
session timeout is closed (SessionCloseEvent TIMEOUT, and SessionEvent CLOSED); a close request closes
it (CLIENT_ACTION), a service's CloseSession too (SERVICE_ACTION). AdminRequest is answered with
AdminResponse once the ``AuthorisationService`` allows it (the default allows no admin request).

**Leader change.** A new leader re-creates the egress of every open session, refreshes it, and sends
each NewLeaderEvent with the members' ingress endpoints once its egress connects.

**Backup queries** (every member, between elections): a BackupQuery from the consensus stream gets an
egress and the authenticator's decision as a connect does, then BackupResponse, which the core builds
(docs/sessions.md, "Backup queries"); nothing goes into the log.

**Timers** are the services' (ScheduleTimer, CancelTimer on stream 105, on every member); only a leader
fires them, appending TimerEvent; the others cancel a timer when they read its TimerEvent.

**Service messages** (a SessionMessageHeader from a service, stream 105) are queued on every member
with ids ``(service id << 56) | (Long.MIN_VALUE + n)``, in the order the service sent them; a leader
appends them under those ids, the others drop their copy when they read it.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from cluster.consensus.core.actions import Action, CloseEgress, OpenEgress, SendEgress
from cluster.consensus.core.errors import ConsensusError
from cluster.consensus.core.members import ClusterMember
from cluster.consensus.core.timers import TimerService
from cluster.messages import pack
from cluster.session_message import SESSION_HEADER_LENGTH, read_session_header
from cluster.snapshots import (
    ConsensusModuleSnapshot,
    PendingMessages,
    SnapshotClusterSession,
    SnapshotMarker,
    SnapshotTimer,
)
from codegen.runtime.errors import CodecError
from generated import aeron_cluster_codecs as codecs

__all__ = [
    "CLIENT_PROTOCOL_MAJOR",
    "MAX_ENCODED_PRINCIPAL_LENGTH",
    "AcceptAllAuthenticator",
    "AllowNothingAdmin",
    "Authenticator",
    "AuthorisationService",
    "ClientSessions",
    "ClusterSession",
    "Out",
    "SessionProxy",
    "SessionState",
    "ingress_endpoints",
    "service_message_id_base",
]

CLIENT_PROTOCOL_MAJOR: Final = 0
CLIENT_PROTOCOL_VERSION: Final = 0 << 16 | 3 << 8 | 0  # 0.3.0, the client protocol this cluster speaks
MAX_ENCODED_PRINCIPAL_LENGTH: Final = 4096
SESSION_LIMIT_DETAIL: Final = "concurrent session limit"
VERSION_DETAIL: Final = "invalid client version"
UNAUTHORISED_BACKUP_DETAIL: Final = "not authorised for BackupQuery"
ELECTION_DETAIL: Final = "election"
SERVICE_MESSAGES_PER_TICK: Final = 20  # a leader appends at most this many queued service messages a tick
NS_PER_MS: Final = 1_000_000
_LONG_MIN: Final = -(1 << 63)
_E = codecs.EventCode
_REASON = codecs.CloseReason


class SessionState(enum.Enum):
    """Aeron's session states."""

    INIT = 0
    CONNECTING = 1
    CONNECTED = 2
    CHALLENGED = 3
    AUTHENTICATED = 4
    REJECTED = 5
    OPEN = 6
    CLOSING = 7
    INVALID = 8
    CLOSED = 9


@dataclass(eq=False, slots=True)
class ClusterSession:
    """One client session as the consensus module keeps it."""

    id: int
    correlation_id: int
    response_stream_id: int
    response_channel: str
    state: SessionState
    time_of_last_activity_ns: int
    encoded_principal: bytes = b""
    opened_position: int = -1  # the log position after its SessionOpenEvent (-1: not appended yet)
    close_reason: int = -1  # a CloseReason value once closing
    egress_connected: bool = False
    event: tuple[int, str] | None = None  # a rejection to send once the egress connects
    new_leader_event_pending: bool = False
    open_event_pending: bool = False  # learned from the log: this member has not told the client OK
    logged_next_before: int = 1  # a leader's: the log-implied next session id before its open was appended


class Out(Protocol):
    """Where ``ClientSessions`` puts its actions: ``add`` for any action, ``append`` for a log entry with
        what to do once the driver answers: ``on_appended(end position, out)`` or ``on_failed(out)``, with the
    ``Out`` of the call that delivers the answer."""

    def add(self, action: Action) -> None: ...

    def append(
        self,
        message: bytes,
        on_appended: Callable[[int, Out], None] | None = None,
        on_failed: Callable[[Out], None] | None = None,
    ) -> None: ...


class SessionProxy:
    """What an ``Authenticator`` may do to a session it is asked about (Aeron's ``SessionProxy``)."""

    def __init__(self, sessions: ClientSessions, session: ClusterSession, out: Out) -> None:
        self._sessions = sessions
        self._session = session
        self._out = out

    @property
    def session_id(self) -> int:
        return self._session.id

    def challenge(self, encoded_challenge: bytes) -> bool:
        """Send the client a Challenge; the session waits for its ChallengeResponse."""
        session = self._session
        message = pack(
            codecs.ChallengeEncoder,
            {"encoded_challenge": bytes(encoded_challenge)},
            correlation_id=session.correlation_id,
            cluster_session_id=session.id,
        )
        self._out.add(SendEgress(session.id, message))
        session.state = SessionState.CHALLENGED
        return True

    def authenticate(self, encoded_principal: bytes | None = None) -> bool:
        """Accept the session, as ``encoded_principal`` (at most 4 KiB)."""
        principal = b"" if encoded_principal is None else bytes(encoded_principal)
        if len(principal) > MAX_ENCODED_PRINCIPAL_LENGTH:
            raise ValueError(
                f"an encoded principal is at most {MAX_ENCODED_PRINCIPAL_LENGTH} bytes, not {len(principal)}"
            )
        self._session.encoded_principal = principal
        self._session.state = SessionState.AUTHENTICATED
        return True

    def reject(self) -> None:
        """Refuse the session: the client gets SessionEvent AUTHENTICATION_REJECTED."""
        self._session.state = SessionState.REJECTED
        self._session.event = (_E.AUTHENTICATION_REJECTED, "authentication rejected")


class Authenticator(Protocol):
    """Aeron's authenticator: told of connects and challenge responses, then asked, each tick, about
    sessions whose egress is connected (``on_connected_session``) or that were challenged
    (``on_challenged_session``) until it decides through the proxy. Times are in milliseconds."""

    def on_connect_request(self, session_id: int, encoded_credentials: bytes, now_ms: int) -> None: ...

    def on_challenge_response(self, session_id: int, encoded_credentials: bytes, now_ms: int) -> None: ...

    def on_connected_session(self, proxy: SessionProxy, now_ms: int) -> None: ...

    def on_challenged_session(self, proxy: SessionProxy, now_ms: int) -> None: ...


class AcceptAllAuthenticator:
    """The default: every session is authenticated, with an empty principal."""

    def on_connect_request(self, session_id: int, encoded_credentials: bytes, now_ms: int) -> None:
        pass

    def on_challenge_response(self, session_id: int, encoded_credentials: bytes, now_ms: int) -> None:
        pass

    def on_connected_session(self, proxy: SessionProxy, now_ms: int) -> None:
        proxy.authenticate(b"")

    def on_challenged_session(self, proxy: SessionProxy, now_ms: int) -> None:
        proxy.authenticate(b"")


class AuthorisationService(Protocol):
    """May the session with ``encoded_principal`` perform ``action_id`` (a template id of schema
    ``protocol_id``) of ``type_`` (e.g. the AdminRequestType)?"""

    def is_authorised(
        self, protocol_id: int, action_id: int, type_: object, encoded_principal: bytes
    ) -> bool: ...


class AllowNothingAdmin:
    """The default authorisation, as Aeron's: only a BackupQuery is allowed, so every AdminRequest is
    refused (UNAUTHORISED_ACCESS)."""

    def is_authorised(
        self, protocol_id: int, action_id: int, type_: object, encoded_principal: bytes
    ) -> bool:
        return protocol_id == codecs.SCHEMA_ID and action_id == codecs.BackupQueryEncoder.TEMPLATE_ID


def _refused_version(session: ClusterSession, version: int | None) -> bool:
    """A connect or backup query whose client protocol's major version is not ours is REJECTED, to be
    told SessionEvent ERROR; whether it was."""
    version = version or 0
    if (version >> 16) & 0xFF == CLIENT_PROTOCOL_MAJOR:
        return False
    session.state = SessionState.REJECTED
    session.event = (_E.ERROR, f"{VERSION_DETAIL}: {version >> 16}.{(version >> 8) & 0xFF}.{version & 0xFF}")
    return True


def ingress_endpoints(members: Iterable[ClusterMember]) -> str:
    """The members' ingress endpoints as a client takes them: ``id=host:port,...`` in member order."""
    return ",".join(f"{member.id}={member.ingress}" for member in members)


def service_message_id_base(service_id: int) -> int:
    """The id before the first of service ``service_id``'s messages (its ids count up from here + 1)."""
    return (service_id << 56) | _LONG_MIN


@dataclass(slots=True)
class _ServiceMessages:
    """One service's messages for the log, queued on every member (Aeron's pending message tracker)."""

    service_id: int
    next_id: int  # the id the next message the service sends gets
    logged_id: int  # the latest id the log holds
    pending: deque[tuple[int, bytes]] = field(default_factory=deque)  # (id, message), oldest first
    appended: deque[tuple[int, int, bytes]] = field(default_factory=deque)  # leader: (end, id, message)


@dataclass(slots=True)
class _Uncommitted:
    """What a leader did beyond the commit position, to undo if an election comes first."""

    opened: list[ClusterSession] = field(default_factory=list)
    closed: list[tuple[int, ClusterSession]] = field(default_factory=list)  # (end, session)
    timers: list[tuple[int, int, int]] = field(default_factory=list)  # (end, correlation id, deadline)
    # entries read back beyond the commit position (a new leader's LEADER_REPLAY): (end, how to undo)
    read: list[tuple[int, Callable[[], None]]] = field(default_factory=list)


class ClientSessions:
    """The sessions, timers and service messages of one member (see the module docstring)."""

    def __init__(
        self,
        *,
        member_id: int,
        members: tuple[ClusterMember, ...],
        service_count: int,
        max_sessions: int,
        session_timeout_ns: int,
        authenticator: Authenticator | None = None,
        authorisation: AuthorisationService | None = None,
        canaries: frozenset[str] = frozenset(),
    ) -> None:
        self.member_id = member_id
        self.canaries = canaries
        self._fired: list[int] = []  # refire_committed_timer's memory: the timers fired, or read in the log
        self._refire: list[int] = []  # and what it fires again, past the timer service, once it leads again
        self.ingress_endpoints = ingress_endpoints(members)
        self.max_sessions = max_sessions
        self.session_timeout_ns = session_timeout_ns
        self.authenticator: Authenticator = authenticator or AcceptAllAuthenticator()
        self.authorisation: AuthorisationService = authorisation or AllowNothingAdmin()
        self.sessions: dict[int, ClusterSession] = {}  # OPEN and CLOSING, by id
        self.pending: dict[int, ClusterSession] = {}  # connecting (leader), by id
        self.next_session_id = 1  # the next id this member hands out (a leader: on each connect)
        # the next id as the log read so far implies it (one more than the highest opened): what a
        # snapshot holds, so that every member's snapshot at one position is the same -- a leader's own
        # counter also counts connects still pending, which the log never saw
        self.logged_next_session_id = 1
        self._egress_keys = 0  # egress keys of redirects and backup queries are -1, -2, ...
        self.backups: dict[int, ClusterSession] = {}  # BackupQuery askers being answered, by egress key
        self.timers = TimerService()
        self.services = [
            _ServiceMessages(s, service_message_id_base(s) + 1, service_message_id_base(s))
            for s in range(service_count)
        ]
        self.consumed_position = 0  # the state is the log's up to here
        self.read_position = 0  # the log has been read back (ReadLog) up to here
        self._commit_position = 0  # as the core last told (on_commit)
        self._uncommitted = _Uncommitted()
        self._closing_now: set[int] = set()  # sessions whose SessionCloseEvent awaits its append's answer
        self.malformed = 0
        # the core's: asked on an authorised AdminRequest SNAPSHOT, answers whether it will take one
        self.request_snapshot: Callable[[], bool] = lambda: False
        # ClusterActionRequests read from the log, for the core: (leadership term, log position, timestamp,
        # action, flags), in log order
        self.actions_read: list[tuple[int, int, int, int, int]] = []

    # ------------------------------------------------------------------ ingress

    def on_ingress(
        self,
        now_ns: int,
        message: bytes,
        out: Out,
        *,
        leading: bool,
        following: bool,
        leadership_term_id: int,
        leader_id: int,
        forward: Callable[[bytes], None],
    ) -> None:
        """A client's message. ``leading``: a leader with its election over; ``following``: a follower
        with its election over (it answers connects with REDIRECT and forwards challenge responses to
        the leader through ``forward``); in an election everything is dropped (the client retries)."""
        header = read_session_header(message)
        if header is not None:  # a session message, nearly everything a client sends
            if leading:
                self._on_session_message(now_ns, header[0], header[1], message, out, leadership_term_id)
            return
        decoder = self._decode(message)
        if decoder is None:
            return
        if isinstance(decoder, codecs.SessionConnectRequestDecoder):
            if leading:
                self._on_connect(now_ns, decoder, out)
            elif following:
                self._redirect(decoder, out, leadership_term_id, leader_id)
        elif isinstance(decoder, codecs.SessionKeepAliveDecoder):
            session = self._open_session(
                decoder.cluster_session_id, decoder.leadership_term_id, leadership_term_id
            )
            if leading and session is not None:
                session.time_of_last_activity_ns = now_ns
        elif isinstance(decoder, codecs.SessionCloseRequestDecoder):
            session = self._open_session(
                decoder.cluster_session_id, decoder.leadership_term_id, leadership_term_id
            )
            if leading and session is not None:
                self._close(now_ns, session, _REASON.CLIENT_ACTION, out, leadership_term_id, tell=False)
        elif isinstance(decoder, codecs.ChallengeResponseDecoder):
            if leading:
                self.on_challenge_response(now_ns, decoder)
            elif following:
                forward(bytes(message))
        elif isinstance(decoder, codecs.AdminRequestDecoder):
            session = self._open_session(
                decoder.cluster_session_id, decoder.leadership_term_id, leadership_term_id
            )
            if leading and session is not None:
                self._on_admin_request(now_ns, session, decoder, out)

    def _decode(self, message: bytes | memoryview) -> Any:
        """The message's decoder, every field checked; ``None`` (counted in ``malformed``) for bytes that
        are no whole cluster message."""
        try:
            decoder = codecs.decode(message)
            type(decoder).unpack(message)
        except CodecError:
            self.malformed += 1
            return None
        return decoder

    def _open_session(self, session_id: int, term: int, leadership_term_id: int) -> ClusterSession | None:
        session = self.sessions.get(session_id)
        if session is None or session.state != SessionState.OPEN or term != leadership_term_id:
            return None
        return session

    def _on_session_message(
        self,
        now_ns: int,
        message_term_id: int,
        session_id: int,
        message: bytes,
        out: Out,
        leadership_term_id: int,
    ) -> None:
        session = self._open_session(session_id, message_term_id, leadership_term_id)
        if session is None:
            return  # a stale term, or no open session: dropped, as Aeron drops it
        stamped = bytearray(message)
        codecs.SessionMessageHeaderEncoder.pack_into(
            stamped, 0, leadership_term_id=leadership_term_id, cluster_session_id=session.id, timestamp=now_ns
        )
        session.time_of_last_activity_ns = now_ns
        out.append(bytes(stamped))

    def _on_connect(self, now_ns: int, request: codecs.SessionConnectRequestDecoder, out: Out) -> None:
        session = ClusterSession(
            self.next_session_id,
            request.correlation_id,
            request.response_stream_id,
            request.response_channel_str(),
            SessionState.INIT,
            now_ns,
        )
        self.next_session_id += 1
        self.pending[session.id] = session
        out.add(OpenEgress(session.id, session.response_channel, session.response_stream_id))
        if _refused_version(session, request.version):
            return
        if len(self.sessions) + len(self.pending) > self.max_sessions:
            session.state = SessionState.REJECTED
            session.event = (_E.ERROR, SESSION_LIMIT_DETAIL)
        else:
            session.state = SessionState.CONNECTING
            credentials = bytes(request.encoded_credentials_bytes())
            self.authenticator.on_connect_request(session.id, credentials, now_ns // NS_PER_MS)

    def _redirect(
        self, request: codecs.SessionConnectRequestDecoder, out: Out, leadership_term_id: int, leader_id: int
    ) -> None:
        """A follower's answer to a connect: the leader and where the members' ingress is."""
        key = self._next_egress_key()
        out.add(OpenEgress(key, request.response_channel_str(), request.response_stream_id))
        event = self._session_event(
            -1, request.correlation_id, leadership_term_id, leader_id, _E.REDIRECT, self.ingress_endpoints
        )
        out.add(SendEgress(key, event))
        out.add(CloseEgress(key))

    def _next_egress_key(self) -> int:
        self._egress_keys += 1
        return -self._egress_keys

    def on_challenge_response(self, now_ns: int, response: codecs.ChallengeResponseDecoder) -> None:
        """An answer to a Challenge: a client's (from the ingress, or forwarded by a follower) or a
        backup's (on the consensus stream, to a challenged BackupQuery)."""
        session_id = response.cluster_session_id
        session = self.pending.get(session_id) if session_id >= 0 else self.backups.get(session_id)
        if session is not None and session.state == SessionState.CHALLENGED:
            credentials = bytes(response.encoded_credentials_bytes())
            self.authenticator.on_challenge_response(session.id, credentials, now_ns // NS_PER_MS)

    def _on_admin_request(
        self, now_ns: int, session: ClusterSession, request: codecs.AdminRequestDecoder, out: Out
    ) -> None:
        session.time_of_last_activity_ns = now_ns
        request_type = request.request_type_raw
        allowed = self.authorisation.is_authorised(
            codecs.SCHEMA_ID, codecs.AdminRequestEncoder.TEMPLATE_ID, request_type, session.encoded_principal
        )
        if not allowed:
            code, text = codecs.AdminResponseCode.UNAUTHORISED_ACCESS, "admin request not authorised"
        elif request_type == codecs.AdminRequestType.SNAPSHOT:
            if self.request_snapshot():
                code, text = codecs.AdminResponseCode.OK, ""
            else:
                code, text = (
                    codecs.AdminResponseCode.ERROR,
                    "a snapshot cannot be taken now (another cluster action is in progress)",
                )
        else:
            code, text = codecs.AdminResponseCode.ERROR, f"unknown admin request type {request_type}"
        response = pack(
            codecs.AdminResponseEncoder,
            {"message": text, "payload": b""},
            cluster_session_id=session.id,
            correlation_id=request.correlation_id,
            request_type=request_type,
            response_code=code,
        )
        out.add(SendEgress(session.id, response))

    # ------------------------------------------------------------------ snapshots

    def snapshot(self, marker: SnapshotMarker) -> ConsensusModuleSnapshot:
        """This state as the consensus module's snapshot at ``marker.log_position`` (docs/snapshots.md):
        the next session id, the open and closing sessions, the scheduled timers, and each service's
        messages not in the log yet (service 0's bookkeeping also in the ``ConsensusModule`` record)."""
        sessions = tuple(
            SnapshotClusterSession(
                session.id,
                session.correlation_id,
                session.opened_position,
                session.time_of_last_activity_ns,
                session.response_stream_id,
                session.response_channel,
                None if session.state == SessionState.OPEN else session.close_reason,
            )
            for session in self.sessions.values()
            if session.state in (SessionState.OPEN, SessionState.CLOSING)
        )
        timers = tuple(
            SnapshotTimer(correlation_id, deadline) for correlation_id, deadline in self.timers.timers()
        )
        pending = tuple(
            PendingMessages(
                tracker.service_id,
                tracker.next_id,
                tracker.logged_id,
                0,
                tuple(self._stamped(message_id, message) for message_id, message in tracker.pending),
            )
            for tracker in self.services
        )
        first = self.services[0] if self.services else None
        # the record's optional fields: Long.MIN_VALUE (no service message logged yet) and a capacity of 0
        # are their null values, and read back as None
        return ConsensusModuleSnapshot(
            marker,
            self.logged_next_session_id,
            None if first is None else first.next_id,
            None if first is None or first.logged_id == _LONG_MIN else first.logged_id,
            None,
            sessions=sessions,
            timers=timers,
            pending=pending,
        )

    def restore(self, snapshot: ConsensusModuleSnapshot, now_ns: int) -> None:
        """Begin from ``snapshot`` (a member starting from its latest snapshot): its sessions (OPEN, or
        CLOSING with their close reason; active as of ``now_ns``), timers, services' queued messages and
        next session id; the state is the log's up to the snapshot's position. Only into a fresh state."""
        if self.sessions or self.pending or len(self.timers) or self.consumed_position:
            raise ConsensusError("a snapshot is restored only into a fresh state")
        position = snapshot.marker.log_position
        self.next_session_id = self.logged_next_session_id = snapshot.next_session_id
        for record in snapshot.sessions:
            closing = record.close_reason is not None
            self.sessions[record.cluster_session_id] = ClusterSession(
                record.cluster_session_id,
                record.correlation_id,
                record.response_stream_id,
                record.response_channel,
                SessionState.CLOSING if closing else SessionState.OPEN,
                now_ns,
                opened_position=record.opened_log_position,
                close_reason=record.close_reason if record.close_reason is not None else -1,
            )
        self.timers.restore((timer.correlation_id, timer.deadline) for timer in snapshot.timers)
        for tracker in snapshot.pending:
            if not 0 <= tracker.service_id < len(self.services):
                raise ConsensusError(
                    f"the snapshot holds messages of service {tracker.service_id}; this member runs "
                    f"{len(self.services)} services"
                )
            queue = self.services[tracker.service_id]
            queue.next_id = tracker.next_service_session_id
            queue.logged_id = tracker.log_service_session_id
            queue.pending = deque(
                (codecs.SessionMessageHeaderDecoder.unpack(message)[1], message)
                for message in tracker.messages
            )
        self.consumed_position = self.read_position = self._commit_position = position

    @staticmethod
    def _stamped(message_id: int, message: bytes) -> bytes:
        """A queued service message with its id in the header's cluster session id, as a snapshot keeps it."""
        stamped = bytearray(message)
        header = codecs.SessionMessageHeaderDecoder.unpack(message)
        codecs.SessionMessageHeaderEncoder.pack_into(
            stamped, 0, leadership_term_id=header[0], cluster_session_id=message_id, timestamp=header[2]
        )
        return bytes(stamped)

    # ------------------------------------------------------------------ the leader's duty

    def on_egress_connected(self, session_id: int) -> None:
        """The driver: the egress publication of ``session_id`` is connected."""
        session = (
            self.pending.get(session_id) or self.sessions.get(session_id) or self.backups.get(session_id)
        )
        if session is not None:
            session.egress_connected = True

    def leader_tick(self, now_ns: int, out: Out, leadership_term_id: int) -> None:
        """A leader's sessions, timers and service messages: connects move on, idle sessions time out,
        due timers fire, queued service messages are appended."""
        for session in list(self.pending.values()):
            self._connect_work(now_ns, session, out, leadership_term_id)
        for session in list(self.sessions.values()):
            if session.state == SessionState.OPEN:
                if session.open_event_pending and session.egress_connected:
                    # a session this member learned from its log: OK, from this leader, comes first
                    session.open_event_pending = False
                    ok = self._session_event(
                        session.id, session.correlation_id, leadership_term_id, self.member_id, _E.OK, ""
                    )
                    out.add(SendEgress(session.id, ok))
                if session.new_leader_event_pending and session.egress_connected:
                    session.new_leader_event_pending = False
                    out.add(SendEgress(session.id, self._new_leader_event(session, leadership_term_id)))
                if now_ns - session.time_of_last_activity_ns > self.session_timeout_ns:
                    self._close(now_ns, session, _REASON.TIMEOUT, out, leadership_term_id, tell=True)
            elif (
                session.state == SessionState.CLOSING
                and session.close_reason >= 0
                and not self._closing(session)
            ):
                # a close taken back by an election (or one whose append failed): append it again
                self._append_close(now_ns, session, out, leadership_term_id)
        self.timers.poll(
            now_ns, lambda correlation_id: self._fire(now_ns, correlation_id, out, leadership_term_id)
        )
        while self._refire:  # only with the canary refire_committed_timer
            self._fire(now_ns, self._refire.pop(), out, leadership_term_id)
        for tracker in self.services:
            for _ in range(min(SERVICE_MESSAGES_PER_TICK, len(tracker.pending))):
                self._append_service_message(now_ns, tracker, out, leadership_term_id)

    def _connect_work(self, now_ns: int, session: ClusterSession, out: Out, leadership_term_id: int) -> None:
        if now_ns - session.time_of_last_activity_ns > self.session_timeout_ns:
            del self.pending[session.id]  # the client gave up long ago
            out.add(CloseEgress(session.id))
            return
        if not session.egress_connected:
            return
        self._authenticate(now_ns, session, out)
        if session.state == SessionState.AUTHENTICATED:
            session.state = SessionState.OPEN  # held as OPEN-to-be: the open event is being appended
            del self.pending[session.id]
            self.sessions[session.id] = session
            self._append_open(now_ns, session, out, leadership_term_id)
        elif session.state == SessionState.REJECTED:
            del self.pending[session.id]
            self._send_rejection(session, out, leadership_term_id, self.member_id)

    def _send_rejection(
        self, session: ClusterSession, out: Out, leadership_term_id: int, leader_id: int
    ) -> None:
        """A rejected session's SessionEvent (its ``event``), then its egress closed."""
        code, detail = session.event or (_E.ERROR, "rejected")
        event = self._session_event(
            session.id, session.correlation_id, leadership_term_id, leader_id, code, detail
        )
        out.add(SendEgress(session.id, event))
        out.add(CloseEgress(session.id))

    def _authenticate(self, now_ns: int, session: ClusterSession, out: Out) -> None:
        """Ask the authenticator about a session whose egress is connected: it may challenge,
        authenticate or reject it through the ``SessionProxy``, or leave it for a later tick."""
        now_ms = now_ns // NS_PER_MS
        if session.state == SessionState.CONNECTING:
            session.state = SessionState.CONNECTED
        if session.state == SessionState.CONNECTED:
            self.authenticator.on_connected_session(SessionProxy(self, session, out), now_ms)
        elif session.state == SessionState.CHALLENGED:
            self.authenticator.on_challenged_session(SessionProxy(self, session, out), now_ms)

    # ------------------------------------------------------------------ backup queries (every member)

    def on_backup_query(self, now_ns: int, query: codecs.BackupQueryDecoder, out: Out) -> None:
        """A BackupQuery from the consensus stream (docs/sessions.md, "Backup queries"): an egress to
        the asker's response channel, and the authenticator told, as for a connect. At most
        ``max_sessions`` queries are answered at once; one more is dropped (the asker asks again)."""
        if len(self.backups) >= self.max_sessions:
            return
        key = self._next_egress_key()
        session = ClusterSession(
            key,
            query.correlation_id,
            query.response_stream_id,
            query.response_channel_str(),
            SessionState.CONNECTING,
            now_ns,
        )
        self.backups[key] = session
        out.add(OpenEgress(key, session.response_channel, session.response_stream_id))
        if not _refused_version(session, query.version):
            credentials = bytes(query.encoded_credentials_bytes())
            self.authenticator.on_connect_request(key, credentials, now_ns // NS_PER_MS)

    def backup_work(
        self,
        now_ns: int,
        out: Out,
        respond: Callable[[ClusterSession], bytes | None],
        leadership_term_id: int,
        leader_id: int,
    ) -> None:
        """Answer the BackupQuery askers whose egress is connected: once authenticated, and if the
        ``AuthorisationService`` allows a BackupQuery, with ``respond(session)`` (a BackupResponse, or
        ``None`` while this member has none to give: asked again on a later tick); otherwise with a
        SessionEvent. An asker not answered within the session timeout is dropped."""
        for key, session in list(self.backups.items()):
            if now_ns - session.time_of_last_activity_ns > self.session_timeout_ns:
                del self.backups[key]
                out.add(CloseEgress(key))
                continue
            if not session.egress_connected:
                continue
            self._authenticate(now_ns, session, out)
            if session.state == SessionState.AUTHENTICATED:
                if not self.authorisation.is_authorised(
                    codecs.SCHEMA_ID, codecs.BackupQueryEncoder.TEMPLATE_ID, None, session.encoded_principal
                ):
                    session.state = SessionState.REJECTED
                    session.event = (_E.AUTHENTICATION_REJECTED, UNAUTHORISED_BACKUP_DETAIL)
                else:
                    response = respond(session)
                    if response is None:
                        continue
                    out.add(SendEgress(key, response))
                    out.add(CloseEgress(key))
                    del self.backups[key]
            if session.state == SessionState.REJECTED:
                del self.backups[key]
                self._send_rejection(session, out, leadership_term_id, leader_id)

    def _append_open(self, now_ns: int, session: ClusterSession, out: Out, leadership_term_id: int) -> None:
        event = pack(
            codecs.SessionOpenEventEncoder,
            {"response_channel": session.response_channel, "encoded_principal": session.encoded_principal},
            leadership_term_id=leadership_term_id,
            correlation_id=session.correlation_id,
            cluster_session_id=session.id,
            timestamp=now_ns,
            response_stream_id=session.response_stream_id,
        )

        def appended(end: int, out: Out) -> None:
            session.opened_position = end
            session.time_of_last_activity_ns = now_ns
            session.logged_next_before = self.logged_next_session_id
            self.logged_next_session_id = max(self.logged_next_session_id, session.id + 1)
            self._uncommitted.opened.append(session)
            ok = self._session_event(
                session.id, session.correlation_id, leadership_term_id, self.member_id, _E.OK, ""
            )
            out.add(SendEgress(session.id, ok))

        def failed(out: Out) -> None:
            # the log refused it: connect again on a later tick
            self.sessions.pop(session.id, None)
            session.state = SessionState.AUTHENTICATED
            self.pending[session.id] = session

        out.append(event, appended, failed)

    def _close(
        self,
        now_ns: int,
        session: ClusterSession,
        reason: int,
        out: Out,
        leadership_term_id: int,
        *,
        tell: bool,
    ) -> None:
        session.state = SessionState.CLOSING
        session.close_reason = int(reason)
        if tell:
            detail = _REASON(reason).name
            out.add(
                SendEgress(
                    session.id,
                    self._session_event(
                        session.id,
                        session.correlation_id,
                        leadership_term_id,
                        self.member_id,
                        _E.CLOSED,
                        detail,
                    ),
                )
            )
        self._append_close(now_ns, session, out, leadership_term_id)

    def _closing(self, session: ClusterSession) -> bool:
        """Its SessionCloseEvent is being appended, or is appended and not committed yet."""
        return session.id in self._closing_now or any(s is session for _, s in self._uncommitted.closed)

    def _append_close(self, now_ns: int, session: ClusterSession, out: Out, leadership_term_id: int) -> None:
        event = codecs.SessionCloseEventEncoder.pack_into(
            scratch := bytearray(64),
            0,
            leadership_term_id=leadership_term_id,
            cluster_session_id=session.id,
            timestamp=now_ns,
            close_reason=session.close_reason,
        )
        self._closing_now.add(session.id)

        def appended(end: int, out: Out) -> None:
            self._closing_now.discard(session.id)
            if self.sessions.pop(session.id, None) is not None:
                self._uncommitted.closed.append((end, session))
            out.add(CloseEgress(session.id))

        def failed(out: Out) -> None:
            self._closing_now.discard(session.id)  # appended again on a later tick

        out.append(bytes(scratch[:event]), appended, failed)

    def _fire(self, now_ns: int, correlation_id: int, out: Out, leadership_term_id: int) -> bool:
        deadline = self.timers.deadline(correlation_id)
        length = codecs.TimerEventEncoder.pack_into(
            scratch := bytearray(64),
            0,
            leadership_term_id=leadership_term_id,
            correlation_id=correlation_id,
            timestamp=now_ns,
        )

        def appended(end: int, out: Out) -> None:
            self._uncommitted.timers.append((end, correlation_id, 0 if deadline is None else deadline))
            if "refire_committed_timer" in self.canaries:
                self._fired.append(correlation_id)

        def failed(out: Out) -> None:
            if self.timers.deadline(correlation_id) is None:
                self.timers.schedule(correlation_id, 0 if deadline is None else deadline)

        out.append(bytes(scratch[:length]), appended, failed)
        return True

    def _append_service_message(
        self, now_ns: int, tracker: _ServiceMessages, out: Out, leadership_term_id: int
    ) -> None:
        message_id, message = tracker.pending.popleft()
        stamped = bytearray(message)
        codecs.SessionMessageHeaderEncoder.pack_into(
            stamped, 0, leadership_term_id=leadership_term_id, cluster_session_id=message_id, timestamp=now_ns
        )

        def appended(end: int, out: Out) -> None:
            tracker.appended.append((end, message_id, message))
            tracker.logged_id = max(tracker.logged_id, message_id)

        def failed(out: Out) -> None:
            tracker.pending.appendleft((message_id, message))

        out.append(bytes(stamped), appended, failed)

    @staticmethod
    def _session_event(
        session_id: int, correlation_id: int, leadership_term_id: int, leader_id: int, code: int, detail: str
    ) -> bytes:
        return pack(
            codecs.SessionEventEncoder,
            {"detail": detail},
            cluster_session_id=session_id,
            correlation_id=correlation_id,
            leadership_term_id=leadership_term_id,
            leader_member_id=leader_id,
            code=code,
            version=CLIENT_PROTOCOL_VERSION,
        )

    def _new_leader_event(self, session: ClusterSession, leadership_term_id: int) -> bytes:
        return pack(
            codecs.NewLeaderEventEncoder,
            {"ingress_endpoints": self.ingress_endpoints},
            leadership_term_id=leadership_term_id,
            cluster_session_id=session.id,
            leader_member_id=self.member_id,
        )

    # ------------------------------------------------------------------ commit, election, leader change

    def on_commit(self, position: int) -> None:
        """The log is committed up to ``position``: what a leader did up to there can no longer be
        undone."""
        pending = self._uncommitted
        pending.opened = [s for s in pending.opened if s.opened_position > position]
        pending.closed = [(end, s) for end, s in pending.closed if end > position]
        pending.timers = [t for t in pending.timers if t[0] > position]
        pending.read = [r for r in pending.read if r[0] > position]
        self._commit_position = max(self._commit_position, position)
        for tracker in self.services:
            while tracker.appended and tracker.appended[0][0] <= position:
                tracker.appended.popleft()

    def on_election(self, commit_position: int, out: Out, leadership_term_id: int, leader_id: int) -> None:
        """An election starts: undo what the leader did beyond ``commit_position`` (docs/sessions.md,
        "Rollback"); the log is read again from there."""
        self.on_commit(commit_position)
        undo = self._uncommitted
        if "keep_uncommitted_session" in self.canaries:
            undo.opened.clear()
        if undo.opened:  # the log may lose these opens: it implies the next id as it was before them
            self.logged_next_session_id = undo.opened[0].logged_next_before
        for session in undo.opened:
            if self.sessions.pop(session.id, None) is not None:
                closed = self._session_event(
                    session.id,
                    session.correlation_id,
                    leadership_term_id,
                    leader_id,
                    _E.CLOSED,
                    ELECTION_DETAIL,
                )
                out.add(SendEgress(session.id, closed))
                out.add(CloseEgress(session.id))
        for session in self.pending.values():
            closed = self._session_event(
                session.id, session.correlation_id, leadership_term_id, leader_id, _E.CLOSED, ELECTION_DETAIL
            )
            out.add(SendEgress(session.id, closed))
            out.add(CloseEgress(session.id))
        self.pending.clear()
        for _end, session in undo.closed:
            session.state = SessionState.CLOSING
            self.sessions[session.id] = session
        for _end, correlation_id, deadline in undo.timers:
            # its own deadline, passed already: due at once, and the state every member that never read
            # the TimerEvent holds (a snapshot taken later is the same on each)
            self.timers.schedule(correlation_id, deadline)
        for tracker in self.services:
            while tracker.appended:
                _end, message_id, message = tracker.appended.pop()
                tracker.pending.appendleft((message_id, message))
            if tracker.pending:
                tracker.logged_id = min(tracker.logged_id, tracker.pending[0][0] - 1)
        for _end, undo_read in reversed(undo.read):  # what it read back beyond the commit, newest first
            undo_read()
        self._uncommitted = _Uncommitted()
        self._closing_now.clear()
        for session in self.sessions.values():
            if session.egress_connected or session.new_leader_event_pending:
                out.add(CloseEgress(session.id))
            session.egress_connected = False
            session.new_leader_event_pending = False
        # the state is the log's up to the commit position, and the log is read again from there
        self.consumed_position = min(self.consumed_position, commit_position)
        self.read_position = min(self.read_position, commit_position)

    def on_leading(self, now_ns: int, out: Out, leadership_term_id: int, *, startup: bool = False) -> None:
        """This member now leads (its election is over): every open session gets an egress again, is
        refreshed, and is told of the new leader once its egress connects. A member that leads in the
        first election of its life (``startup``: a whole cluster restarted, say) closes instead the
        sessions it restored from its log, with TIMEOUT, as Aeron's leader does: their clients have
        likely long given up."""
        self._refire, self._fired = self._fired, []  # the canary's: fired again on the next tick
        for session in list(self.sessions.values()):
            session.time_of_last_activity_ns = now_ns
            session.egress_connected = False
            out.add(OpenEgress(session.id, session.response_channel, session.response_stream_id))
            session.new_leader_event_pending = session.state == SessionState.OPEN and not startup
            if startup and session.state == SessionState.OPEN:
                self._close(now_ns, session, _REASON.TIMEOUT, out, leadership_term_id, tell=True)

    def on_appended(self, position: int) -> None:
        """A leader's entry is in the log: its state is the log's up to ``position``."""
        self.consumed_position = max(self.consumed_position, position)

    # ------------------------------------------------------------------ the log, read back

    def on_log_entry(self, now_ns: int, message: bytes | memoryview, position: int) -> None:
        """A committed log entry (or, for a leader replaying its log, one of its own log), ending at
        ``position``: the state follows it. Bytes that are no cluster message are counted and skipped."""
        self.consumed_position = self.read_position = position
        header = read_session_header(message)
        if header is not None and header[1] >= 0:  # a client's message, nearly every entry
            active = self.sessions.get(header[1])
            if active is not None:
                active.time_of_last_activity_ns = now_ns
            return
        decoder = self._decode(message)
        if decoder is None:
            return
        undoable = position > self._commit_position  # read beyond the commit: an election may undo it
        if isinstance(decoder, codecs.SessionOpenEventDecoder):
            if undoable:
                self._undo_on_election(position, decoder.cluster_session_id)
            session = ClusterSession(
                decoder.cluster_session_id,
                decoder.correlation_id,
                decoder.response_stream_id,
                decoder.response_channel_str(),
                SessionState.OPEN,
                now_ns,
                bytes(decoder.encoded_principal_bytes()),
                opened_position=position,
                open_event_pending=True,
            )
            self.sessions[session.id] = session
            self.next_session_id = max(self.next_session_id, session.id + 1)
            self.logged_next_session_id = max(self.logged_next_session_id, session.id + 1)
        elif isinstance(decoder, codecs.SessionCloseEventDecoder):
            if undoable:
                self._undo_on_election(position, decoder.cluster_session_id)
            self.sessions.pop(decoder.cluster_session_id, None)
        elif isinstance(decoder, codecs.TimerEventDecoder):
            correlation_id = decoder.correlation_id
            deadline = self.timers.on_timer_event(correlation_id)
            if undoable:
                self._uncommitted.read.append(
                    (position, lambda: self.timers.undo_timer_event(correlation_id, deadline))
                )
            if "refire_committed_timer" in self.canaries:
                self._fired.append(correlation_id)
        elif isinstance(decoder, codecs.ClusterActionRequestDecoder):
            self.actions_read.append(
                (
                    decoder.leadership_term_id,
                    decoder.log_position,
                    decoder.timestamp,
                    decoder.action_raw,
                    decoder.flags or 0,
                )
            )
        elif isinstance(decoder, codecs.SessionMessageHeaderDecoder):
            session_id = decoder.cluster_session_id
            if session_id < 0:
                if undoable:
                    self._undo_service_message_on_election(position, session_id)
                self._on_logged_service_message(session_id)
            else:
                active = self.sessions.get(session_id)
                if active is not None:
                    active.time_of_last_activity_ns = now_ns

    def _undo_on_election(self, position: int, session_id: int) -> None:
        """Remember session ``session_id`` as it is before the entry ending at ``position`` changes it."""
        before, next_session_id = self.sessions.get(session_id), self.next_session_id
        logged_next_session_id = self.logged_next_session_id

        def undo() -> None:
            self.next_session_id = next_session_id
            self.logged_next_session_id = logged_next_session_id
            if before is None:
                self.sessions.pop(session_id, None)
            else:
                self.sessions[session_id] = before

        self._uncommitted.read.append((position, undo))

    def _undo_service_message_on_election(self, position: int, message_id: int) -> None:
        service_id = (message_id >> 56) & 0x7F
        if service_id >= len(self.services):
            return
        tracker = self.services[service_id]
        logged_id, pending = tracker.logged_id, list(tracker.pending)

        def undo() -> None:
            tracker.logged_id = logged_id
            tracker.pending.clear()
            tracker.pending.extend(pending)

        self._uncommitted.read.append((position, undo))

    def on_log_position(self, position: int) -> None:
        """The log has been read up to ``position`` with no whole entry ending there (padding)."""
        self.read_position = max(self.read_position, position)
        self.consumed_position = max(self.consumed_position, position)

    def _on_logged_service_message(self, message_id: int) -> None:
        service_id = (message_id >> 56) & 0x7F
        if service_id >= len(self.services):
            return
        tracker = self.services[service_id]
        tracker.logged_id = max(tracker.logged_id, message_id)
        while tracker.pending and tracker.pending[0][0] <= message_id:
            tracker.pending.popleft()

    # ------------------------------------------------------------------ the services (stream 105)

    def on_service_message(
        self, now_ns: int, message: bytes, out: Out, *, leading: bool, leadership_term_id: int
    ) -> codecs.ServiceAckDecoder | None:
        """A message from one of this member's services: a timer scheduled or cancelled, a session to
        close, a message for the log; a ServiceAck is returned for the caller to check. Bytes that are
        no such message are counted and dropped."""
        decoder = self._decode(message)
        if decoder is None:
            return None
        if isinstance(decoder, codecs.ScheduleTimerDecoder):
            self.timers.schedule(decoder.correlation_id, decoder.deadline)
        elif isinstance(decoder, codecs.CancelTimerDecoder):
            self.timers.cancel(decoder.correlation_id)
        elif isinstance(decoder, codecs.CloseSessionDecoder):
            session = self.sessions.get(decoder.cluster_session_id)
            if leading and session is not None and session.state == SessionState.OPEN:
                self._close(now_ns, session, _REASON.SERVICE_ACTION, out, leadership_term_id, tell=True)
        elif isinstance(decoder, codecs.SessionMessageHeaderDecoder):
            service_id = decoder.cluster_session_id
            if 0 <= service_id < len(self.services) and len(message) >= SESSION_HEADER_LENGTH:
                tracker = self.services[service_id]
                tracker.pending.append((tracker.next_id, bytes(message)))
                tracker.next_id += 1
            else:
                self.malformed += 1
        elif isinstance(decoder, codecs.ServiceAckDecoder):
            return decoder
        else:
            self.malformed += 1
        return None
