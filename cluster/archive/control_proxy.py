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

from cluster.archive.catalog import DEFAULT_ALIGNMENT, DESCRIPTOR_HEADER_LENGTH
from cluster.transport.publication import Publication
from generated import aeron_archive_codecs as codecs

__all__ = ["ControlResponseProxy", "encode_descriptor"]

_HEADER = codecs.HEADER_SIZE
_RESPONSE = codecs.ControlResponseEncoder
_SIGNAL = codecs.RecordingSignalEventEncoder
_SIGNAL_LENGTH = _HEADER + _SIGNAL.BLOCK_LENGTH


def encode_descriptor(
    buffer: bytearray,
    control_session_id: int,
    correlation_id: int,
    descriptor: object,
) -> int:
    """Write ``descriptor`` (a ``catalog.RecordingDescriptor``) as a listing message into ``buffer``;
    return its length. The buffer must hold it (``descriptor_length``)."""
    d = descriptor
    encoder = codecs.RecordingDescriptorEncoder().wrap_and_apply_header(buffer, 0)
    encoder.control_session_id = control_session_id
    encoder.correlation_id = correlation_id
    encoder.recording_id = d.recording_id  # type: ignore[attr-defined]
    encoder.start_timestamp = d.start_timestamp  # type: ignore[attr-defined]
    encoder.stop_timestamp = d.stop_timestamp  # type: ignore[attr-defined]
    encoder.start_position = d.start_position  # type: ignore[attr-defined]
    encoder.stop_position = d.stop_position  # type: ignore[attr-defined]
    encoder.initial_term_id = d.initial_term_id  # type: ignore[attr-defined]
    encoder.segment_file_length = d.segment_file_length  # type: ignore[attr-defined]
    encoder.term_buffer_length = d.term_buffer_length  # type: ignore[attr-defined]
    encoder.mtu_length = d.mtu_length  # type: ignore[attr-defined]
    encoder.session_id = d.session_id  # type: ignore[attr-defined]
    encoder.stream_id = d.stream_id  # type: ignore[attr-defined]
    encoder.put_stripped_channel(d.stripped_channel)  # type: ignore[attr-defined]
    encoder.put_original_channel(d.original_channel)  # type: ignore[attr-defined]
    encoder.put_source_identity(d.source_identity)  # type: ignore[attr-defined]
    return _HEADER + encoder.encoded_length()


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
        encoder.version = _protocol_version()
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

    def descriptor_bytes(self, control_session_id: int, correlation_id: int, descriptor: object) -> bytes:
        d = descriptor
        length = (
            _HEADER
            + codecs.RecordingDescriptorEncoder.BLOCK_LENGTH
            + 12
            + len(d.stripped_channel)  # type: ignore[attr-defined]
            + len(d.original_channel)  # type: ignore[attr-defined]
            + len(d.source_identity)  # type: ignore[attr-defined]
        )
        buffer = self._scratch(length)
        written = encode_descriptor(buffer, control_session_id, correlation_id, descriptor)
        entry = _align(DESCRIPTOR_HEADER_LENGTH + written - _HEADER, self.catalog_alignment)
        return bytes(buffer[:written]) + bytes(entry - DESCRIPTOR_HEADER_LENGTH + _HEADER - written)

    def challenge_bytes(self, control_session_id: int, correlation_id: int, challenge: bytes) -> bytes:
        buffer = self._scratch(_HEADER + codecs.ChallengeEncoder.BLOCK_LENGTH + 4 + len(challenge))
        encoder = codecs.ChallengeEncoder().wrap_and_apply_header(buffer, 0)
        encoder.control_session_id = control_session_id
        encoder.correlation_id = correlation_id
        encoder.version = _protocol_version()
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


def _protocol_version() -> int:
    from cluster.archive.protocol import PROTOCOL_SEMANTIC_VERSION

    return PROTOCOL_SEMANTIC_VERSION
