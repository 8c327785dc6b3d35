"""Monitoring set from the Advanced page's API (docs/settings.md, docs/monitoring.md):
applied live to the real agent and broker connection, secrets encrypted at rest and
never shown. Peers: net-snmp's tools and snmpd, mosquitto."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from clgwd.commands import CommandContext
from clgwd.config import ClgwdConfig
from tests.daemon.proc import run_cli
from tests.monitor.conftest import Broker
from tests.monitor.peers import COMMUNITY, V3_ARGS, free_udp_port, mqtt_sub, netsnmp, snmp_yaml
from tests.web.conftest import Gateway, setup_admin, start_gateway
from tests.web.test_api import _req

pytestmark = pytest.mark.peers
NEW_COMMUNITY = "page-community-7Q"
PAGE_USER = {"name": "pageuser", "auth_protocol": "sha512", "auth_key": "page-auth-key-91",
             "priv_protocol": "aes256", "priv_key": "page-priv-key-37"}
TRAP_COMMUNITY = "trap-community-5Z"
BROKER_PASSWORD = "broker-pass-word-8K"
PLATFORM_COMMUNITY = "platform-community-3J"
SECRETS = (NEW_COMMUNITY, PAGE_USER["auth_key"], PAGE_USER["priv_key"], TRAP_COMMUNITY,
           BROKER_PASSWORD, PLATFORM_COMMUNITY)
SYS_NAME = "1.3.6.1.2.1.1.5.0"


class Page:
    """The running daemon, its SNMP agent's port and a logged-in API client."""

    def __init__(self, gw: Gateway, task: asyncio.Task[int], port: int,
                 client: aiohttp.ClientSession, csrf: str) -> None:
        self.gw, self.task, self.port, self.client, self.csrf = gw, task, port, client, csrf

    async def req(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await _req(self.client, self.gw, self.csrf, method, path, body)

    async def stop(self) -> None:
        self.gw.daemon.request_stop("test over")
        await asyncio.wait_for(self.task, 15)


@pytest.fixture
async def page(make_config: Callable[..., ClgwdConfig]) -> AsyncIterator[Page]:
    """A daemon whose config file turns the agent on with COMMUNITY and one v3 user."""
    port = free_udp_port()
    gw, task = await start_gateway(make_config(snmp_yaml(port)))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        page = Page(gw, task, port, client, await setup_admin(client, gw))
        try:
            yield page
        finally:
            if not page.task.done():
                await page.stop()


async def _get(tmp_path: Path, port: int, *args: str) -> tuple[int, str]:
    code, out, err = await netsnmp(tmp_path, "snmpget", *args, "-t", "0.5", "-r", "0", "-On",
                                   f"127.0.0.1:{port}", SYS_NAME)
    return code, out + err


async def test_community_set_on_the_page_applies_without_a_restart(
        page: Page, tmp_path: Path) -> None:
    """After PUT /monitoring/snmp with a new community, snmpget with it answers and the
    old community is refused; the same daemon keeps running, the v3 user from the file
    still works."""
    code, _ = await _get(tmp_path, page.port, "-v2c", "-c", COMMUNITY)
    assert code == 0
    status, body = await page.req("PUT", "/api/v1/monitoring/snmp", {
        "listen": [f"127.0.0.1:{page.port}"], "community": NEW_COMMUNITY})
    assert status == 200, body
    assert body["snmp"]["community"] == "set"
    code, out = await _get(tmp_path, page.port, "-v2c", "-c", NEW_COMMUNITY)
    assert code == 0 and "STRING:" in out, out
    code, out = await _get(tmp_path, page.port, "-v2c", "-c", COMMUNITY)
    assert code != 0 and "Timeout" in out
    code, out = await _get(tmp_path, page.port, *V3_ARGS)
    assert code == 0 and "STRING:" in out, out
    assert not page.task.done()


async def test_secrets_are_encrypted_at_rest_and_never_shown(
        page: Page, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Community, v3 keys, a trap community, the broker password and a platform's
    community saved from the page: not in clear in any file of the state dir, in no API
    answer, in no log line and not in config.get; each shows as "set". The saved keys
    still work after a restart (decrypted from the state DB)."""
    caplog.set_level(logging.DEBUG)
    answers = [await page.req("PUT", "/api/v1/monitoring/snmp", {
        "listen": [f"127.0.0.1:{page.port}"], "community": NEW_COMMUNITY,
        "users": [PAGE_USER], "traps": [{"address": "127.0.0.1:9", "community": TRAP_COMMUNITY}]})]
    answers.append(await page.req("PUT", "/api/v1/monitoring/mqtt", {
        "url": "mqtt://127.0.0.1:9", "username": "gw", "password": BROKER_PASSWORD}))
    answers.append(await page.req("PUT", "/api/v1/monitoring/inventory", {
        "interval": 3600, "platforms": [{"name": "lan1", "address": "127.0.0.1:9",
                                         "community": PLATFORM_COMMUNITY}]}))
    answers.append(await page.req("GET", "/api/v1/monitoring"))
    assert [status for status, _ in answers] == [200, 200, 200, 200], answers
    config_get = await page.gw.daemon.commands.call("config.get", {"keys": ["monitor",
                                                                            "inventory"]},
                                                    CommandContext("local:cli"))
    texts = [json.dumps(body) for _, body in answers] + [json.dumps(config_get), caplog.text]
    monitoring = answers[-1][1]
    snmp = monitoring["monitor"]["data"]["snmp"]
    assert snmp["community"] == "set"
    assert snmp["users"][0]["auth_key"] == snmp["users"][0]["priv_key"] == "set"
    assert snmp["traps"][0]["community"] == "set"
    assert monitoring["monitor"]["data"]["mqtt"]["password"] == "set"
    assert monitoring["inventory"]["data"]["platforms"][0]["community"] == "set"
    await page.stop()
    state = page.gw.daemon.config.state.dir
    files = [p for p in state.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".db") or ".db" in p.name for p in files)
    raw = b"".join(p.read_bytes() for p in files)
    for secret in SECRETS:
        assert secret.encode() not in raw, secret
        for text in texts:
            assert secret not in text, secret
    gw, page.task = await start_gateway(page.gw.daemon.config)
    page.gw = gw
    code, out = await _get(tmp_path, page.port, "-v2c", "-c", NEW_COMMUNITY)
    assert code == 0 and "STRING:" in out, out
    code, out = await _get(tmp_path, page.port, "-v3", "-l", "authPriv", "-u", "pageuser",
                           "-a", "SHA-512", "-A", PAGE_USER["auth_key"], "-x", "AES-256",
                           "-X", PAGE_USER["priv_key"])
    assert code == 0 and "STRING:" in out, out


async def test_null_secrets_keep_the_ones_in_force(page: Page, tmp_path: Path) -> None:
    """Saving the form again without typing the secrets (null) keeps the community and
    the v3 user's keys; "" for the community turns v2c off."""
    await page.req("PUT", "/api/v1/monitoring/snmp", {
        "listen": [f"127.0.0.1:{page.port}"], "community": NEW_COMMUNITY,
        "users": [PAGE_USER]})
    status, body = await page.req("PUT", "/api/v1/monitoring/snmp", {
        "listen": [f"127.0.0.1:{page.port}"], "community": None, "location": "rack 2",
        "users": [{**PAGE_USER, "auth_key": None, "priv_key": None}]})
    assert status == 200, body
    assert body["snmp"]["location"] == "rack 2"
    code, out = await _get(tmp_path, page.port, "-v2c", "-c", NEW_COMMUNITY)
    assert code == 0, out
    code, out = await _get(tmp_path, page.port, "-v3", "-l", "authPriv", "-u", "pageuser",
                           "-a", "SHA-512", "-A", PAGE_USER["auth_key"], "-x", "AES-256",
                           "-X", PAGE_USER["priv_key"])
    assert code == 0, out
    status, body = await page.req("PUT", "/api/v1/monitoring/snmp", {"community": ""})
    assert status == 200 and body["snmp"]["community"] is None, body
    code, out = await _get(tmp_path, page.port, "-v2c", "-c", NEW_COMMUNITY)
    assert code != 0


async def test_bad_values_are_refused_naming_the_key(page: Page, tmp_path: Path) -> None:
    """A short v3 key, a listen address that is not host:port and a port already in use
    are refused with invalid_input naming the key (never echoing a secret); what was in
    force keeps working and nothing is saved."""
    status, body = await page.req("PUT", "/api/v1/monitoring/snmp", {
        "users": [{"name": "u1", "auth_key": "short7!", "priv_key": "long-enough-1"}]})
    assert status == 422 and body["code"] == "invalid_input"
    assert "monitor.snmp.users[0].auth_key: must be at least 8 characters" in body["message"]
    assert "short7!" not in json.dumps(body)
    status, body = await page.req("PUT", "/api/v1/monitoring/snmp", {"listen": ["nonsense"]})
    assert status == 422 and "monitor.snmp.listen[0]: must be host:port" in body["message"]
    with_socket = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    try:
        busy = with_socket[0].get_extra_info("sockname")[1]
        status, body = await page.req("PUT", "/api/v1/monitoring/snmp", {
            "listen": [f"127.0.0.1:{busy}"], "community": NEW_COMMUNITY})
    finally:
        with_socket[0].close()
    assert status == 422 and "monitor.snmp.listen: cannot bind" in body["message"], body
    assert "nothing was saved" in body["message"]
    code, out = await _get(tmp_path, page.port, "-v2c", "-c", COMMUNITY)
    assert code == 0, out
    status, body = await page.req("GET", "/api/v1/monitoring")
    sources = {e["key"]: e["source"] for e in body["monitor"]["data"]["settings"]}
    assert sources["monitor.snmp.community"] == "file"


async def test_each_key_reports_its_source_and_a_shadowed_file_value(page: Page) -> None:
    """GET /monitoring: a key saved on the page is ``page`` with who saved it, the
    others ``file`` or ``default``; the file's community, overridden by the saved one,
    is named in ``notes``."""
    await page.req("PUT", "/api/v1/monitoring/snmp", {"community": NEW_COMMUNITY})
    status, body = await page.req("GET", "/api/v1/monitoring")
    assert status == 200
    data = body["monitor"]["data"]
    entries = {e["key"]: e for e in data["settings"]}
    assert (entries["monitor.snmp.community"]["source"],
            entries["monitor.snmp.community"]["set_by"]) == ("page", "local:web:admin")
    assert entries["monitor.snmp.community"]["value"] == "set"
    assert entries["monitor.snmp.users"]["source"] == "file"
    assert entries["monitor.snmp.max_repetitions"]["source"] == "default"
    assert any(n.startswith("monitor.snmp.community: the config file's value does not apply")
               for n in data["notes"])
    status, body = await page.req("GET", "/api/v1/events?asset=SNMP%20agent")
    assert [e["properties_changed"] for e in body["events"]] == [["community"]]


async def test_broker_set_on_the_page_gets_the_retained_status(
        page: Page, broker: Broker) -> None:
    """PUT /monitoring/mqtt with the broker's URL, then with the TLS listener, a user and
    a password: mosquitto_sub reads the retained status under the page's topic prefix
    each time, without a restart."""
    status, body = await page.req("PUT", "/api/v1/monitoring/mqtt", {
        "url": f"mqtt://127.0.0.1:{broker.plain}", "topic_prefix": "site/page-gw"})
    assert status == 200, body
    status_doc = json.loads((await mqtt_sub(broker.plain, "site/page-gw/status"))[0])
    assert status_doc["state"] == "online"
    status, body = await page.req("PUT", "/api/v1/monitoring/mqtt", {
        "url": f"mqtts://127.0.0.1:{broker.tls}", "username": "clgwd", "password": "s3cret",
        "ca_file": str(broker.cafile), "topic_prefix": "site/tls-gw"})
    assert status == 200 and body["mqtt"]["password"] == "set", body
    tls = ("--cafile", str(broker.cafile), "-u", "clgwd", "-P", "s3cret")
    status_doc = json.loads((await mqtt_sub(broker.tls, "site/tls-gw/status", 1, *tls))[0])
    assert status_doc["state"] == "online"
    async with asyncio.timeout(10):
        while (await page.req("GET", "/api/v1/monitoring"))[1]["monitor"]["data"]["mqtt"][
                "state"] != "connected":
            await asyncio.sleep(0.1)


async def test_lan_platform_added_on_the_page_is_polled(page: Page, snmpd: int) -> None:
    """PUT /monitoring/inventory with net-snmp's snmpd as a LAN platform: the inventory
    polls it at once (no restart) and reports it reachable with its sysName."""
    status, body = await page.req("PUT", "/api/v1/monitoring/inventory", {
        "interval": 1800, "platforms": [{"name": "lan1", "address": f"127.0.0.1:{snmpd}",
                                         "community": "lan-ro"}]})
    assert status == 200, body
    assert body["interval"] == 1800 and body["platforms"][0]["community"] == "set"
    async with asyncio.timeout(15):
        while True:
            doc = await page.gw.daemon.commands.call("inventory.get", {},
                                                     CommandContext("local:cli"))
            if doc["platforms"] and doc["platforms"][0]["reachable"]:
                break
            await asyncio.sleep(0.2)
    assert doc["platforms"][0]["host"] == "lan-platform-1"


async def test_a_file_reload_keeps_what_the_page_saved(
        page: Page, tmp_path: Path, make_config: Callable[..., ClgwdConfig]) -> None:
    """A reloaded config file (new sysContact) applies its own keys, and the community
    saved on the page stays in force over the file's."""
    await page.req("PUT", "/api/v1/monitoring/snmp", {"community": NEW_COMMUNITY})
    reloaded = make_config(snmp_yaml(page.port, "    contact: noc@example.test\n"))
    await page.gw.daemon.component("monitor").apply_config(reloaded)
    code, out, err = await netsnmp(tmp_path, "snmpget", "-v2c", "-c", NEW_COMMUNITY, "-On",
                                   f"127.0.0.1:{page.port}", "1.3.6.1.2.1.1.4.0")
    assert code == 0 and "noc@example.test" in out, err
    code, _ = await _get(tmp_path, page.port, "-v2c", "-c", COMMUNITY)
    assert code != 0


async def test_config_get_on_the_cli_shows_the_page_values_and_sources(page: Page) -> None:
    """``clgwd config get monitor inventory --json`` (the control socket) reports what the
    page saved with source page and who saved it; secrets only as "set"."""
    await page.req("PUT", "/api/v1/monitoring/snmp", {"community": NEW_COMMUNITY})
    await page.req("PUT", "/api/v1/monitoring/inventory", {"interval": 7200})
    code, out, err = await run_cli("config", "get", "monitor", "inventory", "--json",
                                   "--socket", str(page.gw.daemon.config.control.socket))
    assert code == 0, err
    assert NEW_COMMUNITY not in out
    entries = {e["key"]: e for e in json.loads(out)["settings"]}
    assert (entries["monitor.snmp.community"]["value"],
            entries["monitor.snmp.community"]["source"],
            entries["monitor.snmp.community"]["set_by"]) == ("set", "page", "local:web:admin")
    assert (entries["inventory.interval"]["value"],
            entries["inventory.interval"]["source"]) == (7200.0, "page")
    assert entries["monitor.mqtt.url"]["source"] == "default"


async def test_config_forget_returns_the_monitoring_to_the_file(
        page: Page, tmp_path: Path) -> None:
    """``clgwd config forget monitor.snmp inventory``: the file's community answers again
    at once (no restart), the page's is refused, both sections report file/default, the
    saved rows and secrets are gone; forgetting again says nothing was saved."""
    await page.req("PUT", "/api/v1/monitoring/snmp", {"community": NEW_COMMUNITY})
    await page.req("PUT", "/api/v1/monitoring/inventory", {"interval": 7200})
    socket_args = ("--socket", str(page.gw.daemon.config.control.socket))
    code, out, err = await run_cli("config", "forget", "monitor.snmp", "inventory",
                                   *socket_args)
    assert code == 0, err
    assert "forgotten: monitor.snmp" in out and "forgotten: inventory" in out
    assert (await _get(tmp_path, page.port, "-v2c", "-c", COMMUNITY))[0] == 0
    assert (await _get(tmp_path, page.port, "-v2c", "-c", NEW_COMMUNITY))[0] != 0
    _, body = await page.req("GET", "/api/v1/monitoring")
    sources = {e["key"]: e["source"] for part in ("monitor", "inventory")
               for e in body[part]["data"]["settings"]}
    assert sources["monitor.snmp.community"] == "file"
    assert sources["inventory.interval"] == "default"
    assert await page.gw.store.secrets.get("saved.monitor.snmp") is None
    code, out, err = await run_cli("config", "forget", "monitor.snmp", *socket_args)
    assert code == 0 and "nothing was saved for monitor" in out, err
