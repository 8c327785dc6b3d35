"""The page follows syncs it did not start, with a determinate bar where the source can
count, keeps kept users visible, and counts the password form's lockout down (Chromium)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clgwd.pbx import csv_source
from clgwd.pbx.model import metered_lines
from clgwd.sync.component import SyncService
from clgwd.web import auth
from tests.sync.helpers import FakeSource, users, with_fake
from tests.web.browser import check_axe, shot
from tests.web.conftest import PASSWORD, Gateway
from tests.web.test_browser import _first_visit, _goto, _page, axe, browser
from tests.web.test_sync_browser import CLI, router_sync, write

__all__ = ["axe", "browser"]  # fixtures shared with test_browser.py

pytestmark = [pytest.mark.peers, pytest.mark.timeout(180)]

FILLER_ROWS = 1_000_000
"""Empty CSV rows after the users: a ~5 MB file whose read the test holds halfway
(``GatedReads``), yet that syncs only the users (the parser skips empty rows)."""


READING_SEEN = """() => {
  const phase = document.querySelector('#sync-phase').textContent;
  const bar = document.querySelector('#sync-bar');
  return phase.includes('Reading the users from the PBX') && phase.includes(' MB read')
    && bar.hasAttribute('value') && Number(bar.max) > 1000000
    && document.querySelector('#sync-now').disabled;
}"""


def padded_directory(path: Path, users: int) -> int:
    """``users`` users followed by ``FILLER_ROWS`` empty rows; returns the file size."""
    head = "key,extension,first_name,last_name,email\n" + "".join(
        f"u-{i:03d},{2000 + i},First{i},Last{i},user{i}@example.com\n"
        for i in range(1, users + 1))
    with path.open("w", encoding="utf-8") as out:
        out.write(head)
        block = ",,,,\n" * 100_000
        for _ in range(FILLER_ROWS // 100_000):
            out.write(block)
    return path.stat().st_size


class GatedReads:
    """Holds each CSV read halfway through the file until the test has seen the page show
    it: a real file, the real meter and the real page, without a race against the disk
    (a read that ended before the page's next poll once failed this test)."""

    HOLD_AT_LINE = FILLER_ROWS // 2

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.go_on = threading.Event()
        self.go_on.set()  # other reads (a preview, a test) pass until the test holds one

        def held(lines: Any, file: Any, meter: Any) -> Iterator[Any]:
            for number, line in enumerate(metered_lines(lines, file, meter)):
                if number == self.HOLD_AT_LINE:
                    self.go_on.wait(60)  # the test releases it; never hangs the thread
                yield line

        monkeypatch.setattr(csv_source, "metered_lines", held)

    def hold(self) -> None:
        self.go_on.clear()

    def release(self) -> None:
        self.go_on.set()


async def csv_pbx(gw: Gateway, path: Path) -> None:
    await gw.daemon.commands.call(
        "pbx.set", {"type": "csv", "name": "HQ", "options": {"path": str(path)}}, CLI)


async def test_a_sync_started_elsewhere_shows_on_connect_and_overview(
        gateway: Gateway, browser: Any, axe: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync started through the API (as the schedule, the cloud or the CLI would)
    while Connect is open: the page shows its phase with a determinate bar ("MB read"
    of the file's size) and Sync Now disabled, without a reload; when it ends, Sync Now
    is enabled and the last sync is refreshed. On the Overview the Sync card says so."""
    csv = tmp_path / "dir.csv"
    await write(csv, 4)
    await csv_pbx(gateway, csv)
    assert (await router_sync(gateway))["result"] == "ok"
    await asyncio.to_thread(padded_directory, csv, 4)
    gate = GatedReads(monkeypatch)

    context, page, csp_errors = await _page(browser)
    await _first_visit(page, gateway)
    await _goto(page, gateway, "connect")
    await page.wait_for_selector("#sync-state:has-text('(OK)')")
    before = await page.text_content("#sync-state")
    assert await page.is_hidden("#sync-progress") and await page.is_enabled("#sync-now")

    gate.hold()
    elsewhere = asyncio.create_task(gateway.daemon.commands.call("sync.now", {}, CLI))
    try:
        # One frame shows it all: the phase, "MB read" of the file's size with a
        # determinate bar, and Sync Now disabled.
        await page.wait_for_function(READING_SEEN, timeout=15000)
        await check_axe(page, axe, "connect-progress-determinate")
        await shot(page, "05-connect-progress-determinate")
    finally:
        gate.release()
    assert (await elsewhere)["result"] == "ok"
    await page.wait_for_selector("#sync-progress[hidden]", state="attached")
    await page.wait_for_selector("#sync-now:not([disabled])")
    await page.wait_for_function(
        "before => document.querySelector('#sync-state').textContent !== before", arg=before)

    await _goto(page, gateway, "overview")
    await page.wait_for_selector("#ov-sync:has-text('OK')")
    assert await page.is_hidden("#ov-sync-now")
    gate.hold()
    elsewhere = asyncio.create_task(gateway.daemon.commands.call("sync.now", {}, CLI))
    try:
        await page.wait_for_selector(
            "#ov-sync-now:has-text('Syncing now: Reading the users')", timeout=15000)
    finally:
        gate.release()
    assert (await elsewhere)["result"] == "ok"
    await page.wait_for_selector("#ov-sync-now", state="hidden")
    assert csp_errors == []
    await context.close()


class MeteredSource(FakeSource):
    """A slow source that reports what a MiVoice Connect read (a count, then users) or an
    LDAP read (users so far, no total) reports; the real meters are tested against
    MariaDB and slapd in tests/pbx/test_read_progress.py."""

    def __init__(self, progress: tuple[int, int | None, str]) -> None:
        super().__init__(users(4))
        self.progress = progress
        self.release = asyncio.Event()

    def read_progress(self) -> tuple[int, int | None, str]:
        return self.progress

    async def read_users(self) -> Any:
        self.started.set()
        await self.release.wait()
        return await super().read_users()


async def test_the_bar_counts_users_where_the_source_counts_them(
        gateway: Gateway, browser: Any, tmp_path: Path) -> None:
    """A source that counted first: "1,200 of 20,000 users" and a bar at 1200 of 20000;
    one without a total (LDAP): "500 users so far" and an indeterminate bar."""
    csv = tmp_path / "dir.csv"
    await write(csv, 4)
    await csv_pbx(gateway, csv)
    assert (await router_sync(gateway))["result"] == "ok"
    svc = gateway.daemon.component("sync")
    assert isinstance(svc, SyncService)
    context, page, _ = await _page(browser)
    await _first_visit(page, gateway)
    await _goto(page, gateway, "connect")
    for progress, text, value in (((1200, 20000, "users"), "1,200 of 20,000 users", "1200"),
                                  ((500, None, "users"), "500 users so far", None)):
        source = with_fake(svc, MeteredSource(progress))
        run = asyncio.create_task(gateway.daemon.commands.call("sync.now", {}, CLI))
        try:
            await page.wait_for_selector(f"#sync-phase:has-text('{text}')", timeout=6000)
            assert await page.get_attribute("#sync-bar", "value") == value
            if value is not None:
                assert await page.get_attribute("#sync-bar", "max") == "20000"
            assert await page.is_disabled("#sync-now")
        finally:
            source.release.set()
            await run
        await page.wait_for_selector("#sync-now:not([disabled])")
    await context.close()


async def test_kept_users_stay_visible_on_the_overview(
        gateway: Gateway, browser: Any, axe: str, tmp_path: Path) -> None:
    """After "Keep these users" on Connect, the Overview counts them apart from the
    synced users ("45 users kept in the cloud that are no longer on the PBX") and
    lists them page by page."""
    csv = tmp_path / "dir.csv"
    await write(csv, 60)
    await csv_pbx(gateway, csv)
    assert (await router_sync(gateway))["result"] == "ok"
    await write(csv, 15)
    assert (await router_sync(gateway))["result"] == "aborted"
    context, page, csp_errors = await _page(browser)
    await _first_visit(page, gateway)
    await _goto(page, gateway, "overview")
    assert await page.locator("#ov-kept").count() == 0  # nothing kept yet
    await _goto(page, gateway, "connect")
    await page.wait_for_selector("#abort-page:has-text('of 45')")
    await page.click("#abort-keep")
    await page.wait_for_selector("#toast:has-text('Kept 45 users in the cloud')")
    await page.wait_for_selector("#sync-state:has-text('(OK)')")
    await _goto(page, gateway, "overview")
    await page.wait_for_selector(
        "#ov-kept:has-text('45 users kept in the cloud that are no longer on the PBX')")
    assert "Users: 15" in (await page.text_content("#ov-inventory") or "")
    assert await page.is_hidden("#kept")
    await page.click("#kept-show")
    await page.wait_for_selector("#kept-page:has-text('Users 1-20 of 45')")
    assert await page.locator("#kept-list li").count() == 20
    assert "2016 First16 Last16 <user16@example.com>, kept " in (
        await page.text_content("#kept-list") or "")
    assert await page.is_disabled("#kept-prev")
    await page.click("#kept-next")
    await page.click("#kept-next")
    await page.wait_for_selector("#kept-page:has-text('Users 41-45 of 45')")
    assert await page.is_disabled("#kept-next")
    await check_axe(page, axe, "overview-kept")
    await shot(page, "08-overview-kept")
    assert csp_errors == []
    await context.close()


async def test_a_hidden_tab_does_not_poll(gateway: Gateway, browser: Any,
                                          tmp_path: Path) -> None:
    """While the tab is hidden the page asks nothing about the sync; shown again, it
    asks at once."""
    csv = tmp_path / "dir.csv"
    await write(csv, 4)
    await csv_pbx(gateway, csv)
    context, page, _ = await _page(browser)
    await _first_visit(page, gateway)
    await _goto(page, gateway, "connect")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/sync/status" in r.url else None)
    await page.wait_for_timeout(3500)
    assert asked, "the Connect step polls sync.status while shown"
    await page.evaluate("""() => {
      Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});
      document.dispatchEvent(new Event('visibilitychange'));
    }""")
    await page.wait_for_timeout(500)
    asked.clear()
    await page.wait_for_timeout(7000)
    assert asked == []
    await page.evaluate("""() => {
      Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});
      document.dispatchEvent(new Event('visibilitychange'));
    }""")
    await page.wait_for_timeout(1000)
    assert asked
    await context.close()


async def test_the_password_form_counts_the_lockout_down(gateway: Gateway, browser: Any,
                                                         axe: str) -> None:
    """Wrong current passwords on the Advanced page lock out like the login: the form
    says how long, Change password is disabled, and it comes back at 0."""
    context, page, csp_errors = await _page(browser)
    await _first_visit(page, gateway)
    await _goto(page, gateway, "advanced")
    button = "#pw-form button[type=submit]"
    for attempt in range(auth.FREE_FAILURES):
        await page.fill("#pw-current", "not the password")
        await page.fill("#pw-new", "a brand new passphrase")
        await page.fill("#pw-new2", "a brand new passphrase")
        await page.click(button)
        await page.wait_for_selector("#pw-current-err:has-text('wrong password')")
        if attempt < auth.FREE_FAILURES - 1:
            await page.evaluate("document.querySelector('#pw-current-err').textContent = ''")
    await page.wait_for_selector("#pw-wait:has-text('You can try again in 2 s')")
    assert await page.is_disabled(button)
    assert await page.get_attribute("#pw-wait", "role") == "timer"
    await check_axe(page, axe, "password-locked")
    await page.wait_for_selector(f"{button}:not([disabled])", timeout=4000)
    assert await page.text_content("#pw-wait") == ""
    await page.fill("#pw-current", PASSWORD)
    await page.click(button)
    await page.wait_for_selector("#toast:has-text('Password changed')")
    assert csp_errors == []
    await context.close()
