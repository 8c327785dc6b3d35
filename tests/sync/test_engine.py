"""The sync engine against a real state database: contract, safety, history, alerts."""

from __future__ import annotations

import dataclasses
import gc
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from clgwd.config import parse_config
from clgwd.config.pbx import SyncConfig
from clgwd.pbx.model import RowProblem, SourceAuthError, SourceRead, SourceUnreachable
from clgwd.store import Action, EventFilter, Store, events_to_csv
from clgwd.sync.engine import SyncEngine, cyclic_gc_paused
from clgwd.sync.records import ASSET_DID, ASSET_PHONE, ASSET_USER
from tests.sync.helpers import FakeSource, user, users


@pytest.fixture
async def store(state_dir: Path) -> AsyncIterator[Store]:
    config = parse_config(f"state: {{dir: {state_dir}}}\n")
    async with Store(config) as opened:
        yield opened


def engine(store: Store, source: FakeSource, **rules: Any) -> SyncEngine:
    return SyncEngine(store, source, "pbx1", SyncConfig(**rules), read_timeout=5)


async def records(store: Store, kind: str) -> list[dict[str, Any]]:
    """Payloads of ``kind`` in seq order; for ``event``, batched events count too."""
    kinds = (kind, "event.batch") if kind == "event" else (kind,)
    rows = await store.db.fetchall(
        f"SELECT kind, payload FROM outbox WHERE kind IN ({','.join('?' * len(kinds))})"
        " ORDER BY seq", kinds)
    out: list[dict[str, Any]] = []
    for r in rows:
        payload = json.loads(r["payload"])
        out += payload["events"] if r["kind"] == "event.batch" else [payload]
    return out


async def snapshot_keys(store: Store) -> set[str]:
    rows = await store.db.fetchall("SELECT source_key FROM sync_snapshot WHERE deleted = 0")
    return {r[0] for r in rows}


async def alert_codes(store: Store) -> set[str]:
    return {a.code for a in await store.alerts.active()}


async def test_first_sync_queues_creates_in_the_contract_shape(store: Store) -> None:
    """Each user is one user.change record with exactly the agreed keys, plus sync.result."""
    out = await engine(store, FakeSource(users(3))).run(actor="System", trigger="schedule")
    assert out.result == "ok" and out.counts["created"] == 3
    changes = await records(store, "user.change")
    assert len(changes) == 3
    first = changes[0]
    assert set(first) == {"op", "source_id", "source_key", "fingerprint", "user", "changed"}
    assert (first["op"], first["source_id"], first["source_key"]) == ("create", "pbx1", "u1")
    assert first["user"]["email"] == "u1@example.com"
    assert "raw" not in first["user"]
    (result,) = await records(store, "sync.result")
    assert result["counts"]["created"] == 3 and result["result"] == "ok"
    events = await records(store, "event")
    assert len(events) == 3
    assert set(events[0]) == {"id", "at", "actor", "action", "asset", "subject",
                              "properties_changed", "core", "extra"}
    assert (events[0]["action"], events[0]["asset"], events[0]["properties_changed"]) == (
        "Create", "PBX User Profile", [])
    assert events[0]["core"]["devices"] == ["00:08:5D:00:00:01"]
    assert events[0]["extra"] == {"source_id": "pbx1"}


async def test_resync_without_change_queues_only_the_result(store: Store) -> None:
    source = FakeSource(users(5))
    eng = engine(store, source)
    await eng.run(actor="System", trigger="schedule")
    out = await eng.run(actor="System", trigger="schedule")
    assert out.counts["unchanged"] == 5
    assert len(await records(store, "user.change")) == 5
    assert len(await records(store, "sync.result")) == 2


async def test_update_lists_changed_fields_and_records_phone_and_did_events(
        store: Store) -> None:
    """A changed MAC and a new DID: one update; history has user, Phone and DID events."""
    source = FakeSource(users(2))
    eng = engine(store, source)
    await eng.run(actor="System", trigger="schedule")
    source.users[1] = dataclasses.replace(source.users[1], devices=(), dids=("+14085550002",))
    await eng.run(actor="local:cli", trigger="now")
    update = (await records(store, "user.change"))[-1]
    assert update["op"] == "update" and update["source_key"] == "u2"
    assert update["changed"] == ["dids", "devices"]
    edits = await store.history.query(EventFilter(action=Action.EDIT))
    assert {e.asset for e in edits} == {ASSET_USER, ASSET_PHONE, ASSET_DID}
    assert all(e.actor == "local:cli" for e in edits)


async def test_history_is_filterable_and_exports_csv(store: Store) -> None:
    await engine(store, FakeSource(users(2))).run(actor="System", trigger="schedule")
    created = await store.history.query(EventFilter(asset=ASSET_USER, action=Action.CREATE))
    assert len(created) == 2
    assert created[0].core["extension"] in {"1", "2"}
    csv_text = events_to_csv(created)
    assert csv_text.splitlines()[0].startswith("Event ID,Date,Actor,Action,Asset")
    assert "PBX User Profile" in csv_text


async def test_failed_read_never_deletes_and_raises_an_alert(store: Store) -> None:
    """Source down: run failed, snapshot intact, alert raised; cleared on the next success."""
    source = FakeSource(users(4))
    eng = engine(store, source)
    await eng.run(actor="System", trigger="schedule")
    source.error = SourceUnreachable("mysql://x: connection lost during the read")
    for _ in range(3):
        out = await eng.run(actor="System", trigger="schedule")
        assert out.result == "failed"
    assert await snapshot_keys(store) == {"u1", "u2", "u3", "u4"}
    assert "pbx.unreachable" in await alert_codes(store)
    source.error = None
    assert (await eng.run(actor="System", trigger="schedule")).result == "ok"
    assert "pbx.unreachable" not in await alert_codes(store)


async def test_auth_failure_raises_a_critical_alert(store: Store) -> None:
    source = FakeSource(users(1))
    source.error = SourceAuthError("bind refused")
    out = await engine(store, source).run(actor="System", trigger="schedule")
    assert out.error_code == "pbx_auth_failed"
    (alert,) = await store.alerts.active()
    assert (alert.code, alert.severity.value) == ("pbx.auth_failed", "critical")


async def test_zero_users_is_an_error_unless_allowed(store: Store) -> None:
    """0 users returned: failed run, nobody deleted; with allow_empty_read it deletes."""
    source = FakeSource(users(3))
    await engine(store, source).run(actor="System", trigger="schedule")
    source.users = []
    out = await engine(store, source).run(actor="System", trigger="schedule")
    assert out.result == "failed" and out.error_code == "pbx_empty_read"
    assert await snapshot_keys(store) == {"u1", "u2", "u3"}
    assert "sync.empty_read" in await alert_codes(store)
    allowed = engine(store, source, allow_empty_read=True, max_missing_ratio=1.0)
    await allowed.run(actor="System", trigger="schedule")
    await allowed.run(actor="System", trigger="schedule")
    assert await snapshot_keys(store) == set()


async def test_deletion_after_two_absences_then_queued_once(store: Store) -> None:
    source = FakeSource(users(10))
    eng = engine(store, source)
    await eng.run(actor="System", trigger="schedule")
    source.users = source.users[:9]
    first = await eng.run(actor="System", trigger="schedule")
    assert first.counts["deleted"] == 0 and first.counts["absent_pending_delete"] == 1
    second = await eng.run(actor="System", trigger="schedule")
    assert second.counts["deleted"] == 1
    deletes = [r for r in await records(store, "user.change") if r["op"] == "delete"]
    assert len(deletes) == 1 and "user" not in deletes[0] and deletes[0]["source_key"] == "u10"
    await eng.run(actor="System", trigger="schedule")
    assert len([r for r in await records(store, "user.change") if r["op"] == "delete"]) == 1


async def test_returning_user_resets_the_absence_count(store: Store) -> None:
    """Absent, back, absent again: the count restarts, so deletion still needs two
    consecutive complete reads without the user."""
    source = FakeSource(users(10))
    eng = engine(store, source)
    await eng.run(actor="System", trigger="schedule")
    for present in (9, 10, 9):
        source.users = users(present)
        out = await eng.run(actor="System", trigger="schedule")
        assert out.counts["deleted"] == 0, present
    assert "u10" in await snapshot_keys(store)
    out = await eng.run(actor="System", trigger="schedule")
    assert out.counts["deleted"] == 1 and "u10" not in await snapshot_keys(store)


async def test_partial_read_does_not_delete(store: Store) -> None:
    """A malformed row makes the read partial: absent users are kept."""
    source = FakeSource(users(10))
    eng = engine(store, source)
    await eng.run(actor="System", trigger="schedule")
    source.users = source.users[:9]
    source.problems = [RowProblem("line 11", "has 3 fields, header has 16")]
    for _ in range(3):
        out = await eng.run(actor="System", trigger="schedule")
        assert out.counts["deleted"] == 0
    assert "u10" in await snapshot_keys(store)


async def test_safety_abort_changes_nothing_and_alerts(store: Store) -> None:
    source = FakeSource(users(20))
    eng = engine(store, source)
    await eng.run(actor="System", trigger="schedule")
    source.users = [dataclasses.replace(u, first_name="X") for u in source.users[:5]]
    out = await eng.run(actor="System", trigger="schedule")
    assert out.result == "aborted"
    assert len(await records(store, "user.change")) == 20  # no updates queued either
    assert "sync.safety_abort" in await alert_codes(store)
    row = await store.db.fetchone("SELECT max(absent_reads) FROM sync_snapshot")
    assert row is not None and row[0] == 0


async def test_move_is_an_update_and_the_old_key_a_tombstone(store: Store) -> None:
    """LDAP entry re-created with a new UUID: update of the new key, nothing deleted."""
    source = FakeSource(users(3))
    eng = engine(store, source)
    await eng.run(actor="System", trigger="schedule")
    source.users[0] = dataclasses.replace(source.users[0], source_key="fresh-uuid")
    out = await eng.run(actor="System", trigger="schedule")
    assert out.counts["moved"] == 1 and out.counts["deleted"] == 0
    change = (await records(store, "user.change"))[-1]
    assert (change["op"], change["source_key"], change["changed"]) == (
        "update", "fresh-uuid", ["source_key"])
    assert await snapshot_keys(store) == {"fresh-uuid", "u2", "u3"}


async def test_rerun_after_a_crash_does_not_double(store: Store, monkeypatch: Any) -> None:
    """A crash inside the transaction commits nothing; the re-run queues each change once."""
    source = FakeSource(users(4))
    eng = engine(store, source)

    async def crash(*args: Any) -> None:
        raise RuntimeError("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(eng, "_log_run", crash)
        with pytest.raises(RuntimeError):
            await eng.run(actor="System", trigger="schedule")
    assert await records(store, "user.change") == []
    assert await snapshot_keys(store) == set()
    await eng.run(actor="System", trigger="schedule")
    await eng.run(actor="System", trigger="schedule")
    keys = await store.db.fetchall("SELECT idempotency_key FROM outbox WHERE kind='user.change'")
    assert sorted(r[0] for r in keys) == [f"user.change:pbx1:u{i}:1" for i in range(1, 5)]


async def test_preview_writes_nothing(store: Store) -> None:
    out = await engine(store, FakeSource(users(3))).run(actor="local:cli", trigger="preview",
                                                        preview=True)
    assert out.result == "preview" and len(out.changes) == 3
    assert out.changes[0]["op"] == "create"
    assert await store.outbox.depth() == 0
    assert await snapshot_keys(store) == set()


async def test_irregularities_alert_raised_and_cleared(store: Store) -> None:
    source = FakeSource([user("u1"), user("u2", email="")])
    eng = engine(store, source)
    out = await eng.run(actor="System", trigger="schedule")
    assert out.irregularities["no_email_count"] == 1
    assert "sync.irregularities" in await alert_codes(store)
    source.users[1] = user("u2")
    await eng.run(actor="System", trigger="schedule")
    assert "sync.irregularities" not in await alert_codes(store)


async def test_one_percent_change_is_under_two_percent_of_bytes(store: Store) -> None:
    """Only changes go upstream: 1 % changed users cost <= 2 % of the first upload."""
    source = FakeSource(users(1000))
    eng = engine(store, source)
    await eng.run(actor="System", trigger="schedule")
    row = await store.db.fetchone("SELECT sum(length(payload)), max(seq) FROM outbox")
    assert row is not None
    full, last_seq = row[0], row[1]
    for i in range(0, 1000, 100):
        source.users[i] = dataclasses.replace(source.users[i], department="Moved")
    await eng.run(actor="System", trigger="schedule")
    row = await store.db.fetchone("SELECT sum(length(payload)) FROM outbox WHERE seq > ?",
                                  (last_seq,))
    assert row is not None and row[0] <= 0.02 * full


async def test_read_timeout_fails_the_run_without_deleting(store: Store) -> None:
    """A source slower than read_timeout: failed run (pbx_timeout), snapshot intact."""
    source = FakeSource(users(3))
    await engine(store, source).run(actor="System", trigger="schedule")
    source.users, source.delay = [], 2.0
    slow = SyncEngine(store, source, "pbx1", SyncConfig(allow_empty_read=True),
                      read_timeout=0.2)
    out = await slow.run(actor="System", trigger="schedule")
    assert (out.result, out.error_code) == ("failed", "pbx_timeout")
    assert await snapshot_keys(store) == {"u1", "u2", "u3"}


async def test_changes_spanning_several_chunks_are_all_written(store: Store) -> None:
    """2,500 creates then 2,500 updates (more than one apply chunk): every change is
    queued once, with its own changed fields and history entry."""
    source = FakeSource(users(2500))
    eng = engine(store, source)
    await eng.run(actor="System", trigger="schedule")
    source.users = [dataclasses.replace(u, location="HQ") for u in source.users]
    out = await eng.run(actor="System", trigger="schedule")
    assert out.counts["updated"] == 2500
    updates = [r for r in await records(store, "user.change") if r["op"] == "update"]
    assert len(updates) == 2500 and all(r["changed"] == ["location"] for r in updates)
    row = await store.db.fetchone("SELECT count(*), count(DISTINCT id) FROM events")
    assert row is not None and tuple(row) == (5000, 5000)


async def test_cyclic_gc_is_paused_during_a_run_and_restored(store: Store) -> None:
    """The sync pauses the cyclic collector (a CPU saving) and always restores it, on
    success and on a failed read alike; nested pauses restore only at the outermost."""
    seen: list[bool] = []

    class Watching(FakeSource):
        async def read_users(self) -> SourceRead:
            seen.append(gc.isenabled())
            return await super().read_users()

    assert gc.isenabled()
    ok = engine(store, Watching(users(3)))
    assert (await ok.run(actor="t", trigger="now")).result == "ok"
    broken = Watching(users(3))
    broken.error = SourceUnreachable("down")
    failing = engine(store, broken)
    assert (await failing.run(actor="t", trigger="now")).result == "failed"
    assert seen == [False, False] and gc.isenabled()
    with cyclic_gc_paused():
        with cyclic_gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


async def test_a_user_with_an_email_problem_syncs_flagged_until_fixed(store: Store) -> None:
    """sync_and_flag: the user is created with user.email_problem; fixing the email on
    the PBX is an update that drops the flag (listed in ``changed``)."""
    source = FakeSource([user("u1"), user("u2", email="")])
    eng = engine(store, source)
    out = await eng.run(actor="System", trigger="schedule")
    assert out.counts["created"] == 2
    created = {c["source_key"]: c["user"] for c in await records(store, "user.change")}
    assert created["u2"]["email_problem"] == "no_email"
    assert "email_problem" not in created["u1"]
    source.users = [user("u1"), user("u2")]
    out = await eng.run(actor="System", trigger="schedule")
    assert out.counts["updated"] == 1
    update = (await records(store, "user.change"))[-1]
    assert update["source_key"] == "u2" and "email_problem" not in update["user"]
    assert sorted(update["changed"]) == ["email", "email_problem"]


async def test_hold_back_keeps_users_with_email_problems_out(store: Store) -> None:
    """hold_back: a user without an email is listed but never queued."""
    out = await engine(store, FakeSource([user("u1"), user("u2", email="")]),
                       email_problems="hold_back").run(actor="System", trigger="schedule")
    assert out.counts["created"] == 1
    assert [c["source_key"] for c in await records(store, "user.change")] == ["u1"]
