"""Writing pcap/pcapng captures with dpkt, and recording datagrams into them.

``udp_packet`` builds an IPv4 or IPv6 packet around a UDP payload (by the form of the addresses) with
correct lengths and checksums, so Wireshark/tshark and ``python -m tools decode`` read it as what was
sent. ``link_frame`` wraps it in one of the link layers the decoder reads (``LINKS``); ``write_capture``
writes ``CapturedDatagram`` records to a file. ``TapRecorder`` is a ``Network.tap``: it records every
datagram our sockets send, with the real source and destination addresses.
"""

from __future__ import annotations

import ipaddress
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import dpkt  # type: ignore[import-untyped]

Address = tuple[str, int]

LINKS = {"ethernet": dpkt.pcap.DLT_EN10MB, "null": dpkt.pcap.DLT_NULL, "raw": 101, "sll": 113, "sll2": 276}
LOOPBACK_V4: Address = ("127.0.0.1", 0)
LOOPBACK_V6: Address = ("::1", 0)


@dataclass(frozen=True, slots=True)
class CapturedDatagram:
    """One UDP datagram as it went over the wire."""

    time_s: float
    source: Address
    destination: Address
    payload: bytes


def _is_ipv6(address: Address) -> bool:
    return ":" in address[0]


def udp_packet(payload: bytes, source: Address, destination: Address) -> bytes:
    """An IPv4 or IPv6 packet (by the addresses' form) carrying ``payload`` in UDP; dpkt fills in the
    lengths given here and the checksums (the IPv4 header's, and UDP's over the pseudo-header)."""
    ipv6 = _is_ipv6(source)
    if ipv6 != _is_ipv6(destination):
        raise ValueError(f"mixed address families: {source} -> {destination}")
    src = ipaddress.ip_address(source[0]).packed
    dst = ipaddress.ip_address(destination[0]).packed
    udp = dpkt.udp.UDP(sport=source[1], dport=destination[1], data=payload)
    udp.ulen = 8 + len(payload)
    if ipv6:
        ip6 = dpkt.ip6.IP6(src=src, dst=dst, nxt=17, hlim=64, data=udp)
        ip6.plen = udp.ulen
        return bytes(ip6)
    ip = dpkt.ip.IP(src=src, dst=dst, p=17, ttl=64, data=udp)
    ip.len = 20 + udp.ulen
    return bytes(ip)


def link_frame(link: str, ip: bytes) -> bytes:
    """``ip`` wrapped in the link layer ``link`` (a key of ``LINKS``)."""
    ipv6 = ip[0] >> 4 == 6
    ethertype = 0x86DD if ipv6 else 0x0800
    if link == "ethernet":
        return bytes(dpkt.ethernet.Ethernet(src=b"\2" * 6, dst=b"\4" * 6, type=ethertype, data=ip))
    if link == "null":
        return struct.pack("<I", 10 if ipv6 else 2) + ip
    if link == "raw":
        return ip
    if link == "sll":
        return struct.pack(">HHH8sH", 0, 772, 6, b"", ethertype) + ip
    if link == "sll2":
        return struct.pack(">HHIHBB8s", ethertype, 0, 1, 772, 0, 6, b"") + ip
    raise ValueError(f"unknown link type {link!r}")


def write_capture(
    path: Path, datagrams: Iterable[CapturedDatagram], *, fmt: str = "pcap", link: str = "ethernet"
) -> Path:
    """Write ``datagrams`` to ``path`` as a pcap or pcapng capture with link layer ``link``."""
    with path.open("wb") as f:
        module = dpkt.pcap if fmt == "pcap" else dpkt.pcapng
        writer = module.Writer(f, snaplen=65535, linktype=LINKS[link])
        for datagram in datagrams:
            frame = link_frame(link, udp_packet(datagram.payload, datagram.source, datagram.destination))
            writer.writepkt(frame, ts=datagram.time_s)
    return path


class TapRecorder:
    """A ``Network.tap`` that records every datagram sent, at most ``limit`` of them.

    A socket bound to the wildcard address reports it as its source; the recorder shows the loopback
    address of the same family instead, which is where such a datagram to a loopback peer comes from.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self.datagrams: list[CapturedDatagram] = []
        self.overflowed = False

    def __call__(self, source: Address, destination: Address, data: bytes) -> None:
        if len(self.datagrams) >= self.limit:
            self.overflowed = True
            return
        if source[0] in ("0.0.0.0", "::"):
            source = ((LOOPBACK_V6 if _is_ipv6(source) else LOOPBACK_V4)[0], source[1])
        self.datagrams.append(CapturedDatagram(time.time(), source, destination, bytes(data)))


def ip_fragments(packet: bytes, fragment_payload: int, identification: int = 0x1234) -> list[bytes]:
    """Split an IPv4 or IPv6 ``packet`` (as ``udp_packet`` makes it) into IP fragments carrying at most
    ``fragment_payload`` bytes (a multiple of 8) of its payload each, as a host does for a datagram
    larger than the link MTU."""
    assert fragment_payload % 8 == 0 and fragment_payload > 0
    if packet[0] >> 4 == 6:
        ip6 = dpkt.ip6.IP6(packet)
        payload = bytes(ip6.data)
        pieces = []
        for offset in range(0, len(payload), fragment_payload):
            chunk = payload[offset : offset + fragment_payload]
            more = offset + fragment_payload < len(payload)
            header = struct.pack(">BBHI", 17, 0, offset | int(more), identification)
            fragment = dpkt.ip6.IP6(src=ip6.src, dst=ip6.dst, nxt=44, hlim=64, data=header + chunk)
            fragment.plen = len(header) + len(chunk)
            pieces.append(bytes(fragment))
        return pieces
    ip = dpkt.ip.IP(packet)
    payload = bytes(ip.data)
    pieces = []
    for offset in range(0, len(payload), fragment_payload):
        chunk = payload[offset : offset + fragment_payload]
        more = offset + fragment_payload < len(payload)
        fragment = dpkt.ip.IP(src=ip.src, dst=ip.dst, p=17, ttl=64, id=identification, data=chunk)
        fragment.mf = int(more)
        fragment.offset = offset // 8
        fragment.len = 20 + len(chunk)
        pieces.append(bytes(fragment))
    return pieces


def write_frames(path: Path, frames: Iterable[bytes], *, link: str = "ethernet") -> Path:
    """Write raw IP packets (e.g. ``ip_fragments``), each in link layer ``link``, as a pcap file."""
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=65535, linktype=LINKS[link])
        for i, ip in enumerate(frames):
            writer.writepkt(link_frame(link, ip), ts=1.0 + i)
    return path
