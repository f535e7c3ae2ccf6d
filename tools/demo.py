"""``python -m tools demo``: the project's main job, on an embedded default.

It prints a short story and exits 0 only if every step of it happened:

1. **Codecs.** The generated codecs are what the built-in schemas generate (compared in memory; the
   demo writes nothing into the package). A client's connect request and an ingress message, built
   with the generated encoders, go over Aeron UDP on the loopback interface -- a publication to a
   subscription of our transport, SETUP/status-message handshake included -- and what arrived is
   decoded twice: with the generated decoders and with the run-time (OTF) decoder driven by the schema
   XML alone.
2. **Archive.** A stream sent over UDP on loopback is recorded into segment files in a temporary
   directory, replayed, and compared byte for byte and position for position.
3. **A cluster of real processes.** Three members (``python -m tools node``, each one process with its
   transport, archive, consensus module and the key-value service, ``cluster.service.class = "kv"``)
   start in a temporary directory on free ports of 127.0.0.1 and elect a leader. A client
   (``AeronCluster``, on a transport of this process) opens a session, writes keys and reads them back.
   The leader's process is killed with SIGKILL; the other two elect a new leader in a later term; the
   client's session, told of the new leader, goes on -- the same cluster session id -- and reads a key
   written before the kill. The killed member is started again on its configuration and directories
   (it first waits for the mark files its killed process left to go stale, up to their 10 s liveness
   timeout) and catches up to the leader's commit position. Every node process is stopped by its pid at
   the end -- SIGTERM, then SIGKILL after a bound -- whether the story succeeded, failed or was
   interrupted.

Theory of operation of step 3
-----------------------------
The members are ``tools.node_processes.ProcessCluster``'s children; what each prints on stdout (its
role, election state, term and positions; docs/node.md) is all the demo knows of them. Each wait of the
story (``_Story.until``) runs the client's transport and session -- it polls the egress, and sends a
keep-alive when the session has sent nothing for a second -- until its condition holds. Every wait has
a bound, and all of them together ``STORY_TIMEOUT_S``; a wait whose bound passes fails the story with a
line naming what did not happen, and so does a member that exits when it should be running.

A key-value request carries a request id, and its reply names it. Ingress is at most once (a request
in flight when the leader dies can be lost), so a request with no reply within ``RESEND_AFTER_S`` is
sent again with the same id; every request of the demo is idempotent (a write of the same value, a
read), so a duplicate does no harm and its second reply is ignored. A node prints a status line only
when something changed, at most one per 100 ms, so the commit position shown after the requests is
read once every member agrees and ``STATUS_QUIET_S`` have passed since the last reply. The timeouts
are Aeron's scaled down (``DEMO_SETTINGS``, as the process tests have them), so that a failover takes
seconds, not tens of seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from tools import codegen_cmd

if TYPE_CHECKING:
    from cluster.client.aeron_cluster import AeronCluster
    from cluster.client.protocol import Event, NewLeader
    from cluster.service.kv import Reply
    from tools.node_processes import NodeStatus, ProcessCluster

CLIENT_PROTOCOL_VERSION = 768  # 0.3.0, the version Aeron Cluster clients send
APPLICATION_PAYLOAD = b"hello, cluster"


def configure(parser: argparse.ArgumentParser) -> None:
    del parser  # no options yet


def _check_codecs() -> bool:
    """Generate the built-in schemas' codecs in memory and compare them with the generated package."""
    from schemas import builtin_schemas

    paths = builtin_schemas()
    out = codegen_cmd.generated_directory()
    stale = codegen_cmd.stale_files(out, codegen_cmd.generate_all(paths))
    print(f"codecs: {len(paths)} built-in schemas, generated package at {out}")
    if stale:
        print("  STALE (regenerate in a source checkout with `python -m tools codegen`):")
        for path in stale:
            print(f"    {path}")
        return False
    print("  up to date: the generated codecs are exactly what the schemas generate")
    return True


def _example_messages() -> list[bytes]:
    from generated import aeron_cluster_codecs as cluster

    buffer = bytearray(256)
    connect = cluster.SessionConnectRequestEncoder().wrap_and_apply_header(buffer, 0)
    connect.correlation_id = 42
    connect.response_stream_id = 102
    connect.version = CLIENT_PROTOCOL_VERSION
    connect.put_response_channel("aeron:udp?endpoint=localhost:9020")
    connect.put_encoded_credentials(b"")
    first = bytes(buffer[: cluster.HEADER_SIZE + connect.encoded_length()])

    header_length = cluster.SessionMessageHeaderEncoder.pack_into(buffer, 0, 3, 7, 0)
    second = bytes(buffer[:header_length]) + APPLICATION_PAYLOAD
    return [first, second]


DEMO_STREAM_ID = 1001
DEMO_TIMEOUT_S = 10.0


def _over_udp(messages: list[bytes]) -> list[bytes]:
    """Send ``messages`` from a publication to a subscription over UDP loopback; what arrived, in order."""
    import time

    from cluster.transport.driver import Transport
    from cluster.transport.logbuffer import FragmentAssembler, Header

    received: list[bytes] = []

    def on_message(buffer: memoryview, header: Header) -> None:
        received.append(bytes(buffer))
        print(f"  received  {len(buffer)} bytes: session {header.session_id}, position {header.position()}")

    with Transport() as transport:
        subscription = transport.add_subscription("aeron:udp?endpoint=127.0.0.1:0", DEMO_STREAM_ID)
        assert subscription.local_address is not None
        channel = f"aeron:udp?endpoint=127.0.0.1:{subscription.local_address[1]}"
        publication = transport.add_publication(channel, DEMO_STREAM_ID)
        print(f"\nsending {len(messages)} messages on {channel} stream {DEMO_STREAM_ID}")
        assembler = FragmentAssembler(on_message)
        pending = list(messages)
        deadline = time.monotonic() + DEMO_TIMEOUT_S
        while len(received) < len(messages):
            if time.monotonic() > deadline:
                raise TimeoutError(f"demo: only {len(received)} of {len(messages)} messages arrived")
            if pending and publication.offer(pending[0]) > 0:
                pending.pop(0)
            transport.do_work()
            if subscription.poll(assembler, 10) == 0:
                time.sleep(0.001)
    return received


def run(args: argparse.Namespace) -> int:
    if not _check_codecs():
        return 1

    import generated
    from codegen.otf import OtfCodec
    from codegen.schema import load_schema
    from schemas import builtin_schema

    otf = OtfCodec(load_schema(builtin_schema("aeron-cluster-codecs.xml")))
    sent = _example_messages()
    arrived = _over_udp(sent)
    if arrived != sent:
        print("  MISMATCH between what was sent and what arrived")
        return 1
    for message in arrived:
        decoder = generated.decode(message)
        print(f"\n{decoder.NAME}: {len(message)} bytes")
        print(f"  wire      {message.hex()}")
        generated_view: dict[str, Any] = decoder.to_dict()
        print(f"  generated {json.dumps(generated_view)}")
        decoded = otf.decode(message)
        print(f"  otf       {json.dumps(decoded.to_json_obj())}")
        if decoded.fields != generated_view:
            print("  MISMATCH between the generated and the run-time decoder")
            return 1
        trailing = message[decoded.length :]
        if trailing:
            print(f"  payload   {trailing!r} (the application's bytes after the SBE header)")
    if _archive_round_trip() != 0:
        return 1
    return _process_cluster()


ARCHIVE_MESSAGES = 200


def _archive_round_trip() -> int:
    """Record a UDP stream with our archive (control over IPC, as a cluster member uses its own), replay
    it, and compare; the archive directory is temporary."""
    import tempfile

    from cluster.archive.archive import Archive
    from cluster.archive.client import ArchiveClient, RecordingSignalEvent
    from cluster.archive.context import ArchiveContext
    from cluster.storage import RealStorage
    from cluster.transport.driver import Transport, TransportConfig
    from cluster.transport.logbuffer import FragmentAssembler, Header
    from generated.aeron_archive_codecs import RecordingSignal, SourceLocation

    print("\narchive: record a UDP stream on loopback, replay it, compare")
    config = TransportConfig(bind_host="127.0.0.1", udp_term_length=64 * 1024)
    with (
        tempfile.TemporaryDirectory(prefix="aeron-archive-demo-") as directory,
        Transport(config=config) as node,
        Transport(config=config) as sender,
    ):
        archive = Archive(node, ArchiveContext(storage=RealStorage(directory), segment_file_length=1 << 20))
        signals: list[RecordingSignalEvent] = []

        def step() -> int:
            return node.do_work() + archive.do_work() + sender.do_work()

        client = ArchiveClient.connect(
            node,
            control_request_channel="aeron:ipc?term-length=64k",
            control_response_channel="aeron:ipc",
            invoker=step,
            on_recording_signal=signals.append,
        )
        try:
            recorded = node.add_subscription("aeron:udp?endpoint=127.0.0.1:0", 1001)
            assert recorded.local_address is not None
            channel = f"aeron:udp?endpoint=127.0.0.1:{recorded.local_address[1]}"
            recorded.close()  # only to find a free port: the archive subscribes itself
            client.start_recording(channel, 1001, SourceLocation.REMOTE)
            publication = sender.add_publication(channel, 1001)
            sent: list[tuple[bytes, int]] = []
            for i in range(ARCHIVE_MESSAGES):
                payload = bytes((i + j) % 251 for j in range((32, 1000, 3000)[i % 3]))
                while (position := publication.offer(payload)) < 0:
                    step()
                sent.append((payload, position))
            while not signals:
                step()
                client.poll_for_recording_signals()
            recording_id = signals[0].recording_id
            while client.get_recording_position(recording_id) != publication.position:
                step()
            client.stop_recording(channel, 1001)
            descriptor = client.list_recording(recording_id)
            assert descriptor is not None
            print(
                f"  recording {recording_id}: {len(sent)} messages, positions "
                f"{descriptor.start_position}..{descriptor.stop_position}, session {descriptor.session_id}, "
                f"files {sorted(RealStorage(directory).list())}"
            )
            replayed: list[tuple[bytes, int]] = []

            def on_message(buffer: memoryview, header: Header) -> None:
                replayed.append((bytes(buffer), header.position()))

            assembler = FragmentAssembler(on_message)
            replay_subscription = node.add_subscription("aeron:ipc", 1010)
            client.start_replay(recording_id, 0, descriptor.stop_position, "aeron:ipc", 1010)
            while len(replayed) < len(sent):
                step()
                replay_subscription.poll(assembler.on_fragment, 64)
            stopped = [s for s in signals if s.signal == RecordingSignal.STOP]
            print(f"  signals: {[RecordingSignal(s.signal).name for s in signals]}")
            if replayed != sent or not stopped:
                print("  MISMATCH between what was recorded and what was replayed")
                return 1
            print(f"  replayed {len(replayed)} messages: the same bytes at the same positions")
        finally:
            client.close()
            archive.close()
    return 0


# ---------------------------------------------------------------------------- a cluster of processes

NODES: Final = 3
DEMO_SETTINGS: Final[Mapping[str, object]] = {
    "cluster.service.class": "kv",
    # Aeron's timeouts scaled down (as the process tests have them), so a failover takes seconds
    "cluster.log.channel": "aeron:udp?term-length=64k",
    "cluster.leader.heartbeat.timeout": "2s",
    "cluster.startup.canvass.timeout": "4s",
    "cluster.election.timeout": "500ms",
}
BASE_PORTS: Final = range(20_000, 32_000, 10)  # below Linux's ephemeral ports, which the client's egress uses
BASE_PORT_ATTEMPTS: Final = 50
ELECTION_TIMEOUT_S: Final = 30.0  # a first election, or one after the leader is killed
CONNECT_TIMEOUT_S: Final = 15.0
REQUEST_TIMEOUT_S: Final = 10.0
RESEND_AFTER_S: Final = 2.0
CATCH_UP_TIMEOUT_S: Final = 40.0  # includes the restarted node's wait for stale mark files (<= 11 s)
KEEP_ALIVE_INTERVAL_S: Final = 1.0
STATUS_QUIET_S: Final = 0.5  # after the last reply, before the members' status lines are believed
CLOSE_LINGER_S: Final = 0.1  # the client's close request leaves before its transport closes
STORY_TIMEOUT_S: Final = 90.0  # all the waits of the story together (about 15 s when nothing is wrong)
STOP_TIMEOUT_S: Final = 10.0  # SIGTERM, then SIGKILL
INTERRUPTED_STATUS: Final = 130  # a shell's status for SIGINT
MARK_FILE_LIVENESS_S: Final = 10  # the mark files' liveness timeout, Aeron's default

BEFORE_THE_KILL: Final = (("colour", "blue"), ("shape", "circle"), ("size", "large"))
AFTER_THE_KILL: Final = ("after", "failover")

T = TypeVar("T")


class _StoryFailed(Exception):
    """A step of the cluster story did not happen; the message says which, and within what bound."""


def _free_base_port() -> int:
    """A base port whose members' ports (``tools.node_processes.member_ports``) can all be bound on
    127.0.0.1 now: tried in a random order, another one if any port is busy."""
    import random

    from tools.node_processes import member_ports, port_in_use

    candidates = random.Random().sample(BASE_PORTS, BASE_PORT_ATTEMPTS)
    for base_port in candidates:
        if port_in_use(member_ports(NODES, base_port)) is None:
            return base_port
    raise _StoryFailed(f"no free ports for {NODES} members on 127.0.0.1 after {BASE_PORT_ATTEMPTS} tries")


def _process_cluster() -> int:
    """The story of step 3 (the module docstring); 0 if every step of it happened."""
    import tempfile

    from cluster.client.aeron_cluster import ClusterClientError
    from tools.node_processes import ProcessCluster

    print(
        f"\na local {NODES}-member cluster of real processes (python -m tools node), each running the "
        "key-value service"
    )
    with tempfile.TemporaryDirectory(prefix="aeron-cluster-demo-") as directory:
        try:
            base_port = _free_base_port()
        except _StoryFailed as failure:
            print(f"  FAILED: {failure}")
            return 1
        cluster = ProcessCluster(Path(directory), NODES, DEMO_SETTINGS, base_port=base_port)
        story = _Story(cluster)
        status = 1
        try:
            story.tell()
            status = 0
        except (_StoryFailed, ClusterClientError) as failure:
            print(f"  FAILED: {failure}")
            story.diagnose()
        except KeyboardInterrupt:
            print("  interrupted")
            status = INTERRUPTED_STATUS
        finally:  # whatever happened, even an error of ours: no member is left running
            stopped = story.stop()
        return status if status != 0 or stopped else 1


class _Story:
    """The client, the node processes and the story told of them (the module docstring)."""

    def __init__(self, cluster: ProcessCluster) -> None:
        self.cluster = cluster
        self.started_s = time.monotonic()
        self.client: AeronCluster | None = None
        self.replies: dict[int, Reply] = {}
        self.new_leaders: list[NewLeader] = []
        self.next_request_id = 1
        self.last_ingress_s = 0.0
        self.last_reply_s = 0.0
        self.pids: list[tuple[int, int]] = []  # (member id, pid) of every node process started, in order
        self.killed: dict[int, int] = {}  # pid -> exit status, of the processes killed on purpose

    # ------------------------------------------------------------------------------------ telling

    def say(self, text: str) -> None:
        print(f"  {time.monotonic() - self.started_s:5.1f} s  {text}", flush=True)

    def tell(self) -> None:
        """Every step of the story, in order; ``_StoryFailed`` names the first that did not happen."""
        leader = self.start()
        session_id = self.connect()
        for key, value in BEFORE_THE_KILL:
            self.write(key, value)
        for key, _ in BEFORE_THE_KILL:
            self.read(key)
        position = self.until(self._committed, REQUEST_TIMEOUT_S, "every member committed the requests")
        self.say(f"every member committed them: commit position {position}")
        killed_pid = self.kill(leader)
        successor = self.elect_without(leader, position)
        self.carry_on(session_id, successor)
        self.restart(leader.member, killed_pid)

    def start(self) -> NodeStatus:
        """Start every member; the first leader's status, once the others follow it."""
        cluster = self.cluster
        for member_id in range(NODES):
            self.pids.append((member_id, cluster.start(member_id).pid))
        started = ", ".join(f"member {member} (pid {pid})" for member, pid in self.pids)
        ingress = ", ".join(member.ingress for member in cluster.configs[0].members)
        self.say(f"started {started}; ingress at {ingress}")
        leader = self.until(cluster.settled, ELECTION_TIMEOUT_S, "a leader elected")
        self.say(f"member {leader.member} leads term {leader.term}; {self._followers(leader)}")
        return leader

    def kill(self, leader: NodeStatus) -> int:
        """``kill -9`` the leader's process, by pid; that pid."""
        process = self.cluster.processes[leader.member]
        self.killed[process.pid] = self.cluster.kill(leader.member)
        self.say(f"kill -9 member {leader.member}, the leader (pid {process.pid})")
        return process.pid

    def elect_without(self, leader: NodeStatus, position: int) -> NodeStatus:
        """The others elect a new leader in a later term, with all that was committed at ``position``;
        the new leader's status."""
        survivors = [member for member in range(NODES) if member != leader.member]

        def elected() -> NodeStatus | None:
            successor = self.cluster.settled(survivors)
            return successor if successor is not None and successor.term > leader.term else None

        what = f"a new leader elected without member {leader.member}"
        successor = self.until(elected, ELECTION_TIMEOUT_S, what)
        if successor.commit_position < position:
            raise _StoryFailed(f"the new leader's commit position {successor.commit_position} < {position}")
        self.say(
            f"new leader elected: member {successor.member} leads term {successor.term}; "
            f"{self._followers(successor)}; commit position {successor.commit_position}"
        )
        return successor

    def carry_on(self, session_id: int, successor: NodeStatus) -> None:
        """The client's session hears of the new leader and goes on with it, the same session."""

        def told() -> NewLeader | None:
            return next(
                (
                    event
                    for event in self.new_leaders
                    if (event.leadership_term_id, event.leader_member_id)
                    == (successor.term, successor.member)
                ),
                None,
            )

        event = self.until(told, ELECTION_TIMEOUT_S, f"the client told of member {successor.member}'s term")
        client = self._client()
        self.say(
            f"the client's session {client.cluster_session_id} was told: new leader member "
            f"{event.leader_member_id} in term {event.leadership_term_id}"
        )
        self.write(*AFTER_THE_KILL)
        self.read(BEFORE_THE_KILL[0][0])
        self.read(AFTER_THE_KILL[0])
        if client.is_closed or client.cluster_session_id != session_id:
            raise _StoryFailed(f"the client's session {session_id} did not carry on")
        self.say(f"same session {session_id}: the client carried on through the leader change")

    def restart(self, member_id: int, killed_pid: int) -> None:
        """Start the killed member again on its configuration and directories; it catches up."""
        cluster = self.cluster
        process = cluster.start(member_id)  # the same configuration file, so the same directories
        self.pids.append((member_id, process.pid))
        self.say(
            f"member {member_id} restarted on its directories (pid {process.pid}); it first waits for "
            f"the mark files of pid {killed_pid} to go stale (up to {MARK_FILE_LIVENESS_S} s)"
        )

        def caught_up() -> tuple[NodeStatus, NodeStatus] | None:
            leader = cluster.leader()
            status = cluster.view.status(member_id)
            if leader is None or status is None:
                return None
            same = (status.role, status.state, status.term, status.append_position, status.commit_position)
            wanted = ("FOLLOWER", "CLOSED", leader.term, leader.append_position, leader.commit_position)
            return (status, leader) if same == wanted else None

        status, leader = self.until(caught_up, CATCH_UP_TIMEOUT_S, f"member {member_id} caught up")
        self.say(
            f"member {member_id} caught up: it follows member {leader.member} in term {status.term} "
            f"at commit position {status.commit_position}, the leader's"
        )
        self.say(f"every member: {self._commit_positions()}")

    def connect(self) -> int:
        """Open the client's session; its cluster session id."""
        from cluster.client.aeron_cluster import AeronCluster, ClusterClientError
        from tools.node_processes import ingress_endpoints

        transport = self.cluster.transport
        endpoints = ingress_endpoints(self.cluster.configs[0].members)

        def connected() -> bool:
            if self.client is None:
                self.client = AeronCluster.begin_connect(
                    transport, egress_channel="aeron:udp?endpoint=127.0.0.1:0", ingress_endpoints=endpoints
                )
            try:
                return self.client.poll_connect()
            except ClusterClientError as error:  # a timeout of this attempt: begin another
                self.say(f"connect: {error}; trying again")
                self.client.close()
                self.client = None
                return False

        self.until(connected, CONNECT_TIMEOUT_S, "the client's session opened")
        client = self._client()
        self.last_ingress_s = time.monotonic()
        self.say(
            f"client connected: cluster session {client.cluster_session_id}, leader member "
            f"{client.leader_member_id}, term {client.leadership_term_id}"
        )
        return client.cluster_session_id

    def write(self, key: str, value: str) -> None:
        from cluster.service.kv import Status, encode_write

        reply, sends = self.request(lambda request_id: encode_write(request_id, key.encode(), value.encode()))
        if reply.status != Status.OK or reply.value != value.encode():
            raise _StoryFailed(f"write {key}={value}: the service answered {reply}")
        self.say(f"request {reply.request_id}: write {key} = {value} -> {reply.status.name}{_resent(sends)}")

    def read(self, key: str) -> None:
        from cluster.service.kv import Status, encode_read

        reply, sends = self.request(lambda request_id: encode_read(request_id, key.encode()))
        if reply.status != Status.OK or reply.value is None:
            raise _StoryFailed(f"read {key}: the service answered {reply}")
        self.say(f"request {reply.request_id}: read {key} -> {reply.value.decode()}{_resent(sends)}")

    def request(self, encode: Callable[[int], bytes]) -> tuple[Reply, int]:
        """Send one request until its reply comes (again after ``RESEND_AFTER_S`` without one, with the
        same request id); the reply and how many times it was sent."""
        client = self._client()
        request_id = self.next_request_id
        self.next_request_id += 1
        payload = encode(request_id)
        sends = 0
        sent_s = -RESEND_AFTER_S

        def answered() -> Reply | None:
            nonlocal sends, sent_s
            now_s = time.monotonic()
            if (
                request_id not in self.replies
                and now_s - sent_s >= RESEND_AFTER_S
                and client.offer(payload) > 0
            ):
                sends += 1
                sent_s = self.last_ingress_s = now_s
            return self.replies.pop(request_id, None)

        reply = self.until(answered, REQUEST_TIMEOUT_S, f"a reply to request {request_id}")
        return reply, sends

    # ------------------------------------------------------------------------------------ waiting

    def until(self, condition: Callable[[], T | None], timeout_s: float, what: str) -> T:
        """Run the client until ``condition()`` gives a value; ``_StoryFailed`` after ``timeout_s`` (or
        when the whole story's ``STORY_TIMEOUT_S`` runs out), or at once when a member that should be
        running has exited."""
        deadline = min(time.monotonic() + timeout_s, self.started_s + STORY_TIMEOUT_S)
        while True:
            value = condition()
            if value:
                return value
            self._check_members()
            if time.monotonic() >= deadline:
                if deadline == self.started_s + STORY_TIMEOUT_S:
                    raise _StoryFailed(f"the story's {STORY_TIMEOUT_S:g} s ran out before: {what}")
                raise _StoryFailed(f"never happened within {timeout_s:g} s: {what}")
            if self._pump() == 0:
                time.sleep(0.001)

    def _pump(self) -> int:
        """One duty cycle of the client: its transport, its egress, a keep-alive when one is due."""
        from cluster.client.protocol import State

        work = self.cluster.transport.do_work()
        client = self.client
        if client is None or client.is_closed or client.protocol.state != State.OPEN:
            return work
        work += client.poll_egress(self._on_egress)
        now_s = time.monotonic()
        if now_s - self.last_ingress_s >= KEEP_ALIVE_INTERVAL_S and client.send_keep_alive():
            self.last_ingress_s = now_s
        return work

    def _on_egress(self, event: Event) -> None:
        from cluster.client.protocol import Message, NewLeader, SessionClosed
        from cluster.service.kv import KvError, decode_reply

        if isinstance(event, Message):
            try:
                reply = decode_reply(event.payload)
            except KvError as error:
                raise _StoryFailed(
                    f"the service answered {len(event.payload)} bytes that are no reply: {error}"
                ) from error
            self.replies[reply.request_id] = reply  # a duplicate's second reply replaces the first
            self.last_reply_s = time.monotonic()
        elif isinstance(event, NewLeader):
            self.new_leaders.append(event)
        elif isinstance(event, SessionClosed):
            raise _StoryFailed(f"the cluster closed the client's session: {event.detail or 'no detail'}")

    def _check_members(self) -> None:
        from tools.node_processes import describe_exit

        for member_id, process in self.cluster.processes.items():
            status = process.poll()
            if status is not None and process.pid not in self.killed:
                raise _StoryFailed(f"member {member_id} (pid {process.pid}) exited: {describe_exit(status)}")

    def _client(self) -> AeronCluster:
        if self.client is None:
            raise _StoryFailed("the client has no session")
        return self.client

    # ------------------------------------------------------------------------------------ showing

    def _followers(self, leader: NodeStatus) -> str:
        """``members 0 and 2 follow``, or ``member 0 follows``."""
        followers = [
            str(member)
            for member, status in sorted(self.cluster.view.statuses().items())
            if member != leader.member and status.role == "FOLLOWER" and status.term == leader.term
        ]
        if len(followers) == 1:
            return f"member {followers[0]} follows"
        return f"members {' and '.join(followers)} follow"

    def _committed(self) -> int | None:
        """The commit position, once every running member has appended and committed all the leader has
        appended and ``STATUS_QUIET_S`` have passed since the last reply: a reply comes after its request
        was committed, and a node prints a changed commit position within its status interval (100 ms),
        so by then the leader's status shows everything the client was answered for."""
        if time.monotonic() - self.last_reply_s < STATUS_QUIET_S:
            return None
        statuses = [self.cluster.view.status(member) for member in self.cluster.running()]
        leader = self.cluster.leader()
        if leader is None or None in statuses:
            return None
        positions = {(s.append_position, s.commit_position) for s in statuses if s is not None}
        return leader.commit_position if positions == {(leader.append_position,) * 2} else None

    def _commit_positions(self) -> str:
        statuses = self.cluster.view.statuses()
        return ", ".join(
            f"member {member} {statuses[member].role.lower()} at {statuses[member].commit_position}"
            for member in sorted(statuses)
        )

    def diagnose(self) -> None:
        """What the members said last, for a failed story."""
        print("  what the members said last:")
        for member, status in sorted(self.cluster.view.statuses().items()):
            print(
                f"    member {member}: {status.role} {status.state}, term {status.term}, append position "
                f"{status.append_position}, commit position {status.commit_position}"
            )
        for event in self.cluster.view.events()[-10:]:
            print(f"    member {event.member}: {event.text}")
        for member in range(NODES):
            path = self.cluster.stderr_path(member)
            if path.exists():
                for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[-5:]:
                    print(f"    member {member} stderr: {line}")

    # ------------------------------------------------------------------------------------ stopping

    def stop(self) -> bool:
        """Close the client's session, stop every node process by pid (SIGTERM, then SIGKILL after
        ``STOP_TIMEOUT_S``); ``True`` if each one stopped was closed in order (exit status 0) and none of
        the processes started is left."""
        from tools.node_processes import describe_exit, stop_all

        client, self.client = self.client, None
        try:
            if client is not None:
                client.close()
                deadline = time.monotonic() + CLOSE_LINGER_S
                while time.monotonic() < deadline:
                    if self.cluster.transport.do_work() == 0:
                        time.sleep(0.001)
        finally:
            statuses = stop_all(self.cluster.processes.values(), STOP_TIMEOUT_S)
            self.cluster.close()  # nothing left running: it closes the transport
        stopped = {self.cluster.processes[member].pid: status for member, status in statuses.items()}
        stopped = {pid: status for pid, status in stopped.items() if pid not in self.killed}
        by_pid = {**self.killed, **stopped}
        left = [pid for _, pid in self.pids if _exists(pid)]
        self.say(
            "stopped every node process: "
            + ", ".join(f"pid {pid} {describe_exit(by_pid[pid])}" for _, pid in self.pids if pid in by_pid)
        )
        if left:
            print(f"  FAILED: still running: pids {', '.join(map(str, left))}")
        stopped_in_order = all(status == 0 for status in stopped.values())
        if not stopped_in_order:
            print("  FAILED: a member did not close in order on SIGTERM")
        return stopped_in_order and not left


def _resent(sends: int) -> str:
    return "" if sends <= 1 else f" (sent {sends} times: ingress is at most once)"


def _exists(pid: int) -> bool:
    """Whether process ``pid`` still exists (a child of ours that was reaped does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
