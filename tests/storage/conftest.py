"""The ``storage`` fixture: every contract test runs on the real file system and on a ``SimDisk``."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.storage import RealStorage, SimDisk, Storage


@pytest.fixture(params=["real", "sim"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "real":
        return RealStorage(tmp_path)
    return SimDisk(seed=7).storage("d")
