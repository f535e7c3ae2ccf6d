"""Golden output of ``python -m tools archive list``, ``describe`` and ``dump`` for a directory our
archive wrote in a deterministic simulated run.

The run (fixed seeds, the simulated network's clock, a fixed pid and archive id): a recording of a few
messages, one of them fragmented, stopped and then extended by a second publication; a second
recording, purged; the archive closed. The simulated disk's files are then written out to a real
directory for the commands. Everything in the output comes from the seeds and the virtual clock, so it
is the same on every machine; ``pytest --rewrite`` regenerates the golden files (review the diff).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.archive_world import TERM_LENGTH, World
from support.golden import check_golden
from support.paths import TESTDATA

import tools.__main__ as cli
from cluster.archive.client import RecordingSignalEvent
from cluster.storage import RealStorage, Storage, SyncLevel
from generated.aeron_archive_codecs import RecordingSignal, SourceLocation

GOLDEN = TESTDATA / "archive"
SEED = 11
PID = 31337
ARCHIVE_ID = 2024
STREAM = 1001
OTHER_STREAM = 1002


def _payload(index: int, length: int) -> bytes:
    text = f"message {index} ".encode("ascii")
    return (text * (length // len(text) + 1))[:length]


class _Run:
    def __init__(self) -> None:
        self.world = World("sim", seed=SEED)
        world = self.world
        archive_host, self.client_host = world.host(), world.host()
        self.archive_transport = world.transport(archive_host)
        self.client_transport = world.transport(self.client_host)
        control = f"aeron:udp?endpoint={archive_host}:8010"
        self.archive = world.archive(
            self.archive_transport,
            "archive",
            control_channel=control,
            archive_id=ARCHIVE_ID,
            pid=PID,
            file_sync_level=SyncLevel.DATA,
        )
        self.events: list[RecordingSignalEvent] = []
        self.client = world.client(
            self.client_transport, control, self.client_host, on_recording_signal=self.events.append
        )
        self.channel = f"aeron:udp?endpoint={archive_host}:8020"
        self.other_channel = f"aeron:udp?endpoint={archive_host}:8030"

    def signal(self, signal: RecordingSignal, count: int) -> RecordingSignalEvent:
        def seen() -> bool:
            self.client.poll_for_recording_signals()
            return sum(1 for e in self.events if e.signal == signal) >= count

        assert self.world.run_until(seen), f"no {signal.name} signal #{count}: {self.events}"
        return [e for e in self.events if e.signal == signal][count - 1]

    def publish(self, publication: object, payloads: list[bytes]) -> int:
        position = 0
        for payload in payloads:
            while (position := publication.offer(payload)) <= 0:  # type: ignore[attr-defined]
                self.world.step()
        return position

    def recorded(self, recording_id: int, position: int) -> None:
        assert self.world.run_until(lambda: self.client.get_recording_position(recording_id) == position)

    def run(self) -> None:
        client, transport = self.client, self.client_transport
        subscription = client.start_recording(self.channel, STREAM, SourceLocation.REMOTE)
        publication = transport.add_exclusive_publication(self.channel, STREAM)
        recording_id = self.signal(RecordingSignal.START, 1).recording_id
        assert recording_id == 0
        end = self.publish(
            publication, [_payload(0, 40), _payload(1, 200), _payload(2, 2000), _payload(3, 0)]
        )
        self.recorded(recording_id, end)
        client.stop_recording_subscription(subscription)
        assert self.signal(RecordingSignal.STOP, 1).position == end

        shift = TERM_LENGTH.bit_length() - 1
        initial = publication.initial_term_id
        extend_channel = (
            f"{self.channel}|init-term-id={initial}|term-id={initial + (end >> shift)}"
            f"|term-offset={end & (TERM_LENGTH - 1)}|term-length={TERM_LENGTH}|mtu={publication.mtu}"
        )
        publication.close()
        client.extend_recording(recording_id, self.channel, STREAM, SourceLocation.REMOTE)
        extension = transport.add_exclusive_publication(extend_channel, STREAM)
        self.signal(RecordingSignal.EXTEND, 1)
        end = self.publish(extension, [_payload(4, 64), _payload(5, 1500)])
        self.recorded(recording_id, end)
        client.stop_recording(self.channel, STREAM)
        assert self.signal(RecordingSignal.STOP, 2).position == end
        extension.close()

        subscription = client.start_recording(self.other_channel, OTHER_STREAM, SourceLocation.REMOTE)
        other = transport.add_exclusive_publication(self.other_channel, OTHER_STREAM)
        other_id = self.signal(RecordingSignal.START, 2).recording_id
        end = self.publish(other, [_payload(6, 100)])
        self.recorded(other_id, end)
        client.stop_recording_subscription(subscription)
        self.signal(RecordingSignal.STOP, 3)
        other.close()
        client.purge_recording(other_id)
        client.close()
        self.world.close()


def _materialise(source: Storage, directory: Path) -> None:
    """Write the simulated directory's files into ``directory``."""
    target = RealStorage(directory, create=True)
    for name in source.list():
        data = source.read_file(name)
        with target.open(name, create=True) as file:
            file.write(0, data)


@pytest.fixture(scope="module")
def archive_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    run = _Run()
    run.run()
    directory = tmp_path_factory.mktemp("golden-archive")
    assert run.world.disk is not None
    _materialise(run.world.disk.storage("archive"), directory)
    yield directory


def _archive(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    status = cli.main(["archive", *args])
    captured = capsys.readouterr()
    assert (status, captured.err) == (0, "")
    return captured.out


@pytest.mark.parametrize(
    ("args", "golden"),
    [
        (["list", "--json"], "sim-run.list.jsonl"),
        (["describe", "--json"], "sim-run.describe.json"),
        (["dump", "--recording", "0", "--json"], "sim-run.dump-0.jsonl"),
        (["verify"], "sim-run.verify.txt"),
    ],
    ids=["list", "describe", "dump", "verify"],
)
def test_golden_output_of_a_simulated_run(
    args: list[str], golden: str, archive_dir: Path, capsys: pytest.CaptureFixture[str], rewrite: bool
) -> None:
    out = _archive(capsys, args[0], str(archive_dir), *args[1:]).replace(str(archive_dir), "DIR")
    check_golden(GOLDEN / golden, out, rewrite=rewrite, what=f"archive {args[0]} of the simulated run")


def test_the_run_is_what_the_golden_files_say(archive_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What the golden files must show, independently of them: so a --rewrite cannot bless a run that
    went wrong."""
    listed = [json.loads(line) for line in _archive(capsys, "list", str(archive_dir), "--json").splitlines()]
    assert [(d["recordingId"], d["state"], d["streamId"]) for d in listed] == [
        (0, "VALID", STREAM),
        (1, "DELETED", OTHER_STREAM),
    ]
    first = listed[0]
    assert first["startPosition"] == 0 and first["stopPosition"] > 0
    assert first["startTimestamp"] >= 1_796_527_000_000 and first["stopTimestamp"] >= first["startTimestamp"]
    assert first["correlationId"] != 0  # the extend request's
    described = json.loads(_archive(capsys, "describe", str(archive_dir), "--json"))
    assert described["markFile"]["pid"] == PID and described["markFile"]["archiveId"] == ARCHIVE_ID
    assert described["markFile"]["activityTimestamp"] == -1  # closed cleanly
    assert described["catalog"]["nextRecordingId"] == 2 and described["catalog"]["problems"] == []
    dumped = [
        json.loads(line)
        for line in _archive(capsys, "dump", str(archive_dir), "--recording", "0", "--json").splitlines()
    ]
    messages = [record for record in dumped if record["kind"] == "message"]
    assert len(messages) == 6
    assert not any(record["kind"] == "error" for record in dumped)
    assert not (archive_dir / "1-0.rec").exists()
