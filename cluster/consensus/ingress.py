"""The consensus module's minimal ingress, from a client's side: a command offered to a leader.

Until client sessions exist (SessionConnectRequest, egress, redirects), a leader appends to its log
whatever SessionMessageHeader arrives on its ingress stream (101, at its ingress endpoint from the
members string) while it leads, with the header's leadership term id equal to its own term; anything
else is dropped without an answer (docs/consensus.md, "The driver contract": ``on_ingress``). A client
therefore has to know who leads and in which term -- ``python -m tools node`` prints both in its status
lines -- and finds out that a command was appended only by watching the commit position move.

``IngressPublisher`` keeps one exclusive publication per member endpoint on a transport the caller runs
(and closes); ``command_message`` is the message itself: the header, then the command as 8 bytes,
little-endian.
"""

from __future__ import annotations

from typing import Final

from cluster.consensus.core.errors import ConsensusError
from cluster.session_message import session_message
from cluster.transport.driver import Transport
from cluster.transport.publication import Publication
from cluster.transport.uri import ChannelUri
from generated import aeron_cluster_codecs as codecs

__all__ = ["COMMAND_LENGTH", "COMMAND_MESSAGE_LENGTH", "IngressError", "IngressPublisher", "command_message"]

COMMAND_LENGTH: Final = 8
COMMAND_MESSAGE_LENGTH: Final = codecs.HEADER_SIZE + codecs.SessionMessageHeaderEncoder.BLOCK_LENGTH + 8
DEFAULT_INGRESS_STREAM_ID: Final = 101
MAX_ENDPOINTS: Final = 64  # one publication per member; a cluster has at most a handful


def command_message(leadership_term_id: int, command: int, *, cluster_session_id: int = 1) -> bytes:
    """A SessionMessageHeader for ``leadership_term_id`` followed by ``command`` (int64, little-endian).
    The leader stamps the timestamp as it appends."""
    return session_message(
        leadership_term_id, cluster_session_id, 0, command.to_bytes(COMMAND_LENGTH, "little", signed=True)
    )


class IngressError(ConsensusError, ValueError):
    """An ``IngressPublisher`` was asked for more endpoints than it keeps."""


class IngressPublisher:
    """Offers commands to members' ingress endpoints over ``transport`` (see the module docstring)."""

    def __init__(
        self,
        transport: Transport,
        *,
        channel: str = "aeron:udp",
        stream_id: int = DEFAULT_INGRESS_STREAM_ID,
    ) -> None:
        self.transport = transport
        self.stream_id = stream_id
        self._channel = ChannelUri.parse(channel)
        self._publications: dict[str, Publication] = {}

    def publication(self, endpoint: str) -> Publication:
        """The publication to ``endpoint`` (``host:port``), added on first use."""
        publication = self._publications.get(endpoint)
        if publication is None:
            if len(self._publications) >= MAX_ENDPOINTS:
                raise IngressError(f"an IngressPublisher reaches at most {MAX_ENDPOINTS} endpoints")
            channel = self._channel.with_params(endpoint=endpoint).build()
            publication = self.transport.add_exclusive_publication(channel, self.stream_id)
            self._publications[endpoint] = publication
        return publication

    def offer(self, endpoint: str, leadership_term_id: int, command: int) -> bool:
        """Offer one command to the member at ``endpoint``; ``False`` if the publication is not connected
        yet or is back-pressured (run the transport and offer again). ``True`` says only that it left:
        the commit position says whether the leader took it."""
        publication = self.publication(endpoint)
        if not publication.is_connected:
            return False
        return publication.offer(command_message(leadership_term_id, command)) > 0

    def close(self) -> None:
        """Close every publication (the transport stays the caller's)."""
        publications, self._publications = self._publications, {}
        for publication in publications.values():
            publication.close()
