"""The consensus core's errors.

Every error the core raises on bad input or misuse is a ``ConsensusError``; its message names what was
wrong and where (member index and id, attribute, entry index, byte offset, setting name).
"""

from __future__ import annotations

__all__ = ["ConfigError", "ConsensusError", "MembershipError", "RecordingLogError"]


class ConsensusError(Exception):
    """Base of every error the consensus core raises on bad input or misuse."""

    is_user_error = True


class MembershipError(ConsensusError, ValueError):
    """A cluster members string or member set is malformed; the message names the member and attribute."""


class RecordingLogError(ConsensusError, ValueError):
    """A recording log operation broke a rule, or its bytes are malformed; the message says which."""


class ConfigError(ConsensusError, ValueError):
    """A consensus setting is out of range or inconsistent with another; the message names it."""
