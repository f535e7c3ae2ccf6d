"""Counters: Aeron's driver counters (id, type id, key, label, int64 value), in process.

Theory of operation
-------------------
Aeron's media driver keeps a table of counters in its CnC file: each has an id (its slot), a type id
saying what it counts, up to ``MAX_KEY_LENGTH`` (112) bytes of key that identify what it belongs to, a
label of up to ``MAX_LABEL_LENGTH`` (380) characters for people, and a 64-bit value. Clients allocate
counters, set them, and find other components' counters by type id and key -- the archive allocates a
recording-position counter (type id 100) per recording, which the cluster later looks up by its key
(the recording id) -- or name one by id (a bounded replay's limit counter).

Here there is no CnC file and no other process: a ``CountersManager`` (one per ``Transport``, as
``Transport.counters_manager``) holds ``Counter`` objects in a table of at most ``max_counters`` slots
(default 8192). ``allocate`` takes the oldest freed id first, else the next never-used one, and raises
``CountersFullError`` when every slot is in use; ``Counter.close`` frees the id. Each allocation also gets
a ``registration_id`` that is never reused, so a holder of an id can tell a counter that replaced the
one it knew (Aeron's counter registration id serves the same purpose).

A ``Counter`` keeps its own value: ``get`` and ``set`` are attribute reads and writes, cheap enough for a
recorder to set its position on every block. A closed counter keeps its last value for whoever still
holds it (a reader sees ``is_closed``), refuses ``set`` with ``CounterError`` and is no longer found by id
or by ``find``. Values are Java longs: ``set`` refuses anything outside the int64 range.

Departures from Aeron: a label longer than 380 characters is cut to 380, as Aeron's ``allocate(String)``
does, but a key longer than 112 bytes is refused (Aeron throws for an oversized key buffer); a freed id is
reused at once, oldest first, where Aeron waits ``counterFreeToReuseTimeout`` (1 s) -- readers here hold
``Counter`` objects, not raw slots, and ``registration_id`` tells reuse apart; there is no owner id,
reference id or counter state beyond ``is_closed``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

from cluster.transport.errors import CounterError, CountersFullError

__all__ = [
    "DEFAULT_MAX_COUNTERS",
    "MAX_KEY_LENGTH",
    "MAX_LABEL_LENGTH",
    "Counter",
    "CountersManager",
    "KeyPredicate",
]

MAX_KEY_LENGTH = 112
MAX_LABEL_LENGTH = 380
DEFAULT_MAX_COUNTERS = 8192

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

KeyPredicate = Callable[[bytes], bool]
"""Decides whether a counter's key bytes are the ones looked for."""


class Counter:
    """One allocated counter: ``id``, ``registration_id``, ``type_id``, ``key`` (bytes), ``label`` and an
    int64 value read with ``get`` and written with ``set``. Made by ``CountersManager.allocate``."""

    __slots__ = ("_manager", "_value", "id", "is_closed", "key", "label", "registration_id", "type_id")

    def __init__(
        self,
        manager: CountersManager,
        counter_id: int,
        registration_id: int,
        type_id: int,
        key: bytes,
        label: str,
    ) -> None:
        self._manager = manager
        self._value = 0
        self.id = counter_id
        self.registration_id = registration_id
        self.type_id = type_id
        self.key = key
        self.label = label
        self.is_closed = False

    def get(self) -> int:
        """The current value (the last one set, also after ``close``)."""
        return self._value

    def set(self, value: int) -> None:
        """Set the value, an int64; ``CounterError`` if the counter is closed or the value out of range."""
        if self.is_closed or not _INT64_MIN <= value <= _INT64_MAX:
            raise CounterError(self._set_refusal(value))
        self._value = value

    def propose_max(self, value: int) -> bool:
        """Set the value to ``value`` if that is larger (Aeron's ``proposeMax``); ``True`` if it was."""
        if self.is_closed or not _INT64_MIN <= value <= _INT64_MAX:
            raise CounterError(self._set_refusal(value))
        if value > self._value:
            self._value = value
            return True
        return False

    def _set_refusal(self, value: object) -> str:
        if self.is_closed:
            return f"counter {self.id} ({self.label!r}) is closed"
        return f"counter value must be an int64: {value!r}"

    def close(self) -> None:
        """Free the counter's id for reuse; idempotent. The value stays readable through ``get``."""
        if not self.is_closed:
            self.is_closed = True
            self._manager._free(self)

    def __repr__(self) -> str:
        state = " closed" if self.is_closed else ""
        return (
            f"Counter(id={self.id}, type_id={self.type_id}, label={self.label!r}, value={self._value}{state})"
        )


class CountersManager:
    """The counters of one transport (see the module docstring): at most ``max_counters`` live at once."""

    __slots__ = ("_free_ids", "_live", "_next_registration_id", "_slots", "max_counters")

    def __init__(self, max_counters: int = DEFAULT_MAX_COUNTERS) -> None:
        if isinstance(max_counters, bool) or not isinstance(max_counters, int) or max_counters < 1:
            raise CounterError(f"max_counters must be a positive int: {max_counters!r}")
        self.max_counters = max_counters
        self._slots: list[Counter | None] = []  # index = counter id; grows up to max_counters
        self._free_ids: deque[int] = deque()  # freed ids, oldest first; never more than max_counters
        self._live = 0
        self._next_registration_id = 1

    def allocate(self, type_id: int, label: str, key: bytes | bytearray | memoryview = b"") -> Counter:
        """A new counter with value 0. ``type_id`` is an int32; ``key`` at most ``MAX_KEY_LENGTH`` bytes
        (copied); ``label`` is cut to ``MAX_LABEL_LENGTH`` characters. ``CountersFullError`` when
        ``max_counters`` counters are live."""
        if isinstance(type_id, bool) or not isinstance(type_id, int) or not -(2**31) <= type_id < 2**31:
            raise CounterError(f"counter type id must be an int32: {type_id!r}")
        if not isinstance(label, str):
            raise CounterError(f"counter label must be a str: {label!r}")
        if not isinstance(key, bytes | bytearray | memoryview):
            raise CounterError(f"counter key must be bytes-like: {key!r}")
        key_bytes = bytes(key)
        if len(key_bytes) > MAX_KEY_LENGTH:
            raise CounterError(
                f"counter key is {len(key_bytes)} bytes, more than MAX_KEY_LENGTH={MAX_KEY_LENGTH}"
            )
        slots = self._slots
        if self._free_ids:
            counter_id = self._free_ids.popleft()
        elif len(slots) < self.max_counters:
            counter_id = len(slots)
            slots.append(None)
        else:
            raise CountersFullError(f"unable to allocate a counter: all {self.max_counters} ids are in use")
        counter = Counter(
            self, counter_id, self._next_registration_id, type_id, key_bytes, label[:MAX_LABEL_LENGTH]
        )
        self._next_registration_id += 1
        slots[counter_id] = counter
        self._live += 1
        return counter

    def _free(self, counter: Counter) -> None:
        counter_id = counter.id
        if self._slots[counter_id] is counter:
            self._slots[counter_id] = None
            self._free_ids.append(counter_id)
            self._live -= 1

    def counter(self, counter_id: int) -> Counter | None:
        """The live counter with this id, or ``None``."""
        if isinstance(counter_id, int) and 0 <= counter_id < len(self._slots):
            return self._slots[counter_id]
        return None

    def find(self, type_id: int, predicate: KeyPredicate | None = None) -> Counter | None:
        """The live counter of ``type_id`` with the lowest id whose key satisfies ``predicate`` (any key
        when it is ``None``), or ``None``."""
        for counter in self._slots:
            if (
                counter is not None
                and counter.type_id == type_id
                and (predicate is None or predicate(counter.key))
            ):
                return counter
        return None

    def find_all(self, type_id: int, predicate: KeyPredicate | None = None) -> list[Counter]:
        """Every live counter of ``type_id`` whose key satisfies ``predicate``, by ascending id."""
        return [
            counter
            for counter in self._slots
            if counter is not None
            and counter.type_id == type_id
            and (predicate is None or predicate(counter.key))
        ]

    def __iter__(self) -> Iterator[Counter]:
        """The live counters by ascending id (a snapshot: allocating or closing meanwhile is safe)."""
        return iter([counter for counter in self._slots if counter is not None])

    def __len__(self) -> int:
        """How many counters are live."""
        return self._live

    def __repr__(self) -> str:
        return f"CountersManager(live={self._live}, max_counters={self.max_counters})"
