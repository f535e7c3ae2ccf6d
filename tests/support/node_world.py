"""Cluster nodes (``ClusterNode``: transport, archive and consensus module) in a test world: over the
simulated network and disk, or over real UDP on 127.0.0.1 and real files (``archive_world.World``
steps them and moves virtual time), plus a minimal ingress client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cluster.consensus.agent import LogEvent
from cluster.consensus.cluster_node import ClusterNode
from cluster.consensus.ingress import IngressPublisher
from cluster.consensus.node_config import NodeConfig
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
    """Offers commands (``cluster.consensus.ingress``: SessionMessageHeader + 8 bytes) to a member's
    ingress endpoint, stream 101 -- the core's minimal ingress until client sessions exist."""

    def __init__(self, world: World, host: str = "127.0.0.1") -> None:
        self.world = world
        self.transport = world.transport(host)
        self.publisher = IngressPublisher(self.transport)

    def offer(self, node: ClusterNode, command: int) -> bool:
        return self.publisher.offer(node.config.member.ingress, node.agent.leadership_term_id, command)
