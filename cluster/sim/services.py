"""The simulator's service checkers: what every replica of a service sees, judged as the run goes.

Theory of operation
-------------------
Each simulated member runs ``CheckedService`` in its container: an echo service (each client message goes
back to its session) that also schedules a timer for every fourth command, and that reports each event it
is handed to the run's one ``ServiceChecker``; requests of the key-value clients (anything but an 8-byte
command) go to the key-value service inside it, whose answers the linearizability checker judges. The
simulator's client sends 8-byte commands numbered from 0, in order, each once; the service is the real
container's, fed by the real consensus module, so the checker judges what users run.

The checker holds, as the run goes:

* **only committed entries** -- an event's log position is never past the member's commit position when
  the service is handed it (the member's own counter of it, read through ``commit_position``);
* **once each, in the client's order** -- on every replica, each command arrives at most once and in
  increasing order; each timer fires at most once;
* **equal states at equal positions** -- every replica's state (a digest of every event it has seen, in
  order) after the event that ends at position P is the same as every other replica's there.

At the end of a run, ``check_complete`` asks that every running replica has seen exactly the committed
commands, in order, and no more: every command committed reached every replica once. A member that
restarts starts a new replica (``on_start``): it reads the log from the beginning again, or from its
latest snapshot, which holds the replica's state as the checker had it (the digest, the commands and the
timers seen) and the key-value store -- so a replica that starts from a snapshot is judged by the same
rules as one that replayed the whole log, and "equal states at equal positions" compares the two.

The checker imports nothing of the transport, archive, consensus module or storage: ``commit_position``
and ``violate`` are the simulator's.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from cluster.service.api import ClientSession, Cluster, ClusteredService, SnapshotReader, SnapshotWriter
from cluster.service.kv import KeyValueService

__all__ = ["TIMER_EVERY", "CheckedService", "ServiceChecker"]

TIMER_EVERY: Final = 4  # the service schedules a timer for every fourth command
TIMER_DELAY_NS: Final = 5_000_000
_COMMAND_LENGTH: Final = 8
_INT64: Final = struct.Struct("<q")


@dataclass(slots=True)
class _Replica:
    """What one replica has seen so far."""

    commands: list[int] = field(default_factory=list)
    timers: set[int] = field(default_factory=set)
    digest: bytes = b""


class ServiceChecker:
    """Judges every replica's events as they happen (see the module docstring)."""

    def __init__(self, violate: Callable[[str, str], object]) -> None:
        self._violate = violate
        self._replicas: dict[int, _Replica] = {}
        self._digests: dict[int, tuple[bytes, int]] = {}  # log position -> (state after it, who set it)
        self.events = 0

    def service(self, member_id: int, commit_position: Callable[[], int]) -> CheckedService:
        """A new replica for ``member_id`` (a start or a restart: it reads the log from its start)."""
        return CheckedService(self, member_id, commit_position)

    def on_start(self, member_id: int, replica: _Replica | None = None) -> None:
        """A replica begins: empty, or as a snapshot left it."""
        self._replicas[member_id] = _Replica() if replica is None else replica

    def replica(self, member_id: int) -> _Replica:
        return self._replicas.setdefault(member_id, _Replica())

    def replica_commands(self, member_id: int) -> list[int]:
        replica = self._replicas.get(member_id)
        return [] if replica is None else list(replica.commands)

    def on_event(self, member_id: int, position: int, commit: int, kind: str, value: int) -> None:
        """Replica ``member_id`` was handed an event (``kind`` "command", "timer" or "request") ending at
        ``position`` while its member's commit position was ``commit``."""
        self.events += 1
        replica = self._replicas.setdefault(member_id, _Replica())
        if position > commit:
            self._violate(
                "services see only committed entries",
                f"n{member_id}'s service was handed a {kind} at {position}, past its commit {commit}",
            )
        if kind == "request":
            pass  # a key-value request: it counts in the state's digest only
        elif kind == "command":
            if replica.commands and value <= replica.commands[-1]:
                self._violate(
                    "each command reaches each service once, in the client's order",
                    f"n{member_id}'s service saw command {value} after command {replica.commands[-1]}",
                )
            replica.commands.append(value)
        elif value in replica.timers:
            self._violate("timers fire once", f"n{member_id}'s service saw timer {value} fire twice")
        else:
            replica.timers.add(value)
        replica.digest = hashlib.blake2b(replica.digest + f"{kind}:{value}".encode(), digest_size=16).digest()
        seen = self._digests.setdefault(position, (replica.digest, member_id))
        if seen[0] != replica.digest:
            self._violate(
                "service states are equal at equal log positions",
                f"n{member_id}'s service and n{seen[1]}'s differ after the entry ending at {position}",
            )

    def check_complete(self, member_id: int, committed: list[int]) -> None:
        """A replica that has read its member's whole committed log must have seen ``committed``."""
        seen = self.replica_commands(member_id)
        if seen != committed:
            missing = sorted(set(committed) - set(seen))[:5]
            extra = sorted(set(seen) - set(committed))[:5]
            self._violate(
                "every committed command reaches every service",
                f"n{member_id}'s service saw {len(seen)} commands, the log committed {len(committed)} "
                f"(missing {missing}, not committed {extra})",
            )


class CheckedService(ClusteredService):
    """An echo service that schedules a timer every ``TIMER_EVERY`` commands and reports each event to
    its ``ServiceChecker``."""

    def __init__(self, checker: ServiceChecker, member_id: int, commit_position: Callable[[], int]) -> None:
        self.checker = checker
        self.member_id = member_id
        self.commit_position = commit_position
        self.cluster: Cluster | None = None
        self.kv = KeyValueService()  # answers the key-value clients (their histories are checked apart)

    def on_start(self, cluster: Cluster, snapshot: SnapshotReader | None) -> None:
        self.cluster = cluster
        if snapshot is None:
            self.checker.on_start(self.member_id)
            return
        parts: list[bytes] = []
        while len(parts) < 3 and snapshot.poll(lambda message: parts.append(bytes(message)), 3 - len(parts)):
            pass
        if len(parts) < 3:
            raise ValueError("the checked service's snapshot ends before its own three parts")
        digest, commands, timers = parts
        replica = _Replica(
            [value for (value,) in _INT64.iter_unpack(commands)],
            {value for (value,) in _INT64.iter_unpack(timers)},
            digest,
        )
        self.checker.on_start(self.member_id, replica)
        self.kv.on_start(cluster, snapshot)

    def on_take_snapshot(self, snapshot: SnapshotWriter) -> None:
        """The replica's state as the checker holds it (digest, commands, timers), then the key-value
        store's."""
        replica = self.checker.replica(self.member_id)
        snapshot.offer(replica.digest)
        snapshot.offer(b"".join(_INT64.pack(value) for value in replica.commands))
        snapshot.offer(b"".join(_INT64.pack(value) for value in sorted(replica.timers)))
        self.kv.on_take_snapshot(snapshot)

    def _report(self, kind: str, value: int) -> None:
        assert self.cluster is not None
        self.checker.on_event(self.member_id, self.cluster.log_position, self.commit_position(), kind, value)

    def on_session_message(self, session: ClientSession | None, timestamp: int, message: memoryview) -> None:
        if len(message) != _COMMAND_LENGTH:  # a key-value client's request
            reply = self.kv.apply(message)
            self._report("request", zlib.crc32(message))
            if session is not None and reply is not None:
                session.offer(reply)
            return
        command = int.from_bytes(message, "little", signed=True)
        self._report("command", command)
        if command % TIMER_EVERY == 0:
            assert self.cluster is not None
            self.cluster.schedule_timer(command, timestamp + TIMER_DELAY_NS)
        if session is not None:
            session.offer(message)

    def on_timer_event(self, correlation_id: int, timestamp: int) -> None:
        self._report("timer", correlation_id)
