"""The transport's errors."""

from __future__ import annotations

__all__ = ["ChannelUriError", "TransportError"]


class TransportError(Exception):
    """Base of every error the transport raises on bad input or misuse."""

    is_user_error = True


class ChannelUriError(TransportError, ValueError):
    """A channel URI is malformed; the message names the bad part."""
