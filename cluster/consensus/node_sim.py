"""The node simulator: N real cluster nodes (``ClusterNode``: transport, archive, consensus module) over the
simulated network and simulated disks, with faults, checkers and one seed.

Theory of operation
-------------------
Every member is the program a real process runs -- the same ``ClusterNode`` -- given a ``SimNetwork`` and
two directories of its own ``SimDisk``. The simulator never drives the consensus core itself: it only
injects faults where the world has them and watches.

* **Network**: the ``SimNetwork`` links (loss, duplication, delay, jitter, reordering) and partitions,
  symmetric or one way, between the members' hosts (``10.0.0.1`` ... one per member).
* **Storage**: each member's ``SimDisk``. A crash is a process crash, or -- at a file-sync level of 1 or
  more, where the node claims to be safe against it -- a power loss that keeps only what was synced,
  tearing the last pending write at a seeded byte.
  Besides, a disk can be armed to crash the process at one of its next operations, or to fail a sync.
* **Process crashes**: the node's sockets close at once (``Transport.abort``: no goodbye), its objects are
  dropped unclosed, its disk crashes; a restart builds a new ``ClusterNode`` from the directories. A
  process can also pause (no duty cycle for a while).
* **Clock**: virtual time moves in the ``SimNetwork``'s clock; each member reads it through a clock of its
  own (``MemberClock``) that runs at its own rate from its own origin, its wall clock skewed.

Faults come on a clock-driven schedule, and aimed at members the moment they change election state.

A client on its own host holds a session with the cluster (``AeronCluster``: it connects, is redirected,
follows NewLeaderEvents, connects again when its session is closed) and offers commands (an 8-byte
command id behind the session header) to the member it knows as the leader.

**Checkers**, after every step or at checkpoints: at most one leader per term; a member's commit position
never goes backwards within its life and never passes what its archive has recorded; a leader commits
only what a quorum of archives has recorded, and a follower only what a leader has announced in a
CommitPosition; the logs of any two members agree byte for byte up to the lower of their commit
positions; a command is committed at most once; and once the run has converged, every member's log
begins with everything that was ever seen committed, every command seen committed is in it exactly once,
and all members agree. The simulator also reads the consensus messages the members send off the wire (a
tap on the ``SimNetwork``, not the cores): a member grants at most one candidate its vote in a candidate
term, across all its lives, and -- at a file-sync level of 1 or more -- only once its disk durably holds
that candidate term. A leader's commit also needs a quorum that has recorded the term it leads (judged as
the leader's duty cycle makes the commit, before another member acts); more than ``STORM_EVENTS`` state
changes of one member within ``STORM_WINDOW_NS`` is an election storm. A seed stops at its first
violation.

**Canaries** (``CANARIES``) are deliberately broken variants of the core (``CORE_CANARIES``) or of the
agent, its driver (``DRIVER_CANARIES``); each must make some seed fail. A canary that breaks a promise the
node makes only at a file-sync level of 1 or more runs at that level at least
(``CANARY_FILE_SYNC_LEVELS``).
"""

from __future__ import annotations

import errno
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Final

from cluster.archive.archive import RECORDING_POSITION_TYPE_ID
from cluster.archive.client import ArchiveClientError
from cluster.archive.errors import ArchiveError
from cluster.archive.recording_reader import RecordingReader
from cluster.archive.segments import purge_position
from cluster.client.aeron_cluster import AeronCluster, ClusterClientError
from cluster.client.protocol import Message
from cluster.consensus.agent import DRIVER_CANARIES, ConsensusAgentError, LogEvent
from cluster.consensus.cluster_node import ClusterNode
from cluster.consensus.core.actions import Terminate
from cluster.consensus.core.cluster_actions import ModuleState, ToggleState
from cluster.consensus.core.members import ClusterMember, format_members
from cluster.consensus.core.node import CORE_CANARIES
from cluster.consensus.core.recording_log import RecordingLogEntry
from cluster.consensus.files import RecordingLogFile
from cluster.consensus.files.control_file import submit_request
from cluster.consensus.files.errors import NodeStateError
from cluster.consensus.files.node_state import NODE_STATE_FILE_NAME, decode_node_state
from cluster.consensus.node_config import NodeConfig
from cluster.consensus.sim_kv_client import KvClient
from cluster.service.api import ClusteredService
from cluster.sim.linearizability import KV_MODEL, Result
from cluster.sim.linearizability import check as check_history
from cluster.sim.services import ServiceChecker
from cluster.snapshots import SnapshotError, load_consensus_module_snapshot, load_service_snapshot
from cluster.storage import StorageError
from cluster.storage.sim import SimDisk, SimulatedCrash
from cluster.transport.clock import ManualClock
from cluster.transport.counters import Counter
from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.media import Address, DatagramSocket, Tap
from cluster.transport.simnet import LinkConfig, SimNetwork
from codegen.runtime.errors import CodecError
from generated import aeron_cluster_codecs as codecs

__all__ = [
    "CANARIES",
    "CANARY_FILE_SYNC_LEVELS",
    "MS",
    "MemberClock",
    "NodeSimulator",
    "SeedResult",
    "Violation",
    "run_seed",
]

MS: Final = 1_000_000
EPOCH_BASE_MS: Final = 1_796_527_000_000
CLIENT_HOST: Final = "10.0.0.100"
CLIENT_SILENCE_NS: Final = 5_000 * 1_000_000  # with services: no echo this long, a new session
KV_CLIENTS_DEFAULT: Final = 2  # key-value clients in a run with services, on hosts 10.0.0.200 and up
KV_CLIENT_HOST_BASE: Final = 200
MARK_FILE_LIVENESS_TIMEOUT_MS: Final = 1_000  # Aeron's 10 s scaled down with the other timeouts
RESTART_DELAY_NS: Final = 1_100 * MS  # a crashed member's mark files are stale by then
STORM_WINDOW_NS: Final = 1_000 * MS
STORM_EVENTS: Final = 200  # more state and role changes than this within the window is a storm
SETTINGS: Final = {
    # Aeron's defaults scaled down (all of them are configurable), so a short run sees many elections
    "cluster.log.channel": "aeron:udp?term-length=64k",
    "cluster.leader.heartbeat.timeout": "2s",
    "cluster.startup.canvass.timeout": "4s",
    "cluster.election.timeout": "500ms",
    "archive.segment.file.length": "256k",
}
CANARIES: Final[dict[str, str]] = {**CORE_CANARIES, **DRIVER_CANARIES}
CANARY_FILE_SYNC_LEVELS: Final = {"vote_before_persist": 1}  # the lowest level at which each is a bug
_HEADER = 32
_COMMAND_TEMPLATE = codecs.SessionMessageHeaderDecoder.TEMPLATE_ID
_OPEN_TEMPLATE = codecs.SessionOpenEventDecoder.TEMPLATE_ID
_BEGIN, _END = 0x80, 0x40  # a DATA frame's flags: the first and the last fragment of an entry
# a session message carrying an 8-byte command
_COMMAND_MESSAGE = codecs.HEADER_SIZE + codecs.SessionMessageHeaderDecoder.BLOCK_LENGTH + 8
_DATA_FRAME = 1
_WATCHED: Final = frozenset({codecs.VoteDecoder.TEMPLATE_ID, codecs.CommitPositionDecoder.TEMPLATE_ID})
_UNFRAGMENTED = _BEGIN | _END  # a whole message in one frame


class MemberClock:
    """One member's clock: the network's virtual time run at the member's own rate from an offset of its
    own (drift), and a wall clock set apart from the other members' (skew). Monotonic as long as the
    network's clock is; the same object serves every life of the member, as a machine's clock would."""

    __slots__ = ("_base", "_epoch_base_ms", "_offset_ns", "_rate")

    def __init__(self, base: ManualClock, *, rate: float, offset_ns: int, epoch_base_ms: int) -> None:
        self._base = base
        self._rate = rate
        self._offset_ns = offset_ns
        self._epoch_base_ms = epoch_base_ms

    def nano_time(self) -> int:
        return self._offset_ns + int(self._base.nano_time() * self._rate)

    def epoch_ms(self) -> int:
        return self._epoch_base_ms + (self.nano_time() - self._offset_ns) // MS


class _MemberNetwork:
    """The simulated network as one member sees it: the same sockets, the member's own clock."""

    def __init__(self, network: SimNetwork, clock: MemberClock) -> None:
        self._network = network
        self._clock = clock
        self.tap: Tap | None = None  # the network's own tap watches every member

    @property
    def clock(self) -> MemberClock:
        return self._clock

    def open(self, address: Address) -> DatagramSocket:
        return self._network.open(address)

    def resolve(self, address: Address) -> Address:
        return self._network.resolve(address)


@dataclass(slots=True)
class Violation:
    """A checker found a property broken: which one, when (virtual time), and the details."""

    seed: int
    time_ns: int
    checker: str
    detail: str


@dataclass(slots=True)
class SeedResult:
    """One seed's run: how much it committed, the faults injected by kind, what the checkers found, and
    the liveness failure if the cluster did not converge in time."""

    seed: int
    nodes: int
    commands_committed: int
    faults: dict[str, int]
    violations: list[Violation]
    liveness_failure: str | None
    kv_operations: int = 0  # the key-value clients' operations checked for linearizability (services)
    kv_indeterminate: int = 0  # of which timed out

    @property
    def failed(self) -> bool:
        return bool(self.violations) or self.liveness_failure is not None


@dataclass(slots=True)
class _Member:
    member_id: int
    host: str
    disk: SimDisk
    network: _MemberNetwork
    node: ClusterNode | None = None
    commit: int = 0  # in this life
    restarts: int = 0  # the node's own restarts in place (ClusterNode.restarts) seen in this life
    crashed_at_ns: int = -(1 << 62)
    kept: int = 0  # while down: how much of the log its disk is known to hold
    recorded: int = 0  # while up: its archive's recorded position, as last seen
    kept_term: int = -1  # while down: the latest term its disk's term history holds
    armed: bool = False  # a storage fault waits on its disk
    paused_until_ns: int = 0  # a paused process (a stop signal, a long pause) runs no duty cycle
    state: str = "INIT"  # its election state, as last seen
    recent_events: deque[int] = field(default_factory=deque)  # when its latest events happened
    counter: Counter | None = None  # its log recording's position counter, once found
    counter_of: tuple[object, int] | None = None  # (node, recording id) the counter belongs to
    terminated_at: Terminate | None = None  # the cluster's shutdown or abort stopped it, there


def member_configs(count: int, settings: dict[str, object]) -> tuple[NodeConfig, ...]:
    """The members' configurations: member i on host ``10.0.0.<i+1>`` with Aeron's test ports."""
    hosts = [f"10.0.0.{i + 1}" for i in range(count)]
    members = format_members(
        ClusterMember(i, f"{host}:9002", f"{host}:9003", f"{host}:9004", f"{host}:9005", f"{host}:8010")
        for i, host in enumerate(hosts)
    )
    return tuple(
        NodeConfig.from_mapping(
            {
                **settings,
                "cluster.members": members,
                "cluster.member.id": i,
                "cluster.dir": f"/node{i}/cluster",
                "archive.dir": f"/node{i}/archive",
            }
        )
        for i in range(count)
    )


class NodeSimulator:
    """N real nodes, one seed (see the module docstring)."""

    def __init__(
        self,
        seed: int,
        node_count: int = 3,
        *,
        canaries: frozenset[str] = frozenset(),
        settings: dict[str, object] | None = None,
        file_sync_level: int = 0,
        trace: Callable[[str], object] | None = None,
        drift: list[tuple[float, int, int]] | None = None,
        service: Callable[[], ClusteredService] | None = None,
        checked_services: bool = False,
        kv_clients: int = KV_CLIENTS_DEFAULT,
    ) -> None:
        """``drift``: each member's clock as ``(rate, offset_ns, epoch_skew_ms)`` (``MemberClock``); by
        default every member reads the network's clock as it is. ``service``: each node runs its
        ``cluster.service.count`` containers with services it makes (``ClusterNode``); none without.
        ``checked_services``: each node runs ``CheckedService`` instead, judged by ``service_checker``,
        and ``kv_clients`` key-value clients (``KvClient``) record histories for the linearizability
        checker."""
        self.service = service
        self.service_checker: ServiceChecker | None = None
        if checked_services:
            self.service_checker = ServiceChecker(self._violate)
        self.seed = seed
        self.random = random.Random(seed)
        self.canaries = canaries
        self.network = SimNetwork(seed, epoch_base_ms=EPOCH_BASE_MS)
        self.file_sync_level = file_sync_level
        merged = {**SETTINGS, **(settings or {})}
        if file_sync_level:
            merged["archive.file.sync.level"] = file_sync_level
            merged["archive.catalog.file.sync.level"] = file_sync_level
        self.configs = member_configs(node_count, merged)
        drift = drift or [(1.0, 0, 0)] * node_count
        self.members = [
            _Member(
                i,
                f"10.0.0.{i + 1}",
                SimDisk(seed * 1000 + i, label=f"node{i}"),
                _MemberNetwork(
                    self.network,
                    MemberClock(
                        self.network.clock, rate=rate, offset_ns=offset, epoch_base_ms=EPOCH_BASE_MS + skew
                    ),
                ),
            )
            for i, (rate, offset, skew) in enumerate(drift)
        ]
        self._trace = trace
        self.violations: list[Violation] = []
        self._violated: set[str] = set()
        self.fault_counts: dict[str, int] = {}
        self.leaders: dict[int, int] = {}  # term -> member
        self.committed_log = b""  # the longest committed prefix seen on any member
        self.committed_commands: set[int] = set()
        self.commands_sent = 0
        self.votes: dict[tuple[int, int], int] = {}  # (voter, candidate term) -> the candidate granted
        self.announced_commit = 0  # the highest commit position a CommitPosition has carried
        self.on_state_change: Callable[[int, str], object] | None = None
        self._member_of_host = {member.host: member.member_id for member in self.members}
        self._consensus_stream_id = self.configs[0].consensus_stream_id if self.configs else 108
        self.network.tap = self._on_datagram
        self._client = Transport(self.network, TransportConfig(bind_host=CLIENT_HOST, seed=seed))
        self.kv_clients: list[KvClient] = []
        self._kv_transports: list[Transport] = []
        if checked_services:
            endpoints = ",".join(f"{c.member_id}={c.member.ingress}" for c in self.configs)
            for i in range(kv_clients):
                host = f"10.0.0.{KV_CLIENT_HOST_BASE + i}"
                transport = Transport(self.network, TransportConfig(bind_host=host, seed=seed * 31 + i))
                self._kv_transports.append(transport)
                self.kv_clients.append(
                    KvClient(i, transport, endpoints, f"aeron:udp?endpoint={host}:0", seed * 131 + i)
                )
        self._session: AeronCluster | None = None
        self.client_events: dict[str, int] = {}  # what the client's session saw, by kind
        self.client_messages: list[bytes] = []  # the payloads the services sent the client, in order
        self._awaiting_reply_since_ns: int | None = None  # the oldest command sent since the last echo
        self._snapshots_checked: set[tuple[int, int]] = set()  # (member, recording id) loaded and judged
        self._snapshot_contents: dict[tuple[int, int], tuple[object, int]] = {}  # (position, service) ->
        self.snapshots_taken = 0  # (what a member's snapshot held, which member) -- and how many were
        for member in self.members:
            self.start(member.member_id)

    # ------------------------------------------------------------------ members

    def start(self, member_id: int) -> None:
        member = self.members[member_id]
        assert member.node is None
        member.node = ClusterNode(
            self.configs[member_id],
            network=member.network,
            cluster_storage=member.disk.storage("cluster"),
            archive_storage=member.disk.storage("archive"),
            pid=1000 + member_id,
            seed=self.random.getrandbits(63),
            bind_host=member.host,
            canaries=self.canaries,
            on_event=lambda event: self._on_event(member_id, event),
            mark_file_liveness_timeout_ms=MARK_FILE_LIVENESS_TIMEOUT_MS,
            service=self._service_of(member),
        )
        member.commit = member.restarts = 0
        self._check_recovery(member)

    def _service_of(self, member: _Member) -> Callable[[], ClusteredService] | None:
        checker = self.service_checker
        if checker is None:
            return self.service

        def commit_position() -> int:
            assert member.node is not None
            return member.node.agent.commit_position

        return lambda: checker.service(member.member_id, commit_position)

    def services_caught_up(self) -> bool:
        """Every running member's services have read its node's whole committed log."""
        return all(
            container.log_position == member.node.agent.commit_position
            for member in self.members
            if member.node is not None
            for container in member.node.containers
        )

    def check_services(self) -> None:
        """Once the services have caught up: each replica saw exactly the committed commands, in order."""
        checker = self.service_checker
        if checker is None:
            return
        for member in self.members:
            if member.node is not None:
                log = self.log_of(member.member_id, member.node.agent.commit_position)
                checker.check_complete(member.member_id, commands_of(log))

    def _on_event(self, member_id: int, event: LogEvent) -> None:
        if self._trace is not None:
            self._trace(f"{self.now_ns // 1000:>10}us n{member_id} {event.text}")  # the network's time
        if event.text.startswith("caught up from member"):
            self._count("snapshot_install")
        elif event.text.startswith("catch-up from a snapshot failed"):
            self._count("snapshot_install_failed")
        # an election storm: state changes with no time between them, a member going round in circles
        # (the election's own timeouts space out every honest retry)
        now_ns = self.now_ns
        recent = self.members[member_id].recent_events
        recent.append(now_ns)
        while recent and recent[0] < now_ns - STORM_WINDOW_NS:
            recent.popleft()
        if len(recent) > STORM_EVENTS:
            self._violate(
                "elections settle",
                f"n{member_id}: {len(recent)} state changes within {STORM_WINDOW_NS // MS} ms",
            )
            recent.clear()

    def crash(self, member_id: int, *, power_loss: bool | None = None, kind: str = "crash") -> None:
        """End member ``member_id`` as a killed process ends; its disk loses what was not synced when a
        power loss is part of the crash (by default, when the node syncs: file-sync level >= 1)."""
        member = self.members[member_id]
        if member.node is None:
            return
        member.armed = False
        lose_power = self.file_sync_level > 0 if power_loss is None else power_loss
        # What the disk keeps of the log: everything recorded, after a process crash (the page cache
        # survives), and after a power loss too when the node syncs (file-sync level >= 1: the archive
        # moves its position counter only after the sync); at level 0 a power loss may take it all.
        member.kept = 0 if lose_power and self.file_sync_level == 0 else member.recorded
        member.kept_term = -1 if lose_power and self.file_sync_level == 0 else self._last_term(member_id)
        member.node.transport.abort()
        member.node = None
        member.disk.crash(power_loss=lose_power)
        member.crashed_at_ns = self.now_ns
        self._count(f"{kind}_power_loss" if lose_power else kind)

    def wipe(self, member_id: int) -> None:
        """Give a member that is down an empty disk, as an operator deleting its cluster and archive
        directories would: its log, snapshots and recorded votes are gone, and the checkers count it as
        holding nothing. Start it again with ``start`` (or ``restart``)."""
        member = self.members[member_id]
        if member.node is not None:
            raise ValueError(f"member {member_id} is running: stop it before wiping its directories")
        member.disk = SimDisk(self.seed * 1000 + 500 + member_id, label=f"node{member_id}")
        member.kept, member.kept_term = 0, -1
        self._count("wipe")

    def _terminated(self, member: _Member) -> None:
        """The cluster was shut down or aborted and the member has stopped: its process closes in order,
        as ``python -m tools node`` does, and it is not started again."""
        node = member.node
        assert node is not None
        member.terminated_at = node.agent.terminated
        # what its disk keeps: all it recorded, and its term history (a closed process loses nothing)
        member.kept = self.recorded_position(member.member_id)
        member.kept_term = self._last_term(member.member_id)
        node.close()
        member.node = None
        self._count("terminated")

    def down(self) -> set[int]:
        """The members whose process is not running."""
        return {m.member_id for m in self.members if m.node is None}

    def armed(self) -> int:
        """How many running members have a storage fault waiting."""
        return sum(1 for m in self.members if m.node is not None and m.armed)

    def disarm_storage_faults(self) -> None:
        for member in self.members:
            if member.armed:
                member.disk.crash_at(None)
                member.disk.clear_failures()
                member.armed = False

    def arm_storage_fault(self, member_id: int, chooser: random.Random) -> None:
        """Make a member's disk fail soon: crash at one of its next storage operations, or fail its next
        sync with EIO."""
        disk = self.members[member_id].disk
        if self.members[member_id].node is None:
            return
        self.members[member_id].armed = True
        if chooser.random() < 0.5:
            disk.crash_at(disk.operation_count + chooser.randint(1, 40))
            self._count("storage_crash_point")
        else:
            disk.fail_next("sync", errno.EIO)
            self._count("storage_sync_failure")

    def restart(self, member_id: int) -> bool:
        """Start a crashed member again once its mark files have gone stale; ``True`` if it started."""
        member = self.members[member_id]
        if (
            member.node is not None
            or member.terminated_at is not None
            or self.now_ns < member.crashed_at_ns + RESTART_DELAY_NS
        ):
            return False
        self.start(member_id)
        self._count("restart")
        return True

    def pause(self, member_id: int, duration_ns: int) -> None:
        """Stop member ``member_id``'s process for ``duration_ns`` (a stop signal, a long pause): its
        duty cycles do not run, its sockets keep what arrives, up to their limits."""
        member = self.members[member_id]
        if member.node is not None:
            member.paused_until_ns = max(member.paused_until_ns, self.now_ns + duration_ns)
            self._count("pause")

    def resume_all(self) -> None:
        for member in self.members:
            member.paused_until_ns = 0

    def partition(self, a: int, b: int, *, one_way: bool = False) -> None:
        self.network.partition(self.members[a].host, self.members[b].host, one_way=one_way)
        self._count("partition_one_way" if one_way else "partition")

    def heal(self) -> None:
        self.network.heal()

    def set_link(self, config: LinkConfig) -> None:
        self.network.default_link = config

    def _count(self, kind: str) -> None:
        self.fault_counts[kind] = self.fault_counts.get(kind, 0) + 1

    # ------------------------------------------------------------------ running

    def step(self) -> None:
        """One round: every running node's duty cycle, the clients', then time moves."""
        work = self._client.do_work()
        now = self.network.clock.nano_time()
        for transport, client in zip(self._kv_transports, self.kv_clients, strict=True):
            work += transport.do_work()
            client.do_work(now)
        for member in self.members:
            if member.node is not None and member.paused_until_ns <= now:
                try:
                    work += member.node.do_work()
                    self._check_leader_commit(member)  # at once: before another member acts
                    if member.node.is_terminated:
                        self._terminated(member)
                except SimulatedCrash:
                    # the disk's armed crash point was reached inside the node: the process ends there
                    self.crash(member.member_id, kind="crash_at_storage_operation")
                except ConsensusAgentError:
                    # the archive failed to record the log (a failed write or sync): the node ends
                    self.crash(member.member_id, kind="archive_error")
                except Exception as error:
                    if not _from_storage(error):
                        raise
                    # a failed write or sync ends the node's process, as an I/O error ends Aeron's
                    self.crash(member.member_id, kind="io_error")
        network = self.network
        if work == 0:
            next_ns = network.next_delivery_ns()
            target = now + MS if next_ns is None else min(next_ns, now + MS)
            network.clock.set(max(target, now + 1))
        else:
            network.advance(1_000)
        self._check_step()

    def run(self, duration_ns: int, *, every: Callable[[], object] | None = None) -> None:
        end = self.network.clock.nano_time() + duration_ns
        while self.network.clock.nano_time() < end:
            self.step()
            if every is not None:
                every()

    @property
    def now_ns(self) -> int:
        return self.network.clock.nano_time()

    def leader(self) -> ClusterNode | None:
        """The member that leads with its election complete, if one does (the client's view)."""
        for member in self.members:
            node = member.node
            if node is not None and node.agent.role == "LEADER" and node.agent.election_state == "CLOSED":
                return node
        return None

    def submit(self, command: int, *, to_leader: tuple[int, int] | None = None) -> bool:
        """Offer command ``command`` through the client's session; ``False`` while it connects, while
        it knows no leader to send to, or when the leader's ingress pushes back. With ``to_leader`` (a
        member id and its leadership term), also ``False`` while the session knows another leader: a
        script that waits for a command to be taken by the leader it sees elected."""
        session = self._client_session()
        if session is None:
            return False
        if to_leader is not None and (session.leader_member_id, session.leadership_term_id) != to_leader:
            return False
        if self._replies_stopped():
            # with services every command is echoed: commands and no echo for this long, and the
            # session is likely one the cluster closed while its CLOSED event could not reach the client
            session.close()
            self._session = None
            self._count_client_event("reconnect after silence")
            return False
        if session.offer(command.to_bytes(8, "little", signed=True)) > 0:
            self.commands_sent += 1
            if self._awaiting_reply_since_ns is None:
                self._awaiting_reply_since_ns = self.now_ns
            return True
        return False

    def _replies_stopped(self) -> bool:
        since = self._awaiting_reply_since_ns
        if self.service_checker is None or since is None or self.now_ns - since < CLIENT_SILENCE_NS:
            return False
        self._awaiting_reply_since_ns = None
        return True

    def _client_session(self) -> AeronCluster | None:
        """The client's open session, connecting (a step at a time) when it has none."""
        session = self._session
        try:
            if session is None:
                endpoints = ",".join(f"{c.member_id}={c.member.ingress}" for c in self.configs)
                session = self._session = AeronCluster.begin_connect(
                    self._client,
                    egress_channel=f"aeron:udp?endpoint={CLIENT_HOST}:0",
                    ingress_endpoints=endpoints,
                )
            if not session.poll_connect():
                return None
            session.poll_egress(self._on_client_event)
        except ClusterClientError as error:
            self._count_client_event(f"connect failed: {str(error).split(':')[1].strip()}")
            if session is not None:
                session.close()
            self._session = None
            return None
        if session.is_closed:
            self._session = None
            return None
        return session

    def poll_client(self) -> AeronCluster | None:
        """Read the client's egress (connecting it if it has no session); its open session, if any."""
        return self._client_session()

    def _on_client_event(self, event: object) -> None:
        self._count_client_event(type(event).__name__)
        if isinstance(event, Message):
            self.client_messages.append(event.payload)
            self._awaiting_reply_since_ns = None

    def _count_client_event(self, kind: str) -> None:
        self.client_events[kind] = self.client_events.get(kind, 0) + 1

    # ------------------------------------------------------------------ checkers

    def _violate(self, checker: str, detail: str) -> None:
        if checker not in self._violated:
            self._violated.add(checker)
            self.violations.append(Violation(self.seed, self.now_ns, checker, detail))

    def _on_datagram(self, source: tuple[str, int], destination: tuple[str, int], payload: bytes) -> None:
        """The network's tap: every datagram a member sends, before faults act on it."""
        sender = self._member_of_host.get(source[0])
        if sender is None:
            return
        for message in _whole_messages(payload, self._consensus_stream_id):
            if len(message) < codecs.HEADER_SIZE or int.from_bytes(message[2:4], "little") not in _WATCHED:
                continue  # the rest (AppendPosition, CanvassPosition, ...) the checkers do not read
            try:
                decoder = codecs.decode(message)
            except CodecError:
                continue
            if isinstance(decoder, codecs.VoteDecoder):
                if decoder.vote == codecs.BooleanType.TRUE:
                    self._check_vote(
                        decoder.follower_member_id, decoder.candidate_term_id, decoder.candidate_member_id
                    )
            elif isinstance(decoder, codecs.CommitPositionDecoder):
                self.announced_commit = max(self.announced_commit, decoder.log_position)

    def _check_vote(self, voter: int, candidate_term: int, candidate: int) -> None:
        granted = self.votes.setdefault((voter, candidate_term), candidate)
        if granted != candidate:
            self._violate(
                "one vote per candidate term",
                f"n{voter} voted for n{granted} and n{candidate} in candidate term {candidate_term}",
            )
        if self.file_sync_level and 0 <= voter < len(self.members):
            # at a level that claims to survive power loss, the vote's term is on the disk for good first
            durable = self.members[voter].disk.storage("cluster").durable_bytes(NODE_STATE_FILE_NAME)
            durable_term = -1
            if durable is not None:
                try:
                    durable_term = decode_node_state(
                        durable, "node-state.dat"
                    ).candidate_term.candidate_term_id
                except NodeStateError:
                    durable_term = -1
            if durable_term < candidate_term:
                self._violate(
                    "a vote leaves only once its term is durable",
                    f"n{voter} voted in candidate term {candidate_term}; its disk holds {durable_term}",
                )

    def _check_step(self) -> None:
        for member in self.members:
            node = member.node
            if node is None:
                continue
            if node.restarts != member.restarts:
                # started again in place, on a snapshot copied from another member: a new life
                member.restarts = node.restarts
                member.commit = 0
                self._check_recovery(member)
            agent = node.agent
            if agent.election_state != member.state:
                member.state = agent.election_state
                if self.on_state_change is not None:
                    self.on_state_change(member.member_id, member.state)
            if agent.role == "LEADER" and agent.election_state in ("LEADER_READY", "CLOSED"):
                term = agent.leadership_term_id
                previous = self.leaders.setdefault(term, member.member_id)
                if previous != member.member_id:
                    self._violate("one leader per term", f"term {term}: n{previous} and n{member.member_id}")
            commit = agent.commit_position
            self._check_leader_commit(member)
            if commit > member.commit and commit > self.announced_commit:
                self._violate(
                    "followers commit only what a leader committed",
                    f"n{member.member_id} commit {commit} > {self.announced_commit}, the highest announced",
                )
            if commit < member.commit:
                self._violate(
                    "commit never goes backwards", f"n{member.member_id} {member.commit} -> {commit}"
                )
            recorded = self.recorded_position(member.member_id)
            member.recorded = recorded
            if commit > recorded:
                self._violate(
                    "commit within the recorded log",
                    f"n{member.member_id} commit {commit} > recorded {recorded}",
                )
            member.commit = commit

    def recorded_position(self, member_id: int) -> int:
        """How much of the log member ``member_id``'s archive holds: its recording's position counter
        while it records, else the catalog's stop position (0 without a log recording)."""
        node = self.members[member_id].node
        if node is None:
            return 0
        recording_id = node.agent.log_recording_id
        if recording_id < 0:
            return 0
        member = self.members[member_id]
        counter = member.counter
        if counter is None or counter.is_closed or member.counter_of != (node, recording_id):
            counter = node.transport.counters_manager.find(
                RECORDING_POSITION_TYPE_ID,
                lambda key: len(key) >= 8 and int.from_bytes(key[:8], "little", signed=True) == recording_id,
            )
            member.counter, member.counter_of = counter, (node, recording_id)
        if counter is not None:
            return counter.get()
        stop = node.archive.catalog.stop_position(recording_id)
        return 0 if stop is None else max(stop, 0)

    def _check_leader_commit(self, member: _Member) -> None:
        """A leader's commit, judged as its duty cycle leaves it (``step``): the other members' archives
        and term histories are then as they were when it committed, for none has acted since."""
        node = member.node
        if node is None or node.agent.role != "LEADER":
            return
        commit = node.agent.commit_position
        if commit > member.commit:
            self._check_quorum_recorded(member.member_id, node.agent.leadership_term_id, commit)
            member.commit = commit

    def _check_quorum_recorded(self, leader_id: int, term: int, commit: int) -> None:
        """A leader of term ``term`` commits only what a quorum of archives have recorded (a member that is
        down counts with what its disk kept: all it had recorded, unless the crash was a power loss) --
        and only once each of that quorum has recorded ``term``, or a later one, in its term history:
        Raft's rule for committing older terms' entries (section 5.4.2). A member holding the bytes under
        an older last term still compares as a log of that term, and a candidate with a longer log of a
        term in between could win its vote and cut what was committed.

        ``term`` is the term the leader leads (its role's), not the latest in its own history: a new
        leader records its term only in LEADER_INIT, after reading its log back (LEADER_REPLAY, which
        takes duty cycles), so while it replicates and replays its own history still ends in an older
        term -- and its own log, too, compares as that older term's until then. Judged against its
        history, a commit made in those states would be measured against the older term, which every
        holder has, and nothing could fail."""
        majority = len(self.members) // 2 + 1
        holders = [m.member_id for m in self.members if self._kept(m) >= commit]
        if len(holders) < majority:
            self._violate(
                "committed only what a quorum has recorded",
                f"n{leader_id} commit {commit}: {len(holders)} archives hold it",
            )
            return
        in_term = [member_id for member_id in holders if self._last_term(member_id) >= term]
        if len(in_term) < majority:
            self._violate(
                "a leader commits only what a quorum holds in its term",
                f"n{leader_id} term {term} commit {commit}: of the holders {holders}, only {in_term} "
                f"have recorded term {term} (last terms {[self._last_term(i) for i in holders]})",
            )

    def _kept(self, member: _Member) -> int:
        return self.recorded_position(member.member_id) if member.node is not None else member.kept

    def _last_term(self, member_id: int) -> int:
        """The latest term in member ``member_id``'s term history (recording.log), as its disk holds it."""
        member = self.members[member_id]
        if member.node is None:
            return member.kept_term
        terms = member.node.agent.recording_log.log.terms
        return terms[-1].leadership_term_id if terms else -1

    def log_of(self, member_id: int, upto: int) -> bytes:
        """Member ``member_id``'s recorded log ``[0, upto)``, read from its archive's segment files, with
        every frame's session id zeroed: a log that came by archive replication or a catch-up replay
        carries the replay's session id in its frame headers where the leader's recording has each
        term's own, as in Aeron, so members agree on everything but that field."""
        node = self.members[member_id].node
        if node is None or upto <= 0:
            return b""
        agent = node.agent
        descriptor = node.archive.catalog.recording(agent.log_recording_id)
        if descriptor is None:
            return b""
        # a log purged below a snapshot, or copied from another member's from there, starts later: what
        # it no longer holds is the committed log's, which the checkers had seen before the purge
        out = bytearray(self.committed_log[: descriptor.start_position])
        if len(out) < min(descriptor.start_position, upto):
            self._violate(
                "logs agree up to commit",
                f"n{member_id}'s log starts at {descriptor.start_position}, beyond what was committed",
            )
        with RecordingReader.of(node.archive.ctx.storage, descriptor, stop_position=None) as reader:
            while reader.position < upto:
                block = reader.read_block(min(64 * 1024, upto - reader.position))
                if block is None:
                    break
                out += block
                if len(block) == _HEADER and reader.position - len(out) > 0:
                    out += bytes(reader.position - len(out))  # a PAD frame's body, as the log holds it
        return _without_session_ids(out[:upto])

    # ------------------------------------------------------------------ snapshots

    def request_action(self, action: ToggleState) -> bool:
        """The leader (if there is one) is asked for ``action`` (a snapshot, a suspension, ...), as an
        operator's tool asks: through its control file, which the node reads on its next control tick.
        Whether there was a leader to ask."""
        for member in self.members:
            node = member.node
            if node is not None and node.agent.role == "LEADER" and node.agent.election_state == "CLOSED":
                # the tool is a process of its own: its write is no operation of the node's (it can reach
                # no crash point armed in the node's disk)
                submit_request(member.disk.storage("cluster", another_process=True), action)
                self._count(f"{action.name.lower()}_requested")
                return True
        return False

    def request_snapshot(self) -> bool:
        return self.request_action(ToggleState.SNAPSHOT)

    def purge_logs(self) -> int:
        """The operator purges each running member's log below its latest snapshot (the whole segments
        before the one holding the snapshot's position), as the admin tool's ``purge-log`` does through
        the member's archive; the archive refuses what a replay still reads. How many logs it purged.
        The checkers see every log first, so the committed log they keep reaches past every purge."""
        self.check_logs()
        purged = 0
        for member in self.members:
            node = member.node
            if node is None or node.agent.election_state != "CLOSED":
                continue
            agent = node.agent
            snapshots = agent.recording_log.log.latest_snapshot_set()
            descriptor = node.archive.catalog.recording(agent.log_recording_id)
            if not snapshots or descriptor is None:
                continue
            base = purge_position(
                descriptor.start_position,
                snapshots[0].log_position,
                descriptor.term_buffer_length,
                descriptor.segment_file_length,
            )
            if base is None or base > len(self.committed_log):
                continue
            try:
                agent.archive.purge_segments(agent.log_recording_id, base)
            except ArchiveClientError:
                self._count("purge_refused")  # a replay reads there, or the log moved on
                continue
            purged += 1
            self._count("purge")
        return purged

    def leader_suspended(self) -> bool:
        """Whether the leader (if there is one) has its cluster suspended."""
        leader = self.leader()
        return leader is not None and leader.agent.core.module_state == ModuleState.SUSPENDED

    def _check_recovery(self, member: _Member) -> None:
        """A member starts from the newest valid snapshot its recording log names (one it found damaged
        it has invalidated first), or from the log's start if there is none."""
        node = member.node
        assert node is not None
        latest = node.agent.recording_log.log.latest_snapshots(node.config.service_count)
        expected = latest[0].log_position if latest else 0
        if node.agent.core.snapshot_position != expected:
            self._violate(
                "recovery uses the newest valid snapshot",
                f"n{member.member_id} started from {node.agent.core.snapshot_position}, its newest valid "
                f"snapshot is at {expected}",
            )

    def check_snapshots(self) -> None:
        """Every valid SNAPSHOT entry of a running member names a whole snapshot -- its recording reads
        back, BEGIN to END, at the entry's term and position -- and members' snapshots at one position
        hold the same state: the services' own messages, the consensus module's sessions, timers and
        queued messages. Two things in a session's record are each member's own, as in Aeron: its last
        activity time, and the reason of a close the log does not hold yet (a leader that was asked to
        close it, or whose logged close an election took back, writes the reason down; the others learn
        of the close from the log)."""
        for member in self.members:
            node = member.node
            if node is None:
                continue
            for entry in node.agent.recording_log.log.entries:
                key = (member.member_id, entry.recording_id)
                if not (entry.is_snapshot and entry.is_valid) or key in self._snapshots_checked:
                    continue
                self._snapshots_checked.add(key)
                self.snapshots_taken += entry.service_id == -1
                content = self._snapshot_content(node, entry)
                if content is None:
                    self._violate(
                        "snapshot entries name whole snapshots",
                        f"n{member.member_id}'s entry {entry.entry_index} (service {entry.service_id}, at "
                        f"{entry.log_position}) names recording {entry.recording_id}, which is no whole "
                        "snapshot there",
                    )
                    continue
                seen = self._snapshot_contents.setdefault(
                    (entry.log_position, entry.service_id), (content, member.member_id)
                )
                if seen[0] != content:
                    self._violate(
                        "snapshots are equal at equal positions",
                        f"n{member.member_id}'s snapshot of service {entry.service_id} at "
                        f"{entry.log_position} differs from n{seen[1]}'s",
                    )

    @staticmethod
    def _snapshot_content(node: ClusterNode, entry: RecordingLogEntry) -> object | None:
        """What the entry's snapshot holds, to compare between members; ``None`` if it is no whole
        snapshot at the entry's term and position."""
        descriptor = node.archive.catalog.recording(entry.recording_id)
        if descriptor is None or descriptor.stop_position < 0:
            return None
        try:
            with RecordingReader.of(
                node.archive.ctx.storage, descriptor, stop_position=descriptor.stop_position
            ) as reader:
                messages = [message for _, message in reader.messages()]
            if entry.service_id >= 0:
                service, own = load_service_snapshot(messages)
                marker = service.marker
                content: object = own
            else:
                module = load_consensus_module_snapshot(messages)
                marker = module.marker
                content = replace(
                    module,
                    sessions=tuple(
                        replace(s, time_of_last_activity=0, close_reason=None) for s in module.sessions
                    ),
                )
        except (ArchiveError, SnapshotError):
            return None
        # a snapshot a seeded recording log names begins a new log: it stands at 0
        position = 0 if node.agent.recording_log.log.is_seeded(entry) else marker.log_position
        if (position, marker.leadership_term_id) != (entry.log_position, entry.leadership_term_id):
            return None
        return content

    def check_logs(self) -> None:
        """Logs agree up to the lower commit position; commands are committed at most once; the committed
        prefix grows."""
        running = [m for m in self.members if m.node is not None]
        logs = {m.member_id: self.log_of(m.member_id, m.commit) for m in running}
        for i, a in enumerate(running):
            for b in running[i + 1 :]:
                upto = min(a.commit, b.commit)
                if logs[a.member_id][:upto] != logs[b.member_id][:upto]:
                    self._violate(
                        "logs agree up to commit", f"n{a.member_id} and n{b.member_id} differ below {upto}"
                    )
        for member in running:
            log = logs[member.member_id]
            shorter = min(len(log), len(self.committed_log))
            if log[:shorter] != self.committed_log[:shorter]:
                self._violate(
                    "committed entries are never lost",
                    f"n{member.member_id} differs from what was committed below {shorter}",
                )
            if len(log) > len(self.committed_log) and log.startswith(self.committed_log):
                self.committed_log = log
        commands = commands_of(self.committed_log)
        if len(commands) != len(set(commands)):
            self._violate("each command committed once", "a command appears twice in the committed log")
        self.committed_commands.update(commands)
        for member in running:
            self._check_sessions_logged(member)

    def _check_sessions_logged(self, member: _Member) -> None:
        """Outside an election, every session a member's consensus module holds was opened in its log:
        one whose open an election undid (never committed, cut from the log) must be gone with it. A
        leader's newest opens may not be recorded yet: only those its archive holds count for it; a
        follower learns sessions from its committed, recorded log, so all of its count."""
        node = member.node
        assert node is not None
        agent = node.agent
        if agent.election_state != "CLOSED":
            return
        recorded = self.recorded_position(member.member_id)
        bound = recorded if agent.role == "LEADER" else None
        held = {
            (session.id, session.correlation_id)
            for session in agent.core.sessions.sessions.values()
            if session.opened_position > 0 and (bound is None or session.opened_position <= bound)
        }
        if not held:
            return
        phantoms = held - sessions_opened(self.log_of(member.member_id, recorded))
        if phantoms:
            self._violate(
                "nothing uncommitted survives an election",
                f"n{member.member_id} holds sessions its log never opened: {sorted(phantoms)}",
            )

    def converged(self) -> bool:
        """Every member runs, one leads, and all have committed the same whole log."""
        leader = self.leader()
        if leader is None or any(m.node is None for m in self.members):
            return False
        target = leader.agent.append_position
        return target > 0 and all(
            m.node is not None
            and m.node.agent.commit_position == target
            and m.node.agent.append_position == target
            for m in self.members
        )

    def check_converged(self) -> None:
        """After convergence: every log holds everything ever committed, the same bytes on every member."""
        self.check_logs()
        logs = [self.log_of(m.member_id, m.commit) for m in self.members]
        for member, log in zip(self.members, logs, strict=True):
            if not log.startswith(self.committed_log):
                self._violate(
                    "committed entries are never lost",
                    f"n{member.member_id}'s log lacks what was committed (below {len(self.committed_log)})",
                )
            if log != logs[0]:
                self._violate("members converge on one log", f"n{member.member_id} differs from n0")

    def close(self) -> None:
        for member in self.members:
            if member.node is not None:
                member.node.transport.abort()
                member.node = None
        if self._session is not None:
            self._session.close()
        self._client.abort()
        for client, transport in zip(self.kv_clients, self._kv_transports, strict=True):
            client.close()
            transport.abort()

    def check_linearizable(self) -> Result | None:
        """The key-value clients' histories, checked together (``None`` without key-value clients);
        a history that is not linearizable is a violation."""
        if not self.kv_clients:
            return None
        history = [op for client in self.kv_clients for op in client.finish()]
        result = check_history(KV_MODEL, history)
        if result.ok is False:
            self._violate("key-value answers are linearizable", result.explain())
        return result


def _from_storage(error: BaseException) -> bool:
    """Whether ``error`` is, or was caused by, a storage failure."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, StorageError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _whole_messages(payload: bytes, stream_id: int) -> Iterator[bytes]:
    """The unfragmented messages of stream ``stream_id`` in one datagram of Aeron frames."""
    offset = 0
    end = len(payload)
    while offset + _HEADER <= end:
        frame_length = int.from_bytes(payload[offset : offset + 4], "little", signed=True)
        if frame_length < 8 or offset + frame_length > end:
            return
        if (
            frame_length > _HEADER
            and payload[offset + 6] == _DATA_FRAME
            and payload[offset + 7] == 0
            and payload[offset + 5] & _UNFRAGMENTED == _UNFRAGMENTED
            and int.from_bytes(payload[offset + 16 : offset + 20], "little", signed=True) == stream_id
        ):
            yield payload[offset + _HEADER : offset + frame_length]
        offset += (frame_length + 31) & -32


def _without_session_ids(log: bytearray) -> bytes:
    offset = 0
    while offset + _HEADER <= len(log):
        frame_length = int.from_bytes(log[offset : offset + 4], "little", signed=True)
        if frame_length <= 0:
            break
        log[offset + 12 : offset + 16] = bytes(4)
        offset += (frame_length + 31) & -32
    return bytes(log)


def log_entries(log: bytes) -> Iterator[bytes]:
    """The entries of ``log``, in order: each DATA frame's payload, the fragments of a longer entry put
    back together (BEGIN to END); PAD frames skipped."""
    offset = 0
    parts: list[bytes] | None = None  # the fragments of an entry begun and not yet ended
    while offset + _HEADER <= len(log):
        frame_length = int.from_bytes(log[offset : offset + 4], "little", signed=True)
        if frame_length <= 0:
            break
        flags, frame_type = log[offset + 5], int.from_bytes(log[offset + 6 : offset + 8], "little")
        if frame_type == 1:
            payload = log[offset + _HEADER : offset + frame_length]
            if flags & _BEGIN:
                parts = []
            if parts is not None:
                parts.append(payload)
                if flags & _END:
                    yield b"".join(parts)
                    parts = None
        offset += (frame_length + 31) & -32


def commands_of(log: bytes) -> list[int]:
    """The command ids of the client entries in ``log``."""
    return [
        int.from_bytes(payload[-8:], "little")
        for payload in log_entries(log)
        if len(payload) == _COMMAND_MESSAGE  # not a key-value request
        and codecs.MessageHeaderDecoder.unpack(payload)[1] == _COMMAND_TEMPLATE
    ]


def sessions_opened(log: bytes) -> set[tuple[int, int]]:
    """(cluster session id, correlation id) of every SessionOpenEvent in ``log``."""
    return {
        (decoder.cluster_session_id, decoder.correlation_id)
        for payload in log_entries(log)
        if len(payload) >= codecs.HEADER_SIZE
        and codecs.MessageHeaderDecoder.unpack(payload)[1] == _OPEN_TEMPLATE
        and isinstance(decoder := codecs.decode(payload), codecs.SessionOpenEventDecoder)
    }


_AIMED_STATES: Final = frozenset(
    {
        "CANVASS",
        "CANDIDATE_BALLOT",
        "FOLLOWER_BALLOT",
        "LEADER_LOG_REPLICATION",
        "LEADER_INIT",
        "LEADER_READY",
        "FOLLOWER_LOG_REPLICATION",
        "FOLLOWER_CATCHUP",
        "FOLLOWER_LOG_AWAIT",
        "CLOSED",
    }
)


def _may_fail(sim: NodeSimulator, member: int) -> bool:
    """Whether ``member`` may go down now: it runs, and a majority stays up (down or armed count)."""
    minority = (len(sim.members) - 1) // 2
    return sim.members[member].node is not None and len(sim.down()) + sim.armed() < minority


def _scheduled_fault(sim: NodeSimulator, chooser: random.Random) -> None:
    """One fault of the clock-driven schedule."""
    node_count = len(sim.members)
    roll = chooser.random()
    member = chooser.randrange(node_count)
    down = sim.down()
    if roll < 0.2 and _may_fail(sim, member):
        sim.crash(member)
    elif roll < 0.4 and down:
        sim.restart(chooser.choice(sorted(down)))
    elif roll < 0.55 and node_count > 1:
        other = (member + 1 + chooser.randrange(node_count - 1)) % node_count
        sim.partition(member, other, one_way=chooser.random() < 0.5)
    elif roll < 0.7:
        sim.heal()
    elif roll < 0.8:
        sim.pause(member, chooser.choice([300 * MS, 1_500 * MS, 3_000 * MS]))
    elif roll < 0.9 and _may_fail(sim, member):
        sim.arm_storage_fault(member, chooser)


SNAPSHOT_INTERVALS_MS: Final = (1_000, 2_500, 4_000)  # between a run's snapshot requests
SUSPEND_CHANCE: Final = 0.2  # of a request being a suspension (resumed at the next request)
PURGE_INTERVALS_MS: Final = (500, 1_000, 2_000)  # between the operator's purges of the logs
# with snapshots, segments of one term, so that a run's log spans several and a purge finds some below a
# snapshot (a member that was down then has to catch up from another member's snapshot)
SNAPSHOT_SETTINGS: Final[dict[str, object]] = {"archive.segment.file.length": "64k"}
CRASH_DURING_SNAPSHOT: Final = 0.02  # the chance, each step, that a member taking a snapshot crashes


def _crash_during_snapshot(sim: NodeSimulator, chooser: random.Random) -> None:
    """Now and then, a member that is taking a snapshot crashes (a power loss, at file-sync levels that
    model one) -- before, while or after its services and consensus module record theirs."""
    for member in sim.members:
        node = member.node
        if (
            node is not None
            and node.agent.core.module_state == ModuleState.SNAPSHOT
            and chooser.random() < CRASH_DURING_SNAPSHOT
            and _may_fail(sim, member.member_id)
        ):
            sim.crash(member.member_id)
            sim._count("crash_during_snapshot")


def _aimed_fault(sim: NodeSimulator, chooser: random.Random, member: int) -> None:
    """A fault for ``member``, which has just changed election state: the transitions are where the
    protocol is most fragile, and a clock-driven schedule reaches them only by luck."""
    node_count = len(sim.members)
    other = (member + 1 + chooser.randrange(node_count - 1)) % node_count if node_count > 1 else member
    roll = chooser.random()
    sim._count("aimed_at_transition")
    if roll < 0.25 and other != member:
        sim.partition(member, other, one_way=chooser.random() < 0.5)
    elif roll < 0.4 and other != member:
        for peer in range(node_count):
            if peer != member:
                sim.partition(member, peer, one_way=chooser.random() < 0.3)
    elif roll < 0.55 and _may_fail(sim, member):
        sim.crash(member)
    elif roll < 0.65 and _may_fail(sim, member):
        sim.arm_storage_fault(member, chooser)
    elif roll < 0.75:
        sim.pause(member, chooser.choice([300 * MS, 1_500 * MS, 3_000 * MS]))
    elif roll < 0.85:
        sim.heal()
    elif roll < 0.95 and sim.down():
        sim.restart(chooser.choice(sorted(sim.down())))
    elif _may_fail(sim, other):
        sim.crash(other)


def run_seed(
    seed: int,
    node_count: int = 3,
    canaries: frozenset[str] = frozenset(),
    *,
    safety_ns: int = 15_000 * MS,
    liveness_ns: int = 30_000 * MS,
    file_sync_level: int = 0,
    services: bool = False,
    snapshots: bool = False,
) -> SeedResult:
    """One run: a safety phase with faults chosen by ``seed`` -- a clock-driven schedule, and faults
    aimed at members' election transitions -- then a liveness phase with every fault healed, in which a
    leader must be elected and every member must converge on its commit. A canary raises the file-sync
    level to the one it needs (``CANARY_FILE_SYNC_LEVELS``). With ``services`` every member runs the
    checked service (``cluster.sim.services``), and the liveness phase also waits for every service to
    catch up and for the client to get the last command's reply. With ``snapshots`` the leader is asked
    for a snapshot every few seconds, a member is sometimes crashed while it takes one, and the snapshot
    checkers run (``check_snapshots``; a restart is judged by ``_check_recovery``). Its choices come from
    a generator of their own, so a seed without snapshots runs as it always did."""
    unknown = canaries - CANARIES.keys()
    if unknown:
        raise ValueError(f"unknown canaries: {sorted(unknown)}")
    level = max([file_sync_level, *(CANARY_FILE_SYNC_LEVELS.get(name, 0) for name in canaries)])
    chooser = random.Random(seed ^ 0x5EED)
    # every member's clock runs at its own rate (within 1%) from its own origin, its wall clock up to 5 s
    # apart from the others'
    drift = [
        (1.0 + chooser.uniform(-0.01, 0.01), chooser.randrange(0, 10**12), chooser.randint(-5_000, 5_000))
        for _ in range(node_count)
    ]
    services = services or bool(canaries & (SERVICE_CANARIES | SNAPSHOT_CANARIES))
    snapshots = snapshots or bool(canaries & SNAPSHOT_CANARIES)
    sim = NodeSimulator(
        seed,
        node_count,
        canaries=canaries,
        file_sync_level=level,
        drift=drift,
        checked_services=services,
        settings=SNAPSHOT_SETTINGS if snapshots else None,
    )
    sim.fault_counts["clock_drift"] = node_count
    try:
        link = LinkConfig(
            loss=chooser.choice([0.0, 0.01, 0.05]),
            duplicate=chooser.choice([0.0, 0.02]),
            delay_ns=100_000,
            jitter_ns=chooser.choice([1 * MS, 5 * MS]),
        )
        sim.set_link(link)
        sim._count("link_faults")
        aim = chooser.choice([0.0, 0.1, 0.25])
        aimed: list[int] = []

        def on_state_change(member: int, state: str) -> None:
            if aim and state in _AIMED_STATES and chooser.random() < aim:
                aimed.append(member)

        sim.on_state_change = on_state_change
        command = 0
        steps = 0
        next_fault = sim.now_ns + 500 * MS
        next_check = sim.now_ns
        snapshot_chooser = random.Random(seed ^ 0x5A4B)
        next_snapshot = sim.now_ns + snapshot_chooser.choice(SNAPSHOT_INTERVALS_MS) * MS
        purge_chooser = random.Random(seed ^ 0x9E37)
        next_purge = sim.now_ns + purge_chooser.choice(PURGE_INTERVALS_MS) * MS
        while sim.now_ns < safety_ns and not sim.violations:  # a violation fails the seed: stop there
            sim.step()
            while aimed:
                _aimed_fault(sim, chooser, aimed.pop(0))
            steps += 1
            if steps % 50 == 0 and sim.submit(command):
                command += 1
            if snapshots:
                if sim.now_ns >= next_snapshot:
                    next_snapshot = sim.now_ns + snapshot_chooser.choice(SNAPSHOT_INTERVALS_MS) * MS
                    # the operator: mostly snapshots, now and then a suspension, resumed at the next turn
                    if sim.leader_suspended():
                        sim.request_action(ToggleState.RESUME)
                    elif snapshot_chooser.random() < SUSPEND_CHANCE:
                        sim.request_action(ToggleState.SUSPEND)
                    else:
                        sim.request_snapshot()
                _crash_during_snapshot(sim, snapshot_chooser)
                if sim.now_ns >= next_purge:
                    next_purge = sim.now_ns + purge_chooser.choice(PURGE_INTERVALS_MS) * MS
                    sim.purge_logs()
            if sim.now_ns >= next_check:
                next_check = sim.now_ns + 500 * MS
                sim.check_logs()
                if snapshots:
                    sim.check_snapshots()
            if sim.now_ns >= next_fault:
                next_fault = sim.now_ns + chooser.choice([300, 800, 1500]) * MS
                _scheduled_fault(sim, chooser)
        # liveness: heal everything, bring everyone back
        sim.on_state_change = None
        sim.heal()
        sim.resume_all()
        sim.set_link(LinkConfig())
        deadline = sim.now_ns + liveness_ns
        failure: str | None = "no leader elected and converged within the liveness bound"
        final_sent = False
        sim.disarm_storage_faults()
        final, resend_at = b"", 0
        resume_at = 0
        while sim.now_ns < deadline and not sim.violations:
            sim.step()
            for member in sorted(sim.down()):
                sim.restart(member)
            if snapshots and sim.now_ns >= resume_at and sim.leader_suspended():
                resume_at = sim.now_ns + 500 * MS  # the operator resumes a cluster left suspended
                sim.request_action(ToggleState.RESUME)
            if services and final_sent and final not in sim.client_messages and sim.now_ns >= resend_at:
                final_sent = False  # no reply: lost in a leader change (ingress is at most once); again
            if not final_sent and sim.submit(command):
                final_sent, final = True, command.to_bytes(8, "little", signed=True)
                resend_at = sim.now_ns + FINAL_REPLY_TIMEOUT_NS
                command += 1
            elif services:
                sim.poll_client()
            if final_sent and sim.converged():
                if not services or (sim.services_caught_up() and final in sim.client_messages):
                    failure = None
                    break
                failure = "the services did not catch up, or the last command got no reply, in time"
        if sim.violations:
            failure = None  # the seed failed on a violation: the liveness phase did not finish
        elif failure is None:
            sim.check_converged()
            sim.check_services()
            sim.check_linearizable()
            if snapshots:
                sim.check_snapshots()
                failure = _shut_down(sim, liveness_ns)
                sim.fault_counts["snapshots_taken"] = sim.snapshots_taken
        return SeedResult(
            seed,
            node_count,
            len(sim.committed_commands),
            dict(
                sorted({**sim.fault_counts, **_network_faults(sim.network), **_storage_faults(sim)}.items())
            ),
            list(sim.violations),
            failure,
            sum(len(client.history) for client in sim.kv_clients),
            sum(op.indeterminate for client in sim.kv_clients for op in client.history),
        )
    finally:
        sim.close()


def _shut_down(sim: NodeSimulator, bound_ns: int) -> str | None:
    """The run's end, with snapshots: the operator shuts the cluster down (SHUTDOWN through the leader's
    control file). Every member must stop within ``bound_ns``, all at one position, each with a whole
    snapshot there in its recording log. A liveness failure if they do not stop; a violation if they stop
    apart or without the snapshot."""
    deadline = sim.now_ns + bound_ns
    asked_at = -(1 << 62)
    while any(member.node is not None for member in sim.members):
        if sim.now_ns >= deadline:
            return "the cluster did not shut down within the liveness bound"
        # a request an election dropped is asked again
        if sim.now_ns >= asked_at + 2_000 * MS and sim.request_action(ToggleState.SHUTDOWN):
            asked_at = sim.now_ns
        sim.step()
    stops = {
        (m.terminated_at.leadership_term_id, m.terminated_at.log_position)
        for m in sim.members
        if m.terminated_at is not None
    }
    if len(stops) != 1 or any(m.terminated_at is None for m in sim.members):
        sim._violate("a shutdown stops every member at one position", f"members stopped at {sorted(stops)}")
        return None
    ((_, position),) = stops
    for member in sim.members:
        log = RecordingLogFile.read(member.disk.storage("cluster", another_process=True)).log
        latest = [e.log_position for e in log.entries if e.is_snapshot and e.is_valid and e.service_id == -1]
        if not latest or latest[-1] != position:
            sim._violate(
                "a shutdown snapshots where the members stop",
                f"n{member.member_id} stopped at {position}; its latest snapshot is at "
                f"{latest[-1] if latest else None}",
            )
    return None


FINAL_REPLY_TIMEOUT_NS: Final = 2_000 * MS  # the liveness phase sends a new last command after this
SERVICE_CANARIES: Final = frozenset({"deliver_before_commit", "refire_committed_timer", "local_reads"})
"""Canaries only the service checkers can catch: a run with one of them runs the checked services."""
SNAPSHOT_CANARIES: Final = frozenset({"snapshot_before_acks"})
"""Canaries of snapshots and the services' acks of them: a run with one of them takes snapshots and runs
the checked services (a node without services has no ack to wait for)."""


def _storage_faults(sim: NodeSimulator) -> dict[str, int]:
    disks = [member.disk for member in sim.members]
    faults = {
        "storage_lost_unsynced_writes": sum(disk.lost_writes for disk in disks),
        "storage_torn_writes": sum(disk.torn_writes for disk in disks),
    }
    return {kind: count for kind, count in faults.items() if count}


def _network_faults(network: SimNetwork) -> dict[str, int]:
    stats = network.stats()
    return {
        "loss": stats.dropped_loss,
        "duplicate": stats.duplicated,
        "dropped_partition": stats.dropped_partition,
    }
