"""``python -m tools cluster client``: the echo client (``tools.cluster_client.run_client``) against
scripted members (``support.scripted_cluster``) -- in process on the simulated network, where a leader
change, dropped and corrupted echoes are scripted exactly, and as a real process over UDP on 127.0.0.1
against a scripted leader on a thread of the test, checking its JSON lines.

Expected payloads and hashes are computed here from the rule (byte j of message i is (i + j) % 251,
sizes cycling), not with the code under test."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from support.processes import spawn_tools
from support.scripted_cluster import ENDPOINTS, Member, scripted_world, serve

from cluster.transport.agent import SelectorIdleStrategy
from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.media import UdpNetwork
from cluster.transport.simnet import SimNetwork
from generated import aeron_cluster_codecs as codecs
from tools.__main__ import main
from tools.aeron_cmd import new_histogram
from tools.cluster_client import ClientResult, ClientSettings, RoundTripRecorder, run_client

HEADER = codecs.HEADER_SIZE + codecs.SessionMessageHeaderEncoder.BLOCK_LENGTH
EGRESS = "aeron:udp?endpoint=10.0.0.100:0"
PROCESS_TIMEOUT_S = 60.0

World = tuple[SimNetwork, Transport, list[Member]]


def _payload(index: int, size: int) -> bytes:
    return bytes((index + j) % 251 for j in range(size))


def _expected_sha256(indices: Sequence[int], sizes: Sequence[int]) -> str:
    sha = hashlib.sha256()
    for i in indices:
        sha.update(_payload(i, sizes[i % len(sizes)]))
    return sha.hexdigest()


@pytest.fixture
def world() -> Iterator[World]:
    yield from scripted_world(11)


def _run(
    world: World, settings: ClientSettings, hook: Callable[[], object] = lambda: None
) -> tuple[ClientResult, list[dict[str, Any]], list[str]]:
    network, client, members = world

    def invoke() -> int:
        work = client.do_work()
        for member in members:
            work += member.do_work()
        network.advance(100_000)
        hook()
        return work

    events: list[dict[str, Any]] = []
    errors: list[str] = []
    result = run_client(
        client,
        settings,
        egress_channel=EGRESS,
        ingress_endpoints=ENDPOINTS,
        duty=invoke,
        on_event=events.append,
        on_error=errors.append,
    )
    return result, events, errors


def _connected(leader: int, term: int, session: int) -> dict[str, Any]:
    return {
        "event": "connected",
        "leaderMemberId": leader,
        "leadershipTermId": term,
        "clusterSessionId": session,
    }


# ------------------------------------------------------------------------------------ in process


def test_every_message_follows_the_payload_rule_and_the_hash_is_over_the_echoes(world: World) -> None:
    sizes = (32, 0, 100, 1000)
    result, events, errors = _run(world, ClientSettings(count=300, sizes=sizes, window=16, timeout_s=1.0))
    members = world[2]
    assert events == [_connected(1, 3, 101)]
    assert errors == []
    assert (result.sent, result.echoed, result.lost, result.errors, result.new_leaders) == (300, 300, 0, 0, 0)
    assert result.ok
    assert result.sha256 == _expected_sha256(range(300), sizes)
    assert [m[HEADER:] for m in members[1].received] == [_payload(i, sizes[i % 4]) for i in range(300)]
    assert result.p50_us is not None and result.p99_us is not None and 0 < result.p50_us <= result.p99_us
    assert result.to_json() == {
        "sent": 300,
        "echoed": 300,
        "sha256": result.sha256,
        "newLeaders": 0,
        "errors": 0,
        "p50_us": result.p50_us,
        "p99_us": result.p99_us,
    }


def test_a_client_redirected_by_a_follower_connects_to_the_leader(world: World) -> None:
    members = world[2]
    for member in members:
        member.leader = 2
    result, events, _ = _run(world, ClientSettings(count=20, timeout_s=1.0))
    assert -1 in members[0].egress, "member 0 redirected the first connect request"
    assert events == [_connected(2, 3, 102)]
    assert result.ok and len(members[2].received) == 20


def test_a_window_of_one_sends_one_message_at_a_time(world: World) -> None:
    members = world[2]
    in_flight: list[int] = []

    def watch() -> None:  # messages at the leader minus echoes the client has: never more than one
        in_flight.append(len(members[1].received))

    result, _, _ = _run(world, ClientSettings(count=30, window=1, timeout_s=1.0), watch)
    assert result.ok
    assert in_flight == sorted(in_flight)


def test_a_new_leader_mid_run_is_reported_and_the_session_goes_on_with_it(world: World) -> None:
    members = world[2]

    def change() -> None:
        if len(members[1].received) >= 100 and members[2].leader != 2:
            members[2].announce(101, members[1].response_channels[101])

    result, events, errors = _run(world, ClientSettings(count=400, window=8, timeout_s=1.0), change)
    new_leader = {"event": "newLeader", "leaderMemberId": 2, "leadershipTermId": 4, "clusterSessionId": 101}
    assert events == [_connected(1, 3, 101), new_leader]
    assert errors == []
    assert result.ok and result.new_leaders == 1
    assert result.sha256 == _expected_sha256(range(400), (32,))
    assert members[2].received, "the messages after the change went to the new leader"
    assert {codecs.SessionMessageHeaderDecoder.unpack(m)[:2] for m in members[2].received} == {(4, 101)}
    assert len(members[1].received) + len(members[2].received) == 400


def test_messages_in_flight_at_a_deposed_leader_are_lost_and_reported_honestly(world: World) -> None:
    members = world[2]
    answered_by_old_leader: list[int] = []

    def change() -> None:
        if len(members[1].received) >= 100 and members[2].leader != 2:
            members[1].echo = False  # deposed: what it has not answered yet is never answered
            answered_by_old_leader.append(len(members[1].received))
            members[2].announce(101, members[1].response_channels[101])

    result, events, errors = _run(world, ClientSettings(count=400, window=8, timeout_s=1.0), change)
    assert [event["event"] for event in events] == ["connected", "newLeader"]
    old, new = answered_by_old_leader[0], len(members[2].received)
    assert (result.sent, result.echoed, result.errors) == (400, old + new, 0)
    assert 0 < result.lost == 400 - old - new
    assert not result.ok
    assert any("never echoed" in line and "at most once" in line for line in errors)
    assert result.sha256 == _expected_sha256([*range(old), *range(400 - new, 400)], (32,))


def test_dropped_echoes_leave_echoed_below_sent(world: World) -> None:
    members = world[2]
    members[1].drop_echo = lambda n: n in (10, 11, 199)
    result, _, errors = _run(world, ClientSettings(count=200, window=16, timeout_s=0.5))
    assert (result.sent, result.echoed, result.lost, result.errors) == (200, 197, 3, 0)
    assert not result.ok
    assert result.sha256 == _expected_sha256([i for i in range(200) if i not in (10, 11, 199)], (32,))
    assert errors[0].startswith("no progress for 0.5 s: 1 messages in flight not echoed")
    assert errors[1].startswith("3 messages sent were never echoed (10, 11, 199)")


def test_a_corrupted_echo_is_an_error(world: World) -> None:
    members = world[2]
    members[1].corrupt_echo = lambda n: n == 5
    result, _, errors = _run(world, ClientSettings(count=50, window=4, timeout_s=0.5))
    assert (result.sent, result.echoed, result.lost, result.errors) == (50, 49, 1, 1)
    assert errors[0] == "echo 6: 32 bytes that match no message in flight (expected message 5)"
    assert not result.ok


def test_a_connect_nobody_answers_is_an_error_of_the_result(world: World) -> None:
    network, client, _ = world
    result, events, errors = _run((network, client, []), ClientSettings(count=5, timeout_s=0.2))
    assert events == [] and (result.sent, result.errors) == (0, 1)
    assert errors[0].startswith("connect failed")


# ------------------------------------------------------------------------------------ arguments


E = "--ingress-endpoints"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([E, "0=127.0.0.1"], "error: --ingress-endpoints: ingress endpoints '0=127.0.0.1'"),
        ([E, "localhost:9002"], "error: --ingress-endpoints: ingress endpoints"),
        ([E, "0=a:1,0=b:2"], "error: --ingress-endpoints: ingress endpoints '0=a:1,0=b:2': member 0 twice"),
        ([E, "0=a:1", "--window", "0"], "error: --window 0: must be 1 to 65536"),
        ([E, "0=a:1", "--sizes", "32,x"], "error: --sizes '32,x': expected sizes in bytes"),
        ([E, "0=a:1", "--count", "-1"], "error: --count -1: must be 0 or more"),
        ([E, "0=a:1", "--timeout", "0"], "error: --timeout 0.0: must be a positive number"),
        ([E, "0=a:1", "--egress-channel", "aeron:ipc"], "error: --egress-channel 'aeron:ipc'"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_error_line_and_status_2(
    options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cluster", "client", *options]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and captured.err.count("\n") == 1
    assert captured.out == ""


# ------------------------------------------------------------------------------- a real process


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def udp_leader() -> Iterator[Member]:
    """A scripted leader (member 0, term 3) on 127.0.0.1, served on a thread until the test ends."""
    port = _free_udp_port()
    idle = SelectorIdleStrategy()
    transport = Transport(UdpNetwork(), TransportConfig(bind_host="127.0.0.1"), idle=idle)
    member = Member(
        0, transport, leader=0, ingress_endpoint=f"127.0.0.1:{port}", endpoints=f"0=127.0.0.1:{port}"
    )
    stop = threading.Event()
    thread = serve(member, idle, stop)
    try:
        yield member
    finally:
        stop.set()
        thread.join(PROCESS_TIMEOUT_S)
        transport.close()
        idle.close()


def test_the_command_over_udp_prints_connected_then_the_result(udp_leader: Member) -> None:
    sizes = (32, 100, 7)
    with spawn_tools(
        "cluster", "client", "--ingress-endpoints", udp_leader.endpoints, "--count", "200",
        "--sizes", "32,100,7", "--window", "16", "--timeout", "20", "--json",
    ) as process:  # fmt: skip
        out, err = process.communicate(timeout=PROCESS_TIMEOUT_S)
    assert process.returncode == 0, err
    assert err == ""
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2
    assert lines[0] == _connected(0, 3, 100)
    result = lines[1]
    assert list(result) == ["sent", "echoed", "sha256", "newLeaders", "errors", "p50_us", "p99_us"]
    assert result | {"p50_us": 0, "p99_us": 0} == {
        "sent": 200,
        "echoed": 200,
        "sha256": _expected_sha256(range(200), sizes),
        "newLeaders": 0,
        "errors": 0,
        "p50_us": 0,
        "p99_us": 0,
    }
    assert 0 < result["p50_us"] <= result["p99_us"]


def test_the_command_over_udp_exits_1_when_echoes_are_dropped(udp_leader: Member) -> None:
    udp_leader.drop_echo = lambda n: n == 3
    with spawn_tools(
        "cluster", "client", "--ingress-endpoints", udp_leader.endpoints, "--count", "20", "--timeout", "1",
    ) as process:  # fmt: skip
        out, err = process.communicate(timeout=PROCESS_TIMEOUT_S)
    assert process.returncode == 1, err
    result = json.loads(out.splitlines()[-1])
    assert (result["sent"], result["echoed"], result["errors"]) == (20, 19, 0)
    assert result["sha256"] == _expected_sha256([i for i in range(20) if i != 3], (32,))
    assert "1 messages sent were never echoed (3)" in err
    assert "cluster client: 19 of 20 sent echoed" in err  # the human summary, without --json


def test_the_round_trip_recorder_fills_the_histogram_as_record_value_would() -> None:
    rng = random.Random(5)
    values = [1, 2, 2047, 2048, 2049, 10**6, 59_999_999_999, 60 * 10**9, 10**12, -3]
    values += [rng.randrange(1, 1 << rng.randrange(1, 40)) for _ in range(5000)]
    by_record_value, by_recorder = new_histogram(), new_histogram()
    recorder = RoundTripRecorder(by_recorder)
    for i, value in enumerate(values):
        by_record_value.record_value(value)
        recorder.record(value)
        if i == 2500:
            recorder.flush()  # flushing midway changes nothing
    recorder.flush()
    assert list(by_recorder.counts) == list(by_record_value.counts)
    assert by_recorder.get_total_count() == by_record_value.get_total_count()
    assert by_recorder.get_max_value() == by_record_value.get_max_value()
    assert by_recorder.get_min_value() == by_record_value.get_min_value()
    for percentile in (0.0, 50.0, 99.0, 99.9, 100.0):
        assert by_recorder.get_value_at_percentile(percentile) == by_record_value.get_value_at_percentile(
            percentile
        )
