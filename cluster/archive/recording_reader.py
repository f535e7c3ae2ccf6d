"""``RecordingReader``: a recording's frames, read back from its segment files and checked.

Theory of operation
-------------------
A reader walks a recording's frames from ``from_position`` (a frame position in ``[start, stop]``) in
blocks, the way a replay sends them: ``read_block(max_length)`` returns the next run of whole frames as
one memoryview of the file's bytes, headers included, and moves ``position`` past them. A block never
crosses a term end (so never a file end), holds at least one frame when one is there -- even a frame
longer than ``max_length`` -- and only frames that end at or before the stop position. A PAD frame
comes in a block of its own, as the 32-byte header the file holds; ``position`` still moves over its
whole aligned length, so the caller learns the padding's length from the header (a replay appends a
PAD of that length, as Aeron's does). ``frames()`` walks the same frames one at a time as
``(position, header values, payload)``, for tools, and ``messages()`` puts fragmented messages back
together (a snapshot's loader reads them so).

One read may be bounded further, by ``read_block(max_length, limit_position)``: a replay bounded by a
counter whose value need not be a frame end. The limit cuts that read as the stop position cuts them
all: the read takes no more than the bytes up to it (a header's 32 when it is closer than that), the
block holds no frame, DATA or PAD, that ends past it, and the answer is ``None`` when the next frame
does, so the "at least one frame" rule never carries a block beyond it. A limit at or beyond where the
block would end anyway changes nothing: the block is read and checked as without it.

Every frame is checked before it is handed out (``segments.frame_check``: length, term offset, term
id, type, and stream id when given). A frame that fails is reported with ``SegmentError`` naming the file,
the offset in it, the position and the field -- after the good frames before it in the same read have
been returned -- never with an ``IndexError`` or a read outside the buffer: a corrupt length is bounded
by the term before anything is read with it. With a stop position, everything below it must be there:
a zero frame length, a missing segment file or a file that ends early before the stop is a
``SegmentError`` too. With ``stop_position=None`` (a recording whose end is not known, such as one that
was active when its process died) the reader ends quietly where the frames end: a zero frame length,
a file that ends, or a segment file that does not exist.

The returned memoryviews point into the reader's own buffer and are valid until the next call; copy
what must outlive it. One buffer is reused, grown only for a frame larger than it.

**Runs of alike frames, checked at once.** Walking frames one by one in Python costs far more than
reading them, so ``data_frame_run`` checks a run of DATA frames that all have the same length, version
and flags (a stream of equal messages) with a few strided memoryview comparisons -- every frame's first
eight bytes, term offset, term id and stream id (and session id, for the writer) against what the walk
expects -- and the walk carries on after the run. It checks exactly what the walk checks, and when
anything in the run differs it checks nothing, so the walk then finds and reports the frame; the result
and every error are the same either way. The recording writer uses it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from cluster.archive.catalog import RecordingDescriptor
from cluster.archive.errors import SegmentError
from cluster.archive.segments import (
    FRAME_ALIGNMENT,
    HEADER_LENGTH,
    PAD_TYPE,
    check_layout,
    check_position,
    frame_check,
    frame_error,
    segment_file_name,
    term_id_of,
    unpack_header,
)
from cluster.storage import Storage, StorageError, StorageFile
from cluster.transport.logbuffer import alike_data_frames
from generated.aeron_transport_frames import DataFlags

__all__ = ["DEFAULT_READ_LENGTH", "FrameRecord", "RecordingReader", "data_frame_run"]

DEFAULT_READ_LENGTH: Final = 64 * 1024
_BEGIN: Final = int(DataFlags.BEGIN)
_END: Final = int(DataFlags.END)

# (position of the frame's first byte, header values in DataHeaderDecoder.LAYOUT order, payload)
FrameRecord = tuple[int, tuple[int, ...], memoryview]

data_frame_run = alike_data_frames  # the run check lives with the term layout, in the transport


class RecordingReader:
    """Reads the frames of one recording from ``from_position`` (see the module docstring)."""

    __slots__ = (
        "_base",
        "_buffer",
        "_file",
        "_file_name",
        "_file_size",
        "_initial_term_id",
        "_pending_error",
        "_position",
        "_recording_id",
        "_segment_length",
        "_start_term_base",
        "_stop",
        "_storage",
        "_stream_id",
        "_term_length",
        "_view",
    )

    def __init__(
        self,
        storage: Storage,
        *,
        recording_id: int,
        start_position: int,
        stop_position: int | None,
        term_length: int,
        segment_length: int,
        initial_term_id: int,
        from_position: int | None = None,
        stream_id: int | None = None,
    ) -> None:
        check_layout(term_length, segment_length)
        check_position("start position", start_position)
        if stop_position is not None:
            check_position("stop position", stop_position)
            if stop_position < start_position:
                raise SegmentError(
                    f"stop position {stop_position} is before the start position {start_position}"
                )
        position = start_position if from_position is None else check_position("from position", from_position)
        if position < start_position or (stop_position is not None and position > stop_position):
            raise SegmentError(
                f"from position {position} is outside the recording "
                f"[{start_position}, {'open' if stop_position is None else stop_position}]"
            )
        self._storage = storage
        self._recording_id = recording_id
        self._term_length = term_length
        self._segment_length = segment_length
        self._initial_term_id = initial_term_id
        self._stream_id = stream_id
        self._start_term_base = start_position - (start_position & (term_length - 1))
        self._stop = stop_position
        self._position = position
        self._file: StorageFile | None = None
        self._file_name = ""
        self._file_size = 0
        self._base = -1
        self._buffer = bytearray(DEFAULT_READ_LENGTH)
        self._view = memoryview(self._buffer)
        self._pending_error: SegmentError | None = None

    @classmethod
    def of(
        cls,
        storage: Storage,
        descriptor: RecordingDescriptor,
        *,
        stop_position: int | None,
        from_position: int | None = None,
    ) -> RecordingReader:
        """A reader of the recording ``descriptor`` describes, to ``stop_position`` (``None``: where
        whole frames end), checking every frame against the recording's stream id."""
        return cls(
            storage,
            recording_id=descriptor.recording_id,
            start_position=descriptor.start_position,
            stop_position=stop_position,
            term_length=descriptor.term_buffer_length,
            segment_length=descriptor.segment_file_length,
            initial_term_id=descriptor.initial_term_id,
            from_position=from_position,
            stream_id=descriptor.stream_id,
        )

    @property
    def position(self) -> int:
        """The position of the next frame to read."""
        return self._position

    @property
    def stop_position(self) -> int | None:
        return self._stop

    def close(self) -> None:
        """Close the open segment file. Idempotent."""
        if self._file is not None:
            file, self._file = self._file, None
            self._base = -1
            file.close()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ reading

    def _open_segment(self, position: int) -> bool:
        """Make the file holding ``position`` the open one; ``False`` if it does not exist."""
        segment_length = self._segment_length
        base = self._start_term_base + ((position - self._start_term_base) // segment_length) * segment_length
        if base == self._base:
            return True
        self.close()
        name = segment_file_name(self._recording_id, base)
        try:
            file = self._storage.open(name)
        except StorageError:
            if self._storage.exists(name):
                raise
            if self._stop is None:
                return False
            raise SegmentError(
                f"the segment file is missing: it holds position {position}, below the stop position "
                f"{self._stop} of recording {self._recording_id}",
                file=f"{self._storage.location}/{name}",
            ) from None
        self._file = file
        self._file_name = name
        self._base = base
        self._file_size = file.size()
        return True

    def _end(self, position: int, what: str) -> memoryview | None:
        """The end of the frames without a stop position; with one, ``SegmentError``: data is missing
        below it."""
        if self._stop is not None:
            raise SegmentError(
                f"{what} at position {position}, below the stop position {self._stop}",
                file=f"{self._storage.location}/{self._file_name}",
                offset=position - self._base,
            )
        return None

    def _grow(self, length: int) -> None:
        if length > len(self._buffer):
            self._buffer = bytearray(length)
            self._view = memoryview(self._buffer)

    def read_block(
        self, max_length: int = DEFAULT_READ_LENGTH, limit_position: int | None = None
    ) -> memoryview | None:
        """The next run of whole frames (at most ``max_length`` bytes unless one frame is longer), or
        ``None`` at the end; ``SegmentError`` for a bad frame or data missing below the stop position.

        ``limit_position`` bounds this read as the stop position bounds them all: only frames that end
        at or before it, and ``None`` (nothing read, ``position`` unchanged) when the next frame ends
        past it, even when it falls inside that frame's header."""
        if self._pending_error is not None:
            error, self._pending_error = self._pending_error, None
            raise error
        if max_length < HEADER_LENGTH:
            raise SegmentError(f"max length {max_length} is less than a frame header ({HEADER_LENGTH})")
        position = self._position
        stop = self._stop
        if limit_position is not None and (stop is None or limit_position < stop):
            stop = limit_position  # from here on ``stop`` is this read's bound, not only the recording's
        if stop is not None and position >= stop:
            return None
        if not self._open_segment(position):
            return None
        term_length = self._term_length
        term_offset = position & (term_length - 1)
        limit = term_length - term_offset  # a block ends at the term's end at the latest
        if stop is not None and stop - position < limit:
            limit = stop - position
        want = min(max_length & -FRAME_ALIGNMENT, limit)
        want = max(want, HEADER_LENGTH)
        self._grow(want)
        assert self._file is not None
        file_offset = position - self._base
        count = self._file.read_into(file_offset, self._view[:want])
        offset = data_frame_run(
            self._view,
            0,
            count,
            term_offset,
            term_id_of(position, term_length, self._initial_term_id),
            stream_id=self._stream_id,
        )
        while offset + HEADER_LENGTH <= count:
            frame_position = position + offset
            values = unpack_header(self._view, offset)
            frame_length = values[0]
            if frame_length == 0:
                if offset == 0:
                    return self._end(frame_position, "no frame (frame_length 0)")
                break
            problem = frame_check(values, frame_position, term_length, self._initial_term_id, self._stream_id)
            if problem is not None:
                error = frame_error(
                    self._storage, self._file_name, file_offset + offset, frame_position, problem
                )
                if offset == 0:
                    raise error
                self._pending_error = error
                break
            aligned = (frame_length + FRAME_ALIGNMENT - 1) & -FRAME_ALIGNMENT
            if stop is not None and frame_position + aligned > stop:
                break  # only frames that end at or before the stop position (or the read's limit)
            if values[3] == PAD_TYPE:
                if offset:
                    break  # a PAD comes alone
                self._position = position + aligned
                return self._view[:HEADER_LENGTH]
            if offset + aligned > count:
                if offset:
                    break
                return self._read_long_frame(position, file_offset, aligned, frame_length)
            offset += aligned
        if offset == 0:
            # fewer than a header's bytes were there: the file ends, or the stop is inside the frame
            if count < HEADER_LENGTH:
                return self._end(position, f"the file ends (size {self._file_size})")
            return None
        self._position = position + offset
        return self._view[:offset]

    def _read_long_frame(
        self, position: int, file_offset: int, aligned: int, frame_length: int
    ) -> memoryview | None:
        """The block of one frame longer than what was read: read it whole (its length is already known
        to end inside the term and, with a stop position, below it)."""
        self._grow(aligned)
        assert self._file is not None
        count = self._file.read_into(file_offset, self._view[:aligned])
        if count < frame_length:
            return self._end(
                position, f"the file ends (size {self._file_size}) inside a frame of length {frame_length}"
            )
        self._position = position + aligned
        return self._view[:aligned]

    def messages(self, max_length: int = DEFAULT_READ_LENGTH) -> Iterator[tuple[int, bytes]]:
        """``(position of its end, message)`` of every whole message from here on, its fragments put
        back together; padding is skipped. The reader must stand on a message's first fragment. A
        fragment out of sequence -- a continuation with no message begun, a new message before the last
        one ended -- is a ``SegmentError``; a message the recording ends inside is not given."""
        parts: list[bytes] = []
        begun = False
        for position, values, payload in self.frames(max_length):
            if values[3] == PAD_TYPE:
                continue
            flags = values[2]
            if flags & _BEGIN:
                if begun:
                    raise self._sequence_error(position, "a message begins before the last one ended")
                begun = True
            elif not begun:
                raise self._sequence_error(position, "a continuation with no message begun")
            parts.append(bytes(payload))
            if flags & _END:
                end = position + ((values[0] + FRAME_ALIGNMENT - 1) & -FRAME_ALIGNMENT)
                yield end, parts[0] if len(parts) == 1 else b"".join(parts)
                parts.clear()
                begun = False

    def _sequence_error(self, position: int, reason: str) -> SegmentError:
        return SegmentError(
            f"fragment at position {position} out of sequence: {reason}",
            file=f"{self._storage.location}/{self._file_name}",
            field="dataHeader.flags",
        )

    def frames(self, max_length: int = DEFAULT_READ_LENGTH) -> Iterator[FrameRecord]:
        """``(position, header values, payload)`` of every frame from here on, read ``max_length`` bytes
        at a time. A PAD frame's payload is empty. The payload view is valid until the next frame."""
        while True:
            position = self._position
            block = self.read_block(max_length)
            if block is None:
                return
            offset = 0
            length = len(block)
            while offset < length:
                values = unpack_header(block, offset)
                frame_length = values[0]
                if values[3] == PAD_TYPE:
                    yield position, values, block[HEADER_LENGTH:HEADER_LENGTH]
                    break
                yield position + offset, values, block[offset + HEADER_LENGTH : offset + frame_length]
                offset += (frame_length + FRAME_ALIGNMENT - 1) & -FRAME_ALIGNMENT
