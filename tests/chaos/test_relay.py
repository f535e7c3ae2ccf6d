"""The relay that delays, reorders and duplicates what members send each other (``tools.chaos.relay``):
its decisions, pure and seeded; its control file, fuzzed; then, where the machine allows it, a lab
whose members' datagrams cross a real relay."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.labs import built_lab

from tools.chaos.nemesis import FaultKind, PlannedFault, relay_fault
from tools.chaos.netlab import NetLab, NetLabError
from tools.chaos.relay import (
    MAX_HOLD_MS,
    LinkFault,
    RelayCore,
    RelayError,
    _udp_packet,
    parse_control,
    render_control,
)

A, B, C = "10.201.1.1", "10.201.1.2", "10.201.1.3"
MS = 1_000_000


def test_without_a_fault_every_packet_goes_on_at_once_in_order() -> None:
    core = RelayCore(1)
    for n in range(5):
        core.on_packet(100, A, B, bytes([n]))
    assert core.due(100) == [(B, bytes([n])) for n in range(5)] and core.next_due_ns() is None


def test_a_delay_holds_each_packet_exactly_that_long() -> None:
    core = RelayCore(1)
    core.set_faults({(A, B): LinkFault(delay_ms=30)})
    core.on_packet(0, A, B, b"held")
    core.on_packet(0, B, A, b"other way")  # no fault on that link
    assert core.due(0) == [(A, b"other way")]
    assert core.next_due_ns() == 30 * MS and core.due(30 * MS - 1) == []
    assert core.due(30 * MS) == [(B, b"held")]


def test_jitter_reorders_and_the_same_seed_reorders_the_same_way() -> None:
    def run(seed: int) -> list[bytes]:
        core = RelayCore(seed)
        core.set_faults({(A, B): LinkFault(delay_ms=1, jitter_ms=20)})
        for n in range(50):
            core.on_packet(n * 100_000, A, B, n.to_bytes(1, "big"))
        held = core.due(25 * MS)
        assert all(MS + n * 100_000 <= 25 * MS for n in range(50)) and len(held) == 50
        return [packet for _, packet in held]

    order = run(7)
    assert order != sorted(order) and sorted(order) == [n.to_bytes(1, "big") for n in range(50)]
    assert run(7) == order and run(8) != order


def test_duplication_sends_a_share_twice() -> None:
    core = RelayCore(3)
    core.set_faults({(A, B): LinkFault(duplicate=100)})
    core.on_packet(0, A, B, b"x")
    assert core.due(0) == [(B, b"x"), (B, b"x")] and core.duplicated == 1
    core.set_faults({(A, B): LinkFault(duplicate=30)})
    for _ in range(1000):
        core.on_packet(0, A, B, b"y")
    assert 200 < len(core.due(0)) - 1000 < 400


def test_new_faults_leave_what_is_held_to_go_out_when_due() -> None:
    core = RelayCore(1)
    core.set_faults({(A, B): LinkFault(delay_ms=50)})
    core.on_packet(0, A, B, b"early")
    core.set_faults({})
    core.on_packet(1, A, B, b"late")
    assert core.due(1) == [(B, b"late")] and core.due(50 * MS) == [(B, b"early")]


def test_bad_link_faults_are_refused() -> None:
    for fault in (
        {"delay_ms": -1},
        {"jitter_ms": -0.5},
        {"delay_ms": 9_000, "jitter_ms": 2_000},
        {"duplicate": 101},
        {"delay_ms": float("nan")},
        {"jitter_ms": float("inf")},
    ):
        with pytest.raises(RelayError):
            LinkFault(**fault)  # type: ignore[arg-type]


def test_a_control_file_round_trips_and_bad_ones_are_refused_with_the_reason() -> None:
    faults = {(A, B): LinkFault(10.0, 2.5, 0), (C, A): LinkFault(0.0, 0.0, 40)}
    assert parse_control(render_control(9, faults), [A, B, C]) == (9, faults)
    bad = {
        "not json": "is not JSON",
        "[]": '"links" list',
        '{"links": [1]}': "must be an object",
        '{"links": [{"from": "10.0.0.9", "to": "10.201.1.2"}]}': "two different members",
        '{"links": [{"from": "10.201.1.1", "to": "10.201.1.1"}]}': "two different members",
        '{"links": [{"from": "10.201.1.1", "to": "10.201.1.2", "delay_ms": "5"}]}': "must be a number",
        '{"links": [{"from": "10.201.1.1", "to": "10.201.1.2", "loss": 5}]}': "unknown link keys",
        '{"links": [{"from": "10.201.1.1", "to": "10.201.1.2", "duplicate": 2.5}]}': "whole percentage",
        '{"generation": "1", "links": []}': '"generation" must be an integer',
        '{"links": [{"from": "10.201.1.1", "to": "10.201.1.2", "delay_ms": NaN}]}': "hold a packet at most",
    }
    for text, reason in bad.items():
        with pytest.raises(RelayError, match=reason):
            parse_control(text, [A, B, C])


@given(
    st.one_of(
        st.text(max_size=300),
        st.builds(
            json.dumps,
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                lambda inner: (
                    st.lists(inner, max_size=4)
                    | st.dictionaries(
                        st.sampled_from(
                            ["generation", "links", "from", "to", "delay_ms", "jitter_ms", "duplicate", "x"]
                        ),
                        inner,
                        max_size=6,
                    )
                ),
                max_leaves=20,
            ),
        ),
    )
)
def test_any_control_file_is_taken_whole_or_refused_with_a_relay_error(text: str) -> None:
    try:
        generation, faults = parse_control(text, [A, B, C])
    except RelayError:
        return
    assert isinstance(generation, int) and all(isinstance(f, LinkFault) for f in faults.values())
    core = RelayCore(1)  # whatever it took, the relay can act on
    core.set_faults(faults)
    for source, destination in faults:
        core.on_packet(0, source, destination, b"x")
    core.due(MAX_HOLD_MS * MS)


def _ipv4_udp(source: str, destination: str, payload: bytes, *, fragment_offset: int = 0) -> bytes:
    header = bytearray(20)
    header[0] = 0x45
    header[2:4] = (20 + 8 + len(payload)).to_bytes(2, "big")
    header[6:8] = fragment_offset.to_bytes(2, "big")
    header[8], header[9] = 64, 17
    header[12:16], header[16:20] = socket.inet_aton(source), socket.inet_aton(destination)
    udp = (
        (1234).to_bytes(2, "big")
        + (9999).to_bytes(2, "big")
        + (8 + len(payload)).to_bytes(2, "big")
        + b"\xab\xcd"
    )
    return bytes(header) + udp + payload


def test_only_udp_between_members_is_relayed_and_its_checksum_cleared() -> None:
    members = frozenset({A, B})
    parsed = _udp_packet(_ipv4_udp(A, B, b"data"), members)
    assert parsed is not None and parsed[:2] == (A, B)
    assert parsed[2][26:28] == b"\0\0" and parsed[2][28:] == b"data"
    assert _udp_packet(_ipv4_udp(A, C, b"data"), members) is None  # not a member
    tcp = bytearray(_ipv4_udp(A, B, b"data"))
    tcp[9] = 6
    assert _udp_packet(bytes(tcp), members) is None
    assert _udp_packet(b"\x45\x00", members) is None
    later = _udp_packet(_ipv4_udp(A, B, b"data", fragment_offset=3), members)  # no UDP header in it
    assert later is not None and later[2][26:28] == b"\xab\xcd"


def test_relay_faults_aim_at_one_member_or_all() -> None:
    lab = NetLab("0000001", ipaddress.IPv4Network("10.201.1.0/24"), 3)
    delay = PlannedFault(FaultKind.LOSS, True, 0, 1.0, 3.0, "member", 0, 100, "delay", 120, 4)
    detail, links = relay_fault(lab, delay, 2)
    assert links == {(0, 2): LinkFault(120.0, 4.0), (1, 2): LinkFault(120.0, 4.0)}
    assert detail == "the packets from other members arriving at member 2 delayed 120 ms + 0-4 ms jitter"
    copies = PlannedFault(FaultKind.LOSS, True, 0, 1.0, 3.0, "all", 0, 25, "duplicate", 0, 3)
    detail, links = relay_fault(lab, copies, 2)
    assert set(links) == {(a, b) for a in range(3) for b in range(3) if a != b}
    assert all(fault == LinkFault(0.0, 3.0, 25) for fault in links.values()) and "25% duplicated" in detail


def test_a_lab_without_a_relay_refuses_link_faults() -> None:
    lab = NetLab("0000001", ipaddress.IPv4Network("10.201.1.0/24"), 3)
    with pytest.raises(NetLabError, match="no relay"):
        lab.set_link_faults({(0, 1): LinkFault(delay_ms=5)})


# ------------------------------------------------------------------------------------- a real relay


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[NetLab]:
    with built_lab(2, relay=True, directory=tmp_path / "relay", seed=11) as made:
        yield made


RECEIVER = """
import json, socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 9999))
sock.settimeout(1.5)
print("ready", flush=True)
got = []
try:
    while True:
        data, source = sock.recvfrom(64)
        got.append([int(data), source[0], source[1], time.monotonic()])
except OSError:
    pass
print(json.dumps(got), flush=True)
"""

SENDER = """
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 7777))
print(time.monotonic(), flush=True)
for n in range(int(sys.argv[3])):
    sock.sendto(str(n).encode(), (sys.argv[2], 9999))
"""


def _exchange(lab: NetLab, count: int) -> tuple[float, list[list[float]]]:
    """``count`` datagrams from member 0 to member 1, back to back: when they were sent (member 0's
    monotonic clock, the machine's), and what arrived: [number, source host, source port, when]."""
    receiver = subprocess.Popen(
        [*lab.prefix(1), sys.executable, "-c", RECEIVER, lab.hosts[1]], stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
        sent = subprocess.run(
            [*lab.prefix(0), sys.executable, "-c", SENDER, lab.hosts[0], lab.hosts[1], str(count)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        out, _ = receiver.communicate(timeout=30)
    finally:
        receiver.kill()
        receiver.wait()
    return float(sent.stdout), json.loads(out)


def test_a_real_relay_passes_delays_reorders_and_duplicates_datagrams_with_their_own_source(
    lab: NetLab,
) -> None:
    sent_at, got = _exchange(lab, 20)
    assert sorted(n for n, *_ in got) == list(range(20))  # no fault: each once
    assert {(host, port) for _, host, port, _ in got} == {(lab.hosts[0], 7777)}  # as if sent directly

    lab.set_link_faults({(0, 1): LinkFault(delay_ms=300)})
    sent_at, got = _exchange(lab, 20)
    assert sorted(n for n, *_ in got) == list(range(20))
    assert min(when for *_, when in got) - sent_at >= 0.3  # never early

    lab.set_link_faults({(0, 1): LinkFault(jitter_ms=80)})
    _, got = _exchange(lab, 40)
    order = [n for n, *_ in got]
    assert sorted(order) == list(range(40)) and order != sorted(order)

    lab.set_link_faults({(0, 1): LinkFault(duplicate=100)})
    _, got = _exchange(lab, 10)
    assert sorted(n for n, *_ in got) == sorted(list(range(10)) * 2)

    lab.heal()
    _, got = _exchange(lab, 10)
    assert [n for n, *_ in got] == list(range(10)) and lab.link_faults == {}
