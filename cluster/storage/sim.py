"""``SimDisk``: a seeded in-memory disk that keeps what was synced and loses or tears the rest at a crash.

Theory of operation
-------------------
A ``SimDisk`` holds any number of directories; ``disk.storage(name)`` is the ``Storage`` of one of them
(made on first use; ``name`` may have ``/``-separated parts, each a plain name). Directories themselves
always exist: only the files in them come and go. The disk owns one ``random.Random(seed)`` and draws
from it only when power is lost, in a fixed order (directories by name, then names within a directory),
so one seed and one sequence of calls give the same bytes after every crash.

**Files are sparse.** A file is an image: a logical size and a dict of fixed-size pages
(``PAGE_SIZE``, 4 KiB) holding the bytes written; a page that was never written is a hole and reads as
zeros, so a 128 MiB segment made with ``truncate`` costs nothing until it is filled. Bytes at or past
the size are always zero in the pages that exist, so growing a file shows zeros.

**Two images per file.** Each file (an inode: deleting a name leaves open handles working, as on POSIX)
has its *current* image, which every reader sees at once, and its *durable* image, what a power loss
cannot take. Every write and truncate is applied to the current image and also appended, in order, to
the file's *pending* operations. ``sync(DATA)`` and ``sync(ALL)`` replay the pending operations onto the
durable image, so it equals the current one, length included, and empty the list; ``sync(NONE)`` does
nothing. Levels 1 and 2 behave the same here: the only metadata of a simulated file is its length,
which ``fdatasync`` must make durable too, and there is no mtime to tell them apart.

**Directory entries** are durable separately. A directory has its current entries (name -> file) and
its durable ones. A new file's entry becomes durable when the file is synced at level 1 or 2 (as ext4
and XFS commit the entry of a file they fsync) or when ``sync_directory`` runs after it was made; a
deletion becomes durable only through ``sync_directory``, and so does a rename, which changes two
entries: the source name goes, the target name gets the file (an open handle keeps working, and
follows the file to its new name). A file whose entry is durable but which was
never synced has an empty durable image: a power loss leaves it empty or with a prefix of its writes.

**Crashes.** ``disk.crash(power_loss=...)`` ends the process that was using the disk: every ``SimFile``
open on it raises ``StorageError(EBADF)`` from then on (closing one is a no-op), and ``disk.storage``
views show the state after the crash (file handles must be opened again; ``Storage`` views are
stateless and go on working).

* A process crash (``power_loss=False``) loses nothing: the page cache belongs to the kernel, which
  outlives the process. Pending operations stay pending, so a later power loss can still lose them.
* A power loss rebuilds every name from durable state plus seeded luck. For a name whose current and
  durable entries differ (an unsynced creation, deletion, or deletion and re-creation), one draw keeps
  either the current or the durable entry. Each surviving file then becomes its durable image plus one
  seeded choice among its pending operations, each with probability one third: none of them; all of
  them; or the first ``k`` of them for a ``k`` drawn from ``1..len(pending)``, where the ``k``-th, if it
  is a write, is torn -- only a drawn prefix of its bytes (possibly none, possibly all) lands. That is
  what a file system in ordered mode (ext4's default) promises, simplified: writeback proceeds in
  order, so a crash leaves a prefix of the unsynced history, and synced bytes are never lost. The
  result is then durable (it is what the disk holds) and nothing is pending.

  Simplified on purpose: a torn write tears at any byte, not at a sector boundary, and extends the size
  only as far as its kept bytes; each file's draw is independent of every other file's, and each
  name's of every other name's (a real journal orders directory updates; POSIX does not promise it, so
  product code must not rely on it either); a directory's own existence is always durable.

**Crash points.** ``operation_count`` counts every successful mutating call -- a creation (``open`` with
``create`` of a missing file), ``write``, ``truncate``, ``sync`` at any level, ``delete``, ``rename``
and ``sync_directory`` -- numbered from 1 over the life of the disk (crashes do not reset it). Calls that
fail change nothing and are not counted. ``crash_at(n)`` arms operation number ``n`` (an absolute index,
greater than ``operation_count``): that operation is applied to the current image, counted, and then
raises ``SimulatedCrash``. ``SimulatedCrash`` is a ``BaseException``, so product code that catches
``Exception`` cannot swallow it. From then on the disk is *halted*: every call on it (except ``close``)
raises ``SimulatedCrash`` again, so ``finally`` blocks cannot write after the crash, until the test calls
``disk.crash()``, which decides -- power loss or not -- what survived. A crash sweep runs a scenario once
to learn its ``operation_count``, then again for every ``n`` in ``1..count`` with ``crash_at(n)``, calls
``crash`` and checks recovery.

Crash points, injected failures and the halt are the disk's *own process's*: another process working in
its directories (``storage(name, another_process=True)``: an operator's tool writing a node's control
file, a checker reading its files) is not counted, reaches no crash point, meets no injected failure and
goes on while the disk is halted; what it writes is on the same disk, and a power loss treats it as any
unsynced write.

**Injected failures.** ``fail_next(operation, error, name=..., count=...)`` makes the next ``count``
matching calls raise ``StorageError(error)`` without doing anything (rules armed earlier match first).
A failed sync leaves the pending operations pending: the data are still not durable. (Linux can do
worse and drop the dirty pages after a failed ``fsync``; product code must treat a failed sync as
fatal rather than retry it and carry on.)

**Capacity** counts allocated pages of the files' current images (linked files, and deleted ones that
are still open), ``PAGE_SIZE`` bytes each; durable images and pending operations are bookkeeping of the
simulation, not disk space. A write that would allocate pages beyond ``capacity_bytes`` raises
``StorageError(ENOSPC)`` and changes nothing (a real file system may write a part first). A truncate
allocates nothing, so it never fails for space, just as creating a sparse file does not. A power loss
can bring back pages that a lost truncate or deletion had freed and leave the disk over capacity; writes
that allocate then fail until space is freed.

``crash`` also disarms a pending ``crash_at`` and drops the failure rules not yet used: each run after
a crash arms its own.
"""

from __future__ import annotations

import errno
import random
from typing import Final, Literal, Protocol, get_args

from cluster.storage.api import Storage, StorageFile, SyncLevel, check_name
from cluster.storage.errors import StorageError

__all__ = ["PAGE_SIZE", "Operation", "SimDisk", "SimFile", "SimStorage", "SimulatedCrash"]

PAGE_SIZE = 4096
"""Bytes per page of a simulated file: the unit of allocation, sparseness and ``capacity_bytes``."""

Operation = Literal[
    "create", "write", "truncate", "sync", "delete", "rename", "sync_directory", "read", "any"
]
"""What ``SimDisk.fail_next`` can make fail; ``"any"`` is any mutating operation (not ``read``)."""

_OPERATIONS: frozenset[str] = frozenset(get_args(Operation))
_ZEROS = memoryview(bytes(PAGE_SIZE))

# A pending operation: (offset, data) is a write, (length, None) a truncate.
_Op = tuple[int, bytes | None]


class SimulatedCrash(BaseException):
    """The process died at a crash point armed with ``SimDisk.crash_at`` (or touched a halted disk).

    A ``BaseException`` so that ``except Exception`` in product code lets it through, as a real crash
    would. ``operation`` is the number of the operation at which the crash happened."""

    def __init__(self, message: str, operation: int) -> None:
        super().__init__(message)
        self.operation = operation


class _Image:
    """A sparse file image: ``size`` and the pages that were written (see the module docstring)."""

    __slots__ = ("pages", "size")

    def __init__(self) -> None:
        self.pages: dict[int, bytearray] = {}
        self.size = 0

    def copy(self) -> _Image:
        image = _Image()
        image.pages = {index: bytearray(page) for index, page in self.pages.items()}
        image.size = self.size
        return image

    def new_pages(self, offset: int, length: int) -> int:
        """How many pages writing ``length`` bytes at ``offset`` would allocate."""
        if length == 0:
            return 0
        pages = self.pages
        first, last = offset // PAGE_SIZE, (offset + length - 1) // PAGE_SIZE
        return sum(1 for index in range(first, last + 1) if index not in pages)

    def write(self, offset: int, data: bytes | memoryview) -> int:
        """Write ``data`` at ``offset``; return the number of pages allocated."""
        length = len(data)
        if length == 0:
            return 0
        view = memoryview(data)
        pages = self.pages
        added = 0
        index, start = divmod(offset, PAGE_SIZE)
        done = 0
        while done < length:
            count = min(PAGE_SIZE - start, length - done)
            page = pages.get(index)
            if page is None:
                page = pages[index] = bytearray(PAGE_SIZE)
                added += 1
            page[start : start + count] = view[done : done + count]
            done += count
            index += 1
            start = 0
        if offset + length > self.size:
            self.size = offset + length
        return added

    def truncate(self, length: int) -> int:
        """Set the size to ``length``; return the number of pages freed."""
        freed = 0
        if length < self.size:
            pages = self.pages
            keep = -(-length // PAGE_SIZE)  # pages below this index hold bytes below ``length``
            end = -(-self.size // PAGE_SIZE)
            if end - keep < len(pages):
                doomed = [index for index in range(keep, end) if index in pages]
            else:
                doomed = [index for index in pages if index >= keep]
            for index in doomed:
                del pages[index]
            freed = len(doomed)
            tail = length % PAGE_SIZE
            if tail:
                page = pages.get(length // PAGE_SIZE)
                if page is not None:
                    page[tail:] = _ZEROS[tail:]
        self.size = length
        return freed

    def apply(self, op: _Op) -> int:
        """Apply a pending operation; return the change in allocated pages."""
        position, data = op
        if data is None:
            return -self.truncate(position)
        return self.write(position, data)

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        if end <= offset:
            return b""
        pages = self.pages
        index, start = divmod(offset, PAGE_SIZE)
        if start + (end - offset) <= PAGE_SIZE:
            page = pages.get(index)
            if page is None:
                return bytes(end - offset)
            return memoryview(page)[start : start + end - offset].tobytes()
        chunks: list[memoryview] = []
        position = offset
        while position < end:
            count = min(PAGE_SIZE - start, end - position)
            page = pages.get(index)
            chunks.append(_ZEROS[:count] if page is None else memoryview(page)[start : start + count])
            position += count
            index += 1
            start = 0
        return b"".join(chunks)

    def read_into(self, offset: int, view: memoryview) -> int:
        total = min(len(view), self.size - offset)
        if total <= 0:
            return 0
        pages = self.pages
        index, start = divmod(offset, PAGE_SIZE)
        done = 0
        while done < total:
            count = min(PAGE_SIZE - start, total - done)
            page = pages.get(index)
            view[done : done + count] = (
                _ZEROS[:count] if page is None else memoryview(page)[start : start + count]
            )
            done += count
            index += 1
            start = 0
        return total


class _Node:
    """A file (an inode): its images, its pending operations and how many handles have it open."""

    __slots__ = ("current", "directory", "durable", "linked", "name", "open_files", "pending")

    def __init__(self, directory: _Directory, name: str) -> None:
        self.directory = directory
        self.name = name
        self.current = _Image()
        self.durable = _Image()
        self.pending: list[_Op] = []
        self.linked = True
        self.open_files = 0


class _Directory:
    __slots__ = ("durable_entries", "entries", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.entries: dict[str, _Node] = {}
        self.durable_entries: dict[str, _Node] = {}


class _Failure:
    __slots__ = ("error", "name", "operation", "remaining")

    def __init__(self, operation: str, error: int, name: str | None, remaining: int) -> None:
        self.operation = operation
        self.error = error
        self.name = name
        self.remaining = remaining

    def matches(self, operation: str, name: str | None) -> bool:
        if self.operation != operation and not (self.operation == "any" and operation != "read"):
            return False
        return self.name is None or self.name == name


def _check_range(where: str, offset: int, length: int) -> None:
    if offset < 0 or length < 0:
        raise StorageError(errno.EINVAL, f"{where}: negative offset or length ({offset}, {length})")


def _check_level(where: str, level: SyncLevel | int) -> SyncLevel:
    if isinstance(level, bool) or level not in (0, 1, 2):
        raise StorageError(errno.EINVAL, f"{where}: sync level {level!r} is not 0, 1 or 2")
    return SyncLevel(level)


class SimDisk:
    """An in-memory disk of directories of sparse files with a seeded crash model (module docstring).

    ``label`` names the disk in ``sim://<label>/<directory>`` locations and in messages."""

    page_size = PAGE_SIZE

    def __init__(self, seed: int, *, capacity_bytes: int | None = None, label: str = "disk") -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise StorageError(errno.EINVAL, f"SimDisk seed={seed!r} is not an integer")
        if capacity_bytes is not None and (
            isinstance(capacity_bytes, bool) or not isinstance(capacity_bytes, int) or capacity_bytes < 0
        ):
            raise StorageError(errno.EINVAL, f"SimDisk capacity_bytes={capacity_bytes!r} is not >= 0")
        if not isinstance(label, str) or not label or "/" in label:
            raise StorageError(errno.EINVAL, f"SimDisk label={label!r} is not a plain non-empty name")
        self.seed = seed
        self.random = random.Random(seed)
        self.label = label
        self.capacity_bytes = capacity_bytes
        self.operation_count = 0
        """Successful mutating operations so far (see "Crash points" in the module docstring)."""
        self.crashes = 0
        """How many times ``crash`` has run."""
        self.lost_writes = 0
        """Unsynced writes and truncations that power losses dropped whole."""
        self.torn_writes = 0
        """Unsynced writes that power losses tore (a prefix of the bytes landed)."""
        self._directories: dict[str, _Directory] = {}
        self._crash_at: int | None = None
        self._halted: SimulatedCrash | None = None
        self._generation = 0
        self._failures: list[_Failure] = []
        self._used_pages = 0

    def __repr__(self) -> str:
        return f"SimDisk(seed={self.seed}, label={self.label!r}, operations={self.operation_count})"

    # ------------------------------------------------------------------------------ the test's controls

    def storage(self, name: str, *, another_process: bool = False) -> SimStorage:
        """The directory ``name`` (made on first use): ``/``-separated plain names.

        With ``another_process``, the directory as a process beside the disk's own sees it -- an
        operator's tool writing a node's control file, a checker reading its files: its operations are
        not the disk's process's, so no crash point, injected failure or halt applies to them, and they
        are not counted. What it writes is on the same disk: a power loss treats it as any unsynced
        write."""
        if not isinstance(name, str):
            raise StorageError(errno.EINVAL, f"directory name {name!r} is not a string")
        for part in name.split("/"):
            check_name(part)
        directory = self._directories.get(name)
        if directory is None:
            directory = self._directories[name] = _Directory(name)
        return SimStorage(self, directory, hooks=_NO_FAULTS if another_process else self)

    def directories(self) -> list[str]:
        """The names of the directories made so far, sorted."""
        return sorted(self._directories)

    @property
    def used_bytes(self) -> int:
        """Bytes allocated by the files' current images (what ``capacity_bytes`` limits)."""
        return self._used_pages * PAGE_SIZE

    @property
    def halted(self) -> bool:
        """Whether a crash point fired and ``crash`` has not run since."""
        return self._halted is not None

    def crash_at(self, operation: int | None) -> None:
        """Crash at the operation numbered ``operation`` (absolute, > ``operation_count``); ``None``
        disarms."""
        if operation is not None and (
            isinstance(operation, bool) or not isinstance(operation, int) or operation <= self.operation_count
        ):
            raise StorageError(
                errno.EINVAL,
                f"crash_at({operation!r}): not an operation number after {self.operation_count}",
            )
        self._crash_at = operation

    def fail_next(
        self, operation: Operation, error: int = errno.EIO, *, name: str | None = None, count: int = 1
    ) -> None:
        """Make the next ``count`` calls of ``operation`` (on file ``name`` if given) raise
        ``StorageError(error)`` and do nothing."""
        if operation not in _OPERATIONS:
            raise StorageError(errno.EINVAL, f"fail_next: unknown operation {operation!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise StorageError(errno.EINVAL, f"fail_next: count={count!r} is not a positive integer")
        if isinstance(error, bool) or not isinstance(error, int) or error <= 0:
            raise StorageError(errno.EINVAL, f"fail_next: error={error!r} is not an errno")
        if name is not None:
            check_name(name)
        self._failures.append(_Failure(operation, error, name, count))

    def clear_failures(self) -> None:
        """Forget every failure ``fail_next`` armed that has not happened yet."""
        self._failures.clear()

    def crash(self, *, power_loss: bool = True) -> None:
        """End the process using the disk; with ``power_loss`` also lose or tear what was not synced."""
        self.crashes += 1
        self._generation += 1
        self._halted = None
        self._crash_at = None
        self._failures.clear()
        rng = self.random
        used = 0
        for dir_name in sorted(self._directories):
            directory = self._directories[dir_name]
            if power_loss:
                entries: dict[str, _Node] = {}
                for name in sorted(directory.entries.keys() | directory.durable_entries.keys()):
                    current = directory.entries.get(name)
                    durable = directory.durable_entries.get(name)
                    chosen = current
                    if current is not durable and rng.random() < 0.5:
                        chosen = durable
                    if chosen is not None:
                        entries[name] = chosen
                for node in entries.values():
                    lost, torn = _lose_power(node, rng)
                    self.lost_writes += lost
                    self.torn_writes += torn
                directory.entries = entries
                directory.durable_entries = dict(entries)
            for node in directory.entries.values():
                node.open_files = 0
                node.linked = True
                used += len(node.current.pages)
        self._used_pages = used

    # ------------------------------------------------------------------------------------ the machinery

    def _check_alive(self) -> None:
        if self._halted is not None:
            raise SimulatedCrash(
                f"{self.label}: the process crashed at operation {self._halted.operation}; "
                "call SimDisk.crash() to restart",
                self._halted.operation,
            )

    def _inject(self, operation: str, name: str | None, where: str) -> None:
        for failure in self._failures:
            if failure.matches(operation, name):
                failure.remaining -= 1
                if failure.remaining == 0:
                    self._failures.remove(failure)
                raise StorageError(failure.error, f"{operation} {where}: injected failure")

    def _done(self, operation: str, where: str) -> None:
        self.operation_count += 1
        if self.operation_count == self._crash_at:
            self._crash_at = None
            crash = SimulatedCrash(
                f"{self.label}: simulated crash at operation {self.operation_count} ({operation} {where})",
                self.operation_count,
            )
            self._halted = crash
            raise crash

    def _allocate(self, pages: int, where: str) -> None:
        if (
            pages
            and self.capacity_bytes is not None
            and (self._used_pages + pages) * PAGE_SIZE > self.capacity_bytes
        ):
            raise StorageError(
                errno.ENOSPC,
                f"write {where}: no space left on {self.label} "
                f"({self.used_bytes} of {self.capacity_bytes} bytes used, {pages} more pages needed)",
            )


def _lose_power(node: _Node, rng: random.Random) -> tuple[int, int]:
    """Make ``node`` its durable image plus a seeded prefix of its pending operations, the last torn;
    return how many pending operations were lost whole and how many torn (0 or 1)."""
    pending = node.pending
    if not pending:
        return 0, 0  # the current image is the durable one already
    image = node.durable
    choice = rng.randrange(3)
    if choice == 1:  # all of them: the current image is what survived
        for op in pending:
            image.apply(op)
        node.pending = []
        return 0, 0
    torn = 0
    lost = len(pending)
    if choice == 2:
        keep = rng.randint(1, len(pending))
        for op in pending[: keep - 1]:
            image.apply(op)
        position, data = pending[keep - 1]
        if data is None:
            image.truncate(position)
        else:
            image.write(position, data[: rng.randint(0, len(data))])
            torn = 1
        lost = len(pending) - keep
    node.current = image.copy()
    node.pending = []
    return lost, torn


class _FaultHooks(Protocol):
    """Where a storage operation meets the disk's fault model: ``SimDisk`` itself, or ``_NO_FAULTS``."""

    def _check_alive(self) -> None: ...

    def _inject(self, operation: str, name: str | None, where: str) -> None: ...

    def _done(self, operation: str, where: str) -> None: ...


class _NoFaults:
    """The fault hooks of another process's operations: none apply (``SimDisk.storage``)."""

    def _check_alive(self) -> None:
        pass

    def _inject(self, operation: str, name: str | None, where: str) -> None:
        pass

    def _done(self, operation: str, where: str) -> None:
        pass


_NO_FAULTS: Final = _NoFaults()


class SimStorage(Storage):
    """One directory of a ``SimDisk`` (a stateless view: it goes on working across crashes)."""

    def __init__(self, disk: SimDisk, directory: _Directory, *, hooks: _FaultHooks | None = None) -> None:
        self.disk = disk
        self._hooks: _FaultHooks = disk if hooks is None else hooks
        self._directory = directory
        self._location = f"sim://{disk.label}/{directory.name}"

    @property
    def name(self) -> str:
        return self._directory.name

    @property
    def location(self) -> str:
        return self._location

    def __repr__(self) -> str:
        return f"SimStorage({self._location!r})"

    def _where(self, name: str) -> str:
        return f"{self._location}/{name}"

    def open(self, name: str, *, create: bool = False) -> SimFile:
        check_name(name)
        self._hooks._check_alive()
        directory = self._directory
        node = directory.entries.get(name)
        if node is None:
            where = self._where(name)
            if not create:
                raise StorageError(errno.ENOENT, f"open {where}: no such file")
            self._hooks._inject("create", name, where)
            node = directory.entries[name] = _Node(directory, name)
            node.open_files += 1
            file = SimFile(self, node)
            self._hooks._done("create", where)
            return file
        node.open_files += 1
        return SimFile(self, node)

    def exists(self, name: str) -> bool:
        check_name(name)
        self._hooks._check_alive()
        return name in self._directory.entries

    def durable_bytes(self, name: str) -> bytes | None:
        """What a power loss that kept nothing pending would leave of ``name``: its durable image, or
        ``None`` if its directory entry is not durable. For tests and the simulator's checkers; it is
        not a storage operation and never fails."""
        check_name(name)
        node = self._directory.durable_entries.get(name)
        return None if node is None else node.durable.read(0, node.durable.size)

    def list(self) -> list[str]:
        self._hooks._check_alive()
        return sorted(self._directory.entries)

    def delete(self, name: str) -> None:
        check_name(name)
        disk = self.disk
        self._hooks._check_alive()
        where = self._where(name)
        node = self._directory.entries.get(name)
        if node is None:
            raise StorageError(errno.ENOENT, f"delete {where}: no such file")
        self._hooks._inject("delete", name, where)
        del self._directory.entries[name]
        node.linked = False
        if node.open_files == 0:
            disk._used_pages -= len(node.current.pages)
        self._hooks._done("delete", where)

    def rename(self, source: str, target: str) -> None:
        check_name(source)
        check_name(target)
        disk = self.disk
        self._hooks._check_alive()
        where = f"{self._where(source)} to {target}"
        entries = self._directory.entries
        node = entries.get(source)
        if node is None:
            raise StorageError(errno.ENOENT, f"rename {where}: no such file")
        self._hooks._inject("rename", source, where)
        if source != target:
            replaced = entries.get(target)
            del entries[source]
            entries[target] = node
            node.name = target
            if replaced is not None:
                replaced.linked = False
                if replaced.open_files == 0:
                    disk._used_pages -= len(replaced.current.pages)
        self._hooks._done("rename", where)

    def sync_directory(self) -> None:
        self._hooks._check_alive()
        self._hooks._inject("sync_directory", None, self._location)
        self._directory.durable_entries = dict(self._directory.entries)
        self._hooks._done("sync_directory", self._location)


class SimFile(StorageFile):
    """An open file of a ``SimStorage``: it works until closed or until the disk crashes."""

    def __init__(self, storage: SimStorage, node: _Node) -> None:
        self.name = node.name
        self.location = f"{storage.location}/{node.name}"
        self._disk = storage.disk
        self._hooks = storage._hooks
        self._node: _Node | None = node
        self._generation = storage.disk._generation

    def __repr__(self) -> str:
        return f"SimFile({self.location!r})"

    def _use(self) -> _Node:
        disk = self._disk
        self._hooks._check_alive()
        node = self._node
        if node is None:
            raise StorageError(errno.EBADF, f"{self.location} is closed")
        if self._generation != disk._generation:
            raise StorageError(
                errno.EBADF, f"{self.location} was open when {disk.label} crashed; open it again"
            )
        return node

    def read(self, offset: int, length: int) -> bytes:
        node = self._use()
        _check_range(self.location, offset, length)
        self._hooks._inject("read", self.name, self.location)
        return node.current.read(offset, length)

    def read_into(self, offset: int, buffer: bytearray | memoryview) -> int:
        node = self._use()
        view = memoryview(buffer).cast("B")
        _check_range(self.location, offset, len(view))
        self._hooks._inject("read", self.name, self.location)
        return node.current.read_into(offset, view)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        node = self._use()
        payload = data if type(data) is bytes else bytes(memoryview(data).cast("B"))
        _check_range(self.location, offset, len(payload))
        disk = self._disk
        self._hooks._inject("write", self.name, self.location)
        if disk.capacity_bytes is not None:
            disk._allocate(node.current.new_pages(offset, len(payload)), self.location)
        if payload:
            disk._used_pages += node.current.write(offset, payload)
            node.pending.append((offset, payload))
        self._hooks._done("write", self.location)

    def size(self) -> int:
        return self._use().current.size

    def truncate(self, length: int) -> None:
        node = self._use()
        _check_range(self.location, length, 0)
        disk = self._disk
        self._hooks._inject("truncate", self.name, self.location)
        disk._used_pages -= node.current.truncate(length)
        node.pending.append((length, None))
        self._hooks._done("truncate", self.location)

    def sync(self, level: SyncLevel) -> None:
        node = self._use()
        level = _check_level(self.location, level)
        self._hooks._inject("sync", self.name, self.location)
        if level != SyncLevel.NONE:
            durable = node.durable
            for op in node.pending:
                durable.apply(op)
            node.pending.clear()
            directory = node.directory
            if directory.entries.get(node.name) is node:
                directory.durable_entries[node.name] = node
        self._hooks._done("sync", self.location)

    def close(self) -> None:
        node, self._node = self._node, None
        if node is None or self._generation != self._disk._generation:
            return
        node.open_files -= 1
        if node.open_files == 0 and not node.linked:
            self._disk._used_pages -= len(node.current.pages)
