"""The service container's core, sans-IO: the committed log, one entry at a time, turned into a service's
callbacks -- and the ``Cluster`` facade and ``ClientSession``s the service acts through.

Theory of operation
-------------------
The container reads the log only up to the commit position (the reading is the container's agent's
job); each whole entry it reads comes here as ``on_log_entry(message, position)`` -- the SBE message and
the log position of its end. What each entry does:

* SessionOpenEvent: a ``ContainerSession`` joins the sessions, then ``on_session_open``;
* SessionMessageHeader + payload: ``on_session_message`` with the session named in the header, or with
  none when the header names no open session (a service message: the cluster session id is then the
  sending service's);
* TimerEvent: ``on_timer_event``;
* SessionCloseEvent: ``on_session_close``, then the session leaves;
* NewLeadershipTermEvent: the cluster's time unit and the term move on, then
  ``on_new_leadership_term_event``;
* ClusterActionRequest SNAPSHOT (without the standby flag): the service's snapshot at the action's log
  position -- a BEGIN marker, one record per open session, END, then what ``on_take_snapshot`` writes
  (``cluster.snapshots``; the service may not act on the cluster from there) -- goes to the
  ``SnapshotTaker``, which records it and acknowledges it;
* anything else (SUSPEND, RESUME, the legacy MembershipChangeEvent) moves time and position only.

Before each callback the facade's ``time()`` becomes the entry's timestamp and ``log_position`` its end,
so replicas that read the same log make the same calls with the same arguments. A service acts on the
cluster only from a log callback: scheduling a timer, sending to a client or to the log, or closing a
session from ``on_start``, ``on_role_change``, ``on_terminate`` or background work raises
``ClusterServiceError``, as Aeron's container refuses them. What it asks for goes to the consensus module
through ``ConsensusModuleProxy`` (ScheduleTimer, CancelTimer, CloseSession, a service message) and to
clients through ``EgressSender``; on a member that does not lead, ``ClientSession.offer`` sends nothing
and answers ``MOCKED_OFFER``, as in Aeron.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from cluster.service.api import (
    Claim,
    ClientSession,
    CloseReason,
    ClusteredService,
    ClusterTermination,
    ClusterTimeUnit,
    Role,
)
from cluster.session_message import (
    SESSION_HEADER_LENGTH,
    read_session_header,
    session_message,
    write_session_header,
)
from cluster.snapshots import (
    APP_VERSION,
    SERVICE_TYPE_ID,
    ServiceSnapshot,
    SnapshotClientSession,
    SnapshotMarker,
)
from codegen.runtime.errors import CodecError
from generated import aeron_cluster_codecs as codecs

__all__ = [
    "MOCKED_OFFER",
    "ClusterServiceError",
    "ConsensusModuleProxy",
    "ContainerCore",
    "ContainerSession",
    "EgressSender",
    "ServiceFailure",
]

MOCKED_OFFER: Final = 1  # what ClientSession.offer answers on a member that does not lead


class ClusterServiceError(Exception):
    """A service asked for something the container refuses, or the log held something it cannot read."""


class ServiceFailure(ClusterServiceError):
    """The service's own code raised from ``callback``; the exception it raised is the cause. The node
    stops (``cluster.service.api``, "Ending a node from the service")."""

    def __init__(self, callback: str, log_position: int, error: Exception) -> None:
        super().__init__(
            f"the service failed: {callback} raised {type(error).__name__}: {error} (log position "
            f"{log_position})"
        )
        self.callback = callback


class ConsensusModuleProxy(Protocol):
    """The container's requests to its node's consensus module (stream 105)."""

    def schedule_timer(self, correlation_id: int, deadline: int) -> bool: ...

    def cancel_timer(self, correlation_id: int) -> bool: ...

    def close_session(self, cluster_session_id: int) -> bool: ...

    def offer_service_message(self, message: bytes) -> int:
        """A SessionMessageHeader (cluster session id = the service's id) and payload, for the log."""
        ...


class SnapshotTaker(Protocol):
    """Where the container's snapshots go (the agent records them in the node's archive)."""

    def take_snapshot(self, log_position: int, messages: list[bytes]) -> None:
        """Record ``messages`` -- the snapshot's markers and sessions, then the service's own messages --
        as the service's snapshot at ``log_position``, and acknowledge it once recorded."""
        ...


class EgressSender(Protocol):
    """Messages to a client's egress (only a leader's container sends them)."""

    def send(self, session: ContainerSession, message: bytes) -> int: ...

    def try_claim(self, session: ContainerSession, length: int, claim: Claim) -> int:
        """Claim ``length`` bytes (the session header included) on the session's egress."""
        ...


@dataclass(slots=True)
class ContainerSession:
    """A client session as the container keeps it (the service sees it as a ``ClientSession``)."""

    id: int
    response_stream_id: int
    response_channel: str
    encoded_principal: bytes
    core: ContainerCore = field(repr=False)
    is_closing: bool = False

    def offer(self, message: bytes | bytearray | memoryview) -> int:
        self.core._check_may_act("send to a client")
        if self.core.role != Role.LEADER:
            return MOCKED_OFFER
        framed = session_message(self.core.leadership_term_id, self.id, self.core.time(), message)
        return self.core.egress.send(self, framed)

    def try_claim(self, length: int, claim: Claim) -> int:
        self.core._check_may_act("send to a client")
        core = self.core
        if core.role != Role.LEADER:
            claim.wrap_scratch(SESSION_HEADER_LENGTH + length)
            result = MOCKED_OFFER
        else:
            result = core.egress.try_claim(self, SESSION_HEADER_LENGTH + length, claim)
        if result > 0:
            write_session_header(claim.buffer, core.leadership_term_id, self.id, core.time())
        return result

    def close(self) -> bool:
        if self.is_closing:
            return False
        self.core._check_may_act("close a session")
        self.is_closing = True
        return self.core.proxy.close_session(self.id)


class _SnapshotBuffer:
    """The ``SnapshotWriter`` a service's ``on_take_snapshot`` writes to: every message is kept, in order;
    the taker records them once the callback returns (nothing here may wait for the archive)."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.position = 0

    def offer(self, message: bytes | bytearray | memoryview) -> int:
        data = bytes(message)
        self.messages.append(data)
        self.position += len(data)
        return self.position


class _SnapshotMessages:
    """The ``SnapshotReader`` a service's ``on_start`` reads its snapshot from: its own messages, in
    order."""

    def __init__(self, messages: Sequence[bytes]) -> None:
        self._messages = messages
        self._next = 0

    def poll(self, handler: Callable[[memoryview], object], limit: int) -> int:
        count = 0
        while count < limit and self._next < len(self._messages):
            message = self._messages[self._next]
            self._next += 1
            count += 1
            handler(memoryview(message))
        return count


def _version_text(version: int) -> str:
    return f"{version >> 16 & 0xFF}.{version >> 8 & 0xFF}.{version & 0xFF}"


class ContainerCore:
    """One service's container, without I/O (see the module docstring). It is the service's ``Cluster``."""

    def __init__(
        self,
        service: ClusteredService,
        *,
        service_id: int,
        member_id: int,
        proxy: ConsensusModuleProxy,
        egress: EgressSender,
        snapshots: SnapshotTaker | None = None,
        app_version: int = APP_VERSION,
    ) -> None:
        self.service = service
        self.snapshots = snapshots
        self.app_version = app_version
        self.service_id = service_id
        self._member_id = member_id
        self.proxy = proxy
        self.egress = egress
        self.role = Role.FOLLOWER
        self.leadership_term_id = -1
        self._time = 0
        self._time_unit = ClusterTimeUnit.MILLIS
        self._log_position = 0
        self._sessions: dict[int, ContainerSession] = {}
        self._acting = False  # inside a log callback: the service may act on the cluster

    # ------------------------------------------------------------------ the Cluster facade

    @property
    def member_id(self) -> int:
        return self._member_id

    @property
    def log_position(self) -> int:
        return self._log_position

    @property
    def time_unit(self) -> ClusterTimeUnit:
        return self._time_unit

    def time(self) -> int:
        return self._time

    @property
    def client_sessions(self) -> Collection[ClientSession]:
        return tuple(self._sessions.values())

    def get_client_session(self, cluster_session_id: int) -> ClientSession | None:
        return self._sessions.get(cluster_session_id)

    def close_client_session(self, cluster_session_id: int) -> bool:
        session = self._sessions.get(cluster_session_id)
        if session is None:
            raise ClusterServiceError(f"no open session {cluster_session_id}")
        return session.close()

    def schedule_timer(self, correlation_id: int, deadline: int) -> bool:
        self._check_may_act("schedule a timer")
        return self.proxy.schedule_timer(correlation_id, deadline)

    def cancel_timer(self, correlation_id: int) -> bool:
        self._check_may_act("cancel a timer")
        return self.proxy.cancel_timer(correlation_id)

    def offer(self, message: bytes | bytearray | memoryview) -> int:
        self._check_may_act("send a message to the log")
        framed = session_message(self.leadership_term_id, self.service_id, 0, message)
        return self.proxy.offer_service_message(framed)

    def _take_snapshot(self, log_position: int) -> None:
        """The service's snapshot at ``log_position``: the markers and the open sessions, then whatever
        ``on_take_snapshot`` writes, handed to the snapshot taker."""
        if self.snapshots is None:
            return
        marker = SnapshotMarker(
            SERVICE_TYPE_ID, log_position, self.leadership_term_id, 0, int(self._time_unit), self.app_version
        )
        sessions = tuple(
            SnapshotClientSession(s.id, s.response_stream_id, s.response_channel, s.encoded_principal)
            for s in self._sessions.values()
        )
        writer = _SnapshotBuffer()
        self._acting = False  # a snapshot changes nothing: no timers, messages or closes from it
        self._call("on_take_snapshot", writer)
        self.snapshots.take_snapshot(
            log_position, [*ServiceSnapshot(marker, sessions).messages(), *writer.messages]
        )

    def _call(self, callback: str, *args: object) -> None:
        """The service's ``callback`` with ``args``; what it raises, other than ``ClusterTermination``, is
        the service failing."""
        try:
            getattr(self.service, callback)(*args)
        except ClusterTermination:
            raise
        except Exception as error:
            raise ServiceFailure(callback, self._log_position, error) from error

    def _check_may_act(self, what: str) -> None:
        if not self._acting:
            raise ClusterServiceError(
                f"a service may {what} only from a log callback (not from on_start, on_role_change, "
                "on_terminate or background work)"
            )

    # ------------------------------------------------------------------ inputs

    def start(self, snapshot: ServiceSnapshot | None = None, messages: Sequence[bytes] = ()) -> None:
        """``on_start``: empty, or from ``snapshot`` -- its sessions become the container's, the time unit
        and term the snapshot's, the log position its position -- with the service's own ``messages``
        (those after the snapshot's END) handed to the service through a ``SnapshotReader``. A snapshot
        of an application whose major version differs from this one's is refused."""
        if snapshot is None:
            self._call("on_start", self, None)
            return
        marker = snapshot.marker
        version = marker.app_version or 0
        if version >> 16 != self.app_version >> 16:
            raise ClusterServiceError(
                f"the snapshot at {marker.log_position} was written by application version "
                f"{_version_text(version)}, whose major version is not this one's "
                f"({_version_text(self.app_version)})"
            )
        if marker.time_unit is not None:
            self._time_unit = ClusterTimeUnit(marker.time_unit)
        self.leadership_term_id = marker.leadership_term_id
        self._log_position = marker.log_position
        for record in snapshot.sessions:
            self._sessions[record.cluster_session_id] = ContainerSession(
                record.cluster_session_id,
                record.response_stream_id,
                record.response_channel,
                record.encoded_principal,
                self,
            )
        self._call("on_start", self, _SnapshotMessages(messages))

    def on_role_change(self, role: Role) -> None:
        if role != self.role:
            self.role = role
            self._call("on_role_change", role)

    def terminate(self) -> None:
        """The cluster stops here (its consensus module's ServiceTerminationPosition): ``on_terminate``."""
        self._call("on_terminate", self)

    def on_log_entry(self, message: bytes | memoryview, position: int) -> None:
        """One committed log entry, ending at log position ``position``."""
        header = read_session_header(message)
        if header is not None:  # a session message, nearly every entry
            self._log_position = position
            self._time = timestamp = header[2]
            self._acting = True
            try:
                self.service.on_session_message(
                    self._sessions.get(header[1]), timestamp, memoryview(message)[SESSION_HEADER_LENGTH:]
                )
            except ClusterTermination:
                raise
            except Exception as error:
                raise ServiceFailure("on_session_message", position, error) from error
            finally:
                self._acting = False
            return
        try:
            decoder = codecs.decode(message)
            type(decoder).unpack(message)
        except CodecError as error:
            raise ClusterServiceError(
                f"log entry ending at {position} is not a cluster message: {error}"
            ) from error
        self._log_position = position
        self._acting = True
        try:
            self._dispatch(decoder, message)
        finally:
            self._acting = False

    def _dispatch(self, decoder: object, message: bytes | memoryview) -> None:
        call = self._call
        if isinstance(decoder, codecs.TimerEventDecoder):
            self._time = decoder.timestamp
            call("on_timer_event", decoder.correlation_id, decoder.timestamp)
        elif isinstance(decoder, codecs.SessionOpenEventDecoder):
            self._time = decoder.timestamp
            session = ContainerSession(
                decoder.cluster_session_id,
                decoder.response_stream_id,
                decoder.response_channel_str(),
                bytes(decoder.encoded_principal_bytes()),
                self,
            )
            self._sessions[session.id] = session
            call("on_session_open", session, decoder.timestamp)
        elif isinstance(decoder, codecs.SessionCloseEventDecoder):
            self._time = decoder.timestamp
            closed = self._sessions.pop(decoder.cluster_session_id, None)
            if closed is not None:
                closed.is_closing = True
                call("on_session_close", closed, decoder.timestamp, CloseReason(decoder.close_reason_raw))
        elif isinstance(decoder, codecs.NewLeadershipTermEventDecoder):
            self._time = decoder.timestamp
            self.leadership_term_id = decoder.leadership_term_id
            unit = decoder.time_unit_raw  # absent before schema version 4: milliseconds, the default
            self._time_unit = ClusterTimeUnit.MILLIS if unit is None else ClusterTimeUnit(unit)
            call(
                "on_new_leadership_term_event",
                decoder.leadership_term_id,
                decoder.log_position,
                decoder.timestamp,
                decoder.term_base_log_position,
                decoder.leader_member_id,
                decoder.log_session_id,
                self._time_unit,
                decoder.app_version or 0,
            )
        elif isinstance(decoder, codecs.ClusterActionRequestDecoder):
            self._time = decoder.timestamp
            if decoder.action_raw == codecs.ClusterAction.SNAPSHOT and not decoder.flags:
                self._take_snapshot(decoder.log_position)
