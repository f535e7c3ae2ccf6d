"""The chaos run's checkers on planted histories (no processes): each can fire, and a clean history
passes; the history file round-trips; the nemesis schedule is decided by its seed alone."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import pytest

from cluster.sim.linearizability import UNKNOWN, Operation
from tools.chaos.checkers import FINAL_READER, check_linearizable, lost_writes, recovery_ms, summarise_ms
from tools.chaos.history import HistoryWriter, read_history, to_record
from tools.chaos.nemesis import FaultKind, Schedule


def _write(client: int, key: bytes, value: bytes, call: int, ret: int | None) -> Operation:
    return Operation(client, ("write", key, value), call, None if ret is not None else UNKNOWN, ret)


def _read(client: int, key: bytes, value: bytes | None, call: int, ret: int) -> Operation:
    return Operation(client, ("read", key), call, value, ret)


def test_an_acknowledged_write_the_final_read_does_not_see_is_lost() -> None:
    history = [
        _write(1, b"x", b"1.1", 0, 10),
        _write(2, b"x", b"2.1", 20, 30),  # acknowledged after 1.1 returned: 1.1 cannot be the final value
    ]
    final = _read(FINAL_READER, b"x", b"1.1", 100, 110)
    lost, phantoms = lost_writes([*history, final], [final])
    assert [item.write for item in lost] == [history[1]]
    assert phantoms == []
    assert check_linearizable([*history, final]).ok is False


def test_a_key_read_absent_after_an_acknowledged_write_lost_it() -> None:
    write = _write(1, b"y", b"1.1", 0, 10)
    final = _read(FINAL_READER, b"y", None, 100, 110)
    lost, _ = lost_writes([write, final], [final])
    assert [item.write for item in lost] == [write]


def test_concurrent_and_indeterminate_writes_may_win() -> None:
    history = [
        _write(1, b"x", b"1.1", 0, 50),
        _write(2, b"x", b"2.1", 10, 40),  # overlaps 1.1: either may be last
        _write(3, b"x", b"3.1", 60, None),  # timed out: may have taken effect
        Operation(1, ("cas", b"x", b"nope", b"1.2"), 70, False, 80),  # refused: writes nothing
    ]
    for value in (b"1.1", b"2.1", b"3.1"):
        final = _read(FINAL_READER, b"x", value, 100, 110)
        assert lost_writes([*history, final], [final]) == ([], []), value
        assert check_linearizable([*history, final]).ok is True, value


def test_a_value_nobody_wrote_is_a_phantom() -> None:
    final = _read(FINAL_READER, b"x", b"9.9", 100, 110)
    _, phantoms = lost_writes([_write(1, b"x", b"1.1", 0, 10), final], [final])
    assert phantoms and "9.9" in phantoms[0]


def test_a_stale_read_is_not_linearizable() -> None:
    history = [
        _write(1, b"x", b"1.1", 0, 10),
        _write(1, b"x", b"1.2", 20, 30),
        _read(2, b"x", b"1.1", 40, 50),  # invoked after 1.2 was acknowledged
    ]
    result = check_linearizable(history)
    assert result.ok is False
    assert "not linearizable" in result.explain()


def test_recovery_is_the_first_write_acknowledged_after_the_fault() -> None:
    history = [
        _write(1, b"x", b"1.1", 0, 10),
        _write(1, b"x", b"1.2", 1_000_000_000, 1_500_000_000),  # invoked after the fault at 0.9 s
        _read(2, b"x", b"1.2", 950_000_000, 960_000_000),  # a read does not count
    ]
    assert recovery_ms(history, [900_000_000, 2_000_000_000]) == [600.0, None]
    assert summarise_ms([600.0, None, 100.0, 200.0]) == {"min": 100.0, "median": 200.0, "max": 600.0}
    assert summarise_ms([None]) == {"min": None, "median": None, "max": None}


def test_the_history_file_round_trips(tmp_path: Path) -> None:
    history = [
        _read(1, b"x", None, 1, 2),
        _write(2, b"y", b"2.1", 3, None),
        Operation(3, ("cas", b"x", None, b"3.1"), 5, True, 9),
        Operation(3, ("cas", b"x", b"3.1", b"3.2"), 10, UNKNOWN, None),
    ]
    writer = HistoryWriter(tmp_path / "history.jsonl")
    writer.write(history)
    writer.close()
    assert read_history(tmp_path / "history.jsonl") == history
    line = (tmp_path / "history.jsonl").read_text().splitlines()[2]
    assert json.loads(line) == to_record(history[2])
    assert json.loads(line) == {
        "client": 3, "op": "cas", "key": "x", "expected": None, "new": "3.1",
        "callNs": 5, "returnNs": 9, "output": True,
    }  # fmt: skip


def test_the_schedule_is_decided_by_its_seed() -> None:
    kinds = (FaultKind.KILL, FaultKind.PAUSE)
    first = [Schedule(42, kinds, 2.0).next() for _ in range(1)]
    again = Schedule(42, kinds, 2.0)
    other = Schedule(43, kinds, 2.0)
    drawn = [again.next() for _ in range(20)]
    assert drawn[0] == first[0]
    assert drawn != [other.next() for _ in range(20)]
    for fault in drawn:
        assert fault is not None
        if fault.kind == FaultKind.PAUSE:
            assert fault.duration_s > 2.0  # longer than the leader heartbeat timeout
    assert Schedule(42, (), 2.0).next() is None


# ------------------------------------------------------------------------------ the members' logs


def _frame(position: int, length: int = 64, term: int = 0) -> dict[str, object]:
    return {"kind": "frame", "position": position, "type": "DATA", "frameLength": length, "termId": term}


def _message(position: int, name: str, **fields: object) -> dict[str, object]:
    return {"kind": "message", "position": position, "sbe": {"message": name, "fields": fields}}


def _planted_logs(monkeypatch: pytest.MonkeyPatch, logs: dict[int, list[dict[str, object]]]) -> list[Any]:
    from tools.chaos import logs as module

    monkeypatch.setattr(module, "_member_log", lambda config: logs[config.member_id])
    return [types.SimpleNamespace(member_id=member) for member in logs]


def _log(*ids: int) -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    for index, value in enumerate(ids):
        records += [_frame(64 * index), _message(64 * index, "SessionMessage", id=value)]
    return records


def test_logs_that_agree_below_the_commit_position_pass_whatever_lies_above(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tools.chaos.logs import compare_logs

    configs = _planted_logs(monkeypatch, {0: _log(1, 2, 3, 4), 1: _log(1, 2, 3, 9), 2: _log(1, 2, 3)})
    result = compare_logs(configs, 192)
    assert result.violations == () and result.records == 6 and result.position == 192


def test_a_committed_entry_that_differs_between_members_is_a_violation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tools.chaos.logs import compare_logs

    configs = _planted_logs(monkeypatch, {0: _log(1, 2, 3), 1: _log(1, 7, 3), 2: _log(1, 2, 3)})
    (violation,) = compare_logs(configs, 192).violations
    assert violation.startswith(
        "the logs of members 0 and 1 differ below the commit position, at record 3 (position 64)"
    )


def test_a_log_that_ends_before_the_commit_position_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.chaos.logs import compare_logs

    configs = _planted_logs(monkeypatch, {0: _log(1, 2, 3), 1: _log(1, 2)})
    violations = compare_logs(configs, 192).violations
    assert violations == (
        "member 1's log ends at 128, below the commit position 192",
        "below the commit position member 0's log holds 6 records and member 1's 4",
    )


def test_a_damaged_frame_in_a_log_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.chaos.logs import compare_logs

    damaged = [*_log(1, 2, 3), {"kind": "error", "position": 192, "error": "bad frame length"}]
    configs = _planted_logs(monkeypatch, {0: _log(1, 2, 3), 1: damaged})
    (violation,) = compare_logs(configs, 192).violations
    assert violation.startswith("member 1's log has a damaged frame: {'kind': 'error', 'position': 192")


def test_an_entry_caught_up_under_a_later_terms_session_id_still_agrees(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A member that caught up got the entries it lacked replayed under the new term's log session id."""
    from tools.chaos.logs import compare_logs

    caught_up = [
        {**record, "sessionId": 1} if record["position"] == 64 else record for record in _log(1, 2, 3)
    ]
    configs = _planted_logs(monkeypatch, {0: _log(1, 2, 3), 1: caught_up})
    assert compare_logs(configs, 192).violations == ()
