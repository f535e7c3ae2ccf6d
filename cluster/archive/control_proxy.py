"""``ControlResponseProxy``: encodes what the archive sends a client and offers it on the session's
response publication.

Every message is the generated codec of ``aeron-archive-codecs.xml`` with its 8-byte message header:
``ControlResponse``, ``RecordingDescriptor`` (a listing entry, the catalog's record with the session's
ids in front), ``RecordingSignalEvent``, ``Challenge`` and ``RecordingSubscriptionDescriptor``. A
method returns whether the publication took the message; the caller (``ControlSession``) queues what was
refused and offers it again, so responses are never reordered or lost to back pressure.

A listing entry is sent as Aeron sends it: the message header, then the descriptor as the catalog holds
it, padding included -- the entry's length in the catalog, ``align(32 + descriptor, alignment) - 32``
(a Java archive's listing message for a descriptor of 181 bytes is 232 bytes long, with zeros after
the source identity). Decoders read the descriptor's fields and ignore the padding.
"""

from __future__ import annotations

from dataclasses import replace

from cluster.archive.catalog import (
    DEFAULT_ALIGNMENT,
    DESCRIPTOR_HEADER_LENGTH,
    RecordingDescriptor,
    encode_descriptor,
)
from cluster.archive.protocol import PROTOCOL_SEMANTIC_VERSION
from cluster.transport.publication import Publication
from generated import aeron_archive_codecs as codecs

__all__ = ["ControlResponseProxy"]

_HEADER = codecs.HEADER_SIZE
_RESPONSE = codecs.ControlResponseEncoder
_SIGNAL = codecs.RecordingSignalEventEncoder
_SIGNAL_LENGTH = _HEADER + _SIGNAL.BLOCK_LENGTH
_DESCRIPTOR = codecs.RecordingDescriptorEncoder
# the message header of a listing entry: the catalog's descriptor record follows it as it is
_DESCRIPTOR_HEADER = codecs.MessageHeaderEncoder.LAYOUT.pack(
    _DESCRIPTOR.BLOCK_LENGTH, _DESCRIPTOR.TEMPLATE_ID, codecs.SCHEMA_ID, codecs.SCHEMA_VERSION
)


class ControlResponseProxy:
    """Encodes responses into one scratch buffer and offers them (see the module docstring).
    ``catalog_alignment`` is the entry alignment of the catalog whose descriptors are listed."""

    def __init__(self, *, catalog_alignment: int = DEFAULT_ALIGNMENT) -> None:
        self._buffer = bytearray(4096)
        self.catalog_alignment = catalog_alignment

    def _scratch(self, length: int) -> bytearray:
        if len(self._buffer) < length:
            self._buffer = bytearray(max(length, 2 * len(self._buffer)))
        return self._buffer

    def response_bytes(
        self,
        control_session_id: int,
        correlation_id: int,
        relevant_id: int,
        code: int,
        error_message: str = "",
    ) -> bytes:
        """A ``ControlResponse`` with its header, as bytes (also what a queued response holds)."""
        message = error_message.encode("ascii", "replace")
        buffer = self._scratch(_HEADER + _RESPONSE.BLOCK_LENGTH + 4 + len(message))
        encoder = _RESPONSE().wrap_and_apply_header(buffer, 0)
        encoder.control_session_id = control_session_id
        encoder.correlation_id = correlation_id
        encoder.relevant_id = relevant_id
        encoder.code = code
        encoder.version = PROTOCOL_SEMANTIC_VERSION
        encoder.put_error_message(message)
        return bytes(buffer[: _HEADER + encoder.encoded_length()])

    def signal_bytes(
        self,
        control_session_id: int,
        correlation_id: int,
        recording_id: int,
        subscription_id: int,
        position: int,
        signal: int,
    ) -> bytes:
        buffer = self._scratch(_SIGNAL_LENGTH)
        _SIGNAL.pack_into(
            buffer, 0, control_session_id, correlation_id, recording_id, subscription_id, position, signal
        )
        return bytes(buffer[:_SIGNAL_LENGTH])

    def descriptor_bytes(
        self, control_session_id: int, correlation_id: int, descriptor: RecordingDescriptor
    ) -> bytes:
        """A listing entry: the message header, then the descriptor as the catalog encodes it with the
        session's ids in front, padded to its catalog entry's length."""
        body = encode_descriptor(
            replace(descriptor, control_session_id=control_session_id, correlation_id=correlation_id)
        )
        entry = _align(DESCRIPTOR_HEADER_LENGTH + len(body), self.catalog_alignment)
        return _DESCRIPTOR_HEADER + body + bytes(entry - DESCRIPTOR_HEADER_LENGTH - len(body))

    def challenge_bytes(self, control_session_id: int, correlation_id: int, challenge: bytes) -> bytes:
        buffer = self._scratch(_HEADER + codecs.ChallengeEncoder.BLOCK_LENGTH + 4 + len(challenge))
        encoder = codecs.ChallengeEncoder().wrap_and_apply_header(buffer, 0)
        encoder.control_session_id = control_session_id
        encoder.correlation_id = correlation_id
        encoder.version = PROTOCOL_SEMANTIC_VERSION
        encoder.put_encoded_challenge(challenge)
        return bytes(buffer[: _HEADER + encoder.encoded_length()])

    def subscription_descriptor_bytes(
        self,
        control_session_id: int,
        correlation_id: int,
        subscription_id: int,
        stream_id: int,
        channel: str,
    ) -> bytes:
        raw = channel.encode("ascii", "replace")
        encoder_type = codecs.RecordingSubscriptionDescriptorEncoder
        buffer = self._scratch(_HEADER + encoder_type.BLOCK_LENGTH + 4 + len(raw))
        encoder = encoder_type().wrap_and_apply_header(buffer, 0)
        encoder.control_session_id = control_session_id
        encoder.correlation_id = correlation_id
        encoder.subscription_id = subscription_id
        encoder.stream_id = stream_id
        encoder.put_stripped_channel(raw)
        return bytes(buffer[: _HEADER + encoder.encoded_length()])

    @staticmethod
    def offer(publication: Publication, message: bytes) -> bool:
        """Offer one encoded message; ``True`` if the publication took it."""
        return publication.offer(message) > 0


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) & ~(alignment - 1)
