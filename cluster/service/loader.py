"""Which clustered service a node runs: a name from the node's configuration, resolved to a class.

``echo`` and ``kv`` are the example services in this package; anything else is ``package.module:Class``, a
``ClusteredService`` subclass importable by the node's Python. The name is checked when the configuration
is read (``check_service_name``: its form only) and resolved when the node starts (``load_service``: the
import), so a bad name fails the node at start with one clear line.
"""

from __future__ import annotations

import importlib
import re
from typing import Final

from cluster.service.api import ClusteredService
from cluster.service.container_core import ClusterServiceError

__all__ = ["BUILT_IN_SERVICES", "ServiceLoadError", "check_service_name", "load_service"]

BUILT_IN_SERVICES: Final = {
    "echo": "cluster.service.echo:EchoService",
    "kv": "cluster.service.kv:KeyValueService",
}
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_SPEC: Final = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*:{_IDENTIFIER}")


class ServiceLoadError(ClusterServiceError):
    """A service name that names no usable ``ClusteredService`` class; the message says why."""

    is_user_error = True  # the tools report it in one line, without a traceback


def check_service_name(name: str) -> str | None:
    """Why ``name`` cannot name a service, or ``None`` when its form is right."""
    if name in BUILT_IN_SERVICES or _SPEC.fullmatch(name):
        return None
    return f"{name!r} is neither {' nor '.join(BUILT_IN_SERVICES)} nor package.module:Class"


def load_service(name: str) -> type[ClusteredService]:
    """The ``ClusteredService`` subclass ``name`` names (see the module docstring)."""
    problem = check_service_name(name)
    if problem is not None:
        raise ServiceLoadError(problem)
    module_name, _, class_name = BUILT_IN_SERVICES.get(name, name).partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # an ImportError, or whatever the module raised as it loaded
        raise ServiceLoadError(f"service {name!r}: cannot import {module_name}: {error}") from error
    service = getattr(module, class_name, None)
    if not isinstance(service, type) or not issubclass(service, ClusteredService):
        raise ServiceLoadError(
            f"service {name!r}: {module_name}.{class_name} is not a ClusteredService class"
        )
    return service
