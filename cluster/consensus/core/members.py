"""Cluster membership and the quorum rules of an election (docs/consensus.md, "Members and quorums").

Theory of operation
-------------------
Membership is static: every node is started with the same ``aeron.cluster.members`` string,

    id,ingress,consensus,log,catchup,archive[,archiveResponse[,egressResponse]]|id,...

one member per ``|``-separated part, 6 to 8 comma-separated attributes each. ``parse_members`` turns it
into a tuple of immutable ``ClusterMember`` values *in the given order* (Aeron keeps member order; the
clients' ingress endpoints string is in member order) and ``format_members`` is its inverse:
``format_members(parse_members(text)) == text`` for every text ``parse_members`` accepts. Parsing
follows Aeron's split (``|`` then ``,``) but is stricter, so that a typo fails at start-up:

* an id is a non-negative int32 written canonically (``7``, not ``07`` or ``+7``), and ids are unique;
* an endpoint is ``host:port`` with a non-empty host (``[A-Za-z0-9._-]``, or an IPv6 address in
  brackets with an optional ``%scope``) and a port in 0..65535; port 0 ("let the OS choose") is allowed
  only where Aeron resolves it at run time: ``catchup``, ``archive_response`` and ``egress_response``;
* no empty member (``a||b``, a trailing ``|``) and no surrounding whitespace;
* two members may not share a ``consensus`` endpoint, or a ``catchup`` endpoint with a fixed port: each
  member binds its own (a copy-pasted line that was not edited). ``ingress`` and ``log`` are not
  checked, since with multicast ingress or log channels Aeron ignores them and they may repeat;
* 1 to ``MAX_MEMBERS`` (64) members. Aeron has no hard cap; 64 is far above any sensible voting
  membership (even sizes add no tolerance, 7 already tolerates 3 failures) and keeps every
  per-member loop bounded.

Every failure raises ``MembershipError`` naming the member (its index in the string, and its id once
known) and the bad attribute, e.g. ``member 1 (id 1): consensus endpoint 'h1:99999' has a bad port``.

The quorum rules are pure functions over plain data. What a node knows about each member during an
election -- the log it reported (``log_leadership_term_id``, ``log_position``), the candidate term of its
vote and the vote itself, when it last sent an AppendPosition -- is a small immutable ``MemberStatus``;
the caller keeps one per member (itself included) and replaces them as messages arrive. ``-1`` is
Aeron's NULL_VALUE / NULL_POSITION throughout: "not heard from".

* ``quorum_threshold(n) = n // 2 + 1``.
* ``compare_log`` orders logs by ``(leadership term, position)``: a higher term wins, then a higher
  position.
* ``quorum_position`` is the highest position that at least a quorum of members have reached: the
  k-th highest of the reported positions, k = quorum threshold. A member not heard from counts as
  ``-1``, so the result is ``-1`` while fewer than k members have reported. (Aeron ranks from 0, so its
  answer is 0 there; callers take ``max`` with a commit position that starts at 0, and the two agree.)
* Candidates (checked in CANVASS): *unanimous* -- every member except a gracefully closed ex-leader has
  reported a log and none is better than the candidate's, and they are at least a quorum; *quorum* --
  at least a quorum of members (the candidate included) have reported logs no better than its own.
* Leaders (checked in CANDIDATE_BALLOT): *unanimous* -- every member except a gracefully closed
  ex-leader voted TRUE in the candidate term, and they are at least a quorum; *quorum* -- at least a
  quorum voted TRUE in the candidate term **and none voted FALSE in it**: one explicit rejection fails
  the ballot (Aeron's ``ClusterMember.isQuorumLeader``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cluster.consensus.core.errors import MembershipError

__all__ = [
    "MAX_MEMBERS",
    "NULL_POSITION",
    "NULL_VALUE",
    "ClusterMember",
    "MemberStatus",
    "compare_log",
    "format_members",
    "has_active_quorum",
    "has_quorum_at_position",
    "have_voters_reached_position",
    "is_quorum_candidate",
    "is_quorum_leader",
    "is_unanimous_candidate",
    "is_unanimous_leader",
    "member_by_id",
    "parse_members",
    "quorum_position",
    "quorum_threshold",
    "validate_members",
]

NULL_VALUE = -1  # Aeron.NULL_VALUE
NULL_POSITION = -1  # AeronArchive.NULL_POSITION
MAX_MEMBERS = 64
INT32_MAX = 2**31 - 1
MIN_ATTRIBUTES = 6
MAX_ATTRIBUTES = 8

# Endpoint attributes in string order, and whether each may use port 0.
ENDPOINT_ATTRIBUTES: tuple[tuple[str, bool], ...] = (
    ("ingress", False),
    ("consensus", False),
    ("log", False),
    ("catchup", True),
    ("archive", False),
    ("archive_response", True),
    ("egress_response", True),
)
# Attributes two members may not share (catchup only with a fixed port): each member binds its own.
_UNIQUE_ATTRIBUTES = ("consensus", "catchup")
_FORMAT = "id,ingress,consensus,log,catchup,archive[,archiveResponse[,egressResponse]]"

_ID = re.compile(r"0|[1-9][0-9]{0,9}")
_HOST = re.compile(r"[A-Za-z0-9._-]+")
_PORT = re.compile(r"[0-9]{1,5}")
_IPV6_HOST = re.compile(r"\[([^\]%]*)(?:%([^\]]*))?\]")
_SCOPE = re.compile(r"[A-Za-z0-9_.~-]+")


def _show(text: str, limit: int = 120) -> str:
    """``text`` quoted for an error message, cut short if long."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _endpoint_problem(value: object, allow_port_zero: bool) -> str | None:
    """Why ``value`` is not a ``host:port`` endpoint, or ``None`` if it is one."""
    if not isinstance(value, str):
        return f"is not a string but {type(value).__name__}"
    host, colon, port_text = value.rpartition(":")
    if not colon:
        return "has no ':port'"
    if host == "":
        return "has an empty host"
    if host.startswith("["):
        match = _IPV6_HOST.fullmatch(host)
        if match is None:
            return "is not '[ipv6-address]:port'"
        address, scope = match.groups()
        try:
            ipaddress.IPv6Address(address)  # also rejects empty text and any non-ASCII
        except ValueError:
            return f"has a bad IPv6 address {address!r}"
        if scope is not None and _SCOPE.fullmatch(scope) is None:
            return f"has a bad IPv6 scope {scope!r}"
    elif _HOST.fullmatch(host) is None:
        return f"has a bad host {host!r} (letters, digits, '.', '_', '-'; IPv6 needs brackets)"
    if _PORT.fullmatch(port_text) is None or int(port_text) > 65535:
        return f"has a bad port {port_text!r} (0..65535)"
    if int(port_text) == 0 and not allow_port_zero:
        return "has port 0, which only catchup, archive_response and egress_response may use"
    return None


def _id_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"is not an int but {type(value).__name__}"
    if not 0 <= value <= INT32_MAX:
        return f"is out of range [0, {INT32_MAX}]"
    return None


# ----------------------------------------------------------------------------------------- members


@dataclass(frozen=True, slots=True)
class ClusterMember:
    """One member of the static membership: its id and endpoints as ``host:port`` text.

    Construction validates every field (``MembershipError`` names the id and attribute), so a
    ``ClusterMember`` always formats to text that ``parse_members`` accepts.
    """

    id: int
    ingress: str
    consensus: str
    log: str
    catchup: str
    archive: str
    archive_response: str | None = None
    egress_response: str | None = None

    def __post_init__(self) -> None:
        problem = _id_problem(self.id)
        if problem is not None:
            raise MembershipError(f"member id {self.id!r} {problem}")
        for name, allow_zero in ENDPOINT_ATTRIBUTES:
            value = getattr(self, name)
            if value is None and name in ("archive_response", "egress_response"):
                continue
            problem = _endpoint_problem(value, allow_zero)
            if problem is not None:
                shown = _show(value) if isinstance(value, str) else repr(value)
                raise MembershipError(f"member id {self.id}: {name} endpoint {shown} {problem}")
        if self.egress_response is not None and self.archive_response is None:
            raise MembershipError(
                f"member id {self.id}: egress_response is set without archive_response "
                "(the members string is positional, so the 8th attribute needs the 7th)"
            )

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The endpoints present, in members-string order (Aeron's ``endpoints``, split)."""
        values = (
            self.ingress,
            self.consensus,
            self.log,
            self.catchup,
            self.archive,
            self.archive_response,
            self.egress_response,
        )
        return tuple(value for value in values if value is not None)

    def text(self) -> str:
        """This member's part of the members string: ``id,ingress,consensus,log,catchup,archive[,...]``."""
        return ",".join((str(self.id), *self.endpoints))


def parse_members(text: str) -> tuple[ClusterMember, ...]:
    """Parse an ``aeron.cluster.members`` string; raises ``MembershipError`` naming the bad part."""
    if not isinstance(text, str):
        raise MembershipError(f"cluster members must be a string, not {type(text).__name__}")
    if text == "":
        raise MembershipError(f"cluster members string is empty; expected {_FORMAT}|...")
    parts = text.split("|")
    if len(parts) > MAX_MEMBERS:
        raise MembershipError(f"cluster members string has {len(parts)} members; at most {MAX_MEMBERS}")
    members: list[ClusterMember] = []
    for index, part in enumerate(parts):
        members.append(_parse_member(index, part))
    return validate_members(members)


def _parse_member(index: int, part: str) -> ClusterMember:
    if part == "":
        raise MembershipError(f"member {index} is empty (a '|' at either end, or two in a row)")
    attributes = part.split(",")
    if not MIN_ATTRIBUTES <= len(attributes) <= MAX_ATTRIBUTES:
        raise MembershipError(
            f"member {index} {_show(part)} has {len(attributes)} attributes; expected "
            f"{MIN_ATTRIBUTES} to {MAX_ATTRIBUTES}: {_FORMAT}"
        )
    id_text = attributes[0]
    if _ID.fullmatch(id_text) is None or int(id_text) > INT32_MAX:
        raise MembershipError(
            f"member {index}: id {_show(id_text)} is not a non-negative int32 in plain decimal "
            "(no sign, no leading zeros)"
        )
    member_id = int(id_text)
    for (name, allow_zero), value in zip(ENDPOINT_ATTRIBUTES, attributes[1:], strict=False):
        problem = _endpoint_problem(value, allow_zero)
        if problem is not None:
            raise MembershipError(
                f"member {index} (id {member_id}): {name} endpoint {_show(value)} {problem}"
            )
    ingress, consensus, log, catchup, archive = attributes[1:6]
    archive_response = attributes[6] if len(attributes) > 6 else None
    egress_response = attributes[7] if len(attributes) > 7 else None
    return ClusterMember(
        member_id, ingress, consensus, log, catchup, archive, archive_response, egress_response
    )


def validate_members(members: Iterable[ClusterMember]) -> tuple[ClusterMember, ...]:
    """Check a whole membership (count, unique ids, no shared endpoints) and return it as a tuple."""
    result = tuple(members)
    if not result:
        raise MembershipError("a cluster needs at least one member")
    if len(result) > MAX_MEMBERS:
        raise MembershipError(f"{len(result)} members; at most {MAX_MEMBERS}")
    index_by_id: dict[int, int] = {}
    owner: dict[tuple[str, str], int] = {}
    for index, member in enumerate(result):
        if not isinstance(member, ClusterMember):
            raise MembershipError(f"member {index} is not a ClusterMember but {type(member).__name__}")
        first = index_by_id.setdefault(member.id, index)
        if first != index:
            raise MembershipError(f"member {index}: id {member.id} is already used by member {first}")
        for name in _UNIQUE_ATTRIBUTES:
            value: str = getattr(member, name)
            if name == "catchup" and value.endswith(":0"):
                continue
            other = owner.setdefault((name, value), index)
            if other != index:
                raise MembershipError(
                    f"member {index} (id {member.id}): {name} endpoint {_show(value)} "
                    f"is also member {other}'s (id {result[other].id})"
                )
    return result


def format_members(members: Iterable[ClusterMember]) -> str:
    """The ``aeron.cluster.members`` string for ``members``, in their order (inverse of ``parse_members``)."""
    return "|".join(member.text() for member in validate_members(members))


def member_by_id(members: Iterable[ClusterMember], member_id: int) -> ClusterMember:
    """The member with ``member_id``; raises ``MembershipError`` if there is none."""
    ids: list[int] = []
    for member in members:
        if member.id == member_id:
            return member
        ids.append(member.id)
    raise MembershipError(f"no member with id {member_id} (members: {', '.join(map(str, ids)) or 'none'})")


# ------------------------------------------------------------------------------------------ quorum


def quorum_threshold(member_count: int) -> int:
    """Members needed for a quorum: ``member_count // 2 + 1`` (1->1, 2->2, 3->2, 4->3, 5->3)."""
    if member_count < 1:
        raise MembershipError(f"member_count={member_count}: a cluster has at least one member")
    return (member_count >> 1) + 1


def quorum_position(positions: Sequence[int], member_count: int) -> int:
    """The highest position a quorum of members has reached, or ``NULL_POSITION`` (-1) if unknown.

    ``positions`` holds one reported position per member (any order; the leader includes its own
    archive-recorded append position); ``-1`` means "not heard from", and members beyond
    ``len(positions)`` count as ``-1`` too. The result is the k-th highest value, k =
    ``quorum_threshold(member_count)``: at least k members have reached it, and no higher position is
    held by k members. It is ``-1`` while fewer than k members have reported.
    """
    threshold = quorum_threshold(member_count)
    if len(positions) > member_count:
        raise MembershipError(f"{len(positions)} positions for {member_count} members")
    ranked = sorted(positions, reverse=True)
    if ranked and ranked[-1] < NULL_POSITION:
        raise MembershipError(f"position {ranked[-1]} is below NULL_POSITION (-1)")
    if len(ranked) < threshold:
        return NULL_POSITION
    return ranked[threshold - 1]


def compare_log(
    leadership_term_id_a: int, log_position_a: int, leadership_term_id_b: int, log_position_b: int
) -> int:
    """1 if log a is more recent than log b, -1 if less, 0 if equal: the higher term, then position, wins."""
    if leadership_term_id_a != leadership_term_id_b:
        return 1 if leadership_term_id_a > leadership_term_id_b else -1
    if log_position_a != log_position_b:
        return 1 if log_position_a > log_position_b else -1
    return 0


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """What this node knows about one member in the current election or term (``-1`` = not heard).

    ``log_leadership_term_id``/``log_position`` come from the member's CanvassPosition, Vote or
    AppendPosition (for this node: its own log); ``candidate_term_id``/``vote`` from its Vote (``None``
    = no vote yet); ``time_of_last_append_ns`` from its last AppendPosition.
    """

    member_id: int
    log_leadership_term_id: int = NULL_VALUE
    log_position: int = NULL_POSITION
    candidate_term_id: int = NULL_VALUE
    vote: bool | None = None
    time_of_last_append_ns: int = NULL_VALUE


def _check_statuses(statuses: Sequence[MemberStatus]) -> None:
    if not statuses:
        raise MembershipError("no member statuses: pass one per member, this node included")
    seen: set[int] = set()
    for status in statuses:
        if status.member_id in seen:
            raise MembershipError(f"two statuses for member id {status.member_id}")
        seen.add(status.member_id)


def _has_reported_no_better_log(status: MemberStatus, candidate: MemberStatus) -> bool:
    return status.log_position != NULL_POSITION and (
        compare_log(
            candidate.log_leadership_term_id,
            candidate.log_position,
            status.log_leadership_term_id,
            status.log_position,
        )
        >= 0
    )


def is_unanimous_candidate(
    statuses: Sequence[MemberStatus], candidate: MemberStatus, graceful_closed_leader_id: int = NULL_VALUE
) -> bool:
    """Every member but a gracefully closed ex-leader has reported a log no better than the candidate's,
    and they are at least a quorum. ``statuses`` has one entry per member, the candidate included."""
    _check_statuses(statuses)
    count = 0
    for status in statuses:
        if status.member_id == graceful_closed_leader_id:
            continue
        if not _has_reported_no_better_log(status, candidate):
            return False
        count += 1
    return count >= quorum_threshold(len(statuses))


def is_quorum_candidate(statuses: Sequence[MemberStatus], candidate: MemberStatus) -> bool:
    """At least a quorum of members (the candidate included) have reported logs no better than its own."""
    _check_statuses(statuses)
    count = sum(1 for status in statuses if _has_reported_no_better_log(status, candidate))
    return count >= quorum_threshold(len(statuses))


def is_unanimous_leader(
    statuses: Sequence[MemberStatus], candidate_term_id: int, graceful_closed_leader_id: int = NULL_VALUE
) -> bool:
    """Every member but a gracefully closed ex-leader voted TRUE in ``candidate_term_id``, and they are
    at least a quorum. The candidate's own status carries its vote for itself."""
    _check_statuses(statuses)
    count = 0
    for status in statuses:
        if status.member_id == graceful_closed_leader_id:
            continue
        if status.candidate_term_id != candidate_term_id or status.vote is not True:
            return False
        count += 1
    return count >= quorum_threshold(len(statuses))


def is_quorum_leader(statuses: Sequence[MemberStatus], candidate_term_id: int) -> bool:
    """At least a quorum voted TRUE in ``candidate_term_id`` and nobody voted FALSE in it.

    A single explicit FALSE in the candidate term fails the ballot even when a quorum voted TRUE
    (Aeron's ``ClusterMember.isQuorumLeader``). Votes from other candidate terms are ignored.
    """
    _check_statuses(statuses)
    count = 0
    for status in statuses:
        if status.candidate_term_id != candidate_term_id:
            continue
        if status.vote is False:
            return False
        if status.vote is True:
            count += 1
    return count >= quorum_threshold(len(statuses))


def has_active_quorum(
    statuses: Sequence[MemberStatus], leader_member_id: int, now_ns: int, timeout_ns: int
) -> bool:
    """The leader still has a quorum: itself plus members whose last AppendPosition is within
    ``timeout_ns`` of ``now_ns`` (docs/consensus.md, "Replication and commit"; Aeron checks it on every
    slow tick)."""
    _check_statuses(statuses)
    count = 0
    for status in statuses:
        if status.member_id == leader_member_id or (
            status.time_of_last_append_ns != NULL_VALUE
            and now_ns <= status.time_of_last_append_ns + timeout_ns
        ):
            count += 1
    return count >= quorum_threshold(len(statuses))


def have_voters_reached_position(
    statuses: Sequence[MemberStatus], position: int, leadership_term_id: int
) -> bool:
    """Every member that voted (TRUE or FALSE) has reported ``position`` or beyond in ``leadership_term_id``
    (LEADER_READY's fast path; docs/consensus.md, "Election")."""
    _check_statuses(statuses)
    return all(
        status.log_leadership_term_id == leadership_term_id and status.log_position >= position
        for status in statuses
        if status.vote is not None
    )


def has_quorum_at_position(statuses: Sequence[MemberStatus], position: int, leadership_term_id: int) -> bool:
    """At least a quorum of members has reported ``position`` or beyond in ``leadership_term_id``."""
    _check_statuses(statuses)
    count = sum(
        1
        for status in statuses
        if status.log_leadership_term_id == leadership_term_id and status.log_position >= position
    )
    return count >= quorum_threshold(len(statuses))
