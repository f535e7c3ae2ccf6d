"""The container's core fed a committed log by hand (entries built with the generated encoders, as a
leader appends them): sessions open and close, messages reach the service with their session, timers
fire, the term and time unit move on, and replicas reading the same log act alike. A service acts on the
cluster only from a log callback; only a leader's replies leave."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from support.cluster_messages import pack
from support.process_services import END, FAIL_ON_LEADER, EndingService

from cluster.service.api import (
    ClientSession,
    CloseReason,
    ClusteredService,
    ClusterTermination,
    ClusterTimeUnit,
    Role,
)
from cluster.service.container_core import (
    MOCKED_OFFER,
    ClusterServiceError,
    ContainerCore,
    ContainerSession,
    ServiceFailure,
)
from cluster.service.kv import KeyValueService, Reply, Status, decode_reply, encode_read, encode_write
from cluster.session_message import session_message
from generated import aeron_cluster_codecs as codecs

TERM = 2
HEADER = codecs.HEADER_SIZE + codecs.SessionMessageHeaderEncoder.BLOCK_LENGTH


@dataclass
class Proxy:
    calls: list[tuple[object, ...]] = field(default_factory=list)

    def schedule_timer(self, correlation_id: int, deadline: int) -> bool:
        self.calls.append(("schedule", correlation_id, deadline))
        return True

    def cancel_timer(self, correlation_id: int) -> bool:
        self.calls.append(("cancel", correlation_id))
        return True

    def close_session(self, cluster_session_id: int) -> bool:
        self.calls.append(("close", cluster_session_id))
        return True

    def offer_service_message(self, message: bytes) -> int:
        self.calls.append(("offer", message))
        return 1


@dataclass
class Egress:
    sent: list[tuple[int, bytes]] = field(default_factory=list)

    def send(self, session: ContainerSession, message: bytes) -> int:
        self.sent.append((session.id, message))
        return len(self.sent)


def new_term(timestamp: int, unit: ClusterTimeUnit = ClusterTimeUnit.MILLIS) -> bytes:
    return pack(
        codecs.NewLeadershipTermEventEncoder,
        leadership_term_id=TERM,
        log_position=0,
        timestamp=timestamp,
        term_base_log_position=0,
        leader_member_id=0,
        log_session_id=7,
        time_unit=unit,
        app_version=1,
    )


def session_open(session_id: int, timestamp: int) -> bytes:
    return pack(
        codecs.SessionOpenEventEncoder,
        {"response_channel": "aeron:udp?endpoint=client:9020", "encoded_principal": b"alice"},
        leadership_term_id=TERM,
        correlation_id=40 + session_id,
        cluster_session_id=session_id,
        timestamp=timestamp,
        response_stream_id=102,
    )


def message(session_id: int, timestamp: int, payload: bytes) -> bytes:
    header = bytearray(HEADER)
    codecs.SessionMessageHeaderEncoder.pack_into(
        header, 0, leadership_term_id=TERM, cluster_session_id=session_id, timestamp=timestamp
    )
    return bytes(header) + payload


def timer(correlation_id: int, timestamp: int) -> bytes:
    return pack(
        codecs.TimerEventEncoder, leadership_term_id=TERM, correlation_id=correlation_id, timestamp=timestamp
    )


def session_close(session_id: int, timestamp: int, reason: CloseReason) -> bytes:
    return pack(
        codecs.SessionCloseEventEncoder,
        leadership_term_id=TERM,
        cluster_session_id=session_id,
        timestamp=timestamp,
        close_reason=reason,
    )


class Recorder(ClusteredService):
    """Writes down every callback, with what the facade said at the time; acts when told to."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.cluster: ContainerCore | None = None

    def on_start(self, cluster: object, snapshot: object) -> None:
        assert isinstance(cluster, ContainerCore)
        self.cluster = cluster

    def on_session_open(self, session: ClientSession, timestamp: int) -> None:
        self.calls.append(("open", session.id, timestamp, session.encoded_principal, self._where()))

    def on_session_message(self, session: ClientSession | None, timestamp: int, message: memoryview) -> None:
        self.calls.append(("message", None if session is None else session.id, bytes(message), self._where()))
        if bytes(message) == b"timer please":
            assert self.cluster is not None
            self.cluster.schedule_timer(99, timestamp + 10)
        if bytes(message) == b"bye" and session is not None:
            session.close()

    def on_timer_event(self, correlation_id: int, timestamp: int) -> None:
        self.calls.append(("timer", correlation_id, timestamp, self._where()))

    def on_session_close(self, session: ClientSession, timestamp: int, close_reason: CloseReason) -> None:
        self.calls.append(("close", session.id, close_reason, self._where()))

    def on_new_leadership_term_event(self, leadership_term_id: int, *args: object) -> None:
        self.calls.append(("term", leadership_term_id, args[-2]))

    def _where(self) -> tuple[int, int]:
        assert self.cluster is not None
        return self.cluster.time(), self.cluster.log_position


def _container(service: ClusteredService, role: Role = Role.FOLLOWER) -> tuple[ContainerCore, Proxy, Egress]:
    proxy, egress = Proxy(), Egress()
    core = ContainerCore(service, service_id=0, member_id=1, proxy=proxy, egress=egress)
    core.start()
    core.on_role_change(role)
    return core, proxy, egress


LOG = [
    new_term(1_000, ClusterTimeUnit.NANOS),
    session_open(5, 1_010),
    message(5, 1_020, b"hello"),
    message(5, 1_030, b"timer please"),
    message(0, 1_035, b"from a service"),
    timer(99, 1_040),
    message(5, 1_050, b"bye"),
    session_close(5, 1_060, CloseReason.SERVICE_ACTION),
]


def _feed(core: ContainerCore, log: list[bytes]) -> None:
    position = 0
    for entry in log:
        position += (len(entry) + 32 + 31) & -32  # each entry is one frame in the log
        core.on_log_entry(entry, position)


def test_each_log_entry_becomes_its_callback_with_the_entrys_time_and_position() -> None:
    service = Recorder()
    core, proxy, _ = _container(service)
    _feed(core, LOG)
    positions = []
    position = 0
    for entry in LOG:
        position += (len(entry) + 32 + 31) & -32
        positions.append(position)
    assert service.calls == [
        ("term", TERM, ClusterTimeUnit.NANOS),
        ("open", 5, 1_010, b"alice", (1_010, positions[1])),
        ("message", 5, b"hello", (1_020, positions[2])),
        ("message", 5, b"timer please", (1_030, positions[3])),
        ("message", None, b"from a service", (1_035, positions[4])),  # no session 0: a service message
        ("timer", 99, 1_040, (1_040, positions[5])),
        ("message", 5, b"bye", (1_050, positions[6])),
        ("close", 5, CloseReason.SERVICE_ACTION, (1_060, positions[7])),
    ]
    assert proxy.calls == [("schedule", 99, 1_040), ("close", 5)]
    assert core.time_unit == ClusterTimeUnit.NANOS and core.leadership_term_id == TERM
    assert core.client_sessions == ()


def test_only_a_leaders_replies_leave_and_they_carry_the_session_header() -> None:
    leader_kv, follower_kv = KeyValueService(), KeyValueService()
    leader, _, leader_egress = _container(leader_kv, Role.LEADER)
    follower, _, follower_egress = _container(follower_kv, Role.FOLLOWER)
    log = [
        new_term(1),
        session_open(5, 2),
        message(5, 3, encode_write(1, b"k", b"v")),
        message(5, 4, encode_read(2, b"k")),
    ]
    _feed(leader, log)
    _feed(follower, log)
    assert leader_kv.store == follower_kv.store == {b"k": b"v"}
    assert follower_egress.sent == []
    assert [session for session, _ in leader_egress.sent] == [5, 5]
    headers = [codecs.SessionMessageHeaderDecoder.unpack(sent) for _, sent in leader_egress.sent]
    assert headers == [(TERM, 5, 3), (TERM, 5, 4)]  # the timestamp is the entry's: the cluster's time
    assert [decode_reply(sent[HEADER:]) for _, sent in leader_egress.sent] == [
        Reply(1, Status.OK, b"v"),
        Reply(2, Status.OK, b"v"),
    ]
    session = follower.get_client_session(5)
    assert session is not None
    follower._acting = True  # as inside a callback
    assert session.offer(b"x") == MOCKED_OFFER


class Eager(ClusteredService):
    """Acts on the cluster where it must not."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.cluster: ContainerCore | None = None

    def on_start(self, cluster: object, snapshot: object) -> None:
        assert isinstance(cluster, ContainerCore)
        self.cluster = cluster
        if self.where == "on_start":
            cluster.schedule_timer(1, 0)

    def on_role_change(self, new_role: Role) -> None:
        if self.where == "on_role_change" and self.cluster is not None:
            self.cluster.offer(b"no")

    def on_session_message(self, session: ClientSession | None, timestamp: int, message: memoryview) -> None:
        pass


@pytest.mark.parametrize("where", ["on_start", "on_role_change"])
def test_acting_outside_a_log_callback_is_refused(where: str) -> None:
    with pytest.raises(ClusterServiceError, match="only from a log callback"):
        _container(Eager(where), Role.LEADER)


def test_a_session_offer_between_callbacks_is_refused() -> None:
    core, _, _ = _container(Recorder(), Role.LEADER)
    _feed(core, [new_term(1), session_open(5, 2)])
    session = core.get_client_session(5)
    assert session is not None
    with pytest.raises(ClusterServiceError):
        session.offer(b"late")


def test_a_log_entry_that_is_not_a_cluster_message_is_an_error_naming_its_position() -> None:
    core, _, _ = _container(Recorder())
    with pytest.raises(ClusterServiceError, match="ending at 64"):
        core.on_log_entry(b"\x00" * 8, 64)


def test_a_failing_callback_is_named_with_its_position_and_a_termination_goes_through() -> None:
    service = EndingService()
    core = ContainerCore(service, service_id=0, member_id=1, proxy=Proxy(), egress=Egress())  # type: ignore[arg-type]
    core.start()
    core.on_role_change(Role.LEADER)
    fail = session_message(TERM, 7, 5, FAIL_ON_LEADER.to_bytes(8, "little"))
    with pytest.raises(
        ServiceFailure, match=r"on_session_message raised RuntimeError: told to fail .*192\)$"
    ) as failed:
        core.on_log_entry(fail, 192)
    assert isinstance(failed.value.__cause__, RuntimeError) and failed.value.callback == "on_session_message"
    with pytest.raises(ClusterTermination, match="told to end"):
        core.on_log_entry(session_message(TERM, 7, 6, END.to_bytes(8, "little")), 288)
    service.on_timer_event = lambda correlation_id, timestamp: 1 // 0  # type: ignore[method-assign]
    timer = pack(codecs.TimerEventEncoder, leadership_term_id=TERM, correlation_id=3, timestamp=9)
    with pytest.raises(ServiceFailure, match="on_timer_event raised ZeroDivisionError"):
        core.on_log_entry(timer, 384)
