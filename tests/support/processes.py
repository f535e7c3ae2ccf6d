"""Commands of ``python -m tools`` run as real child processes, bounded and always stopped by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

from support.paths import REPO

__all__ = ["PROCESS_TIMEOUT_S", "spawn_tools"]

PROCESS_TIMEOUT_S = 60.0


@contextlib.contextmanager
def spawn_tools(*args: str, timeout_s: float = PROCESS_TIMEOUT_S) -> Iterator[subprocess.Popen[str]]:
    """``python -m tools ARGS`` from the checkout, stdout and stderr piped; killed (SIGKILL, by pid) if
    it is still running when the block ends, and reaped within ``timeout_s``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tools", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=timeout_s)
