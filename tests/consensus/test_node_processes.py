"""Cluster members as real processes (``python -m tools node``) on 127.0.0.1, real UDP and real files:
election, replication and commit of what a client sends to the leader's ingress, ``kill -9`` of the
leader and the next leader, a restart on the same directories, a five-member cluster with two members
down, ``cluster up`` and ``cluster describe`` in their exact forms, and the node's own exit statuses.

Every process is stopped by its pid even when a test fails (``ProcessCluster.close``, ``spawn_tools``
and ``_kill_pids``), and every wait is bounded. The timeouts are the fast ones of the in-process tests
(``support.node_world.FAST``: a 2 s leader heartbeat timeout), so a failover takes seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.node_world import FAST
from support.paths import REPO
from support.processes import spawn_tools

from cluster.archive.client import ArchiveClient
from cluster.archive.protocol import DEFAULT_CONTROL_STREAM_ID
from cluster.consensus.agent import LogEvent
from cluster.consensus.files import CLUSTER_MARK_FILE_NAME, ClusterMarkFile, RecordingLogFile
from cluster.storage import RealStorage
from cluster.transport.driver import Transport, TransportConfig
from tools.node_cmd import NodeReporter, await_stale_mark_files
from tools.node_processes import NodeStatus, ProcessCluster, free_base_port

ENTRY = 96  # a SessionMessageHeader with an 8-byte command: 64 bytes of frame payload, 96 aligned
EVENT = 96  # the NewLeadershipTermEvent that opens each term
CLOSE_EVENT = 96  # a SessionCloseEvent: 28 bytes of block behind the 8-byte message header, 96 aligned
ELECTION_TIMEOUT_S = 30.0  # far above a 2 s heartbeat timeout, on a machine shared with other tests
COMMIT_TIMEOUT_S = 20.0
# a node restarted within the mark files' liveness timeout (10 s) of a kill -9 waits for them to go stale
RESTART_TIMEOUT_S = 45.0
LIVE_TIMEOUT_S = 10.0  # commits take well under a second: enough to tell that they do not come


MakeCluster = Callable[..., ProcessCluster]


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[MakeCluster]:
    """Clusters made in the test, every member stopped by pid when it ends, pass or fail."""
    made: list[ProcessCluster] = []

    def make(nodes: int, settings: dict[str, object] | None = None) -> ProcessCluster:
        cluster = ProcessCluster(tmp_path / f"cluster{len(made)}", nodes, {**FAST, **(settings or {})})
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


def _diagnosis(cluster: ProcessCluster) -> str:
    events = "\n".join(f"  {e.received_s:.3f} {e.member}: {e.text}" for e in cluster.view.events()[-40:])
    return f"statuses: {cluster.view.statuses()}\nlast events:\n{events}\n{cluster.stderr_text()}"


def _at(cluster: ProcessCluster, members: list[int], position: int) -> Callable[[], bool]:
    """Whether every one of ``members`` has appended and committed exactly up to ``position``."""

    def check() -> bool:
        statuses = [cluster.view.status(member) for member in members]
        return all(
            status is not None and status.commit_position == position and status.append_position == position
            for status in statuses
        )

    return check


def _settle(cluster: ProcessCluster, members: list[int], position: int) -> NodeStatus:
    """Wait until ``members`` have elected a leader among them, completed the election in its term and
    committed its NewLeadershipTermEvent, which ends at ``position``; the leader's status."""
    assert cluster.wait_for(lambda: cluster.settled(members), ELECTION_TIMEOUT_S), _diagnosis(cluster)
    assert cluster.wait_for(_at(cluster, members, position), COMMIT_TIMEOUT_S), _diagnosis(cluster)
    leader = cluster.settled(members)
    assert leader is not None and leader.member in members, _diagnosis(cluster)
    return leader


def _commit(
    cluster: ProcessCluster, leader: NodeStatus, commands: range, members: list[int], start: int
) -> int:
    """Send ``commands`` to ``leader``, whose log is at ``start``, and wait until ``members`` have
    appended and committed them; the position they end at."""
    if cluster.session is None:  # the client's session opens first: its SessionOpenEvent is logged
        assert cluster.connect(COMMIT_TIMEOUT_S), _diagnosis(cluster)
        start += cluster.open_event_length
    end = start + len(commands) * ENTRY
    assert cluster.send(leader, commands, COMMIT_TIMEOUT_S), _diagnosis(cluster)
    assert cluster.wait_for(_at(cluster, members, end), COMMIT_TIMEOUT_S), _diagnosis(cluster)
    return end


def test_three_processes_elect_a_leader_replicate_and_commit_what_clients_send(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(3)
    cluster.start_all()
    leader = _settle(cluster, [0, 1, 2], EVENT)  # the first term's NewLeadershipTermEvent, committed
    statuses = [cluster.view.status(member) for member in range(3)]
    assert [(s.term, s.state) for s in statuses if s] == [(leader.term, "CLOSED")] * 3
    assert sorted(s.role for s in statuses if s) == ["FOLLOWER", "FOLLOWER", "LEADER"]
    _commit(cluster, leader, range(1, 21), [0, 1, 2], EVENT)
    # every election state change was an event line, from INIT to CLOSED; the leader's role change too
    for member in range(3):
        texts = [event.text for event in cluster.view.events(member)]
        assert texts[:2] == [
            "election INIT -> INIT: node start",
            "election INIT -> CANVASS: election started",
        ]
        assert texts[-1].startswith("election ") and " -> CLOSED: election complete" in texts[-1], texts
        assert (f"role LEADER in term {leader.term}" in texts) == (member == leader.member), texts
    assert cluster.close() == {0: 0, 1: 0, 2: 0}  # SIGTERM: every member closes in order, status 0


def test_kill_9_of_the_leader_elects_another_that_goes_on_committing(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)
    cluster.start_all()
    leader = _settle(cluster, [0, 1, 2], EVENT)
    end = _commit(cluster, leader, range(1, 6), [0, 1, 2], EVENT)
    assert cluster.kill(leader.member) == -signal.SIGKILL
    survivors = [member for member in range(3) if member != leader.member]
    successor = _settle(cluster, survivors, end + EVENT)  # nothing committed was lost
    assert successor.term > leader.term
    _commit(cluster, successor, range(6, 11), survivors, end + EVENT)


@dataclass
class Restarted:
    """A three-member cluster whose leader was killed with SIGKILL while the other two went on, then
    started again on its configuration and directories (``restarted``)."""

    cluster: ProcessCluster
    killed: int
    successor: NodeStatus
    end: int  # the log's end when the killed member was restarted
    caught_up: bool
    restart_after_s: float  # from the kill to the restart


@pytest.fixture(scope="module")
def restarted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restarted]:
    """One run shared by the restart tests (the restart waits out the mark files' liveness timeout)."""
    cluster = ProcessCluster(tmp_path_factory.mktemp("restart"), 3, FAST)
    try:
        cluster.start_all()
        leader = _settle(cluster, [0, 1, 2], EVENT)
        end = _commit(cluster, leader, range(1, 6), [0, 1, 2], EVENT)
        assert cluster.kill(leader.member) == -signal.SIGKILL
        killed_at = time.monotonic()
        survivors = [member for member in range(3) if member != leader.member]
        successor = _settle(cluster, survivors, end + EVENT)
        end = _commit(cluster, successor, range(6, 11), survivors, end + EVENT)
        restart_after_s = time.monotonic() - killed_at
        cluster.start(leader.member)  # the same configuration and directories: it recovers, then follows

        def caught_up() -> bool:
            # following in the successor's term, with all the successor holds (at least ``end``: on a
            # loaded machine the successor may have logged more since, e.g. a client session's timeout)
            status = cluster.view.status(leader.member)
            now = cluster.view.status(successor.member)
            return (
                status is not None
                and now is not None
                and (status.role, status.state, status.term) == ("FOLLOWER", "CLOSED", successor.term)
                and status.append_position == now.append_position >= end
            )

        yield Restarted(
            cluster,
            leader.member,
            successor,
            end,
            cluster.wait_for(caught_up, RESTART_TIMEOUT_S),
            restart_after_s,
        )
    finally:
        cluster.close()


def test_the_killed_leader_restarts_on_its_directories_and_catches_up(restarted: Restarted) -> None:
    cluster = restarted.cluster
    assert restarted.caught_up, _diagnosis(cluster)
    # it waited for its crashed predecessor's mark files to go stale, then recovered from its files --
    # if it started while they were live (within the 10 s liveness timeout of the kill, less the up to
    # 1 s since their last update; a loaded machine can take longer to get there)
    waited = (
        "which is no longer running; waiting up to 10 s" in cluster.stderr_path(restarted.killed).read_text()
    )
    assert waited or restarted.restart_after_s >= 9.0, restarted.restart_after_s
    status = cluster.view.status(restarted.killed)
    assert status is not None and status.commit_position >= restarted.end


def test_the_restarted_member_follows_the_live_log_after_catching_up(restarted: Restarted) -> None:
    cluster = restarted.cluster
    assert restarted.caught_up, _diagnosis(cluster)
    successor = cluster.view.status(restarted.successor.member)
    assert successor is not None
    end = successor.append_position
    assert cluster.send(restarted.successor, range(11, 16), COMMIT_TIMEOUT_S), _diagnosis(cluster)
    assert cluster.wait_for(_at(cluster, [0, 1, 2], end + 5 * ENTRY), LIVE_TIMEOUT_S), _diagnosis(cluster)


def test_five_processes_commit_with_two_followers_killed(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(5)
    cluster.start_all()
    everyone = list(range(5))
    leader = _settle(cluster, everyone, EVENT)
    end = _commit(cluster, leader, range(1, 4), everyone, EVENT)
    followers = [member for member in everyone if member != leader.member]
    for member in followers[:2]:
        cluster.kill(member)
    survivors = [leader.member, *followers[2:]]
    # the leader keeps its quorum (3 of 5): the same term goes on committing
    _commit(cluster, leader, range(4, 14), survivors, end)
    assert cluster.leader() is not None and cluster.leader().term == leader.term  # type: ignore[union-attr]


# --------------------------------------------------------------------------------- cluster up, describe


def _lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """A thread draining ``process``'s stdout into a queue (a node blocks when nobody reads)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in process.stdout:
                lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _kill_pids(pids: list[int]) -> None:
    """SIGKILL whichever of ``pids`` still runs (nodes orphaned by a ``cluster up`` that was killed)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_cluster_up_prints_its_members_then_runs_them_until_sigterm_and_describe_reads_a_node(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "up"
    base_port = free_base_port(3)
    pids: list[int] = []
    with spawn_tools(
        "cluster", "up", "--nodes", "3", "--dir", str(directory), "--base-port", str(base_port),
        "--set", "cluster.log.channel=aeron:udp?term-length=64k", "--set", "cluster.election.timeout=500ms",
        timeout_s=60,
    ) as process:  # fmt: skip
        try:
            lines = _lines(process)
            first = json.loads(lines.get(timeout=30))
            assert list(first) == ["members", "ingressEndpoints", "pids", "dirs"]
            pids = first["pids"]
            members = "|".join(
                f"{i},127.0.0.1:{base_port + 100 * i + 2},127.0.0.1:{base_port + 100 * i + 3},"
                f"127.0.0.1:{base_port + 100 * i + 4},127.0.0.1:{base_port + 100 * i + 5},"
                f"127.0.0.1:{base_port + 100 * i + 1}"
                for i in range(3)
            )
            assert first["members"] == members
            assert first["ingressEndpoints"] == ",".join(
                f"{i}=127.0.0.1:{base_port + 100 * i + 2}" for i in range(3)
            )
            assert first["dirs"] == [str(directory.absolute() / f"node{i}" / "cluster") for i in range(3)]
            for i, pid in enumerate(pids):  # in member-id order: member i's process runs node<i>.toml
                assert _command_line(pid)[-2:] == ["--config", str(directory.absolute() / f"node{i}.toml")]
            # then the members' own lines: a leader and two followers settle in one term
            latest: dict[int, dict[str, object]] = {}
            deadline = time.monotonic() + ELECTION_TIMEOUT_S
            while time.monotonic() < deadline:
                with contextlib.suppress(queue.Empty):
                    record = json.loads(lines.get(timeout=1))
                    if "role" in record:
                        latest[int(record["member"])] = record
                roles = sorted(f"{r['role']} {r['state']}" for r in latest.values())
                if roles == ["FOLLOWER CLOSED", "FOLLOWER CLOSED", "LEADER CLOSED"]:
                    break
            else:
                raise AssertionError(f"no leader settled: {latest}")
            os.kill(process.pid, signal.SIGTERM)
            assert process.wait(timeout=30) == 0
            assert process.stderr is not None
            err = process.stderr.read()
            assert "cluster up: member" not in err, err  # no member died or needed SIGKILL
            assert not any(_running(pid) for pid in pids)
        finally:
            _kill_pids(pids)
    assert sorted(path.name for path in directory.iterdir()) == [
        "node0", "node0.toml", "node1", "node1.toml", "node2", "node2.toml",
    ]  # fmt: skip
    described = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools",
            "cluster",
            "describe",
            str(directory / "node0" / "cluster"),
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    state = json.loads(described.stdout)
    assert list(state) == ["markFile", "nodeState", "recordingLog", "latestSnapshot"]
    assert state["latestSnapshot"] is None  # no snapshot was taken
    mark = state["markFile"]
    assert mark["componentType"] == "CONSENSUS_MODULE" and mark["memberId"] == 0
    assert mark["pid"] == pids[0] and mark["activityTimestamp"] == -1  # closed in order
    term = state["nodeState"]["candidateTerm"]["candidateTermId"]
    assert term >= 0
    entries = state["recordingLog"]
    assert [entry["type"] for entry in entries] == ["TERM"] * len(entries) and entries
    assert entries[-1]["leadershipTermId"] == term and entries[-1]["logPosition"] == -1
    assert entries[0]["termBaseLogPosition"] == 0 and entries[0]["recordingId"] == 0


def test_cluster_up_reports_a_member_that_dies_and_does_not_restart_it(tmp_path: Path) -> None:
    pids: list[int] = []
    with spawn_tools(
        "cluster", "up", "--nodes", "3", "--dir", str(tmp_path / "up"), "--base-port", str(free_base_port(3)),
        timeout_s=60,
    ) as process:  # fmt: skip
        try:
            lines = _lines(process)
            pids = json.loads(lines.get(timeout=30))["pids"]
            heard: set[int] = set()
            while heard != {0, 1, 2}:  # each node runs (and handles SIGTERM) once it prints
                heard.add(json.loads(lines.get(timeout=30))["member"])
            os.kill(pids[1], signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _running(pids[1]) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # cluster up looks at its members every 100 ms
            os.kill(process.pid, signal.SIGTERM)
            assert process.wait(timeout=30) == 1  # a member died: not a clean run
            assert process.stderr is not None
            err = process.stderr.read()
            assert f"cluster up: member 1 (pid {pids[1]}) killed by SIGKILL\n" in err, err
            assert err.count("cluster up:") == 1, err  # the others closed in order; nothing restarted
            assert not any(_running(pid) for pid in pids)
        finally:
            _kill_pids(pids)


def test_cluster_up_refuses_bad_arguments_with_one_error_line(tmp_path: Path) -> None:
    for args, message in [
        (["--nodes", "0"], "error: --nodes 0: a cluster has 1 to 64 members\n"),
        (["--nodes", "3", "--base-port", "65500"], "error: --base-port 65500: 3 members need ports"),
        (
            ["--nodes", "3", "--set", "cluster.election.timout=1s"],
            "error: cluster.election.timout: unknown key",
        ),
        (["--nodes", "3", "--set", "oops"], "error: --set 'oops': expected KEY=VALUE"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "tools", "cluster", "up", "--dir", str(tmp_path / "bad"), *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
        assert result.stdout == ""
    assert not (tmp_path / "bad").exists()  # nothing written, nothing started


# -------------------------------------------------------------------------------------- the node itself


def test_node_with_a_bad_config_exits_2_with_one_error_line_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "node0.toml"
    config.write_text(
        '[cluster]\nmember.id = 0\ndir = "d"\nmembers = "0,a:1,a:2,a:3,a:4,a:5"\nelection.timout = "1s"\n'
    )
    missing = tmp_path / "missing.toml"
    typo = "cluster.election.timout: unknown key; did you mean cluster.election.timeout?"
    for path, message in [
        (config, f"error: {config}: {typo}\n"),
        (missing, f"error: {missing}"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "tools", "node", "--config", str(path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
        assert result.stdout == ""
    assert not (tmp_path / "d").exists()  # a bad configuration creates nothing


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_a_stopped_node_restarts_on_its_directories_and_recovers(
    make_cluster: MakeCluster, signal_number: int
) -> None:
    # one member: its UDP log has no receiver; the archive's spy connects it (ssc=true)
    cluster = make_cluster(1)
    cluster.start(0)
    leader = _settle(cluster, [0], EVENT)
    end = _commit(cluster, leader, range(1, 11), [0], EVENT)
    if signal_number == signal.SIGTERM:
        assert cluster.stop(0) == 0  # closed in order, with status 0
        assert cluster.stderr_path(0).read_text().endswith("node 0 closed\n")
    else:
        assert cluster.kill(0) == -signal.SIGKILL  # the mark files stay active, the recording unfinished
    cluster.start(0)
    # all of the log survived, and the next term follows it; leading in the first election of its life,
    # the node closes the session it restored from its log (a SessionCloseEvent, TIMEOUT)
    again = _settle(cluster, [0], end + EVENT + CLOSE_EVENT)
    waited = "which is no longer running; waiting up to 10 s" in cluster.stderr_path(0).read_text()
    if signal_number == signal.SIGTERM:
        # the mark files were closed: it starts at once, without waiting for them to go stale
        assert not waited
    else:
        assert waited  # for the mark files of the process it replaces, gone without closing them
    assert again.term == leader.term + 1
    # the client hears of the close on its egress and opens a new session
    old = cluster.session
    assert old is not None
    assert cluster.wait_for(lambda: cluster.poll_session() is not old and old.is_closed, COMMIT_TIMEOUT_S)
    assert cluster.session is None
    _commit(cluster, again, range(11, 16), [0], end + EVENT + CLOSE_EVENT)
    assert cluster.stop(0) == 0


# --------------------------------------------------------------------------------- the node's stdout


class _Agent:
    """What ``NodeReporter.poll`` reads of a ``ConsensusModuleAgent``."""

    role, election_state, leadership_term_id, append_position, commit_position = "FOLLOWER", "INIT", -1, 0, 0


def test_node_status_lines_are_throttled_to_one_per_interval_and_always_show_the_last_state() -> None:
    out = io.StringIO()
    reporter = NodeReporter(3, out, interval_ns=100)
    agent = _Agent()
    assert reporter.poll(agent, 0) == 1  # type: ignore[arg-type]
    agent.commit_position = agent.append_position = 96
    assert reporter.poll(agent, 50) == 0  # type: ignore[arg-type]  # within the interval: held back
    agent.role, agent.election_state, agent.leadership_term_id = "LEADER", "CLOSED", 0
    assert reporter.poll(agent, 99) == 0  # type: ignore[arg-type]
    assert reporter.poll(agent, 100) == 1  # type: ignore[arg-type]  # the interval is over: the latest
    assert reporter.poll(agent, 500) == 0  # type: ignore[arg-type]  # nothing changed
    agent.append_position = 192
    assert reporter.poll(agent, 600) == 0  # type: ignore[arg-type]  # the append position alone: no line
    reporter.on_event(LogEvent(7, "role LEADER in term 0"))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    keys = ["member", "role", "state", "term", "appendPosition", "commitPosition"]
    assert [list(line) for line in lines] == [keys, keys, ["member", "timeNs", "event"]]
    assert [list(line.values()) for line in lines] == [
        [3, "FOLLOWER", "INIT", -1, 0, 0],
        [3, "LEADER", "CLOSED", 0, 96, 96],
        [3, 7, "role LEADER in term 0"],
    ]


def test_a_closed_stdout_stops_the_node_through_its_callback_and_never_raises() -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    stops: list[bool] = []
    reporter = NodeReporter(0, Closed(), on_broken=lambda: stops.append(True))
    reporter.on_event(LogEvent(1, "election INIT -> INIT: node start"))
    reporter.on_event(LogEvent(2, "election INIT -> CANVASS: election started"))
    assert reporter.poll(_Agent(), 0) == 1  # type: ignore[arg-type]
    assert reporter.is_broken and stops == [True]  # told once; nothing more written


# ----------------------------------------------------------------------------- a crash's mark files


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


@pytest.mark.parametrize(
    ("owner", "waits"),
    [("dead", True), ("this process", True), ("running", False)],
)
def test_a_node_waits_out_an_active_mark_file_only_when_its_owner_is_gone(
    tmp_path: Path, owner: str, waits: bool
) -> None:
    pid = {"dead": _dead_pid(), "this process": os.getpid(), "running": os.getppid()}[owner]
    storage = RealStorage(tmp_path, create=True)
    mark = ClusterMarkFile.create(
        storage, member_id=0, cluster_id=0, pid=pid, now_ms=int(time.time() * 1000), aeron_directory="",
        control_channel="aeron:ipc",
    )  # fmt: skip
    try:
        err = io.StringIO()
        started = time.monotonic()
        await_stale_mark_files(
            [(storage, CLUSTER_MARK_FILE_NAME)], member_id=4, liveness_timeout_ms=300, err=err
        )
        elapsed = time.monotonic() - started
        if waits:  # until the timestamp is older than the liveness timeout, and said so once
            assert 0.2 < elapsed < 1.5
            assert err.getvalue() == (
                f"node 4: {tmp_path}/cluster-mark.dat was left active by pid {pid}, which is no longer "
                "running; waiting up to 0.3 s for it to go stale\n"
            )
        else:  # a live owner: the node's start refuses it at once, naming the pid
            assert elapsed < 0.2 and err.getvalue() == ""
    finally:
        mark.close()


def _stop_log_recording(cluster: ProcessCluster, member: int) -> int:
    """Stop member ``member`` 's log recording from outside, through its archive (a control session of
    this test's own, ``StopRecordingByIdentity``); the recording's id."""
    config = cluster.configs[member]
    term = RecordingLogFile.read(RealStorage(config.cluster_dir)).log.find_last_term()
    assert term is not None
    with Transport(config=TransportConfig(bind_host="127.0.0.1")) as transport:
        client = ArchiveClient.connect(
            transport,
            control_request_channel=f"aeron:udp?endpoint={config.member.archive}",
            control_request_stream_id=DEFAULT_CONTROL_STREAM_ID,
            control_response_channel="aeron:udp?endpoint=127.0.0.1:0",
            invoker=transport.do_work,
        )
        try:
            assert client.try_stop_recording_by_identity(term.recording_id)
        finally:
            client.close()
    return term.recording_id


def test_a_leader_whose_log_recording_is_stopped_from_outside_enters_an_election(
    make_cluster: MakeCluster,
) -> None:
    """ClusterTest's shouldEnterElectionWhenRecordingStopsUnexpectedlyOnLeader: an operator stops the
    leader's log recording through its archive; the leader says so and enters an election, after which
    the cluster has a leader and two followers again, records its log and commits."""
    cluster = make_cluster(3)
    cluster.start_all()
    leader = _settle(cluster, [0, 1, 2], EVENT)
    end = _commit(cluster, leader, range(1, 6), [0, 1, 2], EVENT)
    recording_id = _stop_log_recording(cluster, leader.member)
    stopped = f"the log recording {recording_id} stopped at {end} unexpectedly"

    def told() -> bool:
        return any(event.text == stopped for event in cluster.view.events(leader.member))

    assert cluster.wait_for(told, COMMIT_TIMEOUT_S), _diagnosis(cluster)
    texts = [event.text for event in cluster.view.events(leader.member)]
    assert any(text.startswith("election CLOSED -> INIT: " + stopped) for text in texts), texts
    successor = _settle(cluster, [0, 1, 2], end + EVENT)  # the new term's NewLeadershipTermEvent, committed
    assert successor.term > leader.term
    _commit(cluster, successor, range(6, 11), [0, 1, 2], end + EVENT)
