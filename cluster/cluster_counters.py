"""The counters a node's consensus module keeps for its services and tools, and how they are keyed.

Aeron's type ids carry over, so a counters file of ours reads like Aeron's: the node role (201: 0 follower,
1 candidate, 2 leader) and the commit position (203: how far the services may read the log). Both are keyed
by the cluster id, an int32 little-endian, so several clusters can share one transport. The log read limit
is ours: how far the consensus module reads its own log back (docs/sessions.md).
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = [
    "COMMIT_POSITION_TYPE_ID",
    "LOG_READ_LIMIT_TYPE_ID",
    "NODE_ROLE_TYPE_ID",
    "cluster_counter_key",
]

NODE_ROLE_TYPE_ID: Final = 201  # "Cluster node role: clusterId=<id>"
COMMIT_POSITION_TYPE_ID: Final = 203  # "Cluster commit-pos: clusterId=<id>"
LOG_READ_LIMIT_TYPE_ID: Final = 1_100  # ours: "Cluster log read limit: memberId=<id>"

_CLUSTER_ID_KEY = struct.Struct("<i")


def cluster_counter_key(cluster_id: int) -> bytes:
    """The key of a cluster's commit-position and node-role counters: the cluster id, int32 little-endian."""
    return _CLUSTER_ID_KEY.pack(cluster_id)
