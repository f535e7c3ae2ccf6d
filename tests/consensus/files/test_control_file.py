"""``cluster-control.dat``: the node makes it anew, takes each request once, answers it and keeps its
status; a tool's request and the node's answer pass through the file; INACTIVE once the node closed;
any bytes read back as a status or a ``ClusterFileError``, never anything else."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.consensus.core.cluster_actions import ControlOutcome, ModuleState, ToggleState
from cluster.consensus.files.control_file import (
    CONTROL_FILE_LENGTH,
    CONTROL_FILE_NAME,
    ClusterControlFile,
    read_control,
    submit_request,
)
from cluster.consensus.files.errors import ClusterFileError
from cluster.storage import RealStorage, SimDisk, Storage

MEMBERS = "0,h0:1,h0:2,h0:3,h0:4,h0:5|1,h1:1,h1:2,h1:3,h1:4,h1:5"


@pytest.mark.parametrize("kind", ["real", "sim"])
def test_a_request_is_taken_once_and_answered(tmp_path: Path, kind: str) -> None:
    storage: Storage = RealStorage(tmp_path) if kind == "real" else SimDisk(1).storage("node")
    control = ClusterControlFile.create(storage, member_id=1, members=MEMBERS)
    status = read_control(storage)
    assert (status.member_id, status.members, status.toggle, status.leader_member_id) == (
        1,
        MEMBERS,
        ToggleState.NEUTRAL,
        -1,
    )
    assert control.poll_request() is None
    first = submit_request(storage, ToggleState.SNAPSHOT)
    assert control.poll_request() == (first, ToggleState.SNAPSHOT)
    assert control.poll_request() is None  # taken once
    control.answer(first, ControlOutcome.ACCEPTED)
    control.update(
        toggle=ToggleState.SNAPSHOT,
        role=2,
        module_state=ModuleState.SNAPSHOT,
        leader_member_id=1,
        leadership_term_id=4,
        snapshot_count=0,
    )
    status = read_control(storage)
    assert (status.reply_id, status.outcome, status.role_name, status.module_state_name) == (
        first,
        ControlOutcome.ACCEPTED,
        "LEADER",
        "SNAPSHOT",
    )
    second = submit_request(storage, ToggleState.SUSPEND)
    assert second == first + 1
    assert control.poll_request() == (second, ToggleState.SUSPEND)
    control.close()
    status = read_control(storage)
    assert (status.toggle, status.module_state) == (ToggleState.INACTIVE, ModuleState.CLOSED)
    again = ClusterControlFile.create(storage, member_id=1, members=MEMBERS)
    assert again.poll_request() is None  # a request written before the node started is never acted on
    again.close()


def test_no_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ClusterFileError, match="no control file"):
        read_control(RealStorage(tmp_path))


def _valid_image() -> bytes:
    storage = SimDisk(1).storage("node")
    ClusterControlFile.create(storage, member_id=2, members=MEMBERS).close()
    return storage.read_file(CONTROL_FILE_NAME)


_mutated = st.builds(
    lambda image, changes, cut: bytes(
        _apply(bytearray(image), changes)[: cut if cut is not None else len(image)]
    ),
    st.just(_valid_image()),
    st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=8),
    st.none() | st.integers(0, CONTROL_FILE_LENGTH),
)


def _apply(image: bytearray, changes: list[tuple[int, int]]) -> bytearray:
    for offset, value in changes:
        image[offset] = value
    return image


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=CONTROL_FILE_LENGTH + 16) | _mutated)
def test_any_bytes_read_as_a_status_or_a_clear_error(data: bytes) -> None:
    storage = SimDisk(1).storage("node")
    with storage.open(CONTROL_FILE_NAME, create=True) as file:
        file.write(0, data)
    try:
        status = read_control(storage)
    except ClusterFileError:
        return
    assert status.to_json()["memberId"] == status.member_id
