"""The recording log model (``docs/consensus.md``, "Recording log"): its rules, back-filling,
truncation, the recovery plan, and the 64-byte record format (Aeron's ``RecordingLog``)."""

from __future__ import annotations

import contextlib
import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.consensus.core.errors import ConsensusError, RecordingLogError
from cluster.consensus.core.recording_log import (
    MAX_ENDPOINT_LENGTH,
    NULL_VALUE,
    EntryType,
    RecordingLog,
    RecordingLogEntry,
    RecoveryLog,
    decode_entries,
    encode_entries,
)

LOG_ID = 7  # the log recording id every TERM entry uses


def term_log(*bases: int) -> RecordingLog:
    """Terms 0..n-1 starting at ``bases``; every term but the last is closed by the next."""
    log = RecordingLog()
    for term_id, base in enumerate(bases):
        log.append_term(LOG_ID, term_id, base, timestamp=100 + term_id)
    return log


def terms(log: RecordingLog) -> list[tuple[int, int, int, bool]]:
    """(term id, base, end, valid) of every TERM entry, in order."""
    return [
        (e.leadership_term_id, e.term_base_log_position, e.log_position, e.is_valid)
        for e in log.entries
        if e.is_term
    ]


def snapshot_set(
    log: RecordingLog, term_id: int, base: int, position: int, services: int, first_id: int
) -> None:
    """A snapshot as the consensus module writes one: services n-1..0, then its own (-1) last."""
    for service_id in range(services - 1, -1, -1):
        log.append_snapshot(first_id + 1 + service_id, term_id, base, position, 1_000, service_id)
    log.append_snapshot(first_id, term_id, base, position, 1_000, -1)


# ------------------------------------------------------------------------------------ TERM rules


def test_appending_a_term_closes_the_previous_one_at_its_base() -> None:
    log = term_log(0, 1000, 1000, 2500)
    assert terms(log) == [
        (0, 0, 1000, True),
        (1, 1000, 1000, True),
        (2, 1000, 2500, True),
        (3, 2500, -1, True),
    ]
    assert log.find_last_term() == log.get_term(3)
    assert log.find_term(9) is None
    assert log.term_recording_id == LOG_ID
    assert [e.entry_index for e in log.entries] == [0, 1, 2, 3]


def test_appending_below_a_known_term_is_closed_at_its_base() -> None:
    log = RecordingLog()
    log.append_term(LOG_ID, 0, 0, 1)
    log.append_term(LOG_ID, 2, 500, 1)
    entry = log.append_term(LOG_ID, 1, 300, 1)
    assert entry.log_position == 500
    assert terms(log) == [(0, 0, 300, True), (1, 300, 500, True), (2, 500, -1, True)]
    assert [e.leadership_term_id for e in log.entries] == [0, 1, 2]  # sorted, although appended 0, 2, 1
    assert [e.entry_index for e in log.entries] == [0, 2, 1]


@pytest.mark.parametrize(
    ("setup", "append", "message"),
    [
        ((0,), (LOG_ID, 0, 0), "TERM leadership_term_id=0: duplicate; entry 0 is that term"),
        ((0,), (LOG_ID + 1, 1, 10), "recording_id=8, but the log's TERM entries use 7"),
        ((), (-1, 0, 0), "recording_id=-1 is out of range"),
        ((), (LOG_ID, -1, 0), "leadership_term_id=-1 is out of range"),
        ((), (LOG_ID, 0, -5), "term_base_log_position=-5 is out of range"),
        ((0, 100), (LOG_ID, 2, 50), "term_base_log_position=50 goes backwards from term 1's base 100"),
        ((0, 100, 200), (LOG_ID, 3, 250), "term_base_log_position=250, but term 2 ended at 200"),
    ],
)
def test_term_rules(setup: tuple[int, ...], append: tuple[int, int, int], message: str) -> None:
    log = term_log(*setup)
    if len(setup) == 3:  # close the last term first
        log = term_log(0, 100)
        log.append_term(LOG_ID, 2, 150, 1)
        log.commit_log_position(2, 200)
    before = log.copy()
    with pytest.raises(RecordingLogError) as caught:
        log.append_term(*append, timestamp=1)
    assert message in str(caught.value)
    assert log == before  # nothing changed


def test_term_may_not_start_before_a_lower_terms_end_across_a_gap() -> None:
    log = term_log(0)
    log.commit_log_position(0, 100)
    with pytest.raises(RecordingLogError, match="term_base_log_position=50 is before term 0's end 100"):
        log.append_term(LOG_ID, 5, 50, 1)
    assert log.append_term(LOG_ID, 5, 150, 1).term_base_log_position == 150  # a gap may follow the end


def test_term_may_not_start_after_a_later_terms_base() -> None:
    log = RecordingLog()
    log.append_term(LOG_ID, 3, 500, 1)
    with pytest.raises(
        RecordingLogError, match="term_base_log_position=600 is after the base 500 of later term 3"
    ):
        log.append_term(LOG_ID, 2, 600, 1)


def test_commit_log_position_rules() -> None:
    log = term_log(0, 100)
    assert log.commit_log_position(1, 400).log_position == 400
    assert log.commit_log_position(1, 400) is log.get_term(1)  # no change
    with pytest.raises(RecordingLogError, match="no TERM entry for that term"):
        log.commit_log_position(5, 10)
    with pytest.raises(RecordingLogError, match="log_position=50 is before its base 100"):
        log.commit_log_position(1, 50)
    with pytest.raises(RecordingLogError, match="log_position=90, but term 1 starts at 100"):
        log.commit_log_position(0, 90)
    with pytest.raises(RecordingLogError, match="log_position=-1 is out of range"):
        log.commit_log_position(1, -1)


def test_an_invalidated_term_no_longer_counts() -> None:
    log = term_log(0, 100)
    log.invalidate_entry(1)
    assert log.find_term(1) is None
    assert log.find_last_term() == log.get_term(0)
    assert terms(log)[-1] == (1, 100, -1, False)
    log.append_term(LOG_ID, 1, 100, 2)  # the term can be written again
    assert [t for t in terms(log) if t[3]] == [(0, 0, 100, True), (1, 100, -1, True)]
    with pytest.raises(RecordingLogError, match="no entry with entry_index=9"):
        log.invalidate_entry(9)


# -------------------------------------------------------------------------------- SNAPSHOT rules


def test_snapshot_set_sorts_services_then_consensus_module() -> None:
    log = term_log(0)
    snapshot_set(log, 0, 0, 640, services=3, first_id=20)
    assert [(e.entry_type, e.service_id) for e in log.entries] == [
        (EntryType.TERM, -1),
        (EntryType.SNAPSHOT, 2),
        (EntryType.SNAPSHOT, 1),
        (EntryType.SNAPSHOT, 0),
        (EntryType.SNAPSHOT, -1),
    ]
    latest = log.latest_snapshots(3)
    assert [(e.service_id, e.recording_id) for e in latest] == [(-1, 20), (0, 21), (1, 22), (2, 23)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 0, 0, 64, 1, 0), "recording_id=-1 is out of range"),
        ((9, 0, 0, 64, 1, -2), "service_id=-2 is out of range"),
        ((9, 0, 64, 32, 1, 0), "log_position=32 < term_base_log_position=64"),
        ((9, 0, 32, 64, 1, 0), "term_base_log_position=32, but the term's TERM entry says 0"),
        ((9, 0, 0, 640, 1, 0), "SNAPSHOT service_id=0 leadership_term_id=0: entry 1 is already valid"),
    ],
)
def test_snapshot_rules(args: tuple[int, int, int, int, int, int], message: str) -> None:
    log = term_log(0)
    log.append_snapshot(8, 0, 0, 640, 1, 0)
    before = log.copy()
    with pytest.raises(RecordingLogError) as caught:
        log.append_snapshot(*args)
    assert message in str(caught.value)
    assert log == before


def test_snapshot_matching_an_invalidated_one_revalidates_it_in_place() -> None:
    log = term_log(0)
    snapshot_set(log, 0, 0, 640, services=1, first_id=20)
    assert len(log.invalidate_latest_snapshot()) == 2
    assert log.latest_snapshots(1) == ()
    snapshot_set(log, 0, 0, 640, services=1, first_id=30)
    assert len(log) == 3 and log.next_entry_index == 3  # no new records
    assert [(e.service_id, e.recording_id, e.entry_index) for e in log.latest_snapshots(1)] == [
        (-1, 30, 2),
        (0, 31, 1),
    ]


def two_snapshot_sets(services: int, services_later: int | None = None) -> RecordingLog:
    """Term 0 with a snapshot at 640 (recordings 20, 21, ...), term 1 from 1000 with one at 1500 (30, ...)."""
    log = term_log(0)
    snapshot_set(log, 0, 0, 640, services=services, first_id=20)
    log.append_term(LOG_ID, 1, 1000, 5)
    snapshot_set(
        log, 1, 1000, 1500, services=services if services_later is None else services_later, first_id=30
    )
    return log


def test_invalidate_latest_snapshot_falls_back_to_the_previous_set() -> None:
    log = two_snapshot_sets(2)
    invalidated = log.invalidate_latest_snapshot()
    assert [(e.service_id, e.recording_id, e.is_valid) for e in invalidated] == [
        (-1, 30, False),
        (0, 31, False),
        (1, 32, False),
    ]
    assert [e.recording_id for e in log.latest_snapshots(2)] == [20, 21, 22]
    assert len(log.invalidate_latest_snapshot()) == 3
    assert log.invalidate_latest_snapshot() == ()


def test_invalidate_latest_snapshot_needs_its_term() -> None:
    log = RecordingLog()
    log.append_snapshot(20, 4, 0, 640, 1, -1)
    with pytest.raises(RecordingLogError, match="no TERM entry for its leadership_term_id=4"):
        log.invalidate_latest_snapshot()


def test_incomplete_snapshot_set_is_refused() -> None:
    log = term_log(0)
    snapshot_set(log, 0, 0, 640, services=1, first_id=20)
    with pytest.raises(RecordingLogError, match="has no valid snapshot for service 1 of 2"):
        log.latest_snapshots(2)
    assert [e.service_id for e in log.latest_snapshots(0)] == [-1]


def test_latest_snapshot_set_finds_the_services_without_being_told_how_many() -> None:
    log = two_snapshot_sets(3, 2)
    assert [(e.service_id, e.recording_id) for e in log.latest_snapshot_set()] == [(-1, 30), (0, 31), (1, 32)]
    assert log.latest_snapshot_set() == log.latest_snapshots(2)
    log.invalidate_latest_snapshot()
    assert [e.recording_id for e in log.latest_snapshot_set()] == [20, 21, 22, 23]
    log.invalidate_entry(next(e.entry_index for e in log.entries if e.recording_id == 22))  # service 1
    assert [e.recording_id for e in log.latest_snapshot_set()] == [20, 21]  # the run stops at the gap
    log.invalidate_latest_snapshot()
    assert log.latest_snapshot_set() == ()


def test_sorted_copy_renumbers_the_entries_in_aerons_order_and_drops_removed_records() -> None:
    log = term_log(0)
    log.append_term(LOG_ID, 1, 1000, 5)
    snapshot_set(log, 0, 0, 640, services=1, first_id=20)  # term 0's snapshot, after term 1's record
    removed = struct.pack("<qqqqqii", 0, 0, 0, 0, 0, 0, -1).ljust(64, b"\0")
    log = RecordingLog.from_bytes(removed + log.to_bytes())
    assert [e.entry_index for e in log.entries] == [1, 3, 4, 2] and not log.is_sorted
    ordered = log.sorted_copy()
    assert ordered.is_sorted and ordered.next_entry_index == 4
    assert [e.entry_index for e in ordered.entries] == [0, 1, 2, 3]
    assert [(e.leadership_term_id, e.entry_type, e.service_id) for e in ordered.entries] == [
        (e.leadership_term_id, e.entry_type, e.service_id) for e in log.entries
    ]
    assert RecordingLog.from_bytes(ordered.to_bytes()) == ordered
    assert term_log(0, 10).is_sorted and RecordingLog().is_sorted


def test_seeding_keeps_the_latest_snapshot_set_at_position_zero_without_terms() -> None:
    seeded = two_snapshot_sets(2).seeded_from_latest_snapshot()
    fields = ("entry_index", "recording_id", "leadership_term_id", "term_base_log_position", "log_position")
    fields += ("service_id", "entry_type", "is_valid")
    assert [tuple(getattr(e, name) for name in fields) for e in seeded.entries] == [
        (0, 32, 1, 0, 0, 1, EntryType.SNAPSHOT, True),
        (1, 31, 1, 0, 0, 0, EntryType.SNAPSHOT, True),
        (2, 30, 1, 0, 0, -1, EntryType.SNAPSHOT, True),
    ]
    assert [e.recording_id for e in seeded.recovery_plan(2, NULL_VALUE).snapshots] == [30, 31, 32]
    with pytest.raises(RecordingLogError, match="no valid consensus module snapshot"):
        term_log(0).seeded_from_latest_snapshot()


def test_standby_snapshot_carries_its_archive_endpoint_and_is_not_a_recovery_snapshot() -> None:
    log = term_log(0)
    entry = log.append_standby_snapshot(40, 0, 0, 640, 1, -1, "standby-host:8010")
    assert entry.entry_type is EntryType.STANDBY_SNAPSHOT and entry.archive_endpoint == "standby-host:8010"
    assert log.latest_snapshots(0) == ()
    with pytest.raises(RecordingLogError, match="needs an archive_endpoint of printable ASCII"):
        log.append_standby_snapshot(40, 0, 0, 700, 1, -1, "")


# -------------------------------------------------------------------------------- ensure_coherent


def test_ensure_coherent_on_an_empty_log_back_fills_from_term_zero() -> None:
    log = RecordingLog()
    entry = log.ensure_coherent(LOG_ID, -1, 0, 3, 0, -1, timestamp=9)
    assert terms(log) == [(0, 0, 0, True), (1, 0, 0, True), (2, 0, 0, True), (3, 0, -1, True)]
    assert entry == log.get_term(3)


def test_ensure_coherent_on_an_empty_log_starts_from_the_recovered_term() -> None:
    """A node recovered from a snapshot in term 2 (base 1000) enters term 4 whose base is 3000."""
    log = RecordingLog()
    log.ensure_coherent(LOG_ID, 2, 1000, 4, 3000, 3500, timestamp=9)
    assert terms(log) == [(2, 1000, 1000, True), (3, 1000, 3000, True), (4, 3000, 3500, True)]


def test_ensure_coherent_closes_an_open_last_term_and_back_fills_failed_elections() -> None:
    log = term_log(0)
    log.ensure_coherent(LOG_ID, 0, 0, 4, 800, -1, timestamp=9)
    assert terms(log) == [
        (0, 0, 800, True),
        (1, 800, 800, True),
        (2, 800, 800, True),
        (3, 800, 800, True),
        (4, 800, -1, True),
    ]


def test_ensure_coherent_after_a_closed_last_term_starts_where_it_ended() -> None:
    log = term_log(0)
    log.commit_log_position(0, 640)
    log.ensure_coherent(LOG_ID, 0, 0, 2, -1, 900, timestamp=9)
    assert terms(log) == [(0, 0, 640, True), (1, 640, 640, True), (2, 640, 900, True)]


def test_ensure_coherent_on_a_known_term_only_commits() -> None:
    log = term_log(0, 100)
    assert log.ensure_coherent(LOG_ID, 0, 0, 1, 100, 700, timestamp=9).log_position == 700
    assert log.ensure_coherent(LOG_ID, 0, 0, 1, 100, -1, timestamp=9).log_position == 700
    assert len(log) == 2


@pytest.mark.parametrize(
    ("setup_closed", "args", "message"),
    [
        (False, (LOG_ID, 0, 0, 3, -1, -1), "last term 0 is open and no term_base_log_position was given"),
        (True, (LOG_ID, 0, 0, 3, 500, -1), "term_base_log_position=500, but the last term 0 ended at 640"),
        (False, (LOG_ID + 1, 0, 0, 3, 700, -1), "recording_id=8, but the log's TERM entries use 7"),
        (False, (LOG_ID, 0, 0, 3, 700, 600), "log_position=600 is before its base 700"),
    ],
)
def test_ensure_coherent_errors_leave_the_log_unchanged(
    setup_closed: bool, args: tuple[int, int, int, int, int, int], message: str
) -> None:
    log = term_log(0)
    if setup_closed:
        log.commit_log_position(0, 640)
    before = log.copy()
    with pytest.raises(RecordingLogError) as caught:
        log.ensure_coherent(*args, timestamp=9)
    assert message in str(caught.value)
    assert log == before


def test_ensure_coherent_refuses_a_term_below_the_last_that_is_missing() -> None:
    log = RecordingLog()
    log.append_term(LOG_ID, 0, 0, 1)
    log.append_term(LOG_ID, 2, 0, 1)
    with pytest.raises(RecordingLogError, match="back-fills only after the last term"):
        log.ensure_coherent(LOG_ID, 0, 0, 1, -1, -1, timestamp=9)


# ------------------------------------------------------------------------------------ truncate_to


def test_truncate_closes_the_term_at_the_cut_and_removes_later_terms() -> None:
    log = term_log(0, 1000, 1500)
    snapshot_set(log, 0, 0, 640, services=1, first_id=20)
    removed = log.truncate_to(1200, leadership_term_id=1)
    assert [e.leadership_term_id for e in removed] == [2]
    assert terms(log) == [(0, 0, 1000, True), (1, 1000, 1200, True)]
    assert log.next_entry_index == 5  # the removed record's index is not reused
    assert decode_entries(log.to_bytes()) == list(sorted(log.entries, key=lambda e: e.entry_index))


def test_truncate_defaults_to_the_last_term_starting_at_or_before_the_cut() -> None:
    log = term_log(0, 1000, 1500)
    log.truncate_to(1200)
    assert terms(log) == [(0, 0, 1000, True), (1, 1000, 1200, True)]
    log = term_log(0, 1000)
    log.truncate_to(1000)
    assert terms(log) == [(0, 0, 1000, True), (1, 1000, 1000, True)]


def test_truncate_of_an_open_last_term() -> None:
    log = term_log(0, 1000)
    assert log.truncate_to(1200, leadership_term_id=1) == ()
    assert terms(log)[-1] == (1, 1000, 1200, True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((900, 1), "the term starts later, at 1000"),
        ((700, None), "valid snapshot entry 3 (leadership_term_id=0, log_position=800) is beyond the cut"),
        ((1200, 5), "no TERM entry for leadership_term_id=5"),
        ((-1, None), "log_position=-1 is out of range"),
    ],
)
def test_truncate_errors(args: tuple[int, int | None], message: str) -> None:
    log = term_log(0, 1000, 1500)
    log.append_snapshot(20, 0, 0, 800, 1, -1)
    before = log.copy()
    with pytest.raises(RecordingLogError) as caught:
        log.truncate_to(args[0], leadership_term_id=args[1])
    assert message in str(caught.value)
    assert log == before


def test_truncate_refuses_to_extend_a_closed_term() -> None:
    log = term_log(0)
    log.commit_log_position(0, 500)
    with pytest.raises(RecordingLogError, match="the term already ended at 500; this would extend it"):
        log.truncate_to(600)


def test_truncate_refuses_to_drop_a_snapshot_of_a_later_term() -> None:
    log = term_log(0, 1000)
    log.append_snapshot(20, 1, 1000, 1000, 1, -1)
    with pytest.raises(RecordingLogError, match="is beyond the cut"):
        log.truncate_to(1000, leadership_term_id=0)


def test_truncate_with_reopen_leaves_the_holding_term_open_and_lets_it_grow() -> None:
    log = term_log(0, 1000, 1500)
    removed = log.truncate_to(1200, leadership_term_id=1, reopen=True)
    assert [e.leadership_term_id for e in removed] == [2]
    assert terms(log) == [(0, 0, 1000, True), (1, 1000, -1, True)]
    # the term goes on past the cut in the leader's log: a later term may start beyond it
    log.append_term(LOG_ID, 2, 1700, 1)
    assert terms(log) == [(0, 0, 1000, True), (1, 1000, 1700, True), (2, 1700, -1, True)]


def test_truncate_with_no_holding_term_removes_every_term() -> None:
    log = term_log(0, 1000)
    removed = log.truncate_to(0, leadership_term_id=NULL_VALUE)
    assert [e.leadership_term_id for e in removed] == [0, 1]
    assert terms(log) == [] and log.term_recording_id == NULL_VALUE
    log.append_term(LOG_ID + 1, 3, 0, 1)  # a new history, even in another recording
    assert terms(log) == [(3, 0, -1, True)]


def test_truncate_with_no_holding_term_refuses_a_term_that_starts_before_the_cut() -> None:
    log = term_log(0, 1000)
    before = log.copy()
    with pytest.raises(RecordingLogError, match="term 0 starts before it, at 0"):
        log.truncate_to(1000, leadership_term_id=NULL_VALUE)
    assert log == before
    log = term_log(0)
    log.append_snapshot(20, 0, 0, 0, 1, -1)
    with pytest.raises(RecordingLogError, match="valid snapshot entry 1 would go"):
        log.truncate_to(0, leadership_term_id=NULL_VALUE)


# ---------------------------------------------------------------------------------- recovery plan


def test_recovery_plan_of_an_empty_log() -> None:
    plan = RecordingLog().recovery_plan(1, -1)
    assert (plan.last_leadership_term_id, plan.last_term_base_log_position) == (-1, 0)
    assert (plan.appended_log_position, plan.committed_log_position) == (0, 0)
    assert plan.snapshots == () and plan.log is None and not plan.has_replay


def test_recovery_plan_with_terms_only_replays_the_whole_log() -> None:
    log = term_log(0, 1000)
    plan = log.recovery_plan(1, 1800)
    assert plan.log == RecoveryLog(LOG_ID, 1, 1000, -1, 0, 1800)
    assert (plan.last_leadership_term_id, plan.last_term_base_log_position) == (1, 1000)
    assert (plan.appended_log_position, plan.committed_log_position) == (1800, 0)
    assert plan.has_replay


def test_recovery_plan_with_a_snapshot_replays_from_its_position() -> None:
    log = term_log(0, 1000)
    snapshot_set(log, 1, 1000, 1400, services=2, first_id=20)
    plan = log.recovery_plan(2, 1800)
    assert [(s.service_id, s.recording_id) for s in plan.snapshots] == [(-1, 20), (0, 21), (1, 22)]
    assert plan.snapshot_for(1) == plan.snapshots[2] and plan.snapshot_for(5) is None
    assert plan.log == RecoveryLog(LOG_ID, 1, 1000, -1, 1400, 1800)
    assert (plan.appended_log_position, plan.committed_log_position) == (1800, 1400)
    log.commit_log_position(1, 1800)
    assert log.recovery_plan(2, 1800).committed_log_position == 1800
    assert not log.recovery_plan(2, 1400).has_replay


def test_recovery_plan_falls_back_past_an_invalidated_snapshot() -> None:
    log = term_log(0, 1000)
    snapshot_set(log, 0, 0, 640, services=1, first_id=20)
    snapshot_set(log, 1, 1000, 1400, services=1, first_id=30)
    log.invalidate_latest_snapshot()
    plan = log.recovery_plan(1, 1800)
    assert [s.recording_id for s in plan.snapshots] == [20, 21]
    assert plan.log is not None and plan.log.start_position == 640
    assert (plan.last_leadership_term_id, plan.committed_log_position) == (1, 640)


def test_recovery_plan_from_a_snapshot_without_terms() -> None:
    log = RecordingLog()
    snapshot_set(log, 3, 2000, 2400, services=1, first_id=20)
    plan = log.recovery_plan(1, -1, log_start_position=5)
    assert (plan.last_leadership_term_id, plan.last_term_base_log_position) == (3, 2000)
    assert (plan.appended_log_position, plan.committed_log_position) == (2400, 2400)
    assert plan.log is None


def test_recovery_plan_needs_the_log_stop_position_when_there_are_terms() -> None:
    with pytest.raises(RecordingLogError, match="needs the stop position of log recording 7, got -1"):
        term_log(0).recovery_plan(1, -1)


# ------------------------------------------------------------------------------------ record bytes


def test_record_layout_matches_aeron_recording_log() -> None:
    log = term_log(0)
    log.commit_log_position(0, 4096)
    log.append_snapshot(21, 0, 0, 1024, 777, -1)
    log.invalidate_entry(1)
    data = log.to_bytes()
    assert len(data) == 128
    assert struct.unpack_from("<qqqqqii", data, 0) == (7, 0, 0, 4096, 100, -1, 0)
    assert struct.unpack_from("<qqqqqii", data, 64) == (21, 0, 0, 1024, 777, -1, 1 | -(2**31))
    assert data[48:64] == bytes(16)


def test_standby_snapshot_record_has_a_length_prefixed_endpoint() -> None:
    endpoint = "h" * 20 + ":8010"
    log = RecordingLog()
    log.append_standby_snapshot(40, 0, 0, 640, 1, 0, endpoint)
    data = log.to_bytes()
    assert len(data) == 128  # 48 + 4 + 25 = 77, aligned to 128
    assert struct.unpack_from("<i", data, 44) == (2,)
    assert struct.unpack_from("<i", data, 48) == (25,)
    assert data[52:77] == endpoint.encode()


def test_removed_records_are_skipped_but_keep_their_index() -> None:
    removed = struct.pack("<qqqqqii", 0, 0, 0, 0, 0, 0, -1).ljust(64, b"\0")
    term = struct.pack("<qqqqqii", 7, 3, 640, -1, 5, -1, 0).ljust(64, b"\xee")  # padding is ignored
    entries = decode_entries(removed + term + removed)
    assert len(entries) == 1
    assert entries[0] == RecordingLogEntry(
        recording_id=7,
        leadership_term_id=3,
        term_base_log_position=640,
        log_position=-1,
        timestamp=5,
        service_id=-1,
        entry_type=EntryType.TERM,
        entry_index=1,
    )
    log = RecordingLog.from_bytes(removed + term + removed)
    assert log.next_entry_index == 3
    assert log.to_bytes() == removed + term[:48] + bytes(16) + removed
    assert log.append_term(7, 4, 700, 1).entry_index == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bytes(63), "record 0 at offset 0: 63 bytes left, a record is 64 (torn write?)"),
        (
            struct.pack("<qqqqqii", 1, 0, 0, -1, 0, -1, 0).ljust(64, b"\0") + bytes(10),
            "record 1 at offset 64",
        ),
        (struct.pack("<qqqqqii", 1, 0, 0, -1, 0, -1, 3).ljust(64, b"\0"), "unknown entry type 3"),
        (struct.pack("<qqqqqii", 1, 0, 0, -1, 0, -1, 5 | -(2**31)).ljust(64, b"\0"), "unknown entry type 5"),
        (struct.pack("<qqqqqiii", 1, 0, 0, 0, 0, -1, 2, 0).ljust(64, b"\0"), "endpoint length 0 is not in"),
        (struct.pack("<qqqqqiii", 1, 0, 0, 0, 0, -1, 2, 5000).ljust(64, b"\0"), "endpoint length 5000"),
        (struct.pack("<qqqqqiii", 1, 0, 0, 0, 0, -1, 2, 8).ljust(64, b"\0"), "archive endpoint b'\\x00"),
        (
            struct.pack("<qqqqqiii", 1, 0, 0, 0, 0, -1, 2, 100).ljust(64, b"a"),
            "STANDBY_SNAPSHOT needs 192 bytes, 64",
        ),
    ],
    ids=[
        "short",
        "torn-second",
        "type-3",
        "invalid-type-5",
        "endpoint-0",
        "endpoint-5000",
        "endpoint-nul",
        "endpoint-past-end",
    ],
)
def test_malformed_bytes_name_the_record_and_offset(data: bytes, message: str) -> None:
    with pytest.raises(RecordingLogError) as caught:
        decode_entries(data)
    assert message in str(caught.value)


def test_decode_refuses_non_bytes() -> None:
    with pytest.raises(RecordingLogError, match="must be bytes-like, not str"):
        decode_entries("abc")  # type: ignore[arg-type]


def test_loading_a_log_checks_term_recording_ids_and_duplicates() -> None:
    a = RecordingLogEntry(
        recording_id=7,
        leadership_term_id=0,
        term_base_log_position=0,
        log_position=-1,
        timestamp=0,
        service_id=-1,
        entry_type=EntryType.TERM,
        entry_index=0,
    )
    with pytest.raises(RecordingLogError, match="entry 1: TERM recording_id=8, but other TERM entries use 7"):
        RecordingLog.from_bytes(
            encode_entries([a, _with(a, recording_id=8, leadership_term_id=1, entry_index=1)])
        )
    with pytest.raises(
        RecordingLogError, match="entries 0 and 1 are both valid TERM entries for leadership_term_id=0"
    ):
        RecordingLog([a, _with(a, entry_index=1)])
    with pytest.raises(RecordingLogError, match="two entries have entry_index 0"):
        RecordingLog([a, _with(a, leadership_term_id=1)])
    with pytest.raises(RecordingLogError, match="two entries have entry_index 0"):
        encode_entries([a, a])
    with pytest.raises(RecordingLogError, match="entry 0: TERM recording_id=-1"):
        RecordingLog([_with(a, recording_id=-1)])


def _with(entry: RecordingLogEntry, **changes: int) -> RecordingLogEntry:
    fields = {name: getattr(entry, name) for name in RecordingLogEntry.__dataclass_fields__}
    fields.update(changes)
    return RecordingLogEntry(**fields)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"entry_type": 9}, "entry_type=9 is not TERM, SNAPSHOT or STANDBY_SNAPSHOT"),
        ({"archive_endpoint": "h:1"}, "a TERM has no archive_endpoint"),
        ({"entry_type": 2}, "a STANDBY_SNAPSHOT needs an archive_endpoint"),
        ({"entry_type": 2, "archive_endpoint": "h 1"}, "printable ASCII without spaces"),
        ({"entry_type": 2, "archive_endpoint": "é:1"}, "printable ASCII without spaces"),
        ({"entry_type": 2, "archive_endpoint": "h" * (MAX_ENDPOINT_LENGTH + 1)}, "at most 4044"),
        ({"recording_id": 2**63}, "recording_id=9223372036854775808 is out of range"),
        ({"service_id": 2**31}, "service_id=2147483648 is out of range"),
        ({"entry_index": -1}, "entry_index=-1 is out of range"),
        ({"is_valid": 1}, "is_valid=1 is not a bool"),
        ({"timestamp": 1.5}, "timestamp=1.5 is not an int"),
    ],
)
def test_entry_fields_are_validated(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "recording_id": 1,
        "leadership_term_id": 0,
        "term_base_log_position": 0,
        "log_position": 0,
        "timestamp": 0,
        "service_id": -1,
        "entry_type": EntryType.TERM,
        "entry_index": 0,
    }
    fields.update(changes)
    with pytest.raises(RecordingLogError) as caught:
        RecordingLogEntry(**fields)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert isinstance(caught.value, ConsensusError)


# ------------------------------------------------------------------------------ property: bytes

int64 = st.integers(-(2**63), 2**63 - 1)
endpoints = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=300)


@st.composite
def entry_lists(draw: st.DrawFn) -> list[RecordingLogEntry]:
    indices = draw(st.lists(st.integers(0, 40), unique=True, max_size=12))
    entries = []
    for index in indices:
        entry_type = draw(st.sampled_from(EntryType))
        entries.append(
            RecordingLogEntry(
                recording_id=draw(int64),
                leadership_term_id=draw(int64),
                term_base_log_position=draw(int64),
                log_position=draw(int64),
                timestamp=draw(int64),
                service_id=draw(st.integers(-(2**31), 2**31 - 1)),
                entry_type=entry_type,
                is_valid=draw(st.booleans()),
                archive_endpoint=draw(endpoints) if entry_type is EntryType.STANDBY_SNAPSHOT else None,
                entry_index=index,
            )
        )
    return entries


@given(entry_lists())
def test_encode_then_decode_is_identity(entries: list[RecordingLogEntry]) -> None:
    data = encode_entries(entries)
    assert decode_entries(data) == sorted(entries, key=lambda e: e.entry_index)
    assert len(data) % 64 == 0
    assert encode_entries(decode_entries(data)) == data


@given(entry_lists(), st.data())
def test_truncated_or_corrupted_bytes_raise_only_recording_log_error(
    entries: list[RecordingLogEntry], data: st.DataObject
) -> None:
    raw = bytearray(encode_entries(entries))
    if raw:
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    for _ in range(data.draw(st.integers(0, 4))):
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        decoded = decode_entries(bytes(raw))
    except RecordingLogError:
        return
    assert decode_entries(encode_entries(decoded)) == decoded  # whatever decodes re-encodes the same


@given(st.binary(max_size=600))
def test_random_bytes_raise_only_recording_log_error(raw: bytes) -> None:
    with contextlib.suppress(RecordingLogError):
        decode_entries(raw)


# -------------------------------------------------------------------------- property: operations

operations = st.lists(
    st.one_of(
        st.tuples(st.just("term"), st.integers(0, 6), st.integers(0, 8).map(lambda n: n * 64)),
        st.tuples(st.just("commit"), st.integers(0, 6), st.integers(0, 8).map(lambda n: n * 64)),
        st.tuples(st.just("snapshot"), st.integers(0, 6), st.integers(0, 8).map(lambda n: n * 64)),
        st.tuples(st.just("coherent"), st.integers(0, 6), st.integers(-1, 8).map(lambda n: max(-1, n * 64))),
        st.tuples(st.just("truncate"), st.integers(0, 6), st.integers(0, 8).map(lambda n: n * 64)),
        st.tuples(st.just("invalidate"), st.integers(0, 6), st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=300)
@given(operations)
def test_any_operation_sequence_keeps_the_terms_coherent(ops: list[tuple[str, int, int]]) -> None:
    log = RecordingLog()
    for op, term_id, position in ops:
        before = log.copy()
        try:
            if op == "term":
                log.append_term(LOG_ID, term_id, position, 1)
            elif op == "commit":
                log.commit_log_position(term_id, position)
            elif op == "snapshot":
                term = log.find_term(term_id)
                base = term.term_base_log_position if term is not None else 0
                snapshot_set(log, term_id, base, max(base, position), services=1, first_id=100)
            elif op == "coherent":
                log.ensure_coherent(LOG_ID, -1, 0, term_id, position, -1, 1)
            elif op == "truncate":
                log.truncate_to(position)
            else:
                log.invalidate_latest_snapshot()
        except RecordingLogError:
            if op != "snapshot":  # a snapshot set is several appends; the others are all-or-nothing
                assert log == before
        valid = [e for e in log.entries if e.is_term and e.is_valid]
        assert len({e.leadership_term_id for e in valid}) == len(valid)
        for lower, upper in itertools.pairwise(valid):
            assert lower.leadership_term_id < upper.leadership_term_id
            assert lower.term_base_log_position <= upper.term_base_log_position
            if lower.log_position != -1:
                assert lower.log_position <= upper.term_base_log_position
                if upper.leadership_term_id == lower.leadership_term_id + 1:
                    assert lower.log_position == upper.term_base_log_position
        for e in valid:
            assert e.log_position == -1 or e.log_position >= e.term_base_log_position
        assert RecordingLog.from_bytes(log.to_bytes()) == log


def test_a_snapshot_put_again_supersedes_what_a_crash_left_of_it() -> None:
    log = RecordingLog()
    log.append_term(0, 0, 0, 1)
    log.append_snapshot(7, 0, 0, 640, 2, 0)  # the service's entry; the crash came before the module's
    assert log.latest_snapshots(1) == ()
    log.put_snapshot(9, 0, 0, 640, 3, 0)
    log.put_snapshot(10, 0, 0, 640, 3, -1)
    cm, service = log.latest_snapshots(1)
    assert (cm.recording_id, service.recording_id) == (10, 9)
    assert [(e.recording_id, e.is_valid) for e in log.entries if e.is_snapshot] == [(9, True), (10, True)]
    with pytest.raises(RecordingLogError):
        log.append_snapshot(11, 0, 0, 640, 4, 0)  # append alone still refuses a second valid entry
