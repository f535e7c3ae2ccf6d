"""The storage interface: a directory of files with positional I/O and Aeron's sync levels.

Theory of operation
-------------------
A ``Storage`` is one directory. Its files are named by plain file names (no path separators, no ``.``
or ``..``); ``open`` returns a ``StorageFile`` on which every read and write names its offset, so no
caller keeps a file position. Writing past the end extends the file, and a gap reads as zeros, as a
sparse file does (Aeron's segment files are created at full length and filled in place; ``truncate``
both shrinks and extends).

**Durability is explicit.** A write is in the file at once for every reader of this storage, but it
survives a crash only once the file is synced:

* ``SyncLevel.NONE`` (Aeron ``file-sync-level`` 0): ``sync`` does nothing; the operating system writes
  back when it likes.
* ``SyncLevel.DATA`` (1): the file's bytes and its length (``fdatasync``).
* ``SyncLevel.ALL`` (2): bytes, length and the rest of the metadata (``fsync``).

A truncate is durable with the file's bytes (levels 1 and 2 both make the length durable). A new
file's directory entry is durable once the file is synced at level 1 or 2 or ``sync_directory`` runs; a
deletion or a rename only once ``sync_directory`` runs (POSIX promises a new entry only after
``sync_directory``; ext4 and XFS also commit it with the file). ``cluster.storage.sim`` spells out the
simulated disk's exact crash model.

**Replacing a whole file** crash-safely is ``replace_file``: the new bytes go to a temporary file,
which is synced and then renamed over the old name (``rename`` replaces the target in one step, as
POSIX ``rename`` does), and the directory is synced. A crash at any point leaves the name with its old
bytes or its new ones, whole -- never a mix -- and possibly the temporary file beside it.

Every failure raises ``StorageError`` with the errno of the cause and a message that names the file.
"""

from __future__ import annotations

import abc
import enum
import errno

from cluster.storage.errors import StorageError

__all__ = ["Storage", "StorageFile", "SyncLevel", "check_name"]


class SyncLevel(enum.IntEnum):
    """How much of a file ``StorageFile.sync`` makes durable (Aeron's ``file-sync-level``)."""

    NONE = 0
    DATA = 1
    ALL = 2


def check_name(name: str) -> str:
    """``name`` if it is a plain file name; ``StorageError(EINVAL)`` otherwise."""
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
    ):
        raise StorageError(errno.EINVAL, f"not a plain file name: {name!r}")
    return name


class StorageFile(abc.ABC):
    """One open file: positional reads and writes, length, truncate, sync."""

    name: str

    @abc.abstractmethod
    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``: fewer only at the end of the file (none past it)."""

    @abc.abstractmethod
    def read_into(self, offset: int, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` from ``offset``; return how many bytes were read (fewer only at the end)."""

    @abc.abstractmethod
    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data`` at ``offset``, extending the file if needed (a gap reads as zeros)."""

    @abc.abstractmethod
    def size(self) -> int:
        """The file's length in bytes."""

    @abc.abstractmethod
    def truncate(self, length: int) -> None:
        """Set the file's length: shorter drops the tail, longer adds zeros (sparse where supported)."""

    @abc.abstractmethod
    def sync(self, level: SyncLevel) -> None:
        """Make the file durable to ``level`` (``NONE`` does nothing)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the file; further use raises ``StorageError(EBADF)``. Idempotent."""

    def __enter__(self) -> StorageFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Storage(abc.ABC):
    """A directory of files (see the module docstring)."""

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where this directory is, for messages: a path, or ``sim://<disk>/<dir>``."""

    @abc.abstractmethod
    def open(self, name: str, *, create: bool = False) -> StorageFile:
        """Open ``name`` for reading and writing; ``create`` makes it (empty) if it is not there.
        ``StorageError(ENOENT)`` if it is not there and ``create`` is false."""

    @abc.abstractmethod
    def exists(self, name: str) -> bool:
        """Whether a file ``name`` is in the directory."""

    @abc.abstractmethod
    def list(self) -> list[str]:
        """The names of the files in the directory, sorted."""

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Remove ``name``; ``StorageError(ENOENT)`` if it is not there."""

    @abc.abstractmethod
    def sync_directory(self) -> None:
        """Make the directory's entries (files created and deleted) durable."""

    def rename(self, source: str, target: str) -> None:
        """Give the file ``source`` the name ``target``, replacing any file ``target`` in one step (the
        name holds the old file or the new one, never neither). Durable once ``sync_directory`` runs.
        ``StorageError(ENOENT)`` if there is no ``source``. A storage that cannot rename (a test's
        wrapper) raises ``StorageError(ENOTSUP)``."""
        raise StorageError(errno.ENOTSUP, f"rename {source} to {target} in {self.location}: not supported")

    def read_file(self, name: str) -> bytes:
        """The whole of ``name`` (for small files: mark files, the recording log)."""
        with self.open(name) as file:
            return file.read(0, file.size())

    def replace_file(self, name: str, data: bytes | bytearray | memoryview, *, temporary: str = "") -> None:
        """Make ``name`` hold exactly ``data``, crash-safely (module docstring): write ``temporary``
        (default ``<name>.tmp``, cut to nothing first), sync it, rename it over ``name``, sync the
        directory. When this returns the new bytes are durable; a crash before leaves ``name`` as it
        was or with ``data`` whole, and may leave the temporary file."""
        temporary = temporary or f"{check_name(name)}.tmp"
        if temporary == name:
            raise StorageError(errno.EINVAL, f"replace {name}: the temporary file cannot be the file itself")
        with self.open(temporary, create=True) as file:
            file.truncate(0)
            file.write(0, data)
            file.sync(SyncLevel.DATA)
        self.rename(temporary, name)
        self.sync_directory()
