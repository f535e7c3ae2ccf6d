"""Whole cluster-schema messages built with the generated encoders, for tests that play a cluster's or a
client's side by hand (the product's own ``cluster.messages.pack``)."""

from __future__ import annotations

from cluster.messages import pack

__all__ = ["pack"]
