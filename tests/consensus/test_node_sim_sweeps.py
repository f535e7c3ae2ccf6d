"""The simulator over many seeds, and the canaries it must catch: real nodes (transport, archive,
consensus module) over the simulated network and disks.

CI runs the long sweeps with ``python -m tools sim`` (``.ci/run``); here a short sweep per cluster size
and file-sync level, every seed that ever failed, and every canary. ``REGRESSION_SEEDS`` lists the
seeds that failed once (with the cluster size and file-sync level); a change to the fault schedule can
make one test something else, so the sweeps matter as much.
"""

from __future__ import annotations

import pytest
from support.paths import REPO

from cluster.consensus.node_sim import CANARIES, run_seed

# Short: CI's own sweeps (.ci/run) run many more of each kind beside the suite; these keep the kinds
# tested in a plain clone's run
SWEEP_BY_SIZE = {1: 2, 2: 2, 3: 2, 5: 1}
SWEEP_AT_LEVEL_1 = 2
SWEEP_WITH_SERVICES = 2  # seeds with the checked services and key-value clients (each runs ~10 s)
SERVICE_REGRESSION_SEEDS = [  # seeds with services (3 members) that once failed
    104,  # a replay ran a term past a slow reader and the publication cleaned what it had not read: the
    # member's log reader stalled beside its container's (fixed: a replay reads no more than its window)
    10054,  # a follower paused while the leader ran on fell further behind than the leader's log buffers
    # reach: it stayed a follower that could never catch up (fixed: such a follower starts an election)
    20136,  # a read saw a write whose request was still outstanding when the run ended, so it was in no
    # history (fixed: the checker gets the outstanding request too, as indeterminate)
]
SWEEP_WITH_SNAPSHOTS = 2  # seeds with services, snapshots and crashes during them
SNAPSHOT_REGRESSION_SEEDS = [  # seeds with services and snapshots that once failed
    40003,  # a crash between a snapshot's recording-log entries left the service's alone; the snapshot
    # taken again at that position could not add its own and held the module in SNAPSHOT (fixed:
    # RecordingLog.put_snapshot supersedes the leftover); before that, a new leader's replay read the
    # action beyond its commit position and waited there for a snapshot (fixed: taken only when committed)
    40006,  # a follower's services ran ahead of its module's reading of the log; their ScheduleTimers put
    # timers of later entries in the module's snapshot at an earlier position (fixed: the commit-position
    # counter the services read never passes what the module has read)
    61011,  # the leader's module snapshot held its own next session id, which counts a connect still
    # pending, so it differed from the followers' at one position (fixed: a snapshot holds the next id as
    # the log implies it); then, after the closing shutdown, stopped members counted as holding nothing
    66200,  # a leader in LEADER_READY whose quorum had joined (positions long since counted) could not
    # append the term's first entry -- the followers had left for a later term and no one read its log
    # -- and tried for good (fixed: LEADER_READY gives up at twice the heartbeat timeout whatever held it)
    67511,  # a follower took its leader's snapshot on a late answer while its catch-up went on: it kept
    # recording and acknowledging past the snapshot as the copies were made, then started again on a log
    # that ended at the snapshot -- the leader had committed what only it still held (fixed: the member
    # stops every mover of its log and acknowledges nothing once it takes a snapshot)
    70229,  # a member with no log, restarted after the others had purged theirs, copied its leader's log into
    # a new recording that began at the purge -- a hole below it, so its own log reader was refused for
    # good (and, reported as work, kept the node from idling) -- fixed: such a copy is stopped and counts
    # as a failed replication, and the member takes the leader's snapshot
    70227,  # the closing shutdown: a follower's TerminationAck was lost, and the leader, waiting for it, left
    # for an election on "inactive follower quorum" once both followers had stopped -- and never stopped
    # (fixed: a leader stopping the cluster at a committed position waits out the termination timeout)
    64011,  # the operator's snapshot request, written into the leader's control file through the leader's
    # simulated disk, reached the crash point armed for the leader's own operations and ended the whole
    # run (fixed: a tool's operations are another process's, SimDisk.storage(another_process=True))
    100207,  # hung the simulator: a member stopping a replication (its leader's log began past its own end)
    # from a recording-signal handler waited for the archive's answer while the wait dispatched the
    # replication's next signal into the same handler, whose nested stop took the first stop's answer as
    # unsolicited and dropped it; the first then waited on the simulated clock for good (fixed: the
    # replication is forgotten before the stop is asked for)
    100394,  # the closing shutdown never completed: a consensus message of it met the end of its
    # publication's 64 KiB term (ADMIN_ACTION) and was dropped (fixed: consensus messages are offered into
    # the next term, as the log's appends are)
    90046,  # a member that had caught up from its leader's snapshot purged its replaced recordings before it
    # marked itself as starting again: the purge's archive requests brought in recording signals, and an
    # answer queued for the core wrote a TERM entry into the old recording log, closed by then, which
    # ended the run (fixed: the member is quiesced before it purges)
    70255,  # an election took back a TimerEvent the leader had not committed and rescheduled the timer due
    # at 0; the others held it at its own deadline, so the module snapshots at one position differed
    # (fixed: rescheduled at its own deadline, docs/consensus.md departure 25)
    70782,  # a leader asked to close a session snapshotted the close reason its followers had not seen:
    # Aeron's snapshot holds it too (fixed in the checker: a close not yet logged is each member's own)
]
REGRESSION_SEEDS: list[tuple[int, int, int]] = [  # (seed, nodes, file-sync level)
    (17, 3, 0),  # a failed election-time replication left the follower in FOLLOWER_LOG_REPLICATION: its
    # deadline moves on while the leader is heard (fixed: on_replication_failed starts an election;
    # found under an earlier fault schedule)
    (55, 3, 0),  # a follower paused in FOLLOWER_BALLOT joined the live log past its position and
    # recorded a log with a hole (fixed: the log request fails, core.on_log_failed, a new election)
    (83, 3, 0),  # the same
    (85, 3, 0),  # the same
    (113, 3, 0),  # the same
    (57, 3, 0),  # a leader's history had a gap (term 0, then 2): its NewLeadershipTerm left term 0 open, the
    # follower copied terms 0 and 2 as term 0 and later cut below its commit (fixed: the open term ends
    # where the next recorded term starts)
]
CANARY_CHECKERS = {  # canary -> the checkers that may catch it
    "vote_twice": {"one vote per candidate term"},
    "skip_log_comparison": {
        "commit within the recorded log",
        "committed entries are never lost",
        "logs agree up to commit",
        "commit never goes backwards",
    },
    "commit_without_quorum": {"committed only what a quorum has recorded"},
    "apply_before_commit": {"followers commit only what a leader committed"},
    "commit_beyond_append": {"commit within the recorded log"},
    # judged against the term the leader leads: its own history lists that term only from LEADER_INIT on,
    # after LEADER_REPLAY, so the canary's commits (in LEADER_LOG_REPLICATION) precede it
    "commit_older_terms": {"a leader commits only what a quorum holds in its term"},
    "ack_before_durable": {"committed only what a quorum has recorded", "commit within the recorded log"},
    "vote_before_persist": {"a vote leaves only once its term is durable"},
    "skip_log_truncation": {"elections settle"},
    "deliver_before_commit": {
        "services see only committed entries",
        "service states are equal at equal log positions",
    },
    "refire_committed_timer": {"timers fire once"},
    "snapshot_before_acks": {"snapshot entries name whole snapshots"},
}
# Canaries a random sweep reaches too rarely for a bounded number of seeds, each caught by its checker in
# a scripted scenario instead: a stale read needs an old leader that is paused and cut off, a new leader
# that takes a write, and a client that has not heard of the new leader.
SCENARIO_CANARIES = {
    "local_reads": "tests/service/test_stale_reads.py (key-value answers are linearizable)",
    "keep_uncommitted_session": "tests/consensus/test_uncommitted_session.py (nothing uncommitted survives)",
}
CANARY_SEEDS = 10  # each canary must fail one of ten seeds in a row, from its first seed
# Where a canary's search begins: the seed that caught it when its seeds were last looked at (a search
# from 0 ran the seeds before it for nothing, minutes of the suite). A change to the fault schedule can
# move the catch; the search then goes on through the next seeds, and a canary that survives all ten fails.
CANARY_FIRST_SEED = {"refire_committed_timer": 7, "vote_twice": 9, "skip_log_truncation": 5}
# A leader's own append counts toward its quorum alone only in a one-member cluster: with more members,
# a follower's acknowledgement always comes after the leader's archive has recorded the bytes (its
# duty cycle records before the consensus module reads the position), so the bug shows at one member.
CANARY_NODES = {"ack_before_durable": 1}


def _failures(seeds: range, nodes: int, level: int = 0) -> list[tuple[int, object, object]]:
    failures: list[tuple[int, object, object]] = []
    for seed in seeds:
        result = run_seed(seed, nodes, file_sync_level=level)
        if result.failed:
            failures.append((seed, result.violations[:1], result.liveness_failure))
    return failures


@pytest.mark.parametrize("nodes", sorted(SWEEP_BY_SIZE))
def test_a_sweep_of_seeds_has_no_violation_and_no_liveness_failure(nodes: int) -> None:
    assert _failures(range(100, 100 + SWEEP_BY_SIZE[nodes]), nodes) == []


def test_a_sweep_with_services_and_key_value_clients_is_clean_and_checks_their_histories() -> None:
    results = [run_seed(seed, 3, services=True) for seed in range(600, 600 + SWEEP_WITH_SERVICES)]
    assert [(r.seed, r.violations[:1], r.liveness_failure) for r in results if r.failed] == []
    assert all(r.kv_operations > 0 for r in results)  # every seed's histories had something to check


def test_a_sweep_with_snapshots_and_crashes_during_them_is_clean() -> None:
    results = [
        run_seed(seed, 3, services=True, snapshots=True) for seed in range(800, 800 + SWEEP_WITH_SNAPSHOTS)
    ]
    assert [(r.seed, r.violations[:1], r.liveness_failure) for r in results if r.failed] == []
    assert sum(r.faults.get("snapshots_taken", 0) for r in results) > 0  # the checkers judged some


@pytest.mark.parametrize("seed", SNAPSHOT_REGRESSION_SEEDS)
def test_seeds_with_snapshots_that_once_failed_pass(seed: int) -> None:
    result = run_seed(seed, 3, services=True, snapshots=True)
    assert (result.violations[:1], result.liveness_failure) == ([], None)


@pytest.mark.parametrize("seed", SERVICE_REGRESSION_SEEDS)
def test_seeds_with_services_that_once_failed_pass(seed: int) -> None:
    result = run_seed(seed, 3, services=True)
    assert (result.violations[:1], result.liveness_failure) == ([], None)


def test_a_sweep_with_power_losses_and_storage_faults_at_file_sync_level_1_is_clean() -> None:
    assert _failures(range(200, 200 + SWEEP_AT_LEVEL_1), 3, level=1) == []


@pytest.mark.parametrize(("seed", "nodes", "level"), REGRESSION_SEEDS)
def test_seeds_that_once_failed_pass(seed: int, nodes: int, level: int) -> None:
    assert _failures(range(seed, seed + 1), nodes, level) == []


def test_every_canary_is_tested() -> None:
    assert set(CANARY_CHECKERS) | set(SCENARIO_CANARIES) == set(CANARIES)
    assert not set(CANARY_CHECKERS) & set(SCENARIO_CANARIES)
    for test in SCENARIO_CANARIES.values():
        assert (REPO / test.split()[0]).is_file(), test


@pytest.mark.parametrize("canary", sorted(CANARY_CHECKERS))
def test_each_canary_is_caught_by_its_checker_within_a_bounded_number_of_seeds(canary: str) -> None:
    nodes = CANARY_NODES.get(canary, 3)
    first = CANARY_FIRST_SEED.get(canary, 0)
    for seed in range(first, first + CANARY_SEEDS):
        result = run_seed(seed, nodes, frozenset({canary}))
        if result.failed:
            caught_by = {violation.checker for violation in result.violations}
            assert caught_by & CANARY_CHECKERS[canary], (seed, result.violations, result.liveness_failure)
            return
    pytest.fail(f"canary {canary} survived seeds {first}..{first + CANARY_SEEDS - 1} on {nodes} members")
