"""``python -m tools aeron``: the transport samples' exact command-line forms, run as real processes.

send and recv must agree with each other *and* with a hash computed here from the payload rule (byte j of
message i is ``(i + j) % 251``, sizes cycling), with empty messages and messages larger than the MTU, with
and without loss. Every subprocess is bounded by a timeout and killed by pid on the way out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from support.processes import spawn_tools

from tools.__main__ import main
from tools.aeron_cmd import PayloadSource, StreamDigest, payload

ROOT = Path(__file__).resolve().parents[1]
PROCESS_TIMEOUT_S = 60.0


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _channel(port: int) -> str:
    return f"aeron:udp?endpoint=127.0.0.1:{port}"


def _reference(count: int, sizes: Sequence[int]) -> dict[str, Any]:
    """The expected JSON line, computed without the code under test."""
    sha = hashlib.sha256()
    total = 0
    for i in range(count):
        size = sizes[i % len(sizes)]
        sha.update(bytes((i + j) % 251 for j in range(size)))
        total += size
    return {"messages": count, "bytes": total, "sha256": sha.hexdigest()}


def _spawn(*args: str) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
    return spawn_tools("aeron", *args, timeout_s=PROCESS_TIMEOUT_S)


def _finish(process: subprocess.Popen[str], timeout_s: float = PROCESS_TIMEOUT_S) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout_s)
    return process.returncode, out, err


def _last_json(out: str) -> dict[str, Any]:
    lines = out.strip().splitlines()
    assert lines, "no output"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _transfer(count: int, sizes: Sequence[int], *recv_options: str) -> None:
    channel = _channel(_free_udp_port())
    size_text = ",".join(str(size) for size in sizes)
    common = ("--channel", channel, "--stream", "1001", "--count", str(count), "--timeout", "20")
    with (
        _spawn("recv", *common, *recv_options) as receiver,
        _spawn("send", *common, "--sizes", size_text) as sender,
    ):
        sent_status, sent_out, sent_err = _finish(sender)
        received_status, received_out, received_err = _finish(receiver)
    assert sent_status == 0, sent_err
    assert received_status == 0, received_err
    expected = _reference(count, sizes)
    assert _last_json(sent_out) == expected
    assert _last_json(received_out) == expected


# ------------------------------------------------------------------------------------------ payloads


def test_payload_source_follows_the_reference_rule_and_cycles_sizes() -> None:
    sizes = [0, 1, 300, 7]
    source = PayloadSource(sizes)
    for index in range(600):
        assert bytes(source(index)) == payload(index, sizes[index % len(sizes)])
        assert payload(index, 3) == bytes([(index + j) % 251 for j in range(3)])
    assert source.total_bytes(9) == sum(sizes[i % 4] for i in range(9))


@pytest.mark.parametrize("sizes", [[5], [0, 1, 300, 7], list(range(40))])  # 40 sizes: no precomputed cycle
def test_iterating_a_payload_source_gives_messages_in_order(sizes: list[int]) -> None:
    source = PayloadSource(sizes)
    messages = iter(source)
    for index in range(1300):
        assert bytes(next(messages)) == bytes(source(index)), index


def test_stream_digest_hashes_in_order_and_ignores_messages_beyond_its_limit() -> None:
    digest = StreamDigest(limit=2)
    for chunk in (b"ab", b"", b"cd"):
        digest.update(chunk)
    assert digest.is_complete
    assert digest.extra == 1
    assert digest.summary() == {"messages": 2, "bytes": 2, "sha256": hashlib.sha256(b"ab").hexdigest()}


# ----------------------------------------------------------------------------------------- send/recv


def test_send_and_recv_agree_with_the_reference_hash_for_empty_and_fragmented_messages() -> None:
    _transfer(300, [0, 32, 2000, 5000])


def test_recv_with_five_percent_loss_still_receives_everything_identically() -> None:
    _transfer(300, [0, 32, 2000, 5000], "--loss", "0.05", "--seed", "7")


def test_recv_without_a_sender_times_out_quickly_with_status_1_and_prints_what_it_got() -> None:
    started = time.monotonic()
    channel = _channel(_free_udp_port())
    with _spawn("recv", "--channel", channel, "--count", "5", "--timeout", "0.5") as receiver:
        status, out, err = _finish(receiver, 20.0)
    assert status == 1
    assert "timed out" in err
    assert _last_json(out) == _reference(0, [0])
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(
    "argv",
    [
        ["aeron", "recv", "--channel", "aeron:udp?endpoint=127.0.0.1:99999", "--timeout", "1"],
        ["aeron", "send", "--channel", "aeron:udp?endpoint=127.0.0.1", "--timeout", "1"],
        ["aeron", "send", "--channel", "aeron:tcp?endpoint=127.0.0.1:40000", "--timeout", "1"],
        ["aeron", "send", "--channel", "aeron:ipc", "--timeout", "1"],
        ["aeron", "send", "--channel", "aeron:udp?endpoint=127.0.0.1:0", "--timeout", "1"],
        ["aeron", "send", "--channel", "aeron:udp?endpoint=127.0.0.1:40000", "--sizes", "99999999"],
        ["aeron", "ping", "--size", "8", "--timeout", "1"],
    ],
)
def test_bad_channel_or_option_is_one_error_line_and_status_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ")
    assert captured.err.count("\n") == 1
    assert captured.out == ""


def test_malformed_sizes_are_a_usage_error() -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["aeron", "send", "--sizes", "1,x"])
    assert excinfo.value.code == 2


# ----------------------------------------------------------------------------------------- ping/pong


def test_ping_against_pong_prints_round_trip_percentiles_as_json() -> None:
    ping_channel, pong_channel = _channel(_free_udp_port()), _channel(_free_udp_port())
    channels = ("--ping-channel", ping_channel, "--pong-channel", pong_channel)
    with (
        _spawn("pong", *channels, "--count", "60", "--timeout", "20") as pong,
        _spawn("ping", *channels, "--count", "50", "--warmup", "10", "--timeout", "20") as ping,
    ):
        ping_status, ping_out, ping_err = _finish(ping)
        pong_status, pong_out, pong_err = _finish(pong)
    assert ping_status == 0, ping_err
    assert pong_status == 0, pong_err
    summary = _last_json(ping_out)
    assert summary["count"] == 50
    for key in ("p50_us", "p90_us", "p99_us", "p99_9_us", "max_us"):
        assert summary[key] > 0, key
    assert summary["p50_us"] <= summary["p99_us"] <= summary["max_us"]
    assert "p99.9" in ping_out  # the human-readable table came first
    assert _last_json(pong_out) == {"echoed": 60}


# ---------------------------------------------------------------------------------------- throughput


def test_throughput_in_process_reports_a_rate_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["aeron", "throughput", "--mode", "inprocess", "--count", "3000", "--json", "--timeout", "10"]
    )
    assert status == 0
    result = _last_json(capsys.readouterr().out)
    assert result["mode"] == "inprocess"
    assert result["offered"] == result["received"] == 3000
    assert result["messages_per_s"] > 0


def test_throughput_with_a_subscriber_process_reports_a_rate() -> None:
    with _spawn("throughput", "--count", "5000", "--timeout", "20") as process:
        status, out, err = _finish(process)
    assert status == 0, err
    assert "msgs/s" in out
    result = _last_json(out)
    assert result["mode"] == "processes"
    assert result["offered"] == result["received"] == 5000
