"""The simulator's two consensus networks: whole messages, and Aeron's transport over ``SimNetwork``."""

from __future__ import annotations

import random

import pytest
from support.transport_sim import DATA_HEADER

from cluster.consensus.core.members import parse_members
from cluster.consensus.sim_network import (
    CONSENSUS_STREAM_ID,
    ConsensusNetwork,
    FaultConfig,
    MessageNetwork,
    TransportNetwork,
)
from cluster.consensus.simulator import (
    MS,
    KeyValueService,
    Simulator,
    SimulatorError,
    command_of,
    member_string,
    run_seed,
)
from cluster.transport.media import Address
from generated import aeron_cluster_codecs as codecs


def _not_paused(member_id: int) -> int:
    return 0


KINDS = ("message", "transport")


def _network(kind: str, faults: FaultConfig | None = None) -> ConsensusNetwork:
    faults = faults or FaultConfig()
    if kind == "message":
        return MessageNetwork(random.Random(5), faults)
    return TransportNetwork(parse_members(member_string(3)), 5, faults)


def _run(network: ConsensusNetwork, until_ns: int, start_ns: int = 0) -> list[tuple[int, bytes]]:
    arrived = []
    for now_ns in range(start_ns + MS, until_ns + 1, MS):
        arrived.extend(network.receive(now_ns, _not_paused))
    return arrived


def _connect(network: ConsensusNetwork) -> int:
    """Transport publications need a SETUP and a status message before they take messages: run 50 ms
    (nothing is sent, so nothing arrives) and return the time to start at."""
    if isinstance(network, MessageNetwork):
        return 0
    assert _run(network, 50 * MS) == []
    return 50 * MS


@pytest.mark.parametrize("kind", KINDS)
def test_messages_arrive_whole_at_their_destination(kind: str) -> None:
    network = _network(kind)
    start = _connect(network)
    messages = [bytes([n]) * (8 + n) for n in range(10)]
    for n, message in enumerate(messages):
        network.send(start, n % 3, (n + 1) % 3, message)
    arrived = _run(network, start + 50 * MS, start)
    assert sorted(arrived) == sorted(((n + 1) % 3, message) for n, message in enumerate(messages))


@pytest.mark.parametrize("kind", KINDS)
def test_a_one_way_partition_blocks_one_direction_only(kind: str) -> None:
    network = _network(kind)
    start = _connect(network)
    network.partition(0, 1, one_way=True)
    network.send(start, 0, 1, b"blocked")
    network.send(start, 1, 0, b"passes")
    assert _run(network, start + 50 * MS, start) == [(0, b"passes")]
    network.heal()
    # after healing, the transport's NAK or retransmission may still bring "blocked"; new messages pass
    network.send(start + 50 * MS, 0, 1, b"after heal")
    assert (1, b"after heal") in _run(network, start + 2_000 * MS, start + 50 * MS)


@pytest.mark.parametrize("kind", KINDS)
def test_a_paused_member_receives_its_messages_when_it_resumes(kind: str) -> None:
    network = _network(kind)
    start = _connect(network)
    network.send(start, 0, 2, b"wait for me")
    resume_ns = start + 30 * MS
    early = []
    for now_ns in range(start + MS, resume_ns, MS):
        early.extend(network.receive(now_ns, lambda member: resume_ns if member == 2 else 0))
    assert early == []
    assert _run(network, resume_ns + 20 * MS, resume_ns - MS) == [(2, b"wait for me")]


def test_the_transport_network_carries_aeron_data_frames_on_the_consensus_stream() -> None:
    members = parse_members(member_string(3))
    network = TransportNetwork(members, 9, FaultConfig())
    frames: list[tuple[Address, Address, bytes]] = []
    network.network.tap = lambda source, destination, data: frames.append((source, destination, bytes(data)))
    start = _connect(network)
    network.send(start, 1, 2, b"consensus message")
    assert _run(network, start + 20 * MS, start) == [(2, b"consensus message")]
    data = [
        (source, destination, frame)
        for source, destination, frame in frames
        if DATA_HEADER.unpack_from(frame)[3] == 1 and DATA_HEADER.unpack_from(frame)[0] > 32
    ]
    assert len(data) == 1
    source, destination, frame = data[0]
    assert source[0] == "n1" and destination == ("n2", 9003)
    assert DATA_HEADER.unpack_from(frame)[6] == CONSENSUS_STREAM_ID
    assert frame[32 : 32 + len(b"consensus message")] == b"consensus message"


def test_a_crashed_member_sends_nothing_more_and_a_restarted_one_reconnects() -> None:
    members = parse_members(member_string(3))
    network = TransportNetwork(members, 3, FaultConfig())
    start = _connect(network)
    network.crash(0)
    network.send(start, 0, 1, b"from the dead")  # ignored: the member has no transport
    network.send(start, 1, 0, b"to the dead")
    assert _run(network, start + 20 * MS, start) == []
    network.restart(0)
    arrived: list[tuple[int, bytes]] = []
    now_ns = start + 20 * MS
    while now_ns < start + 12_000 * MS and (1, b"again") not in arrived:
        network.send(now_ns, 0, 1, b"again")  # refused until the new session is connected
        now_ns += 10 * MS
        arrived.extend(_run(network, now_ns, now_ns - 10 * MS))
    assert (1, b"again") in arrived


def test_lost_datagrams_are_recovered_by_the_transport_but_not_by_the_message_network() -> None:
    faults = FaultConfig(loss=0.3)
    message_network = _network("message", faults)
    transport_network = _network("transport")
    start = _connect(transport_network)
    transport_network.set_faults(faults)
    for network, at in ((message_network, 0), (transport_network, start)):
        for n in range(40):
            network.send(at, 0, 1, n.to_bytes(4, "little"))
        arrived = _run(network, at + 3_000 * MS, at)
        if network is transport_network:
            assert [message for _, message in arrived] == [n.to_bytes(4, "little") for n in range(40)]
            assert network.fault_counts()["loss"] > 0
        else:
            assert 0 < len(arrived) < 40
            assert network.fault_counts()["loss"] == 40 - len(arrived)


def test_the_simulator_over_the_transport_elects_commits_and_survives_a_leader_crash() -> None:
    sim = Simulator(21, 3, network="transport")
    sim.run(3_000 * MS)
    first = sim.leader()
    assert first >= 0
    for command in range(10):
        assert sim.submit(command)
        sim.run(4 * MS)
    sim.run(500 * MS)
    assert sim.committed_commands == set(range(10))
    sim.crash(first)
    sim.run(15_000 * MS)
    second = sim.leader()
    assert second not in (-1, first)
    sim.restart(first)
    sim.run(15_000 * MS)
    assert sim.violations == []
    assert {node.commit_position for node in sim.nodes} == {sim.nodes[second].commit_position}


def test_a_seed_over_the_transport_repeats_exactly() -> None:
    first = run_seed(4, 3, network="transport", safety_ns=4_000 * MS, liveness_ns=20_000 * MS)
    second = run_seed(4, 3, network="transport", safety_ns=4_000 * MS, liveness_ns=20_000 * MS)
    assert not first.failed
    assert (first.commands_committed, first.faults) == (second.commands_committed, second.faults)


def test_an_unknown_network_is_refused() -> None:
    with pytest.raises(SimulatorError, match="unknown network 'carrier pigeon'"):
        Simulator(1, 3, network="carrier pigeon")


def _command(command: int, term: int = 0) -> bytes:
    buffer = bytearray(codecs.HEADER_SIZE + codecs.SessionMessageHeaderEncoder.BLOCK_LENGTH + 8)
    codecs.SessionMessageHeaderEncoder.pack_into(buffer, 0, term, 1, 0)
    buffer[-8:] = command.to_bytes(8, "little")
    return bytes(buffer)


def test_the_key_value_service_applies_client_commands_only() -> None:
    service = KeyValueService()
    service.apply(_command(17))
    service.apply(_command(33))
    service.apply(b"\x00" * 64)  # not a client message: no change
    assert command_of(_command(17)) == 17 and command_of(b"short") is None
    state = service.state()
    assert state[0] == 2 and state[1 + 17 % 16] == 33
    assert state.count(-1) == KeyValueService.KEYS - 1


class _Forgetful(KeyValueService):
    """A broken service: it drops every tenth command, which the state checker must notice."""

    def apply(self, entry: bytes) -> None:
        command = command_of(entry)
        if command is None or command % 10 != 9:
            super().apply(entry)


def test_the_checker_catches_services_whose_states_differ_at_the_same_position() -> None:
    sim = Simulator(2, 3)
    sim.nodes[1].service = _Forgetful()  # before anything is applied: the states start equal
    sim.run(2_000 * MS)
    for command in range(9):
        sim.submit(command)
        sim.run(4 * MS)
    sim.run(300 * MS)
    assert sim.committed_commands == set(range(9)) and sim.violations == []
    sim.submit(9)
    sim.run(300 * MS)
    assert [violation.checker for violation in sim.violations] == ["equal service states at equal positions"]
