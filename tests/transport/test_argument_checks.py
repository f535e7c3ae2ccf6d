"""Bad arguments raise the transport's own errors, under ``python -O`` too.

``python -O`` strips ``assert`` statements, so a library check written as an assert silently lets a bad
argument through in an optimised run. The checks below were asserts once; each test runs them in this
process and again in a ``python -O`` subprocess, which must see the same errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cluster.transport.agent import AgentRunner, NoOpIdleStrategy
from cluster.transport.errors import AgentError, LogBufferError, TransportError
from cluster.transport.logbuffer import (
    MAX_MESSAGE_LENGTH,
    BufferClaim,
    ExclusiveAppender,
    FragmentAssembler,
    LogBuffers,
)

REPO = Path(__file__).resolve().parents[2]
TERM = 64 * 1024

BAD_ASSEMBLERS: list[tuple[dict[str, int], str]] = [
    ({"max_message_length": 0}, "max_message_length must be in"),
    ({"max_message_length": -1}, "max_message_length must be in"),
    ({"max_message_length": MAX_MESSAGE_LENGTH + 1}, "max_message_length must be in"),
    ({"max_sessions": 0}, "max_sessions must be positive"),
    ({"max_message_length": 4096, "max_buffered_bytes": 4095}, "the longest message would never fit"),
]


def ignore(payload: memoryview, header: object) -> None:
    del payload, header


@pytest.mark.parametrize(("arguments", "reason"), BAD_ASSEMBLERS)
def test_a_fragment_assembler_with_bad_limits_is_refused(arguments: dict[str, int], reason: str) -> None:
    with pytest.raises(LogBufferError, match=reason) as raised:
        FragmentAssembler(ignore, **arguments)
    assert isinstance(raised.value, TransportError) and isinstance(raised.value, ValueError)


def test_a_fragment_assembler_needs_a_callable_delegate() -> None:
    with pytest.raises(LogBufferError, match="delegate must be callable"):
        FragmentAssembler(None)  # type: ignore[arg-type]


def test_a_claim_still_holding_a_frame_is_refused_and_the_log_is_untouched() -> None:
    log = LogBuffers(TERM, 0)
    appender = ExclusiveAppender(log, 1, 2, 1408)
    claim = BufferClaim()
    position = appender.try_claim(100, claim)
    tails = list(log.raw_tails)
    with pytest.raises(LogBufferError, match="already holds an uncommitted frame"):
        appender.try_claim(100, claim)
    assert log.raw_tails == tails and appender.position == position and appender.open_claims == 1
    claim.commit()
    assert appender.open_claims == 0
    assert appender.try_claim(100, claim) > position


class NegativeAgent:
    role_name = "negative"

    def on_start(self) -> None:
        pass

    def do_work(self) -> int:
        return -1

    def on_close(self) -> None:
        pass


def test_a_negative_work_count_is_an_agent_error() -> None:
    errors: list[Exception] = []
    runner = AgentRunner(NegativeAgent(), NoOpIdleStrategy(), errors.append)
    assert runner.duty_cycle() == 0
    assert len(errors) == 1 and isinstance(errors[0], AgentError)
    assert "negative.do_work() returned -1" in str(errors[0])
    without_handler = AgentRunner(NegativeAgent(), NoOpIdleStrategy())
    with pytest.raises(AgentError, match="returned -1"):
        without_handler.duty_cycle()


OPTIMISED_CHECKS = """
import json
from cluster.transport.agent import AgentRunner, NoOpIdleStrategy
from cluster.transport.logbuffer import BufferClaim, ExclusiveAppender, FragmentAssembler, LogBuffers

class NegativeAgent:
    role_name = "negative"
    def on_start(self): pass
    def do_work(self): return -1
    def on_close(self): pass

def error_of(call):
    try:
        call()
    except Exception as exc:
        return type(exc).__name__
    return None

cases = json.loads(CASES)
results = {"debug": __debug__}
results["assemblers"] = [error_of(lambda: FragmentAssembler(lambda p, h: None, **args)) for args in cases]
appender = ExclusiveAppender(LogBuffers(65536, 0), 1, 2, 1408)
claim = BufferClaim()
appender.try_claim(100, claim)
results["claim"] = error_of(lambda: appender.try_claim(100, claim))
results["agent"] = error_of(AgentRunner(NegativeAgent(), NoOpIdleStrategy()).duty_cycle)
print(json.dumps(results))
"""


def test_the_checks_hold_under_python_dash_o() -> None:
    cases = json.dumps([arguments for arguments, _ in BAD_ASSEMBLERS])
    code = OPTIMISED_CHECKS.replace("json.loads(CASES)", f"json.loads({cases!r})")
    done = subprocess.run(
        [sys.executable, "-O", "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert results == {
        "debug": False,  # the subprocess really runs without asserts
        "assemblers": ["LogBufferError"] * len(BAD_ASSEMBLERS),
        "claim": "LogBufferError",
        "agent": "AgentError",
    }
