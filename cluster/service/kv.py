"""The replicated key-value service: reads, writes and compare-and-set on byte-string keys and values.

Every request goes through the log -- reads too -- so every answer is linearizable: it reflects exactly
the requests committed before it, in log order. (A leader answering reads from its own state would give
stale reads after it was deposed without knowing; the simulator's linearizability checker exists to catch
that.)

The wire format is this service's own (little-endian); ``encode_*`` build requests, ``decode_reply``
reads answers. An optional byte string is an ``int32`` length, ``-1`` for absent, then the bytes.

* request: ``uint8 op`` (1 read, 2 write, 3 compare-and-set), ``int64 request id``, the key, then for a
  write the value, for a compare-and-set the expected value (absent: the key must be absent) and the new
  value;
* reply: ``int64 request id``, ``uint8 status`` (0 OK, 1 compare-and-set refused, 2 bad request), then
  the value: for a read the value read, for a compare-and-set the value the key holds after it.

The snapshot holds the entries in key order, each ``key`` then ``value``, as many to a message as fit in
``SNAPSHOT_MESSAGE_BYTES`` (an entry longer than that has a message of its own): a snapshot of many small
entries is then a few large messages, read back at a fraction of the cost of one message per entry.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from cluster.service.api import ClientSession, Cluster, ClusteredService, SnapshotReader, SnapshotWriter

__all__ = [
    "KeyValueService",
    "KvError",
    "Op",
    "Reply",
    "Status",
    "decode_reply",
    "encode_cas",
    "encode_read",
    "encode_write",
]

_HEAD = struct.Struct("<Bq")
_LENGTH = struct.Struct("<i")
_REPLY = struct.Struct("<qB")
MAX_BYTES = 64 * 1024  # a key or value longer than this is a bad request
SNAPSHOT_BATCH = 256
SNAPSHOT_MESSAGE_BYTES = 8 * 1024
"""The most a snapshot message holds (but for an entry longer alone): what every snapshot channel takes,
since the smallest term (64 KiB) takes messages of up to an eighth of it."""


class Op(enum.IntEnum):
    READ = 1
    WRITE = 2
    CAS = 3


class Status(enum.IntEnum):
    OK = 0
    REFUSED = 1  # a compare-and-set whose expected value was not there
    BAD_REQUEST = 2


class KvError(ValueError):
    """Bytes that are not a request or reply of this service."""


@dataclass(frozen=True, slots=True)
class Reply:
    request_id: int
    status: Status
    value: bytes | None


def _optional(value: bytes | None) -> bytes:
    if value is None:
        return _LENGTH.pack(-1)
    return _LENGTH.pack(len(value)) + value


def _read_optional(data: memoryview | bytes, offset: int) -> tuple[bytes | None, int]:
    if offset + _LENGTH.size > len(data):
        raise KvError(f"a length at {offset} runs past the end ({len(data)} bytes)")
    (length,) = _LENGTH.unpack_from(data, offset)
    offset += _LENGTH.size
    if length == -1:
        return None, offset
    if not 0 <= length <= MAX_BYTES or offset + length > len(data):
        raise KvError(f"a length of {length} at {offset - _LENGTH.size} does not fit ({len(data)} bytes)")
    return bytes(data[offset : offset + length]), offset + length


def encode_read(request_id: int, key: bytes) -> bytes:
    return _HEAD.pack(Op.READ, request_id) + _optional(key)


def encode_write(request_id: int, key: bytes, value: bytes) -> bytes:
    return _HEAD.pack(Op.WRITE, request_id) + _optional(key) + _optional(value)


def encode_cas(request_id: int, key: bytes, expected: bytes | None, new: bytes) -> bytes:
    return _HEAD.pack(Op.CAS, request_id) + _optional(key) + _optional(expected) + _optional(new)


def decode_reply(data: bytes | memoryview) -> Reply:
    if len(data) < _REPLY.size:
        raise KvError(f"a reply is at least {_REPLY.size} bytes, not {len(data)}")
    request_id, status = _REPLY.unpack_from(data, 0)
    try:
        code = Status(status)
    except ValueError:
        raise KvError(f"unknown reply status {status}") from None
    value, end = _read_optional(data, _REPLY.size)
    if end != len(data):
        raise KvError(f"{len(data) - end} bytes after the reply")
    return Reply(request_id, code, value)


def _encode_reply(request_id: int, status: Status, value: bytes | None) -> bytes:
    return _REPLY.pack(request_id, status) + _optional(value)


class KeyValueService(ClusteredService):
    """A map of byte strings, changed only by committed requests (see the module docstring)."""

    def __init__(self) -> None:
        self.store: dict[bytes, bytes] = {}

    def on_start(self, cluster: Cluster, snapshot: SnapshotReader | None) -> None:
        if snapshot is not None:
            while snapshot.poll(self._load, SNAPSHOT_BATCH):
                pass

    def _load(self, message: memoryview) -> None:
        # the per-entry loop of a large snapshot's load: the lengths read inline, not through
        # _read_optional (a third of the time)
        data = bytes(message)
        unpack = _LENGTH.unpack_from
        store = self.store
        offset, end = 0, len(data)
        while offset < end:
            if offset + 8 > end:
                raise KvError(f"a snapshot entry at {offset} runs past the end ({end} bytes)")
            (length,) = unpack(data, offset)
            key_at = offset + 4
            offset = key_at + length
            if not 0 <= length <= MAX_BYTES or offset + 4 > end:
                raise KvError(f"a snapshot key of {length} bytes at {key_at - 4} does not fit ({end} bytes)")
            (length,) = unpack(data, offset)
            value_at = offset + 4
            offset = value_at + length
            if not 0 <= length <= MAX_BYTES or offset > end:
                raise KvError(
                    f"a snapshot value of {length} bytes at {value_at - 4} does not fit ({end} bytes)"
                )
            store[data[key_at : value_at - 4]] = data[value_at:offset]

    def on_take_snapshot(self, snapshot: SnapshotWriter) -> None:
        chunk = bytearray()
        store = self.store
        for key in sorted(store):
            entry = _optional(key) + _optional(store[key])
            if chunk and len(chunk) + len(entry) > SNAPSHOT_MESSAGE_BYTES:
                snapshot.offer(chunk)
                chunk = bytearray()
            chunk += entry
        if chunk:
            snapshot.offer(chunk)

    def on_session_message(self, session: ClientSession | None, timestamp: int, message: memoryview) -> None:
        reply = self.apply(message)
        if session is not None and reply is not None:
            session.offer(reply)

    def apply(self, message: memoryview | bytes) -> bytes | None:
        """Apply one request; the reply to send (``None`` for bytes too short to name a request)."""
        if len(message) < _HEAD.size:
            return None
        op, request_id = _HEAD.unpack_from(message, 0)
        try:
            key, offset = _read_optional(message, _HEAD.size)
            if key is None:
                raise KvError("no key")
            if op == Op.READ:
                self._check_end(message, offset)
                return _encode_reply(request_id, Status.OK, self.store.get(key))
            if op == Op.WRITE:
                value, offset = _read_optional(message, offset)
                self._check_end(message, offset)
                if value is None:
                    raise KvError("a write without a value")
                self.store[key] = value
                return _encode_reply(request_id, Status.OK, value)
            if op == Op.CAS:
                expected, offset = _read_optional(message, offset)
                new, offset = _read_optional(message, offset)
                self._check_end(message, offset)
                if new is None:
                    raise KvError("a compare-and-set without a new value")
                if self.store.get(key) != expected:
                    return _encode_reply(request_id, Status.REFUSED, self.store.get(key))
                self.store[key] = new
                return _encode_reply(request_id, Status.OK, new)
            raise KvError(f"unknown op {op}")
        except KvError:
            return _encode_reply(request_id, Status.BAD_REQUEST, None)

    @staticmethod
    def _check_end(message: memoryview | bytes, offset: int) -> None:
        if offset != len(message):
            raise KvError(f"{len(message) - offset} bytes after the request")
