"""Scripted adversarial scenarios: schedules of partitions and crashes aimed at election transitions,
which random seeds reach rarely, run on real cluster nodes in the node simulator. Each once broke the
consensus core; each must now end with no violation, a converged cluster and every log equal.
"""

from __future__ import annotations

from functools import partial

from support.node_script import MS, Script

from cluster.consensus.node_sim import NodeSimulator
from cluster.transport.logbuffer import ADMIN_ACTION

B_COMMANDS = 1_000  # ~96 KB of log: an archive replication copies it in several steps
FINAL_COMMAND = 1_000_000  # the one command every scenario ends with
B_RANGE = range(10_000, 10_000 + B_COMMANDS)  # the commands of term B


def _new_term(script: Script, a: int, b: int, above: int) -> int:
    """End the term that members ``a`` and ``b`` (the only ones up) are in, by partitioning them until
    neither leads nor follows, then heal: they elect a leader of a term later than ``above``."""
    sim = script.sim
    sim.partition(a, b)
    script.until(lambda: "CLOSED" not in (script.state(a), script.state(b)), f"n{a} and n{b} parted")
    sim.heal()
    script.until(
        lambda: script.leader_id() >= 0 and script.term(script.leader_id()) > above,
        f"a leader of a term after {above}",
    )
    return script.leader_id()


def _submit_paced(script: Script, commands: range) -> None:
    """Offer a command every millisecond (faster, the leader's log publication pushes back, and the
    agent drops what it cannot append)."""
    for command in commands:
        script.until(partial(script.offer, command), f"command {command} taken")
        script.run(1 * MS)


def _term_at(terms: list[tuple[int, int, int]], position: int) -> int:
    """The leadership term a recording log labels the byte at ``position`` with (-1: none)."""
    label = -1
    for term, base, end in terms:
        if base <= position and (end < 0 or position < end):
            label = term
    return label


def _converge(script: Script) -> None:
    """Heal everything, restart every member that is down, commit one more command, and require a
    converged cluster with no violation and every log equal."""
    sim = script.sim
    sim.heal()
    for member in sorted(sim.down()):
        script.restart(member)
    script.elected("a leader once healed")
    script.submit(FINAL_COMMAND)
    script.until(sim.converged, "every member committed the leader's whole log")
    sim.check_converged()
    assert sim.violations == []
    logs = [sim.log_of(member, script.commit(member)) for member in range(len(sim.members))]
    assert all(log == logs[0] for log in logs) and len(logs[0]) > 0
    assert FINAL_COMMAND in sim.committed_commands


def test_a_follower_cut_off_while_copying_a_term_never_labels_its_bytes_as_an_older_term() -> None:
    """F sits at the base of term B with its log in the older term L, and the leader of a later term C
    walks it: F copies B's own bytes (FOLLOWER_LOG_REPLICATION). It must record B before any of those
    bytes land -- before the fix its last recorded term stayed L until the copy finished, so a cut or a
    crash part-way left B's bytes labelled L.

    Not the old message-level schedule: there a leader could append in a term no follower had joined, so
    F could meet a member G holding *other* bytes of L past B's base, beat it and walk it by copying only
    the missing tail (the logs then differed below the commit). A real leader completes its election only
    once a quorum has joined its term, so in three members no G with such a tail can outlive B. The
    closest real-node schedule keeps the risk itself: F is cut off, then crashed, part-way through copying
    B, and the term its recording log gives every byte it holds -- live, and as read back after a restart
    -- must be the leader's.
    """
    with Script(3) as script:
        sim = script.sim
        p = script.elected("a leader P of term L")
        f, q = (p + 1) % 3, (p + 2) % 3
        script.submit(0, 1, 2)
        script.run(300 * MS)
        l_term, b_base = script.term(p), script.append(f)
        sim.crash(f)
        b_leader = _new_term(script, p, q, l_term)
        b_term = script.term(b_leader)
        _submit_paced(script, B_RANGE)
        script.run(500 * MS)
        assert _committed(sim) >= set(B_RANGE)
        b_end = script.append(b_leader)
        c_leader = _new_term(script, p, q, b_term)
        script.submit(200)
        script.run(100 * MS)
        assert _term_at(script.terms(c_leader), b_base) == b_term

        script.restart(f)
        script.until(lambda: script.state(f) == "FOLLOWER_LOG_REPLICATION", "F copying term B")
        script.until(lambda: sim.recorded_position(f) > b_base, "F holding some of B's bytes")
        held = sim.recorded_position(f)
        assert held < b_end, "the copy finished in one step: nothing was cut part-way"
        script.isolate(f)  # cut off while copying
        assert _term_at(script.terms(f), held - 1) == b_term
        script.until(lambda: script.state(f) != "FOLLOWER_LOG_REPLICATION", "F giving up the copy")
        held = sim.recorded_position(f)
        sim.crash(f)
        script.restart(f)  # still cut off: it reads its recording log back from its disk
        assert sim.recorded_position(f) == held
        leader_terms = script.terms(script.leader_id())
        for position in (b_base, held - 1):
            assert _term_at(script.terms(f), position) == _term_at(leader_terms, position) == b_term
        assert sim.violations == []
        _converge(script)
        assert set(B_RANGE) <= sim.committed_commands


def test_a_term_only_a_follower_recorded_does_not_stall_the_cluster() -> None:
    """Q wins a term but never hears F, so it never gets past LEADER_LOG_REPLICATION to record it; F
    joined the term and did. The next leader lacks that term: F must drop it (it holds no bytes of it)
    to be walked on, or it waits in CANVASS for ever -- and with one healthy member down, so does the
    cluster."""
    with Script(3) as script:
        sim = script.sim
        p = script.elected("a leader P")
        q, f = [member for member in range(3) if member != p]
        script.submit(0, 1, 2)
        script.run(500 * MS)
        script.isolate(p)
        script.until(lambda: "CANDIDATE" in (script.role(q), script.role(f)), "a candidate")
        if script.role(f) == "CANDIDATE":
            q, f = f, q
        script.until(lambda: script.role(q) == "LEADER", "Q leading")
        sim.partition(f, q, one_way=True)  # F's AppendPositions never reach Q
        term = script.term(q)
        script.until(lambda: term in _term_ids(script, f), "F recording Q's term")
        script.isolate(f)
        script.until(lambda: script.state(q) != "LEADER_LOG_REPLICATION", "Q giving up")
        assert term not in _term_ids(script, q)
        sim.heal()
        script.isolate(f)
        script.until(
            lambda: script.leader_id() in (p, q) and script.term(script.leader_id()) > term,
            "P or Q leading a later term",
        )
        leader = script.leader_id()
        assert term not in _term_ids(script, leader)
        sim.heal()
        script.until(lambda: _follows(sim, f, leader), "F walked on and following")
        assert script.terms(f) == script.terms(leader)
        script.submit(100, 101, 102)
        script.run(1_000 * MS)
        healthy = 3 - f - leader
        sim.crash(healthy)
        script.submit(200, 201, 202)
        script.until(
            lambda: _committed(sim) >= {200, 201, 202}, "commands committed without the healthy member"
        )
        _converge(script)


def _term_ids(script: Script, member: int) -> list[int]:
    return [term for term, _, _ in script.terms(member)]


def _follows(sim: NodeSimulator, member: int, leader: int) -> bool:
    node = sim.members[member].node
    leader_node = sim.members[leader].node
    return (
        node is not None
        and leader_node is not None
        and node.agent.election_state == "CLOSED"
        and node.agent.role == "FOLLOWER"
        and node.agent.leadership_term_id == leader_node.agent.leadership_term_id
    )


def _committed(sim: NodeSimulator) -> set[int]:
    sim.check_logs()
    return sim.committed_commands


def test_a_member_that_starts_as_the_ballot_begins_still_votes_in_it() -> None:
    """A candidate offers its RequestVote to each member until the offer is taken, as Aeron's ballot
    does. A member whose process starts just as the ballot begins -- its consensus channel from the
    candidate not yet connected, so the first offer is refused -- hears the request once the channel
    connects and votes, and the candidate leads at once on a unanimous vote. Offered once and lost, the
    request left that member out, and the candidate waited out the whole ballot for a quorum: a second
    at Aeron's defaults whenever a cluster's members restart a moment apart."""
    lines: list[str] = []
    with Script(3, seed=3, trace=lines.append) as script:
        sim = script.sim
        sim.crash(2)
        ballots: list[tuple[int, int]] = []

        def on_state_change(member: int, state: str) -> None:
            if state == "CANDIDATE_BALLOT":
                ballots.append((member, sim.now_ns))

        sim.on_state_change = on_state_change
        script.until(lambda: bool(ballots), "a candidate")
        candidate, ballot_ns = ballots[0]
        assert sim.restart(2)
        leader = script.elected("a leader")
        assert leader == candidate and len(ballots) == 1
        term = script.term(leader)
        assert sim.votes.get((2, term)) == candidate  # the late member voted in the first ballot
        won = [line for line in lines if f"n{candidate} election CANDIDATE_BALLOT -> LEADER_LOG" in line]
        assert len(won) == 1 and won[0].endswith("unanimous vote"), won
        assert int(won[0].split("us")[0]) * 1_000 - ballot_ns < 250 * MS  # the ballot lasts 500 ms
        script.submit(FINAL_COMMAND)
        script.until(sim.converged, "every member committed the leader's whole log")
        assert sim.violations == []


class _EveryOfferMeetsATermEnd:
    """A consensus publication on which every message first meets the end of a term -- ``ADMIN_ACTION``,
    nothing written, as for the message offered when a term fills and rotates -- and goes on a second
    offer of the same message."""

    def __init__(self, publication: object) -> None:
        self._publication = publication
        self._refused: bytes | None = None
        self.refusals = 0

    def offer(self, payload: bytes) -> int:
        if payload != self._refused:
            self._refused = bytes(payload)
            self.refusals += 1
            return ADMIN_ACTION
        self._refused = None
        return self._publication.offer(payload)  # type: ignore[attr-defined, no-any-return]

    def __getattr__(self, name: str) -> object:
        return getattr(self._publication, name)


def test_a_consensus_message_offered_at_a_term_end_goes_into_the_next_term() -> None:
    """A consensus publication (64 KiB terms) rotates every thousand or so messages, and the message that
    meets the term's end is refused with ADMIN_ACTION: it must be offered again, as the log's appends
    are, not lost. With one follower down, the leader commits on the other's AppendPosition alone, so a
    lost one held the commit back until that follower's next one. Here every message the follower sends
    the leader meets a term end first; the leader must still commit each command."""
    with Script(3, seed=3) as script:
        sim = script.sim
        leader = script.elected("a leader")
        follower, down = sorted({0, 1, 2} - {leader})
        sim.crash(down)
        agent = script.node(follower).agent
        rotating = _EveryOfferMeetsATermEnd(agent._consensus_publications[leader])
        agent._consensus_publications[leader] = rotating  # type: ignore[assignment]
        for command in range(5):
            commit = script.commit(leader)
            script.until(partial(script.offer, command), f"command {command} taken")
            script.until(
                lambda above=commit: script.commit(leader) > above, f"command {command} committed", 50 * MS
            )
        assert rotating.refusals >= 5  # at least one AppendPosition a command met a term end
        assert sim.violations == []
