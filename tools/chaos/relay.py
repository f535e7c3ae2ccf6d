"""A userspace relay that delays, reorders and duplicates the UDP packets members send each other: the
network faults this kernel cannot make (it has no netem qdisc), on real node processes.

Theory of operation
-------------------
A ``NetLab`` built with a relay (``NetLab.create(members, relay=True)``) has one more namespace, the
relay's, on the lab's bridge with the address ``10.<a>.<b>.253``, and in every member's namespace a
route to each other member through it. A member's packet for another member therefore leaves with the
relay's MAC address and the other member's IP address. The relay's namespace does not forward packets
(``net.ipv4.ip_forward`` is 0 there, so its kernel drops them quietly); ``python -m tools.chaos.relay``,
running in that namespace, reads each one from a packet socket instead (``AF_PACKET``: only frames
addressed to the relay, not its own) and sends it on, when its fault says so, through a raw IP socket
(``IPPROTO_RAW``) exactly as it came: the same source address and port, so the receiver cannot tell it
from a direct packet, and its replies come back through the relay the same way. The UDP checksum is
set to 0 ("none", which IPv4 allows): the sender's checksum may be left to an offload the relay's copy
never gets. Clients and the harness talk to the members directly, never through the relay.

What happens to a packet depends on its link, ``(source, destination)``, and the ``LinkFault`` set for
it (none: sent on at once):

* ``delay_ms``: held that long;
* ``jitter_ms``: held a further uniform 0 to ``jitter_ms``, drawn per packet, so packets pass one
  another: reordering;
* ``duplicate``: this percentage of packets is sent twice, the copy with a jitter of its own.

``RelayCore`` is that decision, sans-IO and seeded (``random.Random(seed)``); the process around it only
moves bytes. The harness changes the faults with ``RelayControl.set``: it writes the control file
(JSON, temp file renamed over), sends SIGUSR1, and waits for the relay to write the file's generation
back into ``<control>.applied``. A control file that is not what it should be is reported on stderr and
changes nothing. The relay ends on SIGTERM (``NetLab.close`` sends it, by its pid).
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import ipaddress
import itertools
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Final

__all__ = ["RELAY_OCTET", "LinkFault", "RelayControl", "RelayCore", "RelayError", "main", "parse_control"]

RELAY_OCTET: Final = 253
"""The relay's address in the lab's subnet: ``10.<a>.<b>.253``."""
ETH_P_IP: Final = 0x0800
IPPROTO_UDP: Final = 17
MAX_HOLD_MS: Final = 10_000
"""No fault holds a packet longer than this (``delay_ms + jitter_ms``)."""
APPLY_TIMEOUT_S: Final = 5.0


class RelayError(Exception):
    """A control file or a relay argument is not what it should be, or the relay did not answer."""


@dataclass(frozen=True, slots=True)
class LinkFault:
    """What the relay does to the packets of one link (module docstring)."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    duplicate: int = 0  # percent

    def __post_init__(self) -> None:
        hold = self.delay_ms + self.jitter_ms  # NaN (JSON allows it) fails every comparison: refused here
        if not (self.delay_ms >= 0 and self.jitter_ms >= 0 and hold <= MAX_HOLD_MS):
            raise RelayError(
                f"delay_ms and jitter_ms must be >= 0 and hold a packet at most {MAX_HOLD_MS} ms, not "
                f"{self.delay_ms} and {self.jitter_ms}"
            )
        if not 0 <= self.duplicate <= 100:
            raise RelayError(f"duplicate is a percentage, 0 to 100, not {self.duplicate}")

    def describe(self) -> str:
        parts = []
        if self.delay_ms or self.jitter_ms:
            parts.append(f"delayed {self.delay_ms:g} ms + 0-{self.jitter_ms:g} ms jitter")
        if self.duplicate:
            parts.append(f"{self.duplicate}% duplicated")
        return ", ".join(parts) or "passed on at once"


Link = tuple[str, str]  # (source address, destination address)


class RelayCore:
    """Which packets go out when (module docstring); times in nanoseconds of any one clock."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.faults: dict[Link, LinkFault] = {}
        self._held: list[tuple[int, int, str, bytes]] = []  # (due, sequence, destination, packet)
        self._sequence = itertools.count()
        self.relayed = 0
        self.duplicated = 0

    def set_faults(self, faults: Mapping[Link, LinkFault]) -> None:
        """Make ``faults`` the only faults; what is held already goes out when it was due."""
        self.faults = dict(faults)

    def _hold_ns(self, fault: LinkFault) -> int:
        jitter = self.random.uniform(0.0, fault.jitter_ms) if fault.jitter_ms else 0.0
        return round((fault.delay_ms + jitter) * 1_000_000)

    def on_packet(self, now_ns: int, source: str, destination: str, packet: bytes) -> None:
        """A packet from ``source`` for ``destination`` arrived."""
        fault = self.faults.get((source, destination))
        copies = 1
        if fault is not None and fault.duplicate and self.random.randrange(100) < fault.duplicate:
            copies = 2
            self.duplicated += 1
        for _ in range(copies):
            due = now_ns if fault is None else now_ns + self._hold_ns(fault)
            heapq.heappush(self._held, (due, next(self._sequence), destination, packet))

    def due(self, now_ns: int) -> list[tuple[str, bytes]]:
        """The packets to send now, in the order they fall due (equal times: the order they came)."""
        out = []
        held = self._held
        while held and held[0][0] <= now_ns:
            _, _, destination, packet = heapq.heappop(held)
            out.append((destination, packet))
        self.relayed += len(out)
        return out

    def next_due_ns(self) -> int | None:
        return self._held[0][0] if self._held else None


def parse_control(text: str, members: Iterable[str]) -> tuple[int, dict[Link, LinkFault]]:
    """A control file: ``{"generation": G, "links": [{"from": A, "to": B, "delay_ms": ..., "jitter_ms":
    ..., "duplicate": ...}, ...]}`` with A and B member addresses; the generation and the faults.
    ``RelayError`` for anything else."""
    known = set(members)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise RelayError(f"the control file is not JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("links"), list):
        raise RelayError('the control file must be an object with a "links" list')
    generation = document.get("generation", 0)
    if not isinstance(generation, int) or isinstance(generation, bool):
        raise RelayError(f'"generation" must be an integer, not {generation!r}')
    faults: dict[Link, LinkFault] = {}
    for entry in document["links"]:
        if not isinstance(entry, dict):
            raise RelayError(f"a link must be an object, not {entry!r}")
        source, destination = entry.get("from"), entry.get("to")
        if source not in known or destination not in known or source == destination:
            raise RelayError(
                f"a link joins two different members of {sorted(known)}, not {source!r} -> {destination!r}"
            )
        values = {key: entry.get(key, 0) for key in ("delay_ms", "jitter_ms", "duplicate")}
        for key, value in values.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise RelayError(f"{key} must be a number, not {value!r}")
        extra = set(entry) - {"from", "to", *values}
        if extra:
            raise RelayError(f"unknown link keys {sorted(extra)}")
        if not isinstance(values["duplicate"], int):
            raise RelayError(f"duplicate must be a whole percentage, not {values['duplicate']!r}")
        faults[(source, destination)] = LinkFault(
            float(values["delay_ms"]), float(values["jitter_ms"]), int(values["duplicate"])
        )
    return generation, faults


def render_control(generation: int, faults: Mapping[Link, LinkFault]) -> str:
    links = [
        {"from": a, "to": b, "delay_ms": f.delay_ms, "jitter_ms": f.jitter_ms, "duplicate": f.duplicate}
        for (a, b), f in sorted(faults.items())
    ]
    return json.dumps({"generation": generation, "links": links}) + "\n"


# ---------------------------------------------------------------------------------------- the harness's side


class RelayControl:
    """The harness's handle on a running relay: its pid and control file."""

    def __init__(self, pid: int, control: Path) -> None:
        self.pid = pid
        self.control = control
        self.generation = 0

    @classmethod
    def start(
        cls, command: Sequence[str], control: Path, log: Path, cwd: Path
    ) -> tuple[RelayControl, subprocess.Popen[bytes]]:
        """Start the relay with ``command`` (which names ``control``), its output appended to ``log``, and
        wait until it has read its first control file (no faults): only then may it be signalled."""
        control.write_text(render_control(0, {}))
        applied = control.with_name(control.name + ".applied")
        applied.unlink(missing_ok=True)
        with log.open("ab") as output:
            process = subprocess.Popen(
                list(command), stdin=subprocess.DEVNULL, stdout=output, stderr=output, cwd=cwd
            )
        deadline = time.monotonic() + APPLY_TIMEOUT_S * 4  # an interpreter starting on a loaded machine
        while not applied.exists():
            if process.poll() is not None:
                raise RelayError(f"the relay ended at start, {process.returncode}: see {log}")
            if time.monotonic() >= deadline:
                process.kill()
                process.wait()
                raise RelayError(f"the relay did not start in {APPLY_TIMEOUT_S * 4} s: see {log}")
            time.sleep(0.02)
        return cls(process.pid, control), process

    def set(self, faults: Mapping[Link, LinkFault], *, timeout_s: float = APPLY_TIMEOUT_S) -> None:
        """Make ``faults`` the relay's faults, and wait until it says so; ``RelayError`` if it does not
        in ``timeout_s``."""
        self.generation += 1
        temporary = self.control.with_name(self.control.name + ".tmp")
        temporary.write_text(render_control(self.generation, faults))
        os.replace(temporary, self.control)
        applied = self.control.with_name(self.control.name + ".applied")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                os.kill(self.pid, signal.SIGUSR1)
            except ProcessLookupError:
                raise RelayError(f"the relay (pid {self.pid}) is gone") from None
            time.sleep(0.01)
            try:
                if int(applied.read_text() or -1) >= self.generation:
                    return
            except (OSError, ValueError):
                pass
            if time.monotonic() >= deadline:
                raise RelayError(f"the relay (pid {self.pid}) did not take its faults in {timeout_s} s")

    def heal(self) -> None:
        self.set({})


# ---------------------------------------------------------------------------------------- the process


def _udp_packet(frame: bytes, members: frozenset[str]) -> tuple[str, str, bytearray] | None:
    """An IPv4 UDP packet between two members, its checksum cleared; ``None`` for anything else."""
    if len(frame) < 20 or frame[0] >> 4 != 4 or frame[9] != IPPROTO_UDP:
        return None
    source, destination = socket.inet_ntoa(frame[12:16]), socket.inet_ntoa(frame[16:20])
    if source not in members or destination not in members:
        return None
    packet = bytearray(frame)
    header = (frame[0] & 0x0F) * 4
    first_fragment = (int.from_bytes(frame[6:8], "big") & 0x1FFF) == 0
    if first_fragment and len(packet) >= header + 8:
        packet[header + 6 : header + 8] = b"\0\0"
    return source, destination, packet


def run(interface: str, members: Sequence[str], control: Path, seed: int) -> int:
    member_set = frozenset(members)
    core = RelayCore(seed)
    reload = True
    stop = False

    def on_usr1(_signum: int, _frame: FrameType | None) -> None:
        nonlocal reload
        reload = True

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGTERM, on_term)
    receiver = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    receiver.bind((interface, ETH_P_IP))
    receiver.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    applied = control.with_name(control.name + ".applied")
    print(f"relay: relaying {', '.join(sorted(member_set))} on {interface}", file=sys.stderr, flush=True)
    while not stop:
        if reload:
            reload = False
            try:
                generation, faults = parse_control(control.read_text(), member_set)
            except FileNotFoundError:
                pass
            except (OSError, RelayError) as error:
                print(f"relay: control file refused: {error}", file=sys.stderr, flush=True)
            else:
                core.set_faults(faults)
                applied.write_text(str(generation))
        now = time.monotonic_ns()
        for destination, packet in core.due(now):
            # a full buffer or an unreachable member: the packet is lost, as on a wire
            with contextlib.suppress(OSError):
                sender.sendto(packet, (destination, 0))
        next_ns = core.next_due_ns()
        timeout = 0.05 if next_ns is None else max(0.0, min(0.05, (next_ns - now) / 1e9))
        try:
            readable, _, _ = select.select([receiver], [], [], timeout)
        except InterruptedError:
            continue
        if not readable:
            continue
        for _ in range(256):
            try:
                frame, address = receiver.recvfrom(65_535)
            except (BlockingIOError, InterruptedError):
                break
            if address[2] != socket.PACKET_HOST:
                continue  # the relay's own packets going out, or frames for another host
            parsed = _udp_packet(frame, member_set)
            if parsed is not None:
                core.on_packet(time.monotonic_ns(), parsed[0], parsed[1], bytes(parsed[2]))
    print(f"relay: stopped; {core.relayed} packets relayed, {core.duplicated} duplicated", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.chaos.relay", description=__doc__.splitlines()[0])
    parser.add_argument("--interface", default="eth0")
    parser.add_argument("--members", required=True, help="the members' addresses, comma-separated")
    parser.add_argument("--control", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    members = [item for item in args.members.split(",") if item]
    try:
        for member in members:
            ipaddress.IPv4Address(member)
    except ValueError as error:
        parser.error(str(error))
    return run(args.interface, members, args.control, args.seed)


if __name__ == "__main__":
    sys.exit(main())
