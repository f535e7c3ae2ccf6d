"""Aeron channel URIs: ``aeron:udp?endpoint=host:port|term-length=64k`` and ``aeron:ipc``.

Theory of operation
-------------------
A channel URI is ``[aeron-spy:]aeron:<media>[?key=value|key=value...]`` (Aeron ``ChannelUri``). Parsing
splits the text the way Aeron does -- media up to the first ``?``, parameters on ``|``, each parameter on
its *first* ``=`` so a value may itself hold ``=`` or ``:`` -- but is stricter than Aeron in four ways,
so that a typo fails at start-up rather than being silently ignored by the driver:

* media must be ``udp`` or ``ipc``;
* a key may appear only once (Aeron lets the last one win);
* a key is non-empty and made of ``[A-Za-z0-9._-]`` (no whitespace), and a value is non-empty;
* the well-known parameters are validated as the driver would validate them when it creates the
  publication or subscription (``PublicationParams``, ``Configuration.validateMtuLength``,
  ``LogBufferDescriptor.checkTermLength``), using the driver's defaults for an absent ``term-length``
  (docs/transport.md, "Defaults").

Unknown keys are kept, in order, and round-trip: ``str(ChannelUri.parse(text)) == text`` for any text
``parse`` accepts. A ``ChannelUri`` is immutable and always valid: the constructor runs ``validate()``,
so ``with_params`` can never produce a URI that ``parse`` would reject. The typed accessors
(``endpoint``, ``term_length``, ...) parse their value on each access with the same checks.

Every failure raises ``ChannelUriError`` whose message names the bad part, e.g.
``term-length=70000 is not a power of two between 64 KiB and 1 GiB``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

from cluster.transport.errors import ChannelUriError

__all__ = ["ChannelParams", "ChannelUri", "ControlMode"]

ControlMode = Literal["manual", "dynamic", "response"]

AERON_PREFIX = "aeron:"
SPY_QUALIFIER = "aeron-spy"
SPY_PREFIX = SPY_QUALIFIER + ":"
MEDIA = ("udp", "ipc")

FRAME_ALIGNMENT = 32
HEADER_LENGTH = 32  # DataHeaderFlyweight.HEADER_LENGTH
MAX_UDP_PAYLOAD_LENGTH = 65504
TERM_MIN_LENGTH = 64 * 1024
TERM_MAX_LENGTH = 1024 * 1024 * 1024
UDP_TERM_LENGTH_DEFAULT = 16 * 1024 * 1024  # Aeron's Configuration.TERM_BUFFER_LENGTH_DEFAULT
IPC_TERM_LENGTH_DEFAULT = 64 * 1024 * 1024  # Aeron's Configuration.IPC_TERM_BUFFER_LENGTH_DEFAULT
MAX_MESSAGE_LENGTH_CAP = 16 * 1024 * 1024

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

ENDPOINT = "endpoint"
CONTROL = "control"
CONTROL_MODE = "control-mode"
TERM_LENGTH = "term-length"
MTU = "mtu"
INIT_TERM_ID = "init-term-id"
TERM_ID = "term-id"
TERM_OFFSET = "term-offset"
SESSION_ID = "session-id"
LINGER = "linger"
TTL = "ttl"
RELIABLE = "reliable"
SPARSE = "sparse"
ALIAS = "alias"
TAGS = "tags"

INITIAL_POSITION_KEYS = (INIT_TERM_ID, TERM_ID, TERM_OFFSET)
CONTROL_MODES: tuple[ControlMode, ...] = ("manual", "dynamic", "response")

_KEY = re.compile(r"[A-Za-z0-9._-]+")
_INT = re.compile(r"[+-]?[0-9]+")
_SIZE = re.compile(r"([0-9]+)([kKmMgG]?)")
_DURATION = re.compile(r"([0-9]+)(ns|us|ms|s)?", re.IGNORECASE | re.ASCII)  # ASCII: no "ſ" for "s"
_PORT = re.compile(r"[0-9]{1,5}")
_HOST = re.compile(r"[A-Za-z0-9._-]+")
_IPV6_ENDPOINT = re.compile(r"\[([^\]%]*)(?:%([^\]]*))?\](?::(.*))?")
_SCOPE = re.compile(r"[A-Za-z0-9_.~-]+")
_SIZE_SHIFT = {"": 0, "k": 10, "m": 20, "g": 30}
_DURATION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def _show(text: str, limit: int = 120) -> str:
    """``text`` quoted for an error message, cut short if long."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


# --------------------------------------------------------------------------------- value parsers


def _parse_int(key: str, value: str, low: int, high: int, what: str) -> int:
    if _INT.fullmatch(value) is None:
        raise ChannelUriError(f"{key}={value} is not an integer")
    number = int(value)
    if not low <= number <= high:
        raise ChannelUriError(f"{key}={value} is out of range for {what} [{low}, {high}]")
    return number


def _parse_int32(key: str, value: str) -> int:
    return _parse_int(key, value, INT32_MIN, INT32_MAX, "an int32")


def _parse_size(key: str, value: str) -> int:
    """Agrona ``SystemUtil.parseSize``: digits with an optional k/m/g suffix (1024 multiples)."""
    match = _SIZE.fullmatch(value)
    if match is None:
        raise ChannelUriError(f"{key}={value} is not a size (digits with an optional k, m or g suffix)")
    return int(match.group(1)) << _SIZE_SHIFT[match.group(2).lower()]


def _parse_term_length(value: str) -> int:
    length = _parse_size(TERM_LENGTH, value)
    if not (TERM_MIN_LENGTH <= length <= TERM_MAX_LENGTH and length & (length - 1) == 0):
        raise ChannelUriError(f"{TERM_LENGTH}={value} is not a power of two between 64 KiB and 1 GiB")
    return length


def _parse_mtu(value: str) -> int:
    mtu = _parse_size(MTU, value)
    if not HEADER_LENGTH < mtu <= MAX_UDP_PAYLOAD_LENGTH:
        raise ChannelUriError(
            f"{MTU}={value} must be > {HEADER_LENGTH} (header length) and <= {MAX_UDP_PAYLOAD_LENGTH}"
        )
    if mtu % FRAME_ALIGNMENT != 0:
        raise ChannelUriError(f"{MTU}={value} is not a multiple of {FRAME_ALIGNMENT} (frame alignment)")
    return mtu


def _parse_duration_ns(key: str, value: str) -> int:
    """Agrona ``SystemUtil.parseDuration``: digits with an optional ns/us/ms/s suffix (default ns)."""
    match = _DURATION.fullmatch(value)
    if match is None:
        raise ChannelUriError(f"{key}={value} is not a duration (digits with an optional ns, us, ms or s)")
    return int(match.group(1)) * _DURATION_NS[(match.group(2) or "ns").lower()]


def _parse_bool(key: str, value: str) -> bool:
    if value == "true":
        return True
    if value == "false":
        return False
    raise ChannelUriError(f"{key}={value} is not 'true' or 'false'")


def _parse_endpoint(key: str, value: str) -> tuple[str, int]:
    """``host:port`` or ``[ipv6%scope]:port``; the host comes back without brackets."""
    ipv6 = _IPV6_ENDPOINT.fullmatch(value)
    if ipv6 is not None:
        address, scope, port_text = ipv6.groups()
        if port_text is None:
            raise ChannelUriError(f"{key} {value!r} has no port")
        try:
            ipaddress.IPv6Address(address)  # also rejects empty text and any non-ASCII
        except ValueError:
            raise ChannelUriError(f"{key}={value} has a bad IPv6 address {address!r}") from None
        if scope is not None and _SCOPE.fullmatch(scope) is None:
            raise ChannelUriError(f"{key}={value} has a bad IPv6 scope {scope!r}")
        host = address if scope is None else f"{address}%{scope}"
    elif value.startswith("["):
        raise ChannelUriError(f"{key}={value} is not '[ipv6-address]:port'")
    else:
        host, colon, port_text = value.rpartition(":")
        if not colon:
            raise ChannelUriError(f"{key} {value!r} has no port")
        if _HOST.fullmatch(host) is None:
            raise ChannelUriError(f"{key}={value} has a bad host {host!r} (IPv6 needs brackets)")
    if _PORT.fullmatch(port_text) is None or int(port_text) > 65535:
        raise ChannelUriError(f"{key}={value} has a bad port {port_text!r} (0..65535)")
    return host, int(port_text)


def _parse_control_mode(value: str) -> ControlMode:
    if value not in CONTROL_MODES:
        raise ChannelUriError(f"{CONTROL_MODE}={value} is not one of {', '.join(CONTROL_MODES)}")
    return value


def _parse_session_id(value: str) -> int | None:
    """A plain int32 session id, or ``None`` for Aeron's ``tag:N`` reference (checked to be an int64)."""
    if value.startswith("tag:"):
        _parse_int(SESSION_ID, value[4:], INT64_MIN, INT64_MAX, "a tag")
        return None
    return _parse_int32(SESSION_ID, value)


def _parse_tags(value: str) -> tuple[int | None, int | None]:
    """``tags=channelTag[,entityTag]``; either may be empty (Aeron ``ChannelUri.splitTags``)."""
    parts = value.split(",")
    if len(parts) > 2:
        raise ChannelUriError(f"{TAGS}={value} has more than two tags (channelTag,entityTag)")
    tags = [None if part == "" else _parse_int(TAGS, part, INT64_MIN, INT64_MAX, "a tag") for part in parts]
    while len(tags) < 2:
        tags.append(None)
    return tags[0], tags[1]


def _parse_alias(value: str) -> str:
    return value


# key -> checker run by validate(); the accessors call the same parsers.
_CHECKS: dict[str, Callable[[str], object]] = {
    ENDPOINT: lambda v: _parse_endpoint(ENDPOINT, v),
    CONTROL: lambda v: _parse_endpoint(CONTROL, v),
    CONTROL_MODE: _parse_control_mode,
    TERM_LENGTH: _parse_term_length,
    MTU: _parse_mtu,
    INIT_TERM_ID: lambda v: _parse_int32(INIT_TERM_ID, v),
    TERM_ID: lambda v: _parse_int32(TERM_ID, v),
    TERM_OFFSET: lambda v: _parse_int32(TERM_OFFSET, v),
    SESSION_ID: _parse_session_id,
    LINGER: lambda v: _parse_duration_ns(LINGER, v),
    TTL: lambda v: _parse_int(TTL, v, 0, 255, "a multicast ttl"),
    RELIABLE: lambda v: _parse_bool(RELIABLE, v),
    SPARSE: lambda v: _parse_bool(SPARSE, v),
    ALIAS: _parse_alias,
    TAGS: _parse_tags,
}


# ------------------------------------------------------------------------------------ parameters


class ChannelParams(Mapping[str, str]):
    """Read-only, insertion-ordered, hashable ``key -> value`` parameters of a channel URI.

    Equality and hash ignore order (Aeron keeps parameters in a map); iteration and ``str`` keep it.
    """

    __slots__ = ("_items", "_map")

    def __init__(self, params: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = params.items() if isinstance(params, Mapping) else params
        items: dict[str, str] = {}
        for key, value in pairs:
            _check_key(key)
            if key in items:
                raise ChannelUriError(f"duplicate parameter {key!r}")
            _check_value(key, value)
            items[key] = value
        self._map = items
        self._items = tuple(items.items())

    def __getitem__(self, key: str) -> str:
        return self._map[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChannelParams):
            return self._map == other._map
        if isinstance(other, Mapping):
            return self._map == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._items))

    def __repr__(self) -> str:
        return f"ChannelParams({self._map!r})"

    def text(self) -> str:
        """``key=value|key=value`` in insertion order."""
        return "|".join(f"{key}={value}" for key, value in self._items)


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise ChannelUriError(f"parameter key {key!r} is not a string")
    if key == "":
        raise ChannelUriError("empty parameter key")
    if _KEY.fullmatch(key) is None:
        raise ChannelUriError(f"parameter key {key!r} has characters outside [A-Za-z0-9._-]")


def _check_value(key: str, value: object) -> None:
    if not isinstance(value, str):
        raise ChannelUriError(f"{key}={value!r} is not a string")
    if value == "":
        raise ChannelUriError(f"{key}= has an empty value")
    if "|" in value:
        raise ChannelUriError(f"{key}={value} contains '|', the parameter separator")


# ------------------------------------------------------------------------------------------ URI


@dataclass(frozen=True, slots=True)
class ChannelUri:
    """A parsed, validated Aeron channel URI. Build one with ``parse`` or the constructor."""

    media: str
    params: Mapping[str, str] = field(default_factory=dict)
    prefix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", ChannelParams(self.params))
        self.validate()

    # ------------------------------------------------------------------ text

    @classmethod
    def parse(cls, text: str) -> ChannelUri:
        """Parse and validate ``text``; raises ``ChannelUriError`` naming the bad part."""
        if not isinstance(text, str):
            raise ChannelUriError(f"channel URI must be a string, not {type(text).__name__}")
        rest = text
        prefix = ""
        if rest.startswith(SPY_PREFIX):
            prefix = SPY_QUALIFIER
            rest = rest[len(SPY_PREFIX) :]
        if not rest.startswith(AERON_PREFIX):
            raise ChannelUriError(f"channel URI {_show(text)} does not start with 'aeron:'")
        rest = rest[len(AERON_PREFIX) :]
        media, question, query = rest.partition("?")
        if ":" in media:
            raise ChannelUriError(f"media {media!r} in {_show(text)} contains ':'")
        if media not in MEDIA:
            raise ChannelUriError(f"unknown media {media!r} in {_show(text)} (expected udp or ipc)")
        pairs: list[tuple[str, str]] = []
        if question:
            if query == "":
                raise ChannelUriError(f"{_show(text)} has '?' but no parameters")
            for index, part in enumerate(query.split("|")):
                key, equals, value = part.partition("=")
                if not equals:
                    raise ChannelUriError(f"parameter {index} {part!r} in {_show(text)} has no '='")
                if key == "":
                    raise ChannelUriError(f"parameter {index} {part!r} in {_show(text)} has an empty key")
                pairs.append((key, value))
        return cls(media, ChannelParams(pairs), prefix)

    def build(self) -> str:
        """The canonical text: ``[aeron-spy:]aeron:<media>[?k=v|...]`` in parameter order."""
        head = (self.prefix + ":" if self.prefix else "") + AERON_PREFIX + self.media
        params = cast(ChannelParams, self.params)
        return f"{head}?{params.text()}" if params else head

    def __str__(self) -> str:
        return self.build()

    # ------------------------------------------------------------ validation

    def validate(self) -> None:
        """Check the media, prefix, every known parameter and the cross-parameter rules."""
        if self.prefix not in ("", SPY_QUALIFIER):
            raise ChannelUriError(f"prefix {self.prefix!r} is not '' or {SPY_QUALIFIER!r}")
        if self.media not in MEDIA:
            raise ChannelUriError(f"unknown media {self.media!r} (expected udp or ipc)")
        for key, value in self.params.items():
            check = _CHECKS.get(key)
            if check is not None:
                check(value)
        self._validate_initial_position()
        self._validate_mtu_for_term_length()

    def _effective_term_length(self) -> int:
        explicit = self.term_length
        if explicit is not None:
            return explicit
        return IPC_TERM_LENGTH_DEFAULT if self.media == "ipc" else UDP_TERM_LENGTH_DEFAULT

    def _validate_initial_position(self) -> None:
        """Aeron ``PublicationParams``: init-term-id, term-id and term-offset come as a set."""
        present = [key for key in INITIAL_POSITION_KEYS if key in self.params]
        if not present:
            return
        if len(present) < len(INITIAL_POSITION_KEYS):
            missing = [key for key in INITIAL_POSITION_KEYS if key not in self.params]
            raise ChannelUriError(
                f"{', '.join(present)} given without {', '.join(missing)}: "
                f"{' '.join(INITIAL_POSITION_KEYS)} must be used as a complete set"
            )
        init_term_id = _parse_int32(INIT_TERM_ID, self.params[INIT_TERM_ID])
        term_id = _parse_int32(TERM_ID, self.params[TERM_ID])
        term_offset = _parse_int32(TERM_OFFSET, self.params[TERM_OFFSET])
        term_length = self._effective_term_length()
        if term_offset < 0 or term_offset > term_length:
            raise ChannelUriError(f"{TERM_OFFSET}={term_offset} is not in [0, {TERM_LENGTH}={term_length}]")
        if term_offset % FRAME_ALIGNMENT != 0:
            raise ChannelUriError(
                f"{TERM_OFFSET}={term_offset} is not a multiple of {FRAME_ALIGNMENT} (frame alignment)"
            )
        term_count = ((term_id - init_term_id + 2**31) % 2**32) - 2**31  # int32 subtraction
        if term_count < 0:
            raise ChannelUriError(
                f"{TERM_ID}={term_id} is before {INIT_TERM_ID}={init_term_id} "
                "(difference greater than 2^31 - 1)"
            )

    def _validate_mtu_for_term_length(self) -> None:
        """Aeron ``validateMtuForMaxMessage``: mtu <= max message length = min(termLength/8, 16 MiB)."""
        mtu = self.mtu
        if mtu is None:
            return
        term_length = self._effective_term_length()
        max_message_length = min(term_length // 8, MAX_MESSAGE_LENGTH_CAP)
        if mtu > max_message_length:
            raise ChannelUriError(
                f"{MTU}={mtu} is greater than the max message length {max_message_length} "
                f"for {TERM_LENGTH}={term_length}"
            )

    # ------------------------------------------------------------- accessors

    def get(self, key: str) -> str | None:
        """The raw value of ``key``, or ``None``."""
        return self.params.get(key)

    def get_size(self, key: str) -> int | None:
        """``key`` as a size with an optional k/m/g suffix (``rcv-wnd``, ``pub-wnd``, ...), or ``None``."""
        value = self.params.get(key)
        return None if value is None else _parse_size(key, value)

    def get_duration_ns(self, key: str) -> int | None:
        """``key`` as a duration with an optional ns/us/ms/s suffix (``nak-delay``, ...), or ``None``."""
        value = self.params.get(key)
        return None if value is None else _parse_duration_ns(key, value)

    def get_bool(self, key: str) -> bool | None:
        """``key`` as ``true`` or ``false``, or ``None``."""
        value = self.params.get(key)
        return None if value is None else _parse_bool(key, value)

    @property
    def is_spy(self) -> bool:
        return self.prefix == SPY_QUALIFIER

    @property
    def endpoint(self) -> tuple[str, int] | None:
        """``(host, port)``; an IPv6 host comes without brackets. Port 0 means ephemeral."""
        value = self.params.get(ENDPOINT)
        return None if value is None else _parse_endpoint(ENDPOINT, value)

    @property
    def control(self) -> tuple[str, int] | None:
        value = self.params.get(CONTROL)
        return None if value is None else _parse_endpoint(CONTROL, value)

    @property
    def control_mode(self) -> ControlMode | None:
        value = self.params.get(CONTROL_MODE)
        return None if value is None else _parse_control_mode(value)

    @property
    def term_length(self) -> int | None:
        value = self.params.get(TERM_LENGTH)
        return None if value is None else _parse_term_length(value)

    @property
    def mtu(self) -> int | None:
        value = self.params.get(MTU)
        return None if value is None else _parse_mtu(value)

    @property
    def init_term_id(self) -> int | None:
        value = self.params.get(INIT_TERM_ID)
        return None if value is None else _parse_int32(INIT_TERM_ID, value)

    @property
    def term_id(self) -> int | None:
        value = self.params.get(TERM_ID)
        return None if value is None else _parse_int32(TERM_ID, value)

    @property
    def term_offset(self) -> int | None:
        value = self.params.get(TERM_OFFSET)
        return None if value is None else _parse_int32(TERM_OFFSET, value)

    @property
    def session_id(self) -> int | None:
        """The int32 session id; ``None`` if absent or a ``tag:N`` reference (see ``session_id_tag``)."""
        value = self.params.get(SESSION_ID)
        return None if value is None else _parse_session_id(value)

    @property
    def session_id_tag(self) -> int | None:
        """``N`` of ``session-id=tag:N`` (the session id of the publication tagged ``N``), else ``None``."""
        value = self.params.get(SESSION_ID)
        if value is None or not value.startswith("tag:"):
            return None
        return _parse_int(SESSION_ID, value[4:], INT64_MIN, INT64_MAX, "a tag")

    @property
    def linger_ns(self) -> int | None:
        value = self.params.get(LINGER)
        return None if value is None else _parse_duration_ns(LINGER, value)

    @property
    def ttl(self) -> int | None:
        value = self.params.get(TTL)
        return None if value is None else _parse_int(TTL, value, 0, 255, "a multicast ttl")

    @property
    def reliable(self) -> bool | None:
        value = self.params.get(RELIABLE)
        return None if value is None else _parse_bool(RELIABLE, value)

    @property
    def sparse(self) -> bool | None:
        value = self.params.get(SPARSE)
        return None if value is None else _parse_bool(SPARSE, value)

    @property
    def alias(self) -> str | None:
        return self.params.get(ALIAS)

    @property
    def tags(self) -> tuple[int | None, int | None] | None:
        """``(channel_tag, entity_tag)`` from ``tags=channelTag,entityTag``; either may be ``None``."""
        value = self.params.get(TAGS)
        return None if value is None else _parse_tags(value)

    # -------------------------------------------------------------- updates

    def with_param(self, key: str, value: str | int | bool | None) -> ChannelUri:
        """A copy with ``key`` set (kept in place if present, else appended) or removed (``None``)."""
        items = dict(self.params)
        if value is None:
            items.pop(key, None)
        else:
            items[key] = _format_value(value)
        return ChannelUri(self.media, ChannelParams(items), self.prefix)

    def with_params(self, **changes: str | int | bool | None) -> ChannelUri:
        """A copy with several parameters changed; ``session_id=7`` sets ``session-id``."""
        items = dict(self.params)
        for name, value in changes.items():
            key = name.replace("_", "-")
            if value is None:
                items.pop(key, None)
            else:
                items[key] = _format_value(value)
        return ChannelUri(self.media, ChannelParams(items), self.prefix)


def _format_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
