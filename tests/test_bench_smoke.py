"""``python -m tools bench codec``: runs end to end and reports every case (no timing assertions).

A benchmark's numbers depend on the machine, so these tests check only the report's shape: every case is
present with positive timings, and a missed target never changes the exit status.
"""

import json

import pytest

from tools.__main__ import main

CASE_IDS = {
    "session_message_header.decode",
    "session_message_header.decode_flyweight",
    "session_message_header.read_field",
    "session_message_header.encode",
    "session_message_header.encode_flyweight",
    "car.decode",
    "car.decode_flyweight",
    "car.read_field",
    "car.encode",
    "car.encode_flyweight",
}
TARGETED = {
    "session_message_header.decode": 2.0,
    "session_message_header.read_field": 1.5,
    "session_message_header.encode": 2.0,
    "car.decode": 2.0,
    "car.read_field": 1.5,
    "car.encode": 2.0,
}


def test_bench_codec_quick_json_reports_every_case_with_positive_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["bench", "codec", "--quick", "--json"])
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert report["benchmark"] == "codec"
    assert report["quick"] is True
    cases = {case["id"]: case for case in report["cases"]}
    assert len(cases) == len(report["cases"]), "case ids are unique"
    assert set(cases) == CASE_IDS
    for case_id, case in cases.items():
        assert case["floor_ns"] > 0, case_id
        assert case["ours_ns"] > 0, case_id
        assert case["ratio"] > 0, case_id
        assert case["target"] == TARGETED.get(case_id), case_id
        assert case["status"] in ({"ok", "MISSED"} if case_id in TARGETED else {"info"}), case_id
    assert set(report["missed"]) == {i for i, case in cases.items() if case["status"] == "MISSED"}


def test_bench_codec_quick_table_names_every_case_and_a_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["bench", "codec", "--quick"])
    assert status == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("SessionMessageHeader:", "Car:"))]
    assert len(rows) == len(CASE_IDS)
    assert all(row.split()[-1] in ("ok", "MISSED", "info") for row in rows)
    assert "targets met" in out or "MISSED" in out


def test_bench_without_a_benchmark_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["bench"])
    assert excinfo.value.code == 2
