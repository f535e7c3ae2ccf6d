"""``python -m tools bench transport``: our transport against the real Aeron (PyPI ``pyaeron``), side by side.

Two questions, each answered for both in one run, over UDP loopback (127.0.0.1) with 32-byte messages:

* **Throughput** (target: ours / pyaeron >= :data:`THROUGHPUT_TARGET`). Ours runs exactly the
  ``python -m tools aeron throughput`` code (:func:`tools.aeron_cmd.measure_throughput`): the
  publisher in this process and the subscriber in a spawned child, so both cores work. pyaeron runs the
  way it goes fastest here: one Python thread offers and polls while its embedded C media driver
  (``threading=dedicated``) moves the bytes on its own threads. The rate is counted where messages
  arrive (a Python handler call per message on both sides), from the first non-empty poll to the last.
* **Round-trip latency** p50 and p99 (target: ours_p99 / pyaeron_p99 <= :data:`LATENCY_P99_TARGET`).
  Ping in this process, pong in a spawned child, one ping in flight at a time, round trips recorded in
  an HdrHistogram. Ours is :func:`tools.aeron_cmd.run_ping` / :func:`~tools.aeron_cmd.pong_process`
  with a yielding idle strategy by default (``--idle``; ``spin`` is a little faster on an idle machine
  and far worse at p99 on a busy one). pyaeron uses one embedded driver in this process
  (``threading=shared``, driver idle strategy ``yield``) and the pong client in the child connects to
  it, as Aeron is deployed (one driver per machine); both its loops yield too: on these two-core
  machines anything that busy-spins next to the driver thread starves it.

Method, for a noisy shared machine: the two sides alternate, ``repeats`` rounds, and each side's best
round is kept -- the highest rate; the round with the lowest p99. A benchmark is not a test: a missed
target is printed, the exit status stays 0. Without pyaeron the command fails with status 2. Every
child process is killed by pid on the way out, and every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Final

from tools.bench.harness import verdict_lines

__all__ = [
    "LATENCY_P99_TARGET",
    "THROUGHPUT_TARGET",
    "BenchCase",
    "Settings",
    "configure",
    "format_table",
    "run",
]

THROUGHPUT_TARGET: Final = 0.20
LATENCY_P99_TARGET: Final = 3.0
MESSAGE_SIZE: Final = 32
STREAM_ID: Final = 1101
PING_STREAM_ID: Final = 1102
PONG_STREAM_ID: Final = 1103
CHILD_TIMEOUT_S: Final = 60.0
PROGRESS_TIMEOUT_S: Final = 20.0
FRAGMENT_LIMIT: Final = 256
PYAERON_THROUGHPUT_THREADING: Final = "dedicated"
PYAERON_LATENCY_THREADING: Final = "shared"
PYAERON_LATENCY_DRIVER_IDLE: Final = "yield"

_PING_HEADER: Final = struct.Struct("<qq")  # the same layout as tools.aeron_cmd's pings


@dataclass(frozen=True, slots=True)
class Settings:
    """How long to measure: ``repeats`` alternating rounds of each measurement."""

    repeats: int
    throughput_s: float
    pings: int
    warmup: int

    def __post_init__(self) -> None:
        if self.repeats < 1 or not self.throughput_s > 0 or self.pings < 1 or self.warmup < 0:
            raise ValueError(f"repeats and pings must be >= 1, throughput_s > 0 and warmup >= 0: {self}")


FULL: Final = Settings(repeats=3, throughput_s=3.0, pings=20_000, warmup=2_000)
QUICK: Final = Settings(repeats=1, throughput_s=0.4, pings=300, warmup=50)


class BenchmarkDependencyError(RuntimeError):
    """pyaeron is missing: the dispatcher prints ``error: ...`` and exits 2."""

    is_user_error = True


class _UsageError(ValueError):
    is_user_error = True


@dataclass(frozen=True, slots=True)
class BenchCase:
    """One compared figure: ours, pyaeron, their ratio and the target (``None``: informational).

    ``higher_is_better`` says which way the target goes: a rate must reach it (ratio >= target), a
    latency must stay under it (ratio <= target)."""

    id: str
    title: str
    unit: str
    ours: float
    pyaeron: float
    target: float | None
    higher_is_better: bool

    @property
    def ratio(self) -> float:
        return self.ours / self.pyaeron if self.pyaeron > 0 else float("inf")

    @property
    def status(self) -> str:
        if self.target is None:
            return "info"
        met = self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target
        return "ok" if met else "MISSED"

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "-"
        return f"{'≥' if self.higher_is_better else '≤'} {self.target:.2f}x"


def _environment() -> str:
    return f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}"


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _free_udp_port() -> int:
    """A UDP port the kernel just handed out (for pyaeron, whose channels need a port up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _udp(port: int) -> str:
    return f"aeron:udp?endpoint=127.0.0.1:{port}"


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` for the duration (the C driver reads its settings from there)."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


def _import_pyaeron() -> Any:
    try:
        import pyaeron  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError as exc:
        raise BenchmarkDependencyError(
            f"bench transport needs pyaeron (the real Aeron C client and driver): {exc}; "
            "install the dev extras: pip install -e '.[dev]'"
        ) from None
    return pyaeron


# ----------------------------------------------------------------------------------------------- ours


def _ours_throughput(settings: Settings, idle: str) -> dict[str, Any]:
    from tools.aeron_cmd import measure_throughput

    result = measure_throughput(
        channel="aeron:udp?endpoint=127.0.0.1:0",
        stream=STREAM_ID,
        size=MESSAGE_SIZE,
        seconds=settings.throughput_s,
        count=None,
        idle=idle,
        mode="processes",
        timeout_s=PROGRESS_TIMEOUT_S,
    )
    return result.to_dict()


def _ours_latency(settings: Settings, idle: str) -> dict[str, Any]:
    from tools.aeron_cmd import (
        TransportRuntime,
        child_process,
        latency_summary,
        new_histogram,
        pong_process,
        receive_child_message,
        run_ping,
    )

    histogram = new_histogram()
    with TransportRuntime(idle) as runtime:
        subscription = runtime.transport.add_subscription(_udp(0), PONG_STREAM_ID)
        assert subscription.local_address is not None
        pong_channel = _udp(subscription.local_address[1])
        total = settings.warmup + settings.pings
        with child_process(
            pong_process, _udp(0), PING_STREAM_ID, pong_channel, PONG_STREAM_ID, idle, total
        ) as (conn, _process):
            port = receive_child_message(conn, CHILD_TIMEOUT_S, "ours pong")[1]
            publication = runtime.transport.add_publication(_udp(port), PING_STREAM_ID)
            run_ping(
                runtime,
                publication,
                subscription,
                count=settings.pings,
                warmup=settings.warmup,
                size=MESSAGE_SIZE,
                timeout_ns=int(PROGRESS_TIMEOUT_S * 1e9),
                histogram=histogram,
            )
            receive_child_message(conn, CHILD_TIMEOUT_S, "ours pong")
    return latency_summary(histogram)


# -------------------------------------------------------------------------------------------- pyaeron


def _pyaeron_throughput(settings: Settings) -> dict[str, Any]:
    pyaeron = _import_pyaeron()
    channel = _udp(_free_udp_port())
    payload = bytes(MESSAGE_SIZE)
    counter = [0]

    def on_message(buffer: Any, header: Any) -> None:
        counter[0] += 1

    with pyaeron.MediaDriver(threading=PYAERON_THROUGHPUT_THREADING) as driver:
        aeron = pyaeron.Aeron(dir=driver.dir)
        try:
            subscription = aeron.add_subscription(channel, STREAM_ID)
            publication = aeron.add_exclusive_publication(channel, STREAM_ID)
            publication.await_connected(CHILD_TIMEOUT_S)
            offer = publication.offer
            poll = subscription.poll
            clock = time.perf_counter_ns
            offered = 0
            first_ns = last_ns = first = 0
            stop_ns = clock() + int(settings.throughput_s * 1e9)
            while True:
                for _ in range(FRAGMENT_LIMIT):
                    if not offer(payload):
                        break
                    offered += 1
                received = poll(on_message, FRAGMENT_LIMIT)
                now_ns = clock()
                if received:
                    last_ns = now_ns
                    if not first_ns:
                        first_ns, first = last_ns, received
                if now_ns >= stop_ns:
                    break
            deadline_ns = clock() + int(PROGRESS_TIMEOUT_S * 1e9)
            while counter[0] < offered and clock() < deadline_ns:
                if poll(on_message, FRAGMENT_LIMIT):
                    last_ns = clock()
        finally:
            aeron.close()
    seconds = (last_ns - first_ns) / 1e9
    measured = counter[0] - first
    rate = measured / seconds if seconds > 0 else 0.0
    return {
        "mode": f"one process, embedded C driver threading={PYAERON_THROUGHPUT_THREADING}",
        "channel": channel,
        "size": MESSAGE_SIZE,
        "offered": offered,
        "received": counter[0],
        "seconds": round(seconds, 6),
        "messages_per_s": rate,
        "mb_per_s": rate * MESSAGE_SIZE / 1e6,
    }


def pyaeron_pong(directory: str, ping_channel: str, pong_channel: str, count: int, conn: Connection) -> None:
    """A child process's pong on pyaeron, a client of the parent's driver in ``directory``: echo
    ``count`` pings (or until ``"stop"`` arrives on ``conn``), then report ``("done", echoed)``."""
    try:
        pyaeron = _import_pyaeron()
        aeron = pyaeron.Aeron(dir=directory)
        try:
            subscription = aeron.add_subscription(ping_channel, PING_STREAM_ID)
            publication = aeron.add_exclusive_publication(pong_channel, PONG_STREAM_ID)
            conn.send(("ready", 0))
            offer = publication.offer
            idle = pyaeron.IdleStrategy.yielding()
            retry = pyaeron.IdleStrategy.yielding()
            echoed = [0]

            def on_ping(buffer: Any, header: Any) -> None:
                deadline = time.monotonic() + PROGRESS_TIMEOUT_S
                while not offer(buffer):
                    if time.monotonic() > deadline:
                        raise TimeoutError("pong: echo not accepted")
                    retry.idle(0)
                echoed[0] += 1

            poll = subscription.poll
            iterations = 0
            deadline = time.monotonic() + CHILD_TIMEOUT_S
            while echoed[0] < count:
                work = poll(on_ping, 16)
                idle.idle(work)
                iterations += 1
                if iterations & 1023 == 0 and (conn.poll() or time.monotonic() > deadline):
                    break
            conn.send(("done", echoed[0]))
        finally:
            aeron.close()
    except Exception as exc:  # reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _pyaeron_latency(settings: Settings) -> dict[str, Any]:
    from tools.aeron_cmd import child_process, latency_summary, new_histogram, receive_child_message

    pyaeron = _import_pyaeron()
    histogram = new_histogram()
    ping_channel, pong_channel = _udp(_free_udp_port()), _udp(_free_udp_port())
    total = settings.warmup + settings.pings
    with _environ("AERON_SHARED_IDLE_STRATEGY", PYAERON_LATENCY_DRIVER_IDLE):
        driver = pyaeron.MediaDriver(threading=PYAERON_LATENCY_THREADING)
    with driver:
        aeron = pyaeron.Aeron(dir=driver.dir)
        try:
            with child_process(pyaeron_pong, driver.dir, ping_channel, pong_channel, total) as (conn, _p):
                receive_child_message(conn, CHILD_TIMEOUT_S, "pyaeron pong")
                subscription = aeron.add_subscription(pong_channel, PONG_STREAM_ID)
                publication = aeron.add_exclusive_publication(ping_channel, PING_STREAM_ID)
                publication.await_connected(CHILD_TIMEOUT_S)
                subscription.await_connected(CHILD_TIMEOUT_S)
                _pyaeron_ping(pyaeron, publication, subscription, settings, histogram.record_value)
                receive_child_message(conn, CHILD_TIMEOUT_S, "pyaeron pong")
        finally:
            aeron.close()
    return latency_summary(histogram)


def _pyaeron_ping(
    pyaeron: Any, publication: Any, subscription: Any, settings: Settings, record: Callable[[int], object]
) -> None:
    message = bytearray(MESSAGE_SIZE)
    pack, unpack = _PING_HEADER.pack_into, _PING_HEADER.unpack_from
    clock = time.perf_counter_ns
    idle = pyaeron.IdleStrategy.yielding()
    state = [-1, 0]
    warmup = settings.warmup

    def on_pong(buffer: Any, header: Any) -> None:
        sequence, sent_ns = unpack(buffer, 0)
        if sequence == state[0]:
            if sequence >= warmup:
                record(max(1, clock() - sent_ns))
            state[1] = 1

    offer, poll = publication.offer, subscription.poll
    timeout_ns = int(PROGRESS_TIMEOUT_S * 1e9)
    for sequence in range(warmup + settings.pings):
        state[0], state[1] = sequence, 0
        pack(message, 0, sequence, clock())
        deadline_ns = clock() + timeout_ns
        while not offer(message):
            if clock() > deadline_ns:
                raise TimeoutError(f"pyaeron ping {sequence}: offer not accepted")
            idle.idle(0)
        while not state[1]:
            idle.idle(poll(on_pong, 16))
            if clock() > deadline_ns:
                raise TimeoutError(f"pyaeron ping {sequence}: no pong")
        idle.reset()


# ------------------------------------------------------------------------------------------- report


def _best_rate(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return max(results, key=lambda r: float(r["messages_per_s"]))


def _best_latency(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return min(results, key=lambda r: float(r["p99_us"]))


def build_cases(
    ours_tp: dict[str, Any], pyaeron_tp: dict[str, Any], ours_rtt: dict[str, Any], pyaeron_rtt: dict[str, Any]
) -> list[BenchCase]:
    return [
        BenchCase(
            "throughput.udp_32b",
            "throughput, 32-byte messages",
            "msgs/s",
            float(ours_tp["messages_per_s"]),
            float(pyaeron_tp["messages_per_s"]),
            THROUGHPUT_TARGET,
            True,
        ),
        BenchCase(
            "latency.udp_32b.p50",
            "round trip p50, 32 bytes",
            "us",
            float(ours_rtt["p50_us"]),
            float(pyaeron_rtt["p50_us"]),
            None,
            False,
        ),
        BenchCase(
            "latency.udp_32b.p99",
            "round trip p99, 32 bytes",
            "us",
            float(ours_rtt["p99_us"]),
            float(pyaeron_rtt["p99_us"]),
            LATENCY_P99_TARGET,
            False,
        ),
    ]


def _configs(idle: str) -> dict[str, str]:
    return {
        "ours_throughput": f"publisher process + subscriber process, {idle} idle",
        "ours_latency": f"ping process + pong process, {idle} idle",
        "pyaeron_throughput": (
            f"one Python thread offering and polling, embedded C driver threading="
            f"{PYAERON_THROUGHPUT_THREADING}"
        ),
        "pyaeron_latency": (
            f"ping process with the embedded C driver (threading={PYAERON_LATENCY_THREADING}, "
            f"driver idle {PYAERON_LATENCY_DRIVER_IDLE}) + pong client process, yielding idle"
        ),
    }


def format_table(cases: Sequence[BenchCase], settings: Settings, idle: str, pyaeron_version: str) -> str:
    width = max(len("case"), *(len(c.title) + len(c.unit) + 3 for c in cases))
    lines = [
        f"transport benchmark: {_environment()}; UDP loopback 127.0.0.1, {MESSAGE_SIZE}-byte messages; "
        f"best of {settings.repeats} alternating rounds; pyaeron {pyaeron_version}",
        "",
        f"{'case':<{width}}  {'ours':>12}  {'pyaeron':>12}  {'ratio':>7}  {'target':>8}  status",
        f"{'-' * width}  {'-' * 12}  {'-' * 12}  {'-' * 7}  {'-' * 8}  ------",
    ]
    for c in cases:
        title = f"{c.title} ({c.unit})"
        number = "{:>12,.0f}" if c.unit == "msgs/s" else "{:>12.1f}"
        lines.append(
            f"{title:<{width}}  {number.format(c.ours)}  {number.format(c.pyaeron)}  {c.ratio:>6.2f}x  "
            f"{c.target_text:>8}  {c.status}"
        )
    lines.extend(verdict_lines(cases, _configs(idle), digits=2))
    return "\n".join(lines)


def to_json(
    cases: Sequence[BenchCase],
    settings: Settings,
    idle: str,
    quick: bool,
    pyaeron_version: str,
    runs: dict[str, list[dict[str, Any]]],
) -> str:
    report = {
        "benchmark": "transport",
        "python": _environment(),
        "pyaeron": pyaeron_version,
        "quick": quick,
        "repeats": settings.repeats,
        "message_size": MESSAGE_SIZE,
        "throughput_seconds": settings.throughput_s,
        "pings": settings.pings,
        "warmup": settings.warmup,
        "configs": _configs(idle),
        "cases": [
            {
                "id": c.id,
                "title": c.title,
                "unit": c.unit,
                "ours": c.ours,
                "pyaeron": c.pyaeron,
                "ratio": c.ratio,
                "target": c.target,
                "higher_is_better": c.higher_is_better,
                "status": c.status,
            }
            for c in cases
        ],
        "missed": [c.id for c in cases if c.status == "MISSED"],
        "runs": runs,
    }
    return json.dumps(report, indent=2)


# ------------------------------------------------------------------------------------------ command


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object with every result")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (a few seconds)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        metavar="N",
        help="alternating rounds (default 3; 1 with --quick)",
    )
    parser.add_argument(
        "--idle",
        choices=("yield", "spin", "backoff", "selector"),
        default="yield",
        help="idle strategy of our loops (default: yield, as pyaeron's loops)",
    )


def run(args: argparse.Namespace) -> int:
    settings = QUICK if args.quick else FULL
    if args.repeats is not None:
        if args.repeats < 1:
            raise _UsageError(f"--repeats must be at least 1, not {args.repeats}")
        settings = Settings(args.repeats, settings.throughput_s, settings.pings, settings.warmup)
    pyaeron = _import_pyaeron()
    version = str(getattr(pyaeron, "__version__", "?"))
    verbose = not (args.json or args.quick)
    runs: dict[str, list[dict[str, Any]]] = {
        "ours_throughput": [],
        "pyaeron_throughput": [],
        "ours_latency": [],
        "pyaeron_latency": [],
    }
    measurements: dict[str, Callable[[], dict[str, Any]]] = {
        "ours_throughput": lambda: _ours_throughput(settings, args.idle),
        "pyaeron_throughput": lambda: _pyaeron_throughput(settings),
        "ours_latency": lambda: _ours_latency(settings, args.idle),
        "pyaeron_latency": lambda: _pyaeron_latency(settings),
    }
    for round_index in range(settings.repeats):
        # alternate which side goes first, as the codec harness does
        order = (
            list(measurements)
            if round_index % 2 == 0
            else ["pyaeron_throughput", "ours_throughput", "pyaeron_latency", "ours_latency"]
        )
        for name in order:
            result = measurements[name]()
            runs[name].append(result)
            if verbose:
                figure = (
                    f"{result['messages_per_s']:,.0f} msgs/s"
                    if "messages_per_s" in result
                    else f"p50 {result['p50_us']:.1f} us, p99 {result['p99_us']:.1f} us"
                )
                _progress(f"round {round_index + 1}: {name}: {figure}")
    cases = build_cases(
        _best_rate(runs["ours_throughput"]),
        _best_rate(runs["pyaeron_throughput"]),
        _best_latency(runs["ours_latency"]),
        _best_latency(runs["pyaeron_latency"]),
    )
    if args.json:
        print(to_json(cases, settings, args.idle, args.quick, version, runs))
    else:
        print(format_table(cases, settings, args.idle, version))
    return 0
