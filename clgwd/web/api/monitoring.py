"""Onboarding page API, section: monitoring on the Advanced page (SNMP agent, MQTT, the
inventory's schedule and LAN platforms).

The monitor and inventory parts own these settings (``monitor.get/set``,
``inventory.settings.get/set``); a saved change applies at once. Secrets are write-only:
answers carry ``"set"`` or null in their place (docs/settings.md).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from clgwd.web import models
from clgwd.web.api.common import Route, call, parse_body, reply, section


async def get_monitoring(request: web.Request) -> web.Response:
    return reply({"monitor": await section(request, "monitor.get"),
                  "inventory": await section(request, "inventory.settings.get")})


async def put_snmp(request: web.Request) -> web.Response:
    body = await parse_body(request, models.MonitorSnmp)
    return reply(await call(request, "monitor.set",
                            {"snmp": body.model_dump(exclude_unset=True)}))


async def put_mqtt(request: web.Request) -> web.Response:
    body = await parse_body(request, models.MonitorMqtt)
    return reply(await call(request, "monitor.set",
                            {"mqtt": body.model_dump(exclude_unset=True)}))


async def put_inventory(request: web.Request) -> web.Response:
    body = await parse_body(request, models.InventorySettings)
    return reply(await call(request, "inventory.settings.set",
                            body.model_dump(exclude_unset=True)))


async def post_forget(request: web.Request) -> web.Response:
    """The page's "Use the config file's settings": one call per owning part."""
    body = await parse_body(request, models.MonitoringForget)
    monitor = [s for s in dict.fromkeys(body.sections) if s != "inventory"]
    forgotten: list[str] = []
    if monitor:
        forgotten += (await call(request, "monitor.forget", {"sections": monitor}))[
            "forgotten"]
    if "inventory" in body.sections:
        forgotten += (await call(request, "inventory.settings.forget", {}))["forgotten"]
    return reply({"forgotten": forgotten,
                  "monitor": await section(request, "monitor.get"),
                  "inventory": await section(request, "inventory.settings.get")})


ROUTES: Final = (
    Route("GET", "/api/v1/monitoring", get_monitoring,
          "Monitoring settings in force (secrets as set/null) and each one's source",
          router_methods=("monitor.get", "inventory.settings.get")),
    Route("PUT", "/api/v1/monitoring/snmp", put_snmp, "Set the SNMP agent (applies at once)",
          models.MonitorSnmp, router_methods=("monitor.set",)),
    Route("PUT", "/api/v1/monitoring/mqtt", put_mqtt, "Set MQTT publishing (applies at once)",
          models.MonitorMqtt, router_methods=("monitor.set",)),
    Route("PUT", "/api/v1/monitoring/inventory", put_inventory,
          "Set the inventory schedule and LAN platforms (applies at once)",
          models.InventorySettings, router_methods=("inventory.settings.set",)),
    Route("POST", "/api/v1/monitoring/forget", post_forget,
          "Use the config file's values again for these sections",
          models.MonitoringForget,
          router_methods=("monitor.forget", "inventory.settings.forget")),
)
