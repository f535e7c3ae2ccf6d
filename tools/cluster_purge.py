"""``python -m tools cluster purge-log DIR [--json] [--archive-stream-id N] [--timeout SECONDS]``: purge
a running node's log below its latest snapshot.

Theory of operation
-------------------
Once a snapshot is taken, a member recovers from it and replays the log only from its position: the log
below it is kept for nothing but the members that are behind it, and it grows without end. The verb
asks the node's archive to purge it, as an operator does with Aeron's archive client:

1. The node must be running (its mark file live, its control file active): its control file names the
   member and the members, so the tool learns the archive's control endpoint. The recording log
   (read, never changed) names the log recording -- the last TERM entry's -- and the latest valid
   snapshot's position. With no snapshot there is nothing that may go: exit status 1.
2. The tool connects to the archive over UDP (its control endpoint, stream ``--archive-stream-id``,
   default 10, the node's default), lists the log recording, and purges the whole segments before the
   one that holds the snapshot's position (``PurgeSegments``): the archive detaches and deletes them
   and the recording's start moves there. The archive refuses to purge what a replay still reads (a
   member catching up, the node's own reading of its log): one line, exit status 1.
3. It prints what went: ``member M: log recording R purged below P (the snapshot at S): K segment(s)
   deleted``, or that there was nothing below the snapshot's segment. ``--json``: one object,
   ``{"memberId", "recordingId", "snapshotPosition", "startPosition", "purgedTo", "segmentsDeleted"}``.

A member whose log then ends below the new start catches up from another member's snapshot instead
(docs/consensus.md, "Catch-up from a snapshot"). Bad input -- a directory that is not a node's, a
damaged file -- is one ``error: ...`` line and exit status 2 (``tools.__main__``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cluster.archive.client import ArchiveClient, ArchiveClientError
from cluster.archive.protocol import DEFAULT_CONTROL_STREAM_ID
from cluster.archive.segments import purge_position
from cluster.consensus.core.errors import MembershipError
from cluster.consensus.core.members import member_by_id, parse_members
from cluster.consensus.files import RecordingLogFile
from cluster.consensus.files.errors import ClusterFileError
from cluster.storage import RealStorage
from cluster.transport.driver import Transport, TransportConfig
from tools.cluster_admin import find_cluster_dir
from tools.cluster_control import ControlRefused, running_status
from tools.subcommands import Subcommand

__all__ = ["SUBCOMMANDS", "PurgeRefused", "purge_log"]

NS_PER_S = 1_000_000_000


class PurgeRefused(Exception):
    """Nothing was purged, and why: the node is not running, has no snapshot, or its archive refused."""


def purge_log(directory: str, *, archive_stream_id: int, timeout_s: float) -> dict[str, Any]:
    """Purge the log of the running node whose cluster directory is ``directory`` below its latest
    snapshot (module docstring); what was done, as the ``--json`` object. ``PurgeRefused`` otherwise."""
    storage = RealStorage(find_cluster_dir(directory))
    try:
        status = running_status(storage)
    except ControlRefused as refused:
        raise PurgeRefused(str(refused)) from None
    try:
        member = member_by_id(parse_members(status.members), status.member_id)
    except MembershipError as error:
        raise ClusterFileError(f"{storage.location}: the control file's members: {error}") from None
    log = RecordingLogFile.read(storage).log
    snapshots = log.latest_snapshot_set()
    term = log.find_last_term()
    if not snapshots or term is None:
        raise PurgeRefused(f"member {status.member_id} has no snapshot: all of its log is still needed")
    position = snapshots[0].log_position
    host = member.archive.rsplit(":", 1)[0]
    timeout_ns = int(timeout_s * NS_PER_S)
    with Transport(config=TransportConfig(bind_host=host if host[:1].isdigit() else "0.0.0.0")) as transport:
        try:
            client = ArchiveClient.connect(
                transport,
                control_request_channel=f"aeron:udp?endpoint={member.archive}",
                control_request_stream_id=archive_stream_id,
                control_response_channel=f"aeron:udp?endpoint={host}:0",
                invoker=transport.do_work,
                message_timeout_ns=timeout_ns,
                connect_timeout_ns=timeout_ns,
            )
        except ArchiveClientError as error:
            raise PurgeRefused(f"the archive at {member.archive} did not answer: {error}") from None
        try:
            descriptor = client.list_recording(term.recording_id)
            if descriptor is None:
                raise PurgeRefused(f"the archive has no log recording {term.recording_id}")
            start = descriptor.start_position
            base = purge_position(
                start, position, descriptor.term_buffer_length, descriptor.segment_file_length
            )
            deleted = 0 if base is None else client.purge_segments(term.recording_id, base)
        except ArchiveClientError as error:
            raise PurgeRefused(f"the archive refused: {error}") from None
        finally:
            client.close()
    return {
        "memberId": status.member_id,
        "recordingId": term.recording_id,
        "snapshotPosition": position,
        "startPosition": start,
        "purgedTo": start if base is None else base,
        "segmentsDeleted": deleted,
    }


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directory", metavar="DIR", help="the node's cluster directory (or one holding cluster/)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--archive-stream-id",
        type=int,
        default=DEFAULT_CONTROL_STREAM_ID,
        metavar="N",
        help=f"the archive's control stream (default {DEFAULT_CONTROL_STREAM_ID}, the node's default)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="how long to wait for the archive"
    )


def _run(args: argparse.Namespace) -> int:
    try:
        record = purge_log(args.directory, archive_stream_id=args.archive_stream_id, timeout_s=args.timeout)
    except PurgeRefused as refused:
        print(
            json.dumps({"purged": False, "reason": str(refused)}) if args.json else f"not purged: {refused}"
        )
        return 1
    if args.json:
        print(json.dumps(record))
    elif record["segmentsDeleted"]:
        print(
            f"member {record['memberId']}: log recording {record['recordingId']} purged below "
            f"{record['purgedTo']} (the snapshot at {record['snapshotPosition']}): "
            f"{record['segmentsDeleted']} segment(s) deleted"
        )
    else:
        print(
            f"member {record['memberId']}: nothing to purge: log recording {record['recordingId']} starts at "
            f"{record['startPosition']}, in the segment of the snapshot at {record['snapshotPosition']}"
        )
    return 0


SUBCOMMANDS: dict[str, Subcommand] = {
    "purge-log": Subcommand(
        "purge a running node's log below its latest snapshot, through its archive (running node)",
        _configure,
        _run,
    ),
}
