"""The echo service: every message a client sends comes back to it, unchanged.

The smallest service there is, and the one ``cluster client`` and ``bench cluster`` talk to. It keeps no
state beyond a count of the messages it has seen (so replicas can be compared), which its snapshot holds.
"""

from __future__ import annotations

import struct

from cluster.service.api import ClientSession, Cluster, ClusteredService, SnapshotReader, SnapshotWriter

__all__ = ["EchoService"]

_COUNT = struct.Struct("<q")


class EchoService(ClusteredService):
    """Echoes each client message back to its session; counts the messages."""

    def __init__(self) -> None:
        self.messages = 0

    def on_start(self, cluster: Cluster, snapshot: SnapshotReader | None) -> None:
        if snapshot is not None:
            snapshot.poll(self._load, 1)

    def _load(self, message: memoryview) -> None:
        (self.messages,) = _COUNT.unpack(message)

    def on_session_message(self, session: ClientSession | None, timestamp: int, message: memoryview) -> None:
        self.messages += 1
        if session is not None:
            session.offer(message)

    def on_take_snapshot(self, snapshot: SnapshotWriter) -> None:
        snapshot.offer(_COUNT.pack(self.messages))
