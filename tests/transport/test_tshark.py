"""Our traffic as Wireshark's Aeron dissector sees it (``tshark``).

One run of our transport over UDP loopback -- SETUP, status messages, DATA with several frames per
datagram, fragmented messages, padding at the end of terms, heartbeats, NAKs and retransmissions (the
receiver drops 10% of DATA on arrival), and end of stream -- is recorded from the sockets into a pcap
with IPv4/UDP checksums, and dissected by ``tshark -d udp.port==N,aeron`` with its sequence and stream
analysis on. Every packet must be Aeron, hold exactly the frames we sent with the fields we sent (read
here from the datagrams with ``struct`` layouts of Aeron's frames, ``docs/transport.md``, "Frames"),
the DATA and PAD frames must tile the stream from 0 to the final position, and tshark must raise
nothing above a note (no malformed packet, no bad checksum, no invalid frame length).
"""

from __future__ import annotations

import json
import struct
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from support.needs import need_program
from support.pcap import write_capture
from support.traffic import RecordedRun, record_pub_sub

pytestmark = pytest.mark.interop

TSHARK = need_program("tshark")

PI_WARN = 0x00600000  # expert severities: chat 0x200000, note 0x400000, warn 0x600000, error 0x800000
HEADER_LENGTH = 32
FRAME = struct.Struct("<iBBH")  # frame_length, version, flags, type
DATA = struct.Struct("<iBBHiiiiq")  # + term_offset, session_id, stream_id, term_id, reserved_value
NAK = struct.Struct("<iBBHiiiii")  # + session_id, stream_id, term_id, term_offset, length
SM = struct.Struct("<iBBHiiiiiq")  # + session_id, stream_id, term_id, term_offset, window, receiver_id
SETUP = struct.Struct(
    "<iBBHiiiiiiii"
)  # + term_offset, session, stream, initial/active term, length, mtu, ttl
PAD_TYPE, DATA_TYPE, NAK_TYPE, SM_TYPE, SETUP_TYPE = 0, 1, 2, 3, 5
HEARTBEAT_FLAGS = 0xC0  # BEGIN | END: what the dissector calls a heartbeat (with EOS it shows a data frame)

# The fields compared per dissected frame (tshark's names after ``aeron.<kind>.``), in struct order.
FIELDS = {
    "data": ("frame_length", "flags", "term_offset", "session_id", "stream_id", "term_id", "reserved_value"),
    "heartbeat": ("frame_length", "flags", "term_offset", "session_id", "stream_id", "term_id"),
    "pad": ("frame_length", "flags", "term_offset", "session_id", "stream_id", "term_id"),
    "nak": ("frame_length", "session_id", "stream_id", "term_id", "term_offset", "length"),
    "sm": (
        "frame_length",
        "flags",
        "session_id",
        "stream_id",
        "consumption_term_id",
        "consumption_term_offset",
        "receiver_window",
        "receiver_id",
    ),
    "setup": (
        "frame_length",
        "flags",
        "term_offset",
        "session_id",
        "stream_id",
        "initial_term_id",
        "active_term_id",
        "term_length",
        "mtu",
        "ttl",
    ),
}

Frames = dict[str, list[tuple[int, ...]]]


def unsigned(value: int, bits: int = 32) -> int:
    return value & ((1 << bits) - 1)


def frames_sent(datagram: bytes) -> Frames:
    """The frames of one of our datagrams, by the dissector's kind, with unsigned fields as tshark shows."""
    out: Frames = {}
    offset = 0
    while offset < len(datagram):
        frame_length, _, flags, frame_type = FRAME.unpack_from(datagram, offset)
        if frame_type in (DATA_TYPE, PAD_TYPE):
            length, _, flags, _, term_offset, session, stream, term_id, reserved = DATA.unpack_from(
                datagram, offset
            )
            row = (length, flags, term_offset, unsigned(session), unsigned(stream), unsigned(term_id))
            if frame_type == PAD_TYPE:
                out.setdefault("pad", []).append(row)
                offset += HEADER_LENGTH  # a PAD travels as its header only
            elif length == 0 and flags == HEARTBEAT_FLAGS:
                out.setdefault("heartbeat", []).append(row)
                offset += HEADER_LENGTH
            else:
                out.setdefault("data", []).append((*row, unsigned(reserved, 64)))
                offset += max(HEADER_LENGTH, (length + 31) & -32)
        elif frame_type == NAK_TYPE:
            _, _, _, _, session, stream, term_id, term_offset, length = NAK.unpack_from(datagram, offset)
            out.setdefault("nak", []).append(
                (frame_length, unsigned(session), unsigned(stream), unsigned(term_id), term_offset, length)
            )
            offset += frame_length
        elif frame_type == SM_TYPE:
            _, _, _, _, session, stream, term_id, term_offset, window, receiver = SM.unpack_from(
                datagram, offset
            )
            out.setdefault("sm", []).append(
                (
                    frame_length,
                    flags,
                    unsigned(session),
                    unsigned(stream),
                    unsigned(term_id),
                    term_offset,
                    window,
                    unsigned(receiver, 64),
                )
            )
            offset += frame_length
        elif frame_type == SETUP_TYPE:
            values = SETUP.unpack_from(datagram, offset)
            term_offset, session, stream, initial, active, term_length, mtu, ttl = values[4:]
            out.setdefault("setup", []).append(
                (
                    frame_length,
                    flags,
                    term_offset,
                    unsigned(session),
                    unsigned(stream),
                    unsigned(initial),
                    unsigned(active),
                    term_length,
                    mtu,
                    ttl,
                )
            )
            offset += frame_length
        else:
            raise AssertionError(f"we sent a frame of type {frame_type}: {datagram.hex()}")
    return out


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def frames_dissected(aeron: dict[str, Any]) -> Frames:
    out: Frames = {}
    for key, value in aeron.items():
        kind = key.removeprefix("aeron.")
        if kind not in FIELDS:
            continue
        for tree in as_list(value):
            out.setdefault(kind, []).append(tuple(int(tree[f"aeron.{kind}.{f}"], 0) for f in FIELDS[kind]))
    return out


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair anywhere in a tshark JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def expert_items(packet: dict[str, Any]) -> list[tuple[int, str]]:
    return [
        (int(item["_ws.expert.severity"]), item.get("_ws.expert.message", ""))
        for key, value in walk(packet)
        if key == "_ws.expert"
        for item in as_list(value)
    ]


# ------------------------------------------------------------------------------------------ the run

SIZES = (0, 1, 100, 1377, 5000, 7, 64, 2753)  # 1377 and 2753: one byte past one and two full frames


@cache
def recorded_run() -> RecordedRun:
    messages = [bytes([i % 256]) * SIZES[i % len(SIZES)] for i in range(400)]
    run = record_pub_sub(messages, data_loss=0.1, seed=5, term_length="64k")
    assert run.received == messages
    return run


def dissect(path: Path, port: int) -> list[dict[str, Any]]:
    """``tshark``'s JSON for every packet of ``path``, UDP port ``port`` dissected as Aeron."""
    command = [
        str(TSHARK),
        "-r",
        str(path),
        "-d",
        f"udp.port=={port},aeron",
        "-o",
        "aeron.sequence_analysis:TRUE",
        "-o",
        "aeron.stream_analysis:TRUE",
        "-o",
        "aeron.reassemble_fragments:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-T",
        "json",
        "--no-duplicate-keys",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed: {result.stderr}"
    packets: list[dict[str, Any]] = json.loads(result.stdout)
    return packets


def problems_in(packets: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(packet number, what) for every malformed packet and every expert item above a note."""
    problems = []
    for number, packet in enumerate(packets, start=1):
        if any(key == "_ws.malformed" for key, _ in walk(packet)):
            problems.append((number, "malformed"))
        problems += [(number, message) for severity, message in expert_items(packet) if severity >= PI_WARN]
    return problems


@pytest.fixture(scope="module")
def dissected(tmp_path_factory: pytest.TempPathFactory) -> tuple[RecordedRun, list[dict[str, Any]], Path]:
    run = recorded_run()
    path = write_capture(tmp_path_factory.mktemp("tshark") / "ours.pcap", run.datagrams)
    return run, dissect(path, run.subscription_port), path


def layers(packet: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = packet["_source"]["layers"]
    return found


# ------------------------------------------------------------------------------------------ tests


def test_the_run_covers_every_kind_of_frame() -> None:
    run = recorded_run()
    sent = [frames_sent(d.payload) for d in run.datagrams]
    kinds = Counter(kind for frames in sent for kind in frames)
    assert {"setup", "sm", "data", "heartbeat", "pad", "nak"} <= set(kinds), kinds
    data = [row for frames in sent for row in frames.get("data", [])]
    flags = Counter(row[1] for row in data)
    assert {0x80, 0x00, 0x40, 0xC0} <= set(flags), "unfragmented, first, middle and last fragments"
    assert any(row[0] == 0 and row[1] == 0xE0 for row in data), "an end-of-stream heartbeat"
    assert any(len(frames.get("data", [])) >= 3 for frames in sent), "several frames in one datagram"
    seen: set[tuple[int, int]] = set()
    retransmitted = 0
    for frames in sent:
        for row in frames.get("data", []):
            key = (row[5], row[2])
            if row[0] and key in seen:
                retransmitted += 1
            seen.add(key)
    assert retransmitted > 0 and run.data_loss_drops > 0


def test_every_packet_is_aeron_with_the_frames_we_sent(
    dissected: tuple[RecordedRun, list[dict[str, Any]], Path],
) -> None:
    run, packets, path = dissected
    assert len(packets) == len(run.datagrams)
    for number, (packet, datagram) in enumerate(zip(packets, run.datagrams, strict=True), start=1):
        found = layers(packet)
        assert found["frame"]["frame.protocols"].startswith("eth:ethertype:ip:udp:aeron"), number
        assert "aeron" in found and not isinstance(found["aeron"], list), f"packet {number} of {path}"
        expected = frames_sent(datagram.payload)
        assert frames_dissected(found["aeron"]) == expected, f"packet {number} of {path}"


def test_data_and_padding_tile_the_stream_from_zero_to_the_final_position(
    dissected: tuple[RecordedRun, list[dict[str, Any]], Path],
) -> None:
    run, packets, _ = dissected
    shift = run.term_length.bit_length() - 1
    spans: set[tuple[int, int]] = set()
    for packet in packets:
        frames = frames_dissected(layers(packet)["aeron"])
        for kind in ("data", "pad"):
            for row in frames.get(kind, []):
                length, _, term_offset, session, stream, term_id = row[:6]
                if length == 0:
                    continue  # an end-of-stream heartbeat
                assert (session, stream) == (unsigned(run.session_id), run.stream_id)
                term_count = unsigned(term_id - unsigned(run.initial_term_id))
                start = (term_count << shift) + term_offset
                spans.add((start, start + ((length + 31) & -32)))
    position = 0
    for start, end in sorted(spans):
        assert start == position, f"frames do not tile the stream at position {position}: next is {start}"
        position = end
    assert position == run.final_position


def test_tshark_finds_nothing_wrong(dissected: tuple[RecordedRun, list[dict[str, Any]], Path]) -> None:
    run, packets, path = dissected
    problems = problems_in(packets)
    assert not problems, f"tshark expert warnings or errors in {path}: {problems[:20]}"
    notes = Counter(message.split(" offset ")[0] for packet in packets for _, message in expert_items(packet))
    naks = sum(len(frames_sent(d.payload).get("nak", [])) for d in run.datagrams)
    assert notes["NAK"] == naks, notes
    assert notes["This frame contains a (likely) retransmission"] > 0, notes


def test_canary_a_frame_longer_than_its_datagram_is_caught(tmp_path: Path) -> None:
    """The checks above can fail: a lone DATA frame claiming more bytes than its datagram holds."""
    run = recorded_run()
    datagrams = list(run.datagrams)
    index = next(
        i
        for i, d in enumerate(datagrams)
        if [len(v) for v in frames_sent(d.payload).values()] == [1]
        and frames_sent(d.payload).get("data", [(0,)])[0][0] > 0
    )
    payload = bytearray(datagrams[index].payload)
    struct.pack_into("<i", payload, 0, len(payload) + 64)
    datagrams[index] = replace(datagrams[index], payload=bytes(payload))
    packets = dissect(write_capture(tmp_path / "bad.pcap", datagrams), run.subscription_port)
    assert {number for number, _ in problems_in(packets)} == {index + 1}
