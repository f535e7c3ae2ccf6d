"""Where the project's schemas, the tests' own data and the shared reference material are.

The reference material (``../shared/reference`` beside the checkout: upstream Aeron schemas, SBE's
example and test schemas, the vectors) is not part of the repository; a plain clone has none of it.
Its files are named here one by one, so that a parametrization over them never shrinks silently when
a file is gone: each case asks ``support.needs.need_reference`` for its file and is skipped (failed
under CI) without it. Everything else here ships with the repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
TESTDATA = REPO / "tests" / "testdata"

# Our schemas of SBE messages: the five Aeron schemas, wire-identical to upstream's.
AERON_SCHEMAS = [
    SCHEMAS / name
    for name in (
        "aeron-archive-codecs.xml",
        "aeron-archive-mark-codecs.xml",
        "aeron-cluster-codecs.xml",
        "aeron-cluster-mark-codecs.xml",
        "aeron-cluster-node-state-codecs.xml",
    )
]
# The transport's frame layouts: composites only, no SBE messages.
FRAMES_SCHEMA = SCHEMAS / "aeron-transport-frames.xml"

# Copies of the reference vectors (tests/testdata/vectors/README.md says where they came from).
VECTORS = TESTDATA / "vectors"
VECTOR_FILES = [VECTORS / f"{name}-vectors.json" for name in ("car", "cluster", "archive")]

# Schemas the tests bring themselves. The car vectors were written with SBE's Car example; its
# stand-ins are the benchmark's Car schema (version 0) and that schema's version-1 extension, both
# wire-identical to SBE's (tests/schemas/test_stand_ins.py).
TEST_SCHEMAS = TESTDATA / "schemas"
CAR_SCHEMAS = {0: REPO / "tools" / "bench" / "car-schema.xml", 1: TEST_SCHEMAS / "car-extension-schema.xml"}
CAR_BIG_ENDIAN = TEST_SCHEMAS / "car-bigendian-schema.xml"
NESTED_GROUPS = TEST_SCHEMAS / "nested-groups.xml"
GROUP_VAR_DATA = TEST_SCHEMAS / "group-var-data.xml"
OFFSETS_AND_CONSTANTS = TEST_SCHEMAS / "offsets-and-constants.xml"
OWN_TEST_SCHEMAS = [
    *CAR_SCHEMAS.values(),
    CAR_BIG_ENDIAN,
    NESTED_GROUPS,
    GROUP_VAR_DATA,
    OFFSETS_AND_CONSTANTS,
]

# ------------------------------------------------------------------- ../shared/reference, file by file

SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"
AERON = REFERENCE / "aeron"
SBE = REFERENCE / "sbe"
SBE_TESTS = SBE / "tests"
REFERENCE_VECTORS = REFERENCE / "vectors"

# Upstream Aeron's schemas: the five we mirror in schemas/, and the cluster mark file's version 0.
AERON_REFERENCE_SCHEMAS = [
    AERON / name
    for name in (
        "aeron-archive-codecs.xml",
        "aeron-archive-mark-codecs.xml",
        "aeron-cluster-codecs.xml",
        "aeron-cluster-mark-codecs-v0.xml",
        "aeron-cluster-mark-codecs.xml",
        "aeron-cluster-node-state-codecs.xml",
    )
]
# SBE's Car example (version 0 and its version-1 extension) and the big-endian Car; common-types.xml
# beside them is a fragment that the first two XInclude, not a schema.
SBE_CAR_SCHEMAS = {0: SBE / "example-schema.xml", 1: SBE / "example-extension-schema.xml"}
SBE_EXAMPLE_SCHEMAS = [*SBE_CAR_SCHEMAS.values(), SBE / "example-bigendian-test-schema.xml"]
# The SBE tool's own test schemas.
SBE_TEST_SCHEMAS = [
    SBE_TESTS / name
    for name in (
        "basic-types-schema.xml",
        "basic-variable-length-schema.xml",
        "code-generation-schema.xml",
        "composite-elements-schema.xml",
        "composite-offsets-schema.xml",
        "constant-enum-fields.xml",
        "encoding-types-schema.xml",
        "example-bigendian-test-schema.xml",
        "fixed-sized-primitive-array-types.xml",
        "group-with-constant-fields.xml",
        "group-with-data-schema.xml",
        "json-printer-test-schema.xml",
        "message-block-length-test.xml",
        "nested-group-schema.xml",
        "new-order-single-schema.xml",
        "value-ref-schema.xml",
    )
]
REFERENCE_SCHEMAS = [*SBE_EXAMPLE_SCHEMAS, *SBE_TEST_SCHEMAS, *AERON_REFERENCE_SCHEMAS]

# Java Aeron 1.47.3 archive directories (../shared/reference/java/README.md says what each run did), as
# sparse GNU tar archives, and what Aeron's ArchiveTool printed for them. `directory` is the archive
# directory inside the tarball.
JAVA = REFERENCE / "java"


class JavaArchive(NamedTuple):
    name: str
    tarball: Path
    directory: str
    describe: Path


JAVA_ARCHIVES = [
    JavaArchive(
        "archiveA",
        JAVA / "archive" / "archiveA.tar.xz",
        "archiveA/archive",
        JAVA / "archive" / "archivetool" / "archiveA.describe.txt",
    ),
    JavaArchive(
        "archiveB",
        JAVA / "archive" / "archiveB.tar.xz",
        "archiveB/archive",
        JAVA / "archive" / "archivetool" / "archiveB.describe.txt",
    ),
    *(
        JavaArchive(
            f"node{i}",
            JAVA / "cluster" / f"node{i}.tar.xz",
            f"node{i}/archive",
            JAVA / "cluster" / "archivetool" / f"node{i}.describe.txt",
        )
        for i in range(3)
    ),
]
# ClusterTool's `errors` output for the cluster members: the distinct error logs of their cluster mark
# files (the same error-log layout as the archive mark file's).
JAVA_CLUSTER_ERRORS = {i: JAVA / "cluster" / "clustertool" / f"node{i}.errors.txt" for i in range(3)}
# The archive data set's capture of every datagram of the Java run (its README, "Data set 2: archive/").
JAVA_ARCHIVE_CAPTURE = JAVA / "archive" / "capture.pcapng"


class JavaClusterNode(NamedTuple):
    """One member's directory of the Java cluster run: ``directory`` is the cluster directory inside the
    tarball; the ``clustertool`` files are what ClusterTool printed for it (``describe``,
    ``recording-log``, ``pid``, ``errors``, ``recovery-plan 1`` and ``describe-latest-cm-snapshot``)."""

    name: str
    tarball: Path
    directory: str
    describe: Path
    recording_log: Path
    pid: Path
    errors: Path
    recovery_plan: Path
    latest_cm_snapshot: Path


JAVA_CLUSTER_NODES = [
    JavaClusterNode(
        f"node{i}",
        JAVA / "cluster" / f"node{i}.tar.xz",
        f"node{i}/cluster",
        JAVA / "cluster" / "clustertool" / f"node{i}.describe.txt",
        JAVA / "cluster" / "clustertool" / f"node{i}.recording-log.txt",
        JAVA / "cluster" / "clustertool" / f"node{i}.pid.txt",
        JAVA_CLUSTER_ERRORS[i],
        JAVA / "cluster" / "clustertool" / f"node{i}.recovery-plan.txt",
        JAVA / "cluster" / "clustertool" / f"node{i}.describe-latest-cm-snapshot.txt",
    )
    for i in range(3)
]
