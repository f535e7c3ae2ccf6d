"""More of Aeron's ClusterTest scenarios (docs/clustertest-map.md, "To do: not covered yet"), scripted on
real cluster nodes in the node simulator: an invalid admin request, a shutdown that cannot wait for a
member that is down, a follower catching up under messages longer than a frame, and five members of
which two rejoin several terms behind. Each test names the Aeron scenario it covers.

As in ``test_clustertest_scenarios.py``: a "stopped" member is a killed process
(``NodeSimulator.crash``), a member "started clean" one whose disk was replaced by an empty one while it
was down (``NodeSimulator.wipe``), and the whole cluster is stopped through the leader's control file,
as the admin tool asks.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar

import pytest
from support.kv_script import (
    agreed,
    expected_store,
    is_closed,
    offer,
    replies,
    send_writes,
    snapshot_positions,
    store_of,
    write_all,
)
from support.node_script import MS, Script

from cluster.client.aeron_cluster import AeronCluster
from cluster.client.protocol import AdminResponse
from cluster.cluster_counters import SERVICE_MAX_SNAPSHOT_DURATION_TYPE_ID as SERVICE_LONGEST
from cluster.cluster_counters import SERVICE_SNAPSHOT_DURATION_THRESHOLD_EXCEEDED_TYPE_ID as SERVICE_EXCEEDED
from cluster.cluster_counters import TOTAL_MAX_SNAPSHOT_DURATION_TYPE_ID as TOTAL_LONGEST
from cluster.cluster_counters import TOTAL_SNAPSHOT_DURATION_THRESHOLD_EXCEEDED_TYPE_ID as TOTAL_EXCEEDED
from cluster.consensus.core.cluster_actions import ModuleState, ToggleState
from cluster.consensus.files import RecordingLogFile
from cluster.consensus.node_sim import NodeSimulator
from cluster.messages import pack
from cluster.service.api import Cluster
from cluster.service.kv import KeyValueService, encode_write
from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.publication import Publication
from generated import aeron_cluster_codecs as codecs

HEARTBEAT_TIMEOUT_NS = 2_000 * MS  # the simulator's cluster.leader.heartbeat.timeout
ADMIN_CLIENT_HOST = "10.0.0.150"


# ------------------------------------------------------------------------------------- admin requests


class AllowAdminRequestsAndRecord:
    """An authorisation service that allows every AdminRequest (and BackupQuery, as the default does),
    and records what it is asked about an AdminRequest. Named by ``cluster.authorisation.service.supplier``
    as ``test_clustertest_scenarios_more:AllowAdminRequestsAndRecord``."""

    asked: ClassVar[list[tuple[int, int, object]]] = []  # (protocol id, action id, type), every member

    def is_authorised(
        self, protocol_id: int, action_id: int, type_: object, encoded_principal: bytes
    ) -> bool:
        if action_id == codecs.AdminRequestEncoder.TEMPLATE_ID:
            AllowAdminRequestsAndRecord.asked.append((protocol_id, action_id, type_))
        return protocol_id == codecs.SCHEMA_ID and action_id in (
            codecs.AdminRequestEncoder.TEMPLATE_ID,
            codecs.BackupQueryEncoder.TEMPLATE_ID,
        )


def _admin_request(term: int, session_id: int, correlation_id: int, request_type: int) -> bytes:
    return pack(
        codecs.AdminRequestEncoder,
        {"payload": b""},
        leadership_term_id=term,
        cluster_session_id=session_id,
        correlation_id=correlation_id,
        request_type=request_type,
    )


def _offered(publication: Publication, message: bytes) -> bool:
    return publication.offer(message) > 0


def test_an_admin_request_of_an_unknown_type_is_answered_error_and_nothing_is_done() -> None:
    """shouldRejectAnInvalidAdminRequest: with an authorisation service that allows every admin
    request, a request of an unknown type -- Aeron's NULL_VAL, and 7 -- is still put to the
    authorisation service, then answered ERROR naming the type, and no member snapshots (watched for two
    leader heartbeat timeouts). A request naming a term that is not the
    leader's, or a session that is not open, is no request of an open session: it is dropped unanswered,
    the authorisation service not asked. Then a valid SNAPSHOT request is answered OK and every member
    does snapshot, at one position -- what the "nothing done" check would have seen."""
    AllowAdminRequestsAndRecord.asked = []
    settings = {"cluster.authorisation.service.supplier": f"{__name__}:AllowAdminRequestsAndRecord"}
    with Script(3, service=KeyValueService, seed=21, settings=settings) as script:
        sim = script.sim
        leader = script.elected()
        write_all(script, range(5))
        # a seed of its own: with the simulator's client's seed its publications would take the same
        # session ids, and the leader's ingress would take the two clients' streams for one
        transport = Transport(sim.network, TransportConfig(bind_host=ADMIN_CLIENT_HOST, seed=1021))
        endpoints = ",".join(f"{c.member_id}={c.member.ingress}" for c in sim.configs)
        session = AeronCluster.begin_connect(
            transport, egress_channel=f"aeron:udp?endpoint={ADMIN_CLIENT_HOST}:0", ingress_endpoints=endpoints
        )
        script.after_step = transport.do_work
        script.until(session.poll_connect, "the admin client's session open")
        assert session.leader_member_id == leader
        term, session_id = session.leadership_term_id, session.cluster_session_id
        events: list[object] = []

        def answered(count: int) -> bool:
            session.poll_egress(events.append)
            return len(events) >= count

        # a raw ingress publication of its own to the leader, for requests the client would not send
        config = sim.configs[leader]
        raw = transport.add_publication(
            f"{config.ingress_channel}?endpoint={config.member.ingress}", config.ingress_stream_id
        )
        script.until(lambda: raw.is_connected, "the raw ingress connected")
        null = codecs.AdminRequestType.NULL_VALUE
        snapshot = codecs.AdminRequestType.SNAPSHOT
        for request in (
            _admin_request(term - 1, session_id, 1, snapshot),  # a term that is not the leader's
            _admin_request(term, session_id + 1000, 2, snapshot),  # no such session
            _admin_request(term, session_id, 3, null),  # Aeron's: NULL_VAL
        ):
            script.until(partial(_offered, raw, request), "a raw request taken")
        script.until(partial(answered, 1), "an answer to the NULL_VAL request")
        script.until(lambda: session.send_admin_request(4, request_type=7), "request type 7 sent")
        script.until(partial(answered, 2), "an answer to the type 7 request")
        script.run(2 * HEARTBEAT_TIMEOUT_NS)
        session.poll_egress(events.append)
        error = codecs.AdminResponseCode.ERROR
        assert events == [
            AdminResponse(3, null, error, f"unknown admin request type {null}", b""),
            AdminResponse(4, 7, error, "unknown admin request type 7", b""),
        ]
        admin = (codecs.SCHEMA_ID, codecs.AdminRequestEncoder.TEMPLATE_ID)
        assert AllowAdminRequestsAndRecord.asked == [(*admin, null), (*admin, 7)]
        assert [snapshot_positions(script, member) for member in range(3)] == [[], [], []]
        assert {script.node(m).agent.core.module_state for m in range(3)} == {ModuleState.ACTIVE}
        assert script.leader_id() == leader and script.term(leader) == term  # nothing else happened

        script.until(lambda: session.send_admin_request(5), "a SNAPSHOT request sent")
        script.until(partial(answered, 3), "an answer to the SNAPSHOT request")
        assert events[2] == AdminResponse(5, snapshot, codecs.AdminResponseCode.OK, "", b"")
        script.until(
            lambda: all(snapshot_positions(script, member) for member in range(3)), "a snapshot everywhere"
        )
        assert len({tuple(snapshot_positions(script, member)) for member in range(3)}) == 1
        assert AllowAdminRequestsAndRecord.asked[2:] == [(*admin, snapshot)]
        session.close()
        raw.close()
        write_all(script, range(5, 10))
        assert agreed(script) == expected_store(range(10))


# ------------------------------------------------------------------------------------------ termination

DEFAULT_TERMINATION_TIMEOUT_NS = 10_000 * MS  # cluster.termination.timeout: Aeron's default, and ours
SHORT_TERMINATION_TIMEOUT_NS = 1_000 * MS  # shorter than the simulator's leader heartbeat timeout (2 s)


class _TerminatedService(KeyValueService):
    terminated: ClassVar[list[int]] = []  # member ids whose service heard on_terminate

    def on_terminate(self, cluster: Cluster) -> None:
        _TerminatedService.terminated.append(cluster.member_id)


def _snapshots_on_disk(sim: NodeSimulator, member: int) -> list[int]:
    """The log positions of the consensus-module snapshots a stopped member's recording log names."""
    log = RecordingLogFile.read(sim.members[member].disk.storage("cluster")).log
    return [entry.log_position for entry in log.entries if entry.is_snapshot and entry.service_id == -1]


@pytest.mark.parametrize(
    ("action", "timeout_ns"),
    [
        pytest.param(ToggleState.ABORT, SHORT_TERMINATION_TIMEOUT_NS, id="abort-1s"),
        pytest.param(ToggleState.SHUTDOWN, SHORT_TERMINATION_TIMEOUT_NS, id="shutdown-1s"),
        # longer than the leader heartbeat timeout: the leader must not leave for an election on losing
        # its quorum while it waits for the TerminationAck that will not come (a bug this case found)
        pytest.param(ToggleState.ABORT, DEFAULT_TERMINATION_TIMEOUT_NS, id="abort-default-10s"),
    ],
)
def test_a_member_that_is_down_is_waited_for_only_until_the_termination_timeout(
    action: ToggleState, timeout_ns: int
) -> None:
    """shouldAbortClusterOnTerminationTimeout: one follower is killed, the client's writes go on with
    the other two, then the cluster is aborted (or shut down: the two running members snapshot first).
    The follower that runs stops at once, at the position the leader named; the leader never gets the
    killed member's TerminationAck and goes on leading, waiting for it, until the termination timeout
    has passed -- then it stops too, at the same position, saying whose TerminationAck it missed. Both
    services hear ``on_terminate``; the killed member is not counted as terminated. Started again, all
    three -- the killed one missed the writes -- elect a leader and agree.

    With the default timeout (10 s) the leader outlives its followers' heartbeat timeout (2 s in the
    simulator) while it waits: it must not leave for an election then."""
    _TerminatedService.terminated = []
    settings = {"cluster.termination.timeout": f"{timeout_ns // MS}ms"}
    with Script(3, service=_TerminatedService, seed=23, settings=settings) as script:
        sim = script.sim
        leader = script.elected()
        up, down = [member for member in range(3) if member != leader]
        script.until(lambda: is_closed(script, up) and is_closed(script, down), "both followers following")
        sim.crash(down)
        write_all(script, range(10))
        asked_ns = sim.now_ns
        assert sim.request_action(action)
        script.until(lambda: sim.members[up].node is None, "the running follower stopped")
        assert sim.now_ns - asked_ns < 100 * MS
        followed = sim.members[up].terminated_at
        assert followed is not None and followed.reason == "the leader ordered it"
        while sim.members[leader].node is not None:
            assert sim.now_ns - asked_ns < timeout_ns + 1_000 * MS, "the leader never stopped"
            assert (script.role(leader), script.state(leader)) == ("LEADER", "CLOSED"), "it left to elect"
            script.step()
        waited_ns = sim.now_ns - asked_ns
        assert timeout_ns <= waited_ns < timeout_ns + 100 * MS
        led = sim.members[leader].terminated_at
        assert led is not None and led.reason == f"no TerminationAck from [{down}] in time"
        stop = (led.leadership_term_id, led.log_position)
        assert (followed.leadership_term_id, followed.log_position) == stop
        assert sim.members[down].terminated_at is None
        assert sim.fault_counts.get("terminated") == 2
        assert sorted(_TerminatedService.terminated) == sorted([leader, up])
        taken = [stop[1]] if action == ToggleState.SHUTDOWN else []
        assert [_snapshots_on_disk(sim, member) for member in (leader, up, down)] == [taken, taken, []]
        sim.start(leader)
        sim.start(up)  # a terminated member is not restarted by the simulator itself
        script.restart(down)
        script.elected("a leader after the restart")
        write_all(script, range(10, 20))
        assert agreed(script) == expected_store(range(20))


# ------------------------------------------------------------------------------- catch-up under load

BIG_VALUE_BYTES = 5_000  # a write of this much spans four frames of the log's 1,408-byte MTU
_BEGIN, _END = 0x80, 0x40  # a DATA frame's flags: the first and the last fragment of a message


def _big_value(i: int) -> bytes:
    return (f"v{i}:".encode() * BIG_VALUE_BYTES)[:BIG_VALUE_BYTES]


def _fragmented_messages(log: bytes) -> int:
    """How many messages of ``log`` span more than one frame (a first fragment that is not the last)."""
    count, offset = 0, 0
    while offset + 32 <= len(log):
        frame_length = int.from_bytes(log[offset : offset + 4], "little", signed=True)
        if frame_length <= 0:
            break
        count += log[offset + 5] & (_BEGIN | _END) == _BEGIN
        offset += (frame_length + 31) & -32
    return count


def test_a_follower_catches_up_and_joins_while_messages_longer_than_a_frame_go_on() -> None:
    """shouldCatchupAndJoinAsFollowerWhileSendingBigMessages: the client writes values of 5,000 bytes
    (each message spans several frames); the follower that is behind is killed while the writes go on,
    one every 50 ms for a heartbeat timeout; it starts again and catches up while the writes go on, one
    every 5 ms, until it follows the live log, and then one every 50 ms for another heartbeat timeout. No
    election but the restarted member's own: the leader and the other follower never leave their
    state, the term stays. Every write is answered, and every member ends with the same log and store."""
    with Script(3, service=KeyValueService, seed=25) as script:
        sim = script.sim
        leader = script.elected()
        one, two = [member for member in range(3) if member != leader]
        script.until(lambda: is_closed(script, one) and is_closed(script, two), "both followers following")
        term = script.term(leader)
        changes: dict[int, list[str]] = {member: [] for member in range(3)}
        sim.on_state_change = lambda member, state: changes[member].append(state)
        sent = 0
        taken_in: list[str] = []  # the restarted member's election state as each write was taken

        def send(pause_ns: int) -> None:
            nonlocal sent
            request = encode_write(sent, f"k{sent}".encode(), _big_value(sent))
            script.until(partial(offer, script, request), f"write {sent} taken")
            taken_in.append(script.state(behind))
            sent += 1
            script.run(pause_ns)

        behind = one if script.append(one) < script.append(two) else two  # Aeron stops the slower one
        for _ in range(20):
            send(50 * MS)
        sim.crash(behind)
        end = sim.now_ns + HEARTBEAT_TIMEOUT_NS
        while sim.now_ns < end:
            send(50 * MS)
        script.restart(behind)
        taken_in.clear()
        restarted_ns = sim.now_ns
        while not is_closed(script, behind):
            # a write every 5 ms: the leader ends a catch-up once the follower's append position, as it
            # last heard it, reaches its log's end (as Aeron's does) -- with a write every millisecond,
            # on 1 ms links, that never happened
            assert sim.now_ns - restarted_ns < HEARTBEAT_TIMEOUT_NS, "the member never joined the live log"
            send(5 * MS)
        end = sim.now_ns + HEARTBEAT_TIMEOUT_NS
        while sim.now_ns < end:
            send(50 * MS)
        script.until(lambda: replies(sim) == sent, f"{sent} answers")
        store = agreed(script)
        assert store == {f"k{i}".encode(): _big_value(i) for i in range(sent)}
        assert _fragmented_messages(sim.log_of(leader, script.commit(leader))) >= sent
        catching_up = [state for state in taken_in if state.startswith("FOLLOWER_CATCHUP")]
        assert catching_up, f"no write taken while the member caught up: {sorted(set(taken_in))}"
        assert script.leader_id() == leader and script.term(leader) == term
        up = {one, two} - {behind}
        assert [changes[member] for member in (leader, *up)] == [[], []]  # neither left its state
        assert changes[behind].count("CANVASS") == 1 and changes[behind][-1] == "CLOSED"
        assert script.role(behind) == "FOLLOWER"


# ------------------------------------------------------------------------------------ several terms behind


def _caught_up(script: Script, member: int, leader: int) -> bool:
    """``member`` follows the live log, and its service has read all the leader has committed."""
    return is_closed(script, member) and script.node(member).containers[0].log_position >= script.commit(
        leader
    )


def test_an_empty_member_and_one_with_part_of_the_log_catch_up_several_terms() -> None:
    """shouldRecoverWhenFollowersIsMultipleTermsBehindFromEmptyLogAndPartialLogWithoutCommittedLogEntry:
    five members, one of which never runs before the end (Aeron starts four of five; ours is killed
    before its first duty cycle and its directories wiped). Three times: the leader takes ten writes,
    then is killed and started again, which leaves two of five running -- no quorum -- until it is
    back, and the three elect the leader of a new term; after the first round the member after the
    leader is killed too, holding entries of the first term only. Then the empty member starts and
    copies all four terms, then the partial one, three terms behind, catches up; ten more writes; all
    five hold one log, one term history and one store."""
    with Script(5, service=KeyValueService, seed=27) as script:
        sim = script.sim
        empty = 4
        sim.crash(empty)
        sim.wipe(empty)
        holder = -1
        terms: list[int] = []
        for round_ in range(3):
            leader = script.elected(f"a leader in round {round_}")
            terms.append(script.term(leader))
            write_all(script, range(10 * round_, 10 * round_ + 10))
            if holder < 0:
                holder = (leader + 1) % 4
                sim.crash(holder)
            sim.crash(leader)
            script.run(HEARTBEAT_TIMEOUT_NS // 2)
            assert sim.leader() is None  # two of five left
            script.restart(leader)
        leader = script.elected("a leader after three rounds")
        terms.append(script.term(leader))
        assert terms == sorted(set(terms)) and len(terms) == 4  # a new term each round
        script.restart(empty)
        assert script.terms(empty) == []
        script.until(partial(_caught_up, script, empty, leader), "the empty member caught up")
        assert store_of(script, empty) == expected_store(range(30))
        script.restart(holder)
        held = script.terms(holder)
        assert [term for term, _, _ in held] == [terms[0]]  # three terms behind
        script.until(partial(_caught_up, script, holder, leader), "the partial member caught up")
        assert store_of(script, holder) == expected_store(range(30))
        write_all(script, range(30, 40))
        assert agreed(script) == expected_store(range(40))
        histories = [script.terms(member) for member in range(5)]
        assert all(history == histories[0] for history in histories)
        assert [term for term, _, _ in histories[0]] == terms


def _abort_with_no_follower_left(script: Script) -> int:
    """Both followers killed, one more write taken by the leader (appended, never committed), then the
    cluster aborted at the end of the leader's log; the leader's member id."""
    sim = script.sim
    leader = script.elected()
    write_all(script, range(5))
    for member in range(3):
        if member != leader:
            sim.crash(member)
    send_writes(script, range(5, 6))
    core = script.node(leader).agent.core
    script.until(lambda: core.log_end > script.commit(leader), "the write appended, not committed")
    assert sim.request_action(ToggleState.ABORT)
    return leader


TERMINATION_SETTINGS = {"cluster.termination.timeout": f"{DEFAULT_TERMINATION_TIMEOUT_NS // MS}ms"}


def test_a_leader_whose_followers_are_gone_before_the_stop_is_committed_elects_instead_of_waiting() -> None:
    """The other side of the termination timeout: the cluster is aborted at the end of the leader's log,
    which no follower will ever acknowledge (both were killed). A leader waits out the termination
    timeout only for a stop at a committed position; here it must leave for an election once it hears
    no quorum (the leader heartbeat timeout), or it would wait for ever: the services stop only where
    the log is committed."""
    with Script(3, service=KeyValueService, seed=29, settings=TERMINATION_SETTINGS) as script:
        sim = script.sim
        leader = _abort_with_no_follower_left(script)
        asked_ns = sim.now_ns
        script.until(lambda: script.state(leader) != "CLOSED", "the leader left for an election")
        assert sim.now_ns - asked_ns < HEARTBEAT_TIMEOUT_NS + 1_000 * MS
        assert sim.members[leader].node is not None and sim.members[leader].terminated_at is None


def test_an_abort_an_election_interrupted_leaves_every_member_running() -> None:
    """After the abort above, the followers come back: the three elect a leader, take writes and agree
    (the uncommitted write may or may not survive the election)."""
    with Script(3, service=KeyValueService, seed=29, settings=TERMINATION_SETTINGS) as script:
        sim = script.sim
        leader = _abort_with_no_follower_left(script)
        script.until(lambda: script.state(leader) != "CLOSED", "the leader left for an election")
        for member in range(3):
            if member != leader:
                script.restart(member)
        script.elected("a leader once the followers are back")
        write_all(script, range(6, 10))
        script.run(DEFAULT_TERMINATION_TIMEOUT_NS + HEARTBEAT_TIMEOUT_NS)
        assert all(member.node is not None for member in sim.members)
        store = agreed(script)
        assert {key: value for key, value in store.items() if key != b"k5"} == expected_store(
            range(5), range(6, 10)
        )


def _counter(script: Script, member: int, type_id: int) -> int:
    counter = script.node(member).transport.counters_manager.find(type_id)
    assert counter is not None, f"member {member} has no counter of type {type_id}"
    return counter.get()


def test_snapshot_durations_are_kept_and_counted_against_their_thresholds() -> None:
    """ClusterTest's shouldTrackSnapshotDuration: every member keeps its longest whole snapshot and its
    service's longest snapshot, and counts those longer than their thresholds -- here every whole
    snapshot (a 1 ns threshold) and no service snapshot (10 minutes)."""
    settings = {"cluster.total.snapshot.threshold": "1ns", "cluster.service.snapshot.threshold": "10m"}
    with Script(3, service=KeyValueService, seed=31, settings=settings) as script:
        sim = script.sim
        script.elected()
        for member in range(3):
            assert [
                _counter(script, member, type_id)
                for type_id in (TOTAL_LONGEST, TOTAL_EXCEEDED, SERVICE_LONGEST, SERVICE_EXCEEDED)
            ] == [0, 0, 0, 0]
        for round_, keys in enumerate((range(10), range(10, 20)), start=1):
            write_all(script, keys)
            assert sim.request_action(ToggleState.SNAPSHOT)
            script.until(
                lambda round_=round_: all(len(snapshot_positions(script, m)) == round_ for m in range(3)),
                f"snapshot {round_} on every member",
            )
            script.run(50 * MS)  # the module leaves SNAPSHOT on its next duty cycle
            for member in range(3):
                longest, exceeded = (
                    _counter(script, member, TOTAL_LONGEST),
                    _counter(script, member, TOTAL_EXCEEDED),
                )
                service_longest, service_exceeded = (
                    _counter(script, member, 236),
                    _counter(script, member, 237),
                )
                assert longest > 0 and exceeded == round_, (member, longest, exceeded)
                assert 0 < service_longest <= longest and service_exceeded == 0, (member, service_longest)
