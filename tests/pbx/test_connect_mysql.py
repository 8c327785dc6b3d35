"""MiVoice Connect connector against a real MariaDB holding a schema-faithful shoreware DB."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from clgwd.config import Secret
from clgwd.pbx.connect_mysql import ConnectMysqlSource, build_read, did_from_range
from clgwd.pbx.model import SourceAuthError, SourceDataError, SourceTimeout, SourceUnreachable
from clgwd.pbx.mysql_common import MysqlReader
from tests.pbx.peers import MariaDB, free_port, shoreware_user_sql

pytestmark = pytest.mark.peers
PASSWORD = "passwordconfigread"


@pytest.fixture
def shoreware(mariadb: MariaDB) -> Iterator[MariaDB]:
    """A fresh ``shoreware`` database with three users (one without email)."""
    mariadb.create_database("shoreware", "shoreware.sql", "st_configread", PASSWORD)
    mariadb.sql("\n".join([
        shoreware_user_sql(101, "1001", "Ann", "Archer", "Ann.Archer@Example.com ",
                           login="aarcher", group=1, mac="00-10-49-AA-BB-01", did_digits="1001"),
        shoreware_user_sql(102, "1002", "Björn", "Ångström", "bjorn@example.com",
                           login="bjorn", mac="001049aabb02"),
        shoreware_user_sql(103, "1003", "Cy", "NoMail", None, login="cy"),
    ]), "shoreware")
    yield mariadb


def source(server: MariaDB, password: str = PASSWORD, port: int | None = None,
           timeout: float = 10) -> ConnectMysqlSource:
    reader = MysqlReader("127.0.0.1", port or server.port, user="st_configread",
                         password=Secret(password), database="shoreware", connect_timeout=5)
    return ConnectMysqlSource(reader, timeout)


async def test_reads_users_devices_groups_and_dids(shoreware: MariaDB) -> None:
    """The join over users, tabaddresses, dn, ports, usergroups and DIDs yields users."""
    read = await source(shoreware).read_users()
    by_key = {u.source_key: u for u in read.users}
    assert set(by_key) == {"101", "102", "103"}
    ann = by_key["101"]
    assert (ann.extension, ann.first_name, ann.email, ann.client_username) == (
        "1001", "Ann", "ann.archer@example.com", "aarcher")
    assert ann.groups == ("Executives",)
    assert ann.dids == ("+14085551001",)
    assert ann.devices[0].mac == "00:10:49:AA:BB:01"
    assert ann.devices[0].model == "6940"
    assert by_key["102"].last_name == "Ångström"
    assert by_key["103"].email == ""
    assert read.did_count == 1000


async def test_table_names_are_case_insensitive(shoreware: MariaDB) -> None:
    """Tables created as ``Users``/``TABAddresses`` are read with lower-case names."""
    tables = shoreware.sql("SHOW TABLES", "shoreware").split()
    assert "users" in tables and "tabaddresses" in tables
    assert len((await source(shoreware).read_users()).users) == 3


async def test_renumbered_user_keeps_its_key(shoreware: MariaDB) -> None:
    """AddressID is the key, so a new extension is a changed field, not a new user."""
    shoreware.sql("UPDATE Users SET UserDN='2001' WHERE UserDN='1002';"
                  "UPDATE DN SET DN='2001' WHERE DN='1002';"
                  "UPDATE Ports SET CurrentDN='2001' WHERE CurrentDN='1002';", "shoreware")
    read = await source(shoreware).read_users()
    bjorn = next(u for u in read.users if u.source_key == "102")
    assert bjorn.extension == "2001"
    assert bjorn.devices and bjorn.devices[0].mac == "00:10:49:AA:BB:02"


async def test_wrong_password_is_an_auth_error(shoreware: MariaDB) -> None:
    """Access denied (1045) maps to SourceAuthError, never leaking the password."""
    with pytest.raises(SourceAuthError) as info:
        await source(shoreware, password="wrong-password").read_users()
    assert "wrong-password" not in str(info.value)


async def test_nothing_listening_is_unreachable(shoreware: MariaDB) -> None:
    """A closed port is SourceUnreachable."""
    with pytest.raises(SourceUnreachable):
        await source(shoreware, port=free_port()).read_users()


async def test_missing_table_is_a_data_error(shoreware: MariaDB) -> None:
    """A database that is not a ShoreWare schema is SourceDataError."""
    shoreware.sql("DROP TABLE DIDDigitMap", "shoreware")
    with pytest.raises(SourceDataError):
        await source(shoreware).read_users()


async def test_source_down_mid_read_is_an_error(shoreware: MariaDB) -> None:
    """A connection killed during the read raises instead of returning part of the users."""
    src = source(shoreware)

    async def killer() -> None:
        for _ in range(200):
            out = await asyncio.to_thread(
                shoreware.sql,
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER='st_configread'")
            ids = out.split()
            if ids:
                await asyncio.to_thread(shoreware.sql, f"KILL {ids[0]}")
                return
            await asyncio.sleep(0.01)

    original = src.reader.select_all

    async def slow_select(queries):  # type: ignore[no-untyped-def]
        return await original(["SELECT SLEEP(3)", *queries])

    src.reader.select_all = slow_select  # type: ignore[method-assign]
    with pytest.raises((SourceUnreachable, SourceTimeout)):
        await asyncio.gather(src.read_users(), killer())


async def test_read_timeout_is_an_error(shoreware: MariaDB) -> None:
    """A read that takes longer than read_timeout raises SourceTimeout."""
    src = source(shoreware, timeout=0.3)
    original = src.reader.select_all

    async def slow_select(queries):  # type: ignore[no-untyped-def]
        return await original(["SELECT SLEEP(2)", *queries])

    src.reader.select_all = slow_select  # type: ignore[method-assign]
    with pytest.raises(SourceTimeout):
        await src.read_users()


def test_did_derivation_replaces_the_tail_of_the_base() -> None:
    """DID = BasePhoneNumber with its last len(Digits) digits replaced (pbx.md §4.3)."""
    assert did_from_range("+14085550000", "1234") == "+14085551234"
    assert did_from_range("+14085550000", "") == ""
    assert did_from_range("+1408", "1234567") == ""


def test_duplicate_address_ids_are_reported() -> None:
    """Two users rows with one AddressID: the second is a row problem, not an overwrite."""
    rows = [{"UserDN": "1", "AddressID": 5}, {"UserDN": "2", "AddressID": 5}]
    read = build_read(rows, [], [], [], 0)
    assert [u.extension for u in read.users] == ["1"]
    assert "duplicate AddressID" in read.problems[0].reason
