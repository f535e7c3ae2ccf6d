"""A service that stops: its node stops with it, and the others go on (ClusterTest's
``shouldTerminateLeaderWhenServiceStops``) -- or, when every member's service ends on one log entry,
the whole cluster stops (``shouldStopClusteredServicesOnAppropriateMessage``). Real node processes with
``support.ending_service``; the container's side is in ``test_container_core.py``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.ending_service import END, FAIL_ON_LEADER, SERVICE_CLASS
from support.node_world import FAST
from support.paths import REPO

from tools.node_processes import ProcessCluster

ELECTION_TIMEOUT_S = 30.0
TIMEOUT_S = 20.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    made = ProcessCluster(tmp_path / "cluster", 3, {**FAST, "cluster.service.class": SERVICE_CLASS}, env=env)
    try:
        yield made
    finally:
        made.close()


def _exited(cluster: ProcessCluster, member: int) -> int | None:
    return cluster.processes[member].process.poll()


def test_a_leader_whose_service_fails_stops_and_the_others_elect_a_new_one(cluster: ProcessCluster) -> None:
    cluster.start_all()
    assert cluster.wait_for(cluster.settled, ELECTION_TIMEOUT_S), cluster.stderr_text()
    leader = cluster.settled()
    assert leader is not None and cluster.connect(TIMEOUT_S), cluster.stderr_text()
    assert cluster.send(leader, [1, 2, FAIL_ON_LEADER], TIMEOUT_S)
    assert cluster.wait_for(lambda: _exited(cluster, leader.member) is not None, TIMEOUT_S), (
        cluster.stderr_text()
    )
    assert _exited(cluster, leader.member) == 1
    stderr = cluster.stderr_path(leader.member).read_text()
    assert "RuntimeError: told to fail where it leads" in stderr  # the service's traceback
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: node {leader.member} stopped: the service failed: on_session_message raised"
    )
    survivors = [m for m in range(3) if m != leader.member]
    assert cluster.wait_for(lambda: cluster.settled(survivors), ELECTION_TIMEOUT_S), cluster.stderr_text()
    successor = cluster.settled(survivors)
    assert successor is not None and successor.term > leader.term
    assert cluster.send(successor, [3, 4], TIMEOUT_S), cluster.stderr_text()
    assert all(_exited(cluster, m) is None for m in survivors)


def test_a_message_every_members_service_ends_on_stops_the_whole_cluster_in_order(
    cluster: ProcessCluster,
) -> None:
    cluster.start_all()
    assert cluster.wait_for(cluster.settled, ELECTION_TIMEOUT_S), cluster.stderr_text()
    leader = cluster.settled()
    assert leader is not None and cluster.connect(TIMEOUT_S), cluster.stderr_text()
    assert cluster.send(leader, [1, END], TIMEOUT_S)
    assert cluster.wait_for(lambda: all(_exited(cluster, m) is not None for m in range(3)), TIMEOUT_S), (
        cluster.stderr_text()
    )
    assert [_exited(cluster, m) for m in range(3)] == [0, 0, 0]
    for member in range(3):
        lines = cluster.stderr_path(member).read_text().strip().splitlines()
        assert lines[-2:] == [
            f"node {member} stopped: its service ended it (told to end)",
            f"node {member} closed",
        ]
