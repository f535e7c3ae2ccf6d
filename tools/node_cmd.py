"""``python -m tools node --config FILE.toml``: one cluster member as one process, until SIGINT or SIGTERM.

The member -- its transport, its archive and its consensus module (``ClusterNode``) -- runs on real UDP
and real files (``cluster.dir`` and ``archive.dir`` of the configuration, created if missing), in one
duty cycle on the main thread: an ``AgentRunner`` with the selector idle strategy, which the transport
registers its sockets with, so an idle node sleeps in the kernel and wakes on the first datagram.

Stopping. SIGTERM or SIGINT closes the runner, and so does the cluster's orderly end (the admin tool's
``shutdown`` or ``abort``: ``ClusterNode.is_terminated``); the node then stops in order
(``ClusterNode.close``: the consensus module -- its log publication and recording, its files, the mark
file marked closed -- then the archive, then the transport) and the process exits 0, so a node started
again on the same directories starts at once. After a crash (``kill -9``) the mark files stay active for
up to their liveness timeout (10 s); a node started on such a directory whose owner process is no longer
running waits for them to go stale (one line on stderr says so) and then recovers: the consensus module
from ``recording.log`` and ``node-state.dat``, the log from the archive, which repairs its own crash. A
mark file whose owner is still running is refused at once (``error: ...``, exit status 2), as is a bad
configuration (the message names the file and the key). A service that raises ``ClusterTermination``
stops the node in order too (exit 0, one line saying so); a service that raises anything else stops it
with its traceback and ``error: node N stopped: the service failed: ...`` (exit status 1), as a full disk
or an I/O error does with its one line.

Observability (docs/node.md). stdout carries one JSON object per line, each flushed:

* an event for every election state change and role change of the consensus module (``LogEvent``)::

      {"member": 0, "timeNs": 123456789, "event": "election CANVASS -> NOMINATE: ..."}

* a status line whenever the role, the election state, the leadership term or the commit position
  changes, at most one per ``STATUS_INTERVAL_NS`` (100 ms; a change within the interval is printed at
  its end, so the last state is always shown)::

      {"member": 0, "role": "LEADER", "state": "CLOSED", "term": 0, "appendPosition": 1056,
       "commitPosition": 1056}

stderr carries a line when the node starts and when it has closed (and, like every command, an
``error: ...`` line for a user error). A stdout closed by its reader stops the node as SIGTERM does, at
the next line it would print, with exit status 141 (a shell's status for SIGPIPE).

Clock jumps, for fault tests (``--clock-file FILE``). The node then runs on an ``AdjustableClock``; on
SIGUSR1 it reads FILE, ``{"epochOffsetMs": N, "nanoOffsetNs": M}``, and from its next duty cycle its
wall clock reads N ms off the machine's and its monotonic clock M ns ahead (totals, not steps: M may
not go down). An event line says what it did (``clock moved: ...`` or ``clock file refused: ...``). The
machine's own clock is never touched. Without the option SIGUSR1 keeps its default action.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Final, TextIO

from tools.__main__ import BROKEN_PIPE_STATUS

# The node's modules take most of a second to import. ``run`` imports them only after it has taken
# over SIGINT and SIGTERM, so a node stopped while it starts still closes in order (or exits 0 before
# creating anything), instead of dying by the default action or with a KeyboardInterrupt's traceback.
if TYPE_CHECKING:
    from cluster.consensus.agent import ConsensusModuleAgent, LogEvent
    from cluster.consensus.cluster_node import ClusterNode
    from cluster.storage import Storage
    from cluster.transport.agent import AgentRunner
    from cluster.transport.clock import AdjustableClock

__all__ = ["STATUS_INTERVAL_NS", "NodeAgent", "NodeReporter", "configure", "run"]

STATUS_INTERVAL_NS: Final = 100_000_000
FAILED_STATUS: Final = 1
"""The exit status of a node the machine failed as it ran (a full disk, an I/O error): its stderr's last
line says why, ``error: node N stopped: ...``."""
STALE_POLL_S: Final = 0.1


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, metavar="FILE.toml", help="the node's configuration (docs/node-config.md)"
    )
    parser.add_argument(
        "--clock-file",
        metavar="FILE",
        help="for fault tests: on SIGUSR1, move the node's clocks by the offsets in FILE (docs/node.md)",
    )


class NodeReporter:
    """The node's stdout: an event line per ``LogEvent``, and throttled status lines (module docstring)."""

    def __init__(
        self,
        member_id: int,
        out: TextIO,
        *,
        interval_ns: int = STATUS_INTERVAL_NS,
        on_broken: Callable[[], object] = lambda: None,
    ) -> None:
        self.member_id = member_id
        self.out = out
        self.interval_ns = interval_ns
        self.on_broken = on_broken
        self.is_broken = False
        """stdout was closed by its reader: nothing more is written, and ``on_broken`` was called."""
        self._shown: tuple[str, str, int, int] | None = None
        self._next_ns = 0

    def _write(self, record: dict[str, object]) -> None:
        # never raises into the consensus module, whose callback this may be: a closed stdout stops the
        # node through ``on_broken`` (an orderly close), as SIGTERM does
        if self.is_broken:
            return
        try:
            self.out.write(json.dumps(record) + "\n")
            self.out.flush()
        except BrokenPipeError:
            self.is_broken = True
            self.on_broken()

    def on_event(self, event: LogEvent) -> None:
        self.event(event.time_ns, event.text)

    def event(self, time_ns: int, text: str) -> None:
        self._write({"member": self.member_id, "timeNs": time_ns, "event": text})

    def poll(self, agent: ConsensusModuleAgent, now_ns: int) -> int:
        """Print a status line if what it shows changed and the interval has passed; 1 if printed."""
        state = (agent.role, agent.election_state, agent.leadership_term_id, agent.commit_position)
        if state == self._shown or now_ns < self._next_ns:
            return 0
        self._shown = state
        self._next_ns = now_ns + self.interval_ns
        role, election_state, term, commit = state
        self._write(
            {
                "member": self.member_id,
                "role": role,
                "state": election_state,
                "term": term,
                "appendPosition": agent.append_position,
                "commitPosition": commit,
            }
        )
        return 1


class ClockControl:
    """``--clock-file``: SIGUSR1 asks (``request``, a signal handler that only sets a flag), and the node's
    next duty cycle reads the file and moves its ``AdjustableClock`` (``apply``; module docstring)."""

    def __init__(self, path: str, clock: AdjustableClock) -> None:
        self.path = path
        self.clock = clock
        self.pending = False

    def request(self, signum: int = 0, frame: FrameType | None = None) -> None:
        self.pending = True

    def apply(self) -> str:
        """Read the file and move the clock; what happened, in words."""
        from cluster.transport.errors import AgentError

        self.pending = False
        try:
            with open(self.path, encoding="utf-8") as file:
                offsets = json.load(file)
            epoch_ms, nanos = offsets["epochOffsetMs"], offsets["nanoOffsetNs"]
            if not all(isinstance(value, int) and not isinstance(value, bool) for value in (epoch_ms, nanos)):
                raise ValueError(f"the offsets must be integers: {offsets!r}")
            self.clock.set_offsets(epoch_offset_ms=epoch_ms, nano_offset_ns=nanos)
        except (OSError, ValueError, KeyError, TypeError, AgentError) as error:
            return f"clock file refused: {self.path}: {error}"
        return f"clock moved: wall clock {epoch_ms:+d} ms, monotonic clock {nanos:+d} ns from the machine's"


class NodeAgent:
    """A ``ClusterNode`` as an ``Agent`` for the runner, reporting its status after each duty cycle."""

    role_name = "node"

    def __init__(
        self,
        node: ClusterNode,
        reporter: NodeReporter,
        on_terminated: Callable[[], object] = lambda: None,
        clock_control: ClockControl | None = None,
    ) -> None:
        self.node = node
        self.reporter = reporter
        self.on_terminated = on_terminated
        self.clock_control = clock_control

    def on_start(self) -> None:
        pass

    def do_work(self) -> int:
        control = self.clock_control
        if control is not None and control.pending:
            self.reporter.event(self.node.transport.clock.nano_time(), control.apply())
        work = self.node.do_work()
        self.reporter.poll(self.node.agent, self.node.transport.clock.nano_time())
        if self.node.is_terminated:
            self.on_terminated()  # the cluster was shut down or aborted: the node closes, exit status 0
        return work

    def on_close(self) -> None:
        self.node.close()


# ----------------------------------------------------------------------------------- a crash's leftovers


def _is_running(pid: int) -> bool:
    """Whether process ``pid`` exists here and is not a zombie (a killed child not yet reaped)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[:1] != ["Z"]
    except OSError:
        return True


def _owner(storage: Storage, name: str) -> int | None:
    """The pid named in mark file ``name``, or ``None`` if it cannot be read (creation will decide)."""
    from cluster.archive.errors import MarkFileError
    from cluster.archive.markfile import ArchiveMarkFile
    from cluster.consensus.files import CLUSTER_MARK_FILE_NAME, ClusterFileError, ClusterMarkFile
    from cluster.storage import StorageError

    try:
        if name == CLUSTER_MARK_FILE_NAME:
            return ClusterMarkFile.read(storage).pid
        return ArchiveMarkFile.read(storage).pid
    except (ClusterFileError, MarkFileError, StorageError):
        return None


def await_stale_mark_files(
    marks: list[tuple[Storage, str]],
    *,
    member_id: int,
    liveness_timeout_ms: int = 10_000,  # cluster.storage.markfile.DEFAULT_LIVENESS_TIMEOUT_MS, Aeron's
    err: TextIO = sys.stderr,
    sleep: Callable[[float], None] = time.sleep,
    stopped: Callable[[], bool] = lambda: False,
) -> None:
    """Wait while a mark file is active but its owner is not running here (a crashed node), at most the
    liveness timeout and a second, or until ``stopped()``. A mark file of a running owner, or one still
    active at the end, is left for the node's own start to refuse with its usual error. A mark file
    naming this process's own pid names a dead one (a restarted container reuses pids): this process
    has not written it yet."""
    from cluster.storage.markfile import is_active, read_liveness

    deadline = time.monotonic() + liveness_timeout_ms / 1000 + 1
    for storage, name in marks:
        announced = False
        while time.monotonic() < deadline and not stopped():
            found = read_liveness(storage, name)
            if found is None or not is_active(found[1], int(time.time() * 1000), liveness_timeout_ms):
                break
            pid = _owner(storage, name)
            if pid is None or (pid != os.getpid() and _is_running(pid)):
                break
            if not announced:
                announced = True
                print(
                    f"node {member_id}: {storage.location}/{name} was left active by pid {pid}, which is no "
                    f"longer running; waiting up to {liveness_timeout_ms / 1000:g} s for it to go stale",
                    file=err,
                    flush=True,
                )
            sleep(STALE_POLL_S)


# ------------------------------------------------------------------------------------------------ run


class _Stop:
    """SIGINT, SIGTERM and a closed stdout: ask the node to stop -- through its runner once there is one."""

    def __init__(self) -> None:
        self.requested = False
        self.runner: AgentRunner | None = None

    def __call__(self, signum: int = 0, frame: FrameType | None = None) -> None:
        self.requested = True
        if self.runner is not None:
            self.runner.close()


def run(args: argparse.Namespace) -> int:
    stop = _Stop()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    clock_control = None
    clock_file = getattr(args, "clock_file", None)
    if clock_file is not None:
        from cluster.transport.clock import AdjustableClock

        # from the start: a SIGUSR1 while the node waits for stale mark files must not end it
        clock_control = ClockControl(clock_file, AdjustableClock())
        previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, clock_control.request)
    try:
        return _run(args.config, stop, clock_control)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(config_path: str, stop: _Stop, clock_control: ClockControl | None = None) -> int:
    from cluster.archive.markfile import MARK_FILE_NAME as ARCHIVE_MARK_FILE_NAME
    from cluster.consensus.agent import ConsensusAgentError
    from cluster.consensus.cluster_node import ClusterNode
    from cluster.consensus.files import CLUSTER_MARK_FILE_NAME
    from cluster.consensus.node_config import NodeConfig
    from cluster.service.api import ClusterTermination
    from cluster.service.container_core import ServiceFailure
    from cluster.service.loader import load_authenticator, load_authorisation_service, load_service
    from cluster.storage import RealStorage, StorageError
    from cluster.transport.agent import AgentRunner, SelectorIdleStrategy
    from cluster.transport.media import UdpNetwork

    config = NodeConfig.load(config_path)
    service = load_service(config.service_class) if config.service_count > 0 else None
    authenticator = load_authenticator(config.authenticator_class)
    authorisation = load_authorisation_service(config.authorisation_service_class)
    if stop.requested:
        return 0  # stopped before it started: nothing was created
    cluster_storage = RealStorage(config.cluster_dir, create=True)
    archive_storage = RealStorage(config.archive_dir, create=True)
    await_stale_mark_files(
        [(cluster_storage, CLUSTER_MARK_FILE_NAME), (archive_storage, ARCHIVE_MARK_FILE_NAME)],
        member_id=config.member_id,
        stopped=lambda: stop.requested,
    )
    if stop.requested:
        return 0  # a signal while waiting: nothing was started
    idle = SelectorIdleStrategy()
    failure: str | None = None
    ended: str | None = None
    try:
        reporter = NodeReporter(config.member_id, sys.stdout, on_broken=stop)
        node = ClusterNode(
            config,
            network=UdpNetwork(None if clock_control is None else clock_control.clock),
            cluster_storage=cluster_storage,
            archive_storage=archive_storage,
            pid=os.getpid(),
            on_event=reporter.on_event,
            idle=idle,
            service=service,
            authenticator=authenticator,
            authorisation=authorisation,
        )
        runner = stop.runner = AgentRunner(
            NodeAgent(node, reporter, on_terminated=stop, clock_control=clock_control), idle
        )
        if stop.requested:
            runner.close()  # a signal while it started: no duty cycle at all
        print(
            f"node {config.member_id} running: cluster {config.cluster_dir}, archive {config.archive_dir}, "
            f"ingress {config.member.ingress}, services {config.service_count} x {config.service_class}, "
            f"pid {os.getpid()}",
            file=sys.stderr,
            flush=True,
        )
        try:
            runner.run()
        except (ConsensusAgentError, StorageError) as error:
            # the machine failed the node as it ran (a full disk, an I/O error): one line, not a traceback
            failure = f"error: node {config.member_id} stopped: {error}"
        finally:
            try:
                node.close()  # on_close did it, unless a signal closed the runner before it ever started
            except (ConsensusAgentError, StorageError) as error:
                failure = failure or f"error: node {config.member_id} stopped: {error}"
    except ServiceFailure as error:
        # the service's own bug, as the node started (on_start) or ran: its traceback is what its author
        # needs, then the one line
        if error.__cause__ is not None:
            traceback.print_exception(error.__cause__, file=sys.stderr)
        failure = f"error: node {config.member_id} stopped: {error}"
    except ClusterTermination as error:
        ended = f"node {config.member_id} stopped: its service ended it" + (
            f" ({error})" if str(error) else ""
        )
    finally:
        idle.close()
    if failure is not None:
        print(failure, file=sys.stderr, flush=True)
        return FAILED_STATUS
    if ended is not None:
        print(ended, file=sys.stderr, flush=True)
    print(f"node {config.member_id} closed", file=sys.stderr, flush=True)
    if reporter.is_broken:
        # like ``... | head``: keep Python from complaining again when it flushes stdout at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_STATUS
    return 0
