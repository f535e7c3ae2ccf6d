"""Cluster control in the node simulator, through each leader's control file as the admin tool writes
it: SUSPEND holds clients' messages until RESUME; SHUTDOWN snapshots and stops every member at the same
position, ABORT stops them there without a snapshot; each service hears ``on_terminate``; a request to
a member that does not lead is refused."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import ClassVar

from support.node_script import MS, Script

from cluster.consensus.core.cluster_actions import ControlOutcome, ModuleState, ToggleState
from cluster.consensus.files import RecordingLogFile
from cluster.consensus.files.control_file import read_control, submit_request
from cluster.consensus.node_sim import NodeSimulator
from cluster.service.api import Cluster
from cluster.service.kv import KeyValueService, encode_write


class _Service(KeyValueService):
    terminated: ClassVar[list[int]] = []  # member ids whose service heard on_terminate

    def on_terminate(self, cluster: Cluster) -> None:
        _Service.terminated.append(cluster.member_id)


def _request(script: Script, member: int, action: ToggleState) -> int:
    return submit_request(script.sim.members[member].disk.storage("cluster"), action)


def _reply(script: Script, member: int) -> tuple[int, ControlOutcome]:
    status = read_control(script.sim.members[member].disk.storage("cluster"))
    return status.reply_id, ControlOutcome(status.outcome)


def _await_reply(script: Script, member: int, request_id: int, outcome: ControlOutcome) -> None:
    script.until(
        lambda: _reply(script, member) == (request_id, outcome), f"request {request_id}: {outcome.name}"
    )


def _write(script: Script, count: int, start: int = 0) -> None:
    sim = script.sim
    script.until(lambda: sim.poll_client() is not None, "a session")
    for i in range(start, start + count):
        request = encode_write(i, b"k", f"v{i}".encode())
        script.until(lambda r=request: sim.poll_client().offer(r) > 0, "a request taken")  # type: ignore[union-attr]
        script.run(2 * MS)


def _states(sim: NodeSimulator) -> set[ModuleState]:
    return {m.node.agent.core.module_state for m in sim.members if m.node is not None}


def _replies(sim: NodeSimulator) -> int:
    sim.poll_client()
    return len(sim.client_messages)


def test_suspend_holds_client_messages_until_resume() -> None:
    with Script(3, service=KeyValueService, seed=5) as script:
        sim = script.sim
        leader = script.elected()
        _write(script, 3)
        script.until(lambda: _replies(sim) >= 3, "3 replies")
        follower = (leader + 1) % 3
        refused = _request(script, follower, ToggleState.SUSPEND)
        _await_reply(script, follower, refused, ControlOutcome.NOT_LEADER)
        suspend = _request(script, leader, ToggleState.SUSPEND)
        _await_reply(script, leader, suspend, ControlOutcome.DONE)
        script.until(
            lambda: all(
                m.node is not None and m.node.agent.core.module_state == ModuleState.SUSPENDED
                for m in sim.members
            ),
            "every member SUSPENDED",
        )
        again = _request(script, leader, ToggleState.SUSPEND)
        _await_reply(script, leader, again, ControlOutcome.REFUSED)
        commit = script.commit(leader)
        assert sim.poll_client().offer(encode_write(99, b"k", b"held")) > 0  # type: ignore[union-attr]
        script.run(500 * MS)
        assert _replies(sim) == 3 and script.commit(leader) == commit  # taken by nobody while suspended
        resume = _request(script, leader, ToggleState.RESUME)
        _await_reply(script, leader, resume, ControlOutcome.DONE)
        script.until(lambda: _replies(sim) >= 4, "the held message answered after RESUME")
        assert all(
            m.node is not None and m.node.agent.core.module_state == ModuleState.ACTIVE for m in sim.members
        )


def _stopped_at(script: Script) -> set[tuple[int, int]]:
    return {
        (m.terminated_at.leadership_term_id, m.terminated_at.log_position)
        for m in script.sim.members
        if m.terminated_at is not None
    }


@contextlib.contextmanager
def _stopped(action: ToggleState, seed: int) -> Iterator[tuple[Script, tuple[int, int]]]:
    """A 3-node cluster stopped by ``action`` (SHUTDOWN or ABORT) after a few writes: the script, and
    the (term, position) where every member stopped -- one place for all."""
    _Service.terminated = []
    with Script(3, service=_Service, seed=seed) as script:
        sim = script.sim
        leader = script.elected()
        _write(script, 5)
        script.until(lambda: _replies(sim) >= 5, "5 replies")
        request = _request(script, leader, action)
        script.until(lambda: all(m.node is None for m in sim.members), "every member stopped")
        assert _reply(script, leader) == (request, ControlOutcome.DONE)
        (stop,) = _stopped_at(script)
        assert sorted(_Service.terminated) == [0, 1, 2]
        assert sim.fault_counts.get("terminated") == 3
        yield script, stop


def test_shutdown_snapshots_then_stops_every_member_at_one_position() -> None:
    with _stopped(ToggleState.SHUTDOWN, seed=7) as (script, stop):
        sim = script.sim
        for member in sim.members:
            storage = member.disk.storage("cluster")
            assert read_control(storage).toggle == ToggleState.INACTIVE
        sim.check_logs()
        assert not sim.violations
        # each member's recording log has the snapshot at the stop position and the term's end there
        for member_id in range(3):
            sim.restart(member_id)  # a stopped member is not restarted by the simulator
            assert sim.members[member_id].node is None
        for member in sim.members:
            log = RecordingLogFile.read(member.disk.storage("cluster")).log
            snapshots = [e for e in log.entries if e.is_snapshot and e.is_valid and e.log_position == stop[1]]
            assert [e.service_id for e in snapshots] == [0, -1]
            assert log.find_term(stop[0]).log_position == stop[1]  # type: ignore[union-attr]


def test_abort_stops_every_member_at_one_position_without_a_snapshot() -> None:
    with _stopped(ToggleState.ABORT, seed=9) as (script, stop):
        for member in script.sim.members:
            log = RecordingLogFile.read(member.disk.storage("cluster")).log
            assert not [e for e in log.entries if e.is_snapshot]
            assert log.find_term(stop[0]).log_position == stop[1]  # type: ignore[union-attr]


def test_a_snapshot_interval_makes_the_leader_snapshot_by_itself() -> None:
    with Script(3, service=KeyValueService, seed=11, settings={"cluster.snapshot.interval": "2s"}) as script:
        sim = script.sim
        leader = script.elected()
        _write(script, 3)
        script.run(5_000 * MS)
        node = script.node(leader)
        assert node.agent.core.snapshots_taken >= 2
        positions = {
            member: [
                e.log_position
                for e in m.node.agent.recording_log.log.entries
                if e.is_snapshot and e.service_id == -1
            ]
            for member, m in enumerate(sim.members)
            if m.node is not None
        }
        assert positions[0] and positions[0] == positions[1] == positions[2]
