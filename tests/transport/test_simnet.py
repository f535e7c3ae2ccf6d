"""The simulated network: timing, loss, duplication, reordering, partitions, sockets and the driver loop.

Every run is in virtual time under a fixed seed, so nothing here depends on the machine; statistical
assertions use wide bounds around the configured rates (the seeds are fixed, so they cannot flake).
"""

from __future__ import annotations

import itertools
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.transport.errors import TransportError
from cluster.transport.media import MAX_DATAGRAM_LENGTH, MediaError, Network
from cluster.transport.simnet import (
    DEFAULT_DELAY_NS,
    EPHEMERAL_PORT_FIRST,
    EPHEMERAL_PORT_LAST,
    LinkConfig,
    SimNetwork,
    SimNetworkError,
    SimSocket,
)

A, B, C = ("10.0.0.1", 40001), ("10.0.0.2", 40002), ("10.0.0.3", 40003)
TAG = struct.Struct("<I")
US = 1_000
MS = 1_000_000

Delivery = tuple[int, tuple[str, int], tuple[str, int], bytes]


def drain(network: SimNetwork, sockets: list[SimSocket]) -> list[Delivery]:
    """Receive everything due now from ``sockets``, in order: (time, destination, source, payload)."""
    buffer = bytearray(MAX_DATAGRAM_LENGTH)
    out: list[Delivery] = []
    for sock in sockets:
        while (got := sock.receive(buffer)) is not None:
            length, source = got
            out.append((network.clock.nano_time(), sock.local_address, source, bytes(buffer[:length])))
    return out


def drain_all(network: SimNetwork, sockets: list[SimSocket]) -> list[Delivery]:
    """Deliver everything on the wire, advancing time delivery by delivery."""
    out = drain(network, sockets)
    while (next_ns := network.next_delivery_ns()) is not None:
        network.clock.set(next_ns)
        out += drain(network, sockets)
    return out


def tags(deliveries: list[Delivery]) -> list[int]:
    return [TAG.unpack_from(payload)[0] for _, _, _, payload in deliveries]


def send_tagged(sock: SimSocket, destination: tuple[str, int], count: int, gap_ns: int = 0) -> None:
    network = sock._network
    for tag in range(count):
        assert sock.send(TAG.pack(tag), destination)
        if gap_ns:
            network.advance(gap_ns)


def inversions(sequence: list[int]) -> int:
    return sum(1 for x, y in itertools.pairwise(sequence) if y < x)


def check_accounting(network: SimNetwork) -> None:
    stats = network.stats()  # asserts the invariant itself; check it independently too
    assert stats.sent + stats.duplicated == (
        stats.delivered
        + stats.dropped_loss
        + stats.dropped_partition
        + stats.dropped_overflow
        + stats.undeliverable
        + stats.in_flight
        + stats.queued
    )


# ------------------------------------------------------------------------------------- the interface


def test_sim_network_is_a_network() -> None:
    network: Network = SimNetwork(seed=1)
    sock = network.open(("localhost", 0))
    assert sock.local_address == ("127.0.0.1", EPHEMERAL_PORT_FIRST)
    assert sock.fileno() == -1
    assert network.clock.nano_time() == 0
    assert network.tap is None


def test_resolve_maps_localhost_only() -> None:
    network = SimNetwork(seed=1)
    assert network.resolve(("localhost", 5)) == ("127.0.0.1", 5)
    assert network.resolve(("node1", 5)) == ("node1", 5)
    assert network.resolve(("10.0.0.1", 0)) == ("10.0.0.1", 0)


@pytest.mark.parametrize(
    "address", [("", 1), ("h", -1), ("h", 65536), ("h", "1"), (1, 1), ("h",), "h:1", None]
)
def test_bad_addresses_raise_media_error(address: object) -> None:
    network = SimNetwork(seed=1)
    with pytest.raises(MediaError):
        network.open(address)  # type: ignore[arg-type]
    sock = network.open(A)
    with pytest.raises(MediaError):
        sock.send(b"x", address)  # type: ignore[arg-type]


def test_sending_to_port_zero_raises() -> None:
    network = SimNetwork(seed=1)
    with pytest.raises(MediaError, match="port 0"):
        network.open(A).send(b"x", ("10.0.0.2", 0))


def test_clock_cannot_be_replaced() -> None:
    network = SimNetwork(seed=1, start_ns=5 * MS, epoch_base_ms=1_000)
    assert network.clock.nano_time() == 5 * MS
    assert network.clock.epoch_ms() == 1_005
    with pytest.raises(AttributeError):
        network.clock = network.clock  # type: ignore[misc]


# ------------------------------------------------------------------------------------------ sockets


def test_ephemeral_ports_count_up_per_host() -> None:
    network = SimNetwork(seed=1)
    ports_a = [network.open(("a", 0)).local_address[1] for _ in range(3)]
    port_b = network.open(("b", 0)).local_address[1]
    assert ports_a == [EPHEMERAL_PORT_FIRST, EPHEMERAL_PORT_FIRST + 1, EPHEMERAL_PORT_FIRST + 2]
    assert port_b == EPHEMERAL_PORT_FIRST


def test_ephemeral_ports_skip_bound_ports_and_wrap() -> None:
    network = SimNetwork(seed=1)
    network.open(("a", EPHEMERAL_PORT_FIRST))
    assert network.open(("a", 0)).local_address == ("a", EPHEMERAL_PORT_FIRST + 1)
    network.open(("b", EPHEMERAL_PORT_LAST - 1))
    network._next_ephemeral["b"] = EPHEMERAL_PORT_LAST - 1  # jump near the end instead of binding 28k
    assert network.open(("b", 0)).local_address == ("b", EPHEMERAL_PORT_LAST)
    assert network.open(("b", 0)).local_address == ("b", EPHEMERAL_PORT_FIRST)


def test_double_bind_raises_and_closing_frees_the_address() -> None:
    network = SimNetwork(seed=1)
    sock = network.open(("127.0.0.1", 9000))
    with pytest.raises(MediaError, match="already in use"):
        network.open(("localhost", 9000))
    assert network.open(("127.0.0.2", 9000)).local_address == ("127.0.0.2", 9000)
    sock.close()
    assert network.open(("127.0.0.1", 9000)).local_address == ("127.0.0.1", 9000)


def test_send_reports_its_source_address() -> None:
    network = SimNetwork(seed=1)
    a, b = network.open(A), network.open(B)
    assert a.send(b"hi", B)
    assert drain_all(network, [b]) == [(DEFAULT_DELAY_NS, B, A, b"hi")]


def test_send_copies_the_data() -> None:
    network = SimNetwork(seed=1)
    a, b = network.open(A), network.open(B)
    data = bytearray(b"before")
    a.send(memoryview(data), B)
    data[:] = b"after!"
    assert [payload for *_, payload in drain_all(network, [b])] == [b"before"]


def test_receive_truncates_to_the_buffer() -> None:
    network = SimNetwork(seed=1)
    a, b = network.open(A), network.open(B)
    a.send(bytes(range(100)), B)
    network.advance(DEFAULT_DELAY_NS)
    small = bytearray(10)
    assert b.receive(small) == (10, A)
    assert small == bytes(range(10))
    assert b.receive(small) is None
    a.send(b"abc", B)
    network.advance(DEFAULT_DELAY_NS)
    view = memoryview(bytearray(8))
    assert b.receive(view) == (3, A)
    assert bytes(view[:3]) == b"abc"


def test_oversize_datagram_is_refused() -> None:
    network = SimNetwork(seed=1)
    a = network.open(A)
    network.open(B)
    assert a.send(bytes(65504), B)
    assert not a.send(bytes(65505), B)
    stats = network.stats()
    assert (stats.sent, stats.rejected, stats.in_flight) == (1, 1, 1)


def test_full_network_refuses_sends() -> None:
    network = SimNetwork(seed=1, max_in_flight=3)
    a, b = network.open(A), network.open(B)
    assert all(a.send(b"x", B) for _ in range(3))
    assert not a.send(b"x", B)
    network.advance(DEFAULT_DELAY_NS)
    assert b.receive(bytearray(8)) is not None
    assert a.send(b"x", B)


def test_socket_receive_buffer_overflows() -> None:
    network = SimNetwork(seed=1, so_rcvbuf=250)
    a, b = network.open(A), network.open(B)
    for _ in range(4):
        a.send(bytes(100), B)
    network.advance(DEFAULT_DELAY_NS)
    assert len(drain(network, [b])) == 2
    assert network.stats().dropped_overflow == 2
    check_accounting(network)


def test_closed_socket() -> None:
    network = SimNetwork(seed=1)
    a, b = network.open(A), network.open(B)
    a.send(b"queued", B)
    network.advance(DEFAULT_DELAY_NS)
    a.send(b"in flight", B)
    b.close()
    b.close()  # idempotent
    assert b.closed
    with pytest.raises(MediaError, match="closed"):
        b.receive(bytearray(8))
    with pytest.raises(MediaError, match="closed"):
        b.send(b"x", A)
    assert network.stats().undeliverable == 1  # the queued one
    network.advance(DEFAULT_DELAY_NS)
    assert network.next_delivery_ns() is None
    assert network.stats().undeliverable == 2  # and the one that arrived after the close
    a.send(b"nobody", C)
    network.advance(DEFAULT_DELAY_NS)
    assert network.next_delivery_ns() is None
    assert network.stats().undeliverable == 3
    check_accounting(network)


def test_rebound_address_receives_later_arrivals() -> None:
    network = SimNetwork(seed=1)
    a, b = network.open(A), network.open(B)
    a.send(b"to the old socket, arrives after the new bind", B)
    b.close()
    b2 = network.open(B)
    assert tags(drain_all(network, [b2])) == [TAG.unpack_from(b"to t")[0]]


# ---------------------------------------------------------------------------------- time and links


def test_nothing_arrives_before_the_delay() -> None:
    network = SimNetwork(seed=1, default_link=LinkConfig(delay_ns=300 * US))
    a, b = network.open(A), network.open(B)
    network.advance(7)
    a.send(b"x", B)
    assert network.next_delivery_ns() == 7 + 300 * US
    network.advance(300 * US - 1)
    assert b.receive(bytearray(8)) is None
    network.advance(1)
    assert b.receive(bytearray(8)) == (1, A)


def test_zero_delay_arrives_at_once() -> None:
    network = SimNetwork(seed=1, default_link=LinkConfig(delay_ns=0))
    a, b = network.open(A), network.open(B)
    a.send(b"x", B)
    assert b.receive(bytearray(8)) == (1, A)


def test_link_config_is_per_directed_host_pair() -> None:
    network = SimNetwork(seed=1)
    slow = LinkConfig(delay_ns=5 * MS)
    network.set_link("10.0.0.1", "10.0.0.2", slow)
    assert network.link("10.0.0.1", "10.0.0.2") == slow
    assert network.link("10.0.0.2", "10.0.0.1") == network.default_link
    a, b = network.open(A), network.open(B)
    a.send(b"slow", B)
    b.send(b"fast", A)
    assert network.next_delivery_ns() == DEFAULT_DELAY_NS
    network.set_link("localhost", "node9", slow, both_ways=True)
    assert network.link("127.0.0.1", "node9") == network.link("node9", "localhost") == slow
    network.set_link("10.0.0.1", "10.0.0.2", None)
    assert network.link("10.0.0.1", "10.0.0.2") == network.default_link
    network.default_link = LinkConfig(delay_ns=1)
    assert network.link("10.0.0.1", "10.0.0.2") == LinkConfig(delay_ns=1)
    with pytest.raises(SimNetworkError):
        network.default_link = "fast"  # type: ignore[assignment]


def test_loss_rate_is_roughly_as_configured() -> None:
    network = SimNetwork(seed=7, default_link=LinkConfig(loss=0.2))
    a, b = network.open(A), network.open(B)
    send_tagged(a, B, 10_000)
    received = drain_all(network, [b])
    stats = network.stats()
    assert 1_700 <= stats.dropped_loss <= 2_300
    assert len(received) == stats.delivered == 10_000 - stats.dropped_loss
    assert len(set(tags(received))) == len(received)


def test_total_loss_and_no_loss() -> None:
    network = SimNetwork(seed=7)
    network.set_link("10.0.0.1", "10.0.0.2", LinkConfig(loss=1.0))
    a, b = network.open(A), network.open(B)
    send_tagged(a, B, 100)
    b.send(b"back", A)
    assert drain_all(network, [a, b]) == [(DEFAULT_DELAY_NS, A, B, b"back")]
    assert network.stats().dropped_loss == 100


def test_duplication() -> None:
    network = SimNetwork(seed=3, default_link=LinkConfig(duplicate=1.0))
    a, b = network.open(A), network.open(B)
    send_tagged(a, B, 50)
    assert sorted(tags(drain_all(network, [b]))) == sorted(list(range(50)) * 2)
    assert network.stats().duplicated == 50

    network = SimNetwork(seed=3, default_link=LinkConfig(duplicate=0.25))
    a, b = network.open(A), network.open(B)
    send_tagged(a, B, 4_000)
    counts = Counter(tags(drain_all(network, [b])))
    twice = sum(1 for count in counts.values() if count == 2)
    assert set(counts.values()) == {1, 2}
    assert twice == network.stats().duplicated
    assert 800 <= twice <= 1_200


@pytest.mark.parametrize(
    "link",
    [LinkConfig(jitter_ns=200 * US), LinkConfig(reorder=0.1), LinkConfig(delay_ns=0, reorder=0.05)],
    ids=["jitter", "reorder", "reorder-no-delay"],
)
def test_jitter_and_reorder_reorder(link: LinkConfig) -> None:
    network = SimNetwork(seed=11, default_link=link)
    a, b = network.open(A), network.open(B)
    send_tagged(a, B, 1_000, gap_ns=10 * US)
    received = tags(drain_all(network, [b]))
    assert sorted(received) == list(range(1_000))
    assert inversions(received) > 10


@pytest.mark.parametrize("gap_ns", [0, 1, 10 * US])
def test_no_reordering_without_jitter_or_reorder(gap_ns: int) -> None:
    network = SimNetwork(seed=11, default_link=LinkConfig(loss=0.3, duplicate=0.3, delay_ns=70 * US))
    a, b = network.open(A), network.open(B)
    send_tagged(a, B, 1_000, gap_ns=gap_ns)
    received = tags(drain_all(network, [b]))
    assert received == sorted(received)


def test_reorder_holds_back_at_most_reorder_delay() -> None:
    link = LinkConfig(delay_ns=10 * US, reorder=1.0, reorder_delay_ns=2 * MS)
    network = SimNetwork(seed=5, default_link=link)
    a = network.open(A)
    network.open(B)
    a.send(b"x", B)
    arrival = network.next_delivery_ns()
    assert arrival is not None
    assert 10 * US + 1 <= arrival <= 10 * US + 2 * MS


# ----------------------------------------------------------------------------------------- partitions


def ping_all(network: SimNetwork, sockets: list[SimSocket]) -> set[tuple[str, str]]:
    """Every socket sends to every other; which (source host, destination host) pairs got through."""
    for source, destination in itertools.permutations(sockets, 2):
        source.send(b"ping", destination.local_address)
    return {(src[0], dst[0]) for _, dst, src, _ in drain_all(network, sockets)}


def all_pairs(hosts: str) -> set[tuple[str, str]]:
    return set(itertools.permutations(hosts, 2))


def test_partition_is_symmetric_by_default() -> None:
    network = SimNetwork(seed=1)
    sockets = [network.open((host, 1)) for host in "abc"]
    network.partition(["a"], ["b", "c"])
    assert ping_all(network, sockets) == {("b", "c"), ("c", "b")}
    assert network.is_blocked("a", "b") and network.is_blocked("c", "a")
    assert network.stats().dropped_partition == 4


def test_one_way_partition() -> None:
    network = SimNetwork(seed=1)
    sockets = [network.open((host, 1)) for host in "abc"]
    network.partition("a", "b", one_way=True)
    assert ping_all(network, sockets) == all_pairs("abc") - {("a", "b")}


def test_heal_one_partition_and_heal_all() -> None:
    network = SimNetwork(seed=1)
    sockets = [network.open((host, 1)) for host in "abc"]
    network.partition("a", "b")
    network.partition("a", "c")
    network.heal("b", "a")
    assert ping_all(network, sockets) == all_pairs("abc") - {("a", "c"), ("c", "a")}
    network.heal()
    assert ping_all(network, sockets) == all_pairs("abc")


def test_isolate_and_rejoin() -> None:
    network = SimNetwork(seed=1)
    sockets = [network.open((host, 1)) for host in "abc"]
    network.isolate("a")
    sockets.append(network.open(("d", 1)))  # a host that appears later is cut off too
    assert ping_all(network, sockets) == all_pairs("bcd")
    network.rejoin("a")
    assert ping_all(network, sockets) == all_pairs("abcd")
    network.isolate("b")
    network.heal()
    assert ping_all(network, sockets) == all_pairs("abcd")


def test_partition_never_blocks_traffic_within_a_host() -> None:
    network = SimNetwork(seed=1)
    a1, a2 = network.open(("a", 1)), network.open(("a", 2))
    network.isolate("a")
    a1.send(b"self", a2.local_address)
    assert len(drain_all(network, [a2])) == 1


def test_partition_drops_datagrams_already_on_the_wire() -> None:
    network = SimNetwork(seed=1)
    a, b = network.open(A), network.open(B)
    a.send(b"arrived before the cut", B)
    network.advance(DEFAULT_DELAY_NS)
    a.send(b"on the wire at the cut", B)
    network.partition("10.0.0.1", "10.0.0.2")
    network.advance(DEFAULT_DELAY_NS)
    assert len(drain(network, [b])) == 1
    assert network.stats().dropped_partition == 1
    check_accounting(network)


def test_partition_argument_errors() -> None:
    network = SimNetwork(seed=1)
    with pytest.raises(SimNetworkError, match="both sides"):
        network.partition(["a", "b"], ["b", "c"])
    with pytest.raises(SimNetworkError, match="both sides"):
        network.partition("localhost", "127.0.0.1")
    with pytest.raises(SimNetworkError, match="both groups"):
        network.heal("a")
    with pytest.raises(SimNetworkError, match="not a host"):
        network.partition(5, "a")  # type: ignore[arg-type]
    with pytest.raises(SimNetworkError, match="non-empty"):
        network.isolate("")


# ------------------------------------------------------------------------------------------ the tap


def test_tap_sees_every_accepted_send_before_loss() -> None:
    network = SimNetwork(seed=2, default_link=LinkConfig(loss=0.5, duplicate=0.5))
    seen: list[tuple[tuple[str, int], tuple[str, int], bytes]] = []
    network.tap = lambda source, destination, data: seen.append((source, destination, data))
    a, _ = network.open(A), network.open(B)
    network.partition("10.0.0.1", "10.0.0.3")
    send_tagged(a, B, 100)
    send_tagged(a, C, 10)
    a.send(bytes(70_000), B)  # refused: never on the wire
    a.send(b"local", ("localhost", 7))
    assert len(seen) == 111
    assert seen[0] == (A, B, TAG.pack(0))
    assert seen[-1] == (A, ("127.0.0.1", 7), b"local")
    assert network.stats().sent == 111


# -------------------------------------------------------------------------------------- determinism


@dataclass(frozen=True)
class Step:
    source: int
    destination: int
    size: int
    gap_ns: int


HOSTS = ["10.0.0.1", "10.0.0.2", "node3"]


def run_scenario(seed: int, link: LinkConfig, steps: list[Step]) -> tuple[list[Delivery], object]:
    """Send ``steps`` among three hosts, receiving as time goes, then drain; the whole observable run."""
    network = SimNetwork(seed=seed, default_link=link)
    sockets = [network.open((host, 0)) for host in HOSTS]
    trace: list[Delivery] = []
    for index, step in enumerate(steps):
        payload = TAG.pack(index) + bytes(step.size)
        sockets[step.source].send(payload, sockets[step.destination].local_address)
        network.advance(step.gap_ns)
        trace += drain(network, sockets)
    trace += drain_all(network, sockets)
    return trace, network.stats()


link_configs = st.builds(
    LinkConfig,
    loss=st.floats(0, 1),
    duplicate=st.floats(0, 1),
    delay_ns=st.integers(0, 2 * MS),
    jitter_ns=st.integers(0, 2 * MS),
    reorder=st.floats(0, 1),
    reorder_delay_ns=st.integers(1, 5 * MS),
)
steps_lists = st.lists(
    st.builds(
        Step,
        source=st.integers(0, 2),
        destination=st.integers(0, 2),
        size=st.integers(0, 64),
        gap_ns=st.integers(0, 500 * US),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**64), link=link_configs, steps=steps_lists)
def test_same_seed_same_run(seed: int, link: LinkConfig, steps: list[Step]) -> None:
    assert run_scenario(seed, link, steps) == run_scenario(seed, link, steps)


def test_different_seeds_different_runs() -> None:
    link = LinkConfig(loss=0.1, duplicate=0.05, jitter_ns=100 * US, reorder=0.05)
    steps = [Step(i % 3, (i + 1) % 3, 8, 5 * US) for i in range(200)]
    traces = {repr(run_scenario(seed, link, steps)) for seed in range(5)}
    assert len(traces) == 5


def test_same_seed_identical_trace_with_partitions_and_closes() -> None:
    def run(seed: int) -> list[object]:
        network = SimNetwork(seed=seed, default_link=LinkConfig(loss=0.1, jitter_ns=50 * US, reorder=0.1))
        sockets = [network.open((host, 0)) for host in HOSTS]
        events: list[object] = []
        network.tap = lambda s, d, p: events.append(("tap", network.clock.nano_time(), s, d, p))
        for i in range(300):
            sockets[i % 3].send(TAG.pack(i), sockets[(i * 7 + 1) % 3].local_address)
            if i == 100:
                network.partition("node3", ["10.0.0.1"], one_way=True)
            if i == 200:
                network.heal()
                sockets[1].close()
                sockets[1] = network.open((HOSTS[1], 0))
            network.advance(3 * US)
            events += drain(network, sockets)
        events += drain_all(network, sockets)
        events.append(network.stats())
        return events

    assert run(42) == run(42)
    assert run(42) != run(43)


# ------------------------------------------------------------------------------------------ invariants


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    link=link_configs,
    steps=steps_lists,
    actions=st.lists(st.sampled_from(["partition", "heal", "isolate", "close", "none"]), max_size=60),
)
def test_counters_add_up_and_only_duplicates_arrive_twice(
    seed: int, link: LinkConfig, steps: list[Step], actions: list[str]
) -> None:
    network = SimNetwork(seed=seed, default_link=link)
    sockets = [network.open((host, 0)) for host in HOSTS]
    sent: dict[int, tuple[int, tuple[str, int], tuple[str, int]]] = {}
    received: Counter[int] = Counter()

    def collect() -> None:
        for now_ns, destination, source, payload in drain(network, sockets):
            tag = TAG.unpack_from(payload)[0]
            sent_ns, expected_source, expected_destination = sent[tag]
            assert (source, destination) == (expected_source, expected_destination)
            assert now_ns >= sent_ns + link.delay_ns
            received[tag] += 1

    for index, (step, action) in enumerate(itertools.zip_longest(steps, actions)):
        if step is not None:
            source, destination = sockets[step.source], sockets[step.destination]
            sent[index] = (network.clock.nano_time(), source.local_address, destination.local_address)
            assert source.send(TAG.pack(index) + bytes(step.size), destination.local_address)
            network.advance(step.gap_ns)
        if action == "partition":
            network.partition(HOSTS[index % 3], HOSTS[(index + 1) % 3], one_way=index % 2 == 0)
        elif action == "heal":
            network.heal()
        elif action == "isolate":
            network.isolate(HOSTS[index % 3])
        elif action == "close":
            which = index % 3
            sockets[which].close()
            sockets[which] = network.open(sockets[which].local_address)
        collect()
        check_accounting(network)
    while (next_ns := network.next_delivery_ns()) is not None:
        network.clock.set(next_ns)
        collect()
        check_accounting(network)

    stats = network.stats()
    assert stats.in_flight == stats.queued == 0
    assert stats.sent == len(sent)
    assert sum(received.values()) == stats.delivered
    assert sum(count - 1 for count in received.values()) <= stats.duplicated
    assert max(received.values(), default=0) <= 2


# ------------------------------------------------------------------------------------------ the driver


class Echo:
    """An agent that bounces every datagram back to its sender."""

    def __init__(self, sock: SimSocket) -> None:
        self.sock = sock
        self.buffer = bytearray(MAX_DATAGRAM_LENGTH)
        self.received: list[tuple[int, bytes]] = []

    def do_work(self) -> int:
        work = 0
        while (got := self.sock.receive(self.buffer)) is not None:
            length, source = got
            self.received.append((self.sock._network.clock.nano_time(), bytes(self.buffer[:length])))
            self.sock.send(self.buffer[:length], source)
            work += 1
        return work


def test_run_until_ping_pong_moves_time_to_each_delivery() -> None:
    network = SimNetwork(seed=1, default_link=LinkConfig(delay_ns=300 * US))
    a, b = Echo(network.open(A)), Echo(network.open(B))
    a.sock.send(b"ball", B)
    assert network.run_until(
        lambda: len(a.received) >= 3, agents=[a.do_work, b.do_work], timeout_ns=1_000 * MS
    )
    assert [t for t, _ in b.received] == [300 * US, 900 * US, 1_500 * US]
    assert [t for t, _ in a.received] == [600 * US, 1_200 * US, 1_800 * US]
    assert network.clock.nano_time() == 1_800 * US


def test_run_until_never_jumps_further_than_step() -> None:
    network = SimNetwork(seed=1)
    seen: list[int] = []

    def timer() -> int:
        seen.append(network.clock.nano_time())
        return 0

    assert not network.run_until(lambda: False, agents=[timer], timeout_ns=10 * MS, step_ns=2 * MS)
    assert seen == [0, 2 * MS, 4 * MS, 6 * MS, 8 * MS, 10 * MS]
    assert network.clock.nano_time() == 10 * MS


def test_run_until_times_out_and_terminates() -> None:
    network = SimNetwork(seed=1)
    assert not network.run_until(lambda: False, agents=[], timeout_ns=5_000 * MS)
    assert network.clock.nano_time() == 5_000 * MS
    assert network.run_until(lambda: True, agents=[], timeout_ns=0)
    assert not network.run_until(lambda: False, agents=[], timeout_ns=0)


def test_run_until_checks_the_condition_at_the_deadline() -> None:
    network = SimNetwork(seed=1)
    assert network.run_until(lambda: network.clock.nano_time() >= 3 * MS, agents=[], timeout_ns=3 * MS)


def test_run_until_busy_agents_still_see_time_move() -> None:
    network = SimNetwork(seed=1)
    rounds = 0

    def busy() -> int:
        nonlocal rounds
        rounds += 1
        return 1

    deadline = 50 * US
    assert not network.run_until(lambda: False, agents=[busy], timeout_ns=deadline)
    assert network.clock.nano_time() == deadline
    assert rounds == 50 * 100 + 1  # one 1 µs tick per 100 busy rounds, then a last round at the deadline


def test_run_until_gives_up_on_a_livelock() -> None:
    network = SimNetwork(seed=1)
    with pytest.raises(SimNetworkError, match="livelock"):
        network.run_until(lambda: False, agents=[lambda: 1], timeout_ns=10_000 * MS, max_busy_rounds=1_000)


def test_run_until_rejects_a_bad_agent_and_bad_arguments() -> None:
    network = SimNetwork(seed=1)

    def forgot_to_return() -> None:
        pass

    with pytest.raises(SimNetworkError, match="work count"):
        network.run_until(lambda: False, agents=[forgot_to_return], timeout_ns=MS)  # type: ignore[list-item]
    for kwargs in ({"timeout_ns": -1}, {"timeout_ns": MS, "step_ns": 0}, {"timeout_ns": 0.5}):
        with pytest.raises(SimNetworkError):
            network.run_until(lambda: False, agents=[], **kwargs)


def test_run_for_and_advance() -> None:
    network = SimNetwork(seed=1)
    network.run_for(3 * MS, agents=[lambda: 0])
    assert network.advance(5) == 3 * MS + 5
    with pytest.raises(SimNetworkError):
        network.advance(-1)


# ------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"loss": -0.1},
        {"loss": 1.5},
        {"loss": float("nan")},
        {"duplicate": 2},
        {"reorder": -1},
        {"reorder": True},
        {"delay_ns": -1},
        {"delay_ns": 1.5},
        {"jitter_ns": -5},
        {"reorder_delay_ns": 0},
        {"delay_ns": 10**18},
    ],
)
def test_link_config_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(SimNetworkError) as excinfo:
        LinkConfig(**kwargs)  # type: ignore[arg-type]
    assert isinstance(excinfo.value, TransportError | ValueError)
    assert next(iter(kwargs)) in str(excinfo.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: SimNetwork(seed="1"),  # type: ignore[arg-type]
        lambda: SimNetwork(seed=1, so_rcvbuf=0),
        lambda: SimNetwork(seed=1, max_in_flight=0),
        lambda: SimNetwork(seed=1, default_link={"loss": 0.1}),  # type: ignore[arg-type]
    ],
)
def test_network_validation(make: Callable[[], SimNetwork]) -> None:
    with pytest.raises(SimNetworkError):
        make()
