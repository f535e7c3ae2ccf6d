"""``python -m tools sim``: run the deterministic cluster simulator over a range of seeds.

::

    python -m tools sim --seeds N [--first-seed S] [--nodes 3|5] [--canary NAME] [--json]
                        [--file-sync-level 0|1|2] [--services] [--snapshots] [--quiet]
    python -m tools sim --list-canaries

The simulator runs real cluster nodes -- the transport, archive and consensus module a node process
runs -- over the simulated network and disks (:mod:`cluster.consensus.node_sim`). Seeds S to S+N-1
each run a safety phase with faults and a liveness phase (:func:`cluster.consensus.node_sim.run_seed`).
Every failed seed prints one line with what failed and the single command that reproduces it. The last
line is a JSON object ``{"seeds", "commands_committed", "faults": {kind: count}, "violations",
"liveness_failures", "failed_seeds": [...]}``; with ``--json`` each seed's result is printed as a JSON
line before it. The exit status is 1 if any seed had a violation or a liveness failure (which is what a
canary run expects), 0 otherwise.

``--services`` runs a service container in every node, with the simulator's checked echo service
(:mod:`cluster.sim.services`): every committed command must reach every replica once, in order, only once
committed; timers fire once; replicas agree at equal log positions; the last command's reply reaches the
client; two key-value clients' histories are linearizable (their operation counts join each JSON line and
the summary as ``kv_operations`` and ``kv_indeterminate``). A canary that only those checkers can catch
turns it on by itself.

``--snapshots`` asks the leader for a snapshot every few seconds and now and then crashes a member while it
takes one; the snapshot checkers judge every snapshot entry (it names a whole snapshot at its position,
and members' snapshots at one position hold the same state) and every restart (a member starts from its
newest valid snapshot). With ``--services`` a restarted replica that starts from a snapshot is judged by
the service checkers as one that replayed the whole log. The count of snapshots taken joins the faults.

``--file-sync-level`` is the nodes' file-sync level: at 1 or 2 they claim to survive power loss, so a
crash is a power loss that keeps only what was synced (and tears the last pending write); at 0 a crash
is a process crash. A canary that breaks a promise made only at level 1 or more runs at that level.

A long run shows its progress on stderr, one line at most every :data:`PROGRESS_INTERVAL_S` seconds
(seeds done, failures so far, commands committed, time elapsed and an estimate of the time left), and a
last one when it ends; ``--quiet`` turns that off. Standard output is unchanged by it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import TextIO

from cluster.consensus.node_sim import CANARIES, run_seed

__all__ = ["PROGRESS_INTERVAL_S", "Progress", "configure", "run"]

MAX_SEEDS = 1_000_000
PROGRESS_INTERVAL_S = 5.0


class Progress:
    """Progress lines on ``stream``: at most one per ``interval_s`` of ``clock``, and one at the end if any
    was printed before (a short run prints nothing)."""

    def __init__(
        self,
        total: int,
        stream: TextIO,
        *,
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.stream = stream
        self.interval_s = PROGRESS_INTERVAL_S if interval_s is None else interval_s
        self.clock = clock
        self.started_s = clock()
        self.last_s = self.started_s
        self.lines = 0

    def update(self, done: int, failed: int, committed: int) -> None:
        """After each seed: print a line if the interval has passed since the last one."""
        now_s = self.clock()
        if now_s - self.last_s >= self.interval_s:
            self._line(done, failed, committed, now_s)

    def finish(self, done: int, failed: int, committed: int) -> None:
        if self.lines:
            self._line(done, failed, committed, self.clock())

    def _line(self, done: int, failed: int, committed: int, now_s: float) -> None:
        elapsed_s = now_s - self.started_s
        text = (
            f"sim: {done}/{self.total} seeds, {failed} failed, {committed} commands committed, "
            f"{elapsed_s:.0f} s elapsed"
        )
        if 0 < done < self.total:
            text += f", about {elapsed_s / done * (self.total - done):.0f} s left"
        self.stream.write(text + "\n")
        self.stream.flush()
        self.last_s = now_s
        self.lines += 1


def _count(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"out of range 1..{MAX_SEEDS}: {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a seed (a whole number): {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"seed out of range 0..2**63-1: {value}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=_count, metavar="N", help="how many seeds to run")
    parser.add_argument("--first-seed", type=_seed, default=0, metavar="S", help="the first seed (0)")
    parser.add_argument("--nodes", type=int, choices=(1, 2, 3, 5), default=3, help="cluster size (3)")
    parser.add_argument(
        "--canary", choices=sorted(CANARIES), metavar="NAME", help="run a deliberately broken variant"
    )
    parser.add_argument("--json", action="store_true", help="also print each seed's result as a JSON line")
    parser.add_argument(
        "--file-sync-level",
        type=int,
        choices=(0, 1, 2),
        default=0,
        help="the nodes' file-sync level; at 1 or 2 a crash is a power loss (0)",
    )
    parser.add_argument(
        "--services", action="store_true", help="run the checked service in every node, and its checkers"
    )
    parser.add_argument(
        "--snapshots",
        action="store_true",
        help="take snapshots as the run goes, crash members during them, and check them",
    )
    parser.add_argument("--list-canaries", action="store_true", help="print the canary names, one per line")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _reproduce(args: argparse.Namespace, seed: int) -> str:
    command = f"python -m tools sim --seeds 1 --first-seed {seed} --nodes {args.nodes}"
    command += f" --canary {args.canary}" if args.canary else ""
    command += f" --file-sync-level {args.file_sync_level}" if args.file_sync_level else ""
    command += " --services" if args.services else ""
    return command + (" --snapshots" if args.snapshots else "")


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    if args.list_canaries:
        for name in sorted(CANARIES):
            out.write(name + "\n")
        return 0
    if args.seeds is None:
        raise SimUsageError("--seeds N is required (or --list-canaries)")
    canaries = frozenset({args.canary}) if args.canary else frozenset()
    committed = kv_operations = kv_indeterminate = 0
    faults: dict[str, int] = {}
    violations = 0
    liveness_failures = 0
    failed: list[int] = []
    progress = None if args.quiet else Progress(args.seeds, sys.stderr)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        result = run_seed(
            seed,
            args.nodes,
            canaries,
            file_sync_level=args.file_sync_level,
            services=args.services,
            snapshots=args.snapshots,
        )
        committed += result.commands_committed
        kv_operations += result.kv_operations
        kv_indeterminate += result.kv_indeterminate
        for kind, count in result.faults.items():
            faults[kind] = faults.get(kind, 0) + count
        violations += len(result.violations)
        liveness_failures += result.liveness_failure is not None
        if args.json:
            out.write(
                json.dumps(
                    {
                        "seed": seed,
                        "commands_committed": result.commands_committed,
                        "faults": result.faults,
                        "violations": [f"{v.checker}: {v.detail}" for v in result.violations],
                        "liveness_failure": result.liveness_failure,
                        **(
                            {
                                "kv_operations": result.kv_operations,
                                "kv_indeterminate": result.kv_indeterminate,
                            }
                            if args.services
                            else {}
                        ),
                    }
                )
                + "\n"
            )
        if result.failed:
            failed.append(seed)
            what = (
                result.violations[0].checker + ": " + result.violations[0].detail if result.violations else ""
            )
            what = what or str(result.liveness_failure)
            reproduce = _reproduce(args, seed)
            out.write(f"seed {seed} failed: {what}; reproduce: {reproduce}\n")
        out.flush()
        if progress is not None:
            progress.update(seed - args.first_seed + 1, len(failed), committed)
    if progress is not None:
        progress.finish(args.seeds, len(failed), committed)
    summary = {
        "seeds": args.seeds,
        "commands_committed": committed,
        "faults": dict(sorted(faults.items())),
        "violations": violations,
        "liveness_failures": liveness_failures,
        "failed_seeds": failed,
    }
    if args.services:  # the key-value clients' operations, all checked for linearizability
        summary |= {"kv_operations": kv_operations, "kv_indeterminate": kv_indeterminate}
    out.write(json.dumps(summary) + "\n")
    out.flush()
    return 1 if failed else 0


class SimUsageError(Exception):
    """A bad combination of options."""

    is_user_error = True
