"""The counters a node's consensus module keeps for its services and tools, and how they are keyed.

Aeron's type ids carry over, so a counters file of ours reads like Aeron's: the node role (201: 0 follower,
1 candidate, 2 leader) and the commit position (203: how far the services may read the log). Both are keyed
by the cluster id, an int32 little-endian, so several clusters can share one transport. The recovery state
(204) tells a starting node's services where the consensus module began, in Aeron's key layout
(``RecoveryState``). The log read limit is ours: how far the consensus module reads its own log back
(docs/sessions.md).

Snapshot durations, as Aeron keeps them: the longest whole snapshot in nanoseconds (234: from the moment
the consensus module enters SNAPSHOT until the snapshot is taken) and how many took longer than
``cluster.total.snapshot.threshold`` (235), keyed by the cluster id; and per service, the longest of its
own snapshots (236: from the ClusterActionRequest read until its recording is done) and how many took
longer than ``cluster.service.snapshot.threshold`` (237), keyed by the cluster id and the service id.
``SnapshotDurationTracker`` keeps each pair.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from cluster.transport.counters import Counter

__all__ = [
    "COMMIT_POSITION_TYPE_ID",
    "LOG_READ_LIMIT_TYPE_ID",
    "NODE_ROLE_TYPE_ID",
    "RECOVERY_STATE_TYPE_ID",
    "SERVICE_MAX_SNAPSHOT_DURATION_TYPE_ID",
    "SERVICE_SNAPSHOT_DURATION_THRESHOLD_EXCEEDED_TYPE_ID",
    "TOTAL_MAX_SNAPSHOT_DURATION_TYPE_ID",
    "TOTAL_SNAPSHOT_DURATION_THRESHOLD_EXCEEDED_TYPE_ID",
    "RecoveryState",
    "SnapshotDurationTracker",
    "cluster_counter_key",
    "service_counter_key",
]

NODE_ROLE_TYPE_ID: Final = 201  # "Cluster node role: clusterId=<id>"
COMMIT_POSITION_TYPE_ID: Final = 203  # "Cluster commit-pos: clusterId=<id>"
RECOVERY_STATE_TYPE_ID: Final = 204  # "Cluster recovery: leadershipTermId=... logPosition=... ..."
LOG_READ_LIMIT_TYPE_ID: Final = 1_100  # ours: "Cluster log read limit: memberId=<id>"
TOTAL_MAX_SNAPSHOT_DURATION_TYPE_ID: Final = 234
TOTAL_SNAPSHOT_DURATION_THRESHOLD_EXCEEDED_TYPE_ID: Final = 235
SERVICE_MAX_SNAPSHOT_DURATION_TYPE_ID: Final = 236
SERVICE_SNAPSHOT_DURATION_THRESHOLD_EXCEEDED_TYPE_ID: Final = 237

_CLUSTER_ID_KEY = struct.Struct("<i")


def cluster_counter_key(cluster_id: int) -> bytes:
    """The key of a cluster's commit-position and node-role counters: the cluster id, int32 little-endian."""
    return _CLUSTER_ID_KEY.pack(cluster_id)


_SERVICE_KEY = struct.Struct("<ii")


def service_counter_key(cluster_id: int, service_id: int) -> bytes:
    """The key of a service's counters: the cluster id and the service id, int32 little-endian each."""
    return _SERVICE_KEY.pack(cluster_id, service_id)


class SnapshotDurationTracker:
    """The longest snapshot and the count of those longer than ``threshold_ns``, in two counters: a
    snapshot ``begin`` s, then ``end`` s (``taken``: only a snapshot taken is measured)."""

    def __init__(self, longest: Counter, exceeded: Counter, threshold_ns: int) -> None:
        self.longest = longest
        self.exceeded = exceeded
        self.threshold_ns = threshold_ns
        self._began_ns: int | None = None

    @property
    def in_progress(self) -> bool:
        return self._began_ns is not None

    def begin(self, now_ns: int) -> None:
        self._began_ns = now_ns

    def end(self, now_ns: int, *, taken: bool = True) -> None:
        began, self._began_ns = self._began_ns, None
        if began is None or not taken:
            return
        duration = now_ns - began
        self.longest.propose_max(duration)
        if duration > self.threshold_ns:
            self.exceeded.set(self.exceeded.get() + 1)

    def close(self) -> None:
        self.longest.close()
        self.exceeded.close()


_RECOVERY_HEAD = struct.Struct("<qqqii")  # leadershipTermId, logPosition, timestamp, clusterId, serviceCount
_RECORDING_ID = struct.Struct("<q")


@dataclass(frozen=True, slots=True)
class RecoveryState:
    """Where a starting consensus module began: the snapshot's term, position and time (-1, 0 and 0
    without one), and each service's snapshot recording id (-1: none), as Aeron's recovery-state
    counter's key holds them."""

    leadership_term_id: int
    log_position: int
    timestamp: int
    cluster_id: int
    snapshot_recording_ids: tuple[int, ...]

    def key(self) -> bytes:
        return _RECOVERY_HEAD.pack(
            self.leadership_term_id,
            self.log_position,
            self.timestamp,
            self.cluster_id,
            len(self.snapshot_recording_ids),
        ) + b"".join(_RECORDING_ID.pack(recording_id) for recording_id in self.snapshot_recording_ids)

    @classmethod
    def from_key(cls, key: bytes) -> RecoveryState | None:
        """The state a counter's key holds, or ``None`` for a key of another shape."""
        if len(key) < _RECOVERY_HEAD.size:
            return None
        term, position, timestamp, cluster_id, count = _RECOVERY_HEAD.unpack_from(key)
        if count < 0 or len(key) < _RECOVERY_HEAD.size + count * _RECORDING_ID.size:
            return None
        ids = tuple(
            _RECORDING_ID.unpack_from(key, _RECOVERY_HEAD.size + i * _RECORDING_ID.size)[0]
            for i in range(count)
        )
        return cls(term, position, timestamp, cluster_id, ids)

    def snapshot_recording_id(self, service_id: int) -> int:
        ids = self.snapshot_recording_ids
        return ids[service_id] if 0 <= service_id < len(ids) else -1
