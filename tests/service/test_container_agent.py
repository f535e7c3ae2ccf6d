"""``ContainerAgent`` in a node over the simulated network and disk, beside a consensus module the test
plays: its publication on stream 104, its subscription on stream 105, the commit-position and node-role
counters, and a log publication that the node's archive records.

The service sees each log entry once the commit position passes it, in order, with the entry's time and
position; the container acknowledges its start and each JoinLog with the right fields; the echo service's
replies leave through egress only while the role counter says LEADER; timers and service messages reach
the consensus module on stream 105; two containers run side by side; and bytes on stream 104 that are not
the consensus module's messages never crash the agent. Waits are bounded in simulated time or in duty
cycles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.archive_world import World
from support.cluster_messages import pack

from cluster.archive.client import ArchiveClient, RecordingSignalEvent
from cluster.archive.protocol import DEFAULT_LOCAL_CONTROL_CHANNEL, NULL_VALUE
from cluster.service.api import ClientSession, CloseReason, Cluster, ClusteredService, Role
from cluster.service.container_agent import (
    COMMIT_POSITION_TYPE_ID,
    CONSENSUS_MODULE_STREAM_ID,
    DEFAULT_CONTROL_CHANNEL,
    NODE_ROLE_TYPE_ID,
    SERVICE_STREAM_ID,
    ContainerAgent,
    ContainerAgentError,
    cluster_counter_key,
)
from cluster.service.container_core import MOCKED_OFFER, ClusterServiceError
from cluster.service.echo import EchoService
from cluster.session_message import SESSION_HEADER_LENGTH, session_message
from cluster.transport.logbuffer import BufferClaim, FragmentAssembler, Header
from cluster.transport.publication import Publication
from codegen.runtime.errors import CodecError
from generated import aeron_cluster_codecs as codecs
from generated.aeron_archive_codecs import RecordingSignal, SourceLocation

CLUSTER_ID = 3
MEMBER_ID = 1
TERM = 4
LOG_CHANNEL = "aeron:ipc"
LOG_STREAM = 100
RESPONSE_PORT = 9020
RESPONSE_STREAM = 102
IDLE_CYCLES = 200  # duty cycles that would be plenty for anything that was going to happen


# ------------------------------------------------------------------------------------- log entries


def new_term(timestamp: int) -> bytes:
    return pack(
        codecs.NewLeadershipTermEventEncoder,
        leadership_term_id=TERM,
        log_position=0,
        timestamp=timestamp,
        term_base_log_position=0,
        leader_member_id=MEMBER_ID,
        log_session_id=7,
        time_unit=codecs.ClusterTimeUnit.MILLIS,
        app_version=1,
    )


def session_open(session_id: int, timestamp: int, response_channel: str) -> bytes:
    return pack(
        codecs.SessionOpenEventEncoder,
        {"response_channel": response_channel, "encoded_principal": b""},
        leadership_term_id=TERM,
        correlation_id=40 + session_id,
        cluster_session_id=session_id,
        timestamp=timestamp,
        response_stream_id=RESPONSE_STREAM,
    )


def session_close(session_id: int, timestamp: int) -> bytes:
    return pack(
        codecs.SessionCloseEventEncoder,
        leadership_term_id=TERM,
        cluster_session_id=session_id,
        timestamp=timestamp,
        close_reason=CloseReason.CLIENT_ACTION,
    )


def timer_event(correlation_id: int, timestamp: int) -> bytes:
    return pack(
        codecs.TimerEventEncoder, leadership_term_id=TERM, correlation_id=correlation_id, timestamp=timestamp
    )


def client_message(session_id: int, timestamp: int, payload: bytes) -> bytes:
    return session_message(TERM, session_id, timestamp, payload)


def logged_service_message(service_id: int, sequence: int, timestamp: int, payload: bytes) -> bytes:
    """A service's message as the leader logs it: under ``(serviceId << 56) | sequence``, sign bit set."""
    cluster_session_id = -(2**63) | (service_id << 56) | sequence
    return session_message(TERM, cluster_session_id, timestamp, payload)


def join_log(log_position: int, role: Role) -> bytes:
    return pack(
        codecs.JoinLogEncoder,
        {"log_channel": "aeron:udp?endpoint=10.0.0.1:20002"},
        log_position=log_position,
        max_log_position=log_position,
        member_id=MEMBER_ID,
        log_session_id=7,
        log_stream_id=LOG_STREAM,
        is_startup=codecs.BooleanType.FALSE,
        role=role,
    )


# ------------------------------------------------------------------------------------------ services


class Recorder(ClusteredService):
    """Writes down every callback with the facade's time and position; acts when a message says so."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.cluster: Cluster | None = None

    def on_start(self, cluster: Cluster, snapshot: object) -> None:
        self.cluster = cluster
        self.calls.append(("start",))

    def on_session_open(self, session: ClientSession, timestamp: int) -> None:
        self.calls.append(("open", session.id, timestamp, self._where()))

    def on_session_message(self, session: ClientSession | None, timestamp: int, message: memoryview) -> None:
        data = bytes(message)
        self.calls.append(("message", None if session is None else session.id, data, self._where()))
        assert self.cluster is not None
        if data == b"timers":
            self.cluster.schedule_timer(99, timestamp + 10)
            self.cluster.cancel_timer(98)
        elif data.startswith(b"to the log:"):
            self.cluster.offer(data[len(b"to the log:") :])

    def on_timer_event(self, correlation_id: int, timestamp: int) -> None:
        self.calls.append(("timer", correlation_id, timestamp, self._where()))

    def on_session_close(self, session: ClientSession, timestamp: int, close_reason: CloseReason) -> None:
        self.calls.append(("close", session.id, timestamp, self._where()))

    def on_new_leadership_term_event(self, leadership_term_id: int, *args: object) -> None:
        self.calls.append(("term", leadership_term_id, self._where()))

    def on_role_change(self, new_role: Role) -> None:
        self.calls.append(("role", new_role))

    def _where(self) -> tuple[int, int]:
        assert self.cluster is not None
        return self.cluster.time(), self.cluster.log_position

    def of(self, kind: str) -> list[tuple[object, ...]]:
        return [call for call in self.calls if call[0] == kind]


# ------------------------------------------------------------------------------------ the test node


class Node:
    """One node's transport and archive, a consensus module played by the test, and the containers."""

    def __init__(self, seed: int = 1, *, subscribe_to_services: bool = True) -> None:
        self.world = World("sim", seed=seed)
        self.transport = self.world.transport(self.world.host())
        self.archive = self.world.archive(self.transport, "archive")
        self.client_transport = self.world.transport(self.world.host())
        self.client_host = self.client_transport.config.bind_host
        self.signals: list[RecordingSignalEvent] = []
        self.cm_archive = self.archive_client(on_recording_signal=self.signals.append)
        key = cluster_counter_key(CLUSTER_ID)
        counters = self.transport.counters_manager
        self.commit = counters.allocate(
            COMMIT_POSITION_TYPE_ID, f"Cluster commit-pos: clusterId={CLUSTER_ID}", key
        )
        self.role = counters.allocate(NODE_ROLE_TYPE_ID, f"Cluster node role: clusterId={CLUSTER_ID}", key)
        self.to_services = self.transport.add_exclusive_publication(
            DEFAULT_CONTROL_CHANNEL, SERVICE_STREAM_ID
        )
        self.from_services: list[tuple[str, dict[str, Any], bytes]] = []
        self._assembler = FragmentAssembler(self._on_service_message)
        self.cm_subscription = None
        if subscribe_to_services:
            self.subscribe_to_services()
        self.containers: list[ContainerAgent] = []
        self.log_recording_id = NULL_VALUE
        self.log: Publication | None = None
        self.ends: list[int] = []

    def archive_client(self, **kwargs: Any) -> ArchiveClient:
        return ArchiveClient.connect(
            self.transport,
            control_request_channel=DEFAULT_LOCAL_CONTROL_CHANNEL,
            control_response_channel="aeron:ipc",
            invoker=self.world.step,  # the transport's and the archive's duty cycles, never a container's
            **kwargs,
        )

    def subscribe_to_services(self) -> None:
        self.cm_subscription = self.transport.add_subscription(
            DEFAULT_CONTROL_CHANNEL, CONSENSUS_MODULE_STREAM_ID
        )

    def _on_service_message(self, message: memoryview, header: Header) -> None:
        decoder = codecs.decode(message)
        self.from_services.append((decoder.NAME, decoder.to_dict(), bytes(message)))

    def container(self, service: ClusteredService, service_id: int = 0, **kwargs: Any) -> ContainerAgent:
        agent = ContainerAgent(
            self.transport,
            service,
            service_id=service_id,
            member_id=MEMBER_ID,
            cluster_id=CLUSTER_ID,
            archive=self.archive_client(),
            log_recording_id=lambda: self.log_recording_id,
            control_channel=DEFAULT_CONTROL_CHANNEL,
            **kwargs,
        )
        self.containers.append(agent)
        return agent

    def step(self) -> None:
        self.world.step()
        self.cm_archive.poll_for_recording_signals()
        if self.cm_subscription is not None:
            self.cm_subscription.poll(self._assembler.on_fragment, 10)
        for agent in self.containers:
            agent.do_work()

    def run_until(self, condition: Callable[[], object]) -> None:
        for _ in range(20_000):
            if condition():
                return
            self.step()
        raise AssertionError("the condition never held")

    def idle(self, cycles: int = IDLE_CYCLES) -> None:
        for _ in range(cycles):
            self.step()

    # the consensus module's side

    def start_log(self) -> None:
        self.cm_archive.start_recording(LOG_CHANNEL, LOG_STREAM, SourceLocation.LOCAL)
        self.log = self.transport.add_exclusive_publication(LOG_CHANNEL, LOG_STREAM)
        self.run_until(lambda: any(s.signal == RecordingSignal.START for s in self.signals))
        self.log_recording_id = self.signals[-1].recording_id

    def append(self, *entries: bytes) -> list[int]:
        """Log entries, each with the position of its end, once the archive has recorded them."""
        log = self.log
        assert log is not None
        for entry in entries:
            self.run_until(lambda entry=entry: log.offer(entry) > 0)
            self.ends.append(log.position)
        self.run_until(lambda: self.cm_archive.get_recording_position(self.log_recording_id) >= self.ends[-1])
        return self.ends

    def send(self, message: bytes) -> None:
        self.run_until(lambda: self.to_services.offer(message) > 0)

    def received(self, name: str) -> list[dict[str, Any]]:
        return [fields for kind, fields, _ in self.from_services if kind == name]

    def close(self) -> None:
        for agent in self.containers:
            agent.close()
        self.world.close()


@pytest.fixture
def node() -> Iterator[Node]:
    world = Node(seed=5)
    try:
        yield world
    finally:
        world.close()


class Client:
    """A client's egress subscription on its own host, keeping every message with its session header."""

    def __init__(self, node: Node) -> None:
        self.channel = f"aeron:udp?endpoint={node.client_host}:{RESPONSE_PORT}"
        self.subscription = node.client_transport.add_subscription(self.channel, RESPONSE_STREAM)
        self.messages: list[tuple[tuple[Any, ...], bytes]] = []
        self.assembler = FragmentAssembler(self._on_message)

    def _on_message(self, message: memoryview, header: Header) -> None:
        fields = codecs.SessionMessageHeaderDecoder.unpack(message)
        self.messages.append((tuple(fields[:3]), bytes(message[SESSION_HEADER_LENGTH:])))

    def poll(self) -> int:
        return self.subscription.poll(self.assembler.on_fragment, 10)


# ------------------------------------------------------------------------------------------ the tests


def test_the_service_sees_each_entry_only_once_it_is_committed_in_order_with_its_time(node: Node) -> None:
    service = Recorder()
    agent = node.container(service)
    node.start_log()
    ends = node.append(
        new_term(1_000),
        session_open(1, 1_010, "aeron:udp?endpoint=10.0.0.9:9020"),
        client_message(1, 1_020, b"hello"),
        timer_event(5, 1_030),
        session_close(1, 1_040),
    )
    node.idle()
    assert service.calls == [("start",)]  # nothing is committed yet
    node.commit.set(ends[1])
    node.run_until(lambda: len(service.calls) == 3)
    node.idle()
    assert service.calls == [
        ("start",),
        ("term", TERM, (1_000, ends[0])),
        ("open", 1, 1_010, (1_010, ends[1])),
    ]
    node.commit.set(ends[2] + 32)  # not the whole of the next entry
    node.idle()
    assert len(service.calls) == 4 and agent.log_position == ends[2]
    node.commit.set(ends[-1])
    node.run_until(lambda: len(service.calls) == 6)
    node.idle()
    assert service.calls[3:] == [
        ("message", 1, b"hello", (1_020, ends[2])),
        ("timer", 5, 1_030, (1_030, ends[3])),
        ("close", 1, 1_040, (1_040, ends[4])),
    ]
    assert agent.log_position == ends[-1]


def test_ack_0_follows_the_start_and_each_join_log_is_acked_in_sequence(node: Node) -> None:
    service = Recorder()
    agent = node.container(service, service_id=0)
    node.run_until(lambda: node.received("ServiceAck"))
    assert node.received("ServiceAck") == [
        {"logPosition": 0, "timestamp": 0, "ackId": 0, "relevantId": agent.client_id, "serviceId": 0}
    ]
    node.start_log()
    ends = node.append(new_term(2_000), timer_event(1, 2_500))
    node.commit.set(ends[-1])
    node.run_until(lambda: agent.log_position == ends[-1])
    node.send(join_log(ends[-1], Role.LEADER))
    node.run_until(lambda: len(node.received("ServiceAck")) == 2)
    assert node.received("ServiceAck")[1] == {
        "logPosition": ends[-1],
        "timestamp": 2_500,  # the container's cluster time: the last entry's
        "ackId": 1,
        "relevantId": -1,
        "serviceId": 0,
    }
    assert agent.role == Role.LEADER and service.of("role") == [("role", Role.LEADER)]  # the JoinLog's role
    node.send(join_log(ends[-1], Role.FOLLOWER))
    node.run_until(lambda: len(node.received("ServiceAck")) == 3)
    assert node.received("ServiceAck")[2]["ackId"] == 2
    assert service.of("role") == [("role", Role.LEADER), ("role", Role.FOLLOWER)]


def test_an_ack_waits_until_the_consensus_module_subscribes() -> None:
    node = Node(seed=9, subscribe_to_services=False)
    try:
        agent = node.container(Recorder())
        node.send(join_log(0, Role.FOLLOWER))
        node.run_until(lambda: agent.service_adapter.join_logs == 1)
        node.idle()
        assert agent.pending_acks == 2
        node.subscribe_to_services()
        node.run_until(lambda: len(node.received("ServiceAck")) == 2)
        assert [ack["ackId"] for ack in node.received("ServiceAck")] == [0, 1]
        assert agent.pending_acks == 0
    finally:
        node.close()


def test_the_echo_service_replies_through_egress_only_while_the_role_counter_says_leader(node: Node) -> None:
    client = Client(node)
    agent = node.container(EchoService())
    node.role.set(Role.LEADER)
    node.start_log()
    node.commit.set(node.append(new_term(1_000), session_open(1, 1_010, client.channel))[-1])
    node.run_until(lambda: (egress := agent.egress.publication(1)) is not None and egress.is_connected)
    node.commit.set(node.append(client_message(1, 1_020, b"ping"))[-1])
    node.run_until(lambda: client.poll() >= 0 and len(client.messages) == 1)
    assert client.messages == [((TERM, 1, 1_020), b"ping")]  # framed with the session header

    node.role.set(Role.FOLLOWER)
    node.run_until(lambda: agent.role == Role.FOLLOWER)
    assert agent.egress.publication(1) is None
    node.commit.set(node.append(client_message(1, 1_030, b"unheard"))[-1])
    for _ in range(IDLE_CYCLES):
        node.step()
        client.poll()
    assert client.messages == [((TERM, 1, 1_020), b"ping")]

    node.role.set(Role.LEADER)  # leading again: the open session gets its egress back
    node.run_until(lambda: (egress := agent.egress.publication(1)) is not None and egress.is_connected)
    node.commit.set(node.append(client_message(1, 1_040, b"pong"))[-1])
    node.run_until(lambda: client.poll() >= 0 and len(client.messages) == 2)
    assert client.messages[1] == ((TERM, 1, 1_040), b"pong")

    node.commit.set(node.append(session_close(1, 1_050))[-1])
    node.run_until(lambda: agent.log_position == node.ends[-1])
    assert agent.egress.publication(1) is None  # a closed session's egress goes


def test_replies_offered_before_the_egress_connects_are_held_and_sent_in_order(node: Node) -> None:
    # the session's open and its first messages commit in one batch: the service answers before the new
    # publication has heard from the client, and nothing may be lost for that
    client = Client(node)
    agent = node.container(EchoService())
    node.role.set(Role.LEADER)
    node.run_until(lambda: agent.role == Role.LEADER)
    node.start_log()
    pings = [f"ping {i}".encode() for i in range(5)]
    entries = [client_message(1, 1_020 + i, ping) for i, ping in enumerate(pings)]
    node.commit.set(node.append(new_term(1_000), session_open(1, 1_010, client.channel), *entries)[-1])
    node.run_until(lambda: agent.log_position == node.ends[-1])
    egress = agent.egress.publication(1)
    assert egress is not None and not egress.is_connected  # all five answered, none could leave yet
    node.run_until(lambda: client.poll() >= 0 and len(client.messages) == 5)
    assert [payload for _, payload in client.messages] == pings
    assert agent.egress.held_dropped == 0


@pytest.mark.parametrize(
    ("options", "held"),
    [
        # a 64 KiB term: a reply meets its end (ADMIN_ACTION) and goes again, in the next term
        ("term-length=65536", False),
        # an 8 KiB publication window: the client reads nothing for a while, and replies wait (held)
        ("term-length=65536|pub-wnd=8192", True),
    ],
)
def test_replies_at_a_term_end_or_under_back_pressure_are_none_of_them_lost(
    node: Node, options: str, held: bool
) -> None:
    # 800 replies of 96 bytes framed: more than a 64 KiB term holds; the echo service offers each once
    client = Client(node)
    channel = f"{client.channel}|{options}"
    agent = node.container(EchoService())
    node.role.set(Role.LEADER)
    node.start_log()
    node.commit.set(node.append(new_term(1_000), session_open(1, 1_010, channel))[-1])
    node.run_until(lambda: (egress := agent.egress.publication(1)) is not None and egress.is_connected)
    payloads = [i.to_bytes(4, "little") * 8 for i in range(800)]
    node.commit.set(node.append(*(client_message(1, 1_020, p) for p in payloads))[-1])
    node.run_until(lambda: (held or client.poll() >= 0) and agent.log_position == node.ends[-1])
    publication = agent.egress.publication(1)
    assert publication is not None
    if held:  # the window stopped it short of the term's end: back pressure, not a rotation, held these
        assert agent.egress.held(1) > 0 and publication.position < 65536
    else:  # the publication reached the term's end (padded and rotated): a reply met it there
        assert publication.position >= 65536
    node.run_until(lambda: client.poll() >= 0 and len(client.messages) == 800)
    assert [payload for _, payload in client.messages] == payloads
    assert agent.egress.held_dropped == 0


def test_a_sessions_close_sends_what_is_held_for_it_first(node: Node) -> None:
    # more replies than the client's receiver window and the publication's window hold: the rest wait
    # for a client that reads nothing yet, and the session's close comes before it does
    client = Client(node)
    agent = node.container(EchoService())
    node.role.set(Role.LEADER)
    node.start_log()
    channel = f"{client.channel}|term-length=65536|pub-wnd=4096"
    node.commit.set(node.append(new_term(1_000), session_open(1, 1_010, channel))[-1])
    node.run_until(lambda: (egress := agent.egress.publication(1)) is not None and egress.is_connected)
    payloads = [i.to_bytes(4, "little") * 8 for i in range(600)]
    entries = [client_message(1, 1_020, p) for p in payloads]
    node.commit.set(node.append(*entries)[-1])
    node.run_until(lambda: agent.log_position == node.ends[-1])
    assert agent.egress.held(1) > 0  # the client has read nothing yet
    node.commit.set(node.append(session_close(1, 1_050))[-1])
    node.run_until(lambda: agent.log_position == node.ends[-1])
    assert agent.egress.held(1) > 0  # closed in the log, its replies still waiting for the client
    node.run_until(lambda: client.poll() >= 0 and len(client.messages) == 600)
    assert [payload for _, payload in client.messages] == payloads
    node.run_until(lambda: agent.egress.publication(1) is None)  # then the publication goes
    assert agent.egress.held_dropped == 0


def test_held_replies_are_bounded_and_dropped_when_the_egress_never_connects(node: Node) -> None:
    from cluster.service.container_agent import EGRESS_CONNECT_TIMEOUT_NS, EGRESS_HOLD_LIMIT, HELD
    from cluster.service.container_core import ContainerSession
    from cluster.transport.logbuffer import BACK_PRESSURED, NOT_CONNECTED

    agent = node.container(EchoService())
    egress = agent.egress
    egress.leading = True
    nobody = ContainerSession(7, RESPONSE_STREAM, "aeron:udp?endpoint=10.9.9.9:9020", b"", agent.core)
    assert egress.open(nobody) is not None
    assert [egress.send(nobody, b"x") for _ in range(EGRESS_HOLD_LIMIT)] == [HELD] * EGRESS_HOLD_LIMIT
    assert egress.send(nobody, b"one too many") == BACK_PRESSURED
    node.world.network.advance(EGRESS_CONNECT_TIMEOUT_NS)
    assert egress.do_work() == 1 and egress.held_dropped == EGRESS_HOLD_LIMIT
    assert egress.send(nobody, b"late") == NOT_CONNECTED  # and nothing more is held for it
    assert egress.do_work() == 0


class ClaimingEcho(ClusteredService):
    """Echoes through ``try_claim``, as a service that writes its replies in place would; keeps each
    claim's result."""

    def __init__(self) -> None:
        self.claim = BufferClaim()
        self.results: list[int] = []

    def on_session_message(self, session: ClientSession | None, timestamp: int, message: memoryview) -> None:
        assert session is not None
        result = session.try_claim(len(message), self.claim)
        self.results.append(result)
        if result > 0:
            self.claim.buffer[SESSION_HEADER_LENGTH:] = message
            self.claim.commit()


def test_try_claim_replies_on_the_leader_and_is_a_scratch_claim_on_a_follower(node: Node) -> None:
    client = Client(node)
    service = ClaimingEcho()
    agent = node.container(service)
    node.role.set(Role.FOLLOWER)
    node.start_log()
    node.append(new_term(1_000), session_open(1, 1_010, client.channel))
    node.commit.set(node.append(client_message(1, 1_020, b"a"))[-1])
    node.run_until(lambda: agent.log_position == node.ends[-1])
    assert service.results == [MOCKED_OFFER]  # written into a scratch frame, sent nowhere
    node.role.set(Role.LEADER)
    node.run_until(lambda: (egress := agent.egress.publication(1)) is not None and egress.is_connected)
    node.commit.set(node.append(client_message(1, 1_030, b"claimed"))[-1])
    node.run_until(lambda: client.poll() >= 0 and len(client.messages) == 1)
    assert client.messages == [((TERM, 1, 1_030), b"claimed")]  # the container wrote the header
    assert service.results[1] > 0


def test_a_follower_sends_no_egress(node: Node) -> None:
    client = Client(node)
    agent = node.container(EchoService())
    node.role.set(Role.FOLLOWER)
    node.start_log()
    node.commit.set(
        node.append(
            new_term(1_000), session_open(1, 1_010, client.channel), client_message(1, 1_020, b"ping")
        )[-1]
    )
    node.run_until(lambda: agent.log_position == node.ends[-1])
    for _ in range(IDLE_CYCLES):
        node.step()
        client.poll()
    assert agent.egress.publication(1) is None and client.messages == []
    assert client.subscription.image_count == 0  # no publication ever reached the client


def test_timers_and_service_messages_reach_the_consensus_module_on_stream_105(node: Node) -> None:
    service = Recorder()
    node.container(service, service_id=2)
    node.start_log()
    node.commit.set(
        node.append(
            new_term(1_000),
            session_open(1, 1_010, "aeron:udp?endpoint=10.0.0.9:9020"),
            client_message(1, 1_020, b"timers"),
            client_message(1, 1_030, b"to the log:tick"),
        )[-1]
    )
    node.run_until(lambda: node.received("SessionMessageHeader"))
    assert node.received("ScheduleTimer") == [{"correlationId": 99, "deadline": 1_030}]
    assert node.received("CancelTimer") == [{"correlationId": 98}]
    [(_, fields, raw)] = [m for m in node.from_services if m[0] == "SessionMessageHeader"]
    assert fields == {"leadershipTermId": TERM, "clusterSessionId": 2, "timestamp": 0}
    assert raw[SESSION_HEADER_LENGTH:] == b"tick"


def test_two_containers_run_side_by_side_and_both_see_every_service_message(node: Node) -> None:
    first, second = Recorder(), Recorder()
    agents = [node.container(first, service_id=0), node.container(second, service_id=1)]
    assert agents[0].client_id != agents[1].client_id  # each its own publication to the consensus module
    node.start_log()
    ends = node.append(
        new_term(1_000),
        logged_service_message(0, 1, 1_010, b"from service 0"),
        logged_service_message(1, 1, 1_020, b"from service 1"),
    )
    node.commit.set(ends[-1])
    node.run_until(lambda: all(agent.log_position == ends[-1] for agent in agents))
    for service in (first, second):
        assert service.of("message") == [
            ("message", None, b"from service 0", (1_010, ends[1])),
            ("message", None, b"from service 1", (1_020, ends[2])),
        ]
    node.send(join_log(ends[-1], Role.FOLLOWER))
    node.run_until(lambda: len(node.received("ServiceAck")) == 4)
    acks = sorted((ack["serviceId"], ack["ackId"], ack["logPosition"]) for ack in node.received("ServiceAck"))
    assert acks == [(0, 0, 0), (0, 1, ends[-1]), (1, 0, 0), (1, 1, ends[-1])]


def test_a_log_entry_that_is_no_cluster_message_is_an_error_and_the_log_goes_on(node: Node) -> None:
    service = Recorder()
    agent = node.container(service)
    node.start_log()
    node.commit.set(node.append(new_term(1_000), b"not a cluster message", timer_event(5, 1_030))[-1])
    with pytest.raises(ClusterServiceError, match=f"ending at {node.ends[1]}"):
        node.run_until(lambda: False)
    node.run_until(lambda: agent.log_position == node.ends[-1])
    assert service.of("timer") == [("timer", 5, 1_030, (1_030, node.ends[2]))]


def test_a_bad_configuration_is_refused_with_the_containers_error(node: Node) -> None:
    for service_id in (-1, 128, True):
        with pytest.raises(ContainerAgentError, match="service_id"):
            node.container(Recorder(), service_id=service_id)
    with pytest.raises(ContainerAgentError, match="cluster_id"):
        ContainerAgent(
            node.transport,
            Recorder(),
            service_id=0,
            member_id=0,
            cluster_id=2**31,
            archive=node.archive_client(),
            log_recording_id=lambda: -1,
            control_channel=DEFAULT_CONTROL_CHANNEL,
        )


def _valid_messages() -> list[bytes]:
    return [
        join_log(64, Role.LEADER),
        pack(codecs.ServiceTerminationPositionEncoder, log_position=64),
        pack(codecs.RequestServiceAckEncoder, log_position=64),
        pack(codecs.ScheduleTimerEncoder, correlation_id=1, deadline=2),  # not for services: skipped
    ]


def _mutated(draw: Any) -> bytes:
    base = bytearray(draw(st.sampled_from(_valid_messages())))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(base) - 1))
        base[at] = draw(st.integers(min_value=0, max_value=255))
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        return bytes(base[: draw(st.integers(min_value=0, max_value=len(base)))])
    return bytes(base)


def _any_join_log(draw: Any) -> bytes:
    """A JoinLog whose fields hold anything their types allow."""
    return pack(
        codecs.JoinLogEncoder,
        {"log_channel": draw(st.binary(max_size=100))},
        log_position=draw(st.integers(min_value=-(2**63), max_value=2**63 - 1)),
        max_log_position=draw(st.integers(min_value=-(2**63), max_value=2**63 - 1)),
        member_id=draw(st.integers(min_value=-(2**31), max_value=2**31 - 1)),
        log_session_id=draw(st.integers(min_value=-(2**31), max_value=2**31 - 1)),
        log_stream_id=draw(st.integers(min_value=-(2**31), max_value=2**31 - 1)),
        is_startup=draw(st.integers(min_value=-(2**31), max_value=2**31 - 1)),
        role=draw(st.one_of(st.sampled_from([0, 1, 2, 3, -1]), st.integers(-(2**31), 2**31 - 1))),
    )


hostile = st.one_of(
    st.binary(max_size=200),
    st.composite(_mutated)(),
    st.composite(_any_join_log)(),
    st.sampled_from(_valid_messages()),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(hostile, min_size=1, max_size=10))  # one control poll's worth
def test_hostile_bytes_on_stream_104_never_crash_the_agent(messages: list[bytes]) -> None:
    node = Node(seed=len(messages))
    try:
        agent = node.container(Recorder())
        for message in messages:
            if message:
                node.send(message)
        node.idle(20)  # any exception from the agent fails the test here
        adapter = agent.service_adapter
        handled = (
            adapter.join_logs
            + adapter.termination_positions
            + adapter.skipped_messages
            + adapter.malformed_messages
        )
        assert handled == sum(1 for message in messages if message)
        valid_join_logs = 0
        termination = None  # the last well-formed ServiceTerminationPosition's position
        for message in messages:
            try:
                decoder = codecs.decode(message)
                type(decoder).unpack(message)
            except CodecError:
                continue
            if (
                isinstance(decoder, codecs.JoinLogDecoder)
                and decoder.log_position >= 0
                and decoder.role in (0, 1, 2)
            ):
                valid_join_logs += 1
            if isinstance(decoder, codecs.ServiceTerminationPositionDecoder) and decoder.log_position >= 0:
                termination = decoder.log_position
        assert adapter.join_logs == valid_join_logs
        # all arrive in one poll: every JoinLog is acknowledged, then a termination where the service is
        # (position 0, an empty log) ends the container with one more ack
        acks = 1 + valid_join_logs + (termination == 0)
        node.run_until(lambda: len(node.received("ServiceAck")) == acks)
        assert [ack["ackId"] for ack in node.received("ServiceAck")] == list(range(acks))
        assert agent.terminated == (termination == 0)
    finally:
        node.close()
