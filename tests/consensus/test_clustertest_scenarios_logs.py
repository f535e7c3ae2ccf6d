"""More of Aeron's ClusterTest scenarios (docs/clustertest-map.md), scripted on real cluster nodes in
the node simulator with the key-value service: a slow member that the quorum depends on; a member
rebuilt from empty across several terms of a four-member cluster; every member restarting on its own
purged log; an empty member replaying a log that holds snapshot actions after a shutdown. Each ends with
every member running, one log on all of them, no checker's violation, and the same key-value store in
every member's service. The helpers are ``support.kv_script``'s."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from support.kv_script import (
    agreed,
    expected_store,
    is_closed,
    offer,
    replies,
    send_writes,
    snapshot_positions,
    store_of,
    write_all,
)
from support.node_script import MS, Script

from cluster.consensus.core.cluster_actions import ToggleState
from cluster.service.api import ClientSession, Cluster, SnapshotReader
from cluster.service.kv import KeyValueService, encode_write
from generated.aeron_cluster_codecs import ClusterTimeUnit
from tools.cluster_admin import seed_recording_log

HEARTBEAT_TIMEOUT_NS = 2_000 * MS  # the simulator's cluster.leader.heartbeat.timeout
SMALL_SEGMENTS = {"archive.segment.file.length": "64k"}  # a log of a few hundred writes spans several
PAD = 1_000  # bytes added to each value where a longer log is wanted
LARGE = 6_000  # a value several frames long (a frame carries at most 1,376 bytes of a message)


def _kill_and_restart_the_leader(script: Script) -> int:
    """Kill the leader, restart it at once (it waits for its mark files to go stale), and wait for a
    leader of a later term; that leader."""
    old = script.leader_id()
    term = script.term(old)
    script.sim.crash(old)
    script.restart(old)
    leader = script.elected("a leader after the restart")
    script.until(lambda: script.term(leader) > term, "a later term")
    return leader


def test_a_slow_follower_the_quorum_needs_holds_the_commit_still_and_loses_nothing() -> None:
    """shouldRemainStableWhenThereIsASlowFollower: one follower is down, and the other -- the only member
    the leader's quorum has left -- is frozen for 1.5 s while writes are sent. The leader takes them but
    commits none while it is frozen; it stays leader (1.5 s is less than the heartbeat timeout); once the
    follower runs again every write is answered. The first follower starts again, and every service ends
    holding every write."""
    with Script(3, service=KeyValueService, seed=31) as script:
        sim = script.sim
        leader = script.elected()
        down, slow = [member for member in range(3) if member != leader]
        script.until(lambda: is_closed(script, down) and is_closed(script, slow), "both following")
        write_all(script, range(10))
        sim.crash(down)
        term, commit, before = script.term(leader), script.commit(leader), replies(sim)
        sim.pause(slow, 1_500 * MS)
        paused_at = sim.now_ns
        send_writes(script, range(10, 30))
        assert sim.now_ns - paused_at < 1_500 * MS  # all taken while the follower was frozen
        assert script.commit(leader) == commit and script.append(leader) > commit
        script.until(lambda: replies(sim) >= before + 20, "every write answered once the follower runs")
        assert sim.now_ns - paused_at >= 1_500 * MS
        assert (script.leader_id(), script.term(leader)) == (leader, term)  # no election
        script.restart(down)
        assert agreed(script) == expected_store(range(30))


def test_a_member_rebuilt_from_empty_catches_up_a_log_of_three_terms_in_four_members() -> None:
    """shouldRecoverWhenFollowerIsMultipleTermsBehindFromEmptyLog: in four members, one is stopped; the
    leader is killed and restarted twice, so the log the other three hold spans three terms. The
    stopped member's directories are wiped and it starts again: it copies the whole log from the leader,
    across the three terms, and follows."""
    with Script(4, service=KeyValueService, seed=37) as script:
        sim = script.sim
        leader = script.elected()
        behind = (leader + 1) % 4
        script.until(lambda: is_closed(script, behind), "every member following")
        write_all(script, range(10))
        sim.crash(behind)
        for round_ in range(2):
            write_all(script, range(10 + 10 * round_, 20 + 10 * round_))
            leader = _kill_and_restart_the_leader(script)
        write_all(script, range(30, 40))
        terms = script.terms(leader)
        assert len(terms) >= 3, terms
        sim.wipe(behind)
        script.restart(behind)
        assert script.terms(behind) == []
        script.until(lambda: is_closed(script, behind), "the rebuilt member following")
        assert script.role(behind) == "FOLLOWER"
        write_all(script, range(40, 50))
        assert agreed(script) == expected_store(range(50))
        assert [term for term, _, _ in script.terms(behind)] == [term for term, _, _ in script.terms(leader)]


def test_every_member_restarts_on_its_own_log_purged_below_its_snapshot() -> None:
    """shouldHandleTrimmingClusterFromTheFront: after a snapshot, each member's log is purged below it
    (the operator's purge-log), the cluster goes on, then is aborted. Every member starts again on its
    snapshot and what is left of its log, and every service is complete: the writes from before the
    purge come from the snapshot, those after from the log."""
    with Script(3, service=KeyValueService, seed=41, settings=SMALL_SEGMENTS) as script:
        sim = script.sim
        script.elected()
        write_all(script, range(400), PAD)  # about 450 KiB: several segments
        assert sim.request_snapshot()
        script.until(lambda: all(snapshot_positions(script, m) for m in range(3)), "every member's snapshot")
        assert sim.purge_logs() == 3
        starts = [
            script.node(m).agent.archive.get_start_position(script.node(m).agent.log_recording_id)
            for m in range(3)
        ]
        assert all(start > 0 for start in starts), starts
        write_all(script, range(400, 420))
        script.until(lambda: sim.converged(), "every member following the whole log")
        assert sim.request_action(ToggleState.ABORT)
        script.until(lambda: sim.down() == {0, 1, 2}, "every member stopped")
        for member in range(3):
            sim.start(member)
            assert store_of(script, member) == expected_store(range(400), pad=PAD)  # from its snapshot
        script.elected("a leader after the restart")
        write_all(script, range(420, 430))
        assert agreed(script) == {**expected_store(range(400), pad=PAD), **expected_store(range(400, 430))}


def test_an_empty_member_replays_a_log_with_two_snapshot_actions_after_a_shutdown() -> None:
    """shouldCatchupFromEmptyLogThenSnapshotAfterShutdownAndFollowerCleanStart and
    shouldReplayMultipleSnapshotsWithEmptyFollowerLog: writes, a snapshot, more writes, then a SHUTDOWN,
    which snapshots again and stops every member. One follower's directories are wiped, and all three
    start: the two that kept theirs start from the shutdown's snapshot, and one of them leads (the
    empty member's log is less recent). The empty member copies the whole log, snapshot actions
    included, and takes each snapshot as it reads its action; every member ends with the same store and
    the cluster takes more writes."""
    with Script(3, service=KeyValueService, seed=43) as script:
        sim = script.sim
        leader = script.elected()
        empty = (leader + 1) % 3
        write_all(script, range(20))
        assert sim.request_snapshot()
        script.until(lambda: all(snapshot_positions(script, m) for m in range(3)), "every member's snapshot")
        write_all(script, range(20, 40))
        script.until(lambda: sim.converged(), "every member following the whole log")
        assert sim.request_action(ToggleState.SHUTDOWN)
        script.until(lambda: sim.down() == {0, 1, 2}, "every member stopped")
        sim.wipe(empty)
        for member in range(3):
            sim.start(member)
        kept = [member for member in range(3) if member != empty]
        positions = {tuple(snapshot_positions(script, member)) for member in kept}
        assert len(positions) == 1
        (taken,) = positions
        assert len(taken) == 2 and snapshot_positions(script, empty) == []
        assert script.elected("a leader after the restart") in kept
        write_all(script, range(40, 50))
        assert agreed(script) == expected_store(range(50))
        assert snapshot_positions(script, empty) == list(taken)


def test_many_writes_longer_than_a_frame_are_all_answered_and_reach_every_service() -> None:
    """shouldHandleManyLargeMessages: 150 writes of about 6 KB each, every one crossing the ingress, the
    log and the egress in five fragments or more; each is answered, and every replica holds them all."""
    with Script(3, service=KeyValueService, seed=47) as script:
        script.elected()
        write_all(script, range(150), LARGE)
        assert agreed(script) == expected_store(range(150), pad=LARGE)


def test_a_member_restarts_on_its_own_snapshot_and_purged_log_after_missing_a_term() -> None:
    """shouldRecoverWhenFollowerWithInitialSnapshotAndArchivePurgeThenIsMultipleTermsBehind: after a
    snapshot every log is purged below it; the leader is killed, the other two go on in a later term and
    take writes; the old leader starts again on its own snapshot and purged log, and catches up the
    term it missed from the new leader's log."""
    said: list[str] = []
    with Script(3, service=KeyValueService, seed=53, settings=SMALL_SEGMENTS, trace=said.append) as script:
        sim = script.sim
        old = script.elected()
        write_all(script, range(400), PAD)
        assert sim.request_snapshot()
        script.until(lambda: all(snapshot_positions(script, m) for m in range(3)), "every member's snapshot")
        (position,) = snapshot_positions(script, old)
        assert sim.purge_logs() == 3
        term = script.term(old)
        sim.crash(old)
        leader = script.elected("a leader without the old one")
        assert script.term(leader) > term
        write_all(script, range(400, 420))
        said.clear()
        script.restart(old)
        script.until(lambda: is_closed(script, old), "the old leader following")
        assert any(f" n{old} starting from the snapshot at {position}" in line for line in said)
        assert script.role(old) == "FOLLOWER"
        write_all(script, range(420, 430))
        assert agreed(script) == {**expected_store(range(400), pad=PAD), **expected_store(range(400, 430))}


@pytest.mark.parametrize("above", [True, False], ids=["new-commit-above-old-append", "new-commit-below"])
def test_two_of_five_with_an_uncommitted_tail_stop_and_return_to_a_log_that_replaced_it(above: bool) -> None:
    """shouldRecoverWithUncommittedMessagesAfterRestartWhenNewCommitPosExceedsPreviousAppendedPos and
    ...IsLessThanPreviousAppendedPos: in five members, the leader and one follower are cut off from the
    other three; the leader takes writes that only the two of them hold (two of five: never committed).
    Both are stopped; the three elect a leader of a later term, which commits new writes -- past the old
    append position, or not as far. The two start again on their directories: their uncommitted tails
    are cut and replaced by the new leader's log, none of those writes is answered or in any store, and
    all five end with one log and one store."""
    with Script(5, service=KeyValueService, seed=59 if above else 61) as script:
        sim = script.sim
        old = script.elected()
        script.until(lambda: all(is_closed(script, m) for m in range(5)), "every member following")
        write_all(script, range(10))
        partner = (old + 1) % 5
        rest = [member for member in range(5) if member not in (old, partner)]
        for a in (old, partner):
            for b in rest:
                sim.partition(a, b)
        commit, before = script.commit(old), replies(sim)
        send_writes(script, range(100, 110), PAD)
        script.until(
            lambda: script.append(partner) == script.append(old) > commit, "the partner holds the tail"
        )
        tail = script.append(old)
        assert script.commit(old) == commit  # two of five: never committed
        sim.crash(old)
        sim.crash(partner)
        sim.heal()
        new = script.elected("a leader among the three")
        assert new in rest
        write_all(script, range(10, 160) if above else range(10, 13))
        assert (script.commit(new) > tail) is above
        script.restart(old)
        script.restart(partner)
        assert agreed(script) == expected_store(range(160) if above else range(13))
        assert replies(sim) == before + (150 if above else 3)  # no write of the cut tail answered


class TimerKv(KeyValueService):
    """The key-value service that also schedules a timer 1 s of cluster time ahead for every write whose
    key begins ``t``, its correlation id the write's number, and keeps the timers that fired, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.fired: list[int] = []
        self.cluster: Cluster | None = None

    def on_start(self, cluster: Cluster, snapshot: SnapshotReader | None) -> None:
        super().on_start(cluster, snapshot)
        self.cluster = cluster

    def on_session_message(self, session: ClientSession | None, timestamp: int, message: memoryview) -> None:
        super().on_session_message(session, timestamp, message)
        (length,) = struct.unpack_from("<i", message, 9)  # after the op and the request id
        key = bytes(message[13 : 13 + length])
        if key.startswith(b"kt") and self.cluster is not None:
            second = {ClusterTimeUnit.NANOS: 10**9, ClusterTimeUnit.MICROS: 10**6}.get(
                self.cluster.time_unit, 1000
            )
            assert self.cluster.schedule_timer(int(key[2:]), timestamp + second)

    def on_timer_event(self, correlation_id: int, timestamp: int) -> None:
        self.fired.append(correlation_id)


def _fired(script: Script, member: int) -> list[int]:
    service = script.node(member).containers[0].service
    assert isinstance(service, TimerKv)
    return service.fired


def test_a_follower_that_missed_a_timer_registration_catches_up_and_its_timer_fires_once() -> None:
    """shouldCatchUpAfterFollowerMissesTimerRegistration: a follower is down while a write makes the
    service schedule a timer, and while that timer fires. It starts again and reads both back from the
    log: its service schedules the timer as the others did, and the timer fires there once, when the
    log's TimerEvent is read -- not again when its deadline passes on the restarted member."""
    with Script(3, service=TimerKv, seed=67) as script:
        sim = script.sim
        leader = script.elected()
        behind = (leader + 1) % 3
        script.until(lambda: is_closed(script, behind), "every member following")
        write_all(script, range(5))
        sim.crash(behind)
        before = replies(sim)
        send_timer_write = encode_write(7, b"kt7", b"v7")
        script.until(lambda: offer(script, send_timer_write), "the timer's write taken")
        script.until(lambda: replies(sim) > before, "the timer's write answered")
        script.until(lambda: _fired(script, leader) == [7], "the timer fired on the leader", 5_000 * MS)
        script.restart(behind)
        script.until(lambda: is_closed(script, behind), "the follower following again")
        write_all(script, range(10, 15))
        script.run(2_000 * MS)  # past the timer's deadline on the restarted member too
        store = agreed(script)
        assert store[b"kt7"] == b"v7"
        assert [_fired(script, member) for member in range(3)] == [[7], [7], [7]]


def test_members_restarted_on_logs_seeded_from_their_snapshot_take_a_new_term_length_and_mtu() -> None:
    """shouldAllowChangingTermBufferLengthAndMtuAfterRecordingLogIsTruncatedToTheLatestSnapshot: after
    writes, a SHUTDOWN snapshots and stops every member; each member's recording log is seeded from its
    latest snapshot (``cluster seed-recording-log-from-snapshot``), and the cluster starts again with a
    log term length of 128 KiB instead of 64 and an MTU of 4 KiB instead of 1,408 bytes. Every service
    starts from the snapshot, the new log begins at position 0 with the new lengths, and writes go on."""
    with Script(3, service=KeyValueService, seed=71) as script:
        sim = script.sim
        script.elected()
        write_all(script, range(30))
        script.until(lambda: sim.converged(), "every member following the whole log")
        assert sim.request_action(ToggleState.SHUTDOWN)
        script.until(lambda: sim.down() == {0, 1, 2}, "every member stopped")
        for member in range(3):
            disk, clock = sim.members[member].disk, sim.members[member].network.clock
            seeded = seed_recording_log(disk.storage("cluster"), now_ms=clock.epoch_ms())
            assert not seeded.terms and {e.log_position for e in seeded.entries} == {0}
        sim.configs = tuple(
            dataclasses.replace(config, log_channel="aeron:udp?term-length=128k|mtu=4096")
            for config in sim.configs
        )
        for member in range(3):
            sim.start(member)
            assert store_of(script, member) == expected_store(range(30))  # from its snapshot
        leader = script.elected("a leader on the seeded logs")
        write_all(script, range(30, 40), PAD)
        assert agreed(script) == {**expected_store(range(30)), **expected_store(range(30, 40), pad=PAD)}
        for member in range(3):
            agent = script.node(member).agent
            descriptor = agent.archive.list_recording(agent.log_recording_id)
            assert descriptor is not None
            assert (descriptor.start_position, descriptor.term_buffer_length, descriptor.mtu_length) == (
                0,
                128 * 1024,
                4096,
            )
        assert script.terms(leader)[0][1] == 0  # the new log's first term begins at position 0
