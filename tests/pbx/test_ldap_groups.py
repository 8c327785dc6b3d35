"""LDAP group entries (groupOfNames, groupOfUniqueNames, posixGroup) against real slapd.

Groups come from the group search as well as from ``memberOf``; members are matched by
DN (spelled in any case and spacing) or, for posixGroup, by uid. A group with no
members, members that are not users of the read, and paging over groups are covered;
a failing group search fails the whole read instead of dropping everyone's groups.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clgwd.config import Secret
from clgwd.config.pbx import LdapSettings
from clgwd.pbx.ldap_source import LdapSource
from clgwd.pbx.ldapmap import dn_key, group_memberships
from clgwd.pbx.model import SourceDataError
from tests.pbx.peers import Slapd, person_ldif

pytestmark = pytest.mark.peers
PEOPLE = "ou=people,dc=pbx,dc=test"
GROUPS = "ou=groups,dc=pbx,dc=test"
USERS = ("gina", "hugo", "ines", "jon")
GROUP_NAMES = ("Sales", "Support", "Night Shift", "Empty", "Staff")


def _group(cn: str, object_class: str, attribute: str, values: list[str]) -> str:
    lines = [f"dn: cn={cn},{GROUPS}", f"objectClass: {object_class}", f"cn: {cn}"]
    if object_class == "posixGroup":
        lines.append(f"gidNumber: {1000 + len(cn)}")
    lines += [f"{attribute}: {v}" for v in values]
    return "\n".join(lines) + "\n\n"


@pytest.fixture
def grouped(slapd: Slapd) -> Iterator[Slapd]:
    slapd.ldapadd("".join(person_ldif(u, str(200 + i), u.title(), "Group", f"{u}@x.test")
                          for i, u in enumerate(USERS)))
    slapd.ldapadd("".join([
        # DNs spelled with other case and spacing than the server returns them.
        _group("Sales", "groupOfNames", "member",
               [f"UID=gina, {PEOPLE.upper()}", f"uid=hugo,{PEOPLE}",
                f"uid=gone,{PEOPLE}", f"cn=Staff,{GROUPS}"]),
        _group("Support", "groupOfUniqueNames", "uniqueMember",
               [f"uid=ines,{PEOPLE}#'0101'B", f"uid=hugo,{PEOPLE}"]),
        _group("Night Shift", "posixGroup", "memberUid", ["JON", "nobody"]),
        _group("Empty", "posixGroup", "memberUid", []),
        _group("Staff", "groupOfNames", "member", [f"uid=gina,{PEOPLE}"]),
    ]))
    yield slapd
    slapd.delete(*(f"cn={g},{GROUPS}" for g in GROUP_NAMES),
                 *(f"uid={u},{PEOPLE}" for u in USERS))


def _source(server: Slapd, **settings: object) -> LdapSource:
    return LdapSource("127.0.0.1", server.port,
                      LdapSettings(preset="openldap", base_dn=PEOPLE, **settings),  # type: ignore[arg-type]
                      bind_dn=Slapd.ADMIN_DN, password=Secret(Slapd.ADMIN_PW), timeout=10)


async def test_group_entries_become_user_groups(grouped: Slapd) -> None:
    read = await _source(grouped, group_base_dn=GROUPS, page_size=2).read_users()
    groups = {u.client_username: u.groups for u in read.users}
    assert groups == {"gina": ("Sales", "Staff"), "hugo": ("Sales", "Support"),
                      "ines": ("Support",), "jon": ("Night Shift",)}
    assert not read.problems


async def test_group_filter_and_no_group_search(grouped: Slapd) -> None:
    """The filter narrows the groups; without group_base_dn nothing changes (memberOf
    only, which this slapd does not maintain)."""
    only_posix = await _source(grouped, group_base_dn=GROUPS,
                               group_filter="(objectClass=posixGroup)").read_users()
    assert {u.client_username: u.groups for u in only_posix.users}["jon"] == ("Night Shift",)
    assert all(u.groups == () for u in only_posix.users if u.client_username != "jon")
    plain = await _source(grouped).read_users()
    assert all(u.groups == () for u in plain.users)


async def test_failed_group_search_fails_the_read(grouped: Slapd) -> None:
    with pytest.raises(SourceDataError, match="search failed"):
        await _source(grouped, group_base_dn="ou=nowhere,dc=pbx,dc=test").read_users()


def test_memberships_match_dn_spellings_and_uids() -> None:
    users = [("uid=Ann,ou=P,dc=x", {"uid": [b"ann"]}), ("uid=bo,ou=p,dc=x", {})]
    groups = [("cn=A,ou=g", {"cn": [b"A"], "member": [b"uid=ann, ou=p, dc=x"]}),
              ("cn=B,ou=g", {"memberuid": [b"ANN", b"bo"]}),
              ("cn=C,ou=g", {"uniquemember": [b"uid=bo,ou=p,dc=x#'01'B"]}),
              ("cn=D,ou=g", {})]
    out = group_memberships(groups, users)
    assert out == {dn_key("uid=ann,ou=p,dc=x"): ["A", "B"],
                   dn_key("uid=bo,ou=p,dc=x"): ["C"]}
