"""File sources reuse the previous read's users for unchanged rows (``ReadMemo``).

What matters: an unchanged row yields the *same* object (no normalization work), a
changed row yields a fresh, correct user, problems and duplicate keys are still reported
on every read, and a failed read does not replace what the next read reuses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clgwd.config.pbx import LdapSettings
from clgwd.pbx.csv_source import CsvSource
from clgwd.pbx.ldif_source import LdifSource
from clgwd.pbx.model import SourceDataError

HEADER = "key,extension,first_name,last_name,email,dids\n"
ROWS = ["k1,1001,Ann,Lee,ann@x.com,0123456789", "k2,1002,Bo,Li,bo@x.com,",
        "k3,1003,Cy,Ng,cy@x.com,"]


def _csv(path: Path, rows: list[str]) -> None:
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")


async def test_csv_unchanged_rows_are_reused_changed_rows_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    _csv(path, ROWS)
    source = CsvSource(path, country_code="41")
    first = {u.source_key: u for u in (await source.read_users()).users}
    assert first["k1"].dids == ("+41123456789",)
    _csv(path, [ROWS[0], "k2,1002,Bo,Li,bo@y.com,", ROWS[2], "k2,1009,X,Y,x@x.com,", "bad"])
    second = await source.read_users()
    by_key = {u.source_key: u for u in second.users}
    assert by_key["k1"] is first["k1"] and by_key["k3"] is first["k3"]
    assert by_key["k2"] is not first["k2"] and by_key["k2"].email == "bo@y.com"
    assert [(p.row, p.reason) for p in second.problems] == [
        ("line 5", "duplicate key 'k2'"), ("line 6", "has 1 fields, header has 6")]


async def test_csv_memo_follows_the_header_and_skips_ambiguous_rows(tmp_path: Path) -> None:
    """Swapped columns map the same row text differently, so nothing is reused; a
    cell holding the memo's separator is never remembered, yet read correctly."""
    path = tmp_path / "users.csv"
    path.write_text("key,first_name,last_name\nk1,Ann,Lee\nk2,Bo\x1fX,Li\n", encoding="utf-8")
    source = CsvSource(path)
    first = (await source.read_users()).users
    assert first[1].first_name == "Bo X"
    again = (await source.read_users()).users
    assert again[0] is first[0] and again[1] is not first[1] and again[1] == first[1]
    path.write_text("key,last_name,first_name\nk1,Ann,Lee\n", encoding="utf-8")
    (swapped,) = (await source.read_users()).users
    assert swapped is not first[0] and (swapped.first_name, swapped.last_name) == ("Lee",
                                                                                  "Ann")


async def test_csv_failed_read_keeps_the_previous_memo(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    _csv(path, ROWS)
    source = CsvSource(path)
    first = (await source.read_users()).users
    path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(SourceDataError):
        await source.read_users()
    _csv(path, ROWS)
    again = (await source.read_users()).users
    assert all(a is b for a, b in zip(first, again, strict=True))


async def test_csv_sources_do_not_share_memos(tmp_path: Path) -> None:
    """The memo belongs to one source object, whose country code is fixed."""
    path = tmp_path / "users.csv"
    _csv(path, ROWS)
    await CsvSource(path, country_code="41").read_users()
    other = (await CsvSource(path, country_code="33").read_users()).users
    assert other[0].dids == ("+33123456789",)


LDIF = ("dn: uid=a,ou=p,dc=x\nuid: a\nentryUUID: u-a\nmail: a@x.com\n"
        "telephoneNumber: 1001\n\n"
        "dn: uid=b,ou=p,dc=x\nuid: b\nentryUUID: u-b\nmail: b@x.com\n\n")


async def test_ldif_unchanged_records_are_reused(tmp_path: Path) -> None:
    path = tmp_path / "ids.ldif"
    path.write_text(LDIF, encoding="utf-8")
    source = LdifSource(path, LdapSettings(preset="openldap"))
    first = {u.source_key: u for u in (await source.read_users()).users}
    path.write_text(LDIF.replace("b@x.com", "b2@x.com")
                    + "dn: uid=c,ou=p,dc=x\nuid: c\nentryUUID: u-a\n\n"
                    + "dn: uid=d,ou=p,dc=x\nuid: d\n\n", encoding="utf-8")
    second = await source.read_users()
    by_key = {u.source_key: u for u in second.users}
    assert by_key["u-a"] is first["u-a"]
    assert by_key["u-b"].email == "b2@x.com"
    reasons = sorted(p.reason for p in second.problems)
    assert reasons == ["duplicate key 'u-a'", "no entryuuid value"]
    # A third read of the same file reports the same problems again.
    third = await source.read_users()
    assert sorted(p.reason for p in third.problems) == reasons
    assert {u.source_key: u for u in third.users}["u-b"] is by_key["u-b"]
