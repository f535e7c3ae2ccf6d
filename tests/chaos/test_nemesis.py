"""The nemesis's state machine on a fake cluster (no processes): a fault and its follow-up held together,
a follow-up fired by a member entering an election state, one dropped when the cluster settles first,
and a member counted back only once it has spoken since its healing."""

from __future__ import annotations

import json
import signal
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tools.chaos import nemesis as nemesis_module
from tools.chaos.nemesis import (
    ELECTION_MAKERS,
    FOLLOW_WINDOW_S,
    NETWORK_KINDS,
    REJOIN_TIMEOUT_S,
    TRIGGERS,
    FaultKind,
    Nemesis,
    NemesisState,
    PlannedFault,
    Schedule,
    may_overlap,
)
from tools.node_processes import NodeEvent, NodeStatus

ORIGIN_S = 5_000.0  # the harness's monotonic origin: the view's times are this far from the nemesis's


@dataclass
class FakeProcess:
    pid: int
    is_running: bool = True

    def poll(self) -> int | None:
        return None if self.is_running else -9

    def wait(self, timeout_s: float) -> int | None:
        return self.poll()


@dataclass
class FakeView:
    status_lines: dict[int, NodeStatus] = field(default_factory=dict)
    said: list[NodeEvent] = field(default_factory=list)

    def statuses(self) -> dict[int, NodeStatus]:
        return dict(self.status_lines)

    def events_after(self, since_s: float) -> list[NodeEvent]:
        return [event for event in self.said if event.received_s >= since_s]


class FakeCluster:
    """What the nemesis uses of a ``ProcessCluster``: members that print what the test says."""

    def __init__(self, nodes: int) -> None:
        self.configs = [object()] * nodes
        self.processes = {member: FakeProcess(100 + member) for member in range(nodes)}
        self.view = FakeView()
        self.next_pid = 200
        self.started: list[int] = []

    def running(self) -> list[int]:
        return [member for member, process in self.processes.items() if process.is_running]

    def leader(self) -> NodeStatus | None:
        leaders = [status for status in self.view.statuses().values() if status.is_leading]
        return max(leaders, key=lambda status: status.term, default=None)

    def kill(self, member: int) -> int:
        self.processes[member].is_running = False
        self.view.status_lines.pop(member, None)
        return -9

    def start(self, member: int) -> FakeProcess:
        self.next_pid += 1
        self.processes[member] = FakeProcess(self.next_pid)
        self.started.append(member)
        return self.processes[member]

    def stderr_path(self, member: int) -> Path:
        return Path("/nonexistent")

    def status(self, member: int, role: str, term: int, at_s: float, state: str = "CLOSED") -> None:
        self.view.status_lines[member] = NodeStatus(member, role, state, term, 0, 0, ORIGIN_S + at_s)

    def settle(self, leader: int, term: int, at_s: float) -> None:
        """Every running member says it is done with its election in ``term``, ``leader`` leading."""
        for member in self.running():
            self.status(member, "LEADER" if member == leader else "FOLLOWER", term, at_s)

    def event(self, member: int, text: str, at_s: float) -> None:
        self.view.said.append(NodeEvent(member, 0, text, ORIGIN_S + at_s))


class FixedSchedule:
    """A ``Schedule`` that draws the faults a test gives it, then none."""

    def __init__(self, faults: Iterable[PlannedFault]) -> None:
        self.faults: Iterator[PlannedFault] = iter(list(faults))
        self.kinds = tuple({FaultKind.KILL, FaultKind.PAUSE})

    def next(self) -> PlannedFault | None:
        return next(self.faults, None)


@pytest.fixture
def signals(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The signals the nemesis sends (to the fake members' pids, which no process has)."""
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(
        nemesis_module, "os", types.SimpleNamespace(kill=lambda pid, sig: sent.append((pid, sig)))
    )
    return sent


def _nemesis(cluster: FakeCluster, faults: Iterable[PlannedFault], tmp_path: Path) -> Nemesis:
    said: list[str] = []
    nemesis = Nemesis(
        cluster,  # type: ignore[arg-type]
        FixedSchedule(faults),  # type: ignore[arg-type]
        tmp_path / "faults.jsonl",
        now_s=0.0,
        origin_s=ORIGIN_S,
        say=said.append,
    )
    nemesis.said = said  # type: ignore[attr-defined]
    return nemesis


def _state(nemesis: Nemesis) -> NemesisState:
    return nemesis.state  # read through a call: each do_work may change it


def _kill(
    at_leader: bool, choice: int = 0, gap_s: float = 1.0, duration_s: float = 1.0, **more: object
) -> PlannedFault:
    return PlannedFault(FaultKind.KILL, at_leader, choice, gap_s, duration_s, **more)  # type: ignore[arg-type]


def _pause(
    at_leader: bool, choice: int = 0, gap_s: float = 1.0, duration_s: float = 4.0, **more: object
) -> PlannedFault:
    return PlannedFault(FaultKind.PAUSE, at_leader, choice, gap_s, duration_s, **more)  # type: ignore[arg-type]


def test_a_follow_up_by_time_holds_a_second_member_while_the_first_is_down(
    tmp_path: Path, signals: list[tuple[int, int]]
) -> None:
    cluster = FakeCluster(3)
    cluster.settle(leader=0, term=1, at_s=0.0)
    follow = _pause(at_leader=False, choice=0, gap_s=0.5, duration_s=3.0)  # choice 0 is taken: the next
    nemesis = _nemesis(cluster, [_kill(at_leader=True, duration_s=2.0, follow=follow)], tmp_path)

    nemesis.do_work(1.0)
    assert _state(nemesis) == NemesisState.FAULTY
    assert cluster.running() == [1, 2]
    nemesis.do_work(1.4)
    assert len(nemesis.faults) == 1  # not yet
    nemesis.do_work(1.5)
    assert [(f.kind, f.member, f.during) for f in nemesis.faults] == [
        (FaultKind.KILL, 0, None),
        (FaultKind.PAUSE, 1, 0),
    ]
    assert signals[-1][0] == 101  # member 1's pid, stopped
    assert nemesis.down == {0, 1}
    assert nemesis.may_exit == {0}  # a paused member may not exit; a killed one may

    nemesis.do_work(3.0)  # the kill is over: member 0 restarted; the pause still holds
    assert cluster.started == [0]
    assert _state(nemesis) == NemesisState.FAULTY
    assert nemesis.down == {1}
    nemesis.do_work(4.5)  # the pause is over too
    assert _state(nemesis) == NemesisState.REJOINING
    assert nemesis.down == set()

    cluster.settle(leader=2, term=2, at_s=4.0)  # said before the pause was healed: not back yet
    nemesis.do_work(4.6)
    assert _state(nemesis) == NemesisState.REJOINING
    cluster.settle(leader=2, term=2, at_s=4.7)
    nemesis.do_work(4.8)
    assert _state(nemesis) == NemesisState.QUIET
    records = [json.loads(line) for line in (tmp_path / "faults.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["during"], r["rejoinedS"]) for r in records] == [
        ("kill", None, 4.8),
        ("pause", 0, 4.8),
    ]


def test_a_follow_up_fires_at_the_member_that_enters_its_election_state(
    tmp_path: Path, signals: list[tuple[int, int]]
) -> None:
    cluster = FakeCluster(3)
    cluster.settle(leader=1, term=4, at_s=0.0)
    cluster.event(2, "election CANVASS -> CANDIDATE_BALLOT: nomination delay over", at_s=0.5)  # before
    follow = _kill(at_leader=False, choice=2, trigger="CANDIDATE_BALLOT")
    nemesis = _nemesis(cluster, [_pause(at_leader=True, follow=follow)], tmp_path)

    nemesis.do_work(1.0)
    assert [f.member for f in nemesis.faults] == [1]
    cluster.event(1, "election CANVASS -> CANDIDATE_BALLOT: x", at_s=1.5)  # the member held: ignored
    cluster.event(0, "election CANVASS -> NOMINATE: unanimous candidate", at_s=2.0)  # another state
    nemesis.do_work(2.1)
    assert len(nemesis.faults) == 1
    cluster.event(0, "election NOMINATE -> CANDIDATE_BALLOT: nomination delay over", at_s=2.2)
    nemesis.do_work(2.3)
    second = nemesis.faults[1]
    assert (second.kind, second.member, second.trigger, second.during) == (
        FaultKind.KILL,
        0,
        "CANDIDATE_BALLOT",
        0,
    )
    assert "as it entered CANDIDATE_BALLOT, during fault 1" in second.describe()
    assert cluster.running() == [1, 2] and signals == [(101, signal.SIGSTOP)]
    assert nemesis.down == {0, 1}  # one paused, one killed: the cluster has no quorum


def test_a_follow_up_whose_moment_never_comes_is_dropped(
    tmp_path: Path, signals: list[tuple[int, int]]
) -> None:
    cluster = FakeCluster(3)
    cluster.settle(leader=0, term=1, at_s=0.0)
    follow = _kill(at_leader=False, trigger="LEADER_REPLAY")
    nemesis = _nemesis(cluster, [_pause(at_leader=False, choice=2, duration_s=2.0, follow=follow)], tmp_path)
    nemesis.do_work(1.0)
    nemesis.do_work(3.0)  # healed; a follower's pause called no election
    cluster.settle(leader=0, term=1, at_s=3.1)
    nemesis.do_work(3.2)
    assert _state(nemesis) == NemesisState.QUIET
    assert len(nemesis.faults) == 1
    assert any("no follow-up" in line for line in nemesis.said)  # type: ignore[attr-defined]

    cluster = FakeCluster(3)  # and a window that runs out while the first fault still holds
    cluster.settle(leader=0, term=1, at_s=0.0)
    long_pause = _pause(at_leader=False, choice=2, duration_s=FOLLOW_WINDOW_S + 5, follow=follow)
    nemesis = _nemesis(cluster, [long_pause], tmp_path)
    nemesis.do_work(1.0)
    nemesis.do_work(1.0 + FOLLOW_WINDOW_S)
    cluster.event(1, "election FOLLOWER_BALLOT -> LEADER_REPLAY: x", at_s=2.0 + FOLLOW_WINDOW_S)
    nemesis.do_work(2.5 + FOLLOW_WINDOW_S)
    assert len(nemesis.faults) == 1


def test_a_member_is_back_only_once_it_has_spoken_since_its_healing(
    tmp_path: Path, signals: list[tuple[int, int]]
) -> None:
    cluster = FakeCluster(3)
    cluster.settle(leader=0, term=1, at_s=0.0)
    nemesis = _nemesis(cluster, [_pause(at_leader=False, choice=2, duration_s=3.0)], tmp_path)
    nemesis.do_work(1.0)
    nemesis.do_work(4.0)
    assert _state(nemesis) == NemesisState.REJOINING
    for now_s in (4.1, 10.0):  # its last line, from before the pause, says all is well: not enough
        nemesis.do_work(now_s)
        assert _state(nemesis) == NemesisState.REJOINING
    cluster.status(2, "FOLLOWER", 1, at_s=10.5)
    nemesis.do_work(10.6)
    assert _state(nemesis) == NemesisState.QUIET
    assert nemesis.faults[0].rejoined_s == 10.6


def test_the_schedule_draws_follow_ups_that_may_hold_together() -> None:
    kinds = tuple(FaultKind)
    schedule, again = Schedule(7, kinds, 2.0), Schedule(7, kinds, 2.0)
    faults = [schedule.next() for _ in range(2000)]
    assert [again.next() for _ in range(2000)] == faults
    follows = [(fault, fault.follow) for fault in faults if fault is not None and fault.follow is not None]
    assert 600 < len(follows) < 1000  # about 40 %
    triggered = [pair for pair in follows if pair[1].trigger]
    assert {first.kind for first, _ in triggered} == ELECTION_MAKERS
    makers = [pair for pair in follows if pair[0].kind in ELECTION_MAKERS]
    assert 0.35 < len(triggered) / len(makers) < 0.65  # half of a kill's or a pause's follow-ups
    assert {follow.trigger for _, follow in triggered} == set(TRIGGERS)
    for first, follow in follows:
        assert may_overlap(first.kind, follow.kind)
        assert not (first.kind in NETWORK_KINDS and follow.kind in NETWORK_KINDS)
        assert follow.follow is None
        if follow.trigger:
            assert first.at_leader  # its election is what the follow-up waits for
        else:  # by time, while the first fault still holds
            assert 0 < follow.gap_s < first.duration_s
    assert {(first.kind, follow.kind) for first, follow in follows} >= {
        (FaultKind.KILL, FaultKind.KILL),
        (FaultKind.PARTITION, FaultKind.PAUSE),
        (FaultKind.LOSS, FaultKind.CLOCK),
        (FaultKind.DISK, FaultKind.KILL),
    }
    assert "INIT" not in TRIGGERS and "CLOSED" not in TRIGGERS
    only_network = Schedule(7, (FaultKind.PARTITION,), 2.0)
    assert all(fault.follow is None for fault in (only_network.next() for _ in range(100)) if fault)


def test_healing_everything_at_the_end_ends_both_faults_and_drops_a_waiting_follow_up(
    tmp_path: Path, signals: list[tuple[int, int]]
) -> None:
    cluster = FakeCluster(3)
    cluster.settle(leader=0, term=1, at_s=0.0)
    waiting = _kill(at_leader=False, trigger="LEADER_REPLAY")
    nemesis = _nemesis(cluster, [_pause(at_leader=True, duration_s=30.0, follow=waiting)], tmp_path)
    nemesis.do_work(1.0)
    nemesis.heal_all(2.0)
    assert _state(nemesis) == NemesisState.IDLE
    assert signals == [(100, signal.SIGSTOP), (100, signal.SIGCONT)]  # paused, then resumed
    cluster.event(1, "election FOLLOWER_BALLOT -> LEADER_REPLAY: x", at_s=2.5)
    assert nemesis.do_work(3.0) == 0 and len(nemesis.faults) == 1  # the follow-up is gone
    assert len((tmp_path / "faults.jsonl").read_text().splitlines()) == 1


def test_a_member_not_back_within_the_rejoin_timeout_of_the_last_healing_is_a_violation(
    tmp_path: Path, signals: list[tuple[int, int]]
) -> None:
    cluster = FakeCluster(3)
    cluster.settle(leader=0, term=1, at_s=0.0)
    follow = _pause(at_leader=False, choice=1, gap_s=0.5, duration_s=20.0)
    nemesis = _nemesis(cluster, [_kill(at_leader=True, duration_s=1.0, follow=follow)], tmp_path)
    nemesis.do_work(1.0)
    nemesis.do_work(1.5)  # the pause of member 1 joins the kill of member 0
    nemesis.do_work(2.0)  # member 0 restarted
    nemesis.do_work(21.5)  # the pause healed: the last healing
    assert _state(nemesis) == NemesisState.REJOINING
    nemesis.do_work(21.5 + REJOIN_TIMEOUT_S - 1)  # counted from the last healing, not the first
    assert nemesis.violations == []
    nemesis.do_work(21.5 + REJOIN_TIMEOUT_S)
    assert _state(nemesis) == NemesisState.IDLE
    assert [v.split(" did not rejoin")[0] for v in nemesis.violations] == ["member 0", "member 1"]
