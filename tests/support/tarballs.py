"""Java's directories (the tarballs ``support.paths`` names): sparse GNU tar archives, extracted once per test
session with GNU tar, which keeps them sparse (Python's ``tarfile`` would write every hole)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.needs import need_program, need_reference

__all__ = ["Extractor"]


class Extractor:
    """``extractor(tarball, name)``: the folder ``tarball`` was extracted into (once per session), or a
    skip (a failure in CI) when the tarball, tar or xz is missing. Tests must not write into it."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory
        self._extracted: dict[Path, Path] = {}

    def __call__(self, tarball: Path, name: str) -> Path:
        tarball = need_reference(tarball)
        if tarball not in self._extracted:
            need_program("tar")
            need_program("xz")
            root = self._factory.mktemp(name)
            subprocess.run(["tar", "-xJf", str(tarball), "-C", str(root)], check=True, timeout=120)
            self._extracted[tarball] = root
        return self._extracted[tarball]
