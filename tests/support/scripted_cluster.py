"""Scripted cluster members for client tests: each answers on its ingress what Aeron's consensus module
would -- a follower redirects, the leader opens a session and echoes every session message, a new leader
announces itself -- with no consensus behind it. They run on any network: ``SimNetwork`` for in-process
tests, real UDP on 127.0.0.1 (``serve`` on a thread) for tests that run the client as a process."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cluster.transport.agent import SelectorIdleStrategy
from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.publication import Publication
from cluster.transport.simnet import SimNetwork
from generated import aeron_cluster_codecs as codecs
from support.cluster_messages import pack

__all__ = ["EGRESS_STREAM_ID", "ENDPOINTS", "INGRESS_STREAM_ID", "Member", "serve"]

ENDPOINTS = "0=10.0.0.1:9002,1=10.0.0.2:9002,2=10.0.0.3:9002"
"""The simulated cluster's ingress endpoints: member i listens on 10.0.0.<i + 1>:9002."""
INGRESS_STREAM_ID = 101
EGRESS_STREAM_ID = 102
FRAGMENT_LIMIT = 64


@dataclass
class Member:
    """A scripted member: what a consensus module answers on its ingress, no consensus behind it.

    ``close_on_open`` closes each session as soon as it is open (both events in one batch); ``drop_echo(n)``
    says whether to leave the ``n``-th session message it received (from 0) unanswered,
    ``corrupt_echo(n)`` whether to change the last byte of its echo; ``echo = False`` stops all echoes
    (a deposed leader)."""

    member_id: int
    transport: Transport
    leader: int
    term: int = 3
    reject: str = ""
    ingress_endpoint: str = ""  # default: 10.0.0.<member id + 1>:9002
    endpoints: str = ENDPOINTS
    echo: bool = True
    close_on_open: str = ""  # a SessionEvent CLOSED with this detail right behind the OK, if set
    drop_echo: Callable[[int], bool] = lambda n: False
    corrupt_echo: Callable[[int], bool] = lambda n: False
    egress: dict[int, Publication] = field(default_factory=dict)  # session id -> its egress
    response_channels: dict[int, str] = field(default_factory=dict)  # session id -> its egress channel
    pending: list[tuple[Publication, bytes]] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.ingress_endpoint:
            self.ingress_endpoint = f"10.0.0.{self.member_id + 1}:9002"
        self.ingress = self.transport.add_subscription(
            f"aeron:udp?endpoint={self.ingress_endpoint}", INGRESS_STREAM_ID
        )

    def do_work(self) -> int:
        work = self.transport.do_work()
        work += self.ingress.poll(self._on_ingress, FRAGMENT_LIMIT)
        still = []
        for publication, message in self.pending:
            if not (publication.is_connected and publication.offer(message) > 0):
                still.append((publication, message))
        work += len(self.pending) - len(still)
        self.pending = still
        return work

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
                code, detail, session_id = codecs.EventCode.REDIRECT, self.endpoints, -1
            self.egress[session_id] = egress
            self.response_channels[session_id] = decoder.response_channel_str()
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
            if self.close_on_open and code == codecs.EventCode.OK:
                closed = pack(
                    codecs.SessionEventEncoder,
                    {"detail": self.close_on_open},
                    cluster_session_id=session_id,
                    correlation_id=decoder.correlation_id,
                    leadership_term_id=self.term,
                    leader_member_id=self.leader,
                    code=codecs.EventCode.CLOSED,
                    version=0,
                )
                self._send(egress, closed)
        elif isinstance(decoder, codecs.SessionMessageHeaderDecoder):
            number = len(self.received)
            self.received.append(bytes(buffer))
            if decoder.leadership_term_id != self.term:
                return  # a stale term: dropped, as Aeron's leader does
            if not self.echo or self.drop_echo(number):
                return
            echo = bytearray(buffer)
            codecs.SessionMessageHeaderEncoder.pack_into(
                echo,
                0,
                leadership_term_id=self.term,
                cluster_session_id=decoder.cluster_session_id,
                timestamp=42,
            )
            if self.corrupt_echo(number):
                echo[-1] ^= 0xFF
            self._send(self.egress[decoder.cluster_session_id], bytes(echo))

    def announce(self, session_id: int, egress_channel: str) -> None:
        """Become the leader of the next term and tell the session so (a new egress, NewLeaderEvent)."""
        self.term += 1
        self.leader = self.member_id
        egress = self.transport.add_exclusive_publication(egress_channel, EGRESS_STREAM_ID)
        self.egress[session_id] = egress
        event = pack(
            codecs.NewLeaderEventEncoder,
            {"ingress_endpoints": self.endpoints},
            leadership_term_id=self.term,
            cluster_session_id=session_id,
            leader_member_id=self.member_id,
        )
        self._send(egress, event)


def serve(member: Member, idle: SelectorIdleStrategy, stop: threading.Event) -> threading.Thread:
    """Run ``member`` (whose transport was made with ``idle``) on a new thread until ``stop`` is set;
    the caller sets it, joins the thread and closes the transport."""

    def loop() -> None:
        while not stop.is_set():
            idle.idle(member.do_work())

    thread = threading.Thread(target=loop, name=f"scripted-member-{member.member_id}", daemon=True)
    thread.start()
    return thread


def scripted_world(seed: int) -> Iterator[tuple[SimNetwork, Transport, list[Member]]]:
    """A client's transport and three scripted members (member 1 leads) on a ``SimNetwork``; closed after."""
    network = SimNetwork(seed)
    client = Transport(network, TransportConfig(bind_host="10.0.0.100", seed=1))
    members = [
        Member(i, Transport(network, TransportConfig(bind_host=f"10.0.0.{i + 1}", seed=10 + i)), leader=1)
        for i in range(3)
    ]
    yield network, client, members
    client.close()
    for member in members:
        member.transport.close()
