"""Shared set-up of the archive tests: the Java archive directories, ArchiveTool's output, a storage that
refuses reads past the end of a file, and file fingerprints for "nothing was changed" checks.

The Java directories are GNU tar archives of sparse files (128 MiB segment files with a few KiB of data):
they are extracted once per session with GNU tar, which keeps them sparse (Python's ``tarfile`` would
write every hole).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.needs import need_reference
from support.paths import JavaArchive
from support.tarballs import Extractor

from cluster.storage import Storage, StorageFile, SyncLevel


@dataclass(frozen=True)
class ArchiveToolDescribe:
    """What ``ArchiveTool <dir> describe`` printed: the mark file header's fields, the catalog capacity
    and one field map per recording descriptor it listed (values as int or str)."""

    mark_file: dict[str, Any]
    capacity: int
    descriptors: dict[int, dict[str, Any]]


# name=value pairs of an SBE toString line: values are numbers or '...' strings that may hold '|'.
_PAIR = re.compile(r"(\w+)=('[^']*'|[^|]*)(?:\||$)")
_LINE = re.compile(r"^\[(\w+)\]\(([^)]*)\):(.*)$")


def _value(text: str) -> Any:
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1]
    return int(text)


def _pairs(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    position = 0
    while position < len(text):
        match = _PAIR.match(text, position)
        assert match is not None, f"cannot parse {text[position:]!r}"
        out[match.group(1)] = _value(match.group(2))
        position = match.end()
    return out


def parse_describe(path: Path) -> ArchiveToolDescribe:
    """Parse an ``ArchiveTool describe`` output file."""
    mark: dict[str, Any] = {}
    capacity = -1
    descriptors: dict[int, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("Catalog capacity in bytes: "):
            capacity = int(line.rsplit(" ", 1)[1])
            continue
        match = _LINE.match(line)
        if match is None:
            continue
        fields = {**_pairs(match.group(2)), **_pairs(match.group(3))}
        if match.group(1) == "MarkFileHeader":
            mark = fields
        elif match.group(1) == "RecordingDescriptor":
            descriptors[fields["recordingId"]] = fields
    assert mark and capacity > 0 and descriptors, f"{path} is not ArchiveTool describe output"
    return ArchiveToolDescribe(mark, capacity, descriptors)


@pytest.fixture(scope="session")
def java_archive(tmp_path_factory: pytest.TempPathFactory) -> Callable[[JavaArchive], Path]:
    """``java_archive(case)``: the case's archive directory, extracted (once per session) with GNU tar.
    Tests must not write into it: copy what a test changes."""
    extractor = Extractor(tmp_path_factory)

    def extract(case: JavaArchive) -> Path:
        return extractor(case.tarball, case.name) / case.directory

    return extract


def fingerprint(directory: Path) -> dict[str, str]:
    """What every file in ``directory`` holds: the SHA-256 of the small ones, the size and modification
    time of the big ones (the 128 MiB segment files, which no test here should even open)."""
    out = {}
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        stat = path.stat()
        if stat.st_size <= 16 * 1024 * 1024:
            out[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[path.name] = f"{stat.st_size} bytes, modified {stat.st_mtime_ns}"
    return out


@pytest.fixture(scope="session")
def files_fingerprint() -> Callable[[Path], dict[str, str]]:
    """``files_fingerprint(directory)``: see ``fingerprint``."""
    return fingerprint


@pytest.fixture(scope="session")
def archivetool_describe() -> Callable[[Path], ArchiveToolDescribe]:
    """``archivetool_describe(path)``: the parsed ``ArchiveTool describe`` output in ``path``."""
    return lambda path: parse_describe(need_reference(path))


class StrictFile(StorageFile):
    """A file whose reads must stay within it: a read past the end fails the test."""

    def __init__(self, inner: StorageFile) -> None:
        self.inner = inner
        self.name = inner.name

    def _check(self, offset: int, length: int) -> None:
        size = self.inner.size()
        assert offset + length <= size, f"read of {length} bytes at {offset} runs past the end ({size})"

    def read(self, offset: int, length: int) -> bytes:
        self._check(offset, length)
        return self.inner.read(offset, length)

    def read_into(self, offset: int, buffer: bytearray | memoryview) -> int:
        self._check(offset, len(memoryview(buffer).cast("B")))
        return self.inner.read_into(offset, buffer)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self.inner.write(offset, data)

    def size(self) -> int:
        return self.inner.size()

    def truncate(self, length: int) -> None:
        self.inner.truncate(length)

    def sync(self, level: SyncLevel) -> None:
        self.inner.sync(level)

    def close(self) -> None:
        self.inner.close()


class StrictStorage(Storage):
    """``inner`` with every file a ``StrictFile``."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    @property
    def location(self) -> str:
        return self.inner.location

    def open(self, name: str, *, create: bool = False) -> StorageFile:
        return StrictFile(self.inner.open(name, create=create))

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)

    def list(self) -> list[str]:
        return self.inner.list()

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def sync_directory(self) -> None:
        self.inner.sync_directory()


@pytest.fixture(scope="session")
def strict() -> Callable[[Storage], Storage]:
    """``strict(storage)``: ``storage`` with reads past the end of a file failing the test."""
    return StrictStorage
