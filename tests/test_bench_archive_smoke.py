"""``python -m tools bench archive``: runs end to end with a tiny size and reports every case.

Only the report's shape is checked (timings depend on the machine); a missed target never changes the exit
status.
"""

import json

import pytest

from tools.__main__ import main

CASES = {
    "record": 0.5,
    "record.writer_only": None,
    "replay": 0.5,
    "replay.floor": None,
    "replay.reader_only": None,
}
TINY = ["--quick", "--messages", "400", "--term-length", "64k", "--block-length", "8k"]


def test_bench_archive_quick_json_reports_ours_plain_and_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "archive", *TINY, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["benchmark"] == "archive"
    assert report["quick"] is True
    assert report["repeats"] == 1
    assert report["messages"] == 400
    assert report["message_length"] == 32 and report["frame_length"] == 64
    assert report["bytes"] == 400 * 64
    assert report["term_length"] == 64 * 1024 and report["block_length"] == 8 * 1024
    assert report["file_sync_level"] == 0
    cases = {case["id"]: case for case in report["cases"]}
    assert len(cases) == len(report["cases"]), "case ids are unique"
    assert set(cases) == set(CASES)
    for case_id, target in CASES.items():
        case = cases[case_id]
        for side in ("ours", "plain"):
            assert case[f"{side}_bytes_per_s"] > 0, case_id
            assert case[f"{side}_messages_per_s"] == pytest.approx(case[f"{side}_bytes_per_s"] / 64), case_id
            assert 0 < case[f"{side}_best_s"] <= case[f"{side}_median_s"], case_id
        assert case["ratio"] == pytest.approx(case["ours_bytes_per_s"] / case["plain_bytes_per_s"]), case_id
        assert case["median_ratio"] == pytest.approx(case["plain_median_s"] / case["ours_median_s"]), case_id
        assert case["target"] == target, case_id
        assert case["higher_is_better"] is True, case_id
        assert case["status"] in ({"ok", "MISSED"} if target is not None else {"info"}), case_id
    assert set(report["missed"]) == {i for i, case in cases.items() if case["status"] == "MISSED"}
    assert set(report["configs"]) == {
        "record_ours",
        "record_plain",
        "replay_ours",
        "replay_plain",
        "replay_floor",
    }
    # 400 frames of 64 bytes (25,600 bytes) in blocks of at most 8 KiB: 4 blocks each way
    assert "4 blocks" in report["configs"]["record_ours"]
    assert "4 blocks" in report["configs"]["replay_ours"]


def test_bench_archive_quick_table_names_every_case_and_a_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "archive", *TINY]) == 0
    out = capsys.readouterr().out
    assert out.startswith("archive benchmark: ")
    rows = [line for line in out.splitlines() if line.startswith(("record:", "replay:"))]
    assert len(rows) == len(CASES)
    assert all(row.split()[-1] in ("ok", "MISSED", "info") for row in rows)
    assert "targets met" in out or "MISSED" in out


@pytest.mark.parametrize(
    "options",
    [
        ["--messages", "0"],
        ["--repeats", "0"],
        ["--term-length", "100k"],
        ["--messages", "400", "--term-length", "64k", "--block-length", "32"],
        ["--messages", "1000", "--term-length", "64k"],  # 64,000 bytes do not fit in half a term
    ],
)
def test_bench_archive_bad_sizes_are_usage_errors_with_status_2(
    options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "archive", "--quick", *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
