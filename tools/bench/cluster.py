"""``python -m tools bench cluster``: a client of our 3-member cluster against pysyncobj's, side by side.

Both sides are three member processes on 127.0.0.1, measured one after the other in one run:

* **ours**: ``python -m tools cluster up --nodes 3 --service echo`` (real processes, UDP and files in a
  temporary directory), and a client session in this process (``tools.cluster_client.run_client``, the
  code of ``cluster client``) sending 32-byte messages to the echo service.
* **the anchor**: pysyncobj 0.3.17, a replicated counter in three processes
  (``tools.bench.syncobj_node``); the increments are issued, with a callback each, inside the leader's
  process -- pysyncobj's best case, with no client hop.

Three measurements on each side, each bounded by ``--duration`` seconds and ``--count`` messages,
after a warm-up:

1. **windowed throughput**: at most ``--window`` messages (increments) in flight; echoes (callbacks)
   per second from the first send to the last echo;
2. **round trip at a fixed rate** of 5,000 per second: p50, p99 and p99.9 (HdrHistogram);
3. **one at a time**: each message waits for its echo; p50 and p99.

The report is a table with the ratios ours / pysyncobj and the issue's targets -- windowed throughput at
least 3x pysyncobj's, our p50 at 5,000 msg/s at most 1 ms -- and, as information, what Java Aeron
Cluster 1.47 does on 2 cores. A benchmark is not a test: a missed target is printed, the exit status
stays 0. Exit status 1 when a side that was to run could not (its processes did not come up, the
client could not connect); 2 without pysyncobj.

Every process started
is stopped by its pid at the end, on an error and on Ctrl-C: the pysyncobj members are asked to quit
and killed if they have not within a bound; ``cluster up`` gets SIGTERM (it stops its nodes in order)
and, if it has not exited within a bound, SIGKILL, as do any of its nodes still running then.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # imported when the benchmark runs, not when ``bench`` builds its parser
    from tools.cluster_client import ClientResult

__all__ = [
    "JAVA_REFERENCE",
    "LATENCY_TARGET_US",
    "RATE",
    "THROUGHPUT_TARGET",
    "Figures",
    "configure",
    "format_table",
    "report",
    "run",
]

MEMBERS: Final = 3
MESSAGE_SIZE: Final = 32
RATE: Final = 5_000
THROUGHPUT_TARGET: Final = 3.0
"""Our windowed throughput must be at least this many times pysyncobj's."""
LATENCY_TARGET_US: Final = 1_000.0
"""Our p50 round trip at ``RATE`` messages per second must be at most this."""
JAVA_REFERENCE: Final = {
    "system": "Java Aeron Cluster 1.47 on 2 cores",
    "windowed_msgs_per_s": 220_000,
    "rate_p50_us": [300, 600],
    "one_p50_us": 300,
}
DEFAULT_DURATION_S: Final = 5.0
DEFAULT_WINDOW: Final = 64
RATE_WINDOW: Final = 1_000
"""The bound on messages in flight at a fixed rate (a rate the cluster cannot keep fills it)."""
STARTUP_TIMEOUT_S: Final = 90.0
STOP_TIMEOUT_S: Final = 20.0
REQUEST_TIMEOUT_S: Final = 120.0
CLIENT_TIMEOUT_S: Final = 10.0
POLL_INTERVAL_S: Final = 0.1


class BenchmarkDependencyError(RuntimeError):
    """pysyncobj is missing: the dispatcher prints ``error: ...`` and exits 2."""

    is_user_error = True


class _UsageError(ValueError):
    is_user_error = True


class SideError(RuntimeError):
    """One side could not be measured (its processes did not come up, the client could not connect)."""


@dataclass(frozen=True, slots=True)
class Figures:
    """One side's numbers: rates in messages per second, round trips in microseconds."""

    windowed_msgs_per_s: float
    rate_msgs_per_s: float
    rate_p50_us: float | None
    rate_p99_us: float | None
    rate_p99_9_us: float | None
    one_p50_us: float | None
    one_p99_us: float | None
    incomplete: int
    """Messages sent whose echo (callback) never came, over all three measurements."""

    def to_json(self) -> dict[str, Any]:
        return {
            "windowed_msgs_per_s": round(self.windowed_msgs_per_s, 1),
            "rate_msgs_per_s": round(self.rate_msgs_per_s, 1),
            "rate_p50_us": self.rate_p50_us,
            "rate_p99_us": self.rate_p99_us,
            "rate_p99_9_us": self.rate_p99_9_us,
            "one_p50_us": self.one_p50_us,
            "one_p99_us": self.one_p99_us,
            "incomplete": self.incomplete,
        }


@dataclass(frozen=True, slots=True)
class Settings:
    duration_s: float
    count: int | None
    window: int
    warmup_s: float

    def __post_init__(self) -> None:
        if not self.duration_s > 0:
            raise _UsageError(f"--duration {self.duration_s}: must be positive")
        if self.count is not None and self.count < 1:
            raise _UsageError(f"--count {self.count}: must be at least 1")
        if not 1 <= self.window <= 65_536:
            raise _UsageError(f"--window {self.window}: must be 1 to 65536")

    @property
    def limit(self) -> int:
        """Messages per measurement at most: ``count``, or more than the duration can send."""
        return self.count if self.count is not None else 1 << 40


def _environment() -> str:
    return f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}"


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _is_running(pid: int, marker: str) -> bool:
    """Whether ``pid`` is alive and its command line holds ``marker`` (so a reused pid is left alone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            text = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            zombie = stat.read().rpartition(")")[2].split()[:1] == ["Z"]
    except OSError:
        return False
    return marker in text and not zombie


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


# -------------------------------------------------------------------------------------------- child


class _Child:
    """A child process whose stdout lines are read on a thread into a bounded queue; stopped by pid."""

    def __init__(self, argv: Sequence[str], *, stdin: bool, stderr: IO[Any] | int | None) -> None:
        self.process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self.pid = self.process.pid
        self.lines: queue.Queue[str] = queue.Queue(maxsize=100_000)
        self._reader = threading.Thread(target=self._read, name=f"child-{self.pid}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in stdout:
                with contextlib.suppress(queue.Full):  # nobody reads them: drop, never block the child
                    self.lines.put_nowait(line)

    def next_line(self, timeout_s: float) -> str | None:
        try:
            return self.lines.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def send(self, record: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(record) + "\n")
        self.process.stdin.flush()

    def stop(self, signum: int | None, timeout_s: float) -> int:
        """Signal it (``None``: close its stdin instead), wait up to ``timeout_s``, then SIGKILL; reaped."""
        if self.process.poll() is None:
            if signum is None:
                with contextlib.suppress(OSError, ValueError):
                    if self.process.stdin is not None:
                        self.process.stdin.close()
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signum)
        try:
            status = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill(self.pid)
            status = self.process.wait(timeout=timeout_s)
        self._reader.join(5.0)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return status


# ---------------------------------------------------------------------------------------- pysyncobj


def _import_pysyncobj() -> str:
    try:
        import pysyncobj  # type: ignore[import-untyped]  # noqa: F401
    except ImportError as exc:
        raise BenchmarkDependencyError(
            f"bench cluster needs pysyncobj (the anchor): {exc}; scripts/setup.sh installs it"
        ) from exc
    from importlib import metadata

    return metadata.version("pysyncobj")


class SyncObjCluster:
    """Three ``tools.bench.syncobj_node`` processes on 127.0.0.1; ``close`` stops them by pid."""

    def __init__(self, stderr: IO[Any] | int | None) -> None:
        addresses = [f"127.0.0.1:{_free_tcp_port()}" for _ in range(MEMBERS)]
        self.addresses = addresses
        self.nodes: list[_Child] = []
        try:
            for address in addresses:
                partners = ",".join(a for a in addresses if a != address)
                argv = [sys.executable, "-m", "tools.bench.syncobj_node", "--self", address]
                self.nodes.append(_Child([*argv, "--partners", partners], stdin=True, stderr=stderr))
        except BaseException:
            self.close()
            raise

    def ask(
        self, index: int, request: dict[str, Any], timeout_s: float = REQUEST_TIMEOUT_S
    ) -> dict[str, Any]:
        node = self.nodes[index]
        node.send(request)
        line = node.next_line(timeout_s)
        if line is None:
            raise SideError(
                f"pysyncobj member {self.addresses[index]} (pid {node.pid}) did not answer {request}"
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def leader(self, timeout_s: float) -> int:
        """The index of the member all three name as leader, once it is ready."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = [self.ask(i, {"op": "state"}) for i in range(MEMBERS)]
            leaders = {state["leader"] for state in states}
            if len(leaders) == 1 and None not in leaders and all(state["ready"] for state in states):
                return self.addresses.index(leaders.pop())
            time.sleep(POLL_INTERVAL_S)
        raise SideError(f"pysyncobj: no leader all members agree on within {timeout_s:g} s")

    def close(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(OSError, ValueError):
                node.send({"op": "quit"})
        for node in self.nodes:
            node.stop(None, STOP_TIMEOUT_S)


def measure_pysyncobj(settings: Settings, *, verbose: bool) -> Figures:
    """The anchor's three measurements (module docstring)."""
    _import_pysyncobj()
    cluster = SyncObjCluster(stderr=subprocess.DEVNULL)
    try:
        leader = cluster.leader(STARTUP_TIMEOUT_S)

        def measure(mode: str, duration_s: float, window: int) -> dict[str, Any]:
            request = {
                "op": "measure",
                "mode": mode,
                "count": settings.limit,
                "duration_s": duration_s,
                "window": window,
                "rate": RATE,
            }
            result = cluster.ask(leader, request, duration_s + REQUEST_TIMEOUT_S)
            if verbose:
                _progress(f"pysyncobj {mode}: {_summary(result)}")
            return result

        measure("windowed", settings.warmup_s, settings.window)
        windowed = measure("windowed", settings.duration_s, settings.window)
        rate = measure("rate", settings.duration_s, RATE_WINDOW)
        one = measure("one", settings.duration_s, 1)
    finally:
        cluster.close()
    return Figures(
        windowed_msgs_per_s=_per_s(windowed["completed"], windowed["elapsed_s"]),
        rate_msgs_per_s=_per_s(rate["completed"], rate["elapsed_s"]),
        rate_p50_us=rate["p50_us"],
        rate_p99_us=rate["p99_us"],
        rate_p99_9_us=rate["p99_9_us"],
        one_p50_us=one["p50_us"],
        one_p99_us=one["p99_us"],
        incomplete=sum(r["sent"] - r["completed"] for r in (windowed, rate, one)),
    )


def _per_s(count: int, elapsed_s: float) -> float:
    return count / elapsed_s if elapsed_s > 0 else 0.0


def _summary(result: dict[str, Any]) -> str:
    rate = _per_s(result["completed"], result["elapsed_s"])
    return (
        f"{result['completed']} of {result['sent']} in {result['elapsed_s']:.2f} s ({rate:,.0f}/s), "
        f"p50 {result['p50_us']} us, p99 {result['p99_us']} us"
    )


# --------------------------------------------------------------------------------------------- ours


class _LocalCluster:
    """``cluster up --nodes 3 --service echo`` as a child; its first line and the members' status."""

    def __init__(self, directory: Path, stderr: IO[Any] | int | None) -> None:
        from tools.node_processes import free_base_port

        argv = [sys.executable, "-m", "tools", "cluster", "up", "--nodes", str(MEMBERS), "--dir"]
        argv += [str(directory), "--base-port", str(free_base_port(MEMBERS)), "--service", "echo"]
        self.child = _Child(argv, stdin=False, stderr=stderr)
        self.node_pids: list[int] = []
        self.status: dict[int, dict[str, Any]] = {}

    def ingress_endpoints(self, timeout_s: float) -> str:
        line = self.child.next_line(timeout_s)
        if line is None:
            status = self.child.process.poll()
            raise SideError(f"cluster up printed nothing within {timeout_s:g} s (exit status {status})")
        first = json.loads(line)
        self.node_pids = [int(pid) for pid in first["pids"]]
        return str(first["ingressEndpoints"])

    def await_leader(self, timeout_s: float) -> None:
        """Until one member leads and every member has completed the election in its term."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.child.next_line(POLL_INTERVAL_S)
            if line is not None:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    record = json.loads(line)
                    if "role" in record:
                        self.status[int(record["member"])] = record
            statuses = list(self.status.values())
            leaders = [s for s in statuses if s["role"] == "LEADER" and s["state"] == "CLOSED"]
            if (
                len(statuses) == MEMBERS
                and leaders
                and all(s["state"] == "CLOSED" and s["term"] == leaders[0]["term"] for s in statuses)
            ):
                return
            if self.child.process.poll() is not None:
                raise SideError(f"cluster up exited with status {self.child.process.returncode}")
        raise SideError(f"no leader within {timeout_s:g} s: {self.status}")

    def close(self) -> None:
        self.child.stop(signal.SIGTERM, STOP_TIMEOUT_S)
        for pid in self.node_pids:  # orphans of a cluster up that had to be killed
            if _is_running(pid, "tools node"):
                _kill(pid)


def _client_run(
    endpoints: str,
    settings: Settings,
    name: str,
    *,
    window: int,
    rate: float,
    duration_s: float,
    verbose: bool,
) -> ClientResult:
    """One ``run_client`` session of 32-byte messages against ``endpoints`` (``SideError`` if it could
    not send at all)."""
    from cluster.transport.driver import Transport, TransportConfig
    from tools.cluster_client import (
        DEFAULT_EGRESS_CHANNEL,
        ClientSettings,
        PacedSelectorIdleStrategy,
        run_client,
    )

    client_settings = ClientSettings(
        count=settings.limit,
        sizes=(MESSAGE_SIZE,),
        window=window,
        rate=rate,
        timeout_s=CLIENT_TIMEOUT_S,
        duration_s=duration_s,
    )
    errors: list[str] = []
    idle = PacedSelectorIdleStrategy()
    try:
        transport = Transport(config=TransportConfig(bind_host="127.0.0.1"), idle=idle)
        try:
            result = run_client(
                transport,
                client_settings,
                egress_channel=DEFAULT_EGRESS_CHANNEL,
                ingress_endpoints=endpoints,
                idle=idle,
                on_error=errors.append,
            )
        finally:
            transport.close()
    finally:
        idle.close()
    if result.sent == 0:
        raise SideError(f"our client could not run: {'; '.join(errors) or 'nothing sent'}")
    if verbose:
        _progress(
            f"ours {name}: {result.echoed} of {result.sent} in {result.elapsed_s:.2f} s "
            f"({result.echo_rate:,.0f}/s), p50 {result.p50_us} us, p99 {result.p99_us} us"
        )
    return result


def measure_ours(settings: Settings, *, verbose: bool) -> Figures:
    """Our three measurements (module docstring) against a local cluster of processes."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-cluster-") as directory,
        open(Path(directory) / "cluster-up.stderr", "w", encoding="utf-8") as stderr,
    ):
        cluster = _LocalCluster(Path(directory) / "cluster", stderr)
        try:
            endpoints = cluster.ingress_endpoints(STARTUP_TIMEOUT_S)
            cluster.await_leader(STARTUP_TIMEOUT_S)

            def client(name: str, window: int, rate: float, duration_s: float) -> ClientResult:
                return _client_run(
                    endpoints,
                    settings,
                    name,
                    window=window,
                    rate=rate,
                    duration_s=duration_s,
                    verbose=verbose,
                )

            client("warm-up", settings.window, 0, settings.warmup_s)
            windowed = client("windowed", settings.window, 0, settings.duration_s)
            rate = client("rate", RATE_WINDOW, RATE, settings.duration_s)
            one = client("one", 1, 0, settings.duration_s)
        finally:
            cluster.close()
    return Figures(
        windowed_msgs_per_s=windowed.echo_rate,
        rate_msgs_per_s=rate.echo_rate,
        rate_p50_us=rate.p50_us,
        rate_p99_us=rate.p99_us,
        rate_p99_9_us=rate.p99_9_us,
        one_p50_us=one.p50_us,
        one_p99_us=one.p99_us,
        incomplete=sum(r.sent - r.echoed for r in (windowed, rate, one)),
    )


# ------------------------------------------------------------------------------------------- report

_ROWS: Final = (
    ("windowed", "windowed throughput (msgs/s)", "windowed_msgs_per_s"),
    ("rate_achieved", f"rate achieved at {RATE:,}/s (msgs/s)", "rate_msgs_per_s"),
    ("rate_p50", f"round trip p50 at {RATE:,}/s (us)", "rate_p50_us"),
    ("rate_p99", f"round trip p99 at {RATE:,}/s (us)", "rate_p99_us"),
    ("rate_p99_9", f"round trip p99.9 at {RATE:,}/s (us)", "rate_p99_9_us"),
    ("one_p50", "one at a time p50 (us)", "one_p50_us"),
    ("one_p99", "one at a time p99 (us)", "one_p99_us"),
)


def _ratio(ours: float | None, anchor: float | None) -> float | None:
    if ours is None or anchor is None or anchor <= 0:
        return None
    return ours / anchor


def _targets(ours: Figures | None, anchor: Figures | None) -> list[dict[str, Any]]:
    throughput = None
    if ours is not None and anchor is not None:
        throughput = _ratio(ours.windowed_msgs_per_s, anchor.windowed_msgs_per_s)
    p50 = None if ours is None else ours.rate_p50_us
    return [
        {
            "id": "windowed_throughput_vs_pysyncobj",
            "title": "windowed throughput, ours / pysyncobj",
            "target": f">= {THROUGHPUT_TARGET:g}x",
            "value": None if throughput is None else round(throughput, 3),
            "status": "n/a" if throughput is None else "ok" if throughput >= THROUGHPUT_TARGET else "MISSED",
        },
        {
            "id": "rate_p50_us",
            "title": f"our round trip p50 at {RATE:,} msg/s",
            "target": f"<= {LATENCY_TARGET_US:g} us",
            "value": p50,
            "status": "n/a" if p50 is None else "ok" if p50 <= LATENCY_TARGET_US else "MISSED",
        },
    ]


def report(
    settings: Settings,
    ours: Figures | None,
    ours_skipped: str | None,
    anchor: Figures | None,
    anchor_skipped: str | None,
    pysyncobj_version: str,
) -> dict[str, Any]:
    """The JSON report (``--json`` prints it; the table is made from it)."""
    ratios = {
        row_id: _ratio(getattr(ours, field) if ours else None, getattr(anchor, field) if anchor else None)
        for row_id, _, field in _ROWS
    }
    targets = _targets(ours, anchor)
    return {
        "benchmark": "cluster",
        "python": _environment(),
        "pysyncobj": pysyncobj_version,
        "members": MEMBERS,
        "message_size": MESSAGE_SIZE,
        "rate": RATE,
        "duration_s": settings.duration_s,
        "count": settings.count,
        "window": settings.window,
        "ours": None if ours is None else ours.to_json(),
        "ours_skipped": ours_skipped,
        "anchor": None if anchor is None else anchor.to_json(),
        "anchor_skipped": anchor_skipped,
        "ratios": {key: None if value is None else round(value, 3) for key, value in ratios.items()},
        "targets": targets,
        "missed": [target["id"] for target in targets if target["status"] == "MISSED"],
        "java_reference": JAVA_REFERENCE,
    }


def _cell(value: float | None, rate: bool) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if rate else f"{value:,.1f}"


def format_table(data: dict[str, Any]) -> str:
    ours, anchor = data["ours"] or {}, data["anchor"] or {}
    width = max(len(title) for _, title, _ in _ROWS)
    lines = [
        f"cluster benchmark: {_environment()}; {MEMBERS} member processes on 127.0.0.1 each side, "
        f"{MESSAGE_SIZE}-byte messages, window {data['window']}, {data['duration_s']:g} s per measurement",
        f"ours: cluster up --service echo and a cluster client; anchor: pysyncobj {data['pysyncobj']} "
        "replicated counter, increments issued in the leader's process",
        "",
        f"{'measurement':<{width}}  {'ours':>12}  {'pysyncobj':>12}  {'ratio':>8}",
        f"{'-' * width}  {'-' * 12}  {'-' * 12}  {'-' * 8}",
    ]
    for row_id, title, field in _ROWS:
        rate = field.endswith("per_s")
        ratio = data["ratios"][row_id]
        ratio_text = "-" if ratio is None else f"{ratio:.2f}x"
        lines.append(
            f"{title:<{width}}  {_cell(ours.get(field), rate):>12}  {_cell(anchor.get(field), rate):>12}  "
            f"{ratio_text:>8}"
        )
    lines.append("")
    if data["ours_skipped"]:
        lines.append(f"ours skipped: {data['ours_skipped']}")
    if data["anchor_skipped"]:
        lines.append(f"pysyncobj skipped: {data['anchor_skipped']}")
    for side, figures in (("ours", ours), ("pysyncobj", anchor)):
        if figures.get("incomplete"):
            lines.append(f"{side}: {figures['incomplete']} messages sent were never answered")
    lines.append("targets:")
    for target in data["targets"]:
        value = "-" if target["value"] is None else f"{target['value']:g}"
        lines.append(f"  {target['title']}: {value}, target {target['target']}: {target['status']}")
    java = data["java_reference"]
    lines.append(
        f"reference (information): {java['system']}: ~{java['windowed_msgs_per_s']:,} msg/s windowed, p50 "
        f"{java['rate_p50_us'][0] / 1000:g}-{java['rate_p50_us'][1] / 1000:g} ms at {RATE:,} msg/s, "
        f"~{java['one_p50_us'] / 1000:g} ms one at a time"
    )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ command


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION_S,
        metavar="S",
        help=f"seconds per measurement, at most (default {DEFAULT_DURATION_S:g})",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        metavar="N",
        help="messages per measurement, at most (default: no limit)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        metavar="W",
        help=f"messages in flight in the windowed measurement (default {DEFAULT_WINDOW})",
    )
    parser.add_argument(
        "--sides",
        choices=("both", "ours", "pysyncobj"),
        default="both",
        help="which sides to measure (default both)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    settings = Settings(
        duration_s=args.duration, count=args.count, window=args.window, warmup_s=min(1.0, args.duration)
    )
    version = _import_pysyncobj()
    verbose = not args.json
    ours = anchor = None
    ours_skipped = anchor_skipped = None
    failed = False
    steps: list[tuple[str, Callable[[], None]]] = []

    def run_ours() -> None:
        nonlocal ours
        ours = measure_ours(settings, verbose=verbose)

    def run_anchor() -> None:
        nonlocal anchor
        anchor = measure_pysyncobj(settings, verbose=verbose)

    if args.sides in ("both", "ours"):
        steps.append(("ours", run_ours))
    else:
        ours_skipped = "not asked for (--sides pysyncobj)"
    if args.sides in ("both", "pysyncobj"):
        steps.append(("pysyncobj", run_anchor))
    else:
        anchor_skipped = "not asked for (--sides ours)"
    for name, step in steps:
        try:
            step()
        except SideError as error:
            failed = True
            message = f"could not be measured: {error}"
            print(f"bench cluster: {name} {message}", file=sys.stderr, flush=True)
            if name == "ours":
                ours_skipped = message
            else:
                anchor_skipped = message
    data = report(settings, ours, ours_skipped, anchor, anchor_skipped, version)
    print(json.dumps(data, indent=2) if args.json else format_table(data), flush=True)
    return 1 if failed else 0
