"""Images and subscriptions: the receiving side of a stream.

Theory of operation
-------------------
An *image* is one publication (one session id) as a subscriber sees it. Over UDP the receiving
``ImageLog`` rebuilds the publisher's log from datagrams; over IPC the image reads the publication's own
log in place. Each ``Subscription`` attaches an ``Image`` (a reader with its own *subscriber position*) to
every log of its stream; ``poll`` and ``controlled_poll`` deliver fragments round-robin across images,
at most ``fragment_limit`` per call, each with a ``Header`` whose ``position()`` is the end of the frame.
``block_poll`` instead hands over a block of whole frames straight from the term, headers and all (what
the archive's recorder copies into its files): DATA frames up to a length limit, but at least one; a PAD
frame ends a block, and is a block of its own when it comes first; never past the end of the term.

**Rebuilding (``ImageLog.insert_packet``).** A datagram holds one or more whole frames of one term, back
to back at 32-byte aligned offsets (a PAD frame only its 32-byte header, last). Every frame header is
checked -- version, type, term offset equal to where it sits, the same session, stream and term, the
length within the datagram and the term (a datagram of alike DATA frames, a batch of small messages, in
one strided comparison: ``alike_data_frames``) -- and a datagram that fails any check is dropped and
counted, never written. A datagram that passes is copied into the term at its offset, provided it lies
within the receive window ``[last SM position, last SM position + receiver_window]`` (Aeron's flow-control
under- and over-run checks), which also guarantees it lands in a partition that no subscriber still
reads. The *rebuild position* (everything before it is complete) advances over contiguous frames; the
*high-water mark* is the furthest position seen, heartbeats included, so a lost tail is noticed too.

**Loss.** When the high-water mark is ahead of the rebuild position there is a gap: it starts at the
rebuild position and ends at the next received frame (the first non-zero byte: partitions are zeroed
before reuse) or the high-water mark. A new gap is NAKed after ``nak_delay`` (100 us) and re-NAKed every
``nak_delay * 100`` (10 ms) while it persists. With ``reliable=false`` a gap older than the NAK delay is
filled with a PAD frame instead and counted as a loss-gap fill.

**Status messages** carry the slowest attached subscriber's position and the receiver window
(``min(rcv-wnd or 128 KiB, term_length / 2)``). One goes out at once when the image is created, then
whenever 200 ms pass, the position moves more than a quarter window, or the image reaches end of stream.

**Cleaning.** When the slowest subscriber enters term ``t``, the partition of term ``t + 1`` (which held
``t - 2``) is zeroed; the window keeps all data the sender may send within ``t`` and ``t + 1``.

**Connections.** An image may be fed through more than one receive destination (a multi-destination
subscription: the same session and stream arriving on several sockets, typically an archive's replay on one
and the live stream on another). Each destination that delivers the image's frames has an
``ImageConnection``: the socket they arrived on and the address they came from. Where a frame came from
does not matter for the term: it is placed by its term id and offset, and the first copy wins. Status
messages and NAKs go to every connection heard from within the receive-destination timeout (5 s), each
from its own socket to its own source; when all have been silent that long, to the one heard from last
(so a single-source image always answers its source). A connection is heard from when a datagram of it
lands in the window, or arrives less than a window behind it, or when it sends a SETUP; frames beyond
the window do not count (as in Aeron). End of stream takes an EOS heartbeat from every connection the
image has (the end position is the furthest of them): one source ending while another still feeds the
image does not end it.

**Lifecycle.** An image becomes unavailable when no frame has arrived for the liveness timeout (10 s),
or when every subscriber has consumed up to an end-of-stream heartbeat's position.
"""

from __future__ import annotations

import bisect
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cluster.transport.errors import LogBufferError, TransportError
from cluster.transport.logbuffer import (
    HEADER_LENGTH,
    BlockHandler,
    ControlledAction,
    ControlledFragmentHandler,
    FragmentHandler,
    LogBuffers,
    TermReader,
    alike_data_frames,
    compute_position,
    scan_block,
)
from cluster.transport.media import Address
from generated.aeron_transport_frames import (
    DataFlags,
    DataHeaderDecoder,
    DataHeaderEncoder,
    FrameHeaderDecoder,
    FrameType,
    NakHeaderEncoder,
    StatusFlags,
    StatusMessageHeaderEncoder,
)

__all__ = [
    "ControlledAction",
    "ControlledFragmentHandler",
    "Image",
    "ImageConnection",
    "ImageLog",
    "ReceiveDestination",
    "Subscription",
]

NS_PER_MS = 1_000_000
SM_TIMEOUT_NS = 200 * NS_PER_MS
IMAGE_LIVENESS_TIMEOUT_NS = 10_000 * NS_PER_MS
DEFAULT_NAK_DELAY_NS = 100_000
NAK_RETRY_RATIO = 100
DEFAULT_RECEIVER_WINDOW = 128 * 1024
RECEIVE_DESTINATION_TIMEOUT_NS = 5_000 * NS_PER_MS

_DATA = int(FrameType.DATA)
_PAD = int(FrameType.PAD)
_NAK = int(FrameType.NAK)
_SM = int(FrameType.SM)
_EOS = int(DataFlags.EOS)
_SM_EOS = int(StatusFlags.EOS)
_UNFRAGMENTED = int(DataFlags.BEGIN | DataFlags.END)

_unpack_data = DataHeaderDecoder.LAYOUT.unpack_from  # callers check the 32 bytes are there
_unpack_frame_length = struct.Struct("<i").unpack_from
_pack_data = DataHeaderEncoder.LAYOUT.pack_into
_pack_sm = StatusMessageHeaderEncoder.pack_into
_pack_nak = NakHeaderEncoder.pack_into
_frame_header = FrameHeaderDecoder.LAYOUT.unpack_from
_NON_ZERO = re.compile(rb"[^\x00]")


_ABORT = ControlledAction.ABORT
_BREAK = ControlledAction.BREAK
_COMMIT = ControlledAction.COMMIT
_CONTINUE = ControlledAction.CONTINUE


def _i32(value: int) -> int:
    return ((value + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000


class ReceiveDestination(Protocol):
    """A receive socket an image's frames arrive on; its answers (SM, NAK) leave from the same socket."""

    def send(self, data: bytes | bytearray | memoryview, address: Address) -> bool: ...


@dataclass(slots=True, eq=False)
class ImageConnection:
    """One receive destination's link to the source of an image (Aeron's image connection): the socket
    the frames arrived on, the address they came from (answers go back there; the first address heard on
    this destination stays), when it last delivered, and the position of its end-of-stream heartbeat
    (-1: none yet)."""

    destination: ReceiveDestination
    address: Address
    time_of_last_frame_ns: int
    eos_position: int = -1


class ImageLog:
    """The receiving side of one network session: the rebuilt log and its loss, SM and liveness state."""

    def __init__(
        self,
        *,
        session_id: int,
        stream_id: int,
        initial_term_id: int,
        active_term_id: int,
        term_offset: int,
        term_length: int,
        mtu: int,
        source: Address,
        destination: ReceiveDestination,
        receiver_id: int,
        now_ns: int,
        receiver_window: int = DEFAULT_RECEIVER_WINDOW,
        nak_delay_ns: int = DEFAULT_NAK_DELAY_NS,
        reliable: bool = True,
    ) -> None:
        self.session_id = session_id
        self.stream_id = stream_id
        self.initial_term_id = initial_term_id
        self.term_length = term_length
        self.mtu = mtu
        self.source = source
        """The address of the first SETUP or frame (the image's ``source_identity``)."""
        first = ImageConnection(destination, source, now_ns)
        self.connections: list[ImageConnection] = [first]
        """One per receive destination that has delivered frames of this image (see the module docstring)."""
        self._connection: ImageConnection | None = first  # the one that delivered last
        self.active_transport_count = 1
        """The connections heard from within the image liveness timeout, as of the last status message
        (Aeron's active transport count: a multi-destination subscription sees a second source join)."""
        self.receiver_id = receiver_id
        self.log = LogBuffers(term_length, initial_term_id)
        self.terms = self.log.terms
        self._buffer = self.log.buffer
        self.shift = self.log.position_bits_to_shift
        self.mask = term_length - 1
        self.join_position = compute_position(active_term_id, term_offset, self.shift, initial_term_id)
        self.rebuild_position = self.join_position
        self.hwm_position = self.join_position
        self.receiver_window = min(receiver_window, term_length // 2)
        self.nak_delay_ns = nak_delay_ns
        self.reliable = reliable
        self.images: list[Image] = []
        self.last_sm_position = self.join_position
        self._last_sm_window_limit = self.join_position + self.receiver_window
        self._time_of_last_sm_ns = now_ns - SM_TIMEOUT_NS
        self._sm_due = True
        self.time_of_last_packet_ns = now_ns
        self.end_of_stream_position = -1
        self._eos_sm_sent = False
        # the partition after the joined one is cleaned once the image enters the next term: a fresh log
        # is all zeros, and cleaning it at the join would touch every page of an untouched partition
        self._clean_term_count = self.join_position >> self.shift
        self._gap: tuple[int, int] | None = None  # (position, length)
        self._nak_deadline_ns = 0
        self._scratch = bytearray(64)
        self.is_closed = False
        # counters
        self.packets_received = 0
        self.bytes_received = 0
        self.heartbeats_received = 0
        self.malformed_packets = 0
        self.out_of_window_packets = 0
        self.naks_sent = 0
        self.sms_sent = 0
        self.loss_gap_fills = 0

    # ------------------------------------------------------------------ positions

    def subscriber_position(self) -> int:
        images = self.images
        if not images:
            return self.last_sm_position
        if len(images) == 1:
            return images[0].position
        return min(image.position for image in images)

    # ------------------------------------------------------------------ datagrams in

    def insert_packet(
        self,
        buffer: memoryview,
        length: int,
        first: tuple[int, ...],
        now_ns: int,
        destination: ReceiveDestination,
        source: Address,
    ) -> bool:
        """Take one DATA/PAD datagram (already known to be for this session and stream; ``first`` is its
        first header, unpacked) that arrived on ``destination`` from ``source``; ``False`` if it was
        dropped (malformed or outside the window)."""
        term_length = self.term_length
        term_offset = first[4]
        term_id = first[7]
        if term_offset < 0 or term_offset & 31 or term_offset + min(length, HEADER_LENGTH) > term_length:
            self.malformed_packets += 1
            return False
        # compute_position, inline: once per datagram
        term_count = ((term_id - self.initial_term_id + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000
        packet_position = (term_count << self.shift) + term_offset
        if first[0] == 0 and length == HEADER_LENGTH:
            return self._on_heartbeat(first[2], packet_position, now_ns, destination, source)
        chain_length = self._check_frames(buffer, length, first, term_offset)
        if chain_length <= 0:
            self.malformed_packets += 1
            return False
        last_sm = self.last_sm_position
        if packet_position < last_sm or packet_position + length > self._last_sm_window_limit:
            self.out_of_window_packets += 1
            if packet_position < last_sm and packet_position + length >= last_sm - self.receiver_window:
                # behind the window, but not far: the source must still hear where the image is
                self.track_connection(destination, source, now_ns)
            return False
        connection = self._connection
        if connection is None or connection.destination is not destination:
            connection = self.track_connection(destination, source, now_ns)
        connection.time_of_last_frame_ns = now_ns
        term = self.terms[(packet_position >> self.shift) % 3]
        self.time_of_last_packet_ns = now_ns
        self.packets_received += 1
        self.bytes_received += length
        if _frame_header(term, term_offset)[0] != 0:
            # Aeron's TermRebuilder.insert never overwrites: this is a duplicate (from this source or
            # another), or a late datagram for a gap already filled with padding (reliable=false), which
            # must stay as it is
            return True
        term[term_offset : term_offset + length] = buffer[:length]
        end = packet_position + chain_length
        if end > self.hwm_position:
            self.hwm_position = end
        rebuild = self.rebuild_position
        if packet_position <= rebuild < end:
            self.rebuild_position = end
            if self.hwm_position > end:
                self._advance_rebuild()
        return True

    def track_connection(
        self, destination: ReceiveDestination, source: Address, now_ns: int
    ) -> ImageConnection:
        """Note that ``destination`` heard from the image's source now: its connection (added, answering
        ``source``, if it had none -- the new source is then sent a status message at once) becomes the
        current one."""
        for connection in self.connections:
            if connection.destination is destination:
                break
        else:
            connection = ImageConnection(destination, source, now_ns)
            self.connections.append(connection)
            self._sm_due = True
        connection.time_of_last_frame_ns = now_ns
        self._connection = connection
        return connection

    def remove_connection(self, destination: ReceiveDestination) -> bool:
        """Forget the connection of a destination that was removed; ``False`` if it had none. If every
        connection left has sent end of stream, the stream has ended."""
        for index, connection in enumerate(self.connections):
            if connection.destination is destination:
                del self.connections[index]
                self.active_transport_count = min(self.active_transport_count, len(self.connections))
                if self._connection is connection:
                    self._connection = None
                if self.connections and self.end_of_stream_position < 0:
                    self._check_end_of_stream()
                return True
        return False

    def _check_frames(self, buffer: memoryview, length: int, first: tuple[int, ...], term_offset: int) -> int:
        """The term bytes the datagram's frames cover (PAD counts in full), or 0 if any header is bad."""
        session_id = first[5]
        stream_id = first[6]
        term_id = first[7]
        if first[1] == 0 and term_offset + length <= self.term_length:
            # a datagram of alike DATA frames (a batch of small messages) is checked at once, in C; any
            # other goes through the walk below, which checks the same things frame by frame
            run = alike_data_frames(buffer, 0, length, term_offset, term_id, session_id, stream_id)
            if run == length:
                return length
        return self._walk_frames(buffer, length, first, term_offset)

    def _walk_frames(self, buffer: memoryview, length: int, first: tuple[int, ...], term_offset: int) -> int:
        """``_check_frames`` frame by frame."""
        session_id = first[5]
        stream_id = first[6]
        term_id = first[7]
        room = self.term_length - term_offset  # the frames must end within the term
        offset = 0
        values = first
        while True:
            frame_length, version, _, frame_type, frame_offset, frame_session, frame_stream, frame_term, _ = (
                values
            )
            if (
                version
                or frame_length < HEADER_LENGTH
                or frame_offset != term_offset + offset
                or frame_session != session_id
                or frame_stream != stream_id
                or frame_term != term_id
            ):
                return 0
            aligned = (frame_length + 31) & -32
            if offset + aligned > room:
                return 0
            if frame_type != _DATA:
                # a PAD travels as its header, last in the datagram
                return offset + aligned if frame_type == _PAD and offset + HEADER_LENGTH == length else 0
            if offset + frame_length > length:
                return 0
            offset += aligned
            if offset >= length:
                return offset
            if offset + HEADER_LENGTH > length:
                return 0
            values = _unpack_data(buffer, offset)

    def _on_heartbeat(
        self, flags: int, position: int, now_ns: int, destination: ReceiveDestination, source: Address
    ) -> bool:
        if position < self.last_sm_position - self.term_length or position > self._last_sm_window_limit:
            self.out_of_window_packets += 1
            return False
        connection = self._connection
        if connection is None or connection.destination is not destination:
            connection = self.track_connection(destination, source, now_ns)
        connection.time_of_last_frame_ns = now_ns
        self.time_of_last_packet_ns = now_ns
        self.heartbeats_received += 1
        if position > self.hwm_position:
            self.hwm_position = position
        if flags & _EOS and self.end_of_stream_position < 0:
            connection.eos_position = position
            self._check_end_of_stream()
        return True

    def _check_end_of_stream(self) -> None:
        """The stream has ended once every connection has sent end of stream (Aeron's rule for an image
        with several sources): at the furthest of their end positions."""
        end = -1
        for connection in self.connections:
            if connection.eos_position < 0:
                return
            end = max(end, connection.eos_position)
        if end >= self.rebuild_position:
            self.end_of_stream_position = end
            self._sm_due = True

    def _advance_rebuild(self) -> None:
        """Walk complete frames from the rebuild position towards the high-water mark."""
        position = self.rebuild_position
        hwm = self.hwm_position
        mask = self.mask
        shift = self.shift
        while position < hwm:
            term = self.terms[(position >> shift) % 3]
            offset = position & mask
            frame_length = _frame_header(term, offset)[0]
            if frame_length <= 0:
                break
            position += (frame_length + 31) & -32
        self.rebuild_position = position

    # ------------------------------------------------------------------ duty cycle

    def do_work(self, now_ns: int) -> int:
        work = 0
        if self.hwm_position > self.rebuild_position:
            work += self._scan_for_gap(now_ns)
        elif self._gap is not None:
            self._gap = None
        images = self.images
        position = images[0].position if len(images) == 1 else self.subscriber_position()
        term_count = position >> self.shift
        if term_count > self._clean_term_count:
            self._clean_term_count = term_count
            self.log.clean_partition((term_count + 1) % 3)
        if (
            self._sm_due
            or position - self.last_sm_position >= self.receiver_window >> 2
            or now_ns - self._time_of_last_sm_ns >= SM_TIMEOUT_NS
        ):
            self.send_status_message(position, now_ns)
            work += 1
        return work

    def _scan_for_gap(self, now_ns: int) -> int:
        position = self.rebuild_position
        offset = position & self.mask
        term_end = position - offset + self.term_length
        limit = min(self.hwm_position, term_end)
        term_base = ((position >> self.shift) % 3) * self.term_length
        match = _NON_ZERO.search(self._buffer, term_base + offset, term_base + (limit - position) + offset)
        gap_end = limit
        if match is not None:
            gap_end = position + ((match.start() - term_base - offset) & -32)
        if gap_end <= position:
            # a frame is there after all (e.g. written by a datagram that started before us)
            self._advance_rebuild()
            return 1
        gap = (position, gap_end - position)
        if gap != self._gap:
            if self._gap is None or self._gap[0] != position:
                self._nak_deadline_ns = now_ns + self.nak_delay_ns
            self._gap = gap
        if now_ns < self._nak_deadline_ns:
            return 0
        if not self.reliable:
            self._fill_gap(position, gap_end - position)
            return 1
        self._send_nak(position, gap_end - position, now_ns)
        self._nak_deadline_ns = now_ns + self.nak_delay_ns * NAK_RETRY_RATIO
        return 1

    def _fill_gap(self, position: int, length: int) -> None:
        term = self.terms[(position >> self.shift) % 3]
        offset = position & self.mask
        term_id = _i32((position >> self.shift) + self.initial_term_id)
        _pack_data(
            term, offset, length, 0, _UNFRAGMENTED, _PAD, offset, self.session_id, self.stream_id, term_id, 0
        )
        self.loss_gap_fills += 1
        self._gap = None
        self._advance_rebuild()

    def _send_nak(self, position: int, length: int, now_ns: int) -> None:
        term_id = _i32((position >> self.shift) + self.initial_term_id)
        _pack_nak(
            self._scratch,
            0,
            28,
            0,
            0,
            _NAK,
            self.session_id,
            self.stream_id,
            term_id,
            position & self.mask,
            length,
        )
        message = memoryview(self._scratch)[:28]
        for connection in self._answered(now_ns):
            connection.destination.send(message, connection.address)
            self.naks_sent += 1

    def send_status_message(self, position: int, now_ns: int) -> None:
        flags = 0
        if self.end_of_stream_position >= 0 and position >= self.end_of_stream_position:
            flags = _SM_EOS
            self._eos_sm_sent = True
        term_id = _i32((position >> self.shift) + self.initial_term_id)
        _pack_sm(
            self._scratch,
            0,
            36,
            0,
            flags,
            _SM,
            self.session_id,
            self.stream_id,
            term_id,
            position & self.mask,
            self.receiver_window,
            self.receiver_id,
        )
        message = memoryview(self._scratch)[:36]
        for connection in self._answered(now_ns):
            connection.destination.send(message, connection.address)
            self.sms_sent += 1
        self.last_sm_position = position
        self._last_sm_window_limit = position + self.receiver_window
        self._time_of_last_sm_ns = now_ns
        self._sm_due = False
        self.active_transport_count = sum(
            1 for c in self.connections if now_ns - c.time_of_last_frame_ns <= IMAGE_LIVENESS_TIMEOUT_NS
        )

    def _answered(self, now_ns: int) -> Sequence[ImageConnection]:
        """The connections status messages and NAKs go to: those heard from within the receive-destination
        timeout, or, when every one has been silent that long, the one heard from last."""
        connections = self.connections
        if len(connections) <= 1:
            return connections
        alive = [c for c in connections if now_ns - c.time_of_last_frame_ns < RECEIVE_DESTINATION_TIMEOUT_NS]
        if alive:
            return alive
        return [max(connections, key=_time_of_last_frame)]

    # ------------------------------------------------------------------ lifecycle

    def is_drained(self, now_ns: int) -> bool:
        """True when the image should go: liveness timed out, or every subscriber reached end of stream."""
        if now_ns - self.time_of_last_packet_ns > IMAGE_LIVENESS_TIMEOUT_NS:
            return True
        eos = self.end_of_stream_position
        return eos >= 0 and self.subscriber_position() >= eos and self.rebuild_position >= eos


def _time_of_last_frame(connection: ImageConnection) -> int:
    return connection.time_of_last_frame_ns


class Image:
    """One session of a stream as one subscription reads it (Aeron's client ``Image``).

    What it tells about its stream: ``session_id``, ``stream_id``, ``initial_term_id``, ``term_length``,
    ``mtu``, ``join_position`` (where this subscriber started), ``position`` (how far it has consumed),
    ``source_identity`` (``host:port`` of the sender for UDP, ``aeron:ipc`` for IPC and spy images),
    ``subscription``, ``is_closed`` (the image went away or its subscription closed) and
    ``is_end_of_stream`` with ``end_of_stream_position`` (set when the image is removed because the
    stream ended, before ``on_unavailable_image`` is called). Reading: ``poll``, ``controlled_poll`` and
    ``block_poll``.
    """

    def __init__(
        self,
        subscription: Subscription,
        log: LogBuffers,
        session_id: int,
        join_position: int,
        source_identity: str,
        mtu: int,
        *,
        initial_term_id: int,
    ) -> None:
        self.subscription = subscription
        self.log = log
        self.terms = log.terms
        self.session_id = session_id
        self.stream_id = subscription.stream_id
        self.initial_term_id = initial_term_id
        self.term_length = log.term_length
        self.mtu = mtu
        self.source_identity = source_identity
        self.join_position = join_position
        self.position = join_position
        self.shift = log.position_bits_to_shift
        self.mask = log.term_length - 1
        self.reader = TermReader(initial_term_id, log.term_length)
        self.is_closed = False
        self.is_end_of_stream = False
        self.end_of_stream_position = -1
        self.image_log: ImageLog | None = None  # a network image's receiving log (set by the driver)

    def poll(self, handler: FragmentHandler, fragment_limit: int) -> int:
        """Deliver up to ``fragment_limit`` fragments; return how many were delivered."""
        if self.is_closed:
            return 0
        position = self.position
        offset = position & self.mask
        term = self.terms[(position >> self.shift) % 3]
        if _unpack_frame_length(term, offset)[0] <= 0:
            return 0  # nothing written there yet: the common case of an idle poll
        count, new_offset = self.reader.read(term, offset, handler, fragment_limit, self.term_length)
        if new_offset != offset:
            self.position = position + (new_offset - offset)
        return count

    def controlled_poll(
        self, handler: ControlledFragmentHandler, fragment_limit: int, limit_position: int | None = None
    ) -> int:
        """Deliver fragments until the handler says ABORT or BREAK, or ``fragment_limit`` is reached;
        with ``limit_position``, never a frame that ends past it (Aeron's bounded controlled poll)."""
        if self.is_closed:
            return 0
        position = self.position
        mask = self.mask
        offset = position & mask
        term = self.terms[(position >> self.shift) % 3]
        if _unpack_frame_length(term, offset)[0] <= 0:
            return 0  # nothing written there yet: the common case of an idle poll
        initial_offset = offset
        term_length = self.term_length
        limit_offset = term_length
        if limit_position is not None and limit_position - position < term_length - offset:
            limit_offset = offset + limit_position - position
        reader = self.reader
        header = reader.header
        unpack = _unpack_data
        count = 0
        while count < fragment_limit and offset + HEADER_LENGTH <= term_length:
            values = unpack(term, offset)
            frame_length = values[0]
            if frame_length <= 0:
                break
            frame_end = offset + ((frame_length + 31) & -32)
            if frame_length < HEADER_LENGTH or frame_end > term_length or values[4] != offset:
                reader.corrupt_frame_count += 1
                break
            if frame_end > limit_offset:
                break  # past the limit: it stays for a later poll
            frame_type = values[3]
            if frame_type != _DATA:
                if frame_type == _PAD:
                    offset = frame_end
                    continue
                reader.corrupt_frame_count += 1
                break
            header.values = values
            header.offset = offset
            count += 1
            action = handler(term[offset + HEADER_LENGTH : offset + frame_length], header)
            if action == _CONTINUE:
                offset = frame_end
                continue
            if action == _ABORT:
                count -= 1
                break
            offset = frame_end
            if action == _BREAK:
                break
            if action == _COMMIT:
                self.position = position + (offset - initial_offset)
        self.position = position + (offset - initial_offset)
        return count

    def block_poll(self, handler: BlockHandler, block_length_limit: int) -> int:
        """Hand ``handler(term, offset, length, session_id, term_id)`` one block of whole frames straight
        from the term at this image's position, and return its length (0: nothing available).

        The block is what ``logbuffer.scan_block`` finds: DATA frames up to ``block_length_limit`` bytes,
        but always at least the first frame whole; a PAD frame ends a block and is a block of its own (its
        whole aligned length) when it comes first; never past the end of the term. Frames are exactly as
        in the term, headers included. The position moves by the block's length once ``handler``
        returns; if it raises, the exception propagates and the position stays, so the next call offers
        the same block again (Aeron moves the position in a ``finally``)."""
        if self.is_closed:
            return 0
        if block_length_limit < 1:
            raise LogBufferError(f"block_length_limit must be positive: {block_length_limit}")
        position = self.position
        shift = self.shift
        offset = position & self.mask
        term = self.terms[(position >> shift) % 3]
        limit_offset = offset + block_length_limit
        length = scan_block(term, offset, limit_offset) - offset
        if length <= 0:
            return 0
        term_id = (((position >> shift) + self.initial_term_id + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000
        handler(term, offset, length, self.session_id, term_id)
        self.position = position + length
        return length

    def committed_block_poll(self, handler: BlockHandler, block_length_limit: int) -> int:
        """``block_poll`` without the walk over the frames where the image knows its committed
        position: the block is everything from this image's position up to the committed position or
        the term's end, whichever comes first, if that fits in ``block_length_limit`` -- so it may hold
        PAD frames (the term's end padding, padding that filled a loss gap or an aborted claim), where
        ``block_poll`` ends a block at a PAD. Otherwise, or when the committed position is not known, it
        is ``block_poll``. The archive's recorder uses it: it copies blocks as they are, whatever frames
        they hold, and a walk in Python over thousands of small frames would cost more than the copy."""
        if self.is_closed:
            return 0
        committed = self.committed_position()
        if committed is None:
            return self.block_poll(handler, block_length_limit)
        position = self.position
        offset = position & self.mask
        available = committed - position
        term_left = self.term_length - offset
        length = available if available < term_left else term_left
        shift = self.shift
        partition = (position >> shift) % 3
        if length > block_length_limit:
            ends = self.frame_ends(partition)
            if ends is None:
                return self.block_poll(handler, block_length_limit)
            # the last frame end within the limit, by bisection over the writer's own index
            index = bisect.bisect_right(ends, offset + block_length_limit) - 1
            if index < 0 or ends[index] <= offset:
                return self.block_poll(handler, block_length_limit)
            length = ends[index] - offset
        if length <= 0:
            return 0
        term = self.terms[partition]
        term_id = (((position >> shift) + self.initial_term_id + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000
        handler(term, offset, length, self.session_id, term_id)
        self.position = position + length
        return length

    @property
    def active_transport_count(self) -> int:
        """How many receive destinations have delivered this network image's frames lately (Aeron's
        ``Image.activeTransportCount``): 1 for a unicast image, up to the number of destinations for a
        multi-destination subscription; 0 for IPC and spy images."""
        log = self.image_log
        return 0 if log is None else log.active_transport_count

    def frame_ends(self, partition: int) -> Sequence[int] | None:
        """Where each frame of ``partition`` ends, in order, when the writer of this image's log keeps
        that index (an IPC or spy image: the publication's appender); ``None`` otherwise."""
        return None

    def committed_position(self) -> int | None:
        """The position below which every frame of this image is whole, when that is known without a
        walk over the frames: a network image's rebuild position, an IPC or spy image's publication
        position (when no claim is open); ``None`` otherwise."""
        log = self.image_log
        return None if log is None else log.rebuild_position

    def close(self) -> None:
        self.is_closed = True


class Subscription:
    """The images of one stream on one channel, polled round-robin."""

    def __init__(
        self,
        channel: str,
        stream_id: int,
        *,
        on_available_image: Callable[[Image], object] | None = None,
        on_unavailable_image: Callable[[Image], object] | None = None,
        on_close: Callable[[Subscription], object] | None = None,
    ) -> None:
        self.channel = channel
        self.stream_id = stream_id
        self.images: list[Image] = []
        self.on_available_image = on_available_image
        self.on_unavailable_image = on_unavailable_image
        self._on_close = on_close
        self._round_robin = 0
        self.is_closed = False
        self.local_address: Address | None = None

    @property
    def is_connected(self) -> bool:
        return any(not image.is_closed for image in self.images)

    @property
    def image_count(self) -> int:
        return len(self.images)

    def image_by_session_id(self, session_id: int) -> Image | None:
        for image in self.images:
            if image.session_id == session_id:
                return image
        return None

    def poll(self, handler: FragmentHandler, fragment_limit: int) -> int:
        images = self.images
        count = len(images)
        if count == 0:
            return 0
        if count == 1:
            return images[0].poll(handler, fragment_limit)
        start = self._round_robin = (self._round_robin + 1) % count
        fragments = 0
        for i in range(count):
            fragments += images[(start + i) % count].poll(handler, fragment_limit - fragments)
            if fragments >= fragment_limit:
                break
        return fragments

    def controlled_poll(self, handler: ControlledFragmentHandler, fragment_limit: int) -> int:
        images = self.images
        count = len(images)
        if count == 0:
            return 0
        start = self._round_robin = (self._round_robin + 1) % count
        fragments = 0
        for i in range(count):
            fragments += images[(start + i) % count].controlled_poll(handler, fragment_limit - fragments)
            if fragments >= fragment_limit:
                break
        return fragments

    def block_poll(self, handler: BlockHandler, block_length_limit: int) -> int:
        """``Image.block_poll`` on each image in turn, each with the whole ``block_length_limit`` (as
        Aeron's ``Subscription.blockPoll``); returns the bytes consumed from all of them. An exception
        from the handler propagates at once: images polled before it keep their progress."""
        consumed = 0
        for image in self.images:
            consumed += image.block_poll(handler, block_length_limit)
        return consumed

    def _add_image(self, image: Image) -> None:
        if self.is_closed:
            raise TransportError("subscription is closed")
        self.images.append(image)
        if self.on_available_image is not None:
            self.on_available_image(image)

    def _remove_image(self, image: Image) -> None:
        if image in self.images:
            self.images.remove(image)
            image.close()
            if self.on_unavailable_image is not None:
                self.on_unavailable_image(image)

    def close(self) -> None:
        if not self.is_closed:
            self.is_closed = True
            for image in list(self.images):
                image.close()
            self.images.clear()
            if self._on_close is not None:
                self._on_close(self)
