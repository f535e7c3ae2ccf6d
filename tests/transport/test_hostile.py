"""Hostile datagrams: whatever arrives at a socket, the transport never raises and a real stream survives.

A rogue socket sends datagrams -- random bytes, truncated frames, and frames with a valid-looking header
but at least one bad field -- to a subscriber's endpoint and to a publication's control socket, in
between the datagrams of a real stream. Each kind of bad datagram has the counter it must move
(``Transport.counters``, the image log's ``malformed_packets``/``out_of_window_packets``), and the
stream must still arrive intact and in order. Bad status messages and NAKs must change nothing: on a
lossless link the publication never retransmits, and it never sends beyond what the real receiver's
status messages allow.

Hostile frames never carry a fully valid frame for the real session: a spoofed but well-formed frame
(an end-of-stream heartbeat, a status message opening the window) is accepted by Aeron too and is not
what this file is about.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.transport_sim import (
    DATA,
    DATA_HEADER,
    ERR,
    MS,
    NAK,
    NAK_HEADER,
    PAD,
    RTTM,
    SETUP,
    SETUP_HEADER,
    SM,
    SM_HEADER,
    Collector,
    Producer,
    S,
    Sim,
    Wire,
    align32,
    image_log,
    message,
    poller,
    position_of,
)

from cluster.transport import image
from cluster.transport.driver import DEFAULT_MAX_RECEIVE_TERM_LENGTH, Transport, TransportConfig
from cluster.transport.image import ImageLog
from cluster.transport.logbuffer import ExclusiveAppender, LogBuffers, _unpack_data
from cluster.transport.media import Address, UdpNetwork
from cluster.transport.publication import NetworkPublication

A_HOST, B_HOST, ROGUE_HOST = "10.0.0.1", "10.0.0.2", "10.0.0.66"
CHANNEL = f"aeron:udp?endpoint={B_HOST}:40456"
STREAM = 7
TERM = 64 * 1024
INT32 = st.integers(-(2**31), 2**31 - 1)

# which counter each kind of hostile datagram must move by one
TRANSPORT_MALFORMED = "b.malformed_datagrams"
PUBLISHER_MALFORMED = "a.malformed_datagrams"
IMAGE_MALFORMED = "image.malformed_packets"
OUT_OF_WINDOW = "image.out_of_window_packets"
UNKNOWN = "b.unknown_stream_datagrams"
REFUSED_TERM_LENGTH = "b.setups_refused_term_length"
REFUSED_MTU = "b.setups_refused_mtu"
ERRORS = "a.error_frames"
IGNORED = "ignored"  # a well-formed control frame with bad values: no effect, no counter


@dataclass(frozen=True)
class Stream:
    """What a hostile sender knows of the real stream (it can see the wire)."""

    session_id: int
    stream_id: int
    initial_term_id: int
    position: int  # the sender's position when the datagram is built

    @property
    def term_id(self) -> int:
        return self.initial_term_id + self.position // TERM

    @property
    def term_offset(self) -> int:
        return self.position % TERM


@dataclass(frozen=True)
class Hostile:
    """One hostile datagram: a kind and its parameters (so hypothesis prints something readable)."""

    kind: str
    a: int = 0
    b: int = 0

    def target(self) -> str:
        return "publisher" if self.kind.startswith(("sm_", "nak_", "control_")) else "subscriber"

    def counter(self) -> str:
        return COUNTERS[self.kind]

    def build(self, s: Stream) -> bytes:
        def data(
            frame_length: int,
            term_offset: int,
            *,
            flags: int = 0xC0,
            frame_type: int = DATA,
            version: int = 0,
            session_id: int = s.session_id,
            stream_id: int = s.stream_id,
            term_id: int = s.term_id,
        ) -> bytes:
            return DATA_HEADER.pack(
                frame_length, version, flags, frame_type, term_offset, session_id, stream_id, term_id, 0
            )

        def frame(payload_length: int, term_offset: int, **kw: int) -> bytes:
            head = data(32 + payload_length, term_offset, **kw)
            return head + bytes(align32(32 + payload_length) - 32)

        offset = s.term_offset
        kind = self.kind
        if kind == "truncated":
            return data(132, offset)[: self.a]
        if kind == "bad_version":
            return data(32, offset, version=self.a) + bytes(32)
        if kind == "bad_frame_length":
            return data(self.a, offset) + bytes(32)  # a 64-byte datagram
        if kind == "bad_term_offset":
            return data(64, self.a) + bytes(32)
        if kind == "heartbeat_bad_term_offset":
            return data(0, self.a)
        if kind == "mixed_session":
            return frame(32, offset) + frame(32, offset + 64, session_id=self.a)
        if kind == "mixed_stream":
            return frame(32, offset) + frame(32, offset + 64, stream_id=self.a)
        if kind == "mixed_term":
            other = self.a if self.a != s.term_id else s.term_id + 1
            return frame(32, offset) + frame(32, offset + 64, term_id=other)
        if kind == "wrong_offset_in_chain":
            other = self.a if self.a != offset + 64 else offset + 96
            return frame(32, offset) + frame(32, other)
        if kind == "bad_type_in_chain":
            return frame(32, offset) + frame(32, offset + 64, frame_type=self.a)
        if kind == "pad_not_last":
            return data(64, offset, frame_type=PAD) + frame(0, offset + 64)
        if kind == "frame_past_term_end":
            start = TERM - 32 * (self.a + 1)
            return data(32 * (self.a + 2), start) + bytes(32 * (self.a + 1))
        if kind == "stale":
            return frame(64, offset, term_id=s.term_id - 4 - self.a)
        if kind == "future":
            return frame(64, offset, term_id=s.term_id + 2 + self.a)
        if kind.startswith("setup_bad_"):
            term_length, mtu, term_offset = TERM, 1408, 0
            if kind == "setup_bad_term_length":
                term_length = self.a
            elif kind == "setup_bad_mtu":
                mtu = self.a
            else:
                term_offset = self.a
            return SETUP_HEADER.pack(
                40, 0, 0, SETUP, term_offset, 5555, s.stream_id, 0, 0, term_length, mtu, 0
            )
        if kind == "setup_truncated":
            return SETUP_HEADER.pack(40, 0, 0, SETUP, 0, 5555, s.stream_id, 0, 0, TERM, 1408, 0)[: self.a]
        if kind == "unknown_type":
            return struct.pack("<iBBH", 8 + self.b, 0, 0, self.a) + bytes(self.b)
        if kind == "rttm_short":
            return struct.pack("<iBBH", 40, 0, 0, RTTM) + bytes(self.a)
        # ---- to the publication's control socket
        if kind == "sm_truncated":
            return SM_HEADER.pack(36, 0, 0, SM, s.session_id, s.stream_id, s.term_id, 0, 4096, 1)[: self.a]
        if kind == "sm_bad_window":
            return SM_HEADER.pack(36, 0, 0, SM, s.session_id, s.stream_id, s.term_id, offset, self.a, 1)
        if kind == "sm_other_session":
            return SM_HEADER.pack(36, 0, 0, SM, self.a, s.stream_id, s.term_id + 1, 0, TERM // 2, 2)
        if kind == "sm_bad_version":
            return SM_HEADER.pack(36, self.a, 0, SM, s.session_id, s.stream_id, s.term_id + 1, 0, 4096, 3)
        if kind == "nak_truncated":
            return NAK_HEADER.pack(28, 0, 0, NAK, s.session_id, s.stream_id, s.term_id, 0, 64)[: self.a]
        if kind == "nak_bad_range":
            term_offset, length = (self.a, 64) if self.b == 0 else (0, self.a)
            return NAK_HEADER.pack(28, 0, 0, NAK, s.session_id, s.stream_id, s.term_id, term_offset, length)
        if kind == "nak_far_term":
            return NAK_HEADER.pack(28, 0, 0, NAK, s.session_id, s.stream_id, s.term_id + 3 + self.a, 0, 64)
        if kind == "nak_other_session":
            return NAK_HEADER.pack(28, 0, 0, NAK, self.a, s.stream_id, s.term_id, 0, 64)
        if kind == "control_data":
            return data(64, offset, frame_type=self.a) + bytes(32)
        if kind == "control_err":
            return struct.pack(
                "<iBBHiiqqii", 40 + self.a, 0, 0, ERR, s.session_id, s.stream_id, 0, 0, 1, self.a
            ) + bytes(self.a)
        if kind == "control_rttm_short":
            return struct.pack("<iBBH", 40, 0, 0, RTTM) + bytes(self.a)
        raise AssertionError(kind)


COUNTERS = {
    "truncated": TRANSPORT_MALFORMED,
    "bad_version": TRANSPORT_MALFORMED,
    "bad_frame_length": IMAGE_MALFORMED,
    "bad_term_offset": IMAGE_MALFORMED,
    "heartbeat_bad_term_offset": IMAGE_MALFORMED,
    "mixed_session": IMAGE_MALFORMED,
    "mixed_stream": IMAGE_MALFORMED,
    "mixed_term": IMAGE_MALFORMED,
    "wrong_offset_in_chain": IMAGE_MALFORMED,
    "bad_type_in_chain": IMAGE_MALFORMED,
    "pad_not_last": IMAGE_MALFORMED,
    "frame_past_term_end": IMAGE_MALFORMED,
    "stale": OUT_OF_WINDOW,
    "future": OUT_OF_WINDOW,
    "setup_bad_term_length": REFUSED_TERM_LENGTH,
    "setup_bad_mtu": REFUSED_MTU,
    "setup_bad_term_offset": TRANSPORT_MALFORMED,
    "setup_truncated": TRANSPORT_MALFORMED,
    "unknown_type": UNKNOWN,
    "rttm_short": TRANSPORT_MALFORMED,
    "sm_truncated": PUBLISHER_MALFORMED,
    "sm_bad_window": IGNORED,
    "sm_other_session": IGNORED,
    "sm_bad_version": PUBLISHER_MALFORMED,
    "nak_truncated": PUBLISHER_MALFORMED,
    "nak_bad_range": IGNORED,
    "nak_far_term": IGNORED,
    "nak_other_session": IGNORED,
    "control_data": PUBLISHER_MALFORMED,
    "control_err": ERRORS,
    "control_rttm_short": PUBLISHER_MALFORMED,
}

REAL_SESSION = 424242  # the publication's session (set on its channel)
not_real = INT32.filter(lambda v: v not in (REAL_SESSION, 0))
unaligned = st.integers(-(2**31), 2**31 - 1).filter(lambda v: v % 32 != 0)
bad_offsets = st.one_of(unaligned, st.integers(-(2**31), -1), st.integers(TERM, 2**31 - 1))
# a SETUP may start a stream at the very end of a term (an exclusive publication's term-offset=term-length)
bad_setup_offsets = st.one_of(unaligned, st.integers(-(2**31), -1), st.integers(TERM + 1, 2**31 - 1))
bad_term_lengths = st.one_of(
    st.integers(-(2**31), 2**16 - 1),
    st.integers(2**16, 2**30).filter(lambda v: v & (v - 1) != 0),
    st.integers(2**30 + 1, 2**31 - 1),
    st.sampled_from([2**k for k in range(25, 31)]),  # valid, but over the default receive maximum (16 MiB)
)
bad_mtus = st.one_of(
    st.integers(-(2**31), 32),
    st.integers(33, 65504).filter(lambda v: v % 32 != 0),
    st.integers(65505, 2**31 - 1),
    st.sampled_from([TERM // 8 + 32, 16384, 65504]),  # longer than the longest message of a 64k term
)


ZERO = st.just(0)


def kind(
    name: str, a: st.SearchStrategy[int] = ZERO, b: st.SearchStrategy[int] = ZERO
) -> st.SearchStrategy[Hostile]:
    return st.builds(Hostile, st.just(name), a, b)


hostile_datagrams = st.one_of(
    kind("truncated", st.integers(0, 31)),
    kind("bad_version", st.integers(1, 255)),
    kind("bad_frame_length", st.one_of(st.integers(-(2**31), 31).filter(bool), st.integers(65, 2**31 - 1))),
    kind("bad_term_offset", bad_offsets),
    kind("heartbeat_bad_term_offset", bad_offsets),
    kind("mixed_session", not_real),
    kind("mixed_stream", INT32.filter(lambda v: v != STREAM)),
    kind("mixed_term", INT32),  # any id but the right one (see ``build``)
    kind("wrong_offset_in_chain", st.integers(0, TERM // 32 - 1).map(lambda v: v * 32)),
    kind("bad_type_in_chain", st.integers(2, 0xFFFF)),
    kind("pad_not_last"),
    kind("frame_past_term_end", st.integers(0, 8)),
    kind("stale", st.integers(0, 1000)),
    kind("future", st.integers(0, 1000)),
    kind("setup_bad_term_length", bad_term_lengths),
    kind("setup_bad_mtu", bad_mtus),
    kind("setup_bad_term_offset", bad_setup_offsets),
    kind("setup_truncated", st.integers(8, 39)),
    kind("unknown_type", st.integers(7, 0xFFFF), st.integers(0, 64)),
    kind("rttm_short", st.integers(0, 31)),
    kind("sm_truncated", st.integers(8, 35)),
    kind("sm_bad_window", st.one_of(st.integers(-(2**31), -1), st.integers(TERM + 1, 2**31 - 1))),
    kind("sm_other_session", not_real),
    kind("sm_bad_version", st.integers(1, 255)),
    kind("nak_truncated", st.integers(8, 27)),
    st.one_of(
        kind("nak_bad_range", bad_offsets, st.just(0)),
        kind("nak_bad_range", st.integers(-(2**31), 0), st.just(1)),
    ),
    kind("nak_far_term", st.integers(0, 1000)),
    kind("nak_other_session", not_real),
    kind("control_data", st.sampled_from([DATA, PAD, SETUP])),
    kind("control_err", st.integers(0, 100)),
    kind("control_rttm_short", st.integers(0, 31)),
)


def log_buffers_within_the_receive_maximum(term_length: int, initial_term_id: int) -> LogBuffers:
    """Stands in for the ``LogBuffers`` of image logs: a SETUP over the maximum that got through fails
    the test here, before its log (up to 3 GiB) is allocated."""
    if term_length > DEFAULT_MAX_RECEIVE_TERM_LENGTH:
        raise AssertionError(f"an image log of term length {term_length} was created")
    return LogBuffers(term_length, initial_term_id)


def read_counter(name: str, a: Transport, b: Transport, log: ImageLog) -> int:
    owner, attribute = name.split(".")
    source = {"a": a.counters, "b": b.counters, "image": log}[owner]
    return int(getattr(source, attribute))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), attacks=st.lists(hostile_datagrams, min_size=1, max_size=25))
def test_hostile_datagrams_are_counted_and_change_nothing(seed: int, attacks: list[Hostile]) -> None:
    with Sim(seed) as sim, mock.patch.object(image, "LogBuffers", log_buffers_within_the_receive_maximum):
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        sub = b.add_subscription(CHANNEL, STREAM)
        pub = a.add_publication(f"{CHANNEL}|session-id={REAL_SESSION}", STREAM)
        assert isinstance(pub, NetworkPublication)
        assert sim.run_until(lambda: pub.is_connected)
        log = image_log(b, REAL_SESSION, STREAM)
        publisher_address = sim.wire.of(SETUP)[0].source
        rogue = sim.net.open((ROGUE_HOST, 6666))
        targets: dict[str, Address] = {"subscriber": (B_HOST, 40456), "publisher": publisher_address}
        names = sorted({*COUNTERS.values()} - {IGNORED})
        before = {name: read_counter(name, a, b, log) for name in names}
        collector = Collector()
        producer = Producer(pub, [message(i, [20, 700, 3000][i % 3]) for i in range(60)])
        pending = list(attacks)

        def attacker() -> int:  # one hostile datagram between rounds of the real stream
            if not pending:
                return 0
            attack = pending.pop(0)
            stream = Stream(REAL_SESSION, STREAM, pub.initial_term_id, pub.sender_position)
            assert rogue.send(attack.build(stream), targets[attack.target()])
            return 1

        sim.add(producer, attacker, poller(sub, collector, 3))
        assert sim.run_until(lambda: len(collector.messages) == 60 and not pending, 10 * S)
        sim.run_for(5 * MS)
        assert collector.payloads == producer.messages
        assert sub.images[0].position == pub.position and len(sub.images) == 1
        expected = Counter(attack.counter() for attack in attacks)
        moved = {name: read_counter(name, a, b, log) - before[name] for name in names}
        assert moved == {name: expected.get(name, 0) for name in names}, attacks
        assert pub.retransmits_sent == 0  # bad NAKs are not answered (and the link loses nothing)
        limit = max(
            position_of(f.fields["term_id"], f.fields["term_offset"], pub.initial_term_id, TERM)
            + f.fields["receiver_window"]
            for f in sim.wire.of(SM, source_host=B_HOST)
        )
        assert pub.sender_position <= limit  # bad status messages did not open the window
        rogue.close()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    datagrams=st.lists(
        st.tuples(st.sampled_from(["subscriber", "publisher"]), st.binary(min_size=0, max_size=300)),
        min_size=1,
        max_size=30,
    ),
)
def test_random_bytes_never_raise_and_the_stream_survives(
    seed: int, datagrams: list[tuple[str, bytes]]
) -> None:
    with Sim(seed) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        sub = b.add_subscription(CHANNEL, STREAM)
        pub = a.add_publication(CHANNEL, STREAM)
        assert sim.run_until(lambda: pub.is_connected)
        rogue = sim.net.open((ROGUE_HOST, 6666))
        targets = {"subscriber": (B_HOST, 40456), "publisher": sim.wire.of(SETUP)[0].source}
        received_before = a.counters.datagrams_received + b.counters.datagrams_received
        collector = Collector()
        producer = Producer(pub, [message(i, [20, 3000][i % 2]) for i in range(40)])
        pending = list(datagrams)

        def attacker() -> int:
            if not pending:
                return 0
            target, payload = pending.pop(0)
            rogue.send(payload, targets[target])
            return 1

        sim.add(producer, attacker, poller(sub, collector, 3))
        assert sim.run_until(lambda: len(collector.messages) == 40 and not pending, 10 * S)
        assert collector.payloads == producer.messages
        received = a.counters.datagrams_received + b.counters.datagrams_received - received_before
        assert received >= len(datagrams)
        rogue.close()


def test_hostile_datagrams_over_real_udp() -> None:
    """The same kinds of datagrams from a raw socket over 127.0.0.1, into a real stream."""
    network = UdpNetwork()
    wire = Wire(network)
    config = {"bind_host": "127.0.0.1", "udp_term_length": TERM}
    with (
        Transport(network, TransportConfig(seed=1, **config)) as a,  # type: ignore[arg-type]
        Transport(network, TransportConfig(seed=2, **config)) as b,  # type: ignore[arg-type]
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rogue,
        mock.patch.object(image, "LogBuffers", log_buffers_within_the_receive_maximum),
    ):
        sub = b.add_subscription("aeron:udp?endpoint=127.0.0.1:0", STREAM)
        assert sub.local_address is not None
        pub = a.add_publication(
            f"aeron:udp?endpoint=127.0.0.1:{sub.local_address[1]}|session-id={REAL_SESSION}", STREAM
        )
        assert isinstance(pub, NetworkPublication)
        collector = Collector()
        producer = Producer(pub, [message(i, [20, 700, 3000][i % 3]) for i in range(300)])
        agents = [a.do_work, b.do_work, poller(sub, collector, 3)]
        deadline = time.monotonic() + 10
        while not pub.is_connected and time.monotonic() < deadline:
            for agent in agents:
                agent()
        setups = [f for f in wire.frames if f.type == SETUP]
        targets = {"subscriber": sub.local_address, "publisher": setups[0].source}
        rng = random.Random(5)
        attacks = [_seeded_hostile(rng) for _ in range(300)]
        sent = 0
        while (len(collector.messages) < 300 or sent < len(attacks)) and time.monotonic() < deadline:
            producer()
            if sent < len(attacks):
                attack = attacks[sent]
                stream = Stream(REAL_SESSION, STREAM, pub.initial_term_id, pub.sender_position)
                rogue.sendto(attack.build(stream), targets[attack.target()])
                if rng.random() < 0.2:
                    rogue.sendto(
                        rng.randbytes(rng.randrange(0, 200)), targets[rng.choice(["subscriber", "publisher"])]
                    )
                sent += 1
            for agent in agents:
                agent()
        assert collector.payloads == producer.messages
        assert sent == len(attacks)
        log = image_log(b, REAL_SESSION, STREAM)
        assert b.counters.malformed_datagrams > 0 and a.counters.malformed_datagrams > 0
        assert log.malformed_packets > 0 and log.out_of_window_packets > 0
        assert pub.retransmits_sent == 0


def _seeded_hostile(rng: random.Random) -> Hostile:
    """A hostile datagram drawn from a seeded ``random.Random`` (for the real-UDP test)."""
    name = rng.choice(sorted(COUNTERS))
    if name in ("bad_term_offset", "heartbeat_bad_term_offset"):
        return Hostile(name, rng.choice([rng.randrange(1, 32), -32, TERM, TERM + 64 * rng.randrange(100)]))
    if name == "bad_frame_length":
        return Hostile(name, rng.choice([-1, -(2**31), 1, 31, 65, 2**31 - 1]))
    if name in ("mixed_session", "sm_other_session", "nak_other_session"):
        return Hostile(name, rng.randrange(2000, 2**31))
    if name == "mixed_stream":
        return Hostile(name, STREAM + rng.randrange(1, 1000))
    if name == "mixed_term":
        return Hostile(name, rng.randrange(-(2**31), 2**31))
    if name == "wrong_offset_in_chain":
        return Hostile(name, 32 * rng.randrange(TERM // 64, TERM // 32))
    if name == "bad_type_in_chain":
        return Hostile(name, rng.randrange(2, 0xFFFF))
    if name == "setup_bad_term_length":
        return Hostile(name, rng.choice([70000, 2**30, 2**31 - 1, -(2**31)]))
    if name == "setup_bad_mtu":
        return Hostile(name, rng.choice([1000, 65536, TERM // 8 + 32]))
    if name == "setup_bad_term_offset":
        return Hostile(name, rng.choice([33, -32, TERM + 32]))
    if name in ("truncated", "rttm_short", "control_rttm_short"):
        return Hostile(name, rng.randrange(0, 31))
    if name == "setup_truncated":
        return Hostile(name, rng.randrange(8, 39))
    if name == "sm_truncated":
        return Hostile(name, rng.randrange(8, 35))
    if name == "nak_truncated":
        return Hostile(name, rng.randrange(8, 27))
    if name in ("bad_version", "sm_bad_version"):
        return Hostile(name, rng.randrange(1, 256))
    if name == "unknown_type":
        return Hostile(name, rng.randrange(7, 0xFFFF), rng.randrange(0, 64))
    if name == "sm_bad_window":
        return Hostile(name, rng.choice([-1, TERM + 1, 2**31 - 1]))
    if name == "nak_bad_range":
        return rng.choice([Hostile(name, 33, 0), Hostile(name, -64, 0), Hostile(name, 0, 1)])
    if name == "control_data":
        return Hostile(name, rng.choice([DATA, PAD, SETUP]))
    return Hostile(name, rng.randrange(0, 100))


def _image_log(term_offset: int) -> ImageLog:
    return ImageLog(
        session_id=REAL_SESSION,
        stream_id=STREAM,
        initial_term_id=5,
        active_term_id=5,
        term_offset=term_offset,
        term_length=TERM,
        mtu=1408,
        source=(A_HOST, 1),
        destination=mock.Mock(),
        receiver_id=1,
        now_ns=0,
    )


@settings(max_examples=300, deadline=None)
@given(
    frames=st.integers(1, 20),
    payload=st.integers(0, 200),
    term_offset=st.sampled_from([0, 32, 4096, TERM - 20 * 256, TERM - 64]),
    flips=st.lists(st.tuples(st.integers(0, 20 * 256 - 1), st.integers(0, 255)), max_size=3),
    cut=st.integers(0, 64),
)
def test_a_datagram_of_alike_frames_is_checked_as_the_walk_checks_it(
    frames: int, payload: int, term_offset: int, flips: list[tuple[int, int]], cut: int
) -> None:
    # ``_check_frames`` takes a batch of alike DATA frames in one strided comparison; whatever bytes a
    # datagram holds, it must find what the frame-by-frame walk finds
    log = LogBuffers(TERM, 5, term_id=5, term_offset=term_offset)
    writer = ExclusiveAppender(log, REAL_SESSION, STREAM, 8192)
    end = term_offset
    for _ in range(frames):
        if writer.append(bytes(payload)) < 0:
            break  # the term is full (and padded): the datagram is what fitted before
        end = writer.term_offset
    length = end - term_offset
    if length == 0:
        return
    data = bytearray(log.terms[0][term_offset : term_offset + length])
    for at, value in flips:
        if at < len(data):
            data[at] = value
    length = max(32, length - cut)
    buffer = memoryview(bytearray(65536))
    buffer[:length] = data[:length]
    first = _unpack_data(buffer, 0)
    receiver = _image_log(term_offset)
    assert receiver._check_frames(buffer, length, first, term_offset) == receiver._walk_frames(
        buffer, length, first, term_offset
    )
