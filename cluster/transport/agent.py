"""The runtime model: single-threaded agents run in a duty cycle, and idle strategies decide how to wait.

Theory of operation
-------------------
An ``Agent`` (Aeron's ``org.agrona.concurrent.Agent``) does all its work on one thread, in small steps:
``do_work()`` polls its inputs, handles what it found, and returns how much work it did (0 = nothing to
do). An ``AgentRunner`` owns the loop::

    on_start()
    while not closed:
        work_count = do_work()
        idle_strategy.idle(work_count)
    on_close()

An ``IdleStrategy`` is told the work count after *every* cycle. When work was done it returns at once
(and resets its back-off); when there was none it waits, and the strategy decides how. The strategies use
Aeron's names:

* ``NoOpIdleStrategy`` and ``BusySpinIdleStrategy`` never wait. A spinning Python agent burns a whole
  core, and these machines have two cores shared by several nodes, so neither is ever a default; they
  exist for tests and benchmarks.
* ``YieldingIdleStrategy`` gives up the CPU (``sched_yield``) but still spins at the OS level.
* ``SleepingIdleStrategy`` sleeps a fixed period.
* ``BackoffIdleStrategy`` is Aeron's: spin ``max_spins`` times, yield ``max_yields`` times, then park
  for a period that doubles from ``min_park_ns`` up to ``max_park_ns``. States NOT_IDLE, SPINNING,
  YIELDING, PARKING; any work resets it to NOT_IDLE.
* ``SelectorIdleStrategy`` is **the default**. It parks the way Backoff does (a timeout doubling from
  ``min_timeout_ns`` to ``max_timeout_ns``), but in ``selector.select`` on the agent's registered
  sockets, so an idle agent sleeps in the kernel and wakes as soon as a datagram arrives instead of at
  the end of its park. With nothing registered it still sleeps for the timeout. ``wake()`` (thread-safe)
  ends a wait early; ``AgentRunner.close`` uses it so closing never waits out a long timeout. The
  strategy does not read the sockets -- the agent must drain them in ``do_work``, or the next ``idle``
  returns at once.

The timeout bounds timer latency: an agent whose inputs are quiet still runs ``do_work`` at least every
``max_timeout_ns`` to check its deadlines (default 10 ms, far below any cluster timeout).

All waits are bounded (``MAX_IDLE_NS``) and so are spin and yield counts; bad values raise
``AgentError``. The sleep and yield functions are injectable so the state machines can be tested
without real time. Time for agents comes from the runner's injectable ``Clock``; the runner itself uses it
only to measure how long ``do_work`` takes (``max_work_ns``, Aeron's max cycle time counter).

Errors: an exception from ``do_work`` goes to the ``error_handler`` and the loop goes on (after an
``idle(0)``, so a failing agent cannot spin); so does an ``AgentError`` for a negative work count.
With no handler, ``run`` calls ``on_close`` and re-raises.
``on_start`` and ``on_close`` are each called exactly once per run.
"""

from __future__ import annotations

import contextlib
import enum
import os
import select
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol

from cluster.transport.clock import Clock, SystemClock
from cluster.transport.errors import AgentError

__all__ = [
    "PRECISE_WAIT_NS",
    "Agent",
    "AgentRunner",
    "BackoffIdleStrategy",
    "BackoffState",
    "BusySpinIdleStrategy",
    "CompositeAgent",
    "ErrorHandler",
    "FileObject",
    "IdleStrategy",
    "NoOpIdleStrategy",
    "SelectorIdleStrategy",
    "SleepingIdleStrategy",
    "YieldingIdleStrategy",
]

NANOS_PER_SECOND = 1_000_000_000

MAX_IDLE_NS = 60 * NANOS_PER_SECOND
"""The longest any strategy may wait in one ``idle`` call."""
MAX_SPINS = 1_000_000
MAX_YIELDS = 1_000_000
MAX_REGISTERED = 1024
"""The most file objects one ``SelectorIdleStrategy`` may watch."""
MAX_CLOSE_TIMEOUT_S = 600.0
MAX_COMPOSITE_AGENTS = 64

DEFAULT_MAX_SPINS = 10  # Aeron BackoffIdleStrategy defaults
DEFAULT_MAX_YIELDS = 5
DEFAULT_MIN_PARK_NS = 1_000
DEFAULT_MAX_PARK_NS = 1_000_000
DEFAULT_SLEEP_NS = 1_000_000
DEFAULT_SELECTOR_MIN_TIMEOUT_NS = 100_000
DEFAULT_SELECTOR_MAX_TIMEOUT_NS = 10_000_000
PRECISE_WAIT_NS = 2_000_000
"""A wait shorter than this is made with ``select.select`` (microseconds), not the selector's epoll, whose
timeouts round up to a whole millisecond -- a 100 us back-off would sleep ten times longer."""
FD_SETSIZE = 1024  # select()'s limit on descriptor numbers

WAKE_DRAIN_BYTES = 64

ErrorHandler = Callable[[Exception], None]
Sleeper = Callable[[int], None]
Yielder = Callable[[], None]


class HasFileno(Protocol):
    """Anything with a file descriptor: a socket, a file, a pipe."""

    def fileno(self) -> int: ...


FileObject = int | HasFileno


class Agent(Protocol):
    """A unit of single-threaded work run by an ``AgentRunner``."""

    @property
    def role_name(self) -> str:
        """The agent's name; the runner's thread is named after it."""
        ...

    def on_start(self) -> None:
        """Called once on the agent's thread before the first ``do_work``."""
        ...

    def do_work(self) -> int:
        """Do one step of work and return how much was done; 0 means there was nothing to do."""
        ...

    def on_close(self) -> None:
        """Called once on the agent's thread after the last ``do_work``."""
        ...


class IdleStrategy(Protocol):
    """Decides what happens between duty cycles."""

    def idle(self, work_count: int) -> None:
        """Called after every duty cycle: return at once (and reset) if work was done, else wait."""
        ...

    def reset(self) -> None:
        """Forget any back-off, as after a cycle that did work."""
        ...


def _sleep_ns(ns: int) -> None:
    time.sleep(ns / NANOS_PER_SECOND)


def _yield() -> None:
    if sys.platform == "win32":
        time.sleep(0)
    else:
        os.sched_yield()


def _check_ns(name: str, value: int, minimum: int) -> None:
    if not minimum <= value <= MAX_IDLE_NS:
        raise AgentError(f"{name}={value} is outside [{minimum}, {MAX_IDLE_NS}] ns")


def _check_count(name: str, value: int, maximum: int) -> None:
    if not 0 <= value <= maximum:
        raise AgentError(f"{name}={value} is outside [0, {maximum}]")


# --------------------------------------------------------------------------------------------- strategies


class NoOpIdleStrategy:
    """Never waits. For tests and for agents driven by something else (a simulator, a composite)."""

    __slots__ = ()

    def idle(self, work_count: int) -> None:
        pass

    def reset(self) -> None:
        pass


class BusySpinIdleStrategy:
    """Never waits: the loop spins straight into the next ``do_work``.

    Burns a whole core. Never a default -- only for benchmarks on a machine with cores to spare.
    """

    __slots__ = ()

    def idle(self, work_count: int) -> None:
        pass

    def reset(self) -> None:
        pass


class YieldingIdleStrategy:
    """Yields the CPU (``os.sched_yield``) when idle; still keeps the core busy if nothing else runs."""

    __slots__ = ("_yield",)

    def __init__(self, *, yielder: Yielder = _yield) -> None:
        self._yield = yielder

    def idle(self, work_count: int) -> None:
        if work_count <= 0:
            self._yield()

    def reset(self) -> None:
        pass


class SleepingIdleStrategy:
    """Sleeps ``sleep_ns`` whenever a cycle did no work."""

    __slots__ = ("_sleep", "sleep_ns")

    def __init__(self, sleep_ns: int = DEFAULT_SLEEP_NS, *, sleeper: Sleeper = _sleep_ns) -> None:
        _check_ns("sleep_ns", sleep_ns, 1)
        self.sleep_ns = sleep_ns
        self._sleep = sleeper

    def idle(self, work_count: int) -> None:
        if work_count <= 0:
            self._sleep(self.sleep_ns)

    def reset(self) -> None:
        pass


class BackoffState(enum.IntEnum):
    """``BackoffIdleStrategy``'s states, with Aeron's codes."""

    NOT_IDLE = 0
    SPINNING = 1
    YIELDING = 2
    PARKING = 3


class BackoffIdleStrategy:
    """Aeron's ``BackoffIdleStrategy``: spin, then yield, then park with a doubling period.

    Transitions on ``idle(0)`` (``idle(n > 0)`` resets to NOT_IDLE):

    ========= =========================================================================
    NOT_IDLE  -> SPINNING (spins = 1)
    SPINNING  spin; after more than ``max_spins`` spins -> YIELDING (yields = 0)
    YIELDING  yield; after more than ``max_yields`` yields -> PARKING (period = min), no yield
    PARKING   park for the period, then double it, capped at ``max_park_ns``
    ========= =========================================================================
    """

    __slots__ = (
        "_sleep",
        "_yield",
        "max_park_ns",
        "max_spins",
        "max_yields",
        "min_park_ns",
        "park_period_ns",
        "spins",
        "state",
        "yields",
    )

    def __init__(
        self,
        max_spins: int = DEFAULT_MAX_SPINS,
        max_yields: int = DEFAULT_MAX_YIELDS,
        min_park_ns: int = DEFAULT_MIN_PARK_NS,
        max_park_ns: int = DEFAULT_MAX_PARK_NS,
        *,
        sleeper: Sleeper = _sleep_ns,
        yielder: Yielder = _yield,
    ) -> None:
        _check_count("max_spins", max_spins, MAX_SPINS)
        _check_count("max_yields", max_yields, MAX_YIELDS)
        _check_ns("min_park_ns", min_park_ns, 1)
        _check_ns("max_park_ns", max_park_ns, 1)
        if min_park_ns > max_park_ns:
            raise AgentError(f"min_park_ns={min_park_ns} is greater than max_park_ns={max_park_ns}")
        self.max_spins = max_spins
        self.max_yields = max_yields
        self.min_park_ns = min_park_ns
        self.max_park_ns = max_park_ns
        self._sleep = sleeper
        self._yield = yielder
        self.state = BackoffState.NOT_IDLE
        self.spins = 0
        self.yields = 0
        self.park_period_ns = min_park_ns

    def idle(self, work_count: int) -> None:
        if work_count > 0:
            self.reset()
            return
        state = self.state
        if state is BackoffState.NOT_IDLE:
            self.state = BackoffState.SPINNING
            self.spins += 1
        elif state is BackoffState.SPINNING:
            # A spin in Python is simply going round the loop again.
            self.spins += 1
            if self.spins > self.max_spins:
                self.state = BackoffState.YIELDING
                self.yields = 0
        elif state is BackoffState.YIELDING:
            self.yields += 1
            if self.yields > self.max_yields:
                self.state = BackoffState.PARKING
                self.park_period_ns = self.min_park_ns
            else:
                self._yield()
        else:
            assert state is BackoffState.PARKING
            self._sleep(self.park_period_ns)
            self.park_period_ns = min(self.park_period_ns * 2, self.max_park_ns)
        assert self.min_park_ns <= self.park_period_ns <= self.max_park_ns

    def reset(self) -> None:
        self.spins = 0
        self.yields = 0
        self.park_period_ns = self.min_park_ns
        self.state = BackoffState.NOT_IDLE


class SelectorIdleStrategy:
    """The default: wait in ``selector.select`` on registered sockets, with a backing-off timeout.

    Each ``idle(0)`` that times out doubles the timeout, from ``min_timeout_ns`` up to
    ``max_timeout_ns``; ``idle(n > 0)`` and ``reset()`` return it to ``min_timeout_ns``. A readable
    registered socket or a ``wake()`` ends the wait at once. A wait shorter than ``PRECISE_WAIT_NS`` is
    made with ``select.select``, to the microsecond (while every descriptor is below ``FD_SETSIZE``);
    longer ones with the selector. Owns a selector and a wake-up socket pair: call ``close()`` when done
    (``AgentRunner`` does it for the strategy it creates).
    """

    __slots__ = (
        "_fds",
        "_lock",
        "_selector",
        "_wake_reader",
        "_wake_writer",
        "closed",
        "max_timeout_ns",
        "min_timeout_ns",
        "timeout_ns",
    )

    def __init__(
        self,
        min_timeout_ns: int = DEFAULT_SELECTOR_MIN_TIMEOUT_NS,
        max_timeout_ns: int = DEFAULT_SELECTOR_MAX_TIMEOUT_NS,
    ) -> None:
        _check_ns("min_timeout_ns", min_timeout_ns, 1)
        _check_ns("max_timeout_ns", max_timeout_ns, 1)
        if min_timeout_ns > max_timeout_ns:
            raise AgentError(
                f"min_timeout_ns={min_timeout_ns} is greater than max_timeout_ns={max_timeout_ns}"
            )
        self.min_timeout_ns = min_timeout_ns
        self.max_timeout_ns = max_timeout_ns
        self.timeout_ns = min_timeout_ns
        self.closed = False
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._fds: list[int] = [self._wake_reader.fileno()]  # what a precise wait watches, wake-up first
        try:
            self._wake_reader.setblocking(False)
            self._wake_writer.setblocking(False)
            self._selector.register(self._wake_reader, selectors.EVENT_READ)
        except BaseException:
            self._close_resources()
            raise

    @property
    def registered_count(self) -> int:
        """How many file objects are registered (not counting the internal wake-up socket)."""
        return len(self._selector.get_map()) - 1

    def register(self, fileobj: FileObject) -> None:
        """Wake from ``idle`` when ``fileobj`` (a socket or file descriptor) becomes readable."""
        self._check_open("register")
        if self.registered_count >= MAX_REGISTERED:
            raise AgentError(f"SelectorIdleStrategy already watches the maximum of {MAX_REGISTERED}")
        try:
            key = self._selector.register(fileobj, selectors.EVENT_READ)
        except (KeyError, ValueError, OSError) as exc:
            raise AgentError(f"cannot register {fileobj!r}: {exc}") from exc
        self._fds.append(key.fd)

    def unregister(self, fileobj: FileObject) -> None:
        """Stop watching ``fileobj``; it must have been registered."""
        self._check_open("unregister")
        if fileobj is self._wake_reader:
            raise AgentError("cannot unregister the internal wake-up socket")
        try:
            key = self._selector.unregister(fileobj)
        except (KeyError, ValueError) as exc:
            raise AgentError(f"cannot unregister {fileobj!r}: it is not registered") from exc
        self._fds.remove(key.fd)

    def idle(self, work_count: int) -> None:
        if work_count > 0:
            self.timeout_ns = self.min_timeout_ns
            return
        self._check_open("idle")
        if not self.wait(self.timeout_ns):
            self.timeout_ns = min(self.timeout_ns * 2, self.max_timeout_ns)

    def wait(self, timeout_ns: int) -> bool:
        """Wait at most ``timeout_ns`` (0 or less: only look) for a registered socket to be readable or a
        ``wake()``; whether one came (a wake-up is consumed here)."""
        self._check_open("wait")
        timeout_s = max(0, timeout_ns) / NANOS_PER_SECOND
        fds = self._fds
        if timeout_ns < PRECISE_WAIT_NS and max(fds) < FD_SETSIZE:
            try:
                readable = select.select(fds, [], [], timeout_s)[0]
            except (OSError, ValueError):
                # a registered socket was closed before it was unregistered: the selector (epoll has
                # forgotten it) still serves; ``select`` will again once it is unregistered
                readable = None
            if readable is not None:
                if fds[0] in readable:
                    self._drain_wake()
                return bool(readable)
        events = self._selector.select(timeout_s)
        for key, _mask in events:
            if key.fileobj is self._wake_reader:
                self._drain_wake()
        return bool(events)

    def reset(self) -> None:
        self.timeout_ns = self.min_timeout_ns

    def wake(self) -> None:
        """End the current (or next) wait early. Safe from any thread; a no-op once closed."""
        with self._lock:
            if self.closed:
                return
            # BlockingIOError: the buffer is full, so a wake-up is already pending.
            with contextlib.suppress(BlockingIOError, InterruptedError):
                self._wake_writer.send(b"\x01")

    def close(self) -> None:
        """Release the selector and the wake-up sockets. Idempotent; does not close registered sockets."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._close_resources()

    def _close_resources(self) -> None:
        self._selector.close()
        self._wake_reader.close()
        self._wake_writer.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_reader.recv(WAKE_DRAIN_BYTES):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _check_open(self, operation: str) -> None:
        if self.closed:
            raise AgentError(f"SelectorIdleStrategy.{operation}() after close()")


# ------------------------------------------------------------------------------------------------- agents


class CompositeAgent:
    """Runs several agents in one duty cycle, in order; the work count is the sum of theirs.

    ``on_start`` and ``on_close`` run for every agent in order; ``on_close`` is attempted for all even
    if one fails, and the first failure is re-raised afterwards.
    """

    __slots__ = ("agents", "role_name")

    def __init__(self, *agents: Agent) -> None:
        if not 1 <= len(agents) <= MAX_COMPOSITE_AGENTS:
            raise AgentError(f"CompositeAgent needs 1 to {MAX_COMPOSITE_AGENTS} agents, got {len(agents)}")
        if len({id(agent) for agent in agents}) != len(agents):
            raise AgentError("CompositeAgent was given the same agent more than once")
        self.agents: tuple[Agent, ...] = agents
        self.role_name = "[" + ",".join(agent.role_name for agent in agents) + "]"

    def on_start(self) -> None:
        for agent in self.agents:
            agent.on_start()

    def do_work(self) -> int:
        work_count = 0
        for agent in self.agents:
            work_count += agent.do_work()
        return work_count

    def on_close(self) -> None:
        first: Exception | None = None
        for agent in self.agents:
            try:
                agent.on_close()
            except Exception as exc:
                if first is None:
                    first = exc
        if first is not None:
            raise first


class AgentRunner:
    """Runs one agent's duty cycle until ``close()``, on the calling thread or on its own.

    The default idle strategy is a ``SelectorIdleStrategy`` owned (and closed) by the runner; register
    the agent's sockets with ``runner.idle_strategy`` so it wakes on traffic. A strategy passed in
    belongs to the caller. ``run()`` may be called once; ``close()`` may be called from any thread,
    including from inside ``do_work``. Closing before ``run()`` means ``run()`` returns without calling
    the agent at all.
    """

    def __init__(
        self,
        agent: Agent,
        idle_strategy: IdleStrategy | None = None,
        error_handler: ErrorHandler | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.agent = agent
        self._owns_idle_strategy = idle_strategy is None
        self.idle_strategy: IdleStrategy = SelectorIdleStrategy() if idle_strategy is None else idle_strategy
        self.error_handler = error_handler
        self.clock: Clock = SystemClock() if clock is None else clock
        self.max_work_ns = 0
        """The longest single ``do_work`` call seen, by ``clock``."""
        self.error_count = 0
        self._lock = threading.Lock()
        self._running = True
        self._started = False
        self._finished = False
        self._thread: threading.Thread | None = None

    @property
    def is_closed(self) -> bool:
        """``close()`` has been called."""
        return not self._running

    @property
    def is_finished(self) -> bool:
        """``run()`` has returned (or ``close()`` came before it ever started)."""
        return self._finished

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def run(self) -> None:
        """Run the duty cycle on the calling thread until ``close()``; see the module docstring."""
        with self._lock:
            if self._started:
                raise AgentError(f"AgentRunner for {self.agent.role_name!r} has already been started")
            self._started = True
            if not self._running:
                self._finish()
                return
        try:
            try:
                self.agent.on_start()
            except Exception as exc:
                self._running = False
                self._handle(exc)
            while self._running:
                self.duty_cycle()
        finally:
            try:
                self.agent.on_close()
            finally:
                self._finish()

    def duty_cycle(self) -> int:
        """One ``do_work`` and one ``idle``; returns the work count (0 after an error)."""
        start_ns = self.clock.nano_time()
        try:
            work_count = self.agent.do_work()
        except Exception as exc:
            work_count = 0
            self._handle(exc)
        work_ns = self.clock.nano_time() - start_ns
        if work_ns > self.max_work_ns:
            self.max_work_ns = work_ns
        if work_count < 0:
            error = AgentError(f"{self.agent.role_name}.do_work() returned {work_count}, not a work count")
            work_count = 0
            self._handle(error)
        self.idle_strategy.idle(work_count)
        return work_count

    def start_on_thread(self) -> threading.Thread:
        """Start ``run()`` on a new non-daemon thread named after the agent, and return it."""
        with self._lock:
            if self._thread is not None or self._started:
                raise AgentError(f"AgentRunner for {self.agent.role_name!r} has already been started")
            thread = threading.Thread(target=self.run, name=self.agent.role_name, daemon=False)
            self._thread = thread
        thread.start()
        return thread

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the duty cycle and, when called from another thread, wait up to ``timeout_s`` for it.

        Raises ``AgentError`` if the runner's thread is still running after ``timeout_s``.
        """
        if not 0 < timeout_s <= MAX_CLOSE_TIMEOUT_S:
            raise AgentError(f"timeout_s={timeout_s} is outside (0, {MAX_CLOSE_TIMEOUT_S}]")
        with self._lock:
            self._running = False
            if not self._started:
                self._finish()
                return
        idle_strategy = self.idle_strategy
        if isinstance(idle_strategy, SelectorIdleStrategy):
            idle_strategy.wake()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout_s)
        if thread.is_alive():
            raise AgentError(f"agent {self.agent.role_name!r} did not stop within {timeout_s} s")

    def _handle(self, exc: Exception) -> None:
        self.error_count += 1
        if self.error_handler is None:
            raise exc
        self.error_handler(exc)

    def _finish(self) -> None:
        self._finished = True
        if self._owns_idle_strategy:
            idle_strategy = self.idle_strategy
            assert isinstance(idle_strategy, SelectorIdleStrategy)
            idle_strategy.close()
