"""A service that ends its node on command, for the tests of a service that stops (ClusterTest's
``shouldTerminateLeaderWhenServiceStops`` and ``shouldStopClusteredServicesOnAppropriateMessage``): the
echo service, except that command ``FAIL_ON_LEADER`` makes the leader's service raise (its node fails;
the followers' echo it) and command ``END`` makes every member's service raise ``ClusterTermination``.
Node processes load it as ``support.ending_service:EndingService`` with ``tests/`` on their
``PYTHONPATH``."""

from __future__ import annotations

from typing import Final

from cluster.service.api import ClientSession, Cluster, ClusterTermination, Role, SnapshotReader
from cluster.service.echo import EchoService

FAIL_ON_LEADER: Final = 1_000_001
END: Final = 1_000_002
SERVICE_CLASS: Final = "support.ending_service:EndingService"


class EndingService(EchoService):
    def on_start(self, cluster: Cluster, snapshot: SnapshotReader | None) -> None:
        super().on_start(cluster, snapshot)
        self.cluster = cluster

    def on_session_message(self, session: ClientSession | None, timestamp: int, message: memoryview) -> None:
        command = int.from_bytes(message[:8], "little", signed=True) if len(message) >= 8 else 0
        if command == FAIL_ON_LEADER and self.cluster.role == Role.LEADER:
            raise RuntimeError("told to fail where it leads")
        if command == END:
            raise ClusterTermination("told to end")
        super().on_session_message(session, timestamp, message)
