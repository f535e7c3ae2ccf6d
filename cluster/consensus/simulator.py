"""A deterministic cluster simulator: N consensus cores, a seeded message network, virtual time, checkers.

Theory of operation
-------------------
Each simulated ``Node`` is a real ``ConsensusCore`` plus what a real node's I/O would be, kept in memory:
a *durable* part that survives a crash (the candidate term id of node-state.dat, the entries of
recording.log, the log bytes its archive has recorded) and a volatile part that does not (the core
itself, the service's applied state). The ``Simulator`` is the driver, by the contract of
``actions.py``: it executes each core's actions in order -- ``Persist*`` and ``TruncateLog`` change the
durable part at once, before the next action runs -- delivers the answers (``on_log_appended``,
``on_log_stopped``, ``on_log_published``, ``on_log_joined``) after the list, reads no core field (what it
knows of a node's role, term and log session comes from its actions; only checkers look inside a core),
and owns one ``random.Random(seed)`` for every choice:
message delay, loss, duplication, reordering, fault schedule, client commands. Time is virtual (``now_ns``),
moved in steps of ``tick_ns``; every core gets ``on_tick`` each step.

Consensus messages travel as the SBE bytes the core produced, through one of the networks of
``sim_network.py``: a message-level one with per-message delay (reordering falls out of random delays),
loss, duplication and partitions (symmetric or one-way), or Aeron's transport -- publications and
subscriptions on the consensus stream -- over the transport layer's ``SimNetwork``. The core cannot tell
which. The log travels the way Aeron's log channel and catch-up replay move it: a follower that has
joined a term reads the leader's recorded log from its own position onwards while the two can talk
(with the same delay), and ``LogRequest("replicate")`` copies a range of the leader's log the same way.

Each node's recorded log is Aeron's log stream byte for byte: DATA frames on stream 100, in the log
session of the term that wrote them, term id and offset following from the position, PAD frames where a
message did not fit in the rest of a term (``write_fragments`` of the transport lays them out). Each
node runs a replicated key-value service (``KeyValueService``) fed the committed entries.

This simulator drives the core with a model of a node's log, archive and files, not with the node's own
code: the moves of the log above are that model's (catch-up replays, for one, are the follower's copy,
so ``StartCatchupReplay`` and ``StopCatchupReplay`` do nothing here).

Checkers run throughout: at most one leader per term; no RequestVote
or Vote leaves before its candidate term is durable; logs agree byte for byte up to the lower of two
commit positions; every entry committed in a term is in the log of every leader of a later term;
commit positions never move backwards within a node's life, stay within the durable log, and never see
a truncation below the highest one the node ever reached; a commit
covers only bytes a quorum holds durably -- the same bytes -- and a leader commits only what a quorum
has recorded in its own term; committed entries survive crashes; services apply the same entries in the
same order and have equal states at equal positions; each command is applied at most once; and, once a
run converges, every command a client was told is committed is in every live node's log exactly once.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from cluster.consensus.core.actions import (
    NO_POSITION_FIELD,
    Action,
    AppendLog,
    Broadcast,
    Commit,
    LogRequest,
    PersistCandidateTerm,
    PersistTerm,
    RoleChange,
    Send,
    StartCatchupReplay,
    StateChange,
    StopCatchupReplay,
    StopLog,
    TruncateLog,
)
from cluster.consensus.core.config import ConsensusConfig
from cluster.consensus.core.errors import ConsensusError
from cluster.consensus.core.log import FRAME_ALIGNMENT, HEADER_LENGTH, entry_end
from cluster.consensus.core.members import parse_members, quorum_threshold
from cluster.consensus.core.node import ConsensusCore
from cluster.consensus.core.recording_log import RecordingLog
from cluster.consensus.sim_network import (
    ConsensusNetwork,
    FaultConfig,
    MessageNetwork,
    TransportNetwork,
)
from cluster.consensus.sim_results import SeedResult, Violation
from cluster.transport.logbuffer import write_fragments
from generated import aeron_cluster_codecs as codecs
from generated.aeron_transport_frames import DataFlags, DataHeaderDecoder, DataHeaderEncoder, FrameType

__all__ = [
    "NETWORKS",
    "FaultConfig",
    "KeyValueService",
    "Node",
    "Simulator",
    "SimulatorError",
    "Violation",
    "command_of",
    "member_string",
]

MS = 1_000_000
TERM_LENGTH = 64 * 1024  # Aeron's log default is 64 MB; a small term makes PAD frames and term changes common
MTU = 1408
LOG_STREAM_ID = 100
INITIAL_TERM_ID = 0  # the log publication's init-term-id, so position == bytes since the cluster began
LOG_RECORDING_ID = 0  # each node's archive holds the log in its first recording
_pack_frame_header = DataHeaderEncoder.LAYOUT.pack_into
_unpack_frame_header = DataHeaderDecoder.LAYOUT.unpack_from
_UNFRAGMENTED = int(DataFlags.BEGIN) | int(DataFlags.END)
_POSITION = struct.Struct("<q")
_PAD = int(FrameType.PAD)


def member_string(count: int) -> str:
    """Aeron's member string for ``count`` simulated members on hosts ``n0``, ``n1``, ..."""
    return "|".join(f"{i},n{i}:9002,n{i}:9003,n{i}:9004,n{i}:9005,n{i}:8010" for i in range(count))


@dataclass(slots=True)
class _Durable:
    candidate_term_id: int = -1
    recording_log: RecordingLog = field(default_factory=RecordingLog)  # recording.log's entries
    log: bytearray = field(default_factory=bytearray)  # the recorded log, position = index
    entries: list[tuple[int, int]] = field(default_factory=list)  # (start, end) of each entry
    synced: int = 0  # what a crash keeps: the log is durable up to here
    committed: int = 0  # the checkers' record: the highest position this node ever committed (the node
    # itself does not keep it: a restarted core learns its commit position again)


class SimulatorError(ConsensusError, ValueError):
    """A simulator was asked for something it does not have (an unknown network, say)."""


class KeyValueService:
    """The deterministic service the simulated clients talk to: a replicated key-value map.

    A client command is a SessionMessageHeader with an 8-byte little-endian command id as its payload;
    it sets key ``id % KEYS`` to ``id``. Other log entries (NewLeadershipTermEvent, ...) do not change the
    map. ``state`` is the whole map with the count of commands applied, so two services that applied the
    same entries in the same order have equal states.
    """

    KEYS = 16

    def __init__(self) -> None:
        self.values = [-1] * self.KEYS
        self.count = 0

    def apply(self, entry: bytes) -> None:
        command = command_of(entry)
        if command is not None:
            self.values[command % self.KEYS] = command
            self.count += 1

    def state(self) -> tuple[int, ...]:
        return (self.count, *self.values)


def command_of(entry: bytes) -> int | None:
    """The client command id an entry carries, or ``None`` if it is not a client message."""
    if (
        len(entry) >= 40
        and codecs.MessageHeaderDecoder.unpack(entry)[1] == codecs.SessionMessageHeaderDecoder.TEMPLATE_ID
    ):
        return int.from_bytes(entry[32:40], "little")
    return None


@dataclass(slots=True)
class Node:
    member_id: int
    durable: _Durable
    core: ConsensusCore | None = None
    commit_position: int = 0
    applied: list[bytes] = field(default_factory=list)
    applied_position: int = 0
    service: KeyValueService = field(default_factory=KeyValueService)
    states: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)  # (position, state) per entry
    joined: tuple[int, int] | None = None  # (leadership term, leader) whose log this node follows
    replicate_to: int = -1
    replicate_from: int = -1
    replicate_term: int = -1  # the term its source led when it asked
    reported: int = 0  # the append position last reported to the core
    paused_until: int = 0
    sync_interval_ns: int = 0  # the archive syncs its writes this often (0: every step)
    next_sync_ns: int = 0
    clock_rate: float = 1.0
    clock_offset: int = 0
    # what the node's actions said of it (a driver reads no core fields): role, term, election state,
    # the log session it publishes
    role: str = "FOLLOWER"
    term: int = -1
    state: str = "INIT"
    log_session_id: int = 0

    @property
    def leading(self) -> bool:
        """A leader whose election is complete: it appends clients' commands."""
        return self.core is not None and self.role == "LEADER" and self.state == "CLOSED"

    @property
    def alive(self) -> bool:
        return self.core is not None


class Simulator:
    """N nodes, one seed; ``run(duration_ns)`` advances virtual time (see the module docstring)."""

    def __init__(
        self,
        seed: int,
        node_count: int = 3,
        *,
        faults: FaultConfig | None = None,
        tick_ns: int = 2 * MS,
        canaries: frozenset[str] = frozenset(),
        trace: Callable[[str], object] | None = None,
        timeouts: dict[str, int] | None = None,
        network: str = "message",
    ) -> None:
        self.seed = seed
        self.timeouts = dict(timeouts or {})
        self.random = random.Random(seed)
        self.faults = faults or FaultConfig()
        self.tick_ns = tick_ns
        self.canaries = canaries
        self.now_ns = 0
        self.members = parse_members(member_string(node_count))
        self.nodes = [Node(member.id, _Durable()) for member in self.members]
        if network not in NETWORKS:
            raise SimulatorError(f"unknown network {network!r}: one of {', '.join(NETWORKS)}")
        self.network: ConsensusNetwork = (
            MessageNetwork(self.random, self.faults)
            if network == "message"
            else TransportNetwork(self.members, self.random.getrandbits(63), self.faults)
        )
        self.blocked: set[tuple[int, int]] = set()
        self.violations: list[Violation] = []
        self.leaders: dict[int, int] = {}
        self.commands_sent = 0
        self.committed_commands: set[int] = set()
        self.fault_counts_own: dict[str, int] = {}
        self._trace = trace
        self._deferred: list[tuple[Node, Callable[[ConsensusCore], list[Action]]]] = []
        self._checked: dict[tuple[int, int], int] = {}
        self._violated: set[str] = set()
        self._committed_log = b""  # the longest committed prefix any node has reported
        self._commits: list[tuple[int, int]] = []  # (term it was committed in, committed position)
        self._awaiting_ack: list[tuple[int, int, int, int]] = []  # (leader, term, entry position, command)
        self.acknowledged: set[int] = set()
        self._commands_applied: dict[int, set[int]] = {}
        self._applied_checked: dict[tuple[int, int], int] = {}
        self._seen_applied: dict[int, int] = {}
        self._draining = False
        self.down: set[int] = set()  # crashed members
        self.action_crash_probability = 0.0
        """Per action: the chance that the node crashes right after executing it, splitting the list."""
        self.on_state_change: Callable[[int, str], object] | None = None
        """Called with (member id, new state) at every election transition: faults aimed at them."""
        self.entries_per_step: int | None = None
        """How many log entries a replication, catch-up or live log moves per step (``None``: all that
        are there). A small number makes each copy take time, as an archive replay does, so crashes and
        timeouts can land part-way through one."""
        for node in self.nodes:
            self._start(node)

    # ------------------------------------------------------------------ nodes

    def _config(self, member_id: int) -> ConsensusConfig:
        return ConsensusConfig(member_id=member_id, members=self.members, **self.timeouts)

    def _start(self, node: Node) -> None:
        durable = node.durable
        append = len(durable.log)
        node.core = ConsensusCore(
            self._config(node.member_id),
            self.random.random,
            now_ns=self.clock(node),
            candidate_term_id=durable.candidate_term_id,
            recording_log=durable.recording_log,
            append_position=append,
            canaries=self.canaries,
        )
        node.role, node.term, node.state = "FOLLOWER", -1, "INIT"
        last = durable.recording_log.find_last_term()
        node.term = -1 if last is None else last.leadership_term_id
        node.commit_position = 0
        node.applied = []
        node.service = KeyValueService()  # no snapshots yet: a restarted service replays the log from 0
        node.states = []
        self._seen_applied[node.member_id] = 0
        self._commands_applied[node.member_id] = set()
        for key in [key for key in self._applied_checked if node.member_id in key]:
            del self._applied_checked[key]
        node.applied_position = 0
        node.joined = None
        node.replicate_to = -1
        node.reported = append
        self._execute(node, node.core.start(self.clock(node)))

    def clock(self, node: Node) -> int:
        """The node's own clock: virtual time with its drift and offset (monotonic)."""
        return node.clock_offset + int(self.now_ns * node.clock_rate)

    def crash(self, member_id: int) -> None:
        """Stop the node and lose everything not durable: the core, the service, the unsynced log tail."""
        node = self.nodes[member_id]
        node.core = None
        self.down.add(member_id)
        self.network.crash(member_id)
        durable = node.durable
        if durable.synced < durable.committed:
            self._violate(
                "committed entries survive a crash",
                f"n{member_id} keeps {durable.synced} bytes, committed {durable.committed}",
            )
        del durable.log[durable.synced :]
        durable.entries = [(s, e) for s, e in durable.entries if e <= durable.synced]
        self._count("crash")

    def pause(self, member_id: int, duration_ns: int) -> None:
        """Freeze the node (no ticks, no messages) for ``duration_ns``; it resumes with its state."""
        self.nodes[member_id].paused_until = self.now_ns + duration_ns
        self._count("pause")

    def restart(self, member_id: int) -> None:
        node = self.nodes[member_id]
        if node.core is None:
            self.down.discard(member_id)
            self.network.restart(member_id)
            self._start(node)
            self._count("restart")

    def partition(self, a: int, b: int, *, one_way: bool = False) -> None:
        self.blocked.add((a, b))
        if not one_way:
            self.blocked.add((b, a))
        self.network.partition(a, b, one_way=one_way)
        self._count("partition_one_way" if one_way else "partition")

    def heal(self) -> None:
        self.blocked.clear()
        self.network.heal()

    def set_faults(self, faults: FaultConfig) -> None:
        self.faults = faults
        self.network.set_faults(faults)

    def fault_counts(self) -> dict[str, int]:
        """Every fault injected so far, by kind: the simulator's and the network's."""
        counts = dict(self.fault_counts_own)
        for kind, count in self.network.fault_counts().items():
            counts[kind] = counts.get(kind, 0) + count
        return dict(sorted(counts.items()))

    def _count(self, kind: str) -> None:
        self.fault_counts_own[kind] = self.fault_counts_own.get(kind, 0) + 1

    # ------------------------------------------------------------------ actions

    def _execute(self, node: Node, actions: list[Action]) -> None:
        """Run ``actions`` in order; answers the core asked for (log joined, appended, replicated) are
        delivered after the whole list has run, never into the middle of it."""
        self._run_actions(node, actions)
        if self._draining:
            return
        self._draining = True
        try:
            while self._deferred:
                target, answer = self._deferred.pop(0)
                if target.core is not None:
                    self._run_actions(target, answer(target.core))
        finally:
            self._draining = False

    def _defer(self, node: Node, answer: Callable[[ConsensusCore], list[Action]]) -> None:
        self._deferred.append((node, answer))

    def _run_actions(self, node: Node, actions: list[Action]) -> None:
        crash_probability = self.action_crash_probability
        for index, action in enumerate(actions):
            if crash_probability and index and self.random.random() < crash_probability:
                self._count("crash_mid_actions")  # between two actions of one list: the rest never runs
                self.crash(node.member_id)
                return
            if self._trace is not None and not isinstance(action, AppendLog):  # _append traces its own
                self._trace(f"{self.now_ns // 1000:>10}us n{node.member_id} {_describe(action)}")
            if isinstance(action, Send):
                self._check_durable_before_send(node, action.message)
                self._send(node.member_id, action.to, action.message)
            elif isinstance(action, Broadcast):
                self._check_durable_before_send(node, action.message)
                for other in self.nodes:
                    if other.member_id != node.member_id:
                        self._send(node.member_id, other.member_id, action.message)
            elif isinstance(action, PersistCandidateTerm):
                node.durable.candidate_term_id = max(node.durable.candidate_term_id, action.candidate_term_id)
            elif isinstance(action, PersistTerm):
                node.durable.recording_log.append_term(
                    action.recording_id,
                    action.leadership_term_id,
                    action.term_base_log_position,
                    action.timestamp,
                )
            elif isinstance(action, TruncateLog):
                self._truncate(node, action.position)
                node.durable.recording_log.truncate_to(
                    action.position, action.leadership_term_id, reopen=action.reopen
                )
            elif isinstance(action, StopLog):
                self._stop_log(node)
            elif isinstance(action, AppendLog):
                self._append(node, action)
            elif isinstance(action, LogRequest):
                self._log_request(node, action)
            elif isinstance(action, (StartCatchupReplay, StopCatchupReplay)):
                pass  # here the follower that joins copies the leader's log itself (_move_log)
            elif isinstance(action, Commit):
                self._commit(node, action.position)
            elif isinstance(action, RoleChange):
                node.role, node.term = action.role, action.leadership_term_id
                if action.role == "LEADER":
                    self._check_new_leader(node, action.leadership_term_id)
                    previous = self.leaders.setdefault(action.leadership_term_id, node.member_id)
                    if previous != node.member_id:
                        self._violate(
                            "one leader per term",
                            f"term {action.leadership_term_id}: {previous} and {node.member_id}",
                        )
            elif isinstance(action, StateChange):
                node.state = action.to_state
                if self.on_state_change is not None:
                    self.on_state_change(node.member_id, action.to_state)

    def _check_durable_before_send(self, node: Node, message: bytes) -> None:
        """The ordering contract of ``actions.py``: a RequestVote or a Vote leaves only once the candidate
        term it carries is durable -- as the node state's candidate term, or a TERM entry of the recording
        log -- so a node that crashes and restarts can never vote twice in a term."""
        template = codecs.MessageHeaderDecoder.unpack(message)[1]
        if template in _VOTE_TEMPLATES:
            term = codecs.decode(message).candidate_term_id
            durable = node.durable
            known = max(durable.candidate_term_id, _last_term(durable))
            if term > known:
                self._violate(
                    "durable before sent",
                    f"n{node.member_id} sent {codecs.decode(message).NAME} for candidate term {term}, "
                    f"durable {known}",
                )

    def _send(self, source: int, destination: int, message: bytes) -> None:
        self.network.send(self.now_ns, source, destination, message)

    def _stop_log(self, node: Node) -> None:
        """The log stops where the archive recorded it: a written but not yet synced tail was never
        reported and is dropped (the leader sends it again)."""
        node.joined = None
        node.replicate_to = -1
        if len(node.durable.log) > node.reported:
            self._truncate(node, node.reported)
        now, stop = self.clock(node), len(node.durable.log)
        self._defer(node, lambda core: core.on_log_stopped(now, stop))

    def _append(self, node: Node, action: AppendLog) -> None:
        """The log publication: the entry goes after the log's end (a PAD frame first when it does not
        fit in the rest of the term), in the node's log session; the core hears where it ended."""
        log = node.durable.log
        message = action.message
        start, end = entry_end(len(log), len(message), TERM_LENGTH, MTU)
        if action.end_position_offset != NO_POSITION_FIELD:
            stamped = bytearray(message)
            _POSITION.pack_into(stamped, action.end_position_offset, end)
            message = bytes(stamped)
        session_id = node.log_session_id
        if start > len(log):  # the entry did not fit in the rest of the term: a PAD frame fills it
            pad = len(log)
            log.extend(bytes(start - pad))
            _pack_frame_header(
                log,
                pad,
                start - pad,
                0,
                _UNFRAGMENTED,
                _PAD,
                pad % TERM_LENGTH,
                session_id,
                LOG_STREAM_ID,
                INITIAL_TERM_ID + pad // TERM_LENGTH,
                0,
            )
        log.extend(bytes(end - start))
        write_fragments(
            log,
            start,
            start % TERM_LENGTH,
            message,
            MTU - HEADER_LENGTH,
            session_id,
            LOG_STREAM_ID,
            INITIAL_TERM_ID + start // TERM_LENGTH,
        )
        node.durable.entries.append((start, end))
        if self._trace is not None:
            name = codecs.decode(message).NAME
            self._trace(f"{self.now_ns // 1000:>10}us n{node.member_id} append @{start} {name}")
        now = self.clock(node)
        self._defer(node, lambda core: core.on_log_appended(now, end))
        if "ack_before_durable" in self.canaries:
            self._report_append(node)

    def _truncate(self, node: Node, position: int) -> None:
        """Cut the log recording back to ``position``."""
        durable = node.durable
        committed = max(node.commit_position, durable.committed)
        if position < committed:
            self._violate(
                "no truncation below commit", f"n{node.member_id} truncate {position} < commit {committed}"
            )
        del durable.log[position:]
        durable.entries = [(s, e) for s, e in durable.entries if e <= position]
        durable.synced = min(durable.synced, position)
        node.reported = min(node.reported, position)

    def _log_request(self, node: Node, request: LogRequest) -> None:
        now = self.clock(node)
        if request.kind in ("join", "catchup"):
            node.joined = (request.leadership_term_id, request.leader_id)
            position = request.position
            self._defer(node, lambda core: core.on_log_joined(now, position, LOG_RECORDING_ID))
        elif request.kind == "replicate":
            node.replicate_from = request.leader_id
            node.replicate_to = request.stop_position
            node.replicate_term = request.leadership_term_id
        elif request.kind == "publish":
            node.joined = None
            node.log_session_id = request.log_session_id
            self._defer(node, lambda core: core.on_log_published(now, LOG_RECORDING_ID))

    def _commit(self, node: Node, position: int) -> None:
        durable = node.durable
        previous = node.commit_position  # in this life: a restarted core learns its commit position again
        if position < previous:
            self._violate("commit never goes backwards", f"n{node.member_id} {previous} -> {position}")
        if position > durable.synced:
            self._violate(
                "commit within the durable log",
                f"n{node.member_id} commit {position} > durable {durable.synced}",
            )
        # quorum durability: a majority must hold the newly committed bytes durably, the same bytes
        start = min(node.commit_position, position)
        mine = durable.log[start:position]
        holders = sum(
            1
            for other in self.nodes
            if other.durable.synced >= position and other.durable.log[start:position] == mine
        )
        if holders < quorum_threshold(len(self.nodes)):
            self._violate(
                "committed only what a quorum holds",
                f"n{node.member_id} commit {position}, {holders} hold it",
            )
        if node.role == "LEADER" and position > previous:
            self._check_commit_in_own_term(node, node.term, position)
        node.commit_position = position
        durable.committed = max(durable.committed, position)
        self._apply(node)

    def _check_commit_in_own_term(self, leader: Node, term: int, position: int) -> None:
        """Raft's commit rule: a leader of term T commits only what a quorum holds durably *and* has
        recorded term T (or a later one) for -- otherwise a member holding the bytes still compares as a
        log of an older term, and a candidate with a longer log of a term in between can win its vote."""
        holders = sum(
            1
            for other in self.nodes
            if other.durable.synced >= position and _last_term(other.durable) >= term
        )
        if holders < quorum_threshold(len(self.nodes)):
            self._violate(
                "a leader commits only what a quorum holds in its term",
                f"n{leader.member_id} term {term} commit {position}: {holders} have recorded the term",
            )

    def _apply(self, node: Node) -> None:
        for start, end in node.durable.entries:
            if start < node.applied_position or end > node.commit_position:
                continue
            entry = entry_message(node.durable.log, start, end)
            node.applied.append(entry)
            node.service.apply(entry)
            node.states.append((end, node.service.state()))
            node.applied_position = end

    # ------------------------------------------------------------------ log movement

    def _can_talk(self, a: int, b: int) -> bool:
        if (a, b) in self.blocked or not (self.nodes[a].alive and self.nodes[b].alive):
            return False
        return self.nodes[a].paused_until <= self.now_ns and self.nodes[b].paused_until <= self.now_ns

    def _move_log(self) -> None:
        for node in self.nodes:
            if node.core is None or node.paused_until > self.now_ns:
                continue
            source_id = -1
            limit = None
            if node.replicate_to >= 0:
                source_id, limit, term = node.replicate_from, node.replicate_to, node.replicate_term
            elif node.joined is not None:
                term, source_id = node.joined
            if source_id < 0 or not self._can_talk(source_id, node.member_id):
                continue
            source_node = self.nodes[source_id]
            if source_node.core is None or source_node.role != "LEADER" or source_node.term != term:
                continue  # its leadership ended: the log channel and the archive replay it served go with it
            source = self.nodes[source_id].durable
            mine = node.durable
            copied = 0
            budget = self.entries_per_step
            for start, end in source.entries:
                if start < len(mine.log) or (limit is not None and end > limit):
                    continue
                if start > len(mine.log) and any(s <= len(mine.log) < e for s, e in source.entries):
                    break
                if budget is not None and copied >= budget:
                    break
                mine.log.extend(source.log[len(mine.log) : end])  # with the PAD frame before it, if any
                mine.entries.append((start, end))
                copied += 1
            if limit is not None and len(mine.log) >= limit:
                node.replicate_to = -1
                mine.synced = len(mine.log)
                node.reported = mine.synced
                self._execute(
                    node, node.core.on_replicated(self.clock(node), len(mine.log), LOG_RECORDING_ID)
                )
            elif copied and "ack_before_durable" in self.canaries:
                self._report_append(node)

    def _sync(self) -> None:
        """The archives' writes become durable (a sync per step), then the cores hear of it."""
        for node in self.nodes:
            if node.core is None or node.paused_until > self.now_ns or self.now_ns < node.next_sync_ns:
                continue
            node.next_sync_ns = self.now_ns + node.sync_interval_ns
            node.durable.synced = len(node.durable.log)
            if node.reported != node.durable.synced:
                self._report_append(node)

    def _report_append(self, node: Node) -> None:
        if node.core is None:
            return
        node.reported = len(node.durable.log)
        self._execute(node, node.core.on_append_position(self.clock(node), node.reported))

    # ------------------------------------------------------------------ clients

    def submit(self, command_id: int) -> bool:
        """A client command to whoever leads now (dropped if nobody does)."""
        for node in self.nodes:
            core = node.core
            if core is not None and node.leading:
                buffer = bytearray(codecs.HEADER_SIZE + codecs.SessionMessageHeaderEncoder.BLOCK_LENGTH + 8)
                codecs.SessionMessageHeaderEncoder.pack_into(
                    buffer, 0, leadership_term_id=node.term, cluster_session_id=1, timestamp=0
                )
                buffer[-8:] = command_id.to_bytes(8, "little")
                self.commands_sent += 1
                appended = len(node.durable.entries)
                self._execute(node, core.on_ingress(self.clock(node), bytes(buffer)))
                if len(node.durable.entries) > appended and node.core is not None:
                    # the client is told "committed" once this leader's commit passes the entry
                    start = node.durable.entries[appended][0]
                    self._awaiting_ack.append((node.member_id, node.term, start, command_id))
                return True
        return False

    def _acknowledge(self) -> None:
        """Tell clients their commands are committed: the leader that appended one has committed past it
        in the same term (Aeron's egress reply follows the commit)."""
        waiting = []
        for member_id, term, position, command in self._awaiting_ack:
            leader = self.nodes[member_id]
            if leader.core is None or leader.term != term or leader.role != "LEADER":
                continue  # that leader is gone: the client is never told (simulated clients do not retry)
            if self.nodes[member_id].commit_position > position:
                self.acknowledged.add(command)
            else:
                waiting.append((member_id, term, position, command))
        self._awaiting_ack = waiting

    def check_acknowledged(self) -> None:
        """Every command a client was told is committed appears exactly once in every live node's
        committed entries (call when the nodes have converged)."""
        for node in self.nodes:
            if node.core is None:
                continue
            counts: dict[int, int] = {}
            for start, end in node.durable.entries:
                if end > node.commit_position:
                    break
                command = command_of(entry_message(node.durable.log, start, end))
                if command is not None:
                    counts[command] = counts.get(command, 0) + 1
            for command in sorted(self.acknowledged):
                if counts.get(command, 0) != 1:
                    self._violate(
                        "acknowledged commands exactly once in every log",
                        f"n{node.member_id} holds command {command} {counts.get(command, 0)} times",
                    )
                    return

    # ------------------------------------------------------------------ time

    def step(self) -> None:
        self.now_ns += self.tick_ns
        nodes = self.nodes
        for destination, message in self.network.receive(self.now_ns, self._paused_until):
            node = nodes[destination]
            if node.core is not None:
                self._execute(node, node.core.on_message(self.clock(node), message))
        self._move_log()
        self._sync()
        self._acknowledge()
        for node in self.nodes:
            if node.core is not None and node.paused_until <= self.now_ns:
                self._execute(node, node.core.on_tick(self.clock(node)))
        self._check()

    def _paused_until(self, member_id: int) -> int:
        return self.nodes[member_id].paused_until

    def run(self, duration_ns: int, *, every: Callable[[Simulator], object] | None = None) -> None:
        end = self.now_ns + duration_ns
        while self.now_ns < end:
            self.step()
            if every is not None:
                every(self)

    def leader(self) -> int:
        for node in self.nodes:
            if node.leading:
                return node.member_id
        return -1

    # ------------------------------------------------------------------ checkers

    def _violate(self, checker: str, detail: str) -> None:
        if checker not in self._violated:  # the first of each kind tells the story; the rest repeat it
            self._violated.add(checker)
            self.violations.append(Violation(self.seed, self.now_ns, checker, detail))

    def _check_new_leader(self, node: Node, term: int) -> None:
        """Every entry committed in an earlier term is in the log of the leader of a later term (Raft's
        leader completeness; a stale leader of an older term can still appear, and can commit nothing)."""
        required = max((position for commit_term, position in self._commits if commit_term < term), default=0)
        committed = self._committed_log[:required]
        if node.durable.log[:required] != committed:
            self._violate(
                "committed entries in every later leader's log",
                f"n{node.member_id} leads with {len(node.durable.log)} bytes; {len(committed)} are committed",
            )

    def _check(self) -> None:
        """Logs agree up to the lower commit position and services apply the same entries, checked
        incrementally: what was compared once (below both commits) cannot change without a violation
        of its own (a truncation below the commit)."""
        nodes = self.nodes
        checked = self._checked
        for i, a in enumerate(nodes):
            for b in nodes[i + 1 :]:
                key = (a.member_id, b.member_id)
                start = checked.get(key, 0)
                upto = min(a.commit_position, b.commit_position)
                if upto > start:
                    if a.durable.log[start:upto] != b.durable.log[start:upto]:
                        self._violate(
                            "logs agree up to commit",
                            f"n{a.member_id} and n{b.member_id} differ in [{start}, {upto})",
                        )
                    checked[key] = upto
                applied = self._applied_checked.get(key, 0)
                common = min(len(a.applied), len(b.applied))
                if common > applied:
                    if a.applied[applied:common] != b.applied[applied:common]:
                        self._violate("same entries applied in order", f"n{a.member_id} and n{b.member_id}")
                    if a.states[applied:common] != b.states[applied:common]:
                        self._violate(
                            "equal service states at equal positions", f"n{a.member_id} and n{b.member_id}"
                        )
                    self._applied_checked[key] = common
        for node in nodes:
            seen = self._commands_applied.setdefault(node.member_id, set())
            for message in node.applied[self._seen_applied.get(node.member_id, 0) :]:
                command = command_of(message)
                if command is not None:
                    if command in seen:
                        self._violate(
                            "each command committed exactly once", f"n{node.member_id} command {command}"
                        )
                    seen.add(command)
                    self.committed_commands.add(command)
            self._seen_applied[node.member_id] = len(node.applied)
            if (
                node.commit_position > len(self._committed_log)
                and len(node.durable.log) >= node.commit_position
            ):
                self._committed_log = bytes(node.durable.log[: node.commit_position])
                # a checker, not the driver: it may look inside the core
                term = node.core.leadership_term_id if node.core is not None else -1
                self._commits.append((term, node.commit_position))


def _last_term(durable: _Durable) -> int:
    """The leadership term of the last TERM entry of a node's recording log (-1: none)."""
    last = durable.recording_log.find_last_term()
    return -1 if last is None else last.leadership_term_id


def entry_message(log: bytes | bytearray, start: int, end: int) -> bytes:
    """The message of the log entry whose frames fill ``[start, end)``: their payloads, joined."""
    parts = []
    offset = start
    while offset < end:
        frame_length = _unpack_frame_header(log, offset)[0]
        parts.append(log[offset + HEADER_LENGTH : offset + frame_length])
        offset += (frame_length + FRAME_ALIGNMENT - 1) & -FRAME_ALIGNMENT
    return b"".join(parts)


def _describe(action: Action) -> str:
    if isinstance(action, (Send, Broadcast)):
        decoder = codecs.decode(action.message)
        target = f"-> n{action.to}" if isinstance(action, Send) else "-> all"
        return f"{target} {decoder.NAME} {decoder.to_dict()}"
    return repr(action)


_VOTE_TEMPLATES = frozenset({codecs.RequestVoteDecoder.TEMPLATE_ID, codecs.VoteDecoder.TEMPLATE_ID})

NETWORKS = ("message", "transport")
"""The networks consensus messages can travel by (``sim_network.py``)."""

CANARIES: dict[str, str] = {
    "vote_twice": "grant a vote for a candidate term already voted in",
    "skip_log_comparison": "grant a vote without comparing logs",
    "commit_without_quorum": "the leader commits what it has appended, quorum or not",
    "apply_before_commit": "followers hand the services what they appended, before the commit",
    "ack_before_durable": "report an append position before the log is durable",
    "commit_beyond_append": "followers commit the leader's commit position beyond their own durable log",
    "commit_older_terms": "a new leader commits older terms' entries before a quorum holds its own term",
}


SIM_TIMEOUTS: dict[str, int] = {
    # Aeron's defaults scaled down (all of them are configurable), so a short run sees many elections
    "leader_heartbeat_timeout_ns": 2_000 * MS,
    "startup_canvass_timeout_ns": 4_000 * MS,
    "election_timeout_ns": 500 * MS,
}


_AIMED_STATES = frozenset(
    {
        "CANVASS",
        "CANDIDATE_BALLOT",
        "FOLLOWER_BALLOT",
        "LEADER_LOG_REPLICATION",
        "LEADER_INIT",
        "LEADER_READY",
        "FOLLOWER_LOG_REPLICATION",
        "FOLLOWER_REPLAY",
        "FOLLOWER_CATCHUP",
        "FOLLOWER_LOG_AWAIT",
        "CLOSED",
    }
)


def _aimed_fault(sim: Simulator, chooser: random.Random, member: int) -> None:
    """A fault for ``member``, which has just changed election state (``run_seed``)."""
    count = len(sim.nodes)
    other = (member + 1 + chooser.randrange(count - 1)) % count if count > 1 else member
    roll = chooser.random()
    sim._count("aimed_at_transition")
    if roll < 0.3 and other != member:
        sim.partition(member, other, one_way=chooser.random() < 0.5)
    elif roll < 0.45 and other != member:
        for peer in range(count):
            if peer != member:
                sim.partition(member, peer, one_way=chooser.random() < 0.3)
    elif roll < 0.6 and sim.nodes[member].core is not None:
        sim.crash(member)
    elif roll < 0.7:
        sim.pause(member, chooser.choice([300 * MS, 1_500 * MS, 3_000 * MS]))
    elif roll < 0.8:
        sim.heal()
    elif roll < 0.9 and sim.down:
        sim.restart(chooser.choice(sorted(sim.down)))
    elif sim.nodes[other].core is not None:
        sim.crash(other)


def run_seed(
    seed: int,
    node_count: int = 3,
    canaries: frozenset[str] = frozenset(),
    *,
    safety_ns: int = 15_000 * MS,
    liveness_ns: int = 30_000 * MS,
    network: str = "message",
) -> SeedResult:
    """One simulated run: a safety phase with faults chosen by ``seed``, then a liveness phase with every
    fault healed, in which a leader must be elected and every node must converge on its commit."""
    chooser = random.Random(seed ^ 0x5EED)
    faults = FaultConfig(
        loss=chooser.choice([0.0, 0.01, 0.05]),
        duplicate=chooser.choice([0.0, 0.02]),
        min_delay_ns=100_000,
        max_delay_ns=chooser.choice([1 * MS, 5 * MS, 20 * MS]),
    )
    sim = Simulator(
        seed, node_count, faults=faults, canaries=canaries, timeouts=SIM_TIMEOUTS, network=network
    )
    for node in sim.nodes:
        node.clock_rate = 1.0 + chooser.uniform(-0.01, 0.01)
        sim._count("clock_drift")
        node.sync_interval_ns = chooser.choice([0, 10 * MS, 50 * MS])
        node.clock_offset = chooser.randrange(0, 10**12)
    command = 0
    crashed = sim.down
    sim.action_crash_probability = 0.0002
    sim.entries_per_step = chooser.choice([None, None, 2, 8])
    # faults aimed at election transitions, which a clock-driven schedule reaches only by luck
    aimed: list[int] = []
    aim = chooser.choice([0.0, 0.1, 0.25])

    def on_state_change(member: int, state: str) -> None:
        if aim and state in _AIMED_STATES and chooser.random() < aim:
            aimed.append(member)

    sim.on_state_change = on_state_change
    steps = 0
    while sim.now_ns < safety_ns:
        sim.step()
        while aimed:
            _aimed_fault(sim, chooser, aimed.pop(0))
        steps += 1
        if steps % 3 == 0 and sim.submit(command):
            command += 1
        if steps % 125 == 0:
            roll = chooser.random()
            member = chooser.randrange(node_count)
            if roll < 0.15 and member not in crashed:
                sim.crash(member)
            elif roll < 0.35 and crashed:
                victim = chooser.choice(sorted(crashed))
                sim.restart(victim)
            elif roll < 0.45:
                other = (
                    (member + 1 + chooser.randrange(node_count - 1)) % node_count
                    if node_count > 1
                    else member
                )
                if other != member:
                    sim.partition(member, other, one_way=chooser.random() < 0.5)
            elif roll < 0.55:
                sim.heal()
            elif roll < 0.6:
                sim.pause(member, chooser.choice([1_500 * MS, 12_000 * MS]))
    # liveness: heal everything, bring everyone back
    sim.on_state_change = None
    sim.heal()
    sim.set_faults(FaultConfig())
    sim.action_crash_probability = 0.0
    for member in sorted(crashed):
        sim.restart(member)
    for node in sim.nodes:
        node.paused_until = 0
    deadline = sim.now_ns + liveness_ns
    failure: str | None = "no leader elected and converged within the liveness bound"
    final_command_sent = False
    while sim.now_ns < deadline:
        sim.step()
        leader = sim.leader()
        if leader >= 0 and not final_command_sent and sim.submit(command):
            final_command_sent = True
            command += 1
        if leader >= 0 and final_command_sent:
            target = sim.nodes[leader].commit_position
            if (
                target > 0
                and all(n.commit_position == target for n in sim.nodes)
                and all(len(n.durable.log) == target for n in sim.nodes)
            ):
                failure = None
                break
    sim._check()
    if failure is None:
        sim.check_acknowledged()
    return SeedResult(
        seed,
        node_count,
        len(sim.committed_commands),
        sim.fault_counts(),
        list(sim.violations),
        failure,
    )
