"""The classes a node's configuration names, resolved: the clustered service its containers run, and the
authenticator and authorisation service of its consensus module.

A name is a built-in one -- ``echo`` and ``kv``, the example services in this package; ``default``, the
authenticator that accepts everyone and the authorisation service that allows only BackupQuery, as
Aeron's defaults do -- or ``package.module:Class``, a class importable by the node's Python: a
``ClusteredService`` subclass, or a class with the callbacks of ``Authenticator`` or
``AuthorisationService`` (``cluster.consensus.core.sessions``) whose instances the node makes with no
arguments. A name is checked when the configuration is read (``check_*``: its form only) and resolved when
the node starts (``load_*``: the import), so a bad name fails the node at start with one clear line.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Final

from cluster.service.api import ClusteredService
from cluster.service.container_core import ClusterServiceError

__all__ = [
    "BUILT_IN_AUTHENTICATORS",
    "BUILT_IN_AUTHORISATION_SERVICES",
    "BUILT_IN_SERVICES",
    "ServiceLoadError",
    "check_authenticator_name",
    "check_authorisation_name",
    "check_service_name",
    "load_authenticator",
    "load_authorisation_service",
    "load_service",
]

BUILT_IN_SERVICES: Final = {
    "echo": "cluster.service.echo:EchoService",
    "kv": "cluster.service.kv:KeyValueService",
}
BUILT_IN_AUTHENTICATORS: Final = {"default": "cluster.consensus.core.sessions:AcceptAllAuthenticator"}
BUILT_IN_AUTHORISATION_SERVICES: Final = {"default": "cluster.consensus.core.sessions:AllowNothingAdmin"}
_AUTHENTICATOR_CALLBACKS: Final = (
    "on_connect_request",
    "on_challenge_response",
    "on_connected_session",
    "on_challenged_session",
)
_AUTHORISATION_CALLBACKS: Final = ("is_authorised",)
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_SPEC: Final = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*:{_IDENTIFIER}")


class ServiceLoadError(ClusterServiceError):
    """A configured name that names no usable class (a service, an authenticator, an authorisation
    service); the message says why."""

    is_user_error = True  # the tools report it in one line, without a traceback


def _check_name(name: str, built_in: Mapping[str, str]) -> str | None:
    if name in built_in or _SPEC.fullmatch(name):
        return None
    return f"{name!r} is neither {' nor '.join(built_in)} nor package.module:Class"


def _load_class(kind: str, name: str, built_in: Mapping[str, str], what: str) -> type:
    problem = _check_name(name, built_in)
    if problem is not None:
        raise ServiceLoadError(problem)
    module_name, _, class_name = built_in.get(name, name).partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # an ImportError, or whatever the module raised as it loaded
        raise ServiceLoadError(f"{kind} {name!r}: cannot import {module_name}: {error}") from error
    found = getattr(module, class_name, None)
    if not isinstance(found, type):
        raise ServiceLoadError(f"{kind} {name!r}: {module_name}.{class_name} is not {what}")
    return found


def _load_with_callbacks(
    kind: str, name: str, built_in: Mapping[str, str], callbacks: tuple[str, ...]
) -> type:
    found = _load_class(kind, name, built_in, f"an {kind} class" if kind[0] in "aeiou" else f"a {kind} class")
    missing = [callback for callback in callbacks if not callable(getattr(found, callback, None))]
    if missing:
        raise ServiceLoadError(
            f"{kind} {name!r}: {found.__module__}.{found.__name__} has no {', '.join(missing)}"
        )
    return found


def check_service_name(name: str) -> str | None:
    """Why ``name`` cannot name a service, or ``None`` when its form is right."""
    return _check_name(name, BUILT_IN_SERVICES)


def check_authenticator_name(name: str) -> str | None:
    """Why ``name`` cannot name an authenticator, or ``None`` when its form is right."""
    return _check_name(name, BUILT_IN_AUTHENTICATORS)


def check_authorisation_name(name: str) -> str | None:
    """Why ``name`` cannot name an authorisation service, or ``None`` when its form is right."""
    return _check_name(name, BUILT_IN_AUTHORISATION_SERVICES)


def load_service(name: str) -> type[ClusteredService]:
    """The ``ClusteredService`` subclass ``name`` names (see the module docstring)."""
    what = "a ClusteredService class"
    service = _load_class("service", name, BUILT_IN_SERVICES, what)
    if not issubclass(service, ClusteredService):
        raise ServiceLoadError(f"service {name!r}: {service.__module__}.{service.__name__} is not {what}")
    return service


def load_authenticator(name: str) -> type:
    """The authenticator class ``name`` names: one with Aeron's four callbacks (module docstring)."""
    return _load_with_callbacks("authenticator", name, BUILT_IN_AUTHENTICATORS, _AUTHENTICATOR_CALLBACKS)


def load_authorisation_service(name: str) -> type:
    """The authorisation service class ``name`` names: one with ``is_authorised`` (module docstring)."""
    return _load_with_callbacks(
        "authorisation service", name, BUILT_IN_AUTHORISATION_SERVICES, _AUTHORISATION_CALLBACKS
    )
