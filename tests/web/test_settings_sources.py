"""The page's API shows each setting's value and source (docs/settings.md)."""

from __future__ import annotations

import aiohttp

from clgwd.cli.demo import sample_directory
from tests.web.conftest import Gateway, setup_admin
from tests.web.test_api import _req

CSV_PBX = {"type": "csv", "name": "Sample directory",
           "options": {"path": str(sample_directory())}}


async def test_pbx_and_schedule_answers_say_where_each_value_came_from(
        gateway: Gateway, client: aiohttp.ClientSession) -> None:
    """GET /pbx and /sync/schedule carry ``settings``: page for what the page saved,
    file or default for the rest; the password entry is only "set" or null."""
    csrf = await setup_admin(client, gateway)
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/sync/schedule")
    assert status == 200
    [interval] = body["settings"]
    assert (interval["key"], interval["source"]) == ("sync.interval_minutes", "default")
    await _req(client, gateway, csrf, "PUT", "/api/v1/pbx", CSV_PBX)
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/pbx")
    sources = {e["key"]: (e["source"], e["set_by"]) for e in body["settings"]}
    assert sources["pbx.name"] == ("page", "local:web:admin")
    assert sources["pbx.file.path"] == ("page", "local:web:admin")
    assert sources["pbx.password"] == ("default", None)
    status, body = await _req(client, gateway, csrf, "PUT", "/api/v1/sync/schedule",
                              {"interval_minutes": 30})
    assert body["settings"][0]["source"] == "page" and body["settings"][0]["value"] == 30
