"""Log buffers: Aeron's term partitions, positions, the exclusive appender, the term reader and reassembly.

Theory of operation
-------------------
A publication's *log* is three equal *term partitions* (``PARTITION_COUNT``) of ``term_length`` bytes, a
power of two in [64 KiB, 1 GiB]. A stream is an endless sequence of terms numbered by a wrapping int32
``term_id`` starting at ``initial_term_id``; term ``t`` lives in partition ``(t - initial_term_id) % 3``.
A byte's *position* is a 63-bit count from the start of the stream::

    position = (int32(term_id - initial_term_id) << position_bits_to_shift) + term_offset

The term count is taken in int32 arithmetic first (as in Java), so ids wrap from 2**31 - 1 to -2**31
without disturbing positions; the largest position is ``term_length * 2**31``.

Frames sit back to back in a term, each at a 32-byte aligned offset (``FRAME_ALIGNMENT``) and occupying
``align(frame_length, 32)`` bytes; every header is the 32-byte DATA layout of the generated
``aeron_transport_frames`` codecs. The writer (``ExclusiveAppender``, one thread, no atomics needed) writes
each frame's header with a *negative* frame length, copies the payload, then commits by rewriting the
frame length positive; a reader in the same process or over shared memory therefore treats a
``frame_length <= 0`` as "not yet written" and never sees half a frame. (Into a private log -- the
anonymous mapping ``LogBuffers`` makes by default, which no other process sees -- an unfragmented
``bytes`` message and its header go in one ``pack_into``: no reader can run between its bytes.) A
message longer than ``mtu - 32`` bytes is fragmented (BEGIN, middle..., END flags); all fragments are
contiguous in one term, so a message never straddles terms. When the message does not fit in the rest of
the term the appender fills the rest with one PAD frame, rotates to the next term and returns
``ADMIN_ACTION``; the caller retries and the message lands at offset 0 of the next term. Rotating into
term ``t`` zeroes the partition of term ``t + 1``, which last held term ``t - 2`` (Aeron's driver
"cleans" behind its consumers; there is no driver here), so a reader reaching the end of term ``t``
before the appender rotates finds zeros, never stale frames. A consumer must therefore have left term
``t - 2`` when the appender enters term ``t``, which a window (``position_limit``) of at most one term
guarantees.

``ExclusiveAppender.append_block`` (Aeron's ``offerBlock``) appends frames someone else laid out -- a
recorded stream being replayed -- after checking every header against the appender's session, stream,
term and offset, copying them as they are with the first frame's length written last.

Each partition keeps a *raw tail* ``term_id << 32 | term_offset`` (the tail may run past the term end
when a message trips it), exactly like the log metadata of a real Aeron log; ``LogBuffers`` can be
started at any ``(term_id, term_offset)``, as Aeron Cluster does for a new leadership term's log.

``TermReader.read`` walks frames from a term offset up to a limit, skipping PAD, delivering DATA payloads
as memoryviews with a reusable ``Header`` whose ``position()`` is the position of the *end* of the frame
(Aeron's log position of an entry). It is bounded: it never reads past the term and stops (and counts)
on any frame whose length, type or term offset could not come from a writer. ``scan_block`` finds the
end of a block of whole frames for ``Image.block_poll`` (Aeron's ``TermBlockScanner``). ``FragmentAssembler``
rebuilds fragmented messages per session in bounded buffers, passing unfragmented ones through without
a copy and dropping (and counting) broken sequences. Its memory is bounded twice: each session's buffer
by ``max_message_length``, and all sessions' buffers together by ``max_buffered_bytes`` (fragments come
from images, so from remote peers: without a total, ``max_sessions`` half-sent messages could hold
``max_sessions * max_message_length`` bytes).
"""

from __future__ import annotations

import enum
import mmap
import struct
import sys
from array import array
from collections.abc import Buffer, Callable
from typing import Final

from cluster.transport.errors import (
    InvalidBlockError,
    InvalidMtuError,
    InvalidTermLengthError,
    LogBufferError,
    MessageTooLongError,
)
from generated.aeron_transport_frames import (
    DataFlags,
    DataHeaderDecoder,
    DataHeaderEncoder,
    FrameHeaderDecoder,
    FrameHeaderEncoder,
    FrameType,
)

__all__ = [
    "ADMIN_ACTION",
    "BACK_PRESSURED",
    "CLOSED",
    "DEFAULT_MAX_BUFFERED_BYTES",
    "FRAME_ALIGNMENT",
    "HEADER_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "MAX_POSITION_EXCEEDED",
    "MAX_UDP_PAYLOAD_LENGTH",
    "NOT_CONNECTED",
    "PARTITION_COUNT",
    "TERM_MAX_LENGTH",
    "TERM_MIN_LENGTH",
    "TERM_OFFSETS",
    "BlockHandler",
    "BufferClaim",
    "ControlledAction",
    "ControlledFragmentAssembler",
    "ControlledFragmentHandler",
    "ExclusiveAppender",
    "FragmentAssembler",
    "FragmentHandler",
    "Header",
    "InvalidMtuError",
    "InvalidTermLengthError",
    "LogBufferError",
    "LogBuffers",
    "MessageTooLongError",
    "TermReader",
    "align",
    "alike_data_frames",
    "check_mtu",
    "check_term_length",
    "compute_position",
    "compute_term_begin_position",
    "compute_term_id",
    "compute_term_offset",
    "index_by_position",
    "index_by_term_count",
    "max_message_length",
    "max_payload",
    "max_stream_position",
    "pack_tail",
    "partition_index",
    "position_bits_to_shift",
    "scan_block",
    "tail_term_id",
    "tail_term_offset",
    "write_fragments",
    "write_heartbeat",
]

# ------------------------------------------------------------------------------------------ constants

FRAME_ALIGNMENT = 32
HEADER_LENGTH = 32
PARTITION_COUNT = 3
TERM_MIN_LENGTH = 64 * 1024
TERM_MAX_LENGTH = 1024 * 1024 * 1024
MAX_MESSAGE_LENGTH = 16 * 1024 * 1024
MAX_UDP_PAYLOAD_LENGTH = 65504

# Publication.offer results (Aeron's values); a non-negative result is the new stream position.
NOT_CONNECTED = -1
BACK_PRESSURED = -2
ADMIN_ACTION = -3
CLOSED = -4
MAX_POSITION_EXCEEDED = -5

_BEGIN = int(DataFlags.BEGIN)
_END = int(DataFlags.END)
_UNFRAGMENTED = _BEGIN | _END
_BEGIN_END_EOS = _UNFRAGMENTED | int(DataFlags.EOS)
_DATA = int(FrameType.DATA)
_PAD = int(FrameType.PAD)

_U64 = 0xFFFF_FFFF_FFFF_FFFF
_ZERO_CHUNK = bytes(64 * 1024)

# The only wire format: the generated codecs' layouts, held as plain functions for the hot paths. Their
# raw ``struct`` forms skip the codecs' error translation: every caller here has checked offsets and
# values already (int32 ids at construction, offsets against the term).
_unpack_data = DataHeaderDecoder.LAYOUT.unpack_from
_pack_data = DataHeaderEncoder.LAYOUT.pack_into
_pack_frame = FrameHeaderEncoder.LAYOUT.pack_into
_unpack_frame = FrameHeaderDecoder.LAYOUT.unpack_from  # (frame_length, version, flags, type)

# ``pack_into`` functions of a DATA header followed by a payload of a given length (the key): an append
# of a ``bytes`` payload writes its frame in one call. At most ``_MAX_FRAME_PACKERS`` lengths are kept;
# a payload of any other length is copied in, then its header packed.
_FRAME_PACKERS: dict[int, Callable[..., None]] = {}
_MAX_FRAME_PACKERS: Final = 256
_MAX_PACKED_PAYLOAD: Final = 4096


# a DATA header alone, with an empty payload field: the header of a payload copied in before it
_pack_header: Final = struct.Struct(f"{DataHeaderEncoder.LAYOUT.format}0s").pack_into


def _frame_packer(length: int) -> Callable[..., None] | None:
    """The ``pack_into`` of a DATA header and a ``length``-byte payload, made once; ``None`` past the
    cache's bounds."""
    if length > _MAX_PACKED_PAYLOAD or len(_FRAME_PACKERS) >= _MAX_FRAME_PACKERS:
        return None
    packer = _FRAME_PACKERS[length] = struct.Struct(f"{DataHeaderEncoder.LAYOUT.format}{length}s").pack_into
    return packer


# --------------------------------------------------------------------------------------------- errors


# -------------------------------------------------------------------------------------- position math


def _i32(value: int) -> int:
    """``value`` wrapped to a signed int32, as Java's int arithmetic does."""
    return ((value + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000


def align(value: int, alignment: int = FRAME_ALIGNMENT) -> int:
    """``value`` rounded up to a multiple of ``alignment`` (a power of two)."""
    return (value + (alignment - 1)) & -alignment


def position_bits_to_shift(term_length: int) -> int:
    """log2 of a power-of-two term length (Java's ``numberOfTrailingZeros``)."""
    return (term_length & -term_length).bit_length() - 1


def compute_position(term_id: int, term_offset: int, shift: int, initial_term_id: int) -> int:
    """The stream position of ``term_offset`` in term ``term_id``; the term count wraps as an int32."""
    term_count = ((term_id - initial_term_id + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000
    return (term_count << shift) + term_offset


def compute_term_begin_position(term_id: int, shift: int, initial_term_id: int) -> int:
    """The stream position of the first byte of term ``term_id``."""
    term_count = ((term_id - initial_term_id + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000
    return term_count << shift


def compute_term_id(position: int, shift: int, initial_term_id: int) -> int:
    """The term id holding ``position``: ``int32((position >>> shift) + initial_term_id)``."""
    return ((((position & _U64) >> shift) + initial_term_id + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000


def compute_term_offset(position: int, term_length: int) -> int:
    """The offset of ``position`` within its term."""
    return position & (term_length - 1)


def partition_index(term_id: int, initial_term_id: int) -> int:
    """The partition (0..2) holding term ``term_id``."""
    return (((term_id - initial_term_id + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000) % PARTITION_COUNT


def index_by_term_count(term_count: int) -> int:
    """The partition (0..2) holding the ``term_count``-th term of the stream."""
    return term_count % PARTITION_COUNT


def index_by_position(position: int, shift: int) -> int:
    """The partition (0..2) holding ``position``."""
    return ((position & _U64) >> shift) % PARTITION_COUNT


def max_message_length(term_length: int) -> int:
    """The longest message a log of this term length takes: ``min(term_length / 8, 16 MiB)``."""
    return min(term_length // 8, MAX_MESSAGE_LENGTH)


def max_payload(mtu: int) -> int:
    """The payload bytes one frame carries at this MTU."""
    return mtu - HEADER_LENGTH


def max_stream_position(term_length: int) -> int:
    """One past the last position a stream can reach: ``term_length * 2**31``."""
    return term_length << 31


def pack_tail(term_id: int, term_offset: int) -> int:
    """A raw tail, ``term_id << 32 | term_offset`` as a signed int64."""
    return (term_id << 32) + term_offset


def tail_term_id(raw_tail: int) -> int:
    """The term id of a raw tail."""
    return raw_tail >> 32


def tail_term_offset(raw_tail: int, term_length: int) -> int:
    """The term offset of a raw tail, clamped to the term (a tripped tail runs past the end)."""
    return min(raw_tail & 0xFFFF_FFFF, term_length)


def check_term_length(term_length: int) -> None:
    """Raise ``InvalidTermLengthError`` unless ``term_length`` is a power of two in [64 KiB, 1 GiB]."""
    if term_length < TERM_MIN_LENGTH:
        raise InvalidTermLengthError(f"term length less than min length of {TERM_MIN_LENGTH}: {term_length}")
    if term_length > TERM_MAX_LENGTH:
        raise InvalidTermLengthError(f"term length more than max length of {TERM_MAX_LENGTH}: {term_length}")
    if term_length & (term_length - 1):
        raise InvalidTermLengthError(f"term length not a power of 2: {term_length}")


def check_mtu(mtu: int) -> None:
    """Raise ``InvalidMtuError`` unless ``mtu`` is a multiple of 32 in (32, 65504]."""
    if mtu <= HEADER_LENGTH or mtu > MAX_UDP_PAYLOAD_LENGTH:
        raise InvalidMtuError(f"mtu must be > {HEADER_LENGTH} and <= {MAX_UDP_PAYLOAD_LENGTH}: {mtu}")
    if mtu & (FRAME_ALIGNMENT - 1):
        raise InvalidMtuError(f"mtu must be a multiple of {FRAME_ALIGNMENT}: {mtu}")


def _check_int32(name: str, value: int) -> None:
    if not -0x8000_0000 <= value <= 0x7FFF_FFFF:
        raise LogBufferError(f"{name} is not an int32: {value}")


def write_heartbeat(
    buffer: bytearray | memoryview,
    offset: int,
    session_id: int,
    stream_id: int,
    term_id: int,
    term_offset: int,
    end_of_stream: bool = False,
) -> int:
    """Write a heartbeat (a DATA header with frame length 0, flags 0xC0, or 0xE0 at end of stream) at
    ``offset``; it is sent on its own, never stored in a term. Returns 32, the bytes written."""
    flags = _BEGIN_END_EOS if end_of_stream else _UNFRAGMENTED
    DataHeaderEncoder.pack_into(
        buffer, offset, 0, 0, flags, _DATA, term_offset, session_id, stream_id, term_id, 0
    )
    return HEADER_LENGTH


_MIN_RUN_FRAMES: Final = 8  # below this many frames the per-frame walk is as quick
_MAX_RUN_TERM_OFFSET: Final = 1 << 26  # runs end at or below this term offset (the table: 8 MiB at most)
_MIN_OFFSET_TABLE: Final = 1 << 16  # entries the offset table starts with (term offsets up to 2 MiB)
_CHECK_RUNS: Final = sys.byteorder == "little"  # the comparisons read the headers as native integers


class TermOffsetTable:
    """``view[j] == 32 * j``: the term offsets a run of frames must have, sliced with a stride. Grown (by
    replacing it, never in place) up to ``_MAX_RUN_TERM_OFFSET``; shared by every reader and writer of
    frames. Each growth doubles the table with a few C-level byte operations (see ``_doubled``): built
    entry by entry, the 8 MiB table would take a tenth of a second."""

    __slots__ = ("view",)

    def __init__(self) -> None:
        self.view = memoryview(array("i"))

    def covering(self, end_offset: int) -> memoryview | None:
        """The table up to term offset ``end_offset`` at least, or ``None`` past the table's limit."""
        needed = (end_offset >> 5) + 1
        view = self.view
        if len(view) < needed:
            if end_offset > _MAX_RUN_TERM_OFFSET:
                return None
            size = max(_MIN_OFFSET_TABLE, 1 << (needed - 1).bit_length())
            if len(view):
                table = bytearray(view.cast("B"))
            else:
                table = bytearray(array("i", range(0, _MIN_OFFSET_TABLE * FRAME_ALIGNMENT, FRAME_ALIGNMENT)))
            while len(table) < size * 4:
                table = _doubled(table)
            view = self.view = memoryview(table).cast("i")
        return view


def _doubled(table: bytearray) -> bytearray:
    """The offset table of ``n`` int32 entries ``32 * j`` (``n`` a power of two of at least
    ``_MIN_OFFSET_TABLE``) extended to ``2 * n``: entry ``n + j`` is ``32 * j + 32 * n``, and ``32 * n`` is
    a power of two above every entry of the first half, so the second half is the first with that one bit
    set in every entry -- one byte of each, set through a translation table, all in C."""
    entries = len(table) // 4
    bit = (FRAME_ALIGNMENT * entries).bit_length() - 1
    byte, bit_in_byte = divmod(bit, 8)
    if sys.byteorder == "big":
        byte = 3 - byte
    set_bit = bytes(value | (1 << bit_in_byte) for value in range(256))
    second = bytearray(table)
    second[byte::4] = second[byte::4].translate(set_bit)
    return table + second


TERM_OFFSETS: Final = TermOffsetTable()


def alike_data_frames(
    view: memoryview,
    start: int,
    end: int,
    term_offset: int,
    term_id: int,
    session_id: int | None = None,
    stream_id: int | None = None,
) -> int:
    """The length of a run of DATA frames at ``view[start:end]`` (a one-byte-format view) that pass every
    check, or 0 when there is none to check at once. The check is a few strided comparisons (C loops)
    instead of a walk over the frames.

    The run is of whole frames, from ``start`` to at most ``end``, all with the first frame's length (at
    least a header), version and flags and type DATA; the frame at ``start`` sits at ``term_offset`` in
    its term and each next one ``align(frame_length, 32)`` further, as its header's term offset must say.
    Every header must carry ``term_id``, ``session_id`` unless it is ``None``, and ``stream_id`` -- or,
    when that is ``None``, the first frame's stream id (a run with mixed stream ids is left to the walk,
    which does not care). 0 also when the run would be short, or end past ``_MAX_RUN_TERM_OFFSET``."""
    if not _CHECK_RUNS or end - start < _MIN_RUN_FRAMES * 2 * HEADER_LENGTH:
        return 0
    values = _unpack_data(view, start)
    frame_length: int = values[0]
    if (
        frame_length < HEADER_LENGTH
        or values[3] != _DATA
        or values[7] != term_id
        or (session_id is not None and values[5] != session_id)
        or (stream_id is not None and values[6] != stream_id)
    ):
        return 0
    aligned = (frame_length + FRAME_ALIGNMENT - 1) & -FRAME_ALIGNMENT
    count = (end - start) // aligned
    if count < _MIN_RUN_FRAMES:
        return 0
    length = count * aligned
    offsets = TERM_OFFSETS.covering(term_offset + length)
    if offsets is None:
        return 0
    # The first frame is right; every other one must hold what the one before it holds (each column
    # against itself one frame on), but for the term offset, which must be the table's.
    run = view[start : start + length]
    longs = run.cast("q")
    words = run.cast("i")
    step = aligned >> 3  # in longs; twice that in words
    last = length >> 3  # one past the last long
    if (
        # bytes 0-7: frame_length, version, flags, type
        longs[0 : last - step : step] == longs[step:last:step]
        # bytes 16-23: stream_id, term_id
        and longs[2 : last - step : step] == longs[2 + step : last : step]
        # bytes 8-11: term_offset
        and words[2 :: 2 * step] == offsets[term_offset >> 5 : (term_offset + length) >> 5 : aligned >> 5]
        # bytes 12-15: session_id
        and (session_id is None or words[3 : 2 * (last - step) : 2 * step] == words[3 + 2 * step :: 2 * step])
    ):
        return length
    return 0


def _block_frame_problem(
    values: tuple[int, ...], term_offset: int, ids: tuple[int, int, int], mtu: int
) -> str:
    """Why a frame of a block offered at ``term_offset`` was refused (``ids``: session, stream, term)."""
    frame_length, version, _, frame_type, frame_offset, session_id, stream_id, term_id, _ = values
    if version != 0:
        return f"version {version} is not 0"
    if frame_type == _DATA and not HEADER_LENGTH <= frame_length <= mtu:
        return f"DATA frame length {frame_length} is not in [{HEADER_LENGTH}, mtu={mtu}]"
    if frame_type == _PAD and frame_length < HEADER_LENGTH:
        return f"PAD frame length {frame_length} is less than {HEADER_LENGTH}"
    if frame_type not in (_DATA, _PAD):
        return f"frame type {frame_type} is neither DATA nor PAD"
    if frame_offset != term_offset:
        return f"term offset {frame_offset} is not the frame's place in the term, {term_offset}"
    if (session_id, stream_id, term_id) != ids:
        return (
            f"session/stream/term ids {session_id}/{stream_id}/{term_id} are not the publication's "
            f"{ids[0]}/{ids[1]}/{ids[2]}"
        )
    return f"frame of length {frame_length} runs past the end of the block"


# ---------------------------------------------------------------------------------------- log buffers


class LogBuffers:
    """The three term partitions of one log and their raw tails, as Aeron's log buffer keeps them.

    ``terms[i]`` is a writable memoryview of partition ``i``, over ``buffer``: when not given, an anonymous
    memory mapping (zeroed pages, taken from the kernel only as they are written); else e.g. an mmap of a
    log file of at least ``3 * term_length`` bytes, zeroed. Constructed with ``term_id``
    (and ``term_offset``) the log starts mid-stream, as an exclusive publication created at a position.
    """

    __slots__ = (
        "active_term_count",
        "buffer",
        "clean_on_rotate",
        "initial_term_id",
        "position_bits_to_shift",
        "private",
        "raw_tails",
        "term_length",
        "terms",
    )

    def __init__(
        self,
        term_length: int,
        initial_term_id: int,
        *,
        term_id: int | None = None,
        term_offset: int = 0,
        buffer: Buffer | None = None,
        clean_on_rotate: bool = True,
    ) -> None:
        check_term_length(term_length)
        _check_int32("initial_term_id", initial_term_id)
        private = buffer is None
        if buffer is None:
            # an anonymous mapping: zeroed pages the kernel supplies as they are first touched, so a 16
            # MiB term costs nothing until it is written (a bytearray would be zeroed here, all of it)
            # (private: a forked child gets a copy on write, as it would of a bytearray, not the same log)
            buffer = mmap.mmap(-1, PARTITION_COUNT * term_length, flags=mmap.MAP_PRIVATE)
        view = memoryview(buffer).cast("B")
        if view.readonly or view.nbytes < PARTITION_COUNT * term_length:
            raise LogBufferError(
                f"log buffer must be writable and hold {PARTITION_COUNT} x {term_length} bytes: "
                f"{view.nbytes} bytes{' (read-only)' if view.readonly else ''}"
            )
        self.term_length = term_length
        self.initial_term_id = initial_term_id
        self.position_bits_to_shift = position_bits_to_shift(term_length)
        self.buffer = buffer
        self.terms: tuple[memoryview, ...] = tuple(
            view[i * term_length : (i + 1) * term_length] for i in range(PARTITION_COUNT)
        )
        self.raw_tails: list[int] = [0] * PARTITION_COUNT
        self.active_term_count = 0
        self.clean_on_rotate = clean_on_rotate
        self.private = private
        """The log's memory is this process's alone (the anonymous mapping made when no ``buffer`` is
        given): no reader outside the process can look at a frame while it is being written."""
        if term_id is None:
            self._initialise_tails(initial_term_id, 0)
        else:
            _check_int32("term_id", term_id)
            if not 0 <= term_offset <= term_length or term_offset & (FRAME_ALIGNMENT - 1):
                raise LogBufferError(
                    f"term_offset must be a multiple of 32 in [0, {term_length}]: {term_offset}"
                )
            self._initialise_tails(term_id, term_offset)

    def _initialise_tails(self, term_id: int, term_offset: int) -> None:
        # DriverConductor: the active partition gets (term_id, term_offset); the two others the ids of
        # the terms three before theirs, so the next rotation finds what it expects.
        term_count = _i32(term_id - self.initial_term_id)
        index = term_count % PARTITION_COUNT
        self.raw_tails[index] = pack_tail(term_id, term_offset)
        for i in range(1, PARTITION_COUNT):
            index = (index + 1) % PARTITION_COUNT
            self.raw_tails[index] = pack_tail(_i32(term_id + i - PARTITION_COUNT), 0)
        self.active_term_count = term_count

    @property
    def active_partition_index(self) -> int:
        return self.active_term_count % PARTITION_COUNT

    def rotate(self, term_id: int) -> int:
        """Make term ``term_id + 1`` active (reset its tail) and, with ``clean_on_rotate``, clean the
        partition after it, which held term ``term_id - 1``; return the new term id. A network
        publication cleans from its sender instead, which must keep older data for retransmits."""
        next_term_id = _i32(term_id + 1)
        next_term_count = _i32(self.active_term_count + 1)
        index = next_term_count % PARTITION_COUNT
        self.raw_tails[index] = pack_tail(next_term_id, 0)
        self.active_term_count = next_term_count
        if self.clean_on_rotate:
            self.clean_partition((index + 1) % PARTITION_COUNT)
        return next_term_id

    def clean_partition(self, index: int) -> None:
        """Zero partition ``index`` (what Aeron's driver does behind the consumers)."""
        term = self.terms[index]
        chunk = len(_ZERO_CHUNK)
        for start in range(0, self.term_length, chunk):
            end = min(start + chunk, self.term_length)
            term[start:end] = _ZERO_CHUNK[: end - start]


# ------------------------------------------------------------------------------------------- appender


class BufferClaim:
    """A frame reserved by ``ExclusiveAppender.try_claim``: fill ``buffer`` then ``commit()`` or ``abort()``.

    Reusable (like Aeron's ``BufferClaim``): one object serves claim after claim.
    """

    __slots__ = ("_frame_length", "_header", "_offset", "_owner", "_partition", "_term", "buffer")

    def __init__(self) -> None:
        self._term: memoryview | None = None
        self._offset = 0
        self._frame_length = 0
        self._header: tuple[int, int, int] = (0, 0, 0)
        self._owner: ExclusiveAppender | None = None
        self._partition = 0
        self.buffer = memoryview(b"")

    def _wrap(
        self,
        term: memoryview,
        offset: int,
        frame_length: int,
        header: tuple[int, int, int],
        owner: ExclusiveAppender,
    ) -> None:
        assert self._term is None, "claim already holds an uncommitted frame"
        self._owner = owner
        self._partition = owner.partition_index
        self._term = term
        self._offset = offset
        self._frame_length = frame_length
        self._header = header
        self.buffer = term[offset + HEADER_LENGTH : offset + frame_length]

    def wrap_scratch(self, length: int) -> None:
        """Hold a frame of ``length`` payload bytes in a scratch buffer of the claim's own, in no log: for
        code that must write as if it had claimed (a follower's service, whose replies go nowhere, as
        Aeron mocks them). ``commit`` and ``abort`` then discard it."""
        if length < 0:
            raise LogBufferError(f"a claim of {length} bytes")
        assert self._term is None, "claim already holds an uncommitted frame"
        frame_length = HEADER_LENGTH + length
        self._owner = None
        self._term = memoryview(bytearray((frame_length + FRAME_ALIGNMENT - 1) & -FRAME_ALIGNMENT))
        self._offset = 0
        self._frame_length = frame_length
        self._header = (0, 0, 0)
        self.buffer = self._term[HEADER_LENGTH:frame_length]

    def _release(self) -> memoryview:
        term = self._term
        if term is None:
            raise LogBufferError("buffer claim is not holding a frame (already committed or aborted)")
        self._term = None
        self.buffer = memoryview(b"")
        if self._owner is not None:
            self._owner.open_claims -= 1
            self._owner = None
        return term

    def reserved_value(self, value: int) -> None:
        """Set the frame's reserved value (before commit)."""
        term = self._term
        if term is None:
            raise LogBufferError("buffer claim is not holding a frame")
        session_id, stream_id, term_id = self._header
        offset = self._offset
        _pack_data(
            term,
            offset,
            -self._frame_length,
            0,
            _UNFRAGMENTED,
            _DATA,
            offset,
            session_id,
            stream_id,
            term_id,
            value,
        )

    def commit(self) -> None:
        """Publish the frame: its length is written last."""
        offset, frame_length = self._offset, self._frame_length
        _pack_frame(self._release(), offset, frame_length, 0, _UNFRAGMENTED, _DATA)

    def abort(self) -> None:
        """Give the frame up: it becomes PAD, which readers skip."""
        offset, frame_length = self._offset, self._frame_length
        owner = self._owner
        if owner is not None:
            owner.padded[self._partition] = True
        _pack_frame(self._release(), offset, frame_length, 0, _UNFRAGMENTED, _PAD)


def write_fragments(
    buffer: bytearray | memoryview,
    offset: int,
    term_offset: int,
    payload: bytes | bytearray | memoryview,
    max_payload_length: int,
    session_id: int,
    stream_id: int,
    term_id: int,
    reserved_value: int = 0,
    ends: list[int] | array[int] | None = None,
) -> int:
    """Write ``payload`` as DATA frames of at most ``max_payload_length`` payload bytes each, the first
    at ``offset`` in ``buffer``, where it stands at ``term_offset`` of term ``term_id``: BEGIN on the
    first frame, END on the last, each frame's payload before its header. Returns the offset in
    ``buffer`` after the last frame (aligned); ``ends`` gets each frame's aligned end term offset.

    The exclusive appender writes fragmented messages with it, and so can anything that lays out a
    stream's bytes as Aeron does -- a log recorded as one flat buffer, say -- without a term buffer."""
    source = memoryview(payload)
    length = len(source)
    delta = term_offset - offset
    flags = _BEGIN
    source_offset = 0
    while source_offset < length or flags == _BEGIN:
        remaining = length - source_offset
        if remaining <= max_payload_length:
            flags |= _END
            chunk = remaining
        else:
            chunk = max_payload_length
        frame_length = chunk + HEADER_LENGTH
        buffer[offset + HEADER_LENGTH : offset + frame_length] = source[source_offset : source_offset + chunk]
        _pack_data(
            buffer,
            offset,
            frame_length,
            0,
            flags,
            _DATA,
            offset + delta,
            session_id,
            stream_id,
            term_id,
            reserved_value,
        )
        flags = 0
        offset += (frame_length + 31) & -32
        if ends is not None:
            ends.append(offset + delta)
        source_offset += chunk
    return offset


class ExclusiveAppender:
    """The writer side of an exclusive publication over ``LogBuffers`` (single writer).

    ``append`` and ``try_claim`` return the new stream position (the end of the message), or
    ``ADMIN_ACTION`` after a term end was reached (the term was padded and rotated: retry),
    ``BACK_PRESSURED`` at or beyond ``position_limit``, or ``MAX_POSITION_EXCEEDED``.
    """

    __slots__ = (
        "_ends",
        "_max_unfragmented",
        "_one_call",
        "_raw_tails",
        "_term",
        "frame_ends",
        "initial_term_id",
        "log",
        "max_message_length",
        "max_payload_length",
        "max_possible_position",
        "mtu",
        "on_limit",
        "open_claims",
        "padded",
        "partition_index",
        "position_limit",
        "session_id",
        "stream_id",
        "term_begin_position",
        "term_id",
        "term_length",
        "term_offset",
    )

    def __init__(self, log: LogBuffers, session_id: int, stream_id: int, mtu: int) -> None:
        check_mtu(mtu)
        _check_int32("session_id", session_id)
        _check_int32("stream_id", stream_id)
        self.log = log
        self.session_id = session_id
        self.stream_id = stream_id
        self.mtu = mtu
        self.term_length = log.term_length
        self.initial_term_id = log.initial_term_id
        self.max_payload_length = max_payload(mtu)
        self.max_message_length = max_message_length(log.term_length)
        self._max_unfragmented = min(self.max_payload_length, self.max_message_length)
        self.max_possible_position = max_stream_position(log.term_length)
        self.position_limit = self.max_possible_position
        self.on_limit: Callable[[int], int] | None = None
        self._raw_tails = log.raw_tails
        # a private log takes a ``bytes`` message and its header in one write (see ``append``)
        self._one_call = log.private
        # ExclusivePublication's constructor: pick the state up from the active partition's tail.
        index = log.active_partition_index
        raw_tail = log.raw_tails[index]
        self.partition_index = index
        self.term_id = tail_term_id(raw_tail)
        self.term_offset = tail_term_offset(raw_tail, log.term_length)
        self.term_begin_position = compute_term_begin_position(
            self.term_id, log.position_bits_to_shift, log.initial_term_id
        )
        self._term = log.terms[index]
        # Where each frame of a partition ends, in order (the sender finds a datagram's cut with bisect
        # instead of walking frames); a log started mid-term counts its start as a frame end.
        self.frame_ends: tuple[array[int], ...] = tuple(array("i") for _ in range(PARTITION_COUNT))
        self._ends = self.frame_ends[index]
        if self.term_offset:
            self._ends.append(self.term_offset)
        self.open_claims = 0
        self.padded = [False] * PARTITION_COUNT  # holds an aborted claim: PAD amid the frames

    @property
    def position(self) -> int:
        """The stream position the next message will start at."""
        return self.term_begin_position + self.term_offset

    def append(self, payload: bytes | bytearray | memoryview, reserved_value: int = 0) -> int:
        """Append one message (a bytes-like of unsigned bytes), fragmenting it beyond ``mtu - 32`` bytes."""
        length = len(payload)
        term_offset = self.term_offset
        if length <= self._max_unfragmented:
            if self.term_begin_position + term_offset >= self.position_limit:
                status = self._back_pressure_status(length)
                if status:
                    return status
            frame_length = length + HEADER_LENGTH
            resulting_offset = term_offset + ((frame_length + 31) & -32)
            term_id = self.term_id
            self._raw_tails[self.partition_index] = (term_id << 32) + resulting_offset
            if resulting_offset > self.term_length:
                return self._end_of_term(term_offset)
            term = self._term
            pack = None
            if type(payload) is bytes and self._one_call:
                # header and payload in one call: no reader of a private log runs while it writes
                pack = _FRAME_PACKERS.get(length) or _frame_packer(length)
            if pack is None:
                # The payload first, then the whole header: its positive frame length commits the frame
                # (the header slot is zero until then, so a reader stops there, as at a negative length).
                term[term_offset + HEADER_LENGTH : term_offset + frame_length] = payload
                pack, payload = _pack_header, b""
            pack(
                term,
                term_offset,
                frame_length,
                0,
                _UNFRAGMENTED,
                _DATA,
                term_offset,
                self.session_id,
                self.stream_id,
                term_id,
                reserved_value,
                payload,
            )
            self._ends.append(resulting_offset)
            self.term_offset = resulting_offset
            return self.term_begin_position + resulting_offset
        if length > self.max_message_length:
            raise MessageTooLongError(
                f"message exceeds max_message_length={self.max_message_length}: length={length}"
            )
        if self.term_begin_position + term_offset >= self.position_limit:
            status = self._back_pressure_status(length)
            if status:
                return status
        return self._append_fragmented(payload, length, reserved_value)

    def _append_fragmented(
        self, payload: bytes | bytearray | memoryview, length: int, reserved_value: int
    ) -> int:
        max_payload_length = self.max_payload_length
        full_frames, remainder = divmod(length, max_payload_length)
        last_frame_length = align(remainder + HEADER_LENGTH) if remainder else 0
        required_length = full_frames * (max_payload_length + HEADER_LENGTH) + last_frame_length
        term_offset = self.term_offset
        resulting_offset = term_offset + required_length
        term_id = self.term_id
        self._raw_tails[self.partition_index] = (term_id << 32) + resulting_offset
        if resulting_offset > self.term_length:
            return self._end_of_term(term_offset)
        frame_offset = write_fragments(
            self._term,
            term_offset,
            term_offset,
            payload,
            max_payload_length,
            self.session_id,
            self.stream_id,
            term_id,
            reserved_value,
            self._ends,
        )
        assert frame_offset == resulting_offset, (frame_offset, resulting_offset)
        self.term_offset = resulting_offset
        return self.term_begin_position + resulting_offset

    def try_claim(self, length: int, claim: BufferClaim) -> int:
        """Reserve an unfragmented frame of ``length`` payload bytes; ``claim`` then holds it."""
        if claim._term is not None:
            raise LogBufferError("buffer claim already holds an uncommitted frame: commit or abort it first")
        if not 0 <= length <= self._max_unfragmented:
            raise MessageTooLongError(
                f"claim exceeds max_payload_length={self._max_unfragmented}: length={length}"
            )
        term_offset = self.term_offset
        if self.term_begin_position + term_offset >= self.position_limit:
            status = self._back_pressure_status(length)
            if status:
                return status
        frame_length = length + HEADER_LENGTH
        resulting_offset = term_offset + align(frame_length)
        term_id = self.term_id
        self.log.raw_tails[self.partition_index] = (term_id << 32) + resulting_offset
        if resulting_offset > self.term_length:
            return self._end_of_term(term_offset)
        term = self._term
        _pack_data(
            term,
            term_offset,
            -frame_length,
            0,
            _UNFRAGMENTED,
            _DATA,
            term_offset,
            self.session_id,
            self.stream_id,
            term_id,
            0,
        )
        claim._wrap(term, term_offset, frame_length, (self.session_id, self.stream_id, term_id), self)
        self.open_claims += 1
        self._ends.append(resulting_offset)
        self.term_offset = resulting_offset
        return self.term_begin_position + resulting_offset

    def append_block(self, buffer: bytes | bytearray | memoryview, offset: int, length: int) -> int:
        """Append ``buffer[offset:offset + length]``, a block of whole frames already laid out as they
        must stand in the term (headers included), at the current position in one go: Aeron's
        ``ExclusivePublication.offerBlock``. Returns the new position, or ``ADMIN_ACTION`` (the
        appender was at the end of its term and has rotated: retry), ``BACK_PRESSURED`` or
        ``MAX_POSITION_EXCEEDED`` (or what ``on_limit`` says) like ``append``.

        ``InvalidBlockError`` (nothing written) unless: ``length`` is a positive multiple of 32 within
        ``buffer``; the block fits in the rest of the term; and the block is frames back to back that
        cover it exactly, each with version 0, type DATA (length 32 to ``mtu``) or PAD (length 32 or
        more), its own term offset, and this publication's session id, stream id and term id. The frames
        are copied as they are -- flags, reserved values, PAD bodies -- the first frame's length word
        last, so a reader never sees part of a block."""
        if not isinstance(offset, int) or not isinstance(length, int):
            raise InvalidBlockError(f"offset and length must be ints: offset={offset!r}, length={length!r}")
        view = buffer if isinstance(buffer, memoryview) else memoryview(buffer)
        if view.itemsize != 1 or view.ndim != 1:
            view = view.cast("B")
        if length <= 0 or length & (FRAME_ALIGNMENT - 1):
            raise InvalidBlockError(
                f"block length must be a positive multiple of {FRAME_ALIGNMENT}: {length}"
            )
        if offset < 0 or offset + length > view.nbytes:
            raise InvalidBlockError(
                f"block [{offset}, {offset + length}) is outside the buffer of {view.nbytes} bytes"
            )
        term_offset = self.term_offset
        term_length = self.term_length
        if term_offset >= term_length:
            return self._end_of_term(term_offset)
        if self.term_begin_position + term_offset >= self.position_limit:
            status = self._back_pressure_status(length - HEADER_LENGTH)
            if status:
                return status
        if length > term_length - term_offset:
            raise InvalidBlockError(
                f"block length {length} is more than the {term_length - term_offset} bytes left in the "
                f"term at term offset {term_offset}"
            )
        first = self._check_block(view, offset, length, term_offset)
        term = self._term
        # Everything but the first frame's header word goes in first; its length, written last, commits
        # the whole block (the term beyond the tail is zeroed, so a reader stops at that frame until then).
        term[term_offset + 8 : term_offset + length] = view[offset + 8 : offset + length]
        _pack_frame(term, term_offset, first[0], first[1], first[2], first[3])
        resulting_offset = term_offset + length
        self._raw_tails[self.partition_index] = (self.term_id << 32) + resulting_offset
        self.term_offset = resulting_offset
        return self.term_begin_position + resulting_offset

    def _check_block(self, view: memoryview, offset: int, length: int, term_offset: int) -> tuple[int, ...]:
        """Check every frame of a block (see ``append_block``), record its frame ends, and return the
        first frame's header; raise ``InvalidBlockError`` before anything is recorded."""
        unpack = _unpack_data
        mtu = self.mtu
        session_id = self.session_id
        stream_id = self.stream_id
        term_id = self.term_id
        end = offset + length
        delta = term_offset - offset  # a block offset plus delta is a term offset
        first = unpack(view, offset)
        # A run of alike DATA frames is checked at once (their version and length are the first's,
        # checked here); the walk below takes the rest frame by frame.
        run = 0
        if first[1] == 0 and first[0] <= mtu and first[4] == term_offset:
            run = alike_data_frames(view, offset, end, term_offset, term_id, session_id, stream_id)
        if run:
            run_aligned = (first[0] + 31) & -32
            table = TERM_OFFSETS.covering(term_offset + run)
            assert table is not None  # alike_data_frames found the run within the table
            run_ends = table[
                (term_offset + run_aligned) >> 5 : ((term_offset + run) >> 5) + 1 : run_aligned >> 5
            ]
            if run == length:
                self._ends.frombytes(run_ends.tobytes())
                return first
        ends: list[int] = list(run_ends) if run else []
        position = offset + run
        padded = False
        values = unpack(view, position) if run else first
        while True:
            frame_length, version, _, frame_type, frame_offset, frame_session, frame_stream, frame_term, _ = (
                values
            )
            aligned = (frame_length + 31) & -32
            if not (
                frame_offset == position + delta
                and frame_session == session_id
                and frame_stream == stream_id
                and frame_term == term_id
                and version == 0
                and position + aligned <= end
                and (
                    (frame_type == _DATA and HEADER_LENGTH <= frame_length <= mtu)
                    or (frame_type == _PAD and frame_length >= HEADER_LENGTH)
                )
            ):
                raise InvalidBlockError(
                    f"improperly formatted block: frame at block offset {position - offset}: "
                    + _block_frame_problem(values, position + delta, (session_id, stream_id, term_id), mtu)
                )
            if frame_type == _PAD:
                padded = True
            position += aligned
            ends.append(position + delta)
            if position >= end:
                break
            values = unpack(view, position)
        # the sender cuts datagrams at frame ends; a PAD amid the frames makes it walk them instead
        self._ends.extend(ends)
        if padded:
            self.padded[self.partition_index] = True
        return first

    def _end_of_term(self, term_offset: int) -> int:
        """The message does not fit: pad the rest of the term, rotate, and ask for a retry."""
        term_length = self.term_length
        if term_offset < term_length:
            padding_length = term_length - term_offset
            term = self._term
            _pack_data(
                term,
                term_offset,
                -padding_length,
                0,
                _UNFRAGMENTED,
                _PAD,
                term_offset,
                self.session_id,
                self.stream_id,
                self.term_id,
                0,
            )
            _pack_frame(term, term_offset, padding_length, 0, _UNFRAGMENTED, _PAD)
            self._ends.append(term_length)
        if self.term_begin_position + term_length >= self.max_possible_position:
            self.term_offset = term_length
            return MAX_POSITION_EXCEEDED
        log = self.log
        self.term_id = log.rotate(self.term_id)
        self.partition_index = log.active_partition_index
        self._term = log.terms[self.partition_index]
        self._ends = self.frame_ends[self.partition_index]
        del self._ends[:]
        self.padded[self.partition_index] = False
        self.term_offset = 0
        self.term_begin_position += term_length
        return ADMIN_ACTION

    def _back_pressure_status(self, length: int) -> int:
        """At the limit: ``MAX_POSITION_EXCEEDED``, or what ``on_limit(position)`` says (0: the limit
        moved, go on), or ``BACK_PRESSURED``."""
        position = self.term_begin_position + self.term_offset
        if position + align(length + HEADER_LENGTH) >= self.max_possible_position:
            return MAX_POSITION_EXCEEDED
        on_limit = self.on_limit
        return BACK_PRESSURED if on_limit is None else on_limit(position)


# --------------------------------------------------------------------------------------------- reader


class Header:
    """The header of the fragment being delivered (a reusable view: copy what you keep).

    ``values`` is the raw ``DataHeaderDecoder.unpack`` tuple (frame_length, version, flags, type,
    term_offset, session_id, stream_id, term_id, reserved_value); ``offset`` is where the frame starts.
    """

    __slots__ = ("initial_term_id", "offset", "position_bits_to_shift", "values")

    def __init__(self, initial_term_id: int, position_bits_to_shift: int) -> None:
        self.initial_term_id = initial_term_id
        self.position_bits_to_shift = position_bits_to_shift
        self.values: tuple[int, ...] = (0, 0, 0, 0, 0, 0, 0, 0, 0)
        self.offset = 0

    def position(self) -> int:
        """The stream position of the end of this frame (Aeron's ``Header.position()``)."""
        values = self.values
        # compute_position, inline (readers ask it of every message)
        term_count = ((values[7] - self.initial_term_id + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000
        return (term_count << self.position_bits_to_shift) + ((values[4] + values[0] + 31) & -32)

    @property
    def frame_length(self) -> int:
        return self.values[0]

    @property
    def flags(self) -> int:
        return self.values[2]

    @property
    def type(self) -> int:
        return self.values[3]

    @property
    def term_offset(self) -> int:
        return self.values[4]

    @property
    def session_id(self) -> int:
        return self.values[5]

    @property
    def stream_id(self) -> int:
        return self.values[6]

    @property
    def term_id(self) -> int:
        return self.values[7]

    @property
    def reserved_value(self) -> int:
        return self.values[8]

    @property
    def next_term_offset(self) -> int:
        """The aligned offset just past this frame."""
        return (self.values[4] + self.values[0] + 31) & -32


FragmentHandler = Callable[[memoryview, Header], object]


class TermReader:
    """Reads committed frames out of one stream's terms (``read`` is Aeron's ``TermReader.read``).

    ``corrupt_frame_count`` counts stops at a frame no writer could have produced (length below 32
    or past the term end, type neither DATA nor PAD, term offset field not the frame's own). Handler
    exceptions go to ``error_handler`` and end the read after the frame (as in Aeron); without one they
    propagate and that read's progress is lost to the caller.
    """

    __slots__ = ("corrupt_frame_count", "error_handler", "header")

    def __init__(
        self,
        initial_term_id: int,
        term_length: int,
        error_handler: Callable[[Exception], object] | None = None,
    ) -> None:
        self.header = Header(initial_term_id, position_bits_to_shift(term_length))
        self.error_handler = error_handler
        self.corrupt_frame_count = 0

    def read(
        self,
        term_buffer: memoryview,
        term_offset: int,
        handler: FragmentHandler,
        fragments_limit: int,
        limit_offset: int,
    ) -> tuple[int, int]:
        """Deliver up to ``fragments_limit`` DATA fragments starting at ``term_offset`` and ending at or
        before ``limit_offset``; return (fragments delivered, offset after the last frame consumed)."""
        if term_offset < 0 or term_offset & (FRAME_ALIGNMENT - 1):
            raise LogBufferError(f"term_offset must be a non-negative multiple of 32: {term_offset}")
        capacity = len(term_buffer)
        limit = limit_offset if limit_offset < capacity else capacity
        offset = term_offset
        fragments_read = 0
        header = self.header
        unpack = _unpack_data
        try:
            while fragments_read < fragments_limit and offset + HEADER_LENGTH <= limit:
                values = unpack(term_buffer, offset)
                frame_length = values[0]
                if frame_length <= 0:
                    break
                frame_end = offset + ((frame_length + 31) & -32)
                if (
                    frame_length < HEADER_LENGTH
                    or frame_end > capacity
                    or values[3] > 1
                    or values[4] != offset
                ):
                    self.corrupt_frame_count += 1
                    break
                if frame_end > limit:
                    break
                frame_offset = offset
                offset = frame_end
                if values[3] == _PAD:
                    continue
                fragments_read += 1
                header.values = values
                header.offset = frame_offset
                handler(term_buffer[frame_offset + HEADER_LENGTH : frame_offset + frame_length], header)
        except Exception as exc:
            if self.error_handler is None:
                raise
            self.error_handler(exc)
        return fragments_read, offset


BlockHandler = Callable[[memoryview, int, int, int, int], object]
"""``handler(term, offset, length, session_id, term_id)``: a block of whole frames, ``term[offset:offset +
length]``, as ``Image.block_poll`` hands it over (Aeron's ``BlockHandler.onBlock``)."""


def scan_block(term_buffer: memoryview, term_offset: int, limit_offset: int) -> int:
    """The end of the block of whole committed frames starting at ``term_offset`` (the offset itself when
    no frame is there yet): Aeron's ``TermBlockScanner.scan``, except that the first frame is always taken
    whole even when it ends beyond ``limit_offset``, so that a block poll can always make progress.

    DATA frames are taken while they end at or before ``limit_offset``. A PAD frame ends the block: it is
    excluded unless it is the first frame, in which case the block is that PAD alone, its whole aligned
    length. The block never passes the end of the term. A frame no writer could have produced (length
    below 32, running past the term, a type other than DATA or PAD) ends the block before it."""
    capacity = len(term_buffer)
    offset = term_offset
    unpack = _unpack_frame
    while offset < capacity:
        frame_length, _, _, frame_type = unpack(term_buffer, offset)
        if frame_length <= 0:
            break
        aligned = (frame_length + 31) & -32
        if frame_length < HEADER_LENGTH or offset + aligned > capacity:
            break
        if frame_type != _DATA:
            if frame_type == _PAD and offset == term_offset:
                offset += aligned
            break
        if offset + aligned > limit_offset and offset != term_offset:
            break
        offset += aligned
        if offset >= limit_offset:
            break
    return offset


# ---------------------------------------------------------------------------------------- reassembly

DEFAULT_MAX_SESSIONS = 1024
DEFAULT_MAX_BUFFERED_BYTES = 4 * MAX_MESSAGE_LENGTH
_MIN_BUILDER_CAPACITY = 4096


class _Builder:
    __slots__ = ("buffer", "limit", "next_term_offset", "term_id")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.limit = 0
        self.next_term_offset = -1  # -1: no message in progress
        self.term_id = 0


class ControlledAction(enum.IntEnum):
    """What a controlled-poll handler tells the image to do (Aeron's ``ControlledFragmentHandler.Action``)."""

    ABORT = 1  # do not consume this fragment; stop
    BREAK = 2  # consume this fragment; stop
    COMMIT = 3  # consume this fragment and commit the position; go on
    CONTINUE = 4  # consume this fragment; go on


ControlledFragmentHandler = Callable[[memoryview, "Header"], ControlledAction | int]


class FragmentAssembler:
    """Rebuilds fragmented messages per session and hands whole messages to ``delegate``.

    Unfragmented fragments are passed straight through (same memoryview, no copy). A reassembled
    message is delivered as a memoryview of the session's buffer (valid during the call only) with the
    header of its END fragment, whose ``position()`` is the end of the message. Continuations must be
    contiguous (same term, the aligned offset right after the previous fragment). Dropped, and counted
    in ``broken_sequence_count``: a continuation with no BEGIN before it, a BEGIN interrupting a message,
    a gap; in ``too_long_count``: messages growing past ``max_message_length``; in
    ``session_limit_count``: BEGINs refused because ``max_sessions`` sessions are mid-message; in
    ``buffer_limit_count``: messages that would take the buffers past ``max_buffered_bytes``.

    Memory. A session's buffer starts at 4 KiB and doubles as its message grows, up to
    ``max_message_length``; it is kept for the session's next message. ``buffered_bytes`` is what all
    buffers hold, and it never exceeds ``max_buffered_bytes`` (default 64 MiB, four messages of the
    longest length Aeron allows): when a message needs more, the buffers of sessions with no message in
    progress are released first, then the buffer grows only as far as the message needs, and if even
    that does not fit the message is dropped and its buffer released. Every argument is checked and a
    bad one raises ``LogBufferError``.
    """

    __slots__ = (
        "_builders",
        "broken_sequence_count",
        "buffer_limit_count",
        "buffered_bytes",
        "delegate",
        "max_buffered_bytes",
        "max_message_length",
        "max_sessions",
        "session_limit_count",
        "too_long_count",
    )

    def __init__(
        self,
        delegate: FragmentHandler,
        max_message_length: int = MAX_MESSAGE_LENGTH,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        *,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
    ) -> None:
        if not callable(delegate):
            raise LogBufferError(f"delegate must be callable: {delegate!r}")
        if not 0 < max_message_length <= MAX_MESSAGE_LENGTH:
            raise LogBufferError(
                f"max_message_length must be in [1, {MAX_MESSAGE_LENGTH}]: {max_message_length}"
            )
        if max_sessions <= 0:
            raise LogBufferError(f"max_sessions must be positive: {max_sessions}")
        if max_buffered_bytes < max_message_length:
            raise LogBufferError(
                f"max_buffered_bytes={max_buffered_bytes} is less than "
                f"max_message_length={max_message_length}: the longest message would never fit"
            )
        self.delegate = delegate
        self.max_message_length = max_message_length
        self.max_sessions = max_sessions
        self.max_buffered_bytes = max_buffered_bytes
        self.buffered_bytes = 0
        self._builders: dict[int, _Builder] = {}
        self.broken_sequence_count = 0
        self.too_long_count = 0
        self.session_limit_count = 0
        self.buffer_limit_count = 0

    def free_session(self, session_id: int) -> bool:
        """Forget a session's buffer (e.g. its image went away); True if it had one."""
        builder = self._builders.pop(session_id, None)
        if builder is None:
            return False
        self.buffered_bytes -= len(builder.buffer)
        return True

    def on_fragment(self, payload: memoryview, header: Header) -> None:
        if header.values[2] & _UNFRAGMENTED == _UNFRAGMENTED:
            self.delegate(payload, header)
            return
        builder = self._take(payload, header.values)
        if builder is not None:
            length, builder.limit = builder.limit, 0
            self.delegate(memoryview(builder.buffer)[:length], header)

    __call__ = on_fragment

    def _take(self, payload: memoryview, values: tuple[int, ...]) -> _Builder | None:
        """Add one fragment of a fragmented message to its session's builder; the builder once the
        fragment was the message's END (the whole message in ``buffer[:limit]``, the builder ready for
        the next message once ``limit`` is set to 0), else ``None``."""
        flags = values[2]
        session_id = values[5]
        builder = self._builders.get(session_id)
        if flags & _BEGIN:
            if builder is None:
                builder = self._new_builder(session_id)
                if builder is None:
                    self.session_limit_count += 1
                    return None
            elif builder.next_term_offset >= 0:
                self.broken_sequence_count += 1  # the message in progress never ended
            builder.limit = 0
            if not self._append(builder, payload):
                return None
            builder.term_id = values[7]
            builder.next_term_offset = (values[4] + values[0] + 31) & -32
            return None
        if builder is None or builder.next_term_offset < 0:
            self.broken_sequence_count += 1  # continuation without a BEGIN
            return None
        if values[4] != builder.next_term_offset or values[7] != builder.term_id:
            self.broken_sequence_count += 1  # a gap: the message cannot be whole
            builder.next_term_offset = -1
            builder.limit = 0
            return None
        if not self._append(builder, payload):
            return None
        if flags & _END:
            builder.next_term_offset = -1
            return builder
        builder.next_term_offset = (values[4] + values[0] + 31) & -32
        return None

    def _append(self, builder: _Builder, payload: memoryview) -> bool:
        limit = builder.limit
        new_limit = limit + len(payload)
        if new_limit > self.max_message_length:
            self.too_long_count += 1
            builder.next_term_offset = -1
            builder.limit = 0
            return False
        buffer = builder.buffer
        if new_limit > len(buffer):
            grown = self._grow(builder, new_limit)
            if grown is None:
                self.buffer_limit_count += 1
                self.buffered_bytes -= len(buffer)
                builder.buffer = bytearray()
                builder.next_term_offset = -1
                builder.limit = 0
                return False
            grown[:limit] = memoryview(buffer)[:limit]
            builder.buffer = buffer = grown
        buffer[limit:new_limit] = payload
        builder.limit = new_limit
        return True

    def _grow(self, builder: _Builder, needed: int) -> bytearray | None:
        """A new, larger buffer for ``builder`` (never resized in place: a delegate may still hold a view
        of the old one), within the memory bound; ``None`` if ``needed`` bytes cannot fit."""
        current = len(builder.buffer)
        capacity = min(max(_MIN_BUILDER_CAPACITY, current * 2, needed), self.max_message_length)
        if self.buffered_bytes - current + capacity > self.max_buffered_bytes:
            self._release_idle(builder)
            room = self.max_buffered_bytes - self.buffered_bytes + current
            if needed > room:
                return None
            capacity = min(capacity, room)
        self.buffered_bytes += capacity - current
        assert self.buffered_bytes <= self.max_buffered_bytes, (self.buffered_bytes, self.max_buffered_bytes)
        return bytearray(capacity)

    def _release_idle(self, keep: _Builder | None = None) -> None:
        """Forget every session with no message in progress (but ``keep``), returning its buffer."""
        builders = self._builders
        for session_id in [sid for sid, b in builders.items() if b.next_term_offset < 0 and b is not keep]:
            self.buffered_bytes -= len(builders.pop(session_id).buffer)

    def _new_builder(self, session_id: int) -> _Builder | None:
        builders = self._builders
        if len(builders) >= self.max_sessions:
            self._release_idle()
            if len(builders) >= self.max_sessions:
                return None
        builder = builders[session_id] = _Builder()
        return builder


class ControlledFragmentAssembler:
    """A ``FragmentAssembler`` for controlled polls (Aeron's ``ControlledFragmentAssembler``): the
    delegate answers each whole message with a ``ControlledAction``, and that is the answer for the
    fragment that completed it. A message the delegate ABORTs is kept but for its END fragment, which the
    image therefore offers again -- so a message refused for now comes again, whole. Its earlier
    fragments are consumed: the image moves past them, and ``assembler`` (whose counters and bounds are
    the ones to read) holds them."""

    __slots__ = ("assembler", "delegate")

    def __init__(
        self,
        delegate: ControlledFragmentHandler,
        max_message_length: int = MAX_MESSAGE_LENGTH,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        *,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
    ) -> None:
        self.assembler = FragmentAssembler(
            delegate, max_message_length, max_sessions, max_buffered_bytes=max_buffered_bytes
        )
        self.delegate = delegate

    def on_fragment(self, payload: memoryview, header: Header) -> ControlledAction | int:
        values = header.values
        if values[2] & _UNFRAGMENTED == _UNFRAGMENTED:
            return self.delegate(payload, header)
        builder = self.assembler._take(payload, values)
        if builder is None:
            return ControlledAction.CONTINUE
        action = self.delegate(memoryview(builder.buffer)[: builder.limit], header)
        if action == ControlledAction.ABORT:
            # back to where it was before the END fragment, which comes again
            builder.limit -= len(payload)
            builder.next_term_offset = values[4]
        else:
            builder.limit = 0
        return action

    __call__ = on_fragment
