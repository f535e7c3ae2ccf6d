"""``python -m tools bench failover``: three real member processes, a kill -9 of the leader, and the
times to the next leader and the next commit, in both output forms.

Only the report's shape and the order of its times are checked (they depend on the machine), with a
1 s leader heartbeat timeout to keep the run short; the benchmark stops every process itself.
"""

import json

import pytest

from tools.__main__ import main
from tools.bench.failover import FailoverResult, format_text

FIELDS = [
    "benchmark", "members", "leaderHeartbeatTimeoutNs", "electionTimeoutNs", "killedMember", "killedTerm",
    "commitBeforeKill", "newLeader", "newTerm", "electionStartedS", "leaderElectedS", "firstCommitS",
    "commandCommitS",
]  # fmt: skip


def test_bench_failover_json_times_the_kill_to_the_next_leader_and_commit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "failover", "--heartbeat-timeout", "1s", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report) == FIELDS
    assert report["benchmark"] == "failover" and report["members"] == 3
    assert report["leaderHeartbeatTimeoutNs"] == 1_000_000_000
    assert report["newLeader"] != report["killedMember"] and report["newTerm"] > report["killedTerm"]
    # a survivor notices within about a heartbeat timeout (the leader's last heartbeat came before the kill)
    assert 0.5 < report["electionStartedS"] <= report["leaderElectedS"] <= report["firstCommitS"]
    assert report["firstCommitS"] <= report["commandCommitS"] < 30


def test_bench_failover_text_names_each_time_and_the_failover_time() -> None:
    result = FailoverResult(3, 2_000_000_000, 1_000_000_000, 2, 0, 1056, 0, 1, 1.96, 3.744, 3.845, 3.9)
    lines = format_text(result).splitlines()
    assert lines[0] == (
        "failover benchmark: 3 member processes on 127.0.0.1, "
        "leader heartbeat timeout 2 s, election timeout 1 s"
    )
    assert (
        lines[1]
        == "  kill -9 of member 2, leader of term 0, at commit position 1056; seconds after the kill:"
    )
    assert lines[4] == "  first commit after the kill             3.845 s   <- failover time"
    assert "member 0 leads term 1" in lines[3] and "3.744 s" in lines[3]
    unfinished = FailoverResult(
        3, 2_000_000_000, 1_000_000_000, 2, 0, 1056, None, None, 1.96, None, None, None
    )
    text = format_text(unfinished)
    assert "no new leader" in text and "not seen" in text
    assert text.endswith("the failover did not complete before the deadline")


def test_bench_failover_bad_heartbeat_timeout_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "failover", "--heartbeat-timeout", "1 s"]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: cluster.leader.heartbeat.timeout: "1 s" is not a duration')
    assert err.count("\n") == 1
