"""Onboarding page API, section: Gateway information (site) and the Ethernet ports."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from clgwd.web import models
from clgwd.web.api.common import Route, call, parse_body, reply


async def get_site(request: web.Request) -> web.Response:
    return reply(await call(request, "site.get", {}))


async def put_site(request: web.Request) -> web.Response:
    body = await parse_body(request, models.SiteInfo)
    return reply(await call(request, "site.set", body.model_dump()))


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
    Route("GET", "/api/v1/site", get_site, "Gateway information (site)",
          router_methods=("site.get",)),
    Route("PUT", "/api/v1/site", put_site, "Save the gateway information", models.SiteInfo,
          router_methods=("site.set",)),
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
