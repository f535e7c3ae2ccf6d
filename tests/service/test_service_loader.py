"""Which service a node runs (``cluster.service.loader``): the built-in names, ``package.module:Class``,
and one clear error for each way a name can be wrong -- checked when the configuration is read and when
``cluster up`` starts, before any member does."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cluster.consensus.core.sessions import AcceptAllAuthenticator, AllowNothingAdmin
from cluster.consensus.node_config import NodeConfig, NodeConfigError
from cluster.service.echo import EchoService
from cluster.service.kv import KeyValueService
from cluster.service.loader import (
    ServiceLoadError,
    check_authenticator_name,
    check_authorisation_name,
    check_service_name,
    load_authenticator,
    load_authorisation_service,
    load_service,
)

REPO = Path(__file__).resolve().parents[2]


def test_the_built_in_names_and_a_module_path_load_their_classes() -> None:
    assert load_service("echo") is EchoService
    assert load_service("kv") is KeyValueService
    assert load_service("cluster.service.kv:KeyValueService") is KeyValueService


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "'' is neither echo nor kv nor package.module:Class"),
        ("Echo", "'Echo' is neither echo nor kv nor package.module:Class"),
        ("cluster.service.kv", "'cluster.service.kv' is neither echo nor kv nor package.module:Class"),
        ("a.b:C:D", "'a.b:C:D' is neither echo nor kv nor package.module:Class"),
        ("no_such_module_here:Service", "cannot import no_such_module_here"),
        ("cluster.service.kv:Missing", "cluster.service.kv.Missing is not a ClusteredService class"),
        ("cluster.service.kv:Reply", "cluster.service.kv.Reply is not a ClusteredService class"),
        ("cluster.service.kv:encode_read", "is not a ClusteredService class"),
    ],
)
def test_a_bad_name_is_one_clear_error(name: str, problem: str) -> None:
    with pytest.raises(ServiceLoadError, match=re.escape(problem)):
        load_service(name)
    assert ServiceLoadError.is_user_error


def test_the_form_is_checked_without_importing() -> None:
    assert check_service_name("no_such_module_here:Service") is None  # its import is the node's to try
    assert check_service_name("kv") is None


def test_the_node_configuration_refuses_a_malformed_name() -> None:
    members = "0,h:1,h:2,h:3,h:4,h:5"
    base = {"cluster.members": members, "cluster.member.id": 0, "cluster.dir": "d"}
    assert NodeConfig.from_mapping({**base, "cluster.service.class": "kv"}).service_class == "kv"
    with pytest.raises(NodeConfigError, match=re.escape("cluster.service.class: 'x y' is neither echo")):
        NodeConfig.from_mapping({**base, "cluster.service.class": "x y"})


def test_cluster_up_refuses_a_service_that_does_not_import_before_starting_anything(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools", "cluster", "up", "--nodes", "1", "--dir", str(tmp_path / "c"),
         "--base-port", "39100", "--service", "no_such_module_here:Service"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "cannot import no_such_module_here" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == "" and not (tmp_path / "c").exists()  # no config written, no member started


def test_the_default_authenticator_and_authorisation_service_are_aerons() -> None:
    assert load_authenticator("default") is AcceptAllAuthenticator
    assert load_authorisation_service("default") is AllowNothingAdmin
    assert (
        load_authorisation_service("cluster.consensus.core.sessions:AllowNothingAdmin") is AllowNothingAdmin
    )


@pytest.mark.parametrize(
    ("load", "name", "problem"),
    [
        (load_authenticator, "tokens", "'tokens' is neither default nor package.module:Class"),
        (load_authenticator, "no_such_module_here:Auth", "cannot import no_such_module_here"),
        (
            load_authenticator,
            "cluster.consensus.core.sessions:AllowNothingAdmin",
            "AllowNothingAdmin has no on_connect_request, on_challenge_response, on_connected_session, "
            "on_challenged_session",
        ),
        (
            load_authenticator,
            "cluster.consensus.core.sessions:MAX_ENCODED_PRINCIPAL_LENGTH",
            "is not an authenticator class",
        ),
        (
            load_authorisation_service,
            "cluster.consensus.core.sessions:AcceptAllAuthenticator",
            "AcceptAllAuthenticator has no is_authorised",
        ),
    ],
)
def test_a_bad_authenticator_or_authorisation_name_is_one_clear_error(
    load: Callable[[str], type], name: str, problem: str
) -> None:
    with pytest.raises(ServiceLoadError, match=re.escape(problem)):
        load(name)
    assert check_authenticator_name("default") is None and check_authorisation_name("x.y:Z") is None
