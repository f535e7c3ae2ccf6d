"""Multi-destination subscriptions (``docs/transport.md``, "Multi-destination subscriptions").

One subscription (``aeron:udp?control-mode=manual``) takes frames of one session on several receive
destinations into one image: a frame goes where its term id and offset say, whichever destination it came
on, and the first copy wins. The scenario that matters is Aeron Cluster's follower catch-up: an archive
replays the log (the live session id, positions from the follower's) to the catch-up destination while
the leader's live publication sends to the log destination from further ahead; the image fills in
position order and goes on with the live stream once the catch-up destination is removed.

The sources here are real publications of our transport, started at a position with the live stream's
session id, initial term id and term length (as Aeron Archive starts a replay), offering the same
messages as the live stream: so their frames are the live stream's, byte for byte. Most runs are over
``SimNetwork`` in virtual time; the catch-up also runs over real UDP on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.transport_sim import (
    DATA,
    MS,
    NAK,
    SM,
    Collector,
    Producer,
    RealWorld,
    S,
    Sim,
    message,
    poller,
)

from cluster.transport.driver import Transport
from cluster.transport.errors import ChannelUriError, TransportError
from cluster.transport.image import Image, ImageLog, Subscription
from cluster.transport.media import Address, format_address
from cluster.transport.publication import Publication
from cluster.transport.simnet import LinkConfig

LEADER, FOLLOWER, ARCHIVE, OTHER = "10.0.0.1", "10.0.0.2", "10.0.0.5", "10.0.0.3"
LOCAL = "127.0.0.1"
TERM = 64 * 1024
WINDOW = TERM // 2  # the receiver window: min(128 KiB, term / 2)
STREAM = 100
MDS = "aeron:udp?control-mode=manual"
SIZES = (100, 1500, 3000, 40, 700)
LOSSY = LinkConfig(loss=0.05, duplicate=0.05, jitter_ns=300_000, reorder=0.1)


def udp(address: Address) -> str:
    return f"aeron:udp?endpoint={format_address(address)}"


def _i32(value: int) -> int:
    return ((value + 2**31) % 2**32) - 2**31


def starting_at(channel: str, live: Publication, position: int) -> str:
    """``channel`` for a publication that continues ``live``'s stream at ``position``: its session id,
    initial term id and term length, and the term id and offset of ``position`` (as Aeron Archive starts a
    replay of a recording)."""
    shift = live.term_length.bit_length() - 1
    return (
        f"{channel}|session-id={live.session_id}|init-term-id={live.initial_term_id}"
        f"|term-id={_i32(live.initial_term_id + (position >> shift))}"
        f"|term-offset={position & (live.term_length - 1)}|term-length={live.term_length}"
    )


def image_log(subscription: Subscription) -> ImageLog:
    log = subscription.images[0].image_log
    assert log is not None
    return log


def socket_address(publication: Publication) -> Address:
    """Where a publication's datagrams come from (its send socket)."""
    address: Address = publication._endpoint.socket.local_address  # type: ignore[attr-defined]
    return address


@dataclass
class TwoSources:
    """A follower's MDS subscription with two destinations, and a publication of the same session on
    each: ``one`` from the leader (starting at position 0), ``two`` from the archive at ``two_at``."""

    leader: Transport
    archive: Transport
    follower: Transport
    subscription: Subscription
    first: Address
    second: Address
    one: Publication
    two: Publication


def two_sources(
    sim: Sim,
    *,
    initial_term_id: int = 0,
    two_at: int = 0,
    two_params: str = "",
    on_available_image: Callable[[Image], object] | None = None,
    on_unavailable_image: Callable[[Image], object] | None = None,
) -> TwoSources:
    leader, archive, follower = sim.transport(LEADER), sim.transport(ARCHIVE), sim.transport(FOLLOWER)
    sub = follower.add_subscription(
        MDS, STREAM, on_available_image=on_available_image, on_unavailable_image=on_unavailable_image
    )
    first = follower.add_rcv_destination(sub, f"aeron:udp?endpoint={FOLLOWER}:40600")
    second = follower.add_rcv_destination(sub, f"aeron:udp?endpoint={FOLLOWER}:40601")
    start = f"init-term-id={initial_term_id}|term-id={initial_term_id}|term-offset=0"
    one = leader.add_publication(f"{udp(first)}|{start}", STREAM)
    two = archive.add_publication(starting_at(f"{udp(second)}{two_params}", one, two_at), STREAM)
    return TwoSources(leader, archive, follower, sub, first, second, one, two)


class Pacer:
    """An agent that lets ``producer`` offer one more message every ``interval_ns`` of the clock, the first
    one interval from now (it does no work of its own, so a simulated clock moves on)."""

    def __init__(self, producer: Producer, clock: Callable[[], int], interval_ns: int, until: int) -> None:
        self.producer = producer
        self.clock = clock
        self.interval_ns = interval_ns
        self.until = until
        self.next_ns = clock() + interval_ns

    def __call__(self) -> int:
        now_ns = self.clock()
        while now_ns >= self.next_ns and self.producer.limit < self.until:
            self.producer.limit += 1
            self.next_ns += self.interval_ns
        return 0


World = Sim | RealWorld


def live_log(
    world: World, leader: Transport, leader_host: str, other: Transport, other_host: str
) -> tuple[Publication, Collector]:
    """The leader's live log, from position 0: a manual MDC publication kept connected by another
    follower that keeps up (its messages are collected in the returned collector)."""
    other_sub = other.add_subscription(f"aeron:udp?endpoint={other_host}:0", STREAM)
    other_collector = Collector()
    world.add(poller(other_sub, other_collector))
    live = leader.add_publication(
        f"aeron:udp?control={leader_host}:0|control-mode=manual|init-term-id=0|term-id=0|term-offset=0",
        STREAM,
    )
    assert other_sub.local_address is not None
    leader.add_destination(live, udp(other_sub.local_address))
    return live, other_collector


@dataclass
class CatchUp:
    """What a catch-up run leaves to check."""

    live: Publication
    replay: Publication
    subscription: Subscription
    collector: Collector
    messages: list[bytes]
    live_positions: list[int]
    start: int
    catchup: Address
    available: list[Image]
    unavailable: list[Image]
    log_address: Address = ("", 0)
    merged_at_ns: int = 0
    connections_before_merge: int = 0


def catch_up(
    world: World,
    hosts: tuple[str, str, str, str],
    *,
    count: int = 240,
    start: int = 40,
    follower_config: dict[str, object] | None = None,
) -> CatchUp:
    """Aeron Cluster's follower catch-up, end to end: the follower joins at message ``start`` through its
    catch-up destination fed by an archive replay, adds its log destination when the replay is under way
    and removes the catch-up destination once it has everything the leader published."""
    leader_host, follower_host, archive_host, other_host = hosts
    leader = world.transport(leader_host)
    follower = world.transport(follower_host, **(follower_config or {}))
    archive = world.transport(archive_host)
    other = world.transport(other_host)
    live, other_collector = live_log(world, leader, leader_host, other, other_host)
    messages = [message(i, SIZES[i % len(SIZES)]) for i in range(count)]
    live_producer = Producer(live, messages)
    ahead = count // 2
    live_producer.limit = ahead
    world.add(live_producer)
    assert world.run_until(lambda: len(other_collector.messages) == ahead, 20 * S)

    # the follower has the log up to message `start`: it catches up through an MDS subscription
    available: list[Image] = []
    unavailable: list[Image] = []
    follower_position = live_producer.positions[start - 1]
    sub = follower.add_subscription(
        MDS, STREAM, on_available_image=available.append, on_unavailable_image=unavailable.append
    )
    catchup = follower.add_rcv_destination(sub, f"aeron:udp?endpoint={follower_host}:0")
    # the leader's archive replays the log from the follower's position, as far as it is recorded
    replay = archive.add_publication(
        starting_at(f"{udp(catchup)}|linger=0|eos=false", live, follower_position), STREAM
    )
    run = CatchUp(
        live,
        replay,
        sub,
        Collector(),
        messages,
        live_producer.positions,
        start,
        catchup,
        available,
        unavailable,
    )
    replay_producer = Producer(replay, messages[start:])

    def replaying() -> int:
        replay_producer.limit = live_producer.index - start
        return replay_producer()

    world.add(replaying, poller(sub, run.collector))
    assert world.run_until(lambda: bool(sub.images), 10 * S)
    image = sub.images[0]
    assert image.join_position == follower_position
    assert image.session_id == live.session_id and image.stream_id == STREAM
    assert world.run_until(lambda: len(run.collector.messages) >= 10, 10 * S)

    # under way: the follower adds its log destination and the leader sends the live log there too
    run.log_address = follower.add_rcv_destination(sub, f"aeron:udp?endpoint={follower_host}:0")
    leader.add_destination(live, udp(run.log_address))
    clock = leader.clock.nano_time
    world.add(Pacer(live_producer, clock, 2 * MS, count))  # the live log goes on, a message every 2 ms
    log = image_log(sub)
    assert world.run_until(lambda: len(log.connections) == 2, 10 * S)

    # the leader sees the follower reach its publication position: it stops the replay; the follower
    # removes the catch-up destination, and the image goes on with the live stream alone
    assert world.run_until(lambda: image.position >= live.position and live_producer.index < count, 30 * S)
    run.connections_before_merge = len(log.connections)
    run.merged_at_ns = clock()
    replay.close()
    follower.remove_rcv_destination(sub, udp(run.catchup))
    assert len(log.connections) == 1
    assert world.run_until(lambda: len(run.collector.messages) == count - start, 30 * S), (
        f"{len(run.collector.messages)} of {count - start} messages"
    )
    assert live_producer.done and replay_producer.index < count - start  # the live stream finished it
    return run


def check_catch_up(run: CatchUp) -> None:
    """Every message from the join on, once, in order, at the live stream's positions; one image."""
    assert run.collector.payloads == run.messages[run.start :]
    assert [m.position for m in run.collector.messages] == run.live_positions[run.start :]
    assert run.connections_before_merge == 2
    assert len(run.available) == 1 and not run.unavailable
    assert run.subscription.image_count == 1


# ================================================================== 1. merging a replay with the live stream


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_replay_and_the_live_stream_merge_into_one_gap_free_image_over_a_lossy_network(seed: int) -> None:
    with Sim(seed, LOSSY, term_length=TERM) as sim:
        run = catch_up(sim, (LEADER, FOLLOWER, ARCHIVE, OTHER))
        check_catch_up(run)
        log = image_log(run.subscription)
        assert log.out_of_window_packets > 0  # the live stream's frames ahead of the window were dropped
        # each destination answers its own source, from its own socket
        control = socket_address(run.live)
        replay_socket = socket_address(run.replay)
        sms = sim.wire.of(SM, source_host=FOLLOWER)
        to_replay = [f for f in sms if f.source == run.catchup]
        to_live = [f for f in sms if f.source == run.log_address]
        assert to_replay and to_live and len(to_replay) + len(to_live) == len(sms)
        assert {f.destination for f in to_replay} == {replay_socket}
        assert {f.destination for f in to_live} == {control}
        for frame in sim.wire.of(NAK, source_host=FOLLOWER):
            assert (frame.source, frame.destination) in (
                (run.catchup, replay_socket),
                (run.log_address, control),
            )
        # after the merge nothing leaves the catch-up destination, whose socket is closed
        assert not [f for f in sim.wire.frames if f.source == run.catchup and f.time_ns > run.merged_at_ns]
        assert run.catchup not in sim.net.bound_addresses()


def test_a_replay_and_the_live_stream_merge_into_one_image_over_real_udp_with_loss() -> None:
    with RealWorld(seed=7, term_length=TERM) as world:
        # the follower drops 5% of the DATA datagrams it receives, on either destination
        run = catch_up(
            world, (LOCAL, LOCAL, LOCAL, LOCAL), count=160, start=30, follower_config={"data_loss": 0.05}
        )
        check_catch_up(run)
        assert run.subscription.images[0].image_log.naks_sent > 0  # type: ignore[union-attr]


def test_the_same_stream_from_two_sources_is_delivered_once() -> None:
    with Sim(11, term_length=TERM) as sim:
        sources = two_sources(sim, initial_term_id=5)
        sub, one, two = sources.subscription, sources.one, sources.two
        assert (sources.first, sources.second) == ((FOLLOWER, 40600), (FOLLOWER, 40601))
        messages = [message(i, SIZES[i % len(SIZES)]) for i in range(150)]
        producers = [Producer(one, messages), Producer(two, messages)]
        collector = Collector()
        sim.add(*producers, poller(sub, collector))
        assert sim.run_until(lambda: len(collector.messages) == 150, 20 * S)
        sim.run_for(50 * MS)
        assert collector.payloads == messages
        assert producers[0].positions == producers[1].positions
        log = image_log(sub)
        datagrams = {
            f.source: len([d for d in sim.wire.of(DATA) if d.source == f.source and d.frame_length > 0])
            for f in sim.wire.of(DATA)
        }
        assert len(datagrams) == 2  # both sources sent the stream
        assert log.packets_received > max(datagrams.values())  # duplicates arrived and were ignored
        assert sub.image_count == 1 and len(log.connections) == 2
        assert sub.images[0].active_transport_count == 2
        sources.follower.remove_rcv_destination(sub, udp(sources.first))
        assert sub.images[0].active_transport_count == 1


# ============================================================================ 2. the window, and loss


def test_live_frames_beyond_the_window_are_dropped_and_recovered_by_nak_from_the_live_source() -> None:
    """The replay stops short of the live stream; the live frames within the window wait ahead of the
    rebuild position, those beyond it are dropped, and NAKs to the live source fill both gaps."""
    with Sim(21, term_length=TERM) as sim:
        leader, archive, follower, other = (sim.transport(h) for h in (LEADER, ARCHIVE, FOLLOWER, OTHER))
        live, other_collector = live_log(sim, leader, LEADER, other, OTHER)
        messages = [message(i, 1000) for i in range(110)]  # 1056 bytes of term each
        live_producer = Producer(live, messages)
        live_producer.limit = 38  # the live stream is at 40128
        sim.add(live_producer)
        assert sim.run_until(lambda: len(other_collector.messages) == 38)

        sub = follower.add_subscription(MDS, STREAM)
        catchup = follower.add_rcv_destination(sub, f"aeron:udp?endpoint={FOLLOWER}:40601")
        replay = archive.add_publication(starting_at(udp(catchup), live, 0), STREAM)
        replay_producer = Producer(replay, messages[:23])  # the replay stops at 24288
        collector = Collector()
        sim.add(replay_producer, poller(sub, collector))
        assert sim.run_until(lambda: len(collector.messages) == 23)
        log = image_log(sub)
        assert sim.run_until(lambda: log.last_sm_position == 23 * 1056)  # the window reaches 57056
        assert log.rebuild_position == 23 * 1056

        live_address = follower.add_rcv_destination(sub, f"aeron:udp?endpoint={FOLLOWER}:40600")
        leader.add_destination(live, udp(live_address))
        # a burst to 61248: beyond the window (24288 + 32768 = 57056), but close enough behind the live
        # sender (its term window and a longest message, 40960) for it to retransmit from 24288
        live_producer.limit = 58
        assert sim.run_until(lambda: log.hwm_position > log.rebuild_position)
        # live frames wait ahead of the rebuild position, within the window
        assert log.rebuild_position == 23 * 1056 < log.hwm_position <= 23 * 1056 + WINDOW
        sim.add(Pacer(live_producer, sim.net.clock.nano_time, 5 * MS, 110))
        assert sim.run_until(lambda: len(collector.messages) == 110, 10 * S)
        assert collector.payloads == messages
        assert log.out_of_window_packets > 0
        naks = [f for f in sim.wire.of(NAK, source_host=FOLLOWER) if f.source == live_address]
        assert naks and {f.destination for f in naks} == {socket_address(live)}
        assert live.retransmits_sent > 0  # type: ignore[attr-defined]
        assert replay.retransmits_sent == 0  # type: ignore[attr-defined]  # asked, but it has none of it


def test_each_destination_recovers_its_own_losses() -> None:
    """Loss on both links: NAKs go to every source heard from, each retransmits what it has."""
    with Sim(22, term_length=TERM) as sim:
        sim.net.set_link(LEADER, FOLLOWER, LinkConfig(loss=0.2))
        sim.net.set_link(ARCHIVE, FOLLOWER, LinkConfig(loss=0.2))
        sources = two_sources(sim)
        sub, one, two = sources.subscription, sources.one, sources.two
        messages = [message(i, 1200) for i in range(300)]
        collector = Collector()
        sim.add(Producer(one, messages), Producer(two, messages), poller(sub, collector))
        assert sim.run_until(lambda: len(collector.messages) == 300, 30 * S)
        assert collector.payloads == messages
        naks = sim.wire.of(NAK, source_host=FOLLOWER)
        assert {(f.source, f.destination) for f in naks} == {
            (sources.first, socket_address(one)),
            (sources.second, socket_address(two)),
        }


# ========================================================================== 3. destinations come and go


def test_a_removed_destination_feeds_the_image_no_more_and_its_socket_closes() -> None:
    with Sim(31, term_length=TERM) as sim:
        a, b = sim.transport(LEADER), sim.transport(FOLLOWER)
        unavailable: list[Image] = []
        sub = b.add_subscription(MDS, STREAM, on_unavailable_image=unavailable.append)
        address = b.add_rcv_destination(sub, f"aeron:udp?endpoint={FOLLOWER}:0")
        pub = a.add_publication(udp(address), STREAM)
        producer = Producer(pub, [message(i, 500) for i in range(100)])
        producer.limit = 50
        collector = Collector()
        sim.add(producer, poller(sub, collector))
        assert sim.run_until(lambda: len(collector.messages) == 50)
        b.remove_rcv_destination(sub, f"aeron:udp?endpoint={FOLLOWER}:0")  # as it was added
        removed_at = sim.now_ns
        assert address not in sim.net.bound_addresses()
        assert sub.image_count == 1 and not image_log(sub).connections
        producer.limit = 100
        sim.run_for(1 * S)
        assert len(collector.messages) == 50
        assert not [f for f in sim.wire.frames if f.source == address and f.time_ns > removed_at]
        # with no source left the image goes after the image liveness timeout
        assert sim.run_until(lambda: bool(unavailable), 10 * S)
        assert not unavailable[0].is_end_of_stream and sub.image_count == 0


def test_a_destination_shares_the_socket_of_a_subscription_on_the_same_address() -> None:
    with Sim(32, term_length=TERM) as sim:
        a, b = sim.transport(LEADER), sim.transport(FOLLOWER)
        channel = f"aeron:udp?endpoint={FOLLOWER}:40700"
        plain = b.add_subscription(channel, STREAM)
        mds = b.add_subscription(MDS, STREAM)
        assert b.add_rcv_destination(mds, channel) == (FOLLOWER, 40700)
        assert sim.net.bound_addresses().count((FOLLOWER, 40700)) == 1
        pub = a.add_publication(channel, STREAM)
        messages = [message(i, 300) for i in range(200)]
        producer = Producer(pub, messages)
        producer.limit = 100
        plain_collector, mds_collector = Collector(), Collector()
        sim.add(producer, poller(plain, plain_collector), poller(mds, mds_collector))
        assert sim.run_until(lambda: len(plain_collector.messages) == len(mds_collector.messages) == 100)
        assert plain.images[0].image_log is not mds.images[0].image_log  # two receivers, two images
        b.remove_rcv_destination(mds, f"aeron:udp?endpoint={FOLLOWER}:40700")
        assert (FOLLOWER, 40700) in sim.net.bound_addresses()  # the plain subscription still uses it
        producer.limit = 200
        assert sim.run_until(lambda: len(plain_collector.messages) == 200)
        assert plain_collector.payloads == messages and len(mds_collector.messages) == 100
        plain.close()
        assert (FOLLOWER, 40700) not in sim.net.bound_addresses()
        mds.close()


def test_closing_the_subscription_closes_its_destinations() -> None:
    with Sim(33, term_length=TERM) as sim:
        b = sim.transport(FOLLOWER)
        sub = b.add_subscription(MDS, STREAM)
        addresses = [b.add_rcv_destination(sub, f"aeron:udp?endpoint={FOLLOWER}:0") for _ in range(3)]
        assert len(set(addresses)) == 3 and all(a in sim.net.bound_addresses() for a in addresses)
        assert sub.local_address is None
        sub.close()
        assert not sim.net.bound_addresses()
        assert b._receive_endpoints == [] and b._receive_destinations == []


def test_a_destination_removed_and_added_again_feeds_the_same_image() -> None:
    with Sim(34, term_length=TERM) as sim:
        a, b = sim.transport(LEADER), sim.transport(FOLLOWER)
        sub = b.add_subscription(MDS, STREAM)
        channel = f"aeron:udp?endpoint={FOLLOWER}:40600"
        b.add_rcv_destination(sub, channel)
        pub = a.add_publication(channel, STREAM)
        messages = [message(i, 500) for i in range(60)]
        producer = Producer(pub, messages)
        producer.limit = 30
        collector = Collector()
        sim.add(producer, poller(sub, collector))
        assert sim.run_until(lambda: len(collector.messages) == 30)
        b.remove_rcv_destination(sub, channel)
        sim.run_for(500 * MS)  # the publication goes on sending to a closed port meanwhile
        b.add_rcv_destination(sub, channel)
        producer.limit = 60
        assert sim.run_until(lambda: len(collector.messages) == 60, 5 * S)
        assert collector.payloads == messages and sub.image_count == 1


# ================================================================================ 4. images and their end


def test_one_image_per_session_and_its_end_when_every_source_has_ended() -> None:
    """End of stream from one source while another still feeds the image does not end it; the image ends
    once every source it has has sent end of stream, at the furthest end position."""
    with Sim(41, term_length=TERM) as sim:
        available: list[Image] = []
        unavailable: list[Image] = []
        sources = two_sources(
            sim, on_available_image=available.append, on_unavailable_image=unavailable.append
        )
        sub, one, two = sources.subscription, sources.one, sources.two
        messages = [message(i, 800) for i in range(80)]
        producers = [Producer(one, messages[:40]), Producer(two, messages)]
        producers[1].limit = 40
        collector = Collector()
        sim.add(*producers, poller(sub, collector))
        assert sim.run_until(lambda: len(collector.messages) == 40 and producers[0].done)
        one.close()  # end of stream from the first source at message 40
        sim.run_for(1 * S)
        log = image_log(sub)
        assert [c.eos_position for c in log.connections] == [producers[0].positions[-1], -1]
        assert log.end_of_stream_position == -1 and not unavailable
        producers[1].limit = 80
        assert sim.run_until(lambda: len(collector.messages) == 80, 10 * S)  # the second goes on
        two.close()
        assert sim.run_until(lambda: bool(unavailable), 10 * S)
        assert len(available) == 1 and len(unavailable) == 1
        assert unavailable[0].is_end_of_stream
        assert unavailable[0].end_of_stream_position == producers[1].positions[-1] == two.position
        assert collector.payloads == messages


def test_end_of_stream_from_the_last_source_left_after_a_removal_ends_the_image() -> None:
    with Sim(42, term_length=TERM) as sim:
        unavailable: list[Image] = []
        sources = two_sources(sim, two_params="|eos=false", on_unavailable_image=unavailable.append)
        sub, one, two = sources.subscription, sources.one, sources.two
        messages = [message(i, 800) for i in range(40)]
        collector = Collector()
        sim.add(Producer(one, messages), Producer(two, messages), poller(sub, collector))
        assert sim.run_until(lambda: len(collector.messages) == 40)
        sim.run_for(100 * MS)
        one.close()
        sim.run_for(500 * MS)
        assert not unavailable  # the second source has not ended (it never will: eos=false)
        sources.follower.remove_rcv_destination(sub, udp(sources.second))
        assert sim.run_until(lambda: bool(unavailable), 1 * S)
        assert unavailable[0].is_end_of_stream and unavailable[0].end_of_stream_position == one.position


def test_an_image_whose_sources_all_fall_silent_goes_after_the_liveness_timeout() -> None:
    with Sim(43, term_length=TERM) as sim:
        unavailable: list[Image] = []
        sources = two_sources(sim, on_unavailable_image=unavailable.append)
        sub = sources.subscription
        assert sim.run_until(lambda: sub.image_count == 1 and len(image_log(sub).connections) == 2)
        sources.leader.abort()
        sim.run_for(3 * S)
        sources.archive.abort()
        silent_at = sim.now_ns
        assert sim.run_until(lambda: bool(unavailable), 11 * S)
        # ten seconds after the last heartbeat (they come every 100 ms)
        assert 9_900 * MS <= sim.now_ns - silent_at <= 10_100 * MS
        assert not unavailable[0].is_end_of_stream


def test_status_messages_go_only_to_sources_heard_from_in_the_last_five_seconds() -> None:
    with Sim(44, term_length=TERM) as sim:
        sources = two_sources(sim)
        sub, first, second = sources.subscription, sources.first, sources.second
        assert sim.run_until(lambda: sub.image_count == 1 and len(image_log(sub).connections) == 2)
        sources.archive.abort()  # the second source falls silent
        silent_at = sim.now_ns
        sim.run_for(7 * S)
        sms = [f for f in sim.wire.of(SM, source_host=FOLLOWER) if f.time_ns > silent_at]
        to_second = [f.time_ns - silent_at for f in sms if f.source == second]
        to_first = [f for f in sms if f.source == first]
        assert to_second and max(to_second) <= 5 * S  # none once it has been silent 5 s
        assert to_first and max(f.time_ns for f in to_first) > silent_at + 6 * S


def test_a_session_id_filter_still_filters() -> None:
    with Sim(45, term_length=TERM) as sim:
        a, r, b = sim.transport(LEADER), sim.transport(ARCHIVE), sim.transport(FOLLOWER)
        sub = b.add_subscription(f"{MDS}|session-id=777", STREAM)
        first = b.add_rcv_destination(sub, f"aeron:udp?endpoint={FOLLOWER}:40600")
        second = b.add_rcv_destination(sub, f"aeron:udp?endpoint={FOLLOWER}:40601")
        wanted = a.add_publication(f"{udp(first)}|session-id=777", STREAM)
        r.add_publication(f"{udp(second)}|session-id=888", STREAM)
        a.add_publication(f"{udp(first)}|session-id=999", STREAM)
        collector = Collector()
        sim.add(Producer(wanted, [message(i, 100) for i in range(10)]), poller(sub, collector))
        assert sim.run_until(lambda: len(collector.messages) == 10)
        sim.run_for(500 * MS)
        assert [image.session_id for image in sub.images] == [777]
        assert b.counters.unknown_stream_datagrams > 0


def test_a_subscription_naming_the_channel_tag_shares_the_images() -> None:
    """Aeron Cluster's follower log subscription is tagged so that the archive can record it by the tag."""
    with Sim(46, term_length=TERM) as sim:
        a, b = sim.transport(LEADER), sim.transport(FOLLOWER)
        log_sub = b.add_subscription(f"{MDS}|tags=9", STREAM)
        recording = b.add_subscription("aeron:udp?tags=9", STREAM)
        address = b.add_rcv_destination(recording, f"aeron:udp?endpoint={FOLLOWER}:0")  # either may add
        pub = a.add_publication(udp(address), STREAM)
        messages = [message(i, 100) for i in range(20)]
        collectors = [Collector(), Collector()]
        sim.add(Producer(pub, messages), poller(log_sub, collectors[0]), poller(recording, collectors[1]))
        assert sim.run_until(lambda: all(len(c.messages) == 20 for c in collectors))
        assert log_sub.images[0].image_log is recording.images[0].image_log
        log_sub.close()
        assert address in sim.net.bound_addresses()  # the destinations belong to the channel
        b.remove_rcv_destination(recording, udp(address))
        assert address not in sim.net.bound_addresses()


# ============================================================================================= 5. misuse


def test_misuse_raises_the_transports_errors() -> None:
    with Sim(51, term_length=TERM) as sim:
        b = sim.transport(FOLLOWER)
        plain = b.add_subscription(f"aeron:udp?endpoint={FOLLOWER}:40700", STREAM)
        ipc = b.add_subscription("aeron:ipc", STREAM)
        b.add_publication(f"aeron:udp?endpoint={LEADER}:40800", STREAM)
        spy = b.add_subscription(f"aeron-spy:aeron:udp?endpoint={LEADER}:40800", STREAM)
        mds = b.add_subscription(MDS, STREAM)
        channel = f"aeron:udp?endpoint={FOLLOWER}:40600"
        for subscription in (plain, ipc, spy):
            with pytest.raises(TransportError, match="multi-destination subscription"):
                b.add_rcv_destination(subscription, channel)
            with pytest.raises(TransportError, match="multi-destination subscription"):
                b.remove_rcv_destination(subscription, channel)
        with pytest.raises(TransportError, match="is not a destination"):
            b.remove_rcv_destination(mds, channel)
        b.add_rcv_destination(mds, channel)
        with pytest.raises(TransportError, match="already a destination"):
            b.add_rcv_destination(mds, channel)
        for bad in ("aeron:ipc", "aeron:udp?control-mode=manual", "aeron:udp?endpoint", "not a channel"):
            with pytest.raises(ChannelUriError):
                b.add_rcv_destination(mds, bad)
        with pytest.raises(ChannelUriError, match="not an endpoint"):
            b.add_subscription(f"aeron:udp?endpoint={FOLLOWER}:40601|control-mode=manual", STREAM)
        b.add_subscription(f"aeron:udp?endpoint={FOLLOWER}:40702|tags=3", STREAM)
        with pytest.raises(ChannelUriError, match="not a multi-destination one"):
            b.add_subscription(f"{MDS}|tags=3", STREAM)
        b.remove_rcv_destination(mds, channel)
        with pytest.raises(TransportError, match="is not a destination"):
            b.remove_rcv_destination(mds, channel)
        mds.close()
        with pytest.raises(TransportError, match="closed"):
            b.add_rcv_destination(mds, channel)
        other = b.add_subscription(MDS, STREAM)
        b.close()
        with pytest.raises(TransportError, match="closed"):
            b.add_rcv_destination(other, channel)


def test_errors_are_transport_errors() -> None:
    assert issubclass(ChannelUriError, TransportError)


# ======================================================================== 6. any interleaving of two sources


@dataclass(frozen=True)
class Step:
    source: int  # the source whose producer may offer ``count`` more messages
    count: int
    advance_ms: int  # then time runs this long


def align32(value: int) -> int:
    return (value + 31) // 32 * 32


def layout(sizes: list[int], term_length: int = TERM, mtu: int = 1408) -> list[int]:
    """Where each message ends in a stream that starts at position 0 (``docs/transport.md``, "Fragmentation
    and reassembly" and "Messages never straddle terms"), worked out independently of the appender."""
    payload = mtu - 32
    position = 0
    ends = []
    for size in sizes:
        full, rest = divmod(size, payload)
        length = full * mtu + (align32(rest + 32) if rest or not full else 0)
        if position % term_length + length > term_length:
            position += term_length - position % term_length  # PAD to the end of the term
        position += length
        ends.append(position)
    return ends


schedules = st.lists(st.builds(Step, st.integers(0, 1), st.integers(1, 25), st.integers(0, 30)), max_size=25)
links = st.builds(
    LinkConfig,
    loss=st.sampled_from([0.0, 0.05, 0.2]),
    duplicate=st.sampled_from([0.0, 0.1]),
    delay_ns=st.sampled_from([50_000, 2 * MS]),
    jitter_ns=st.sampled_from([0, 1 * MS]),
    reorder=st.sampled_from([0.0, 0.2]),
)


@st.composite
def plans(draw: st.DrawFn) -> tuple[list[int], int, int]:
    """Message sizes, and where the two sources' ranges meet: the first covers messages [0, first_end),
    the second [second_start, count), with second_start <= first_end, so together they cover the stream."""
    sizes = draw(st.lists(st.sampled_from([0, 32, 100, 1376, 1377, 3000, 7000]), min_size=20, max_size=100))
    count = len(sizes)
    second_start = draw(st.integers(1, count - 1))
    first_end = draw(st.integers(second_start, count))
    return sizes, second_start, first_end


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    plan=plans(),
    schedule=schedules,
    link_one=links,
    link_two=links,
    initial_term_id=st.sampled_from([0, -7, 2**31 - 2]),
)
def test_any_interleaving_of_two_overlapping_sources_gives_the_exact_stream(
    seed: int,
    plan: tuple[list[int], int, int],
    schedule: list[Step],
    link_one: LinkConfig,
    link_two: LinkConfig,
    initial_term_id: int,
) -> None:
    """Two sources of one session on two destinations, each over its own link, offering overlapping
    ranges of the same stream in any interleaving: the subscriber gets the stream from the image's join
    position on (the first source's start, or the second's if its SETUP came first), every message once,
    in order, at its position."""
    sizes, second_start, first_end = plan
    messages = [message(i, size) for i, size in enumerate(sizes)]
    ends = layout(sizes)
    context = f"seed={seed} ranges=[0,{first_end}) [{second_start},{len(sizes)}) schedule={schedule}"
    with Sim(seed, term_length=TERM) as sim:
        sim.net.set_link(LEADER, FOLLOWER, link_one)
        sim.net.set_link(ARCHIVE, FOLLOWER, link_two)
        sources = two_sources(sim, initial_term_id=initial_term_id, two_at=ends[second_start - 1])
        sub, one, two = sources.subscription, sources.one, sources.two
        producers = [Producer(one, messages[:first_end]), Producer(two, messages[second_start:])]
        for producer in producers:
            producer.limit = 0
        collector = Collector()
        sim.add(*producers, poller(sub, collector, 3))
        for step in schedule:
            producer = producers[step.source]
            producer.limit = min(producer.limit + step.count, len(producer.messages))
            sim.run_for(step.advance_ms * MS + 1)
        for producer in producers:
            producer.limit = len(producer.messages)
        assert sim.run_until(lambda: bool(sub.images), 10 * S), context
        joined = sub.images[0].join_position
        assert joined in (0, ends[second_start - 1]), context
        first_index = 0 if joined == 0 else second_start
        expected = len(messages) - first_index
        done = sim.run_until(lambda: len(collector.messages) == expected and producers[0].done, 60 * S)
        assert done, context
        assert collector.payloads == messages[first_index:], context
        assert [m.position for m in collector.messages] == ends[first_index:], context
        assert producers[0].positions == ends[:first_end], context  # the layout was worked out right
