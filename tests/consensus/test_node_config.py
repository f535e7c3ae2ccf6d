"""A node's configuration file (``docs/node-config.md``): every key read, checked and written back, the
one-line errors, and the local-cluster layout."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.members import members_lists

from cluster.consensus.core.config import ConsensusConfig
from cluster.consensus.core.errors import ConfigError
from cluster.consensus.core.members import ClusterMember, format_members, parse_members
from cluster.consensus.node_config import (
    MAX_FILE_BYTES,
    SETTINGS,
    NodeConfig,
    NodeConfigError,
)
from cluster.storage import SyncLevel

REPO = Path(__file__).resolve().parents[2]
MEMBERS = "|".join(
    (
        "0,h0:9002,h0:9003,h0:9004,h0:9005,h0:9001",
        "1,h1:9002,h1:9003,h1:9004,h1:0,h1:9001",
        "2,h2:1,h2:2,h2:3,h2:4,h2:5",
    )
)
REQUIRED = {"cluster.members": MEMBERS, "cluster.member.id": 1, "cluster.dir": "nodes/n1/cluster"}
MINIMAL_TOML = f'[cluster]\nmembers = "{MEMBERS}"\nmember.id = 1\ndir = "nodes/n1/cluster"\n'
SECOND = 1_000_000_000
MILLI = 1_000_000


def config_with(settings: dict[str, object]) -> NodeConfig:
    """Member 1 of ``MEMBERS``, with ``settings`` (dotted keys) too."""
    return NodeConfig.from_mapping({**REQUIRED, **settings})


def error_of(settings: dict[str, object]) -> str:
    with pytest.raises(NodeConfigError) as caught:
        NodeConfig.from_mapping(settings)
    message = str(caught.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------- defaults


def test_the_defaults() -> None:
    config = NodeConfig.from_toml(MINIMAL_TOML)
    assert config.members == parse_members(MEMBERS)
    assert config.member_id == 1
    assert config.member == parse_members(MEMBERS)[1]
    assert config.cluster_dir == "nodes/n1/cluster"
    expected = {
        "cluster_id": 0,
        "appointed_leader_id": -1,
        "service_count": 1,
        "service_class": "echo",
        "max_sessions": 10,
        "authenticator_class": "default",
        "authorisation_service_class": "default",
        "ingress_channel": "aeron:udp",
        "ingress_stream_id": 101,
        "log_channel": "aeron:udp?term-length=64m",
        "log_stream_id": 100,
        "consensus_channel": "aeron:udp?term-length=64k",
        "consensus_stream_id": 108,
        "follower_catchup_channel": "aeron:udp",
        "leader_archive_control_channel": "aeron:udp?term-length=64k",
        "replication_channel": "aeron:udp?endpoint=h1:0",
        "replay_channel": "aeron:ipc",
        "replay_stream_id": 103,
        "control_channel": "aeron:ipc?term-length=128k",
        "service_stream_id": 104,
        "consensus_module_stream_id": 105,
        "snapshot_channel": "aeron:ipc?alias=snapshot",
        "consensus_module_snapshot_stream_id": 107,
        "service_snapshot_stream_id": 106,
        "election_timeout_ns": 1 * SECOND,
        "election_status_interval_ns": 100 * MILLI,
        "leader_heartbeat_interval_ns": 200 * MILLI,
        "leader_heartbeat_timeout_ns": 10 * SECOND,
        "startup_canvass_timeout_ns": 60 * SECOND,
        "session_timeout_ns": 10 * SECOND,
        "termination_timeout_ns": 10 * SECOND,
        "snapshot_interval_ns": 0,
        "total_snapshot_threshold_ns": 1 * SECOND,
        "service_snapshot_threshold_ns": 1 * SECOND,
        "archive_dir": "nodes/n1/archive",
        "archive_control_channel": "aeron:udp?endpoint=h1:9001",
        "archive_control_stream_id": 10,
        "archive_local_control_channel": "aeron:ipc?term-length=64k",
        "archive_local_control_stream_id": 10,
        "archive_replication_channel": "aeron:udp?endpoint=h1:0",
        "archive_file_sync_level": SyncLevel.NONE,
        "archive_catalog_file_sync_level": SyncLevel.NONE,
        "archive_segment_file_length": 128 * 1024 * 1024,
    }
    assert {name: getattr(config, name) for name in expected} == expected
    assert set(expected) | {"members", "member_id", "cluster_dir"} == {
        f.name for f in dataclasses.fields(config)
    }
    assert config.log_term_length == 64 * 1024 * 1024


def test_consensus_defaults_are_the_cores() -> None:
    config = NodeConfig.from_toml(MINIMAL_TOML)
    core = config.consensus_config()
    # but for where the member's own BackupQuery is answered: its consensus endpoint
    assert core.backup_response_channel == f"aeron:udp?term-length=64k|endpoint={config.member.consensus}"
    assert dataclasses.replace(core, backup_response_channel="") == ConsensusConfig.from_member_string(
        1, MEMBERS
    )


def test_consensus_config_carries_every_consensus_setting() -> None:
    config = config_with(
        {
            "cluster.appointed.leader.id": 2,
            "cluster.service.count": 3,
            "cluster.election.timeout": "2s",
            "cluster.election.status.interval": "50ms",
            "cluster.leader.heartbeat.interval": "100ms",
            "cluster.leader.heartbeat.timeout": "5s",
            "cluster.startup.canvass.timeout": "10s",
            "cluster.session.timeout": "7s",
            "cluster.termination.timeout": "8s",
            "cluster.log.stream.id": 200,
            "cluster.consensus.stream.id": 208,
            "cluster.ingress.stream.id": 201,
        },
    )
    consensus = f"aeron:udp?term-length=64k|endpoint={config.member.consensus}"
    assert config.consensus_config() == dataclasses.replace(
        ConsensusConfig.from_member_string(
            1,
            MEMBERS,
            appointed_leader_id=2,
            service_count=3,
            election_timeout_ns=2 * SECOND,
            election_status_interval_ns=50 * MILLI,
            leader_heartbeat_interval_ns=100 * MILLI,
            leader_heartbeat_timeout_ns=5 * SECOND,
            startup_canvass_timeout_ns=10 * SECOND,
            session_timeout_ns=7 * SECOND,
            termination_timeout_ns=8 * SECOND,
            log_stream_id=200,
            consensus_stream_id=208,
            ingress_stream_id=201,
        ),
        backup_response_channel=consensus,
    )


# --------------------------------------------------------------------------- every key, good and bad


class Case(NamedTuple):
    key: str
    good: object  # a TOML value
    field_value: object  # what the field holds then
    bad: object
    problem: str  # the message after "<key>: "


TWO_MEMBERS = "0,a:1,a:2,a:3,a:4,a:5|1,b:1,b:2,b:3,b:4,b:5"
CASES = [
    Case("cluster.members", TWO_MEMBERS, parse_members(TWO_MEMBERS), "0,a:1,a:2,a:3,a:4",
         "member 0 '0,a:1,a:2,a:3,a:4' has 5 attributes; expected 6 to 8: "
         "id,ingress,consensus,log,catchup,archive[,archiveResponse[,egressResponse]]"),
    Case("cluster.member.id", 2, 2, 3, "3 is not a member of cluster.members (0, 1, 2)"),
    Case("cluster.id", -7, -7, 2**31, "2147483648 is not in [-2147483648, 2147483647]"),
    Case("cluster.dir", "/var/lib/node1", "/var/lib/node1", "", "is empty; it needs a directory path"),
    Case("cluster.appointed.leader.id", 0, 0, 5, "5 is neither -1 nor a member of cluster.members (0, 1, 2)"),
    Case("cluster.service.count", 0, 0, 11, "11 is not in [0, 10]"),
    Case("cluster.service.class", "kv", "kv", "my_pkg.svc",
         "'my_pkg.svc' is neither echo nor kv nor package.module:Class"),
    Case("cluster.max.sessions", 0, 0, -1, "-1 is not in [0, 2147483647]"),
    Case("cluster.authenticator.supplier", "my_pkg.auth:Tokens", "my_pkg.auth:Tokens", "tokens",
         "'tokens' is neither default nor package.module:Class"),
    Case("cluster.authorisation.service.supplier", "my_pkg.auth:Admins", "my_pkg.auth:Admins", 7,
         "7 is not a string (default or package.module:Class)"),
    Case("cluster.ingress.channel", "aeron:udp?term-length=128k", "aeron:udp?term-length=128k", "aeron:ipc",
         '"aeron:ipc" is ipc; this channel must be udp'),
    Case("cluster.ingress.stream.id", 7, 7, "101", '"101" is not an integer'),
    Case("cluster.log.channel", "aeron:udp?term-length=16m", "aeron:udp?term-length=16m",
         "aeron:udp?term-length=64m|session-id=5",
         "session-id=5 is not allowed here: the node sets the log's position and session id itself, "
         "for each leadership term"),
    Case("cluster.log.stream.id", -1, -1, True, "true is not an integer"),
    Case("cluster.consensus.channel", "aeron:udp?term-length=128k", "aeron:udp?term-length=128k",
         "aeron:udp?endpoint=h1:9003", "endpoint=h1:9003 is not allowed here: each member's endpoint comes "
         "from cluster.members"),
    Case("cluster.consensus.stream.id", 0, 0, 1.5, "1.5 is not an integer"),
    Case("cluster.follower.catchup.channel", "aeron:udp?mtu=8k", "aeron:udp?mtu=8k", "aeron:udp?mtu=100",
         "mtu=100 is not a multiple of 32 (frame alignment)"),
    Case("cluster.leader.archive.control.channel", "aeron:udp", "aeron:udp", "aeron:udp?endpoint=h0:9001",
         "endpoint=h0:9001 is not allowed here: the endpoint is the leader's archive endpoint in "
         "cluster.members"),
    Case("cluster.replication.channel", "aeron:udp?endpoint=10.0.0.1:0", "aeron:udp?endpoint=10.0.0.1:0",
         "aeron-spy:aeron:udp?endpoint=a:1",
         '"aeron-spy:aeron:udp?endpoint=a:1" is a spy channel (aeron-spy:), which cannot be used here'),
    Case("cluster.replay.channel", "aeron:ipc?term-length=128k", "aeron:ipc?term-length=128k", "aeron:udp",
         '"aeron:udp" is udp; this channel must be ipc'),
    Case("cluster.control.channel", "aeron:ipc?term-length=1m", "aeron:ipc?term-length=1m", "aeron:udp",
         '"aeron:udp" is udp; this channel must be ipc'),
    Case("cluster.service.stream.id", 204, 204, "104", '"104" is not an integer'),
    Case("cluster.consensus.module.stream.id", 205, 205, 2**31,
         "2147483648 is not in [-2147483648, 2147483647]"),
    Case("cluster.replay.stream.id", 2**31 - 1, 2**31 - 1, -(2**31) - 1,
         "-2147483649 is not in [-2147483648, 2147483647]"),
    Case("cluster.snapshot.channel", "aeron:ipc?alias=snap", "aeron:ipc?alias=snap", "aeron:udp",
         '"aeron:udp" is udp; this channel must be ipc'),
    Case("cluster.snapshot.stream.id", 207, 207, "107", '"107" is not an integer'),
    Case("cluster.service.snapshot.stream.id", 206, 206, 2**31,
         "2147483648 is not in [-2147483648, 2147483647]"),
    Case("cluster.election.timeout", "2s", 2 * SECOND, "1 s",
         '"1 s" is not a duration: digits and a unit, ns, us, ms, s or m ("200ms", "10s"), '
         "or an integer of nanoseconds"),
    Case("cluster.election.status.interval", 20_000_000, 20 * MILLI, 0, "0 is not positive"),
    Case("cluster.leader.heartbeat.interval", "500us", 500_000, "0ms", '"0ms" is not positive'),
    Case("cluster.leader.heartbeat.timeout", "20s", 20 * SECOND, "2S",
         '"2S" is not a duration: digits and a unit, ns, us, ms, s or m ("200ms", "10s"), '
         "or an integer of nanoseconds"),
    Case("cluster.startup.canvass.timeout", "2m", 120 * SECOND, 2.5,
         '2.5 is not a duration: an integer of nanoseconds, or a string such as "200ms"'),
    Case("cluster.session.timeout", "100ns", 100, -3, "-3 is not positive"),
    Case("cluster.termination.timeout", 2**63 - 1, 2**63 - 1, "9223372036854775808ns",
         '"9223372036854775808ns" is more than 2^63-1 nanoseconds (Aeron holds a duration in a long)'),
    Case("cluster.snapshot.interval", "0s", 0, "-1s", '"-1s" is not a duration: digits and a unit, ns, us, '
         'ms, s or m ("200ms", "10s"), or an integer of nanoseconds'),
    Case("cluster.total.snapshot.threshold", "250ms", 250 * MILLI, "0s", '"0s" is not positive'),
    Case("cluster.service.snapshot.threshold", 1, 1, "fast", '"fast" is not a duration: digits and a unit, '
         'ns, us, ms, s or m ("200ms", "10s"), or an integer of nanoseconds'),
    Case("archive.dir", "/data/archive", "/data/archive", 5, "5 is not a string (a directory path)"),
    Case("archive.control.channel", "aeron:udp?endpoint=0.0.0.0:9001", "aeron:udp?endpoint=0.0.0.0:9001",
         "aeron:udp?term-length=64k", '"aeron:udp?term-length=64k" has no endpoint=host:port to listen on'),
    Case("archive.control.stream.id", 11, 11, "ten", '"ten" is not an integer'),
    Case("archive.local.control.channel", "aeron:ipc", "aeron:ipc", "aeron:ipc?term-length=1k",
         "term-length=1k is not a power of two between 64 KiB and 1 GiB"),
    Case("archive.local.control.stream.id", 12, 12, [10], "an array is not an integer"),
    Case("archive.replication.channel", "aeron:udp?endpoint=h1:8011", "aeron:udp?endpoint=h1:8011",
         "aeron:tcp?endpoint=h1:8011",
         "unknown media 'tcp' in 'aeron:tcp?endpoint=h1:8011' (expected udp or ipc)"),
    Case("archive.file.sync.level", 0, SyncLevel.NONE, 3,
         "3 is not a sync level: 0 (none), 1 (data) or 2 (data and metadata)"),
    Case("archive.catalog.file.sync.level", 2, SyncLevel.ALL, "2",
         '"2" is not a sync level: 0 (none), 1 (data) or 2 (data and metadata)'),
    Case("archive.segment.file.length", "256m", 256 * 1024 * 1024, "100m",
         '"100m" is not a power of two from 64k to 1g (65536 to 1073741824 bytes)'),
]  # fmt: skip


def test_the_cases_cover_every_key() -> None:
    assert [case.key for case in CASES] == [setting.key for setting in SETTINGS]


@pytest.mark.parametrize("case", CASES, ids=[case.key for case in CASES])
def test_a_good_value(case: Case) -> None:
    config = NodeConfig.from_mapping({**REQUIRED, case.key: case.good})
    setting = next(setting for setting in SETTINGS if setting.key == case.key)
    assert getattr(config, setting.field) == case.field_value


@pytest.mark.parametrize("case", CASES, ids=[case.key for case in CASES])
def test_a_bad_value(case: Case) -> None:
    assert error_of({**REQUIRED, case.key: case.bad}) == f"{case.key}: {case.problem}"


@pytest.mark.parametrize("case", CASES, ids=[case.key for case in CASES])
def test_a_bad_value_in_a_file_names_the_file(case: Case, tmp_path: Path) -> None:
    settings = {**REQUIRED, case.key: case.bad}
    lines = [f"{key} = {toml_value(value)}" for key, value in settings.items()]
    path = tmp_path / "node1.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(NodeConfigError, match=f"^{re.escape(f'{path}: {case.key}: {case.problem}')}$"):
        NodeConfig.load(path)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    return repr(value)


# ------------------------------------------------------------------------------- value formats


@pytest.mark.parametrize(
    ("value", "ns", "written"),
    [
        (1, 1, "1ns"),
        ("100ns", 100, "100ns"),
        ("500us", 500_000, "500us"),
        ("1500us", 1_500_000, "1500us"),
        ("200ms", 200 * MILLI, "200ms"),
        ("1000ms", SECOND, "1s"),
        ("10s", 10 * SECOND, "10s"),
        ("1m", 60 * SECOND, "60s"),
        (12_345_678_901, 12_345_678_901, "12345678901ns"),
    ],
)
def test_durations(value: object, ns: int, written: str) -> None:
    config = config_with({"cluster.session.timeout": value})
    assert config.session_timeout_ns == ns
    assert f'session.timeout = "{written}"\n' in config.to_toml()


@pytest.mark.parametrize(
    ("value", "length", "written"),
    [
        (65536, 65536, '"64k"'),
        ("64k", 65536, '"64k"'),
        ("1024K", 1024 * 1024, '"1m"'),
        ("512M", 512 * 1024 * 1024, '"512m"'),
        ("1g", 1024**3, '"1g"'),
    ],
)
def test_segment_file_lengths(value: object, length: int, written: str) -> None:
    config = config_with({"archive.segment.file.length": value})
    assert config.archive_segment_file_length == length
    assert f"segment.file.length = {written}\n" in config.to_toml()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2g", '"2g" is not a power of two from 64k to 1g (65536 to 1073741824 bytes)'),
        (32 * 1024, "32768 is not a power of two from 64k to 1g (65536 to 1073741824 bytes)"),
        ("128 m", '"128 m" is not a size: digits with an optional k, m or g ("128m")'),
        (1.0, '1.0 is not a size: an integer of bytes, or a string such as "128m"'),
    ],
)
def test_bad_segment_file_lengths(value: object, problem: str) -> None:
    assert (
        error_of({**REQUIRED, "archive.segment.file.length": value})
        == f"archive.segment.file.length: {problem}"
    )


@pytest.mark.parametrize(
    ("log_channel", "term_length"),
    [
        ("aeron:udp?term-length=64m", 64 * 1024 * 1024),
        ("aeron:udp?term-length=1m|mtu=8k", 1024 * 1024),
        ("aeron:udp", 16 * 1024 * 1024),  # the transport's default for udp
    ],
)
def test_the_log_term_length_is_the_log_channels(log_channel: str, term_length: int) -> None:
    assert config_with({"cluster.log.channel": log_channel}).log_term_length == term_length


# ----------------------------------------------------------------------------- derived defaults


@pytest.mark.parametrize(
    ("cluster_dir", "archive_dir"),
    [
        ("nodes/n1/cluster", "nodes/n1/archive"),
        ("nodes/n1/cluster/", "nodes/n1/archive"),
        ("/cluster", "/archive"),
        ("cluster", "archive"),
        ("/", "/archive"),
        (".", "./../archive"),
        ("n1/..", "n1/../../archive"),
    ],
)
def test_archive_dir_defaults_to_archive_beside_the_cluster_dir(cluster_dir: str, archive_dir: str) -> None:
    assert config_with({"cluster.dir": cluster_dir}).archive_dir == archive_dir


def test_channels_derived_from_the_members_endpoints() -> None:
    members = "0,[::1]:1,[::1]:2,[::1]:3,[::1]:4,[::1]:8010|1,b:1,b:2,b:3,b:4,b:5"
    config = NodeConfig.from_mapping({"cluster.members": members, "cluster.member.id": 0, "cluster.dir": "d"})
    assert config.archive_control_channel == "aeron:udp?endpoint=[::1]:8010"
    assert config.replication_channel == "aeron:udp?endpoint=[::1]:0"
    assert config.archive_replication_channel == "aeron:udp?endpoint=[::1]:0"


def test_the_archive_replication_channel_defaults_to_the_clusters() -> None:
    config = config_with({"cluster.replication.channel": "aeron:udp?endpoint=10.1.1.1:0"})
    assert config.archive_replication_channel == "aeron:udp?endpoint=10.1.1.1:0"


def test_direct_construction_derives_and_checks() -> None:
    config = NodeConfig(parse_members(MEMBERS), 1, "nodes/n1/cluster")
    assert config == NodeConfig.from_toml(MINIMAL_TOML)
    assert dataclasses.replace(config, archive_dir="elsewhere").archive_dir == "elsewhere"
    with pytest.raises(NodeConfigError, match=r"^cluster\.election\.timeout: 0 is not positive$"):
        dataclasses.replace(config, election_timeout_ns=0)
    with pytest.raises(NodeConfigError, match=r"^cluster\.members: is a string; parse it with parse_members"):
        NodeConfig(MEMBERS, 1, "d")  # type: ignore[arg-type]
    with pytest.raises(NodeConfigError, match=r"^archive\.file\.sync\.level: 5 is not a sync level"):
        dataclasses.replace(config, archive_file_sync_level=5)  # type: ignore[arg-type]
    synced = dataclasses.replace(config, archive_file_sync_level=1, archive_catalog_file_sync_level=2)  # type: ignore[arg-type]
    assert synced.archive_file_sync_level is SyncLevel.DATA
    assert synced.archive_catalog_file_sync_level is SyncLevel.ALL


# -------------------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"cluster.leader.heartbeat.timeout": "40s"},
            "cluster.startup.canvass.timeout: 60s is less than twice cluster.leader.heartbeat.timeout (40s)",
        ),
        (
            {"cluster.leader.heartbeat.timeout": "2s", "cluster.startup.canvass.timeout": "3999ms"},
            "cluster.startup.canvass.timeout: 3999ms is less than twice "
            "cluster.leader.heartbeat.timeout (2s)",
        ),
        (
            {"cluster.leader.heartbeat.interval": "10s"},
            "cluster.leader.heartbeat.interval: 10s is not less than cluster.leader.heartbeat.timeout (10s)",
        ),
        (
            {"archive.file.sync.level": 2, "archive.catalog.file.sync.level": 1},
            "archive.catalog.file.sync.level: 1 is below archive.file.sync.level (2); "
            "the catalog must be synced at least as well",
        ),
        (
            {"cluster.log.channel": "aeron:ipc"},
            'cluster.log.channel: "aeron:ipc" stays within one process; a cluster of 3 members needs udp',
        ),
        (
            {"archive.dir": "nodes/n1/cluster/"},
            'archive.dir: is "nodes/n1/cluster/", which is cluster.dir; '
            "the archive needs a directory of its own",
        ),
        (
            {"cluster.dir": "n1/archive"},
            'archive.dir: defaults to "n1/archive", which is cluster.dir; '
            "the archive needs a directory of its own",
        ),
    ],
)
def test_rules_between_settings(settings: dict[str, object], message: str) -> None:
    assert error_of({**REQUIRED, **settings}) == message


def test_the_edges_the_rules_allow() -> None:
    config = config_with(
        {
            "cluster.leader.heartbeat.timeout": "2s",
            "cluster.startup.canvass.timeout": "4s",
            "cluster.leader.heartbeat.interval": "1999ms",
            "archive.file.sync.level": 1,
            "archive.catalog.file.sync.level": 1,
        }
    )
    assert config.startup_canvass_timeout_ns == 2 * config.leader_heartbeat_timeout_ns
    one = NodeConfig.from_mapping(
        {
            "cluster.members": "0,a:1,a:2,a:3,a:4,a:5",
            "cluster.member.id": 0,
            "cluster.dir": "d",
            "cluster.log.channel": "aeron:ipc",
        }
    )
    assert one.log_channel == "aeron:ipc"
    assert one.log_term_length == 64 * 1024 * 1024  # the transport's default for ipc


def test_missing_required_keys() -> None:
    assert error_of({}) == "cluster.members: missing; it has no default"
    assert error_of({"cluster.members": MEMBERS}) == "cluster.member.id: missing; it has no default"
    assert (
        error_of({"cluster.members": MEMBERS, "cluster.member.id": 0})
        == "cluster.dir: missing; it has no default"
    )


def test_a_members_string_error_names_the_member() -> None:
    members = "0,a:1,a:2,a:3,a:4,a:5|1,b:1,a:2,b:3,b:4,b:5"
    assert error_of({**REQUIRED, "cluster.members": members, "cluster.member.id": 0}) == (
        "cluster.members: member 1 (id 1): consensus endpoint 'a:2' is also member 0's (id 0)"
    )


# ---------------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[cluster]\nelection.timout = "1s"',
            "cluster.election.timout: unknown key; did you mean cluster.election.timeout?",
        ),
        ("[cluster]\nmember_id = 1", "cluster.member_id: unknown key; did you mean cluster.member.id?"),
        (
            "[archive]\nsync.level = 1",
            "archive.sync.level: unknown key; did you mean archive.file.sync.level?",
        ),
        (
            '[cluster]\nsegment.file.length = "64m"',
            "cluster.segment.file.length: unknown key; did you mean archive.segment.file.length?",
        ),
        ('members = "x"', "members: unknown key; did you mean cluster.members?"),
        ('dir = "x"', "dir: unknown key; did you mean cluster.dir or archive.dir?"),
        (
            '[aeron.cluster]\ndir = "x"',
            "aeron.cluster.dir: unknown key; names leave out Aeron's 'aeron.' prefix: cluster.dir",
        ),
        ("[cluster]\nfrobnicate = 1", "cluster.frobnicate: unknown key (docs/node-config.md lists the keys)"),
        ("[clusterr]", "clusterr: unknown table; did you mean cluster?"),
        ("[cluster.electoin]", "cluster.electoin: unknown table; did you mean cluster.election?"),
        ("[sessions]", "sessions: unknown table (docs/node-config.md lists the keys)"),
        ('[clusterr]\ndir = "x"', "clusterr.dir: unknown key; did you mean cluster.dir?"),
    ],
)
def test_unknown_keys(toml: str, message: str) -> None:
    """Unknown keys are found before anything else is read: a typo may be why a required key is missing."""
    with pytest.raises(NodeConfigError) as caught:
        NodeConfig.from_toml(toml, source="n1.toml")
    assert str(caught.value) == f"n1.toml: {message}"


def test_a_table_where_a_value_belongs() -> None:
    text = MINIMAL_TOML.replace('dir = "nodes/n1/cluster"\n', "") + "[cluster.dir]\n"
    with pytest.raises(
        NodeConfigError, match=r"^<string>: cluster\.dir: a table is not a string \(a directory path\)$"
    ):
        NodeConfig.from_toml(text)


def test_an_unknown_key_comes_first() -> None:
    """A typo is reported even when required keys are missing too: the typo may be why they are."""
    assert (
        error_of({"cluster": {"memebrs": MEMBERS}})
        == "cluster.memebrs: unknown key; did you mean cluster.members?"
    )


def test_a_key_given_twice() -> None:
    text = MINIMAL_TOML.replace("[cluster]\n", '"cluster.id" = 1\n[cluster]\nid = 2\n')
    with pytest.raises(
        NodeConfigError, match=r"^<string>: cluster\.id: given twice \(as a dotted key and inside a table\)$"
    ):
        NodeConfig.from_toml(text)


def test_empty_tables_of_known_names_are_fine() -> None:
    assert NodeConfig.from_toml("[archive]\n" + MINIMAL_TOML + "[cluster.leader]\n") == NodeConfig.from_toml(
        MINIMAL_TOML
    )


def test_settings_that_are_not_a_table() -> None:
    assert error_of([1, 2]) == "the settings are an array, not a table of keys"  # type: ignore[arg-type]
    assert error_of({1: 2}) == "1: a key must be a string"  # type: ignore[dict-item]


# ------------------------------------------------------------------------------------ TOML files


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[cluster\nmembers = 1\n",
            "node.toml:1:9: TOML syntax: Expected ']' at the end of a table declaration",
        ),
        ("[cluster]\nid = 1\nid = 2\n", "node.toml:3:7: TOML syntax: Cannot overwrite a value"),
        ("[cluster]\nid = \n", "node.toml:2:6: TOML syntax: Invalid value"),
        ('[cluster]\ndir = "a\n', "node.toml:2:9: TOML syntax: Illegal character '\\n'"),
        ('[cluster]\ndir = """a', "node.toml:2:11: TOML syntax: Unterminated string at the end of the file"),
    ],
)
def test_toml_syntax_errors_name_file_line_and_column(text: str, message: str) -> None:
    with pytest.raises(NodeConfigError) as caught:
        NodeConfig.from_toml(text, source="node.toml")
    assert str(caught.value) == message


def test_deep_nesting_is_a_user_error() -> None:
    with pytest.raises(NodeConfigError, match=r"^n\.toml: TOML syntax: arrays or tables nested too deeply$"):
        NodeConfig.from_toml("a = " + "[" * 5_000 + "]" * 5_000, source="n.toml")
    deep = ".".join(["cluster"] + ["x"] * 5000)
    with pytest.raises(NodeConfigError, match=r"^n\.toml: cluster\.x\.x\.x\.x: unknown table"):
        NodeConfig.from_toml(deep + " = 1", source="n.toml")


def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "node1.toml"
    path.write_text(MINIMAL_TOML, encoding="utf-8")
    assert NodeConfig.load(path) == NodeConfig.load(str(path)) == NodeConfig.from_toml(MINIMAL_TOML)


def test_load_syntax_error_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "node1.toml"
    path.write_text(MINIMAL_TOML + "oops\n", encoding="utf-8")
    with pytest.raises(NodeConfigError) as caught:
        NodeConfig.load(path)
    assert str(caught.value) == f"{path}:5:5: TOML syntax: Expected '=' after a key in a key/value pair"


def test_load_failures(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(NodeConfigError) as caught:
        NodeConfig.load(missing)
    assert str(caught.value) == f"{missing}: No such file or directory (ENOENT)"
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[cluster]\ndir = "caf\xe9"\n')
    with pytest.raises(NodeConfigError) as caught:
        NodeConfig.load(latin)
    assert str(caught.value) == f"{latin}: not UTF-8 text (byte 20)"
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(NodeConfigError) as caught:
        NodeConfig.load(big)
    assert str(caught.value) == f"{big}: longer than {MAX_FILE_BYTES} bytes (EFBIG)"


def test_the_error_is_the_projects_user_error() -> None:
    """``python -m tools`` prints a user error as one line, ``error: <message>``, and exits 2."""
    assert NodeConfigError.is_user_error is True
    assert issubclass(NodeConfigError, ConfigError)


def test_toml_written_by_hand_in_any_layout() -> None:
    """Tables, dotted keys and quoted keys spell the same keys."""
    text = (
        f'"cluster.members" = "{MEMBERS}"\n'
        "[cluster]\n"
        "member.id = 1\n"
        'dir = "nodes/n1/cluster"\n'
        "[cluster.election]\n"
        'timeout = "2s"\n'
        "[archive]\n"
        'segment = { file = { length = "1g" } }\n'
    )
    config = NodeConfig.from_toml(text)
    assert (config.election_timeout_ns, config.archive_segment_file_length) == (2 * SECOND, 1024**3)


# ----------------------------------------------------------------------------------- round trip


def test_to_toml_reads_back_equal() -> None:
    config = config_with({"cluster.dir": 'a "quoted"\\ path\twith\ncontrol \x01 chars \u00e9'})
    assert NodeConfig.from_toml(config.to_toml()) == config
    assert config.to_toml().startswith("# An Aeron Cluster node")


@st.composite
def node_configs(draw: st.DrawFn) -> NodeConfig:
    members: list[ClusterMember] = draw(members_lists())
    member = draw(st.sampled_from(members))
    ids = [m.id for m in members]
    heartbeat_timeout = draw(st.integers(2, 10**12))
    durations = st.integers(1, 2**63 - 1)
    paths = st.text(min_size=1, max_size=30).filter(lambda text: "\x00" not in text)
    file_sync = draw(st.sampled_from(list(SyncLevel)))
    udp = st.sampled_from(["aeron:udp", "aeron:udp?term-length=128k", "aeron:udp?mtu=1408|linger=0"])
    int32 = st.integers(-(2**31), 2**31 - 1)
    # not a directory named "archive": the archive's default directory is one beside it of that name
    cluster_dir = draw(paths.filter(lambda text: text.rstrip("/").rpartition("/")[2] != "archive"))
    return NodeConfig(
        members=tuple(members),
        member_id=member.id,
        cluster_dir=cluster_dir,
        cluster_id=draw(int32),
        appointed_leader_id=draw(st.sampled_from([-1, *ids])),
        service_count=draw(st.integers(0, 10)),
        ingress_channel=draw(udp),
        ingress_stream_id=draw(int32),
        log_channel=draw(st.sampled_from(["aeron:udp?term-length=64m", "aeron:udp?term-length=64k|mtu=8k"])),
        log_stream_id=draw(int32),
        consensus_channel=draw(udp),
        consensus_stream_id=draw(int32),
        follower_catchup_channel=draw(udp),
        leader_archive_control_channel=draw(udp),
        replication_channel=draw(st.sampled_from(["", "aeron:udp?endpoint=h:0"])),
        replay_channel=draw(st.sampled_from(["aeron:ipc", "aeron:ipc?term-length=64k"])),
        replay_stream_id=draw(int32),
        election_timeout_ns=draw(durations),
        election_status_interval_ns=draw(durations),
        leader_heartbeat_interval_ns=draw(st.integers(1, heartbeat_timeout - 1)),
        leader_heartbeat_timeout_ns=heartbeat_timeout,
        startup_canvass_timeout_ns=draw(st.integers(2 * heartbeat_timeout, 2**63 - 1)),
        session_timeout_ns=draw(durations),
        termination_timeout_ns=draw(durations),
        archive_dir=draw(
            paths.filter(lambda text: text.rstrip("/") != cluster_dir.rstrip("/")) | st.just("")
        ),
        archive_control_channel=draw(st.sampled_from(["", "aeron:udp?endpoint=0.0.0.0:8010"])),
        archive_control_stream_id=draw(int32),
        archive_local_control_channel=draw(st.sampled_from(["aeron:ipc", "aeron:ipc?term-length=64k"])),
        archive_local_control_stream_id=draw(int32),
        archive_replication_channel=draw(st.sampled_from(["", "aeron:udp?endpoint=[::1]:0"])),
        archive_file_sync_level=file_sync,
        archive_catalog_file_sync_level=draw(st.sampled_from([lvl for lvl in SyncLevel if lvl >= file_sync])),
        archive_segment_file_length=1 << draw(st.integers(16, 30)),
    )


@given(node_configs())
def test_generated_configs_survive_to_toml_and_from_toml(config: NodeConfig) -> None:
    text = config.to_toml()
    assert NodeConfig.from_toml(text) == config
    assert NodeConfig.from_toml(text).to_toml() == text
    assert format_members(config.members) in text


# --------------------------------------------------------------------------------- local clusters


def test_local_cluster_uses_aerons_test_layout(tmp_path: Path) -> None:
    configs = NodeConfig.local_cluster(3, str(tmp_path), base_port=9000)
    # The members string of Aeron's own three-node test layout (and of the Java reference run).
    expected = (
        "0,127.0.0.1:9002,127.0.0.1:9003,127.0.0.1:9004,127.0.0.1:9005,127.0.0.1:9001|"
        "1,127.0.0.1:9102,127.0.0.1:9103,127.0.0.1:9104,127.0.0.1:9105,127.0.0.1:9101|"
        "2,127.0.0.1:9202,127.0.0.1:9203,127.0.0.1:9204,127.0.0.1:9205,127.0.0.1:9201"
    )
    for index, config in enumerate(configs):
        assert format_members(config.members) == expected
        assert config.member_id == index
        assert config.cluster_dir == f"{tmp_path}/node{index}/cluster"
        assert config.archive_dir == f"{tmp_path}/node{index}/archive"
        assert config.archive_control_channel == f"aeron:udp?endpoint=127.0.0.1:9{index}01"
        assert (
            config.replication_channel
            == config.archive_replication_channel
            == "aeron:udp?endpoint=127.0.0.1:0"
        )
        assert NodeConfig.from_toml(config.to_toml()) == config


def test_local_cluster_settings_apply_to_every_member() -> None:
    configs = NodeConfig.local_cluster(
        2,
        "run/",
        base_port=20000,
        settings={
            "cluster": {"election": {"timeout": "300ms"}},
            "archive.file.sync.level": 1,
            "archive.catalog.file.sync.level": 1,
        },
    )
    assert [c.election_timeout_ns for c in configs] == [300 * MILLI] * 2
    assert [c.archive_file_sync_level for c in configs] == [SyncLevel.DATA] * 2
    assert [c.cluster_dir for c in configs] == ["run/node0/cluster", "run/node1/cluster"]
    assert configs[1].member.consensus == "127.0.0.1:20103"
    one = NodeConfig.local_cluster(1, "/", base_port=0)
    assert one[0].member.text() == "0,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4,127.0.0.1:5,127.0.0.1:1"
    assert one[0].cluster_dir == "/node0/cluster"


CHOSEN = "{}: is chosen by local_cluster for each member; leave it out of settings"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"nodes": 0}, "nodes: 0 is not a member count in [1, 64]"),
        ({"nodes": 65}, "nodes: 65 is not a member count in [1, 64]"),
        ({"nodes": True}, "nodes: True is not a member count in [1, 64]"),
        ({"base_port": -1}, "base_port: -1 is not a port number"),
        ({"base_port": 65331}, "base_port: 65331 with 3 nodes needs ports up to 65536, above 65535"),
        ({"base_dir": ""}, "base_dir: is empty; it needs a directory path"),
        ({"settings": {"cluster.dir": "x"}}, CHOSEN.format("cluster.dir")),
        ({"hosts": ["10.0.0.1"]}, "hosts: ['10.0.0.1'] is not one host name or address per member (3)"),
        ({"hosts": "10.0.0.1"}, "hosts: '10.0.0.1' is not one host name or address per member (3)"),
        ({"hosts": ["a", "", "c"]}, "hosts: ['a', '', 'c'] is not one host name or address per member (3)"),
        ({"settings": {"cluster": {"members": "x"}}}, CHOSEN.format("cluster.members")),
        ({"settings": {"cluster.election.timeout": 0}}, "cluster.election.timeout: 0 is not positive"),
        (
            {"settings": {"cluster.elektion.timeout": 0}},
            "cluster.elektion.timeout: unknown key; did you mean cluster.election.timeout?",
        ),
    ],
)
def test_local_cluster_errors(arguments: dict[str, Any], message: str) -> None:
    settings = {"nodes": 3, "base_dir": "run", "base_port": 9000, **arguments}
    with pytest.raises(NodeConfigError) as caught:
        NodeConfig.local_cluster(**settings)
    assert str(caught.value) == message


def test_local_cluster_puts_each_member_on_its_own_host(tmp_path: Path) -> None:
    hosts = ["10.201.7.1", "10.201.7.2", "10.201.7.3"]
    configs = NodeConfig.local_cluster(3, str(tmp_path), base_port=9000, hosts=hosts)
    for index, config in enumerate(configs):
        member = config.members[index]
        assert [member.ingress, member.consensus, member.log, member.catchup, member.archive] == [
            f"{hosts[index]}:9{index}0{k}" for k in (2, 3, 4, 5, 1)
        ]
        # what other members reach this one on comes from its own host: archive control, replication
        assert config.archive_control_channel == f"aeron:udp?endpoint={hosts[index]}:9{index}01"
        assert config.replication_channel == f"aeron:udp?endpoint={hosts[index]}:0"
        assert NodeConfig.from_toml(config.to_toml()) == config


def test_local_cluster_edge_ports() -> None:
    configs = NodeConfig.local_cluster(3, "run", base_port=65330)
    assert configs[2].member.catchup == "127.0.0.1:65535"


# ----------------------------------------------------------------------------------------- docs


def test_the_docs_list_every_key_and_its_aeron_property() -> None:
    text = (REPO / "docs" / "node-config.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| `")}
    for setting in SETTINGS:
        assert f"`{setting.key}`" in rows, setting.key
        if setting.aeron_property is None:
            assert f"| `{setting.key}` | none (ours" in text, setting.key
        else:
            assert f"`{setting.aeron_property}`" in text, setting.aeron_property


def test_the_docs_example_is_a_valid_file() -> None:
    text = (REPO / "docs" / "node-config.md").read_text(encoding="utf-8")
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    config = NodeConfig.from_toml(example, source="docs/node-config.md")
    assert (config.member_id, config.leader_heartbeat_timeout_ns) == (1, 5 * SECOND)
    assert config.archive_dir == "/var/lib/aeron/node1/archive"
