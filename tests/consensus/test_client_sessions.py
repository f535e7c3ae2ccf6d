"""The consensus module's client sessions, timers and service messages (``ClientSessions``), sans-IO:
what a leader and a follower do with each client and service message, the rollback when an election
starts, and what the log read back teaches a follower."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from support.cluster_messages import pack
from support.session_out import Out

from cluster.consensus.core.actions import AppendLog, CloseEgress, OpenEgress, SendEgress
from cluster.consensus.core.members import parse_members
from cluster.consensus.core.sessions import ClientSessions, SessionProxy, service_message_id_base
from cluster.session_message import session_message
from generated import aeron_cluster_codecs as codecs

MEMBERS = parse_members(
    "0,h0:9002,h0:9003,h0:9004,h0:9005,h0:8010|1,h1:9002,h1:9003,h1:9004,h1:9005,h1:8010|"
    "2,h2:9002,h2:9003,h2:9004,h2:9005,h2:8010"
)
TERM = 3
S = 1_000_000_000
TIMEOUT = 10 * S
EGRESS = "aeron:udp?endpoint=client:7000"


def sessions(**overrides: object) -> ClientSessions:
    options: dict = {  # type: ignore[type-arg]
        "member_id": 0,
        "members": MEMBERS,
        "service_count": 2,
        "max_sessions": 10,
        "session_timeout_ns": TIMEOUT,
    }
    options.update(overrides)
    return ClientSessions(**options)


def connect_request(correlation_id: int = 7, version: int = 768, credentials: bytes = b"") -> bytes:
    return pack(
        codecs.SessionConnectRequestEncoder,
        {"response_channel": EGRESS, "encoded_credentials": credentials},
        correlation_id=correlation_id,
        response_stream_id=102,
        version=version,
    )


def ingress(s: ClientSessions, message: bytes, now: int = 0, *, leading: bool = True) -> Out:
    out = Out()
    forwarded: list[bytes] = []
    s.on_ingress(
        now,
        message,
        out,
        leading=leading,
        following=not leading,
        leadership_term_id=TERM,
        leader_id=0 if leading else 1,
        forward=forwarded.append,
    )
    out.actions.extend(SendForwarded(m) for m in forwarded)  # type: ignore[misc]
    return out


@dataclass(frozen=True)
class SendForwarded:
    message: bytes


def tick(s: ClientSessions, now: int) -> Out:
    out = Out()
    s.leader_tick(now, out, TERM)
    return out


def decode(message: bytes):  # type: ignore[no-untyped-def]
    decoder = codecs.decode(message)
    type(decoder).unpack(message)
    return decoder


def open_session(s: ClientSessions, now: int = 0, end: int = 500) -> int:
    """Connect a client and open its session (its SessionOpenEvent appended at ``end``); its id."""
    out = ingress(s, connect_request(), now)
    key = out.of(OpenEgress)[0].key
    s.on_egress_connected(key)
    opened = tick(s, now)
    opened.appended(end)
    return key


def test_a_leader_opens_a_session_once_its_open_event_is_appended_and_answers_ok() -> None:
    s = sessions()
    out = ingress(s, connect_request(correlation_id=7))
    [egress] = out.of(OpenEgress)
    assert (egress.key, egress.channel, egress.stream_id) == (1, EGRESS, 102)
    assert not tick(s, 1).actions  # nothing until the egress is connected
    s.on_egress_connected(1)
    appending = tick(s, 2)
    [append] = appending.of(AppendLog)
    event = decode(append.message)
    assert isinstance(event, codecs.SessionOpenEventDecoder)
    assert (event.cluster_session_id, event.correlation_id, event.leadership_term_id) == (1, 7, TERM)
    assert event.response_channel_str() == EGRESS
    answered = appending.appended(640)
    [ok] = answered.of(SendEgress)
    reply = decode(ok.message)
    assert isinstance(reply, codecs.SessionEventDecoder)
    assert (reply.cluster_session_id, reply.correlation_id, reply.code) == (1, 7, codecs.EventCode.OK)
    assert (reply.leadership_term_id, reply.leader_member_id) == (TERM, 0)
    assert s.sessions[1].opened_position == 640


def test_a_failed_open_append_is_tried_again() -> None:
    s = sessions()
    ingress(s, connect_request())
    s.on_egress_connected(1)
    first = tick(s, 1)
    _, failed = first.answers[0]
    assert failed is not None
    failed(Out())
    assert 1 not in s.sessions
    again = tick(s, 2)
    assert len(again.of(AppendLog)) == 1


def test_a_client_of_another_major_version_gets_an_error() -> None:
    s = sessions()
    ingress(s, connect_request(version=1 << 16))
    s.on_egress_connected(1)
    out = tick(s, 1)
    [error] = out.of(SendEgress)
    event = decode(error.message)
    assert event.code == codecs.EventCode.ERROR and "invalid client version" in event.detail_str()
    assert out.of(CloseEgress) and not out.of(AppendLog)


def test_the_session_limit_refuses_one_session_too_many() -> None:
    s = sessions(max_sessions=1)
    open_session(s)
    ingress(s, connect_request(correlation_id=8))
    s.on_egress_connected(2)
    [error] = tick(s, 1).of(SendEgress)
    assert decode(error.message).detail_str() == "concurrent session limit"


def test_a_follower_redirects_a_connect_to_the_leader_with_the_ingress_endpoints() -> None:
    s = sessions()
    out = ingress(s, connect_request(correlation_id=9), leading=False)
    [egress] = out.of(OpenEgress)
    assert egress.key < 0 and egress.channel == EGRESS
    [redirect] = out.of(SendEgress)
    event = decode(redirect.message)
    assert (event.code, event.correlation_id, event.leader_member_id) == (codecs.EventCode.REDIRECT, 9, 1)
    assert event.detail_str() == "0=h0:9002,1=h1:9002,2=h2:9002"
    assert out.of(CloseEgress) == [CloseEgress(egress.key)]
    assert not s.pending and not s.sessions


def test_an_open_sessions_messages_are_appended_restamped_and_a_stale_term_is_dropped() -> None:
    s = sessions()
    session_id = open_session(s)
    out = ingress(s, session_message(TERM, session_id, 0, b"payload"), now=42)
    [append] = out.of(AppendLog)
    header = decode(append.message)
    assert (header.leadership_term_id, header.cluster_session_id, header.timestamp) == (TERM, session_id, 42)
    assert append.message.endswith(b"payload")
    assert not ingress(s, session_message(TERM - 1, session_id, 0, b"old")).actions
    assert not ingress(s, session_message(TERM, 99, 0, b"nobody")).actions
    assert not ingress(s, session_message(TERM, session_id, 0, b"x"), leading=False).actions


def test_an_idle_session_times_out_and_a_keepalive_keeps_it() -> None:
    s = sessions()
    session_id = open_session(s, now=0)
    keepalive = pack(codecs.SessionKeepAliveEncoder, leadership_term_id=TERM, cluster_session_id=session_id)
    ingress(s, keepalive, now=TIMEOUT)
    assert not tick(s, TIMEOUT + S).actions
    out = tick(s, 2 * TIMEOUT + S)
    [closed] = out.of(SendEgress)
    assert decode(closed.message).detail_str() == "TIMEOUT"
    [append] = out.of(AppendLog)
    event = decode(append.message)
    assert isinstance(event, codecs.SessionCloseEventDecoder)
    assert event.close_reason == codecs.CloseReason.TIMEOUT
    assert out.appended(900).of(CloseEgress) == [CloseEgress(session_id)]
    assert session_id not in s.sessions


def test_a_client_close_and_a_service_close_append_their_reasons() -> None:
    s = sessions()
    first, second = open_session(s), open_session(s, end=600)
    close = pack(codecs.SessionCloseRequestEncoder, leadership_term_id=TERM, cluster_session_id=first)
    [append] = ingress(s, close).of(AppendLog)
    assert decode(append.message).close_reason == codecs.CloseReason.CLIENT_ACTION
    out = Out()
    s.on_service_message(
        0,
        pack(codecs.CloseSessionEncoder, cluster_session_id=second),
        out,
        leading=True,
        leadership_term_id=TERM,
    )
    [append] = out.of(AppendLog)
    assert decode(append.message).close_reason == codecs.CloseReason.SERVICE_ACTION
    assert decode(out.of(SendEgress)[0].message).detail_str() == "SERVICE_ACTION"


class ChallengeOnce:
    """Challenges every session, then accepts the response b"secret" as principal b"me"."""

    def __init__(self) -> None:
        self.responses: dict[int, bytes] = {}

    def on_connect_request(self, session_id: int, encoded_credentials: bytes, now_ms: int) -> None:
        pass

    def on_challenge_response(self, session_id: int, encoded_credentials: bytes, now_ms: int) -> None:
        self.responses[session_id] = encoded_credentials

    def on_connected_session(self, proxy: SessionProxy, now_ms: int) -> None:
        proxy.challenge(b"prove it")

    def on_challenged_session(self, proxy: SessionProxy, now_ms: int) -> None:
        response = self.responses.get(proxy.session_id)
        if response == b"secret":
            proxy.authenticate(b"me")
        elif response is not None:
            proxy.reject()


def test_a_challenge_is_answered_and_authenticates_the_session_with_its_principal() -> None:
    s = sessions(authenticator=ChallengeOnce())
    ingress(s, connect_request(correlation_id=5))
    s.on_egress_connected(1)
    [challenge] = tick(s, 1).of(SendEgress)
    sent = decode(challenge.message)
    assert isinstance(sent, codecs.ChallengeDecoder)
    assert (sent.cluster_session_id, sent.correlation_id) == (1, 5)
    assert bytes(sent.encoded_challenge_bytes()) == b"prove it"
    response = pack(
        codecs.ChallengeResponseEncoder,
        {"encoded_credentials": b"secret"},
        correlation_id=6,
        cluster_session_id=1,
    )
    ingress(s, response)
    [append] = tick(s, 2).of(AppendLog)
    assert bytes(decode(append.message).encoded_principal_bytes()) == b"me"


def test_a_wrong_challenge_response_is_rejected() -> None:
    s = sessions(authenticator=ChallengeOnce())
    ingress(s, connect_request())
    s.on_egress_connected(1)
    tick(s, 1)
    ingress(
        s,
        pack(
            codecs.ChallengeResponseEncoder,
            {"encoded_credentials": b"guess"},
            correlation_id=6,
            cluster_session_id=1,
        ),
    )
    [rejected] = tick(s, 2).of(SendEgress)
    assert decode(rejected.message).code == codecs.EventCode.AUTHENTICATION_REJECTED


def test_a_follower_forwards_a_challenge_response_to_the_leader() -> None:
    s = sessions()
    response = pack(
        codecs.ChallengeResponseEncoder, {"encoded_credentials": b"x"}, correlation_id=6, cluster_session_id=1
    )
    out = ingress(s, response, leading=False)
    assert out.actions == [SendForwarded(response)]


def test_an_admin_request_is_refused_by_the_default_authorisation() -> None:
    s = sessions()
    session_id = open_session(s)
    request = pack(
        codecs.AdminRequestEncoder,
        {"payload": b""},
        leadership_term_id=TERM,
        cluster_session_id=session_id,
        correlation_id=77,
        request_type=codecs.AdminRequestType.SNAPSHOT,
    )
    [response] = ingress(s, request).of(SendEgress)
    answer = decode(response.message)
    assert isinstance(answer, codecs.AdminResponseDecoder)
    assert (answer.correlation_id, answer.response_code) == (77, codecs.AdminResponseCode.UNAUTHORISED_ACCESS)


def test_an_election_rolls_back_what_the_leader_did_beyond_the_commit_position() -> None:
    s = sessions()
    committed = open_session(s, end=500)
    s.on_commit(500)
    uncommitted = open_session(s, end=700)
    ingress(s, connect_request(correlation_id=11))  # still connecting
    s.timers.schedule(42, 1)
    fired = tick(s, 5)
    fired.appended(*([800] * len(fired.answers)))
    assert s.timers.deadline(42) is None
    close = pack(codecs.SessionCloseRequestEncoder, leadership_term_id=TERM, cluster_session_id=committed)
    ingress(s, close).appended(900)
    assert set(s.sessions) == {uncommitted}
    out = Out()
    s.on_election(600, out, TERM, 0)
    told = {(a.key, decode(a.message).detail_str()) for a in out.of(SendEgress)}
    assert told == {(uncommitted, "election"), (3, "election")}
    assert set(s.sessions) == {committed}  # the close taken back: still closing, to close again
    assert s.timers.deadline(42) == 1  # its own deadline, as on every member that never read the event
    assert not s.pending


def test_a_follower_learns_sessions_and_timers_from_the_log_it_reads_back() -> None:
    s = _restored(5)
    assert 5 in s.sessions and s.next_session_id == 6
    s.timers.schedule(9, 100)
    timer = pack(codecs.TimerEventEncoder, leadership_term_id=TERM, correlation_id=9, timestamp=100)
    s.on_log_entry(0, timer, 192)
    assert s.timers.deadline(9) is None
    closed = close_event(5)
    s.on_log_entry(0, closed, 256)
    assert not s.sessions and s.consumed_position == 256


def _restored(session_id: int) -> ClientSessions:
    """A member that read one open session back from its log."""
    s = sessions()
    s.on_log_entry(0, open_event(session_id), 128)
    return s


def open_event(session_id: int, correlation_id: int = 1) -> bytes:
    """A SessionOpenEvent of session ``session_id``, as the log holds it."""
    return pack(
        codecs.SessionOpenEventEncoder,
        {"response_channel": EGRESS, "encoded_principal": b""},
        leadership_term_id=TERM,
        correlation_id=correlation_id,
        cluster_session_id=session_id,
        timestamp=0,
        response_stream_id=102,
    )


def close_event(session_id: int) -> bytes:
    """A SessionCloseEvent (reason CLIENT_ACTION) of session ``session_id``, as the log holds it."""
    return pack(
        codecs.SessionCloseEventEncoder,
        leadership_term_id=TERM,
        cluster_session_id=session_id,
        timestamp=1,
        close_reason=0,
    )


def test_a_new_leader_keeps_the_sessions_and_tells_each_client_of_the_new_leader() -> None:
    s = _restored(5)
    out = Out()
    s.on_leading(10, out, TERM + 1)
    assert out.of(OpenEgress) == [OpenEgress(5, EGRESS, 102)] and not out.of(AppendLog)
    s.on_egress_connected(5)
    leading = Out()
    s.leader_tick(20, leading, TERM + 1)
    told = [decode(a.message) for a in leading.of(SendEgress)]
    # a session learned from the log hears OK from its new leader first, as Aeron's leader says it
    assert [type(d).__name__ for d in told] == ["SessionEventDecoder", "NewLeaderEventDecoder"]
    ok, new_leader = told
    assert (ok.cluster_session_id, ok.correlation_id, ok.code, ok.version) == (5, 1, codecs.EventCode.OK, 768)
    assert (ok.leadership_term_id, ok.leader_member_id) == (TERM + 1, 0)
    assert (new_leader.cluster_session_id, new_leader.leadership_term_id, new_leader.leader_member_id) == (
        5,
        TERM + 1,
        0,
    )
    assert tick(s, 30).of(SendEgress) == []  # each once
    assert 5 in s.sessions


def test_a_leader_in_the_first_election_of_its_life_closes_the_sessions_it_restored() -> None:
    # a whole cluster restarted: the clients of the sessions in its log have long given up (Aeron's rule)
    s = _restored(5)
    out = Out()
    s.on_leading(10, out, TERM + 1, startup=True)
    assert out.of(OpenEgress) == [OpenEgress(5, EGRESS, 102)]
    told = decode(out.of(SendEgress)[0].message)
    assert (told.cluster_session_id, told.code, told.detail_str()) == (5, codecs.EventCode.CLOSED, "TIMEOUT")
    closed = decode(out.of(AppendLog)[0].message)
    assert (closed.cluster_session_id, closed.close_reason) == (5, codecs.CloseReason.TIMEOUT)
    assert s.sessions[5].state.name == "CLOSING" and not s.sessions[5].new_leader_event_pending
    out.appended(224)
    assert 5 not in s.sessions  # gone once its close is in the log


def test_entries_read_back_beyond_the_commit_are_undone_by_an_election_and_read_again() -> None:
    # a new leader reads its whole log (LEADER_REPLAY), uncommitted entries of older terms included; if an
    # election comes before it commits them, the next leader may cut them: nothing of them may stay
    s = _restored(5)
    s.on_commit(128)
    s.timers.schedule(9, 100)
    opened = open_event(6, correlation_id=2)
    closed = close_event(5)
    s.on_log_entry(0, opened, 256)
    s.on_log_entry(0, closed, 320)
    for correlation_id, end in ((9, 384), (10, 448)):  # 10: its TimerEvent before its ScheduleTimer
        timer = pack(
            codecs.TimerEventEncoder, leadership_term_id=TERM, correlation_id=correlation_id, timestamp=100
        )
        s.on_log_entry(0, timer, end)
    assert set(s.sessions) == {6} and s.next_session_id == 7 and s.timers.deadline(9) is None
    s.on_election(128, Out(), TERM, 1)
    assert set(s.sessions) == {5} and s.next_session_id == 6
    assert s.timers.deadline(9) == 100
    assert s.timers.schedule(10, 50)  # the early TimerEvent's count is gone: this schedule stands
    assert (s.consumed_position, s.read_position) == (128, 128)  # read again from the commit


def test_entries_read_up_to_the_commit_stay_through_an_election() -> None:
    s = _restored(5)
    s.on_commit(128)
    s.on_election(128, Out(), TERM, 1)
    assert set(s.sessions) == {5} and s.consumed_position == 128


def test_service_messages_get_the_same_ids_everywhere_and_leave_the_queue_once_logged() -> None:
    leader, follower = sessions(), sessions()
    for member in (leader, follower):
        for payload in (b"a", b"b"):
            member.on_service_message(
                0, session_message(TERM, 1, 0, payload), Out(), leading=False, leadership_term_id=TERM
            )
    base = service_message_id_base(1)
    out = tick(leader, 5)
    appended = [decode(a.message).cluster_session_id for a in out.of(AppendLog)]
    assert appended == [base + 1, base + 2]
    assert (base + 1) >> 56 & 0x7F == 1 and base + 1 < 0
    follower.on_log_entry(0, out.of(AppendLog)[0].message, 64)
    assert [i for i, _ in follower.services[1].pending] == [base + 2]


messages = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda tail: connect_request()[:8] + tail, st.binary(max_size=80)),
    st.builds(lambda tail: session_message(TERM, 1, 0, b"")[:8] + tail, st.binary(max_size=40)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(messages, max_size=6), st.booleans())
def test_hostile_bytes_on_every_input_are_counted_never_raised(inputs: list[bytes], leading: bool) -> None:
    s = sessions()
    open_session(s)
    for message in inputs:
        ingress(s, message, leading=leading)
        s.on_service_message(0, message, Out(), leading=leading, leadership_term_id=TERM)
        s.on_log_entry(0, message, 64)
        tick(s, 1)
