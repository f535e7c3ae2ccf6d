"""The disk nemesis's small disks (``tools.chaos.disks``): a tmpfs per member that ``fill`` takes to the
last byte, so that a write fails with ENOSPC, and ``free`` gives back; unmounted on ``close``."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.needs import missing

from tools.chaos.disks import MemberDisks, unavailable


@pytest.fixture
def disks(tmp_path: Path) -> Iterator[MemberDisks]:
    reason = unavailable()
    if reason is not None:
        missing(f"no small disks here: {reason}", ".ci/run runs as root")
    made = MemberDisks.create(tmp_path, 2, 4 << 20)
    try:
        yield made
    finally:
        made.close()


def _mounted(path: Path) -> bool:
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        return any(line.split()[1] == str(path) for line in mounts)


def test_a_full_disk_refuses_a_new_page_and_takes_writes_again_once_freed(disks: MemberDisks) -> None:
    target = disks.paths[1] / "archive"
    target.mkdir()
    assert disks.free_bytes(1) > 3 << 20
    taken = disks.fill(1)
    assert taken > 3 << 20 and disks.free_bytes(1) == 0
    with pytest.raises(OSError) as refused:
        (target / "0-0.rec").write_bytes(b"x" * 65536)
    assert refused.value.errno == errno.ENOSPC
    (disks.paths[0] / "file").write_bytes(b"x" * 65536)  # the other member's disk is its own
    disks.free(1)
    disks.free(1)  # freeing twice is harmless
    (target / "0-0.rec").write_bytes(b"x" * 65536)
    assert disks.free_bytes(1) > 3 << 20


def test_closing_unmounts_every_disk(tmp_path: Path, disks: MemberDisks) -> None:
    paths = list(disks.paths)
    assert all(_mounted(path) for path in paths)
    (paths[0] / "kept-in-memory").write_text("gone after close")
    disks.close()
    disks.close()
    assert not any(_mounted(path) for path in paths)
    assert not (paths[0] / "kept-in-memory").exists() and os.path.isdir(paths[0])
