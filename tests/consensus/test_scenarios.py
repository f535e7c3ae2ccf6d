"""Scripted adversarial scenarios: schedules of partitions and crashes aimed at election transitions,
which random seeds reach rarely. Each once broke safety; each must now end with no violation and with
every live log equal to the leader's.
"""

from __future__ import annotations

from collections.abc import Callable

from cluster.consensus.simulator import MS, FaultConfig, Simulator

STEADY = FaultConfig(loss=0.0, duplicate=0.0, min_delay_ns=1 * MS, max_delay_ns=1 * MS)
TIMEOUTS = {
    "leader_heartbeat_timeout_ns": 2_000 * MS,
    "startup_canvass_timeout_ns": 4_000 * MS,
    "election_timeout_ns": 500 * MS,
}


class Script:
    """A simulator with steady links and helpers to steer it."""

    def __init__(self, nodes: int, *, entries_per_step: int | None = None) -> None:
        self.sim = Simulator(3, nodes, faults=STEADY, timeouts=TIMEOUTS)
        self.sim.entries_per_step = entries_per_step

    def until(self, condition: Callable[[], bool], what: str, limit_ms: int = 40_000) -> None:
        for _ in range(limit_ms // 2):
            if condition():
                return
            self.sim.step()
        raise AssertionError(f"never happened: {what}; violations {self.sim.violations}")

    def isolate(self, member: int) -> None:
        for other in range(len(self.sim.nodes)):
            if other != member:
                self.sim.partition(member, other)

    def state(self, member: int) -> str:
        core = self.sim.nodes[member].core
        return core.state.name if core is not None else "DOWN"

    def role(self, member: int) -> str:
        core = self.sim.nodes[member].core
        return core.role.name if core is not None else "DOWN"

    def term(self, member: int) -> int:
        core = self.sim.nodes[member].core
        assert core is not None
        return core.leadership_term_id

    def submit(self, *commands: int) -> None:
        for command in commands:
            self.sim.submit(command)
            self.sim.run(10 * MS)

    def converge(self) -> None:
        sim = self.sim
        sim.heal()
        for member in sorted(sim.down):
            sim.restart(member)
        self.until(lambda: sim.leader() >= 0, "a leader once healed")
        self.submit(1_000)
        sim.run(3_000 * MS)
        leader = sim.nodes[sim.leader()]
        assert sim.violations == []
        for node in sim.nodes:
            assert bytes(node.durable.log) == bytes(leader.durable.log)
            assert node.commit_position == leader.commit_position


def test_a_follower_cut_off_while_copying_a_term_never_labels_its_bytes_as_an_older_term() -> None:
    """F copies term B's own bytes (it sits at B's base); before the fix its last recorded term stayed
    the older L until the copy finished, so a crash part-way left B's bytes labelled L. F then beat a
    node holding other bytes of term L, walked it by copying only the missing tail, and the two logs
    differed below the commit."""
    script = Script(3, entries_per_step=1)
    sim = script.sim
    sim.run(1_500 * MS)
    script.submit(0, 1, 2)
    sim.run(300 * MS)
    f = (sim.leader() + 1) % 3
    for a in range(3):
        for b in range(a + 1, 3):
            sim.partition(a, b)
    sim.run(3_000 * MS)
    sim.heal()
    script.isolate(f)
    script.until(lambda: sim.leader() >= 0, "a leader G of term L without F")
    g = sim.leader()
    bl = 3 - f - g
    script.submit(10, 11)
    sim.run(300 * MS)
    sim.partition(g, bl, one_way=True)  # G's next term-L entry reaches nobody
    script.submit(20)
    sim.run(50 * MS)
    g_end = len(sim.nodes[g].durable.log)
    script.isolate(g)
    sim.heal()
    script.isolate(g)
    script.until(lambda: script.state(f) == "FOLLOWER_LOG_REPLICATION", "F replicating term L")
    script.until(lambda: script.state(f) == "CANVASS", "F done with term L")
    sim.partition(bl, f, one_way=True)  # F hears nothing more from Bl
    script.until(lambda: sim.leader() == bl, "Bl leading term B")
    script.submit(30, 31, 32, 33)
    script.until(lambda: script.state(bl) != "CLOSED", "Bl stepping down")
    sim.heal()
    script.isolate(g)
    script.until(lambda: script.state(f) == "FOLLOWER_LOG_REPLICATION", "F replicating term B")
    script.until(lambda: sim.nodes[f].durable.synced > g_end, "F durably past G's log end")
    sim.crash(f)
    sim.heal()
    script.isolate(bl)
    sim.restart(f)
    script.until(lambda: sim.leader() >= 0 and sim.leader() != bl, "a new leader without Bl")
    sim.run(1_000 * MS)
    script.submit(40, 41)
    sim.run(1_000 * MS)
    assert sim.violations == []
    assert bytes(sim.nodes[f].durable.log) == bytes(sim.nodes[g].durable.log)
    script.converge()


def test_a_term_only_a_follower_recorded_does_not_stall_the_cluster() -> None:
    """Q wins a term but never hears F, so it never gets past LEADER_LOG_REPLICATION to record it; F
    joined the term and did. The next leader lacks that term: F must drop it (it holds no bytes of it)
    to be walked on, or it waits in CANVASS for ever -- and with one healthy member down, so does the
    cluster."""
    script = Script(3)
    sim = script.sim
    sim.run(1_500 * MS)
    p = sim.leader()
    q, f = [member for member in range(3) if member != p]
    script.submit(0, 1, 2)
    sim.run(500 * MS)
    script.isolate(p)
    script.until(lambda: script.role(q) == "CANDIDATE" or script.role(f) == "CANDIDATE", "a candidate")
    if script.role(f) == "CANDIDATE":
        q, f = f, q
    script.until(lambda: script.role(q) == "LEADER", "Q leading")
    sim.partition(f, q, one_way=True)  # F's AppendPositions never reach Q
    term = script.term(q)
    script.until(
        lambda: any(record.leadership_term_id == term for record in sim.nodes[f].durable.recording_log.terms),
        "F recording Q's term",
    )
    script.isolate(f)
    script.until(lambda: script.state(q) != "LEADER_LOG_REPLICATION", "Q giving up")
    sim.heal()
    script.isolate(f)
    script.until(
        lambda: sim.leader() in (p, q) and script.term(sim.leader()) > term, "P or Q leading a later term"
    )
    sim.heal()
    sim.run(20_000 * MS)
    script.submit(100, 101, 102)
    sim.run(3_000 * MS)
    healthy = 3 - f - sim.leader()
    sim.crash(healthy)
    sim.run(20_000 * MS)
    script.submit(200, 201, 202)
    sim.run(3_000 * MS)
    assert {200, 201, 202} <= sim.committed_commands
    script.converge()
