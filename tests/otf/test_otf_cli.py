"""``python -m tools sbe decode|encode``: exact output lines, error lines and exit statuses."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.paths import CAR_BIG_ENDIAN, REPO, SCHEMAS, VECTORS

import tools.__main__ as cli

CLUSTER = str(SCHEMAS / "aeron-cluster-codecs.xml")
SESSION_MESSAGE_HEADER_HEX = "180001006f000c0007000000000000002a000000000000007b68e5cf8b010000"
SESSION_MESSAGE_HEADER_LINE = (
    '{"schemaId": 111, "templateId": 1, "version": 12, "blockLength": 24, "message": "SessionMessageHeader", '
    '"fields": {"leadershipTermId": 7, "clusterSessionId": 42, "timestamp": 1700000000123}}'
)


def _cluster_vectors() -> list[dict[str, Any]]:
    with open(VECTORS / "cluster-vectors.json") as f:
        vectors: list[dict[str, Any]] = json.load(f)["vectors"]
    return vectors


def _run(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin: bytes = b""
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    status = cli.main(["sbe", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_decode_hex_prints_the_exact_json_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, err = _run(
        ["decode", "--schema", CLUSTER, "--hex", SESSION_MESSAGE_HEADER_HEX], capsys, monkeypatch
    )
    assert (status, out, err) == (0, SESSION_MESSAGE_HEADER_LINE + "\n", "")


def test_decode_hex_ignores_whitespace_and_prints_one_line_per_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spaced = " ".join(SESSION_MESSAGE_HEADER_HEX[i : i + 8] for i in range(0, 64, 8))
    status, out, _ = _run(
        ["decode", "--schema", CLUSTER, "--hex", f"{spaced}\n{spaced}"], capsys, monkeypatch
    )
    assert (status, out) == (0, (SESSION_MESSAGE_HEADER_LINE + "\n") * 2)


def test_decode_of_every_cluster_vector_prints_its_fields(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = _cluster_vectors()
    blob = "".join(v["hex"] for v in vectors)
    status, out, _ = _run(["decode", "--schema", CLUSTER, "--hex", blob], capsys, monkeypatch)
    assert status == 0
    lines = out.splitlines()
    assert len(lines) == len(vectors)
    for line, v in zip(lines, vectors, strict=True):
        assert line == json.dumps(
            {
                "schemaId": v["schemaId"],
                "templateId": v["templateId"],
                "version": v["schemaVersion"],
                "blockLength": v["blockLength"],
                "message": v["message"],
                "fields": v["fields"],
            }
        )


def test_decode_of_garbage_prints_an_error_line_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, _ = _run(["decode", "--schema", CLUSTER, "--hex", "deadbeef00"], capsys, monkeypatch)
    assert status == 1
    (line,) = out.splitlines()
    error = json.loads(line)
    assert list(error) == ["error", "offset"]
    assert error["offset"] == 0 and "header" in error["error"]


def test_decode_stops_at_the_first_bad_message_after_printing_the_good_ones(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_template = "1800ffff6f000c00" + SESSION_MESSAGE_HEADER_HEX[16:]
    status, out, _ = _run(
        ["decode", "--schema", CLUSTER, "--hex", SESSION_MESSAGE_HEADER_HEX + bad_template],
        capsys,
        monkeypatch,
    )
    assert status == 1
    first, second = out.splitlines()
    assert first == SESSION_MESSAGE_HEADER_LINE
    assert json.loads(second)["offset"] == 32 and "65535" in json.loads(second)["error"]


def test_decode_reads_a_file_and_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "messages.bin"
    path.write_bytes(bytes.fromhex(SESSION_MESSAGE_HEADER_HEX))
    assert _run(["decode", "--schema", CLUSTER, str(path)], capsys, monkeypatch)[:2] == (
        0,
        SESSION_MESSAGE_HEADER_LINE + "\n",
    )
    assert _run(
        ["decode", "--schema", CLUSTER, "-"],
        capsys,
        monkeypatch,
        stdin=bytes.fromhex(SESSION_MESSAGE_HEADER_HEX),
    )[:2] == (0, SESSION_MESSAGE_HEADER_LINE + "\n")


def test_encode_round_trips_decode_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = _cluster_vectors()
    lines = [
        json.dumps({"message": v["message"], "fields": v["fields"], "version": v["schemaVersion"]})
        for v in vectors
    ]
    status, out, err = _run(
        ["encode", "--schema", CLUSTER], capsys, monkeypatch, stdin=("\n".join(lines) + "\n").encode()
    )
    assert (status, err) == (0, "")
    assert out.splitlines() == [v["hex"] for v in vectors]
    # decode's own output is valid encode input.
    status, out, _ = _run(
        ["encode", "--schema", CLUSTER],
        capsys,
        monkeypatch,
        stdin=(SESSION_MESSAGE_HEADER_LINE + "\n").encode(),
    )
    assert (status, out) == (0, SESSION_MESSAGE_HEADER_HEX + "\n")


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", "line 1"),
        ('["a list"]', "JSON object"),
        ('{"fields": {}}', "message"),
        ('{"message": "SessionMessageHeader", "fields": {"leadershipTermId": "x"}}', "leadershipTermId"),
        ('{"message": "NoSuchMessage", "fields": {}}', "NoSuchMessage"),
    ],
)
def test_encode_of_a_bad_line_reports_on_stderr_and_exits_1(
    line: str, match: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, err = _run(["encode", "--schema", CLUSTER], capsys, monkeypatch, stdin=line.encode() + b"\n")
    assert status == 1 and out == ""
    assert err.startswith("error: line 1:") and match in err


def test_a_bad_schema_is_a_user_error_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<notASchema/>")
    status, out, err = _run(["decode", "--schema", str(bad), "--hex", "00"], capsys, monkeypatch)
    assert status == 2 and out == ""
    assert err.startswith("error: ") and "bad.xml" in err


def test_bad_hex_is_a_user_error_with_status_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, _, err = _run(["decode", "--schema", CLUSTER, "--hex", "xyz"], capsys, monkeypatch)
    assert status == 2 and err.startswith("error: ")


def test_the_real_command_line(tmp_path: Path) -> None:
    """End to end through ``python -m tools``: the big-endian car encodes and decodes back."""
    schema = str(CAR_BIG_ENDIAN)
    fields = {
        "serialNumber": 1,
        "modelYear": 2,
        "available": "F",
        "code": "B",
        "someNumbers": [1, 2, 3, 4],
        "vehicleCode": "v",
        "extras": [],
        "engine": {
            "capacity": 1,
            "numCylinders": 2,
            "manufacturerCode": "abc",
            "efficiency": 3,
            "boosterEnabled": "F",
            "booster": {"BoostType": "KERS", "horsePower": 4},
        },
        "fuelFigures": [],
        "performanceFigures": [],
        "manufacturer": "",
        "model": "",
        "activationCode": "",
    }
    run = [sys.executable, "-m", "tools", "sbe"]
    encoded = subprocess.run(
        [*run, "encode", "--schema", schema],
        input=json.dumps({"message": "Car", "fields": fields}),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout.strip()
    decoded = subprocess.run(
        [*run, "decode", "--schema", schema, "--hex", encoded],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    assert json.loads(decoded)["fields"] == fields
