"""``read_path``: one whole file outside any ``Storage`` directory, opened read-only."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cluster.storage import StorageError, read_path


def test_reads_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_bytes(b"x" * 10_000)
    assert read_path(path, max_bytes=10_000) == b"x" * 10_000
    assert read_path(str(path), max_bytes=20_000) == b"x" * 10_000


def test_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert read_path(path, max_bytes=0) == b""


def test_the_file_is_opened_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A configuration file may be read-only to the node (root reads it anyway, so the flags are checked)."""
    path = tmp_path / "node.toml"
    path.write_bytes(b"a = 1\n")
    path.chmod(0o444)
    flags: list[int] = []
    real_open = os.open

    def spy(name: str, mode: int, *args: int) -> int:
        flags.append(mode)
        return real_open(name, mode, *args)

    monkeypatch.setattr(os, "open", spy)
    assert read_path(path, max_bytes=100) == b"a = 1\n"
    assert [mode & os.O_ACCMODE for mode in flags] == [os.O_RDONLY]


def test_longer_than_the_limit_is_efbig(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"y" * 101)
    with pytest.raises(StorageError) as caught:
        read_path(path, max_bytes=100)
    assert caught.value.errno == errno.EFBIG
    assert str(caught.value) == f"{path}: longer than 100 bytes (EFBIG)"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as caught:
        read_path(tmp_path / "missing", max_bytes=100)
    assert caught.value.errno == errno.ENOENT
    assert str(caught.value) == f"{tmp_path / 'missing'}: No such file or directory (ENOENT)"
    with pytest.raises(StorageError) as caught:
        read_path(tmp_path, max_bytes=100)
    assert caught.value.errno == errno.EISDIR


def test_a_pipe_is_read_to_its_end() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"abc")
    os.close(write_end)
    try:
        assert read_path(f"/proc/self/fd/{read_end}", max_bytes=100) == b"abc"
    finally:
        os.close(read_end)
