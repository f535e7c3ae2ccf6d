"""The storage layer's error."""

from __future__ import annotations

import errno as _errno

__all__ = ["StorageError"]


class StorageError(OSError):
    """A file operation failed: the message names the file and the operation, ``errno`` says why
    (``ENOENT``, ``EIO``, ``ENOSPC``, ...). Real and simulated storage raise the same type."""

    is_user_error = True

    def __init__(self, error_number: int, message: str) -> None:
        super().__init__(error_number, message)

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno or 0, str(self.errno))
        return f"{self.strerror} ({name})"
