"""Helpers for the archive's control protocol tests (``tests/archive/test_protocol.py`` and
``test_hostile_requests.py``): a simulated world with one archive and a well-behaved client, a hostile
party that writes raw bytes onto the archive's control stream, random requests built with the generated
encoders, and collectors for recording signals and replayed messages.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import Any

from cluster.archive.archive import Archive
from cluster.archive.client import ArchiveClient, RecordingSignalEvent
from cluster.archive.protocol import REPLAY_ALL_AND_STOP
from cluster.transport.driver import Transport
from cluster.transport.image import Image
from cluster.transport.logbuffer import FragmentAssembler, Header
from cluster.transport.publication import Publication
from generated import aeron_archive_codecs as codecs
from generated.aeron_archive_codecs import RecordingSignal, SourceLocation
from support.archive_world import World

__all__ = [
    "ARCHIVE_PORT",
    "REPLAY_STREAM",
    "STREAM",
    "Collector",
    "ProtocolWorld",
    "Signals",
    "block_struct",
    "counters_total",
    "image_session_id",
    "payload",
]

ARCHIVE_PORT = 8010
RECORD_PORT = 8020
REPLAY_PORT = 8030
STREAM = 1001
REPLAY_STREAM = 1010


def payload(i: int, length: int = 200) -> bytes:
    """Message ``i`` of a test stream: ``length`` bytes that differ from message to message."""
    return bytes((i * 7 + j) % 251 for j in range(length))


def image_session_id(replay_session_id: int) -> int:
    """The session id of a replay's image: the low 32 bits of the replay session id, as an int32."""
    return ((replay_session_id & 0xFFFF_FFFF) + 0x8000_0000) % (1 << 32) - 0x8000_0000


def block_struct(encoder_type: Any) -> struct.Struct:
    """The generated struct of a message's whole block (``_<MESSAGE>_BLOCK``), field by field."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", encoder_type.NAME).upper()
    return getattr(codecs, f"_{snake}_BLOCK")  # type: ignore[no-any-return]


def counters_total(archive: Archive) -> int:
    """Everything the archive counted as dropped or refused (the request counters of ``ArchiveCounters``)."""
    c = archive.counters
    return c.malformed_requests + c.unknown_session_requests + c.unsupported_requests + c.refused_sessions


class Signals:
    """Recording signals in arrival order (an ``on_recording_signal`` handler)."""

    def __init__(self) -> None:
        self.events: list[RecordingSignalEvent] = []

    def __call__(self, event: RecordingSignalEvent) -> None:
        self.events.append(event)

    def of(self, signal: RecordingSignal) -> list[RecordingSignalEvent]:
        return [event for event in self.events if event.signal == signal]

    def names(self) -> list[str]:
        return [RecordingSignal(event.signal).name for event in self.events]


class Collector:
    """Whole messages of one image with the position after each, and whether the image ended."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, int]] = []
        self.assembler = FragmentAssembler(self._on_message)

    def _on_message(self, data: memoryview, header: Header) -> None:
        self.messages.append((bytes(data), header.position()))

    def poll(self, image: Image | None) -> None:
        if image is not None:
            image.poll(self.assembler.on_fragment, 64)


class ProtocolWorld:
    """One archive on a simulated network and disk, reachable over UDP at ``10.0.0.1:8010``, a well-behaved
    client on its own host, and helpers to publish, record and replay."""

    def __init__(self, seed: int = 1, **archive_context: Any) -> None:
        self.world = World("sim", seed=seed)
        world = self.world
        self.archive_host = world.host()
        self.client_host = world.host()
        self.archive_transport = world.transport(self.archive_host)
        self.client_transport = world.transport(self.client_host)
        self.control = f"aeron:udp?endpoint={self.archive_host}:{ARCHIVE_PORT}"
        self.archive = world.archive(
            self.archive_transport, "archive", control_channel=self.control, **archive_context
        )
        self.channel = f"aeron:udp?endpoint={self.archive_host}:{RECORD_PORT}"
        self.replay_channel = f"aeron:udp?endpoint={self.client_host}:{REPLAY_PORT}"
        self.signals = Signals()
        self.client = self.connect(on_recording_signal=self.signals)

    def connect(
        self, transport: Transport | None = None, host: str | None = None, **kwargs: Any
    ) -> ArchiveClient:
        transport = transport or self.client_transport
        return self.world.client(transport, self.control, host or self.client_host, **kwargs)

    def step(self) -> int:
        return self.world.step()

    def run_until(self, condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        return self.world.run_until(condition, timeout_s=timeout_s)

    def run_for(self, seconds: float) -> None:
        self.world.run_until(lambda: False, timeout_s=seconds)

    def await_signal(
        self,
        signal: RecordingSignal,
        count: int = 1,
        client: ArchiveClient | None = None,
        signals: Signals | None = None,
    ) -> RecordingSignalEvent:
        client = client or self.client
        signals = signals or self.signals
        assert self.run_until(
            lambda: client.poll_for_recording_signals() >= 0 and len(signals.of(signal)) >= count
        ), f"no {signal.name} signal #{count}; signals so far: {signals.names()}"
        return signals.of(signal)[count - 1]

    def publish(
        self, publication: Publication, first: int, count: int, length: int = 200
    ) -> list[tuple[bytes, int]]:
        """Offer messages ``first .. first + count - 1``; each with the position after it."""
        sent = []
        for i in range(first, first + count):
            data = payload(i, length)
            while True:
                result = publication.offer(data)
                if result > 0:
                    sent.append((data, result))
                    break
                assert self.world.clock.nano_time() < 10**15
                self.step()
        return sent

    def record(
        self, stream_id: int = STREAM, count: int = 10, channel: str | None = None
    ) -> tuple[int, int, list[tuple[bytes, int]]]:
        """Record ``count`` messages of a new publication on ``channel`` and stop: (recording id, subscription
        id, messages with their positions)."""
        channel = channel or self.channel
        starts = len(self.signals.of(RecordingSignal.START))
        stops = len(self.signals.of(RecordingSignal.STOP))
        subscription_id = self.client.start_recording(channel, stream_id, SourceLocation.REMOTE)
        publication = self.client_transport.add_exclusive_publication(channel, stream_id)
        recording_id = self.await_signal(RecordingSignal.START, starts + 1).recording_id
        sent = self.publish(publication, 0, count)
        end = sent[-1][1]
        assert self.run_until(lambda: self.client.get_recording_position(recording_id) == end)
        self.client.stop_recording_subscription(subscription_id)
        self.await_signal(RecordingSignal.STOP, stops + 1)
        publication.close()
        return recording_id, subscription_id, sent

    def replay_all(self, recording_id: int, expected: list[tuple[bytes, int]], position: int = 0) -> None:
        """Replay ``recording_id`` from ``position`` to its stop and compare with ``expected``."""
        stream = REPLAY_STREAM + 50
        subscription = self.client_transport.add_subscription(self.replay_channel, stream)
        replay = self.client.start_replay(
            recording_id, position, REPLAY_ALL_AND_STOP, self.replay_channel, stream
        )
        collector = Collector()
        assert self.run_until(
            lambda: (
                collector.poll(self.replay_image(subscription, replay))
                or len(collector.messages) >= len(expected)
            )
        ), f"{len(collector.messages)} of {len(expected)}"
        assert collector.messages == expected
        subscription.close()

    def replay_image(self, subscription: Any, replay_session_id: int) -> Image | None:
        return subscription.image_by_session_id(image_session_id(replay_session_id))  # type: ignore[no-any-return]

    def close(self) -> None:
        self.world.close()
