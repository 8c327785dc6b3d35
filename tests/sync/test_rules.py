"""Email rules and client-username options (Connect step / Connect HYBRID)."""

from __future__ import annotations

from clgwd.config.pbx import ClientUsernameSettings
from clgwd.pbx.model import RowProblem
from clgwd.sync.rules import apply_rules
from tests.sync.helpers import user

OFF = ClientUsernameSettings()


def test_users_without_email_are_listed_and_held_back_on_request() -> None:
    """hold_back: missing and invalid emails land in the no-email list; the rest sync."""
    result = apply_rules([user("u1"), user("u2", email=""), user("u3", email="bad@")], [], OFF,
                         email_problems="hold_back")
    assert [u.source_key for u in result.eligible] == ["u1"] and result.flags == {}
    assert result.irregularities.no_email_count == 2
    assert {u["source_key"] for u in result.irregularities.no_email} == {"u2", "u3"}


def test_every_user_sharing_an_email_is_held_back_on_request() -> None:
    """Emails equal after case/space normalization are shared: all holders are listed."""
    result = apply_rules([user("u1", email="desk@x.com"), user("u2", email=" Desk@X.com"),
                          user("u3")], [], OFF, email_problems="hold_back")
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
    assert text == "2 of 3 client usernames break the rule: a client username must be an " \
        "email address"


def test_duplicate_extensions_and_row_problems_are_irregularities() -> None:
    result = apply_rules([user("u1", ext="100"), user("u2", ext="100")],
                         [RowProblem("line 9", "bad")], OFF)
    assert result.irregularities.duplicate_extensions == {"100": ["u1", "u2"]}
    assert "1 row could not be read" in result.irregularities.summary()
    assert "extension 100 is used by 2 users" in result.irregularities.summary()
    assert len(result.eligible) == 2


def test_by_default_users_with_email_problems_sync_flagged() -> None:
    """sync_and_flag (the vendor's way): listed, synced, and flagged with the reason."""
    result = apply_rules([user("u1"), user("u2", email=""), user("u3", email="d@x.com"),
                          user("u4", email="d@x.com")], [],
                         ClientUsernameSettings(replace_with_email=True))
    assert [u.source_key for u in result.eligible] == ["u1", "u2", "u3", "u4"]
    assert result.flags == {"u2": "no_email", "u3": "duplicate_email",
                            "u4": "duplicate_email"}
    assert result.irregularities.email_policy == "sync_and_flag"
    # the shared address is not "available and unique": it never replaces the name
    assert [u.client_username for u in result.eligible] == ["u1@example.com", "u2", "u3",
                                                            "u4"]
    assert "1 user doesn't have an email address" in result.irregularities.summary()


def test_several_shared_extensions_are_named_with_their_counts() -> None:
    """"2 extensions are used by more than one user: 100 (2 users), 200 (3 users)"."""
    result = apply_rules([user("u1", ext="100"), user("u2", ext="100"), user("u3", ext="200"),
                          user("u4", ext="200"), user("u5", ext="200"), user("u6")], [], OFF)
    assert result.irregularities.as_json()["duplicate_extensions_text"] == (
        "2 extensions are used by more than one user: 100 (2 users), 200 (3 users)")


def test_the_client_username_rule_names_the_options_in_force() -> None:
    """The text says which rule the invalid names break, with the domain appended."""
    result = apply_rules([user("u1", client_username="a b")], [],
                         ClientUsernameSettings(append_domain="corp.example"))
    assert result.irregularities.client_usernames_text() == (
        "1 of 1 client usernames break the rule: a client username must be an email "
        "address (a name without @ gets @corp.example)")
