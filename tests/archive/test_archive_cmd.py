"""``python -m tools archive list|describe DIR [--json]``: the values ArchiveTool printed for Java's
directories, golden output for a directory of ours, read-only always, and user errors on one line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.golden import check_golden
from support.paths import JAVA_ARCHIVES, REPO, TESTDATA, JavaArchive

import tools.__main__ as cli
from cluster.archive import ArchiveMarkFile, Catalog, RecordingState
from cluster.archive.catalog import CATALOG_FILE_NAME
from cluster.archive.markfile import MARK_FILE_NAME
from cluster.storage import RealStorage
from generated import aeron_archive_codecs as codecs
from tools import archive_cmd

CASES = [pytest.param(case, id=case.name) for case in JAVA_ARCHIVES]
GOLDEN = TESTDATA / "archive"
LIST_KEYS = {
    "recordingId",
    "startTimestamp",
    "stopTimestamp",
    "startPosition",
    "stopPosition",
    "initialTermId",
    "segmentFileLength",
    "termBufferLength",
    "mtuLength",
    "sessionId",
    "streamId",
    "strippedChannel",
    "originalChannel",
    "sourceIdentity",
    "state",
    "controlSessionId",
    "correlationId",
}


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(["archive", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("case", CASES)
def test_list_and_describe_give_what_archivetool_printed(
    case: JavaArchive,
    capsys: pytest.CaptureFixture[str],
    java_archive: Callable[[JavaArchive], Path],
    archivetool_describe: Callable[[Path], Any],
    files_fingerprint: Callable[[Path], dict[str, str]],
) -> None:
    directory = java_archive(case)
    before = files_fingerprint(directory)
    expected = archivetool_describe(case.describe)

    status, out, err = _run(capsys, "list", str(directory), "--json")
    assert (status, err) == (0, "")
    listed = [json.loads(line) for line in out.splitlines()]
    assert all(set(entry) >= LIST_KEYS for entry in listed)
    assert [entry["recordingId"] for entry in listed] == list(range(len(listed)))
    shown = {entry["recordingId"]: entry for entry in listed if entry["state"] != "DELETED"}
    assert sorted(shown) == sorted(expected.descriptors)
    descriptor_codec = codecs.RecordingDescriptorDecoder
    for recording_id, printed in expected.descriptors.items():
        fields = {name: value for name, value in printed.items() if not name.startswith("sbe")}
        assert {name: shown[recording_id][name] for name in fields} == fields
        assert shown[recording_id]["state"] == "VALID"
        # The catalog's records have no SBE message header: ArchiveTool printed its codec's constants.
        assert (printed["sbeTemplateId"], printed["sbeSchemaId"], printed["sbeSchemaVersion"]) == (
            descriptor_codec.TEMPLATE_ID,
            codecs.SCHEMA_ID,
            codecs.SCHEMA_VERSION,
        )
        assert printed["sbeBlockLength"] == descriptor_codec.BLOCK_LENGTH
    if case.name == "archiveA":
        assert [(entry["recordingId"], entry["state"]) for entry in listed] == [(0, "VALID"), (1, "DELETED")]

    status, out, err = _run(capsys, "describe", str(directory), "--json")
    assert (status, err) == (0, "")
    described = json.loads(out)
    assert {name: described["markFile"][name] for name in expected.mark_file} == expected.mark_file
    assert described["catalog"] == {
        "version": 196864,
        "semanticVersion": "3.1.0",
        "length": 32,
        "nextRecordingId": len(listed),
        "alignment": 64,
        "capacity": expected.capacity,
        "recordings": len(listed),
        "problems": [],
    }

    for args in (["list", str(directory)], ["describe", str(directory)]):
        status, out, err = _run(capsys, *args)
        assert (status, err) == (0, "") and out
    assert files_fingerprint(directory) == before, "archive list/describe changed a file"


def _fixed_archive(directory: Path) -> None:
    """A small archive with fixed values: a stopped, a deleted and an active recording; a mark file with
    one error, closed cleanly."""
    storage = RealStorage(directory)
    with Catalog(storage, capacity_bytes=4096) as catalog:
        for i, channel in enumerate(
            [
                "aeron:udp?endpoint=localhost:20121",
                "aeron:ipc?alias=snapshot",
                "aeron:udp?endpoint=localhost:20122",
            ]
        ):
            catalog.add_recording(
                start_position=1024 * i,
                start_timestamp=1_750_000_000_000 + i,
                initial_term_id=100 + i,
                segment_file_length=64 * 1024 * 1024,
                term_buffer_length=64 * 1024,
                mtu_length=1408,
                session_id=-7 + i,
                stream_id=1001 + i,
                stripped_channel=channel,
                original_channel=channel + "|term-length=64k",
                source_identity="aeron:ipc" if "ipc" in channel else "127.0.0.1:45678",
            )
        catalog.update_stop(0, 4096, 1_750_000_000_500)
        catalog.update_stop(1, 2048, 1_750_000_000_600)
        catalog.change_state(1, RecordingState.DELETED)
        catalog.extend(2, control_session_id=55, correlation_id=66, session_id=-3)
    with ArchiveMarkFile.create(
        storage,
        archive_id=3,
        control_channel="aeron:udp?endpoint=localhost:8010",
        control_stream_id=10,
        local_control_channel="aeron:ipc?term-length=64k",
        local_control_stream_id=10,
        events_channel="",
        events_stream_id=30,
        aeron_directory="/dev/shm/aeron-golden",
        pid=1234,
        now_ms=1_750_000_000_000,
        error_buffer_length=1024,
    ) as mark_file:
        mark_file.update_activity_timestamp(1_750_000_001_000)
        mark_file.record_error("io.aeron.archive.ArchiveException: example\n", now_ms=1_750_000_000_900)


@pytest.mark.parametrize(
    ("args", "golden"),
    [
        (["list", "--json"], "list.jsonl"),
        (["list"], "list.txt"),
        (["describe", "--json"], "describe.json"),
        (["describe"], "describe.txt"),
    ],
    ids=["list-json", "list-text", "describe-json", "describe-text"],
)
def test_golden_output(
    args: list[str], golden: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], rewrite: bool
) -> None:
    _fixed_archive(tmp_path)
    status, out, err = _run(capsys, args[0], str(tmp_path), *args[1:])
    assert (status, err) == (0, "")
    check_golden(
        GOLDEN / golden, out.replace(str(tmp_path), "DIR"), rewrite=rewrite, what=f"archive {args[0]}"
    )


def test_a_missing_mark_file_is_reported_not_fatal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fixed_archive(tmp_path)
    (tmp_path / MARK_FILE_NAME).unlink()
    status, out, err = _run(capsys, "describe", str(tmp_path), "--json")
    assert (status, err) == (0, "")
    described = json.loads(out)
    assert described["markFile"] is None and "there is no mark file" in described["markFileError"]
    assert described["catalog"]["recordings"] == 3
    status, out, err = _run(capsys, "describe", str(tmp_path))
    assert status == 0 and "there is no mark file" in out


def test_catalog_problems_are_shown_and_nothing_is_repaired(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fixed_archive(tmp_path)
    path = tmp_path / CATALOG_FILE_NAME
    data = bytearray(path.read_bytes())
    codecs.CatalogHeaderEncoder().wrap(data, 0).from_dict(
        {"version": 196864, "length": 32, "nextRecordingId": 1, "alignment": 64, "reserved": 0}
    )
    path.write_bytes(bytes(data))
    status, out, _ = _run(capsys, "describe", str(tmp_path), "--json")
    [problem] = json.loads(out)["catalog"]["problems"]
    assert (status, problem["field"], problem["repaired"]) == (0, "CatalogHeader.nextRecordingId", False)
    status, out, _ = _run(capsys, "describe", str(tmp_path))
    assert "problem at offset 0, CatalogHeader.nextRecordingId" in out
    assert path.read_bytes() == bytes(data)


def test_no_catalog_or_no_directory_is_a_one_line_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in (["list", str(tmp_path)], ["describe", str(tmp_path)], ["list", str(tmp_path / "nowhere")]):
        status, out, err = _run(capsys, *args)
        assert (status, out) == (2, "")
        assert err.startswith("error: ") and err.count("\n") == 1
    assert "archive.catalog: there is no catalog" in _run(capsys, "list", str(tmp_path))[2]
    (tmp_path / CATALOG_FILE_NAME).write_bytes(b"\x01" * 64)
    status, _, err = _run(capsys, "list", str(tmp_path), "--json")
    assert status == 2 and "CatalogHeader.version" in err
    assert not (tmp_path / MARK_FILE_NAME).exists()


def test_an_empty_catalog_lists_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Catalog(RealStorage(tmp_path)).close()
    assert _run(capsys, "list", str(tmp_path), "--json") == (0, "", "")
    status, out, _ = _run(capsys, "list", str(tmp_path))
    assert status == 0 and "no recordings" in out


def test_a_sub_command_is_required_and_each_is_one_table_entry(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["archive"])
    assert excinfo.value.code == 2
    assert set(archive_cmd.SUBCOMMANDS) >= {"list", "describe"}
    with pytest.raises(SystemExit):
        cli.main(["archive", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in archive_cmd.SUBCOMMANDS)


def test_the_exact_command_line_form(tmp_path: Path) -> None:
    _fixed_archive(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "tools", "archive", "list", str(tmp_path), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["state"] for line in result.stdout.splitlines()] == ["VALID", "DELETED", "VALID"]
