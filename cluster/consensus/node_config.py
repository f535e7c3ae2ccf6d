"""A cluster node's configuration: a TOML file keyed by Aeron's property names, read and checked once.

Every key, its Aeron property, type, default and meaning is in docs/node-config.md.

Theory of operation
-------------------
``python -m tools node --config FILE.toml`` runs one member of a cluster (transport, archive and
consensus module in one process); this module turns the file into a ``NodeConfig``, an immutable value
with one typed field per setting that is valid once built. A key is Aeron's property name without the
``aeron.`` prefix (``aeron.cluster.member.id`` is ``cluster.member.id``), written as a dotted key or in a
table (``[cluster]`` then ``member.id = 1``): TOML makes both the same nested table, and both spell the
same key here.

``SETTINGS`` is the one table the rest reads. A row names the key, the ``NodeConfig`` field it fills and
its *kind*: how a TOML value is read (``read``), how a field's value is checked (``check``) and how it
is written back as TOML (``write``). ``from_mapping`` flattens the tables to dotted keys, refuses a key
that is not in the table (naming the nearest key, found by ``difflib``), reads the values given and
leaves the others to the fields' defaults. ``NodeConfig.__post_init__`` checks every field with its kind
and then the rules that tie settings together, so a ``NodeConfig`` built in code is held to the same
rules as one read from a file. ``to_toml`` writes every setting, defaults included, so
``from_toml(config.to_toml()) == config``.

Values:

* durations are TOML integers of nanoseconds (Aeron's unit) or strings of digits and a unit, ``ns``,
  ``us``, ``ms``, ``s`` or ``m`` (``"500us"``, ``"200ms"``, ``"10s"``, ``"1m"``); ``to_toml`` writes
  them in the largest of ``s``, ``ms``, ``us`` and ``ns`` that holds them exactly, units Agrona's duration
  parser also reads, so a value can be pasted into a Java property;
* sizes are TOML integers of bytes or strings with a ``k``, ``m`` or ``g`` suffix (``"128m"``);
* channels are Aeron channel URIs, parsed by ``cluster.transport.uri`` and held to the media and the
  parameters each channel may have;
* paths are strings, taken as written: a relative one is relative to the node's working directory, as
  Aeron's are, not to the file.

Defaults are Aeron's; the consensus settings' are read from ``ConsensusConfig``, which holds them for
the core. Where Aeron has no default and refuses to start without a value, ours is derived from this
member's endpoints in ``cluster.members``: the archive control channel listens on the member's archive
endpoint and both replication channels take that endpoint's host with port 0; ``cluster.ingress.channel``
is ``aeron:udp`` (each member's ingress endpoint comes from the members string) and ``archive.dir`` is
the directory ``archive`` beside ``cluster.dir``. Built in code, those fields default to ``""``, which
means "derive it" and is replaced when the value is built.

Every failure is a ``NodeConfigError`` of one line, ``<key>: <what is wrong>``, after ``<file>: `` when
the settings came from a file; a TOML syntax error is ``<file>:<line>:<column>: ...``.
"""

from __future__ import annotations

import abc
import difflib
import os
import re
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any, Final

from cluster.consensus.core.config import MAX_SERVICE_COUNT, ConsensusConfig
from cluster.consensus.core.errors import ConfigError, MembershipError
from cluster.consensus.core.members import (
    MAX_MEMBERS,
    NULL_VALUE,
    ClusterMember,
    format_members,
    parse_members,
    validate_members,
)
from cluster.service.loader import check_authenticator_name, check_authorisation_name, check_service_name
from cluster.storage import StorageError, SyncLevel, read_path
from cluster.transport.errors import ChannelUriError
from cluster.transport.uri import (
    IPC_TERM_LENGTH_DEFAULT,
    TERM_MAX_LENGTH,
    TERM_MIN_LENGTH,
    UDP_TERM_LENGTH_DEFAULT,
    ChannelUri,
)

__all__ = ["LOCAL_HOST", "MAX_FILE_BYTES", "SETTINGS", "NodeConfig", "NodeConfigError", "Setting"]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MAX = 2**63 - 1
MAX_FILE_BYTES: Final = 1024 * 1024  # a configuration file is a few KiB; refuse to read more than this
LOCAL_HOST: Final = "127.0.0.1"
# Member i of a local cluster uses base_port + 100 * i + k (Aeron's test layout).
_PORT_STRIDE = 100
_ARCHIVE_PORT, _INGRESS_PORT, _CONSENSUS_PORT, _LOG_PORT, _CATCHUP_PORT = 1, 2, 3, 4, 5

_CORE_DEFAULTS: Final[dict[str, Any]] = {field.name: field.default for field in fields(ConsensusConfig)}


class NodeConfigError(ConfigError):
    """A node's configuration is malformed or inconsistent: one line naming the key (and file) at fault."""


def _fail(key: str, problem: str) -> NodeConfigError:
    return NodeConfigError(f"{key}: {problem}")


# ------------------------------------------------------------------------------------ TOML text

_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string."""
    out = []
    for char in text:
        escape = _TOML_ESCAPES.get(char)
        if escape is not None:
            out.append(escape)
        elif char < " " or char == "\x7f":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _show(value: object, limit: int = 80) -> str:
    """A TOML value as the user wrote it, for an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value if len(value) <= limit else value[:limit] + "...")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return f"a {type(value).__name__}"  # TOML dates and times


# ------------------------------------------------------------------------------------------ kinds


class _Kind(abc.ABC):
    """How one setting's TOML value is read, its field value checked, and the value written as TOML."""

    def read(self, key: str, raw: object) -> Any:
        """The field value for the TOML value ``raw`` (checked)."""
        return self.check(key, raw)

    @abc.abstractmethod
    def check(self, key: str, value: Any) -> Any:
        """``value`` if it is a valid field value (normalised), else ``NodeConfigError``."""

    @abc.abstractmethod
    def write(self, value: Any) -> str:
        """``value`` as a TOML value that ``read`` turns back into it."""


@dataclass(frozen=True, slots=True)
class _Int(_Kind):
    low: int
    high: int

    def check(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, f"{_show(value)} is not an integer")
        if not self.low <= value <= self.high:
            raise _fail(key, f"{value} is not in [{self.low}, {self.high}]")
        return value

    def write(self, value: Any) -> str:
        return str(value)


_INT32 = _Int(INT32_MIN, INT32_MAX)


class _Members(_Kind):
    def read(self, key: str, raw: object) -> tuple[ClusterMember, ...]:
        if not isinstance(raw, str):
            raise _fail(key, f"{_show(raw)} is not a string (id,ingress,consensus,log,catchup,archive|...)")
        try:
            return parse_members(raw)
        except MembershipError as error:
            raise _fail(key, str(error)) from None

    def check(self, key: str, value: Any) -> tuple[ClusterMember, ...]:
        if isinstance(value, str):
            raise _fail(key, "is a string; parse it with parse_members, or use NodeConfig.from_mapping")
        try:
            return validate_members(value)
        except MembershipError as error:
            raise _fail(key, str(error)) from None
        except TypeError:
            raise _fail(key, f"{value!r} is not a sequence of ClusterMember") from None

    def write(self, value: Any) -> str:
        return _toml_string(format_members(value))


class _Path(_Kind):
    def check(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _fail(key, f"{_show(value)} is not a string (a directory path)")
        if value == "":
            raise _fail(key, "is empty; it needs a directory path")
        if "\x00" in value:
            raise _fail(key, f"{_show(value)} holds a NUL character, which no path may hold")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _fail(key, f"{value!r} is not valid Unicode text") from None
        return value

    def write(self, value: Any) -> str:
        return _toml_string(value)


@dataclass(frozen=True, slots=True)
class _Channel(_Kind):
    """A channel URI of one of ``media``; ``refused`` parameters come from elsewhere (the reason)."""

    media: tuple[str, ...]
    refused: tuple[tuple[str, str], ...] = ()  # (parameter, why it may not be set here)
    needs_endpoint: bool = False

    def check(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _fail(key, f'{_show(value)} is not a string (a channel URI such as "aeron:udp")')
        try:
            uri = ChannelUri.parse(value)
        except ChannelUriError as error:
            raise _fail(key, str(error)) from None
        if uri.is_spy:
            raise _fail(key, f"{_show(value)} is a spy channel (aeron-spy:), which cannot be used here")
        if uri.media not in self.media:
            raise _fail(key, f"{_show(value)} is {uri.media}; this channel must be {' or '.join(self.media)}")
        for param, reason in self.refused:
            if param in uri.params:
                raise _fail(key, f"{param}={uri.params[param]} is not allowed here: {reason}")
        if self.needs_endpoint and uri.endpoint is None:
            raise _fail(key, f"{_show(value)} has no endpoint=host:port to listen on")
        return value

    def write(self, value: Any) -> str:
        return _toml_string(value)


_DURATION = re.compile(r"([0-9]{1,20})(ns|us|ms|s|m)", re.ASCII)
_DURATION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000}
_DURATION_UNITS_WRITTEN = (("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000))


def _format_duration(ns: int) -> str:
    """``ns`` in the largest of s, ms, us and ns that holds it exactly: ``"10s"``, ``"200ms"``."""
    for unit, size in _DURATION_UNITS_WRITTEN:
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


class _Duration(_Kind):
    def __init__(self, *, zero_allowed: bool = False) -> None:
        self.zero_allowed = zero_allowed

    def read(self, key: str, raw: object) -> int:
        if isinstance(raw, str):
            match = _DURATION.fullmatch(raw)
            if match is None:
                raise _fail(
                    key,
                    f"{_show(raw)} is not a duration: digits and a unit, ns, us, ms, s or m "
                    '("200ms", "10s"), or an integer of nanoseconds',
                )
            return self._check_range(key, int(match.group(1)) * _DURATION_NS[match.group(2)], raw)
        return self.check(key, raw)

    def check(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(
                key,
                f'{_show(value)} is not a duration: an integer of nanoseconds, or a string such as "200ms"',
            )
        return self._check_range(key, value, value)

    def _check_range(self, key: str, ns: int, raw: object) -> int:
        if ns < 0 or (ns == 0 and not self.zero_allowed):
            raise _fail(key, f"{_show(raw)} is not {'zero or ' if self.zero_allowed else ''}positive")
        if ns > INT64_MAX:
            raise _fail(
                key, f"{_show(raw)} is more than 2^63-1 nanoseconds (Aeron holds a duration in a long)"
            )
        return ns

    def write(self, value: Any) -> str:
        return _toml_string(_format_duration(value))


class _SyncLevel(_Kind):
    def check(self, key: str, value: Any) -> SyncLevel:
        if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1, 2):
            raise _fail(
                key, f"{_show(value)} is not a sync level: 0 (none), 1 (data) or 2 (data and metadata)"
            )
        return SyncLevel(value)

    def write(self, value: Any) -> str:
        return str(int(value))


_SIZE = re.compile(r"([0-9]{1,20})([kKmMgG]?)", re.ASCII)
_SIZE_SHIFT = {"": 0, "k": 10, "m": 20, "g": 30}
_SIZE_UNITS_WRITTEN = (("g", 30), ("m", 20), ("k", 10))


class _SegmentLength(_Kind):
    """Aeron Archive's segment file length: a power of two from 64 KiB to 1 GiB (``Archive.Context``)."""

    def read(self, key: str, raw: object) -> int:
        if isinstance(raw, str):
            match = _SIZE.fullmatch(raw)
            if match is None:
                raise _fail(key, f'{_show(raw)} is not a size: digits with an optional k, m or g ("128m")')
            return self._check_range(key, int(match.group(1)) << _SIZE_SHIFT[match.group(2).lower()], raw)
        return self.check(key, raw)

    def check(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, f'{_show(value)} is not a size: an integer of bytes, or a string such as "128m"')
        return self._check_range(key, value, value)

    @staticmethod
    def _check_range(key: str, length: int, raw: object) -> int:
        if not (TERM_MIN_LENGTH <= length <= TERM_MAX_LENGTH and length & (length - 1) == 0):
            raise _fail(key, f"{_show(raw)} is not a power of two from 64k to 1g (65536 to 1073741824 bytes)")
        return length

    def write(self, value: Any) -> str:
        for suffix, shift in _SIZE_UNITS_WRITTEN:
            if value % (1 << shift) == 0:
                return _toml_string(f"{value >> shift}{suffix}")
        return str(value)  # pragma: no cover - a valid length is a multiple of 64k


# -------------------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class Setting:
    """One key of the file: the ``NodeConfig`` field it fills, its kind, and for a derived default the
    function that computes it from the rest of the configuration."""

    key: str
    field: str
    kind: _Kind
    derive: Callable[[NodeConfig], str] | None = None

    @property
    def aeron_property(self) -> str | None:
        """Aeron's name for the setting: the key with Aeron's ``aeron.`` prefix; ``None`` for our own
        keys, which Aeron has no property for."""
        return None if self.key in OUR_KEYS else "aeron." + self.key


# cluster.service.snapshot.stream.id is ours too: Aeron's container reads cluster.snapshot.stream.id in its
# own process, where our one file gives that key to the consensus module
# cluster.snapshot.interval is ours: Aeron's open-source consensus module snapshots only when asked
OUR_KEYS: Final = frozenset(
    {"cluster.service.class", "cluster.service.snapshot.stream.id", "cluster.snapshot.interval"}
)
_FROM_MEMBERS = "each member's endpoint comes from cluster.members"
_PER_TERM = "the node sets the log's position and session id itself, for each leadership term"
_UDP: Final = ("udp",)
_IPC: Final = ("ipc",)


def _archive_host(config: NodeConfig) -> str:
    host, _, _ = config.member.archive.rpartition(":")
    return host


def _derive_archive_dir(config: NodeConfig) -> str:
    """The directory ``archive`` beside ``cluster.dir``: ``node0/cluster`` -> ``node0/archive``."""
    path = config.cluster_dir.rstrip("/")
    if path == "":  # the root directory, its own parent
        return "/archive"
    head, slash, tail = path.rpartition("/")
    if tail in (".", ".."):
        return f"{path}/../archive"
    return f"{head}{slash}archive"


def _derive_archive_control_channel(config: NodeConfig) -> str:
    return f"aeron:udp?endpoint={config.member.archive}"


def _derive_replication_channel(config: NodeConfig) -> str:
    return f"aeron:udp?endpoint={_archive_host(config)}:0"


def _derive_archive_replication_channel(config: NodeConfig) -> str:
    return config.replication_channel


class _ClassName(_Kind):
    """A class the node loads as it starts (cluster.service.loader): a built-in name or
    package.module:Class, checked here for its form by ``check_name``."""

    def __init__(self, check_name: Callable[[str], str | None], built_in: str) -> None:
        self._check_name = check_name
        self._built_in = built_in

    def check(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _fail(key, f"{_show(value)} is not a string ({self._built_in} or package.module:Class)")
        problem = self._check_name(value)
        if problem is not None:
            raise _fail(key, problem)
        return value

    def write(self, value: Any) -> str:
        return _toml_string(value)


_MEMBERS = _Members()
_PATH = _Path()
_DURATION_KIND = _Duration()
_SYNC_LEVEL = _SyncLevel()

# In file order. Every key is an Aeron property without its "aeron." prefix, but cluster.service.class,
# ours: Aeron's container is given its service in code.
SETTINGS: Final[tuple[Setting, ...]] = (
    Setting("cluster.members", "members", _MEMBERS),
    Setting("cluster.member.id", "member_id", _Int(0, INT32_MAX)),
    Setting("cluster.id", "cluster_id", _INT32),
    Setting("cluster.dir", "cluster_dir", _PATH),
    Setting("cluster.appointed.leader.id", "appointed_leader_id", _Int(NULL_VALUE, INT32_MAX)),
    Setting("cluster.service.count", "service_count", _Int(0, MAX_SERVICE_COUNT)),
    Setting("cluster.service.class", "service_class", _ClassName(check_service_name, "echo, kv")),
    Setting("cluster.max.sessions", "max_sessions", _Int(0, INT32_MAX)),
    Setting(
        "cluster.authenticator.supplier",
        "authenticator_class",
        _ClassName(check_authenticator_name, "default"),
    ),
    Setting(
        "cluster.authorisation.service.supplier",
        "authorisation_service_class",
        _ClassName(check_authorisation_name, "default"),
    ),
    Setting("cluster.ingress.channel", "ingress_channel", _Channel(_UDP)),
    Setting("cluster.ingress.stream.id", "ingress_stream_id", _INT32),
    Setting(
        "cluster.log.channel",
        "log_channel",
        _Channel(
            ("udp", "ipc"),
            tuple((param, _PER_TERM) for param in ("init-term-id", "term-id", "term-offset", "session-id")),
        ),
    ),
    Setting("cluster.log.stream.id", "log_stream_id", _INT32),
    Setting("cluster.consensus.channel", "consensus_channel", _Channel(_UDP, (("endpoint", _FROM_MEMBERS),))),
    Setting("cluster.consensus.stream.id", "consensus_stream_id", _INT32),
    Setting(
        "cluster.follower.catchup.channel",
        "follower_catchup_channel",
        _Channel(_UDP, (("endpoint", _FROM_MEMBERS), ("session-id", _PER_TERM))),
    ),
    Setting(
        "cluster.leader.archive.control.channel",
        "leader_archive_control_channel",
        _Channel(_UDP, (("endpoint", "the endpoint is the leader's archive endpoint in cluster.members"),)),
    ),
    Setting(
        "cluster.replication.channel", "replication_channel", _Channel(_UDP), _derive_replication_channel
    ),
    Setting("cluster.replay.channel", "replay_channel", _Channel(_IPC)),
    Setting("cluster.control.channel", "control_channel", _Channel(_IPC)),
    Setting("cluster.service.stream.id", "service_stream_id", _INT32),
    Setting("cluster.consensus.module.stream.id", "consensus_module_stream_id", _INT32),
    Setting("cluster.replay.stream.id", "replay_stream_id", _INT32),
    Setting("cluster.snapshot.channel", "snapshot_channel", _Channel(_IPC)),
    Setting("cluster.snapshot.stream.id", "consensus_module_snapshot_stream_id", _INT32),
    Setting("cluster.service.snapshot.stream.id", "service_snapshot_stream_id", _INT32),
    Setting("cluster.election.timeout", "election_timeout_ns", _DURATION_KIND),
    Setting("cluster.election.status.interval", "election_status_interval_ns", _DURATION_KIND),
    Setting("cluster.leader.heartbeat.interval", "leader_heartbeat_interval_ns", _DURATION_KIND),
    Setting("cluster.leader.heartbeat.timeout", "leader_heartbeat_timeout_ns", _DURATION_KIND),
    Setting("cluster.startup.canvass.timeout", "startup_canvass_timeout_ns", _DURATION_KIND),
    Setting("cluster.session.timeout", "session_timeout_ns", _DURATION_KIND),
    Setting("cluster.termination.timeout", "termination_timeout_ns", _DURATION_KIND),
    Setting("cluster.snapshot.interval", "snapshot_interval_ns", _Duration(zero_allowed=True)),
    Setting("cluster.total.snapshot.threshold", "total_snapshot_threshold_ns", _DURATION_KIND),
    Setting("cluster.service.snapshot.threshold", "service_snapshot_threshold_ns", _DURATION_KIND),
    Setting("archive.dir", "archive_dir", _PATH, _derive_archive_dir),
    Setting(
        "archive.control.channel",
        "archive_control_channel",
        _Channel(_UDP, needs_endpoint=True),
        _derive_archive_control_channel,
    ),
    Setting("archive.control.stream.id", "archive_control_stream_id", _INT32),
    Setting("archive.local.control.channel", "archive_local_control_channel", _Channel(_IPC)),
    Setting("archive.local.control.stream.id", "archive_local_control_stream_id", _INT32),
    Setting(
        "archive.replication.channel",
        "archive_replication_channel",
        _Channel(_UDP),
        _derive_archive_replication_channel,
    ),
    Setting("archive.file.sync.level", "archive_file_sync_level", _SYNC_LEVEL),
    Setting("archive.catalog.file.sync.level", "archive_catalog_file_sync_level", _SYNC_LEVEL),
    Setting("archive.segment.file.length", "archive_segment_file_length", _SegmentLength()),
)
_BY_KEY: Final[dict[str, Setting]] = {setting.key: setting for setting in SETTINGS}
_MAX_KEY_DOTS: Final = max(setting.key.count(".") for setting in SETTINGS)
# The tables the keys make: "cluster", "cluster.member", "cluster.leader.archive", ...
_TABLES: Final[frozenset[str]] = frozenset(
    setting.key.rsplit(".", depth)[0]
    for setting in SETTINGS
    for depth in range(1, setting.key.count(".") + 1)
)


# ------------------------------------------------------------------------------------ the config


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """One cluster member's settings: its consensus module, its archive and the channels between them.

    Build one with ``load``, ``from_toml``, ``from_mapping`` or ``local_cluster``, or directly; every
    field is checked when the value is built (``NodeConfigError``). Fields whose default is ``""`` are
    derived from the others (see the module docstring) and then hold their value: ``dataclasses.replace``
    does not derive them again. Durations are nanoseconds.
    """

    members: tuple[ClusterMember, ...]
    member_id: int
    cluster_dir: str
    cluster_id: int = 0
    appointed_leader_id: int = _CORE_DEFAULTS["appointed_leader_id"]
    service_count: int = _CORE_DEFAULTS["service_count"]
    service_class: str = "echo"
    max_sessions: int = _CORE_DEFAULTS["max_sessions"]
    authenticator_class: str = "default"
    authorisation_service_class: str = "default"
    ingress_channel: str = "aeron:udp"
    ingress_stream_id: int = _CORE_DEFAULTS["ingress_stream_id"]
    log_channel: str = "aeron:udp?term-length=64m"
    log_stream_id: int = _CORE_DEFAULTS["log_stream_id"]
    consensus_channel: str = "aeron:udp?term-length=64k"
    consensus_stream_id: int = _CORE_DEFAULTS["consensus_stream_id"]
    follower_catchup_channel: str = "aeron:udp"
    leader_archive_control_channel: str = "aeron:udp?term-length=64k"
    replication_channel: str = ""
    replay_channel: str = "aeron:ipc"
    replay_stream_id: int = 103
    control_channel: str = "aeron:ipc?term-length=128k"
    service_stream_id: int = 104
    consensus_module_stream_id: int = 105
    snapshot_channel: str = "aeron:ipc?alias=snapshot"
    consensus_module_snapshot_stream_id: int = 107
    service_snapshot_stream_id: int = 106
    election_timeout_ns: int = _CORE_DEFAULTS["election_timeout_ns"]
    election_status_interval_ns: int = _CORE_DEFAULTS["election_status_interval_ns"]
    leader_heartbeat_interval_ns: int = _CORE_DEFAULTS["leader_heartbeat_interval_ns"]
    leader_heartbeat_timeout_ns: int = _CORE_DEFAULTS["leader_heartbeat_timeout_ns"]
    startup_canvass_timeout_ns: int = _CORE_DEFAULTS["startup_canvass_timeout_ns"]
    session_timeout_ns: int = _CORE_DEFAULTS["session_timeout_ns"]
    termination_timeout_ns: int = _CORE_DEFAULTS["termination_timeout_ns"]
    snapshot_interval_ns: int = 0  # 0: only when asked
    total_snapshot_threshold_ns: int = 1_000_000_000  # a whole snapshot longer than this is counted
    service_snapshot_threshold_ns: int = 1_000_000_000  # a service's snapshot longer than this is counted
    archive_dir: str = ""
    archive_control_channel: str = ""
    archive_control_stream_id: int = 10
    archive_local_control_channel: str = "aeron:ipc?term-length=64k"
    archive_local_control_stream_id: int = 10
    archive_replication_channel: str = ""
    archive_file_sync_level: SyncLevel = SyncLevel.NONE
    archive_catalog_file_sync_level: SyncLevel = SyncLevel.NONE
    archive_segment_file_length: int = 128 * 1024 * 1024

    def __post_init__(self) -> None:
        to_derive: list[tuple[Setting, Callable[[NodeConfig], str]]] = []
        for setting in SETTINGS:
            value = getattr(self, setting.field)
            if setting.derive is not None and value == "":
                to_derive.append((setting, setting.derive))
            else:
                object.__setattr__(self, setting.field, setting.kind.check(setting.key, value))
        self._check_membership()
        for setting, derive in to_derive:  # they read this member's endpoints, checked just above
            object.__setattr__(self, setting.field, setting.kind.check(setting.key, derive(self)))
        self._check_rules(derived={setting.key for setting, _ in to_derive})
        try:
            self.consensus_config()
        except ConfigError as error:  # pragma: no cover - the checks above are the core's and more
            raise NodeConfigError(f"cluster: {error}") from None

    def _check_membership(self) -> None:
        ids = [member.id for member in self.members]
        shown = ", ".join(map(str, ids))
        if self.member_id not in ids:
            raise _fail("cluster.member.id", f"{self.member_id} is not a member of cluster.members ({shown})")
        if self.appointed_leader_id != NULL_VALUE and self.appointed_leader_id not in ids:
            raise _fail(
                "cluster.appointed.leader.id",
                f"{self.appointed_leader_id} is neither -1 nor a member of cluster.members ({shown})",
            )

    def _check_rules(self, derived: set[str]) -> None:
        timeout = self.leader_heartbeat_timeout_ns
        if self.startup_canvass_timeout_ns < 2 * timeout:  # Aeron checks this at start-up
            raise _fail(
                "cluster.startup.canvass.timeout",
                f"{_format_duration(self.startup_canvass_timeout_ns)} is less than twice "
                f"cluster.leader.heartbeat.timeout ({_format_duration(timeout)})",
            )
        if self.leader_heartbeat_interval_ns >= timeout:  # ours (docs/consensus.md, "Departures from Aeron")
            raise _fail(
                "cluster.leader.heartbeat.interval",
                f"{_format_duration(self.leader_heartbeat_interval_ns)} is not less than "
                f"cluster.leader.heartbeat.timeout ({_format_duration(timeout)})",
            )
        if self.archive_catalog_file_sync_level < self.archive_file_sync_level:  # Aeron Archive's check
            raise _fail(
                "archive.catalog.file.sync.level",
                f"{int(self.archive_catalog_file_sync_level)} is below archive.file.sync.level "
                f"({int(self.archive_file_sync_level)}); the catalog must be synced at least as well",
            )
        if len(self.members) > 1 and ChannelUri.parse(self.log_channel).media == "ipc":
            raise _fail(
                "cluster.log.channel",
                f"{_show(self.log_channel)} stays within one process; "
                f"a cluster of {len(self.members)} members needs udp",
            )
        if _same_directory(self.archive_dir, self.cluster_dir):
            what = "defaults to" if "archive.dir" in derived else "is"
            raise _fail(
                "archive.dir",
                f"{what} {_show(self.archive_dir)}, which is cluster.dir; "
                "the archive needs a directory of its own",
            )

    # ------------------------------------------------------------------------------ derived values

    @property
    def member(self) -> ClusterMember:
        """This node's own entry in ``members``."""
        for member in self.members:
            if member.id == self.member_id:
                return member
        raise _fail("cluster.member.id", f"{self.member_id} is not a member of cluster.members")

    @property
    def log_term_length(self) -> int:
        """The log's term length: the log channel's ``term-length``, else the transport's default for its
        media (Aeron has no separate property; 64 MiB with the default log channel)."""
        return _term_length(self.log_channel)

    @property
    def snapshot_term_length(self) -> int:
        """The snapshot recordings' term length, as ``log_term_length`` finds it (64 MiB with the default
        IPC snapshot channel): a copy of a snapshot from another member arrives in terms of it."""
        return _term_length(self.snapshot_channel)

    def consensus_config(self) -> ConsensusConfig:
        """The consensus core's settings for this member."""
        return ConsensusConfig(
            member_id=self.member_id,
            members=self.members,
            appointed_leader_id=self.appointed_leader_id,
            service_count=self.service_count,
            max_sessions=self.max_sessions,
            election_timeout_ns=self.election_timeout_ns,
            election_status_interval_ns=self.election_status_interval_ns,
            leader_heartbeat_interval_ns=self.leader_heartbeat_interval_ns,
            leader_heartbeat_timeout_ns=self.leader_heartbeat_timeout_ns,
            startup_canvass_timeout_ns=self.startup_canvass_timeout_ns,
            session_timeout_ns=self.session_timeout_ns,
            termination_timeout_ns=self.termination_timeout_ns,
            snapshot_interval_ns=self.snapshot_interval_ns,
            log_stream_id=self.log_stream_id,
            consensus_stream_id=self.consensus_stream_id,
            ingress_stream_id=self.ingress_stream_id,
            backup_response_channel=ChannelUri.parse(self.consensus_channel)
            .with_params(endpoint=self.member.consensus)
            .build(),
        )

    # --------------------------------------------------------------------------------- reading

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NodeConfig:
        """Read and check the TOML file at ``path`` (at most ``MAX_FILE_BYTES``)."""
        name = os.fspath(path)
        try:
            data = read_path(name, max_bytes=MAX_FILE_BYTES)
        except StorageError as error:
            raise NodeConfigError(str(error)) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise NodeConfigError(f"{name}: not UTF-8 text (byte {error.start})") from None
        return cls.from_toml(text, source=name)

    @classmethod
    def from_toml(cls, text: str, *, source: str = "<string>") -> NodeConfig:
        """Read and check TOML ``text``; errors name ``source`` (the file) first."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise NodeConfigError(_syntax_error(source, text, error)) from None
        except RecursionError:  # tomllib reads nested arrays and inline tables recursively
            raise NodeConfigError(f"{source}: TOML syntax: arrays or tables nested too deeply") from None
        try:
            return cls.from_mapping(data)
        except NodeConfigError as error:
            raise NodeConfigError(f"{source}: {error}") from None

    @classmethod
    def from_mapping(cls, settings: Mapping[str, object]) -> NodeConfig:
        """Check settings given as nested tables (what ``tomllib`` returns) or dotted keys, or both."""
        flat = _flatten(settings)
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            if setting.key in flat:
                values[setting.field] = setting.kind.read(setting.key, flat[setting.key])
            elif _DEFAULTS[setting.field] is MISSING:
                raise _fail(setting.key, "missing; it has no default")
        return cls(**values)

    # --------------------------------------------------------------------------------- writing

    def to_toml(self) -> str:
        """Every setting as TOML, one ``[cluster]`` and one ``[archive]`` table; ``from_toml`` reads it back
        equal."""
        lines = ["# An Aeron Cluster node (python -m tools node --config FILE); keys: docs/node-config.md"]
        table = ""
        for setting in SETTINGS:
            head, _, rest = setting.key.partition(".")
            if head != table:
                lines += ["", f"[{head}]"]
                table = head
            lines.append(f"{rest} = {setting.kind.write(getattr(self, setting.field))}")
        return "\n".join(lines) + "\n"

    # --------------------------------------------------------------------------- local clusters

    @classmethod
    def local_cluster(
        cls,
        nodes: int,
        base_dir: str,
        base_port: int = 9000,
        settings: Mapping[str, object] | None = None,
        hosts: Sequence[str] | None = None,
    ) -> tuple[NodeConfig, ...]:
        """The configurations of a cluster of ``nodes`` members on 127.0.0.1, as Aeron's tests lay one out.

        Member i uses port ``base_port + 100 * i + k``: k = 1 archive control, 2 ingress, 3 consensus,
        4 log, 5 catch-up; its directories are ``<base_dir>/node<i>/cluster`` and ``.../archive``.
        ``settings`` (dotted keys or tables) apply to every member; the members, member ids and
        directories are the builder's to choose. ``hosts``, if given, puts member i's endpoints on
        ``hosts[i]`` instead (one address per member, e.g. each in a network namespace of its own).
        """
        if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= MAX_MEMBERS:
            raise _fail("nodes", f"{nodes!r} is not a member count in [1, {MAX_MEMBERS}]")
        if isinstance(base_port, bool) or not isinstance(base_port, int) or base_port < 0:
            raise _fail("base_port", f"{base_port!r} is not a port number")
        top = base_port + _PORT_STRIDE * (nodes - 1) + _CATCHUP_PORT
        if top > 65535:
            raise _fail("base_port", f"{base_port} with {nodes} nodes needs ports up to {top}, above 65535")
        base = _PATH.check("base_dir", base_dir)
        shared = _flatten(settings or {})
        chosen = sorted(set(shared) & {"cluster.members", "cluster.member.id", "cluster.dir", "archive.dir"})
        if chosen:
            raise _fail(chosen[0], "is chosen by local_cluster for each member; leave it out of settings")
        if hosts is not None and (
            isinstance(hosts, str) or len(hosts) != nodes or not all(isinstance(h, str) and h for h in hosts)
        ):
            raise _fail("hosts", f"{hosts!r} is not one host name or address per member ({nodes})")
        members = _local_members(nodes, base_port, [LOCAL_HOST] * nodes if hosts is None else list(hosts))
        prefix = base if base.endswith("/") else base + "/"
        return tuple(
            cls.from_mapping(
                {
                    **shared,
                    "cluster.members": members,
                    "cluster.member.id": index,
                    "cluster.dir": f"{prefix}node{index}/cluster",
                    "archive.dir": f"{prefix}node{index}/archive",
                }
            )
            for index in range(nodes)
        )


_DEFAULTS: Final[dict[str, object]] = {field.name: field.default for field in fields(NodeConfig)}


def _local_members(nodes: int, base_port: int, hosts: list[str]) -> str:
    def endpoint(index: int, port: int) -> str:
        return f"{hosts[index]}:{base_port + _PORT_STRIDE * index + port}"

    return "|".join(
        ",".join(
            (
                str(index),
                endpoint(index, _INGRESS_PORT),
                endpoint(index, _CONSENSUS_PORT),
                endpoint(index, _LOG_PORT),
                endpoint(index, _CATCHUP_PORT),
                endpoint(index, _ARCHIVE_PORT),
            )
        )
        for index in range(nodes)
    )


def _same_directory(a: str, b: str) -> bool:
    """The same path once trailing slashes go (a typo guard, not a file-system check)."""
    return (a.rstrip("/") or "/") == (b.rstrip("/") or "/")


# ------------------------------------------------------------------------------ keys and tables


def _flatten(settings: object) -> dict[str, object]:
    """Nested tables as dotted keys (``{"cluster": {"member": {"id": 1}}}`` -> ``cluster.member.id``),
    refusing unknown keys and a key given twice."""
    if not isinstance(settings, Mapping):
        raise NodeConfigError(f"the settings are {_show(settings)}, not a table of keys")
    flat: dict[str, object] = {}
    _flatten_into(settings, "", flat)
    return flat


def _flatten_into(table: Mapping[Any, object], prefix: str, flat: dict[str, object]) -> None:
    for name, value in table.items():
        if not isinstance(name, str):
            raise NodeConfigError(f"{prefix}{name!r}: a key must be a string")
        key = prefix + name
        if isinstance(value, Mapping) and key not in _BY_KEY:
            if key not in _TABLES and (not value or key.count(".") >= _MAX_KEY_DOTS):
                raise _fail(key, _unknown(key, _TABLES, "table"))  # empty, or deeper than any key
            _flatten_into(value, key + ".", flat)
            continue
        if key not in _BY_KEY:
            raise _fail(key, _unknown(key, _BY_KEY, "key"))
        if key in flat:
            raise _fail(key, "given twice (as a dotted key and inside a table)")
        flat[key] = value


def _unknown(name: str, known: Collection[str], what: str) -> str:
    """Why the key or table ``name`` is refused, with the one that was probably meant."""
    if name.startswith("aeron.") and name[len("aeron.") :] in known:
        return f"unknown {what}; names leave out Aeron's 'aeron.' prefix: {name[len('aeron.') :]}"
    # Outside its table (members), or under the other one (cluster.segment.file.length).
    table, _, rest = name.partition(".")
    wanted = {name, rest} if table in _TABLES and rest else {name}
    moved = [candidate for candidate in known if candidate.partition(".")[2] in wanted]
    if moved:
        return f"unknown {what}; did you mean {' or '.join(moved)}?"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    if close:
        return f"unknown {what}; did you mean {close[0]}?"
    return f"unknown {what} (docs/node-config.md lists the keys)"


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_END = re.compile(r"\s*\(at end of document\)$")


def _syntax_error(source: str, text: str, error: tomllib.TOMLDecodeError) -> str:
    """``<source>:<line>:<column>: TOML syntax: <what>``, on one line."""
    message = " ".join(str(error).split())
    at = _TOML_POSITION.search(message)
    if at is not None:
        return f"{source}:{at.group(1)}:{at.group(2)}: TOML syntax: {message[: at.start()]}"
    end = _TOML_END.search(message)
    if end is not None:
        line, column = text.count("\n") + 1, len(text) - text.rfind("\n")
        return f"{source}:{line}:{column}: TOML syntax: {message[: end.start()]} at the end of the file"
    return f"{source}: TOML syntax: {message}"  # pragma: no cover - tomllib always says where


def _term_length(channel: str) -> int:
    """A channel's ``term-length``, else the transport's default for its media."""
    uri = ChannelUri.parse(channel)
    explicit = uri.term_length
    if explicit is not None:
        return explicit
    return IPC_TERM_LENGTH_DEFAULT if uri.media == "ipc" else UDP_TERM_LENGTH_DEFAULT
