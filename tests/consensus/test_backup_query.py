"""BackupQuery, the question a cluster backup (or a member rebuilding itself) asks any member: the
member answers on the asker's response channel with a BackupResponse -- its log recording, its last
term, its commit-position counter, the leader, the latest snapshot set and the members -- once the
authenticator has accepted the asker and the authorisation service allows a BackupQuery (the default
does). First ``ClientSessions`` sans-IO, then real nodes in the simulator answering over the network."""

from __future__ import annotations

from support.cluster_messages import pack
from support.node_script import MS, Script
from support.session_out import Out
from test_client_sessions import MEMBERS, TERM, ChallengeOnce, connect_request, decode, sessions

from cluster.consensus.core.actions import AppendLog, CloseEgress, OpenEgress, Send, SendEgress
from cluster.consensus.core.config import ConsensusConfig
from cluster.consensus.core.election import ElectionState, Role
from cluster.consensus.core.members import format_members
from cluster.consensus.core.node import ConsensusCore
from cluster.consensus.core.sessions import ClientSessions, ClusterSession
from cluster.service.kv import KeyValueService
from cluster.transport.driver import Transport, TransportConfig
from generated import aeron_cluster_codecs as codecs

S = 1_000_000_000
RESPONSE = "aeron:udp?endpoint=backup:9100"
LEADER = 1


def backup_query(
    correlation_id: int = 40, version: int = 768, credentials: bytes = b""
) -> codecs.BackupQueryDecoder:
    message = pack(
        codecs.BackupQueryEncoder,
        {"response_channel": RESPONSE, "encoded_credentials": credentials},
        correlation_id=correlation_id,
        response_stream_id=108,
        version=version,
    )
    return decode(message)


def answer(session: ClusterSession) -> bytes:
    return f"response to {session.correlation_id}".encode()


def work(s: ClientSessions, now: int, respond=answer) -> Out:  # type: ignore[no-untyped-def]
    out = Out()
    s.backup_work(now, out, respond, TERM, LEADER)
    return out


def ask(s: ClientSessions, now: int = 0, **query: object) -> int:
    out = Out()
    s.on_backup_query(now, backup_query(**query), out)  # type: ignore[arg-type]
    [egress] = out.of(OpenEgress)
    assert (egress.channel, egress.stream_id) == (RESPONSE, 108)
    return egress.key


def test_a_backup_query_is_answered_once_its_egress_connects_then_the_egress_closes() -> None:
    s = sessions()
    key = ask(s, correlation_id=41)
    assert key < 0  # never a client session's id
    assert not work(s, 1).actions  # nothing until the egress is connected
    s.on_egress_connected(key)
    out = work(s, 2)
    assert out.actions == [SendEgress(key, b"response to 41"), CloseEgress(key)]
    assert not s.backups and not s.pending and not s.sessions  # it opened no session


def test_a_member_with_no_term_yet_answers_on_a_later_tick() -> None:
    s = sessions()
    key = ask(s)
    s.on_egress_connected(key)
    assert not work(s, 1, respond=lambda session: None).actions
    assert work(s, 2).of(SendEgress)


def test_a_query_of_another_major_version_gets_an_error() -> None:
    s = sessions()
    key = ask(s, version=1 << 16)
    s.on_egress_connected(key)
    [event] = work(s, 1).of(SendEgress)
    decoded = decode(event.message)
    assert isinstance(decoded, codecs.SessionEventDecoder)
    assert decoded.code == codecs.EventCode.ERROR
    assert "version" in decoded.detail_str()
    assert not s.backups


class RefuseBackups:
    def is_authorised(
        self, protocol_id: int, action_id: int, type_: object, encoded_principal: bytes
    ) -> bool:
        return False


def test_a_query_the_authorisation_refuses_gets_authentication_rejected() -> None:
    s = sessions(authorisation=RefuseBackups())
    key = ask(s, correlation_id=43)
    s.on_egress_connected(key)
    out = work(s, 1)
    [event] = out.of(SendEgress)
    decoded = decode(event.message)
    assert (decoded.code, decoded.correlation_id) == (codecs.EventCode.AUTHENTICATION_REJECTED, 43)
    assert out.of(CloseEgress) == [CloseEgress(key)]


def test_a_challenged_backup_answers_on_the_consensus_stream_and_is_then_answered() -> None:
    s = sessions(authenticator=ChallengeOnce())
    key = ask(s, correlation_id=44)
    s.on_egress_connected(key)
    [challenge] = work(s, 1).of(SendEgress)
    decoded = decode(challenge.message)
    assert isinstance(decoded, codecs.ChallengeDecoder)
    assert (decoded.correlation_id, decoded.cluster_session_id) == (44, key)
    assert not work(s, 2).actions  # waits for the answer
    response = pack(
        codecs.ChallengeResponseEncoder,
        {"encoded_credentials": b"secret"},
        correlation_id=44,
        cluster_session_id=key,
    )
    s.on_challenge_response(3, decode(response))
    assert work(s, 4).of(SendEgress) == [SendEgress(key, b"response to 44")]


def test_an_asker_whose_egress_never_connects_is_dropped_after_the_session_timeout() -> None:
    s = sessions()
    key = ask(s, now=0)
    assert not work(s, 10 * S - 1).actions
    assert work(s, 10 * S + 1).actions == [CloseEgress(key)]
    assert not s.backups


def test_at_most_max_sessions_queries_are_held_at_once() -> None:
    s = sessions(max_sessions=2)
    ask(s)
    ask(s)
    out = Out()
    s.on_backup_query(0, backup_query(), out)
    assert not out.actions and len(s.backups) == 2


# ---------------------------------------------------------------------- real nodes, simulated network

BACKUP_HOST = "10.0.0.230"


def _query_member(script: Script, member: int, correlation_id: int) -> codecs.BackupResponseDecoder:
    """Send a BackupQuery to ``member``'s consensus endpoint from another host, as a backup does, and
    wait for what comes back on the response channel."""
    sim = script.sim
    transport = Transport(sim.network, TransportConfig(bind_host=BACKUP_HOST, seed=93 + correlation_id))
    try:
        channel = f"aeron:udp?endpoint={BACKUP_HOST}:9100"
        responses = transport.add_subscription(channel, 108)
        query = transport.add_publication(
            f"aeron:udp?endpoint={sim.configs[member].member.consensus}",
            sim.configs[member].consensus_stream_id,
        )
        message = pack(
            codecs.BackupQueryEncoder,
            {"response_channel": channel, "encoded_credentials": b""},
            correlation_id=correlation_id,
            response_stream_id=108,
            version=768,
        )
        received: list[bytes] = []
        script.after_step = transport.do_work
        script.until(lambda: query.offer(message) > 0, "the query sent")
        script.until(
            lambda: (
                responses.poll(lambda buffer, header: received.append(bytes(buffer)), 10) >= 0
                and bool(received)
            ),
            "a response",
            limit_ns=5_000 * MS,
        )
        [response] = received
        decoded = decode(response)
        assert isinstance(decoded, codecs.BackupResponseDecoder)
        return decoded
    finally:
        script.after_step = None
        transport.abort()


def test_leader_and_followers_answer_a_backup_query_with_their_log_and_latest_snapshots() -> None:
    with Script(3, service=KeyValueService, seed=21) as script:
        sim = script.sim
        leader = script.elected()
        assert script.node(leader).agent.core.request_snapshot()
        script.until(
            lambda: all(
                any(e.is_snapshot for e in script.node(m).agent.recording_log.log.entries) for m in range(3)
            ),
            "a snapshot on every member",
        )
        for member in range(3):
            response = _query_member(script, member, correlation_id=50 + member)
            agent = script.node(member).agent
            log = agent.recording_log.log
            last = log.find_last_term()
            assert last is not None
            assert response.correlation_id == 50 + member
            assert (response.log_recording_id, response.last_leadership_term_id) == (
                agent.log_recording_id,
                last.leadership_term_id,
            )
            assert response.last_term_base_log_position == last.term_base_log_position
            assert response.commit_position_counter_id == agent.commit_counter.id
            assert (response.leader_member_id, response.member_id) == (leader, member)
            snapshots = [
                (s["recordingId"], s["leadershipTermId"], s["logPosition"], s["serviceId"])
                for s in response.to_dict()["snapshots"]
            ]
            expected = [
                (e.recording_id, e.leadership_term_id, e.log_position, e.service_id)
                for e in log.latest_snapshots(1)
            ]
            assert snapshots == expected and [s[3] for s in snapshots] == [-1, 0]
            assert response.cluster_members_str() == format_members(sim.configs[member].members)


def test_a_cluster_without_a_snapshot_answers_with_none() -> None:
    with Script(3, seed=8) as script:
        script.elected()
        response = _query_member(script, 0, correlation_id=60)
        assert response.to_dict()["snapshots"] == []
        assert response.log_recording_id == script.node(0).agent.log_recording_id


def _closed_core(*, leading: bool) -> ConsensusCore:
    """A core whose election is over (white-box: its state set directly), challenging every session."""
    # a leader alone is its own quorum: its ticks never lose it the lead
    members = MEMBERS[:1] if leading else MEMBERS
    core = ConsensusCore(ConsensusConfig(0, members), lambda: 0.5, now_ns=0, authenticator=ChallengeOnce())
    core.state = ElectionState.CLOSED
    core.role = Role.LEADER if leading else Role.FOLLOWER
    core.leader_id = 0 if leading else 1
    return core


def test_a_challenge_response_a_follower_forwards_reaches_the_leaders_authenticator() -> None:
    follower, leader = _closed_core(leading=False), _closed_core(leading=True)
    [egress] = [
        a for a in leader.on_ingress(0, connect_request(correlation_id=9)) if isinstance(a, OpenEgress)
    ]
    leader.on_egress_connected(0, egress.key)
    [challenge] = [a for a in leader.on_tick(1) if isinstance(a, SendEgress)]
    assert isinstance(decode(challenge.message), codecs.ChallengeDecoder)
    response = pack(
        codecs.ChallengeResponseEncoder,
        {"encoded_credentials": b"secret"},
        correlation_id=9,
        cluster_session_id=1,
    )
    [forwarded] = follower.on_ingress(2, response)  # the client answered the member it reached
    assert isinstance(forwarded, Send) and forwarded.to == 1
    leader.on_message(3, forwarded.message)  # on the consensus stream
    appends = [a for a in leader.on_tick(4) if isinstance(a, AppendLog)]
    assert [type(decode(a.message)) for a in appends] == [codecs.SessionOpenEventDecoder]


def test_a_follower_drops_a_client_challenge_response_that_reaches_its_consensus_stream() -> None:
    follower = _closed_core(leading=False)
    response = pack(
        codecs.ChallengeResponseEncoder,
        {"encoded_credentials": b"secret"},
        correlation_id=9,
        cluster_session_id=1,
    )
    assert follower.on_message(0, response) == []
    assert follower.malformed_messages == 0
