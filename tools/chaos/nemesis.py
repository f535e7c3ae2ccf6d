"""Nemeses: seeded schedules of faults on a cluster's real node processes, one at a time or two together.

Theory of operation
-------------------
A ``Schedule`` is a ``random.Random(seed)`` that draws the next ``PlannedFault`` on demand: its kind
(one of the kinds asked for), whether it aims at the leader or at a member chosen by number, how long
the cluster stays quiet before it (``gap_s``) and how long it lasts (``duration_s``), and now and then a
follow-up (below). The same seed always draws the same faults; when each fires depends on the real
cluster, since the next fault waits for the previous one to heal.

The ``Nemesis`` runs the faults through four states, driven by ``do_work(now_s)`` from the harness's
loop (it never blocks longer than a ``kill -9`` and its reaping, or a process start):

* ``QUIET``: waiting ``gap_s``; then the fault is injected, aimed at the member that leads now (the
  harness's view of the nodes' status lines) or at member ``choice % nodes``.
* ``FAULTY``: a fault holds; each is healed once its ``duration_s`` is over.
* ``REJOINING``: every fault is healed, and the members are back (restarted, or running again); the
  faults are over when each of their members has printed a status line since its healing, and every
  running member's shows its election done in the leader's term. A restarted member first waits for
  the mark files its killed process left to go stale (up to their 10 s liveness timeout,
  ``tools.node_cmd.await_stale_mark_files``), so a kill lasts at least that. A member that does not
  rejoin within ``REJOIN_TIMEOUT_S`` of the last healing is a violation, and the nemesis stops.
* ``IDLE``: no more faults (``stop_injecting``, or ``heal_all`` at the end of the run).

**Faults together.** ``FOLLOW_SHARE`` of the faults get a *follow-up*: a second fault that joins the
first before the cluster has settled, so that two hold at once -- two members killed (a 3-member
cluster without its quorum), a partition and a pause, a leader killed while another member's clock
leaps. A follow-up fires by time, while the first fault holds (``FOLLOW_AT`` of its duration) -- or,
for half the follow-ups of a kill or a pause, at an **election transition**: the first fault then goes
to the leader, and the follow-up fires at the first other member that says it entered the election
state drawn for it (``TRIGGERS``: a candidate as its ballot opens, a new leader replicating its log, a
follower awaiting the live log), which is where the protocol is most fragile and a clock-driven
schedule reaches only by luck. The follow-up never aims at a member the first fault holds, and two
faults never share the network (one set of rules and relay faults) or the disks (``may_overlap``). One
that finds no moment within ``FOLLOW_WINDOW_S``, or before the cluster has settled again (a drawn state
that this election never enters), is dropped, and the run says so.

The kinds:

* ``kill``: ``kill -9`` of the member's process by its pid (reaped at once, so it leaves no zombie),
  then, after ``duration_s`` (0 to 2 s), a new process on the same configuration and directories.
* ``pause``: SIGSTOP of the member's process, then SIGCONT after 1.25 to 2.5 times the leader heartbeat
  timeout: long enough that a paused leader is deposed while it sleeps, and wakes up believing it
  still leads.
* ``partition``: nftables rules in the members' network namespaces (``tools.chaos.netlab``), for as
  long as a pause, in one of five shapes drawn at random: the member *isolated* from the other members;
  a *split* into a minority holding it and a majority; *one way*, the member not hearing one other
  member, or that member not hearing it (with the leader: the asymmetric partition of a leader from one
  follower); a *bridge*, two halves that cannot reach each other and one member that reaches both;
  or the *clients* cut from it.
* ``loss``: for 2 to 6 s, what arrives at the member, or at every member, from the other members
  suffers one of four faults drawn at random: 5 to 30 % of it *dropped* (an nftables rule; clients'
  packets too); *delayed* 10 to 400 ms (and 0 to 10 ms of jitter); *jittered*, 0 to 5 ms plus 5 to
  100 ms drawn per packet, which reorders it; or 10 to 50 % *duplicated*, every datagram and copy
  held 0 to 10 ms. The last three are the lab's relay's (``tools.chaos.relay``), on every stream
  between members: the log, consensus, catch-up and archive traffic alike.
* ``clock``: the member's own clock jumps (``python -m tools node --clock-file``: the harness writes the
  member's clock file and sends SIGUSR1; the machine's clock is never touched). Half the time its wall
  clock steps 1 to 30 s forward or back, and steps back when healed 1 to 3 s later; half the time its
  monotonic clock leaps 1.25 to 2.5 leader heartbeat timeouts ahead, for good (every timeout it was
  measuring expires at once, as after a long freeze it did not see).

* ``disk``: every byte left on the member's disk taken (``tools.chaos.disks``: each member's directory
  on a size-limited tmpfs of its own) for 1 to 4 s; half the time a snapshot is asked of the leader
  just after, so that the full disk meets a snapshot being written. A member that meets the full disk
  stops with an error naming it (an I/O error ends a node, as it ends Aeron's); that is expected, and
  it is started again on its directories once the space is back. A member that exits for any other
  reason is a violation.

The network kinds need a ``NetLab`` (every member in a namespace of its own; ``loss`` one with a
relay), the disk kind ``MemberDisks``; kill, pause and clock need neither.

Every fault is one line of the fault log (JSON lines, ``FaultRecord.to_record``), written when it is
over.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import random
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Final

from cluster.consensus.core.cluster_actions import ToggleState
from cluster.consensus.core.election import ElectionState
from cluster.consensus.files.control_file import submit_request
from cluster.storage import RealStorage
from tools.chaos.disks import MemberDisks
from tools.chaos.netlab import NetLab, Rule, bridge, cut_clients, isolate, lossy, one_way, split
from tools.chaos.relay import LinkFault
from tools.node_processes import ProcessCluster, describe_exit

__all__ = [
    "KINDS",
    "NETWORK_KINDS",
    "REJOIN_TIMEOUT_S",
    "TRIGGERS",
    "FaultKind",
    "FaultRecord",
    "Nemesis",
    "NemesisState",
    "PlannedFault",
    "Schedule",
    "may_overlap",
]

REJOIN_TIMEOUT_S: Final = 60.0
"""From a fault's healing until its member is back in the leader's term; past it, a violation. A kill's
restart alone can take 11 s (the stale mark files), on a 2-core machine shared with the clients."""
GAP_S: Final = (1.0, 3.0)
KILL_DOWN_S: Final = (0.0, 2.0)
PAUSE_HEARTBEATS: Final = (1.25, 2.5)
"""A pause or a partition lasts this many leader heartbeat timeouts."""
LOSS_S: Final = (2.0, 6.0)
LOSS_PERCENT: Final = (5, 30)
LOSS_MODES: Final = ("drop", "delay", "jitter", "duplicate")
RELAY_MODES: Final = frozenset(LOSS_MODES[1:])
"""The loss modes the lab's relay makes (``drop`` is an nftables rule)."""
DELAY_MS: Final = (10, 400)
DELAY_JITTER_MS: Final = (0, 10)
JITTER_BASE_MS: Final = (0, 5)
JITTER_MS: Final = (5, 100)
DUPLICATE_PERCENT: Final = (10, 50)
DUPLICATE_JITTER_MS: Final = (0, 10)
WALL_JUMP_S: Final = (1.0, 30.0)
DISK_FULL_S: Final = (1.0, 4.0)
DISK_EXIT_GRACE_S: Final = 2.0
"""At the end of a run, how long a member healed of a full disk may take to end, if it met it."""
DISK_FULL_WORDS: Final = ("No space left on device", "ENOSPC", "STORAGE_SPACE")
"""How a member's stderr names a full disk when it stops on one."""
CLOCK_HOLD_S: Final = (1.0, 3.0)
LEADER_SHARE: Final = 0.5  # the share of faults aimed at the leader
SHAPES: Final = ("isolate", "split", "one-way", "bridge", "clients")
FOLLOW_SHARE: Final = 0.4
"""The share of faults that a second fault joins while the first holds."""
TRIGGER_SHARE: Final = 0.5
"""The share of the follow-ups of a kill or a pause fired by an election transition rather than by
time."""
FOLLOW_AT: Final = (0.1, 0.9)
"""A follow-up fired by time: when, as a share of the first fault's duration."""
FOLLOW_WINDOW_S: Final = 15.0
"""How long after the first fault a follow-up may still fire; past it, it is dropped."""
TRIGGERS: Final = tuple(
    state.name for state in ElectionState if state not in (ElectionState.INIT, ElectionState.CLOSED)
)
"""The election states whose entry can fire a follow-up."""


class FaultKind(enum.StrEnum):
    KILL = "kill"
    PAUSE = "pause"
    PARTITION = "partition"
    LOSS = "loss"
    CLOCK = "clock"
    DISK = "disk"


KINDS: Final = tuple(kind.value for kind in FaultKind)
"""The nemesis names ``python -m tools chaos --nemesis`` accepts."""
NETWORK_KINDS: Final = frozenset({FaultKind.PARTITION, FaultKind.LOSS})
"""The kinds made by nftables rules: they need every member in a network namespace (``NetLab``)."""
ELECTION_MAKERS: Final = frozenset({FaultKind.KILL, FaultKind.PAUSE})
"""The kinds that, aimed at the leader, always make an election."""


@dataclass(frozen=True, slots=True)
class PlannedFault:
    """One fault as the schedule drew it; whom it hits is decided when it fires."""

    kind: FaultKind
    at_leader: bool
    choice: int  # the member is ``choice % nodes`` when not aimed at the leader (or none leads)
    gap_s: float
    """The quiet before it; for a follow-up fired by time, how long after the first fault it comes."""
    duration_s: float
    shape: str = ""
    """A partition's shape (``SHAPES``); for loss, "member" or "all"; for a clock, "wall" or "monotonic"."""
    other: int = 0
    """A second draw for the shape: the other member of a one-way partition, the bridge's middle; for a
    clock, the jump (ms for the wall clock, ns for the monotonic one)."""
    percent: int = 100
    mode: str = ""
    """For loss: one of ``LOSS_MODES``."""
    delay_ms: int = 0
    jitter_ms: int = 0
    follow: PlannedFault | None = None
    """A second fault that joins this one while it holds (module docstring, "Faults together")."""
    trigger: str = ""
    """For a follow-up: the election state (``TRIGGERS``) whose entry by a member fires it, at that
    member; "" fires it by time, ``gap_s`` after the first fault."""


def may_overlap(first: FaultKind, second: FaultKind) -> bool:
    """Whether a ``second`` fault may join a ``first`` one: the network holds one set of rules and relay
    faults at a time, and the member disks one full disk."""
    both = {first, second}
    return not (both <= NETWORK_KINDS or both == {FaultKind.DISK})


class Schedule:
    """The seeded sequence of planned faults (module docstring)."""

    def __init__(self, seed: int, kinds: Sequence[FaultKind], heartbeat_timeout_s: float) -> None:
        self.random = random.Random(seed)
        self.kinds = tuple(kinds)
        self.heartbeat_timeout_s = heartbeat_timeout_s

    def next(self) -> PlannedFault | None:
        """The next fault, with a follow-up now and then; ``None`` when the schedule has no kinds (a run
        without faults)."""
        if not self.kinds:
            return None
        rng = self.random
        first = self._draw(rng.choice(self.kinds))
        if rng.random() >= FOLLOW_SHARE:
            return first
        kinds = [kind for kind in self.kinds if may_overlap(first.kind, kind)]
        if not kinds:
            return first
        follow = self._draw(rng.choice(kinds))
        if first.kind in ELECTION_MAKERS and rng.random() < TRIGGER_SHARE:
            # the first fault goes to the leader, which makes the election the follow-up waits for
            follow = replace(follow, trigger=rng.choice(TRIGGERS))
            return replace(first, at_leader=True, follow=follow)
        # by time, while the first still holds
        return replace(first, follow=replace(follow, gap_s=rng.uniform(*FOLLOW_AT) * first.duration_s))

    def _draw(self, kind: FaultKind) -> PlannedFault:
        rng = self.random
        at_leader = rng.random() < LEADER_SHARE
        choice = rng.randrange(1 << 16)
        gap_s = rng.uniform(*GAP_S)
        if kind == FaultKind.KILL:
            return PlannedFault(kind, at_leader, choice, gap_s, rng.uniform(*KILL_DOWN_S))
        if kind == FaultKind.DISK:
            shape = rng.choice(("recording", "snapshot"))
            return PlannedFault(kind, at_leader, choice, gap_s, rng.uniform(*DISK_FULL_S), shape)
        if kind == FaultKind.CLOCK:
            if rng.random() < 0.5:
                jump_ms = round(rng.uniform(*WALL_JUMP_S) * 1000) * rng.choice((1, -1))
                return PlannedFault(
                    kind, at_leader, choice, gap_s, rng.uniform(*CLOCK_HOLD_S), "wall", jump_ms
                )
            leap_ns = round(rng.uniform(*PAUSE_HEARTBEATS) * self.heartbeat_timeout_s * 1e9)
            return PlannedFault(
                kind, at_leader, choice, gap_s, rng.uniform(*CLOCK_HOLD_S), "monotonic", leap_ns
            )
        if kind == FaultKind.LOSS:
            shape = rng.choice(("member", "all"))
            mode = rng.choice(LOSS_MODES)
            duration_s = rng.uniform(*LOSS_S)
            percent, delay_ms, jitter_ms = 100, 0, 0
            if mode == "drop":
                percent = rng.randint(*LOSS_PERCENT)
            elif mode == "delay":
                delay_ms, jitter_ms = rng.randint(*DELAY_MS), rng.randint(*DELAY_JITTER_MS)
            elif mode == "jitter":
                delay_ms, jitter_ms = rng.randint(*JITTER_BASE_MS), rng.randint(*JITTER_MS)
            else:
                percent, jitter_ms = rng.randint(*DUPLICATE_PERCENT), rng.randint(*DUPLICATE_JITTER_MS)
            return PlannedFault(
                kind, at_leader, choice, gap_s, duration_s, shape, 0, percent, mode, delay_ms, jitter_ms
            )
        duration_s = rng.uniform(*PAUSE_HEARTBEATS) * self.heartbeat_timeout_s
        if kind == FaultKind.PAUSE:
            return PlannedFault(kind, at_leader, choice, gap_s, duration_s)
        shape = rng.choice(SHAPES)
        other = rng.randrange(1 << 16) * 2 + (1 if shape == "one-way" and rng.random() < 0.5 else 0)
        return PlannedFault(kind, at_leader, choice, gap_s, duration_s, shape, other)


@dataclass(slots=True)
class FaultRecord:
    """One fault as it happened; times in seconds since the run began."""

    kind: FaultKind
    member: int
    pid: int
    was_leader: bool
    injected_s: float
    healed_s: float | None = None
    rejoined_s: float | None = None
    new_pid: int | None = None
    detail: str = ""
    """What a network fault did, in words ("member 2 isolated from the other members")."""
    rules: tuple[Rule, ...] = ()
    links: tuple[tuple[int, int], ...] = ()
    """The (sender, receiver) links a relay fault holds."""
    during: int | None = None
    """A follow-up: the index, in the run's faults, of the fault it joined."""
    trigger: str = ""
    """A follow-up fired by an election transition: the state its member had just entered."""

    def to_record(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "detail": self.detail,
            "rules": [rule.render() + f" at member {rule.member}" for rule in self.rules],
            "links": [list(link) for link in self.links],
            "member": self.member,
            "pid": self.pid,
            "wasLeader": self.was_leader,
            "injectedS": round(self.injected_s, 3),
            "healedS": None if self.healed_s is None else round(self.healed_s, 3),
            "rejoinedS": None if self.rejoined_s is None else round(self.rejoined_s, 3),
            "newPid": self.new_pid,
            "during": self.during,
            "trigger": self.trigger or None,
        }

    def describe(self) -> str:
        aim = "the leader" if self.was_leader else "a follower"
        if self.kind in NETWORK_KINDS or self.kind in (FaultKind.CLOCK, FaultKind.DISK):
            said = f"{self.kind.value}: {self.detail} (member {self.member} was {aim})"
        else:
            verb = "kill -9" if self.kind == FaultKind.KILL else "SIGSTOP"
            said = f"{verb} member {self.member} ({aim}, pid {self.pid})"
        if self.trigger:
            said += f", as it entered {self.trigger}"
        if self.during is not None:
            said += f", during fault {self.during + 1}"
        return said


class NemesisState(enum.Enum):
    QUIET = 1
    FAULTY = 2
    REJOINING = 3
    IDLE = 4


class Nemesis:
    """Injects the schedule's faults into ``cluster``: one, or one and its follow-up (module docstring)."""

    def __init__(
        self,
        cluster: ProcessCluster,
        schedule: Schedule,
        log_path: Path,
        *,
        now_s: float,
        origin_s: float = 0.0,
        say: Callable[[str], object] = lambda text: None,
        lab: NetLab | None = None,
        clock_files: Sequence[Path] = (),
        disks: MemberDisks | None = None,
    ) -> None:
        """``now_s`` and every later time: seconds since ``origin_s`` on the monotonic clock (what the
        cluster's view stamps its lines with); ``clock_files``: member i's ``--clock-file`` (the clock
        nemesis needs them); ``disks``: the members' small disks (the disk nemesis needs them)."""
        needs_lab = sorted(kind.value for kind in schedule.kinds if kind in NETWORK_KINDS)
        if needs_lab and lab is None:
            raise ValueError(f"the {', '.join(needs_lab)} nemesis needs the members in a NetLab")
        if FaultKind.LOSS in schedule.kinds and lab is not None and lab.relay is None:
            raise ValueError("the loss nemesis needs a NetLab with a relay")
        if FaultKind.CLOCK in schedule.kinds and len(clock_files) != len(cluster.configs):
            raise ValueError("the clock nemesis needs every member started with a --clock-file")
        if FaultKind.DISK in schedule.kinds and disks is None:
            raise ValueError("the disk nemesis needs the members' directories on MemberDisks")
        self.disks = disks
        self.cluster = cluster
        self.lab = lab
        self.origin_s = origin_s
        self.clock_files = list(clock_files)
        self._clock_offsets = [(0, 0)] * len(clock_files)  # (wall ms, monotonic ns) per member, as written
        self._stderr_mark = 0  # the size of the disk fault's member's stderr when its disk filled
        self.schedule = schedule
        self.say = say
        self.nodes = len(cluster.configs)
        self.faults: list[FaultRecord] = []
        self.violations: list[str] = []
        self._planned = schedule.next()
        self.state = NemesisState.QUIET if self._planned is not None else NemesisState.IDLE
        self.reason = "started"
        self._since_s = now_s
        self._active: list[tuple[FaultRecord, PlannedFault]] = []
        self._follow: PlannedFault | None = None  # a follow-up waiting for its moment
        self._follow_from_s = 0.0  # when the fault it joins was injected
        self._log: IO[str] = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 -- closed by close()

    def _transition(self, state: NemesisState, now_s: float, reason: str) -> None:
        self.state = state
        self.reason = reason
        self._since_s = now_s

    @property
    def busy(self) -> bool:
        """A fault is in progress (injected, not yet over)."""
        return self.state in (NemesisState.FAULTY, NemesisState.REJOINING)

    @property
    def down(self) -> set[int]:
        """The members a fault holds down now: they are not expected to run (killed) or answer."""
        return {record.member for record, _ in self._active if record.healed_s is None}

    @property
    def may_exit(self) -> set[int]:
        """The members whose process may end now without a violation: one killed, or one that met a full
        disk (the healing checks why it ended)."""
        members = set()
        for record, _ in self._active:
            held = record.healed_s is None and record.kind in (FaultKind.KILL, FaultKind.DISK)
            # a member that met its full disk just before the space came back may still be closing
            closing = record.healed_s is not None and record.kind == FaultKind.DISK and record.new_pid is None
            if held or closing:
                members.add(record.member)
        return members

    def do_work(self, now_s: float) -> int:
        """One step of the state machine; 1 if something happened."""
        planned = self._planned
        if planned is None or self.state == NemesisState.IDLE:
            return 0
        if self.state == NemesisState.QUIET:
            if now_s - self._since_s < planned.gap_s:
                return 0
            member = self._aim(planned, set())
            if member is None:  # cannot happen while every member runs between faults; stay safe
                self._transition(NemesisState.QUIET, now_s, "no member to aim at")
                return 0
            self._inject(now_s, planned, member)
            self._follow, self._follow_from_s = planned.follow, now_s
            return 1
        work = self._follow_up(now_s)
        for record, planned_fault in self._active:
            if record.healed_s is None and now_s - record.injected_s >= planned_fault.duration_s:
                self._heal(now_s, record)
                work = 1
        if self.state == NemesisState.FAULTY and all(
            record.healed_s is not None for record, _ in self._active
        ):
            self._transition(NemesisState.REJOINING, now_s, "healed")
        if self.state == NemesisState.REJOINING:
            work |= self._await_rejoin(now_s)
        return work

    def _await_rejoin(self, now_s: float) -> int:
        for record, _ in self._active:
            if (
                record.kind == FaultKind.DISK
                and record.new_pid is None
                and self._restart_after_full_disk(record)
            ):
                return 1
        if all(self._rejoined(record.member, record.healed_s or 0.0) for record, _ in self._active):
            if self._follow is not None:
                moment = self._follow.trigger or "its moment"
                self.say(f"no member entered {moment} before the cluster settled: no follow-up")
                self._follow = None
            for record, _ in self._active:
                record.rejoined_s = now_s
                self._finish(record)
                self.say(
                    f"member {record.member} rejoined, {now_s - record.injected_s:.1f} s after the fault"
                )
            self._active = []
            self._planned = self.schedule.next()
            self._transition(NemesisState.QUIET, now_s, "rejoined")
            return 1
        if now_s - self._since_s >= REJOIN_TIMEOUT_S:
            for record, _ in self._active:
                self.violations.append(
                    f"member {record.member} did not rejoin within {REJOIN_TIMEOUT_S:g} s after "
                    f"{record.describe()} was healed at {record.healed_s:.1f} s"
                )
                self._finish(record)
            self._active = []
            self._transition(NemesisState.IDLE, now_s, "a member did not rejoin")
            return 1
        return 0

    def _follow_up(self, now_s: float) -> int:
        """Fire the follow-up if its moment has come: a member entering its trigger state, or its time."""
        follow = self._follow
        if follow is None:
            return 0
        if now_s - self._follow_from_s >= FOLLOW_WINDOW_S:
            self.say(
                f"no member entered {follow.trigger or 'its moment'} within {FOLLOW_WINDOW_S:g} s: "
                "no follow-up"
            )
            self._follow = None
            return 0
        taken = {record.member for record, _ in self._active}
        if follow.trigger:
            member = self._entered(follow.trigger, taken)
        elif now_s - self._follow_from_s >= follow.gap_s:
            member = self._aim(follow, taken)
        else:
            return 0
        if member is None:
            return 0
        self._follow = None
        self._inject(now_s, follow, member, during=len(self.faults) - 1)
        return 1

    def _entered(self, state: str, taken: set[int]) -> int | None:
        """A running member, other than ``taken``, that has said it entered election state ``state``
        since the first fault (the first such, if several)."""
        running = set(self.cluster.running())
        suffix = f" -> {state}:"
        for event in self.cluster.view.events_after(self.origin_s + self._follow_from_s):
            if (
                event.member in running
                and event.member not in taken
                and event.text.startswith("election ")
                and suffix in event.text
            ):
                return event.member
        return None

    def _aim(self, planned: PlannedFault, taken: set[int]) -> int | None:
        """The member a fault is aimed at: the leader if it asks for the leader and one leads, else member
        ``choice % nodes`` -- or the next running member that no fault holds."""
        leader = self.cluster.leader()
        running = set(self.cluster.running())
        first = leader.member if planned.at_leader and leader is not None else planned.choice % self.nodes
        for step in range(self.nodes):
            member = (first + step) % self.nodes
            if member in running and member not in taken:
                return member
        return None

    def _rejoined(self, member: int, healed_s: float) -> bool:
        """Member ``member`` has spoken since it healed, and every running member's last word is that
        its election is done in the highest term any of them names, which one of them leads. (A
        resumed leader's first lines can still say it leads an old term: the highest term decides.)"""
        statuses = self.cluster.view.statuses()
        status = statuses.get(member)
        if status is None or status.received_s - self.origin_s < healed_s:
            return False
        running = [statuses.get(m) for m in self.cluster.running()]
        known = [s for s in running if s is not None]
        if len(known) != len(running):
            return False
        top = max(s.term for s in known)
        return all(s.state == "CLOSED" and s.term == top for s in known) and any(s.is_leading for s in known)

    def _inject(self, now_s: float, planned: PlannedFault, member: int, during: int | None = None) -> None:
        leader = self.cluster.leader()
        process = self.cluster.processes[member]
        record = FaultRecord(
            planned.kind,
            member,
            process.pid,
            leader is not None and leader.member == member,
            now_s,
            during=during,
            trigger=planned.trigger,
        )
        if planned.kind == FaultKind.KILL:
            self.cluster.kill(member)
        elif planned.kind == FaultKind.PAUSE:
            os.kill(process.pid, signal.SIGSTOP)
        elif planned.kind == FaultKind.DISK:
            assert self.disks is not None
            path = self.cluster.stderr_path(member)
            self._stderr_mark = path.stat().st_size if path.exists() else 0
            taken = self.disks.fill(member)
            record.detail = f"member {member}'s disk full ({taken:,} bytes taken)"
            if planned.shape == "snapshot" and leader is not None:
                submit_request(
                    RealStorage(Path(self.cluster.configs[leader.member].cluster_dir)), ToggleState.SNAPSHOT
                )
                record.detail += f", and a snapshot asked of member {leader.member}"
        elif planned.kind == FaultKind.CLOCK:
            wall_ms, nanos = self._clock_offsets[member]
            if planned.shape == "wall":
                wall_ms += planned.other
                record.detail = f"member {member}'s wall clock stepped {planned.other / 1000:+.1f} s"
            else:
                nanos += planned.other
                record.detail = f"member {member}'s monotonic clock leapt {planned.other / 1e9:.1f} s ahead"
            self._move_clock(member, wall_ms, nanos)
        else:
            assert self.lab is not None
            if planned.kind == FaultKind.LOSS and planned.mode in RELAY_MODES:
                record.detail, links = relay_fault(self.lab, planned, member)
                record.links = tuple(sorted(links))
                self.lab.set_link_faults(links)
            else:
                record.detail, rules = network_fault(self.lab, planned, member)
                record.rules = tuple(rules)
                self.lab.apply(rules)
        self.faults.append(record)
        self._active.append((record, planned))
        self.say(f"{record.describe()} for {planned.duration_s:.1f} s")
        self._transition(NemesisState.FAULTY, now_s, "injected")

    def _heal(self, now_s: float, record: FaultRecord) -> None:
        if record.kind == FaultKind.KILL:
            record.new_pid = self._start(record.member)
            self.say(f"restarted member {record.member} on its directories (pid {record.new_pid})")
        elif record.kind in NETWORK_KINDS:
            assert self.lab is not None
            self.lab.heal()
            self.say("the network healed: every rule removed")
        elif record.kind == FaultKind.DISK:
            assert self.disks is not None
            self.disks.free(record.member)
            if not self._restart_after_full_disk(record):
                self.say(f"member {record.member}'s disk has its space back")
        elif record.kind == FaultKind.CLOCK:
            wall_ms, nanos = self._clock_offsets[record.member]
            if wall_ms != 0:
                self._move_clock(record.member, 0, nanos)
                self.say(f"member {record.member}'s wall clock stepped back to the machine's")
            else:
                self.say(f"member {record.member}'s monotonic clock stays ahead (it cannot go back)")
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGCONT)
            self.say(f"SIGCONT member {record.member} (pid {record.pid})")
        record.healed_s = now_s

    def _restart_after_full_disk(self, current: FaultRecord) -> bool:
        """If the disk fault's member has ended: start it again -- a violation unless it ended on the full
        disk (its stderr says so since the disk filled). Whether it had ended."""
        process = self.cluster.processes[current.member]
        status = process.poll()
        if status is None:
            return False
        self.cluster.stop(current.member)  # reaped already; this closes its pipes
        said = self._last_words(current.member)
        current.new_pid = self._start(current.member)
        if status != 0 and any(word in said for word in DISK_FULL_WORDS):
            current.detail += f"; it stopped on the full disk ({describe_exit(status)}) and was restarted"
            self.say(
                f"member {current.member} had stopped on the full disk; with its space back it runs again "
                f"(pid {current.new_pid})"
            )
        else:
            self.violations.append(
                f"member {current.member} ended during {current.describe()}, not on the full disk: "
                f"{describe_exit(status)}; stderr ends: {said[-300:]!r}"
            )
        return True

    def _start(self, member: int) -> int:
        """Start member ``member`` again on its directories (a new process: the machine's clock); its pid."""
        if self._clock_offsets:
            self._clock_offsets[member] = (0, 0)
        return self.cluster.start(member).pid

    def _last_words(self, member: int) -> str:
        """What member ``member`` wrote on stderr since its disk filled (its last 4 KiB at most)."""
        path = self.cluster.stderr_path(member)
        try:
            with open(path, "rb") as file:
                file.seek(max(self._stderr_mark, path.stat().st_size - 4096))
                return file.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _move_clock(self, member: int, wall_ms: int, nanos: int) -> None:
        """Write member ``member`` 's clock file (whole, then renamed over) and signal it to read it."""
        path = self.clock_files[member]
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"epochOffsetMs": wall_ms, "nanoOffsetNs": nanos}), encoding="utf-8")
        temporary.replace(path)
        self._clock_offsets[member] = (wall_ms, nanos)
        process = self.cluster.processes[member]
        if process.is_running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGUSR1)

    def _finish(self, record: FaultRecord) -> None:
        self._log.write(json.dumps(record.to_record()) + "\n")
        self._log.flush()

    def stop_injecting(self, now_s: float) -> None:
        """No new fault; one in progress runs to its end."""
        if self.state == NemesisState.QUIET:
            self._transition(NemesisState.IDLE, now_s, "stopped")

    def heal_all(self, now_s: float) -> None:
        """End the faults in progress now (restart or resume their members); no new fault after them.
        The caller waits for every member to rejoin."""
        self._follow = None
        for record, _ in self._active:
            if record.healed_s is None:
                self._heal(now_s, record)
        for record, _ in self._active:
            if record.kind == FaultKind.DISK and record.new_pid is None:
                # no later look: a member that met the full disk just before it was freed may still be
                # closing, and must be started again once it has ended
                process = self.cluster.processes[record.member]
                process.wait(DISK_EXIT_GRACE_S)
                self._restart_after_full_disk(record)
            self._finish(record)
        self._active = []
        self._transition(NemesisState.IDLE, now_s, "healed at the end")

    def resume_everything(self) -> None:
        """SIGCONT to every member process (a cleanup that never hurts: a stopped process cannot even
        take SIGTERM until it runs again)."""
        for process in self.cluster.processes.values():
            if process.is_running:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGCONT)

    def close(self) -> None:
        self._log.close()


def relay_fault(
    lab: NetLab, planned: PlannedFault, member: int
) -> tuple[str, dict[tuple[int, int], LinkFault]]:
    """The relay's faults of a delay, jitter or duplication aimed at ``member`` (every link into it, or
    with shape "all" every link), and what they do in words."""
    nodes = lab.members
    receivers = range(nodes) if planned.shape == "all" else [member]
    if planned.mode == "duplicate":
        fault = LinkFault(0.0, float(planned.jitter_ms), planned.percent)
    else:
        fault = LinkFault(float(planned.delay_ms), float(planned.jitter_ms))
    links = {
        (sender, receiver): fault for receiver in receivers for sender in range(nodes) if sender != receiver
    }
    where = "every member" if planned.shape == "all" else f"member {member}"
    return f"the packets from other members arriving at {where} {fault.describe()}", links


def network_fault(lab: NetLab, planned: PlannedFault, member: int) -> tuple[str, list[Rule]]:
    """The rules of a partition or a loss aimed at ``member``, and what they do in words."""
    nodes = lab.members
    others = [m for m in range(nodes) if m != member]
    if planned.kind == FaultKind.LOSS:
        if planned.shape == "all":
            return f"{planned.percent}% of the packets arriving at every member lost", lossy(
                lab, range(nodes), planned.percent
            )
        return f"{planned.percent}% of the packets arriving at member {member} lost", lossy(
            lab, [member], planned.percent
        )
    if not others:
        return "nothing to partition from a single member", []
    shape = planned.shape
    peer = others[(planned.other >> 1) % len(others)]
    if shape == "isolate" or (shape == "split" and nodes < 5):
        return f"member {member} isolated from the other members", isolate(lab, member)
    if shape == "split":  # a minority of (nodes - 1) // 2 members: the one aimed at, and others after peer
        start = others.index(peer)
        side = sorted([member, *(others[start:] + others[:start])[: (nodes - 1) // 2 - 1]])
        rest = [m for m in range(nodes) if m not in side]
        return f"members {side} split from members {rest}", split(lab, side)
    if shape == "one-way":
        if planned.other & 1:
            return f"member {peer} cannot hear member {member}", one_way(lab, member, peer)
        return f"member {member} cannot hear member {peer}", one_way(lab, peer, member)
    if shape == "bridge":
        if nodes < 3:
            return f"member {member} isolated from the other members", isolate(lab, member)
        middle = peer  # the member aimed at is in one half
        others = [m for m in range(nodes) if m != middle]
        half, rest = others[: len(others) // 2], others[len(others) // 2 :]
        return (
            f"a bridge: members {half} and members {rest} cannot reach each other, member {middle} reaches "
            "both",
            bridge(lab, middle),
        )
    return f"the clients cut from member {member}", cut_clients(lab, [member])
