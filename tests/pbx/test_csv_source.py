"""CSV source: documented columns, malformed rows, unicode, long names, duplicates."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from clgwd.pbx.csv_source import CsvSource, parse_csv
from clgwd.pbx.model import SourceDataError

HEADER = "key,extension,first_name,last_name,email,dids,groups,device_mac,enabled\n"


def test_documented_columns_are_read() -> None:
    """Lists are ;-separated, MACs and numbers normalized, enabled parsed."""
    read = parse_csv(HEADER + "k1,1001,Ann,Lee, Ann.Lee@X.com ,+1 408 555 1001;+14085551001,"
                     "Sales; Support,00-08-5d-11-22-01,no\n")
    (user,) = read.users
    assert user.email == "ann.lee@x.com"
    assert user.dids == ("+14085551001",)
    assert user.groups == ("Sales", "Support")
    assert user.devices[0].mac == "00:08:5D:11:22:01"
    assert user.enabled is False


def test_malformed_rows_are_reported_not_dropped_silently() -> None:
    """A row with the wrong number of fields or no key is a problem; good rows still read."""
    read = parse_csv(HEADER + "k1,1001,Ann,Lee,a@x.com,,,,\nbroken,row\n,,No,Key,n@x.com,,,,\n"
                     "k2,1002,Bo,Li,b@x.com,,,,\n")
    assert [u.source_key for u in read.users] == ["k1", "k2"]
    assert [p.row for p in read.problems] == ["line 3", "line 4"]


def test_duplicate_keys_are_problems() -> None:
    """A repeated key keeps the first row and reports the second."""
    read = parse_csv(HEADER + "k1,1001,Ann,Lee,a@x.com,,,,\nk1,1002,Bo,Li,b@x.com,,,,\n")
    assert len(read.users) == 1
    assert "duplicate key" in read.problems[0].reason


def test_without_key_column_the_extension_is_the_key() -> None:
    """The minimal CSV (extension, names, email) keys users by extension."""
    read = parse_csv("extension,first_name,email\n201,Zoë,z@x.com\n")
    assert read.users[0].source_key == "201"
    assert read.users[0].first_name == "Zoë"


def test_unicode_bom_and_very_long_names() -> None:
    """A UTF-8 BOM is ignored; a 5000-character name is cut, not fatal."""
    read = parse_csv("\ufeff" + HEADER + f"k1,1,{'Ω' * 5000},Lee,a@x.com,,,,\n")
    assert len(read.users[0].first_name) == 256


def test_header_without_key_or_extension_is_an_error() -> None:
    """A file that is not the documented format fails the read (nothing is deleted)."""
    with pytest.raises(SourceDataError):
        parse_csv("name,mail\nAnn,a@x.com\n")


def test_empty_file_is_an_error() -> None:
    with pytest.raises(SourceDataError):
        parse_csv("")


async def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    """The source raises instead of returning zero users."""
    with pytest.raises(SourceDataError):
        await CsvSource(tmp_path / "absent.csv").read_users()


async def test_sample_directory_is_readable() -> None:
    """The shipped demo directory parses without row problems."""
    path = Path(str(resources.files("clgwd.pbx") / "samples" / "directory.csv"))
    read = await CsvSource(path).read_users()
    assert len(read.users) == 20 and not read.problems


def test_quoted_newline_is_cleaned_like_any_control_character() -> None:
    """A cell spanning two lines reads as one value with a space, clean file or not."""
    read = parse_csv("key,extension,display_name,email\nk1,1,\"Ann\nLee\",a@x.com\n"
                     "k2,2,Bo,b@x.com\n")
    assert [u.display_name for u in read.users] == ["Ann Lee", "Bo"]


async def test_file_is_read_like_the_same_text(tmp_path: Path) -> None:
    """The streamed file read equals ``parse_csv`` of its text: BOM, CRLF endings, a
    quoted cell over two lines, a control character, an undecodable file."""
    text = ("\ufeff" + HEADER + 'k1,1001,"Ann\r\nMarie",Lee,a@x.com,,,,\r\n'
            "k2,1002,Bo\x07b,Li,B@X.com,,,,\r\nk3,1003,Cy,Ng,c@x.com,,,,\r\n")
    path = tmp_path / "users.csv"
    path.write_bytes(text.encode())
    read = await CsvSource(path).read_users()
    expected = parse_csv(text.replace("\r\n", "\n"))
    assert read.users == expected.users and read.problems == expected.problems
    assert [u.first_name for u in read.users] == ["Ann Marie", "Bo b", "Cy"]
    path.write_bytes(HEADER.encode() + b"k1,1001,\xff\xfe,Lee,a@x.com,,,,\n")
    with pytest.raises(SourceDataError, match="cannot read CSV file"):
        await CsvSource(path).read_users()
