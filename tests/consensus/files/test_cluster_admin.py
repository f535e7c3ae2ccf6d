"""The offline verbs of ``python -m tools cluster`` (``tools.cluster_admin``): a golden transcript of every
verb, text and JSON, on a node directory our own code wrote; every verb on Java's directories against what
Aeron's ClusterTool printed for them; the changing verbs refused while the node runs, with nothing changed;
crash-safe rewrites; fuzzed files giving exit status 0 or one ``error:`` line, never a traceback."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.clustertool import (
    clustertool_errors,
    clustertool_recording_log,
    clustertool_recovery_plan,
)
from support.golden import check_golden
from support.needs import need_reference
from support.paths import JAVA_CLUSTER_NODES, TESTDATA, JavaClusterNode

import tools.__main__ as cli
from cluster.archive import Catalog
from cluster.consensus.files import (
    ClusterComponentType,
    ClusterMarkFile,
    NodeStateFile,
    RecordingLogFile,
)
from cluster.storage import RealStorage
from tools.cluster_admin import recovery_plan

GOLDEN = TESTDATA / "consensus" / "cluster_admin_offline.txt"
START_MS = 1_796_526_850_323
CHANGING_VERBS = ["invalidate-latest-snapshot", "seed-recording-log-from-snapshot", "sort-recording-log"]
READING_VERBS = ["describe", "recording-log", "recovery-plan", "errors", "pid"]


def _cli(*args: str) -> tuple[int, str, str]:
    """``python -m tools cluster ARGS`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(["cluster", *args])
    return status, out.getvalue(), err.getvalue()


def _mark_files(cluster: RealStorage, *, now_ms: int, close: bool = True) -> None:
    """The consensus module's and service 0's mark files, pid 4242, with errors in their logs."""
    settings_: dict[str, Any] = {
        "member_id": 1,
        "cluster_id": 0,
        "pid": 4242,
        "aeron_directory": "/dev/shm/aeron",
        "control_channel": "aeron:ipc",
    }
    module = ClusterMarkFile.create(cluster, now_ms=now_ms, ingress_channel="aeron:udp", **settings_)
    module.record_error("WARN - leader heartbeat timeout", now_ms=START_MS + 1_000)
    module.record_error("java.io.IOException: two\n\tat somewhere(Here.java:1)", now_ms=START_MS + 2_000)
    module.record_error("WARN - leader heartbeat timeout", now_ms=START_MS + 3_500)
    container = ClusterMarkFile.create(
        cluster, now_ms=now_ms, component_type=ClusterComponentType.CONTAINER, service_id=0, **settings_
    )
    container.record_error("service error", now_ms=START_MS + 4_000)
    if close:
        module.close()
        container.close()


def _node(root: Path, *, mark_files: bool = True) -> Path:
    """A node directory as our node lays it out (``cluster/`` beside ``archive/``): two terms, a snapshot
    of term 0 recorded after term 1 began (so the file is out of Aeron's order), one of term 1, and the
    log recording in the archive's catalog. Returns the cluster directory."""
    cluster = RealStorage(root / "cluster", create=True)
    if mark_files:
        _mark_files(cluster, now_ms=START_MS)
    with NodeStateFile.open(cluster) as node_state:
        node_state.update_candidate_term(1, 1024, START_MS + 500)
    with RecordingLogFile.open(cluster) as log:
        log.append_term(0, 0, 0, START_MS + 100)
        log.append_term(0, 1, 1024, START_MS + 200)
        log.append_snapshot(1, 0, 0, 640, START_MS + 300, 0)
        log.append_snapshot(2, 0, 0, 640, START_MS + 300, -1)
        log.append_snapshot(3, 1, 1024, 1536, START_MS + 400, 0)
        log.append_snapshot(4, 1, 1024, 1536, START_MS + 400, -1)
    with Catalog(RealStorage(root / "archive", create=True), create=True) as catalog:
        catalog.add_recording(
            start_position=0,
            start_timestamp=START_MS,
            initial_term_id=7,
            segment_file_length=128 * 1024 * 1024,
            term_buffer_length=64 * 1024 * 1024,
            mtu_length=1408,
            session_id=-5,
            stream_id=100,
            stripped_channel="aeron:udp?endpoint=localhost:20004",
            original_channel="aeron:udp?endpoint=localhost:20004|term-length=64m",
            source_identity="127.0.0.1:40000",
            stop_position=2048,
            stop_timestamp=START_MS + 900,
        )
    return root / "cluster"


# ------------------------------------------------------------------------------------------ golden


def test_every_verb_on_a_directory_we_wrote_matches_the_golden_transcript(
    tmp_path: Path, rewrite: bool
) -> None:
    """Each command, then what it printed (stdout, ``stderr:`` lines, the exit status when not 0). The
    directory's path is written ``DIR``. ``pytest --rewrite`` rewrites the transcript."""
    _node(tmp_path)
    out: list[str] = []
    steps = [
        *([verb, "DIR"] for verb in READING_VERBS),
        *([verb, "DIR", "--json"] for verb in READING_VERBS),
        ["recovery-plan", "DIR/cluster", "--service-count", "2"],
        ["recovery-plan", "DIR/cluster", "--service-count", "0", "--archive-dir", "DIR/archive"],
        ["sort-recording-log", "DIR"],
        ["sort-recording-log", "DIR", "--json"],
        ["invalidate-latest-snapshot", "DIR"],
        ["recovery-plan", "DIR", "--json"],
        ["seed-recording-log-from-snapshot", "DIR", "--json"],
        ["recording-log", "DIR"],
        ["recovery-plan", "DIR"],
        ["invalidate-latest-snapshot", "DIR", "--json"],
        ["seed-recording-log-from-snapshot", "DIR"],
    ]
    for step in steps:
        status, stdout, stderr = _cli(*(arg.replace("DIR", str(tmp_path)) for arg in step))
        out.append(f"$ python -m tools cluster {' '.join(step)}")
        out += stdout.replace(str(tmp_path), "DIR").splitlines()
        out += [f"stderr: {line}" for line in stderr.replace(str(tmp_path), "DIR").splitlines()]
        if status != 0:
            out.append(f"exit status {status}")
        out.append("")
    check_golden(GOLDEN, "\n".join(out), rewrite=rewrite, what="the offline verbs' transcript")
    assert (tmp_path / "cluster" / "recording.log.bak").is_file()


def test_a_log_recording_stopped_by_a_crash_gets_the_position_recovery_would_find(tmp_path: Path) -> None:
    cluster = _node(tmp_path)
    with Catalog(RealStorage(tmp_path / "archive")) as catalog:
        catalog.extend(0, control_session_id=1, correlation_id=2, session_id=-5)  # active again: -1
    log = RecordingLogFile.read(RealStorage(cluster)).log
    plan = recovery_plan(log, RealStorage(tmp_path / "archive"))
    assert plan.json["appendedLogPosition"] == 0  # no segment files: the data end where they start
    assert plan.notes == [
        "the catalog's stopPosition of log recording 0 is -1 (it is still being recorded, or its archive "
        "stopped while recording): 0 is where its segment files end, as the archive's recovery would find it"
    ]


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (lambda root: shutil.rmtree(root / "archive"), [], "DIR/archive: no archive directory there"),
        (lambda root: (root / "archive" / "archive.catalog").unlink(), [], "no archive.catalog"),
        (lambda root: None, ["--archive-dir", "DIR/cluster"], "DIR/cluster: no archive.catalog"),
        (lambda root: None, ["--service-count", "3"], "has no valid snapshot for service 1, 2 of 3"),
        (lambda root: (root / "cluster" / "recording.log").write_bytes(b"\1" * 64), [], "unknown entry type"),
    ],
)
def test_recovery_plan_errors_are_one_line(
    tmp_path: Path, setup: Callable[[Path], Any], args: list[str], message: str
) -> None:
    _node(tmp_path)
    setup(tmp_path)
    status, out, err = _cli(
        "recovery-plan", str(tmp_path), *(arg.replace("DIR", str(tmp_path)) for arg in args)
    )
    assert (status, out, err.count("\n")) == (2, "", 1)
    assert err.startswith("error: ") and message.replace("DIR", str(tmp_path)) in err


@pytest.mark.parametrize("verb", ["recording-log", "recovery-plan", "errors", "pid", *CHANGING_VERBS])
def test_missing_files_and_bad_directories_are_one_error_line(tmp_path: Path, verb: str) -> None:
    status, out, err = _cli(verb, str(tmp_path / "nothing"))
    assert (status, out) == (2, "") and err.startswith("error: ") and "not a directory" in err
    (tmp_path / "node-state.dat").write_bytes(b"")  # a cluster directory with none of the other files
    status, out, err = _cli(verb, str(tmp_path))
    assert (status, out, err.count("\n")) == (2, "", 1) and err.startswith("error: ")
    assert "cluster-mark.dat" in err or "recording.log" in err


@pytest.mark.parametrize("verb", ["invalidate-latest-snapshot", "seed-recording-log-from-snapshot"])
def test_a_log_without_a_valid_snapshot_is_refused_and_left_alone(tmp_path: Path, verb: str) -> None:
    cluster = RealStorage(tmp_path, create=True)
    with RecordingLogFile.open(cluster) as log:
        log.append_term(0, 0, 0, START_MS)
    before = (tmp_path / "recording.log").read_bytes()
    status, out, err = _cli(verb, str(tmp_path))
    assert (status, out) == (2, "") and "no valid" in err and err.count("\n") == 1
    assert (tmp_path / "recording.log").read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["recording.log"]


# ------------------------------------------------------------------------------ while it is running


@pytest.mark.parametrize("verb", CHANGING_VERBS)
@pytest.mark.parametrize("live", ["consensus module", "service container"])
def test_a_running_node_is_refused_and_nothing_changes(tmp_path: Path, verb: str, live: str) -> None:
    """A mark file whose activity timestamp is within the liveness timeout (10 s) of now belongs to a
    running process; one older than that is a dead one's."""
    cluster = RealStorage(tmp_path / "cluster", create=True)
    now_ms = time.time_ns() // 1_000_000
    _mark_files(cluster, now_ms=now_ms, close=False)
    dead = "cluster-mark-service-0.dat" if live == "consensus module" else "cluster-mark.dat"
    _stamp(cluster, dead, -1)
    _node(tmp_path, mark_files=False)
    before = {path.name: path.read_bytes() for path in (tmp_path / "cluster").iterdir()}
    status, out, err = _cli(verb, str(tmp_path))
    assert (status, out, err.count("\n")) == (2, "", 1)
    assert err.startswith(f"error: {verb} refused: the node is running (") and "owner: pid 4242" in err
    assert err.rstrip().endswith("stop it first; nothing was changed")
    assert {path.name: path.read_bytes() for path in (tmp_path / "cluster").iterdir()} == before
    live_name = "cluster-mark.dat" if live == "consensus module" else "cluster-mark-service-0.dat"
    _stamp(cluster, live_name, now_ms - 10_001 - 5_000)  # older than the timeout (and the test's run)
    status, _, err = _cli(verb, str(tmp_path))
    assert (status, err) == (0, "")


def _stamp(cluster: RealStorage, name: str, activity_timestamp: int) -> None:
    """Write a mark file's activity timestamp as its owner would (8 bytes at offset 16)."""
    with cluster.open(name) as file:
        file.write(16, activity_timestamp.to_bytes(8, "little", signed=True))


# ---------------------------------------------------------------------------------- Java's directories

CASES = [pytest.param(node, id=node.name) for node in JAVA_CLUSTER_NODES]


def _java_copy(
    node: JavaClusterNode, java_cluster: Callable[[JavaClusterNode], Path], tmp_path: Path
) -> Path:
    """A copy of the node's cluster directory (the mark files and logs: a few MiB), to change."""
    copy = tmp_path / node.name / "cluster"
    shutil.copytree(java_cluster(node), copy)
    return copy


@pytest.mark.parametrize("node", CASES)
def test_reading_verbs_on_java_directories_say_what_clustertool_said(
    node: JavaClusterNode, java_cluster: Callable[[JavaClusterNode], Path]
) -> None:
    node_directory = str(java_cluster(node).parent)  # node<i>/, holding cluster/ and archive/
    status, out, _ = _cli("recording-log", node_directory, "--json")
    printed = clustertool_recording_log(node.recording_log)
    ours = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and ours == [{key: entry[key] for key in ours[0]} for entry in printed]

    status, out, _ = _cli("recovery-plan", node_directory, "--json")
    assert status == 0 and json.loads(out) == clustertool_recovery_plan(node.recovery_plan)

    status, out, _ = _cli("pid", node_directory)
    assert status == 0 and out == node.pid.read_text(encoding="utf-8")

    status, out, _ = _cli("errors", node_directory, "--json")
    logs = json.loads(out)
    expected = clustertool_errors(node.errors)
    for errors, printed_errors in zip([logs["errors"], logs["services"][0]["errors"]], expected, strict=True):
        assert [
            (
                error["observationCount"],
                _java_time(error["firstObservationTimestamp"]),
                _java_time(error["lastObservationTimestamp"]),
                error["text"],
            )
            for error in errors
        ] == printed_errors
    assert [service["serviceId"] for service in logs["services"]] == [0]

    status, out, _ = _cli("describe", node_directory, "--json")
    latest = json.loads(out)["latestSnapshot"]
    snapshot_end = need_reference(node.latest_cm_snapshot).read_text(encoding="utf-8").splitlines()[-1]
    assert status == 0 and f" recordingId={latest['consensusModule']['recordingId']} " in snapshot_end
    plan = clustertool_recovery_plan(node.recovery_plan)
    assert [latest["consensusModule"], *latest["services"]] == [
        entry
        for snapshot in plan["snapshots"]
        for entry in printed
        if entry["type"] == "SNAPSHOT" and entry["recordingId"] == snapshot["recordingId"]
    ]


def _java_time(timestamp_ms: int) -> str:
    """A time as ClusterTool's ``errors`` prints it: ``2026-12-06 03:14:52.880+0000``."""
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(timestamp_ms // 1000))
        + f".{timestamp_ms % 1000:03d}+0000"
    )


@pytest.mark.parametrize("node", CASES)
def test_changing_verbs_on_copies_of_java_directories(
    node: JavaClusterNode, java_cluster: Callable[[JavaClusterNode], Path], tmp_path: Path
) -> None:
    copy = _java_copy(node, java_cluster, tmp_path)
    original = (copy / "recording.log").read_bytes()
    printed = clustertool_recording_log(node.recording_log)

    status, out, _ = _cli("sort-recording-log", str(copy), "--json")  # Java wrote them in order
    assert (status, json.loads(out)["changed"]) == (0, False)
    assert (copy / "recording.log").read_bytes() == original

    status, out, _ = _cli("invalidate-latest-snapshot", str(copy), "--json")
    invalidated = json.loads(out)["invalidated"]
    latest_cm = printed[-1]  # the consensus module's entry of the newest snapshot ends each Java log
    assert status == 0 and [entry["entryIndex"] for entry in invalidated] == [
        latest_cm["entryIndex"],
        latest_cm["entryIndex"] - 1,
    ]
    changed = (copy / "recording.log").read_bytes()
    top_bytes = sorted(64 * entry["entryIndex"] + 47 for entry in invalidated)  # of each type field
    assert [i for i in range(len(original)) if original[i] != changed[i]] == top_bytes

    status, out, err = _cli("seed-recording-log-from-snapshot", str(copy), "--json")
    if node.name == "node0":  # its only snapshot is now invalid: nothing to seed from
        assert (status, out) == (2, "") and "no valid consensus module snapshot" in err
        assert not (copy / "recording.log.bak").exists()
        return
    seeded = json.loads(out)
    assert status == 0 and (copy / "recording.log.bak").read_bytes() == changed
    first = printed[1:3]  # the snapshot at 384416, now the newest valid one: service 0, then the CM
    assert seeded["recordingLog"] == [
        {**{key: entry[key] for key in seeded["recordingLog"][0]}, "termBaseLogPosition": 0, "logPosition": 0}
        for entry in first
    ]
    status, out, _ = _cli("recovery-plan", str(copy.parent), "--json")
    assert status == 0 and json.loads(out)["log"] is None


# --------------------------------------------------------------------------------------------- fuzzing


@pytest.mark.parametrize("timestamp", [2**62, -(2**62), 2**53])
def test_a_time_out_of_the_calendars_range_is_printed_as_a_number(tmp_path: Path, timestamp: int) -> None:
    _node(tmp_path)
    for name, offset in (("cluster-mark.dat", 8192 + 8), ("cluster-mark.dat", 8 + 16)):  # error log, start
        with RealStorage(tmp_path / "cluster").open(name) as file:
            file.write(offset, timestamp.to_bytes(8, "little", signed=True))
    for verb in ("errors", "describe"):  # describe shows a start time as a time only when it is positive
        status, out, err = _cli(verb, str(tmp_path))
        assert (status, err) == (0, "")
        assert (f"{timestamp} ms since the epoch, out of the calendar's range" in out) == (
            verb == "errors" or timestamp > 0
        )


@pytest.fixture(scope="module")
def fuzz_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("admin-template")
    _node(root)
    return {path.name: path.read_bytes() for path in (root / "cluster").iterdir()}


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("admin-fuzz")
    _node(root)
    return root


_MUTABLE = ["recording.log", "cluster-mark.dat", "cluster-mark-service-0.dat"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_every_verb_exits_0_or_with_one_error_line(
    fuzz_template: dict[str, bytes], fuzz_root: Path, data: st.DataObject
) -> None:
    cluster = fuzz_root / "cluster"
    for path in cluster.iterdir():
        path.unlink()
    for name, content in fuzz_template.items():
        whole = bytearray(content)
        if name in _MUTABLE:
            # anywhere in the recording log; in a mark file, its header or the start of its error log
            offsets = (
                st.integers(0, len(whole) - 1)
                if name == "recording.log"
                else st.one_of(st.integers(0, 300), st.integers(8192, 8192 + 255))
            )
            for _ in range(data.draw(st.integers(0, 4), label=f"{name} changes")):
                at = data.draw(offsets, label=f"{name} offset")
                whole[at] = data.draw(st.integers(0, 255), label=f"{name} byte")
            whole = whole[: data.draw(st.integers(0, len(whole)), label=f"{name} length")]
        (cluster / name).write_bytes(bytes(whole))
    verb = data.draw(st.sampled_from(READING_VERBS + CHANGING_VERBS), label="verb")
    status, out, err = _cli(verb, str(fuzz_root), *data.draw(st.sampled_from([[], ["--json"]]), label="json"))
    assert status in (0, 2), (status, err)
    if status == 2:
        assert out == "" and err.startswith("error: ") and err.count("\n") == 1, err
