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
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["ModuleState", "SnapshotAcks"]


class ModuleState(enum.IntEnum):
    """Aeron's consensus module states (the values of its state counter)."""

    INIT = 0
    ACTIVE = 1
    SUSPENDED = 2
    SNAPSHOT = 3
    QUITTING = 4
    TERMINATING = 5
    CLOSED = 6


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
