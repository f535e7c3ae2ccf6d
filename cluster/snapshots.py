"""Snapshots as records: what a service and the consensus module write into their snapshot recordings,
and how a loader reads them back. Sans-IO: whole messages in, whole messages out; the archive carries them.

Theory of operation
-------------------
A snapshot is one archive recording of cluster-schema messages (docs/snapshots.md has the layouts):

* **a service's** (stream 106): ``SnapshotMarker`` BEGIN with type id ``SERVICE_TYPE_ID``, one
  ``ClientSession`` per open session, ``SnapshotMarker`` END, then the service's own messages, written
  by its ``on_take_snapshot`` and handed back, in order, to its ``on_start``;
* **the consensus module's** (stream 107): BEGIN with type id ``CONSENSUS_MODULE_TYPE_ID``, one
  ``ConsensusModule`` record (the next session id and service 0's pending-message bookkeeping), one
  ``ClusterSession`` per open or closing session, one ``Timer`` per scheduled timer, one
  ``PendingMessageTracker`` per service followed by that service's messages not yet in the log (each a
  ``SessionMessageHeader`` and its payload), then END.

Both markers carry the snapshot's log position, leadership term, index 0, the cluster's time unit and the
application version; END repeats BEGIN's. A loader is fed whole messages (fragments already put back
together) and says when END has come; anything out of shape -- a first message that is no BEGIN, a type
id for the other kind of snapshot, an END that does not match its BEGIN, a record this kind of snapshot
never holds, a message of no cluster schema where a record belongs, a stream that ends before END --
raises ``SnapshotError`` naming the message's index, so a damaged snapshot is refused whole, never half
loaded.

Tolerated, as Aeron's loaders tolerate them: ``SnapshotMarker`` SECTION and the legacy ``ClusterMembers``
record are skipped; in a consensus module snapshot, messages of another schema between the records are
an extension's state, kept as they are (``extension``); pending messages that come before any
``PendingMessageTracker`` (snapshots older than the per-service trackers) belong to service 0.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from cluster.messages import pack
from codegen.runtime.errors import CodecError
from generated import aeron_cluster_codecs as codecs

__all__ = [
    "APP_VERSION",
    "CONSENSUS_MODULE_TYPE_ID",
    "SERVICE_TYPE_ID",
    "ConsensusModuleSnapshot",
    "ConsensusModuleSnapshotLoader",
    "PendingMessages",
    "ServiceSnapshot",
    "ServiceSnapshotLoader",
    "SnapshotClientSession",
    "SnapshotClusterSession",
    "SnapshotError",
    "SnapshotMarker",
    "SnapshotTimer",
    "load_consensus_module_snapshot",
    "load_service_snapshot",
]

CONSENSUS_MODULE_TYPE_ID: Final = 1
SERVICE_TYPE_ID: Final = 2
APP_VERSION: Final = 1
"""The application version a node writes (in NewLeadershipTermEvent and the snapshot markers): 0.0.1,
packed as major << 16 | minor << 8 | patch, Aeron's default."""

_MARK = codecs.SnapshotMark
_NULL_ENUM: Final = -(2**31)  # the null value of the schema's int32 enums
_TYPE_NAMES: Final = {CONSENSUS_MODULE_TYPE_ID: "consensus module", SERVICE_TYPE_ID: "service"}


class SnapshotError(Exception):
    """A snapshot's records are not what a snapshot of that kind holds."""


@dataclass(frozen=True, slots=True)
class SnapshotMarker:
    """The fields BEGIN and END share. ``time_unit`` is a ``ClusterTimeUnit`` value and ``app_version``
    a packed semantic version; either is ``None`` in snapshots older than schema version 4."""

    type_id: int
    log_position: int
    leadership_term_id: int
    index: int = 0
    time_unit: int | None = None
    app_version: int | None = None

    def encode(self, mark: codecs.SnapshotMark) -> bytes:
        return pack(
            codecs.SnapshotMarkerEncoder,
            type_id=self.type_id,
            log_position=self.log_position,
            leadership_term_id=self.leadership_term_id,
            index=self.index,
            mark=int(mark),
            time_unit=self.time_unit,  # type: ignore[arg-type]  # None writes the null value
            app_version=self.app_version,  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class SnapshotClientSession:
    """A service's record of an open client session."""

    cluster_session_id: int
    response_stream_id: int
    response_channel: str
    encoded_principal: bytes = b""

    def encode(self) -> bytes:
        return pack(
            codecs.ClientSessionEncoder,
            {"response_channel": self.response_channel, "encoded_principal": self.encoded_principal},
            cluster_session_id=self.cluster_session_id,
            response_stream_id=self.response_stream_id,
        )


@dataclass(frozen=True, slots=True)
class ServiceSnapshot:
    """A service snapshot's header part: the marker and the open sessions. The service's own messages
    follow END in the recording and are not held here."""

    marker: SnapshotMarker
    sessions: tuple[SnapshotClientSession, ...] = ()

    def messages(self) -> Iterator[bytes]:
        """BEGIN, the sessions, END: what goes before the service's own messages."""
        yield self.marker.encode(_MARK.BEGIN)
        for session in self.sessions:
            yield session.encode()
        yield self.marker.encode(_MARK.END)


@dataclass(frozen=True, slots=True)
class SnapshotClusterSession:
    """The consensus module's record of an open or closing session. ``close_reason`` is a
    ``CloseReason`` value, ``None`` while the session is open."""

    cluster_session_id: int
    correlation_id: int
    opened_log_position: int
    time_of_last_activity: int
    response_stream_id: int
    response_channel: str
    close_reason: int | None = None

    def encode(self) -> bytes:
        return pack(
            codecs.ClusterSessionEncoder,
            {"response_channel": self.response_channel},
            cluster_session_id=self.cluster_session_id,
            correlation_id=self.correlation_id,
            opened_log_position=self.opened_log_position,
            time_of_last_activity=self.time_of_last_activity,
            close_reason=self.close_reason,  # type: ignore[arg-type]  # None writes the null value
            response_stream_id=self.response_stream_id,
        )


@dataclass(frozen=True, slots=True)
class SnapshotTimer:
    correlation_id: int
    deadline: int

    def encode(self) -> bytes:
        buffer = bytearray(codecs.HEADER_SIZE + codecs.TimerEncoder.BLOCK_LENGTH)
        codecs.TimerEncoder.pack_into(buffer, 0, correlation_id=self.correlation_id, deadline=self.deadline)
        return bytes(buffer)


@dataclass(frozen=True, slots=True)
class PendingMessages:
    """One service's messages to the log that were not in it yet: the tracker's bookkeeping, then the
    messages (each a ``SessionMessageHeader`` and its payload, as the service sent it)."""

    service_id: int
    next_service_session_id: int
    log_service_session_id: int
    pending_message_capacity: int = 0  # 0: none given (the null value of the schema's capacity type)
    messages: tuple[bytes, ...] = ()

    def encode(self) -> Iterator[bytes]:
        buffer = bytearray(codecs.HEADER_SIZE + codecs.PendingMessageTrackerEncoder.BLOCK_LENGTH)
        codecs.PendingMessageTrackerEncoder.pack_into(
            buffer,
            0,
            next_service_session_id=self.next_service_session_id,
            log_service_session_id=self.log_service_session_id,
            pending_message_capacity=self.pending_message_capacity,
            service_id=self.service_id,
        )
        yield bytes(buffer)
        yield from self.messages


@dataclass(frozen=True, slots=True)
class ConsensusModuleSnapshot:
    """The consensus module's snapshot. ``next_service_session_id``, ``log_service_session_id`` and
    ``pending_message_capacity`` are service 0's, repeated in the ``ConsensusModule`` record (``None``:
    absent, or the null value); ``extension`` holds the messages of other schemas, untouched."""

    marker: SnapshotMarker
    next_session_id: int
    next_service_session_id: int | None = None
    log_service_session_id: int | None = None
    pending_message_capacity: int | None = None
    sessions: tuple[SnapshotClusterSession, ...] = ()
    timers: tuple[SnapshotTimer, ...] = ()
    pending: tuple[PendingMessages, ...] = ()
    extension: tuple[bytes, ...] = ()

    def messages(self) -> Iterator[bytes]:
        """Every record, BEGIN to END, in the order Aeron writes them."""
        yield self.marker.encode(_MARK.BEGIN)
        yield pack(
            codecs.ConsensusModuleEncoder,
            next_session_id=self.next_session_id,
            next_service_session_id=self.next_service_session_id,  # type: ignore[arg-type]  # None: null
            log_service_session_id=self.log_service_session_id,  # type: ignore[arg-type]
            pending_message_capacity=self.pending_message_capacity,  # type: ignore[arg-type]
        )
        for session in self.sessions:
            yield session.encode()
        for timer in self.timers:
            yield timer.encode()
        for tracker in self.pending:
            yield from tracker.encode()
        yield from self.extension
        yield self.marker.encode(_MARK.END)


# ------------------------------------------------------------------------------------------ loading


@dataclass(slots=True)
class _Loader(ABC):
    """BEGIN, records, END: the part both kinds of snapshot share."""

    type_id: int
    marker: SnapshotMarker | None = None
    done: bool = False
    count: int = 0  # messages taken so far

    def _fail(self, why: str) -> SnapshotError:
        kind = _TYPE_NAMES[self.type_id]
        return SnapshotError(f"{kind} snapshot, message {self.count}: {why}")

    def _decode(self, message: bytes | memoryview) -> Any:
        """The message's decoder, every field checked; ``None`` for a message of another schema."""
        try:
            header = codecs.MessageHeaderDecoder.unpack(message)
        except CodecError as error:
            raise self._fail(f"not a whole message: {error}") from error
        if header[2] != codecs.SCHEMA_ID:
            return None
        try:
            decoder = codecs.decode(message)
            type(decoder).unpack(message)
        except CodecError as error:
            raise self._fail(f"a malformed record: {error}") from error
        return decoder

    def _on_marker(self, decoder: codecs.SnapshotMarkerDecoder) -> bool:
        """Take a marker; whether it was END."""
        mark = decoder.mark_raw
        marker = _marker_of(decoder)
        if mark == _MARK.SECTION:
            return False
        if mark == _MARK.BEGIN:
            raise self._fail("a second BEGIN marker")
        if mark != _MARK.END:
            raise self._fail(f"a marker of unknown kind {mark}")
        if marker != self.marker:
            raise self._fail(f"END {marker} does not match BEGIN {self.marker}")
        self.done = True
        return True

    def _begin(self, decoder: object) -> None:
        if not isinstance(decoder, codecs.SnapshotMarkerDecoder) or decoder.mark_raw != _MARK.BEGIN:
            raise self._fail(f"the first message must be a BEGIN marker, not {_name(decoder)}")
        if decoder.type_id != self.type_id:
            got = _TYPE_NAMES.get(decoder.type_id, f"type {decoder.type_id}")
            raise self._fail(f"BEGIN marks a {got} snapshot")
        self.marker = _marker_of(decoder)

    def _end_of_stream(self) -> None:
        if not self.done:
            raise self._fail("the snapshot ends before its END marker")

    def on_message(self, message: bytes | memoryview) -> bool:
        """Take the next message; ``True`` once it was END (the snapshot is complete)."""
        if self.done:
            raise self._fail(self._after_end)
        decoder = self._decode(message)
        self.count += 1
        if self.marker is None:
            self._begin(decoder)
            return False
        if isinstance(decoder, codecs.SnapshotMarkerDecoder):
            return self._on_marker(decoder)
        self._on_record(decoder, message)
        return False

    _after_end = "a message after END"

    @abstractmethod
    def _on_record(self, decoder: Any, message: bytes | memoryview) -> None:
        """A record between BEGIN and END (``decoder`` is ``None`` for a message of another schema)."""


@dataclass(slots=True)
class ServiceSnapshotLoader(_Loader):
    """Feed a service snapshot's messages to ``on_message`` until it returns ``True`` (END read); the
    messages after that are the service's own. ``snapshot`` is then complete."""

    type_id: int = SERVICE_TYPE_ID
    sessions: list[SnapshotClientSession] = field(default_factory=list)

    _after_end = "a message after END is the service's own, not the loader's"

    def _on_record(self, decoder: Any, message: bytes | memoryview) -> None:
        if not isinstance(decoder, codecs.ClientSessionDecoder):
            raise self._fail(f"a service snapshot holds no {_name(decoder)} before END")
        self.sessions.append(
            SnapshotClientSession(
                decoder.cluster_session_id,
                decoder.response_stream_id,
                decoder.response_channel_str(),
                bytes(decoder.encoded_principal_bytes()),
            )
        )

    @property
    def snapshot(self) -> ServiceSnapshot:
        self._end_of_stream()
        assert self.marker is not None
        return ServiceSnapshot(self.marker, tuple(self.sessions))


@dataclass(slots=True)
class ConsensusModuleSnapshotLoader(_Loader):
    """Feed the consensus module's snapshot to ``on_message`` until it returns ``True`` (END read);
    ``snapshot`` is then complete."""

    type_id: int = CONSENSUS_MODULE_TYPE_ID
    state: tuple[int, int | None, int | None, int | None] | None = None
    sessions: list[SnapshotClusterSession] = field(default_factory=list)
    timers: list[SnapshotTimer] = field(default_factory=list)
    trackers: list[PendingMessages] = field(default_factory=list)
    pending: dict[int, list[bytes]] = field(default_factory=dict)
    extension: list[bytes] = field(default_factory=list)

    def _on_record(self, decoder: Any, message: bytes | memoryview) -> None:
        if decoder is None:
            self.extension.append(bytes(message))
        elif isinstance(decoder, codecs.ConsensusModuleDecoder):
            if self.state is not None:
                raise self._fail("a second ConsensusModule record")
            self.state = (
                decoder.next_session_id,
                decoder.next_service_session_id,
                decoder.log_service_session_id,
                decoder.pending_message_capacity,
            )
        elif isinstance(decoder, codecs.ClusterSessionDecoder):
            self.sessions.append(
                SnapshotClusterSession(
                    decoder.cluster_session_id,
                    decoder.correlation_id,
                    decoder.opened_log_position,
                    decoder.time_of_last_activity,
                    decoder.response_stream_id,
                    decoder.response_channel_str(),
                    _enum_value(decoder.close_reason_raw),
                )
            )
        elif isinstance(decoder, codecs.TimerDecoder):
            self.timers.append(SnapshotTimer(decoder.correlation_id, decoder.deadline))
        elif isinstance(decoder, codecs.PendingMessageTrackerDecoder):
            service_id = decoder.service_id
            if any(tracker.service_id == service_id for tracker in self.trackers):
                raise self._fail(f"a second PendingMessageTracker for service {service_id}")
            self.trackers.append(
                PendingMessages(
                    service_id,
                    decoder.next_service_session_id,
                    decoder.log_service_session_id,
                    decoder.pending_message_capacity or 0,
                )
            )
        elif isinstance(decoder, codecs.SessionMessageHeaderDecoder):
            service_id = self.trackers[-1].service_id if self.trackers else 0
            self.pending.setdefault(service_id, []).append(bytes(message))
        elif not isinstance(decoder, codecs.ClusterMembersDecoder):
            raise self._fail(f"a consensus module snapshot holds no {_name(decoder)}")

    @property
    def snapshot(self) -> ConsensusModuleSnapshot:
        self._end_of_stream()
        assert self.marker is not None
        if self.state is None:
            raise self._fail("the snapshot has no ConsensusModule record")
        trackers = {tracker.service_id: tracker for tracker in self.trackers}
        for service_id in self.pending:
            if service_id not in trackers:  # older snapshots: service 0's pending messages, no tracker
                trackers[service_id] = PendingMessages(service_id, self.state[1] or 0, self.state[2] or 0)
        pending = tuple(
            PendingMessages(
                tracker.service_id,
                tracker.next_service_session_id,
                tracker.log_service_session_id,
                tracker.pending_message_capacity,
                tuple(self.pending.get(tracker.service_id, ())),
            )
            for tracker in trackers.values()
        )
        return ConsensusModuleSnapshot(
            self.marker,
            *self.state,
            sessions=tuple(self.sessions),
            timers=tuple(self.timers),
            pending=pending,
            extension=tuple(self.extension),
        )


def _marker_of(decoder: codecs.SnapshotMarkerDecoder) -> SnapshotMarker:
    return SnapshotMarker(
        decoder.type_id,
        decoder.log_position,
        decoder.leadership_term_id,
        decoder.index,
        _enum_value(decoder.time_unit_raw),
        decoder.app_version,
    )


def _enum_value(raw: int | None) -> int | None:
    return None if raw is None or raw == _NULL_ENUM else raw


def _name(decoder: object) -> str:
    return "message of another schema" if decoder is None else type(decoder).__name__.removesuffix("Decoder")


def load_service_snapshot(messages: Iterable[bytes | memoryview]) -> tuple[ServiceSnapshot, list[bytes]]:
    """A whole service snapshot: its header part, and the service's own messages after END."""
    loader = ServiceSnapshotLoader()
    own: list[bytes] = []
    for message in messages:
        if loader.done:
            own.append(bytes(message))
        else:
            loader.on_message(message)
    return loader.snapshot, own


def load_consensus_module_snapshot(messages: Iterable[bytes | memoryview]) -> ConsensusModuleSnapshot:
    """A whole consensus module snapshot; messages after END are not read."""
    loader = ConsensusModuleSnapshotLoader()
    for message in messages:
        if loader.on_message(message):
            break
    return loader.snapshot
