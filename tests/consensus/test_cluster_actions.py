"""The snapshot bookkeeping of the consensus core (``cluster_actions.SnapshotAcks``), the recovery-state
counter's key, and the sessions' state through a snapshot and back (``ClientSessions.snapshot`` then
``restore``)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from cluster.cluster_counters import RecoveryState
from cluster.consensus.core.cluster_actions import SnapshotAcks
from cluster.consensus.core.members import parse_members
from cluster.consensus.core.sessions import ClientSessions, ClusterSession, SessionState
from cluster.session_message import session_message
from cluster.snapshots import CONSENSUS_MODULE_TYPE_ID, SnapshotMarker, load_consensus_module_snapshot

P = 4096


def test_a_snapshot_completes_once_every_service_names_its_recording() -> None:
    acks = SnapshotAcks(P, 3, 77, service_count=2)
    acks.on_ack(0, P, 10)
    assert acks.results() is None  # service 1 has not answered
    acks.on_ack(1, P - 32, 11)  # an ack of another position answers nothing
    assert acks.results() is None
    acks.on_ack(1, P, 12)
    assert acks.results() == [10, 12]


def test_a_join_log_at_the_snapshot_position_is_not_taken_for_a_failed_snapshot() -> None:
    acks = SnapshotAcks(P, 3, 77, service_count=1)
    acks.on_join_log(P)
    acks.on_join_log(P + 64)  # elsewhere: no ack at P expected for it
    acks.on_ack(0, P, -1)  # the JoinLog's ack
    assert acks.service_result(0) is None
    acks.on_ack(0, P, -1)  # one more -1 than JoinLogs at P: the snapshot failed
    assert acks.results() == [-1]


def test_a_recording_named_after_a_join_log_ack_is_the_snapshot() -> None:
    acks = SnapshotAcks(P, 3, 77, service_count=1)
    acks.on_join_log(P)
    acks.on_ack(0, P, -1)
    acks.on_ack(0, P, 5)
    assert acks.results() == [5]


def test_with_no_services_a_snapshot_needs_no_ack() -> None:
    assert SnapshotAcks(P, 0, 0, service_count=0).results() == []


@given(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**63 - 1),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**31), 2**31 - 1),
    st.lists(st.integers(-1, 2**63 - 1), max_size=10).map(tuple),
)
def test_the_recovery_state_key_round_trips(
    term: int, position: int, timestamp: int, cluster_id: int, ids: tuple[int, ...]
) -> None:
    state = RecoveryState(term, position, timestamp, cluster_id, ids)
    assert len(state.key()) <= 112  # a counter key's room
    assert RecoveryState.from_key(state.key()) == state


@given(st.binary(max_size=120))
def test_any_key_gives_a_recovery_state_or_none(key: bytes) -> None:
    state = RecoveryState.from_key(key)
    assert state is None or state.key() == key[: len(state.key())]


def _sessions() -> ClientSessions:
    return ClientSessions(
        member_id=0,
        members=parse_members("0,a:1,a:2,a:3,a:4,a:5"),
        service_count=2,
        max_sessions=10,
        session_timeout_ns=10**10,
    )


def test_the_sessions_state_goes_through_a_snapshot_and_back() -> None:
    sessions = _sessions()
    sessions.next_session_id = 10  # one connect still pending: the log implies 9
    sessions.logged_next_session_id = 9
    sessions.sessions[7] = ClusterSession(
        7, 70, 102, "aeron:udp?endpoint=c:1", SessionState.OPEN, 5, opened_position=64
    )
    sessions.sessions[8] = ClusterSession(
        8, 80, 102, "aeron:udp?endpoint=c:2", SessionState.CLOSING, 5, opened_position=128, close_reason=1
    )
    sessions.timers.schedule(1, 1_000)
    sessions.timers.schedule(2, 500)
    tracker = sessions.services[1]
    message = session_message(0, 1, 0, b"to the log")
    tracker.pending.append((tracker.next_id, message))
    tracker.next_id += 1
    marker = SnapshotMarker(CONSENSUS_MODULE_TYPE_ID, P, 2, 0, 3, 1)
    snapshot = load_consensus_module_snapshot(sessions.snapshot(marker).messages())
    assert snapshot == sessions.snapshot(marker)  # what is written is what is read

    restored = _sessions()
    restored.restore(snapshot, now_ns=99)
    assert restored.next_session_id == 9
    assert {s.id: (s.state, s.close_reason, s.opened_position) for s in restored.sessions.values()} == {
        7: (SessionState.OPEN, -1, 64),
        8: (SessionState.CLOSING, 1, 128),
    }
    assert all(s.time_of_last_activity_ns == 99 for s in restored.sessions.values())
    assert restored.timers.timers() == [(2, 500), (1, 1_000)]
    queue = restored.services[1]
    assert (queue.next_id, queue.logged_id) == (tracker.next_id, tracker.logged_id)
    assert [message_id for message_id, _ in queue.pending] == [tracker.next_id - 1]
    assert restored.consumed_position == P
    # the same state again, each session active as of the restore
    active_now = tuple(replace(session, time_of_last_activity=99) for session in snapshot.sessions)
    assert restored.snapshot(marker) == replace(snapshot, sessions=active_now)
