"""Crash sweep of the whole archive -- conductor, catalog, mark file and recording writer -- on the
simulated disk under the simulated network, and the file-sync level seen from the disk.

One small scenario, seeded: an archive at file-sync level L; a client that records a UDP stream which
starts late in a term, so it crosses a term end (with a PAD) and a segment file end (the segment files
here are one term long); a publisher of messages of mixed lengths, some fragmented; the recording
stopped, extended by a second publication, stopped and truncated back into its first file; a second
recording made and purged; the archive closed. It runs once to count the disk's operations, then again
with ``SimDisk.crash_at(k)`` for the crash points k. When ``SimulatedCrash`` comes out (of whichever
``do_work`` or client call hit it) the crashed process is dropped -- its transports aborted, as a killed
process's sockets close -- the disk crashes (power loss, or a process crash), the clock moves past the
mark file's 10 s liveness timeout, and a new archive starts on the same directory. Then:

* it starts (recovery ran), and ``verify_archive`` finds nothing it did not repair;
* **no synced byte is lost**: each recording's stop position is at least the highest position the
  archive reported durable before the crash -- its recording-position counter, read as another process
  reads it, after every duty cycle and at the crash; the positions of START, EXTEND and STOP signals --
  and a truncate answered OK fixes it exactly;
* **no torn frame is kept**: the stop position is a frame boundary and every frame below it is the
  frame the publisher wrote at that position (length, flags, type, payload);
* a recording the archive announced (START) is in the catalog, a purge it answered OK stays done;
* the archive works: a new recording can be made, and the recovered recording extended from its stop
  position, and both read back frame for frame.

At file-sync level 1 and 2 all of it must hold after a power loss; at level 0 only a process crash
promises anything (the page cache survives it), so level 0 is swept with process crashes.

Each seed tries every write and sync of the segment files and the catalog, and a third of the other
crash points (round robin, so the seeds together try every point); ``ARCHIVE_CRASH_FULL=1`` tries every
point for every seed, and ``ARCHIVE_CRASH_SEEDS=N`` sweeps seeds 1..N (default 3). A failure names the
level, seed, crash point, operation and power loss, and ``run_crash(level, seed, point, power_loss)``
replays exactly that run.

A second test crashes the new archive too, at sampled points of its start (its recovery), and checks
the archive after that one.

Canaries: a recording writer that writes a block in one write (a torn block keeps a torn frame), one
that moves the recording-position counter before the block is synced (a reported position is lost),
and an archive that skips recovery -- the same checks must fail on each.

The file-sync level, seen from the storage: a wrapper notes every write and sync (with its level);
at level 0 the recording writer never syncs a segment file, at 1 and 2 it syncs at that level, and no
recording-position counter ever covers a segment byte not synced yet (the late-sync canary must fail
that check).
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from cluster.archive import archive as archive_module
from cluster.archive.archive import RECORDING_POSITION_TYPE_ID, Archive
from cluster.archive.catalog import Catalog, RecordingDescriptor, RecordingState
from cluster.archive.client import ArchiveClient, RecordingSignalEvent
from cluster.archive.context import ArchiveContext
from cluster.archive.recording_reader import RecordingReader
from cluster.archive.recording_writer import RecordingWriter
from cluster.archive.segments import PAD_TYPE, parse_segment_file_name, segment_files
from cluster.archive.verify import verify_archive
from cluster.storage import SimDisk, SimulatedCrash, Storage, StorageFile, SyncLevel
from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.simnet import SimNetwork
from generated.aeron_archive_codecs import RecordingSignal, SourceLocation

KIB = 1024
TERM = 64 * KIB
SEGMENT = 64 * KIB  # one term per segment file: the term end is a file end too
START_OFFSET = 52 * KIB  # where the first publication starts, in term 0
INITIAL_TERM_ID = 1000
MTU = 1408
EPOCH_BASE_MS = 1_796_527_000_000
LIVENESS_TIMEOUT_MS = 10_000
PID = 4242
ARCHIVE_ID = 77
STREAM = 1001
OTHER_STREAM = 1002
NEW_STREAM = 1003
LENGTHS = (0, 40, 200, 700, 1400, 3000, 5000)  # 1400 and up are fragmented (MTU 1408, 1376 a frame)
SEEDS = tuple(range(1, 1 + int(os.environ.get("ARCHIVE_CRASH_SEEDS", "3"))))
FULL = os.environ.get("ARCHIVE_CRASH_FULL", "") not in ("", "0")


# ------------------------------------------------------------------------------------ what was published

Frame = tuple[int, int, int, bytes]  # frame_length, flags, type, payload


def frame_layout(start: int, messages: list[tuple[bytes, int]], max_payload: int) -> dict[int, Frame]:
    """The frames a publisher wrote for ``messages`` (payload, the position after it), the first
    message at ``start``: each fragmented at ``max_payload``, a PAD where a message did not fit in what
    was left of its term. Keyed by the frame's position."""
    frames: dict[int, Frame] = {}
    position = start
    for payload, end in messages:
        chunks = [payload[i : i + max_payload] for i in range(0, len(payload), max_payload)] or [b""]
        first = end - sum((len(chunk) + 32 + 31) & -32 for chunk in chunks)
        if first != position:
            assert first > position and first % TERM == 0, (position, first, end)
            frames[position] = (first - position, 0, PAD_TYPE, b"")
            position = first
        for i, chunk in enumerate(chunks):
            flags = (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0)
            frames[position] = (len(chunk) + 32, flags, 1, chunk)
            position += (len(chunk) + 32 + 31) & -32
        assert position == end, (position, end)
    return frames


def frame_ends(start: int, frames: dict[int, Frame]) -> set[int]:
    return {start} | {position + ((frame[0] + 31) & -32) for position, frame in frames.items()}


@dataclass
class Expected:
    """What the test knows of one recording: what was published into it, and what the archive promised
    about it before the crash."""

    stream_id: int
    start: int = -1
    messages: list[tuple[bytes, int]] = field(default_factory=list)
    max_payload: int = 0
    recording_id: int | None = None  # known once START was seen
    floor: int = -1  # the highest position reported durable (or the truncate position)
    ceiling: int | None = None  # set by a truncate answered OK: the stop position, exactly
    purging: bool = False  # a purge was asked for
    purged: bool = False  # ... and answered OK

    def durable(self, position: int) -> None:
        if self.ceiling is None:
            self.floor = max(self.floor, position)


class Book:
    """The test's notes of one run."""

    def __init__(self) -> None:
        self.recordings = {STREAM: Expected(STREAM), OTHER_STREAM: Expected(OTHER_STREAM)}
        self.archive_transport: Transport | None = None

    def by_id(self, recording_id: int) -> Expected | None:
        for expected in self.recordings.values():
            if expected.recording_id == recording_id:
                return expected
        return None

    def counters(self) -> Iterator[tuple[int, int]]:
        """(recording id, value) of the recording-position counters, read as another process reads
        them (Aeron's live in the media driver, which outlives the archive)."""
        transport = self.archive_transport
        if transport is not None:
            for counter in transport.counters_manager.find_all(RECORDING_POSITION_TYPE_ID):
                yield int.from_bytes(counter.key[:8], "little", signed=True), counter.get()

    def sample(self) -> None:
        for recording_id, value in self.counters():
            expected = self.by_id(recording_id)
            if expected is not None:
                expected.durable(value)

    def recorded(self, recording_id: int, position: int) -> Callable[[], bool]:
        return lambda: any(rid == recording_id and value >= position for rid, value in self.counters())

    def on_signal(self, event: RecordingSignalEvent) -> None:
        expected = self.by_id(event.recording_id)
        if expected is not None and event.signal in (RecordingSignal.STOP, RecordingSignal.EXTEND):
            expected.durable(event.position)


# ------------------------------------------------------------------------------------------ the world


class Sim:
    """The processes on one simulated network, and the simulated disk they share."""

    def __init__(
        self,
        seed: int,
        disk: SimDisk,
        level: SyncLevel,
        book: Book,
        wrap: Callable[[Storage], Storage] | None = None,
    ) -> None:
        self.seed = seed
        self.disk = disk
        self.level = level
        self.book = book
        self.wrap = wrap
        self.network = SimNetwork(seed, epoch_base_ms=EPOCH_BASE_MS)
        self.transports: list[Transport] = []
        self.agents: list[Callable[[], int]] = []
        self.hosts = 0
        self.on_step: Callable[[], None] = book.sample

    @property
    def storage(self) -> Storage:
        return self.disk.storage("archive")

    def host(self) -> str:
        self.hosts += 1
        return f"10.0.0.{self.hosts}"

    def transport(self, host: str) -> Transport:
        transport = Transport(
            self.network,
            TransportConfig(
                bind_host=host,
                udp_term_length=TERM,
                ipc_term_length=TERM,
                mtu=MTU,
                seed=self.seed * 1000 + len(self.transports),
            ),
        )
        self.transports.append(transport)
        self.agents.append(transport.do_work)
        return transport

    def archive(self, transport: Transport, control: str) -> Archive:
        storage = self.storage if self.wrap is None else self.wrap(self.storage)
        archive = Archive(
            transport,
            ArchiveContext(
                storage=storage,
                control_channel=control,
                segment_file_length=SEGMENT,
                file_sync_level=self.level,
                archive_id=ARCHIVE_ID,
                pid=PID,
                seed=self.seed + 100 + self.hosts,
                mark_file_liveness_timeout_ms=LIVENESS_TIMEOUT_MS,
            ),
        )
        self.agents.append(archive.do_work)
        return archive

    def client(self, transport: Transport, control: str, host: str, signals: Signals) -> ArchiveClient:
        return ArchiveClient.connect(
            transport,
            control_request_channel=control,
            control_response_channel=f"aeron:udp?endpoint={host}:0",
            invoker=self.step,
            on_recording_signal=signals,
        )

    def step(self) -> int:
        work = 0
        for agent in list(self.agents):
            work += agent()
            self.on_step()
        network = self.network
        if work == 0:
            now = network.clock.nano_time()
            next_ns = network.next_delivery_ns()
            target = now + 1_000_000 if next_ns is None else min(next_ns, now + 1_000_000)
            network.clock.set(max(target, now + 1))
        else:
            network.advance(1_000)
        return work

    def run_until(self, condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
        deadline = self.network.clock.nano_time() + int(timeout_s * 1e9)
        while not condition():
            if self.network.clock.nano_time() >= deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.step()

    def kill(self) -> None:
        """The processes die: sockets close, nothing more is sent, their objects are dropped."""
        for transport in self.transports:
            transport.abort()
        self.transports.clear()
        self.agents.clear()


class Signals:
    def __init__(self, book: Book | None) -> None:
        self.events: list[RecordingSignalEvent] = []
        self.book = book

    def __call__(self, event: RecordingSignalEvent) -> None:
        self.events.append(event)
        if self.book is not None:
            self.book.on_signal(event)

    def wait(
        self, sim: Sim, client: ArchiveClient, signal: RecordingSignal, count: int
    ) -> RecordingSignalEvent:
        def seen() -> bool:
            client.poll_for_recording_signals()
            return sum(1 for e in self.events if e.signal == signal) >= count

        sim.run_until(seen, f"signal {signal.name} #{count}")
        return [e for e in self.events if e.signal == signal][count - 1]


def _message(rng: random.Random) -> bytes:
    length = rng.choice(LENGTHS)
    first = rng.randrange(256)
    return bytes((first + j) % 251 + 1 for j in range(length))


def _publish(sim: Sim, publication: Any, expected: Expected, count: int, rng: random.Random) -> None:
    """Offer ``count`` messages, in bursts with a few duty cycles between (so blocks of one frame and of
    several), noting where each ended."""
    for i in range(count):
        payload = _message(rng)
        while (result := publication.offer(payload)) <= 0:
            sim.step()
        expected.messages.append((payload, result))
        if rng.random() < 0.5 or i == count - 1:
            for _ in range(rng.randrange(1, 4)):
                sim.step()


def _channel_at(channel: str, position: int) -> str:
    """``channel`` for a publication whose stream starts at ``position`` (as an extension must)."""
    shift = TERM.bit_length() - 1
    return (
        f"{channel}|init-term-id={INITIAL_TERM_ID}|term-id={INITIAL_TERM_ID + (position >> shift)}"
        f"|term-offset={position & (TERM - 1)}|term-length={TERM}|mtu={MTU}"
    )


def scenario(sim: Sim, seed: int) -> None:
    """The run the sweep crashes (module docstring); it returns once the archive has closed."""
    book = sim.book
    rng = random.Random(seed)
    a, b = book.recordings[STREAM], book.recordings[OTHER_STREAM]
    archive_host, client_host = sim.host(), sim.host()
    archive_transport = sim.transport(archive_host)
    book.archive_transport = archive_transport
    control = f"aeron:udp?endpoint={archive_host}:8010"
    archive = sim.archive(archive_transport, control)
    client_transport = sim.transport(client_host)
    signals = Signals(book)
    client = sim.client(client_transport, control, client_host, signals)
    channel = f"aeron:udp?endpoint={archive_host}:8020"

    # a stream that starts late in term 0 and goes on into term 1, i.e. segment file 1
    subscription_id = client.start_recording(channel, STREAM, SourceLocation.REMOTE)
    publication = client_transport.add_exclusive_publication(_channel_at(channel, START_OFFSET), STREAM)
    a.start, a.max_payload = publication.start_position, publication.max_payload_length
    start = signals.wait(sim, client, RecordingSignal.START, 1)
    a.recording_id = start.recording_id
    _publish(sim, publication, a, 10, rng)
    sim.run_until(book.recorded(start.recording_id, a.messages[-1][1]), "the first part recorded")
    client.stop_recording_subscription(subscription_id)
    first_stop = signals.wait(sim, client, RecordingSignal.STOP, 1).position
    publication.close()

    # extended by a second publication that continues the stream
    client.extend_recording(start.recording_id, channel, STREAM, SourceLocation.REMOTE)
    extension = client_transport.add_exclusive_publication(_channel_at(channel, first_stop), STREAM)
    signals.wait(sim, client, RecordingSignal.EXTEND, 1)
    _publish(sim, extension, a, 4, rng)
    sim.run_until(book.recorded(start.recording_id, a.messages[-1][1]), "the extension recorded")
    client.stop_recording(channel, STREAM)
    signals.wait(sim, client, RecordingSignal.STOP, 2)
    extension.close()

    # truncated back to the last message boundary in its first segment file
    position = max(end for _, end in a.messages if end < TERM)
    a.floor = min(a.floor, position)  # the bytes after it may go from now on
    client.truncate_recording(start.recording_id, position)
    a.floor = a.ceiling = position

    # a second recording, purged
    other_channel = f"aeron:udp?endpoint={archive_host}:8030"
    other_subscription = client.start_recording(other_channel, OTHER_STREAM, SourceLocation.REMOTE)
    other = client_transport.add_exclusive_publication(other_channel, OTHER_STREAM)
    b.start, b.max_payload = other.start_position, other.max_payload_length
    second = signals.wait(sim, client, RecordingSignal.START, 2)
    b.recording_id = second.recording_id
    _publish(sim, other, b, 3, rng)
    sim.run_until(book.recorded(second.recording_id, b.messages[-1][1]), "the second recording")
    client.stop_recording_subscription(other_subscription)
    signals.wait(sim, client, RecordingSignal.STOP, 3)
    other.close()
    b.purging = True
    client.purge_recording(second.recording_id)
    b.purged = True

    client.close()
    archive.close()


# ---------------------------------------------------------------------------------------------- checks


def frames_problem(
    storage: Storage, descriptor: RecordingDescriptor, expected: dict[int, Frame], start: int, stop: int
) -> str | None:
    """``None`` if every frame in [start, stop) is the one published there, else what is wrong."""
    try:
        with RecordingReader.of(storage, descriptor, stop_position=stop, from_position=start) as reader:
            for position, header, payload in reader.frames():
                want = expected.get(position)
                got = (header[0], 0 if header[3] == PAD_TYPE else header[2], header[3], bytes(payload))
                if got != want:
                    published = "none" if want is None else f"{want[:3]} {want[3][:8]!r}..."
                    return f"the frame at {position} is {got[:3]} {got[3][:8]!r}..., published: {published}"
            if reader.position != stop:
                return f"the frames end at {reader.position}, not at the stop position {stop}"
    except Exception as exc:  # a SegmentError names the file, offset and field
        return f"reading [{start}, {stop}): {exc}"
    return None


@dataclass
class Outcome:
    runs: int = 0
    extended: int = 0  # runs in which the recovered recording was extended and read back
    failures: list[str] = field(default_factory=list)


def check_recovered(sim: Sim, promises: bool, outcome: Outcome) -> list[str]:
    """Start a new archive on the crashed directory and check it (module docstring). ``promises`` is
    false where the crash may lose what was reported durable (level 0 and a power loss)."""
    book = sim.book
    problems: list[str] = []
    storage = sim.storage
    archive_host, client_host = sim.host(), sim.host()
    archive_transport = sim.transport(archive_host)
    archive = sim.archive(archive_transport, f"aeron:udp?endpoint={archive_host}:8010")
    report = verify_archive(storage, now_ms=sim.network.clock.epoch_ms())
    if not report.ok:
        problems.append("verify: " + "; ".join(report.lines))
    with Catalog(storage, read_only=True, create=False) as catalog:
        descriptors = {d.stream_id: d for d in catalog.recordings(include_deleted=True)}
    usable: dict[int, RecordingDescriptor] = {}
    for stream_id, expected in book.recordings.items():
        descriptor = descriptors.get(stream_id)
        where = f"stream {stream_id}"
        if descriptor is None:
            if expected.recording_id is not None and promises:
                problems.append(f"{where}: recording {expected.recording_id} was announced, it is gone")
            continue
        if expected.recording_id not in (None, descriptor.recording_id):
            problems.append(
                f"{where}: recording {descriptor.recording_id}, announced {expected.recording_id}"
            )
        if descriptor.state == RecordingState.DELETED:
            if not expected.purging:
                problems.append(f"{where}: recording {descriptor.recording_id} is DELETED, never purged")
            if segment_files(storage, descriptor.recording_id):
                problems.append(f"{where}: files of the DELETED recording are left")
            continue
        if descriptor.state != RecordingState.VALID:
            problems.append(f"{where}: recording {descriptor.recording_id} is {descriptor.state.name}")
            continue
        if expected.purged and promises:
            problems.append(f"{where}: the purge of recording {descriptor.recording_id} was undone")
        if descriptor.start_position != expected.start:
            problems.append(f"{where}: start {descriptor.start_position}, published from {expected.start}")
            continue
        stop = descriptor.stop_position
        frames = frame_layout(expected.start, expected.messages, expected.max_payload)
        if stop not in frame_ends(expected.start, frames):
            problems.append(f"{where}: stop {stop} is not a frame boundary")
        if promises and stop < expected.floor:
            problems.append(f"{where}: stop {stop} is below the position {expected.floor} reported durable")
        if promises and expected.ceiling is not None and stop != expected.ceiling:
            problems.append(f"{where}: stop {stop}, truncated to {expected.ceiling}")
        problem = frames_problem(storage, descriptor, frames, expected.start, stop)
        if problem is not None:
            problems.append(f"{where}: {problem}")
        usable[stream_id] = descriptor
    if not problems:
        problems += _check_usable(sim, archive_transport, archive_host, client_host, usable, outcome)
    archive.close()
    return problems


def _check_usable(
    sim: Sim,
    archive_transport: Transport,
    archive_host: str,
    client_host: str,
    recovered: dict[int, RecordingDescriptor],
    outcome: Outcome,
) -> list[str]:
    """A new recording, and the recovered recording extended from its stop position, both read back."""
    book = Book()  # the new process's notes
    book.archive_transport = archive_transport
    sim.book = book
    sim.on_step = lambda: None
    rng = random.Random(sim.seed + 7)
    client_transport = sim.transport(client_host)
    control = f"aeron:udp?endpoint={archive_host}:8010"
    signals = Signals(None)
    client = sim.client(client_transport, control, client_host, signals)
    new_channel = f"aeron:udp?endpoint={archive_host}:8040"
    client.start_recording(new_channel, NEW_STREAM, SourceLocation.REMOTE)
    fresh = Expected(NEW_STREAM)
    publication = client_transport.add_exclusive_publication(new_channel, NEW_STREAM)
    fresh.start, fresh.max_payload = publication.start_position, publication.max_payload_length
    fresh.recording_id = signals.wait(sim, client, RecordingSignal.START, 1).recording_id
    work = [(fresh, publication)]
    descriptor = recovered.get(STREAM)
    channel = f"aeron:udp?endpoint={archive_host}:8020"
    if descriptor is not None:
        stop = descriptor.stop_position
        client.extend_recording(descriptor.recording_id, channel, STREAM, SourceLocation.REMOTE)
        extension = client_transport.add_exclusive_publication(_channel_at(channel, stop), STREAM)
        extended = Expected(STREAM, start=stop, max_payload=extension.max_payload_length)
        extended.recording_id = descriptor.recording_id
        signals.wait(sim, client, RecordingSignal.EXTEND, 1)
        work.append((extended, extension))
    for expected, pub in work:
        _publish(sim, pub, expected, 2, rng)
    for expected, _ in work:
        assert expected.recording_id is not None
        sim.run_until(book.recorded(expected.recording_id, expected.messages[-1][1]), "recording")
    client.stop_recording(new_channel, NEW_STREAM)
    if descriptor is not None:
        client.stop_recording(channel, STREAM)
    signals.wait(sim, client, RecordingSignal.STOP, len(work))
    client.close()
    problems = []
    with Catalog(sim.storage, read_only=True, create=False) as catalog:
        for expected, _ in work:
            assert expected.recording_id is not None
            after = catalog.recording(expected.recording_id)
            assert after is not None
            where = f"recording {expected.recording_id} after recovery"
            end = expected.messages[-1][1]
            if after.stop_position != end:
                problems.append(f"{where}: stop {after.stop_position}, recorded to {end}")
                continue
            frames = frame_layout(expected.start, expected.messages, expected.max_payload)
            problem = frames_problem(sim.storage, after, frames, expected.start, end)
            if problem is not None:
                problems.append(f"{where}: {problem}")
    if descriptor is not None and not problems:
        outcome.extended += 1
    return problems


# ---------------------------------------------------------------------------------------------- sweep


def _disk_seed(seed: int, point: int) -> int:
    """Each crash point gets its own disk luck (the disk draws only when power is lost)."""
    return seed * 1_000_003 + point


@contextmanager
def _tracing(disk: SimDisk, trace: list[str]) -> Iterator[None]:
    """Note each counted disk operation and its file."""
    original = disk._done

    def done(operation: str, where: str) -> None:
        trace.append(f"{operation} {where.rsplit('/', 1)[-1]}")
        original(operation, where)

    disk._done = done  # type: ignore[method-assign]
    try:
        yield
    finally:
        del disk._done


def count_operations(level: SyncLevel, seed: int) -> list[str]:
    """Run the scenario to the end: what each disk operation was."""
    disk = SimDisk(seed)
    trace: list[str] = []
    with _tracing(disk, trace):
        sim = Sim(seed, disk, level, Book())
        scenario(sim, seed)
        sim.kill()
    assert len(trace) == disk.operation_count
    return trace


def _crashed(level: SyncLevel, seed: int, point: int, power_loss: bool) -> Sim:
    """The scenario crashed at operation ``point``, its process dropped, the disk crashed, and the
    clock past the mark file's liveness timeout: ready for a new archive."""
    disk = SimDisk(_disk_seed(seed, point))
    sim = Sim(seed, disk, level, Book())
    disk.crash_at(point)
    with pytest.raises(SimulatedCrash) as crash:
        scenario(sim, seed)
    assert crash.value.operation == point, (crash.value.operation, point)
    sim.book.sample()  # the counters outlive the archive process
    sim.kill()
    sim.book.archive_transport = None
    disk.crash(power_loss=power_loss)
    sim.network.clock.advance((LIVENESS_TIMEOUT_MS + 1_000) * 1_000_000)
    return sim


def run_crash(
    level: SyncLevel,
    seed: int,
    point: int,
    power_loss: bool,
    outcome: Outcome | None = None,
    *,
    restart_crash: int | None = None,
) -> list[str]:
    """One run: the scenario crashed at operation ``point``, a new archive started, the checks made.
    The problems found. With ``restart_crash`` the first new archive crashes too, at that operation of
    its start (its recovery), and the checks are made on the one after it."""
    sim = _crashed(level, seed, point, power_loss)
    if restart_crash is not None:
        disk = sim.disk
        disk.crash_at(disk.operation_count + restart_crash)
        host = sim.host()
        with pytest.raises(SimulatedCrash):
            sim.archive(sim.transport(host), f"aeron:udp?endpoint={host}:8010")
        sim.kill()
        disk.crash(power_loss=power_loss)
        sim.network.clock.advance((LIVENESS_TIMEOUT_MS + 1_000) * 1_000_000)
    promises = power_loss is False or level != SyncLevel.NONE
    return check_recovered(sim, promises, Outcome() if outcome is None else outcome)


def restart_operations(level: SyncLevel, seed: int, point: int, power_loss: bool) -> int:
    """How many disk operations a new archive's start (its recovery) takes after that crash."""
    sim = _crashed(level, seed, point, power_loss)
    before = sim.disk.operation_count
    host = sim.host()
    sim.archive(sim.transport(host), f"aeron:udp?endpoint={host}:8010")
    return sim.disk.operation_count - before


def _points(seed_index: int, seeds: int, trace: list[str]) -> list[int]:
    """The crash points one seed tries (module docstring)."""
    chosen = []
    for point, what in enumerate(trace, 1):
        operation, name = what.split(" ", 1)
        data = operation in ("write", "sync") and (name.endswith(".rec") or name == "archive.catalog")
        if FULL or data or point % seeds == seed_index:
            chosen.append(point)
    return chosen


def sweep(level: SyncLevel, seeds: tuple[int, ...], power_losses: tuple[bool, ...]) -> Outcome:
    outcome = Outcome()
    for index, seed in enumerate(seeds):
        trace = count_operations(level, seed)
        points = _points(index, len(seeds), trace)
        print(f"  level {int(level)}, seed {seed}: {len(points)} of {len(trace)} crash points")
        for point in points:
            for power_loss in power_losses:
                try:
                    problems = run_crash(level, seed, point, power_loss, outcome)
                except Exception as exc:  # the new archive would not start, a wait timed out, ...
                    problems = [f"{type(exc).__name__}: {exc}"]
                outcome.runs += 1
                outcome.failures += [
                    f"level {int(level)}, seed {seed}, crash at {point}/{len(trace)} ({trace[point - 1]}), "
                    f"power loss {power_loss}: {problem}"
                    for problem in problems
                ]
    return outcome


@pytest.mark.parametrize(
    ("level", "power_losses"),
    [
        (SyncLevel.DATA, (True, False)),
        (SyncLevel.ALL, (True,)),
        (SyncLevel.NONE, (False,)),
    ],
    ids=["level-1", "level-2", "level-0-process-crash"],
)
def test_crash_sweep_of_the_whole_archive(level: SyncLevel, power_losses: tuple[bool, ...]) -> None:
    print()
    outcome = sweep(level, SEEDS, power_losses)
    print(
        f"level {int(level)}: {outcome.runs} crash runs (crash points x seeds {SEEDS} x power loss "
        f"{power_losses}); the recovered recording extended in {outcome.extended}"
    )
    assert outcome.failures == [], "\n".join(outcome.failures[:20])
    assert outcome.runs > 150
    assert outcome.extended > outcome.runs // 2  # most crashes leave a recording to extend


def test_a_crash_while_the_new_archive_recovers_is_recovered_by_the_next_one() -> None:
    """Crash points in the start of the archive after a crash, sampled (seeded): the one after it must
    pass every check."""
    rng = random.Random(2024)
    level = SyncLevel.DATA
    runs: list[str] = []
    failures: list[str] = []
    for seed in SEEDS:
        trace = count_operations(level, seed)
        for point in sorted(rng.sample(range(1, len(trace) + 1), 12)):
            restart = restart_operations(level, seed, point, True)
            for inner in sorted(rng.sample(range(1, restart + 1), min(3, restart))):
                runs.append(f"{point}/{inner}")
                where = f"seed {seed}, crash at {point} ({trace[point - 1]}), then at {inner} of {restart}"
                try:
                    problems = run_crash(level, seed, point, True, restart_crash=inner)
                except Exception as exc:
                    problems = [f"{type(exc).__name__}: {exc}"]
                failures += [f"{where}: {problem}" for problem in problems]
    print(f"\n{len(runs)} crashes inside the recovery of an earlier crash")
    assert len(runs) > 50
    assert failures == [], "\n".join(failures[:20])


# -------------------------------------------------------------------------------------------- canaries


class _OneWriteWriter(RecordingWriter):
    """Canary: the whole block in one write, as a naive writer would."""

    def on_block(self, buffer: memoryview, offset: int, length: int, session_id: int, term_id: int) -> None:
        view = memoryview(buffer).cast("B")
        data_end = self._check_block(view, offset, length, session_id, term_id)
        assert self._file is not None
        self._file.write(self._position - self._segment_base, view[offset:data_end])
        if self._sync_level:
            self._file.sync(self._sync_level)
        self._position += length
        if self._position - self._segment_base >= self._segment_length:
            self._roll_over()


class _LateSyncWriter(RecordingWriter):
    """Canary: a block is synced only when the next one comes, so the recording-position counter,
    moved when ``on_block`` returns, runs ahead of what is durable."""

    def on_block(self, buffer: memoryview, offset: int, length: int, session_id: int, term_id: int) -> None:
        level = self._sync_level
        if level and self._file is not None:
            self._file.sync(level)  # the previous block's sync, late
        self._sync_level = SyncLevel.NONE
        try:
            super().on_block(buffer, offset, length, session_id, term_id)
        finally:
            self._sync_level = level


def _no_recovery(storage: Storage, catalog: Catalog, *, now_ms: int) -> list[str]:
    return []


@pytest.mark.parametrize(
    ("canary", "expected"),
    [
        ("one-write", "the frame at"),
        ("late-sync", "reported durable"),
        ("no-recovery", "verify"),
    ],
)
def test_canaries_are_caught(canary: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if canary == "one-write":
        monkeypatch.setattr(archive_module, "RecordingWriter", _OneWriteWriter)
    elif canary == "late-sync":
        monkeypatch.setattr(archive_module, "RecordingWriter", _LateSyncWriter)
    else:
        monkeypatch.setattr(archive_module, "recover", _no_recovery)
    outcome = sweep(SyncLevel.DATA, (SEEDS[0],), (True,))
    assert outcome.runs > 0
    assert any(expected in failure for failure in outcome.failures), (
        f"the sweep did not catch the {canary} canary: {outcome.failures[:5]}"
    )


# ---------------------------------------------------------------------------------- the file-sync level


class _Watched(StorageFile):
    def __init__(self, inner: StorageFile, log: Callable[[str, str, int, int, int], None]) -> None:
        self.inner = inner
        self.name = inner.name
        self.log = log

    def read(self, offset: int, length: int) -> bytes:
        return self.inner.read(offset, length)

    def read_into(self, offset: int, buffer: bytearray | memoryview) -> int:
        return self.inner.read_into(offset, buffer)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self.log("write", self.name, offset, len(memoryview(data).cast("B")), -1)
        self.inner.write(offset, data)

    def size(self) -> int:
        return self.inner.size()

    def truncate(self, length: int) -> None:
        self.log("truncate", self.name, length, 0, -1)
        self.inner.truncate(length)

    def sync(self, level: SyncLevel) -> None:
        self.log("sync", self.name, 0, 0, int(level))
        self.inner.sync(level)

    def close(self) -> None:
        self.inner.close()


class _WatchedStorage(Storage):
    """A storage that reports every write, truncate and sync (with its level) before doing it."""

    def __init__(self, inner: Storage, log: Callable[[str, str, int, int, int], None]) -> None:
        self.inner = inner
        self.log = log

    @property
    def location(self) -> str:
        return self.inner.location

    def open(self, name: str, *, create: bool = False) -> StorageFile:
        return _Watched(self.inner.open(name, create=create), self.log)

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)

    def list(self) -> list[str]:
        return self.inner.list()

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def sync_directory(self) -> None:
        self.log("sync_directory", "", 0, 0, -1)
        self.inner.sync_directory()


def _called_by_a_recording_writer() -> bool:
    frame = sys._getframe(1)
    while frame is not None:
        if isinstance(frame.f_locals.get("self"), RecordingWriter):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


class SyncWatch:
    """Checks, at every storage call and after every duty cycle, that no recording-position counter
    covers a segment file byte written since that file's last sync (at levels 1 and 2), and notes the
    level of every sync of a segment file by the recording writer (a truncate syncs what it cuts at
    any level)."""

    def __init__(self, book: Book, level: SyncLevel) -> None:
        self.book = book
        self.level = level
        self.unsynced: dict[str, list[tuple[int, int]]] = {}  # segment file -> written ranges (positions)
        self.segment_syncs: list[int] = []  # the level of each sync of a segment file by the writer
        self.segment_writes = 0
        self.counter_moves = 0
        self.violations: list[str] = []
        self._last: dict[int, int] = {}

    def log(self, operation: str, name: str, offset: int, length: int, level: int) -> None:
        self.check()
        parsed = parse_segment_file_name(name) if name else None
        if parsed is None:
            return
        base = parsed[1]
        if operation == "write":
            self.segment_writes += 1
            self.unsynced.setdefault(name, []).append((base + offset, base + offset + length))
        elif operation == "sync":
            if _called_by_a_recording_writer():
                self.segment_syncs.append(level)
            if level:
                self.unsynced.pop(name, None)

    def check(self) -> None:
        for recording_id, value in self.book.counters():
            if self._last.get(recording_id) != value:
                self._last[recording_id] = value
                self.counter_moves += 1
            if self.level == SyncLevel.NONE:
                continue
            for name, ranges in self.unsynced.items():
                parsed = parse_segment_file_name(name)
                assert parsed is not None
                for start, end in ranges:
                    if parsed[0] == recording_id and start < value:
                        self.violations.append(
                            f"recording {recording_id}'s counter is at {value}, but bytes from {start} to "
                            f"{end} of {name} were not synced"
                        )


def _watched_run(level: SyncLevel) -> SyncWatch:
    book = Book()
    watch = SyncWatch(book, level)
    sim = Sim(SEEDS[0], SimDisk(0), level, book, wrap=lambda storage: _WatchedStorage(storage, watch.log))
    sim.on_step = watch.check
    scenario(sim, SEEDS[0])
    sim.kill()
    return watch


@pytest.mark.parametrize("level", [SyncLevel.NONE, SyncLevel.DATA, SyncLevel.ALL], ids=lambda v: f"level-{v}")
def test_the_file_sync_level_is_honoured(level: SyncLevel) -> None:
    """Level 0: the writer never syncs a segment file. Levels 1 and 2: every sync of a segment file is at
    that level, and a recording-position counter never covers a byte that is not synced yet."""
    watch = _watched_run(level)
    assert watch.segment_writes > 20 and watch.counter_moves > 10
    if level == SyncLevel.NONE:
        assert watch.segment_syncs == []
    else:
        assert set(watch.segment_syncs) == {int(level)}
        assert len(watch.segment_syncs) * 3 >= watch.segment_writes  # a sync per block of 2 or 3 writes
        assert watch.violations == []


def test_the_file_sync_level_check_catches_a_late_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive_module, "RecordingWriter", _LateSyncWriter)
    watch = _watched_run(SyncLevel.DATA)
    assert watch.violations, "the late-sync canary went unnoticed"
