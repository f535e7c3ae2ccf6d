"""``python -m tools cluster``: run a local cluster, or look into and repair a node's directory (ours or
Java's).

::

    python -m tools cluster up --nodes N --dir DIR [--base-port P] [--service echo|kv|MODULE:CLASS]
        [--set KEY=VALUE ...]
    python -m tools cluster describe DIR [--json]
    python -m tools cluster recording-log DIR [--json]
    python -m tools cluster recovery-plan DIR [--json] [--service-count N] [--archive-dir ARCHIVE]
    python -m tools cluster errors DIR [--json]
    python -m tools cluster pid DIR [--json]
    python -m tools cluster invalidate-latest-snapshot DIR [--json]
    python -m tools cluster seed-recording-log-from-snapshot DIR [--json]
    python -m tools cluster sort-recording-log DIR [--json]
    python -m tools cluster snapshot|suspend|resume|shutdown|abort DIR [--json] [--timeout S]
    python -m tools cluster is-leader DIR [--json]
    python -m tools cluster list-members DIR [--json]
    python -m tools cluster purge-log DIR [--json] [--archive-stream-id N] [--timeout S]
    python -m tools cluster client --ingress-endpoints 0=host:port,... [--count K] [--sizes S1,S2,...]
        [--window W] [--rate R] [--timeout T] [--egress-channel C] [--json]

``up`` writes the configurations of a local cluster of N members on 127.0.0.1
(``NodeConfig.local_cluster``, ``DIR/node<i>.toml``, every ``--set`` applied to all of them, and
``cluster.service.class`` from ``--service``: the example echo service by default, the key-value one, or
a ``ClusteredService`` class the nodes can import), starts one ``python -m tools node`` process per
member and prints, as its first stdout line, one JSON object::

    {"members": "<the members string>", "ingressEndpoints": "0=127.0.0.1:20002,1=...",
     "pids": [<member 0's pid>, ...], "dirs": ["<member 0's cluster dir>", ...]}

then every line the nodes print (events and status lines, each naming its member; docs/node.md). It
runs until SIGINT or SIGTERM, then stops every node by pid -- SIGTERM, and SIGKILL for any still
running after ``STOP_TIMEOUT_S`` -- and waits for them. A node that exits meanwhile is reported on stderr
in one line (member, pid, exit status) and is not restarted. It ends by itself once every node has
exited. Its exit status is 0 when every node closed in order -- on its SIGTERM, or by itself with exit
status 0 after the cluster's ``shutdown`` or ``abort`` -- and 1 otherwise (a node died, or had to be
killed). Run again on the same DIR, it rewrites the same configurations and the
nodes recover their state from their directories.

The verbs on a running node -- ``snapshot``, ``suspend``, ``resume``, ``shutdown``, ``abort``,
``is-leader`` and ``list-members`` -- reach it through its control file and live in
``tools.cluster_control``, whose docstring says how they wait and what they print. ``purge-log`` reaches a
running node's archive and purges its log below its latest snapshot (``tools.cluster_purge``).

The offline verbs -- ``describe`` to ``sort-recording-log`` -- work on a node's files, not on a running
node: they live in ``tools.cluster_admin``, whose docstring says what each reads, prints and changes.
DIR is the cluster directory, or a directory holding it as ``cluster/`` (as Java's node directories
do: ``node0/cluster/``). ``describe`` prints the consensus module's mark file, the node state, the
recording log and the latest valid snapshot; with ``--json`` one JSON object::

    {"markFile": {...every field of the MarkFileHeader, under the schema's names...},
     "nodeState": {"version": 768, "candidateTerm": {"candidateTermId": ..., "timestamp": ...,
                   "logPosition": ...}, "clusterMembers": null},
     "recordingLog": [{"type": "TERM", "recordingId": 0, "leadershipTermId": 0,
                       "termBaseLogPosition": 0, "logPosition": -1, "timestamp": ..., "serviceId": -1,
                       "isValid": true}, ...],
     "latestSnapshot": {"consensusModule": {"entryIndex": 5, "type": "SNAPSHOT", ...},
                        "services": [{"entryIndex": 4, ..., "serviceId": 0, ...}]} or null}

``recording-log``, ``recovery-plan``, ``errors`` and ``pid`` only read, like ``describe``, and are safe
on a directory a running node owns; ``invalidate-latest-snapshot``, ``seed-recording-log-from-snapshot``
and ``sort-recording-log`` change ``recording.log`` and refuse while the node runs (its mark file's
activity timestamp within the 10 s liveness timeout of now). A missing file, a damaged one or a bad
directory is one ``error: ...`` line and exit status 2. docs/admin-tool.md describes them all.

``client`` is a client session against an echo service: it sends K messages, waits for every echo and
prints JSON lines, the result last; ``tools.cluster_client`` says what it prints and how it keeps its
session across a leader change.

Sub-commands live in ``SUBCOMMANDS`` (as in ``tools.archive_cmd``); the offline verbs' come from
``tools.cluster_admin.SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import tomllib
from pathlib import Path
from types import FrameType
from typing import Final

from cluster.consensus.core.members import MAX_MEMBERS, format_members
from cluster.service.loader import load_service
from tools import cluster_admin, cluster_client, cluster_control, cluster_purge
from tools.cluster_admin import ClusterAdminError, ClusterDirectoryError, describe, find_cluster_dir
from tools.node_processes import (
    STOP_TIMEOUT_S,
    NodeProcess,
    describe_exit,
    ingress_endpoints,
    local_configs,
    member_ports,
    port_in_use,
    stop_all,
    write_configs,
)
from tools.subcommands import Subcommand, add_subcommands, run_subcommand

__all__ = [
    "DEFAULT_BASE_PORT",
    "SUBCOMMANDS",
    "ClusterAdminError",
    "ClusterDirectoryError",
    "ClusterUpError",
    "Subcommand",
    "configure",
    "describe",
    "find_cluster_dir",
    "run",
]

DEFAULT_BASE_PORT: Final = 20_000
"""``cluster up``'s: member i uses 20000 + 100 * i + 1..5, clear of Aeron's 8010 and 9000-range
examples and of the Linux ephemeral range (32768 and up) for up to 127 members."""
SUPERVISE_INTERVAL_S: Final = 0.1


# ----------------------------------------------------------------------------------------------- up


class ClusterUpError(Exception):
    """``cluster up`` was given arguments it cannot run a cluster with."""

    is_user_error = True


def _setting(text: str) -> tuple[str, object]:
    """``KEY=VALUE``: the value as a TOML value if it is one (``101``, ``"x"``), else as a string
    (``2s``, ``aeron:udp?term-length=64k``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ClusterUpError(f"--set {text!r}: expected KEY=VALUE (a key of docs/node-config.md)")
    try:
        parsed: object = tomllib.loads(f"value = {value}")["value"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed


def _up_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, required=True, metavar="N", help="how many members")
    parser.add_argument(
        "--dir", required=True, metavar="DIR", help="where the configs (DIR/node<i>.toml) and directories go"
    )
    parser.add_argument(
        "--base-port",
        type=int,
        default=DEFAULT_BASE_PORT,
        metavar="P",
        help=f"member i uses ports P + 100 * i + 1..5 (default {DEFAULT_BASE_PORT})",
    )
    parser.add_argument(
        "--service",
        default="echo",
        metavar="echo|kv|MODULE:CLASS",
        help="the clustered service every member runs (cluster.service.class; default echo)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for every member, e.g. cluster.leader.heartbeat.timeout=2s (repeatable)",
    )


def _run_up(args: argparse.Namespace) -> int:
    nodes, base_port = args.nodes, args.base_port
    if not 1 <= nodes <= MAX_MEMBERS:
        raise ClusterUpError(f"--nodes {nodes}: a cluster has 1 to {MAX_MEMBERS} members")
    top = base_port + 100 * (nodes - 1) + 5
    if base_port < 1 or top > 65535:
        raise ClusterUpError(f"--base-port {base_port}: {nodes} members need ports {base_port + 1} to {top}")
    directory = Path(args.dir)
    settings = dict(_setting(text) for text in args.set)
    if "cluster.service.class" in settings and settings["cluster.service.class"] != args.service:
        raise ClusterUpError("--set cluster.service.class and --service disagree: give --service alone")
    settings["cluster.service.class"] = args.service
    load_service(args.service)  # a name that imports nothing fails here, before any member starts
    configs = local_configs(nodes, directory, base_port, settings)
    busy = port_in_use(member_ports(nodes, base_port))
    if busy is not None:
        raise ClusterUpError(f"--base-port {base_port}: port {busy} on 127.0.0.1 is in use")
    paths = write_configs(configs, directory)

    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    lock = threading.Lock()
    first_line_out = threading.Event()
    relaying = True

    def relay(process: NodeProcess, line: str) -> None:
        nonlocal relaying
        first_line_out.wait()
        with lock:
            if not relaying:
                return  # our stdout is gone: keep draining the node's, so it never blocks
            try:
                sys.stdout.write(line)
                sys.stdout.flush()
            except (OSError, ValueError):
                relaying = False

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes: list[NodeProcess] = []
    died: set[int] = set()  # exited by themselves, whatever their status
    failed: set[int] = set()  # of those, with a status other than 0
    try:
        for config, path in zip(configs, paths, strict=True):
            processes.append(NodeProcess(config.member_id, path, on_line=relay))
        first = {
            "members": format_members(configs[0].members),
            "ingressEndpoints": ingress_endpoints(configs[0].members),
            "pids": [process.pid for process in processes],
            "dirs": [config.cluster_dir for config in configs],
        }
        with lock:
            sys.stdout.write(json.dumps(first) + "\n")
            sys.stdout.flush()
        first_line_out.set()
        while not stopping and len(died) < len(processes):
            time.sleep(SUPERVISE_INTERVAL_S)
            for process in processes:
                status = process.poll()
                if status is not None and process.member_id not in died:
                    died.add(process.member_id)
                    if status != 0:
                        failed.add(process.member_id)
                    _report(process, describe_exit(status))
        if len(died) == len(processes):
            print("cluster up: every member has exited", file=sys.stderr, flush=True)
    finally:
        first_line_out.set()
        statuses = stop_all(processes, STOP_TIMEOUT_S)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for process in processes:
        status = statuses[process.member_id]
        if process.member_id not in died and status != 0:
            _report(process, f"{describe_exit(status)} when stopped")
    return 0 if not failed and all(status == 0 for status in statuses.values()) else 1


def _report(process: NodeProcess, what: str) -> None:
    print(f"cluster up: member {process.member_id} (pid {process.pid}) {what}", file=sys.stderr, flush=True)


SUBCOMMANDS: dict[str, Subcommand] = {
    "up": Subcommand(
        "run a local cluster: N member processes on 127.0.0.1, until SIGINT or SIGTERM",
        _up_arguments,
        _run_up,
    ),
    **cluster_admin.SUBCOMMANDS,
    **cluster_control.SUBCOMMANDS,
    **cluster_purge.SUBCOMMANDS,
    "client": Subcommand(
        "a client session: send messages to an echo service, wait for every echo, report hash and "
        "round trips (tools.cluster_client)",
        cluster_client.configure,
        cluster_client.run,
    ),
}


def configure(parser: argparse.ArgumentParser) -> None:
    add_subcommands(parser, SUBCOMMANDS, "cluster_command")


def run(args: argparse.Namespace) -> int:
    return run_subcommand(args)
