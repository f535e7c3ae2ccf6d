"""``Publication.offer_block``: appending blocks of already-framed frames (docs/transport.md, "Offer block").

Blocks are built here with plain ``struct`` formats from the frame layout, independently of the
transport's codecs. A bad block raises ``InvalidBlockError`` and leaves the log exactly as it was (bytes,
tails, position and the sender's frame ends); a good one is copied byte for byte and later ``offer``s
continue after it. The replay tests capture a stream with ``block_poll``, rewrite each frame's session and
stream ids, offer the blocks to a publication started at the recorded position (``init-term-id``,
``term-id``, ``term-offset``) and check that a plain subscriber gets the same payloads at the same
positions: over IPC, over ``SimNetwork`` and over real UDP on 127.0.0.1.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.transport_sim import (
    BEGIN,
    DATA,
    END,
    PAD,
    Collector,
    Producer,
    Sim,
    align32,
    message,
    poller,
    run_real,
)

from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.errors import InvalidBlockError, LogBufferError, TransportError
from cluster.transport.image import Subscription
from cluster.transport.logbuffer import (
    ADMIN_ACTION,
    BACK_PRESSURED,
    CLOSED,
    NOT_CONNECTED,
    BufferClaim,
)
from cluster.transport.media import UdpNetwork
from cluster.transport.publication import NetworkPublication, Publication

A_HOST, B_HOST = "10.0.0.1", "10.0.0.2"
TERM = 64 * 1024
MTU = 1408
STREAM = 9
HEADER = struct.Struct("<iBBHiiiiq")
UNFRAGMENTED = BEGIN | END


def i32(value: int) -> int:
    return (value + 2**31) % 2**32 - 2**31


def frame(
    term_offset: int,
    session_id: int,
    stream_id: int,
    term_id: int,
    payload: bytes,
    *,
    flags: int = UNFRAGMENTED,
    frame_type: int = DATA,
    reserved: int = 0,
    length: int | None = None,
) -> bytes:
    """One frame, padded to its aligned length."""
    frame_length = 32 + len(payload) if length is None else length
    header = HEADER.pack(
        frame_length, 0, flags, frame_type, term_offset, session_id, stream_id, term_id, reserved
    )
    data = header + payload
    return data + bytes(align32(max(len(data), frame_length)) - len(data))


def frames_for(pub: Publication, payloads: Iterable[bytes], reserved: int = 0) -> bytes:
    """Unfragmented DATA frames for ``pub`` at its current position."""
    offset = pub.position % TERM
    term_id = i32(pub.initial_term_id + pub.position // TERM)
    out = b""
    for payload in payloads:
        out += frame(offset + len(out), pub.session_id, pub.stream_id, term_id, payload, reserved=reserved)
    return out


@dataclass
class Snapshot:
    bytes: bytes
    tails: list[int]
    position: int
    ends: list[list[int]]
    padded: list[bool]


def snapshot(pub: Publication) -> Snapshot:
    return Snapshot(
        bytes(pub.log.buffer),
        list(pub.log.raw_tails),
        pub.position,
        [list(ends) for ends in pub.appender.frame_ends],
        list(pub.appender.padded),
    )


def ipc(sim: Sim, channel: str = "aeron:ipc") -> tuple[Transport, Publication, Subscription]:
    transport = sim.transport(A_HOST)
    pub = transport.add_publication(channel, STREAM)
    sub = transport.add_subscription("aeron:ipc", STREAM)
    return transport, pub, sub


def drain(sub: Subscription, collector: Collector | None = None) -> Collector:
    """Poll until nothing moves (a poll that only skips padding delivers nothing but moves on)."""
    collector = Collector() if collector is None else collector
    while True:
        positions = [image.position for image in sub.images]
        if not sub.poll(collector, 100) and positions == [image.position for image in sub.images]:
            return collector


# ------------------------------------------------------------------------------------------- the basics


def test_a_block_is_copied_as_it_is_and_offers_continue_after_it() -> None:
    with Sim(1) as sim:
        _, pub, sub = ipc(sim)
        assert pub.offer(b"first") == 64
        block = frames_for(pub, [b"a" * 10, b"b" * 100, b""], reserved=77)
        assert pub.offer_block(block, 0, len(block)) == 64 + len(block) == pub.position
        assert bytes(pub.log.terms[0][64 : 64 + len(block)]) == block
        assert pub.offer(b"last") == 64 + len(block) + 64
        collector = drain(sub)
        assert collector.payloads == [b"first", b"a" * 10, b"b" * 100, b"", b"last"]
        assert [m.reserved_value for m in collector.messages] == [0, 77, 77, 77, 0]
        assert [m.position for m in collector.messages] == [64, 128, 288, 320, 384]


def test_a_block_from_inside_a_larger_buffer_and_a_memoryview() -> None:
    with Sim(2) as sim:
        _, pub, sub = ipc(sim)
        block = frames_for(pub, [b"x" * 40, b"y" * 8])
        buffer = bytearray(b"\xff" * 96) + bytearray(block) + bytearray(b"\xee" * 64)
        assert pub.offer_block(memoryview(buffer), 96, len(block)) == len(block)
        assert drain(sub).payloads == [b"x" * 40, b"y" * 8]


def test_fragments_and_padding_in_a_block() -> None:
    with Sim(4) as sim:
        _, pub, sub = ipc(sim)
        term_id = pub.initial_term_id
        s, t = pub.session_id, STREAM
        block = (
            frame(0, s, t, term_id, b"1" * (MTU - 32), flags=BEGIN)
            + frame(MTU, s, t, term_id, b"2" * 10, flags=END)
            + frame(MTU + 64, s, t, term_id, b"", frame_type=PAD, length=256)  # an aborted claim
            + frame(MTU + 320, s, t, term_id, b"z")
        )
        assert pub.offer_block(block, 0, len(block)) == len(block)
        assert pub.appender.padded[0]  # the sender walks frames in this partition from now on
        assert drain(sub).payloads == [b"1" * (MTU - 32) + b"2" * 10, b"z"]


# ---------------------------------------------------------------------------------------- refusals


def bad_blocks(pub: Publication) -> list[tuple[str, bytes, int, int, str]]:
    """(name, buffer, offset, length, message) for blocks that must be refused at ``pub``'s position."""
    offset = pub.position % TERM
    term_id = i32(pub.initial_term_id + pub.position // TERM)
    s, t = pub.session_id, pub.stream_id
    good = frame(offset, s, t, term_id, b"x" * 20)
    two = good + frame(offset + 64, s, t, term_id, b"y")
    return [
        ("zero length", good, 0, 0, "positive multiple of 32"),
        ("negative length", good, 0, -32, "positive multiple of 32"),
        ("unaligned length", good, 0, 60, "positive multiple of 32"),
        ("past the buffer", good, 32, 64, "outside the buffer"),
        ("negative offset", good, -32, 64, "outside the buffer"),
        ("wrong term offset", frame(offset + 32, s, t, term_id, b"x"), 0, 64, "term offset"),
        ("wrong session", frame(offset, s + 1, t, term_id, b"x"), 0, 64, "session/stream/term"),
        ("wrong stream", frame(offset, s, t + 1, term_id, b"x"), 0, 64, "session/stream/term"),
        ("wrong term", frame(offset, s, t, i32(term_id + 1), b"x"), 0, 64, "session/stream/term"),
        ("a NAK", frame(offset, s, t, term_id, b"x", frame_type=2), 0, 64, "neither DATA nor PAD"),
        ("version 1", good[:4] + b"\x01" + good[5:], 0, 64, "version 1"),
        ("heartbeat", frame(offset, s, t, term_id, b"", length=0), 0, 32, "DATA frame length 0"),
        ("short frame", frame(offset, s, t, term_id, b"", length=31), 0, 32, "DATA frame length 31"),
        ("longer than mtu", frame(offset, s, t, term_id, b"x" * (MTU - 31)), 0, align32(MTU + 1), "mtu"),
        ("short PAD", frame(offset, s, t, term_id, b"", frame_type=PAD, length=8), 0, 32, "PAD frame length"),
        ("frame past the block", good, 0, 32, "runs past the end of the block"),
        ("bad second frame", two[:80] + b"\x07" + two[81:], 0, 128, "session/stream/term"),
        ("trailing zeros", good + bytes(32), 0, 96, "PAD frame length 0"),
        (
            "past the term",
            frame(offset, s, t, term_id, b"", frame_type=PAD, length=TERM),
            0,
            TERM,
            "left in the term",
        ),
    ]


@pytest.mark.parametrize("case", range(19))
def test_a_bad_block_is_refused_and_the_log_is_untouched(case: int) -> None:
    with Sim(5) as sim:
        _, pub, sub = ipc(sim)
        assert pub.offer(b"before") > 0
        name, buffer, offset, length, reason = bad_blocks(pub)[case]
        before = snapshot(pub)
        with pytest.raises(InvalidBlockError, match=reason) as raised:
            pub.offer_block(buffer, offset, length)
        assert isinstance(raised.value, LogBufferError | TransportError) and isinstance(
            raised.value, ValueError
        )
        assert snapshot(pub) == before, name
        assert pub.offer(b"after") > 0
        assert drain(sub).payloads == [b"before", b"after"]


def test_the_bad_block_list_is_all_tested() -> None:
    with Sim(6) as sim:
        _, pub, _ = ipc(sim)
        assert len(bad_blocks(pub)) == 19


@pytest.mark.parametrize(("offset", "length"), [(0.0, 64), (0, "64"), (None, 64)])
def test_offset_and_length_must_be_ints(offset: object, length: object) -> None:
    with Sim(7) as sim:
        _, pub, _ = ipc(sim)
        block = frames_for(pub, [b"x"])
        with pytest.raises(InvalidBlockError, match="must be ints"):
            pub.offer_block(block, offset, length)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- results like offer's


def test_a_closed_publication_answers_closed() -> None:
    with Sim(8) as sim:
        _, pub, _ = ipc(sim)
        block = frames_for(pub, [b"x"])
        pub.close()
        assert pub.offer_block(block, 0, len(block)) == CLOSED


def test_back_pressure_and_not_connected_like_offer() -> None:
    with Sim(9) as sim:
        transport = sim.transport(A_HOST)
        pub = transport.add_publication("aeron:ipc", STREAM)
        block = frames_for(pub, [b"x" * 100])
        assert pub.offer_block(block, 0, len(block)) == NOT_CONNECTED
        sub = transport.add_subscription("aeron:ipc", STREAM)
        while pub.position < TERM // 2:  # the window: half a term ahead of the subscriber
            block = frames_for(pub, [b"x" * 100])
            assert pub.offer_block(block, 0, len(block)) > 0
        block = frames_for(pub, [b"x" * 100])
        before = snapshot(pub)
        assert pub.offer_block(block, 0, len(block)) == BACK_PRESSURED
        assert snapshot(pub) == before and pub.position_limit == TERM // 2
        drain(sub)
        assert pub.offer_block(block, 0, len(block)) == pub.position  # the limit moved on the retry


def test_at_the_end_of_the_term_a_block_rotates_and_asks_for_a_retry() -> None:
    with Sim(10) as sim:
        _, pub, sub = ipc(sim)
        received = Collector()
        term_id = pub.initial_term_id
        while pub.position < TERM - 1024:
            block = frames_for(pub, [b"p" * 992])
            assert pub.offer_block(block, 0, len(block)) > 0
            drain(sub, received)
        pad = frame(
            pub.position, pub.session_id, STREAM, term_id, b"", frame_type=PAD, length=TERM - pub.position
        )
        assert pub.offer_block(pad, 0, len(pad)) == TERM
        block = frame(0, pub.session_id, STREAM, i32(term_id + 1), b"next")
        assert pub.offer_block(block, 0, len(block)) == ADMIN_ACTION  # rotated into the next term
        assert pub.offer_block(block, 0, len(block)) == TERM + 64
        assert pub.offer(b"after") == TERM + 128
        drain(sub, received)
        assert received.payloads[-2:] == [b"next", b"after"]
        assert received.messages[-1].term_id == i32(term_id + 1)


# -------------------------------------------------------------------------- random blocks (hypothesis)


def block_is_valid(pub: Publication, data: bytes, offset: int, length: int) -> bool:
    """The rules of ``offer_block``, written out independently."""
    if length <= 0 or length % 32 or offset < 0 or offset + length > len(data):
        return False
    term_offset = pub.position % TERM
    if length > TERM - term_offset:
        return False
    term_id = i32(pub.initial_term_id + pub.position // TERM)
    at = offset
    while at < offset + length:
        flen, version, _, ftype, foff, session, stream, tid, _ = HEADER.unpack_from(data, at)
        if version != 0 or ftype not in (DATA, PAD):
            return False
        if ftype == DATA and not 32 <= flen <= MTU:
            return False
        if ftype == PAD and flen < 32:
            return False
        if foff != term_offset + at - offset or (session, stream, tid) != (pub.session_id, STREAM, term_id):
            return False
        at += align32(flen)
        if at > offset + length:
            return False
    return True


@st.composite
def mangled_blocks(draw: st.DrawFn) -> tuple[list[int], list[tuple[int, int]], int, int]:
    sizes = draw(st.lists(st.integers(0, MTU - 32), min_size=1, max_size=6))
    edits = draw(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3))
    start = draw(st.integers(-64, 64))
    trim = draw(st.integers(-64, 64))
    return sizes, edits, start, trim


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mangled_blocks(), st.integers(0, 40))
def test_random_blocks_are_taken_whole_or_refused_with_the_log_untouched(
    case: tuple[list[int], list[tuple[int, int]], int, int], prefix: int
) -> None:
    sizes, edits, start, trim = case
    with Sim(11) as sim:
        _, pub, sub = ipc(sim)
        for i in range(prefix):
            assert pub.offer(message(i, 30)) > 0
        block = bytearray(frames_for(pub, [message(100 + i, size) for i, size in enumerate(sizes)]))
        for where, value in edits:
            block[where % len(block)] = value
        data = bytes(32) + bytes(block) + bytes(32)
        offset = 32 + (start if abs(start) < 32 else 0)
        length = len(block) + trim
        valid = block_is_valid(pub, data, offset, length)
        event("taken" if valid else "refused")
        before = snapshot(pub)
        try:
            result = pub.offer_block(data, offset, length)
        except InvalidBlockError:
            assert not valid
            assert snapshot(pub) == before
            return
        assert valid and result == before.position + length
        at = before.position % TERM
        assert bytes(pub.log.terms[0][at : at + length]) == data[offset : offset + length]
        assert pub.offer(b"after") == result + 64
        assert drain(sub).payloads[-1] == b"after"


# ---------------------------------------------------------------------------------- over the network


def test_the_sender_sends_offered_blocks_and_a_remote_subscriber_gets_them() -> None:
    with Sim(12) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        channel = f"aeron:udp?endpoint={B_HOST}:40456"
        sub = b.add_subscription(channel, STREAM)
        pub = a.add_publication(channel, STREAM)
        assert sim.run_until(lambda: pub.is_connected)
        s, t, term_id = pub.session_id, STREAM, pub.initial_term_id
        block = (
            frame(0, s, t, term_id, b"a" * 500)
            + frame(544, s, t, term_id, b"", frame_type=PAD, length=96)
            + frame(640, s, t, term_id, b"b" * 1300, reserved=5)
        )
        assert pub.offer_block(block, 0, len(block)) == len(block)
        assert pub.offer(b"c") > 0
        collector = Collector()
        assert sim.run_until(lambda: len(collector.messages) == 3, agents=[poller(sub, collector)])
        assert collector.payloads == [b"a" * 500, b"b" * 1300, b"c"]
        assert [m.reserved_value for m in collector.messages] == [0, 5, 0]
        assert b.counters.malformed_datagrams == 0
        image = sub.images[0]
        assert image.position == pub.position


# ------------------------------------------------------------------------------------------- replay


@dataclass
class Captured:
    data: bytes
    term_offset: int
    term_id: int


class Capture:
    """Copies each block ``block_poll`` hands over."""

    def __init__(self) -> None:
        self.blocks: list[Captured] = []

    def __call__(self, term: memoryview, offset: int, length: int, session_id: int, term_id: int) -> None:
        self.blocks.append(Captured(bytes(term[offset : offset + length]), offset, term_id))


def rewrite(block: bytes, session_id: int, stream_id: int) -> bytearray:
    """The block with every frame's session id and stream id replaced, as the archive's replay does."""
    out = bytearray(block)
    at = 0
    while at < len(out):
        frame_length = struct.unpack_from("<i", out, at)[0]
        struct.pack_into("<ii", out, at + 12, session_id, stream_id)
        at += align32(frame_length)
    return out


class Replayer:
    """Offers rewritten blocks in order, retrying on ADMIN_ACTION and back pressure (an agent)."""

    def __init__(self, pub: Publication, blocks: list[Captured]) -> None:
        self.pub = pub
        self.blocks = [rewrite(b.data, pub.session_id, pub.stream_id) for b in blocks]
        self.index = 0
        self.admin_actions = 0

    @property
    def done(self) -> bool:
        return self.index == len(self.blocks)

    def __call__(self) -> int:
        work = 0
        while self.index < len(self.blocks):
            block = self.blocks[self.index]
            result = self.pub.offer_block(block, 0, len(block))
            if result == ADMIN_ACTION:
                self.admin_actions += 1
                continue
            if result < 0:
                assert result in (BACK_PRESSURED, NOT_CONNECTED), result
                break
            self.index += 1
            work += 1
        return work


Runner = Callable[[Callable[[], bool], list[Callable[[], int]]], bool]

SOURCE_STREAM, REPLAY_STREAM, REPLAY_SESSION = 1001, 1002, 0x0BAD_CAFE
SIZES = [0, 7, 100, MTU - 32, MTU - 31, 3000, 5000, 200, 64]


def record_and_replay(
    transports: tuple[Transport, Transport],
    channel: str,
    channel_of: Callable[[Subscription], str],
    replay_channel: str,
    run: Runner,
) -> None:
    """Publish on ``channel`` (``channel_of`` gives the publication side once the subscription is bound),
    capture a term and more with ``block_poll``, replay it from the middle of the stream into a publication
    on ``replay_channel`` started there, and compare what two plain subscribers get."""
    pub_transport, sub_transport = transports
    recorder = sub_transport.add_subscription(channel, SOURCE_STREAM)
    reference = sub_transport.add_subscription(channel_of(recorder), SOURCE_STREAM)
    pub = pub_transport.add_publication(channel_of(recorder), SOURCE_STREAM)
    producer = Producer(pub, [message(i, SIZES[i % len(SIZES)]) for i in range(80)])
    capture = Capture()
    expected = Collector()
    assert run(
        lambda: producer.done and bool(recorder.images) and recorder.images[0].position == pub.position,
        [producer, lambda: recorder.block_poll(capture, 4096), poller(reference, expected)],
    )
    assert run(lambda: len(expected.messages) == 80, [poller(reference, expected)])
    assert pub.position > TERM + TERM // 2  # more than a term, so a PAD and a rotation are replayed
    assert any(HEADER.unpack_from(b.data)[3] == PAD for b in capture.blocks)
    # start the replay a few blocks in, where a message begins, as a replay from a recorded position does
    first = next(i for i, b in enumerate(capture.blocks) if i >= 3 and HEADER.unpack_from(b.data)[2] & BEGIN)
    start = capture.blocks[first]
    start_position = i32(start.term_id - pub.initial_term_id) * TERM + start.term_offset
    want = [m for m in expected.messages if m.position > start_position]
    params = (
        f"init-term-id={pub.initial_term_id}|term-id={start.term_id}|term-offset={start.term_offset}"
        f"|term-length={TERM}|mtu={MTU}|session-id={REPLAY_SESSION}"
    )
    replayed_sub = sub_transport.add_subscription(replay_channel, REPLAY_STREAM)
    base = channel_of(replayed_sub)
    replayed_pub = pub_transport.add_exclusive_publication(
        base + ("|" if "?" in base else "?") + params, REPLAY_STREAM
    )
    assert replayed_pub.position == start_position
    replayer = Replayer(replayed_pub, capture.blocks[first:])
    got = Collector()
    assert run(
        lambda: replayer.done and len(got.messages) == len(want), [replayer, poller(replayed_sub, got)]
    )
    assert got.payloads == [m.payload for m in want]
    assert [m.position for m in got.messages] == [m.position for m in want]
    assert [(m.term_id, m.term_offset, m.flags) for m in got.messages] == [
        (m.term_id, m.term_offset, m.flags) for m in want
    ]
    assert {m.session_id for m in got.messages} == {REPLAY_SESSION}
    assert replayer.admin_actions >= 1  # the replay crossed a term end
    assert replayed_pub.position == pub.position
    assert replayed_pub.offer(b"live") == pub.position + 64  # a replay publication goes on like any other


def same(subscription: Subscription) -> str:
    return subscription.channel


def test_replay_over_ipc() -> None:
    with Sim(20) as sim:
        transport = sim.transport(A_HOST)
        record_and_replay(
            (transport, transport),
            "aeron:ipc",
            same,
            "aeron:ipc",
            lambda condition, agents: sim.run_until(condition, agents=agents),
        )


def test_replay_over_the_simulated_network() -> None:
    with Sim(21) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        record_and_replay(
            (a, b),
            f"aeron:udp?endpoint={B_HOST}:40456",
            same,
            f"aeron:udp?endpoint={B_HOST}:40457",
            lambda condition, agents: sim.run_until(condition, agents=agents),
        )
        assert b.counters.malformed_datagrams == 0


def test_replay_over_real_udp() -> None:
    network = UdpNetwork()
    config = {"bind_host": "127.0.0.1", "udp_term_length": TERM}
    with (
        Transport(network, TransportConfig(seed=31, **config)) as a,  # type: ignore[arg-type]
        Transport(network, TransportConfig(seed=32, **config)) as b,  # type: ignore[arg-type]
    ):

        def bound(subscription: Subscription) -> str:
            assert subscription.local_address is not None
            return f"aeron:udp?endpoint=127.0.0.1:{subscription.local_address[1]}"

        record_and_replay(
            (a, b),
            "aeron:udp?endpoint=127.0.0.1:0",
            bound,
            "aeron:udp?endpoint=127.0.0.1:0",
            lambda condition, agents: run_real(condition, [a.do_work, b.do_work, *agents]),
        )
        assert b.counters.malformed_datagrams == 0


def test_replay_publication_is_a_network_publication_over_udp() -> None:
    with Sim(22) as sim:
        transport = sim.transport(A_HOST)
        pub = transport.add_exclusive_publication(
            f"aeron:udp?endpoint={B_HOST}:1|init-term-id=5|term-id=7|term-offset=1024|term-length=64k", 3
        )
        assert isinstance(pub, NetworkPublication) and pub.position == 2 * TERM + 1024
        block = frame(1024, pub.session_id, 3, 7, b"x")
        assert pub.offer_block(block, 0, len(block)) == NOT_CONNECTED  # no receiver yet


def test_claims_and_blocks_mix() -> None:
    with Sim(23) as sim:
        _, pub, sub = ipc(sim)
        claim = BufferClaim()
        assert pub.try_claim(10, claim) == 64
        claim.buffer[:] = b"c" * 10
        claim.commit()
        block = frames_for(pub, [b"b"])
        assert pub.offer_block(block, 0, len(block)) == 128
        assert drain(sub).payloads == [b"c" * 10, b"b"]
