"""``python -m tools wireshark install``: the plugins land in the personal Lua plugin folder, the four
Aeron preferences are turned on and nothing else in the preferences file changes; a tshark started with
that home then shows cluster messages with no command-line preferences at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.needs import need_program
from support.paths import REPO
from support.tshark_sbe import AeronWriter, TsharkSbe, dissect_json, dissected_messages, write_aeron_capture

from codegen.otf import OtfCodec
from codegen.schema import load_schema
from schemas import builtin_schema
from tools.wireshark_cmd import set_preferences

pytestmark = pytest.mark.interop


def test_set_preferences_turns_on_the_four_and_keeps_everything_else() -> None:
    old = (
        '# my settings\ngui.column.format: "No.", "%m"\n'
        "aeron.stream_analysis: FALSE\n#aeron.sequence_analysis: FALSE\n"
    )
    new, changed = set_preferences(old)
    assert new.splitlines() == [
        "# my settings",
        'gui.column.format: "No.", "%m"',
        "aeron.stream_analysis: TRUE",
        "#aeron.sequence_analysis: FALSE",
        "aeron.sequence_analysis: TRUE",
        "aeron.reassemble_fragments: TRUE",
        "aeron.use_heuristic_subdissectors: TRUE",
    ]
    assert len(changed) == 4
    assert set_preferences(new) == (new, [])


def test_install_then_tshark_shows_cluster_messages_with_no_options(tmp_path: Path) -> None:
    tshark = need_program("tshark")
    home = tmp_path / "home"
    home.mkdir()
    config = home / ".config" / "wireshark"
    config.mkdir(parents=True)
    (config / "preferences").write_text("# kept\nip.check_checksum: FALSE\n", encoding="utf-8")
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    result = subprocess.run(
        [sys.executable, "-m", "tools", "wireshark", "install"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "io_aeron_cluster_codecs.lua" in result.stdout
    assert "aeron.use_heuristic_subdissectors: TRUE" in result.stdout
    text = (config / "preferences").read_text(encoding="utf-8")
    assert text.startswith("# kept\nip.check_checksum: FALSE\n")
    plugins = sorted(p.name for p in (home / ".local" / "lib" / "wireshark" / "plugins").glob("*.lua"))
    assert "io_aeron_cluster_codecs.lua" in plugins and "io_aeron_archive_codecs.lua" in plugins

    codec = OtfCodec(load_schema(builtin_schema("aeron-cluster-codecs.xml")))
    request = codec.encode(
        "SessionConnectRequest",
        {
            "correlationId": 42,
            "responseStreamId": 102,
            "version": 768,
            "responseChannel": "aeron:udp?endpoint=localhost:9020",
            "encodedCredentials": {"hex": ""},
        },
    )
    big = codec.encode("SessionMessageHeader", {"leadershipTermId": 1, "clusterSessionId": 2, "timestamp": 3})
    writer = AeronWriter()
    writer.send([request, big + bytes(3000)])
    capture = write_aeron_capture(tmp_path / "capture.pcap", [writer])
    command = [tshark, "-r", str(capture), "-d", "udp.port==40456,aeron"]
    found = dissected_messages(dissect_json(command, env), {"sbe_io_aeron_cluster_codecs"})
    reader = TsharkSbe(load_schema(builtin_schema("aeron-cluster-codecs.xml")))
    names = [reader.message(m.tree)["message"] for m in found]
    assert names == ["SessionConnectRequest", "SessionMessageHeader"]
    assert found[1].fragments, "the 3 KB message was reassembled"
    assert reader.message(found[0].tree)["fields"]["responseChannel"] == "aeron:udp?endpoint=localhost:9020"
