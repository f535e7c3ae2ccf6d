"""Aeron's ClusterTest scenarios that take down a majority, stop the whole cluster or wipe members
(docs/clustertest-map.md), scripted on real cluster nodes in the node simulator with the key-value
service. Each test names the Aeron scenario it covers; each ends with every member running, one log on
all of them, no checker's violation, and the same key-value store in every member's service, holding
exactly the writes the scenario must have committed.

A "stopped" member is a killed process (``NodeSimulator.crash``); a member "started clean" is one whose
disk is replaced by an empty one while it is down (``NodeSimulator.wipe``, as Aeron's test deletes the
member's directories); the whole cluster is stopped by an ABORT or SHUTDOWN through the leader's control
file, as the admin tool asks. The helpers are ``support.kv_script``'s.
"""

from __future__ import annotations

from support.kv_script import (
    agreed,
    expected_store,
    is_closed,
    new_leader_events,
    offer,
    replies,
    send_writes,
    snapshot_positions,
    store_of,
    write_all,
)
from support.node_script import MS, Script

from cluster.consensus.core.cluster_actions import ToggleState
from cluster.service.api import Role
from cluster.service.kv import KeyValueService, encode_write
from tools.cluster_admin import invalidate_latest_snapshot

HEARTBEAT_TIMEOUT_NS = 2_000 * MS  # the simulator's cluster.leader.heartbeat.timeout
STARTUP_CANVASS_NS = 4_000 * MS  # the simulator's cluster.startup.canvass.timeout
ELECTION_TIMEOUT_NS = 500 * MS  # the simulator's cluster.election.timeout


# -------------------------------------------------------------------------------------- leader failure


def test_two_leaders_fail_one_after_the_other_and_come_back_up_together() -> None:
    """shouldRecoverAfterTwoLeaderNodesFailAndComeBackUpAtSameTime: after a long log, the leader is
    killed, the next leader is killed too, and the one member left -- no quorum -- neither leads nor
    commits. Both killed members start again at the same instant; the cluster elects a leader of a later
    term, takes more writes, and all three end with one log and the same store."""
    with Script(3, service=KeyValueService, seed=3) as script:
        sim = script.sim
        first = script.elected("the first leader")
        write_all(script, range(200))
        first_term = script.term(first)
        sim.crash(first)
        second = script.elected("a second leader")
        assert second != first and script.term(second) > first_term
        write_all(script, range(200, 210))
        second_term = script.term(second)
        sim.crash(second)
        (survivor,) = {0, 1, 2} - {first, second}
        commit = script.commit(survivor)
        script.run(2 * HEARTBEAT_TIMEOUT_NS)
        assert sim.leader() is None and script.role(survivor) != "LEADER"
        assert script.commit(survivor) == commit
        assert sim.restart(first) and sim.restart(second)  # both at once: their mark files are stale
        leader = script.elected("a leader once both are back")
        assert script.term(leader) > second_term
        write_all(script, range(210, 220))
        assert script.commit(leader) > commit
        assert agreed(script) == expected_store(range(220))


class RoleRecordingKv(KeyValueService):
    """The key-value service, keeping every role its member's container tells it, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.roles: list[Role] = []

    def on_role_change(self, new_role: Role) -> None:
        self.roles.append(new_role)


def _roles(script: Script, member: int) -> list[Role]:
    service = script.node(member).containers[0].service
    assert isinstance(service, RoleRecordingKv)
    return service.roles


def test_leaders_fail_in_turn_each_rejoining_before_the_next_fails() -> None:
    """shouldTolerateMultipleLeaderFailures, shouldHandleMultipleElections and
    shouldStopLeaderAndRestartAsFollowerWithSendingAfterThenStopLeader, with shouldCallOnRoleChange-
    OnBecomingLeader along the way: two rounds of -- the leader is killed, a new one is elected and takes
    writes, the old one restarts, reaches the commit position and follows, and more writes go to every
    member. So the second round kills the second leader, and a third election gives a leader that takes
    writes. Each new leader's service is told it leads; a restarted member's, which follows as its
    container starts, is told nothing."""
    with Script(3, service=RoleRecordingKv, seed=13) as script:
        sim = script.sim
        leader = script.elected("the first leader")
        assert _roles(script, leader)[-1] == Role.LEADER
        write_all(script, range(50))
        written = 50
        leaders = [leader]
        for round_ in (1, 2):
            old, term = leader, script.term(leader)
            sim.crash(old)
            leader = script.elected(f"round {round_}: a new leader")
            assert leader != old and script.term(leader) > term
            assert _roles(script, leader)[-1] == Role.LEADER
            write_all(script, range(written, written + 20))
            written += 20
            script.restart(old)
            script.until(
                lambda old=old, leader=leader: (
                    is_closed(script, old) and script.commit(old) == script.commit(leader)
                ),
                f"round {round_}: the old leader caught up and following",
            )
            # a container starts as a follower and is told of changes only (as Aeron's): never led
            assert script.role(old) == "FOLLOWER" and _roles(script, old) == []
            write_all(script, range(written, written + 10))
            written += 10
            leaders.append(leader)
        assert len(leaders) == 3 and leaders[1] != leaders[2]  # the second leader was the one killed
        assert agreed(script) == expected_store(range(written))


def test_a_split_vote_storm_in_five_members_ends_once_their_nomination_delays_differ() -> None:
    """Split-vote storms in 5-member clusters (an extra beyond ClusterTest): the leader of five dies,
    and the four others, their random nomination delays all made 0 (the consensus core's injected
    ``random``), canvass and nominate together every time: each votes for itself, no ballot wins, and
    the ballots repeat -- a storm. Nobody leads, nothing is committed, and no member changes state faster
    than the simulator's storm checker allows. Given back their own random delays, they elect one
    leader within a few election timeouts; writes go on, and all five end with one log and one store."""
    said: list[str] = []
    with Script(5, service=KeyValueService, seed=3, trace=said.append) as script:
        sim = script.sim
        leader = script.elected()
        write_all(script, range(20))
        others = [member for member in range(5) if member != leader]
        cores = {member: script.node(member).agent.core for member in others}
        own = {member: core._random for member, core in cores.items()}
        for core in cores.values():
            core._random = lambda: 0.0
        commit = script.commit(others[0])
        sim.crash(leader)
        said.clear()
        script.run(10_000 * MS)
        ballots = [line for line in said if "-> CANDIDATE_BALLOT" in line]
        assert {int(line.split()[1][1:]) for line in ballots} == set(others)  # every one a candidate
        assert len(ballots) >= 4 * 10  # ten rounds at least, each with four candidates
        assert sim.leader() is None and {script.commit(member) for member in others} == {commit}
        assert sim.violations == []
        for member, core in cores.items():
            core._random = own[member]
        storm_over_ns = sim.now_ns
        elected = script.elected("a leader once the delays differ", 5 * ELECTION_TIMEOUT_NS)
        assert elected in others and sim.now_ns - storm_over_ns <= 5 * ELECTION_TIMEOUT_NS
        write_all(script, range(20, 40))
        script.restart(leader)
        assert agreed(script) == expected_store(range(40))


# ---------------------------------------------------------------------------------------- quorum loss


def test_the_leader_that_lost_its_quorum_is_elected_again_when_a_follower_returns() -> None:
    """shouldElectSameLeaderAfterLoosingQuorum: one follower is killed, the other takes writes with the
    leader, then is killed too; the leader, without an active quorum, steps down. The first follower
    (which missed those writes) starts again, and the same member leads again, with the returned one
    following, and the client's session goes on with it.

    Deterministic by our rules, as in Aeron: only two members are up, a leader needs both, and the
    returned follower's log is less recent than the old leader's, so the old leader refuses it its vote
    (docs/consensus.md, "Votes", rule 3) -- the old leader is the only member that can win."""
    with Script(3, service=KeyValueService, seed=5) as script:
        sim = script.sim
        leader = script.elected()
        one, two = [member for member in range(3) if member != leader]
        script.until(lambda: is_closed(script, one) and is_closed(script, two), "both followers following")
        sim.crash(one)
        write_all(script, range(10))
        session_id = sim.poll_client().cluster_session_id  # type: ignore[union-attr]
        told_before = new_leader_events(sim)
        term, commit = script.term(leader), script.commit(leader)
        sim.crash(two)
        script.until(
            lambda: script.role(leader) != "LEADER", "the leader steps down", 2 * HEARTBEAT_TIMEOUT_NS
        )
        script.restart(one)
        assert script.elected("a leader again") == leader
        script.until(lambda: is_closed(script, one), "the returned member following")
        assert script.role(one) == "FOLLOWER" and script.term(leader) > term
        script.until(lambda: new_leader_events(sim) > told_before, "the client told of the new term")
        write_all(script, range(10, 20))
        assert sim.poll_client().cluster_session_id == session_id  # type: ignore[union-attr]
        assert script.commit(leader) > commit
        script.restart(two)
        assert agreed(script) == expected_store(range(20))


def test_a_leader_without_followers_recovers_quickly_when_one_returns_empty() -> None:
    """shouldRecoverQuicklyAfterKillingFollowersThenRestartingOne: both followers are killed; the leader
    goes on taking writes (one every 500 ms, as Aeron's test sends them) that it cannot commit, until it
    steps down; one follower starts again from an empty directory. The old leader -- the only member
    holding the log: it refuses the empty member its vote, and neither leads without the other -- is
    elected again within a heartbeat timeout of that start (nobody waits out the empty member's startup
    canvass), commits the writes it appended alone, and takes new ones; the empty member copies it all."""
    with Script(3, service=KeyValueService, seed=7) as script:
        sim = script.sim
        leader = script.elected()
        one, two = [member for member in range(3) if member != leader]
        write_all(script, range(10))
        commit = script.commit(leader)
        sim.crash(one)
        sim.crash(two)
        alone = 10  # the next write's key
        while script.role(leader) == "LEADER":
            if offer(script, encode_write(alone, f"k{alone}".encode(), f"v{alone}".encode())):
                alone += 1
            script.run(500 * MS)
        assert alone > 10 and script.commit(leader) == commit  # taken, never committed alone
        assert script.append(leader) > commit
        sim.wipe(two)
        script.restart(two)
        started_ns = sim.now_ns
        assert script.terms(two) == []
        assert script.elected("a leader with the empty member", STARTUP_CANVASS_NS) == leader
        assert sim.now_ns - started_ns < HEARTBEAT_TIMEOUT_NS  # no canvass or election timeout waited out
        write_all(script, range(100, 110))
        assert script.commit(leader) > commit
        script.restart(one)
        assert agreed(script) == expected_store(range(alone), range(100, 110))


# ------------------------------------------------------------------------------- restarts and catch-up


def test_two_fresh_members_catch_up_from_the_one_that_kept_its_log() -> None:
    """shouldCatchUpTwoFreshNodesAfterRestart: after many writes the cluster is aborted (every member
    stops at one position); both followers' directories are wiped; all three start at once. The old
    leader, the only one with a log, must lead (the empty members' logs are less recent than its), and
    both fresh members copy everything: one log and the same store on all three."""
    with Script(3, service=KeyValueService, seed=9) as script:
        sim = script.sim
        leader = script.elected()
        write_all(script, range(300))
        assert sim.request_action(ToggleState.ABORT)
        script.until(lambda: sim.down() == {0, 1, 2}, "every member stopped")
        stops = [m.terminated_at for m in sim.members]
        places = {(stop.leadership_term_id, stop.log_position) for stop in stops if stop is not None}
        assert None not in stops and len(places) == 1  # each stopped by the abort, at one place
        for member in range(3):
            if member != leader:
                sim.wipe(member)
        for member in range(3):
            sim.start(member)  # a terminated member is not restarted by the simulator itself
        assert [script.append(member) == 0 for member in range(3)] == [m != leader for m in range(3)]
        assert script.elected("a leader after the restart") == leader
        write_all(script, range(300, 310))
        assert agreed(script) == expected_store(range(310))


def test_both_followers_started_clean_at_once_rejoin_and_take_messages() -> None:
    """shouldAcceptMessagesAfterTwoNodeCleanRestart: both followers are killed and started again from
    empty directories at the same time. They rejoin as followers of the old leader, which holds the only
    log, copy what it holds, and their services get the new messages."""
    with Script(3, service=KeyValueService, seed=11) as script:
        sim = script.sim
        leader = script.elected()
        followers = [member for member in range(3) if member != leader]
        script.until(lambda: all(is_closed(script, f) for f in followers), "both followers following")
        write_all(script, range(10))
        for follower in followers:
            sim.crash(follower)
            sim.wipe(follower)
        script.until(lambda: all(sim.restart(f) for f in sim.down()), "both started", 2_000 * MS)
        assert [script.terms(f) for f in followers] == [[], []]
        script.until(lambda: all(is_closed(script, f) for f in followers), "both following again")
        assert [script.role(f) for f in followers] == ["FOLLOWER", "FOLLOWER"]
        assert script.leader_id() == leader
        write_all(script, range(10, 20))
        assert agreed(script) == expected_store(range(20))


def test_a_two_member_cluster_shut_down_and_started_again_takes_messages() -> None:
    """Not one of Aeron's ClusterTest scenarios as such: ``shouldHandleReplayAfterShutdown`` (one member)
    in a two-member cluster, where both members are needed to elect or commit. After writes, a SHUTDOWN
    snapshots and stops both; both start again on their directories, each service restored from its
    snapshot, elect a leader, and take more writes."""
    with Script(2, service=KeyValueService, seed=13) as script:
        sim = script.sim
        script.elected()
        write_all(script, range(10))
        assert sim.request_action(ToggleState.SHUTDOWN)
        script.until(lambda: sim.down() == {0, 1}, "both members stopped")
        for member in range(2):
            sim.start(member)  # a terminated member is not restarted by the simulator itself
            assert store_of(script, member) == expected_store(range(10))  # from the shutdown's snapshot
        script.elected("a leader after the restart")
        write_all(script, range(10, 20))
        assert agreed(script) == expected_store(range(20))


def test_the_member_with_more_log_leads_when_it_restarts_with_one_that_missed_writes() -> None:
    """shouldRecoverWhenLeaderHasAppendedMoreThanFollower: one follower is killed, the leader commits
    more writes with the other, then the other and the leader are killed too. The leader and the
    follower that missed the writes start again together: the leader, whose log is the more recent,
    must be elected (the other's log cannot win its vote), and the follower catches up."""
    with Script(3, service=KeyValueService, seed=15) as script:
        sim = script.sim
        leader = script.elected()
        one, two = [member for member in range(3) if member != leader]
        write_all(script, range(10))
        sim.crash(one)
        write_all(script, range(10, 20))
        behind = script.append(leader)
        sim.crash(two)
        sim.crash(leader)
        script.until(lambda: sim.restart(leader), "the leader started", 2_000 * MS)
        assert sim.restart(one)  # at the same instant (its mark files went stale first)
        assert script.append(one) < behind <= script.append(leader)
        assert script.elected("a leader after the restart") == leader
        write_all(script, range(20, 30))
        script.restart(two)
        assert agreed(script) == expected_store(range(30))


def test_an_old_leaders_uncommitted_tail_is_replaced_by_the_next_leaders_log() -> None:
    """shouldRecoverWhenLeaderHasAppendedMoreThanFollower, the other way round: the leader is cut off
    from both followers (the client still reaches it) and appends writes that no follower receives;
    the followers elect a leader of a later term, which commits new writes; the old leader rejoins, its
    uncommitted tail is cut and replaced by the new leader's log. None of the cut writes is answered or
    in any store."""
    with Script(3, service=KeyValueService, seed=17) as script:
        sim = script.sim
        old = script.elected()
        write_all(script, range(10))
        commit, term = script.commit(old), script.term(old)
        script.isolate(old)
        send_writes(script, range(100, 105))
        script.until(lambda: script.role(old) != "LEADER", "the old leader stepping down")
        assert script.commit(old) == commit
        tail = script.append(old)
        assert tail > commit  # appended alone, never committed
        script.until(lambda: script.leader_id() not in (-1, old), "a leader among the followers")
        new = script.leader_id()
        assert script.term(new) > term
        write_all(script, range(10, 20))
        assert script.commit(new) > commit
        assert script.commit(old) == commit and script.append(old) == tail
        cut = sim.log_of(old, tail)[commit:]
        assert script.commit(new) >= tail and sim.log_of(new, tail)[commit:] != cut
        sim.heal()
        assert agreed(script) == expected_store(range(20))
        assert sim.log_of(old, tail)[commit:] != cut  # the tail replaced
        assert replies(sim) == 20
        assert script.leader_id() == new


# -------------------------------------------------------------------------------------------- snapshots


def test_a_member_down_during_a_snapshot_takes_it_as_it_replays_the_log() -> None:
    """shouldReplaySnapshotTakenWhileDown: a follower is killed; the others take a snapshot (their logs
    are not purged) and then more writes. The follower starts again on its directories, catches up by
    reading the log -- snapshot action included -- and takes that snapshot itself, at the same position,
    with the same content; its service ends with the others' state."""
    with Script(3, service=KeyValueService, seed=19) as script:
        sim = script.sim
        leader = script.elected()
        a, b = [member for member in range(3) if member != leader]
        write_all(script, range(10))
        script.until(
            lambda: is_closed(script, b) and script.commit(b) == script.commit(leader), "b up to date"
        )
        sim.crash(b)
        assert sim.request_snapshot()
        script.until(
            lambda: [] != snapshot_positions(script, leader) == snapshot_positions(script, a),
            "a snapshot on the leader and the follower",
        )
        (position,) = snapshot_positions(script, leader)
        assert snapshot_positions(script, a) == [position]
        write_all(script, range(10, 20))
        script.restart(b)
        assert snapshot_positions(script, b) == []
        script.until(lambda: snapshot_positions(script, b) == [position], "b taking the snapshot")
        assert "snapshot_install" not in sim.fault_counts  # taken as it read the log, not copied
        script.until(lambda: is_closed(script, b), "b following")
        assert script.role(b) == "FOLLOWER"
        assert agreed(script) == expected_store(range(20))


# ------------------------------------------------------------------------------ invalidated snapshots


def _abort_all(script: Script) -> None:
    """Once every member follows the leader's whole log, stop them all with an ABORT through the leader
    (one position, no snapshot). (A member still catching up would never be told: the leader sends the
    stop position to the members of its term once, as Aeron's does, and stops alone at its timeout.)"""
    sim = script.sim
    script.until(lambda: sim.converged(), "every member following the leader's whole log")
    assert sim.request_action(ToggleState.ABORT)
    everyone = set(range(len(sim.members)))
    script.until(lambda: sim.down() == everyone, "every member stopped")


def _invalidate_latest(script: Script, member: int) -> int:
    """``python -m tools cluster invalidate-latest-snapshot`` on a stopped member's cluster directory;
    the log position of the snapshot it invalidated."""
    disk, clock = script.sim.members[member].disk, script.sim.members[member].network.clock
    entries = invalidate_latest_snapshot(disk.storage("cluster"), now_ms=clock.epoch_ms())
    assert {entry.log_position for entry in entries} == {entries[0].log_position}
    return entries[0].log_position


def _kill_the_leader(script: Script) -> int:
    """Kill the leader and start it again once another leads; the new leader."""
    old, term = script.leader_id(), script.term(script.leader_id())
    script.sim.crash(old)
    leader = script.elected("a leader after the kill")
    assert script.term(leader) > term
    script.restart(old)
    return leader


def _started_from(said: list[str], member: int) -> list[int]:
    """The snapshot positions member ``member`` said it started from, in the trace ``said``."""
    marker = f" n{member} starting from the snapshot at "
    return [int(line.split(marker)[1].split()[0]) for line in said if marker in line]


def test_the_only_snapshot_invalidated_between_two_elections_leaves_a_replay_of_three_terms() -> None:
    """shouldRecoverWhenLastSnapshotIsInvalidBetweenTwoElections: writes in a first term; the leader
    dies; writes and a snapshot in the second term; the leader dies again; writes in the third. The
    cluster is aborted, and every member's only snapshot invalidated. Started again, no member starts
    from a snapshot: each replays a log of three terms into the same store, and the cluster takes more
    writes."""
    said: list[str] = []
    with Script(3, service=KeyValueService, seed=23, trace=said.append) as script:
        sim = script.sim
        script.elected()
        write_all(script, range(10))
        _kill_the_leader(script)
        write_all(script, range(10, 20))
        assert sim.request_snapshot()
        script.until(lambda: all(snapshot_positions(script, m) for m in range(3)), "every member's snapshot")
        (snapshot,) = {tuple(snapshot_positions(script, member)) for member in range(3)}
        write_all(script, range(20, 30))
        _kill_the_leader(script)
        write_all(script, range(30, 40))
        _abort_all(script)
        assert [_invalidate_latest(script, member) for member in range(3)] == [snapshot[0]] * 3
        said.clear()
        for member in range(3):
            sim.start(member)
        leader = script.elected("a leader after the restart")
        assert len({term for term, _, _ in script.terms(leader)}) >= 4  # three terms replayed, one new
        write_all(script, range(40, 50))
        assert agreed(script) == expected_store(range(50))
        assert [_started_from(said, member) for member in range(3)] == [[], [], []]
        # a member that read the action within its commit position took that snapshot again (the
        # invalidated entry does not count as taken); the leader read it beyond, in its election
        retaken = [snapshot_positions(script, member) for member in range(3)]
        assert all(positions in ([], list(snapshot)) for positions in retaken), retaken
        assert retaken[leader] == []


def test_two_snapshots_invalidated_in_a_row_fall_back_past_both() -> None:
    """shouldRecoverWhenLastTwosSnapshotsAreInvalidAfterElection: a snapshot in the first term, an
    election, a second snapshot, more writes; the cluster is aborted. Two members have both snapshots
    invalidated, one after the other; the third only the newest. Started again, the two replay their
    whole logs and the third starts from the first snapshot; all three end with one store, and take
    more writes."""
    said: list[str] = []
    with Script(3, service=KeyValueService, seed=29, trace=said.append) as script:
        sim = script.sim
        script.elected()
        positions: list[int] = []
        for round_ in range(2):
            write_all(script, range(round_ * 20, round_ * 20 + 10))
            assert sim.request_snapshot()
            script.until(
                lambda count=round_ + 1: all(len(snapshot_positions(script, m)) == count for m in range(3)),
                f"snapshot {round_ + 1} on every member",
            )
            positions.append(snapshot_positions(script, 0)[-1])
            write_all(script, range(round_ * 20 + 10, round_ * 20 + 20))
            if round_ == 0:
                _kill_the_leader(script)
        _abort_all(script)
        first, second = positions
        assert [_invalidate_latest(script, member) for member in range(3)] == [second] * 3
        assert [_invalidate_latest(script, member) for member in (0, 1)] == [first] * 2
        said.clear()
        for member in range(3):
            sim.start(member)
        script.elected("a leader after the restart")
        write_all(script, range(40, 50))
        assert agreed(script) == expected_store(range(50))
        assert [_started_from(said, member) for member in range(3)] == [[], [], [first]]
