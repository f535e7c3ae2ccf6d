"""``AeronCluster`` over the transport on the simulated network, against scripted members that speak the
server side of the session protocol as Aeron's consensus module does: a follower redirects, the leader
answers OK and echoes, a new leader announces itself. (Against our own cluster once it has sessions, and
against Java's outside the suite.)"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from support.cluster_messages import pack

from cluster.client.aeron_cluster import AeronCluster, ClusterClientError
from cluster.client.protocol import Message, NewLeader
from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.publication import Publication
from cluster.transport.simnet import SimNetwork
from generated import aeron_cluster_codecs as codecs

MS = 1_000_000
HEADER = codecs.HEADER_SIZE + codecs.SessionMessageHeaderEncoder.BLOCK_LENGTH
ENDPOINTS = "0=10.0.0.1:9002,1=10.0.0.2:9002,2=10.0.0.3:9002"


@dataclass
class Member:
    """A scripted member: what a consensus module answers on its ingress, no consensus behind it."""

    member_id: int
    transport: Transport
    leader: int
    term: int = 3
    reject: str = ""
    egress: dict[int, Publication] = field(default_factory=dict)  # session id -> its egress
    pending: list[tuple[Publication, bytes]] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ingress = self.transport.add_subscription(
            f"aeron:udp?endpoint=10.0.0.{self.member_id + 1}:9002", 101
        )

    def do_work(self) -> None:
        self.transport.do_work()
        self.ingress.poll(self._on_ingress, 10)
        still = []
        for publication, message in self.pending:
            if not (publication.is_connected and publication.offer(message) > 0):
                still.append((publication, message))
        self.pending = still

    def _send(self, publication: Publication, message: bytes) -> None:
        self.pending.append((publication, message))

    def _on_ingress(self, buffer: memoryview, header: object) -> None:
        decoder = codecs.decode(bytes(buffer))
        if isinstance(decoder, codecs.SessionConnectRequestDecoder):
            egress = self.transport.add_exclusive_publication(
                decoder.response_channel_str(), decoder.response_stream_id
            )
            session_id = 100 + self.member_id
            code, detail = codecs.EventCode.OK, ""
            if self.reject:
                code, detail = codecs.EventCode.ERROR, self.reject
            elif self.member_id != self.leader:
                code, detail, session_id = codecs.EventCode.REDIRECT, ENDPOINTS, -1
            self.egress[session_id] = egress
            event = pack(
                codecs.SessionEventEncoder,
                {"detail": detail},
                cluster_session_id=session_id,
                correlation_id=decoder.correlation_id,
                leadership_term_id=self.term,
                leader_member_id=self.leader,
                code=code,
                version=0,
            )
            self._send(egress, event)
        elif isinstance(decoder, codecs.SessionMessageHeaderDecoder):
            self.received.append(bytes(buffer))
            if decoder.leadership_term_id != self.term:
                return  # a stale term: dropped, as Aeron's leader does
            echo = bytearray(buffer)
            codecs.SessionMessageHeaderEncoder.pack_into(
                echo,
                0,
                leadership_term_id=self.term,
                cluster_session_id=decoder.cluster_session_id,
                timestamp=42,
            )
            self._send(self.egress[decoder.cluster_session_id], bytes(echo))

    def announce(self, session_id: int, egress_channel: str) -> None:
        """Become the leader of the next term and tell the session so (a new egress, NewLeaderEvent)."""
        self.term += 1
        self.leader = self.member_id
        egress = self.transport.add_exclusive_publication(egress_channel, 102)
        self.egress[session_id] = egress
        event = pack(
            codecs.NewLeaderEventEncoder,
            {"ingress_endpoints": ENDPOINTS},
            leadership_term_id=self.term,
            cluster_session_id=session_id,
            leader_member_id=self.member_id,
        )
        self._send(egress, event)


@pytest.fixture
def world() -> Iterator[tuple[SimNetwork, Transport, list[Member]]]:
    network = SimNetwork(7)
    client = Transport(network, TransportConfig(bind_host="10.0.0.100", seed=1))
    members = [
        Member(i, Transport(network, TransportConfig(bind_host=f"10.0.0.{i + 1}", seed=10 + i)), leader=1)
        for i in range(3)
    ]
    yield network, client, members
    client.close()
    for member in members:
        member.transport.close()


def _invoker(network: SimNetwork, client: Transport, members: list[Member]) -> object:
    def invoke() -> None:
        client.do_work()
        for member in members:
            member.do_work()
        network.advance(100_000)

    return invoke


def test_a_client_redirected_by_a_follower_connects_to_the_leader_and_its_messages_are_echoed(
    world: tuple[SimNetwork, Transport, list[Member]],
) -> None:
    network, client, members = world
    invoke = _invoker(network, client, members)
    members[1].leader = 1
    for member in members:
        member.leader = 1
    cluster = AeronCluster.connect(
        client,
        egress_channel="aeron:udp?endpoint=10.0.0.100:0",
        ingress_endpoints=ENDPOINTS,
        invoker=invoke,  # type: ignore[arg-type]
    )
    assert (cluster.cluster_session_id, cluster.leadership_term_id, cluster.leader_member_id) == (101, 3, 1)
    payloads = [bytes([i]) * (i + 1) for i in range(5)]
    for payload in payloads:
        while cluster.offer(payload) <= 0:
            invoke()
    echoed: list[bytes] = []
    for _ in range(2_000):
        invoke()
        cluster.poll_egress(
            lambda event: echoed.append(event.payload) if isinstance(event, Message) else None
        )
        if len(echoed) == len(payloads):
            break
    assert echoed == payloads
    assert [codecs.SessionMessageHeaderDecoder.unpack(m)[:2] for m in members[1].received] == [(3, 101)] * 5
    cluster.close()
    assert cluster.is_closed


def test_after_a_new_leader_event_the_session_sends_to_the_new_leader_in_the_new_term(
    world: tuple[SimNetwork, Transport, list[Member]],
) -> None:
    network, client, members = world
    invoke = _invoker(network, client, members)
    cluster = AeronCluster.connect(
        client,
        egress_channel="aeron:udp?endpoint=10.0.0.100:19020",
        ingress_endpoints=ENDPOINTS,
        invoker=invoke,  # type: ignore[arg-type]
    )
    members[2].announce(cluster.cluster_session_id, "aeron:udp?endpoint=10.0.0.100:19020")
    events: list[object] = []
    for _ in range(2_000):
        invoke()
        cluster.poll_egress(events.append)
        if events:
            break
    assert events == [NewLeader(4, 2, {0: "10.0.0.1:9002", 1: "10.0.0.2:9002", 2: "10.0.0.3:9002"})]
    while cluster.offer(b"after the change") <= 0:
        invoke()
    for _ in range(2_000):
        invoke()
        if members[2].received:
            break
    assert [codecs.SessionMessageHeaderDecoder.unpack(m)[:2] for m in members[2].received] == [(4, 101)]


def test_an_error_from_the_leader_fails_the_connect_with_its_detail(
    world: tuple[SimNetwork, Transport, list[Member]],
) -> None:
    network, client, members = world
    members[1].reject = "invalid client version"
    with pytest.raises(ClusterClientError, match="ERROR: invalid client version"):
        AeronCluster.connect(
            client,
            egress_channel="aeron:udp?endpoint=10.0.0.100:0",
            ingress_endpoints=ENDPOINTS,
            invoker=_invoker(network, client, members),  # type: ignore[arg-type]
        )


def test_a_connect_nobody_answers_times_out(world: tuple[SimNetwork, Transport, list[Member]]) -> None:
    network, client, members = world
    silent = [m for m in members if False]  # no member runs: the ingress never connects
    with pytest.raises(ClusterClientError, match="connect failed"):
        AeronCluster.connect(
            client,
            egress_channel="aeron:udp?endpoint=10.0.0.100:0",
            ingress_endpoints=ENDPOINTS,
            message_timeout_ns=200 * MS,
            invoker=_invoker(network, client, silent),  # type: ignore[arg-type]
        )
