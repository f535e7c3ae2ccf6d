"""The generated plugins against ``python -m tools decode`` on the captures of a Java Aeron 1.47.3 run
(``support.paths.JAVA``; skipped where the reference data is absent): every SBE message tshark shows --
its name, header and every field value -- equals what ``tools decode --json`` prints for the same
frames, and every message ``tools decode`` finds is shown by tshark.

tshark runs once per capture, with the four Aeron preferences on and Aeron's UDP heuristic marking the
traffic, so fragmented messages are handed to the plugins reassembled. Messages are matched by the
position of their first fragment (session, stream, term id, term offset); a retransmitted frame shows a
message again, and must show it the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.needs import need_program, need_reference
from support.paths import JAVA
from support.tshark_sbe import (
    PI_WARN,
    TsharkSbe,
    begin_frames,
    dissect_json,
    dissected_messages,
    position_of,
    tshark_command,
    write_plugins,
)

from codegen import load_schema
from schemas import builtin_schemas
from tools.capture import decode_capture

pytestmark = pytest.mark.interop

CAPTURES = {"cluster": JAVA / "cluster" / "capture.pcapng", "archive": JAVA / "archive" / "capture.pcapng"}


def expected_messages(capture: Path) -> dict[tuple[int, ...], dict[str, Any]]:
    out = {}
    for record in decode_capture(capture):
        if record["kind"] != "message" or "sbe" not in record:
            continue
        key = (
            record["sessionId"] & 0xFFFFFFFF,
            record["streamId"] & 0xFFFFFFFF,
            record["termId"] & 0xFFFFFFFF,
            record["termOffset"],
        )
        out[key] = {"sbe": record["sbe"], "trailingHex": record.get("trailingHex")}
    return out


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_tshark_shows_every_message_as_tools_decode_does(name: str, tmp_path: Path) -> None:
    capture = need_reference(CAPTURES[name])
    tshark = need_program("tshark")
    schemas = [load_schema(path) for path in builtin_schemas()]
    plugins = write_plugins(tmp_path, schemas)
    readers = {r.proto: r for r in (TsharkSbe(s) for s in schemas if s.messages)}
    packets = dissect_json(tshark_command(tshark, capture, plugins, port=None))
    begins = begin_frames(packets)
    shown: dict[tuple[int, ...], dict[str, Any]] = {}
    for message in dissected_messages(packets, set(readers)):
        assert not [e for e in message.experts if e[0] >= PI_WARN], (message.frame, message.experts)
        reader = readers[message.proto]
        value = {"sbe": reader.message(message.tree), "trailingHex": reader.trailing_hex(message.tree)}
        key = position_of(message, begins)
        if key in shown:
            assert shown[key] == value, f"frame {message.frame}: a retransmission shows another message"
        shown[key] = value
    expected = expected_messages(capture)
    assert expected, "tools decode found no SBE messages"
    mismatched = [(k, shown.get(k), v) for k, v in expected.items() if shown.get(k) != v]
    assert not mismatched, f"{len(mismatched)} of {len(expected)} messages differ, first: {mismatched[:2]}"
    assert set(shown) == set(expected)
    print(f"{name}: tshark and tools decode agree on {len(expected)} SBE messages")
