"""The archive's errors.

Every error the archive raises on bad input, a damaged file or misuse is an ``ArchiveError``. The
file-format errors say where: ``CatalogError`` and ``MarkFileError`` carry the file, the byte offset and
the field (``Record.field``) when they are known, and their message names all three, so a user pointed at
a damaged directory learns which bytes to look at.
"""

from __future__ import annotations

from cluster.storage.errors import FileFormatError

__all__ = ["ArchiveError", "CatalogError", "MarkFileError", "SegmentError"]


class ArchiveError(Exception):
    """Base of every error the archive raises on bad input, damaged files or misuse."""

    is_user_error = True


class _FileFormatError(ArchiveError, FileFormatError):
    """An error about the bytes of one file: where they are, and which field is wrong."""


class CatalogError(_FileFormatError):
    """The catalog (``archive.catalog``) is missing, damaged, or was asked for something it cannot do."""


class MarkFileError(_FileFormatError):
    """The mark file (``archive-mark.dat``) is missing, damaged, or belongs to an archive still running."""


class SegmentError(_FileFormatError):
    """A recording segment file (``<recordingId>-<segmentBasePosition>.rec``) is missing or damaged."""
