"""LDIF file source: the MiVoice Business IDS export (RFC 2849 content records).

MiVB's "IDS Data Management" form exports users as LDIF (pbx.md §1.2); that file is the
one documented way to read MiVB users. The parser handles what RFC 2849 content files
contain: comments, folded lines, ``attr:: base64`` values and a ``version:`` line.
Change records (``changetype:``) and ``attr:< URL`` values are rejected per record
rather than guessed at.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from pathlib import Path

from clgwd.config.pbx import LdapSettings
from clgwd.pbx.ldapmap import AttributeMap, Entry, collect_users, entry_to_user
from clgwd.pbx.model import (
    PbxUser,
    ReadMemo,
    ReadMeter,
    RowProblem,
    SourceDataError,
    SourceRead,
    metered_lines,
    run_blocking,
)


class LdifSource:
    """Users from an LDIF file, mapped with the configured LDAP preset."""

    kind = "ldif"

    def __init__(self, path: Path, settings: LdapSettings, encoding: str = "utf-8",
                 country_code: str = "", *, executor: Executor | None = None) -> None:
        self.path = path
        self.executor = executor
        self.amap = AttributeMap.from_settings(settings)
        self.encoding = encoding
        self.country_code = country_code
        self.memo: ReadMemo[PbxUser] = ReadMemo()
        self.meter = ReadMeter("bytes")

    def describe(self) -> str:
        return f"ldif file {self.path}"

    def read_progress(self) -> tuple[int, int | None, str]:
        """Bytes read of the file's size (unknown for a pipe)."""
        return self.meter.progress()

    async def read_users(self) -> SourceRead:
        self.meter.start()
        return await run_blocking(self.executor, self._read_blocking)

    def _read_blocking(self) -> SourceRead:
        # Streamed line by line: neither the file nor its entries are held whole.
        self.memo.start()
        problems: list[RowProblem] = []
        try:
            with self.path.open("rb") as stream:
                users, more = collect_users(self._mapped(
                    metered_lines(stream, stream, self.meter), problems))
                # Nothing parsed: only a file of blank lines is an empty directory; one
                # with comments or stray text "holds no records" (checked on this rare
                # path only, so the common one has no per-line test).
                if not users and not problems and not more:
                    stream.seek(0)
                    if any(line.strip() for line in stream):
                        raise SourceDataError("LDIF file holds no records")
        except FileNotFoundError:
            raise SourceDataError(f"LDIF file {self.path} does not exist") from None
        except OSError as err:
            raise SourceDataError(f"cannot read LDIF file {self.path}: {err}") from err
        self.memo.finish()
        return SourceRead(users, problems + more)

    def _mapped(self, lines: Iterable[bytes], problems: list[RowProblem],
                ) -> Iterator[tuple[str, PbxUser | RowProblem]]:
        """(dn, user or problem) per content record. A record byte-identical to one of
        the previous read reuses that read's user (``ReadMemo``): the attribute map and
        country code are fixed for this source object."""
        pool: dict[str, str] = {}
        for start, record in _content_records(lines):
            digest = hashlib.blake2b(b"\n".join(record), digest_size=16).digest()
            user = self.memo.take(digest)
            if user is None:
                try:
                    dn, entry = _parse_record(record)
                except ValueError as err:
                    problems.append(RowProblem(f"line {start}", str(err)))
                    continue
                result = entry_to_user(dn, entry, self.amap, self.country_code, pool=pool,
                                       keep_dn=False)
                if isinstance(result, RowProblem):
                    yield dn, result
                    continue
                user = result
            else:
                dn = _dn_of(record)
            self.memo.keep(digest, user)
            yield dn, user


def _dn_of(lines: list[bytes]) -> str:
    """The dn of a record that parsed before (for a duplicate-key report): the plain
    first line, else the full parse (a base64 dn)."""
    first = lines[0]
    if first[:3].lower() == b"dn:" and first[3:4] not in (b":", b"<"):
        return first[3:].lstrip(b" ").decode("utf-8", errors="replace")
    return _parse_record(lines)[0]


def _records(data: Iterable[bytes]) -> Iterator[tuple[int, list[bytes]]]:
    """Yield (first line number, unfolded lines) per blank-line separated record."""
    lines: list[bytes] = []
    start = 0
    for number, raw_line in enumerate(data, 1):
        line = raw_line.rstrip(b"\r\n")
        lead = line[:1]
        if lead == b" " and lines:
            lines[-1] += line[1:]
        elif lead == b"#":
            continue
        elif lead.isalpha() or line.strip():  # attribute lines skip the strip()
            if not lines:
                start = number
            lines.append(line)
        else:
            if lines:
                yield start, lines
            lines = []
    if lines:
        yield start, lines


_ATTRIBUTE_NAMES: dict[bytes, str] = {}
"""Attribute names as written -> their lower-case text: a directory uses a few dozen,
each on 50,000 records (bounded, so odd input cannot grow it without end)."""


def _attribute_name(raw: bytes) -> str:
    attr = raw.decode("ascii", errors="replace").strip().lower()
    if len(_ATTRIBUTE_NAMES) < 1024:
        _ATTRIBUTE_NAMES[raw] = attr
    return attr


def _parse_record(lines: list[bytes]) -> tuple[str, dict[str, list[bytes]]]:
    dn = ""
    entry: dict[str, list[bytes]] = {}
    for line in lines:
        name, sep, rest = line.partition(b":")
        if not sep:
            raise ValueError(f"line without ':' ({line[:40]!r})")
        attr = _ATTRIBUTE_NAMES.get(name) or _attribute_name(name)
        kind = rest[:1]
        if kind == b":":
            try:
                value = base64.b64decode(rest[1:].strip(), validate=True)
            except binascii.Error as err:
                raise ValueError(f"bad base64 in {attr}") from err
        elif kind == b"<":
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


def _content_records(data: Iterable[bytes]) -> Iterator[tuple[int, list[bytes]]]:
    """``_records`` without a ``version: 1`` line standing alone before the first one."""
    for start, lines in _records(data):
        if len(lines) == 1 and lines[0].lower().startswith(b"version:"):
            continue
        yield start, lines


def iter_ldif(data: bytes, problems: list[RowProblem]) -> Iterator[tuple[str, Entry]]:
    """Yield (dn, entry) per content record; bad records are appended to ``problems``."""
    for start, lines in _content_records(io.BytesIO(data)):
        try:
            dn, entry = _parse_record(lines)
        except ValueError as err:
            problems.append(RowProblem(f"line {start}", str(err)))
            continue
        yield dn, entry


def parse_ldif(data: bytes) -> tuple[list[tuple[str, Entry]], list[RowProblem]]:
    """Parse every content record at once (tests, small files)."""
    problems: list[RowProblem] = []
    entries = list(iter_ldif(data, problems))
    return entries, problems
