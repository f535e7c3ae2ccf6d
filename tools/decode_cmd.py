"""``python -m tools decode``: decode Aeron frames and SBE messages from a pcap or pcapng capture.

::

    python -m tools decode FILE [--port N ...] [--schema XML ...] [--json]

Every UDP datagram (only those to or from a ``--port`` when given) is read as Aeron frames; each frame's
header is printed, fragmented DATA is reassembled and each complete message is decoded as SBE with the
built-in Aeron schemas and any ``--schema`` given. ``--json`` prints one JSON object per line
(``"kind"``: ``frame``, ``message`` or ``error``; see :mod:`tools.capture`), otherwise one readable
line per record. Damaged frames and incomplete messages are reported as error records and decoding
goes on; the exit status is 0 whenever the file could be read, 2 with ``error: ...`` when it is not a
capture or a schema cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import sys

from tools.capture import decode_capture, format_text

__all__ = ["configure", "run"]


def _port(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 0..65535: {value}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a pcap or pcapng capture")
    parser.add_argument(
        "--port",
        type=_port,
        action="append",
        default=[],
        metavar="N",
        help="only UDP datagrams from or to port N (repeatable); default: every UDP datagram",
    )
    parser.add_argument(
        "--schema",
        action="append",
        default=[],
        metavar="XML",
        help="an extra SBE schema for message payloads (repeatable); the Aeron schemas are built in",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    for record in decode_capture(args.file, args.port, args.schema):
        out.write((json.dumps(record) if args.json else format_text(record)) + "\n")
    out.flush()
    return 0
