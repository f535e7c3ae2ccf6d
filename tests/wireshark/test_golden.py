"""tshark's text for a small capture (tests/testdata/wireshark/small-capture.txt): a cluster connect
request, a fragmented SessionMessageHeader with its application bytes, an archive request with an
optional null field, a group and a truncated message, dissected with the plugins as the README shows.
``pytest --rewrite`` regenerates the file; review its diff like code."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.golden import check_golden
from support.needs import need_program
from support.paths import TESTDATA
from support.tshark_sbe import AeronWriter, tshark_command, write_aeron_capture, write_plugins

from codegen.otf import OtfCodec
from codegen.schema import load_schema
from schemas import builtin_schema

pytestmark = pytest.mark.interop

GOLDEN = TESTDATA / "wireshark" / "small-capture.txt"


def test_tshark_text_of_a_small_capture(tmp_path: Path, rewrite: bool) -> None:
    tshark = need_program("tshark")
    cluster = load_schema(builtin_schema("aeron-cluster-codecs.xml"))
    archive = load_schema(builtin_schema("aeron-archive-codecs.xml"))
    plugins = write_plugins(tmp_path, [cluster, archive])
    c, a = OtfCodec(cluster), OtfCodec(archive)
    header = c.encode(
        "SessionMessageHeader", {"leadershipTermId": 3, "clusterSessionId": 7, "timestamp": 1000}
    )
    messages = [
        c.encode(
            "SessionConnectRequest",
            {
                "correlationId": 42,
                "responseStreamId": 102,
                "version": 768,
                "responseChannel": "aeron:udp?endpoint=localhost:9020",
                "encodedCredentials": {"hex": "0102"},
            },
        ),
        header + bytes(range(256)) * 6,
        c.encode(
            "SessionConnectRequest",
            {
                "correlationId": 43,
                "responseStreamId": 102,
                "version": None,
                "responseChannel": "aeron:ipc",
                "encodedCredentials": {"hex": ""},
            },
        ),
        a.encode(
            "ReplayRequest",
            {
                "controlSessionId": 5,
                "correlationId": 6,
                "recordingId": 1,
                "position": 0,
                "length": 2**63 - 1,
                "replayStreamId": 20,
                "fileIoMaxLength": 4096,
                "replayToken": -1,
                "replayChannel": "aeron:ipc",
            },
        ),
        c.encode(
            "ClusterMembers",
            {"memberId": 0, "highMemberId": 2, "clusterMembers": "0,a:1|1,b:2"},
        )
        if cluster.message_named("ClusterMembers")
        else header,
        header[:20],
    ]
    writer = AeronWriter()
    writer.send(messages)
    capture = write_aeron_capture(tmp_path / "small.pcap", [writer])
    command = tshark_command(tshark, capture, plugins)
    command += ["-V", "-Y", "aeron.data"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    kept, keep = [], False
    for line in result.stdout.splitlines():  # the Aeron layer of each packet, the SBE message inside it
        if line and not line[0].isspace():
            keep = line.startswith(("Aeron Protocol", "SBE "))
            if keep and kept:
                kept.append("")
        if keep:
            kept.append(line)
    text = "\n".join(kept)
    check_golden(GOLDEN, text + "\n", rewrite=rewrite, what="tshark's text for the small capture")
