"""``python -m tools bench cluster``: each side -- our 3-node echo cluster of real processes and the
pysyncobj anchor -- runs briefly for real, and the report has its shape. Timings depend on the machine:
only the shape, the figures' signs and the arithmetic of ratios and targets are checked. The benchmark
stops every process it starts itself."""

import json
import sys
from typing import Any

import pytest
from support.needs import need_module

from tools.__main__ import main
from tools.bench.cluster import Figures, Settings, format_table, report

KEYS = [
    "benchmark", "python", "pysyncobj", "members", "message_size", "rate", "duration_s", "count", "window",
    "ours", "ours_skipped", "anchor", "anchor_skipped", "ratios", "targets", "missed", "java_reference",
]  # fmt: skip
FIGURES = [
    "windowed_msgs_per_s", "rate_msgs_per_s", "rate_p50_us", "rate_p99_us", "rate_p99_9_us", "one_p50_us",
    "one_p99_us", "incomplete",
]  # fmt: skip
RATIOS = ["windowed", "rate_achieved", "rate_p50", "rate_p99", "rate_p99_9", "one_p50", "one_p99"]


def _check_figures(figures: dict[str, Any]) -> None:
    assert list(figures) == FIGURES
    assert figures["windowed_msgs_per_s"] > 0 and figures["rate_msgs_per_s"] > 0
    assert 0 < figures["rate_p50_us"] <= figures["rate_p99_us"] <= figures["rate_p99_9_us"]
    assert 0 < figures["one_p50_us"] <= figures["one_p99_us"]
    assert figures["incomplete"] >= 0  # a re-election on a loaded machine may lose some


def test_bench_cluster_pysyncobj_side_reports_its_three_measurements(
    capsys: pytest.CaptureFixture[str],
) -> None:
    need_module("pysyncobj", "the anchor of bench cluster")
    assert main(["bench", "cluster", "--sides", "pysyncobj", "--duration", "0.5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == KEYS
    assert (data["benchmark"], data["members"], data["message_size"], data["rate"]) == (
        "cluster",
        3,
        32,
        5000,
    )
    assert data["pysyncobj"] == "0.3.17"
    _check_figures(data["anchor"])
    assert data["anchor_skipped"] is None
    assert data["ours"] is None and data["ours_skipped"] == "not asked for (--sides pysyncobj)"
    assert list(data["ratios"]) == RATIOS and set(data["ratios"].values()) == {None}
    assert [target["status"] for target in data["targets"]] == ["n/a", "n/a"]
    assert data["java_reference"]["windowed_msgs_per_s"] == 220_000


def test_bench_cluster_our_side_against_cluster_up_with_the_echo_service(
    capsys: pytest.CaptureFixture[str],
) -> None:
    need_module("pysyncobj", "the anchor of bench cluster")
    assert main(["bench", "cluster", "--sides", "ours", "--duration", "0.5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    _check_figures(data["ours"])
    assert data["ours_skipped"] is None
    assert data["targets"][1]["value"] == data["ours"]["rate_p50_us"]


def test_the_table_shows_ratios_targets_and_the_java_reference() -> None:
    ours = Figures(45_000.0, 5_000.0, 800.0, 1500.0, 3000.0, 400.0, 900.0, 0)
    anchor = Figures(15_000.0, 4_999.0, 400.0, 2000.0, 5000.0, 150.0, 380.0, 2)
    data = report(Settings(5.0, None, 64, 1.0), ours, None, anchor, None, "0.3.17")
    assert data["ratios"]["windowed"] == 3.0 and data["ratios"]["rate_p50"] == 2.0
    assert [(t["value"], t["status"]) for t in data["targets"]] == [(3.0, "ok"), (800.0, "ok")]
    assert data["missed"] == []
    lines = format_table(data).splitlines()
    assert lines[5].split() == ["windowed", "throughput", "(msgs/s)", "45,000", "15,000", "3.00x"]
    assert "pysyncobj: 2 messages sent were never answered" in lines
    assert "  windowed throughput, ours / pysyncobj: 3, target >= 3x: ok" in lines
    assert lines[-1].startswith("reference (information): Java Aeron Cluster 1.47 on 2 cores: ~220,000 msg/s")
    slow = Figures(30_000.0, 5_000.0, 1200.0, 1500.0, 3000.0, 400.0, 900.0, 0)
    missed = report(Settings(5.0, None, 64, 1.0), slow, None, anchor, None, "0.3.17")
    assert missed["missed"] == ["windowed_throughput_vs_pysyncobj", "rate_p50_us"]


def test_bench_cluster_without_pysyncobj_is_an_error_with_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pysyncobj", None)  # makes ``import pysyncobj`` raise ImportError
    assert main(["bench", "cluster", "--duration", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bench cluster needs pysyncobj") and err.count("\n") == 1


def test_bench_cluster_bad_duration_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "cluster", "--duration", "0"]) == 2
    assert capsys.readouterr().err == "error: --duration 0.0: must be positive\n"
