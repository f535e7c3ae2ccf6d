"""The consensus core: one cluster member's election, log replication and commit, as a sans-IO machine.

Theory of operation
-------------------
``ConsensusCore`` is Aeron's consensus module without its I/O. The driver feeds it

* ``on_message(now_ns, message)`` -- an SBE message from another member's consensus stream (bytes,
  decoded here with the generated ``aeron_cluster_codecs``);
* ``on_tick(now_ns)`` -- time passing (timeouts, heartbeats, resends);
* ``on_append_position(now_ns, position)`` -- the local log (the archive's recording) has durably
  appended up to ``position``;
* ``on_log_joined(now_ns, position)`` / ``on_replicated(now_ns, position)`` -- answers to ``LogRequest``;
* ``on_ingress(now_ns, message)`` -- a client's SessionMessageHeader + payload;

and each call returns a list of ``actions`` to execute in order (see ``actions.py`` for the contract:
durable first, commit last). Time is only what is passed in; randomness (the nomination delay) comes
from the injected ``random`` function.

**Election** (docs/consensus.md, "Election"; Aeron's ``Election.java``): every transition goes through
``_transition``, which emits a ``StateChange`` with its reason. INIT -> CANVASS (a single member goes
straight to LEADER_LOG_REPLICATION); CanvassPosition is broadcast every 100 ms; a unanimous candidate --
or a quorum candidate once the canvass deadline has passed (60 s on first start, else the leader
heartbeat timeout) -- NOMINATEs after a random delay in [0, election timeout / 2), persists
``candidate_term_id + 1`` and asks for votes (CANDIDATE_BALLOT). A unanimous ballot, or at the election
timeout a quorum with no explicit FALSE vote, wins. Votes: FALSE for an old candidate term or a better
local log, else persist the term then vote TRUE. The leader walks each follower through its term history
with NewLeadershipTerm; a follower truncates a diverging tail, asks for missing terms
(``LogRequest("replicate")``), replays, joins the live log (``LogRequest("join")``) and reports its
position. The leader waits until a quorum holds its whole log (LEADER_LOG_REPLICATION), persists the new
TERM, appends a NewLeadershipTermEvent, and leads.

**Replication and commit** (docs/consensus.md, "Replication and commit"): followers report
AppendPosition when their durable log grows and every 200 ms; the leader's commit is
``min(quorum position, own durable append)``, sent as CommitPosition when it moves and every 200 ms (the
leader's heartbeat). A follower commits ``min(leader commit, own append)``. A follower without leader
contact for the heartbeat timeout, and a leader without a quorum of recent AppendPositions, start a new
election; so does a CommitPosition, NewLeadershipTerm or RequestVote of a later term once the election
is over.

Where this core departs from Aeron -- for safety, or as a simplification until the real node exists --
a comment says so at the place, and docs/consensus.md, "Departures from Aeron" lists each with its
reason.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final

from cluster.consensus.core import members as membership
from cluster.consensus.core.actions import (
    NO_POSITION_FIELD,
    Action,
    AppendLog,
    Broadcast,
    Commit,
    InstallSnapshot,
    LogRequest,
    PersistCandidateTerm,
    PersistSnapshot,
    PersistTerm,
    ReadLog,
    RecordSnapshot,
    RoleChange,
    Send,
    ServiceControl,
    StartCatchupReplay,
    StateChange,
    StopCatchupReplay,
    StopLog,
    Terminate,
    TruncateLog,
)
from cluster.consensus.core.cluster_actions import (
    ControlOutcome,
    ModuleState,
    SnapshotAcks,
    Termination,
    ToggleState,
)
from cluster.consensus.core.config import ConsensusConfig
from cluster.consensus.core.election import ElectionState, Role
from cluster.consensus.core.errors import ConsensusError, RecordingLogError
from cluster.consensus.core.recording_log import RecordingLog
from cluster.consensus.core.sessions import (
    CLIENT_PROTOCOL_VERSION,
    Authenticator,
    AuthorisationService,
    ClientSessions,
    ClusterSession,
)
from cluster.messages import pack
from cluster.snapshots import APP_VERSION, CONSENSUS_MODULE_TYPE_ID, ConsensusModuleSnapshot, SnapshotMarker
from codegen.runtime.errors import CodecError
from generated import aeron_cluster_codecs as codecs

__all__ = ["CORE_CANARIES", "MAX_TERM_ID", "ConsensusCore", "impossible_value"]

CORE_CANARIES: dict[str, str] = {
    # deliberately broken variants of the core, for the simulator's checkers to catch
    "vote_twice": "grant a vote for a candidate term already voted in",
    "skip_log_comparison": "grant a vote without comparing logs",
    "commit_without_quorum": "the leader commits what it has appended, quorum or not",
    "apply_before_commit": "followers commit what they appended, before the leader has committed it",
    "commit_beyond_append": "followers commit the leader's commit position beyond their own durable log",
    "commit_older_terms": "a new leader commits older terms' entries before a quorum holds its own term",
    "refire_committed_timer": "a new leader fires again the timers it fired or read fired in its log",
    "keep_uncommitted_session": "a leader keeps through an election a session whose open it never committed",
    "snapshot_before_acks": "the consensus module writes a snapshot's entries before every service has acked",
}

FRAME_ALIGNMENT = 32  # Aeron log frames start on 32-byte boundaries: every log position is a multiple of it
CONSENSUS_PROTOCOL_VERSION = 65536  # 1.0.0
MAX_SNAPSHOT_QUERIES: Final = 8  # BackupQueries whose answer a member still takes
NO_VOTE = None

_E = ElectionState
# where a NewLeadershipTermEvent carries its own end position: logPosition, 8 bytes into the block
_EVENT_LOG_POSITION_OFFSET: Final = codecs.HEADER_SIZE + 8
_BALLOTS = (_E.CANVASS, _E.NOMINATE, _E.CANDIDATE_BALLOT, _E.FOLLOWER_BALLOT)
# where a ClusterActionRequest carries its own end position: logPosition, after the leadership term id
_ACTION_LOG_POSITION_OFFSET: Final = codecs.HEADER_SIZE + 8
_RECENT: Final = 64  # recent service acks and JoinLog positions kept for a snapshot that begins late
# the control requests a leader takes, and the module states it takes each from (cluster_actions.py)
_REQUESTS: Final = {
    ToggleState.SUSPEND: (ModuleState.ACTIVE,),
    ToggleState.RESUME: (ModuleState.SUSPENDED,),
    ToggleState.SNAPSHOT: (ModuleState.ACTIVE,),
    ToggleState.SHUTDOWN: (ModuleState.ACTIVE,),
    ToggleState.ABORT: (ModuleState.ACTIVE, ModuleState.SUSPENDED),
}
# the module state the log's SUSPEND and RESUME actions leave
_ACTION_STATES: Final = {
    int(codecs.ClusterAction.SUSPEND): ModuleState.SUSPENDED,
    int(codecs.ClusterAction.RESUME): ModuleState.ACTIVE,
}


@dataclass(frozen=True, slots=True)
class _Term:
    """One leadership term of the local log's history: where it starts and (once closed) ends."""

    leadership_term_id: int
    term_base_log_position: int
    log_position: int = -1
    timestamp: int = 0


@dataclass(slots=True)
class _Peer:
    member_id: int
    log_leadership_term_id: int = -1
    log_position: int = -1
    candidate_term_id: int = -1
    vote: bool | None = NO_VOTE
    append_term_id: int = -1
    append_position: int = -1
    time_of_last_append_ns: int = -(1 << 62)


_AppendAnswer = tuple[Callable[[int, "_Out"], None] | None, Callable[["_Out"], None] | None]


@dataclass(slots=True)
class _Out:
    """The actions of one call; ``append`` also queues what to do with the driver's answer to the
    ``AppendLog`` (answers come in the order of the appends: ``ConsensusCore._append_answers``)."""

    answers: deque[_AppendAnswer]
    actions: list[Action] = field(default_factory=list)

    def add(self, action: Action) -> None:
        self.actions.append(action)

    def append(
        self,
        message: bytes,
        on_appended: Callable[[int, _Out], None] | None = None,
        on_failed: Callable[[_Out], None] | None = None,
        end_position_offset: int = NO_POSITION_FIELD,
    ) -> None:
        self.actions.append(AppendLog(message, end_position_offset))
        self.answers.append((on_appended, on_failed))


class _Guard:
    """``ConsensusCore._guard``'s context manager: a plain class, as it wraps every appended entry."""

    __slots__ = ("core", "now_ns", "out")

    def __init__(self, core: ConsensusCore, now_ns: int, out: _Out) -> None:
        self.core = core
        self.now_ns = now_ns
        self.out = out

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or not isinstance(exc, ConsensusError):
            return False
        core = self.core
        core.errors += 1
        core._enter_election(self.now_ns, self.out, f"error: {exc}")
        return True


class ConsensusCore:
    """One member's consensus module (see the module docstring)."""

    def __init__(
        self,
        config: ConsensusConfig,
        random: Callable[[], float],
        *,
        now_ns: int,
        candidate_term_id: int = -1,
        recording_log: RecordingLog | None = None,
        append_position: int = 0,
        canaries: frozenset[str] = frozenset(),
        authenticator: Authenticator | None = None,
        authorisation: AuthorisationService | None = None,
        snapshot: ConsensusModuleSnapshot | None = None,
        commit_position_counter_id: int = -1,
    ) -> None:
        """``snapshot``: the consensus module's latest snapshot, when the member starts from one (its
        recording log names it); the state begins there, and the log is read back from its position.
        ``commit_position_counter_id``: the id of the driver's commit-position counter, which a
        BackupResponse names (a backup bounds its replay of this member's log with it)."""
        self.config = config
        self.member_id = config.member_id
        self.member_ids = tuple(member.id for member in config.members)
        self.others = tuple(mid for mid in self.member_ids if mid != self.member_id)
        self._random = random
        self.canaries = canaries
        self.candidate_term_id = candidate_term_id
        # the term history: the recording log's TERM entries (a copy: the driver keeps the file's), and
        # terms walked through before the log had a recording to name in a TERM entry (_persist_term)
        self.recording_log = RecordingLog() if recording_log is None else recording_log.copy()
        self.log_recording_id = self.recording_log.term_recording_id  # -1 until the log is recorded
        self._unrecorded: list[_Term] = []
        last = self.recording_log.find_last_term()
        self.leadership_term_id = -1 if last is None else last.leadership_term_id
        if append_position < 0 or append_position & (FRAME_ALIGNMENT - 1):
            raise ConsensusError(f"recovered append position {append_position} is not a log position")
        self.append_position = append_position
        # Commit starts at 0 in every life of the node: it is learned again from the leader (or, leading,
        # from the quorum), never recovered from a file (docs/consensus.md, "The driver contract").
        self.commit_position = 0
        self.leader_commit_position = 0
        self.log_end = append_position  # the log publication's position, as the driver last reported it
        self.role = Role.FOLLOWER
        self.state = _E.INIT
        self.leader_id = -1
        self.peers = {mid: _Peer(mid) for mid in self.others}
        self.is_startup = True
        self.graceful_closed_leader_id = -1
        self.log_session_id = 0
        self._state_deadline_ns = now_ns
        self._last_status_ns = -(1 << 62)
        self._last_heartbeat_ns = -(1 << 62)
        self._last_leader_contact_ns = now_ns
        self._last_append_sent_ns = -(1 << 62)
        self._appended_at_last_report = -1
        self._committed_at_last_send = -1
        self._term_base = 0 if last is None else last.term_base_log_position
        self._pending_stop = -1
        self._catchup_join_position = -1
        self._stop_catchup = False
        self._catching_up: set[int] = set()  # leader: followers being caught up
        self._pending_term = (-1, 0)
        self._first_entry_end = -1  # leader: where its term's first entry (NewLeadershipTermEvent) ends
        self._progress_at, self._progress_ns = 0, 0  # follower: its append position, and when it last moved
        self._appending_event = False  # leader: the NewLeadershipTermEvent's AppendLog awaits its answer
        self._ready_reason = ""
        self._publishing = False  # a leader's LogRequest("publish") awaits its answer
        self._published = False  # ... and has had it: the term's log is published and recorded
        self._log_stopping = False  # INIT: the StopLog awaits its answer
        self.errors = 0  # errors that sent the election back to INIT
        self.transitions: list[tuple[str, str, str]] = []
        self.malformed_messages = 0
        self._scratch = bytearray(512)  # every outgoing message is encoded here, then copied out
        self._now_ns = now_ns  # the time of the input being handled, for answers' callbacks
        self._append_answers: deque[_AppendAnswer] = deque()  # one per AppendLog not answered yet
        self.sessions = ClientSessions(
            member_id=config.member_id,
            members=config.members,
            service_count=config.service_count,
            max_sessions=config.max_sessions,
            session_timeout_ns=config.session_timeout_ns,
            authenticator=authenticator,
            authorisation=authorisation,
            canaries=canaries,
        )
        self.commit_position_counter_id = commit_position_counter_id
        # the BackupQueries this member sent to learn its leader's snapshots, newest last: correlation id
        # (the time it was sent, so a query of an earlier run is never taken for one) -> member asked
        self._snapshot_queries: dict[int, int] = {}
        self._replicate_after_ns = 0  # a failed copy of the log is tried again from then on
        self.installing: InstallSnapshot | None = None  # asked for: the core waits to be started again
        self._read_limit = 0  # the last ReadLog's limit
        self._reading = (0, 0)  # the last ReadLog's position and limit
        # each service's latest ack: (ack id, log position, relevant id); ack ids count from 0
        self.service_acks: list[tuple[int, int, int]] = [(-1, -1, -1)] * config.service_count
        self.ack_errors = 0
        # cluster actions and snapshots (cluster_actions.py)
        self.module_state = ModuleState.ACTIVE
        self._snapshot: SnapshotAcks | None = None
        self.requested: ToggleState | None = None  # leader: a control request to append on its next tick
        # the log's SUSPEND and RESUME actions: the position of the last one applied, and what each undoes
        self._action_state_position = 0
        self._action_state_undo: list[tuple[int, ModuleState, int]] = []
        self.termination: Termination | None = None
        self.terminated = False
        self._snapshot_due_ns: int | None = None  # leader, with a snapshot interval: when it takes the next
        self._recent_acks: deque[tuple[int, int, int]] = deque(maxlen=_RECENT * max(1, config.service_count))
        self._recent_join_logs: deque[int] = deque(maxlen=_RECENT)
        self.snapshots_taken = 0
        self.snapshots_failed = 0
        self.last_snapshot_failure = ""
        self.sessions.request_snapshot = self.request_snapshot
        self.snapshot_position = 0  # where the state began: the loaded snapshot's position, or 0
        if snapshot is not None:
            self._restore(snapshot, now_ns)

    def _out(self) -> _Out:
        return _Out(self._append_answers)

    # ------------------------------------------------------------------ derived state

    @property
    def terms(self) -> list[_Term]:
        """The local log's term history, oldest first (each term ends where the next one starts)."""
        history = [
            _Term(entry.leadership_term_id, entry.term_base_log_position, entry.log_position)
            for entry in self.recording_log.terms
        ]
        for term in self._unrecorded:
            if history and history[-1].log_position == -1:
                history[-1] = replace(history[-1], log_position=term.term_base_log_position)
            history.append(term)
        return history

    @property
    def log_leadership_term_id(self) -> int:
        """The term of the local log's last entry (``-1`` for an empty log)."""
        if self._unrecorded:
            return self._unrecorded[-1].leadership_term_id
        last = self.recording_log.find_last_term()
        return -1 if last is None else last.leadership_term_id

    @property
    def quorum(self) -> int:
        return membership.quorum_threshold(len(self.member_ids))

    def _quorum_append_position(self) -> int:
        """The leader's quorum position: its own durable append and this term's AppendPositions."""
        positions = [self.append_position]
        positions += [
            peer.append_position if peer.append_term_id == self.leadership_term_id else -1
            for peer in self.peers.values()
        ]
        return membership.quorum_position(positions, len(self.member_ids))

    def _statuses(self) -> list[membership.MemberStatus]:
        """Every member as the shared quorum rules see it, this member included (it votes for itself)."""
        statuses = [
            membership.MemberStatus(
                self.member_id,
                self.log_leadership_term_id,
                self.append_position,
                self.candidate_term_id,
                True if self.role == Role.CANDIDATE else None,
            )
        ]
        for peer in self.peers.values():
            statuses.append(
                membership.MemberStatus(
                    peer.member_id,
                    peer.log_leadership_term_id,
                    peer.log_position,
                    peer.candidate_term_id,
                    peer.vote,
                    peer.time_of_last_append_ns,
                )
            )
        return statuses

    # ------------------------------------------------------------------ inputs

    def start(self, now_ns: int) -> list[Action]:
        """Begin: the first election, from the state the node recovered (nothing moves the log yet)."""
        out = self._out()
        self._enter_election(now_ns, out, "node start", stop_log=False)
        return out.actions

    def on_tick(self, now_ns: int) -> list[Action]:
        out = self._out()
        with self._guard(now_ns, out):
            if self.terminated or self.installing is not None:
                return out.actions
            if self.state == _E.CLOSED:
                if self.role == Role.LEADER:
                    self._leader_work(now_ns, out)
                else:
                    self._follower_work(now_ns, out)
                if self.state == _E.CLOSED:
                    self._termination_work(now_ns, out)
            else:
                self._election_work(now_ns, out)
            if self.termination is None:
                self.sessions.backup_work(
                    now_ns, out, self._backup_response, self.leadership_term_id, self.leader_id
                )
        return out.actions

    def on_append_position(self, now_ns: int, position: int) -> list[Action]:
        """The local log recording holds ``position`` bytes, durable at the node's file-sync level."""
        out = self._out()
        if self._log_stopping:
            return out.actions  # the log is stopping: its stop position (on_log_stopped) is what counts
        with self._guard(now_ns, out):
            if position < self.append_position:
                raise ConsensusError(f"append position went backwards: {self.append_position} -> {position}")
            self.append_position = position
            if self.role == Role.LEADER:
                if self.state == _E.CLOSED:
                    self._leader_work(now_ns, out)
                else:
                    self._election_work(now_ns, out)
            else:
                self._send_append_position(now_ns, out, force=True)
                self._follower_commit(out)
                if self.state != _E.CLOSED:
                    self._election_work(now_ns, out)
        return out.actions

    def on_log_stopped(self, now_ns: int, stop_position: int) -> list[Action]:
        """The answer to ``StopLog``: nothing moves the log any more, and its recording stopped at
        ``stop_position``, the append position the election starts from."""
        out = self._out()
        if self.state != _E.INIT or not self._log_stopping:
            return out.actions
        with self._guard(now_ns, out):
            _check_position("stop position", stop_position)
            self._log_stopping = False
            self.append_position = stop_position
            self.log_end = stop_position
            self._leave_init(now_ns, out)
        return out.actions

    def on_log_published(self, now_ns: int, recording_id: int) -> list[Action]:
        """The answer to ``LogRequest("publish")``: the log publication is up and recorded in
        ``recording_id``."""
        out = self._out()
        if self.role != Role.LEADER or not self._publishing:
            return out.actions
        with self._guard(now_ns, out):
            self._publishing = False
            self._published = True
            self._set_recording_id(recording_id, out)
            if self.state == _E.LEADER_INIT:
                self._election_work(now_ns, out)
        return out.actions

    def on_log_joined(self, now_ns: int, position: int, recording_id: int) -> list[Action]:
        """The answer to ``LogRequest("join")`` or ``("catchup")``: the log image is there from
        ``position``, recorded in ``recording_id``."""
        out = self._out()
        with self._guard(now_ns, out):
            if self.state == _E.FOLLOWER_CATCHUP_AWAIT and position == self.append_position:
                self._set_recording_id(recording_id, out)
                self._persist_term(out, self.leadership_term_id, self._term_base, now_ns)
                self._transition(_E.FOLLOWER_CATCHUP, now_ns, out, "catch-up replay joined")
                self._election_work(now_ns, out)
            elif self.state == _E.FOLLOWER_LOG_AWAIT and position == self.append_position:
                self._set_recording_id(recording_id, out)
                self._persist_term(out, self.leadership_term_id, self._term_base, now_ns)
                self._transition(_E.FOLLOWER_READY, now_ns, out, "joined the live log")
                self._election_work(now_ns, out)
        return out.actions

    def on_replicated(self, now_ns: int, position: int, recording_id: int) -> list[Action]:
        """The answer to ``LogRequest("replicate")``: the log recording ``recording_id`` now holds the
        leader's log up to ``position``."""
        out = self._out()
        if self.state != _E.FOLLOWER_LOG_REPLICATION:
            return out.actions
        with self._guard(now_ns, out):
            self._set_recording_id(recording_id, out)
            self.append_position = max(self.append_position, position)
            if self.append_position >= self._pending_stop:
                self._record_replicated_term(out, now_ns)  # durable before the AppendPosition below
                self._send_append_position(now_ns, out, force=True)
                self._transition(_E.CANVASS, now_ns, out, "replicated a term from the leader")
                self._election_work(now_ns, out)
            else:
                self._send_append_position(now_ns, out, force=True)
        return out.actions

    def on_replication_failed(self, now_ns: int, reason: str) -> list[Action]:
        """The answer to ``LogRequest("replicate")`` when the replication failed (``reason``): the
        election starts again, as Aeron's does on a replication error. (The replication deadline alone
        would never end it: it moves on while the leader is heard.)"""
        out = self._out()
        if self.state == _E.FOLLOWER_LOG_REPLICATION:
            self._ask_for_snapshots(now_ns, out)
            self._enter_election(now_ns, out, f"log replication failed: {reason}")
        return out.actions

    def on_log_failed(self, now_ns: int, reason: str) -> list[Action]:
        """A ``LogRequest("publish")``, ``("join")`` or ``("catchup")`` that failed (``reason``): the log
        could not be recorded from where this node's log ends -- a follower's image joined the live log
        past its append position, say, because the leader had moved on -- so the election starts again,
        as Aeron's does when a log image joins at the wrong position."""
        out = self._out()
        if self.state != _E.INIT:
            self._enter_election(now_ns, out, f"log request failed: {reason}")
        return out.actions

    def on_log_recording_stopped(self, now_ns: int, reason: str) -> list[Action]:
        """The archive stopped recording the log though this node never asked (``reason``): an operator
        stopped it, say. A leader whose election is over and whose module is ACTIVE enters an election,
        as Aeron's does; the election records the log again. (A follower's recording stops whenever its
        leader's image goes, and the leader heartbeat timeout already covers that.)"""
        out = self._out()
        if (
            self.role == Role.LEADER
            and self.state == _E.CLOSED
            and self.module_state == ModuleState.ACTIVE
            and self.termination is None
        ):
            self._enter_election(now_ns, out, reason)
        return out.actions

    def on_log_appended(self, now_ns: int, position: int) -> list[Action]:
        """The answer to an ``AppendLog`` (the oldest not answered yet): the entry is in the log
        publication, which now ends at ``position``."""
        out = self._out()
        on_appended, _ = self._next_append_answer()
        self._now_ns = now_ns
        with self._guard(now_ns, out):
            _check_position("appended position", position)
            self.log_end = position
            if self.role == Role.LEADER:
                self.sessions.on_appended(position)
            if on_appended is not None:
                on_appended(position, out)
        return out.actions

    def on_log_append_failed(self, now_ns: int, reason: str) -> list[Action]:
        """The answer to an ``AppendLog`` the log publication refused (``reason``): nothing was
        appended. A NewLeadershipTermEvent is appended again on the next tick, and so are the leader's
        own entries (session events, timers, service messages); a client's message is the driver's to
        offer again."""
        out = self._out()
        _, on_failed = self._next_append_answer()
        if on_failed is not None:
            on_failed(out)
        return out.actions

    def _next_append_answer(self) -> _AppendAnswer:
        if not self._append_answers:
            raise ConsensusError("an answer to an AppendLog that was never asked for")
        return self._append_answers.popleft()

    def on_ingress(self, now_ns: int, message: bytes) -> list[Action]:
        """A client's message from the ingress (``ClientSessions.on_ingress``): a leader whose election
        is over acts on it; a follower whose election is over redirects connects and forwards challenge
        responses; anything else is dropped."""
        out = self._out()
        closed = self.state == _E.CLOSED
        self.sessions.on_ingress(
            now_ns,
            message,
            out,
            leading=closed and self.role == Role.LEADER,
            following=closed and self.role == Role.FOLLOWER and self.leader_id >= 0,
            leadership_term_id=self.leadership_term_id,
            leader_id=self.leader_id,
            forward=lambda forwarded: out.add(Send(self.leader_id, forwarded)),
        )
        return out.actions

    def on_service_message(self, now_ns: int, message: bytes) -> list[Action]:
        """A message from one of this member's services (stream 105): ScheduleTimer, CancelTimer,
        CloseSession, ServiceAck or a service's message for the log."""
        out = self._out()
        ack = self.sessions.on_service_message(
            now_ns,
            message,
            out,
            leading=self.state == _E.CLOSED and self.role == Role.LEADER,
            leadership_term_id=self.leadership_term_id,
        )
        if ack is not None:
            with self._guard(now_ns, out):
                self._on_service_ack(ack, now_ns, out)
        return out.actions

    def _on_service_ack(self, ack: codecs.ServiceAckDecoder, now_ns: int, out: _Out) -> None:
        """Each service counts its acks from 0 (docs/sessions.md, "Service acks"); one out of sequence is
        counted in ``ack_errors`` and otherwise ignored. An ack may answer a snapshot in progress."""
        service_id, expected = ack.service_id, None
        if 0 <= service_id < len(self.service_acks):
            expected = self.service_acks[service_id][0] + 1
        if expected is None or ack.ack_id != expected:
            self.ack_errors += 1
            return
        self.service_acks[service_id] = (ack.ack_id, ack.log_position, ack.relevant_id)
        self._recent_acks.append((service_id, ack.log_position, ack.relevant_id))
        if self._snapshot is not None:
            self._snapshot.on_ack(service_id, ack.log_position, ack.relevant_id)
            self._check_snapshot(now_ns, out)

    # ------------------------------------------------------------------ cluster actions and snapshots

    def _restore(self, snapshot: ConsensusModuleSnapshot, now_ns: int) -> None:
        """Begin from the consensus module's snapshot: the sessions' state is the snapshot's, and its
        position was committed -- a snapshot is only ever taken of committed state."""
        position = snapshot.marker.log_position
        if position > self.append_position:
            raise ConsensusError(
                f"the snapshot at {position} is beyond the log, which ends at {self.append_position}"
            )
        self.sessions.restore(snapshot, now_ns)
        self.snapshot_position = position
        self.commit_position = self.leader_commit_position = position
        self.sessions.on_commit(position)

    @property
    def ingress_open(self) -> bool:
        """Whether the driver may hand this member client messages: not while a cluster action (a
        snapshot, a suspension) holds the log still. What waits stays in the ingress, unread."""
        return self.module_state == ModuleState.ACTIVE

    @property
    def log_paused(self) -> bool:
        """Whether the driver must stop reading the log back (``ReadLog``): a snapshot in progress needs
        the state at its position, so the reading waits there until the snapshot is taken."""
        return self._snapshot is not None

    def request_snapshot(self) -> bool:
        """Order a snapshot of the whole cluster (an authorised AdminRequest): ``request_action``
        SNAPSHOT. Whether the leader took it on."""
        return self.request_action(ToggleState.SNAPSHOT) == ControlOutcome.ACCEPTED

    def request_action(self, action: int) -> ControlOutcome:
        """A control request (the admin tool's, through the control toggle; cluster_actions.py): a leader
        whose election is over, in a state the action is taken from, appends it on its next tick. The
        answer is ACCEPTED, or why not; what follows shows in ``module_state``, ``snapshots_taken`` and
        ``termination``."""
        try:
            toggle = ToggleState(action)
        except ValueError:
            return ControlOutcome.UNSUPPORTED
        states = _REQUESTS.get(toggle)
        if states is None:
            return ControlOutcome.UNSUPPORTED
        if self.role != Role.LEADER or self.state != _E.CLOSED:
            return ControlOutcome.NOT_LEADER
        if self.requested is not None or self.termination is not None or self.module_state not in states:
            return ControlOutcome.REFUSED
        self.requested = toggle
        return ControlOutcome.ACCEPTED

    def _append_requested(self, now_ns: int, out: _Out) -> None:
        """The leader's tick appends the request taken on (if its state still allows it): a SNAPSHOT or
        SHUTDOWN appends a SNAPSHOT action, SUSPEND and RESUME their own, and ABORT begins the
        termination at the end of the log."""
        toggle, self.requested = self.requested, None
        if toggle is None or self.module_state not in _REQUESTS[toggle]:
            return
        if toggle == ToggleState.ABORT:
            self._begin_termination(self.leadership_term_id, self.log_end, now_ns, out)
        elif toggle in (ToggleState.SUSPEND, ToggleState.RESUME):
            action = (
                codecs.ClusterAction.SUSPEND if toggle == ToggleState.SUSPEND else codecs.ClusterAction.RESUME
            )
            self._append_action(action, now_ns, out)
        else:
            self._append_action(
                codecs.ClusterAction.SNAPSHOT, now_ns, out, terminate=toggle == ToggleState.SHUTDOWN
            )

    def _append_action(
        self, action: codecs.ClusterAction, now_ns: int, out: _Out, *, terminate: bool = False
    ) -> None:
        """The leader's ClusterActionRequest: it acts on it once appended -- a snapshot begins at its end,
        SUSPEND and RESUME set the module's state -- as the other members do when they read it. An append
        that fails is not tried again: the request is lost, which its asker sees."""
        leadership_term_id = self.leadership_term_id
        length = codecs.ClusterActionRequestEncoder.pack_into(
            self._scratch,
            0,
            leadership_term_id=leadership_term_id,
            log_position=0,  # the driver writes the entry's end here
            timestamp=now_ns,
            action=int(action),
            flags=0,
        )

        def appended(end: int, out: _Out) -> None:
            if action == codecs.ClusterAction.SNAPSHOT:
                self._begin_snapshot(end, leadership_term_id, now_ns, out)
                if terminate:
                    self._begin_termination(leadership_term_id, end, now_ns, out)
            else:
                self._apply_action_state(end, _ACTION_STATES[int(action)])

        out.append(bytes(self._scratch[:length]), appended, None, _ACTION_LOG_POSITION_OFFSET)

    def _apply_action_state(self, position: int, state: ModuleState) -> None:
        """A SUSPEND or RESUME at ``position`` -- appended by this leader, or read from the log -- sets the
        module's state, unless a later action set it already (a leader reads its own actions back after
        it applied them). What an election may cut is undone then (``_undo_action_states``)."""
        if position <= self._action_state_position or self.module_state not in (
            ModuleState.ACTIVE,
            ModuleState.SUSPENDED,
        ):
            return
        self._action_state_undo.append((position, self.module_state, self._action_state_position))
        del self._action_state_undo[:-_RECENT]
        self._action_state_position = position
        self.module_state = state

    def _undo_action_states(self) -> None:
        """An election: the SUSPEND and RESUME actions beyond the commit position may be cut from the log;
        the module's state goes back to the state before them (a member that reads them again, once
        committed, applies them again)."""
        undo = self._action_state_undo
        while undo and undo[-1][0] > self.commit_position:
            _, state, position = undo.pop()
            if self.module_state in (ModuleState.ACTIVE, ModuleState.SUSPENDED):
                self.module_state = state
            self._action_state_position = position

    # ------------------------------------------------------------------ termination

    def _begin_termination(self, leadership_term_id: int, position: int, now_ns: int, out: _Out) -> None:
        """The leader orders every member to stop at ``position`` (TerminationPosition), itself too; with
        a snapshot in progress there (a SHUTDOWN), once it is taken."""
        self.termination = Termination(leadership_term_id, position)
        out.add(
            Broadcast(
                self._message(
                    codecs.TerminationPositionEncoder.pack_into(
                        self._scratch, 0, leadership_term_id=leadership_term_id, log_position=position
                    )
                )
            )
        )
        self._termination_work(now_ns, out)

    def _on_termination_position(self, now_ns: int, m: codecs.TerminationPositionDecoder, out: _Out) -> None:
        """A follower is told where its leader stops the cluster: it stops there too."""
        if (
            self.termination is None
            and self.role == Role.FOLLOWER
            and m.leadership_term_id == self.leadership_term_id
            and m.log_position >= 0
        ):
            self.termination = Termination(m.leadership_term_id, m.log_position)
            self._termination_work(now_ns, out)

    def _on_backup_query(self, now_ns: int, m: codecs.BackupQueryDecoder, out: _Out) -> None:
        """Any member answers a backup (docs/sessions.md, "Backup queries") until a termination begins --
        in an election too, where Aeron drops the query: a new leader that waits in LEADER_LOG_REPLICATION
        for a follower whose log its own no longer reaches needs the follower to take its snapshot."""
        if self.termination is None:
            self.sessions.on_backup_query(now_ns, m, out)

    def _on_challenge_response(self, now_ns: int, m: codecs.ChallengeResponseDecoder, out: _Out) -> None:
        """A backup's answer to its Challenge, or a client's that a follower forwarded to this leader."""
        if m.cluster_session_id < 0 or (self.state == _E.CLOSED and self.role == Role.LEADER):
            self.sessions.on_challenge_response(now_ns, m)

    def _ask_for_snapshots(self, now_ns: int, out: _Out) -> None:
        """This member's log could not be brought up to date from its leader's: ask the leader for its
        latest snapshots (a BackupQuery answered on this member's consensus endpoint), in case its log no
        longer reaches back to where this one ends (docs/consensus.md, "Catch-up from a snapshot")."""
        # the copy is not tried again at once: the leader answers the next canvass at once, and the copy
        # would fail again at once, round and round
        self._replicate_after_ns = now_ns + self.config.election_status_interval_ns
        leader = self.leader_id
        channel = self.config.backup_response_channel
        if not channel or leader < 0 or leader == self.member_id or self.installing is not None:
            return
        queries = self._snapshot_queries
        if queries and now_ns - max(queries) < self.config.election_status_interval_ns:
            return  # one asked a moment ago: its answer may still come
        queries[now_ns] = leader
        while len(queries) > MAX_SNAPSHOT_QUERIES:
            del queries[min(queries)]
        query = pack(
            codecs.BackupQueryEncoder,
            {"response_channel": channel, "encoded_credentials": b""},
            correlation_id=now_ns,
            response_stream_id=self.config.consensus_stream_id,
            version=CLIENT_PROTOCOL_VERSION,
        )
        out.add(Send(leader, query))

    def _on_backup_response(self, now_ns: int, m: codecs.BackupResponseDecoder, out: _Out) -> None:
        """The answer to ``_ask_for_snapshots``: if the member asked holds a whole snapshot set beyond
        the end of this member's log, this member takes it (``InstallSnapshot``) and waits to be started
        again on it. Otherwise its log reaches the snapshot, and the next election copies the rest."""
        asked = self._snapshot_queries.pop(m.correlation_id, None)
        if asked is None or self.installing is not None:
            return
        snapshots = m.to_dict()["snapshots"]
        module = [s for s in snapshots if s["serviceId"] == -1]
        if len(module) != 1 or module[0]["logPosition"] <= self.append_position:
            return
        cm = module[0]
        position, term = cm["logPosition"], cm["leadershipTermId"]
        services = {
            s["serviceId"]: s["recordingId"]
            for s in snapshots
            if s["serviceId"] >= 0 and (s["logPosition"], s["leadershipTermId"]) == (position, term)
        }
        service_ids = range(self.config.service_count)
        if any(service_id not in services for service_id in service_ids):
            return  # not a set this member's services can start from
        self.installing = InstallSnapshot(
            asked,
            m.log_recording_id,
            term,
            cm["termBaseLogPosition"],
            position,
            cm["timestamp"],
            (*((service_id, services[service_id]) for service_id in service_ids), (-1, cm["recordingId"])),
        )
        out.add(self.installing)

    def _backup_response(self, session: ClusterSession) -> bytes | None:
        """The BackupResponse for ``session``: this member's log recording and its last term, the commit
        position's counter, the leader, and the latest snapshot set (the consensus module's entry first,
        then its services'); ``None`` while the recording log has no term to name."""
        last = self.recording_log.find_last_term()
        if last is None:
            return None
        try:
            snapshots = self.recording_log.latest_snapshots(self.config.service_count)
        except RecordingLogError:
            snapshots = ()
        return codecs.encode_dict(
            "BackupResponse",
            {
                "correlationId": session.correlation_id,
                "logRecordingId": last.recording_id,
                "logLeadershipTermId": last.leadership_term_id,
                "logTermBaseLogPosition": last.term_base_log_position,
                "lastLeadershipTermId": last.leadership_term_id,
                "lastTermBaseLogPosition": last.term_base_log_position,
                "commitPositionCounterId": self.commit_position_counter_id,
                "leaderMemberId": self.leader_id,
                "memberId": self.member_id,
                "snapshots": [
                    {
                        "recordingId": entry.recording_id,
                        "leadershipTermId": entry.leadership_term_id,
                        "termBaseLogPosition": entry.term_base_log_position,
                        "logPosition": entry.log_position,
                        "timestamp": entry.timestamp,
                        "serviceId": entry.service_id,
                    }
                    for entry in snapshots
                ],
                "clusterMembers": membership.format_members(self.config.members),
            },
        )

    def _on_termination_ack(self, now_ns: int, m: codecs.TerminationAckDecoder, out: _Out) -> None:
        termination = self.termination
        if (
            termination is not None
            and self.role == Role.LEADER
            and m.leadership_term_id == termination.leadership_term_id
            and m.log_position >= termination.log_position
            and m.member_id in self.peers
        ):
            termination.acked_by.add(m.member_id)
            self._termination_work(now_ns, out)

    def _termination_work(self, now_ns: int, out: _Out) -> None:
        """Stop once it is time (cluster_actions.py): the log read to the position, no snapshot in
        progress, then the services told and each acknowledging it, then -- a follower -- a TerminationAck
        to the leader, or -- the leader -- every follower's TerminationAck or the termination timeout."""
        termination = self.termination
        if termination is None or self.terminated:
            return
        position = termination.log_position
        if not termination.services_told:
            # only at a committed position: until then an election may take the position back
            if (
                self.sessions.consumed_position < position
                or self.commit_position < position
                or self._snapshot is not None
            ):
                return
            termination.services_told = True
            termination.acks_before = tuple(ack_id for ack_id, _, _ in self.service_acks)
            self.module_state = ModuleState.TERMINATING
            out.add(
                ServiceControl(
                    self._message(
                        codecs.ServiceTerminationPositionEncoder.pack_into(
                            self._scratch, 0, log_position=position
                        )
                    )
                )
            )
        if not termination.services_done:
            if any(
                ack_id <= before or log_position < position
                for (ack_id, log_position, _), before in zip(
                    self.service_acks, termination.acks_before, strict=True
                )
            ):
                return
            termination.services_done = True
            termination.deadline_ns = now_ns + self.config.termination_timeout_ns
        if self.role == Role.LEADER:
            if not termination.acked_by >= set(self.peers) and now_ns < termination.deadline_ns:
                return
            missing = sorted(set(self.peers) - termination.acked_by)
            reason = "every member stopped" if not missing else f"no TerminationAck from {missing} in time"
        else:
            if self.leader_id >= 0:
                out.add(
                    Send(
                        self.leader_id,
                        self._message(
                            codecs.TerminationAckEncoder.pack_into(
                                self._scratch,
                                0,
                                leadership_term_id=termination.leadership_term_id,
                                log_position=position,
                                member_id=self.member_id,
                            )
                        ),
                    )
                )
            reason = "the leader ordered it"
        self.terminated = True
        out.add(Terminate(termination.leadership_term_id, position, reason))

    def _on_actions_read(self, now_ns: int, out: _Out) -> None:
        """ClusterActionRequests the sessions read from the log: a SNAPSHOT (not a standby one) begins
        this member's snapshot at its position; SUSPEND and RESUME set the module's state."""
        actions, self.sessions.actions_read = self.sessions.actions_read, []
        for leadership_term_id, log_position, timestamp, action, flags in actions:
            state = _ACTION_STATES.get(action)
            if state is not None:
                self._apply_action_state(log_position, state)
                continue
            # an action read beyond the commit position (a new leader's replay of its log) may yet be cut,
            # and a snapshot begun there would hold the reading the election needs: none is taken
            if (
                action == codecs.ClusterAction.SNAPSHOT
                and flags == 0
                and log_position <= self.commit_position
            ):
                self._begin_snapshot(log_position, leadership_term_id, timestamp, out)

    def _begin_snapshot(self, position: int, leadership_term_id: int, timestamp: int, out: _Out) -> None:
        if self._snapshot is not None and self._snapshot.log_position == position:
            return  # the leader began it as it appended the action, and reads the action back later
        if any(
            e.is_valid and e.is_snapshot and e.service_id == -1 and e.log_position == position
            for e in self.recording_log.entries
        ):
            return  # taken before: the log is being read again (recovery, an election's replay)
        snapshot = SnapshotAcks(position, leadership_term_id, timestamp, self.config.service_count)
        for service_id, log_position, relevant_id in self._recent_acks:
            snapshot.on_ack(service_id, log_position, relevant_id)
        for join_position in self._recent_join_logs:
            snapshot.on_join_log(join_position)
        self._snapshot = snapshot
        self.module_state = ModuleState.SNAPSHOT
        self._check_snapshot(self._now_ns, out)

    def _check_snapshot(self, now_ns: int, out: _Out) -> None:
        """Once every service has answered: record the module's own snapshot, or give up on a failure."""
        snapshot = self._snapshot
        if snapshot is None or snapshot.recording:
            return
        results = snapshot.results()
        if "snapshot_before_acks" in self.canaries and results is None:
            results = [self._acked_or_previous(snapshot, s) for s in range(self.config.service_count)]
            snapshot.canary_results = results
        if results is None:
            return
        failed = [service_id for service_id, result in enumerate(results) if result < 0]
        if failed:
            self._end_snapshot(now_ns, f"service {failed[0]} could not take its snapshot")
            return
        snapshot.recording = True
        marker = SnapshotMarker(
            CONSENSUS_MODULE_TYPE_ID,
            snapshot.log_position,
            snapshot.leadership_term_id,
            0,
            int(codecs.ClusterTimeUnit.NANOS),
            APP_VERSION,
        )
        out.add(RecordSnapshot(snapshot.log_position, tuple(self.sessions.snapshot(marker).messages())))

    def on_snapshot_recorded(self, now_ns: int, recording_id: int, reason: str = "") -> list[Action]:
        """The answer to ``RecordSnapshot``: the module's snapshot is recording ``recording_id`` (-1: it
        could not be recorded, for ``reason``). The recording log gets the snapshot's entries -- the
        services' in descending service id, then the module's -- and the module is ACTIVE again."""
        out = self._out()
        snapshot = self._snapshot
        if snapshot is None or not snapshot.recording:
            return out.actions  # given up meanwhile
        with self._guard(now_ns, out):
            if recording_id < 0:
                self._end_snapshot(now_ns, f"the consensus module's snapshot was not recorded: {reason}")
                return out.actions
            results = snapshot.results()
            if results is None:
                results = snapshot.canary_results
            assert results is not None
            term_id, position, timestamp = (
                snapshot.leadership_term_id,
                snapshot.log_position,
                snapshot.timestamp,
            )
            base = self._term_base_of(term_id, position)
            entries = [
                (results[service_id], term_id, base, position, timestamp, service_id)
                for service_id in reversed(range(self.config.service_count))
            ]
            entries.append((recording_id, term_id, base, position, timestamp, -1))
            try:
                for entry in entries:
                    self.recording_log.put_snapshot(*entry)
            except ConsensusError as error:
                self._end_snapshot(now_ns, f"the snapshot's entries could not be added: {error}")
                raise
            out.add(PersistSnapshot(tuple(entries)))
            self.snapshots_taken += 1
            self._end_snapshot(now_ns, "")
        return out.actions

    def _acked_or_previous(self, snapshot: SnapshotAcks, service_id: int) -> int:
        """Canary snapshot_before_acks: the service's snapshot recording if it has acked, else the one of
        its latest snapshot entry (0 if it has none) -- whatever is at hand."""
        result = snapshot.service_result(service_id)
        if result is not None and result >= 0:
            return result
        previous = [
            e.recording_id
            for e in self.recording_log.entries
            if e.is_valid and e.is_snapshot and e.service_id == service_id
        ]
        return previous[-1] if previous else 0

    def _term_base_of(self, leadership_term_id: int, position: int) -> int:
        for term in reversed(self.terms):
            if term.leadership_term_id == leadership_term_id:
                return term.term_base_log_position
        raise ConsensusError(
            f"a snapshot at {position} in term {leadership_term_id}, which this log never had"
        )

    def _end_snapshot(self, now_ns: int, failure: str) -> None:
        """The snapshot is over (taken, or given up for ``failure``): the module is ACTIVE again, the log is
        read on, and every session's activity is fresh (the snapshot held the cluster still)."""
        self._snapshot = None
        if self.module_state == ModuleState.SNAPSHOT:
            self.module_state = ModuleState.ACTIVE
        if self._snapshot_due_ns is not None:
            self._snapshot_due_ns = now_ns + self.config.snapshot_interval_ns
        if failure:
            self.snapshots_failed += 1
            self.last_snapshot_failure = failure
        for session in self.sessions.sessions.values():
            session.time_of_last_activity_ns = now_ns

    def on_log_entry(self, now_ns: int, message: bytes | memoryview, position: int) -> list[Action]:
        """The answer to ``ReadLog``: a whole entry of the local log, ending at ``position``."""
        out = self._out()
        if position > self._read_limit:
            raise ConsensusError(f"a log entry ending at {position}, past the read limit {self._read_limit}")
        self.sessions.on_log_entry(now_ns, message, position)
        if self.sessions.actions_read:
            with self._guard(now_ns, out):
                self._on_actions_read(now_ns, out)
        if self.state == _E.LEADER_REPLAY:
            self._election_work(now_ns, out)
        return out.actions

    def on_log_position(self, now_ns: int, position: int) -> list[Action]:
        """The answer to ``ReadLog``: the log was read up to ``position`` with no entry ending there."""
        out = self._out()
        self.sessions.on_log_position(min(position, self._read_limit))
        if self.state == _E.LEADER_REPLAY:
            self._election_work(now_ns, out)
        return out.actions

    def on_egress_connected(self, now_ns: int, key: int) -> list[Action]:
        """The egress publication ``key`` (an ``OpenEgress``) is connected."""
        self.sessions.on_egress_connected(key)
        return []

    def _guard(self, now_ns: int, out: _Out) -> _Guard:
        """An error in the core's own rules (a ``ConsensusError``, such as a recording-log operation the
        history refuses) sends the election back to INIT, as Aeron's election does with any error; the
        actions already produced stay (each was a complete step)."""
        return _Guard(self, now_ns, out)

    def on_message(self, now_ns: int, message: bytes) -> list[Action]:
        """One message from the consensus stream. Bytes that are not a whole message of the cluster
        schema, or a message with a value no member could have sent (``impossible_value``), are counted
        in ``malformed_messages`` and dropped: the network is not trusted to be tidy."""
        out = self._out()
        if self.installing is not None:
            return out.actions  # the member waits to be started again on the snapshot it takes
        try:
            decoder = codecs.decode(message)
            type(decoder).unpack(message)  # the whole message, var data included, before any state moves
        except CodecError:
            self.malformed_messages += 1
            return out.actions
        name = decoder.NAME
        if impossible_value(name, decoder) is not None:
            self.malformed_messages += 1
            return out.actions
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, now_ns, decoder, out)
        return out.actions

    # ------------------------------------------------------------------ transitions

    def _transition(self, state: ElectionState, now_ns: int, out: _Out, reason: str) -> None:
        previous = self.state
        self.transitions.append((previous.name, state.name, reason))
        out.add(StateChange(previous.name, state.name, reason))
        self.state = state
        if state == _E.CANVASS:
            self._set_role(Role.FOLLOWER, out)
            for peer in self.peers.values():
                peer.candidate_term_id = -1
                peer.vote = NO_VOTE
                peer.log_position = -1
                peer.log_leadership_term_id = -1
            # the extended canvass of a starting node -- ours: every canvass entered from INIT until the
            # first election completes, Aeron's only the first one (docs/consensus.md, "Departures from
            # Aeron")
            if self.is_startup and previous == _E.INIT:
                self._state_deadline_ns = now_ns + self.config.startup_canvass_timeout_ns
            else:
                self._state_deadline_ns = (
                    self._last_leader_contact_ns + self.config.leader_heartbeat_timeout_ns
                )
            self._last_status_ns = -(1 << 62)
        elif state == _E.NOMINATE:
            self._state_deadline_ns = now_ns + int(self._random() * (self.config.election_timeout_ns // 2))
        elif state == _E.CANDIDATE_BALLOT or state == _E.FOLLOWER_BALLOT:
            self._state_deadline_ns = now_ns + self.config.election_timeout_ns
        else:
            self._state_deadline_ns = now_ns + self.config.leader_heartbeat_timeout_ns

    def _set_role(self, role: Role, out: _Out) -> None:
        if role != self.role:
            self.role = role
            out.add(RoleChange(role.name, self.leadership_term_id))

    def _enter_election(self, now_ns: int, out: _Out, reason: str, *, stop_log: bool = True) -> None:
        """To INIT: stop the log (``StopLog``; the election goes on from ``on_log_stopped``), or, at
        start, when nothing moves the log yet, straight on to the election."""
        if self.state != _E.INIT:
            self._transition(_E.INIT, now_ns, out, reason)
        elif not self.transitions:
            self.transitions.append(("INIT", "INIT", reason))
            out.add(StateChange("INIT", "INIT", reason))
        self.requested = None
        self._snapshot_due_ns = None
        self._undo_action_states()
        if self._snapshot is not None and self._snapshot.log_position > self.commit_position:
            # its action may yet be cut from the log: no service will see it unless it commits, and a
            # member that reads it again then begins the snapshot again
            self._end_snapshot(now_ns, "an election began before the snapshot's action was committed")
        if self.termination is not None and not self.termination.services_told:
            # its position is not committed (no service was told), and the next leader's log may not
            # reach it or may hold other entries there: the stop is given up, the request has failed
            self.termination = None
        # what a leader did beyond the commit position is undone (docs/sessions.md, "Rollback")
        self.sessions.on_election(self.commit_position, out, self.leadership_term_id, self.leader_id)
        self._set_role(Role.FOLLOWER, out)
        self._read_log(out, self.commit_position)
        self.leader_id = -1
        self.leader_commit_position = self.commit_position
        self.candidate_term_id = max(self.candidate_term_id, self.leadership_term_id)
        self._catching_up.clear()
        self._publishing = self._published = False
        self._appending_event = False
        for peer in self.peers.values():
            peer.append_term_id = -1
            peer.append_position = -1
            peer.vote = NO_VOTE
        if stop_log:
            self._log_stopping = True
            out.add(StopLog())
        else:
            self._leave_init(now_ns, out)

    def _leave_init(self, now_ns: int, out: _Out) -> None:
        if not self.others:
            self._become_leader_candidate(now_ns, out)
        else:
            self._transition(_E.CANVASS, now_ns, out, "election started")
            self._election_work(now_ns, out)

    def _become_leader_candidate(self, now_ns: int, out: _Out) -> None:
        self.candidate_term_id += 1
        out.add(PersistCandidateTerm(self.candidate_term_id))
        self._start_leading(now_ns, out, "single member")

    # ------------------------------------------------------------------ election duty

    def _election_work(self, now_ns: int, out: _Out) -> None:
        """The duty of the election state the node is in (one handler per state, ``_ELECTION_WORK``)."""
        work = _ELECTION_WORK.get(self.state)
        if work is not None:
            work(self, now_ns, out)

    def _message(self, length: int) -> bytes:
        """The message just encoded into the scratch buffer."""
        return bytes(self._scratch[:length])

    def _broadcast_canvass_position(self, now_ns: int, out: _Out) -> None:
        if now_ns - self._last_status_ns >= self.config.election_status_interval_ns:
            self._last_status_ns = now_ns
            length = codecs.CanvassPositionEncoder.pack_into(
                self._scratch,
                0,
                log_leadership_term_id=self.log_leadership_term_id,
                log_position=self.append_position,
                leadership_term_id=self.leadership_term_id,
                follower_member_id=self.member_id,
                protocol_version=CONSENSUS_PROTOCOL_VERSION,
            )
            out.add(Broadcast(self._message(length)))

    def _in_canvass(self, now_ns: int, out: _Out) -> None:
        self._broadcast_canvass_position(now_ns, out)
        if self._may_nominate():
            if self._is_candidate(unanimous=True):
                self._transition(_E.NOMINATE, now_ns, out, "unanimous candidate")
            elif now_ns >= self._state_deadline_ns and self._is_candidate(unanimous=False):
                self._transition(_E.NOMINATE, now_ns, out, "quorum candidate at canvass deadline")

    def _in_nominate(self, now_ns: int, out: _Out) -> None:
        self._broadcast_canvass_position(now_ns, out)
        if now_ns >= self._state_deadline_ns:
            self.candidate_term_id = max(self.candidate_term_id + 1, self.leadership_term_id + 1)
            out.add(PersistCandidateTerm(self.candidate_term_id))
            self._transition(_E.CANDIDATE_BALLOT, now_ns, out, "nomination delay over")
            self._set_role(Role.CANDIDATE, out)
            request = self._message(
                codecs.RequestVoteEncoder.pack_into(
                    self._scratch,
                    0,
                    log_leadership_term_id=self.log_leadership_term_id,
                    log_position=self.append_position,
                    candidate_term_id=self.candidate_term_id,
                    candidate_member_id=self.member_id,
                    protocol_version=CONSENSUS_PROTOCOL_VERSION,
                )
            )
            for peer_id, peer in self.peers.items():
                peer.vote = NO_VOTE
                # once to each member, the offer retried through the ballot until it is taken (Send)
                out.add(Send(peer_id, request, until_ns=self._state_deadline_ns))

    def _in_candidate_ballot(self, now_ns: int, out: _Out) -> None:
        statuses = self._statuses()
        if membership.is_unanimous_leader(statuses, self.candidate_term_id, self.graceful_closed_leader_id):
            self._start_leading(now_ns, out, "unanimous vote")
        elif now_ns >= self._state_deadline_ns:
            if membership.is_quorum_leader(statuses, self.candidate_term_id):
                self._start_leading(now_ns, out, "quorum vote at ballot timeout")
            else:
                self._transition(_E.CANVASS, now_ns, out, "ballot lost")

    def _in_follower_ballot(self, now_ns: int, out: _Out) -> None:
        if now_ns >= self._state_deadline_ns:
            self._transition(_E.CANVASS, now_ns, out, "no new leader after voting")

    def _in_leader_log_replication(self, now_ns: int, out: _Out) -> None:
        self._leader_commit(out)  # nothing to commit before this term's first entry (_leader_commit)
        self._leader_heartbeats(now_ns, out, new_term=True)
        if self._quorum_append_position() >= self._term_base or "commit_without_quorum" in self.canaries:
            self._transition(_E.LEADER_REPLAY, now_ns, out, "a quorum holds the leader's log")
            self._election_work(now_ns, out)
        elif now_ns >= self._state_deadline_ns:
            # ours: Aeron's leader waits here with no deadline; this one gives up after the heartbeat
            # timeout, its way out while it ignores later terms (docs/consensus.md, "Departures from
            # Aeron")
            self._enter_election(now_ns, out, "leader log replication timed out")

    def _in_leader_replay(self, now_ns: int, out: _Out) -> None:
        """The leader's sessions, timers and service messages must be its whole log's before it
        appends: it reads its log back to its end (entries older terms left uncommitted included, which
        its term will commit)."""
        if self.sessions.consumed_position < self.append_position:
            self._read_log(out, self.append_position)
            if now_ns >= self._state_deadline_ns:
                self._enter_election(now_ns, out, "the log could not be read back")
            return
        self._transition(_E.LEADER_INIT, now_ns, out, "log replayed")
        self._election_work(now_ns, out)

    def _in_leader_init(self, now_ns: int, out: _Out) -> None:
        # the TERM entry follows the recording of the publication (on_log_published), which names the
        # log's recording id
        if self._published:
            self._persist_term(out, self.leadership_term_id, self._term_base, now_ns)
            self._transition(_E.LEADER_READY, now_ns, out, "log publication recorded")
            self._election_work(now_ns, out)
        elif now_ns >= self._state_deadline_ns:
            self._enter_election(now_ns, out, "the log publication was not recorded")

    def _in_leader_ready(self, now_ns: int, out: _Out) -> None:
        self._leader_heartbeats(now_ns, out, new_term=True)
        self._leader_commit(out)
        if self._appending_event:
            return  # the event's AppendLog awaits its answer (on_log_appended / on_log_append_failed)
        if now_ns >= self._state_deadline_ns + self.config.leader_heartbeat_timeout_ns:
            # ours: Aeron's LEADER_READY has no deadline (docs/consensus.md, "Departures from Aeron"). It
            # holds whatever kept the term from beginning: no quorum joined, or one did long ago -- its
            # positions stay counted -- but the followers have left for a later term, and the log
            # publication, which no one reads, refuses the term's first entry at every try (sweep seed
            # 66200)
            self._enter_election(now_ns, out, "the new term did not begin by twice the heartbeat timeout")
            return
        statuses = self._statuses()
        term, base = self.leadership_term_id, self._term_base
        if membership.have_voters_reached_position(statuses, base, term):
            reason = "every voter has joined the term"
        elif now_ns >= self._state_deadline_ns and membership.has_quorum_at_position(statuses, base, term):
            reason = "a quorum has joined the term by the leader heartbeat timeout"
        else:
            return
        event = self._message(
            codecs.NewLeadershipTermEventEncoder.pack_into(
                self._scratch,
                0,
                leadership_term_id=self.leadership_term_id,
                log_position=0,  # the driver writes the event's end position here as it appends it
                timestamp=now_ns,
                term_base_log_position=self._term_base,
                leader_member_id=self.member_id,
                log_session_id=self.log_session_id,
                time_unit=codecs.ClusterTimeUnit.NANOS,  # cluster time is now_ns (Aeron's default: ms)
                app_version=APP_VERSION,
            )
        )
        out.append(event, self._event_appended, self._event_failed, _EVENT_LOG_POSITION_OFFSET)
        self._appending_event = True
        self._ready_reason = reason

    def _event_appended(self, position: int, out: _Out) -> None:
        """The term's NewLeadershipTermEvent is in the log: the election is over, this member leads."""
        if not self._appending_event:
            return  # an election started since it was appended: the event is an uncommitted entry
        self._appending_event = False
        self._first_entry_end = position
        startup, self.is_startup = self.is_startup, False
        now_ns = self._now_ns
        self._transition(_E.CLOSED, now_ns, out, f"election complete: leading ({self._ready_reason})")
        out.add(self._join_log(self._term_base))
        self.sessions.on_leading(now_ns, out, self.leadership_term_id, startup=startup)
        self._leader_commit(out)

    def _event_failed(self, out: _Out) -> None:
        self._appending_event = False  # appended again on the next tick

    def _in_follower_log_replication(self, now_ns: int, out: _Out) -> None:
        # the replication ends with on_replicated; the deadline moves on with every NewLeadershipTerm or
        # CommitPosition of the leader (as in Aeron)
        if now_ns >= self._state_deadline_ns:
            self._ask_for_snapshots(now_ns, out)
            self._enter_election(now_ns, out, "log replication timed out")

    def _in_follower_replay(self, now_ns: int, out: _Out) -> None:
        if self._catchup_join_position > self.append_position:
            self._transition(_E.FOLLOWER_CATCHUP_INIT, now_ns, out, "the leader's log is ahead: catch up")
        else:
            self._transition(_E.FOLLOWER_LOG_INIT, now_ns, out, "log replayed")
        self._election_work(now_ns, out)

    def _in_follower_catchup_init(self, now_ns: int, out: _Out) -> None:
        self._stop_catchup = False
        out.add(Send(self.leader_id, self._catchup_position()))
        out.add(
            LogRequest(
                "catchup",
                self.leader_id,
                self.leadership_term_id,
                self.append_position,
                log_session_id=self.log_session_id,
            )
        )
        self._transition(_E.FOLLOWER_CATCHUP_AWAIT, now_ns, out, "asked the leader for a catch-up replay")

    def _in_follower_catchup_await(self, now_ns: int, out: _Out) -> None:
        if now_ns >= self._state_deadline_ns:
            self._ask_for_snapshots(now_ns, out)
            self._enter_election(now_ns, out, "catch-up replay did not arrive")

    def _in_follower_catchup(self, now_ns: int, out: _Out) -> None:
        self._send_append_position(now_ns, out, force=False)
        self._follower_commit(out)
        if self._stop_catchup and self.commit_position >= self._catchup_join_position:
            self._transition(_E.FOLLOWER_LOG_INIT, now_ns, out, "caught up with the live log")
            self._transition(_E.FOLLOWER_READY, now_ns, out, "following the live log")
            self._election_work(now_ns, out)
        elif now_ns - self._last_leader_contact_ns > self.config.leader_heartbeat_timeout_ns:
            self._enter_election(now_ns, out, "leader heartbeat timeout during catch-up")

    def _in_follower_log_init(self, now_ns: int, out: _Out) -> None:
        out.add(
            LogRequest(
                "join",
                self.leader_id,
                self.leadership_term_id,
                self.append_position,
                log_session_id=self.log_session_id,
            )
        )
        self._transition(_E.FOLLOWER_LOG_AWAIT, now_ns, out, "waiting for the live log")

    def _in_follower_log_await(self, now_ns: int, out: _Out) -> None:
        if now_ns >= self._state_deadline_ns:
            self._enter_election(now_ns, out, "live log did not arrive")

    def _in_follower_ready(self, now_ns: int, out: _Out) -> None:
        self._send_append_position(now_ns, out, force=True)
        self._last_leader_contact_ns = now_ns
        self._progress_at, self._progress_ns = self.append_position, now_ns
        self.is_startup = False
        self._transition(_E.CLOSED, now_ns, out, "election complete: following")
        out.add(self._join_log(self.append_position))

    def _join_log(self, position: int) -> ServiceControl:
        """JoinLog for this member's services: the term's log starts at ``position`` and this member's
        role in it. (Our services read the committed log back from the archive, not from the channel,
        so the log channel is left empty; docs/sessions.md.)"""
        self._recent_join_logs.append(position)
        if self._snapshot is not None:
            self._snapshot.on_join_log(position)
        return ServiceControl(
            pack(
                codecs.JoinLogEncoder,
                {"log_channel": ""},
                log_position=position,
                max_log_position=position,
                member_id=self.member_id,
                log_session_id=self.log_session_id,
                log_stream_id=self.config.log_stream_id,
                is_startup=codecs.BooleanType.FALSE,
                role=int(self.role),
            )
        )

    def _may_nominate(self) -> bool:
        appointed = self.config.appointed_leader_id
        return appointed < 0 or appointed == self.member_id

    def _is_candidate(self, *, unanimous: bool) -> bool:
        """The candidate predicates (docs/consensus.md, "Members and quorums"), from ``members``."""
        statuses = self._statuses()
        me = statuses[0]
        if "skip_log_comparison" in self.canaries:  # every log heard from counts as no better than mine
            heard = [me, *(s for s in statuses[1:] if s.log_position >= 0)]
            statuses = [replace(s, log_leadership_term_id=-1, log_position=0) for s in heard]
            me = replace(me, log_leadership_term_id=-1, log_position=0)
            return len(statuses) >= self.quorum and (not unanimous or len(heard) == len(self.member_ids))
        if unanimous:
            return membership.is_unanimous_candidate(statuses, me, self.graceful_closed_leader_id)
        return membership.is_quorum_candidate(statuses, me)

    # ------------------------------------------------------------------ leading

    def _start_leading(self, now_ns: int, out: _Out, reason: str) -> None:
        self.leadership_term_id = self.candidate_term_id
        self.leader_id = self.member_id
        self._first_entry_end = -1
        self._term_base = self.append_position
        self.log_end = self.append_position
        # deterministic: one log publication session per term; a session id is an int32, a term an int64
        # (ours: Aeron's media driver picks the session id; docs/consensus.md, "Departures from Aeron")
        self.log_session_id = ((self.leadership_term_id + 2**31) % 2**32) - 2**31
        self._transition(_E.LEADER_LOG_REPLICATION, now_ns, out, reason)
        self._set_role(Role.LEADER, out)
        # the term's log publication starts now, at the log's end, so that followers can join it while
        # the leader waits for a quorum (as in Aeron); it is recorded and its TERM entry follows
        self._publishing, self._published = True, False
        out.add(
            LogRequest(
                "publish",
                self.member_id,
                self.leadership_term_id,
                self._term_base,
                log_session_id=self.log_session_id,
            )
        )
        self._last_heartbeat_ns = -(1 << 62)
        for peer in self.peers.values():
            peer.time_of_last_append_ns = now_ns
        self._election_work(now_ns, out)

    def _new_leadership_term(self, peer_log_term_id: int, now_ns: int) -> bytes:
        """NewLeadershipTerm for a follower whose log ends in term ``peer_log_term_id`` (docs/consensus.md,
        "Election").

        ``logLeadershipTermId`` is the latest term of this leader's history at or before the follower's
        -- the follower's own term when the leader has it -- and ``nextLeadershipTermId`` /
        ``nextTermBaseLogPosition`` / ``nextLogPosition`` describe the term after that one. When the
        leader lacks the follower's term, the message says so (it names an earlier term, and a next term
        later than the follower's), and the follower truncates what it holds of the terms the leader
        never had (``_on_new_leadership_term``). Ours: Aeron back-fills terms instead
        (docs/consensus.md, "Departures from Aeron")."""
        history = list(self.terms)
        if not history or history[-1].leadership_term_id < self.leadership_term_id:
            history.append(_Term(self.leadership_term_id, self._term_base))
        log_term_id = max(
            (r.leadership_term_id for r in history if r.leadership_term_id <= peer_log_term_id), default=-1
        )
        following = next((r for r in history if r.leadership_term_id > log_term_id), None)
        if following is None or following.leadership_term_id == self.leadership_term_id:
            next_term_id, next_base, next_log_position = self.leadership_term_id, self._term_base, -1
        else:
            next_term_id = following.leadership_term_id
            next_base = following.term_base_log_position
            next_log_position = following.log_position
            if next_log_position < 0:
                # still open in the history (a later term was recorded with none between them): it ends
                # where the next recorded term starts -- the follower must not copy past that as this term
                later = next(r for r in history if r.leadership_term_id > next_term_id)
                next_log_position = later.term_base_log_position
        return self._message(
            codecs.NewLeadershipTermEncoder.pack_into(
                self._scratch,
                0,
                log_leadership_term_id=log_term_id,
                next_leadership_term_id=next_term_id,
                next_term_base_log_position=next_base,
                next_log_position=next_log_position,
                leadership_term_id=self.leadership_term_id,
                term_base_log_position=self._term_base,
                log_position=self.append_position,
                leader_recording_id=self.log_recording_id,
                timestamp=now_ns,
                leader_member_id=self.member_id,
                log_session_id=self.log_session_id,
                app_version=APP_VERSION,
                is_startup=codecs.BooleanType.TRUE if self.is_startup else codecs.BooleanType.FALSE,
            )
        )

    def _catchup_position(self) -> bytes:
        buffer = bytearray(512)
        encoder = codecs.CatchupPositionEncoder().wrap_and_apply_header(buffer, 0)
        encoder.leadership_term_id = self.leadership_term_id
        encoder.log_position = self.append_position
        encoder.follower_member_id = self.member_id
        encoder.put_catchup_endpoint(self.config.member.catchup)
        return bytes(buffer[: codecs.HEADER_SIZE + encoder.encoded_length()])

    def _leader_heartbeats(self, now_ns: int, out: _Out, *, new_term: bool) -> None:
        if now_ns - self._last_heartbeat_ns < self.config.leader_heartbeat_interval_ns:
            return
        self._last_heartbeat_ns = now_ns
        # During the election every follower gets a NewLeadershipTerm each heartbeat, as in Aeron; after it
        # (ours) each follower that has not reported an AppendPosition in this term still does, where
        # Aeron's leader only answers CanvassPositions (docs/consensus.md, "Departures from Aeron").
        for peer in self.peers.values():
            if new_term or peer.append_term_id != self.leadership_term_id:
                out.add(Send(peer.member_id, self._new_leadership_term(peer.log_leadership_term_id, now_ns)))
        self._send_commit(out, force=True)

    def _send_commit(self, out: _Out, *, force: bool) -> None:
        if force or self.commit_position != self._committed_at_last_send:
            self._committed_at_last_send = self.commit_position
            out.add(
                Broadcast(
                    self._message(
                        codecs.CommitPositionEncoder.pack_into(
                            self._scratch,
                            0,
                            leadership_term_id=self.leadership_term_id,
                            log_position=self.commit_position,
                            leader_member_id=self.member_id,
                        )
                    )
                )
            )

    def _leader_commit(self, out: _Out) -> None:
        """Commit what a quorum (the leader's own durable append included) holds -- once that quorum holds
        the first entry of the leader's own term (docs/consensus.md, "Replication and commit").

        This is Raft's rule (section 5.4.2 of the Raft paper), and here we part from Aeron, which also
        publishes the quorum position of older terms' entries during LEADER_LOG_REPLICATION. A follower
        that has replicated the older entries, but not yet recorded the new term, still compares as a
        log of the older term; if the leader then died, a candidate with a longer log of a term in
        between could win that follower's vote and truncate what was committed. The simulator found it
        (docs/consensus.md, "Departures from Aeron").
        """
        if "commit_without_quorum" in self.canaries:
            commit = self.log_end
        else:
            commit = min(self._quorum_append_position(), self.append_position)
            own_term_held = 0 <= self._first_entry_end <= commit
            if not own_term_held and "commit_older_terms" not in self.canaries:
                return
        if commit > self.commit_position:
            self.commit_position = commit
            self.sessions.on_commit(commit)
            out.add(Commit(commit))
            self._send_commit(out, force=False)

    def _leader_work(self, now_ns: int, out: _Out) -> None:
        self._leader_commit(out)
        if now_ns - self._last_heartbeat_ns >= self.config.leader_heartbeat_interval_ns:
            self._leader_heartbeats(now_ns, out, new_term=False)
        timeout = self.config.leader_heartbeat_timeout_ns
        # a leader stopping the cluster at a committed position waits for its followers' TerminationAcks
        # only until the termination timeout (a member that is down never sends one): losing its quorum
        # then ends nothing (Aeron's leader checks its quorum only while ACTIVE); before that position is
        # committed, a lost quorum still means a new election -- else nothing would ever commit it
        terminating = self.termination is not None and self.commit_position >= self.termination.log_position
        if not terminating and not membership.has_active_quorum(
            self._statuses(), self.member_id, now_ns, timeout
        ):
            self._enter_election(now_ns, out, "inactive follower quorum")
            return
        # the sessions' work appends entries, so it comes after anything that may end the term: an
        # election never starts in the list of actions that appends (their answers find the term over)
        if self.requested is not None:
            self._append_requested(now_ns, out)  # a snapshot's action is the last entry before it
            return
        if self.module_state != ModuleState.ACTIVE:
            return  # a cluster action holds the log still: no timers, service messages or timeouts
        if self.config.snapshot_interval_ns and self.termination is None:
            # ours (cluster.snapshot.interval): a snapshot an interval after the leadership began or the
            # last one ended
            if self._snapshot_due_ns is None:
                self._snapshot_due_ns = now_ns + self.config.snapshot_interval_ns
            elif now_ns >= self._snapshot_due_ns:
                self._snapshot_due_ns = now_ns + self.config.snapshot_interval_ns
                self.requested = ToggleState.SNAPSHOT
                self._append_requested(now_ns, out)
                return
        self.sessions.leader_tick(now_ns, out, self.leadership_term_id)

    def _truncate_log(self, position: int, holder: int, out: _Out, *, reopen: bool) -> None:
        """Cut the log back to ``position``; term ``holder`` holds the cut (``-1``: none does), and every
        later term goes from the history (``RecordingLog.truncate_to``, through ``TruncateLog``). The
        latest term this node knows stays durable as its candidate term, so that dropping a TERM entry
        never lets a restarted node forget a term it has acted in (docs/consensus.md, "Departures from
        Aeron")."""
        if any(term.leadership_term_id > holder for term in self.terms):
            out.add(PersistCandidateTerm(self.candidate_term_id))
        self.recording_log.truncate_to(position, holder, reopen=reopen)
        self._unrecorded.clear()  # unrecorded terms are empty terms of an empty log: all start at 0
        out.add(TruncateLog(position, holder, reopen))
        self.append_position = position
        self.log_end = position
        self.commit_position = min(self.commit_position, position)

    def _record_replicated_term(self, out: _Out, now_ns: int) -> None:
        """The log now matches the leader's up to the base of the next term it named: record that term.
        (Aeron records it only once the leader's commit passes; we record it at once, because a leader
        here commits nothing before its own term's first entry, which needs this follower's report;
        docs/consensus.md, "Departures from Aeron".)"""
        term_id, base = self._pending_term
        self._persist_term(out, term_id, base, now_ns)

    def _persist_term(self, out: _Out, term_id: int, base: int, now_ns: int) -> None:
        """Add term ``term_id``, starting at ``base``, to the history (a later term than any there). A log
        without a recording yet cannot name one in a TERM entry: its terms -- empty ones, walked through
        before the node first records anything -- wait in memory until ``_set_recording_id``."""
        if self.log_leadership_term_id >= term_id:
            return
        if self.log_recording_id < 0:
            self._unrecorded.append(_Term(term_id, base, -1, now_ns))
            return
        self.recording_log.append_term(self.log_recording_id, term_id, base, now_ns)
        out.add(PersistTerm(self.log_recording_id, term_id, base, now_ns))

    def _set_recording_id(self, recording_id: int, out: _Out) -> None:
        """The log is recorded in ``recording_id`` (an answer to a ``LogRequest``): the terms waiting
        for it are persisted first."""
        if recording_id < 0:
            raise ConsensusError(f"the log's recording id must not be negative: {recording_id}")
        if self.log_recording_id >= 0:
            if recording_id != self.log_recording_id:
                raise ConsensusError(
                    f"the log is recording {self.log_recording_id}, not {recording_id}: one recording "
                    "holds a node's whole log"
                )
            return
        self.log_recording_id = recording_id
        waiting, self._unrecorded = self._unrecorded, []
        for term in waiting:
            self._persist_term(out, term.leadership_term_id, term.term_base_log_position, term.timestamp)

    # ------------------------------------------------------------------ following

    def _follower_work(self, now_ns: int, out: _Out) -> None:
        self._send_append_position(now_ns, out, force=False)
        timeout = self.config.leader_heartbeat_timeout_ns
        if now_ns - self._last_leader_contact_ns > timeout:
            self._enter_election(now_ns, out, "leader heartbeat timeout")
            return
        # ours: a follower whose live log stopped short of the leader's commit for a heartbeat timeout
        # (it fell further behind than the leader's log buffers reach back, while paused or cut off one
        # way) can never catch up on the live log: an election brings it a catch-up replay instead
        # (docs/consensus.md, "Departures from Aeron")
        if self.append_position >= self.leader_commit_position or self.append_position != self._progress_at:
            self._progress_at, self._progress_ns = self.append_position, now_ns
        elif now_ns - self._progress_ns > timeout:
            self._enter_election(now_ns, out, "the live log stopped short of the leader's commit")

    def _send_append_position(self, now_ns: int, out: _Out, *, force: bool) -> None:
        if self.leader_id < 0 or self.leader_id == self.member_id:
            return
        recent = now_ns - self._last_append_sent_ns < self.config.leader_heartbeat_interval_ns
        if not force and recent and self.append_position == self._appended_at_last_report:
            return
        self._last_append_sent_ns = now_ns
        self._appended_at_last_report = self.append_position
        out.add(
            Send(
                self.leader_id,
                self._message(
                    codecs.AppendPositionEncoder.pack_into(
                        self._scratch,
                        0,
                        leadership_term_id=self.leadership_term_id,
                        log_position=self.append_position,
                        follower_member_id=self.member_id,
                        flags=1 if self.state == _E.FOLLOWER_CATCHUP else 0,
                    )
                ),
            )
        )

    def _follower_commit(self, out: _Out) -> None:
        if "apply_before_commit" in self.canaries:
            commit = self.append_position
        elif "commit_beyond_append" in self.canaries:
            commit = self.leader_commit_position
        else:
            commit = min(self.leader_commit_position, self.append_position)
        if commit > self.commit_position:
            self.commit_position = commit
            self.sessions.on_commit(commit)
            out.add(Commit(commit))
            self._read_log(out, commit)

    def _read_log(self, out: _Out, limit: int) -> None:
        """Have the driver read the local log back, to ``limit``, into the sessions' state."""
        position = self.sessions.consumed_position
        limit = max(limit, position)
        if (position, limit) != self._reading:
            self._reading = (position, limit)
            self._read_limit = limit
            out.add(ReadLog(position, limit))

    # ------------------------------------------------------------------ message handlers

    def _on_canvass_position(self, now_ns: int, m: codecs.CanvassPositionDecoder, out: _Out) -> None:
        peer = self.peers.get(m.follower_member_id)
        if peer is None:
            return
        peer.log_leadership_term_id = m.log_leadership_term_id
        peer.log_position = m.log_position
        leading = self.role == Role.LEADER and self.state in (
            _E.CLOSED,
            _E.LEADER_READY,
            _E.LEADER_LOG_REPLICATION,
        )
        # A CanvassPosition of a later term gets no answer and, ours, ends no election: Aeron's leader
        # abandons LEADER_LOG_REPLICATION or LEADER_READY on one (docs/consensus.md, "Departures from Aeron").
        if leading and m.leadership_term_id <= self.leadership_term_id:
            out.add(Send(peer.member_id, self._new_leadership_term(m.log_leadership_term_id, now_ns)))
        if self.state in (_E.CANVASS, _E.NOMINATE):
            self._election_work(now_ns, out)

    def _on_request_vote(self, now_ns: int, m: codecs.RequestVoteDecoder, out: _Out) -> None:
        candidate = m.candidate_member_id
        if candidate == self.member_id or candidate not in self.peers:
            return
        candidate_term = m.candidate_term_id
        if self.state == _E.CLOSED and candidate_term > self.leadership_term_id:
            self._enter_election(now_ns, out, "vote requested for a later term")
        double_vote = "vote_twice" in self.canaries and self.state != _E.CANDIDATE_BALLOT
        if candidate_term <= self.candidate_term_id and not double_vote:
            self._vote(candidate, candidate_term, False, out)
            return
        skip_log_check = "skip_log_comparison" in self.canaries
        better = membership.compare_log(
            self.log_leadership_term_id, self.append_position, m.log_leadership_term_id, m.log_position
        )
        if better > 0 and not skip_log_check:
            self.candidate_term_id = max(self.candidate_term_id, candidate_term)
            out.add(PersistCandidateTerm(self.candidate_term_id))
            self._vote(candidate, candidate_term, False, out)
            if self.role == Role.LEADER:  # still leading: show the candidate the term it is missing
                peer_log_term = m.log_leadership_term_id
                out.add(Send(candidate, self._new_leadership_term(peer_log_term, now_ns)))
            return
        if self.state in _BALLOTS:
            self.candidate_term_id = max(self.candidate_term_id, candidate_term)
            out.add(PersistCandidateTerm(self.candidate_term_id))
            self._vote(candidate, candidate_term, True, out)
            self._set_role(Role.FOLLOWER, out)
            self._transition(_E.FOLLOWER_BALLOT, now_ns, out, f"voted for member {candidate}")

    def _vote(self, candidate: int, candidate_term: int, granted: bool, out: _Out) -> None:
        out.add(
            Send(
                candidate,
                self._message(
                    codecs.VoteEncoder.pack_into(
                        self._scratch,
                        0,
                        candidate_term_id=candidate_term,
                        log_leadership_term_id=self.log_leadership_term_id,
                        log_position=self.append_position,
                        candidate_member_id=candidate,
                        follower_member_id=self.member_id,
                        vote=codecs.BooleanType.TRUE if granted else codecs.BooleanType.FALSE,
                    )
                ),
            )
        )

    def _on_vote(self, now_ns: int, m: codecs.VoteDecoder, out: _Out) -> None:
        if m.candidate_member_id != self.member_id or m.candidate_term_id != self.candidate_term_id:
            return
        peer = self.peers.get(m.follower_member_id)
        if peer is None:
            return
        peer.candidate_term_id = m.candidate_term_id
        peer.log_leadership_term_id = m.log_leadership_term_id
        peer.log_position = m.log_position
        peer.vote = m.vote == codecs.BooleanType.TRUE
        if self.state == _E.CANDIDATE_BALLOT:
            self._election_work(now_ns, out)

    def _on_new_leadership_term(self, now_ns: int, m: codecs.NewLeadershipTermDecoder, out: _Out) -> None:
        leader = m.leader_member_id
        if leader == self.member_id or leader not in self.peers:
            return
        term = m.leadership_term_id
        if self.state == _E.CLOSED:
            if term > self.leadership_term_id:
                self._enter_election(now_ns, out, "new leadership term from a later term")
            elif term == self.leadership_term_id and leader == self.leader_id:
                self._last_leader_contact_ns = now_ns
                return
            else:
                return
        if self.state == _E.FOLLOWER_LOG_REPLICATION:
            if term == self.leadership_term_id and leader == self.leader_id:
                self._last_leader_contact_ns = now_ns
                self._state_deadline_ns = now_ns + self.config.leader_heartbeat_timeout_ns
            return
        # ours: NOMINATE accepts the leader of its candidate term too, where Aeron would stand as a
        # candidate and depose it (docs/consensus.md, "Departures from Aeron")
        acceptable = self.state == _E.CANVASS or (
            self.state in (_E.NOMINATE, _E.CANDIDATE_BALLOT, _E.FOLLOWER_BALLOT)
            and term == self.candidate_term_id
        )
        if not acceptable or term < self.leadership_term_id:
            return
        if term < self.candidate_term_id:
            # Never follow a term older than one this node has voted in: that vote may have made another
            # leader, whose quorum must not overlap with this one's. (Here we part from Aeron, which can
            # follow it.) To end the older term, stand as a candidate: the RequestVote of a later term
            # makes its leader hold a new election, which the best log then wins (docs/consensus.md,
            # "Departures from Aeron").
            if self.state == _E.CANVASS and self._may_nominate():
                self._transition(_E.NOMINATE, now_ns, out, f"leader of term {term} is older than my vote")
            return
        my_log_term = self.log_leadership_term_id
        if m.log_leadership_term_id < my_log_term < m.next_leadership_term_id:
            # the leader has no term between the one it names and the next: my later terms were never in
            # its log, so my log diverges from the start of the first of them (or its next term's base)
            bases = [
                r.term_base_log_position
                for r in self.terms
                if r.leadership_term_id > m.log_leadership_term_id
            ]
            if m.next_term_base_log_position >= 0:
                bases.append(m.next_term_base_log_position)
            keep = min(bases)
            if keep <= self.append_position:  # at the end of my log the terms were empty: drop them
                # the term before the cut goes on in the leader's log as far as its history says: it
                # stays open (ours: Aeron back-fills the terms instead)
                holders = [r.leadership_term_id for r in self.terms if r.term_base_log_position < keep]
                self._truncate_log(keep, holders[-1] if holders else -1, out, reopen=True)
                self._enter_election(now_ns, out, f"truncated terms the leader never had, to {keep}")
                return
        if m.log_leadership_term_id != my_log_term:
            if self.state != _E.CANVASS:
                self._transition(_E.CANVASS, now_ns, out, "leader's view of my log term differs")
            return
        self._last_leader_contact_ns = now_ns
        self.leader_id = leader
        self.leadership_term_id = term
        # a term learned from its leader is durable before I act in it; Aeron raises it in memory only
        # (docs/consensus.md, "Departures from Aeron")
        if term > self.candidate_term_id:
            self.candidate_term_id = term
            out.add(PersistCandidateTerm(term))
        self.log_session_id = m.log_session_id
        self._term_base = m.term_base_log_position
        self._catchup_join_position = m.log_position
        next_base = m.next_term_base_log_position
        if m.next_leadership_term_id > self.log_leadership_term_id and 0 <= next_base < self.append_position:
            # Aeron's rule: my term ends at the cut, where the leader's next term starts
            self._truncate_log(next_base, self.log_leadership_term_id, out, reopen=False)
            self._enter_election(now_ns, out, f"truncated a diverging log tail to {next_base}")
            return
        if self.append_position < self._term_base:
            if self.append_position == next_base == m.next_log_position:
                # the next term is empty (its leader appended nothing): there is nothing to copy, so
                # record it at once and be walked on to the term after it
                self._persist_term(out, m.next_leadership_term_id, next_base, now_ns)
                if self.state != _E.CANVASS:
                    self._transition(
                        _E.CANVASS, now_ns, out, f"recorded empty term {m.next_leadership_term_id}"
                    )
                return
            if now_ns < self._replicate_after_ns:
                return  # a copy failed a moment ago: the leader's next NewLeadershipTerm tries again
            stop = next_base if self.append_position < next_base else m.next_log_position
            if stop < 0 or stop <= self.append_position:
                stop = self._term_base
            if self.append_position >= next_base:
                # the bytes to copy are the next term's own: record that term before any of them lands
                # (my log already matches the leader's up to its base), so a crash or a timeout part-way
                # never leaves them labelled as my older term
                self._persist_term(out, m.next_leadership_term_id, next_base, now_ns)
            self._pending_stop = stop
            self._pending_term = (m.next_leadership_term_id, next_base)
            self._transition(_E.FOLLOWER_LOG_REPLICATION, now_ns, out, f"missing log up to {stop}")
            out.add(
                LogRequest(
                    "replicate",
                    leader,
                    term,
                    self.append_position,
                    stop_position=stop,
                    leader_recording_id=m.leader_recording_id,
                )
            )
            return
        self._set_role(Role.FOLLOWER, out)
        self._transition(_E.FOLLOWER_REPLAY, now_ns, out, f"following member {leader} in term {term}")
        self._election_work(now_ns, out)

    def _on_append_position(self, now_ns: int, m: codecs.AppendPositionDecoder, out: _Out) -> None:
        peer = self.peers.get(m.follower_member_id)
        if peer is None or self.role != Role.LEADER:
            return
        if m.leadership_term_id != self.leadership_term_id:
            return
        peer.append_term_id = m.leadership_term_id
        peer.append_position = max(peer.append_position, m.log_position)
        peer.log_leadership_term_id = m.leadership_term_id
        peer.log_position = peer.append_position
        peer.time_of_last_append_ns = now_ns
        if peer.member_id in self._catching_up and peer.append_position >= self.log_end:
            self._catching_up.discard(peer.member_id)
            out.add(StopCatchupReplay(peer.member_id))
            out.add(
                Send(
                    peer.member_id,
                    self._message(
                        codecs.StopCatchupEncoder.pack_into(
                            self._scratch,
                            0,
                            leadership_term_id=self.leadership_term_id,
                            follower_member_id=peer.member_id,
                        )
                    ),
                )
            )
        if self.state == _E.CLOSED:
            self._leader_work(now_ns, out)
        else:
            self._election_work(now_ns, out)

    def _on_catchup_position(self, now_ns: int, m: codecs.CatchupPositionDecoder, out: _Out) -> None:
        """A follower behind the live log asks for a catch-up replay from its position: the leader's
        archive replays the log to the follower's catch-up endpoint until the follower's AppendPosition
        reaches the log publication's position (then StopCatchupReplay and StopCatchup)."""
        member = m.follower_member_id
        if self.role != Role.LEADER or member not in self.peers:
            return
        if m.leadership_term_id != self.leadership_term_id:
            return
        try:
            endpoint = m.catchup_endpoint_str()
        except CodecError:
            self.malformed_messages += 1
            return
        if member in self._catching_up:
            out.add(StopCatchupReplay(member))  # it asks again, from where it is now
        self._catching_up.add(member)
        out.add(StartCatchupReplay(member, m.log_position, endpoint, self.log_session_id))

    def _on_stop_catchup(self, now_ns: int, m: codecs.StopCatchupDecoder, out: _Out) -> None:
        if (
            m.follower_member_id == self.member_id
            and m.leadership_term_id == self.leadership_term_id
            and self.state == _E.FOLLOWER_CATCHUP
        ):
            self._stop_catchup = True
            self._last_leader_contact_ns = now_ns
            self._election_work(now_ns, out)

    def _on_commit_position(self, now_ns: int, m: codecs.CommitPositionDecoder, out: _Out) -> None:
        if m.leader_member_id not in self.peers:
            return  # no member of this cluster sent it: it moves nothing, an election least of all
        term = m.leadership_term_id
        # ours: in the leader's election states a later term's CommitPosition is ignored, where Aeron's
        # LEADER_READY abandons the election (docs/consensus.md, "Departures from Aeron")
        if term > self.leadership_term_id and self.state == _E.CLOSED:
            self._enter_election(now_ns, out, "commit position from a later term")
            return
        if term != self.leadership_term_id or m.leader_member_id != self.leader_id:
            return
        self._last_leader_contact_ns = now_ns
        self.leader_commit_position = max(self.leader_commit_position, m.log_position)
        if self.state in (_E.CLOSED, _E.FOLLOWER_LOG_AWAIT, _E.FOLLOWER_READY, _E.FOLLOWER_CATCHUP):
            self._follower_commit(out)
            if self.state == _E.FOLLOWER_CATCHUP:
                self._election_work(now_ns, out)
        elif self.state == _E.FOLLOWER_LOG_REPLICATION:
            self._state_deadline_ns = now_ns + self.config.leader_heartbeat_timeout_ns  # as in Aeron


_ELECTION_WORK: dict[ElectionState, Callable[[ConsensusCore, int, _Out], None]] = {
    _E.CANVASS: ConsensusCore._in_canvass,
    _E.NOMINATE: ConsensusCore._in_nominate,
    _E.CANDIDATE_BALLOT: ConsensusCore._in_candidate_ballot,
    _E.FOLLOWER_BALLOT: ConsensusCore._in_follower_ballot,
    _E.LEADER_LOG_REPLICATION: ConsensusCore._in_leader_log_replication,
    _E.LEADER_REPLAY: ConsensusCore._in_leader_replay,
    _E.LEADER_INIT: ConsensusCore._in_leader_init,
    _E.LEADER_READY: ConsensusCore._in_leader_ready,
    _E.FOLLOWER_LOG_REPLICATION: ConsensusCore._in_follower_log_replication,
    _E.FOLLOWER_REPLAY: ConsensusCore._in_follower_replay,
    _E.FOLLOWER_CATCHUP_INIT: ConsensusCore._in_follower_catchup_init,
    _E.FOLLOWER_CATCHUP_AWAIT: ConsensusCore._in_follower_catchup_await,
    _E.FOLLOWER_CATCHUP: ConsensusCore._in_follower_catchup,
    _E.FOLLOWER_LOG_INIT: ConsensusCore._in_follower_log_init,
    _E.FOLLOWER_LOG_AWAIT: ConsensusCore._in_follower_log_await,
    _E.FOLLOWER_READY: ConsensusCore._in_follower_ready,
}


def _check_position(what: str, position: int) -> None:
    if not isinstance(position, int) or position < 0 or position & (FRAME_ALIGNMENT - 1):
        raise ConsensusError(f"{what} {position!r} is not a log position (a multiple of 32, >= 0)")


MAX_TERM_ID = 2**62
"""Leadership and candidate term ids in messages stay below this. Terms are int64 on the wire; the bound
leaves room to count up (an election a microsecond would take 146,000 years to reach it)."""

_TERM_FIELDS = (
    "candidate_term_id",
    "log_leadership_term_id",
    "leadership_term_id",
    "next_leadership_term_id",
)
_POSITION_FIELDS = (
    "log_position",
    "next_term_base_log_position",
    "next_log_position",
    "term_base_log_position",
)


def impossible_value(name: str, decoder: object) -> str | None:
    """Why a decoded consensus message cannot have come from a member, or ``None`` if it can.

    Log positions are byte offsets of frame boundaries: multiples of 32, or -1 (Aeron's null position).
    Term ids are -1 (none yet) or in ``[0, MAX_TERM_ID)``. A position that is not a frame boundary would
    have a follower truncate or join the log in the middle of a frame."""
    terms, positions = _CHECKED_FIELDS.get(name, ((), ()))
    for attribute in terms:
        value = getattr(decoder, attribute)
        if value is not None and not -1 <= value < MAX_TERM_ID:
            return f"{name}.{attribute} {value} is not a term id"
    for attribute in positions:
        value = getattr(decoder, attribute)
        if value is not None and value != -1 and (value < 0 or value & (FRAME_ALIGNMENT - 1)):
            return f"{name}.{attribute} {value} is not a log position"
    return None


# each handler takes its own message's decoder: the table's value type cannot say which, so it says Any
_HANDLERS: dict[str, Callable[[ConsensusCore, int, Any, _Out], None]] = {
    "CanvassPosition": ConsensusCore._on_canvass_position,
    "RequestVote": ConsensusCore._on_request_vote,
    "Vote": ConsensusCore._on_vote,
    "NewLeadershipTerm": ConsensusCore._on_new_leadership_term,
    "AppendPosition": ConsensusCore._on_append_position,
    "CommitPosition": ConsensusCore._on_commit_position,
    "CatchupPosition": ConsensusCore._on_catchup_position,
    "StopCatchup": ConsensusCore._on_stop_catchup,
    "TerminationPosition": ConsensusCore._on_termination_position,
    "TerminationAck": ConsensusCore._on_termination_ack,
    "BackupQuery": ConsensusCore._on_backup_query,
    "ChallengeResponse": ConsensusCore._on_challenge_response,
    "BackupResponse": ConsensusCore._on_backup_response,
}


# per message the core acts on: which of its fields are term ids and which are log positions
def _fields_of(name: str, fields: tuple[str, ...]) -> tuple[str, ...]:
    decoder = getattr(codecs, name + "Decoder")
    return tuple(field for field in fields if hasattr(decoder, field))


_CHECKED_FIELDS = {
    name: (_fields_of(name, _TERM_FIELDS), _fields_of(name, _POSITION_FIELDS)) for name in _HANDLERS
}
