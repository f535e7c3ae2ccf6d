"""Hypothesis strategies for cluster memberships: lists of valid ``ClusterMember`` values, as a members
string (``aeron.cluster.members``) of 1 to 7 members would parse into."""

from __future__ import annotations

from hypothesis import strategies as st

from cluster.consensus.core.members import ClusterMember

hosts = st.one_of(
    st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True),
    st.ip_addresses(v=6).map(lambda address: f"[{address}]"),
)


@st.composite
def members_lists(draw: st.DrawFn) -> list[ClusterMember]:
    count = draw(st.integers(1, 7))
    ids = draw(st.lists(st.integers(0, 2**31 - 1), min_size=count, max_size=count, unique=True))
    members = []
    for index, member_id in enumerate(ids):
        host = draw(hosts)
        ports = iter(range(1 + 10 * index, 10 + 10 * index))  # unique per member, never 0
        optional = draw(st.integers(0, 2))
        members.append(
            ClusterMember(
                member_id,
                f"{host}:{next(ports)}",
                f"{host}:{next(ports)}",
                f"{host}:{next(ports)}",
                f"{host}:{draw(st.sampled_from([0, next(ports)]))}",
                f"{host}:{next(ports)}",
                f"{host}:{draw(st.integers(0, 65535))}" if optional >= 1 else None,
                f"{host}:{draw(st.integers(0, 65535))}" if optional >= 2 else None,
            )
        )
    return members
