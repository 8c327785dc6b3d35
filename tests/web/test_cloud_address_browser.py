"""The Cloud step in real Chromium on a gateway whose config file sets no cloud.url:
type the address, paste the private cloud's CA, enroll, see the link online."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from clgwd.commands import CommandContext
from clgwd.config.cloud import ADDRESS_SETTING
from clgwd.web.messages import HUMAN
from tests.link.harness import other_ca_pem
from tests.web.browser import check_axe, first_visit, shot
from tests.web.conftest import PASSWORD, Gateway
from tests.web.test_browser import _goto, _page, axe, browser
from tests.web.test_cloud_address_api import bare_gateway, refcloud

__all__ = ["axe", "bare_gateway", "browser", "refcloud"]  # fixtures shared with other files
pytestmark = [pytest.mark.peers, pytest.mark.timeout(150)]

SITE = {"site_name": "Ballad Industries", "address": "2301 Express Avenue", "city": "Ottawa",
        "country": "Canada", "province": "Ontario", "postal_code": "K0A 2Z0"}
ACCOUNT = "1234567891"


async def _cloud_step_is_next(page: Any, gw: Gateway) -> None:
    """With the site saved, the stepper and the Overview send the technician to the Cloud
    step, never to a config file."""
    await gw.daemon.commands.call("site.set", SITE, CommandContext("local:web:admin"))
    await _goto(page, gw, "overview")
    await page.wait_for_selector("nav li[data-step=cloud][data-state=next]")
    card = await (await page.wait_for_selector("#next-step p:nth-of-type(2)")).text_content()
    assert "cloud address" in (card or "")
    assert "config" not in (card or "").lower()


async def _fill_enrollment(page: Any, url: str, ca_pem: str, token: str) -> None:
    await page.fill("#cloud_url", url)
    await page.click("#cloud-ca summary")
    await page.fill("#cloud_ca_pem", ca_pem)
    await page.fill("#account_id", ACCOUNT)
    await page.fill("#enroll_token", token)
    await page.click("#enroll-form button[type=submit]")


async def _shows_connected(page: Any) -> None:
    """Reload once the API says the link is connected, until the page shows it (the page
    renders the state at load; a reconnect in between would show "connecting")."""
    async with asyncio.timeout(10):
        while True:
            await page.wait_for_function(
                "() => fetch('/api/v1/cloud').then(r => r.json())"
                ".then(d => d.link === 'connected')", polling=100)
            await page.reload()
            state = await page.wait_for_selector("#cloud-state p")
            if "Link: connected" in (await state.text_content() or ""):
                return


async def test_typing_the_address_and_pasting_the_ca_gets_the_link_online(
        bare_gateway: Gateway, browser: Any, axe: str) -> None:
    """No cloud.url in the file: the Cloud step is next, says no address is set, and
    its form takes the address and the CA; after Enroll the link is connected and the
    page shows the address as saved on this gateway (prefilled from then on)."""
    gw = bare_gateway
    assert gw.cloud is not None
    context, page, csp_errors = await _page(browser)
    await first_visit(page, gw.base, gw.setup_code, PASSWORD)
    await _cloud_step_is_next(page, gw)
    await _goto(page, gw, "cloud")
    await page.wait_for_selector("#cloud-state:has-text('Cloud address: not set yet')")
    assert await page.input_value("#cloud_url") == ""
    assert await page.get_attribute("#cloud-ca", "open") is None
    await check_axe(page, axe, "cloud-no-address")
    await _fill_enrollment(page, gw.cloud.url, gw.cloud.ca.cert_pem,
                           await gw.cloud.create_token(ACCOUNT))
    await page.wait_for_selector("#toast:has-text('Enrolled.')")
    assert await page.input_value("#cloud_ca_pem") == ""
    await page.wait_for_selector(f"#cloud-state:has-text('Cloud address: {gw.cloud.url} "
                                 "(saved on this gateway)')")
    await _shows_connected(page)
    assert await page.input_value("#cloud_url") == gw.cloud.url
    assert (await gw.store.settings.get(ADDRESS_SETTING))["url"] == gw.cloud.url
    await check_axe(page, axe, "cloud-address-enrolled")
    await shot(page, "cloud-address-enrolled")
    assert csp_errors == []
    await context.close()


async def test_a_wrong_ca_shows_the_tls_sentence_and_saves_nothing(
        bare_gateway: Gateway, browser: Any, axe: str) -> None:
    """A CA that did not sign the cloud's certificate: the form shows, as an alert, that
    the certificate was not trusted and to check the CA certificate; the CA field is
    marked; nothing is saved."""
    gw = bare_gateway
    assert gw.cloud is not None
    context, page, csp_errors = await _page(browser)
    await first_visit(page, gw.base, gw.setup_code, PASSWORD)
    await _goto(page, gw, "cloud")
    await _fill_enrollment(page, gw.cloud.url, other_ca_pem(),
                           await gw.cloud.create_token(ACCOUNT))
    title, next_step = HUMAN["cloud_untrusted"]
    await page.wait_for_selector(f"#enroll-form-err[role=alert]:has-text(\"{title}\")")
    text = await page.text_content("#enroll-form-err") or ""
    assert next_step in text and "Check the CA certificate" in text
    assert await page.get_attribute("#cloud_ca_pem", "aria-invalid") == "true"
    assert await page.get_attribute("#cloud-ca", "open") is not None
    assert await gw.store.settings.get(ADDRESS_SETTING) is None
    await check_axe(page, axe, "cloud-address-untrusted")
    await shot(page, "cloud-address-untrusted")
    assert csp_errors == []
    await context.close()

