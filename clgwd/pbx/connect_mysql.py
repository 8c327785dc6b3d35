"""MiVoice Connect / ShoreTel source: read-only SQL on the ShoreWare config database.

Tables and columns are those of pbx.md §4.3 (from a public ``shoreware`` dump). The
server runs on Windows, where table names are case-insensitive; lower-case names are
used here, which also works on a Linux MySQL with ``lower_case_table_names=1``.

Identity is ``users.AddressID`` (the tabaddresses key, which survives renumbering),
falling back to ``dn:<UserDN>`` when a row has none. DIDs are derived from
``diddigitmap`` + ``didranges``: the range's ``BasePhoneNumber`` with its last
``len(Digits)`` digits replaced by ``Digits`` (an inference that matches the sample
data; see pbx.md).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Final

from clgwd.pbx import normalize as n
from clgwd.pbx.model import Device, PbxUser, RowProblem, SourceRead
from clgwd.pbx.mysql_common import Counted, MysqlReader, Row, run_queries

USERS_SQL: Final = (
    "SELECT u.UserDN, u.AddressID, u.GuiLoginName, u.UserGroupID, u.CIDNumber,"
    " u.LicenseTypeID, a.FirstName, a.LastName, a.EmailAddress, a.DepartmentName,"
    " a.City, d.Description AS DnDescription"
    " FROM users u"
    " LEFT JOIN tabaddresses a ON a.AddressID = u.AddressID"
    " LEFT JOIN dn d ON d.DN = u.UserDN"
)
GROUPS_SQL: Final = "SELECT UserGroupID, UserGroupName FROM usergroups"
DEVICES_SQL: Final = (
    "SELECT p.PortID, p.CurrentDN, p.MACAddress, p.SIPUserName, p.IsIPPhone,"
    " t.Description AS Model"
    " FROM ports p LEFT JOIN phonetypes t ON t.PhoneTypeID = p.PhoneTypeID"
    " WHERE p.CurrentDN IS NOT NULL"
)
DIDS_SQL: Final = (
    "SELECT m.DN, m.Digits, r.BasePhoneNumber FROM diddigitmap m"
    " JOIN didranges r ON r.DIDRangeID = m.DIDRangeID"
)
DID_TOTAL_SQL: Final = "SELECT COALESCE(SUM(NumPhoneNumbers), 0) AS total FROM didranges"
USERS_COUNT_SQL: Final = "SELECT COUNT(*) AS total FROM users"
"""How many rows ``USERS_SQL`` returns (its joins are on the other tables' keys)."""


def did_from_range(base: str, digits: str) -> str:
    """``+14085551000`` + ``1234`` -> ``+14085551234``."""
    base_digits = n.dial_string(base)
    tail = n.dial_string(digits)
    if not base_digits or not tail or len(tail) > len(base_digits.lstrip("+")):
        return ""
    return n.e164(base_digits[: len(base_digits) - len(tail)] + tail)


class ConnectMysqlSource:
    """Users, devices, groups and DIDs from a MiVoice Connect (ShoreWare) database."""

    kind = "connect_mysql"

    def __init__(self, reader: MysqlReader, timeout: float) -> None:
        self.reader = reader
        self.timeout = timeout

    def describe(self) -> str:
        return self.reader.describe()

    def read_progress(self) -> tuple[int, int | None, str]:
        """Users read of the ``users`` table's row count."""
        return self.reader.meter.progress()

    async def read_users(self) -> SourceRead:
        users, groups, devices, dids, total = await run_queries(
            self.reader, [Counted(USERS_SQL, USERS_COUNT_SQL), GROUPS_SQL, DEVICES_SQL,
                          DIDS_SQL, DID_TOTAL_SQL], self.timeout)
        return build_read(users, groups, devices, dids, int(total[0]["total"] or 0))


def _devices_by_dn(rows: list[Row]) -> dict[str, list[Device]]:
    out: dict[str, list[Device]] = defaultdict(list)
    for row in rows:
        kind = "ip-phone" if row.get("IsIPPhone") else "port"
        out[n.text(row["CurrentDN"])].append(Device(
            kind=kind, model=n.text(row.get("Model")), mac=n.mac(row.get("MACAddress")),
            port_id=n.text(row.get("PortID")), sip_user=n.text(row.get("SIPUserName"))))
    return out


def _dids_by_dn(rows: list[Row]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        did = did_from_range(n.text(row.get("BasePhoneNumber")), n.text(row.get("Digits")))
        if did:
            out[n.text(row["DN"])].append(did)
    return out


def build_read(users: list[Row], groups: list[Row], devices: list[Row], dids: list[Row],
               did_total: int) -> SourceRead:
    """Join the query results into users (pure, so it is tested without a server)."""
    group_names = {row["UserGroupID"]: n.text(row["UserGroupName"]) for row in groups}
    by_dn = _devices_by_dn(devices)
    did_map = _dids_by_dn(dids)
    out: list[PbxUser] = []
    problems: list[RowProblem] = []
    seen: set[str] = set()
    for row in users:
        dn = n.text(row.get("UserDN"))
        address = row.get("AddressID")
        key = str(address) if address not in (None, 0, "") else (f"dn:{dn}" if dn else "")
        if not key:
            problems.append(RowProblem("users row", "no AddressID and no UserDN"))
            continue
        if key in seen:
            problems.append(RowProblem(f"users.UserDN={dn}", f"duplicate AddressID {key}"))
            continue
        seen.add(key)
        group = group_names.get(row.get("UserGroupID"), "")
        out.append(PbxUser(
            source_key=key, extension=n.dial_string(dn),
            first_name=n.text(row.get("FirstName")), last_name=n.text(row.get("LastName")),
            display_name=n.text(row.get("DnDescription")),
            email=n.email(row.get("EmailAddress")),
            client_username=n.text(row.get("GuiLoginName")),
            dids=n.unique(did_map.get(dn, [])), caller_id=n.e164(row.get("CIDNumber")),
            devices=tuple(by_dn.get(dn, ())), groups=(group,) if group else (),
            department=n.text(row.get("DepartmentName")), location=n.text(row.get("City")),
            raw={k: v for k, v in row.items() if isinstance(v, str | int | None)},
        ))
    return SourceRead(out, problems, did_count=did_total)
