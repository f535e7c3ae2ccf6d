"""The linearizability checker (cluster/sim/linearizability.py, docs/linearizability.md).

Hand-written histories with their timelines drawn; properties over histories made by running a real
sequential key-value store and giving each operation an interval around its linearization point; an
exhaustive oracle on tiny histories; the budget; one large history for performance.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster.sim.linearizability import (
    KV_MODEL,
    UNKNOWN,
    HistoryError,
    KvModel,
    Model,
    Operation,
    check,
)

PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def op(
    client_id: int, input: tuple[object, ...], call: int, output: object, return_: int | None
) -> Operation:
    return Operation(client_id, input, call, UNKNOWN if return_ is None else output, return_)


def w(client: int, key: str, value: object, call: int, ret: int | None) -> Operation:
    return op(client, ("write", key, value), call, None, ret)


def r(client: int, key: str, value: object, call: int, ret: int | None) -> Operation:
    return op(client, ("read", key), call, value, ret)


def cas(
    client: int, key: str, expected: object, new: object, swapped: bool, call: int, ret: int | None
) -> Operation:
    return op(client, ("cas", key, expected, new), call, swapped, ret)


def linearizable(history: Sequence[Operation], model: Model = KV_MODEL) -> bool | None:
    return check(model, history).ok


# ------------------------------------------------------------------------------------ known histories


def test_sequential_operations_that_follow_the_register_are_linearizable() -> None:
    # client 0  |-w x=1-|     |-w x=2-|
    # client 1            |-r 1-|       |-r 2-|
    history = [w(0, "x", 1, 0, 10), r(1, "x", 1, 20, 30), w(0, "x", 2, 40, 50), r(1, "x", 2, 60, 70)]
    assert linearizable(history) is True


def test_a_read_of_a_value_before_it_was_ever_written_is_not_linearizable() -> None:
    # client 0            |-w x=1-|
    # client 1  |-r 1-|
    assert linearizable([r(1, "x", 1, 0, 10), w(0, "x", 1, 20, 30)]) is False


@pytest.mark.parametrize("seen", [None, 1])
def test_a_read_concurrent_with_a_write_may_see_either_value(seen: object) -> None:
    # client 0  |------- w x=1 -------|
    # client 1       |-- r ? --|
    assert linearizable([w(0, "x", 1, 0, 30), r(1, "x", seen, 10, 20)]) is True


def test_intervals_that_only_touch_count_as_concurrent() -> None:
    # client 0  |-w x=1-|
    # client 1          |-r None-|      (the read is called at the instant the write returns)
    assert linearizable([w(0, "x", 1, 0, 10), r(1, "x", None, 10, 20)]) is True
    assert linearizable([w(0, "x", 1, 0, 10), r(1, "x", None, 11, 20)]) is False


def test_a_stale_read_is_not_linearizable_and_the_report_names_the_key_and_the_read() -> None:
    # client 0  |-w x=1-|  |-w x=2-|
    # client 1                        |-r 1-|     the read starts after x=2 was acknowledged
    # client 2  |-w y=5-|                          another key, linearizable on its own
    history = [
        w(0, "x", 1, 0, 10),
        w(0, "x", 2, 20, 30),
        r(1, "x", 1, 40, 50),
        w(2, "y", 5, 0, 10),
    ]
    result = check(KV_MODEL, history)
    assert result.ok is False
    assert result.failure is not None
    assert result.failure.label == "x"
    assert result.failure.blocked_by == history[2]
    assert [o for o, _ in result.failure.linearized] == history[:2]
    text = result.explain()
    assert "partition 'x'" in text and "client 1 [40, 50] read 'x' -> 1" in text
    assert "'y'" not in text


def test_a_lost_write_is_not_linearizable() -> None:
    # client 0  |-w x=1-|            |-r 1-|  |-r 1-|
    # client 1           |-w x=2-|                      acknowledged, then never seen
    history = [w(0, "x", 1, 0, 10), w(1, "x", 2, 20, 30), r(0, "x", 1, 40, 50), r(0, "x", 1, 60, 70)]
    assert linearizable(history) is False


def test_a_write_concurrent_with_the_reads_explains_an_older_value() -> None:
    # client 0  |-w x=1-|            |-r 1-|  |-r 1-|
    # client 1           |-w x=2-|
    # client 2               |--- w x=1 ---|            x=1 again, after x=2
    history = [
        w(0, "x", 1, 0, 10),
        w(1, "x", 2, 20, 30),
        r(0, "x", 1, 40, 50),
        r(0, "x", 1, 60, 70),
        w(2, "x", 1, 25, 45),
    ]
    assert linearizable(history) is True


def test_compare_and_set_swaps_only_the_expected_value() -> None:
    # client 0  |-w x=1-| |-cas 1->2 swapped-| |-cas 5->6 refused-| |-r 2-|
    history = [
        w(0, "x", 1, 0, 10),
        cas(0, "x", 1, 2, True, 20, 30),
        cas(0, "x", 5, 6, False, 40, 50),
        r(0, "x", 2, 60, 70),
    ]
    assert linearizable(history) is True


@pytest.mark.parametrize(
    ("expected", "swapped"),
    [(1, False), (7, True)],
    ids=["refused-although-it-matched", "swapped-although-it-did-not-match"],
)
def test_a_compare_and_set_that_contradicts_the_register_is_not_linearizable(
    expected: int, swapped: bool
) -> None:
    # client 0  |-w x=1-|  |-cas-|
    history = [w(0, "x", 1, 0, 10), cas(0, "x", expected, 2, swapped, 20, 30)]
    assert linearizable(history) is False


@pytest.mark.parametrize(("second_swapped", "ok"), [(True, False), (False, True)])
def test_of_two_racing_compare_and_sets_on_one_value_only_one_may_win(second_swapped: bool, ok: bool) -> None:
    # client 0  |-w x=1-|  |--- cas 1->2 swapped ---|
    # client 1               |--- cas 1->3 ? ---|
    history = [
        w(0, "x", 1, 0, 10),
        cas(0, "x", 1, 2, True, 20, 50),
        cas(1, "x", 1, 3, second_swapped, 25, 45),
    ]
    assert linearizable(history) is ok


@pytest.mark.parametrize("seen", [1, 2])
def test_an_indeterminate_write_may_or_may_not_be_observed(seen: int) -> None:
    # client 0  |-w x=1-|  |-w x=2 ........ (timed out)
    # client 1                  |-r ?-|
    history = [w(0, "x", 1, 0, 10), w(0, "x", 2, 20, None), r(1, "x", seen, 30, 40)]
    assert linearizable(history) is True


def test_an_indeterminate_write_once_observed_cannot_be_undone() -> None:
    # client 0  |-w x=1-|  |-w x=2 ........ (timed out)
    # client 1                  |-r 2-| |-r 1-|
    history = [w(0, "x", 1, 0, 10), w(0, "x", 2, 20, None), r(1, "x", 2, 30, 40), r(1, "x", 1, 50, 60)]
    assert linearizable(history) is False


def test_an_indeterminate_write_observed_before_its_call_is_not_linearizable() -> None:
    # client 1  |-r 1-|
    # client 0          |-w x=1 ........ (timed out)
    assert linearizable([r(1, "x", 1, 0, 10), w(0, "x", 1, 20, None)]) is False


def test_an_indeterminate_operations_recorded_output_constrains_nothing() -> None:
    # client 0  |-w x=1-|  |-cas 1->2 (timed out; recorded "refused")...
    # client 1                   |-r 2-|
    timed_out = Operation(0, ("cas", "x", 1, 2), 20, False, None)
    assert linearizable([w(0, "x", 1, 0, 10), timed_out, r(1, "x", 2, 30, 40)]) is True


def test_an_operation_that_returns_before_its_call_is_refused() -> None:
    with pytest.raises(HistoryError, match="returns before it is called"):
        check(KV_MODEL, [r(0, "x", None, 10, 5)])


def test_an_input_the_key_value_model_does_not_know_is_refused() -> None:
    with pytest.raises(HistoryError, match="not a key-value input"):
        check(KV_MODEL, [op(0, ("increment", "x"), 0, None, 10)])


def test_an_empty_history_is_linearizable() -> None:
    assert linearizable([]) is True


# -------------------------------------------------------------------------------------------- budget


def concurrent_writes_then_a_read_of_nothing_written(writes: int) -> list[Operation]:
    # client i  |-------- w x=i --------|          every write overlaps every other
    # client n                              |-r -1-|  a value no one wrote: every order must be tried
    history = [w(i, "x", i, i, 100) for i in range(writes)]
    return [*history, r(writes, "x", -1, 200, 300)]


def test_a_pathological_history_with_a_tiny_budget_is_unknown_not_wrong() -> None:
    small = concurrent_writes_then_a_read_of_nothing_written(6)
    assert check(KV_MODEL, small, max_steps=None).ok is False  # the shape does fail, given the time
    result = check(KV_MODEL, concurrent_writes_then_a_read_of_nothing_written(16), max_steps=1_000)
    assert result.ok is None
    assert result.unknown_labels == ("x",)
    assert result.explain().startswith("unknown")


def test_a_definite_failure_in_one_key_wins_over_an_exhausted_budget_in_another() -> None:
    hard = concurrent_writes_then_a_read_of_nothing_written(16)
    stale = [w(0, "y", 1, 0, 10), w(0, "y", 2, 20, 30), r(1, "y", 1, 40, 50)]
    result = check(KV_MODEL, hard + stale, max_steps=1_000)
    assert result.ok is False
    assert result.failure is not None and result.failure.label == "y"


# ------------------------------------------------------------------------------ generated histories


def run_clients(
    rng: random.Random, *, ops: int, keys: int, clients: int, timeout_percent: int = 0
) -> list[Operation]:
    """A linearizable history by construction: each client issues operations one after another, each
    with a linearization point inside its interval; a real sequential store applies the operations in
    the order of their points, and that gives the outputs. A timed-out operation takes effect or not,
    at random; its client moves on."""
    scheduled: list[tuple[int, int, int, int | None]] = []  # (point, call, client, return)
    clock = [0] * clients
    for i in range(ops):
        client = i % clients
        call = clock[client] + rng.randint(0, 20)
        point = call + rng.randint(0, 20)
        ret = point + rng.randint(0, 20)
        clock[client] = ret
        timed_out = rng.randrange(100) < timeout_percent
        scheduled.append((point, call, client, None if timed_out else ret))
    scheduled.sort(key=lambda s: s[0])
    store: dict[str, int] = {}
    history: list[Operation] = []
    next_value = itertools.count(1)
    for _, call, client, returned in scheduled:
        key = f"k{rng.randrange(keys)}"
        kind = rng.choice(["read", "read", "write", "cas"])
        takes_effect = returned is not None or rng.random() < 0.5
        if kind == "read":
            input: tuple[object, ...] = ("read", key)
            output: object = store.get(key)
        elif kind == "write":
            value = next(next_value)
            input, output = ("write", key, value), None
            if takes_effect:
                store[key] = value
        else:
            expected = store.get(key) if rng.random() < 0.5 else rng.choice([None, 1, 2, 3])
            new = next(next_value)
            input, output = ("cas", key, expected, new), store.get(key) == expected
            if takes_effect and output:
                store[key] = new
        history.append(op(client, input, call, output, returned))
    rng.shuffle(history)
    return history


def written_values(history: Sequence[Operation], key: object) -> set[object]:
    values: set[object] = set()
    for o in history:
        match o.input:
            case ("write", k, value) if k == key:
                values.add(value)
            case ("cas", k, _, new) if k == key:
                values.add(new)
    return values


def with_read_of_a_value_never_written(
    rng: random.Random, history: list[Operation]
) -> list[Operation] | None:
    """The history with one answered read changed to return a value never written to its key (one
    written to another key when there is one, to check the partitions keep apart)."""
    reads = [i for i, o in enumerate(history) if o.input[0] == "read" and o.return_ is not None]  # type: ignore[index]
    if not reads:
        return None
    i = rng.choice(reads)
    key = history[i].input[1]  # type: ignore[index]
    elsewhere = {v for o in history for v in written_values([o], o.input[1])} - written_values(history, key)  # type: ignore[index]
    value = rng.choice(sorted(elsewhere, key=repr)) if elsewhere else -1
    mutated = list(history)
    mutated[i] = dataclasses.replace(history[i], output=value)
    return mutated


histories = st.builds(
    lambda seed, ops, keys, clients, timeouts: run_clients(
        random.Random(seed), ops=ops, keys=keys, clients=clients, timeout_percent=timeouts
    ),
    seed=st.integers(0, 2**32 - 1),
    ops=st.integers(0, 60),
    keys=st.integers(1, 3),
    clients=st.integers(1, 5),
    timeouts=st.sampled_from([0, 10, 30]),
)


@PROPERTIES
@given(histories)
def test_a_history_of_a_real_sequential_store_is_always_linearizable(history: list[Operation]) -> None:
    result = check(KV_MODEL, history, max_steps=None)
    assert result.ok is True, result.explain()


@PROPERTIES
@given(histories, st.randoms(use_true_random=False))
def test_a_read_of_a_value_never_written_to_its_key_is_never_linearizable(
    history: list[Operation], rng: random.Random
) -> None:
    mutated = with_read_of_a_value_never_written(rng, history)
    if mutated is None:
        return
    result = check(KV_MODEL, mutated, max_steps=None)
    assert result.ok is False
    assert result.failure is not None


def perhaps_broken(rng: random.Random, history: list[Operation]) -> list[Operation]:
    """Half the time, one read changed to answer a small value that may or may not fit."""
    reads = [i for i, o in enumerate(history) if o.input[0] == "read" and o.return_ is not None]  # type: ignore[index]
    if not reads or rng.random() < 0.5:
        return history
    i = rng.choice(reads)
    broken = list(history)
    broken[i] = dataclasses.replace(history[i], output=rng.choice([None, 1, 2, 3]))
    return broken


@PROPERTIES
@given(histories, st.randoms(use_true_random=False))
def test_the_answer_does_not_depend_on_the_order_operations_are_listed(
    history: list[Operation], rng: random.Random
) -> None:
    history = perhaps_broken(rng, history)
    shuffled = list(history)
    rng.shuffle(shuffled)
    assert check(KV_MODEL, shuffled, max_steps=None).ok == check(KV_MODEL, history, max_steps=None).ok


class UnpartitionedKv(KvModel):
    """The key-value model checked as one history: the whole map is the state."""

    def partition(self, history: Sequence[Operation]) -> Mapping[object, Sequence[Operation]]:
        return Model.partition(self, history)


small_histories = st.builds(
    lambda seed, ops, keys, clients, timeouts: run_clients(
        random.Random(seed), ops=ops, keys=keys, clients=clients, timeout_percent=timeouts
    ),
    seed=st.integers(0, 2**32 - 1),
    ops=st.integers(0, 14),
    keys=st.integers(1, 3),
    clients=st.integers(1, 4),
    timeouts=st.sampled_from([0, 20]),
)


@PROPERTIES
@given(small_histories, st.randoms(use_true_random=False))
def test_checking_per_key_agrees_with_checking_the_whole_map(
    history: list[Operation], rng: random.Random
) -> None:
    history = perhaps_broken(rng, history)
    assert check(KV_MODEL, history, max_steps=None).ok == check(UnpartitionedKv(), history, max_steps=None).ok


# ------------------------------------------------------------------------------ an exhaustive oracle


def brute_force_linearizable(model: Model, history: Sequence[Operation]) -> bool:
    """Every order of every subset that keeps the answered operations and respects real time."""
    answered = [o for o in history if o.return_ is not None]
    pending = [o for o in history if o.return_ is None]
    for size in range(len(pending) + 1):
        for kept in itertools.combinations(pending, size):
            for order in itertools.permutations([*answered, *kept]):
                if _respects_real_time(order) and _model_accepts(model, order):
                    return True
    return False


def _respects_real_time(order: Sequence[Operation]) -> bool:
    return all(
        not (later.return_ is not None and later.return_ < earlier.call)
        for i, earlier in enumerate(order)
        for later in order[i + 1 :]
    )


def _model_accepts(model: Model, order: Sequence[Operation]) -> bool:
    state = model.init()
    for o in order:
        ok, state = model.step(state, o.input, UNKNOWN if o.return_ is None else o.output)
        if not ok:
            return False
    return True


@st.composite
def arbitrary_histories(draw: st.DrawFn) -> list[Operation]:
    """Up to 6 operations on 2 keys, with any intervals and any outputs from a small domain."""
    values = st.sampled_from([None, 1, 2])
    history = []
    for client in range(draw(st.integers(0, 6))):
        key = draw(st.sampled_from(["x", "y"]))
        call = draw(st.integers(0, 30))
        ret = draw(st.one_of(st.none(), st.integers(call, call + 15)))
        match draw(st.sampled_from(["read", "write", "cas"])):
            case "read":
                history.append(op(client, ("read", key), call, draw(values), ret))
            case "write":
                history.append(w(client, key, draw(st.sampled_from([1, 2])), call, ret))
            case _:
                history.append(
                    cas(
                        client,
                        key,
                        draw(values),
                        draw(st.sampled_from([1, 2])),
                        draw(st.booleans()),
                        call,
                        ret,
                    )
                )
    return history


@settings(max_examples=400, deadline=None)
@given(arbitrary_histories())
def test_the_checker_agrees_with_trying_every_order(history: list[Operation]) -> None:
    assert check(KV_MODEL, history, max_steps=None).ok is brute_force_linearizable(UnpartitionedKv(), history)


# --------------------------------------------------------------------------------------- performance


def test_two_thousand_operations_on_twenty_keys_from_five_clients_are_linearizable() -> None:
    history = run_clients(random.Random(20240611), ops=2_000, keys=20, clients=5, timeout_percent=2)
    result = check(KV_MODEL, history)
    assert result.ok is True, result.explain()
    broken = with_read_of_a_value_never_written(random.Random(7), history)
    assert broken is not None
    assert check(KV_MODEL, broken).ok is False
