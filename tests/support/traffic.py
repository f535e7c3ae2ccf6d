"""Recorded runs of our transport over real UDP loopback, for the capture tests.

``record_pub_sub`` sends messages from one of our publications to one of our subscriptions, several
messages per duty cycle (so datagrams carry several frames), waits until all have arrived, idles long
enough for heartbeats, closes the publication (end of stream) and waits for the image to go, while a
``TapRecorder`` records every datagram either side sent. With ``data_loss`` the receiver drops DATA
datagrams on arrival, so the capture also holds NAKs and retransmissions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.logbuffer import ADMIN_ACTION, FragmentAssembler, Header
from cluster.transport.publication import NetworkPublication
from support.pcap import CapturedDatagram, TapRecorder


@dataclass(frozen=True, slots=True)
class RecordedRun:
    datagrams: list[CapturedDatagram]
    subscription_port: int
    publication_port: int
    session_id: int
    stream_id: int
    initial_term_id: int
    term_length: int
    final_position: int
    received: list[bytes]
    data_loss_drops: int


def record_pub_sub(
    messages: Sequence[bytes],
    *,
    stream_id: int = 10,
    data_loss: float = 0.0,
    seed: int = 1,
    term_length: str = "64k",
    batch: int = 6,
    idle_s: float = 0.25,
    deadline_s: float = 30.0,
) -> RecordedRun:
    recorder = TapRecorder()
    transport = Transport(config=TransportConfig(bind_host="127.0.0.1", data_loss=data_loss, seed=seed))
    transport.network.tap = recorder
    received: list[bytes] = []
    try:
        sub = transport.add_subscription("aeron:udp?endpoint=127.0.0.1:0", stream_id)
        assert sub.local_address is not None
        port = sub.local_address[1]
        pub = transport.add_publication(
            f"aeron:udp?endpoint=127.0.0.1:{port}|term-length={term_length}|linger=300ms", stream_id
        )
        assert isinstance(pub, NetworkPublication)

        def on_message(buffer: memoryview, header: Header) -> None:
            received.append(bytes(buffer))

        assembler = FragmentAssembler(on_message)
        deadline = time.monotonic() + deadline_s
        sent = 0

        def step() -> None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"recording timed out: sent {sent}, received {len(received)} of {len(messages)}, "
                    f"{transport.counters}, images {sub.image_count}"
                )
            transport.do_work()
            sub.poll(assembler, 64)

        while len(received) < len(messages):
            for _ in range(batch):
                if sent >= len(messages):
                    break
                result = pub.offer(messages[sent])
                if result == ADMIN_ACTION:
                    result = pub.offer(messages[sent])
                if result <= 0:
                    break
                sent += 1
            step()
        idle_until = time.monotonic() + idle_s
        while time.monotonic() < idle_until:
            step()
            time.sleep(0.002)
        pub.close()
        while sub.image_count:
            step()
            time.sleep(0.002)
        session_id, initial_term_id = pub.session_id, pub.initial_term_id
        final_position = pub.position
        publication_port = pub._endpoint.socket.local_address[1]  # type: ignore[attr-defined]
    finally:
        transport.close()
    assert not recorder.overflowed
    return RecordedRun(
        datagrams=recorder.datagrams,
        subscription_port=port,
        publication_port=publication_port,
        session_id=session_id,
        stream_id=stream_id,
        initial_term_id=initial_term_id,
        term_length=pub.term_length,
        final_position=final_position,
        received=received,
        data_loss_drops=transport.counters.data_loss_drops,
    )
