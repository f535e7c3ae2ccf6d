"""The project as a user installs it: a wheel in a fresh virtualenv, and what its run time imports.

``test_installed_wheel_*`` build a wheel from a copy of the sources (only what the wheel is made of, so
nothing of the checkout leaks in), install it into a new virtualenv without the development extras and
without ``-e``, and run the installed ``aeron-cluster`` command from an empty working directory: the
demo, the capture decoder with the built-in Aeron schemas, ``sbe decode|encode``, ``codegen --out``,
``codegen --check`` and ``sim``. The installed package must be left exactly as installed.

``test_runtime_imports_no_third_party_package`` imports every module of ``generated``, ``cluster``,
``codegen.runtime`` and ``schemas`` in a subprocess that refuses any import that is neither the standard
library nor ours: the codecs and the cluster need nothing but Python.

Building and installing needs the package index (or pip's cache) for setuptools and the dependencies,
as ``scripts/setup.sh`` does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.paths import REPO
from support.pcap import write_capture
from support.traffic import record_pub_sub

from generated import aeron_archive_codecs as archive
from generated import aeron_cluster_codecs as cluster

# What a wheel is built from; everything else in the checkout (tests, scripts, .venv) stays out.
WHEEL_SOURCES = (
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "schemas",
    "codegen",
    "generated",
    "cluster",
    "tools",
)
OUR_PACKAGES = ("schemas", "codegen", "generated", "cluster", "tools")
PIP_TIMEOUT_S = 600
COMMAND_TIMEOUT_S = 300


@dataclass(frozen=True, slots=True)
class Installed:
    venv: Path
    site_packages: Path
    work: Path  # an empty working directory, outside the checkout

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "aeron-cluster"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return subprocess.run(
            [str(self.command), *args],
            cwd=self.work,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )


def _checked(command: list[str]) -> None:
    """Run a build or install step; a failure fails the test with what the step printed."""
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=PIP_TIMEOUT_S)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def _package_files(site_packages: Path) -> dict[str, str]:
    """sha256 of every file of our installed packages, by path (Python's own bytecode caches aside)."""
    digests = {}
    for package in OUR_PACKAGES:
        for path in sorted((site_packages / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digests[str(path.relative_to(site_packages))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    for name in WHEEL_SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    dist = root / "dist"
    _checked(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(source)]
    )
    (wheel,) = dist.glob("*.whl")
    venv = root / "venv"
    _checked([sys.executable, "-m", "venv", str(venv)])
    _checked([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)])
    (site_packages,) = (venv / "lib").glob("python3.*/site-packages")
    work = root / "work"
    work.mkdir()
    yield Installed(venv, site_packages, work)


@pytest.fixture(scope="module")
def untouched(installed: Installed) -> Iterator[None]:
    """The installed package as pip left it; checked again once every command has run."""
    before = _package_files(installed.site_packages)
    yield
    assert _package_files(installed.site_packages) == before, "a command wrote into the installed package"


def _cluster_messages() -> list[bytes]:
    buffer = bytearray(256)
    connect = cluster.SessionConnectRequestEncoder().wrap_and_apply_header(buffer, 0)
    connect.correlation_id = 7
    connect.response_stream_id = 102
    connect.version = 768
    connect.put_response_channel("aeron:udp?endpoint=localhost:9020")
    connect.put_encoded_credentials(b"")
    first = bytes(buffer[: cluster.HEADER_SIZE + connect.encoded_length()])
    length = cluster.SessionMessageHeaderEncoder.pack_into(buffer, 0, 3, 11, 1234)
    second = bytes(buffer[:length]) + b"application bytes"
    query = archive.ListRecordingsRequestEncoder().wrap_and_apply_header(buffer, 0)
    query.control_session_id = 5
    query.correlation_id = 6
    query.from_recording_id = 0
    query.record_count = 10
    third = bytes(buffer[: archive.HEADER_SIZE + query.encoded_length()])
    return [first, second, third]


@pytest.mark.slow
def test_installed_wheel_ships_the_schemas_and_no_test_oracle(installed: Installed) -> None:
    names = {p.name for p in (installed.site_packages / "schemas").glob("*.xml")}
    assert names == {p.name for p in (REPO / "schemas").glob("*.xml")}
    script = textwrap.dedent(
        """
        import importlib.metadata as m, importlib.util as u, json
        meta = m.metadata("aeron-cluster-py")
        print(json.dumps({
            "license": meta["License-Expression"],
            "requires": sorted(meta.get_all("Requires-Dist") or []),
            "construct": u.find_spec("construct") is not None,
            "lxml": u.find_spec("lxml") is not None,
        }))
        """
    )
    out = subprocess.run(
        [str(installed.python), "-c", script], cwd=installed.work, capture_output=True, text=True, check=True
    ).stdout
    facts = json.loads(out)
    assert facts["license"] == "Apache-2.0"
    assert facts["lxml"] is True
    assert facts["construct"] is False, "construct is a test oracle: a dev extra, not a dependency"
    required = [r for r in facts["requires"] if "extra ==" not in r]
    assert required and not any(r.startswith("construct") for r in required), required


@pytest.mark.slow
def test_installed_wheel_runs_the_demo_from_any_directory(installed: Installed, untouched: None) -> None:
    version = installed.run("--version")
    assert version.returncode == 0 and version.stdout.strip() == "aeron-cluster 0.1.0"
    demo = installed.run("demo")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "up to date: the generated codecs are exactly what the schemas generate" in demo.stdout
    assert "SessionConnectRequest: 65 bytes" in demo.stdout
    # the cluster's nodes are processes of the installed command: ``python -m tools node`` from any directory
    assert "the client carried on through the leader change" in demo.stdout
    assert "caught up: it follows member" in demo.stdout and "FAILED" not in demo.stdout


@pytest.mark.slow
def test_installed_wheel_decodes_a_capture_with_the_built_in_schemas(
    installed: Installed, untouched: None
) -> None:
    messages = _cluster_messages()
    run = record_pub_sub(messages)
    assert run.received == messages
    capture = write_capture(installed.work / "cluster.pcap", run.datagrams)
    result = installed.run("decode", str(capture), "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    decoded = [r for r in records if r["kind"] == "message"]
    assert [r["sbe"]["message"] for r in decoded] == [
        "SessionConnectRequest",
        "SessionMessageHeader",
        "ListRecordingsRequest",
    ]
    assert all("payloadHex" not in r for r in decoded)
    assert decoded[0]["sbe"]["fields"]["responseChannel"] == "aeron:udp?endpoint=localhost:9020"
    assert bytes.fromhex(decoded[1]["trailingHex"]) == b"application bytes"
    assert decoded[2]["sbe"]["fields"]["recordCount"] == 10


@pytest.mark.slow
def test_installed_wheel_runs_sbe_codegen_and_sim(installed: Installed, untouched: None) -> None:
    schema = installed.site_packages / "schemas" / "aeron-cluster-codecs.xml"
    message = _cluster_messages()[1][: cluster.HEADER_SIZE + 24]  # the header, without the payload
    decoded = installed.run("sbe", "decode", "--schema", str(schema), "--hex", message.hex())
    assert decoded.returncode == 0, decoded.stderr
    first = json.loads(decoded.stdout.splitlines()[0])
    assert first["message"] == "SessionMessageHeader" and first["fields"]["clusterSessionId"] == 11

    line = json.dumps({"message": "SessionMessageHeader", "fields": first["fields"]})
    encoded = installed.run("sbe", "encode", "--schema", str(schema), stdin=line + "\n")
    assert encoded.returncode == 0, encoded.stderr
    assert encoded.stdout.split() == [message.hex()]

    out = installed.work / "codecs"
    generated = installed.run("codegen", "--out", str(out), str(schema))
    assert generated.returncode == 0, generated.stderr
    probe = "import aeron_cluster_codecs as c; print(c.decode(bytes.fromhex('%s')).cluster_session_id)"
    imported = subprocess.run(
        [str(installed.python), "-c", probe % message.hex()],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0 and imported.stdout.strip() == "11", imported.stderr

    check = installed.run("codegen", "--check")
    assert check.returncode == 0 and "up to date" in check.stdout, check.stderr
    refused = installed.run("codegen")
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: ") and "--out DIR" in refused.stderr

    sim = installed.run("sim", "--seeds", "1")
    assert sim.returncode == 0, sim.stdout + sim.stderr
    summary = json.loads(sim.stdout.splitlines()[-1])
    assert summary["seeds"] == 1 and summary["violations"] == 0 and summary["commands_committed"] > 0


_NO_THIRD_PARTY = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys

    OURS = {"schemas", "codegen", "generated", "cluster"}

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            top = name.partition(".")[0]
            if top in sys.stdlib_module_names or top in OURS or top == "__future__":
                return None
            raise ImportError(f"third-party import at run time: {name}")

    sys.meta_path.insert(0, Refuse())
    imported = []
    for package in ("schemas", "codegen.runtime", "generated", "cluster"):
        module = importlib.import_module(package)
        imported.append(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            importlib.import_module(info.name)
            imported.append(info.name)
    print(len(imported))
    """
)


def test_runtime_imports_no_third_party_package() -> None:
    """``generated``, ``cluster``, ``codegen.runtime`` and ``schemas`` import only the standard library."""
    result = subprocess.run(
        [sys.executable, "-c", _NO_THIRD_PARTY], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 20  # every module was visited, not just the packages
