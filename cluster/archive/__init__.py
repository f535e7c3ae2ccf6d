"""Aeron Archive in pure Python, in Aeron's own on-disk formats.

An archive directory holds the catalog (``archive.catalog``: one descriptor per recording), the mark
file (``archive-mark.dat``: which archive owns the directory, and its error log) and the recordings'
segment files. Java Aeron reads the files written here and this package reads Java's; the layouts are
in docs/archive.md. Every file is reached through ``cluster.storage``, so the same code runs on a real
directory and on the simulator's disk.
"""

from cluster.archive.catalog import (
    CATALOG_FILE_NAME,
    NULL_POSITION,
    NULL_RECORD_ID,
    NULL_TIMESTAMP,
    Catalog,
    CatalogHeader,
    CatalogProblem,
    RecordingDescriptor,
    RecordingState,
)
from cluster.archive.errors import ArchiveError, CatalogError, MarkFileError, SegmentError
from cluster.archive.markfile import (
    ARCHIVE_VERSION,
    MARK_FILE_NAME,
    ArchiveMarkFile,
    ArchiveMarkFileHeader,
    ErrorObservation,
    read_error_log,
)

__all__ = [
    "ARCHIVE_VERSION",
    "CATALOG_FILE_NAME",
    "MARK_FILE_NAME",
    "NULL_POSITION",
    "NULL_RECORD_ID",
    "NULL_TIMESTAMP",
    "ArchiveError",
    "ArchiveMarkFile",
    "ArchiveMarkFileHeader",
    "Catalog",
    "CatalogError",
    "CatalogHeader",
    "CatalogProblem",
    "ErrorObservation",
    "MarkFileError",
    "RecordingDescriptor",
    "RecordingState",
    "SegmentError",
    "read_error_log",
]
