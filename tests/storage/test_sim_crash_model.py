"""``SimDisk``'s crash model, checked against an independent model of what may survive.

The model (``Model`` below) is written from the rules in ``cluster/storage/sim.py``'s docstring, not from
its code: each file has the bytes it had when last synced and the writes and truncates since, in order;
each directory has its current and its durable entries. After a power loss every name must hold one of
the files its entries allow, with the synced bytes plus a prefix of the later operations, the last one
possibly torn; after a process crash nothing may be lost. Programs and seeds come from hypothesis.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.storage import SimDisk, SimulatedCrash, Storage, StorageError, SyncLevel

NAMES = ["a", "b", "c"]

# A pending operation as the model keeps it: ("write", offset, data) or ("truncate", length).
Pending = tuple[str, int, bytes]


def write_into(image: bytearray, offset: int, data: bytes) -> None:
    if not data:
        return
    if offset > len(image):
        image.extend(bytes(offset - len(image)))
    image[offset : offset + len(data)] = data


def truncate(image: bytearray, length: int) -> None:
    if length < len(image):
        del image[length:]
    else:
        image.extend(bytes(length - len(image)))


def apply(image: bytearray, op: Pending) -> None:
    if op[0] == "write":
        write_into(image, op[1], op[2])
    else:
        truncate(image, op[1])


@dataclass(eq=False)
class File:
    durable: bytearray = field(default_factory=bytearray)
    pending: list[Pending] = field(default_factory=list)
    current: bytearray = field(default_factory=bytearray)

    def outcomes_include(self, actual: bytes) -> bool:
        """Whether ``actual`` is the durable bytes plus a prefix of the pending operations, the last
        of which, if a write, may be torn (only a prefix of its bytes landed)."""
        image = bytearray(self.durable)
        if actual == image:
            return True
        for op in self.pending:
            if op[0] == "write":
                for kept in range(len(op[2]) + 1):
                    torn = bytearray(image)
                    write_into(torn, op[1], op[2][:kept])
                    if torn == actual:
                        return True
            apply(image, op)
            if image == actual:
                return True
        return False

    def untouched_synced_bytes(self) -> list[int]:
        """Positions of synced bytes that no pending write or truncate touches."""
        touched: set[int] = set()
        for op in self.pending:
            if op[0] == "write":
                touched.update(range(op[1], op[1] + len(op[2])))
            else:
                touched.update(range(op[1], len(self.durable)))
        return [p for p in range(len(self.durable)) if p not in touched]


@dataclass
class Model:
    """What the program did, by the rules of the crash model."""

    current: dict[str, File] = field(default_factory=dict)
    durable: dict[str, File] = field(default_factory=dict)
    operations: int = 0

    def run(self, storage: Storage, op: tuple[object, ...]) -> None:
        """Do ``op`` on ``storage`` and in the model (ops on missing names are skipped)."""
        kind = op[0]
        if kind == "sync_directory":
            self.operations += 1  # counted before the call: a crash point fires inside it
            storage.sync_directory()
            self.durable = dict(self.current)
            return
        name = op[1]
        assert isinstance(name, str)
        node = self.current.get(name)
        if kind == "create":
            if node is None:
                self.operations += 1
                self.current[name] = File()
            storage.open(name, create=True).close()
            return
        if node is None:
            return
        self.operations += 1
        if kind == "delete":
            del self.current[name]
            storage.delete(name)
            return
        with storage.open(name) as file:
            if kind == "write":
                offset, data = op[2], op[3]
                assert isinstance(offset, int) and isinstance(data, bytes)
                node.pending.append(("write", offset, data))
                write_into(node.current, offset, data)
                file.write(offset, data)
            elif kind == "truncate":
                length = op[2]
                assert isinstance(length, int)
                node.pending.append(("truncate", length, b""))
                truncate(node.current, length)
                file.truncate(length)
            else:
                level = op[2]
                assert isinstance(level, SyncLevel)
                if level != SyncLevel.NONE:
                    node.durable = bytearray(node.current)
                    node.pending = []
                    self.durable[name] = node
                file.sync(level)

    def check_power_loss(self, storage: Storage) -> None:
        for name in NAMES:
            allowed = [self.current.get(name), self.durable.get(name)]
            if self.current.get(name) is self.durable.get(name):
                allowed = allowed[:1]
            if not storage.exists(name):
                assert None in allowed, f"{name} vanished though its entry was durable"
                continue
            actual = storage.read_file(name)
            files = [node for node in allowed if node is not None]
            assert files, f"{name} came back though it never durably existed"
            assert any(node.outcomes_include(actual) for node in files), (
                f"{name}: {actual!r} is no prefix outcome"
            )
            if len(files) == 1:
                for position in files[0].untouched_synced_bytes():
                    assert actual[position] == files[0].durable[position], f"{name}: synced byte lost"

    def check_process_crash(self, storage: Storage) -> None:
        assert storage.list() == sorted(self.current)
        for name, node in self.current.items():
            assert storage.read_file(name) == node.current


names = st.sampled_from(NAMES)
program_ops = st.one_of(
    st.tuples(st.just("create"), names),
    st.tuples(st.just("delete"), names),
    st.tuples(st.just("sync_directory")),
    st.tuples(st.just("write"), names, st.integers(0, 600), st.binary(min_size=0, max_size=40)),
    st.tuples(st.just("write"), names, st.integers(0, 600), st.binary(min_size=0, max_size=40)),
    st.tuples(st.just("truncate"), names, st.integers(0, 700)),
    st.tuples(st.just("sync"), names, st.sampled_from(list(SyncLevel))),
)
programs = st.lists(program_ops, max_size=25)
SETTINGS = settings(max_examples=200, deadline=None)


def run(disk: SimDisk, program: list[tuple[object, ...]]) -> Model:
    model = Model()
    storage = disk.storage("d")
    for op in program:
        model.run(storage, op)
    return model


@SETTINGS
@given(program=programs, seed=st.integers(0, 2**32))
def test_power_loss_keeps_the_synced_and_a_torn_prefix_of_the_rest(
    program: list[tuple[object, ...]], seed: int
) -> None:
    disk = SimDisk(seed)
    model = run(disk, program)
    assert disk.operation_count == model.operations
    disk.crash(power_loss=True)
    model.check_power_loss(disk.storage("d"))


@SETTINGS
@given(program=programs, seed=st.integers(0, 2**32))
def test_a_process_crash_loses_nothing_and_keeps_the_rest_pending(
    program: list[tuple[object, ...]], seed: int
) -> None:
    disk = SimDisk(seed)
    model = run(disk, program)
    disk.crash(power_loss=False)
    model.check_process_crash(disk.storage("d"))
    disk.crash(power_loss=True)  # what was not synced is still at risk
    model.check_power_loss(disk.storage("d"))


@SETTINGS
@given(program=programs, seed=st.integers(0, 2**32))
def test_the_same_seed_gives_the_same_bytes(program: list[tuple[object, ...]], seed: int) -> None:
    outcomes = []
    for _ in range(2):
        disk = SimDisk(seed)
        run(disk, program)
        disk.crash()
        storage = disk.storage("d")
        outcomes.append({name: storage.read_file(name) for name in storage.list()})
    assert outcomes[0] == outcomes[1]


@SETTINGS
@given(program=programs, data=st.data())
def test_crash_at_n_stops_exactly_at_operation_n(
    program: list[tuple[object, ...]], data: st.DataObject
) -> None:
    total = run(SimDisk(0), program).operations
    if total == 0:
        return
    n = data.draw(st.integers(1, total), label="n")
    power_loss = data.draw(st.booleans(), label="power_loss")
    disk = SimDisk(data.draw(st.integers(0, 2**32), label="seed"))
    disk.crash_at(n)
    model = Model()
    storage = disk.storage("d")
    with pytest.raises(SimulatedCrash) as caught:
        for op in program:
            model.run(storage, op)
    assert caught.value.operation == n
    assert disk.operation_count == n == model.operations  # the crashing operation was the n-th
    assert disk.halted
    with pytest.raises(SimulatedCrash):
        storage.list()  # a halted disk refuses everything until crash()
    disk.crash(power_loss=power_loss)
    assert not disk.halted
    # The crashing operation was applied before the crash: the model, which ran it, is what survived.
    if power_loss:
        model.check_power_loss(disk.storage("d"))
    else:
        model.check_process_crash(disk.storage("d"))


# ------------------------------------------------------------- every outcome of the model happens


def synced_then_two_pending(disk: SimDisk) -> Storage:
    """File ``f`` of directory ``d``: ``AAAA`` synced, then ``BBBB`` and ``CCCC`` written, not synced."""
    storage = disk.storage("d")
    with storage.open("f", create=True) as file:
        file.write(0, b"AAAA")
        file.sync(SyncLevel.DATA)
        file.write(4, b"BBBB")
        file.write(8, b"CCCC")
    return storage


def outcome(seed: int) -> tuple[bytes, bool]:
    """What a power loss leaves of a synced write, two pending ones and an unsynced new file."""
    disk = SimDisk(seed)
    storage = synced_then_two_pending(disk)
    with storage.open("new", create=True) as file:
        file.write(0, b"x")
    disk.crash()
    return storage.read_file("f"), storage.exists("new")


def test_power_loss_covers_none_all_and_torn() -> None:
    seen = {outcome(seed) for seed in range(200)}
    contents = {content for content, _ in seen}
    assert all(content.startswith(b"AAAA") for content in contents)  # synced bytes, always
    assert b"AAAA" in contents  # no pending write survived
    assert b"AAAABBBBCCCC" in contents  # all of them did
    assert {len(content) % 4 for content in contents} == {0, 1, 2, 3}  # some were torn mid-write
    assert {exists for _, exists in seen} == {True, False}  # the unsynced creation, kept and undone


def test_crash_point_zero_or_past_is_refused() -> None:
    disk = SimDisk(1)
    disk.storage("d").open("f", create=True).close()
    for n in (0, 1, -5):
        with pytest.raises(StorageError) as caught:
            disk.crash_at(n)
        assert caught.value.errno == errno.EINVAL
    disk.crash_at(2)
    disk.crash_at(None)  # disarmed
    disk.storage("d").delete("f")
    assert disk.operation_count == 2 and not disk.halted


def test_power_losses_count_the_writes_they_dropped_and_tore() -> None:
    seen = set()
    for seed in range(60):
        disk = SimDisk(seed)
        storage = synced_then_two_pending(disk)
        disk.crash()
        kept = storage.read_file("f")
        counts = (disk.lost_writes, disk.torn_writes)
        seen.add(counts)
        # two pending writes: dropped whole, kept whole, or some kept and the last of those torn
        assert counts in {(2, 0), (0, 0), (1, 1), (0, 1)}
        if counts == (2, 0):
            assert kept == b"AAAA"
        elif counts == (0, 0):
            assert kept == b"AAAABBBBCCCC"
        elif counts == (1, 1):
            assert kept.startswith(b"AAAA") and b"C" not in kept  # B torn, C dropped
        else:
            assert kept.startswith(b"AAAABBBB")  # B kept, C torn
    assert seen == {(2, 0), (0, 0), (1, 1), (0, 1)}


def test_durable_bytes_show_what_a_power_loss_would_surely_keep() -> None:
    disk = SimDisk(3)
    storage = disk.storage("d")
    assert storage.durable_bytes("f") is None
    with storage.open("f", create=True) as file:
        file.write(0, b"AAAA")
        assert storage.durable_bytes("f") is None  # the entry itself is not durable yet
        file.sync(SyncLevel.DATA)
        file.write(4, b"BBBB")
    assert storage.durable_bytes("f") == b"AAAA"
    assert storage.read_file("f") == b"AAAABBBB"
    ops = disk.operation_count
    storage.durable_bytes("f")
    assert disk.operation_count == ops  # reading it is not a storage operation
