"""Shared read path of the MySQL connectors (MiVoice Connect, FreePBX).

One connection, one ``READ ONLY`` transaction ``WITH CONSISTENT SNAPSHOT``: the several
queries a connector runs see the same moment of the PBX, so a user edited between the
user query and the device query cannot come out half old, half new. The user queries
are ``Counted``: a cheap ``COUNT(*)`` in the same snapshot runs first, then their rows
are streamed in batches (an unbuffered cursor) and counted on the reader's
``ReadMeter``, so the page's bar says "1,200 of 20,000 users" while a big PBX answers.
Driver errors are mapped to ``SourceError`` subclasses by MySQL error number so the
engine can tell an outage (retry, no deletes) from refused credentials (alert, stop
retrying).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiomysql
import pymysql

from clgwd.config.secret import Secret
from clgwd.pbx.model import (
    ReadMeter,
    ReadUnit,
    SourceAuthError,
    SourceDataError,
    SourceError,
    SourceTimeout,
    SourceUnreachable,
)

Row = dict[str, Any]

_AUTH_ERRORS: Final = frozenset({1044, 1045, 1698})
"""Access denied to database / for user / without password."""
_SCHEMA_ERRORS: Final = frozenset({1049, 1054, 1142, 1146})
"""Unknown database, unknown column, SELECT denied on table, no such table."""
_BATCH: Final = 500
"""Rows fetched at a time from a counted query (the meter moves once per batch)."""


@dataclass(frozen=True)
class Counted:
    """A query whose rows the reader's meter counts, and the ``COUNT(*)`` that says
    how many rows it returns (run first, in the same snapshot)."""

    sql: str
    count_sql: str
    unit: ReadUnit = "users"


Query = str | Counted


class MysqlReader:
    """Runs a fixed list of SELECTs in one consistent read-only snapshot."""

    def __init__(self, host: str, port: int, *, user: str, password: Secret | None,
                 database: str, connect_timeout: float) -> None:
        self.host = host
        self.port = port
        self.user = user
        self._password = password
        self.database = database
        self.connect_timeout = connect_timeout
        self.meter = ReadMeter("users")
        """Rows of the ``Counted`` queries read so far, of their count."""

    def describe(self) -> str:
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"

    async def select_all(self, queries: Sequence[Query]) -> list[list[Row]]:
        """Run each query and return all rows of each, or raise ``SourceError``."""
        try:
            return await self._select_all(queries)
        except pymysql.err.MySQLError as err:
            raise self._map_error(err) from None
        except TimeoutError:
            raise SourceTimeout(f"{self.describe()}: no answer within "
                                f"{self.connect_timeout:g} s") from None
        except OSError as err:
            raise SourceUnreachable(f"{self.describe()}: {type(err).__name__}: {err}") from None

    async def _select_all(self, queries: Sequence[Query]) -> list[list[Row]]:
        self.meter.start()
        conn = await aiomysql.connect(
            host=self.host, port=self.port, user=self.user,
            password=self._password.reveal() if self._password else "",
            db=self.database, connect_timeout=self.connect_timeout, autocommit=True,
            charset="utf8mb4", cursorclass=aiomysql.DictCursor,
        )
        try:
            async with conn.cursor() as cur:
                await cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                await self._count(cur, [q for q in queries if isinstance(q, Counted)])
                results = []
                for query in queries:
                    if isinstance(query, Counted):
                        results.append(await self._stream(conn, query.sql))
                        continue
                    await cur.execute(query)
                    results.append(list(await cur.fetchall()))
                await cur.execute("COMMIT")
                return results
        finally:
            conn.close()

    async def _count(self, cur: aiomysql.Cursor, counted: list[Counted]) -> None:
        """Start the meter at the rows the counted queries will return."""
        if not counted:
            return
        total = 0
        for query in counted:
            await cur.execute(query.count_sql)
            row = await cur.fetchone()
            total += int(next(iter(row.values())) or 0) if row else 0
        units = {q.unit for q in counted}
        self.meter.start(total, units.pop() if len(units) == 1 else "rows")

    async def _stream(self, conn: aiomysql.Connection, sql: str) -> list[Row]:
        """All rows of ``sql``, fetched a batch at a time and counted on the meter."""
        rows: list[Row] = []
        async with conn.cursor(aiomysql.SSDictCursor) as cur:
            await cur.execute(sql)
            while batch := await cur.fetchmany(_BATCH):
                rows.extend(batch)
                self.meter.done += len(batch)
        return rows

    def _map_error(self, err: pymysql.err.MySQLError) -> SourceError:
        number = err.args[0] if err.args and isinstance(err.args[0], int) else 0
        text = f"{self.describe()}: MySQL error {number}: {err.args[-1] if err.args else err}"
        if number in _AUTH_ERRORS:
            return SourceAuthError(text)
        if number in _SCHEMA_ERRORS or isinstance(err, pymysql.err.ProgrammingError):
            return SourceDataError(text)
        if number in {2013, 2006}:
            return SourceUnreachable(f"{text} (connection lost during the read)")
        return SourceUnreachable(text)


async def run_queries(reader: MysqlReader, queries: Sequence[Query],
                      read_timeout: float) -> list[list[Row]]:
    """``select_all`` bounded by the whole-read timeout."""
    try:
        async with asyncio.timeout(read_timeout):
            return await reader.select_all(queries)
    except TimeoutError:
        raise SourceTimeout(f"{reader.describe()}: read took longer than {read_timeout:g} s") \
            from None
