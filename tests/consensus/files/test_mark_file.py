"""The cluster's mark files (``cluster.consensus.files.mark_file``): created, kept alive and closed; a live
one refused naming its pid; Java's read as ClusterTool printed them and written again byte for byte;
fuzzed bytes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.clustertool import clustertool_mark_files
from support.paths import JAVA_CLUSTER_NODES, JavaClusterNode

from cluster.consensus.files import (
    ClusterComponentType,
    ClusterMarkFile,
    ClusterMarkFileError,
    ClusterMarkFileHeader,
    service_mark_file_name,
)
from cluster.storage import RealStorage, SimDisk, Storage

NAME = "cluster-mark.dat"
SETTINGS: dict[str, Any] = {
    "member_id": 2,
    "cluster_id": 7,
    "pid": 4242,
    "aeron_directory": "/dev/shm/aeron-test",
    "control_channel": "aeron:ipc?term-length=128k",
    "ingress_channel": "aeron:udp",
}


def _create(storage: Storage, now_ms: int = 1_000_000, **extra: Any) -> ClusterMarkFile:
    return ClusterMarkFile.create(storage, now_ms=now_ms, **{**SETTINGS, **extra})


@pytest.mark.parametrize("kind", ["real", "sim"])
def test_created_kept_alive_and_closed(kind: str, tmp_path: Path) -> None:
    storage = RealStorage(tmp_path) if kind == "real" else SimDisk(1).storage("node")
    with _create(storage) as mark_file:
        header = ClusterMarkFile.read(storage)
        assert header == mark_file.header
        assert header.to_json() | {"activityTimestamp": 0} == {
            "version": 768,
            "componentType": "CONSENSUS_MODULE",
            "activityTimestamp": 0,
            "startTimestamp": 1_000_000,
            "pid": 4242,
            "candidateTermId": -1,
            "archiveStreamId": 10,
            "serviceStreamId": 104,
            "consensusModuleStreamId": 105,
            "ingressStreamId": 101,
            "memberId": 2,
            "serviceId": -1,
            "headerLength": 8192,
            "errorBufferLength": 1024 * 1024,
            "clusterId": 7,
            "aeronDirectory": "/dev/shm/aeron-test",
            "controlChannel": "aeron:ipc?term-length=128k",
            "ingressChannel": "aeron:udp",
            "serviceName": "",
            "authenticator": "",
            "servicesClusterDir": "",
        }
        mark_file.update_activity(1_001_000)
        assert ClusterMarkFile.read(storage).activity_timestamp == 1_001_000
        assert mark_file.record_error("boom", now_ms=1_001_500)
        assert [e.text for e in ClusterMarkFile.read_errors(storage)] == ["boom"]
    assert ClusterMarkFile.read(storage).activity_timestamp == -1
    with storage.open(NAME) as handle:
        assert handle.size() == 8192 + 1024 * 1024


def test_a_container_writes_its_service_mark_file() -> None:
    storage = SimDisk(1).storage("node")
    with _create(storage, component_type=ClusterComponentType.CONTAINER, service_id=3) as mark_file:
        assert mark_file.name == service_mark_file_name(3) == "cluster-mark-service-3.dat"
        assert ClusterMarkFile.read(storage, mark_file.name).component_type is ClusterComponentType.CONTAINER


def test_a_live_mark_file_is_refused_naming_its_pid() -> None:
    storage = SimDisk(1).storage("node")
    _create(storage, now_ms=1_000_000)  # a process that never closes
    with pytest.raises(ClusterMarkFileError, match=r"active mark file detected \(owner: pid 4242\)") as error:
        _create(storage, now_ms=1_009_000, pid=99)
    assert type(error.value).is_user_error is True
    with _create(storage, now_ms=1_010_001, pid=99) as taken_over:  # past the 10 s liveness timeout
        assert taken_over.header.pid == 99


def test_refuse_if_active_is_the_rule_create_applies() -> None:
    storage = SimDisk(1).storage("node")
    ClusterMarkFile.refuse_if_active(storage, now_ms=1_000_000)  # no mark file: nobody runs here
    mark_file = _create(storage, now_ms=1_000_000)
    for now_ms in (990_000, 1_000_000, 1_010_000):  # within 10 s either side
        with pytest.raises(ClusterMarkFileError, match=r"owner: pid 4242"):
            ClusterMarkFile.refuse_if_active(storage, now_ms=now_ms)
    ClusterMarkFile.refuse_if_active(storage, now_ms=1_010_001)
    with pytest.raises(ClusterMarkFileError):
        ClusterMarkFile.refuse_if_active(storage, now_ms=1_010_001, liveness_timeout_ms=20_000)
    mark_file.close()
    ClusterMarkFile.refuse_if_active(storage, now_ms=1_000_000)  # closed cleanly: -1


def test_service_mark_files_are_listed_by_service_id() -> None:
    storage = SimDisk(1).storage("node")
    for service in ("10", "2", "x", "02"):
        storage.open(f"cluster-mark-service-{service}.dat", create=True).close()
    storage.open(NAME, create=True).close()
    assert ClusterMarkFile.service_mark_files(storage) == [
        (2, "cluster-mark-service-2.dat"),
        (10, "cluster-mark-service-10.dat"),
    ]


def test_a_closed_mark_file_is_taken_at_once() -> None:
    storage = SimDisk(1).storage("node")
    _create(storage).close()
    _create(storage, now_ms=1_000_001).close()


CASES = [pytest.param(node, id=node.name) for node in JAVA_CLUSTER_NODES]


@pytest.mark.parametrize("node", CASES)
def test_java_mark_files_read_as_clustertool_printed_them(
    node: JavaClusterNode, java_cluster: Callable[[JavaClusterNode], Path]
) -> None:
    storage = RealStorage(java_cluster(node))
    printed = clustertool_mark_files(node.describe)
    ours = [ClusterMarkFile.read(storage, name).to_json() for name in (NAME, service_mark_file_name(0))]
    assert ours == printed
    pid = int(node.pid.read_text().strip())
    assert ours[0]["pid"] == pid
    # Member 0 was killed: its files still say alive at the last activity; 1 and 2 closed cleanly.
    assert (ours[0]["activityTimestamp"] == -1) == (node.name != "node0")


def _settings_of(header: ClusterMarkFileHeader) -> dict[str, Any]:
    return {
        "member_id": header.member_id,
        "cluster_id": header.cluster_id,
        "pid": header.pid,
        "aeron_directory": header.aeron_directory,
        "control_channel": header.control_channel,
        "ingress_channel": header.ingress_channel,
        "component_type": header.component_type,
        "service_id": header.service_id,
        "archive_stream_id": header.archive_stream_id,
        "service_stream_id": header.service_stream_id,
        "consensus_module_stream_id": header.consensus_module_stream_id,
        "ingress_stream_id": header.ingress_stream_id,
        "service_name": header.service_name,
        "authenticator": header.authenticator,
        "services_cluster_dir": header.services_cluster_dir,
    }


@pytest.mark.parametrize("node", CASES)
def test_java_mark_file_headers_are_written_again_byte_for_byte(
    node: JavaClusterNode, java_cluster: Callable[[JavaClusterNode], Path]
) -> None:
    """The header region (8 KiB) of both mark files; the error logs hold Java's own errors, which we do not
    reproduce."""
    java_storage = RealStorage(java_cluster(node))
    for name in (NAME, service_mark_file_name(0)):
        header = ClusterMarkFile.read(java_storage, name)
        storage = SimDisk(1).storage("node")
        mark_file = ClusterMarkFile.create(storage, now_ms=header.start_timestamp, **_settings_of(header))
        assert mark_file.name == name
        if header.activity_timestamp == -1:
            mark_file.close()
        else:
            mark_file.update_activity(header.activity_timestamp)
        java = (java_cluster(node) / name).read_bytes()
        ours = storage.read_file(name)
        assert len(ours) == len(java) and ours[:8192] == java[:8192], name


def _read(data: bytes) -> None:
    storage = SimDisk(1).storage("fuzz")
    with storage.open(NAME, create=True) as handle:
        handle.write(0, data)
    with contextlib.suppress(ClusterMarkFileError):
        ClusterMarkFile.read(storage)
    with contextlib.suppress(ClusterMarkFileError):
        ClusterMarkFile.read_errors(storage)
    with contextlib.suppress(ClusterMarkFileError):
        _create(storage, now_ms=2**40).close()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_arbitrary_bytes_read_or_raise_cluster_mark_file_error(data: bytes) -> None:
    _read(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_mutated_files_read_or_raise_cluster_mark_file_error(data: st.DataObject) -> None:
    storage = SimDisk(1).storage("node")
    with _create(storage, error_buffer_length=256) as mark_file:
        mark_file.record_error("first error", now_ms=1)
    whole = bytearray(storage.read_file(NAME))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.one_of(st.integers(0, 300), st.integers(8192, len(whole) - 1)))
        whole[at] = data.draw(st.integers(0, 255))
    _read(bytes(whole[: data.draw(st.integers(0, len(whole)))]))
