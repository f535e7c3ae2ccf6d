"""``RecordingWriter``: writes the blocks of a recorded image into the recording's segment files.

Theory of operation
-------------------
The recording session polls its image with ``block_poll`` and hands each block to ``on_block(buffer,
offset, length, session_id, term_id)``: ``length`` bytes of whole frames starting at ``offset`` in the
term ``buffer``, never crossing the term's end, possibly with PAD frames. The writer checks the block
against the recording's position (its offset, length and term) and its first frame in full (length,
type, term offset, session and term id); the frames after the first are the transport's, which checked
each of them as it entered the term, so the writer does not walk them again (nor does Aeron's). It then
copies the block into the segment file that holds the position, at ``position - segment_base``
(``cluster.archive.segments`` has the arithmetic), and moves ``position`` by ``length``, with O(1)
Python work per block whatever the number of frames. A block that is one PAD frame is written as its
32-byte header only (its padding stays zero in the sparse file, as Aeron's writer leaves it); a PAD
inside a longer block -- the end-of-term padding, at most one frame long -- is written with its zero
padding, the same bytes. When the position reaches the end of a segment
file the next one is created at once at full length (``open(create=True)`` and ``truncate``, so it is
sparse) -- so a recording that stops exactly at a file's end has an empty next file, as with Aeron.

**Durability.** With ``file_sync_level`` DATA or ALL (Aeron's ``file-sync-level`` 1 and 2) every block
is followed by a ``sync`` at that level, and creating a segment file also syncs the file and the
directory, so that a synced block is never lost with the file that holds it. With NONE the operating
system writes back when it likes.

**Crash safety: the length word goes last.** A crash can leave the last write half done -- the disk
keeps a prefix of its bytes, torn at any byte -- and recovery (``segments.find_stop_position``) must
never take a torn frame for a whole one. So a block becomes visible only through the ``frame_length``
word of its first frame, which is written last, as Aeron's term appender publishes a frame to
concurrent readers by writing its length last. The rest of the block goes first, while that word is
still zero in the file (the file is zero from ``position`` on); a scan that finds a zero length stops
there, so until the length lands the block does not exist, and once it lands all of the block is in
the file. The length word itself must not be seen half written either: a prefix of its four
little-endian bytes is a smaller, plausible length. Hence:

* first frame shorter than 256 bytes (only its low byte is not zero): write the block from byte 1,
  then byte 0 -- a one-byte write cannot be torn;
* otherwise: write the block from byte 4; then byte 3 alone as ``0x80``, which makes the word negative,
  an invalid length; then the four real bytes. Every prefix of that last write leaves byte 3 at
  ``0x80``, so the word is invalid until the write's last byte -- the real byte 3 -- lands.

A scan therefore sees, where the block starts, zero, a negative length, or the whole block. This needs
the file to be zero from ``position`` on, which the writer checks when it opens a recording for writing
(a recording's files are zero after its end: new files are sparse, and truncate and ``repair_tail``
erase what they cut).

**Errors.** A block that does not fit the recording's position, or whose frames are inconsistent,
raises ``SegmentError`` before anything is written. A ``StorageError`` from the storage propagates to
the caller, the recording session, which stops the recording with ``writer.position`` as its stop
position (everything before it was written); the writer first tries to erase the block it was writing
so that the file is zero after that position again, and refuses further blocks. If even that failed,
the archive's recovery cuts the tail at its next start. ``close()`` closes the file and changes
nothing else; the catalog is the caller's.
"""

from __future__ import annotations

from typing import Final

from cluster.archive.errors import SegmentError
from cluster.archive.segments import (
    DATA_TYPE,
    FRAME_ALIGNMENT,
    HEADER_LENGTH,
    PAD_TYPE,
    check_layout,
    check_position,
    segment_file_name,
    term_id_of,
    unpack_header,
)
from cluster.storage import Storage, StorageError, StorageFile, SyncLevel

__all__ = ["RecordingWriter"]

_LENGTH_WORD: Final = 4  # the frame_length field, written last
_INVALID_HIGH_BYTE: Final = b"\x80"  # frame_length's byte 3 while the word is being written: negative
_CLEAN_CHECK_LENGTH: Final = 1024 * 1024  # how much after the write position must be zero at open


def _wrap32(value: int) -> int:
    return ((value + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000


class RecordingWriter:
    """Writes a recording's blocks from ``position`` on (see the module docstring).

    ``position`` is where writing continues: ``start_position`` for a new recording, the stop position
    when extending one. ``initial_term_id``, when given, is checked against every block's term id;
    otherwise the first block fixes it."""

    __slots__ = (
        "_failed",
        "_file",
        "_initial_term_id",
        "_position",
        "_recording_id",
        "_segment_base",
        "_segment_length",
        "_shift",
        "_start_term_base",
        "_storage",
        "_sync_level",
        "_term_length",
    )

    def __init__(
        self,
        storage: Storage,
        *,
        recording_id: int,
        start_position: int,
        position: int,
        term_length: int,
        segment_length: int,
        file_sync_level: SyncLevel,
        initial_term_id: int | None = None,
    ) -> None:
        check_layout(term_length, segment_length)
        check_position("start position", start_position)
        check_position("position", position)
        if position < start_position:
            raise SegmentError(f"position {position} is before the start position {start_position}")
        if not isinstance(recording_id, int) or recording_id < 0:
            raise SegmentError(f"recording id {recording_id} is not a non-negative integer")
        self._storage = storage
        self._recording_id = recording_id
        self._term_length = term_length
        self._segment_length = segment_length
        self._shift = term_length.bit_length() - 1
        self._sync_level = SyncLevel(file_sync_level)
        self._initial_term_id = initial_term_id
        self._start_term_base = start_position - (start_position & (term_length - 1))
        self._position = position
        self._failed = False
        self._segment_base = (
            self._start_term_base + ((position - self._start_term_base) // segment_length) * segment_length
        )
        self._file: StorageFile | None = None
        file = self._open_segment(self._segment_base)
        try:
            self._check_clean(file, position - self._segment_base)
        except BaseException:
            file.close()
            raise
        self._file = file

    @property
    def position(self) -> int:
        """The position after the last block written: where the next block goes."""
        return self._position

    @property
    def recording_id(self) -> int:
        return self._recording_id

    def close(self) -> None:
        """Close the segment file. Idempotent; the catalog is not touched."""
        if self._file is not None:
            file, self._file = self._file, None
            file.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ files

    def _open_segment(self, base: int) -> StorageFile:
        """Open the segment file at ``base``, creating it at full length if needed."""
        storage = self._storage
        name = segment_file_name(self._recording_id, base)
        created = not storage.exists(name)
        file = storage.open(name, create=True)
        try:
            resized = file.size() != self._segment_length
            if resized:
                file.truncate(self._segment_length)
            if self._sync_level and (created or resized):
                file.sync(self._sync_level)
                if created:
                    storage.sync_directory()
        except BaseException:
            file.close()
            raise
        return file

    def _check_clean(self, file: StorageFile, offset: int) -> None:
        """``SegmentError`` unless the file is zero for a stretch from ``offset``: the two-write commit
        relies on it (module docstring)."""
        length = min(_CLEAN_CHECK_LENGTH, self._segment_length - offset)
        data = file.read(offset, length)
        if data.count(0) != len(data):
            first = next(i for i, byte in enumerate(data) if byte)
            raise SegmentError(
                f"the file holds data after the write position {self._position}: cut the tail "
                "(repair_tail or truncate) before writing",
                file=f"{self._storage.location}/{segment_file_name(self._recording_id, self._segment_base)}",
                offset=offset + first,
            )

    def _roll_over(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()
        self._segment_base += self._segment_length
        self._file = self._open_segment(self._segment_base)

    # ------------------------------------------------------------------------------------------ blocks

    def _check_block(
        self, buffer: memoryview, offset: int, length: int, session_id: int, term_id: int
    ) -> int:
        """Check a block against the position; return the end of the bytes to write (a PAD's header)."""
        position = self._position
        term_length = self._term_length
        term_offset = position & (term_length - 1)
        where = f"recording {self._recording_id} at position {position}"
        if offset != term_offset:
            raise SegmentError(
                f"{where} (term offset {term_offset}) was given a block at term offset {offset}"
            )
        initial = self._initial_term_id
        if initial is None:  # the first block fixes it, once it has passed every check (on_block)
            initial = _wrap32(term_id - (position >> self._shift))
        expected_term_id = term_id_of(position, term_length, initial)
        if term_id != expected_term_id:
            raise SegmentError(
                f"{where} was given a block of term {term_id}, expected term {expected_term_id}"
            )
        if length <= 0 or length & (FRAME_ALIGNMENT - 1) or offset + length > term_length:
            raise SegmentError(
                f"{where} was given a block of length {length}: it must be a positive multiple of "
                f"{FRAME_ALIGNMENT} within the term ({term_length - term_offset} bytes left)"
            )
        end = offset + length
        if end > len(buffer) or offset + HEADER_LENGTH > len(buffer):
            raise SegmentError(f"{where}: the block [{offset}, {end}) is not in the buffer")
        # The first frame, which publishes the block in the file (see "Crash safety"), is checked in
        # full; the frames after it are the transport's, which checked each one as it entered the term
        # (an image's rebuild, an IPC publication's own appender) -- as Aeron's writer, this one does
        # not walk them again.
        values = unpack_header(buffer, offset)
        frame_length, frame_type = values[0], values[3]
        aligned = (frame_length + FRAME_ALIGNMENT - 1) & -FRAME_ALIGNMENT
        problem = None
        if frame_length < HEADER_LENGTH:
            problem = f"frame_length is {frame_length}"
        elif frame_type != DATA_TYPE and frame_type != PAD_TYPE:
            problem = f"type is {frame_type}"
        elif values[4] != offset:
            problem = f"term_offset is {values[4]}"
        elif values[7] != term_id:
            problem = f"term_id is {values[7]}, the block's is {term_id}"
        elif values[5] != session_id:
            problem = f"session_id is {values[5]}, the block's is {session_id}"
        elif offset + aligned > end:
            problem = f"frame_length {frame_length} runs past the block's end"
        if problem is not None:
            raise SegmentError(f"{where}: bad frame in the block at term offset {offset}: {problem}")
        if frame_type == PAD_TYPE and aligned == length:
            return offset + HEADER_LENGTH  # a block of one PAD is written as its header
        return end

    def on_block(self, buffer: memoryview, offset: int, length: int, session_id: int, term_id: int) -> None:
        """Write one block of whole frames (``Image.block_poll``'s handler); see the module docstring."""
        if self._failed or self._file is None:
            raise SegmentError(
                f"recording {self._recording_id}: the writer is "
                f"{'broken by an earlier storage error' if self._failed else 'closed'}"
            )
        view = buffer if isinstance(buffer, memoryview) else memoryview(buffer)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        data_end = self._check_block(view, offset, length, session_id, term_id)
        if self._initial_term_id is None:
            self._initial_term_id = _wrap32(term_id - (self._position >> self._shift))
        file = self._file
        file_offset = self._position - self._segment_base
        try:
            if view[offset + 1] == 0 and view[offset + 2] == 0 and view[offset + 3] == 0:
                file.write(file_offset + 1, view[offset + 1 : data_end])
                file.write(file_offset, view[offset : offset + 1])
            else:
                file.write(file_offset + _LENGTH_WORD, view[offset + _LENGTH_WORD : data_end])
                file.write(file_offset + 3, _INVALID_HIGH_BYTE)
                file.write(file_offset, view[offset : offset + _LENGTH_WORD])
            if self._sync_level:
                file.sync(self._sync_level)
        except StorageError:
            self._failed = True
            self._erase_from(file, file_offset)
            raise
        self._position += length
        if self._position - self._segment_base >= self._segment_length:
            try:
                self._roll_over()
            except StorageError:
                self._failed = True
                raise

    def _erase_from(self, file: StorageFile, file_offset: int) -> None:
        """Best effort after a failed write: make the file zero from ``file_offset`` again."""
        try:
            file.truncate(file_offset)
            file.truncate(self._segment_length)
            if self._sync_level:
                file.sync(self._sync_level)
        except StorageError:
            pass  # recovery cuts the tail at the next start
