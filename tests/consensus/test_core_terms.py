"""Term history between a leader and a follower whose logs went different ways, and Raft's commit rule.

Two bugs the simulator's review found are pinned here at the level of one core, fed messages by hand:
a leader that never had the follower's last term must say so, and the follower must cut what it holds
of such terms; and a new leader commits nothing before a quorum holds its own term's first entry.
"""

from __future__ import annotations

from cluster.consensus.core.actions import AppendLog, Commit, LogRequest, PersistTerm, TruncateLog
from cluster.consensus.core.config import ConsensusConfig
from cluster.consensus.core.election import ElectionState
from cluster.consensus.core.members import ClusterMember
from cluster.consensus.core.node import ConsensusCore
from cluster.consensus.core.recording_log import RecordingLog
from generated import aeron_cluster_codecs as codecs

MS = 1_000_000


RECORDING_ID = 0


def _members(count: int) -> tuple[ClusterMember, ...]:
    """``count`` members on hosts ``n0``, ``n1``, ... with Aeron's test ports."""
    return tuple(
        ClusterMember(i, f"n{i}:9002", f"n{i}:9003", f"n{i}:9004", f"n{i}:9005", f"n{i}:8010")
        for i in range(count)
    )


def _core(member_id: int, terms: list[tuple[int, int]], append: int, members: int = 5) -> ConsensusCore:
    """A started core whose recording log holds TERM entries ``(leadership term, base)``."""
    config = ConsensusConfig(member_id, _members(members))
    log = RecordingLog()
    for term, base in terms:
        log.append_term(RECORDING_ID, term, base, 0)
    core = ConsensusCore(
        config,
        lambda: 0.5,
        now_ns=0,
        candidate_term_id=terms[-1][0],
        recording_log=log,
        append_position=append,
    )
    core.start(0)
    return core


def _history(core: ConsensusCore) -> list[tuple[int, int, int]]:
    return [(t.leadership_term_id, t.term_base_log_position, t.log_position) for t in core.terms]


def _new_leadership_term(**fields: int) -> bytes:
    values = {
        "log_leadership_term_id": 0,
        "next_leadership_term_id": 2,
        "next_term_base_log_position": 1440,
        "next_log_position": -1,
        "leadership_term_id": 2,
        "term_base_log_position": 1440,
        "log_position": 1536,
        "leader_recording_id": 0,
        "timestamp": 0,
        "leader_member_id": 3,
        "log_session_id": 2,
        "app_version": 1,
        "is_startup": codecs.BooleanType.FALSE,
    } | fields
    buffer = bytearray(256)
    length = codecs.NewLeadershipTermEncoder.pack_into(buffer, 0, **values)
    return bytes(buffer[:length])


def test_a_leader_that_lacks_the_followers_last_term_names_its_own_earlier_one() -> None:
    leader = _core(3, [(0, 0)], 1440)
    leader.leadership_term_id = 2
    leader._term_base = 1440
    fields = codecs.NewLeadershipTermDecoder.unpack(leader._new_leadership_term(1, 0))
    # logLeadershipTermId, nextLeadershipTermId, nextTermBaseLogPosition, nextLogPosition
    assert fields[:4] == (0, 2, 1440, -1)
    # a follower in a term the leader has: that term is named, and the one after it
    leader = _core(3, [(0, 0), (1, 480)], 1440)
    leader.leadership_term_id = 2
    leader._term_base = 1440
    assert codecs.NewLeadershipTermDecoder.unpack(leader._new_leadership_term(1, 0))[:4] == (1, 2, 1440, -1)
    # term 1 is still open in the history, but the leader's term 2 starts at 1440: that is where it ends
    assert codecs.NewLeadershipTermDecoder.unpack(leader._new_leadership_term(0, 0))[:4] == (0, 1, 480, 1440)


def test_a_term_left_open_by_a_gap_in_the_history_ends_where_the_next_recorded_term_starts() -> None:
    # the leader led term 0 to 96, followed term 2 from 96 (term 1 was empty: never recorded, so term 0
    # stays open in its history) and leads term 4 from 8544
    leader = _core(1, [(0, 0), (2, 96)], 8544)
    assert _history(leader) == [(0, 0, -1), (2, 96, -1)]
    leader.leadership_term_id = 4
    leader._term_base = 8544
    fields = codecs.NewLeadershipTermDecoder.unpack(leader._new_leadership_term(-1, 0))
    assert fields[:4] == (-1, 0, 0, 96)  # the follower's empty log: term 0 comes next, from 0 to 96
    follower = ConsensusCore(
        ConsensusConfig(2, _members(5)), lambda: 0.5, now_ns=0, recording_log=RecordingLog()
    )
    follower.start(0)
    actions = follower.on_message(10 * MS, leader._new_leadership_term(-1, 0))
    # term 0 is held for the recording log before its bytes arrive (no recording id yet: it waits in
    # memory until the replication names one), and only term 0's bytes are copied under it
    assert not [action for action in actions if isinstance(action, PersistTerm)]
    assert [(term.leadership_term_id, term.term_base_log_position) for term in follower._unrecorded] == [
        (0, 0)
    ]
    requests = [action for action in actions if isinstance(action, LogRequest)]
    assert [(r.kind, r.position, r.stop_position) for r in requests] == [("replicate", 0, 96)]


def test_a_follower_cuts_the_terms_its_leader_never_had() -> None:
    # the follower's log: term 0 up to 480, then term 1 (which the leader of term 2 never had) to 672
    follower = _core(1, [(0, 0), (1, 480)], 672)
    assert follower.state == ElectionState.CANVASS
    actions = follower.on_message(10 * MS, _new_leadership_term())
    assert TruncateLog(480, 0, reopen=True) in actions  # term 0 may go on in the leader's log
    assert follower.append_position == 480 and _history(follower) == [(0, 0, -1)]
    assert follower.log_leadership_term_id == 0


def test_a_follower_whose_term_the_leader_has_keeps_its_log() -> None:
    follower = _core(1, [(0, 0), (1, 480)], 672)
    actions = follower.on_message(
        10 * MS, _new_leadership_term(log_leadership_term_id=1, next_term_base_log_position=1440)
    )
    assert not [action for action in actions if isinstance(action, TruncateLog)]
    assert follower.state == ElectionState.FOLLOWER_LOG_REPLICATION
    assert follower.append_position == 672


def test_a_stale_view_of_the_followers_term_does_not_cut_a_term_the_leader_has() -> None:
    # the leader names term 0 but has term 1 next: it only has an old view of this follower
    follower = _core(1, [(0, 0), (1, 480)], 672)
    actions = follower.on_message(
        10 * MS, _new_leadership_term(next_leadership_term_id=1, next_term_base_log_position=480)
    )
    assert not [action for action in actions if isinstance(action, TruncateLog)]
    assert follower.append_position == 672 and follower.state == ElectionState.CANVASS


def test_a_follower_records_a_replicated_term_before_reporting_its_position() -> None:
    follower = _core(1, [(0, 0)], 384)
    actions = follower.on_message(
        10 * MS, _new_leadership_term(log_leadership_term_id=0, next_term_base_log_position=960)
    )
    assert follower.state == ElectionState.FOLLOWER_LOG_REPLICATION
    assert LogRequest("replicate", 3, 2, 384, stop_position=960, leader_recording_id=0) in actions
    actions = follower.on_replicated(20 * MS, 960, RECORDING_ID)
    kinds = [type(action).__name__ for action in actions]
    assert kinds.index("PersistTerm") < kinds.index("Send")
    assert PersistTerm(RECORDING_ID, 2, 960, 20 * MS) in actions


def test_a_new_leader_commits_nothing_before_a_quorum_holds_its_own_first_entry() -> None:
    """Single-member clusters commit at once; here three members, driven by hand through an election."""
    leader = _core(0, [(0, 0)], 960, members=3)
    leader.candidate_term_id = 2
    leader._start_leading(0, leader._out(), "test")
    assert leader.state == ElectionState.LEADER_LOG_REPLICATION
    # a follower reports the leader's whole log of older terms: the election goes on, no commit yet
    actions = leader.on_message(MS, _append_position(term=2, position=960, follower=1))
    assert leader.state == ElectionState.LEADER_REPLAY  # it reads its log back before it appends
    actions += leader.on_log_position(MS, 960)
    assert leader.state == ElectionState.LEADER_INIT
    actions += leader.on_log_published(MS, RECORDING_ID)
    actions += leader.on_tick(2 * MS)
    actions += leader.on_append_position(3 * MS, 960)
    appended = [action for action in actions if isinstance(action, AppendLog)]
    assert leader.state == ElectionState.LEADER_READY and len(appended) == 1  # the NewLeadershipTermEvent
    end = 960 + 96
    actions += leader.on_log_appended(3 * MS, end)
    assert leader.state == ElectionState.CLOSED
    assert not [action for action in actions if isinstance(action, Commit)]
    actions = leader.on_append_position(4 * MS, end)
    assert not [action for action in actions if isinstance(action, Commit)]  # only the leader holds it
    actions = leader.on_message(5 * MS, _append_position(term=2, position=end, follower=1))
    assert Commit(end) in actions


def _append_position(*, term: int, position: int, follower: int) -> bytes:
    buffer = bytearray(64)
    length = codecs.AppendPositionEncoder.pack_into(
        buffer, 0, leadership_term_id=term, log_position=position, follower_member_id=follower, flags=0
    )
    return bytes(buffer[:length])


def test_leader_ready_waits_for_every_voter_or_a_quorum_at_the_heartbeat_timeout() -> None:
    leader = _core(0, [(0, 0)], 960, members=3)
    leader.candidate_term_id = 2
    leader.peers[1].vote = True
    leader.peers[2].vote = False  # voted against: still a voter it waits for
    leader._start_leading(0, leader._out(), "test")
    actions = leader.on_message(MS, _append_position(term=2, position=960, follower=2))
    actions += leader.on_log_position(MS, 960)
    actions += leader.on_log_published(MS, RECORDING_ID)
    actions += leader.on_tick(2 * MS)
    assert leader.state == ElectionState.LEADER_READY
    assert not [action for action in actions if isinstance(action, AppendLog)]
    actions = leader.on_message(3 * MS, _append_position(term=2, position=960, follower=1))
    assert len([action for action in actions if isinstance(action, AppendLog)]) == 1
    assert leader.state == ElectionState.LEADER_READY  # until the log says where the event ended
    leader.on_log_appended(3 * MS, 960 + 96)
    assert leader.state == ElectionState.CLOSED
    assert leader.transitions[-1][2] == "election complete: leading (every voter has joined the term)"


def test_leader_ready_goes_on_with_a_quorum_once_the_heartbeat_timeout_passes() -> None:
    leader = _core(0, [(0, 0)], 960, members=3)
    leader.candidate_term_id = 2
    leader.peers[1].vote = True
    leader.peers[2].vote = True
    leader._start_leading(0, leader._out(), "test")
    leader.on_message(MS, _append_position(term=2, position=960, follower=2))
    leader.on_log_position(MS, 960)
    leader.on_log_published(MS, RECORDING_ID)
    leader.on_tick(2 * MS)
    assert leader.state == ElectionState.LEADER_READY
    timeout = leader.config.leader_heartbeat_timeout_ns
    assert not [a for a in leader.on_tick(timeout - MS) if isinstance(a, AppendLog)]
    assert [a for a in leader.on_tick(timeout + 3 * MS) if isinstance(a, AppendLog)]
    leader.on_log_appended(timeout + 3 * MS, 960 + 96)
    assert leader.state == ElectionState.CLOSED
    assert "a quorum has joined the term" in leader.transitions[-1][2]


def test_an_empty_next_term_is_recorded_without_copying_anything() -> None:
    follower = _core(1, [(0, 0)], 1440)
    actions = follower.on_message(
        10 * MS,
        _new_leadership_term(
            leadership_term_id=3,
            next_leadership_term_id=1,
            next_term_base_log_position=1440,
            next_log_position=1440,  # term 1 began and ended at 1440: its leader appended nothing
            term_base_log_position=2400,
        ),
    )
    assert PersistTerm(RECORDING_ID, 1, 1440, 10 * MS) in actions
    assert follower.state == ElectionState.CANVASS and follower.log_leadership_term_id == 1


def test_empty_terms_the_leader_never_had_are_dropped() -> None:
    # the follower joined term 1 at 1440, but its leader appended nothing; term 2's leader never had it
    follower = _core(1, [(0, 0), (1, 1440)], 1440)
    actions = follower.on_message(10 * MS, _new_leadership_term())
    assert TruncateLog(1440, 0, reopen=True) in actions
    assert _history(follower) == [(0, 0, -1)] and follower.append_position == 1440


def test_a_failed_replication_starts_a_new_election() -> None:
    """The replication deadline moves on while the leader is heard (as in Aeron), so a replication that
    failed must end the state itself."""
    follower = _core(1, [(0, 0)], 384)
    follower.on_message(
        10 * MS, _new_leadership_term(log_leadership_term_id=0, next_term_base_log_position=960)
    )
    assert follower.state == ElectionState.FOLLOWER_LOG_REPLICATION
    actions = follower.on_replication_failed(20 * MS, "the replay image did not arrive")
    assert follower.state == ElectionState.INIT
    assert follower.transitions[-1][2] == "log replication failed: the replay image did not arrive"
    assert [type(action).__name__ for action in actions].count("StopLog") == 1
    assert follower.on_replication_failed(30 * MS, "late") == []  # nothing to end any more


def test_a_failed_log_request_starts_a_new_election() -> None:
    follower = _core(1, [(0, 0)], 384)
    follower.on_message(
        10 * MS, _new_leadership_term(log_leadership_term_id=0, next_term_base_log_position=384)
    )
    assert follower.state != ElectionState.INIT
    actions = follower.on_log_failed(20 * MS, "the log image joined at 480, not at the log's end 384")
    assert follower.state == ElectionState.INIT
    assert follower.transitions[-1][2].startswith("log request failed: the log image joined at 480")
    assert [type(action).__name__ for action in actions].count("StopLog") == 1
    assert follower.on_log_failed(30 * MS, "late") == []  # in INIT already: nothing more to end


def test_only_a_leader_enters_an_election_when_its_log_recording_stops_unexpectedly() -> None:
    """A follower's recording stops whenever its leader's image goes; the heartbeat timeout covers
    that, so it ignores the stop. (The leader's side: ``tests/consensus/test_node_processes.py::
    test_a_leader_whose_log_recording_is_stopped_from_outside_enters_an_election``.)"""
    follower = _core(1, [(0, 0)], 384)
    follower.on_message(
        10 * MS, _new_leadership_term(log_leadership_term_id=0, next_term_base_log_position=384)
    )
    state = follower.state
    assert follower.on_log_recording_stopped(20 * MS, "the log recording 0 stopped at 384 unexpectedly") == []
    assert follower.state == state


def _commit_position(term: int, leader: int) -> bytes:
    buffer = bytearray(64)
    length = codecs.CommitPositionEncoder.pack_into(
        buffer, 0, leadership_term_id=term, log_position=96, leader_member_id=leader
    )
    return bytes(buffer[:length])


def test_a_commit_position_in_the_name_of_no_member_moves_nothing() -> None:
    follower = _core(1, [(0, 0)], 384)
    follower.state, follower.leadership_term_id, follower.leader_id = ElectionState.CLOSED, 0, 3
    assert follower.on_message(10 * MS, _commit_position(7, 99)) == []  # member 99 does not exist
    assert follower.state == ElectionState.CLOSED
    actions = follower.on_message(20 * MS, _commit_position(7, 3))  # a member's later term: an election
    assert follower.state == ElectionState.INIT and any(type(a).__name__ == "StopLog" for a in actions)
