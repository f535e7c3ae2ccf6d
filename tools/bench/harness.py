"""Side-by-side timing of our code against a hand-written floor, and the report of the ratios.

Theory of operation
-------------------
A benchmark here answers one question: how much slower is our code than the fastest plain CPython a
careful engineer would write by hand for the same job (the *floor*)?  Each :class:`Case` therefore
holds two :class:`Snippet` s that do the same work, and the report is the ratio ours / floor against a
target.

The numbers come from a noisy shared machine, so the method aims at robustness rather than at a
precise absolute figure:

* Each snippet runs in a :class:`timeit.Timer` whose setup binds every name it uses to a local of the
  timing function, so neither side pays for global lookups the other avoids.  The statement is unrolled
  :data:`UNROLL` times inside the loop so the loop's own cost (a few ns) hardly counts.
* One loop count is calibrated per case so that one measurement takes about ``budget_s``; floor and ours
  then use the same count.
* Measurements are interleaved (floor, ours, ours, floor, ...) so both sides see the same machine state,
  and the reported figure is the minimum over the repeats: noise only ever adds time.
* Time is the process's CPU time (:func:`time.process_time`), not wall-clock time: on a shared machine
  the wall clock also counts the slices other processes get, the CPU clock does not.
* ``timeit`` switches the garbage collector off while it times, for both sides alike.

The result is an absolute ns/op per side (including the call of the snippet, excluding the loop) and a
ratio.  A benchmark is not a test: a missed target is printed loudly but never changes the exit status.
"""

from __future__ import annotations

import json
import platform
import time
import timeit
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

__all__ = [
    "UNROLL",
    "Case",
    "Result",
    "Settings",
    "Snippet",
    "format_table",
    "measure",
    "run_cases",
    "to_json",
]

UNROLL: Final = 10
"""How many copies of a snippet's statement run per loop iteration."""


@dataclass(frozen=True, slots=True)
class Snippet:
    """One side of a case: a statement and the values of the names it uses (bound as locals)."""

    stmt: str
    names: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Case:
    """Two snippets doing the same work; ``target`` is the ratio to meet, or ``None`` (informational)."""

    id: str
    title: str
    floor: Snippet
    ours: Snippet
    target: float | None


@dataclass(frozen=True, slots=True)
class Settings:
    """How hard to measure: ``repeats`` interleaved rounds of about ``budget_s`` seconds per side."""

    repeats: int
    budget_s: float

    def __post_init__(self) -> None:
        if self.repeats < 1 or not self.budget_s > 0:
            raise ValueError(f"repeats must be >= 1 and budget_s > 0: {self}")


@dataclass(frozen=True, slots=True)
class Result:
    """The best (minimum) ns per operation of each side of a case."""

    case: Case
    floor_ns: float
    ours_ns: float
    number: int

    @property
    def ratio(self) -> float:
        return self.ours_ns / self.floor_ns

    @property
    def status(self) -> str:
        if self.case.target is None:
            return "info"
        return "ok" if self.ratio <= self.case.target else "MISSED"


def _timer(snippet: Snippet) -> timeit.Timer:
    setup = "\n".join(f"{name} = _names[{name!r}]" for name in snippet.names) or "pass"
    stmt = "\n".join([snippet.stmt] * UNROLL)
    return timeit.Timer(stmt, setup, timer=time.process_time, globals={"_names": dict(snippet.names)})


def _calibrate(timer: timeit.Timer, budget_s: float) -> int:
    """A loop count for which one ``timer.timeit`` takes about ``budget_s``."""
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= budget_s / 10 or number >= 1 << 30:
            break
        number *= 10 if elapsed < budget_s / 1000 else 2
    return max(1, round(number * budget_s / max(elapsed, 1e-9)))


def measure(case: Case, settings: Settings) -> Result:
    """Time both sides of ``case``, interleaved, and keep the minimum of each."""
    floor, ours = _timer(case.floor), _timer(case.ours)
    # One count for both sides: the slower side sets it, so neither exceeds the budget by much.
    number = min(_calibrate(floor, settings.budget_s), _calibrate(ours, settings.budget_s))
    best_floor = best_ours = float("inf")
    for round_index in range(settings.repeats):
        order: tuple[timeit.Timer, ...] = (floor, ours) if round_index % 2 == 0 else (ours, floor)
        for timer in order:
            elapsed = timer.timeit(number)
            if timer is floor:
                best_floor = min(best_floor, elapsed)
            else:
                best_ours = min(best_ours, elapsed)
    per_op = 1e9 / (number * UNROLL)
    return Result(case, best_floor * per_op, best_ours * per_op, number)


def run_cases(
    cases: Sequence[Case], settings: Settings, progress: Callable[[Result], None] | None = None
) -> list[Result]:
    results = []
    for case in cases:
        result = measure(case, settings)
        if progress is not None:
            progress(result)
        results.append(result)
    return results


def _environment() -> str:
    return f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}"


def format_table(title: str, results: Sequence[Result], settings: Settings) -> str:
    """The human-readable report: one row per case, then a summary line naming every miss."""
    width = max([len("case"), *(len(r.case.title) for r in results)])
    lines = [
        f"{title}: {_environment()}; ns per operation, minimum of {settings.repeats} interleaved repeats",
        "",
        f"{'case':<{width}}  {'floor ns':>9}  {'ours ns':>9}  {'ratio':>7}  {'target':>8}  status",
        f"{'-' * width}  {'-' * 9}  {'-' * 9}  {'-' * 7}  {'-' * 8}  ------",
    ]
    for r in results:
        target = "-" if r.case.target is None else f"≤ {r.case.target:.2f}x"
        lines.append(
            f"{r.case.title:<{width}}  {r.floor_ns:>9.1f}  {r.ours_ns:>9.1f}  {r.ratio:>6.2f}x  "
            f"{target:>8}  {r.status}"
        )
    targeted = [r for r in results if r.case.target is not None]
    missed = [r for r in targeted if r.status == "MISSED"]
    lines.append("")
    if missed:
        lines.append(f"MISSED {len(missed)} of {len(targeted)} targets:")
        lines.extend(
            f"  MISSED {r.case.id}: {r.ratio:.2f}x > {r.case.target:.2f}x ({r.case.title})" for r in missed
        )
    else:
        lines.append(f"all {len(targeted)} targets met")
    return "\n".join(lines)


def to_json(benchmark: str, results: Sequence[Result], settings: Settings, quick: bool) -> str:
    """One JSON object with every result, for machines."""
    report = {
        "benchmark": benchmark,
        "python": _environment(),
        "unit": "ns/op",
        "quick": quick,
        "repeats": settings.repeats,
        "budget_s": settings.budget_s,
        "unroll": UNROLL,
        "cases": [
            {
                "id": r.case.id,
                "title": r.case.title,
                "floor_ns": r.floor_ns,
                "ours_ns": r.ours_ns,
                "ratio": r.ratio,
                "target": r.case.target,
                "status": r.status,
                "number": r.number,
            }
            for r in results
        ],
        "missed": [r.case.id for r in results if r.status == "MISSED"],
    }
    return json.dumps(report, indent=2)


class Targeted(Protocol):
    """A compared figure with an optional target (``BenchCase`` of the transport and archive benchmarks)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def target(self) -> float | None: ...
    @property
    def status(self) -> str: ...
    @property
    def ratio(self) -> float: ...
    @property
    def target_text(self) -> str: ...


def verdict_lines(cases: Sequence[Targeted], configs: Mapping[str, str], *, digits: int) -> list[str]:
    """The end of a benchmark's table: what each side ran, then the missed targets or "all met"."""
    lines = [""]
    lines.extend(f"{name.replace('_', ' ')}: {text}" for name, text in configs.items())
    targeted = [c for c in cases if c.target is not None]
    missed = [c for c in targeted if c.status == "MISSED"]
    lines.append("")
    if missed:
        lines.append(f"MISSED {len(missed)} of {len(targeted)} targets:")
        lines.extend(
            f"  MISSED {c.id}: {c.ratio:.{digits}f}x, target {c.target_text} ({c.title})" for c in missed
        )
    else:
        lines.append(f"all {len(targeted)} targets met")
    return lines
