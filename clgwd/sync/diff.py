"""The diff between one read and the last synced snapshot, with the safety rules.

(The value classes here are plain slotted dataclasses, never mutated after creation;
``frozen=True`` would cost a ``object.__setattr__`` per field on 50,000 objects a run.)

Pure functions on plain data, so every safety rule is tested without a database:

* identity is the source key; an unchanged fingerprint means nothing to send;
* a key that vanished while a new key appeared with the same normalized email in the
  same read is a **move** (an update of the new key), not a delete plus a create;
* a user is deleted only after ``delete_after_absent_reads`` consecutive *complete*
  reads without it; a partial read (rows the connector could not parse) never counts
  an absence;
* too many users missing (``max_missing_ratio``) or too many deletions
  (``max_deletions_per_run``) aborts the whole run: nothing is applied. The users it
  held back (``Plan.missing_keys``, named by ``missing_set_id``) wait for the
  technician: kept (a new baseline) or deleted once (``delete_missing``), never both.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from clgwd.config.pbx import SyncConfig
from clgwd.pbx.model import PbxUser
from clgwd.pbx.normalize import lowered


class Op(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(slots=True)
class SnapshotRow:
    """What the state database remembers about one key."""

    fingerprint: str
    email_key: str
    revision: int
    absent_reads: int
    deleted: bool


@dataclass(slots=True)
class Candidate:
    """One eligible user of this read, with its fingerprint and cloud match key."""

    user: PbxUser
    fingerprint: str
    email_key: str
    email_problem: str = ""
    """``no_email`` / ``duplicate_email`` for a user synced with an email problem (sent
    as ``user.email_problem``); such a user has no match key."""

    def as_json(self) -> dict[str, Any]:
        """The upstream ``user`` object: the user's fields, plus the email problem."""
        data = self.user.as_json()
        if self.email_problem:
            data["email_problem"] = self.email_problem
        return data


def fingerprint(user: PbxUser) -> str:
    """Hash of every synced field (those of ``PbxUser.as_json``, never ``raw``).

    Built from joined strings rather than the JSON: a re-sync of 50,000 unchanged users
    then serializes nothing at all. Separators are ASCII control characters, which
    ``normalize.text`` removes from values, so two different users cannot join to the
    same string.
    """
    if len(user.devices) == 1:  # the common case, without a generator
        d = user.devices[0]
        devices = "\x1d".join((d.kind, d.model, d.mac, d.port_id, d.sip_user))
    else:
        devices = "\x1e".join("\x1d".join((d.kind, d.model, d.mac, d.port_id, d.sip_user))
                              for d in user.devices)
    blob = "\x1f".join((
        user.source_key, user.extension, user.first_name, user.last_name, user.display_name,
        user.email, user.client_username, "\x1e".join(user.dids), user.caller_id, devices,
        "\x1e".join(user.groups), user.department, user.location, user.language,
        "1" if user.enabled else "0"))
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def prepare(user: PbxUser, email_problem: str = "") -> Candidate:
    """For an eligible user, whose email the rules already validated: its match key is
    just the trimmed lower-case form (no second regex pass over 50,000 addresses). The
    fingerprint is computed once per user object. A user synced with an email problem
    has no match key, and the problem is part of its fingerprint (so the cloud hears
    when it is fixed)."""
    digest = user.cached_fingerprint
    if not digest:
        digest = fingerprint(user)
        # The documented cache slot of an immutable user (see PbxUser.cached_fingerprint).
        object.__setattr__(user, "cached_fingerprint", digest)
    if email_problem:
        flagged = hashlib.blake2b(f"{digest}\x1f{email_problem}".encode(), digest_size=16)
        return Candidate(user, flagged.hexdigest(), "", email_problem)
    return Candidate(user, digest, lowered(user.email.strip()))


@dataclass(slots=True)
class Change:
    """One change to queue. ``previous_key`` is set for a move."""

    op: Op
    source_key: str
    revision: int
    fingerprint: str
    candidate: Candidate | None = None
    previous_key: str | None = None


@dataclass
class Plan:
    """What a run would do. ``abort_reason`` set means: apply nothing."""

    changes: list[Change] = field(default_factory=list)
    absent: dict[str, int] = field(default_factory=dict)
    """Keys still absent but not yet deleted -> their new consecutive-absence count."""
    returned: list[str] = field(default_factory=list)
    """Keys that had been absent and are back (their counter resets)."""
    missing: int = 0
    missing_keys: list[str] = field(default_factory=list)
    """Synced keys absent from this read (moves excluded), sorted: what a safety abort
    holds back and what "Delete them once" deletes."""
    active_before: int = 0
    abort_reason: str | None = None
    would_abort: str | None = None
    """With ``delete_missing``: the abort the same read would hit without it (so a
    refused confirmation can still record the abort of the set the read found)."""

    def count(self, op: Op) -> int:
        return sum(1 for c in self.changes if c.op == op)

    @property
    def moves(self) -> int:
        return sum(1 for c in self.changes if c.previous_key is not None)


def _moves(candidates: Mapping[str, Candidate], snapshot: Mapping[str, SnapshotRow],
           missing: list[str], new_keys: list[str]) -> dict[str, str]:
    """new key -> vanished key, where the normalized email identifies one user on both
    sides (an email shared by two vanished or two new users is ambiguous: no move)."""
    if not missing or not new_keys:
        return {}  # a first sync (nothing vanished) counts no emails
    gone = Counter(snapshot[k].email_key for k in missing if snapshot[k].email_key)
    came = Counter(candidates[k].email_key for k in new_keys)
    by_email = {snapshot[k].email_key: k for k in missing
                if snapshot[k].email_key and gone[snapshot[k].email_key] == 1}
    return {k: by_email[candidates[k].email_key] for k in new_keys
            if came[candidates[k].email_key] == 1 and candidates[k].email_key in by_email}


def missing_set_id(source_id: str, keys: Sequence[str]) -> str:
    """The name of one set of missing users: what the page shows and the technician
    confirms. The same set always has the same id, so an abort repeated by the schedule
    does not invalidate what is on screen, while any change to the set does."""
    digest = hashlib.blake2b(source_id.encode(), digest_size=8)
    for key in sorted(keys):
        raw = key.encode()
        digest.update(b"%d:%s" % (len(raw), raw))  # length-prefixed: no two sets join alike
    return digest.hexdigest()


def plan_changes(candidates: Mapping[str, Candidate], present_keys: set[str],
                 snapshot: Mapping[str, SnapshotRow], *, complete: bool,
                 rules: SyncConfig, delete_missing: bool = False) -> Plan:
    """Compute the changes of one read against the snapshot and apply the safety rules.

    ``delete_missing`` ("Delete them once", confirmed by the technician): every missing
    user is deleted now, whatever its absence count, and the safety rules are not
    checked. The caller checks that ``missing_keys`` is the set that was confirmed."""
    active = {k: r for k, r in snapshot.items() if not r.deleted}
    plan = Plan(active_before=len(active))
    missing = [k for k in active if k not in present_keys]
    new_keys = [k for k in candidates if k not in active]
    moves = _moves(candidates, active, missing, new_keys)
    for key in new_keys:
        cand = candidates[key]
        old = moves.get(key)
        base = snapshot[key].revision if key in snapshot else 0
        if old is not None:
            base = max(base, active[old].revision)
        plan.changes.append(Change(Op.UPDATE if old else Op.CREATE, key, base + 1,
                                   cand.fingerprint, cand, old))
    for key, cand in candidates.items():
        row = active.get(key)
        if row is None:
            continue
        if row.fingerprint != cand.fingerprint:
            plan.changes.append(Change(Op.UPDATE, key, row.revision + 1, cand.fingerprint, cand))
        elif row.absent_reads:
            plan.returned.append(key)
    moved = set(moves.values())
    still_missing = [k for k in missing if k not in moved]
    plan.missing = len(still_missing)
    plan.missing_keys = sorted(still_missing)
    if delete_missing:
        _delete_all_missing(plan, active, complete=complete, rules=rules)
    elif complete:
        _plan_absences(plan, active, still_missing, rules)
    for key in present_keys:
        row = active.get(key)
        if row is not None and row.absent_reads and key not in candidates:
            plan.returned.append(key)  # present again, though not eligible right now
    if not delete_missing:
        _check_safety(plan, rules)
    return plan


def _delete_all_missing(plan: Plan, active: Mapping[str, SnapshotRow], *, complete: bool,
                        rules: SyncConfig) -> None:
    """"Delete them once": every missing user now; ``would_abort`` keeps the verdict
    the safety rules give the same read without the confirmation."""
    normal = Plan(changes=list(plan.changes), missing=plan.missing,
                  active_before=plan.active_before)
    if complete:
        _plan_absences(normal, active, plan.missing_keys, rules)
    _check_safety(normal, rules)
    plan.would_abort = normal.abort_reason
    for key in plan.missing_keys:
        row = active[key]
        plan.changes.append(Change(Op.DELETE, key, row.revision + 1, row.fingerprint))


def _plan_absences(plan: Plan, active: Mapping[str, SnapshotRow], missing: list[str],
                   rules: SyncConfig) -> None:
    for key in missing:
        row = active[key]
        reads = row.absent_reads + 1
        if reads >= rules.delete_after_absent_reads:
            plan.changes.append(Change(Op.DELETE, key, row.revision + 1, row.fingerprint))
        else:
            plan.absent[key] = reads


def _check_safety(plan: Plan, rules: SyncConfig) -> None:
    if (plan.active_before and plan.missing >= max(1, rules.missing_ratio_min_users)
            and plan.missing / plan.active_before > rules.max_missing_ratio):
        plan.abort_reason = (
            f"{plan.missing} of {plan.active_before} synced users are missing from the "
            f"PBX read, more than {rules.max_missing_ratio:.0%} at once "
            f"(sync.max_missing_ratio {rules.max_missing_ratio:g}); nothing was changed")
        return
    deletes = plan.count(Op.DELETE)
    if deletes > rules.max_deletions_per_run:
        plan.abort_reason = (
            f"{deletes} users would be deleted, more than {rules.max_deletions_per_run} in "
            f"one sync (sync.max_deletions_per_run); nothing was changed")


def changed_fields(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """Names of fields whose value differs (all fields when there is no old value)."""
    if old is None:
        return list(new)
    return [name for name, value in new.items() if old.get(name) != value] + [
        name for name in old if name not in new]
