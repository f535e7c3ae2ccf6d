"""The example services, driven the way the container will drive them: one log event at a time, through
test doubles of the ``Cluster`` facade and the client sessions. Replicas that see the same events end in
the same state and give the same answers; a snapshot carries the whole state; bad bytes from a client
are answered, never raised, and change nothing."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.service.api import ClusteredService
from cluster.service.echo import EchoService
from cluster.service.kv import (
    SNAPSHOT_MESSAGE_BYTES,
    KeyValueService,
    KvError,
    Reply,
    Status,
    decode_reply,
    encode_cas,
    encode_read,
    encode_write,
)


@dataclass
class Session:
    """A client session double: keeps what the service offered it."""

    id: int = 7
    response_stream_id: int = 102
    response_channel: str = "aeron:udp?endpoint=client:9020"
    encoded_principal: bytes = b""
    is_closing: bool = False
    sent: list[bytes] = field(default_factory=list)

    def offer(self, message: bytes | bytearray | memoryview) -> int:
        self.sent.append(bytes(message))
        return len(self.sent)

    def close(self) -> bool:
        self.is_closing = True
        return True


class Snapshot:
    """A snapshot double: what one service wrote, read back by another."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self._next = 0

    def offer(self, message: bytes | bytearray | memoryview) -> int:
        self.messages.append(bytes(message))
        return len(self.messages)

    def poll(self, handler: Callable[[memoryview], object], limit: int) -> int:
        batch = self.messages[self._next : self._next + limit]
        for message in batch:
            handler(memoryview(message))
        self._next += len(batch)
        return len(batch)


def _deliver(service: ClusteredService, session: Session | None, message: bytes) -> None:
    service.on_session_message(session, 0, memoryview(message))


def _replies(session: Session) -> list[Reply]:
    return [decode_reply(message) for message in session.sent]


def _restored(service: ClusteredService, fresh: ClusteredService) -> ClusteredService:
    snapshot = Snapshot()
    service.on_take_snapshot(snapshot)
    fresh.on_start(None, snapshot)  # type: ignore[arg-type]  # the examples need no cluster to start
    return fresh


# ------------------------------------------------------------------------------------------- echo


def test_echo_sends_each_message_back_to_its_session_and_counts_them() -> None:
    echo, session = EchoService(), Session()
    for message in (b"a", b"bc", bytes(range(200))):
        _deliver(echo, session, message)
    _deliver(echo, None, b"a service message has no session to answer")
    assert session.sent == [b"a", b"bc", bytes(range(200))]
    assert echo.messages == 4


def test_echo_counts_survive_a_snapshot() -> None:
    echo = EchoService()
    for _ in range(3):
        _deliver(echo, Session(), b"x")
    restored = _restored(echo, EchoService())
    assert isinstance(restored, EchoService) and restored.messages == 3


# ------------------------------------------------------------------------------------------- key-value


def test_reads_writes_and_compare_and_set_answer_as_a_map_would() -> None:
    kv, session = KeyValueService(), Session()
    for request in (
        encode_read(1, b"k"),
        encode_write(2, b"k", b"v1"),
        encode_read(3, b"k"),
        encode_cas(4, b"k", b"v0", b"v2"),  # refused: k holds v1
        encode_cas(5, b"k", b"v1", b"v2"),
        encode_cas(6, b"absent", None, b"new"),  # expected absent, and it is
        encode_read(7, b"absent"),
    ):
        _deliver(kv, session, request)
    assert _replies(session) == [
        Reply(1, Status.OK, None),
        Reply(2, Status.OK, b"v1"),
        Reply(3, Status.OK, b"v1"),
        Reply(4, Status.REFUSED, b"v1"),
        Reply(5, Status.OK, b"v2"),
        Reply(6, Status.OK, b"new"),
        Reply(7, Status.OK, b"new"),
    ]
    assert kv.store == {b"k": b"v2", b"absent": b"new"}


@pytest.mark.parametrize(
    "request_bytes",
    [
        encode_read(9, b"k")[:-1],  # the key runs past the end
        encode_read(9, b"k") + b"\x00",  # a byte after the request
        b"\x04" + encode_read(9, b"k")[1:],  # no such op
        encode_write(9, b"k", b"v")[:-3],
        bytes([2]) + (9).to_bytes(8, "little") + (-1).to_bytes(4, "little", signed=True),  # no key
    ],
)
def test_a_bad_request_is_answered_as_bad_and_changes_nothing(request_bytes: bytes) -> None:
    kv, session = KeyValueService(), Session()
    kv.store[b"k"] = b"v"
    _deliver(kv, session, request_bytes)
    assert _replies(session) == [Reply(9, Status.BAD_REQUEST, None)]
    assert kv.store == {b"k": b"v"}


def test_bytes_too_short_to_name_a_request_get_no_answer() -> None:
    kv, session = KeyValueService(), Session()
    _deliver(kv, session, b"\x01\x02")
    assert session.sent == [] and kv.store == {}


def test_a_reply_that_is_not_one_is_a_kv_error() -> None:
    good = KeyValueService().apply(encode_write(1, b"k", b"v"))
    assert good is not None and decode_reply(good) == Reply(1, Status.OK, b"v")
    for bad in (good[:5], good + b"x", good[:8] + b"\x09" + good[9:]):
        with pytest.raises(KvError):
            decode_reply(bad)


keys = st.sampled_from([b"a", b"b", b"c"])
values = st.binary(max_size=8)
ids = st.integers(0, 2**62)
operations = st.one_of(  # (op, request id, key, expected, value), as a plain map would take them
    st.tuples(st.just("read"), ids, keys, st.none(), st.none()),
    st.tuples(st.just("write"), ids, keys, st.none(), values),
    st.tuples(st.just("cas"), ids, keys, st.none() | values, values),
)
Operation = tuple[str, int, bytes, bytes | None, bytes | None]


def _encode(operation: Operation) -> bytes:
    op, request_id, key, expected, value = operation
    if op == "read":
        return encode_read(request_id, key)
    assert value is not None
    return (
        encode_write(request_id, key, value)
        if op == "write"
        else encode_cas(request_id, key, expected, value)
    )


def _expected_reply(model: dict[bytes, bytes], operation: Operation) -> Reply:
    op, request_id, key, expected, value = operation
    if op == "read":
        return Reply(request_id, Status.OK, model.get(key))
    assert value is not None
    if op == "cas" and model.get(key) != expected:
        return Reply(request_id, Status.REFUSED, model.get(key))
    model[key] = value
    return Reply(request_id, Status.OK, value)


requests = operations.map(_encode)


@settings(max_examples=200, deadline=None)
@given(st.lists(operations, max_size=40))
def test_replicas_given_the_same_log_agree_and_answer_as_a_plain_map(log: list[Operation]) -> None:
    first, second = KeyValueService(), KeyValueService()
    first_session, second_session = Session(), Session()
    model: dict[bytes, bytes] = {}
    for operation in log:
        _deliver(first, first_session, _encode(operation))
        _deliver(second, second_session, _encode(operation))
    assert first.store == second.store and first_session.sent == second_session.sent
    assert _replies(first_session) == [_expected_reply(model, operation) for operation in log]
    assert first.store == model


@settings(max_examples=100, deadline=None)
@given(st.lists(requests, max_size=30), st.lists(requests, max_size=10))
def test_a_snapshot_carries_the_whole_state(before: list[bytes], after: list[bytes]) -> None:
    kv = KeyValueService()
    for request in before:
        _deliver(kv, Session(), request)
    restored = _restored(kv, KeyValueService())
    assert isinstance(restored, KeyValueService) and restored.store == kv.store
    original_session, restored_session = Session(), Session()
    for request in after:
        _deliver(kv, original_session, request)
        _deliver(restored, restored_session, request)
    assert original_session.sent == restored_session.sent


def test_a_large_store_snapshots_into_few_messages_and_an_entry_longer_than_one_has_its_own() -> None:
    kv = KeyValueService()
    kv.store = {f"key{i:05}".encode(): f"value{i}".encode() for i in range(5_000)}
    kv.store[b"big"] = bytes(range(256)) * 200  # longer than a snapshot message alone
    snapshot = Snapshot()
    kv.on_take_snapshot(snapshot)
    small = sum(8 + len(k) + len(v) for k, v in kv.store.items() if k != b"big")
    # the small entries fill messages (each within an entry of full), the big one has its own
    assert (
        small // SNAPSHOT_MESSAGE_BYTES + 1
        <= len(snapshot.messages)
        <= small // (SNAPSHOT_MESSAGE_BYTES - 64) + 2
    )
    assert all(len(m) <= SNAPSHOT_MESSAGE_BYTES for m in snapshot.messages if b"big" not in m[:16])
    fresh = KeyValueService()
    fresh.on_start(None, snapshot)  # type: ignore[arg-type]
    assert fresh.store == kv.store and list(fresh.store) == sorted(kv.store)


def test_a_snapshot_of_one_entry_per_message_loads_too() -> None:
    snapshot = Snapshot()
    snapshot.messages = [
        struct.pack("<i", len(k)) + k + struct.pack("<i", len(v)) + v for k, v in ((b"a", b"1"), (b"b", b""))
    ]
    fresh = KeyValueService()
    fresh.on_start(None, snapshot)  # type: ignore[arg-type]
    assert fresh.store == {b"a": b"1", b"b": b""}


@pytest.mark.parametrize(
    "message",
    [b"\x01\x00\x00\x00a", b"\x01\x00\x00\x00a\xff\xff\xff\xff", b"\x01\x00\x00\x00a\x01\x00\x00\x00b\x05"],
)
def test_a_damaged_snapshot_message_is_a_kv_error(message: bytes) -> None:
    snapshot = Snapshot()
    snapshot.messages = [message]
    with pytest.raises(KvError):
        KeyValueService().on_start(None, snapshot)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_from_a_client_are_answered_or_ignored_never_raised(data: bytes) -> None:
    kv = KeyValueService()
    kv.store[b"a"] = b"1"
    reply = kv.apply(data)
    if reply is None:
        assert len(data) < 9
    elif decode_reply(reply).status == Status.BAD_REQUEST:
        assert kv.store == {b"a": b"1"}
