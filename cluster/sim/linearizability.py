"""A linearizability checker for recorded client histories (docs/linearizability.md).

Theory of operation
-------------------
A *history* is what clients saw: for every operation, who issued it, its input, when it was invoked
(``call``), when its answer arrived (``return_``) and the answer (``output``). The history is
*linearizable* against a sequential *model* if every operation can be given one instant between its
call and its return -- its linearization point -- such that running the operations one by one in the
order of those instants, through the model, yields exactly the outputs the clients saw. Operations
whose intervals overlap may take either order; an operation that returned before another was called
must come first.

The search is Wing & Gong's, with Lowe's memoization, as Porcupine runs it:

* Every operation becomes two entries, its call and its return, in one doubly linked list sorted by
  time. At equal times calls come first, so intervals that only touch count as concurrent: the checker
  never blames a history for a tie the clock could not resolve.
* Walking the list from the front, a *call* entry is a candidate for the next linearization point: if
  the model accepts the operation from the current state, the call and its return are *lifted* out of
  the list (so the walk restarts with the remaining operations), and the choice is pushed on a stack.
  Reaching a *return* entry means an operation that must already have happened was not placed: the
  last choice is undone (*unlifted*, both entries back in place, state restored) and the walk goes on
  after it. An empty stack at that moment means no order works: not linearizable. An empty list means
  every operation was placed: linearizable.
* The memo: the set of linearized operations (a bitset, a Python int) with the model state after them
  determines everything the rest of the search can do. Every such pair is remembered, and a choice
  that leads to a pair already seen is skipped, since from there the search already failed. This turns
  the factorial search into one that is usually linear in the history's length.
* Partitions: a model may split the history into independent parts (a key-value store: one part per
  key) checked one by one. A history is linearizable iff every part is (linearizability is *local*,
  Herlihy & Wing), and many small searches are exponentially cheaper than one large one.
* Indeterminate operations: a client that timed out does not know whether its operation took effect.
  Such an operation has ``return_ = None`` and output ``UNKNOWN``: its return entry lies at +infinity
  and the model accepts any output for it. It may thus be linearized anywhere after its call; placing
  it after every other operation is the same as "it never happened", since nothing observes it there.
* The budget: the search counts its steps (entries visited) per partition and gives up at
  ``max_steps``; the result is then ``ok=None``, "unknown", never a guess.

For a failed partition the result keeps the longest linearization found (the operations in the order
placed and the state after each) and the operation whose return the search could not get past from
there: in a stale read or a lost write, that is the read the model refused.

Models: ``Model`` is a base class to subclass; ``step`` must be deterministic and must not mutate the
state it is given. States are compared by ``Model.key(state)``, which must be hashable (by default the
state itself). ``KV_MODEL`` is a map of registers with reads, writes and compare-and-sets.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "DEFAULT_MAX_STEPS",
    "KV_MODEL",
    "UNKNOWN",
    "HistoryError",
    "KvModel",
    "Model",
    "Operation",
    "PartitionFailure",
    "Result",
    "check",
]

# Per partition. A realistic partition of a few hundred operations needs a few thousand steps; this is
# a few seconds of CPython for one that does not end.
DEFAULT_MAX_STEPS: Final = 2_000_000


class _Unknown:
    """The output of an operation whose client timed out: it may or may not have taken effect."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()


class HistoryError(ValueError):
    """A history that cannot be checked: an operation returns before it is called."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation as its client saw it. ``return_ is None``: the client timed out (indeterminate)."""

    client_id: int
    input: object
    call: int
    output: object
    return_: int | None

    @property
    def indeterminate(self) -> bool:
        return self.return_ is None


class Model(ABC):
    """A sequential specification. Subclasses implement ``init`` and ``step``; the rest has defaults."""

    @abstractmethod
    def init(self) -> object:
        """The state before any operation."""

    @abstractmethod
    def step(self, state: object, input: object, output: object) -> tuple[bool, object]:
        """Whether ``input`` may answer ``output`` in ``state``, and the state after it.

        ``output`` is ``UNKNOWN`` for an indeterminate operation: accept it and apply its effect."""

    def partition(self, history: Sequence[Operation]) -> Mapping[object, Sequence[Operation]]:
        """Independent parts of the history, by a label the report names. Default: one part."""
        return {None: list(history)}

    def key(self, state: object) -> Hashable:
        """What the memo compares states by: equal keys, equal states."""
        if not isinstance(state, Hashable):
            raise TypeError(f"state {state!r} is not hashable: override Model.key")
        return state

    def describe_operation(self, input: object, output: object) -> str:
        return f"{input!r} -> {output!r}"

    def describe_state(self, state: object) -> str:
        return repr(state)


# ------------------------------------------------------------------------------------- key-value model


class KvModel(Model):
    """A map of registers. Inputs ``("read", k)``, ``("write", k, v)``, ``("cas", k, expected, new)``;
    outputs: a read the value (``None`` if absent), a write ``None``, a cas whether it swapped.

    The state is a frozenset of ``(key, value)`` pairs (one pair once partitioned per key); values must
    be hashable, and writing ``None`` is the same as deleting. An indeterminate read constrains nothing
    and is left out of its partition."""

    def init(self) -> object:
        return frozenset()

    def step(self, state: object, input: object, output: object) -> tuple[bool, object]:
        assert isinstance(state, frozenset)
        match input:
            case ("read", key):
                return output is UNKNOWN or output == _lookup(state, key), state
            case ("write", key, value):
                return output is UNKNOWN or output is None, _store(state, key, value)
            case ("cas", key, expected, new):
                swapped = _lookup(state, key) == expected
                if output is not UNKNOWN and output != swapped:
                    return False, state
                return True, _store(state, key, new) if swapped else state
        raise HistoryError(f"not a key-value input: {input!r}")

    def partition(self, history: Sequence[Operation]) -> Mapping[object, Sequence[Operation]]:
        parts: dict[object, list[Operation]] = {}
        for op in history:
            if not (op.indeterminate and _is_read(op.input)):
                parts.setdefault(_input_key(op.input), []).append(op)
        return parts

    def describe_operation(self, input: object, output: object) -> str:
        match input:
            case ("read", key):
                return f"read {key!r} -> {output!r}"
            case ("write", key, value):
                return f"write {key!r} = {value!r}"
            case ("cas", key, expected, new):
                outcome = {True: "swapped", False: "refused"}.get(output, repr(output))  # type: ignore[call-overload]
                return f"cas {key!r} {expected!r} -> {new!r}: {outcome}"
        return f"{input!r} -> {output!r}"

    def describe_state(self, state: object) -> str:
        assert isinstance(state, frozenset)
        return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in sorted(state, key=repr)) + "}"


def _lookup(state: frozenset[tuple[object, object]], key: object) -> object:
    for k, v in state:
        if k == key:
            return v
    return None


def _store(
    state: frozenset[tuple[object, object]], key: object, value: object
) -> frozenset[tuple[object, object]]:
    kept = frozenset(kv for kv in state if kv[0] != key)
    return kept if value is None else kept | {(key, value)}


def _is_read(input: object) -> bool:
    return isinstance(input, tuple) and len(input) == 2 and input[0] == "read"


def _input_key(input: object) -> object:
    if not (isinstance(input, tuple) and len(input) >= 2 and input[0] in ("read", "write", "cas")):
        raise HistoryError(f"not a key-value input: {input!r}")
    return input[1]


KV_MODEL: Final = KvModel()


# -------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class PartitionFailure:
    """Why one partition is not linearizable."""

    label: object
    operations: tuple[Operation, ...]
    linearized: tuple[tuple[Operation, object], ...]  # the longest order found, with the state after each
    blocked_by: Operation  # the operation whose return the search could not pass from there


@dataclass(frozen=True, slots=True)
class Result:
    """``ok``: True linearizable, False not, None unknown (a partition ran out of steps)."""

    ok: bool | None
    model: Model = field(repr=False)
    failure: PartitionFailure | None = None
    unknown_labels: tuple[object, ...] = ()
    steps: int = 0

    def explain(self) -> str:
        if self.ok:
            return f"linearizable ({self.steps} search steps)"
        if self.failure is None:
            labels = ", ".join(repr(label) for label in self.unknown_labels)
            return f"unknown: the search ran out of steps in partition(s) {labels}"
        return _explain_failure(self.model, self.failure)


def _describe(model: Model, op: Operation) -> str:
    until = "timed out" if op.return_ is None else str(op.return_)
    return f"client {op.client_id} [{op.call}, {until}] {model.describe_operation(op.input, op.output)}"


def _explain_failure(model: Model, failure: PartitionFailure) -> str:
    placed = {id(op) for op, _ in failure.linearized}
    lines = [
        f"not linearizable: partition {failure.label!r} ({len(failure.operations)} operations)",
        f"longest linearization found ({len(failure.linearized)} operations), with the state after each:",
    ]
    lines += [
        f"  {_describe(model, op)}  => {model.describe_state(state)}" for op, state in failure.linearized
    ]
    lines.append("from there, no order places this operation before its return:")
    lines.append(f"  {_describe(model, failure.blocked_by)}")
    rest = [op for op in failure.operations if id(op) not in placed and op is not failure.blocked_by]
    if rest:
        lines.append("operations not placed:")
        lines += [f"  {_describe(model, op)}" for op in rest]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- checking


def check(model: Model, history: Sequence[Operation], *, max_steps: int | None = DEFAULT_MAX_STEPS) -> Result:
    """Whether ``history`` is linearizable against ``model``; ``max_steps`` bounds each partition's
    search (``None``: no bound). The first failing partition is reported; a definite failure in one
    partition wins over a budget exhausted in another."""
    for op in history:
        if op.return_ is not None and op.return_ < op.call:
            raise HistoryError(f"operation returns before it is called: {op!r}")
    unknown: list[object] = []
    total_steps = 0
    for label, ops in model.partition(history).items():
        outcome = _search(model, ops, max_steps)
        total_steps += outcome.steps
        if outcome.ok is None:
            unknown.append(label)
        elif not outcome.ok:
            assert outcome.blocked_by is not None
            failure = PartitionFailure(label, tuple(ops), outcome.linearized, outcome.blocked_by)
            return Result(False, model, failure, steps=total_steps)
    return Result(None if unknown else True, model, unknown_labels=tuple(unknown), steps=total_steps)


class _Entry:
    """A call or return in the search's doubly linked list; a call's ``match`` is its return."""

    __slots__ = ("bit", "match", "next", "op", "prev")

    def __init__(self, op: Operation | None, bit: int) -> None:
        self.op = op
        self.bit = bit
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _build_list(ops: Sequence[Operation]) -> _Entry:
    """The sentinel head of the call/return list, sorted by time, calls before returns at a tie."""
    events: list[tuple[float, int, int, _Entry]] = []
    for i, op in enumerate(ops):
        call, ret = _Entry(op, 1 << i), _Entry(op, 1 << i)
        call.match = ret
        events.append((op.call, 0, i, call))
        events.append((math.inf if op.return_ is None else op.return_, 1, i, ret))
    events.sort(key=lambda event: event[:3])
    head = prev = _Entry(None, 0)
    for *_, entry in events:
        prev.next, entry.prev = entry, prev
        prev = entry
    return head


def _lift(call: _Entry) -> None:
    """Take a call and its return out of the list."""
    ret = call.match
    assert call.prev is not None and call.next is not None and ret is not None and ret.prev is not None
    call.prev.next, call.next.prev = call.next, call.prev
    ret.prev.next = ret.next
    if ret.next is not None:
        ret.next.prev = ret.prev


def _unlift(call: _Entry) -> None:
    """Put a lifted call and its return back, the inverse of ``_lift`` (their neighbours kept their links)."""
    ret = call.match
    assert call.prev is not None and call.next is not None and ret is not None and ret.prev is not None
    ret.prev.next = ret
    if ret.next is not None:
        ret.next.prev = ret
    call.prev.next = call
    call.next.prev = call


@dataclass(frozen=True, slots=True)
class _Outcome:
    ok: bool | None
    steps: int
    linearized: tuple[tuple[Operation, object], ...] = ()
    blocked_by: Operation | None = None


def _search(model: Model, ops: Sequence[Operation], max_steps: int | None) -> _Outcome:
    """Wing & Gong's search with the (linearized set, state) memo over one partition.

    The order placed so far is also kept as a chain of ``(operation, state after, previous link)``
    tuples (``path``), which a push extends and a pop shortens in O(1): the longest linearization found
    is a reference to one link, made a tuple only if the partition fails. (Copying the stack at each new
    longest made a history of n operations cost O(n^2): many minutes for a 5-minute chaos run.)"""
    head = _build_list(ops)
    step: Callable[[object, object, object], tuple[bool, object]] = model.step
    key = model.key
    state = model.init()
    linearized = 0  # bitset of the placed operations
    seen: set[tuple[int, Hashable]] = {(0, key(state))}
    stack: list[tuple[_Entry, object]] = []  # (call placed, state before it)
    path: _Link | None = None  # the placed operations, newest first
    best: _Link | None = None
    best_length = 0
    blocked_by: Operation | None = None
    limit = math.inf if max_steps is None else max_steps
    steps = 0
    entry = head.next
    while head.next is not None:
        steps += 1
        if steps > limit:
            return _Outcome(None, steps - 1)
        assert entry is not None and entry.op is not None, "the list always ends with a return"
        ret = entry.match
        if ret is not None:  # a call: try it as the next linearization point
            accepted, after = step(
                state, entry.op.input, UNKNOWN if entry.op.return_ is None else entry.op.output
            )
            if accepted:
                placed = linearized | entry.bit
                memo = (placed, key(after))
                if memo not in seen:
                    seen.add(memo)
                    stack.append((entry, state))
                    path = (entry.op, after, path)
                    state, linearized = after, placed
                    _lift(entry)
                    if len(stack) > best_length:
                        best, best_length, blocked_by = path, len(stack), None
                    entry = head.next
                    continue
            entry = entry.next
        else:  # a return: its operation had to be placed by now; undo the last choice
            if blocked_by is None and len(stack) == best_length:
                blocked_by = entry.op
            if not stack:
                return _Outcome(False, steps, _unchain(best), blocked_by)
            entry, state = stack.pop()
            assert path is not None
            path = path[2]
            linearized &= ~entry.bit
            _unlift(entry)
            entry = entry.next
    return _Outcome(True, steps)


_Link = tuple["Operation", object, "_Link | None"]
"""A link of the placed order: an operation, the state after it, the link of the one before."""


def _unchain(link: _Link | None) -> tuple[tuple[Operation, object], ...]:
    """The operations of the order ending at ``link``, oldest first, each with the state after it."""
    out: list[tuple[Operation, object]] = []
    while link is not None:
        out.append((link[0], link[1]))
        link = link[2]
    out.reverse()
    return tuple(out)
