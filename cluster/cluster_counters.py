"""The counters a node's consensus module keeps for its services and tools, and how they are keyed.

Aeron's type ids carry over, so a counters file of ours reads like Aeron's: the node role (201: 0 follower,
1 candidate, 2 leader) and the commit position (203: how far the services may read the log). Both are keyed
by the cluster id, an int32 little-endian, so several clusters can share one transport. The recovery state
(204) tells a starting node's services where the consensus module began, in Aeron's key layout
(``RecoveryState``). The log read limit is ours: how far the consensus module reads its own log back
(docs/sessions.md).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

__all__ = [
    "COMMIT_POSITION_TYPE_ID",
    "LOG_READ_LIMIT_TYPE_ID",
    "NODE_ROLE_TYPE_ID",
    "RECOVERY_STATE_TYPE_ID",
    "RecoveryState",
    "cluster_counter_key",
]

NODE_ROLE_TYPE_ID: Final = 201  # "Cluster node role: clusterId=<id>"
COMMIT_POSITION_TYPE_ID: Final = 203  # "Cluster commit-pos: clusterId=<id>"
RECOVERY_STATE_TYPE_ID: Final = 204  # "Cluster recovery: leadershipTermId=... logPosition=... ..."
LOG_READ_LIMIT_TYPE_ID: Final = 1_100  # ours: "Cluster log read limit: memberId=<id>"

_CLUSTER_ID_KEY = struct.Struct("<i")


def cluster_counter_key(cluster_id: int) -> bytes:
    """The key of a cluster's commit-position and node-role counters: the cluster id, int32 little-endian."""
    return _CLUSTER_ID_KEY.pack(cluster_id)


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
