"""``InventoryComponent``: when it submits, what it leaves out, how it fails."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from clgwd.commands import CommandRouter
from clgwd.component import ComponentState
from clgwd.config import ClgwdConfig
from clgwd.inventory import component as inventory
from clgwd.inventory.component import InventoryComponent
from clgwd.store import Store

MakeConfig = Callable[..., ClgwdConfig]


async def _records(store: Store) -> list[dict[str, Any]]:
    rows = await store.db.fetchall("SELECT payload FROM outbox WHERE kind = 'inventory'"
                                   " ORDER BY seq")
    return [json.loads(r["payload"]) for r in rows]


async def test_submits_at_start_then_only_on_change(make_config: MakeConfig) -> None:
    """The first collection is queued; an unchanged one is not; a new PBX name is."""
    config = make_config()
    async with Store(config) as store:
        comp = InventoryComponent(config, store, CommandRouter(), dict)
        async with comp:
            await comp._collect_and_submit(force=True)
            first = comp.last_submitted
            assert first is not None and len(await _records(store)) == 1
            await comp._collect_and_submit(force=False)
            assert comp.last_submitted == first
            await comp.apply_config(make_config(
                "pbx: {type: csv, name: New PBX, file: {path: /x.csv}}\n"))
            await comp._collect_and_submit(force=False)
            assert comp.last_submitted is not None and comp.last_submitted > first
            (record,) = await _records(store)  # coalesced: only the newest is queued
            assert "New PBX" in {a["name"] for a in record["applications"]}
            assert await store.settings.get(inventory.SUBMITTED_SETTING) == comp.last_submitted


async def test_huge_software_lists_are_left_out(make_config: MakeConfig) -> None:
    """Platforms whose software lists would not fit one outbox record are sent without
    them (marked truncated) instead of failing."""
    config = make_config()
    async with Store(config) as store:
        comp = InventoryComponent(config, store, CommandRouter(), dict)
        comp._platforms = [{"name": f"p{i}", "reachable": True,
                            "software": [f"package-{n:05d}-with-a-long-name" for n in range(200)]}
                           for i in range(64)]
        async with comp:
            await comp._collect_and_submit(force=True)
            (record,) = await _records(store)
            assert all(p["software"] == [] and p["software_truncated"]
                       for p in record["platforms"])
            assert comp.document is not None and comp.document["platforms"][0]["software"]


async def test_collection_failure_degrades_without_crashing(
        make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing collection is a degraded status with the reason, not an exception."""
    def broken() -> dict[str, Any]:
        raise PermissionError("/proc is not readable")

    monkeypatch.setattr(inventory, "collect_local", broken)
    config = make_config()
    async with Store(config) as store:
        comp = InventoryComponent(config, store, CommandRouter(), dict)
        async with comp:
            await comp._collect_and_submit(force=True)
            status = comp.tracker.current
        assert status.state == ComponentState.DEGRADED
        assert "collection failed: /proc is not readable" in status.message
        assert await _records(store) == []
