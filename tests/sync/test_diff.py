"""The diff and its safety rules, on plain data (no database)."""

from __future__ import annotations

import dataclasses

from clgwd.config.pbx import SyncConfig
from clgwd.pbx.model import PbxUser
from clgwd.sync.diff import Op, SnapshotRow, missing_set_id, plan_changes, prepare
from tests.sync.helpers import user, users

RULES = SyncConfig()


def snap(us: list[PbxUser], absent: int = 0) -> dict[str, SnapshotRow]:
    out = {}
    for u in us:
        c = prepare(u)
        out[u.source_key] = SnapshotRow(c.fingerprint, c.email_key, 1, absent, False)
    return out


def plan(current: list[PbxUser], snapshot: dict[str, SnapshotRow], *, complete: bool = True,
         rules: SyncConfig = RULES, present: set[str] | None = None):  # type: ignore[no-untyped-def]
    cands = {u.source_key: prepare(u) for u in current}
    keys = present if present is not None else set(cands)
    return plan_changes(cands, keys, snapshot, complete=complete, rules=rules)


def test_first_read_creates_everyone() -> None:
    p = plan(users(3), {})
    assert [c.op for c in p.changes] == [Op.CREATE] * 3
    assert all(c.revision == 1 for c in p.changes)


def test_unchanged_users_produce_nothing() -> None:
    current = users(5)
    assert plan(current, snap(current)).changes == []


def test_a_changed_field_is_one_update() -> None:
    before = users(3)
    after = [*before[:2], dataclasses.replace(before[2], first_name="Renamed")]
    p = plan(after, snap(before))
    assert [(c.op, c.source_key, c.revision) for c in p.changes] == [(Op.UPDATE, "u3", 2)]


def test_absent_user_is_deleted_only_after_two_complete_reads() -> None:
    """Default delete_after_absent_reads=2: first absence counts, the second deletes."""
    before = users(10)
    first = plan(before[:9], snap(before))
    assert first.changes == [] and first.absent == {"u10": 1}
    second = plan(before[:9], {**snap(before[:9]), **snap(before[9:], absent=1)})
    assert [(c.op, c.source_key) for c in second.changes] == [(Op.DELETE, "u10")]


def test_partial_read_never_counts_absences_or_deletes() -> None:
    """A read with unparseable rows (complete=False) leaves absent users alone."""
    before = users(10)
    p = plan(before[:9], {**snap(before[:9]), **snap(before[9:], absent=1)}, complete=False)
    assert p.changes == [] and p.absent == {}


def test_returning_user_resets_its_absence() -> None:
    before = users(3)
    p = plan(before, {**snap(before[:2]), **snap(before[2:], absent=1)})
    assert p.changes == [] and p.returned == ["u3"]


def test_user_present_but_ineligible_is_not_deleted() -> None:
    """A user who lost their email is still on the PBX: no delete, no absence."""
    before = users(3)
    p = plan(before[:2], snap(before), present={"u1", "u2", "u3"})
    assert p.changes == [] and p.absent == {}


def test_move_same_email_new_key_is_an_update() -> None:
    """LDAP entry re-created with a new UUID (same email): one update, no delete/create."""
    before = users(3)
    moved = dataclasses.replace(before[1], source_key="new-uuid")
    p = plan([before[0], moved, before[2]], snap(before))
    assert [(c.op, c.source_key, c.previous_key) for c in p.changes] == [
        (Op.UPDATE, "new-uuid", "u2")]
    assert p.missing == 0


def test_renumbered_user_keyed_by_extension_is_a_move() -> None:
    """A source keyed by extension (CSV without key): new extension, same email = move."""
    old = user("1001", ext="1001", email="ann@x.com")
    new = user("2001", ext="2001", email="ann@x.com")
    p = plan([new], snap([old]))
    assert [(c.op, c.previous_key) for c in p.changes] == [(Op.UPDATE, "1001")]


def test_ambiguous_move_is_not_guessed() -> None:
    """Two new keys with the email of one vanished key: create both, no move."""
    old = user("a", email="x@x.com")
    p = plan([user("b", email="x@x.com"), user("c", email="x@x.com")], snap([old]))
    assert {c.op for c in p.changes} == {Op.CREATE}


def test_too_many_missing_aborts() -> None:
    """More than max_missing_ratio of synced users missing aborts the run."""
    before = users(20)
    p = plan(before[:10], snap(before))
    assert p.abort_reason is not None and "10 of 20" in p.abort_reason


def test_small_loss_below_min_users_is_not_a_ratio_abort() -> None:
    """Losing 1 of 2 users (50 %) is allowed: fewer than missing_ratio_min_users."""
    before = users(2)
    assert plan(before[:1], snap(before)).abort_reason is None


def test_too_many_deletions_aborts() -> None:
    """More deletions than max_deletions_per_run aborts the whole run."""
    rules = SyncConfig(max_deletions_per_run=2, max_missing_ratio=1.0)
    before = users(10)
    p = plan(before[:7], {**snap(before[:7]), **snap(before[7:], absent=1)}, rules=rules)
    assert p.count(Op.DELETE) == 3
    assert p.abort_reason is not None and "max_deletions_per_run" in p.abort_reason


def test_recreated_key_after_delete_continues_its_revision() -> None:
    """A tombstoned key that comes back is created with a revision above the old one."""
    u = user("u1")
    tomb = {"u1": SnapshotRow("old", "u1@example.com", 4, 0, True)}
    (change,) = plan([u], tomb).changes
    assert (change.op, change.revision) == (Op.CREATE, 5)


def test_abort_names_the_missing_keys_sorted() -> None:
    """The abort keeps which users it held back (what the page lists)."""
    before = users(20)
    p = plan(before[10:], snap(before))
    assert p.abort_reason is not None and "more than 20% at once" in p.abort_reason
    assert p.missing_keys == sorted(u.source_key for u in before[:10])


def test_delete_missing_deletes_every_missing_user_now() -> None:
    """Confirmed: each missing user is deleted in this run (even on its first absence),
    no safety abort; ``would_abort`` still says what the rules would have said."""
    before = users(20)
    cands = {u.source_key: prepare(u) for u in before[10:]}
    p = plan_changes(cands, set(cands), snap(before), complete=True, rules=RULES,
                     delete_missing=True)
    assert p.abort_reason is None and p.would_abort is not None
    assert sorted(c.source_key for c in p.changes if c.op == Op.DELETE) == p.missing_keys
    assert len(p.missing_keys) == 10 and p.absent == {}
    assert all(c.revision == 2 for c in p.changes)


def test_the_set_id_depends_on_the_set_only() -> None:
    """Same keys in any order: same id; one key more or another source: another id."""
    assert missing_set_id("pbx", ["b", "a"]) == missing_set_id("pbx", ["a", "b"])
    assert missing_set_id("pbx", ["a", "b"]) != missing_set_id("pbx", ["a", "b", "c"])
    assert missing_set_id("pbx", ["a"]) != missing_set_id("other", ["a"])
    assert missing_set_id("pbx", ["a\x1fb"]) != missing_set_id("pbx", ["a", "b"])


def test_an_email_problem_is_part_of_the_fingerprint() -> None:
    """A flagged user fingerprints differently, has no match key, and says why."""
    u = user("u1", email="")
    flagged, plain = prepare(u, "no_email"), prepare(u)
    assert flagged.fingerprint != plain.fingerprint and flagged.email_key == ""
    assert flagged.as_json()["email_problem"] == "no_email"
    assert "email_problem" not in plain.as_json()
