"""Our session protocol against the bytes of a real Java Aeron Cluster (1.47.3): a capture of a 3-member
Java cluster's traffic, in the shared reference data (``support.paths.JAVA``), in which two Java clients
are each redirected by a follower, connect to the leader and are echoed, and client B is carried across
a leader failover.

Both sides are held to the wire, byte for byte:

- **our client** (``ClientProtocol``), given what each Java client was told, sends exactly the bytes the
  Java client sent -- connect requests, session messages, keep-alives, the close -- and makes of the Java
  cluster's answers the events a user expects: a redirect, the open session, every echo, the new leader;
- **our cluster** (``ClientSessions``) answers as the Java members did: the follower's REDIRECT, the
  leader's OK, and after the failover the new leader's OK and NewLeaderEvent to the session it learned
  from the Java leader's log (the log's entries are taken from the capture too).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.needs import need_reference
from support.paths import JAVA
from support.session_out import Out

from cluster.client.protocol import ClientProtocol, Connected, Message, NewLeader, Redirected
from cluster.consensus.core.actions import OpenEgress, SendEgress
from cluster.consensus.core.members import parse_members
from cluster.consensus.core.sessions import ClientSessions
from cluster.session_message import SESSION_HEADER_LENGTH
from generated import aeron_cluster_codecs as codecs
from tools.capture import CaptureDecoder, Datagram, SbeCatalog, read_datagrams

CAPTURE = JAVA / "cluster" / "capture.pcapng"
# the Java run's members (its README): member i on 127.0.0.1:9<i>0k, k = 2 ingress ... 1 archive
MEMBERS = "|".join(
    f"{i},127.0.0.1:9{i}02,127.0.0.1:9{i}03,127.0.0.1:9{i}04,127.0.0.1:9{i}05,127.0.0.1:9{i}01"
    for i in range(3)
)
ENDPOINTS = {i: f"127.0.0.1:9{i}02" for i in range(3)}
INGRESS_PORTS = (9002, 9102, 9202)
EGRESS_PORTS = {"A": 9280, "B": 9281}
LOG_TO_MEMBER_1 = 9104  # the term-0 leader's log as member 1 received it
S = 1_000_000_000


class _KeepingBytes(SbeCatalog):
    """A catalog for the capture decoder that keeps each message's bytes, and describes nothing (the
    tests decode with our generated codecs)."""

    def describe(self, payload: bytes) -> dict[str, Any]:
        return {"raw": payload}


@pytest.fixture(scope="module")
def wire() -> list[tuple[int, bytes]]:
    """(destination port, message) for every message to an ingress, egress or member 1's log port, in
    the capture's order, reassembled per port (so a retransmission counts once)."""
    path = need_reference(CAPTURE)
    ports = (*INGRESS_PORTS, *EGRESS_PORTS.values(), LOG_TO_MEMBER_1)
    catalog = _KeepingBytes(())
    decoders = {port: CaptureDecoder(catalog) for port in ports}
    messages = []
    for item in read_datagrams(path, ports):
        if not isinstance(item, Datagram) or item.destination_port not in ports:
            continue
        for record in decoders[item.destination_port].decode_datagram(item.index, item.payload):
            if record["kind"] == "message":
                messages.append((item.destination_port, record["raw"]))
    return messages


def _decode(message: bytes) -> Any:
    decoder = codecs.decode(message)
    type(decoder).unpack(message)
    return decoder


def _client_messages(wire: list[tuple[int, bytes]], client: str) -> Iterator[tuple[bool, bytes]]:
    """(is it egress, message) of one Java client, in order: its egress, and its ingress -- the connect
    requests naming its egress channel, then whatever names the session it was given."""
    egress_port = EGRESS_PORTS[client]
    session_id = next(
        d.cluster_session_id
        for port, m in wire
        if port == egress_port
        and isinstance(d := _decode(m), codecs.SessionEventDecoder)
        and d.code == codecs.EventCode.OK
    )
    for port, message in wire:
        if port == egress_port:
            yield True, message
        elif port in INGRESS_PORTS:
            decoder = _decode(message)
            if isinstance(decoder, codecs.SessionConnectRequestDecoder):
                if decoder.response_channel_str().endswith(f":{egress_port}"):
                    yield False, message
            elif decoder.cluster_session_id == session_id:
                yield False, message


@pytest.mark.parametrize("client", sorted(EGRESS_PORTS))
def test_our_client_sends_what_the_java_client_sent_and_follows_the_java_cluster(
    wire: list[tuple[int, bytes]], client: str
) -> None:
    protocol: ClientProtocol | None = None
    events: list[object] = []
    sent: list[bytes] = []  # the payloads of the session messages
    kinds: dict[str, int] = {}
    for is_egress, message in _client_messages(wire, client):
        decoder = _decode(message)
        if is_egress:
            assert protocol is not None
            event, reply = protocol.on_egress(0, message)
            assert reply is None
            if event is not None:
                events.append(event)
            continue
        kind = type(decoder).__name__
        kinds[kind] = kinds.get(kind, 0) + 1
        if isinstance(decoder, codecs.SessionConnectRequestDecoder):
            # the Java client's correlation ids come from its Aeron client; ours count on from the first
            protocol = ClientProtocol(
                egress_channel=decoder.response_channel_str(), first_correlation_id=decoder.correlation_id
            )
            ours = protocol.connect_request(0)
        else:
            assert protocol is not None
            if isinstance(decoder, codecs.SessionMessageHeaderDecoder):
                sent.append(message[SESSION_HEADER_LENGTH:])
                ours = protocol.session_message(message[SESSION_HEADER_LENGTH:])
            elif isinstance(decoder, codecs.SessionKeepAliveDecoder):
                ours = protocol.keep_alive()
            elif isinstance(decoder, codecs.SessionCloseRequestDecoder):
                ours = protocol.close_request()
            else:
                pytest.fail(f"a Java client sent {kind}, which this test does not know")
        assert ours == message, f"client {client}'s {kind} differs from the Java client's"
    assert kinds["SessionConnectRequestDecoder"] == 2  # the follower it tried first redirected it
    assert kinds["SessionCloseRequestDecoder"] == 1 and kinds["SessionMessageHeaderDecoder"] >= 300

    redirected, connected = events[0], events[1]
    assert redirected == Redirected(0, 0, ENDPOINTS)
    assert isinstance(connected, Connected) and connected.leader_member_id == 0
    echoes = [event.payload for event in events if isinstance(event, Message)]
    assert echoes == sent  # every message echoed, in order
    new_leaders = [event for event in events if isinstance(event, NewLeader)]
    if client == "B":  # carried across the failover: member 1 leads term 1
        assert new_leaders == [NewLeader(1, 1, ENDPOINTS)]
    else:
        assert new_leaders == []
    assert len(events) == 2 + len(echoes) + len(new_leaders)  # nothing else came of the egress


def _sessions(member_id: int) -> ClientSessions:
    return ClientSessions(
        member_id=member_id,
        members=parse_members(MEMBERS),
        service_count=1,
        max_sessions=10,
        session_timeout_ns=10 * S,
    )


def _egress(wire: list[tuple[int, bytes]], client: str, name: str) -> list[bytes]:
    return [m for port, m in wire if port == EGRESS_PORTS[client] and type(_decode(m)).__name__ == name]


def _connects(wire: list[tuple[int, bytes]], port: int) -> list[bytes]:
    return [m for p, m in wire if p == port and isinstance(_decode(m), codecs.SessionConnectRequestDecoder)]


def test_our_follower_redirects_with_the_java_followers_bytes(wire: list[tuple[int, bytes]]) -> None:
    follower = _sessions(2)
    redirects: list[bytes] = []
    for connect in _connects(wire, 9202):  # each client tried member 2 first
        out = Out()
        follower.on_ingress(
            0, connect, out, leading=False, following=True, leadership_term_id=0, leader_id=0, forward=print
        )
        redirects += [action.message for action in out.of(SendEgress)]
    java = [m for client in "AB" for m in _egress(wire, client, "SessionEventDecoder")[:1]]
    assert redirects == java


def test_our_leader_opens_sessions_with_the_java_leaders_bytes(wire: list[tuple[int, bytes]]) -> None:
    leader = _sessions(0)
    oks: list[bytes] = []
    for connect in _connects(wire, 9002):  # after the redirect, to the leader, in the order they came
        out = Out()
        leader.on_ingress(
            0, connect, out, leading=True, following=False, leadership_term_id=0, leader_id=0, forward=print
        )
        (opened,) = out.of(OpenEgress)
        leader.on_egress_connected(opened.key)
        tick = Out()
        leader.leader_tick(1, tick, 0)  # the default authenticator accepts: the open is appended
        oks += [action.message for action in tick.appended(4096 * len(oks) + 128).of(SendEgress)]
    java = [_egress(wire, client, "SessionEventDecoder")[1] for client in "AB"]
    assert oks == java


def test_a_new_leader_tells_the_session_it_learned_from_the_java_log_what_the_java_leader_did(
    wire: list[tuple[int, bytes]],
) -> None:
    # member 1 follows term 0, reading the Java leader's log as it came to it, then leads term 1
    member = _sessions(1)
    position = 0
    for port, entry in wire:
        if port == LOG_TO_MEMBER_1:
            position += (len(entry) + 32 + 31) & -32
            member.on_log_entry(0, entry, position)
    assert sorted(member.sessions) == [2]  # client A closed its session before the failover
    out = Out()
    member.on_leading(1, out, 1)
    assert out.of(OpenEgress) == [OpenEgress(2, "aeron:udp?endpoint=127.0.0.1:9281", 102)]
    member.on_egress_connected(2)
    told = Out()
    member.leader_tick(2, told, 1)
    java = [
        m
        for port, m in wire
        if port == EGRESS_PORTS["B"]
        and isinstance(d := _decode(m), (codecs.SessionEventDecoder, codecs.NewLeaderEventDecoder))
        and d.leadership_term_id == 1
    ]
    assert [type(_decode(m)).__name__ for m in java] == ["SessionEventDecoder", "NewLeaderEventDecoder"]
    assert [action.message for action in told.of(SendEgress)] == java
