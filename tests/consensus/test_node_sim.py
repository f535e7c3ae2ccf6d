"""The node simulator: real cluster nodes (transport, archive, consensus module) over the simulated network
and disks. A few seeds run clean here; a canary (a bug planted in the core) is caught by the checkers.
CI's larger sweeps are ``python -m tools sim``'s."""

from __future__ import annotations

from functools import partial

import pytest

from cluster.consensus.node_sim import NodeSimulator, commands_of, run_seed


@pytest.mark.parametrize(("seed", "nodes"), [(0, 3), (1, 3), (2, 3), (3, 5)])
def test_a_seed_runs_clean_and_converges(seed: int, nodes: int) -> None:
    result = run_seed(seed, nodes)
    assert result.violations == []
    assert result.liveness_failure is None
    assert result.commands_committed > 0
    assert sum(result.faults.values()) > 0


def test_crashed_members_restart_and_catch_up() -> None:
    result = run_seed(1, 3)
    assert result.violations == [] and result.liveness_failure is None
    assert result.faults.get("crash", 0) > 0 and result.faults.get("restart", 0) > 0


@pytest.mark.parametrize(
    ("seed", "storage_faults"),
    [
        (4, ("storage_sync_failure",)),  # a failed sync: the node ends on the I/O error
        (16, ("storage_sync_failure", "storage_crash_point")),  # and a crash inside a storage operation
    ],
)
def test_at_file_sync_level_1_power_losses_and_storage_faults_lose_nothing_committed(
    seed: int, storage_faults: tuple[str, ...]
) -> None:
    # seeds are chosen for the faults they reach: a change to the node's timing can move them
    result = run_seed(seed, 3, file_sync_level=1)
    assert result.violations == [] and result.liveness_failure is None
    faults = result.faults
    assert faults.get("crash_power_loss", 0) > 0
    assert faults.get("storage_lost_unsynced_writes", 0) > 0 and faults.get("storage_torn_writes", 0) > 0
    assert all(faults.get(kind, 0) > 0 for kind in storage_faults), faults


def test_a_leader_that_commits_without_a_quorum_is_caught() -> None:
    result = run_seed(2, 3, frozenset({"commit_without_quorum"}))
    checkers = {violation.checker for violation in result.violations}
    assert "committed only what a quorum has recorded" in checkers


def test_the_same_seed_gives_the_same_run() -> None:
    first, second = run_seed(5, 3), run_seed(5, 3)
    assert (first.commands_committed, first.faults) == (second.commands_committed, second.faults)


def test_a_member_restarts_only_once_its_mark_files_are_stale() -> None:
    sim = NodeSimulator(7, 3)
    try:
        sim.run(500 * 1_000_000)
        sim.crash(1)
        assert not sim.restart(1)  # its mark files still look alive
        sim.run(1_200 * 1_000_000)
        assert sim.restart(1)
    finally:
        sim.close()


def test_a_member_clock_runs_at_its_own_rate_from_its_own_origin() -> None:
    from cluster.consensus.node_sim import MemberClock
    from cluster.transport.clock import ManualClock

    base = ManualClock(epoch_base_ms=1_000_000)
    fast = MemberClock(base, rate=1.01, offset_ns=5_000, epoch_base_ms=2_000_000)
    start_ns, start_ms = fast.nano_time(), fast.epoch_ms()
    assert (start_ns, start_ms) == (5_000, 2_000_000)
    base.advance(1_000 * 1_000_000)
    assert fast.nano_time() - start_ns == 1_010 * 1_000_000  # 1% fast
    assert fast.epoch_ms() - start_ms == 1_010  # its wall clock moves with it


def test_members_with_drifting_clocks_elect_and_commit() -> None:
    sim = NodeSimulator(11, 3, drift=[(0.99, 7, -4_000), (1.01, 10**9, 0), (1.0, 0, 4_000)])
    try:
        sim.run(6_000 * 1_000_000)
        assert sim.leader() is not None
        for _ in range(5_000):  # the client's ingress publication connects first
            if sim.submit(1):
                break
            sim.step()
        sim.run(500 * 1_000_000)
        sim.check_logs()
        assert sim.violations == [] and sim.committed_commands == {1}
    finally:
        sim.close()


def test_commands_sent_faster_than_the_log_takes_them_are_all_committed_in_order() -> None:
    # 1,000 commands as fast as the client's ingress publication takes them: the leader's log publication
    # pushes back (its 64 KiB term fills before the followers' status messages open its window), and every
    # command must still be appended once, in the order sent
    from support.node_script import Script

    with Script(3) as script:
        script.elected()
        for command in range(1_000):
            script.until(partial(script.offer, command), f"command {command} taken", 5_000 * 1_000_000)
        script.until(script.sim.converged, "every member holds the whole log", 20_000 * 1_000_000)
        leader = script.leader_id()
        log = script.sim.log_of(leader, script.commit(leader))
        assert commands_of(log) == list(range(1_000))
        script.sim.check_converged()
        assert script.sim.violations == []
