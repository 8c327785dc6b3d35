"""Session-scoped real peers: one MariaDB and one slapd for the whole test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import require_program
from tests.pbx.peers import MariaDB, Slapd


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    """A running MariaDB on 127.0.0.1 (stopped at the end of the session)."""
    for program in ("mariadbd", "mariadb-install-db", "mariadb", "mariadb-admin"):
        require_program(program)
    server = MariaDB()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def slapd() -> Iterator[Slapd]:
    """A running slapd on 127.0.0.1 with LDAP and LDAPS listeners."""
    for program in ("slapd", "ldapadd", "slappasswd", "openssl"):
        require_program(program)
    server = Slapd()
    try:
        server.start()
        yield server
    finally:
        server.stop()
