"""``python -m tools bench recovery``: how long a cluster takes to restart from a snapshot, against the
same cluster restarting by replaying its whole log, in one run.

Three ``python -m tools node`` processes on 127.0.0.1 run the key-value service
(``tools.node_processes.ProcessCluster``: real UDP, real files in a temporary directory). A client in
this process writes ``--keys`` distinct keys, at most ``WINDOW`` writes in flight, each acknowledged by
the service's reply. Two such clusters are loaded alike, one after the other:

* **from the snapshot**: after the keys, a snapshot through the admin path of ``python -m tools cluster
  snapshot DIR`` (``tools.cluster_control.request_action(..., SNAPSHOT)`` on the leader's cluster
  directory), timed from the request to the node's DONE -- every member has recorded its snapshot and
  named it in its recording log;
* **full replay**: no snapshot, ever.

Each then takes ``--tail`` more writes (new keys), closes the client's session, and is stopped with
``request_action(..., ABORT)`` (``cluster abort DIR``: every member stops at the same log position, with
no snapshot, and exits 0). So both logs hold the same writes and both services the same state; the logs
differ only by the snapshot's ClusterActionRequest entry. Then every member is started again on its
directories and the restart is timed, from the first spawn to the moment both have happened:

* every member has completed its election in one term (its "election ... -> CLOSED" event), and
* a new client session, opened as soon as a member leads, got the reply to a read of the last key
  written, holding the value written -- the service answers a request only after it has applied every
  entry before it in the log, so the reply proves the leader's service has caught up.

Each member must say ``starting from the snapshot at P`` in the first restart and must not in the second.
A third cluster, **baseline**, is loaded with one write and restarted the same way: its restart is the
fixed cost both others include (interpreters starting, the archive and the election, a session).

The members run with a bytecode cache (``node_environment``: ``PYTHONPYCACHEPREFIX`` in the benchmark's
directory, ``PYTHONDONTWRITEBYTECODE`` unset), as an installed package has its modules compiled: the
first starts fill it, every timed restart reads it. Without it, each restart of each member would compile
every module it imports again, about a second of CPU apiece -- a cost of the environment, not of recovery.

Every phase has a deadline (``_budget_s``), and every process is stopped by its pid at the end, whatever
happened. A benchmark is not a test: the target -- the restart from the snapshot at least ``TARGET``
times faster than the full replay -- is printed as met or missed, and the exit status stays 0; 1 when a
phase could not be done.

Why not one cluster whose snapshot is invalidated (``cluster invalidate-latest-snapshot``) before a
second restart: its log holds the snapshot's ClusterActionRequest, and a full replay takes that snapshot
again on every member; on the leader this stalled the service (docs/recovery-benchmark.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # imported when the benchmark runs, not when ``bench`` builds its parser
    from cluster.client.aeron_cluster import AeronCluster
    from cluster.client.protocol import Event
    from cluster.consensus.core.cluster_actions import ToggleState
    from tools.node_processes import NodeStatus, ProcessCluster

__all__ = ["TARGET", "RecoveryResult", "Restart", "configure", "format_text", "measure", "run"]

MEMBERS: Final = 3
DEFAULT_KEYS: Final = 100_000
DEFAULT_TAIL: Final = 1_000
TARGET: Final = 5.0
"""The restart from a snapshot must be at least this many times faster than the full replay."""
WINDOW: Final = 256
"""Writes in flight at most while loading."""
VALUE_LENGTH: Final = 16
STARTUP_TIMEOUT_S: Final = 90.0  # three interpreters starting and an election, on a busy machine
PROGRESS_TIMEOUT_S: Final = 30.0  # a load with no reply for this long has stalled
SECONDS_PER_KEY: Final = 0.005
"""With ``STARTUP_TIMEOUT_S``, the deadline of a snapshot, a stop and a restart (``_budget_s``): some
ten times what a full replay takes on a busy 2-core machine."""
EXIT_TIMEOUT_S: Final = 30.0
SNAPSHOT_EVENT: Final = "starting from the snapshot at "
TERMINATED_EVENT: Final = "terminated at "


class RecoveryError(Exception):
    """A phase could not be done: the cluster did not come up, a write was not answered, an action was
    refused, a restart took the wrong path."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keys",
        type=int,
        default=DEFAULT_KEYS,
        metavar="N",
        help=f"distinct keys written before the snapshot (default {DEFAULT_KEYS:,})",
    )
    parser.add_argument(
        "--tail",
        type=int,
        default=DEFAULT_TAIL,
        metavar="N",
        help=f"writes after the snapshot, replayed on top of it (default {DEFAULT_TAIL:,})",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object last")


@dataclass(frozen=True, slots=True)
class Restart:
    """One restart of every member; times in seconds from the first spawn."""

    log_bytes: int
    """The log position every member stopped at, before this restart."""
    from_snapshot: int | None
    """The position of the snapshot every member said it started from (``None``: none did)."""
    leader_s: float
    """The leader's election complete."""
    settled_s: float
    """Every member's election complete."""
    read_s: float
    """The read's reply came."""
    snapshot_read_s: float | None = None
    """The last member said it starts from the snapshot: its consensus module has read the snapshots."""

    @property
    def total_s(self) -> float:
        """The restart time: every member in the new term and the read answered."""
        return max(self.settled_s, self.read_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "logBytes": self.log_bytes,
            "fromSnapshot": self.from_snapshot,
            "leaderSeconds": round(self.leader_s, 3),
            "allMembersSeconds": round(self.settled_s, 3),
            "readSeconds": round(self.read_s, 3),
            "restartSeconds": round(self.total_s, 3),
            "snapshotReadSeconds": None if self.snapshot_read_s is None else round(self.snapshot_read_s, 3),
        }


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    keys: int
    tail: int
    load_s: float
    """The first cluster's load of ``keys`` keys."""
    snapshot_s: float
    snapshot_position: int
    from_snapshot: Restart
    full_replay: Restart
    baseline: Restart

    @property
    def ratio(self) -> float:
        """Full replay / from the snapshot: how many times faster the snapshot made the restart."""
        return self.full_replay.total_s / self.from_snapshot.total_s

    @property
    def status(self) -> str:
        return "ok" if self.ratio >= TARGET else "MISSED"

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": "recovery",
            "python": _environment(),
            "members": MEMBERS,
            "keys": self.keys,
            "tailWrites": self.tail,
            "loadSeconds": round(self.load_s, 3),
            "snapshotSeconds": round(self.snapshot_s, 3),
            "snapshotPosition": self.snapshot_position,
            "logBytes": self.from_snapshot.log_bytes,
            "restartFromSnapshotSeconds": round(self.from_snapshot.total_s, 3),
            "restartFullReplaySeconds": round(self.full_replay.total_s, 3),
            "restartBaselineSeconds": round(self.baseline.total_s, 3),
            "ratio": round(self.ratio, 3),
            "target": TARGET,
            "status": self.status,
            "fromSnapshot": self.from_snapshot.to_json(),
            "fullReplay": self.full_replay.to_json(),
            "baseline": self.baseline.to_json(),
        }


def _environment() -> str:
    return f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}"


def _budget_s(keys: int) -> float:
    return STARTUP_TIMEOUT_S + keys * SECONDS_PER_KEY


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _key(index: int) -> bytes:
    return b"key-%08d" % index


def _value(index: int) -> bytes:
    return (b"value-%d-" % index).ljust(VALUE_LENGTH, b".")


# ------------------------------------------------------------------------------------------ client


class KvClient:
    """Requests to the key-value service through one session, at most ``window`` in flight; each
    answered by its reply, matched by request id."""

    def __init__(self, cluster: ProcessCluster, session: AeronCluster) -> None:
        self.cluster = cluster
        self.session = session
        self.pending: dict[int, bytes] = {}
        """Request id -> the value its reply must carry."""
        self.answered = 0
        self.next_id = 1

    def _on_event(self, event: Event) -> None:
        from cluster.client.protocol import Message
        from cluster.service.kv import Status, decode_reply

        if type(event) is not Message:
            return
        reply = decode_reply(event.payload)
        expected = self.pending.pop(reply.request_id, None)
        if expected is None:
            raise RecoveryError(f"a reply to no request in flight: {reply}")
        if reply.status != Status.OK or reply.value != expected:
            raise RecoveryError(f"request {reply.request_id}: {reply}, expected OK {expected!r}")
        self.answered += 1

    def _work(self) -> int:
        work = self.session.poll_egress(self._on_event, 256)
        return work + self.cluster.transport.do_work()

    def _offer(self, payload: bytes, expected: bytes, deadline: float) -> int:
        """Offer one request (retrying on back-pressure until ``deadline``); its id."""
        request_id = self.next_id
        while self.session.offer(payload) <= 0:
            if time.monotonic() >= deadline:
                raise RecoveryError(f"the leader's ingress took no request for {PROGRESS_TIMEOUT_S:g} s")
            if self._work() == 0:
                time.sleep(0.0005)
        self.next_id += 1
        self.pending[request_id] = expected
        return request_id

    def write_all(self, first: int, count: int, window: int) -> None:
        """Write keys ``first .. first + count - 1`` and wait for every reply."""
        from cluster.service.kv import encode_write

        index, end = first, first + count
        deadline = time.monotonic() + PROGRESS_TIMEOUT_S
        while index < end or self.pending:
            answered = self.answered
            while index < end and len(self.pending) < window:
                value = _value(index)
                self._offer(encode_write(self.next_id, _key(index), value), value, deadline)
                index += 1
            if self._work() == 0:
                time.sleep(0.0002)
            if self.answered != answered:
                deadline = time.monotonic() + PROGRESS_TIMEOUT_S
            elif time.monotonic() >= deadline:
                raise RecoveryError(
                    f"{len(self.pending)} writes unanswered for {PROGRESS_TIMEOUT_S:g} s "
                    f"({self.answered} answered)"
                )

    def read(self, index: int, timeout_s: float) -> None:
        """Read key ``index`` and wait for its reply, which must hold the value written to it."""
        from cluster.service.kv import encode_read

        deadline = time.monotonic() + timeout_s
        self._offer(encode_read(self.next_id, _key(index)), _value(index), deadline)
        while self.pending:
            if time.monotonic() >= deadline:
                raise RecoveryError(f"the read of key {index} was not answered within {timeout_s:g} s")
            if self._work() == 0:
                time.sleep(0.0002)


# ------------------------------------------------------------------------------------------ phases


def _settled_and_committed(cluster: ProcessCluster, timeout_s: float) -> NodeStatus:
    """The leader, once every member is in its term and all have committed all the leader appended."""

    def ready() -> bool:
        leader = cluster.settled()
        if leader is None or len(cluster.view.statuses()) < MEMBERS:
            return False
        return all(
            status.commit_position == status.append_position == leader.append_position
            for status in cluster.view.statuses().values()
        )

    if not cluster.wait_for(ready, timeout_s):
        raise RecoveryError(f"no settled cluster within {timeout_s:g} s: {cluster.view.statuses()}")
    leader = cluster.settled()
    assert leader is not None
    return leader


def _session(cluster: ProcessCluster, timeout_s: float) -> KvClient:
    if not cluster.connect(timeout_s):
        raise RecoveryError(f"the client could not open a session: {cluster.view.statuses()}")
    assert cluster.session is not None
    return KvClient(cluster, cluster.session)


def _close_session(cluster: ProcessCluster) -> None:
    """Close the client's session (its close is logged, so no restart restores it)."""
    if cluster.session is not None:
        cluster.session.close()
        cluster.session = None


def _take_snapshot(cluster: ProcessCluster, leader: NodeStatus, timeout_s: float) -> tuple[float, int]:
    """Seconds from the request to DONE (``cluster snapshot DIR``), and the snapshot's log position."""
    from cluster.consensus.core.cluster_actions import ToggleState
    from cluster.consensus.files import RecordingLogFile
    from cluster.storage import RealStorage

    started = time.monotonic()
    _request(cluster, leader, ToggleState.SNAPSHOT, timeout_s)
    elapsed = time.monotonic() - started
    storage = RealStorage(Path(cluster.configs[leader.member].cluster_dir))
    entries = RecordingLogFile.read(storage).log.latest_snapshots(1)
    if not entries:
        raise RecoveryError("SNAPSHOT: DONE, but the leader's recording log names no snapshot")
    return elapsed, entries[0].log_position


def _request(cluster: ProcessCluster, leader: NodeStatus, action: ToggleState, timeout_s: float) -> None:
    """``request_action`` on the leader's cluster directory, the client's transport kept running while it
    waits; ``RecoveryError`` if the node refuses."""
    from cluster.storage import RealStorage
    from tools.cluster_control import ControlRefused, request_action

    storage = RealStorage(Path(cluster.configs[leader.member].cluster_dir))
    try:
        request_action(
            storage,
            action,
            timeout_s=timeout_s,
            sleep=lambda seconds: cluster.wait_for(lambda: False, seconds),
        )
    except ControlRefused as refused:
        raise RecoveryError(f"{action.name}: {refused}") from None


def _stop(cluster: ProcessCluster, timeout_s: float) -> int:
    """Close the client's session, wait until every member has committed all, then stop the cluster with
    ABORT (``cluster abort DIR``: every member at the same position, no snapshot); that position, as the
    members' "terminated at P" events say."""
    from cluster.consensus.core.cluster_actions import ToggleState

    _close_session(cluster)
    leader = _settled_and_committed(cluster, timeout_s)
    since = time.monotonic()
    _request(cluster, leader, ToggleState.ABORT, timeout_s)
    for member_id, process in sorted(cluster.processes.items()):
        status = process.wait(EXIT_TIMEOUT_S)
        cluster.stop(
            member_id
        )  # reaps it (SIGTERM, then SIGKILL, had it not exited) and reads its last lines
        if status != 0:
            raise RecoveryError(f"member {member_id} did not exit 0 after the abort: {status}")
    positions = set()
    for member_id in range(MEMBERS):
        said = [e.text for e in cluster.view.events(member_id) if e.received_s >= since]
        positions |= {int(text.split()[2]) for text in said if text.startswith(TERMINATED_EVENT)}
    if len(positions) != 1:
        raise RecoveryError(f"the members did not all say where they stopped, at one position: {positions}")
    return positions.pop()


def _closed_s(cluster: ProcessCluster, member_id: int, since: float) -> float | None:
    """When this process read member ``member_id``'s first "election ... -> CLOSED" event after
    ``since`` (its election complete), if it did."""
    for event in cluster.view.events(member_id):
        if event.received_s >= since and event.text.startswith("election ") and "-> CLOSED" in event.text:
            return event.received_s
    return None


def _snapshot_loaded(cluster: ProcessCluster, member_id: int, since: float) -> tuple[int, float] | None:
    """The position of the snapshot member ``member_id`` said it started from after ``since``, and when
    this process read that, if it did."""
    for event in cluster.view.events(member_id):
        if event.received_s >= since and event.text.startswith(SNAPSHOT_EVENT):
            return int(event.text[len(SNAPSHOT_EVENT) :].split()[0]), event.received_s
    return None


def _timed_restart(cluster: ProcessCluster, log_bytes: int, last_key: int, timeout_s: float) -> Restart:
    """Start every member; time the leader's election, every member's, and a read of ``last_key`` by a
    session opened once a member leads (one opened earlier would wait out its connect timeout)."""
    started = time.monotonic()
    cluster.start_all()
    if not cluster.wait_for(cluster.leader, timeout_s):
        raise RecoveryError(f"no member led within {timeout_s:g} s of the restart: {cluster.view.statuses()}")
    client = _session(cluster, timeout_s)
    client.read(last_key, timeout_s)
    read_s = time.monotonic() - started

    def all_closed() -> bool:
        return all(_closed_s(cluster, member_id, started) is not None for member_id in range(MEMBERS))

    # the events say when each member's election ended; the status lines, which name the term, are
    # throttled and may come a moment later
    if not cluster.wait_for(lambda: all_closed() and cluster.settled() is not None, timeout_s):
        raise RecoveryError(f"the members did not all join one term: {cluster.view.statuses()}")
    leader = cluster.settled()
    assert leader is not None
    closed = {member_id: _closed_s(cluster, member_id, started) or 0.0 for member_id in range(MEMBERS)}
    loaded = [_snapshot_loaded(cluster, member_id, started) for member_id in range(MEMBERS)]
    positions = {None if said is None else said[0] for said in loaded}
    read_at = [said[1] for said in loaded if said is not None]
    if len(positions) != 1:
        raise RecoveryError(f"the members did not start from the same snapshot: {positions}")
    return Restart(
        log_bytes,
        positions.pop(),
        leader_s=closed[leader.member] - started,
        settled_s=max(closed.values()) - started,
        read_s=read_s,
        snapshot_read_s=max(read_at) - started if read_at else None,
    )


@dataclass(frozen=True, slots=True)
class Loaded:
    """A cluster loaded and stopped: the load's seconds, the snapshot's (``None``: none was taken), and
    the log position every member stopped at."""

    load_s: float
    snapshot_s: float | None
    snapshot_position: int | None
    log_bytes: int


def _load_and_stop(
    cluster: ProcessCluster, keys: int, tail: int, *, snapshot: bool, note: Callable[[str], object]
) -> Loaded:
    """Start the members, write ``keys`` keys, take a snapshot if asked, write ``tail`` more, stop."""
    cluster.start_all()
    _settled_and_committed(cluster, STARTUP_TIMEOUT_S)
    client = _session(cluster, STARTUP_TIMEOUT_S)
    started = time.monotonic()
    client.write_all(0, keys, WINDOW)
    load_s = time.monotonic() - started
    if keys:
        note(f"wrote {keys:,} keys in {load_s:.2f} s ({keys / load_s:,.0f}/s)")
    snapshot_s = snapshot_position = None
    if snapshot:
        leader = _settled_and_committed(cluster, STARTUP_TIMEOUT_S)
        snapshot_s, snapshot_position = _take_snapshot(cluster, leader, _budget_s(keys))
        note(f"snapshot at {snapshot_position:,} in {snapshot_s:.2f} s")
    client.write_all(keys, tail, WINDOW)
    log_bytes = _stop(cluster, _budget_s(keys))
    note(f"{tail:,} more writes; every member stopped at {log_bytes:,}")
    return Loaded(load_s, snapshot_s, snapshot_position, log_bytes)


def node_environment(cache: Path) -> dict[str, str]:
    """This process's environment for the members, with the bytecode cache ``cache`` (module docstring)."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def measure(
    directory: Path, keys: int, tail: int, *, note: Callable[[str], object] = lambda text: None
) -> RecoveryResult:
    """Load the clusters alike, one with a snapshot, and time the restart of each (module docstring)."""
    from tools.node_processes import ProcessCluster

    settings = {"cluster.service.class": "kv"}
    last_key = keys + tail - 1
    budget_s = _budget_s(keys)
    env = node_environment(directory / "pycache")

    with ProcessCluster(directory / "from-snapshot", MEMBERS, settings, env=env) as cluster:
        loaded = _load_and_stop(cluster, keys, tail, snapshot=True, note=note)
        from_snapshot = _timed_restart(cluster, loaded.log_bytes, last_key, budget_s)
        note(f"restart from the snapshot: {from_snapshot.total_s:.2f} s")
    if from_snapshot.from_snapshot != loaded.snapshot_position:
        raise RecoveryError(
            f"the restart did not start from the snapshot at {loaded.snapshot_position}, but from "
            f"{from_snapshot.from_snapshot}"
        )
    with ProcessCluster(directory / "full-replay", MEMBERS, settings, env=env) as cluster:
        replayed = _load_and_stop(cluster, keys, tail, snapshot=False, note=note)
        full_replay = _timed_restart(cluster, replayed.log_bytes, last_key, budget_s)
        note(f"restart by full replay: {full_replay.total_s:.2f} s")
    if full_replay.from_snapshot is not None:
        raise RecoveryError(f"the full replay started from a snapshot at {full_replay.from_snapshot}")
    with ProcessCluster(directory / "baseline", MEMBERS, settings, env=env) as cluster:
        empty = _load_and_stop(cluster, 0, 1, snapshot=False, note=note)
        baseline = _timed_restart(cluster, empty.log_bytes, 0, budget_s)
        note(f"restart of the baseline: {baseline.total_s:.2f} s")
    assert loaded.snapshot_s is not None and loaded.snapshot_position is not None
    return RecoveryResult(
        keys,
        tail,
        loaded.load_s,
        loaded.snapshot_s,
        loaded.snapshot_position,
        from_snapshot,
        full_replay,
        baseline,
    )


# ------------------------------------------------------------------------------------------ output


def format_text(result: RecoveryResult) -> str:
    rows = [
        ("from the snapshot", result.from_snapshot),
        ("full log replay", result.full_replay),
        ("baseline (one write)", result.baseline),
    ]
    width = max(len(name) for name, _ in rows)
    heads = ("log bytes", "leader s", "all in term s", "read s", "restart s")
    lines = [
        f"recovery benchmark: {MEMBERS} member processes on 127.0.0.1, key-value service, {_environment()}, "
        "bytecode cached",
        f"  {result.keys:,} keys written in {result.load_s:.2f} s; snapshot at log position "
        f"{result.snapshot_position:,} in {result.snapshot_s:.2f} s (request to DONE); "
        f"{result.tail:,} writes after it",
        "",
        f"  {'restart':{width}}  " + "  ".join(f"{head:>13}" for head in heads),
    ]
    for name, restart in rows:
        figures = (restart.leader_s, restart.settled_s, restart.read_s, restart.total_s)
        lines.append(
            f"  {name:{width}}  {restart.log_bytes:>13,}  "
            + "  ".join(f"{value:>13.2f}" for value in figures)
        )
    verdict = "met" if result.status == "ok" else "MISSED"
    if result.from_snapshot.snapshot_read_s is not None:
        lines.append(
            "  from the snapshot: every member's consensus module had read the snapshots by "
            f"{result.from_snapshot.snapshot_read_s:.2f} s"
        )
    lines += [
        "",
        f"  ratio full replay / from the snapshot: {result.ratio:.2f}x (target >= {TARGET:g}x): {verdict}",
        "  (seconds from the first spawn: the leader's election complete, every member's, the reply to a",
        "  read of the last key written; restart: the later of the last two)",
    ]
    return "\n".join(lines)


class _UsageError(ValueError):
    is_user_error = True


def run(args: argparse.Namespace) -> int:
    if args.keys < 1:
        raise _UsageError(f"--keys {args.keys}: must be at least 1")
    if args.tail < 1:
        raise _UsageError(f"--tail {args.tail}: must be at least 1")
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as directory:
        try:
            result = measure(Path(directory), args.keys, args.tail, note=_progress)
        except RecoveryError as error:
            print(f"recovery benchmark: {error}", file=sys.stderr)
            return 1
    print(format_text(result))
    if args.json:
        print(json.dumps(result.to_json()))
    sys.stdout.flush()
    return 0
