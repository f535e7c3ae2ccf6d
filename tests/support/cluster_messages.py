"""Whole cluster-schema messages built with the generated encoders, for tests that play a cluster's or a
client's side by hand."""

from __future__ import annotations

from generated import aeron_cluster_codecs as codecs

__all__ = ["pack"]


def pack(encoder_type: type, var: dict[str, bytes | str] | None = None, **fields: int) -> bytes:
    """A message of ``encoder_type``: its header, the block's ``fields``, then the ``var`` data (in the
    schema's order, which is the dict's)."""
    buffer = bytearray(512)
    encoder = encoder_type().wrap_and_apply_header(buffer, 0)
    for name, value in fields.items():
        setattr(encoder, name, value)
    for name, value in (var or {}).items():
        getattr(encoder, f"put_{name}")(value)
    return bytes(buffer[: codecs.HEADER_SIZE + encoder.encoded_length()])
