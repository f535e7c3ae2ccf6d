"""Short chaos runs on real node processes (127.0.0.1, real UDP and files), one per nemesis: each must
end with every checker passing -- a linearizable history, no acknowledged write lost, every member
back, a write taken after the healing -- and with every node process stopped by its pid.

The kill run goes through ``ChaosRun`` in this process; the pause run through the command line in its
exact form, whose last stdout line is the JSON summary. Each is bounded by the harness's own phase
bounds; a run lasts 15 to 30 s on a 2-core machine (a restarted member waits up to 11 s for the mark
files of its killed process to go stale).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from support.labs import need_lab
from support.needs import missing
from support.paths import REPO

from tools.chaos.nemesis import FaultKind
from tools.chaos.run import ChaosConfig, ChaosRun

RUN_TIMEOUT_S = 150.0  # far above the run's own bounds' sum in a clean run; a stuck harness is killed


def _assert_clean(summary: dict[str, object], kind: str) -> None:
    assert summary["violations"] == [], summary
    assert summary["linearizable"] is True, summary
    assert summary["lost"] == 0, summary
    faults = summary["faults"]
    assert isinstance(faults, dict) and faults[kind] >= 1, summary
    acknowledged = summary["acknowledged"]
    assert isinstance(acknowledged, int) and acknowledged > 0, summary
    logs = summary["logs"]  # every member's log read back with archive dump, the same below the commit
    assert isinstance(logs, dict) and logs["agree"] is True and logs["records"] > 0, summary


def _pids_gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


def test_kill_nemesis_loses_nothing_acknowledged(tmp_path: Path) -> None:
    config = ChaosConfig(nodes=3, seconds=6, kinds=(FaultKind.KILL,), seed=11, directory=tmp_path / "run")
    run = ChaosRun(config)
    summary = run.execute()
    _assert_clean(summary, "kill")
    assert run.cluster is not None
    pids = [record.pid for record in run.nemesis.faults] if run.nemesis else []
    pids += [process.pid for process in run.cluster.processes.values()]
    assert _pids_gone(pids)
    faults = [json.loads(line) for line in (tmp_path / "run" / "faults.jsonl").read_text().splitlines()]
    assert faults and all(fault["kind"] == "kill" and fault["newPid"] is not None for fault in faults)
    assert (tmp_path / "run" / "history.jsonl").stat().st_size > 0


def test_two_faults_together_the_second_aimed_at_an_election_transition(tmp_path: Path) -> None:
    """Seed 4 draws a kill of the leader whose follow-up pauses the member that enters LEADER_REPLAY:
    the new leader, frozen as it wins, with the old one still down -- no quorum until one returns."""
    config = ChaosConfig(
        nodes=3, seconds=10, kinds=(FaultKind.KILL, FaultKind.PAUSE), seed=4, directory=tmp_path / "run"
    )
    run = ChaosRun(config)
    summary = run.execute()
    _assert_clean(summary, "kill")
    assert summary["faults"] == {"kill": 1, "pause": 1}, summary
    assert (summary["overlapping"], summary["at_transitions"]) == (1, 1), summary
    faults = [json.loads(line) for line in (tmp_path / "run" / "faults.jsonl").read_text().splitlines()]
    first, second = sorted(faults, key=lambda fault: fault["injectedS"])
    assert (first["kind"], first["wasLeader"], first["during"]) == ("kill", True, None)
    assert (second["kind"], second["trigger"], second["during"]) == ("pause", "LEADER_REPLAY", 0)
    assert second["member"] != first["member"]
    # the two held together: the killed leader's new process ended its first election after the pause
    lines = [json.loads(line) for line in (tmp_path / "run" / "nodes.jsonl").read_text().splitlines()]
    back = [line["atS"] for line in lines if line["pid"] == first["newPid"] and "-> CLOSED" in line["line"]]
    assert back and min(back) > second["injectedS"], (back, second)
    assert run.cluster is not None
    assert _pids_gone([first["pid"], *(process.pid for process in run.cluster.processes.values())])


def test_pause_nemesis_from_the_command_line(tmp_path: Path) -> None:
    args = ["--nodes", "3", "--seconds", "6", "--nemesis", "pause", "--seed", "5", "--json"]
    process = subprocess.Popen(
        [sys.executable, "-m", "tools", "chaos", *args, "--dir", str(tmp_path / "run")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:  # SIGTERM first: the command stops its node processes by pid
            os.kill(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.communicate(timeout=30)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.communicate(timeout=10)
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout  # --json: the summary alone on stdout; the story went to stderr
    summary = json.loads(lines[-1])
    assert process.returncode == 0, f"{summary}\n{stderr}"
    _assert_clean(summary, "pause")
    assert set(summary) >= {
        "operations", "acknowledged", "lost", "linearizable", "faults", "recovery_ms", "violations",
    }  # fmt: skip
    assert set(summary["recovery_ms"]) == {"min", "median", "max"}
    assert "stopped every node process" in stderr


def test_partition_nemesis_in_network_namespaces(tmp_path: Path) -> None:
    """Every member in a namespace of its own; partitions of every shape the seed draws, made by the
    kernel. Seed 3 draws, in its first 10 s, the clients cut from a member, then from the leader."""
    need_lab()
    config = ChaosConfig(
        nodes=3, seconds=10, kinds=(FaultKind.PARTITION,), seed=3, directory=tmp_path / "run"
    )
    run = ChaosRun(config)
    summary = run.execute()
    _assert_clean(summary, "partition")
    faults = [json.loads(line) for line in (tmp_path / "run" / "faults.jsonl").read_text().splitlines()]
    assert len(faults) >= 2 and all(fault["kind"] == "partition" and fault["rules"] for fault in faults)
    assert run.lab is not None and run.lab.closed
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(namespace in namespaces for namespace in run.lab.namespaces)
    assert run.cluster is not None and _pids_gone([p.pid for p in run.cluster.processes.values()])


def test_loss_nemesis_from_the_command_line(tmp_path: Path) -> None:
    """Seed 8 drops a share of what the leader receives (nftables), then has the relay duplicate what
    every member receives from the others."""
    need_lab()
    args = ["--nodes", "3", "--seconds", "9", "--nemesis", "loss,partition", "--seed", "8", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "tools", "chaos", *args, "--dir", str(tmp_path / "run")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, f"{summary}\n{done.stderr}"
    _assert_clean(summary, "loss")
    assert "% of the packets arriving at" in done.stderr and "% duplicated" in done.stderr
    relayed = re.search(
        r"(\d+) packets relayed, (\d+) duplicated", (tmp_path / "run" / "relay.log").read_text()
    )
    assert relayed and int(relayed[1]) > 0 and int(relayed[2]) > 0


def test_clock_nemesis_moves_the_members_own_clocks(tmp_path: Path) -> None:
    """Seed 5 leaps a member's monotonic clock ahead and, 0.3 s later, steps another member's wall
    clock, the two together: each member moves its own clock (``--clock-file``, SIGUSR1) and says so;
    the cluster carries on."""
    config = ChaosConfig(nodes=3, seconds=10, kinds=(FaultKind.CLOCK,), seed=5, directory=tmp_path / "run")
    run = ChaosRun(config)
    summary = run.execute()
    _assert_clean(summary, "clock")
    lines = (tmp_path / "run" / "nodes.jsonl").read_text().splitlines()
    moved = [json.loads(json.loads(line)["line"])["event"] for line in lines if "clock moved" in line]
    offsets = [
        re.fullmatch(r"clock moved: wall clock ([+-]\d+) ms, monotonic clock \+(\d+) ns .*", text)
        for text in moved
    ]
    assert all(offsets), moved
    assert any(int(match[2]) > 0 for match in offsets if match), moved  # the leap
    assert any(int(match[1]) != 0 for match in offsets if match), moved  # the step
    assert not any("clock file refused" in line for line in lines)


def test_disk_nemesis_a_member_stopped_by_a_full_disk_recovers_once_it_has_space(tmp_path: Path) -> None:
    """Seed 7 fills a member's disk at about 2 s: it stops on ENOSPC with one line saying so (exit
    status 1, no traceback), and once the space is back it starts again on its directories, recovers
    and rejoins; nothing acknowledged is lost and the logs agree."""
    from tools.chaos.disks import unavailable

    reason = unavailable()
    if reason is not None:
        missing(f"no small disks here: {reason}", ".ci/run runs as root")
    config = ChaosConfig(nodes=3, seconds=8, kinds=(FaultKind.DISK,), seed=7, directory=tmp_path / "run")
    run = ChaosRun(config)
    summary = run.execute()
    _assert_clean(summary, "disk")
    faults = [json.loads(line) for line in (tmp_path / "run" / "faults.jsonl").read_text().splitlines()]
    stopped = [fault for fault in faults if "stopped on the full disk (exit status 1)" in fault["detail"]]
    assert stopped and all(fault["newPid"] is not None for fault in stopped), faults
    stderr = "".join(path.read_text() for path in (tmp_path / "run").glob("node*.stderr"))
    assert "No space left on device (ENOSPC)" in stderr and "Traceback" not in stderr
    assert run.disks is not None and not run.disks.mounted
