"""LDAP connector against a real slapd: presets, paging, LDAPS/StartTLS, failures."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from clgwd.config import Secret
from clgwd.config.pbx import LdapSettings
from clgwd.pbx.ldap_source import LdapSource
from clgwd.pbx.model import SourceAuthError, SourceTimeout, SourceUnreachable
from tests.pbx.peers import Slapd, person_ldif

pytestmark = pytest.mark.peers
PEOPLE = "ou=people,dc=pbx,dc=test"


@pytest.fixture
def directory(slapd: Slapd) -> Iterator[Slapd]:
    """Five people (one without mail) under ou=people; removed again afterwards."""
    slapd.ldapadd("".join([
        person_ldif("alice", "100", "Alice", "Example", "Alice@Example.test"),
        person_ldif("bob", "101", "Bob", "Example", "bob@example.test"),
        person_ldif("chen", "102", "陈", "伟", "chen@example.test"),
        person_ldif("dora", "103", "Dora", "X" * 300, "dora@example.test"),
        person_ldif("eve", "104", "Eve", "NoMail", None),
    ]))
    yield slapd
    slapd.delete(*(f"uid={u},{PEOPLE}" for u in ("alice", "bob", "chen", "dora", "eve")))


def source(server: Slapd, *, security: str = "none", password: str = Slapd.ADMIN_PW,
           ca: Path | None = None, port: int | None = None, page_size: int = 500,
           timeout: float = 10) -> LdapSource:
    settings = LdapSettings(preset="openldap", base_dn=PEOPLE, security=security,  # type: ignore[arg-type]
                            ca_file=ca, page_size=page_size)
    if port is None:
        port = server.ldaps_port if security == "ldaps" else server.port
    return LdapSource("127.0.0.1", port, settings, bind_dn=Slapd.ADMIN_DN,
                      password=Secret(password), timeout=timeout)


async def test_reads_people_with_the_openldap_preset(directory: Slapd) -> None:
    """entryUUID is the key; uid, mail, telephoneNumber map to the normalized fields."""
    read = await source(directory).read_users()
    by_user = {u.client_username: u for u in read.users}
    assert set(by_user) == {"alice", "bob", "chen", "dora", "eve"}
    alice = by_user["alice"]
    assert alice.extension == "100" and alice.email == "alice@example.test"
    assert len(alice.source_key) == 36  # an entryUUID
    assert by_user["chen"].first_name == "陈"
    assert len(by_user["dora"].last_name) == 256  # cut to MAX_TEXT, not rejected
    assert by_user["eve"].email == ""


async def test_paged_search_returns_every_entry(directory: Slapd) -> None:
    """With a page size of 2, all five entries still arrive (3 pages)."""
    read = await source(directory, page_size=2).read_users()
    assert len(read.users) == 5


async def test_starttls_with_the_server_ca(directory: Slapd) -> None:
    """StartTLS on the plain port, verifying the server certificate against its CA."""
    read = await source(directory, security="starttls", ca=directory.cert).read_users()
    assert len(read.users) == 5


async def test_ldaps_with_the_server_ca(directory: Slapd) -> None:
    """LDAPS (TLS from the first byte) on its own port."""
    read = await source(directory, security="ldaps", ca=directory.cert).read_users()
    assert len(read.users) == 5


async def test_ldaps_with_an_untrusted_certificate_fails(directory: Slapd) -> None:
    """A self-signed server certificate not in the CA file is refused."""
    with pytest.raises(SourceUnreachable):
        await source(directory, security="ldaps").read_users()


async def test_wrong_password_is_an_auth_error(directory: Slapd) -> None:
    """invalidCredentials (49) maps to SourceAuthError."""
    with pytest.raises(SourceAuthError):
        await source(directory, password="not-the-password").read_users()


async def test_recreated_entry_gets_a_new_key(directory: Slapd) -> None:
    """Deleting and re-adding an entry gives a new entryUUID (the engine links it by email)."""
    before = {u.client_username: u.source_key for u in (await source(directory).read_users()).users}
    directory.delete(f"uid=bob,{PEOPLE}")
    directory.ldapadd(person_ldif("bob", "101", "Bob", "Example", "bob@example.test"))
    after = {u.client_username: u.source_key for u in (await source(directory).read_users()).users}
    assert before["bob"] != after["bob"]
    assert before["alice"] == after["alice"]


async def test_server_that_never_answers_times_out(slapd: Slapd) -> None:
    """A peer that accepts TCP but never replies is a timeout, not a hang."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with pytest.raises((SourceTimeout, SourceUnreachable)):
            await source(slapd, port=port, timeout=0.5).read_users()


async def test_nothing_listening_is_unreachable(slapd: Slapd) -> None:
    """A closed port is SourceUnreachable."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SourceUnreachable):
        await source(slapd, port=port, timeout=2).read_users()
