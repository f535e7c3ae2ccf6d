"""Listing sessions: recording descriptors and recording subscriptions sent a few at a time.

A listing can name thousands of recordings; sending them all in one duty cycle would stall the archive
and flood the client's response stream. A ``ListingSession`` sends at most ``MAX_PER_CYCLE`` entries per
duty cycle through its control session's queue, and a control session has at most one listing at a time
(a second request gets an ERROR with ``ACTIVE_LISTING``, as in Aeron).

**How a descriptor listing ends** (Aeron's rule, checked against a Java archive): the listing walks
recording ids upward from ``from_recording_id``. It ends when ``count`` descriptors have been sent, or at
the first id that is not a VALID recording (never allocated, deleted or invalid), which is answered with
a ``RECORDING_UNKNOWN`` response whose ``relevantId`` is that id. A client counts descriptors until it has
``count`` or sees that response.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from cluster.archive.control_session import ControlSession

__all__ = ["MAX_PER_CYCLE", "ListingSession", "descriptor_listing", "subscription_listing"]

MAX_PER_CYCLE = 16


class ListingSession:
    """Sends the items of ``entries`` (each a callable that queues one message) a few per cycle."""

    def __init__(self, control_session: ControlSession, entries: Iterator[Callable[[], None]]) -> None:
        self.control_session = control_session
        self._entries = entries
        self.is_done = False

    def do_work(self, now_ns: int) -> int:
        if self.is_done:
            return 0
        session = self.control_session
        if not session.is_active or session.active_listing is not self:
            self.is_done = True
            return 0
        work = 0
        for send in self._entries:
            send()
            work += 1
            if work >= MAX_PER_CYCLE:
                return work
        self.is_done = True
        session.active_listing = None
        return work + 1


def descriptor_listing(
    session: ControlSession,
    correlation_id: int,
    from_recording_id: int,
    count: int,
    recording: Callable[[int], Any],
    matches: Callable[[Any], bool] | None = None,
) -> Iterator[Callable[[], None]]:
    """The messages of a descriptor listing (see the module docstring): ``recording(id)`` gives a VALID
    descriptor or None; ``matches`` filters (``ListRecordingsForUri``)."""
    sent = 0
    recording_id = max(0, from_recording_id)
    if count <= 0:
        return
    while sent < count:
        descriptor = recording(recording_id)
        if descriptor is None:
            yield partial(session.send_recording_unknown, correlation_id, recording_id)
            return
        if matches is None or matches(descriptor):
            sent += 1
            yield partial(session.send_descriptor, correlation_id, descriptor)
        recording_id += 1


def subscription_listing(
    session: ControlSession,
    correlation_id: int,
    subscriptions: list[tuple[int, int, str]],
    pseudo_index: int,
    count: int,
    apply_stream_id: bool,
    stream_id: int,
    channel_fragment: str,
) -> Iterator[Callable[[], None]]:
    """``RecordingSubscriptionDescriptor`` messages for the recording subscriptions
    (``(subscription_id, stream_id, stripped_channel)`` in creation order) from ``pseudo_index`` on that
    match, at most ``count``; a ``SUBSCRIPTION_UNKNOWN`` response ends a listing that found fewer."""
    sent = 0
    for subscription_id, sub_stream_id, channel in subscriptions[pseudo_index:]:
        if apply_stream_id and sub_stream_id != stream_id:
            continue
        if channel_fragment not in channel:
            continue
        sent += 1
        yield partial(
            session.send_subscription_descriptor, correlation_id, subscription_id, sub_stream_id, channel
        )
        if sent >= count:
            return
    yield partial(session.send_subscription_unknown, correlation_id)
