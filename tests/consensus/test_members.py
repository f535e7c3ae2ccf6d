"""Membership and quorum rules (``docs/consensus.md``, "Members and quorums"): the members string,
quorum arithmetic, and the candidate/leader predicates of an election."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.members import members_lists

from cluster.consensus.core.errors import ConsensusError, MembershipError
from cluster.consensus.core.members import (
    MAX_MEMBERS,
    ClusterMember,
    MemberStatus,
    compare_log,
    format_members,
    has_active_quorum,
    has_quorum_at_position,
    have_voters_reached_position,
    is_quorum_candidate,
    is_quorum_leader,
    is_unanimous_candidate,
    is_unanimous_leader,
    member_by_id,
    parse_members,
    quorum_position,
    quorum_threshold,
    validate_members,
)

THREE_MEMBERS = (
    "0,h0:9002,h0:9003,h0:9004,h0:9005,h0:8010"
    "|1,h1:9002,h1:9003,h1:9004,h1:9005,h1:8010"
    "|2,h2:9002,h2:9003,h2:9004,h2:9005,h2:8010"
)


def member_text(member_id: int, host: str = "h", *extra: str) -> str:
    base = f"{member_id},{host}:9002,{host}:9003,{host}:9004,{host}:9005,{host}:8010"
    return ",".join((base, *extra))


# ------------------------------------------------------------------------------- members string


def test_three_members_parse_in_order() -> None:
    members = parse_members(THREE_MEMBERS)
    assert [member.id for member in members] == [0, 1, 2]
    assert members[1] == ClusterMember(1, "h1:9002", "h1:9003", "h1:9004", "h1:9005", "h1:8010")
    assert members[1].archive_response is None and members[1].egress_response is None
    assert format_members(members) == THREE_MEMBERS


def test_member_order_is_kept_not_sorted() -> None:
    text = member_text(5, "a") + "|" + member_text(1, "b") + "|" + member_text(3, "c")
    assert [member.id for member in parse_members(text)] == [5, 1, 3]


@pytest.mark.parametrize(
    "text",
    [
        member_text(0),
        member_text(0, "h", "h:8011"),
        member_text(0, "h", "h:0", "h:0"),
        "7,[::1]:9002,[::1]:9003,[::1]:9004,[::1]:0,[fe80::1%eth0]:8010",
        "2147483647,a.b-c_d:1,a.b-c_d:2,a.b-c_d:3,a.b-c_d:0,a.b-c_d:65535",
        member_text(0, "a") + "|" + member_text(1, "b"),
    ],
)
def test_well_formed_text_round_trips(text: str) -> None:
    assert format_members(parse_members(text)) == text


def test_seven_and_eight_attributes_fill_the_optional_endpoints() -> None:
    seven = parse_members(member_text(0, "h", "h:8011"))[0]
    assert seven.archive_response == "h:8011" and seven.egress_response is None
    eight = parse_members(member_text(0, "h", "h:8011", "h:0"))[0]
    assert (eight.archive_response, eight.egress_response) == ("h:8011", "h:0")
    assert eight.endpoints == ("h:9002", "h:9003", "h:9004", "h:9005", "h:8010", "h:8011", "h:0")


GOOD = member_text(0, "a")
BAD_MEMBER_STRINGS = [
    ("", "empty"),
    ("|" + GOOD, "member 0 is empty"),
    (GOOD + "|", "member 1 is empty"),
    (GOOD + "||" + member_text(1, "b"), "member 1 is empty"),
    ("0,a:1,a:2,a:3,a:4", "member 0 '0,a:1,a:2,a:3,a:4' has 5 attributes; expected 6 to 8"),
    (member_text(0, "a", "a:1", "a:2", "a:3"), "has 9 attributes"),
    ("x,a:1,a:2,a:3,a:4,a:5", "member 0: id 'x'"),
    ("-1,a:1,a:2,a:3,a:4,a:5", "member 0: id '-1'"),
    ("+1,a:1,a:2,a:3,a:4,a:5", "member 0: id '+1'"),
    ("01,a:1,a:2,a:3,a:4,a:5", "member 0: id '01'"),
    ("2147483648,a:1,a:2,a:3,a:4,a:5", "member 0: id '2147483648'"),
    (" 0,a:1,a:2,a:3,a:4,a:5", "member 0: id ' 0'"),
    ("3,a,a:2,a:3,a:4,a:5", "member 0 (id 3): ingress endpoint 'a' has no ':port'"),
    ("3,a:1,:2,a:3,a:4,a:5", "member 0 (id 3): consensus endpoint ':2' has an empty host"),
    ("3,a:1,a:2,a b:3,a:4,a:5", "member 0 (id 3): log endpoint 'a b:3' has a bad host"),
    ("3,a:1,a:2,a:3,a:x,a:5", "member 0 (id 3): catchup endpoint 'a:x' has a bad port"),
    ("3,a:1,a:2,a:3,a:4,a:65536", "member 0 (id 3): archive endpoint 'a:65536' has a bad port"),
    ("3,a:1,a:2,a:3,a:4,a:5,a:", "member 0 (id 3): archive_response endpoint 'a:' has a bad port"),
    ("3,a:1,a:2,a:3,a:4,a:5,a:6,a:-1", "member 0 (id 3): egress_response endpoint 'a:-1' has a bad port"),
    ("3,a:0,a:2,a:3,a:4,a:5", "member 0 (id 3): ingress endpoint 'a:0' has port 0"),
    ("3,a:1,a:0,a:3,a:4,a:5", "member 0 (id 3): consensus endpoint 'a:0' has port 0"),
    ("3,a:1,a:2,a:0,a:4,a:5", "member 0 (id 3): log endpoint 'a:0' has port 0"),
    ("3,a:1,a:2,a:3,a:4,a:0", "member 0 (id 3): archive endpoint 'a:0' has port 0"),
    ("3,::1:1,a:2,a:3,a:4,a:5", "IPv6 needs brackets"),
    ("3,[::1:1,a:2,a:3,a:4,a:5", "member 0 (id 3): ingress endpoint '[::1:1' is not '[ipv6-address]:port'"),
    ("3,[zz::1]:1,a:2,a:3,a:4,a:5", "bad IPv6 address 'zz::1'"),
    ("3,[::1%a b]:1,a:2,a:3,a:4,a:5", "bad IPv6 scope 'a b'"),
    ("3,a:1,a:2,a:3,a:4,a:5 ", "member 0 (id 3): archive endpoint 'a:5 ' has a bad port"),
    (member_text(4, "a") + "|" + member_text(4, "b"), "member 1: id 4 is already used by member 0"),
    (
        "0,a:1,a:2,a:3,a:0,a:5|1,b:1,a:2,b:3,a:0,b:5",
        "member 1 (id 1): consensus endpoint 'a:2' is also member 0's (id 0)",
    ),
    (
        "0,a:1,a:2,a:3,a:4,a:5|1,b:1,b:2,b:3,a:4,b:5",
        "member 1 (id 1): catchup endpoint 'a:4' is also member 0's",
    ),
    ("|".join(member_text(i, f"h{i}") for i in range(MAX_MEMBERS + 1)), f"at most {MAX_MEMBERS}"),
]


@pytest.mark.parametrize(("text", "message"), BAD_MEMBER_STRINGS)
def test_bad_member_strings_name_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(MembershipError) as caught:
        parse_members(text)
    assert message in str(caught.value)
    assert caught.value.is_user_error
    assert isinstance(caught.value, ConsensusError) and isinstance(caught.value, ValueError)


def test_non_string_members_is_refused() -> None:
    with pytest.raises(MembershipError, match="must be a string"):
        parse_members(b"0,a:1,a:2,a:3,a:4,a:5")  # type: ignore[arg-type]


def test_shared_catchup_port_zero_is_allowed() -> None:
    text = "0,a:1,a:2,a:3,h:0,a:5|1,b:1,b:2,b:3,h:0,b:5"
    assert format_members(parse_members(text)) == text


def test_shared_ingress_and_log_are_allowed_for_multicast_channels() -> None:
    text = "0,224.0.1.1:9010,a:2,224.0.1.1:9020,a:0,a:5|1,224.0.1.1:9010,b:2,224.0.1.1:9020,b:0,b:5"
    assert format_members(parse_members(text)) == text


def test_max_members_is_accepted() -> None:
    text = "|".join(member_text(i, f"h{i}") for i in range(MAX_MEMBERS))
    assert len(parse_members(text)) == MAX_MEMBERS


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": -1}, "member id -1 is out of range"),
        ({"id": True}, "member id True is not an int"),
        ({"log": "h:0"}, "member id 0: log endpoint 'h:0' has port 0"),
        ({"catchup": None}, "member id 0: catchup endpoint None is not a string"),
        ({"egress_response": "h:0"}, "egress_response is set without archive_response"),
    ],
)
def test_constructed_member_is_validated(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "id": 0,
        "ingress": "h:1",
        "consensus": "h:2",
        "log": "h:3",
        "catchup": "h:4",
        "archive": "h:5",
    }
    fields.update(kwargs)
    with pytest.raises(MembershipError) as caught:
        ClusterMember(**fields)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_validate_members_refuses_empty_and_foreign_values() -> None:
    with pytest.raises(MembershipError, match="at least one member"):
        validate_members([])
    with pytest.raises(MembershipError, match="member 0 is not a ClusterMember but str"):
        validate_members(["0,a:1"])  # type: ignore[list-item]


def test_member_by_id() -> None:
    members = parse_members(THREE_MEMBERS)
    assert member_by_id(members, 2) is members[2]
    with pytest.raises(MembershipError, match="no member with id 9 \\(members: 0, 1, 2\\)"):
        member_by_id(members, 9)


# --------------------------------------------------------------------------- round trip (property)


@given(members_lists())
def test_format_then_parse_is_identity(members: list[ClusterMember]) -> None:
    text = format_members(members)
    assert parse_members(text) == tuple(members)
    assert format_members(parse_members(text)) == text


@given(st.text(alphabet="0123456789ab:,|[]%. -", max_size=80))
def test_parse_raises_only_membership_error(text: str) -> None:
    try:
        members = parse_members(text)
    except MembershipError:
        return
    assert format_members(members) == text


# ---------------------------------------------------------------------------------- quorum rules


@pytest.mark.parametrize(("members", "threshold"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4)])
def test_quorum_threshold_table(members: int, threshold: int) -> None:
    assert quorum_threshold(members) == threshold


def test_quorum_threshold_needs_a_member() -> None:
    with pytest.raises(MembershipError, match="member_count=0"):
        quorum_threshold(0)


@pytest.mark.parametrize(
    ("positions", "member_count", "expected"),
    [
        ([100], 1, 100),
        ([100, 50, 70], 3, 70),
        ([100, -1, -1], 3, -1),
        ([100, 90, -1], 3, 90),
        ([100, 90], 3, 90),  # the third member is not heard from
        ([100], 3, -1),
        ([], 3, -1),
        ([5, 5, 5, 5, 5], 5, 5),
        ([10, 40, 20, 50, 30], 5, 30),
        ([10, 40, 20, 50], 5, 20),
        ([0, 0, -1], 3, 0),
        ([7, 3], 2, 3),  # two members: both must have it
    ],
)
def test_quorum_position_examples(positions: list[int], member_count: int, expected: int) -> None:
    assert quorum_position(positions, member_count) == expected


def test_quorum_position_refuses_bad_input() -> None:
    with pytest.raises(MembershipError, match="4 positions for 3 members"):
        quorum_position([1, 2, 3, 4], 3)
    with pytest.raises(MembershipError, match="position -2 is below NULL_POSITION"):
        quorum_position([1, -2, 3], 3)


@given(
    st.integers(1, 9).flatmap(lambda n: st.tuples(st.lists(st.integers(-1, 1000), max_size=n), st.just(n)))
)
def test_quorum_position_is_the_highest_position_a_quorum_holds(case: tuple[list[int], int]) -> None:
    positions, member_count = case
    padded = positions + [-1] * (member_count - len(positions))
    k = member_count // 2 + 1
    brute = max(
        (p for p in [-1, *padded] if sum(1 for q in padded if q >= p) >= k),
        default=-1,
    )
    assert quorum_position(positions, member_count) == brute


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((1, 100), (1, 100), 0),
        ((2, 0), (1, 1000), 1),
        ((1, 1000), (2, 0), -1),
        ((1, 101), (1, 100), 1),
        ((1, 99), (1, 100), -1),
        ((-1, -1), (0, 0), -1),
    ],
)
def test_compare_log_term_first_then_position(a: tuple[int, int], b: tuple[int, int], expected: int) -> None:
    assert compare_log(*a, *b) == expected
    assert compare_log(*b, *a) == -expected


# ------------------------------------------------------------------------- candidates and leaders


def statuses(*logs: tuple[int, int]) -> list[MemberStatus]:
    """Members 0..n-1 with the given (log term, log position); (-1, -1) = not heard from."""
    return [MemberStatus(i, log_leadership_term_id=t, log_position=p) for i, (t, p) in enumerate(logs)]


def test_unanimous_candidate_needs_everyone_reported_and_none_better() -> None:
    group = statuses((1, 100), (1, 100), (1, 90))
    assert is_unanimous_candidate(group, group[0])
    assert not is_unanimous_candidate(group, group[2])  # two members have better logs
    silent = statuses((1, 100), (1, 100), (-1, -1))
    assert not is_unanimous_candidate(silent, silent[0])
    assert is_quorum_candidate(silent, silent[0])


def test_unanimous_candidate_excludes_the_gracefully_closed_leader() -> None:
    group = statuses((1, 100), (1, 100), (-1, -1))
    assert not is_unanimous_candidate(group, group[0])
    assert is_unanimous_candidate(group, group[0], graceful_closed_leader_id=2)
    # ... but the rest must still be a quorum of the whole membership
    pair = statuses((1, 100), (-1, -1))
    assert not is_unanimous_candidate(pair, pair[0], graceful_closed_leader_id=1)


def test_quorum_candidate_counts_reported_logs_no_better_than_mine() -> None:
    group = statuses((2, 10), (1, 500), (-1, -1), (3, 0), (2, 10))
    assert is_quorum_candidate(group, group[0])  # 0, 1 and 4: three of five
    assert not is_quorum_candidate(group, group[1])  # only itself
    assert is_quorum_candidate(group, group[3])  # 0, 1, 3 and 4
    assert not is_quorum_candidate(group, MemberStatus(9, 0, 0))


def votes(candidate_term_id: int, *cast: tuple[int, bool | None]) -> list[MemberStatus]:
    """Members 0..n-1 with (candidate term, vote)."""
    return [MemberStatus(i, candidate_term_id=t, vote=v) for i, (t, v) in enumerate(cast)]


def test_unanimous_leader_needs_every_vote_true_in_my_term() -> None:
    assert is_unanimous_leader(votes(5, (5, True), (5, True), (5, True)), 5)
    assert not is_unanimous_leader(votes(5, (5, True), (5, True), (5, None)), 5)
    assert not is_unanimous_leader(votes(5, (5, True), (5, True), (4, True)), 5)
    assert is_unanimous_leader(votes(5, (5, True), (5, True), (-1, None)), 5, graceful_closed_leader_id=2)
    assert not is_unanimous_leader(votes(5, (5, True), (-1, None)), 5, graceful_closed_leader_id=1)


def test_quorum_leader_needs_a_quorum_of_true_votes() -> None:
    assert is_quorum_leader(votes(5, (5, True), (5, True), (-1, None)), 5)
    assert not is_quorum_leader(votes(5, (5, True), (-1, None), (-1, None)), 5)
    assert not is_quorum_leader(votes(5, (5, True), (4, True), (-1, None)), 5)  # a vote from another term


def test_quorum_leader_fails_on_any_false_vote_in_my_term() -> None:
    """Aeron's ClusterMemberTest isQuorumLeaderReturnsFalseIfAtLeastOneNegativeVoteIsDetected."""
    group = votes(5, (5, True), (5, True), (5, True), (5, True), (5, False))
    assert not is_quorum_leader(group, 5)
    # a FALSE from an older candidate term does not count against this ballot
    assert is_quorum_leader(votes(5, (5, True), (5, True), (4, False)), 5)


def test_predicates_refuse_duplicate_or_missing_statuses() -> None:
    with pytest.raises(MembershipError, match="two statuses for member id 0"):
        is_quorum_leader([MemberStatus(0), MemberStatus(0)], 1)
    with pytest.raises(MembershipError, match="no member statuses"):
        is_quorum_candidate([], MemberStatus(0))


@given(st.lists(st.tuples(st.integers(-1, 3), st.sampled_from([True, False, None])), min_size=1, max_size=7))
def test_unanimous_leader_implies_quorum_leader(cast: list[tuple[int, bool | None]]) -> None:
    group = votes(3, *cast)
    if is_unanimous_leader(group, 3):
        assert is_quorum_leader(group, 3)


@given(st.lists(st.tuples(st.integers(-1, 3), st.integers(-1, 50)), min_size=1, max_size=7), st.data())
def test_unanimous_candidate_implies_quorum_candidate(
    logs: list[tuple[int, int]], data: st.DataObject
) -> None:
    group = statuses(*((t, p) if p >= 0 else (-1, -1) for t, p in logs))
    candidate = data.draw(st.sampled_from(group))
    if is_unanimous_candidate(group, candidate):
        assert is_quorum_candidate(group, candidate)


# -------------------------------------------------------------------------------- leader liveness


def test_has_active_quorum_counts_the_leader_and_recent_appends() -> None:
    group = [
        MemberStatus(0),  # the leader
        MemberStatus(1, time_of_last_append_ns=1_000),
        MemberStatus(2, time_of_last_append_ns=-1),
    ]
    assert has_active_quorum(group, 0, now_ns=1_000 + 10_000, timeout_ns=10_000)
    assert not has_active_quorum(group, 0, now_ns=1_000 + 10_001, timeout_ns=10_000)


def test_voters_and_quorum_at_position() -> None:
    group = [
        MemberStatus(0, log_leadership_term_id=3, log_position=500, vote=True),
        MemberStatus(1, log_leadership_term_id=3, log_position=400, vote=True),
        MemberStatus(2, log_leadership_term_id=2, log_position=900, vote=None),
    ]
    assert have_voters_reached_position(group, 400, 3)
    assert not have_voters_reached_position(group, 450, 3)
    assert has_quorum_at_position(group, 400, 3)
    assert not has_quorum_at_position(group, 450, 3)
    assert not has_quorum_at_position(group, 100, 2)  # only member 2 is in term 2


@given(members_lists(), st.data())
def test_edited_member_strings_raise_only_membership_error(
    members: list[ClusterMember], data: st.DataObject
) -> None:
    text = list(format_members(members))
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(text) - 1))
        text[position] = data.draw(st.sampled_from("0123456789:,|[]% x"))
    edited = "".join(text)
    try:
        parsed = parse_members(edited)
    except MembershipError:
        return
    assert format_members(parsed) == edited
