"""Receive limits: no datagram makes a receiver allocate more than its configuration allows.

A SETUP frame asks the receiver to create an image, whose log is three terms of the term length the
SETUP announces -- a remote peer's choice. ``TransportConfig.max_receive_term_length`` bounds one image
and ``max_image_memory_bytes`` all of them; what goes over is refused and counted in its own counter,
creates nothing, and leaves the images already there working. Reassembly buffers, the other memory a
peer's frames can grow, are bounded by ``FragmentAssembler.max_buffered_bytes``.

Every test that sends an oversized SETUP runs under ``LogBufferGuard``: an image log over the per-image
maximum fails the test *before* its bytes are allocated, so a regression cannot take the machine's
memory with it. The memory the images hold is measured from the subscriptions' side (each subscriber
image's log buffer), independently of the transport's own ``image_memory_bytes`` gauge.
"""

from __future__ import annotations

import random
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.transport_sim import (
    BEGIN,
    END,
    MS,
    SETUP,
    SETUP_HEADER,
    Collector,
    Producer,
    S,
    Sim,
    message,
    poller,
)

from cluster.transport import driver, image
from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.errors import InvalidTermLengthError, TransportError
from cluster.transport.logbuffer import FragmentAssembler, Header, LogBuffers
from cluster.transport.publication import Publication
from cluster.transport.simnet import SimSocket

KIB = 1024
MIB = 1024 * KIB
TERM = 64 * KIB  # the real stream's term length (``Sim``'s default)
A_HOST, B_HOST, ROGUE_HOST = "10.0.0.1", "10.0.0.2", "10.0.0.66"
PORT = 40456
CHANNEL = f"aeron:udp?endpoint={B_HOST}:{PORT}"
STREAM = 7
OTHER_STREAM = 99
REAL_SESSION = 424242


class LogBufferGuard:
    """Stands in for ``LogBuffers`` where images create their logs: records each log's size and fails
    (an ``AssertionError`` escaping ``do_work``) before allocating one over ``limit_bytes``."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.sizes: list[int] = []

    def __call__(self, term_length: int, initial_term_id: int, **kwargs: object) -> LogBuffers:
        size = 3 * term_length
        if size > self.limit_bytes:
            raise AssertionError(f"an image log of {size} bytes, over the {self.limit_bytes} allowed")
        self.sizes.append(size)
        return LogBuffers(term_length, initial_term_id, **kwargs)  # type: ignore[arg-type]


@contextmanager
def guarded(max_receive_term_length: int) -> Iterator[LogBufferGuard]:
    guard = LogBufferGuard(3 * max_receive_term_length)
    with mock.patch.object(image, "LogBuffers", guard):
        yield guard


def setup_frame(
    session_id: int,
    stream_id: int = STREAM,
    term_length: int = TERM,
    mtu: int = 1408,
    term_offset: int = 0,
    initial_term_id: int = 0,
) -> bytes:
    return SETUP_HEADER.pack(
        40,
        0,
        0,
        SETUP,
        term_offset,
        session_id,
        stream_id,
        initial_term_id,
        initial_term_id,
        term_length,
        mtu,
        0,
    )


def subscriber_memory(transport: Transport) -> int:
    """The bytes of the distinct logs the subscriptions' network images read (the client's view)."""
    logs = {
        id(img.log): len(img.log.buffer)
        for endpoint in transport._receive_endpoints
        for streams in endpoint.streams.values()
        for sub, _ in streams
        for img in sub.images
    }
    return sum(logs.values())


def image_logs(transport: Transport) -> list[image.ImageLog]:
    return [log for endpoint in transport._receive_endpoints for log in endpoint.images.values()]


def refusals(transport: Transport) -> dict[str, int]:
    c = transport.counters
    return {
        "term_length": c.setups_refused_term_length,
        "mtu": c.setups_refused_mtu,
        "memory": c.images_refused_memory,
        "endpoint_limit": c.images_refused_endpoint_limit,
        "unknown": c.unknown_stream_datagrams,
        "malformed": c.malformed_datagrams,
        "created": c.images_created,
    }


@dataclass
class Receiver:
    """A real stream from ``a`` to a subscription on ``b`` (limited by ``config``), and a rogue socket."""

    sim: Sim
    pub: Publication
    b: Transport
    rogue: SimSocket
    collector: Collector
    available: list[int]

    def send(self, datagram: bytes) -> None:
        assert self.rogue.send(datagram, (B_HOST, PORT))

    def deliver(self) -> None:
        """Let everything sent so far arrive and be handled."""
        self.sim.run_for(2 * MS)

    def stream_still_delivers(self, count: int, first: int = 0) -> None:
        producer = Producer(self.pub, [message(first + i, [20, 700, 3000][i % 3]) for i in range(count)])
        expected = len(self.collector.messages) + count
        self.sim.add(producer)
        assert self.sim.run_until(lambda: len(self.collector.messages) == expected, 10 * S)
        assert self.collector.payloads[-count:] == producer.messages


@contextmanager
def receiver(seed: int, **config: int) -> Iterator[Receiver]:
    with Sim(seed) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST, **config)
        available: list[int] = []
        sub = b.add_subscription(
            CHANNEL, STREAM, on_available_image=lambda img: available.append(img.session_id)
        )
        pub = a.add_publication(f"{CHANNEL}|session-id={REAL_SESSION}", STREAM)
        collector = Collector()
        sim.add(poller(sub, collector, 3))
        assert sim.run_until(lambda: pub.is_connected)
        rogue = sim.net.open((ROGUE_HOST, 6666))
        yield Receiver(sim, pub, b, rogue, collector, available)
        rogue.close()


# ------------------------------------------------------------------------------------------ configuration


def test_defaults_bound_an_image_at_16_mib_terms_and_all_images_at_512_mib() -> None:
    config = TransportConfig()
    assert config.max_receive_term_length == 16 * MIB
    assert config.max_image_memory_bytes == 512 * MIB


def test_a_node_receiving_an_aeron_cluster_log_can_accept_64_mib_terms() -> None:
    # Aeron Cluster's log channel defaults to term-length=64m: its image takes 192 MiB of the budget
    config = TransportConfig(max_receive_term_length=64 * MIB)
    assert 3 * config.max_receive_term_length <= config.max_image_memory_bytes


@pytest.mark.parametrize("term_length", [0, 32 * KIB, 70_000, 2 * 1024 * MIB])
def test_the_receive_term_maximum_must_be_a_valid_term_length(term_length: int) -> None:
    with pytest.raises(InvalidTermLengthError):
        TransportConfig(max_receive_term_length=term_length)


def test_the_image_budget_must_hold_one_image_of_the_longest_term() -> None:
    TransportConfig(max_receive_term_length=TERM, max_image_memory_bytes=3 * TERM)
    with pytest.raises(TransportError, match="cannot hold one image of max_receive_term_length=65536"):
        TransportConfig(max_receive_term_length=TERM, max_image_memory_bytes=3 * TERM - 1)


# ------------------------------------------------------------------------------------------ per image


@pytest.mark.parametrize(
    ("term_length", "mtu", "counter"),
    [
        (1024 * MIB, 1408, "term_length"),  # a valid Aeron term length, 3 GiB of log: over the maximum
        (32 * MIB, 1408, "term_length"),
        (2**31 - 1, 1408, "term_length"),
        (-(2**31), 1408, "term_length"),
        (70_000, 1408, "term_length"),
        (TERM, 1000, "mtu"),  # not a multiple of 32
        (TERM, 32, "mtu"),
        (TERM, 65536, "mtu"),  # over the largest UDP payload
        (TERM, TERM // 8 + 32, "mtu"),  # longer than the longest message of the term
        (TERM, -1408, "mtu"),
    ],
)
def test_a_setup_out_of_range_is_refused_counted_and_creates_nothing(
    term_length: int, mtu: int, counter: str
) -> None:
    with guarded(16 * MIB) as guard, receiver(1) as r:
        logs_before, before = len(guard.sizes), refusals(r.b)
        for session_id in (1, 2, 3):
            r.send(setup_frame(session_id, term_length=term_length, mtu=mtu))
        r.deliver()
        moved = {name: refusals(r.b)[name] - before[name] for name in before}
        assert moved == {name: 3 if name == counter else 0 for name in before}
        assert len(guard.sizes) == logs_before  # no log allocated
        assert [log.session_id for log in image_logs(r.b)] == [REAL_SESSION]
        assert r.available == [REAL_SESSION]  # no subscriber image came and went
        assert r.b.image_memory_bytes == 3 * TERM == subscriber_memory(r.b)
        r.stream_still_delivers(30)


def test_a_setup_at_the_maximum_term_length_is_accepted_and_one_over_it_refused() -> None:
    maximum = 256 * KIB
    with guarded(maximum) as guard, receiver(2, max_receive_term_length=maximum) as r:
        r.send(setup_frame(1, term_length=maximum))
        r.send(setup_frame(2, term_length=2 * maximum))
        r.deliver()
        assert guard.sizes[-1] == 3 * maximum
        assert sorted(log.session_id for log in image_logs(r.b)) == [1, REAL_SESSION]
        assert r.b.counters.setups_refused_term_length == 1
        assert r.b.image_memory_bytes == 3 * TERM + 3 * maximum == subscriber_memory(r.b)
        r.stream_still_delivers(30)


def test_an_endpoint_holds_at_most_its_image_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver, "MAX_IMAGES_PER_ENDPOINT", 3)
    with guarded(16 * MIB), receiver(3) as r:
        for session_id in range(1, 5):
            r.send(setup_frame(session_id))
        r.deliver()
        assert sorted(log.session_id for log in image_logs(r.b)) == [1, 2, REAL_SESSION]
        assert r.b.counters.images_refused_endpoint_limit == 2
        assert r.b.counters.images_refused_memory == 0
        r.stream_still_delivers(30)


# ------------------------------------------------------------------------------------------ in total


BUDGET_TERM = 128 * KIB
BUDGET = 6 * BUDGET_TERM  # 768 KiB: the real 64 KiB image (192 KiB) and 576 KiB more


def test_images_past_the_memory_budget_are_refused_and_existing_ones_keep_working() -> None:
    config = {"max_receive_term_length": BUDGET_TERM, "max_image_memory_bytes": BUDGET}
    with guarded(BUDGET_TERM), receiver(4, **config) as r:
        r.send(setup_frame(1, term_length=BUDGET_TERM))  # 192 + 384 = 576 KiB
        r.send(setup_frame(2, term_length=BUDGET_TERM))  # 960 KiB: refused
        r.send(setup_frame(3, term_length=TERM))  # 768 KiB: exactly the budget
        r.send(setup_frame(4, term_length=TERM))  # refused
        r.deliver()
        assert sorted(log.session_id for log in image_logs(r.b)) == [1, 3, REAL_SESSION]
        assert r.b.counters.images_refused_memory == 2
        assert r.b.image_memory_bytes == BUDGET == subscriber_memory(r.b)
        assert r.available == [REAL_SESSION, 1, 3]
        r.stream_still_delivers(30)
        r.send(setup_frame(4, term_length=TERM))  # the publisher of a refused SETUP repeats it
        r.deliver()
        assert r.b.counters.images_refused_memory == 3


def test_an_image_that_goes_away_returns_its_memory_to_the_budget() -> None:
    config = {"max_receive_term_length": BUDGET_TERM, "max_image_memory_bytes": BUDGET}
    with guarded(BUDGET_TERM), receiver(5, **config) as r:
        r.send(setup_frame(1, term_length=BUDGET_TERM))
        r.send(setup_frame(3, term_length=TERM))
        r.deliver()
        assert r.b.image_memory_bytes == BUDGET
        # the rogue images never see a frame: they time out (10 s), the real one lives on its heartbeats
        r.sim.run_for(11 * S, step_ns=10 * MS)
        assert [log.session_id for log in image_logs(r.b)] == [REAL_SESSION]
        assert r.b.counters.images_removed == 2
        assert r.b.image_memory_bytes == 3 * TERM == subscriber_memory(r.b)
        r.send(setup_frame(5, term_length=BUDGET_TERM))
        r.deliver()
        assert sorted(log.session_id for log in image_logs(r.b)) == [5, REAL_SESSION]
        assert r.b.counters.images_refused_memory == 0
        r.stream_still_delivers(30)


def test_closing_the_subscription_returns_its_images_memory() -> None:
    with guarded(16 * MIB), receiver(6) as r:
        r.send(setup_frame(1))
        r.deliver()
        assert r.b.image_memory_bytes == 2 * 3 * TERM
        sub = r.b._receive_endpoints[0].streams[STREAM][0][0]
        sub.close()
        assert r.b.image_memory_bytes == 0 and image_logs(r.b) == []


def test_ipc_logs_are_not_counted_against_the_image_budget() -> None:
    with Sim(7) as sim:
        t = sim.transport(A_HOST, max_receive_term_length=TERM, max_image_memory_bytes=3 * TERM)
        sub = t.add_subscription("aeron:ipc", STREAM)
        pub = t.add_publication("aeron:ipc?term-length=256k", STREAM)
        collector = Collector()
        sim.add(poller(sub, collector))
        assert pub.offer(message(0, 100)) > 0
        assert sim.run_until(lambda: len(collector.messages) == 1)
        assert t.image_memory_bytes == 0 and t.counters.images_refused_memory == 0


# ------------------------------------------------------------------------------------------ hostile SETUPs


@dataclass(frozen=True)
class HostileSetup:
    session_id: int
    stream_id: int
    term_length: int
    mtu: int
    term_offset: int  # a multiple of 32 within 64 KiB: valid whenever the term length is

    def expected(self, maximum: int) -> str:
        """What the receiver must do with it, worked out here from the rules, not by the transport."""
        t, mtu = self.term_length, self.mtu
        if self.stream_id != STREAM:
            return "unknown"
        if not (TERM <= t <= maximum and t & (t - 1) == 0):
            return "term_length"
        if not (32 < mtu <= 65504 and mtu % 32 == 0 and mtu <= min(t // 8, 16 * MIB)):
            return "mtu"
        return "image"


INT32 = st.integers(-(2**31), 2**31 - 1)
sessions = INT32.filter(lambda v: v != REAL_SESSION)
offsets = st.integers(0, TERM // 32).map(lambda v: v * 32)
any_setup = st.builds(
    HostileSetup,
    session_id=sessions,
    stream_id=st.sampled_from([STREAM, STREAM, STREAM, OTHER_STREAM]),
    term_length=st.one_of(
        st.sampled_from([2**k for k in range(12, 31)]),  # 4 KiB .. 1 GiB
        INT32,
        st.just(2**31 - 1),
    ),
    mtu=st.one_of(st.sampled_from([1408, 4096, 8192, 65504]), st.integers(-100, 70000), INT32),
    term_offset=offsets,
)
fitting_setup = st.builds(  # within every limit but the total: these fill the budget
    HostileSetup,
    session_id=sessions,
    stream_id=st.just(STREAM),
    term_length=st.sampled_from([TERM, 2 * TERM, 4 * TERM]),
    mtu=st.sampled_from([1408, 4096]),
    term_offset=offsets,
)
hostile_setups = st.lists(
    st.one_of(any_setup, fitting_setup), min_size=1, max_size=24, unique_by=lambda s: s.session_id
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), setups=hostile_setups)
def test_hostile_setups_never_take_more_than_the_configured_memory(
    seed: int, setups: list[HostileSetup]
) -> None:
    maximum, budget = 4 * TERM, 24 * TERM
    config = {"max_receive_term_length": maximum, "max_image_memory_bytes": budget}
    with guarded(maximum) as guard, receiver(seed, **config) as r:
        before = refusals(r.b)
        pending = list(setups)
        peak = [r.b.image_memory_bytes]

        def attacker() -> int:  # one SETUP per round, in between the real stream's datagrams
            if not pending:
                return 0
            s = pending.pop(0)
            r.send(setup_frame(s.session_id, s.stream_id, s.term_length, s.mtu, s.term_offset, seed))
            return 1

        def check() -> int:  # after every round: the images hold no more than allowed
            held = subscriber_memory(r.b)
            assert held == r.b.image_memory_bytes == sum(3 * log.term_length for log in image_logs(r.b))
            assert held <= budget
            assert all(log.term_length <= maximum for log in image_logs(r.b))
            peak[0] = max(peak[0], held)
            return 0

        r.sim.add(attacker, check)
        r.stream_still_delivers(40)
        assert r.sim.run_until(lambda: not pending)
        r.deliver()

        # the model: refusals in arrival order, the budget filled first come first served
        expected: Counter[str] = Counter()
        held = 3 * TERM
        created = [REAL_SESSION]
        for s in setups:
            outcome = s.expected(maximum)
            if outcome == "image":
                if held + 3 * s.term_length > budget:
                    outcome = "memory"
                else:
                    held += 3 * s.term_length
                    created.append(s.session_id)
                    outcome = "created"
            expected[outcome] += 1
        for outcome in expected:
            event(outcome)  # shown by --hypothesis-show-statistics: every outcome is reached
        moved = {name: refusals(r.b)[name] - before[name] for name in before}
        assert moved == {name: expected.get(name, 0) for name in before}, setups
        assert sorted(log.session_id for log in image_logs(r.b)) == sorted(created)
        assert sorted(r.available) == sorted(created)
        assert r.b.image_memory_bytes == held == subscriber_memory(r.b)
        assert max(guard.sizes) <= 3 * maximum and peak[0] <= budget
        r.stream_still_delivers(40, first=40)


def test_huge_setups_allocate_nothing_beyond_the_budget() -> None:
    """Whatever a SETUP says, the Python heap grows by no more than the images the budget allows (and
    small change), measured by ``tracemalloc`` while the datagrams are handled."""
    maximum, budget = 2 * TERM, 9 * TERM  # the real image (3 terms of 64 KiB) and one of 128 KiB terms
    config = {"max_receive_term_length": maximum, "max_image_memory_bytes": budget}
    with guarded(maximum), receiver(8, **config) as r:
        tracemalloc.start()
        try:
            baseline = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            for session_id, term_length in enumerate([1024 * MIB, 2**31 - 1, 512 * MIB, 64 * MIB] * 8, 1):
                r.send(setup_frame(session_id, term_length=term_length))
            for session_id in range(100, 110):
                r.send(setup_frame(session_id, term_length=maximum))  # the first fills the budget
            r.deliver()
            peak = tracemalloc.get_traced_memory()[1] - baseline
        finally:
            tracemalloc.stop()
        assert r.b.counters.setups_refused_term_length == 32
        assert r.b.counters.images_refused_memory == 9
        assert r.b.image_memory_bytes == budget
        assert peak < (budget - 3 * TERM) + 256 * KIB, peak  # the one image allowed, and small change


# ------------------------------------------------------------------------------------------ reassembly


def fragment_header(session_id: int, flags: int, term_offset: int, payload_length: int) -> Header:
    header = Header(0, 16)
    header.values = (32 + payload_length, 0, flags, 1, term_offset, session_id, STREAM, 0, 0)
    return header


@dataclass
class FragmentedSender:
    """One session's fragmented messages, as frames contiguous in its own term."""

    session_id: int
    term_offset: int = 0

    def fragments(self, payload: bytes, chunk: int) -> list[tuple[memoryview, Header]]:
        pieces = [payload[i : i + chunk] for i in range(0, len(payload), chunk)]
        out = []
        for i, piece in enumerate(pieces):
            flags = (BEGIN if i == 0 else 0) | (END if i == len(pieces) - 1 else 0)
            out.append(
                (memoryview(piece), fragment_header(self.session_id, flags, self.term_offset, len(piece)))
            )
            self.term_offset += (32 + len(piece) + 31) & -32
        return out


def held_by_builders(assembler: FragmentAssembler) -> int:
    return sum(len(b.buffer) for b in assembler._builders.values())


@settings(max_examples=150, deadline=None)
@given(
    messages=st.lists(
        st.tuples(st.integers(0, 11), st.integers(1, 12 * KIB), st.integers(100, 1400)),
        min_size=1,
        max_size=30,
    ),
    rng=st.randoms(use_true_random=False),
    budget_kib=st.integers(8, 80),
)
def test_reassembly_buffers_never_exceed_their_total(
    messages: list[tuple[int, int, int]], rng: random.Random, budget_kib: int
) -> None:
    max_message_length, max_sessions, budget = 8 * KIB, 8, budget_kib * KIB
    delivered: dict[int, list[bytes]] = {}
    assembler = FragmentAssembler(
        lambda payload, header: delivered.setdefault(header.session_id, []).append(bytes(payload)),
        max_message_length,
        max_sessions,
        max_buffered_bytes=budget,
    )
    senders: dict[int, FragmentedSender] = {}
    queues: dict[int, list[tuple[memoryview, Header]]] = {}
    sent: dict[int, list[bytes]] = {}
    for index, (session_id, length, chunk) in enumerate(messages):
        payload = index.to_bytes(2, "little") * (length // 2) + b"!" * (length % 2)
        sent.setdefault(session_id, []).append(payload)
        sender = senders.setdefault(session_id, FragmentedSender(session_id))
        queues.setdefault(session_id, []).extend(sender.fragments(payload, chunk))
    while queues:  # the sessions' fragments interleaved, each session's in order
        session_id = rng.choice(sorted(queues))
        fragment, header = queues[session_id].pop(0)
        if not queues[session_id]:
            del queues[session_id]
        assembler.on_fragment(fragment, header)
        assert assembler.buffered_bytes == held_by_builders(assembler) <= budget
    # every message is delivered whole, in its session's order, or dropped and counted once
    for session_id, payloads in delivered.items():
        remaining = iter(sent[session_id])
        assert all(any(p == q for q in remaining) for p in payloads)  # a subsequence of what was sent
    dropped = assembler.too_long_count + assembler.buffer_limit_count + assembler.session_limit_count
    assert sum(map(len, delivered.values())) + dropped == len(messages)
    if budget >= max_sessions * max_message_length:  # room for every session's longest message
        assert assembler.buffer_limit_count == 0


def test_a_message_that_does_not_fit_is_dropped_and_the_one_in_progress_completes() -> None:
    delivered: list[tuple[int, bytes]] = []
    assembler = FragmentAssembler(
        lambda payload, header: delivered.append((header.session_id, bytes(payload))),
        8 * KIB,
        max_buffered_bytes=8 * KIB,
    )
    one, two = FragmentedSender(1), FragmentedSender(2)
    first = one.fragments(b"a" * 6000, 1000)
    for payload, header in first[:3]:
        assembler.on_fragment(payload, header)
    assert assembler.buffered_bytes == 4 * KIB  # session 1, mid-message
    # session 2's message outgrows the 4 KiB left while session 1's is in progress: dropped at 5000
    # bytes, and its last fragment is a continuation without a beginning
    for payload, header in two.fragments(b"b" * 6000, 1000):
        assembler.on_fragment(payload, header)
    assert assembler.buffer_limit_count == 1 and assembler.broken_sequence_count == 1
    assert assembler.buffered_bytes == held_by_builders(assembler) == 4 * KIB
    for payload, header in first[3:]:
        assembler.on_fragment(payload, header)
    assert delivered == [(1, b"a" * 6000)]
    assert assembler.buffered_bytes == 8 * KIB
    # session 1 is idle now: its buffer is given up for session 2's next message
    for payload, header in two.fragments(b"c" * 7000, 1000):
        assembler.on_fragment(payload, header)
    assert delivered[-1] == (2, b"c" * 7000)
    assert assembler.buffer_limit_count == 1
    assert assembler.buffered_bytes == held_by_builders(assembler) == 8 * KIB


def test_freeing_a_session_returns_its_buffer() -> None:
    assembler = FragmentAssembler(lambda payload, header: None, 8 * KIB, max_buffered_bytes=16 * KIB)
    for payload, header in FragmentedSender(1).fragments(b"x" * 5000, 1000):
        assembler.on_fragment(payload, header)
    assert assembler.buffered_bytes == 8 * KIB
    assert assembler.free_session(1) and not assembler.free_session(1)
    assert assembler.buffered_bytes == 0
