"""Files, real and simulated: the only layer of ``cluster`` that touches a file system.

The archive and the cluster's own files (recording log, mark files, node state) read and write through a
``Storage`` -- one directory of files with positional reads and writes, Aeron's file-sync levels,
truncate, delete and list. ``RealStorage`` is the operating system's; ``SimDisk`` (``cluster.storage.sim``)
is a seeded in-memory disk that remembers what was synced and loses or tears the rest at a crash, so the
simulator runs every line above this layer as production does. ``read_path`` reads one whole file that
belongs to no such directory, read-only (a node's configuration file). Nothing else in ``cluster`` opens a
file (``tests/storage/test_file_access_rule.py`` holds that).
"""

from cluster.storage.api import Storage, StorageFile, SyncLevel
from cluster.storage.errors import StorageError
from cluster.storage.real import RealStorage, read_path
from cluster.storage.sim import SimDisk, SimStorage, SimulatedCrash

__all__ = [
    "RealStorage",
    "SimDisk",
    "SimStorage",
    "SimulatedCrash",
    "Storage",
    "StorageError",
    "StorageFile",
    "SyncLevel",
    "read_path",
]
