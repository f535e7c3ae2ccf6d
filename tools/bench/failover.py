"""``python -m tools bench failover``: how long a cluster of real processes takes to commit again after
its leader is killed.

Three ``python -m tools node`` processes on 127.0.0.1 (``tools.node_processes.ProcessCluster``: a
local cluster's configurations in a temporary directory, real UDP, real files), with Aeron's default
timeouts or the given leader heartbeat timeout. Once a leader leads and every member has completed
the election, commands go through the client's session to the leader until every
member has committed them. Then the leader is killed with SIGKILL, and the benchmark watches the
survivors' lines (docs/node.md) for

* the first election event of a survivor (it noticed: about one leader heartbeat timeout),
* a survivor leading a later term with its election complete,
* the first commit position beyond the one before the kill -- **the failover time**: the new leader's
  NewLeadershipTermEvent is committed, so the cluster is committing again,
* and a command sent to the new leader as soon as it leads, committed.

Each time is measured from the kill to the moment this process read the line, so it includes the
node's output path: a status line is printed at most once per 100 ms (``tools.node_cmd``), which
bounds the error. Every phase has a deadline (start-up, then twice the heartbeat timeout and half a
minute for the failover), and every process is stopped by its pid at the end, whatever happened.
A benchmark is not a test: a failover that does not complete is reported, with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # imported when the benchmark runs, not when ``bench`` builds its parser
    from tools.node_processes import NodeStatus, ProcessCluster

MEMBERS: Final = 3
STARTUP_TIMEOUT_S: Final = 90.0  # three interpreters starting and an election, on a busy machine
WARMUP_COMMANDS: Final = 10
RESEND_INTERVAL_S: Final = 1.0
NS_PER_S: Final = 1_000_000_000


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--heartbeat-timeout",
        metavar="DURATION",
        default=None,
        help='the members\' cluster.leader.heartbeat.timeout, as in a config file ("2s", "500ms"); '
        "default: Aeron's 10s",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


@dataclass(frozen=True, slots=True)
class FailoverResult:
    """One failover; times in seconds after the kill (``None``: not seen before the deadline)."""

    members: int
    leader_heartbeat_timeout_ns: int
    election_timeout_ns: int
    killed_member: int
    killed_term: int
    commit_before_kill: int
    new_leader: int | None
    new_term: int | None
    election_started_s: float | None
    leader_elected_s: float | None
    first_commit_s: float | None
    command_commit_s: float | None

    @property
    def complete(self) -> bool:
        return self.first_commit_s is not None and self.command_commit_s is not None

    def to_json(self) -> dict[str, Any]:
        names = {
            "members": "members",
            "leader_heartbeat_timeout_ns": "leaderHeartbeatTimeoutNs",
            "election_timeout_ns": "electionTimeoutNs",
            "killed_member": "killedMember",
            "killed_term": "killedTerm",
            "commit_before_kill": "commitBeforeKill",
            "new_leader": "newLeader",
            "new_term": "newTerm",
            "election_started_s": "electionStartedS",
            "leader_elected_s": "leaderElectedS",
            "first_commit_s": "firstCommitS",
            "command_commit_s": "commandCommitS",
        }
        values = {
            names[key]: round(value, 4) if isinstance(value, float) else value
            for key, value in asdict(self).items()
        }
        return {"benchmark": "failover", **values}


class FailoverError(Exception):
    """The cluster never got to the point where a failover can be measured."""


def _entry_lengths() -> tuple[int, int]:
    """The framed lengths in the log of a client's command and of a NewLeadershipTermEvent."""
    from cluster.session_message import SESSION_HEADER_LENGTH
    from cluster.transport.logbuffer import HEADER_LENGTH, align
    from generated import aeron_cluster_codecs as codecs

    event = codecs.HEADER_SIZE + codecs.NewLeadershipTermEventEncoder.BLOCK_LENGTH
    return align(HEADER_LENGTH + SESSION_HEADER_LENGTH + 8), align(HEADER_LENGTH + event)


def _settled_and_committed(cluster: ProcessCluster, timeout_s: float, least: int = 1) -> NodeStatus:
    """The leader, once every member is in its term and all have committed all the leader appended, at
    least ``least`` bytes of log."""

    def ready() -> bool:
        leader = cluster.settled()
        if leader is None or len(cluster.view.statuses()) < MEMBERS:
            return False
        return all(
            status.commit_position == status.append_position == leader.append_position >= least
            for status in cluster.view.statuses().values()
        )

    if not cluster.wait_for(ready, timeout_s):
        raise FailoverError(f"no settled cluster within {timeout_s:.0f} s: {cluster.view.statuses()}")
    leader = cluster.settled()
    assert leader is not None
    return leader


def measure(directory: Path, heartbeat_timeout: str | None) -> FailoverResult:
    """Start the members, commit, kill the leader and time the failover (see the module docstring)."""
    from tools.node_processes import ProcessCluster

    settings = {} if heartbeat_timeout is None else {"cluster.leader.heartbeat.timeout": heartbeat_timeout}
    entry_length, event_length = _entry_lengths()
    with ProcessCluster(directory, MEMBERS, settings) as cluster:
        config = cluster.configs[0]
        cluster.start_all()
        leader = _settled_and_committed(cluster, STARTUP_TIMEOUT_S)
        if not cluster.connect(STARTUP_TIMEOUT_S):
            raise FailoverError(f"the client could not open a session: {cluster.view.statuses()}")
        # its SessionOpenEvent committed (the status lines are throttled: one may still show the log
        # without it)
        leader = _settled_and_committed(cluster, STARTUP_TIMEOUT_S, event_length + cluster.open_event_length)
        if not cluster.send(leader, range(WARMUP_COMMANDS), STARTUP_TIMEOUT_S):
            raise FailoverError(f"the leader's ingress took no command: {cluster.view.statuses()}")
        warm_end = leader.append_position + WARMUP_COMMANDS * entry_length

        def warmed() -> bool:
            statuses = cluster.view.statuses().values()
            return len(statuses) == MEMBERS and all(s.commit_position == warm_end for s in statuses)

        if not cluster.wait_for(warmed, STARTUP_TIMEOUT_S):
            raise FailoverError(f"the commands were not committed: {cluster.view.statuses()}")
        survivors = [member for member in range(MEMBERS) if member != leader.member]

        killed_at = time.monotonic()
        cluster.kill(leader.member)
        deadline = killed_at + 2 * config.leader_heartbeat_timeout_ns / NS_PER_S + 30
        command_end = warm_end + event_length + entry_length  # the new term's event, then a command
        started = elected = first_commit = command_commit = None
        successor: NodeStatus | None = None
        sent_at: float | None = None
        command = WARMUP_COMMANDS
        while command_commit is None and time.monotonic() < deadline:
            if cluster.transport.do_work() == 0:
                time.sleep(0.0005)
            if started is None:
                events = [
                    e for e in cluster.view.events() if e.member in survivors and e.received_s > killed_at
                ]
                if events:
                    started = events[0].received_s - killed_at
            statuses = [cluster.view.status(member) for member in survivors]
            for status in statuses:
                if status is None or status.received_s <= killed_at:
                    continue
                if successor is None and status.is_leading and status.term > leader.term:
                    successor, elected = status, status.received_s - killed_at
                if first_commit is None and status.commit_position > warm_end:
                    first_commit = status.received_s - killed_at
                if command_commit is None and status.commit_position >= command_end:
                    command_commit = status.received_s - killed_at
            if successor is not None and command_commit is None:
                now = time.monotonic()
                if (sent_at is None or now - sent_at > RESEND_INTERVAL_S) and cluster.offer(
                    successor, command
                ):
                    sent_at, command = now, command + 1
        return FailoverResult(
            members=MEMBERS,
            leader_heartbeat_timeout_ns=config.leader_heartbeat_timeout_ns,
            election_timeout_ns=config.election_timeout_ns,
            killed_member=leader.member,
            killed_term=leader.term,
            commit_before_kill=warm_end,
            new_leader=None if successor is None else successor.member,
            new_term=None if successor is None else successor.term,
            election_started_s=started,
            leader_elected_s=elected,
            first_commit_s=first_commit,
            command_commit_s=command_commit,
        )


def _seconds(value: float | None) -> str:
    return "not seen" if value is None else f"{value:8.3f} s"


def format_text(result: FailoverResult) -> str:
    timeout_s = result.leader_heartbeat_timeout_ns / NS_PER_S
    new = (
        "no new leader"
        if result.new_leader is None
        else f"member {result.new_leader} leads term {result.new_term}"
    )
    lines = [
        f"failover benchmark: {result.members} member processes on 127.0.0.1, leader heartbeat timeout "
        f"{timeout_s:g} s, election timeout {result.election_timeout_ns / NS_PER_S:g} s",
        f"  kill -9 of member {result.killed_member}, leader of term {result.killed_term}, at commit "
        f"position {result.commit_before_kill}; seconds after the kill:",
        f"  {'a survivor starts an election':36} {_seconds(result.election_started_s)}",
        f"  {new:36} {_seconds(result.leader_elected_s)}",
        f"  {'first commit after the kill':36} {_seconds(result.first_commit_s)}   <- failover time",
        f"  {'a command sent to it committed':36} {_seconds(result.command_commit_s)}",
        "  (as read from the members' lines; status lines come at most once per 100 ms)",
    ]
    if not result.complete:
        lines.append("  the failover did not complete before the deadline")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as directory:
        try:
            result = measure(Path(directory), args.heartbeat_timeout)
        except FailoverError as error:
            print(f"failover benchmark: {error}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(format_text(result))
    sys.stdout.flush()
    return 0 if result.complete else 1
