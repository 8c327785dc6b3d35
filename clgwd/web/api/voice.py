"""Onboarding page API, section: the Voice Gateway step (SIP trunks; docs/sip-trunks.md)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from clgwd.web import models
from clgwd.web.api.common import (
    Route,
    call,
    parse_body,
    reply,
)


async def get_trunks(request: web.Request) -> web.Response:
    return reply(await call(request, "sip.trunks.get", {}))


async def post_trunks(request: web.Request) -> web.Response:
    body = await parse_body(request, models.TrunkSet)
    params = body.model_dump(exclude_defaults=True)
    if "app_setup" in body.model_fields_set:
        params["app_setup"] = body.app_setup  # null deletes the setup
    return reply(await call(request, "sip.trunks.set", params))


async def post_trunks_check(request: web.Request) -> web.Response:
    body = await parse_body(request, models.TrunkName)
    return reply(await call(request, "sip.trunks.check", {"name": body.name}))


ROUTES: Final = (
    Route("GET", "/api/v1/trunks", get_trunks, "SIP trunks and their state",
          router_methods=("sip.trunks.get",)),
    Route("POST", "/api/v1/trunks", post_trunks,
          "Add, change or remove a SIP trunk, or save/delete the application setup",
          models.TrunkSet, router_methods=("sip.trunks.set",)),
    Route("POST", "/api/v1/trunks/check", post_trunks_check, "Check a SIP trunk now",
          models.TrunkName, router_methods=("sip.trunks.check",)),
)
