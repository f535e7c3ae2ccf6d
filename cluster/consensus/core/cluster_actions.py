"""Cluster actions, sans-IO: the consensus module's state (Aeron's ``ConsensusModule.State``) and the
bookkeeping of a snapshot in progress -- which services have acknowledged it, with which recordings.

Theory of operation
-------------------
A leader orders a cluster-wide action by appending a ClusterActionRequest to the log; every member acts on
it when it reads it (the leader: when it appends it). SUSPEND makes the module SUSPENDED and RESUME makes
it ACTIVE again; SNAPSHOT makes it SNAPSHOT until the snapshot at the action's log position P is taken or
given up. Only an ACTIVE leader takes client messages, fires timers and appends services' messages, so
nothing follows P in the log while a snapshot is taken, and a member's state stays the state at P (its
reading of the log pauses at P too).

**Acknowledgements.** Each service answers a snapshot with a ServiceAck at P whose relevant id is its
snapshot's recording id, or -1 when it failed. A JoinLog at P (a new term that begins right where the
action ended, after the leader died, say) is acknowledged at P with -1 too, so ``SnapshotAcks`` keeps
every ack at P per service and counts the JoinLogs at P the module sent: a service has answered once an
ack at P names a recording (success) or it sent more -1 acks at P than there were JoinLogs at P (failure).
The module takes its own snapshot only once every service succeeded; with one failure it takes none and
writes no recording-log entry (Aeron's rule).

**Requests.** An operator asks the leader for an action through the control toggle (``ToggleState``,
Aeron's values; the node's ``cluster-control.dat`` carries it, docs/admin-tool.md). Only a leader whose
election is over acts on one, and only from the state the action leaves: SNAPSHOT, SUSPEND and SHUTDOWN
from ACTIVE, RESUME from SUSPENDED, ABORT from either. The core answers a request at once with a
``ControlOutcome``: ACCEPTED, NOT_LEADER or REFUSED; whoever asked watches the module for the result.

**Termination.** SHUTDOWN appends a SNAPSHOT action and tells the followers, with TerminationPosition,
to stop where it ends; ABORT tells them to stop at the leader's append position, without a snapshot.
Every member, once that position is committed and it has read its log to there (and taken the
snapshot there, for a shutdown), is TERMINATING: it tells its services the position
(ServiceTerminationPosition), waits for each to acknowledge it, and stops -- a follower after a
TerminationAck to the leader, the leader once every follower acknowledged or the termination timeout
passed. A member that enters an election before it is TERMINATING gives the stop up: the next leader's
log may cut the position or fill it with other entries.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["ControlOutcome", "ModuleState", "SnapshotAcks", "Termination", "ToggleState"]


class ModuleState(enum.IntEnum):
    """Aeron's consensus module states (the values of its state counter)."""

    INIT = 0
    ACTIVE = 1
    SUSPENDED = 2
    SNAPSHOT = 3
    QUITTING = 4
    TERMINATING = 5
    CLOSED = 6


class ToggleState(enum.IntEnum):
    """Aeron's cluster control toggle: what an operator asks of the leader. INACTIVE: no node runs;
    NEUTRAL: nothing asked, or the last request is over."""

    INACTIVE = 0
    NEUTRAL = 1
    SUSPEND = 2
    RESUME = 3
    SNAPSHOT = 4
    SHUTDOWN = 5
    ABORT = 6
    STANDBY_SNAPSHOT = 7


class ControlOutcome(enum.IntEnum):
    """How a node answered a control request (ours; ``cluster-control.dat``'s reply)."""

    NONE = 0  # not answered yet
    ACCEPTED = 1  # the leader took it on
    DONE = 2  # the action is in the log (and, for a snapshot, taken)
    FAILED = 3  # taken on, then lost: an election, or a service could not take its snapshot
    NOT_LEADER = 4  # this member does not lead, or its election is not over
    REFUSED = 5  # the module is not in a state to do it, or another request is in progress
    UNSUPPORTED = 6  # an action this node does not take (STANDBY_SNAPSHOT, an unknown value)


@dataclass(slots=True)
class Termination:
    """Where this member stops, and how far it got (see the module docstring)."""

    leadership_term_id: int
    log_position: int
    services_told: bool = False  # ServiceTerminationPosition sent
    acks_before: tuple[int, ...] = ()  # each service's last ack id when it was told
    services_done: bool = False  # every service acknowledged the position
    acked_by: set[int] = field(default_factory=set)  # leader: the followers that sent TerminationAck
    deadline_ns: int = 0  # leader: when it stops waiting for TerminationAcks


@dataclass(slots=True)
class SnapshotAcks:
    """The snapshot at ``log_position`` in progress (see the module docstring)."""

    log_position: int
    leadership_term_id: int
    timestamp: int
    service_count: int
    acks: list[list[int]] = field(default_factory=list)  # per service: the relevant ids of acks at P
    join_logs: int = 0  # JoinLogs at P sent to the services
    recording: bool = False  # the module's own snapshot is being recorded
    canary_results: list[int] | None = None  # canary snapshot_before_acks: the services' ids it wrote

    def __post_init__(self) -> None:
        if not self.acks:
            self.acks = [[] for _ in range(self.service_count)]

    def on_ack(self, service_id: int, log_position: int, relevant_id: int) -> None:
        if log_position == self.log_position and 0 <= service_id < self.service_count:
            self.acks[service_id].append(relevant_id)

    def on_join_log(self, log_position: int) -> None:
        if log_position == self.log_position:
            self.join_logs += 1

    def service_result(self, service_id: int) -> int | None:
        """The service's snapshot recording id, -1 for a failed snapshot, ``None`` while it has not
        answered."""
        acks = self.acks[service_id]
        for relevant_id in acks:
            if relevant_id >= 0:
                return relevant_id
        return -1 if len(acks) > self.join_logs else None

    def results(self) -> list[int] | None:
        """Every service's result (see ``service_result``) once all have answered, else ``None``."""
        results = [self.service_result(service_id) for service_id in range(self.service_count)]
        if any(result is None for result in results):
            return None
        return [result for result in results if result is not None]
