"""``replay_messages``: every whole message of a finished recording, read through a replay of the local
archive -- how a starting node loads its snapshots.

The caller waits: the function asks the archive for a replay of the whole recording onto ``channel`` and
``stream_id`` (IPC by default), subscribes first so that the replay image joins at the recording's start,
puts fragmented messages back together, and returns once the image has reached the recording's stop
position -- or, given ``until``, once ``until`` has said yes to a message: the replay is then stopped,
and the rest of the recording is never read. While it waits it runs the archive client's invoker (the
process's other duty cycles), as the client's own requests do; a node loads its snapshots before its
agents start, so nothing else waits on it.

A recording that does not exist or is still being recorded, a replay the archive refuses or reports
failed (any error the client receives meanwhile counts: nothing else uses the client while a node
starts), a replay that ends before the stop position, and no progress within ``timeout_ns`` on the
transport's clock all raise an ``ArchiveError`` saying which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from cluster.archive.client import ArchiveClient
from cluster.archive.errors import ArchiveError
from cluster.transport.logbuffer import MAX_MESSAGE_LENGTH, FragmentAssembler, Header

__all__ = ["DEFAULT_TIMEOUT_NS", "replay_messages"]

DEFAULT_TIMEOUT_NS: Final = 10_000_000_000
_FRAGMENT_LIMIT: Final = 256


def replay_messages(
    archive: ArchiveClient,
    recording_id: int,
    *,
    channel: str = "aeron:ipc",
    stream_id: int = 103,
    timeout_ns: int = DEFAULT_TIMEOUT_NS,
    max_message_length: int = MAX_MESSAGE_LENGTH,
    until: Callable[[bytes], bool] | None = None,
) -> list[bytes]:
    """The recording's messages, in order, up to the one ``until`` says yes to, if given (see the module
    docstring)."""
    descriptor = archive.list_recording(recording_id)
    if descriptor is None:
        raise ArchiveError(f"there is no recording {recording_id} to replay")
    start, stop = descriptor.start_position, descriptor.stop_position
    if stop < 0:
        raise ArchiveError(f"recording {recording_id} is still being recorded: it has no stop position")
    if stop == start:
        return []
    messages: list[bytes] = []
    wanted = True  # False once ``until`` has said yes

    def on_message(payload: memoryview, header: Header) -> None:
        nonlocal wanted
        if wanted:
            message = bytes(payload)
            messages.append(message)
            if until is not None and until(message):
                wanted = False

    assembler = FragmentAssembler(on_message, max_message_length)
    transport = archive.transport
    clock = transport.clock
    subscription = transport.add_subscription(channel, stream_id)
    try:
        replay_session_id = archive.start_replay(recording_id, start, stop - start, channel, stream_id)
        session_id = ((replay_session_id & 0xFFFF_FFFF) ^ 0x8000_0000) - 0x8000_0000
        deadline = clock.nano_time() + timeout_ns
        while True:
            error = archive.poll_for_error_response()
            if error is not None:  # the replay failed in the archive (a damaged frame, a missing file)
                raise ArchiveError(f"the replay of recording {recording_id} failed: {error.error_message}")
            image = subscription.image_by_session_id(session_id)
            if image is not None:
                if image.poll(assembler, _FRAGMENT_LIMIT) > 0:
                    deadline = clock.nano_time() + timeout_ns
                if image.position >= stop:
                    return messages
                if not wanted:
                    archive.stop_replay(replay_session_id)
                    return messages
                if image.is_closed:
                    raise ArchiveError(
                        f"the replay of recording {recording_id} ended at {image.position}, before its stop "
                        f"position {stop}"
                    )
            if clock.nano_time() >= deadline:
                raise ArchiveError(f"the replay of recording {recording_id} made no progress in time")
            archive.wait()
    finally:
        subscription.close()
