"""The chaos tests' network labs (``tools.chaos.netlab``): skipped with the reason where the machine
cannot build one, a failure under ``CI`` (``support.needs.missing``), and always closed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from support.needs import missing
from tools.chaos.netlab import NetLab, unavailable


def need_lab() -> None:
    """Skip (fail under CI) unless this machine can build a lab."""
    reason = unavailable()
    if reason is not None:
        missing(f"no network lab here: {reason}", ".ci/run runs as root and installs iproute2 and nftables")


@contextlib.contextmanager
def built_lab(members: int, **options: Any) -> Iterator[NetLab]:
    """A lab of ``members`` members (``NetLab.create`` options), closed when the block ends."""
    need_lab()
    lab = NetLab.create(members, **options)
    try:
        yield lab
    finally:
        lab.close()
