"""Onboarding page API, section: Gateway information (site) and the Ethernet ports."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from clgwd.store import Action, Event
from clgwd.web import models
from clgwd.web.api.common import (
    SITE_SETTING,
    Route,
    actor_of,
    call,
    parse_body,
    reply,
    services,
)


async def get_site(request: web.Request) -> web.Response:
    site = await services(request).site()
    return reply({"configured": site is not None, "site": site})


async def put_site(request: web.Request) -> web.Response:
    svc = services(request)
    new = (await parse_body(request, models.SiteInfo)).model_dump()
    old = await svc.site() or {}
    changed = sorted(k for k in new if old.get(k) != new[k])
    if changed:
        async with svc.store.db.transaction() as tx:
            await svc.store.settings.set_in(tx, SITE_SETTING, new)
            await svc.store.history.record(tx, Event(
                actor=actor_of(request), action=Action.EDIT if old else Action.CREATE,
                asset="Site", subject=new["site_name"], properties_changed=changed,
                core={k: new[k] for k in changed}))
            tx.after_commit(lambda: svc.remember_site(new))
    return reply({"configured": True, "site": new, "changed": changed})


async def get_network(request: web.Request) -> web.Response:
    return reply(await call(request, "network.get", {}))


async def post_network_apply(request: web.Request) -> web.Response:
    body = await parse_body(request, models.NetworkApply)
    return reply(await call(request, "network.apply", body.model_dump()))


async def post_network_confirm(request: web.Request) -> web.Response:
    body = await parse_body(request, models.NetworkConfirm)
    return reply(await call(request, "network.confirm", body.model_dump()))


async def post_network_preflight(request: web.Request) -> web.Response:
    """The network part's pre-flight report; checks with no target are not in it."""
    await parse_body(request, models.Empty)
    return reply(await call(request, "network.preflight", {}))


ROUTES: Final = (
    Route("GET", "/api/v1/site", get_site, "Gateway information (site)"),
    Route("PUT", "/api/v1/site", put_site, "Save the gateway information", models.SiteInfo),
    Route("GET", "/api/v1/network", get_network, "Ethernet ports",
          router_methods=("network.get",)),
    Route("POST", "/api/v1/network/apply", post_network_apply,
          "Apply port settings with commit-confirm", models.NetworkApply,
          router_methods=("network.apply",)),
    Route("POST", "/api/v1/network/confirm", post_network_confirm,
          "Confirm new port settings from the new address", models.NetworkConfirm,
          router_methods=("network.confirm",)),
    Route("POST", "/api/v1/network/preflight", post_network_preflight,
          "Run the pre-flight checks (DNS, NTP, cloud, STUN, SIP-TLS, PBX, proxy)",
          models.Empty, router_methods=("network.preflight",)),
)
