"""The runtime model (issue 3, item 5): agents, idle strategies, the runner and clocks.

No test asserts on elapsed time (the machine is shared and noisy). Back-off state machines run with fake
sleep/yield functions; the selector test proves it woke on a datagram because its timeout is longer than
the time the test waits for it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from cluster.transport.agent import (
    MAX_IDLE_NS,
    PRECISE_WAIT_NS,
    AgentRunner,
    BackoffIdleStrategy,
    BackoffState,
    BusySpinIdleStrategy,
    CompositeAgent,
    NoOpIdleStrategy,
    SelectorIdleStrategy,
    SleepingIdleStrategy,
    YieldingIdleStrategy,
)
from cluster.transport.clock import ManualClock, SystemClock
from cluster.transport.errors import AgentError, TransportError

JOIN_TIMEOUT_S = 30.0


class CountingAgent:
    """Records its lifecycle; closes its runner after ``cycles`` do_work calls."""

    def __init__(
        self,
        name: str = "counter",
        cycles: int = 5,
        work: int = 1,
        fail_on: frozenset[int] = frozenset(),
        clock: ManualClock | None = None,
    ) -> None:
        self.role_name = name
        self.cycles = cycles
        self.work = work
        self.fail_on = fail_on
        self.clock = clock
        self.events: list[str] = []
        self.do_work_count = 0
        self.runner: AgentRunner | None = None

    def on_start(self) -> None:
        self.events.append("start")

    def do_work(self) -> int:
        self.do_work_count += 1
        self.events.append("work")
        if self.clock is not None:
            self.clock.advance(self.do_work_count * 10)
        if self.do_work_count >= self.cycles and self.runner is not None:
            self.runner.close()
        if self.do_work_count in self.fail_on:
            raise RuntimeError(f"boom {self.do_work_count}")
        return self.work

    def on_close(self) -> None:
        self.events.append("close")


@pytest.fixture
def udp_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        yield sock
    finally:
        sock.close()


@pytest.fixture
def selector_strategy() -> Iterator[Callable[..., SelectorIdleStrategy]]:
    made: list[SelectorIdleStrategy] = []

    def make(*args: int) -> SelectorIdleStrategy:
        strategy = SelectorIdleStrategy(*args)
        made.append(strategy)
        return strategy

    yield make
    for strategy in made:
        strategy.close()


def run_in_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, name="test-idle", daemon=True)
    thread.start()
    return thread


# ----------------------------------------------------------------------------------------------- clocks


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(start_ns=5, epoch_base_ms=1_000)
    assert clock.nano_time() == 5
    assert clock.nano_time() == 5
    assert clock.advance(2_000_000) == 2_000_005
    assert clock.epoch_ms() == 1_002
    clock.set(3_000_000)
    assert (clock.nano_time(), clock.epoch_ms()) == (3_000_000, 1_003)


def test_manual_clock_is_deterministic() -> None:
    def trace() -> list[int]:
        clock = ManualClock()
        return [clock.advance(step) for step in (1, 10, 100, 0, 7)]

    assert trace() == trace() == [1, 11, 111, 111, 118]


def test_manual_clock_never_goes_backwards() -> None:
    clock = ManualClock(start_ns=100)
    with pytest.raises(AgentError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(AgentError, match="backwards"):
        clock.set(99)
    with pytest.raises(AgentError):
        ManualClock(start_ns=-1)
    assert clock.nano_time() == 100


def test_system_clock_is_monotonic() -> None:
    clock = SystemClock()
    first = clock.nano_time()
    assert clock.nano_time() >= first
    assert clock.epoch_ms() > 1_600_000_000_000  # after 2020


# ----------------------------------------------------------------------------------- simple strategies


def test_yielding_and_sleeping_wait_only_when_idle() -> None:
    yields: list[None] = []
    sleeps: list[int] = []
    yielding = YieldingIdleStrategy(yielder=lambda: yields.append(None))
    sleeping = SleepingIdleStrategy(250, sleeper=sleeps.append)
    for strategy in (yielding, sleeping):
        strategy.idle(3)
        strategy.idle(0)
        strategy.idle(1)
        strategy.idle(0)
    assert len(yields) == 2
    assert sleeps == [250, 250]
    NoOpIdleStrategy().idle(0)
    BusySpinIdleStrategy().idle(0)


@pytest.mark.parametrize("sleep_ns", [0, -1, MAX_IDLE_NS + 1])
def test_sleeping_rejects_unbounded_periods(sleep_ns: int) -> None:
    with pytest.raises(AgentError, match="sleep_ns"):
        SleepingIdleStrategy(sleep_ns)


# ------------------------------------------------------------------------------------- backoff strategy


def test_backoff_spins_then_yields_then_parks_with_doubling_period() -> None:
    calls: list[str] = []
    strategy = BackoffIdleStrategy(
        max_spins=2,
        max_yields=2,
        min_park_ns=100,
        max_park_ns=350,
        sleeper=lambda ns: calls.append(f"park {ns}"),
        yielder=lambda: calls.append("yield"),
    )
    states = []
    for _ in range(10):
        strategy.idle(0)
        states.append(strategy.state)
    assert states == [
        BackoffState.SPINNING,  # NOT_IDLE -> SPINNING, spins = 1
        BackoffState.SPINNING,  # spins = 2
        BackoffState.YIELDING,  # spins = 3 > 2
        BackoffState.YIELDING,  # yield 1
        BackoffState.YIELDING,  # yield 2
        BackoffState.PARKING,  # yields = 3 > 2, no yield
        BackoffState.PARKING,
        BackoffState.PARKING,
        BackoffState.PARKING,
        BackoffState.PARKING,
    ]
    assert calls == ["yield", "yield", "park 100", "park 200", "park 350", "park 350"]


def test_backoff_resets_on_work() -> None:
    parks: list[int] = []
    strategy = BackoffIdleStrategy(0, 0, 10, 40, sleeper=parks.append, yielder=lambda: None)
    for _ in range(6):
        strategy.idle(0)
    assert strategy.state is BackoffState.PARKING
    assert strategy.park_period_ns == 40
    strategy.idle(1)
    assert (strategy.state, strategy.spins, strategy.yields, strategy.park_period_ns) == (
        BackoffState.NOT_IDLE,
        0,
        0,
        10,
    )
    for _ in range(4):
        strategy.idle(0)
    assert parks == [10, 20, 40, 10]  # after the reset: spin, yield state, enter parking, park


def test_backoff_state_codes_are_aerons() -> None:
    assert [state.value for state in BackoffState] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((-1, 5, 1, 2), "max_spins"),
        ((10**9, 5, 1, 2), "max_spins"),
        ((1, -1, 1, 2), "max_yields"),
        ((1, 1, 0, 2), "min_park_ns"),
        ((1, 1, 1, MAX_IDLE_NS + 1), "max_park_ns"),
        ((1, 1, 3, 2), "greater than"),
    ],
)
def test_backoff_rejects_bad_bounds(args: tuple[int, int, int, int], name: str) -> None:
    with pytest.raises(AgentError, match=name) as info:
        BackoffIdleStrategy(*args)
    assert isinstance(info.value, TransportError)
    assert isinstance(info.value, ValueError)


# ------------------------------------------------------------------------------------ selector strategy


def test_selector_wakes_when_a_datagram_arrives(
    udp_socket: socket.socket, selector_strategy: Callable[..., SelectorIdleStrategy]
) -> None:
    # The timeout (60 s) is twice as long as the join below waits: if the join succeeds, the datagram
    # (not the timeout) ended the wait.
    strategy = selector_strategy(MAX_IDLE_NS, MAX_IDLE_NS)
    strategy.register(udp_socket)
    thread = run_in_thread(lambda: strategy.idle(0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender.sendto(b"hello", udp_socket.getsockname())
        thread.join(JOIN_TIMEOUT_S)
        woke = not thread.is_alive()
    finally:
        sender.close()
        strategy.wake()  # release the thread if it did not wake
        thread.join(JOIN_TIMEOUT_S)
    assert woke
    assert udp_socket.recv(64) == b"hello"
    assert strategy.timeout_ns == MAX_IDLE_NS


def test_selector_wake_ends_a_wait_from_another_thread(
    selector_strategy: Callable[..., SelectorIdleStrategy],
) -> None:
    strategy = selector_strategy(MAX_IDLE_NS, MAX_IDLE_NS)
    thread = run_in_thread(lambda: strategy.idle(0))
    strategy.wake()
    thread.join(JOIN_TIMEOUT_S)
    assert not thread.is_alive()


def test_selector_with_nothing_registered_sleeps_and_backs_off(
    selector_strategy: Callable[..., SelectorIdleStrategy],
) -> None:
    strategy = selector_strategy(1_000, 4_000)
    assert strategy.registered_count == 0
    timeouts = []
    for _ in range(4):
        strategy.idle(0)
        timeouts.append(strategy.timeout_ns)
    assert timeouts == [2_000, 4_000, 4_000, 4_000]
    strategy.idle(1)
    assert strategy.timeout_ns == 1_000
    strategy.idle(0)
    strategy.reset()
    assert strategy.timeout_ns == 1_000


def test_selector_register_and_unregister_are_checked(
    udp_socket: socket.socket, selector_strategy: Callable[..., SelectorIdleStrategy]
) -> None:
    strategy = selector_strategy()
    strategy.register(udp_socket)
    assert strategy.registered_count == 1
    with pytest.raises(AgentError, match="cannot register"):
        strategy.register(udp_socket)
    strategy.unregister(udp_socket)
    assert strategy.registered_count == 0
    with pytest.raises(AgentError, match="not registered"):
        strategy.unregister(udp_socket)
    strategy.close()
    strategy.close()
    strategy.wake()  # a no-op once closed
    with pytest.raises(AgentError, match="after close"):
        strategy.idle(0)


@pytest.mark.parametrize("timeout_ns", [0, 100_000, PRECISE_WAIT_NS - 1, PRECISE_WAIT_NS, 5_000_000])
def test_selector_waits_short_and_long_alike(
    udp_socket: socket.socket, selector_strategy: Callable[..., SelectorIdleStrategy], timeout_ns: int
) -> None:
    # below PRECISE_WAIT_NS the wait is select's, from there the selector's: both tell the same
    strategy = selector_strategy()
    strategy.register(udp_socket)
    assert strategy.wait(timeout_ns) is False  # nothing came
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender.sendto(b"hello", udp_socket.getsockname())
        assert strategy.wait(MAX_IDLE_NS) is True  # a datagram ends even the longest wait at once
        assert strategy.wait(timeout_ns) is True  # still unread: still readable
        assert udp_socket.recv(64) == b"hello"
    finally:
        sender.close()
    strategy.wake()
    assert strategy.wait(timeout_ns) is True
    assert strategy.wait(timeout_ns) is False  # the wake-up was consumed
    strategy.unregister(udp_socket)
    assert strategy.wait(timeout_ns) is False


@pytest.mark.parametrize(("lo", "hi"), [(0, 10), (10, 5), (1, MAX_IDLE_NS + 1)])
def test_selector_rejects_bad_timeouts(lo: int, hi: int) -> None:
    with pytest.raises(AgentError, match="timeout_ns"):
        SelectorIdleStrategy(lo, hi)


# ------------------------------------------------------------------------------------------------ runner


def test_runner_lifecycle_on_start_once_do_work_many_on_close_once() -> None:
    agent = CountingAgent(cycles=7)
    runner = AgentRunner(agent, NoOpIdleStrategy())
    agent.runner = runner
    runner.run()
    assert agent.events == ["start"] + ["work"] * 7 + ["close"]
    assert runner.is_closed
    assert runner.is_finished
    with pytest.raises(AgentError, match="already been started"):
        runner.run()


def test_runner_on_its_own_thread_with_the_default_strategy() -> None:
    agent = CountingAgent(name="node-0", cycles=1_000_000, work=0)
    runner = AgentRunner(agent)
    assert isinstance(runner.idle_strategy, SelectorIdleStrategy)
    thread = runner.start_on_thread()
    assert thread.name == "node-0"
    assert not thread.daemon
    try:
        with pytest.raises(AgentError, match="already been started"):
            runner.start_on_thread()
    finally:
        runner.close(JOIN_TIMEOUT_S)
    assert not thread.is_alive()
    assert runner.is_finished
    assert agent.events[0] == "start"
    assert agent.events[-1] == "close"
    assert agent.events.count("start") == agent.events.count("close") == 1
    assert runner.idle_strategy.closed  # the runner owned it


def test_runner_closed_before_run_never_calls_the_agent() -> None:
    agent = CountingAgent()
    runner = AgentRunner(agent)
    runner.close()
    runner.run()
    assert agent.events == []
    assert runner.is_finished


def test_runner_routes_do_work_errors_to_the_handler() -> None:
    errors: list[Exception] = []
    agent = CountingAgent(cycles=5, fail_on=frozenset({2, 4}))
    runner = AgentRunner(agent, NoOpIdleStrategy(), error_handler=errors.append)
    agent.runner = runner
    runner.run()
    assert [str(error) for error in errors] == ["boom 2", "boom 4"]
    assert runner.error_count == 2
    assert agent.events == ["start"] + ["work"] * 5 + ["close"]


def test_runner_without_handler_closes_then_reraises() -> None:
    agent = CountingAgent(cycles=100, fail_on=frozenset({3}))
    runner = AgentRunner(agent, NoOpIdleStrategy())
    agent.runner = runner
    with pytest.raises(RuntimeError, match="boom 3"):
        runner.run()
    assert agent.events == ["start", "work", "work", "work", "close"]
    assert runner.is_finished


def test_duty_cycle_runs_one_do_work_and_one_idle_and_measures_with_the_clock() -> None:
    clock = ManualClock()
    parks: list[int] = []
    agent = CountingAgent(work=0, clock=clock)
    runner = AgentRunner(agent, SleepingIdleStrategy(5, sleeper=parks.append), clock=clock)
    assert runner.duty_cycle() == 0
    assert runner.duty_cycle() == 0
    assert agent.events == ["work", "work"]
    assert parks == [5, 5]
    assert runner.max_work_ns == 20  # the second do_work advanced the clock by 20 ns


# ------------------------------------------------------------------------------------------- composite


def test_composite_agent_sums_work_and_runs_lifecycle_in_order() -> None:
    first = CountingAgent("a", work=2)
    second = CountingAgent("b", work=3)
    composite = CompositeAgent(first, second)
    assert composite.role_name == "[a,b]"
    composite.on_start()
    assert composite.do_work() == 5
    assert composite.do_work() == 5
    composite.on_close()
    assert first.events == second.events == ["start", "work", "work", "close"]


def test_composite_agent_closes_all_even_if_one_fails() -> None:
    class FailingClose(CountingAgent):
        def on_close(self) -> None:
            super().on_close()
            raise RuntimeError("close failed")

    first = FailingClose("a")
    second = CountingAgent("b")
    with pytest.raises(RuntimeError, match="close failed"):
        CompositeAgent(first, second).on_close()
    assert second.events == ["close"]


def test_composite_agent_rejects_empty_and_duplicates() -> None:
    agent = CountingAgent()
    with pytest.raises(AgentError, match="1 to"):
        CompositeAgent()
    with pytest.raises(AgentError, match="more than once"):
        CompositeAgent(agent, agent)


def test_a_socket_closed_before_it_is_unregistered_does_not_break_short_waits(
    selector_strategy: Callable[..., SelectorIdleStrategy],
) -> None:
    strategy = selector_strategy()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    strategy.register(sock)
    sock.close()  # out of order: select() would fail on its descriptor
    assert strategy.wait(100_000) is False  # the selector waits instead
    strategy.wake()
    assert strategy.wait(100_000) is True
    strategy.unregister(sock)
    assert strategy.wait(100_000) is False
