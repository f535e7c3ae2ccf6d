"""What a clustered service is, and what it is given: Aeron Cluster's service API, in Python.

Theory of operation
-------------------
A user's service is a deterministic state machine. The service container (it runs in the node's process)
reads the cluster's log up to the commit position and calls the service once per log event, in log order,
on every member: ``on_session_open``, ``on_session_message``, ``on_timer_event``, ``on_session_close``,
``on_new_leadership_term_event``. Because every replica sees the same events with the same timestamps,
every replica reaches the same state. The rules that keep it so:

* change state only in these callbacks, only from their arguments and ``Cluster.time()`` -- never the
  wall clock, unseeded randomness or anything outside the log;
* replies (``ClientSession.offer``) are side effects: only the leader's really leave, the followers' are
  accepted and dropped, so no state may depend on their result;
* timers (``Cluster.schedule_timer``) and service messages (``Cluster.offer``) must be issued identically
  on every replica: they reach the log through the leader, as TimerEvents and log entries;
* all state goes into ``on_take_snapshot`` and comes back in ``on_start``.

``ClusteredService`` is a base class with Aeron's callbacks; the ones most services do not need do
nothing by default. ``Cluster`` and ``ClientSession`` are protocols: the container provides them (and
tests provide doubles).

**Ending a node from the service.** A callback that raises ``ClusterTermination`` stops its member's node
on purpose, as Aeron's expected ``ClusterTerminationException`` does: the node closes in order and
``python -m tools node`` exits 0, saying why. Any other exception from a callback is the service failing:
the node stops with an error naming the callback (``ServiceFailure``, exit status 1, the service's
traceback printed). Either way the other members carry on without it -- a leader that stops is replaced
by an election -- unless every member's service ends on the same log entry, which stops the cluster.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from typing import Protocol

from generated.aeron_cluster_codecs import CloseReason, ClusterTimeUnit

__all__ = [
    "Claim",
    "ClientSession",
    "CloseReason",
    "Cluster",
    "ClusterTermination",
    "ClusterTimeUnit",
    "ClusteredService",
    "Role",
    "SnapshotReader",
    "SnapshotWriter",
]


class ClusterTermination(Exception):
    """Raised from a service callback to stop this member's node on purpose (module docstring)."""


class Role(enum.IntEnum):
    """A member's role, with Aeron's codes (the cluster's role counter holds them)."""

    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2


class ClientSession(Protocol):
    """A client's session, as the service sees it: opened by a SessionOpenEvent, closed by a
    SessionCloseEvent. Its id is assigned by the leader and is the same on every replica."""

    @property
    def id(self) -> int: ...

    @property
    def response_stream_id(self) -> int: ...

    @property
    def response_channel(self) -> str: ...

    @property
    def encoded_principal(self) -> bytes:
        """What the authenticator gave the session (empty with the default one)."""
        ...

    @property
    def is_closing(self) -> bool: ...

    def offer(self, message: bytes | bytearray | memoryview) -> int:
        """Send ``message`` to the client on its egress, after a SessionMessageHeader the container writes.
        A positive result on success; on a follower the message is accepted and dropped (Aeron's mocked
        offer), so the result must never steer the service's state."""
        ...

    def try_claim(self, length: int, claim: Claim) -> int:
        """Claim a frame on the client's egress for a ``length``-byte payload, the SessionMessageHeader
        already written at its start: write the payload into ``claim.buffer[SESSION_HEADER_LENGTH:]``
        (32 bytes in), then ``claim.commit()``. Positive on success; on a follower the claim is a scratch
        frame that goes nowhere (Aeron's mocked claim), so the same code runs on every replica."""
        ...

    def close(self) -> bool:
        """Ask for the session to be closed (a SessionCloseEvent with SERVICE_ACTION follows in the log)."""
        ...


class Claim(Protocol):
    """A claimed frame (the transport's ``BufferClaim``): write ``buffer``, then commit or abort."""

    buffer: memoryview

    def wrap_scratch(self, length: int) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class SnapshotWriter(Protocol):
    """Where ``on_take_snapshot`` writes the service's state: one message per call, in order."""

    def offer(self, message: bytes | bytearray | memoryview) -> int: ...


class SnapshotReader(Protocol):
    """The service's snapshot, given to ``on_start``: its messages in the order they were written."""

    def poll(self, handler: Callable[[memoryview], object], limit: int) -> int:
        """Hand up to ``limit`` messages to ``handler``; how many were handed (0 at the end)."""
        ...


class Cluster(Protocol):
    """The facade the container gives a service: who and where it is, the cluster's time, timers,
    sessions, and messages to the log."""

    @property
    def member_id(self) -> int: ...

    @property
    def role(self) -> Role: ...

    @property
    def log_position(self) -> int:
        """The log position of the event being processed (its end)."""
        ...

    @property
    def time_unit(self) -> ClusterTimeUnit: ...

    def time(self) -> int:
        """The cluster's time: the timestamp of the log event being processed, in ``time_unit``."""
        ...

    def schedule_timer(self, correlation_id: int, deadline: int) -> bool:
        """Fire ``on_timer_event(correlation_id, ...)`` once cluster time reaches ``deadline``; a new
        deadline for an existing ``correlation_id`` replaces the old one."""
        ...

    def cancel_timer(self, correlation_id: int) -> bool: ...

    @property
    def client_sessions(self) -> Collection[ClientSession]: ...

    def get_client_session(self, cluster_session_id: int) -> ClientSession | None: ...

    def close_client_session(self, cluster_session_id: int) -> bool: ...

    def offer(self, message: bytes | bytearray | memoryview) -> int:
        """Append ``message`` to the log as a service message (it comes back to every replica's
        ``on_session_message`` with no session)."""
        ...


class ClusteredService(ABC):
    """A user's service (see the module docstring). ``on_session_message`` is the one callback every
    service writes; ``on_take_snapshot`` and ``on_start`` carry its state across restarts."""

    def on_start(self, cluster: Cluster, snapshot: SnapshotReader | None) -> None:  # noqa: B027
        """The container started the service, with the latest snapshot if there is one. No messages may
        be sent and no timers scheduled from here."""

    def on_session_open(self, session: ClientSession, timestamp: int) -> None:  # noqa: B027
        """A client's session opened (its SessionOpenEvent committed)."""

    def on_session_close(  # noqa: B027
        self, session: ClientSession, timestamp: int, close_reason: CloseReason
    ) -> None:
        """A session closed: the client asked, the service asked, or it timed out."""

    @abstractmethod
    def on_session_message(self, session: ClientSession | None, timestamp: int, message: memoryview) -> None:
        """A committed message: from ``session``'s client, or a service message (``session`` None)."""

    def on_timer_event(self, correlation_id: int, timestamp: int) -> None:  # noqa: B027
        """A timer this service scheduled fired (its TimerEvent committed)."""

    def on_take_snapshot(self, snapshot: SnapshotWriter) -> None:  # noqa: B027
        """Write every bit of the service's state to ``snapshot``."""

    def on_role_change(self, new_role: Role) -> None:  # noqa: B027
        """This member's role changed. No messages may be sent and no timers scheduled from here."""

    def on_new_leadership_term_event(  # noqa: B027
        self,
        leadership_term_id: int,
        log_position: int,
        timestamp: int,
        term_base_log_position: int,
        leader_member_id: int,
        log_session_id: int,
        time_unit: ClusterTimeUnit,
        app_version: int,
    ) -> None:
        """A new leadership term began in the log."""

    def on_terminate(self, cluster: Cluster) -> None:  # noqa: B027
        """The container is stopping the service."""

    def do_background_work(self, now_ns: int) -> int:
        """Called when the container is idle; how much work was done. Nothing here may change state."""
        return 0
