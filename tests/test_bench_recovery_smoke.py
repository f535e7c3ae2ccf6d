"""``python -m tools bench recovery``: three clusters of real key-value member processes, loaded with a few
thousand keys, restarted from a snapshot, by a full log replay, and empty, in both output forms.

Times depend on the machine: only the report's shape, the paths the restarts took (checked by the
benchmark itself from the members' events), the logs' lengths and the arithmetic of the ratio are
checked, never a time against a bound. Every phase has a deadline and the benchmark stops every process
it starts by its pid.
"""

import json

import pytest

from tools.__main__ import main
from tools.bench.recovery import TARGET, RecoveryResult, Restart, format_text

KEYS = 2_000
TAIL = 100
ENTRY_BYTES = 128  # a write of a 12-byte key and a 16-byte value, framed in the log
FIELDS = [
    "benchmark", "python", "members", "keys", "tailWrites", "loadSeconds", "snapshotSeconds",
    "snapshotPosition", "logBytes", "restartFromSnapshotSeconds", "restartFullReplaySeconds",
    "restartBaselineSeconds", "ratio", "target", "status", "fromSnapshot", "fullReplay", "baseline",
]  # fmt: skip
RESTART_FIELDS = [
    "logBytes", "fromSnapshot", "leaderSeconds", "allMembersSeconds", "readSeconds", "restartSeconds",
    "snapshotReadSeconds",
]  # fmt: skip


def test_bench_recovery_restarts_from_the_snapshot_and_by_full_replay_on_logs_alike(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "recovery", "--keys", str(KEYS), "--tail", str(TAIL), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("recovery benchmark: 3 member processes on 127.0.0.1, key-value service")
    report = json.loads(out.splitlines()[-1])
    assert list(report) == FIELDS
    assert (report["benchmark"], report["members"], report["keys"], report["tailWrites"]) == (
        "recovery",
        3,
        KEYS,
        TAIL,
    )
    from_snapshot, full_replay, baseline = report["fromSnapshot"], report["fullReplay"], report["baseline"]
    for restart in (from_snapshot, full_replay, baseline):
        assert list(restart) == RESTART_FIELDS
        assert 0 < restart["leaderSeconds"] <= restart["allMembersSeconds"] <= restart["restartSeconds"]
        assert 0 < restart["readSeconds"] <= restart["restartSeconds"]
    # every member started from the snapshot the admin path took, or from none
    assert from_snapshot["fromSnapshot"] == report["snapshotPosition"]
    assert full_replay["fromSnapshot"] is None and baseline["fromSnapshot"] is None
    assert 0 < from_snapshot["snapshotReadSeconds"] <= from_snapshot["leaderSeconds"]
    assert full_replay["snapshotReadSeconds"] is None and baseline["snapshotReadSeconds"] is None
    # the snapshot holds the keys; the tail follows it; the logs differ by the snapshot's action alone
    assert KEYS * ENTRY_BYTES < report["snapshotPosition"] < report["logBytes"]
    assert report["logBytes"] - report["snapshotPosition"] >= TAIL * ENTRY_BYTES
    assert 0 < report["logBytes"] - full_replay["logBytes"] <= 128
    assert report["logBytes"] == from_snapshot["logBytes"] and baseline["logBytes"] < 1024
    assert report["restartFromSnapshotSeconds"] == from_snapshot["restartSeconds"]
    assert report["restartFullReplaySeconds"] == full_replay["restartSeconds"]
    ratio = full_replay["restartSeconds"] / from_snapshot["restartSeconds"]
    assert report["ratio"] == pytest.approx(ratio, abs=0.002)
    assert report["target"] == TARGET
    assert report["status"] == ("ok" if report["ratio"] >= TARGET else "MISSED")
    assert report["snapshotSeconds"] > 0 and report["loadSeconds"] > 0


def test_bench_recovery_text_has_a_row_per_restart_and_the_ratio_against_the_target() -> None:
    result = RecoveryResult(
        keys=100_000,
        tail=1_000,
        load_s=20.5,
        snapshot_s=1.25,
        snapshot_position=12_800_320,
        from_snapshot=Restart(
            12_928_416, 12_800_320, leader_s=6.5, settled_s=6.6, read_s=9.0, snapshot_read_s=5.5
        ),
        full_replay=Restart(12_928_320, None, leader_s=6.6, settled_s=6.7, read_s=45.0),
        baseline=Restart(448, None, leader_s=4.0, settled_s=4.4, read_s=4.2),
    )
    lines = format_text(result).splitlines()
    assert lines[1] == (
        "  100,000 keys written in 20.50 s; snapshot at log position 12,800,320 in 1.25 s (request to DONE); "
        "1,000 writes after it"
    )
    assert lines[4].split() == ["from", "the", "snapshot", "12,928,416", "6.50", "6.60", "9.00", "9.00"]
    assert lines[5].split() == ["full", "log", "replay", "12,928,320", "6.60", "6.70", "45.00", "45.00"]
    assert lines[6].split() == ["baseline", "(one", "write)", "448", "4.00", "4.40", "4.20", "4.40"]
    assert lines[7] == "  from the snapshot: every member's consensus module had read the snapshots by 5.50 s"
    assert lines[9] == "  ratio full replay / from the snapshot: 5.00x (target >= 5x): met"
    slower = RecoveryResult(**{**_fields(result), "full_replay": Restart(1, None, 6.6, 6.7, 18.0)})
    assert "2.00x (target >= 5x): MISSED" in format_text(slower)
    assert slower.to_json()["status"] == "MISSED" and result.to_json()["status"] == "ok"


def _fields(result: RecoveryResult) -> dict[str, object]:
    return {name: getattr(result, name) for name in RecoveryResult.__dataclass_fields__}


def test_bench_recovery_needs_at_least_one_key_and_one_tail_write(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "recovery", "--keys", "0"]) == 2
    assert capsys.readouterr().err == "error: --keys 0: must be at least 1\n"
    assert main(["bench", "recovery", "--tail", "-1"]) == 2
    assert capsys.readouterr().err == "error: --tail -1: must be at least 1\n"
