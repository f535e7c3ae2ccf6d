"""``ArchiveContext``: the archive's configuration, with Aeron Archive's defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from cluster.archive.auth import AllowAllAuthenticator, Authenticator
from cluster.archive.protocol import (
    DEFAULT_CONTROL_RESPONSE_STREAM_ID,
    DEFAULT_CONTROL_STREAM_ID,
    DEFAULT_LOCAL_CONTROL_CHANNEL,
    DEFAULT_LOCAL_CONTROL_STREAM_ID,
    DEFAULT_REPLICATION_CHANNEL,
)
from cluster.storage import Storage, SyncLevel

__all__ = ["ArchiveContext"]

MIB = 1024 * 1024
NS_PER_MS = 1_000_000


@dataclass(slots=True)
class ArchiveContext:
    """Where the archive keeps its files and how it is reached. ``storage`` is the archive directory."""

    storage: Storage
    # Remote control: None leaves the archive reachable over the local (IPC) control channel only.
    control_channel: str | None = None
    control_stream_id: int = DEFAULT_CONTROL_STREAM_ID
    local_control_channel: str = DEFAULT_LOCAL_CONTROL_CHANNEL
    local_control_stream_id: int = DEFAULT_LOCAL_CONTROL_STREAM_ID
    replication_channel: str = DEFAULT_REPLICATION_CHANNEL
    # The stream on which a replication hears the source archive's responses.
    control_response_stream_id: int = DEFAULT_CONTROL_RESPONSE_STREAM_ID
    # None: a random id from the seed (Aeron uses its client id).
    archive_id: int | None = None
    segment_file_length: int = 128 * MIB
    file_sync_level: SyncLevel = SyncLevel.NONE
    catalog_file_sync_level: SyncLevel | None = None  # None: the same as file_sync_level
    catalog_capacity_bytes: int = MIB
    file_io_max_length: int = MIB
    max_concurrent_recordings: int = 20
    max_concurrent_replays: int = 20
    max_control_sessions: int = 1024
    connect_timeout_ns: int = 5_000 * NS_PER_MS
    session_liveness_check_interval_ns: int = 1_000 * NS_PER_MS
    replay_linger_timeout_ns: int = 5_000 * NS_PER_MS
    mark_file_update_interval_ms: int = 1_000
    mark_file_liveness_timeout_ms: int = 10_000
    authenticator: Authenticator = field(default_factory=AllowAllAuthenticator)
    aeron_directory: str = ""
    pid: int = 0
    seed: int | None = None

    @property
    def effective_catalog_sync_level(self) -> SyncLevel:
        return self.file_sync_level if self.catalog_file_sync_level is None else self.catalog_file_sync_level
