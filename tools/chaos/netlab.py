"""A private network for one chaos run: each member in a network namespace of its own, joined to the
others by a bridge, with nftables rules that the nemesis changes to partition the members or lose
their packets. The kernel does the dropping; the nodes run unchanged.

Theory of operation
-------------------
``NetLab.create(members)`` builds, as root:

* a bridge ``acb<tag>`` in the caller's namespace with the address ``10.<a>.<b>.254/24``: the harness's
  clients live there and reach the members through it;
* for member ``i`` a namespace ``aeron-chaos-<tag>-<i>`` with its loopback up and one end of a veth
  pair, ``eth0``, with the address ``10.<a>.<b>.<i + 1>/24``; the pair's other end (``acv<tag>m<i>``) is
  a port of the bridge;
* in each member's namespace an nftables table ``inet aeron_chaos`` with an input and an output chain
  (policy accept), empty until a fault needs rules.

``<tag>`` is unique to the run (from the process id and a counter) and the subnet is one that no
interface of the machine uses, so runs side by side do not meet. A member process runs in its
namespace through ``ip netns exec <namespace> <command>`` (``prefix(member)``): ``ip`` enters the
namespace and then replaces itself with the command, so the pid the harness holds is the node's own.

A fault is a set of ``Rule`` s (``apply``): each drops one member's packets, inbound (``input``) or
outbound (``output``), from or to one peer address, or a random share of them (nftables'
``numgen random``). ``apply`` replaces every member's table in one ``nft -f`` per member, so a fault
starts and ends at once on each member; ``heal()`` empties them all. The partition shapes the nemesis
draws are built from rules here (``isolate``, ``split``, ``one_way``, ``bridge``, ``cut_clients``,
``lossy``).

With ``relay=True`` the lab also has a namespace ``aeron-chaos-<tag>-relay`` on the bridge, with the
address ``10.<a>.<b>.253``, running ``python -m tools.chaos.relay``, and every member routes its packets
for the other members through it (``tools.chaos.relay``: delay, reordering and duplication;
``set_link_faults``). Without faults the relay sends each packet on at once.

``close()`` stops the relay by its pid, then deletes the namespaces (which destroys the veth pairs in
them) and the bridge. It is
idempotent and runs in the harness's ``finally``; ``sweep_stale()`` removes what a killed harness left
behind (namespaces of a tag whose process is gone).

``unavailable()`` says why this machine cannot host a lab (not root; no ``ip`` or ``nft``; the kernel
refuses a namespace, a veth or nftables), or ``None``. This kernel has no netem qdisc: drops are
nftables rules, delay, reordering and duplication the relay's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from tools.chaos.relay import RELAY_OCTET, LinkFault, RelayControl, RelayError

__all__ = [
    "CLIENT_HOST_OCTET",
    "NetLab",
    "NetLabError",
    "Rule",
    "bridge",
    "cut_clients",
    "isolate",
    "lossy",
    "one_way",
    "split",
    "sweep_stale",
    "unavailable",
]

NAMESPACE_PREFIX: Final = "aeron-chaos-"
TABLE: Final = "aeron_chaos"
CLIENT_HOST_OCTET: Final = 254
COMMAND_TIMEOUT_S: Final = 20.0
SUBNET_SECOND_OCTETS: Final = range(200, 250)
"""``10.<a>.<b>.0/24`` with ``a`` in this range: far from the private ranges a machine usually has."""

_counter = itertools.count()


class NetLabError(Exception):
    """The lab could not be built, changed or removed; the message has the command and what it said."""


def _run(args: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    """Run a command; its stdout. ``check``: ``NetLabError`` if it fails; otherwise a failure (even one to
    run it at all) is only an empty answer -- what cleanup wants, which must go on to the next step."""
    try:
        done = subprocess.run(
            list(args),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        if not check:
            return ""
        raise NetLabError(f"{' '.join(args)}: {error}") from None
    if check and done.returncode != 0:
        raise NetLabError(f"{' '.join(args)}: exit status {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def unavailable() -> str | None:
    """Why no lab can be built here, or ``None`` when one can (checked by building a small one)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"the {tool!r} command is missing (Debian package {package})"
    try:
        lab = NetLab.create(1)
    except NetLabError as error:
        return f"this machine cannot build a network lab: {error}"
    lab.close()
    return None


@dataclass(frozen=True, slots=True)
class Rule:
    """Drop packets at ``member``: ``direction`` "input" drops what arrives from ``peer``, "output" what
    it sends to ``peer`` (an address); ``percent`` below 100 drops that share at random."""

    member: int
    direction: Literal["input", "output"]
    peer: str
    percent: int = 100

    def render(self) -> str:
        """The nftables rule (only on ``eth0``: what a member sends itself goes through its loopback)."""
        if self.direction == "input":
            where = f'iifname "eth0" ip saddr {self.peer}'
        else:
            where = f'oifname "eth0" ip daddr {self.peer}'
        chance = "" if self.percent >= 100 else f" numgen random mod 100 < {self.percent}"
        return f"{where}{chance} drop"


class NetLab:
    """One run's namespaces, bridge and rules (module docstring)."""

    def __init__(self, tag: str, subnet: ipaddress.IPv4Network, members: int) -> None:
        self.tag = tag
        self.subnet = subnet
        self.members = members
        self.bridge = f"acb{tag}"
        self.namespaces = [f"{NAMESPACE_PREFIX}{tag}-{i}" for i in range(members)]
        self.hosts = [str(subnet.network_address + i + 1) for i in range(members)]
        self.client_host = str(subnet.network_address + CLIENT_HOST_OCTET)
        self.rules: tuple[Rule, ...] = ()
        self.closed = False
        self.relay_namespace: str | None = None
        self.relay_host = str(subnet.network_address + RELAY_OCTET)
        self.relay: RelayControl | None = None
        self._relay_process: subprocess.Popen[bytes] | None = None
        self.link_faults: dict[tuple[int, int], LinkFault] = {}

    # ------------------------------------------------------------------------------------ building

    @classmethod
    def create(
        cls, members: int, *, relay: bool = False, directory: Path | None = None, seed: int = 0
    ) -> NetLab:
        """Build a lab for ``members`` members (module docstring); with ``relay``, the relay too, its
        control file and log in ``directory`` and its draws from ``seed``. ``NetLabError`` if the kernel
        or the tools refuse, with whatever was built removed again."""
        if not 1 <= members <= 9:
            raise NetLabError(f"a lab holds 1 to 9 members, not {members}")
        if relay and directory is None:
            raise NetLabError("a lab with a relay needs a directory for the relay's files")
        tag = f"{os.getpid() % 100_000:05d}{next(_counter) % 100:02d}"
        lab = cls(tag, _free_subnet(), members)
        try:
            lab._build()
            if relay:
                assert directory is not None
                lab._start_relay(directory, seed)
        except BaseException:
            lab.close()
            raise
        return lab

    def _build(self) -> None:
        prefix = self.subnet.prefixlen
        _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        _run(["ip", "addr", "add", f"{self.client_host}/{prefix}", "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])
        for member, namespace in enumerate(self.namespaces):
            self._add_namespace(namespace, f"acv{self.tag}m{member}", self.hosts[member])
        self.heal()

    def _add_namespace(
        self, namespace: str, outside: str, address: str, *, no_forwarding: bool = False
    ) -> None:
        """A namespace with its loopback up and a veth pair into the bridge: ``eth0`` inside, with
        ``address``; ``outside`` the bridge's port."""
        _run(["ip", "netns", "add", namespace])
        _run(["ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", namespace])
        _run(["ip", "link", "set", outside, "master", self.bridge])
        _run(["ip", "link", "set", outside, "up"])
        inside = ["ip", "netns", "exec", namespace]
        if no_forwarding:
            _run([*inside, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0"])
        _run([*inside, "ip", "link", "set", "lo", "up"])
        _run([*inside, "ip", "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0"])
        _run([*inside, "ip", "link", "set", "eth0", "up"])

    def _start_relay(self, directory: Path, seed: int) -> None:
        namespace = self.relay_namespace = f"{NAMESPACE_PREFIX}{self.tag}-relay"
        self._add_namespace(namespace, f"acv{self.tag}r", self.relay_host, no_forwarding=True)
        inside = ["ip", "netns", "exec", namespace]
        for member in range(self.members):  # each member reaches the others through the relay
            for other, host in enumerate(self.hosts):
                if other != member:
                    _run([*self.prefix(member), "ip", "route", "add", f"{host}/32", "via", self.relay_host])
        directory.mkdir(parents=True, exist_ok=True)
        control = directory / "relay.json"
        command = [
            *inside,
            sys.executable,
            "-m",
            "tools.chaos.relay",
            "--members",
            ",".join(self.hosts),
            "--control",
            str(control),
            "--seed",
            str(seed),
        ]
        try:
            self.relay, self._relay_process = RelayControl.start(
                command, control, directory / "relay.log", Path(__file__).resolve().parents[2]
            )
        except RelayError as error:
            raise NetLabError(f"the relay did not start: {error}") from None

    def set_link_faults(self, faults: Mapping[tuple[int, int], LinkFault]) -> None:
        """Make ``faults`` (by ``(sender, receiver)`` member) the relay's only faults."""
        if self.relay is None:
            raise NetLabError("this lab has no relay")
        try:
            self.relay.set({(self.hosts[a], self.hosts[b]): fault for (a, b), fault in faults.items()})
        except RelayError as error:
            raise NetLabError(str(error)) from None
        self.link_faults = dict(faults)

    def prefix(self, member: int) -> list[str]:
        """The words that run a command in member ``member`` 's namespace."""
        return ["ip", "netns", "exec", self.namespaces[member]]

    # ------------------------------------------------------------------------------------ faults

    def apply(self, rules: Iterable[Rule]) -> None:
        """Make ``rules`` the only rules in force (every member's table replaced at once)."""
        rules = tuple(rules)
        for member, namespace in enumerate(self.namespaces):
            chains: dict[str, list[str]] = {"input": [], "output": []}
            for rule in rules:
                if rule.member == member:
                    chains[rule.direction].append(rule.render())
            script = [f"table inet {TABLE}", f"delete table inet {TABLE}", f"table inet {TABLE} {{"]
            for chain, lines in chains.items():
                script.append(f"  chain {chain} {{")
                script.append(f"    type filter hook {chain} priority 0; policy accept;")
                script.extend(f"    {line}" for line in lines)
                script.append("  }")
            script.append("}")
            _run(["ip", "netns", "exec", namespace, "nft", "-f", "-"], stdin="\n".join(script) + "\n")
        self.rules = rules

    def heal(self) -> None:
        """No rules and no relay faults: every packet passes, at once."""
        self.apply(())
        if self.relay is not None and self.link_faults:
            self.set_link_faults({})

    def counters(self) -> str:
        """Every member's ruleset as nftables lists it (for a post-mortem)."""
        return "\n".join(
            _run(["ip", "netns", "exec", namespace, "nft", "list", "ruleset"], check=False)
            for namespace in self.namespaces
        )

    # ------------------------------------------------------------------------------------ removal

    def close(self) -> None:
        """Delete the namespaces and the bridge; idempotent, and never raises for what is already gone."""
        if self.closed:
            return
        self.closed = True
        process = self._relay_process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for namespace in [*self.namespaces, *([self.relay_namespace] if self.relay_namespace else [])]:
            _run(["ip", "netns", "delete", namespace], check=False)
        _run(["ip", "link", "delete", self.bridge], check=False)

    def __enter__(self) -> NetLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------- the shapes


def _both_ways(member: int, peer: str) -> list[Rule]:
    return [Rule(member, "input", peer), Rule(member, "output", peer)]


def isolate(lab: NetLab, member: int) -> list[Rule]:
    """``member`` cut from every other member, both ways (clients still reach it)."""
    return split(lab, [member])


def split(lab: NetLab, side: Iterable[int]) -> list[Rule]:
    """The members in ``side`` cut from the rest, both ways: two halves that each talk within."""
    inside = set(side)
    outside = [m for m in range(lab.members) if m not in inside]
    rules: list[Rule] = []
    for member in inside:
        for other in outside:
            rules += _both_ways(member, lab.hosts[other])
    return rules


def one_way(lab: NetLab, sender: int, receiver: int) -> list[Rule]:
    """``receiver`` no longer hears ``sender`` (dropped as it arrives); the other way still works."""
    return [Rule(receiver, "input", lab.hosts[sender])]


def bridge(lab: NetLab, middle: int) -> list[Rule]:
    """The members other than ``middle`` in two halves that cannot reach each other, with ``middle``
    reaching both: the bridge partition (each half plus ``middle`` is a majority of 3 or 5)."""
    others = [m for m in range(lab.members) if m != middle]
    half = others[: len(others) // 2]
    rest = others[len(others) // 2 :]
    rules: list[Rule] = []
    for member in half:
        for other in rest:
            rules += _both_ways(member, lab.hosts[other])
            rules += _both_ways(other, lab.hosts[member])
    return rules


def cut_clients(lab: NetLab, members: Iterable[int]) -> list[Rule]:
    """The clients cannot reach ``members``, nor they the clients."""
    return [rule for member in members for rule in _both_ways(member, lab.client_host)]


def lossy(lab: NetLab, members: Iterable[int], percent: int) -> list[Rule]:
    """``percent`` of every packet arriving at each of ``members`` is dropped, from members and
    clients alike."""
    return [Rule(member, "input", str(lab.subnet), percent) for member in members]


# ---------------------------------------------------------------------------------------- the machine


def _used_networks() -> list[ipaddress.IPv4Network]:
    text = _run(["ip", "-4", "-o", "addr", "show"], check=False)
    return [
        ipaddress.IPv4Network(match, strict=False)
        for match in re.findall(r"inet (\d+\.\d+\.\d+\.\d+/\d+)", text)
    ]


def _free_subnet() -> ipaddress.IPv4Network:
    used = _used_networks()
    start = os.getpid() * 7 + next(_counter)
    for step in range(len(SUBNET_SECOND_OCTETS) * 256):
        index = (start + step) % (len(SUBNET_SECOND_OCTETS) * 256)
        a = SUBNET_SECOND_OCTETS[index // 256]
        candidate = ipaddress.IPv4Network(f"10.{a}.{index % 256}.0/24")
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise NetLabError("no free 10.x.y.0/24 subnet for a lab")


def sweep_stale() -> list[str]:
    """Delete the namespaces (and bridges) of labs whose harness process is gone; what was deleted."""
    removed: list[str] = []
    listing = _run(["ip", "netns", "list"], check=False)
    pattern = rf"^({re.escape(NAMESPACE_PREFIX)}(\d{{5}})\d{{2}}-(?:\d+|relay))"
    for name in re.findall(pattern, listing, re.MULTILINE):
        namespace, pid_text = name
        if _alive_with_pid_suffix(int(pid_text)):
            continue
        _run(["ip", "netns", "delete", namespace], check=False)
        removed.append(namespace)
    links = _run(["ip", "-o", "link", "show", "type", "bridge"], check=False)
    for bridge_name, pid_text in re.findall(r"\d+: (acb(\d{5})\d{2})[:@]", links):
        if not _alive_with_pid_suffix(int(pid_text)):
            _run(["ip", "link", "delete", bridge_name], check=False)
            removed.append(bridge_name)
    return removed


def _alive_with_pid_suffix(suffix: int) -> bool:
    """Some running process has a pid ending in these five digits (the tag keeps only those)."""
    with contextlib.suppress(OSError):
        return any(int(entry) % 100_000 == suffix for entry in os.listdir("/proc") if entry.isdigit())
    return True
