"""The cluster's mark files: ``cluster-mark.dat`` (the consensus module) and
``cluster-mark-service-<serviceId>.dat`` (each service container), in Aeron's format (schema 110).

Theory of operation
-------------------
A mark file says which process owns the cluster directory and whether it is still alive. Everything
but the header is every Aeron mark file's and lives in ``cluster.storage.markfile``: the liveness rule
(an activity timestamp within the liveness timeout, 10 s by default, of now belongs to a live process,
and ``-1`` is a clean close), the creation order (the header with version 0, synced, then the version),
rewrites of the changed bytes only, and the distinct error log after the header region.

Layout (Aeron Cluster 1.47, confirmed on the files Java wrote)::

    0      SBE message header: blockLength 128, templateId 200, schemaId 110, version 2
    8      MarkFileHeader block (128 bytes): version i32 @0 (0.3.0 = 768), componentType i32 @4,
           activityTimestamp i64 @8, startTimestamp i64 @16, pid i64 @24, candidateTermId i64 @32
           (no longer used: node-state.dat holds it; -1), archiveStreamId i32 @40, serviceStreamId i32
           @44, consensusModuleStreamId i32 @48, ingressStreamId i32 @52, memberId i32 @56, serviceId
           i32 @60, headerLength i32 @64 (8192), errorBufferLength i32 @68 (1 MiB), clusterId i32 @72,
           the rest reserved
    136    var data: aeronDirectory, controlChannel, ingressChannel, serviceName, authenticator,
           servicesClusterDir (each a uint32 length and that many US-ASCII bytes)
    8192   the error log: errorBufferLength bytes

Every field is read and written through the generated ``generated.aeron_cluster_mark_codecs`` codecs.
The node calls ``update_activity`` once a second; ``create`` refuses a directory whose mark file is
still active, naming the pid that owns it.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, fields, replace
from typing import Any

from cluster.consensus.files.errors import ClusterMarkFileError
from cluster.storage import Storage, StorageError, SyncLevel
from cluster.storage import markfile as shared
from cluster.storage.markfile import (
    DEFAULT_LIVENESS_TIMEOUT_MS,
    ErrorObservation,
    MarkFileWriter,
    compose_version,
    version_text,
)
from codegen.runtime import CodecError
from generated import aeron_cluster_mark_codecs as mark_codecs

__all__ = [
    "CLUSTER_MARK_FILE_NAME",
    "CLUSTER_MARK_VERSION",
    "ERROR_BUFFER_LENGTH",
    "HEADER_LENGTH",
    "ClusterComponentType",
    "ClusterMarkFile",
    "ClusterMarkFileHeader",
    "service_mark_file_name",
]

ClusterComponentType = mark_codecs.ClusterComponentType

CLUSTER_MARK_FILE_NAME = "cluster-mark.dat"
HEADER_LENGTH = 8192
ERROR_BUFFER_LENGTH = 1024 * 1024
CLUSTER_MARK_MAJOR_VERSION = 0
CLUSTER_MARK_VERSION = compose_version(CLUSTER_MARK_MAJOR_VERSION, 3, 0)
"""The version the mark file carries: 0.3.0, i.e. 768."""

_MESSAGE_HEADER = mark_codecs.HEADER_SIZE
_BLOCK = mark_codecs.MarkFileHeaderDecoder.BLOCK_LENGTH
_PID = struct.Struct("<q")
_PID_OFFSET = _MESSAGE_HEADER + 24
_SERVICE_MARK_FILE = re.compile(r"cluster-mark-service-(0|[1-9][0-9]{0,9})\.dat")


def service_mark_file_name(service_id: int) -> str:
    """``cluster-mark-service-<serviceId>.dat``: the mark file of service container ``service_id``."""
    return f"cluster-mark-service-{service_id}.dat"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterMarkFileHeader:
    """The decoded header of a cluster mark file. ``component_type`` is the enum, or the raw number for a
    type this schema does not know."""

    version: int
    component_type: ClusterComponentType | int
    activity_timestamp: int
    start_timestamp: int
    pid: int
    candidate_term_id: int
    archive_stream_id: int
    service_stream_id: int
    consensus_module_stream_id: int
    ingress_stream_id: int
    member_id: int
    service_id: int
    header_length: int
    error_buffer_length: int
    cluster_id: int
    aeron_directory: str
    control_channel: str
    ingress_channel: str
    service_name: str
    authenticator: str
    services_cluster_dir: str

    @property
    def semantic_version(self) -> str:
        return version_text(self.version)

    def to_json(self) -> dict[str, Any]:
        """The header under the schema's field names, in schema order; the component type by name."""
        out: dict[str, Any] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            head, *rest = field.name.split("_")
            name = head + "".join(part.capitalize() for part in rest)
            out[name] = value.name if isinstance(value, ClusterComponentType) else value
        return out


def _location(storage: Storage, name: str) -> str:
    return f"{storage.location}/{name}"


def _codec_error(exc: CodecError, file: str) -> ClusterMarkFileError:
    field = exc.message_name if exc.field is None else f"{exc.message_name}.{exc.field}"
    return ClusterMarkFileError(exc.reason, file=file, offset=exc.offset, field=field)


def _decode_header(data: bytes, file: str) -> tuple[ClusterMarkFileHeader, int]:
    """Decode the header at the start of ``data``; also return how many bytes it takes."""
    try:
        decoder = mark_codecs.MarkFileHeaderDecoder().wrap_header(data, 0)
        values: dict[str, Any] = {}
        for field in fields(ClusterMarkFileHeader):
            if field.type == "str":
                values[field.name] = getattr(decoder, f"{field.name}_str")()
            else:
                values[field.name] = getattr(decoder, field.name)
        header = ClusterMarkFileHeader(**values)
        return header, _MESSAGE_HEADER + decoder.total_length()
    except CodecError as exc:
        raise _codec_error(exc, file) from None


def _encode_header(header: ClusterMarkFileHeader, file: str) -> bytes:
    """The header's bytes (message header, block, strings), as the generated encoder writes them."""
    strings = [getattr(header, field.name) for field in fields(header) if field.type == "str"]
    buffer = bytearray(_MESSAGE_HEADER + _BLOCK + sum(4 + len(text) for text in strings))
    try:
        encoder = mark_codecs.MarkFileHeaderEncoder().wrap_and_apply_header(buffer, 0)
        for field in fields(header):
            value = getattr(header, field.name)
            if field.type == "str":
                getattr(encoder, f"put_{field.name}")(value)
            else:
                setattr(encoder, field.name, value)
        length = _MESSAGE_HEADER + encoder.encoded_length()
    except CodecError as exc:
        raise _codec_error(exc, file) from None
    return bytes(buffer[:length])


def _declared_header_length(data: bytes, file: str) -> int | None:
    try:
        return mark_codecs.MarkFileHeaderDecoder().wrap_header(data, 0).header_length
    except CodecError as exc:
        raise _codec_error(exc, file) from None


def _owner_pid(storage: Storage, name: str) -> int | None:
    """The pid field of the mark file ``name``, read at its fixed place (``None`` if it is not there)."""
    try:
        with storage.open(name) as file:
            data = file.read(0, min(file.size(), _PID_OFFSET + _PID.size))
    except StorageError:
        return None
    if len(data) < _PID_OFFSET + _PID.size:
        return None
    pid: int = _PID.unpack_from(data, _PID_OFFSET)[0]
    return pid


class ClusterMarkFile:
    """A cluster component's mark file, owned by this process from ``create`` until ``close``."""

    def __init__(
        self, storage: Storage, name: str, writer: MarkFileWriter, header: ClusterMarkFileHeader
    ) -> None:
        """Use ``ClusterMarkFile.create``."""
        self._storage = storage
        self._name = name
        self._writer = writer
        self._header = header

    # ------------------------------------------------------------------------------------- reading

    @staticmethod
    def read(storage: Storage, name: str = CLUSTER_MARK_FILE_NAME) -> ClusterMarkFileHeader:
        """The header of the mark file ``name`` in ``storage``: ``ClusterMarkFileError`` when it is missing
        or damaged (not template 200 of schema 110, strings running past the header region, a file
        shorter than its header and error log)."""
        location = _location(storage, name)
        data, size = shared.read_header_region(
            storage,
            name,
            HEADER_LENGTH,
            lambda data: _declared_header_length(data, location),
            ClusterMarkFileError,
        )
        header, encoded_length = _decode_header(data, location)
        shared.check_region(
            header_length=header.header_length,
            error_buffer_length=header.error_buffer_length,
            encoded_length=encoded_length,
            size=size,
            header_length_offset=_MESSAGE_HEADER + 64,
            error_buffer_length_offset=_MESSAGE_HEADER + 68,
            file=location,
            error=ClusterMarkFileError,
        )
        return header

    @staticmethod
    def read_errors(storage: Storage, name: str = CLUSTER_MARK_FILE_NAME) -> list[ErrorObservation]:
        """The distinct error log of the mark file ``name`` (empty for a header without one)."""
        header = ClusterMarkFile.read(storage, name)
        if not header.header_length or not header.error_buffer_length:
            return []
        with storage.open(name) as file:
            data = file.read(header.header_length, header.error_buffer_length)
        return shared.read_error_log(
            data, file=_location(storage, name), base=header.header_length, error=ClusterMarkFileError
        )

    @staticmethod
    def refuse_if_active(
        storage: Storage,
        name: str = CLUSTER_MARK_FILE_NAME,
        *,
        now_ms: int,
        liveness_timeout_ms: int = DEFAULT_LIVENESS_TIMEOUT_MS,
    ) -> None:
        """``ClusterMarkFileError`` (a user error, naming the owner's pid) if the mark file ``name`` belongs
        to a live process -- its activity timestamp within ``liveness_timeout_ms`` of ``now_ms`` (Aeron's
        rule; ``cluster.storage.markfile.is_active``) -- or carries a major version this code does not
        read. No file, a clean close (``-1``), a stale timestamp or a torn creation is no obstacle."""
        owner = _owner_pid(storage, name)
        shared.refuse_if_active(
            storage,
            name,
            now_ms=now_ms,
            liveness_timeout_ms=liveness_timeout_ms,
            major_versions=(CLUSTER_MARK_MAJOR_VERSION,),
            error=ClusterMarkFileError,
            owner="" if owner is None else f"pid {owner}",
        )

    @staticmethod
    def service_mark_files(storage: Storage) -> list[tuple[int, str]]:
        """``(service id, file name)`` of every ``cluster-mark-service-<id>.dat`` in ``storage``, by id."""
        found = []
        for name in storage.list():
            match = _SERVICE_MARK_FILE.fullmatch(name)
            if match is not None:
                found.append((int(match.group(1)), name))
        return sorted(found)

    # ------------------------------------------------------------------------------------ creating

    @classmethod
    def create(
        cls,
        storage: Storage,
        *,
        member_id: int,
        cluster_id: int,
        pid: int,
        now_ms: int,
        aeron_directory: str,
        control_channel: str,
        ingress_channel: str = "",
        component_type: ClusterComponentType = ClusterComponentType.CONSENSUS_MODULE,
        service_id: int = -1,
        archive_stream_id: int = 10,
        service_stream_id: int = 104,
        consensus_module_stream_id: int = 105,
        ingress_stream_id: int = 101,
        service_name: str = "",
        authenticator: str = "",
        services_cluster_dir: str = "",
        liveness_timeout_ms: int = DEFAULT_LIVENESS_TIMEOUT_MS,
        error_buffer_length: int = ERROR_BUFFER_LENGTH,
        file_sync_level: SyncLevel = SyncLevel.DATA,
    ) -> ClusterMarkFile:
        """Take the directory for a component: write a new mark file stamped ``now_ms`` --
        ``cluster-mark.dat`` for the consensus module, ``cluster-mark-service-<service_id>.dat`` for a
        service container. The stream ids default to Aeron's (archive control 10, service 104,
        consensus module 105, ingress 101).

        ``ClusterMarkFileError`` (a user error, naming the owner's pid) when the mark file there is still
        active (its activity timestamp within ``liveness_timeout_ms`` of ``now_ms``), or carries another
        major version."""
        name = (
            service_mark_file_name(service_id)
            if component_type == ClusterComponentType.CONTAINER
            else CLUSTER_MARK_FILE_NAME
        )
        location = _location(storage, name)
        shared.check_settings(
            liveness_timeout_ms, error_buffer_length, HEADER_LENGTH, location, ClusterMarkFileError
        )
        header = ClusterMarkFileHeader(
            version=CLUSTER_MARK_VERSION,
            component_type=component_type,
            activity_timestamp=now_ms,
            start_timestamp=now_ms,
            pid=pid,
            candidate_term_id=-1,
            archive_stream_id=archive_stream_id,
            service_stream_id=service_stream_id,
            consensus_module_stream_id=consensus_module_stream_id,
            ingress_stream_id=ingress_stream_id,
            member_id=member_id,
            service_id=service_id,
            header_length=HEADER_LENGTH,
            error_buffer_length=error_buffer_length,
            cluster_id=cluster_id,
            aeron_directory=aeron_directory,
            control_channel=control_channel,
            ingress_channel=ingress_channel,
            service_name=service_name,
            authenticator=authenticator,
            services_cluster_dir=services_cluster_dir,
        )
        image = _encode_header(header, location)
        if len(image) > HEADER_LENGTH:
            raise ClusterMarkFileError(
                f"the header with its strings takes {len(image)} bytes, more than {HEADER_LENGTH}",
                file=location,
            )
        ClusterMarkFile.refuse_if_active(
            storage, name, now_ms=now_ms, liveness_timeout_ms=liveness_timeout_ms
        )
        writer = MarkFileWriter.create(
            storage,
            name,
            unready=_encode_header(replace(header, version=0), location),
            image=image,
            header_length=HEADER_LENGTH,
            error_buffer_length=error_buffer_length,
            sync_level=file_sync_level,
            error=ClusterMarkFileError,
        )
        return cls(storage, name, writer, header)

    # ------------------------------------------------------------------------------------- running

    @property
    def name(self) -> str:
        return self._name

    @property
    def header(self) -> ClusterMarkFileHeader:
        """The header as last written."""
        return self._header

    def _rewrite(self, header: ClusterMarkFileHeader) -> None:
        self._writer.rewrite(_encode_header(header, _location(self._storage, self._name)))
        self._header = header

    def update_activity(self, now_ms: int) -> None:
        """Say this component is alive at ``now_ms`` (8 bytes written, not synced: liveness needs no
        durability). The node calls it once a second."""
        self._rewrite(replace(self._header, activity_timestamp=now_ms))

    def record_error(self, text: str, *, now_ms: int) -> bool:
        """Add an observation of the error ``text`` to the error log; ``False`` when it does not fit."""
        return self._writer.record_error(text, now_ms=now_ms)

    def errors(self) -> list[ErrorObservation]:
        """The error log as it is in the file now."""
        return self._writer.errors()

    def close(self) -> None:
        """Leave the directory: activity timestamp ``-1`` (a clean close), synced. Idempotent."""
        if self._writer.is_closed:
            return
        header = replace(self._header, activity_timestamp=-1)
        self._writer.close(_encode_header(header, _location(self._storage, self._name)))
        self._header = header

    def __enter__(self) -> ClusterMarkFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
