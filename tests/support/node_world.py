"""Cluster nodes (``ClusterNode``: transport, archive and consensus module) in a test world: over the
simulated network and disk, or over real UDP on 127.0.0.1 and real files (``archive_world.World``
steps them and moves virtual time), plus a client session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cluster.client.aeron_cluster import AeronCluster
from cluster.consensus.agent import LogEvent
from cluster.consensus.cluster_node import ClusterNode
from cluster.consensus.node_config import NodeConfig
from generated import aeron_cluster_codecs as codecs
from support.archive_world import World
from tools.node_processes import free_base_port

# Aeron's timeouts scaled down, so a test sees elections in seconds of (virtual) time
FAST = {
    "cluster.log.channel": "aeron:udp?term-length=64k",
    "cluster.leader.heartbeat.timeout": "2s",
    "cluster.startup.canvass.timeout": "4s",
    "cluster.election.timeout": "500ms",
}


@dataclass
class Cluster:
    """``nodes`` members in ``world``, all started; ``events`` collects what each consensus module did."""

    world: World
    configs: tuple[NodeConfig, ...]
    nodes: list[ClusterNode | None] = field(default_factory=list)
    events: list[tuple[int, LogEvent]] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        world: World,
        count: int,
        settings: Mapping[str, object] | None = None,
        *,
        base_port: int = 20_000,
    ) -> Cluster:
        if world.kind != "sim":
            base_port = free_base_port(count)
        configs = NodeConfig.local_cluster(
            count, "/cluster", base_port, settings={**FAST, **(settings or {})}
        )
        cluster = cls(world, configs)
        for member_id in range(count):
            cluster.nodes.append(None)
            cluster.launch(member_id)
        return cluster

    def launch(self, member_id: int) -> ClusterNode:
        """Start member ``member_id`` (again) on its directories."""
        assert self.nodes[member_id] is None, f"member {member_id} is running"
        node = ClusterNode(
            self.configs[member_id],
            network=self.world.network,
            cluster_storage=self.world.storage(f"node{member_id}/cluster"),
            archive_storage=self.world.storage(f"node{member_id}/archive"),
            pid=1000 + member_id,
            seed=self.world.seed * 100 + member_id,
            bind_host="127.0.0.1",
            on_event=lambda event: self.events.append((member_id, event)),
        )
        self.nodes[member_id] = node
        self.world.agents.append(node.do_work)
        return node

    def stop(self, member_id: int) -> None:
        """Stop member ``member_id`` in order (its files closed, its archive and transport too)."""
        node = self.nodes[member_id]
        assert node is not None
        self.world.agents.remove(node.do_work)
        node.close()
        self.nodes[member_id] = None

    def running(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node is not None]

    def leader(self) -> ClusterNode | None:
        for node in self.running():
            if node.agent.role == "LEADER" and node.agent.election_state == "CLOSED":
                return node
        return None

    def settled(self) -> bool:
        """A leader leads and every running member has completed its election in the leader's term."""
        leader = self.leader()
        return leader is not None and all(
            node.agent.election_state == "CLOSED"
            and node.agent.leadership_term_id <= leader.agent.leadership_term_id
            for node in self.running()
        )

    def close(self) -> None:
        for member_id, node in enumerate(self.nodes):
            if node is not None:
                self.stop(member_id)


class IngressClient:
    """A client session with the cluster (``AeronCluster``, connected without blocking as the world
    steps), offering 8-byte commands to the leader."""

    def __init__(self, world: World, cluster: Cluster, host: str = "127.0.0.1") -> None:
        self.world = world
        self.cluster = cluster
        self.host = host
        self.transport = world.transport(host)
        self.session: AeronCluster | None = None
        self.events: list[object] = []

    def connected(self) -> bool:
        """Connect (one step at a time); ``True`` once the session is open."""
        if self.session is None:
            endpoints = ",".join(f"{m.id}={m.ingress}" for m in self.cluster.configs[0].members)
            self.session = AeronCluster.begin_connect(
                self.transport,
                egress_channel=f"aeron:udp?endpoint={self.host}:0",
                ingress_endpoints=endpoints,
            )
        return self.session.poll_connect()

    @property
    def open_event_length(self) -> int:
        """The log bytes of this session's SessionOpenEvent (its frame, aligned)."""
        assert self.session is not None
        channel = len(self.session.protocol.egress_channel)
        unaligned = 32 + codecs.HEADER_SIZE + codecs.SessionOpenEventEncoder.BLOCK_LENGTH + 4 + channel + 4
        return (unaligned + 31) & -32

    def offer(self, node: ClusterNode, command: int) -> bool:
        """Offer ``command`` once the session is open and knows ``node`` as its leader (a NewLeaderEvent
        moves it); ``False`` until then, and until the message has left."""
        if not self.connected():
            return False
        session = self.session
        assert session is not None
        session.poll_egress(self.events.append)
        if session.leader_member_id != node.config.member_id:
            return False
        return session.offer(command.to_bytes(8, "little", signed=True)) > 0

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
