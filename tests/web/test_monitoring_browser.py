"""The Advanced page's monitoring forms in real Chromium: the SNMP agent, MQTT and the
inventory set from the page apply to the running daemon; secrets show only as "set"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from clgwd.config import ClgwdConfig
from tests.monitor.peers import COMMUNITY, free_udp_port, netsnmp, snmp_yaml
from tests.web.browser import check_axe, first_visit, shot
from tests.web.conftest import PASSWORD, Gateway, start_gateway
from tests.web.test_browser import _goto, _page, axe, browser

__all__ = ["axe", "browser"]  # fixtures shared with test_browser.py
pytestmark = [pytest.mark.peers, pytest.mark.timeout(150)]
NEW_COMMUNITY = "browser-community-4T"
BROKER_PASSWORD = "browser-broker-pw-6M"


@pytest.fixture
async def snmp_gateway(make_config: Callable[..., ClgwdConfig]
                       ) -> AsyncIterator[tuple[Gateway, int]]:
    """A daemon whose config file turns the SNMP agent on (community from the file)."""
    port = free_udp_port()
    gw, task = await start_gateway(make_config(snmp_yaml(port)))
    yield gw, port
    gw.daemon.request_stop("test over")
    await asyncio.wait_for(task, 15)


async def _sys_name(tmp_path: Path, port: int, community: str) -> int:
    code, _, _ = await netsnmp(tmp_path, "snmpget", "-v2c", "-c", community, "-t", "0.5",
                               "-r", "0", f"127.0.0.1:{port}", "1.3.6.1.2.1.1.5.0")
    return code


async def test_monitoring_forms_apply_and_never_show_secrets(
        snmp_gateway: tuple[Gateway, int], browser: Any, axe: str, tmp_path: Path) -> None:
    """The SNMP form shows the file's agent; a new community saved there answers snmpget
    at once and the old one is refused; the field is emptied and says "set", and the
    secret is nowhere in the page. The MQTT password and a LAN platform's community do
    the same; a bad listen address is marked at its field with the server's words.
    "Use the config file's SNMP agent settings" brings the file's community back. No
    serious axe issue."""
    gateway, port = snmp_gateway
    context, page, csp_errors = await _page(browser)
    await first_visit(page, gateway.base, gateway.setup_code, PASSWORD)
    await _goto(page, gateway, "advanced")
    await page.wait_for_selector(f"#snmp-state:has-text('Agent answering on 127.0.0.1:{port}')")
    assert await page.input_value("#snmp-listen") == f"127.0.0.1:{port}"
    assert await page.text_content("#snmp-community-state") == "Community: set"
    assert "clgwdv3" in (await page.text_content("#snmp-users") or "")
    await check_axe(page, axe, "advanced-monitoring")

    await page.fill("#snmp-listen", "nonsense")
    await page.click("#snmp-save")
    await page.wait_for_selector("#snmp-form-err:has-text('must be host:port')")
    assert await page.get_attribute("#snmp-listen", "aria-invalid") == "true"
    await page.fill("#snmp-listen", f"127.0.0.1:{port}")
    await page.fill("#snmp-community", NEW_COMMUNITY)
    await page.fill("#snmp-location", "Rack 4")
    await page.click("#snmp-save")
    await page.wait_for_selector("#toast:has-text('SNMP agent saved')")
    assert await page.input_value("#snmp-community") == ""
    assert await page.text_content("#snmp-community-state") == "Community: set"
    assert await _sys_name(tmp_path, port, NEW_COMMUNITY) == 0
    assert await _sys_name(tmp_path, port, COMMUNITY) != 0

    await page.fill("#mqtt-url", "mqtt://127.0.0.1:9")
    await page.fill("#mqtt-username", "gw")
    await page.fill("#mqtt-password", BROKER_PASSWORD)
    await page.click("#mqtt-save")
    await page.wait_for_selector("#toast:has-text('MQTT saved')")
    assert await page.text_content("#mqtt-password-state") == "Password: set"
    assert await page.input_value("#mqtt-password") == ""

    await page.fill("#inv-interval", "30")
    await page.fill("#inv-name", "pbx-a")
    await page.fill("#inv-address", "127.0.0.1:9")
    await page.fill("#inv-community", "platform-ro-8")
    await page.click("#inv-save")
    await page.wait_for_selector("#toast:has-text('Inventory settings saved')")
    await page.wait_for_selector("#inv-platforms:has-text('pbx-a at 127.0.0.1:9 (community set)')")

    await page.reload()
    await page.wait_for_selector("#view-advanced:not([hidden])")
    await page.wait_for_selector("#snmp-state:has-text('Agent answering')")
    await page.click("#mon-sources >> xpath=..")  # open "Where each ... comes from"
    sources = await page.text_content("#mon-sources") or ""
    assert 'monitor.snmp.community: "set" (page, set by local:web:admin)' in sources
    assert "inventory.interval: 1800 (page" in sources
    html = await page.content()
    for secret in (NEW_COMMUNITY, BROKER_PASSWORD, "platform-ro-8"):
        assert secret not in html
    await check_axe(page, axe, "advanced-monitoring-saved")
    await shot(page, "advanced-monitoring")

    await page.click("#snmp-forget")
    await page.wait_for_selector("#toast:has-text(\"The config file's settings apply again\")")
    assert await page.is_hidden("#snmp-forget")
    assert await page.input_value("#snmp-location") == ""
    assert await _sys_name(tmp_path, port, COMMUNITY) == 0
    assert await _sys_name(tmp_path, port, NEW_COMMUNITY) != 0
    assert csp_errors == []
    await context.close()
