"""The deterministic cluster simulator: real consensus cores, a seeded message network, checkers."""

from __future__ import annotations

import pytest

from cluster.consensus.simulator import CANARIES, MS, Simulator, run_seed


def test_three_nodes_elect_one_leader_and_commit_every_command() -> None:
    sim = Simulator(1, 3)
    sim.run(2_000 * MS)
    leader = sim.leader()
    assert leader >= 0
    for command in range(20):
        assert sim.submit(command)
        sim.run(4 * MS)
    sim.run(500 * MS)
    assert sim.violations == []
    assert sim.committed_commands == set(range(20))
    positions = {node.commit_position for node in sim.nodes}
    assert len(positions) == 1 and positions.pop() > 0
    assert [node.applied for node in sim.nodes].count(sim.nodes[leader].applied) == 3


def test_a_crashed_leader_is_replaced_and_the_log_survives() -> None:
    sim = Simulator(7, 3)
    sim.run(2_000 * MS)
    first = sim.leader()
    for command in range(10):
        sim.submit(command)
        sim.run(4 * MS)
    sim.run(300 * MS)
    committed = sim.nodes[first].commit_position
    sim.crash(first)
    sim.run(15_000 * MS)
    second = sim.leader()
    assert second not in (-1, first)
    assert sim.nodes[second].core is not None and sim.nodes[second].core.leadership_term_id > 0
    assert len(sim.nodes[second].durable.log) >= committed
    sim.restart(first)
    sim.run(5_000 * MS)
    assert sim.violations == []
    assert {node.commit_position for node in sim.nodes} == {sim.nodes[second].commit_position}


@pytest.mark.parametrize("nodes", [1, 2, 3, 5])
def test_seeds_with_faults_stay_safe_and_live(nodes: int) -> None:
    for seed in range(4):
        result = run_seed(seed, nodes)
        assert result.violations == [], result.violations
        assert result.liveness_failure is None, (seed, result.liveness_failure, result.faults)
        assert result.commands_committed > 0


def test_the_same_seed_gives_the_same_run() -> None:
    first, second = run_seed(11, 3), run_seed(11, 3)
    assert (first.commands_committed, first.faults) == (second.commands_committed, second.faults)
    assert (
        run_seed(12, 3).faults != first.faults
        or run_seed(12, 3).commands_committed != first.commands_committed
    )


@pytest.mark.parametrize("canary", ["commit_without_quorum", "apply_before_commit"])
def test_canaries_are_caught(canary: str) -> None:
    assert canary in CANARIES
    caught = [seed for seed in range(10) if run_seed(seed, 3, frozenset({canary})).failed]
    assert caught, f"canary {canary} was not caught in 10 seeds"
