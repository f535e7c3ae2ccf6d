"""Services in real nodes (``ClusterNode`` with its containers) in the node simulator: a client's
messages reach every replica's service once each, in order, only once committed; the leader's service
answers the client; the session and the answers go on across a leader change; a restarted member's
service catches up from its log; replicas at the same log position hold the same state; an admin
request is answered (refused by the default authorisation)."""

from __future__ import annotations

import pytest
from support.kv_script import snapshot_positions
from support.node_script import MS, Script

from cluster.client.aeron_cluster import AeronCluster
from cluster.client.protocol import AdminResponse
from cluster.consensus.node_sim import NodeSimulator
from cluster.service.echo import EchoService
from cluster.service.kv import KeyValueService, Status, decode_reply, encode_read, encode_write
from cluster.transport.driver import Transport, TransportConfig
from generated import aeron_cluster_codecs as codecs


def _command(i: int) -> bytes:
    return i.to_bytes(8, "little", signed=True)  # what Script.submit offers


def _echoes(script: Script, count: int) -> list[bytes]:
    sim = script.sim
    script.until(
        lambda: sim.poll_client() is not None and len(sim.client_messages) >= count, f"{count} echoes"
    )
    return sim.client_messages


def _services(sim: NodeSimulator) -> dict[int, tuple[int, object]]:
    """Each running member's service (its only one) with the log position it has read to."""
    return {
        member.member_id: (member.node.containers[0].log_position, member.node.containers[0].service)
        for member in sim.members
        if member.node is not None
    }


def _caught_up(sim: NodeSimulator) -> bool:
    """Every running member's service has read its node's whole committed log."""
    return all(
        member.node.containers[0].log_position == member.node.agent.commit_position
        for member in sim.members
        if member.node is not None
    )


def test_each_message_reaches_every_replica_once_in_order_and_the_leader_answers() -> None:
    with Script(3, service=EchoService) as script:
        script.elected()
        script.submit(*range(10))
        assert _echoes(script, 10) == [_command(i) for i in range(10)]
        script.until(lambda: script.sim.converged() and _caught_up(script.sim), "every service caught up")
        services = _services(script.sim)
        assert len({position for position, _ in services.values()}) == 1
        assert [service.messages for _, service in services.values()] == [10, 10, 10]  # type: ignore
        assert script.sim.violations == []


def test_the_session_and_the_answers_go_on_across_a_leader_change_and_a_restart() -> None:
    with Script(3, service=EchoService) as script:
        sim = script.sim
        old = script.elected()
        script.submit(*range(5))
        assert _echoes(script, 5) == [_command(i) for i in range(5)]
        session = sim.poll_client()
        assert session is not None
        session_id = session.cluster_session_id
        sim.crash(old)
        script.elected("a new leader", 40_000 * MS)
        script.until(lambda: script.leader_id() not in (-1, old), "a leader other than the old one")
        script.submit(*range(5, 10))
        assert _echoes(script, 10)[5:] == [_command(i) for i in range(5, 10)]
        session = sim.poll_client()
        assert session is not None and session.cluster_session_id == session_id  # the same session
        assert sim.client_events.get("NewLeader", 0) >= 1
        script.restart(old)
        script.until(lambda: sim.converged() and _caught_up(sim), "the old leader's service caught up")
        services = _services(sim)
        assert len({position for position, _ in services.values()}) == 1
        assert [service.messages for _, service in services.values()] == [10, 10, 10]  # type: ignore
        assert sim.violations == []


def test_key_value_replicas_hold_the_same_store_at_the_same_log_position() -> None:
    with Script(3, service=KeyValueService, seed=11) as script:
        sim = script.sim
        script.elected()
        script.until(lambda: sim.poll_client() is not None, "a session")
        requests = [encode_write(i, f"k{i % 3}".encode(), f"v{i}".encode()) for i in range(9)]
        requests.append(encode_read(9, b"k2"))
        for request in requests:
            script.until(lambda r=request: sim.poll_client().offer(r) > 0, "a request taken")  # type: ignore
            script.run(5 * MS)
        replies = [decode_reply(message) for message in _echoes(script, len(requests))]
        assert [reply.request_id for reply in replies] == list(range(10))
        assert replies[-1].status == Status.OK and replies[-1].value == b"v8"
        script.until(lambda: sim.converged() and _caught_up(sim), "every service caught up")
        stores = [service.store for _, service in _services(sim).values()]  # type: ignore[attr-defined]
        assert stores[0] == {b"k0": b"v6", b"k1": b"v7", b"k2": b"v8"}
        assert stores == [stores[0]] * 3


def test_requests_and_replies_longer_than_a_frame_arrive_whole() -> None:
    """A write of 5,000 bytes crosses the ingress, the log and the egress in fragments (the frames carry
    at most 1,376 bytes): each side puts them back together, and every replica applies it."""
    with Script(3, service=KeyValueService, seed=12) as script:
        sim = script.sim
        script.elected()
        script.until(lambda: sim.poll_client() is not None, "a session")
        values = [bytes([65 + i]) * (1_000 + 2_000 * i) for i in range(4)]  # 1,000 to 7,000 bytes
        for i, value in enumerate(values):
            request = encode_write(i, f"k{i}".encode(), value)
            script.until(lambda r=request: sim.poll_client().offer(r) > 0, "a request taken")  # type: ignore
        replies = [decode_reply(message) for message in _echoes(script, len(values))]
        assert [(reply.status, reply.value) for reply in replies] == [(Status.OK, value) for value in values]
        script.until(lambda: sim.converged() and _caught_up(sim), "every service caught up")
        stores = [service.store for _, service in _services(sim).values()]  # type: ignore[attr-defined]
        assert stores == [{f"k{i}".encode(): value for i, value in enumerate(values)}] * 3


class AllowAdminRequests:
    """An authorisation service that allows every AdminRequest (and BackupQuery, as the default)."""

    def is_authorised(
        self, protocol_id: int, action_id: int, type_: object, encoded_principal: bytes
    ) -> bool:
        return protocol_id == codecs.SCHEMA_ID and action_id in (
            codecs.AdminRequestEncoder.TEMPLATE_ID,
            codecs.BackupQueryEncoder.TEMPLATE_ID,
        )


@pytest.mark.parametrize(
    ("supplier", "code", "detail"),
    [
        ("default", codecs.AdminResponseCode.UNAUTHORISED_ACCESS, "admin request not authorised"),
        ("test_node_services:AllowAdminRequests", codecs.AdminResponseCode.OK, ""),
    ],
)
def test_an_admin_request_is_answered_as_the_configured_authorisation_service_decides(
    supplier: str, code: codecs.AdminResponseCode, detail: str
) -> None:
    settings = {"cluster.authorisation.service.supplier": supplier}
    with Script(3, service=EchoService, settings=settings) as script:
        script.elected()
        host = "10.0.0.150"
        transport = Transport(script.sim.network, TransportConfig(bind_host=host, seed=9))
        endpoints = ",".join(f"{c.member_id}={c.member.ingress}" for c in script.sim.configs)
        session = AeronCluster.begin_connect(
            transport, egress_channel=f"aeron:udp?endpoint={host}:0", ingress_endpoints=endpoints
        )
        events: list[object] = []
        script.after_step = lambda: transport.do_work() and None
        script.until(session.poll_connect, "the session open")
        script.until(lambda: session.send_admin_request(77), "the request sent")
        script.until(lambda: session.poll_egress(events.append) >= 0 and bool(events), "an answer")
        assert events == [
            AdminResponse(
                77,
                codecs.AdminRequestType.SNAPSHOT,
                code,
                detail,
                b"",
            )
        ]
        members = range(len(script.sim.members))
        if code == codecs.AdminResponseCode.OK:  # then the snapshot follows, on every member at one position
            script.until(
                lambda: all(snapshot_positions(script, m) for m in members), "every member's snapshot"
            )
            positions = {tuple(snapshot_positions(script, member)) for member in members}
            assert len(positions) == 1 and len(positions.pop()) == 1
        else:
            script.run(1_000 * MS)
            assert [snapshot_positions(script, member) for member in members] == [[], [], []]
        session.close()
