"""Media: where datagrams actually go -- real UDP sockets, or a simulated network.

Theory of operation
-------------------
Publications, images and endpoints never touch a socket. They talk to a ``DatagramSocket``: bind an
address, ``send`` a datagram to an address, ``receive`` the next datagram without blocking. A ``Network``
opens sockets and owns the clock that everything above reads, so one network object decides both how
datagrams travel and how time moves:

* ``UdpNetwork`` uses real non-blocking UDP sockets and the system clock. Its sockets have a
  ``fileno()`` so a ``SelectorIdleStrategy`` can sleep on them.
* ``cluster.transport.simnet.SimNetwork`` keeps datagrams in memory, under a virtual clock and one seed
  (loss, duplication, reordering, delay and partitions). The same publication and subscription code runs
  over both.

Addresses are ``(host, port)`` tuples with a numeric host. ``receive`` copies the datagram into the
caller's buffer (which must hold ``MAX_DATAGRAM_LENGTH`` bytes) and returns ``(length, source)``; a
datagram longer than the buffer is truncated to it (the caller sees a frame length that runs past the
datagram and drops it), exactly as a real socket does.

An optional *tap* (``Network.tap``) sees every datagram a socket of this network sends, with its
source and destination: the tests use it to write pcap files of our own traffic.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import Protocol

from cluster.transport.clock import Clock, SystemClock
from cluster.transport.errors import TransportError

__all__ = [
    "MAX_DATAGRAM_LENGTH",
    "Address",
    "DatagramSocket",
    "MediaError",
    "Network",
    "Tap",
    "UdpNetwork",
    "UdpSocket",
]

MAX_DATAGRAM_LENGTH = 65536
DEFAULT_SO_RCVBUF = 2 * 1024 * 1024

Address = tuple[str, int]
Tap = Callable[[Address, Address, bytes], object]


class MediaError(TransportError, OSError):
    """A socket could not be opened, bound or used; the message names the address."""


class DatagramSocket(Protocol):
    """A bound, non-blocking datagram socket."""

    @property
    def local_address(self) -> Address:
        """The bound address, with an ephemeral port (0 asked) resolved."""
        ...

    def send(self, data: bytes | bytearray | memoryview, address: Address) -> bool:
        """Send one datagram; ``False`` if it could not go now (buffer full, no route), never raises
        for such transient conditions."""
        ...

    def receive(self, buffer: bytearray | memoryview) -> tuple[int, Address] | None:
        """The next datagram copied into ``buffer`` as ``(length, source)``, or ``None`` if none is
        waiting."""
        ...

    def fileno(self) -> int:
        """A descriptor that becomes readable when a datagram waits, or -1 if there is none."""
        ...

    def close(self) -> None: ...


class Network(Protocol):
    """Opens sockets and owns the clock."""

    tap: Tap | None

    @property
    def clock(self) -> Clock:
        """The clock everything on this network reads."""
        ...

    def open(self, address: Address) -> DatagramSocket:
        """Bind a socket to ``address`` (port 0: an ephemeral port)."""
        ...

    def resolve(self, address: Address) -> Address:
        """``address`` with its host name turned into the numeric form sockets of this network use."""
        ...


class UdpSocket:
    """A non-blocking UDP socket (IPv4 or IPv6 by the host's form)."""

    __slots__ = ("_ipv6", "_local", "_network", "_recv", "_send", "sock")

    def __init__(self, network: UdpNetwork, address: Address, rcvbuf: int) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._ipv6 = family == socket.AF_INET6  # its sources come with flow info and scope id
        self._network = network
        try:
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as exc:
            raise MediaError(f"cannot open a UDP socket for {format_address(address)}: {exc}") from exc
        try:
            self.sock.setblocking(False)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, rcvbuf)
            self.sock.bind(address)
        except OSError as exc:
            self.sock.close()
            raise MediaError(f"cannot bind UDP {format_address(address)}: {exc}") from exc
        local = self.sock.getsockname()
        self._local: Address = (str(local[0]), int(local[1]))
        self._send = self.sock.sendto
        self._recv = self.sock.recvfrom_into

    @property
    def local_address(self) -> Address:
        return self._local

    def send(self, data: bytes | bytearray | memoryview, address: Address) -> bool:
        tap = self._network.tap
        if tap is not None:
            tap(self._local, address, bytes(data))
        try:
            self._send(data, address)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            # ECONNREFUSED and friends: an ICMP error from an earlier datagram; EPERM: a local firewall
            # dropped this one; ENETDOWN: the interface went down. UDP is lossy anyway: a lost datagram.
            if exc.errno in _TRANSIENT_ERRNOS:
                return False
            raise MediaError(f"send from {format_address(self._local)} to {address!r}: {exc}") from exc
        return True

    def receive(self, buffer: bytearray | memoryview) -> tuple[int, Address] | None:
        try:
            result: tuple[int, Address] = self._recv(buffer)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            if exc.errno in _TRANSIENT_ERRNOS:
                return None
            raise MediaError(f"receive on {format_address(self._local)}: {exc}") from exc
        if self._ipv6:
            source = result[1]
            return result[0], (source[0], source[1])
        return result  # an IPv4 source is (host, port) already

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
        errno.ENOBUFS,
        errno.EAGAIN,
        errno.EPERM,
    }
)
"""What a send or receive may meet on a working machine, each only a lost datagram: the transport goes
on (its loss recovery and timeouts do the rest) instead of failing the node."""


class UdpNetwork:
    """Real UDP sockets and the system clock (or another injected clock)."""

    def __init__(self, clock: Clock | None = None, *, so_rcvbuf: int = DEFAULT_SO_RCVBUF) -> None:
        self._clock: Clock = SystemClock() if clock is None else clock
        self.tap: Tap | None = None
        self.so_rcvbuf = so_rcvbuf

    @property
    def clock(self) -> Clock:
        return self._clock

    def open(self, address: Address) -> UdpSocket:
        return UdpSocket(self, self.resolve(address), self.so_rcvbuf)

    def resolve(self, address: Address) -> Address:
        host, port = address
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as exc:
            raise MediaError(f"cannot resolve {format_address(address)}: {exc}") from exc
        infos.sort(key=lambda info: info[0] != socket.AF_INET)  # prefer IPv4, as Aeron does
        resolved = infos[0][4]
        return (str(resolved[0]), int(resolved[1]))


def format_address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
