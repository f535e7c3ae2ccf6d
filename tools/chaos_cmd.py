"""``python -m tools chaos --nodes 3|5 --seconds S [--nemesis kill,pause,partition,loss,clock,disk] [--seed N]
[--json]``: one fault run on real node processes (docs/chaos.md).

Without ``--json`` it tells the run as it goes (each fault, each healing, the final reads) and ends with
the verdict; with ``--json`` it prints only the summary. Either way the last line of stdout is the
summary, one JSON object::

    {"operations", "acknowledged", "indeterminate", "lost", "linearizable", "faults": {kind: count},
     "recovery_ms": {"min", "median", "max"}, "liveness_ms", "logs": {"position", "records", "agree"},
     "violations", "nodes", "seconds", "seed", "directory"}

The exit status is 0 for a clean run, 1 for any violation, lost write or history not shown
linearizable, 130 when interrupted (SIGINT or SIGTERM: every node process is stopped first).

The run's directory (``--dir``, by default a new one under the system's temporary
directory) keeps the history (``history.jsonl``), the fault log (``faults.jsonl``), each member's
configuration, stderr and directories, for a post-mortem.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

__all__ = ["configure", "run"]

NODE_COUNTS = (3, 5)
INTERRUPTED_STATUS = 130  # a shell's status for SIGINT


class ChaosUsageError(ValueError):
    is_user_error = True


def _kinds(text: str) -> list[str]:
    from tools.chaos.nemesis import KINDS

    kinds = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown nemesis {', '.join(unknown)} (implemented: {', '.join(KINDS)})"
        )
    return kinds


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nodes", type=int, choices=NODE_COUNTS, default=3, help="cluster members (default 3)"
    )
    parser.add_argument(
        "--seconds", type=float, required=True, help="how long the workload and the faults run"
    )
    parser.add_argument(
        "--nemesis",
        type=_kinds,
        default=["kill", "pause"],
        metavar="KIND[,KIND...]",
        help="faults to inject: kill, pause, partition, loss, clock, disk (default kill,pause; partition "
        "and loss put every member in a network namespace of its own, which needs root, iproute2 and "
        "nftables; disk puts each member's directory on a small tmpfs, which needs root); an empty "
        "string for none",
    )
    parser.add_argument("--seed", type=int, default=None, help="decides the faults and the clients' choices")
    parser.add_argument("--clients", type=int, default=3, help="concurrent key-value clients (default 3)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="the run's directory (default: a new temporary one)"
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM as SIGINT: the run unwinds through its ``finally`` and stops every node by its pid."""
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from tools.chaos.nemesis import FaultKind
    from tools.chaos.run import ChaosConfig, run_chaos

    if args.seconds <= 0:
        raise ChaosUsageError(f"--seconds must be positive, not {args.seconds:g}")
    if not 1 <= args.clients <= 16:
        raise ChaosUsageError(f"--clients must be in [1, 16], not {args.clients}")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    directory = args.dir if args.dir is not None else Path(tempfile.mkdtemp(prefix=f"aeron-chaos-{seed}-"))
    kinds = tuple(FaultKind(kind) for kind in dict.fromkeys(args.nemesis))
    config = ChaosConfig(
        nodes=args.nodes,
        seconds=args.seconds,
        kinds=kinds,
        seed=seed,
        directory=directory,
        clients=args.clients,
    )

    def say(text: str) -> None:
        if not args.json:
            print(text, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)

    nemesis = ",".join(kind.value for kind in kinds)
    say(
        f"chaos: {args.nodes} members, {args.seconds:g} s, nemesis {nemesis or 'none'}, seed {seed}, "
        f"{args.clients} clients; directory {directory}"
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        summary = run_chaos(config, say)
    except KeyboardInterrupt:
        print("chaos: interrupted; every node process was stopped", file=sys.stderr, flush=True)
        return INTERRUPTED_STATUS
    finally:
        signal.signal(signal.SIGTERM, previous)
    failed = bool(summary["violations"]) or summary["lost"] > 0 or summary["linearizable"] is not True
    if not args.json:
        verdict = "FAILED" if failed else "passed"
        print(
            f"{verdict}: {summary['operations']} operations, {summary['acknowledged']} acknowledged, "
            f"{summary['lost']} lost, linearizable {summary['linearizable']}, faults {summary['faults']}"
        )
        for violation in summary["violations"]:
            print(f"  violation: {violation}")
        if failed:
            print(
                f"  reproduce: python -m tools chaos --nodes {args.nodes} --seconds {args.seconds:g} "
                f"--nemesis {nemesis} --seed {seed} --clients {args.clients}"
            )
    print(json.dumps(summary), flush=True)
    return 1 if failed else 0
