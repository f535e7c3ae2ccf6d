"""Services for the tests on real node processes, loaded as ``support.process_services:<Class>`` with
``tests/`` on the nodes' ``PYTHONPATH``:

* ``EndingService`` ends its node on command, for the tests of a service that stops (ClusterTest's
  ``shouldTerminateLeaderWhenServiceStops`` and ``shouldStopClusteredServicesOnAppropriateMessage``):
  the echo service, except that command ``FAIL_ON_LEADER`` makes the leader's service raise (its node
  fails; the followers' echo it) and command ``END`` makes every member's service raise
  ``ClusterTermination``;
* ``SlowSecondService`` is slow as service 1 of its node (``shouldCatchupFollowerWithSlowService``);
* ``FailingAtStart`` raises from ``on_start``."""

from __future__ import annotations

import time
from typing import Final

from cluster.service.api import ClientSession, Cluster, ClusterTermination, Role, SnapshotReader
from cluster.service.echo import EchoService

FAIL_ON_LEADER: Final = 1_000_001
END: Final = 1_000_002
SERVICE_CLASS: Final = "support.process_services:EndingService"


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


SLOW_SERVICE_CLASS: Final = "support.process_services:SlowSecondService"
SLOW_MESSAGE_S: Final = 0.002


class SlowSecondService(EchoService):
    """The echo service, except that service 1 of its node sleeps ``SLOW_MESSAGE_S`` on every message:
    ClusterTest's slow service beside a normal one (``shouldCatchupFollowerWithSlowService``)."""

    def on_start(self, cluster: Cluster, snapshot: SnapshotReader | None) -> None:
        super().on_start(cluster, snapshot)
        self.slow = getattr(cluster, "service_id", 0) == 1

    def on_session_message(self, session: ClientSession | None, timestamp: int, message: memoryview) -> None:
        if self.slow:
            time.sleep(SLOW_MESSAGE_S)
        super().on_session_message(session, timestamp, message)


FAILING_AT_START_CLASS: Final = "support.process_services:FailingAtStart"


class FailingAtStart(EchoService):
    """A service whose ``on_start`` raises: its node fails as it starts."""

    def on_start(self, cluster: Cluster, snapshot: SnapshotReader | None) -> None:
        raise RuntimeError("cannot start")
