"""The way out of a sync safety abort: the held-back set, keep, delete once, staleness."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from clgwd.commands import CallerRefused, CommandContext, CommandRouter
from clgwd.store import EventFilter, Store
from clgwd.sync import missing
from clgwd.sync.component import SyncService
from clgwd.sync.diff import missing_set_id
from clgwd.sync.missing import DeleteConfirmation, NothingMissing, StaleSet, WrongCount
from tests.sync.helpers import CSV, FakeSource, config, users, with_fake

WEB = CommandContext("local:web:admin")


@pytest.fixture
async def aborted(store: Store, state_dir: Path
                  ) -> AsyncIterator[tuple[SyncService, FakeSource, CommandRouter]]:
    """20 users synced, then a read without u1..u8: the sync aborts (40 % missing)."""
    router = CommandRouter()
    cfg = config(state_dir, f"pbx: {{type: csv, file: {{path: {CSV}}}}}\n")
    async with SyncService(cfg, store, router) as svc:
        source = with_fake(svc, FakeSource(users(20)))
        assert (await svc.sync(actor="System")).result == "ok"
        source.users = users(12, start=9)
        out = await svc.sync(actor="System")
        assert out.result == "aborted"
        yield svc, source, router


async def change_ops(store: Store) -> list[tuple[str, str]]:
    rows = await store.db.fetchall("SELECT payload FROM outbox WHERE kind = 'user.change'"
                                   " ORDER BY seq")
    return [(json.loads(r[0])["op"], json.loads(r[0])["source_key"]) for r in rows]


async def active_keys(store: Store) -> set[str]:
    rows = await store.db.fetchall("SELECT source_key FROM sync_snapshot WHERE deleted = 0")
    return {r[0] for r in rows}


async def test_abort_stores_the_held_back_set_with_a_stable_id(
        aborted: tuple[SyncService, FakeSource, CommandRouter], store: Store) -> None:
    """The abort names the 8 missing users; aborting again keeps the same set id."""
    svc, _, router = aborted
    got = await router.call("sync.missing.get", {"limit": 5}, WEB)
    assert got["pending"] and got["count"] == 8 and got["active"] == 20
    assert got["set_id"] == missing_set_id("csv", [f"u{i}" for i in range(1, 9)])
    assert [u["source_key"] for u in got["users"]] == ["u1", "u2", "u3", "u4", "u5"]
    assert got["users"][0]["email"] == "u1@example.com"
    second = await router.call("sync.missing.get", {"offset": 5, "limit": 5}, WEB)
    assert [u["source_key"] for u in second["users"]] == ["u6", "u7", "u8"]
    again = await svc.sync(actor="System")
    assert again.result == "aborted" and again.safety_abort is not None
    assert again.safety_abort["set_id"] == got["set_id"]


async def test_preview_shows_the_same_abort(
        aborted: tuple[SyncService, FakeSource, CommandRouter]) -> None:
    """The preview no longer contradicts the abort: it carries the same abort and set."""
    _, _, router = aborted
    preview = await router.call("sync.preview", {}, WEB)
    held = await router.call("sync.missing.get", {}, WEB)
    assert preview["error_code"] == "sync_safety_abort"
    assert preview["safety_abort"]["set_id"] == held["set_id"]
    assert preview["safety_abort"]["count"] == 8


async def test_keep_makes_the_read_the_new_baseline_and_deletes_nothing(
        aborted: tuple[SyncService, FakeSource, CommandRouter], store: Store) -> None:
    """Keep: no delete is queued, the alert clears, the next sync is ok, history says who."""
    svc, _, router = aborted
    set_id = (await router.call("sync.missing.get", {}, WEB))["set_id"]
    before = await change_ops(store)
    kept = await router.call("sync.missing.keep", {"set_id": set_id}, WEB)
    assert kept == {"kept": 8, "set_id": set_id}
    assert "sync.safety_abort" not in {a.code for a in await store.alerts.active()}
    assert await active_keys(store) == {f"u{i}" for i in range(9, 21)}
    out = await svc.sync(actor="System")
    assert out.result == "ok" and out.counts["deleted"] == 0 and out.counts["missing"] == 0
    assert await change_ops(store) == before  # nothing deleted upstream
    events = await store.history.query(EventFilter(asset=missing.ASSET))
    assert [(e.actor, e.core["count"]) for e in events] == [("local:web:admin", 8)]
    assert not (await router.call("sync.missing.get", {}, WEB))["pending"]


async def test_keep_runs_the_next_sync_at_once(store: Store, state_dir: Path) -> None:
    """After Keep the schedule does not wait an interval: the new baseline is read now."""
    cfg = config(state_dir, f"pbx: {{type: csv, file: {{path: {CSV}}}}}\n")
    async with SyncService(cfg, store) as svc:
        source = with_fake(svc, FakeSource(users(20)))
        await svc.sync(actor="System")
        source.users = users(12, start=9)
        await svc.sync(actor="System")
        async with asyncio.TaskGroup() as group:
            loop = group.create_task(svc.run(), name="clgwd[sync].test")
            await asyncio.sleep(0.05)
            reads = source.reads
            await svc.keep_missing(actor="local:cli", set_id=None)
            for _ in range(100):
                if svc.last is not None and svc.last["result"] == "ok":
                    break
                await asyncio.sleep(0.02)
            loop.cancel()
        assert source.reads > reads and svc.last is not None and svc.last["result"] == "ok"


async def test_delete_once_deletes_exactly_the_set_audited(
        aborted: tuple[SyncService, FakeSource, CommandRouter], store: Store) -> None:
    """Delete once: 8 deletes through the outbox, per-user history and one audit event."""
    _, _, router = aborted
    set_id = (await router.call("sync.missing.get", {}, WEB))["set_id"]
    out = await router.call("sync.missing.delete", {"set_id": set_id, "confirm": 8}, WEB)
    assert out["result"] == "ok" and out["counts"]["deleted"] == 8
    assert out["trigger"] == "confirmed_delete" and out["actor"] == "local:web:admin"
    deletes = sorted(k for op, k in await change_ops(store) if op == "delete")
    assert deletes == sorted(f"u{i}" for i in range(1, 9))
    audit = await store.history.query(EventFilter(asset=missing.ASSET))
    assert [(e.action.value, e.actor, e.core["count"]) for e in audit] == [
        ("Delete", "local:web:admin", 8)]
    per_user = await store.history.query(EventFilter(asset="PBX User Profile"))
    assert sum(1 for e in per_user if e.action.value == "Delete") == 8
    assert "sync.safety_abort" not in {a.code for a in await store.alerts.active()}
    with pytest.raises(NothingMissing):  # once: the set is gone
        await router.call("sync.missing.delete", {"set_id": set_id, "confirm": 8}, WEB)


async def test_delete_once_with_the_wrong_number_deletes_nothing(
        aborted: tuple[SyncService, FakeSource, CommandRouter], store: Store) -> None:
    """A typed number that is not the set's size is refused; nothing is written."""
    _, _, router = aborted
    set_id = (await router.call("sync.missing.get", {}, WEB))["set_id"]
    before = await change_ops(store)
    with pytest.raises(WrongCount, match="type 8"):
        await router.call("sync.missing.delete", {"set_id": set_id, "confirm": 7}, WEB)
    assert await change_ops(store) == before
    assert (await router.call("sync.missing.get", {}, WEB))["pending"]


async def test_stale_confirmation_is_refused(
        aborted: tuple[SyncService, FakeSource, CommandRouter], store: Store) -> None:
    """The PBX changed since the list was shown: delete and keep refuse; nothing written."""
    svc, source, router = aborted
    shown = (await router.call("sync.missing.get", {}, WEB))["set_id"]
    source.users = users(13, start=8)  # u8 is back: the fresh read finds 7 missing
    before = await change_ops(store)
    with pytest.raises(StaleSet, match="7 synced users missing"):
        await svc.delete_missing(actor="local:cli", confirm=DeleteConfirmation(shown, 8))
    assert await change_ops(store) == before
    # the refused read's own abort is now what is held back, ready to be shown
    assert (await router.call("sync.missing.get", {}, WEB))["count"] == 7
    with pytest.raises(StaleSet, match="now 7 users"):
        await router.call("sync.missing.keep", {"set_id": shown}, WEB)
    assert await active_keys(store) == {f"u{i}" for i in range(1, 21)}


async def test_the_cloud_may_not_confirm_deletions(
        aborted: tuple[SyncService, FakeSource, CommandRouter]) -> None:
    """sync.missing.delete is local only; the cloud may read the list."""
    _, _, router = aborted
    got = await router.call("sync.missing.get", {}, CommandContext("cloud"))
    with pytest.raises(CallerRefused):
        await router.call("sync.missing.delete", {"set_id": got["set_id"], "confirm": 8},
                          CommandContext("cloud"))


@pytest.mark.parametrize("params", [{"confirm": 8}, {"set_id": "x", "confirm": "8"},
                                    {"set_id": "x", "confirm": True}, {"set_id": 5},
                                    {"set_id": "x", "confirm": 1, "extra": 1}])
async def test_bad_parameters_are_refused_by_name(
        aborted: tuple[SyncService, FakeSource, CommandRouter],
        params: dict[str, Any]) -> None:
    """The router method validates on its own (the cloud and the CLI call it too)."""
    _, _, router = aborted
    with pytest.raises(Exception, match="set_id|confirm|takes") as info:
        await router.call("sync.missing.delete", params, WEB)
    assert getattr(info.value, "code", "") == "invalid_input"


async def test_switching_the_pbx_clears_the_old_pbx_alerts(
        aborted: tuple[SyncService, FakeSource, CommandRouter], store: Store,
        state_dir: Path) -> None:
    """Alerts about a PBX that is no longer configured are cleared with the switch."""
    svc, _, _ = aborted
    assert "sync.safety_abort" in {a.code for a in await store.alerts.active()}
    other = state_dir / "other.csv"
    other.write_text(CSV.read_text())
    await svc.apply_config(config(
        state_dir, f"pbx: {{type: csv, source_id: other, file: {{path: {other}}}}}\n"))
    assert {a.code for a in await store.alerts.active()} & {
        "sync.safety_abort", "sync.irregularities"} == set()


async def test_a_refused_confirmation_releases_a_set_no_longer_missing(
        aborted: tuple[SyncService, FakeSource, CommandRouter]) -> None:
    """The users came back before the deletion was confirmed: nothing is deleted and
    nothing stays held back (the next sync runs normally)."""
    svc, source, router = aborted
    shown = (await router.call("sync.missing.get", {}, WEB))["set_id"]
    source.users = users(20)
    with pytest.raises(StaleSet, match="0 synced users missing"):
        await svc.delete_missing(actor="local:cli", confirm=DeleteConfirmation(shown, 8))
    assert not (await router.call("sync.missing.get", {}, WEB))["pending"]
    assert (await svc.sync(actor="System")).result == "ok"


async def test_a_pbx_replaced_while_stopped_starts_without_the_old_alerts(
        store: Store, state_dir: Path) -> None:
    """The file names another PBX at start: the last source's alerts are cleared."""
    cfg = config(state_dir, f"pbx: {{type: csv, file: {{path: {CSV}}}}}\n")
    async with SyncService(cfg, store) as svc:
        source = with_fake(svc, FakeSource(users(20)))
        await svc.sync(actor="System")
        source.users = users(12, start=9)
        assert (await svc.sync(actor="System")).result == "aborted"
    assert "sync.safety_abort" in {a.code for a in await store.alerts.active()}
    async with SyncService(cfg, store):  # same PBX: the alert stays
        assert "sync.safety_abort" in {a.code for a in await store.alerts.active()}
    other = config(state_dir, f"pbx: {{type: csv, source_id: other, file: {{path: {CSV}}}}}\n")
    async with SyncService(other, store):
        assert "sync.safety_abort" not in {a.code for a in await store.alerts.active()}


async def test_kept_users_stay_visible_until_they_come_back(
        aborted: tuple[SyncService, FakeSource, CommandRouter], store: Store) -> None:
    """Kept users leave "users" but are counted and listed as kept (inventory.report
    and sync.kept.get); one that comes back to the PBX is synced again and no longer
    kept; a user deleted by the sync was never kept."""
    svc, source, router = aborted
    assert (await router.call("inventory.report", {}, WEB))["kept"] == 0
    await router.call("sync.missing.keep", {}, WEB)
    report = await router.call("inventory.report", {}, WEB)
    assert (report["users"], report["kept"]) == (12, 8)
    page1 = await router.call("sync.kept.get", {"limit": 5}, WEB)
    assert page1["count"] == 8 and len(page1["users"]) == 5
    first = page1["users"][0]
    assert (first["source_id"], first["source_key"], first["email"]) == (
        "csv", "u1", "u1@example.com")
    assert first["name"] == "Firstu1 Lastu1" and first["kept_at"] > 0
    rest = await router.call("sync.kept.get", {"offset": 5, "limit": 5}, WEB)
    assert [u["source_key"] for u in rest["users"]] == ["u6", "u7", "u8"]

    source.users = users(13, start=8)  # u8 is back on the PBX
    assert (await svc.sync(actor="System")).result == "ok"
    report = await router.call("inventory.report", {}, WEB)
    assert (report["users"], report["kept"]) == (13, 7)
    kept = await router.call("sync.kept.get", {}, WEB)
    assert [u["source_key"] for u in kept["users"]] == [f"u{i}" for i in range(1, 8)]


async def test_kept_list_parameters_are_checked(
        aborted: tuple[SyncService, FakeSource, CommandRouter]) -> None:
    """sync.kept.get refuses a bad limit and unknown parameters by name."""
    _, _, router = aborted
    for params, words in (({"limit": 0}, "limit"), ({"user": "u1"}, "offset and limit only")):
        with pytest.raises(Exception, match=words) as info:
            await router.call("sync.kept.get", params, WEB)
        assert getattr(info.value, "code", "") == "invalid_input"
