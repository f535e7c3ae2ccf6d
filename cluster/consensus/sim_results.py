"""What a simulated run reports, whichever simulator ran it: the violations its checkers found and the
result of one seed."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SeedResult", "Violation"]


@dataclass(slots=True)
class Violation:
    """A checker found a property broken: which one, when (virtual time), and the details."""

    seed: int
    time_ns: int
    checker: str
    detail: str


@dataclass(slots=True)
class SeedResult:
    """One seed's run: how much it committed, the faults injected by kind, what the checkers found, and
    the liveness failure if the cluster did not converge in time."""

    seed: int
    nodes: int
    commands_committed: int
    faults: dict[str, int]
    violations: list[Violation]
    liveness_failure: str | None

    @property
    def failed(self) -> bool:
        return bool(self.violations) or self.liveness_failure is not None
