"""Decode Aeron frames and the SBE messages they carry from a pcap or pcapng capture.

Theory of operation
-------------------
A capture is read with ``dpkt`` (``pcap.Reader`` or ``pcapng.Reader``, chosen by the file's magic number)
and every packet is unwrapped down to UDP: the link layer (Ethernet, Linux cooked SLL and SLL2,
loopback/null, raw IP), then IPv4 or IPv6. IP fragments are reassembled (``_IpReassembler``), so a
datagram bigger than the link MTU -- a jumbo Aeron ``mtu`` -- decodes as one; one whose fragments are
not all in the capture is skipped. Packets that are not UDP or cannot be parsed are skipped; ``ports``
keeps only datagrams whose source or destination port is listed.
Datagrams are numbered from 0 in the order they are decoded (``"datagram"`` in the records).

Each datagram holds Aeron frames back to back. Every frame starts with the 8-byte common header read
with the generated ``FrameHeaderDecoder``; the header of each kind of frame is read with its generated
codec, never with a hand-written layout. A DATA or PAD frame occupies ``align(frame_length, 32)``
bytes, a heartbeat (DATA with frame length 0) 32 bytes, any other frame ``frame_length`` bytes. A PAD
frame may be cut short by the datagram's end: a sender ships only the 32-byte header of the padding at
the end of a term, so that is not an error. Any other frame that is shorter than its header, longer
than what is left of the datagram, or of an unknown type ends the datagram with an error record; the
next datagram is decoded as usual.

DATA fragments are reassembled per ``(session_id, stream_id)`` by *position*, as a receiver's term
rebuilder does, not by arrival: a fragment is placed at its ``(term_id, term_offset)``, and a message is
delivered once its BEGIN fragment and every following fragment (each starting where the previous one's
aligned frame ended, in the same term) up to END are present. So fragments may arrive in any order, and
a frame seen again -- a retransmission, which a capture taken at the sender holds beside the original --
is recognised by its position and not delivered twice. What is still missing when the capture ends is
reported then, as ``incomplete message`` errors: a message begun whose END or a middle fragment never
came (``gap at term offset N`` names the first hole), and fragments with no BEGIN before them. A message
is bounded by Aeron's largest message length (16 MiB), and what waits is bounded too.

A complete message is decoded as SBE by the first schema whose header it matches (the schemas given
with ``--schema`` first, then the built-in ones of the ``schemas`` package), with the on-the-fly codec
so that the ``"sbe"`` object is exactly what ``tools sbe decode`` prints for the same bytes. Bytes
after the decoded message (the application payload behind a cluster ``SessionMessageHeader``) are
``"trailingHex"``; a payload no schema decodes is ``"payloadHex"``.

Every output record is a JSON-ready ``dict`` whose ``"kind"`` is ``frame``, ``message`` or ``error``.

``decode_recording`` gives the same records for the frames of an archive recording (``python -m tools
archive dump``): each block of frames read from the segment files goes through the same decoder as a
datagram would, and the records are placed by stream ``position`` instead of ``datagram`` and
``offset``; ``format_text`` then starts the line with ``position=N``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import dpkt  # type: ignore[import-untyped]

from codegen import load_schema
from codegen.otf import OtfCodec
from codegen.runtime.errors import CodecError, SchemaIdMismatchError
from generated.aeron_transport_frames import (
    DataHeaderDecoder,
    ErrorHeaderDecoder,
    FrameHeaderDecoder,
    FrameType,
    NakHeaderDecoder,
    ResponseSetupHeaderDecoder,
    RttmHeaderDecoder,
    SetupHeaderDecoder,
    StatusMessageHeaderDecoder,
    TaggedStatusMessageHeaderDecoder,
)
from schemas import builtin_schemas

__all__ = [
    "MAX_MESSAGE_LENGTH",
    "CaptureDecoder",
    "CaptureError",
    "Datagram",
    "SbeCatalog",
    "decode_capture",
    "decode_recording",
    "format_text",
    "read_datagrams",
]

Record = dict[str, Any]

FRAME_ALIGNMENT: Final = 32
DATA_HEADER_LENGTH: Final = DataHeaderDecoder.SIZE
FRAME_HEADER_LENGTH: Final = FrameHeaderDecoder.SIZE
MAX_MESSAGE_LENGTH: Final = 16 * 1024 * 1024

_BEGIN: Final = 0x80
_END: Final = 0x40

_PCAP_MAGICS: Final = frozenset(
    {bytes.fromhex(m) for m in ("a1b2c3d4", "d4c3b2a1", "a1b23c4d", "4d3cb2a1", "a1b2cd34", "34cdb2a1")}
)
_PCAPNG_MAGIC: Final = bytes.fromhex("0a0d0d0a")

# Link types (LINKTYPE_* as stored in capture files, and the DLT_* values some systems use).
_LINK_NULL: Final = frozenset({0, 108})  # DLT_NULL, DLT_LOOP: a 4-byte address family, then IP
_LINK_ETHERNET: Final = 1
_LINK_RAW: Final = frozenset({12, 14, 101, 228, 229})  # DLT_RAW (two systems), LINKTYPE_RAW, IPV4, IPV6
_LINK_SLL: Final = 113
_LINK_SLL2: Final = 276

_UDP: Final = 17
_IPV6_FRAGMENT: Final = 44

# dpkt signals bad packets with its own errors and, on some malformed input, with plain ones.
_PARSE_ERRORS: Final = (dpkt.Error, struct.error, ValueError, IndexError, KeyError, TypeError)


class CaptureError(Exception):
    """The file cannot be read as a capture at all."""

    is_user_error = True


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP datagram of the capture: its number among decoded datagrams, ports and payload."""

    index: int
    source_port: int
    destination_port: int
    payload: bytes


def _align(value: int) -> int:
    return (value + FRAME_ALIGNMENT - 1) & -FRAME_ALIGNMENT


# ------------------------------------------------------------------------------------------ pcap reading


class _ShortReadWatch:
    """A read-only file proxy that remembers reads which came back short: dpkt's readers yield a packet
    cut by the end of the file as if it were whole, so truncation is seen here instead."""

    __slots__ = ("_stream", "name", "partial", "short")

    def __init__(self, stream: Any, name: str) -> None:
        self._stream = stream
        self.name = name
        self.partial = False  # some read returned part of what was asked
        self.short = False  # some read returned less than asked, possibly nothing

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._stream.read(size)
        if 0 <= len(data) < size:
            self.short = True
            self.partial = self.partial or len(data) > 0
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._stream.seek(offset, whence))

    def reset(self) -> None:
        self.partial = self.short = False


def _open_reader(path: Path, stream: Any) -> Any:
    magic = stream.read(4)
    stream.seek(0)
    try:
        if magic in _PCAP_MAGICS:
            return dpkt.pcap.Reader(stream)
        if magic == _PCAPNG_MAGIC:
            return dpkt.pcapng.Reader(stream)
    except (*_PARSE_ERRORS, OSError, OverflowError, MemoryError) as exc:
        raise CaptureError(f"{path}: not a readable capture: {exc}") from None
    raise CaptureError(f"{path}: not a pcap or pcapng capture (magic number {magic.hex() or 'missing'})")


def _ip_packet(buf: bytes) -> Any:
    """An IPv4 or IPv6 packet from raw bytes, by the version nibble; ``None`` for anything else."""
    if not buf:
        return None
    version = buf[0] >> 4
    if version == 4:
        return dpkt.ip.IP(buf)
    if version == 6:
        return dpkt.ip6.IP6(buf)
    return None


def _network_packet(link_type: int, frame: bytes) -> Any:
    if link_type == _LINK_ETHERNET:
        return dpkt.ethernet.Ethernet(frame).data
    if link_type in _LINK_NULL:
        return _ip_packet(frame[4:])
    if link_type in _LINK_RAW:
        return _ip_packet(frame)
    if link_type == _LINK_SLL:
        return dpkt.sll.SLL(frame).data
    if link_type == _LINK_SLL2:
        return dpkt.sll2.SLL2(frame).data
    return None


MAX_PENDING_IP_DATAGRAMS: Final = 1024
MAX_IP_DATAGRAM: Final = 65535


class _IpReassembler:
    """Puts IP fragments back together (RFC 791 / RFC 8200): an Aeron datagram bigger than the link's MTU
    -- a jumbo Aeron ``mtu`` on a 1500-byte Ethernet -- travels as several IP fragments.

    Fragments are keyed by (source, destination, identification, protocol) and placed by offset;
    the payload is complete when the last fragment (no more-fragments flag) has come and the pieces
    cover it without a hole. At most ``MAX_PENDING_IP_DATAGRAMS`` wait (the oldest goes first), none
    larger than 64 KiB; overlapping or oversized pieces drop the datagram.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[tuple[Any, ...], tuple[dict[int, bytes], list[int]]] = {}

    def add(self, key: tuple[Any, ...], offset: int, more: bool, data: bytes) -> bytes | None:
        """Add one fragment; the whole payload once every piece is there, else ``None``."""
        entry = self._pending.get(key)
        if entry is None:
            if len(self._pending) >= MAX_PENDING_IP_DATAGRAMS:
                del self._pending[next(iter(self._pending))]
            entry = self._pending[key] = ({}, [-1])
        pieces, total = entry
        end = offset + len(data)
        if end > MAX_IP_DATAGRAM or offset in pieces:
            del self._pending[key]
            return None
        pieces[offset] = data
        if not more:
            total[0] = end
        if total[0] < 0:
            return None
        covered = 0
        for start in sorted(pieces):
            if start != covered:
                return None  # a hole (or an overlap): wait, or never complete
            covered += len(pieces[start])
        if covered != total[0]:
            return None
        del self._pending[key]
        return b"".join(pieces[start] for start in sorted(pieces))


def _transport_payload(packet: Any, reassembler: _IpReassembler) -> bytes | None:
    """The UDP bytes (header included) carried by an IPv4 or IPv6 packet, reassembled from fragments
    when it was fragmented; ``None`` while fragments are missing or for anything but UDP."""
    if isinstance(packet, dpkt.ip.IP):
        if packet.p != _UDP:
            return None
        data = packet.data
        raw = data if isinstance(data, bytes) else bytes(data)
        if packet.offset == 0 and not packet.mf:
            return raw
        key = (bytes(packet.src), bytes(packet.dst), packet.id, packet.p)
        return reassembler.add(key, packet.offset * 8, bool(packet.mf), raw)
    if isinstance(packet, dpkt.ip6.IP6):
        fragment = getattr(packet, "extension_hdrs", {}).get(_IPV6_FRAGMENT)
        if fragment is None:
            return bytes(packet.data) if packet.p == _UDP else None
        if fragment.nxt != _UDP:
            return None
        key = (bytes(packet.src), bytes(packet.dst), fragment.id, _UDP)
        data = packet.data
        raw = data if isinstance(data, bytes) else bytes(data)
        return reassembler.add(key, fragment.frag_off * 8, bool(fragment.m_flag), raw)
    return None


def _udp_of(link_type: int, frame: bytes, reassembler: _IpReassembler) -> tuple[int, int, bytes] | None:
    """``(source_port, destination_port, payload)`` of a UDP packet (IP fragments reassembled), or
    ``None``."""
    try:
        raw = _transport_payload(_network_packet(link_type, frame), reassembler)
        if raw is None or len(raw) < 8:
            return None
        udp = dpkt.udp.UDP(raw)
        payload = bytes(udp.data)
        if udp.ulen >= 8:
            payload = payload[: udp.ulen - 8]
        return int(udp.sport), int(udp.dport), payload
    except _PARSE_ERRORS:
        return None


def read_datagrams(path: str | Path, ports: Iterable[int] = ()) -> Iterator[Datagram | Record]:
    """The UDP datagrams of a capture, filtered by ``ports`` when not empty.

    Raises :class:`CaptureError` when the file is not a capture; a capture damaged or cut short after its
    header yields one error record and ends.
    """
    path = Path(path)
    wanted = frozenset(ports)
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise CaptureError(f"cannot read {path}: {exc.strerror}") from None
    with stream:
        watch = _ShortReadWatch(stream, str(path))
        reader = _open_reader(path, watch)
        link_type = int(reader.datalink())
        watch.reset()
        packets = iter(reader)
        reassembler = _IpReassembler()
        index = 0
        packet_number = 0
        while True:
            problem: str | None = None
            try:
                item = next(packets, None)
            except (*_PARSE_ERRORS, OSError, OverflowError, MemoryError) as exc:
                item, problem = None, f"damaged or truncated: {exc}"
            if problem is None and (watch.partial or (item is not None and watch.short)):
                problem = "truncated: the file ends inside a packet"
            if problem is not None:
                yield {
                    "kind": "error",
                    "datagram": index,
                    "offset": 0,
                    "error": f"capture {problem} (after {packet_number} whole packets)",
                }
                return
            if item is None:
                return
            packet_number += 1
            udp = _udp_of(link_type, bytes(item[1]), reassembler)
            if udp is None:
                continue
            source_port, destination_port, payload = udp
            if wanted and source_port not in wanted and destination_port not in wanted:
                continue
            yield Datagram(index, source_port, destination_port, payload)
            index += 1


# -------------------------------------------------------------------------------------------- SBE payloads


class SbeCatalog:
    """The schemas a payload may be decoded with: the given ones first, then the built-in ones."""

    __slots__ = ("_codecs",)

    def __init__(self, extra_schemas: Sequence[str | Path] = (), *, builtin: bool = True) -> None:
        paths = [Path(p) for p in extra_schemas]
        if builtin:
            paths += builtin_schemas()
        codecs = [OtfCodec(load_schema(p)) for p in paths]
        # A schema without messages (the transport frames) decodes nothing.
        self._codecs = tuple(c for c in codecs if c.schema.messages)

    def describe(self, payload: bytes) -> Record:
        """``{"sbe": ..., ["trailingHex": ...]}``, or ``{"payloadHex": ...}`` when no schema decodes it."""
        for codec in self._codecs:
            try:
                message = codec.decode(payload)
            except SchemaIdMismatchError:
                continue
            except CodecError:
                continue  # the schema's id matched but the message is not one of its messages
            out: Record = {"sbe": message.to_json_obj()}
            if message.length < len(payload):
                out["trailingHex"] = payload[message.length :].hex()
            return out
        return {"payloadHex": payload.hex()}


# ------------------------------------------------------------------------------------------------ frames

# Frame types whose header is read with one generated codec: (decoder, header length, flags are a set).
_HEADERS: Final[dict[int, tuple[type[Any], int]]] = {
    FrameType.PAD: (DataHeaderDecoder, DataHeaderDecoder.SIZE),
    FrameType.DATA: (DataHeaderDecoder, DataHeaderDecoder.SIZE),
    FrameType.NAK: (NakHeaderDecoder, NakHeaderDecoder.SIZE),
    FrameType.SM: (StatusMessageHeaderDecoder, StatusMessageHeaderDecoder.SIZE),
    FrameType.ERR: (ErrorHeaderDecoder, ErrorHeaderDecoder.SIZE),
    FrameType.SETUP: (SetupHeaderDecoder, SetupHeaderDecoder.SIZE),
    FrameType.RTTM: (RttmHeaderDecoder, RttmHeaderDecoder.SIZE),
    FrameType.RES: (FrameHeaderDecoder, FrameHeaderDecoder.SIZE),
    FrameType.ATS_DATA: (FrameHeaderDecoder, FrameHeaderDecoder.SIZE),
    FrameType.RSP_SETUP: (ResponseSetupHeaderDecoder, ResponseSetupHeaderDecoder.SIZE),
}


class FrameFormatError(Exception):
    """A frame that cannot be decoded; ends the datagram."""


def _flag_list(flags: Any) -> list[Any]:
    """Flags as the SBE JSON shows a set: choice names, unnamed bits as bit numbers."""
    if isinstance(flags, list):
        return flags
    return [bit for bit in range(8) if int(flags) >> bit & 1]


def _header_fields(frame_type: int, frame_length: int, buf: bytes, offset: int, heartbeat: bool) -> Record:
    decoder_type, header_length = _HEADERS[frame_type]
    if frame_type == FrameType.SM and frame_length >= TaggedStatusMessageHeaderDecoder.SIZE:
        decoder_type, header_length = TaggedStatusMessageHeaderDecoder, TaggedStatusMessageHeaderDecoder.SIZE
    if frame_length < header_length and not heartbeat:
        raise FrameFormatError(
            f"{FrameType(frame_type).name} frame_length {frame_length} is shorter than its "
            f"{header_length}-byte header"
        )
    decoder_type.unpack(buf, offset)  # raises a CodecError on a header cut by the datagram's end
    fields: Record = decoder_type().wrap(buf, offset).to_dict()
    if "status" in fields:  # the tagged status message nests the plain one
        fields = {**fields.pop("status"), **fields}
    fields["flags"] = _flag_list(fields["flags"])
    return fields


@dataclass(slots=True)
class _Fragment:
    """A DATA fragment waiting for the rest of its message."""

    flags: int
    frame_length: int
    payload: bytes
    datagram: int
    offset: int


@dataclass(slots=True)
class _Stream:
    """One (session, stream): fragments placed by (term id, term offset), as a receiver's rebuilder does.

    ``pending`` holds fragments of messages not yet whole; ``done`` remembers the positions of fragments
    already delivered, so a retransmission of them (a capture taken at the sender holds the original and
    every resend) is recognised and not decoded twice.
    """

    pending: dict[tuple[int, int], _Fragment]
    done: dict[tuple[int, int], None]


MAX_PENDING_FRAGMENTS: Final = 65536
MAX_REMEMBERED_FRAGMENTS: Final = 1 << 20


class CaptureDecoder:
    """Turns datagrams into frame, message and error records; ``finish`` reports unfinished messages.

    Fragments are reassembled by position, not by arrival: a message is delivered when its BEGIN
    fragment and every following fragment up to END are present, in whatever order they came, and a
    frame seen again (a retransmission) is not delivered again. What is still missing when the capture
    ends is reported by ``finish``: a message with a BEGIN but no END, and fragments with no BEGIN.
    """

    __slots__ = ("_catalog", "_streams")

    def __init__(self, catalog: SbeCatalog) -> None:
        self._catalog = catalog
        self._streams: dict[tuple[int, int], _Stream] = {}

    def decode_datagram(self, index: int, buf: bytes) -> list[Record]:
        records: list[Record] = []
        offset = 0
        end = len(buf)
        while offset < end:
            try:
                offset = self._decode_frame(index, buf, offset, records)
            except (FrameFormatError, CodecError) as exc:
                records.append({"kind": "error", "datagram": index, "offset": offset, "error": str(exc)})
                break
        return records

    def finish(self) -> list[Record]:
        records: list[Record] = []
        for key, stream in self._streams.items():
            records.extend(self._report_pending(key, stream, stream.pending.keys()))
            stream.pending.clear()
        self._streams.clear()
        records.sort(key=lambda record: (record["datagram"], record["offset"]))
        return records

    def _decode_frame(self, index: int, buf: bytes, offset: int, records: list[Record]) -> int:
        end = len(buf)
        header: tuple[int, int, int, int] = FrameHeaderDecoder.unpack(buf, offset)
        frame_length, frame_type = header[0], header[3]
        if frame_type not in _HEADERS:
            raise FrameFormatError(f"unknown frame type {frame_type:#06x}")
        is_data = frame_type in (FrameType.DATA, FrameType.PAD)
        heartbeat = frame_type == FrameType.DATA and frame_length == 0
        if frame_length < FRAME_HEADER_LENGTH and not heartbeat:
            raise FrameFormatError(f"frame_length {frame_length} is shorter than the 8-byte frame header")
        if frame_length > end - offset and frame_type != FrameType.PAD:
            raise FrameFormatError(
                f"{FrameType(frame_type).name} frame_length {frame_length} runs past the datagram's end "
                f"({end - offset} bytes left)"
            )
        fields = _header_fields(frame_type, frame_length, buf, offset, heartbeat)
        record: Record = {
            "kind": "frame",
            "type": FrameType(frame_type).name,
            "frameLength": fields.pop("frameLength"),
            "version": fields.pop("version"),
            "flags": fields.pop("flags"),
        }
        del fields["type"]
        record.update(fields)
        if frame_type == FrameType.ERR:
            text = buf[offset + ErrorHeaderDecoder.SIZE : offset + frame_length]
            record["errorText"] = text[: max(fields["errorLength"], 0)].decode("utf-8", "replace")
        elif frame_type in (FrameType.RES, FrameType.ATS_DATA):
            record["bodyHex"] = buf[offset + FRAME_HEADER_LENGTH : offset + frame_length].hex()
        record["datagram"] = index
        record["offset"] = offset
        records.append(record)
        if heartbeat:
            return offset + DATA_HEADER_LENGTH
        if not is_data:
            return offset + frame_length
        if frame_type == FrameType.DATA:
            self._on_fragment(index, offset, buf, record, records)
        return min(offset + _align(frame_length), end)

    def _on_fragment(self, index: int, offset: int, buf: bytes, frame: Record, records: list[Record]) -> None:
        key = (frame["sessionId"], frame["streamId"])
        flags = buf[offset + 5]
        term_id = frame["termId"]
        term_offset = frame["termOffset"]
        frame_length = frame["frameLength"]
        payload = buf[offset + DATA_HEADER_LENGTH : offset + frame_length]
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream({}, {})
        position = (term_id, term_offset)
        if position in stream.done or position in stream.pending:
            return  # a retransmission of a frame already seen
        if flags & _BEGIN and flags & _END:
            self._remember(stream, [position])
            records.append(self._message(key, term_id, term_offset, payload))
            return
        if len(stream.pending) >= MAX_PENDING_FRAGMENTS:
            oldest = next(iter(stream.pending))
            records.extend(self._report_pending(key, stream, [oldest]))
            del stream.pending[oldest]
        stream.pending[position] = _Fragment(flags, frame_length, payload, index, offset)
        begin = position if flags & _BEGIN else self._begin_before(stream, term_id, term_offset)
        if begin is not None:
            self._assemble(key, stream, begin, records)

    @staticmethod
    def _begin_before(stream: _Stream, term_id: int, term_offset: int) -> tuple[int, int] | None:
        """The pending BEGIN nearest before ``term_offset`` in the same term (messages never straddle)."""
        best: tuple[int, int] | None = None
        for (pending_term, pending_offset), fragment in stream.pending.items():
            if (
                pending_term == term_id
                and pending_offset < term_offset
                and fragment.flags & _BEGIN
                and (best is None or pending_offset > best[1])
            ):
                best = (pending_term, pending_offset)
        return best

    def _assemble(
        self, key: tuple[int, int], stream: _Stream, begin: tuple[int, int], records: list[Record]
    ) -> None:
        chain = self._chain(stream, begin)
        last = stream.pending[chain[-1]]
        if not last.flags & _END:
            return
        chunks = [stream.pending[position].payload for position in chain]
        length = sum(len(chunk) for chunk in chunks)
        if length > MAX_MESSAGE_LENGTH:
            records.extend(self._report_pending(key, stream, chain, "longer than the largest message"))
        else:
            records.append(self._message(key, begin[0], begin[1], b"".join(chunks)))
        for position in chain:
            del stream.pending[position]
        self._remember(stream, chain)

    @staticmethod
    def _chain(stream: _Stream, begin: tuple[int, int]) -> list[tuple[int, int]]:
        """The contiguous fragments from ``begin``, up to and including an END or the first gap."""
        chain = [begin]
        fragment = stream.pending[begin]
        term_id, term_offset = begin
        while not fragment.flags & _END:
            term_offset += _align(fragment.frame_length)
            following = stream.pending.get((term_id, term_offset))
            if following is None or following.flags & _BEGIN:
                break
            chain.append((term_id, term_offset))
            fragment = following
        return chain

    @staticmethod
    def _remember(stream: _Stream, positions: Iterable[tuple[int, int]]) -> None:
        done = stream.done
        for position in positions:
            done[position] = None
        while len(done) > MAX_REMEMBERED_FRAGMENTS:
            del done[next(iter(done))]

    def _report_pending(
        self,
        key: tuple[int, int],
        stream: _Stream,
        positions: Iterable[tuple[int, int]],
        why: str | None = None,
    ) -> list[Record]:
        """Error records for pending fragments: one per message begun, one per fragment without BEGIN."""
        pending = stream.pending
        records: list[Record] = []
        reported: set[tuple[int, int]] = set()
        for position in sorted(positions, key=lambda p: (pending[p].datagram, pending[p].offset)):
            if position in reported:
                continue
            fragment = pending[position]
            if fragment.flags & _BEGIN:
                chain = self._chain(stream, position)
                reported.update(chain)
                last = chain[-1]
                after = last[1] + _align(pending[last].frame_length)
                later = any(term == position[0] and offset > after for term, offset in pending)
                missing = why or (f"gap at term offset {after}" if later else "BEGIN never ended")
                length = sum(len(pending[link].payload) for link in chain)
                error = (
                    f"incomplete message: session {key[0]} stream {key[1]} term {position[0]} offset "
                    f"{position[1]} ({length} bytes dropped): {missing}"
                )
            else:
                if self._begin_before(stream, *position) is not None:
                    continue  # after a BEGIN that never completed: reported with that message
                reported.add(position)
                what = "END" if fragment.flags & _END else "middle fragment"
                error = (
                    f"incomplete message: session {key[0]} stream {key[1]}: {what} at term {position[0]} "
                    f"offset {position[1]} without BEGIN"
                )
            records.append(
                {"kind": "error", "datagram": fragment.datagram, "offset": fragment.offset, "error": error}
            )
        return records

    def _message(self, key: tuple[int, int], term_id: int, term_offset: int, payload: bytes) -> Record:
        record: Record = {
            "kind": "message",
            "sessionId": key[0],
            "streamId": key[1],
            "termId": term_id,
            "termOffset": term_offset,
            "length": len(payload),
        }
        record.update(self._catalog.describe(payload))
        return record


def decode_capture(
    path: str | Path, ports: Iterable[int] = (), schemas: Sequence[str | Path] = ()
) -> Iterator[Record]:
    """Every record of a capture, in order. Raises :class:`CaptureError` if the file is not a capture."""
    decoder = CaptureDecoder(SbeCatalog(schemas))
    for item in read_datagrams(path, ports):
        if isinstance(item, Datagram):
            yield from decoder.decode_datagram(item.index, item.payload)
        else:
            yield item
    yield from decoder.finish()


def decode_recording(
    blocks: Iterable[tuple[int, bytes | memoryview]],
    *,
    term_length: int,
    initial_term_id: int,
    schemas: Sequence[str | Path] = (),
) -> Iterator[Record]:
    """The records of an archive recording's frames, as ``decode_capture`` gives them for a capture, but
    placed by stream ``position`` instead of datagram and offset: frames and errors carry the position of
    their frame, messages the position of their first fragment. ``blocks`` are ``(position, bytes)``
    runs of whole frames as a recording holds them (a PAD as its 32-byte header), in position order;
    fragmented messages are reassembled as for a capture."""
    decoder = CaptureDecoder(SbeCatalog(schemas))
    shift = term_length.bit_length() - 1

    def placed(record: Record) -> Record:
        if record["kind"] == "message":
            term_count = ((record["termId"] - initial_term_id + 2**31) % 2**32) - 2**31
            position = (term_count << shift) + record["termOffset"]
        else:
            # a block's "datagram" number is its position / 32 (positions are 32-byte aligned)
            position = record.pop("datagram") * FRAME_ALIGNMENT + record.pop("offset")
        return {"kind": record.pop("kind"), "position": position, **record}

    for position, block in blocks:
        for record in decoder.decode_datagram(position // FRAME_ALIGNMENT, bytes(block)):
            yield placed(record)
    for record in decoder.finish():
        yield placed(record)


# ---------------------------------------------------------------------------------------------- text form


def _value_text(value: Any) -> str:
    if isinstance(value, list):
        return "|".join(str(v) for v in value) or "-"
    return str(value)


def _where(record: Record) -> str:
    """Where a record comes from: ``#datagram+offset`` in a capture, ``position=N`` in a recording."""
    if "position" in record:
        return f"position={record['position']}"
    return f"#{record['datagram']}+{record['offset']}"


def format_text(record: Record) -> str:
    """One readable line for a record (of a capture, or of a recording: see ``decode_recording``)."""
    kind = record["kind"]
    if kind == "error":
        return f"{_where(record)} error: {record['error']}"
    if kind == "frame":
        skip = {"kind", "type", "datagram", "offset", "position"}
        body = " ".join(f"{k}={_value_text(v)}" for k, v in record.items() if k not in skip)
        name = "HEARTBEAT" if record["type"] == "DATA" and record["frameLength"] == 0 else record["type"]
        return f"{_where(record)} {name} {body}"
    head = (
        f"message session={record['sessionId']} stream={record['streamId']} term={record['termId']} "
        f"termOffset={record['termOffset']} length={record['length']}"
    )
    if "position" in record:
        head = f"{_where(record)} {head}"
    if "sbe" in record:
        sbe = record["sbe"]
        text = f"{head} {sbe['message']} (schema {sbe['schemaId']} v{sbe['version']}) {sbe['fields']}"
        if "trailingHex" in record:
            text += f" trailing={record['trailingHex']}"
        return text
    return f"{head} payload={record['payloadHex']}"
