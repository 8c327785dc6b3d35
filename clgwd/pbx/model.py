"""The normalized user every connector produces, and the ``UserSource`` seam.

A connector's only job is to turn its PBX's rows into ``PbxUser`` values and to fail
loudly: a read either returns *every* user the source has (``SourceRead``) or raises a
``SourceError``. That contract is what lets the sync engine trust an absence as a real
deletion; a connector that returned half a list on a dropped connection would make the
engine delete the other half.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Literal, Protocol, TypeVar

from clgwd.errors import ClgwdError, NotSupportedYet


@dataclass(frozen=True, slots=True)
class Device:
    """A phone or soft client bound to the user."""

    kind: str = ""
    """Free-form class: ``ip-phone``, ``sip``, ``softphone`` ..."""
    model: str = ""
    mac: str = ""
    """Upper-case, colon-separated (``00:10:49:AB:CD:EF``), or empty."""
    port_id: str = ""
    sip_user: str = ""

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "model": self.model, "mac": self.mac,
                "port_id": self.port_id, "sip_user": self.sip_user}


@dataclass(frozen=True, slots=True)
class PbxUser:
    """One user as read from a source, already cleaned (see ``clgwd.pbx.normalize``).

    Identity is ``(source id, source_key)``; the email is only how the cloud links a
    user to an existing account. ``raw`` keeps the untouched row for diagnostics and is
    never part of the fingerprint or the upstream payload.
    """

    source_key: str
    extension: str = ""
    first_name: str = ""
    last_name: str = ""
    display_name: str = ""
    email: str = ""
    client_username: str = ""
    dids: tuple[str, ...] = ()
    caller_id: str = ""
    devices: tuple[Device, ...] = ()
    groups: tuple[str, ...] = ()
    department: str = ""
    location: str = ""
    language: str = ""
    enabled: bool = True
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    cached_fingerprint: str = field(default="", init=False, compare=False, repr=False)
    """The sync's fingerprint of this user, kept once computed (``sync.diff.prepare``):
    a source that reuses its previous read's users (``ReadMemo``) then costs no hashing
    for an unchanged user. ``init=False``, so ``dataclasses.replace`` never copies it to
    a user with different fields."""

    def as_json(self) -> dict[str, Any]:
        """The synced fields, in a stable order (the upstream ``user`` payload)."""
        return {
            "source_key": self.source_key, "extension": self.extension,
            "first_name": self.first_name, "last_name": self.last_name,
            "display_name": self.display_name, "email": self.email,
            "client_username": self.client_username, "dids": list(self.dids),
            "caller_id": self.caller_id, "devices": [d.as_json() for d in self.devices],
            "groups": list(self.groups), "department": self.department,
            "location": self.location, "language": self.language, "enabled": self.enabled,
        }


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A source row that could not become a user (reported, never silently dropped)."""

    row: str
    """Where: ``line 12``, ``dn uid=x,ou=people``, ``users.UserDN=1234``."""
    reason: str


@dataclass(frozen=True)
class SourceRead:
    """The complete result of one read.

    ``problems`` lists rows that were skipped; the engine treats such a read as partial
    for deletions (a skipped row may be a user that still exists).
    """

    users: list[PbxUser]
    problems: list[RowProblem] = field(default_factory=list)
    did_count: int | None = None
    """DIDs the PBX has in total (assigned or not), when the source knows it."""


class UserSource(Protocol):
    """What the sync engine needs from a connector. One module per PBX family."""

    kind: str
    """Connector name for logs and reports (``connect_mysql``, ``ldap`` ...)."""

    async def read_users(self) -> SourceRead:
        """Read every user, or raise ``SourceError``; never return a partial list."""
        ...

    def describe(self) -> str:
        """Where users come from, without credentials (``mysql://host:4308/shoreware``)."""
        ...


ReadUnit = Literal["users", "rows", "bytes"]
"""What a ``ReadMeter`` counts: users (one row per user), rows (of several tables that
together make the users), or bytes of a file."""

METER_EVERY: Final = 512
"""File sources update their meter every this many lines (one ``tell()`` each)."""


class ReadMeter:
    """How far the read under way is, for the page's progress bar (``read_progress``).

    Written by the reader (its worker thread, or the event loop for SQL), read by the
    sync status on the event loop. Each update is one attribute store, atomic under
    the GIL; ``done`` may lag the truth by a batch, never run ahead of it. ``total`` is
    None while unknown (a pipe, a directory that does not say how big it is): the bar
    is then indeterminate, and ``done`` still counts what arrived so far."""

    __slots__ = ("done", "total", "unit")

    def __init__(self, unit: ReadUnit) -> None:
        self.unit: ReadUnit = unit
        self.done = 0
        self.total: int | None = None

    def start(self, total: int | None = None, unit: ReadUnit | None = None) -> None:
        self.total = total
        self.done = 0
        if unit is not None:
            self.unit = unit

    def progress(self) -> tuple[int, int | None, str]:
        """``(done, total or None, unit)``."""
        return self.done, self.total, self.unit


_L = TypeVar("_L", str, bytes)


class OpenFile(Protocol):
    """The binary file under a stream of lines (``open(...).buffer`` or ``open(.., "rb")``)."""

    def fileno(self) -> int: ...

    def tell(self) -> int: ...


def metered_lines(lines: Iterable[_L], file: OpenFile, meter: ReadMeter) -> Iterator[_L]:
    """``lines`` of the open ``file``, telling ``meter`` the bytes read so far (the
    file's position, read-ahead included) every ``METER_EVERY`` lines, of its size when
    it is a regular file (a pipe has no size: the total stays unknown)."""
    info = os.fstat(file.fileno())
    if not stat.S_ISREG(info.st_mode) or not info.st_size:
        yield from lines  # a pipe cannot tell its position either
        return
    meter.total = info.st_size
    count = 0
    for line in lines:
        count += 1
        if count == METER_EVERY:
            count = 0
            meter.done = file.tell()
        yield line
    meter.done = meter.total


_T = TypeVar("_T")


class ReadMemo(Generic[_T]):
    """The previous complete read's results by a digest of each raw row, so re-reading
    an unchanged directory reuses its ``PbxUser`` values instead of normalizing 50,000
    rows again (most of a no-change re-sync's CPU).

    Sound because a result is a pure function of the raw row and the source's settings,
    which are fixed for the source object (a config reload builds a new source, with an
    empty memo). Keys are 16-byte BLAKE2b digests, not the rows, so the memo holds no
    copy of the file. Only a read that ran to its end replaces the memo; a read that
    failed part-way leaves the rest of the previous one in place.
    """

    __slots__ = ("_current", "_previous")

    def __init__(self) -> None:
        self._previous: dict[bytes, _T] = {}
        self._current: dict[bytes, _T] = {}

    def start(self) -> None:
        """Begin a read (drops what an unfinished earlier read collected)."""
        self._current = {}

    def take(self, digest: bytes) -> _T | None:
        """The previous read's result for ``digest``, removed from the previous read so
        its key can be freed at once (``keep`` stores it again under the new key). A row
        repeated within one read is simply built again."""
        return self._previous.pop(digest, None)

    def keep(self, digest: bytes, value: _T) -> None:
        self._current[digest] = value

    def finish(self) -> None:
        """The read completed: its results become the ones the next read reuses."""
        self._previous, self._current = self._current, {}


async def run_blocking(executor: Executor | None, func: Callable[[], _T]) -> _T:
    """Run a blocking read off the event loop: on ``executor`` when the owner passed one
    (the sync component's single ``clgwd-sync`` thread, so a read and the diff that
    follows allocate in one malloc arena), else on the loop's default executor."""
    return await asyncio.get_running_loop().run_in_executor(executor, func)


class SourceError(ClgwdError):
    """A read failed; nothing read in this attempt may be used to delete users."""

    code = "pbx_read_failed"
    http_status = 502
    alert_code = "pbx.unreachable"


class SourceUnreachable(SourceError):
    code = "pbx_unreachable"


class SourceAuthError(SourceError):
    """Credentials were refused; retrying will not help until someone fixes them."""

    code = "pbx_auth_failed"
    alert_code = "pbx.auth_failed"


class SourceTimeout(SourceError):
    code = "pbx_timeout"


class SourceDataError(SourceError):
    """The source answered, but not with what a PBX of this type holds (bad schema,
    unreadable file)."""

    code = "pbx_bad_data"
    alert_code = "pbx.bad_data"


class ConnectorNotAvailable(NotSupportedYet):
    """The PBX type is modelled but its read protocol is not public."""

    code = "connector_not_available"
