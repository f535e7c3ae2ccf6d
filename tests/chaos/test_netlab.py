"""The network lab of the partition and loss nemeses (``tools.chaos.netlab``): the rules each fault
shape makes, pure; then, where the machine allows it (root, iproute2, nftables), a lab built for real
whose rules must stop exactly the datagrams they name, and be gone once healed and closed."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.labs import built_lab

from tools.chaos.nemesis import LOSS_MODES, SHAPES, FaultKind, PlannedFault, Schedule, network_fault
from tools.chaos.netlab import (
    NetLab,
    Rule,
    bridge,
    cut_clients,
    isolate,
    lossy,
    one_way,
    split,
    sweep_stale,
)


def _paper_lab(members: int) -> NetLab:
    """A lab's names and addresses, never built: enough for the rules."""
    return NetLab("0000001", ipaddress.IPv4Network("10.201.1.0/24"), members)


def _cut(rules: list[Rule], lab: NetLab) -> set[tuple[int, int]]:
    """(sender, receiver) pairs of members whose datagrams the rules drop (rules about the clients'
    address aside)."""
    by_host = {host: member for member, host in enumerate(lab.hosts)}
    pairs = set()
    for rule in rules:
        assert rule.percent == 100
        if rule.peer == lab.client_host:
            continue
        peer = by_host[rule.peer]
        pairs.add((peer, rule.member) if rule.direction == "input" else (rule.member, peer))
    return pairs


def test_rules_render_as_nftables_rules_on_the_members_own_interface() -> None:
    assert Rule(0, "input", "10.201.1.2").render() == 'iifname "eth0" ip saddr 10.201.1.2 drop'
    assert Rule(0, "output", "10.201.1.2").render() == 'oifname "eth0" ip daddr 10.201.1.2 drop'
    assert (
        Rule(1, "input", "10.201.1.0/24", 12).render()
        == 'iifname "eth0" ip saddr 10.201.1.0/24 numgen random mod 100 < 12 drop'
    )


def test_the_shapes_cut_what_they_say() -> None:
    lab = _paper_lab(5)
    assert lab.hosts == [f"10.201.1.{i}" for i in range(1, 6)] and lab.client_host == "10.201.1.254"
    everyone_else = {(1, m) for m in (0, 2, 3, 4)} | {(m, 1) for m in (0, 2, 3, 4)}
    assert _cut(isolate(lab, 1), lab) == everyone_else
    halves = {(a, b) for a in (0, 3) for b in (1, 2, 4)}
    assert _cut(split(lab, [0, 3]), lab) == halves | {(b, a) for a, b in halves}
    assert _cut(one_way(lab, 2, 4), lab) == {(2, 4)}
    # the bridge: 0 1 | 3 4 cannot reach each other, 2 reaches all
    crossing = {(a, b) for a in (0, 1) for b in (3, 4)}
    assert _cut(bridge(lab, 2), lab) == crossing | {(b, a) for a, b in crossing}
    assert cut_clients(lab, [3]) == [Rule(3, "input", "10.201.1.254"), Rule(3, "output", "10.201.1.254")]
    assert lossy(lab, [0, 4], 20) == [
        Rule(0, "input", "10.201.1.0/24", 20),
        Rule(4, "input", "10.201.1.0/24", 20),
    ]


@pytest.mark.parametrize("nodes", [3, 5])
@pytest.mark.parametrize("shape", SHAPES)
def test_every_partition_shape_leaves_a_majority_that_reaches_one_another(nodes: int, shape: str) -> None:
    lab = _paper_lab(nodes)
    for other in range(0, 40):
        for member in range(nodes):
            planned = PlannedFault(FaultKind.PARTITION, False, member, 1.0, 1.0, shape, other)
            detail, rules = network_fault(lab, planned, member)
            assert rules and detail
            cut = _cut(rules, lab)
            # whatever the shape, some majority still reaches one another both ways
            reachable = {
                frozenset(group)
                for group in _groups(nodes)
                if all((a, b) not in cut for a in group for b in group if a != b)
            }
            assert any(len(group) > nodes // 2 for group in reachable), (shape, member, other, detail)
            if shape == "clients":
                assert cut == set() and {rule.peer for rule in rules} == {lab.client_host}


def _groups(nodes: int) -> Iterator[tuple[int, ...]]:
    from itertools import combinations

    for size in range(1, nodes + 1):
        yield from combinations(range(nodes), size)


def test_loss_aims_at_one_member_or_all() -> None:
    lab = _paper_lab(3)
    one = PlannedFault(FaultKind.LOSS, True, 0, 1.0, 3.0, "member", 0, 17)
    assert network_fault(lab, one, 2) == (
        "17% of the packets arriving at member 2 lost",
        [Rule(2, "input", "10.201.1.0/24", 17)],
    )
    every = PlannedFault(FaultKind.LOSS, True, 0, 1.0, 3.0, "all", 0, 9)
    assert network_fault(lab, every, 2)[1] == [Rule(m, "input", "10.201.1.0/24", 9) for m in range(3)]


def test_a_schedule_draws_every_shape_and_the_same_for_the_same_seed() -> None:
    kinds = (FaultKind.PARTITION, FaultKind.LOSS)
    first = [Schedule(5, kinds, 2.0).next() for _ in range(1)]
    drawn = Schedule(5, kinds, 2.0)
    faults = [drawn.next() for _ in range(200)]
    again = Schedule(5, kinds, 2.0)
    assert faults == [again.next() for _ in range(200)] and faults[0] == first[0]
    assert {f.shape for f in faults if f is not None and f.kind == FaultKind.PARTITION} == set(SHAPES)
    losses = [f for f in faults if f is not None and f.kind == FaultKind.LOSS]
    assert {f.mode for f in losses} == set(LOSS_MODES)
    assert all(2.0 <= f.duration_s <= 6.0 for f in losses)
    assert all(5 <= f.percent <= 30 for f in losses if f.mode == "drop")
    assert all(10 <= f.delay_ms <= 400 for f in losses if f.mode == "delay")
    assert all(5 <= f.jitter_ms <= 100 for f in losses if f.mode == "jitter")
    assert all(10 <= f.percent <= 50 for f in losses if f.mode == "duplicate")


# ------------------------------------------------------------------------------------- a real lab


@pytest.fixture
def lab() -> Iterator[NetLab]:
    with built_lab(3) as made:
        yield made


ECHO = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 9999))
sock.settimeout(20)
print("ready", flush=True)
while True:
    data, source = sock.recvfrom(64)
    sock.sendto(data, source)
"""

PROBE = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(0.2)
replies = 0
for _ in range(int(sys.argv[2])):
    try:
        sock.sendto(b"x", (sys.argv[1], 9999))
        sock.recvfrom(64)
        replies += 1
    except OSError:
        pass
print(replies)
"""


def _replies(prefix: list[str], host: str, count: int = 10) -> int:
    done = subprocess.run(
        [*prefix, sys.executable, "-c", PROBE, host, str(count)], capture_output=True, text=True, timeout=30
    )
    return int(done.stdout.strip())


def test_a_real_lab_drops_exactly_what_its_rules_name(lab: NetLab, tmp_path: Path) -> None:
    echo = subprocess.Popen(
        [*lab.prefix(1), sys.executable, "-c", ECHO, lab.hosts[1]], stdout=subprocess.PIPE, text=True
    )
    try:
        assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
        from_member_0, from_member_2, from_clients = lab.prefix(0), lab.prefix(2), []
        assert (_replies(from_member_0, lab.hosts[1]), _replies(from_clients, lab.hosts[1])) == (10, 10)
        lab.apply(isolate(lab, 1))
        assert _replies(from_member_0, lab.hosts[1]) == 0 and _replies(from_member_2, lab.hosts[1]) == 0
        assert _replies(from_clients, lab.hosts[1]) == 10
        lab.apply(one_way(lab, 1, 0))  # member 0 no longer hears member 1: the echo's replies are lost
        assert _replies(from_member_0, lab.hosts[1]) == 0 and _replies(from_member_2, lab.hosts[1]) == 10
        lab.apply(cut_clients(lab, [1]))
        assert _replies(from_clients, lab.hosts[1]) == 0 and _replies(from_member_0, lab.hosts[1]) == 10
        lab.apply(lossy(lab, [1], 50))
        assert 0 < _replies(from_member_0, lab.hosts[1], 60) < 60
        lab.heal()
        assert _replies(from_member_0, lab.hosts[1]) == 10
        # a member's datagrams to itself never cross eth0: loss there leaves them alone
        lab.apply(lossy(lab, [1], 100))
        assert _replies(lab.prefix(1), lab.hosts[1]) == 10
    finally:
        echo.kill()
        echo.wait(10)


def test_closing_a_lab_removes_its_namespaces_and_bridge(lab: NetLab) -> None:
    def names() -> str:
        return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout

    assert all(namespace in names() for namespace in lab.namespaces)
    lab.close()
    lab.close()  # again: nothing left, nothing raised
    assert not any(namespace in names() for namespace in lab.namespaces)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert lab.bridge not in links


def test_a_dead_harness_leftovers_are_swept(lab: NetLab) -> None:
    # a tag names its harness by the last five digits of its pid: take five that no live process has
    alive = {pid % 100_000 for pid in _pids()}
    dead = next(suffix for suffix in range(99_999, 0, -1) if suffix not in alive)
    namespace = f"aeron-chaos-{dead:05d}00-0"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        assert namespace in sweep_stale()
        assert lab.namespaces[0] not in sweep_stale()  # this process is alive: its lab stays
    finally:
        subprocess.run(["ip", "netns", "delete", namespace], capture_output=True)


def _pids() -> list[int]:
    import os

    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
