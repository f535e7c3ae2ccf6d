"""Channel handling of the archive: stripped channels, recording keys, replay channels.

A recording's *stripped channel* is its channel without the parameters that only size or position a
publication (``term-length``, ``mtu``, ``init-term-id``, ``term-id``, ``term-offset``, ``sparse``,
``linger``, ``eos``, ``ssc``, ``pub-wnd``, ...): what identifies the stream. The archive subscribes with it,
stores it in the catalog beside the original, and matches listings by URI against it. Kept parameters are
written in a fixed order, tags first, as Aeron's channel builder writes them, so a stripped channel
reads the same whoever stripped it.

A recording subscription's *key* is the stream id plus the channel's addressing (endpoint, interface,
control, session-id, tags): a second ``start_recording`` of the same key is refused while the first
subscription exists.
"""

from __future__ import annotations

from cluster.transport.uri import ChannelParams, ChannelUri

__all__ = ["SPY_PREFIX", "recording_key", "replay_channel", "stripped_channel"]

SPY_PREFIX = "aeron-spy:"

_KEPT_IN_ORDER = (
    "tags",
    "endpoint",
    "interface",
    "control",
    "control-mode",
    "session-id",
    "ttl",
    "reliable",
    "rejoin",
    "group",
    "tether",
    "alias",
    "cc",
    "fc",
    "gtag",
    "so-sndbuf",
    "so-rcvbuf",
    "rcv-wnd",
    "channel-snd-ts-offset",
    "channel-rcv-ts-offset",
    "media-rcv-ts-offset",
    "response-correlation-id",
    "response-endpoint",
    "stream-id",
)
_KEY_PARAMS = ("endpoint", "interface", "control", "session-id", "tags")


def stripped_channel(uri: ChannelUri) -> str:
    """The stripped channel of ``uri`` (see the module docstring), as text, without a spy prefix."""
    params = [(key, uri.params[key]) for key in _KEPT_IN_ORDER if key in uri.params]
    return ChannelUri(uri.media, ChannelParams(params)).build()


def recording_key(stream_id: int, uri: ChannelUri) -> str:
    parts = [f"{key}={uri.params[key]}" for key in _KEY_PARAMS if key in uri.params]
    return f"{stream_id}:{uri.media}?{'|'.join(parts)}"


def replay_channel(
    uri: ChannelUri,
    *,
    replay_position: int,
    initial_term_id: int,
    term_length: int,
    mtu: int,
    linger_ns: int,
) -> str:
    """The channel of a replay publication: the client's replay channel (stripped) positioned at
    ``replay_position`` of a stream with the recording's initial term id, term length and MTU."""
    shift = term_length.bit_length() - 1
    term_id = initial_term_id + (replay_position >> shift)
    term_id = ((term_id + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000
    params = [(key, uri.params[key]) for key in _KEPT_IN_ORDER if key in uri.params]
    params += [
        ("init-term-id", str(initial_term_id)),
        ("term-id", str(term_id)),
        ("term-offset", str(replay_position & (term_length - 1))),
        ("term-length", str(term_length)),
        ("mtu", str(mtu)),
    ]
    for key in ("eos", "sparse"):
        if key in uri.params:
            params.append((key, uri.params[key]))
    linger = uri.params.get("linger")
    params.append(("linger", linger if linger is not None else f"{linger_ns}ns"))
    return ChannelUri(uri.media, ChannelParams(params)).build()
