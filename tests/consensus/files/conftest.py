"""Shared set-up of the cluster-file tests: Java's cluster directories (one per member, extracted once
per session; tests must copy what they change). What ClusterTool printed for them is parsed by
``support.clustertool``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.paths import JavaClusterNode
from support.tarballs import Extractor


@pytest.fixture(scope="session")
def java_cluster(tmp_path_factory: pytest.TempPathFactory) -> Callable[[JavaClusterNode], Path]:
    """``java_cluster(node)``: the node's cluster directory, extracted with GNU tar."""
    extractor = Extractor(tmp_path_factory)
    return lambda node: extractor(node.tarball, node.name) / node.directory
