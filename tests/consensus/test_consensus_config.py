"""Consensus settings: Aeron's defaults and the start-up checks (``docs/consensus.md``, "Configuration
defaults")."""

from __future__ import annotations

import pytest

from cluster.consensus.core.config import MAX_SERVICE_COUNT, ConsensusConfig
from cluster.consensus.core.errors import ConfigError, ConsensusError
from cluster.consensus.core.members import parse_members

MEMBERS = "|".join(f"{i},h{i}:9002,h{i}:9003,h{i}:9004,h{i}:0,h{i}:8010" for i in range(3))


def test_defaults_are_aerons() -> None:
    config = ConsensusConfig.from_member_string(1, MEMBERS)
    assert config.member_id == 1
    assert config.member == parse_members(MEMBERS)[1]
    assert config.members == parse_members(MEMBERS)
    assert config.quorum_threshold == 2
    assert config.appointed_leader_id == -1
    assert config.service_count == 1
    assert config.election_timeout_ns == 1_000_000_000
    assert config.election_status_interval_ns == 100_000_000
    assert config.leader_heartbeat_interval_ns == 200_000_000
    assert config.leader_heartbeat_timeout_ns == 10_000_000_000
    assert config.startup_canvass_timeout_ns == 60_000_000_000
    assert config.session_timeout_ns == 10_000_000_000
    assert config.termination_timeout_ns == 10_000_000_000
    assert (config.log_stream_id, config.consensus_stream_id, config.ingress_stream_id) == (100, 108, 101)


def test_overrides_and_direct_construction() -> None:
    config = ConsensusConfig.from_member_string(
        0, MEMBERS, election_timeout_ns=500_000_000, appointed_leader_id=2
    )
    assert (config.election_timeout_ns, config.appointed_leader_id) == (500_000_000, 2)
    assert ConsensusConfig(0, parse_members(MEMBERS), service_count=0).service_count == 0
    as_list = ConsensusConfig(0, list(parse_members(MEMBERS)))  # type: ignore[arg-type]
    assert isinstance(as_list.members, tuple)


@pytest.mark.parametrize(
    ("member_id", "overrides", "message"),
    [
        (3, {}, "member_id=3 is not one of the members' ids [0, 1, 2]"),
        (0, {"appointed_leader_id": 7}, "appointed_leader_id=7 is neither -1 nor one of the members' ids"),
        (0, {"service_count": -1}, f"service_count=-1 is not in [0, {MAX_SERVICE_COUNT}]"),
        (0, {"service_count": MAX_SERVICE_COUNT + 1}, "service_count=11 is not in [0, 10]"),
        (0, {"election_timeout_ns": 0}, "election_timeout_ns=0 must be positive"),
        (0, {"session_timeout_ns": -5}, "session_timeout_ns=-5 must be positive"),
        (0, {"termination_timeout_ns": True}, "termination_timeout_ns=True is not an int"),
        (0, {"election_status_interval_ns": 1.5}, "election_status_interval_ns=1.5 is not an int"),
        (
            0,
            {"startup_canvass_timeout_ns": 19_999_999_999},
            "startup_canvass_timeout_ns=19999999999 must be at least twice leader_heartbeat_timeout_ns",
        ),
        (
            0,
            {"leader_heartbeat_timeout_ns": 200_000_000, "startup_canvass_timeout_ns": 1_000_000_000},
            "leader_heartbeat_interval_ns=200000000 must be less than leader_heartbeat_timeout_ns=200000000",
        ),
        (0, {"log_stream_id": 2**31}, "log_stream_id=2147483648 is not an int32"),
        (0, {"election_timeout": 5}, "unknown setting(s) election_timeout; known: appointed_leader_id"),
        (0, {"members": 5}, "unknown setting(s) members"),
    ],
)
def test_bad_settings_name_the_field(member_id: int, overrides: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ConsensusConfig.from_member_string(member_id, MEMBERS, **overrides)
    assert message in str(caught.value)
    assert caught.value.is_user_error and isinstance(caught.value, ConsensusError)


def test_bad_members_become_config_errors() -> None:
    with pytest.raises(ConfigError, match="members: member 0: id 'x'"):
        ConsensusConfig.from_member_string(0, "x,a:1,a:2,a:3,a:4,a:5")
    with pytest.raises(ConfigError, match=r"members is a string; use ConsensusConfig\.from_member_string"):
        ConsensusConfig(0, MEMBERS)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="members: a cluster needs at least one member"):
        ConsensusConfig(0, ())
    with pytest.raises(ConfigError, match="is not a sequence of ClusterMember"):
        ConsensusConfig(0, 5)  # type: ignore[arg-type]
