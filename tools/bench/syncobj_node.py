"""One member of ``bench cluster``'s anchor: a pysyncobj 3-node replicated counter, as a process.

::

    python -m tools.bench.syncobj_node --self 127.0.0.1:P --partners 127.0.0.1:Q,127.0.0.1:R

The member is a ``SyncObj`` whose one replicated method increments a counter, ticked by pysyncobj's own
thread (``autoTick``, as its users run it) with ``appendEntriesUseBatch`` off, the configuration of
pysyncobj's own test objects: a command is appended and replicated as soon as it is queued instead of at
the next append-entries period (0.1 s), which its latency needs and its throughput does not suffer from.

It reads one JSON request per line on stdin and answers each with one JSON line on stdout:

* ``{"op": "state"}`` -> ``{"self": "127.0.0.1:P", "leader": "127.0.0.1:Q" or null, "ready": bool}``
* ``{"op": "measure", "mode": "windowed" | "rate" | "one", "count": N, "duration_s": D, "window": W,
  "rate": R}`` -> ``{"sent", "completed", "errors", "elapsed_s", "p50_us", "p99_us", "p99_9_us"}``: up
  to N increments (fewer if D seconds pass first), each with a callback; ``windowed`` keeps at most W
  without their callback, ``rate`` issues R per second (at most W waiting), ``one`` waits for each
  callback before the next. A round trip is from the call to its callback (``perf_counter_ns``);
  ``elapsed_s`` runs from the first call to the last callback.

It ends on ``{"op": "quit"}`` or at the end of stdin, destroying the ``SyncObj``. ``bench cluster``
sends the measurements to the leader's process: pysyncobj's best case, with no client hop at all.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import threading
import time
from typing import Any, Final

from tools.aeron_cmd import new_histogram

CALLBACK_TIMEOUT_S: Final = 30.0
"""How long a measurement waits for its outstanding callbacks at the end."""
COMMANDS_QUEUE_SIZE: Final = 100_000


def _counter_class() -> Any:
    from pysyncobj import SyncObj, replicated  # type: ignore[import-untyped]

    class Counter(SyncObj):  # type: ignore[misc]
        def __init__(self, self_address: str, partners: list[str], conf: Any) -> None:
            super().__init__(self_address, partners, conf)
            self.value = 0

        @replicated  # type: ignore[untyped-decorator]
        def increment(self) -> int:
            self.value += 1
            return self.value

    return Counter


def _latency_us(histogram: Any, percentile: float) -> float | None:
    if histogram.get_total_count() == 0:
        return None
    return float(histogram.get_value_at_percentile(percentile)) / 1000


def measure(counter: Any, request: dict[str, Any]) -> dict[str, Any]:
    """One measurement (the module docstring), on the calling thread; callbacks come on pysyncobj's."""
    from pysyncobj import FAIL_REASON

    mode = request["mode"]
    count = int(request["count"])
    window = 1 if mode == "one" else int(request["window"])
    interval_ns = round(1e9 / float(request["rate"])) if mode == "rate" else 0
    histogram = new_histogram()
    slots = threading.Semaphore(window)
    lock = threading.Lock()
    state = {"completed": 0, "errors": 0, "last_ns": 0}
    perf_counter_ns = time.perf_counter_ns

    def on_applied(sent_ns: int, result: object, error: object) -> None:
        now_ns = perf_counter_ns()
        with lock:
            if error == FAIL_REASON.SUCCESS:
                histogram.record_value(max(1, now_ns - sent_ns))
                state["completed"] += 1
            else:
                state["errors"] += 1
            state["last_ns"] = now_ns
        slots.release()

    start_ns = perf_counter_ns()
    stop_ns = start_ns + round(float(request["duration_s"]) * 1e9)
    sent = 0
    while sent < count:
        now_ns = perf_counter_ns()
        if now_ns >= stop_ns:
            break
        if interval_ns:
            due_ns = start_ns + sent * interval_ns
            if due_ns > now_ns:
                time.sleep((due_ns - now_ns) / 1e9)
        if not slots.acquire(timeout=CALLBACK_TIMEOUT_S):
            break
        counter.increment(callback=functools.partial(on_applied, perf_counter_ns()))
        sent += 1
    for _ in range(window):  # every callback in
        if not slots.acquire(timeout=CALLBACK_TIMEOUT_S):
            break
    with lock:
        return {
            "sent": sent,
            "completed": state["completed"],
            "errors": state["errors"],
            "elapsed_s": max(0, state["last_ns"] - start_ns) / 1e9,
            "p50_us": _latency_us(histogram, 50.0),
            "p99_us": _latency_us(histogram, 99.0),
            "p99_9_us": _latency_us(histogram, 99.9),
        }


def main(argv: list[str] | None = None) -> int:
    from pysyncobj import SyncObjConf

    parser = argparse.ArgumentParser(prog="python -m tools.bench.syncobj_node", description=__doc__)
    parser.add_argument("--self", dest="self_address", required=True, metavar="HOST:PORT")
    parser.add_argument("--partners", required=True, metavar="HOST:PORT,HOST:PORT")
    args = parser.parse_args(argv)
    conf = SyncObjConf(appendEntriesUseBatch=False, commandsQueueSize=COMMANDS_QUEUE_SIZE)
    counter = _counter_class()(args.self_address, args.partners.split(","), conf)
    try:
        for line in sys.stdin:
            request = json.loads(line)
            op = request.get("op")
            if op == "quit":
                break
            if op == "state":
                leader = counter._getLeader()
                answer: dict[str, Any] = {
                    "self": args.self_address,
                    "leader": None if leader is None else str(leader),
                    "ready": bool(counter.isReady()),
                }
            elif op == "measure":
                answer = measure(counter, request)
            else:
                answer = {"error": f"unknown op {op!r}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        counter.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
