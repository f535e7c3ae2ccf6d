"""Actions: everything the sans-IO consensus core asks the world to do, in the order it must happen.

Theory of operation
-------------------
The core never performs I/O. Each call (a message, a tick, a report from the local log) returns a list of
actions; the *driver* -- the real node agent, the simulator, a transcript test -- executes them **in list
order**, and that order is a contract:

* **Durable before visible.** A ``Persist*`` action must be complete (written and, for a real node,
  synced) before any later action in the same list is executed. Raft's safety rests on it: the candidate
  term id is durable before a Vote or RequestVote that depends on it leaves (a restarted node never votes
  twice in a term), a recording-log TERM entry is durable before the node acts as part of that term. The
  driver enforces it by executing the list strictly in order, completing each durable action first; the
  simulator also checks every RequestVote and Vote as it leaves against the durable candidate term.
* **Local log before reports.** ``AppendLog`` bytes are appended to the local log in order; the core
  learns that they are durable only when the driver reports the new append position back
  (``ConsensusCore.on_append_position``). The core never counts its own append before that report: a
  leader's own position enters the quorum only once its archive has it, as in Aeron.
* **Commit last.** ``Commit`` hands a position to the services; the driver must not let a service
  consume beyond the highest ``Commit`` position it has executed.

Messages travel as bytes encoded with the generated codecs of ``aeron-cluster-codecs.xml`` (the only
message format, in the simulator too): ``Send.message`` is a whole SBE message, header included.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Action",
    "AppendLog",
    "Broadcast",
    "Commit",
    "LogRequest",
    "PersistCandidateTerm",
    "PersistTerm",
    "RoleChange",
    "Send",
    "StateChange",
    "TruncateLog",
]


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` (an encoded SBE message) to member ``to`` on the consensus stream."""

    to: int
    message: bytes


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send ``message`` to every other member on the consensus stream."""

    message: bytes


@dataclass(frozen=True, slots=True)
class AppendLog:
    """Append one log entry (an encoded SBE message, plus its application payload) to the log at
    ``position``, the position the entry starts at; only a leader appends."""

    position: int
    message: bytes


@dataclass(frozen=True, slots=True)
class PersistCandidateTerm:
    """Make ``candidate_term_id`` durable (node-state file) before anything after this action."""

    candidate_term_id: int


@dataclass(frozen=True, slots=True)
class PersistTerm:
    """Make a recording-log TERM entry durable: term ``leadership_term_id`` starts at
    ``term_base_log_position`` (and the previous term ends there)."""

    leadership_term_id: int
    term_base_log_position: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class TruncateLog:
    """Cut the local log back to ``position`` (a deposed leader's uncommitted tail, or terms the leader
    never had), and the recording log with it: a TERM entry starting at or after ``position`` goes, and
    the last one left is open again. Durable before anything after this action."""

    position: int


@dataclass(frozen=True, slots=True)
class LogRequest:
    """Ask the driver for log data this node lacks: ``kind`` is ``"replicate"`` (copy the leader's log
    up to ``stop_position`` into the local log), ``"catchup"`` (receive the leader's log live from
    ``position``), ``"join"`` (follow the live log of the term from ``position``) or ``"publish"``
    (as leader, start the log publication of the term at ``position``)."""

    kind: str
    leader_id: int
    leadership_term_id: int
    position: int
    stop_position: int = -1
    log_session_id: int = 0


@dataclass(frozen=True, slots=True)
class Commit:
    """The services may consume the log up to ``position``."""

    position: int


@dataclass(frozen=True, slots=True)
class StateChange:
    """The election moved ``from_state`` -> ``to_state`` for ``reason`` (for logs and transcripts)."""

    from_state: str
    to_state: str
    reason: str


@dataclass(frozen=True, slots=True)
class RoleChange:
    """The node's role is now ``role`` (FOLLOWER, CANDIDATE or LEADER) in ``leadership_term_id``."""

    role: str
    leadership_term_id: int


Action = (
    Send
    | Broadcast
    | AppendLog
    | PersistCandidateTerm
    | PersistTerm
    | TruncateLog
    | LogRequest
    | Commit
    | StateChange
    | RoleChange
)
