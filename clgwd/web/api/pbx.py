"""Onboarding page API, section: PBX settings and user sync."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from clgwd.errors import NotSupportedYet
from clgwd.web import auth, models
from clgwd.web.api.common import (
    Route,
    call,
    no_secrets,
    parse_body,
    reply,
)
from clgwd.web.catalog import PBX_TYPES, pbx_type


async def get_pbx_types(request: web.Request) -> web.Response:
    return reply({"types": list(PBX_TYPES)})


async def get_pbx(request: web.Request) -> web.Response:
    return reply(no_secrets(await call(request, "pbx.get", {})))


async def put_pbx(request: web.Request) -> web.Response:
    body = await parse_body(request, models.PbxSettings)
    kind = pbx_type(body.type)
    if kind is None:
        raise auth.InvalidInput(f"type: unknown PBX type {body.type!r}")
    if not kind["available"]:
        raise NotSupportedYet(f"{kind['label']} is not available in this gateway version yet")
    if kind["network"] and (body.address is None or body.port is None):
        raise auth.InvalidInput(f"address: {kind['label']} needs the PBX address and port")
    allowed = {f["name"] for f in kind["fields"]}
    missing = [f["name"] for f in kind["fields"] if f["required"] and not body.options.get(
        f["name"])]
    if set(body.options) - allowed or missing:
        raise auth.InvalidInput(f"options: {kind['label']} needs {sorted(allowed) or 'none'}"
                                + (f"; missing {missing}" if missing else ""))
    return reply(no_secrets(await call(request, "pbx.set", body.model_dump())))


async def post_pbx_test(request: web.Request) -> web.Response:
    return reply(await call(request, "pbx.test", {}))


async def post_sync_now(request: web.Request) -> web.Response:
    return reply(await call(request, "sync.now", {}), 202)


async def get_sync_schedule(request: web.Request) -> web.Response:
    return reply(await call(request, "sync.schedule.get", {}))


async def put_sync_schedule(request: web.Request) -> web.Response:
    body = await parse_body(request, models.SyncSchedule)
    return reply(await call(request, "sync.schedule.set", body.model_dump()))


async def get_sync_preview(request: web.Request) -> web.Response:
    return reply(await call(request, "sync.preview", {}))


async def get_sync_status(request: web.Request) -> web.Response:
    return reply(await call(request, "sync.status", {}))


def _page_query(request: web.Request) -> dict[str, int]:
    try:
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise auth.InvalidInput("offset and limit must be whole numbers") from None
    if offset < 0 or not 1 <= limit <= 200:
        raise auth.InvalidInput("offset must be 0 or more; limit 1-200")
    return {"offset": offset, "limit": limit}


async def get_sync_missing(request: web.Request) -> web.Response:
    return reply(await call(request, "sync.missing.get", _page_query(request)))


async def get_sync_kept(request: web.Request) -> web.Response:
    return reply(await call(request, "sync.kept.get", _page_query(request)))


async def post_sync_missing_keep(request: web.Request) -> web.Response:
    body = await parse_body(request, models.KeepMissing)
    return reply(await call(request, "sync.missing.keep", body.model_dump()))


async def post_sync_missing_delete(request: web.Request) -> web.Response:
    body = await parse_body(request, models.DeleteMissing)
    return reply(await call(request, "sync.missing.delete", body.model_dump()))


_PAGE_QUERY: Final = (
    ("offset", {"type": "integer", "minimum": 0}),
    ("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
)

ROUTES: Final = (
    Route("GET", "/api/v1/pbx/types", get_pbx_types, "PBX types and their fields"),
    Route("GET", "/api/v1/pbx", get_pbx, "PBX settings (no secrets)",
          router_methods=("pbx.get",)),
    Route("PUT", "/api/v1/pbx", put_pbx, "Save PBX settings", models.PbxSettings,
          router_methods=("pbx.set",)),
    Route("POST", "/api/v1/pbx/test", post_pbx_test, "Test the PBX connection",
          router_methods=("pbx.test",)),
    Route("POST", "/api/v1/sync/now", post_sync_now, "Sync now", router_methods=("sync.now",),
          ok_status=202),
    Route("GET", "/api/v1/sync/schedule", get_sync_schedule, "Sync schedule, last/next sync",
          router_methods=("sync.schedule.get",)),
    Route("PUT", "/api/v1/sync/schedule", put_sync_schedule, "Set the sync interval",
          models.SyncSchedule, router_methods=("sync.schedule.set",)),
    Route("GET", "/api/v1/sync/preview", get_sync_preview, "Changes the next sync makes",
          router_methods=("sync.preview",)),
    Route("GET", "/api/v1/sync/status", get_sync_status,
          "The sync under way (phase, counts, elapsed) or the last one",
          router_methods=("sync.status",)),
    Route("GET", "/api/v1/sync/missing", get_sync_missing,
          "Users a sync safety abort held back (paginated)", query=_PAGE_QUERY,
          router_methods=("sync.missing.get",)),
    Route("GET", "/api/v1/sync/kept", get_sync_kept,
          "Users kept in the cloud that are no longer on the PBX (paginated)",
          query=_PAGE_QUERY, router_methods=("sync.kept.get",)),
    Route("POST", "/api/v1/sync/missing/keep", post_sync_missing_keep,
          "Keep the held-back users (new baseline, nothing deleted)", models.KeepMissing,
          router_methods=("sync.missing.keep",)),
    Route("POST", "/api/v1/sync/missing/delete", post_sync_missing_delete,
          "Delete the held-back users once (confirmed by their number)",
          models.DeleteMissing, router_methods=("sync.missing.delete",)),
)
