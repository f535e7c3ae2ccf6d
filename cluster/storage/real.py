"""``RealStorage``: a directory on the operating system's file system."""

from __future__ import annotations

import errno
import os

from cluster.storage.api import Storage, StorageFile, SyncLevel, check_name
from cluster.storage.errors import StorageError

__all__ = ["RealFile", "RealStorage", "read_path"]


def _error(cause: OSError, what: str) -> StorageError:
    return StorageError(cause.errno or errno.EIO, f"{what}: {cause.strerror or cause}")


class RealFile(StorageFile):
    """A file opened with ``os.open``; reads and writes are ``pread``/``pwrite``."""

    def __init__(self, path: str, name: str, fd: int) -> None:
        self.path = path
        self.name = name
        self._fd = fd

    def _check(self) -> int:
        if self._fd < 0:
            raise StorageError(errno.EBADF, f"{self.path} is closed")
        return self._fd

    def read(self, offset: int, length: int) -> bytes:
        _check_range(self.path, offset, length)
        fd = self._check()
        chunks = []
        while length > 0:
            try:
                chunk = os.pread(fd, length, offset)
            except OSError as e:
                raise _error(e, f"read {self.path} at {offset}") from e
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def read_into(self, offset: int, buffer: bytearray | memoryview) -> int:
        view = memoryview(buffer).cast("B")
        _check_range(self.path, offset, len(view))
        fd = self._check()
        done = 0
        while done < len(view):
            try:
                count = os.preadv(fd, [view[done:]], offset + done)
            except OSError as e:
                raise _error(e, f"read {self.path} at {offset + done}") from e
            if count == 0:
                break
            done += count
        return done

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        _check_range(self.path, offset, len(view))
        fd = self._check()
        done = 0
        while done < len(view):
            try:
                done += os.pwrite(fd, view[done:], offset + done)
            except OSError as e:
                raise _error(e, f"write {self.path} at {offset + done}") from e

    def size(self) -> int:
        fd = self._check()
        try:
            return os.fstat(fd).st_size
        except OSError as e:
            raise _error(e, f"stat {self.path}") from e

    def truncate(self, length: int) -> None:
        _check_range(self.path, length, 0)
        fd = self._check()
        try:
            os.ftruncate(fd, length)
        except OSError as e:
            raise _error(e, f"truncate {self.path} to {length}") from e

    def sync(self, level: SyncLevel) -> None:
        fd = self._check()
        if isinstance(level, bool) or level not in (0, 1, 2):
            raise StorageError(errno.EINVAL, f"sync {self.path}: sync level {level!r} is not 0, 1 or 2")
        try:
            if level == SyncLevel.DATA:
                os.fdatasync(fd)
            elif level == SyncLevel.ALL:
                os.fsync(fd)
        except OSError as e:
            raise _error(e, f"sync {self.path}") from e

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                os.close(fd)
            except OSError as e:
                raise _error(e, f"close {self.path}") from e


class RealStorage(Storage):
    """The directory ``path``; ``create`` makes it (and its parents) if it is missing."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        self.path = os.fspath(path)
        try:
            if create:
                os.makedirs(self.path, exist_ok=True)
            elif not os.path.isdir(self.path):
                raise StorageError(errno.ENOENT, f"{self.path} is not a directory")
        except OSError as e:
            if isinstance(e, StorageError):
                raise
            raise _error(e, f"create directory {self.path}") from e

    @property
    def location(self) -> str:
        return self.path

    def _path(self, name: str) -> str:
        return os.path.join(self.path, check_name(name))

    def open(self, name: str, *, create: bool = False) -> StorageFile:
        path = self._path(name)
        flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | (os.O_CREAT if create else 0)
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as e:
            raise _error(e, f"open {path}") from e
        return RealFile(path, name, fd)

    def exists(self, name: str) -> bool:
        return os.path.isfile(self._path(name))

    def list(self) -> list[str]:
        try:
            with os.scandir(self.path) as entries:
                return sorted(entry.name for entry in entries if entry.is_file())
        except OSError as e:
            raise _error(e, f"list {self.path}") from e

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            os.unlink(path)
        except OSError as e:
            raise _error(e, f"delete {path}") from e

    def rename(self, source: str, target: str) -> None:
        old, new = self._path(source), self._path(target)
        try:
            os.replace(old, new)
        except OSError as e:
            raise _error(e, f"rename {old} to {new}") from e

    def sync_directory(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as e:
            raise _error(e, f"open directory {self.path}") from e
        try:
            os.fsync(fd)
        except OSError as e:
            raise _error(e, f"sync directory {self.path}") from e
        finally:
            os.close(fd)


def read_path(path: str | os.PathLike[str], *, max_bytes: int) -> bytes:
    """The whole of the file at ``path``, opened read-only: for a file that lives outside any ``Storage``
    directory and is only read, such as a node's configuration file (which may well be read-only to the
    process). ``StorageError`` if it cannot be opened or read, ``EFBIG`` if it holds more than
    ``max_bytes``; a pipe is read to its end too."""
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise _error(e, name) from e
    try:
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - total)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            total += len(chunk)
    except OSError as e:
        raise _error(e, name) from e
    finally:
        os.close(fd)
    raise StorageError(errno.EFBIG, f"{name}: longer than {max_bytes} bytes")


def _check_range(path: str, offset: int, length: int) -> None:
    if offset < 0 or length < 0:
        raise StorageError(errno.EINVAL, f"{path}: negative offset or length ({offset}, {length})")
