"""The cluster node -- transport, archive and consensus module, one program -- in both worlds: elect, publish
and record the log, replicate it to every member's archive, commit what clients send.

The same test runs over the simulated network and disk (virtual time, a seed) and over UDP on 127.0.0.1
with real files (wall-clock time, bounded).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.archive_world import World
from support.node_world import Cluster, IngressClient

from cluster.consensus.files.node_state import NodeStateFile
from cluster.consensus.files.recording_log_file import RecordingLogFile

ENTRY = 96  # a SessionMessageHeader with an 8-byte command: 64 bytes of frame payload, 96 aligned
EVENT = 96  # the NewLeadershipTermEvent that opens each term


@pytest.fixture(params=["sim", "udp"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> World:
    return World(request.param, seed=3, tmp_path=tmp_path)


def test_three_nodes_elect_a_leader_and_commit_what_clients_send(world: World) -> None:
    cluster = Cluster.start(world, 3)
    try:
        assert world.run_until(cluster.settled, timeout_s=20), [
            (n.agent.role, n.agent.election_state) for n in cluster.running()
        ]
        leader = cluster.leader()
        assert leader is not None
        term = leader.agent.leadership_term_id
        assert [node.agent.leadership_term_id for node in cluster.running()] == [term] * 3
        client = IngressClient(world, cluster)
        assert world.run_until(lambda: client.offer(leader, 0), timeout_s=10)
        for command in range(1, 20):
            assert world.run_until(lambda command=command: client.offer(leader, command), timeout_s=10)
        end = EVENT + client.open_event_length + 20 * ENTRY
        assert world.run_until(
            lambda: all(node.agent.commit_position == end for node in cluster.running()), timeout_s=20
        ), [(node.agent.append_position, node.agent.commit_position) for node in cluster.running()]
        # every member's archive holds the same log, in one recording extended across terms
        logs = []
        for node in cluster.running():
            recording_id = node.agent.log_recording_id
            assert recording_id >= 0
            assert node.agent.archive.get_max_recorded_position(recording_id) == end
            logs.append(node.agent.recording_log.log)
        for log in logs:
            last = log.find_last_term()
            assert last is not None and last.leadership_term_id == term
            assert last.term_base_log_position == 0 and last.log_position == -1
    finally:
        cluster.close()
    # what the nodes left on disk: the candidate term and the term history, in Aeron's formats
    for member_id in range(3):
        storage = world.storage(f"node{member_id}/cluster")
        state = NodeStateFile.read(storage)
        assert state.candidate_term.candidate_term_id == term
        log = RecordingLogFile.read(storage).log
        terms = [(entry.leadership_term_id, entry.term_base_log_position) for entry in log.terms]
        assert terms == [(term, 0)]


def test_a_one_member_cluster_leads_alone_and_commits(world: World) -> None:
    cluster = Cluster.start(world, 1)
    try:
        assert world.run_until(cluster.settled, timeout_s=10)
        node = cluster.nodes[0]
        assert node is not None and node.agent.role == "LEADER"
        client = IngressClient(world, cluster)
        for command in range(5):
            assert world.run_until(lambda command=command: client.offer(node, command), timeout_s=10)
        end = EVENT + client.open_event_length + 5 * ENTRY
        assert world.run_until(lambda: node.agent.commit_position == end, timeout_s=10)
        assert node.agent.archive.get_max_recorded_position(node.agent.log_recording_id) == end
    finally:
        cluster.close()


def _commit_all(world: World, cluster: Cluster, client: IngressClient, commands: range) -> int:
    """Send ``commands`` to the leader and wait until every running member has committed them; the
    commit position."""
    leader = cluster.leader()
    assert leader is not None
    assert world.run_until(client.connected, timeout_s=10)
    expected = leader.agent.core.log_end + len(commands) * ENTRY  # what the log publication holds
    for command in commands:
        assert world.run_until(lambda command=command: client.offer(leader, command), timeout_s=10)
    assert world.run_until(
        lambda: {node.agent.commit_position for node in cluster.running()} == {expected}, timeout_s=20
    ), [(node.agent.append_position, node.agent.commit_position) for node in cluster.running()]
    return leader.agent.commit_position


def test_when_the_leader_stops_the_others_elect_a_new_one_and_go_on_committing(world: World) -> None:
    cluster = Cluster.start(world, 3)
    try:
        assert world.run_until(cluster.settled, timeout_s=20)
        client = IngressClient(world, cluster)
        before = _commit_all(world, cluster, client, range(10))
        old = cluster.leader()
        assert old is not None
        old_term = old.agent.leadership_term_id
        cluster.stop(old.config.member_id)
        assert world.run_until(cluster.settled, timeout_s=30)
        new = cluster.leader()
        assert new is not None and new.agent.leadership_term_id > old_term
        after = _commit_all(world, cluster, client, range(10, 20))
        # the new term opened with its NewLeadershipTermEvent after everything committed before
        assert after == before + EVENT + 10 * ENTRY
        for node in cluster.running():
            terms = [entry.leadership_term_id for entry in node.agent.recording_log.log.terms]
            assert terms[0] == old_term and terms[-1] == new.agent.leadership_term_id
    finally:
        cluster.close()
