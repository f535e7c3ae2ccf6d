"""The simulator over many seeds, as CI runs it, and the canaries it must catch.

``REGRESSION_SEEDS`` lists every seed that ever failed (with its cluster size); they run on every CI
build in addition to the sweep. The sweeps run on both networks of ``sim_network.py``: whole messages
(the long sweep) and Aeron's transport over ``SimNetwork`` (a shorter one; the core must not care).
"""

from __future__ import annotations

import pytest

from cluster.consensus.simulator import CANARIES, run_seed

SWEEP_SEEDS = 200
REGRESSION_SEEDS: list[tuple[int, int]] = [
    (1, 5),  # a truncated follower's reported append position went stale: liveness failure (fixed)
    (104, 3),  # a new leader's log held an unsynced tail beyond its term base: "rewrote its log" (fixed)
    (331, 3),  # a node that voted in term 5, restarted, then followed term 4: two quorums (fixed)
    (114, 3),  # ... and the first fix left a node with a higher candidate term stuck in canvass (fixed)
    (509, 3),  # a paused candidate of an older term became a (stale) leader: the checker now asks
    # leader completeness of later terms only, as Raft states it
    (146, 3),  # a follower walked into an empty term replicated past it and recorded the wrong term (fixed)
    (464, 3),  # a follower's last term was empty and unknown to the leader: no truncation, no progress
    (524, 3),  # ... (the same, fixed by dropping the empty terms the leader never had)
    (567, 3),
    (623, 3),
    (886, 3),  # dropping a TERM record the leader never had forgot a term the node had followed (fixed:
    # the candidate term is made durable first)
]
CAUGHT_CANARIES = {  # canary -> the seeds it may survive at most; every canary the simulator lists
    "skip_log_comparison": 20,
    "commit_without_quorum": 20,
    "apply_before_commit": 20,
    "ack_before_durable": 20,
    "commit_beyond_append": 20,
    "vote_before_persist": 5,
    "commit_older_terms": 20,  # Aeron's LEADER_LOG_REPLICATION commit; caught by the own-term checker
    # a double vote makes two leaders only when two candidates stand in one term and a voter hears both;
    # five members split their votes far more often than three, so it runs on five (see CANARY_NODES)
    "vote_twice": 40,
}
CANARY_NODES = {"vote_twice": 5}  # cluster size per canary; 3 unless named


SWEEP_BY_SIZE = {1: 20, 2: 40, 3: SWEEP_SEEDS, 5: SWEEP_SEEDS // 4}
TRANSPORT_SWEEP_BY_SIZE = {1: 5, 2: 10, 3: 30, 5: 10}
TRANSPORT_CAUGHT_CANARIES = ("commit_without_quorum", "skip_log_comparison", "vote_twice")


def _sweep(sizes: dict[int, int], nodes: int, network: str) -> list[tuple[int, object, object]]:
    failures: list[tuple[int, object, object]] = []
    for seed in range(sizes[nodes]):
        result = run_seed(seed, nodes, network=network)
        if result.failed:
            failures.append((seed, result.violations[:1], result.liveness_failure))
    return failures


@pytest.mark.slow
@pytest.mark.parametrize("nodes", sorted(SWEEP_BY_SIZE))
def test_a_sweep_of_seeds_has_no_violation_and_no_liveness_failure(nodes: int) -> None:
    assert _sweep(SWEEP_BY_SIZE, nodes, "message") == []


@pytest.mark.slow
@pytest.mark.parametrize("nodes", sorted(TRANSPORT_SWEEP_BY_SIZE))
def test_a_sweep_over_the_aeron_transport_has_no_violation_and_no_liveness_failure(nodes: int) -> None:
    assert _sweep(TRANSPORT_SWEEP_BY_SIZE, nodes, "transport") == []


@pytest.mark.parametrize(("seed", "nodes"), REGRESSION_SEEDS)
def test_seeds_that_once_failed_pass(seed: int, nodes: int) -> None:
    result = run_seed(seed, nodes)
    assert not result.failed, (result.violations, result.liveness_failure)


def test_every_listed_canary_is_tested() -> None:
    assert set(CAUGHT_CANARIES) == set(CANARIES)


@pytest.mark.parametrize("canary", sorted(CAUGHT_CANARIES))
def test_each_canary_is_caught_within_a_bounded_number_of_seeds(canary: str) -> None:
    assert canary in CANARIES
    bound = CAUGHT_CANARIES[canary]
    nodes = CANARY_NODES.get(canary, 3)
    for seed in range(bound):
        if run_seed(seed, nodes, frozenset({canary})).failed:
            return
    pytest.fail(f"canary {canary} survived {bound} seeds of {nodes} members")


@pytest.mark.parametrize("canary", TRANSPORT_CAUGHT_CANARIES)
def test_canaries_are_caught_over_the_aeron_transport_too(canary: str) -> None:
    bound = CAUGHT_CANARIES[canary]
    for seed in range(bound):
        if run_seed(seed, 3, frozenset({canary}), network="transport").failed:
            return
    pytest.fail(f"canary {canary} survived {bound} seeds over the transport")
