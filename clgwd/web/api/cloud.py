"""Onboarding page API, section: The cloud link: state, enrollment and the HTTP proxy."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from clgwd.web import models
from clgwd.web.api.common import (
    Route,
    call,
    no_secrets,
    parse_body,
    reply,
)


async def get_cloud(request: web.Request) -> web.Response:
    return reply(no_secrets(await call(request, "cloud.status", {})))


async def post_cloud_enroll(request: web.Request) -> web.Response:
    body = await parse_body(request, models.CloudEnroll)
    return reply(no_secrets(await call(request, "cloud.enroll", body.model_dump())))


async def get_cloud_proxy(request: web.Request) -> web.Response:
    return reply(no_secrets(await call(request, "cloud.proxy.get", {})))


async def put_cloud_proxy(request: web.Request) -> web.Response:
    body = await parse_body(request, models.CloudProxy)
    return reply(no_secrets(await call(request, "cloud.proxy.set", body.model_dump())))


ROUTES: Final = (
    Route("GET", "/api/v1/cloud", get_cloud, "Cloud link state",
          router_methods=("cloud.status",)),
    Route("POST", "/api/v1/cloud/enroll", post_cloud_enroll, "Enroll with the cloud",
          models.CloudEnroll, router_methods=("cloud.enroll",)),
    Route("GET", "/api/v1/cloud/proxy", get_cloud_proxy, "The HTTP proxy to the cloud (no "
          "password)", router_methods=("cloud.proxy.get",)),
    Route("PUT", "/api/v1/cloud/proxy", put_cloud_proxy, "Set the HTTP proxy to the cloud",
          models.CloudProxy, router_methods=("cloud.proxy.set",)),
)
