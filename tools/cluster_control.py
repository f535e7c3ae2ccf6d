"""The verbs of ``python -m tools cluster`` that act on a running node, as Aeron's ClusterTool does:
``snapshot``, ``suspend``, ``resume``, ``shutdown``, ``abort``, ``is-leader`` and ``list-members``.

The command lines are listed in ``tools.cluster_cmd``; each verb takes ``DIR`` (a node's cluster
directory, or the directory holding it as ``cluster/``) and ``--json``; the action verbs take
``--timeout SECONDS`` too.

Theory of operation
-------------------
A running node keeps ``cluster-control.dat`` in its cluster directory
(``cluster.consensus.files.control_file``): its role, its module state, the leader it knows, its
snapshot count and the members, and the control toggle through which it takes requests. A node is
running when its mark file's activity timestamp is within the liveness timeout of now (Aeron's rule;
``ClusterMarkFile``) and its control file is not INACTIVE.

**Actions** go through the leader, as in Aeron: run on a member that does not lead, a verb changes
nothing, says which member leads, and exits 1. On the leader it writes a request and waits, up to the
timeout, for the node's answers: ACCEPTED at once, then DONE when the action is over -- a snapshot taken
(its recording-log entries are printed), the cluster suspended or resumed, or, for ``shutdown`` and
``abort``, this node stopped (the tool waits until its process has closed its files). A refusal (the
module is not ACTIVE, another request is in progress), a failure (an election, a service that could not
take its snapshot) or the timeout is one line and exit status 1. Exit status 0 means the action is
done.

**is-leader** exits 0 on the leader, 1 elsewhere (a follower, a candidate, a node that is not running),
printing the role. **list-members** prints the members string's members, which one leads and which one
this node is.

Bad input -- a directory that is not a node's, a damaged control file -- is one ``error: ...`` line and
exit status 2 (``tools.__main__``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from cluster.consensus.core.cluster_actions import ControlOutcome, ToggleState
from cluster.consensus.core.errors import MembershipError
from cluster.consensus.core.members import ClusterMember, parse_members
from cluster.consensus.files import CLUSTER_MARK_FILE_NAME, RecordingLogFile
from cluster.consensus.files.control_file import ControlStatus, read_control, submit_request
from cluster.consensus.files.errors import ClusterFileError
from cluster.storage import RealStorage, Storage
from cluster.storage.markfile import DEFAULT_LIVENESS_TIMEOUT_MS, is_active, read_liveness
from tools.cluster_admin import find_cluster_dir, latest_snapshot_json, latest_snapshot_text
from tools.subcommands import Subcommand

__all__ = ["DEFAULT_TIMEOUT_S", "SUBCOMMANDS", "ControlRefused", "request_action", "running_status"]

DEFAULT_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.02
_LEADER = 2


class ControlRefused(Exception):
    """The node did not do what was asked: it is not running, does not lead, refused, failed, or did not
    answer in time. Exit status 1, not a user error."""

    def __init__(self, message: str, status: ControlStatus | None = None) -> None:
        super().__init__(message)
        self.status = status


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def running_status(storage: Storage) -> ControlStatus:
    """The control file of the running node in ``storage``; ``ControlRefused`` if no node runs there."""
    liveness = read_liveness(storage, CLUSTER_MARK_FILE_NAME)
    if liveness is None or not is_active(liveness[1], _now_ms(), DEFAULT_LIVENESS_TIMEOUT_MS):
        raise ControlRefused(f"{storage.location}: no node is running here (its mark file is not active)")
    status = read_control(storage)
    if status.toggle == ToggleState.INACTIVE:
        raise ControlRefused(f"{storage.location}: the node has closed (its control toggle is INACTIVE)")
    return status


def _not_leader(status: ControlStatus) -> str:
    leader = status.leader_member_id
    where = f"the leader is member {leader}" if leader >= 0 else "no leader is known"
    return f"member {status.member_id} is not the leader ({status.role_name}); {where}"


def request_action(
    storage: Storage,
    action: ToggleState,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    sleep: Callable[[float], object] = time.sleep,
) -> ControlStatus:
    """Ask the node in ``storage`` (its leader) for ``action`` and wait for it to be done; the node's
    status then. ``ControlRefused`` with the reason otherwise (module docstring)."""
    status = running_status(storage)
    if status.role != _LEADER:
        raise ControlRefused(_not_leader(status), status)
    request_id = submit_request(storage, action)
    deadline = time.monotonic() + timeout_s
    while True:
        status = read_control(storage)
        if status.reply_id > request_id:
            raise ControlRefused(f"request {request_id} was superseded by a newer one", status)
        if status.reply_id == request_id:
            outcome = status.outcome
            if outcome == ControlOutcome.DONE:
                break
            if outcome == ControlOutcome.NOT_LEADER:
                raise ControlRefused(_not_leader(status), status)
            if outcome in (ControlOutcome.REFUSED, ControlOutcome.FAILED, ControlOutcome.UNSUPPORTED):
                raise ControlRefused(_refusal(action, ControlOutcome(outcome), status), status)
        if time.monotonic() >= deadline:
            answer = "no answer" if status.reply_id != request_id else f"only {_outcome_name(status)}"
            raise ControlRefused(f"{answer} within {timeout_s:g} s", status)
        sleep(POLL_INTERVAL_S)
    if action in (ToggleState.SHUTDOWN, ToggleState.ABORT):
        # DONE is written as the node stops; it has stopped once its files are closed
        while status.toggle != ToggleState.INACTIVE:
            if time.monotonic() >= deadline:
                raise ControlRefused(f"the node did not close within {timeout_s:g} s", status)
            sleep(POLL_INTERVAL_S)
            status = read_control(storage)
    return status


def _outcome_name(status: ControlStatus) -> str:
    try:
        return ControlOutcome(status.outcome).name
    except ValueError:
        return f"outcome {status.outcome}"


def _refusal(action: ToggleState, outcome: ControlOutcome, status: ControlStatus) -> str:
    if outcome == ControlOutcome.REFUSED:
        return (
            f"refused: the consensus module is {status.module_state_name} "
            f"(toggle {status.toggle_name}); it takes {action.name} only "
            f"{'when SUSPENDED' if action == ToggleState.RESUME else 'when ACTIVE'} and one request at a time"
        )
    if outcome == ControlOutcome.UNSUPPORTED:
        return "this node does not take that action"
    return "failed (an election dropped it, or a service could not take its snapshot)"


# ------------------------------------------------------------------------------------- command line


def _arguments(parser: argparse.ArgumentParser, *, timeout: bool) -> None:
    parser.add_argument(
        "directory", metavar="DIR", help="the node's cluster directory (or one holding cluster/)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    if timeout:
        parser.add_argument(
            "--timeout",
            type=float,
            default=DEFAULT_TIMEOUT_S,
            metavar="SECONDS",
            help=f"how long to wait for the action to be done (default {DEFAULT_TIMEOUT_S:g})",
        )


def _print(args: argparse.Namespace, record: dict[str, Any], lines: list[str]) -> None:
    text = json.dumps(record) if args.json else "\n".join(lines)
    print(text, flush=True)


_DONE_TEXT = {
    ToggleState.SNAPSHOT: "snapshot taken",
    ToggleState.SUSPEND: "cluster suspended",
    ToggleState.RESUME: "cluster resumed",
    ToggleState.SHUTDOWN: "cluster shut down (snapshot taken, every member stopped at its position)",
    ToggleState.ABORT: "cluster aborted (every member stopped at its position, without a snapshot)",
}


def _action_runner(action: ToggleState) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        storage = RealStorage(find_cluster_dir(args.directory))
        record: dict[str, Any] = {"action": action.name}
        try:
            status = request_action(storage, action, timeout_s=args.timeout)
        except ControlRefused as refused:
            record |= {"done": False, "reason": str(refused)}
            if refused.status is not None:
                record["node"] = refused.status.to_json()
            _print(args, record, [f"{action.name} not done: {refused}"])
            return 1
        record |= {"done": True, "node": status.to_json()}
        lines = [f"member {status.member_id}: {_DONE_TEXT[action]}"]
        if action in (ToggleState.SNAPSHOT, ToggleState.SHUTDOWN):
            latest = latest_snapshot_json(RecordingLogFile.read(storage).log)
            record["latestSnapshot"] = latest
            lines += latest_snapshot_text(latest)
        _print(args, record, lines)
        return 0

    return run


def _run_is_leader(args: argparse.Namespace) -> int:
    storage = RealStorage(find_cluster_dir(args.directory))
    try:
        status = running_status(storage)
    except ControlRefused as refused:
        _print(
            args, {"isLeader": False, "role": None, "reason": str(refused)}, [f"not the leader: {refused}"]
        )
        return 1
    leading = status.role == _LEADER
    _print(
        args,
        {"isLeader": leading, "role": status.role_name, "memberId": status.member_id},
        [f"member {status.member_id} is {'' if leading else 'not '}the leader ({status.role_name})"],
    )
    return 0 if leading else 1


def _member_json(member: ClusterMember, leader: int) -> dict[str, Any]:
    return {
        "id": member.id,
        "isLeader": member.id == leader,
        "ingressEndpoint": member.ingress,
        "consensusEndpoint": member.consensus,
        "logEndpoint": member.log,
        "catchupEndpoint": member.catchup,
        "archiveEndpoint": member.archive,
    }


def _run_list_members(args: argparse.Namespace) -> int:
    storage = RealStorage(find_cluster_dir(args.directory))
    status = running_status_or_exit(storage, args)
    if status is None:
        return 1
    try:
        members = parse_members(status.members)
    except MembershipError as error:
        raise ClusterFileError(f"{storage.location}: the control file's members string: {error}") from None
    leader = status.leader_member_id
    record = {
        "memberId": status.member_id,
        "leaderMemberId": leader,
        "leadershipTermId": status.leadership_term_id,
        "role": status.role_name,
        "activeMembers": [_member_json(member, leader) for member in members],
        "passiveMembers": [],
    }
    lines = [
        f"memberId={status.member_id}, leaderMemberId={leader}, role={status.role_name}, "
        f"leadershipTermId={status.leadership_term_id}",
        "activeMembers:",
    ]
    for member in members:
        notes = [
            note
            for note, yes in (("leader", member.id == leader), ("this member", member.id == status.member_id))
            if yes
        ]
        lines.append(
            f"  {member.id}{' (' + ', '.join(notes) + ')' if notes else ''}: ingress={member.ingress} "
            f"consensus={member.consensus} log={member.log} catchup={member.catchup} archive={member.archive}"
        )
    lines.append("passiveMembers: none")
    _print(args, record, lines)
    return 0


def running_status_or_exit(storage: Storage, args: argparse.Namespace) -> ControlStatus | None:
    try:
        return running_status(storage)
    except ControlRefused as refused:
        _print(args, {"reason": str(refused)}, [str(refused)])
        return None


def _with_timeout(parser: argparse.ArgumentParser) -> None:
    _arguments(parser, timeout=True)


def _without_timeout(parser: argparse.ArgumentParser) -> None:
    _arguments(parser, timeout=False)


SUBCOMMANDS: dict[str, Subcommand] = {
    "snapshot": Subcommand(
        "take a snapshot of the whole cluster, through its leader, and wait for it (running node)",
        _with_timeout,
        _action_runner(ToggleState.SNAPSHOT),
    ),
    "suspend": Subcommand(
        "suspend the cluster: no client messages or timers until resume (running node, the leader)",
        _with_timeout,
        _action_runner(ToggleState.SUSPEND),
    ),
    "resume": Subcommand(
        "resume a suspended cluster (running node, the leader)",
        _with_timeout,
        _action_runner(ToggleState.RESUME),
    ),
    "shutdown": Subcommand(
        "snapshot, then stop every member at the same position (running node, the leader)",
        _with_timeout,
        _action_runner(ToggleState.SHUTDOWN),
    ),
    "abort": Subcommand(
        "stop every member at the same position without a snapshot (running node, the leader)",
        _with_timeout,
        _action_runner(ToggleState.ABORT),
    ),
    "is-leader": Subcommand(
        "exit 0 if the node leads its cluster, 1 otherwise (running node)", _without_timeout, _run_is_leader
    ),
    "list-members": Subcommand(
        "print the cluster's members, the leader and this member (running node)",
        _without_timeout,
        _run_list_members,
    ),
}
