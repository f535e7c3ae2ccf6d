"""Helpers for transport tests: a wire recorder that parses frames independently, collectors and producers.

The wire recorder (``Wire``) is installed as a network's ``tap`` and parses every datagram with plain
``struct`` formats written from Aeron's frame layouts (``docs/transport.md``, "Frames"), not with the
generated codecs the transport itself uses, so the tests check the transport's bytes against the spec
rather than against its own idea of them.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Self

from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.image import ImageLog
from cluster.transport.logbuffer import (
    ADMIN_ACTION,
    BACK_PRESSURED,
    CLOSED,
    NOT_CONNECTED,
    FragmentAssembler,
    Header,
)
from cluster.transport.media import Address, UdpNetwork
from cluster.transport.publication import Publication
from cluster.transport.simnet import LinkConfig, SimNetwork

US = 1_000
MS = 1_000_000
S = 1_000_000_000

PAD, DATA, NAK, SM, ERR, SETUP, RTTM = 0, 1, 2, 3, 4, 5, 6
BEGIN, END, EOS = 0x80, 0x40, 0x20
SEND_SETUP = 0x80
SM_EOS = 0x40

FRAME = struct.Struct("<iBBH")  # frame_length, version, flags, type
DATA_HEADER = struct.Struct("<iBBHiiiiq")  # + term_offset, session, stream, term_id, reserved
SM_HEADER = struct.Struct("<iBBHiiiiiq")  # + session, stream, term_id, term_offset, window, receiver_id
NAK_HEADER = struct.Struct("<iBBHiiiii")  # + session, stream, term_id, term_offset, length
SETUP_HEADER = struct.Struct("<iBBHiiiiiiii")  # + term_offset, session, stream, init, active, tl, mtu, ttl


def position_of(term_id: int, term_offset: int, initial_term_id: int, term_length: int) -> int:
    """The stream position (``docs/transport.md``, "Positions and terms"), written out independently of
    ``logbuffer.compute_position``."""
    term_count = ((term_id - initial_term_id + 2**31) % 2**32) - 2**31
    return term_count * term_length + term_offset


def align32(value: int) -> int:
    return (value + 31) // 32 * 32


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame seen on the wire: when, from where to where, and its header fields by name."""

    time_ns: int
    source: Address
    destination: Address
    type: int
    flags: int
    frame_length: int
    fields: dict[str, int]
    datagram_length: int
    payload: bytes = b""

    @property
    def is_heartbeat(self) -> bool:
        return self.type == DATA and self.frame_length == 0


@dataclass
class Wire:
    """Records every frame every socket of ``network`` sends (before loss), in send order."""

    network: SimNetwork | object
    frames: list[Frame] = field(default_factory=list)
    datagrams: int = 0
    unparsed: int = 0

    def __post_init__(self) -> None:
        self.network.tap = self.on_datagram  # type: ignore[attr-defined]
        self.clock = self.network.clock  # type: ignore[attr-defined]

    def on_datagram(self, source: Address, destination: Address, data: bytes) -> None:
        self.datagrams += 1
        now_ns = self.clock.nano_time()
        if len(data) < 8:
            self.unparsed += 1
            return
        frame_type = FRAME.unpack_from(data, 0)[3]
        if frame_type in (DATA, PAD):
            offset = 0
            while offset + 32 <= len(data):
                values = DATA_HEADER.unpack_from(data, offset)
                length, _, flags, ftype, term_offset, session, stream, term_id, reserved = values
                fields = {
                    "term_offset": term_offset,
                    "session_id": session,
                    "stream_id": stream,
                    "term_id": term_id,
                    "reserved_value": reserved,
                }
                payload = data[offset + 32 : offset + max(length, 32)] if ftype == DATA else b""
                self.frames.append(
                    Frame(now_ns, source, destination, ftype, flags, length, fields, len(data), payload)
                )
                if ftype == PAD or length <= 0:
                    break
                offset += align32(length)
        elif frame_type == SM and len(data) >= 36:
            length, _, flags, _, session, stream, term_id, term_offset, window, rid = SM_HEADER.unpack_from(
                data
            )
            fields = {
                "session_id": session,
                "stream_id": stream,
                "term_id": term_id,
                "term_offset": term_offset,
                "receiver_window": window,
                "receiver_id": rid,
            }
            self.frames.append(Frame(now_ns, source, destination, SM, flags, length, fields, len(data)))
        elif frame_type == NAK and len(data) >= 28:
            length, _, flags, _, session, stream, term_id, term_offset, nak_length = NAK_HEADER.unpack_from(
                data
            )
            fields = {
                "session_id": session,
                "stream_id": stream,
                "term_id": term_id,
                "term_offset": term_offset,
                "length": nak_length,
            }
            self.frames.append(Frame(now_ns, source, destination, NAK, flags, length, fields, len(data)))
        elif frame_type == SETUP and len(data) >= 40:
            values = SETUP_HEADER.unpack_from(data)
            names = (
                "term_offset",
                "session_id",
                "stream_id",
                "initial_term_id",
                "active_term_id",
                "term_length",
                "mtu",
                "ttl",
            )
            fields = dict(zip(names, values[4:], strict=True))
            self.frames.append(
                Frame(now_ns, source, destination, SETUP, values[2], values[0], fields, len(data))
            )
        else:
            self.unparsed += 1

    def of(
        self, frame_type: int, *, source_host: str | None = None, dest_host: str | None = None
    ) -> list[Frame]:
        return [
            f
            for f in self.frames
            if f.type == frame_type
            and (source_host is None or f.source[0] == source_host)
            and (dest_host is None or f.destination[0] == dest_host)
        ]

    def data(self) -> list[Frame]:
        """DATA frames carrying data (not heartbeats)."""
        return [f for f in self.frames if f.type == DATA and f.frame_length > 0]

    def heartbeats(self) -> list[Frame]:
        return [f for f in self.frames if f.is_heartbeat]

    def mark(self) -> int:
        return len(self.frames)


@dataclass(frozen=True, slots=True)
class Message:
    payload: bytes
    position: int
    session_id: int
    term_id: int
    term_offset: int
    flags: int
    reserved_value: int


class Collector:
    """Reassembles fragments and records whole messages with their header fields."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.assembler = FragmentAssembler(self.on_message)
        self.fragments = 0

    def on_message(self, payload: memoryview, header: Header) -> None:
        self.messages.append(
            Message(
                bytes(payload),
                header.position(),
                header.session_id,
                header.term_id,
                header.term_offset,
                header.flags,
                header.reserved_value,
            )
        )

    def __call__(self, payload: memoryview, header: Header) -> None:
        self.fragments += 1
        self.assembler.on_fragment(payload, header)

    @property
    def payloads(self) -> list[bytes]:
        return [m.payload for m in self.messages]

    def by_session(self, session_id: int) -> list[bytes]:
        return [m.payload for m in self.messages if m.session_id == session_id]


def message(index: int, length: int) -> bytes:
    """A recognisable payload: a 4-byte index then a pattern derived from it."""
    if length < 4:
        return bytes((index + j) % 251 for j in range(length))
    head = struct.pack("<I", index)
    return head + bytes((index * 7 + j) % 251 for j in range(length - 4))


class Producer:
    """Offers ``messages`` in order as fast as the publication takes them (an agent: returns work)."""

    def __init__(self, publication: Publication, messages: Sequence[bytes]) -> None:
        self.publication = publication
        self.messages = list(messages)
        self.index = 0
        self.positions: list[int] = []
        self.results: list[int] = []
        self.admin_actions = 0
        self.limit = len(self.messages)
        """Offer no further than this index (tests move it to release messages in batches)."""

    @property
    def done(self) -> bool:
        return self.index >= len(self.messages)

    def __call__(self) -> int:
        work = 0
        while self.index < min(self.limit, len(self.messages)):
            result = self.publication.offer(self.messages[self.index])
            if result == ADMIN_ACTION:
                self.admin_actions += 1
                continue
            if result < 0:
                self.results.append(result)
                assert result in (BACK_PRESSURED, NOT_CONNECTED, CLOSED), result
                break
            self.positions.append(result)
            self.index += 1
            work += 1
        return work


class _World:
    """Transports on one network (each registered as an agent) and the agents that run them."""

    def __init__(self, network: SimNetwork | UdpNetwork, seed: int, term_length: int) -> None:
        self.network = network
        self.seed = seed
        self.term_length = term_length
        self.transports: list[Transport] = []
        self.agents: list[Callable[[], int]] = []

    def _bind_host(self, host: str) -> str:
        return host

    def transport(self, host: str, **config: object) -> Transport:
        options: dict[str, object] = {
            "bind_host": self._bind_host(host),
            "udp_term_length": self.term_length,
            "ipc_term_length": self.term_length,
            "seed": self.seed * 1000 + len(self.transports),
        }
        options.update(config)
        transport = Transport(self.network, TransportConfig(**options))  # type: ignore[arg-type]
        self.transports.append(transport)
        self.agents.append(transport.do_work)
        return transport

    def add(self, *agents: Callable[[], int]) -> None:
        self.agents.extend(agents)

    @property
    def now_ns(self) -> int:
        return self.network.clock.nano_time()

    def close(self) -> None:
        for transport in self.transports:
            transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Sim(_World):
    """A simulated network with transports on hosts, run by ``run_until`` over every registered agent."""

    def __init__(
        self,
        seed: int,
        link: LinkConfig | None = None,
        *,
        term_length: int = 64 * 1024,
    ) -> None:
        self.net = SimNetwork(seed=seed, default_link=link or LinkConfig())
        super().__init__(self.net, seed, term_length)
        self.wire = Wire(self.net)

    def run_until(
        self,
        condition: Callable[[], bool],
        timeout_ns: int = 10 * S,
        agents: Iterable[Callable[[], int]] = (),
        *,
        step_ns: int = MS,
    ) -> bool:
        return self.net.run_until(
            condition, agents=[*self.agents, *agents], timeout_ns=timeout_ns, step_ns=step_ns
        )

    def run_for(
        self, duration_ns: int, agents: Iterable[Callable[[], int]] = (), *, step_ns: int = MS
    ) -> None:
        self.net.run_for(duration_ns, agents=[*self.agents, *agents], step_ns=step_ns)


class RealWorld(_World):
    """``Sim``'s interface over real UDP: every transport binds 127.0.0.1 whatever host it is given, and
    ``run_until`` has a wall-clock deadline (``run_real``)."""

    def __init__(self, seed: int, *, term_length: int = 64 * 1024) -> None:
        super().__init__(UdpNetwork(), seed, term_length)

    def _bind_host(self, host: str) -> str:
        return "127.0.0.1"

    def run_until(self, condition: Callable[[], bool], timeout_ns: int = 10 * S) -> bool:
        return run_real(condition, self.agents, timeout_ns / S)


def poller(
    subscription: object, handler: Callable[[memoryview, Header], object], limit: int = 10
) -> Callable[[], int]:
    """An agent polling ``subscription`` into ``handler``."""
    poll = subscription.poll  # type: ignore[attr-defined]

    def agent() -> int:
        return int(poll(handler, limit))

    return agent


def image_log(transport: Transport, session_id: int, stream_id: int) -> ImageLog:
    """The receiving log of a network session (white box: its loss, window and malformed counters)."""
    for endpoint in transport._receive_endpoints:
        log = endpoint.images.get((session_id, stream_id))
        if log is not None:
            return log
    raise AssertionError(f"no image log for session {session_id} stream {stream_id}")


def run_real(condition: Callable[[], bool], agents: list[Callable[[], int]], timeout_s: float = 20.0) -> bool:
    """Run ``agents`` (duty cycles over real sockets) until ``condition`` holds or ``timeout_s`` of wall
    time pass; sleeps briefly when no agent did any work."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        if sum(agent() for agent in agents) == 0:
            time.sleep(0.0002)
    return condition()
