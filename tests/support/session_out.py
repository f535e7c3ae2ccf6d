"""``Out`` for tests of ``ClientSessions`` (sans-IO): where it puts its actions, each append's answer
callbacks kept for the test to deliver."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cluster.consensus.core.actions import Action, AppendLog

__all__ = ["Out"]


@dataclass
class Out:
    """Collects actions; keeps each append's answer callbacks for the test to deliver."""

    actions: list[Action] = field(default_factory=list)
    answers: list[tuple[Callable[[int, Out], None] | None, Callable[[Out], None] | None]] = field(
        default_factory=list
    )

    def add(self, action: Action) -> None:
        self.actions.append(action)

    def append(self, message: bytes, on_appended=None, on_failed=None) -> None:  # type: ignore[no-untyped-def]
        self.actions.append(AppendLog(message))
        self.answers.append((on_appended, on_failed))

    def appended(self, *ends: int) -> Out:
        """Answer the appends, in order, as appended at ``ends``; the actions those answers produce."""
        out = Out()
        for (ok, _), end in zip(self.answers, ends, strict=True):
            if ok is not None:
                ok(end, out)
        return out

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [a for a in self.actions if isinstance(a, kind)]
