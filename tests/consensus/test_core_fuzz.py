"""The consensus core reads bytes from the network: hostile and broken messages must never make it raise.

Random bytes, truncations and bit flips of real consensus messages, and well-formed messages with random
field values are fed to cores in every role; none may raise, malformed ones are counted (as are messages
with a log position that is not a frame boundary or a term id out of range), and the cores still elect
and commit afterwards. (Well-formed messages with forged values are believed -- Raft trusts
its members -- so safety is not asserted for them, only that nothing breaks and the cluster recovers.)
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster.consensus.simulator import MS, SIM_TIMEOUTS, Simulator
from codegen.runtime.errors import CodecError
from generated import aeron_cluster_codecs as codecs

CONSENSUS_MESSAGES = [
    (codecs.CanvassPositionEncoder, 5),
    (codecs.RequestVoteEncoder, 5),
    (codecs.VoteEncoder, 6),
    (codecs.NewLeadershipTermEncoder, 13),
    (codecs.AppendPositionEncoder, 4),
    (codecs.CommitPositionEncoder, 3),
    (codecs.StopCatchupEncoder, 2),
]


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "valid", "mutated"]))
    if kind == "random":
        return draw(st.binary(max_size=200))
    encoder, fields = draw(st.sampled_from(CONSENSUS_MESSAGES))
    values = [
        draw(
            st.integers(-(2**31), 2**31 - 1)
            | st.sampled_from([-1, 0, 1, 2, 2**31, 2**62, 2**63 - 1, -(2**63)])
            | st.integers(-(2**63), 2**63 - 1)
        )
        for _ in range(fields)
    ]
    buffer = bytearray(256)
    try:
        length = encoder.pack_into(buffer, 0, *values)  # type: ignore[attr-defined]
    except Exception:  # a value too wide for its field: send random bytes instead
        return draw(st.binary(max_size=100))
    data = bytearray(buffer[:length])
    if kind == "mutated" and data:
        cut = draw(st.integers(0, len(data)))
        data = data[:cut]
        for _ in range(draw(st.integers(0, 3))):
            if data:
                index = draw(st.integers(0, len(data) - 1))
                data[index] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(messages(), min_size=1, max_size=30), at_ms=st.integers(0, 3000))
def test_hostile_consensus_messages_never_break_a_core(batch: list[bytes], at_ms: int) -> None:
    sim = Simulator(5, 3, timeouts=SIM_TIMEOUTS)
    sim.run(at_ms * MS)  # canvassing, balloting or leading, depending on when
    for node in sim.nodes:
        core = node.core
        assert core is not None
        for message in batch:
            sim._execute(node, core.on_message(sim.clock(node), message))
    # a well-formed message in a member's name is believed (Raft is not Byzantine-tolerant) and can cost
    # an election: allow a leader heartbeat timeout, a canvass and a ballot to recover
    sim.run(15_000 * MS)
    assert sim.leader() >= 0
    assert sim.submit(1)
    sim.run(500 * MS)
    assert 1 in sim.committed_commands
    expected = sum(1 for message in batch if not _decodes(message))
    assert [node.core.malformed_messages for node in sim.nodes if node.core is not None] == [expected] * 3


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


def test_positions_off_a_frame_boundary_and_terms_out_of_range_are_counted_and_dropped() -> None:
    sim = Simulator(5, 3, timeouts=SIM_TIMEOUTS)
    sim.run(2_000 * MS)
    leader = sim.leader()
    follower = sim.nodes[(leader + 1) % 3]
    core = follower.core
    assert core is not None
    term = core.leadership_term_id
    forged = [
        _encode(codecs.NewLeadershipTermEncoder, term, term + 1, 1, 0, term + 1, 0, 0, 0, 0, leader, 0, 1, 0),
        _encode(codecs.CommitPositionEncoder, term, 33, leader),
        _encode(codecs.RequestVoteEncoder, term, 0, 2**63 - 1, leader, 0),
        _encode(codecs.AppendPositionEncoder, term, -32, leader, 0),
    ]
    before = (core.state, core.leadership_term_id, core.candidate_term_id, len(follower.durable.log))
    for message in forged:
        sim._execute(follower, core.on_message(sim.clock(follower), message))
    assert core.malformed_messages == len(forged)
    assert (core.state, core.leadership_term_id, core.candidate_term_id, len(follower.durable.log)) == before


def _encode(encoder: object, *values: int) -> bytes:
    buffer = bytearray(256)
    length = encoder.pack_into(buffer, 0, *values)  # type: ignore[attr-defined]
    return bytes(buffer[:length])
