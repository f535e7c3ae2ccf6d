"""A chaos run's client history as JSON lines, one operation per line, written as operations end.

Each line is one key-value operation as its client saw it::

    {"client": 2, "op": "cas", "key": "x", "expected": "1.4", "new": "2.7",
     "callNs": 812345678, "returnNs": 815001234, "output": true}

* ``op`` is ``read``, ``write`` or ``cas``; a write carries ``value``, a compare-and-set ``expected``
  (``null``: the key must be absent) and ``new``.
* ``callNs`` is when the request left the client, ``returnNs`` when its reply arrived, both in
  nanoseconds of the harness's monotonic clock since the run began; ``returnNs`` is ``null`` for an
  *indeterminate* operation (no reply within the client's timeout: it may or may not have taken effect).
* ``output``: a read the value read (``null``: absent), a write ``null``, a compare-and-set whether it
  swapped; ``null`` for an indeterminate operation.

Keys and values are the clients' ASCII byte strings, shown as text. ``read_history`` turns a file back
into the ``Operation`` s of ``cluster.sim.linearizability``, so a history can be checked again offline.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from cluster.sim.linearizability import UNKNOWN, Operation

__all__ = ["HistoryError", "HistoryWriter", "from_record", "read_history", "to_record"]


class HistoryError(ValueError):
    """A history line that is not an operation; the message names the file and line."""

    is_user_error = True


def _text(value: object) -> str | None:
    if value is None:
        return None
    assert isinstance(value, bytes), f"a key or value is bytes, not {value!r}"
    return value.decode("ascii", errors="backslashreplace")


def _bytes(value: object) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"a key or value is a string or null, not {value!r}")
    return value.encode("ascii")


def to_record(op: Operation) -> dict[str, Any]:
    """The JSON form of one operation (the module docstring)."""
    input = op.input
    assert isinstance(input, tuple), f"not a key-value input: {input!r}"
    record: dict[str, Any] = {"client": op.client_id, "op": input[0], "key": _text(input[1])}
    if input[0] == "write":
        record["value"] = _text(input[2])
    elif input[0] == "cas":
        record["expected"] = _text(input[2])
        record["new"] = _text(input[3])
    record["callNs"] = op.call
    record["returnNs"] = op.return_
    if op.output is UNKNOWN:
        record["output"] = None
    elif input[0] == "read":
        record["output"] = _text(op.output)
    else:
        record["output"] = op.output
    return record


def from_record(record: dict[str, Any]) -> Operation:
    """The operation of one JSON record; ``ValueError`` or ``KeyError`` if it is not one."""
    kind = record["op"]
    key = _bytes(record["key"])
    input: tuple[object, ...]
    if kind == "read":
        input = ("read", key)
    elif kind == "write":
        input = ("write", key, _bytes(record["value"]))
    elif kind == "cas":
        input = ("cas", key, _bytes(record["expected"]), _bytes(record["new"]))
    else:
        raise ValueError(f"unknown op {kind!r}")
    call = int(record["callNs"])
    returned = record["returnNs"]
    if returned is None:
        return Operation(int(record["client"]), input, call, UNKNOWN, None)
    output = record["output"]
    if kind == "read":
        output = _bytes(output)
    elif kind == "cas" and not isinstance(output, bool):
        raise ValueError(f"a compare-and-set's output is true or false, not {output!r}")
    return Operation(int(record["client"]), input, call, output, int(returned))


class HistoryWriter:
    """Appends operations to a JSON-lines file, flushed after each batch so a crashed harness leaves
    every operation it saw end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 -- closed by close()
        self.written = 0

    def write(self, operations: Iterable[Operation]) -> None:
        count = 0
        for op in operations:
            self._file.write(json.dumps(to_record(op)) + "\n")
            count += 1
        if count:
            self._file.flush()
            self.written += count

    def close(self) -> None:
        self._file.close()


def read_history(path: Path) -> list[Operation]:
    """Every operation of a history file, in file order."""
    operations = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                operations.append(from_record(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise HistoryError(f"{path}:{number}: not an operation: {exc}") from None
    return operations
