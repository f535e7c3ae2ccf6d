"""Transcripts of the archive control protocol: every message on the control streams of a run, decoded.

The same decoder (``tools.capture``: frames reassembled by position, retransmissions recognised, SBE
decoded with the built-in archive schema) reads the Java reference capture and the datagrams of one of
our runs (a ``support.pcap.TapRecorder`` on the network), so the two transcripts can be put side by side.
A message keeps its payload bytes (reassembled if it was fragmented), the ports of the datagram that
completed it, and its JSON form (``fields``, Aeron's field names; enums by name, var data as text, or
``{"hex": ...}`` for raw bytes). The first SETUP frame of every publication comes along, for the term
length, MTU and initial term id its sender chose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generated import aeron_archive_codecs as codecs
from support.pcap import CapturedDatagram
from tools.capture import CaptureDecoder, Datagram, SbeCatalog, read_datagrams

__all__ = [
    "CONTROL_STREAMS",
    "ControlMessage",
    "Setup",
    "Transcript",
    "capture_transcript",
    "request_fields",
    "tap_transcript",
    "transcript",
]

CONTROL_STREAMS = (10, 20)
_ARCHIVE_SCHEMA_ID = 101


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """One archive control message: who sent it where, on which image, and what it says."""

    index: int  # order in the transcript
    datagram: int  # the number of the datagram that completed it
    source_port: int
    destination_port: int
    session_id: int  # the image's (publication's) session id
    stream_id: int
    name: str
    fields: dict[str, Any]
    payload: bytes

    def get(self, name: str) -> Any:
        return self.fields.get(name)

    def __repr__(self) -> str:
        return (
            f"#{self.index} {self.source_port}->{self.destination_port} stream {self.stream_id} "
            f"{self.name}{self.fields}"
        )


class _KeepPayload(SbeCatalog):
    """The catalog of ``tools.capture`` that also keeps each message's bytes."""

    def describe(self, payload: bytes) -> dict[str, Any]:
        out = super().describe(payload)
        out["rawHex"] = payload.hex()
        return out


@dataclass(frozen=True, slots=True)
class Setup:
    """The first SETUP frame of a publication: how its sender made it."""

    session_id: int
    stream_id: int
    initial_term_id: int
    term_offset: int
    term_length: int
    mtu: int


class Transcript(list[ControlMessage]):
    """The control messages of a run, in order; ``setups`` has the first SETUP of every publication
    (of every stream), keyed by (session id, stream id)."""

    def __init__(self, messages: Iterable[ControlMessage], setups: dict[tuple[int, int], Setup]) -> None:
        super().__init__(messages)
        self.setups = setups


def transcript(datagrams: Iterable[Datagram]) -> Transcript:
    """The archive messages on the control streams of ``datagrams``, in the order they completed."""
    decoder = CaptureDecoder(_KeepPayload())
    out: list[ControlMessage] = []
    setups: dict[tuple[int, int], Setup] = {}
    for datagram in datagrams:
        for record in decoder.decode_datagram(datagram.index, datagram.payload):
            if record["kind"] == "error":
                raise AssertionError(f"datagram {datagram.index}: {record['error']}")
            if record["kind"] == "frame" and record["type"] == "SETUP":
                key = (record["sessionId"], record["streamId"])
                setups.setdefault(
                    key,
                    Setup(
                        *key,
                        record["initialTermId"],
                        record["termOffset"],
                        record["termLength"],
                        record["mtu"],
                    ),
                )
            if record["kind"] != "message" or record["streamId"] not in CONTROL_STREAMS:
                continue
            sbe = record.get("sbe")
            assert sbe is not None and sbe["schemaId"] == _ARCHIVE_SCHEMA_ID, record
            out.append(
                ControlMessage(
                    index=len(out),
                    datagram=datagram.index,
                    source_port=datagram.source_port,
                    destination_port=datagram.destination_port,
                    session_id=record["sessionId"],
                    stream_id=record["streamId"],
                    name=sbe["message"],
                    fields=sbe["fields"],
                    payload=bytes.fromhex(record["rawHex"]),
                )
            )
    leftovers = [record for record in decoder.finish() if record["kind"] == "error"]
    assert not leftovers, leftovers
    return Transcript(out, setups)


def capture_transcript(path: Path) -> Transcript:
    """The control transcript of a pcap or pcapng capture."""
    items = list(read_datagrams(path))
    errors = [item for item in items if not isinstance(item, Datagram)]
    assert not errors, errors
    return transcript(item for item in items if isinstance(item, Datagram))


def tap_transcript(datagrams: Iterable[CapturedDatagram]) -> Transcript:
    """The control transcript of the datagrams a ``TapRecorder`` saw."""
    return transcript(
        Datagram(index, d.source[1], d.destination[1], d.payload) for index, d in enumerate(datagrams)
    )


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def request_fields(message: ControlMessage) -> dict[str, Any]:
    """The message's fields as keyword arguments of ``cluster.archive.client.encode_request``: snake_case
    names in schema order, enums by value, text as ``str`` and raw var data as ``bytes``."""
    out: dict[str, Any] = {}
    for name, value in message.fields.items():
        key = _CAMEL.sub("_", name).lower()
        if isinstance(value, dict) and set(value) == {"hex"}:
            value = bytes.fromhex(value["hex"])
        elif name == "sourceLocation":
            value = codecs.SourceLocation[value]
        out[key] = value
    return out
