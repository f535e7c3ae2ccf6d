"""tshark with the generated SBE Lua plugins: writing captures of SBE messages in Aeron DATA frames,
running tshark once over a whole capture, and reading its JSON back into the JSON form of SBE messages
(``docs/sbe-json.md``), so that it can be compared with what ``python -m tools decode --json`` prints.

tshark's JSON is read with every key kept in order (``object_pairs_hook``): a packet may hold the same
field many times (group entries, array elements, several messages in one datagram).

What the plugin shows and the SBE JSON form differ only in notation, undone here with the schema's IR:
an enum or a set shows its number (Wireshark's value strings and flags name it), an optional field holding
its null value shows that value (its text says ``null``), bytes show as ``aa:bb``; a field the plugin does
not show (newer than the acting version, or beyond a shorter block) is ``null``.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codegen.ir import (
    CompositeType,
    EncodedType,
    EnumType,
    Field,
    Group,
    Presence,
    Primitive,
    Schema,
    SetType,
    TypeNode,
    VarData,
)
from codegen.output import DirectoryOutput
from codegen.targets import lua
from codegen.targets.lua.context import text_kind as lua_text_kind
from support.pcap import CapturedDatagram, write_capture

Pairs = list[tuple[str, Any]]

AERON_PREFERENCES = (
    "aeron.sequence_analysis",
    "aeron.stream_analysis",
    "aeron.reassemble_fragments",
    "aeron.use_heuristic_subdissectors",
)
PI_WARN = 0x00600000
PORT = 40456
MTU = 1408
DATA_HEADER = struct.Struct(
    "<iBBHiiiiq"
)  # frame length, version, flags, type, term offset, session, stream, term id, reserved
SETUP = struct.Struct(
    "<iBBHiiiiiiii"
)  # ..., term offset, session, stream, initial term, active term, term length, mtu, ttl
BEGIN, END = 0x80, 0x40


def write_plugins(directory: Path, schemas: Iterable[Schema]) -> list[Path]:
    out = DirectoryOutput(directory)
    return [directory / lua.generate(schema, out) for schema in schemas if schema.messages]


def tshark_command(
    tshark: str, capture: Path, plugins: Sequence[Path], *, port: int | None = PORT, preferences: bool = True
) -> list[str]:
    command = [tshark, "-r", str(capture)]
    for plugin in plugins:
        command += ["-X", f"lua_script:{plugin}"]
    if port is None:
        command += ["--enable-heuristic", "aeron_udp", "-o", "udp.try_heuristic_first:TRUE"]
    else:
        command += ["-d", f"udp.port=={port},aeron"]
    if preferences:
        for name in AERON_PREFERENCES:
            command += ["-o", f"{name}:TRUE"]
    return command


def dissect_json(command: list[str], env: dict[str, str] | None = None) -> list[Pairs]:
    """The packets of tshark's ``-T json`` output, each as ordered (key, value) pairs."""
    result = subprocess.run(
        [*command, "-T", "json"], capture_output=True, text=True, timeout=600, check=False, env=env
    )
    assert result.returncode == 0, f"{' '.join(command)} failed: {result.stderr}"
    assert "Lua Error" not in result.stderr and "Lua: Error" not in result.stderr, result.stderr
    packets: list[Pairs] = json.loads(result.stdout, object_pairs_hook=list)
    return packets


def get(pairs: Pairs, key: str, default: Any = None) -> Any:
    for k, v in pairs:
        if k == key:
            return v
    return default


def layers(packet: Pairs) -> Pairs:
    found: Pairs = get(get(packet, "_source"), "layers")
    return found


# ------------------------------------------------------------------------------------------- captures


@dataclass
class AeronWriter:
    """Builds the datagrams of one Aeron stream: a SETUP, then each message in DATA frames (fragmented at
    ``MTU``), one frame per datagram unless ``batch`` puts several small ones together."""

    session_id: int = 0x1234
    stream_id: int = 1001
    term_id: int = 7
    term_length: int = 1 << 24
    term_offset: int = 0
    source: tuple[str, int] = ("127.0.0.1", 40000)

    def __post_init__(self) -> None:
        self.datagrams: list[CapturedDatagram] = []
        self.positions: list[tuple[int, int]] = []  # (term id, term offset) of each message's first frame
        setup = SETUP.pack(
            40,
            0,
            0,
            5,
            0,
            self.session_id,
            self.stream_id,
            self.term_id,
            self.term_id,
            self.term_length,
            MTU,
            0,
        )
        self._send(setup)

    def _send(self, payload: bytes) -> None:
        time_s = 1_800_000_000.0 + len(self.datagrams) * 0.001
        self.datagrams.append(CapturedDatagram(time_s, self.source, ("127.0.0.1", PORT), payload))

    def frames(self, message: bytes) -> list[bytes]:
        self.positions.append((self.term_id, self.term_offset))
        chunk = MTU - DATA_HEADER.size
        pieces = [message[i : i + chunk] for i in range(0, max(len(message), 1), chunk)] or [b""]
        out = []
        for k, piece in enumerate(pieces):
            flags = (BEGIN if k == 0 else 0) | (END if k == len(pieces) - 1 else 0)
            length = DATA_HEADER.size + len(piece)
            header = DATA_HEADER.pack(
                length, 0, flags, 1, self.term_offset, self.session_id, self.stream_id, self.term_id, 0
            )
            aligned = (length + 31) & -32
            out.append(header + piece + bytes(aligned - length))
            self.term_offset += aligned
        return out

    def send(self, messages: Iterable[bytes], batch: int = 1) -> None:
        pending: list[bytes] = []
        for message in messages:
            for frame in self.frames(message):
                if len(frame) > MTU // 2 or batch == 1:
                    self._send(frame)
                    continue
                pending.append(frame)
                if len(pending) >= batch:
                    self._send(b"".join(pending))
                    pending = []
        if pending:
            self._send(b"".join(pending))


def write_aeron_capture(path: Path, writers: Iterable[AeronWriter]) -> Path:
    datagrams = sorted((d for w in writers for d in w.datagrams), key=lambda d: d.time_s)
    return write_capture(path, datagrams)


# --------------------------------------------------------------------------------- tshark -> SBE JSON


@dataclass
class Dissected:
    """One SBE message as tshark showed it, with where its first frame was (for matching)."""

    frame: int
    proto: str
    session_id: int
    stream_id: int
    term_id: int
    term_offset: int | None  # of the frame holding it; None when reassembled (see ``fragments``)
    fragments: list[int]  # frame numbers of the reassembled fragments, first to last
    tree: Pairs
    experts: list[tuple[int, str]]


def _walk(pairs: Pairs, protos: set[str], frame: int, data: Pairs | None, out: list[Dissected]) -> None:
    for key, value in pairs:
        if key in protos and isinstance(value, list):
            experts = [
                (int(get(v, "_ws.expert.severity", "0")), get(v, "_ws.expert.message", ""))
                for k, v in value
                if k == "_ws.expert"
            ]
            if data is not None:
                reassembly = get(data, "aeron.data.reassembly")
                fragments = [int(v) for k, v in (reassembly or []) if k == "aeron.data.reassembly.fragment"]
                out.append(
                    Dissected(
                        frame,
                        key,
                        int(get(data, "aeron.data.session_id")),
                        int(get(data, "aeron.data.stream_id")),
                        int(get(data, "aeron.data.term_id")),
                        None if fragments else int(get(data, "aeron.data.term_offset")),
                        fragments,
                        value,
                        experts,
                    )
                )
            else:
                out.append(Dissected(frame, key, -1, -1, -1, None, [], value, experts))
        elif key == "aeron.data" and isinstance(value, list):
            _walk(value, protos, frame, value, out)
        elif isinstance(value, list):
            _walk(value, protos, frame, data, out)


def dissected_messages(packets: list[Pairs], protos: set[str]) -> list[Dissected]:
    """Every SBE message tshark showed, in packet order, with the Aeron DATA frame that held it."""
    out: list[Dissected] = []
    for packet in packets:
        found = layers(packet)
        frame = int(get(get(found, "frame"), "frame.number"))
        _walk(found, protos, frame, None, out)
    return out


def begin_frames(packets: list[Pairs]) -> dict[int, list[tuple[int, int, int, int]]]:
    """Per frame number, the (session, stream, term id, term offset) of each BEGIN-only DATA frame in it."""
    out: dict[int, list[tuple[int, int, int, int]]] = {}
    for packet in packets:
        found = layers(packet)
        frame = int(get(get(found, "frame"), "frame.number"))
        aeron = get(found, "aeron") or []
        for key, data in aeron:
            if key != "aeron.data" or not isinstance(data, list):
                continue
            flags = int(get(data, "aeron.data.flags"), 16)
            if flags & BEGIN and not flags & END:
                out.setdefault(frame, []).append(
                    (
                        int(get(data, "aeron.data.session_id")),
                        int(get(data, "aeron.data.stream_id")),
                        int(get(data, "aeron.data.term_id")),
                        int(get(data, "aeron.data.term_offset")),
                    )
                )
    return out


def position_of(message: Dissected, begins: dict[int, list[tuple[int, int, int, int]]]) -> tuple[int, ...]:
    """(session, stream, term id, term offset of the first fragment) of a dissected message."""
    if message.term_offset is not None:
        return (message.session_id, message.stream_id, message.term_id, message.term_offset)
    candidates = [
        b
        for b in begins.get(message.fragments[0], [])
        if b[:3] == (message.session_id, message.stream_id, message.term_id)
    ]
    assert len(candidates) == 1, (
        f"frame {message.frame}: first fragment in frame {message.fragments[0]}: {candidates}"
    )
    return candidates[0]


class TsharkSbe:
    """Turns the plugin's tree of one message back into the SBE JSON form, with the schema's IR."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.proto = lua.proto_name(schema.package)

    def message(self, tree: Pairs) -> dict[str, Any]:
        p = self.proto
        name = get(tree, f"{p}.message")
        message = self.schema.message_named(name)
        assert message is not None, f"no message {name!r} in {self.schema.package}"
        return {
            "schemaId": int(get(tree, f"{p}.schema_id")),
            "templateId": int(get(tree, f"{p}.template_id")),
            "version": int(get(tree, f"{p}.version")),
            "blockLength": int(get(tree, f"{p}.block_length")),
            "message": name,
            "fields": self.block(tree, f"{p}.{name}", message.fields, message.groups, message.var_data),
        }

    def trailing_hex(self, tree: Pairs) -> str | None:
        value = get(tree, f"{self.proto}.trailing")
        return None if value is None else value.replace(":", "")

    def block(
        self,
        tree: Pairs,
        prefix: str,
        fields: Sequence[Field],
        groups: Sequence[Group],
        var: Sequence[VarData],
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields:
            if f.is_constant:
                continue
            out[f.name] = self.value(tree, f"{prefix}.{f.name}", f.type, f.presence is Presence.OPTIONAL)
        for g in groups:
            out[g.name] = self.group(tree, f"{prefix}.{g.name}", g)
        for v in var:
            value = get(tree, f"{prefix}.{v.name}")
            if value is None:
                out[v.name] = None
            elif v.is_text:
                out[v.name] = _text(value, v.character_encoding)
            else:
                out[v.name] = {"hex": value.replace(":", "")}
        return out

    def group(self, tree: Pairs, key: str, g: Group) -> list[Any] | None:
        count = get(tree, key)
        if count is None:
            return None
        entries_tree = _subtree(tree, key)
        entries = [v if isinstance(v, list) else [] for k, v in entries_tree if not k.endswith("_tree")]
        assert len(entries) == int(count), f"{key}: {count} entries, {len(entries)} shown"
        return [self.block(e, key, g.fields, g.groups, g.var_data) for e in entries]

    def value(self, tree: Pairs, key: str, node: TypeNode, optional: bool) -> Any:
        if isinstance(node, CompositeType):
            item = get(tree, key)
            if item is None:
                return None
            sub = _subtree(tree, key)
            out = {}
            for m in node.members:
                if not isinstance(m.type, CompositeType) and m.type.encoding.presence is Presence.CONSTANT:
                    continue
                member_optional = (
                    not isinstance(m.type, CompositeType) and m.type.encoding.presence is Presence.OPTIONAL
                )
                out[m.name] = self.value(sub, f"{key}.{m.name}", m.type, member_optional)
            return out
        if isinstance(node, EncodedType) and node.length != 1 and node.primitive is not Primitive.CHAR:
            values = [v for k, v in tree if k == key]
            if not values:
                return None
            return [_number(v, node.primitive) for v in values]
        raw = get(tree, key)
        if raw is None:
            return None
        if isinstance(node, EnumType):
            number = int(raw)
            names: dict[int, str | None] = {node.null_value: None}
            names.update((v.value, v.name) for v in node.values)
            return names.get(number, number)
        if isinstance(node, SetType):
            word = int(raw, 16)
            known = 0
            chosen: list[Any] = []
            for c in node.choices:
                known |= 1 << c.bit
                if word >> c.bit & 1:
                    chosen.append(c.name)
            chosen += [bit for bit in range(8 * node.size) if (word & ~known) >> bit & 1]
            return chosen
        assert isinstance(node, EncodedType)
        if node.primitive is Primitive.CHAR:
            if node.length == 1 and optional:
                null = int(node.encoding.null_value)
                if raw == ("" if null == 0 else chr(null)):
                    return None
            return _text(raw, node.encoding.character_encoding)
        value = _number(raw, node.primitive)
        if optional:
            null = node.encoding.null_value
            if (isinstance(null, float) and math.isnan(null) and value != value) or value == null:
                return None
        return value


def _subtree(tree: Pairs, key: str) -> Pairs:
    """The children of item ``key``: tshark writes an item without a value as ``key: {children}``, one
    with a value as ``key: value, key_tree: {children}``."""
    item = get(tree, key)
    if isinstance(item, list):
        return item
    found: Pairs = get(tree, f"{key}_tree") or []
    return found


def _number(text: str, primitive: Primitive) -> Any:
    if not primitive.is_float:
        return int(text, 0)
    value = float(text)
    if primitive is Primitive.FLOAT:
        value = struct.unpack("<f", struct.pack("<f", value))[0]
    return value


def _text(shown: str, encoding: str | None) -> str:
    """Text as the plugin shows it; in an encoding it does not convert (GB18030), non-ASCII text is hex."""
    if lua_text_kind(encoding) != "other":
        return shown
    try:
        data = bytes.fromhex(shown)
    except ValueError:
        return shown
    if all(b < 0x80 for b in data):
        return shown
    return data.decode(encoding or "ascii")
