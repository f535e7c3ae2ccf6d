"""``python -m tools archive``: look into an Aeron Archive directory (ours or Java's).

::

    python -m tools archive list DIR [--json]
    python -m tools archive describe DIR [--json]
    python -m tools archive verify DIR [--apply] [--force]
    python -m tools archive dump DIR --recording N [--from POSITION] [--json]
    python -m tools archive run --dir DIR [--control CHANNEL] [--control-stream N] [--response-stream N]

``list`` prints every recording in the catalog, DELETED ones included: with ``--json`` one JSON object
per line under Aeron's field names (``recordingId``, ``startPosition``, ..., ``state`` by name), otherwise
an aligned table. ``describe`` prints the mark file's header (every field, with the SBE message header's
values) and the catalog's header (version, length, nextRecordingId, alignment, capacity) and any
problems opening the catalog found; with ``--json`` one object ``{"markFile": ..., "catalog": ...}``.
A missing or damaged mark file is reported (``markFile`` is null and ``markFileError`` says why) but is
not fatal when the catalog is there.

Both open the directory read-only: they never change a file, so they are safe on a directory a running
archive owns, or on one Java wrote. Exit status 0, or 2 with ``error: ...`` when the directory or its
catalog cannot be read.

``verify`` checks every recording as Aeron's ArchiveTool verify does (``cluster.archive.verify``):
``(recordingId=N) OK``, ``(recordingId=N) skipping: DELETED``, or one ``(recordingId=N) ERR: ...`` line
per problem (descriptor, missing or extra segment files, corrupt frames, stop position -1 with the
position it would be set to), and the files of recordings the catalog does not know. It changes nothing
unless ``--apply`` is given: then it repairs what the archive's recovery would and marks INVALID what
it cannot repair, and prints what it did. ``--apply`` refuses an archive whose mark file is active;
``--force`` treats the mark file as stale. Exit status 0 when everything was OK, 1 when problems were
found (repaired or not).

``dump`` prints the frames and messages of one recording in the line format of ``python -m tools
decode`` (``tools.capture``), each line starting with the stream ``position`` of its frame (a message:
of its first fragment): frame headers, fragmented messages reassembled, SBE payloads of the built-in
schemas decoded. ``--from`` starts at a frame position; a recording whose stop position is -1 is read
to where its frames end. A corrupt frame ends the dump with an error record and exit status 1.

``run`` is a standalone archive process (``tools.archive_run``): the control protocol on ``--control``
(default ``aeron:udp?endpoint=localhost:8010``) and on the local IPC control channel, until SIGINT or
SIGTERM, then an orderly shutdown.

Sub-commands live in ``SUBCOMMANDS``: one ``Subcommand(help, configure, run)`` each, so adding one is
adding its two functions and a line there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cluster.archive import (
    MARK_FILE_NAME,
    ArchiveMarkFile,
    Catalog,
    MarkFileError,
    RecordingDescriptor,
    SegmentError,
)
from cluster.archive.markfile import version_text
from cluster.archive.recording_reader import RecordingReader
from cluster.archive.verify import verify_archive
from cluster.storage import RealStorage, Storage
from tools.subcommands import Subcommand, add_subcommands, run_subcommand

__all__ = ["SUBCOMMANDS", "Subcommand", "configure", "open_directory", "run"]


def open_directory(path: str | Path) -> Storage:
    """The archive directory ``path`` (``StorageError``, a user error, if it is not a directory)."""
    return RealStorage(Path(path))


def _directory_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR", help="the archive directory (holding archive.catalog)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


# ---------------------------------------------------------------------------------------------- list

_LIST_COLUMNS = (
    "recordingId",
    "state",
    "startPosition",
    "stopPosition",
    "startTimestamp",
    "stopTimestamp",
    "sessionId",
    "streamId",
    "strippedChannel",
)


def _table(rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    """Rows as aligned text: columns in ``right`` right-aligned, the last column unpadded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            if i == len(row) - 1:
                cells.append(cell)
            elif i in right:
                cells.append(cell.rjust(widths[i]))
            else:
                cells.append(cell.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
    return lines


def _run_list(args: argparse.Namespace) -> int:
    storage = open_directory(args.directory)
    with Catalog(storage, read_only=True) as catalog:
        recordings: list[RecordingDescriptor] = list(catalog.recordings(include_deleted=True))
    out = sys.stdout
    if args.json:
        for descriptor in recordings:
            out.write(json.dumps(descriptor.to_json()) + "\n")
    elif recordings:
        rows = [list(_LIST_COLUMNS)]
        for descriptor in recordings:
            values = descriptor.to_json()
            rows.append([str(values[name]) for name in _LIST_COLUMNS])
        numeric = {i for i, name in enumerate(_LIST_COLUMNS) if name not in ("state", "strippedChannel")}
        out.write("\n".join(_table(rows, numeric)) + "\n")
    else:
        out.write(f"no recordings in {catalog.location}\n")
    out.flush()
    return 0


# ------------------------------------------------------------------------------------------ describe


def _describe(storage: Storage) -> dict[str, Any]:
    result: dict[str, Any] = {}
    try:
        header = ArchiveMarkFile.read(storage)
        mark = header.to_json()
        mark["semanticVersion"] = header.semantic_version
        mark["distinctErrors"] = len(ArchiveMarkFile.read_errors(storage))
        result["markFile"] = mark
    except MarkFileError as exc:
        result["markFile"] = None
        result["markFileError"] = str(exc)
    with Catalog(storage, read_only=True) as catalog:
        catalog_json = catalog.header.to_json()
        catalog_json["semanticVersion"] = catalog.header.semantic_version
        catalog_json["capacity"] = catalog.capacity_bytes
        catalog_json["recordings"] = sum(1 for _ in catalog.recordings(include_deleted=True))
        catalog_json["problems"] = [problem.to_json() for problem in catalog.problems]
    result["catalog"] = catalog_json
    return result


def _describe_text(storage: Storage, described: dict[str, Any]) -> list[str]:
    lines = [f"Mark file: {storage.location}/{MARK_FILE_NAME}"]
    mark = described["markFile"]
    if mark is None:
        lines.append(f"  {described['markFileError']}")
    else:
        rows = [
            [f"  {name}", _text(name, value)] for name, value in mark.items() if name != "semanticVersion"
        ]
        lines.extend(_table(rows, set()))
    catalog = described["catalog"]
    lines.append(f"Catalog: {storage.location}/archive.catalog")
    shown = {name: value for name, value in catalog.items() if name not in ("problems", "semanticVersion")}
    rows = [[f"  {name}", _text(name, value)] for name, value in shown.items()]
    lines.extend(_table(rows, set()))
    for problem in catalog["problems"]:
        repaired = " (repaired)" if problem["repaired"] else ""
        lines.append(
            f"  problem at offset {problem['offset']}, {problem['field']}: {problem['message']}{repaired}"
        )
    return lines


def _text(name: str, value: Any) -> str:
    if name == "version" and isinstance(value, int):
        return f"{value} ({version_text(value)})"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _run_describe(args: argparse.Namespace) -> int:
    storage = open_directory(args.directory)
    described = _describe(storage)
    if args.json:
        sys.stdout.write(json.dumps(described) + "\n")
    else:
        sys.stdout.write("\n".join(_describe_text(storage, described)) + "\n")
    sys.stdout.flush()
    return 0


# -------------------------------------------------------------------------------------------- verify


def _now_ms() -> int:
    """The wall clock in epoch milliseconds (the mark file's liveness, the stop timestamps verify sets)."""
    return time.time_ns() // 1_000_000


def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR", help="the archive directory (holding archive.catalog)")
    parser.add_argument(
        "--apply", action="store_true", help="repair what recovery would, mark the rest INVALID"
    )
    parser.add_argument(
        "--force", action="store_true", help="with --apply: treat an active-looking mark file as stale"
    )


def _run_verify(args: argparse.Namespace) -> int:
    storage = open_directory(args.directory)
    report = verify_archive(storage, now_ms=_now_ms(), apply=args.apply, force=args.force)
    if report.lines:
        sys.stdout.write("\n".join(report.lines) + "\n")
    sys.stdout.flush()
    return 0 if report.ok else 1


# ---------------------------------------------------------------------------------------------- dump


def _position(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a position: {text!r}") from None
    if value < 0 or value % 32:
        raise argparse.ArgumentTypeError(f"not a frame position (a non-negative multiple of 32): {value}")
    return value


def _recording_id(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a recording id: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a recording id: {value}")
    return value


def _dump_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR", help="the archive directory (holding archive.catalog)")
    parser.add_argument(
        "--recording", type=_recording_id, required=True, metavar="N", help="the recording id"
    )
    parser.add_argument(
        "--from",
        dest="from_position",
        type=_position,
        metavar="POSITION",
        help="start at this frame position",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")


def _run_dump(args: argparse.Namespace) -> int:
    from cluster.archive import CatalogError, RecordingState
    from tools.capture import decode_recording, format_text

    storage = open_directory(args.directory)
    with Catalog(storage, read_only=True) as catalog:
        descriptor = catalog.recording(args.recording)
        location = catalog.location
    if descriptor is None:
        raise CatalogError(f"there is no recording {args.recording}", file=location)
    if descriptor.state == RecordingState.DELETED:
        raise CatalogError(f"recording {args.recording} is DELETED", file=location)
    stop = None if descriptor.stop_position == -1 else descriptor.stop_position
    reader = RecordingReader.of(storage, descriptor, stop_position=stop, from_position=args.from_position)
    failure: list[SegmentError] = []

    def blocks() -> Iterator[tuple[int, memoryview]]:
        try:
            while True:
                position = reader.position
                block = reader.read_block(_DUMP_READ_LENGTH)
                if block is None:
                    return
                yield position, block
        except SegmentError as exc:
            failure.append(exc)

    out = sys.stdout
    with reader:
        records = decode_recording(
            blocks(), term_length=descriptor.term_buffer_length, initial_term_id=descriptor.initial_term_id
        )
        for record in records:
            out.write((json.dumps(record) if args.json else format_text(record)) + "\n")
    if failure:
        error = {"kind": "error", "position": reader.position, "error": str(failure[0])}
        out.write((json.dumps(error) if args.json else format_text(error)) + "\n")
    out.flush()
    return 1 if failure else 0


_DUMP_READ_LENGTH = 64 * 1024


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    from tools import archive_run

    archive_run.configure(parser)


def _run_archive(args: argparse.Namespace) -> int:
    from tools import archive_run

    return archive_run.run(args)


# ------------------------------------------------------------------------------------ the command

SUBCOMMANDS: dict[str, Subcommand] = {
    "list": Subcommand(
        "list every recording in the catalog (DELETED ones too)", _directory_argument, _run_list
    ),
    "describe": Subcommand(
        "show the mark file's and the catalog's headers", _directory_argument, _run_describe
    ),
    "verify": Subcommand(
        "check every recording as ArchiveTool verify does; --apply repairs", _verify_arguments, _run_verify
    ),
    "dump": Subcommand(
        "print a recording's frames and messages as 'decode' prints a capture's", _dump_arguments, _run_dump
    ),
    "run": Subcommand("run an archive on DIR until SIGINT or SIGTERM", _run_arguments, _run_archive),
}


def configure(parser: argparse.ArgumentParser) -> None:
    add_subcommands(parser, SUBCOMMANDS, "archive_command")


def run(args: argparse.Namespace) -> int:
    return run_subcommand(args)
