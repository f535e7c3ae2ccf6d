"""The transport: Aeron's client and media driver folded into one single-threaded agent.

Theory of operation
-------------------
Real Aeron splits a client library (publications append to shared-memory logs, subscriptions read them)
from a media driver (threads that move log bytes to and from sockets). Here both live in one object that
one thread drives: ``Transport.do_work()`` is the driver's duty cycle -- receive datagrams, dispatch them,
send what publications have appended, run loss detection, status messages and timers -- and
``offer``/``poll`` are the client. It is an ``Agent`` (``role_name``, ``on_start``, ``do_work``,
``on_close``), so an ``AgentRunner`` with the default ``SelectorIdleStrategy`` sleeps on its sockets when
there is nothing to do (``Transport(idle=...)`` registers every socket it opens).

Channels:

* ``aeron:udp?endpoint=host:port`` -- a publication sends to that address from its own ephemeral
  socket; a subscription binds it (port 0: ephemeral, read back from ``Subscription.local_address``).
* ``aeron:udp?control=host:port|control-mode=manual`` -- multi-destination-cast: the publication binds
  the control address and sends to the destinations added with ``add_destination``;
  ``control-mode=dynamic`` lets subscriptions (``endpoint=...|control=...``) join by status messages.
* ``aeron:udp?control-mode=manual`` (a subscription) -- multi-destination subscription: no socket of its
  own; ``add_rcv_destination`` binds each ``aeron:udp?endpoint=host:port`` it is given (or shares the
  socket already bound there) and ``remove_rcv_destination`` lets it go. Frames of one session arriving
  on any of its destinations feed one image (a ``_ReceiveEndpoint`` keys images by session and stream,
  whichever ``_ReceiveDestination`` socket they came on); each destination answers its own source
  (``image.py``, "Connections").
* ``aeron:ipc`` -- the publication's log is read in place by the subscriptions of this transport.
* ``aeron-spy:aeron:udp?...`` -- a spy subscription: no socket; its images read the logs of this
  transport's network publications on the same channel (the same ``endpoint`` and ``control``
  addresses, or the channel tag it names) and stream in place, joining at their sender positions. The
  publisher may not run more than its term window ahead of the slowest spy (spies alone do not make it
  connected); when it closes, each spy reads to the end, gets end of stream and its image goes, and only
  then does the publication linger out.
* ``tags=T`` -- a UDP channel with an address and ``tags=T[,...]`` can be named by ``T`` alone: a
  publication ``aeron:udp?tags=T`` takes the addressing of the publication channel tagged ``T``, a
  subscription shares the receive endpoint (and images) of the subscription channel tagged ``T``, and
  a spy spies on the publications tagged ``T`` (how Aeron Cluster lets the archive record its log).

A publication's ``session-id`` may be given; it may repeat the session id of a publication on another
channel or stream (the archive's response publication reuses its client's), but not of one on the same
channel and stream (``TransportError``). Random session ids avoid every one in use. A subscription's
``session-id`` -- UDP, IPC or spy alike, as in Aeron -- takes only that session: its images are those of
the publications with that session id, whether they were there before it or came after, and to any
other publication it is no subscriber at all (an IPC publication wanted by no subscription is not
connected, and a subscription it does not match does not hold back its limit).

Datagrams go through a ``Network`` (``cluster.transport.media``): real UDP, or the deterministic
``SimNetwork``; the clock comes from the network, so the same code runs in real and virtual time. Every
datagram a socket receives is checked before use; a bad one is counted (``TransportCounters``) and
dropped, never raised. ``data_loss`` drops that fraction of arriving DATA datagrams on purpose (a seeded
loss generator, as Aeron's debug driver has), to exercise loss recovery.

Receive limits
--------------
A remote peer must not be able to make this process allocate without bound, so everything a datagram
can create has a limit, and what goes over it is refused and counted, never raised:

* **Per image.** A SETUP creates an image whose log is three terms of the term length it announces. A
  SETUP whose term length is not a power of two in [64 KiB, ``max_receive_term_length``] (default
  16 MiB) is refused (``setups_refused_term_length``), as is one whose MTU is not a multiple of 32 in
  (32, 65504] or exceeds the longest message of that term (``setups_refused_mtu``): no image, no log,
  no subscriber image is created.
* **In total.** The logs of all network images of the transport, over every receive endpoint, hold at
  most ``max_image_memory_bytes`` (default 512 MiB; ``Transport.image_memory_bytes`` is what they hold
  now). A SETUP that would take them past it is refused (``images_refused_memory``) and images already
  there are untouched; a removed image returns its memory. An endpoint also holds at most
  ``MAX_IMAGES_PER_ENDPOINT`` images (``images_refused_endpoint_limit``). Publication logs, IPC
  (which IPC subscriptions read in place) or network, are not counted: this process chose their sizes.
* **Bookkeeping.** The sessions a receive endpoint has asked for a SETUP (``MAX_ELICITED_SESSIONS``) and
  the recently removed ones it ignores for a while (``MAX_REMOVED_SESSIONS``) are bounded tables; a
  publication tracks at most ``MAX_RECEIVERS`` receivers for flow control. Reassembly buffers belong to
  the ``FragmentAssembler`` (``logbuffer.py``), which bounds its own.

Aeron's ``DriverConductor.onCreatePublicationImage`` likewise validates a SETUP's MTU
(``Configuration.validateMtuLength``) before it creates the image's log; it has no total budget, its
logs being files in a file system of fixed size (``/dev/shm``).
"""

from __future__ import annotations

import abc
import itertools
import random
import select
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cluster.transport.agent import SelectorIdleStrategy
from cluster.transport.counters import DEFAULT_MAX_COUNTERS, CountersManager
from cluster.transport.errors import ChannelUriError, TransportError
from cluster.transport.image import (
    DEFAULT_NAK_DELAY_NS,
    DEFAULT_RECEIVER_WINDOW,
    Image,
    ImageLog,
    Subscription,
)
from cluster.transport.logbuffer import (
    PARTITION_COUNT,
    LogBuffers,
    check_mtu,
    check_term_length,
    max_message_length,
)
from cluster.transport.media import (
    MAX_DATAGRAM_LENGTH,
    Address,
    DatagramSocket,
    Network,
    UdpNetwork,
    format_address,
)
from cluster.transport.publication import (
    DEFAULT_LINGER_NS,
    SETUP_TIMEOUT_NS,
    IpcPublication,
    NetworkPublication,
    Publication,
    PublicationConfig,
    random_session_id,
)
from cluster.transport.uri import ChannelUri
from generated.aeron_transport_frames import (
    DataHeaderDecoder,
    FrameType,
    NakHeaderDecoder,
    RttmFlags,
    RttmHeaderDecoder,
    RttmHeaderEncoder,
    SetupHeaderDecoder,
    StatusFlags,
    StatusMessageHeaderDecoder,
    StatusMessageHeaderEncoder,
)

__all__ = ["Transport", "TransportConfig", "TransportCounters"]

DEFAULT_MTU = 1408
DEFAULT_UDP_TERM_LENGTH = 16 * 1024 * 1024
DEFAULT_IPC_TERM_LENGTH = 64 * 1024 * 1024
DEFAULT_MAX_RECEIVE_TERM_LENGTH = 16 * 1024 * 1024
DEFAULT_MAX_IMAGE_MEMORY_BYTES = 512 * 1024 * 1024
MAX_DATAGRAMS_PER_POLL = 64
REMOVED_SESSION_TIMEOUT_NS = 1_000_000_000
MAX_SUBSCRIPTIONS = 4096
MAX_IMAGES_PER_ENDPOINT = 1024
MAX_RCV_DESTINATIONS = 1024
MAX_ELICITED_SESSIONS = 4096
MAX_REMOVED_SESSIONS = 4096
_ADDRESSING_KEYS = ("endpoint", "control", "control-mode", "interface")

_DATA = int(FrameType.DATA)
_PAD = int(FrameType.PAD)
_NAK = int(FrameType.NAK)
_SM = int(FrameType.SM)
_ERR = int(FrameType.ERR)
_SETUP = int(FrameType.SETUP)
_RTTM = int(FrameType.RTTM)
_SEND_SETUP = int(StatusFlags.SEND_SETUP)
_REPLY = int(RttmFlags.REPLY)

_unpack_data = DataHeaderDecoder.LAYOUT.unpack_from  # the receive buffer always holds 32 bytes
_unpack_setup = SetupHeaderDecoder.unpack
_unpack_sm = StatusMessageHeaderDecoder.unpack
_unpack_nak = NakHeaderDecoder.unpack
_unpack_rttm = RttmHeaderDecoder.unpack
_pack_rttm = RttmHeaderEncoder.pack_into
_pack_sm = StatusMessageHeaderEncoder.pack_into


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Defaults for what channels leave unsaid (Aeron's driver ``Configuration`` defaults), and the limits
    on what remote peers can make the transport allocate (the module docstring's "Receive limits").

    ``max_receive_term_length`` is the longest term length a SETUP may announce (default 16 MiB, the
    default UDP term length); an image's log holds three terms of it. A node that receives an Aeron
    Cluster log, whose channel defaults to ``term-length=64m``, raises it to 64 MiB.
    ``max_image_memory_bytes`` bounds the logs of all network images of the transport together (default
    512 MiB: a 64 MiB-term log image takes 192 MiB, a 16 MiB-term image 48 MiB); it must hold at least
    one image of the longest term. Peers that publish with a longer ``udp_term_length`` than a receiver's
    ``max_receive_term_length`` are refused by it, so raise both together. ``max_counters`` bounds the
    live counters of ``Transport.counters_manager`` (default 8192).
    """

    mtu: int = DEFAULT_MTU
    udp_term_length: int = DEFAULT_UDP_TERM_LENGTH
    ipc_term_length: int = DEFAULT_IPC_TERM_LENGTH
    receiver_window: int = DEFAULT_RECEIVER_WINDOW
    nak_delay_ns: int = DEFAULT_NAK_DELAY_NS
    linger_ns: int = DEFAULT_LINGER_NS
    bind_host: str = "0.0.0.0"
    data_loss: float = 0.0
    seed: int | None = None
    max_receive_term_length: int = DEFAULT_MAX_RECEIVE_TERM_LENGTH
    max_image_memory_bytes: int = DEFAULT_MAX_IMAGE_MEMORY_BYTES
    max_counters: int = DEFAULT_MAX_COUNTERS

    def __post_init__(self) -> None:
        check_mtu(self.mtu)
        check_term_length(self.udp_term_length)
        check_term_length(self.ipc_term_length)
        check_term_length(self.max_receive_term_length)
        if self.max_image_memory_bytes < PARTITION_COUNT * self.max_receive_term_length:
            raise TransportError(
                f"max_image_memory_bytes={self.max_image_memory_bytes} cannot hold one image of "
                f"max_receive_term_length={self.max_receive_term_length} "
                f"({PARTITION_COUNT} x {self.max_receive_term_length} bytes)"
            )
        if not 0.0 <= self.data_loss < 1.0:
            raise TransportError(f"data_loss must be in [0, 1): {self.data_loss}")
        if self.receiver_window < 32 or self.nak_delay_ns < 0 or self.linger_ns < 0:
            raise TransportError("receiver_window, nak_delay_ns and linger_ns must be positive")
        if self.max_counters < 1:
            raise TransportError(f"max_counters must be positive: {self.max_counters}")


@dataclass(slots=True)
class TransportCounters:
    """What the transport dropped on purpose or because it was bad.

    The refusals of the receive limits (see the module docstring) each have their own counter:
    ``setups_refused_term_length`` (a SETUP's term length is not a power of two in [64 KiB,
    ``max_receive_term_length``]), ``setups_refused_mtu`` (its MTU is out of range for the wire or for
    its term), ``images_refused_memory`` (the image would take the images past
    ``max_image_memory_bytes``) and ``images_refused_endpoint_limit`` (its endpoint already holds
    ``MAX_IMAGES_PER_ENDPOINT`` images). A publisher repeats a SETUP until it is answered, so each
    refusal counts every time it arrives.
    """

    datagrams_received: int = 0
    malformed_datagrams: int = 0
    unknown_stream_datagrams: int = 0
    data_loss_drops: int = 0
    setup_elicitations: int = 0
    images_created: int = 0
    images_removed: int = 0
    error_frames: int = 0
    rttm_replies: int = 0
    setups_refused_term_length: int = 0
    setups_refused_mtu: int = 0
    images_refused_memory: int = 0
    images_refused_endpoint_limit: int = 0


# ------------------------------------------------------------------------------------------ endpoints


class _Endpoint(abc.ABC):
    """A socket and its receive buffer."""

    def __init__(self, transport: Transport, sock: DatagramSocket) -> None:
        self.transport = transport
        self.socket = sock
        self.buffer = bytearray(MAX_DATAGRAM_LENGTH)
        self.view = memoryview(self.buffer)
        self.send = sock.send

    def poll(self, now_ns: int) -> int:
        receive = self.socket.receive
        buffer = self.buffer
        counters = self.transport.counters
        received = 0
        while received < MAX_DATAGRAMS_PER_POLL:
            result = receive(buffer)
            if result is None:
                break
            received += 1
            length, source = result
            if length < 8 or length > MAX_DATAGRAM_LENGTH or buffer[4] != 0:
                counters.malformed_datagrams += 1
                continue
            self.on_datagram(buffer[6] | buffer[7] << 8, length, source, now_ns)
        counters.datagrams_received += received
        return received

    @abc.abstractmethod
    def on_datagram(self, frame_type: int, length: int, source: Address, now_ns: int) -> None:
        """Handle one datagram of ``length`` bytes in ``self.buffer`` whose first frame has ``frame_type``."""

    def reply_rttm(self, length: int, source: Address) -> None:
        counters = self.transport.counters
        if length < 40:
            counters.malformed_datagrams += 1
            return
        values = _unpack_rttm(self.buffer, 0)
        if values[2] & _REPLY:
            return
        reply = bytearray(40)
        _pack_rttm(reply, 0, 40, 0, _REPLY, _RTTM, values[4], values[5], values[6], 0, values[8])
        self.send(reply, source)
        counters.rttm_replies += 1


class _SendEndpoint(_Endpoint):
    """The socket of one or more network publications: status messages, NAKs, RTTM and ERR arrive here."""

    def __init__(self, transport: Transport, sock: DatagramSocket) -> None:
        super().__init__(transport, sock)
        self.publications: dict[tuple[int, int], NetworkPublication] = {}

    def on_datagram(self, frame_type: int, length: int, source: Address, now_ns: int) -> None:
        counters = self.transport.counters
        if frame_type == _SM:
            if length < 36:
                counters.malformed_datagrams += 1
                return
            values = _unpack_sm(self.buffer, 0)
            flags, session_id, stream_id = values[2], values[4], values[5]
            publication = self.publications.get((session_id, stream_id))
            if publication is not None:
                publication.on_status_message(
                    flags, values[6], values[7], values[8], values[9], source, now_ns
                )
            elif session_id == 0 and flags & _SEND_SETUP:
                # a dynamic MDC receiver asking to join; Aeron's receivers send stream id 0 (every stream)
                for pub in list(self.publications.values()):
                    if stream_id in (0, pub.stream_id) and pub.control_mode == "dynamic":
                        pub.on_status_message(flags, 0, 0, 0, values[9], source, now_ns)
        elif frame_type == _NAK:
            if length < 28:
                counters.malformed_datagrams += 1
                return
            values = _unpack_nak(self.buffer, 0)
            publication = self.publications.get((values[4], values[5]))
            if publication is not None:
                publication.on_nak(values[6], values[7], values[8], now_ns)
        elif frame_type == _RTTM:
            self.reply_rttm(length, source)
        elif frame_type == _ERR:
            counters.error_frames += 1
        else:
            counters.malformed_datagrams += 1


class _ReceiveDestination(_Endpoint):
    """A bound receive socket: DATA, PAD, SETUP and RTTM arrive here, and go to every receive endpoint it
    feeds -- the endpoint of the unicast subscription channel that bound it, the multi-destination
    subscriptions that added it as a destination, or both when they name the same address."""

    def __init__(self, transport: Transport, sock: DatagramSocket) -> None:
        super().__init__(transport, sock)
        self.endpoints: list[_ReceiveEndpoint] = []

    def on_datagram(self, frame_type: int, length: int, source: Address, now_ns: int) -> None:
        transport = self.transport
        counters = transport.counters
        if frame_type <= _DATA:
            if length < 32:
                counters.malformed_datagrams += 1
                return
            values = _unpack_data(self.buffer, 0)
            if (
                frame_type == _DATA
                and transport.data_loss
                and values[0] != 0
                and transport.loss_random() < transport.data_loss
            ):
                counters.data_loss_drops += 1
                return
            endpoints = self.endpoints
            if len(endpoints) == 1:
                # the common case, inline: one subscription channel on this socket, its image known
                image = endpoints[0].images.get((values[5], values[6]))
                if image is not None:
                    image.insert_packet(self.view, length, values, now_ns, self, source)
                    return
            wanted = False
            for endpoint in endpoints:
                if endpoint.on_data(self, values, length, source, now_ns):
                    wanted = True
            if not wanted:
                counters.unknown_stream_datagrams += 1
        elif frame_type == _SETUP:
            if length < 40:
                counters.malformed_datagrams += 1
                return
            values = _unpack_setup(self.buffer, 0)
            if values[0] < 40:
                counters.malformed_datagrams += 1
                return
            wanted = False
            for endpoint in self.endpoints:
                if endpoint.on_setup(self, values, source, now_ns):
                    wanted = True
            if not wanted:
                counters.unknown_stream_datagrams += 1
        elif frame_type == _RTTM:
            self.reply_rttm(length, source)
        else:
            counters.unknown_stream_datagrams += 1


class _ReceiveEndpoint:
    """The images of one subscription channel and the subscriptions that read them (Aeron's receive
    channel endpoint and its data packet dispatcher), fed by its destinations: the one socket a unicast
    channel binds, or the destinations added to a multi-destination subscription (``is_mds``). Images are
    keyed by session and stream, whichever destination their frames arrive on."""

    def __init__(
        self, transport: Transport, control: Address | None, channel: ChannelUri, *, is_mds: bool
    ) -> None:
        self.transport = transport
        # the image parameters of this channel: its own settings, else the transport's defaults
        config = transport.config
        window = channel.get_size("rcv-wnd")
        self.receiver_window = config.receiver_window if window is None else window
        delay = channel.get_duration_ns("nak-delay")
        self.nak_delay_ns = config.nak_delay_ns if delay is None else delay
        self.reliable = channel.reliable is not False
        self.is_mds = is_mds
        self.destinations: list[_ReceiveDestination] = []
        self.added_as: dict[_ReceiveDestination, Address] = {}  # an MDS destination: the address asked for
        self.streams: dict[int, list[tuple[Subscription, int | None]]] = {}
        self.images: dict[tuple[int, int], ImageLog] = {}
        self.elicited: dict[tuple[int, int], int] = {}
        self.removed: dict[tuple[int, int], int] = {}
        self.control = control
        self._time_of_last_control_elicit_ns = -SETUP_TIMEOUT_NS
        self.key: Address | None = None  # a unicast channel's bound address (how others share it)
        self.tag: int | None = None  # the channel tag (tags=T) other subscriptions can name it by
        # Each receive endpoint has its own receiver id, as in Aeron's C driver (next_receiver_id++): a
        # sender's min/tagged flow control tells receivers apart by it.
        self.receiver_id = transport._next_receiver_id
        transport._next_receiver_id = (self.receiver_id + 1) & (2**63 - 1)

    def add_destination(self, destination: _ReceiveDestination, added_as: Address) -> None:
        self.destinations.append(destination)
        self.added_as[destination] = added_as
        destination.endpoints.append(self)

    def remove_destination(self, destination: _ReceiveDestination) -> None:
        """Stop taking frames from ``destination``; images keep what they have and lose its connection."""
        self.destinations.remove(destination)
        del self.added_as[destination]
        destination.endpoints.remove(self)
        for log in self.images.values():
            log.remove_connection(destination)

    def on_data(
        self,
        destination: _ReceiveDestination,
        values: tuple[int, ...],
        length: int,
        source: Address,
        now_ns: int,
    ) -> bool:
        """A DATA/PAD datagram (``values``: its first header) that arrived on ``destination``; ``False`` if
        no subscription of this endpoint wants its stream and session."""
        key = (values[5], values[6])
        image = self.images.get(key)
        if image is not None:
            image.insert_packet(destination.view, length, values, now_ns, destination, source)
            return True
        return self._on_unknown_session(destination, key, source, now_ns)

    def _wanted(self, session_id: int, stream_id: int) -> list[Subscription]:
        return [
            sub for sub, wanted in self.streams.get(stream_id, ()) if wanted is None or wanted == session_id
        ]

    def _on_unknown_session(
        self, destination: _ReceiveDestination, key: tuple[int, int], source: Address, now_ns: int
    ) -> bool:
        if not self._wanted(*key):
            return False
        removed_at = self.removed.get(key)
        if removed_at is not None and now_ns - removed_at < REMOVED_SESSION_TIMEOUT_NS:
            return True
        last = self.elicited.get(key)
        if last is not None and now_ns - last < SETUP_TIMEOUT_NS:
            return True
        # Data for a session we have no image of: ask its sender for a SETUP (Aeron's PENDING_SETUP_FRAME).
        self.elicited[key] = now_ns
        if len(self.elicited) > MAX_ELICITED_SESSIONS:
            self.elicited.clear()
        message = bytearray(36)
        _pack_sm(message, 0, 36, 0, _SEND_SETUP, _SM, key[0], key[1], 0, 0, 0, self.receiver_id)
        destination.send(message, source)
        self.transport.counters.setup_elicitations += 1
        return True

    def on_setup(
        self, destination: _ReceiveDestination, values: tuple[int, ...], source: Address, now_ns: int
    ) -> bool:
        """A SETUP (``values``: its header) that arrived on ``destination``: an image for a wanted session
        that has none, a new connection for one that has; ``False`` if no subscription wants it."""
        transport = self.transport
        counters = transport.counters
        term_offset, session_id, stream_id = values[4], values[5], values[6]
        initial_term_id, active_term_id, term_length, mtu = values[7], values[8], values[9], values[10]
        key = (session_id, stream_id)
        existing = self.images.get(key)
        if existing is not None:
            # another source of the same session (a multi-destination subscription), or a repeat
            existing.track_connection(destination, source, now_ns)
            return True
        subscriptions = self._wanted(session_id, stream_id)
        if not subscriptions:
            return False
        removed_at = self.removed.get(key)
        if removed_at is not None and now_ns - removed_at < REMOVED_SESSION_TIMEOUT_NS:
            return True
        config = transport.config
        if _term_length_refused(term_length, config.max_receive_term_length):
            counters.setups_refused_term_length += 1
            return True
        if _mtu_refused(mtu, term_length):
            counters.setups_refused_mtu += 1
            return True
        if (
            not 0 <= term_offset <= term_length
            or term_offset & 31
            or ((active_term_id - initial_term_id) & 0xFFFF_FFFF) >= 0x8000_0000
        ):
            counters.malformed_datagrams += 1
            return True
        if len(self.images) >= MAX_IMAGES_PER_ENDPOINT:
            counters.images_refused_endpoint_limit += 1
            return True
        log_length = PARTITION_COUNT * term_length
        if transport._image_memory_bytes + log_length > config.max_image_memory_bytes:
            counters.images_refused_memory += 1
            return True
        log = ImageLog(
            session_id=session_id,
            stream_id=stream_id,
            initial_term_id=initial_term_id,
            active_term_id=active_term_id,
            term_offset=term_offset,
            term_length=term_length,
            mtu=mtu,
            source=source,
            destination=destination,
            receiver_id=self.receiver_id,
            now_ns=now_ns,
            receiver_window=self.receiver_window,
            nak_delay_ns=self.nak_delay_ns,
            reliable=self.reliable,
        )
        self.images[key] = log
        transport._image_memory_bytes += log_length
        self.elicited.pop(key, None)
        counters.images_created += 1
        identity = format_address(source)
        for subscription in subscriptions:
            image = Image(
                subscription,
                log.log,
                session_id,
                log.join_position,
                identity,
                mtu,
                initial_term_id=initial_term_id,
            )
            image.image_log = log
            log.images.append(image)
            subscription._add_image(image)
        return True

    def do_work(self, now_ns: int) -> int:
        work = 0
        drained: list[tuple[tuple[int, int], ImageLog]] | None = None
        for key, log in self.images.items():
            work += log.do_work(now_ns)
            if log.is_drained(now_ns):
                drained = [*(drained or ()), (key, log)]
        for key, log in drained or ():
            if log.end_of_stream_position >= 0:
                log.send_status_message(log.subscriber_position(), now_ns)
            self.remove_image(key)
            self.removed.pop(key, None)  # re-inserted last: the table is oldest first
            self.removed[key] = now_ns
            self.transport.counters.images_removed += 1
            for image in log.images:
                image.is_end_of_stream = log.end_of_stream_position >= 0
                image.end_of_stream_position = log.end_of_stream_position
                image.subscription._remove_image(image)
            log.images.clear()
        if self.removed and len(self.removed) > 256:
            removed = self.removed
            for key in [k for k, at in removed.items() if now_ns - at >= REMOVED_SESSION_TIMEOUT_NS]:
                del removed[key]
            if len(removed) > MAX_REMOVED_SESSIONS:
                # forget the oldest: a late datagram of theirs at worst elicits a SETUP again
                for key in list(removed)[: len(removed) - MAX_REMOVED_SESSIONS]:
                    del removed[key]
        if (
            self.control is not None
            and self.destinations
            and now_ns - self._time_of_last_control_elicit_ns >= SETUP_TIMEOUT_NS
        ):
            self._time_of_last_control_elicit_ns = now_ns
            send = self.destinations[0].send
            for stream_id in self.streams:
                if not any(key[1] == stream_id for key in self.images):
                    message = bytearray(36)
                    _pack_sm(message, 0, 36, 0, _SEND_SETUP, _SM, 0, stream_id, 0, 0, 0, self.receiver_id)
                    send(message, self.control)
                    work += 1
        return work

    def remove_image(self, key: tuple[int, int]) -> ImageLog:
        """Forget the image of ``key`` (session id, stream id) and return its memory to the budget."""
        log = self.images.pop(key)
        transport = self.transport
        transport._image_memory_bytes -= PARTITION_COUNT * log.term_length
        assert transport._image_memory_bytes >= 0, transport._image_memory_bytes
        return log


def _term_length_refused(term_length: int, maximum: int) -> bool:
    """A SETUP's term length is not a power of two in [64 KiB, ``maximum``]."""
    try:
        check_term_length(term_length)
    except TransportError:
        return True
    return term_length > maximum


def _mtu_refused(mtu: int, term_length: int) -> bool:
    """A SETUP's MTU is out of range: for the wire, or longer than the longest message of its term."""
    try:
        check_mtu(mtu)
    except TransportError:
        return True
    return mtu > max_message_length(term_length)


# ------------------------------------------------------------------------------------------ transport


class Transport:
    """Publications and subscriptions over one network, driven by ``do_work`` (see the module docstring)."""

    def __init__(
        self,
        network: Network | None = None,
        config: TransportConfig | None = None,
        *,
        idle: SelectorIdleStrategy | None = None,
    ) -> None:
        self.network: Network = UdpNetwork() if network is None else network
        self.clock = self.network.clock
        self.config = TransportConfig() if config is None else config
        self.counters = TransportCounters()
        self.counters_manager = CountersManager(self.config.max_counters)
        self._correlation_ids = itertools.count(1)
        """The counters clients of this transport allocate and find (``cluster.transport.counters``)."""
        self._random = random.Random(self.config.seed)
        self._loss_random = random.Random(self._random.getrandbits(64))
        self.loss_random = self._loss_random.random
        self.data_loss = self.config.data_loss
        self.receiver_id = self._random.getrandbits(63)  # the first receive endpoint's; then + 1 each
        self._next_receiver_id = self.receiver_id
        self._idle = idle
        self._send_endpoints: list[_SendEndpoint] = []
        self._shared_send_endpoints: dict[Address, _SendEndpoint] = {}
        self._receive_endpoints: list[_ReceiveEndpoint] = []
        self._shared_receive_endpoints: dict[Address, _ReceiveEndpoint] = {}  # unicast, by bound address
        self._receive_destinations: list[_ReceiveDestination] = []
        self._shared_receive_destinations: dict[Address, _ReceiveDestination] = {}
        self._network_publications: list[NetworkPublication] = []
        self._ipc_publications: list[IpcPublication] = []
        self._ipc_subscriptions: dict[Subscription, int | None] = {}  # -> the session it wants, if one
        self._spy_subscriptions: list[_Spy] = []
        if not hasattr(select, "epoll"):
            raise TransportError("the transport runs on Linux only: it polls its sockets with epoll")
        self._poller = select.epoll()
        self._by_fd: dict[int, _Endpoint] = {}
        self._unpolled: list[_Endpoint] = []
        self._session_ids: dict[int, int] = {}  # session id -> publications using it
        self._addressing_of: dict[NetworkPublication, tuple[Address | None, Address | None]] = {}
        self._image_memory_bytes = 0
        self.is_closed = False

    @property
    def image_memory_bytes(self) -> int:
        """The bytes the logs of this transport's network images hold (``max_image_memory_bytes`` at
        most; publication logs, IPC ones included, are not counted)."""
        return self._image_memory_bytes

    # ------------------------------------------------------------------ agent

    @property
    def role_name(self) -> str:
        return "transport"

    def on_start(self) -> None:
        pass

    def on_close(self) -> None:
        self.close()

    def next_correlation_id(self) -> int:
        """A correlation id no other user of this transport gets (Aeron's ``Aeron.nextCorrelationId``):
        clients that share a response stream -- the archive clients of one node on ``aeron:ipc`` -- tell
        their answers apart by it."""
        return next(self._correlation_ids)

    def do_work(self) -> int:
        now_ns = self.clock.nano_time()
        work = 0
        if self._by_fd:
            # one epoll_wait(0) tells which real sockets hold datagrams: no failed recv per idle socket
            by_fd = self._by_fd
            for fd, _ in self._poller.poll(0):
                endpoint = by_fd.get(fd)
                if endpoint is not None:
                    work += endpoint.poll(now_ns)
        for endpoint in self._unpolled:
            work += endpoint.poll(now_ns)
        work += self._send(now_ns)
        for receive_endpoint in self._receive_endpoints:
            work += receive_endpoint.do_work(now_ns)
        if self._ipc_publications:
            work += self._ipc_duty(now_ns)
        return work

    def send_work(self) -> int:
        """The sending half of ``do_work`` alone: every network publication sends what it holds now. A
        program that runs its agents after the transport in one duty cycle calls it last, so what they
        offered leaves in the same cycle rather than the next (``ClusterNode`` does)."""
        return self._send(self.clock.nano_time()) if self._network_publications else 0

    def _send(self, now_ns: int) -> int:
        work = 0
        finished: list[NetworkPublication] | None = None
        for publication in self._network_publications:
            if publication.spies and publication.is_closed:
                self._end_spies(publication)
            work += publication.send(now_ns)
            if publication.is_linger_done:
                finished = [*(finished or ()), publication]
        if finished:
            for publication in finished:
                self._remove_network_publication(publication)
        return work

    # ------------------------------------------------------------------ publications

    def add_publication(self, channel: str, stream_id: int) -> Publication:
        """A publication on ``channel`` and ``stream_id`` (exclusive: one writer, its own session)."""
        self._check_open()
        uri = ChannelUri.parse(channel)
        if uri.is_spy:
            raise ChannelUriError(f"a publication cannot use a spy channel: {channel!r}")
        _check_stream_id(stream_id)
        is_ipc = uri.media == "ipc"
        term_length = uri.term_length or (
            self.config.ipc_term_length if is_ipc else self.config.udp_term_length
        )
        mtu = uri.mtu or self.config.mtu
        check_mtu(mtu)
        if mtu > max_message_length(term_length):
            raise ChannelUriError(
                f"mtu={mtu} is greater than the max message length for term-length={term_length}"
            )
        tagged_from: NetworkPublication | None = None
        if not is_ipc:
            uri, tagged_from = self._resolve_channel_tag(uri)
        session_id = uri.session_id
        if session_id is None:
            session_id = random_session_id(self._random)
            while session_id in self._session_ids:
                session_id = random_session_id(self._random)
        else:
            self._check_session_clash(uri, stream_id, session_id)
        initial_term_id = uri.init_term_id
        if initial_term_id is None:
            initial_term_id = self._random.randrange(-(2**31), 2**31)
            log = LogBuffers(term_length, initial_term_id, clean_on_rotate=is_ipc)
        else:
            log = LogBuffers(
                term_length,
                initial_term_id,
                term_id=uri.term_id,
                term_offset=uri.term_offset or 0,
                clean_on_rotate=is_ipc,
            )
        window = uri.get_size("pub-wnd")
        term_window = term_length // 2 if window is None else max(mtu, min(window, term_length // 2))
        fc = (uri.get("fc") or "max").split(",")[0]
        if fc not in ("max", "min", "tagged"):
            raise ChannelUriError(f"fc={uri.get('fc')} is not max, min or tagged")
        config = PublicationConfig(
            channel=uri,
            stream_id=stream_id,
            session_id=session_id,
            term_length=term_length,
            mtu=mtu,
            initial_term_id=initial_term_id,
            term_window=term_window,
            linger_ns=uri.linger_ns if uri.linger_ns is not None else self.config.linger_ns,
            eos=uri.get_bool("eos") is not False,
            ttl=uri.ttl or 0,
            flow_control="max" if fc == "max" else "min",
            spies_simulate_connection=uri.get_bool("ssc") is True,
        )
        if is_ipc:
            ipc = IpcPublication(config, log)
            self._ipc_publications.append(ipc)
            self._use_session_id(session_id)
            for subscription, wanted in self._ipc_subscriptions.items():
                if subscription.stream_id == stream_id and wanted in (None, session_id):
                    self._attach_ipc(ipc, subscription)
            return ipc
        publication = self._add_network_publication(uri, config, log)
        self._use_session_id(session_id)
        self._addressing_of[publication] = self._addressing(uri)
        for spy in self._spy_subscriptions:
            if self._spies_on(spy, publication):
                self._attach_spy(publication, spy.subscription)
        if tagged_from is not None and publication.control_mode == "manual":
            # Aeron's destinations belong to the channel endpoint the tag names; ours to each publication,
            # so one that joins the channel by its tag starts with the destinations the channel has now
            now_ns = self.clock.nano_time()
            for destination in tagged_from.destinations:
                if not destination.dynamic:
                    publication.add_destination(destination.address, now_ns)
        return publication

    add_exclusive_publication = add_publication

    def _use_session_id(self, session_id: int) -> None:
        self._session_ids[session_id] = self._session_ids.get(session_id, 0) + 1

    def _release_session_id(self, session_id: int) -> None:
        count = self._session_ids.get(session_id, 0)
        if count <= 1:
            self._session_ids.pop(session_id, None)
        else:
            self._session_ids[session_id] = count - 1

    def _addressing(self, uri: ChannelUri) -> tuple[Address | None, Address | None]:
        """What identifies a UDP channel's place on the network: its endpoint and control addresses,
        resolved (Aeron compares channels by the canonical form built from them)."""
        endpoint = uri.endpoint
        control = uri.control
        return (
            None if endpoint is None else self.network.resolve(endpoint),
            None if control is None else self.network.resolve(control),
        )

    def _check_session_clash(self, uri: ChannelUri, stream_id: int, session_id: int) -> None:
        """An explicit session id may be shared with publications on other channels or streams (Aeron
        allows it: the archive answers a client on the client's own session id), but not with one on the
        same channel and stream, whose receivers could not tell the two apart."""
        if uri.media == "ipc":
            clash = any(
                p.stream_id == stream_id and p.session_id == session_id for p in self._ipc_publications
            )
        else:
            addressing = self._addressing(uri)
            clash = any(
                p.stream_id == stream_id
                and p.session_id == session_id
                and self._addressing_of.get(p) == addressing
                for p in self._network_publications
            )
        if clash:
            raise TransportError(
                f"session-id={session_id} clashes with an existing publication on stream {stream_id} of "
                f"the same channel: {uri.build()!r}"
            )

    def _resolve_channel_tag(self, uri: ChannelUri) -> tuple[ChannelUri, NetworkPublication | None]:
        """A UDP channel naming another by its tag alone (``tags=T``, no endpoint, no control) takes the
        addressing (endpoint, control, control-mode, interface) of the publication whose channel was
        tagged ``T``, and that publication; any other channel comes back as it is."""
        tags = uri.tags
        if uri.endpoint is not None or uri.control is not None or tags is None or tags[0] is None:
            return uri, None
        for publication in self._network_publications:
            if publication.channel_tag == tags[0]:
                source = publication.config.channel
                completed = uri
                for key in _ADDRESSING_KEYS:
                    value = source.get(key)
                    if value is not None:
                        completed = completed.with_param(key, value)
                return completed, publication
        raise ChannelUriError(f"no publication channel of this transport has tag {tags[0]}: {uri.build()!r}")

    def _add_network_publication(
        self, uri: ChannelUri, config: PublicationConfig, log: LogBuffers
    ) -> NetworkPublication:
        control_mode = uri.control_mode
        control = uri.control
        endpoint = uri.endpoint
        now_ns = self.clock.nano_time()
        if control_mode in ("manual", "dynamic") or (control is not None and endpoint is None):
            if control is None:
                raise ChannelUriError(f"control-mode={control_mode} needs a control address: {uri.build()!r}")
            bind = self.network.resolve(control)
            destinations: list[Address] = []
            mode = control_mode or "dynamic"
            if endpoint is not None:
                destinations.append(self.network.resolve(endpoint))
        elif control_mode == "response":
            raise ChannelUriError("control-mode=response is not supported by this transport")
        else:
            if endpoint is None:
                raise ChannelUriError(
                    f"a UDP publication needs an endpoint (or control-mode): {uri.build()!r}"
                )
            if endpoint[1] == 0:
                raise ChannelUriError(f"a publication endpoint needs a port: {uri.build()!r}")
            target = self.network.resolve(endpoint)
            destinations = [target]
            mode = None
            interface = uri.get("interface")
            host = interface.split("/")[0] if interface else self._bind_host_for(target)
            bind = (host, 0)
        send_endpoint = self._send_endpoint(bind)
        publication = NetworkPublication(
            config, log, send_endpoint.send, destinations, now_ns, control_mode=mode
        )
        send_endpoint.publications[(config.session_id, config.stream_id)] = publication
        self._network_publications.append(publication)
        publication._endpoint = send_endpoint  # type: ignore[attr-defined]
        return publication

    def _bind_host_for(self, target: Address) -> str:
        host = self.config.bind_host
        if ":" in target[0] and host == "0.0.0.0":
            return "::"
        return host

    def _send_endpoint(self, bind: Address) -> _SendEndpoint:
        if bind[1] != 0:
            shared = self._shared_send_endpoints.get(bind)
            if shared is not None:
                return shared
        sock = self.network.open(bind)
        endpoint = _SendEndpoint(self, sock)
        self._send_endpoints.append(endpoint)
        if bind[1] != 0:
            self._shared_send_endpoints[bind] = endpoint
        self._register(endpoint)
        return endpoint

    def add_destination(self, publication: Publication, channel: str) -> None:
        """Add ``aeron:udp?endpoint=host:port`` to a multi-destination-cast publication."""
        mdc, address = self._destination(publication, channel)
        mdc.add_destination(address, self.clock.nano_time())

    def remove_destination(self, publication: Publication, channel: str) -> bool:
        mdc, address = self._destination(publication, channel)
        return mdc.remove_destination(address)

    def _destination(self, publication: Publication, channel: str) -> tuple[NetworkPublication, Address]:
        if not isinstance(publication, NetworkPublication) or publication.control_mode is None:
            raise TransportError(
                "destinations can only be changed on a control-mode=manual/dynamic publication"
            )
        uri = ChannelUri.parse(channel)
        endpoint = uri.endpoint
        if uri.media != "udp" or endpoint is None or endpoint[1] == 0:
            raise ChannelUriError(
                f"a destination must be aeron:udp?endpoint=host:port with a port: {channel!r}"
            )
        return publication, self.network.resolve(endpoint)

    def _remove_network_publication(self, publication: NetworkPublication) -> None:
        if publication in self._network_publications:
            self._network_publications.remove(publication)
        endpoint: _SendEndpoint = publication._endpoint  # type: ignore[attr-defined]
        endpoint.publications.pop((publication.session_id, publication.stream_id), None)
        self._release_session_id(publication.session_id)
        self._addressing_of.pop(publication, None)
        if not endpoint.publications and endpoint in self._send_endpoints:
            self._send_endpoints.remove(endpoint)
            for key, shared in list(self._shared_send_endpoints.items()):
                if shared is endpoint:
                    del self._shared_send_endpoints[key]
            self._unregister(endpoint)
            endpoint.socket.close()

    # ------------------------------------------------------------------ subscriptions

    def add_subscription(
        self,
        channel: str,
        stream_id: int,
        *,
        on_available_image: Callable[[Image], object] | None = None,
        on_unavailable_image: Callable[[Image], object] | None = None,
    ) -> Subscription:
        self._check_open()
        uri = ChannelUri.parse(channel)
        _check_stream_id(stream_id)
        subscription = Subscription(
            uri.build(),
            stream_id,
            on_available_image=on_available_image,
            on_unavailable_image=on_unavailable_image,
            on_close=self._on_subscription_closed,
        )
        if uri.is_spy:
            return self._add_spy_subscription(uri, subscription)
        if uri.media == "ipc":
            wanted = uri.session_id
            self._ipc_subscriptions[subscription] = wanted
            for publication in self._ipc_publications:
                if (
                    publication.stream_id == stream_id
                    and wanted in (None, publication.session_id)
                    and not publication.is_closed
                ):
                    self._attach_ipc(publication, subscription)
            return subscription
        endpoint = uri.endpoint
        tags = uri.tags
        channel_tag = None if tags is None else tags[0]
        is_mds = uri.control_mode == "manual"
        if endpoint is None:
            receive = self._tagged_receive_endpoint(channel_tag, channel, is_mds)
            if receive is None:
                # a multi-destination subscription: no socket until destinations are added
                receive = _ReceiveEndpoint(self, None, uri, is_mds=True)
                receive.tag = channel_tag
                self._receive_endpoints.append(receive)
        else:
            if is_mds:
                raise ChannelUriError(
                    "a multi-destination subscription (control-mode=manual) takes its addresses as "
                    f"destinations (add_rcv_destination), not an endpoint: {channel!r}"
                )
            bind = self.network.resolve(endpoint)
            control = None if uri.control is None else self.network.resolve(uri.control)
            shared = self._shared_receive_endpoints.get(bind) if bind[1] != 0 else None
            if shared is None:
                destination = self._receive_destination(bind)
                receive = _ReceiveEndpoint(self, control, uri, is_mds=False)
                receive.add_destination(destination, bind)
                receive.key = destination.socket.local_address
                self._receive_endpoints.append(receive)
                self._shared_receive_endpoints[receive.key] = receive
            else:
                receive = shared
            if receive.tag is None:
                receive.tag = channel_tag
        subscription.local_address = receive.key
        subscription._endpoint = receive  # type: ignore[attr-defined]
        receive.streams.setdefault(stream_id, []).append((subscription, uri.session_id))
        for (session_id, image_stream_id), log in list(receive.images.items()):
            # Aeron links the images already there, joining at the lowest subscriber position
            if image_stream_id == stream_id and uri.session_id in (None, session_id):
                join = min([log.rebuild_position, *(image.position for image in log.images)])
                image = Image(
                    subscription,
                    log.log,
                    session_id,
                    join,
                    format_address(log.source),
                    log.mtu,
                    initial_term_id=log.initial_term_id,
                )
                image.image_log = log
                log.images.append(image)
                subscription._add_image(image)
        return subscription

    def _tagged_receive_endpoint(
        self, channel_tag: int | None, channel: str, is_mds: bool
    ) -> _ReceiveEndpoint | None:
        """The receive endpoint a subscription's ``tags=T`` (with no endpoint) names: the one a subscription
        with an endpoint and that channel tag, or a multi-destination subscription with it, created; the
        new subscription shares its images. ``None`` for a multi-destination channel that names no such
        endpoint (it makes its own)."""
        if channel_tag is not None:
            for receive in self._receive_endpoints:
                if receive.tag == channel_tag:
                    if is_mds and not receive.is_mds:
                        raise ChannelUriError(
                            f"tag {channel_tag} names a subscription channel that is not a multi-destination "
                            f"one: {channel!r}"
                        )
                    return receive
        if is_mds:
            return None
        if channel_tag is None:
            raise ChannelUriError(f"a UDP subscription needs an endpoint (or a channel tag): {channel!r}")
        raise ChannelUriError(f"no subscription channel of this transport has tag {channel_tag}: {channel!r}")

    def _receive_destination(self, bind: Address) -> _ReceiveDestination:
        """The receive socket bound to ``bind``: the one already there (a port other than 0), else a new
        one."""
        if bind[1] != 0:
            shared = self._shared_receive_destinations.get(bind)
            if shared is not None:
                return shared
        destination = _ReceiveDestination(self, self.network.open(bind))
        self._receive_destinations.append(destination)
        self._shared_receive_destinations[destination.socket.local_address] = destination
        self._register(destination)
        return destination

    def _release_receive_destination(self, destination: _ReceiveDestination) -> None:
        """Close a receive socket that no endpoint uses any more."""
        if destination.endpoints or destination not in self._receive_destinations:
            return
        self._receive_destinations.remove(destination)
        address = destination.socket.local_address
        if self._shared_receive_destinations.get(address) is destination:
            del self._shared_receive_destinations[address]
        self._unregister(destination)
        destination.socket.close()

    # ------------------------------------------------------------------ multi-destination subscriptions

    def add_rcv_destination(self, subscription: Subscription, channel: str) -> Address:
        """Add ``aeron:udp?endpoint=host:port`` as a destination of a multi-destination subscription
        (``aeron:udp?control-mode=manual``): its address is bound (or the socket already bound there
        shared) and the frames arriving on it feed the subscription's images. Returns the bound address
        (port 0 asks for an ephemeral one). Only the endpoint of ``channel`` is used."""
        receive = self._mds_endpoint(subscription)
        address = self._rcv_destination_address(channel)
        if address[1] != 0 and self._find_rcv_destination(receive, address) is not None:
            raise TransportError(f"{channel!r} is already a destination of {subscription.channel!r}")
        if len(receive.destinations) >= MAX_RCV_DESTINATIONS:
            raise TransportError(
                f"{subscription.channel!r} has the maximum of {MAX_RCV_DESTINATIONS} destinations"
            )
        destination = self._receive_destination(address)
        receive.add_destination(destination, address)
        return destination.socket.local_address

    def remove_rcv_destination(self, subscription: Subscription, channel: str) -> None:
        """Remove a destination added with ``add_rcv_destination`` (named as it was added, or by its bound
        address): its frames no longer reach the subscription's images, which keep what they hold and
        go on with their other destinations; its socket closes unless something else uses it."""
        receive = self._mds_endpoint(subscription)
        destination = self._find_rcv_destination(receive, self._rcv_destination_address(channel))
        if destination is None:
            raise TransportError(f"{channel!r} is not a destination of {subscription.channel!r}")
        receive.remove_destination(destination)
        self._release_receive_destination(destination)

    def _mds_endpoint(self, subscription: Subscription) -> _ReceiveEndpoint:
        self._check_open()
        receive: _ReceiveEndpoint | None = getattr(subscription, "_endpoint", None)
        if receive is None or not receive.is_mds:
            raise TransportError(
                "receive destinations can only be changed on a multi-destination subscription "
                f"(aeron:udp?control-mode=manual): {subscription.channel!r}"
            )
        if subscription.is_closed:
            raise TransportError(f"the subscription is closed: {subscription.channel!r}")
        return receive

    def _rcv_destination_address(self, channel: str) -> Address:
        uri = ChannelUri.parse(channel)
        endpoint = uri.endpoint
        if uri.media != "udp" or uri.is_spy or endpoint is None:
            raise ChannelUriError(f"a receive destination must be aeron:udp?endpoint=host:port: {channel!r}")
        return self.network.resolve(endpoint)

    @staticmethod
    def _find_rcv_destination(receive: _ReceiveEndpoint, address: Address) -> _ReceiveDestination | None:
        for destination in receive.destinations:
            if receive.added_as[destination] == address or destination.socket.local_address == address:
                return destination
        return None

    # ------------------------------------------------------------------ spies

    def _add_spy_subscription(self, uri: ChannelUri, subscription: Subscription) -> Subscription:
        """``aeron-spy:aeron:udp?...``: images reading matching network publications of this transport in
        place. No socket is opened."""
        if uri.media != "udp":
            raise ChannelUriError(f"a spy subscription needs a UDP channel: {subscription.channel!r}")
        tags = uri.tags
        channel_tag = None if tags is None else tags[0]
        has_address = uri.endpoint is not None or uri.control is not None
        if not has_address and channel_tag is None:
            raise ChannelUriError(
                "a spy channel needs an endpoint, a control address or a channel tag: "
                f"{subscription.channel!r}"
            )
        if len(self._spy_subscriptions) >= MAX_SUBSCRIPTIONS:
            raise TransportError(f"the transport has the maximum of {MAX_SUBSCRIPTIONS} spy subscriptions")
        spy = _Spy(subscription, self._addressing(uri) if has_address else None, channel_tag, uri.session_id)
        self._spy_subscriptions.append(spy)
        for publication in self._network_publications:
            if not publication.is_closed and self._spies_on(spy, publication):
                self._attach_spy(publication, subscription)
        return subscription

    def _spies_on(self, spy: _Spy, publication: NetworkPublication) -> bool:
        """Whether ``spy`` reads ``publication``: same stream, the session it wants (if any), the same
        channel tag (if it names one) and the same endpoint and control addresses (if it gives them)."""
        return (
            publication.stream_id == spy.subscription.stream_id
            and spy.session_id in (None, publication.session_id)
            and (spy.channel_tag is None or publication.channel_tag == spy.channel_tag)
            and (spy.addressing is None or self._addressing_of.get(publication) == spy.addressing)
        )

    def _attach_spy(self, publication: NetworkPublication, subscription: Subscription) -> None:
        image = _SpyImage(subscription, publication, publication.sender_position)
        publication.spies.append(image)
        subscription._add_image(image)
        publication.update_limit()

    def _end_spies(self, publication: NetworkPublication) -> None:
        """Remove the spies of a closed publication that have read to its end: end of stream for them."""
        end = publication.end_of_stream_position
        for image in list(publication.spies):
            if image.position >= end and isinstance(image, _SpyImage):
                publication.spies.remove(image)
                image.is_end_of_stream = True
                image.end_of_stream_position = end
                image.subscription._remove_image(image)

    def _on_subscription_closed(self, subscription: Subscription) -> None:
        for spy in self._spy_subscriptions:
            if spy.subscription is subscription:
                self._spy_subscriptions.remove(spy)
                for spied in self._network_publications:
                    before = len(spied.spies)
                    spied.spies = [image for image in spied.spies if image.subscription is not subscription]
                    if len(spied.spies) != before:
                        spied.update_limit()
                return
        if subscription in self._ipc_subscriptions:
            del self._ipc_subscriptions[subscription]
            for publication in self._ipc_publications:
                publication.subscribers = [
                    image for image in publication.subscribers if image.subscription is not subscription
                ]
            return
        receive: _ReceiveEndpoint | None = getattr(subscription, "_endpoint", None)
        if receive is None or receive not in self._receive_endpoints:
            return
        entries = receive.streams.get(subscription.stream_id, [])
        entries[:] = [(s, f) for s, f in entries if s is not subscription]
        if not entries:
            receive.streams.pop(subscription.stream_id, None)
        for key, log in list(receive.images.items()):
            log.images[:] = [image for image in log.images if image.subscription is not subscription]
            if not log.images and key[1] not in receive.streams:
                receive.remove_image(key)
        if not receive.streams:
            self._receive_endpoints.remove(receive)
            if receive.key is not None:
                self._shared_receive_endpoints.pop(receive.key, None)
            for destination in list(receive.destinations):
                receive.remove_destination(destination)
                self._release_receive_destination(destination)

    # ------------------------------------------------------------------ ipc

    def _attach_ipc(self, publication: IpcPublication, subscription: Subscription) -> None:
        positions = [image.position for image in publication.subscribers]
        join = min(positions) if positions else publication.position
        image = _IpcImage(subscription, publication, join)
        publication.subscribers.append(image)
        subscription._add_image(image)
        publication.update_limit()

    def _ipc_duty(self, now_ns: int) -> int:
        work = 0
        for publication in list(self._ipc_publications):
            if publication.update_limit():
                work += 1
            if publication.is_closed:
                done = True
                for subscription in self._ipc_subscriptions:
                    for image in list(subscription.images):
                        if isinstance(image, _IpcImage) and image.publication is publication:
                            if image.position >= publication.end_of_stream_position:
                                image.is_end_of_stream = True
                                image.end_of_stream_position = publication.end_of_stream_position
                                subscription._remove_image(image)
                            else:
                                done = False
                if done:
                    self._ipc_publications.remove(publication)
                    self._release_session_id(publication.session_id)
        return work

    # ------------------------------------------------------------------ lifecycle

    def _register(self, endpoint: _Endpoint) -> None:
        sock = endpoint.socket
        fd = sock.fileno()
        if fd < 0:
            self._unpolled.append(endpoint)
            return
        self._poller.register(fd, select.EPOLLIN)
        self._by_fd[fd] = endpoint
        if self._idle is not None:
            self._idle.register(sock)

    def _unregister(self, endpoint: _Endpoint) -> None:
        sock = endpoint.socket
        fd = sock.fileno()
        if fd < 0:
            if endpoint in self._unpolled:
                self._unpolled.remove(endpoint)
            return
        if self._by_fd.pop(fd, None) is not None:
            self._poller.unregister(fd)
        if self._idle is not None:
            self._idle.unregister(sock)

    def _check_open(self) -> None:
        if self.is_closed:
            raise TransportError("transport is closed")

    def close(self) -> None:
        """Close everything: publications send what they can and an end-of-stream heartbeat, sockets close."""
        if self.is_closed:
            return
        now_ns = self.clock.nano_time()
        for publication in list(self._network_publications):
            publication.close()
            publication.send(now_ns)
            publication._send_heartbeat(now_ns)
        self._release()

    def abort(self) -> None:
        """Stop the way a killed process stops: every socket closes and nothing more is sent (no
        end-of-stream, no last data); peers find out by their timeouts. Idempotent."""
        if not self.is_closed:
            self._release()

    def _release(self) -> None:
        self.is_closed = True
        for endpoint in [*self._send_endpoints, *self._receive_destinations]:
            self._unregister(endpoint)
            endpoint.socket.close()
        for receive in self._receive_endpoints:
            for key in list(receive.images):
                receive.remove_image(key)
        self._send_endpoints.clear()
        self._receive_endpoints.clear()
        self._shared_receive_endpoints.clear()
        self._receive_destinations.clear()
        self._shared_receive_destinations.clear()
        self._by_fd.clear()
        self._unpolled.clear()
        self._poller.close()
        self._network_publications.clear()
        self._addressing_of.clear()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class _Spy:
    """A spy subscription and what it matches: endpoint and control addresses (``None``: not given), a
    channel tag and a session id."""

    subscription: Subscription
    addressing: tuple[Address | None, Address | None] | None
    channel_tag: int | None
    session_id: int | None


class _InPlaceImage(Image):
    """An image that reads a publication's own log in place (IPC, and spies on network publications):
    the publication's appender says how far the frames are whole and where each one ends."""

    def __init__(
        self,
        subscription: Subscription,
        publication: IpcPublication | NetworkPublication,
        join_position: int,
    ) -> None:
        super().__init__(
            subscription,
            publication.log,
            publication.session_id,
            join_position,
            "aeron:ipc",
            publication.mtu,
            initial_term_id=publication.initial_term_id,
        )
        self.publication = publication

    def committed_position(self) -> int | None:
        appender = self.publication.appender
        return None if appender.open_claims else appender.position

    def frame_ends(self, partition: int) -> Sequence[int] | None:
        appender = self.publication.appender
        return None if appender.padded[partition] else appender.frame_ends[partition]


class _SpyImage(_InPlaceImage):
    """A spy's image: a network publication's log read in place, joined at its sender position."""

    publication: NetworkPublication


class _IpcImage(_InPlaceImage):
    """An image reading an IPC publication's log in place."""

    publication: IpcPublication


def _check_stream_id(stream_id: int) -> None:
    if not isinstance(stream_id, int) or not -(2**31) <= stream_id < 2**31:
        raise TransportError(f"stream id must be an int32: {stream_id!r}")
