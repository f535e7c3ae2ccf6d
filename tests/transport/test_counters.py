"""Counters (``cluster.transport.counters``): allocation, ids and their reuse, lookup by id, type id and key,
the limits (key 112 bytes, label 380 characters, ``max_counters``), values and closing.

The recording-position counter the archive allocates is the model use: type id 100, a key of recording
id (int64), session id (int32), source identity length (int32) and text, then an archive id (int64).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.transport_sim import Sim

from cluster.transport.counters import (
    DEFAULT_MAX_COUNTERS,
    MAX_KEY_LENGTH,
    MAX_LABEL_LENGTH,
    Counter,
    CountersManager,
)
from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.errors import CounterError, CountersFullError, TransportError

RECORDING_POSITION_TYPE_ID = 100


def recording_key(recording_id: int, session_id: int, source_identity: str, archive_id: int) -> bytes:
    """The archive's rec-pos key: recording id, session id, source identity (length, ASCII), archive id."""
    identity = source_identity.encode("ascii")
    return (
        struct.pack("<qii", recording_id, session_id, len(identity))
        + identity
        + struct.pack("<q", archive_id)
    )


def recording_id_is(recording_id: int) -> Callable[[bytes], bool]:
    def predicate(key: bytes) -> bool:
        return len(key) >= 8 and struct.unpack_from("<q", key, 0)[0] == recording_id

    return predicate


def test_allocate_gives_ids_from_zero_and_a_counter_that_holds_its_value() -> None:
    manager = CountersManager()
    first = manager.allocate(1, "first")
    second = manager.allocate(2, "second", b"\x01\x02")
    assert (first.id, second.id) == (0, 1)
    assert (second.type_id, second.label, second.key) == (2, "second", b"\x01\x02")
    assert first.get() == 0 and not first.is_closed
    first.set(42)
    assert first.get() == 42 and second.get() == 0
    first.set(-(2**63))
    assert first.get() == -(2**63)
    first.set(2**63 - 1)
    assert first.get() == 2**63 - 1
    assert manager.counter(0) is first and manager.counter(1) is second
    assert manager.counter(2) is None and manager.counter(-1) is None
    assert len(manager) == 2 and list(manager) == [first, second]


def test_the_key_is_a_copy() -> None:
    manager = CountersManager()
    key = bytearray(b"abc")
    counter = manager.allocate(5, "k", key)
    key[0] = 0
    assert counter.key == b"abc" and isinstance(counter.key, bytes)
    assert manager.allocate(5, "view", memoryview(b"xyz")).key == b"xyz"


def test_the_archive_finds_a_recording_position_counter_by_type_and_key() -> None:
    with Sim(1) as sim:
        transport = sim.transport("10.0.0.1")
        manager = transport.counters_manager
        other = manager.allocate(7, "some other counter", recording_key(11, 1, "aeron:ipc", 3))
        counters = [
            manager.allocate(
                RECORDING_POSITION_TYPE_ID,
                f"rec-pos: {recording_id} 1234 10 aeron:udp?endpoint=localhost:9000",
                recording_key(recording_id, 1234, "127.0.0.1:40123", 3),
            )
            for recording_id in (10, 11, 12)
        ]
        found = manager.find(RECORDING_POSITION_TYPE_ID, recording_id_is(11))
        assert found is counters[1] and found is not other
        assert manager.find(RECORDING_POSITION_TYPE_ID, recording_id_is(99)) is None
        assert manager.find(RECORDING_POSITION_TYPE_ID) is counters[0]  # any key: lowest id
        assert manager.find_all(RECORDING_POSITION_TYPE_ID) == counters
        assert manager.find_all(7) == [other]
        counters[1].set(4096)
        assert manager.counter(counters[1].id) is counters[1]
        assert manager.counter(counters[1].id).get() == 4096  # type: ignore[union-attr]
        counters[1].close()
        assert manager.find(RECORDING_POSITION_TYPE_ID, recording_id_is(11)) is None
        assert manager.find_all(RECORDING_POSITION_TYPE_ID) == [counters[0], counters[2]]


def test_one_manager_per_transport_and_its_bound_comes_from_the_config() -> None:
    with Sim(2) as sim:
        a = sim.transport("10.0.0.1", max_counters=3)
        b = sim.transport("10.0.0.2")
        assert a.counters_manager is not b.counters_manager
        assert a.counters_manager.max_counters == 3
        assert b.counters_manager.max_counters == DEFAULT_MAX_COUNTERS
        a.counters_manager.allocate(1, "x")
        assert len(b.counters_manager) == 0
    with pytest.raises(TransportError, match="max_counters"):
        TransportConfig(max_counters=0)


def test_a_closed_counter_frees_its_id_keeps_its_value_and_refuses_set() -> None:
    manager = CountersManager()
    counter = manager.allocate(1, "c")
    counter.set(9)
    counter.close()
    counter.close()  # idempotent
    assert counter.is_closed and counter.get() == 9
    assert manager.counter(counter.id) is None and len(manager) == 0 and list(manager) == []
    with pytest.raises(CounterError, match="closed"):
        counter.set(10)
    with pytest.raises(CounterError, match="closed"):
        counter.propose_max(10)
    assert counter.get() == 9


def test_freed_ids_are_reused_oldest_first_with_a_new_registration_id() -> None:
    manager = CountersManager()
    counters = [manager.allocate(1, str(i)) for i in range(5)]
    counters[3].close()
    counters[1].close()
    again = [manager.allocate(2, "again") for _ in range(3)]
    assert [c.id for c in again] == [3, 1, 5]
    registration_ids = [c.registration_id for c in [*counters, *again]]
    assert len(set(registration_ids)) == len(registration_ids)
    assert again[0].registration_id > counters[3].registration_id
    assert again[0].get() == 0  # a reused id starts from zero; the old counter keeps its own value
    assert manager.counter(3) is again[0]
    counters[3].close()  # closing the old holder again does not free the new one
    assert manager.counter(3) is again[0]


def test_the_maximum_number_of_counters_is_enforced_and_closing_makes_room() -> None:
    manager = CountersManager(max_counters=4)
    counters = [manager.allocate(1, str(i)) for i in range(4)]
    with pytest.raises(CountersFullError, match="all 4 ids are in use") as raised:
        manager.allocate(1, "one too many")
    assert isinstance(raised.value, TransportError)
    assert len(manager) == 4
    counters[2].close()
    assert manager.allocate(1, "room").id == 2
    with pytest.raises(CountersFullError):
        manager.allocate(1, "full again")


def test_the_key_is_at_most_112_bytes() -> None:
    manager = CountersManager()
    assert len(manager.allocate(1, "ok", bytes(MAX_KEY_LENGTH)).key) == MAX_KEY_LENGTH
    with pytest.raises(CounterError, match="MAX_KEY_LENGTH=112"):
        manager.allocate(1, "too long", bytes(MAX_KEY_LENGTH + 1))
    assert len(manager) == 1  # the refusal allocated nothing


def test_a_long_label_is_cut_to_380_characters_as_aeron_does() -> None:
    manager = CountersManager()
    label = "rec-pos: 1 2 3 aeron:udp?endpoint=" + "x" * 1000
    counter = manager.allocate(RECORDING_POSITION_TYPE_ID, label)
    assert counter.label == label[:MAX_LABEL_LENGTH] and len(counter.label) == 380


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ((2**31, "l"), "type id must be an int32"),
        ((-(2**31) - 1, "l"), "type id must be an int32"),
        ((True, "l"), "type id must be an int32"),
        (("1", "l"), "type id must be an int32"),
        ((1, None), "label must be a str"),
        ((1, "l", "text"), "key must be bytes-like"),
    ],
)
def test_bad_allocations_are_refused(arguments: tuple[object, ...], reason: str) -> None:
    manager = CountersManager()
    with pytest.raises(CounterError, match=reason):
        manager.allocate(*arguments)  # type: ignore[arg-type]
    assert len(manager) == 0


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1])
def test_values_are_int64(value: int) -> None:
    counter = CountersManager().allocate(1, "v")
    counter.set(5)
    with pytest.raises(CounterError, match="int64"):
        counter.set(value)
    with pytest.raises(CounterError, match="int64"):
        counter.propose_max(value)
    assert counter.get() == 5


def test_propose_max_only_moves_the_value_up() -> None:
    counter = CountersManager().allocate(1, "max")
    assert counter.propose_max(10) and counter.get() == 10
    assert not counter.propose_max(5) and counter.get() == 10
    assert not counter.propose_max(10)


@pytest.mark.parametrize("bad", [0, -1, True, "8"])
def test_a_manager_needs_a_positive_maximum(bad: object) -> None:
    with pytest.raises(CounterError, match="max_counters"):
        CountersManager(bad)  # type: ignore[arg-type]


def test_iteration_is_a_snapshot_by_ascending_id() -> None:
    manager = CountersManager()
    counters = [manager.allocate(1, str(i)) for i in range(4)]
    counters[0].close()
    manager.allocate(1, "reuses 0")
    seen = []
    for counter in manager:
        seen.append(counter.id)
        counter.close()  # closing while iterating is safe
    assert seen == [0, 1, 2, 3] and len(manager) == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 40)), max_size=120), st.integers(1, 12))
def test_ids_stay_unique_and_bounded_whatever_the_order(
    operations: list[tuple[bool, int]], limit: int
) -> None:
    manager = CountersManager(max_counters=limit)
    live: list[Counter] = []
    for allocate, pick in operations:
        if allocate:
            if len(live) == limit:
                with pytest.raises(CountersFullError):
                    manager.allocate(1, "x")
                continue
            live.append(manager.allocate(1, "x", pick.to_bytes(1, "little")))
        elif live:
            live.pop(pick % len(live)).close()
        ids = [c.id for c in live]
        assert len(set(ids)) == len(ids) and all(0 <= i < limit for i in ids)
        assert len(manager) == len(live)
        assert sorted(ids) == [c.id for c in manager]
        assert all(manager.counter(c.id) is c for c in live)


def test_a_transport_made_without_a_network_argument_has_counters_too() -> None:
    with Transport(config=TransportConfig(bind_host="127.0.0.1")) as transport:
        assert len(transport.counters_manager) == 0
