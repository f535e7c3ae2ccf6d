"""``python -m tools demo``: the project's main job, on an embedded default.

For now (the codec milestone) it regenerates the codecs from ``schemas/`` into ``generated/``,
then builds an Aeron Cluster client's connect request and an ingress message with the generated
encoders, and decodes them twice: with the generated decoders and with the run-time (OTF) decoder
driven by the schema XML alone.  Later milestones make this start a local cluster.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tools import codegen_cmd

CLIENT_PROTOCOL_VERSION = 768  # 0.3.0, the version Aeron Cluster clients send
APPLICATION_PAYLOAD = b"hello, cluster"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-regenerate", action="store_true", help="skip regenerating generated/ from schemas/"
    )


def _example_messages() -> list[bytes]:
    from generated import aeron_cluster_codecs as cluster

    buffer = bytearray(256)
    connect = cluster.SessionConnectRequestEncoder().wrap_and_apply_header(buffer, 0)
    connect.correlation_id = 42
    connect.response_stream_id = 102
    connect.version = CLIENT_PROTOCOL_VERSION
    connect.put_response_channel("aeron:udp?endpoint=localhost:9020")
    connect.put_encoded_credentials(b"")
    first = bytes(buffer[: cluster.HEADER_SIZE + connect.encoded_length()])

    header_length = cluster.SessionMessageHeaderEncoder.pack_into(buffer, 0, 3, 7, 0)
    second = bytes(buffer[:header_length]) + APPLICATION_PAYLOAD
    return [first, second]


def run(args: argparse.Namespace) -> int:
    if not args.no_regenerate:
        codegen_cmd.run(argparse.Namespace(schemas=[], out=None, check=False))

    import generated
    from codegen.otf import OtfCodec
    from codegen.schema import load_schema

    otf = OtfCodec(load_schema(codegen_cmd.DEFAULT_SCHEMAS / "aeron-cluster-codecs.xml"))
    for message in _example_messages():
        decoder = generated.decode(message)
        print(f"\n{decoder.NAME}: {len(message)} bytes")
        print(f"  wire      {message.hex()}")
        generated_view: dict[str, Any] = decoder.to_dict()
        print(f"  generated {json.dumps(generated_view)}")
        decoded = otf.decode(message)
        print(f"  otf       {json.dumps(decoded.to_json_obj())}")
        if decoded.fields != generated_view:
            print("  MISMATCH between the generated and the run-time decoder")
            return 1
        trailing = message[decoded.length :]
        if trailing:
            print(f"  payload   {trailing!r} (the application's bytes after the SBE header)")
    return 0
