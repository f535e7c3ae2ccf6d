"""``python -m tools sim`` shows a long run's progress on stderr and leaves stdout as it was."""

from __future__ import annotations

import io
import json

import pytest

import tools.__main__ as cli
from tools import sim_cmd


class _Clock:
    """A clock that moves ``step_s`` every time it is read."""

    def __init__(self, step_s: float) -> None:
        self.now_s = 0.0
        self.step_s = step_s

    def __call__(self) -> float:
        self.now_s += self.step_s
        return self.now_s


def test_progress_prints_at_most_one_line_per_interval_and_a_last_line() -> None:
    stream = io.StringIO()
    progress = sim_cmd.Progress(10, stream, interval_s=5.0, clock=_Clock(2.0))
    for done in range(1, 11):
        progress.update(done, failed=done // 4, committed=100 * done)
    progress.finish(10, failed=2, committed=1000)
    lines = stream.getvalue().splitlines()
    # the clock reads 2 s at the start and moves 2 s per seed: lines after seeds 3, 6 and 9, then the last
    assert lines == [
        "sim: 3/10 seeds, 0 failed, 300 commands committed, 6 s elapsed, about 14 s left",
        "sim: 6/10 seeds, 1 failed, 600 commands committed, 12 s elapsed, about 8 s left",
        "sim: 9/10 seeds, 2 failed, 900 commands committed, 18 s elapsed, about 2 s left",
        "sim: 10/10 seeds, 2 failed, 1000 commands committed, 22 s elapsed",
    ]


def test_a_short_run_prints_no_progress() -> None:
    stream = io.StringIO()
    progress = sim_cmd.Progress(3, stream, interval_s=5.0, clock=_Clock(1.0))
    for done in range(1, 4):
        progress.update(done, failed=0, committed=done)
    progress.finish(3, failed=0, committed=3)
    assert stream.getvalue() == ""


def test_sim_writes_progress_to_stderr_and_the_summary_stays_the_last_line_of_stdout(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sim_cmd, "PROGRESS_INTERVAL_S", 0.0)
    assert cli.main(["sim", "--seeds", "2", "--first-seed", "3", "--nodes", "1"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.splitlines()[-1])
    assert len(captured.out.splitlines()) == 1 and summary["seeds"] == 2
    progress = captured.err.splitlines()
    assert [line.split(",")[0] for line in progress] == ["sim: 1/2 seeds", "sim: 2/2 seeds", "sim: 2/2 seeds"]
    assert progress[-1].startswith(f"sim: 2/2 seeds, 0 failed, {summary['commands_committed']} commands")

    assert cli.main(["sim", "--seeds", "2", "--first-seed", "3", "--nodes", "1", "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == captured.out
