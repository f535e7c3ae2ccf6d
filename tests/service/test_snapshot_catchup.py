"""Catch-up from another member's snapshot: a member that was down while the others snapshotted and
purged their logs below the snapshot cannot copy the log it lacks -- the leader's log no longer reaches
back to where its own ends. It asks the leader for its snapshots (BackupQuery), copies the snapshot set
and the log up to it through archive replication, starts again on them, and follows the leader from
there, with the same key-value state. Real nodes in the simulator."""

from __future__ import annotations

from support.node_script import MS, Script

from cluster.consensus.node_sim import NodeSimulator
from cluster.service.kv import KeyValueService, encode_write

SEGMENT = 256 * 1024  # the simulator's archive segment length
VALUE = b"v" * 2000


def _replies(sim: NodeSimulator) -> int:
    sim.poll_client()
    return len(sim.client_messages)


def _write(script: Script, first: int, count: int) -> None:
    sim = script.sim
    script.until(lambda: sim.poll_client() is not None, "a session")
    before = _replies(sim)
    for i in range(first, first + count):
        request = encode_write(i, f"k{i % 300}".encode(), VALUE + str(i).encode())
        script.until(lambda r=request: sim.poll_client().offer(r) > 0, "a request taken")  # type: ignore[union-attr]
        script.run(1 * MS)
    script.until(lambda: _replies(sim) >= before + count, f"{count} replies", limit_ns=60_000 * MS)


def _store(script: Script, member: int) -> dict[bytes, bytes]:
    service = script.node(member).containers[0].service
    assert isinstance(service, KeyValueService)
    return dict(service.store)


def _snapshot_position(script: Script, member: int) -> int:
    entries = script.node(member).agent.recording_log.log.latest_snapshots(1)
    return entries[0].log_position if entries else -1


def test_a_member_behind_a_purged_log_catches_up_from_the_leaders_snapshot() -> None:
    with Script(3, service=KeyValueService, seed=31) as script:
        sim = script.sim
        leader = script.elected()
        behind = (leader + 1) % 3
        _write(script, 0, 20)
        script.until(lambda: script.commit(behind) == script.commit(leader), "the follower holds the writes")
        old_log = script.node(behind).agent.log_recording_id
        sim.crash(behind)
        _write(script, 20, 400)  # about 800 KiB: several segments
        assert script.node(leader).agent.core.request_snapshot()
        live = [m for m in range(3) if m != behind]
        script.until(lambda: all(_snapshot_position(script, m) > 0 for m in live), "a snapshot")
        position = _snapshot_position(script, leader)
        for member in live:  # purge each log below the snapshot's segment, as an operator would
            agent = script.node(member).agent
            start = position - position % SEGMENT
            assert agent.archive.purge_segments(agent.log_recording_id, start) >= 2
        _write(script, 420, 10)  # the log goes on past the snapshot
        script.restart(behind)
        script.until(lambda: script.node(behind).restarts == 1, "the member starts again on the snapshot")
        assert _snapshot_position(script, behind) == position
        # its old log, which the new recording log no longer names, is purged from its archive
        archive = script.node(behind).agent.archive
        assert archive.list_recording(old_log) is None
        named = {entry.recording_id for entry in script.node(behind).agent.recording_log.log.entries}
        assert old_log not in named
        assert all(archive.list_recording(recording_id) is not None for recording_id in named)
        script.until(
            lambda: (script.state(behind), script.role(behind)) == ("CLOSED", "FOLLOWER"), "following"
        )
        _write(script, 430, 10)
        script.until(
            lambda: (
                script.node(behind).containers[0].log_position == script.commit(leader)
                and script.commit(behind) == script.commit(leader)
            ),
            "the member's service has read the whole log",
        )
        assert _store(script, behind) == _store(script, leader)
        assert len(_store(script, leader)) == 300
