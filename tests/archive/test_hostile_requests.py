"""Hostile bytes on the archive's control stream, and on a client's response stream.

A hostile party with a control session of its own writes raw messages onto the archive's control channel
(stream 10) over the simulated network: random bytes, well-formed requests of every template of the
schema with random field values and var data, the same requests truncated or with a corrupted header, and
requests naming control sessions that do not exist. A well-behaved client is connected alongside.

Properties, checked message by message:

* the archive never raises out of ``do_work`` (every ``World.step`` would raise it);
* a message whose header is not a message of the schema (too short, another schema id, an unknown
  template id, a block shorter than the template's or running past the end) is counted as malformed, and
  nothing else happens;
* a request naming a control session that is not active is counted as such;
* any other message is answered on the sender's session (a response, a listing entry, a challenge: a
  message with the request's correlation id), or counted, or is one of the few requests that have no
  answer in Aeron's protocol (keep-alive, close, a challenge response outside a challenge, a listing of
  zero recordings), or opens a new control session;
* afterwards the well-behaved client still gets correct answers: its archive id, a listing that matches
  the catalog, a recording and replay of its own.

And the client side: a ``ControlResponsePoller`` fed random or corrupt messages counts them as malformed and
never raises.
"""

from __future__ import annotations

import itertools
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.archive_protocol import (
    REPLAY_STREAM,
    STREAM,
    Collector,
    ProtocolWorld,
    block_struct,
    counters_total,
)
from support.archive_world import World

from cluster.archive.client import ArchiveClient, ControlResponsePoller
from cluster.archive.control_session import ControlSessionState
from cluster.archive.protocol import (
    NULL_VALUE,
    PROTOCOL_SEMANTIC_VERSION,
    REPLAY_ALL_AND_FOLLOW,
    REPLAY_ALL_AND_STOP,
)
from generated import aeron_archive_codecs as codecs
from generated.aeron_archive_codecs import RecordingSignal, SourceLocation

HEADER = struct.Struct("<HHHH")  # blockLength, templateId, schemaId, version
INT_RANGES = {"q": (-(2**63), 2**63 - 1), "i": (-(2**31), 2**31 - 1), "b": (-128, 127)}
SELF = "self"  # the hostile party's own control session id
UNKNOWN = "unknown"  # a control session id no session has
CORRELATION = "correlation"  # a fresh correlation id, so the answer can be told apart
# Requests that have no answer in Aeron's protocol when they name an active session.
SILENT = {
    codecs.KeepAliveRequestDecoder.TEMPLATE_ID,
    codecs.CloseSessionRequestDecoder.TEMPLATE_ID,
    codecs.ChallengeResponseDecoder.TEMPLATE_ID,
}
CONNECTS = {codecs.ConnectRequestDecoder.TEMPLATE_ID, codecs.AuthConnectRequestDecoder.TEMPLATE_ID}
LISTINGS = {
    codecs.ListRecordingsRequestDecoder.TEMPLATE_ID,
    codecs.ListRecordingsForUriRequestDecoder.TEMPLATE_ID,
}
# Templates whose block starts with controlSessionId (every request but the connects).
WITH_SESSION = {
    template for template, encoder in codecs.ENCODERS.items() if encoder._JSON[0][1] == "controlSessionId"
}


# ---------------------------------------------------------------------------------------------- strategies

HOSTILE_HOST = "10.0.0.3"
CHANNELS = [
    "aeron:udp?endpoint=10.0.0.1:8020",
    "aeron:udp?endpoint=10.0.0.1:8021|term-length=64k",
    "aeron:udp?endpoint=10.0.0.1:8010",  # the archive's own control channel
    "aeron:ipc",
    "aeron:ipc?term-length=64k",
    f"aeron:udp?endpoint={HOSTILE_HOST}:9000",
    f"aeron:udp?endpoint={HOSTILE_HOST}:0",
    f"aeron:udp?endpoint={HOSTILE_HOST}:9001|term-length=1g",
    f"aeron:udp?endpoint={HOSTILE_HOST}:9002|mtu=99999",
    f"aeron:udp?endpoint={HOSTILE_HOST}:9003|term-length=3000",
    "aeron:udp?endpoint=10.0.0.1:8020|session-id=abc",
    "aeron:udp?control=10.0.0.1:8040|control-mode=dynamic",
    "aeron:udp",
    "aeron-spy:aeron:udp?endpoint=10.0.0.1:8020",
    "aeron:tcp?endpoint=10.0.0.1:1",
    "aeron:udp?endpoint=nowhere",
    "aeron:udp?|",
    "",
]
ids = st.one_of(
    st.sampled_from([0, 0, 0, 1, 1, 2, -1, 100, 2**63 - 1, -(2**63)]), st.integers(-(2**63), 2**63 - 1)
)
positions = st.one_of(
    st.sampled_from(
        [-1, 0, 32, 33, 256, 512, 1024, 1280, 4096, REPLAY_ALL_AND_FOLLOW, REPLAY_ALL_AND_STOP, -(2**63)]
    ),
    st.integers(-(2**63), 2**63 - 1),
)
stream_ids = st.one_of(
    st.sampled_from([1001, 1001, 1002, REPLAY_STREAM, REPLAY_STREAM, 10, 20, 0, -1]),
    st.integers(-(2**31), 2**31 - 1),
)
session_ids = st.sampled_from([SELF] * 8 + [UNKNOWN])
texts = st.one_of(
    st.sampled_from(CHANNELS),
    st.sampled_from(CHANNELS),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
    st.binary(max_size=60),  # not ASCII: the archive cannot read it as a channel
)


def field_strategy(name: str, kind: str) -> st.SearchStrategy[Any]:
    low, high = INT_RANGES[kind]
    if name == "controlSessionId":
        return session_ids
    if name == "correlationId":
        return st.just(CORRELATION)
    if name == "version" and kind == "i":
        return st.one_of(st.just(PROTOCOL_SEMANTIC_VERSION), st.integers(low, high))
    lowered = name.lower()
    if kind == "q" and "recordingid" in lowered:
        return ids
    if kind == "q" and ("position" in lowered or "length" in lowered):
        return positions
    if kind == "i" and "streamid" in lowered:
        return stream_ids
    if kind == "i":
        return st.one_of(st.sampled_from([-1, 0, 1, 2, 4096]), st.integers(low, high))
    return st.integers(low, high)


def _block_items(encoder_type: Any) -> list[str]:
    items = []
    for count, kind in struct_items(block_struct(encoder_type).format):
        if kind != "x":
            items.extend([kind] * (count or 1))
    return items


def struct_items(fmt: str) -> Iterator[tuple[int, str]]:
    number = ""
    for char in fmt.lstrip("<"):
        if char.isdigit():
            number += char
            continue
        yield int(number or "0"), char
        number = ""


def request_strategy(template_id: int) -> st.SearchStrategy[tuple[int, list[Any], list[Any]]]:
    """(template id, block values, var-data values) of a well-formed message of ``template_id``."""
    encoder_type = codecs.ENCODERS[template_id]
    kinds = _block_items(encoder_type)
    names = [row[1] for row in encoder_type._JSON if row[0] in ("value", "enum")]
    if len(names) != len(kinds):
        names = [f"field{i}" for i in range(len(kinds))]
    data_rows = [row for row in encoder_type._JSON if row[0] == "data"]
    return st.tuples(
        st.just(template_id),
        st.tuples(*[field_strategy(name, kind) for name, kind in zip(names, kinds, strict=True)]).map(list),
        st.tuples(*[texts for _ in data_rows]).map(list),
    )


requests = st.sampled_from(sorted(codecs.ENCODERS)).flatmap(request_strategy)


def encode(template_id: int, values: list[Any], data: list[Any], resolve: dict[str, int]) -> bytes:
    """The message (header included) with the sentinels in ``values`` replaced from ``resolve``."""
    encoder_type = codecs.ENCODERS[template_id]
    buffer = bytearray(65536)
    encoder = encoder_type().wrap_and_apply_header(buffer, 0)
    raw = [resolve[v] if isinstance(v, str) else v for v in values]
    block_struct(encoder_type).pack_into(buffer, codecs.HEADER_SIZE, *raw)
    for row, value in zip([r for r in encoder_type._JSON if r[0] == "data"], data, strict=True):
        getattr(encoder, row[2])(value.encode("ascii") if isinstance(value, str) else value)
    return bytes(buffer[: codecs.HEADER_SIZE + encoder.encoded_length()])


@st.composite
def corruption(draw: st.DrawFn) -> tuple[str, int]:
    kind = draw(st.sampled_from(["truncate", "schema", "block_length", "template", "var_length"]))
    return kind, draw(st.integers(0, 2**32 - 1))


def corrupt(message: bytes, kind: str, value: int) -> bytes:
    data = bytearray(message)
    if kind == "truncate":
        return bytes(data[: value % len(data)])
    if kind == "schema":
        schema = value & 0xFFFF
        struct.pack_into("<H", data, 4, schema if schema != codecs.SCHEMA_ID else schema + 1)
    elif kind == "block_length":
        struct.pack_into("<H", data, 0, value & 0xFFFF)
    elif kind == "template":
        struct.pack_into("<H", data, 2, value & 0xFFFF)
    else:  # the first var-data length, if there is one, made huge
        block_length = HEADER.unpack_from(data)[0]
        offset = codecs.HEADER_SIZE + block_length
        if offset + 4 <= len(data):
            struct.pack_into("<I", data, offset, 1024 + value % (2**32 - 1024))
    return bytes(data)


def header_is_broken(message: bytes) -> bool:
    """Whether ``message`` is not a message of the schema by its header alone: too short for a header,
    another schema, an unknown template, a block running past the end or shorter than every version of
    the template has (what the generated ``decode`` refuses)."""
    if len(message) < codecs.HEADER_SIZE:
        return True
    block_length, template_id, schema_id, _ = HEADER.unpack_from(message)
    if schema_id != codecs.SCHEMA_ID or template_id not in codecs.DECODERS:
        return True
    if codecs.HEADER_SIZE + block_length > len(message):
        return True
    try:
        codecs.decode(message)
    except codecs.CodecError:
        return True
    return False


# ---------------------------------------------------------------------------------------------- the world


class Hostile:
    """A party with a control session of its own whose request publication carries raw bytes."""

    def __init__(self, pw: ProtocolWorld) -> None:
        self.pw = pw
        self.host = pw.world.host()
        assert self.host == HOSTILE_HOST
        self.transport = pw.world.transport(self.host)
        self.client: ArchiveClient = pw.connect(self.transport, self.host)
        self.session_id = self.client.control_session_id
        self.publication = self.client.proxy.publication
        self.correlation_ids = itertools.count(1_000_000)
        self.answers: list[Any] = []
        # replays the fuzz asks for on the hostile host's channel find a subscriber
        self.replays = self.transport.add_subscription(f"aeron:udp?endpoint={self.host}:9000", REPLAY_STREAM)

    def reconnect(self) -> None:
        """A new control session when the fuzz closed the last one."""
        self.client = self.pw.connect(self.transport, self.host)
        self.session_id = self.client.control_session_id
        self.publication = self.client.proxy.publication

    def resolve(self) -> dict[str, int]:
        return {SELF: self.session_id, UNKNOWN: 0x7A7A_7A7A_7A7A, CORRELATION: next(self.correlation_ids)}

    def send(self, message: bytes) -> None:
        """Offer ``message`` and run until the archive has read it."""
        pw = self.pw
        while self.publication.offer(message) <= 0:
            pw.step()
        subscription = pw.archive._control_subscriptions[0]
        end = self.publication.position

        def read() -> bool:
            image = subscription.image_by_session_id(self.publication.session_id)
            return image is not None and image.position >= end

        assert pw.run_until(read, timeout_s=1.0), "the archive did not read the request"

    def answered(self, correlation_id: int) -> bool:
        self.client.poller.poll()
        self.answers.extend(self.client.poller.take())
        return any(getattr(m, "correlation_id", None) == correlation_id for m in self.answers)

    def session_active(self) -> bool:
        session = self.pw.archive.control_sessions.get(self.session_id)
        return session is not None and session.state == ControlSessionState.ACTIVE

    def check(self, message: bytes, correlation_id: int) -> None:
        """Send ``message`` and check what came of it (see the module docstring); then make sure the
        hostile party still has an active session for the next one."""
        self._check(message, correlation_id)
        for image in self.replays.images:
            image.poll(lambda *args: None, 64)
        if not self.session_active():
            self.reconnect()

    def _check(self, message: bytes, correlation_id: int) -> None:
        archive = self.pw.archive
        active_before = self.session_active()
        counted_before = counters_total(archive)
        malformed_before = archive.counters.malformed_requests
        unknown_before = archive.counters.unknown_session_requests
        sessions_before = set(archive.control_sessions)
        self.send(message)
        counted = counters_total(archive) - counted_before
        if header_is_broken(message):
            assert archive.counters.malformed_requests == malformed_before + 1, message.hex()
            assert counted == 1, message.hex()
            return
        _, template_id, _, _ = HEADER.unpack_from(message)
        names_self = (
            template_id in WITH_SESSION and struct.unpack_from("<q", message, 8)[0] == self.session_id
        )
        named = struct.unpack_from("<q", message, 8)[0] if template_id in WITH_SESSION else None
        if named is not None and not (names_self and active_before) and named not in archive.control_sessions:
            assert archive.counters.unknown_session_requests >= unknown_before + 1, message.hex()
            return
        if counted or set(archive.control_sessions) - sessions_before:
            return
        if template_id in SILENT and names_self:
            return
        if template_id in LISTINGS and struct.unpack_from("<i", message, 8 + 24)[0] <= 0:
            return  # a listing of no recordings: nothing to send
        assert self.pw.run_until(lambda: self.answered(correlation_id), timeout_s=0.5), (
            f"no answer and nothing counted for {codecs.DECODERS[template_id].NAME}: {message.hex()}"
        )


def make_world(seed: int) -> tuple[ProtocolWorld, Hostile, int, list[tuple[bytes, int]]]:
    """An archive with a stopped recording (0), a live one (1, stream 1002) followed by a replay, and the
    hostile party connected."""
    pw = ProtocolWorld(seed=seed)
    recording_id, _, sent = pw.record(count=5)
    pw.client.start_recording(pw.channel, STREAM + 1, SourceLocation.REMOTE)
    live = pw.client_transport.add_exclusive_publication(pw.channel, STREAM + 1)
    pw.await_signal(RecordingSignal.START, 2)
    pw.publish(live, 0, 3)
    pw.client_transport.add_subscription(pw.replay_channel, REPLAY_STREAM)
    pw.client.start_replay(1, 0, REPLAY_ALL_AND_FOLLOW, pw.replay_channel, REPLAY_STREAM)
    hostile = Hostile(pw)
    return pw, hostile, recording_id, sent


def check_good_client(pw: ProtocolWorld) -> None:
    """The well-behaved client still gets right answers: archive id, a listing that is the catalog's, and a
    recording and replay of its own on a stream and channel the fuzz does not use."""
    archive = pw.archive
    client = pw.client
    assert client.get_archive_id() == archive.archive_id
    expected = []
    for recording_id in itertools.count():
        descriptor = archive.catalog.recording(recording_id)
        if descriptor is None or descriptor.state != codecs.RecordingState.VALID or recording_id >= 50:
            break
        expected.append(descriptor.recording_id)
    assert [d.recording_id for d in client.list_recordings(0, 50)] == expected
    channel = f"aeron:udp?endpoint={pw.archive_host}:8077"
    before = len(pw.signals.of(RecordingSignal.STOP))
    recording_id, _, sent = pw.record(stream_id=7777, count=3, channel=channel)
    assert len(pw.signals.of(RecordingSignal.STOP)) == before + 1
    subscription = pw.client_transport.add_subscription(pw.replay_channel, REPLAY_STREAM + 7)
    replay = client.start_replay(recording_id, 0, sent[-1][1], pw.replay_channel, REPLAY_STREAM + 7)
    collector = Collector()
    assert pw.run_until(
        lambda: collector.poll(pw.replay_image(subscription, replay)) or len(collector.messages) == len(sent)
    )
    assert collector.messages == sent
    subscription.close()


FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


@FUZZ
@given(seed=st.integers(1, 1000), messages=st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_random_bytes_are_counted_as_malformed(seed: int, messages: list[bytes]) -> None:
    pw, hostile, _, _ = make_world(seed)
    try:
        for message in messages:
            hostile.check(message, NULL_VALUE)
        check_good_client(pw)
    finally:
        pw.close()


@FUZZ
@given(seed=st.integers(1, 1000), batch=st.lists(requests, min_size=1, max_size=8))
def test_well_formed_requests_with_random_values(
    seed: int, batch: list[tuple[int, list[Any], list[Any]]]
) -> None:
    pw, hostile, _, _ = make_world(seed)
    try:
        for template_id, values, data in batch:
            resolve = hostile.resolve()
            hostile.check(encode(template_id, values, data, resolve), resolve[CORRELATION])
        pw.run_for(6.0)  # past the connect timeout: replays and sessions that never connect fail
        check_good_client(pw)
    finally:
        pw.close()


@FUZZ
@given(
    seed=st.integers(1, 1000),
    batch=st.lists(st.tuples(requests, corruption()), min_size=1, max_size=8),
)
def test_truncated_and_corrupted_requests(
    seed: int, batch: list[tuple[tuple[int, list[Any], list[Any]], tuple[str, int]]]
) -> None:
    pw, hostile, _, _ = make_world(seed)
    try:
        for (template_id, values, data), (kind, value) in batch:
            resolve = hostile.resolve()
            message = corrupt(encode(template_id, values, data, resolve), kind, value)
            hostile.check(message, resolve[CORRELATION])
        check_good_client(pw)
    finally:
        pw.close()


@FUZZ
@given(
    seed=st.integers(1, 1000),
    batch=st.lists(st.tuples(requests, st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=8),
)
def test_requests_for_unknown_sessions_are_counted(
    seed: int, batch: list[tuple[tuple[int, list[Any], list[Any]], int]]
) -> None:
    pw, hostile, _, _ = make_world(seed)
    archive = pw.archive
    try:
        for (template_id, values, data), unknown in batch:
            if template_id not in WITH_SESSION or unknown in archive.control_sessions:
                continue
            resolve = hostile.resolve()
            resolve[SELF] = resolve[UNKNOWN] = unknown
            before = archive.counters.unknown_session_requests
            hostile.send(encode(template_id, values, data, resolve))
            assert archive.counters.unknown_session_requests == before + 1
            assert not hostile.answered(resolve[CORRELATION])
        assert hostile.client.get_archive_id() == archive.archive_id
        check_good_client(pw)
    finally:
        pw.close()


@pytest.mark.parametrize(
    "response_channel",
    [
        "aeron:udp?endpoint=10.0.0.3:0",
        "aeron:udp?endpoint=10.0.0.3:9001|term-length=1g",
        "aeron:ipc?term-length=1g",
        "aeron:udp?endpoint=10.0.0.3:9002|term-length=3000",
        "aeron:udp?endpoint=10.0.0.3:9003|mtu=99999",
        "aeron:tcp?endpoint=10.0.0.3:9004",
        "aeron:udp?endpoint=10.0.0.3:9005|session-id=x",
        "aeron:udp",
        "not a channel",
        "",
    ],
)
def test_a_malformed_connect_request_only_fails_its_session(response_channel: str) -> None:
    pw, hostile, recording_id, _ = make_world(5)
    archive = pw.archive
    try:
        sessions = set(archive.control_sessions)
        message = encode(
            codecs.AuthConnectRequestDecoder.TEMPLATE_ID,
            [CORRELATION, 20, PROTOCOL_SEMANTIC_VERSION],
            [response_channel, b""],
            hostile.resolve(),
        )
        hostile.send(message)
        new = set(archive.control_sessions) - sessions
        assert len(new) == 1
        session = archive.control_sessions[new.pop()]
        # refused at once: no response publication (no 3 GiB log for term-length=1g), no connect timeout
        assert pw.run_until(lambda: session.is_done, timeout_s=0.01), session.state
        assert session.publication is None, session.reason
        assert set(archive.control_sessions) == sessions
        assert pw.client.get_stop_position(recording_id) > 0
        check_good_client(pw)
    finally:
        pw.close()


# ---------------------------------------------------------------------------------------------- client side


responses = st.sampled_from(
    [
        codecs.ControlResponseDecoder.TEMPLATE_ID,
        codecs.RecordingDescriptorDecoder.TEMPLATE_ID,
        codecs.RecordingSubscriptionDescriptorDecoder.TEMPLATE_ID,
        codecs.RecordingSignalEventDecoder.TEMPLATE_ID,
        codecs.ChallengeDecoder.TEMPLATE_ID,
    ]
).flatmap(request_strategy)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(
    batch=st.lists(
        st.one_of(
            st.binary(max_size=200).map(lambda b: ("raw", b)),
            st.tuples(responses, st.none() | corruption()).map(lambda t: ("message", t)),
        ),
        max_size=10,
    )
)
def test_the_client_poller_counts_corrupt_responses_and_never_raises(batch: list[tuple[str, Any]]) -> None:
    world = World("sim", seed=3)
    transport = world.transport("10.0.0.9")
    subscription = transport.add_subscription("aeron:ipc", 20)
    publication = transport.add_exclusive_publication("aeron:ipc", 20)
    poller = ControlResponsePoller(subscription)
    resolve = {SELF: 77, UNKNOWN: 78, CORRELATION: 5}
    broken = 0
    intact: list[
        int
    ] = []  # correlation ids of the undamaged messages with ASCII text: they must come through
    for i, (kind, item) in enumerate(batch):
        if kind == "raw":
            message = item
        else:
            (template_id, values, data), damage = item
            resolve[CORRELATION] = 1000 + i
            message = encode(template_id, values, data, resolve)
            if damage is not None:
                message = corrupt(message, *damage)
            elif all(isinstance(value, str) for value in data):
                intact.append(1000 + i)
        broken += header_is_broken(message)
        assert publication.offer(message) > 0
    while poller.poll():
        pass
    assert poller.malformed >= broken
    assert len(poller.received) + poller.malformed <= len(batch)
    received = [m.correlation_id for m in poller.received if m.correlation_id in intact]
    assert received == intact
    world.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_hostile_bytes_over_real_udp(tmp_path: Path) -> None:
    """The same over real UDP on 127.0.0.1 (bounded: every wait gives up after a few seconds)."""
    world = World("udp", tmp_path=tmp_path)
    try:
        archive_transport = world.transport("127.0.0.1")
        client_transport = world.transport("127.0.0.1")
        control = f"aeron:udp?endpoint=127.0.0.1:{free_port()}"
        archive = world.archive(
            archive_transport, "archive", control_channel=control, connect_timeout_ns=500_000_000
        )
        good = world.client(client_transport, control, "127.0.0.1")
        hostile = world.client(client_transport, control, "127.0.0.1")
        publication = hostile.proxy.publication
        resolve = {SELF: hostile.control_session_id, UNKNOWN: 12345, CORRELATION: 77}
        messages = [
            b"",
            b"\x00" * 7,
            bytes(range(256)) * 3,
            corrupt(encode(68, [SELF, CORRELATION], [], resolve), "schema", 7),
            corrupt(encode(4, [SELF, CORRELATION, 1, 0], ["aeron:ipc"], resolve), "var_length", 9),
            encode(68, [UNKNOWN, CORRELATION], [], resolve),
            # two connects that open sessions bound to fail: a 1 GiB response term, a response channel
            # nobody listens on (and a client of major version 7)
            encode(
                58, [CORRELATION, 20, PROTOCOL_SEMANTIC_VERSION], [f"{control}|term-length=1g", b""], resolve
            ),
            encode(2, [CORRELATION, 20, 7 << 16], ["aeron:udp?endpoint=127.0.0.1:1"], {CORRELATION: 78}),
        ]
        for message in messages:
            while publication.offer(message) <= 0:
                world.step()
        assert world.run_until(lambda: counters_total(archive) >= 6, timeout_s=5.0), archive.counters
        assert archive.counters.malformed_requests == 5
        assert archive.counters.unknown_session_requests == 1
        assert good.get_archive_id() == archive.archive_id
        assert hostile.get_archive_id() == archive.archive_id

        def connecting() -> list[Any]:
            return [s for s in archive.control_sessions.values() if s.correlation_id == 78]

        assert world.run_until(lambda: len(connecting()) == 1, timeout_s=5.0)
        (doomed,) = connecting()
        assert world.run_until(lambda: doomed.is_done, timeout_s=5.0)
        assert len(archive.control_sessions) == 2
        good.close()
        hostile.close()
    finally:
        world.close()
