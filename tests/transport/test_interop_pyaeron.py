"""Interop with the real thing: pyaeron's Aeron C client and embedded C media driver over UDP loopback.

Each way -- our publication to a real subscription, a real publication to our subscription -- carries
10 MB of messages from empty to several times the MTU, where byte ``j`` of message ``i`` is
``(i + j) % 251``; what arrives must be every message, in order, byte for byte. Then the same with 5% of
DATA datagrams dropped by the receiving side: by our transport's loss generator
(``TransportConfig.data_loss``), so our NAKs must make the C driver retransmit, and by the C driver's own
loss interceptor (``AERON_UDP_CHANNEL_INCOMING_INTERCEPTORS=loss``), so its NAKs must make our
publication retransmit. Positions must agree on both sides, end of stream must reach the other side,
and a subscriber joining a running stream must be sent a SETUP on request, each way. Multi-destination
cast too: real subscriptions on our dynamic (joining by the control address) and manual publications, a
real dynamic publication to two of our subscriptions, and two real sessions into one of ours. And
multi-destination subscription: two real publications of one session, the second started mid-stream,
into two destinations of one of ours.

Both sides run in this one process: pyaeron's driver runs its own thread (``threading="shared"``), our
transport runs when a test's loop calls ``do_work``. Every loop is bounded by a wall-clock deadline and
fails with the counters of both sides.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.needs import need_module
from support.udp_relay import free_udp_port

from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.image import Image, Subscription
from cluster.transport.logbuffer import ADMIN_ACTION, FragmentAssembler, Header
from cluster.transport.publication import NetworkPublication

pyaeron = need_module("pyaeron", "the real Aeron C driver")

pytestmark = pytest.mark.interop

SIZES = (0, 1, 31, 32, 100, 1376, 1377, 2000, 5000, 20000)  # 1376 = MTU 1408 - header: one full frame
TOTAL_BYTES = 10 * 1024 * 1024
TERM_LENGTH = "1m"  # 10 MB crosses ten terms
STREAM_ID = 1001
DEADLINE_S = 60.0
LOSS_RATE = 0.05
# The C driver's loss interceptor, read from the environment when its driver context is made.
# recv-msg-mask is a bit mask of frame types: 1 << DATA.
C_DRIVER_LOSS_ENV = {
    "AERON_UDP_CHANNEL_INCOMING_INTERCEPTORS": "loss",
    "AERON_UDP_CHANNEL_TRANSPORT_BINDINGS_LOSS_ARGS": f"rate={LOSS_RATE}|seed=20240601|recv-msg-mask=0x2",
}
PATTERN = bytes(k % 251 for k in range(251 + max(SIZES)))
REAL_SM_THRESHOLD = 128 * 1024 // 4  # the C receiver's window (128 KiB) / 4
BEGIN, END = 0x80, 0x40


# ------------------------------------------------------------------------------------------ the stream


class MessageStream:
    """The messages of one run (``payload(i)``) and a check of what arrived, in order."""

    def __init__(self, total_bytes: int = TOTAL_BYTES, sizes: tuple[int, ...] = SIZES) -> None:
        self.sizes = sizes
        count = total = 0
        expected = hashlib.sha256()
        while total < total_bytes:
            payload = self.payload(count)
            expected.update(len(payload).to_bytes(4, "little") + payload)
            total += len(payload)
            count += 1
        self.count = count
        self.total_bytes = total
        self.expected_sha256 = expected.hexdigest()
        self.received = 0
        self.received_bytes = 0
        self._sha256 = hashlib.sha256()
        self.first_mismatch: str | None = None
        self.last_position = -1

    def payload(self, i: int) -> bytes:
        start = i % 251
        return PATTERN[start : start + self.sizes[i % len(self.sizes)]]

    def on_message(self, data: bytes, position: int) -> None:
        i = self.received
        self._sha256.update(len(data).to_bytes(4, "little") + data)
        if self.first_mismatch is None:
            expected = self.payload(i) if i < self.count else b"<nothing: more messages than sent>"
            if data != expected:
                at = next(
                    (j for j, (a, b) in enumerate(zip(data, expected, strict=False)) if a != b),
                    min(len(data), len(expected)),
                )
                self.first_mismatch = (
                    f"message {i}: {len(data)} bytes, expected {len(expected)}; first difference at byte {at}"
                )
        self.received = i + 1
        self.received_bytes += len(data)
        self.last_position = position

    @property
    def done(self) -> bool:
        return self.received >= self.count

    def verdict(self) -> str:
        return (
            f"received {self.received} of {self.count} messages ({self.received_bytes} of {self.total_bytes}"
            f" bytes); sha256 {self._sha256.hexdigest()}, expected {self.expected_sha256} (over all);"
            f" first mismatch: {self.first_mismatch or 'none'}"
        )

    def assert_complete(self) -> None:
        assert self.received == self.count and self.first_mismatch is None, self.verdict()
        assert self._sha256.hexdigest() == self.expected_sha256, self.verdict()


class RealAssembler:
    """Reassembles the fragments a pyaeron subscription delivers, by their header flags.

    pyaeron 0.1.0's ``poll(..., assemble=True)`` loses every message whose fragments are delivered by two
    ``poll`` calls (it seems to start a new assembler for each call), so the tests poll with
    ``assemble=False`` and reassemble here: BEGIN starts a message, continuations must follow in the same
    term at the next aligned offset, END delivers it with the position after its last frame.
    """

    def __init__(self, delegate: Callable[[bytes, int], object]) -> None:
        self.delegate = delegate
        self.parts: list[bytes] = []
        self.next: tuple[int, int] | None = None  # (term id, term offset) of the expected continuation
        self.broken = 0

    def __call__(self, buffer: Any, header: Any) -> None:
        flags = header.flags
        data = buffer.tobytes()
        following = (header.term_id, header.term_offset + ((header.frame_length + 31) & -32))
        if flags & (BEGIN | END) == BEGIN | END:
            self.delegate(data, header.position)
            return
        if flags & BEGIN:
            self.broken += self.next is not None
            self.parts = [data]
            self.next = following
            return
        if self.next != (header.term_id, header.term_offset):
            self.broken += 1
            self.parts, self.next = [], None
            return
        self.parts.append(data)
        self.next = following
        if flags & END:
            message = b"".join(self.parts)
            self.parts, self.next = [], None
            self.delegate(message, header.position)


def poll_real(subscription: Any, assembler: RealAssembler, fragment_limit: int = 64) -> int:
    return int(subscription.poll(assembler, fragment_limit, assemble=False))


# ------------------------------------------------------------------------------------------ diagnostics

_PUBLICATION_COUNTERS = (
    "position",
    "sender_position",
    "sender_limit",
    "receiver_position",
    "is_connected",
    "datagrams_sent",
    "setups_sent",
    "heartbeats_sent",
    "retransmits_sent",
    "naks_received",
    "sms_received",
    "short_sends",
)
_IMAGE_COUNTERS = (
    "join_position",
    "rebuild_position",
    "hwm_position",
    "packets_received",
    "heartbeats_received",
    "malformed_packets",
    "out_of_window_packets",
    "naks_sent",
    "sms_sent",
    "end_of_stream_position",
)


def publication_counters(publication: NetworkPublication) -> dict[str, object]:
    return {name: getattr(publication, name) for name in _PUBLICATION_COUNTERS}


def image_logs(subscription: Subscription) -> list[Any]:
    """The receiving ``ImageLog``s behind a subscription (the transport keeps them on its endpoint)."""
    endpoint = getattr(subscription, "_endpoint", None)
    return [] if endpoint is None else list(endpoint.images.values())


def image_counters(subscription: Subscription) -> list[dict[str, object]]:
    return [{name: getattr(log, name) for name in _IMAGE_COUNTERS} for log in image_logs(subscription)]


def real_state(publication: Any = None, subscription: Any = None) -> dict[str, object]:
    state: dict[str, object] = {}
    if publication is not None:
        state["real publication"] = {
            "session_id": publication.session_id,
            "position": publication.position,
            "is_connected": publication.is_connected,
        }
    if subscription is not None:
        images = [subscription.image_at_index(i) for i in range(subscription.image_count)]
        state["real images"] = [
            {"session_id": im.session_id, "position": im.position, "eos": im.is_end_of_stream}
            for im in images
            if im is not None
        ]
    return state


def run_until(
    condition: Callable[[], bool],
    step: Callable[[], object],
    what: str,
    diagnostics: Callable[[], object],
    timeout_s: float = DEADLINE_S,
) -> None:
    """Call ``step`` until ``condition`` holds; fail with ``diagnostics`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}\n{diagnostics()}")
        step()


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def real_aeron(tmp_path: Path) -> Iterator[Any]:
    """A pyaeron client on its own embedded C media driver."""
    with (
        pyaeron.MediaDriver(dir=str(tmp_path / "aeron"), threading="shared") as driver,
        pyaeron.Aeron(dir=driver.dir) as aeron,
    ):
        yield aeron


@pytest.fixture
def lossy_real_aeron(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A pyaeron client on a C media driver that drops ``LOSS_RATE`` of the DATA datagrams it receives."""
    for name, value in C_DRIVER_LOSS_ENV.items():
        monkeypatch.setenv(name, value)
    with (
        pyaeron.MediaDriver(dir=str(tmp_path / "aeron-lossy"), threading="shared") as driver,
        pyaeron.Aeron(dir=driver.dir) as aeron,
    ):
        yield aeron


def make_transport(data_loss: float = 0.0, seed: int = 1) -> Transport:
    return Transport(config=TransportConfig(bind_host="127.0.0.1", data_loss=data_loss, seed=seed))


# ---------------------------------------------------------------------------------------- our pub -> real sub


def send_ours_to_real(transport: Transport, aeron: Any, stream: MessageStream) -> NetworkPublication:
    port = free_udp_port()
    real_sub = aeron.add_subscription(f"aeron:udp?endpoint=127.0.0.1:{port}", STREAM_ID)
    pub = transport.add_publication(
        f"aeron:udp?endpoint=127.0.0.1:{port}|term-length={TERM_LENGTH}", STREAM_ID
    )
    assert isinstance(pub, NetworkPublication)

    assembler = RealAssembler(stream.on_message)
    sent = 0

    def step() -> None:
        nonlocal sent
        transport.do_work()
        while sent < stream.count:
            result = pub.offer(stream.payload(sent))
            if result > 0:
                sent += 1
            elif result != ADMIN_ACTION:
                break
        transport.do_work()
        poll_real(real_sub, assembler)

    def diagnostics() -> str:
        return (
            f"{stream.verdict()}\noffered {sent}\nour publication {publication_counters(pub)}\n"
            f"transport {transport.counters}\nbroken sequences {assembler.broken}\n"
            f"{real_state(subscription=real_sub)}"
        )

    run_until(lambda: stream.done, step, "the real subscription to receive every message", diagnostics)
    stream.assert_complete()
    assert stream.last_position == pub.position, diagnostics()
    assert assembler.broken == 0, diagnostics()
    # The real receiver's status messages carry its subscriber's position back to us. Like Aeron's
    # driver, it reports a new position only once the subscriber is more than a quarter of the receiver
    # window past the last one reported (a timed SM repeats the last), so the tail may stay unreported.
    run_until(
        lambda: 0 <= pub.position - pub.receiver_position <= REAL_SM_THRESHOLD,
        transport.do_work,
        "a status message with the real subscriber's position near the end",
        diagnostics,
    )
    assert transport.counters.malformed_datagrams == 0, diagnostics()
    return pub


def test_our_publication_to_a_real_subscription(real_aeron: Any) -> None:
    stream = MessageStream()
    transport = make_transport()
    try:
        send_ours_to_real(transport, real_aeron, stream)
    finally:
        transport.close()


def test_our_publication_retransmits_what_the_real_receiver_lost(lossy_real_aeron: Any) -> None:
    stream = MessageStream()
    transport = make_transport()
    try:
        pub = send_ours_to_real(transport, lossy_real_aeron, stream)
        counters = publication_counters(pub)
        assert pub.naks_received > 0 and pub.retransmits_sent > 0, counters
    finally:
        transport.close()


# ---------------------------------------------------------------------------------------- real pub -> our sub


def send_real_to_ours(transport: Transport, aeron: Any, stream: MessageStream) -> Subscription:
    sub = transport.add_subscription("aeron:udp?endpoint=127.0.0.1:0", STREAM_ID)
    assert sub.local_address is not None
    port = sub.local_address[1]
    real_pub = aeron.add_exclusive_publication(
        f"aeron:udp?endpoint=127.0.0.1:{port}|term-length={TERM_LENGTH}", STREAM_ID
    )

    def handler(buffer: memoryview, header: Header) -> None:
        stream.on_message(bytes(buffer), header.position())

    assembler = FragmentAssembler(handler)
    sent = 0

    def step() -> None:
        nonlocal sent
        transport.do_work()
        while sent < stream.count:
            result = real_pub.offer(stream.payload(sent))
            if result:
                sent += 1
            elif result != pyaeron.ADMIN_ACTION:
                break
        sub.poll(assembler, 64)

    def diagnostics() -> str:
        return (
            f"{stream.verdict()}\noffered {sent}\nour images {image_counters(sub)}\n"
            f"transport {transport.counters}\nassembler broken sequences "
            f"{assembler.broken_sequence_count}\n{real_state(publication=real_pub)}"
        )

    run_until(lambda: stream.done, step, "our subscription to receive every message", diagnostics)
    stream.assert_complete()
    assert stream.last_position == real_pub.position, diagnostics()
    assert assembler.broken_sequence_count == 0, diagnostics()
    assert transport.counters.malformed_datagrams == 0, diagnostics()
    assert all(log.malformed_packets == 0 and log.out_of_window_packets == 0 for log in image_logs(sub)), (
        diagnostics()
    )
    return sub


def test_a_real_publication_to_our_subscription(real_aeron: Any) -> None:
    stream = MessageStream()
    transport = make_transport()
    try:
        send_real_to_ours(transport, real_aeron, stream)
        assert transport.counters.images_created == 1, transport.counters
    finally:
        transport.close()


def test_our_naks_make_the_real_driver_retransmit(real_aeron: Any) -> None:
    stream = MessageStream()
    transport = make_transport(data_loss=LOSS_RATE, seed=7)
    try:
        sub = send_real_to_ours(transport, real_aeron, stream)
        assert transport.counters.data_loss_drops > 0, transport.counters
        assert sum(log.naks_sent for log in image_logs(sub)) > 0, image_counters(sub)
    finally:
        transport.close()


# ------------------------------------------------------------------------------------------ end of stream


def test_end_of_stream_from_our_publication_reaches_the_real_image(real_aeron: Any) -> None:
    port = free_udp_port()
    real_sub = real_aeron.add_subscription(f"aeron:udp?endpoint=127.0.0.1:{port}", STREAM_ID)
    transport = make_transport()
    try:
        pub = transport.add_publication(f"aeron:udp?endpoint=127.0.0.1:{port}|linger=1s", STREAM_ID)
        stream = MessageStream(total_bytes=50_000)
        send_small(transport, pub, stream)
        received: list[bytes] = []
        assembler = RealAssembler(lambda data, position: received.append(data))

        def step() -> None:
            transport.do_work()
            poll_real(real_sub, assembler)

        run_until(
            lambda: len(received) == stream.count,
            step,
            "the messages",
            lambda: (received, real_state(subscription=real_sub)),
        )
        assert received == [stream.payload(i) for i in range(stream.count)]
        image = real_sub.image_at_index(0)
        assert image is not None and not image.is_end_of_stream
        pub.close()
        run_until(
            lambda: image.is_end_of_stream,
            step,
            "the real image to reach end of stream",
            lambda: (publication_counters(pub), real_state(subscription=real_sub)),
            timeout_s=10,
        )
        assert image.position == pub.position
    finally:
        transport.close()


def send_small(transport: Transport, pub: Any, stream: MessageStream) -> None:
    """Offer every message of a small ``stream`` (it fits the publication window) once connected."""
    run_until(lambda: pub.is_connected, transport.do_work, "the publication to connect", lambda: "")
    for i in range(stream.count):
        while (result := pub.offer(stream.payload(i))) == ADMIN_ACTION:
            pass
        assert result > 0, (i, result)


def test_end_of_stream_from_a_real_publication_closes_our_image(real_aeron: Any) -> None:
    transport = make_transport()
    unavailable: list[Image] = []
    try:
        sub = transport.add_subscription(
            "aeron:udp?endpoint=127.0.0.1:0", STREAM_ID, on_unavailable_image=unavailable.append
        )
        assert sub.local_address is not None
        real_pub = real_aeron.add_publication(
            f"aeron:udp?endpoint=127.0.0.1:{sub.local_address[1]}|linger=1s", STREAM_ID
        )
        stream = MessageStream(total_bytes=50_000)
        run_until(
            lambda: real_pub.is_connected, transport.do_work, "the real publication to connect", lambda: ""
        )
        for i in range(stream.count):
            while not real_pub.offer(stream.payload(i)):
                transport.do_work()
        assembler = FragmentAssembler(
            lambda buffer, header: stream.on_message(bytes(buffer), header.position())
        )

        def step() -> None:
            transport.do_work()
            sub.poll(assembler, 64)

        run_until(lambda: stream.done, step, "the messages", lambda: (stream.verdict(), image_counters(sub)))
        stream.assert_complete()
        assert sub.image_count == 1
        image = sub.images[0]
        real_pub.close()
        run_until(
            lambda: bool(unavailable),
            step,
            "our image to go at end of stream",
            lambda: (image_counters(sub), transport.counters),
            timeout_s=10,
        )
        assert unavailable == [image] and image.is_end_of_stream
        assert image.position == stream.last_position
    finally:
        transport.close()


# ------------------------------------------------------------------------------------------ late joins


def counted(payload_index: int, tail: int) -> bytes:
    """A message that says its own index: 8 ASCII digits, then ``tail`` bytes."""
    return b"%08d" % payload_index + bytes(tail)


def test_our_subscription_joining_a_running_real_publication_asks_for_setup(real_aeron: Any) -> None:
    """Data for a session we have no image of: we send SM with SEND_SETUP, the C driver answers SETUP."""
    first = make_transport(seed=1)
    second: Transport | None = None
    try:
        sub = first.add_subscription("aeron:udp?endpoint=127.0.0.1:0", STREAM_ID)
        assert sub.local_address is not None
        port = sub.local_address[1]
        real_pub = real_aeron.add_exclusive_publication(
            f"aeron:udp?endpoint=127.0.0.1:{port}|term-length=64k", STREAM_ID
        )
        got: list[int] = []
        assembler = FragmentAssembler(lambda buffer, header: got.append(int(bytes(buffer[:8]))))
        sent = 0

        def pump(transport: Transport, subscription: Subscription | None, until: Callable[[], bool]) -> None:
            nonlocal sent

            def step() -> None:
                nonlocal sent
                transport.do_work()
                if real_pub.offer(counted(sent, 3000 if sent % 3 == 0 else 10)):
                    sent += 1
                if subscription is not None:
                    subscription.poll(assembler, 64)

            run_until(until, step, "the stream to flow", lambda: (len(got), sent, transport.counters))

        pump(first, sub, lambda: len(got) >= 2000)
        assert got == list(range(len(got)))
        first.close()
        before = len(got)
        second = make_transport(seed=2)
        sub2 = second.add_subscription(f"aeron:udp?endpoint=127.0.0.1:{port}", STREAM_ID)
        pump(second, sub2, lambda: len(got) >= before + 2000)
        joined = got[before:]
        assert joined == list(range(joined[0], joined[0] + len(joined))), "not a contiguous run"
        assert joined[0] >= before
        assert second.counters.setup_elicitations >= 1 and second.counters.images_created == 1
    finally:
        first.close()
        if second is not None:
            second.close()


def test_a_real_subscription_joining_our_running_publication_gets_a_setup(real_aeron: Any) -> None:
    """The C receiver gets data for an unknown session and asks us (SM with SEND_SETUP) for a SETUP."""
    port = free_udp_port()
    transport = make_transport()
    try:
        pub = transport.add_publication(f"aeron:udp?endpoint=127.0.0.1:{port}|term-length=64k", STREAM_ID)
        assert isinstance(pub, NetworkPublication)
        real_sub = real_aeron.add_subscription(f"aeron:udp?endpoint=127.0.0.1:{port}", STREAM_ID)
        got: list[int] = []
        assembler = RealAssembler(lambda data, position: got.append(int(data[:8])))
        sent = 0

        def pump(subscription: Any, until: Callable[[], bool]) -> None:
            def step() -> None:
                nonlocal sent
                transport.do_work()
                if pub.offer(counted(sent, 3000 if sent % 3 == 0 else 10)) > 0:
                    sent += 1
                if subscription is not None:
                    poll_real(subscription, assembler)

            run_until(until, step, "the stream to flow", lambda: (len(got), sent, publication_counters(pub)))

        pump(real_sub, lambda: len(got) >= 2000)
        assert got == list(range(len(got)))
        setups_before = pub.setups_sent
        real_sub.close()
        deadline = time.monotonic() + 0.3
        pump(None, lambda: time.monotonic() > deadline)  # our publication goes on sending to nobody
        before = len(got)
        real_sub = real_aeron.add_subscription(f"aeron:udp?endpoint=127.0.0.1:{port}", STREAM_ID)
        pump(real_sub, lambda: len(got) >= before + 2000)
        joined = got[before:]
        assert joined == list(range(joined[0], joined[0] + len(joined))), "not a contiguous run"
        assert pub.setups_sent > setups_before, publication_counters(pub)
    finally:
        transport.close()


# ------------------------------------------------------------------------------------------ multi-destination

MDC_BYTES = 2 * 1024 * 1024
MDC_SIZES = (0, 1, 100, 1377, 5000)


def offer_all(offer: Callable[[bytes], object], stream: MessageStream, sent: int, admin: object) -> int:
    """Offer the messages of ``stream`` from ``sent`` on until one is refused; the new ``sent``. Our
    ``offer`` returns a position (> 0) or a negative code, pyaeron's ``True`` or a falsy ``OfferCode``."""
    while sent < stream.count:
        result = offer(stream.payload(sent))
        if result is True or (type(result) is int and result > 0):
            sent += 1
        elif result != admin:
            break
    return sent


def our_publication_to_real_subscriptions(
    transport: Transport, pub: NetworkPublication, real_subs: list[Any], receivers: int
) -> None:
    streams = [MessageStream(MDC_BYTES, MDC_SIZES) for _ in real_subs]
    assemblers = [RealAssembler(stream.on_message) for stream in streams]
    sent = 0

    def step() -> None:
        nonlocal sent
        transport.do_work()
        if pub.receiver_count >= receivers:  # every receiver has joined: nobody misses the start
            sent = offer_all(pub.offer, streams[0], sent, ADMIN_ACTION)
        for real_sub, assembler in zip(real_subs, assemblers, strict=True):
            poll_real(real_sub, assembler)

    def diagnostics() -> str:
        return "\n".join(
            [
                *(stream.verdict() for stream in streams),
                f"offered {sent}, our publication {publication_counters(pub)}",
                f"destinations {[d.address for d in pub.destinations]}, receivers {pub.receiver_count}",
                *(str(real_state(subscription=real_sub)) for real_sub in real_subs),
            ]
        )

    run_until(lambda: all(s.done for s in streams), step, "every real subscription's messages", diagnostics)
    for stream, assembler in zip(streams, assemblers, strict=True):
        stream.assert_complete()
        assert stream.last_position == pub.position and assembler.broken == 0, diagnostics()


def test_real_subscriptions_join_our_dynamic_mdc_publication_by_its_control_address(real_aeron: Any) -> None:
    """Aeron's receivers ask to join with an SM of session id 0 *and stream id 0* (every stream)."""
    control = free_udp_port()
    transport = make_transport()
    try:
        pub = transport.add_publication(
            f"aeron:udp?control=127.0.0.1:{control}|control-mode=dynamic|fc=min|term-length=64k", STREAM_ID
        )
        assert isinstance(pub, NetworkPublication)
        real_subs = [
            real_aeron.add_subscription(
                f"aeron:udp?endpoint=127.0.0.1:{free_udp_port()}|control=127.0.0.1:{control}", STREAM_ID
            )
            for _ in range(2)
        ]
        our_publication_to_real_subscriptions(transport, pub, real_subs, receivers=2)
        assert len(pub.destinations) == 2
    finally:
        transport.close()


def test_our_manual_mdc_publication_to_real_subscriptions(real_aeron: Any) -> None:
    ports = [free_udp_port(), free_udp_port()]
    real_subs = [real_aeron.add_subscription(f"aeron:udp?endpoint=127.0.0.1:{p}", STREAM_ID) for p in ports]
    transport = make_transport()
    try:
        pub = transport.add_publication(
            f"aeron:udp?control=127.0.0.1:{free_udp_port()}|control-mode=manual|fc=min|term-length=64k",
            STREAM_ID,
        )
        assert isinstance(pub, NetworkPublication)
        for port in ports:
            transport.add_destination(pub, f"aeron:udp?endpoint=127.0.0.1:{port}")
        our_publication_to_real_subscriptions(transport, pub, real_subs, receivers=2)
    finally:
        transport.close()


def real_publication_to_our_subscriptions(
    transport: Transport, real_pubs: list[Any], subs: list[Subscription], images: int
) -> None:
    """Every real publication's own stream, to every one of ``subs``, checked per (subscription, session)."""
    streams = {
        (i, real_pub.session_id): MessageStream(MDC_BYTES, MDC_SIZES)
        for i in range(len(subs))
        for real_pub in real_pubs
    }
    assemblers = [
        FragmentAssembler(
            lambda buffer, header, i=i: streams[i, header.session_id].on_message(
                bytes(buffer), header.position()
            )
        )
        for i in range(len(subs))
    ]
    sent = dict.fromkeys((real_pub.session_id for real_pub in real_pubs), 0)

    def step() -> None:
        transport.do_work()
        if sum(sub.image_count for sub in subs) >= images:  # everybody has joined
            for real_pub in real_pubs:
                stream = streams[0, real_pub.session_id]
                sent[real_pub.session_id] = offer_all(
                    real_pub.offer, stream, sent[real_pub.session_id], pyaeron.ADMIN_ACTION
                )
        for sub, assembler in zip(subs, assemblers, strict=True):
            sub.poll(assembler, 64)

    def diagnostics() -> str:
        return "\n".join(
            [
                *(f"{key}: {stream.verdict()}" for key, stream in streams.items()),
                f"offered {sent}, transport {transport.counters}",
                *(str(image_counters(sub)) for sub in subs),
                *(str(real_state(publication=real_pub)) for real_pub in real_pubs),
            ]
        )

    run_until(lambda: all(s.done for s in streams.values()), step, "every stream", diagnostics)
    positions = {real_pub.session_id: real_pub.position for real_pub in real_pubs}
    for (_, session_id), stream in streams.items():
        stream.assert_complete()
        assert stream.last_position == positions[session_id], diagnostics()
    assert transport.counters.malformed_datagrams == 0, diagnostics()


def test_a_real_dynamic_mdc_publication_to_our_subscriptions(real_aeron: Any) -> None:
    """Two of our subscriptions in one transport: like Aeron's C driver (``next_receiver_id++``) each
    receive endpoint has its own receiver id, or the C sender's min flow control takes them for one
    receiver, lets the slower fall behind its retransmit window, and that one never completes."""
    control = free_udp_port()
    transport = make_transport()
    try:
        real_pub = real_aeron.add_exclusive_publication(
            f"aeron:udp?control=127.0.0.1:{control}|control-mode=dynamic|fc=min|term-length=64k", STREAM_ID
        )
        subs = [
            transport.add_subscription(
                f"aeron:udp?endpoint=127.0.0.1:0|control=127.0.0.1:{control}", STREAM_ID
            )
            for _ in range(2)
        ]
        real_publication_to_our_subscriptions(transport, [real_pub], subs, images=2)
        receiver_ids = {log.receiver_id for sub in subs for log in image_logs(sub)}
        assert len(receiver_ids) == 2, receiver_ids
    finally:
        transport.close()


def test_two_real_publications_into_one_of_our_subscriptions(real_aeron: Any) -> None:
    """Two sessions (an exclusive and a concurrent publication) interleave on one of our endpoints."""
    transport = make_transport()
    try:
        sub = transport.add_subscription("aeron:udp?endpoint=127.0.0.1:0", STREAM_ID)
        assert sub.local_address is not None
        channel = f"aeron:udp?endpoint=127.0.0.1:{sub.local_address[1]}|term-length=64k"
        real_pubs = [
            real_aeron.add_exclusive_publication(channel, STREAM_ID),
            real_aeron.add_publication(channel, STREAM_ID),
        ]
        real_publication_to_our_subscriptions(transport, real_pubs, [sub], images=2)
        assert transport.counters.images_created == 2
    finally:
        transport.close()


# -------------------------------------------------------------------- real sources -> our MDS subscription


def test_two_real_publications_of_one_session_into_our_multi_destination_subscription(
    real_aeron: Any,
) -> None:
    """Aeron Cluster's catch-up shape with real senders: one real publication feeds our multi-destination
    subscription from position 0; a second real publication of the same session, started at the first
    one's position (as an archive replay is), joins on the other destination and both send the rest. Our
    side drops 5% of what arrives, so our NAKs go to both real drivers, each from its own destination;
    one image gets every message once, in order."""
    transport = make_transport(data_loss=LOSS_RATE, seed=11)
    try:
        sub = transport.add_subscription("aeron:udp?control-mode=manual", STREAM_ID)
        first = transport.add_rcv_destination(sub, "aeron:udp?endpoint=127.0.0.1:0")
        second = transport.add_rcv_destination(sub, "aeron:udp?endpoint=127.0.0.1:0")
        session = "session-id=424242|term-length=64k"
        one = real_aeron.add_exclusive_publication(
            f"aeron:udp?endpoint=127.0.0.1:{first[1]}|{session}|init-term-id=0|term-id=0|term-offset=0",
            STREAM_ID,
        )
        stream = MessageStream(MDC_BYTES, MDC_SIZES)
        assembler = FragmentAssembler(
            lambda buffer, header: stream.on_message(bytes(buffer), header.position())
        )
        half = stream.count // 2
        publications = [one]
        sent = [0, half]

        def step() -> None:
            transport.do_work()
            limit = half if len(publications) == 1 else stream.count
            for i, publication in enumerate(publications):
                while sent[i] < limit:
                    result = publication.offer(stream.payload(sent[i]))
                    if result is True:
                        sent[i] += 1
                    elif result != pyaeron.ADMIN_ACTION:
                        break
            sub.poll(assembler, 64)

        def diagnostics() -> str:
            return f"{stream.verdict()}; offered {sent}; {image_counters(sub)}; {transport.counters}"

        run_until(
            lambda: stream.received >= half // 2 and sent[0] >= half, step, "the first half", diagnostics
        )
        position = one.position
        two = real_aeron.add_exclusive_publication(
            f"aeron:udp?endpoint=127.0.0.1:{second[1]}|{session}|init-term-id=0"
            f"|term-id={position >> 16}|term-offset={position & 0xFFFF}",
            STREAM_ID,
        )
        publications.append(two)
        run_until(lambda: stream.done, step, "every message", diagnostics)
        stream.assert_complete()
        assert stream.last_position == one.position == two.position, diagnostics()
        (log,) = image_logs(sub)
        assert sub.image_count == 1 and len(log.connections) == 2, diagnostics()
        assert log.naks_sent > 0 and transport.counters.malformed_datagrams == 0, diagnostics()
    finally:
        transport.close()
