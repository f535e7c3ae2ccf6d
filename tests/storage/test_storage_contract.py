"""The ``Storage`` contract, held to on the real file system and on a ``SimDisk`` alike.

Every test takes the parametrized ``storage`` fixture (``conftest.py``), so a difference between the
two is a failure of one of them. The hypothesis tests compare random sequences of writes, truncates
and reads with a plain ``bytearray``.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster.storage import Storage, StorageError, StorageFile, SyncLevel
from cluster.storage.api import check_name

# ------------------------------------------------------------------------------------------ names


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/a", "a\\b", "a\x00b"])
def test_check_name_rejects(name: str) -> None:
    with pytest.raises(StorageError) as caught:
        check_name(name)
    assert caught.value.errno == errno.EINVAL


@pytest.mark.parametrize("name", ["a", "archive.catalog", "0-1024.rec", "..x", ".mark"])
def test_check_name_accepts(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\x00b"])
def test_every_operation_checks_the_name(storage: Storage, name: str) -> None:
    for call in (
        lambda: storage.open(name, create=True),
        lambda: storage.exists(name),
        lambda: storage.delete(name),
        lambda: storage.rename(name, "x"),
        lambda: storage.rename("x", name),
        lambda: storage.replace_file(name, b""),
    ):
        with pytest.raises(StorageError) as caught:
            call()
        assert caught.value.errno == errno.EINVAL
    assert storage.list() == []


# ------------------------------------------------------------------------------ open, list, delete


def test_open_missing_is_enoent(storage: Storage) -> None:
    with pytest.raises(StorageError) as caught:
        storage.open("missing")
    assert caught.value.errno == errno.ENOENT
    assert "missing" in str(caught.value)
    assert not storage.exists("missing")


def test_create_makes_an_empty_file(storage: Storage) -> None:
    with storage.open("f", create=True) as file:
        assert file.name == "f"
        assert file.size() == 0
        assert file.read(0, 10) == b""
    assert storage.exists("f")
    assert storage.read_file("f") == b""


def test_create_opens_an_existing_file_unchanged(storage: Storage) -> None:
    with storage.open("f", create=True) as file:
        file.write(0, b"kept")
    with storage.open("f", create=True) as file:
        assert file.read(0, 100) == b"kept"


def test_list_is_sorted_and_delete_removes(storage: Storage) -> None:
    for name in ["b", "a", "c.rec", "0"]:
        storage.open(name, create=True).close()
    assert storage.list() == ["0", "a", "b", "c.rec"]
    storage.delete("b")
    assert storage.list() == ["0", "a", "c.rec"]
    assert not storage.exists("b")
    with pytest.raises(StorageError) as caught:
        storage.delete("b")
    assert caught.value.errno == errno.ENOENT
    storage.sync_directory()
    assert storage.list() == ["0", "a", "c.rec"]


def test_rename_moves_a_file_and_replaces_the_target(storage: Storage) -> None:
    with storage.open("a", create=True) as file:
        file.write(0, b"new")
    with storage.open("b", create=True) as file:
        file.write(0, b"old bytes")
    handle = storage.open("a")
    storage.rename("a", "b")
    assert storage.list() == ["b"] and storage.read_file("b") == b"new"
    handle.write(3, b"!")  # an open handle follows its file to the new name
    handle.close()
    assert storage.read_file("b") == b"new!"
    with pytest.raises(StorageError) as caught:
        storage.rename("a", "c")
    assert caught.value.errno == errno.ENOENT and storage.list() == ["b"]
    storage.rename("b", "b")
    assert storage.read_file("b") == b"new!"


def test_replace_file_writes_the_whole_file_through_a_temporary(storage: Storage) -> None:
    storage.replace_file("f", b"first")
    assert storage.list() == ["f"] and storage.read_file("f") == b"first"
    with storage.open("f.tmp", create=True) as file:
        file.write(0, b"a leftover of an earlier crash, longer than the new bytes")
    storage.replace_file("f", b"second")
    assert storage.list() == ["f"] and storage.read_file("f") == b"second"
    storage.replace_file("f", b"third", temporary="scratch")
    assert storage.list() == ["f"] and storage.read_file("f") == b"third"
    with pytest.raises(StorageError) as caught:
        storage.replace_file("f", b"", temporary="f")
    assert caught.value.errno == errno.EINVAL


def test_location_names_the_directory(storage: Storage) -> None:
    assert isinstance(storage.location, str) and storage.location


# ------------------------------------------------------------------------------- reads and writes


def test_positional_write_and_read(storage: Storage) -> None:
    with storage.open("f", create=True) as file:
        file.write(0, b"hello world")
        file.write(6, bytearray(b"WORLD"))
        file.write(0, memoryview(b"J"))
        assert file.size() == 11
        assert file.read(0, 11) == b"Jello WORLD"
        assert file.read(6, 3) == b"WOR"
        assert file.read(11, 5) == b""
        assert file.read(8, 100) == b"RLD"
        assert file.read(1000, 1) == b""
        assert file.read(3, 0) == b""


def test_a_gap_reads_as_zeros(storage: Storage) -> None:
    with storage.open("f", create=True) as file:
        file.write(10_000, b"end")
        assert file.size() == 10_003
        data = file.read(0, 20_000)
    assert data == bytes(10_000) + b"end"


def test_writes_across_many_pages(storage: Storage) -> None:
    payload = bytes(range(256)) * 100  # 25600 bytes: several 4 KiB pages, unaligned
    with storage.open("f", create=True) as file:
        file.write(4095, payload)
        assert file.read(4095, len(payload)) == payload
        assert file.read(0, 4095) == bytes(4095)
        assert file.size() == 4095 + len(payload)


def test_an_empty_write_changes_nothing(storage: Storage) -> None:
    with storage.open("f", create=True) as file:
        file.write(100, b"")
        assert file.size() == 0


def test_read_into(storage: Storage) -> None:
    with storage.open("f", create=True) as file:
        file.write(0, b"0123456789")
        buffer = bytearray(4)
        assert file.read_into(3, buffer) == 4
        assert buffer == b"3456"
        view = memoryview(bytearray(8))
        assert file.read_into(6, view[2:]) == 4
        assert bytes(view) == b"\x00\x006789\x00\x00"
        assert file.read_into(10, bytearray(3)) == 0
        assert file.read_into(50, bytearray(3)) == 0
        big = bytearray(b"\xff" * 10_000)
        file.truncate(9_000)
        assert file.read_into(0, big) == 9_000
        assert big[:10] == b"0123456789" and big[10:9_000] == bytes(8_990)
        assert big[9_000:] == b"\xff" * 1_000


def test_truncate_shrinks_and_grows_with_zeros(storage: Storage) -> None:
    with storage.open("f", create=True) as file:
        file.write(0, b"x" * 10_000)
        file.truncate(5_000)
        assert file.size() == 5_000
        assert file.read(0, 10_000) == b"x" * 5_000
        file.truncate(12_000)
        assert file.size() == 12_000
        assert file.read(0, 12_000) == b"x" * 5_000 + bytes(7_000)
        file.truncate(0)
        assert file.read(0, 10) == b""
        file.truncate(3)
        assert file.read(0, 10) == bytes(3)


def test_a_large_sparse_file(storage: Storage) -> None:
    """Aeron creates its 128 MiB segment files at full length and fills them in place."""
    segment = 128 * 1024 * 1024
    with storage.open("0.rec", create=True) as file:
        file.truncate(segment)
        assert file.size() == segment
        file.write(segment - 4, b"tail")
        assert file.read(segment - 8, 100) == bytes(4) + b"tail"
        assert file.read(64 * 1024 * 1024, 16) == bytes(16)


def test_the_whole_file(storage: Storage) -> None:
    with storage.open("f", create=True) as file:
        file.write(0, b"mark file")
    assert storage.read_file("f") == b"mark file"


def test_negative_offsets_and_lengths(storage: Storage) -> None:
    with storage.open("f", create=True) as file:
        for call in (
            lambda: file.read(-1, 1),
            lambda: file.read(0, -1),
            lambda: file.read_into(-1, bytearray(1)),
            lambda: file.write(-1, b"x"),
            lambda: file.truncate(-1),
        ):
            with pytest.raises(StorageError) as caught:
                call()
            assert caught.value.errno == errno.EINVAL
        assert file.size() == 0


def test_writes_are_seen_through_another_handle_and_after_delete(storage: Storage) -> None:
    first = storage.open("f", create=True)
    second = storage.open("f")
    first.write(0, b"shared")
    assert second.read(0, 6) == b"shared"
    storage.delete("f")
    second.write(6, b"!")  # an open file outlives its name
    assert first.read(0, 10) == b"shared!"
    first.close()
    second.close()
    assert not storage.exists("f")


# --------------------------------------------------------------------------------- sync and close


@pytest.mark.parametrize("level", list(SyncLevel))
def test_sync_at_each_level(storage: Storage, level: SyncLevel) -> None:
    with storage.open("f", create=True) as file:
        file.write(0, b"data")
        file.sync(level)
        file.sync(level)
        assert file.read(0, 4) == b"data"
    storage.sync_directory()


@pytest.mark.parametrize("level", [3, -1])
def test_sync_rejects_an_unknown_level(storage: Storage, level: int) -> None:
    with storage.open("f", create=True) as file, pytest.raises(StorageError) as caught:
        file.sync(level)  # type: ignore[arg-type]
    assert caught.value.errno == errno.EINVAL


def closed_file_calls(file: StorageFile) -> list[Callable[[], object]]:
    return [
        lambda: file.read(0, 1),
        lambda: file.read_into(0, bytearray(1)),
        lambda: file.write(0, b"x"),
        file.size,
        lambda: file.truncate(0),
        lambda: file.sync(SyncLevel.DATA),
    ]


def test_a_closed_file_raises_ebadf(storage: Storage) -> None:
    file = storage.open("f", create=True)
    file.close()
    file.close()  # idempotent
    for call in closed_file_calls(file):
        with pytest.raises(StorageError) as caught:
            call()
        assert caught.value.errno == errno.EBADF


# ------------------------------------------------------------------ random sequences against a model

names = itertools.count()

offsets = st.integers(min_value=0, max_value=20_000)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), offsets, st.binary(min_size=0, max_size=9_000)),
        st.tuples(st.just("truncate"), offsets),
        st.tuples(st.just("read"), offsets, st.integers(min_value=0, max_value=12_000)),
        st.tuples(st.just("read_into"), offsets, st.integers(min_value=0, max_value=12_000)),
        st.tuples(st.just("sync"), st.sampled_from(list(SyncLevel))),
    ),
    max_size=30,
)


def apply_to_model(model: bytearray, op: tuple[object, ...]) -> None:
    """What a write or truncate does to a plain bytearray."""
    if op[0] == "write":
        offset, data = op[1], op[2]
        assert isinstance(offset, int) and isinstance(data, bytes)
        if data:
            if offset > len(model):
                model.extend(bytes(offset - len(model)))
            model[offset : offset + len(data)] = data
    elif op[0] == "truncate":
        length = op[1]
        assert isinstance(length, int)
        if length < len(model):
            del model[length:]
        else:
            model.extend(bytes(length - len(model)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_random_operations_match_a_bytearray(storage: Storage, ops: list[tuple[object, ...]]) -> None:
    name = f"model-{next(names)}"  # the fixture's directory is shared by every example
    model = bytearray()
    with storage.open(name, create=True) as file:
        for op in ops:
            kind = op[0]
            if kind in ("write", "truncate"):
                if kind == "write":
                    file.write(op[1], op[2])  # type: ignore[arg-type]
                else:
                    file.truncate(op[1])  # type: ignore[arg-type]
                apply_to_model(model, op)
            elif kind == "read":
                offset, length = op[1], op[2]
                assert isinstance(offset, int) and isinstance(length, int)
                assert file.read(offset, length) == bytes(model[offset : offset + length])
            elif kind == "read_into":
                offset, length = op[1], op[2]
                assert isinstance(offset, int) and isinstance(length, int)
                buffer = bytearray(b"\xaa" * length)
                count = file.read_into(offset, buffer)
                expected = bytes(model[offset : offset + length])
                assert count == len(expected)
                assert buffer[:count] == expected and buffer[count:] == b"\xaa" * (length - count)
            else:
                file.sync(op[1])  # type: ignore[arg-type]
            assert file.size() == len(model)
        assert file.read(0, len(model) + 10) == bytes(model)
    assert storage.read_file(name) == bytes(model)
    storage.delete(name)
