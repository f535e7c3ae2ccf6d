"""``AeronCluster`` over the transport on the simulated network, against scripted members that speak the
server side of the session protocol as Aeron's consensus module does (``support.scripted_cluster``): a
follower redirects, the leader answers OK and echoes, a new leader announces itself. (Against our own
cluster once it has sessions, and against Java's outside the suite.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.scripted_cluster import ENDPOINTS, Member, scripted_world

from cluster.client.aeron_cluster import AeronCluster, ClusterClientError
from cluster.client.protocol import Message, NewLeader, SessionClosed
from cluster.session_message import SESSION_HEADER_LENGTH
from cluster.transport.driver import Transport
from cluster.transport.logbuffer import BufferClaim
from cluster.transport.simnet import SimNetwork
from generated import aeron_cluster_codecs as codecs

MS = 1_000_000


@pytest.fixture
def world() -> Iterator[tuple[SimNetwork, Transport, list[Member]]]:
    yield from scripted_world(7)


def _connect(client: Transport, invoke: object, egress_channel: str) -> AeronCluster:
    """A session with the scripted cluster, connected while ``invoke`` runs the world."""
    return AeronCluster.connect(
        client,
        egress_channel=egress_channel,
        ingress_endpoints=ENDPOINTS,
        invoker=invoke,  # type: ignore[arg-type]
    )


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
    cluster = _connect(client, invoke, "aeron:udp?endpoint=10.0.0.100:0")
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


def test_try_claim_writes_the_session_header_and_the_payload_goes_after_it(
    world: tuple[SimNetwork, Transport, list[Member]],
) -> None:
    network, client, members = world
    invoke = _invoker(network, client, members)
    cluster = _connect(client, invoke, "aeron:udp?endpoint=10.0.0.100:0")
    claim = BufferClaim()
    while cluster.try_claim(5, claim) <= 0:
        invoke()
    assert len(claim.buffer) == SESSION_HEADER_LENGTH + 5
    claim.buffer[SESSION_HEADER_LENGTH:] = b"hello"
    claim.commit()
    events: list[object] = []
    for _ in range(2_000):
        invoke()
        cluster.poll_egress(events.append)
        if events:
            break
    assert [event.payload for event in events if isinstance(event, Message)] == [b"hello"]
    header = codecs.SessionMessageHeaderDecoder.unpack(members[1].received[0])
    assert header[:2] == (cluster.leadership_term_id, cluster.cluster_session_id)


def test_after_a_new_leader_event_the_session_sends_to_the_new_leader_in_the_new_term(
    world: tuple[SimNetwork, Transport, list[Member]],
) -> None:
    network, client, members = world
    invoke = _invoker(network, client, members)
    cluster = _connect(client, invoke, "aeron:udp?endpoint=10.0.0.100:19020")
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


def test_a_session_closed_in_the_same_batch_as_its_open_is_reported_closed_not_lost(
    world: tuple[SimNetwork, Transport, list[Member]],
) -> None:
    # the OK and the CLOSED arrive in one egress poll: the connect succeeds, and the close waits for
    # poll_egress (it once was dropped with the events behind the OK, leaving an open-looking session)
    network, client, members = world
    invoke = _invoker(network, client, members)
    members[1].close_on_open = "session limit reached"
    session = AeronCluster.begin_connect(
        client, egress_channel="aeron:udp?endpoint=10.0.0.100:0", ingress_endpoints=ENDPOINTS
    )
    for _ in range(2_000):
        if session.poll_connect():
            break
        for _ in range(20):  # let both events land before the next poll
            invoke()
    assert session.poll_connect()  # connected, and stays so until its events are read
    events: list[object] = []
    session.poll_egress(events.append)
    assert events == [SessionClosed("session limit reached")]
    assert session.is_closed
    with pytest.raises(ClusterClientError, match="CLOSED"):
        session.offer(b"too late")


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
