"""Consensus settings: Aeron's defaults, checked once, in nanoseconds.

The settings, their Aeron names and defaults are in docs/consensus.md, "Configuration defaults".

Theory of operation
-------------------
A ``ConsensusConfig`` is an immutable, always-valid value: ``__post_init__`` checks every field, so code
holding one never re-checks. Durations are integers in nanoseconds (``_ns`` names) with Aeron's
defaults; a node is ``member_id`` within the static ``members``. ``from_member_string`` builds one from
the ``aeron.cluster.members`` text, with keyword overrides for any other field.

Checks, each failure a ``ConfigError`` naming the field:

* every duration is a positive int (bools are not ints here);
* ``startup_canvass_timeout_ns >= 2 * leader_heartbeat_timeout_ns`` (Aeron checks this at start-up);
* ``leader_heartbeat_interval_ns < leader_heartbeat_timeout_ns`` (ours: otherwise a healthy leader
  times out between its own heartbeats; docs/consensus.md, "Departures from Aeron");
* ``member_id`` is one of ``members``; ``appointed_leader_id`` is -1 or one of them;
* ``members`` is a valid membership (``members.validate_members``);
* ``service_count`` is 0..``MAX_SERVICE_COUNT`` (10: the RecoveryState counter key holds 32 bytes
  plus one 8-byte snapshot recording id per service within Aeron's 112-byte counter key);
* stream ids are int32.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from cluster.consensus.core.errors import ConfigError, MembershipError
from cluster.consensus.core.members import (
    NULL_VALUE,
    ClusterMember,
    parse_members,
    quorum_threshold,
    validate_members,
)

__all__ = ["MAX_SERVICE_COUNT", "ConsensusConfig"]

NANOS_PER_MILLI = 1_000_000
NANOS_PER_SECOND = 1_000_000_000
COUNTER_MAX_KEY_LENGTH = 112  # Aeron CountersReader.MAX_KEY_LENGTH
RECOVERY_STATE_KEY_FIXED_LENGTH = 32  # leadershipTermId, logPosition, timestamp, clusterId, serviceCount
MAX_SERVICE_COUNT = (COUNTER_MAX_KEY_LENGTH - RECOVERY_STATE_KEY_FIXED_LENGTH) // 8
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

_DURATIONS = (
    "election_timeout_ns",
    "election_status_interval_ns",
    "leader_heartbeat_interval_ns",
    "leader_heartbeat_timeout_ns",
    "startup_canvass_timeout_ns",
    "session_timeout_ns",
    "termination_timeout_ns",
)
_STREAM_IDS = ("log_stream_id", "consensus_stream_id", "ingress_stream_id")


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}={value!r} is not an int")
    return value


@dataclass(frozen=True, slots=True)
class ConsensusConfig:
    """The consensus module's settings for one member (Aeron ``ConsensusModule.Context``, in part)."""

    member_id: int
    members: tuple[ClusterMember, ...]
    appointed_leader_id: int = NULL_VALUE
    service_count: int = 1
    max_sessions: int = 10
    election_timeout_ns: int = 1 * NANOS_PER_SECOND
    election_status_interval_ns: int = 100 * NANOS_PER_MILLI
    leader_heartbeat_interval_ns: int = 200 * NANOS_PER_MILLI
    leader_heartbeat_timeout_ns: int = 10 * NANOS_PER_SECOND
    startup_canvass_timeout_ns: int = 60 * NANOS_PER_SECOND
    session_timeout_ns: int = 10 * NANOS_PER_SECOND
    termination_timeout_ns: int = 10 * NANOS_PER_SECOND
    snapshot_interval_ns: int = 0  # ours: a leader snapshots this often (0: only when asked)
    log_stream_id: int = 100
    consensus_stream_id: int = 108
    ingress_stream_id: int = 101
    # where a BackupQuery this member sends is answered: its own consensus channel and endpoint ("": it
    # asks no one, and never catches up from another member's snapshot)
    backup_response_channel: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.members, str):
            raise ConfigError("members is a string; use ConsensusConfig.from_member_string")
        try:
            members = validate_members(self.members)
        except MembershipError as error:
            raise ConfigError(f"members: {error}") from None
        except TypeError:
            raise ConfigError(f"members={self.members!r} is not a sequence of ClusterMember") from None
        object.__setattr__(self, "members", members)
        ids = [member.id for member in members]
        member_id = _check_int("member_id", self.member_id)
        if member_id not in ids:
            raise ConfigError(f"member_id={member_id} is not one of the members' ids {ids}")
        appointed = _check_int("appointed_leader_id", self.appointed_leader_id)
        if appointed != NULL_VALUE and appointed not in ids:
            raise ConfigError(
                f"appointed_leader_id={appointed} is neither -1 nor one of the members' ids {ids}"
            )
        service_count = _check_int("service_count", self.service_count)
        if not 0 <= service_count <= MAX_SERVICE_COUNT:
            raise ConfigError(f"service_count={service_count} is not in [0, {MAX_SERVICE_COUNT}]")
        if _check_int("max_sessions", self.max_sessions) < 0:
            raise ConfigError(f"max_sessions={self.max_sessions} must not be negative")
        for name in _DURATIONS:
            if _check_int(name, getattr(self, name)) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be positive")
        if _check_int("snapshot_interval_ns", self.snapshot_interval_ns) < 0:
            raise ConfigError(f"snapshot_interval_ns={self.snapshot_interval_ns} must be 0 (off) or positive")
        for name in _STREAM_IDS:
            value = _check_int(name, getattr(self, name))
            if not INT32_MIN <= value <= INT32_MAX:
                raise ConfigError(f"{name}={value} is not an int32")
        if self.startup_canvass_timeout_ns < 2 * self.leader_heartbeat_timeout_ns:
            raise ConfigError(
                f"startup_canvass_timeout_ns={self.startup_canvass_timeout_ns} must be at least twice "
                f"leader_heartbeat_timeout_ns={self.leader_heartbeat_timeout_ns}"
            )
        if self.leader_heartbeat_interval_ns >= self.leader_heartbeat_timeout_ns:
            raise ConfigError(
                f"leader_heartbeat_interval_ns={self.leader_heartbeat_interval_ns} must be less than "
                f"leader_heartbeat_timeout_ns={self.leader_heartbeat_timeout_ns}"
            )

    @classmethod
    def from_member_string(cls, member_id: int, text: str, **overrides: int) -> ConsensusConfig:
        """A config for ``member_id`` of the members in ``text`` (``aeron.cluster.members`` format),
        with any other field overridden by keyword, e.g. ``election_timeout_ns=500_000_000``."""
        try:
            members = parse_members(text)
        except MembershipError as error:
            raise ConfigError(f"members: {error}") from None
        allowed = {field.name for field in fields(cls)} - {"member_id", "members"}
        unknown = sorted(set(overrides) - allowed)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
        settings: dict[str, Any] = dict(overrides)  # each is type-checked by __post_init__
        return cls(member_id, members, **settings)

    @property
    def member(self) -> ClusterMember:
        """This node's own ``ClusterMember``."""
        for member in self.members:
            if member.id == self.member_id:
                return member
        raise AssertionError("unreachable: __post_init__ checked member_id")  # pragma: no cover

    @property
    def quorum_threshold(self) -> int:
        """Members needed for a quorum: ``len(members) // 2 + 1``."""
        return quorum_threshold(len(self.members))
