"""``python -m tools archive run``: a real archive process on 127.0.0.1. A client records and replays
through it over UDP, SIGTERM shuts it down in order (stop positions in the catalog, mark file closed),
and a second process starts at once on the same directory and still has the recording."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from support.processes import spawn_tools

from cluster.archive.client import ArchiveClient, RecordingSignalEvent
from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.logbuffer import FragmentAssembler
from generated.aeron_archive_codecs import RecordingSignal, SourceLocation

ROOT = Path(__file__).resolve().parents[2]
PROCESS_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def archive_process(
    directory: Path, control: str
) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
    return spawn_tools(
        "archive", "run", "--dir", str(directory), "--control", control, timeout_s=PROCESS_TIMEOUT_S
    )


def connect(transport: Transport, control: str) -> tuple[ArchiveClient, list[RecordingSignalEvent]]:
    signals: list[RecordingSignalEvent] = []
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while True:  # the process needs a moment to start: retry the connect until it answers
        try:
            client = ArchiveClient.connect(
                transport,
                control_request_channel=control,
                control_response_channel="aeron:udp?endpoint=127.0.0.1:0",
                on_recording_signal=signals.append,
                idle=lambda: time.sleep(0.0005),
                connect_timeout_ns=2_000_000_000,
            )
            return client, signals
        except Exception:
            if time.monotonic() > deadline:
                raise


def wait(transport: Transport, condition: object) -> bool:
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        if transport.do_work() == 0:
            time.sleep(0.0005)
    return False


def test_archive_run_records_replays_and_shuts_down_in_order(tmp_path: Path) -> None:
    directory = tmp_path / "archive"
    control = f"aeron:udp?endpoint=127.0.0.1:{free_port()}"
    recorded = f"aeron:udp?endpoint=127.0.0.1:{free_port()}"
    with (
        archive_process(directory, control) as process,
        Transport(config=TransportConfig(bind_host="127.0.0.1", udp_term_length=64 * 1024)) as transport,
    ):
        client, signals = connect(transport, control)
        client.start_recording(recorded, 1001, SourceLocation.REMOTE)
        publication = transport.add_publication(recorded, 1001)
        for i in range(50):
            while publication.offer(bytes([i]) * (32 + 40 * i)) < 0:
                transport.do_work()
        assert wait(transport, lambda: client.poll_for_recording_signals() >= 0 and signals)
        recording_id = signals[0].recording_id
        assert wait(transport, lambda: client.get_recording_position(recording_id) == publication.position)
        end = publication.position
        client.close()
        os.kill(process.pid, signal.SIGTERM)
        _, err = process.communicate(timeout=PROCESS_TIMEOUT_S)
        assert process.returncode == 0, err
        assert "archive closed" in err
        assert any(s.signal == RecordingSignal.START for s in signals)

    listed = subprocess.run(
        [sys.executable, "-m", "tools", "archive", "list", str(directory), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
        check=True,
    )
    recordings = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["recordingId"], r["startPosition"], r["stopPosition"]) for r in recordings] == [(0, 0, end)]
    described = subprocess.run(
        [sys.executable, "-m", "tools", "archive", "describe", str(directory), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
        check=True,
    )
    assert json.loads(described.stdout)["markFile"]["activityTimestamp"] == -1  # an orderly close

    # a second archive starts on the directory at once (the mark file is closed) and replays the recording
    with (
        archive_process(directory, control) as process,
        Transport(config=TransportConfig(bind_host="127.0.0.1", udp_term_length=64 * 1024)) as transport,
    ):
        client, _ = connect(transport, control)
        replay_channel = f"aeron:udp?endpoint=127.0.0.1:{free_port()}"
        subscription = transport.add_subscription(replay_channel, 2002)
        client.start_replay(0, 0, end, replay_channel, 2002)
        got: list[int] = []
        assembler = FragmentAssembler(lambda buffer, header: got.append(len(buffer)))
        assert wait(transport, lambda: subscription.poll(assembler.on_fragment, 64) >= 0 and len(got) == 50)
        assert got == [32 + 40 * i for i in range(50)]
        client.close()
        os.kill(process.pid, signal.SIGINT)
        process.communicate(timeout=PROCESS_TIMEOUT_S)
        assert process.returncode == 0
