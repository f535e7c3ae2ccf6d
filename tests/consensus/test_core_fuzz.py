"""The consensus core reads bytes from the network: hostile and broken messages must never break a node.

Three real nodes run in the node simulator to a chosen point -- the election's canvass, a ballot, the
new leader's log replication, or a steady term -- and then one member gets hostile consensus messages:
random bytes, truncations and bit flips of real consensus messages, well-formed messages with a value no
member could send (a position off a frame boundary, a term id out of range), well-formed messages in no
member's name, and well-formed messages with any values. They arrive two ways: handed to the member's
core as its consensus adapter hands a fragment, or over the simulated network from a host outside the
cluster, as DATA frames of a publication faked by hand on the consensus stream, between datagrams of
random bytes.

Whatever arrives, no exception escapes a step and the member goes on; bytes no member could have sent are
counted as malformed and change nothing in the core; and once the hostile host is gone the cluster
elects, commits and converges. Messages that impersonate no member leave the checkers silent. (Messages
in a member's name are believed -- Raft trusts its members, a forged CommitPosition in the leader's name
is a commit -- so the checkers' safety verdicts are not asserted for them, only that nothing breaks and
the cluster recovers.)
"""

from __future__ import annotations

import inspect
import struct
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.node_script import MS, STEADY

from cluster.consensus.cluster_node import ClusterNode
from cluster.consensus.core.node import ConsensusCore
from cluster.consensus.node_sim import NodeSimulator
from cluster.transport.simnet import SimNetwork, SimSocket
from codegen.runtime.errors import CodecError
from generated import aeron_cluster_codecs as codecs

SEED = 5
CONSENSUS_MESSAGES = [
    codecs.CanvassPositionEncoder,
    codecs.RequestVoteEncoder,
    codecs.VoteEncoder,
    codecs.NewLeadershipTermEncoder,
    codecs.AppendPositionEncoder,
    codecs.CommitPositionEncoder,
    codecs.StopCatchupEncoder,
]
FIELD_VALUES = (
    st.integers(-(2**31), 2**31 - 1)
    | st.sampled_from([-1, 0, 1, 2, 32, 96, 2**31, 2**62, 2**63 - 1, -(2**63)])
    | st.integers(-(2**63), 2**63 - 1)
)

# ------------------------------------------------------------------------------------- messages

MEMBER_IDS = range(3)
STRANGER_IDS = st.integers(-(2**31), 2**31 - 1).filter(lambda member_id: member_id not in MEMBER_IDS)


def _fields(encoder: object) -> list[str]:
    parameters = inspect.signature(encoder.pack_into).parameters  # type: ignore[attr-defined]
    return [name for name in parameters if name not in ("buffer", "offset")]


@st.composite
def well_formed(draw: st.DrawFn, *, strangers: bool = False) -> bytes:
    """A whole consensus message with any field values; with ``strangers``, every member id it carries
    is no member's."""
    encoder = draw(st.sampled_from(CONSENSUS_MESSAGES))
    values = {
        name: draw(STRANGER_IDS if strangers and name.endswith("member_id") else FIELD_VALUES)
        for name in _fields(encoder)
    }
    buffer = bytearray(256)
    try:
        length = encoder.pack_into(buffer, 0, **values)  # type: ignore[attr-defined]
    except Exception:  # a value too wide for its field: send random bytes instead
        return draw(st.binary(max_size=100))
    return bytes(buffer[:length])


@st.composite
def broken(draw: st.DrawFn) -> bytes:
    """Random bytes, or a well-formed message truncated and with bits flipped."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    data = bytearray(draw(well_formed()))
    data = data[: draw(st.integers(0, len(data)))]
    for _ in range(draw(st.integers(0, 3))):
        if data:
            index = draw(st.integers(0, len(data) - 1))
            data[index] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


POSITIONS = {"logPosition", "nextTermBaseLogPosition", "nextLogPosition", "termBaseLogPosition"}
TERMS = {"candidateTermId", "logLeadershipTermId", "leadershipTermId", "nextLeadershipTermId"}


def _decodes(message: bytes) -> bool:
    """Written apart from the core's checks: a whole message, positions at frame boundaries (or -1),
    term ids -1 or in [0, 2**62)."""
    try:
        decoder = codecs.decode(message)
        type(decoder).unpack(message)
    except CodecError:
        return False
    for name, value in decoder.to_dict().items():
        if name in POSITIONS and value != -1 and (value < 0 or value % 32 != 0):
            return False
        if name in TERMS and not -1 <= value < 2**62:
            return False
    return True


def _in_a_members_name(message: bytes) -> bool:
    """A message a member could have sent, naming a member: Raft believes it."""
    if not _decodes(message):
        return False
    fields = codecs.decode(message).to_dict()
    return any(value in MEMBER_IDS for name, value in fields.items() if name.endswith("MemberId"))


garbage = (broken() | well_formed()).filter(lambda message: not _decodes(message))  # no member sends it
# what a host outside the cluster can send without impersonating a member
untrusted = (broken() | well_formed(strangers=True)).filter(lambda message: not _in_a_members_name(message))
anything = broken() | well_formed() | well_formed(strangers=True)

# ------------------------------------------------------------------------------------- the cluster

POINTS = ("canvass", "ballot", "log replication", "steady")
LIMIT_NS = 20_000 * MS


def _until(sim: NodeSimulator, condition: Callable[[], bool], what: str, limit_ns: int = LIMIT_NS) -> None:
    end = sim.now_ns + limit_ns
    while not condition():
        assert sim.now_ns < end, f"never happened within {limit_ns // MS} ms: {what}; {sim.violations}"
        sim.step()


def _member_in(sim: NodeSimulator, state: str) -> int:
    """A member in election state ``state``, or -1."""
    for member in sim.members:
        if member.node is not None and member.node.agent.election_state == state:
            return member.member_id
    return -1


def _run_to(sim: NodeSimulator, point: str) -> int:
    """Run the election to ``point``; the member it centres on: the candidate, the leader (member 0 while
    all canvass). A steady term has committed a command."""
    if point == "canvass":
        sim.run(50 * MS)
        return 0
    state = {"ballot": "CANDIDATE_BALLOT", "log replication": "LEADER_LOG_REPLICATION"}.get(point, "CLOSED")
    if state != "CLOSED":
        _until(sim, lambda: _member_in(sim, state) >= 0, point)
        return _member_in(sim, state)
    _until(sim, lambda: sim.leader() is not None, "a leader")
    _until(sim, lambda: sim.submit(1), "a command taken")
    _until(sim, lambda: 1 in _committed(sim), "the command committed")
    leader = sim.leader()
    assert leader is not None
    return leader.config.member_id


def _committed(sim: NodeSimulator) -> set[int]:
    sim.check_logs()
    return sim.committed_commands


def _recovers(sim: NodeSimulator) -> None:
    """A leader is elected, commits a new command, and every member converges on its log. A forged
    message in a member's name can cost an election: the bound allows several."""
    _until(sim, lambda: sim.leader() is not None, "a leader after the hostile messages")
    _until(sim, lambda: sim.submit(2), "a command taken after the hostile messages")
    _until(sim, lambda: sim.converged() and 2 in _committed(sim), "the cluster converged on command 2")
    sim.check_converged()


def _simulator(point: str, offset: int) -> tuple[NodeSimulator, int]:
    """Three members run to ``point``; the member ``offset`` places after the one the point centres on
    (0: that member itself)."""
    sim = NodeSimulator(SEED, 3)
    sim.set_link(STEADY)
    return sim, (_run_to(sim, point) + offset) % 3


def _node(sim: NodeSimulator, member: int) -> ClusterNode:
    node = sim.members[member].node
    assert node is not None
    return node


def _hand_to_core(node: ClusterNode, message: bytes) -> None:
    """What the member's consensus adapter does with a fragment: the core's actions are executed."""
    agent = node.agent
    agent._execute(agent.core.on_message(agent._now(), message))


# ------------------------------------------------------------------------------------- a rogue host

ROGUE_HOST = "10.0.0.200"
_SETUP = struct.Struct("<iBBHiiiiiiii")  # length, version, flags, type, term offset, session, stream,
# initial term id, active term id, term length, mtu, ttl
_DATA = struct.Struct("<iBBHiiiiq")  # length, version, flags, type, term offset, session, stream, term id,
# reserved value
_SETUP_TYPE, _DATA_TYPE, _UNFRAGMENTED = 5, 1, 0xC0
_TERM_LENGTH, _MTU = 64 * 1024, 1408


class RoguePublisher:
    """A publication faked by hand on a host outside the cluster: a SETUP to a member's consensus
    endpoint, then DATA frames of whole messages, as many as fit in each datagram; or any datagram."""

    def __init__(self, network: SimNetwork, endpoint: str, stream_id: int, session_id: int) -> None:
        host, port = endpoint.rsplit(":", 1)
        self.destination = (host, int(port))
        self.socket: SimSocket = network.open((ROGUE_HOST, 0))
        self.stream_id = stream_id
        self.session_id = session_id
        self.term_offset = 0
        setup = _SETUP.pack(
            _SETUP.size, 0, 0, _SETUP_TYPE, 0, session_id, stream_id, 0, 0, _TERM_LENGTH, _MTU, 0
        )
        assert self.socket.send(setup, self.destination)

    def publish(self, messages: list[bytes]) -> None:
        datagram = bytearray()
        for message in messages:
            frame_length = _DATA.size + len(message)
            aligned = (frame_length + 31) & -32
            if len(datagram) + aligned > _MTU:
                self.send(bytes(datagram))
                datagram.clear()
            header = _DATA.pack(
                frame_length,
                0,
                _UNFRAGMENTED,
                _DATA_TYPE,
                self.term_offset,
                self.session_id,
                self.stream_id,
                0,
                0,
            )
            datagram += header + message + bytes(aligned - frame_length)
            self.term_offset += aligned
        if datagram:
            self.send(bytes(datagram))

    def send(self, datagram: bytes) -> None:
        assert self.socket.send(datagram, self.destination)

    def close(self) -> None:
        self.socket.close()


# ------------------------------------------------------------------------------------- the tests

FUZZ = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
AT = {"point": st.sampled_from(POINTS), "offset": st.integers(0, 2)}


def _core_state(core: ConsensusCore) -> tuple[object, ...]:
    return (
        core.state,
        core.leadership_term_id,
        core.candidate_term_id,
        core.append_position,
        core.commit_position,
    )


def _hand_all(sim: NodeSimulator, member: int, batch: list[bytes]) -> int:
    """Hand every message of ``batch`` to member ``member``'s core, as its consensus subscription would;
    how many the core counted as malformed."""
    node = _node(sim, member)
    before = node.agent.core.malformed_messages
    for message in batch:
        _hand_to_core(node, message)
    return node.agent.core.malformed_messages - before


@FUZZ
@given(batch=st.lists(garbage, min_size=1, max_size=30), **AT)
def test_bytes_no_member_could_send_are_counted_and_change_nothing(
    batch: list[bytes], point: str, offset: int
) -> None:
    sim, member = _simulator(point, offset)
    try:
        core = _node(sim, member).agent.core
        state = _core_state(core)
        assert _hand_all(sim, member, batch) == len(batch)
        assert _core_state(core) == state
        sim.run(500 * MS)  # no exception escapes a step
        _recovers(sim)
        assert sim.violations == []
    finally:
        sim.close()


@FUZZ
@given(batch=st.lists(anything, min_size=1, max_size=30), **AT)
def test_forged_consensus_messages_handed_to_a_core_never_break_the_node(
    batch: list[bytes], point: str, offset: int
) -> None:
    sim, member = _simulator(point, offset)
    try:
        core = _node(sim, member).agent.core
        assert _hand_all(sim, member, batch) == sum(1 for message in batch if not _decodes(message))
        sim.run(500 * MS)  # no exception escapes a step
        assert _node(sim, member).agent.core is core, "the member ended"
        _recovers(sim)
    finally:
        sim.close()


def _rogue_sends(
    sim: NodeSimulator, member: int, frames: list[bytes], datagrams: list[bytes], session_id: int
) -> None:
    """A rogue publisher on a host outside the cluster sends ``datagrams`` then ``frames`` to member
    ``member``'s consensus endpoint; the frames no member could send are counted as malformed; the
    rogue host goes and the cluster recovers."""
    node = _node(sim, member)
    core = node.agent.core
    before = core.malformed_messages
    config = node.config
    rogue = RoguePublisher(sim.network, config.member.consensus, config.consensus_stream_id, session_id)
    try:
        for datagram in datagrams:
            rogue.send(datagram)
        rogue.publish(frames)
        sim.run(500 * MS)  # no exception escapes a step
    finally:
        rogue.close()
    assert _node(sim, member).agent.core is core, "the member ended"
    assert core.malformed_messages - before == sum(1 for frame in frames if not _decodes(frame))
    _recovers(sim)


NETWORK = {
    "datagrams": st.lists(st.binary(max_size=300), max_size=10),
    "session_id": st.integers(-(2**31), 2**31 - 1),
    **AT,
}


@FUZZ
@given(frames=st.lists(untrusted, min_size=1, max_size=30), **NETWORK)
def test_hostile_datagrams_on_the_consensus_stream_change_nothing_the_checkers_see(
    frames: list[bytes], datagrams: list[bytes], session_id: int, point: str, offset: int
) -> None:
    sim, member = _simulator(point, offset)
    try:
        _rogue_sends(sim, member, frames, datagrams, session_id)
        assert sim.violations == []
    finally:
        sim.close()


@FUZZ
@given(frames=st.lists(anything, min_size=1, max_size=30), **NETWORK)
def test_forged_datagrams_on_the_consensus_stream_never_break_the_node(
    frames: list[bytes], datagrams: list[bytes], session_id: int, point: str, offset: int
) -> None:
    sim, member = _simulator(point, offset)
    try:
        _rogue_sends(sim, member, frames, datagrams, session_id)
    finally:
        sim.close()


def test_positions_off_a_frame_boundary_and_terms_out_of_range_are_counted_and_dropped() -> None:
    sim, follower_id = _simulator("steady", 1)
    try:
        leader = sim.leader()
        assert leader is not None
        leader_id = leader.config.member_id
        follower = _node(sim, follower_id)
        core = follower.agent.core
        term = core.leadership_term_id
        forged = [
            _encode(
                codecs.NewLeadershipTermEncoder,
                log_leadership_term_id=term,
                next_leadership_term_id=term + 1,
                next_term_base_log_position=1,  # not a frame boundary
                next_log_position=0,
                leadership_term_id=term + 1,
                term_base_log_position=0,
                log_position=0,
                leader_recording_id=0,
                timestamp=0,
                leader_member_id=leader_id,
                log_session_id=0,
                app_version=1,
                is_startup=0,
            ),
            _encode(
                codecs.CommitPositionEncoder,
                leadership_term_id=term,
                log_position=33,
                leader_member_id=leader_id,
            ),
            _encode(
                codecs.RequestVoteEncoder,
                log_leadership_term_id=term,
                log_position=0,
                candidate_term_id=2**63 - 1,  # past any term id
                candidate_member_id=leader_id,
                protocol_version=0,
            ),
            _encode(
                codecs.AppendPositionEncoder,
                leadership_term_id=term,
                log_position=-32,
                follower_member_id=leader_id,
                flags=0,
            ),
        ]
        state = _core_state(core)
        assert _hand_all(sim, follower_id, forged) == len(forged)
        assert _core_state(core) == state
        sim.run(500 * MS)
        _recovers(sim)
        assert sim.violations == []
    finally:
        sim.close()


def _encode(encoder: object, **fields: int) -> bytes:
    buffer = bytearray(256)
    length = encoder.pack_into(buffer, 0, **fields)  # type: ignore[attr-defined]
    return bytes(buffer[:length])
