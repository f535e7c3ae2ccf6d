"""Helpers for scripted key-value scenarios in the node simulator (``support.node_script.Script`` with
``KeyValueService`` in every member): writes through the simulated client to the elected leader, and the
end-of-scenario agreement check -- one log, no checker's violation, one store in every service."""

from __future__ import annotations

from functools import partial

from cluster.consensus.node_sim import NodeSimulator
from cluster.service.kv import KeyValueService, encode_write
from support.node_script import MS, Script

__all__ = [
    "agreed",
    "expected_store",
    "is_closed",
    "new_leader_events",
    "offer",
    "replies",
    "send_writes",
    "snapshot_positions",
    "store_of",
    "write_all",
]


def replies(sim: NodeSimulator) -> int:
    sim.poll_client()
    return len(sim.client_messages)


def new_leader_events(sim: NodeSimulator) -> int:
    sim.poll_client()
    return sim.client_events.get("NewLeader", 0)


def offer(script: Script, request: bytes) -> bool:
    """Offer ``request`` once, to the leader the script sees elected and only once the client's session
    follows that leader in its term; whether it was taken."""
    leader = script.leader_id()
    session = script.sim.poll_client()
    return (
        leader >= 0
        and session is not None
        and (session.leader_member_id, session.leadership_term_id) == (leader, script.term(leader))
        and session.offer(request) > 0
    )


def value(i: int, pad: int = 0) -> bytes:
    """The value written to key ``k<i>``: ``v<i>``, then ``pad`` dots (for a longer log)."""
    return f"v{i}".encode() + b"." * pad


def send_writes(script: Script, keys: range, pad: int = 0) -> None:
    """Write key ``k<i>`` = ``value(i, pad)`` for each ``i`` in ``keys``, each offered to the elected
    leader until it takes it; no wait for the answers."""
    for i in keys:
        request = encode_write(i, f"k{i}".encode(), value(i, pad))
        script.until(partial(offer, script, request), f"write {i} taken")
        script.run(1 * MS)


def write_all(script: Script, keys: range, pad: int = 0) -> None:
    """``send_writes``, then wait until every write is answered (committed and applied by the leader)."""
    before = replies(script.sim)
    send_writes(script, keys, pad)
    script.until(lambda: replies(script.sim) >= before + len(keys), f"{len(keys)} answers")


def expected_store(*ranges: range, pad: int = 0) -> dict[bytes, bytes]:
    return {f"k{i}".encode(): value(i, pad) for keys in ranges for i in keys}


def store_of(script: Script, member: int) -> dict[bytes, bytes]:
    service = script.node(member).containers[0].service
    assert isinstance(service, KeyValueService)
    return dict(service.store)


def agreed(script: Script) -> dict[bytes, bytes]:
    """Wait until every member runs, all have committed the leader's whole log and their services have
    read it; require one log on all, no checker's violation, and one store in every service. The store."""
    sim = script.sim
    script.until(lambda: sim.converged() and sim.services_caught_up(), "every member holds the whole log")
    sim.check_converged()
    sim.check_snapshots()
    assert sim.violations == []
    logs = {sim.log_of(member, script.commit(member)) for member in range(len(sim.members))}
    assert len(logs) == 1
    stores = [store_of(script, member) for member in range(len(sim.members))]
    assert all(store == stores[0] for store in stores)
    return stores[0]


def is_closed(script: Script, member: int) -> bool:
    return script.state(member) == "CLOSED"


def snapshot_positions(script: Script, member: int) -> list[int]:
    """The log positions of member ``member``'s valid consensus-module snapshots."""
    return [
        entry.log_position
        for entry in script.node(member).agent.recording_log.log.entries
        if entry.is_snapshot and entry.is_valid and entry.service_id == -1
    ]
