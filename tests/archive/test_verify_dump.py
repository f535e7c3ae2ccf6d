"""``python -m tools archive verify DIR [--apply]`` and ``archive dump DIR --recording N``: ArchiveTool's
verify output on Java's directories, node0's killed log repaired as ArchiveTool repaired it, problems
found and repaired, a running archive left alone; the dump of a recording against ``decode`` of the
capture of the same stream, and archive A's 500 raw messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.paths import JAVA, JavaArchive
from support.recordings import JAVA_BY_NAME, NODE0_DESCRIBE_AFTER_VERIFY, extract_java

import tools.__main__ as cli
from cluster.archive import ArchiveMarkFile, Catalog
from cluster.archive.verify import verify_archive
from cluster.storage import RealStorage
from generated.aeron_transport_frames import DataHeaderDecoder
from tools import archive_cmd
from tools.capture import decode_capture

NOW_MS = 1_796_540_000_000  # 2026-12-06T07:33:20Z: hours after every run in the reference data
VERIFY_TXT = {
    "archiveA": JAVA / "archive" / "archivetool" / "archiveA.verify.txt",
    "archiveB": JAVA / "archive" / "archivetool" / "archiveB.verify.txt",
    **{f"node{i}": JAVA / "cluster" / "archivetool" / f"node{i}.verify.txt" for i in range(3)},
}
CLUSTER_CAPTURE = JAVA / "cluster" / "capture.pcapng"


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's clock, fixed: the mark files' liveness and the stop timestamps do not depend on
    when the tests run."""
    monkeypatch.setattr(archive_cmd, "_now_ms", lambda: NOW_MS)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(["archive", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ------------------------------------------------------------------------------------------ verify


@pytest.mark.parametrize("name", sorted(VERIFY_TXT))
def test_verify_prints_what_archivetool_printed(
    name: str,
    capsys: pytest.CaptureFixture[str],
    java_archive: Callable[[JavaArchive], Path],
    files_fingerprint: Callable[[Path], dict[str, str]],
) -> None:
    directory = java_archive(JAVA_BY_NAME[name])
    before = files_fingerprint(directory)
    expected = VERIFY_TXT[name].read_text()
    status, out, err = _run(capsys, "verify", str(directory))
    assert err == ""
    if name == "node0":
        # ArchiveTool repaired this one as it went and printed OK; we say what --apply would do
        assert expected.splitlines()[0] == "(recordingId=0) OK"
        expected = expected.replace(
            "(recordingId=0) OK", "(recordingId=0) ERR: stopPosition -1 would be set to 768544"
        )
        assert status == 1
    else:
        assert status == 0
    assert out == expected
    assert files_fingerprint(directory) == before  # nothing changed without --apply


def test_verify_apply_on_node0_sets_the_stop_position_archivetool_set(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    archivetool_describe: Callable[[Path], Any],
    files_fingerprint: Callable[[Path], dict[str, str]],
) -> None:
    directory = extract_java("node0", tmp_path)
    segments_before = {
        name: value for name, value in files_fingerprint(directory).items() if name.endswith(".rec")
    }
    status, out, err = _run(capsys, "verify", str(directory), "--apply")
    assert (status, err) == (1, "")  # problems were found (and repaired)
    assert out.splitlines() == [
        "(recordingId=0) ERR: stopPosition -1 would be set to 768544",
        "(recordingId=1) OK",
        "(recordingId=2) OK",
        f"(recordingId=0) stopPosition -1 set to 768544, stopTimestamp {NOW_MS}",
    ]
    status, out, _ = _run(capsys, "list", str(directory), "--json")
    listed = {entry["recordingId"]: entry for entry in map(json.loads, out.splitlines())}
    assert listed[0]["stopPosition"] == 768544
    assert listed[0]["stopTimestamp"] == NOW_MS
    # everything else is as ArchiveTool left it after its verify (its stop timestamp is its own clock's)
    after_java = archivetool_describe(NODE0_DESCRIBE_AFTER_VERIFY).descriptors
    for recording_id, printed in after_java.items():
        fields = {k: v for k, v in printed.items() if not k.startswith("sbe") and k != "stopTimestamp"}
        assert {k: listed[recording_id][k] for k in fields} == fields
    # the segment files were not touched, and the archive verifies clean now
    assert {n: v for n, v in files_fingerprint(directory).items() if n.endswith(".rec")} == segments_before
    status, out, _ = _run(capsys, "verify", str(directory))
    assert (status, out) == (0, "(recordingId=0) OK\n(recordingId=1) OK\n(recordingId=2) OK\n")


def test_verify_leaves_a_running_archive_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = extract_java("node0", tmp_path)
    activity = ArchiveMarkFile.read(RealStorage(directory)).activity_timestamp
    report = verify_archive(RealStorage(directory), now_ms=activity + 1000)
    assert report.ok
    assert report.lines[0].startswith("(recordingId=0) active: being recorded by the running archive (pid ")
    with pytest.raises(Exception, match="the archive is running") as caught:
        verify_archive(RealStorage(directory), now_ms=activity + 1000, apply=True)
    assert getattr(caught.value, "is_user_error", False)
    forced = verify_archive(RealStorage(directory), now_ms=activity + 1000, apply=True, force=True)
    assert forced.repairs == [
        f"(recordingId=0) stopPosition -1 set to 768544, stopTimestamp {activity + 1000}"
    ]


def test_verify_finds_and_apply_repairs_or_invalidates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = extract_java("node1", tmp_path)
    storage = RealStorage(directory)
    storage.delete("3-0.rec")  # recording 3 loses its only segment file
    with storage.open("1-0.rec") as file:  # recording 1: the term id of its 5th frame
        file.write(4 * 64 + 20, (12345).to_bytes(4, "little", signed=True))
    storage.open("9-0.rec", create=True).close()  # a file of a recording the catalog does not know
    with Catalog(storage) as catalog:
        catalog.update_stop(4, 384, NOW_MS)  # recording 4: data after its stop position
    status, out, err = _run(capsys, "verify", str(directory))
    assert (status, err) == (1, "")
    lines = out.splitlines()
    assert lines[0] == "(recordingId=0) OK"
    assert lines[1].startswith("(recordingId=1) ERR: corrupt frame: ")
    assert lines[1].endswith(
        "/1-0.rec, offset 256, dataHeader.term_id: bad frame at position 256: term_id is 12345, "
        "expected 1444588358"
    )
    assert lines[2:] == [
        "(recordingId=2) OK",
        "(recordingId=3) ERR: segment file 3-0.rec is missing",
        "(recordingId=4) ERR: 4-0.rec holds data at the stop position 384 (offset 384)",
        "(file 9-0.rec) ERR: recording 9 is not in the catalog",
    ]
    status, out, _ = _run(capsys, "verify", str(directory), "--apply")
    assert status == 1
    assert out.splitlines()[len(lines) :] == [
        "(recordingId=1) marked INVALID",
        "(recordingId=3) marked INVALID",
        "(recordingId=4) erased 4-0.rec from offset 384 (after the stop position)",
    ]
    status, out, _ = _run(capsys, "verify", str(directory))
    assert status == 1  # the unknown file is left for the user
    assert out.splitlines() == [
        "(recordingId=0) OK",
        "(recordingId=1) skipping: INVALID",
        "(recordingId=2) OK",
        "(recordingId=3) skipping: INVALID",
        "(recordingId=4) OK",
        "(file 9-0.rec) ERR: recording 9 is not in the catalog",
    ]


def test_verify_reports_the_remains_of_a_purge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = extract_java("archiveA", tmp_path)
    RealStorage(directory).open("1-0.rec", create=True).close()
    status, out, _ = _run(capsys, "verify", str(directory))
    assert status == 1
    assert out.splitlines() == [
        "(recordingId=0) OK",
        "(recordingId=1) skipping: DELETED",
        "(recordingId=1) ERR: segment file 1-0.rec remains of the DELETED recording",
    ]
    status, out, _ = _run(capsys, "verify", str(directory), "--apply")
    assert out.splitlines()[-1] == "(recordingId=1) deleted 1-0.rec (the recording is DELETED)"
    assert _run(capsys, "verify", str(directory))[0] == 0


def test_verify_errors_are_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, "verify", str(tmp_path))
    assert (status, out) == (2, "")
    assert err.startswith("error: ") and "no catalog" in err and len(err.splitlines()) == 1


# ------------------------------------------------------------------------------------------ dump


def test_dump_of_a_cluster_log_is_decode_of_its_capture(
    capsys: pytest.CaptureFixture[str], java_archive: Callable[[JavaArchive], Path]
) -> None:
    """Member 2 recorded the log it received on port 9204: the dump's messages are, one for one, what
    ``decode`` finds in the capture of that port (retransmissions counted once)."""
    directory = java_archive(JAVA_BY_NAME["node2"])
    status, out, err = _run(capsys, "dump", str(directory), "--recording", "0", "--json")
    assert (status, err) == (0, "")
    records = [json.loads(line) for line in out.splitlines()]
    messages = [r for r in records if r["kind"] == "message"]
    frames = [r for r in records if r["kind"] == "frame"]
    assert not [r for r in records if r["kind"] == "error"]
    assert len(frames) == 1173
    assert frames[-1]["position"] + ((frames[-1]["frameLength"] + 31) & -32) == 895584
    captured = [
        r for r in decode_capture(CLUSTER_CAPTURE, [9204]) if r["kind"] == "message" and r["streamId"] == 100
    ]
    assert [{k: v for k, v in m.items() if k != "position"} for m in messages] == captured
    # a message's position is its first fragment's, which is a frame's position
    frame_positions = {f["position"] for f in frames}
    assert all(m["position"] in frame_positions for m in messages)
    counts: dict[str, int] = {}
    for message in messages:
        name = message["sbe"]["message"]
        counts[name] = counts.get(name, 0) + 1
    # capture-summary.txt: the unique messages on stream 100
    assert counts == {
        "NewLeadershipTermEvent": 2,
        "SessionOpenEvent": 2,
        "SessionMessageHeader": 700,
        "SessionCloseEvent": 1,
        "ClusterActionRequest": 2,
    }


def test_dump_text_lines(
    capsys: pytest.CaptureFixture[str], java_archive: Callable[[JavaArchive], Path]
) -> None:
    directory = java_archive(JAVA_BY_NAME["node1"])
    status, out, _ = _run(capsys, "dump", str(directory), "--recording", "0")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == (
        "position=0 DATA frameLength=88 version=0 flags=END|BEGIN termOffset=0 sessionId=2021085391 "
        "streamId=100 termId=0 reservedValue=0"
    )
    assert lines[1].startswith(
        "position=0 message session=2021085391 stream=100 term=0 termOffset=0 length=56 "
        "NewLeadershipTermEvent (schema 111 v12) {'leadershipTermId': 0, 'logPosition': 96, "
    )
    assert lines[3].startswith(
        "position=96 message session=2021085391 stream=100 term=0 termOffset=96 length=85 SessionOpenEvent"
    )
    # the second leadership term, as member 1 recorded it after becoming leader
    assert any(
        line.startswith("position=768544 message session=-817021328 ") and "NewLeadershipTermEvent" in line
        for line in lines
    )
    # --from: the same lines from that frame on
    status, out, _ = _run(capsys, "dump", str(directory), "--recording", "0", "--from", "768544")
    start = next(i for i, line in enumerate(lines) if line.startswith("position=768544 "))
    assert out.splitlines() == lines[start:]


def test_dump_of_raw_messages_reassembles_them(
    capsys: pytest.CaptureFixture[str], java_archive: Callable[[JavaArchive], Path]
) -> None:
    directory = java_archive(JAVA_BY_NAME["archiveA"])
    status, out, _ = _run(capsys, "dump", str(directory), "--recording", "0", "--json")
    assert status == 0
    messages = [r for r in map(json.loads, out.splitlines()) if r["kind"] == "message"]
    assert len(messages) == 500
    for i, message in enumerate(messages):
        payload = bytes.fromhex(message["payloadHex"])
        assert len(payload) == message["length"] == [32, 1000, 5000][i % 3]
        assert payload == bytes((i + j) % 251 for j in range(len(payload)))


def test_dump_of_an_active_recording_reads_to_where_its_frames_end(
    capsys: pytest.CaptureFixture[str], java_archive: Callable[[JavaArchive], Path]
) -> None:
    directory = java_archive(JAVA_BY_NAME["node0"])
    status, out, _ = _run(capsys, "dump", str(directory), "--recording", "0", "--json")
    assert status == 0
    frames = [r for r in map(json.loads, out.splitlines()) if r["kind"] == "frame"]
    assert len(frames) == 1005
    assert frames[-1]["position"] + ((frames[-1]["frameLength"] + 31) & -32) == 768544


def test_dump_of_a_corrupt_recording_ends_with_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = extract_java("node1", tmp_path)
    with RealStorage(directory).open("0-0.rec") as file:
        header = DataHeaderDecoder.unpack(file.read(96, 32))
        assert header[4] == 96
        file.write(96 + 8, (64).to_bytes(4, "little"))  # the second frame's term offset
    status, out, _ = _run(capsys, "dump", str(directory), "--recording", "0")
    assert status == 1
    lines = out.splitlines()
    assert lines[:2] == [
        "position=0 DATA frameLength=88 version=0 flags=END|BEGIN termOffset=0 sessionId=2021085391 "
        "streamId=100 termId=0 reservedValue=0",
        lines[1],
    ]
    assert lines[-1].startswith("position=96 error: ")
    assert lines[-1].endswith(
        "0-0.rec, offset 96, dataHeader.term_offset: bad frame at position 96: term_offset is 64, expected 96"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recording", "7"], "there is no recording 7"),
        (["--recording", "1"], "recording 1 is DELETED"),
        (["--recording", "0", "--from", "2000000"], "outside the recording"),
    ],
)
def test_dump_user_errors(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    java_archive: Callable[[JavaArchive], Path],
) -> None:
    directory = java_archive(JAVA_BY_NAME["archiveA"])
    status, out, err = _run(capsys, "dump", str(directory), *args)
    assert (status, out) == (2, "")
    assert err.startswith("error: ") and message in err


def test_dump_argument_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["archive", "dump", str(tmp_path), "--recording", "0", "--from", "33"])
    assert caught.value.code == 2
    assert "not a frame position" in capsys.readouterr().err
