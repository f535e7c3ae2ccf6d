"""Cluster members as child processes: ``python -m tools node`` per member of a local cluster, each
watched through its stdout and always stopped by its pid. Used by ``cluster up``, ``bench failover``
and the process tests.

* ``local_configs`` are the configurations of ``NodeConfig.local_cluster`` under a directory,
  ``write_configs`` writes them as ``DIR/node<i>.toml``; ``free_base_port`` finds a base port whose
  member ports are all free now.
* ``NodeProcess`` is one child. A daemon thread reads its stdout line by line and hands each line to
  ``on_line`` -- the node writes one JSON object per line and blocks when nobody reads, so something
  always must. ``stop`` sends SIGTERM, waits up to a bound, then SIGKILL, and reaps the child; ``kill``
  is ``kill -9`` and reaps it too (a reaped child is no zombie, so a node restarted on its directories
  sees its owner gone).
* ``ClusterView`` keeps what the children print, parsed: each member's latest status line (with the
  monotonic time it arrived) and every event, safe to read from the thread that waits on it.

The line formats are ``tools.node_cmd``'s (docs/node.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from cluster.consensus.core.members import ClusterMember
from cluster.consensus.node_config import NodeConfig

if TYPE_CHECKING:
    from cluster.client.aeron_cluster import AeronCluster

__all__ = [
    "STOP_TIMEOUT_S",
    "ClusterView",
    "NodeEvent",
    "NodeProcess",
    "NodeStatus",
    "describe_exit",
    "free_base_port",
    "ingress_endpoints",
    "local_configs",
    "member_ports",
    "port_in_use",
    "stop_all",
    "write_configs",
]

STOP_TIMEOUT_S: Final = 10.0
"""How long a node has to close in order after SIGTERM before it is killed."""
PORT_STRIDE: Final = 100  # NodeConfig.local_cluster's layout: base + 100 * member + k, k = 1..5
PORTS_PER_MEMBER: Final = 5
MAX_EVENTS: Final = 100_000


def member_ports(nodes: int, base_port: int) -> list[int]:
    """Every port a local cluster of ``nodes`` members on ``base_port`` uses."""
    return [base_port + PORT_STRIDE * i + k for i in range(nodes) for k in range(1, PORTS_PER_MEMBER + 1)]


def port_in_use(ports: Iterable[int], host: str = "127.0.0.1") -> int | None:
    """The first of ``ports`` a UDP socket cannot bind on ``host`` now, or ``None`` if all are free."""
    sockets: list[socket.socket] = []
    try:
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sockets.append(sock)
            try:
                sock.bind((host, port))
            except OSError:
                return port
        return None
    finally:
        for sock in sockets:
            sock.close()


EPHEMERAL_PORTS_START: Final = 32_768  # Linux's default ip_local_port_range starts here
OWN_HOSTS_BASE_PORT: Final = 9000  # Aeron's test layout, when every member has an address of its own


def free_base_port(nodes: int, host: str = "127.0.0.1", attempts: int = 50) -> int:
    """A base port whose member ports (``NodeConfig.local_cluster``'s layout) are all free now, below
    Linux's ephemeral range (32768 and up): a port free now but in that range can be taken a moment later
    by any socket bound to port 0 -- another member's, as it starts before this one."""
    chooser = random.Random()
    for _ in range(attempts):
        base = chooser.randrange(20_000, EPHEMERAL_PORTS_START - PORT_STRIDE * nodes, 10)
        if port_in_use(member_ports(nodes, base), host) is None:
            return base
    raise RuntimeError(f"no free base port for {nodes} members after {attempts} attempts")


def local_configs(
    nodes: int,
    directory: Path,
    base_port: int,
    settings: Mapping[str, object] | None = None,
    hosts: Sequence[str] | None = None,
) -> tuple[NodeConfig, ...]:
    """``NodeConfig.local_cluster`` under ``directory`` made absolute, so that the configurations work
    from any working directory."""
    return NodeConfig.local_cluster(nodes, str(directory.absolute()), base_port, settings, hosts)


def write_configs(configs: Iterable[NodeConfig], directory: Path) -> list[Path]:
    """Each configuration written with ``to_toml()`` to ``directory/node<member id>.toml``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for config in configs:
        path = directory / f"node{config.member_id}.toml"
        path.write_text(config.to_toml(), encoding="utf-8")
        paths.append(path)
    return paths


def ingress_endpoints(members: Iterable[ClusterMember]) -> str:
    """Aeron's ``ingressEndpoints`` form, what a client is configured with: ``0=host:port,1=host:port``."""
    return ",".join(f"{member.id}={member.ingress}" for member in members)


# --------------------------------------------------------------------------------------- processes


class NodeProcess:
    """One ``python -m tools node --config PATH`` child (see the module docstring)."""

    def __init__(
        self,
        member_id: int,
        config_path: Path,
        *,
        on_line: Callable[[NodeProcess, str], object],
        stderr: IO[Any] | int | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        prefix: Sequence[str] = (),
        args: Sequence[str] = (),
    ) -> None:
        """``prefix``: words the command runs under, which must replace themselves with it (``exec``), so
        that the child's pid is the node's -- e.g. ``ip netns exec NAME``. ``args``: more options of
        ``python -m tools node``."""
        self.member_id = member_id
        self.config_path = config_path
        self.process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "tools", "node", "--config", str(config_path), *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self.pid = self.process.pid
        self._on_line = on_line
        self.reader = threading.Thread(target=self._read, name=f"node{member_id}-stdout", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        with contextlib.suppress(ValueError, OSError):  # the pipe closed under us: the child is gone
            for line in stdout:
                self._on_line(self, line)

    def poll(self) -> int | None:
        """The exit status once the child has exited (negative: killed by that signal), else ``None``."""
        return self.process.poll()

    @property
    def is_running(self) -> bool:
        return self.process.poll() is None

    def kill(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """``kill -9``, by pid, and reap it; its exit status."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        return self.process.wait(timeout=timeout_s)

    def terminate(self) -> None:
        """Send SIGTERM (an orderly stop) if it is still running; ``wait`` or ``stop`` reaps it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout_s: float) -> int | None:
        """Wait up to ``timeout_s`` for it to exit; its exit status, or ``None`` if it is still running."""
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, up to ``timeout_s`` for an orderly close, then SIGKILL; reaped either way."""
        self.terminate()
        status = self.wait(timeout_s)
        return self.kill() if status is None else status

    def close_pipes(self, timeout_s: float = 5.0) -> None:
        """After the child has exited: let the reader finish the last lines, then close the pipe."""
        self.reader.join(timeout_s)
        if self.process.stdout is not None:
            self.process.stdout.close()


def stop_all(processes: Iterable[NodeProcess], timeout_s: float = STOP_TIMEOUT_S) -> dict[int, int]:
    """Stop every process at once (SIGTERM to all, then up to ``timeout_s`` in all, then SIGKILL to the
    rest), reap them all; exit status by member id."""
    processes = list(processes)
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + timeout_s
    statuses: dict[int, int] = {}
    for process in processes:
        status = process.wait(max(0.0, deadline - time.monotonic()))
        statuses[process.member_id] = process.kill() if status is None else status
    for process in processes:
        process.close_pipes()
    return statuses


def describe_exit(status: int) -> str:
    """``exit status 2`` or ``killed by SIGKILL``."""
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


# --------------------------------------------------------------------------------------- what they say


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One status line of a node, and the monotonic time it arrived here."""

    member: int
    role: str
    state: str
    term: int
    append_position: int
    commit_position: int
    received_s: float

    @property
    def is_leading(self) -> bool:
        """A leader whose election is over: it takes commands."""
        return self.role == "LEADER" and self.state == "CLOSED"


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """One event line of a node, and the monotonic time it arrived here."""

    member: int
    time_ns: int
    text: str
    received_s: float


class ClusterView:
    """What a cluster's nodes print, parsed; ``on_line`` is each ``NodeProcess``'s callback."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: dict[int, NodeStatus] = {}
        self._events: deque[NodeEvent] = deque(maxlen=MAX_EVENTS)
        self.unparsed: deque[str] = deque(maxlen=100)

    def on_line(self, process: NodeProcess, line: str) -> None:
        now = time.monotonic()
        try:
            record = json.loads(line)
            if "event" in record:
                event = NodeEvent(record["member"], record["timeNs"], record["event"], now)
                with self._lock:
                    self._events.append(event)
            else:
                status = NodeStatus(
                    record["member"],
                    record["role"],
                    record["state"],
                    record["term"],
                    record["appendPosition"],
                    record["commitPosition"],
                    now,
                )
                with self._lock:
                    self._status[status.member] = status
        except (ValueError, KeyError, TypeError):
            self.unparsed.append(line)

    def status(self, member: int) -> NodeStatus | None:
        with self._lock:
            return self._status.get(member)

    def statuses(self) -> dict[int, NodeStatus]:
        with self._lock:
            return dict(self._status)

    def events(self, member: int | None = None) -> list[NodeEvent]:
        with self._lock:
            return [event for event in self._events if member is None or event.member == member]

    def events_after(self, since_s: float) -> list[NodeEvent]:
        """The events that arrived at or after monotonic time ``since_s``, oldest first (read from the
        newest back, so a long run's history is not walked)."""
        found: list[NodeEvent] = []
        with self._lock:
            for event in reversed(self._events):
                if event.received_s < since_s:
                    break
                found.append(event)
        found.reverse()
        return found

    def forget(self, member: int) -> None:
        """Drop a member's last status (it was stopped: what it said last is no longer true)."""
        with self._lock:
            self._status.pop(member, None)

    def leader(self, members: Iterable[int] | None = None) -> NodeStatus | None:
        """The leading member of the highest term among ``members`` (default: all), if one leads."""
        chosen = None if members is None else set(members)
        leaders = [
            status
            for status in self.statuses().values()
            if status.is_leading and (chosen is None or status.member in chosen)
        ]
        return max(leaders, key=lambda status: status.term, default=None)


# ------------------------------------------------------------------------------------ a whole cluster


class ProcessCluster:
    """A local cluster whose members are ``NodeProcess`` es, with a ``ClusterView`` of what they print and
    a client session (``AeronCluster``) on a transport of this process.

    Every member's stderr goes to ``directory/node<i>.stderr`` (appended across restarts).
    ``close()`` stops every member still running by pid (SIGTERM, then SIGKILL) and closes the client;
    use it in a ``finally`` or as a context manager.

    By default every member is on 127.0.0.1. With ``hosts`` member i's endpoints are on ``hosts[i]``,
    each member runs under ``prefix(i)`` (e.g. in a network namespace of its own), and this process's
    clients bind ``client_host``, an address every member can reach. ``node_args(i)`` are more options
    of member i's ``python -m tools node`` (e.g. ``--clock-file``).
    """

    def __init__(
        self,
        directory: Path,
        nodes: int,
        settings: Mapping[str, object] | None = None,
        *,
        base_port: int | None = None,
        env: Mapping[str, str] | None = None,
        hosts: Sequence[str] | None = None,
        client_host: str = "127.0.0.1",
        prefix: Callable[[int], Sequence[str]] = lambda member_id: (),
        node_args: Callable[[int], Sequence[str]] = lambda member_id: (),
    ) -> None:
        from cluster.transport.driver import Transport, TransportConfig

        self.directory = directory.absolute()
        self.env = env  # the members' environment (default: this process's)
        self.client_host = client_host
        self.prefix = prefix
        self.node_args = node_args
        if base_port is not None:
            port = base_port
        elif hosts is None:
            port = free_base_port(nodes)
        else:  # each member on its own address: no other socket there to collide with
            port = OWN_HOSTS_BASE_PORT
        self.configs = local_configs(nodes, self.directory, port, settings, hosts)
        self.paths = write_configs(self.configs, self.directory)
        self.view = ClusterView()
        self.processes: dict[int, NodeProcess] = {}
        self.transport = Transport(config=TransportConfig(bind_host=client_host))
        self.session: AeronCluster | None = None

    def __enter__(self) -> ProcessCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stderr_path(self, member_id: int) -> Path:
        return self.directory / f"node{member_id}.stderr"

    def start(self, member_id: int) -> NodeProcess:
        """Start member ``member_id`` (again) on its configuration and directories."""
        running = self.processes.get(member_id)
        assert running is None or not running.is_running, f"member {member_id} is running"
        self.view.forget(member_id)
        with open(self.stderr_path(member_id), "a", encoding="utf-8") as stderr:
            process = NodeProcess(
                member_id,
                self.paths[member_id],
                on_line=self.view.on_line,
                stderr=stderr,
                env=self.env,
                prefix=self.prefix(member_id),
                args=self.node_args(member_id),
            )
        self.processes[member_id] = process
        return process

    def start_all(self, members: Iterable[int] | None = None) -> None:
        for member_id in range(len(self.configs)) if members is None else members:
            self.start(member_id)

    def kill(self, member_id: int) -> int:
        """``kill -9`` member ``member_id`` by pid; its exit status."""
        status = self.processes[member_id].kill()
        self.processes[member_id].close_pipes()
        self.view.forget(member_id)
        return status

    def stop(self, member_id: int, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM member ``member_id`` (SIGKILL after ``timeout_s``); its exit status."""
        status = self.processes[member_id].stop(timeout_s)
        self.processes[member_id].close_pipes()
        self.view.forget(member_id)
        return status

    def running(self) -> list[int]:
        return [member_id for member_id, process in self.processes.items() if process.is_running]

    def wait_for(self, condition: Callable[[], object], timeout_s: float) -> bool:
        """Run the client's transport until ``condition()`` is true (``True``) or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            if condition():
                return True
            if time.monotonic() >= deadline:
                return False
            if self.transport.do_work() == 0:
                time.sleep(0.001)

    def leader(self) -> NodeStatus | None:
        """The leading member among those running, if one leads."""
        return self.view.leader(self.running())

    def settled(self, members: Iterable[int] | None = None) -> NodeStatus | None:
        """The leader, once ``members`` (default: all running) have completed their election in its
        term; else ``None``."""
        leader = self.leader()
        if leader is None:
            return None
        for member_id in self.running() if members is None else members:
            status = self.view.status(member_id)
            if status is None or status.state != "CLOSED" or status.term != leader.term:
                return None
        return leader

    def _open_session(self) -> AeronCluster | None:
        """The client's session with the cluster, connecting one step at a time when it has none."""
        from cluster.client.aeron_cluster import AeronCluster, ClusterClientError

        session = self.session
        try:
            if session is None:
                session = self.session = AeronCluster.begin_connect(
                    self.transport,
                    egress_channel=f"aeron:udp?endpoint={self.client_host}:0",
                    ingress_endpoints=ingress_endpoints(self.configs[0].members),
                )
            if not session.poll_connect():
                return None
            session.poll_egress(lambda event: None)
        except ClusterClientError:
            if session is not None:
                session.close()
            self.session = None
            return None
        if session.is_closed:
            self.session = None
            return None
        return session

    def poll_session(self) -> AeronCluster | None:
        """Read the client's egress (connecting a session if it has none); its open session, if any."""
        return self._open_session()

    def connect(self, timeout_s: float) -> bool:
        """Open the client's session (if it has none open), within ``timeout_s``."""
        return self.wait_for(lambda: self._open_session() is not None, timeout_s)

    @property
    def open_event_length(self) -> int:
        """The log bytes of the client session's SessionOpenEvent (its frame, aligned)."""
        from cluster.transport.logbuffer import HEADER_LENGTH, align
        from generated import aeron_cluster_codecs as codecs

        assert self.session is not None
        channel = len(self.session.protocol.egress_channel)
        block = codecs.SessionOpenEventEncoder.BLOCK_LENGTH
        return align(HEADER_LENGTH + codecs.HEADER_SIZE + block + 4 + channel + 4)

    def offer(self, leader: NodeStatus, command: int) -> bool:
        """Offer a command through the client's session once it knows ``leader`` as the leader; ``True``
        once it has left."""
        session = self._open_session()
        if session is None or session.leader_member_id != leader.member:
            return False
        return session.offer(command.to_bytes(8, "little", signed=True)) > 0

    def send(self, leader: NodeStatus, commands: Iterable[int], timeout_s: float) -> bool:
        """Offer each command to ``leader`` until it leaves, within ``timeout_s`` in all."""
        deadline = time.monotonic() + timeout_s
        for command in commands:

            def sent(command: int = command) -> bool:
                return self.offer(leader, command)

            if not self.wait_for(sent, deadline - time.monotonic()):
                return False
        return True

    def stderr_text(self) -> str:
        """Every member's stderr, for a failure report."""
        parts = []
        for member_id in range(len(self.configs)):
            path = self.stderr_path(member_id)
            if path.exists():
                parts.append(
                    f"--- member {member_id} stderr\n{path.read_text(encoding='utf-8', errors='replace')}"
                )
        return "\n".join(parts)

    def close(self) -> dict[int, int]:
        """Stop every member (by pid) and close the client; exit status by member id."""
        try:
            return stop_all(self.processes.values())
        finally:
            if self.session is not None:
                self.session.close()
            self.transport.close()
