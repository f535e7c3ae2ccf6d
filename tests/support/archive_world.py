"""A small world of transports and archives for archive tests: over the simulated network and disk, or
over real UDP on 127.0.0.1 and real files.

Every party's duty cycle runs in ``step``; ``run_until`` steps until a condition holds, within a bound
(virtual time in the simulator, wall-clock time for real UDP). A synchronous ``ArchiveClient`` is given
``world.step`` as its invoker, so the archives and transports keep working while it waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cluster.archive.archive import Archive
from cluster.archive.client import ArchiveClient
from cluster.archive.context import ArchiveContext
from cluster.storage import RealStorage, Storage
from cluster.storage.sim import SimDisk
from cluster.transport.driver import Transport, TransportConfig
from cluster.transport.media import UdpNetwork
from cluster.transport.simnet import SimNetwork

TERM_LENGTH = 64 * 1024
SEGMENT_LENGTH = 256 * 1024
EPOCH_BASE_MS = 1_796_527_000_000


class World:
    def __init__(self, kind: str, *, seed: int = 1, tmp_path: Path | None = None) -> None:
        self.kind = kind
        self.seed = seed
        self.tmp_path = tmp_path
        self.transports: list[Transport] = []
        self.archives: list[Archive] = []
        self.agents: list[Callable[[], int]] = []
        if kind == "sim":
            self.network: SimNetwork | UdpNetwork = SimNetwork(seed, epoch_base_ms=EPOCH_BASE_MS)
            self.disk: SimDisk | None = SimDisk(seed)
        else:
            self.network = UdpNetwork()
            self.disk = None
        self._hosts = 0

    @property
    def clock(self):  # type: ignore[no-untyped-def]
        return self.network.clock

    def host(self) -> str:
        """A host address for a new party: its own in the simulator, 127.0.0.1 for real UDP."""
        self._hosts += 1
        return f"10.0.0.{self._hosts}" if self.kind == "sim" else "127.0.0.1"

    def transport(self, host: str, **config: object) -> Transport:
        transport = Transport(
            self.network,
            TransportConfig(
                bind_host=host,
                udp_term_length=TERM_LENGTH,
                ipc_term_length=TERM_LENGTH,
                seed=self.seed + len(self.transports),
                **config,  # type: ignore[arg-type]
            ),
        )
        self.transports.append(transport)
        self.agents.append(transport.do_work)
        return transport

    def storage(self, name: str) -> Storage:
        if self.disk is not None:
            return self.disk.storage(name)
        assert self.tmp_path is not None
        return RealStorage(self.tmp_path / name, create=True)

    def archive(self, transport: Transport, name: str, **context: object) -> Archive:
        context.setdefault("segment_file_length", SEGMENT_LENGTH)
        ctx = ArchiveContext(
            storage=self.storage(name),
            seed=self.seed + 100 + len(self.archives),
            **context,  # type: ignore[arg-type]
        )
        archive = Archive(transport, ctx)
        self.archives.append(archive)
        self.agents.append(archive.do_work)
        return archive

    def archive_on(self, transport: Transport, storage: Storage, **context: object) -> Archive:
        """An archive on an existing directory (e.g. one Java's archive wrote)."""
        ctx = ArchiveContext(storage=storage, seed=self.seed + 100 + len(self.archives), **context)  # type: ignore[arg-type]
        archive = Archive(transport, ctx)
        self.archives.append(archive)
        self.agents.append(archive.do_work)
        return archive

    def client(
        self, transport: Transport, control_channel: str, response_host: str, **kwargs: object
    ) -> ArchiveClient:
        response = (
            "aeron:ipc"
            if control_channel.startswith("aeron:ipc")
            else f"aeron:udp?endpoint={response_host}:0"
        )
        return ArchiveClient.connect(
            transport,
            control_request_channel=control_channel,
            control_response_channel=response,
            invoker=self.step,
            **kwargs,  # type: ignore[arg-type]
        )

    def step(self) -> int:
        work = 0
        for agent in list(self.agents):
            work += agent()
        if isinstance(self.network, SimNetwork):
            network = self.network
            if work == 0:
                now = network.clock.nano_time()
                next_ns = network.next_delivery_ns()
                target = now + 1_000_000 if next_ns is None else min(next_ns, now + 1_000_000)
                network.clock.set(max(target, now + 1))
            else:
                network.advance(1_000)
        elif work == 0:
            time.sleep(0.0001)
        return work

    def run_until(self, condition: Callable[[], bool], *, timeout_s: float = 10.0) -> bool:
        if isinstance(self.network, SimNetwork):
            deadline = self.network.clock.nano_time() + int(timeout_s * 1e9)
            while not condition():
                if self.network.clock.nano_time() >= deadline:
                    return bool(condition())
                self.step()
            return True
        wall_deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() >= wall_deadline:
                return bool(condition())
            self.step()
        return True

    def close(self) -> None:
        for archive in self.archives:
            archive.close()
        for transport in self.transports:
            transport.close()
