"""Log positions: where an entry of the replicated log starts and ends, as Aeron's log publication puts it.

Theory of operation
-------------------
The cluster log is one byte stream whose positions continue across leadership terms (docs/consensus.md,
"Replication and commit"; the frame arithmetic is docs/transport.md, "Positions and terms"). Each
entry -- an SBE message such as NewLeadershipTermEvent, or a SessionMessageHeader with its application
payload -- is one message of an Aeron exclusive publication, so it occupies DATA frames of a 32-byte
header plus up to ``mtu - 32`` payload bytes each, every frame aligned to 32 bytes; a message never
straddles a term: when it does not fit in the rest of the term, a PAD frame fills the term and the
message starts at the next term's offset 0. ``entry_end`` computes the position after an entry exactly
as the transport's appender places it. The core itself no longer uses it -- the log publication places
entries and the driver reports where each ended (docs/consensus.md, "The driver contract") -- but the
message-level simulator's model of the publication does. It repeats the transport's arithmetic because
a test holds the two to the same answers, without the simulator's log model depending on log buffers.
"""

from __future__ import annotations

from cluster.consensus.core.errors import ConsensusError

__all__ = ["FRAME_ALIGNMENT", "HEADER_LENGTH", "entry_end", "entry_span"]

FRAME_ALIGNMENT = 32
HEADER_LENGTH = 32


def _align(value: int) -> int:
    return (value + FRAME_ALIGNMENT - 1) & -FRAME_ALIGNMENT


def entry_span(length: int, mtu: int) -> int:
    """The term bytes a message of ``length`` bytes occupies (all its frames, aligned)."""
    max_payload = mtu - HEADER_LENGTH
    if length <= max_payload:
        return _align(length + HEADER_LENGTH)
    full, rest = divmod(length, max_payload)
    return full * _align(mtu) + (_align(rest + HEADER_LENGTH) if rest else 0)


def entry_end(position: int, length: int, term_length: int, mtu: int) -> tuple[int, int]:
    """``(start, end)`` of a ``length``-byte entry appended at ``position``: ``start`` moves to the next
    term when the entry does not fit in the rest of this one (the appender pads the term)."""
    if position < 0 or position & (FRAME_ALIGNMENT - 1):
        raise ConsensusError(f"log position must be a non-negative multiple of 32: {position}")
    if length > min(term_length // 8, 16 * 1024 * 1024):
        raise ConsensusError(f"log entry of {length} bytes is longer than the log's maximum message length")
    span = entry_span(length, mtu)
    offset = position & (term_length - 1)
    if offset + span > term_length:
        position += term_length - offset
    return position, position + span
