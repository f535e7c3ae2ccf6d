"""Snapshots taken by real nodes (``ClusterNode`` with its containers) in the node simulator: a leader's
ClusterActionRequest SNAPSHOT makes every member record its service's snapshot and then its consensus
module's, both loadable, and add the SNAPSHOT entries to its recording log, services first; the cluster
holds still while it does, then carries on; a snapshot whose action an election undoes is given up."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.node_script import MS, Script

from cluster.archive.recording_reader import RecordingReader
from cluster.consensus.core.cluster_actions import ModuleState
from cluster.consensus.files.recording_log_file import RecordingLogFile
from cluster.consensus.node_sim import NodeSimulator
from cluster.service.api import Cluster, SnapshotReader
from cluster.service.container_agent import ContainerAgentError
from cluster.service.kv import KeyValueService, decode_reply, encode_write
from cluster.snapshots import (
    CONSENSUS_MODULE_TYPE_ID,
    SERVICE_TYPE_ID,
    ConsensusModuleSnapshot,
    ServiceSnapshot,
    load_consensus_module_snapshot,
    load_service_snapshot,
)
from cluster.storage import SyncLevel
from generated import aeron_cluster_codecs as codecs


def _snapshot_entries(sim: NodeSimulator, member: int) -> list[tuple[int, int, int]]:
    """(service id, log position, recording id) of the member's valid SNAPSHOT entries, in log order."""
    node = sim.members[member].node
    assert node is not None
    return [
        (entry.service_id, entry.log_position, entry.recording_id)
        for entry in node.agent.recording_log.log.entries
        if entry.is_snapshot and entry.is_valid
    ]


def _recording(sim: NodeSimulator, member: int, recording_id: int) -> list[bytes]:
    node = sim.members[member].node
    assert node is not None
    descriptor = node.agent.archive.list_recording(recording_id)
    assert descriptor is not None
    storage = node.archive.ctx.storage
    with RecordingReader.of(storage, descriptor, stop_position=descriptor.stop_position) as reader:
        return [message for _, message in reader.messages()]


class _Reader:
    """A ``SnapshotReader`` over a list of messages."""

    def __init__(self, messages: list[bytes]) -> None:
        self.messages = messages

    def poll(self, handler: Callable[[memoryview], object], limit: int) -> int:
        batch, self.messages = self.messages[:limit], self.messages[limit:]
        for message in batch:
            handler(memoryview(message))
        return len(batch)


def _replies(sim: NodeSimulator) -> int:
    """How many replies the simulator's client has read (polling it for more)."""
    sim.poll_client()
    return len(sim.client_messages)


def _caught_up(sim: NodeSimulator) -> bool:
    return all(
        member.node.containers[0].log_position == member.node.agent.commit_position
        for member in sim.members
        if member.node is not None
    )


def _write_all(script: Script, count: int) -> None:
    sim = script.sim
    script.until(lambda: sim.poll_client() is not None, "a session")
    for i in range(count):
        request = encode_write(i, f"k{i % 5}".encode(), f"v{i}".encode())
        script.until(lambda r=request: sim.poll_client().offer(r) > 0, "a request taken")  # type: ignore[union-attr]
        script.run(2 * MS)
    script.until(lambda: _replies(sim) >= count, f"{count} replies")


def test_every_member_snapshots_its_service_and_consensus_module_at_the_action() -> None:
    with Script(3, service=KeyValueService, seed=21) as script:
        sim = script.sim
        leader = script.elected()
        _write_all(script, 12)
        assert script.node(leader).agent.core.request_snapshot()
        assert not script.node(leader).agent.core.request_snapshot()  # one at a time
        script.until(
            lambda: all(len(_snapshot_entries(sim, m)) == 2 for m in range(3)), "a snapshot on every member"
        )
        positions = set()
        for member in range(3):
            (service, position, service_recording), (cm, cm_position, cm_recording) = _snapshot_entries(
                sim, member
            )
            assert (service, cm) == (0, -1) and position == cm_position
            positions.add(position)

            loaded, own = load_service_snapshot(_recording(sim, member, service_recording))
            assert isinstance(loaded, ServiceSnapshot)
            assert (loaded.marker.type_id, loaded.marker.log_position) == (SERVICE_TYPE_ID, position)
            assert [s.cluster_session_id for s in loaded.sessions] == [sim.poll_client().cluster_session_id]  # type: ignore[union-attr]
            store = script.node(member).containers[0].service.store  # type: ignore[attr-defined]
            restored = KeyValueService()
            restored.on_start(None, _Reader(own))  # type: ignore[arg-type]  # no cluster needed to load
            assert len(store) == 5 and restored.store == store

            cm_snapshot = load_consensus_module_snapshot(_recording(sim, member, cm_recording))
            assert isinstance(cm_snapshot, ConsensusModuleSnapshot)
            assert (cm_snapshot.marker.type_id, cm_snapshot.marker.log_position) == (
                CONSENSUS_MODULE_TYPE_ID,
                position,
            )
            assert cm_snapshot.marker.time_unit == int(codecs.ClusterTimeUnit.NANOS)
            assert [s.cluster_session_id for s in cm_snapshot.sessions] == [
                loaded.sessions[0].cluster_session_id
            ]
            assert cm_snapshot.next_session_id == loaded.sessions[0].cluster_session_id + 1
            core = script.node(member).agent.core
            assert core.module_state == ModuleState.ACTIVE and core.snapshots_taken == 1
        assert len(positions) == 1  # one snapshot position on every member

        # the cluster carries on after it
        before = len(sim.client_messages)
        request = encode_write(99, b"after", b"snapshot")
        script.until(lambda: sim.poll_client().offer(request) > 0, "a request taken")  # type: ignore[union-attr]
        script.until(lambda: _replies(sim) > before, "the reply")
        assert decode_reply(sim.client_messages[-1]).request_id == 99
        assert sim.violations == []


def test_a_leader_holds_client_messages_while_the_snapshot_is_taken() -> None:
    with Script(3, service=KeyValueService, seed=22) as script:
        sim = script.sim
        leader = script.elected()
        _write_all(script, 3)
        core = script.node(leader).agent.core
        assert core.request_snapshot()
        script.until(lambda: core.module_state == ModuleState.SNAPSHOT, "the snapshot begun")
        assert not core.ingress_open
        appended = core.log_end
        request = encode_write(50, b"held", b"x")
        script.until(lambda: sim.poll_client().offer(request) > 0, "a request taken by the client")  # type: ignore[union-attr]
        script.until(lambda: core.module_state == ModuleState.ACTIVE, "the snapshot over")
        assert core.log_end == appended or _snapshot_entries(sim, leader)  # nothing went in while it held
        script.until(
            lambda: _replies(sim) > 0 and any(decode_reply(m).request_id == 50 for m in sim.client_messages),
            "the held request answered",
        )
        entries = _snapshot_entries(sim, leader)
        assert len(entries) == 2 and entries[0][1] <= appended


def test_a_snapshot_whose_action_an_election_cuts_is_given_up() -> None:
    with Script(3, service=KeyValueService, seed=23) as script:
        sim = script.sim
        leader = script.elected()
        _write_all(script, 3)
        core = script.node(leader).agent.core
        script.isolate(leader)  # the action can reach no follower: it never commits
        assert core.request_snapshot()
        script.until(lambda: core.module_state == ModuleState.SNAPSHOT, "the old leader's snapshot begun")
        script.until(lambda: script.leader_id() not in (-1, leader), "a new leader", 40_000 * MS)
        sim.heal()
        script.until(lambda: core.module_state == ModuleState.ACTIVE, "the old leader gave the snapshot up")
        assert core.snapshots_failed == 1 and "election" in core.last_snapshot_failure
        script.until(lambda: sim.converged(), "the cluster converged")
        assert all(_snapshot_entries(sim, m) == [] for m in range(3))
        assert sim.violations == []


def _store(script: Script, member: int) -> dict[bytes, bytes]:
    return dict(script.node(member).containers[0].service.store)  # type: ignore[attr-defined]


def _snapshot_after_writes(script: Script, writes: int) -> int:
    """A leader, ``writes`` key-value writes, then a snapshot on every member; the leader's id."""
    sim = script.sim
    leader = script.elected()
    _write_all(script, writes)
    assert script.node(leader).agent.core.request_snapshot()
    script.until(lambda: all(len(_snapshot_entries(sim, m)) == 2 for m in range(3)), "a snapshot everywhere")
    return leader


class StartingKv(KeyValueService):
    """The key-value service, remembering what it held once ``on_start`` had run."""

    def on_start(self, cluster: Cluster, snapshot: SnapshotReader | None) -> None:
        super().on_start(cluster, snapshot)
        self.started_with = dict(self.store)
        self.started_from_snapshot = snapshot is not None


def test_a_restarted_member_starts_from_its_snapshot_and_replays_only_what_follows() -> None:
    with Script(3, service=StartingKv, seed=24) as script:
        sim = script.sim
        leader = _snapshot_after_writes(script, 6)
        position = _snapshot_entries(sim, leader)[0][1]
        before = _replies(sim)
        for i in range(6, 10):
            request = encode_write(i, f"k{i % 5}".encode(), f"w{i}".encode())
            script.until(lambda r=request: sim.poll_client().offer(r) > 0, "a request taken")  # type: ignore[union-attr]
        script.until(lambda: _replies(sim) >= before + 4, "the later replies")
        script.until(lambda: sim.converged() and _caught_up(sim), "every service caught up")
        follower = next(m for m in range(3) if m != leader)
        expected = _store(script, leader)
        sim.crash(follower)
        script.restart(follower)
        node = script.node(follower)
        assert node.agent.core.snapshot_position == position
        service = node.containers[0].service
        assert isinstance(service, StartingKv) and service.started_from_snapshot
        assert service.started_with == {f"k{i % 5}".encode(): f"v{i}".encode() for i in range(6)}
        script.until(lambda: sim.converged() and _caught_up(sim), "the restarted member caught up")
        assert _store(script, follower) == expected
        assert sim.violations == []


def test_a_damaged_snapshot_is_refused_invalidated_and_the_log_replayed_instead() -> None:
    with Script(3, service=StartingKv, seed=25) as script:
        sim = script.sim
        leader = _snapshot_after_writes(script, 6)
        script.until(lambda: sim.converged() and _caught_up(sim), "every service caught up")
        follower = next(m for m in range(3) if m != leader)
        (_, _, service_recording), (_, _, cm_recording) = _snapshot_entries(sim, follower)
        storage = script.node(follower).archive.ctx.storage
        with storage.open(f"{cm_recording}-0.rec") as segment:
            segment.write(96 + 20, b"\xff\xff\xff\x7f")  # the second frame's term id: its replay fails there
            segment.sync(SyncLevel.DATA)
        expected = _store(script, leader)
        sim.crash(follower)
        script.restart(follower)
        node = script.node(follower)
        assert node.agent.core.snapshot_position == 0
        assert _snapshot_entries(sim, follower) == []  # both entries invalidated, durably
        assert [e.is_valid for e in node.agent.recording_log.log.entries if e.is_snapshot] == [False, False]
        service = node.containers[0].service
        assert isinstance(service, StartingKv) and not service.started_from_snapshot
        script.until(lambda: sim.converged() and _caught_up(sim), "the restarted member caught up")
        assert _store(script, follower) == expected
        assert sim.violations == []
        assert service_recording != cm_recording


def test_a_cluster_without_services_snapshots_its_consensus_module_alone() -> None:
    with Script(3, seed=26) as script:
        sim = script.sim
        leader = script.elected()
        script.submit(*range(5))
        assert script.node(leader).agent.core.request_snapshot()
        script.until(
            lambda: all(len(_snapshot_entries(sim, m)) == 1 for m in range(3)), "a snapshot everywhere"
        )
        assert all(
            _snapshot_entries(sim, m)[0][0] == -1 for m in range(3)
        )  # the module's: no service waited on
        assert all(script.node(m).agent.core.module_state == ModuleState.ACTIVE for m in range(3))
        script.submit(5, 6)  # and the cluster carries on
        assert sim.violations == []


def test_damage_in_a_services_own_snapshot_state_stops_the_member_with_its_containers_error() -> None:
    """The module reads each service snapshot to END only; what follows is the service's, and its container
    finds damage there as it loads it: the member does not start, and says which recording is at fault."""
    with Script(3, service=StartingKv, seed=25) as script:
        sim = script.sim
        leader = _snapshot_after_writes(script, 6)
        script.until(lambda: sim.converged() and _caught_up(sim), "every service caught up")
        follower = next(m for m in range(3) if m != leader)
        (_, _, service_recording), _ = _snapshot_entries(sim, follower)
        storage = script.node(follower).archive.ctx.storage
        with storage.open(f"{service_recording}-0.rec") as segment:
            frames = []  # the offsets of the recording's frames
            offset = 0
            while (length := int.from_bytes(segment.read(offset, 4), "little", signed=True)) > 0:
                frames.append(offset)
                offset += (length + 31) & ~31
            assert len(frames) >= 4  # BEGIN, END, then the service's own state
            segment.write(frames[-1] + 20, b"\xff\xff\xff\x7f")  # the last frame's term id
            segment.sync(SyncLevel.DATA)
        sim.crash(follower)
        with pytest.raises(ContainerAgentError, match=f"its snapshot, recording {service_recording}: "):
            script.restart(follower)
        # the module found its part whole: the entries stay valid, for the operator to judge
        with RecordingLogFile.open(sim.members[follower].disk.storage("cluster")) as recording_log:
            assert [e.is_valid for e in recording_log.log.entries if e.is_snapshot] == [True, True]
