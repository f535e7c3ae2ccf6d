"""``SimDisk`` beyond the ``Storage`` contract: sparse pages, what each sync makes durable, crashes and
handles, crash points, injected failures, capacity, and a crash sweep over a small product.

Outcomes that depend on the seed are checked over fixed ranges of seeds, so nothing here can flake.
"""

from __future__ import annotations

import errno
import struct
import zlib

import pytest

from cluster.storage import SimDisk, SimStorage, SimulatedCrash, Storage, StorageError, SyncLevel
from cluster.storage.sim import PAGE_SIZE

SEEDS = range(64)
SEGMENT = 128 * 1024 * 1024


def power_loss_outcomes(scenario: object, seeds: range = SEEDS) -> set[object]:
    """The set of results of ``scenario(storage)`` after a power loss, over ``seeds``."""
    assert callable(scenario)
    results = set()
    for seed in seeds:
        disk = SimDisk(seed)
        storage = disk.storage("d")
        scenario(storage)
        disk.crash(power_loss=True)
        results.add(snapshot(storage))
    return results


def snapshot(storage: Storage) -> tuple[tuple[str, bytes], ...]:
    return tuple((name, storage.read_file(name)) for name in storage.list())


# ----------------------------------------------------------------------------- disk and directories


def test_locations_and_directories() -> None:
    disk = SimDisk(3, label="node1")
    archive = disk.storage("archive")
    nested = disk.storage("cluster/state")
    assert archive.location == "sim://node1/archive"
    assert nested.location == "sim://node1/cluster/state"
    assert disk.storage("archive").location == archive.location
    assert disk.directories() == ["archive", "cluster/state"]
    archive.open("f", create=True).close()
    assert nested.list() == [] and disk.storage("archive").list() == ["f"]
    with archive.open("f") as file:
        assert file.location == "sim://node1/archive/f"


@pytest.mark.parametrize("name", ["", ".", "..", "a//b", "/a", "a/", "a/../b", "a\x00"])
def test_directory_names_are_checked(name: str) -> None:
    with pytest.raises(StorageError) as caught:
        SimDisk(0).storage(name)
    assert caught.value.errno == errno.EINVAL


@pytest.mark.parametrize(
    "kwargs", [{"seed": "1"}, {"seed": 1, "capacity_bytes": -1}, {"seed": 1, "label": "a/b"}]
)
def test_disk_arguments_are_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(StorageError) as caught:
        SimDisk(**kwargs)  # type: ignore[arg-type]
    assert caught.value.errno == errno.EINVAL


def test_files_are_sparse() -> None:
    disk = SimDisk(0)
    with disk.storage("d").open("0.rec", create=True) as file:
        file.truncate(SEGMENT)
        assert disk.used_bytes == 0
        file.write(SEGMENT - 1, b"x")
        file.write(PAGE_SIZE - 1, b"yz")  # straddles pages 0 and 1
        assert disk.used_bytes == 3 * PAGE_SIZE
        file.truncate(PAGE_SIZE)
        assert disk.used_bytes == PAGE_SIZE
        file.truncate(SEGMENT)
        assert file.read(PAGE_SIZE - 1, 2) == b"y\x00"


# ------------------------------------------------------------------------------- what sync makes durable


def test_synced_data_and_length_survive_every_power_loss() -> None:
    def scenario(storage: Storage) -> None:
        with storage.open("f", create=True) as file:
            file.write(0, b"synced")
            file.truncate(PAGE_SIZE * 3)
            file.sync(SyncLevel.DATA)

    assert power_loss_outcomes(scenario) == {(("f", b"synced" + bytes(PAGE_SIZE * 3 - 6)),)}


@pytest.mark.parametrize("level", [SyncLevel.DATA, SyncLevel.ALL])
def test_sync_data_and_all_are_equal_here(level: SyncLevel) -> None:
    def scenario(storage: Storage) -> None:
        with storage.open("f", create=True) as file:
            file.write(0, b"x" * 100)
            file.sync(level)
            file.truncate(10)
            file.sync(level)

    assert power_loss_outcomes(scenario) == {(("f", b"x" * 10),)}


def test_sync_none_makes_nothing_durable() -> None:
    def scenario(storage: Storage) -> None:
        with storage.open("f", create=True) as file:
            file.sync(SyncLevel.DATA)
            file.write(0, b"data")
            file.sync(SyncLevel.NONE)

    outcomes = power_loss_outcomes(scenario)
    assert (("f", b""),) in outcomes and (("f", b"data"),) in outcomes


def test_an_unsynced_creation_may_be_lost_and_a_synced_one_is_not() -> None:
    def unsynced(storage: Storage) -> None:
        with storage.open("f", create=True) as file:
            file.write(0, b"data")
            file.sync(SyncLevel.NONE)

    def file_synced(storage: Storage) -> None:
        with storage.open("f", create=True) as file:
            file.write(0, b"data")
            file.sync(SyncLevel.DATA)

    def directory_synced(storage: Storage) -> None:
        with storage.open("f", create=True) as file:
            file.write(0, b"data")
        storage.sync_directory()

    assert {outcome[:1] for outcome in power_loss_outcomes(unsynced)} >= {(), (("f", b"data"),)}
    assert power_loss_outcomes(file_synced) == {(("f", b"data"),)}
    outcomes = power_loss_outcomes(directory_synced)
    assert all(len(outcome) == 1 for outcome in outcomes)  # the entry is durable, the data are not
    assert (("f", b""),) in outcomes and (("f", b"data"),) in outcomes


def test_a_deletion_is_durable_only_after_sync_directory() -> None:
    def create(storage: Storage) -> None:
        with storage.open("f", create=True) as file:
            file.write(0, b"old")
            file.sync(SyncLevel.DATA)

    def unsynced_delete(storage: Storage) -> None:
        create(storage)
        storage.delete("f")

    def synced_delete(storage: Storage) -> None:
        unsynced_delete(storage)
        storage.sync_directory()

    assert power_loss_outcomes(unsynced_delete) == {(), (("f", b"old"),)}
    assert power_loss_outcomes(synced_delete) == {()}


def test_a_recreated_name_holds_the_old_or_the_new_file() -> None:
    def scenario(storage: Storage) -> None:
        with storage.open("f", create=True) as file:
            file.write(0, b"old")
            file.sync(SyncLevel.DATA)
        storage.delete("f")
        with storage.open("f", create=True) as file:
            file.write(0, b"new")

    outcomes = power_loss_outcomes(scenario)
    assert outcomes <= {(("f", b"old"),), (("f", b"new"),), (("f", b""),), (("f", b"n"),), (("f", b"ne"),)}
    assert (("f", b"old"),) in outcomes and (("f", b"new"),) in outcomes


def test_a_rename_is_durable_only_after_sync_directory() -> None:
    def create(storage: Storage) -> None:
        for name, data in (("f", b"old"), ("f.tmp", b"new")):
            with storage.open(name, create=True) as file:
                file.write(0, data)
                file.sync(SyncLevel.DATA)

    def unsynced_rename(storage: Storage) -> None:
        create(storage)
        storage.rename("f.tmp", "f")

    def synced_rename(storage: Storage) -> None:
        unsynced_rename(storage)
        storage.sync_directory()

    outcomes = power_loss_outcomes(unsynced_rename)
    assert {dict(outcome)["f"] for outcome in outcomes} == {b"old", b"new"}  # one file or the other
    assert {"f.tmp" in dict(outcome) for outcome in outcomes} == {True, False}
    assert power_loss_outcomes(synced_rename) == {(("f", b"new"),)}


def test_replace_file_leaves_the_old_or_the_new_bytes_whole_at_every_crash_point() -> None:
    def prepare(storage: Storage) -> None:
        storage.replace_file("f", b"old bytes")

    first = SimDisk(0)
    prepare(first.storage("d"))
    start = first.operation_count
    first.storage("d").replace_file("f", b"the new bytes")
    operations = first.operation_count - start
    assert operations == 6  # create, truncate, write, sync, rename, sync_directory
    for seed in SEEDS:
        for crash_point in range(1, operations + 1):
            disk = SimDisk(seed)
            storage = disk.storage("d")
            prepare(storage)
            disk.crash_at(disk.operation_count + crash_point)
            with pytest.raises(SimulatedCrash):
                storage.replace_file("f", b"the new bytes")
            disk.crash(power_loss=True)
            assert storage.read_file("f") in (b"old bytes", b"the new bytes"), (seed, crash_point)
            if crash_point == operations:
                assert storage.read_file("f") == b"the new bytes"


def test_syncing_a_deleted_file_does_not_bring_its_name_back() -> None:
    def scenario(storage: Storage) -> None:
        file = storage.open("f", create=True)
        storage.sync_directory()
        storage.delete("f")
        storage.sync_directory()
        file.write(0, b"orphan")
        file.sync(SyncLevel.ALL)
        file.close()

    assert power_loss_outcomes(scenario) == {()}


def test_a_failed_sync_leaves_the_data_pending() -> None:
    def scenario(storage: Storage) -> None:
        assert isinstance(storage, SimStorage)
        with storage.open("f", create=True) as file:
            file.sync(SyncLevel.DATA)
            file.write(0, b"data")
            storage.disk.fail_next("sync")
            with pytest.raises(StorageError):
                file.sync(SyncLevel.DATA)

    outcomes = power_loss_outcomes(scenario)
    assert (("f", b""),) in outcomes and (("f", b"data"),) in outcomes

    def retried(storage: Storage) -> None:
        scenario(storage)
        with storage.open("f") as file:
            file.sync(SyncLevel.DATA)

    assert power_loss_outcomes(retried) == {(("f", b"data"),)}


# ------------------------------------------------------------------------------- crashes and handles


@pytest.mark.parametrize("power_loss", [True, False])
def test_open_files_die_with_the_process(power_loss: bool) -> None:
    disk = SimDisk(5)
    storage = disk.storage("d")
    file = storage.open("f", create=True)
    file.write(0, b"data")
    file.sync(SyncLevel.DATA)
    disk.crash(power_loss=power_loss)
    for call in (lambda: file.read(0, 4), lambda: file.write(0, b"x"), file.size):
        with pytest.raises(StorageError) as caught:
            call()
        assert caught.value.errno == errno.EBADF
        assert "crashed" in str(caught.value)
    file.close()  # a no-op
    assert storage.read_file("f") == b"data"  # the view goes on working
    with disk.storage("d").open("f") as again:
        again.write(4, b"!")
        assert again.read(0, 10) == b"data!"
    assert disk.crashes == 1


def test_process_crash_keeps_unsynced_creations_and_deletions() -> None:
    disk = SimDisk(9)
    storage = disk.storage("d")
    with storage.open("gone", create=True) as file:
        file.sync(SyncLevel.DATA)
    storage.delete("gone")
    with storage.open("new", create=True) as file:
        file.write(0, b"page cache")
    disk.crash(power_loss=False)
    assert snapshot(storage) == (("new", b"page cache"),)


def test_a_deleted_open_file_holds_its_pages_until_closed() -> None:
    disk = SimDisk(0)
    storage = disk.storage("d")
    file = storage.open("f", create=True)
    file.write(0, bytes(PAGE_SIZE * 2))
    storage.delete("f")
    assert disk.used_bytes == 2 * PAGE_SIZE
    file.write(PAGE_SIZE * 2, b"x")
    assert disk.used_bytes == 3 * PAGE_SIZE
    file.close()
    assert disk.used_bytes == 0


def test_crash_recounts_space_from_what_survived() -> None:
    disk = SimDisk(0)
    storage = disk.storage("d")
    with storage.open("f", create=True) as file:
        file.write(0, bytes(PAGE_SIZE * 4))
        file.sync(SyncLevel.DATA)
    with storage.open("g", create=True) as file:
        file.write(0, b"x")
    storage.delete("g")  # pages freed at once ...
    disk.crash(power_loss=False)
    assert disk.used_bytes == 4 * PAGE_SIZE  # ... and gone with the process


@pytest.mark.parametrize("power_loss", [True, False])
def test_handles_lost_in_a_crash_do_not_pin_space(power_loss: bool) -> None:
    disk = SimDisk(0)
    storage = disk.storage("d")
    file = storage.open("f", create=True)
    file.write(0, b"x")
    file.sync(SyncLevel.DATA)
    disk.crash(power_loss=power_loss)
    storage.delete("f")
    assert disk.used_bytes == 0
    file.close()
    assert disk.used_bytes == 0


# ------------------------------------------------------------------------------------- crash points


def test_only_successful_mutations_are_counted() -> None:
    disk = SimDisk(0)
    storage = disk.storage("d")
    file = storage.open("f", create=True)  # 1
    storage.open("f", create=True).close()  # an existing file: not a creation
    file.write(0, b"abc")  # 2
    file.read(0, 3)
    file.read_into(0, bytearray(3))
    file.size()
    storage.exists("f")
    storage.list()
    file.truncate(1)  # 3
    file.sync(SyncLevel.NONE)  # 4
    file.sync(SyncLevel.DATA)  # 5
    storage.sync_directory()  # 6
    disk.fail_next("write")
    with pytest.raises(StorageError):
        file.write(0, b"x")  # failed: not counted
    with pytest.raises(StorageError):
        storage.open("missing")
    file.close()
    storage.delete("f")  # 7
    assert disk.operation_count == 7


def test_a_simulated_crash_gets_past_except_exception_and_halts_the_disk() -> None:
    disk = SimDisk(0)
    storage = disk.storage("d")
    file = storage.open("f", create=True)
    disk.crash_at(disk.operation_count + 2)
    file.write(0, b"first")
    swallowed = False
    with pytest.raises(SimulatedCrash) as caught:
        try:
            file.write(5, b"second")
        except Exception:  # product code's catch-all must not stop a crash
            swallowed = True
        finally:
            # a finally block cannot write after the crash either
            with pytest.raises(SimulatedCrash):
                file.write(0, b"late")
    assert not swallowed
    assert not isinstance(caught.value, Exception)
    assert caught.value.operation == 3
    assert "operation 3" in str(caught.value) and "write" in str(caught.value)
    for call in (
        lambda: file.read(0, 1),
        lambda: storage.open("f"),
        lambda: storage.exists("f"),
        lambda: storage.delete("f"),
        storage.sync_directory,
    ):
        with pytest.raises(SimulatedCrash):
            call()
    file.close()  # closing is allowed
    disk.crash(power_loss=False)
    assert storage.read_file("f") == b"firstsecond"  # the crashing write was applied


def test_crash_disarms_what_was_armed() -> None:
    disk = SimDisk(0)
    storage = disk.storage("d")
    disk.crash_at(5)
    disk.fail_next("any")
    disk.crash()
    with storage.open("f", create=True) as file:
        for offset in range(10):
            file.write(offset, b"x")
    assert disk.operation_count == 11 and not disk.halted


# ---------------------------------------------------------------------------------- injected failures


def state(disk: SimDisk) -> tuple[object, ...]:
    directories = [(name, snapshot(disk.storage(name))) for name in disk.directories()]
    return (*directories, disk.operation_count, disk.used_bytes)


def prepared() -> tuple[SimDisk, Storage]:
    disk = SimDisk(0)
    storage = disk.storage("d")
    for name in ("a", "b"):
        with storage.open(name, create=True) as file:
            file.write(0, name.encode() * 10)
    return disk, storage


@pytest.mark.parametrize(
    "operation, call",
    [
        ("write", lambda s: s.open("a").write(3, b"zz")),
        ("truncate", lambda s: s.open("a").truncate(2)),
        ("sync", lambda s: s.open("a").sync(SyncLevel.DATA)),
        ("create", lambda s: s.open("c", create=True)),
        ("delete", lambda s: s.delete("a")),
        ("sync_directory", lambda s: s.sync_directory()),
        ("rename", lambda s: s.rename("a", "b")),
        ("read", lambda s: s.open("a").read(0, 1)),
        ("read", lambda s: s.open("a").read_into(0, bytearray(1))),
        ("any", lambda s: s.open("a").write(0, b"q")),
        ("any", lambda s: s.delete("b")),
    ],
)
def test_fail_next_fails_without_doing_anything(operation: str, call: object) -> None:
    assert callable(call)
    disk, storage = prepared()
    before = state(disk)
    disk.fail_next(operation, errno.EROFS)  # type: ignore[arg-type]
    with pytest.raises(StorageError) as caught:
        call(storage)
    assert caught.value.errno == errno.EROFS
    assert "injected" in str(caught.value)
    assert state(disk) == before
    call(storage)  # once only


def test_fail_next_by_name_and_count() -> None:
    disk, storage = prepared()
    disk.fail_next("write", name="b", count=2)
    a, b = storage.open("a"), storage.open("b")
    a.write(0, b"A")  # another file: unaffected
    for _ in range(2):
        with pytest.raises(StorageError) as caught:
            b.write(0, b"B")
        assert caught.value.errno == errno.EIO
    b.write(0, b"B")
    assert storage.read_file("a")[:1] == b"A" and storage.read_file("b")[:1] == b"B"


def test_any_does_not_fail_reads_and_rules_match_in_order() -> None:
    disk, storage = prepared()
    disk.fail_next("any", errno.EIO)
    disk.fail_next("write", errno.ENOSPC)
    with storage.open("a") as file:
        assert file.read(0, 1) == b"a"
        with pytest.raises(StorageError) as first:
            file.write(0, b"x")
        with pytest.raises(StorageError) as second:
            file.write(0, b"x")
        file.write(0, b"x")
    assert (first.value.errno, second.value.errno) == (errno.EIO, errno.ENOSPC)


@pytest.mark.parametrize(
    "args, kwargs",
    [(("move",), {}), (("write",), {"count": 0}), (("write", 0), {}), (("write",), {"name": "a/b"})],
)
def test_fail_next_arguments_are_checked(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    with pytest.raises(StorageError) as caught:
        SimDisk(0).fail_next(*args, **kwargs)  # type: ignore[arg-type]
    assert caught.value.errno == errno.EINVAL


# ------------------------------------------------------------------------------------------ capacity


def test_a_full_disk_refuses_writes_that_allocate_and_changes_nothing() -> None:
    disk = SimDisk(0, capacity_bytes=3 * PAGE_SIZE)
    storage = disk.storage("d")
    file = storage.open("f", create=True)
    file.truncate(SEGMENT)  # sparse: no space needed
    file.write(0, bytes(2 * PAGE_SIZE))
    before = state(disk)
    with pytest.raises(StorageError) as caught:
        file.write(PAGE_SIZE * 2 - 1, bytes(PAGE_SIZE + 2))  # needs two more pages
    assert caught.value.errno == errno.ENOSPC
    assert "no space" in str(caught.value)
    assert state(disk) == before
    file.write(10, b"in place")  # allocated pages can be rewritten
    file.write(PAGE_SIZE * 2, b"one more page")
    with pytest.raises(StorageError):
        file.write(PAGE_SIZE * 5, b"x")
    storage.delete("f")
    file.close()
    assert disk.used_bytes == 0
    with storage.open("g", create=True) as again:
        again.write(0, bytes(3 * PAGE_SIZE))


# --------------------------------------------------------------------- a crash sweep over a product

RECORD_HEADER = struct.Struct("<II")  # length, crc32 of the payload


def append_records(storage: Storage, payloads: list[bytes], acknowledged: list[bytes]) -> None:
    """A small product: append each record, sync it, then acknowledge it."""
    with storage.open("log", create=True) as file:
        position = file.size()
        for payload in payloads:
            record = RECORD_HEADER.pack(len(payload), zlib.crc32(payload)) + payload
            file.write(position, record)
            file.sync(SyncLevel.DATA)
            position += len(record)
            acknowledged.append(payload)


def recover(storage: Storage) -> list[bytes]:
    """The records of the log up to the first that is not whole."""
    if not storage.exists("log"):
        return []
    data = storage.read_file("log")
    records, position = [], 0
    while position + RECORD_HEADER.size <= len(data):
        length, crc = RECORD_HEADER.unpack_from(data, position)
        payload = data[position + RECORD_HEADER.size : position + RECORD_HEADER.size + length]
        if length == 0 or len(payload) < length or zlib.crc32(payload) != crc:
            break
        records.append(payload)
        position += RECORD_HEADER.size + length
    return records


def test_crash_sweep_loses_no_acknowledged_record() -> None:
    payloads = [b"one", b"two" * 50, b"three" * 2000]
    counting = SimDisk(0)
    append_records(counting.storage("log"), payloads, [])
    points = counting.operation_count
    assert points == 1 + 2 * len(payloads)  # create, then a write and a sync per record
    survivors = set()
    for point in range(1, points + 1):
        for seed in range(8):
            for power_loss in (True, False):
                disk = SimDisk(seed)
                acknowledged: list[bytes] = []
                disk.crash_at(point)
                with pytest.raises(SimulatedCrash):
                    append_records(disk.storage("log"), payloads, acknowledged)
                disk.crash(power_loss=power_loss)
                recovered = recover(disk.storage("log"))
                assert recovered[: len(acknowledged)] == acknowledged
                assert recovered == payloads[: len(recovered)]
                if not power_loss:
                    assert len(recovered) == point // 2  # every write done is there
                survivors.add(len(recovered))
    assert survivors == {0, 1, 2, 3}


def test_another_processs_operations_reach_no_crash_point_or_injected_failure_and_are_not_counted() -> None:
    disk = SimDisk(seed=31)
    own = disk.storage("cluster")
    tool = disk.storage("cluster", another_process=True)
    with own.open("state.dat", create=True) as file:
        file.write(0, b"node")
    counted = disk.operation_count
    disk.crash_at(counted + 1)
    disk.fail_next("write", name="control.dat")
    with tool.open("control.dat", create=True) as file:  # the tool's create and write: no crash, no EIO
        file.write(0, b"request")
        file.sync(SyncLevel.DATA)
    assert disk.operation_count == counted and not disk.halted
    # the failure armed for the node is still the node's, and so is the crash point
    with pytest.raises(StorageError) as failed, own.open("control.dat") as file:
        file.write(0, b"x")
    assert failed.value.errno == errno.EIO
    with pytest.raises(SimulatedCrash), own.open("state.dat") as file:
        file.write(0, b"next")
    assert tool.read_file("control.dat") == b"request"  # the other process goes on while the node is down
    disk.crash()
    assert own.read_file("control.dat") == b"request"  # synced: it survives the power loss
