"""The consensus module's timer service, sans-IO: the services' timers, by correlation id and deadline.

Theory of operation
-------------------
A service schedules a timer on every member (ScheduleTimer: a correlation id and an absolute deadline in
cluster time); only the leader fires them. ``poll(now, fire)`` hands every timer whose deadline has come
to ``fire`` -- earliest deadline first, and among equal deadlines the one scheduled first -- which
appends its TimerEvent to the log and answers whether it could; a timer the log refused stays and the
poll stops there, to be tried again. Scheduling an id that is already scheduled moves its deadline (and
its place in the order); cancelling removes it.

A follower learns that a timer fired from the log: ``on_timer_event`` cancels it. Service messages and
the log travel different roads, so a follower may read the TimerEvent before the ScheduleTimer it answers
has arrived; the event is then counted against the id, and the late ScheduleTimer is dropped instead of
scheduling a timer that has already fired (Aeron's expired-timer count).

The heap is Aeron's priority-heap timer service, with exact deadlines (its default timing wheel rounds
them to 8 ms ticks; the order of firing is the same). ``timers()`` lists the scheduled timers in firing
order, for the snapshot; ``restore`` puts them back.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["TimerService"]


@dataclass(order=True, slots=True)
class _Entry:
    deadline: int
    sequence: int
    correlation_id: int = field(compare=False)
    live: bool = field(default=True, compare=False)


class TimerService:
    """Timers by correlation id (see the module docstring)."""

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._by_id: dict[int, _Entry] = {}
        self._sequence = 0
        self._expired_counts: dict[int, int] = {}  # TimerEvents read before their ScheduleTimer

    def __len__(self) -> int:
        return len(self._by_id)

    def deadline(self, correlation_id: int) -> int | None:
        entry = self._by_id.get(correlation_id)
        return None if entry is None else entry.deadline

    def schedule(self, correlation_id: int, deadline: int) -> bool:
        """Schedule (or move) a timer; ``False`` if a TimerEvent for it was read first and this late
        schedule is dropped."""
        count = self._expired_counts.get(correlation_id, 0)
        if count:
            if count == 1:
                del self._expired_counts[correlation_id]
            else:
                self._expired_counts[correlation_id] = count - 1
            return False
        self._remove(correlation_id)
        self._sequence += 1
        entry = _Entry(deadline, self._sequence, correlation_id)
        self._by_id[correlation_id] = entry
        heapq.heappush(self._heap, entry)
        return True

    def cancel(self, correlation_id: int) -> bool:
        return self._remove(correlation_id)

    def _remove(self, correlation_id: int) -> bool:
        entry = self._by_id.pop(correlation_id, None)
        if entry is None:
            return False
        entry.live = False  # dropped from the heap lazily, or all at once when they pile up
        if len(self._heap) > 2 * len(self._by_id) + 64:
            self._heap = [e for e in self._heap if e.live]
            heapq.heapify(self._heap)
        return True

    def poll(self, now: int, fire: Callable[[int], bool], limit: int = 1 << 30) -> int:
        """Fire the timers due by ``now`` (at most ``limit``) through ``fire(correlation_id)``, which says
        whether the timer's TimerEvent was appended; a refused one stays and ends the poll. How many fired."""
        fired = 0
        heap = self._heap
        while heap and fired < limit:
            entry = heap[0]
            if not entry.live:
                heapq.heappop(heap)
                continue
            if entry.deadline > now or not fire(entry.correlation_id):
                break
            heapq.heappop(heap)
            del self._by_id[entry.correlation_id]
            fired += 1
        return fired

    def on_timer_event(self, correlation_id: int) -> int | None:
        """The log holds a TimerEvent for ``correlation_id``: it fired (on the leader of its term). The
        deadline of the timer it removed, or ``None`` if none was scheduled (then it is counted)."""
        deadline = self.deadline(correlation_id)
        if not self._remove(correlation_id):
            self._expired_counts[correlation_id] = self._expired_counts.get(correlation_id, 0) + 1
        return deadline

    def undo_timer_event(self, correlation_id: int, deadline: int | None) -> None:
        """Take back ``on_timer_event`` (its TimerEvent left the log): the timer it removed is scheduled
        again, or the count it made is taken off."""
        if deadline is not None:
            self.schedule(correlation_id, deadline)
            return
        count = self._expired_counts.get(correlation_id, 0)
        if count <= 1:
            self._expired_counts.pop(correlation_id, None)
        else:
            self._expired_counts[correlation_id] = count - 1

    def timers(self) -> list[tuple[int, int]]:
        """``(correlation id, deadline)`` of every scheduled timer, in firing order."""
        return [(e.correlation_id, e.deadline) for e in sorted(self._by_id.values())]

    def restore(self, timers: Iterable[tuple[int, int]]) -> None:
        """Schedule ``timers`` (as ``timers()`` listed them) into an empty service."""
        if self._by_id:
            raise ValueError("restore into a timer service that has timers")
        for correlation_id, deadline in timers:
            self.schedule(correlation_id, deadline)
