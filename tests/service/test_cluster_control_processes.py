"""The admin tool on a running 3-node cluster of real processes (``python -m tools node``, the key-value
example service): ``is-leader``, ``list-members``, ``snapshot``, ``suspend``/``resume`` and ``shutdown``
in their exact command-line forms; after the shutdown every node exits 0, every member holds the same
snapshot at the same position, and a restart loads it and replays only the short tail after it; an
invalidated snapshot falls back to the one before it.

Every process is stopped by its pid even when a test fails (``ProcessCluster.close``), and every wait is
bounded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from support.node_world import FAST
from support.processes import spawn_tools

from cluster.archive import Catalog
from cluster.archive.recording_reader import RecordingReader
from cluster.consensus.files import RecordingLogFile
from cluster.service.kv import encode_write
from cluster.storage import RealStorage
from tools.node_processes import ProcessCluster, write_configs

SETTLE_S = 30.0
TOOL_TIMEOUT_S = 60.0


def _tool(*args: str, alive: ProcessCluster | None = None) -> tuple[int, str]:
    """``python -m tools cluster ARGS``: its exit status and stdout. With ``alive``, that cluster's client
    session is kept open while the tool runs (a keepalive a second: a session silent for the 10 s session
    timeout is closed, and on a loaded machine a few tool runs take that long)."""
    with spawn_tools("cluster", *args) as process:
        if alive is not None:
            next_keep_alive = 0.0

            def ended() -> bool:
                nonlocal next_keep_alive
                session = alive.poll_session()
                if session is not None and time.monotonic() >= next_keep_alive:
                    session.send_keep_alive()
                    next_keep_alive = time.monotonic() + 1.0
                return process.poll() is not None

            alive.wait_for(ended, TOOL_TIMEOUT_S)
        out, err = process.communicate(timeout=TOOL_TIMEOUT_S)
    assert "Traceback" not in err, err
    return process.returncode, out


def _write(cluster: ProcessCluster, first: int, count: int, value: bytes = b"value") -> None:
    """Write ``count`` keys through the client's session, each taken by the leader's ingress, and wait
    until the leader has committed at least that many more log entries (each at least 64 bytes: frame
    and session headers and the request) -- a write offered on a session the cluster has closed is
    dropped, and this says so here rather than in a snapshot later."""
    before = max((status.commit_position for status in cluster.view.statuses().values()), default=0)
    for i in range(first, first + count):
        payload = encode_write(i, f"key{i % 50}".encode(), value + str(i).encode())
        assert cluster.wait_for(
            lambda p=payload: (session := cluster.poll_session()) is not None and session.offer(p) > 0,
            SETTLE_S,
        ), f"write {i} not taken"
    assert cluster.wait_for(
        lambda: (leader := cluster.leader()) is not None and leader.commit_position >= before + 64 * count,
        SETTLE_S,
    ), f"writes {first} to {first + count - 1} were taken but not committed: {cluster.view.statuses()}"


def _committed(cluster: ProcessCluster, position: int) -> bool:
    statuses = cluster.view.statuses()
    return len(statuses) == 3 and all(status.commit_position >= position for status in statuses.values())


def _snapshot_service_bytes(directory: Path, recording_id: int) -> list[bytes]:
    """The messages of a member's snapshot recording, read offline from its archive."""
    storage = RealStorage(directory / "archive")
    with Catalog(storage, read_only=True) as catalog:
        descriptor = catalog.recording(recording_id)
    assert descriptor is not None
    with RecordingReader.of(storage, descriptor, stop_position=descriptor.stop_position) as reader:
        return [bytes(message) for _, message in reader.messages()]


def _assert_one_state_everywhere(cluster: ProcessCluster, leader_id: int, dirs: list[str]) -> None:
    """A snapshot through the leader, then the same key-value state in every member's snapshot."""
    status, out = _tool("snapshot", dirs[leader_id], "--json")
    assert status == 0, out
    position = json.loads(out)["latestSnapshot"]["consensusModule"]["logPosition"]
    contents = []
    for directory in dirs:
        storage = RealStorage(Path(directory) / "cluster")
        assert cluster.wait_for(
            lambda s=storage: (
                [e.log_position for e in RecordingLogFile.read(s).log.latest_snapshots(1)]
                == [position, position]
            ),
            SETTLE_S,
        ), f"{directory}: no snapshot at {position}"
        latest = RecordingLogFile.read(storage).log.latest_snapshots(1)
        contents.append(_snapshot_service_bytes(Path(directory), latest[1].recording_id))
    assert contents[0] == contents[1] == contents[2]  # the key-value state, identical everywhere


def _start_and_catch_up(cluster: ProcessCluster, member: int, leader_id: int) -> None:
    """Start ``member`` again and wait until it has committed as far as the leader had when it started."""
    cluster.start(member)
    leader = cluster.view.status(leader_id)
    assert leader is not None
    assert cluster.wait_for(
        lambda: (
            (status := cluster.view.status(member)) is not None
            and status.commit_position >= leader.commit_position
        ),
        SETTLE_S,
    ), f"member {member} did not catch up"


def _shut_down(cluster: ProcessCluster, leader_dir: str) -> int:
    """``cluster shutdown`` through the leader; every member must exit 0. The shutdown snapshot's position."""
    status, out = _tool("shutdown", leader_dir, "--json")
    assert status == 0, out
    for process in cluster.processes.values():
        assert process.wait(SETTLE_S) == 0
    return int(json.loads(out)["latestSnapshot"]["consensusModule"]["logPosition"])


@contextlib.contextmanager
def _kv_cluster(
    directory: Path, settings: dict[str, object] | None = None
) -> Iterator[tuple[ProcessCluster, int, list[str]]]:
    """A running 3-node cluster of the key-value service: it, its leader, and its members' directories."""
    with ProcessCluster(
        directory, 3, dict(FAST) | {"cluster.service.class": "kv"} | (settings or {})
    ) as cluster:
        cluster.start_all()
        assert cluster.wait_for(lambda: cluster.settled() is not None, SETTLE_S), "no leader"
        leader = cluster.settled()
        assert leader is not None
        yield cluster, leader.member, [str(directory / f"node{i}") for i in range(3)]


def test_admin_tool_drives_a_running_cluster_and_shuts_it_down(tmp_path: Path) -> None:
    with _kv_cluster(tmp_path) as (cluster, leader_id, dirs):
        follower = (leader_id + 1) % 3

        status, out = _tool("is-leader", dirs[leader_id])
        assert status == 0 and "is the leader" in out
        status, out = _tool("is-leader", dirs[follower], "--json")
        assert status == 1 and json.loads(out) == {
            "isLeader": False,
            "role": "FOLLOWER",
            "memberId": follower,
        }
        status, out = _tool("list-members", dirs[follower], "--json")
        members = json.loads(out)
        assert status == 0 and members["leaderMemberId"] == leader_id
        assert [m["id"] for m in members["activeMembers"]] == [0, 1, 2]
        assert [m["isLeader"] for m in members["activeMembers"]] == [i == leader_id for i in range(3)]

        _write(cluster, 0, 40)
        status, out = _tool("snapshot", dirs[follower], alive=cluster)  # only through the leader
        assert status == 1 and f"the leader is member {leader_id}" in out
        status, out = _tool("snapshot", dirs[leader_id], "--json", alive=cluster)
        first = json.loads(out)
        assert status == 0 and first["done"] is True, out
        first_position = first["latestSnapshot"]["consensusModule"]["logPosition"]

        status, out = _tool("suspend", dirs[leader_id], alive=cluster)
        assert status == 0 and "suspended" in out
        status, out = _tool("suspend", dirs[leader_id], alive=cluster)
        assert status == 1 and "SUSPENDED" in out  # refused: it is suspended already
        status, out = _tool("resume", dirs[leader_id], alive=cluster)
        assert status == 0 and "resumed" in out

        _write(cluster, 40, 40)
        status, out = _tool("shutdown", dirs[leader_id], "--json")
        shutdown = json.loads(out)
        assert status == 0 and shutdown["done"] is True, out
        position = shutdown["latestSnapshot"]["consensusModule"]["logPosition"]
        assert position > first_position
        for member_id, process in cluster.processes.items():
            assert process.wait(SETTLE_S) == 0, f"member {member_id} did not exit 0"

        # every member took the same snapshot at the same position, and marked the term's end there
        contents = []
        for directory in dirs:
            log = RecordingLogFile.read(RealStorage(Path(directory) / "cluster")).log
            latest = log.latest_snapshots(1)
            assert [entry.log_position for entry in latest] == [position, position]
            assert log.find_last_term() is not None and log.find_last_term().log_position == position  # type: ignore[union-attr]
            contents.append(_snapshot_service_bytes(Path(directory), latest[1].recording_id))
        assert contents[0] == contents[1] == contents[2]
        assert len(contents[0]) > 2  # markers, a session, and the service's own state

        # a restart loads the snapshot and replays nothing before it
        cluster.start_all()
        assert cluster.wait_for(lambda: cluster.settled() is not None, SETTLE_S), "no leader after restart"
        for member_id in range(3):
            stderr = cluster.stderr_path(member_id)
            assert cluster.wait_for(lambda s=stderr: "running" in s.read_text(), SETTLE_S)
        events = [event.text for event in cluster.view.events()]
        assert sum(f"starting from the snapshot at {position}" in text for text in events) == 3, events
        _write(cluster, 80, 5)  # and the cluster takes writes again


def test_an_invalidated_snapshot_falls_back_to_the_one_before(tmp_path: Path) -> None:
    with _kv_cluster(tmp_path) as (cluster, leader_id, dirs):
        _write(cluster, 0, 10)
        status, out = _tool("snapshot", dirs[leader_id], "--json")
        assert status == 0, out
        older = json.loads(out)["latestSnapshot"]["consensusModule"]["logPosition"]
        _write(cluster, 10, 10)
        newer = _shut_down(cluster, dirs[leader_id])
        for directory in dirs:
            status, out = _tool("invalidate-latest-snapshot", directory, "--json")
            assert status == 0, out
            assert json.loads(out)["latestSnapshot"]["consensusModule"]["logPosition"] == older
        cluster.start_all()  # the mark files were closed cleanly: the nodes start at once
        assert cluster.wait_for(lambda: cluster.settled() is not None, SETTLE_S), "no leader after restart"
        assert cluster.wait_for(lambda: _committed(cluster, newer), SETTLE_S), "the log was not replayed"
        events = [event.text for event in cluster.view.events()]
        assert sum(f"starting from the snapshot at {older}" in text for text in events) == 3, events


def test_a_member_rebuilt_from_an_empty_directory_catches_up_to_the_same_state(tmp_path: Path) -> None:
    with _kv_cluster(tmp_path) as (cluster, leader_id, dirs):
        _write(cluster, 0, 30)
        rebuilt = (leader_id + 1) % 3
        assert cluster.stop(rebuilt) == 0
        shutil.rmtree(dirs[rebuilt])  # its cluster and archive directories, gone
        _write(cluster, 30, 30)
        _start_and_catch_up(cluster, rebuilt, leader_id)
        _assert_one_state_everywhere(cluster, leader_id, dirs)


def test_a_member_rebuilt_after_the_others_purged_their_logs_catches_up_from_a_snapshot(
    tmp_path: Path,
) -> None:
    """``purge-log`` on every other member takes their logs below the snapshot; a member rebuilt from an
    empty directory can then not copy the log from its start, and catches up from the leader's snapshot
    (docs/consensus.md, "Catch-up from a snapshot") to the same key-value state."""
    with _kv_cluster(tmp_path, {"archive.segment.file.length": "64k"}) as (cluster, leader_id, dirs):
        rebuilt = (leader_id + 1) % 3
        assert cluster.stop(rebuilt) == 0
        shutil.rmtree(dirs[rebuilt])
        _write(cluster, 0, 1_500, value=b"v" * 100)  # about 250 KiB of log: four 64 KiB segments
        assert cluster.wait_for(
            lambda: (
                (status := cluster.view.status(leader_id)) is not None and status.commit_position > 200_000
            ),
            SETTLE_S,
        ), "the writes were not committed"
        status, out = _tool("snapshot", dirs[leader_id], "--json")
        assert status == 0, out
        position = json.loads(out)["latestSnapshot"]["consensusModule"]["logPosition"]
        for member in range(3):
            if member != rebuilt:
                status, out = _tool("purge-log", dirs[member], "--json")
                assert status == 0, out
                purged = json.loads(out)
                assert purged["segmentsDeleted"] >= 2 and 0 < purged["purgedTo"] <= position, purged
        status, out = _tool("purge-log", dirs[rebuilt])
        assert status == 2 and out == ""  # its directory is gone: one error line on stderr
        _write(cluster, 1_500, 20, value=b"after")
        _start_and_catch_up(cluster, rebuilt, leader_id)
        events = [event.text for event in cluster.view.events(rebuilt)]
        assert any(text.startswith("caught up from member") for text in events), events
        _assert_one_state_everywhere(cluster, leader_id, dirs)


def test_members_restarted_on_recording_logs_seeded_from_the_snapshot_take_new_log_settings(
    tmp_path: Path,
) -> None:
    """``seed-recording-log-from-snapshot`` on every member after a shutdown, then a restart with a log
    term length of 128 KiB and an MTU of 4 KiB: each member starts from the snapshot, its new log
    begins at position 0 with the new lengths, and the key-value state is the one from before."""
    with _kv_cluster(tmp_path) as (cluster, leader_id, dirs):
        _write(cluster, 0, 30)
        position = _shut_down(cluster, dirs[leader_id])
        for directory in dirs:
            status, out = _tool("seed-recording-log-from-snapshot", directory, "--json")
            assert status == 0, out
            entries = json.loads(out)["recordingLog"]
            assert entries and {(e["type"], e["logPosition"]) for e in entries} == {("SNAPSHOT", 0)}, out
        cluster.configs = tuple(
            dataclasses.replace(config, log_channel="aeron:udp?term-length=128k|mtu=4096")
            for config in cluster.configs
        )
        write_configs(cluster.configs, cluster.directory)
        if cluster.session is not None:  # the stopped cluster's session: the new one knows none
            cluster.session.close()
            cluster.session = None
        cluster.start_all()
        assert cluster.wait_for(lambda: cluster.settled() is not None, SETTLE_S), "no leader after restart"
        events = [event.text for event in cluster.view.events()]
        assert sum("starting from the snapshot at 0" in text for text in events) == 3, events
        leader = cluster.settled()
        assert leader is not None
        _write(cluster, 30, 10, value=b"after")
        assert cluster.wait_for(lambda: _committed(cluster, 1), SETTLE_S)
        for directory in dirs:
            storage = RealStorage(Path(directory) / "archive")
            log = RecordingLogFile.read(RealStorage(Path(directory) / "cluster")).log
            with Catalog(storage, read_only=True) as catalog:
                descriptor = catalog.recording(log.terms[0].recording_id)
            assert descriptor is not None
            assert (descriptor.start_position, descriptor.term_buffer_length, descriptor.mtu_length) == (
                0,
                128 * 1024,
                4096,
            )
        assert position > 0
        _assert_one_state_everywhere(cluster, leader.member, dirs)
