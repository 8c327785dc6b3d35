"""FreePBX / Asterisk source: the ``asterisk`` MariaDB schema (pbx.md §5.1).

Users are ``userman_users`` (key: ``id`` for local users, ``<auth>:<authid>`` for users
that came from a directory, so an LDAP-backed user keeps its identity if FreePBX
re-creates the row). Core ``users`` rows (extensions) that no userman user points to
are users too, keyed ``ext:<extension>``. Groups come from ``userman_groups.users``, a
JSON list of user ids that is empty or NULL for a group with no members: that must mean
"no members", not a crash (FreePBX issue #754).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Final

from clgwd.pbx import normalize as n
from clgwd.pbx.model import Device, PbxUser, RowProblem, SourceRead
from clgwd.pbx.mysql_common import Counted, MysqlReader, Row, run_queries

USERMAN_SQL: Final = (
    "SELECT id, auth, authid, username, default_extension, fname, lname, displayname,"
    " email, department, language FROM userman_users"
)
CORE_USERS_SQL: Final = "SELECT extension, name, outboundcid FROM users"
GROUPS_SQL: Final = "SELECT id, groupname, users FROM userman_groups"
DEVICES_SQL: Final = "SELECT id, tech, user, description FROM devices"
INCOMING_SQL: Final = (
    "SELECT extension, destination FROM incoming WHERE destination LIKE 'from-did-direct,%'"
)
_NO_EXTENSION: Final = frozenset({"", "none"})


class FreePbxMysqlSource:
    """Users, devices, groups and DIDs from a FreePBX database."""

    kind = "freepbx_mysql"

    def __init__(self, reader: MysqlReader, timeout: float, country_code: str = "") -> None:
        self.reader = reader
        self.timeout = timeout
        self.country_code = country_code

    def describe(self) -> str:
        return self.reader.describe()

    def read_progress(self) -> tuple[int, int | None, str]:
        """Rows of ``userman_users`` and ``users`` read, of their count (a user may have
        a row in both, so these are rows, not users)."""
        return self.reader.meter.progress()

    async def read_users(self) -> SourceRead:
        results = await run_queries(
            self.reader, [Counted(USERMAN_SQL, "SELECT COUNT(*) FROM userman_users", "rows"),
                          Counted(CORE_USERS_SQL, "SELECT COUNT(*) FROM users", "rows"),
                          GROUPS_SQL, DEVICES_SQL, INCOMING_SQL], self.timeout)
        return build_read(results, self.country_code)


def _group_members(groups: list[Row], problems: list[RowProblem]) -> dict[str, list[str]]:
    members: dict[str, list[str]] = defaultdict(list)
    for row in groups:
        blob = row.get("users")
        text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else (blob or "")
        if not text.strip():
            continue  # a group with no members
        try:
            ids = json.loads(text)
        except ValueError as err:
            ids = f"not JSON ({err})"
        if not isinstance(ids, list):
            problems.append(RowProblem(f"userman_groups.id={row.get('id')}",
                                       f"members list unreadable: {str(ids)[:80]}"))
            continue
        for uid in ids:
            members[str(uid)].append(n.text(row.get("groupname")))
    return members


def _dids(incoming: list[Row], country_code: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for row in incoming:
        parts = n.text(row.get("destination")).split(",")
        if len(parts) >= 2 and row.get("extension"):
            out[parts[1].strip()].append(n.e164(row["extension"], country_code))
    return out


def build_read(results: list[list[Row]], country_code: str = "") -> SourceRead:
    """Join the results of the five queries, in ``read_users`` order, into users (pure,
    so it is tested without a server)."""
    userman, core, groups, devices, incoming = results
    problems: list[RowProblem] = []
    members = _group_members(groups, problems)
    core_by_ext = {n.text(r["extension"]): r for r in core}
    devs: dict[str, list[Device]] = defaultdict(list)
    for row in devices:
        devs[n.text(row.get("user"))].append(Device(
            kind=n.text(row.get("tech")), model=n.text(row.get("description")),
            sip_user=n.text(row.get("id"))))
    dids = _dids(incoming, country_code)
    users: list[PbxUser] = []
    linked: set[str] = set()
    for row in userman:
        ext = n.text(row.get("default_extension"))
        ext = "" if ext.lower() in _NO_EXTENSION else ext
        linked.add(ext)
        auth, authid = n.text(row.get("auth")), n.text(row.get("authid"))
        key = f"{auth}:{authid}" if authid and auth not in ("", "freepbx") else str(row["id"])
        core_row = core_by_ext.get(ext, {})
        users.append(PbxUser(
            source_key=key, extension=ext, first_name=n.text(row.get("fname")),
            last_name=n.text(row.get("lname")),
            display_name=n.text(row.get("displayname")) or n.text(core_row.get("name")),
            email=n.email(row.get("email")), client_username=n.text(row.get("username")),
            dids=n.unique(dids.get(ext, [])),
            caller_id=n.e164(_cid_number(core_row.get("outboundcid")), country_code),
            devices=tuple(devs.get(ext, ())) if ext else (),
            groups=tuple(sorted(n.unique(members.get(str(row["id"]), [])))),
            department=n.text(row.get("department")), language=n.text(row.get("language")),
            enabled=bool(ext), raw={"userman_id": row["id"]},
        ))
    for ext, row in core_by_ext.items():
        if ext and ext not in linked:
            users.append(PbxUser(
                source_key=f"ext:{ext}", extension=ext, display_name=n.text(row.get("name")),
                caller_id=n.e164(_cid_number(row.get("outboundcid")), country_code),
                dids=n.unique(dids.get(ext, [])), devices=tuple(devs.get(ext, ())),
                raw={"extension": ext}))
    return SourceRead(users, problems, did_count=len(incoming))


def _cid_number(value: object) -> str:
    """``"Alice" <+15551234>`` -> ``+15551234``."""
    textual = n.text(value)
    if "<" in textual and ">" in textual:
        return textual[textual.index("<") + 1:textual.index(">")]
    return textual
