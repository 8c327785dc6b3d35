"""Event history, CSV export and alerts."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from clgwd.config import parse_config
from clgwd.store import Action, Event, EventFilter, Severity, Store, events_to_csv


async def test_events_filter_by_asset_action_and_date(state_dir: Path) -> None:
    async with Store(parse_config(f"state: {{dir: {state_dir}}}")) as store:
        async with store.db.transaction() as tx:
            await store.history.record(tx, Event("sync", Action.CREATE, "PBX User Profile", at=100))
            await store.history.record(tx, Event("sync", Action.DELETE, "DID", at=200))
            await store.history.record(tx, Event("sync", Action.CREATE, "DID", at=300))
        dids = await store.history.query(EventFilter(asset="DID"))
        assert [e.at for e in dids] == [300, 200]
        creates = await store.history.query(EventFilter(action=Action.CREATE, since=150))
        assert [e.asset for e in creates] == ["DID"]
        window = await store.history.query(EventFilter(since=100, until=300))
        assert len(window) == 2
        assert await store.outbox.depth() == 3


def test_csv_export_has_vendor_columns_and_is_formula_safe() -> None:
    event = Event("=cmd|' /C calc'!A0", Action.EDIT, "PBX User Profile", subject="Ann",
                  properties_changed=["email", "extension"], core={"extension": "100"}, at=0)
    rows = list(csv.reader(io.StringIO(events_to_csv([event]))))
    assert rows[0][:4] == ["Event ID", "Date", "Actor", "Action"]
    assert rows[1][2].startswith("'=")
    assert rows[1][6] == "email; extension"
    assert rows[1][1] == "1970-01-01T00:00:00Z"


async def test_alerts_raise_once_and_clear(state_dir: Path) -> None:
    async with Store(parse_config(f"state: {{dir: {state_dir}}}")) as store:
        assert await store.alerts.raise_alert("pbx.unreachable", Severity.WARNING, "down")
        assert not await store.alerts.raise_alert("pbx.unreachable", Severity.WARNING, "down")
        (active,) = await store.alerts.active()
        assert active.code == "pbx.unreachable"
        assert await store.alerts.clear("pbx.unreachable")
        assert not await store.alerts.clear("pbx.unreachable")
        assert await store.alerts.active() == []
        states = [r.payload["state"] for r in await store.outbox.pending()]
        assert states == ["raised", "cleared"]


async def test_cached_history_queries_see_every_committed_write(state_dir: Path) -> None:
    """Results are reused until a write commits: single, bulk, and during a query."""
    async with Store(parse_config(f"state: {{dir: {state_dir}}}")) as store:
        newest = EventFilter(limit=20)
        assert await store.history.query(newest) == []
        async with store.db.transaction() as tx:
            await store.history.record(tx, Event("web", Action.EDIT, "Site", at=1))
        assert [e.asset for e in await store.history.query(newest)] == ["Site"]
        async with store.db.transaction() as tx:
            await store.history.record_many(tx, [Event("sync", Action.CREATE, "DID", at=2)])
        assert [e.asset for e in await store.history.query(newest)] == ["DID", "Site"]
        try:  # a rolled-back write changes nothing, cached or not
            async with store.db.transaction() as tx:
                await store.history.record(tx, Event("web", Action.EDIT, "Gone", at=3))
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        assert [e.asset for e in await store.history.query(newest)] == ["DID", "Site"]


async def test_a_query_overlapping_a_commit_is_not_kept(state_dir: Path) -> None:
    """A read that started before a write committed may be stale: it is not cached."""
    async with Store(parse_config(f"state: {{dir: {state_dir}}}")) as store:
        history = store.history
        real_query = history._query

        async def slow_query(flt: EventFilter) -> list[Event]:
            result = await real_query(flt)
            async with store.db.transaction() as tx:  # commits after the read
                await history.record(tx, Event("web", Action.EDIT, "Late", at=5))
            return result

        history._query = slow_query  # type: ignore[method-assign]
        assert await history.query(EventFilter()) == []
        history._query = real_query  # type: ignore[method-assign]
        assert [e.asset for e in await history.query(EventFilter())] == ["Late"]
