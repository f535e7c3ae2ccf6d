"""The transport's errors."""

from __future__ import annotations

__all__ = [
    "AgentError",
    "ChannelUriError",
    "CounterError",
    "CountersFullError",
    "InvalidBlockError",
    "InvalidMtuError",
    "InvalidTermLengthError",
    "LogBufferError",
    "MessageTooLongError",
    "TransportError",
]


class TransportError(Exception):
    """Base of every error the transport raises on bad input or misuse."""

    is_user_error = True


class ChannelUriError(TransportError, ValueError):
    """A channel URI is malformed; the message names the bad part."""


class LogBufferError(TransportError, ValueError):
    """A log buffer was configured or used wrongly; the message names the bad value."""


class InvalidTermLengthError(LogBufferError):
    """A term length is not a power of two in [64 KiB, 1 GiB]."""


class InvalidMtuError(LogBufferError):
    """An MTU is not a multiple of 32 in (32, 65504]."""


class MessageTooLongError(LogBufferError):
    """A message (or claim) is longer than the log allows."""


class InvalidBlockError(LogBufferError):
    """A block given to ``offer_block`` is not a run of whole, well-formed frames of the publication at its
    current position (Aeron's ``IllegalArgumentException`` from ``offerBlock``); nothing was written."""


class CounterError(TransportError, ValueError):
    """A counter was allocated with bad arguments, or used after it was closed."""


class CountersFullError(CounterError):
    """Every counter id of a ``CountersManager`` is in use (its ``max_counters`` is reached)."""


class AgentError(TransportError, ValueError):
    """The runtime model (agent, runner, idle strategy, clock) was configured or used wrongly."""
