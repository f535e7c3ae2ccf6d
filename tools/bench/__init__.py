"""The ``bench`` command: ``python -m tools bench <benchmark> [options]``.

A second-level dispatcher, shaped like ``tools.__main__``: each benchmark lives in its own module, named
in :data:`BENCHMARKS` with a one-line help, and exposes ``configure(parser)`` and ``run(args) -> int``.
Benchmark modules keep their imports light at module level (heavy set-up happens in ``run``), because
every one of them is imported to build the ``bench`` parser.  The timing method shared by all of them
is in :mod:`tools.bench.harness`.

A benchmark is not a test: it exits 0 whether or not its targets are met, and prints the misses.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Mapping
from typing import Final, NamedTuple

__all__ = ["BENCHMARKS", "BenchmarkSpec", "configure", "run"]


class BenchmarkSpec(NamedTuple):
    """Where a benchmark lives and what it measures, in one line (shown by ``--help``)."""

    module: str
    help: str


BENCHMARKS: Final[Mapping[str, BenchmarkSpec]] = {
    "codec": BenchmarkSpec(
        "tools.bench.codec", "generated SBE codecs vs hand-written struct floors (decode, one field, encode)"
    ),
    "transport": BenchmarkSpec(
        "tools.bench.transport", "our UDP transport vs the real Aeron (pyaeron): throughput and round trips"
    ),
    "archive": BenchmarkSpec(
        "tools.bench.archive", "the archive's record and replay paths vs plain file writes and reads"
    ),
    "failover": BenchmarkSpec(
        "tools.bench.failover", "three member processes: time from kill -9 of the leader to the next commit"
    ),
    "cluster": BenchmarkSpec(
        "tools.bench.cluster",
        "a client of three member processes with the echo service vs a pysyncobj counter: rate, round trips",
    ),
    "recovery": BenchmarkSpec(
        "tools.bench.recovery",
        "three key-value member processes: snapshot time, restart from a snapshot vs a full log replay",
    ),
}


def configure(parser: argparse.ArgumentParser) -> None:
    subparsers = parser.add_subparsers(dest="benchmark", metavar="<benchmark>", required=True)
    for name, spec in BENCHMARKS.items():
        module = importlib.import_module(spec.module)
        sub = subparsers.add_parser(name, help=spec.help, description=spec.help)
        module.configure(sub)
        sub.set_defaults(bench_run=module.run)


def run(args: argparse.Namespace) -> int:
    bench_run: Callable[[argparse.Namespace], int] = args.bench_run
    return bench_run(args)
