"""A node's injectable clock for clock-jump faults: ``AdjustableClock`` (the wall clock steps either way,
the monotonic clock only leaps ahead) and ``python -m tools node --clock-file`` 's ``ClockControl``,
which reads the offsets when asked and refuses a file it cannot use without touching the clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cluster.transport.clock import AdjustableClock, ManualClock
from cluster.transport.errors import AgentError
from tools.node_cmd import ClockControl


def test_an_adjustable_clock_moves_both_clocks_by_their_offsets() -> None:
    base = ManualClock(5_000_000_000, epoch_base_ms=1_000_000)
    clock = AdjustableClock(base)
    assert (clock.nano_time(), clock.epoch_ms()) == (5_000_000_000, 1_005_000)
    clock.set_offsets(epoch_offset_ms=-30_000, nano_offset_ns=2_000_000_000)
    assert (clock.nano_time(), clock.epoch_ms()) == (7_000_000_000, 975_000)
    base.advance(1_000_000)
    assert (clock.nano_time(), clock.epoch_ms()) == (7_001_000_000, 975_001)
    with pytest.raises(AgentError, match="the monotonic clock cannot go back"):
        clock.set_offsets(epoch_offset_ms=0, nano_offset_ns=1)
    assert clock.nano_time() == 7_001_000_000  # refused: nothing moved
    clock.set_offsets(epoch_offset_ms=0, nano_offset_ns=2_000_000_000)  # the wall clock steps back alone
    assert clock.epoch_ms() == 1_005_001


def _control(tmp_path: Path, content: str) -> tuple[ClockControl, AdjustableClock]:
    path = tmp_path / "node0.clock"
    path.write_text(content, encoding="utf-8")
    clock = AdjustableClock(ManualClock(0, epoch_base_ms=10_000))
    return ClockControl(str(path), clock), clock


def test_the_clock_file_is_read_only_when_asked(tmp_path: Path) -> None:
    control, clock = _control(tmp_path, json.dumps({"epochOffsetMs": 2_500, "nanoOffsetNs": 7}))
    assert not control.pending and clock.epoch_ms() == 10_000
    control.request()  # what SIGUSR1 does: nothing but the flag
    assert control.pending and clock.epoch_ms() == 10_000
    assert control.apply() == "clock moved: wall clock +2500 ms, monotonic clock +7 ns from the machine's"
    assert not control.pending and (clock.epoch_ms(), clock.nano_time()) == (12_500, 7)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("not json", "Expecting value"),
        (json.dumps({"epochOffsetMs": 1}), "'nanoOffsetNs'"),
        (json.dumps({"epochOffsetMs": 1.5, "nanoOffsetNs": 0}), "the offsets must be integers"),
        (json.dumps({"epochOffsetMs": True, "nanoOffsetNs": 0}), "the offsets must be integers"),
        (json.dumps({"epochOffsetMs": 0, "nanoOffsetNs": -1}), "the monotonic clock cannot go back"),
        (json.dumps([1, 2]), "list indices must be integers"),
    ],
)
def test_a_clock_file_the_node_cannot_use_is_refused_and_moves_nothing(
    tmp_path: Path, content: str, reason: str
) -> None:
    control, clock = _control(tmp_path, content)
    said = control.apply()
    assert said.startswith(f"clock file refused: {control.path}: ") and reason in said, said
    assert (clock.epoch_ms(), clock.nano_time()) == (10_000, 0)


def test_a_missing_clock_file_is_refused(tmp_path: Path) -> None:
    control = ClockControl(str(tmp_path / "absent.clock"), AdjustableClock(ManualClock()))
    assert "No such file or directory" in control.apply()
