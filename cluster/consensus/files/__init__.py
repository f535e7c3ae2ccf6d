"""The cluster directory's files in Aeron's formats, read and written through ``cluster.storage``.

* ``recording.log`` -- ``RecordingLogFile`` keeps the recording-log model
  (``cluster.consensus.core.recording_log``) in Aeron's file, crash-safe;
* ``node-state.dat`` -- ``NodeStateFile``, the durable candidate term;
* ``cluster-mark.dat`` and ``cluster-mark-service-<id>.dat`` -- ``ClusterMarkFile``, who owns the
  directory and whether it is alive, with the distinct error log.

docs/cluster-files.md describes the formats, the write and sync order, and the crash repair.
"""

from cluster.consensus.files.errors import (
    ClusterFileError,
    ClusterMarkFileError,
    NodeStateError,
    RecordingLogFileError,
)
from cluster.consensus.files.mark_file import (
    CLUSTER_MARK_FILE_NAME,
    CLUSTER_MARK_VERSION,
    ClusterComponentType,
    ClusterMarkFile,
    ClusterMarkFileHeader,
    service_mark_file_name,
)
from cluster.consensus.files.node_state import (
    NODE_STATE_FILE_NAME,
    CandidateTerm,
    ClusterMembersState,
    NodeState,
    NodeStateFile,
)
from cluster.consensus.files.recording_log_file import (
    RECORDING_LOG_FILE_NAME,
    RecordingLogFile,
    RecordingLogReading,
    RecordingLogRepair,
)

__all__ = [
    "CLUSTER_MARK_FILE_NAME",
    "CLUSTER_MARK_VERSION",
    "NODE_STATE_FILE_NAME",
    "RECORDING_LOG_FILE_NAME",
    "CandidateTerm",
    "ClusterComponentType",
    "ClusterFileError",
    "ClusterMarkFile",
    "ClusterMarkFileError",
    "ClusterMarkFileHeader",
    "ClusterMembersState",
    "NodeState",
    "NodeStateError",
    "NodeStateFile",
    "RecordingLogFile",
    "RecordingLogFileError",
    "RecordingLogReading",
    "RecordingLogRepair",
    "service_mark_file_name",
]
