"""Email rules and client-username options (Connect step / Connect HYBRID)."""

from __future__ import annotations

from clgwd.config.pbx import ClientUsernameSettings
from clgwd.pbx.model import RowProblem
from clgwd.sync.rules import apply_rules
from tests.sync.helpers import user

OFF = ClientUsernameSettings()


def test_users_without_email_are_listed_and_not_synced() -> None:
    """Missing and invalid emails land in the no-email list; the rest still sync."""
    result = apply_rules([user("u1"), user("u2", email=""), user("u3", email="bad@")], [], OFF)
    assert [u.source_key for u in result.eligible] == ["u1"]
    assert result.irregularities.no_email_count == 2
    assert {u["source_key"] for u in result.irregularities.no_email} == {"u2", "u3"}


def test_every_user_sharing_an_email_is_skipped() -> None:
    """Emails equal after case/space normalization are shared: all holders are listed."""
    result = apply_rules([user("u1", email="desk@x.com"), user("u2", email="desk@x.com"),
                          user("u3")], [], OFF)
    assert [u.source_key for u in result.eligible] == ["u3"]
    assert result.irregularities.duplicate_email_count == 2
    assert result.present_keys == {"u1", "u2", "u3"}


def test_replace_client_username_with_unique_email() -> None:
    """Option 1: the client username becomes the (unique, valid) email."""
    opts = ClientUsernameSettings(replace_with_email=True)
    result = apply_rules([user("u1", email="ann@x.com")], [], opts)
    assert result.eligible[0].client_username == "ann@x.com"
    assert result.irregularities.invalid_client_usernames == 0


def test_append_domain_to_plain_client_usernames() -> None:
    """Option 2: '@domain' is appended to usernames that are not emails already."""
    opts = ClientUsernameSettings(append_domain="corp.example")
    result = apply_rules([user("u1"), user("u2", client_username="u2@other.example")], [],
                         opts)
    # client_username comes from helpers.user: it equals the key; u2 passes an override
    assert [u.client_username for u in result.eligible] == ["u1@corp.example",
                                                            "u2@other.example"]


def test_invalid_client_usernames_are_counted_n_of_x() -> None:
    """Without options, plain usernames are invalid: "invalid client usernames: 2 of 3"."""
    result = apply_rules([user("u1"), user("u2"), user("u3", client_username="u3@x.com")],
                         [], OFF)
    text = result.irregularities.as_json()["invalid_client_usernames_text"]
    assert text == "invalid client usernames: 2 of 3"


def test_duplicate_extensions_and_row_problems_are_irregularities() -> None:
    result = apply_rules([user("u1", ext="100"), user("u2", ext="100")],
                         [RowProblem("line 9", "bad")], OFF)
    assert result.irregularities.duplicate_extensions == {"100": ["u1", "u2"]}
    assert "1 rows could not be read" in result.irregularities.summary()
    assert len(result.eligible) == 2
