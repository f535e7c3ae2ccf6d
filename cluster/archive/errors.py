"""The archive's errors."""

from __future__ import annotations

__all__ = ["ArchiveError", "CatalogError", "MarkFileError", "SegmentError"]


class ArchiveError(Exception):
    """Base of every error the archive raises on bad files, bad input or misuse."""

    is_user_error = True


class CatalogError(ArchiveError):
    """The catalog file is damaged or a catalog operation was misused."""


class MarkFileError(ArchiveError):
    """The archive mark file is damaged, or another process holds the archive."""


class SegmentError(ArchiveError):
    """A segment file is missing or damaged, or segment arithmetic was given bad values."""
