"""The ``python -m tools`` dispatcher: command table, lazy imports, exit statuses, user errors."""

import argparse
import os
import re
import shutil
import sys
import time
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


def test_demo_tells_the_story_of_a_process_cluster_through_a_leader_kill_and_stops_every_node(
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    assert cli.main(["demo"]) == 0
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert "up to date: the generated codecs are exactly what the schemas generate" in out
    assert out.count("  received  ") == 2
    assert "SessionConnectRequest: 65 bytes" in out and "SessionMessageHeader: 46 bytes" in out
    assert "MISMATCH" not in out
    assert "payload   b'hello, cluster'" in out
    assert "replayed 200 messages: the same bytes at the same positions" in out
    # then a cluster of three node processes on 127.0.0.1 running the key-value service
    story = out[out.index("a local 3-member cluster of real processes") :]
    assert "FAILED" not in story, story
    pids = [int(pid) for pid in re.findall(r"member \d \(pid (\d+)\)", _line(story, "started member 0"))]
    assert len(pids) == 3
    assert re.search(r"ingress at (127\.0\.0\.1:\d+, ){2}127\.0\.0\.1:\d+$", _line(story, "started member 0"))
    first = re.search(r"member (\d) leads term (\d+); members \d and \d follow", story)
    session = re.search(r"client connected: cluster session (\d+), leader member (\d), term (\d+)", story)
    assert first and session and session.group(2, 3) == first.group(1, 2)
    for request, answer in [
        (1, "write colour = blue -> OK"), (4, "read colour -> blue"), (6, "read size -> large"),
        (7, "write after = failover -> OK"), (8, "read colour -> blue"), (9, "read after -> failover"),
    ]:  # fmt: skip
        assert f"request {request}: {answer}" in story  # re-sent or not, each request got its answer
    committed = re.search(r"every member committed them: commit position (\d+)", story)
    killed = re.search(r"kill -9 member (\d), the leader \(pid (\d+)\)", story)
    assert committed and killed and killed.group(1) == first.group(1)
    assert int(killed.group(2)) == pids[int(killed.group(1))]
    # a new leader among the other two, in a later term, with everything committed before the kill
    new = re.search(r"new leader elected: member (\d) leads term (\d+); member (\d) follows; "
                    r"commit position (\d+)", story)  # fmt: skip
    assert new and new.group(1) != killed.group(1) and int(new.group(2)) > int(first.group(2))
    assert int(new.group(4)) >= int(committed.group(1))
    assert (
        f"the client's session {session.group(1)} was told: new leader member {new.group(1)} "
        f"in term {new.group(2)}" in story
    )
    assert f"same session {session.group(1)}: the client carried on through the leader change" in story
    restarted = re.search(rf"member {killed.group(1)} restarted on its directories \(pid (\d+)\)", story)
    caught_up = re.search(
        rf"member {killed.group(1)} caught up: it follows member (\d) in term (\d+) at commit position "
        r"(\d+), the leader's",
        story,
    )
    assert restarted and caught_up and caught_up.group(1, 2) == new.group(1, 2)
    final = _line(story, "every member:")
    assert final.count(f"at {caught_up.group(3)}") == 3 and final.count("leader") == 1
    pids.append(int(restarted.group(1)))
    stopped = _line(story, "stopped every node process:")
    assert [int(pid) for pid in re.findall(r"pid (\d+)", stopped)] == pids
    assert stopped.count("exit status 0") == 3 and f"pid {killed.group(2)} killed by SIGKILL" in stopped
    for pid in pids:  # stopped and reaped: none is left, not even as a zombie
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert elapsed < 60


def _line(text: str, start: str) -> str:
    """The line of ``text`` whose story part (after the elapsed time) starts with ``start``."""
    lines = [line for line in text.splitlines() if line.split(" s  ", 1)[-1].startswith(start)]
    assert len(lines) == 1, (start, text)
    return lines[0]


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


def test_an_interpreter_older_than_the_project_needs_is_told_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "version_info", (3, 11, 7, "final", 0))
    assert cli.main(["sim", "--help"]) == cli.USER_ERROR_STATUS
    error = capsys.readouterr().err
    assert "Python 3.12 or newer is needed" in error and "scripts/setup.sh" in error


def test_the_version_is_read_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    def unexpected() -> str:
        raise AssertionError("the version was looked up")

    monkeypatch.setattr(cli, "version", unexpected)
    assert cli.main(["sim", "--list-canaries"]) == 0
