"""``python -m tools bench archive``: the archive's recording and replay paths against plain file I/O.

Two questions, each answered side by side in one run, on real files (``RealStorage``) in a temporary
directory, at file-sync level 0, with a stream of 32-byte messages (64-byte frames with the 32-byte
header):

* **Record** (target: ours / plain >= :data:`RECORD_TARGET`, in bytes per second). Ours is the
  archive's recording path: a ``RecordingSession`` whose duty cycle is ``Image.block_poll`` on an IPC
  image handing blocks (at most ``--block-length`` bytes, the archive's ``file_io_max_length``, never
  across a term end) to ``RecordingWriter.on_block``, which checks every frame and writes the block into
  its segment file, then sets the recording-position counter. The plain side ``os.pwrite`` s the same
  bytes in the same blocks, one write per block, to a file of the segment file's size.
* **Replay** (target: ours / plain >= :data:`REPLAY_TARGET`). Ours is the archive's replay path: a
  ``ReplaySession`` whose duty cycle is ``RecordingReader.read_block`` (read and check every frame), the
  copy and frame rewrite (session and stream id), and ``offer_block`` into an IPC replay publication
  created as the archive creates it (the recording's initial term id, term length and start
  position). The plain side ``os.preadv`` s the same bytes of the same segment file in the same blocks
  into one reused buffer.

Three more rows, without targets. Two split the archive's own code from the transport's: the writer
alone (``on_block`` over the very blocks ``block_poll`` handed out, no ``block_poll``) and the reader
alone (``read_block`` in the replay's block sizes, no rewrite or ``offer_block``). The third is the
replay's *floor*, the least a replay in Python can do: each block read straight into a log-sized buffer
at its place and both ids written into every frame header with one strided assignment, nothing checked
and nothing published. A replay's ratio cannot pass its floor's, so the floor says how much of a missed
replay target is the code and how much is Python (docs/archive.md, Performance).

What is timed, and what is not
------------------------------
Only the steady-state copy loop is timed; everything a real archive does once per recording or replay
is set-up, outside the timed region, for both sides alike:

* The messages are offered to the IPC publication *before* a record round (the publisher's ``offer``
  is the application's cost, not the archive's) and stay in the term; each record round moves the image
  back to the start and records them all again into fresh segment files. So all of the recording fits
  in one term window (``--messages`` x 64 bytes at most half of ``--term-length``).
* Creating the ``RecordingWriter`` (segment file created at full length, sparse) and the plain file
  (created and ``ftruncate`` d to the same length), closing and deleting both afterwards.
* Creating the ``RecordingReader``, the replay publication (its log is allocated and zeroed) and the
  ``ReplaySession``; closing them afterwards. The replay's subscriber is not the archive: when the
  publication is back-pressured the loop moves the subscriber's image position to the publication's
  position without reading (with the defaults the whole replay fits in the publication's window, so
  this never happens).

Method (that of :mod:`tools.bench.harness`, adapted to rounds with untimed set-up, which
``timeit`` cannot express): time is the process's CPU time (:func:`time.process_time`, which counts the
kernel's copy into and out of the page cache but not the other processes on a shared machine); the
garbage collector is off while a round is timed; ours and plain alternate round by round (plain, ours,
ours, plain, ...) so both see the same machine state; the figure kept is each side's best round (noise
only ever adds time); the medians, and their ratio, are in the JSON too. Every round checks that it
did all of its work (the writer's and the counter's position, the replay's position), and the first
checks the bytes (the segment file holds the frames, the replay publication's term holds them with the
replay's ids), so the benchmark cannot time a loop that does nothing. A benchmark is not a test: a
missed target is printed, the exit status stays 0.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from tools.bench.harness import verdict_lines

if TYPE_CHECKING:  # the modules are imported when the benchmark runs, not when ``bench`` builds its parser
    from cluster.archive.recording_reader import RecordingReader
    from cluster.archive.recording_writer import RecordingWriter
    from cluster.transport.driver import Transport
    from cluster.transport.image import Image
    from cluster.transport.publication import Publication

__all__ = [
    "RECORD_TARGET",
    "REPLAY_TARGET",
    "BenchCase",
    "Settings",
    "configure",
    "format_table",
    "run",
]

RECORD_TARGET: Final = 0.5
REPLAY_TARGET: Final = 0.5
MESSAGE_LENGTH: Final = 32  # payload bytes
HEADER_LENGTH: Final = 32
FRAME_LENGTH: Final = MESSAGE_LENGTH + HEADER_LENGTH  # 64: already 32-byte aligned
STREAM_ID: Final = 1201
REPLAY_STREAM_ID: Final = 1202
RECORDING_ID: Final = 7  # the record rounds' recording (rewritten every round)
REPLAY_RECORDING_ID: Final = 8  # the recording the replay rounds read
MIB: Final = 1024 * 1024
DEFAULT_BLOCK_LENGTH: Final = MIB  # the archive's default file_io_max_length
SEGMENT_LENGTH: Final = 128 * MIB  # the archive's default segment file length (if >= the term length)
MAX_ROUND_TRIPS: Final = 1 << 30  # a loop guard: far more duty cycles than any round needs

_SESSION_AND_STREAM: Final = struct.Struct("<ii")  # a data frame header's session_id @12, stream_id @16
_MESSAGE_INDEX: Final = struct.Struct("<q")


@dataclass(frozen=True, slots=True)
class Settings:
    """How much to measure: ``repeats`` interleaved rounds of each side, each over ``messages``."""

    repeats: int
    messages: int
    term_length: int

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.messages < 1:
            raise _UsageError(
                f"--messages and --repeats must be at least 1, not {self.messages} and {self.repeats}"
            )
        if self.term_length & (self.term_length - 1) or not 64 * 1024 <= self.term_length <= 1 << 30:
            raise _UsageError(f"--term-length must be a power of two in [64k, 1g], not {self.term_length}")
        if self.messages * FRAME_LENGTH > self.term_length // 2:
            raise _UsageError(
                f"{self.messages} messages of {FRAME_LENGTH}-byte frames do not fit in half a term of "
                f"{self.term_length} bytes (the IPC publication's window): use a larger --term-length "
                f"(at least {_next_power_of_two(2 * self.messages * FRAME_LENGTH)})"
            )


FULL: Final = Settings(repeats=21, messages=131_072, term_length=16 * MIB)
QUICK: Final = Settings(repeats=1, messages=2_048, term_length=MIB)


class _UsageError(ValueError):
    is_user_error = True


def _next_power_of_two(value: int) -> int:
    return 1 << max(0, value - 1).bit_length()


@dataclass(frozen=True, slots=True)
class BenchCase:
    """One compared figure: ours and plain, in bytes per second, their ratio and the target (``None``:
    informational). Higher is better: the ratio must reach the target."""

    id: str
    title: str
    bytes_moved: int
    messages: int
    ours_s: Sequence[float]
    plain_s: Sequence[float]
    target: float | None

    @property
    def ours_bytes_per_s(self) -> float:
        return self.bytes_moved / min(self.ours_s)

    @property
    def plain_bytes_per_s(self) -> float:
        return self.bytes_moved / min(self.plain_s)

    @property
    def ours_messages_per_s(self) -> float:
        return self.messages / min(self.ours_s)

    @property
    def plain_messages_per_s(self) -> float:
        return self.messages / min(self.plain_s)

    @property
    def ratio(self) -> float:
        return self.ours_bytes_per_s / self.plain_bytes_per_s

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.plain_s) / statistics.median(self.ours_s)

    @property
    def status(self) -> str:
        if self.target is None:
            return "info"
        return "ok" if self.ratio >= self.target else "MISSED"

    @property
    def target_text(self) -> str:
        return "-" if self.target is None else f"≥ {self.target:.2f}x"


def _environment() -> str:
    return f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}"


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- timing

Round = Callable[[], float]
"""One round of one side: does its own set-up and tear-down and returns the CPU seconds of its timed
region (see :func:`_timed`)."""


@contextlib.contextmanager
def _timed(elapsed: list[float]) -> Iterator[None]:
    """Time the body in CPU seconds with the garbage collector off; append the time to ``elapsed``."""
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        yield
        elapsed.append(time.process_time() - start)
    finally:
        gc.enable()


def interleave(plain: Round, ours: Round, repeats: int) -> tuple[list[float], list[float]]:
    """``repeats`` rounds of each side, alternating which goes first: ``(plain_s, ours_s)``."""
    plain_s: list[float] = []
    ours_s: list[float] = []
    for round_index in range(repeats):
        order = ((plain, plain_s), (ours, ours_s))
        for side, times in order if round_index % 2 == 0 else reversed(order):
            times.append(side())
    return plain_s, ours_s


# ----------------------------------------------------------------------------------------------- set-up


@dataclass(slots=True)
class _Stream:
    """The recorded stream: an IPC publication whose first term holds the messages, and its image."""

    transport: Transport
    publication: Publication
    image: Image
    total: int  # bytes of frames from position 0
    block_limit: int
    blocks: list[tuple[int, int]]  # (term offset, length) of each block block_poll hands out


def _prefill(settings: Settings, block_length: int) -> _Stream:
    from cluster.transport.driver import Transport

    transport = Transport()
    publication = transport.add_publication(
        f"aeron:ipc?term-length={settings.term_length}|init-term-id=0|term-id=0|term-offset=0", STREAM_ID
    )
    subscription = transport.add_subscription("aeron:ipc", STREAM_ID)
    transport.do_work()
    payload = bytearray(MESSAGE_LENGTH)
    for index in range(settings.messages):
        _MESSAGE_INDEX.pack_into(payload, 0, index)
        if publication.offer(payload) <= 0:
            raise RuntimeError(f"the IPC publication refused message {index} (its window is too small)")
    image = subscription.images[0]
    total = publication.position
    assert total == settings.messages * FRAME_LENGTH, total
    block_limit = min(block_length, settings.term_length)  # as the archive's recording session
    blocks: list[tuple[int, int]] = []

    def note(buffer: memoryview, offset: int, length: int, session_id: int, term_id: int) -> None:
        blocks.append((offset, length))

    while image.block_poll(note, block_limit) > 0:
        pass
    image.position = 0
    return _Stream(transport, publication, image, total, block_limit, blocks)


def _delete(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# ----------------------------------------------------------------------------------------------- record


class _Record:
    """The record rounds: the archive's recording session, the writer alone, and plain ``pwrite``."""

    def __init__(self, stream: _Stream, directory: str) -> None:
        from cluster.archive.segments import segment_file_name
        from cluster.storage import RealStorage

        self.stream = stream
        self.directory = directory
        self.storage = RealStorage(directory, create=True)
        self.segment_length = max(SEGMENT_LENGTH, stream.publication.term_length)
        self.segment_path = os.path.join(directory, segment_file_name(RECORDING_ID, 0))
        self.plain_path = os.path.join(directory, "plain-write.bin")
        term = stream.image.terms[0]
        self.term = term
        self.plain_blocks = [(term[offset : offset + length], offset) for offset, length in stream.blocks]
        self.checked = False

    def _writer(self) -> RecordingWriter:
        from cluster.archive.recording_writer import RecordingWriter
        from cluster.storage import SyncLevel

        _delete(self.segment_path)
        return RecordingWriter(
            self.storage,
            recording_id=RECORDING_ID,
            start_position=0,
            position=0,
            term_length=self.stream.publication.term_length,
            segment_length=self.segment_length,
            file_sync_level=SyncLevel.NONE,
        )

    def _check(self, writer: RecordingWriter) -> None:
        """Once: the segment file holds exactly the recorded frames."""
        if writer.position != self.stream.total:
            raise RuntimeError(f"recorded {writer.position} bytes, expected {self.stream.total}")
        if not self.checked:
            with open(self.segment_path, "rb") as file:
                written = file.read(self.stream.total)
            if written != self.term[: self.stream.total]:
                raise RuntimeError("the segment file does not hold the recorded frames")
            self.checked = True

    def session_round(self) -> float:
        from cluster.archive.recording_session import RecordingSession

        stream = self.stream
        writer = self._writer()
        counter = stream.transport.counters_manager.allocate(100, "bench recording position")
        session = RecordingSession(
            recording_id=RECORDING_ID,
            correlation_id=1,
            control_session=None,
            subscription_id=1,
            image=stream.image,
            writer=writer,
            position_counter=counter,
            auto_stop=False,
            block_length_limit=stream.block_limit,
        )
        stream.image.position = 0
        do_work = session.do_work
        elapsed: list[float] = []
        with _timed(elapsed):
            while do_work(0):
                pass
        if session.error is not None:
            raise session.error
        if counter.get() != stream.total:
            raise RuntimeError(f"the recording position counter is {counter.get()}, not {stream.total}")
        self._check(writer)
        session.close()
        _delete(self.segment_path)
        return elapsed[0]

    def writer_round(self) -> float:
        stream = self.stream
        writer = self._writer()
        on_block = writer.on_block
        term = self.term
        session_id = stream.image.session_id
        term_id = stream.publication.initial_term_id
        blocks = stream.blocks
        elapsed: list[float] = []
        with _timed(elapsed):
            for offset, length in blocks:
                on_block(term, offset, length, session_id, term_id)
        self._check(writer)
        writer.close()
        _delete(self.segment_path)
        return elapsed[0]

    def plain_round(self) -> float:
        fd = os.open(
            self.plain_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644
        )
        try:
            os.ftruncate(fd, self.segment_length)
            pwrite = os.pwrite
            blocks = self.plain_blocks
            elapsed: list[float] = []
            with _timed(elapsed):
                for block, offset in blocks:
                    done = pwrite(fd, block, offset)
                    while done < len(block):  # a careful engineer's loop; a regular file never needs it
                        done += pwrite(fd, block[done:], offset + done)
        finally:
            os.close(fd)
        _delete(self.plain_path)
        return elapsed[0]


# ----------------------------------------------------------------------------------------------- replay


class _Replay:
    """The replay rounds, over one recording of the stream: the archive's replay session, the reader
    alone, and plain ``preadv``."""

    def __init__(self, stream: _Stream, record: _Record, block_length: int) -> None:
        from cluster.archive.recording_writer import RecordingWriter
        from cluster.archive.segments import segment_file_name
        from cluster.storage import SyncLevel

        self.stream = stream
        self.record = record
        self.term_length = stream.publication.term_length
        self.io_length = max(block_length, stream.publication.mtu)  # as the archive's replay session
        self.initial_term_id = stream.publication.initial_term_id
        self.segment_path = os.path.join(record.directory, segment_file_name(REPLAY_RECORDING_ID, 0))
        with RecordingWriter(
            record.storage,
            recording_id=REPLAY_RECORDING_ID,
            start_position=0,
            position=0,
            term_length=self.term_length,
            segment_length=record.segment_length,
            file_sync_level=SyncLevel.NONE,
        ) as writer:
            for offset, length in stream.blocks:
                writer.on_block(record.term, offset, length, stream.image.session_id, self.initial_term_id)
        self.subscription = stream.transport.add_subscription("aeron:ipc", REPLAY_STREAM_ID)
        self.reads = self._reader_blocks()
        self.buffer = bytearray(max(length for _, length in self.reads))
        self.log = bytearray(self.term_length)  # the floor's stand-in for a replay publication's term
        self.checked = False
        self.floor_checked = False

    def _reader(self) -> RecordingReader:
        from cluster.archive.recording_reader import RecordingReader

        # as the archive's replay: no stop position, the session bounds every read by its limit
        return RecordingReader(
            self.record.storage,
            recording_id=REPLAY_RECORDING_ID,
            start_position=0,
            stop_position=None,
            term_length=self.term_length,
            segment_length=self.record.segment_length,
            initial_term_id=self.initial_term_id,
        )

    def _reader_blocks(self) -> list[tuple[int, int]]:
        """``(file offset, length)`` of every block the replay reads, for the plain side; the bytes are
        checked against the term on the way."""
        total = self.stream.total
        reads: list[tuple[int, int]] = []
        with self._reader() as reader:
            while (position := reader.position) < total:
                block = reader.read_block(min(self.io_length, total - position))
                if block is None:
                    break
                if block != self.record.term[position : position + len(block)]:
                    raise RuntimeError(f"the recording read back differs at position {position}")
                reads.append((position, len(block)))
        if sum(length for _, length in reads) != total:
            raise RuntimeError("the recording read back is short")
        return reads

    def reader_round(self) -> float:
        total = self.stream.total
        io_length = self.io_length
        reader = self._reader()
        read_block = reader.read_block
        count = 0
        elapsed: list[float] = []
        with _timed(elapsed):
            position = 0
            while position < total:
                block = read_block(min(io_length, total - position))
                if block is None:
                    break
                position += len(block)
                count += 1
        reader.close()
        if position != total or count != len(self.reads):
            raise RuntimeError(f"the reader read {position} bytes in {count} blocks")
        return elapsed[0]

    def floor_round(self) -> float:
        """The least any replay in Python does, as a yardstick for the replay's ratio: each block read
        straight into a log-sized buffer at its place in the term (where a publication's log would hold
        it) and both ids written into every frame header with one strided assignment -- the rewrite
        Aeron's protocol asks of a replay. No frame is checked and nothing is published: the frames are
        known to be the stream's 64-byte ones."""
        from array import array

        fd = os.open(self.segment_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            log = memoryview(self.log)
            ids = (REPLAY_STREAM_ID << 32) | 0x1234_5678  # stream id @16, a session id @12
            steps = []
            for offset, length in self.reads:
                frames = length // FRAME_LENGTH
                if frames * FRAME_LENGTH != length:
                    raise RuntimeError(f"a replay block of {length} bytes is not whole 64-byte frames")
                steps.append((log[offset : offset + length], offset, array("q", (ids,)) * frames))
            preadv = os.preadv
            elapsed: list[float] = []
            with _timed(elapsed):
                for block, offset, fill in steps:
                    done = preadv(fd, [block], offset)
                    if done != len(block):
                        raise RuntimeError(f"short read at {offset}: {done} of {len(block)} bytes")
                    # long 1 of a view from byte 4 is the 8 bytes at 12: session id, stream id
                    with block[4 : len(block) - 4].cast("q") as longs:
                        longs[1 :: FRAME_LENGTH >> 3] = fill
        finally:
            os.close(fd)
        if not self.floor_checked:
            expected = bytearray(self.record.term[: self.stream.total])
            for offset in range(0, self.stream.total, FRAME_LENGTH):
                _SESSION_AND_STREAM.pack_into(expected, offset + 12, 0x1234_5678, REPLAY_STREAM_ID)
            if self.log[: self.stream.total] != expected:
                raise RuntimeError("the floor's log does not hold the recording with the replay's ids")
            self.floor_checked = True
        return elapsed[0]

    def session_round(self) -> float:
        from cluster.archive.channels import replay_channel
        from cluster.archive.replay_session import ReplaySession, ReplaySessionState
        from cluster.transport.uri import ChannelUri

        stream = self.stream
        total = stream.total
        transport = stream.transport
        publication = transport.add_exclusive_publication(
            replay_channel(
                ChannelUri.parse("aeron:ipc"),
                replay_position=0,
                initial_term_id=self.initial_term_id,
                term_length=self.term_length,
                mtu=stream.publication.mtu,
                linger_ns=0,
            ),
            REPLAY_STREAM_ID,
        )
        image = self.subscription.image_by_session_id(publication.session_id)
        assert image is not None
        session = ReplaySession(
            replay_session_id=publication.session_id & 0xFFFF_FFFF,
            recording_id=REPLAY_RECORDING_ID,
            correlation_id=1,
            control_session=None,
            publication=publication,
            reader=self._reader(),
            replay_position=0,
            replay_length=total,
            limit_position=lambda: (total, False),
            file_io_max_length=self.io_length,
            connect_timeout_ns=1 << 62,
            now_ns=0,
        )
        do_work = session.do_work
        update_limit = publication.update_limit
        replaying = ReplaySessionState.REPLAY  # CONNECTING and REPLAY come before it
        cycles = 0
        elapsed: list[float] = []
        with _timed(elapsed):
            while session.state <= replaying and cycles < MAX_ROUND_TRIPS:
                if not do_work(0):
                    # back-pressured: the subscriber (not the archive) consumes all, reading nothing
                    image.position = publication.position
                    update_limit()
                cycles += 1
        if session.reason != "replay complete" or session.position != total:
            raise RuntimeError(f"the replay ended at {session.position} of {total}: {session.reason!r}")
        self._check(publication, total)
        session.do_work(0)  # INACTIVE -> DONE: closes the publication and the reader
        image.position = publication.position
        transport.do_work()  # the closed publication goes, and its image with it
        return elapsed[0]

    def _check(self, publication: Publication, total: int) -> None:
        """Once: the replay publication's term holds the recording with the replay's ids."""
        if self.checked:
            return
        expected = bytearray(self.record.term[:total])
        for offset in range(0, total, FRAME_LENGTH):
            _SESSION_AND_STREAM.pack_into(expected, offset + 12, publication.session_id, REPLAY_STREAM_ID)
        if publication.log.terms[0][:total] != expected:
            raise RuntimeError("the replay publication does not hold the recording with the replay's ids")
        self.checked = True

    def plain_round(self) -> float:
        fd = os.open(self.segment_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            view = memoryview(self.buffer)
            reads = [(view[:length], offset) for offset, length in self.reads]
            preadv = os.preadv
            elapsed: list[float] = []
            with _timed(elapsed):
                for buffer, offset in reads:
                    done = preadv(fd, [buffer], offset)
                    while done < len(buffer):  # a careful engineer's loop; a regular file never needs it
                        count = preadv(fd, [buffer[done:]], offset + done)
                        if count == 0:
                            raise RuntimeError(f"the file ends at {offset + done}")
                        done += count
        finally:
            os.close(fd)
        return elapsed[0]


# ----------------------------------------------------------------------------------------------- report


def measure(
    settings: Settings, block_length: int, directory: str | None, verbose: bool
) -> tuple[list[BenchCase], dict[str, str]]:
    """Every case, and what each side of them did (for the report)."""
    with tempfile.TemporaryDirectory(prefix="bench-archive-", dir=directory) as tmp:
        stream = _prefill(settings, block_length)
        try:
            record = _Record(stream, tmp)
            replay = _Replay(stream, record, block_length)
            rounds: list[tuple[str, str, Round, Round, float | None]] = [
                (
                    "record",
                    "record: block_poll + RecordingWriter",
                    record.plain_round,
                    record.session_round,
                    RECORD_TARGET,
                ),
                (
                    "record.writer_only",
                    "record: RecordingWriter.on_block alone",
                    record.plain_round,
                    record.writer_round,
                    None,
                ),
                (
                    "replay",
                    "replay: ReplaySession to IPC",
                    replay.plain_round,
                    replay.session_round,
                    REPLAY_TARGET,
                ),
                (
                    "replay.floor",
                    "replay: floor, read into a log + id rewrite",
                    replay.plain_round,
                    replay.floor_round,
                    None,
                ),
                (
                    "replay.reader_only",
                    "replay: RecordingReader.read_block alone",
                    replay.plain_round,
                    replay.reader_round,
                    None,
                ),
            ]
            cases = []
            for case_id, title, plain, ours, target in rounds:
                plain_s, ours_s = interleave(plain, ours, settings.repeats)
                case = BenchCase(case_id, title, stream.total, settings.messages, ours_s, plain_s, target)
                if verbose:
                    _progress(
                        f"{case_id}: ours {case.ours_bytes_per_s / 1e6:,.1f} MB/s, plain "
                        f"{case.plain_bytes_per_s / 1e6:,.1f} MB/s, {case.ratio:.3f}x"
                    )
                cases.append(case)
            configs = _configs(len(stream.blocks), len(replay.reads))
        finally:
            stream.transport.close()
    return cases, configs


def _configs(stream_blocks: int, replay_blocks: int) -> dict[str, str]:
    return {
        "record_ours": (
            f"RecordingSession.do_work: IPC Image.block_poll -> RecordingWriter.on_block -> segment file, "
            f"{stream_blocks} blocks; messages offered before the timed region"
        ),
        "record_plain": f"os.pwrite of the same {stream_blocks} blocks to a file of the segment's size",
        "replay_ours": (
            f"ReplaySession.do_work: RecordingReader.read_block -> frame rewrite -> offer_block to an IPC "
            f"publication, {replay_blocks} blocks"
        ),
        "replay_plain": f"os.preadv of the same {replay_blocks} blocks of the segment file into one buffer",
        "replay_floor": (
            f"os.preadv of the same {replay_blocks} blocks into a log-sized buffer at their term offsets, "
            "then one strided assignment per block writing the session and stream ids of every frame"
        ),
    }


def format_table(
    cases: Sequence[BenchCase], settings: Settings, block_length: int, configs: dict[str, str]
) -> str:
    total = settings.messages * FRAME_LENGTH
    width = max(len("case"), *(len(c.title) for c in cases))
    lines = [
        f"archive benchmark: {_environment()}; {settings.messages:,} messages of {MESSAGE_LENGTH} bytes "
        f"({FRAME_LENGTH}-byte frames, {_size_text(total)}), term {_size_text(settings.term_length)}, "
        f"blocks <= {_size_text(min(block_length, settings.term_length))}, file-sync level 0, real files; "
        f"best of {settings.repeats} interleaved rounds, CPU time",
        "",
        f"{'case':<{width}}  {'ours MB/s':>10}  {'plain MB/s':>10}  {'ours msgs/s':>12}  "
        f"{'plain msgs/s':>13}  {'ratio':>7}  {'target':>8}  status",
        f"{'-' * width}  {'-' * 10}  {'-' * 10}  {'-' * 12}  {'-' * 13}  {'-' * 7}  {'-' * 8}  ------",
    ]
    for c in cases:
        lines.append(
            f"{c.title:<{width}}  {c.ours_bytes_per_s / 1e6:>10,.1f}  {c.plain_bytes_per_s / 1e6:>10,.1f}  "
            f"{c.ours_messages_per_s:>12,.0f}  {c.plain_messages_per_s:>13,.0f}  {c.ratio:>6.3f}x  "
            f"{c.target_text:>8}  {c.status}"
        )
    lines.extend(verdict_lines(cases, configs, digits=3))
    return "\n".join(lines)


def to_json(
    cases: Sequence[BenchCase], settings: Settings, block_length: int, quick: bool, configs: dict[str, str]
) -> str:
    report = {
        "benchmark": "archive",
        "python": _environment(),
        "quick": quick,
        "repeats": settings.repeats,
        "messages": settings.messages,
        "message_length": MESSAGE_LENGTH,
        "frame_length": FRAME_LENGTH,
        "bytes": settings.messages * FRAME_LENGTH,
        "term_length": settings.term_length,
        "block_length": min(block_length, settings.term_length),
        "file_sync_level": 0,
        "unit": "bytes/s",
        "configs": configs,
        "cases": [
            {
                "id": c.id,
                "title": c.title,
                "ours_bytes_per_s": c.ours_bytes_per_s,
                "plain_bytes_per_s": c.plain_bytes_per_s,
                "ours_messages_per_s": c.ours_messages_per_s,
                "plain_messages_per_s": c.plain_messages_per_s,
                "ours_best_s": min(c.ours_s),
                "plain_best_s": min(c.plain_s),
                "ours_median_s": statistics.median(c.ours_s),
                "plain_median_s": statistics.median(c.plain_s),
                "ratio": c.ratio,
                "median_ratio": c.median_ratio,
                "target": c.target,
                "higher_is_better": True,
                "status": c.status,
            }
            for c in cases
        ],
        "missed": [c.id for c in cases if c.status == "MISSED"],
    }
    return json.dumps(report, indent=2)


# ---------------------------------------------------------------------------------------------- command


def _size_text(length: int) -> str:
    """``16 MiB``, ``64 KiB``, ``1.5 MiB``, ``100 B``."""
    for unit, name in ((MIB, "MiB"), (1024, "KiB")):
        if length >= unit:
            return f"{length / unit:g} {name}"
    return f"{length} B"


def _size(text: str) -> int:
    """``65536``, ``64k``, ``16m``, ``1g``."""
    units = {"k": 1024, "m": MIB, "g": 1024 * MIB}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            return int(text[:-1]) * units[text[-1]]
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 65536, 64k, 16m)") from None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object with every result")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (a second or two)")
    parser.add_argument(
        "--messages",
        type=int,
        default=None,
        metavar="N",
        help=f"32-byte messages per round (default {FULL.messages:,}; {QUICK.messages:,} with --quick)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        metavar="N",
        help=f"interleaved rounds per case (default {FULL.repeats}; {QUICK.repeats} with --quick)",
    )
    parser.add_argument(
        "--term-length",
        type=_size,
        default=None,
        metavar="BYTES",
        help="term length of the recorded stream (default 16m; 1m with --quick); the messages must fit "
        "in half a term",
    )
    parser.add_argument(
        "--block-length",
        type=_size,
        default=DEFAULT_BLOCK_LENGTH,
        metavar="BYTES",
        help="the archive's file_io_max_length: the largest block recorded or replayed (default 1m)",
    )
    parser.add_argument(
        "--dir",
        default=None,
        metavar="PATH",
        help="where to make the temporary directory (default: the system's temporary directory)",
    )


def run(args: argparse.Namespace) -> int:
    base = QUICK if args.quick else FULL
    settings = Settings(
        base.repeats if args.repeats is None else args.repeats,
        base.messages if args.messages is None else args.messages,
        base.term_length if args.term_length is None else args.term_length,
    )
    if args.block_length < FRAME_LENGTH:
        raise _UsageError(f"--block-length must be at least {FRAME_LENGTH}, not {args.block_length}")
    verbose = not (args.json or args.quick)
    cases, configs = measure(settings, args.block_length, args.dir, verbose)
    if args.json:
        print(to_json(cases, settings, args.block_length, args.quick, configs))
    else:
        print(format_table(cases, settings, args.block_length, configs))
    return 0
