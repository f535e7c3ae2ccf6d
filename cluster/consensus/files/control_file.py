"""``cluster-control.dat``: how an operator's tool reaches a running node -- the control toggle, the
node's answer, and what the node is doing.

Theory of operation
-------------------
Aeron's ClusterTool sets the cluster control toggle, a counter in the media driver's CnC file, and reads
the node-role and snapshot counters there. Our node runs its driver inside its own process and has no
CnC file, so the consensus module keeps the counters the tool needs in a small file of its cluster
directory instead, through the node's ``Storage`` (real files in a process, simulated ones in the
simulator, which asks for snapshots through it as the tool does).

Layout (4096 bytes, little-endian, every field 8-byte aligned)::

    0    version i32 (1), memberId i32
    8    request i64        written by tools: requestId << 8 | ToggleState
    16   reply i64          written by the node: requestId << 8 | ControlOutcome
    24   toggle i64         the node: the action in progress (ToggleState), NEUTRAL when none,
                            INACTIVE once the node has closed
    32   role i64           0 follower, 1 candidate, 2 leader (Aeron's node-role counter)
    40   moduleState i64    Aeron's consensus module state (ACTIVE 1, SUSPENDED 2, SNAPSHOT 3, ...)
    48   leaderMemberId i64 -1 while no leader is known
    56   leadershipTermId i64
    64   snapshotCount i64  snapshots taken since the node started (Aeron's counter 205)
    72   membersLength i32, then that many US-ASCII bytes: the members string (``cluster.members``)

**One writer per field.** A tool writes only ``request``, in one aligned 8-byte write; the node writes
everything else. A request is a new id (one more than the last) and the action, so a request never
needs a read-modify-write shared with the node. The node reads ``request`` on every control tick (every
``CONTROL_INTERVAL_NS``); a newer id than the last one it answered is a new request, which it answers in
``reply`` with the same id: ACCEPTED (or NOT_LEADER, REFUSED, UNSUPPORTED) at once, then DONE or FAILED
when the action is over. A request written while the node is down is never seen: ``create`` clears the
file when the node starts. Two tools writing at once both get ids; the node answers the newest, and the
older one sees a reply with a newer id (``superseded``).

The status fields are written only when they change, so the file costs the node nothing while nothing
happens, and nothing here is ever synced: the file describes a running process, and a crash ends what
it says (the mark file's activity timestamp tells a live node from a dead one).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final

from cluster.consensus.core.cluster_actions import ControlOutcome, ModuleState, ToggleState
from cluster.consensus.files.errors import ClusterFileError
from cluster.storage import Storage, StorageError, StorageFile

__all__ = [
    "CONTROL_FILE_LENGTH",
    "CONTROL_FILE_NAME",
    "CONTROL_INTERVAL_NS",
    "ClusterControlFile",
    "ControlStatus",
    "read_control",
    "submit_request",
]

CONTROL_FILE_NAME: Final = "cluster-control.dat"
CONTROL_FILE_LENGTH: Final = 4096
CONTROL_FILE_VERSION: Final = 1
CONTROL_INTERVAL_NS: Final = 10_000_000  # how often the node reads a request: Aeron's slow tick, 10 ms

_HEAD = struct.Struct("<ii")
_WORD = struct.Struct("<q")
_REQUEST, _REPLY, _TOGGLE, _ROLE, _MODULE_STATE, _LEADER, _TERM, _SNAPSHOTS = range(8, 72, 8)
_MEMBERS = 72
_MAX_MEMBERS_LENGTH = CONTROL_FILE_LENGTH - _MEMBERS - 4
_ID_SHIFT = 8
_CODE_MASK = (1 << _ID_SHIFT) - 1


def _split(word: int) -> tuple[int, int]:
    return word >> _ID_SHIFT, word & _CODE_MASK


@dataclass(frozen=True, slots=True)
class ControlStatus:
    """What ``cluster-control.dat`` says (see the module docstring)."""

    member_id: int
    request_id: int
    requested: int  # a ToggleState value
    reply_id: int
    outcome: int  # a ControlOutcome value
    toggle: int
    role: int
    module_state: int
    leader_member_id: int
    leadership_term_id: int
    snapshot_count: int
    members: str

    @property
    def role_name(self) -> str:
        return {0: "FOLLOWER", 1: "CANDIDATE", 2: "LEADER"}.get(self.role, f"UNKNOWN({self.role})")

    @property
    def toggle_name(self) -> str:
        return _name(ToggleState, self.toggle)

    @property
    def module_state_name(self) -> str:
        return _name(ModuleState, self.module_state)

    def to_json(self) -> dict[str, Any]:
        return {
            "memberId": self.member_id,
            "role": self.role_name,
            "moduleState": self.module_state_name,
            "toggle": self.toggle_name,
            "leaderMemberId": self.leader_member_id,
            "leadershipTermId": self.leadership_term_id,
            "snapshotCount": self.snapshot_count,
            "members": self.members,
            "request": {"id": self.request_id, "action": _name(ToggleState, self.requested)},
            "reply": {"id": self.reply_id, "outcome": _name(ControlOutcome, self.outcome)},
        }


def _name(kind: type[ToggleState] | type[ModuleState] | type[ControlOutcome], value: int) -> str:
    try:
        return kind(value).name
    except ValueError:
        return f"UNKNOWN({value})"


def _decode(data: bytes, location: str) -> ControlStatus:
    if len(data) < _MEMBERS + 4:
        raise ClusterFileError(f"{location}: {len(data)} bytes, too short for a control file")
    version, member_id = _HEAD.unpack_from(data)
    if version != CONTROL_FILE_VERSION:
        raise ClusterFileError(f"{location}: version {version}, not {CONTROL_FILE_VERSION}")
    words = [_WORD.unpack_from(data, offset)[0] for offset in range(_REQUEST, _MEMBERS, 8)]
    request, reply, toggle, role, module_state, leader, term, snapshots = words
    (members_length,) = struct.unpack_from("<i", data, _MEMBERS)
    if not 0 <= members_length <= min(_MAX_MEMBERS_LENGTH, len(data) - _MEMBERS - 4):
        raise ClusterFileError(f"{location}: members length {members_length} at offset {_MEMBERS}")
    try:
        members = data[_MEMBERS + 4 : _MEMBERS + 4 + members_length].decode("ascii")
    except UnicodeDecodeError as error:
        raise ClusterFileError(f"{location}: the members string is not US-ASCII: {error}") from None
    request_id, requested = _split(request)
    reply_id, outcome = _split(reply)
    return ControlStatus(
        member_id, request_id, requested, reply_id, outcome, toggle, role, module_state, leader, term,
        snapshots, members,
    )  # fmt: skip


def read_control(storage: Storage) -> ControlStatus:
    """The control file of the node whose cluster directory is ``storage``; ``ClusterFileError`` if it
    is missing or damaged."""
    location = f"{storage.location}/{CONTROL_FILE_NAME}"
    if not storage.exists(CONTROL_FILE_NAME):
        raise ClusterFileError(f"{location}: no control file (no node of ours has run here)")
    try:
        with storage.open(CONTROL_FILE_NAME) as file:
            data = file.read(0, CONTROL_FILE_LENGTH)
    except StorageError as error:
        raise ClusterFileError(f"{location}: {error}") from None
    return _decode(data, location)


def submit_request(storage: Storage, action: ToggleState) -> int:
    """Ask the node for ``action``: write a request with the next id; that id, to wait for its reply
    (``read_control``)."""
    status = read_control(storage)
    request_id = max(status.request_id, status.reply_id) + 1
    try:
        with storage.open(CONTROL_FILE_NAME) as file:
            file.write(_REQUEST, _WORD.pack(request_id << _ID_SHIFT | int(action)))
    except StorageError as error:
        raise ClusterFileError(f"{storage.location}/{CONTROL_FILE_NAME}: {error}") from None
    return request_id


class ClusterControlFile:
    """The node's side of ``cluster-control.dat``: made anew at start, read for requests, written with
    answers and status."""

    def __init__(self, file: StorageFile, member_id: int) -> None:
        self._file = file
        self.member_id = member_id
        self._words: dict[int, int] = {}
        self.last_request_id = 0
        self.is_closed = False

    @classmethod
    def create(cls, storage: Storage, *, member_id: int, members: str) -> ClusterControlFile:
        encoded = members.encode("ascii", "replace")[:_MAX_MEMBERS_LENGTH]
        image = bytearray(CONTROL_FILE_LENGTH)
        _HEAD.pack_into(image, 0, CONTROL_FILE_VERSION, member_id)
        initial = {
            _TOGGLE: int(ToggleState.NEUTRAL),
            _ROLE: 0,
            _MODULE_STATE: int(ModuleState.INIT),
            _LEADER: -1,
            _TERM: -1,
        }
        for offset, value in initial.items():
            _WORD.pack_into(image, offset, value)
        struct.pack_into("<i", image, _MEMBERS, len(encoded))
        image[_MEMBERS + 4 : _MEMBERS + 4 + len(encoded)] = encoded
        file = storage.open(CONTROL_FILE_NAME, create=True)
        try:
            file.truncate(0)
            file.write(0, image)
        except BaseException:
            file.close()
            raise
        control = cls(file, member_id)
        control._words = dict.fromkeys(range(_REQUEST, _MEMBERS, 8), 0) | initial
        return control

    def poll_request(self) -> tuple[int, int] | None:
        """A request newer than the last one answered: its id and action (a ToggleState value)."""
        request_id, action = _split(_WORD.unpack(self._file.read(_REQUEST, 8))[0])
        if request_id <= self.last_request_id:
            return None
        self.last_request_id = request_id
        return request_id, action

    def answer(self, request_id: int, outcome: ControlOutcome) -> None:
        self._write(_REPLY, request_id << _ID_SHIFT | int(outcome))

    def update(
        self,
        *,
        toggle: int,
        role: int,
        module_state: int,
        leader_member_id: int,
        leadership_term_id: int,
        snapshot_count: int,
    ) -> None:
        """The node's status, each field written only when it changed."""
        self._write(_TOGGLE, toggle)
        self._write(_ROLE, role)
        self._write(_MODULE_STATE, module_state)
        self._write(_LEADER, leader_member_id)
        self._write(_TERM, leadership_term_id)
        self._write(_SNAPSHOTS, snapshot_count)

    def _write(self, offset: int, value: int) -> None:
        if self._words.get(offset) != value:
            self._words[offset] = value
            self._file.write(offset, _WORD.pack(value))

    def close(self) -> None:
        """The node has stopped: INACTIVE, as Aeron's toggle reads with no node."""
        if self.is_closed:
            return
        self.is_closed = True
        try:
            self._write(_TOGGLE, int(ToggleState.INACTIVE))
            self._write(_MODULE_STATE, int(ModuleState.CLOSED))
        except StorageError:
            pass  # a crashed disk: the mark file tells the node is gone
        finally:
            self._file.close()
