"""Actions: everything the sans-IO consensus core asks the world to do, in the order it must happen.

Theory of operation
-------------------
The core never performs I/O. Each call (a message, a tick, an answer from the local log) returns a list
of actions; the *driver* -- the node agent, in a real process and in the simulator alike -- executes them
**in list order**, and that order is a contract (docs/consensus.md, "The driver contract"):

* **Durable before visible.** ``PersistCandidateTerm``, ``PersistTerm``, ``PersistSnapshot`` and
  ``TruncateLog`` are complete (written and synced at the node's file-sync level) before any later
  action of the same list is executed. Raft's safety rests on it: the candidate term id is durable
  before a Vote or RequestVote that depends on it leaves, a recording-log TERM entry is durable before
  the node acts in that term.
* **One term history.** ``PersistTerm``, ``PersistSnapshot`` and ``TruncateLog`` are operations of the
  recording-log model (``RecordingLog.append_term``, ``append_snapshot`` and ``truncate_to``) that the
  core has already applied to its own copy; the driver applies the same operation to ``recording.log``,
  so the file and the core never disagree.
* **The local log reports back.** The core learns what its log holds only from the driver:
  ``on_append_position`` (durably recorded up to), ``on_log_appended`` / ``on_log_append_failed`` (the
  answer to each ``AppendLog``), ``on_log_stopped`` (the answer to ``StopLog``: the recording's stop
  position), ``on_log_published`` / ``on_log_joined`` / ``on_replicated`` (answers to ``LogRequest``,
  each naming the log's recording id), ``on_snapshot_recorded`` (the answer to ``RecordSnapshot``). A
  leader's own position enters the quorum only once its archive has it, as in Aeron.
* **Answers after the list.** The driver delivers those answers only after it has executed the whole
  list that asked for them, in the order the requests were made -- never into the middle of a list.
* **Commit last.** ``Commit`` hands a position to the services; the driver must not let a service
  consume beyond the highest ``Commit`` position it has executed.
* ``StateChange`` is for logs, transcripts and checkers, and for one duty of the driver: it drops the
  ``Send`` messages it holds for another try (``Send.until_ns``), which belong to the state left.

Messages travel as bytes encoded with the generated codecs of ``aeron-cluster-codecs.xml`` (the only
message format, in the simulator too): ``Send.message`` is a whole SBE message, header included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "NO_POSITION_FIELD",
    "Action",
    "AppendLog",
    "Broadcast",
    "CloseEgress",
    "Commit",
    "InstallSnapshot",
    "LogRequest",
    "OpenEgress",
    "PersistCandidateTerm",
    "PersistSnapshot",
    "PersistTerm",
    "ReadLog",
    "RecordSnapshot",
    "RoleChange",
    "Send",
    "SendEgress",
    "ServiceControl",
    "StartCatchupReplay",
    "StateChange",
    "StopCatchupReplay",
    "StopLog",
    "Terminate",
    "TruncateLog",
]

NO_POSITION_FIELD: Final = -1
"""``AppendLog.end_position_offset`` of an entry that carries no position of its own."""


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` (an encoded SBE message) to member ``to`` on the consensus stream.

    A message the publication refuses (not connected yet, back-pressured) is lost, unless ``until_ns``
    is set: then the driver offers it again each duty cycle until it is taken, the time ``until_ns``
    passes, or the election changes state. A candidate's RequestVote goes this way: Aeron's candidate
    sends it to each member once, retrying the offer until it is taken, so a member whose consensus
    channel connects during the ballot still hears it (a member restarted a moment after the others
    otherwise sits the ballot out, and the ballot lasts its whole timeout)."""

    to: int
    message: bytes
    until_ns: int = -1


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send ``message`` to every other member on the consensus stream."""

    message: bytes


@dataclass(frozen=True, slots=True)
class AppendLog:
    """Append one log entry (an encoded SBE message, plus its application payload) to the log
    publication, after every entry appended before it; only a leader appends.

    Where the entry lands is the publication's business: the driver answers, after the list, with
    ``on_log_appended(end)`` (the log position after the entry) or ``on_log_append_failed(reason)``
    (back pressure, a publication that is not connected or is closed). Once one ``AppendLog`` of a list
    has failed, every later one of that list fails too, so the log never holds entries out of the core's
    order. A client's entry that failed is the driver's to offer again later (back pressure to the
    client).

    ``end_position_offset``, unless ``NO_POSITION_FIELD``: the entry carries its own end position (the
    ``logPosition`` of NewLeadershipTermEvent and ClusterActionRequest), so the driver writes the log
    position after the entry, an int64 little-endian, at that offset of ``message`` as it appends it."""

    message: bytes
    end_position_offset: int = NO_POSITION_FIELD


@dataclass(frozen=True, slots=True)
class PersistCandidateTerm:
    """Make ``candidate_term_id`` durable (node-state file) before anything after this action."""

    candidate_term_id: int


@dataclass(frozen=True, slots=True)
class PersistTerm:
    """Make a recording-log TERM entry durable: ``RecordingLog.append_term(recording_id,
    leadership_term_id, term_base_log_position, timestamp)``, which also closes an open previous term
    at this base."""

    recording_id: int
    leadership_term_id: int
    term_base_log_position: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class TruncateLog:
    """Cut the local log recording back to ``position`` (through the archive, with no replay of it
    running), then ``RecordingLog.truncate_to(position, leadership_term_id, reopen=reopen)`` on the
    recording log: term ``leadership_term_id`` holds the cut (``-1``: no term does, and every term's
    entries go), every later term's entries go. Durable before anything after this action."""

    position: int
    leadership_term_id: int
    reopen: bool


@dataclass(frozen=True, slots=True)
class StopLog:
    """A new election starts: stop everything that moves the log -- the log publication (a leader), the
    log subscription and its catch-up destination (a follower), the recording of the log, archive
    replication, and every catch-up replay this node serves. The driver answers, after the list, with
    ``on_log_stopped(stop_position)``: the recording's stop position, which is the node's append
    position for the election (bytes that were received but never recorded are not in the log)."""


@dataclass(frozen=True, slots=True)
class LogRequest:
    """Ask the driver to start moving log data from the leader ``leader_id`` of term
    ``leadership_term_id``. ``kind``:

    * ``"publish"`` (a leader): start the log publication of term ``leadership_term_id`` at
      ``position`` with session ``log_session_id``, and record it (LOCAL, extending the node's log
      recording); answered by ``on_log_published(recording_id)``;
    * ``"replicate"``: copy the leader's log recording ``leader_recording_id`` from ``position`` up to
      ``stop_position`` into the local log recording through archive replication; progress comes as
      ``on_append_position``, the end as ``on_replicated(position, recording_id)``, a failure as
      ``on_replication_failed(reason)``;
    * ``"catchup"``: receive the leader's catch-up replay (session ``log_session_id``) from ``position``
      on this node's catch-up endpoint, then the live log, recorded (REMOTE); answered by
      ``on_log_joined(position, recording_id)`` once the log image is there;
    * ``"join"``: follow the live log of the term from ``position`` (session ``log_session_id``),
      recorded (REMOTE); answered by ``on_log_joined(position, recording_id)``.

    A ``publish``, ``catchup`` or ``join`` that cannot be recorded from ``position`` (the image joined
    elsewhere, the archive refused to extend the recording) is answered by ``on_log_failed(reason)``."""

    kind: str
    leader_id: int
    leadership_term_id: int
    position: int
    stop_position: int = -1
    log_session_id: int = 0
    leader_recording_id: int = -1


@dataclass(frozen=True, slots=True)
class StartCatchupReplay:
    """A leader: replay the log recording from ``position`` to member ``follower_member_id``'s catch-up
    ``endpoint``, as session ``log_session_id`` on the log stream, until ``StopCatchupReplay`` or
    ``StopLog``."""

    follower_member_id: int
    position: int
    endpoint: str
    log_session_id: int


@dataclass(frozen=True, slots=True)
class StopCatchupReplay:
    """A leader: stop the catch-up replay serving member ``follower_member_id``, which has reached the
    live log."""

    follower_member_id: int


@dataclass(frozen=True, slots=True)
class Commit:
    """The services may consume the log up to ``position``."""

    position: int


@dataclass(frozen=True, slots=True)
class ReadLog:
    """Read the local log back from ``position`` up to ``limit`` and hand each whole entry to
    ``on_log_entry(message, end position)`` (and a position reached with no entry ending there -- a
    term's padding -- to ``on_log_position``). A reader already at ``position`` goes on from where it
    is; one elsewhere starts again at ``position``. ``limit`` never exceeds what the log durably holds;
    ``limit == position`` stops the reading (a leader applies its own entries as it appends them)."""

    position: int
    limit: int


@dataclass(frozen=True, slots=True)
class OpenEgress:
    """Open an egress publication, known by ``key``, to a client's response ``channel`` and
    ``stream_id`` (a session's key is its cluster session id; a redirect's is negative). The driver
    reports it with ``on_egress_connected(key)`` once it is connected."""

    key: int
    channel: str
    stream_id: int


@dataclass(frozen=True, slots=True)
class SendEgress:
    """Send ``message`` (a whole SBE message) on egress ``key``. The driver holds it, in order, until
    the publication is connected (a bounded wait: an egress nobody answers is dropped with what it
    holds); a message the connected publication still refuses after a few tries is lost, as Aeron's
    egress publisher loses it -- a client that misses an event times out and acts on that."""

    key: int
    message: bytes


@dataclass(frozen=True, slots=True)
class CloseEgress:
    """Close egress ``key`` once what it holds has been sent (or dropped)."""

    key: int


@dataclass(frozen=True, slots=True)
class RecordSnapshot:
    """Record ``messages`` -- the consensus module's snapshot at ``log_position``, BEGIN to END
    (``cluster.snapshots``) -- as a new recording of the local archive. The driver answers, after the
    list, with ``on_snapshot_recorded(recording_id, reason)``: the recording's id once it holds every
    message, or -1 and why it could not."""

    log_position: int
    messages: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class PersistSnapshot:
    """Add these SNAPSHOT entries to ``recording.log``, in this order, and make them durable together
    before the next action: each ``(recording_id, leadership_term_id, term_base_log_position,
    log_position, timestamp, service_id)``, the services' first and the consensus module's (service id
    -1) last -- ``RecordingLog.put_snapshot``, already applied to the core's copy."""

    entries: tuple[tuple[int, int, int, int, int, int], ...]


@dataclass(frozen=True, slots=True)
class ServiceControl:
    """Send ``message`` (JoinLog, ...) to this member's services on the service control stream (104)."""

    message: bytes


@dataclass(frozen=True, slots=True)
class Terminate:
    """The member stops, in order: the cluster was shut down or aborted at ``log_position`` of term
    ``leadership_term_id`` and its services have acknowledged it (``reason`` says how it ended). The
    driver marks the term's end there in ``recording.log`` and closes the node; the core does nothing
    more."""

    leadership_term_id: int
    log_position: int
    reason: str


@dataclass(frozen=True, slots=True)
class StateChange:
    """The election moved ``from_state`` -> ``to_state`` for ``reason``: for logs, transcripts and
    checkers; a driver acts on it only to drop the ``Send`` messages it holds (``Send.until_ns``)."""

    from_state: str
    to_state: str
    reason: str


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """Replace this member's log with a snapshot set copied from member ``member_id`` (docs/consensus.md,
    "Catch-up from a snapshot"): the member's log could not be brought up to date from the leader's,
    whose log no longer reaches back to where this member's ends, and that member holds a snapshot
    beyond it. The driver copies each snapshot recording of ``recordings`` (``(service id, recording id
    at the source)``: the services', then the consensus module's, -1) and the source's log recording
    ``log_recording_id`` up to ``log_position`` into the local archive, writes a recording log that
    holds only term ``leadership_term_id`` (from ``term_base_log_position``, in the copied log) and the
    copied snapshots at ``log_position``, and starts the member again on it. If any step fails, it
    starts the member again on what it had. The core does nothing more once it has asked."""

    member_id: int
    log_recording_id: int
    leadership_term_id: int
    term_base_log_position: int
    log_position: int
    timestamp: int
    recordings: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class RoleChange:
    """The node's role is now ``role`` (FOLLOWER, CANDIDATE or LEADER) in ``leadership_term_id``."""

    role: str
    leadership_term_id: int


Action = (
    Send
    | Broadcast
    | ReadLog
    | OpenEgress
    | SendEgress
    | CloseEgress
    | ServiceControl
    | AppendLog
    | PersistCandidateTerm
    | PersistTerm
    | PersistSnapshot
    | RecordSnapshot
    | Terminate
    | TruncateLog
    | StopLog
    | LogRequest
    | StartCatchupReplay
    | StopCatchupReplay
    | Commit
    | InstallSnapshot
    | StateChange
    | RoleChange
)
