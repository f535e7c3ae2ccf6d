"""The linearizability checker against a real stale read: a leader that answers key-value reads from its
own state, outside the log (the canary ``local_reads``), is paused and cut off from the other members;
they elect another leader, which takes a write; a client that has not heard of the new leader then reads
from the old one, which answers with what it had before it stopped. The checker must refuse that
history -- and accept the one a correct leader gives, whose read never comes back (it stepped down)."""

from __future__ import annotations

from support.node_script import MS, Script

from cluster.client.aeron_cluster import AeronCluster
from cluster.client.protocol import Message
from cluster.service.kv import decode_reply, encode_read, encode_write
from cluster.sim.linearizability import KV_MODEL, UNKNOWN, Operation, Result, check
from cluster.transport.driver import Transport, TransportConfig

PAUSE_NS = 6_000 * MS
REPLY_TIMEOUT_NS = 10_000 * MS  # longer than the pause: the old leader may still answer


class Client:
    """A key-value client driven by the test, one request at a time, recording its history."""

    def __init__(self, script: Script, client_id: int) -> None:
        self.script = script
        self.client_id = client_id
        self.host = f"10.0.0.{210 + client_id}"
        sim = script.sim
        self.transport = Transport(sim.network, TransportConfig(bind_host=self.host, seed=77 + client_id))
        endpoints = ",".join(f"{c.member_id}={c.member.ingress}" for c in sim.configs)
        self.session = AeronCluster.begin_connect(
            self.transport, egress_channel=f"aeron:udp?endpoint={self.host}:0", ingress_endpoints=endpoints
        )
        self.replies: dict[int, bytes | None] = {}
        self.history: list[Operation] = []
        self.next_id = 1

    def work(self) -> None:
        self.transport.do_work()
        if self.session.poll_connect():
            self.session.poll_egress(self._on_event)

    def _on_event(self, event: object) -> None:
        if isinstance(event, Message):
            reply = decode_reply(event.payload)
            self.replies[reply.request_id] = reply.value

    def request(self, input: tuple[object, ...]) -> None:
        """Send one request and wait for its reply (or time out): its operation joins the history."""
        request_id, self.next_id = self.next_id, self.next_id + 1
        key = input[1]
        assert isinstance(key, bytes)
        if input[0] == "read":
            message = encode_read(request_id, key)
        else:
            value = input[2]
            assert isinstance(value, bytes)
            message = encode_write(request_id, key, value)
        script = self.script
        script.until(lambda: self.session.offer(message) > 0, f"client {self.client_id}'s request taken")
        call = script.sim.now_ns
        deadline = call + REPLY_TIMEOUT_NS
        script.until(lambda: request_id in self.replies or script.sim.now_ns >= deadline, "a reply or time")
        if request_id in self.replies:
            output = self.replies[request_id] if input[0] == "read" else None
            self.history.append(Operation(self.client_id, input, call, output, script.sim.now_ns))
        else:
            self.history.append(Operation(self.client_id, input, call, UNKNOWN, None))


def _stale_read_scenario(canaries: frozenset[str]) -> tuple[list[Operation], Result]:
    with Script(3, seed=5, canaries=canaries, checked_services=True, kv_clients=0) as script:
        sim = script.sim
        old = script.elected()
        a, b = Client(script, 0), Client(script, 1)
        script.after_step = lambda: (a.work(), b.work())
        script.until(lambda: a.session.poll_connect() and b.session.poll_connect(), "both clients connected")
        a.request(("write", b"x", b"1"))
        b.request(("read", b"x"))
        others = [m for m in range(3) if m != old]
        for member in others:
            sim.partition(old, member)  # the old leader is cut off from the members ...
            sim.network.partition(sim.members[member].host, b.host, one_way=True)  # ... b hears no other
        sim.pause(old, PAUSE_NS)  # ... and stops, believing it leads
        script.until(
            lambda: any(
                m.node is not None and m.node.agent.role == "LEADER" and m.member_id != old
                for m in sim.members
            ),
            "another leader",
        )
        script.until(lambda: a.session.leader_member_id != old, "client a follows the new leader")
        a.request(("write", b"x", b"2"))
        assert a.history[-1].return_ is not None, "the new leader took the write"
        assert b.session.leader_member_id == old  # b still sends to the old leader
        script.run(1 * MS)  # strictly after a's write returned: the read must see 2, or nothing
        b.request(("read", b"x"))
        history = a.history + b.history
        return history, check(KV_MODEL, history)


def test_a_paused_old_leader_answering_reads_locally_gives_a_stale_read_the_checker_refuses() -> None:
    history, result = _stale_read_scenario(frozenset({"local_reads"}))
    assert history[-1].output == b"1" and history[-1].return_ is not None  # the stale answer
    assert result.ok is False
    assert "not linearizable" in result.explain() and "read b'x' -> b'1'" in result.explain()


def test_a_correct_old_leader_never_answers_and_the_history_is_linearizable() -> None:
    history, result = _stale_read_scenario(frozenset())
    assert history[-1].indeterminate  # the old leader stepped down without answering
    assert result.ok is True
