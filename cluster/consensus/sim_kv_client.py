"""``KvClient``: a simulated client of the key-value service that records its history for the
linearizability checker (``cluster.sim.linearizability``).

Theory of operation
-------------------
Each client is the real ``AeronCluster`` on a host of its own on the simulated network. It keeps one
request outstanding at a time: a read, a write or a compare-and-set on a few shared keys, chosen by its
own seeded random number generator, each with a request id of its own. The operation's *call* is the
instant its request left (``offer`` took it), its *return* the instant the reply with its request id
arrived. A request with no reply within ``timeout_ns`` -- lost with a leader, or its session closed under
it -- is recorded as *indeterminate*: the client cannot tell whether it took effect, and the checker lets
it take effect at any instant after its call, or never. A late reply to it is ignored. After two such
timeouts in a row the client opens a new session: the cluster may have closed its session while the
CLOSED event could not reach it. Values written
are unique, so a read names the write it saw.

Histories use the checker's key-value model: inputs ``("read", key)``, ``("write", key, value)``,
``("cas", key, expected, new)``; outputs the value read, ``None`` for a write, whether a
compare-and-set swapped.
"""

from __future__ import annotations

import random
from typing import Final

from cluster.client.aeron_cluster import AeronCluster, ClusterClientError
from cluster.client.protocol import Message
from cluster.service.kv import KvError, Status, decode_reply, encode_cas, encode_read, encode_write
from cluster.sim.linearizability import UNKNOWN, Operation
from cluster.transport.driver import Transport

__all__ = ["KEYS", "KvClient"]

KEYS: Final = (b"x", b"y")
DEFAULT_TIMEOUT_NS: Final = 3_000_000_000
MAX_THINK_NS: Final = 20_000_000
TIMEOUTS_BEFORE_RECONNECT: Final = 2


class KvClient:
    """One simulated key-value client and its history (see the module docstring)."""

    def __init__(
        self,
        client_id: int,
        transport: Transport,
        ingress_endpoints: str,
        egress_channel: str,
        seed: int,
        *,
        timeout_ns: int = DEFAULT_TIMEOUT_NS,
    ) -> None:
        self.client_id = client_id
        self.transport = transport
        self.ingress_endpoints = ingress_endpoints
        self.egress_channel = egress_channel
        self.random = random.Random(seed)
        self.timeout_ns = timeout_ns
        self.history: list[Operation] = []
        self.session: AeronCluster | None = None
        self._next_request_id = 1
        self._outstanding: tuple[int, tuple[object, ...], int] | None = None  # request id, input, call
        self._next_at = 0
        self._written = 0
        self._timeouts = 0  # requests in a row that got no reply
        self._seen: dict[bytes, bytes | None] = {}  # key -> the last value this client saw it hold
        self.connect_failures = 0

    @property
    def completed(self) -> int:
        return sum(1 for op in self.history if not op.indeterminate)

    def do_work(self, now_ns: int) -> None:
        """Poll the session's replies, give up on a request that timed out, send the next one."""
        session = self._session()
        if session is not None:
            session.poll_egress(lambda event: self._on_event(event, now_ns))
            if session.is_closed:
                self.session = session = None
        outstanding = self._outstanding
        if outstanding is not None and (session is None or now_ns - outstanding[2] >= self.timeout_ns):
            self._give_up()
        if self._outstanding is None and session is not None and now_ns >= self._next_at:
            self._send(session, now_ns)

    def _session(self) -> AeronCluster | None:
        session = self.session
        try:
            if session is None:
                session = self.session = AeronCluster.begin_connect(
                    self.transport,
                    egress_channel=self.egress_channel,
                    ingress_endpoints=self.ingress_endpoints,
                )
            if not session.poll_connect():
                return None
        except ClusterClientError:
            self.connect_failures += 1
            if session is not None:
                session.close()
            self.session = None
            return None
        return session

    def _on_event(self, event: object, now_ns: int) -> None:
        outstanding = self._outstanding
        if not isinstance(event, Message) or outstanding is None:
            return
        try:
            reply = decode_reply(event.payload)
        except KvError:
            return
        request_id, input, call = outstanding
        if reply.request_id != request_id:
            return  # a late reply to a request given up on: its operation stays indeterminate
        if input[0] == "read":
            output: object = reply.value
        elif input[0] == "write":
            output = None
        else:
            output = reply.status == Status.OK
        self.history.append(Operation(self.client_id, input, call, output, now_ns))
        key = input[1]
        assert isinstance(key, bytes)
        if input[0] == "read":
            self._seen[key] = reply.value
        elif input[0] == "write" or output is True:
            self._seen[key] = input[-1]  # type: ignore[assignment]
        self._outstanding = None
        self._timeouts = 0
        self._next_at = now_ns + self.random.randrange(MAX_THINK_NS)

    def _give_up(self) -> None:
        outstanding = self._outstanding
        assert outstanding is not None
        _, input, call = outstanding
        self.history.append(Operation(self.client_id, input, call, UNKNOWN, None))
        self._outstanding = None
        self._timeouts += 1
        if self._timeouts >= TIMEOUTS_BEFORE_RECONNECT and self.session is not None:
            # the cluster may have closed the session while its CLOSED event could not reach us (a
            # partition): nothing tells the client but silence, so it opens a new session
            self.session.close()
            self.session = None
            self._timeouts = 0

    def _send(self, session: AeronCluster, now_ns: int) -> None:
        request_id = self._next_request_id
        key = self.random.choice(KEYS)
        kind = self.random.random()
        if kind < 0.5:
            input: tuple[object, ...] = ("read", key)
            request = encode_read(request_id, key)
        else:
            self._written += 1
            value = f"{self.client_id}.{self._written}".encode()
            if kind < 0.8:
                input = ("write", key, value)
                request = encode_write(request_id, key, value)
            else:
                expected = self._guess(key)
                input = ("cas", key, expected, value)
                request = encode_cas(request_id, key, expected, value)
        try:
            taken = session.offer(request) > 0
        except ClusterClientError:
            taken = False
        if taken:
            self._next_request_id += 1
            self._outstanding = (request_id, input, now_ns)

    def _guess(self, key: bytes) -> bytes | None:
        """An expected value for a compare-and-set: the last value this client saw for ``key``."""
        return self._seen.get(key)

    def finish(self) -> list[Operation]:
        """The history, with the request still outstanding (if any) as indeterminate: it may have taken
        effect, and another client may have seen it."""
        if self._outstanding is not None:
            self._give_up()
        return self.history

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
