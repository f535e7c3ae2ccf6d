"""``python -m tools sim``: run the deterministic cluster simulator over a range of seeds.

::

    python -m tools sim --seeds N [--first-seed S] [--nodes 3|5] [--canary NAME] [--json]
                        [--network message|transport]
    python -m tools sim --list-canaries

Seeds S to S+N-1 each run a safety phase with faults and a liveness phase
(:func:`cluster.consensus.simulator.run_seed`). Every failed seed prints one line with what failed and
the single command that reproduces it. The last line is a JSON object ``{"seeds", "commands_committed",
"faults": {kind: count}, "violations", "liveness_failures", "failed_seeds": [...]}``; with ``--json``
each seed's result is printed as a JSON line before it. The exit status is 1 if any seed had a
violation or a liveness failure (which is what a canary run expects), 0 otherwise.

``--network`` chooses how consensus messages travel: ``message`` (the default) moves whole messages,
``transport`` runs Aeron publications and subscriptions over the transport's simulated network
(``cluster.consensus.sim_network``).
"""

from __future__ import annotations

import argparse
import json
import sys

from cluster.consensus.simulator import CANARIES, NETWORKS, run_seed

__all__ = ["configure", "run"]

MAX_SEEDS = 1_000_000


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
        "--network", choices=NETWORKS, default="message", help="how consensus messages travel (message)"
    )
    parser.add_argument("--list-canaries", action="store_true", help="print the canary names, one per line")


def _reproduce(seed: int, nodes: int, canary: str | None, network: str) -> str:
    command = f"python -m tools sim --seeds 1 --first-seed {seed} --nodes {nodes}"
    command += f" --canary {canary}" if canary else ""
    return command + (f" --network {network}" if network != "message" else "")


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    if args.list_canaries:
        for name in sorted(CANARIES):
            out.write(name + "\n")
        return 0
    if args.seeds is None:
        raise SimUsageError("--seeds N is required (or --list-canaries)")
    canaries = frozenset({args.canary}) if args.canary else frozenset()
    committed = 0
    faults: dict[str, int] = {}
    violations = 0
    liveness_failures = 0
    failed: list[int] = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        result = run_seed(seed, args.nodes, canaries, network=args.network)
        committed += result.commands_committed
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
            reproduce = _reproduce(seed, args.nodes, args.canary, args.network)
            out.write(f"seed {seed} failed: {what}; reproduce: {reproduce}\n")
        out.flush()
    summary = {
        "seeds": args.seeds,
        "commands_committed": committed,
        "faults": dict(sorted(faults.items())),
        "violations": violations,
        "liveness_failures": liveness_failures,
        "failed_seeds": failed,
    }
    out.write(json.dumps(summary) + "\n")
    out.flush()
    return 1 if failed else 0


class SimUsageError(Exception):
    """A bad combination of options."""

    is_user_error = True
