"""``node-state.dat`` (``cluster.consensus.files.node_state``): creation and updates on real and simulated
storage, the candidate term never read below a durable one after any crash (sweeps under ``SimDisk``),
fuzzed bytes, and Java's files (read, and written again byte for byte)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.paths import JAVA_CLUSTER_NODES, JavaClusterNode

from cluster.consensus.files import CandidateTerm, NodeStateError, NodeStateFile
from cluster.consensus.files.node_state import NODE_STATE_FILE_LENGTH, NODE_STATE_VERSION
from cluster.storage import RealStorage, SimDisk, SimulatedCrash, Storage

NAME = "node-state.dat"
# Term ids that change one byte, several bytes, and carry across a byte (255 -> 256).
UPDATES = [(0, 0, 10), (1, 96, 11), (1, 200, 12), (255, 300, 13), (256, 400, 14), (70000, 500, 15)]


@pytest.mark.parametrize("kind", ["real", "sim"])
def test_created_updated_and_read_back(kind: str, tmp_path: Path) -> None:
    storage = RealStorage(tmp_path) if kind == "real" else SimDisk(1).storage("node")
    with NodeStateFile.open(storage) as file:
        assert file.candidate_term == CandidateTerm(-1, -1, -1) and file.repairs == ()
        assert file.state.version == NODE_STATE_VERSION == 768
        for term_id, position, timestamp in UPDATES:
            file.update_candidate_term(term_id, position, timestamp)
            assert NodeStateFile.read(storage).candidate_term == CandidateTerm(term_id, timestamp, position)
    with storage.open(NAME) as handle:
        assert handle.size() == NODE_STATE_FILE_LENGTH
    with NodeStateFile.open(storage) as again:
        assert again.candidate_term == CandidateTerm(70000, 15, 500)
        with pytest.raises(NodeStateError, match="below the durable 70000"):
            again.update_candidate_term(5, 0, 0)
        assert again.propose_max_candidate_term_id(6, 0, 0) == 70000
        assert again.propose_max_candidate_term_id(70001, 1, 2) == 70001


def test_an_uninitialised_file_is_made_anew_and_reported() -> None:
    storage = SimDisk(1).storage("node")
    with storage.open(NAME, create=True) as handle:
        handle.truncate(NODE_STATE_FILE_LENGTH)
    with pytest.raises(NodeStateError, match="not initialised"):
        NodeStateFile.read(storage)
    with NodeStateFile.open(storage) as file:
        assert file.candidate_term.candidate_term_id == -1 and "never initialised" in file.repairs[0]


def test_a_torn_first_candidate_term_is_set_back_to_minus_one() -> None:
    storage = SimDisk(1).storage("node")
    NodeStateFile.open(storage).close()
    with storage.open(NAME) as handle:
        handle.write(24, b"\x05\x00")  # the low bytes of 5 over -1
    with NodeStateFile.open(storage) as file:
        assert file.candidate_term.candidate_term_id == -1 and "torn" in file.repairs[0]
    assert NodeStateFile.read(storage).candidate_term.candidate_term_id == -1


def _run(storage: Storage, reported: list[CandidateTerm]) -> None:
    with NodeStateFile.open(storage) as file:
        reported.append(file.candidate_term)
        for term_id, position, timestamp in UPDATES:
            file.update_candidate_term(term_id, position, timestamp)
            reported.append(file.candidate_term)


@pytest.mark.parametrize("power_loss", [False, True])
def test_crash_sweep_the_candidate_term_never_reads_below_the_durable_one(power_loss: bool) -> None:
    probe = SimDisk(0)
    _run(probe.storage("node"), [])
    seeds = range(12) if power_loss else range(1)
    for crash_at in range(1, probe.operation_count + 1):
        for seed in seeds:
            disk = SimDisk(seed)
            disk.crash_at(crash_at)
            reported: list[CandidateTerm] = []
            with pytest.raises(SimulatedCrash):
                _run(disk.storage("node"), reported)
            disk.crash(power_loss=power_loss)
            with NodeStateFile.open(disk.storage("node")) as file:
                found = file.candidate_term.candidate_term_id
            durable = reported[-1].candidate_term_id if reported else -1
            following = UPDATES[len(reported) - 1][0] if 0 < len(reported) <= len(UPDATES) else durable
            where = f"crash at {crash_at}, seed {seed}, power loss {power_loss}"
            assert found >= durable, where
            # Bytes of the durable id and of the one being written, nothing else (an id above the one
            # asked, the old low bytes under the new high ones, is safe; see the module docstring).
            found_bytes, durable_bytes, following_bytes = (
                value.to_bytes(8, "little", signed=True) for value in (found, durable, following)
            )
            mixed = zip(found_bytes, durable_bytes, following_bytes, strict=True)
            assert all(byte in (old, new) for byte, old, new in mixed), where


def _read(data: bytes) -> None:
    storage = SimDisk(1).storage("fuzz")
    with storage.open(NAME, create=True) as handle:
        handle.write(0, data)
    with contextlib.suppress(NodeStateError):
        NodeStateFile.read(storage)
    with contextlib.suppress(NodeStateError):
        NodeStateFile.open(storage).close()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes_read_or_raise_node_state_error(data: bytes) -> None:
    _read(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_files_read_or_raise_node_state_error(data: st.DataObject) -> None:
    storage = SimDisk(1).storage("node")
    with NodeStateFile.open(storage) as file:
        file.update_candidate_term(3, 4, 5)
    whole = bytearray(storage.read_file(NAME)[:128])
    for _ in range(data.draw(st.integers(1, 4))):
        whole[data.draw(st.integers(0, 127))] = data.draw(st.integers(0, 255))
    _read(bytes(whole[: data.draw(st.integers(0, 128))]))


CASES = [pytest.param(node, id=node.name) for node in JAVA_CLUSTER_NODES]
# What the members' node-state.dat files hold (the README's scenario: member 0 voted in term 0 only;
# members 1 and 2 took part in the election of term 1 at log position 768544).
JAVA_CANDIDATE_TERMS = {
    "node0": CandidateTerm(0, 1796526851054, 0),
    "node1": CandidateTerm(1, 1796526893275, 768544),
    "node2": CandidateTerm(1, 1796526893275, 768544),
}


@pytest.mark.parametrize("node", CASES)
def test_java_node_state_reads_and_is_written_again_byte_for_byte(
    node: JavaClusterNode, java_cluster: Callable[[JavaClusterNode], Path]
) -> None:
    """Java's files hold the header, the candidate term and the footer -- no ClusterMembers record -- so
    all of it is ours to reproduce."""
    java = (java_cluster(node) / NAME).read_bytes()
    state = NodeStateFile.read(RealStorage(java_cluster(node)))
    assert state.version == 768 and state.cluster_members is None
    assert state.candidate_term == JAVA_CANDIDATE_TERMS[node.name]
    storage = SimDisk(1).storage("node")
    with NodeStateFile.open(storage) as file:
        term = state.candidate_term
        file.update_candidate_term(term.candidate_term_id, term.log_position, term.timestamp)
    assert storage.read_file(NAME) == java
