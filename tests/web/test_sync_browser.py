"""The Connect step's sync in real Chromium: the safety abort's list and its two ways
out (keep, delete once, a stale confirmation refused), and a run's progress."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from clgwd.cli.demo import sample_directory
from clgwd.commands import CommandContext
from clgwd.store import EventFilter
from clgwd.sync.component import SyncService
from tests.web.browser import check_axe, no_horizontal_scroll, shot
from tests.web.conftest import PASSWORD, Gateway
from tests.web.test_browser import _first_visit, _goto, _page, axe, browser  # noqa: F401

pytestmark = [pytest.mark.peers, pytest.mark.timeout(150)]

CLI = CommandContext("local:cli")


def directory(count: int) -> str:
    """A CSV directory of ``count`` users, all with a valid unique email."""
    header = sample_directory().read_text(encoding="utf-8").splitlines()[0]
    rows = [f"u-{i:03d},{2000 + i},First{i},Last{i},First{i} Last{i},user{i}@example.com,"
            f"user{i},+1408555{i:04d},,6920,,Sales,Sales,San Jose,en-US,true"
            for i in range(1, count + 1)]
    return "\n".join([header, *rows]) + "\n"


async def write(path: Path, count: int) -> None:
    await asyncio.to_thread(path.write_text, directory(count), encoding="utf-8")


async def router_sync(gw: Gateway) -> dict[str, Any]:
    """A sync through the router (as the schedule or the CLI would run it). The retry
    that follows a failed or aborted run is pushed out, so no scheduled run competes
    with what the test does on the page."""
    out: dict[str, Any] = await gw.daemon.commands.call("sync.now", {}, CLI)
    svc = gw.daemon.component("sync")
    assert isinstance(svc, SyncService)
    svc._failures = 0  # the test owns this daemon's schedule
    svc._wake.set()
    return out


async def user_changes(gw: Gateway) -> list[tuple[str, str]]:
    rows = await gw.store.db.fetchall(
        "SELECT payload FROM outbox WHERE kind = 'user.change' ORDER BY seq")
    return [(p["op"], p["source_key"]) for p in (json.loads(r[0]) for r in rows)]


async def test_safety_abort_keep_delete_once_and_progress(
        gateway: Gateway, browser: Any, axe: str, tmp_path: Path) -> None:  # noqa: F811
    """After 45 of 60 users vanish: the list (paginated), the same abort in the preview
    and on the Overview, a stale and a miscounted confirmation refused, Delete them
    once; then another abort kept; then a slow read shows its phase and a bar, with
    Sync Now disabled until it ends."""
    csv = tmp_path / "dir.csv"
    await write(csv, 60)
    await gateway.daemon.commands.call(
        "pbx.set", {"type": "csv", "name": "HQ", "options": {"path": str(csv)}}, CLI)
    assert (await router_sync(gateway))["result"] == "ok"
    await write(csv, 15)
    assert (await router_sync(gateway))["result"] == "aborted"

    context, page, csp_errors = await _page(browser)
    await _first_visit(page, gateway)
    await _goto(page, gateway, "connect")
    await page.wait_for_selector("#sync-abort:not([hidden])")
    await page.wait_for_selector("#abort-page:has-text('Users 1-20 of 45')")
    assert await page.locator("#abort-list li").count() == 20
    assert "45 of 60 synced users are missing" in await page.text_content("#abort-reason")
    assert await page.is_disabled("#abort-prev")
    await page.click("#abort-next")
    await page.wait_for_selector("#abort-page:has-text('Users 21-40 of 45')")
    await page.click("#abort-next")
    await page.wait_for_selector("#abort-page:has-text('Users 41-45 of 45')")
    assert await page.is_disabled("#abort-next")
    assert "2056 First56 Last56 <user56@example.com>" in await page.text_content(
        "#abort-list")
    await check_axe(page, axe, "connect-abort")
    await shot(page, "05-connect-abort")
    # The preview says the same: the next sync stops.
    await page.click("#preview-btn")
    await page.wait_for_selector("#preview:has-text('The next sync will stop: 45 synced')")
    # The Overview's problem card sends the technician to Connect.
    await _goto(page, gateway, "overview")
    await page.wait_for_selector("#next-step-name:has-text('Connect the PBX')")
    assert "45 synced users are missing" in await page.text_content("#next-step")
    await page.click("#next-step a[href='#connect']")
    await page.wait_for_selector("#abort-page:has-text('of 45')")

    # On a phone the list and both actions fit the width.
    phone, small, _ = await _page(browser, width=390)
    await small.goto(f"{gateway.base}/#connect")
    await small.fill("#login-pw", PASSWORD)
    await small.press("#login-pw", "Enter")
    await small.wait_for_selector("#abort-page:has-text('Users 1-20 of 45')")
    assert await no_horizontal_scroll(small)
    await shot(small, "05-connect-abort-phone")
    await phone.close()

    # Stale: one more user vanished since the list was shown.
    await write(csv, 14)
    await page.fill("#abort-confirm", "45")
    await page.click("#abort-delete-form button[type=submit]")
    await page.wait_for_selector("#abort-err:has-text('The list of missing users changed')")
    await page.wait_for_selector("#abort-page:has-text('of 46')")
    assert [op for op, _ in await user_changes(gateway)].count("delete") == 0
    # The wrong number is refused before anything is sent.
    await page.fill("#abort-confirm", "45")
    await page.click("#abort-delete-form button[type=submit]")
    await page.wait_for_selector("#abort-err:has-text('type 46')")
    assert await page.get_attribute("#abort-confirm", "aria-invalid") == "true"
    await page.fill("#abort-confirm", "46")
    await page.click("#abort-delete-form button[type=submit]")
    await page.wait_for_selector("#toast:has-text('Deleted 46 users once')")
    await page.wait_for_selector("#sync-result:has-text('46 deleted')")
    assert await page.is_hidden("#sync-abort")
    deleted = sorted(k for op, k in await user_changes(gateway) if op == "delete")
    assert deleted == [f"u-{i:03d}" for i in range(15, 61)]
    events = await gateway.store.history.query(EventFilter(asset="PBX users missing"))
    assert [(e.action.value, e.actor) for e in events] == [("Delete", "local:web:admin")]

    # Another abort, kept this time: nothing more is deleted, the next sync is ok.
    await write(csv, 4)
    assert (await router_sync(gateway))["result"] == "aborted"
    await page.reload()
    await page.wait_for_selector("#abort-page:has-text('of 10')")
    await page.click("#abort-keep")
    await page.wait_for_selector("#toast:has-text('Kept 10 users in the cloud')")
    await page.wait_for_selector("#sync-state:has-text('(OK)')")
    assert await page.is_hidden("#sync-abort")
    assert [op for op, _ in await user_changes(gateway)].count("delete") == 46

    # Progress: the read blocks on a pipe until the test writes the directory.
    await asyncio.to_thread(csv.unlink)
    await asyncio.to_thread(os.mkfifo, csv)
    released = False

    def feed() -> None:
        with csv.open("w", encoding="utf-8") as pipe:
            pipe.write(directory(4))

    try:
        await page.click("#sync-now")
        await page.wait_for_selector("#sync-phase:has-text('Reading the users from the PBX')")
        assert await page.is_disabled("#sync-now")
        assert await page.get_attribute("#sync-bar", "value") is None  # indeterminate
        await page.wait_for_selector("#sync-phase:has-text('2 s)')")  # elapsed counts up
        await shot(page, "05-connect-progress")
        await check_axe(page, axe, "connect-progress")
        status = await gateway.daemon.commands.call("sync.status", {}, CLI)
        assert status["running"] and status["progress"]["phase"] == "reading"
        await asyncio.to_thread(feed)
        released = True
        await page.wait_for_selector("#sync-result:has-text('Sync complete')")
        assert await page.is_enabled("#sync-now") and await page.is_hidden("#sync-progress")
    finally:
        if not released:
            await asyncio.to_thread(feed)  # never leave the sync thread blocked
    assert csp_errors == []
    await context.close()
