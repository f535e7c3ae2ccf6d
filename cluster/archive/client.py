"""``ArchiveClient``: the archive's control protocol from the client side (Aeron's ``AeronArchive``).

Theory of operation
-------------------
A client owns a request publication to the archive's control channel and a response subscription on a
channel of its own. ``ArchiveProxy`` encodes each request with the generated codecs and offers it;
``ControlResponsePoller`` reads and decodes what comes back (responses, listing entries, recording
signals, challenges) for this client's control session. ``ArchiveClient`` builds the synchronous API on the
two: every method sends one request with a fresh correlation id and waits, within the message timeout,
for the response with that id. An ERROR response raises ``ArchiveRequestError`` carrying Aeron's error
code and the archive's message; no answer in time raises ``ArchiveTimeoutError``.

The transport is single-threaded and the client does not run it: while it waits, the client calls its
``invoker`` -- a function that does the process's other duty cycles (at least ``transport.do_work``; in one
process with an archive, the archive's too; in the simulator, a step of the simulated world) -- and then
its idle strategy. Recording signals that arrive while a request waits, or on ``poll_for_recording_signals``,
go to the ``on_recording_signal`` handler in arrival order.

Connecting, as Aeron's client does: both control channels get ``term-length``, ``sparse`` and ``mtu``
(64 KiB, true, 1408 unless the channel or the caller says otherwise); the client adds its response
subscription (an ``endpoint=host:0`` channel gets its port from the subscription), adds the request
publication, waits for it to connect, sends an ``AuthConnectRequest`` whose response channel carries
the request publication's ``session-id`` (then the three parameters above: Java's client sends
``aeron:udp?endpoint=127.0.0.1:9252|session-id=117448933|term-length=65536|sparse=true|mtu=1408``),
answers a ``Challenge`` through ``on_challenge`` if the archive sends one, and takes the
controlSessionId from the OK response. It then asks for the archive id and sends a ``KeepAliveRequest``
with correlationId -1 (a Java archive keeps a session that has sent no request since its connect in
AUTHENTICATED, resending the connect response, until a request comes; the keep-alive is that request
for an archive too old to know ``ArchiveIdRequest``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cluster.archive.catalog import RecordingDescriptor
from cluster.archive.errors import ArchiveError
from cluster.archive.protocol import (
    CONTROL_MTU_LENGTH_DEFAULT,
    CONTROL_TERM_BUFFER_LENGTH_DEFAULT,
    CONTROL_TERM_BUFFER_SPARSE_DEFAULT,
    DEFAULT_CONTROL_RESPONSE_STREAM_ID,
    DEFAULT_CONTROL_STREAM_ID,
    NULL_POSITION,
    NULL_VALUE,
    PROTOCOL_SEMANTIC_VERSION,
    ArchiveErrorCode,
)
from cluster.transport.driver import Transport
from cluster.transport.image import Subscription
from cluster.transport.logbuffer import FragmentAssembler, Header
from cluster.transport.publication import Publication
from cluster.transport.uri import ChannelUri
from codegen.runtime.errors import CodecError
from generated import aeron_archive_codecs as codecs
from generated.aeron_archive_codecs import (
    BooleanType,
    ControlResponseCode,
    RecordingSignal,
    RecordingState,
    SourceLocation,
)

__all__ = [
    "ArchiveClient",
    "ArchiveClientError",
    "ArchiveProxy",
    "ArchiveRequestError",
    "ArchiveTimeoutError",
    "ControlResponse",
    "ControlResponsePoller",
    "RecordingSignalEvent",
    "encode_request",
    "open_control_channels",
]

NS_PER_MS = 1_000_000
DEFAULT_MESSAGE_TIMEOUT_NS = 10_000 * NS_PER_MS
DEFAULT_CONNECT_TIMEOUT_NS = 5_000 * NS_PER_MS
OFFER_ATTEMPTS = 3
MAX_PENDING_ERRORS = 64
FRAGMENT_LIMIT = 16


class ArchiveClientError(ArchiveError):
    """The client could not complete a request: not connected, closed, or the publication refused it."""


class ArchiveTimeoutError(ArchiveClientError):
    """No answer from the archive within the timeout; the message names the request."""


class ArchiveRequestError(ArchiveClientError):
    """The archive answered ERROR; ``error_code`` is Aeron's code, the message is the archive's."""

    def __init__(self, message: str, error_code: int, correlation_id: int) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.correlation_id = correlation_id

    @property
    def code(self) -> ArchiveErrorCode | int:
        try:
            return ArchiveErrorCode(self.error_code)
        except ValueError:
            return self.error_code


@dataclass(frozen=True, slots=True)
class ControlResponse:
    control_session_id: int
    correlation_id: int
    relevant_id: int
    code: int
    error_message: str


@dataclass(frozen=True, slots=True)
class RecordingSignalEvent:
    control_session_id: int
    correlation_id: int
    recording_id: int
    subscription_id: int
    position: int
    signal: RecordingSignal | int


@dataclass(frozen=True, slots=True)
class RecordingSubscriptionDescriptor:
    control_session_id: int
    correlation_id: int
    subscription_id: int
    stream_id: int
    stripped_channel: str


def encode_request(buffer: bytearray, encoder_type: Any, **fields: Any) -> int:
    """Encode one request (header included) into ``buffer`` from keyword fields: str and bytes values
    are the message's var data, in schema order; everything else a block field. Returns the length."""
    encoder = encoder_type().wrap_and_apply_header(buffer, 0)
    for name, value in fields.items():
        if isinstance(value, (str, bytes, bytearray)):
            getattr(encoder, "put_" + name)(value.encode("ascii") if isinstance(value, str) else value)
        else:
            setattr(encoder, name, value)
    return int(codecs.HEADER_SIZE + encoder.encoded_length())


class ArchiveProxy:
    """Encodes and offers control requests on a request publication (a few attempts each)."""

    def __init__(self, publication: Publication, *, retry: Callable[[], object] | None = None) -> None:
        self.publication = publication
        self._retry = retry
        self._buffer = bytearray(4096)

    def _scratch(self, fields: dict[str, Any]) -> bytearray:
        need = 256 + sum(len(v) for v in fields.values() if isinstance(v, (str, bytes, bytearray)))
        if len(self._buffer) < need:
            self._buffer = bytearray(need)
        return self._buffer

    def send(self, encoder_type: Any, **fields: Any) -> bool:
        buffer = self._scratch(fields)
        length = encode_request(buffer, encoder_type, **fields)
        message = bytes(buffer[:length])
        for _ in range(OFFER_ATTEMPTS):
            if self.publication.offer(message) > 0:
                return True
            if self._retry is not None:
                self._retry()
        return False


class ControlResponsePoller:
    """Reads the response stream and keeps the last message of interest (see the module docstring)."""

    def __init__(self, subscription: Any) -> None:
        self.subscription = subscription
        self._assembler = FragmentAssembler(self._on_message)
        self.control_session_id = NULL_VALUE
        self.received: list[Any] = []
        self.malformed = 0

    def poll(self) -> int:
        """Poll; decoded messages for this session (or connect responses) land in ``received``."""
        return int(self.subscription.poll(self._assembler.on_fragment, FRAGMENT_LIMIT))

    def take(self) -> list[Any]:
        received, self.received = self.received, []
        return received

    def _on_message(self, payload: memoryview, header: Header) -> None:
        try:
            decoder = codecs.decode(payload)
        except CodecError:
            self.malformed += 1
            return
        try:
            message = _to_event(decoder)
        except CodecError:
            self.malformed += 1
            return
        if message is None:
            return
        if self.control_session_id != NULL_VALUE and message.control_session_id != self.control_session_id:
            return
        self.received.append(message)


def _to_event(decoder: Any) -> Any:
    template = decoder.TEMPLATE_ID
    if template == codecs.ControlResponseDecoder.TEMPLATE_ID:
        return ControlResponse(
            decoder.control_session_id,
            decoder.correlation_id,
            decoder.relevant_id,
            decoder.code_raw if hasattr(decoder, "code_raw") else int(decoder.code),
            decoder.error_message_str(),
        )
    if template == codecs.RecordingSignalEventDecoder.TEMPLATE_ID:
        return RecordingSignalEvent(
            decoder.control_session_id,
            decoder.correlation_id,
            decoder.recording_id,
            decoder.subscription_id,
            decoder.position,
            decoder.signal,
        )
    if template == codecs.RecordingDescriptorDecoder.TEMPLATE_ID:
        return _Listed(decoder.control_session_id, decoder.correlation_id, descriptor_from_decoder(decoder))
    if template == codecs.RecordingSubscriptionDescriptorDecoder.TEMPLATE_ID:
        return RecordingSubscriptionDescriptor(
            decoder.control_session_id,
            decoder.correlation_id,
            decoder.subscription_id,
            decoder.stream_id,
            decoder.stripped_channel_str(),
        )
    if template == codecs.ChallengeDecoder.TEMPLATE_ID:
        return _Challenge(
            decoder.control_session_id, decoder.correlation_id, decoder.encoded_challenge_bytes()
        )
    return None


@dataclass(frozen=True, slots=True)
class _Listed:
    control_session_id: int
    correlation_id: int
    descriptor: RecordingDescriptor


@dataclass(frozen=True, slots=True)
class _Challenge:
    control_session_id: int
    correlation_id: int
    encoded_challenge: bytes


def _with_defaults(uri: ChannelUri, defaults: dict[str, int | bool]) -> ChannelUri:
    """``uri`` with each of ``defaults`` appended that it does not name."""
    for key, value in defaults.items():
        if uri.get(key) is None:
            uri = uri.with_param(key, value)
    return uri


def open_control_channels(
    transport: Transport,
    *,
    control_request_channel: str,
    control_request_stream_id: int,
    control_response_channel: str,
    control_response_stream_id: int,
    term_length: int = CONTROL_TERM_BUFFER_LENGTH_DEFAULT,
    sparse: bool = CONTROL_TERM_BUFFER_SPARSE_DEFAULT,
    mtu: int = CONTROL_MTU_LENGTH_DEFAULT,
) -> tuple[Publication, Subscription, str]:
    """A client's side of a control session, as Aeron's client makes it: the response subscription, the
    request publication (both channels get ``term-length``, ``sparse`` and ``mtu`` unless they name
    them), and the response channel to put in the connect request -- the subscription's port when it
    asked for port 0, and the request publication's ``session-id``. Used by ``ArchiveClient.connect``
    and by an archive replicating from another."""
    defaults: dict[str, int | bool] = {"term-length": term_length, "sparse": sparse, "mtu": mtu}
    request_uri = _with_defaults(ChannelUri.parse(control_request_channel), defaults)
    response_uri = ChannelUri.parse(control_response_channel)
    subscription = transport.add_subscription(
        _with_defaults(response_uri, defaults).build(), control_response_stream_id
    )
    try:
        publication = transport.add_exclusive_publication(request_uri.build(), control_request_stream_id)
    except BaseException:
        subscription.close()
        raise
    if subscription.local_address is not None and response_uri.endpoint is not None:
        port = subscription.local_address[1]
        response_uri = response_uri.with_param("endpoint", f"{response_uri.endpoint[0]}:{port}")
    if response_uri.get("session-id") is None:
        response_uri = response_uri.with_param("session-id", publication.session_id)
    return publication, subscription, _with_defaults(response_uri, defaults).build()


def descriptor_from_decoder(decoder: Any) -> RecordingDescriptor:
    """A ``RecordingDescriptor`` from a listing message (state VALID: listings send only those)."""
    return RecordingDescriptor(
        recording_id=decoder.recording_id,
        control_session_id=decoder.control_session_id,
        correlation_id=decoder.correlation_id,
        start_timestamp=decoder.start_timestamp,
        stop_timestamp=decoder.stop_timestamp,
        start_position=decoder.start_position,
        stop_position=decoder.stop_position,
        initial_term_id=decoder.initial_term_id,
        segment_file_length=decoder.segment_file_length,
        term_buffer_length=decoder.term_buffer_length,
        mtu_length=decoder.mtu_length,
        session_id=decoder.session_id,
        stream_id=decoder.stream_id,
        stripped_channel=decoder.stripped_channel_str(),
        original_channel=decoder.original_channel_str(),
        source_identity=decoder.source_identity_str(),
        state=RecordingState.VALID,
        checksum=0,
    )


class ArchiveClient:
    """A connected control session (see the module docstring). Build one with ``connect``."""

    def __init__(
        self,
        transport: Transport,
        proxy: ArchiveProxy,
        poller: ControlResponsePoller,
        *,
        invoker: Callable[[], object] | None,
        idle: Callable[[], object] | None,
        message_timeout_ns: int,
        on_recording_signal: Callable[[RecordingSignalEvent], object] | None,
    ) -> None:
        self.transport = transport
        self.proxy = proxy
        self.poller = poller
        self._invoker = invoker
        self._idle = idle
        self.message_timeout_ns = message_timeout_ns
        self.on_recording_signal = on_recording_signal
        self.control_session_id = NULL_VALUE
        self.archive_id = NULL_VALUE
        self.last_correlation_id = NULL_VALUE
        """The correlation id of the latest request (Aeron's ``lastCorrelationId``): an error that
        arrives later for an accepted request (``poll_for_error_response``) carries it."""
        self._backlog: deque[Any] = deque()
        self._errors: deque[ControlResponse] = deque()
        self.is_closed = False

    # ------------------------------------------------------------------ connect

    @classmethod
    def connect(
        cls,
        transport: Transport,
        *,
        control_request_channel: str,
        control_response_channel: str,
        control_request_stream_id: int = DEFAULT_CONTROL_STREAM_ID,
        control_response_stream_id: int = DEFAULT_CONTROL_RESPONSE_STREAM_ID,
        credentials: bytes = b"",
        on_challenge: Callable[[bytes], bytes] | None = None,
        invoker: Callable[[], object] | None = None,
        idle: Callable[[], object] | None = None,
        message_timeout_ns: int = DEFAULT_MESSAGE_TIMEOUT_NS,
        connect_timeout_ns: int = DEFAULT_CONNECT_TIMEOUT_NS,
        on_recording_signal: Callable[[RecordingSignalEvent], object] | None = None,
        control_term_buffer_length: int = CONTROL_TERM_BUFFER_LENGTH_DEFAULT,
        control_term_buffer_sparse: bool = CONTROL_TERM_BUFFER_SPARSE_DEFAULT,
        control_mtu_length: int = CONTROL_MTU_LENGTH_DEFAULT,
    ) -> ArchiveClient:
        publication, subscription, response_channel = open_control_channels(
            transport,
            control_request_channel=control_request_channel,
            control_request_stream_id=control_request_stream_id,
            control_response_channel=control_response_channel,
            control_response_stream_id=control_response_stream_id,
            term_length=control_term_buffer_length,
            sparse=control_term_buffer_sparse,
            mtu=control_mtu_length,
        )
        client = cls(
            transport,
            ArchiveProxy(publication, retry=invoker),
            ControlResponsePoller(subscription),
            invoker=invoker,
            idle=idle,
            message_timeout_ns=message_timeout_ns,
            on_recording_signal=on_recording_signal,
        )
        try:
            client._connect(
                response_channel,
                control_response_stream_id,
                credentials,
                on_challenge,
                connect_timeout_ns,
            )
        except BaseException:
            publication.close()
            subscription.close()
            raise
        return client

    def _connect(
        self,
        response_channel: str,
        response_stream_id: int,
        credentials: bytes,
        on_challenge: Callable[[bytes], bytes] | None,
        connect_timeout_ns: int,
    ) -> None:
        clock = self.transport.clock
        deadline = clock.nano_time() + connect_timeout_ns
        publication = self.proxy.publication
        while not publication.is_connected:
            if clock.nano_time() >= deadline:
                raise ArchiveTimeoutError("the archive's control request channel did not connect")
            self._wait()
        correlation_id = self.transport.next_correlation_id()
        self._offer(
            codecs.AuthConnectRequestEncoder,
            correlation_id=correlation_id,
            response_stream_id=response_stream_id,
            version=PROTOCOL_SEMANTIC_VERSION,
            response_channel=response_channel,
            encoded_credentials=bytes(credentials),
        )
        deadline = clock.nano_time() + self.message_timeout_ns
        while True:
            for message in self._poll():
                if isinstance(message, _Challenge) and message.correlation_id == correlation_id:
                    if on_challenge is None:
                        raise ArchiveClientError(
                            "the archive sent a challenge and no on_challenge handler is set"
                        )
                    self.poller.control_session_id = message.control_session_id
                    self.control_session_id = message.control_session_id
                    answer = on_challenge(message.encoded_challenge)
                    self._offer(
                        codecs.ChallengeResponseEncoder,
                        control_session_id=message.control_session_id,
                        correlation_id=correlation_id,
                        encoded_credentials=bytes(answer),
                    )
                elif isinstance(message, ControlResponse) and message.correlation_id == correlation_id:
                    if message.code == ControlResponseCode.ERROR:
                        raise ArchiveRequestError(
                            f"connect refused: {message.error_message}", message.relevant_id, correlation_id
                        )
                    if message.code != ControlResponseCode.OK:
                        raise ArchiveClientError(f"unexpected connect response code {message.code}")
                    self.control_session_id = message.control_session_id
                    self.poller.control_session_id = message.control_session_id
                    self.archive_id = self.get_archive_id()
                    self.keep_alive()
                    return
            if clock.nano_time() >= deadline:
                raise ArchiveTimeoutError("no connect response from the archive within the message timeout")
            self._wait()

    # ------------------------------------------------------------------ plumbing

    def wait(self) -> None:
        """One step of waiting, as the client's own requests wait: the invoker (the process's other duty
        cycles), then the idle strategy -- for a caller that waits on the archive's work in its own loop."""
        self._wait()

    def _wait(self) -> None:
        if self._invoker is not None:
            self._invoker()
        else:
            self.transport.do_work()
        if self._idle is not None:
            self._idle()

    def _receive(self) -> bool:
        """Poll the response stream; whether any message waits to be handled."""
        poller = self.poller
        poller.poll()
        if poller.received:
            self._backlog.extend(poller.take())
        return bool(self._backlog)

    def _poll(self) -> Iterator[Any]:
        """The messages received and not yet handled, oldest first. A caller that stops early (its
        answer came) leaves the rest for the next call: nothing is dropped or reordered."""
        self._receive()
        return self._drain()

    def _drain(self) -> Iterator[Any]:
        backlog = self._backlog
        while backlog:
            yield backlog.popleft()

    def _offer(self, encoder_type: Any, **fields: Any) -> None:
        name = encoder_type.NAME
        if self.is_closed:
            raise ArchiveClientError("the archive client is closed")
        if not self.proxy.send(encoder_type, **fields):
            raise ArchiveClientError(f"failed to send {name}: the request publication refused it")

    def _request(self, encoder_type: Any, **fields: Any) -> int:
        correlation_id = self.last_correlation_id = self.transport.next_correlation_id()
        self._offer(
            encoder_type,
            control_session_id=self.control_session_id,
            correlation_id=correlation_id,
            **fields,
        )
        return correlation_id

    def _await_response(self, correlation_id: int, name: str) -> ControlResponse:
        clock = self.transport.clock
        deadline = clock.nano_time() + self.message_timeout_ns
        while True:
            for message in self._poll():
                if isinstance(message, ControlResponse) and message.correlation_id == correlation_id:
                    if message.code == ControlResponseCode.ERROR:
                        raise ArchiveRequestError(
                            f"{name} failed: {message.error_message}", message.relevant_id, correlation_id
                        )
                    return message
                self._dispatch_unsolicited(message)
            if clock.nano_time() >= deadline:
                raise ArchiveTimeoutError(f"no response to {name} within the message timeout")
            self._wait()

    def _dispatch_unsolicited(self, message: Any) -> None:
        if isinstance(message, RecordingSignalEvent):
            if self.on_recording_signal is not None:
                self.on_recording_signal(message)
        elif isinstance(message, ControlResponse) and message.code == ControlResponseCode.ERROR:
            # an error that answers no waiting request: a recording or replay that failed later
            if len(self._errors) >= MAX_PENDING_ERRORS:
                self._errors.popleft()
            self._errors.append(message)

    def poll_for_error_response(self) -> ControlResponse | None:
        """The oldest ERROR response that answered no waiting request (a recording, replay or
        replication that failed after its request was accepted), or None; Aeron's
        ``pollForErrorResponse``. Polls the response stream first."""
        if self._receive():
            for message in self._drain():
                self._dispatch_unsolicited(message)
        return self._errors.popleft() if self._errors else None

    def check_for_error_response(self) -> None:
        """Raise ``ArchiveRequestError`` for the oldest such ERROR response, if there is one."""
        error = self.poll_for_error_response()
        if error is not None:
            raise ArchiveRequestError(error.error_message, error.relevant_id, error.correlation_id)

    def _call(self, encoder_type: Any, **fields: Any) -> int:
        correlation_id = self._request(encoder_type, **fields)
        return self._await_response(correlation_id, encoder_type.NAME).relevant_id

    def poll_for_recording_signals(self) -> int:
        """Deliver the recording signals that have arrived to ``on_recording_signal``; how many."""
        count = 0
        if not self._receive():
            return 0
        for message in self._drain():
            if isinstance(message, RecordingSignalEvent):
                count += 1
            self._dispatch_unsolicited(message)
        return count

    # ------------------------------------------------------------------ requests

    def get_archive_id(self) -> int:
        return self._call(codecs.ArchiveIdRequestEncoder)

    def keep_alive(self) -> None:
        self._offer(
            codecs.KeepAliveRequestEncoder,
            control_session_id=self.control_session_id,
            correlation_id=NULL_VALUE,
        )

    def start_recording(
        self, channel: str, stream_id: int, source_location: SourceLocation, *, auto_stop: bool = False
    ) -> int:
        """Record every image of ``channel`` and ``stream_id``; returns the subscription id."""
        if auto_stop:
            return self._call(
                codecs.StartRecordingRequest2Encoder,
                stream_id=stream_id,
                source_location=source_location,
                auto_stop=BooleanType.TRUE,
                channel=channel,
            )
        return self._call(
            codecs.StartRecordingRequestEncoder,
            stream_id=stream_id,
            source_location=source_location,
            channel=channel,
        )

    def extend_recording(
        self,
        recording_id: int,
        channel: str,
        stream_id: int,
        source_location: SourceLocation,
        *,
        auto_stop: bool = False,
    ) -> int:
        if auto_stop:
            return self._call(
                codecs.ExtendRecordingRequest2Encoder,
                recording_id=recording_id,
                stream_id=stream_id,
                source_location=source_location,
                auto_stop=BooleanType.TRUE,
                channel=channel,
            )
        return self._call(
            codecs.ExtendRecordingRequestEncoder,
            recording_id=recording_id,
            stream_id=stream_id,
            source_location=source_location,
            channel=channel,
        )

    def stop_recording(self, channel: str, stream_id: int) -> None:
        self._call(codecs.StopRecordingRequestEncoder, stream_id=stream_id, channel=channel)

    def stop_recording_subscription(self, subscription_id: int) -> None:
        self._call(
            codecs.StopRecordingSubscriptionRequestEncoder,
            subscription_id=subscription_id,
        )

    def try_stop_recording_by_identity(self, recording_id: int) -> bool:
        return (
            self._call(
                codecs.StopRecordingByIdentityRequestEncoder,
                recording_id=recording_id,
            )
            != 0
        )

    def start_replay(
        self,
        recording_id: int,
        position: int,
        length: int,
        replay_channel: str,
        replay_stream_id: int,
        *,
        file_io_max_length: int = NULL_VALUE,
    ) -> int:
        """Replay ``length`` bytes from ``position`` (``NULL_POSITION``: the start); returns the replay
        session id, whose low 32 bits are the replay image's session id."""
        return self._call(
            codecs.ReplayRequestEncoder,
            recording_id=recording_id,
            position=position,
            length=length,
            replay_stream_id=replay_stream_id,
            file_io_max_length=file_io_max_length,
            replay_token=NULL_VALUE,
            replay_channel=replay_channel,
        )

    def start_bounded_replay(
        self,
        recording_id: int,
        position: int,
        length: int,
        limit_counter_id: int,
        replay_channel: str,
        replay_stream_id: int,
        *,
        file_io_max_length: int = NULL_VALUE,
    ) -> int:
        return self._call(
            codecs.BoundedReplayRequestEncoder,
            recording_id=recording_id,
            position=position,
            length=length,
            limit_counter_id=limit_counter_id,
            replay_stream_id=replay_stream_id,
            file_io_max_length=file_io_max_length,
            replay_token=NULL_VALUE,
            replay_channel=replay_channel,
        )

    def stop_replay(self, replay_session_id: int) -> None:
        self._call(codecs.StopReplayRequestEncoder, replay_session_id=replay_session_id)

    def stop_all_replays(self, recording_id: int = NULL_VALUE) -> None:
        self._call(codecs.StopAllReplaysRequestEncoder, recording_id=recording_id)

    def _listing(self, correlation_id: int, count: int, name: str) -> list[RecordingDescriptor]:
        clock = self.transport.clock
        deadline = clock.nano_time() + self.message_timeout_ns
        found: list[RecordingDescriptor] = []
        while True:
            for message in self._poll():
                if isinstance(message, _Listed) and message.correlation_id == correlation_id:
                    found.append(message.descriptor)
                    deadline = clock.nano_time() + self.message_timeout_ns
                    if len(found) >= count:
                        return found
                elif isinstance(message, ControlResponse) and message.correlation_id == correlation_id:
                    if message.code == ControlResponseCode.ERROR:
                        raise ArchiveRequestError(
                            f"{name} failed: {message.error_message}", message.relevant_id, correlation_id
                        )
                    return found  # RECORDING_UNKNOWN ends a short listing
                else:
                    self._dispatch_unsolicited(message)
            if clock.nano_time() >= deadline:
                raise ArchiveTimeoutError(f"no response to {name} within the message timeout")
            self._wait()

    def list_recordings(self, from_recording_id: int, record_count: int) -> list[RecordingDescriptor]:
        correlation_id = self._request(
            codecs.ListRecordingsRequestEncoder,
            from_recording_id=from_recording_id,
            record_count=record_count,
        )
        return self._listing(correlation_id, record_count, codecs.ListRecordingsRequestEncoder.NAME)

    def list_recordings_for_uri(
        self, from_recording_id: int, record_count: int, channel_fragment: str, stream_id: int
    ) -> list[RecordingDescriptor]:
        correlation_id = self._request(
            codecs.ListRecordingsForUriRequestEncoder,
            from_recording_id=from_recording_id,
            record_count=record_count,
            stream_id=stream_id,
            channel=channel_fragment,
        )
        return self._listing(correlation_id, record_count, codecs.ListRecordingsForUriRequestEncoder.NAME)

    def list_recording(self, recording_id: int) -> RecordingDescriptor | None:
        correlation_id = self._request(codecs.ListRecordingRequestEncoder, recording_id=recording_id)
        found = self._listing(correlation_id, 1, codecs.ListRecordingRequestEncoder.NAME)
        return found[0] if found else None

    def list_recording_subscriptions(
        self,
        pseudo_index: int,
        subscription_count: int,
        channel_fragment: str,
        stream_id: int,
        *,
        apply_stream_id: bool,
    ) -> list[RecordingSubscriptionDescriptor]:
        correlation_id = self._request(
            codecs.ListRecordingSubscriptionsRequestEncoder,
            pseudo_index=pseudo_index,
            subscription_count=subscription_count,
            apply_stream_id=BooleanType.TRUE if apply_stream_id else BooleanType.FALSE,
            stream_id=stream_id,
            channel=channel_fragment,
        )
        clock = self.transport.clock
        deadline = clock.nano_time() + self.message_timeout_ns
        found: list[RecordingSubscriptionDescriptor] = []
        while True:
            for message in self._poll():
                if (
                    isinstance(message, RecordingSubscriptionDescriptor)
                    and message.correlation_id == correlation_id
                ):
                    found.append(message)
                    if len(found) >= subscription_count:
                        return found
                elif isinstance(message, ControlResponse) and message.correlation_id == correlation_id:
                    if message.code == ControlResponseCode.ERROR:
                        raise ArchiveRequestError(message.error_message, message.relevant_id, correlation_id)
                    return found
                else:
                    self._dispatch_unsolicited(message)
            if clock.nano_time() >= deadline:
                raise ArchiveTimeoutError(
                    "no response to ListRecordingSubscriptionsRequest within the message timeout"
                )
            self._wait()

    def get_recording_position(self, recording_id: int) -> int:
        """The recorded position of an active recording; ``NULL_POSITION`` when it is not active."""
        return self._call(codecs.RecordingPositionRequestEncoder, recording_id=recording_id)

    def get_start_position(self, recording_id: int) -> int:
        return self._call(codecs.StartPositionRequestEncoder, recording_id=recording_id)

    def get_stop_position(self, recording_id: int) -> int:
        return self._call(codecs.StopPositionRequestEncoder, recording_id=recording_id)

    def get_max_recorded_position(self, recording_id: int) -> int:
        return self._call(codecs.MaxRecordedPositionRequestEncoder, recording_id=recording_id)

    def find_last_matching_recording(
        self, min_recording_id: int, channel_fragment: str, stream_id: int, session_id: int
    ) -> int:
        return self._call(
            codecs.FindLastMatchingRecordingRequestEncoder,
            min_recording_id=min_recording_id,
            session_id=session_id,
            stream_id=stream_id,
            channel=channel_fragment,
        )

    def truncate_recording(self, recording_id: int, position: int) -> int:
        """Cut a stopped recording back to ``position``; returns how many segment files go."""
        return self._call(
            codecs.TruncateRecordingRequestEncoder,
            recording_id=recording_id,
            position=position,
        )

    def purge_recording(self, recording_id: int) -> int:
        """Delete a stopped recording and its files; returns how many segment files go."""
        return self._call(codecs.PurgeRecordingRequestEncoder, recording_id=recording_id)

    def detach_segments(self, recording_id: int, new_start_position: int) -> None:
        """Move the recording's start forward to the segment base ``new_start_position``; the segment
        files before it stay on disk, detached."""
        self._call(
            codecs.DetachSegmentsRequestEncoder,
            recording_id=recording_id,
            new_start_position=new_start_position,
        )

    def delete_detached_segments(self, recording_id: int) -> int:
        """Delete the recording's detached segment files; returns how many went."""
        return self._call(codecs.DeleteDetachedSegmentsRequestEncoder, recording_id=recording_id)

    def purge_segments(self, recording_id: int, new_start_position: int) -> int:
        """Detach the segments before ``new_start_position`` and delete them; returns how many went."""
        return self._call(
            codecs.PurgeSegmentsRequestEncoder,
            recording_id=recording_id,
            new_start_position=new_start_position,
        )

    def attach_segments(self, recording_id: int) -> int:
        """Take back the detached segment files still on disk before the recording's start; returns how
        many were attached."""
        return self._call(codecs.AttachSegmentsRequestEncoder, recording_id=recording_id)

    def replicate(
        self,
        src_recording_id: int,
        dst_recording_id: int,
        src_control_stream_id: int,
        src_control_channel: str,
        *,
        stop_position: int = NULL_POSITION,
        live_destination: str = "",
        replication_channel: str = "",
        channel_tag_id: int = NULL_VALUE,
        subscription_tag_id: int = NULL_VALUE,
        file_io_max_length: int = NULL_VALUE,
        replication_session_id: int = NULL_VALUE,
        encoded_credentials: bytes = b"",
        src_response_channel: str = "",
    ) -> int:
        """Ask this archive to replicate a recording from the archive at ``src_control_channel``;
        returns the replication id (signals carry it as their correlation id)."""
        return self._call(
            codecs.ReplicateRequest2Encoder,
            src_recording_id=src_recording_id,
            dst_recording_id=dst_recording_id,
            stop_position=stop_position,
            channel_tag_id=channel_tag_id,
            subscription_tag_id=subscription_tag_id,
            src_control_stream_id=src_control_stream_id,
            file_io_max_length=file_io_max_length,
            replication_session_id=replication_session_id,
            src_control_channel=src_control_channel,
            live_destination=live_destination,
            replication_channel=replication_channel,
            encoded_credentials=bytes(encoded_credentials),
            src_response_channel=src_response_channel,
        )

    def stop_replication(self, replication_id: int) -> None:
        self._call(codecs.StopReplicationRequestEncoder, replication_id=replication_id)

    def close(self) -> None:
        """Close the session (a CloseSessionRequest) and the client's publication and subscription."""
        if self.is_closed:
            return
        try:
            if self.control_session_id != NULL_VALUE:
                self.proxy.send(codecs.CloseSessionRequestEncoder, control_session_id=self.control_session_id)
        finally:
            self.is_closed = True
            self.proxy.publication.close()
            self.poller.subscription.close()

    def __enter__(self) -> ArchiveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
