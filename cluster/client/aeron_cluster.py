"""``AeronCluster``: a client's session with a cluster, over our transport (Aeron's ``AeronCluster``).

Theory of operation
-------------------
The session protocol is ``ClientProtocol``'s (sans-IO); this class moves its bytes. It subscribes to the
egress channel (a port of 0 becomes the port the subscription bound, which the cluster must answer on),
opens an exclusive ingress publication to each member's ingress endpoint (or one on the ingress channel
as given), and connects: the connect request goes out on the first publication that connects; a
REDIRECT names the leader, whose publication the next request goes on; a Challenge is answered; OK opens
the session. ``connect`` runs ``invoker`` (by default the transport's duty cycle) while it waits, up to
the message timeout, and raises ``ClusterClientError`` on a timeout, a rejection or an error.

Open, ``offer`` sends a message to the leader's ingress behind the session header (``try_claim`` claims
a frame with the header written, for a payload written in place), ``send_admin_request`` asks for an
administrative action, ``poll_egress`` hands
the session's egress events to a handler (``Message``, ``NewLeader``, ``AdminResponse``,
``SessionClosed``), and after a NewLeaderEvent later messages go to the new leader's ingress endpoint
with the new term -- the session survives the change. ``send_keep_alive`` keeps an idle session open;
``close`` asks the cluster to close it and closes the channels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from cluster.client.protocol import (
    DEFAULT_MESSAGE_TIMEOUT_NS,
    ClientProtocol,
    ClientProtocolError,
    Connected,
    ConnectFailed,
    Event,
    Message,
    NewLeader,
    Redirected,
    SessionClosed,
    State,
    parse_ingress_endpoints,
)
from cluster.session_message import SESSION_HEADER_LENGTH, write_session_header
from cluster.transport.driver import Transport
from cluster.transport.image import Subscription
from cluster.transport.logbuffer import BufferClaim, FragmentAssembler
from cluster.transport.publication import Publication, offer_past_rotation
from cluster.transport.uri import ChannelUri
from generated import aeron_cluster_codecs as codecs

__all__ = ["AeronCluster", "ClusterClientError"]

FRAGMENT_LIMIT: Final = 10


class ClusterClientError(Exception):
    """The session could not be had or kept: a timeout, a rejection, an error, a closed session."""


class AeronCluster:
    """One session with a cluster (see the module docstring). Build it with ``connect``."""

    def __init__(
        self,
        transport: Transport,
        protocol: ClientProtocol,
        egress: Subscription,
        ingress: dict[int, Publication],
        ingress_channel: str,
        ingress_stream_id: int,
        invoker: Callable[[], object],
    ) -> None:
        self.transport = transport
        self.protocol = protocol
        self._egress = egress
        self._assembler = FragmentAssembler(self._on_fragment)  # a long reply arrives in fragments
        self._ingress = ingress
        self._ingress_channel = ingress_channel
        self._ingress_stream_id = ingress_stream_id
        self._invoker = invoker
        self._leader: Publication | None = None
        self._events: list[Event] = []
        self._sent_on: Publication | None = None  # connecting: where the connect request went
        self._pending: bytes | None = None  # connecting: the request, until it has left
        self._connect_deadline_ns = 0
        self._opened = False  # the connect succeeded (the session may have been closed since)
        self._nano_time = transport.clock.nano_time
        self.is_closed = False

    # ------------------------------------------------------------------ connecting

    @classmethod
    def connect(cls, transport: Transport, *, egress_channel: str, **options: Any) -> AeronCluster:
        """Connect, running the ``invoker`` option (default: the transport's duty cycle) until the session
        is open; ``ClusterClientError`` on a timeout, a rejection or an error. The options are
        ``begin_connect``'s."""
        client = cls.begin_connect(transport, egress_channel=egress_channel, **options)
        try:
            while not client.poll_connect():
                client._invoker()
        except BaseException:
            client._close_channels()
            raise
        return client

    @classmethod
    def begin_connect(
        cls,
        transport: Transport,
        *,
        egress_channel: str,
        ingress_endpoints: str | None = None,
        ingress_channel: str = "aeron:udp",
        ingress_stream_id: int = 101,
        egress_stream_id: int = 102,
        credentials: Callable[[], bytes] = bytes,
        on_challenge: Callable[[bytes], bytes] = lambda challenge: b"",
        message_timeout_ns: int = DEFAULT_MESSAGE_TIMEOUT_NS,
        invoker: Callable[[], object] | None = None,
    ) -> AeronCluster:
        """The channels of a session, not yet connected: call ``poll_connect`` while running the
        transport, until it answers ``True`` (Aeron's asynchronous connect)."""
        egress = transport.add_subscription(egress_channel, egress_stream_id)
        uri = ChannelUri.parse(egress_channel)
        endpoint = uri.params.get("endpoint", "")
        if endpoint.endswith(":0") and egress.local_address is not None:
            host, port = egress.local_address
            egress_channel = uri.with_param("endpoint", f"{host}:{port}").build()
        protocol = ClientProtocol(
            egress_channel=egress_channel,
            egress_stream_id=egress_stream_id,
            credentials=credentials,
            on_challenge=on_challenge,
            message_timeout_ns=message_timeout_ns,
        )
        ingress: dict[int, Publication] = {}
        client = cls(
            transport,
            protocol,
            egress,
            ingress,
            ingress_channel,
            ingress_stream_id,
            invoker or transport.do_work,
        )
        try:
            if ingress_endpoints:
                for member_id, member_endpoint in parse_ingress_endpoints(ingress_endpoints).items():
                    ingress[member_id] = client._publication(member_endpoint)
            else:
                ingress[-1] = transport.add_exclusive_publication(ingress_channel, ingress_stream_id)
        except BaseException:
            client._close_channels()
            raise
        client._connect_deadline_ns = transport.clock.nano_time() + protocol.message_timeout_ns
        return client

    def _publication(self, endpoint: str) -> Publication:
        channel = ChannelUri.parse(self._ingress_channel).with_param("endpoint", endpoint).build()
        return self.transport.add_exclusive_publication(channel, self._ingress_stream_id)

    def poll_connect(self) -> bool:
        """One step of connecting (it does not run the transport): ``True`` once the session is open;
        ``ClusterClientError`` on a timeout, a rejection or an error. Events that came after the
        session opened (a message, a new leader, even its close) wait for ``poll_egress``."""
        if self._opened:
            return True
        if self.is_closed:
            raise ClusterClientError("the session is closed")
        protocol = self.protocol
        now_ns = self.transport.clock.nano_time()
        if self._sent_on is None:
            target = self._leader or next((p for p in self._ingress.values() if p.is_connected), None)
            if target is not None:
                self._sent_on, self._pending = target, protocol.connect_request(now_ns)
        if self._pending is not None and self._sent_on is not None and self._sent_on.offer(self._pending) > 0:
            self._pending = None
        self._egress.poll(self._assembler, FRAGMENT_LIMIT)
        while self._events:
            event = self._events.pop(0)
            if isinstance(event, Connected):
                self._leader = self._sent_on
                self._opened = True
                return True
            if isinstance(event, Redirected):
                self._leader = self._leader_publication(event.leader_member_id, event.ingress_endpoints)
                self._sent_on = None
                self._connect_deadline_ns = now_ns + protocol.message_timeout_ns
            elif isinstance(event, ConnectFailed):
                raise ClusterClientError(f"connect failed: {event.code}: {event.detail}")
        if protocol.state == State.CONNECTING and (timeout := protocol.on_tick(now_ns)) is not None:
            assert isinstance(timeout, ConnectFailed)
            raise ClusterClientError(f"connect failed: {timeout.code}: {timeout.detail}")
        if self._sent_on is None and now_ns >= self._connect_deadline_ns:
            timeout_ms = protocol.message_timeout_ns // 1_000_000
            raise ClusterClientError(
                f"connect failed: no ingress publication connected within {timeout_ms} ms"
            )
        return False

    def _leader_publication(self, member_id: int, endpoints: dict[int, str]) -> Publication:
        publication = self._ingress.get(member_id)
        if publication is None or publication.is_closed:
            if member_id not in endpoints:
                raise ClusterClientError(
                    f"the cluster named leader {member_id} but no ingress endpoint for it"
                )
            publication = self._ingress[member_id] = self._publication(endpoints[member_id])
        return publication

    def _on_fragment(self, buffer: memoryview, header: object) -> None:
        try:
            # the fragment as it stands in the term: what the event keeps, the protocol copies
            event, reply = self.protocol.on_egress(self._nano_time(), buffer)
        except ClientProtocolError:
            return  # not a cluster message on the egress: nothing this session can use
        if reply is not None and self._leader is not None:
            offer_past_rotation(self._leader, reply)
        elif reply is not None:
            for publication in self._ingress.values():
                if publication.is_connected:
                    offer_past_rotation(publication, reply)
                    break
        if event is not None:
            self._events.append(event)

    # ------------------------------------------------------------------ open

    @property
    def cluster_session_id(self) -> int:
        return self.protocol.cluster_session_id

    @property
    def leadership_term_id(self) -> int:
        return self.protocol.leadership_term_id

    @property
    def leader_member_id(self) -> int:
        return self.protocol.leader_member_id

    def offer(self, payload: bytes | bytearray | memoryview) -> int:
        """Send ``payload`` to the leader behind the session header; the publication's result (a
        position, or a negative back-pressure or not-connected code to try again on)."""
        leader = self._leader
        if leader is None or self.is_closed or self.protocol.state is not State.OPEN:
            self._check_open()
        assert leader is not None
        return leader.offer(self.protocol.session_message(payload))

    def try_claim(self, length: int, claim: BufferClaim) -> int:
        """Claim a frame on the leader's ingress for a ``length``-byte payload, with the session's header
        already written at its start: write the payload into ``claim.buffer[SESSION_HEADER_LENGTH:]``,
        then ``claim.commit()`` (or ``abort()``). The publication's result, as ``offer``'s."""
        self._check_open()
        assert self._leader is not None
        result = self._leader.try_claim(SESSION_HEADER_LENGTH + length, claim)
        if result > 0:
            protocol = self.protocol
            write_session_header(claim.buffer, protocol.leadership_term_id, protocol.cluster_session_id, 0)
        return result

    def send_admin_request(
        self,
        correlation_id: int,
        request_type: int = codecs.AdminRequestType.SNAPSHOT,
        payload: bytes | bytearray | memoryview = b"",
    ) -> bool:
        """Ask the cluster for an administrative action (Aeron's ``sendAdminRequestToTakeSnapshot``); its
        AdminResponse, with ``correlation_id``, comes to ``poll_egress``. Whether the request left."""
        self._check_open()
        assert self._leader is not None
        request = self.protocol.admin_request(correlation_id, request_type, payload)
        return offer_past_rotation(self._leader, request) > 0

    def send_keep_alive(self) -> bool:
        self._check_open()
        assert self._leader is not None
        return offer_past_rotation(self._leader, self.protocol.keep_alive()) > 0

    def poll_egress(self, handler: Callable[[Event], object], fragment_limit: int = FRAGMENT_LIMIT) -> int:
        """Hand this session's egress events to ``handler``; how many fragments were read. A NewLeader
        moves the ingress to the new leader first; a closed session reads nothing."""
        if self.is_closed:
            return 0
        count = self._egress.poll(self._assembler, fragment_limit)
        events, self._events = self._events, []
        for event in events:
            if type(event) is Message:  # nearly every event: nothing for the session to do first
                handler(event)
                continue
            if isinstance(event, NewLeader):
                self._leader = self._leader_publication(event.leader_member_id, event.ingress_endpoints)
            elif isinstance(event, SessionClosed):
                self._close_channels()
            handler(event)
        return count

    def _check_open(self) -> None:
        if self.is_closed or self.protocol.state != State.OPEN:
            raise ClusterClientError(f"the session is {self.protocol.state.value}")

    def close(self) -> None:
        """Ask the cluster to close the session (best effort), then close the channels. Idempotent."""
        if self.is_closed:
            return
        if self.protocol.state == State.OPEN and self._leader is not None:
            offer_past_rotation(self._leader, self.protocol.close_request())
        self._close_channels()

    def _close_channels(self) -> None:
        self.is_closed = True
        for publication in self._ingress.values():
            publication.close()
        self._ingress.clear()
        self._egress.close()
