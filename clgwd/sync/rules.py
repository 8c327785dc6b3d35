"""Email and client-username rules, and the irregularity report of the Connect step.

From the gateway's Connect step and Connect HYBRID: users without a (valid) email and
users sharing an email are listed. The vendor imports them anyway ("they may have issues
in the registration process"); so do we by default (``sync.email_problems:
sync_and_flag``), each marked with ``email_problem`` (``no_email`` /
``duplicate_email``) so the cloud can show why they cannot register. ``hold_back``
keeps them out of the sync instead, every user sharing an address included. Either
way one bad row never blocks the batch (the Bitwarden #190 lesson in pbx.md). Client
usernames follow the two HYBRID options, and the report says which rule they break.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clgwd.config.pbx import ClientUsernameSettings, EmailPolicy
from clgwd.pbx.model import PbxUser, RowProblem
from clgwd.pbx.normalize import email_key, is_email

LIST_LIMIT = 200
"""Longest list of users kept in a report; the counts are always complete."""


def _brief(user: PbxUser) -> dict[str, str]:
    name = user.display_name or f"{user.first_name} {user.last_name}".strip()
    return {"source_key": user.source_key, "extension": user.extension, "name": name,
            "email": user.email}


def _users(count: int) -> str:
    return f"{count} {'user' if count == 1 else 'users'}"


@dataclass
class Irregularities:
    """What the operator should fix on the PBX; counts are exact, lists are capped."""

    no_email: list[dict[str, str]] = field(default_factory=list)
    no_email_count: int = 0
    duplicate_email: list[dict[str, str]] = field(default_factory=list)
    duplicate_email_count: int = 0
    invalid_client_usernames: int = 0
    client_usernames_checked: int = 0
    duplicate_extensions: dict[str, list[str]] = field(default_factory=dict)
    duplicate_extension_count: int = 0
    row_problems: list[dict[str, str]] = field(default_factory=list)
    row_problem_count: int = 0
    email_policy: EmailPolicy = "sync_and_flag"
    client_username_rule: str = "must be an email address"

    @property
    def any(self) -> bool:
        return bool(self.no_email_count or self.duplicate_email_count
                    or self.duplicate_extension_count or self.row_problem_count)

    def summary(self) -> str:
        """One line for alerts and logs, in the gateway's words."""
        parts = []
        if self.no_email_count:
            parts.append(_users(self.no_email_count) + (
                " doesn't" if self.no_email_count == 1 else " don't") + " have an email address")
        if self.duplicate_email_count:
            parts.append(_users(self.duplicate_email_count) + (
                " does" if self.duplicate_email_count == 1 else " do") +
                " not have a unique email address")
        if self.duplicate_extension_count:
            parts.append(self.shared_extensions_text())
        if self.row_problem_count:
            parts.append(f"{self.row_problem_count} "
                         f"{'row' if self.row_problem_count == 1 else 'rows'} could not be read")
        return "; ".join(parts) or "none"

    def shared_extensions_text(self) -> str:
        """"Extension 1004 is used by 2 users" / "2 extensions are used by more than one
        user: 1004 (2 users), 1010 (3 users)" (named up to ``LIST_LIMIT``)."""
        named = [f"{ext} ({len(keys)} users)" for ext, keys in
                 self.duplicate_extensions.items()]
        if self.duplicate_extension_count == 1 and named:
            ext, keys = next(iter(self.duplicate_extensions.items()))
            return f"extension {ext} is used by {len(keys)} users"
        more = self.duplicate_extension_count - len(named)
        return (f"{self.duplicate_extension_count} extensions are used by more than one "
                f"user: {', '.join(named)}" + (f" and {more} more" if more > 0 else ""))

    def client_usernames_text(self) -> str:
        return (f"{self.invalid_client_usernames} of {self.client_usernames_checked} "
                f"client usernames break the rule: a client username {self.client_username_rule}")

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["invalid_client_usernames_text"] = self.client_usernames_text()
        data["duplicate_extensions_text"] = (self.shared_extensions_text()
                                             if self.duplicate_extension_count else "")
        data["summary"] = self.summary()
        return data


@dataclass
class RuleResult:
    """Users that may sync, and the report about the rest."""

    eligible: list[PbxUser]
    irregularities: Irregularities
    present_keys: set[str]
    """Every key the source returned, eligible or not: a user who merely lost their
    email is still on the PBX and must never be deleted because of it."""
    flags: dict[str, str] = field(default_factory=dict)
    """source key -> ``no_email`` / ``duplicate_email`` for users synced with an email
    problem (``sync_and_flag``)."""


def _client_username(user: PbxUser, opts: ClientUsernameSettings, *,
                     email_ok: bool = True) -> str:
    """``email_ok``: the user's email is valid and unique (it may replace the name)."""
    if opts.replace_with_email and email_ok:
        return user.email.strip().lower()
    name = user.client_username
    if opts.append_domain and name and not is_email(name):
        return f"{name}@{opts.append_domain}"
    return name


def _shared_extensions(users: Sequence[PbxUser]) -> list[tuple[str, list[str]]]:
    """Extensions used by more than one user, with their keys, in first-seen order.
    Counted first: a list per extension would cost 50,000 lists for the rare shared one."""
    counts = Counter(u.extension for u in users if u.extension)
    by_extension: dict[str, list[str]] = {ext: [] for ext, c in counts.items() if c > 1}
    if by_extension:
        for user in users:
            if user.extension in by_extension:
                by_extension[user.extension].append(user.source_key)
    return list(by_extension.items())


def _rule_text(opts: ClientUsernameSettings) -> str:
    rule = "must be an email address"
    if opts.append_domain:
        rule += f" (a name without @ gets @{opts.append_domain})"
    if opts.replace_with_email:
        rule += " (replaced by the user's email where it is valid and unique)"
    return rule


def apply_rules(users: Sequence[PbxUser], problems: Sequence[RowProblem],
                opts: ClientUsernameSettings, *,
                email_problems: EmailPolicy = "sync_and_flag") -> RuleResult:
    """Split users into eligible ones and the irregularity lists."""
    report = Irregularities(email_policy=email_problems, client_username_rule=_rule_text(opts))
    keys = [email_key(u.email) for u in users]
    counts = Counter(k for k in keys if k)
    eligible: list[PbxUser] = []
    flags: dict[str, str] = {}
    hold_back = email_problems == "hold_back"
    for user, key in zip(users, keys, strict=True):
        problem = ""
        if not key:
            problem = "no_email"
            report.no_email_count += 1
            if len(report.no_email) < LIST_LIMIT:
                report.no_email.append(_brief(user))
        elif counts[key] > 1:
            problem = "duplicate_email"
            report.duplicate_email_count += 1
            if len(report.duplicate_email) < LIST_LIMIT:
                report.duplicate_email.append(_brief(user))
        if problem:
            if hold_back:
                continue
            flags[user.source_key] = problem
        client = _client_username(user, opts, email_ok=not problem)
        report.client_usernames_checked += 1
        if not is_email(client):
            report.invalid_client_usernames += 1
        eligible.append(user if client == user.client_username
                        else dataclasses.replace(user, client_username=client))
    shared = _shared_extensions(users)
    report.duplicate_extension_count = len(shared)
    report.duplicate_extensions = dict(shared[:LIST_LIMIT])
    report.row_problem_count = len(problems)
    report.row_problems = [{"row": p.row, "reason": p.reason} for p in problems[:LIST_LIMIT]]
    return RuleResult(eligible, report, {u.source_key for u in users}, flags)
