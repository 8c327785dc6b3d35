"""How far a read is (``read_progress``), against real files, MariaDB and slapd: the file
sources count bytes of the file's size, the SQL sources count rows of a COUNT taken
first in the same snapshot, LDAP counts users with no total (slapd gives no estimate)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from clgwd.config.pbx import LdapSettings
from clgwd.pbx.csv_source import CsvSource
from clgwd.pbx.ldif_source import LdifSource
from clgwd.pbx.model import ReadMeter, ReadUnit
from tests.pbx.peers import MariaDB, Slapd, shoreware_user_sql
from tests.pbx.test_connect_mysql import shoreware
from tests.pbx.test_connect_mysql import source as connect_source
from tests.pbx.test_freepbx_mysql import asterisk
from tests.pbx.test_freepbx_mysql import source as freepbx_source
from tests.pbx.test_ldap_source import directory
from tests.pbx.test_ldap_source import source as ldap_source

__all__ = ["asterisk", "directory", "shoreware"]  # fixtures of the connector tests

HEADER = "key,extension,first_name,last_name,email,dids\n"


class RecordingMeter(ReadMeter):
    """A meter that remembers every ``(done, total)`` it was set to, in order."""

    def __init__(self, unit: ReadUnit) -> None:
        self._done = 0
        super().__init__(unit)
        self.seen: list[tuple[int, int | None]] = []

    @property  # type: ignore[override]
    def done(self) -> int:
        return self._done

    @done.setter
    def done(self, value: int) -> None:
        self._done = value
        if hasattr(self, "seen"):
            self.seen.append((value, self.total))


def big_csv(path: Path, count: int) -> int:
    rows = (f"u{i},{10000 + i},First{i},Last{i},user{i}@example.com,+1408555{i:04d}\n"
            for i in range(count))
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path.stat().st_size


async def test_a_big_csv_counts_bytes_of_the_file_size(tmp_path: Path) -> None:
    """A 20,000-row CSV: the total is the file's size from the start, bytes read grow
    line batch by batch, and end at the size (the page shows "1.2 of 2.0 MB")."""
    path = tmp_path / "big.csv"
    size = await asyncio.to_thread(big_csv, path, 20000)
    src = CsvSource(path)
    src.meter = meter = RecordingMeter("bytes")
    read = await src.read_users()
    assert len(read.users) == 20000
    assert src.read_progress() == (size, size, "bytes")
    assert all(total == size for _, total in meter.seen[1:])
    middle = [done for done, _ in meter.seen if 0 < done < size]
    assert len(middle) >= 20 and middle == sorted(middle)


async def test_a_csv_read_in_progress_is_seen_from_the_loop(tmp_path: Path) -> None:
    """While the read runs on its thread, the loop sees it part-way, determinate."""
    path = tmp_path / "big.csv"
    size = await asyncio.to_thread(big_csv, path, 60000)
    src = CsvSource(path)
    reading = asyncio.create_task(src.read_users())
    seen = []
    while not reading.done():
        seen.append(src.read_progress())
        await asyncio.sleep(0.002)
    await reading
    assert any(0 < done < size and total == size for done, total, _ in seen), seen[-3:]


async def test_a_pipe_has_no_total(tmp_path: Path) -> None:
    """A CSV fed through a pipe has no size: the read stays indeterminate."""
    path = tmp_path / "pipe.csv"
    await asyncio.to_thread(os.mkfifo, path)
    src = CsvSource(path)
    reading = asyncio.create_task(src.read_users())

    def feed() -> None:
        with path.open("w", encoding="utf-8") as pipe:
            pipe.write(HEADER + "u1,100,Ann,Lee,ann@example.com,\n")

    await asyncio.to_thread(feed)
    assert len((await reading).users) == 1
    assert src.read_progress() == (0, None, "bytes")


async def test_an_ldif_export_counts_bytes_of_the_file_size(tmp_path: Path) -> None:
    """The MiVB IDS export (LDIF) is metered like a CSV: bytes of the file's size."""
    path = tmp_path / "ids.ldif"
    records = "".join(f"dn: uid=u{i},ou=people,dc=x\nentryUUID: 00000000-0000-4000-8000-"
                      f"{i:012d}\nuid: u{i}\ngivenName: U{i}\n"
                      f"telephoneNumber: {1000 + i}\nmail: u{i}@example.com\n\n"
                      for i in range(3000))
    await asyncio.to_thread(path.write_text, "version: 1\n\n" + records, encoding="utf-8")
    size = len(("version: 1\n\n" + records).encode())
    src = LdifSource(path, LdapSettings(preset="openldap", base_dn="dc=x"))
    src.meter = meter = RecordingMeter("bytes")
    read = await src.read_users()
    assert len(read.users) == 3000
    assert src.read_progress() == (size, size, "bytes")
    assert any(0 < done < size for done, _ in meter.seen)


@pytest.fixture
def big_shoreware(shoreware: MariaDB) -> Iterator[MariaDB]:
    """The three users of ``shoreware`` and 2,000 more."""
    shoreware.sql("\n".join(shoreware_user_sql(2000 + i, str(20000 + i), f"F{i}", f"L{i}",
                                               f"u{i}@example.com") for i in range(2000)),
                  "shoreware")
    yield shoreware


@pytest.mark.peers
async def test_connect_counts_users_first_then_rows_as_they_arrive(
        big_shoreware: MariaDB) -> None:
    """MiVoice Connect: COUNT(*) of users in the read's snapshot first (the total is
    known before the first row), then users counted batch by batch up to it."""
    src = connect_source(big_shoreware)
    src.reader.meter = meter = RecordingMeter("users")
    read = await src.read_users()
    assert len(read.users) == 2003
    assert src.read_progress() == (2003, 2003, "users")
    assert meter.seen[0] == (0, None)  # start of the read: nothing known yet
    counted = meter.seen[1:]
    assert counted[0] == (0, 2003)  # the count, before any row
    assert [d for d, _ in counted] == sorted(d for d, _ in counted)
    assert any(0 < d < 2003 for d, _ in counted) and all(t == 2003 for _, t in counted)


@pytest.mark.peers
async def test_freepbx_counts_rows_of_both_user_tables(asterisk: MariaDB) -> None:
    """FreePBX: userman_users and core users are counted together, as rows (a user can
    have a row in both)."""
    src = freepbx_source(asterisk)
    read = await src.read_users()
    assert len(read.users) == 4
    assert src.read_progress() == (6, 6, "rows")


@pytest.mark.peers
async def test_ldap_counts_users_without_a_total(directory: Slapd) -> None:
    """slapd gives no size estimate in the paged results control: the users found are
    counted page by page and the total stays unknown (an indeterminate bar)."""
    src = ldap_source(directory, page_size=2)
    src.meter = meter = RecordingMeter("users")
    read = await src.read_users()
    assert len(read.users) == 5
    assert src.read_progress() == (5, None, "users")
    assert [d for d, _ in meter.seen] == [0, 2, 4, 5]
