"""The storage layer's error."""

from __future__ import annotations

import errno as _errno

__all__ = ["FileFormatError", "StorageError"]


class StorageError(OSError):
    """A file operation failed: the message names the file and the operation, ``errno`` says why
    (``ENOENT``, ``EIO``, ``ENOSPC``, ...). Real and simulated storage raise the same type."""

    is_user_error = True

    def __init__(self, error_number: int, message: str) -> None:
        super().__init__(error_number, message)

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno or 0, str(self.errno))
        return f"{self.strerror} ({name})"


class FileFormatError(Exception):
    """The bytes of a file are not in its format. ``file``, ``offset`` and ``field`` say where, when they
    are known, and the message names all three. The layers above derive their own file errors from it
    (the archive's ``MarkFileError``, the cluster's ``ClusterFileError``) together with their base."""

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        offset: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.offset = offset
        self.field = field
        where = []
        if file is not None:
            where.append(file)
        if offset is not None:
            where.append(f"offset {offset}")
        if field is not None:
            where.append(field)
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)
