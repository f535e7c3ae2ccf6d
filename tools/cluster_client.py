"""``python -m tools cluster client``: a client session that sends messages to an echo service and waits
for every echo.

::

    python -m tools cluster client --ingress-endpoints 0=127.0.0.1:20002,1=... [--count K]
        [--sizes S1,S2,...] [--window W] [--rate R] [--timeout T] [--egress-channel C] [--json]

Theory of operation
-------------------
``run_client`` connects an ``AeronCluster`` (``cluster.client.aeron_cluster``) over a transport, then
runs one loop until every message is echoed, the time runs out or the session ends:

1. **Offer** while fewer than ``window`` messages are in flight (offered, not yet echoed; after a leader
   change only those offered since count, see below) and, with a ``rate``, the next message's slot has
   come: message ``i`` is due ``i / rate`` seconds after the
   first; a late one goes as soon as the window lets it (the schedule is kept, so the rate is kept on
   average). A refused offer (back pressure, an ingress not yet connected after a leader change) is
   tried again on the next pass. Message ``i``'s payload is ``payload(i, size)``: byte ``j`` is
   ``(i + j) % 251``, the sizes cycling through the list (``tools.aeron_cmd.PayloadSource``).
2. **Duty cycle**: the transport's ``do_work`` (or the invoker given, in tests a step of the simulated
   world), which sends what was offered and reads what arrived.
3. **Poll the egress**. An echo service answers in order, so echoes are matched to the messages in
   flight in order: the echo of the oldest message in flight must be that message's payload. An echo
   that equals a later message in flight means the ones before it will never be echoed -- they are
   counted as lost (see below) -- and an echo that equals no message in flight is an error. Each
   matched echo records its round trip (offer to echo, on the transport's clock) in an HdrHistogram
   and goes into the SHA-256, so the hash is over the echoed payloads in the order the echoes came.
   A ``NewLeader`` is reported and the session goes on with the new leader (``AeronCluster`` moves
   its ingress); a ``SessionClosed`` ends the run with an error.
4. **Idle**: with the transport's selector idle strategy (``PacedSelectorIdleStrategy``) an idle
   client sleeps in the kernel until a datagram arrives -- or, with a rate, until the next message is
   due, to the microsecond -- so it does not burn a core while it waits.

**At most once.** Aeron's ingress is at-most-once: a message in flight when the leader changes may
never be committed (the old leader had not appended or replicated it), and a new leader's service
answers only what was committed after it leads. ``AeronCluster`` does not resend, and neither does
this client: such messages are lost, the run goes on, and the result says so honestly
(``echoed < sent``, exit status 1). So that they cannot hold the window shut, the messages offered
before a NewLeader stop counting against the window when it arrives; their echoes are still matched if
they come, and the first echo of a later message marks them lost. The run ends when ``timeout``
seconds pass with no progress (no offer taken, no echo), so a lost echo costs at most one timeout at
the end.

Output (``run`` in ``tools.cluster_cmd``): stdout has JSON lines only -- ``{"event": "connected", ...}``
once connected, ``{"event": "newLeader", ...}`` per leader change, and as the last line the result,
``{"sent", "echoed", "sha256", "newLeaders", "errors", "p50_us", "p99_us"}``. stderr has a readable line
per error, and, without ``--json``, a short summary. Exit status 0 only when every message was echoed
with no error; 1 otherwise; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from cluster.client.aeron_cluster import AeronCluster, ClusterClientError
from cluster.client.protocol import (
    ClientProtocolError,
    Event,
    Message,
    NewLeader,
    SessionClosed,
    parse_ingress_endpoints,
)
from cluster.transport.agent import PRECISE_WAIT_NS, IdleStrategy, NoOpIdleStrategy, SelectorIdleStrategy
from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.errors import ChannelUriError
from cluster.transport.logbuffer import CLOSED, MAX_POSITION_EXCEEDED
from cluster.transport.uri import ChannelUri
from tools.aeron_cmd import PayloadSource, new_histogram

__all__ = [
    "DEFAULT_COUNT",
    "DEFAULT_EGRESS_CHANNEL",
    "DEFAULT_SIZES",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_WINDOW",
    "ClientResult",
    "ClientSettings",
    "ClusterClientUsageError",
    "PacedSelectorIdleStrategy",
    "RoundTripRecorder",
    "configure",
    "run",
    "run_client",
]

DEFAULT_COUNT: Final = 1000
DEFAULT_SIZES: Final = (32,)
DEFAULT_WINDOW: Final = 64
DEFAULT_TIMEOUT_S: Final = 10.0
DEFAULT_EGRESS_CHANNEL: Final = "aeron:udp?endpoint=127.0.0.1:0"
MAX_WINDOW: Final = 65_536
MAX_SIZE: Final = 1 << 20
MAX_SIZES: Final = 1024
FRAGMENT_LIMIT: Final = 256
KEEP_ALIVE_INTERVAL_NS: Final = 1_000_000_000
CLOSE_LINGER_NS: Final = 100_000_000
"""How long the duty cycle runs after the close request, so it leaves before the transport closes."""
MAX_LOST_SHOWN: Final = 10
NS_PER_S: Final = 1_000_000_000


class ClusterClientUsageError(ValueError):
    """Bad arguments: the dispatcher prints ``error: ...`` and exits 2."""

    is_user_error = True


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """What to send: ``count`` messages (fewer if ``duration_s`` passes first), ``sizes`` cycling, at most
    ``window`` in flight, ``rate`` per second (0: as fast as the window allows); ``timeout_s`` without
    progress ends the run (it is also the connect timeout)."""

    count: int = DEFAULT_COUNT
    sizes: tuple[int, ...] = DEFAULT_SIZES
    window: int = DEFAULT_WINDOW
    rate: float = 0.0
    timeout_s: float = DEFAULT_TIMEOUT_S
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ClusterClientUsageError(f"--count {self.count}: must be 0 or more")
        if not self.sizes or len(self.sizes) > MAX_SIZES or not all(0 <= s <= MAX_SIZE for s in self.sizes):
            raise ClusterClientUsageError(
                f"--sizes {','.join(map(str, self.sizes))}: 1 to {MAX_SIZES} sizes of 0 to {MAX_SIZE} bytes"
            )
        if not 1 <= self.window <= MAX_WINDOW:
            raise ClusterClientUsageError(f"--window {self.window}: must be 1 to {MAX_WINDOW}")
        if not (math.isfinite(self.rate) and self.rate >= 0):
            raise ClusterClientUsageError(f"--rate {self.rate}: must be 0 (no limit) or a positive rate")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ClusterClientUsageError(f"--timeout {self.timeout_s}: must be a positive number of seconds")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ClusterClientUsageError(f"duration {self.duration_s}: must be positive")


@dataclass(frozen=True, slots=True)
class ClientResult:
    """What a run did. Latencies are round trips (offer to echo) in microseconds, ``None`` with no echo;
    ``elapsed_s`` runs from the first offer to the last echo."""

    count: int
    sent: int
    echoed: int
    lost: int
    sha256: str
    new_leaders: int
    errors: int
    p50_us: float | None
    p99_us: float | None
    p99_9_us: float | None
    max_us: float | None
    elapsed_s: float

    @property
    def ok(self) -> bool:
        """Every message sent and echoed, and no error."""
        return self.errors == 0 and self.sent == self.echoed == self.count

    @property
    def echo_rate(self) -> float:
        """Echoes per second over ``elapsed_s``."""
        return self.echoed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """The command's last line."""
        return {
            "sent": self.sent,
            "echoed": self.echoed,
            "sha256": self.sha256,
            "newLeaders": self.new_leaders,
            "errors": self.errors,
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
        }


class PacedSelectorIdleStrategy(SelectorIdleStrategy):
    """The selector idle strategy, plus ``idle_until``: wait for a datagram or a deadline, whichever
    comes first (to the microsecond when it is near). Give it to the ``Transport`` (``idle=``) so it
    knows the sockets."""

    __slots__ = ()

    def idle_until(self, wait_ns: int) -> None:
        """Wait at most ``wait_ns`` (0 or less: not at all) for a registered socket to be readable."""
        if wait_ns <= 0:
            return
        if wait_ns >= PRECISE_WAIT_NS:
            self.idle(0)
            return
        self.wait(wait_ns)


# ----------------------------------------------------------------------------------------------- run


def _latency_us(histogram: Any, percentile: float) -> float | None:
    if histogram.get_total_count() == 0:
        return None
    return float(histogram.get_value_at_percentile(percentile)) / 1000


def run_client(
    transport: Transport,
    settings: ClientSettings,
    *,
    egress_channel: str,
    ingress_endpoints: str | None = None,
    ingress_channel: str = "aeron:udp",
    idle: IdleStrategy | None = None,
    duty: Callable[[], int] | None = None,
    on_event: Callable[[dict[str, Any]], object] = lambda record: None,
    on_error: Callable[[str], object] = lambda text: None,
) -> ClientResult:
    """Connect, send ``settings.count`` messages and wait for their echoes (the module docstring).

    ``duty`` is one duty cycle (default ``transport.do_work``) returning its work count; ``idle`` is
    told each pass's work (default: none, for a ``duty`` that drives a simulated world). Connected and
    NewLeader events go to ``on_event`` as JSON objects, readable error lines to ``on_error``. A connect
    that fails is an error of the result (nothing sent), not an exception."""
    duty = transport.do_work if duty is None else duty
    idle = NoOpIdleStrategy() if idle is None else idle
    paced = idle if isinstance(idle, PacedSelectorIdleStrategy) else None
    clock = transport.clock.nano_time
    timeout_ns = round(settings.timeout_s * NS_PER_S)

    def idle_duty() -> int:  # connect's invoker: a duty cycle, then sleep on the sockets if it did nothing
        work = duty()
        idle.idle(work)
        return work

    try:
        cluster = AeronCluster.connect(
            transport,
            egress_channel=egress_channel,
            ingress_endpoints=ingress_endpoints,
            ingress_channel=ingress_channel,
            message_timeout_ns=timeout_ns,
            invoker=duty if paced is None else idle_duty,
        )
    except ClusterClientError as error:
        on_error(str(error))
        return ClientResult(
            settings.count, 0, 0, 0, hashlib.sha256().hexdigest(), 0, 1, None, None, None, None, 0.0
        )
    on_event(
        {
            "event": "connected",
            "leaderMemberId": cluster.leader_member_id,
            "leadershipTermId": cluster.leadership_term_id,
            "clusterSessionId": cluster.cluster_session_id,
        }
    )
    try:
        return _exchange(cluster, settings, duty, idle, paced, clock, on_event, on_error)
    finally:
        cluster.close()
        deadline_ns = clock() + CLOSE_LINGER_NS
        while clock() < deadline_ns:
            idle.idle(duty())


def _exchange(
    cluster: AeronCluster,
    settings: ClientSettings,
    duty: Callable[[], int],
    idle: IdleStrategy,
    paced: PacedSelectorIdleStrategy | None,
    clock: Callable[[], int],
    on_event: Callable[[dict[str, Any]], object],
    on_error: Callable[[str], object],
) -> ClientResult:
    count, window = settings.count, settings.window
    timeout_ns = round(settings.timeout_s * NS_PER_S)
    interval_ns = round(NS_PER_S / settings.rate) if settings.rate else 0
    payload_cycle = iter(PayloadSource(settings.sizes))  # message i's payload is the i-th it gives
    next_payload: memoryview | None = None  # the next message's, taken from the cycle, not yet sent
    histogram = new_histogram()
    recorder = RoundTripRecorder(histogram)
    record = recorder.record
    sha256 = hashlib.sha256()
    # (message index, offer time, payload), oldest first: the payload kept to match its echo with
    in_flight: deque[tuple[int, int, memoryview]] = deque()
    lost: list[int] = []
    offer = cluster.offer
    start_ns = clock()
    stop_sending_ns = (
        None if settings.duration_s is None else start_ns + round(settings.duration_s * NS_PER_S)
    )
    next_send_ns = start_ns
    progress_ns = ingress_ns = start_ns
    first_offer_ns = last_echo_ns = start_ns
    echoed = 0
    term_start = 0  # the first message sent since the last leader change
    state = {"next": 0, "errors": 0, "new_leaders": 0, "ended": 0}

    def on_egress(event: Event) -> None:
        nonlocal progress_ns, last_echo_ns, echoed, term_start
        if type(event) is Message:
            payload = event.payload
            now_ns = clock()
            if in_flight and in_flight[0][2] == payload:
                sent_ns = in_flight.popleft()[1]
            else:
                later = next((k for k, (_, _, p) in enumerate(in_flight) if p == payload), None)
                if later is None:
                    state["errors"] += 1
                    expected = f"message {in_flight[0][0]}" if in_flight else "no message in flight"
                    on_error(
                        f"echo {echoed + 1}: {len(payload)} bytes that match no message in flight "
                        f"(expected {expected})"
                    )
                    return
                lost.extend(in_flight.popleft()[0] for _ in range(later))
                sent_ns = in_flight.popleft()[1]
            round_trip_ns = now_ns - sent_ns
            record(round_trip_ns if round_trip_ns > 0 else 1)
            sha256.update(payload)
            echoed += 1
            progress_ns = last_echo_ns = now_ns
        elif isinstance(event, NewLeader):
            state["new_leaders"] += 1
            term_start = state["next"]
            on_event(
                {
                    "event": "newLeader",
                    "leaderMemberId": event.leader_member_id,
                    "leadershipTermId": event.leadership_term_id,
                    "clusterSessionId": cluster.cluster_session_id,
                }
            )
        elif isinstance(event, SessionClosed):
            state["errors"] += 1
            state["ended"] = 1
            on_error(f"the cluster closed the session: {event.detail or 'no detail'}")

    def in_window(index: int) -> bool:
        """Whether message ``index`` may go: the window counts the messages in flight that were sent
        since the last leader change (module docstring)."""
        head = in_flight[0][0] if in_flight else index
        return index - max(head, term_start) < window

    try:
        while True:
            work = 0
            now_ns = clock()
            index = state["next"]
            if stop_sending_ns is not None and now_ns >= stop_sending_ns:
                count = index  # the duration is over: what was sent is all there is
            while index < count and now_ns >= next_send_ns:
                head = in_flight[0][0] if in_flight else index  # in_window(index), inline
                if index - (head if head > term_start else term_start) >= window:
                    break
                if next_payload is None:
                    next_payload = next(payload_cycle)  # message ``index``'s: the cycle runs in step
                payload = next_payload
                result = offer(payload)
                if result <= 0:
                    if result in (CLOSED, MAX_POSITION_EXCEEDED):
                        state["errors"] += 1
                        state["ended"] = 1
                        what = "closed" if result == CLOSED else "full"
                        on_error(f"message {index}: the leader's ingress publication is {what}")
                    break
                if index == 0:
                    first_offer_ns = now_ns
                in_flight.append((index, now_ns, payload))
                next_payload = None
                index += 1
                work += 1
                progress_ns = ingress_ns = now_ns
                next_send_ns = next_send_ns + interval_ns if interval_ns else now_ns
            state["next"] = index
            work += duty()
            if not cluster.is_closed:
                work += cluster.poll_egress(on_egress, FRAGMENT_LIMIT)
            if state["ended"] or cluster.is_closed or (index >= count and not in_flight):
                break
            now_ns = clock()
            if now_ns - progress_ns > timeout_ns:
                on_error(
                    f"no progress for {settings.timeout_s:g} s: {len(in_flight)} messages in flight not "
                    f"echoed, {count - index} not sent"
                )
                break
            if now_ns - ingress_ns > KEEP_ALIVE_INTERVAL_NS and cluster.send_keep_alive():
                ingress_ns = now_ns
            if work:
                idle.idle(work)
            elif paced is not None and index < count and in_window(index):
                paced.idle_until(next_send_ns - now_ns)  # a rate holds the next message back
            else:
                idle.idle(0)
    except ClusterClientError as error:  # the session cannot go on (a leader it has no endpoint for)
        state["errors"] += 1
        on_error(str(error))
    recorder.flush()
    lost.extend(index for index, _, _ in in_flight)
    if lost:
        shown = ", ".join(map(str, lost[:MAX_LOST_SHOWN])) + (", ..." if len(lost) > MAX_LOST_SHOWN else "")
        on_error(
            f"{len(lost)} messages sent were never echoed ({shown}); ingress is at most once, so a "
            "message in flight at a leader change may be lost"
        )
    return ClientResult(
        count=settings.count,
        sent=state["next"],
        echoed=echoed,
        lost=len(lost),
        sha256=sha256.hexdigest(),
        new_leaders=state["new_leaders"],
        errors=state["errors"],
        p50_us=_latency_us(histogram, 50.0),
        p99_us=_latency_us(histogram, 99.0),
        p99_9_us=_latency_us(histogram, 99.9),
        max_us=None if echoed == 0 else histogram.get_max_value() / 1000,
        elapsed_s=max(0, last_echo_ns - first_offer_ns) / NS_PER_S,
    )


class RoundTripRecorder:
    """``HdrHistogram.record_value`` for the round trips of a run, at a quarter of its cost: the same
    counts index, computed inline (``record_value`` spends five method calls on it), while the total,
    the smallest and the largest value wait in the recorder until ``flush`` adds them to the histogram.
    Read the histogram only after ``flush``. Values below 0 or beyond the histogram's range are dropped,
    as ``record_value`` drops them."""

    __slots__ = ("_histogram", "_state", "record")

    def __init__(self, histogram: Any) -> None:
        self._histogram = histogram
        counts = histogram.counts
        counts_len = histogram.counts_len
        mask = histogram.sub_bucket_mask
        unit_magnitude = histogram.unit_magnitude
        # HdrHistogram's bucket index is 64 - clz(value | mask) - unit_magnitude - (half magnitude + 1);
        # 64 - clz(v) is v.bit_length() for the 64-bit values it takes
        bucket_base = unit_magnitude + histogram.sub_bucket_half_count_magnitude + 1
        half_magnitude = histogram.sub_bucket_half_count_magnitude
        half_count = histogram.sub_bucket_half_count
        state = self._state = [0, sys.maxsize, 0]  # recorded since the last flush, smallest, largest

        def record(value: int) -> None:
            if value < 0:
                return
            bucket = (value | mask).bit_length() - bucket_base
            index = ((bucket + 1) << half_magnitude) + (value >> (bucket + unit_magnitude)) - half_count
            if index >= counts_len:
                return
            counts[index] += 1
            state[0] += 1
            if value < state[1]:
                state[1] = value
            if value > state[2]:
                state[2] = value

        self.record: Callable[[int], None] = record
        """Record one value (nanoseconds), as ``histogram.record_value(value)`` would."""

    def flush(self) -> None:
        """Add the total, the smallest and the largest value recorded since the last flush to the
        histogram, which then reads as if ``record_value`` had taken every value."""
        state = self._state
        histogram = self._histogram
        if state[0]:
            histogram.total_count += state[0]
            histogram.min_value = min(histogram.min_value, state[1])
            histogram.max_value = max(histogram.max_value, state[2])
        state[:] = [0, sys.maxsize, 0]


# ------------------------------------------------------------------------------------- command line


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ClusterClientUsageError(f"--sizes {text!r}: expected sizes in bytes, e.g. 32,2000") from None
    return sizes


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ingress-endpoints",
        required=True,
        metavar="E",
        help="the members' ingress endpoints, Aeron's form: 0=host:port,1=host:port,...",
    )
    parser.add_argument(
        "--egress-channel",
        default=DEFAULT_EGRESS_CHANNEL,
        metavar="C",
        help="the channel the cluster answers on; port 0 picks a free one "
        f"(default {DEFAULT_EGRESS_CHANNEL})",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=DEFAULT_COUNT,
        metavar="K",
        help=f"messages to send (default {DEFAULT_COUNT})",
    )
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, DEFAULT_SIZES)),
        metavar="S1,S2,...",
        help="message sizes in bytes, cycled; byte j of message i is (i + j) %% 251 "
        f"(default {','.join(map(str, DEFAULT_SIZES))})",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        metavar="W",
        help=f"at most W messages in flight, sent and not yet echoed (default {DEFAULT_WINDOW})",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        metavar="R",
        help="messages per second; 0 sends as fast as the window allows (default 0)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="T",
        help="seconds without progress (no message taken, no echo) that end the run, and the connect "
        f"timeout (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="machine output only: no human summary on stderr (stdout is JSON lines either way, the "
        "result last)",
    )


def _egress_host(channel: str) -> str:
    try:
        uri = ChannelUri.parse(channel)
    except ChannelUriError as error:
        raise ClusterClientUsageError(f"--egress-channel {channel!r}: {error}") from None
    endpoint = uri.params.get("endpoint", "")
    host, sep, port = endpoint.rpartition(":")
    if uri.media != "udp" or not sep or not host or not port.isdigit():
        raise ClusterClientUsageError(
            f"--egress-channel {channel!r}: expected aeron:udp?endpoint=host:port (port 0: any free port)"
        )
    return host


def _print_json(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def _print_error(text: str) -> None:
    print(f"cluster client: {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    settings = ClientSettings(
        count=args.count,
        sizes=_sizes(args.sizes),
        window=args.window,
        rate=args.rate,
        timeout_s=args.timeout,
    )
    try:
        parse_ingress_endpoints(args.ingress_endpoints)
    except ClientProtocolError as error:
        raise ClusterClientUsageError(f"--ingress-endpoints: {error}") from None
    host = _egress_host(args.egress_channel)
    idle = PacedSelectorIdleStrategy()
    try:
        transport = Transport(config=TransportConfig(bind_host=host), idle=idle)
        try:
            result = run_client(
                transport,
                settings,
                egress_channel=args.egress_channel,
                ingress_endpoints=args.ingress_endpoints,
                idle=idle,
                on_event=_print_json,
                on_error=_print_error,
            )
        finally:
            transport.close()
    finally:
        idle.close()
    if not args.json:
        p50 = "-" if result.p50_us is None else f"{result.p50_us:.0f} us"
        p99 = "-" if result.p99_us is None else f"{result.p99_us:.0f} us"
        print(
            f"cluster client: {result.echoed} of {result.sent} sent echoed ({settings.count} to send), "
            f"{result.errors} errors, {result.new_leaders} new leaders; round trip p50 {p50}, p99 {p99}; "
            f"{result.echo_rate:,.0f} echoes/s",
            file=sys.stderr,
            flush=True,
        )
    _print_json(result.to_json())
    return 0 if result.ok else 1
