"""``ClusterNode``: one member as one program -- its transport, its archive, its consensus module and its
services' containers -- in either world.

Theory of operation
-------------------
A node is agents that one thread runs in turn: the ``Transport`` (Aeron's client and media driver), the
``Archive`` (recording the log, replaying and replicating it), the ``ConsensusModuleAgent`` (driving the
consensus core) and one ``ContainerAgent`` per service (reading the committed log into the service, each
with an archive client of its own; they talk to the consensus module over IPC, as Aeron's do). What
makes the world real or simulated is only what the node is given: a ``Network`` (UDP, or the
deterministic ``SimNetwork``, which also supplies the clock) and two ``Storage`` directories (real
files, or ``SimDisk``), so the simulator runs exactly the code a real process runs.

The archive client the consensus module uses waits for answers by running the transport's and the
archive's duty cycles (``_invoke``), never the consensus module's own. A duty cycle ends with the
transport's sending half again (``send_work``): what the agents offered in the cycle -- the log to the
followers, an append position to the leader, a reply to a client -- leaves at once instead of a cycle
later, one cycle less on every hop of a round trip.

A node starts again in place when its consensus module asks (``ConsensusModuleAgent.restart``: it has
caught up from another member's snapshot, or tried to; docs/consensus.md, "Catch-up from a snapshot"):
the services' containers and the module close and are made anew on the same directories, as a process
starting on them would make them; the transport and the archive go on (``restarts`` counts it).

A process that runs the node on an ``AgentRunner`` passes the runner's ``SelectorIdleStrategy`` as
``idle``: the transport registers every socket it opens with it, so an idle node sleeps in the kernel
and wakes on the first datagram (``python -m tools node`` does this).
"""

from __future__ import annotations

import dataclasses
import random as random_module
from collections.abc import Callable

from cluster.archive.archive import Archive
from cluster.archive.client import ArchiveClient
from cluster.archive.context import ArchiveContext
from cluster.consensus.agent import ConsensusModuleAgent, LogEvent
from cluster.consensus.core.sessions import Authenticator, AuthorisationService
from cluster.consensus.node_config import NodeConfig
from cluster.service.api import ClusteredService
from cluster.service.container_agent import ContainerAgent
from cluster.service.loader import load_authenticator, load_authorisation_service
from cluster.storage import Storage
from cluster.transport.agent import SelectorIdleStrategy
from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.media import Network

__all__ = ["ClusterNode"]

MIB = 1024 * 1024


class ClusterNode:
    """One cluster member: transport, archive and consensus module (see the module docstring)."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        network: Network,
        cluster_storage: Storage,
        archive_storage: Storage,
        pid: int,
        seed: int | None = None,
        bind_host: str = "0.0.0.0",
        canaries: frozenset[str] = frozenset(),
        on_event: Callable[[LogEvent], object] | None = None,
        mark_file_liveness_timeout_ms: int = 10_000,
        idle: SelectorIdleStrategy | None = None,
        service: Callable[[], ClusteredService] | None = None,
        authenticator: Callable[[], Authenticator] | None = None,
        authorisation: Callable[[], AuthorisationService] | None = None,
    ) -> None:
        """``mark_file_liveness_timeout_ms``: how recent a mark file's activity timestamp must be for
        the directory to count as another live process's (Aeron's 10 s; the simulator scales it down
        with its other timeouts). ``idle``, if given, is handed to the transport, which registers its
        sockets with it (the strategy stays the caller's to close). ``service``, if given, makes a
        service for each of the ``cluster.service.count`` containers the node then runs (service ids 0
        up); without it the node runs none, and its consensus module counts no services (it waits for
        no service's ack: a snapshot is then the module's alone). ``authenticator`` and ``authorisation`` make
        the consensus module's authenticator and authorisation service (one for each of its lives); by
        default they are the classes the configuration names (``cluster.authenticator.supplier``,
        ``cluster.authorisation.service.supplier``: Aeron's defaults unless set; docs/node-config.md)."""
        if service is None and config.service_count:
            config = dataclasses.replace(config, service_count=0)
        self.config = config
        authenticator = authenticator or load_authenticator(config.authenticator_class)
        authorisation = authorisation or load_authorisation_service(config.authorisation_service_class)
        rng = random_module.Random(seed)
        term_length = config.log_term_length
        # the log's terms arrive at this node, and a snapshot's when it catches up from another member's:
        # its images must be allowed to hold them (a log buffer takes memory only as it is written)
        received = max(term_length, config.snapshot_term_length, 16 * MIB)
        self.transport = Transport(
            network,
            TransportConfig(
                bind_host=bind_host,
                seed=rng.getrandbits(63),
                max_receive_term_length=received,
                max_image_memory_bytes=max(512 * MIB, 3 * 3 * received),
            ),
            idle=idle,
        )
        try:
            self.archive = Archive(
                self.transport,
                ArchiveContext(
                    storage=archive_storage,
                    control_channel=config.archive_control_channel,
                    control_stream_id=config.archive_control_stream_id,
                    local_control_channel=config.archive_local_control_channel,
                    local_control_stream_id=config.archive_local_control_stream_id,
                    replication_channel=config.archive_replication_channel,
                    segment_file_length=max(config.archive_segment_file_length, term_length),
                    file_sync_level=config.archive_file_sync_level,
                    catalog_file_sync_level=config.archive_catalog_file_sync_level,
                    pid=pid,
                    seed=rng.getrandbits(63),
                    mark_file_liveness_timeout_ms=mark_file_liveness_timeout_ms,
                ),
            )
        except BaseException:
            self.transport.close()
            raise
        self._make_agent: Callable[[], ConsensusModuleAgent] = lambda: ConsensusModuleAgent(
            config,
            transport=self.transport,
            cluster_storage=cluster_storage,
            invoker=self._invoke,
            random=rng.random,
            pid=pid,
            canaries=canaries,
            on_event=on_event,
            mark_file_liveness_timeout_ms=mark_file_liveness_timeout_ms,
            authenticator=authenticator(),
            authorisation=authorisation(),
        )
        try:
            self.agent = self._make_agent()
        except BaseException:
            self.archive.close()
            self.transport.close()
            raise
        self.containers: list[ContainerAgent] = []
        self._container_archives: list[ArchiveClient] = []
        self.is_closed = False
        self._lazy_recording = "ack_before_durable" in canaries
        self._service = service
        self._canaries = canaries
        self.restarts = 0
        try:
            self._start_containers()
        except BaseException:
            self.close()
            raise

    def _start_containers(self) -> None:
        if self._service is not None:
            for service_id in range(self.config.service_count):
                self._start_container(service_id, self._service())
        if "local_reads" in self._canaries and self.containers:
            # the canary's broken leader reads its first service's key-value state directly
            state = self.containers[0].service
            self.agent.local_read = getattr(getattr(state, "kv", state), "apply", None)

    def _close_services_and_module(self) -> None:
        for container in self.containers:
            container.close()
        for archive in self._container_archives:
            archive.close()
        self.agent.close()

    def _start_container(self, service_id: int, service: ClusteredService) -> None:
        config = self.config
        archive = self.agent.connect_archive()
        self._container_archives.append(archive)
        agent = self.agent
        self.containers.append(
            ContainerAgent(
                self.transport,
                service,
                service_id=service_id,
                member_id=config.member_id,
                cluster_id=config.cluster_id,
                archive=archive,
                log_recording_id=lambda: agent.log_recording_id,
                control_channel=config.control_channel,
                service_stream_id=config.service_stream_id,
                consensus_module_stream_id=config.consensus_module_stream_id,
                replay_channel=config.replay_channel,
                replay_stream_id=config.replay_stream_id,
                snapshot_channel=config.snapshot_channel,
                snapshot_stream_id=config.service_snapshot_stream_id,
                snapshot_threshold_ns=config.service_snapshot_threshold_ns,
            )
        )

    def _invoke(self) -> None:
        self.transport.do_work()
        self.archive.do_work()

    def do_work(self) -> int:
        """One duty cycle of each of the node's agents; the amount of work done."""
        if self.is_closed:
            return 0
        archive = self.archive
        work = self.transport.do_work() + archive.do_work() + self.agent.do_work()
        # what the consensus module appended is recorded, and what it committed replayed to the services,
        # in this cycle, not the next (canary ack_before_durable: the log is recorded a cycle late, as on a
        # slow disk, where acknowledging unrecorded bytes shows)
        work += archive.replay_work() if self._lazy_recording else archive.do_work()
        for container in self.containers:
            work += container.do_work()
        if self.agent.restart is not None:
            self._restart()
            work += 1
        return work + self.transport.send_work()  # what the agents offered leaves now, not next cycle

    def _restart(self) -> None:
        """The consensus module asked to start again on the node's directories (it has caught up from
        another member's snapshot, or failed to): the services and the module close, and start again as
        a process starting on the directories would -- the transport and the archive go on."""
        self._close_services_and_module()
        self.restarts += 1
        self.agent = self._make_agent()
        self.containers, self._container_archives = [], []
        self._start_containers()

    @property
    def is_terminated(self) -> bool:
        """The cluster was shut down or aborted and this member has stopped at its position (its
        services acknowledged it): whoever runs the node closes it now."""
        return self.agent.terminated is not None

    def close(self) -> None:
        """Stop in order: the services' containers, the consensus module (its log and files), the
        archive, the transport."""
        if self.is_closed:
            return
        self.is_closed = True
        try:
            self._close_services_and_module()
        finally:
            try:
                self.archive.close()
            finally:
                self.transport.close()
