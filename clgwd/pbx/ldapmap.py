"""Attribute maps from LDAP entries to ``PbxUser``, shared by the LDAP and LDIF sources.

Presets come from pbx.md: OpenLDAP (entryUUID, uid, mail, telephoneNumber), Active
Directory (objectGUID, sAMAccountName, ipPhone), and the MiVoice Business IDS default
mapping ("User Service Data to LDAP"). ``custom`` starts empty for directories whose
schema is site-specific (MiVoice 5000). Entries are handled as
``{lower-case attribute: [raw bytes values]}`` so ldap3 results and LDIF records go
through the same code.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from clgwd.config.pbx import LdapSettings
from clgwd.pbx import normalize as n
from clgwd.pbx.model import Device, PbxUser, RowProblem

Entry = Mapping[str, Sequence[bytes]]

PRESETS: Final[dict[str, dict[str, str]]] = {
    "openldap": {
        "source_key": "entryUUID", "extension": "telephoneNumber", "first_name": "givenName",
        "last_name": "sn", "display_name": "displayName", "email": "mail",
        "client_username": "uid", "groups": "memberOf", "department": "departmentNumber",
        "location": "l", "language": "preferredLanguage", "modified": "modifyTimestamp",
    },
    "active_directory": {
        "source_key": "objectGUID", "extension": "ipPhone", "first_name": "givenName",
        "last_name": "sn", "display_name": "displayName", "email": "mail",
        "client_username": "sAMAccountName", "dids": "telephoneNumber",
        "groups": "memberOf", "department": "department",
        "location": "physicalDeliveryOfficeName", "language": "preferredLanguage",
        "disabled": "userAccountControl", "modified": "whenChanged",
    },
    "mivb_ids": {
        "source_key": "objectGUID", "extension": "telephoneNumber", "first_name": "givenName",
        "last_name": "sn", "email": "mail", "department": "department",
        "location": "physicalDeliveryOfficeName", "language": "preferredLanguage",
        "groups": "employeeType", "client_username": "sAMAccountName",
    },
    "custom": {},
}

FILTERS: Final = {
    "openldap": "(objectClass=inetOrgPerson)",
    "active_directory": "(&(objectCategory=person)(objectClass=user)(sAMAccountName=*))",
    "mivb_ids": "(|(objectClass=user)(objectClass=inetOrgPerson))",
    "custom": "(objectClass=*)",
}

_STANDARD_GROUPS: Final = ("(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)"
                           "(objectClass=posixGroup))")
GROUP_FILTERS: Final = {
    "openldap": _STANDARD_GROUPS,
    "active_directory": "(objectClass=group)",
    "mivb_ids": "(|(objectClass=group)(objectClass=groupOfNames))",
    "custom": f"(|{_STANDARD_GROUPS[2:-1]}(objectClass=group))",
}
"""Group entries searched when ``ldap.group_base_dn`` is set (RFC 4519 / RFC 2307 / AD)."""
GROUP_ATTRIBUTES: Final = ("cn", "member", "uniqueMember", "memberUid")
MEMBER_UID_ATTRIBUTE: Final = "uid"
"""posixGroup ``memberUid`` values name users by this attribute (RFC 2307)."""

_NO_RAW: Final[Mapping[str, Any]] = MappingProxyType({})
_BINARY_KEYS: Final = frozenset({"objectguid"})
_AD_DISABLED_BIT: Final = 0x2
_TRUE: Final = frozenset({"true", "1", "yes", "disabled"})


@dataclass(frozen=True)
class AttributeMap:
    """Normalized field -> LDAP attribute (lower-cased for lookups)."""

    fields: dict[str, str]

    @classmethod
    def from_settings(cls, settings: LdapSettings) -> AttributeMap:
        merged = {**PRESETS[settings.preset], **settings.attributes}
        return cls({k: v.lower() for k, v in merged.items() if v})

    def attribute_names(self) -> list[str]:
        """Attributes to request (original case is irrelevant to servers)."""
        return sorted(set(self.fields.values()))

    def get(self, entry: Entry, name: str) -> Sequence[bytes]:
        """The entry's values of field ``name`` (not a copy: read, do not change)."""
        attr = self.fields.get(name)
        return entry.get(attr, ()) if attr else ()

    def first(self, entry: Entry, name: str) -> str:
        attr = self.fields.get(name)
        values = entry.get(attr) if attr else None
        return n.text(values[0]) if values else ""


def format_key(attribute: str, value: bytes) -> str:
    """objectGUID is 16 raw bytes in AD's mixed-endian order; render the usual form."""
    if attribute in _BINARY_KEYS and len(value) == 16:
        return str(uuid.UUID(bytes_le=value))
    return n.text(value)


def _group_name(value: bytes) -> str:
    """``cn=Sales,ou=groups,dc=x`` -> ``Sales``; a plain value is kept as is."""
    textual = n.text(value)
    first = textual.split(",", 1)[0]
    return first.split("=", 1)[1].strip() if "=" in first else textual


def _disabled(amap: AttributeMap, entry: Entry) -> bool:
    value = amap.first(entry, "disabled")
    if not value:
        return False
    if amap.fields.get("disabled") == "useraccountcontrol":
        return value.isdigit() and bool(int(value) & _AD_DISABLED_BIT)
    return value.lower() in _TRUE


def entry_to_user(dn: str, entry: Entry, amap: AttributeMap, country_code: str = "", *,
                  pool: dict[str, str] | None = None, keep_dn: bool = True,
                  extra_groups: Sequence[str] = ()) -> PbxUser | RowProblem:
    """Map one entry; an entry without its key attribute is a ``RowProblem``.

    ``pool`` shares the string objects of values that repeat across a directory
    (department, site, language, first names): one object each instead of thousands.
    ``extra_groups`` are names of group entries listing this user as a member.
    """
    share = (pool if pool is not None else {}).setdefault
    keys = amap.get(entry, "source_key")
    key = format_key(amap.fields.get("source_key", ""), keys[0]) if keys else ""
    if not key:
        return RowProblem(f"dn {dn}", f"no {amap.fields.get('source_key', 'key')} value")
    mac = n.mac(amap.first(entry, "mac"))
    return PbxUser(
        source_key=key,
        extension=n.dial_string(amap.first(entry, "extension")),
        first_name=share(first := amap.first(entry, "first_name"), first),
        last_name=amap.first(entry, "last_name"),
        display_name=amap.first(entry, "display_name"),
        email=n.email(amap.first(entry, "email")),
        client_username=amap.first(entry, "client_username"),
        dids=n.unique([n.e164(v, country_code) for v in amap.get(entry, "dids")]),
        caller_id=n.e164(amap.first(entry, "caller_id"), country_code),
        devices=(Device(kind="ip-phone", mac=mac),) if mac else (),
        groups=tuple(sorted(n.unique([share(g, g) for g in (
            *map(_group_name, amap.get(entry, "groups")), *extra_groups)]))),
        department=share(dept := amap.first(entry, "department"), dept),
        location=share(loc := amap.first(entry, "location"), loc),
        language=share(lang := amap.first(entry, "language"), lang),
        enabled=not _disabled(amap, entry),
        raw={"dn": dn} if keep_dn else _NO_RAW,
    )


def entries_to_read(entries: Iterable[tuple[str, Entry]], amap: AttributeMap,
                    country_code: str = "", *, keep_dn: bool = True,
                    groups: Mapping[str, Sequence[str]] | None = None,
                    ) -> tuple[list[PbxUser], list[RowProblem]]:
    """Map many entries; duplicate keys are problems, never a silent overwrite.
    ``groups``: group names by member DN (``dn_key``), from ``group_memberships``."""
    pool: dict[str, str] = {}
    member_of = groups or {}
    return collect_users((dn, entry_to_user(
        dn, entry, amap, country_code, pool=pool, keep_dn=keep_dn,
        extra_groups=member_of.get(dn_key(dn), ()) if member_of else ()))
        for dn, entry in entries)


def dn_key(dn: str) -> str:
    """A DN in a form that compares equal across the usual spellings: lower-case, no
    spaces around ``,`` and ``=`` (``uid=Ann, ou=People`` = ``uid=ann,ou=people``).
    Escaped commas and multi-valued RDNs are compared as written."""
    return ",".join("=".join(p.strip() for p in rdn.split("=", 1))
                    for rdn in dn.lower().split(","))


def group_memberships(groups: Iterable[tuple[str, Entry]],
                      users: Iterable[tuple[str, Entry]]) -> dict[str, list[str]]:
    """Group names by member DN key. ``member`` / ``uniqueMember`` hold DNs (a
    ``uniqueMember`` may end in ``#'...'B``); posixGroup ``memberUid`` holds the user's
    ``uid``. Members that are not users of this read (nested groups, people outside
    the search) are ignored; a group without members is simply nobody's group."""
    by_uid: dict[str, str] = {}
    for dn, entry in users:
        for uid in entry.get(MEMBER_UID_ATTRIBUTE, ()):
            by_uid.setdefault(n.text(uid).lower(), dn_key(dn))
    out: dict[str, list[str]] = {}
    for dn, group in groups:
        names = group.get("cn", ())
        name = n.text(names[0]) if names else _group_name(dn.encode())
        members = {dn_key(_without_uid(v)) for attr in ("member", "uniquemember")
                   for v in group.get(attr, ())}
        members.update(key for v in group.get("memberuid", ())
                       if (key := by_uid.get(n.text(v).lower())))
        for member in members:
            out.setdefault(member, []).append(name)
    return out


def _without_uid(value: bytes) -> str:
    """A ``uniqueMember`` value without its optional ``#'0101'B`` unique identifier."""
    text = value.decode("utf-8", errors="replace")
    head, sep, tail = text.rpartition("#")
    return head if sep and tail.startswith("'") and tail.endswith("'B") else text


def collect_users(results: Iterable[tuple[str, PbxUser | RowProblem]],
                  ) -> tuple[list[PbxUser], list[RowProblem]]:
    """Users and problems of mapped entries (``(dn, user or problem)``); a second user
    with a key already seen is a problem, never a silent overwrite."""
    users: list[PbxUser] = []
    problems: list[RowProblem] = []
    seen: set[str] = set()
    for dn, result in results:
        if isinstance(result, RowProblem):
            problems.append(result)
        elif result.source_key in seen:
            problems.append(RowProblem(f"dn {dn}", f"duplicate key {result.source_key!r}"))
        else:
            seen.add(result.source_key)
            users.append(result)
    return users, problems
