"""The client's side of Aeron Cluster's session protocol, sans-IO: what to send, and what the cluster's
egress messages mean.

Theory of operation
-------------------
``ClientProtocol`` holds one session's state and speaks only in bytes and events; it opens no socket and
reads no clock (``now_ns`` comes in). The client that owns the transport (ingress publications, the
egress subscription) feeds it every egress message and sends what it returns. One session's life:

1. ``connect_request(now_ns)`` -- a SessionConnectRequest with a fresh correlation id, the client
   protocol version (0.3.0) and the egress channel the cluster must answer on. The state is CONNECTING
   until ``connect_deadline_ns``.
2. The answer, through ``on_egress``: a SessionEvent OK with the session's id (``Connected``: the session
   is open), REDIRECT with the members' ingress endpoints (``Redirected``: reconnect to the leader the
   event names, with a new request), ERROR or AUTHENTICATION_REJECTED (``ConnectFailed``), or a
   Challenge (``challenge_response`` answers it with the credentials supplier's reply).
3. Open: ``session_message`` puts the SessionMessageHeader (the session's id and the leader's term, the
   timestamp left 0 for the leader to stamp) in front of a payload; ``keep_alive`` and ``close_request``
   build SessionKeepAlive and SessionCloseRequest. Egress for this session becomes ``Message``,
   ``NewLeader`` (the term moves on: later messages carry the new one, and ingress should go to the new
   leader's endpoint), ``AdminResponse`` and ``SessionClosed``. Egress for another session is ignored.

A message that is not one of the cluster schema's raises ``ClientProtocolError``; a well-formed message
that does not concern this session (another session's, a stale correlation id) is ignored.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cluster.messages import pack
from cluster.session_message import SESSION_HEADER_LENGTH, session_message
from codegen.runtime.errors import CodecError
from generated import aeron_cluster_codecs as codecs

__all__ = [
    "CLIENT_PROTOCOL_VERSION",
    "AdminResponse",
    "ClientProtocol",
    "ClientProtocolError",
    "ConnectFailed",
    "Connected",
    "Event",
    "Message",
    "NewLeader",
    "Redirected",
    "SessionClosed",
    "State",
    "parse_ingress_endpoints",
]

CLIENT_PROTOCOL_VERSION: Final = (0 << 16) | (3 << 8) | 0  # 0.3.0: the major version must match
DEFAULT_MESSAGE_TIMEOUT_NS: Final = 5_000_000_000  # Aeron's aeron.cluster.message.timeout
_E = codecs.EventCode

# A SessionMessageHeader whole, its SBE message header included: (block length, template id, schema id,
# version, leadership term id, cluster session id, timestamp). ``on_egress`` reads an echo with it in one
# unpack when the header says what the generated decoder would accept at once.
_SESSION_MESSAGE: Final = struct.Struct("<HHHHqqq")
_SESSION_BLOCK_LENGTH: Final = codecs.SessionMessageHeaderDecoder.BLOCK_LENGTH
_SESSION_TEMPLATE_ID: Final = codecs.SessionMessageHeaderDecoder.TEMPLATE_ID
_SCHEMA_ID: Final = codecs.SCHEMA_ID
assert _SESSION_MESSAGE.size == SESSION_HEADER_LENGTH


class ClientProtocolError(Exception):
    """Bytes on the egress that are not a message of the cluster schema, or a call the state forbids."""


class State(enum.Enum):
    IDLE = "IDLE"
    CONNECTING = "CONNECTING"
    OPEN = "OPEN"
    CLOSED = "CLOSED"


@dataclass(frozen=True, slots=True)
class Connected:
    cluster_session_id: int
    leadership_term_id: int
    leader_member_id: int


@dataclass(frozen=True, slots=True)
class Redirected:
    leadership_term_id: int
    leader_member_id: int
    ingress_endpoints: dict[int, str]


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    code: str  # ERROR, AUTHENTICATION_REJECTED or TIMEOUT
    detail: str


@dataclass(frozen=True, slots=True)
class NewLeader:
    leadership_term_id: int
    leader_member_id: int
    ingress_endpoints: dict[int, str]


@dataclass(frozen=True, slots=True)
class Message:
    leadership_term_id: int
    timestamp: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class AdminResponse:
    correlation_id: int
    request_type: int
    response_code: int
    message: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class SessionClosed:
    detail: str


_new_object = object.__new__
_set_message_term: Callable[[Message, int], None] = Message.__dict__["leadership_term_id"].__set__
_set_message_timestamp: Callable[[Message, int], None] = Message.__dict__["timestamp"].__set__
_set_message_payload: Callable[[Message, bytes], None] = Message.__dict__["payload"].__set__


Event = Connected | Redirected | ConnectFailed | NewLeader | Message | AdminResponse | SessionClosed


def parse_ingress_endpoints(text: str) -> dict[int, str]:
    """``"0=host:port,1=host:port"`` as ``{member id: endpoint}``; ``ClientProtocolError`` if malformed."""
    endpoints: dict[int, str] = {}
    for part in text.split(","):
        member, sep, endpoint = part.strip().partition("=")
        if not sep or not member.strip().lstrip("-").isdigit() or ":" not in endpoint:
            raise ClientProtocolError(f"ingress endpoints {text!r}: {part!r} is not memberId=host:port")
        member_id = int(member)
        if member_id in endpoints:
            raise ClientProtocolError(f"ingress endpoints {text!r}: member {member_id} twice")
        endpoints[member_id] = endpoint.strip()
    return endpoints


class ClientProtocol:
    """One client session's protocol state (see the module docstring)."""

    def __init__(
        self,
        *,
        egress_channel: str,
        egress_stream_id: int = 102,
        credentials: Callable[[], bytes] = bytes,
        on_challenge: Callable[[bytes], bytes] = lambda challenge: b"",
        message_timeout_ns: int = DEFAULT_MESSAGE_TIMEOUT_NS,
        first_correlation_id: int = 1,
    ) -> None:
        self.egress_channel = egress_channel
        self.egress_stream_id = egress_stream_id
        self.credentials = credentials
        self.on_challenge = on_challenge
        self.message_timeout_ns = message_timeout_ns
        self.state = State.IDLE
        self.cluster_session_id = -1
        self.leadership_term_id = -1
        self.leader_member_id = -1
        self.correlation_id = -1  # of the pending connect request
        self.connect_deadline_ns = 0
        self._next_correlation_id = first_correlation_id
        # the session header of the last ``session_message``, and the (term, session) it was made for
        self._session_header = b""
        self._session_header_ids = (0, 0)

    def _new_correlation_id(self) -> int:
        correlation_id = self._next_correlation_id
        self._next_correlation_id += 1
        return correlation_id

    # ------------------------------------------------------------------ what to send

    def connect_request(self, now_ns: int) -> bytes:
        """A SessionConnectRequest (a new one after a redirect); the session is CONNECTING."""
        if self.state in (State.OPEN, State.CLOSED):
            raise ClientProtocolError(f"connect in state {self.state.value}")
        self.state = State.CONNECTING
        self.correlation_id = self._new_correlation_id()
        self.connect_deadline_ns = now_ns + self.message_timeout_ns
        channel = self.egress_channel.encode()
        credentials = bytes(self.credentials())
        buffer = bytearray(
            codecs.HEADER_SIZE
            + codecs.SessionConnectRequestEncoder.BLOCK_LENGTH
            + 8
            + len(channel)
            + len(credentials)
        )
        encoder = codecs.SessionConnectRequestEncoder().wrap_and_apply_header(buffer, 0)
        encoder.correlation_id = self.correlation_id
        encoder.response_stream_id = self.egress_stream_id
        encoder.version = CLIENT_PROTOCOL_VERSION
        encoder.put_response_channel(channel)
        encoder.put_encoded_credentials(credentials)
        return bytes(buffer[: codecs.HEADER_SIZE + encoder.encoded_length()])

    def session_message(self, payload: bytes | bytearray | memoryview) -> bytes:
        """``payload`` behind the session's SessionMessageHeader, for the leader's ingress."""
        if self.state is not State.OPEN:
            self._require_open("send a message")
        ids = (self.leadership_term_id, self.cluster_session_id)
        if ids != self._session_header_ids or not self._session_header:
            # the header is the same for every message of a term: made again only when the term moves
            self._session_header = session_message(ids[0], ids[1], 0, b"")
            self._session_header_ids = ids
        return self._session_header + payload

    def keep_alive(self) -> bytes:
        self._require_open("send a keep-alive")
        return self._pack(
            codecs.SessionKeepAliveEncoder,
            leadership_term_id=self.leadership_term_id,
            cluster_session_id=self.cluster_session_id,
        )

    def admin_request(
        self, correlation_id: int, request_type: int, payload: bytes | bytearray | memoryview = b""
    ) -> bytes:
        """An AdminRequest (``request_type``: ``AdminRequestType.SNAPSHOT``, Aeron's only one), answered by
        an AdminResponse with ``correlation_id``."""
        self._require_open("send an admin request")
        return pack(
            codecs.AdminRequestEncoder,
            {"payload": bytes(payload)},
            leadership_term_id=self.leadership_term_id,
            cluster_session_id=self.cluster_session_id,
            correlation_id=correlation_id,
            request_type=request_type,
        )

    def close_request(self) -> bytes:
        """A SessionCloseRequest; the session is CLOSED on this side at once."""
        self._require_open("close")
        message = self._pack(
            codecs.SessionCloseRequestEncoder,
            leadership_term_id=self.leadership_term_id,
            cluster_session_id=self.cluster_session_id,
        )
        self.state = State.CLOSED
        return message

    def _require_open(self, what: str) -> None:
        if self.state != State.OPEN:
            raise ClientProtocolError(f"cannot {what}: the session is {self.state.value}")

    @staticmethod
    def _pack(encoder: object, **fields: int) -> bytes:
        buffer = bytearray(64)
        length = encoder.pack_into(buffer, 0, **fields)  # type: ignore[attr-defined]
        return bytes(buffer[:length])

    # ------------------------------------------------------------------ what arrives

    def on_tick(self, now_ns: int) -> Event | None:
        """A connect that has had no answer by its deadline fails (``ConnectFailed("TIMEOUT", ...)``)."""
        if self.state == State.CONNECTING and now_ns >= self.connect_deadline_ns:
            self.state = State.IDLE
            return ConnectFailed(
                "TIMEOUT",
                f"no answer to the connect request within {self.message_timeout_ns // 1_000_000} ms",
            )
        return None

    def on_egress(self, now_ns: int, data: bytes | memoryview) -> tuple[Event | None, bytes | None]:
        """One egress message: the event it means for this session (or ``None``), and a reply to send on
        the ingress (a ChallengeResponse), if any."""
        if len(data) >= SESSION_HEADER_LENGTH:
            # the common case first, in one unpack: a session message (what the generated decoder would
            # take at once: this schema and template, the block length every version has)
            values = _SESSION_MESSAGE.unpack_from(data)
            if (
                values[0] == _SESSION_BLOCK_LENGTH
                and values[1] == _SESSION_TEMPLATE_ID
                and values[2] == _SCHEMA_ID
            ):
                if self.state is not State.OPEN or values[5] != self.cluster_session_id:
                    return None, None
                # Message(...), made as its frozen dataclass __init__ makes it -- each slot set through
                # its descriptor -- without that __init__'s three calls through Python: half the cost
                message = _new_object(Message)
                _set_message_term(message, values[4])
                _set_message_timestamp(message, values[6])
                _set_message_payload(message, bytes(data[SESSION_HEADER_LENGTH:]))
                return message, None
        try:
            decoder = codecs.decode(data)
            type(decoder).unpack(data)
        except CodecError as error:
            raise ClientProtocolError(f"not a cluster message: {error}") from error
        if isinstance(decoder, codecs.SessionMessageHeaderDecoder):
            if self.state != State.OPEN or decoder.cluster_session_id != self.cluster_session_id:
                return None, None
            return Message(
                decoder.leadership_term_id, decoder.timestamp, bytes(data[SESSION_HEADER_LENGTH:])
            ), None
        if isinstance(decoder, codecs.SessionEventDecoder):
            return self._on_session_event(decoder), None
        if isinstance(decoder, codecs.ChallengeDecoder):
            if self.state != State.CONNECTING or decoder.correlation_id != self.correlation_id:
                return None, None
            self.cluster_session_id = decoder.cluster_session_id
            answer = self._pack_challenge_response(
                self.on_challenge(bytes(decoder.encoded_challenge_bytes()))
            )
            return None, answer
        if isinstance(decoder, codecs.NewLeaderEventDecoder):
            if self.state != State.OPEN or decoder.cluster_session_id != self.cluster_session_id:
                return None, None
            self.leadership_term_id = decoder.leadership_term_id
            self.leader_member_id = decoder.leader_member_id
            endpoints = parse_ingress_endpoints(decoder.ingress_endpoints_str())
            return NewLeader(decoder.leadership_term_id, decoder.leader_member_id, endpoints), None
        if isinstance(decoder, codecs.AdminResponseDecoder):
            if decoder.cluster_session_id != self.cluster_session_id:
                return None, None
            return (
                AdminResponse(
                    decoder.correlation_id,
                    int(decoder.request_type_raw),
                    int(decoder.response_code_raw),
                    decoder.message_str(),
                    bytes(decoder.payload_bytes()),
                ),
                None,
            )
        return None, None

    def _on_session_event(self, event: codecs.SessionEventDecoder) -> Event | None:
        code = event.code
        if self.state == State.CONNECTING and event.correlation_id == self.correlation_id:
            if code == _E.OK:
                self.state = State.OPEN
                self.cluster_session_id = event.cluster_session_id
                self.leadership_term_id = event.leadership_term_id
                self.leader_member_id = event.leader_member_id
                return Connected(self.cluster_session_id, self.leadership_term_id, self.leader_member_id)
            if code == _E.REDIRECT:
                self.leader_member_id = event.leader_member_id
                self.leadership_term_id = event.leadership_term_id
                endpoints = parse_ingress_endpoints(event.detail_str())
                return Redirected(event.leadership_term_id, event.leader_member_id, endpoints)
            if code in (_E.ERROR, _E.AUTHENTICATION_REJECTED):
                self.state = State.IDLE
                return ConnectFailed(_E(code).name, event.detail_str())
            return None  # CLOSED or unknown while connecting: keep waiting, as Aeron's client does
        if (
            self.state == State.OPEN
            and event.cluster_session_id == self.cluster_session_id
            and code == _E.CLOSED
        ):
            self.state = State.CLOSED
            return SessionClosed(event.detail_str())
        return None

    def _pack_challenge_response(self, credentials: bytes) -> bytes:
        buffer = bytearray(
            codecs.HEADER_SIZE + codecs.ChallengeResponseEncoder.BLOCK_LENGTH + 4 + len(credentials)
        )
        encoder = codecs.ChallengeResponseEncoder().wrap_and_apply_header(buffer, 0)
        encoder.correlation_id = self._new_correlation_id()
        encoder.cluster_session_id = self.cluster_session_id
        encoder.put_encoded_credentials(credentials)
        return bytes(buffer[: codecs.HEADER_SIZE + encoder.encoded_length()])
