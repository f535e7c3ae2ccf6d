"""``python -m tools sim``: the exact command-line form the issue fixes, its summary line and exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tools.__main__ as cli
from cluster.consensus.node_sim import CANARIES, run_seed

ROOT = Path(__file__).resolve().parents[2]
SUMMARY_KEYS = {"seeds", "commands_committed", "faults", "violations", "liveness_failures", "failed_seeds"}


def _sim(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    status = cli.main(["sim", *args])
    return status, capsys.readouterr().out.splitlines()


def test_seeds_s_to_s_plus_n_minus_1_run_and_the_last_line_is_the_json_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, lines = _sim(capsys, "--seeds", "2", "--first-seed", "7", "--nodes", "3", "--json")
    assert status == 0
    per_seed = [json.loads(line) for line in lines[:-1]]
    assert [result["seed"] for result in per_seed] == [7, 8]
    summary = json.loads(lines[-1])
    assert set(summary) == SUMMARY_KEYS
    assert summary["seeds"] == 2 and summary["violations"] == 0 and summary["liveness_failures"] == 0
    assert summary["failed_seeds"] == []
    assert summary["commands_committed"] == sum(result["commands_committed"] for result in per_seed)
    kinds = {kind for result in per_seed for kind in result["faults"]}
    assert {"crash", "partition", "loss", "clock_drift"} <= kinds
    for kind in kinds:
        assert summary["faults"][kind] == sum(result["faults"].get(kind, 0) for result in per_seed)
    # a seed's line is that seed's run
    expected = run_seed(8, 3)
    assert (per_seed[1]["commands_committed"], per_seed[1]["faults"]) == (
        expected.commands_committed,
        expected.faults,
    )


def test_a_caught_canary_fails_the_run_and_prints_the_command_that_reproduces_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, lines = _sim(capsys, "--seeds", "2", "--first-seed", "0", "--canary", "commit_without_quorum")
    assert status == 1
    summary = json.loads(lines[-1])
    assert summary["violations"] > 0 and summary["failed_seeds"]
    failure = next(line for line in lines if line.startswith(f"seed {summary['failed_seeds'][0]} failed:"))
    reproduce = failure.split("reproduce: ", 1)[1]
    assert reproduce == (
        f"python -m tools sim --seeds 1 --first-seed {summary['failed_seeds'][0]} --nodes 3 "
        "--canary commit_without_quorum"
    )
    status, lines = _sim(capsys, *reproduce.split()[4:])  # the printed command, run as printed
    assert status == 1 and json.loads(lines[-1])["failed_seeds"] == [summary["failed_seeds"][0]]


def test_list_canaries_prints_one_name_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines = _sim(capsys, "--list-canaries")
    assert status == 0 and lines == sorted(CANARIES) and len(lines) >= 5


@pytest.mark.parametrize(
    "args",
    [
        ["--seeds", "0"],
        ["--seeds", "x"],
        ["--nodes", "4", "--seeds", "1"],
        ["--canary", "nope", "--seeds", "1"],
    ],
)
def test_bad_options_are_usage_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["sim", *args])
    assert excinfo.value.code == 2


def test_missing_seeds_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sim"]) == 2
    assert "--seeds N is required" in capsys.readouterr().err


def test_the_module_runs_as_a_process_with_the_documented_form() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tools", "sim", "--seeds", "1", "--first-seed", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["seeds"] == 1


def test_the_file_sync_level_is_in_the_reproducing_command(capsys: pytest.CaptureFixture[str]) -> None:
    canary = ["--canary", "commit_without_quorum"]
    status, lines = _sim(capsys, "--seeds", "1", "--first-seed", "2", "--file-sync-level", "1", *canary)
    assert status == 1
    failure = next(line for line in lines if line.startswith("seed 2 failed:"))
    assert failure.endswith(
        "reproduce: python -m tools sim --seeds 1 --first-seed 2 --nodes 3 --canary commit_without_quorum "
        "--file-sync-level 1"
    )
    status, lines = _sim(capsys, "--seeds", "1", "--first-seed", "4", "--file-sync-level", "1", "--quiet")
    summary = json.loads(lines[-1])
    assert status == 0 and summary["faults"].get("crash_power_loss", 0) > 0


@pytest.mark.parametrize("gone", ["--engine", "--network"])
def test_the_retired_engine_options_are_usage_errors(gone: str) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["sim", "--seeds", "1", gone, "node"])
    assert excinfo.value.code == 2
