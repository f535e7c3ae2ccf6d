"""The consensus module's timer service against a plain model: timers fire earliest deadline first (the
first scheduled first among equals), a reschedule moves a timer, a refused fire stays, a TimerEvent read
before its ScheduleTimer drops the late schedule, and the snapshot's list restores the same order."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.consensus.core.timers import TimerService

ids = st.integers(0, 5)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("schedule"), ids, st.integers(0, 50)),
        st.tuples(st.just("cancel"), ids, st.just(0)),
        st.tuples(st.just("poll"), st.integers(-1, 5), st.integers(0, 60)),  # refuse id (-1: none), now
    ),
    max_size=60,
)


def _recorder(fired: list[int], refused: int) -> Callable[[int], bool]:
    """A ``fire`` that appends every timer it takes to ``fired`` and refuses ``refused``."""

    def fire(correlation_id: int) -> bool:
        if correlation_id == refused:
            return False
        fired.append(correlation_id)
        return True

    return fire


@settings(max_examples=300, deadline=None)
@given(steps)
def test_timers_fire_as_a_sorted_list_of_the_scheduled_would(program: list[tuple[str, int, int]]) -> None:
    service = TimerService()
    model: dict[int, tuple[int, int]] = {}  # id -> (deadline, when scheduled)
    for clock, (op, a, b) in enumerate(program):
        if op == "schedule":
            assert service.schedule(a, b)
            model[a] = (b, clock)
        elif op == "cancel":
            assert service.cancel(a) == (a in model)
            model.pop(a, None)
        else:
            refused, now = a, b
            fired: list[int] = []
            service.poll(now, _recorder(fired, refused))
            due = sorted((when, cid) for cid, when in model.items() if when[0] <= now)
            expected = []
            for _, cid in due:
                if cid == refused:
                    break
                expected.append(cid)
            assert fired == expected
            for cid in fired:
                del model[cid]
        assert service.timers() == [
            (cid, when[0]) for cid, when in sorted(model.items(), key=lambda item: item[1])
        ]
        assert len(service) == len(model)


def test_a_timer_event_read_before_its_schedule_drops_the_late_schedule_once() -> None:
    service = TimerService()
    service.on_timer_event(7)  # the follower read the TimerEvent first
    assert not service.schedule(7, 100)  # the ScheduleTimer it answered: dropped
    assert service.timers() == []
    assert service.schedule(7, 200)  # a later schedule of the same id is a new timer
    service.on_timer_event(7)  # and its TimerEvent cancels it
    assert service.timers() == []


def test_the_snapshot_list_restores_the_same_firing_order() -> None:
    service = TimerService()
    for correlation_id, deadline in ((3, 50), (1, 50), (2, 10), (1, 60), (4, 50)):
        service.schedule(correlation_id, deadline)
    listed = service.timers()
    assert listed == [(2, 10), (3, 50), (4, 50), (1, 60)]
    restored = TimerService()
    restored.restore(listed)
    order: list[int] = []
    restored.poll(100, _recorder(order, -1))
    assert order == [2, 3, 4, 1]


def test_rescheduling_one_timer_many_times_keeps_the_heap_small() -> None:
    service = TimerService()
    for deadline in range(10_000):
        service.schedule(1, deadline)
    assert len(service._heap) <= 2 * len(service) + 65
    fired: list[int] = []
    assert service.poll(10_000, _recorder(fired, -1)) == 1
    assert fired == [1]
