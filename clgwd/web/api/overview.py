"""Onboarding page API, section: Overview, deployment summary, tunnels, inventory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from clgwd.web import auth, models
from clgwd.web.api.common import (
    Route,
    call,
    no_secrets,
    parse_body,
    reply,
    section,
    services,
)
from clgwd.web.nextstep import OnboardingState, next_step, step_states


async def get_overview(request: web.Request) -> web.Response:
    svc = services(request)
    sections = {name: await section(request, method) for name, method in (
        ("cloud", "cloud.status"), ("pbx", "pbx.get"), ("sync", "sync.schedule.get"),
        ("inventory", "inventory.report"), ("tunnels", "tunnel.list"))}
    alerts = [{"code": a.code, "severity": a.severity.value, "message": a.message,
               "since": a.since} for a in await svc.store.alerts.active()]
    site = (_data(await section(request, "site.get")) or {}).get("site")
    state = derive_state(site is not None, sections, alerts)
    return reply({
        "next": next_step(state).as_json(), "alerts": alerts, "site": site,
        "steps": {page: value.value for page, value in step_states(state).items()},
        "components": {n: s.as_json() for n, s in svc.statuses().items()},
        **{k: no_secrets(v) for k, v in sections.items()},
    })


def _data(section: Mapping[str, Any]) -> Mapping[str, Any] | None:
    data = section.get("data")
    return data if section.get("available") and isinstance(data, Mapping) else None


def derive_state(site_configured: bool, sections: Mapping[str, Mapping[str, Any]],
                 alerts: list[dict[str, Any]]) -> OnboardingState:
    """Map the parts' answers (documented in docs/api.md) to the onboarding inputs."""
    cloud, pbx = _data(sections["cloud"]), _data(sections["pbx"])
    sync, inventory = _data(sections["sync"]), _data(sections["inventory"])
    last = sync.get("last_sync") if sync else None
    return OnboardingState(
        site_configured=site_configured,
        cloud_enrolled=bool(cloud.get("enrolled")) if cloud else None,
        cloud_connected=cloud.get("link") == "connected" if cloud else None,
        pbx_configured=bool(pbx.get("configured")) if pbx else None,
        pbx_connected=bool(pbx.get("connected")) if pbx else None,
        last_sync_ok=(bool(last.get("ok")) if isinstance(last, Mapping) else False)
        if sync else None,
        synced_users=int(inventory.get("users", 0)) if inventory else None,
        critical_alerts=tuple(a["message"] for a in alerts if a["severity"] == "critical"),
        sync_held_back=int((sync.get("safety_abort") or {}).get("count", 0)) if sync else 0,
    )


async def get_deployment(request: web.Request) -> web.Response:
    cloud = await section(request, "cloud.status")
    inventory = await section(request, "inventory.report")
    cloud_data, inv = _data(cloud), _data(inventory)
    return reply({
        "cloud": cloud, "inventory": inventory,
        "account_id": cloud_data.get("account_id") if cloud_data else None,
        "synced_users": inv.get("users") if inv else None,
        "ready": bool(cloud_data and cloud_data.get("enrolled") and inv and inv.get("users")),
    })


async def get_tunnels(request: web.Request) -> web.Response:
    return reply(await call(request, "tunnel.list", {}))


async def post_tunnels_start(request: web.Request) -> web.Response:
    body = await parse_body(request, models.TunnelAction)
    return reply(await call(request, "tunnel.start", body.model_dump(exclude_defaults=True)))


async def post_tunnels_stop(request: web.Request) -> web.Response:
    body = await parse_body(request, models.TunnelAction)
    if body.expiry is not None:
        raise auth.InvalidInput("expiry: only a start takes an expiry")
    return reply(await call(request, "tunnel.stop", body.model_dump(exclude_defaults=True)))


async def get_inventory(request: web.Request) -> web.Response:
    return reply(await call(request, "inventory.report", {}))


ROUTES: Final = (
    Route("GET", "/api/v1/overview", get_overview, "Next step, alerts and every part's state",
          router_methods=("cloud.status", "pbx.get", "sync.schedule.get",
                          "inventory.report", "tunnel.list", "site.get")),
    Route("GET", "/api/v1/deployment", get_deployment, "Ready-to-deploy summary",
          router_methods=("cloud.status", "inventory.report")),
    Route("GET", "/api/v1/tunnels", get_tunnels, "Tunnels", router_methods=("tunnel.list",)),
    Route("POST", "/api/v1/tunnels/start", post_tunnels_start, "Start tunnels",
          models.TunnelAction, router_methods=("tunnel.start",)),
    Route("POST", "/api/v1/tunnels/stop", post_tunnels_stop, "Stop tunnels",
          models.TunnelAction, router_methods=("tunnel.stop",)),
    Route("GET", "/api/v1/inventory", get_inventory, "Inventory summary",
          router_methods=("inventory.report",)),
)
