"""``python -m tools bench transport``: runs end to end against pyaeron and reports every case.

Only the report's shape is checked (timings depend on the machine); a missed target never changes the exit
status. Without pyaeron the benchmark is a usage error, which is checked without pyaeron too.
"""

import json
import sys

import pytest
from support.needs import need_module

from tools.__main__ import main

CASES = {
    "throughput.udp_32b": (0.20, True),
    "latency.udp_32b.p50": (None, False),
    "latency.udp_32b.p99": (3.0, False),
}


def test_bench_transport_quick_json_reports_ours_pyaeron_and_ratios(
    capsys: pytest.CaptureFixture[str],
) -> None:
    need_module("pyaeron", "the real Aeron C driver")
    assert main(["bench", "transport", "--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["benchmark"] == "transport"
    assert report["quick"] is True
    cases = {case["id"]: case for case in report["cases"]}
    assert set(cases) == set(CASES)
    for case_id, (target, higher_is_better) in CASES.items():
        case = cases[case_id]
        assert case["ours"] > 0 and case["pyaeron"] > 0, case_id
        assert case["ratio"] == pytest.approx(case["ours"] / case["pyaeron"]), case_id
        assert case["target"] == target, case_id
        assert case["higher_is_better"] is higher_is_better, case_id
        assert case["status"] in ({"ok", "MISSED"} if target is not None else {"info"}), case_id
    assert set(report["missed"]) == {i for i, case in cases.items() if case["status"] == "MISSED"}
    for name in ("ours_throughput", "pyaeron_throughput", "ours_latency", "pyaeron_latency"):
        assert len(report["runs"][name]) == report["repeats"] == 1
        assert name in report["configs"]


def test_bench_transport_without_pyaeron_is_an_error_with_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pyaeron", None)  # makes ``import pyaeron`` raise ImportError
    assert main(["bench", "transport", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pyaeron" in err
    assert err.count("\n") == 1
