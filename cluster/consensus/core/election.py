"""Election states and roles, with Aeron's stable codes (the values of its election-state counter).

The state machine that moves between them is ``cluster.consensus.core.node.ConsensusCore``; every move
goes through its one ``_transition`` function, which records the reason.
"""

from __future__ import annotations

import enum

__all__ = ["ElectionState", "Role"]


class ElectionState(enum.IntEnum):
    """Aeron's ``ElectionState``: the code is what the election-state counter shows."""

    INIT = 0
    CANVASS = 1
    NOMINATE = 2
    CANDIDATE_BALLOT = 3
    FOLLOWER_BALLOT = 4
    LEADER_LOG_REPLICATION = 5
    LEADER_REPLAY = 6
    LEADER_INIT = 7
    LEADER_READY = 8
    FOLLOWER_LOG_REPLICATION = 9
    FOLLOWER_REPLAY = 10
    FOLLOWER_CATCHUP_INIT = 11
    FOLLOWER_CATCHUP_AWAIT = 12
    FOLLOWER_CATCHUP = 13
    FOLLOWER_LOG_INIT = 14
    FOLLOWER_LOG_AWAIT = 15
    FOLLOWER_READY = 16
    CLOSED = 17


class Role(enum.IntEnum):
    """Aeron's ``Cluster.Role``."""

    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
