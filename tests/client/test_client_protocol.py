"""The client's side of the session protocol, fed the cluster's egress messages by hand (built with the
generated encoders, as a cluster would send them): connect, redirect, challenge, rejection, timeout,
messages, a new leader, close -- and egress bytes that are not a cluster message."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.cluster_messages import pack

from cluster.client.protocol import (
    CLIENT_PROTOCOL_VERSION,
    AdminResponse,
    ClientProtocol,
    ClientProtocolError,
    Connected,
    ConnectFailed,
    Message,
    NewLeader,
    Redirected,
    SessionClosed,
    State,
    parse_ingress_endpoints,
)
from cluster.session_message import session_message
from generated import aeron_cluster_codecs as codecs

EGRESS = "aeron:udp?endpoint=10.0.0.100:19020"
ENDPOINTS = "0=10.0.0.1:9002,1=10.0.0.2:9002,2=10.0.0.3:9002"
MS = 1_000_000


def _event(protocol: ClientProtocol, code: codecs.EventCode, detail: str = "", **fields: int) -> bytes:
    values = {
        "cluster_session_id": 5,
        "correlation_id": protocol.correlation_id,
        "leadership_term_id": 3,
        "leader_member_id": 1,
        "code": code,
        "version": CLIENT_PROTOCOL_VERSION,
    } | fields
    return pack(codecs.SessionEventEncoder, {"detail": detail}, **values)


def _connected() -> ClientProtocol:
    protocol = ClientProtocol(egress_channel=EGRESS, credentials=lambda: b"secret")
    protocol.connect_request(0)
    event, reply = protocol.on_egress(1 * MS, _event(protocol, codecs.EventCode.OK))
    assert event == Connected(5, 3, 1) and reply is None and protocol.state == State.OPEN
    return protocol


def test_the_connect_request_names_the_egress_the_version_and_the_credentials() -> None:
    protocol = ClientProtocol(egress_channel=EGRESS, egress_stream_id=102, credentials=lambda: b"secret")
    request = codecs.decode(protocol.connect_request(0))
    assert isinstance(request, codecs.SessionConnectRequestDecoder)
    assert (request.correlation_id, request.response_stream_id, request.version) == (1, 102, 768)
    assert request.response_channel_str() == EGRESS
    assert bytes(request.encoded_credentials_bytes()) == b"secret"
    assert protocol.state == State.CONNECTING


def test_ok_opens_the_session_and_messages_carry_its_id_and_the_leaders_term() -> None:
    protocol = _connected()
    header = codecs.SessionMessageHeaderDecoder.unpack(protocol.session_message(b"payload"))
    assert header == (3, 5, 0)
    assert protocol.session_message(b"payload").endswith(b"payload")
    assert codecs.SessionKeepAliveDecoder.unpack(protocol.keep_alive()) == (3, 5)


def test_a_redirect_names_the_leader_and_the_endpoints_and_a_new_request_follows() -> None:
    protocol = ClientProtocol(egress_channel=EGRESS)
    protocol.connect_request(0)
    event, _ = protocol.on_egress(
        MS, _event(protocol, codecs.EventCode.REDIRECT, ENDPOINTS, cluster_session_id=-1)
    )
    assert event == Redirected(3, 1, {0: "10.0.0.1:9002", 1: "10.0.0.2:9002", 2: "10.0.0.3:9002"})
    assert protocol.state == State.CONNECTING
    first = protocol.correlation_id
    protocol.connect_request(2 * MS)
    assert protocol.correlation_id == first + 1
    stale, _ = protocol.on_egress(3 * MS, _event(protocol, codecs.EventCode.OK, correlation_id=first))
    assert stale is None and protocol.state == State.CONNECTING  # the answer to the old request


@pytest.mark.parametrize("code", [codecs.EventCode.ERROR, codecs.EventCode.AUTHENTICATION_REJECTED])
def test_an_error_or_a_rejection_fails_the_connect_with_the_clusters_detail(code: codecs.EventCode) -> None:
    protocol = ClientProtocol(egress_channel=EGRESS)
    protocol.connect_request(0)
    event, _ = protocol.on_egress(MS, _event(protocol, code, "invalid client version"))
    assert event == ConnectFailed(code.name, "invalid client version")
    assert protocol.state == State.IDLE


def test_a_challenge_is_answered_with_what_the_credentials_supplier_gives() -> None:
    protocol = ClientProtocol(egress_channel=EGRESS, on_challenge=lambda challenge: challenge[::-1])
    protocol.connect_request(0)
    challenge = pack(
        codecs.ChallengeEncoder,
        {"encoded_challenge": b"nonce"},
        correlation_id=protocol.correlation_id,
        cluster_session_id=9,
    )
    event, reply = protocol.on_egress(MS, challenge)
    assert event is None and reply is not None
    answer = codecs.decode(reply)
    assert isinstance(answer, codecs.ChallengeResponseDecoder)
    assert answer.cluster_session_id == 9 and bytes(answer.encoded_credentials_bytes()) == b"ecnon"
    event, _ = protocol.on_egress(2 * MS, _event(protocol, codecs.EventCode.OK, cluster_session_id=9))
    assert event == Connected(9, 3, 1)


def test_a_connect_without_an_answer_times_out() -> None:
    protocol = ClientProtocol(egress_channel=EGRESS, message_timeout_ns=100 * MS)
    protocol.connect_request(0)
    assert protocol.on_tick(99 * MS) is None
    event = protocol.on_tick(100 * MS)
    assert isinstance(event, ConnectFailed) and event.code == "TIMEOUT"
    assert protocol.state == State.IDLE


def test_egress_of_this_session_becomes_events_and_another_sessions_is_ignored() -> None:
    protocol = _connected()
    mine = bytearray(codecs.HEADER_SIZE + 24 + 3)
    codecs.SessionMessageHeaderEncoder.pack_into(
        mine, 0, leadership_term_id=3, cluster_session_id=5, timestamp=77
    )
    mine[-3:] = b"abc"
    assert protocol.on_egress(MS, bytes(mine)) == (Message(3, 77, b"abc"), None)
    other = bytearray(mine)
    codecs.SessionMessageHeaderEncoder.pack_into(
        other, 0, leadership_term_id=3, cluster_session_id=6, timestamp=77
    )
    assert protocol.on_egress(MS, bytes(other)) == (None, None)
    leader = pack(
        codecs.NewLeaderEventEncoder,
        {"ingress_endpoints": ENDPOINTS},
        leadership_term_id=4,
        cluster_session_id=5,
        leader_member_id=2,
    )
    event, _ = protocol.on_egress(2 * MS, leader)
    assert isinstance(event, NewLeader) and (event.leadership_term_id, event.leader_member_id) == (4, 2)
    assert codecs.SessionMessageHeaderDecoder.unpack(protocol.session_message(b""))[0] == 4  # the new term
    admin = pack(
        codecs.AdminResponseEncoder,
        {"message": "ok", "payload": b"\x01"},
        cluster_session_id=5,
        correlation_id=11,
        request_type=codecs.AdminRequestType.SNAPSHOT,
        response_code=codecs.AdminResponseCode.OK,
    )
    assert protocol.on_egress(3 * MS, admin)[0] == AdminResponse(11, 0, 0, "ok", b"\x01")
    closed = _event(protocol, codecs.EventCode.CLOSED, "TIMEOUT", correlation_id=0)
    assert protocol.on_egress(4 * MS, closed)[0] == SessionClosed("TIMEOUT")
    assert protocol.state == State.CLOSED
    with pytest.raises(ClientProtocolError, match="the session is CLOSED"):
        protocol.session_message(b"late")


def test_close_sends_a_close_request_and_ends_the_session() -> None:
    protocol = _connected()
    assert codecs.SessionCloseRequestDecoder.unpack(protocol.close_request()) == (3, 5)
    assert protocol.state == State.CLOSED


def test_ingress_endpoints_parse_or_say_what_is_wrong() -> None:
    assert parse_ingress_endpoints("0=a:1, 1=b:2") == {0: "a:1", 1: "b:2"}
    for bad in ("", "0=a", "x=a:1", "0=a:1,0=b:2", "0:a:1"):
        with pytest.raises(ClientProtocolError):
            parse_ingress_endpoints(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_egress_bytes_are_an_event_nothing_or_a_protocol_error(data: bytes) -> None:
    protocol = _connected()
    with contextlib.suppress(ClientProtocolError):  # anything else escaping fails the test
        event, reply = protocol.on_egress(MS, data)
        assert reply is None  # a challenge is answered only while connecting
        assert event is None or isinstance(event, Message | NewLeader | AdminResponse | SessionClosed)


@settings(max_examples=200, deadline=None)
@given(
    version=st.integers(0, 0xFFFF),
    term=st.integers(-(2**63), 2**63 - 1),
    session=st.sampled_from([5, 6]),
    timestamp=st.integers(-(2**63), 2**63 - 1),
    payload=st.binary(max_size=40),
)
def test_a_session_message_reads_as_the_generated_decoder_reads_it(
    version: int, term: int, session: int, timestamp: int, payload: bytes
) -> None:
    # ``on_egress`` reads session messages in one unpack: whatever the acting version, as bytes or as a
    # view of a term, the event is the one the generated decoder's fields make
    protocol = _connected()
    data = bytearray(codecs.HEADER_SIZE + 24) + payload
    codecs.SessionMessageHeaderEncoder.pack_into(
        data, 0, leadership_term_id=term, cluster_session_id=session, timestamp=timestamp
    )
    data[6:8] = version.to_bytes(2, "little")
    decoder = codecs.decode(bytes(data))
    assert isinstance(decoder, codecs.SessionMessageHeaderDecoder)
    expected = Message(decoder.leadership_term_id, decoder.timestamp, payload) if session == 5 else None
    assert protocol.on_egress(MS, bytes(data)) == (expected, None)
    assert protocol.on_egress(MS, memoryview(data)) == (expected, None)


def test_a_session_message_header_that_is_not_the_common_one_is_decoded_in_full() -> None:
    protocol = _connected()
    message = session_message(3, 5, 1, b"abc")
    longer_block = bytearray(message)
    longer_block[0:2] = (25).to_bytes(2, "little")  # a later version's longer block: still a message
    event, _ = protocol.on_egress(MS, bytes(longer_block))
    assert isinstance(event, Message) and (event.leadership_term_id, event.timestamp) == (3, 1)
    short_block = bytearray(message)
    short_block[0:2] = (23).to_bytes(2, "little")
    with pytest.raises(ClientProtocolError):
        protocol.on_egress(MS, bytes(short_block))
    other_schema = bytearray(message)
    other_schema[4:6] = (112).to_bytes(2, "little")
    with pytest.raises(ClientProtocolError):
        protocol.on_egress(MS, bytes(other_schema))


def test_session_messages_carry_the_current_term_and_session_whatever_the_payloads_type() -> None:
    protocol = _connected()
    for payload in (b"xyz", bytearray(b"xyz"), memoryview(b"xyz"), b""):
        assert protocol.session_message(payload) == session_message(3, 5, 0, payload)
    protocol.leadership_term_id = 9
    assert protocol.session_message(b"xyz") == session_message(9, 5, 0, b"xyz")
    protocol.cluster_session_id = 10
    assert protocol.session_message(b"xyz") == session_message(9, 10, 0, b"xyz")
