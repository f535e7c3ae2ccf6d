"""Log buffers against Aeron's LogBufferDescriptor, ExclusiveTermAppender, TermReader and FragmentAssembler.

Expected positions are worked by hand from Aeron's formulas (``docs/transport.md``, "Positions and
terms"); frame headers are checked with ``struct`` against the DATA/PAD layout, not with the codecs
under test.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.transport import logbuffer as lb
from cluster.transport.errors import TransportError
from cluster.transport.logbuffer import ControlledAction

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
KIB64 = 64 * 1024
SHIFT64 = 16
DATA_HEADER = struct.Struct("<iBBHiiiiq")
SESSION_ID, STREAM_ID = 0x1234, 100


def i32(value: int) -> int:
    return (value + 2**31) % 2**32 - 2**31


# ------------------------------------------------------------------------------------- position math


@pytest.mark.parametrize(
    ("term_id", "term_offset", "initial_term_id", "position"),
    [
        (7, 0, 7, 0),
        (7, 1024, 7, 1024),
        (8, 0, 7, 65536),
        (9, 96, 7, 2 * 65536 + 96),
        (10, 65504, 7, 3 * 65536 + 65504),
        (-5, 0, -5, 0),
        (-3, 64, -5, 2 * 65536 + 64),
        (0, 32, -5, 5 * 65536 + 32),
        # term ids wrap at int32 max: MAX-1, MAX, MIN, MIN+1 are terms 0..3
        (I32_MAX, 0, I32_MAX - 1, 65536),
        (I32_MIN, 0, I32_MAX - 1, 2 * 65536),
        (I32_MIN + 1, 32, I32_MAX - 1, 3 * 65536 + 32),
        # the last term of a stream, and Java's int overflow past it
        (I32_MAX, 0, 0, I32_MAX * 65536),
        (I32_MIN, 0, 0, I32_MIN * 65536),
        (I32_MAX, 32, I32_MIN, -65536 + 32),
    ],
)
def test_compute_position_matches_aerons_int32_term_count(
    term_id: int, term_offset: int, initial_term_id: int, position: int
) -> None:
    assert lb.compute_position(term_id, term_offset, SHIFT64, initial_term_id) == position
    assert lb.compute_term_begin_position(term_id, SHIFT64, initial_term_id) == position - term_offset


def test_position_inverse_at_the_wrap() -> None:
    position = 3 * 65536 + 32
    assert lb.compute_term_id(position, SHIFT64, I32_MAX - 1) == I32_MIN + 1
    assert lb.compute_term_offset(position, KIB64) == 32
    assert lb.partition_index(I32_MIN + 1, I32_MAX - 1) == 0
    assert lb.index_by_position(position, SHIFT64) == 0
    assert lb.partition_index(I32_MIN, I32_MAX - 1) == 2


def test_small_helpers() -> None:
    assert lb.align(0, 32) == 0 and lb.align(1, 32) == 32 and lb.align(32, 32) == 32 and lb.align(33) == 64
    assert lb.position_bits_to_shift(KIB64) == 16
    assert lb.position_bits_to_shift(16 * 1024 * 1024) == 24
    assert lb.position_bits_to_shift(1 << 30) == 30
    assert lb.max_message_length(KIB64) == 8192
    assert lb.max_message_length(16 * 1024 * 1024) == 2 * 1024 * 1024
    assert lb.max_message_length(1 << 30) == 16 * 1024 * 1024
    assert lb.max_payload(1408) == 1376
    assert lb.max_stream_position(KIB64) == KIB64 * 2**31
    assert lb.pack_tail(-2, 96) == -2 * 2**32 + 96
    assert lb.tail_term_id(lb.pack_tail(-2, 96)) == -2
    assert lb.tail_term_offset(lb.pack_tail(-2, 96), KIB64) == 96
    assert lb.tail_term_offset(lb.pack_tail(5, KIB64 + 64), KIB64) == KIB64


@given(
    shift=st.integers(16, 30),
    initial_term_id=st.integers(I32_MIN, I32_MAX),
    term_count=st.integers(0, I32_MAX),
    data=st.data(),
)
def test_term_id_and_offset_invert_compute_position(
    shift: int, initial_term_id: int, term_count: int, data: st.DataObject
) -> None:
    term_length = 1 << shift
    term_offset = data.draw(st.integers(0, term_length - 1))
    term_id = i32(initial_term_id + term_count)
    position = lb.compute_position(term_id, term_offset, shift, initial_term_id)
    assert position == term_count * term_length + term_offset
    assert 0 <= position < lb.max_stream_position(term_length)
    assert lb.compute_term_id(position, shift, initial_term_id) == term_id
    assert lb.compute_term_offset(position, term_length) == term_offset
    assert lb.partition_index(term_id, initial_term_id) == term_count % 3
    assert lb.index_by_position(position, shift) == term_count % 3
    assert lb.index_by_term_count(term_count) == term_count % 3


@pytest.mark.parametrize(
    ("term_length", "words"),
    [
        (32 * 1024, "less than min length of 65536: 32768"),
        (2**31, "more than max length of 1073741824"),
        (KIB64 + 32, "not a power of 2: 65568"),
        (0, "less than min"),
    ],
)
def test_check_term_length_rejects(term_length: int, words: str) -> None:
    with pytest.raises(lb.InvalidTermLengthError, match=words) as info:
        lb.check_term_length(term_length)
    assert isinstance(info.value, TransportError)


def test_check_term_length_accepts_powers_of_two_in_range() -> None:
    for shift in range(16, 31):
        lb.check_term_length(1 << shift)


@pytest.mark.parametrize("mtu", [0, 32, 65536, 1400, 65504 + 32])
def test_check_mtu_rejects(mtu: int) -> None:
    with pytest.raises(lb.InvalidMtuError, match="mtu"):
        lb.check_mtu(mtu)


def test_check_mtu_accepts() -> None:
    for mtu in (64, 1408, 8192, 65504):
        lb.check_mtu(mtu)


# ---------------------------------------------------------------------------------------- log buffers


def test_log_buffers_initial_tails_are_aerons() -> None:
    log = lb.LogBuffers(KIB64, 7)
    assert [lb.tail_term_id(t) for t in log.raw_tails] == [7, 5, 6]
    assert [t & 0xFFFF_FFFF for t in log.raw_tails] == [0, 0, 0]
    assert log.active_term_count == 0 and log.active_partition_index == 0
    assert len(log.terms) == 3 and all(len(t) == KIB64 for t in log.terms)


def test_log_buffers_start_mid_stream() -> None:
    log = lb.LogBuffers(KIB64, 0, term_id=5, term_offset=1024)
    assert log.active_term_count == 5 and log.active_partition_index == 2
    assert log.raw_tails[2] == lb.pack_tail(5, 1024)
    assert lb.tail_term_id(log.raw_tails[0]) == 3 and lb.tail_term_id(log.raw_tails[1]) == 4
    appender = lb.ExclusiveAppender(log, SESSION_ID, STREAM_ID, 1408)
    assert (appender.term_id, appender.term_offset) == (5, 1024)
    assert appender.position == 5 * KIB64 + 1024
    assert appender.append(b"x" * 10) == 5 * KIB64 + 1024 + 64
    header = DATA_HEADER.unpack_from(log.terms[2], 1024)
    assert header == (42, 0, 0xC0, 1, 1024, SESSION_ID, STREAM_ID, 5, 0)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"term_id": 1, "term_offset": 33}, "multiple of 32"),
        ({"term_id": 1, "term_offset": KIB64 + 32}, "multiple of 32"),
        ({"term_id": 2**31}, "term_id is not an int32"),
        ({"buffer": bytearray(100)}, "must be writable and hold 3 x 65536 bytes: 100 bytes"),
        ({"buffer": bytes(3 * KIB64)}, "read-only"),
    ],
)
def test_log_buffers_reject_bad_configuration(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(lb.LogBufferError, match=words):
        lb.LogBuffers(KIB64, 0, **kwargs)


def test_rotation_cleans_the_partition_after_the_new_term() -> None:
    log = lb.LogBuffers(KIB64, 0)
    for term in log.terms:
        term[:] = b"\xff" * KIB64
    assert log.rotate(0) == 1
    assert log.active_partition_index == 1 and log.raw_tails[1] == lb.pack_tail(1, 0)
    assert bytes(log.terms[2]) == bytes(KIB64)
    assert bytes(log.terms[0]) == b"\xff" * KIB64


# ---------------------------------------------------------------------------------- append and read


def check_frame(term: memoryview, offset: int, term_id: int) -> tuple[int, int, int]:
    """Assert the frame at ``offset`` is a valid DATA or PAD frame; return (type, flags, aligned length)."""
    assert offset % 32 == 0
    length, version, flags, frame_type, term_offset, session_id, stream_id, frame_term_id, _ = (
        DATA_HEADER.unpack_from(term, offset)
    )
    assert version == 0 and term_offset == offset and frame_term_id == term_id
    assert (session_id, stream_id) == (SESSION_ID, STREAM_ID)
    assert frame_type in (0, 1)
    assert length >= 32 and offset + length <= len(term)
    if frame_type == 0:
        assert offset + length == len(term) and flags == 0xC0
    else:
        assert flags in (0xC0, 0x80, 0x40, 0x00)
    return frame_type, flags, lb.align(length)


def check_term(term: memoryview, term_id: int, tail: int, start: int = 0) -> None:
    """Every frame from ``start`` to ``tail`` is valid and they tile the term; only the last may be PAD."""
    offset = start
    in_message = False
    while offset < tail:
        frame_type, flags, aligned = check_frame(term, offset, term_id)
        if frame_type == 1:
            assert in_message == (not flags & 0x80), "BEGIN only outside a message"
            in_message = not flags & 0x40
        else:
            assert not in_message
        offset += aligned
    assert offset == tail and not in_message


class Consumer:
    """Follows the stream across terms with a TermReader and a FragmentAssembler."""

    def __init__(self, log: lb.LogBuffers, position: int) -> None:
        self.log = log
        self.position = position
        self.messages: list[tuple[bytes, int, int]] = []
        self.reader = lb.TermReader(log.initial_term_id, log.term_length)
        self.assembler = lb.FragmentAssembler(self.on_message, max_message_length=log.term_length // 8)

    def on_message(self, payload: memoryview, header: lb.Header) -> None:
        self.messages.append((bytes(payload), header.position(), header.reserved_value))

    def poll(self, limit_position: int | None = None) -> int:
        log = self.log
        total = 0
        while True:
            index = lb.index_by_position(self.position, log.position_bits_to_shift)
            offset = lb.compute_term_offset(self.position, log.term_length)
            limit = log.term_length
            if limit_position is not None:
                limit = min(limit, offset + limit_position - self.position)
            fragments, new_offset = self.reader.read(log.terms[index], offset, self.assembler, 7, limit)
            total += fragments
            if new_offset == offset:
                return total
            self.position += new_offset - offset


def payload_of(n: int, seed: int) -> bytes:
    return bytes((seed + i * 7) & 0xFF for i in range(n))


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 4 * 1408 + 100), min_size=1, max_size=80),
    initial_term_id=st.sampled_from([0, 7, -5, I32_MAX - 1, I32_MIN]),
    start_terms=st.integers(0, 3),
    start_offset=st.integers(0, KIB64 // 32).map(lambda x: x * 32),
)
def test_append_then_read_reproduces_messages_in_order(
    sizes: list[int], initial_term_id: int, start_terms: int, start_offset: int
) -> None:
    term_id = i32(initial_term_id + start_terms)
    log = lb.LogBuffers(KIB64, initial_term_id, term_id=term_id, term_offset=start_offset)
    appender = lb.ExclusiveAppender(log, SESSION_ID, STREAM_ID, 1408)
    consumer = Consumer(log, appender.position)
    expected: list[tuple[bytes, int, int]] = []
    for seed, size in enumerate(sizes):
        payload = payload_of(size, seed)
        before = appender.position
        result = appender.append(payload, seed)
        if result == lb.ADMIN_ACTION:
            # the old term is complete: every frame valid, tiled to the end, PAD last if any
            old_term_id = i32(appender.term_id - 1)
            old = lb.partition_index(old_term_id, initial_term_id)
            check_term(log.terms[old], old_term_id, KIB64, start_offset if old_term_id == term_id else 0)
            assert appender.term_offset == 0 and appender.position == lb.align(before, KIB64)
            result = appender.append(payload, seed)
        assert result == appender.position > before
        expected.append((payload, result, seed))
        consumer.poll()
        assert consumer.position == appender.position
    start = start_offset if appender.term_id == term_id else 0
    check_term(log.terms[log.active_partition_index], appender.term_id, appender.term_offset, start)
    assert consumer.messages == expected
    assert consumer.reader.corrupt_frame_count == 0
    assert consumer.assembler.broken_sequence_count == 0


def test_fragments_carry_begin_middle_end_and_full_mtu_payloads() -> None:
    log = lb.LogBuffers(KIB64, 0)
    appender = lb.ExclusiveAppender(log, SESSION_ID, STREAM_ID, 1408)
    payload = payload_of(3 * 1376 + 5, 1)
    position = appender.append(payload)
    term = log.terms[0]
    frames = []
    offset = 0
    while offset < position:
        header = DATA_HEADER.unpack_from(term, offset)
        frames.append((offset, header[0], header[2]))
        offset += lb.align(header[0])
    assert frames == [
        (0, 1408, 0x80),
        (1408, 1408, 0x00),
        (2816, 1408, 0x00),
        (4224, 37, 0x40),
    ]
    assert position == 4224 + 64
    assert bytes(term[4224 + 32 : 4224 + 37]) == payload[-5:]


def test_pad_frame_fills_the_end_of_the_term_and_the_message_moves_to_the_next() -> None:
    log = lb.LogBuffers(KIB64, 7, term_id=7, term_offset=KIB64 - 96)
    appender = lb.ExclusiveAppender(log, SESSION_ID, STREAM_ID, 1408)
    assert appender.append(b"a" * 70) == lb.ADMIN_ACTION
    pad = DATA_HEADER.unpack_from(log.terms[0], KIB64 - 96)
    assert pad == (96, 0, 0xC0, 0, KIB64 - 96, SESSION_ID, STREAM_ID, 7, 0)
    assert (appender.term_id, appender.term_offset, appender.position) == (8, 0, KIB64)
    assert log.raw_tails[0] == lb.pack_tail(7, KIB64 - 96 + 128)  # the tripped tail, as in Aeron
    assert log.raw_tails[1] == lb.pack_tail(8, 0)
    assert appender.append(b"a" * 70) == KIB64 + 128
    assert DATA_HEADER.unpack_from(log.terms[1], 0)[:5] == (102, 0, 0xC0, 1, 0)
    consumer = Consumer(log, KIB64 - 96)
    consumer.poll()
    assert consumer.messages == [(b"a" * 70, KIB64 + 128, 0)]


def test_exact_fit_then_admin_action_without_padding() -> None:
    log = lb.LogBuffers(KIB64, 0, term_id=0, term_offset=KIB64 - 64)
    appender = lb.ExclusiveAppender(log, SESSION_ID, STREAM_ID, 1408)
    assert appender.append(b"z" * 32) == KIB64
    # a reader at the end of the term finds zeros in the next partition, not stale frames
    consumer = Consumer(log, KIB64 - 64)
    assert consumer.poll() == 1 and consumer.position == KIB64
    assert appender.append(b"") == lb.ADMIN_ACTION
    assert appender.append(b"") == KIB64 + 32
    assert consumer.poll() == 1 and consumer.messages[-1] == (b"", KIB64 + 32, 0)


def test_term_id_wraps_across_rotation() -> None:
    log = lb.LogBuffers(KIB64, I32_MAX, term_id=I32_MAX, term_offset=KIB64 - 32)
    appender = lb.ExclusiveAppender(log, SESSION_ID, STREAM_ID, 1408)
    assert appender.append(b"hi") == lb.ADMIN_ACTION
    assert appender.term_id == I32_MIN
    assert appender.append(b"hi") == KIB64 + 64
    assert DATA_HEADER.unpack_from(log.terms[1], 0)[7] == I32_MIN


def test_max_position_exceeded_at_the_last_term() -> None:
    log = lb.LogBuffers(KIB64, 0, term_id=I32_MAX, term_offset=KIB64 - 64)
    appender = lb.ExclusiveAppender(log, SESSION_ID, STREAM_ID, 1408)
    assert appender.position == I32_MAX * KIB64 + KIB64 - 64
    assert appender.append(b"x") == lb.max_stream_position(KIB64)
    assert appender.append(b"x") == lb.MAX_POSITION_EXCEEDED
    assert appender.append(b"x") == lb.MAX_POSITION_EXCEEDED


def test_back_pressured_at_the_position_limit() -> None:
    log = lb.LogBuffers(KIB64, 0)
    appender = lb.ExclusiveAppender(log, SESSION_ID, STREAM_ID, 1408)
    appender.position_limit = 64
    assert appender.append(b"x" * 10) == 64
    assert appender.append(b"x") == lb.BACK_PRESSURED
    assert appender.append(b"x" * 5000) == lb.BACK_PRESSURED
    assert appender.try_claim(4, lb.BufferClaim()) == lb.BACK_PRESSURED


def test_max_message_length_is_enforced() -> None:
    log = lb.LogBuffers(KIB64, 0)
    appender = lb.ExclusiveAppender(log, SESSION_ID, STREAM_ID, 1408)
    assert appender.append(bytes(8192)) > 0
    with pytest.raises(lb.MessageTooLongError, match="max_message_length=8192: length=8193"):
        appender.append(bytes(8193))
    with pytest.raises(lb.MessageTooLongError, match="max_payload_length=1376: length=1377"):
        appender.try_claim(1377, lb.BufferClaim())
    # an MTU larger than the max message length caps unfragmented messages too
    big = lb.ExclusiveAppender(lb.LogBuffers(KIB64, 0), SESSION_ID, STREAM_ID, 65504)
    with pytest.raises(TransportError):
        big.append(bytes(8193))


def test_bad_mtu_is_rejected_by_the_appender() -> None:
    with pytest.raises(lb.InvalidMtuError):
        lb.ExclusiveAppender(lb.LogBuffers(KIB64, 0), SESSION_ID, STREAM_ID, 1400)


# ---------------------------------------------------------------------------------------- try_claim


def test_try_claim_commit_publishes_only_on_commit() -> None:
    log = lb.LogBuffers(KIB64, 0)
    appender = lb.ExclusiveAppender(log, SESSION_ID, STREAM_ID, 1408)
    consumer = Consumer(log, 0)
    claim = lb.BufferClaim()
    assert appender.try_claim(5, claim) == 64
    assert len(claim.buffer) == 5
    claim.buffer[:] = b"hello"
    claim.reserved_value(99)
    assert DATA_HEADER.unpack_from(log.terms[0], 0)[0] == -37  # reserved, not yet visible
    assert consumer.poll() == 0
    claim.commit()
    assert DATA_HEADER.unpack_from(log.terms[0], 0) == (37, 0, 0xC0, 1, 0, SESSION_ID, STREAM_ID, 0, 99)
    assert consumer.poll() == 1 and consumer.messages == [(b"hello", 64, 99)]
    with pytest.raises(lb.LogBufferError, match="already committed"):
        claim.commit()
    # the claim object is reusable
    assert appender.try_claim(0, claim) == 96
    claim.commit()
    assert consumer.poll() == 1 and consumer.messages[-1] == (b"", 96, 0)


def test_try_claim_abort_turns_the_frame_into_padding() -> None:
    log = lb.LogBuffers(KIB64, 0)
    appender = lb.ExclusiveAppender(log, SESSION_ID, STREAM_ID, 1408)
    consumer = Consumer(log, 0)
    claim = lb.BufferClaim()
    assert appender.try_claim(100, claim) == 160
    claim.abort()
    assert DATA_HEADER.unpack_from(log.terms[0], 0)[:4] == (132, 0, 0xC0, 0)
    assert appender.append(b"after") == 160 + 64
    assert consumer.poll() == 1
    assert consumer.messages == [(b"after", 224, 0)] and consumer.position == 224
    with pytest.raises(lb.LogBufferError):
        claim.abort()


def test_try_claim_at_the_term_end_pads_and_rotates() -> None:
    log = lb.LogBuffers(KIB64, 0, term_id=0, term_offset=KIB64 - 32)
    appender = lb.ExclusiveAppender(log, SESSION_ID, STREAM_ID, 1408)
    claim = lb.BufferClaim()
    assert appender.try_claim(1, claim) == lb.ADMIN_ACTION
    assert DATA_HEADER.unpack_from(log.terms[0], KIB64 - 32)[:4] == (32, 0, 0xC0, 0)
    assert appender.try_claim(1, claim) == KIB64 + 64
    claim.commit()


# ------------------------------------------------------------------------------------------ heartbeat


def test_heartbeat_is_a_zero_length_data_header() -> None:
    buffer = bytearray(40)
    assert lb.write_heartbeat(buffer, 8, SESSION_ID, STREAM_ID, -3, 4096) == 32
    assert DATA_HEADER.unpack_from(buffer, 8) == (0, 0, 0xC0, 1, 4096, SESSION_ID, STREAM_ID, -3, 0)
    lb.write_heartbeat(buffer, 0, SESSION_ID, STREAM_ID, 5, 64, end_of_stream=True)
    assert DATA_HEADER.unpack_from(buffer, 0) == (0, 0, 0xE0, 1, 64, SESSION_ID, STREAM_ID, 5, 0)


# ------------------------------------------------------------------------------------- reader bounds


def make_frame(term: bytearray, offset: int, length: int, flags: int = 0xC0, frame_type: int = 1) -> None:
    DATA_HEADER.pack_into(term, offset, length, 0, flags, frame_type, offset, SESSION_ID, STREAM_ID, 0, 0)


def test_reader_respects_fragments_limit_and_limit_offset() -> None:
    term = bytearray(KIB64)
    for i in range(4):
        make_frame(term, i * 64, 40)
    reader = lb.TermReader(0, KIB64)
    seen: list[int] = []

    def handler(payload: memoryview, header: lb.Header) -> None:
        assert len(payload) == 8
        seen.append(header.position())

    assert reader.read(memoryview(term), 0, handler, 2, KIB64) == (2, 128)
    assert reader.read(memoryview(term), 128, handler, 10, 160) == (0, 128)  # frame ends past the limit
    assert reader.read(memoryview(term), 128, handler, 10, 192) == (1, 192)
    assert reader.read(memoryview(term), 192, handler, 10, KIB64) == (1, 256)
    assert seen == [64, 128, 192, 256]
    assert reader.corrupt_frame_count == 0


@pytest.mark.parametrize(
    ("length", "frame_type", "term_offset_field"),
    [
        (1, 1, 0),  # shorter than a header
        (31, 0, 0),
        (KIB64 + 1, 1, 0),  # past the end of the term
        (2**31 - 1, 1, 0),
        (64, 2, 0),  # not DATA or PAD
        (64, 1, 32),  # term offset field is not the frame's own
    ],
)
def test_reader_stops_and_counts_at_a_corrupt_frame(
    length: int, frame_type: int, term_offset_field: int
) -> None:
    term = bytearray(KIB64)
    make_frame(term, 0, 64)
    DATA_HEADER.pack_into(term, 64, length, 0, 0xC0, frame_type, 64 + term_offset_field, 0, 0, 0, 0)
    reader = lb.TermReader(0, KIB64)
    assert reader.read(memoryview(term), 0, lambda p, h: None, 10, KIB64) == (1, 64)
    assert reader.corrupt_frame_count == 1


def test_reader_rejects_a_misaligned_start() -> None:
    with pytest.raises(lb.LogBufferError, match="multiple of 32: 33"):
        lb.TermReader(0, KIB64).read(memoryview(bytearray(KIB64)), 33, lambda p, h: None, 1, KIB64)


def test_reader_routes_handler_errors_to_the_error_handler() -> None:
    term = bytearray(KIB64)
    make_frame(term, 0, 40)
    make_frame(term, 64, 40)
    errors: list[Exception] = []
    reader = lb.TermReader(0, KIB64, error_handler=errors.append)

    def boom(payload: memoryview, header: lb.Header) -> None:
        raise RuntimeError("handler failed")

    assert reader.read(memoryview(term), 0, boom, 10, KIB64) == (1, 64)
    assert [str(e) for e in errors] == ["handler failed"]
    with pytest.raises(RuntimeError):
        lb.TermReader(0, KIB64).read(memoryview(term), 0, boom, 10, KIB64)


@settings(max_examples=300, deadline=None)
@given(
    content=st.binary(min_size=0, max_size=2048),
    start=st.integers(0, 80).map(lambda x: x * 32),
    limit=st.integers(-10, 3000),
    fragments_limit=st.integers(0, 50),
)
def test_reader_on_random_bytes_never_raises_and_stays_in_bounds(
    content: bytes, start: int, limit: int, fragments_limit: int
) -> None:
    term = memoryview(bytearray(content))
    reader = lb.TermReader(0, KIB64)
    assembler = lb.FragmentAssembler(lambda p, h: h.position(), max_message_length=4096, max_sessions=4)
    fragments, offset = reader.read(term, start, assembler, fragments_limit, limit)
    assert 0 <= fragments <= fragments_limit
    assert offset == start or (start < offset <= min(limit, len(content)) and offset % 32 == 0)


@settings(max_examples=200, deadline=None)
@given(words=st.lists(st.sampled_from([0, 1, 31, 32, 33, 40, 64, 100, 2000, -5, 2**31 - 1]), max_size=64))
def test_reader_on_plausible_frame_lengths_never_raises(words: list[int]) -> None:
    # random frame lengths at aligned offsets with otherwise valid headers
    term = bytearray(2048)
    for i, length in enumerate(words):
        if i * 32 + 32 <= len(term):
            DATA_HEADER.pack_into(term, i * 32, length, 0, i & 0xC0, i & 1, i * 32, 1, 1, 0, 0)
    reader = lb.TermReader(0, KIB64)
    _, offset = reader.read(memoryview(term), 0, lambda p, h: None, 1000, len(term))
    assert 0 <= offset <= len(term) and offset % 32 == 0


# ------------------------------------------------------------------------------------------ assembler


class Fragments:
    """Feeds hand-made fragments to an assembler through a real TermReader."""

    def __init__(self, max_message_length: int = 4096, max_sessions: int = 8) -> None:
        self.term = bytearray(KIB64)
        self.offset = 0
        self.read_offset = 0
        self.delivered: list[tuple[bytes, int, int]] = []
        self.views: list[memoryview] = []
        self.reader = lb.TermReader(0, KIB64)
        self.assembler = lb.FragmentAssembler(self.on_message, max_message_length, max_sessions)

    def on_message(self, payload: memoryview, header: lb.Header) -> None:
        self.views.append(payload)
        self.delivered.append((bytes(payload), header.session_id, header.position()))

    def add(self, payload: bytes, flags: int, session_id: int = 1, skip: int = 0) -> None:
        self.offset += skip
        length = len(payload) + 32
        DATA_HEADER.pack_into(self.term, self.offset, length, 0, flags, 1, self.offset, session_id, 1, 0, 0)
        self.term[self.offset + 32 : self.offset + length] = payload
        self.offset += lb.align(length)

    def pad(self, length: int) -> None:
        DATA_HEADER.pack_into(self.term, self.offset, length, 0, 0xC0, 0, self.offset, 0, 0, 0, 0)
        self.offset += lb.align(length)

    def read(self) -> None:
        _, self.read_offset = self.reader.read(
            memoryview(self.term), self.read_offset, self.assembler, 100, KIB64
        )


def test_assembler_passes_unfragmented_messages_through_without_copying() -> None:
    received: list[memoryview] = []
    assembler = lb.FragmentAssembler(lambda p, h: received.append(p))
    header = lb.Header(0, 16)
    header.values = (40, 0, 0xC0, 1, 0, 1, 1, 0, 0)
    payload = memoryview(bytearray(8))
    assembler.on_fragment(payload, header)
    assert received[0] is payload


def test_assembler_drops_a_continuation_separated_by_another_sessions_frame() -> None:
    f = Fragments()
    f.add(b"a1", 0x80, session_id=1)
    f.add(b"b1", 0x80, session_id=2)
    f.add(b"a2", 0x00, session_id=1)
    f.read()
    # session 1's continuation is not contiguous with its BEGIN (b1 sits between): dropped
    assert f.assembler.broken_sequence_count == 1 and f.delivered == []


def test_assembler_rebuilds_a_contiguous_message_and_reports_its_end_position() -> None:
    f = Fragments()
    f.add(b"one", 0x80)
    f.add(b"two", 0x00)
    f.add(b"three", 0x40)
    f.add(b"solo", 0xC0, session_id=2)
    f.read()
    assert f.delivered == [(b"onetwothree", 1, 3 * 64), (b"solo", 2, 4 * 64)]
    assert f.assembler.broken_sequence_count == 0


@pytest.mark.parametrize(
    ("script", "delivered", "broken"),
    [
        ([(b"mid", 0x00), (b"end", 0x40)], [], 2),  # continuations without BEGIN
        ([(b"a", 0x80), (b"b", 0x80), (b"c", 0x40)], [b"bc"], 1),  # a BEGIN interrupts a message
        ([(b"a", 0x80), (b"x", 0xC0), (b"c", 0x40)], [b"x"], 1),  # same-session unfragmented in between: gap
        ([(b"a", 0x80), (b"b", 0x40), (b"c", 0x40)], [b"ab"], 1),  # END after END
    ],
)
def test_assembler_drops_and_counts_broken_sequences(
    script: list[tuple[bytes, int]], delivered: list[bytes], broken: int
) -> None:
    f = Fragments()
    for payload, flags in script:
        f.add(payload, flags)
    f.read()
    assert [d[0] for d in f.delivered] == delivered
    assert f.assembler.broken_sequence_count == broken


def test_assembler_drops_a_gap_even_across_padding() -> None:
    f = Fragments()
    f.add(b"a", 0x80)
    f.pad(64)
    f.add(b"b", 0x40)
    f.read()
    assert f.delivered == [] and f.assembler.broken_sequence_count == 1


def test_assembler_bounds_message_length_and_sessions() -> None:
    f = Fragments(max_message_length=100, max_sessions=2)
    f.add(b"x" * 60, 0x80)
    f.add(b"x" * 60, 0x40)  # 120 > 100
    f.add(b"y" * 50, 0x80)
    f.add(b"y" * 50, 0x40)  # exactly 100
    f.read()
    assert f.delivered == [(b"y" * 100, 1, f.offset)]
    assert f.assembler.too_long_count == 1
    g = Fragments(max_sessions=2)
    g.add(b"1", 0x80, session_id=1)
    g.add(b"2", 0x80, session_id=2)
    g.add(b"3", 0x80, session_id=3)  # two sessions mid-message: refused
    g.read()
    assert g.assembler.session_limit_count == 1
    assert g.assembler.free_session(1) and not g.assembler.free_session(1)
    g.add(b"4", 0x80, session_id=4)
    g.read()
    assert g.assembler.session_limit_count == 1


def test_assembler_buffer_growth_survives_a_retained_view() -> None:
    f = Fragments(max_message_length=1 << 16)
    f.add(b"a" * 10, 0x80)
    f.add(b"b" * 10, 0x40)
    f.read()
    kept = f.views[0]  # the delegate holds on to the view
    f.add(b"c" * 3000, 0x80)
    f.add(b"d" * 3000, 0x00)
    f.add(b"e" * 3000, 0x40)
    f.read()
    assert f.delivered[1][0] == b"c" * 3000 + b"d" * 3000 + b"e" * 3000
    assert len(kept) == 20  # still a valid view, though its bytes were reused (valid during the call only)


def _walk_frame_ends(term: memoryview, start: int, end: int) -> list[int]:
    ends = []
    offset = start
    while offset < end:
        frame_length = struct.unpack_from("<i", term, offset)[0]
        assert frame_length > 0
        offset += (frame_length + 31) & -32
        ends.append(offset)
    return ends


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 5000), min_size=1, max_size=120),
    start_offset=st.sampled_from([0, 32, 4096]),
    claims=st.lists(st.booleans(), min_size=1, max_size=120),
)
def test_frame_ends_record_every_frame_boundary_of_each_partition(
    sizes: list[int], start_offset: int, claims: list[bool]
) -> None:
    log = lb.LogBuffers(KIB64, 0, term_id=3, term_offset=start_offset)
    appender = lb.ExclusiveAppender(log, 1, 2, 1408)
    claim = lb.BufferClaim()
    for i, size in enumerate(sizes):
        use_claim = claims[i % len(claims)] and size <= 1376
        while True:
            if use_claim:
                result = appender.try_claim(size, claim)
                if result > 0:
                    assert appender.open_claims == 1
                    claim.abort() if i % 2 else claim.commit()
                    assert appender.open_claims == 0
            else:
                result = appender.append(bytes(size))
            if result != lb.ADMIN_ACTION:
                break
    index = appender.partition_index
    expected = ([start_offset] if start_offset and appender.term_id == 3 else []) + _walk_frame_ends(
        log.terms[index], start_offset if appender.term_id == 3 else 0, appender.term_offset
    )
    assert list(appender.frame_ends[index]) == expected
    assert (
        appender.padded[index]
        == any(claims[i % len(claims)] and size <= 1376 and i % 2 for i, size in enumerate(sizes))
        or appender.term_id != 3
    )


def test_a_forked_child_writes_its_own_copy_of_the_log_never_the_parents() -> None:
    # the log's memory is private: after a fork each process has its own, as with any Python object
    log = lb.LogBuffers(64 * 1024, 7)
    log.terms[0][:4] = b"mine"
    pid = os.fork()
    if pid == 0:  # the child: write, and leave at once without Python's clean-up
        log.terms[0][:4] = b"kids"
        os._exit(0 if bytes(log.terms[0][:4]) == b"kids" else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert bytes(log.terms[0][:4]) == b"mine"


@settings(max_examples=50, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 1376), min_size=1, max_size=40), reserved=st.integers(-(2**63), 2**63 - 1)
)
def test_an_appended_frame_is_the_same_whatever_the_payloads_type(sizes: list[int], reserved: int) -> None:
    # ``bytes`` payloads go into a private log with their header in one pack (a packer per length,
    # cached); other bytes-likes, and anything written into a log over a given buffer, are copied in,
    # then the header packed: the terms must come out byte for byte alike
    logs = [lb.LogBuffers(KIB64, 5) for _ in range(3)]
    logs.append(lb.LogBuffers(KIB64, 5, buffer=bytearray(3 * KIB64)))
    assert [log.private for log in logs] == [True, True, True, False]
    appenders = [lb.ExclusiveAppender(log, SESSION_ID, STREAM_ID, 1408) for log in logs]
    kinds = (bytes, bytearray, lambda data: memoryview(bytearray(data)), bytes)
    for seed, size in enumerate(sizes):
        payload = payload_of(size, seed)
        results = {
            appender.append(kind(payload), reserved) for appender, kind in zip(appenders, kinds, strict=True)
        }
        assert len(results) == 1
    assert logs[0].terms[0] == logs[1].terms[0] == logs[2].terms[0] == logs[3].terms[0]
    assert len({appender.position for appender in appenders}) == 1


def test_a_full_packer_cache_and_long_payloads_fall_back_to_the_copy() -> None:
    saved = dict(lb._FRAME_PACKERS)
    try:
        lb._FRAME_PACKERS.clear()
        log = lb.LogBuffers(KIB64, 5)
        appender = lb.ExclusiveAppender(log, SESSION_ID, STREAM_ID, 8192)
        long_payload = payload_of(lb._MAX_PACKED_PAYLOAD + 1, 1)
        assert appender.append(long_payload) > 0
        assert lb._MAX_PACKED_PAYLOAD + 1 not in lb._FRAME_PACKERS
        for size in range(lb._MAX_FRAME_PACKERS + 10):
            assert appender.append(payload_of(size, size)) > 0
        assert len(lb._FRAME_PACKERS) <= lb._MAX_FRAME_PACKERS
        reader = lb.TermReader(5, KIB64)
        seen: list[bytes] = []
        reader.read(log.terms[0], 0, lambda payload, header: seen.append(bytes(payload)), 10_000, KIB64)
        assert seen[0] == long_payload
        assert seen[1:] == [payload_of(size, size) for size in range(lb._MAX_FRAME_PACKERS + 10)]
    finally:
        lb._FRAME_PACKERS.clear()
        lb._FRAME_PACKERS.update(saved)


def test_the_term_offset_table_doubles_to_exactly_the_offsets() -> None:
    table = lb.TermOffsetTable()
    for end_offset in (0, 40, 5_000_000, 9_000_000, 1 << 26):
        view = table.covering(end_offset)
        assert view is not None and view.format == "i" and len(view) > end_offset >> 5
        assert view.tolist() == list(range(0, len(view) * 32, 32))
    assert table.covering((1 << 26) + 32 * len(table.view)) is None


def test_a_controlled_assembler_offers_an_aborted_message_whole_again_when_its_end_comes_again() -> None:
    answers = [ControlledAction.ABORT, ControlledAction.CONTINUE, ControlledAction.BREAK]
    got: list[bytes] = []

    def delegate(payload: memoryview, header: lb.Header) -> ControlledAction:
        got.append(bytes(payload))
        return answers.pop(0)

    assembler = lb.ControlledFragmentAssembler(delegate)
    header = lb.Header(0, 16)

    def fragment(payload: bytes, flags: int, offset: int) -> int:
        header.values = (len(payload) + 32, 0, flags, 1, offset, 1, 1, 0, 0)
        return assembler(memoryview(payload), header)

    assert fragment(b"one", 0x80, 0) == ControlledAction.CONTINUE  # held: the image moves past it
    assert fragment(b"two", 0x00, 64) == ControlledAction.CONTINUE
    assert fragment(b"three", 0x40, 128) == ControlledAction.ABORT  # the END stays in the image...
    assert fragment(b"three", 0x40, 128) == ControlledAction.CONTINUE  # ...and completes it again
    assert fragment(b"solo", 0xC0, 192) == ControlledAction.BREAK  # unfragmented: the delegate's answer
    assert got == [b"onetwothree", b"onetwothree", b"solo"]
    assert assembler.assembler.broken_sequence_count == 0
