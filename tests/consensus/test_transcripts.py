"""Golden transcripts, in the style of etcd-raft's data-driven tests: scripted scenarios print every
message, log append, durable write, commit and state change, and the output must equal the checked-in
transcript in ``tests/testdata/consensus/``. ``pytest --rewrite`` regenerates them; review the diff.

The simulator runs without random faults here (no loss, fixed delay), so a transcript changes only when
the protocol does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.golden import check_golden

from cluster.consensus.simulator import MS, FaultConfig, Simulator

TRANSCRIPTS = Path(__file__).resolve().parent.parent / "testdata" / "consensus"
FIXED = FaultConfig(loss=0.0, duplicate=0.0, min_delay_ns=1 * MS, max_delay_ns=1 * MS)
TIMEOUTS = {
    "leader_heartbeat_timeout_ns": 2_000 * MS,
    "startup_canvass_timeout_ns": 4_000 * MS,
    "election_timeout_ns": 500 * MS,
    "leader_heartbeat_interval_ns": 200 * MS,
}


def _commands(sim: Simulator, first: int, count: int) -> None:
    for command in range(first, first + count):
        sim.submit(command)
        sim.run(10 * MS)


def elect_three(sim: Simulator) -> None:
    sim.run(1_500 * MS)
    _commands(sim, 0, 2)
    sim.run(300 * MS)


def leader_crash(sim: Simulator) -> None:
    sim.run(1_500 * MS)
    _commands(sim, 0, 2)
    sim.run(300 * MS)
    sim.crash(sim.leader())
    sim.run(4_000 * MS)
    _commands(sim, 2, 1)
    sim.run(300 * MS)


def follower_restart(sim: Simulator) -> None:
    sim.run(1_500 * MS)
    follower = next(n.member_id for n in sim.nodes if n.member_id != sim.leader())
    sim.crash(follower)
    _commands(sim, 0, 3)
    sim.run(300 * MS)
    sim.restart(follower)
    sim.run(1_000 * MS)


def old_leader_rejoins(sim: Simulator) -> None:
    sim.run(1_500 * MS)
    old = sim.leader()
    _commands(sim, 0, 1)
    sim.run(300 * MS)
    for other in range(len(sim.nodes)):
        if other != old:
            sim.partition(old, other)
    _commands(sim, 1, 2)  # appended by the old leader, never committed
    sim.run(4_000 * MS)
    _commands(sim, 3, 1)  # the new leader's
    sim.heal()
    sim.run(3_000 * MS)


def two_nodes(sim: Simulator) -> None:
    sim.run(1_500 * MS)
    _commands(sim, 0, 2)
    sim.run(300 * MS)


def five_nodes_lose_two(sim: Simulator) -> None:
    sim.run(1_500 * MS)
    _commands(sim, 0, 1)
    sim.run(300 * MS)
    leader = sim.leader()
    sim.crash(leader)
    sim.crash(next(n.member_id for n in sim.nodes if n.member_id != leader))
    sim.run(4_000 * MS)
    _commands(sim, 1, 1)
    sim.run(300 * MS)


SCENARIOS: dict[str, tuple[int, Callable[[Simulator], None]]] = {
    "three_nodes_elect_a_leader": (3, elect_three),
    "leader_crashes_and_a_new_one_is_elected": (3, leader_crash),
    "follower_restarts_and_catches_up": (3, follower_restart),
    "partitioned_old_leader_rejoins_and_truncates": (3, old_leader_rejoins),
    "two_node_cluster": (2, two_nodes),
    "five_nodes_lose_two_members": (5, five_nodes_lose_two),
}


def transcript(nodes: int, script: Callable[[Simulator], None]) -> str:
    lines: list[str] = []
    sim = Simulator(3, nodes, faults=FIXED, trace=lines.append, timeouts=TIMEOUTS)
    script(sim)
    assert sim.violations == [], sim.violations
    summary = []
    for node in sim.nodes:
        terms = [
            (t.leadership_term_id, t.term_base_log_position, t.log_position)
            for t in node.durable.recording_log.terms
        ]
        summary.append(
            f"# n{node.member_id}: commit {node.commit_position}, log {len(node.durable.log)}, terms {terms}"
        )
    return "\n".join([*lines, *summary]) + "\n"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_transcript(name: str, rewrite: bool) -> None:
    nodes, script = SCENARIOS[name]
    text = transcript(nodes, script)
    check_golden(TRANSCRIPTS / f"{name}.txt", text, rewrite=rewrite, what=f"transcript {name}")
