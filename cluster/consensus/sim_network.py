"""The simulator's networks for consensus messages: whole messages, or Aeron's transport on ``SimNetwork``.

Theory of operation
-------------------
The simulator (``simulator.py``) hands every consensus message a core sends to a ``ConsensusNetwork``
and asks it, once per step, which messages have arrived at which member. The core never learns which
network carried them -- it sees the same SBE bytes either way -- and that is the point of having two:

* ``MessageNetwork`` moves whole messages. Each copy gets its own random delay (so messages overtake one
  another: reordering), may be lost or duplicated, and is dropped on arrival when a partition blocks its
  direction. It is cheap, so the long seed sweeps use it.
* ``TransportNetwork`` runs one ``Transport`` per member over the transport layer's ``SimNetwork``, with
  the channels Aeron Cluster uses: each member subscribes to stream 108 on its consensus endpoint and
  holds one publication per peer to the peer's consensus endpoint (``term-length=64k``, as Aeron's
  default consensus channel). Messages are Aeron DATA frames, so a lost datagram is NAKed and sent again,
  a paused receiver back-pressures its senders, and a restarted member comes back as a new session that
  its peers learn of by SETUP. Loss, duplication, jitter, reordering and partitions are the
  ``SimNetwork``'s, per datagram. A message the publication refuses (not connected yet, or back pressured)
  is dropped, as Aeron's consensus publisher drops it; the core's timeouts send again.

Both draw every random choice from generators seeded by the simulator's one seed, so a run repeats.
"""

from __future__ import annotations

import abc
import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cluster.consensus.core.members import ClusterMember
from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.logbuffer import FragmentAssembler, Header
from cluster.transport.publication import Publication
from cluster.transport.simnet import LinkConfig, SimNetwork

__all__ = [
    "CONSENSUS_STREAM_ID",
    "ConsensusNetwork",
    "FaultConfig",
    "MessageNetwork",
    "TransportNetwork",
]

CONSENSUS_STREAM_ID = 108
"""Aeron Cluster's default consensus stream id."""
CONSENSUS_CHANNEL_PARAMS = "term-length=64k"
"""Aeron Cluster's default consensus channel is ``aeron:udp?term-length=64k``."""
_MAX_DUTY_ROUNDS = 16


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Network faults: probabilities per message (per datagram on the transport), delays in nanoseconds."""

    loss: float = 0.0
    duplicate: float = 0.0
    min_delay_ns: int = 100_000
    max_delay_ns: int = 2_000_000


class ConsensusNetwork(abc.ABC):
    """What the simulator needs of a network; ``members`` are indexed by member id."""

    kind: str

    @abc.abstractmethod
    def send(self, now_ns: int, source: int, destination: int, message: bytes) -> None:
        """Carry ``message`` from ``source`` to ``destination`` (or lose it)."""

    @abc.abstractmethod
    def receive(self, now_ns: int, paused_until: Callable[[int], int]) -> list[tuple[int, bytes]]:
        """``(destination, message)`` for every message that has arrived by ``now_ns`` at a member that is
        not paused (``paused_until(member_id) <= now_ns``), in arrival order; a paused member's messages
        wait for it."""

    @abc.abstractmethod
    def set_faults(self, faults: FaultConfig) -> None: ...

    @abc.abstractmethod
    def partition(self, a: int, b: int, *, one_way: bool) -> None:
        """Block ``a -> b`` (and ``b -> a`` unless ``one_way``), including messages already on their way."""

    @abc.abstractmethod
    def heal(self) -> None: ...

    @abc.abstractmethod
    def crash(self, member_id: int) -> None:
        """The member's process is gone (what it had not sent yet is lost)."""

    @abc.abstractmethod
    def restart(self, member_id: int) -> None:
        """The member's process is back."""

    def fault_counts(self) -> dict[str, int]:
        """Faults the network itself decided on, by kind (loss, duplicate, reorder)."""
        return {}


class MessageNetwork(ConsensusNetwork):
    """Whole messages with random delay, loss, duplication and partitions (see the module docstring)."""

    kind = "message"

    def __init__(self, rng: random.Random, faults: FaultConfig) -> None:
        self.random = rng
        self.faults = faults
        self.blocked: set[tuple[int, int]] = set()
        self._queue: list[tuple[int, int, int, int, bytes]] = []  # (deliver_at, seq, from, to, message)
        self._seq = 0
        self._last_seq: dict[tuple[int, int], int] = {}  # per link: the last message delivered
        self._counts: dict[str, int] = {}

    def _count(self, kind: str) -> None:
        self._counts[kind] = self._counts.get(kind, 0) + 1

    def send(self, now_ns: int, source: int, destination: int, message: bytes) -> None:
        faults = self.faults
        if self.random.random() < faults.loss:
            self._count("loss")
            return
        copies = 2 if self.random.random() < faults.duplicate else 1
        if copies == 2:
            self._count("duplicate")
        for _ in range(copies):
            delay = self.random.randint(faults.min_delay_ns, faults.max_delay_ns)
            self._seq += 1
            heapq.heappush(self._queue, (now_ns + delay, self._seq, source, destination, message))

    def receive(self, now_ns: int, paused_until: Callable[[int], int]) -> list[tuple[int, bytes]]:
        queue = self._queue
        due = []
        while queue and queue[0][0] <= now_ns:
            due.append(heapq.heappop(queue))
        arrived = []
        for item in due:
            _, seq, source, destination, message = item
            if (source, destination) in self.blocked:
                continue
            resume_ns = paused_until(destination)
            if resume_ns > now_ns:
                heapq.heappush(queue, (resume_ns, seq, source, destination, message))
                continue
            link = (source, destination)
            if seq < self._last_seq.get(link, 0):
                self._count("reorder")  # overtaken by a message sent after it
            else:
                self._last_seq[link] = seq
            arrived.append((destination, message))
        return arrived

    def set_faults(self, faults: FaultConfig) -> None:
        self.faults = faults

    def partition(self, a: int, b: int, *, one_way: bool) -> None:
        self.blocked.add((a, b))
        if not one_way:
            self.blocked.add((b, a))

    def heal(self) -> None:
        self.blocked.clear()

    def crash(self, member_id: int) -> None:
        pass  # a message is sent whole or not at all; what is already on the wire still arrives

    def restart(self, member_id: int) -> None:
        pass  # nothing to set up: messages to a member arrive whenever its core is running

    def fault_counts(self) -> dict[str, int]:
        return dict(self._counts)


class _Endpoints:
    """One member's transport: its consensus subscription and a publication to each peer."""

    def __init__(
        self, network: SimNetwork, member: ClusterMember, peers: list[ClusterMember], seed: int
    ) -> None:
        host = _host(member)
        self.transport = Transport(network, TransportConfig(bind_host=host, seed=seed))
        self.subscription = self.transport.add_subscription(
            f"aeron:udp?endpoint={member.consensus}|{CONSENSUS_CHANNEL_PARAMS}", CONSENSUS_STREAM_ID
        )
        self.publications: dict[int, Publication] = {
            peer.id: self.transport.add_publication(
                f"aeron:udp?endpoint={peer.consensus}|{CONSENSUS_CHANNEL_PARAMS}", CONSENSUS_STREAM_ID
            )
            for peer in peers
        }
        self.inbox: list[bytes] = []
        self.assembler = FragmentAssembler(self._on_message)

    def _on_message(self, buffer: memoryview, header: Header) -> None:
        self.inbox.append(bytes(buffer))


def _host(member: ClusterMember) -> str:
    return member.consensus.rsplit(":", 1)[0]


class TransportNetwork(ConsensusNetwork):
    """Consensus messages as Aeron publications and subscriptions over ``SimNetwork`` (module docstring)."""

    kind = "transport"

    def __init__(self, members: Sequence[ClusterMember], seed: int, faults: FaultConfig) -> None:
        self.members = members
        self.network = SimNetwork(seed, default_link=_link(faults))
        self._seeds = random.Random(seed ^ 0x7A5)
        self._endpoints: list[_Endpoints | None] = [None] * len(members)
        self.refused = 0  # messages a publication did not take (not connected, back pressured)
        for member in members:
            self.restart(member.id)

    def restart(self, member_id: int) -> None:
        if self._endpoints[member_id] is None:
            member = self.members[member_id]
            peers = [peer for peer in self.members if peer.id != member_id]
            self._endpoints[member_id] = _Endpoints(self.network, member, peers, self._seeds.getrandbits(63))

    def crash(self, member_id: int) -> None:
        endpoints = self._endpoints[member_id]
        if endpoints is not None:
            endpoints.transport.abort()
            self._endpoints[member_id] = None

    def send(self, now_ns: int, source: int, destination: int, message: bytes) -> None:
        endpoints = self._endpoints[source]
        if endpoints is None:
            return
        if endpoints.publications[destination].offer(message) < 0:
            self.refused += 1

    def receive(self, now_ns: int, paused_until: Callable[[int], int]) -> list[tuple[int, bytes]]:
        self.network.clock.set(max(now_ns, self.network.clock.nano_time()))
        running = [
            endpoints
            for member_id, endpoints in enumerate(self._endpoints)
            if endpoints is not None and paused_until(member_id) <= now_ns
        ]
        for _ in range(_MAX_DUTY_ROUNDS):
            if sum(endpoints.transport.do_work() for endpoints in running) == 0:
                break
        arrived: list[tuple[int, bytes]] = []
        for member_id, endpoints in enumerate(self._endpoints):
            if endpoints is None or paused_until(member_id) > now_ns:
                continue
            while endpoints.subscription.poll(endpoints.assembler.on_fragment, 64) > 0:
                pass
            arrived.extend((member_id, message) for message in endpoints.inbox)
            endpoints.inbox.clear()
        return arrived

    def set_faults(self, faults: FaultConfig) -> None:
        self.network.default_link = _link(faults)

    def partition(self, a: int, b: int, *, one_way: bool) -> None:
        self.network.partition([_host(self.members[a])], [_host(self.members[b])], one_way=one_way)

    def heal(self) -> None:
        self.network.heal()

    def fault_counts(self) -> dict[str, int]:
        stats = self.network.stats()
        counts = {"loss": stats.dropped_loss, "duplicate": stats.duplicated}
        return {kind: count for kind, count in counts.items() if count}


def _link(faults: FaultConfig) -> LinkConfig:
    return LinkConfig(
        loss=faults.loss,
        duplicate=faults.duplicate,
        delay_ns=faults.min_delay_ns,
        jitter_ns=faults.max_delay_ns - faults.min_delay_ns,
        reorder=0.01 if faults.loss or faults.duplicate else 0.0,
    )
