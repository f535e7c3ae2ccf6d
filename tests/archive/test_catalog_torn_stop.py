"""A crash that tears the catalog's write of a recording's stop position -- stopping it, extending it,
truncating it -- must not cost the recording: recovery finds its end again from the segment files.

Found by the whole-archive crash sweep (``test_archive_crash.py``): the catalog writes only the bytes
that change, low bytes first, so a torn stop position was a mix of old and new bytes -- negative after a
stop (recovery then left the recording alone, unreplayable), or a plausible position that is not a
frame boundary, or past the data, after a truncate. The catalog now writes the field's top byte as 0x80
before rewriting it, so a torn value is negative and not -1, and recovery re-derives such a stop
position from the files. The canary turns the 0x80 step off and the sweep must notice."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.recordings import SyntheticStream

from cluster.archive import catalog as catalog_module
from cluster.archive.catalog import Catalog, RecordingState
from cluster.archive.recording_writer import RecordingWriter
from cluster.archive.recovery import recover
from cluster.archive.segments import truncate_recording_files
from cluster.archive.verify import verify_archive
from cluster.storage import SimDisk, SimulatedCrash, Storage, SyncLevel

KIB = 1024
TERM = 64 * KIB
SEGMENT = 64 * KIB
INITIAL_TERM_ID = 5
NOW_MS = 1_796_540_000_000
SEEDS = range(24)


def _stream() -> SyntheticStream:
    stream = SyntheticStream(TERM, initial_term_id=INITIAL_TERM_ID, start_position=40 * KIB)
    index = 0
    while stream.position < TERM + 8 * KIB:  # over the term end and the file end
        stream.append(bytes((index * 3 + j) % 255 + 1 for j in range((40, 300, 2000)[index % 3])))
        index += 1
    return stream


STREAM = _stream()
STOP = STREAM.position
TRUNCATE = max(p + a for p, a in STREAM.frames if p + a < TERM - 4 * KIB)


def _layout() -> dict[str, int]:
    return {
        "recording_id": 0,
        "start_position": STREAM.start_position,
        "term_length": TERM,
        "segment_length": SEGMENT,
    }


def _recorded(storage: Storage, stopped: bool) -> Catalog:
    """A catalog with recording 0, all of ``STREAM`` written; stopped at its end if ``stopped``."""
    catalog = Catalog(storage, file_sync_level=SyncLevel.DATA)
    catalog.add_recording(
        start_position=STREAM.start_position,
        start_timestamp=NOW_MS - 5000,
        initial_term_id=INITIAL_TERM_ID,
        segment_file_length=SEGMENT,
        term_buffer_length=TERM,
        mtu_length=STREAM.mtu,
        session_id=STREAM.session_id,
        stream_id=STREAM.stream_id,
        stripped_channel="aeron:ipc",
        original_channel="aeron:ipc",
        source_identity="aeron:ipc",
    )
    with RecordingWriter(
        storage,
        recording_id=0,
        start_position=STREAM.start_position,
        position=STREAM.start_position,
        term_length=TERM,
        segment_length=SEGMENT,
        file_sync_level=SyncLevel.DATA,
        initial_term_id=INITIAL_TERM_ID,
    ) as writer:
        for block in STREAM.blocks(STREAM.start_position, STOP, 8 * KIB):
            writer.on_block(block.buffer, block.offset, block.length, block.session_id, block.term_id)
    if stopped:
        catalog.update_stop(0, STOP, NOW_MS - 1000)
    return catalog


def _stop(storage: Storage, catalog: Catalog) -> None:
    catalog.update_stop(0, STOP, NOW_MS)


def _extend(storage: Storage, catalog: Catalog) -> None:
    catalog.extend(0, control_session_id=0x0102_0304_0506, correlation_id=99, session_id=-12345)


def _truncate(storage: Storage, catalog: Catalog) -> None:
    catalog.update_stop(0, TRUNCATE, NOW_MS - 1000)  # the catalog first, as the archive does
    truncate_recording_files(storage, stop_position=STOP, position=TRUNCATE, **_layout())


Update = Callable[[Storage, Catalog], None]
# (the update, whether the recording is stopped before it, the stop positions recovery may give)
CASES: dict[str, tuple[Update, bool, set[int]]] = {
    "stop": (_stop, False, {STOP}),
    "extend": (_extend, True, {STOP}),
    "truncate": (_truncate, True, {STOP, TRUNCATE}),
}


def _sweep(name: str) -> tuple[int, list[str]]:
    """Crash at every operation of the update for every seed, with power loss; recover; check."""
    update, stopped, allowed = CASES[name]
    counting = SimDisk(0)
    storage = counting.storage("archive")
    with _recorded(storage, stopped) as catalog:
        before = counting.operation_count
        update(storage, catalog)
    points = range(before + 1, counting.operation_count + 1)
    problems = []
    runs = 0
    for point in points:
        for seed in SEEDS:
            disk = SimDisk(seed * 1_000_003 + point)
            storage = disk.storage("archive")
            catalog = _recorded(storage, stopped)
            disk.crash_at(point)
            with pytest.raises(SimulatedCrash):
                update(storage, catalog)
            disk.crash(power_loss=True)
            with Catalog(storage, file_sync_level=SyncLevel.DATA) as recovered:
                lines = recover(storage, recovered, now_ms=NOW_MS)
                descriptor = recovered.recording(0)
            runs += 1
            assert descriptor is not None
            where = f"{name}, crash at {point} ({points.start}..{points.stop - 1}), seed {seed}"
            if descriptor.state != RecordingState.VALID or descriptor.stop_position not in allowed:
                problems.append(
                    f"{where}: {descriptor.state.name} stop {descriptor.stop_position}, "
                    f"expected one of {sorted(allowed)}; recovery said {lines}"
                )
                continue
            report = verify_archive(storage, now_ms=NOW_MS + 20_000)
            if not report.ok:
                problems.append(f"{where}: verify after recovery: {report.lines}")
    return runs, problems


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_torn_stop_position_is_found_again(name: str) -> None:
    runs, problems = _sweep(name)
    print(f"\n{name}: {runs} crashes inside the update")
    assert runs > 0
    assert problems == [], "\n".join(problems[:10])


def test_recovery_reports_a_torn_stop_position() -> None:
    disk = SimDisk(1)
    storage = disk.storage("archive")
    with _recorded(storage, stopped=True) as catalog:
        offset = catalog.entry_offset(0)
        assert offset is not None
    with storage.open("archive.catalog") as file:
        file.write(offset + 32 + 48 + 7, b"\x80")  # what a crash leaves before the rest of the field
    report = verify_archive(storage, now_ms=NOW_MS)
    torn = -(2**63) + STOP
    assert (
        report.lines[0]
        == f"(recordingId=0) ERR: stopPosition {torn} (torn by a crash) would be set to {STOP}"
    )
    with Catalog(storage) as catalog:
        assert recover(storage, catalog, now_ms=NOW_MS) == [
            f"recording 0: stopPosition {torn} (torn by a crash) set to {STOP}, stopTimestamp {NOW_MS}"
        ]
        assert catalog.recording(0).stop_position == STOP  # type: ignore[union-attr]


def test_canary_without_the_0x80_step_a_torn_stop_goes_unnoticed(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the top byte written as 0 first (the old order, in effect, for positive positions), a torn
    truncate reads as a plausible position: the sweep must catch it."""
    monkeypatch.setattr(catalog_module, "_TORN_STOP_TOP_BYTE", b"\x00")
    runs, problems = _sweep("truncate")
    assert runs > 0
    assert problems, "the sweep did not notice torn stop positions"
