"""Segment files: where a recording's bytes live, how they are found, checked, scanned, cut and removed.

Theory of operation
-------------------
A recording is the byte stream of one publication (one image) from its *start position* on, exactly as
the stream's terms held it: frame headers included, every frame at a 32-byte aligned position. The
archive stores it in *segment files* in the archive directory, named ``<recordingId>-<basePosition>.rec``
(``segment_file_name``). Every segment file of a recording has the recording's *segment length* (its
``segmentFileLength`` in the catalog: a power of two and a multiple of the term length, by default
``max(128 MiB, termLength)``), is created at full length -- sparse, so unused space costs nothing -- and
is filled in place. The bases are counted from the base of the term the recording starts in, not from
its start position::

    start_term_base = start_position - (start_position & (term_length - 1))
    segment_base    = start_term_base + ((position - start_term_base) // segment_length) * segment_length
    file_offset     = position - segment_base

so a recording that starts in the middle of a term leaves the first ``start_position - start_term_base``
bytes of its first file unused, and every term lies wholly inside one segment file (a frame never
crosses a term end, so it never crosses a file end either). ``segment_file_base_position`` is that
formula, ``segment_files`` lists a recording's files by base.

**What is in a file.** The recording writer (``cluster.archive.recording_writer``) copies the blocks
of whole frames it is given to ``file_offset``; a PAD frame is written as its 32-byte header only and
the rest of its length stays zero (sparse), but it still moves the position by its whole aligned
length. Everything after the last frame is zero. So the frames are found by walking from a known frame
position: read the header, check it, move ``align(frame_length, 32)``; a zero frame length is the end of
what was written. ``frame_check`` is the check, the same everywhere in the archive: the frame length
is at least the 32-byte header and the frame ends inside its term, the header's term offset is where the
frame sits in its term, its term id is the one of its position (``initial_term_id + (position >>
log2(term_length))``, wrapping at 32 bits), its type is DATA or PAD and (when the caller knows it) the
stream id is the recording's. The session id is not checked: an extended recording holds several.

**Recovery's scan** (``find_stop_position``) answers "where does the recorded data really end?" for a
recording whose process died while recording (``stopPosition`` -1 in the catalog). It starts at the
base of the last segment file that exists (or at the start position, if that is later), as Aeron does,
and walks frames into the following files while they exist; the end is the first zero frame length, the
first frame that fails ``frame_check``, the first DATA frame whose bytes go past the end of the file,
or the first missing file. Because the writer makes each block visible by writing its first frame's
length word last (and never lets a half-written length word look valid), a crash leaves either the
whole block or a zero or negative length word where the block would start, so the scan never keeps a
torn frame (see the writer's module).

**Cutting and removing.** ``truncate_recording_files`` is Aeron's truncate: files wholly after the new
end are deleted, the file holding it is erased from its offset to the file's end (shortened to the
offset and lengthened again, so the erased range reads as zeros and stays sparse) -- or deleted too when
the new end is exactly its base. ``repair_tail`` does the same after a crash, from the position the scan
found. ``delete_recording_files`` removes every file of a recording (purge). Each makes its change
durable: the cut file is synced, deletions are made durable by syncing the directory. Later files are
deleted before the file holding the new end is cut, highest base first, so a crash part way leaves the
files of a prefix of the recording, which the next recovery finishes off; the caller records a truncate's
new stop position in the catalog *before* calling it, so the catalog never points past a cut.

**Detached segments.** A recording's start can move forward to a later segment base (Aeron's detach: the
catalog's start position changes, nothing else); the files before it are then *detached*, kept until
``delete_detached_segments`` removes them, or found again by ``attachable_start`` (Aeron's attach: from
the file just before the start, backwards while files are there, each checked for its first frame).

Errors: arithmetic and files report ``SegmentError`` (``cluster.archive.errors``) with a message that
names the file, the offset and the field; the storage's own ``StorageError`` propagates unchanged.
"""

from __future__ import annotations

import re
from typing import Final

from cluster.archive.errors import SegmentError
from cluster.storage import Storage, StorageFile, SyncLevel
from generated.aeron_transport_frames import DataHeaderDecoder, FrameType

__all__ = [
    "DEFAULT_SEGMENT_FILE_LENGTH",
    "FRAME_ALIGNMENT",
    "HEADER_LENGTH",
    "MAX_SEGMENT_FILE_LENGTH",
    "SEGMENT_FILE_SUFFIX",
    "TERM_MAX_LENGTH",
    "TERM_MIN_LENGTH",
    "attachable_start",
    "check_layout",
    "check_position",
    "delete_detached_segments",
    "delete_recording_files",
    "find_stop_position",
    "frame_check",
    "frame_error",
    "frame_problem",
    "parse_segment_file_name",
    "purge_position",
    "repair_tail",
    "segment_file_base_position",
    "segment_file_name",
    "segment_files",
    "term_id_of",
    "truncate_recording_files",
]

HEADER_LENGTH: Final = DataHeaderDecoder.SIZE  # 32: the DATA/PAD frame header
FRAME_ALIGNMENT: Final = 32
DEFAULT_SEGMENT_FILE_LENGTH: Final = 128 * 1024 * 1024
MAX_SEGMENT_FILE_LENGTH: Final = 1024 * 1024 * 1024
SEGMENT_FILE_SUFFIX: Final = ".rec"
TERM_MIN_LENGTH: Final = 64 * 1024
TERM_MAX_LENGTH: Final = 1024 * 1024 * 1024
MAX_POSITION: Final = (1 << 63) - 1

PAD_TYPE: Final = int(FrameType.PAD)
DATA_TYPE: Final = int(FrameType.DATA)

# frame_length, version, flags, type, term_offset, session_id, stream_id, term_id, reserved_value
unpack_header = DataHeaderDecoder.LAYOUT.unpack_from  # callers make sure the 32 bytes are there

_NAME = re.compile(r"(0|[1-9][0-9]*)-(0|[1-9][0-9]*)\.rec")
_SCAN_CHUNK: Final = 1024 * 1024  # bytes read at a time by the recovery scan


def _wrap32(value: int) -> int:
    return ((value + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


# ------------------------------------------------------------------------------------------ validation


def check_layout(term_length: int, segment_length: int) -> None:
    """``SegmentError`` unless ``term_length`` is a power of two in [64 KiB, 1 GiB] and ``segment_length``
    a power of two, a multiple of it, and at most 1 GiB (what Aeron's archive accepts)."""
    if not isinstance(term_length, int) or not _is_power_of_two(term_length):
        raise SegmentError(f"term length {term_length} is not a power of two")
    if not TERM_MIN_LENGTH <= term_length <= TERM_MAX_LENGTH:
        raise SegmentError(
            f"term length {term_length} is outside [{TERM_MIN_LENGTH}, {TERM_MAX_LENGTH}] (64 KiB to 1 GiB)"
        )
    if not isinstance(segment_length, int) or segment_length <= 0 or segment_length % term_length:
        raise SegmentError(
            f"segment length {segment_length} is not a multiple of the term length {term_length}"
        )
    if not _is_power_of_two(segment_length):
        raise SegmentError(f"segment length {segment_length} is not a power of two")
    if segment_length > MAX_SEGMENT_FILE_LENGTH:
        raise SegmentError(f"segment length {segment_length} is more than {MAX_SEGMENT_FILE_LENGTH} (1 GiB)")


def check_position(name: str, position: int, *, aligned: bool = True) -> int:
    """``position`` if it is a valid stream position (non-negative, below 2^63, and a multiple of 32 when
    ``aligned``); ``SegmentError`` naming it as ``name`` otherwise."""
    if not isinstance(position, int) or not 0 <= position <= MAX_POSITION:
        raise SegmentError(f"{name} {position} is not a position (0 to 2^63-1)")
    if aligned and position & (FRAME_ALIGNMENT - 1):
        raise SegmentError(f"{name} {position} is not a multiple of {FRAME_ALIGNMENT}")
    return position


def _check_recording_id(recording_id: int) -> int:
    if not isinstance(recording_id, int) or recording_id < 0:
        raise SegmentError(f"recording id {recording_id} is not a non-negative integer")
    return recording_id


# ------------------------------------------------------------------------------------------ arithmetic


def segment_file_name(recording_id: int, segment_base: int) -> str:
    """``<recording_id>-<segment_base>.rec``, the name Aeron gives a segment file."""
    _check_recording_id(recording_id)
    check_position("segment base", segment_base, aligned=False)
    return f"{recording_id}-{segment_base}{SEGMENT_FILE_SUFFIX}"


def parse_segment_file_name(name: str) -> tuple[int, int] | None:
    """``(recording_id, segment_base)`` of a segment file name in its canonical form (decimal numbers
    without leading zeros), ``None`` for any other name."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    recording_id, base = int(match.group(1)), int(match.group(2))
    if base > MAX_POSITION or recording_id > MAX_POSITION:
        return None
    return recording_id, base


def segment_file_base_position(
    start_position: int, position: int, term_length: int, segment_length: int
) -> int:
    """The base position of the segment file that holds ``position`` of a recording starting at
    ``start_position`` (see the module docstring for the formula)."""
    check_layout(term_length, segment_length)
    check_position("start position", start_position, aligned=False)
    check_position("position", position, aligned=False)
    if position < start_position:
        raise SegmentError(f"position {position} is before the start position {start_position}")
    start_term_base = start_position - (start_position & (term_length - 1))
    return start_term_base + ((position - start_term_base) // segment_length) * segment_length


def purge_position(start_position: int, position: int, term_length: int, segment_length: int) -> int | None:
    """Where a purge of everything a recording holds below ``position`` moves its start: the base of the
    segment holding ``position`` (a purge takes whole segments); ``None`` if that is the recording's first
    segment, so there is nothing to purge."""
    base = segment_file_base_position(start_position, position, term_length, segment_length)
    first = segment_file_base_position(start_position, start_position, term_length, segment_length)
    return base if base >= first + segment_length else None


def term_id_of(position: int, term_length: int, initial_term_id: int) -> int:
    """The term id of the term that holds ``position`` (Aeron's ``computeTermIdFromPosition``)."""
    return _wrap32(initial_term_id + (position >> (term_length.bit_length() - 1)))


def segment_files(storage: Storage, recording_id: int) -> list[tuple[int, str]]:
    """``(segment_base, file_name)`` of every segment file of ``recording_id`` in ``storage``, by base."""
    _check_recording_id(recording_id)
    found = []
    for name in storage.list():
        parsed = parse_segment_file_name(name)
        if parsed is not None and parsed[0] == recording_id:
            found.append((parsed[1], name))
    found.sort()
    return found


# ------------------------------------------------------------------------------------------ frame check


def frame_check(
    values: tuple[int, ...],
    position: int,
    term_length: int,
    initial_term_id: int,
    stream_id: int | None = None,
) -> tuple[str, str] | None:
    """``(field, what is wrong)`` for the header ``values`` (``DataHeaderDecoder.LAYOUT`` order) of a
    frame at ``position``, e.g. ``("term_offset", "term_offset is 4128, expected 4096")``; ``None`` when
    it is a good DATA or PAD frame. A zero frame length is reported too; callers that take it as "no
    more frames" test it first."""
    frame_length = values[0]
    term_offset = position & (term_length - 1)
    if frame_length < HEADER_LENGTH:
        return "frame_length", f"frame_length is {frame_length}, expected at least {HEADER_LENGTH}"
    if term_offset + frame_length > term_length:
        return "frame_length", (
            f"frame_length is {frame_length}, which runs past the end of the term "
            f"({term_length - term_offset} bytes left in it)"
        )
    frame_type = values[3]
    if frame_type != DATA_TYPE and frame_type != PAD_TYPE:
        return "type", f"type is {frame_type}, expected DATA ({DATA_TYPE}) or PAD ({PAD_TYPE})"
    if values[4] != term_offset:
        return "term_offset", f"term_offset is {values[4]}, expected {term_offset}"
    expected_term_id = term_id_of(position, term_length, initial_term_id)
    if values[7] != expected_term_id:
        return "term_id", f"term_id is {values[7]}, expected {expected_term_id}"
    if stream_id is not None and values[6] != stream_id:
        return "stream_id", f"stream_id is {values[6]}, expected {stream_id}"
    return None


def frame_problem(
    values: tuple[int, ...],
    position: int,
    term_length: int,
    initial_term_id: int,
    stream_id: int | None = None,
) -> str | None:
    """What ``frame_check`` finds wrong with a frame header, as text (``"term_id is 5, expected 4"``),
    or ``None`` for a good DATA or PAD frame."""
    found = frame_check(values, position, term_length, initial_term_id, stream_id)
    return None if found is None else found[1]


def frame_error(
    storage: Storage, name: str, file_offset: int, position: int, problem: tuple[str, str]
) -> SegmentError:
    """The ``SegmentError`` for a bad frame: the file, the offset in it, the header field, and what is
    wrong with it at which position."""
    field, reason = problem
    return SegmentError(
        f"bad frame at position {position}: {reason}",
        file=f"{storage.location}/{name}",
        offset=file_offset,
        field=f"dataHeader.{field}",
    )


# ------------------------------------------------------------------------------------------ scanning


def find_stop_position(
    storage: Storage,
    *,
    recording_id: int,
    start_position: int,
    term_length: int,
    segment_length: int,
    initial_term_id: int,
    from_position: int | None = None,
    stream_id: int | None = None,
) -> int:
    """The end of the last whole, valid frame of a recording: recovery's scan (module docstring).

    The walk starts at ``from_position`` (a frame position, default: the base of the last segment file
    there is, or the start position if that is later) and goes on through the following segment files
    as long as they exist. It ends at the first zero frame length, bad frame (``frame_check``), DATA
    frame cut by the end of its file, or missing file. Without any segment file the answer is the start
    position (or ``from_position``)."""
    check_layout(term_length, segment_length)
    check_position("start position", start_position)
    start_term_base = start_position - (start_position & (term_length - 1))
    files = dict(segment_files(storage, recording_id))
    if from_position is None:
        bases = [base for base in files if base >= start_term_base]
        position = max(start_position, max(bases)) if bases else start_position
    else:
        position = check_position("from position", from_position)
        if position < start_position:
            raise SegmentError(f"from position {position} is before the start position {start_position}")
    buffer = bytearray(_SCAN_CHUNK)
    view = memoryview(buffer)
    term_mask = term_length - 1
    while True:
        base = start_term_base + ((position - start_term_base) // segment_length) * segment_length
        name = files.get(base)
        if name is None:
            return position
        with storage.open(name) as file:
            file_size = file.size()
            end = _scan_file(
                file, view, position, base, file_size, segment_length, term_mask, initial_term_id, stream_id
            )
        if end < base + segment_length:
            return end
        position = end


def _scan_file(
    file: StorageFile,
    view: memoryview,
    position: int,
    base: int,
    file_size: int,
    segment_length: int,
    term_mask: int,
    initial_term_id: int,
    stream_id: int | None,
) -> int:
    """Walk frames from ``position`` inside the segment file at ``base``; return where they end."""
    term_length = term_mask + 1
    segment_end = base + segment_length
    chunk_start = chunk_end = position  # positions covered by the bytes in ``view``
    while position < segment_end:
        if position + HEADER_LENGTH > chunk_end:
            chunk_start = position
            want = min(len(view), segment_end - position)
            chunk_end = chunk_start + file.read_into(position - base, view[:want])
            if position + HEADER_LENGTH > chunk_end:
                return position  # the file ends here
        values = unpack_header(view, position - chunk_start)
        frame_length = values[0]
        if frame_length == 0:
            return position
        if frame_check(values, position, term_length, initial_term_id, stream_id) is not None:
            return position
        if values[3] == DATA_TYPE and position - base + frame_length > file_size:
            return position  # the frame's bytes are not all in the file
        position += (frame_length + FRAME_ALIGNMENT - 1) & -FRAME_ALIGNMENT
    return position


# ------------------------------------------------------------------------------------------ cutting


def _erase_after(
    storage: Storage,
    recording_id: int,
    start_position: int,
    position: int,
    term_length: int,
    segment_length: int,
) -> list[str]:
    """Make ``position`` the end of a recording's files: delete the files wholly after it (highest base
    first) and the one starting exactly at it (unless it is the first, which holds ``start_position``
    when that is not a base), then erase the rest of the file holding it. Returns what it did."""
    start_term_base = start_position - (start_position & (term_length - 1))
    base = start_term_base + ((position - start_term_base) // segment_length) * segment_length
    offset = position - base
    done: list[str] = []
    deleted = False
    for file_base, name in reversed(segment_files(storage, recording_id)):
        if file_base > base or (file_base == base and position == base):
            storage.delete(name)
            done.append(f"deleted {name}")
            deleted = True
    if deleted:
        storage.sync_directory()
    if offset:
        name = segment_file_name(recording_id, base)
        if storage.exists(name):
            with storage.open(name) as file:
                size = file.size()
                if size > offset and _has_data(file, offset, size):
                    file.truncate(offset)
                    size = offset
                    done.append(f"erased {name} from offset {offset}")
                if size != segment_length:
                    file.truncate(segment_length)
                    file.sync(SyncLevel.DATA)
    return done


def _has_data(file: StorageFile, offset: int, size: int) -> bool:
    """Whether any byte of ``file`` from ``offset`` to ``size`` is not zero (read in chunks)."""
    buffer = bytearray(min(_SCAN_CHUNK, size - offset))
    view = memoryview(buffer)
    while offset < size:
        count = file.read_into(offset, view[: min(len(view), size - offset)])
        if count == 0:
            return False
        if buffer.count(0, 0, count) != count:
            return True
        offset += count
    return False


def truncate_recording_files(
    storage: Storage,
    *,
    recording_id: int,
    start_position: int,
    stop_position: int,
    position: int,
    term_length: int,
    segment_length: int,
) -> list[str]:
    """Aeron's truncate of a stopped recording to ``position`` (in [start, stop], a multiple of 32).

    Segment files wholly after ``position`` are deleted, so is the one whose base is ``position``; the
    file holding ``position`` is erased from there to its end. The caller records ``position`` as the
    stop position in the catalog first (the recording must not be active and have no replay). Returns
    one line per file changed."""
    check_layout(term_length, segment_length)
    _check_recording_id(recording_id)
    check_position("start position", start_position)
    if stop_position == -1:
        raise SegmentError(
            f"recording {recording_id} is active (stop position -1): stop it before truncating"
        )
    check_position("stop position", stop_position)
    check_position("truncate position", position)
    if not start_position <= position <= stop_position:
        raise SegmentError(
            f"truncate position {position} is outside the recording [{start_position}, {stop_position}]"
        )
    return _erase_after(storage, recording_id, start_position, position, term_length, segment_length)


def repair_tail(
    storage: Storage,
    *,
    recording_id: int,
    start_position: int,
    stop_position: int,
    term_length: int,
    segment_length: int,
) -> list[str]:
    """Cut a recording back to ``stop_position`` (what ``find_stop_position`` found after a crash):
    whatever lies after it in its segment file is erased (so a later extension writes into zeros) and
    later segment files are deleted. Returns one line per file changed; empty when nothing had to be."""
    check_layout(term_length, segment_length)
    _check_recording_id(recording_id)
    check_position("start position", start_position)
    check_position("stop position", stop_position)
    if stop_position < start_position:
        raise SegmentError(f"stop position {stop_position} is before the start position {start_position}")
    return _erase_after(storage, recording_id, start_position, stop_position, term_length, segment_length)


def delete_recording_files(storage: Storage, recording_id: int) -> list[str]:
    """Delete every segment file of ``recording_id`` (purge), highest base first, and sync the directory.
    Returns the names deleted."""
    return _delete(storage, [name for _, name in reversed(segment_files(storage, recording_id))])


def _delete(storage: Storage, names: list[str]) -> list[str]:
    """Delete ``names`` in order, then sync the directory (if any went); returns them."""
    for name in names:
        storage.delete(name)
    if names:
        storage.sync_directory()
    return names


# ------------------------------------------------------------------------------------ detached segments


def delete_detached_segments(
    storage: Storage, recording_id: int, start_position: int, term_length: int, segment_length: int
) -> list[str]:
    """Delete the segment files of ``recording_id`` wholly before the segment holding ``start_position``
    (detached ones), highest base first, and sync the directory. Returns the names deleted."""
    first = segment_file_base_position(start_position, start_position, term_length, segment_length)
    return _delete(
        storage, [name for base, name in reversed(segment_files(storage, recording_id)) if base < first]
    )


def attachable_start(
    storage: Storage,
    recording_id: int,
    start_position: int,
    term_length: int,
    segment_length: int,
    initial_term_id: int,
    stream_id: int,
) -> tuple[int, int]:
    """``(new start position, files attached)``: the detached segment files just before the recording's
    start, taken back while they are there, from the nearest one down. A file must be a whole segment long
    and hold a good frame first in its first term (a file of the recording's very start may begin with
    zeros up to it); the start becomes the file's base, or that first frame's position. Raises
    ``SegmentError`` naming the file when one is not a segment of this recording."""
    check_layout(term_length, segment_length)
    _check_recording_id(recording_id)
    check_position("start position", start_position)
    start = start_position
    base = segment_file_base_position(start, start, term_length, segment_length)
    attached = 0
    if base != start:
        return start, 0  # the recording began inside this segment: nothing of it lies before
    while base >= segment_length:
        base -= segment_length
        name = segment_file_name(recording_id, base)
        if not storage.exists(name):
            break
        with storage.open(name) as file:
            if file.size() != segment_length:
                raise SegmentError(
                    f"{name} is {file.size()} bytes, not a segment of {segment_length}",
                    file=f"{storage.location}/{name}",
                )
            offset = _first_frame_offset(storage, name, file, base, term_length, initial_term_id, stream_id)
        attached += 1
        start = base + offset
        if offset:
            break  # the recording began in this file
    return start, attached


def _first_frame_offset(
    storage: Storage,
    name: str,
    file: StorageFile,
    base: int,
    term_length: int,
    initial_term_id: int,
    stream_id: int,
) -> int:
    """The offset of the first frame in the first term of the segment file at ``base``, checked."""
    chunk_at = 0
    while chunk_at < term_length:
        chunk = file.read(chunk_at, min(_SCAN_CHUNK, term_length - chunk_at))
        zeros = len(chunk) - len(chunk.lstrip(b"\x00"))
        offset = zeros & -FRAME_ALIGNMENT  # the header holding the first byte that is not zero
        if zeros < len(chunk) and offset + HEADER_LENGTH <= len(chunk):
            at = chunk_at + offset
            values = unpack_header(chunk, offset)
            problem = frame_check(values, base + at, term_length, initial_term_id, stream_id)
            if problem is not None:
                raise frame_error(storage, name, at, base + at, problem)
            return at
        if len(chunk) < min(_SCAN_CHUNK, term_length - chunk_at):
            break  # the file ends early
        chunk_at += len(chunk)
    raise SegmentError(f"no frame in the first term of {name}", file=f"{storage.location}/{name}", offset=0)
