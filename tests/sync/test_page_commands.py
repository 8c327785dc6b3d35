"""The onboarding page's PBX / Connect / schedule commands, owned by the sync component."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from clgwd.commands import CommandContext, CommandRouter
from clgwd.config.secret import Secret
from clgwd.errors import ClgwdError
from clgwd.settings import effective_pbx, saved
from clgwd.store import EventFilter, Store
from clgwd.sync import page
from clgwd.sync.component import PbxTestFailed, SyncPhase, SyncService
from clgwd.web.catalog import PBX_TYPES
from tests.sync.helpers import CSV, FakeSource, config, users, with_fake

CTX = CommandContext("local:web:admin")
CSV_PARAMS = {"type": "csv", "name": "Sample", "options": {"path": str(CSV)}}


async def _call(router: CommandRouter, method: str, params: dict[str, Any] | None = None
                ) -> Any:
    return await router.call(method, params or {}, CTX)


async def test_every_page_method_is_registered(store: Store, state_dir: Path) -> None:
    """The page's PBX, Connect, schedule and inventory methods answer from this part."""
    router = CommandRouter()
    async with SyncService(config(state_dir), store, router):
        methods = router.methods()
        for name in ("pbx.get", "pbx.set", "pbx.test", "sync.schedule.get",
                     "sync.schedule.set", "inventory.report", "sync.kept.get"):
            assert methods[name], name
        assert router.is_mutating("pbx.set") and router.is_mutating("sync.schedule.set")
        assert not router.is_mutating("pbx.test")
        assert (await _call(router, "pbx.get"))["configured"] is False
        assert await _call(router, "inventory.report") == {"users": 0, "dids": 0,
                                                           "kept": 0, "source_id": None}


async def test_pbx_set_switches_the_source_and_survives_a_restart(
        store: Store, state_dir: Path) -> None:
    """Settings saved from the page become the source now and after a restart."""
    router = CommandRouter()
    async with SyncService(config(state_dir), store, router) as svc:
        assert svc.phase == SyncPhase.NOT_CONFIGURED
        view = await _call(router, "pbx.set", CSV_PARAMS)
        assert view["configured"] and view["type"] == "csv" and view["saved_from_page"]
        assert view["options"] == {"path": str(CSV)} and view["address"] is None
        assert svc.phase.value == "waiting"
    again = CommandRouter()
    async with SyncService(config(state_dir), store, again):
        assert (await _call(again, "pbx.get"))["options"]["path"] == str(CSV)
    events = [e for e in await store.history.query(_all()) if e.asset == "PBX"]
    assert [(e.action.value, e.actor) for e in events] == [("Create", "local:web:admin")]


def _all() -> EventFilter:
    return EventFilter(limit=100)


async def test_page_overrides_the_file_and_keeps_other_file_keys(
        store: Store, state_dir: Path) -> None:
    """Page fields win; keys the page does not show (read_timeout) stay the file's."""
    router = CommandRouter()
    cfg = config(state_dir, "pbx: {type: ldap, host: 192.0.2.7, read_timeout: 33,"
                 " ldap: {base_dn: 'dc=file', page_size: 77}}\n")
    async with SyncService(cfg, store, router) as svc:
        before = await _call(router, "pbx.get")
        assert (before["type"], before["port"], before["saved_from_page"]) == (
            "ldap", 389, False)
        await _call(router, "pbx.set", {
            "type": "ldap", "name": "HQ", "address": "127.0.0.1", "port": 1389,
            "username": "cn=ro", "password": "pw-from-page",
            "options": {"base_dn": "dc=page"}})
        pbx = svc._pbx
        assert (pbx.host, pbx.port, pbx.ldap.base_dn) == ("127.0.0.1", 1389, "dc=page")
        assert (pbx.read_timeout, pbx.ldap.page_size) == (33, 77)
        assert pbx.password is not None and pbx.password.reveal() == "pw-from-page"


async def test_password_is_stored_as_a_secret_and_never_returned(
        store: Store, state_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The password goes to the SecretStore; answers say only password_set; null keeps."""
    caplog.set_level(logging.DEBUG)
    router = CommandRouter()
    params = {"type": "freepbx_mysql", "name": "Asterisk", "address": "127.0.0.1",
              "port": 3306, "username": "ro", "password": "Hunter2-secret",
              "options": {"database": "asterisk"}}
    async with SyncService(config(state_dir), store, router) as svc:
        view = await _call(router, "pbx.set", params)
        assert view["password_set"] is True and "Hunter2-secret" not in str(view)
        stored = await store.secrets.get(saved.SECRET_PASSWORD)
        assert stored is not None and stored.reveal() == "Hunter2-secret"
        await _call(router, "pbx.set", {**params, "password": None, "name": "Renamed"})
        assert svc._pbx.password is not None
        assert svc._pbx.password.reveal() == "Hunter2-secret"
        settings = await store.settings.get(saved.SETTING_PBX)
        assert "Hunter2-secret" not in str(settings)
        events = await store.history.query(_all())
        assert "Hunter2-secret" not in str([e.as_json() for e in events])
    assert "Hunter2-secret" not in caplog.text


@pytest.mark.parametrize(("params", "where"), [
    ({"type": "nope"}, "type"),
    ({"type": "csv", "options": {}}, "file.path"),
    ({"type": "csv", "options": {"path": "relative.csv"}}, "path"),
    ({"type": "csv", "options": {"base_dn": "x", "path": "/x.csv"}}, "options"),
    ({"type": "ldap", "address": "", "options": {"base_dn": "dc=x"}}, "host"),
    ({"type": "ldap", "address": "h", "port": 0, "options": {}}, "port"),
    ({"type": "csv", "options": {"path": "/x.csv"}, "extra": 1}, "unknown"),
])
async def test_pbx_set_rejects_bad_settings_naming_the_field(
        store: Store, state_dir: Path, params: dict[str, Any], where: str) -> None:
    """The cloud and the CLI call pbx.set too: it validates on its own, changes nothing."""
    router = CommandRouter()
    async with SyncService(config(state_dir), store, router):
        with pytest.raises(ClgwdError) as info:
            await _call(router, "pbx.set", params)
        assert info.value.code == "invalid_input" and where in info.value.message
        assert await store.settings.get(saved.SETTING_PBX) is None


async def test_pbx_test_reports_the_connect_step_without_syncing(
        store: Store, state_dir: Path) -> None:
    """Users, DIDs and both irregularity lists; nothing synced; connected afterwards."""
    router = CommandRouter()
    async with SyncService(config(state_dir), store, router) as svc:
        await _call(router, "pbx.set", CSV_PARAMS)
        assert (await _call(router, "pbx.get"))["connected"] is False
        report = await _call(router, "pbx.test")
        assert (report["users"], report["eligible"], report["dids"]) == (20, 20, 11)
        assert report["email_policy"]["value"] == "sync_and_flag"
        assert report["email_policy"]["source"] == "default"
        irr = report["irregularities"]
        assert irr["no_email_count"] == 3 and irr["duplicate_email_count"] == 2
        assert {u["name"] for u in irr["duplicate_email"]} == {"Grace O'Neil", "Hiro Tanaka"}
        assert svc.last is None
        assert (await _call(router, "inventory.report"))["users"] == 0
        assert (await _call(router, "pbx.get"))["connected"] is True


async def test_pbx_test_failure_is_a_clear_error(store: Store, state_dir: Path) -> None:
    """A file that is not there: pbx_test_failed with the reason, not a report of 0."""
    router = CommandRouter()
    async with SyncService(config(state_dir), store, router):
        await _call(router, "pbx.set", {**CSV_PARAMS,
                                        "options": {"path": str(state_dir / "gone.csv")}})
        with pytest.raises(PbxTestFailed, match="gone.csv"):
            await _call(router, "pbx.test")
        assert (await _call(router, "pbx.get"))["connected"] is False


@pytest.mark.parametrize(("policy", "users", "dids"), [
    ("sync_and_flag", 20, 11), ("hold_back", 15, 10)])  # 1006 has a DID but no email
async def test_sync_now_then_schedule_and_inventory(store: Store, state_dir: Path,
                                                    policy: str, users: int,
                                                    dids: int) -> None:
    """After Sync now: last_sync ok, inventory counts the synced users, and the Connect
    test's DDI count equals the Overview's DIDs (one definition) under either policy."""
    router = CommandRouter()
    async with SyncService(config(state_dir, f"sync: {{email_problems: {policy}}}\n"), store,
                           router):
        await _call(router, "pbx.set", CSV_PARAMS)
        report = await _call(router, "pbx.test")
        assert report["email_policy"]["source"] == "file"
        done = await _call(router, "sync.now")
        assert done["result"] == "ok" and done["counts"]["created"] == users
        schedule = await _call(router, "sync.schedule.get")
        assert schedule["interval_minutes"] == 20
        last = schedule["last_sync"]
        assert last["ok"] and last["users"] == users and last["at"] > 0
        inventory = await _call(router, "inventory.report")
        assert (inventory["users"], inventory["dids"]) == (users, dids)
        assert report["dids"] == done["dids"] == dids
        preview = await _call(router, "sync.preview")
        assert preview["result"] == "preview" and preview["changes"] == []


async def test_schedule_set_persists_and_rearms(store: Store, state_dir: Path) -> None:
    """The interval is stored, overrides the file's, wakes the loop and is validated."""
    router = CommandRouter()
    cfg = config(state_dir, "sync: {interval_minutes: 30}\n")
    async with SyncService(cfg, store, router) as svc:
        assert (await _call(router, "sync.schedule.get"))["interval_minutes"] == 30
        svc._wake.clear()
        answer = await _call(router, "sync.schedule.set", {"interval_minutes": 45})
        assert answer["interval_minutes"] == 45 and answer["saved_from_page"]
        assert svc._wake.is_set() and svc.interval_minutes == 45
        for bad in (0, 1441, "20", True, None):
            with pytest.raises(ClgwdError, match="interval_minutes"):
                await _call(router, "sync.schedule.set", {"interval_minutes": bad})
    again = CommandRouter()
    async with SyncService(cfg, store, again):
        assert (await _call(again, "sync.schedule.get"))["interval_minutes"] == 45


def test_catalog_offers_exactly_the_sync_types_and_options() -> None:
    """The page's PBX types and option keys are the sync part's config values."""
    offered = {t["id"]: {f["name"] for f in t["fields"]} for t in PBX_TYPES}
    assert offered == {k: set(v) for k, v in page.OPTION_PATHS.items()}
    unavailable = {t["id"] for t in PBX_TYPES if not t["available"]}
    assert unavailable == {"mivoice_office_400", "mivoice_business", "mx_one"}


def test_effective_settings_without_page_settings_are_the_files(state_dir: Path) -> None:
    cfg = config(state_dir, "pbx: {type: csv, file: {path: /srv/x.csv}, password: abcd}\n")
    assert effective_pbx(cfg.pbx, None, None) is cfg.pbx
    merged = effective_pbx(cfg.pbx, None, Secret("page-pass"))
    assert merged.password is not None and merged.password.reveal() == "page-pass"


async def test_a_pbx_added_on_the_page_waits_for_sync_now(store: Store, state_dir: Path) -> None:
    """The Connect step comes first: no scheduled sync until the first "Sync now"."""
    router = CommandRouter()
    async with SyncService(config(state_dir), store, router) as svc:
        await _call(router, "pbx.set", CSV_PARAMS)
        assert svc.awaiting_sync_now and svc._next_delay() is None
        assert "Sync now" in svc.tracker.current.message
        assert (await _call(router, "sync.schedule.get"))["awaiting_sync_now"] is True
        await _call(router, "sync.now")
        delay = svc._next_delay()
        assert not svc.awaiting_sync_now and delay is not None and delay > 19 * 60


async def test_switching_pbx_during_a_run_keeps_the_runs_apart(
        store: Store, state_dir: Path) -> None:
    """A run of the old source that ends after the switch is not the new source's last."""
    router = CommandRouter()
    cfg = config(state_dir, f"pbx: {{type: csv, file: {{path: {CSV}}}}}\n")
    async with SyncService(cfg, store, router) as svc:
        source = with_fake(svc, FakeSource(users(2)))
        source.delay = 0.3
        running = asyncio.create_task(svc.sync(actor="System", trigger="schedule"))
        await source.started.wait()
        await _call(router, "pbx.set", {"type": "ldap", "name": "Dir", "address": "127.0.0.1",
                                        "port": 389, "options": {"base_dn": "dc=x"}})
        assert (await running).result == "ok"
        assert svc.last is None and svc.awaiting_sync_now
        assert (await _call(router, "inventory.report"))["users"] == 2


async def test_pbx_set_during_start_up_is_not_lost_to_the_initial_load(
        store: Store, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control socket opens before this part enters, so a ``pbx.set`` can arrive
    while the saved settings are still being loaded: the load must not overwrite it
    with what it read before the save (``settings.forget`` then found nothing)."""
    router = CommandRouter()
    svc = SyncService(config(state_dir), store, router)
    loading, release = asyncio.Event(), asyncio.Event()
    real_load = saved.SavedSettings.load

    async def slow_load(store_: Store) -> saved.SavedSettings:
        result = await real_load(store_)  # read before the page's save ...
        loading.set()
        await release.wait()  # ... and returned after it
        return result

    monkeypatch.setattr(saved.SavedSettings, "load", staticmethod(slow_load))
    enter = asyncio.create_task(svc.__aenter__())
    await loading.wait()
    save = asyncio.create_task(_call(router, "pbx.set", CSV_PARAMS))
    await asyncio.sleep(0.05)
    release.set()
    await enter
    assert (await save)["saved_from_page"]
    try:
        forgotten = await _call(router, "settings.forget", {"keys": ["pbx"]})
        assert forgotten["forgotten"] == ["pbx"]
    finally:
        await svc.__aexit__(None, None, None)
