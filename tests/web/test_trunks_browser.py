"""The Voice Gateway step in real Chromium: add, check, edit and delete SIP trunks."""

from __future__ import annotations

from typing import Any

import pytest

from clgwd.commands import CommandContext
from tests.conftest import require_program
from tests.sip.test_trunks import reply, responder
from tests.web.browser import check_axe, first_visit, shot
from tests.web.conftest import PASSWORD, Gateway
from tests.web.test_browser import _goto, _page, axe, browser

__all__ = ["axe", "browser"]  # fixtures shared with test_browser.py
pytestmark = [pytest.mark.peers, pytest.mark.timeout(150)]


async def test_voice_gateway_step_manages_trunks(gateway: Gateway, browser: Any,
                                                 axe: str) -> None:
    """A trunk added on the page is checked by the real trunk part and shows up with its
    RTT (and on the Overview); a bad host is refused at its field with the server's
    words; Check now, Edit and Delete reach the part."""
    context, page, csp_errors = await _page(browser)
    await first_visit(page, gateway.base, gateway.setup_code, PASSWORD)
    await _goto(page, gateway, "voice")
    await page.wait_for_selector("#trunks-table td:has-text('No SIP trunks yet')")
    async with responder(lambda r: [reply(r)]) as port:
        await page.fill("#trunk-name", "pbx-main")
        await page.fill("#trunk-host", "bad host!")
        await page.fill("#trunk-port", str(port))
        await page.fill("#trunk-interval", "1")
        await page.click("#trunk-save")
        await page.wait_for_selector("#trunk-host-err:has-text('host: must be an IP address')")
        await page.fill("#trunk-host", "127.0.0.1")
        await page.click("#trunk-save")
        await page.wait_for_selector("#toast:has-text('Trunk pbx-main saved')")
        row = "#trunk-pbx-main"
        await page.wait_for_selector(f"{row} td:has-text('127.0.0.1:{port}')")
        await page.click("button[aria-label='Check now pbx-main']")
        await page.wait_for_selector("#toast:has-text('Trunk pbx-main: up, answered 200 OK')")
        await page.wait_for_selector(f"{row} td.trunk-state:has-text('up')")
        assert " ms" in await page.text_content(row)
        await check_axe(page, axe, "voice-gateway")
        await shot(page, "voice-gateway")
        await _goto(page, gateway, "overview")
        await page.wait_for_selector("#ov-trunks:has-text('1 of 1 SIP trunks up')")
        await _goto(page, gateway, "voice")
        await page.wait_for_selector(f"{row} td.trunk-state:has-text('up')")
        await page.click("button[aria-label='Edit pbx-main']")
        assert await page.input_value("#trunk-name") == "pbx-main"
        await page.fill("#trunk-interval", "20")
        await page.click("#trunk-save")
        await page.wait_for_selector("#toast:has-text('Trunk pbx-main saved')")
        trunks = gateway.daemon.component("trunks")
        assert trunks.listing()["trunks"][0]["interval"] == 20  # type: ignore[attr-defined]
        await page.click("button[aria-label='Delete pbx-main']")
        await page.wait_for_selector("#toast:has-text('Trunk pbx-main deleted')")
        await page.wait_for_selector("#trunks-table td:has-text('No SIP trunks yet')")
    assert csp_errors == []
    await context.close()


async def test_advanced_page_says_when_the_cloud_started_a_trace(
        gateway: Gateway, browser: Any) -> None:
    """A trace started by the cloud (sip.trace.allow_cloud, default true) is shown as
    such on the Advanced page."""
    require_program("tcpdump")
    context, page, _ = await _page(browser)
    await first_visit(page, gateway.base, gateway.setup_code, PASSWORD)
    cloud = CommandContext(actor="cloud")
    await gateway.daemon.commands.call("trace.calls", {"duration_minutes": 1}, cloud)
    try:
        await _goto(page, gateway, "advanced")
        await page.wait_for_selector("#trace-state:has-text('Started from the cloud: tracing')")
    finally:
        await gateway.daemon.commands.call("trace.stop", {}, cloud)
    await context.close()
