"""``python -m tools aeron``: Aeron's transport samples -- send, recv, ping, pong, throughput.

::

    python -m tools aeron send       [--channel C] [--stream N] [--count K] [--sizes 32,2000,...]
    python -m tools aeron recv       [--channel C] [--stream N] [--count K] [--loss P] [--seed S]
    python -m tools aeron pong       [--ping-channel C] [--pong-channel C] [--count N]
    python -m tools aeron ping       [--ping-channel C] [--pong-channel C] [--count N] [--warmup N] [--size B]
    python -m tools aeron throughput [--channel C] [--size B] [--seconds S | --count K] [--mode M]

Every command also takes ``--idle {selector,backoff,yield,spin}`` (default ``selector``: sleep on the
sockets, never busy-spin) and ``--timeout S``.

Theory of operation
-------------------
The samples are Aeron's (``BasicPublisher``/``BasicSubscriber``, ``Ping``/``Pong``,
``StreamingPublisher``/``RateSubscriber``) on our :class:`~cluster.transport.driver.Transport`, whose
``do_work`` is the media driver's duty cycle. So every loop here is a *duty cycle*: do the sample's
own step (offer, poll), call ``do_work``, hand the work count to the idle strategy. The loops are
public functions because ``python -m tools bench transport`` runs exactly the same code:

* :func:`offer_with_retry` offers one message, and while the result is retryable (NOT_CONNECTED,
  BACK_PRESSURED, ADMIN_ACTION) runs the duty cycle and tries again, bounded by a timeout.
* :func:`send_messages` offers many, running the duty cycle every few messages so data leaves while
  the log fills.
* :func:`drain` runs the duty cycle until a network publication has sent everything offered and (by
  default) a receiver has reported consuming all of it in a status message.
* :func:`receive_messages` polls a subscription until a predicate says stop.
* :class:`PayloadSource` makes the payloads: byte ``j`` of message ``i`` is ``(i + j) % 251`` and the
  sizes cycle, so a receiver can check a transfer against an independently computed hash;
  :class:`StreamDigest` keeps that hash.

**Timeouts measure lack of progress.** ``--timeout S`` fails a run when S seconds pass without a
message getting through (an offer accepted, a message received, a pong returned) -- so a long transfer
never times out while it moves, and a missing peer is noticed after S seconds. A timed-out run exits
with status 1 after printing what it has (``recv`` still prints its JSON line). Bad options and
channels exit 2 with one ``error:`` line.

**Output.** ``send`` and ``recv`` print ``{"messages": K, "bytes": B, "sha256": H}`` as the last line
of stdout, where H is the SHA-256 of every payload concatenated in order (sending order for ``send``,
delivery order for ``recv``); a ``send`` or ``recv`` that times out prints the same line, for what it
offered or received, on stdout too. ``ping`` prints percentiles of the round-trip time (an
HdrHistogram) and then a JSON line; ``throughput`` prints the rate and then a JSON line.

**Ending a transfer.** ``send`` keeps the duty cycle running after its last offer until a receiver has
acknowledged every byte, then closes, which sends an end-of-stream heartbeat. ``recv``, once it has K
messages, keeps its status messages going until that end of stream arrives (bounded by
:data:`RECV_LINGER_S`), so the sender's wait for the acknowledgement is short.

**Throughput** runs the publisher in this process and the subscriber in a child process (``--mode
processes``, the default; the child is a ``multiprocessing`` spawn of :func:`throughput_subscriber`,
which reports its bound port and then its count and timing over a pipe), or both in one duty cycle
(``--mode inprocess``, which also allows ``aeron:ipc``). The rate is measured where messages arrive:
messages received after the first poll that found any, over the time from that poll to the last.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import math
import multiprocessing
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any, Final, Protocol

from cluster.transport.agent import (
    BackoffIdleStrategy,
    BusySpinIdleStrategy,
    IdleStrategy,
    SelectorIdleStrategy,
    YieldingIdleStrategy,
)
from cluster.transport.driver import DEFAULT_MTU, Transport, TransportConfig
from cluster.transport.image import Subscription
from cluster.transport.logbuffer import (
    ADMIN_ACTION,
    BACK_PRESSURED,
    CLOSED,
    HEADER_LENGTH,
    MAX_POSITION_EXCEEDED,
    NOT_CONNECTED,
    FragmentAssembler,
    Header,
)
from cluster.transport.publication import NetworkPublication, Publication
from cluster.transport.uri import ChannelUri

__all__ = [
    "DEFAULT_CHANNEL",
    "DEFAULT_PING_CHANNEL",
    "DEFAULT_PONG_CHANNEL",
    "FRAGMENT_LIMIT",
    "IDLE_CHOICES",
    "PATTERN_MODULUS",
    "AeronSampleError",
    "PayloadSource",
    "SampleTimeout",
    "StreamDigest",
    "ThroughputResult",
    "TransportRuntime",
    "child_process",
    "configure",
    "drain",
    "format_latency",
    "format_throughput",
    "latency_summary",
    "make_idle",
    "measure_throughput",
    "new_histogram",
    "offer_with_retry",
    "payload",
    "pong_process",
    "receive_child_message",
    "receive_messages",
    "run",
    "run_ping",
    "run_pong",
    "send_messages",
    "throughput_subscriber",
]

DEFAULT_CHANNEL: Final = "aeron:udp?endpoint=127.0.0.1:20121"  # Aeron SampleConfiguration's port
DEFAULT_STREAM: Final = 1001
DEFAULT_PING_CHANNEL: Final = "aeron:udp?endpoint=127.0.0.1:20123"
DEFAULT_PONG_CHANNEL: Final = "aeron:udp?endpoint=127.0.0.1:20124"
DEFAULT_PING_STREAM: Final = 1002
DEFAULT_PONG_STREAM: Final = 1003
DEFAULT_THROUGHPUT_CHANNEL: Final = "aeron:udp?endpoint=127.0.0.1:0"  # port 0: the subscriber picks one
DEFAULT_THROUGHPUT_STREAM: Final = 1004
DEFAULT_TIMEOUT_S: Final = 30.0
DEFAULT_SECONDS: Final = 3.0

IDLE_CHOICES: Final = ("selector", "backoff", "yield", "spin")
PATTERN_MODULUS: Final = 251
FRAGMENT_LIMIT: Final = 256
"""Fragments per ``poll`` (Aeron's samples use 10; more amortises the call on CPython)."""
DUTY_EVERY: Final = 256  # offers between duty cycles: as many as one poll takes (FRAGMENT_LIMIT)
"""``send_messages`` runs the duty cycle after this many accepted offers."""
RECV_LINGER_S: Final = 2.0
"""How long ``recv`` keeps status messages going after its last message, waiting for end of stream."""
MAX_SIZE_LIST: Final = 1024
MAX_PRECOMPUTED_PAYLOADS: Final = 8192
MAX_PENDING_ECHOES: Final = FRAGMENT_LIMIT
CHILD_START_TIMEOUT_S: Final = 30.0
NS_PER_S: Final = 1_000_000_000
HISTOGRAM_MAX_NS: Final = 60 * NS_PER_S

_PING_HEADER: Final = struct.Struct("<qq")  # sequence number, send time (perf_counter_ns)
_PING_HEADER_LENGTH: Final = _PING_HEADER.size
_RETRYABLE: Final = frozenset({NOT_CONNECTED, BACK_PRESSURED, ADMIN_ACTION})


class AeronSampleError(ValueError):
    """Bad options for a sample; the dispatcher prints ``error: <message>`` and exits 2."""

    is_user_error = True


class SampleTimeout(Exception):
    """Nothing progressed for the sample's timeout; the command prints what it has and exits 1."""


class Histogram(Protocol):
    """What we use of ``hdrh.histogram.HdrHistogram``."""

    def record_value(self, value: int) -> bool: ...

    def get_value_at_percentile(self, percentile: float) -> int: ...

    def get_max_value(self) -> int: ...

    def get_min_value(self) -> int: ...

    def get_mean_value(self) -> float: ...

    def get_total_count(self) -> int: ...


Duty = Callable[[], int]
"""One duty cycle (at least ``Transport.do_work``); returns the work done."""
Clock = Callable[[], int]


# ------------------------------------------------------------------------------------------ payloads


def payload(index: int, size: int) -> bytes:
    """Message ``index`` of ``size`` bytes: byte ``j`` is ``(index + j) % 251`` (the reference form)."""
    return bytes((index + j) % PATTERN_MODULUS for j in range(size))


class PayloadSource:
    """The payloads of a transfer, as zero-copy views of one pattern (see :func:`payload`).

    ``source(i)`` is message ``i``; iterating gives messages 0, 1, 2, ... for ever, from a precomputed
    cycle of views when the period (lcm(251, len(sizes))) is short -- no arithmetic per message."""

    __slots__ = ("_cycle", "_view", "sizes", "total_bytes_per_cycle")

    def __init__(self, sizes: Sequence[int]) -> None:
        if not sizes or any(size < 0 for size in sizes):
            raise ValueError(f"message sizes must be a non-empty list of sizes >= 0: {list(sizes)}")
        self.sizes = tuple(sizes)
        self.total_bytes_per_cycle = sum(self.sizes)
        pattern = bytes(k % PATTERN_MODULUS for k in range(PATTERN_MODULUS + max(self.sizes)))
        self._view = memoryview(pattern)
        period = math.lcm(PATTERN_MODULUS, len(self.sizes))
        self._cycle = tuple(self(i) for i in range(period)) if period <= MAX_PRECOMPUTED_PAYLOADS else None

    def __call__(self, index: int) -> memoryview:
        size = self.sizes[index % len(self.sizes)]
        start = index % PATTERN_MODULUS
        return self._view[start : start + size]

    def __iter__(self) -> Iterator[memoryview]:
        if self._cycle is not None:
            return itertools.cycle(self._cycle)
        return map(self, itertools.count())

    def total_bytes(self, count: int) -> int:
        """The payload bytes of messages ``0 .. count - 1``."""
        cycles, rest = divmod(count, len(self.sizes))
        return cycles * self.total_bytes_per_cycle + sum(self.sizes[:rest])


class StreamDigest:
    """Counts messages and bytes and hashes the payloads in order; ignores messages beyond ``limit``."""

    __slots__ = ("_sha256", "bytes", "extra", "limit", "messages")

    def __init__(self, limit: int | None = None) -> None:
        self._sha256 = hashlib.sha256()
        self.limit = limit
        self.messages = 0
        self.bytes = 0
        self.extra = 0

    def update(self, buffer: bytes | bytearray | memoryview) -> None:
        if self.limit is not None and self.messages >= self.limit:
            self.extra += 1
            return
        self._sha256.update(buffer)
        self.messages += 1
        self.bytes += len(buffer)

    def on_message(self, buffer: memoryview, header: Header) -> None:
        """A fragment handler (wrap in ``FragmentAssembler`` for fragmented messages)."""
        self.update(buffer)

    @property
    def is_complete(self) -> bool:
        return self.limit is not None and self.messages >= self.limit

    def summary(self) -> dict[str, Any]:
        return {"messages": self.messages, "bytes": self.bytes, "sha256": self._sha256.hexdigest()}

    def json_line(self) -> str:
        return json.dumps(self.summary())


# ---------------------------------------------------------------------------------------- runtime


def make_idle(name: str) -> IdleStrategy:
    """``selector`` (the default: sleeps on the transport's sockets), ``backoff``, ``yield`` (spins
    through ``sched_yield``, so other threads get the core) or ``spin`` (burns a core)."""
    if name == "selector":
        return SelectorIdleStrategy()
    if name == "backoff":
        return BackoffIdleStrategy()
    if name == "yield":
        return YieldingIdleStrategy()
    if name == "spin":
        return BusySpinIdleStrategy()
    raise AeronSampleError(f"--idle must be one of {', '.join(IDLE_CHOICES)}, not {name!r}")


class TransportRuntime:
    """A transport with its idle strategy (registered with it when it is a selector); close both."""

    def __init__(self, idle: str = "selector", config: TransportConfig | None = None) -> None:
        self.idle_name = idle
        self.idle = make_idle(idle)
        selector = self.idle if isinstance(self.idle, SelectorIdleStrategy) else None
        try:
            self.transport = Transport(config=config, idle=selector)
        except BaseException:
            if selector is not None:
                selector.close()
            raise
        self.clock: Clock = self.transport.clock.nano_time

    def close(self) -> None:
        try:
            self.transport.close()
        finally:
            if isinstance(self.idle, SelectorIdleStrategy):
                self.idle.close()

    def __enter__(self) -> TransportRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------- shared loops


def _check_result(result: int, publication: Publication) -> None:
    if result == CLOSED:
        raise AeronSampleError(f"publication on {publication.channel} is closed")
    if result == MAX_POSITION_EXCEEDED:
        raise AeronSampleError(f"publication on {publication.channel} reached its maximum position")
    assert result in _RETRYABLE, result


def offer_with_retry(
    publication: Publication,
    message: bytes | bytearray | memoryview,
    duty: Duty,
    idle: IdleStrategy,
    clock: Clock,
    timeout_ns: int,
) -> int:
    """Offer ``message``; while the result is retryable run ``duty`` and idle, at most ``timeout_ns``.

    Returns the new position; raises :class:`SampleTimeout` when the time runs out and
    :class:`AeronSampleError` when the publication is closed or full.
    """
    offer = publication.offer
    result = offer(message)
    if result > 0:
        return result
    deadline_ns = clock() + timeout_ns
    while True:
        _check_result(result, publication)
        work = duty()
        result = offer(message)
        if result > 0:
            idle.reset()
            return result
        if clock() > deadline_ns:
            state = "not connected" if result == NOT_CONNECTED else "back pressured"
            raise SampleTimeout(
                f"offer on {publication.channel} stream {publication.stream_id}: still {state} "
                f"after {timeout_ns / NS_PER_S:g} s"
            )
        idle.idle(work)


def send_messages(
    publication: Publication,
    payloads: Iterable[bytes | bytearray | memoryview],
    count: int | None,
    duty: Duty,
    idle: IdleStrategy,
    clock: Clock,
    timeout_ns: int,
    *,
    digest: StreamDigest | None = None,
    stop_at_ns: int | None = None,
    duty_every: int = DUTY_EVERY,
) -> int:
    """Offer the messages of ``payloads`` in order -- ``count`` of them, or until ``stop_at_ns`` -- and
    return how many were offered. ``duty`` runs after every ``duty_every`` accepted offers and whenever
    an offer must be retried (see :func:`offer_with_retry`)."""
    if count is None and stop_at_ns is None:
        raise ValueError("send_messages needs a count or a stop time")
    if duty_every < 1:
        raise ValueError(f"duty_every must be at least 1: {duty_every}")
    offer = publication.offer
    update = None if digest is None else digest.update
    messages = iter(payloads) if count is None else itertools.islice(payloads, count)
    sent = 0
    countdown = duty_every
    for message in messages:
        if offer(message) <= 0:
            offer_with_retry(publication, message, duty, idle, clock, timeout_ns)
        if update is not None:
            update(message)
        sent += 1
        countdown -= 1
        if not countdown:
            countdown = duty_every
            duty()
            if stop_at_ns is not None and clock() >= stop_at_ns:
                break
    return sent


def drain(
    publication: Publication,
    duty: Duty,
    idle: IdleStrategy,
    clock: Clock,
    timeout_ns: int,
    *,
    acknowledged: bool = True,
) -> None:
    """Run ``duty`` until a network publication has sent all it was offered and, with ``acknowledged``,
    a receiver has reported consuming all of it; raise :class:`SampleTimeout` after ``timeout_ns``
    without progress. IPC publications have nothing to send: it returns at once."""
    if not isinstance(publication, NetworkPublication):
        return
    deadline_ns = clock() + timeout_ns
    last = (publication.sender_position, publication.receiver_position)
    while True:
        position = publication.position
        sent = publication.sender_position >= position
        if sent and (not acknowledged or publication.receiver_position >= position):
            return
        work = duty()
        now = (publication.sender_position, publication.receiver_position)
        if now != last:
            last = now
            deadline_ns = clock() + timeout_ns
        elif clock() > deadline_ns:
            what = "acknowledged" if sent else "sent"
            raise SampleTimeout(
                f"publication on {publication.channel}: position {position} not {what} within "
                f"{timeout_ns / NS_PER_S:g} s (sent to {publication.sender_position}, "
                f"acknowledged to {publication.receiver_position})"
            )
        idle.idle(work)


def receive_messages(
    subscription: Subscription,
    handler: Callable[[memoryview, Header], object],
    done: Callable[[], bool],
    duty: Duty,
    idle: IdleStrategy,
    clock: Clock,
    timeout_ns: int,
    *,
    fragment_limit: int = FRAGMENT_LIMIT,
) -> tuple[int, int, int]:
    """Poll ``subscription`` into ``handler`` until ``done()``; raise :class:`SampleTimeout` when no
    fragment arrives for ``timeout_ns``. Returns (fragments received after the first non-empty poll,
    nano time of that poll, nano time of the last non-empty poll) -- what a rate is computed from."""
    poll = subscription.poll
    fragments = 0
    first_ns = last_ns = 0
    first_fragments = 0
    deadline_ns = clock() + timeout_ns
    while not done():
        work = duty()
        received = poll(handler, fragment_limit)
        if received:
            fragments += received
            last_ns = clock()
            deadline_ns = last_ns + timeout_ns
            if not first_ns:
                first_ns = last_ns
                first_fragments = received
        elif clock() > deadline_ns:
            raise SampleTimeout(
                f"no message on {subscription.channel} stream {subscription.stream_id} for "
                f"{timeout_ns / NS_PER_S:g} s"
            )
        idle.idle(work + received)
    return fragments - first_fragments, first_ns, last_ns


def _linger_until_end_of_stream(
    subscription: Subscription, duty: Duty, idle: IdleStrategy, clock: Clock, linger_ns: int
) -> None:
    """Keep the duty cycle (and so the status messages) going until the images are gone, bounded."""
    deadline_ns = clock() + linger_ns

    def discard(buffer: memoryview, header: Header) -> None:
        pass

    while subscription.image_count > 0 and clock() < deadline_ns:
        work = duty() + subscription.poll(discard, FRAGMENT_LIMIT)
        idle.idle(work)


# ----------------------------------------------------------------------------------------- ping/pong


def new_histogram() -> Histogram:
    """An HdrHistogram of nanoseconds from 1 ns to 60 s with 3 significant digits."""
    from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

    histogram: Histogram = HdrHistogram(1, HISTOGRAM_MAX_NS, 3)
    return histogram


PERCENTILES: Final = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9))


def latency_summary(histogram: Histogram) -> dict[str, float | int]:
    """Count, min, mean, the percentiles of :data:`PERCENTILES` and max, in microseconds."""
    summary: dict[str, float | int] = {"count": histogram.get_total_count()}
    summary["min_us"] = histogram.get_min_value() / 1000
    summary["mean_us"] = round(histogram.get_mean_value() / 1000, 3)
    for name, percentile in PERCENTILES:
        summary[f"{name}_us"] = histogram.get_value_at_percentile(percentile) / 1000
    summary["max_us"] = histogram.get_max_value() / 1000
    return summary


def _await_ping_connection(
    publication: Publication,
    subscription: Subscription,
    duty: Duty,
    idle: IdleStrategy,
    clock: Clock,
    timeout_ns: int,
) -> None:
    deadline_ns = clock() + timeout_ns
    while not (publication.is_connected and subscription.image_count > 0):
        if clock() > deadline_ns:
            raise SampleTimeout(
                f"no pong within {timeout_ns / NS_PER_S:g} s: ping publication "
                f"{'connected' if publication.is_connected else 'not connected'}, "
                f"{subscription.image_count} pong images"
            )
        idle.idle(duty())


def run_ping(
    runtime: TransportRuntime,
    publication: Publication,
    subscription: Subscription,
    *,
    count: int,
    warmup: int,
    size: int,
    timeout_ns: int,
    histogram: Histogram,
) -> None:
    """Send ``warmup + count`` pings one at a time, each waiting for its pong, and record the round
    trips after the warm-up in ``histogram`` (nanoseconds). A ping carries its sequence number and
    send time; pongs with another sequence number (left over from an earlier run) are ignored."""
    if size < _PING_HEADER_LENGTH:
        raise ValueError(f"a ping carries at least {_PING_HEADER_LENGTH} bytes: {size}")
    duty = runtime.transport.do_work
    idle = runtime.idle
    clock = runtime.clock
    _await_ping_connection(publication, subscription, duty, idle, clock, timeout_ns)
    message = bytearray(payload(0, size))
    pack = _PING_HEADER.pack_into
    unpack = _PING_HEADER.unpack_from
    perf_counter_ns = time.perf_counter_ns
    record = histogram.record_value
    state = [-1, 0]  # the sequence number awaited, 1 when its pong came back

    def on_pong(buffer: memoryview, header: Header) -> None:
        if len(buffer) >= _PING_HEADER_LENGTH:
            sequence, sent_ns = unpack(buffer, 0)
            if sequence == state[0]:
                rtt_ns = perf_counter_ns() - sent_ns
                if sequence >= warmup:
                    record(max(1, rtt_ns))
                state[1] = 1

    assembler = FragmentAssembler(on_pong)
    poll = subscription.poll
    for sequence in range(warmup + count):
        state[0] = sequence
        state[1] = 0
        pack(message, 0, sequence, perf_counter_ns())
        offer_with_retry(publication, message, duty, idle, clock, timeout_ns)
        deadline_ns = clock() + timeout_ns
        while True:
            work = duty()
            work += poll(assembler, 16)
            if state[1]:
                break
            if clock() > deadline_ns:
                raise SampleTimeout(f"no pong for ping {sequence} within {timeout_ns / NS_PER_S:g} s")
            idle.idle(work)
        idle.reset()


def run_pong(
    runtime: TransportRuntime,
    subscription: Subscription,
    publication: Publication,
    *,
    count: int,
    timeout_ns: int | None,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Echo every ping back until ``count`` are echoed (0: forever), ``stop()`` says so, or no ping
    arrives for ``timeout_ns`` (``None``: wait forever). Returns how many were echoed.

    An echo the publication does not take at once is copied to a bounded queue and retried in the
    next duty cycles; nothing is polled while the queue is not empty."""
    duty = runtime.transport.do_work
    idle = runtime.idle
    clock = runtime.clock
    offer = publication.offer
    pending: deque[bytes] = deque()
    echoed = 0

    def on_ping(buffer: memoryview, header: Header) -> None:
        nonlocal echoed
        if not pending and offer(buffer) > 0:
            echoed += 1
        else:
            assert len(pending) < MAX_PENDING_ECHOES
            pending.append(bytes(buffer))

    assembler = FragmentAssembler(on_ping)
    poll = subscription.poll
    deadline_ns = None if timeout_ns is None else clock() + timeout_ns
    iterations = 0
    while count == 0 or echoed < count:
        work = duty()
        progress = 0
        if pending:
            while pending:
                result = offer(pending[0])
                if result <= 0:
                    _check_result(result, publication)
                    break
                pending.popleft()
                echoed += 1
                progress += 1
        else:
            progress = poll(assembler, min(FRAGMENT_LIMIT, MAX_PENDING_ECHOES))
        if timeout_ns is not None:
            now_ns = clock()
            if progress:
                deadline_ns = now_ns + timeout_ns
            elif deadline_ns is not None and now_ns > deadline_ns:
                raise SampleTimeout(f"no ping for {timeout_ns / NS_PER_S:g} s (echoed {echoed})")
        iterations += 1
        if stop is not None and iterations % 64 == 0 and stop():
            break
        idle.idle(work + progress)
    drain(
        publication,
        duty,
        idle,
        clock,
        timeout_ns if timeout_ns is not None else 5 * NS_PER_S,
        acknowledged=False,
    )
    return echoed


def pong_process(
    ping_channel: str,
    ping_stream: int,
    pong_channel: str,
    pong_stream: int,
    idle: str,
    count: int,
    conn: Connection,
) -> None:
    """A child process's pong (for benchmarks): report the ping channel's bound port over ``conn``,
    echo ``count`` pings (or until told ``"stop"``), then report ``("done", echoed)``."""
    try:
        with TransportRuntime(idle) as runtime:
            subscription = runtime.transport.add_subscription(ping_channel, ping_stream)
            publication = runtime.transport.add_publication(pong_channel, pong_stream)
            assert subscription.local_address is not None
            conn.send(("ready", subscription.local_address[1]))
            echoed = run_pong(
                runtime, subscription, publication, count=count, timeout_ns=60 * NS_PER_S, stop=conn.poll
            )
            conn.send(("done", echoed))
    except Exception as exc:  # reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


# ---------------------------------------------------------------------------------------- throughput


@dataclass(frozen=True, slots=True)
class ThroughputResult:
    """One throughput run: what the publisher offered and what the subscriber received, and the rate."""

    mode: str
    channel: str
    size: int
    idle: str
    offered: int
    received: int
    seconds: float
    messages_per_s: float
    mb_per_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rate(size: int, measured: int, seconds: float) -> tuple[float, float]:
    if seconds <= 0 or measured <= 0:
        return 0.0, 0.0
    messages_per_s = measured / seconds
    return messages_per_s, messages_per_s * size / 1e6


def _counting_handler() -> tuple[Callable[[memoryview, Header], None], list[int]]:
    counter = [0]

    def on_message(buffer: memoryview, header: Header) -> None:
        counter[0] += 1

    return on_message, counter


def throughput_subscriber(
    channel: str, stream: int, idle: str, timeout_s: float, assemble: bool, conn: Connection
) -> None:
    """A child process's subscriber: report ``("ready", port)``, count messages until the publisher's
    end of stream (or ``"stop"`` on ``conn``), then report ``("result", measured, first_ns, last_ns,
    received)``; ``("error", text)`` on failure."""
    try:
        with TransportRuntime(idle) as runtime:
            subscription = runtime.transport.add_subscription(channel, stream)
            assert subscription.local_address is not None
            conn.send(("ready", subscription.local_address[1]))
            handler, counter = _counting_handler()
            # messages that fit one frame need no reassembly: count them straight from the term
            assembler = FragmentAssembler(handler) if assemble else handler
            seen = [0, 0]  # calls, the count at the previous call

            def done() -> bool:
                # ask the pipe when idle (nothing new since the last call) and now and then otherwise
                seen[0] += 1
                idle_now = counter[0] == seen[1]
                seen[1] = counter[0]
                if (idle_now or seen[0] & 1023 == 0) and conn.poll():
                    return True
                return counter[0] > 0 and subscription.image_count == 0

            measured, first_ns, last_ns = receive_messages(
                subscription,
                assembler,
                done,
                runtime.transport.do_work,
                runtime.idle,
                runtime.clock,
                int(timeout_s * NS_PER_S),
            )
            conn.send(("result", measured, first_ns, last_ns, counter[0]))
    except Exception as exc:  # reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


def receive_child_message(conn: Connection, timeout_s: float, what: str) -> tuple[Any, ...]:
    """The next message from a child, bounded; a reported error is raised here."""
    if not conn.poll(timeout_s):
        raise SampleTimeout(f"{what}: the child process said nothing for {timeout_s:g} s")
    try:
        message: tuple[Any, ...] = conn.recv()
    except EOFError:
        raise RuntimeError(f"{what}: the child process exited without a word (see its stderr)") from None
    if message[0] == "error":
        raise RuntimeError(f"{what}: the child process failed: {message[1]}")
    return message


@contextlib.contextmanager
def child_process(target: Callable[..., None], *args: Any) -> Iterator[tuple[Connection, Any]]:
    """Run ``target(*args, conn)`` in a spawned child; yield (our end of the pipe, the process). The
    child is killed (by pid) and reaped on the way out, whatever happened."""
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    process = context.Process(target=target, args=(*args, child_end), daemon=True)
    process.start()
    try:
        child_end.close()
        yield parent_end, process
    finally:
        if process.is_alive():
            process.join(0.5)
        if process.is_alive():
            process.kill()
        process.join(5.0)
        parent_end.close()


def _with_port(channel: str, port: int) -> str:
    uri = ChannelUri.parse(channel)
    endpoint = uri.endpoint
    assert endpoint is not None
    host = f"[{endpoint[0]}]" if ":" in endpoint[0] else endpoint[0]
    return uri.with_params(endpoint=f"{host}:{port}").build()


def measure_throughput(
    *,
    channel: str,
    stream: int,
    size: int,
    seconds: float | None,
    count: int | None,
    idle: str,
    mode: str,
    timeout_s: float,
) -> ThroughputResult:
    """Stream ``size``-byte messages for ``seconds`` (or ``count`` of them) and measure the rate."""
    payloads = PayloadSource([size])
    timeout_ns = int(timeout_s * NS_PER_S)
    if mode == "inprocess":
        with TransportRuntime(idle) as runtime:
            transport = runtime.transport
            subscription = transport.add_subscription(channel, stream)
            if ChannelUri.parse(channel).media == "udp":
                assert subscription.local_address is not None
                channel = _with_port(channel, subscription.local_address[1])
            publication = transport.add_publication(channel, stream)
            handler, counter = _counting_handler()
            assembler = FragmentAssembler(handler)
            poll = subscription.poll
            do_work = transport.do_work
            clock = runtime.clock
            timing = [0, 0, 0]  # first_ns, last_ns, fragments in the first non-empty poll

            def duty() -> int:
                work = do_work()
                received = poll(assembler, FRAGMENT_LIMIT)
                if received:
                    timing[1] = clock()
                    if not timing[0]:
                        timing[0] = timing[1]
                        timing[2] = received
                return work + received

            stop_at = None if seconds is None else clock() + int(seconds * NS_PER_S)
            offered = send_messages(
                publication, payloads, count, duty, runtime.idle, clock, timeout_ns, stop_at_ns=stop_at
            )
            deadline_ns = clock() + timeout_ns
            while counter[0] < offered and clock() < deadline_ns:
                runtime.idle.idle(duty())
            received = counter[0]
            measured = received - timing[2]
            elapsed_s = (timing[1] - timing[0]) / NS_PER_S
    elif mode == "processes":
        if ChannelUri.parse(channel).media != "udp":
            raise AeronSampleError("--mode processes needs a UDP channel (aeron:ipc stays in one process)")
        assemble = size > (ChannelUri.parse(channel).mtu or DEFAULT_MTU) - HEADER_LENGTH
        with child_process(throughput_subscriber, channel, stream, idle, timeout_s, assemble) as (
            conn,
            _process,
        ):
            port = receive_child_message(conn, CHILD_START_TIMEOUT_S, "throughput subscriber")[1]
            channel = _with_port(channel, port)
            with TransportRuntime(idle) as runtime:
                publication = runtime.transport.add_publication(channel, stream)
                clock = runtime.clock
                duty = runtime.transport.do_work
                stop_at = None if seconds is None else clock() + int(seconds * NS_PER_S)
                offered = send_messages(
                    publication, payloads, count, duty, runtime.idle, clock, timeout_ns, stop_at_ns=stop_at
                )
                drain(publication, duty, runtime.idle, clock, timeout_ns)
            # The subscriber has consumed everything (the drain saw it acknowledged) and closing the
            # transport sent end of stream; "stop" also ends a run that sent nothing.
            conn.send("stop")
            _, measured, first_ns, last_ns, received = receive_child_message(
                conn, timeout_s, "throughput subscriber"
            )
            elapsed_s = (last_ns - first_ns) / NS_PER_S
    else:
        raise AeronSampleError(f"--mode must be processes or inprocess, not {mode!r}")
    messages_per_s, mb_per_s = _rate(size, measured, elapsed_s)
    return ThroughputResult(
        mode, channel, size, idle, offered, received, round(elapsed_s, 6), messages_per_s, mb_per_s
    )


# ------------------------------------------------------------------------------------------- options


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part, 10) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of sizes: {text!r}") from None
    if not sizes or len(sizes) > MAX_SIZE_LIST or any(size < 0 for size in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be 1 to {MAX_SIZE_LIST} numbers >= 0: {text!r}")
    return sizes


def _count(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a count must be >= 0: {value}")
    return value


def _stream(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a stream id: {text!r}") from None
    if not -(2**31) <= value < 2**31:
        raise argparse.ArgumentTypeError(f"a stream id is an int32: {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"seconds must be in (0, 86400]: {text}")
    return value


def _loss(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a loss fraction: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"a loss fraction must be in [0, 1): {text}")
    return value


def _common(parser: argparse.ArgumentParser, timeout_help: str) -> None:
    parser.add_argument(
        "--idle",
        choices=IDLE_CHOICES,
        default="selector",
        help="idle strategy between duty cycles (default: selector, which sleeps on the sockets)",
    )
    parser.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_S, metavar="S", help=timeout_help)


def configure(parser: argparse.ArgumentParser) -> None:
    samples = parser.add_subparsers(dest="sample", metavar="<sample>", required=True)

    send = samples.add_parser("send", help="send messages with the reference payloads; print their hash")
    send.add_argument("--channel", default=DEFAULT_CHANNEL, help=f"publication channel ({DEFAULT_CHANNEL})")
    send.add_argument("--stream", type=_stream, default=DEFAULT_STREAM, help=f"stream id ({DEFAULT_STREAM})")
    send.add_argument("--count", type=_count, default=10, metavar="K", help="messages to send (10)")
    send.add_argument(
        "--sizes",
        type=_sizes,
        default=[32],
        metavar="N[,N...]",
        help="payload sizes in bytes, cycled: message i has sizes[i %% len] bytes (32)",
    )
    _common(
        send, f"give up after S seconds without an offer accepted or acknowledged ({DEFAULT_TIMEOUT_S:g})"
    )

    recv = samples.add_parser("recv", help="receive messages; print their count, bytes and hash")
    recv.add_argument("--channel", default=DEFAULT_CHANNEL, help=f"subscription channel ({DEFAULT_CHANNEL})")
    recv.add_argument("--stream", type=_stream, default=DEFAULT_STREAM, help=f"stream id ({DEFAULT_STREAM})")
    recv.add_argument("--count", type=_count, default=10, metavar="K", help="messages to receive (10)")
    recv.add_argument(
        "--loss", type=_loss, default=0.0, metavar="P", help="drop this fraction of arriving DATA (0)"
    )
    recv.add_argument("--seed", type=int, default=None, help="seed of the loss generator (random)")
    _common(recv, f"give up after S seconds without a message, exit 1 ({DEFAULT_TIMEOUT_S:g})")

    ping = samples.add_parser("ping", help="measure round trips to a pong; print percentiles")
    pong = samples.add_parser("pong", help="echo every ping back")
    for sample in (ping, pong):
        sample.add_argument("--ping-channel", default=DEFAULT_PING_CHANNEL, help=f"({DEFAULT_PING_CHANNEL})")
        sample.add_argument("--pong-channel", default=DEFAULT_PONG_CHANNEL, help=f"({DEFAULT_PONG_CHANNEL})")
        sample.add_argument("--ping-stream", type=_stream, default=DEFAULT_PING_STREAM, help="(1002)")
        sample.add_argument("--pong-stream", type=_stream, default=DEFAULT_PONG_STREAM, help="(1003)")
    ping.add_argument(
        "--count", type=_count, default=10_000, metavar="N", help="measured round trips (10000)"
    )
    ping.add_argument("--warmup", type=_count, default=1_000, metavar="N", help="unmeasured first (1000)")
    ping.add_argument(
        "--size", type=_count, default=32, metavar="B", help=f"message bytes, >= {_PING_HEADER_LENGTH} (32)"
    )
    ping.add_argument("--json", action="store_true", help="print only the JSON line")
    _common(ping, f"give up after S seconds without a pong ({DEFAULT_TIMEOUT_S:g})")
    pong.add_argument("--count", type=_count, default=0, metavar="N", help="exit after N echoes (0: never)")
    pong.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="S",
        help="exit 1 after S seconds without a ping (default: wait forever)",
    )
    pong.add_argument(
        "--idle", choices=IDLE_CHOICES, default="selector", help="idle strategy (default: selector)"
    )

    throughput = samples.add_parser("throughput", help="stream messages as fast as possible; print the rate")
    throughput.add_argument(
        "--channel",
        default=DEFAULT_THROUGHPUT_CHANNEL,
        help=f"channel; port 0 = the subscriber picks one ({DEFAULT_THROUGHPUT_CHANNEL})",
    )
    throughput.add_argument("--stream", type=_stream, default=DEFAULT_THROUGHPUT_STREAM, help="(1004)")
    throughput.add_argument("--size", type=_count, default=32, metavar="B", help="message bytes (32)")
    amount = throughput.add_mutually_exclusive_group()
    amount.add_argument(
        "--seconds",
        type=_seconds,
        default=None,
        metavar="S",
        help=f"stream for S seconds ({DEFAULT_SECONDS:g})",
    )
    amount.add_argument("--count", type=_count, default=None, metavar="K", help="stream K messages")
    throughput.add_argument(
        "--mode",
        choices=("processes", "inprocess"),
        default="processes",
        help="subscriber in a child process (default) or both in one duty cycle",
    )
    throughput.add_argument("--json", action="store_true", help="print only the JSON line")
    _common(throughput, f"give up after S seconds without progress ({DEFAULT_TIMEOUT_S:g})")


# ------------------------------------------------------------------------------------------ commands


def _udp_channel(channel: str, option: str) -> str:
    uri = ChannelUri.parse(channel)  # a ChannelUriError is a user error: exit 2
    if uri.media != "udp":
        raise AeronSampleError(f"{option} must be an aeron:udp channel (aeron:ipc stays in one process)")
    return channel


def _timeout_ns(args: argparse.Namespace) -> int:
    return int(args.timeout * NS_PER_S)


def _send(args: argparse.Namespace) -> int:
    channel = _udp_channel(args.channel, "--channel")
    digest = StreamDigest()
    with TransportRuntime(args.idle) as runtime:
        publication = runtime.transport.add_publication(channel, args.stream)
        too_long = [size for size in args.sizes if size > publication.max_message_length]
        if too_long:
            raise AeronSampleError(
                f"--sizes {too_long[0]} exceeds the max message length {publication.max_message_length}"
            )
        duty = runtime.transport.do_work
        timeout_ns = _timeout_ns(args)
        started = time.perf_counter()
        try:
            send_messages(
                publication,
                PayloadSource(args.sizes),
                args.count,
                duty,
                runtime.idle,
                runtime.clock,
                timeout_ns,
                digest=digest,
            )
            drain(publication, duty, runtime.idle, runtime.clock, timeout_ns)
        except SampleTimeout as exc:
            print(f"timed out: {exc}", file=sys.stderr)
            print(digest.json_line())
            return 1
        elapsed = time.perf_counter() - started
    print(f"sent {digest.messages} messages, {digest.bytes} bytes in {elapsed:.3f} s, acknowledged")
    print(digest.json_line())
    return 0


def _recv(args: argparse.Namespace) -> int:
    channel = _udp_channel(args.channel, "--channel")
    digest = StreamDigest(limit=args.count)
    config = TransportConfig(data_loss=args.loss, seed=args.seed)
    with TransportRuntime(args.idle, config) as runtime:
        subscription = runtime.transport.add_subscription(channel, args.stream)
        duty = runtime.transport.do_work
        started = time.perf_counter()
        try:
            receive_messages(
                subscription,
                FragmentAssembler(digest.on_message),
                lambda: digest.is_complete or args.count == 0,
                duty,
                runtime.idle,
                runtime.clock,
                _timeout_ns(args),
            )
        except SampleTimeout as exc:
            print(f"timed out: {exc}; received {digest.messages} of {args.count}", file=sys.stderr)
            print(digest.json_line())
            return 1
        elapsed = time.perf_counter() - started
        linger_ns = int(min(args.timeout, RECV_LINGER_S) * NS_PER_S)
        _linger_until_end_of_stream(subscription, duty, runtime.idle, runtime.clock, linger_ns)
        drops = runtime.transport.counters.data_loss_drops
    loss = f", {drops} datagrams dropped on purpose" if args.loss else ""
    print(f"received {digest.messages} messages, {digest.bytes} bytes in {elapsed:.3f} s{loss}")
    print(digest.json_line())
    return 0


def format_latency(title: str, summary: dict[str, float | int]) -> str:
    """A few lines: the round-trip percentiles in microseconds."""
    lines = [f"{title}: {summary['count']} round trips, microseconds"]
    for name in ("min", "mean", "p50", "p90", "p99", "p99_9", "max"):
        lines.append(f"  {name.replace('_', '.'):>6}  {summary[f'{name}_us']:>10.1f}")
    return "\n".join(lines)


def _ping(args: argparse.Namespace) -> int:
    if args.size < _PING_HEADER_LENGTH:
        raise AeronSampleError(f"--size must be at least {_PING_HEADER_LENGTH} (sequence and timestamp)")
    ping_channel = _udp_channel(args.ping_channel, "--ping-channel")
    pong_channel = _udp_channel(args.pong_channel, "--pong-channel")
    histogram = new_histogram()
    with TransportRuntime(args.idle) as runtime:
        subscription = runtime.transport.add_subscription(pong_channel, args.pong_stream)
        publication = runtime.transport.add_publication(ping_channel, args.ping_stream)
        if args.size > publication.max_message_length:
            raise AeronSampleError(f"--size exceeds the max message length {publication.max_message_length}")
        try:
            run_ping(
                runtime,
                publication,
                subscription,
                count=args.count,
                warmup=args.warmup,
                size=args.size,
                timeout_ns=_timeout_ns(args),
                histogram=histogram,
            )
        except SampleTimeout as exc:
            print(f"timed out: {exc}", file=sys.stderr)
            return 1
    summary: dict[str, Any] = {**latency_summary(histogram), "size": args.size, "idle": args.idle}
    if not args.json:
        print(format_latency(f"ping {ping_channel} -> pong {pong_channel}", summary))
    print(json.dumps(summary))
    return 0


def _pong(args: argparse.Namespace) -> int:
    ping_channel = _udp_channel(args.ping_channel, "--ping-channel")
    pong_channel = _udp_channel(args.pong_channel, "--pong-channel")
    with TransportRuntime(args.idle) as runtime:
        subscription = runtime.transport.add_subscription(ping_channel, args.ping_stream)
        publication = runtime.transport.add_publication(pong_channel, args.pong_stream)
        timeout_ns = None if args.timeout is None else int(args.timeout * NS_PER_S)
        try:
            echoed = run_pong(runtime, subscription, publication, count=args.count, timeout_ns=timeout_ns)
        except SampleTimeout as exc:
            print(f"timed out: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
    print(json.dumps({"echoed": echoed}))
    return 0


def format_throughput(result: ThroughputResult) -> str:
    return (
        f"throughput ({result.mode}, {result.idle} idle) of {result.size}-byte messages on {result.channel}: "
        f"{result.messages_per_s:,.0f} msgs/s, {result.mb_per_s:.2f} MB/s "
        f"({result.received} of {result.offered} received, measured over {result.seconds:.3f} s)"
    )


def _throughput(args: argparse.Namespace) -> int:
    ChannelUri.parse(args.channel)
    seconds = args.seconds if args.seconds is not None or args.count is not None else DEFAULT_SECONDS
    try:
        result = measure_throughput(
            channel=args.channel,
            stream=args.stream,
            size=args.size,
            seconds=seconds,
            count=args.count,
            idle=args.idle,
            mode=args.mode,
            timeout_s=args.timeout,
        )
    except SampleTimeout as exc:
        print(f"timed out: {exc}", file=sys.stderr)
        return 1
    if not args.json:
        print(format_throughput(result))
    print(json.dumps(result.to_dict()))
    return 0


_SAMPLES: Final[dict[str, Callable[[argparse.Namespace], int]]] = {
    "send": _send,
    "recv": _recv,
    "ping": _ping,
    "pong": _pong,
    "throughput": _throughput,
}


def run(args: argparse.Namespace) -> int:
    return _SAMPLES[args.sample](args)
