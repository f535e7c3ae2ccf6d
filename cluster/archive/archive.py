"""``Archive``: Aeron Archive's conductor -- control sessions, recordings, replays, replications.

Theory of operation
-------------------
The archive is an agent on the same ``Transport`` as everything else in the process: ``do_work`` polls
the control request subscriptions (the remote control channel if configured, and the local IPC one),
handles each request, and runs its sessions -- control sessions, listings, recordings, replays and
replications -- each a small state machine with its own ``do_work``. It never calls the transport's duty
cycle itself; whoever runs the archive runs the transport too (``tools archive run`` composes them; the
simulator steps them).

Every file goes through the archive directory's ``Storage`` -- real, or the simulator's disk. At start the
archive refuses a directory whose mark file shows another live archive, opens (or creates) the catalog,
and recovers: a recording that was active when the previous process died gets its real stop position
from its segment files, its torn tail cut back to the last whole frame. The mark file's activity
timestamp is refreshed once a second; an orderly ``close`` stops every session, records the stop
positions, and marks the mark file closed.

Requests arrive on the control streams as the generated codecs of ``aeron-archive-codecs.xml``. A
request that is not a whole message of that schema, or that names an unknown control session, is dropped
and counted (``ArchiveCounters``); a request that is well-formed but wrong (an unknown recording, a bad
position, a recording that is active) gets an ERROR response with Aeron's error code and a message
saying what was wrong. Nothing a client sends can stop the archive. The protocol facts are in
``docs/archive.md``.
"""

from __future__ import annotations

import errno
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cluster.archive.catalog import Catalog, RecordingDescriptor
from cluster.archive.channels import SPY_PREFIX, recording_key, replay_channel, stripped_channel
from cluster.archive.context import ArchiveContext
from cluster.archive.control_proxy import ControlResponseProxy
from cluster.archive.control_session import ControlSession, ControlSessionState
from cluster.archive.errors import ArchiveError, SegmentError
from cluster.archive.listing import ListingSession, descriptor_listing, subscription_listing
from cluster.archive.markfile import ArchiveMarkFile
from cluster.archive.protocol import (
    NULL_POSITION,
    NULL_VALUE,
    PROTOCOL_MAJOR_VERSION,
    PROTOCOL_SEMANTIC_VERSION,
    REPLAY_ALL_AND_FOLLOW,
    REPLAY_ALL_AND_STOP,
    ArchiveErrorCode,
    semantic_version_text,
)
from cluster.archive.recording_reader import RecordingReader
from cluster.archive.recording_session import RecordingSession, RecordingSessionState
from cluster.archive.recording_writer import RecordingWriter
from cluster.archive.recovery import recover
from cluster.archive.replay_session import ReplaySession
from cluster.archive.segments import (
    attachable_start,
    delete_detached_segments,
    delete_recording_files,
    segment_file_base_position,
    truncate_recording_files,
)
from cluster.storage import StorageError
from cluster.transport.counters import Counter
from cluster.transport.driver import Transport
from cluster.transport.errors import TransportError
from cluster.transport.image import Image, Subscription
from cluster.transport.logbuffer import FragmentAssembler, Header
from cluster.transport.uri import ChannelUri
from codegen.runtime.errors import CodecError
from generated import aeron_archive_codecs as codecs
from generated.aeron_archive_codecs import BooleanType, RecordingSignal, RecordingState, SourceLocation

__all__ = ["RECORDING_POSITION_TYPE_ID", "Archive", "ArchiveCounters"]

RECORDING_POSITION_TYPE_ID = 100  # Aeron's RecordingPos counter type
# The longest term a client may ask for on its control response channel. Our publication logs are
# allocated in full at once (a channel's ``term-length=1g`` would be 3 GiB), so one connect request must
# not be able to ask for more than the transport accepts from a remote sender by default; Aeron's client
# asks for 64 KiB.
MAX_RESPONSE_TERM_LENGTH = 16 * 1024 * 1024
# The term length of a response channel that names none: Aeron's archive answers on its control term
# buffer length (``aeron.archive.control.term.buffer.length``, 64 KiB), not the driver's default.
CONTROL_TERM_LENGTH = 64 * 1024
FRAME_ALIGNMENT = 32
FRAGMENT_LIMIT = 16
_MAX_KEY_SOURCE_IDENTITY = 112 - 16 - 8


@dataclass(slots=True)
class ArchiveCounters:
    """What the archive dropped or refused, for tools and tests."""

    malformed_requests: int = 0
    unknown_session_requests: int = 0
    unsupported_requests: int = 0
    refused_sessions: int = 0
    recording_errors: int = 0
    replay_errors: int = 0


class _UnopenedWriter:
    """Stands in for a ``RecordingWriter`` whose segment file could not be opened: its recording session
    fails on its first duty cycle, stopped where it would have started."""

    def __init__(self, position: int) -> None:
        self.position = position

    def on_block(self, *args: object) -> None:
        raise SegmentError("the recording's segment file is not open")

    def close(self) -> None:
        pass


@dataclass(slots=True)
class _RecordingSubscription:
    subscription_id: int
    key: str
    stream_id: int
    stripped: str
    original: str
    subscription: Subscription
    control_session: ControlSession
    correlation_id: int
    auto_stop: bool
    extend_recording_id: int | None  # None: each image is a new recording
    sessions: int = 0


def recording_position_key(
    recording_id: int, session_id: int, source_identity: str, archive_id: int
) -> bytes:
    """The key of a recording-position counter: recordingId, sessionId, sourceIdentity, archiveId."""
    identity = source_identity.encode("ascii", "replace")[:_MAX_KEY_SOURCE_IDENTITY]
    return (
        recording_id.to_bytes(8, "little", signed=True)
        + session_id.to_bytes(4, "little", signed=True)
        + len(identity).to_bytes(4, "little", signed=True)
        + identity
        + archive_id.to_bytes(8, "little", signed=True)
    )


class Archive:
    """The archive conductor (see the module docstring)."""

    def __init__(self, transport: Transport, context: ArchiveContext) -> None:
        self.transport = transport
        self.ctx = context
        self.clock = transport.clock
        self.counters = ArchiveCounters()
        self._random = random.Random(context.seed)
        self.archive_id = (
            context.archive_id if context.archive_id is not None else self._random.getrandbits(62)
        )
        storage = context.storage
        now_ms = self.clock.epoch_ms()
        self.mark_file = ArchiveMarkFile.create(
            storage,
            archive_id=self.archive_id,
            control_channel=context.control_channel or "",
            control_stream_id=context.control_stream_id,
            local_control_channel=context.local_control_channel,
            local_control_stream_id=context.local_control_stream_id,
            events_channel="",
            events_stream_id=30,
            aeron_directory=context.aeron_directory,
            pid=context.pid,
            now_ms=now_ms,
            liveness_timeout_ms=context.mark_file_liveness_timeout_ms,
            file_sync_level=context.file_sync_level,
        )
        try:
            self.catalog = Catalog(
                storage,
                file_sync_level=context.effective_catalog_sync_level,
                capacity_bytes=context.catalog_capacity_bytes,
                epoch_clock=self.clock.epoch_ms,
            )
            self.recovered = recover(storage, self.catalog, now_ms=now_ms)
        except BaseException:
            self.mark_file.close()
            raise
        # due by the monotonic clock: a deadline on the wall clock, stepped forward and back, would hold
        # the activity timestamp in the future, and a crash then leaves a mark file that looks alive
        self._mark_file_deadline_ns = (
            self.clock.nano_time() + context.mark_file_update_interval_ms * 1_000_000
        )
        self._proxy = ControlResponseProxy(catalog_alignment=self.catalog.alignment)
        self._next_session_id = self._random.randrange(1 << 31)
        self._next_registration_id = self._random.randrange(1 << 20)
        self._replay_id = 1
        self.control_sessions: dict[int, ControlSession] = {}
        self._listings: list[ListingSession] = []
        self.recording_subscriptions: dict[int, _RecordingSubscription] = {}
        self._subscription_by_key: dict[str, int] = {}
        self.recording_sessions: dict[int, RecordingSession] = {}
        self.replay_sessions: dict[int, ReplaySession] = {}
        self.replications: dict[int, Any] = {}
        self._tasks: list[Callable[[], None]] = []
        self._assembler = FragmentAssembler(self._on_message)
        self._control_subscriptions: list[Subscription] = []
        self._handlers = _request_handlers(self)
        self.is_closed = False
        try:
            if context.control_channel:
                self._control_subscriptions.append(
                    transport.add_subscription(
                        context.control_channel,
                        context.control_stream_id,
                        on_unavailable_image=self._on_request_image_gone,
                    )
                )
            self._control_subscriptions.append(
                transport.add_subscription(
                    context.local_control_channel,
                    context.local_control_stream_id,
                    on_unavailable_image=self._on_request_image_gone,
                )
            )
        except BaseException:
            self._close_files()
            raise

    # ------------------------------------------------------------------ agent

    @property
    def role_name(self) -> str:
        return "archive"

    def on_start(self) -> None:
        pass

    def on_close(self) -> None:
        self.close()

    def do_work(self) -> int:
        if self.is_closed:
            return 0
        now_ns = self.clock.nano_time()
        now_ms = self.clock.epoch_ms()
        work = 0
        if now_ns >= self._mark_file_deadline_ns:
            self._mark_file_deadline_ns = now_ns + self.ctx.mark_file_update_interval_ms * 1_000_000
            self.mark_file.update_activity_timestamp(now_ms)
        for subscription in self._control_subscriptions:
            work += subscription.poll(self._assembler.on_fragment, FRAGMENT_LIMIT)
        if self._tasks:
            tasks, self._tasks = self._tasks, []
            for task in tasks:
                task()
                work += 1
        work += self._run_sessions(now_ns)
        return work

    def replay_work(self) -> int:
        """Only the replays' duty: what a replay may send now goes out. A node runs it again after its
        consensus module, so that a commit reaches the services' replays in the same duty cycle."""
        if self.is_closed:
            return 0
        return self._run_replays(self.clock.nano_time())

    def _run_replays(self, now_ns: int) -> int:
        work = 0
        for replay in list(self.replay_sessions.values()):
            work += replay.do_work(now_ns)
            if replay.is_done:
                self._close_replay_session(replay)
        return work

    def _run_sessions(self, now_ns: int) -> int:
        work = 0
        for session in list(self.control_sessions.values()):
            work += session.do_work(now_ns)
            if session.is_done:
                self._close_control_session(session)
        if self._listings:
            for listing in list(self._listings):
                work += listing.do_work(now_ns)
                if listing.is_done:
                    self._listings.remove(listing)
        for recording in list(self.recording_sessions.values()):
            work += recording.do_work(now_ns)
            if recording.state == RecordingSessionState.STOPPING:
                self._close_recording_session(recording)
                work += 1
        work += self._run_replays(now_ns)
        for replication in list(self.replications.values()):
            work += replication.do_work(now_ns)
            if replication.is_done:
                self.replications.pop(replication.replication_id, None)
        return work

    # ------------------------------------------------------------------ requests

    def _on_message(self, payload: memoryview, header: Header) -> None:
        try:
            decoder = codecs.decode(payload)
            template_id = decoder.TEMPLATE_ID
            handler = self._handlers.get(template_id)
            if handler is None:
                self._on_unsupported(decoder)
                return
            handler(decoder, header.session_id)
        except (CodecError, TransportError):
            # not a whole, well-formed message of the schema (a field, var data or channel that does
            # not decode): dropped and counted; anything else is a bug and surfaces
            self.counters.malformed_requests += 1

    def _session_for(self, decoder: Any) -> ControlSession | None:
        session = self.control_sessions.get(decoder.control_session_id)
        if session is None or session.state != ControlSessionState.ACTIVE:
            self.counters.unknown_session_requests += 1
            return None
        return session

    def _on_unsupported(self, decoder: Any) -> None:
        self.counters.unsupported_requests += 1
        control_session_id = getattr(decoder, "control_session_id", None)
        if control_session_id is None:
            return
        session = self._session_for(decoder)
        if session is not None:
            session.send_error(
                decoder.correlation_id, f"request {decoder.NAME} is not supported by this archive"
            )

    def _on_connect(self, decoder: Any, image_session_id: int) -> None:
        if len(self.control_sessions) >= self.ctx.max_control_sessions:
            self.counters.refused_sessions += 1
            return
        version = decoder.version or 0
        credentials = b""
        response_channel = decoder.response_channel_str()
        if decoder.TEMPLATE_ID == codecs.AuthConnectRequestDecoder.TEMPLATE_ID:
            credentials = decoder.encoded_credentials_bytes()
        invalid = None
        if (version >> 16) & 0xFF != PROTOCOL_MAJOR_VERSION:
            invalid = (
                f"invalid client version {semantic_version_text(version)}, "
                f"archive is {semantic_version_text(PROTOCOL_SEMANTIC_VERSION)}"
            )
        control_session_id = self._next_session_id
        self._next_session_id = (self._next_session_id + 1) & 0x7FFF_FFFF_FFFF_FFFF
        stream_id = decoder.response_stream_id
        transport = self.transport

        def add_publication() -> Any:
            uri = ChannelUri.parse(response_channel)
            term_length = uri.term_length
            if term_length is None:
                uri = uri.with_param("term-length", CONTROL_TERM_LENGTH)
            elif term_length > MAX_RESPONSE_TERM_LENGTH:
                raise ArchiveError(f"response channel term-length={term_length} > {MAX_RESPONSE_TERM_LENGTH}")
            return transport.add_exclusive_publication(uri.build(), stream_id)

        session = ControlSession(
            control_session_id=control_session_id,
            correlation_id=decoder.correlation_id,
            request_image_session_id=image_session_id,
            response_publication_factory=add_publication,
            proxy=self._proxy,
            authenticator=self.ctx.authenticator,
            invalid_version_message=invalid,
            connect_timeout_ns=self.ctx.connect_timeout_ns,
            liveness_interval_ns=self.ctx.session_liveness_check_interval_ns,
            now_ns=self.clock.nano_time(),
            epoch_ms=self.clock.epoch_ms,
        )
        self.ctx.authenticator.on_connect_request(control_session_id, credentials, self.clock.epoch_ms())
        self.control_sessions[control_session_id] = session

    def _on_close_session(self, decoder: Any, image_session_id: int) -> None:
        session = self.control_sessions.get(decoder.control_session_id)
        if session is None:
            self.counters.unknown_session_requests += 1
            return
        session.abort("close requested by the client")

    def _on_keep_alive(self, decoder: Any, image_session_id: int) -> None:
        if self._session_for(decoder) is None:
            return

    def _on_challenge_response(self, decoder: Any, image_session_id: int) -> None:
        session = self.control_sessions.get(decoder.control_session_id)
        if session is None:
            self.counters.unknown_session_requests += 1
            return
        session.on_challenge_response(decoder.correlation_id, decoder.encoded_credentials_bytes())

    def _on_request_image_gone(self, image: Image) -> None:
        self._assembler.free_session(image.session_id)
        for session in self.control_sessions.values():
            if session.request_image_session_id == image.session_id:
                session.abort("the client's request stream went away")

    def _close_control_session(self, session: ControlSession) -> None:
        self.control_sessions.pop(session.control_session_id, None)

    # ------------------------------------------------------------------ simple queries

    def _recording_or_error(
        self, session: ControlSession, correlation_id: int, recording_id: int
    ) -> RecordingDescriptor | None:
        descriptor = self._valid_recording(recording_id)
        if descriptor is None:
            session.send_error(
                correlation_id, f"unknown recording id: {recording_id}", ArchiveErrorCode.UNKNOWN_RECORDING
            )
        return descriptor

    def _valid_recording(self, recording_id: int) -> RecordingDescriptor | None:
        descriptor = self.catalog.recording(recording_id)
        if descriptor is None or descriptor.state != RecordingState.VALID:
            return None
        return descriptor

    def _on_archive_id(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is not None:
            session.send_ok(decoder.correlation_id, self.archive_id)

    def _answer_position(
        self, decoder: Any, position: Callable[[RecordingDescriptor, RecordingSession | None], int]
    ) -> None:
        """A position query: OK with ``position(descriptor, active recording session or None)``."""
        session = self._session_for(decoder)
        if session is None:
            return
        descriptor = self._recording_or_error(session, decoder.correlation_id, decoder.recording_id)
        if descriptor is not None:
            recording = self.recording_sessions.get(decoder.recording_id)
            session.send_ok(decoder.correlation_id, position(descriptor, recording))

    def _on_recording_position(self, decoder: Any, image_session_id: int) -> None:
        self._answer_position(
            decoder,
            lambda descriptor, recording: NULL_POSITION if recording is None else recording.recorded_position,
        )

    def _on_stop_position(self, decoder: Any, image_session_id: int) -> None:
        self._answer_position(decoder, lambda descriptor, recording: descriptor.stop_position)

    def _on_start_position(self, decoder: Any, image_session_id: int) -> None:
        self._answer_position(decoder, lambda descriptor, recording: descriptor.start_position)

    def _on_max_recorded_position(self, decoder: Any, image_session_id: int) -> None:
        self._answer_position(
            decoder,
            lambda descriptor, recording: (
                descriptor.stop_position if recording is None else recording.recorded_position
            ),
        )

    def _on_find_last_matching(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        if decoder.min_recording_id < 0:
            session.send_error(
                decoder.correlation_id,
                f"minRecordingId={decoder.min_recording_id} < 0",
                ArchiveErrorCode.UNKNOWN_RECORDING,
            )
            return
        recording_id = self.catalog.find_last(
            decoder.min_recording_id, decoder.session_id, decoder.stream_id, decoder.channel_str()
        )
        session.send_ok(decoder.correlation_id, recording_id)

    # ------------------------------------------------------------------ listings

    def _start_listing(self, session: ControlSession, correlation_id: int, entries: Any) -> None:
        if session.active_listing is not None:
            session.send_error(
                correlation_id, "active listing already in progress", ArchiveErrorCode.ACTIVE_LISTING
            )
            return
        listing = ListingSession(session, entries)
        session.active_listing = listing
        self._listings.append(listing)

    def _on_list_recordings(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        entries = descriptor_listing(
            session,
            decoder.correlation_id,
            decoder.from_recording_id,
            decoder.record_count,
            self._valid_recording,
        )
        self._start_listing(session, decoder.correlation_id, entries)

    def _on_list_recordings_for_uri(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        stream_id = decoder.stream_id
        fragment = decoder.channel_str()

        def matches(descriptor: RecordingDescriptor) -> bool:
            return descriptor.stream_id == stream_id and fragment in descriptor.stripped_channel

        entries = descriptor_listing(
            session,
            decoder.correlation_id,
            decoder.from_recording_id,
            decoder.record_count,
            self._valid_recording,
            matches,
        )
        self._start_listing(session, decoder.correlation_id, entries)

    def _on_list_recording(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        if session.active_listing is not None:
            session.send_error(
                decoder.correlation_id, "active listing already in progress", ArchiveErrorCode.ACTIVE_LISTING
            )
            return
        descriptor = self._valid_recording(decoder.recording_id)
        if descriptor is None:
            session.send_recording_unknown(decoder.correlation_id, decoder.recording_id)
        else:
            session.send_descriptor(decoder.correlation_id, descriptor)

    def _on_list_recording_subscriptions(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        subscriptions = [
            (entry.subscription_id, entry.stream_id, entry.stripped)
            for entry in self.recording_subscriptions.values()
        ]
        pseudo_index = decoder.pseudo_index
        count = decoder.subscription_count
        if session.active_listing is not None:
            session.send_error(
                decoder.correlation_id, "active listing already in progress", ArchiveErrorCode.ACTIVE_LISTING
            )
            return
        if pseudo_index < 0 or pseudo_index >= len(subscriptions) or count <= 0:
            session.send_subscription_unknown(decoder.correlation_id)
            return
        entries = subscription_listing(
            session,
            decoder.correlation_id,
            subscriptions,
            pseudo_index,
            count,
            decoder.apply_stream_id == BooleanType.TRUE,
            decoder.stream_id,
            decoder.channel_str(),
        )
        self._start_listing(session, decoder.correlation_id, entries)

    # ------------------------------------------------------------------ recording

    def _next_registration(self) -> int:
        self._next_registration_id += 1
        return self._next_registration_id

    def _recording_capacity_error(self, session: ControlSession, correlation_id: int) -> bool:
        limit = self.ctx.max_concurrent_recordings
        if len(self.recording_subscriptions) >= limit or len(self.recording_sessions) >= limit:
            session.send_error(
                correlation_id,
                f"max concurrent recordings reached at {limit}",
                ArchiveErrorCode.MAX_RECORDINGS,
            )
            return True
        return False

    def _add_recording_subscription(
        self,
        session: ControlSession,
        correlation_id: int,
        stream_id: int,
        source_location: Any,
        auto_stop: bool,
        channel: str,
        extend_recording_id: int | None,
    ) -> None:
        try:
            uri = ChannelUri.parse(channel)
        except TransportError as error:
            session.send_error(correlation_id, f"invalid channel: {error}")
            return
        key = recording_key(stream_id, uri)
        if key in self._subscription_by_key:
            session.send_error(
                correlation_id,
                f"recording exists for streamId={stream_id} channel={channel}",
                ArchiveErrorCode.ACTIVE_SUBSCRIPTION,
            )
            return
        stripped = stripped_channel(uri)
        subscribe = (
            SPY_PREFIX + stripped
            if source_location == SourceLocation.LOCAL and uri.media == "udp"
            else stripped
        )
        subscription_id = self._next_registration()
        try:
            subscription = self.transport.add_subscription(
                subscribe,
                stream_id,
                on_available_image=lambda image: self._tasks.append(
                    lambda: self._on_recording_image(subscription_id, image)
                ),
            )
        except (TransportError, OSError) as error:  # e.g. a port in use: the client hears why
            session.send_error(correlation_id, f"cannot subscribe to {subscribe}: {error}")
            return
        self.recording_subscriptions[subscription_id] = _RecordingSubscription(
            subscription_id=subscription_id,
            key=key,
            stream_id=stream_id,
            stripped=stripped,
            original=channel,
            subscription=subscription,
            control_session=session,
            correlation_id=correlation_id,
            auto_stop=auto_stop,
            extend_recording_id=extend_recording_id,
        )
        self._subscription_by_key[key] = subscription_id
        session.send_ok(correlation_id, subscription_id)

    def _on_start_recording(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None or self._recording_capacity_error(session, decoder.correlation_id):
            return
        auto_stop = getattr(decoder, "auto_stop", BooleanType.FALSE) == BooleanType.TRUE
        self._add_recording_subscription(
            session,
            decoder.correlation_id,
            decoder.stream_id,
            decoder.source_location,
            auto_stop,
            decoder.channel_str(),
            None,
        )

    def _on_extend_recording(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None or self._recording_capacity_error(session, decoder.correlation_id):
            return
        correlation_id = decoder.correlation_id
        recording_id = decoder.recording_id
        descriptor = self._recording_or_error(session, correlation_id, recording_id)
        if descriptor is None:
            return
        if decoder.stream_id != descriptor.stream_id:
            session.send_error(
                correlation_id,
                f"cannot extend recording {recording_id} with streamId={decoder.stream_id} "
                f"for existing streamId={descriptor.stream_id}",
                ArchiveErrorCode.UNKNOWN_RECORDING,
            )
            return
        if recording_id in self.recording_sessions:
            session.send_error(
                correlation_id,
                f"cannot extend active recording {recording_id}",
                ArchiveErrorCode.ACTIVE_RECORDING,
            )
            return
        auto_stop = getattr(decoder, "auto_stop", BooleanType.FALSE) == BooleanType.TRUE
        self._add_recording_subscription(
            session,
            correlation_id,
            decoder.stream_id,
            decoder.source_location,
            auto_stop,
            decoder.channel_str(),
            recording_id,
        )

    def _on_recording_image(self, subscription_id: int, image: Image) -> None:
        entry = self.recording_subscriptions.get(subscription_id)
        if entry is None or image.is_closed:
            return
        session = entry.control_session
        correlation_id = entry.correlation_id
        if len(self.recording_sessions) >= self.ctx.max_concurrent_recordings:
            session.send_error(
                correlation_id,
                f"max concurrent recordings reached at {self.ctx.max_concurrent_recordings}",
                ArchiveErrorCode.MAX_RECORDINGS,
            )
            return
        if entry.extend_recording_id is None:
            self._start_new_recording(entry, image)
        else:
            self._extend_recording(entry, image, entry.extend_recording_id)

    def _position_counter(self, recording_id: int, image: Image, stripped: str) -> Counter:
        label = (
            f"rec-pos: {recording_id} {image.session_id} {image.stream_id} {stripped} {image.source_identity}"
        )
        counter = self.transport.counters_manager.allocate(
            RECORDING_POSITION_TYPE_ID,
            label[:380],
            recording_position_key(recording_id, image.session_id, image.source_identity, self.archive_id),
        )
        counter.set(image.join_position)
        return counter

    def _start_new_recording(self, entry: _RecordingSubscription, image: Image) -> None:
        term_length = image.term_length
        segment_length = max(self.ctx.segment_file_length, term_length)
        start_position = image.join_position
        recording_id = self.catalog.add_recording(
            start_position=start_position,
            start_timestamp=self.clock.epoch_ms(),
            initial_term_id=image.initial_term_id,
            segment_file_length=segment_length,
            term_buffer_length=term_length,
            mtu_length=image.mtu,
            session_id=image.session_id,
            stream_id=image.stream_id,
            stripped_channel=entry.stripped,
            original_channel=entry.original,
            source_identity=image.source_identity,
            # controlSessionId and correlationId stay 0, as in Java's catalog: only an extension (or a
            # replication, which extends) writes the ids of the request that made it.
        )
        writer, error = self._open_writer(
            recording_id=recording_id,
            start_position=start_position,
            position=start_position,
            term_length=term_length,
            segment_length=segment_length,
            initial_term_id=image.initial_term_id,
        )
        self._add_recording_session(entry, image, recording_id, writer, RecordingSignal.START, error)

    def _extend_recording(self, entry: _RecordingSubscription, image: Image, recording_id: int) -> None:
        session = entry.control_session
        correlation_id = entry.correlation_id
        descriptor = self._valid_recording(recording_id)
        problem = None
        code = ArchiveErrorCode.INVALID_EXTENSION
        if descriptor is None:
            problem = f"unknown recording id: {recording_id}"
        elif recording_id in self.recording_sessions:
            problem = f"cannot extend active recording {recording_id}"
            code = ArchiveErrorCode.ACTIVE_RECORDING  # as Aeron's archive answers it
        elif image.join_position != descriptor.stop_position:
            problem = (
                f"cannot extend recording {recording_id} image.joinPosition={image.join_position} "
                f"!= rec.stopPosition={descriptor.stop_position}"
            )
        elif image.initial_term_id != descriptor.initial_term_id:
            problem = (
                f"cannot extend recording {recording_id} image.initialTermId={image.initial_term_id} "
                f"!= rec.initialTermId={descriptor.initial_term_id}"
            )
        elif image.term_length != descriptor.term_buffer_length:
            problem = (
                f"cannot extend recording {recording_id} image.termBufferLength={image.term_length} "
                f"!= rec.termBufferLength={descriptor.term_buffer_length}"
            )
        elif image.mtu != descriptor.mtu_length:
            problem = (
                f"cannot extend recording {recording_id} image.mtuLength={image.mtu} "
                f"!= rec.mtuLength={descriptor.mtu_length}"
            )
        if problem is not None or descriptor is None:
            session.send_error(correlation_id, problem or "", code)
            if entry.auto_stop:
                self._remove_recording_subscription(entry.subscription_id)
            return
        self.catalog.extend(
            recording_id,
            control_session_id=session.control_session_id,
            correlation_id=correlation_id,
            session_id=image.session_id,
        )
        writer, error = self._open_writer(
            recording_id=recording_id,
            start_position=descriptor.start_position,
            position=descriptor.stop_position,
            term_length=descriptor.term_buffer_length,
            segment_length=descriptor.segment_file_length,
            initial_term_id=descriptor.initial_term_id,
        )
        self._add_recording_session(entry, image, recording_id, writer, RecordingSignal.EXTEND, error)

    def _open_writer(
        self,
        *,
        recording_id: int,
        start_position: int,
        position: int,
        term_length: int,
        segment_length: int,
        initial_term_id: int,
    ) -> tuple[Any, Exception | None]:
        """The recording's writer, or a stand-in and the error when its segment file cannot be opened (a
        full or failing disk): the recording then stops at once with that error, as Aeron's does when its
        recorder cannot open the file -- the client sees START (or EXTEND), the ERROR, and STOP."""
        try:
            writer = RecordingWriter(
                self.ctx.storage,
                recording_id=recording_id,
                start_position=start_position,
                position=position,
                term_length=term_length,
                segment_length=segment_length,
                file_sync_level=self.ctx.file_sync_level,
                initial_term_id=initial_term_id,
            )
        except (StorageError, SegmentError) as error:
            return _UnopenedWriter(position), error
        return writer, None

    def _add_recording_session(
        self,
        entry: _RecordingSubscription,
        image: Image,
        recording_id: int,
        writer: Any,
        signal: RecordingSignal,
        error: Exception | None = None,
    ) -> None:
        counter = self._position_counter(recording_id, image, entry.stripped)
        recording = RecordingSession(
            recording_id=recording_id,
            correlation_id=entry.correlation_id,
            control_session=entry.control_session,
            subscription_id=entry.subscription_id,
            image=image,
            writer=writer,
            position_counter=counter,
            auto_stop=entry.auto_stop,
            block_length_limit=min(self.ctx.file_io_max_length, image.term_length),
        )
        entry.sessions += 1
        self.recording_sessions[recording_id] = recording
        entry.control_session.send_signal(
            entry.correlation_id, recording_id, entry.subscription_id, image.join_position, signal
        )
        if error is not None:
            recording.error = error
            recording.abort(f"recording {recording_id} failed: {error}")

    def _close_recording_session(self, recording: RecordingSession) -> None:
        position = recording.recorded_position
        self.recording_sessions.pop(recording.recording_id, None)
        try:
            recording.close()
        except StorageError:
            self.counters.recording_errors += 1
        if recording.error is not None:
            self.counters.recording_errors += 1
        self.catalog.update_stop(recording.recording_id, position, self.clock.epoch_ms())
        session = recording.control_session
        if recording.error is not None:
            full = isinstance(recording.error, OSError) and recording.error.errno == errno.ENOSPC
            code = ArchiveErrorCode.STORAGE_SPACE if full else ArchiveErrorCode.GENERIC
            session.send_error(recording.correlation_id, str(recording.error), code)
        session.send_signal(
            recording.correlation_id,
            recording.recording_id,
            recording.subscription_id,
            position,
            RecordingSignal.STOP,
        )
        entry = self.recording_subscriptions.get(recording.subscription_id)
        if entry is not None:
            entry.sessions -= 1
            if recording.auto_stop or (entry.extend_recording_id is not None and entry.auto_stop):
                self._remove_recording_subscription(entry.subscription_id)

    def _remove_recording_subscription(self, subscription_id: int) -> bool:
        entry = self.recording_subscriptions.pop(subscription_id, None)
        if entry is None:
            return False
        self._subscription_by_key.pop(entry.key, None)
        for recording in self.recording_sessions.values():
            if recording.subscription_id == subscription_id:
                recording.abort("stop recording")
        entry.subscription.close()
        return True

    def _on_stop_recording(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        channel = decoder.channel_str()
        try:
            key = recording_key(decoder.stream_id, ChannelUri.parse(channel))
        except TransportError as error:
            session.send_error(decoder.correlation_id, f"invalid channel: {error}")
            return
        subscription_id = self._subscription_by_key.get(key)
        if subscription_id is None:
            session.send_error(
                decoder.correlation_id,
                f"no recording found for streamId={decoder.stream_id} channel={channel}",
                ArchiveErrorCode.UNKNOWN_SUBSCRIPTION,
            )
            return
        self._remove_recording_subscription(subscription_id)
        session.send_ok(decoder.correlation_id)

    def _on_stop_recording_subscription(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        if self._remove_recording_subscription(decoder.subscription_id):
            session.send_ok(decoder.correlation_id)
        else:
            session.send_error(
                decoder.correlation_id,
                f"no recording subscription found for subscriptionId={decoder.subscription_id}",
                ArchiveErrorCode.UNKNOWN_SUBSCRIPTION,
            )

    def _on_stop_recording_by_identity(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        if self._recording_or_error(session, decoder.correlation_id, decoder.recording_id) is None:
            return
        found = 0
        recording = self.recording_sessions.get(decoder.recording_id)
        if recording is not None:
            recording.abort("stop recording by identity")
            entry = self.recording_subscriptions.get(recording.subscription_id)
            if entry is not None:
                found = 1
                if entry.sessions <= 1:
                    self._remove_recording_subscription(entry.subscription_id)
        session.send_ok(decoder.correlation_id, found)

    # ------------------------------------------------------------------ truncate and purge

    def _may_delete(
        self, session: ControlSession, correlation_id: int, descriptor: RecordingDescriptor, verb: str
    ) -> bool:
        """Truncate and purge delete data: not of a recording being replayed or still recording
        (ACTIVE_RECORDING, as Aeron answers both)."""
        recording_id = descriptor.recording_id
        if any(replay.recording_id == recording_id for replay in self.replay_sessions.values()):
            problem = f"cannot {verb} recording with active replay {recording_id}"
        elif descriptor.stop_position == NULL_POSITION or recording_id in self.recording_sessions:
            problem = f"cannot {verb} active recording {recording_id}"
        else:
            return True
        session.send_error(correlation_id, problem, ArchiveErrorCode.ACTIVE_RECORDING)
        return False

    def _on_truncate_recording(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        correlation_id = decoder.correlation_id
        recording_id = decoder.recording_id
        position = decoder.position
        descriptor = self._recording_or_error(session, correlation_id, recording_id)
        if descriptor is None:
            return
        if not self._may_delete(session, correlation_id, descriptor, "truncate"):
            return
        start, stop = descriptor.start_position, descriptor.stop_position
        if position < start or position > stop or position & (FRAME_ALIGNMENT - 1):
            session.send_error(
                correlation_id,
                f"invalid position {position}: start={start} stop={stop} alignment={FRAME_ALIGNMENT}",
                ArchiveErrorCode.INVALID_POSITION,
            )
            return
        self.catalog.update_stop(recording_id, position, descriptor.stop_timestamp)
        try:
            changes = truncate_recording_files(
                self.ctx.storage,
                recording_id=recording_id,
                start_position=start,
                stop_position=stop,
                position=position,
                term_length=descriptor.term_buffer_length,
                segment_length=descriptor.segment_file_length,
            )
        except (StorageError, ArchiveError) as error:
            session.send_error(correlation_id, f"truncate of recording {recording_id} failed: {error}")
            return
        deleted = sum(1 for change in changes if change.startswith("deleted"))
        session.send_ok(correlation_id, deleted)
        session.send_signal(correlation_id, recording_id, NULL_VALUE, NULL_VALUE, RecordingSignal.DELETE)

    def _on_purge_recording(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        correlation_id = decoder.correlation_id
        recording_id = decoder.recording_id
        descriptor = self._recording_or_error(session, correlation_id, recording_id)
        if descriptor is None:
            return
        if not self._may_delete(session, correlation_id, descriptor, "purge"):
            return
        self.catalog.change_state(recording_id, RecordingState.DELETED)
        try:
            deleted = len(delete_recording_files(self.ctx.storage, recording_id))
        except StorageError as error:
            session.send_error(correlation_id, f"purge of recording {recording_id} failed: {error}")
            return
        session.send_ok(correlation_id, deleted)
        session.send_signal(correlation_id, recording_id, NULL_VALUE, NULL_VALUE, RecordingSignal.DELETE)

    # ------------------------------------------------------------------ replay

    def _on_replay(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        limit_counter: Counter | None = None
        if decoder.TEMPLATE_ID == codecs.BoundedReplayRequestDecoder.TEMPLATE_ID:
            limit_counter = self.transport.counters_manager.counter(decoder.limit_counter_id)
            if limit_counter is None:
                session.send_error(
                    decoder.correlation_id,
                    f"unable to find replay limit counter id={decoder.limit_counter_id}",
                    ArchiveErrorCode.GENERIC,
                )
                return
        self._start_replay(
            session,
            correlation_id=decoder.correlation_id,
            recording_id=decoder.recording_id,
            position=decoder.position,
            length=decoder.length,
            replay_stream_id=decoder.replay_stream_id,
            file_io_max_length=decoder.file_io_max_length,
            channel=decoder.replay_channel_str(),
            limit_counter=limit_counter,
        )

    def start_replay_for(
        self,
        session: ControlSession,
        **kwargs: Any,
    ) -> ReplaySession | None:
        """Start a replay as a control request would (replication uses this for local sources)."""
        return self._start_replay(session, **kwargs)

    def _start_replay(
        self,
        session: ControlSession,
        *,
        correlation_id: int,
        recording_id: int,
        position: int,
        length: int,
        replay_stream_id: int,
        file_io_max_length: int,
        channel: str,
        limit_counter: Counter | None,
    ) -> ReplaySession | None:
        if len(self.replay_sessions) >= self.ctx.max_concurrent_replays:
            session.send_error(
                correlation_id,
                f"max concurrent replays reached {self.ctx.max_concurrent_replays}",
                ArchiveErrorCode.MAX_REPLAYS,
            )
            return None
        descriptor = self._recording_or_error(session, correlation_id, recording_id)
        if descriptor is None:
            return None
        live = self.recording_sessions.get(recording_id)
        counter = (
            limit_counter if limit_counter is not None else (None if live is None else live.position_counter)
        )
        limit_position = NULL_POSITION if counter is None else counter.get()
        start = descriptor.start_position
        replay_position = start
        if position != NULL_POSITION:
            if position & (FRAME_ALIGNMENT - 1):
                session.send_error(
                    correlation_id,
                    f"requested replay start position={position} is not a multiple of FRAME_ALIGNMENT "
                    f"({FRAME_ALIGNMENT}) for recording {recording_id}",
                )
                return None
            if position < start:
                session.send_error(
                    correlation_id,
                    f"requested replay start position={position} is less than recording start "
                    f"position={start} "
                    f"for recording {recording_id}",
                    ArchiveErrorCode.INVALID_POSITION,
                )
                return None
            stop = descriptor.stop_position
            if stop != NULL_POSITION and position >= stop:
                session.send_error(
                    correlation_id,
                    f"requested replay start position={position} must be less than highest recorded "
                    f"position={stop} for recording {recording_id}",
                    ArchiveErrorCode.INVALID_POSITION,
                )
                return None
            replay_position = position
        if 0 < file_io_max_length < descriptor.mtu_length:
            session.send_error(
                correlation_id, f"fileIoMaxLength={file_io_max_length} < mtuLength={descriptor.mtu_length}"
            )
            return None
        if limit_position != NULL_POSITION:
            if replay_position > limit_position:
                session.send_error(
                    correlation_id,
                    f"requested replay start position={replay_position} must be less than the limit "
                    f"position={limit_position} for recording {recording_id}",
                    ArchiveErrorCode.INVALID_POSITION,
                )
                return None
            stop_position = limit_position
            max_length = REPLAY_ALL_AND_FOLLOW - replay_position
        else:
            stop_position = descriptor.stop_position
            max_length = stop_position - replay_position
        if length in (REPLAY_ALL_AND_FOLLOW, NULL_VALUE):
            replay_length = max_length
        elif length == REPLAY_ALL_AND_STOP:
            replay_length = stop_position - replay_position
            if replay_length == 0:
                session.send_error(
                    correlation_id,
                    "when replaying and stopping the replay length must be non-zero, "
                    f"recordingId={recording_id}",
                    ArchiveErrorCode.EMPTY_RECORDING,
                )
                return None
        else:
            replay_length = min(length, max_length)
        if replay_length < 0:
            session.send_error(
                correlation_id,
                f"replay length must be positive: replayLength={replay_length}, length={length}, "
                f"stopPosition={stop_position}, replayPosition={replay_position} "
                f"for recording {recording_id}",
            )
            return None
        try:
            uri = ChannelUri.parse(channel)
            publication = self.transport.add_exclusive_publication(
                replay_channel(
                    uri,
                    replay_position=replay_position,
                    initial_term_id=descriptor.initial_term_id,
                    term_length=descriptor.term_buffer_length,
                    mtu=descriptor.mtu_length,
                    linger_ns=self.ctx.replay_linger_timeout_ns,
                ),
                replay_stream_id,
            )
        except (TransportError, OSError) as error:
            session.send_error(correlation_id, f"failed to process replayChannel - {error}")
            return None
        replay_session_id = (self._replay_id << 32) | (publication.session_id & 0xFFFF_FFFF)
        self._replay_id += 1
        reader = RecordingReader.of(
            self.ctx.storage, descriptor, stop_position=None, from_position=replay_position
        )
        io_length = (
            self.ctx.file_io_max_length
            if file_io_max_length <= 0
            else min(file_io_max_length, self.ctx.file_io_max_length)
        )
        replay = ReplaySession(
            replay_session_id=replay_session_id,
            recording_id=recording_id,
            correlation_id=correlation_id,
            control_session=session,
            publication=publication,
            reader=reader,
            replay_position=replay_position,
            replay_length=replay_length,
            limit_position=self._replay_limit(recording_id, limit_counter),
            file_io_max_length=max(io_length, descriptor.mtu_length),
            connect_timeout_ns=self.ctx.connect_timeout_ns,
            now_ns=self.clock.nano_time(),
        )
        self.replay_sessions[replay_session_id] = replay
        session.send_ok(correlation_id, replay_session_id)
        return replay

    def _replay_limit(
        self, recording_id: int, limit_counter: Counter | None
    ) -> Callable[[], tuple[int, bool]]:
        """How far a replay of ``recording_id`` may read now, and whether that can still grow."""

        def limit() -> tuple[int, bool]:
            if limit_counter is not None:
                if limit_counter.is_closed:
                    descriptor = self.catalog.recording(recording_id)
                    return (0 if descriptor is None else max(descriptor.stop_position, 0)), False
                return limit_counter.get(), True
            live = self.recording_sessions.get(recording_id)
            if live is not None:
                return live.recorded_position, True
            descriptor = self.catalog.recording(recording_id)
            if descriptor is None or descriptor.state != RecordingState.VALID:
                return 0, False
            return descriptor.stop_position, False

        return limit

    def _on_stop_replay(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        replay = self.replay_sessions.get(decoder.replay_session_id)
        if replay is not None:
            replay.abort("stop replay")
        session.send_ok(decoder.correlation_id)

    def _on_stop_all_replays(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        for replay in self.replay_sessions.values():
            if decoder.recording_id == NULL_VALUE or replay.recording_id == decoder.recording_id:
                replay.abort("stop all replays")
        session.send_ok(decoder.correlation_id)

    def _close_replay_session(self, replay: ReplaySession) -> None:
        self.replay_sessions.pop(replay.replay_session_id, None)
        if replay.error_code is not None:
            self.counters.replay_errors += 1
            replay.control_session.send_error(replay.correlation_id, replay.reason, replay.error_code)

    # ------------------------------------------------------------------ detached segments

    def _detach_problem(self, descriptor: RecordingDescriptor, position: int) -> str | None:
        """Why the recording's start may not move to ``position`` (Aeron's rules), or ``None``: a segment
        base, after the first segment, not past the segment holding the recorded end (the segment being
        written stays), and not past the segment a replay of the recording is reading."""
        start = descriptor.start_position
        term_length, segment_length = descriptor.term_buffer_length, descriptor.segment_file_length
        if position < start or position != segment_file_base_position(
            start, position, term_length, segment_length
        ):
            return f"invalid segment start: newStartPosition={position}"
        lower = segment_file_base_position(start, start, term_length, segment_length) + segment_length
        if position < lower:
            return f"invalid detach: newStartPosition={position} lowerBound={lower}"
        recording = self.recording_sessions.get(descriptor.recording_id)
        end = descriptor.stop_position if recording is None else recording.recorded_position
        upper = segment_file_base_position(start, max(end, start), term_length, segment_length)
        if position > upper:
            return f"invalid detach: in use, newStartPosition={position} upperBound={upper}"
        replays = [
            segment_file_base_position(start, max(replay.position, start), term_length, segment_length)
            for replay in self.replay_sessions.values()
            if replay.recording_id == descriptor.recording_id
        ]
        if replays and position > min(replays):
            return (
                f"invalid detach: replay in progress, newStartPosition={position} upperBound={min(replays)}"
            )
        return None

    def _detach(self, decoder: Any) -> tuple[ControlSession, RecordingDescriptor] | None:
        """Detach and purge: check the request, move the recording's start; the session and the recording
        as they were, or ``None`` once an error has been answered."""
        session = self._session_for(decoder)
        if session is None:
            return None
        correlation_id = decoder.correlation_id
        descriptor = self._recording_or_error(session, correlation_id, decoder.recording_id)
        if descriptor is None:
            return None
        problem = self._detach_problem(descriptor, decoder.new_start_position)
        if problem is not None:
            session.send_error(correlation_id, problem)
            return None
        self.catalog.update_start_position(descriptor.recording_id, decoder.new_start_position)
        return session, descriptor

    def _delete_detached(self, session: ControlSession, correlation_id: int, recording_id: int) -> None:
        descriptor = self.catalog.recording(recording_id)
        assert descriptor is not None
        try:
            deleted = delete_detached_segments(
                self.ctx.storage,
                recording_id,
                descriptor.start_position,
                descriptor.term_buffer_length,
                descriptor.segment_file_length,
            )
        except StorageError as error:
            session.send_error(
                correlation_id, f"delete of detached segments of recording {recording_id} failed: {error}"
            )
            return
        session.send_ok(correlation_id, len(deleted))
        if deleted:
            session.send_signal(correlation_id, recording_id, NULL_VALUE, NULL_VALUE, RecordingSignal.DELETE)

    def _on_detach_segments(self, decoder: Any, image_session_id: int) -> None:
        detached = self._detach(decoder)
        if detached is not None:
            detached[0].send_ok(decoder.correlation_id, 0)

    def _on_purge_segments(self, decoder: Any, image_session_id: int) -> None:
        detached = self._detach(decoder)
        if detached is not None:
            self._delete_detached(detached[0], decoder.correlation_id, decoder.recording_id)

    def _on_delete_detached_segments(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        if self._recording_or_error(session, decoder.correlation_id, decoder.recording_id) is not None:
            self._delete_detached(session, decoder.correlation_id, decoder.recording_id)

    def _on_attach_segments(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        correlation_id = decoder.correlation_id
        descriptor = self._recording_or_error(session, correlation_id, decoder.recording_id)
        if descriptor is None:
            return
        try:
            start, attached = attachable_start(
                self.ctx.storage,
                descriptor.recording_id,
                descriptor.start_position,
                descriptor.term_buffer_length,
                descriptor.segment_file_length,
                descriptor.initial_term_id,
                descriptor.stream_id,
            )
        except (StorageError, ArchiveError) as error:
            session.send_error(
                correlation_id, f"attach of segments of recording {descriptor.recording_id} failed: {error}"
            )
            return
        if start != descriptor.start_position:
            self.catalog.update_start_position(descriptor.recording_id, start)
        session.send_ok(correlation_id, attached)

    # ------------------------------------------------------------------ replication

    def _on_replicate(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        from cluster.archive.replication import start_replication

        start_replication(self, session, decoder)

    def _on_stop_replication(self, decoder: Any, image_session_id: int) -> None:
        session = self._session_for(decoder)
        if session is None:
            return
        replication = self.replications.pop(decoder.replication_id, None)
        if replication is None:
            session.send_error(
                decoder.correlation_id,
                f"unknown replication id {decoder.replication_id}",
                ArchiveErrorCode.UNKNOWN_REPLICATION,
            )
            return
        replication.abort("stop replication")
        replication.do_work(self.clock.nano_time())
        session.send_ok(decoder.correlation_id)

    def next_session_id(self) -> int:
        value = self._next_session_id
        self._next_session_id = (value + 1) & 0x7FFF_FFFF_FFFF_FFFF
        return value

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop every session in order, record stop positions, close the files."""
        if self.is_closed:
            return
        for replication in list(self.replications.values()):
            replication.abort("archive closing")
            replication.do_work(self.clock.nano_time())
        self.replications.clear()
        for replay in list(self.replay_sessions.values()):
            replay.abort("archive closing")
            replay.close()
        self.replay_sessions.clear()
        for recording in list(self.recording_sessions.values()):
            recording.abort("archive closing")
            self._close_recording_session(recording)
        for subscription_id in list(self.recording_subscriptions):
            self._remove_recording_subscription(subscription_id)
        now_ns = self.clock.nano_time()
        for session in list(self.control_sessions.values()):
            session.abort("archive closing")
            session.do_work(now_ns)
        self.control_sessions.clear()
        for subscription in self._control_subscriptions:
            subscription.close()
        self._control_subscriptions.clear()
        self._close_files()

    def _close_files(self) -> None:
        self.is_closed = True
        try:
            self.catalog.close()
        finally:
            self.mark_file.close()


def _request_handlers(archive: Archive) -> dict[int, Callable[[Any, int], None]]:
    c = codecs
    return {
        c.ConnectRequestDecoder.TEMPLATE_ID: archive._on_connect,
        c.AuthConnectRequestDecoder.TEMPLATE_ID: archive._on_connect,
        c.CloseSessionRequestDecoder.TEMPLATE_ID: archive._on_close_session,
        c.KeepAliveRequestDecoder.TEMPLATE_ID: archive._on_keep_alive,
        c.ChallengeResponseDecoder.TEMPLATE_ID: archive._on_challenge_response,
        c.StartRecordingRequestDecoder.TEMPLATE_ID: archive._on_start_recording,
        c.StartRecordingRequest2Decoder.TEMPLATE_ID: archive._on_start_recording,
        c.ExtendRecordingRequestDecoder.TEMPLATE_ID: archive._on_extend_recording,
        c.ExtendRecordingRequest2Decoder.TEMPLATE_ID: archive._on_extend_recording,
        c.StopRecordingRequestDecoder.TEMPLATE_ID: archive._on_stop_recording,
        c.StopRecordingSubscriptionRequestDecoder.TEMPLATE_ID: archive._on_stop_recording_subscription,
        c.StopRecordingByIdentityRequestDecoder.TEMPLATE_ID: archive._on_stop_recording_by_identity,
        c.ReplayRequestDecoder.TEMPLATE_ID: archive._on_replay,
        c.BoundedReplayRequestDecoder.TEMPLATE_ID: archive._on_replay,
        c.StopReplayRequestDecoder.TEMPLATE_ID: archive._on_stop_replay,
        c.StopAllReplaysRequestDecoder.TEMPLATE_ID: archive._on_stop_all_replays,
        c.ListRecordingsRequestDecoder.TEMPLATE_ID: archive._on_list_recordings,
        c.ListRecordingsForUriRequestDecoder.TEMPLATE_ID: archive._on_list_recordings_for_uri,
        c.ListRecordingRequestDecoder.TEMPLATE_ID: archive._on_list_recording,
        c.ListRecordingSubscriptionsRequestDecoder.TEMPLATE_ID: archive._on_list_recording_subscriptions,
        c.RecordingPositionRequestDecoder.TEMPLATE_ID: archive._on_recording_position,
        c.StopPositionRequestDecoder.TEMPLATE_ID: archive._on_stop_position,
        c.StartPositionRequestDecoder.TEMPLATE_ID: archive._on_start_position,
        c.MaxRecordedPositionRequestDecoder.TEMPLATE_ID: archive._on_max_recorded_position,
        c.ArchiveIdRequestDecoder.TEMPLATE_ID: archive._on_archive_id,
        c.FindLastMatchingRecordingRequestDecoder.TEMPLATE_ID: archive._on_find_last_matching,
        c.TruncateRecordingRequestDecoder.TEMPLATE_ID: archive._on_truncate_recording,
        c.DetachSegmentsRequestDecoder.TEMPLATE_ID: archive._on_detach_segments,
        c.DeleteDetachedSegmentsRequestDecoder.TEMPLATE_ID: archive._on_delete_detached_segments,
        c.PurgeSegmentsRequestDecoder.TEMPLATE_ID: archive._on_purge_segments,
        c.AttachSegmentsRequestDecoder.TEMPLATE_ID: archive._on_attach_segments,
        c.PurgeRecordingRequestDecoder.TEMPLATE_ID: archive._on_purge_recording,
        c.ReplicateRequestDecoder.TEMPLATE_ID: archive._on_replicate,
        c.TaggedReplicateRequestDecoder.TEMPLATE_ID: archive._on_replicate,
        c.ReplicateRequest2Decoder.TEMPLATE_ID: archive._on_replicate,
        c.StopReplicationRequestDecoder.TEMPLATE_ID: archive._on_stop_replication,
    }
