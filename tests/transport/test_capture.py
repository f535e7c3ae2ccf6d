"""``python -m tools decode``: Aeron frames and SBE messages from pcap/pcapng captures built here with dpkt.

The SBE part of every message line must be exactly what ``python -m tools sbe decode`` prints for the same
bytes; both commands run in-process through ``tools.__main__.main``.
"""

from __future__ import annotations

import json
import struct
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import pcap
from support.needs import need_module
from support.paths import CAR_SCHEMAS, VECTORS
from support.pcap import CapturedDatagram
from support.traffic import record_pub_sub
from support.udp_relay import UdpRelay, free_udp_port

from cluster.transport.logbuffer import ExclusiveAppender, LogBuffers
from generated import aeron_archive_codecs, aeron_cluster_codecs
from generated.aeron_transport_frames import (
    DataHeaderDecoder,
    DataHeaderEncoder,
    ErrorHeaderEncoder,
    FrameHeaderEncoder,
    NakHeaderEncoder,
    ResponseSetupHeaderEncoder,
    RttmHeaderEncoder,
    SetupHeaderEncoder,
    StatusMessageHeaderEncoder,
    TaggedStatusMessageHeaderEncoder,
)
from schemas import builtin_schema
from tools.__main__ import main

PORT = 20121
SESSION, STREAM, TERM = 77, 1001, 5
CLUSTER_XML = builtin_schema("aeron-cluster-codecs.xml")
ARCHIVE_XML = builtin_schema("aeron-archive-codecs.xml")
CAR_XML = CAR_SCHEMAS[0]  # a user's schema, not built in: SBE's Car example (the project's copy)
CAR_VECTORS = VECTORS / "car-vectors.json"

CONNECT_FIELDS = {
    "correlationId": 11,
    "responseStreamId": 102,
    "version": 5,
    "responseChannel": "aeron:udp?endpoint=localhost:9020",
    "encodedCredentials": {"hex": "0102"},
}
CONNECT = aeron_cluster_codecs.encode_dict("SessionConnectRequest", CONNECT_FIELDS)
SESSION_HEADER = aeron_cluster_codecs.encode_dict(
    "SessionMessageHeader", {"leadershipTermId": 3, "clusterSessionId": 42, "timestamp": 1700000000123}
)
ARCHIVE_CONNECT = aeron_archive_codecs.encode_dict(
    "ConnectRequest",
    {"correlationId": 9, "responseStreamId": 20, "version": 10, "responseChannel": "aeron:udp?endpoint=x:1"},
)


# -------------------------------------------------------------------------------------------- builders


def align32(n: int) -> int:
    return (n + 31) & -32


def data_frame(payload: bytes, term_offset: int, flags: int = 0xC0, session: int = SESSION) -> bytes:
    buf = bytearray(align32(32 + len(payload)))
    DataHeaderEncoder.pack_into(buf, 0, 32 + len(payload), 0, flags, 1, term_offset, session, STREAM, TERM, 0)
    buf[32 : 32 + len(payload)] = payload
    return bytes(buf)


def heartbeat(term_offset: int) -> bytes:
    buf = bytearray(32)
    DataHeaderEncoder.pack_into(buf, 0, 0, 0, 0xC0, 1, term_offset, SESSION, STREAM, TERM, 0)
    return bytes(buf)


def pad(term_offset: int, frame_length: int = 32) -> bytes:
    buf = bytearray(32)
    DataHeaderEncoder.pack_into(buf, 0, frame_length, 0, 0xC0, 0, term_offset, SESSION, STREAM, TERM, 0)
    return bytes(buf)


def status_message(tagged: bool = False) -> bytes:
    if tagged:
        buf = bytearray(44)
        TaggedStatusMessageHeaderEncoder.pack_into(
            buf, 0, 44, 0, 0x80, 3, SESSION, STREAM, TERM, 64, 131072, 9, 3
        )
        return bytes(buf)
    buf = bytearray(36)
    StatusMessageHeaderEncoder.pack_into(buf, 0, 36, 0, 0x80, 3, SESSION, STREAM, TERM, 64, 131072, -5)
    return bytes(buf)


def nak() -> bytes:
    buf = bytearray(28)
    NakHeaderEncoder.pack_into(buf, 0, 28, 0, 0, 2, SESSION, STREAM, TERM, 1024, 2048)
    return bytes(buf)


def setup() -> bytes:
    buf = bytearray(40)
    SetupHeaderEncoder.pack_into(buf, 0, 40, 0, 0, 5, 0, SESSION, STREAM, TERM, TERM, 65536, 1408, 0)
    return bytes(buf)


def fragments(payload: bytes, mtu: int = 1408) -> list[bytes]:
    """The frames the exclusive appender writes for ``payload``, one per element."""
    log = LogBuffers(65536, TERM)
    appender = ExclusiveAppender(log, SESSION, STREAM, mtu)
    assert appender.append(payload) > 0
    term = bytes(log.terms[appender.partition_index][: appender.term_offset])
    frames, offset = [], 0
    while offset < len(term):
        frame_length = DataHeaderDecoder.unpack(term, offset)[0]
        frames.append(term[offset : offset + align32(frame_length)])
        offset += align32(frame_length)
    return frames


def write_capture(
    path: Path,
    datagrams: list[bytes],
    *,
    fmt: str = "pcap",
    link: str = "ethernet",
    ipv6: bool = False,
    ports: list[tuple[int, int]] | None = None,
) -> Path:
    host = "::1" if ipv6 else "127.0.0.1"
    records = []
    for i, payload in enumerate(datagrams):
        sport, dport = ports[i] if ports else (40000, PORT)
        records.append(CapturedDatagram(1.0 + i, (host, sport), (host, dport), payload))
    return pcap.write_capture(path, records, fmt=fmt, link=link)


def decode(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    status = main(["decode", *args, "--json"])
    out = capsys.readouterr().out
    return status, [json.loads(line) for line in out.splitlines()]


def sbe_decode(capsys: pytest.CaptureFixture[str], schema: Path, data: bytes) -> dict[str, Any]:
    """The first line ``python -m tools sbe decode`` prints for ``data``."""
    main(["sbe", "decode", "--schema", str(schema), "--hex", data.hex()])
    first: dict[str, Any] = json.loads(capsys.readouterr().out.splitlines()[0])
    return first


def kinds(records: list[dict[str, Any]]) -> list[str]:
    return [r["type"] if r["kind"] == "frame" else r["kind"] for r in records]


def mixed_datagram() -> bytes:
    first = data_frame(CONNECT, 0)
    return first + heartbeat(len(first)) + pad(len(first) + 32) + status_message() + nak() + setup()


# ------------------------------------------------------------------------------------------------ tests


def test_several_frames_per_datagram_are_all_decoded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_capture(tmp_path / "c.pcap", [mixed_datagram()])
    status, records = decode(capsys, str(path))
    assert status == 0
    assert kinds(records) == ["DATA", "message", "DATA", "PAD", "SM", "NAK", "SETUP"]
    data_length = align32(32 + len(CONNECT))
    assert [r["offset"] for r in records if r["kind"] == "frame"] == [
        0,
        data_length,
        data_length + 32,
        data_length + 64,
        data_length + 100,
        data_length + 128,
    ]
    assert records[0] == {
        "kind": "frame",
        "type": "DATA",
        "frameLength": 32 + len(CONNECT),
        "version": 0,
        "flags": ["END", "BEGIN"],
        "termOffset": 0,
        "sessionId": SESSION,
        "streamId": STREAM,
        "termId": TERM,
        "reservedValue": 0,
        "datagram": 0,
        "offset": 0,
    }
    assert records[2]["frameLength"] == 0  # the heartbeat
    assert records[4] == {
        "kind": "frame",
        "type": "SM",
        "frameLength": 36,
        "version": 0,
        "flags": ["SEND_SETUP"],
        "sessionId": SESSION,
        "streamId": STREAM,
        "consumptionTermId": TERM,
        "consumptionTermOffset": 64,
        "receiverWindow": 131072,
        "receiverId": -5,
        "datagram": 0,
        "offset": data_length + 64,
    }
    assert records[5]["length"] == 2048 and records[5]["flags"] == []
    assert records[6]["mtu"] == 1408 and records[6]["termLength"] == 65536
    message = records[1]
    assert message == {
        "kind": "message",
        "sessionId": SESSION,
        "streamId": STREAM,
        "termId": TERM,
        "termOffset": 0,
        "length": len(CONNECT),
        "sbe": sbe_decode(capsys, CLUSTER_XML, CONNECT),
    }
    assert message["sbe"]["message"] == "SessionConnectRequest"


@pytest.mark.parametrize(
    ("fmt", "link", "ipv6"),
    [
        ("pcapng", "ethernet", False),
        ("pcap", "null", False),
        ("pcapng", "null", True),
        ("pcap", "raw", True),
        ("pcap", "sll", False),
        ("pcapng", "sll2", True),
        ("pcap", "ethernet", True),
    ],
)
def test_every_supported_link_type_and_format_gives_the_same_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, link: str, ipv6: bool
) -> None:
    baseline = write_capture(tmp_path / "base.pcap", [mixed_datagram()])
    _, expected = decode(capsys, str(baseline))
    path = write_capture(tmp_path / f"c.{fmt}", [mixed_datagram()], fmt=fmt, link=link, ipv6=ipv6)
    status, records = decode(capsys, str(path))
    assert status == 0
    assert records == expected


def test_tagged_status_message_shows_its_group_tag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_capture(tmp_path / "c.pcap", [status_message(tagged=True)])
    _, records = decode(capsys, str(path))
    assert records == [
        {
            "kind": "frame",
            "type": "SM",
            "frameLength": 44,
            "version": 0,
            "flags": ["SEND_SETUP"],
            "sessionId": SESSION,
            "streamId": STREAM,
            "consumptionTermId": TERM,
            "consumptionTermOffset": 64,
            "receiverWindow": 131072,
            "receiverId": 9,
            "groupTag": 3,
            "datagram": 0,
            "offset": 0,
        }
    ]


def test_error_rttm_response_setup_and_resolution_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = b"image rejected"
    err = bytearray(40 + len(text))
    ErrorHeaderEncoder.pack_into(err, 0, len(err), 0, 0x08, 4, SESSION, STREAM, 9, 3, 2, len(text))
    err[40:] = text
    rttm = bytearray(40)
    RttmHeaderEncoder.pack_into(rttm, 0, 40, 0, 0x80, 6, SESSION, STREAM, 123456789, 1000, 9)
    rsp = bytearray(20)
    ResponseSetupHeaderEncoder.pack_into(rsp, 0, 20, 0, 0, 11, SESSION, STREAM, 88)
    res = bytearray(16)
    FrameHeaderEncoder.pack_into(res, 0, 16, 0, 0, 7)
    res[8:] = b"\x01\x80\x00\x50abcd"
    path = write_capture(tmp_path / "c.pcap", [bytes(err + rttm + rsp + res)])
    status, records = decode(capsys, str(path))
    assert status == 0
    assert kinds(records) == ["ERR", "RTTM", "RSP_SETUP", "RES"]
    assert records[0]["flags"] == ["HAS_GROUP_TAG"] and records[0]["errorText"] == "image rejected"
    assert records[0]["errorCode"] == 2 and records[0]["groupTag"] == 3
    assert records[1]["flags"] == ["REPLY"] and records[1]["echoTimestamp"] == 123456789
    assert records[2]["responseSessionId"] == 88 and records[2]["offset"] == len(err) + 40
    assert records[3] == {
        "kind": "frame",
        "type": "RES",
        "frameLength": 16,
        "version": 0,
        "flags": [],
        "bodyHex": bytes(res[8:]).hex(),
        "datagram": 0,
        "offset": len(err) + 60,
    }


def test_fragmented_message_is_reassembled_across_datagrams(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    application = bytes(range(256)) * 16  # 4096 bytes behind the session message header: 3 fragments
    payload = SESSION_HEADER + application
    frames = fragments(payload)
    assert len(frames) == 3
    path = write_capture(tmp_path / "c.pcap", frames)
    status, records = decode(capsys, str(path))
    assert status == 0
    assert kinds(records) == ["DATA", "DATA", "DATA", "message"]
    assert [r["flags"] for r in records[:3]] == [["BEGIN"], [], ["END"]]
    assert [r["datagram"] for r in records[:3]] == [0, 1, 2]
    message = records[3]
    assert message["length"] == len(payload)
    assert message["termOffset"] == 0 and message["termId"] == TERM
    assert message["sbe"] == sbe_decode(capsys, CLUSTER_XML, payload)
    assert message["sbe"]["message"] == "SessionMessageHeader"
    assert message["trailingHex"] == application.hex()


def test_archive_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_capture(tmp_path / "c.pcap", [data_frame(ARCHIVE_CONNECT, 0)])
    _, records = decode(capsys, str(path))
    assert records[1]["sbe"] == sbe_decode(capsys, ARCHIVE_XML, ARCHIVE_CONNECT)
    assert records[1]["sbe"]["schemaId"] == 101
    assert "trailingHex" not in records[1]


def test_user_schema_given_with_schema_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    car = bytes.fromhex(json.loads(CAR_VECTORS.read_text())["vectors"][0]["hex"])
    path = write_capture(tmp_path / "c.pcap", [data_frame(car, 0)])
    _, without = decode(capsys, str(path))
    assert without[1]["payloadHex"] == car.hex() and "sbe" not in without[1]
    _, records = decode(capsys, str(path), "--schema", str(CAR_XML))
    assert records[1]["sbe"] == sbe_decode(capsys, CAR_XML, car)
    assert records[1]["sbe"]["message"] == "Car"


def test_non_sbe_payload_is_shown_as_hex(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_capture(tmp_path / "c.pcap", [data_frame(b"hello, aeron", 0)])
    _, records = decode(capsys, str(path))
    assert records[1] == {
        "kind": "message",
        "sessionId": SESSION,
        "streamId": STREAM,
        "termId": TERM,
        "termOffset": 0,
        "length": 12,
        "payloadHex": b"hello, aeron".hex(),
    }


def test_port_filter_keeps_only_matching_datagrams(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    datagrams = [data_frame(CONNECT, 0), nak(), setup()]
    ports = [(40000, PORT), (9999, 8888), (PORT, 40000)]
    path = write_capture(tmp_path / "c.pcap", datagrams, ports=ports)
    _, everything = decode(capsys, str(path))
    assert kinds(everything) == ["DATA", "message", "NAK", "SETUP"]
    _, filtered = decode(capsys, str(path), "--port", str(PORT))
    assert kinds(filtered) == ["DATA", "message", "SETUP"]
    _, both = decode(capsys, str(path), "--port", "8888", "--port", str(PORT))
    assert kinds(both) == kinds(everything)


def test_truncated_frame_reports_and_next_datagram_is_decoded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cut = data_frame(CONNECT, 0)[:40]
    path = write_capture(tmp_path / "c.pcap", [nak() + cut, b"\xff" * 13, setup()])
    status, records = decode(capsys, str(path))
    assert status == 0
    assert kinds(records) == ["NAK", "error", "error", "SETUP"]
    assert records[1]["datagram"] == 0 and records[1]["offset"] == 28
    assert "past the datagram's end" in records[1]["error"]
    assert records[2]["datagram"] == 1 and records[2]["offset"] == 0
    assert set(records[2]) == {"kind", "datagram", "offset", "error"}


@pytest.mark.parametrize(
    ("datagram", "message"),
    [
        (struct.pack("<iBBH", 4, 0, 0, 1), "shorter than the 8-byte frame header"),
        (struct.pack("<iBBH", 8, 0, 0, 9), "unknown frame type"),
        (struct.pack("<iBBH", 8, 0, 0, 3), "shorter than its 36-byte header"),
        (b"\x08\x00\x00", "too short"),
    ],
)
def test_malformed_frames_are_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], datagram: bytes, message: str
) -> None:
    path = write_capture(tmp_path / "c.pcap", [datagram])
    status, records = decode(capsys, str(path))
    assert status == 0
    assert len(records) == 1 and records[0]["kind"] == "error"
    assert message in records[0]["error"].lower() or message in records[0]["error"]


def test_missing_middle_fragment_is_an_incomplete_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = fragments(SESSION_HEADER + bytes(4096))
    after = data_frame(CONNECT, sum(len(f) for f in frames))
    path = write_capture(tmp_path / "c.pcap", [frames[0], frames[2], after])
    _, records = decode(capsys, str(path))
    # a missing fragment may still come (retransmitted), so the message is reported when the capture ends
    assert kinds(records) == ["DATA", "DATA", "DATA", "message", "error"]
    assert records[3]["sbe"]["message"] == "SessionConnectRequest"
    assert records[4]["error"].startswith("incomplete message")
    assert f"gap at term offset {len(frames[0])}" in records[4]["error"]
    assert (records[4]["datagram"], records[4]["offset"]) == (0, 0)


def test_fragments_without_begin_or_end_are_incomplete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = fragments(bytes(3000))
    assert len(frames) == 3
    path = write_capture(tmp_path / "c.pcap", [frames[2], frames[1]])
    _, records = decode(capsys, str(path))
    assert kinds(records) == ["DATA", "DATA", "error", "error"]
    assert "END at term" in records[2]["error"] and "without BEGIN" in records[2]["error"]
    assert "middle fragment" in records[3]["error"] and "without BEGIN" in records[3]["error"]
    assert [(r["datagram"], r["offset"]) for r in records[2:]] == [(0, 0), (1, 0)]


def test_a_message_whose_end_is_missing_is_incomplete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = fragments(bytes(3000))
    path = write_capture(tmp_path / "c.pcap", [frames[1], frames[0]])
    _, records = decode(capsys, str(path))
    assert kinds(records) == ["DATA", "DATA", "error"]
    assert "BEGIN never ended" in records[2]["error"]
    assert "(2752 bytes dropped)" in records[2]["error"] or "bytes dropped" in records[2]["error"]
    assert (records[2]["datagram"], records[2]["offset"]) == (1, 0)


def test_fragments_out_of_order_and_repeated_make_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = bytes((i * 7) % 251 for i in range(3000))
    frames = fragments(payload)
    path = write_capture(
        tmp_path / "c.pcap", [frames[2], frames[0], frames[0], frames[1], frames[2], frames[1]]
    )
    _, records = decode(capsys, str(path))
    assert kinds(records) == ["DATA", "DATA", "DATA", "DATA", "message", "DATA", "DATA"]
    assert records[4]["length"] == len(payload) and records[4]["payloadHex"] == payload.hex()


def test_truncated_capture_file_is_reported_and_decoding_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_capture(tmp_path / "c.pcap", [setup(), nak()])
    path.write_bytes(path.read_bytes()[: -len(nak()) - 8 - 30])  # into the second packet's record header
    status, records = decode(capsys, str(path))
    assert status == 0
    assert kinds(records) == ["SETUP", "error"]
    assert "truncated" in records[1]["error"]


@pytest.mark.parametrize("content", [b"", b"not a capture at all", b"\xd4\xc3\xb2\xa1\x02"])
def test_a_file_that_is_not_a_capture_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(content)
    assert main(["decode", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_missing_file_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", str(tmp_path / "nope.pcap")]) == 2
    assert capsys.readouterr().err.startswith("error: cannot read")


def test_text_form_has_one_line_per_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_capture(tmp_path / "c.pcap", [mixed_datagram(), b"\0\0"])
    assert main(["decode", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8
    assert lines[0].startswith("#0+0 DATA frameLength=")
    assert "SessionConnectRequest" in lines[1]
    assert lines[2].startswith("#0+") and "HEARTBEAT" in lines[2]
    assert lines[7].startswith("#1+0 error: ")


# ------------------------------------------------------------------------------------------- fuzzing


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(datagrams=st.lists(st.binary(max_size=200), min_size=1, max_size=6))
def test_random_datagrams_never_crash_the_decoder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], datagrams: list[bytes]
) -> None:
    path = write_capture(tmp_path / "fuzz.pcap", [*datagrams, mixed_datagram()])
    status, records = decode(capsys, str(path))
    assert status == 0
    assert all(r["kind"] in ("frame", "message", "error") for r in records)
    assert kinds(records)[-7:] == ["DATA", "message", "DATA", "PAD", "SM", "NAK", "SETUP"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=2000), fmt=st.sampled_from(["pcap", "pcapng"]))
def test_truncated_capture_never_crashes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cut: int, fmt: str
) -> None:
    frames = fragments(SESSION_HEADER + bytes(2000))
    path = write_capture(tmp_path / f"fuzz.{fmt}", [mixed_datagram(), *frames], fmt=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: min(cut, len(data))])
    status = main(["decode", str(path), "--json"])
    captured = capsys.readouterr()
    if status == 0:
        for line in captured.out.splitlines():
            assert json.loads(line)["kind"] in ("frame", "message", "error")
    else:
        assert status == 2 and captured.err.startswith("error: ")


# ------------------------------------------------------------------------------------- real traffic

APPLICATION = bytes(i % 256 for i in range(4000))  # behind a session message header: three fragments
TRAFFIC: list[tuple[bytes, str | None, dict[str, Any] | None]] = [
    # (payload, the SBE message it holds or None, its fields)
    (CONNECT, "SessionConnectRequest", CONNECT_FIELDS),
    (b"", None, None),
    (
        SESSION_HEADER + APPLICATION,
        "SessionMessageHeader",
        {"leadershipTermId": 3, "clusterSessionId": 42, "timestamp": 1700000000123},
    ),
    (b"hello, aeron", None, None),
    (
        aeron_cluster_codecs.encode_dict("SessionKeepAlive", {"leadershipTermId": 4, "clusterSessionId": 77}),
        "SessionKeepAlive",
        {"leadershipTermId": 4, "clusterSessionId": 77},
    ),
    (b"\xff" * 3000, None, None),  # not SBE (no schema has id 0xffff), and fragmented
    (
        SESSION_HEADER,
        "SessionMessageHeader",
        {"leadershipTermId": 3, "clusterSessionId": 42, "timestamp": 1700000000123},
    ),
    (
        aeron_cluster_codecs.encode_dict(
            "SessionCloseRequest", {"leadershipTermId": 4, "clusterSessionId": 77}
        ),
        "SessionCloseRequest",
        {"leadershipTermId": 4, "clusterSessionId": 77},
    ),
]


def check_decoded_traffic(
    records: list[dict[str, Any]], session_id: int, stream_id: int, traffic: list[Any] = TRAFFIC
) -> None:
    """The decoder's records of a capture: no errors, and the messages are exactly ``traffic``, in order."""
    assert [r for r in records if r["kind"] == "error"] == []
    messages = [r for r in records if r["kind"] == "message"]
    assert len(messages) == len(traffic), [(m["length"], m.get("sbe", {}).get("message")) for m in messages]
    for record, (payload, name, fields) in zip(messages, traffic, strict=True):
        assert (record["sessionId"], record["streamId"], record["length"]) == (
            session_id,
            stream_id,
            len(payload),
        )
        if name is None:
            assert "sbe" not in record and record["payloadHex"] == payload.hex()
            continue
        assert record["sbe"]["message"] == name and record["sbe"]["fields"] == fields, record
        trailing = payload[len(aeron_cluster_codecs.encode_dict(name, fields)) :] if fields else b""
        assert record.get("trailingHex", "") == trailing.hex()
    fragments = [r for r in records if r["kind"] == "frame" and r["type"] == "DATA" and r["frameLength"]]
    assert {tuple(r["flags"]) for r in fragments} >= {("BEGIN",), (), ("END",), ("END", "BEGIN")}


def test_decoding_a_capture_of_our_transport(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = record_pub_sub([payload for payload, _, _ in TRAFFIC], stream_id=STREAM, batch=3)
    path = pcap.write_capture(tmp_path / "ours.pcap", run.datagrams)
    status, records = decode(capsys, str(path), "--port", str(run.subscription_port))
    assert status == 0
    check_decoded_traffic(records, run.session_id, STREAM)
    assert {"SETUP", "SM", "DATA", "message"} <= set(kinds(records))
    frames_per_datagram = Counter(
        r["datagram"] for r in records if r["kind"] == "frame" and r["type"] == "DATA"
    )
    assert max(frames_per_datagram.values()) >= 2, "several frames in one datagram"
    assert any(r["kind"] == "frame" and "EOS" in r["flags"] for r in records), "an end-of-stream heartbeat"


def test_decoding_a_capture_with_retransmissions_shows_each_message_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traffic = TRAFFIC * 10
    run = record_pub_sub([payload for payload, _, _ in traffic], stream_id=STREAM, data_loss=0.2, seed=3)
    assert run.data_loss_drops > 0  # every DATA datagram dropped on arrival was captured, then re-sent
    path = pcap.write_capture(tmp_path / "lossy.pcap", run.datagrams)
    status, records = decode(capsys, str(path), "--port", str(run.subscription_port))
    assert status == 0
    check_decoded_traffic(records, run.session_id, STREAM, traffic)


@pytest.mark.interop
def test_decoding_a_capture_of_the_real_aeron_driver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pyaeron's C driver, captured by a relay between its publication and its subscription."""
    pyaeron = need_module("pyaeron", "the real Aeron C driver")
    port = free_udp_port()
    deadline = time.monotonic() + 30

    def wait_for(condition: Any, what: str, step: Any) -> None:
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            step()

    with (
        pyaeron.MediaDriver(dir=str(tmp_path / "aeron"), threading="shared") as driver,
        pyaeron.Aeron(dir=driver.dir) as aeron,
        UdpRelay(("127.0.0.1", port)) as relay,
    ):
        real_sub = aeron.add_subscription(f"aeron:udp?endpoint=127.0.0.1:{port}", STREAM)
        real_pub = aeron.add_exclusive_publication(f"aeron:udp?endpoint=127.0.0.1:{relay.address[1]}", STREAM)
        fragments: list[bytes] = []

        def step() -> None:
            relay.poll()
            real_sub.poll(lambda buffer, header: fragments.append(buffer.tobytes()), 64, assemble=False)

        wait_for(lambda: real_pub.is_connected, "the real publication to connect", step)
        for payload, _, _ in TRAFFIC:
            wait_for(lambda payload=payload: bool(real_pub.offer(payload)), "the offer", step)
        wait_for(lambda: real_sub.image_count == 1, "the real image", step)
        image = real_sub.image_at_index(0)
        wait_for(lambda: image.position == real_pub.position, "the real subscriber to read everything", step)
        session_id = real_pub.session_id
        real_pub.close()
        wait_for(lambda: image.is_end_of_stream, "end of stream", step)
        relay.poll()
        datagrams = relay.datagrams
        assert relay.unroutable == 0
    path = pcap.write_capture(tmp_path / "real.pcap", datagrams)
    status, records = decode(capsys, str(path))
    assert status == 0
    check_decoded_traffic(records, session_id, STREAM)
    assert {"SETUP", "SM", "DATA", "message"} <= set(kinds(records))
    # every datagram was recorded with its real ports: data towards the relay, control back from the receiver
    data_ports = {(d.source, d.destination) for d in datagrams if d.payload[6] == 1}
    assert {destination for _, destination in data_ports} == {relay.address}


@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("order", ["in order", "reversed"])
def test_ip_fragments_of_a_jumbo_datagram_are_reassembled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ipv6: bool, order: str
) -> None:
    """An Aeron mtu of 8 KiB on a 1500-byte link: each datagram crosses the wire as IP fragments."""
    payload = SESSION_HEADER + bytes(i % 251 for i in range(6000))
    datagram = data_frame(payload, 0)
    host = "::1" if ipv6 else "127.0.0.1"
    packet = pcap.udp_packet(datagram, (host, 40000), (host, PORT))
    pieces = pcap.ip_fragments(packet, 1480)
    assert len(pieces) == 5
    if order == "reversed":
        pieces.reverse()
    path = pcap.write_frames(
        tmp_path / "fragments.pcap",
        [*pieces, pcap.udp_packet(data_frame(CONNECT, 6048), (host, 40000), (host, PORT))],
    )
    status, records = decode(capsys, str(path))
    assert status == 0
    assert kinds(records) == ["DATA", "message", "DATA", "message"]
    assert records[1]["length"] == len(payload) and records[1]["sbe"]["message"] == "SessionMessageHeader"
    assert records[1]["trailingHex"] == payload[len(SESSION_HEADER) :].hex()
    assert records[3]["sbe"]["message"] == "SessionConnectRequest"


def test_a_datagram_missing_an_ip_fragment_is_not_decoded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    packet = pcap.udp_packet(data_frame(bytes(6000), 0), ("127.0.0.1", 40000), ("127.0.0.1", PORT))
    pieces = pcap.ip_fragments(packet, 1480)
    del pieces[2]
    after = pcap.udp_packet(data_frame(CONNECT, 6048), ("127.0.0.1", 40000), ("127.0.0.1", PORT))
    path = pcap.write_frames(tmp_path / "hole.pcap", [*pieces, after])
    status, records = decode(capsys, str(path))
    assert status == 0
    assert kinds(records) == ["DATA", "message"]
    assert records[1]["sbe"]["message"] == "SessionConnectRequest"


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=4000),
    size=st.sampled_from([8, 64, 1480]),
    order=st.randoms(use_true_random=False),
    drop=st.booleans(),
    junk=st.lists(st.tuples(st.integers(0, 70000), st.booleans(), st.binary(max_size=64)), max_size=5),
)
def test_the_ip_reassembler_gives_the_payload_exactly_when_all_pieces_came(
    data: bytes, size: int, order: Any, drop: bool, junk: list[tuple[int, bool, bytes]]
) -> None:
    from tools.capture import _IpReassembler

    pieces = [
        (offset, offset + size < len(data), data[offset : offset + size])
        for offset in range(0, len(data), size)
    ]
    order.shuffle(pieces)
    if drop and len(pieces) > 1:
        pieces.pop()
    reassembler = _IpReassembler()
    for offset, more, chunk in junk:  # other datagrams' fragments, under another key
        reassembler.add(("other",), offset, more, chunk)
    results = [reassembler.add(("key",), offset, more, chunk) for offset, more, chunk in pieces]
    complete = not (drop and len(data) > size)
    assert results[:-1] == [None] * (len(results) - 1)
    assert results[-1] == (data if complete else None)
