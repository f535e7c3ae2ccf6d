"""Golden transcripts, in the style of etcd-raft's data-driven tests: scripted scenarios run real cluster
nodes in the node simulator and print every election state and role change, every commit position a
member reaches, what the script did, and each member's final commit, append position and recording-log
term history; the output must equal the checked-in transcript in ``tests/testdata/consensus/``.
``pytest --rewrite`` regenerates them; review the diff.

The network runs without random faults here (no loss, one fixed delay) and one seed decides the rest, so
a transcript changes only when the nodes' behaviour does; each scenario is run twice to prove it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.golden import check_golden
from support.node_script import MS, Script

from cluster.consensus.node_sim import RESTART_DELAY_NS, commands_of

TRANSCRIPTS = Path(__file__).resolve().parent.parent / "testdata" / "consensus"
SEED = 3


class Transcript:
    """A script whose trace, commit positions and steps are written down as lines."""

    def __init__(self, node_count: int) -> None:
        self.lines: list[str] = []
        self._now_ns: Callable[[], int] = lambda: 0  # the members' first lines come while it is built
        self.script = Script(node_count, seed=SEED, trace=self._on_trace)
        self._now_ns = lambda: self.script.sim.now_ns
        self.script.after_step = self._poll_commits
        self._commits: dict[int, int] = {}

    def _on_trace(self, line: str) -> None:
        # the node simulator stamps a line in microseconds of the network's clock; a transcript in ms
        _, text = line.lstrip().split("us ", 1)
        self.note(text)

    def _poll_commits(self) -> None:
        for member in self.script.sim.members:
            node = member.node
            if node is None:
                self._commits.pop(member.member_id, None)
                continue
            commit = node.agent.commit_position
            previous = self._commits.get(member.member_id)
            if commit != previous:
                self._commits[member.member_id] = commit
                if previous is not None or commit != 0:
                    was = "" if previous is None else f"{previous} -> "
                    self.note(f"n{member.member_id} commit {was}{commit}")

    def note(self, text: str) -> None:
        us = self._now_ns() // 1000
        self.lines.append(f"{us // 1000:>6}.{us % 1000:03d}ms {text}")

    def act(self, text: str) -> None:
        """A line for what the script does, marked ``>``."""
        self.note(f"> {text}")

    # ------------------------------------------------------------------ script steps

    def elect(self, what: str = "a leader", *, other_than: int = -1) -> int:
        """Wait for a leader (other than ``other_than``) with its election complete."""
        self.script.until(lambda: self.script.leader_id() not in (-1, other_than), what)
        leader = self.script.leader_id()
        self.act(f"n{leader} leads term {self.script.term(leader)}")
        return leader

    def submit(self, *commands: int) -> None:
        for command in commands:
            self.act(f"submit command {command}")
            self.script.submit(command)

    def crash(self, member: int) -> None:
        self.act(f"crash n{member}")
        self.script.sim.crash(member)

    def restart(self, member: int) -> None:
        sim = self.script.sim
        stale_ns = sim.members[member].crashed_at_ns + RESTART_DELAY_NS
        self.script.until(lambda: sim.now_ns >= stale_ns, f"n{member}'s mark files stale")
        self.act(f"restart n{member}")
        assert sim.restart(member)

    def show(self, member: int) -> None:
        """A line with member ``member``'s role, term and positions now."""
        s = self.script
        self.note(
            f"n{member}: {s.role(member).lower()} in term {s.term(member)}, commit {s.commit(member)}, "
            f"append {s.append(member)}"
        )

    def run(self, duration_ms: int) -> None:
        self.script.run(duration_ms * MS)

    def text(self) -> str:
        sim = self.script.sim
        assert sim.violations == [], sim.violations
        sim.check_logs()
        assert sim.violations == [], sim.violations
        summary = []
        for member in sim.members:
            if member.node is None:
                summary.append(f"# n{member.member_id}: down")
                continue
            agent = member.node.agent
            summary.append(
                f"# n{member.member_id}: {agent.role.lower()} in term {agent.leadership_term_id}, "
                f"commit {agent.commit_position}, append {agent.append_position}, "
                f"terms {self.script.terms(member.member_id)}"
            )
        return "\n".join([*self.lines, *summary]) + "\n"


def elect_three(t: Transcript) -> None:
    t.elect()
    t.submit(0, 1)
    t.run(300)
    assert t.script.committed_everywhere()
    assert _committed(t) == {0, 1}


def leader_crash(t: Transcript) -> None:
    old = t.elect()
    t.submit(0, 1)
    t.run(300)
    t.crash(old)
    t.elect("a new leader", other_than=old)
    t.submit(2)
    t.run(300)
    assert _committed(t) == {0, 1, 2}


def follower_restart(t: Transcript) -> None:
    leader = t.elect()
    follower = (leader + 1) % 3
    t.crash(follower)
    t.submit(0, 1, 2)
    t.run(300)
    t.restart(follower)
    t.script.until(t.script.committed_everywhere, f"n{follower} caught up")
    t.run(300)
    assert _commands(t, follower) == [0, 1, 2]


def old_leader_rejoins(t: Transcript) -> None:
    old = t.elect()
    t.submit(0)
    t.run(300)
    t.act(f"isolate n{old}")
    t.script.isolate(old)
    t.submit(1, 2)  # appended by the old leader, never committed
    t.run(100)
    script = t.script
    assert script.append(old) > script.commit(old), "the old leader appended commands it cannot commit"
    assert _commands(t, old, script.append(old)) == [0, 1, 2]
    new = t.elect("a new leader of the others", other_than=old)  # the old one steps down without a quorum
    t.submit(3)  # the new leader's
    t.run(300)
    t.show(old)
    t.act("heal")
    script.sim.heal()
    script.until(script.committed_everywhere, f"n{old} rejoined")
    t.run(300)
    assert script.commit(old) == script.commit(new)
    assert script.terms(old) == script.terms(new)
    assert _commands(t, old) == [0, 3], "the old leader's uncommitted tail was replaced"


def two_nodes(t: Transcript) -> None:
    t.elect()
    t.submit(0, 1)
    t.run(300)
    assert t.script.committed_everywhere()
    assert _commands(t, 1) == [0, 1]


def five_nodes_lose_two(t: Transcript) -> None:
    leader = t.elect()
    t.submit(0)
    t.run(300)
    t.crash(leader)
    t.crash((leader + 1) % 5)
    t.elect("a leader of the three left", other_than=leader)
    t.submit(1)
    t.run(300)
    assert _committed(t) == {0, 1}


def _committed(t: Transcript) -> set[int]:
    """Every command seen committed so far (the logs are checked first)."""
    t.script.sim.check_logs()
    return t.script.sim.committed_commands


def _commands(t: Transcript, member: int, upto: int | None = None) -> list[int]:
    """The commands in member ``member``'s recorded log, up to its commit position by default."""
    end = t.script.commit(member) if upto is None else upto
    return commands_of(t.script.sim.log_of(member, end))


SCENARIOS: dict[str, tuple[int, Callable[[Transcript], None]]] = {
    "three_nodes_elect_a_leader": (3, elect_three),
    "leader_crashes_and_a_new_one_is_elected": (3, leader_crash),
    "follower_restarts_and_catches_up": (3, follower_restart),
    "partitioned_old_leader_rejoins_and_truncates": (3, old_leader_rejoins),
    "two_node_cluster": (2, two_nodes),
    "five_nodes_lose_two_members": (5, five_nodes_lose_two),
}


def transcript(name: str) -> str:
    node_count, script = SCENARIOS[name]
    t = Transcript(node_count)
    with t.script:
        script(t)
        return t.text()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_transcript(name: str, rewrite: bool) -> None:
    text = transcript(name)
    assert transcript(name) == text, "the same script and seed gave a different transcript"
    check_golden(TRANSCRIPTS / f"{name}.txt", text, rewrite=rewrite, what=f"transcript {name}")
