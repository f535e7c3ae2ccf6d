"""``Image.block_poll``: blocks of whole frames straight from the term (docs/transport.md, "Block poll").

A block is checked against the publisher's own log bytes at the same position -- headers, flags and
reserved values included -- and its frames are parsed here with plain ``struct`` formats written from
the frame layout, not with the transport's codecs. The rules: DATA frames up to the limit but at least
one whole frame, a PAD frame ends a block and is a block of its own when first, never past the term end,
the position moves only when the handler returns.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
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
    position_of,
)

from cluster.transport.errors import LogBufferError, TransportError
from cluster.transport.image import Image, Subscription
from cluster.transport.logbuffer import ADMIN_ACTION, BufferClaim
from cluster.transport.publication import Publication

A_HOST, B_HOST = "10.0.0.1", "10.0.0.2"
TERM = 64 * 1024
MTU = 1408
STREAM = 9
HEADER = struct.Struct(
    "<iBBHiiiiq"
)  # frame_length, version, flags, type, term_offset, session, stream, term, reserved


@dataclass(frozen=True)
class ParsedFrame:
    frame_length: int
    flags: int
    type: int
    term_offset: int
    session_id: int
    stream_id: int
    term_id: int
    reserved_value: int
    payload: bytes


def parse_frames(block: bytes, term_offset: int) -> list[ParsedFrame]:
    """The frames of a block, which must be whole, back to back, each at its own term offset."""
    frames = []
    offset = 0
    while offset < len(block):
        length, version, flags, ftype, frame_offset, session, stream, term_id, reserved = HEADER.unpack_from(
            block, offset
        )
        assert version == 0 and length >= 32 and ftype in (DATA, PAD)
        assert frame_offset == term_offset + offset
        payload = block[offset + 32 : offset + length] if ftype == DATA else b""
        frames.append(
            ParsedFrame(length, flags, ftype, frame_offset, session, stream, term_id, reserved, payload)
        )
        offset += align32(length)
    assert offset == len(block), "the block ends inside a frame"
    return frames


@dataclass
class Block:
    position: int
    term_offset: int
    data: bytes
    session_id: int
    term_id: int
    frames: list[ParsedFrame]


class Blocks:
    """A block handler that keeps a copy of every block, and checks it against the publisher's log."""

    def __init__(self, publication: Publication | None = None) -> None:
        self.blocks: list[Block] = []
        self.publication = publication

    def __call__(self, term: memoryview, offset: int, length: int, session_id: int, term_id: int) -> None:
        assert isinstance(term, memoryview) and len(term) == TERM
        data = bytes(term[offset : offset + length])
        pub = self.publication
        if pub is not None:
            position = position_of(term_id, offset, pub.initial_term_id, TERM)
            index = (position // TERM) % 3
            assert bytes(pub.log.terms[index][offset : offset + length]) == data  # exactly as published
            assert session_id == pub.session_id
        position = -1 if pub is None else position_of(term_id, offset, pub.initial_term_id, TERM)
        self.blocks.append(Block(position, offset, data, session_id, term_id, parse_frames(data, offset)))

    def messages(self) -> list[bytes]:
        """The messages the DATA frames of all blocks carry, fragments put back together."""
        out: list[bytes] = []
        pending = b""
        for block in self.blocks:
            for frame in block.frames:
                if frame.type != DATA:
                    continue
                if frame.flags & BEGIN:
                    pending = b""
                pending += frame.payload
                if frame.flags & END:
                    out.append(pending)
        return out


def i32(value: int) -> int:
    return (value + 2**31) % 2**32 - 2**31


def ipc_pair(sim: Sim, channel: str = "aeron:ipc") -> tuple[Publication, Subscription, Image]:
    transport = sim.transport(A_HOST)
    pub = transport.add_publication(channel, STREAM)
    sub = transport.add_subscription("aeron:ipc", STREAM)
    return pub, sub, sub.images[0]


def offer_all(pub: Publication, payloads: list[bytes], reserved: int = 0) -> list[int]:
    positions = []
    for payload in payloads:
        while (result := pub.offer(payload, reserved)) == ADMIN_ACTION:
            pass
        assert result > 0, result
        positions.append(result)
    return positions


# ------------------------------------------------------------------------------------------------ IPC


def test_a_block_is_the_frames_exactly_as_they_are_in_the_term() -> None:
    with Sim(1) as sim:
        pub, _, image = ipc_pair(sim)
        payloads = [message(i, size) for i, size in enumerate([0, 1, 100, MTU - 32, 5000, 31, 33])]
        positions = offer_all(pub, payloads, reserved=0x0123_4567_89AB_CDEF)
        blocks = Blocks(pub)
        consumed = image.block_poll(blocks, TERM)
        assert consumed == positions[-1] == image.position
        assert len(blocks.blocks) == 1
        (block,) = blocks.blocks
        assert (block.term_offset, block.session_id, block.term_id) == (
            0,
            pub.session_id,
            pub.initial_term_id,
        )
        assert len(block.data) == consumed
        assert all(f.reserved_value == 0x0123_4567_89AB_CDEF for f in block.frames)
        assert all(f.stream_id == STREAM and f.session_id == pub.session_id for f in block.frames)
        assert [f.flags for f in block.frames[3:5]] == [0xC0, BEGIN]  # 5000 bytes: fragments
        assert blocks.messages() == payloads
        assert image.block_poll(blocks, TERM) == 0 and len(blocks.blocks) == 1


def test_a_block_holds_whole_frames_up_to_the_limit() -> None:
    with Sim(2) as sim:
        pub, _, image = ipc_pair(sim)
        offer_all(pub, [message(i, 100) for i in range(10)])  # frames of 132 -> 160 bytes
        blocks = Blocks(pub)
        assert image.block_poll(blocks, 500) == 480  # three frames; a fourth would end at 640
        assert image.block_poll(blocks, 160) == 160
        assert image.block_poll(blocks, 319) == 160
        assert image.block_poll(blocks, 10_000) == 5 * 160
        assert [len(b.frames) for b in blocks.blocks] == [3, 1, 1, 5]
        assert blocks.messages() == [message(i, 100) for i in range(10)]


def test_the_first_frame_is_taken_whole_even_when_it_is_longer_than_the_limit() -> None:
    with Sim(3) as sim:
        pub, _, image = ipc_pair(sim)
        offer_all(pub, [message(0, 1000), message(1, 10)])
        blocks = Blocks(pub)
        assert image.block_poll(blocks, 1) == align32(1032)  # one frame, never nothing
        assert image.block_poll(blocks, 1) == 64
        assert blocks.messages() == [message(0, 1000), message(1, 10)]


def test_padding_ends_a_block_and_is_a_block_of_its_own() -> None:
    with Sim(4) as sim:
        pub, _, image = ipc_pair(sim)
        frame = align32(1000 + 32)  # 1056
        count = TERM // frame  # 62 frames: 65472 bytes, 64 left, then a 1000-byte message does not fit
        payloads = [message(i, 1000) for i in range(count + 2)]
        half = count // 2  # the publication window is half a term: offer in two goes
        blocks = Blocks(pub)
        offer_all(pub, payloads[:half])
        assert image.block_poll(blocks, TERM) == half * frame
        offer_all(pub, payloads[half:count])
        assert pub.offer(payloads[count]) == ADMIN_ACTION  # the PAD goes in, the term rotates
        assert image.block_poll(blocks, TERM) == half * frame  # stops before the PAD
        assert image.block_poll(blocks, 1) == TERM - count * frame  # the PAD alone, whole, past the limit
        pad = blocks.blocks[2]
        assert [f.type for f in pad.frames] == [PAD] and pad.frames[0].frame_length == TERM - count * frame
        assert pad.term_offset == count * frame and image.position == TERM
        offer_all(pub, payloads[count:])
        assert image.block_poll(blocks, TERM) == 2 * frame  # the next term
        last = blocks.blocks[3]
        assert last.term_offset == 0 and last.term_id == i32(pub.initial_term_id + 1)
        assert blocks.messages() == payloads


def test_an_aborted_claim_is_padding_in_mid_term() -> None:
    with Sim(5) as sim:
        pub, _, image = ipc_pair(sim)
        offer_all(pub, [b"a" * 10])
        claim = BufferClaim()
        assert pub.try_claim(200, claim) > 0
        claim.abort()
        offer_all(pub, [b"b" * 10])
        blocks = Blocks(pub)
        assert image.block_poll(blocks, TERM) == 64
        assert image.block_poll(blocks, TERM) == 256  # the aborted claim, a PAD of 232 bytes
        assert image.block_poll(blocks, TERM) == 64
        assert [[f.type for f in b.frames] for b in blocks.blocks] == [[DATA], [PAD], [DATA]]
        assert blocks.messages() == [b"a" * 10, b"b" * 10]


def test_a_claim_not_yet_committed_ends_the_block() -> None:
    with Sim(6) as sim:
        pub, _, image = ipc_pair(sim)
        offer_all(pub, [b"a" * 10])
        claim = BufferClaim()
        assert pub.try_claim(100, claim) > 0
        offer_all(pub, [b"c" * 10])
        blocks = Blocks(pub)
        assert image.block_poll(blocks, TERM) == 64
        assert image.block_poll(blocks, TERM) == 0  # the claim's length is negative until it commits
        claim.buffer[:] = b"b" * 100
        claim.commit()
        assert image.block_poll(blocks, TERM) == 160 + 64
        assert blocks.messages() == [b"a" * 10, b"b" * 100, b"c" * 10]


def test_a_handler_that_raises_leaves_the_position_and_gets_the_block_again() -> None:
    with Sim(7) as sim:
        pub, _, image = ipc_pair(sim)
        offer_all(pub, [message(i, 50) for i in range(3)])

        def failing(term: memoryview, offset: int, length: int, session_id: int, term_id: int) -> None:
            raise RuntimeError("disk full")

        with pytest.raises(RuntimeError, match="disk full"):
            image.block_poll(failing, TERM)
        assert image.position == 0
        blocks = Blocks(pub)
        assert image.block_poll(blocks, TERM) == 3 * 96
        assert blocks.messages() == [message(i, 50) for i in range(3)]


@pytest.mark.parametrize("limit", [0, -1])
def test_the_limit_must_be_positive(limit: int) -> None:
    with Sim(8) as sim:
        pub, _, image = ipc_pair(sim)
        offer_all(pub, [b"x"])
        with pytest.raises(LogBufferError, match="block_length_limit must be positive") as raised:
            image.block_poll(Blocks(), limit)
        assert isinstance(raised.value, TransportError)
        assert image.position == 0


def test_a_closed_image_gives_nothing() -> None:
    with Sim(9) as sim:
        pub, sub, image = ipc_pair(sim)
        offer_all(pub, [b"x"])
        sub.close()
        assert image.is_closed and image.block_poll(Blocks(), TERM) == 0


def test_block_poll_consumption_releases_ipc_back_pressure() -> None:
    with Sim(10) as sim:
        pub, _, image = ipc_pair(sim)
        producer = Producer(pub, [message(i, 1000) for i in range(400)])
        blocks = Blocks(pub)
        sim.add(producer, lambda: image.block_poll(blocks, 4096))
        assert sim.run_until(lambda: producer.done and image.position == pub.position)
        assert blocks.messages() == producer.messages
        assert pub.position > 4 * TERM  # several rotations: cleaning never hit an unread block
        assert all(len(b.data) <= 4096 or len(b.frames) == 1 for b in blocks.blocks)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from([0, 1, 31, 32, 100, 500, MTU - 32, MTU - 31, 3000, 8192]), min_size=1, max_size=40
    ),
    st.lists(st.integers(1, 3 * MTU), min_size=1, max_size=8),
)
def test_blocks_of_any_limit_are_whole_frames_and_together_the_whole_stream(
    sizes: list[int], limits: list[int]
) -> None:
    with Sim(11) as sim:
        pub, _, image = ipc_pair(sim)
        payloads = [message(i, sizes[i % len(sizes)]) for i in range(150)]
        producer = Producer(pub, payloads)
        blocks = Blocks(pub)
        calls = [0]

        def consume() -> int:
            calls[0] += 1
            before = image.position
            limit = limits[calls[0] % len(limits)]
            count = len(blocks.blocks)
            length = image.block_poll(blocks, limit)
            assert image.position == before + length
            if length:
                block = blocks.blocks[count]
                assert block.position == before and len(block.data) == length
                assert block.term_offset + length <= TERM  # never past the end of the term
                if any(f.type == PAD for f in block.frames):
                    assert len(block.frames) == 1  # padding is a block of its own
                elif len(block.frames) > 1:
                    assert length <= limit  # more than one frame only within the limit
            return length

        sim.add(producer, consume)
        assert sim.run_until(lambda: producer.done and image.position == pub.position)
        assert blocks.messages() == payloads
        data = b"".join(b.data for b in blocks.blocks)
        assert len(data) == pub.position


# ------------------------------------------------------------------------------------------------ UDP


def test_udp_image_blocks_are_the_publisher_bytes_over_many_terms() -> None:
    with Sim(12) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        sub = b.add_subscription(f"aeron:udp?endpoint={B_HOST}:40456", STREAM)
        pub = a.add_publication(f"aeron:udp?endpoint={B_HOST}:40456", STREAM)
        payloads = [message(i, [10, 1000, 3000, 200][i % 4]) for i in range(300)]
        producer = Producer(pub, payloads)
        blocks = Blocks(pub)  # checks each block against the publisher's term bytes
        sim.add(producer, lambda: sub.block_poll(blocks, 8192))
        assert sim.run_until(lambda: producer.done and sub.images and sub.images[0].position == pub.position)
        image = sub.images[0]
        assert blocks.messages() == payloads
        assert pub.position > 4 * TERM
        assert blocks.blocks[0].position == image.join_position == 0
        assert {b.session_id for b in blocks.blocks} == {pub.session_id}


def test_subscription_block_poll_takes_a_block_from_each_image() -> None:
    with Sim(13) as sim:
        transport = sim.transport(A_HOST)
        pubs = [transport.add_publication("aeron:ipc", STREAM) for _ in range(2)]
        sub = transport.add_subscription("aeron:ipc", STREAM)
        for i, pub in enumerate(pubs):
            offer_all(pub, [message(i, 100)] * 3)
        blocks = Blocks()
        assert sub.block_poll(blocks, 200) == 2 * 160  # one frame from each image
        assert sorted(b.session_id for b in blocks.blocks) == sorted(p.session_id for p in pubs)
        assert sub.block_poll(blocks, TERM) == 2 * 320
        assert sub.block_poll(blocks, TERM) == 0


def test_block_poll_and_poll_read_the_same_stream() -> None:
    with Sim(14) as sim:
        transport = sim.transport(A_HOST)
        pub = transport.add_publication("aeron:ipc", STREAM)
        by_block = transport.add_subscription("aeron:ipc", STREAM)
        by_fragment = transport.add_subscription("aeron:ipc", STREAM)
        producer = Producer(pub, [message(i, [5, 2000, 700][i % 3]) for i in range(200)])
        blocks = Blocks(pub)
        collector = Collector()
        sim.add(producer, lambda: by_block.block_poll(blocks, 3000), poller(by_fragment, collector))
        assert sim.run_until(lambda: producer.done and len(collector.messages) == 200)
        assert sim.run_until(lambda: by_block.images[0].position == pub.position)
        assert blocks.messages() == collector.payloads == producer.messages


# ------------------------------------------------------------------------------- committed_block_poll


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(0, 2 * MTU), min_size=1, max_size=6),
    st.lists(st.integers(1, 3 * TERM), min_size=1, max_size=6),
    st.booleans(),
)
def test_committed_blocks_are_whole_frames_and_together_the_whole_stream(
    sizes: list[int], limits: list[int], aborted_claims: bool
) -> None:
    """``committed_block_poll`` on an IPC image: every block is the publisher's bytes, ends on a frame
    end within the limit (found in the appender's frame index, or by the walk when the index cannot
    say), PAD frames may sit anywhere in it, and together the blocks are the whole stream."""
    with Sim(14) as sim:
        pub, _, image = ipc_pair(sim)
        payloads = [message(i, sizes[i % len(sizes)]) for i in range(200)]
        producer = Producer(pub, payloads)
        blocks = Blocks(pub)  # checks each block against the publisher's term bytes; parse_frames
        calls = [0]
        claim = BufferClaim()

        def consume() -> int:
            calls[0] += 1
            if aborted_claims and calls[0] % 7 == 0 and pub.try_claim(40, claim) > 0:
                claim.abort()  # padding amid the frames
            before = image.position
            limit = limits[calls[0] % len(limits)]
            count = len(blocks.blocks)
            length = image.committed_block_poll(blocks, limit)
            assert image.position == before + length
            if length:
                block = blocks.blocks[count]  # parse_frames has checked the frames tile the block
                assert block.position == before and len(block.data) == length
                assert block.term_offset + length <= TERM
                if len(block.frames) > 1:
                    assert length <= limit
            return length

        sim.add(producer, consume)
        assert sim.run_until(lambda: producer.done and image.position == pub.position)
        assert blocks.messages() == payloads
        assert len(b"".join(b.data for b in blocks.blocks)) == pub.position


def test_committed_blocks_of_a_udp_image_end_at_its_rebuild_position() -> None:
    with Sim(15) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        sub = b.add_subscription(f"aeron:udp?endpoint={B_HOST}:40457", STREAM)
        pub = a.add_publication(f"aeron:udp?endpoint={B_HOST}:40457", STREAM)
        payloads = [message(i, [10, 1000, 3000, 200][i % 4]) for i in range(300)]
        producer = Producer(pub, payloads)
        blocks = Blocks(pub)

        def consume() -> int:
            image = sub.images[0] if sub.images else None
            if image is None:
                return 0
            log = image.image_log
            assert log is not None
            length = image.committed_block_poll(blocks, 16384)
            assert image.position <= log.rebuild_position
            return length

        sim.add(producer, consume)
        assert sim.run_until(lambda: producer.done and sub.images and sub.images[0].position == pub.position)
        assert blocks.messages() == payloads
        assert pub.position > 4 * TERM
