"""Replication: this archive copies a recording from another archive by asking it for a replay.

Theory of operation
-------------------
A ``ReplicateRequest`` (any of its three versions) names a source archive (its control channel and
stream) and a source recording. The destination archive -- this one -- becomes a client of the source,
exactly as any archive client would, and walks these states::

    CONNECT            add a response subscription on the replication channel and a request
                       publication to the source, as any client does (``open_control_channels``);
                       AuthConnectRequest; wait for the OK
    ARCHIVE_ID         ArchiveIdRequest, then a KeepAliveRequest: the sequence of Aeron's client
    DESCRIBE           ListRecordingRequest for the source recording; wait for its descriptor
    EXTEND             create the destination recording (a copy of the source's descriptor, empty,
                       stopped at the source's start) or check the existing one matches; subscribe
                       on the replication channel to record the replay as an extension of it
                       (signals REPLICATE, then EXTEND when the replay image arrives)
    REPLAY             ReplayRequest to the source, into that subscription, from where the
                       destination stops, with the source recording's session id on the channel
    REPLICATE          record; when the destination reaches the target position (the stop position
                       asked for, or the source's stop position) signal SYNC, close the source
                       session, signal REPLICATE_END and stop the recording (STOP)
    DONE

Every signal carries the replication id as its correlation id, so the client that asked can tell its
replication's signals apart. A failure in any state (the source does not answer in time, refuses, or
the replay image goes before the target) sends an ERROR response with the replication id and ends the
replication; the destination recording keeps what was recorded. Following a live source recording
(no stop position while the source is still recording) goes on until ``StopReplicationRequest``.

**Merging with the live stream.** With a *live destination* (a channel on which this archive can
receive the source recording's live stream, e.g. as one destination of the publisher's multi-destination
channel), the recording subscription is a multi-destination subscription (``control-mode=manual``,
filtered on the source recording's session id) and the replay goes to one of its destinations, the
replication channel's endpoint, following the source recording (no length, ``linger=0``, ``eos=false``).
While recording, the replication keeps asking the source how far it has recorded. Once the recorded
position is within ``min(term_length / 4, 32 MiB)`` of that, the live destination is added to the same
subscription: the live stream's frames go into the same image, at their positions, and fill it where the
replay has not yet been (``docs/transport.md``, "Multi-destination subscriptions"). When the recorded
position has reached the source's recorded position and the image has heard from both destinations, the
replay is stopped, its destination removed, and the signals are MERGE (with the position) and
REPLICATE_END; the recording goes on from the live destination as a live recording of this archive,
until the live stream ends or it is stopped. This is Aeron's sequence (its replication session's CATCHUP
and ATTEMPT_LIVE_JOIN).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from cluster.archive.client import (
    ArchiveProxy,
    ControlResponse,
    ControlResponsePoller,
    _Challenge,
    _Listed,
    open_control_channels,
)
from cluster.archive.errors import ArchiveError
from cluster.archive.protocol import (
    NULL_LENGTH,
    NULL_POSITION,
    NULL_VALUE,
    PROTOCOL_SEMANTIC_VERSION,
    ArchiveErrorCode,
)
from cluster.transport.errors import TransportError
from cluster.transport.media import Address, format_address
from cluster.transport.uri import ChannelParams, ChannelUri
from codegen.runtime.errors import CodecError
from generated import aeron_archive_codecs as codecs
from generated.aeron_archive_codecs import ControlResponseCode, RecordingSignal, SourceLocation

if TYPE_CHECKING:
    from cluster.archive.archive import Archive
    from cluster.archive.control_session import ControlSession

__all__ = ["ReplicationSession", "ReplicationState", "start_replication"]

LIVE_ADD_MAX_WINDOW = 32 * 1024 * 1024  # the live destination is added this close (or term_length / 4)


class ReplicationState(enum.IntEnum):
    CONNECT = 0
    ARCHIVE_ID = 1
    DESCRIBE = 2
    EXTEND = 3
    REPLAY = 4
    REPLICATE = 5
    DONE = 6


def start_replication(archive: Archive, session: ControlSession, decoder: Any) -> None:
    """Handle a replicate request: check it, answer with the replication id, start the session."""
    template = decoder.TEMPLATE_ID
    correlation_id = decoder.correlation_id
    dst_recording_id = decoder.dst_recording_id
    src_control_channel = decoder.src_control_channel_str()
    live_destination = decoder.live_destination_str()
    replication_channel = ""  # the two older versions have none: the archive's own is used
    credentials = b""
    src_response_channel = ""
    stop_position = NULL_POSITION
    file_io_max_length = NULL_VALUE
    if template == codecs.ReplicateRequest2Decoder.TEMPLATE_ID:
        replication_channel = decoder.replication_channel_str()
        credentials = decoder.encoded_credentials_bytes()
        src_response_channel = decoder.src_response_channel_str()
        stop_position = decoder.stop_position
        file_io_max_length = decoder.file_io_max_length
    if live_destination and stop_position != NULL_POSITION:
        session.send_error(
            correlation_id,
            f"a replication that merges with a live destination cannot also stop at {stop_position}",
        )
        return
    dst = None
    if dst_recording_id != NULL_VALUE:
        dst = archive._valid_recording(dst_recording_id)
        if dst is None:
            session.send_error(
                correlation_id,
                f"unknown destination recording id {dst_recording_id}",
                ArchiveErrorCode.UNKNOWN_RECORDING,
            )
            return
        if dst.stop_position == NULL_POSITION or dst_recording_id in archive.recording_sessions:
            session.send_error(
                correlation_id,
                f"cannot replicate to active recording {dst_recording_id}",
                ArchiveErrorCode.ACTIVE_RECORDING,
            )
            return
    replication_id = archive.next_session_id()
    replication = ReplicationSession(
        archive,
        session,
        replication_id=replication_id,
        src_recording_id=decoder.src_recording_id,
        dst_recording_id=dst_recording_id,
        stop_position=stop_position,
        src_control_channel=src_control_channel,
        src_control_stream_id=decoder.src_control_stream_id,
        replication_channel=replication_channel or archive.ctx.replication_channel,
        src_response_channel=src_response_channel,
        credentials=credentials,
        file_io_max_length=file_io_max_length,
        live_destination=live_destination,
    )
    archive.replications[replication_id] = replication
    session.send_ok(correlation_id, replication_id)


class ReplicationSession:
    def __init__(
        self,
        archive: Archive,
        control_session: ControlSession,
        *,
        replication_id: int,
        src_recording_id: int,
        dst_recording_id: int,
        stop_position: int,
        src_control_channel: str,
        src_control_stream_id: int,
        replication_channel: str,
        src_response_channel: str,
        credentials: bytes,
        file_io_max_length: int,
        live_destination: str = "",
    ) -> None:
        self.archive = archive
        self.control_session = control_session
        self.replication_id = replication_id
        self.src_recording_id = src_recording_id
        self.dst_recording_id = dst_recording_id
        self.stop_position = stop_position
        self.src_control_channel = src_control_channel
        self.src_control_stream_id = src_control_stream_id
        self.replication_channel = replication_channel
        self.src_response_channel = src_response_channel
        self.credentials = credentials
        self.file_io_max_length = file_io_max_length
        self.state = ReplicationState.CONNECT
        self.reason = ""
        self._proxy: ArchiveProxy | None = None
        self._poller: ControlResponsePoller | None = None
        self._src_control_session_id = NULL_VALUE
        self._correlation_id = 0
        self._awaiting = NULL_VALUE
        self._deadline_ns = archive.clock.nano_time() + archive.ctx.connect_timeout_ns
        self._src_descriptor: Any = None
        self._subscription_id = NULL_VALUE
        self._target_position = NULL_POSITION
        self._recording_seen = False
        self._response_channel = ""
        self.live_destination = live_destination
        self._replay_destination = ""  # with a live destination: the replay's, on the recording subscription
        self._live_added = False
        self._src_recording_position = NULL_POSITION  # the source's recorded position, last heard
        self._src_replay_session_id = NULL_VALUE
        self.src_archive_id = NULL_VALUE

    @property
    def is_done(self) -> bool:
        return self.state == ReplicationState.DONE

    # ------------------------------------------------------------------ plumbing

    def _next_correlation(self) -> int:
        self._correlation_id += 1
        return self._correlation_id

    def _signal(
        self, recording_id: int, subscription_id: int, position: int, signal: RecordingSignal
    ) -> None:
        self.control_session.send_signal(self.replication_id, recording_id, subscription_id, position, signal)

    def _fail(self, message: str, code: ArchiveErrorCode = ArchiveErrorCode.GENERIC) -> None:
        if self.state == ReplicationState.DONE:
            return
        self.control_session.send_error(self.replication_id, message, code)
        self._finish(message, stop_recording=True)

    def abort(self, reason: str) -> None:
        if self.state != ReplicationState.DONE:
            self._finish(reason, stop_recording=True)

    def _finish(self, reason: str, *, stop_recording: bool) -> None:
        self.reason = reason
        self.state = ReplicationState.DONE
        proxy = self._proxy
        if proxy is not None:
            if self._src_control_session_id != NULL_VALUE:
                proxy.send(codecs.CloseSessionRequestEncoder, control_session_id=self._src_control_session_id)
            proxy.publication.close()
        if self._poller is not None:
            self._poller.subscription.close()
        if stop_recording and self._subscription_id != NULL_VALUE:
            self.archive._remove_recording_subscription(self._subscription_id)

    def _responses(self) -> list[Any]:
        assert self._poller is not None
        self._poller.poll()
        return self._poller.take()

    def _timed_out(self, now_ns: int, what: str) -> bool:
        if now_ns >= self._deadline_ns:
            self._fail(
                f"replication {self.replication_id}: {what}", ArchiveErrorCode.REPLICATION_CONNECTION_FAILURE
            )
            return True
        return False

    def _send(self, encoder_type: Any, **fields: Any) -> int:
        assert self._proxy is not None
        correlation_id = self._next_correlation()
        if not self._proxy.send(
            encoder_type,
            control_session_id=self._src_control_session_id,
            correlation_id=correlation_id,
            **fields,
        ):
            self._fail(
                f"replication {self.replication_id}: the source archive's control stream refused a request"
            )
            return NULL_VALUE
        self._awaiting = correlation_id
        self._deadline_ns = self.archive.clock.nano_time() + self.archive.ctx.connect_timeout_ns * 2
        return correlation_id

    # ------------------------------------------------------------------ states

    def do_work(self, now_ns: int) -> int:
        if self.state == ReplicationState.DONE:
            return 0
        try:
            return _WORK[self.state](self, now_ns)
        except (CodecError, TransportError, OSError, ArchiveError) as error:
            self._fail(f"replication {self.replication_id} failed: {error}")
            return 1

    def _work_connect(self, now_ns: int) -> int:
        transport = self.archive.transport
        if self._proxy is None:
            publication, subscription, self._response_channel = open_control_channels(
                transport,
                control_request_channel=self.src_control_channel,
                control_request_stream_id=self.src_control_stream_id,
                control_response_channel=self.src_response_channel or self.replication_channel,
                control_response_stream_id=self.archive.ctx.control_response_stream_id,
            )
            self._proxy = ArchiveProxy(publication)
            self._poller = ControlResponsePoller(subscription)
            return 1
        if self._awaiting == NULL_VALUE:
            if not self._proxy.publication.is_connected:
                return (
                    1
                    if self._timed_out(now_ns, "the source archive's control channel did not connect")
                    else 0
                )
            correlation_id = self._next_correlation()
            sent = self._proxy.send(
                codecs.AuthConnectRequestEncoder,
                correlation_id=correlation_id,
                response_stream_id=self.archive.ctx.control_response_stream_id,
                version=PROTOCOL_SEMANTIC_VERSION,
                response_channel=self._response_channel,
                encoded_credentials=self.credentials,
            )
            if sent:
                self._awaiting = correlation_id
                self._deadline_ns = now_ns + self.archive.ctx.connect_timeout_ns * 2
            return 1
        for message in self._responses():
            if isinstance(message, _Challenge) and message.correlation_id == self._awaiting:
                self._src_control_session_id = message.control_session_id
                assert self._proxy is not None
                self._proxy.send(
                    codecs.ChallengeResponseEncoder,
                    control_session_id=message.control_session_id,
                    correlation_id=self._awaiting,
                    encoded_credentials=self.credentials,
                )
            elif isinstance(message, ControlResponse) and message.correlation_id == self._awaiting:
                if message.code != ControlResponseCode.OK:
                    self._fail(
                        f"replication {self.replication_id}: the source archive refused the connection: "
                        f"{message.error_message}",
                        ArchiveErrorCode.REPLICATION_CONNECTION_FAILURE,
                    )
                    return 1
                self._src_control_session_id = message.control_session_id
                assert self._poller is not None
                self._poller.control_session_id = message.control_session_id
                # then as Aeron's client: the archive id, a keep-alive, and only then the real requests
                self.state = ReplicationState.ARCHIVE_ID
                self._send(codecs.ArchiveIdRequestEncoder)
                return 1
        return 1 if self._timed_out(now_ns, "no connect response from the source archive") else 0

    def _work_archive_id(self, now_ns: int) -> int:
        for message in self._responses():
            if isinstance(message, ControlResponse) and message.correlation_id == self._awaiting:
                if message.code != ControlResponseCode.OK:
                    self._fail(f"the source archive refused the archive id request: {message.error_message}")
                    return 1
                self.src_archive_id = message.relevant_id
                assert self._proxy is not None
                self._proxy.send(
                    codecs.KeepAliveRequestEncoder,
                    control_session_id=self._src_control_session_id,
                    correlation_id=NULL_VALUE,
                )
                self.state = ReplicationState.DESCRIBE
                self._send(codecs.ListRecordingRequestEncoder, recording_id=self.src_recording_id)
                return 1
        return 1 if self._timed_out(now_ns, "no archive id from the source archive") else 0

    def _work_describe(self, now_ns: int) -> int:
        for message in self._responses():
            if isinstance(message, _Listed) and message.correlation_id == self._awaiting:
                self._src_descriptor = message.descriptor
                self.state = ReplicationState.EXTEND
                return 1
            if isinstance(message, ControlResponse) and message.correlation_id == self._awaiting:
                self._fail(
                    f"unknown src recording id {self.src_recording_id}"
                    if message.code == ControlResponseCode.RECORDING_UNKNOWN
                    else f"listing the source recording failed: {message.error_message}",
                    ArchiveErrorCode.UNKNOWN_RECORDING,
                )
                return 1
        return 1 if self._timed_out(now_ns, "no descriptor from the source archive") else 0

    def _work_extend(self, now_ns: int) -> int:
        archive = self.archive
        src = self._src_descriptor
        if self.dst_recording_id == NULL_VALUE:
            self.dst_recording_id = archive.catalog.add_recording(
                start_position=src.start_position,
                start_timestamp=src.start_timestamp,
                initial_term_id=src.initial_term_id,
                segment_file_length=src.segment_file_length,
                term_buffer_length=src.term_buffer_length,
                mtu_length=src.mtu_length,
                session_id=src.session_id,
                stream_id=src.stream_id,
                stripped_channel=src.stripped_channel,
                original_channel=src.original_channel,
                source_identity=src.source_identity,
                control_session_id=self.control_session.control_session_id,
                correlation_id=self.replication_id,
                stop_position=src.start_position,
                stop_timestamp=archive.clock.epoch_ms(),
            )
            replay_position = src.start_position
        else:
            dst = archive._valid_recording(self.dst_recording_id)
            if dst is None:
                self._fail(
                    f"unknown destination recording id {self.dst_recording_id}",
                    ArchiveErrorCode.UNKNOWN_RECORDING,
                )
                return 1
            for name in ("initial_term_id", "term_buffer_length", "mtu_length", "stream_id"):
                if getattr(dst, name) != getattr(src, name):
                    self._fail(
                        f"replication {self.replication_id}: {name} of the destination "
                        f"({getattr(dst, name)}) differs from the source ({getattr(src, name)})",
                        ArchiveErrorCode.INVALID_EXTENSION,
                    )
                    return 1
            replay_position = dst.stop_position
            if replay_position < src.start_position or (
                src.stop_position != NULL_POSITION and replay_position > src.stop_position
            ):
                self._fail(
                    f"replication {self.replication_id}: the destination stops at {replay_position}, "
                    f"outside the source recording [{src.start_position}, {src.stop_position}]",
                    ArchiveErrorCode.INVALID_POSITION,
                )
                return 1
        if self.live_destination:
            target = NULL_POSITION  # follow the source until the live stream takes over
        else:
            target = self.stop_position if self.stop_position != NULL_POSITION else src.stop_position
        self._target_position = target
        self._signal(self.dst_recording_id, NULL_VALUE, replay_position, RecordingSignal.REPLICATE)
        if target != NULL_POSITION and replay_position >= target:
            self._complete()
            return 1
        replication_uri = ChannelUri.parse(self.replication_channel)
        channel = replication_uri.with_param("session-id", src.session_id)
        if self.live_destination:
            # one image fed by the replay's destination and, near the end, the live one
            channel = channel.with_params(endpoint=None, control_mode="manual")
        before = set(archive.recording_subscriptions)
        archive._add_recording_subscription(
            self.control_session,
            self.replication_id,
            src.stream_id,
            SourceLocation.REMOTE,
            True,
            channel.build(),
            self.dst_recording_id,
        )
        added = set(archive.recording_subscriptions) - before
        if not added:
            self._finish("the replication's recording subscription was refused", stop_recording=False)
            return 1
        self._subscription_id = added.pop()
        entry = archive.recording_subscriptions[self._subscription_id]
        local: Address | None = entry.subscription.local_address
        if self.live_destination:
            endpoint = replication_uri.endpoint
            if endpoint is None:
                self._fail(f"the replication channel has no endpoint to replay to: {replication_uri.build()}")
                return 1
            self._replay_destination = f"aeron:udp?endpoint={format_address(endpoint)}"
            local = archive.transport.add_rcv_destination(entry.subscription, self._replay_destination)
        params = [("session-id", str(src.session_id))]  # first, as Java's replication writes it
        # merging: the replay ends when it is stopped, with no linger and no end of stream (as Aeron's)
        replaced = ("session-id", "linger", "eos") if self.live_destination else ("session-id",)
        for key, value in replication_uri.params.items():
            if key == "endpoint" and local is not None and replication_uri.endpoint is not None:
                value = f"{replication_uri.endpoint[0]}:{local[1]}"
            if key not in replaced:
                params.append((key, value))
        if self.live_destination:
            params += [("linger", "0"), ("eos", "false")]
        replay_uri = ChannelUri(replication_uri.media, ChannelParams(params))
        # no stop position asked for: replay to the end of the source recording (Java's NULL_LENGTH),
        # SYNC still comes at the source's stop position when it has one
        length = NULL_LENGTH if self.stop_position == NULL_POSITION else self.stop_position - replay_position
        self.state = ReplicationState.REPLAY
        self._send(
            codecs.ReplayRequestEncoder,
            recording_id=self.src_recording_id,
            position=replay_position,
            length=length,
            replay_stream_id=src.stream_id,
            file_io_max_length=self.file_io_max_length,
            replay_token=NULL_VALUE,
            replay_channel=replay_uri.build(),
        )
        return 1

    def _work_replay(self, now_ns: int) -> int:
        for message in self._responses():
            if isinstance(message, ControlResponse) and message.correlation_id == self._awaiting:
                if message.code != ControlResponseCode.OK:
                    self._fail(f"the source archive refused the replay: {message.error_message}")
                    return 1
                self._src_replay_session_id = message.relevant_id
                self._awaiting = NULL_VALUE
                self.state = ReplicationState.REPLICATE
                self._deadline_ns = now_ns + self.archive.ctx.connect_timeout_ns * 2
                return 1
        return 1 if self._timed_out(now_ns, "no replay response from the source archive") else 0

    def _work_replicate(self, now_ns: int) -> int:
        responses = self._responses()  # keeps the source session's stream drained (liveness probes)
        archive = self.archive
        recording = archive.recording_sessions.get(self.dst_recording_id)
        if recording is not None and recording.subscription_id == self._subscription_id:
            self._recording_seen = True
            if self.live_destination:
                return self._merge(recording, responses, now_ns)
            if (
                self._target_position != NULL_POSITION
                and recording.recorded_position >= self._target_position
            ):
                self._complete()
                return 1
            return 0
        if self._recording_seen:
            # the replay image went before the target: the source stopped or went away
            descriptor = archive._valid_recording(self.dst_recording_id)
            position = NULL_POSITION if descriptor is None else descriptor.stop_position
            if self._target_position != NULL_POSITION and position >= self._target_position:
                self._complete()
            else:
                self._fail(
                    f"replication {self.replication_id}: the replay ended at {position} before the target"
                )
            return 1
        return 1 if self._timed_out(now_ns, "the replay image did not arrive") else 0

    def _merge(self, recording: Any, responses: list[Any], now_ns: int) -> int:
        """Follow the source's recorded position; add the live destination when the recording is close to
        it, and merge once the recording has reached it with both destinations feeding the image."""
        work = 0
        for message in responses:
            if isinstance(message, ControlResponse) and message.correlation_id == self._awaiting:
                if message.code != ControlResponseCode.OK or message.relevant_id == NULL_POSITION:
                    self._fail(
                        f"replication {self.replication_id}: cannot merge with the live stream without an "
                        f"active source recording: {message.error_message}"
                    )
                    return 1
                self._awaiting = NULL_VALUE
                self._src_recording_position = message.relevant_id
                work = 1
        source_position = self._src_recording_position
        if source_position != NULL_POSITION:
            position = recording.recorded_position
            term_length = self._src_descriptor.term_buffer_length
            if not self._live_added:
                if source_position - position <= min(term_length >> 2, LIVE_ADD_MAX_WINDOW):
                    entry = self.archive.recording_subscriptions[self._subscription_id]
                    self.archive.transport.add_rcv_destination(entry.subscription, self.live_destination)
                    self._live_added = True
                    work = 1
            elif position >= source_position and recording.image.active_transport_count >= 2:
                self._merged(recording)
                return 1
        if self._awaiting == NULL_VALUE:
            self._send(codecs.RecordingPositionRequestEncoder, recording_id=self.src_recording_id)
            return 1
        if self._timed_out(now_ns, "no recording position from the source archive"):
            return 1
        return work

    def _merged(self, recording: Any) -> None:
        """The recording has reached the live stream: stop the replay and let its destination go; the
        recording goes on from the live destination and is no longer this replication's."""
        entry = self.archive.recording_subscriptions[self._subscription_id]
        self.archive.transport.remove_rcv_destination(entry.subscription, self._replay_destination)
        position = recording.recorded_position
        if self._proxy is not None and self._src_replay_session_id != NULL_VALUE:
            self._send(codecs.StopReplayRequestEncoder, replay_session_id=self._src_replay_session_id)
        self._signal(self.dst_recording_id, self._subscription_id, position, RecordingSignal.MERGE)
        self._subscription_id = NULL_VALUE
        self._finish("merged with the live stream", stop_recording=False)
        self._signal(self.dst_recording_id, NULL_VALUE, NULL_POSITION, RecordingSignal.REPLICATE_END)

    def _complete(self) -> None:
        archive = self.archive
        recording = archive.recording_sessions.get(self.dst_recording_id)
        position = recording.recorded_position if recording is not None else self._target_position
        self._signal(self.dst_recording_id, self._subscription_id, position, RecordingSignal.SYNC)
        subscription_id = self._subscription_id
        self._subscription_id = NULL_VALUE
        self._finish("replication complete", stop_recording=False)
        self._signal(self.dst_recording_id, NULL_VALUE, NULL_POSITION, RecordingSignal.REPLICATE_END)
        if subscription_id != NULL_VALUE:
            archive._remove_recording_subscription(subscription_id)


_WORK = {
    ReplicationState.CONNECT: ReplicationSession._work_connect,
    ReplicationState.ARCHIVE_ID: ReplicationSession._work_archive_id,
    ReplicationState.DESCRIBE: ReplicationSession._work_describe,
    ReplicationState.EXTEND: ReplicationSession._work_extend,
    ReplicationState.REPLAY: ReplicationSession._work_replay,
    ReplicationState.REPLICATE: ReplicationSession._work_replicate,
}
