"""A simulated datagram network: in-memory datagrams, virtual time and one seed that decides everything.

Theory of operation
-------------------
``SimNetwork`` implements the ``Network`` protocol of ``cluster.transport.media``, so publications,
subscriptions and whole cluster nodes run over it unchanged. It owns a ``ManualClock`` (``clock``) and one
``random.Random(seed)`` (``random``); nothing else in it is a source of variation. Same seed and same
sequence of calls give the same run: the same datagrams lost, duplicated and delayed, delivered in the
same order at the same virtual times. No set or dict is ever iterated where its order could matter.

A host is any string ("10.0.0.1", "node1"); ``resolve`` maps "localhost" to "127.0.0.1" and leaves the
rest alone. ``open((host, port))`` binds a ``SimSocket``; port 0 takes the next free ephemeral port of
that host, counting up from 32768 (wrapping at 60999), and binding a bound address raises ``MediaError``.

``send`` copies the datagram and shows it to the ``tap`` (every accepted send, before any loss). A
datagram longer than ``MAX_UDP_PAYLOAD_LENGTH`` (65504) is refused (``False``), and so is one that finds
``max_in_flight`` datagrams already on the wire, as a full socket buffer would; everything else returns
``True`` whatever then happens to it, exactly like UDP. The link from the source host to the
destination host (``set_link`` per directed pair of hosts, else ``default_link``) decides its fate,
drawing from the one ``random`` in a fixed order::

    partitioned?           -> dropped_partition (no random draw)
    duplicate?             -> a second copy (duplicated += 1); then for each copy:
        loss?              -> dropped_loss
        delay = delay_ns + uniform[0, jitter_ns] + (reorder? uniform[1, reorder_delay_ns] : 0)
        push (now + delay, sequence number) onto the in-flight heap

The heap's key ``(delivery_ns, sequence)`` is unique, so ties go in send order. Jitter and reordering are
the only sources of overtaking; with neither, datagrams between two hosts keep their order (as long as
the link's ``delay_ns`` is not lowered mid-run).

Delivery is lazy: a datagram whose time has come moves from the heap to its destination socket's queue
(bounded by ``so_rcvbuf`` bytes; overflow is ``dropped_overflow``) the next time anything looks -- a
``receive``, ``next_delivery_ns``, or any change that affects delivery (``open``, ``close``,
``partition``, ``heal``, ``isolate``, ``rejoin``), which first delivers everything already due under the
old state. The result is the same as if every datagram had arrived at exactly its delivery time, however
the clock was moved. A datagram that arrives while a partition blocks its hosts is ``dropped_partition``
(a partition cuts what is already on the wire too); one whose address has no socket bound, or that sits
unread in a socket when it closes, is ``undeliverable``. ``receive`` hands out queued datagrams in
arrival order and counts them ``delivered``. So at every moment::

    sent + duplicated == delivered + dropped_loss + dropped_partition + dropped_overflow
                         + undeliverable + in_flight + queued

which ``stats()`` asserts.

Partitions block traffic between *hosts*, never within one: ``partition(a, b)`` blocks every directed
pair ``a x b`` (and ``b x a`` unless ``one_way``); ``heal(a, b)`` unblocks the same pairs and ``heal()``
everything, isolation included. ``isolate(host)`` cuts a host off from every other host, including ones
that appear later, until ``rejoin(host)`` or ``heal()``.

Driving a simulation
--------------------
``run_until(condition, agents=..., timeout_ns=...)`` is the loop tests and simulators use. Each round
calls every agent's ``do_work`` once, in order; then

* if the round did no work, time jumps to the earliest of: the next delivery, ``now + step_ns`` (agents
  have timers of their own, so time never jumps further than that) and the deadline;
* if agents keep doing work while time stands still, time moves by ``BUSY_TICK_NS`` (1 µs) every
  ``BUSY_ROUNDS_PER_TICK`` (100) such rounds, so timers still fire and a livelock still reaches its
  deadline; and ``max_busy_rounds`` consecutive busy rounds with no idle one raise ``SimNetworkError``
  instead of spinning for ever.

``condition`` is checked before every round and once more at the deadline; the result is ``True`` as soon
as it holds and ``False`` once ``timeout_ns`` of virtual time has passed. The clock never passes the
deadline on the loop's account.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cluster.transport.clock import ManualClock
from cluster.transport.errors import TransportError
from cluster.transport.media import Address, MediaError, Tap, format_address
from cluster.transport.uri import MAX_UDP_PAYLOAD_LENGTH

__all__ = [
    "BUSY_ROUNDS_PER_TICK",
    "BUSY_TICK_NS",
    "DEFAULT_DELAY_NS",
    "DEFAULT_MAX_BUSY_ROUNDS",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_REORDER_DELAY_NS",
    "DEFAULT_SO_RCVBUF",
    "DEFAULT_STEP_NS",
    "EPHEMERAL_PORT_FIRST",
    "EPHEMERAL_PORT_LAST",
    "MAX_LINK_NS",
    "LinkConfig",
    "SimNetwork",
    "SimNetworkError",
    "SimNetworkStats",
    "SimSocket",
]

DEFAULT_DELAY_NS = 50_000
"""Default one-way latency of every link: 50 µs."""
DEFAULT_REORDER_DELAY_NS = 1_000_000
"""Default upper bound of the extra delay that holds a reordered datagram back: 1 ms."""
MAX_LINK_NS = 3_600 * 1_000_000_000
"""The longest delay, jitter or reorder delay a link may have (one hour): catches unit mistakes."""
DEFAULT_SO_RCVBUF = 2 * 1024 * 1024
"""Bytes a socket may hold unread before arriving datagrams overflow (as ``UdpNetwork``'s default)."""
DEFAULT_MAX_IN_FLIGHT = 1_000_000
"""Datagrams the network carries at once; a send beyond that is refused like a full socket buffer."""
EPHEMERAL_PORT_FIRST = 32_768
EPHEMERAL_PORT_LAST = 60_999
"""Linux's default ``ip_local_port_range``."""
MAX_PORT = 65_535

DEFAULT_STEP_NS = 1_000_000
"""``run_until``: the furthest an idle round moves time."""
BUSY_ROUNDS_PER_TICK = 100
"""``run_until``: busy rounds without the clock moving after which time moves by ``BUSY_TICK_NS``."""
BUSY_TICK_NS = 1_000
DEFAULT_MAX_BUSY_ROUNDS = 1_000_000
"""``run_until``: consecutive busy rounds (no idle one) after which it gives up with an error."""

_LOCALHOST = "localhost"
_LOOPBACK = "127.0.0.1"


class SimNetworkError(TransportError, ValueError):
    """The simulated network was configured or driven wrongly; the message names the bad value."""


def _check_probability(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise SimNetworkError(f"LinkConfig.{name}={value!r} is not a probability in [0, 1]")


def _check_ns(name: str, value: int, minimum: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise SimNetworkError(f"{name}={value!r} is not an integer in [{minimum}, {maximum}] ns")


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """How a directed link between two hosts treats each datagram.

    ``loss``, ``duplicate`` and ``reorder`` are probabilities per datagram. A datagram takes ``delay_ns``
    plus a uniform extra in ``[0, jitter_ns]``; a reordered one is held back a further uniform
    ``[1, reorder_delay_ns]`` so later datagrams overtake it.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    delay_ns: int = DEFAULT_DELAY_NS
    jitter_ns: int = 0
    reorder: float = 0.0
    reorder_delay_ns: int = DEFAULT_REORDER_DELAY_NS

    def __post_init__(self) -> None:
        _check_probability("loss", self.loss)
        _check_probability("duplicate", self.duplicate)
        _check_probability("reorder", self.reorder)
        _check_ns("LinkConfig.delay_ns", self.delay_ns, 0, MAX_LINK_NS)
        _check_ns("LinkConfig.jitter_ns", self.jitter_ns, 0, MAX_LINK_NS)
        _check_ns("LinkConfig.reorder_delay_ns", self.reorder_delay_ns, 1, MAX_LINK_NS)


@dataclass(frozen=True, slots=True)
class SimNetworkStats:
    """A snapshot of the network's counters (see the invariant in the module docstring)."""

    sent: int
    """Datagrams accepted by ``send`` (refused ones are ``rejected``)."""
    duplicated: int
    """Extra copies made by duplication."""
    delivered: int
    """Datagrams handed to a socket's ``receive``."""
    dropped_loss: int
    dropped_partition: int
    dropped_overflow: int
    """Arrived at a socket already holding ``so_rcvbuf`` bytes unread."""
    undeliverable: int
    """Arrived where no socket was bound, or were unread when their socket closed."""
    rejected: int
    """Sends refused: too long, or the network full."""
    in_flight: int
    """Copies still on the wire."""
    queued: int
    """Copies arrived and waiting in a socket."""

    @property
    def accounted(self) -> int:
        """Where every copy went: equals ``sent + duplicated``."""
        return (
            self.delivered
            + self.dropped_loss
            + self.dropped_partition
            + self.dropped_overflow
            + self.undeliverable
            + self.in_flight
            + self.queued
        )


# An in-flight datagram: (delivery_ns, sequence, destination, source, payload).
_InFlight = tuple[int, int, Address, Address, bytes]


class SimSocket:
    """A socket of a ``SimNetwork``: bound to one address until closed; ``receive`` never blocks."""

    __slots__ = ("_closed", "_local", "_network", "_queue", "_queued_bytes")

    def __init__(self, network: SimNetwork, local: Address) -> None:
        self._network = network
        self._local = local
        self._queue: deque[tuple[bytes, Address]] = deque()
        self._queued_bytes = 0
        self._closed = False

    @property
    def local_address(self) -> Address:
        return self._local

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, data: bytes | bytearray | memoryview, address: Address) -> bool:
        if self._closed:
            raise MediaError(f"send on closed simulated socket {format_address(self._local)}")
        return self._network._send(self._local, data, address)

    def receive(self, buffer: bytearray | memoryview) -> tuple[int, Address] | None:
        if self._closed:
            raise MediaError(f"receive on closed simulated socket {format_address(self._local)}")
        network = self._network
        heap = network._heap
        if heap and heap[0][0] <= network._clock.nano_time():
            network._deliver_due()
        queue = self._queue
        if not queue:
            return None
        data, source = queue.popleft()
        length = len(data)
        self._queued_bytes -= length
        network._delivered += 1
        if length > len(buffer):
            length = len(buffer)
            buffer[:length] = memoryview(data)[:length]
        else:
            buffer[:length] = data
        return length, source

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        """Unbind; datagrams unread or still on their way here become ``undeliverable``. Idempotent."""
        if not self._closed:
            self._network._close(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._queue)} queued"
        return f"SimSocket({format_address(self._local)}, {state})"


class SimNetwork:
    """A deterministic in-memory datagram network under a virtual clock; see the module docstring."""

    def __init__(
        self,
        seed: int,
        *,
        default_link: LinkConfig | None = None,
        start_ns: int = 0,
        epoch_base_ms: int = 0,
        so_rcvbuf: int = DEFAULT_SO_RCVBUF,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise SimNetworkError(f"SimNetwork seed={seed!r} is not an integer")
        if isinstance(so_rcvbuf, bool) or not isinstance(so_rcvbuf, int) or so_rcvbuf < 1:
            raise SimNetworkError(f"SimNetwork so_rcvbuf={so_rcvbuf!r} is not a positive integer")
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise SimNetworkError(f"SimNetwork max_in_flight={max_in_flight!r} is not a positive integer")
        self.seed = seed
        self._clock = ManualClock(start_ns, epoch_base_ms=epoch_base_ms)
        self.tap: Tap | None = None
        self.random = random.Random(seed)
        """The run's only source of randomness; other simulated parts may draw from it too."""
        self.so_rcvbuf = so_rcvbuf
        self.max_in_flight = max_in_flight
        self._default_link = LinkConfig() if default_link is None else _link_config(default_link)
        self._links: dict[tuple[str, str], LinkConfig] = {}
        self._blocked: set[tuple[str, str]] = set()
        self._isolated: set[str] = set()
        self._partitioned = False  # fast path: no partition and no isolation
        self._sockets: dict[Address, SimSocket] = {}
        self._next_ephemeral: dict[str, int] = {}
        self._heap: list[_InFlight] = []
        self._sequence = 0
        self._sent = 0
        self._duplicated = 0
        self._delivered = 0
        self._dropped_loss = 0
        self._dropped_partition = 0
        self._dropped_overflow = 0
        self._undeliverable = 0
        self._rejected = 0

    @property
    def clock(self) -> ManualClock:
        """The virtual clock; only the network's owner moves it (``advance``, ``run_until``, or
        ``clock.advance``/``clock.set`` directly)."""
        return self._clock

    # ------------------------------------------------------------------------------------ addresses

    def resolve(self, address: Address) -> Address:
        """``address`` with "localhost" turned into "127.0.0.1"; any other host is its own name."""
        try:
            host, port = address
        except (TypeError, ValueError):
            raise MediaError(f"simulated address {address!r} is not a (host, port) pair") from None
        if not isinstance(host, str) or not host:
            raise MediaError(f"simulated address {address!r}: host is not a non-empty string")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= MAX_PORT:
            raise MediaError(f"simulated address {address!r}: port is not an integer in [0, {MAX_PORT}]")
        return (_LOOPBACK, port) if host == _LOCALHOST else (host, port)

    def open(self, address: Address) -> SimSocket:
        """Bind a socket to ``address``; port 0 takes the host's next free ephemeral port."""
        host, port = self.resolve(address)
        self._deliver_due()
        if port == 0:
            port = self._ephemeral_port(host)
        local = (host, port)
        if local in self._sockets:
            raise MediaError(f"cannot bind simulated {format_address(local)}: address already in use")
        sock = SimSocket(self, local)
        self._sockets[local] = sock
        return sock

    def _ephemeral_port(self, host: str) -> int:
        port = self._next_ephemeral.get(host, EPHEMERAL_PORT_FIRST)
        for _ in range(EPHEMERAL_PORT_LAST - EPHEMERAL_PORT_FIRST + 1):
            candidate = port
            port = EPHEMERAL_PORT_FIRST if port == EPHEMERAL_PORT_LAST else port + 1
            if (host, candidate) not in self._sockets:
                self._next_ephemeral[host] = port
                return candidate
        raise MediaError(f"cannot bind simulated {host}:0: every ephemeral port is in use")

    def bound_addresses(self) -> list[Address]:
        """Every bound address, in the order they were bound."""
        return list(self._sockets)

    # ---------------------------------------------------------------------------------------- links

    @property
    def default_link(self) -> LinkConfig:
        """The link of every pair of hosts without one of its own."""
        return self._default_link

    @default_link.setter
    def default_link(self, config: LinkConfig) -> None:
        self._default_link = _link_config(config)

    def set_link(
        self, source_host: str, destination_host: str, config: LinkConfig | None, *, both_ways: bool = False
    ) -> None:
        """Give the directed link source -> destination (and back, if ``both_ways``) its own config;
        ``None`` returns it to ``default_link``. Applies to datagrams sent from now on."""
        source = self._host(source_host)
        destination = self._host(destination_host)
        pairs = [(source, destination), (destination, source)] if both_ways else [(source, destination)]
        for pair in pairs:
            if config is None:
                self._links.pop(pair, None)
            else:
                self._links[pair] = _link_config(config)

    def link(self, source_host: str, destination_host: str) -> LinkConfig:
        """The config that datagrams from ``source_host`` to ``destination_host`` get."""
        return self._links.get((self._host(source_host), self._host(destination_host)), self._default_link)

    # ----------------------------------------------------------------------------------- partitions

    def partition(
        self, group_a: str | Iterable[str], group_b: str | Iterable[str], *, one_way: bool = False
    ) -> None:
        """Block traffic from every host of ``group_a`` to every host of ``group_b`` (and back unless
        ``one_way``), datagrams already on the wire included. A group may be one host name."""
        a = self._group("group_a", group_a)
        b = self._group("group_b", group_b)
        overlap = sorted(set(a) & set(b))
        if overlap:
            raise SimNetworkError(f"partition: hosts {overlap} are on both sides")
        self._deliver_due()
        for pair in _pairs(a, b, one_way):
            self._blocked.add(pair)
        self._update_partitioned()

    def heal(
        self,
        group_a: str | Iterable[str] | None = None,
        group_b: str | Iterable[str] | None = None,
        *,
        one_way: bool = False,
    ) -> None:
        """With no groups, remove every partition and isolation; otherwise unblock the pairs that
        ``partition(group_a, group_b, one_way=one_way)`` blocks (isolation stays)."""
        if (group_a is None) != (group_b is None):
            raise SimNetworkError("heal: give both groups or neither")
        self._deliver_due()
        if group_a is None or group_b is None:
            self._blocked.clear()
            self._isolated.clear()
        else:
            a = self._group("group_a", group_a)
            b = self._group("group_b", group_b)
            for pair in _pairs(a, b, one_way):
                self._blocked.discard(pair)
        self._update_partitioned()

    def isolate(self, host: str) -> None:
        """Cut ``host`` off from every other host (present or future) until ``rejoin`` or ``heal()``."""
        resolved = self._host(host)
        self._deliver_due()
        self._isolated.add(resolved)
        self._update_partitioned()

    def rejoin(self, host: str) -> None:
        """Undo ``isolate(host)``; partitions made with ``partition`` stay."""
        resolved = self._host(host)
        self._deliver_due()
        self._isolated.discard(resolved)
        self._update_partitioned()

    def is_blocked(self, source_host: str, destination_host: str) -> bool:
        """Whether a partition or isolation now stops datagrams from source to destination host."""
        return self._is_blocked(self._host(source_host), self._host(destination_host))

    def _is_blocked(self, source: str, destination: str) -> bool:
        if source == destination:
            return False
        if source in self._isolated or destination in self._isolated:
            return True
        return (source, destination) in self._blocked

    def _update_partitioned(self) -> None:
        self._partitioned = bool(self._blocked) or bool(self._isolated)

    def _host(self, host: str) -> str:
        if not isinstance(host, str) or not host:
            raise SimNetworkError(f"host {host!r} is not a non-empty string")
        return _LOOPBACK if host == _LOCALHOST else host

    def _group(self, name: str, group: str | Iterable[str]) -> list[str]:
        if isinstance(group, str):
            group = [group]
        hosts: list[str] = []
        try:
            for host in group:
                resolved = self._host(host)
                if resolved not in hosts:
                    hosts.append(resolved)
        except TypeError:
            raise SimNetworkError(f"{name}={group!r} is not a host or an iterable of hosts") from None
        return hosts

    # ---------------------------------------------------------------------------------- the wire

    def _send(self, source: Address, data: bytes | bytearray | memoryview, address: Address) -> bool:
        destination = self.resolve(address)
        if destination[1] == 0:
            raise MediaError(
                f"send from {format_address(source)} to {address!r}: port 0 is not a destination"
            )
        payload = bytes(data)
        if len(payload) > MAX_UDP_PAYLOAD_LENGTH or len(self._heap) >= self.max_in_flight:
            self._rejected += 1
            return False
        tap = self.tap
        if tap is not None:
            tap(source, destination, payload)
        self._sent += 1
        source_host = source[0]
        destination_host = destination[0]
        if self._partitioned and self._is_blocked(source_host, destination_host):
            self._dropped_partition += 1
            return True
        link = self._links.get((source_host, destination_host), self._default_link)
        rng = self.random
        copies = 1
        if link.duplicate and rng.random() < link.duplicate:
            copies = 2
            self._duplicated += 1
        now_ns = self._clock.nano_time()
        for _ in range(copies):
            if link.loss and rng.random() < link.loss:
                self._dropped_loss += 1
                continue
            delay_ns = link.delay_ns
            if link.jitter_ns:
                delay_ns += rng.randint(0, link.jitter_ns)
            if link.reorder and rng.random() < link.reorder:
                delay_ns += rng.randint(1, link.reorder_delay_ns)
            self._sequence += 1
            heapq.heappush(self._heap, (now_ns + delay_ns, self._sequence, destination, source, payload))
        return True

    def _deliver_due(self) -> None:
        """Move every datagram whose delivery time has come into its socket's queue."""
        heap = self._heap
        now_ns = self._clock.nano_time()
        sockets = self._sockets
        limit = self.so_rcvbuf
        while heap and heap[0][0] <= now_ns:
            _, _, destination, source, payload = heapq.heappop(heap)
            if self._partitioned and self._is_blocked(source[0], destination[0]):
                self._dropped_partition += 1
                continue
            sock = sockets.get(destination)
            if sock is None:
                self._undeliverable += 1
                continue
            if sock._queued_bytes + len(payload) > limit:
                self._dropped_overflow += 1
                continue
            sock._queue.append((payload, source))
            sock._queued_bytes += len(payload)

    def _close(self, sock: SimSocket) -> None:
        self._deliver_due()
        assert self._sockets.get(sock._local) is sock, f"closing {sock!r}, which is not bound"
        del self._sockets[sock._local]
        self._undeliverable += len(sock._queue)
        sock._queue.clear()
        sock._queued_bytes = 0
        sock._closed = True

    # ------------------------------------------------------------------------------------ counters

    def stats(self) -> SimNetworkStats:
        """A snapshot of the counters; asserts that every copy is accounted for."""
        stats = SimNetworkStats(
            sent=self._sent,
            duplicated=self._duplicated,
            delivered=self._delivered,
            dropped_loss=self._dropped_loss,
            dropped_partition=self._dropped_partition,
            dropped_overflow=self._dropped_overflow,
            undeliverable=self._undeliverable,
            rejected=self._rejected,
            in_flight=len(self._heap),
            queued=sum(len(sock._queue) for sock in self._sockets.values()),
        )
        assert stats.accounted == stats.sent + stats.duplicated, f"datagrams unaccounted for: {stats}"
        return stats

    # ---------------------------------------------------------------------------------------- time

    def next_delivery_ns(self) -> int | None:
        """When the next datagram on the wire arrives (always later than now), or ``None`` if none is.

        Datagrams already due are first moved into their sockets."""
        self._deliver_due()
        return self._heap[0][0] if self._heap else None

    def advance(self, ns: int) -> int:
        """Move virtual time forward by ``ns`` and return the new time."""
        _check_ns("advance ns", ns, 0, MAX_LINK_NS * 24)
        return self._clock.advance(ns)

    def run_until(
        self,
        condition: Callable[[], bool],
        *,
        agents: Sequence[Callable[[], int]],
        timeout_ns: int,
        step_ns: int = DEFAULT_STEP_NS,
        max_busy_rounds: int = DEFAULT_MAX_BUSY_ROUNDS,
    ) -> bool:
        """Run ``agents`` (``do_work`` functions) round by round, moving time as the module docstring
        describes, until ``condition()`` holds (``True``) or ``timeout_ns`` of virtual time has passed
        (``False``)."""
        _check_ns("run_until timeout_ns", timeout_ns, 0, MAX_LINK_NS * 24 * 365)
        _check_ns("run_until step_ns", step_ns, 1, MAX_LINK_NS)
        if isinstance(max_busy_rounds, bool) or not isinstance(max_busy_rounds, int) or max_busy_rounds < 1:
            raise SimNetworkError(f"run_until max_busy_rounds={max_busy_rounds!r} is not a positive integer")
        clock = self._clock
        deadline_ns = clock.nano_time() + timeout_ns
        busy_rounds = 0  # consecutive rounds that did work
        still_rounds = 0  # consecutive busy rounds in which the clock did not move
        while True:
            if condition():
                return True
            start_ns = clock.nano_time()
            work_count = 0
            for agent in agents:
                work = agent()
                if isinstance(work, bool) or not isinstance(work, int):
                    raise SimNetworkError(f"run_until: agent {agent!r} returned {work!r}, not a work count")
                work_count += work
            now_ns = clock.nano_time()
            if now_ns >= deadline_ns:
                return bool(condition())
            if work_count > 0:
                busy_rounds += 1
                if busy_rounds >= max_busy_rounds:
                    raise SimNetworkError(
                        f"run_until: agents did work in {busy_rounds} rounds in a row without ever going "
                        f"idle (livelock?) at {now_ns} ns, seed {self.seed}"
                    )
                still_rounds = still_rounds + 1 if now_ns == start_ns else 0
                if still_rounds >= BUSY_ROUNDS_PER_TICK:
                    still_rounds = 0
                    clock.set(min(now_ns + BUSY_TICK_NS, deadline_ns))
            else:
                busy_rounds = 0
                still_rounds = 0
                target_ns = min(now_ns + step_ns, deadline_ns)
                next_ns = self.next_delivery_ns()
                if next_ns is not None and next_ns < target_ns:
                    target_ns = next_ns
                clock.set(target_ns)

    def run_for(
        self, duration_ns: int, *, agents: Sequence[Callable[[], int]], step_ns: int = DEFAULT_STEP_NS
    ) -> None:
        """Run ``agents`` for ``duration_ns`` of virtual time (``run_until`` a condition that never holds)."""
        self.run_until(_never, agents=agents, timeout_ns=duration_ns, step_ns=step_ns)


def _never() -> bool:
    return False


def _link_config(config: LinkConfig) -> LinkConfig:
    if not isinstance(config, LinkConfig):
        raise SimNetworkError(f"{config!r} is not a LinkConfig")
    return config


def _pairs(group_a: list[str], group_b: list[str], one_way: bool) -> list[tuple[str, str]]:
    pairs = [(a, b) for a in group_a for b in group_b]
    if not one_way:
        pairs += [(b, a) for a in group_a for b in group_b]
    return pairs
