"""Services that stop, or are slow, on real node processes. A service that stops: its node stops with it,
and the others go on (ClusterTest's ``shouldTerminateLeaderWhenServiceStops``) -- or, when every
member's service ends on one log entry, the whole cluster stops
(``shouldStopClusteredServicesOnAppropriateMessage``). A slow service beside a fast one does not keep
its member from catching up (``shouldCatchupFollowerWithSlowService``). Real node processes with
``support.process_services``; the container's side is in ``test_container_core.py``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.node_world import FAST
from support.paths import REPO
from support.process_services import (
    END,
    FAIL_ON_LEADER,
    FAILING_AT_START_CLASS,
    SERVICE_CLASS,
    SLOW_SERVICE_CLASS,
)

from cluster.consensus.core.cluster_actions import ToggleState
from cluster.consensus.files import RecordingLogFile
from cluster.storage import RealStorage
from tools.cluster_control import request_action
from tools.node_processes import ProcessCluster

ELECTION_TIMEOUT_S = 30.0
TIMEOUT_S = 20.0


def _env() -> dict[str, str]:
    """The nodes' environment: this one, with ``tests/`` on the path for ``support.process_services``."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
    }


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    made = ProcessCluster(
        tmp_path / "cluster", 3, {**FAST, "cluster.service.class": SERVICE_CLASS}, env=_env()
    )
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


def test_a_follower_with_a_slow_service_beside_a_fast_one_catches_up(tmp_path: Path) -> None:
    """ClusterTest's shouldCatchupFollowerWithSlowService: two services per member, the second sleeping
    on every message; a follower stopped while 300 messages are committed, then started again, catches
    up, and a snapshot afterwards is taken by every member at one position -- every service of the
    restarted follower, the slow one too, read the whole log."""
    settings = {**FAST, "cluster.service.class": SLOW_SERVICE_CLASS, "cluster.service.count": 2}
    with ProcessCluster(tmp_path / "cluster", 3, settings, env=_env()) as cluster:
        cluster.start_all()
        assert cluster.wait_for(cluster.settled, ELECTION_TIMEOUT_S), cluster.stderr_text()
        leader = cluster.settled()
        assert leader is not None and cluster.connect(TIMEOUT_S), cluster.stderr_text()
        assert cluster.send(leader, range(1, 11), TIMEOUT_S)
        follower = next(m for m in range(3) if m != leader.member)
        assert cluster.stop(follower) == 0
        assert cluster.send(leader, range(11, 311), TIMEOUT_S)
        cluster.start(follower)

        def caught_up() -> bool:
            ours, theirs = cluster.view.status(follower), cluster.view.status(leader.member)
            return (
                ours is not None
                and theirs is not None
                and (ours.role, ours.state, ours.term) == ("FOLLOWER", "CLOSED", leader.term)
                and ours.commit_position == theirs.commit_position == theirs.append_position
            )

        assert cluster.wait_for(caught_up, 60.0), cluster.stderr_text()
        request_action(RealStorage(cluster.configs[leader.member].cluster_dir), ToggleState.SNAPSHOT)

        def snapshots(member: int) -> list[tuple[int, int]]:
            log = RecordingLogFile.read(RealStorage(cluster.configs[member].cluster_dir)).log
            return [(entry.service_id, entry.log_position) for entry in log.latest_snapshots(2)]

        assert cluster.wait_for(lambda: all(len(snapshots(m)) == 3 for m in range(3)), 60.0)
        taken = [snapshots(m) for m in range(3)]
        assert taken[0] == taken[1] == taken[2], taken


def test_a_service_that_fails_as_its_node_starts_stops_it_with_one_error_line(tmp_path: Path) -> None:
    settings = {**FAST, "cluster.service.class": FAILING_AT_START_CLASS}
    with ProcessCluster(tmp_path / "cluster", 1, settings, env=_env()) as cluster:
        cluster.start_all()
        assert cluster.wait_for(lambda: _exited(cluster, 0) is not None, TIMEOUT_S), cluster.stderr_text()
        assert _exited(cluster, 0) == 1
        stderr = cluster.stderr_path(0).read_text()
        assert "RuntimeError: cannot start" in stderr  # the service's traceback
        last = stderr.strip().splitlines()[-1]
        assert last == (
            "error: node 0 stopped: the service failed: on_start raised RuntimeError: cannot start "
            "(log position 0)"
        )
