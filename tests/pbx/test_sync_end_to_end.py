"""End to end against real peers: slapd and MariaDB through the engine."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clgwd.config import Secret, parse_config
from clgwd.config.pbx import LdapSettings, SyncConfig
from clgwd.pbx.connect_mysql import ConnectMysqlSource
from clgwd.pbx.ldap_source import LdapSource
from clgwd.pbx.mysql_common import MysqlReader
from clgwd.store import Store
from clgwd.sync.engine import SyncEngine
from tests.pbx.peers import MariaDB, Slapd, person_ldif, shoreware_user_sql

pytestmark = pytest.mark.peers
PEOPLE = "ou=people,dc=pbx,dc=test"


@pytest.fixture
async def store(state_dir: Path) -> AsyncIterator[Store]:
    async with Store(parse_config(f"state: {{dir: {state_dir}}}\n")) as opened:
        yield opened


async def changes(store: Store) -> list[dict[str, object]]:
    rows = await store.db.fetchall(
        "SELECT payload FROM outbox WHERE kind = 'user.change' ORDER BY seq")
    return [json.loads(r[0]) for r in rows]


async def test_recreated_ldap_entry_is_a_move_not_delete_and_create(
        slapd: Slapd, store: Store) -> None:
    """slapd gives the re-added entry a new entryUUID; the sync sends one update."""
    uids = ("mover", "stayer")
    slapd.ldapadd(person_ldif("mover", "300", "Mo", "Ver", "mo.ver@example.test")
                  + person_ldif("stayer", "301", "St", "Ay", "st.ay@example.test"))
    try:
        source = LdapSource("127.0.0.1", slapd.port, LdapSettings(base_dn=PEOPLE),
                            bind_dn=Slapd.ADMIN_DN, password=Secret(Slapd.ADMIN_PW),
                            timeout=10)
        engine = SyncEngine(store, source, "ldap", SyncConfig(), read_timeout=10)
        assert (await engine.run(actor="System", trigger="schedule")).counts["created"] == 2
        slapd.delete(f"uid=mover,{PEOPLE}")
        slapd.ldapadd(person_ldif("mover", "300", "Mo", "Ver", "Mo.Ver@Example.test"))
        out = await engine.run(actor="System", trigger="schedule")
        assert (out.counts["moved"], out.counts["created"], out.counts["deleted"]) == (1, 0, 0)
        last = (await changes(store))[-1]
        assert last["op"] == "update" and last["changed"] == ["source_key"]
    finally:
        slapd.delete(*(f"uid={u},{PEOPLE}" for u in uids))


async def test_connect_renumber_is_an_update_of_the_extension(
        mariadb: MariaDB, store: Store) -> None:
    """A Connect user moved to a new extension keeps its AddressID: one update."""
    mariadb.create_database("shoreware", "shoreware.sql", "st_configread", "pw-read")
    mariadb.sql(shoreware_user_sql(1, "1001", "Ann", "Lee", "ann@example.test", login="ann")
                + shoreware_user_sql(2, "1002", "Bo", "Li", "bo@example.test", login="bo"),
                "shoreware")
    reader = MysqlReader("127.0.0.1", mariadb.port, user="st_configread",
                         password=Secret("pw-read"), database="shoreware", connect_timeout=5)
    engine = SyncEngine(store, ConnectMysqlSource(reader, 10), "connect", SyncConfig(),
                        read_timeout=10)
    await engine.run(actor="System", trigger="schedule")
    mariadb.sql("UPDATE Users SET UserDN='2001' WHERE UserDN='1001';"
                "UPDATE DN SET DN='2001' WHERE DN='1001';", "shoreware")
    out = await engine.run(actor="System", trigger="schedule")
    assert (out.counts["updated"], out.counts["created"], out.counts["deleted"]) == (1, 0, 0)
    last = (await changes(store))[-1]
    assert last["source_key"] == "1" and "extension" in last["changed"]
