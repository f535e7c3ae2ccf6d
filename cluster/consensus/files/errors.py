"""The errors of the cluster's files.

Each names the file and, when known, the byte offset and field (``FileFormatError``); all are
``ConsensusError``s, so the command line reports them as one ``error: ...`` line.
"""

from __future__ import annotations

from cluster.consensus.core.errors import ConsensusError, RecordingLogError
from cluster.storage.errors import FileFormatError

__all__ = ["ClusterFileError", "ClusterMarkFileError", "NodeStateError", "RecordingLogFileError"]


class ClusterFileError(FileFormatError, ConsensusError):
    """A file of the cluster directory is missing, damaged, or was asked for something it cannot do."""


class RecordingLogFileError(FileFormatError, RecordingLogError):
    """``recording.log`` is damaged beyond what a crash can leave, or cannot take a change in place."""


class NodeStateError(ClusterFileError):
    """``node-state.dat`` is missing, damaged, or was asked to move the candidate term backwards."""


class ClusterMarkFileError(ClusterFileError):
    """A cluster mark file is missing, damaged, or belongs to a process still running."""
