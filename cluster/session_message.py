"""A session message: a SessionMessageHeader (the leadership term, the cluster session, a timestamp)
followed by an application payload -- the one message shape that the client's ingress, the log, a
service's egress and a service's messages to the log all share."""

from __future__ import annotations

from typing import Final

from codegen.runtime.errors import CodecError
from generated import aeron_cluster_codecs as codecs

__all__ = ["SESSION_HEADER_LENGTH", "read_session_header", "session_message", "write_session_header"]

SESSION_HEADER_LENGTH: Final = codecs.HEADER_SIZE + codecs.SessionMessageHeaderEncoder.BLOCK_LENGTH


_UNPACK_SESSION_HEADER: Final = codecs.SessionMessageHeaderDecoder.unpack


def read_session_header(message: bytes | bytearray | memoryview) -> tuple[int, int, int] | None:
    """``(leadership_term_id, cluster_session_id, timestamp)`` of a session message, or ``None`` when
    ``message`` is another cluster message or no whole message at all. The log's readers take it first,
    as nearly every entry is a session message, and decode the rest in full."""
    try:
        return _UNPACK_SESSION_HEADER(message)  # the block: three int64s
    except CodecError:
        return None


def session_message(
    leadership_term_id: int, cluster_session_id: int, timestamp: int, payload: bytes | bytearray | memoryview
) -> bytes:
    """The header, then ``payload``."""
    message = bytearray(SESSION_HEADER_LENGTH + len(payload))
    write_session_header(message, leadership_term_id, cluster_session_id, timestamp)
    message[SESSION_HEADER_LENGTH:] = payload
    return bytes(message)


def write_session_header(
    buffer: bytearray | memoryview, leadership_term_id: int, cluster_session_id: int, timestamp: int
) -> None:
    """The header, at the start of ``buffer`` (a claimed frame's, say); the payload goes after it."""
    codecs.SessionMessageHeaderEncoder.pack_into(
        buffer,
        0,
        leadership_term_id=leadership_term_id,
        cluster_session_id=cluster_session_id,
        timestamp=timestamp,
    )
