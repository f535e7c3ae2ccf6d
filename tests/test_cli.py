"""The ``python -m tools`` dispatcher: command table, lazy imports, exit statuses, user errors."""

import argparse
import shutil
import sys
import types
from pathlib import Path

import pytest

import tools.__main__ as cli
from tools import codegen_cmd


class _UserError(Exception):
    is_user_error = True


def _install_fake_command(monkeypatch: pytest.MonkeyPatch, run: object) -> None:
    module = types.ModuleType("fake_cmd")

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--count", type=int, default=1, help="how many times")

    module.__dict__.update(configure=configure, run=run)
    monkeypatch.setitem(sys.modules, "fake_cmd", module)
    monkeypatch.setattr(
        cli, "COMMANDS", {**cli.COMMANDS, "fake": cli.CommandSpec("fake_cmd", "a fake command")}
    )


def test_top_level_help_lists_every_command_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    for name in ("codegen", "sbe", "demo", "bench"):
        assert name in out
    for name, spec in cli.COMMANDS.items():
        assert name in out
        assert spec.help.split()[0] in out


def test_top_level_help_imports_no_command_module(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(name: str, spec: cli.CommandSpec) -> cli.CommandModule:
        raise AssertionError(f"--help imported {spec.module}")

    monkeypatch.setattr(cli, "_load", refuse)
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["--help"])
    assert excinfo.value.code == 0


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["no-such-command"])
    assert excinfo.value.code != 0
    assert "no-such-command" in capsys.readouterr().err


def test_missing_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main([])
    assert excinfo.value.code != 0


def test_command_help_shows_the_options_its_module_configures(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _install_fake_command(monkeypatch, lambda args: 0)
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["fake", "--help"])
    assert excinfo.value.code == 0
    assert "--count" in capsys.readouterr().out


def test_command_runs_with_parsed_args_and_its_status_is_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[argparse.Namespace] = []

    def run(args: argparse.Namespace) -> int:
        seen.append(args)
        return 7

    _install_fake_command(monkeypatch, run)
    assert cli.main(["fake", "--count", "3"]) == 7
    assert seen[0].command == "fake"
    assert seen[0].count == 3


def test_user_error_is_one_line_on_stderr_with_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(args: argparse.Namespace) -> int:
        raise _UserError("schema.xml:12: unknown type 'uint128'")

    _install_fake_command(monkeypatch, run)
    assert cli.main(["fake"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: schema.xml:12: unknown type 'uint128'\n"
    assert captured.out == ""


def test_other_exceptions_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(args: argparse.Namespace) -> int:
        raise RuntimeError("a bug")

    _install_fake_command(monkeypatch, run)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["fake"])


def test_demo_sends_the_cluster_messages_over_udp_and_decodes_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "up to date: the generated codecs are exactly what the schemas generate" in out
    assert out.count("  received  ") == 2
    assert "SessionConnectRequest: 65 bytes" in out and "SessionMessageHeader: 46 bytes" in out
    assert "MISMATCH" not in out
    assert "payload   b'hello, cluster'" in out
    # then a simulated 3-member cluster elects, commits, loses its leader, re-elects and converges
    cluster = out[out.index("a simulated 3-member cluster") :]
    assert "a leader is elected" in cluster and "crashed; the others elected a new one" in cluster
    final = cluster[cluster.index("restarted and caught up") :].splitlines()[1:4]
    commits = {line.split("commit")[-1].strip() for line in final}
    assert len(final) == 3 and len(commits) == 1 and int(commits.pop()) > 0  # all at one commit position
    assert sum("leader" in line for line in final) == 1
    assert "no checker found a violation" in cluster and "FAILED" not in cluster


def test_demo_checks_the_codecs_and_never_rewrites_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stale generated package fails the demo, which names the stale file and leaves it as it was."""
    copy = tmp_path / "generated"
    shutil.copytree(codegen_cmd.generated_directory(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    stale = copy / "aeron_cluster_codecs" / "__init__.py"
    edited = stale.read_text(encoding="utf-8") + "# edited by hand\n"
    stale.write_text(edited, encoding="utf-8")
    monkeypatch.setattr(codegen_cmd, "generated_directory", lambda: copy)
    assert cli.main(["demo"]) == 1
    out = capsys.readouterr().out
    assert "STALE" in out and str(stale) in out
    assert stale.read_text(encoding="utf-8") == edited


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib import metadata

    with pytest.raises(SystemExit) as excinfo:
        cli.main(["--version"])
    assert excinfo.value.code == 0
    assert capsys.readouterr().out.split()[-1] == metadata.version(cli.DISTRIBUTION)


def test_codegen_never_rewrites_a_generated_package_outside_a_source_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Installed, the generated package sits in site-packages: codegen checks it, but writes only --out."""
    site = tmp_path / "site-packages"
    skip_caches = shutil.ignore_patterns("__pycache__")
    shutil.copytree(codegen_cmd.generated_directory(), site / "generated", ignore=skip_caches)
    monkeypatch.setattr(codegen_cmd, "generated_directory", lambda: site / "generated")
    before = {p: p.read_bytes() for p in site.rglob("*.py")}
    assert cli.main(["codegen"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the generated package at ") and "pass --out DIR" in err
    assert cli.main(["codegen", "--check"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in site.rglob("*.py")} == before
    assert codegen_cmd.is_source_checkout(codegen_cmd.generated_directory()) is False
    monkeypatch.undo()
    assert codegen_cmd.is_source_checkout(codegen_cmd.generated_directory()) is True
