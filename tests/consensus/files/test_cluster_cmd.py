# ruff: noqa: E501 -- the expected text has the command's full-width table
"""``python -m tools cluster describe``: the exact text and JSON forms for a directory we wrote, Java's
directories (the JSON equal to what ClusterTool printed), and the errors (one line, exit status 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.clustertool import clustertool_mark_files, clustertool_recording_log
from support.paths import JAVA_CLUSTER_NODES, REPO, JavaClusterNode

import tools.__main__ as cli
from cluster.consensus.files import ClusterMarkFile, NodeStateFile, RecordingLogFile
from cluster.storage import RealStorage


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(["cluster", *args])
    out, err = capsys.readouterr()
    return status, out, err


def _node(directory: Path) -> None:
    storage = RealStorage(directory, create=True)
    with ClusterMarkFile.create(
        storage,
        member_id=1,
        cluster_id=0,
        pid=4242,
        now_ms=1_796_526_850_323,
        aeron_directory="/dev/shm/aeron",
        control_channel="aeron:ipc",
        ingress_channel="aeron:udp",
    ):
        pass
    with NodeStateFile.open(storage) as node_state:
        node_state.update_candidate_term(1, 768, 1_796_526_851_000)
    with RecordingLogFile.open(storage) as log:
        log.append_term(0, 0, 0, 1_796_526_851_085)
        log.append_snapshot(1, 0, 0, 384, 1_796_526_856_305, 0)
        log.append_snapshot(2, 0, 0, 384, 1_796_526_856_305, -1)
        log.invalidate_entry(1)


EXPECTED_TEXT = """\
cluster directory: {directory}
mark file (cluster-mark.dat):
  version: 768 (0.3.0)
  componentType: CONSENSUS_MODULE
  activityTimestamp: -1
  startTimestamp: 1796526850323 (2026-12-06 03:14:10.323 UTC)
  pid: 4242
  candidateTermId: -1
  archiveStreamId: 10
  serviceStreamId: 104
  consensusModuleStreamId: 105
  ingressStreamId: 101
  memberId: 1
  serviceId: -1
  headerLength: 8192
  errorBufferLength: 1048576
  clusterId: 0
  aeronDirectory: '/dev/shm/aeron'
  controlChannel: 'aeron:ipc'
  ingressChannel: 'aeron:udp'
  serviceName: ''
  authenticator: ''
  servicesClusterDir: ''
node state (node-state.dat):
  version: 768 (0.3.0)
  candidateTermId: 1
  timestamp: 1796526851000
  logPosition: 768
recording log (recording.log): 3 entries
  entryIndex  type      recordingId  leadershipTermId  termBaseLogPosition  logPosition      timestamp  serviceId  isValid
           0  TERM                0                 0                    0           -1  1796526851085         -1     true
           1  SNAPSHOT            1                 0                    0          384  1796526856305          0    false
           2  SNAPSHOT            2                 0                    0          384  1796526856305         -1     true
latest snapshot: leadershipTermId 0, termBaseLogPosition 0, logPosition 384, timestamp 1796526856305
  consensus module: recordingId 2 (entry 2)
"""


def test_describe_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _node(tmp_path)
    assert _run(capsys, "describe", str(tmp_path)) == (0, EXPECTED_TEXT.format(directory=tmp_path), "")


def test_describe_json_is_one_object_with_exactly_these_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _node(tmp_path / "cluster")  # a node directory holding the cluster directory, as Java's do
    status, out, err = _run(capsys, "describe", str(tmp_path), "--json")
    assert (status, err, out.count("\n")) == (0, "", 1)
    described = json.loads(out)
    assert list(described) == ["markFile", "nodeState", "recordingLog", "latestSnapshot"]
    assert described["markFile"]["componentType"] == "CONSENSUS_MODULE"
    assert described["nodeState"] == {
        "version": 768,
        "candidateTerm": {"candidateTermId": 1, "timestamp": 1796526851000, "logPosition": 768},
        "clusterMembers": None,
    }
    assert described["recordingLog"][1] == {
        "type": "SNAPSHOT",
        "recordingId": 1,
        "leadershipTermId": 0,
        "termBaseLogPosition": 0,
        "logPosition": 384,
        "timestamp": 1796526856305,
        "serviceId": 0,
        "isValid": False,
    }
    assert all(entry["logPosition"] == -1 for entry in described["recordingLog"] if entry["type"] == "TERM")
    assert described["latestSnapshot"] == {  # service 0's entry is invalid: the set is the CM's alone
        "consensusModule": {"entryIndex": 2, **described["recordingLog"][2]},
        "services": [],
    }


def test_a_torn_recording_log_is_shown_as_a_node_would_load_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _node(tmp_path)
    with (tmp_path / "recording.log").open("ab") as file:
        file.write(b"\x01" * 10)
    status, out, _ = _run(capsys, "describe", str(tmp_path))
    assert status == 0
    assert out.endswith(
        "note: recording.log would be repaired when a node opens it: offset 192 (10 bytes): "
        "a torn append: 10 bytes of a 64-byte record dropped\n"
    )
    assert (tmp_path / "recording.log").stat().st_size == 202  # describe changes nothing


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda path: None, "not a cluster directory"),
        (lambda path: (path / "recording.log").write_bytes(b""), "missing cluster-mark.dat, node-state.dat"),
        (lambda path: (path / "file").write_bytes(b""), "not a cluster directory"),
    ],
)
def test_errors_are_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: Callable[[Path], Any], message: str
) -> None:
    setup(tmp_path)
    status, out, err = _run(capsys, "describe", str(tmp_path))
    assert (status, out) == (2, "")
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_a_path_that_is_no_directory_and_a_damaged_file_are_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _run(capsys, "describe", str(tmp_path / "nothing"))
    assert status == 2 and "not a directory" in err
    _node(tmp_path)
    (tmp_path / "node-state.dat").write_bytes(b"\x00" * 64)
    status, _, err = _run(capsys, "describe", str(tmp_path))
    assert status == 2 and err.startswith("error: ") and "node-state.dat" in err and "not initialised" in err


def test_the_command_runs_as_a_module(tmp_path: Path) -> None:
    _node(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "tools", "cluster", "describe", str(tmp_path), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and json.loads(done.stdout)["markFile"]["pid"] == 4242


CASES = [pytest.param(node, id=node.name) for node in JAVA_CLUSTER_NODES]


@pytest.mark.parametrize("node", CASES)
def test_describe_java_directories_as_clustertool_printed_them(
    node: JavaClusterNode, java_cluster: Callable[[JavaClusterNode], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    node_directory = java_cluster(node).parent  # node<i>/, holding cluster/ and archive/
    status, out, _ = _run(capsys, "describe", str(node_directory), "--json")
    assert status == 0
    described = json.loads(out)
    assert described["markFile"] == clustertool_mark_files(node.describe)[0]
    printed = clustertool_recording_log(node.recording_log)
    assert described["recordingLog"] == [
        {key: entry[key] for key in described["recordingLog"][0]} for entry in printed
    ]
    status, text, _ = _run(capsys, "describe", str(node_directory))
    assert status == 0 and f"recording log (recording.log): {len(printed)} entries" in text


def test_the_verbs_on_a_running_node_say_when_no_node_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _node(tmp_path)  # a node's files, its mark file closed: no node runs here
    status, out, _ = _run(capsys, "is-leader", str(tmp_path))
    assert status == 1 and "no node is running here" in out
    status, out, _ = _run(capsys, "snapshot", str(tmp_path), "--json")
    record = json.loads(out)
    assert status == 1 and record["done"] is False and "no node is running" in record["reason"]
    status, out, _ = _run(capsys, "list-members", str(tmp_path))
    assert status == 1 and "no node is running" in out
    status, _, err = _run(capsys, "shutdown", str(tmp_path / "missing"))
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1
