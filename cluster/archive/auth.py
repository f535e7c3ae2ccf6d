"""Authentication of control sessions: Aeron's ``Authenticator`` contract, pluggable.

A client's connect request carries encoded credentials (bytes; empty by default). The archive asks its
``Authenticator``, which decides through the ``SessionProxy`` it is handed: ``authenticate`` lets the
session in, ``challenge`` sends the client a ``Challenge`` message and waits for its
``ChallengeResponse``, ``reject`` refuses it (the client gets an ERROR response with
``AUTHENTICATION_REJECTED``). The calls, in order:

* ``on_connect_request(session_id, credentials, now_ms)`` when the connect request arrives;
* ``on_connected_session(proxy, now_ms)`` on every duty cycle while the session is connected and
  undecided;
* ``on_challenge_response(session_id, credentials, now_ms)`` when a challenge response arrives;
* ``on_challenged_session(proxy, now_ms)`` on every duty cycle while the session is challenged and
  undecided.

A session that stays undecided past the connect timeout is closed.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["AllowAllAuthenticator", "Authenticator", "SessionProxy"]


class SessionProxy(Protocol):
    """What an authenticator may do to the session it is deciding about."""

    @property
    def session_id(self) -> int: ...

    def challenge(self, encoded_challenge: bytes) -> bool:
        """Send the client a challenge; ``True`` once sent."""
        ...

    def authenticate(self, encoded_principal: bytes = b"") -> bool:
        """Let the session in; ``True`` once done."""
        ...

    def reject(self) -> None:
        """Refuse the session."""
        ...


class Authenticator(Protocol):
    def on_connect_request(self, session_id: int, encoded_credentials: bytes, now_ms: int) -> None: ...

    def on_challenge_response(self, session_id: int, encoded_credentials: bytes, now_ms: int) -> None: ...

    def on_connected_session(self, proxy: SessionProxy, now_ms: int) -> None: ...

    def on_challenged_session(self, proxy: SessionProxy, now_ms: int) -> None: ...


class AllowAllAuthenticator:
    """Lets every session in (Aeron's default)."""

    def on_connect_request(self, session_id: int, encoded_credentials: bytes, now_ms: int) -> None:
        pass

    def on_challenge_response(self, session_id: int, encoded_credentials: bytes, now_ms: int) -> None:
        pass

    def on_connected_session(self, proxy: SessionProxy, now_ms: int) -> None:
        proxy.authenticate()

    def on_challenged_session(self, proxy: SessionProxy, now_ms: int) -> None:
        proxy.authenticate()
