"""Publications and subscriptions end to end: the properties of Aeron's transport (``docs/transport.md``).

Almost everything runs over ``SimNetwork`` in virtual time, so a 10-second partition costs milliseconds
and every run is decided by its seed; a failing hypothesis example prints the seed and link that
reproduce it. What goes over the wire is checked from the network's tap, parsed independently of the
transport's own codecs (``support.transport_sim.Wire``). A few tests use real UDP on 127.0.0.1 where
the point is the socket path.

Sections follow ``docs/transport.md``: handshake, flow control, loss and retransmission, positions,
terms and fragmentation, then the client API (claims, controlled poll, images), exclusive publications started
at a position, multi-destination-cast and IPC.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.transport_sim import (
    BEGIN,
    DATA,
    END,
    EOS,
    MS,
    NAK,
    NAK_HEADER,
    PAD,
    SEND_SETUP,
    SETUP,
    SM,
    SM_EOS,
    US,
    Collector,
    Frame,
    Producer,
    S,
    Sim,
    Wire,
    align32,
    image_log,
    message,
    poller,
    position_of,
    run_real,
)

from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.errors import MessageTooLongError
from cluster.transport.image import ControlledAction, Image, Subscription
from cluster.transport.logbuffer import (
    ADMIN_ACTION,
    BACK_PRESSURED,
    CLOSED,
    MAX_POSITION_EXCEEDED,
    NOT_CONNECTED,
    BufferClaim,
    Header,
)
from cluster.transport.media import UdpNetwork
from cluster.transport.publication import Publication
from cluster.transport.simnet import LinkConfig, SimNetworkStats

A_HOST, B_HOST, C_HOST, D_HOST = "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"
CHANNEL = f"aeron:udp?endpoint={B_HOST}:40456"
TERM = 64 * 1024
WINDOW = TERM // 2  # receiver window: min(128 KiB, term / 2); publication window: term / 2
MTU = 1408
STREAM = 7

LOSSY = LinkConfig(loss=0.1, duplicate=0.05, jitter_ns=200 * US, reorder=0.05)


def unicast(sim: Sim, channel: str = CHANNEL, sub_channel: str = CHANNEL, **hooks: object) -> Pair:
    a = sim.transport(A_HOST)
    b = sim.transport(B_HOST)
    sub = b.add_subscription(sub_channel, STREAM, **hooks)  # type: ignore[arg-type]
    pub = a.add_publication(channel, STREAM)
    return Pair(a, b, pub, sub)


@dataclass
class Pair:
    a: Transport
    b: Transport
    pub: Publication
    sub: Subscription


def sent_position(frame: Frame, initial_term_id: int, term_length: int = TERM) -> int:
    return position_of(frame.fields["term_id"], frame.fields["term_offset"], initial_term_id, term_length)


def assert_flow_control_respected(wire: Wire, initial_term_id: int, sender: str, receiver: str) -> None:
    """No DATA frame ever ends beyond the furthest ``SM position + receiver window`` sent before it
    (``docs/transport.md``, "Flow control")."""
    limit = -1
    data_frames = 0
    for frame in wire.frames:
        if frame.type == SM and frame.source[0] == receiver and frame.destination[0] == sender:
            sm_limit = sent_position(frame, initial_term_id) + frame.fields["receiver_window"]
            limit = max(limit, sm_limit)
        elif frame.type == DATA and frame.frame_length > 0 and frame.source[0] == sender:
            data_frames += 1
            end = sent_position(frame, initial_term_id) + align32(frame.frame_length)
            assert end <= limit, f"DATA ending at {end} sent beyond the flow-control limit {limit}"
    assert data_frames > 0


# ===================================================================== 1. under a hostile simulated network


@dataclass(frozen=True)
class Trace:
    delivered: tuple[tuple[tuple[bytes, int], ...], ...]  # per subscription: (payload, position)
    stats: SimNetworkStats
    end_ns: int
    frames: int


def stream_under(seed: int, link: LinkConfig, sizes: list[int], count: int, subscriptions: int = 2) -> Trace:
    """Send ``count`` messages over ``link`` to ``subscriptions`` subscriptions; check the wire as it goes."""
    with Sim(seed, link) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        collectors = [Collector() for _ in range(subscriptions)]
        subs = [b.add_subscription(CHANNEL, STREAM) for _ in collectors]
        pub = a.add_publication(CHANNEL, STREAM)
        producer = Producer(pub, [message(i, sizes[i % len(sizes)]) for i in range(count)])
        polls = [poller(sub, c, 7) for sub, c in zip(subs, collectors, strict=True)]
        done = sim.run_until(
            lambda: all(len(c.messages) >= count for c in collectors), 60 * S, [producer, *polls]
        )
        assert done, f"seed={seed} {link}: delivered {[len(c.messages) for c in collectors]} of {count}"
        for c in collectors:
            assert c.payloads == producer.messages, f"seed={seed} {link}: not exactly once in order"
            assert [m.position for m in c.messages] == producer.positions
        assert_flow_control_respected(sim.wire, pub.initial_term_id, A_HOST, B_HOST)
        return Trace(
            tuple(tuple((m.payload, m.position) for m in c.messages) for c in collectors),
            sim.net.stats(),
            sim.now_ns,
            len(sim.wire.frames),
        )


links = st.builds(
    LinkConfig,
    loss=st.sampled_from([0.0, 0.01, 0.1, 0.25]),
    duplicate=st.sampled_from([0.0, 0.05, 0.2]),
    delay_ns=st.sampled_from([1 * US, 50 * US, 2 * MS]),
    jitter_ns=st.sampled_from([0, 100 * US, 1 * MS]),
    reorder=st.sampled_from([0.0, 0.05, 0.2]),
)
message_sizes = st.lists(st.integers(0, 5 * (MTU - 32)), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), link=links, sizes=message_sizes)
def test_every_subscriber_gets_every_message_exactly_once_in_order(
    seed: int, link: LinkConfig, sizes: list[int]
) -> None:
    stream_under(seed, link, sizes, count=120)


def test_every_message_exactly_once_over_many_terms_on_a_bad_network() -> None:
    # 0..8 KiB messages (8 KiB = term / 8, the longest): well over 10 terms of 64 KiB
    link = LinkConfig(loss=0.2, duplicate=0.1, jitter_ns=500 * US, reorder=0.1)
    trace = stream_under(7, link, [0, 1, 31, 32, 1376, 1377, 4000, 8192], count=360)
    assert trace.delivered[0][-1][1] > 10 * TERM


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_seed_gives_the_same_run(seed: int) -> None:
    sizes = [0, 100, 3000, 7000]
    first = stream_under(seed, LOSSY, sizes, count=150)
    second = stream_under(seed, LOSSY, sizes, count=150)
    assert first == second
    assert first.stats.dropped_loss > 0 and first.stats.duplicated > 0
    other = stream_under(seed + 100, LOSSY, sizes, count=150)
    assert (other.stats, other.end_ns) != (first.stats, first.end_ns)


@pytest.mark.parametrize(
    ("blocked", "one_way"),
    [((A_HOST, B_HOST), False), ((A_HOST, B_HOST), True), ((B_HOST, A_HOST), True)],
    ids=["symmetric", "data-direction", "status-direction"],
)
def test_partition_that_heals_loses_nothing(blocked: tuple[str, str], one_way: bool) -> None:
    with Sim(11, LOSSY) as sim:
        pair = unicast(sim)
        collector = Collector()
        producer = Producer(pair.pub, [message(i, [10, 900, 3000][i % 3]) for i in range(400)])
        sim.add(producer, poller(pair.sub, collector))
        producer.limit = 100
        assert sim.run_until(lambda: len(collector.messages) == 100)
        sim.net.partition(*blocked, one_way=one_way)
        producer.limit = 400
        sim.run_for(2 * S)  # shorter than the 5 s connection and 10 s image liveness timeouts
        assert producer.index < 400, "the publication was held back by flow control"
        assert pair.pub.is_connected
        sim.net.heal()
        assert sim.run_until(lambda: len(collector.messages) == 400)
        assert collector.payloads == producer.messages
        assert len(pair.sub.images) == 1


def test_partition_beyond_liveness_makes_the_image_unavailable_and_the_publication_disconnected() -> None:
    with Sim(12, LinkConfig(loss=0.05)) as sim:
        events: list[tuple[str, int, Image]] = []
        pair = unicast(
            sim,
            on_available_image=lambda image: events.append(("available", sim.now_ns, image)),
            on_unavailable_image=lambda image: events.append(("unavailable", sim.now_ns, image)),
        )
        collector = Collector()
        producer = Producer(pair.pub, [message(i, 500) for i in range(300)])
        sim.add(producer, poller(pair.sub, collector))
        producer.limit = 100
        assert sim.run_until(lambda: len(collector.messages) == 100)
        sim.net.partition(A_HOST, B_HOST)
        start_ns = sim.now_ns
        disconnected: list[int] = []

        def watch() -> int:
            if not pair.pub.is_connected and not disconnected:
                disconnected.append(sim.now_ns - start_ns)
            return 0

        producer.limit = 200
        assert sim.run_until(lambda: len(events) == 2, 11 * S, [watch])
        kind, at_ns, image = events[1]
        assert kind == "unavailable" and not image.is_end_of_stream
        assert 9_800 * MS <= at_ns - start_ns <= 10_200 * MS  # image liveness: 10 s without a frame
        assert 4_800 * MS <= disconnected[0] <= 5_200 * MS  # publication: 5 s without a status message
        assert pair.sub.images == []
        # once healed the publication's SETUPs make a new image at the sender's position: what was sent
        # into the partition is gone, what comes after arrives, and nothing twice or out of order
        sim.net.heal()
        producer.limit = 300
        assert sim.run_until(lambda: producer.done and pair.pub.is_connected, 5 * S, [watch])
        assert sim.run_until(lambda: collector.messages[-1].payload == producer.messages[-1], 5 * S, [watch])
        kind, _, image = events[2]
        assert kind == "available" and image.join_position > 100 * 544
        indexes = [int.from_bytes(m.payload[:4], "little") for m in collector.messages]
        assert indexes == sorted(set(indexes))
        assert indexes[:100] == list(range(100)) and indexes[-1] == 299


def test_offer_is_not_connected_once_the_connection_is_lost() -> None:
    # Aeron's driver clamps the publisher limit to the sender position while not connected
    with Sim(13) as sim:
        pair = unicast(sim)
        assert sim.run_until(lambda: pair.pub.is_connected)
        assert pair.pub.offer(b"before") > 0
        sim.net.partition(A_HOST, B_HOST)
        assert sim.run_until(lambda: not pair.pub.is_connected, 6 * S)
        assert pair.pub.offer(b"after") == NOT_CONNECTED
        sim.net.heal()
        assert sim.run_until(lambda: pair.pub.is_connected, 3 * S)
        assert pair.pub.offer(b"again") > 0


def test_send_work_sends_what_was_offered_since_the_duty_cycle_at_once() -> None:
    # a program that runs its agents after the transport ends its cycle with send_work: the message
    # leaves in that cycle, not the next one
    with Sim(13) as sim:
        pair = unicast(sim)
        assert sim.run_until(lambda: pair.pub.is_connected)
        sent = len(sim.wire.data())
        assert pair.pub.offer(b"now") > 0
        assert pair.a.send_work() > 0
        assert len(sim.wire.data()) == sent + 1
        assert pair.a.send_work() == 0  # nothing more to send
        assert pair.b.send_work() == 0  # a transport with no publication sends nothing


# =========================================================================================== 2. handshake


def test_setup_is_resent_every_100ms_until_a_status_message() -> None:
    with Sim(21) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        pub = a.add_publication(CHANNEL, STREAM)
        assert pub.offer(b"too early") == NOT_CONNECTED
        assert not pub.is_connected
        sim.run_for(1 * S)
        setups = sim.wire.of(SETUP)
        assert len(setups) == 10
        gaps = [later.time_ns - earlier.time_ns for earlier, later in itertools.pairwise(setups)]
        assert all(100 * MS <= gap <= 101 * MS for gap in gaps), gaps
        fields = setups[0].fields
        assert fields == {
            "term_offset": 0,
            "session_id": pub.session_id,
            "stream_id": STREAM,
            "initial_term_id": pub.initial_term_id,
            "active_term_id": pub.initial_term_id,
            "term_length": TERM,
            "mtu": MTU,
            "ttl": 0,
        }
        assert setups[0].frame_length == 40 and setups[0].datagram_length == 40
        assert pub.offer(b"still too early") == NOT_CONNECTED
        sub = b.add_subscription(CHANNEL, STREAM)
        assert sim.run_until(lambda: pub.is_connected, 200 * MS)
        mark = len(sim.wire.frames)
        sim.run_for(1 * S, [poller(sub, Collector())])
        assert sim.wire.frames[mark:] and not [f for f in sim.wire.frames[mark:] if f.type == SETUP]
        assert pub.offer(b"now") > 0


def test_a_subscriber_that_sees_data_before_setup_elicits_one() -> None:
    # Handshake (docs/transport.md): the first subscription leaves, a new one on the same address sees
    # DATA of a session it has no image for and answers with an SM flagged SEND_SETUP (0x80); the SETUP
    # makes the image
    with Sim(22) as sim:
        pair = unicast(sim)
        first = Collector()
        producer = Producer(pair.pub, [message(i, 200) for i in range(60)])
        producer.limit = 20
        sim.add(producer)
        assert sim.run_until(lambda: len(first.messages) == 20, agents=[poller(pair.sub, first)])
        pair.sub.close()
        available: list[Image] = []
        second = Collector()
        sub = pair.b.add_subscription(CHANNEL, STREAM, on_available_image=available.append)
        mark = len(sim.wire.frames)
        producer.limit = 40
        assert sim.run_until(lambda: bool(available), 1 * S, [poller(sub, second)])
        frames = sim.wire.frames[mark:]
        elicit = next(f for f in frames if f.type == SM)
        assert elicit.flags == SEND_SETUP and elicit.source[0] == B_HOST
        assert elicit.fields["session_id"] == pair.pub.session_id
        setup = next(f for f in frames if f.type == SETUP)
        assert setup.time_ns > elicit.time_ns
        data_before = [f for f in frames if f.type == DATA and f.time_ns < elicit.time_ns]
        assert data_before, "the subscriber was not shown data before the setup"
        assert pair.b.counters.setup_elicitations == 1
        join = position_of(
            setup.fields["active_term_id"], setup.fields["term_offset"], pair.pub.initial_term_id, TERM
        )
        assert available[0].join_position == join
        producer.limit = 60
        assert sim.run_until(lambda: len(second.messages) == 20, 1 * S, [poller(sub, second)])
        assert second.payloads == producer.messages[40:]


def test_an_idle_publication_heartbeats_every_100ms() -> None:
    with Sim(23) as sim:
        pair = unicast(sim)
        collector = Collector()
        sim.add(poller(pair.sub, collector))
        assert sim.run_until(lambda: pair.pub.is_connected)
        position = pair.pub.offer(b"x" * 100)
        assert sim.run_until(lambda: len(collector.messages) == 1)
        mark = len(sim.wire.frames)
        sim.run_for(1_010 * MS)
        beats = [f for f in sim.wire.frames[mark:] if f.source[0] == A_HOST]
        assert len(beats) == 10 and all(f.is_heartbeat for f in beats)
        gaps = [later.time_ns - earlier.time_ns for earlier, later in itertools.pairwise(beats)]
        assert all(100 * MS <= gap <= 101 * MS for gap in gaps), gaps
        for beat in beats:
            assert beat.datagram_length == 32 and beat.frame_length == 0
            assert beat.flags == BEGIN | END  # no EOS while open
            assert sent_position(beat, pair.pub.initial_term_id) == position  # at the sender position
        assert pair.sub.images[0].position == position


def test_close_sends_end_of_stream_and_the_image_goes_after_draining() -> None:
    with Sim(24, LinkConfig(loss=0.1)) as sim:
        unavailable: list[tuple[int, Image]] = []
        pair = unicast(sim, on_unavailable_image=lambda image: unavailable.append((sim.now_ns, image)))
        collector = Collector()
        producer = Producer(pair.pub, [message(i, 1000) for i in range(50)])
        sim.add(producer)
        assert sim.run_until(lambda: producer.done)
        end = pair.pub.position
        pair.pub.close()
        assert pair.pub.offer(b"late") == CLOSED
        assert not pair.pub.is_connected
        sim.run_for(500 * MS)  # the subscriber does not poll: the image waits for it
        assert not unavailable and pair.sub.images[0].position < end
        assert sim.run_until(lambda: bool(unavailable), 2 * S, [poller(pair.sub, collector)])
        _at_ns, image = unavailable[0]
        assert image.is_end_of_stream and image.position == end == image.end_of_stream_position
        assert collector.payloads == producer.messages
        eos = [f for f in sim.wire.heartbeats() if f.flags & EOS]
        assert eos and all(f.flags == BEGIN | END | EOS for f in eos)
        assert all(sent_position(f, pair.pub.initial_term_id) == end for f in eos)
        assert [f for f in sim.wire.of(SM) if f.flags & SM_EOS]  # the receiver acknowledges draining
        assert pair.sub.images == []
        sim.run_for(6 * S)  # the publication lingers (5 s) then goes, and its socket with it
        assert not [f for f in sim.wire.frames if f.source[0] == A_HOST and f.time_ns > sim.now_ns - 1 * S]


def test_linger_starts_when_the_publication_has_drained() -> None:
    # A slow subscriber makes draining take longer than the linger: the end-of-stream heartbeats must
    # still go out (Aeron's DRAINING state comes before LINGER), or the image waits 10 s for liveness.
    with Sim(25) as sim:
        unavailable: list[tuple[int, Image]] = []
        pair = unicast(
            sim,
            channel=CHANNEL + "|linger=300ms",
            on_unavailable_image=lambda image: unavailable.append((sim.now_ns, image)),
        )
        collector = Collector()
        producer = Producer(pair.pub, [message(i, 1000) for i in range(50)])
        sim.add(producer)
        assert sim.run_until(lambda: producer.done)
        pair.pub.close()
        sim.run_for(1 * S)  # no polling: the sender is held at the receiver window
        start_ns = sim.now_ns
        assert sim.run_until(lambda: bool(unavailable), 12 * S, [poller(pair.sub, collector)])
        at_ns, image = unavailable[0]
        assert image.is_end_of_stream
        assert at_ns - start_ns < 1 * S
        assert collector.payloads == producer.messages


def test_a_closed_publication_whose_receiver_is_gone_lingers_out() -> None:
    # Aeron's DRAINING goes to LINGER without draining once no receiver is left; the publication must
    # not heartbeat to a dead address for ever (nor keep its socket)
    with Sim(26) as sim:
        pair = unicast(sim, channel=CHANNEL + "|linger=100ms")
        producer = Producer(pair.pub, [message(i, 1000) for i in range(100)])
        assert sim.run_until(lambda: pair.pub.is_connected)
        sim.run_for(10 * MS, [producer])
        assert pair.pub.position > pair.pub.sender_position  # type: ignore[attr-defined]
        pair.b.close()
        pair.pub.close()
        closed_at = sim.now_ns
        sim.run_for(6 * S)
        assert pair.pub.is_linger_done  # type: ignore[attr-defined]
        assert (A_HOST, 32768) not in sim.net.bound_addresses()
        last = max(f.time_ns for f in sim.wire.frames if f.source[0] == A_HOST)
        assert last - closed_at <= 5_200 * MS  # connection timeout (5 s) + linger (100 ms)


def test_a_closed_mdc_publication_without_destinations_lingers_out() -> None:
    with Sim(27) as sim:
        a = sim.transport(A_HOST)
        pub = a.add_publication(f"aeron:udp?control={A_HOST}:40001|control-mode=manual|linger=50ms", STREAM)
        a.add_destination(pub, f"aeron:udp?endpoint={B_HOST}:40456")
        assert a.remove_destination(pub, f"aeron:udp?endpoint={B_HOST}:40456")
        pub.close()
        sim.run_for(100 * MS)
        assert pub.is_linger_done  # type: ignore[attr-defined]
        assert (A_HOST, 40001) not in sim.net.bound_addresses()


# ====================================================================================== 3. flow control


def test_the_sender_never_sends_beyond_the_receiver_window() -> None:
    with Sim(31, LOSSY) as sim:
        pair = unicast(sim)
        collector = Collector()
        producer = Producer(pair.pub, [message(i, [64, 1400, 5000][i % 3]) for i in range(300)])
        slow = poller(pair.sub, collector, 1)  # one fragment a round: the window is what limits

        assert sim.run_until(lambda: len(collector.messages) == 300, 30 * S, [producer, slow])
        assert_flow_control_respected(sim.wire, pair.pub.initial_term_id, A_HOST, B_HOST)
        windows = {f.fields["receiver_window"] for f in sim.wire.of(SM)}
        assert windows == {WINDOW}


def test_back_pressure_when_the_subscriber_does_not_poll() -> None:
    with Sim(32) as sim:
        pair = unicast(sim)
        pub = pair.pub
        producer = Producer(pub, [message(i, 1000) for i in range(500)])
        assert sim.run_until(lambda: pub.is_connected)
        sim.run_for(300 * MS, [producer])
        assert producer.results and producer.results[-1] == BACK_PRESSURED
        sender_position = pub.sender_position  # type: ignore[attr-defined]
        # the receiver granted one window and nothing was consumed
        assert WINDOW - 1056 < sender_position <= WINDOW
        assert pub.position_limit == sender_position + WINDOW  # the publication window, term / 2
        assert pub.position >= pub.position_limit - 1056
        assert pub.offer(b"more") == BACK_PRESSURED
        assert pub.is_connected
        collector = Collector()
        assert sim.run_until(
            lambda: len(collector.messages) == 500, 10 * S, [producer, poller(pair.sub, collector)]
        )
        assert collector.payloads == producer.messages


def test_status_messages_at_least_every_200ms() -> None:
    with Sim(33, LinkConfig(jitter_ns=100 * US)) as sim:
        pair = unicast(sim)
        collector = Collector()
        producer = Producer(pair.pub, [message(i, 100) for i in range(20)])
        sim.add(poller(pair.sub, collector))
        assert sim.run_until(lambda: pair.pub.is_connected)
        sim.run_for(1 * S)
        producer()
        sim.run_for(1 * S)
        sms = [f for f in sim.wire.of(SM) if f.flags == 0]
        assert len(sms) >= 10
        gaps = [later.time_ns - earlier.time_ns for earlier, later in itertools.pairwise(sms)]
        assert max(gaps) <= 201 * MS, gaps
        for sm in sms:
            assert sm.frame_length == 36 and sm.fields["session_id"] == pair.pub.session_id
            assert sm.fields["stream_id"] == STREAM and sm.destination[0] == A_HOST
        last = sms[-1]
        assert sent_position(last, pair.pub.initial_term_id) == pair.pub.position == 20 * 160


def test_a_status_message_when_consumption_advances_a_quarter_window() -> None:
    with Sim(34) as sim:
        pair = unicast(sim)
        assert sim.run_until(lambda: pair.pub.is_connected)
        quarter = WINDOW // 4
        count = quarter // 1056 + 2  # a little more than a quarter window of 1024-byte messages
        producer = Producer(pair.pub, [message(i, 1024) for i in range(count)])
        assert sim.run_until(lambda: producer.done, agents=[producer])
        sim.run_for(5 * MS)  # everything arrives; nobody polls yet
        image = pair.sub.images[0]
        collector = Collector()
        # consume one message at a time, each followed by one receiver duty cycle in the same instant
        # (so the 200 ms timer cannot be what sends a status message)
        while image.position < quarter:
            mark = len(sim.wire.frames)
            assert pair.sub.poll(collector, 1) == 1
            pair.b.do_work()
            sms = [f for f in sim.wire.frames[mark:] if f.type == SM]
            if image.position < quarter:
                assert not sms, f"a status message after consuming only {image.position} bytes"
            else:
                assert len(sms) == 1, f"no status message after consuming {image.position} bytes"
                assert sent_position(sms[0], pair.pub.initial_term_id) == image.position


# ============================================================================= 4. loss and retransmit


def lose_one_datagram(sim: Sim, pair: Pair, payload: bytes) -> int:
    """Offer ``payload`` while the data direction is cut, so exactly its datagram is lost; its position."""
    sim.net.partition(A_HOST, B_HOST, one_way=True)
    position = pair.pub.offer(payload)
    assert position > 0
    pair.a.do_work()
    sim.net.heal()
    return position


def data_from(frames: list[Frame], term_offset: int) -> list[Frame]:
    return [
        f for f in frames if f.type == DATA and f.frame_length > 0 and f.fields["term_offset"] == term_offset
    ]


def test_one_lost_datagram_is_naked_once_and_retransmitted() -> None:
    with Sim(41) as sim:
        pair = unicast(sim)
        collector = Collector()
        sim.add(poller(pair.sub, collector))
        assert sim.run_until(lambda: pair.pub.is_connected)
        first = pair.pub.offer(message(0, 100))
        assert sim.run_until(lambda: len(collector.messages) == 1)
        lose_one_datagram(sim, pair, message(1, 100))
        mark = len(sim.wire.frames)
        pair.pub.offer(message(2, 100))
        assert sim.run_until(lambda: len(collector.messages) == 3, 1 * S, step_ns=5 * US)
        sim.run_for(50 * MS, step_ns=5 * US)
        frames = sim.wire.frames[mark:]
        naks = [f for f in frames if f.type == NAK]
        assert len(naks) == 1, naks
        nak = naks[0]
        assert nak.frame_length == 28 and nak.source[0] == B_HOST and nak.destination[0] == A_HOST
        assert nak.fields["session_id"] == pair.pub.session_id and nak.fields["stream_id"] == STREAM
        assert sent_position(nak, pair.pub.initial_term_id) == first  # the gap starts at the lost frame
        assert nak.fields["length"] == 160  # ... and ends where the next frame is
        arrival_ns = frames[0].time_ns + 50 * US  # the frame after the gap arrives (50 us link delay)
        assert 100 * US <= nak.time_ns - arrival_ns <= 110 * US  # the NAK delay (Aeron's default: 100 us)
        resent = data_from(frames, first % TERM)
        assert len(resent) == 1 and resent[0].time_ns >= nak.time_ns + 50 * US
        assert pair.pub.retransmits_sent == 1  # type: ignore[attr-defined]
        assert collector.payloads == [message(i, 100) for i in range(3)]


def test_a_lost_retransmit_is_naked_again_after_10ms() -> None:
    with Sim(42) as sim:
        pair = unicast(sim)
        collector = Collector()
        sim.add(poller(pair.sub, collector))
        assert sim.run_until(lambda: pair.pub.is_connected)
        pair.pub.offer(message(0, 100))
        assert sim.run_until(lambda: len(collector.messages) == 1)
        lost = lose_one_datagram(sim, pair, message(1, 100)) - 160
        mark = len(sim.wire.frames)

        def cut_the_first_retransmit() -> int:
            frames = sim.wire.frames[mark:]
            naks = [f for f in frames if f.type == NAK]
            if len(naks) == 1 and not data_from(frames, lost):
                sim.net.partition(A_HOST, B_HOST, one_way=True)  # the answer to this NAK is lost
            elif sim.net.is_blocked(A_HOST, B_HOST) and data_from(frames, lost):
                sim.net.heal()
            return 0

        pair.pub.offer(message(2, 100))
        assert sim.run_until(
            lambda: len(collector.messages) == 3, 1 * S, [cut_the_first_retransmit], step_ns=5 * US
        )
        sim.run_for(50 * MS, step_ns=5 * US)
        frames = sim.wire.frames[mark:]
        naks = [f for f in frames if f.type == NAK]
        assert len(naks) == 2
        assert naks[0].fields == naks[1].fields
        assert (
            10 * MS <= naks[1].time_ns - naks[0].time_ns <= 10 * MS + 10 * US
        )  # NAK retry: delay 100 us x ratio 100
        assert len(data_from(frames, lost)) == 2
        assert collector.payloads == [message(i, 100) for i in range(3)]


def nak_bytes(pub: Publication, position: int, length: int) -> bytes:
    term_id = pub.initial_term_id + position // TERM
    return NAK_HEADER.pack(28, 0, 0, NAK, pub.session_id, pub.stream_id, term_id, position % TERM, length)


def test_retransmit_linger_suppresses_resending_the_same_range_within_10ms() -> None:
    with Sim(43) as sim:
        pair = unicast(sim)
        collector = Collector()
        sim.add(poller(pair.sub, collector))
        assert sim.run_until(lambda: pair.pub.is_connected)
        for i in range(5):
            pair.pub.offer(message(i, 100))
        assert sim.run_until(lambda: len(collector.messages) == 5)
        publisher_address = sim.wire.of(SETUP)[0].source
        rogue = sim.net.open((C_HOST, 9000))  # NAKs from anywhere are answered (to the destinations)

        def resends_of(offset: int) -> int:
            return len(data_from(sim.wire.frames[mark:], offset))

        mark = len(sim.wire.frames)
        rogue.send(nak_bytes(pair.pub, 0, 160), publisher_address)
        sim.run_for(1 * MS)
        assert resends_of(0) == 1
        for _ in range(4):
            rogue.send(nak_bytes(pair.pub, 0, 160), publisher_address)
            sim.run_for(2 * MS)
        assert resends_of(0) == 1  # within the 10 ms linger
        rogue.send(nak_bytes(pair.pub, 320, 320), publisher_address)  # another range is not held back
        sim.run_for(1 * MS)
        assert resends_of(320) == 1
        sim.run_for(5 * MS)
        rogue.send(nak_bytes(pair.pub, 0, 160), publisher_address)
        sim.run_for(1 * MS)
        assert resends_of(0) == 2  # linger over
        # a range the sender has not sent, or beyond what it keeps, is not resent
        before = pair.pub.retransmits_sent  # type: ignore[attr-defined]
        rogue.send(nak_bytes(pair.pub, 800, 160), publisher_address)
        rogue.send(nak_bytes(pair.pub, 2 * TERM, 160), publisher_address)
        sim.run_for(1 * MS)
        assert pair.pub.retransmits_sent == before  # type: ignore[attr-defined]
        assert collector.payloads == [message(i, 100) for i in range(5)]  # duplicates are not delivered
        rogue.close()


def test_an_unreliable_subscription_fills_gaps_with_padding_and_goes_on() -> None:
    with Sim(44) as sim:
        pair = unicast(sim, sub_channel=CHANNEL + "|reliable=false")
        collector = Collector()
        sim.add(poller(pair.sub, collector))
        assert sim.run_until(lambda: pair.pub.is_connected)
        pair.pub.offer(message(0, 100))
        assert sim.run_until(lambda: len(collector.messages) == 1)
        lose_one_datagram(sim, pair, message(1, 100))
        pair.pub.offer(message(2, 100))
        pair.pub.offer(message(3, 5000))  # fragmented, after the gap
        assert sim.run_until(lambda: len(collector.messages) == 3, 1 * S)
        assert collector.payloads == [message(0, 100), message(2, 100), message(3, 5000)]
        assert not sim.wire.of(NAK)
        image = pair.sub.images[0]
        assert image.position == pair.pub.position
        log = image_log(pair.b, pair.pub.session_id, STREAM)
        assert log.loss_gap_fills == 1 and log.naks_sent == 0


def test_an_unreliable_gap_fill_is_not_overwritten_by_a_late_datagram() -> None:
    # The lost datagrams turn up after the gap was filled (reordering): Aeron's TermRebuilder only
    # writes where nothing is, so the padding stays and the subscriber is not left facing a hole.
    with Sim(45) as sim:
        pair = unicast(sim, sub_channel=CHANNEL + "|reliable=false")
        collector = Collector()
        assert sim.run_until(lambda: pair.pub.is_connected)
        pair.pub.offer(message(0, 100))
        assert sim.run_until(lambda: len(collector.messages) == 1, agents=[poller(pair.sub, collector)])
        captured: list[tuple[tuple[str, int], bytes]] = []
        tap = sim.net.tap
        assert tap is not None

        def capture(source: tuple[str, int], destination: tuple[str, int], data: bytes) -> None:
            captured.append((destination, data))
            tap(source, destination, data)

        sim.net.tap = capture
        sim.net.partition(A_HOST, B_HOST, one_way=True)
        for i in (1, 2):  # two datagrams lost
            pair.pub.offer(message(i, 100))
            pair.a.do_work()
        sim.net.heal()
        sim.net.tap = tap
        pair.pub.offer(message(3, 100))
        log = image_log(pair.b, pair.pub.session_id, STREAM)
        assert sim.run_until(lambda: log.loss_gap_fills == 1, 1 * S)
        late = sim.net.open((A_HOST, 9000))
        destination, first_lost = captured[0]
        late.send(first_lost, destination)  # the first lost datagram arrives late, before anyone polls
        sim.run_for(1 * MS)
        pair.pub.offer(message(4, 100))
        assert sim.run_until(lambda: len(collector.messages) >= 3, 1 * S, [poller(pair.sub, collector)])
        assert collector.payloads == [message(0, 100), message(3, 100), message(4, 100)]
        late.close()


# ============================================================================ 5. terms and fragmentation


@pytest.mark.parametrize(("term_length", "longest"), [(64 * 1024, 8 * 1024), (1024 * 1024, 128 * 1024)])
def test_the_longest_message_is_an_eighth_of_the_term(term_length: int, longest: int) -> None:
    with Sim(51, term_length=term_length) as sim:
        pair = unicast(sim)
        collector = Collector()
        sim.add(poller(pair.sub, collector))
        assert sim.run_until(lambda: pair.pub.is_connected)
        assert pair.pub.max_message_length == longest
        with pytest.raises(MessageTooLongError, match=f"max_message_length={longest}"):
            pair.pub.offer(bytes(longest + 1))
        with pytest.raises(MessageTooLongError):
            pair.pub.try_claim(MTU - 32 + 1, BufferClaim())  # a claim is one unfragmented frame
        assert pair.pub.offer(message(0, longest)) > 0
        assert sim.run_until(lambda: len(collector.messages) == 1)
        assert collector.payloads == [message(0, longest)]


def test_fragments_carry_begin_and_end_flags_and_are_contiguous() -> None:
    with Sim(52) as sim:
        pair = unicast(sim)
        collector = Collector()
        sim.add(poller(pair.sub, collector))
        assert sim.run_until(lambda: pair.pub.is_connected)
        payload_per_frame = MTU - 32
        sizes = [
            0,
            payload_per_frame,
            payload_per_frame + 1,
            3 * payload_per_frame,
            3 * payload_per_frame + 5,
        ]
        for i, size in enumerate(sizes):
            assert pair.pub.offer(message(i, size)) > 0
        assert sim.run_until(lambda: len(collector.messages) == len(sizes))
        assert collector.payloads == [message(i, size) for i, size in enumerate(sizes)]
        frames = sim.wire.data()
        offset = 0
        for size in sizes:
            count = max(1, -(-size // payload_per_frame))
            message_frames, frames = frames[:count], frames[count:]
            flags = [f.flags for f in message_frames]
            assert flags == ([BEGIN | END] if count == 1 else [BEGIN] + [0] * (count - 2) + [END])
            for frame in message_frames:
                assert frame.fields["term_offset"] == offset
                assert frame.frame_length <= MTU
                offset += align32(frame.frame_length)
            assert b"".join(f.payload for f in message_frames) == message(sizes.index(size), size)
        assert collector.fragments == sum(max(1, -(-s // payload_per_frame)) for s in sizes)


def test_a_message_never_straddles_terms() -> None:
    with Sim(53) as sim:
        pair = unicast(sim)
        collector = Collector()
        sim.add(poller(pair.sub, collector))
        assert sim.run_until(lambda: pair.pub.is_connected)
        pub = pair.pub
        filler = message(0, 1000)  # 1056 bytes a frame: 62 fill 65472 of the first term
        for _ in range(62):
            assert pub.offer(filler) > 0
            assert sim.run_until(lambda: pub.position_limit - pub.position > 4000, 1 * S)
        assert pub.position == 62 * 1056
        big = message(1, 3000)  # does not fit in the 64 bytes left
        assert pub.offer(big) == ADMIN_ACTION
        assert pub.position == TERM  # the rest of the term is padding
        position = pub.offer(big)
        assert position == TERM + align32(3000 + 3 * 32)  # three fragments, each with a header
        assert sim.run_until(lambda: len(collector.messages) == 63)
        last = collector.messages[-1]
        assert last.payload == big and last.position == position
        assert last.term_id == pub.initial_term_id + 1
        pad = [f for f in sim.wire.frames if f.type == PAD]
        assert len(pad) == 1 and pad[0].fields["term_offset"] == 62 * 1056
        assert pad[0].frame_length == TERM - 62 * 1056 and pad[0].datagram_length == 32
        fragments = [f for f in sim.wire.data() if f.fields["term_id"] == pub.initial_term_id + 1]
        assert [f.fields["term_offset"] for f in fragments] == [0, MTU, 2 * MTU]


def test_positions_continue_over_many_term_rotations() -> None:
    with Sim(54, LinkConfig(loss=0.05, reorder=0.05, jitter_ns=50 * US)) as sim:
        pair = unicast(sim)
        collector = Collector()
        sizes = [100, 2000, 7000, 0, 5000]
        producer = Producer(pair.pub, [message(i, sizes[i % len(sizes)]) for i in range(400)])
        sim.add(producer, poller(pair.sub, collector))
        assert sim.run_until(lambda: len(collector.messages) == 400, 30 * S)
        assert collector.payloads == producer.messages
        positions = [m.position for m in collector.messages]
        assert positions == producer.positions and positions[-1] == pair.pub.position
        assert positions[-1] > 10 * TERM
        terms = {m.term_id for m in collector.messages}
        assert terms == set(
            range(pair.pub.initial_term_id, pair.pub.initial_term_id + positions[-1] // TERM + 1)
        )
        assert producer.admin_actions == len(sim.wire.of(PAD)) >= 10


def test_a_stream_ends_at_the_largest_position() -> None:
    # the last term (term count 2**31 - 1): padding to its end, then MAX_POSITION_EXCEEDED
    with Sim(55) as sim:
        position = "init-term-id=0|term-id=2147483647|term-offset=61440"
        pair = unicast(sim, channel=f"{CHANNEL}|{position}|term-length=64k")
        collector = Collector()
        sim.add(poller(pair.sub, collector))
        assert sim.run_until(lambda: pair.pub.is_connected)
        largest = TERM * 2**31
        assert pair.pub.position == largest - 4096
        results = [pair.pub.offer(message(i, 1000)) for i in range(5)]
        assert results == [largest - 4096 + 1056 * (i + 1) for i in range(3)] + [MAX_POSITION_EXCEEDED] * 2
        assert pair.pub.try_claim(10, BufferClaim()) == MAX_POSITION_EXCEEDED
        assert sim.run_until(lambda: len(collector.messages) == 3)
        assert sim.run_until(lambda: pair.sub.images[0].position == largest)
        assert [m.position for m in collector.messages] == results[:3]


# ============================================================================ 6. claims, polls and images


def test_try_claim_commit_and_abort_over_the_network() -> None:
    with Sim(61, LOSSY) as sim:
        pair = unicast(sim)
        collector = Collector()
        sim.add(poller(pair.sub, collector))
        assert sim.run_until(lambda: pair.pub.is_connected)
        claim = BufferClaim()
        expected = []
        for i in range(30):
            position = pair.pub.try_claim(100 + i, claim)
            assert position > 0
            claim.buffer[:] = message(i, 100 + i)
            if i % 3 == 0:
                claim.abort()
            else:
                claim.reserved_value(i * 1000)
                claim.commit()
                expected.append(message(i, 100 + i))
        assert sim.run_until(lambda: len(collector.messages) == len(expected), 5 * S)
        assert collector.payloads == expected
        assert [m.reserved_value for m in collector.messages] == [i * 1000 for i in range(30) if i % 3]
        assert pair.sub.images[0].position == pair.pub.position  # aborted claims are padding, skipped
        # a claim that does not fit in the term pads it: ADMIN_ACTION, then offset 0 of the next term
        results = []
        while not results or results[-1] != ADMIN_ACTION:
            results.append(pair.pub.try_claim(1000, claim))
            if results[-1] > 0:
                claim.buffer[:4] = b"fill"
                claim.commit()
            assert sim.run_until(lambda: pair.pub.position_limit - pair.pub.position > 2000)
        assert pair.pub.position == TERM
        assert pair.pub.try_claim(1000, claim) == TERM + 1056
        claim.buffer[:] = bytes(range(256)) * 3 + bytes(232)
        claim.commit()
        assert sim.run_until(lambda: collector.messages[-1].position == TERM + 1056, 5 * S)
        last = collector.messages[-1]
        assert (last.term_id, last.term_offset) == (pair.pub.initial_term_id + 1, 0)
        assert last.payload == bytes(range(256)) * 3 + bytes(232)


def publish_and_wait(sim: Sim, pair: Pair, payloads: list[bytes]) -> list[int]:
    positions = [pair.pub.offer(payload) for payload in payloads]
    assert all(p > 0 for p in positions)
    log = image_log(pair.b, pair.pub.session_id, STREAM)
    assert sim.run_until(lambda: log.rebuild_position == positions[-1])
    return positions


def test_controlled_poll_abort_break_commit_and_continue() -> None:
    with Sim(62) as sim:
        pair = unicast(sim)
        assert sim.run_until(lambda: pair.pub.is_connected)
        positions = publish_and_wait(sim, pair, [bytes([i]) * 50 for i in range(8)])
        image = pair.sub.images[0]
        seen: list[int] = []

        def scripted(script: dict[int, ControlledAction]) -> Callable[[memoryview, Header], ControlledAction]:
            def handler(payload: memoryview, header: Header) -> ControlledAction:
                seen.append(payload[0])
                assert header.position() == positions[payload[0]]
                return script.get(payload[0], ControlledAction.CONTINUE)

            return handler

        # CONTINUE, COMMIT, then BREAK: three consumed, the poll stops after the third
        A = ControlledAction
        assert pair.sub.controlled_poll(scripted({1: A.COMMIT, 2: A.BREAK}), 10) == 3
        assert seen == [0, 1, 2] and image.position == positions[2]
        # ABORT first: nothing consumed, the same fragment comes again
        seen.clear()
        assert pair.sub.controlled_poll(scripted({3: A.ABORT}), 10) == 0
        assert seen == [3] and image.position == positions[2]
        # COMMIT then ABORT: the committed fragments stay consumed
        seen.clear()
        assert pair.sub.controlled_poll(scripted({4: A.COMMIT, 5: A.ABORT}), 10) == 2
        assert seen == [3, 4, 5] and image.position == positions[4]
        # the fragment limit still applies
        seen.clear()
        assert pair.sub.controlled_poll(scripted({}), 2) == 2
        assert seen == [5, 6] and image.position == positions[6]
        assert pair.sub.controlled_poll(scripted({}), 10) == 1
        assert pair.sub.controlled_poll(scripted({}), 10) == 0
        assert image.position == positions[-1]


def test_a_bounded_controlled_poll_delivers_no_frame_ending_past_its_limit() -> None:
    with Sim(64) as sim:
        pair = unicast(sim)
        assert sim.run_until(lambda: pair.pub.is_connected)
        positions = publish_and_wait(sim, pair, [bytes([i]) * 50 for i in range(4)])
        image = pair.sub.images[0]
        seen: list[int] = []

        def handler(payload: memoryview, header: Header) -> ControlledAction:
            seen.append(payload[0])
            return ControlledAction.CONTINUE

        # a limit inside the third frame: the first two only
        assert image.controlled_poll(handler, 10, positions[2] - 1) == 2
        assert seen == [0, 1] and image.position == positions[1]
        # a limit at the image's position: nothing
        assert image.controlled_poll(handler, 10, positions[1]) == 0
        # a limit exactly at a frame's end takes that frame
        assert image.controlled_poll(handler, 10, positions[2]) == 1
        assert seen == [0, 1, 2] and image.position == positions[2]
        # a limit beyond the data: the rest
        assert image.controlled_poll(handler, 10, positions[-1] + 4096) == 1
        assert seen == [0, 1, 2, 3] and image.position == positions[-1]


def test_poll_respects_the_fragment_limit() -> None:
    with Sim(63) as sim:
        pair = unicast(sim)
        assert sim.run_until(lambda: pair.pub.is_connected)
        publish_and_wait(sim, pair, [message(i, 40) for i in range(25)] + [message(25, 3 * (MTU - 32))])
        collector = Collector()
        assert [pair.sub.poll(collector, 10) for _ in range(5)] == [10, 10, 8, 0, 0]
        assert len(collector.messages) == 26  # the 3-fragment message counts 3 fragments
        assert pair.sub.poll(collector, 0) == 0


def test_several_subscriptions_on_a_stream_each_get_everything_at_their_own_pace() -> None:
    with Sim(64, LOSSY) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        subs = [b.add_subscription(CHANNEL, STREAM) for _ in range(3)]
        pub = a.add_publication(CHANNEL, STREAM)
        collectors = [Collector() for _ in subs]
        producer = Producer(pub, [message(i, [10, 2000][i % 2]) for i in range(200)])
        sim.add(
            producer, *(poller(s, c, limit) for s, c, limit in zip(subs, collectors, [1, 5, 50], strict=True))
        )
        assert sim.run_until(lambda: all(len(c.messages) == 200 for c in collectors), 20 * S)
        for sub, collector in zip(subs, collectors, strict=True):
            assert collector.payloads == producer.messages
            assert sub.images[0].position == pub.position
        assert len({id(s.images[0]) for s in subs}) == 3


def test_a_subscription_added_to_a_live_stream_gets_its_image() -> None:
    # Aeron links existing images to a new subscription on the same channel (at the image's join
    # position: the lowest subscriber position, or the rebuild position)
    with Sim(65) as sim:
        pair = unicast(sim)
        first = Collector()
        producer = Producer(pair.pub, [message(i, 300) for i in range(40)])
        producer.limit = 20
        sim.add(producer, poller(pair.sub, first))
        assert sim.run_until(lambda: len(first.messages) == 20)
        available: list[Image] = []
        second = Collector()
        late = pair.b.add_subscription(CHANNEL, STREAM, on_available_image=available.append)
        assert len(available) == 1 and available[0].join_position == first.messages[-1].position
        producer.limit = 40
        assert sim.run_until(lambda: len(second.messages) == 20, 2 * S, [poller(late, second)])
        assert second.payloads == producer.messages[20:]
        assert first.payloads == producer.messages


def test_a_session_id_filter_takes_only_its_session() -> None:
    with Sim(66) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        c = sim.transport(C_HOST)
        every = b.add_subscription(CHANNEL, STREAM)
        only = b.add_subscription(CHANNEL + "|session-id=1234", STREAM)
        chosen = a.add_publication(CHANNEL + "|session-id=1234", STREAM)
        other = c.add_publication(CHANNEL, STREAM)
        assert chosen.session_id == 1234 and other.session_id != 1234
        all_collector, only_collector = Collector(), Collector()
        producers = [
            Producer(chosen, [message(i, 100) for i in range(50)]),
            Producer(other, [message(i + 50, 700) for i in range(50)]),
        ]
        sim.add(*producers, poller(every, all_collector), poller(only, only_collector))
        assert sim.run_until(
            lambda: len(all_collector.messages) == 100 and len(only_collector.messages) == 50
        )
        sim.run_for(100 * MS)
        assert [i.session_id for i in only.images] == [1234]
        assert sorted(i.session_id for i in every.images) == sorted([1234, other.session_id])
        assert only_collector.payloads == producers[0].messages
        assert all_collector.by_session(1234) == producers[0].messages
        assert all_collector.by_session(other.session_id) == producers[1].messages


def test_two_publications_make_two_images_polled_round_robin() -> None:
    with Sim(67) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        sub = b.add_subscription(CHANNEL, STREAM)
        pubs = [a.add_publication(CHANNEL, STREAM) for _ in range(2)]
        assert pubs[0].session_id != pubs[1].session_id
        assert sim.run_until(lambda: all(p.is_connected for p in pubs))
        for i in range(10):
            for pub in pubs:
                pub.offer(message(i, 64))
        sim.run_for(10 * MS)
        assert sorted(image.session_id for image in sub.images) == sorted(p.session_id for p in pubs)
        collector = Collector()
        while sub.poll(collector, 1):
            pass
        sessions = [m.session_id for m in collector.messages]
        assert len(sessions) == 20
        assert all(x != y for x, y in itertools.pairwise(sessions)), sessions  # alternating
        for pub in pubs:
            assert collector.by_session(pub.session_id) == [message(i, 64) for i in range(10)]
        for image in sub.images:  # each image keeps its own position
            assert image.position == 10 * 96


# ================================================================== 7. exclusive publication at a position


@pytest.mark.parametrize(
    ("init_term_id", "term_id", "term_offset"),
    [(5, 9, 1024), (0, 0, 0), (-7, -7, 65504), (2**31 - 2, -(2**31) + 1, 32 * 1000)],
    ids=["mid-stream", "origin", "end-of-term", "term-id-wraps"],
)
def test_an_exclusive_publication_starts_where_its_channel_says(
    init_term_id: int, term_id: int, term_offset: int
) -> None:
    with Sim(71, LinkConfig(loss=0.05)) as sim:
        position = f"init-term-id={init_term_id}|term-id={term_id}|term-offset={term_offset}"
        channel = f"{CHANNEL}|{position}|term-length=64k"
        available: list[Image] = []
        pair = unicast(sim, channel=channel, on_available_image=available.append)
        term_count = (term_id - init_term_id) % 2**32
        start = term_count * TERM + term_offset
        assert pair.pub.position == start and pair.pub.initial_term_id == init_term_id
        assert sim.run_until(lambda: pair.pub.is_connected)
        assert available[0].join_position == start == available[0].position
        collector = Collector()
        producer = Producer(pair.pub, [message(i, [100, 3000][i % 2]) for i in range(100)])
        sim.add(producer, poller(pair.sub, collector))
        assert sim.run_until(lambda: len(collector.messages) == 100)
        assert collector.payloads == producer.messages
        first = collector.messages[0]
        if term_offset + 132 <= TERM:
            assert first.position == start + align32(100 + 32)
            assert (first.term_id, first.term_offset) == (term_id, term_offset)
        else:  # no room left in the starting term: padding, then the next term
            assert first.position == start + (TERM - term_offset) + align32(100 + 32)
        assert collector.messages[-1].position == pair.pub.position


# =========================================================================== 8. multi-destination-cast

CONTROL = f"{A_HOST}:40001"
RECEIVERS = [B_HOST, C_HOST, D_HOST]


def endpoint(host: str) -> str:
    return f"aeron:udp?endpoint={host}:40456"


@dataclass
class Mdc:
    pub: Publication
    a: Transport
    subs: dict[str, Subscription]
    collectors: dict[str, Collector]
    unavailable: dict[str, list[Image]]


def mdc(sim: Sim, channel: str, hosts: list[str], sub_channel: Callable[[str], str] = endpoint) -> Mdc:
    a = sim.transport(A_HOST)
    subs: dict[str, Subscription] = {}
    collectors: dict[str, Collector] = {}
    unavailable: dict[str, list[Image]] = {}
    for host in hosts:
        unavailable[host] = []
        subs[host] = sim.transport(host).add_subscription(
            sub_channel(host), STREAM, on_unavailable_image=unavailable[host].append
        )
        collectors[host] = Collector()
        sim.add(poller(subs[host], collectors[host]))
    pub = a.add_publication(channel, STREAM)
    return Mdc(pub, a, subs, collectors, unavailable)


@pytest.mark.parametrize("receivers", [2, 3])
def test_mdc_every_destination_receives_everything(receivers: int) -> None:
    with Sim(81, LOSSY) as sim:
        hosts = RECEIVERS[:receivers]
        cast = mdc(sim, f"aeron:udp?control={CONTROL}|control-mode=manual|fc=min", hosts)
        for host in hosts:
            cast.a.add_destination(cast.pub, endpoint(host))
        # a receiver whose SETUPs were all lost joins later, where it first sees data (as in Aeron):
        # start once every receiver has an image (Aeron's fc=min,g:/N would wait for the group)
        assert sim.run_until(lambda: cast.pub.receiver_count == receivers)  # type: ignore[attr-defined]
        assert all(sub.images[0].join_position == 0 for sub in cast.subs.values())
        producer = Producer(cast.pub, [message(i, [50, 1500, 6000][i % 3]) for i in range(200)])
        sim.add(producer)
        assert sim.run_until(lambda: all(len(c.messages) == 200 for c in cast.collectors.values()), 20 * S)
        for host in hosts:
            assert cast.collectors[host].payloads == producer.messages
        # one datagram goes to every destination
        for frame_type in (SETUP, DATA):
            frames = sim.wire.of(frame_type, source_host=A_HOST)
            assert {f.destination[0] for f in frames} == set(hosts)
        assert cast.pub.receiver_count == receivers  # type: ignore[attr-defined]


def test_mdc_a_destination_added_at_run_time_joins_at_the_current_position() -> None:
    with Sim(82, LOSSY) as sim:
        cast = mdc(sim, f"aeron:udp?control={CONTROL}|control-mode=manual|fc=min", [B_HOST, C_HOST])
        cast.a.add_destination(cast.pub, endpoint(B_HOST))
        producer = Producer(cast.pub, [message(i, 800) for i in range(200)])
        producer.limit = 100
        sim.add(producer)
        assert sim.run_until(lambda: len(cast.collectors[B_HOST].messages) == 100)
        assert not cast.collectors[C_HOST].messages and not cast.subs[C_HOST].images
        joined_at = cast.pub.position
        cast.a.add_destination(cast.pub, endpoint(C_HOST))
        assert sim.run_until(lambda: bool(cast.subs[C_HOST].images))
        assert cast.subs[C_HOST].images[0].join_position == joined_at
        producer.limit = 200
        assert sim.run_until(lambda: len(cast.collectors[C_HOST].messages) == 100, 10 * S)
        assert sim.run_until(lambda: len(cast.collectors[B_HOST].messages) == 200, 10 * S)
        assert cast.collectors[B_HOST].payloads == producer.messages
        assert cast.collectors[C_HOST].payloads == producer.messages[100:]


def test_mdc_a_removed_destination_stops_receiving_and_its_image_goes() -> None:
    with Sim(83) as sim:
        cast = mdc(sim, f"aeron:udp?control={CONTROL}|control-mode=manual", [B_HOST, C_HOST])
        for host in (B_HOST, C_HOST):
            cast.a.add_destination(cast.pub, endpoint(host))
        producer = Producer(cast.pub, [message(i, 800) for i in range(200)])
        producer.limit = 100
        sim.add(producer)
        assert sim.run_until(lambda: all(len(c.messages) == 100 for c in cast.collectors.values()))
        assert cast.a.remove_destination(cast.pub, endpoint(C_HOST))
        assert not cast.a.remove_destination(cast.pub, endpoint(C_HOST))
        removed_at = sim.now_ns
        producer.limit = 200
        assert sim.run_until(lambda: len(cast.collectors[B_HOST].messages) == 200)
        assert len(cast.collectors[C_HOST].messages) == 100
        assert not [f for f in sim.wire.frames if f.time_ns > removed_at and f.destination[0] == C_HOST]
        assert sim.run_until(lambda: bool(cast.unavailable[C_HOST]), 11 * S)
        assert 10 * S <= sim.now_ns - removed_at <= 10_100 * MS  # image liveness
        assert not cast.unavailable[B_HOST] and cast.pub.is_connected


def test_mdc_dynamic_receivers_join_by_status_messages_and_leave_by_silence() -> None:
    with Sim(84, LinkConfig(loss=0.05)) as sim:
        cast = mdc(
            sim,
            f"aeron:udp?control={CONTROL}|control-mode=dynamic|fc=min",
            [B_HOST],
            sub_channel=lambda host: f"{endpoint(host)}|control={CONTROL}",
        )
        assert sim.run_until(lambda: cast.pub.is_connected)
        assert [d.address for d in cast.pub.destinations] == [(B_HOST, 40456)]  # type: ignore[attr-defined]
        joins = [f for f in sim.wire.of(SM) if f.flags == SEND_SETUP]
        assert joins and joins[0].destination == (A_HOST, 40001) and joins[0].fields["session_id"] == 0
        producer = Producer(cast.pub, [message(i, 800) for i in range(200)])
        producer.limit = 100
        sim.add(producer)
        assert sim.run_until(lambda: len(cast.collectors[B_HOST].messages) == 100)
        # a second receiver joins later, at the current position
        late = sim.transport(C_HOST).add_subscription(f"{endpoint(C_HOST)}|control={CONTROL}", STREAM)
        late_collector = Collector()
        sim.add(poller(late, late_collector))
        joined_at = cast.pub.position
        assert sim.run_until(lambda: bool(late.images))
        assert late.images[0].join_position == joined_at
        producer.limit = 200
        assert sim.run_until(lambda: len(late_collector.messages) == 100, 10 * S)
        assert sim.run_until(lambda: len(cast.collectors[B_HOST].messages) == 200, 10 * S)
        assert cast.collectors[B_HOST].payloads == producer.messages
        assert late_collector.payloads == producer.messages[100:]
        # a receiver that falls silent is dropped after the 5 s receiver timeout
        late.close()
        closed_at = sim.now_ns
        assert sim.run_until(lambda: len(cast.pub.destinations) == 1, 6 * S)  # type: ignore[attr-defined]
        assert 5 * S <= sim.now_ns - closed_at <= 5_300 * MS


# ============================================================================================== 9. IPC


def ipc(sim: Sim, count: int = 1) -> tuple[Transport, Publication, list[Subscription], list[Collector]]:
    transport = sim.transport(A_HOST)
    pub = transport.add_publication("aeron:ipc", 9)
    subs = [transport.add_subscription("aeron:ipc", 9) for _ in range(count)]
    return transport, pub, subs, [Collector() for _ in subs]


def deliver_over(media: str, sizes: list[int]) -> list[tuple[bytes, int, int, int]]:
    with Sim(91) as sim:
        if media == "udp":
            pair = unicast(sim)
            pub, sub = pair.pub, pair.sub
        else:
            _, pub, (sub,), _ = ipc(sim)
        collector = Collector()
        producer = Producer(pub, [message(i, sizes[i % len(sizes)]) for i in range(300)])
        sim.add(producer, poller(sub, collector))
        assert sim.run_until(lambda: len(collector.messages) == 300, 10 * S)
        assert collector.payloads == producer.messages
        assert [m.position for m in collector.messages] == producer.positions
        assert collector.fragments > 300
        return [(m.payload, m.position, m.term_offset, m.flags) for m in collector.messages]


def test_ipc_has_the_same_positions_and_fragments_as_udp() -> None:
    sizes = [0, 1, 100, MTU - 32, MTU - 31, 5000, 8192]
    assert deliver_over("udp", sizes) == deliver_over("ipc", sizes)


def test_ipc_is_not_connected_without_a_subscription() -> None:
    with Sim(92) as sim:
        transport = sim.transport(A_HOST)
        pub = transport.add_publication("aeron:ipc", 9)
        assert not pub.is_connected and pub.offer(b"x") == NOT_CONNECTED
        sub = transport.add_subscription("aeron:ipc", 9)
        assert pub.is_connected and pub.offer(b"x") > 0
        other_stream = transport.add_subscription("aeron:ipc", 10)
        assert other_stream.images == []
        sub.close()
        transport.do_work()
        assert not pub.is_connected
        assert pub.offer(b"y") == NOT_CONNECTED  # Aeron clamps the limit when the last subscriber goes


def test_ipc_back_pressure_when_a_subscriber_lags_a_term_window() -> None:
    with Sim(93) as sim:
        transport, pub, (fast, slow), (fast_c, slow_c) = ipc(sim, 2)
        producer = Producer(pub, [message(i, 1000) for i in range(300)])
        producer()
        assert producer.results == [BACK_PRESSURED]
        assert pub.position_limit == WINDOW  # the slowest subscriber's position + term / 2
        while fast.poll(fast_c, 100):
            pass
        assert producer() == 0  # the slow subscriber holds everyone back
        slow.poll(slow_c, 5)
        transport.do_work()
        assert pub.position_limit == slow.images[0].position + WINDOW
        assert producer() > 0
        sim.add(producer, poller(fast, fast_c), poller(slow, slow_c, 1))
        assert sim.run_until(lambda: len(slow_c.messages) == 300)
        assert fast_c.payloads == slow_c.payloads == producer.messages
        assert pub.position > 4 * TERM  # through several term rotations


def test_ipc_subscribers_each_get_everything_and_late_ones_join_at_the_slowest() -> None:
    with Sim(94) as sim:
        transport, pub, (first,), (first_c,) = ipc(sim)
        producer = Producer(pub, [message(i, [30, 3000][i % 2]) for i in range(100)])
        producer.limit = 50
        producer()
        first.poll(first_c, 20)
        second = transport.add_subscription("aeron:ipc", 9)
        assert second.images[0].join_position == first.images[0].position
        second_c = Collector()
        producer.limit = 100
        sim.add(producer, poller(first, first_c), poller(second, second_c))
        assert sim.run_until(lambda: len(first_c.messages) == 100 and len(second_c.messages) > 0)
        assert sim.run_until(lambda: second.images[0].position == pub.position)
        assert first_c.payloads == producer.messages
        assert second_c.payloads == producer.messages[-len(second_c.messages) :]


def test_ipc_end_of_stream_on_close() -> None:
    with Sim(95) as sim:
        transport = sim.transport(A_HOST)
        pub = transport.add_publication("aeron:ipc", 9)
        unavailable: list[Image] = []
        sub = transport.add_subscription("aeron:ipc", 9, on_unavailable_image=unavailable.append)
        for i in range(10):
            pub.offer(message(i, 500))
        pub.close()
        assert pub.offer(b"late") == CLOSED
        collector = Collector()
        transport.do_work()
        assert not unavailable  # not drained yet
        sub.poll(collector, 5)
        transport.do_work()
        assert not unavailable
        sub.poll(collector, 10)
        transport.do_work()
        assert len(unavailable) == 1 and unavailable[0].is_end_of_stream
        assert unavailable[0].end_of_stream_position == pub.position
        assert collector.payloads == [message(i, 500) for i in range(10)]
        assert sub.images == []


@pytest.mark.parametrize("subscription_first", [True, False])
def test_an_ipc_session_id_filter_takes_only_its_session_whichever_comes_first(
    subscription_first: bool,
) -> None:
    # Aeron's IPC subscription, like its UDP one, links only the publications of the session its
    # ``session-id`` names: those already there when it is added, and those added after it
    with Sim(96) as sim:
        transport = sim.transport(A_HOST)
        only: Subscription | None = None
        if subscription_first:
            only = transport.add_subscription("aeron:ipc?session-id=1234", 9)
        chosen = transport.add_publication("aeron:ipc?session-id=1234", 9)
        other = transport.add_publication("aeron:ipc?session-id=5678", 9)
        if only is None:
            only = transport.add_subscription("aeron:ipc?session-id=1234", 9)
        every = transport.add_subscription("aeron:ipc", 9)
        assert [image.session_id for image in only.images] == [1234]
        assert sorted(image.session_id for image in every.images) == [1234, 5678]
        only_collector, every_collector = Collector(), Collector()
        producers = [
            Producer(chosen, [message(i, 100) for i in range(30)]),
            Producer(other, [message(i + 30, 2000) for i in range(30)]),
        ]
        sim.add(*producers, poller(only, only_collector), poller(every, every_collector))
        assert sim.run_until(lambda: len(every_collector.messages) == 60, 2 * S)
        sim.run_for(10 * MS)
        assert only_collector.payloads == producers[0].messages
        assert every_collector.by_session(1234) == producers[0].messages
        assert every_collector.by_session(5678) == producers[1].messages


def test_an_ipc_publication_no_subscription_wants_is_not_connected() -> None:
    # a subscription for another session is no subscriber: it neither connects the publication nor
    # holds back its limit
    with Sim(97) as sim:
        transport = sim.transport(A_HOST)
        only = transport.add_subscription("aeron:ipc?session-id=1234", 9)
        other = transport.add_publication("aeron:ipc?session-id=5678", 9)
        assert not other.is_connected and other.offer(b"x") == NOT_CONNECTED
        chosen = transport.add_publication("aeron:ipc?session-id=1234", 9)
        assert chosen.is_connected and chosen.offer(b"x") > 0
        assert [image.session_id for image in only.images] == [1234]


ipc_steps = st.lists(
    st.tuples(st.sampled_from(["publication", "subscription"]), st.sampled_from([None, 1001, 1002, 1003])),
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(ipc_steps)
def test_an_ipc_subscription_has_an_image_of_exactly_the_sessions_it_wants(
    steps: list[tuple[str, int | None]],
) -> None:
    # publications and subscriptions of one stream added in any order: each subscription ends with one
    # image per publication of its session (every publication without ``session-id``)
    with Sim(98) as sim:
        transport = sim.transport(A_HOST)
        publications: list[Publication] = []
        subscriptions: list[tuple[Subscription, int | None]] = []
        for kind, session_id in steps:
            suffix = "" if session_id is None else f"?session-id={session_id}"
            if kind == "subscription":
                subscriptions.append((transport.add_subscription("aeron:ipc" + suffix, 9), session_id))
            elif session_id is None or all(p.session_id != session_id for p in publications):
                publications.append(transport.add_publication("aeron:ipc" + suffix, 9))
        for subscription, wanted in subscriptions:
            expected = sorted(p.session_id for p in publications if wanted in (None, p.session_id))
            assert sorted(image.session_id for image in subscription.images) == expected
        for publication in publications:
            wanted_by = [s for s, wanted in subscriptions if wanted in (None, publication.session_id)]
            assert publication.is_connected == bool(wanted_by)


# ================================================================================== real UDP on loopback


def test_real_udp_with_loss_delivers_everything_in_order() -> None:
    network = UdpNetwork()
    config = {"bind_host": "127.0.0.1", "udp_term_length": TERM, "data_loss": 0.1}
    with (
        Transport(network, TransportConfig(seed=1, **config)) as a,
        Transport(network, TransportConfig(seed=2, **config)) as b,
    ):  # type: ignore[arg-type]
        sub = b.add_subscription("aeron:udp?endpoint=127.0.0.1:0", STREAM)
        assert sub.local_address is not None and sub.local_address[1] != 0
        pub = a.add_publication(f"aeron:udp?endpoint=127.0.0.1:{sub.local_address[1]}", STREAM)
        collector = Collector()
        producer = Producer(pub, [message(i, [0, 100, 3000, 8192][i % 4]) for i in range(600)])
        assert run_real(
            lambda: len(collector.messages) == 600, [producer, a.do_work, b.do_work, poller(sub, collector)]
        )
        assert collector.payloads == producer.messages
        assert b.counters.data_loss_drops > 0
        assert b.counters.malformed_datagrams == 0


def test_real_udp_end_of_stream_on_transport_close() -> None:
    network = UdpNetwork()
    b = Transport(network, TransportConfig(bind_host="127.0.0.1", udp_term_length=TERM, seed=3))
    a = Transport(network, TransportConfig(bind_host="127.0.0.1", udp_term_length=TERM, seed=4))
    with b, a:  # close() is idempotent: the explicit a.close() below is the point of the test
        unavailable: list[Image] = []
        sub = b.add_subscription(
            "aeron:udp?endpoint=127.0.0.1:0", STREAM, on_unavailable_image=unavailable.append
        )
        assert sub.local_address is not None
        pub = a.add_publication(f"aeron:udp?endpoint=127.0.0.1:{sub.local_address[1]}", STREAM)
        collector = Collector()
        assert run_real(lambda: pub.is_connected, [a.do_work, b.do_work])
        for i in range(20):
            assert pub.offer(message(i, 200)) > 0
        assert run_real(lambda: len(collector.messages) == 20, [a.do_work, b.do_work, poller(sub, collector)])
        a.close()  # sends an end-of-stream heartbeat at once
        assert run_real(lambda: bool(unavailable), [b.do_work, poller(sub, collector)], timeout_s=5)
        assert unavailable[0].is_end_of_stream
        assert collector.payloads == [message(i, 200) for i in range(20)]
