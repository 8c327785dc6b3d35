"""CSV file source with documented columns (docs/config-pbx.md, "CSV columns").

Columns (header row required, names case-insensitive, unknown columns ignored):
``key, extension, first_name, last_name, display_name, email, client_username, dids,
caller_id, device_model, device_mac, groups, department, location, language, enabled``.
``dids`` and ``groups`` hold ``;``-separated lists. Without a ``key`` column the
extension is the key (a renumber then relies on the engine's move rule).

The file is read and parsed in a worker thread: 50,000 rows take ~0.2 s of CPU that
must not stall the event loop.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import operator
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Executor
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from clgwd.pbx import normalize as n
from clgwd.pbx.model import (
    Device,
    PbxUser,
    ReadMemo,
    ReadMeter,
    RowProblem,
    SourceDataError,
    SourceRead,
    metered_lines,
    run_blocking,
)

COLUMNS: Final = (
    "key", "extension", "first_name", "last_name", "display_name", "email",
    "client_username", "dids", "caller_id", "device_model", "device_mac", "groups",
    "department", "location", "language", "enabled",
)
_NO_RAW: Final[Mapping[str, Any]] = MappingProxyType({})
_FALSE: Final = frozenset({"0", "false", "no", "n", "disabled", "off"})


class CsvSource:
    """Users from a CSV export."""

    kind = "csv"

    def __init__(self, path: Path, encoding: str = "utf-8", country_code: str = "", *,
                 executor: Executor | None = None) -> None:
        self.path = path
        self.encoding = encoding
        self.country_code = country_code
        self.executor = executor
        self.memo: ReadMemo[PbxUser] = ReadMemo()
        self.meter = ReadMeter("bytes")

    def describe(self) -> str:
        return f"csv file {self.path}"

    def read_progress(self) -> tuple[int, int | None, str]:
        """Bytes read of the file's size (unknown for a pipe)."""
        return self.meter.progress()

    async def read_users(self) -> SourceRead:
        self.meter.start()
        return await run_blocking(self.executor, self._read_blocking)

    def _read_blocking(self) -> SourceRead:
        # Streamed line by line: the whole file as one str would cost up to 4 bytes per
        # character (a single CJK name makes it 2) at the read's memory peak.
        self.memo.start()
        try:
            with self.path.open("rb") as raw, \
                    io.TextIOWrapper(raw, encoding=self.encoding, newline="") as stream:
                lines = metered_lines(stream, raw, self.meter)
                read = parse_csv_lines(lines, self.country_code, self.memo)
        except FileNotFoundError:
            raise SourceDataError(f"CSV file {self.path} does not exist") from None
        except (OSError, UnicodeDecodeError) as err:
            raise SourceDataError(f"cannot read CSV file {self.path}: {err}") from err
        self.memo.finish()
        return read


def parse_csv(data: str, country_code: str = "") -> SourceRead:
    """Parse a whole CSV document; malformed rows become ``RowProblem`` entries."""
    return parse_csv_lines(_lines(data), country_code)


def parse_csv_lines(lines: Iterable[str], country_code: str = "",
                    memo: ReadMemo[PbxUser] | None = None) -> SourceRead:
    """Parse CSV lines (each with its line ending; a leading BOM is dropped).

    With ``memo`` (owned by a source whose ``country_code`` never changes), a row equal
    to a row of the previous read, under the same header, reuses that read's user."""
    reader = csv.reader(_without_bom(lines))
    try:
        header_row = next(reader)
    except StopIteration:
        raise SourceDataError("CSV file is empty (no header row)") from None
    except csv.Error as err:
        raise SourceDataError(f"CSV header unreadable: {err}") from err
    to_user = _RowMapper(header_row, country_code, memo)
    width = len(header_row)
    users: list[PbxUser] = []
    problems: list[RowProblem] = []
    seen: set[str] = set()
    while True:
        line_before = reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            problems.append(RowProblem(f"line {reader.line_num}", f"unreadable CSV: {err}"))
            continue
        if not "".join(row).strip():
            continue
        if len(row) != width:
            problems.append(RowProblem(f"line {reader.line_num}",
                                       f"has {len(row)} fields, header has {width}"))
            continue
        # A record spanning several lines has a newline inside a quoted cell, which
        # only the full cleaning turns into a space.
        user = to_user(row, multiline=reader.line_num - line_before > 1)
        if not user.source_key:
            problems.append(RowProblem(f"line {reader.line_num}", "no key and no extension"))
        elif user.source_key in seen:
            problems.append(RowProblem(f"line {reader.line_num}",
                                       f"duplicate key {user.source_key!r}"))
        else:
            seen.add(user.source_key)
            users.append(user)
    return SourceRead(users, problems)


class _RowMapper:
    """A raw CSV row -> its user: cleaning, picking the documented columns and, with a
    memo, reusing the previous read's user for an identical row.

    The memo key is a digest of the raw row, keyed with a digest of the raw header
    (another header maps the same row differently). It is taken before any cleaning, so
    an unchanged row costs one join and one hash. A row with a cell holding the join
    separator (``\x1f``) would be ambiguous and is simply not remembered."""

    def __init__(self, header_row: list[str], country_code: str,
                 memo: ReadMemo[PbxUser] | None) -> None:
        header = [h.strip().lower() for h in header_row]
        if "key" not in header and "extension" not in header:
            raise SourceDataError("CSV header must have a 'key' or an 'extension' column")
        # Absent columns point one past the row, where an empty cell is appended.
        self.pick = operator.itemgetter(*(header.index(c) if c in header else len(header)
                                          for c in COLUMNS))
        self.country_code = country_code
        self.memo = memo
        self.salt = hashlib.blake2b(_joined(header_row).encode("utf-8", "surrogatepass"),
                                    digest_size=32).digest()
        self.pool: dict[str, str] = {}

    def __call__(self, row: list[str], *, multiline: bool) -> PbxUser:
        memo = self.memo
        digest = self._digest(row) if memo is not None else None
        if memo is None or digest is None:
            return self._build(row, multiline)
        user = memo.take(digest)
        if user is None:
            user = self._build(row, multiline)
        memo.keep(digest, user)
        return user

    def _build(self, row: list[str], multiline: bool) -> PbxUser:
        row.append("")
        dirty = multiline or not n.is_clean_document("\n".join(row))
        cells = _clean_all(row) if dirty else _trim(row)
        return _row_to_user(self.pick(cells), self.country_code, self.pool)

    def _digest(self, row: list[str]) -> bytes | None:
        joined = _joined(row)
        if joined.count("\x1f") != len(row) - 1:
            return None
        return hashlib.blake2b(joined.encode("utf-8", "surrogatepass"), digest_size=16,
                               key=self.salt).digest()


def _joined(cells: list[str]) -> str:
    return "\x1f".join(cells)


def _without_bom(lines: Iterable[str]) -> Iterator[str]:
    it = iter(lines)
    first = next(it, None)
    if first is not None:
        yield first.removeprefix("\ufeff")
        yield from it


def _lines(data: str) -> Iterator[str]:
    """Lines with their ``\n``, one at a time. ``io.StringIO(data)`` would first copy a
    50,000-row file into a 4-bytes-per-character buffer (20 MB for 5 MB of text)."""
    start, size = 0, len(data)
    while start < size:
        end = data.find("\n", start)
        if end < 0:
            yield data[start:]
            return
        yield data[start:end + 1]
        start = end + 1


def _trim(row: list[str]) -> list[str]:
    cells = list(map(str.strip, row))
    if max(map(len, cells)) > n.MAX_TEXT:
        cells = [c[:n.MAX_TEXT] for c in cells]
    return cells


def _clean_all(row: list[str]) -> list[str]:
    return [n.text(c) for c in row]


def _list(cell: str) -> list[str]:
    if ";" not in cell:
        return [cell] if cell else []  # cells arrive trimmed: the common single value
    return [part.strip() for part in cell.split(";")]


def _row_to_user(cells: tuple[str, ...], country_code: str, pool: dict[str, str]) -> PbxUser:
    """Build a user from already cleaned cells in ``COLUMNS`` order.

    Values that repeat across a directory (department, site, model, group, language,
    first and last names) are shared through ``pool``: one string object instead of 50,000."""
    (key, extension, first, last, display, email, client, dids, caller_id, model, mac,
     groups, department, location, language, enabled) = cells
    share = pool.setdefault
    first, last, model = share(first, first), share(last, last), share(model, model)
    department = share(department, department)
    location, language = share(location, location), share(language, language)
    extension = n.dial_string(extension)
    mac = n.mac(mac)
    return PbxUser(
        source_key=key or extension,
        extension=extension,
        first_name=first,
        last_name=last,
        display_name=display,
        email=n.email(email),
        client_username=client,
        dids=n.unique([n.e164(d, country_code) for d in _list(dids)]),
        caller_id=n.e164(caller_id, country_code),
        devices=(Device(kind="ip-phone", model=model, mac=mac),) if (mac or model) else (),
        groups=_groups(groups),
        department=department,
        location=location,
        language=language,
        enabled=enabled.lower() not in _FALSE,
        raw=_NO_RAW,  # the file itself is the raw data; problems carry line numbers
    )


@functools.lru_cache(maxsize=4096)
def _groups(cell: str) -> tuple[str, ...]:
    """Group lists repeat across users: parse each distinct cell once, share the tuple."""
    return n.unique(_list(cell))
