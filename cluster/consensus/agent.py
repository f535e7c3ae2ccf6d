"""``ConsensusModuleAgent``: one member's consensus module, driving the consensus core with the
transport, the local archive and the cluster directory's files.

Theory of operation
-------------------
The agent is the driver of ``ConsensusCore`` (docs/consensus.md, "The driver contract"), and the only
one a running node has: in a real process over UDP and files, and in the simulator over the simulated
network and disk -- the same code. Each duty cycle (``do_work``) it

1. polls the consensus subscription (stream 108 on this member's consensus endpoint) and hands every
   message to ``on_message``;
2. polls the ingress subscription (stream 101 on this member's ingress endpoint) and hands each client
   message to ``on_ingress`` (the core's client sessions decide: docs/sessions.md) -- a controlled
   poll, so a message whose entry the log refuses comes again -- and the services' stream (105) to
   ``on_service_message``;
3. polls the archive's recording signals and finishes the log requests waiting for them;
4. reads the log recording's position counter (the archive's ``rec-pos`` counter) and reports a change
   with ``on_append_position``: a node's append position is what its archive has recorded, as in Aeron;
5. ticks the core; every 10 ms reads the control file for an operator's request (below); once a second
   stamps the mark file's activity timestamp.

Every list of actions is executed in order (``_execute``); answers to requests (``on_log_*``,
``on_replicated``) are queued and delivered after the list, each answer's own actions executed the same
way. The archive is this process's own, reached over IPC with the synchronous ``ArchiveClient``, whose
invoker runs the transport's and the archive's duty cycles while it waits -- never this agent's, so an
action is never interrupted by another input.

**The log.** A leader publishes the log of its term on an exclusive publication of the log channel with
``control-mode=manual`` (multi-destination-cast: each follower's log endpoint is a destination) that
continues the log's positions -- ``init-term-id=0``, ``term-id``/``term-offset`` of the term's base,
the term's log session id -- and records it LOCAL (through a spy) in its archive, extending the node's
one log recording. A follower subscribes on its log endpoint, filtered on the term's log session id, and
its archive records what arrives (REMOTE), extending the same recording. ``StopLog`` closes all of it
and answers with the recording's stop position.

**Files.** ``cluster-mark.dat`` is created at start (a live one means another process owns the
directory), ``node-state.dat`` keeps the candidate term, ``recording.log`` the term history; each
change is synced at the node's file-sync level before the next action runs. ``cluster-control.dat``
(``ClusterControlFile``) is how the admin tool reaches the running node: a new request goes to the core
(``request_action``), whose answer -- and, once the action is over, DONE or FAILED -- goes back into the
file with the node's role, module state and leader (docs/cluster-files.md). The core's ``Terminate`` (a
shutdown or abort reached this member) marks the term's end in ``recording.log`` and sets ``terminated``:
whoever runs the node closes it.

**Catch-up from a snapshot.** The core's ``InstallSnapshot`` (docs/consensus.md, "Catch-up from a
snapshot") copies another member's snapshot recordings and its log up to them through archive
replication, one at a time, then replaces ``recording.log`` whole and sets ``restart``: whoever runs the
node makes a new agent on the same directories, which recovers from the copied snapshot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import struct
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from cluster.archive.archive import RECORDING_POSITION_TYPE_ID
from cluster.archive.client import ArchiveClient, ArchiveClientError, RecordingSignalEvent
from cluster.archive.errors import ArchiveError
from cluster.archive.message_recorder import MessageRecorder, RecorderState
from cluster.archive.message_replay import replay_messages
from cluster.archive.protocol import NULL_POSITION, NULL_VALUE
from cluster.archive.recording_follower import RecordingFollower
from cluster.cluster_counters import (
    COMMIT_POSITION_TYPE_ID,
    LOG_READ_LIMIT_TYPE_ID,
    NODE_ROLE_TYPE_ID,
    RECOVERY_STATE_TYPE_ID,
    TOTAL_MAX_SNAPSHOT_DURATION_TYPE_ID,
    TOTAL_SNAPSHOT_DURATION_THRESHOLD_EXCEEDED_TYPE_ID,
    RecoveryState,
    SnapshotDurationTracker,
    cluster_counter_key,
)
from cluster.consensus.core.actions import (
    NO_POSITION_FIELD,
    Action,
    AppendLog,
    Broadcast,
    CloseEgress,
    Commit,
    InstallSnapshot,
    LogRequest,
    OpenEgress,
    PersistCandidateTerm,
    PersistSnapshot,
    PersistTerm,
    ReadLog,
    RecordSnapshot,
    RoleChange,
    Send,
    SendEgress,
    ServiceControl,
    StartCatchupReplay,
    StateChange,
    StopCatchupReplay,
    StopLog,
    Terminate,
    TruncateLog,
)
from cluster.consensus.core.cluster_actions import ControlOutcome, ModuleState, ToggleState
from cluster.consensus.core.errors import ConsensusError, RecordingLogError
from cluster.consensus.core.members import format_members
from cluster.consensus.core.node import ConsensusCore
from cluster.consensus.core.recording_log import RecordingLog, RecordingLogEntry
from cluster.consensus.core.sessions import Authenticator, AuthorisationService
from cluster.consensus.files.control_file import CONTROL_INTERVAL_NS, ClusterControlFile
from cluster.consensus.files.mark_file import ClusterMarkFile
from cluster.consensus.files.node_state import NodeStateFile
from cluster.consensus.files.recording_log_file import RecordingLogFile
from cluster.consensus.node_config import NodeConfig
from cluster.session_message import SESSION_HEADER_LENGTH, session_message
from cluster.snapshots import (
    ConsensusModuleSnapshot,
    ConsensusModuleSnapshotLoader,
    ServiceSnapshotLoader,
    SnapshotError,
    SnapshotMarker,
)
from cluster.storage import Storage, StorageError, SyncLevel
from cluster.transport.counters import Counter
from cluster.transport.driver import Transport
from cluster.transport.errors import TransportError
from cluster.transport.image import ControlledAction, Subscription
from cluster.transport.logbuffer import (
    ADMIN_ACTION,
    BufferClaim,
    ControlledFragmentAssembler,
    FragmentAssembler,
)
from cluster.transport.publication import Publication, offer_past_rotation
from cluster.transport.uri import ChannelUri
from codegen.runtime.errors import CodecError
from generated import aeron_cluster_codecs as codecs
from generated.aeron_archive_codecs import RecordingSignal, SourceLocation
from generated.aeron_cluster_codecs import ClusterTimeUnit

__all__ = [
    "DRIVER_CANARIES",
    "ConsensusModuleAgent",
    "LogEvent",
]

EGRESS_HELD_LIMIT: Final = 16  # messages an egress holds while it connects
EGRESS_CONNECT_TIMEOUT_NS: Final = 5_000 * 1_000_000  # an egress nobody answers is dropped (a client's
# message timeout: by then the client has given up on what it asked)
_ROLE_VALUES: Final = {"FOLLOWER": 0, "CANDIDATE": 1, "LEADER": 2}

NS_PER_MS: Final = 1_000_000
MARK_FILE_UPDATE_INTERVAL_NS: Final = 1_000 * NS_PER_MS
APPEND_ATTEMPTS: Final = 3  # an append that meets a term's end is tried again, as Aeron's log publisher does
FRAGMENT_LIMIT: Final = 32
STOP_WAIT_CYCLES: Final = 10_000  # duty cycles of the transport and archive a recording may take to stop
LOG_TAG_BASE: Final = 1 << 30  # channel tags of a follower's log subscriptions: one per subscription
_POSITION = struct.Struct("<q")


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One line for the node's event log: what the core did (a state or role change) or the agent."""

    time_ns: int
    text: str


@dataclass(slots=True)
class _Egress:
    """An egress publication to a client (``OpenEgress``), with what it holds until it connects."""

    publication: Publication
    deadline_ns: int
    held: deque[bytes]
    reported: bool = False  # on_egress_connected told
    closing: bool = False


@dataclass(slots=True)
class _PendingLog:
    """A log request waiting for its recording to start (the archive's START or EXTEND signal)."""

    kind: str  # "publish" or "join"
    subscription_id: int
    position: int
    correlation_id: int  # of the start or extend request: a later refusal carries it


_LOG_COPY: Final = -2  # in an install's copies, the log's (the snapshots' are service ids and -1)


@dataclass(slots=True)
class _Install:
    """An ``InstallSnapshot`` under way: the recordings still to copy from the source member's archive,
    one at a time -- ``(service id, source recording id, stop position)``, the log last -- and the local
    recording each copy made."""

    action: InstallSnapshot
    source_channel: str
    to_copy: deque[tuple[int, int, int]]
    copied: dict[int, int]
    replication_id: int = NULL_VALUE


@dataclass(frozen=True, slots=True)
class _ControlRequest:
    """A control request the core took on, with the snapshot counts when it did: how its end shows."""

    request_id: int
    action: int  # a ToggleState value
    snapshots_taken: int
    snapshots_failed: int

    def outcome(self, core: ConsensusCore) -> ControlOutcome | None:
        """DONE or FAILED once the request is over, ``None`` while it goes on. SUSPEND and RESUME are done
        once the module's state is theirs; a snapshot once it is taken; SHUTDOWN and ABORT once the node
        terminates (``_terminate``). A request an election dropped before it was appended failed."""
        appended = core.requested is None
        if self.action == ToggleState.SNAPSHOT:
            if core.snapshots_taken > self.snapshots_taken:
                return ControlOutcome.DONE
            if core.snapshots_failed > self.snapshots_failed or (
                appended and core.module_state != ModuleState.SNAPSHOT
            ):
                return ControlOutcome.FAILED
            return None
        if self.action in (ToggleState.SUSPEND, ToggleState.RESUME):
            wanted = ModuleState.SUSPENDED if self.action == ToggleState.SUSPEND else ModuleState.ACTIVE
            if not appended:
                return None
            return ControlOutcome.DONE if core.module_state == wanted else ControlOutcome.FAILED
        # SHUTDOWN and ABORT: over when the node terminates, or lost before the termination began
        return ControlOutcome.FAILED if appended and core.termination is None else None


class ConsensusModuleAgent:
    """One member's consensus module (see the module docstring)."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        transport: Transport,
        cluster_storage: Storage,
        invoker: Callable[[], object],
        random: Callable[[], float],
        pid: int,
        canaries: frozenset[str] = frozenset(),
        on_event: Callable[[LogEvent], object] | None = None,
        mark_file_liveness_timeout_ms: int = 10_000,
        authenticator: Authenticator | None = None,
        authorisation: AuthorisationService | None = None,
    ) -> None:
        self.config = config
        self.transport = transport
        self._cluster_storage = cluster_storage
        self.clock = transport.clock
        self.member = config.member
        self.on_event = on_event
        # the core's time: the clock's monotonic nanoseconds, moved to read as nanoseconds since the
        # epoch when the agent started -- monotonic for its timers, and the cluster time (NANOS) that its
        # entries and recording.log carry
        self._epoch_offset_ns = self.clock.epoch_ms() * NS_PER_MS - self.clock.nano_time()
        sync_level = config.archive_file_sync_level
        now_ms = self.clock.epoch_ms()
        self.mark_file = ClusterMarkFile.create(
            cluster_storage,
            member_id=config.member_id,
            cluster_id=config.cluster_id,
            pid=pid,
            now_ms=now_ms,
            aeron_directory="",
            control_channel=config.archive_local_control_channel,
            ingress_channel=config.ingress_channel,
            archive_stream_id=config.archive_local_control_stream_id,
            ingress_stream_id=config.ingress_stream_id,
            file_sync_level=sync_level,
            liveness_timeout_ms=mark_file_liveness_timeout_ms,
        )
        self._closers: list[Callable[[], object]] = [self.mark_file.close]
        self.control: ClusterControlFile | None = None
        self._snapshot_recorder: MessageRecorder | None = None
        self._position_counter: Counter | None = None
        self.canaries = canaries & DRIVER_CANARIES.keys()
        # canary local_reads: the node gives the agent its service's read, answered outside the log
        self.local_read: Callable[[bytes], bytes | None] | None = None
        try:
            # canary vote_before_persist: the candidate term is written but never synced
            node_state_sync = SyncLevel.NONE if "vote_before_persist" in self.canaries else sync_level
            self.node_state = NodeStateFile.open(cluster_storage, sync_level=node_state_sync)
            self._closers.append(self.node_state.close)
            self.recording_log = RecordingLogFile.open(cluster_storage, sync_level=sync_level)
            self._closers.append(self.recording_log.close)
            self.control = ClusterControlFile.create(
                cluster_storage, member_id=config.member_id, members=format_members(config.members)
            )
            self._closers.append(self.control.close)
            self._invoker = invoker
            self.archive = self.connect_archive(on_recording_signal=self._on_recording_signal)
            self._closers.append(self.archive.close)
            # the log read back to the core (ReadLog): a bounded replay, through an archive client of its
            # own so that the follower's error polling never takes the log recording's errors
            self._log_archive = self.connect_archive()
            self._closers.append(self._log_archive.close)
            self._log_read_limit = transport.counters_manager.allocate(
                LOG_READ_LIMIT_TYPE_ID, f"Cluster log read limit: memberId={config.member_id}"
            )
            self._closers.append(self._log_read_limit.close)
            self._log_reader = RecordingFollower(
                self._log_archive,
                recording_id=lambda: self.log_recording_id,
                limit_counter=lambda: self._log_read_limit,
                replay_channel=config.replay_channel,
                replay_stream_id=config.replay_stream_id,
            )
            self._log_read_reported = 0
            self._closers.append(self._log_reader.close)
            self._open_channels()
            snapshot = self._load_latest_snapshot()  # may invalidate a damaged one first
            log = self.recording_log.log
            self.log_recording_id = log.term_recording_id
            append = self._recorded_position() if self.log_recording_id >= 0 else 0
            self.core = ConsensusCore(
                config.consensus_config(),
                random,
                now_ns=self._now(),
                candidate_term_id=self.node_state.candidate_term.candidate_term_id,
                recording_log=log,
                append_position=append,
                canaries=canaries - DRIVER_CANARIES.keys(),
                authenticator=authenticator,
                authorisation=authorisation,
                snapshot=snapshot,
                commit_position_counter_id=self.commit_counter.id,
            )
        except BaseException:
            self._close_all()
            raise
        self.append_position = append
        self.commit_position = 0
        self.role = "FOLLOWER"
        self.leadership_term_id = -1
        self.election_state = "INIT"
        self._answers: deque[Callable[[], list[Action]]] = deque()
        self._executing = False
        self._append_refused = False  # the log publication refused an entry of the ingress fragment
        self._log_publication: Publication | None = None
        self._log_session_id = 0
        self._recording_subscription_id = NULL_VALUE
        self._pending_log: _PendingLog | None = None
        self._log_failure: str | None = None  # a log request's recording started in the wrong place
        self._replication_id = NULL_VALUE
        self._replication_stop = NULL_POSITION
        self._catchup_replays: dict[int, int] = {}  # follower member id -> replay session id
        self._log_subscription: Subscription | None = None  # a follower's (multi-destination)
        self._live_destination_wanted = False
        self._log_tag = LOG_TAG_BASE + 1_000 * config.member_id
        self._claim = BufferClaim()
        # a message longer than a frame arrives in fragments: each stream's are put back together
        self._consensus_assembler = FragmentAssembler(self._on_consensus_fragment)
        self._ingress_assembler = ControlledFragmentAssembler(self._on_ingress_fragment)
        self._services_assembler = FragmentAssembler(self._on_service_fragment)
        self._egress: dict[int, _Egress] = {}
        self._next_mark_file_ns = self._now() + MARK_FILE_UPDATE_INTERVAL_NS
        self._next_control_ns = 0
        self._control_request: _ControlRequest | None = None
        self.terminated: Terminate | None = None  # the core's Terminate: the node is to stop
        self._install: _Install | None = None
        # why the node is to start again on its directories (an InstallSnapshot over, done or not):
        # whoever runs the node closes this agent and makes a new one
        self.restart: str | None = None
        self.is_closed = False
        try:
            self._execute(self.core.start(self._now()))
        except BaseException:
            self._close_all()
            raise

    # ------------------------------------------------------------------ set-up

    def _load_latest_snapshot(self) -> ConsensusModuleSnapshot | None:
        """The consensus module's latest snapshot, read back through the archive, with every service's
        snapshot of its set checked the same way (BEGIN to END, at the entry's term and position: the
        service's own state after END is its container's to read); then the recovery-state counter tells
        the services where to begin. A set that cannot be read -- a damaged recording, one cut before
        END -- is refused: its entries are invalidated in the
        recording log, durably, and the set before it is tried, down to none (the whole log is then
        replayed). A snapshot of another time unit is no damage but a different cluster: the node stops."""
        config = self.config
        log_file = self.recording_log
        while True:
            entries = log_file.log.latest_snapshots(config.service_count)
            if not entries:
                self._publish_recovery_state(None, ())
                return None
            cm_entry, service_entries = entries[0], entries[1:]
            try:
                loader = ConsensusModuleSnapshotLoader()
                self._replay_snapshot(cm_entry, until=loader.on_message)
                snapshot = loader.snapshot
                seeded = log_file.log.is_seeded(cm_entry)
                self._check_snapshot_marker(snapshot.marker, cm_entry, seeded=seeded)
                if seeded:  # the snapshot begins a new log: it stands at 0, whatever its marker says
                    marker = dataclasses.replace(snapshot.marker, log_position=0)
                    snapshot = dataclasses.replace(snapshot, marker=marker)
                for entry in service_entries:
                    # read to END only: the service's own state after it is its container's to load
                    service_loader = ServiceSnapshotLoader()
                    self._replay_snapshot(entry, until=service_loader.on_message)
                    self._check_snapshot_marker(service_loader.snapshot.marker, entry, seeded=seeded)
            except (SnapshotError, ArchiveError) as error:
                self._event(
                    f"the snapshot at {cm_entry.log_position} (term {cm_entry.leadership_term_id}) is "
                    f"refused: {error}; it is invalidated and the one before it is used"
                )
                log_file.invalidate_latest_snapshot()
                continue
            time_unit = snapshot.marker.time_unit
            if time_unit is not None and time_unit != int(ClusterTimeUnit.NANOS):
                raise ConsensusAgentError(
                    f"the snapshot at {cm_entry.log_position} was taken by a cluster whose time unit is "
                    f"{ClusterTimeUnit(time_unit).name}; this node's is NANOS"
                )
            self._event(
                f"starting from the snapshot at {cm_entry.log_position} (term {cm_entry.leadership_term_id}, "
                f"recordings {[entry.recording_id for entry in entries]})"
            )
            self._publish_recovery_state(cm_entry, service_entries)
            return snapshot

    def _replay_snapshot(self, entry: RecordingLogEntry, until: Callable[[bytes], bool]) -> None:
        replay_messages(
            self.archive,
            entry.recording_id,
            channel=self.config.replay_channel,
            stream_id=self.config.replay_stream_id,
            until=until,
        )

    @staticmethod
    def _check_snapshot_marker(marker: SnapshotMarker, entry: RecordingLogEntry, *, seeded: bool) -> None:
        """The marker names the entry's term and position -- its term only, for a seeded recording log
        (``RecordingLog.is_seeded``), whose entries all stand at 0."""
        position = entry.log_position if seeded else marker.log_position
        if (position, marker.leadership_term_id) != (entry.log_position, entry.leadership_term_id):
            raise SnapshotError(
                f"recording {entry.recording_id} holds the snapshot at {marker.log_position} (term "
                f"{marker.leadership_term_id}), not the one its entry names at {entry.log_position} (term "
                f"{entry.leadership_term_id})"
            )

    def _publish_recovery_state(
        self, cm_entry: RecordingLogEntry | None, service_entries: tuple[RecordingLogEntry, ...]
    ) -> None:
        state = RecoveryState(
            -1 if cm_entry is None else cm_entry.leadership_term_id,
            0 if cm_entry is None else cm_entry.log_position,
            0 if cm_entry is None else cm_entry.timestamp,
            self.config.cluster_id,
            tuple(entry.recording_id for entry in service_entries)
            or (NULL_VALUE,) * self.config.service_count,
        )
        counter = self.transport.counters_manager.allocate(
            RECOVERY_STATE_TYPE_ID,
            f"Cluster recovery: leadershipTermId={state.leadership_term_id} logPosition={state.log_position} "
            f"clusterId={state.cluster_id}",
            state.key(),
        )
        self._closers.append(counter.close)

    def _open_channels(self) -> None:
        config = self.config
        consensus = ChannelUri.parse(config.consensus_channel)
        self._consensus_subscription = self.transport.add_subscription(
            consensus.with_params(endpoint=self.member.consensus).build(), config.consensus_stream_id
        )
        self._closers.append(self._consensus_subscription.close)
        self._consensus_publications: dict[int, Publication] = {}
        self._held_sends: dict[int, tuple[bytes, int]] = {}  # member -> (message, until_ns): Send.until_ns
        for member in config.members:
            if member.id != config.member_id:
                publication = self.transport.add_exclusive_publication(
                    consensus.with_params(endpoint=member.consensus).build(), config.consensus_stream_id
                )
                self._consensus_publications[member.id] = publication
                self._closers.append(publication.close)
        ingress = ChannelUri.parse(config.ingress_channel)
        self._ingress_subscription = self.transport.add_subscription(
            ingress.with_params(endpoint=self.member.ingress).build(), config.ingress_stream_id
        )
        self._closers.append(self._ingress_subscription.close)
        # this node's services: JoinLog and the like go out on 104, their messages come in on 105
        self._service_publication = self.transport.add_publication(
            config.control_channel, config.service_stream_id
        )
        self._closers.append(self._service_publication.close)
        self._services_subscription = self.transport.add_subscription(
            config.control_channel, config.consensus_module_stream_id
        )
        self._closers.append(self._services_subscription.close)
        key = cluster_counter_key(config.cluster_id)
        counters = self.transport.counters_manager
        self.commit_counter = counters.allocate(
            COMMIT_POSITION_TYPE_ID, f"Cluster commit-pos: clusterId={config.cluster_id}", key
        )
        self._closers.append(self.commit_counter.close)
        self.role_counter = counters.allocate(
            NODE_ROLE_TYPE_ID, f"Cluster node role: clusterId={config.cluster_id}", key
        )
        self._closers.append(self.role_counter.close)
        self.snapshot_durations = SnapshotDurationTracker(
            counters.allocate(
                TOTAL_MAX_SNAPSHOT_DURATION_TYPE_ID,
                f"Cluster total max snapshot duration in ns - clusterId={config.cluster_id}",
                key,
            ),
            counters.allocate(
                TOTAL_SNAPSHOT_DURATION_THRESHOLD_EXCEEDED_TYPE_ID,
                f"Cluster total max snapshot duration exceeded count - clusterId={config.cluster_id}",
                key,
            ),
            config.total_snapshot_threshold_ns,
        )
        self._closers.append(self.snapshot_durations.close)
        self._snapshots_taken_seen = 0

    # ------------------------------------------------------------------ duty cycle

    def do_work(self) -> int:
        """One duty cycle (see the module docstring); the amount of work done."""
        if self.is_closed:
            return 0
        if self._quiesced:
            # only the copies move on (their recording signals and errors); the core hears nothing
            work = self.archive.poll_for_recording_signals()
            self._check_archive_errors()
            now_ns = self._now()
            if now_ns >= self._next_mark_file_ns:
                self._next_mark_file_ns = now_ns + MARK_FILE_UPDATE_INTERVAL_NS
                self.mark_file.update_activity(self.clock.epoch_ms())
            return work
        work = self._consensus_subscription.poll(self._consensus_assembler, FRAGMENT_LIMIT)
        if self.core.ingress_open:  # a cluster action holds the log still: clients' messages wait
            work += self._ingress_subscription.controlled_poll(self._ingress_assembler, FRAGMENT_LIMIT)
        work += self._services_subscription.poll(self._services_assembler, FRAGMENT_LIMIT)
        work += self.archive.poll_for_recording_signals()
        self._check_archive_errors()
        if self._log_failure is not None:
            reason, self._log_failure = self._log_failure, None
            self._log_failed(reason)
        if self._log_subscription is not None:
            # the archive records the log; this member's own reading of it is for the services, later:
            # until then it only keeps up, so that it never holds back the image's window
            work += self._log_subscription.poll(_drop, FRAGMENT_LIMIT * 32)
        work += self._check_append_position()
        work += self._read_log()
        self._publish_service_limit()
        if self._snapshot_recorder is not None:
            work += self._record_snapshot()
        now_ns = self._now()
        work += self._egress_work(now_ns)
        if self._held_sends and not self._quiesced:  # quiesced: the core that asked is going away
            work += self._offer_held_sends(now_ns)
        self._execute(self.core.on_tick(now_ns))
        self._track_snapshot_duration(now_ns)
        if now_ns >= self._next_control_ns:
            self._next_control_ns = now_ns + CONTROL_INTERVAL_NS
            self._control_work()
        if now_ns >= self._next_mark_file_ns:
            self._next_mark_file_ns = now_ns + MARK_FILE_UPDATE_INTERVAL_NS
            self.mark_file.update_activity(self.clock.epoch_ms())
        return work

    def _control_work(self) -> None:
        """The control file (``cluster-control.dat``): a new request goes to the core, which answers it at
        once; one it took on is answered again once it is over; the status is brought up to date."""
        control = self.control
        assert control is not None
        core = self.core
        request = control.poll_request()
        if request is not None:
            request_id, action = request
            outcome = core.request_action(action)
            control.answer(request_id, outcome)
            if outcome == ControlOutcome.ACCEPTED:
                self._control_request = _ControlRequest(
                    request_id, action, core.snapshots_taken, core.snapshots_failed
                )
                self._event(f"control request {request_id}: {ToggleState(action).name} accepted")
            else:
                self._event(f"control request {request_id}: action {action} {outcome.name}")
        pending = self._control_request
        if pending is not None:
            result = pending.outcome(core)
            if result is not None:
                self._control_request = None
                control.answer(pending.request_id, result)
                self._event(f"control request {pending.request_id}: {result.name}")
        in_progress = self._control_request
        control.update(
            toggle=ToggleState.NEUTRAL if in_progress is None else in_progress.action,
            role=_ROLE_VALUES.get(self.role, 0),
            module_state=int(core.module_state),
            leader_member_id=core.leader_id,
            leadership_term_id=core.leadership_term_id,
            snapshot_count=core.snapshots_taken,
        )

    def _track_snapshot_duration(self, now_ns: int) -> None:
        """A snapshot runs while the module is in SNAPSHOT; one that ends with a snapshot taken is
        measured (``snapshot_durations``)."""
        core, tracker = self.core, self.snapshot_durations
        if core.module_state == ModuleState.SNAPSHOT:
            if not tracker.in_progress:
                tracker.begin(now_ns)
        elif tracker.in_progress:
            tracker.end(now_ns, taken=core.snapshots_taken > self._snapshots_taken_seen)
        self._snapshots_taken_seen = core.snapshots_taken

    def _check_archive_errors(self) -> None:
        """An archive error that answers no request: a replication that failed is reported to the core
        (``on_replication_failed``: a new election); anything else -- the log's recording failed to
        write -- ends the node, as an I/O error ends Aeron's (``ConsensusAgentError``)."""
        error = self.archive.poll_for_error_response()
        if error is None:
            return
        install = self._install
        if install is not None and error.correlation_id == install.replication_id:
            self._install_failed(f"a copy failed: {error.error_message}")
            return
        if self._replication_id != NULL_VALUE and error.correlation_id == self._replication_id:
            self._replication_id = NULL_VALUE
            reason = error.error_message
            self._event(f"log replication failed: {reason}")
            self._execute(self.core.on_replication_failed(self._now(), reason))
            return
        pending = self._pending_log
        if pending is not None and error.correlation_id == pending.correlation_id:
            # the archive refused to extend the log recording from the image (it joined elsewhere)
            self._log_failed(error.error_message)
            return
        raise ConsensusAgentError(f"the archive failed: {error.error_message}")

    def _log_failed(self, reason: str) -> None:
        """A log request's recording could not start where the log ends: undo it, tell the core."""
        self._pending_log = None
        if self._recording_subscription_id != NULL_VALUE:
            self.archive.stop_recording_subscription(self._recording_subscription_id)
            self._recording_subscription_id = NULL_VALUE
        self._close_log_subscription()
        if self._log_publication is not None:
            self._log_publication.close()
            self._log_publication = None
        self._event(f"log request failed: {reason}")
        now_ns = self._now()
        self._answer(lambda: self.core.on_log_failed(now_ns, reason))
        self._execute(())

    def _now(self) -> int:
        """The core's time: epoch-aligned monotonic nanoseconds (see ``__init__``)."""
        return self._epoch_offset_ns + self.clock.nano_time()

    def _on_consensus_fragment(self, buffer: memoryview, header: object) -> None:
        self._execute(self.core.on_message(self._now(), bytes(buffer)))

    def _on_ingress_fragment(self, buffer: memoryview, header: object) -> ControlledAction:
        """A client's message, offered to the core; if the log publication refuses its entry (back
        pressure), the fragment stays in the ingress image and comes again on a later poll, as Aeron's
        ingress adapter aborts it -- nothing a client sent is lost to a full log buffer."""
        self._append_refused = False
        if self.local_read is not None and self._read_locally(bytes(buffer)):
            return ControlledAction.CONTINUE
        self._execute(self.core.on_ingress(self._now(), bytes(buffer)))
        return ControlledAction.ABORT if self._append_refused else ControlledAction.CONTINUE

    def connect_archive(self, **options: Any) -> ArchiveClient:
        """A new client of the node's archive over its local (IPC) control channel, waiting for answers
        with the node's invoker; ``options`` go to ``ArchiveClient.connect``. The caller closes it."""
        config = self.config
        return ArchiveClient.connect(
            self.transport,
            control_request_channel=config.archive_local_control_channel,
            control_request_stream_id=config.archive_local_control_stream_id,
            control_response_channel="aeron:ipc",
            invoker=self._invoker,
            **options,
        )

    def _read_locally(self, message: bytes) -> bool:
        """Canary local_reads: a member that believes it leads answers a key-value read from its own
        service's state, never putting it in the log. Whether it did."""
        assert self.local_read is not None
        if self.role != "LEADER" or len(message) <= SESSION_HEADER_LENGTH:
            return False
        try:
            header = codecs.SessionMessageHeaderDecoder.unpack(message)
        except CodecError:
            return False
        payload = message[SESSION_HEADER_LENGTH:]
        if payload[0] != 1:  # the key-value service's READ
            return False
        reply = self.local_read(payload)
        if reply is None:
            return False
        session_id = header[1]
        framed = session_message(self.leadership_term_id, session_id, self._now(), reply)
        self._execute([SendEgress(session_id, framed)])
        return True

    def _on_service_fragment(self, buffer: memoryview, header: object) -> None:
        self._execute(self.core.on_service_message(self._now(), bytes(buffer)))

    def _read_log(self) -> int:
        """The log read back (``ReadLog``): each whole entry to the core, then how far padding took it;
        nothing while the core holds its reading (a snapshot in progress)."""
        if self.core.log_paused:
            return 0
        reader = self._log_reader
        work = reader.poll(self._on_log_entry, FRAGMENT_LIMIT)
        if reader.position > self._log_read_reported:
            self._log_read_reported = reader.position
            self._execute(self.core.on_log_position(self._now(), reader.position))
        return work

    def _publish_service_limit(self) -> None:
        """The commit-position counter the services read to: the commit position, but never beyond what
        this module has read of its log. A service's ScheduleTimer, CancelTimer and messages to the log
        answer entries it has read; a module that has not read those entries yet would hold timers
        and messages ahead of its own state, and a snapshot of it would mix two positions. A leader has
        read all it appended; a follower's module reads the committed log a duty cycle or so ahead of
        its services."""
        if "deliver_before_commit" in self.canaries:
            return  # the canary moves the counter itself, to the append position
        limit = min(self.commit_position, self.core.sessions.consumed_position)
        if limit > self.commit_counter.get():
            self.commit_counter.set(limit)

    def _on_log_entry(self, message: memoryview, position: int) -> bool:
        self._log_read_reported = position
        self._execute(self.core.on_log_entry(self._now(), message, position))
        return self.core.log_paused  # True ends the reader's poll at this entry

    def _record_snapshot(self) -> int:
        """``RecordSnapshot`` in progress: a duty cycle of its recorder, and the core's answer once done."""
        recorder = self._snapshot_recorder
        assert recorder is not None
        work = recorder.do_work()
        if recorder.done:
            self._snapshot_recorder = None
            recording_id = recorder.recording_id if recorder.state == RecorderState.DONE else NULL_VALUE
            if recording_id == NULL_VALUE:
                self._event(f"the consensus module's snapshot failed: {recorder.error}")
            self._execute(self.core.on_snapshot_recorded(self._now(), recording_id, recorder.error))
            work += 1
        return work

    def _egress_work(self, now_ns: int) -> int:
        """Egress publications: report each one that connects, send what it holds, close the ones asked
        to close once they are empty, and drop the ones nobody answered in time."""
        work = 0
        for key, egress in list(self._egress.items()):
            publication = egress.publication
            if publication.is_connected:
                if not egress.reported:
                    egress.reported = True
                    work += 1
                    self._execute(self.core.on_egress_connected(now_ns, key))
                while egress.held:
                    if not self._offer_egress(publication, egress.held[0]):
                        break
                    egress.held.popleft()
                    work += 1
                if egress.closing and not egress.held:
                    self._close_egress(key)
            elif now_ns >= egress.deadline_ns:
                self._close_egress(key)
        return work

    def _offer_egress(self, publication: Publication, message: bytes) -> bool:
        return offer_past_rotation(publication, message) > 0

    def _close_egress(self, key: int) -> None:
        egress = self._egress.pop(key, None)
        if egress is not None:
            egress.publication.close()

    def _check_append_position(self) -> int:
        counter = self._position_counter
        if counter is None:
            return 0
        position = counter.get()
        if "ack_before_durable" in self.canaries:
            position = max(position, self._transported_position())
        if position == self.append_position:
            return 0
        self.append_position = position
        if "deliver_before_commit" in self.canaries:
            self.commit_counter.set(max(self.commit_counter.get(), position))
        self._execute(self.core.on_append_position(self._now(), position))
        return 1

    def _transported_position(self) -> int:
        """Canary ack_before_durable: how far the log has come through the transport -- the leader's
        publication, a follower's image -- recorded or not."""
        if self._log_publication is not None and not self._log_publication.is_closed:
            return self._log_publication.position
        subscription = self._log_subscription
        image = None if subscription is None else subscription.image_by_session_id(self._log_session_id)
        return 0 if image is None or image.is_closed else image.position

    # ------------------------------------------------------------------ actions

    def _execute(self, actions: Iterable[Action]) -> None:
        """Run ``actions`` in order, then the answers they asked for (each with its own actions), in the
        order they were asked for. An archive request that fails (the archive could not truncate,
        record or replay: an I/O error, a refusal) ends the node with ``ConsensusAgentError``: the core's
        contract cannot be kept without it."""
        if self._executing:
            # a recording signal that came while an action waited on the archive: the list being run
            # delivers what it asked for after itself, as the contract says
            if actions:
                held = list(actions)
                self._answers.append(lambda: held)
            return
        self._executing = True
        try:
            self._run(actions)
            while self._answers and not self._quiesced:
                self._run(self._answers.popleft()())
        except ArchiveClientError as error:
            raise ConsensusAgentError(f"an archive request failed: {error}") from error
        finally:
            self._executing = False

    def _answer(self, answer: Callable[[], list[Action]]) -> None:
        self._answers.append(answer)

    @property
    def _quiesced(self) -> bool:
        """Taking another member's snapshot, or about to start again: the core is told nothing more, its
        actions not yet run are dropped, and nothing moves the log (``_begin_install``)."""
        return self._install is not None or self.restart is not None

    def _run(self, actions: Iterable[Action]) -> None:
        appends_failed = False
        for action in actions:
            if self._quiesced:
                return
            if isinstance(action, Send):
                publication = self._consensus_publications.get(action.to)
                # lost if refused (the core sends again), or held for another try (Send.until_ns); a
                # term's end is no refusal: the message goes into the next term (offer_past_rotation)
                refused = publication is not None and offer_past_rotation(publication, action.message) < 0
                if refused and action.until_ns >= 0:
                    self._held_sends[action.to] = (action.message, action.until_ns)
            elif isinstance(action, Broadcast):
                for publication in self._consensus_publications.values():
                    offer_past_rotation(publication, action.message)
            elif isinstance(action, AppendLog):
                appends_failed = self._append(action, appends_failed)
            elif isinstance(action, PersistCandidateTerm):
                self.node_state.update_candidate_term(
                    action.candidate_term_id, self.append_position, self.clock.epoch_ms()
                )
            elif isinstance(action, RecordSnapshot):
                if self._snapshot_recorder is not None:
                    self._snapshot_recorder.close()
                self._snapshot_recorder = MessageRecorder(
                    self.transport,
                    self.archive,
                    self.config.snapshot_channel,
                    self.config.consensus_module_snapshot_stream_id,
                    action.messages,
                )
            elif isinstance(action, PersistSnapshot):
                self.recording_log.put_snapshots(action.entries)
                self._event(
                    f"snapshot at {action.entries[-1][3]}: recordings {[e[0] for e in action.entries]}"
                )
            elif isinstance(action, PersistTerm):
                self.recording_log.append_term(
                    action.recording_id,
                    action.leadership_term_id,
                    action.term_base_log_position,
                    action.timestamp,
                )
            elif isinstance(action, TruncateLog):
                self._truncate(action)
            elif isinstance(action, StopLog):
                self._stop_log()
            elif isinstance(action, LogRequest):
                self._log_request(action)
            elif isinstance(action, StartCatchupReplay):
                self._start_catchup_replay(action)
            elif isinstance(action, StopCatchupReplay):
                replay = self._catchup_replays.pop(action.follower_member_id, None)
                if replay is not None:
                    self.archive.stop_replay(replay)
            elif isinstance(action, Commit):
                self.commit_position = action.position
                self._publish_service_limit()
            elif isinstance(action, ReadLog):
                self._log_reader.seek(action.position)
                self._log_read_reported = action.position
                self._log_read_limit.set(action.limit)
            elif isinstance(action, OpenEgress):
                self._open_egress(action)
            elif isinstance(action, SendEgress):
                egress = self._egress.get(action.key)
                if egress is not None and not egress.closing:
                    if egress.publication.is_connected and not egress.held:
                        # refused after a few tries: lost, as Aeron's egress loses it (SendEgress)
                        self._offer_egress(egress.publication, action.message)
                    elif len(egress.held) < EGRESS_HELD_LIMIT:
                        egress.held.append(action.message)
            elif isinstance(action, CloseEgress):
                egress = self._egress.get(action.key)
                if egress is not None:
                    egress.closing = True
                    if not egress.held:
                        self._close_egress(action.key)
            elif isinstance(action, ServiceControl):
                # lost only when no service reads the stream: with none, nobody needs it
                offer_past_rotation(self._service_publication, action.message)
            elif isinstance(action, RoleChange):
                self.role = action.role
                self.role_counter.set(_ROLE_VALUES.get(action.role, 0))
                self.leadership_term_id = action.leadership_term_id
                self._event(f"role {action.role} in term {action.leadership_term_id}")
            elif isinstance(action, StateChange):
                self._held_sends.clear()  # held only within the state that sent them
                self.election_state = action.to_state
                self._event(f"election {action.from_state} -> {action.to_state}: {action.reason}")
            elif isinstance(action, Terminate):
                self._terminate(action)
            elif isinstance(action, InstallSnapshot):
                self._begin_install(action)

    def _offer_held_sends(self, now_ns: int) -> int:
        """Offer each held consensus message again (``Send.until_ns``): taken or out of time, it goes."""
        work = 0
        for member_id, (message, until_ns) in list(self._held_sends.items()):
            if now_ns >= until_ns:
                del self._held_sends[member_id]
            elif offer_past_rotation(self._consensus_publications[member_id], message) >= 0:
                del self._held_sends[member_id]
                work += 1
        return work

    def _terminate(self, action: Terminate) -> None:
        """The cluster stops (SHUTDOWN or ABORT): the term's end goes into ``recording.log``, a request in
        progress is answered, and the node is to close (``terminated``); its runner closes it."""
        try:
            self.recording_log.commit_log_position(action.leadership_term_id, action.log_position)
        except ConsensusError as error:  # a term this log never opened: nothing to mark
            self._event(f"termination: the term's end was not recorded: {error}")
        pending, self._control_request = self._control_request, None
        if pending is not None and self.control is not None:
            self.control.answer(pending.request_id, ControlOutcome.DONE)
        self.terminated = action
        self._event(
            f"terminated at {action.log_position} in term {action.leadership_term_id}: {action.reason}"
        )

    def _open_egress(self, action: OpenEgress) -> None:
        self._close_egress(action.key)
        try:
            publication = self.transport.add_exclusive_publication(action.channel, action.stream_id)
        except TransportError as error:  # a client's bad channel is the client's problem, not the node's
            self._event(f"egress {action.key}: cannot open {action.channel!r}: {error}")
            return
        self._egress[action.key] = _Egress(publication, self._now() + EGRESS_CONNECT_TIMEOUT_NS, deque())

    def _event(self, text: str) -> None:
        if self.on_event is not None:
            self.on_event(LogEvent(self._now(), text))

    # ------------------------------------------------------------------ the log

    def _append(self, action: AppendLog, failed: bool) -> bool:
        """Append one entry (``AppendLog``); queue its answer; ``True`` once an append of the list failed."""
        publication = self._log_publication
        reason = "no log publication" if publication is None else ""
        result = 0
        if not failed and publication is not None:
            for _ in range(APPEND_ATTEMPTS):
                result = self._offer(publication, action)
                if result != ADMIN_ACTION:
                    break
            if result <= 0:
                reason = f"the log publication refused the entry ({result})"
        now_ns = self._now()
        if result > 0 and not failed:
            end = result
            self._answer(lambda: self.core.on_log_appended(now_ns, end))
            return False
        why = reason or "an earlier entry of the list failed"
        self._append_refused = True
        self._answer(lambda: self.core.on_log_append_failed(now_ns, why))
        return True

    def _offer(self, publication: Publication, action: AppendLog) -> int:
        if action.end_position_offset == NO_POSITION_FIELD:
            return publication.offer(action.message)
        # the entry carries its own end position: claim its frame to learn where it ends, then write it
        claim = self._claim
        result = publication.try_claim(len(action.message), claim)
        if result > 0:
            claim.buffer[:] = action.message
            _POSITION.pack_into(claim.buffer, action.end_position_offset, result)
            claim.commit()
        return result

    def _log_channel(self, request: LogRequest) -> str:
        """The leader's log publication channel for the term ``request`` starts."""
        uri = ChannelUri.parse(self.config.log_channel)
        term_length = self.config.log_term_length
        base = request.position
        uri = uri.with_params(
            control_mode="manual",
            # the publication's own address (status messages come back to it): an ephemeral port on this
            # member's log host, never the log endpoint, which this member binds when it follows
            control=f"{self.member.log.rsplit(':', 1)[0]}:0",
            init_term_id=0,
            term_id=base // term_length,
            term_offset=base % term_length,
            session_id=request.log_session_id,
            alias="log",
        )
        if len(self.config.members) == 1:
            uri = uri.with_param("ssc", True)  # only the archive's spy reads a one-member cluster's log
        return uri.build()

    def _log_request(self, request: LogRequest) -> None:
        self.leadership_term_id = request.leadership_term_id  # the term whose log this node now follows
        if request.kind == "publish":
            channel = self._log_channel(request)
            publication = self.transport.add_exclusive_publication(channel, self.config.log_stream_id)
            self._log_publication = publication
            self._log_session_id = request.log_session_id
            for member in self.config.members:
                if member.id != self.config.member_id:
                    self.transport.add_destination(publication, f"aeron:udp?endpoint={member.log}")
            self._record(channel, SourceLocation.LOCAL, "publish", request.position)
        elif request.kind in ("join", "catchup"):
            self._follow_log(request)
        elif request.kind == "replicate":
            leader = next(m for m in self.config.members if m.id == request.leader_id)
            self._replication_stop = request.stop_position
            self._replication_id = self.archive.replicate(
                request.leader_recording_id,
                self.log_recording_id,
                self.config.archive_control_stream_id,
                f"aeron:udp?endpoint={leader.archive}",
                stop_position=request.stop_position,
                replication_channel=self.config.archive_replication_channel,
            )

    def _follow_log(self, request: LogRequest) -> None:
        """A follower's log: a multi-destination subscription filtered on the term's log session, whose
        images the archive records REMOTE through the subscription's channel tag. Joining, its one
        destination is this member's log endpoint; catching up, it is first the catch-up endpoint (where
        the leader's archive replays the log from this member's position), and the live log endpoint is
        added once that image exists -- so the image starts at this member's position, and the live
        stream's frames, arriving ahead, wait in it until the replay has filled the gap (Aeron adds the
        live destination only once it is close; the image's merge makes the wait safe)."""
        self._close_log_subscription()
        self._log_tag += 1
        tag = self._log_tag
        channel = (
            ChannelUri.parse("aeron:udp")
            .with_params(control_mode="manual", session_id=request.log_session_id, tags=f"{tag}")
            .build()
        )
        subscription = self.transport.add_subscription(channel, self.config.log_stream_id)
        self._log_subscription = subscription
        first = self.member.log if request.kind == "join" else self.member.catchup
        self.transport.add_rcv_destination(subscription, f"aeron:udp?endpoint={first}")
        self._live_destination_wanted = request.kind == "catchup"
        self._log_session_id = request.log_session_id
        recorded = f"aeron:udp?tags={tag}|session-id={request.log_session_id}"
        self._record(recorded, SourceLocation.REMOTE, "join", request.position)

    def _close_log_subscription(self) -> None:
        if self._log_subscription is not None:
            self._log_subscription.close()
            self._log_subscription = None
        self._live_destination_wanted = False

    def _record(self, channel: str, location: SourceLocation, kind: str, position: int) -> None:
        stream_id = self.config.log_stream_id
        if self.log_recording_id >= 0:
            subscription_id = self.archive.extend_recording(
                self.log_recording_id, channel, stream_id, location
            )
        else:
            subscription_id = self.archive.start_recording(channel, stream_id, location)
        self._recording_subscription_id = subscription_id
        self._log_failure = None  # a failure of an earlier request is moot
        self._pending_log = _PendingLog(kind, subscription_id, position, self.archive.last_correlation_id)

    def _on_recording_signal(self, event: RecordingSignalEvent) -> None:
        signal = event.signal
        pending = self._pending_log
        if (
            pending is not None
            and event.subscription_id == pending.subscription_id
            and signal in (RecordingSignal.START, RecordingSignal.EXTEND)
        ):
            if event.position != pending.position:
                # a new recording of an image that joined the live log past this member's position
                # (the leader moved on since it said where the log was): the log would have a hole
                # handled from the duty cycle: this signal may come while an action waits on the archive,
                # and undoing the request takes archive requests of its own
                self._pending_log = None
                self._log_failure = (
                    f"the log image joined at {event.position}, not at the log's end {pending.position}"
                )
                return
            self._pending_log = None
            self._use_recording(event.recording_id)
            if self._live_destination_wanted and self._log_subscription is not None:
                # the catch-up image is there, at this member's position: the live log may join it now
                self._live_destination_wanted = False
                self.transport.add_rcv_destination(
                    self._log_subscription, f"aeron:udp?endpoint={self.member.log}"
                )
            now_ns = self._now()
            recording_id = event.recording_id
            if pending.kind == "publish":
                self._answer(lambda: self.core.on_log_published(now_ns, recording_id))
            else:
                position = pending.position
                self._answer(lambda: self.core.on_log_joined(now_ns, position, recording_id))
        elif (
            signal == RecordingSignal.STOP
            and self.role == "LEADER"
            and self._recording_subscription_id != NULL_VALUE
            and event.subscription_id == self._recording_subscription_id
            and event.recording_id == self.log_recording_id
        ):
            # the leader's log recording stopped and this node never asked (it forgets the subscription
            # first): someone else stopped it, and the subscription with it. (A follower's recording
            # stops whenever its leader's image goes: the heartbeat timeout covers that.)
            self._recording_subscription_id = NULL_VALUE
            reason = f"the log recording {event.recording_id} stopped at {event.position} unexpectedly"
            self._event(reason)
            self._execute(self.core.on_log_recording_stopped(self._now(), reason))
        elif (
            self._install is not None
            and event.correlation_id == self._install.replication_id
            and signal == RecordingSignal.REPLICATE_END
        ):
            install = self._install
            service_id = install.to_copy.popleft()[0]
            install.copied[service_id] = event.recording_id
            install.replication_id = NULL_VALUE
            self._install_next()
        elif event.correlation_id == self._replication_id and self._replication_id != NULL_VALUE:
            if signal == RecordingSignal.REPLICATE and event.position > self.append_position:
                # a new copy of a leader's log that was purged below where this member's log ends: it
                # would begin past that end and leave a hole no one can fill -- this member needs the
                # leader's snapshot instead (the replication fails; the core asks for snapshots)
                reason = (
                    f"the leader's log begins at {event.position}, after this member's log ends at "
                    f"{self.append_position}"
                )
                # forgotten before the request: the request's wait dispatches the replication's later
                # signals, which must not come here again -- a second stop, nested in the first, took the
                # first one's answer as unsolicited and dropped it, and the first waited for good
                replication_id, self._replication_id = self._replication_id, NULL_VALUE
                with contextlib.suppress(ArchiveError):  # it may have ended already: nothing to stop
                    self.archive.stop_replication(replication_id)
                self._event(f"log replication failed: {reason}")
                self._execute(self.core.on_replication_failed(self._now(), reason))
                return
            if signal in (RecordingSignal.REPLICATE, RecordingSignal.EXTEND):
                self._use_recording(event.recording_id)
            elif signal in (RecordingSignal.SYNC, RecordingSignal.REPLICATE_END):
                self._replication_id = NULL_VALUE
                self._use_recording(event.recording_id)
                now_ns = self._now()
                recording_id, position = event.recording_id, self._recorded_position()
                self._answer(lambda: self.core.on_replicated(now_ns, position, recording_id))
        if self._answers:
            self._execute(())

    def _use_recording(self, recording_id: int) -> None:
        """The log is recorded in ``recording_id``: follow its position counter."""
        self.log_recording_id = recording_id  # the log reader follows it (a new replay if it changed)
        self._position_counter = self.transport.counters_manager.find(
            RECORDING_POSITION_TYPE_ID,
            lambda key: len(key) >= 8 and int.from_bytes(key[:8], "little", signed=True) == recording_id,
        )

    def _recorded_position(self) -> int:
        """How far the log recording goes: the live counter's position, or the catalog's stop position."""
        counter = self._position_counter
        if counter is not None and not counter.is_closed:
            return counter.get()
        position = self.archive.get_max_recorded_position(self.log_recording_id)
        return max(position, 0)

    def _stop_log(self) -> None:
        """``StopLog``: stop every mover of the log, then answer with the recording's stop position."""
        self._stop_log_movers()
        stop = 0
        if self.log_recording_id >= 0:
            stop = self._await_stop_position()
        self._position_counter = None
        self.append_position = stop
        now_ns = self._now()
        self._answer(lambda: self.core.on_log_stopped(now_ns, stop))

    def _stop_log_movers(self) -> None:
        """Stop the log publication, its recording, the follower's subscription, a replication and the
        catch-up replays this member serves: nothing extends the log recording any more."""
        if self._log_publication is not None:
            self._log_publication.close()
            self._log_publication = None
        if self._recording_subscription_id != NULL_VALUE:
            self.archive.stop_recording_subscription(self._recording_subscription_id)
            self._recording_subscription_id = NULL_VALUE
        self._close_log_subscription()
        if self._replication_id != NULL_VALUE:
            self.archive.stop_replication(self._replication_id)
            self._replication_id = NULL_VALUE
        for replay in self._catchup_replays.values():
            self.archive.stop_replay(replay)
        self._catchup_replays.clear()
        self._pending_log = None
        self._log_failure = None

    def _await_stop_position(self) -> int:
        for _ in range(STOP_WAIT_CYCLES):
            position = self.archive.get_stop_position(self.log_recording_id)
            if position != NULL_POSITION:
                return position
        raise ConsensusAgentError(
            f"the archive did not stop recording {self.log_recording_id} after {STOP_WAIT_CYCLES} requests"
        )

    def _truncate(self, action: TruncateLog) -> None:
        skip = "skip_log_truncation" in self.canaries  # canary: the recording keeps its cut tail
        if self.log_recording_id >= 0 and self._recorded_position() > action.position and not skip:
            self.archive.stop_all_replays(self.log_recording_id)
            self.archive.truncate_recording(self.log_recording_id, action.position)
        self.recording_log.truncate_to(action.position, action.leadership_term_id, reopen=action.reopen)
        self.append_position = action.position

    # ------------------------------------------------------------------ catch-up from a snapshot

    def _begin_install(self, action: InstallSnapshot) -> None:
        """``InstallSnapshot``: copy the snapshot set and the log up to it from the member that holds
        them, one recording at a time (``_install_next``), through archive replication."""
        source = next((m for m in self.config.members if m.id == action.member_id), None)
        if source is None:
            self._install_failed(f"member {action.member_id} is not one of the members")
            return
        self._event(
            f"catching up from member {action.member_id}'s snapshot at {action.log_position} (term "
            f"{action.leadership_term_id}): its log no longer reaches back to {self.append_position}"
        )
        to_copy = deque(
            (service_id, recording_id, NULL_POSITION) for service_id, recording_id in action.recordings
        )
        to_copy.append((_LOG_COPY, action.log_recording_id, action.log_position))
        # from here the member acknowledges nothing: its log must not grow past what it told its leader,
        # for the copied log ends at the snapshot (sweep seed 67511: a catch-up went on while the copies
        # were made, the leader counted the member's positions beyond the snapshot, and the restart
        # dropped them)
        self._answers.clear()
        self._stop_log_movers()
        self._install = _Install(action, f"aeron:udp?endpoint={source.archive}", to_copy, {})
        self._install_next()

    def _install_next(self) -> None:
        install = self._install
        assert install is not None
        if not install.to_copy:
            self._install_done()
            return
        _, recording_id, stop_position = install.to_copy[0]
        try:
            install.replication_id = self.archive.replicate(
                recording_id,
                NULL_VALUE,
                self.config.archive_control_stream_id,
                install.source_channel,
                stop_position=stop_position,
                replication_channel=self.config.archive_replication_channel,
            )
        except ArchiveClientError as error:
            self._install_failed(f"the archive refused a copy: {error}")

    def _install_done(self) -> None:
        """Every copy is made: the recording log becomes the copied term and snapshots alone (written
        whole, synced and renamed over the old one), and the node is to start again on it."""
        install = self._install
        assert install is not None
        action = install.action
        log_id = install.copied[_LOG_COPY]
        descriptor = self.archive.list_recording(log_id)
        if descriptor is None or descriptor.start_position > action.log_position:
            start = "gone" if descriptor is None else f"starts at {descriptor.start_position}"
            self._install_failed(f"the copied log {start}, after the snapshot at {action.log_position}")
            return
        log = RecordingLog()
        term, base, position = action.leadership_term_id, action.term_base_log_position, action.log_position
        named_before = {entry.recording_id for entry in self.recording_log.log.entries}
        try:
            log.append_term(log_id, term, base, action.timestamp)
            for service_id, _ in action.recordings:
                log.append_snapshot(
                    install.copied[service_id], term, base, position, action.timestamp, service_id
                )
            self.recording_log.close()
            RecordingLogFile.replace(self._cluster_storage, log)
        except (RecordingLogError, StorageError) as error:
            self._install_failed(f"the recording log could not be written: {error}")
            return
        self._install = None
        self.restart = (
            f"caught up from member {action.member_id}'s snapshot at {position} (term {term}): "
            f"recordings {[install.copied[service_id] for service_id, _ in action.recordings]}, log {log_id}"
        )
        self._event(self.restart)
        # after ``restart`` is set, so the node stays quiesced: the purge's archive requests bring in
        # recording signals, and answers the core asked for before would otherwise run on the old
        # recording log, closed now
        self._purge_replaced(named_before - {entry.recording_id for entry in log.entries})

    def _purge_replaced(self, recording_ids: Iterable[int]) -> None:
        """Purge the recordings that the replaced recording log named and the new one does not: the old
        log and snapshots, which nothing reads again. Only once the new recording log is in place (a
        crash before leaves the member its old log); one the archive refuses stays, harmlessly."""
        purged = []
        for recording_id in sorted(recording_ids):
            try:
                self.archive.purge_recording(recording_id)
            except ArchiveClientError as error:
                self._event(f"kept the replaced recording {recording_id}: {error}")
            else:
                purged.append(recording_id)
        if purged:
            self._event(f"purged the replaced recordings {purged}")

    def _install_failed(self, reason: str) -> None:
        """An install that cannot go on: the node starts again on what it had (its recording log is
        only ever replaced whole, at the end), and may be asked again."""
        install = self._install
        if install is not None and install.replication_id != NULL_VALUE:
            with contextlib.suppress(ArchiveClientError):  # it may have ended by itself
                self.archive.stop_replication(install.replication_id)
        self._install = None
        self.restart = f"catch-up from a snapshot failed: {reason}"
        self._event(self.restart)

    def _start_catchup_replay(self, action: StartCatchupReplay) -> None:
        uri = ChannelUri.parse(self.config.follower_catchup_channel)
        channel = uri.with_params(
            endpoint=action.endpoint, linger=0, eos=False, session_id=action.log_session_id
        ).build()
        try:
            replay = self.archive.start_replay(
                self.log_recording_id, action.position, _MAX_LENGTH, channel, self.config.log_stream_id
            )
        except ArchiveClientError as error:
            # e.g. the log no longer reaches back to the follower's position (purged): the follower's
            # wait for the replay times out, and it asks for this member's snapshots instead
            self._event(f"catch-up replay for member {action.follower_member_id} refused: {error}")
            return
        self._catchup_replays[action.follower_member_id] = replay

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Stop the log and close the files and channels. Idempotent."""
        if self.is_closed:
            return
        self.is_closed = True
        try:
            if self._snapshot_recorder is not None:
                self._snapshot_recorder.close()
            for key in list(self._egress):
                self._close_egress(key)
            if self._log_publication is not None:
                self._log_publication.close()
            if self._recording_subscription_id != NULL_VALUE and not self.archive.is_closed:
                self.archive.stop_recording_subscription(self._recording_subscription_id)
        finally:
            self._close_all()

    def _close_all(self) -> None:
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            close()


DRIVER_CANARIES: Final[dict[str, str]] = {
    # deliberately broken variants of this driver, for the simulator's checkers to catch
    "ack_before_durable": "report the log's position as the transport has it, before the archive records it",
    "vote_before_persist": "write the candidate term a vote grants without syncing it (file-sync level 1+)",
    "skip_log_truncation": "cut the term history but leave the archive's recording of the log uncut",
    "deliver_before_commit": "let the services read as far as the log is appended, not committed",
    "local_reads": "a member that believes it leads answers key-value reads from its own state, unlogged",
}


class ConsensusAgentError(Exception):
    """The agent's world broke a promise it relies on (the archive did not answer as it must)."""


_MAX_LENGTH: Final = (1 << 63) - 1  # a replay with no end: it follows the live recording


def _drop(buffer: memoryview, header: object) -> None:
    """A follower's live log image is recorded by the archive; the node reads its log back from the
    recording (``RecordingFollower``), so this subscription only keeps up."""
