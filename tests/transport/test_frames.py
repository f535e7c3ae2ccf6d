"""The transport's frame codecs, generated from schemas/aeron-transport-frames.xml, against Aeron's layouts.

Every expectation is packed by hand with ``struct`` from the frame layouts of Aeron's UDP protocol
(8-byte common header; DATA/PAD 32, NAK 28, SM 36 or 44, ERR 40, SETUP 40, RTTM 40, RSP_SETUP 20 bytes),
so the generator and the schema are checked, not assumed.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codegen.runtime.errors import BufferTooShortError, EncodeValueError
from generated import aeron_transport_frames as frames

I32 = st.integers(-(2**31), 2**31 - 1)
I64 = st.integers(-(2**63), 2**63 - 1)
U8 = st.integers(0, 255)

# name, composite, hand-written layout (after the 8-byte common header), frame type, size
LAYOUTS: list[tuple[str, Any, str, frames.FrameType, int]] = [
    ("DATA", frames.DataHeaderDecoder, "iiiiq", frames.FrameType.DATA, 32),
    ("NAK", frames.NakHeaderDecoder, "iiiii", frames.FrameType.NAK, 28),
    ("SM", frames.StatusMessageHeaderDecoder, "iiiiiq", frames.FrameType.SM, 36),
    ("ERR", frames.ErrorHeaderDecoder, "iiqqii", frames.FrameType.ERR, 40),
    ("SETUP", frames.SetupHeaderDecoder, "iiiiiiii", frames.FrameType.SETUP, 40),
    ("RTTM", frames.RttmHeaderDecoder, "iiqqq", frames.FrameType.RTTM, 40),
    ("RSP_SETUP", frames.ResponseSetupHeaderDecoder, "iii", frames.FrameType.RSP_SETUP, 20),
]


def values_for(layout: str) -> st.SearchStrategy[tuple[int, ...]]:
    return st.tuples(*[I64 if code == "q" else I32 for code in layout])


@pytest.mark.parametrize(
    ("name", "decoder", "layout", "frame_type", "size"), LAYOUTS, ids=[x[0] for x in LAYOUTS]
)
def test_frame_sizes_and_type_codes_are_aerons(
    name: str, decoder: Any, layout: str, frame_type: int, size: int
) -> None:
    assert decoder.SIZE == size == struct.calcsize("<iBBH" + layout)
    assert (
        int(frame_type)
        == {"DATA": 1, "NAK": 2, "SM": 3, "ERR": 4, "SETUP": 5, "RTTM": 6, "RSP_SETUP": 11}[name]
    )


@pytest.mark.parametrize(
    ("name", "decoder", "layout", "frame_type", "size"), LAYOUTS, ids=[x[0] for x in LAYOUTS]
)
@given(data=st.data())
def test_frame_headers_decode_and_encode_byte_for_byte(
    name: str, decoder: Any, layout: str, frame_type: int, size: int, data: st.DataObject
) -> None:
    body = data.draw(values_for(layout))
    frame_length, version, flags = data.draw(st.tuples(I32, U8, U8))
    wire = struct.pack("<iBBH" + layout, frame_length, version, flags, int(frame_type), *body)
    raw = decoder.unpack(wire)
    assert raw == (frame_length, version, flags, int(frame_type), *body)
    encoder = getattr(frames, decoder.__name__.replace("Decoder", "Encoder"))
    out = bytearray(size)
    assert encoder.pack_into(out, 0, *raw) == size
    assert bytes(out) == wire
    flyweight = decoder().wrap(wire, 0)
    assert flyweight.frame_length == frame_length and flyweight.version == version
    assert flyweight.type == frame_type


def test_data_frame_fields_by_name() -> None:
    wire = struct.pack("<iBBHiiiiq", 1056, 0, 0xC0, 1, 4096, -7, 1001, 5, 42) + b"x" * 1024
    d = frames.DataHeaderDecoder().wrap(wire, 0)
    assert (d.frame_length, d.term_offset, d.session_id, d.stream_id, d.term_id, d.reserved_value) == (
        1056,
        4096,
        -7,
        1001,
        5,
        42,
    )
    assert d.flags == frames.DataFlags.BEGIN | frames.DataFlags.END
    assert d.type is frames.FrameType.DATA


def test_flag_bits_are_aerons() -> None:
    assert int(frames.DataFlags.BEGIN) == 0x80 and int(frames.DataFlags.END) == 0x40
    assert int(frames.DataFlags.EOS) == 0x20
    assert int(frames.DataFlags.BEGIN | frames.DataFlags.END | frames.DataFlags.EOS) == 0xE0  # EOS heartbeat
    assert int(frames.StatusFlags.SEND_SETUP) == 0x80 and int(frames.StatusFlags.EOS) == 0x40
    assert int(frames.ErrorFlags.HAS_GROUP_TAG) == 0x08
    assert int(frames.SetupFlags.SEND_RESPONSE_SETUP) == 0x80 and int(frames.SetupFlags.GROUP) == 0x40
    assert int(frames.RttmFlags.REPLY) == 0x80


@given(body=values_for("iiiiiq"), tag=I64)
def test_tagged_status_message_carries_the_group_tag_after_36_bytes(body: tuple[int, ...], tag: int) -> None:
    wire = struct.pack("<iBBHiiiiiqq", 44, 0, 0, 3, *body, tag)
    assert frames.TaggedStatusMessageHeaderDecoder.SIZE == 44
    decoder = frames.TaggedStatusMessageHeaderDecoder().wrap(wire, 0)
    assert decoder.group_tag == tag
    assert decoder.status.receiver_id == body[-1]
    assert frames.TaggedStatusMessageHeaderDecoder.unpack(wire) == (44, 0, 0, 3, *body, tag)


def test_the_common_header_reads_any_frame() -> None:
    wire = struct.pack("<iBBHiiiii", 28, 0, 0, 2, 1, 2, 3, 4, 5)
    assert frames.FrameHeaderDecoder.unpack(wire) == (28, 0, 0, 2)
    assert frames.FrameHeaderDecoder().wrap(wire, 0).type is frames.FrameType.NAK


@pytest.mark.parametrize(
    ("name", "decoder", "layout", "frame_type", "size"), LAYOUTS, ids=[x[0] for x in LAYOUTS]
)
def test_a_short_datagram_raises_buffer_too_short(
    name: str, decoder: Any, layout: str, frame_type: int, size: int
) -> None:
    for cut in range(size):
        with pytest.raises(BufferTooShortError):
            decoder.unpack(bytes(cut))
        with pytest.raises(BufferTooShortError):
            decoder().wrap(bytes(cut), 0)
    with pytest.raises(BufferTooShortError):
        decoder.unpack(bytes(size * 2), size + 1)


def test_an_out_of_range_value_raises_encode_value_error() -> None:
    with pytest.raises(EncodeValueError):
        frames.NakHeaderEncoder.pack_into(bytearray(28), 0, 28, 0, 0, 2, 1, 2, 3, 4, 2**31)
