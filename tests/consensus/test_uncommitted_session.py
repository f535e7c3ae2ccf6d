"""Nothing uncommitted survives an election, for sessions: a leader cut off from the other members
takes a client's connect -- its SessionOpenEvent is appended and the client told OK, but no quorum
records it -- while the others elect a new leader. Once the old leader rejoins as a follower, its log is
cut to the new leader's and the session must be gone with it. The canary ``keep_uncommitted_session``
keeps it; the simulator's checker must catch that, and must pass the correct node.

A random sweep rarely reaches this (a connect must land on a leader in the moment before it is cut off),
so it is scripted here."""

from __future__ import annotations

from support.node_script import MS, Script

from cluster.client.aeron_cluster import AeronCluster
from cluster.consensus.node_sim import sessions_opened
from cluster.transport.driver import Transport, TransportConfig

CLIENT_HOST = "10.0.0.220"


def _scenario(canaries: frozenset[str]) -> tuple[list[str], bool]:
    """The checkers that failed once the old leader follows again, and whether it still held the
    session then."""
    with Script(3, seed=11, canaries=canaries) as script:
        sim = script.sim
        old = script.elected()
        for member in range(3):
            if member != old:
                sim.partition(old, member)
                sim.network.partition(sim.members[member].host, CLIENT_HOST)  # the client reaches only old
        transport = Transport(sim.network, TransportConfig(bind_host=CLIENT_HOST, seed=91))
        endpoints = ",".join(f"{c.member_id}={c.member.ingress}" for c in sim.configs)
        client = AeronCluster.begin_connect(
            transport, egress_channel=f"aeron:udp?endpoint={CLIENT_HOST}:0", ingress_endpoints=endpoints
        )
        script.after_step = transport.do_work
        script.until(client.poll_connect, "the cut-off leader opens the session")
        session_id = client.cluster_session_id
        assert session_id in script.node(old).agent.core.sessions.sessions  # appended, never committed
        script.until(
            lambda: any(script.role(m) == "LEADER" for m in range(3) if m != old), "the others elect a leader"
        )
        sim.heal()
        script.until(
            lambda: script.role(old) == "FOLLOWER" and script.state(old) == "CLOSED",
            "the old leader follows the new one",
        )
        script.run(500 * MS)
        log = sim.log_of(old, sim.recorded_position(old))
        assert all(sid != session_id for sid, _ in sessions_opened(log))  # the election cut its open
        held = session_id in script.node(old).agent.core.sessions.sessions
        sim.check_logs()
        client.close()
        transport.abort()
        return [violation.checker for violation in sim.violations], held


def test_a_session_whose_open_an_election_undid_is_gone_once_the_old_leader_follows() -> None:
    failed, held = _scenario(frozenset())
    assert failed == [] and not held


def test_the_checker_catches_a_node_that_keeps_the_uncommitted_session() -> None:
    failed, held = _scenario(frozenset({"keep_uncommitted_session"}))
    assert held
    assert "nothing uncommitted survives an election" in failed
