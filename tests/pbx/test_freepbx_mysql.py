"""FreePBX connector against a real MariaDB holding the userman/core schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clgwd.config import Secret
from clgwd.pbx.freepbx_mysql import FreePbxMysqlSource, build_read
from clgwd.pbx.mysql_common import MysqlReader
from tests.pbx.peers import MariaDB

pytestmark = pytest.mark.peers

DATA = """
INSERT INTO userman_users (id, auth, authid, username, default_extension, fname, lname,
  displayname, email, department) VALUES
 (1, 'freepbx', NULL, 'alice', '200', 'Alice', 'Adams', 'Alice Adams', ' ALICE@example.org', 'Ops'),
 (2, '2', 'b7a1c3d2-0000-4000-8000-000000000002', 'bob', '201', 'Bob', 'Brown', '',
  'bob@example.org', ''),
 (3, 'freepbx', NULL, 'carol', 'none', 'Carol', 'Cole', 'Carol Cole', 'carol@example.org', '');
INSERT INTO users (extension, name, outboundcid) VALUES
 ('200', 'Alice Adams', '"Alice" <+15105550200>'), ('201', 'Bob Brown', ''),
 ('202', 'Lobby Phone', '');
INSERT INTO devices (id, tech, dial, devicetype, user, description) VALUES
 ('200', 'pjsip', 'PJSIP/200', 'fixed', '200', 'Yealink T46U'),
 ('202', 'pjsip', 'PJSIP/202', 'fixed', '202', 'Lobby');
INSERT INTO incoming (cidnum, extension, destination, description) VALUES
 ('', '+15105550200', 'from-did-direct,200,1', 'Alice DID'),
 ('', '5105550999', 'app-announcement-1,s,1', 'not a user');
INSERT INTO userman_groups (id, groupname, users) VALUES
 (1, 'Support', '[1,2]'), (2, 'Nobody', ''), (3, 'NullGroup', NULL), (4, 'EmptyList', '[]');
"""


@pytest.fixture
def asterisk(mariadb: MariaDB) -> Iterator[MariaDB]:
    mariadb.create_database("asterisk", "freepbx.sql", "clgwd_ro", "ro-password")
    mariadb.sql(DATA, "asterisk")
    yield mariadb


def source(server: MariaDB) -> FreePbxMysqlSource:
    reader = MysqlReader("127.0.0.1", server.port, user="clgwd_ro",
                         password=Secret("ro-password"), database="asterisk",
                         connect_timeout=5)
    return FreePbxMysqlSource(reader, 10, country_code="1")


async def test_reads_userman_and_core_users(asterisk: MariaDB) -> None:
    """userman users, plus core extensions no userman user points to, with DIDs/devices."""
    read = await source(asterisk).read_users()
    by_key = {u.source_key: u for u in read.users}
    assert set(by_key) == {"1", "2:b7a1c3d2-0000-4000-8000-000000000002", "3", "ext:202"}
    alice = by_key["1"]
    assert (alice.email, alice.extension, alice.caller_id) == (
        "alice@example.org", "200", "+15105550200")
    assert alice.dids == ("+15105550200",)
    assert alice.devices[0].sip_user == "200"
    assert alice.groups == ("Support",)
    assert by_key["2:b7a1c3d2-0000-4000-8000-000000000002"].display_name == "Bob Brown"
    assert by_key["3"].enabled is False
    assert by_key["ext:202"].display_name == "Lobby Phone"
    assert read.did_count == 1


async def test_groups_with_no_members_are_not_an_error(asterisk: MariaDB) -> None:
    """Empty, NULL and [] member blobs (FreePBX #754) mean no members, no problem rows."""
    read = await source(asterisk).read_users()
    assert read.problems == []
    assert all("Nobody" not in u.groups for u in read.users)


def test_unreadable_group_blob_is_a_row_problem() -> None:
    """A members blob that is not a JSON list is reported, not guessed at."""
    read = build_read([[], [], [{"id": 9, "groupname": "x", "users": b"{oops"}], [], []])
    assert read.problems and "userman_groups.id=9" in read.problems[0].row
