"""``ContainerAgent``: one clustered service inside a node -- the container core given its I/O: the
committed log from the node's archive, the consensus module's messages, and the clients' egress.

Theory of operation
-------------------
A node runs its transport, its archive, its consensus module and one container agent per service, each
duty cycle in turn on one thread. The agent owns no thread and never sleeps or waits: ``do_work`` does
what can be done now and returns how much that was, the same in the simulator and in a real process.
Each duty cycle it

1. polls the consensus module's control stream (``ServiceAdapter``, stream 104 on the control channel,
   which every container of the node reads): a JoinLog -- the consensus module started a term's log --
   is acknowledged and its role adopted; a ServiceTerminationPosition -- the cluster stops there -- is
   kept; RequestServiceAck and the cluster members' responses are decoded and skipped for now; anything
   that is not a whole cluster message is counted (``malformed_messages``) and dropped;
2. sends its queued acknowledgements (ServiceAck) on its own publication to the consensus module
   (``ConsensusModulePublisher``, stream 105);
3. reads the node-role counter (type 201, keyed by the cluster id) and tells the core of a new role;
4. reads the committed log: a ``RecordingFollower`` replays the node's log recording from the local
   archive, bounded by the commit-position counter (type 203, keyed by the cluster id), and each whole
   entry goes to ``ContainerCore.on_log_entry`` with the position of its end;
5. gives the service its background work.

**Termination.** Once the service has read the log to the termination position, the container calls
``on_terminate``, acknowledges the position (relevant id -1) and does nothing more: its consensus module,
on every service's ack, stops the node, which closes the container.

**Reading the log.** Aeron's containers read the live log image the consensus module subscribes to;
ours read the committed log through a bounded replay of the node's own archive (``log_recording_id()``
names the recording, -1 while the node has none yet). One way of reading serves start-up, recovery and
live operation alike, and it never passes the commit position by construction: the archive replays no
further than the commit counter, and the follower refuses anything beyond it too.

**Acknowledgements** (ServiceAck: log position, timestamp, ack id, relevant id, service id). The ack ids
of a service count from 0, one per ack: ack 0 once ``on_start`` has run (at log position 0, the relevant
id this container's client id -- the session id of its publication to the consensus module), then one
per JoinLog (at the JoinLog's log position, relevant id -1), each with the container's cluster time.
Acks are never dropped for back pressure: they wait in order (at most ``MAX_PENDING_ACKS``) until the
publication takes them. A JoinLog is acknowledged at once: the agent reads one recording throughout, so a
new term changes nothing about what it reads (Aeron's container first consumes the old log image up to
the JoinLog's position, then joins the new image and acknowledges).

**Requests to the consensus module** (``ConsensusModuleProxy``): ScheduleTimer, CancelTimer,
CloseSession and the service's messages -- a SessionMessageHeader whose cluster session id is the service
id, then the payload -- each offered once; a refusal is answered ``False`` (or the negative offer
result), and the core decides what the service sees.

**Egress.** Only while the node leads: one publication per open session, to the session's response
channel and stream, opened when the session opens in the log (or when a service first answers it) and,
for every open session, when the role becomes LEADER; closed when the session closes in the log (before
the service hears of it) and, for all, when the role stops being LEADER. A response channel that cannot
be opened is counted and not tried again until the next leadership. A new publication needs a round trip
to the client before it connects, and a session's first messages often commit in the same batch as its
SessionOpenEvent: what the service offers before the publication connects is *held* (up to
``EGRESS_HOLD_LIMIT`` messages per session, for at most ``EGRESS_CONNECT_TIMEOUT_NS``) and sent in order
once it connects -- the offer answers 1, accepted. A message that meets a term's end (``ADMIN_ACTION``)
is offered again at once, in the next term. A connected publication that refuses a message for back
pressure (a slow client) has it held too, with everything after it, so replies keep their order; those
wait as long as the publication stays connected (a publication that loses its client drops them). A
session that closes keeps its publication until it has taken what is held for it, for at most
``EGRESS_CONNECT_TIMEOUT_NS``.
Aeron's services block in the callback and retry instead; one thread runs the whole node here, so
nothing may block. Past the limit the offer answers ``BACK_PRESSURED``; after the timeout,
``NOT_CONNECTED``, and what was held is dropped and counted.

**Service messages in the log.** The consensus module logs a service's message under a cluster session
id of its own, ``(serviceId << 56) | sequence`` with the sign bit set -- negative, so it names no client
session. Every container hands it to its service with no session (``session`` None), whichever service
sent it -- as Aeron's container does: it is how services of one node talk to each other. A service that
shares a node tells its own messages from the others' by their content.

Several containers run side by side on one node: distinct service ids, each its own publication to the
consensus module and its own replay of the log, all reading the consensus module's one publication.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final

from cluster.archive.client import ArchiveClient
from cluster.archive.errors import ArchiveError
from cluster.archive.message_recorder import DEFAULT_TIMEOUT_NS, MessageRecorder, RecorderState
from cluster.archive.message_replay import replay_messages
from cluster.archive.recording_follower import (
    DEFAULT_REPLAY_CHANNEL,
    DEFAULT_REPLAY_STREAM_ID,
    RecordingFollower,
)
from cluster.cluster_counters import (
    COMMIT_POSITION_TYPE_ID,
    NODE_ROLE_TYPE_ID,
    RECOVERY_STATE_TYPE_ID,
    SERVICE_MAX_SNAPSHOT_DURATION_TYPE_ID,
    SERVICE_SNAPSHOT_DURATION_THRESHOLD_EXCEEDED_TYPE_ID,
    RecoveryState,
    SnapshotDurationTracker,
    cluster_counter_key,
    service_counter_key,
)
from cluster.service.api import Claim, ClientSession, ClusteredService, ClusterTermination, Role
from cluster.service.container_core import (
    ClusterServiceError,
    ContainerCore,
    ContainerSession,
    ServiceFailure,
)
from cluster.snapshots import ServiceSnapshot, SnapshotError, load_service_snapshot
from cluster.transport.counters import Counter
from cluster.transport.driver import Transport
from cluster.transport.errors import TransportError
from cluster.transport.image import Subscription
from cluster.transport.logbuffer import BACK_PRESSURED, NOT_CONNECTED, FragmentAssembler, Header
from cluster.transport.publication import Publication, offer_past_rotation
from codegen.runtime.errors import CodecError
from generated import aeron_cluster_codecs as codecs

__all__ = [
    "COMMIT_POSITION_TYPE_ID",
    "CONSENSUS_MODULE_STREAM_ID",
    "DEFAULT_CONTROL_CHANNEL",
    "EGRESS_CONNECT_TIMEOUT_NS",
    "EGRESS_HOLD_LIMIT",
    "HELD",
    "MAX_PENDING_ACKS",
    "NODE_ROLE_TYPE_ID",
    "SERVICE_STREAM_ID",
    "ConsensusModulePublisher",
    "ContainerAgent",
    "ContainerAgentError",
    "EgressPublisher",
    "ServiceAck",
    "ServiceAdapter",
    "cluster_counter_key",
]

DEFAULT_CONTROL_CHANNEL: Final = "aeron:ipc?term-length=128k"
SERVICE_STREAM_ID: Final = 104  # consensus module -> services
CONSENSUS_MODULE_STREAM_ID: Final = 105  # services -> consensus module
MAX_SERVICE_ID: Final = 127  # a logged service message carries the service id in bits 56..62
MAX_PENDING_ACKS: Final = 1024
EGRESS_HOLD_LIMIT: Final = 1024  # messages held per session until its egress publication takes them
EGRESS_CONNECT_TIMEOUT_NS: Final = 5_000_000_000  # how long they wait at most for it to connect
HELD: Final = 1  # an egress offer's answer for a message held until the publication takes it
LOG_FRAGMENT_LIMIT: Final = 50
CONTROL_FRAGMENT_LIMIT: Final = 10
DEFAULT_SNAPSHOT_CHANNEL: Final = "aeron:ipc?alias=snapshot"
SERVICE_SNAPSHOT_STREAM_ID: Final = 106
MAX_CONTROL_MESSAGE_LENGTH: Final = 64 * 1024
NULL_VALUE: Final = -1

_ROLES: Final = frozenset(int(role) for role in Role)
_SESSION_OPEN_EVENT: Final = codecs.SessionOpenEventDecoder.TEMPLATE_ID
_SESSION_CLOSE_EVENT: Final = codecs.SessionCloseEventDecoder.TEMPLATE_ID
_CLUSTER_ACTION_REQUEST: Final = codecs.ClusterActionRequestDecoder.TEMPLATE_ID
DEFAULT_SNAPSHOT_THRESHOLD_NS: Final = 1_000_000_000  # Aeron's cluster.service.snapshot.threshold


class ContainerAgentError(ClusterServiceError):
    """The container agent was configured wrongly; the message names the bad value."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class ServiceAck:
    """One acknowledgement to the consensus module, as it waits to be sent."""

    log_position: int
    timestamp: int
    ack_id: int
    relevant_id: int


class ConsensusModulePublisher:
    """Encodes and offers a container's messages to the consensus module (stream 105): the core's
    ``ConsensusModuleProxy``, and the acks. Each message is offered once."""

    def __init__(self, publication: Publication, service_id: int) -> None:
        self.publication = publication
        self.service_id = service_id
        self._buffer = bytearray(64)

    def _offer(self, length: int) -> bool:
        return offer_past_rotation(self.publication, memoryview(self._buffer)[:length]) > 0

    def schedule_timer(self, correlation_id: int, deadline: int) -> bool:
        return self._offer(
            codecs.ScheduleTimerEncoder.pack_into(
                self._buffer, 0, correlation_id=correlation_id, deadline=deadline
            )
        )

    def cancel_timer(self, correlation_id: int) -> bool:
        return self._offer(
            codecs.CancelTimerEncoder.pack_into(self._buffer, 0, correlation_id=correlation_id)
        )

    def close_session(self, cluster_session_id: int) -> bool:
        return self._offer(
            codecs.CloseSessionEncoder.pack_into(self._buffer, 0, cluster_session_id=cluster_session_id)
        )

    def offer_service_message(self, message: bytes) -> int:
        """``message`` is already framed (SessionMessageHeader with the service id, then the payload)."""
        return offer_past_rotation(self.publication, message)

    def ack(self, ack: ServiceAck) -> bool:
        return self._offer(
            codecs.ServiceAckEncoder.pack_into(
                self._buffer,
                0,
                log_position=ack.log_position,
                timestamp=ack.timestamp,
                ack_id=ack.ack_id,
                relevant_id=ack.relevant_id,
                service_id=self.service_id,
            )
        )


class EgressPublisher:
    """The container's replies to clients: one exclusive publication per open session while the node
    leads (the core's ``EgressSender``), and what is held for each until it connects (module docstring)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.leading = False
        self._publications: dict[int, Publication] = {}
        self._opened_ns: dict[int, int] = {}  # session -> when its publication was opened
        self._held: dict[int, deque[bytes]] = {}  # session -> offered, not yet taken by its publication
        self._closing: dict[int, int] = {}  # closed session -> when to give up on what is held for it
        self._refused: set[int] = set()  # sessions whose response channel would not open, this leadership
        self.open_failures = 0
        self.held_dropped = 0

    def publication(self, session_id: int) -> Publication | None:
        """The session's egress publication, if it has one."""
        return self._publications.get(session_id)

    def held(self, session_id: int) -> int:
        """How many of the session's replies are held, waiting for its publication."""
        return len(self._held.get(session_id, ()))

    def lead(self, sessions: Collection[ClientSession]) -> None:
        """The node leads: open a publication for every open session."""
        self.leading = True
        self._refused.clear()
        for session in sessions:
            self.open(session)

    def follow(self) -> None:
        """The node no longer leads: close every publication."""
        self.leading = False
        self._refused.clear()
        self._closing.clear()
        self._drop_held()
        self._opened_ns.clear()
        publications, self._publications = self._publications, {}
        for publication in publications.values():
            publication.close()

    def _drop_held(self, session_id: int | None = None) -> None:
        sessions = list(self._held) if session_id is None else [session_id]
        for session in sessions:
            self.held_dropped += len(self._held.pop(session, ()))

    def open(self, session: ClientSession) -> Publication | None:
        """The session's publication, opened now if the node leads and it has none."""
        publication = self._publications.get(session.id)
        if publication is not None or not self.leading or session.id in self._refused:
            return publication
        try:
            publication = self.transport.add_exclusive_publication(
                session.response_channel, session.response_stream_id
            )
        except (TransportError, OSError):
            self._refused.add(session.id)
            self.open_failures += 1
            return None
        self._publications[session.id] = publication
        self._opened_ns[session.id] = self.transport.clock.nano_time()
        return publication

    def close(self, session_id: int) -> None:
        """The session closed. Replies still held for it -- the service gave them before the close --
        keep their publication open until it has taken them, or until ``EGRESS_CONNECT_TIMEOUT_NS`` has
        passed, when the rest are dropped and counted; then the publication closes."""
        self._refused.discard(session_id)
        publication = self._publications.get(session_id)
        if self._held.get(session_id) and publication is not None and publication.is_connected:
            self._closing[session_id] = self.transport.clock.nano_time() + EGRESS_CONNECT_TIMEOUT_NS
            return
        self._finish_close(session_id)

    def _finish_close(self, session_id: int) -> None:
        self._closing.pop(session_id, None)
        self._drop_held(session_id)
        self._opened_ns.pop(session_id, None)
        publication = self._publications.pop(session_id, None)
        if publication is not None:
            publication.close()

    def send(self, session: ContainerSession, message: bytes) -> int:
        publication = self._publications.get(session.id)
        if publication is None:
            publication = None if session.is_closing else self.open(session)
            if publication is None:
                return NOT_CONNECTED
        held = self._held.get(session.id)
        if held is None and publication.is_connected:
            result = offer_past_rotation(publication, message)
            if result != BACK_PRESSURED:
                return result
            # a slow client: hold it, to go in order once the publication takes it
        elif not publication.is_connected and self._connect_timed_out(session.id):
            self._drop_held(session.id)
            return NOT_CONNECTED
        if held is None:
            held = self._held[session.id] = deque()
        if len(held) >= EGRESS_HOLD_LIMIT:
            return BACK_PRESSURED
        held.append(bytes(message))
        return HELD

    def try_claim(self, session: ContainerSession, length: int, claim: Claim) -> int:
        """A claim on the session's publication: only once it is connected with nothing held for it (a
        claim cannot be held; ``offer`` can)."""
        publication = self._publications.get(session.id)
        if publication is None:
            publication = None if session.is_closing else self.open(session)
            if publication is None:
                return NOT_CONNECTED
        if not publication.is_connected:
            return NOT_CONNECTED
        if session.id in self._held:
            return BACK_PRESSURED
        return publication.try_claim(length, claim)  # type: ignore[arg-type]

    def _connect_timed_out(self, session_id: int) -> bool:
        opened = self._opened_ns.get(session_id, 0)
        return self.transport.clock.nano_time() - opened >= EGRESS_CONNECT_TIMEOUT_NS

    def do_work(self) -> int:
        """Send what is held for each publication that has connected; drop what waited too long."""
        work = 0
        for session_id in list(self._held):
            held = self._held[session_id]
            publication = self._publications.get(session_id)
            if publication is None:
                self._drop_held(session_id)
                continue
            if not publication.is_connected:
                if self._connect_timed_out(session_id):
                    self._drop_held(session_id)
                    work += 1
                continue
            while held and offer_past_rotation(publication, held[0]) > 0:
                held.popleft()
                work += 1
            if not held:
                del self._held[session_id]
        if self._closing:
            now_ns = self.transport.clock.nano_time()
            for session_id, deadline_ns in list(self._closing.items()):
                if not self._held.get(session_id) or now_ns >= deadline_ns:
                    self._finish_close(session_id)
                    work += 1
        return work


class ServiceAdapter:
    """Polls the consensus module's messages to the services (stream 104), decodes them and hands each
    well-formed JoinLog to ``on_join_log(log_position, role)`` and each ServiceTerminationPosition to
    ``on_termination(log_position)``. What is not a whole cluster message, or one with a negative log
    position or an unknown role, is counted and dropped; the other messages of the stream are skipped for
    now."""

    def __init__(
        self,
        subscription: Subscription,
        on_join_log: Callable[[int, Role], object],
        on_termination: Callable[[int], object] = lambda position: None,
    ) -> None:
        self.subscription = subscription
        self._on_join_log = on_join_log
        self._on_termination = on_termination
        self._assembler = FragmentAssembler(
            self._on_message, MAX_CONTROL_MESSAGE_LENGTH, max_buffered_bytes=16 * MAX_CONTROL_MESSAGE_LENGTH
        )
        self.join_logs = 0
        self.termination_positions = 0
        self.skipped_messages = 0
        self.malformed_messages = 0

    def poll(self, fragment_limit: int) -> int:
        return self.subscription.poll(self._assembler.on_fragment, fragment_limit)

    def _on_message(self, message: memoryview, header: Header) -> None:
        try:
            decoder = codecs.decode(message)
            type(decoder).unpack(message)  # the whole message is there and well formed
        except CodecError:
            self.malformed_messages += 1
            return
        if isinstance(decoder, codecs.ServiceTerminationPositionDecoder):
            if decoder.log_position < 0:
                self.malformed_messages += 1
            else:
                self.termination_positions += 1
                self._on_termination(decoder.log_position)
            return
        if not isinstance(decoder, codecs.JoinLogDecoder):
            self.skipped_messages += 1  # RequestServiceAck, the members' responses: later
            return
        log_position = decoder.log_position
        role = decoder.role
        if log_position < 0 or role not in _ROLES:
            self.malformed_messages += 1
            return
        self.join_logs += 1
        self._on_join_log(log_position, Role(role))


class ContainerAgent:
    """One service's container in a node (see the module docstring)."""

    def __init__(
        self,
        transport: Transport,
        service: ClusteredService,
        *,
        service_id: int,
        member_id: int,
        cluster_id: int,
        archive: ArchiveClient,
        log_recording_id: Callable[[], int],
        control_channel: str,
        service_stream_id: int = SERVICE_STREAM_ID,
        consensus_module_stream_id: int = CONSENSUS_MODULE_STREAM_ID,
        replay_channel: str = DEFAULT_REPLAY_CHANNEL,
        replay_stream_id: int = DEFAULT_REPLAY_STREAM_ID,
        snapshot_channel: str = DEFAULT_SNAPSHOT_CHANNEL,
        snapshot_stream_id: int = SERVICE_SNAPSHOT_STREAM_ID,
        snapshot_timeout_ns: int = DEFAULT_TIMEOUT_NS,
        snapshot_threshold_ns: int = DEFAULT_SNAPSHOT_THRESHOLD_NS,
    ) -> None:
        """``archive``: a client of the node's archive for this container alone; ``log_recording_id()``:
        the node's log recording, -1 while it has none; ``snapshot_threshold_ns``: a snapshot of this
        service longer than this is counted (``cluster.service.snapshot.threshold``)."""
        if (
            isinstance(service_id, bool)
            or not isinstance(service_id, int)
            or not 0 <= service_id <= MAX_SERVICE_ID
        ):
            raise ContainerAgentError(f"service_id must be an int in [0, {MAX_SERVICE_ID}]: {service_id!r}")
        if (
            isinstance(cluster_id, bool)
            or not isinstance(cluster_id, int)
            or not -(2**31) <= cluster_id < 2**31
        ):
            raise ContainerAgentError(f"cluster_id must be an int32: {cluster_id!r}")
        self.transport = transport
        self.clock = transport.clock
        self.archive = archive
        self.snapshot_channel = snapshot_channel
        self.snapshot_stream_id = snapshot_stream_id
        self.snapshot_timeout_ns = snapshot_timeout_ns
        self._snapshot: tuple[int, MessageRecorder] | None = None  # (log position, its recorder)
        self.snapshots_taken = 0
        self.snapshots_failed = 0
        self.last_snapshot_error = ""
        self.service = service
        self.service_id = service_id
        self.member_id = member_id
        self.cluster_id = cluster_id
        self._counter_key = cluster_counter_key(cluster_id)
        self._commit_counter: Counter | None = None
        self._role_counter: Counter | None = None
        self._last_role_value: int | None = None
        self._acks: deque[ServiceAck] = deque()
        self._next_ack_id = 0
        self.acks_dropped = 0
        self.bad_role_values = 0
        self.termination_position: int | None = None  # where the cluster stops, once told
        self.terminated = False
        self.is_closed = False
        self._closers: list[Callable[[], object]] = []
        try:
            counters = transport.counters_manager
            labels = f"clusterId={cluster_id} serviceId={service_id}"
            key = service_counter_key(cluster_id, service_id)
            self.snapshot_durations = SnapshotDurationTracker(
                counters.allocate(
                    SERVICE_MAX_SNAPSHOT_DURATION_TYPE_ID,
                    f"Clustered service max snapshot duration in ns - {labels}",
                    key,
                ),
                counters.allocate(
                    SERVICE_SNAPSHOT_DURATION_THRESHOLD_EXCEEDED_TYPE_ID,
                    f"Clustered service max snapshot duration exceeded count - {labels}",
                    key,
                ),
                snapshot_threshold_ns,
            )
            self._closers.append(self.snapshot_durations.close)
            subscription = transport.add_subscription(control_channel, service_stream_id)
            self._closers.append(subscription.close)
            publication = transport.add_exclusive_publication(control_channel, consensus_module_stream_id)
            self._closers.append(publication.close)
            self.service_adapter = ServiceAdapter(subscription, self._on_join_log, self._on_termination)
            self.consensus_module = ConsensusModulePublisher(publication, service_id)
            self.egress = EgressPublisher(transport)
            self._closers.append(self.egress.follow)
            snapshot, own_messages = self._load_snapshot(replay_channel, replay_stream_id)
            self.follower = RecordingFollower(
                archive,
                recording_id=log_recording_id,
                limit_counter=self._find_commit_counter,
                position=0 if snapshot is None else snapshot.marker.log_position,
                replay_channel=replay_channel,
                replay_stream_id=replay_stream_id,
            )
            self._closers.append(self.follower.close)
            self.client_id = publication.session_id
            self.core = ContainerCore(
                service,
                service_id=service_id,
                member_id=member_id,
                proxy=self.consensus_module,
                egress=self.egress,
                snapshots=self,
            )
            self._closers.append(self._abandon_snapshot)
            self.core.start(snapshot, own_messages)
            self._queue_ack(self.follower.position, relevant_id=self.client_id)
        except BaseException:
            self._close_all()
            raise

    # ------------------------------------------------------------------ the agent

    @property
    def role_name(self) -> str:
        return f"clustered-service-{self.service_id}"

    @property
    def role(self) -> Role:
        return self.core.role

    @property
    def log_position(self) -> int:
        """The log position up to which the service has seen every entry."""
        return self.follower.position

    @property
    def pending_acks(self) -> int:
        return len(self._acks)

    def on_start(self) -> None:
        pass

    def on_close(self) -> None:
        self.close()

    def do_work(self) -> int:
        """One duty cycle (see the module docstring); the work done. A log entry the core cannot read, or
        an exception from the service's callback, leaves from here once its entry is consumed."""
        if self.is_closed:
            return 0
        if self.terminated:  # its last ack, should the publication have refused it; the stream drained
            return self.service_adapter.poll(CONTROL_FRAGMENT_LIMIT) + self._send_acks()
        work = self.service_adapter.poll(CONTROL_FRAGMENT_LIMIT)
        work += self._send_acks()
        work += self._check_role()
        if self._snapshot is not None:
            work += self._snapshot_work()
        if self._snapshot is None:  # the log waits while a snapshot is recorded, as Aeron's service does
            work += self.follower.poll(self._on_log_entry, LOG_FRAGMENT_LIMIT)
            work += self._check_termination()
        work += self._send_acks()
        work += self.egress.do_work()
        try:
            work += self.service.do_background_work(self.clock.nano_time())
        except ClusterTermination:
            raise
        except Exception as error:
            raise ServiceFailure("do_background_work", self.core.log_position, error) from error
        return work

    # ------------------------------------------------------------------ acks and roles

    def _queue_ack(self, log_position: int, *, relevant_id: int) -> None:
        if len(self._acks) >= MAX_PENDING_ACKS:
            self.acks_dropped += 1  # only a flood of JoinLogs the consensus module never reads gets here
            return
        self._acks.append(ServiceAck(log_position, self.core.time(), self._next_ack_id, relevant_id))
        self._next_ack_id += 1

    def _send_acks(self) -> int:
        sent = 0
        acks = self._acks
        while acks and self.consensus_module.ack(acks[0]):
            acks.popleft()
            sent += 1
        return sent

    def _on_join_log(self, log_position: int, role: Role) -> None:
        self._queue_ack(log_position, relevant_id=NULL_VALUE)
        self._set_role(role)

    def _on_termination(self, log_position: int) -> None:
        self.termination_position = log_position

    def _check_termination(self) -> int:
        """The termination position reached: ``on_terminate``, then the ack the consensus module waits
        for; the container does nothing more."""
        position = self.termination_position
        if position is None or self.follower.position < position:
            return 0
        self.terminated = True
        try:
            self.core.terminate()
        finally:
            self._queue_ack(position, relevant_id=NULL_VALUE)
            self._send_acks()
        return 1

    def _find(self, type_id: int) -> Counter | None:
        key = self._counter_key
        return self.transport.counters_manager.find(type_id, lambda counter_key: counter_key[:4] == key)

    def _find_commit_counter(self) -> Counter | None:
        counter = self._commit_counter
        if counter is None or counter.is_closed:
            counter = self._commit_counter = self._find(COMMIT_POSITION_TYPE_ID)
        return counter

    def _check_role(self) -> int:
        counter = self._role_counter
        if counter is None or counter.is_closed:
            counter = self._role_counter = self._find(NODE_ROLE_TYPE_ID)
            if counter is None:
                return 0
        value = counter.get()
        if value == self._last_role_value:
            return 0
        self._last_role_value = value
        if value not in _ROLES:
            self.bad_role_values += 1
            return 1
        self._set_role(Role(value))
        return 1

    def _set_role(self, role: Role) -> None:
        leading = role == Role.LEADER
        if leading and not self.egress.leading:
            self.egress.lead(self.core.client_sessions)
        elif not leading and self.egress.leading:
            self.egress.follow()
        self.core.on_role_change(role)

    # ------------------------------------------------------------------ snapshots

    def _load_snapshot(self, channel: str, stream_id: int) -> tuple[ServiceSnapshot | None, list[bytes]]:
        """This service's snapshot, as the consensus module's recovery state names it (none: the service
        starts empty), read back through the archive. The consensus module checked the recording up to
        its END marker when it chose it; the rest, the service's own state, is read here first, and a
        recording that cannot be read stops the container."""
        counter = self.transport.counters_manager.find(
            RECOVERY_STATE_TYPE_ID,
            lambda key: (
                (state := RecoveryState.from_key(bytes(key))) is not None
                and state.cluster_id == self.cluster_id
            ),
        )
        state = None if counter is None else RecoveryState.from_key(bytes(counter.key))
        recording_id = NULL_VALUE if state is None else state.snapshot_recording_id(self.service_id)
        if state is None or recording_id < 0:
            return None, []
        try:
            snapshot, own = load_service_snapshot(
                replay_messages(self.archive, recording_id, channel=channel, stream_id=stream_id)
            )
        except (ArchiveError, SnapshotError) as error:
            raise ContainerAgentError(
                f"service {self.service_id}: its snapshot, recording {recording_id}: {error}"
            ) from error
        if state.log_position == 0 and snapshot.marker.log_position != 0:
            # a recording log seeded from the snapshot (RecordingLog.is_seeded): it begins a new log at 0
            snapshot = dataclasses.replace(
                snapshot, marker=dataclasses.replace(snapshot.marker, log_position=0)
            )
        if snapshot.marker.log_position != state.log_position:
            raise ContainerAgentError(
                f"service {self.service_id}: recording {recording_id} holds the snapshot at "
                f"{snapshot.marker.log_position}, not at {state.log_position}, where the consensus module "
                "began"
            )
        return snapshot, own

    def take_snapshot(self, log_position: int, messages: list[bytes]) -> None:
        """``SnapshotTaker``: record the snapshot the core made at ``log_position``; the log is read no
        further until it is recorded (or has failed) and acknowledged."""
        recorder = MessageRecorder(
            self.transport,
            self.archive,
            self.snapshot_channel,
            self.snapshot_stream_id,
            messages,
            timeout_ns=self.snapshot_timeout_ns,
        )
        self._snapshot = (log_position, recorder)

    def _snapshot_work(self) -> int:
        assert self._snapshot is not None
        log_position, recorder = self._snapshot
        work = recorder.do_work()
        if recorder.done:
            self._snapshot = None
            self.snapshot_durations.end(self.clock.nano_time(), taken=recorder.state == RecorderState.DONE)
            if recorder.state == RecorderState.DONE:
                self.snapshots_taken += 1
            else:
                self.snapshots_failed += 1
                self.last_snapshot_error = recorder.error
            # the ack names the snapshot's recording, or -1: the consensus module then takes none
            self._queue_ack(
                log_position,
                relevant_id=recorder.recording_id if recorder.state == RecorderState.DONE else NULL_VALUE,
            )
            work += 1
        return work

    def _abandon_snapshot(self) -> None:
        if self._snapshot is not None:
            self._snapshot[1].close()
            self._snapshot = None

    # ------------------------------------------------------------------ the log

    def _on_log_entry(self, message: memoryview, end_position: int) -> bool:
        """One committed entry to the core; ``True`` (the follower's poll ends here) once it started a
        snapshot."""
        try:
            template_id = codecs.MessageHeaderDecoder.unpack(message)[1]
        except CodecError:
            template_id = NULL_VALUE  # the core says what is wrong with it
        # a snapshot's duration starts as its ClusterActionRequest is read
        read_ns = self.clock.nano_time() if template_id == _CLUSTER_ACTION_REQUEST else 0
        if template_id == _SESSION_CLOSE_EVENT:
            session_id = self._session_id(codecs.SessionCloseEventDecoder(), message)
            if session_id is not None:
                self.egress.close(session_id)  # before the service hears of it: nothing more leaves
        self.core.on_log_entry(message, end_position)
        if read_ns and self._snapshot is not None and not self.snapshot_durations.in_progress:
            self.snapshot_durations.begin(read_ns)
        if template_id == _SESSION_OPEN_EVENT and self.egress.leading:
            session_id = self._session_id(codecs.SessionOpenEventDecoder(), message)
            session = None if session_id is None else self.core.get_client_session(session_id)
            if session is not None:
                self.egress.open(session)
        stop = self.termination_position
        return self._snapshot is not None or (stop is not None and end_position >= stop)

    @staticmethod
    def _session_id(
        decoder: codecs.SessionOpenEventDecoder | codecs.SessionCloseEventDecoder, message: memoryview
    ) -> int | None:
        try:
            return decoder.wrap_header(message).cluster_session_id
        except CodecError:
            return None

    # ------------------------------------------------------------------ closing

    def _close_all(self) -> None:
        closers, self._closers = self._closers, []
        error: BaseException | None = None
        for close in reversed(closers):
            try:
                close()
            except BaseException as exc:  # close everything, then report the first failure
                error = error or exc
        if error is not None:
            raise error

    def close(self) -> None:
        """Stop reading the log and close the container's publications and subscription. Idempotent."""
        if self.is_closed:
            return
        self.is_closed = True
        self._close_all()
