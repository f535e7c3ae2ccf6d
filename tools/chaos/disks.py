"""Small disks for the disk nemesis: each member's directory (``node<i>/``, its cluster and archive
directories) on a tmpfs of its own with a size limit, which the nemesis fills to the last byte and
frees again.

Theory of operation
-------------------
``MemberDisks.create(directory, members, size)`` mounts, as root, a tmpfs of ``size`` bytes on
``directory/node<i>`` for every member, before the members start. ``fill(member)`` takes every free
byte of that member's tmpfs with one file (``filler``, allocated with ``posix_fallocate``), so the next
write of a new page -- a log recording growing, a snapshot recording, a new segment file -- fails with
ENOSPC, as on a full disk. ``free(member)`` deletes the file. ``close()`` unmounts every disk (lazily,
so that it never fails on a busy mount); it runs in the harness's ``finally`` after every member has
stopped, and the run's directory keeps nothing of the members' files afterwards (they lived in memory).

``unavailable()`` says why no such disk can be made here (not root; the kernel refuses the mount).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Final

__all__ = ["FILLER", "DiskError", "MemberDisks", "unavailable"]

FILLER: Final = "filler"
COMMAND_TIMEOUT_S: Final = 20.0


class DiskError(Exception):
    """A member's disk could not be mounted, filled, freed or unmounted."""


def _run(args: list[str], *, check: bool = True) -> None:
    """Run a command. ``check``: ``DiskError`` if it fails; otherwise any failure is ignored (cleanup)."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        if not check:
            return
        raise DiskError(f"{' '.join(args)}: {error}") from None
    if check and done.returncode != 0:
        raise DiskError(f"{' '.join(args)}: exit status {done.returncode}: {done.stderr.strip()}")


def unavailable() -> str | None:
    """Why no member disk can be mounted here, or ``None`` (checked by mounting a small one)."""
    if os.geteuid() != 0:
        return "mounting a size-limited tmpfs needs root"
    with tempfile.TemporaryDirectory(prefix="aeron-chaos-disk-") as probe:
        try:
            _run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe])
        except DiskError as error:
            return f"this machine cannot mount a tmpfs: {error}"
        _run(["umount", "-l", probe], check=False)
    return None


class MemberDisks:
    """Every member's directory on a small tmpfs of its own (module docstring)."""

    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths = paths
        self.size = size
        self.mounted: list[Path] = []

    @classmethod
    def create(cls, directory: Path, members: int, size: int) -> MemberDisks:
        disks = cls([directory / f"node{member}" for member in range(members)], size)
        try:
            for path in disks.paths:
                path.mkdir(parents=True, exist_ok=True)
                _run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
                disks.mounted.append(path)
        except BaseException:
            disks.close()
            raise
        return disks

    def free_bytes(self, member: int) -> int:
        stats = os.statvfs(self.paths[member])
        return stats.f_bavail * stats.f_frsize

    def fill(self, member: int) -> int:
        """Take every free byte of member ``member`` 's disk; how many that was."""
        path = self.paths[member] / FILLER
        taken = 0
        with open(path, "ab") as file:
            free = self.free_bytes(member)
            if free > 0:
                with contextlib.suppress(OSError):  # ENOSPC at the last pages: full is what was asked
                    os.posix_fallocate(file.fileno(), file.tell(), free)
                taken = free - self.free_bytes(member)
        return taken

    def free(self, member: int) -> None:
        """Give member ``member`` 's disk its space back."""
        with contextlib.suppress(FileNotFoundError):
            (self.paths[member] / FILLER).unlink()

    def close(self) -> None:
        """Unmount every disk (idempotent)."""
        while self.mounted:
            _run(["umount", "-l", str(self.mounted.pop())], check=False)
