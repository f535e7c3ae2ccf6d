"""Clocks: where every agent and idle strategy gets its time.

Nothing in the runtime reads ``time.*`` directly; it asks a ``Clock``. Production passes a
``SystemClock``; tests and the simulator pass a ``ManualClock``, which moves only when told to, so a
whole run is deterministic. ``nano_time`` is monotonic and only good for measuring intervals;
``epoch_ms`` is wall-clock time for timestamps that leave the process (Aeron's ``NanoClock`` and
``EpochClock``).
"""

from __future__ import annotations

import time
from typing import Protocol

from cluster.transport.errors import AgentError

__all__ = ["AdjustableClock", "Clock", "ManualClock", "SystemClock"]

NANOS_PER_MILLI = 1_000_000


class Clock(Protocol):
    """A source of time: a monotonic nanosecond counter and a wall clock in epoch milliseconds."""

    def nano_time(self) -> int:
        """Monotonic time in nanoseconds, from an arbitrary origin; never goes backwards."""
        ...

    def epoch_ms(self) -> int:
        """Wall-clock time in milliseconds since the Unix epoch."""
        ...


class SystemClock:
    """The real clocks: ``time.monotonic_ns`` and ``time.time_ns``."""

    __slots__ = ()

    # The builtin itself, not a method around it: agents read the clock several times per message, and
    # a Python frame costs more than the read.
    nano_time = staticmethod(time.monotonic_ns)

    def epoch_ms(self) -> int:
        return time.time_ns() // NANOS_PER_MILLI


class ManualClock:
    """A clock that moves only when told to, for tests and the simulator.

    ``epoch_ms`` is ``epoch_base_ms + nano_time // 1_000_000``, so both clocks move together. Time never
    goes backwards: a negative ``advance`` or a ``set`` into the past raises ``AgentError``.
    """

    __slots__ = ("_epoch_base_ms", "_now_ns")

    def __init__(self, start_ns: int = 0, *, epoch_base_ms: int = 0) -> None:
        if start_ns < 0:
            raise AgentError(f"ManualClock start_ns={start_ns} is negative")
        if epoch_base_ms < 0:
            raise AgentError(f"ManualClock epoch_base_ms={epoch_base_ms} is negative")
        self._now_ns = start_ns
        self._epoch_base_ms = epoch_base_ms

    def nano_time(self) -> int:
        return self._now_ns

    def epoch_ms(self) -> int:
        return self._epoch_base_ms + self._now_ns // NANOS_PER_MILLI

    def advance(self, ns: int) -> int:
        """Move time forward by ``ns`` (>= 0) and return the new ``nano_time``."""
        if ns < 0:
            raise AgentError(f"ManualClock.advance(ns={ns}): time cannot go backwards")
        self._now_ns += ns
        return self._now_ns

    def set(self, ns: int) -> None:
        """Move time to ``ns``, which must not be earlier than the current ``nano_time``."""
        if ns < self._now_ns:
            raise AgentError(f"ManualClock.set(ns={ns}): time cannot go backwards from {self._now_ns}")
        self._now_ns = ns


class AdjustableClock:
    """Another clock moved by offsets that may change while it runs: the node's injectable clock for
    clock-jump faults (``python -m tools node --clock-file``), never the machine's.

    The wall clock (``epoch_ms``) may jump either way, as a stepped system clock does. The monotonic
    clock (``nano_time``) may only jump forward, as it seems to after the process was frozen: every
    timeout measured on it then expires at once. A jump back there is refused with ``AgentError``.
    """

    __slots__ = ("_base", "epoch_offset_ms", "nano_offset_ns")

    def __init__(self, base: Clock | None = None) -> None:
        self._base: Clock = SystemClock() if base is None else base
        self.epoch_offset_ms = 0
        self.nano_offset_ns = 0

    def nano_time(self) -> int:
        return self._base.nano_time() + self.nano_offset_ns

    def epoch_ms(self) -> int:
        return self._base.epoch_ms() + self.epoch_offset_ms

    def set_offsets(self, *, epoch_offset_ms: int, nano_offset_ns: int) -> None:
        """Make the offsets these (totals from the base clock, not steps)."""
        if nano_offset_ns < self.nano_offset_ns:
            raise AgentError(
                f"the monotonic clock cannot go back: offset {nano_offset_ns} ns is below "
                f"{self.nano_offset_ns} ns"
            )
        self.epoch_offset_ms = epoch_offset_ms
        self.nano_offset_ns = nano_offset_ns
