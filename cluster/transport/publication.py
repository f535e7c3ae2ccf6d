"""Publications: the sending side of a stream, over UDP (unicast or multi-destination-cast) or IPC.

Theory of operation
-------------------
A ``Publication`` is Aeron's *exclusive publication* (one writer; everything here is single-threaded).
Its ``offer`` and ``try_claim`` append to the publication's own ``LogBuffers`` through an
``ExclusiveAppender`` and return Aeron's results: the new position, or ``NOT_CONNECTED``,
``BACK_PRESSURED``, ``ADMIN_ACTION`` (a term was padded: retry), ``CLOSED`` or ``MAX_POSITION_EXCEEDED``.
``offer_block`` appends a block of frames the caller has already laid out for this publication's
session, stream, term and position (the archive's replay does, with frames it recorded), checked frame by
frame and copied as they are; the sender then ships them like any others.
The appender stops at ``position_limit`` (Aeron's publisher limit), which the transport moves:

* **Network** (``NetworkPublication``): the limit is ``sender_position + term_window`` while connected
  (``term_window`` = ``pub-wnd`` or ``term_length / 2``). Each ``send`` ships the term bytes between the
  sender position and the *sender limit* -- the flow-control limit the receivers granted in status
  messages (``position + receiver_window``) -- in datagrams of whole frames of up to ``mtu`` bytes, so
  many small messages share one datagram. A PAD frame goes as its 32-byte header only. Until the first
  status message (and whenever a receiver asks with SEND_SETUP) a SETUP frame goes out every 100 ms.
  With no data to send for 100 ms a heartbeat (a DATA header with frame length 0 at the sender position)
  goes out; after ``close`` the heartbeats carry EOS and the publication lingers to answer NAKs. A NAK
  re-sends the requested range from the term (if it is still within a term window behind the sender
  position), at most ``MAX_RESENDS`` ranges at a time, and the same range is not re-sent again within the
  retransmit linger (10 ms). The publication is connected while status messages keep arriving (5 s).
* **Flow control.** Unicast and ``fc=max`` take the largest limit any receiver grants; ``fc=min`` the
  smallest among the receivers heard from in the last 5 s (keyed by receiver id). At most
  ``MAX_RECEIVERS`` are tracked: the receiver ids come from datagrams, and a status message from one
  more is still heard for ``fc=max`` but not tracked (``receivers_refused``).
* **Multi-destination-cast.** With ``control-mode=manual`` destinations are added and removed at run
  time (``add_destination``); with ``control-mode=dynamic`` a receiver joins by sending status messages
  to the ``control`` address and leaves by falling silent for 5 s. Every datagram goes to every
  destination.
* **Spies.** A spy subscription of the same transport reads a network publication's log in place: each
  of its images (``spies``) joins at the sender position, and the publisher limit is taken from the
  slowest of the sender and the spies (``min(sender, spies) + term_window``; spies alone do not make the
  publication connected). The partition of term ``t + 1`` is zeroed when that slowest consumer enters
  term ``t``, so neither a retransmit nor a spy ever reads a cleaned partition. A closed publication
  starts its linger only once the transport has removed every spy (each at the end of the stream).
* **IPC** (``IpcPublication``): the log *is* what subscribers read; the limit is the slowest subscriber's
  position plus ``term_window``, and it is connected while any subscription is attached.
"""

from __future__ import annotations

import abc
import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cluster.transport.errors import TransportError
from cluster.transport.logbuffer import (
    ADMIN_ACTION,
    BACK_PRESSURED,
    CLOSED,
    HEADER_LENGTH,
    MAX_POSITION_EXCEEDED,
    NOT_CONNECTED,
    BufferClaim,
    ExclusiveAppender,
    LogBuffers,
    compute_position,
    write_heartbeat,
)
from cluster.transport.media import Address
from cluster.transport.uri import ChannelUri
from generated.aeron_transport_frames import (
    DataFlags,
    FrameHeaderDecoder,
    FrameType,
    SetupHeaderEncoder,
    StatusFlags,
)

__all__ = [
    "ADMIN_ACTION",
    "BACK_PRESSURED",
    "CLOSED",
    "MAX_POSITION_EXCEEDED",
    "NOT_CONNECTED",
    "IpcPublication",
    "NetworkPublication",
    "Publication",
    "PublicationConfig",
    "offer_past_rotation",
]

NS_PER_MS = 1_000_000
SETUP_TIMEOUT_NS = 100 * NS_PER_MS
HEARTBEAT_TIMEOUT_NS = 100 * NS_PER_MS
CONNECTION_TIMEOUT_NS = 5_000 * NS_PER_MS
RECEIVER_TIMEOUT_NS = 5_000 * NS_PER_MS
DEFAULT_LINGER_NS = 5_000 * NS_PER_MS
RETRANSMIT_DELAY_NS = 0
RETRANSMIT_LINGER_NS = 10 * NS_PER_MS
MAX_RESENDS = 16
MAX_DATAGRAMS_PER_SEND = 64
MAX_DESTINATIONS = 1024
MAX_RECEIVERS = 1024

_SETUP = int(FrameType.SETUP)
_PAD = int(FrameType.PAD)
_SEND_SETUP = int(StatusFlags.SEND_SETUP)
_EOS_FLAGS = int(DataFlags.BEGIN | DataFlags.END | DataFlags.EOS)

_frame_header = FrameHeaderDecoder.LAYOUT.unpack_from  # (frame_length, version, flags, type)
_pack_setup = SetupHeaderEncoder.pack_into

SendFunction = Callable[[bytes | bytearray | memoryview, Address], bool]


@dataclass(frozen=True, slots=True)
class PublicationConfig:
    """What a publication was created with (after the channel's parameters were applied)."""

    channel: ChannelUri
    stream_id: int
    session_id: int
    term_length: int
    mtu: int
    initial_term_id: int
    term_window: int
    linger_ns: int = DEFAULT_LINGER_NS
    eos: bool = True
    ttl: int = 0
    flow_control: str = "max"
    spies_simulate_connection: bool = False  # ssc=true: a spy counts as a receiver (no SM needed)


class Publication(abc.ABC):
    """The offer side shared by network and IPC publications."""

    def __init__(self, config: PublicationConfig, log: LogBuffers) -> None:
        self.config = config
        self.channel = config.channel.build()
        self.stream_id = config.stream_id
        self.session_id = config.session_id
        self.initial_term_id = config.initial_term_id
        self.term_length = config.term_length
        self.mtu = config.mtu
        self._term_window = config.term_window
        self.log = log
        tags = config.channel.tags
        self.channel_tag: int | None = None if tags is None else tags[0]
        """The channel tag of ``tags=channelTag[,entityTag]``, by which other channels can name this one."""
        self.appender = ExclusiveAppender(log, config.session_id, config.stream_id, config.mtu)
        self.max_message_length = self.appender.max_message_length
        self.max_payload_length = self.appender.max_payload_length
        self.position_bits_to_shift = log.position_bits_to_shift
        self.start_position = self.appender.position
        self.appender.position_limit = self.start_position
        self.appender.on_limit = self._on_limit
        self.is_closed = False
        # The offer API is the appender's own methods (no wrapper call on the hot path): at the limit
        # the appender asks ``_on_limit``, and ``close`` swaps in functions that answer CLOSED.
        self.offer: OfferFunction = self.appender.append
        """Append one message; the new position (> 0) or a negative Aeron status."""
        self.try_claim: ClaimFunction = self.appender.try_claim
        """Reserve an unfragmented frame of ``length`` bytes in ``claim``; commit or abort it."""
        self.offer_block: BlockOfferFunction = self.appender.append_block
        """Append ``buffer[offset:offset + length]``, whole frames already framed for this publication at
        its position (``ExclusiveAppender.append_block``); the new position or a negative Aeron status."""

    def _on_limit(self, position: int) -> int:
        if self.update_limit() and position < self.appender.position_limit:
            return 0
        return BACK_PRESSURED if self.is_connected else NOT_CONNECTED

    def _mark_closed(self) -> None:
        self.is_closed = True
        self.offer = _offer_closed
        self.try_claim = _claim_closed
        self.offer_block = _offer_block_closed

    def update_limit(self) -> bool:
        """Recompute the publisher limit; ``True`` if it moved."""
        return False

    def _raise_limit(self, consumer_position: int) -> bool:
        """Let the publisher run ``term_window`` ahead of ``consumer_position``; ``True`` if that moved
        the limit (it never moves back here)."""
        appender = self.appender
        limit = consumer_position + self._term_window
        if limit > appender.position_limit:
            appender.position_limit = limit
            return True
        return False

    @property
    def position(self) -> int:
        """Where the next message will start."""
        return self.appender.position

    @property
    def position_limit(self) -> int:
        return self.appender.position_limit

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool:
        """Whether a receiver (network) or a subscription (IPC) is there to read what is offered."""

    def close(self) -> None:
        self._mark_closed()


def offer_past_rotation(publication: Publication, payload: bytes | bytearray | memoryview) -> int:
    """``publication.offer(payload)``, offered once more if the first attempt met a term's end
    (``ADMIN_ACTION``: the term was padded and rotated, so the second attempt starts the next term) --
    what every caller that means "offer this message" needs, where Aeron's callers loop."""
    result = publication.offer(payload)
    if result == ADMIN_ACTION:
        result = publication.offer(payload)
    return result


class OfferFunction(Protocol):
    def __call__(self, payload: bytes | bytearray | memoryview, reserved_value: int = 0) -> int: ...


class ClaimFunction(Protocol):
    def __call__(self, length: int, claim: BufferClaim) -> int: ...


class BlockOfferFunction(Protocol):
    def __call__(self, buffer: bytes | bytearray | memoryview, offset: int, length: int) -> int: ...


def _offer_block_closed(buffer: bytes | bytearray | memoryview, offset: int, length: int) -> int:
    return CLOSED


def _offer_closed(payload: bytes | bytearray | memoryview, reserved_value: int = 0) -> int:
    return CLOSED


def _claim_closed(length: int, claim: BufferClaim) -> int:
    return CLOSED


# ---------------------------------------------------------------------------------------- network


@dataclass(slots=True)
class _Receiver:
    limit: int
    time_of_last_sm_ns: int


@dataclass(slots=True)
class _Destination:
    address: Address
    dynamic: bool
    time_of_last_sm_ns: int


class NetworkPublication(Publication):
    """A publication whose log goes out over datagrams (see the module docstring)."""

    def __init__(
        self,
        config: PublicationConfig,
        log: LogBuffers,
        send: SendFunction,
        destinations: list[Address],
        now_ns: int,
        *,
        control_mode: str | None = None,
    ) -> None:
        super().__init__(config, log)
        self._send = send
        self.control_mode = control_mode
        self.destinations: list[_Destination] = [_Destination(a, False, now_ns) for a in destinations]
        self._addresses: list[Address] = list(destinations)
        self.sender_position = self.start_position
        self.sender_limit = self.start_position
        self.receiver_position = self.start_position
        self._receivers: dict[int, _Receiver] = {}
        self._has_sm = False
        self._should_send_setup = True
        self._time_of_last_setup_ns = now_ns - SETUP_TIMEOUT_NS
        self._time_of_last_send_ns = now_ns - HEARTBEAT_TIMEOUT_NS
        self._time_of_last_sm_ns = now_ns
        self._resends: dict[tuple[int, int], int] = {}  # (term_id, term_offset) -> linger deadline
        self._closed_at_ns = 0
        self._scratch = bytearray(64)
        self.mask = config.term_length - 1
        self._min_flow_control = config.flow_control == "min"
        self.is_linger_done = False
        self.spies: list[_Positioned] = []
        """The images of spy subscriptions reading this log in place (the transport attaches them)."""
        self.end_of_stream_position = -1  # the position at close
        self._clean_term_count = self.start_position >> self.position_bits_to_shift
        # counters
        self.datagrams_sent = 0
        self.bytes_sent = 0
        self.setups_sent = 0
        self.heartbeats_sent = 0
        self.retransmits_sent = 0
        self.naks_received = 0
        self.sms_received = 0
        self.short_sends = 0
        self.receivers_refused = 0

    # --------------------------------------------------------------- state

    @property
    def is_connected(self) -> bool:
        return (self._has_sm or self._spies_connect) and not self.is_closed

    @property
    def _spies_connect(self) -> bool:
        """``ssc=true`` with a spy there: the spies are the publication's consumers (Aeron's
        spies-simulate-connection, which a one-member cluster's log uses: nobody else reads it)."""
        return self.config.spies_simulate_connection and bool(self.spies)

    def update_limit(self) -> bool:
        spies = self.spies
        simulated = not self._has_sm and self._spies_connect
        # with receivers the sender's position counts; with only simulating spies, just the spies'
        consumer_position = self.appender.position if simulated else self.sender_position
        if spies:
            for spy in spies:
                if spy.position < consumer_position:
                    consumer_position = spy.position
        if consumer_position >> self.position_bits_to_shift > self._clean_term_count:
            self._clean_behind(consumer_position)
        if not self._has_sm and not simulated:
            return False
        return self._raise_limit(consumer_position)

    def _clean_behind(self, consumer_position: int) -> None:
        """The slowest consumer (the sender, or a spy) has entered term ``t``: zero the partition of term
        ``t + 1``, which held ``t - 2`` (for each term entered since the last time; at most three)."""
        term_count = consumer_position >> self.position_bits_to_shift
        first = max(self._clean_term_count + 1, term_count - 2)
        for count in range(first, term_count + 1):
            self.log.clean_partition((count + 1) % 3)
        self._clean_term_count = term_count

    def close(self) -> None:
        if not self.is_closed:
            self._mark_closed()
            self._closed_at_ns = -1  # set on the next send
            self.end_of_stream_position = self.appender.position

    # --------------------------------------------------------------- destinations

    def add_destination(self, address: Address, now_ns: int, *, dynamic: bool = False) -> None:
        if any(d.address == address for d in self.destinations):
            return
        if len(self.destinations) >= MAX_DESTINATIONS:
            raise TransportError(f"publication has the maximum of {MAX_DESTINATIONS} destinations")
        self.destinations.append(_Destination(address, dynamic, now_ns))
        self._addresses.append(address)
        self._should_send_setup = True
        self._time_of_last_setup_ns = now_ns - SETUP_TIMEOUT_NS

    def remove_destination(self, address: Address) -> bool:
        for i, destination in enumerate(self.destinations):
            if destination.address == address:
                del self.destinations[i]
                self._addresses.remove(address)
                return True
        return False

    def _send_all(self, data: bytes | bytearray | memoryview) -> None:
        send = self._send
        for address in self._addresses:
            if not send(data, address):
                self.short_sends += 1
        self.datagrams_sent += 1
        self.bytes_sent += len(data)

    # --------------------------------------------------------------- control frames in

    def on_status_message(
        self,
        flags: int,
        term_id: int,
        term_offset: int,
        receiver_window: int,
        receiver_id: int,
        source: Address,
        now_ns: int,
    ) -> None:
        self.sms_received += 1
        if self.control_mode == "dynamic":
            for destination in self.destinations:
                if destination.address == source:
                    destination.time_of_last_sm_ns = now_ns
                    break
            else:
                if len(self.destinations) < MAX_DESTINATIONS:
                    self.add_destination(source, now_ns, dynamic=True)
        if flags & _SEND_SETUP:
            if not self.is_closed:
                # a closed publication only serves the receivers it has while it lingers: no new ones
                self._should_send_setup = True
                self._time_of_last_setup_ns = now_ns - SETUP_TIMEOUT_NS
            if term_id == 0 and term_offset == 0 and receiver_window == 0:
                return  # a setup-eliciting message carries no position
        if receiver_window < 0 or receiver_window > self.term_length:
            return
        position = compute_position(term_id, term_offset, self.position_bits_to_shift, self.initial_term_id)
        if position < 0:
            return
        proposed = position + receiver_window
        if self.start_position <= position <= self.sender_position and position > self.receiver_position:
            self.receiver_position = position  # the furthest any receiver has consumed
        self._time_of_last_sm_ns = now_ns
        receiver = self._receivers.get(receiver_id)
        if receiver is None:
            if len(self._receivers) < MAX_RECEIVERS:
                self._receivers[receiver_id] = _Receiver(proposed, now_ns)
            else:
                self.receivers_refused += 1
        else:
            receiver.limit = max(receiver.limit, proposed)
            receiver.time_of_last_sm_ns = now_ns
        if self._min_flow_control:
            limit = min(r.limit for r in self._receivers.values())
        else:
            limit = max(self.sender_limit, proposed)
        # never let the limit run beyond what the log holds behind the producer
        self.sender_limit = max(self.sender_limit, limit)
        if not self._has_sm:
            self._has_sm = True
            self._should_send_setup = False
        elif not (flags & _SEND_SETUP):
            self._should_send_setup = False
        self.update_limit()

    def on_nak(self, term_id: int, term_offset: int, length: int, now_ns: int) -> None:
        self.naks_received += 1
        if length <= 0 or term_offset < 0 or term_offset >= self.term_length or term_offset & 31:
            return
        position = compute_position(term_id, term_offset, self.position_bits_to_shift, self.initial_term_id)
        # Aeron's bound: a term window (plus a message, as PAD may carry the sender past its limit) back
        lowest = max(
            self.start_position, self.sender_position - self.config.term_window - self.max_message_length
        )
        # the sender's term and the one before it are intact; older partitions are cleaned
        lowest = max(lowest, (self.sender_position & ~self.mask) - self.term_length)
        if position < lowest or position >= self.sender_position:
            return
        key = (term_id, term_offset)
        deadline = self._resends.get(key)
        if deadline is not None and now_ns < deadline:
            return
        if deadline is None and len(self._resends) >= MAX_RESENDS:
            self._expire_resends(now_ns)
            if len(self._resends) >= MAX_RESENDS:
                return
        self._resends[key] = now_ns + RETRANSMIT_LINGER_NS
        self._resend(position, min(length, self.sender_position - position))

    def _expire_resends(self, now_ns: int) -> None:
        for key in [k for k, deadline in self._resends.items() if deadline <= now_ns]:
            del self._resends[key]

    def _resend(self, position: int, length: int) -> None:
        remaining = length
        while remaining > 0:
            sent = self._send_block(position, min(remaining, self.mtu))
            if sent <= 0:
                return
            position += sent
            remaining -= sent
            self.retransmits_sent += 1

    # --------------------------------------------------------------- sending

    def send(self, now_ns: int) -> int:
        """One sender duty cycle: SETUP, data within the limits, heartbeats; returns datagrams sent."""
        if not self._addresses:
            return self._check_linger(now_ns)
        work = 0
        if (
            self._should_send_setup
            and not self.is_closed
            and now_ns - self._time_of_last_setup_ns >= SETUP_TIMEOUT_NS
        ):
            self._send_setup(now_ns)
            work += 1
        if self._has_sm and now_ns - self._time_of_last_sm_ns > CONNECTION_TIMEOUT_NS:
            self._on_connection_lost()
        if self._has_sm and self.control_mode == "dynamic":
            self._expire_dynamic_destinations(now_ns)
        if self._min_flow_control and self._receivers:
            self._expire_receivers(now_ns)
        sent = 0
        appender = self.appender
        limit = appender.term_begin_position + appender.term_offset  # what the publisher has appended
        if self.sender_limit < limit:
            limit = self.sender_limit
        position = self.sender_position
        while position < limit and sent < MAX_DATAGRAMS_PER_SEND:
            length = self._send_block(position, min(limit - position, self.mtu))
            if length <= 0:
                break
            position += length
            sent += 1
        if sent:
            self.sender_position = position
            self._time_of_last_send_ns = now_ns
            self.update_limit()  # also cleans, once the sender (and every spy) has entered a new term
            return work + sent
        if now_ns - self._time_of_last_send_ns >= HEARTBEAT_TIMEOUT_NS:
            self._send_heartbeat(now_ns)
            work += 1
        if self.is_closed:
            self._check_linger(now_ns)  # an open publication does not linger
        return work

    def _check_linger(self, now_ns: int) -> int:
        """Aeron's DRAINING then LINGER: once closed and drained -- or with no receiver left to drain to --
        linger for ``linger_ns`` (heartbeats with EOS, answering NAKs), then be done."""
        if self.is_closed:
            if (
                self._closed_at_ns < 0
                and (
                    self.sender_position >= self.appender.position or not self._has_sm or not self._addresses
                )
                and not self.spies  # the transport removes each spy once it has read to the end
            ):
                self._closed_at_ns = now_ns
            if self._closed_at_ns >= 0 and now_ns - self._closed_at_ns >= self.config.linger_ns:
                self.is_linger_done = True
        return 0

    def _send_block(self, position: int, max_length: int) -> int:
        """Send the whole frames at ``position`` that fit in ``max_length`` bytes (at least one frame
        when it fits the MTU); return the stream bytes covered, 0 if nothing is ready."""
        shift = self.position_bits_to_shift
        index = (position >> shift) % 3
        term = self.log.terms[index]
        start = position & self.mask
        term_length = self.term_length
        end_limit = start + max_length
        appender = self.appender
        if not appender.open_claims and not appender.padded[index]:
            # the cut from the appender's frame ends: the last one within reach, if ``start`` is one
            ends = appender.frame_ends[index]
            cut = bisect_right(ends, end_limit) - 1
            if cut >= 0:
                end = ends[cut]
                if start < end < term_length and (
                    start == 0 or ends[bisect_left(ends, start, 0, cut)] == start
                ):
                    self._send_all(term[start:end])
                    return end - start
        offset = start
        unpack = _frame_header
        while offset < term_length:
            header: tuple[int, int, int, int] = unpack(term, offset)
            frame_length = header[0]
            frame_type = header[3]
            if frame_length <= 0:
                break
            aligned = (frame_length + 31) & -32
            if frame_type == _PAD:
                if offset == start:
                    self._send_all(term[start : start + HEADER_LENGTH])
                    return aligned
                break
            if offset + aligned > end_limit:
                break
            offset += aligned
        if offset == start:
            return 0
        self._send_all(term[start:offset])
        return offset - start

    def _send_setup(self, now_ns: int) -> None:
        position = self.sender_position
        shift = self.position_bits_to_shift
        term_id = ((position >> shift) + self.initial_term_id + 0x8000_0000) % 0x1_0000_0000 - 0x8000_0000
        scratch = self._scratch
        _pack_setup(
            scratch,
            0,
            40,
            0,
            0,
            _SETUP,
            position & self.mask,
            self.session_id,
            self.stream_id,
            self.initial_term_id,
            term_id,
            self.term_length,
            self.mtu,
            self.config.ttl,
        )
        self._send_all(memoryview(scratch)[:40])
        self._time_of_last_setup_ns = now_ns
        self.setups_sent += 1

    def _send_heartbeat(self, now_ns: int) -> None:
        position = self.sender_position
        shift = self.position_bits_to_shift
        term_id = ((position >> shift) + self.initial_term_id + 0x8000_0000) % 0x1_0000_0000 - 0x8000_0000
        eos = self.is_closed and self.config.eos and position >= self.appender.position
        write_heartbeat(
            self._scratch,
            0,
            self.session_id,
            self.stream_id,
            term_id,
            position & self.mask,
            end_of_stream=eos,
        )
        self._send_all(memoryview(self._scratch)[:HEADER_LENGTH])
        self._time_of_last_send_ns = now_ns
        self.heartbeats_sent += 1

    def _on_connection_lost(self) -> None:
        self._has_sm = False
        self._should_send_setup = True
        self._receivers.clear()
        # Aeron's driver clamps the publisher limit to the sender position while not connected
        self.appender.position_limit = min(self.appender.position_limit, self.sender_position)

    def _expire_dynamic_destinations(self, now_ns: int) -> None:
        for destination in list(self.destinations):
            if destination.dynamic and now_ns - destination.time_of_last_sm_ns > RECEIVER_TIMEOUT_NS:
                self.remove_destination(destination.address)

    def _expire_receivers(self, now_ns: int) -> None:
        stale = [
            rid for rid, r in self._receivers.items() if now_ns - r.time_of_last_sm_ns > RECEIVER_TIMEOUT_NS
        ]
        for receiver_id in stale:
            del self._receivers[receiver_id]

    @property
    def receiver_count(self) -> int:
        return len(self._receivers)


# -------------------------------------------------------------------------------------------- ipc


class _Positioned(Protocol):
    """An IPC or spy image, as its publication sees it."""

    position: int

    @property
    def subscription(self) -> object: ...


class IpcPublication(Publication):
    """A publication read in place by the subscriptions of the same transport."""

    def __init__(self, config: PublicationConfig, log: LogBuffers) -> None:
        super().__init__(config, log)
        self.subscribers: list[_Positioned] = []
        self.end_of_stream_position = -1

    @property
    def is_connected(self) -> bool:
        return bool(self.subscribers) and not self.is_closed

    def update_limit(self) -> bool:
        if not self.subscribers:
            # as Aeron's IpcPublication: with no subscriber the publisher limit falls back, so offers
            # are NOT_CONNECTED rather than filling a log nobody reads
            self.appender.position_limit = min(self.appender.position_limit, self.appender.position)
            return False
        subscribers = self.subscribers
        if len(subscribers) == 1:
            return self._raise_limit(subscribers[0].position)
        return self._raise_limit(min(subscriber.position for subscriber in subscribers))

    def close(self) -> None:
        if not self.is_closed:
            self._mark_closed()
            self.end_of_stream_position = self.appender.position


def random_session_id(rng: random.Random) -> int:
    """A random int32 outside Aeron's reserved range [-1, 1000]."""
    while True:
        value = rng.randrange(-(2**31), 2**31)
        if not -1 <= value <= 1000:
            return value
