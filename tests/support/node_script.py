"""Scripted runs of the node simulator (``NodeSimulator``: real cluster nodes over the simulated network
and disks): steady links with a fixed delay and no random faults, and helpers to steer a run -- wait for a
condition within a bound of virtual time, isolate a member, submit commands until the leader takes them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from cluster.consensus.cluster_node import ClusterNode
from cluster.consensus.node_sim import MS, NodeSimulator
from cluster.service.api import ClusteredService
from cluster.transport.simnet import LinkConfig

__all__ = ["MS", "STEADY", "Script"]

STEADY = LinkConfig(delay_ns=1 * MS, jitter_ns=0)  # no loss, no duplicates, one fixed delay


class Script:
    """A ``NodeSimulator`` on steady links, and helpers to steer it. Close it (``with``) when done."""

    def __init__(
        self,
        node_count: int,
        *,
        seed: int = 3,
        trace: Callable[[str], object] | None = None,
        service: Callable[[], ClusteredService] | None = None,
        **options: Any,
    ) -> None:
        """``options`` go to ``NodeSimulator`` as they are (canaries, checked_services, kv_clients)."""
        self.sim = NodeSimulator(seed, node_count, trace=trace, service=service, **options)
        self.sim.set_link(STEADY)
        self.after_step: Callable[[], object] | None = None

    def __enter__(self) -> Script:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sim.close()

    # ------------------------------------------------------------------ time

    def step(self) -> None:
        self.sim.step()
        if self.after_step is not None:
            self.after_step()

    def run(self, duration_ns: int) -> None:
        end = self.sim.now_ns + duration_ns
        while self.sim.now_ns < end:
            self.step()

    def until(self, condition: Callable[[], bool], what: str, limit_ns: int = 40_000 * MS) -> None:
        """Step until ``condition`` holds; fail naming ``what`` if it does not within ``limit_ns``."""
        end = self.sim.now_ns + limit_ns
        while not condition():
            if self.sim.now_ns >= end:
                raise AssertionError(
                    f"never happened within {limit_ns // MS} ms: {what}; violations {self.sim.violations}"
                )
            self.step()

    # ------------------------------------------------------------------ members

    def node(self, member: int) -> ClusterNode:
        node = self.sim.members[member].node
        assert node is not None, f"n{member} is down"
        return node

    def leader_id(self) -> int:
        """The member leading with its election complete, or -1."""
        leader = self.sim.leader()
        return -1 if leader is None else leader.config.member_id

    def elected(self, what: str = "a leader", limit_ns: int = 40_000 * MS) -> int:
        self.until(lambda: self.sim.leader() is not None, what, limit_ns)
        return self.leader_id()

    def state(self, member: int) -> str:
        node = self.sim.members[member].node
        return "DOWN" if node is None else node.agent.election_state

    def role(self, member: int) -> str:
        node = self.sim.members[member].node
        return "DOWN" if node is None else node.agent.role

    def term(self, member: int) -> int:
        return self.node(member).agent.leadership_term_id

    def commit(self, member: int) -> int:
        return self.node(member).agent.commit_position

    def append(self, member: int) -> int:
        return self.node(member).agent.append_position

    def terms(self, member: int) -> list[tuple[int, int, int]]:
        """Member ``member``'s recording log: each valid TERM entry's (leadership term id, term base,
        log position)."""
        return [
            (entry.leadership_term_id, entry.term_base_log_position, entry.log_position)
            for entry in self.node(member).agent.recording_log.log.terms
        ]

    def isolate(self, member: int) -> None:
        """Partition ``member`` from every other member, both ways (the client still reaches it)."""
        for other in range(len(self.sim.members)):
            if other != member:
                self.sim.partition(member, other)

    def restart(self, member: int) -> None:
        """Restart a crashed member, waiting first for its mark files to go stale if they have not."""
        self.until(lambda: self.sim.restart(member), f"n{member} restarted", limit_ns=2_000 * MS)

    # ------------------------------------------------------------------ commands

    def submit(self, *commands: int, limit_ns: int = 5_000 * MS) -> None:
        """Offer each command to the elected leader until it takes it (the ingress connects, a leader is
        elected, and the client's session follows it), then let 10 ms pass."""
        for command in commands:
            self.until(partial(self.offer, command), f"command {command} taken", limit_ns)
            self.run(10 * MS)

    def offer(self, command: int) -> bool:
        """Offer ``command`` once to the elected leader through the client's session; whether it was taken."""
        leader = self.leader_id()
        return leader >= 0 and self.sim.submit(command, to_leader=(leader, self.term(leader)))

    def committed_everywhere(self) -> bool:
        """Every member runs and has committed and appended the leader's whole log."""
        return self.sim.converged()
