"""Cleaning of PBX values: emails, MACs, numbers, text (with Hypothesis for the parsers)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clgwd.pbx import normalize as n


def test_email_is_trimmed_despaced_and_lower_cased() -> None:
    """Upper case and stray spaces (inside too) do not make a different email."""
    assert n.email("  Alice.Smith @Example.COM ") == "alice.smith@example.com"
    assert n.email_key(" Bob@Example.com ") == "bob@example.com"


def test_invalid_emails_have_no_key() -> None:
    """An address without a domain dot, or with two @, is not a match key."""
    for bad in ("", "alice", "alice@example", "a@@example.com", "a@-x.com", "@example.com"):
        assert n.email_key(bad) == "", bad


def test_mac_forms_are_unified() -> None:
    """Dashes, dots, no separators, lower case: one canonical form; junk is empty."""
    for raw in ("00-10-49-ab-cd-ef", "0010.49AB.CDEF", "001049abcdef", "00:10:49:AB:CD:EF"):
        assert n.mac(raw) == "00:10:49:AB:CD:EF"
    assert n.mac("00:10:49") == ""


def test_e164_derivation() -> None:
    """+ kept, 00 becomes +, national numbers need a country code, short ones stay."""
    assert n.e164("+1 (408) 555-1000") == "+14085551000"
    assert n.e164("0044 20 7946 0000") == "+442079460000"
    assert n.e164("020 7946 0000", "44") == "+442079460000"
    assert n.e164("4085551000") == "4085551000"
    assert n.e164("1234", "1") == "1234"


def test_text_strips_controls_and_caps_length() -> None:
    """Control and zero-width characters go, whitespace collapses, 256 chars max."""
    assert n.text("  Ann\u200b\tMarie\x00 ") == "Ann Marie"
    assert len(n.text("x" * 1000)) == n.MAX_TEXT
    assert n.text("Cafe\u0301") == "Café"  # NFC


@given(st.text())
def test_text_is_idempotent_and_bounded(value: str) -> None:
    """Cleaning twice changes nothing, and the result is never longer than the cap."""
    once = n.text(value)
    assert n.text(once) == once
    assert len(once) <= n.MAX_TEXT


@given(st.text())
def test_email_key_is_empty_or_lower_case(value: str) -> None:
    """A match key is either empty or lower-case without spaces."""
    key = n.email_key(n.email(value))
    assert key == "" or (key == key.lower() and " " not in key and "@" in key)


@given(st.text())
def test_mac_is_empty_or_canonical(value: str) -> None:
    """Any input gives either nothing or 17 characters of upper hex and colons."""
    mac = n.mac(value)
    assert mac == "" or (len(mac) == 17 and mac.count(":") == 5 and mac == mac.upper())
