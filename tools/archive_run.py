"""``python -m tools archive run``: a standalone archive process until SIGINT or SIGTERM.

The archive and its transport run in one duty cycle on the main thread (an ``AgentRunner`` with the
selector idle strategy, so an idle archive sleeps on its sockets). A signal closes the runner; the
orderly shutdown then stops every recording (their stop positions go into the catalog), ends replays and
sessions, and marks the mark file closed, so the next archive on the directory starts at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

from cluster.archive.archive import Archive
from cluster.archive.context import ArchiveContext
from cluster.archive.protocol import DEFAULT_CONTROL_RESPONSE_STREAM_ID, DEFAULT_CONTROL_STREAM_ID
from cluster.storage import RealStorage, SyncLevel
from cluster.transport.agent import AgentRunner, CompositeAgent, SelectorIdleStrategy
from cluster.transport.driver import Transport, TransportConfig

DEFAULT_CONTROL_CHANNEL = "aeron:udp?endpoint=localhost:8010"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", required=True, help="the archive directory (created if missing)")
    parser.add_argument(
        "--control",
        default=DEFAULT_CONTROL_CHANNEL,
        help=f"the control request channel (default {DEFAULT_CONTROL_CHANNEL})",
    )
    parser.add_argument("--control-stream", type=int, default=DEFAULT_CONTROL_STREAM_ID, help="default 10")
    parser.add_argument(
        "--response-stream",
        type=int,
        default=DEFAULT_CONTROL_RESPONSE_STREAM_ID,
        help="the stream for a source archive's responses when this archive replicates (default 20)",
    )
    parser.add_argument("--archive-id", type=int, default=None, help="default: random")
    parser.add_argument("--file-sync-level", type=int, choices=(0, 1, 2), default=0)
    parser.add_argument("--segment-file-length", type=int, default=128 * 1024 * 1024)


def run(args: argparse.Namespace) -> int:
    idle = SelectorIdleStrategy()
    transport = Transport(config=TransportConfig(max_receive_term_length=64 * 1024 * 1024), idle=idle)
    context = ArchiveContext(
        storage=RealStorage(args.dir, create=True),
        control_channel=args.control,
        control_stream_id=args.control_stream,
        control_response_stream_id=args.response_stream,
        archive_id=args.archive_id,
        file_sync_level=SyncLevel(args.file_sync_level),
        segment_file_length=args.segment_file_length,
        aeron_directory="",
        pid=os.getpid(),
    )
    try:
        archive = Archive(transport, context)
    except BaseException:
        transport.close()
        idle.close()
        raise
    runner = AgentRunner(CompositeAgent(archive, transport), idle)

    def stop(signum: int, frame: FrameType | None) -> None:
        runner.close()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(
        f"archive {archive.archive_id} running on {args.control} stream {args.control_stream}, "
        f"directory {args.dir}",
        file=sys.stderr,
        flush=True,
    )
    try:
        runner.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        idle.close()
    print("archive closed", file=sys.stderr, flush=True)
    return 0
