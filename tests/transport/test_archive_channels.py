"""Channels as Aeron Archive and its Java client write them, and session ids shared across channels
(docs/transport.md, "Channel URIs" and "Channel tags").

The archive client asks for its responses on a channel with an explicit ``session-id`` (the archive's
response publication reuses the client's session id, on another channel and stream), the archive records
with ``sparse=true`` and ``alias``, and the cluster names its log channel by ``tags`` so that the archive
can record it (a spy for the leader's local recording, a subscription sharing the follower's receive
endpoint for a remote one).
"""

from __future__ import annotations

import pytest
from support.transport_sim import Collector, Producer, Sim, message, poller

from cluster.transport.errors import ChannelUriError, TransportError
from cluster.transport.publication import NetworkPublication
from cluster.transport.uri import ChannelUri

A_HOST, B_HOST = "10.0.0.1", "10.0.0.2"
STREAM = 10

ARCHIVE_CLIENT_CHANNELS = [
    "aeron:udp?endpoint=127.0.0.1:9252|session-id=117448933|term-length=65536|sparse=true|mtu=1408",
    "aeron:udp?session-id=-1224040348|endpoint=127.0.0.1:39100",
    "aeron:ipc?term-length=64k",
    "aeron:udp?tags=67|session-id=2021085391|alias=log",
    "aeron:ipc?session-id=2021085397|alias=snapshot",
]


@pytest.mark.parametrize("text", ARCHIVE_CLIENT_CHANNELS)
def test_archive_client_channels_parse_and_print_back(text: str) -> None:
    uri = ChannelUri.parse(text)
    assert uri.build() == text


def test_the_parameters_of_archive_channels() -> None:
    first, second, ipc, tagged, snapshot = (ChannelUri.parse(text) for text in ARCHIVE_CLIENT_CHANNELS)
    assert (first.session_id, first.term_length, first.sparse, first.mtu) == (117448933, 65536, True, 1408)
    assert (second.session_id, second.endpoint) == (-1224040348, ("127.0.0.1", 39100))
    assert ipc.term_length == 64 * 1024
    assert (tagged.tags, tagged.session_id, tagged.alias, tagged.endpoint) == (
        (67, None),
        2021085391,
        "log",
        None,
    )
    assert (snapshot.session_id, snapshot.alias) == (2021085397, "snapshot")


@pytest.mark.parametrize("text", [ARCHIVE_CLIENT_CHANNELS[0], ARCHIVE_CLIENT_CHANNELS[1]])
def test_udp_archive_channels_carry_messages_on_their_session(text: str) -> None:
    with Sim(1, term_length=64 * 1024) as sim:
        transport = sim.transport(A_HOST)
        sub = transport.add_subscription(text, STREAM)  # session-id: only that session
        pub = transport.add_publication(text, STREAM)
        expected = ChannelUri.parse(text).session_id
        assert pub.session_id == expected and pub.term_length == 64 * 1024
        other = transport.add_publication(text.replace(f"session-id={expected}", "session-id=5"), STREAM)
        collector = Collector()
        producer = Producer(pub, [message(i, 2000) for i in range(30)])
        noise = Producer(other, [message(i, 10) for i in range(30)])
        sim.add(producer, noise, poller(sub, collector))
        assert sim.run_until(lambda: len(collector.messages) == 30)
        assert collector.payloads == producer.messages
        assert [image.session_id for image in sub.images] == [expected]


@pytest.mark.parametrize("text", [ARCHIVE_CLIENT_CHANNELS[2], ARCHIVE_CLIENT_CHANNELS[4]])
def test_ipc_archive_channels_carry_messages(text: str) -> None:
    with Sim(2) as sim:
        transport = sim.transport(A_HOST)
        pub = transport.add_publication(text, STREAM)
        sub = transport.add_subscription(text, STREAM)
        wanted = ChannelUri.parse(text).session_id
        assert wanted is None or pub.session_id == wanted
        collector = Collector()
        producer = Producer(pub, [message(i, 300) for i in range(20)])
        sim.add(producer, poller(sub, collector))
        assert sim.run_until(lambda: len(collector.messages) == 20)
        assert collector.payloads == producer.messages


# -------------------------------------------------------------------------------------- session ids


def test_one_session_id_on_different_channels_and_streams() -> None:
    """The archive's response publication reuses the client's session id: Aeron allows one session id
    on several channel and stream pairs, and so do we."""
    with Sim(3) as sim:
        transport = sim.transport(A_HOST)
        session = 117448933
        pubs = [
            transport.add_publication(f"aeron:udp?endpoint={B_HOST}:8010|session-id={session}", 10),
            transport.add_publication(f"aeron:udp?endpoint={B_HOST}:8010|session-id={session}", 20),
            transport.add_publication(f"aeron:udp?endpoint={B_HOST}:8011|session-id={session}", 10),
            transport.add_publication(f"aeron:ipc?session-id={session}", 10),
            transport.add_publication(f"aeron:ipc?session-id={session}", 20),
        ]
        assert {pub.session_id for pub in pubs} == {session}
        assert transport._session_ids[session] == 5
        for channel, stream in [
            (f"aeron:udp?endpoint={B_HOST}:8010|session-id={session}", 10),
            (f"aeron:udp?endpoint={B_HOST}:8010|session-id={session}|alias=same-place", 20),
            (f"aeron:ipc?session-id={session}", 10),
        ]:
            with pytest.raises(TransportError, match=f"session-id={session} clashes"):
                transport.add_publication(channel, stream)
        assert transport._session_ids[session] == 5  # the refusals took nothing


def test_a_session_id_is_free_again_once_its_publication_has_gone() -> None:
    with Sim(4) as sim:
        transport = sim.transport(A_HOST)
        channel = f"aeron:udp?endpoint={B_HOST}:8010|session-id=77|linger=0"
        first = transport.add_publication(channel, 10)
        first.close()
        with pytest.raises(TransportError, match="clashes"):
            transport.add_publication(channel, 10)  # still there until it has lingered out
        assert sim.run_until(lambda: first not in transport._network_publications)
        assert 77 not in transport._session_ids
        assert transport.add_publication(channel, 10).session_id == 77


def test_random_session_ids_avoid_every_session_id_in_use() -> None:
    with Sim(5) as sim:
        transport = sim.transport(A_HOST)
        explicit = [transport.add_publication(f"aeron:ipc?session-id={1001 + i}", 10) for i in range(3)]
        chosen = [transport.add_publication("aeron:ipc", 10) for _ in range(50)]
        ids = [pub.session_id for pub in [*explicit, *chosen]]
        assert len(set(ids)) == len(ids)
        assert all(not -1 <= pub.session_id <= 1000 for pub in chosen)


# ------------------------------------------------------------------------------------- channel tags


def test_a_subscription_names_a_receive_channel_by_its_tag_and_shares_its_images() -> None:
    """A follower's log subscription tags its channel; the archive's recording subscription names it by
    the tag (``aeron:udp?tags=67|session-id=...|alias=log``) and reads the same image."""
    with Sim(6) as sim:
        leader = sim.transport(A_HOST)
        follower = sim.transport(B_HOST)
        log_channel = f"aeron:udp?endpoint={B_HOST}:9030|tags=67,68"
        consensus = follower.add_subscription(log_channel, 100)
        pub = leader.add_publication(f"aeron:udp?endpoint={B_HOST}:9030", 100)
        assert sim.run_until(lambda: bool(consensus.images))
        recording = follower.add_subscription(f"aeron:udp?tags=67|session-id={pub.session_id}|alias=log", 100)
        assert recording.local_address == consensus.local_address  # the same endpoint, no new socket
        assert [image.session_id for image in recording.images] == [pub.session_id]
        assert len(follower._receive_endpoints) == 1
        recorded, consumed = Collector(), Collector()
        producer = Producer(pub, [message(i, 900) for i in range(40)])
        sim.add(producer, poller(recording, recorded), poller(consensus, consumed))
        assert sim.run_until(lambda: len(recorded.messages) == len(consumed.messages) == 40)
        assert recorded.payloads == consumed.payloads == producer.messages
        with pytest.raises(ChannelUriError, match="has tag 99"):
            follower.add_subscription("aeron:udp?tags=99", 100)
        with pytest.raises(ChannelUriError, match="needs an endpoint"):
            follower.add_subscription("aeron:udp?alias=nothing", 100)


def test_a_publication_names_a_send_channel_by_its_tag() -> None:
    with Sim(7) as sim:
        a = sim.transport(A_HOST)
        b = sim.transport(B_HOST)
        mdc = f"aeron:udp?control={A_HOST}:9040|control-mode=manual|tags=67"
        first = a.add_publication(mdc, 100)
        assert isinstance(first, NetworkPublication)
        a.add_destination(first, f"aeron:udp?endpoint={B_HOST}:9041")
        sub = b.add_subscription(f"aeron:udp?endpoint={B_HOST}:9041", 101)
        second = a.add_publication("aeron:udp?tags=67|alias=second", 101)
        assert isinstance(second, NetworkPublication)
        assert second.control_mode == "manual" and second.channel_tag == 67
        assert [d.address for d in second.destinations] == [(B_HOST, 9041)]  # the channel's destinations now
        collector = Collector()
        producer = Producer(second, [message(i, 100) for i in range(10)])
        sim.add(producer, poller(sub, collector))
        assert sim.run_until(lambda: len(collector.messages) == 10)
        assert collector.payloads == producer.messages
        with pytest.raises(ChannelUriError, match="has tag 5"):
            a.add_publication("aeron:udp?tags=5", 100)
