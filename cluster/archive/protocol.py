"""The archive control protocol's constants: versions, default channels and streams, error codes, nulls.

These are Aeron Archive's values (``docs/archive.md``, "Control protocol"): a Java ``AeronArchive`` client
talks to our archive, and our client to a Java archive, only if they agree.
"""

from __future__ import annotations

import enum

__all__ = [
    "CONTROL_MTU_LENGTH_DEFAULT",
    "CONTROL_TERM_BUFFER_LENGTH_DEFAULT",
    "CONTROL_TERM_BUFFER_SPARSE_DEFAULT",
    "DEFAULT_CONTROL_RESPONSE_STREAM_ID",
    "DEFAULT_CONTROL_STREAM_ID",
    "DEFAULT_LOCAL_CONTROL_CHANNEL",
    "DEFAULT_LOCAL_CONTROL_STREAM_ID",
    "DEFAULT_REPLICATION_CHANNEL",
    "NULL_LENGTH",
    "NULL_POSITION",
    "NULL_TIMESTAMP",
    "NULL_VALUE",
    "PROTOCOL_MAJOR_VERSION",
    "PROTOCOL_SEMANTIC_VERSION",
    "REPLAY_ALL_AND_FOLLOW",
    "REPLAY_ALL_AND_STOP",
    "ArchiveErrorCode",
    "semantic_version",
    "semantic_version_text",
]


def semantic_version(major: int, minor: int, patch: int) -> int:
    """Aeron's packed semantic version: one byte each for major, minor and patch."""
    for part in (major, minor, patch):
        if not 0 <= part <= 255:
            raise ValueError(f"semantic version part {part} is not in [0, 255]")
    return (major << 16) | (minor << 8) | patch


def semantic_version_text(version: int) -> str:
    """``major.minor.patch`` of a packed semantic version."""
    return f"{(version >> 16) & 0xFF}.{(version >> 8) & 0xFF}.{version & 0xFF}"


# The control protocol version the client sends in its connect request and the archive in its responses;
# a client of another major version is refused.
PROTOCOL_MAJOR_VERSION = 1
PROTOCOL_SEMANTIC_VERSION = semantic_version(PROTOCOL_MAJOR_VERSION, 11, 0)

NULL_VALUE = -1
NULL_POSITION = -1
NULL_TIMESTAMP = -1
NULL_LENGTH = -1
# Replay lengths with a meaning of their own (anything else is a byte count).
REPLAY_ALL_AND_FOLLOW = (1 << 63) - 1
REPLAY_ALL_AND_STOP = (1 << 63) - 2

DEFAULT_CONTROL_STREAM_ID = 10
DEFAULT_LOCAL_CONTROL_CHANNEL = "aeron:ipc?term-length=64k"
DEFAULT_LOCAL_CONTROL_STREAM_ID = 10
DEFAULT_CONTROL_RESPONSE_STREAM_ID = 20
DEFAULT_REPLICATION_CHANNEL = "aeron:udp?endpoint=localhost:0"
# What a client puts on its control request and response channels unless they say otherwise (Aeron's
# AeronArchive.Context): small terms for a low-rate stream, sparse term buffers, the default MTU.
CONTROL_TERM_BUFFER_LENGTH_DEFAULT = 64 * 1024
CONTROL_TERM_BUFFER_SPARSE_DEFAULT = True
CONTROL_MTU_LENGTH_DEFAULT = 1408


class ArchiveErrorCode(enum.IntEnum):
    """The ``relevantId`` of an ERROR ``ControlResponse``: why a request failed (Aeron's codes)."""

    GENERIC = 0
    ACTIVE_LISTING = 1
    ACTIVE_RECORDING = 2
    ACTIVE_SUBSCRIPTION = 3
    UNKNOWN_SUBSCRIPTION = 4
    UNKNOWN_RECORDING = 5
    UNKNOWN_REPLAY = 6
    MAX_REPLAYS = 7
    MAX_RECORDINGS = 8
    INVALID_EXTENSION = 9
    AUTHENTICATION_REJECTED = 10
    STORAGE_SPACE = 11
    UNKNOWN_REPLICATION = 12
    UNAUTHORISED_ACTION = 13
    REPLICATION_CONNECTION_FAILURE = 14
    EMPTY_RECORDING = 15
    INVALID_POSITION = 16
