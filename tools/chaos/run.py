"""One chaos run: a local cluster of real node processes with the key-value service, concurrent clients
whose every operation is recorded, a nemesis, then the checkers; every process stopped by its pid.

Theory of operation
-------------------
Everything runs on one thread, in one loop (``_step``): each client's transport and ``KvClient`` (the
simulator's key-value client, here on real UDP, with the harness's monotonic clock as its ``now_ns``),
the nemesis's state machine, and a watch for member processes that exit when no fault explains it. The
node processes are ``ProcessCluster``'s children; what they print (role, election state, term,
positions) is all the harness knows of them.

The phases, each bounded:

1. **Start.** Every member starts on free ports of 127.0.0.1 and in the run's directory; a leader must
   be elected and every member must follow it within ``START_TIMEOUT_S``.
2. **Workload under faults** for ``seconds``: ``clients`` clients each keep one request outstanding
   (reads, writes and compare-and-sets on two shared keys; unique values), while the nemesis injects
   its seeded faults, one at a time or two together (``tools.chaos.nemesis``). Every operation goes to
   the history file as it ends.
3. **Healing.** The faults in progress are healed at once (restart, SIGCONT); every member must be back
   in the leader's term within ``REJOIN_TIMEOUT_S``.
4. **Liveness.** The clients go on until a write invoked after the healing is acknowledged, within
   ``LIVENESS_TIMEOUT_S``; then they stop (a request still outstanding becomes indeterminate).
5. **Final reads.** A fresh session reads every key; these reads join the history (client 0).
6. **Convergence.** Every member must show the same commit position within ``CONVERGE_TIMEOUT_S``.
7. **Stop.** Every member process is resumed (SIGCONT) and stopped by its pid, SIGTERM then SIGKILL --
   in a ``finally``, so also when the harness fails or is interrupted.
8. **The logs.** Every member's log, read back from its archive with ``python -m tools archive dump``,
   must hold the same frames and messages below that commit position (``tools.chaos.logs``).

Then the checkers (``tools.chaos.checkers``) run on the history *as read back from the file*, and the
run's ``summary`` is the JSON object ``python -m tools chaos`` prints last.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from cluster.client.aeron_cluster import AeronCluster, ClusterClientError
from cluster.client.protocol import Message, NewLeader
from cluster.consensus.sim_kv_client import KEYS, KvClient
from cluster.service.kv import KvError, decode_reply, encode_read
from cluster.sim.linearizability import UNKNOWN, Operation
from cluster.transport.driver import Transport, TransportConfig
from tools.chaos.checkers import (
    FINAL_READER,
    check_linearizable,
    lost_writes,
    recovery_ms,
    summarise_ms,
)
from tools.chaos.disks import FILLER, DiskError, MemberDisks
from tools.chaos.disks import unavailable as disks_unavailable
from tools.chaos.history import HistoryWriter, read_history
from tools.chaos.logs import LogComparison, compare_logs
from tools.chaos.nemesis import NETWORK_KINDS, REJOIN_TIMEOUT_S, FaultKind, FaultRecord, Nemesis, Schedule
from tools.chaos.netlab import NetLab, NetLabError, sweep_stale, unavailable
from tools.node_processes import ClusterView, NodeProcess, ProcessCluster, describe_exit, ingress_endpoints

__all__ = [
    "CHAOS_SETTINGS",
    "LIVENESS_TIMEOUT_S",
    "ChaosConfig",
    "ChaosError",
    "ChaosRun",
    "run_chaos",
]

HEARTBEAT_TIMEOUT_S: Final = 2.0
CHAOS_SETTINGS: Final[Mapping[str, object]] = {
    "cluster.service.class": "kv",
    # Aeron's timeouts scaled down (the process tests' and the demo's), so a failover takes seconds
    "cluster.log.channel": "aeron:udp?term-length=64k",
    "cluster.leader.heartbeat.timeout": f"{HEARTBEAT_TIMEOUT_S:g}s",
    "cluster.startup.canvass.timeout": "4s",
    "cluster.election.timeout": "500ms",
}
DISK_BYTES: Final = 64 << 20
"""Each member's tmpfs with the disk nemesis: some ten times what a 5-minute run records."""
DISK_SEGMENT_LENGTH: Final = "1m"
"""Archive segment files small enough that a new one is made often, and fits a small disk."""
START_TIMEOUT_S: Final = 30.0
LIVENESS_TIMEOUT_S: Final = 30.0
"""After the healing: the bound within which the cluster must take a write again."""
CONVERGE_TIMEOUT_S: Final = 15.0
FINAL_READ_TIMEOUT_S: Final = 30.0
CLIENT_TIMEOUT_NS: Final = 2_500_000_000
"""A request with no reply within this is indeterminate (``KvClient``'s timeout; after two in a row the
client opens a new session). A request lost with a leader holds its client this long, so it is also the
floor of a recovery time after a fault that loses requests. Shorter is worse: a client that closes its
session during an election (two timeouts) spends seconds connecting a new one, while a session kept
open is told of the new leader and carries on."""
IDLE_SLEEP_S: Final = 0.0005
MAX_VIOLATIONS_SHOWN: Final = 20


class ChaosError(Exception):
    """A run that cannot start as asked."""

    is_user_error = True


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    nodes: int
    seconds: float
    kinds: tuple[FaultKind, ...]
    seed: int
    directory: Path
    clients: int = 3
    settings: Mapping[str, object] = field(default_factory=lambda: dict(CHAOS_SETTINGS))


class _ChaosKvClient(KvClient):
    """The simulator's ``KvClient``, except that news of a new leader ends its outstanding request at
    once, as indeterminate (always safe: it may or may not take effect), instead of waiting out the
    timeout: a request sent to a deposed leader is lost or already in the log, and a timeout spent on it
    -- then a second one on a request sent before the news arrived -- would measure the client, not the
    cluster."""

    def _on_event(self, event: object, now_ns: int) -> None:
        outstanding = self._outstanding
        if isinstance(event, NewLeader) and outstanding is not None:
            _, input, call = outstanding
            self.history.append(Operation(self.client_id, input, call, UNKNOWN, None))
            self._outstanding = None
            return
        super()._on_event(event, now_ns)


class _RecordingView(ClusterView):
    """A ``ClusterView`` that also appends every line a member prints to a JSON-lines file, with the
    harness's time it arrived (``atS``): the members' own account of the run, for a post-mortem."""

    def __init__(self, path: Path, t0_ns: int) -> None:
        super().__init__()
        self._t0_s = t0_ns / 1e9
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 -- closed by close()
        self._file_lock = threading.Lock()

    def on_line(self, process: NodeProcess, line: str) -> None:
        super().on_line(process, line)
        at_s = round(time.monotonic() - self._t0_s, 3)
        with self._file_lock:
            if not self._file.closed:
                self._file.write(
                    f'{{"atS": {at_s}, "pid": {process.pid}, "line": {json.dumps(line.rstrip())}}}\n'
                )
                self._file.flush()

    def close(self) -> None:
        with self._file_lock:
            self._file.close()


class _FinalReader:
    """A session of its own that reads every key once, retrying a read with no reply under a new
    request id; each attempt is an operation of client 0."""

    def __init__(self, transport: Transport, endpoints: str, egress_channel: str) -> None:
        self.transport = transport
        self.endpoints = endpoints
        self.egress_channel = egress_channel
        self.session: AeronCluster | None = None
        self.pending = list(KEYS)
        self.history: list[Operation] = []
        self.reads: dict[bytes, Operation] = {}
        self._next_request_id = 1
        self._outstanding: tuple[int, bytes, int] | None = None

    @property
    def done(self) -> bool:
        return not self.pending and self._outstanding is None

    def do_work(self, now_ns: int) -> None:
        session = self.session
        try:
            if session is None:
                session = self.session = AeronCluster.begin_connect(
                    self.transport,
                    egress_channel=self.egress_channel,
                    ingress_endpoints=self.endpoints,
                )
            if not session.poll_connect():
                return
            session.poll_egress(lambda event: self._on_event(event, now_ns))
        except ClusterClientError:
            if session is not None:
                session.close()
            self.session = session = None
        outstanding = self._outstanding
        if outstanding is not None and (
            session is None or session.is_closed or now_ns - outstanding[2] >= CLIENT_TIMEOUT_NS
        ):
            self.history.append(
                Operation(FINAL_READER, ("read", outstanding[1]), outstanding[2], UNKNOWN, None)
            )
            self.pending.insert(0, outstanding[1])
            self._outstanding = None
        if session is not None and session.is_closed:
            self.session = session = None
        if session is not None and self._outstanding is None and self.pending:
            key = self.pending[0]
            try:
                taken = session.offer(encode_read(self._next_request_id, key)) > 0
            except ClusterClientError:
                taken = False
            if taken:
                self._outstanding = (self._next_request_id, key, now_ns)
                self._next_request_id += 1
                self.pending.pop(0)

    def _on_event(self, event: object, now_ns: int) -> None:
        outstanding = self._outstanding
        if not isinstance(event, Message) or outstanding is None:
            return
        try:
            reply = decode_reply(event.payload)
        except KvError:
            return
        if reply.request_id != outstanding[0]:
            return
        op = Operation(FINAL_READER, ("read", outstanding[1]), outstanding[2], reply.value, now_ns)
        self.history.append(op)
        self.reads[outstanding[1]] = op
        self._outstanding = None

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


class ChaosRun:
    """One run (module docstring); ``execute()`` returns the summary."""

    def __init__(self, config: ChaosConfig, say: Callable[[str], object] = lambda text: None) -> None:
        self.config = config
        self.directory = config.directory.absolute()
        if self.directory.exists() and any(self.directory.iterdir()):
            raise ChaosError(
                f"the run's directory {self.directory} is not empty: a run needs fresh member directories"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.history_path = self.directory / "history.jsonl"
        self.faults_path = self.directory / "faults.jsonl"
        self.nodes_path = self.directory / "nodes.jsonl"
        self._say = say
        self._t0_ns = time.monotonic_ns()
        self.violations: list[str] = []
        self.cluster: ProcessCluster | None = None
        self.lab: NetLab | None = None
        self.clock_files: list[Path] = []
        self.disks: MemberDisks | None = None
        self.nemesis: Nemesis | None = None
        self.clients: list[KvClient] = []
        self._retired: list[KvClient] = []  # the clients once the workload is over
        self._written: list[int] = []
        self._history: HistoryWriter | None = None
        self._exits_reported: set[int] = set()
        self.liveness_ms: float | None = None
        self.stop_statuses: dict[int, int] = {}
        self.final_commit: int | None = None
        """The commit position every member reached at the end (``None``: they did not converge)."""
        self.logs: LogComparison | None = None

    # ------------------------------------------------------------------------------------- time, words

    def now_ns(self) -> int:
        return time.monotonic_ns() - self._t0_ns

    def now_s(self) -> float:
        return self.now_ns() / 1e9

    def say(self, text: str) -> None:
        self._say(f"{self.now_s():6.1f} s  {text}")

    # --------------------------------------------------------------------------------------- the loop

    def _step(self) -> int:
        work = 0
        now_ns = self.now_ns()
        assert self._history is not None
        for index, client in enumerate(self.clients):
            work += client.transport.do_work()
            client.do_work(now_ns)
            if len(client.history) > self._written[index]:
                self._history.write(client.history[self._written[index] :])
                self._written[index] = len(client.history)
                work += 1
        if self.nemesis is not None:
            work += self.nemesis.do_work(now_ns / 1e9)
        self._watch_exits()
        return work

    def _watch_exits(self) -> None:
        cluster = self.cluster
        assert cluster is not None
        down = self.nemesis.may_exit if self.nemesis is not None else set()
        for member, process in cluster.processes.items():
            status = process.poll()
            if status is not None and member not in down and process.pid not in self._exits_reported:
                self._exits_reported.add(process.pid)
                self.violations.append(
                    f"member {member} (pid {process.pid}) exited unasked: {describe_exit(status)}; "
                    f"see {cluster.stderr_path(member)}"
                )
                self.say(f"member {member} exited: {describe_exit(status)}")

    def _run_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = self.now_s() + timeout_s
        while not condition():
            if self.now_s() >= deadline:
                return False
            if self._step() == 0:
                time.sleep(IDLE_SLEEP_S)
        return True

    # ------------------------------------------------------------------------------------- the phases

    def execute(self) -> dict[str, Any]:
        """Run every phase, stop every process, check; the summary."""
        config = self.config
        self._history = HistoryWriter(self.history_path)
        final_reads: dict[bytes, Operation] = {}
        try:
            self.cluster = cluster = self._make_cluster()
            cluster.view = _RecordingView(self.nodes_path, self._t0_ns)
            cluster.start_all()
            pids = ", ".join(f"member {m} pid {p.pid}" for m, p in cluster.processes.items())
            self.say(f"started {config.nodes} members ({pids}) in {self.directory}")
            if cluster.wait_for(cluster.settled, START_TIMEOUT_S):
                leader = cluster.leader()
                assert leader is not None
                self.say(f"member {leader.member} leads term {leader.term}")
                self._workload(cluster)
                final_reads = self._final_reads(cluster)
                self._converge(cluster)
            else:
                self.violations.append(
                    f"no leader elected and followed within {START_TIMEOUT_S:g} s of the start"
                )
        finally:
            try:
                self._stop()
                if self.cluster is not None and self.final_commit is not None:
                    self._compare_logs(self.cluster, self.final_commit)
            finally:
                if self.disks is not None:  # the members' files live there: only after the comparison
                    if self.violations:
                        self._keep_member_files()
                    self.disks.close()
        return self._summary(self.nemesis.faults if self.nemesis is not None else [], final_reads)

    def _keep_member_files(self) -> None:
        """A failed run with the disk nemesis: copy each member's directory off its tmpfs (which goes with
        the run) to ``kept/node<i>`` in the run's directory, for the post-mortem."""
        assert self.disks is not None
        for member, path in enumerate(self.disks.paths):
            with contextlib.suppress(OSError):
                shutil.copytree(
                    path, self.directory / "kept" / f"node{member}", ignore=shutil.ignore_patterns(FILLER)
                )
        self.say(f"the members' directories are kept in {self.directory / 'kept'}")

    def _compare_logs(self, cluster: ProcessCluster, position: int) -> None:
        self.logs = compare_logs(cluster.configs, position)
        self.violations.extend(self.logs.violations)
        agree = "agree" if not self.logs.violations else "DISAGREE"
        self.say(
            f"the members' logs {agree} below {position} ({self.logs.records} frames and messages each, "
            "read with python -m tools archive dump)"
        )

    def _make_cluster(self) -> ProcessCluster:
        """The members on 127.0.0.1; each in a network namespace of its own (a ``NetLab``) when a network
        nemesis is asked for; each with a clock file when the clock nemesis is."""
        config = self.config
        if FaultKind.CLOCK in config.kinds:
            self.clock_files = [self.directory / f"node{member}.clock" for member in range(config.nodes)]
        settings = dict(config.settings)
        if FaultKind.DISK in config.kinds:
            reason = disks_unavailable()
            if reason is not None:
                raise ChaosError(f"the disk nemesis needs small disks of its own, and {reason}")
            try:
                self.disks = MemberDisks.create(self.directory, config.nodes, DISK_BYTES)
            except DiskError as error:
                raise ChaosError(f"cannot mount the members' disks: {error}") from None
            settings.setdefault("archive.segment.file.length", DISK_SEGMENT_LENGTH)
            self.say(f"members' directories on tmpfs disks of {DISK_BYTES // (1 << 20)} MiB each")

        def node_args(member: int) -> list[str]:
            return ["--clock-file", str(self.clock_files[member])] if self.clock_files else []

        if not NETWORK_KINDS & set(config.kinds):
            return ProcessCluster(self.directory, config.nodes, settings, node_args=node_args)
        reason = unavailable()
        if reason is not None:
            wanted = ", ".join(sorted(kind.value for kind in NETWORK_KINDS & set(config.kinds)))
            raise ChaosError(f"the {wanted} nemesis needs network namespaces, and {reason}")
        for leftover in sweep_stale():
            self.say(f"removed {leftover}, left by a run whose harness is gone")
        try:
            self.lab = lab = NetLab.create(
                config.nodes, relay=FaultKind.LOSS in config.kinds, directory=self.directory, seed=config.seed
            )
        except NetLabError as error:
            raise ChaosError(f"cannot build the run's network: {error}") from None
        self.say(f"members in network namespaces {', '.join(lab.namespaces)}, clients on {lab.client_host}")
        return ProcessCluster(
            self.directory,
            config.nodes,
            settings,
            hosts=lab.hosts,
            client_host=lab.client_host,
            prefix=lab.prefix,
            node_args=node_args,
        )

    def _client_transport(self) -> Transport:
        assert self.cluster is not None
        return Transport(config=TransportConfig(bind_host=self.cluster.client_host))

    def _workload(self, cluster: ProcessCluster) -> None:
        config = self.config
        endpoints = ingress_endpoints(cluster.configs[0].members)
        for client_id in range(1, config.clients + 1):
            transport = self._client_transport()
            self.clients.append(
                _ChaosKvClient(
                    client_id,
                    transport,
                    endpoints,
                    f"aeron:udp?endpoint={cluster.client_host}:0",
                    config.seed * 1000 + client_id,
                    timeout_ns=CLIENT_TIMEOUT_NS,
                )
            )
            self._written.append(0)
        schedule = Schedule(config.seed, config.kinds, HEARTBEAT_TIMEOUT_S)
        self.nemesis = nemesis = Nemesis(
            cluster,
            schedule,
            self.faults_path,
            now_s=self.now_s(),
            origin_s=self._t0_ns / 1e9,
            say=self.say,
            lab=self.lab,
            clock_files=self.clock_files,
            disks=self.disks,
        )
        end_s = self.now_s() + config.seconds
        self._run_until(lambda: self.now_s() >= end_s, config.seconds + 1)
        nemesis.stop_injecting(self.now_s())
        nemesis.heal_all(self.now_s())
        healed_ns = self.now_ns()
        self.say("workload over: healing every fault")
        if not self._run_until(self._all_rejoined, REJOIN_TIMEOUT_S):
            self.violations.append(
                f"not every member was back in the leader's term within {REJOIN_TIMEOUT_S:g} s of the "
                f"healing: {cluster.view.statuses()}"
            )
        else:
            self.say("every member is back in the leader's term")
        self.violations.extend(nemesis.violations)

        def wrote_after_healing() -> bool:
            return any(
                op.call >= healed_ns and op.return_ is not None and op.input[0] in ("write", "cas")  # type: ignore[index]
                for client in self.clients
                for op in client.history[-20:]
            )

        if self._run_until(wrote_after_healing, LIVENESS_TIMEOUT_S):
            first = min(
                op.return_
                for client in self.clients
                for op in client.history
                if op.call >= healed_ns and op.return_ is not None and op.input[0] in ("write", "cas")  # type: ignore[index]
            )
            self.liveness_ms = (first - healed_ns) / 1e6
            self.say(f"the cluster took a write {self.liveness_ms:.0f} ms after the healing")
        else:
            self.violations.append(f"no write acknowledged within {LIVENESS_TIMEOUT_S:g} s of the healing")
        assert self._history is not None
        for index, client in enumerate(self.clients):
            client.finish()
            self._history.write(client.history[self._written[index] :])
            self._written[index] = len(client.history)
            client.close()
        self._retired, self.clients = self.clients, []

    def _all_rejoined(self) -> bool:
        cluster = self.cluster
        assert cluster is not None
        leader = cluster.leader()
        if leader is None or len(cluster.running()) != self.config.nodes:
            return False
        for member in range(self.config.nodes):
            status = cluster.view.status(member)
            if status is None or status.state != "CLOSED" or status.term != leader.term:
                return False
        return True

    def _final_reads(self, cluster: ProcessCluster) -> dict[bytes, Operation]:
        transport = self._client_transport()
        reader = _FinalReader(
            transport,
            ingress_endpoints(cluster.configs[0].members),
            f"aeron:udp?endpoint={cluster.client_host}:0",
        )
        assert self._history is not None
        try:

            def read_all() -> bool:
                reader.do_work(self.now_ns())
                return reader.done

            def step() -> bool:
                transport.do_work()
                return read_all()

            if not self._run_until(step, FINAL_READ_TIMEOUT_S):
                missing = [key for key in KEYS if key not in reader.reads]
                self.violations.append(f"no final read of {missing!r} within {FINAL_READ_TIMEOUT_S:g} s")
            self._history.write(reader.history)
            shown = ", ".join(f"{key.decode()} = {op.output!r}" for key, op in reader.reads.items())
            self.say(f"final reads: {shown}")
            return reader.reads
        finally:
            reader.close()
            transport.close()

    def _converge(self, cluster: ProcessCluster) -> None:
        def converged() -> bool:
            statuses = cluster.view.statuses()
            commits = {status.commit_position for status in statuses.values()}
            return len(statuses) == self.config.nodes and len(commits) == 1

        if self._run_until(converged, CONVERGE_TIMEOUT_S):
            position = next(iter(cluster.view.statuses().values())).commit_position
            self.final_commit = position
            self.say(f"every member at commit position {position}")
        else:
            self.violations.append(
                f"the members' commit positions did not converge within {CONVERGE_TIMEOUT_S:g} s: "
                f"{ {m: s.commit_position for m, s in cluster.view.statuses().items()} }"
            )

    def _stop(self) -> None:
        """Resume and stop every member process by pid; close the clients (always runs)."""
        try:
            if self.nemesis is not None:
                self.nemesis.resume_everything()
                self.nemesis.close()
        finally:
            try:
                if self.cluster is not None:
                    self.stop_statuses = self.cluster.close()
                    if isinstance(self.cluster.view, _RecordingView):
                        self.cluster.view.close()
                    stopped = ", ".join(
                        f"member {m} {describe_exit(s)}" for m, s in self.stop_statuses.items()
                    )
                    self.say(f"stopped every node process: {stopped}")
            finally:
                for client in self.clients + self._retired:
                    client.close()
                    client.transport.close()
                if self._history is not None:
                    self._history.close()
                if self.lab is not None:  # after the members: none is left in a namespace
                    self.lab.close()

    # ------------------------------------------------------------------------------------ the verdict

    def _summary(
        self, faults: Sequence[FaultRecord], final_reads: Mapping[bytes, Operation]
    ) -> dict[str, Any]:
        history = read_history(self.history_path)
        workload = [op for op in history if op.client_id != FINAL_READER]
        verdict = check_linearizable(history)
        if verdict.ok is False:
            self.violations.append(verdict.explain())
        elif verdict.ok is None:
            self.violations.append(f"linearizability unknown: {verdict.explain()}")
        lost, phantoms = lost_writes(history, final_reads.values())
        self.violations.extend(item.describe() for item in lost[:MAX_VIOLATIONS_SHOWN])
        self.violations.extend(phantoms)
        figures = recovery_ms(history, [round(fault.injected_s * 1e9) for fault in faults])
        for fault, figure in zip(faults, figures, strict=True):
            took = (
                "no write acknowledged after it"
                if figure is None
                else f"a write acknowledged {figure:.0f} ms later"
            )
            self._say(f"  at {fault.injected_s:6.1f} s  {fault.describe()}: {took}")
        counts = {kind.value: 0 for kind in self.config.kinds}
        for fault in faults:
            counts[fault.kind.value] += 1
        return {
            "operations": len(workload),
            "acknowledged": sum(1 for op in workload if op.return_ is not None),
            "indeterminate": sum(1 for op in workload if op.return_ is None),
            "lost": len(lost),
            "linearizable": verdict.ok,
            "faults": counts,
            "overlapping": sum(1 for fault in faults if fault.during is not None),
            "at_transitions": sum(1 for fault in faults if fault.trigger),
            "recovery_ms": summarise_ms(figures),
            "liveness_ms": None if self.liveness_ms is None else round(self.liveness_ms, 1),
            "logs": None
            if self.logs is None
            else {
                "position": self.logs.position,
                "records": self.logs.records,
                "agree": not self.logs.violations,
            },
            "violations": self.violations,
            "nodes": self.config.nodes,
            "seconds": self.config.seconds,
            "seed": self.config.seed,
            "directory": str(self.directory),
        }


def run_chaos(config: ChaosConfig, say: Callable[[str], object] = lambda text: None) -> dict[str, Any]:
    """One chaos run; its summary."""
    return ChaosRun(config, say).execute()
