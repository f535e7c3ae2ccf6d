"""``node-state.dat``: the node's durable candidate term, in Aeron's format (schema 112).

Theory of operation
-------------------
A node must never vote twice in one term, so the highest candidate term it has seen is made durable
before any vote or candidacy that depends on it (docs/consensus.md; ``PersistCandidateTerm``). Aeron
keeps it in ``node-state.dat``, a 1 MiB file laid out as (little-endian; confirmed on Java's files)::

    0    nodeStateHeader block, no message header: version i32 (0.3.0 = 768), padding i32
    8    records, each a 16-byte header -- blockLength u16, templateId u16, schemaId u16 (112),
         version u16, frameLength i32 (header + block), padding i32 -- then its block; the next record
         starts at the frame length rounded up to 8
         301 candidateTerm: candidateTermId i64 @0, timestamp i64 @8, logPosition i64 @16
         303 ClusterMembers: leadershipTermId i64, memberId i32, highMemberId i32, clusterMembers string
         304 nodeStateFooter: no block; ends the records
    ...  zeros to 1 MiB

The files Java wrote hold the header, one candidateTerm record at 8 and the footer at 48. Every record
is read and written through the generated ``generated.aeron_cluster_node_state_codecs`` codecs.

**Creating** follows the mark files' order: the file is cut to nothing and grown to 1 MiB, the records
are written (candidate term ``-1``, timestamp ``-1``, log position ``-1``: no term seen yet), synced with
the directory, and only then is the header's version written and synced. A file whose version is 0 is
not initialised -- a creation a crash interrupted -- and ``open`` makes it anew (reported in ``repairs``).

**Updating the candidate term** writes in place, then syncs at the level asked, and returns only then:
a returned update is durable. The candidate term id never goes down (``update_candidate_term`` refuses
it). The order of the writes makes a crash in the middle safe for the one field a vote depends on, even
on a disk that tears a write at any byte (``SimDisk`` does):

1. the timestamp and log position (the bytes that changed, one write);
2. the candidate term id: over ``-1`` (no term yet) in one 8-byte write, low byte first -- a tear leaves
   high bytes ``0xff``, so it reads below ``-1``, which ``open`` sets back to ``-1`` and reports;
   over a term id ``>= 0`` byte by byte, the most significant changed byte first -- whatever prefix of
   those writes survives reads at least the old id (and at most the new one with the old low bytes,
   possibly above it: a candidate term higher than any asked is safe, a lower one is not);
3. the sync.

The timestamp and log position describe when and where the candidate term was proposed; Aeron does not
use them to decide anything. After a crash during an update they may hold a mix of the old and the new
values.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Any

from cluster.consensus.files.errors import NodeStateError
from cluster.storage import Storage, StorageFile, SyncLevel
from cluster.storage.markfile import compose_version, version_text
from codegen.runtime import CodecError
from generated import aeron_cluster_node_state_codecs as codecs

__all__ = [
    "NODE_STATE_FILE_LENGTH",
    "NODE_STATE_FILE_NAME",
    "NODE_STATE_VERSION",
    "CandidateTerm",
    "ClusterMembersState",
    "NodeState",
    "NodeStateFile",
]

NODE_STATE_FILE_NAME = "node-state.dat"
NODE_STATE_FILE_LENGTH = 1024 * 1024
NODE_STATE_MAJOR_VERSION = 0
NODE_STATE_VERSION = compose_version(NODE_STATE_MAJOR_VERSION, 3, 0)
"""The version in the header: 0.3.0, i.e. 768 (what Java 1.47 writes)."""

_HEADER_BLOCK = codecs.NodeStateHeaderDecoder.BLOCK_LENGTH  # 8: the records start here
_FRAME_HEADER = codecs.HEADER_SIZE  # 16
_RECORD_ALIGNMENT = 8
_CANDIDATE_TERM_ID = _HEADER_BLOCK + _FRAME_HEADER  # where the candidate term's block starts: 24
_FOOTER_TEMPLATE = codecs.NodeStateFooterDecoder.TEMPLATE_ID
_INT32 = struct.Struct("<i")
_INT64 = struct.Struct("<q")
_NULL_VALUE = -1


def _align(value: int) -> int:
    return (value + _RECORD_ALIGNMENT - 1) & ~(_RECORD_ALIGNMENT - 1)


@dataclass(frozen=True, slots=True)
class CandidateTerm:
    """The candidateTerm record: the highest candidate term id seen, and when and where it was proposed."""

    candidate_term_id: int
    timestamp: int
    log_position: int

    def to_json(self) -> dict[str, Any]:
        return {
            "candidateTermId": self.candidate_term_id,
            "timestamp": self.timestamp,
            "logPosition": self.log_position,
        }


@dataclass(frozen=True, slots=True)
class ClusterMembersState:
    """The ClusterMembers record (for dynamic membership; the Java 1.47 files we have hold none)."""

    leadership_term_id: int
    member_id: int
    high_member_id: int
    cluster_members: str

    def to_json(self) -> dict[str, Any]:
        return {
            "leadershipTermId": self.leadership_term_id,
            "memberId": self.member_id,
            "highMemberId": self.high_member_id,
            "clusterMembers": self.cluster_members,
        }


@dataclass(frozen=True, slots=True)
class NodeState:
    """What ``node-state.dat`` holds. ``candidate_term_offset`` is where the candidateTerm record's block
    starts (24 in every file written so far)."""

    version: int
    candidate_term: CandidateTerm
    cluster_members: ClusterMembersState | None
    candidate_term_offset: int

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "candidateTerm": self.candidate_term.to_json(),
            "clusterMembers": None if self.cluster_members is None else self.cluster_members.to_json(),
        }


def _location(storage: Storage) -> str:
    return f"{storage.location}/{NODE_STATE_FILE_NAME}"


def _codec_error(exc: CodecError, file: str, base: int) -> NodeStateError:
    field = exc.message_name if exc.field is None else f"{exc.message_name}.{exc.field}"
    offset = base if exc.offset is None else base + exc.offset
    return NodeStateError(exc.reason, file=file, offset=offset, field=field)


def decode_node_state(data: bytes | bytearray, file: str) -> NodeState:
    """The node state in ``data`` (the whole file); ``NodeStateError`` naming the offset when it is not
    Aeron's format. A candidate term id below ``-1`` (a torn first write, see the module docstring) is
    read as it is; ``NodeStateFile.open`` repairs it."""
    if len(data) < _HEADER_BLOCK:
        raise NodeStateError(f"the file is {len(data)} bytes, shorter than its header", file=file, offset=0)
    version = codecs.NodeStateHeaderDecoder().wrap(data, 0, _HEADER_BLOCK, codecs.SCHEMA_VERSION).version
    if version == 0:
        raise NodeStateError("the file is not initialised (version 0)", file=file, offset=0, field="version")
    if version >> 16 & 0xFF != NODE_STATE_MAJOR_VERSION:
        raise NodeStateError(
            f"major version {version >> 16 & 0xFF} ({version_text(version)}) is not "
            f"{NODE_STATE_MAJOR_VERSION} ({version_text(NODE_STATE_VERSION)})",
            file=file,
            offset=0,
            field="version",
        )
    candidate: CandidateTerm | None = None
    candidate_offset = -1
    members: ClusterMembersState | None = None
    offset = _HEADER_BLOCK
    while True:
        if offset + _FRAME_HEADER > len(data):
            raise NodeStateError("the records end without a footer", file=file, offset=offset)
        block_length, template_id, schema_id, _, frame_length, _ = codecs.MessageHeaderDecoder.unpack(
            data, offset
        )
        if schema_id != codecs.SCHEMA_ID:
            raise NodeStateError(
                f"record of schema {schema_id}, not {codecs.SCHEMA_ID}",
                file=file,
                offset=offset,
                field="schemaId",
            )
        if template_id == _FOOTER_TEMPLATE:
            break
        if not _FRAME_HEADER + block_length <= frame_length <= len(data) - offset:
            raise NodeStateError(
                f"frame length {frame_length} is outside "
                f"{_FRAME_HEADER + block_length}..{len(data) - offset}",
                file=file,
                offset=offset + 8,
                field="frameLength",
            )
        record = bytes(data[offset : offset + frame_length])
        try:
            if template_id == codecs.CandidateTermDecoder.TEMPLATE_ID:
                decoder = codecs.CandidateTermDecoder().wrap_header(record, 0)
                candidate = CandidateTerm(decoder.candidate_term_id, decoder.timestamp, decoder.log_position)
                candidate_offset = offset + _FRAME_HEADER
            elif template_id == codecs.ClusterMembersDecoder.TEMPLATE_ID:
                members_decoder = codecs.ClusterMembersDecoder().wrap_header(record, 0)
                members = ClusterMembersState(
                    members_decoder.leadership_term_id,
                    members_decoder.member_id,
                    members_decoder.high_member_id,
                    members_decoder.cluster_members_str(),
                )
            # Any other template is a record of a newer version: skipped by its frame length.
        except CodecError as exc:
            raise _codec_error(exc, file, offset) from None
        offset += _align(frame_length)
    if candidate is None:
        raise NodeStateError("there is no candidateTerm record", file=file, offset=_HEADER_BLOCK)
    return NodeState(version, candidate, members, candidate_offset)


def encode_records(candidate_term: CandidateTerm) -> bytes:
    """The records Aeron writes after the header: the candidate term, then the footer."""
    buffer = bytearray(_FRAME_HEADER + codecs.CandidateTermEncoder.BLOCK_LENGTH + _FRAME_HEADER)
    encoder = codecs.CandidateTermEncoder().wrap_and_apply_header(buffer, 0)
    encoder.candidate_term_id = candidate_term.candidate_term_id
    encoder.timestamp = candidate_term.timestamp
    encoder.log_position = candidate_term.log_position
    footer = _FRAME_HEADER + codecs.CandidateTermEncoder.BLOCK_LENGTH
    codecs.MessageHeaderEncoder.pack_into(
        buffer,
        0,
        encoder.BLOCK_LENGTH,
        encoder.TEMPLATE_ID,
        codecs.SCHEMA_ID,
        codecs.SCHEMA_VERSION,
        footer,
        0,
    )
    codecs.MessageHeaderEncoder.pack_into(
        buffer, footer, 0, _FOOTER_TEMPLATE, codecs.SCHEMA_ID, codecs.SCHEMA_VERSION, _FRAME_HEADER, 0
    )
    return bytes(buffer)


def encode_header(version: int) -> bytes:
    """The header block at offset 0 (Aeron writes it without a message header)."""
    buffer = bytearray(_HEADER_BLOCK)
    encoder = codecs.NodeStateHeaderEncoder().wrap(buffer, 0)
    encoder.version = version
    encoder.padding = 0
    return bytes(buffer)


class NodeStateFile:
    """``node-state.dat`` of a cluster directory, open for updates (see the module docstring)."""

    FILE_NAME = NODE_STATE_FILE_NAME

    def __init__(
        self,
        storage: Storage,
        file: StorageFile,
        state: NodeState,
        sync_level: SyncLevel,
        repairs: tuple[str, ...],
    ) -> None:
        """Use ``NodeStateFile.open``."""
        self._storage = storage
        self._file: StorageFile | None = file
        self._state = state
        self._sync_level = sync_level
        self._repairs = repairs
        self._failed = False

    @classmethod
    def open(cls, storage: Storage, *, sync_level: SyncLevel = SyncLevel.DATA) -> NodeStateFile:
        """Open ``node-state.dat`` in ``storage``, creating it when it is not there or was never initialised
        (a creation a crash interrupted), and repairing a torn first candidate term (both reported in
        ``repairs``). ``NodeStateError`` when the file is damaged otherwise."""
        location = _location(storage)
        repairs: list[str] = []
        if storage.exists(NODE_STATE_FILE_NAME):
            with storage.open(NODE_STATE_FILE_NAME) as probe:
                head = probe.read(0, _HEADER_BLOCK)
            if len(head) < _HEADER_BLOCK or _INT32.unpack_from(head, 0)[0] == 0:
                repairs.append("the file was never initialised (a creation a crash interrupted): made anew")
                cls._create(storage, sync_level)
        else:
            cls._create(storage, sync_level)
        file = storage.open(NODE_STATE_FILE_NAME)
        try:
            state = decode_node_state(file.read(0, file.size()), location)
            torn = state.candidate_term.candidate_term_id
            if torn < _NULL_VALUE:
                repairs.append(f"a torn first candidate term id {torn}: set back to -1")
                file.write(state.candidate_term_offset, _INT64.pack(_NULL_VALUE))
                file.sync(sync_level)
                state = replace(
                    state, candidate_term=replace(state.candidate_term, candidate_term_id=_NULL_VALUE)
                )
        except BaseException:
            file.close()
            raise
        return cls(storage, file, state, sync_level, tuple(repairs))

    @staticmethod
    def _create(storage: Storage, sync_level: SyncLevel) -> None:
        records = encode_records(CandidateTerm(_NULL_VALUE, _NULL_VALUE, _NULL_VALUE))
        with storage.open(NODE_STATE_FILE_NAME, create=True) as file:
            file.truncate(0)
            file.truncate(NODE_STATE_FILE_LENGTH)
            file.write(_HEADER_BLOCK, records)
            file.sync(sync_level)
            if sync_level != SyncLevel.NONE:
                storage.sync_directory()
            file.write(0, encode_header(NODE_STATE_VERSION))
            file.sync(sync_level)

    @staticmethod
    def read(storage: Storage) -> NodeState:
        """The node state in ``storage``, without changing the file; ``NodeStateError`` if it is missing,
        not initialised or damaged."""
        location = _location(storage)
        if not storage.exists(NODE_STATE_FILE_NAME):
            raise NodeStateError("there is no node state file", file=location)
        return decode_node_state(storage.read_file(NODE_STATE_FILE_NAME), location)

    @property
    def state(self) -> NodeState:
        return self._state

    @property
    def candidate_term(self) -> CandidateTerm:
        return self._state.candidate_term

    @property
    def repairs(self) -> tuple[str, ...]:
        """What ``open`` made anew or repaired (empty for a file a crash did not touch)."""
        return self._repairs

    def update_candidate_term(
        self, candidate_term_id: int, log_position: int, timestamp: int
    ) -> CandidateTerm:
        """Make ``(candidate_term_id, timestamp, log_position)`` the durable candidate term (the write order
        is in the module docstring). ``NodeStateError`` if ``candidate_term_id`` is below the current one."""
        file = self._use()
        old = self._state.candidate_term
        location = _location(self._storage)
        if candidate_term_id < old.candidate_term_id:
            raise NodeStateError(
                f"candidate term id {candidate_term_id} is below the durable {old.candidate_term_id}",
                file=location,
                field="candidateTerm.candidateTermId",
            )
        new = CandidateTerm(candidate_term_id, timestamp, log_position)
        base = self._state.candidate_term_offset
        old_rest = _INT64.pack(old.timestamp) + _INT64.pack(old.log_position)
        new_rest = _INT64.pack(timestamp) + _INT64.pack(log_position)
        old_id, new_id = _INT64.pack(old.candidate_term_id), _INT64.pack(candidate_term_id)
        try:
            changed = [i for i in range(16) if old_rest[i] != new_rest[i]]
            if changed:
                file.write(base + 8 + changed[0], new_rest[changed[0] : changed[-1] + 1])
            if old.candidate_term_id < 0:
                if old_id != new_id:
                    file.write(base, new_id)
            else:
                for i in range(7, -1, -1):
                    if old_id[i] != new_id[i]:
                        file.write(base + i, new_id[i : i + 1])
            file.sync(self._sync_level)
        except BaseException:
            self._failed = True
            raise
        self._state = replace(self._state, candidate_term=new)
        return new

    def propose_max_candidate_term_id(self, candidate_term_id: int, log_position: int, timestamp: int) -> int:
        """Aeron's ``proposeMaxCandidateTermId``: update the candidate term if ``candidate_term_id`` is above
        the durable one; return the durable candidate term id either way."""
        if candidate_term_id > self._state.candidate_term.candidate_term_id:
            self.update_candidate_term(candidate_term_id, log_position, timestamp)
        return self._state.candidate_term.candidate_term_id

    def _use(self) -> StorageFile:
        location = _location(self._storage)
        if self._file is None:
            raise NodeStateError("the node state file is closed", file=location)
        if self._failed:
            raise NodeStateError("an earlier write or sync failed; reopen the file", file=location)
        return self._file

    def close(self) -> None:
        """Release the file (every update is already durable). Idempotent."""
        if self._file is not None:
            file, self._file = self._file, None
            file.close()

    def __enter__(self) -> NodeStateFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
