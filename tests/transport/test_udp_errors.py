"""What a real UDP socket's send and receive make of the errors the operating system returns: a datagram
a firewall or a dead route swallowed is lost, like any other, and the node goes on; an error that says
the socket itself is wrong is a ``MediaError``."""

from __future__ import annotations

import errno

import pytest

from cluster.transport.media import MediaError, UdpNetwork

LOST = [errno.EPERM, errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.ENOBUFS]


def _failing(code: int) -> object:
    def send(*args: object) -> int:
        raise OSError(code, f"simulated {errno.errorcode[code]}")

    return send


@pytest.mark.parametrize("code", LOST, ids=[errno.errorcode[code] for code in LOST])
def test_a_send_the_system_refuses_in_passing_is_a_lost_datagram(code: int) -> None:
    sock = UdpNetwork().open(("127.0.0.1", 0))
    try:
        sock._send = _failing(code)  # type: ignore[assignment]
        assert sock.send(b"frame", ("127.0.0.1", 9)) is False
    finally:
        sock.close()


def test_a_send_refused_for_what_the_socket_is_raises_a_media_error() -> None:
    sock = UdpNetwork().open(("127.0.0.1", 0))
    try:
        sock._send = _failing(errno.EMSGSIZE)  # type: ignore[assignment]
        with pytest.raises(MediaError, match=r"send from 127\.0\.0\.1:"):
            sock.send(b"frame", ("127.0.0.1", 9))
    finally:
        sock.close()
