"""``python -m tools demo``: the project's main job, on an embedded default.

For now (the codec and transport milestones) it checks that the generated codecs are what the
built-in schemas generate (in memory; the demo writes nothing), builds an Aeron Cluster client's connect
request and an ingress message with the
generated encoders, sends them over Aeron UDP on the loopback interface -- a publication to a
subscription of our transport, SETUP/status-message handshake included -- and decodes what arrived
twice: with the generated decoders and with the run-time (OTF) decoder driven by the schema XML alone.
Then it runs an archive: a stream sent over UDP on loopback is recorded into segment files in a
temporary directory, replayed, and compared byte for byte and position for position. Then it runs a
3-member cluster in the deterministic node simulator (real cluster nodes -- transport, archive,
consensus module -- in virtual time over a simulated network and disks): the members elect a leader, a
client's commands are committed by every member, the leader crashes, the others elect a new one, the old
leader comes back and catches up, and every checker stays silent. Later milestones make
this start a local cluster of real processes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from tools import codegen_cmd

if TYPE_CHECKING:
    from cluster.consensus.node_sim import NodeSimulator

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
    return _simulated_cluster()


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


DEMO_SEED = 1


DEMO_LIMIT_MS = 30_000  # of virtual time, for each thing the demo waits for


def _simulated_cluster() -> int:
    from cluster.consensus.node_sim import NodeSimulator

    sim = NodeSimulator(DEMO_SEED, 3)
    try:
        return _run_simulated_cluster(sim)
    finally:
        sim.close()


def _run_simulated_cluster(sim: NodeSimulator) -> int:
    """Elect, commit 5 commands, crash the leader, elect again, commit 5 more, bring the old leader back;
    0 if every member ends with the same log and every checker stayed silent."""
    from cluster.consensus.node_sim import MS, RESTART_DELAY_NS

    def show(what: str) -> None:
        print(f"  {sim.now_ns // MS:>6} ms  {what}")
        for member in sim.members:
            node = member.node
            if node is None:
                print(f"           member {member.member_id}: down")
                continue
            agent = node.agent
            print(
                f"           member {member.member_id}: {agent.role.lower():<9}"
                f" term {agent.leadership_term_id}  commit {agent.commit_position:>5}"
            )

    def until(condition: Callable[[], bool], what: str) -> bool:
        end = sim.now_ns + DEMO_LIMIT_MS * MS
        while not condition():
            if sim.now_ns >= end or sim.violations:
                print(f"  FAILED: {sim.violations or f'never happened: {what}'}")
                return False
            sim.step()
        return True

    def leader() -> int:
        node = sim.leader()
        return -1 if node is None else node.config.member_id

    def send(commands: range) -> bool:
        for command in commands:
            if not until(partial(sim.submit, command), f"command {command} taken by the leader"):
                return False
            sim.run(10 * MS)
        return True

    print(
        "\na simulated 3-member cluster (seed 1; real cluster nodes -- transport, archive, consensus"
        " module -- over a simulated network and disks)"
    )
    if not until(lambda: leader() >= 0, "a leader elected"):
        return 1
    show("a leader is elected")
    old = leader()
    if not (send(range(0, 5)) and until(sim.converged, "5 commands committed")):
        return 1
    show("5 client commands committed")
    sim.crash(old)
    restart_ns = sim.now_ns + RESTART_DELAY_NS  # its mark files must go stale before it starts again
    if not until(lambda: leader() >= 0, "a new leader elected"):
        return 1
    show(f"the leader (member {old}) crashed; the others elected a new one")
    if not send(range(5, 10)):
        return 1
    if not until(lambda: sim.now_ns >= restart_ns and sim.restart(old), f"member {old} restarted"):
        return 1
    if not until(sim.converged, f"member {old} caught up"):
        return 1
    show(f"5 more commands; member {old} restarted and caught up")
    sim.check_converged()
    positions = {member.node.agent.commit_position for member in sim.members if member.node is not None}
    if sim.violations or len(positions) != 1 or sim.committed_commands != set(range(10)):
        print(f"  FAILED: {sim.violations or 'the members did not converge on the 10 commands'}")
        return 1
    print("  every member holds the same log; no checker found a violation")
    return 0
