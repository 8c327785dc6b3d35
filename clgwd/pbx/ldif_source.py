"""LDIF file source: the MiVoice Business IDS export (RFC 2849 content records).

MiVB's "IDS Data Management" form exports users as LDIF (pbx.md §1.2); that file is the
one documented way to read MiVB users. The parser handles what RFC 2849 content files
contain: comments, folded lines, ``attr:: base64`` values and a ``version:`` line.
Change records (``changetype:``) and ``attr:< URL`` values are rejected per record
rather than guessed at.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Iterator
from pathlib import Path

from clgwd.config.pbx import LdapSettings
from clgwd.pbx.ldapmap import AttributeMap, Entry, entries_to_read
from clgwd.pbx.model import RowProblem, SourceDataError, SourceRead


class LdifSource:
    """Users from an LDIF file, mapped with the configured LDAP preset."""

    kind = "ldif"

    def __init__(self, path: Path, settings: LdapSettings, encoding: str = "utf-8",
                 country_code: str = "") -> None:
        self.path = path
        self.amap = AttributeMap.from_settings(settings)
        self.encoding = encoding
        self.country_code = country_code

    def describe(self) -> str:
        return f"ldif file {self.path}"

    async def read_users(self) -> SourceRead:
        return await asyncio.to_thread(self._read_blocking)

    def _read_blocking(self) -> SourceRead:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise SourceDataError(f"LDIF file {self.path} does not exist") from None
        except OSError as err:
            raise SourceDataError(f"cannot read LDIF file {self.path}: {err}") from err
        entries, problems = parse_ldif(data)
        users, more = entries_to_read(entries, self.amap, self.country_code)
        return SourceRead(users, problems + more)


def _records(data: bytes) -> Iterator[tuple[int, list[bytes]]]:
    """Yield (first line number, unfolded lines) per blank-line separated record."""
    lines: list[bytes] = []
    start = 0
    for number, line in enumerate(data.replace(b"\r\n", b"\n").split(b"\n"), 1):
        if line.startswith(b" ") and lines:
            lines[-1] += line[1:]
        elif line.startswith(b"#"):
            continue
        elif not line.strip():
            if lines:
                yield start, lines
            lines = []
        else:
            if not lines:
                start = number
            lines.append(line)
    if lines:
        yield start, lines


def _parse_record(lines: list[bytes]) -> tuple[str, dict[str, list[bytes]]]:
    dn = ""
    entry: dict[str, list[bytes]] = {}
    for line in lines:
        name, sep, rest = line.partition(b":")
        if not sep:
            raise ValueError(f"line without ':' ({line[:40]!r})")
        attr = name.decode("ascii", errors="replace").strip().lower()
        if rest.startswith(b":"):
            try:
                value = base64.b64decode(rest[1:].strip(), validate=True)
            except binascii.Error as err:
                raise ValueError(f"bad base64 in {attr}") from err
        elif rest.startswith(b"<"):
            raise ValueError(f"URL value in {attr} is not supported")
        else:
            value = rest.lstrip(b" ")
        if attr == "version" and not dn and not entry:
            continue
        if attr == "dn":
            dn = value.decode("utf-8", errors="replace")
        elif attr == "changetype":
            raise ValueError("change records are not a directory export")
        else:
            entry.setdefault(attr, []).append(value)
    if not dn:
        raise ValueError("record without dn")
    return dn, entry


def parse_ldif(data: bytes) -> tuple[list[tuple[str, Entry]], list[RowProblem]]:
    """Parse LDIF content records; bad records become problems."""
    entries: list[tuple[str, Entry]] = []
    problems: list[RowProblem] = []
    for start, lines in _records(data):
        if len(lines) == 1 and lines[0].lower().startswith(b"version:"):
            continue  # a "version: 1" line standing alone before the first record
        try:
            dn, entry = _parse_record(lines)
        except ValueError as err:
            problems.append(RowProblem(f"line {start}", str(err)))
            continue
        entries.append((dn, entry))
    if not entries and not problems and data.strip():
        raise SourceDataError("LDIF file holds no records")
    return entries, problems
