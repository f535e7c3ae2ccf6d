"""Spy subscriptions (``aeron-spy:aeron:udp?...``): a network publication's log read in place by a
subscription of the same transport (docs/transport.md, "Spy subscriptions").

Aeron's semantics: a spy matches the network publications of its transport on the same channel (endpoint
or control address, or the channel tag it names) and stream, optionally one session; it joins at the
sender position; the publisher may run no more than the term window ahead of the slowest spy, but spies
alone do not make a publication connected; no partition a spy still needs is cleaned; when the
publication closes, the spy reads to the end, reaches end of stream and its image goes. It never opens a
socket. Everything runs over ``SimNetwork``, with one test on real UDP.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.transport_sim import (
    MS,
    Collector,
    Producer,
    S,
    Sim,
    message,
    poller,
    run_real,
)

from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.errors import ChannelUriError
from cluster.transport.image import Image
from cluster.transport.logbuffer import BACK_PRESSURED, NOT_CONNECTED
from cluster.transport.media import Address, UdpNetwork
from cluster.transport.publication import NetworkPublication, Publication
from cluster.transport.simnet import LinkConfig

A_HOST, B_HOST, C_HOST = "10.0.0.1", "10.0.0.2", "10.0.0.3"
CHANNEL = f"aeron:udp?endpoint={B_HOST}:40456"
SPY = "aeron-spy:" + CHANNEL
TERM = 64 * 1024
WINDOW = TERM // 2
STREAM = 7


def network_pub(pub: Publication) -> NetworkPublication:
    assert isinstance(pub, NetworkPublication)
    return pub


def drained(image: Image, pub: Publication) -> Callable[[], bool]:
    return lambda: image.position == pub.position


# ---------------------------------------------------------------------------------------- matching


def test_a_spy_reads_what_the_remote_subscriber_reads_without_a_socket() -> None:
    with Sim(1) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        available: list[Image] = []
        spy = a.add_subscription(SPY, STREAM, on_available_image=available.append)
        assert spy.images == [] and spy.local_address is None
        assert a._receive_endpoints == [] and a._send_endpoints == []  # no socket for a spy
        remote = b.add_subscription(CHANNEL, STREAM)
        pub = a.add_publication(CHANNEL, STREAM)
        assert [image.session_id for image in available] == [pub.session_id]  # a publication added later
        image = spy.images[0]
        assert (image.source_identity, image.join_position, image.stream_id) == ("aeron:ipc", 0, STREAM)
        assert (image.initial_term_id, image.term_length, image.mtu) == (pub.initial_term_id, TERM, pub.mtu)
        producer = Producer(pub, [message(i, [10, 3000, 700][i % 3]) for i in range(200)])
        spied, received = Collector(), Collector()
        sim.add(producer, poller(spy, spied), poller(remote, received))
        assert sim.run_until(lambda: producer.done and len(spied.messages) == len(received.messages) == 200)
        assert spied.payloads == received.payloads == producer.messages
        assert [m.position for m in spied.messages] == [m.position for m in received.messages]
        assert pub.position > 3 * TERM


def test_a_spy_joins_at_the_sender_position() -> None:
    with Sim(2) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        remote = b.add_subscription(CHANNEL, STREAM)
        pub = network_pub(a.add_publication(CHANNEL, STREAM))
        received = Collector()
        producer = Producer(pub, [message(i, 500) for i in range(40)])
        producer.limit = 20
        sim.add(producer, poller(remote, received))
        assert sim.run_until(lambda: len(received.messages) == 20)
        assert pub.sender_position == pub.position > 0
        spy = a.add_subscription(SPY, STREAM)
        assert spy.images[0].join_position == spy.images[0].position == pub.sender_position
        spied = Collector()
        producer.limit = 40
        sim.add(poller(spy, spied))
        assert sim.run_until(lambda: len(spied.messages) == 20 and len(received.messages) == 40)
        assert spied.payloads == producer.messages[20:]


def test_only_the_same_channel_stream_and_wanted_session() -> None:
    with Sim(3) as sim:
        a = sim.transport(A_HOST)
        pubs = [
            a.add_publication(f"{CHANNEL}|session-id=101", STREAM),
            a.add_publication(f"{CHANNEL}|session-id=102", STREAM),
            a.add_publication(f"{CHANNEL}|session-id=103", STREAM + 1),
            a.add_publication(f"aeron:udp?endpoint={C_HOST}:40456|session-id=104", STREAM),
            a.add_publication("aeron:ipc?session-id=105", STREAM),
        ]
        spy_all = a.add_subscription(SPY, STREAM)
        spy_one = a.add_subscription(f"{SPY}|session-id=102", STREAM)
        by_name = a.add_subscription("aeron-spy:aeron:udp?endpoint=localhost:40456", STREAM)
        assert sorted(image.session_id for image in spy_all.images) == [101, 102]
        assert [image.session_id for image in spy_one.images] == [102]
        assert by_name.images == []  # another address altogether (localhost is 127.0.0.1)
        late = a.add_publication(f"{CHANNEL}|session-id=106", STREAM)
        assert sorted(image.session_id for image in spy_all.images) == [101, 102, 106]
        assert [image.session_id for image in spy_one.images] == [102]
        assert len(pubs) + 1 == len(a._network_publications) + len(a._ipc_publications)
        assert late.is_connected is False


def test_a_spy_on_a_multi_destination_publication_by_its_control_address() -> None:
    with Sim(4) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        mdc = f"aeron:udp?control={A_HOST}:40999|control-mode=manual"
        pub = a.add_publication(mdc, STREAM)
        spy = a.add_subscription(f"aeron-spy:{mdc}", STREAM)
        unrelated = a.add_subscription(
            f"aeron-spy:aeron:udp?control={A_HOST}:40998|control-mode=manual", STREAM
        )
        assert len(spy.images) == 1 and unrelated.images == []
        remote = b.add_subscription(f"aeron:udp?endpoint={B_HOST}:40500", STREAM)
        a.add_destination(pub, f"aeron:udp?endpoint={B_HOST}:40500")
        spied, received = Collector(), Collector()
        producer = Producer(pub, [message(i, 800) for i in range(50)])
        sim.add(producer, poller(spy, spied), poller(remote, received))
        assert sim.run_until(lambda: len(spied.messages) == len(received.messages) == 50)
        assert spied.payloads == received.payloads == producer.messages


def test_a_spy_names_a_publication_by_its_channel_tag_as_the_archive_does() -> None:
    """The cluster tags its log channel; the archive records it locally with
    ``aeron-spy:aeron:udp?tags=<channel tag>|session-id=<log session>|alias=log``."""
    with Sim(5) as sim:
        a = sim.transport(A_HOST)
        log = a.add_publication(f"aeron:udp?control={A_HOST}:40999|control-mode=manual|tags=67,68", STREAM)
        other = a.add_publication(f"{CHANNEL}|tags=66", STREAM)
        spy = a.add_subscription(f"aeron-spy:aeron:udp?tags=67|session-id={log.session_id}|alias=log", STREAM)
        assert [image.session_id for image in spy.images] == [log.session_id]
        assert log.channel_tag == 67 and other.channel_tag == 66
        wrong_session = a.add_subscription(
            f"aeron-spy:aeron:udp?tags=67|session-id={other.session_id}", STREAM
        )
        assert wrong_session.images == []


def test_bad_spy_channels_are_refused() -> None:
    with Sim(6) as sim:
        a = sim.transport(A_HOST)
        with pytest.raises(ChannelUriError, match="needs a UDP channel"):
            a.add_subscription("aeron-spy:aeron:ipc", STREAM)
        with pytest.raises(ChannelUriError, match="endpoint, a control address or a channel tag"):
            a.add_subscription("aeron-spy:aeron:udp?alias=x", STREAM)
        with pytest.raises(ChannelUriError, match="spy channel"):
            a.add_publication(SPY, STREAM)


def test_a_spy_opens_no_socket_on_real_udp() -> None:
    network = UdpNetwork()
    opened: list[Address] = []
    real_open = network.open

    def watch(address: Address) -> object:
        opened.append(address)
        return real_open(address)

    network.open = watch  # type: ignore[method-assign, assignment]
    with Transport(network, TransportConfig(bind_host="127.0.0.1", udp_term_length=TERM, seed=7)) as a:
        a.add_subscription("aeron-spy:aeron:udp?endpoint=127.0.0.1:40456", STREAM)
        assert opened == []
        a.add_publication("aeron:udp?endpoint=127.0.0.1:40456", STREAM)
        assert len(opened) == 1  # the publication's own socket


# ------------------------------------------------------------------------------------ flow control


def test_spies_alone_do_not_make_a_publication_connected() -> None:
    with Sim(7) as sim:
        a = sim.transport(A_HOST)
        spy = a.add_subscription(SPY, STREAM)
        pub = a.add_publication(CHANNEL, STREAM)  # nobody listens at the endpoint
        assert len(spy.images) == 1
        sim.run_for(500 * MS)
        assert not pub.is_connected and pub.offer(b"x") == NOT_CONNECTED


def test_a_slow_spy_holds_the_publisher_a_term_window_ahead_of_it() -> None:
    with Sim(8) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        remote = b.add_subscription(CHANNEL, STREAM)
        spy = a.add_subscription(SPY, STREAM)
        pub = network_pub(a.add_publication(CHANNEL, STREAM))
        received = Collector()
        producer = Producer(pub, [message(i, 1000) for i in range(300)])
        sim.add(producer, poller(remote, received))
        assert sim.run_until(
            lambda: BACK_PRESSURED in producer.results and pub.sender_position == pub.position
        )
        spy_image = spy.images[0]
        assert spy_image.position == 0
        assert pub.position_limit == WINDOW  # the spy has read nothing: the window is counted from it
        assert pub.position >= WINDOW and received.payloads == producer.messages[: len(received.messages)]
        sim.run_for(200 * MS)
        assert producer.index == len(received.messages)  # stuck for the spy, though the receiver is done
        spied = Collector()
        sim.add(poller(spy, spied, 2))  # a slow spy: two fragments per duty cycle
        assert sim.run_until(lambda: producer.done and len(spied.messages) == len(received.messages) == 300)
        assert spied.payloads == received.payloads == producer.messages
        assert pub.position > 4 * TERM  # several terms: no partition was cleaned under the spy


def test_closing_a_slow_spy_releases_the_publisher() -> None:
    with Sim(9) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        remote = b.add_subscription(CHANNEL, STREAM)
        spy = a.add_subscription(SPY, STREAM)
        pub = a.add_publication(CHANNEL, STREAM)
        received = Collector()
        producer = Producer(pub, [message(i, 1000) for i in range(100)])
        sim.add(producer, poller(remote, received))
        assert sim.run_until(lambda: BACK_PRESSURED in producer.results)
        sim.run_for(100 * MS)
        assert not producer.done
        spy.close()
        assert network_pub(pub).spies == []
        assert sim.run_until(lambda: len(received.messages) == 100)
        assert received.payloads == producer.messages


def test_a_spy_and_a_lossy_receiver_over_many_terms() -> None:
    """Retransmits and a lagging spy both need old data: cleaning waits for the slowest of them."""
    lossy = LinkConfig(loss=0.1, duplicate=0.05, jitter_ns=200_000, reorder=0.05)
    with Sim(10, lossy) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        remote = b.add_subscription(CHANNEL, STREAM)
        spy = a.add_subscription(SPY, STREAM)
        pub = a.add_publication(CHANNEL, STREAM)
        spied, received = Collector(), Collector()
        producer = Producer(pub, [message(i, [30, 1300, 4000][i % 3]) for i in range(600)])
        sim.add(producer, poller(spy, spied, 3), poller(remote, received))
        assert sim.run_until(
            lambda: producer.done and len(spied.messages) == len(received.messages) == 600, 60 * S
        )
        assert spied.payloads == received.payloads == producer.messages


# ------------------------------------------------------------------------------------- end of stream


def test_a_closed_publication_ends_the_spy_once_it_has_read_everything() -> None:
    with Sim(11) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        remote = b.add_subscription(CHANNEL, STREAM)
        unavailable: list[Image] = []
        spy = a.add_subscription(SPY, STREAM, on_unavailable_image=unavailable.append)
        pub = network_pub(a.add_publication(CHANNEL, STREAM))
        assert sim.run_until(lambda: pub.is_connected)
        for i in range(10):
            assert pub.offer(message(i, 300)) > 0
        end = pub.position
        pub.close()
        image = spy.images[0]
        sim.run_for(6 * S)  # longer than the linger: the unread spy keeps the publication
        assert unavailable == [] and pub in a._network_publications and not pub.is_linger_done
        spied = Collector()
        image.poll(spied, 4)
        sim.run_for(10 * MS)
        assert unavailable == []
        image.poll(spied, 10)
        assert sim.run_until(lambda: bool(unavailable))
        assert unavailable == [image] and image.is_end_of_stream and image.is_closed
        assert image.end_of_stream_position == end == image.position
        assert spy.images == [] and pub.spies == []
        assert spied.payloads == [message(i, 300) for i in range(10)]
        assert sim.run_until(lambda: pub not in a._network_publications, 10 * S)  # then it lingers out
        assert len(remote.images) == 1  # the remote subscriber, which never polled, is another matter


def test_no_spy_attaches_to_a_closed_publication() -> None:
    with Sim(12) as sim:
        a = sim.transport(A_HOST)
        pub = a.add_publication(CHANNEL, STREAM)
        pub.close()
        assert a.add_subscription(SPY, STREAM).images == []


# ------------------------------------------------------------------------------------- block poll


def test_block_poll_on_a_spy_gives_the_publication_bytes() -> None:
    with Sim(13) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        remote = b.add_subscription(CHANNEL, STREAM)
        spy = a.add_subscription(SPY, STREAM)
        pub = a.add_publication(CHANNEL, STREAM)
        blocks: list[bytes] = []

        def record(term: memoryview, offset: int, length: int, session_id: int, term_id: int) -> None:
            assert session_id == pub.session_id
            position = ((term_id - pub.initial_term_id) % 2**32) * TERM + offset
            assert term is pub.log.terms[(position // TERM) % 3]  # the publication's own term, in place
            blocks.append(bytes(term[offset : offset + length]))

        producer = Producer(pub, [message(i, [100, 2000][i % 2]) for i in range(120)])
        received = Collector()
        sim.add(producer, lambda: spy.block_poll(record, 4096), poller(remote, received))
        assert sim.run_until(lambda: producer.done and spy.images[0].position == pub.position)
        assert sum(len(block) for block in blocks) == pub.position


# ------------------------------------------------------------------------------------------ real UDP


def test_a_spy_over_real_udp() -> None:
    network = UdpNetwork()
    config = {"bind_host": "127.0.0.1", "udp_term_length": TERM}
    with (
        Transport(network, TransportConfig(seed=21, **config)) as a,  # type: ignore[arg-type]
        Transport(network, TransportConfig(seed=22, **config)) as b,  # type: ignore[arg-type]
    ):
        remote = b.add_subscription("aeron:udp?endpoint=127.0.0.1:0", STREAM)
        assert remote.local_address is not None
        channel = f"aeron:udp?endpoint=127.0.0.1:{remote.local_address[1]}"
        spy = a.add_subscription(f"aeron-spy:{channel}", STREAM)
        pub = a.add_publication(channel, STREAM)
        spied, received = Collector(), Collector()
        producer = Producer(pub, [message(i, [0, 100, 3000][i % 3]) for i in range(300)])
        assert run_real(
            lambda: len(spied.messages) == len(received.messages) == 300,
            [producer, a.do_work, b.do_work, poller(spy, spied), poller(remote, received)],
        )
        assert spied.payloads == received.payloads == producer.messages


# ------------------------------------------------------------------------------ ssc: spies connect


@pytest.mark.parametrize("ssc", [True, False])
def test_with_ssc_a_spy_alone_connects_a_publication_without_receivers(ssc: bool) -> None:
    """``ssc=true`` (Aeron's spies-simulate-connection, the log of a one-member cluster): with a spy and no
    receiver, the publication is connected and runs as far as the spy reads; without ``ssc`` it is not
    connected and refuses offers."""
    with Sim(5) as sim:
        a = sim.transport(A_HOST)
        mdc = f"aeron:udp?control={A_HOST}:40997|control-mode=manual" + ("|ssc=true" if ssc else "")
        pub = a.add_publication(mdc, STREAM)
        assert not pub.is_connected and pub.offer(message(0, 100)) == NOT_CONNECTED
        spy = a.add_subscription(f"aeron-spy:{mdc}", STREAM)
        assert pub.is_connected is ssc
        spied = Collector()
        producer = Producer(pub, [message(i, 900) for i in range(200)])  # several term windows
        sim.add(producer, poller(spy, spied))
        if ssc:
            assert sim.run_until(lambda: len(spied.messages) == 200)
            assert spied.payloads == producer.messages
        else:
            sim.run_for(200 * MS)
            assert spied.messages == [] and pub.offer(message(1, 100)) == NOT_CONNECTED
