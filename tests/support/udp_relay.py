"""A UDP relay that records what passes through it: a capture of a real media driver without privileges.

A publication is pointed at the relay's ``address`` instead of its subscription; the relay forwards each
datagram to ``target`` from a second socket and sends what comes back (status messages, NAKs) to
whoever sent last to ``address``. Every datagram is recorded once, as it reached the relay, with its
real source address and the relay address it was sent to (``CapturedDatagram``), ready for
``support.pcap.write_capture``. Both sockets are bound to loopback and have large receive buffers;
``poll`` must be called often enough that they never fill (nothing is dropped on purpose).
"""

from __future__ import annotations

import socket
import time

from support.pcap import Address, CapturedDatagram

MAX_DATAGRAM = 65536
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024


def _open(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
    sock.bind((host, 0))
    return sock


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that was free a moment ago (for peers that cannot report an ephemeral port)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class UdpRelay:
    """Forwards datagrams between one client and ``target``, recording them (see the module docstring)."""

    def __init__(self, target: Address, *, host: str = "127.0.0.1", limit: int = 100_000) -> None:
        self.target = target
        self.limit = limit
        self._front = _open(host)
        self._back = _open(host)
        self.address: Address = self._front.getsockname()[:2]
        self.back_address: Address = self._back.getsockname()[:2]
        self.client: Address | None = None
        self.datagrams: list[CapturedDatagram] = []
        self.forwarded = 0
        self.unroutable = 0
        self._buffer = bytearray(MAX_DATAGRAM)

    def poll(self, max_datagrams: int = 256) -> int:
        """Forward what is waiting on either socket (at most ``max_datagrams``); the number forwarded."""
        work = 0
        while work < max_datagrams:
            moved = self._forward(self._front, self.address, self._back, outbound=True)
            moved += self._forward(self._back, self.back_address, self._front, outbound=False)
            if not moved:
                break
            work += moved
        return work

    def _forward(self, sock: socket.socket, local: Address, out: socket.socket, *, outbound: bool) -> int:
        try:
            length, source = sock.recvfrom_into(self._buffer)
        except (BlockingIOError, InterruptedError):
            return 0
        except ConnectionRefusedError:  # an ICMP error for an earlier send; the next datagram may wait
            self.unroutable += 1
            return 1
        data = bytes(self._buffer[:length])
        source = (str(source[0]), int(source[1]))
        if len(self.datagrams) >= self.limit:
            raise AssertionError(f"relay recorded its limit of {self.limit} datagrams")
        self.datagrams.append(CapturedDatagram(time.time(), source, local, data))
        if outbound:
            self.client = source
            destination: Address | None = self.target
        else:
            destination = self.client
        if destination is None:
            self.unroutable += 1
            return 1
        try:
            out.sendto(data, destination)
        except (BlockingIOError, InterruptedError, ConnectionRefusedError):
            self.unroutable += 1
            return 1
        self.forwarded += 1
        return 1

    def close(self) -> None:
        self._front.close()
        self._back.close()

    def __enter__(self) -> UdpRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
