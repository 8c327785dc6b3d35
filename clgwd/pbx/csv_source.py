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

import asyncio
import csv
import io
from pathlib import Path
from typing import Final

from clgwd.pbx import normalize as n
from clgwd.pbx.model import Device, PbxUser, RowProblem, SourceDataError, SourceRead

COLUMNS: Final = (
    "key", "extension", "first_name", "last_name", "display_name", "email",
    "client_username", "dids", "caller_id", "device_model", "device_mac", "groups",
    "department", "location", "language", "enabled",
)
_FALSE: Final = frozenset({"0", "false", "no", "n", "disabled", "off"})


class CsvSource:
    """Users from a CSV export."""

    kind = "csv"

    def __init__(self, path: Path, encoding: str = "utf-8", country_code: str = "") -> None:
        self.path = path
        self.encoding = encoding
        self.country_code = country_code

    def describe(self) -> str:
        return f"csv file {self.path}"

    async def read_users(self) -> SourceRead:
        return await asyncio.to_thread(self._read_blocking)

    def _read_blocking(self) -> SourceRead:
        try:
            data = self.path.read_text(encoding=self.encoding)
        except FileNotFoundError:
            raise SourceDataError(f"CSV file {self.path} does not exist") from None
        except (OSError, UnicodeDecodeError) as err:
            raise SourceDataError(f"cannot read CSV file {self.path}: {err}") from err
        return parse_csv(data, self.country_code)


def parse_csv(data: str, country_code: str = "") -> SourceRead:
    """Parse a whole CSV document; malformed rows become ``RowProblem`` entries."""
    reader = csv.reader(io.StringIO(data.removeprefix("\ufeff")))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise SourceDataError("CSV file is empty (no header row)") from None
    except csv.Error as err:
        raise SourceDataError(f"CSV header unreadable: {err}") from err
    if "key" not in header and "extension" not in header:
        raise SourceDataError("CSV header must have a 'key' or an 'extension' column")
    index: dict[str, int] = {name: header.index(name) for name in COLUMNS if name in header}
    users: list[PbxUser] = []
    problems: list[RowProblem] = []
    seen: set[str] = set()
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            problems.append(RowProblem(f"line {reader.line_num}", f"unreadable CSV: {err}"))
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(RowProblem(f"line {reader.line_num}",
                                       f"has {len(row)} fields, header has {len(header)}"))
            continue
        user = _row_to_user(row, index, country_code)
        if not user.source_key:
            problems.append(RowProblem(f"line {reader.line_num}", "no key and no extension"))
        elif user.source_key in seen:
            problems.append(RowProblem(f"line {reader.line_num}",
                                       f"duplicate key {user.source_key!r}"))
        else:
            seen.add(user.source_key)
            users.append(user)
    return SourceRead(users, problems)


def _row_to_user(row: list[str], index: dict[str, int], country_code: str) -> PbxUser:
    def get(name: str) -> str:
        pos = index.get(name)
        return row[pos] if pos is not None else ""

    extension = n.dial_string(get("extension"))
    mac = n.mac(get("device_mac"))
    model = n.text(get("device_model"))
    devices = (Device(kind="ip-phone", model=model, mac=mac),) if (mac or model) else ()
    return PbxUser(
        source_key=n.text(get("key")) or extension,
        extension=extension,
        first_name=n.text(get("first_name")),
        last_name=n.text(get("last_name")),
        display_name=n.text(get("display_name")),
        email=n.email(get("email")),
        client_username=n.text(get("client_username")),
        dids=n.unique([n.e164(d, country_code) for d in get("dids").split(";")]),
        caller_id=n.e164(get("caller_id"), country_code),
        devices=devices,
        groups=n.unique([n.text(g) for g in get("groups").split(";")]),
        department=n.text(get("department")),
        location=n.text(get("location")),
        language=n.text(get("language")),
        enabled=get("enabled").strip().lower() not in _FALSE,
        raw=dict(zip(index, (row[i] for i in index.values()), strict=True)),
    )
