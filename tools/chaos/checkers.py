"""The checkers of a chaos run, on its recorded history and fault log; pure functions of them.

* ``check_linearizable``: the history against the key-value model, one partition per key, with the
  simulator's checker (``cluster.sim.linearizability``, Wing & Gong with Lowe's memo). Indeterminate
  operations may take effect at any instant after their call, or never.
* ``lost_writes``: nothing acknowledged is lost. After the faults are healed, a reader reads every key
  (the *final reads*). For a key whose final read saw value ``v``, written by operation ``W_f`` (values
  are unique, so the value names its write), an acknowledged write or swapping compare-and-set ``W``
  is *lost* when ``W_f`` returned before ``W`` was called (the state went back to something strictly
  older than an acknowledged write), or when the key reads absent although ``W`` was acknowledged. A
  final value that no operation wrote is a *phantom*. This is weaker than linearizability, and
  independent of its search: a run can fail it only with a history that is not linearizable either,
  but the two are computed apart so that the summary can count losses.
* ``recovery_ms``: for each fault, the time from its injection until the first write or
  compare-and-set invoked at or after the injection was acknowledged: when the cluster took writes
  again. A fault after which no write was acknowledged has no figure; the run's liveness check
  (``ChaosRun``) reports it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cluster.sim.linearizability import KV_MODEL, Operation, Result, check

__all__ = ["LostWrite", "check_linearizable", "lost_writes", "recovery_ms", "summarise_ms"]

FINAL_READER: int = 0
"""The client id of the final reads (the workload's clients count from 1)."""


def check_linearizable(history: Sequence[Operation], max_steps: int | None = None) -> Result:
    """The checker's verdict on ``history``: ``ok`` True, False, or None (the search ran out of steps)."""
    return check(KV_MODEL, history, max_steps=max_steps) if max_steps else check(KV_MODEL, history)


@dataclass(frozen=True, slots=True)
class LostWrite:
    """An acknowledged write the final read of its key does not account for."""

    key: bytes
    write: Operation
    final_value: bytes | None

    def describe(self) -> str:
        return (
            f"acknowledged {self.write.input!r} by client {self.write.client_id} "
            f"[{self.write.call}, {self.write.return_}] lost: the final read of {self.key!r} saw "
            f"{self.final_value!r}"
        )


def _written_value(op: Operation) -> bytes | None:
    """The value an operation stores if it takes effect (``None``: a read, or a refused swap)."""
    match op.input:
        case ("write", _, bytes() as value):
            return value
        case ("cas", _, _, bytes() as new) if op.output is not False:
            return new
    return None


def _kind(op: Operation) -> object:
    """``"read"``, ``"write"`` or ``"cas"``."""
    return op.input[0] if isinstance(op.input, tuple) else None


def _key(op: Operation) -> object:
    return op.input[1] if isinstance(op.input, tuple) else None


def _acknowledged_write(op: Operation) -> bool:
    return op.return_ is not None and _written_value(op) is not None


def lost_writes(
    history: Iterable[Operation], final_reads: Iterable[Operation]
) -> tuple[list[LostWrite], list[str]]:
    """Acknowledged writes the final reads do not account for, and phantoms (module docstring)."""
    history = list(history)
    by_value: dict[tuple[object, bytes], Operation] = {}
    for op in history:
        value = _written_value(op)
        if value is not None:
            by_value[(_key(op), value)] = op
    lost: list[LostWrite] = []
    phantoms: list[str] = []
    for read in final_reads:
        if read.return_ is None:
            continue  # no final read of this key: the liveness check reports it
        key = _key(read)
        assert isinstance(key, bytes)
        final = read.output
        assert final is None or isinstance(final, bytes)
        source = None if final is None else by_value.get((key, final))
        if final is not None and source is None:
            phantoms.append(f"the final read of {key!r} saw {final!r}, which no client wrote")
            continue
        for op in history:
            if op.client_id == FINAL_READER or not _acknowledged_write(op) or _key(op) != key:
                continue
            if source is None or (
                source is not op and source.return_ is not None and source.return_ < op.call
            ):
                lost.append(LostWrite(key, op, final))
    return lost, phantoms


def recovery_ms(history: Sequence[Operation], injected_ns: Iterable[int]) -> list[float | None]:
    """For each injection instant, the milliseconds until the cluster acknowledged a write invoked at or
    after it (``None``: it never did)."""
    writes = sorted(
        (op.call, op.return_)
        for op in history
        if op.return_ is not None and op.client_id != FINAL_READER and _kind(op) in ("write", "cas")
    )
    figures: list[float | None] = []
    for start in injected_ns:
        ends = [ret for call, ret in writes if call >= start]
        figures.append((min(ends) - start) / 1e6 if ends else None)
    return figures


def summarise_ms(figures: Iterable[float | None]) -> dict[str, float | None]:
    """``{"min", "median", "max"}`` of the known figures, rounded to 0.1 ms; ``None`` each if none."""
    known = [figure for figure in figures if figure is not None]
    if not known:
        return {"min": None, "median": None, "max": None}
    return {
        "min": round(min(known), 1),
        "median": round(statistics.median(known), 1),
        "max": round(max(known), 1),
    }
