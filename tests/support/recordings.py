"""Recordings for the archive tests: synthetic streams built frame by frame with the generated codecs,
and the Java archive directories named in ``support.paths.JAVA_ARCHIVES`` unpacked with GNU tar (which
keeps the 128 MiB segment files sparse; Python's ``tarfile`` would write them out in full).

``SyntheticStream`` is a publication's log as the recording writer sees it: messages are fragmented at
the MTU into DATA frames (BEGIN/END flags, 32-byte aligned), a PAD frame fills the end of a term when
the next frame does not fit, and ``blocks`` hands the frames out as ``Image.block_poll`` would -- runs
of whole frames of one term, a PAD always last in its block. (The shared, read-only Java directories and
ArchiveTool's output are the ``java_archive`` and ``archivetool_describe`` fixtures of
``tests/archive/conftest.py``.)
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from generated.aeron_transport_frames import DataFlags, DataHeaderEncoder, FrameType
from support.needs import need_program, need_reference
from support.paths import JAVA, JAVA_ARCHIVES

__all__ = [
    "DESCRIPTOR_FIELDS",
    "JAVA_BY_NAME",
    "NODE0_DESCRIBE_AFTER_VERIFY",
    "Block",
    "SyntheticStream",
    "extract_java",
]

JAVA_BY_NAME = {case.name: case for case in JAVA_ARCHIVES}
NODE0_DESCRIBE_AFTER_VERIFY = JAVA / "cluster" / "archivetool" / "node0.describe-after-verify.txt"

# A RecordingDescriptor's fields: our name -> Aeron's (ArchiveTool's output, the JSON of archive list).
DESCRIPTOR_FIELDS = {
    "control_session_id": "controlSessionId",
    "correlation_id": "correlationId",
    "recording_id": "recordingId",
    "start_timestamp": "startTimestamp",
    "stop_timestamp": "stopTimestamp",
    "start_position": "startPosition",
    "stop_position": "stopPosition",
    "initial_term_id": "initialTermId",
    "segment_file_length": "segmentFileLength",
    "term_buffer_length": "termBufferLength",
    "mtu_length": "mtuLength",
    "session_id": "sessionId",
    "stream_id": "streamId",
    "stripped_channel": "strippedChannel",
    "original_channel": "originalChannel",
    "source_identity": "sourceIdentity",
}

HEADER = 32
_BEGIN = int(DataFlags.BEGIN)
_END = int(DataFlags.END)


def extract_java(name: str, dest: Path) -> Path:
    """A fresh, writable copy of the Java archive directory ``name`` (``archiveA``, ``node0``, ...),
    unpacked into ``dest`` with GNU tar; returns the archive directory. (The ``java_archive`` fixture's
    directories are shared and must not be changed.)"""
    case = JAVA_BY_NAME[name]
    tarball = need_reference(case.tarball)
    need_program("tar")
    need_program("xz")
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xJf", str(tarball), "-C", str(dest)], check=True, timeout=120)
    return dest / case.directory


@dataclass(frozen=True)
class Block:
    """One block as ``Image.block_poll`` hands it to its handler."""

    buffer: memoryview
    offset: int
    length: int
    session_id: int
    term_id: int
    position: int  # the stream position of the block's first byte


@dataclass
class SyntheticStream:
    """A publication's log, built frame by frame (see the module docstring)."""

    term_length: int
    initial_term_id: int
    start_position: int = 0
    session_id: int = 7
    stream_id: int = 1001
    mtu: int = 1408
    terms: dict[int, bytearray] = field(default_factory=dict)
    position: int = -1
    frames: list[tuple[int, int]] = field(default_factory=list)  # (position, aligned length) of each frame

    def __post_init__(self) -> None:
        if self.position < 0:
            self.position = self.start_position

    @property
    def shift(self) -> int:
        return self.term_length.bit_length() - 1

    def term_id_at(self, position: int) -> int:
        value = self.initial_term_id + (position >> self.shift)
        return ((value + 2**31) % 2**32) - 2**31

    def term(self, term_id: int) -> bytearray:
        if term_id not in self.terms:
            self.terms[term_id] = bytearray(self.term_length)
        return self.terms[term_id]

    def _frame(self, frame_type: int, flags: int, length: int, payload: bytes) -> None:
        position = self.position
        term_offset = position & (self.term_length - 1)
        term_id = self.term_id_at(position)
        term = self.term(term_id)
        DataHeaderEncoder.pack_into(
            term, term_offset, length, 0, flags, frame_type, term_offset, self.session_id, self.stream_id,
            term_id, 0,
        )  # fmt: skip
        term[term_offset + HEADER : term_offset + HEADER + len(payload)] = payload
        aligned = (length + 31) & -32
        self.frames.append((position, aligned))
        self.position += aligned

    def pad_to_term_end(self) -> None:
        remaining = self.term_length - (self.position & (self.term_length - 1))
        self._frame(int(FrameType.PAD), 0, remaining, b"")

    def append(self, message: bytes) -> None:
        """Append one message, fragmented at the MTU; a PAD fills the term first if a fragment does not
        fit in what is left of it."""
        max_payload = self.mtu - HEADER
        chunks = [message[i : i + max_payload] for i in range(0, len(message), max_payload)] or [b""]
        for index, chunk in enumerate(chunks):
            flags = (_BEGIN if index == 0 else 0) | (_END if index == len(chunks) - 1 else 0)
            length = HEADER + len(chunk)
            aligned = (length + 31) & -32
            if (self.position & (self.term_length - 1)) + aligned > self.term_length:
                self.pad_to_term_end()
            self._frame(int(FrameType.DATA), flags, length, chunk)

    def blocks(self, start: int, end: int, max_length: int) -> Iterator[Block]:
        """Blocks of whole frames from ``start`` to ``end`` (frame positions), at most ``max_length`` bytes
        each unless one frame is longer, never crossing a term end, a PAD always last in its block."""
        frames = [(p, a) for p, a in self.frames if start <= p < end]
        index = 0
        while index < len(frames):
            first, _ = frames[index]
            term_id = self.term_id_at(first)
            term_offset = first & (self.term_length - 1)
            length = 0
            while index < len(frames):
                position, aligned = frames[index]
                if self.term_id_at(position) != term_id or (length and length + aligned > max_length):
                    break
                length += aligned
                index += 1
                term = self.terms[term_id]
                if term[(position & (self.term_length - 1)) + 6] == int(FrameType.PAD):
                    break
            yield Block(memoryview(self.terms[term_id]), term_offset, length, self.session_id, term_id, first)

    def frame_bytes(self, position: int) -> bytes:
        """The bytes the file holds for the frame at ``position``: a DATA frame whole, a PAD its header."""
        term = self.terms[self.term_id_at(position)]
        offset = position & (self.term_length - 1)
        length = int.from_bytes(term[offset : offset + 4], "little")
        if term[offset + 6] == int(FrameType.PAD):
            return bytes(term[offset : offset + HEADER])
        return bytes(term[offset : offset + length])
