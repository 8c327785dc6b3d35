"""Onboarding page API, section: Update schedule, support bundle, call trace, reboot, reset."""

from __future__ import annotations

import asyncio
import time
import zoneinfo
from pathlib import Path
from typing import Final

from aiohttp import web

from clgwd.store import Action
from clgwd.web import auth, models
from clgwd.web.api.common import (
    Route,
    actor_of,
    call,
    parse_body,
    record,
    reply,
    section,
    services,
)
from clgwd.web.bundle import build_support_bundle


async def get_update_schedule(request: web.Request) -> web.Response:
    return reply(await call(request, "update.schedule.get", {}))


def _known_timezone(name: str) -> bool:
    """Blocking (reads tzdata): call in a thread."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


async def put_update_schedule(request: web.Request) -> web.Response:
    body = await parse_body(request, models.UpdateSchedule)
    if not await asyncio.to_thread(_known_timezone, body.timezone):
        raise auth.InvalidInput(f"timezone: unknown time zone {body.timezone!r}; use a name "
                                "such as America/Toronto or UTC")
    return reply(await call(request, "update.schedule", body.model_dump()))


# Updates: version, last update/check, next check, pause (docs/updates.md).
async def get_update_status(request: web.Request) -> web.Response:
    return reply(await call(request, "update.status", {}))


async def post_update_pause(request: web.Request) -> web.Response:
    await parse_body(request, models.Empty)
    return reply(await call(request, "update.pause", {}))


async def post_update_resume(request: web.Request) -> web.Response:
    await parse_body(request, models.Empty)
    return reply(await call(request, "update.resume", {}))


async def get_support_bundle(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    logs = await section(request, "logs.collect", {"since_hours": 24})
    trace = await section(request, "trace.status")
    data = await build_support_bundle(svc.store, svc.statuses(), svc.config(), logs,
                                      svc.recent_logs.lines(), trace=trace)
    await record(svc, actor_of(request), Action.OTHER, "Support bundle", "downloaded")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return web.Response(body=data, content_type="application/gzip", headers={
        "Content-Disposition": f'attachment; filename="clgwd-support-{stamp}.tar.gz"'})


async def post_trace(request: web.Request) -> web.Response:
    body = await parse_body(request, models.TraceCalls)
    return reply(await call(request, "trace.calls", body.model_dump()), 202)


async def get_trace(request: web.Request) -> web.Response:
    return reply(await call(request, "trace.status", {}))


async def post_trace_stop(request: web.Request) -> web.Response:
    await parse_body(request, models.Empty)
    return reply(await call(request, "trace.stop", {}))


async def get_trace_download(request: web.Request) -> web.StreamResponse:
    """One finished capture file. It can hold customer data: only a logged-in admin gets
    it, the download is recorded, and the file of a running trace is refused (it is
    still being written)."""
    svc = services(request)
    name = request.query.get("file", "")
    found = await call(request, "trace.file", {"file": name})
    await record(svc, actor_of(request), Action.OTHER, "Call trace", f"downloaded {name}")
    return web.FileResponse(Path(found["path"]), headers={
        "Content-Type": "application/vnd.tcpdump.pcap",
        "Content-Disposition": f'attachment; filename="{name}"'})


async def post_reboot(request: web.Request) -> web.Response:
    await parse_body(request, models.Empty)
    return reply(await call(request, "system.reboot", {}), 202)


async def post_factory_reset(request: web.Request) -> web.Response:
    body = await parse_body(request, models.FactoryReset)
    if body.confirm != "revert":
        raise auth.InvalidInput("confirm: type revert to reset the gateway to factory "
                                "defaults")
    return reply(await call(request, "system.factory_reset", {"confirm": body.confirm}),
                 202)


ROUTES: Final = (
    Route("GET", "/api/v1/update/schedule", get_update_schedule, "Automatic update schedule",
          router_methods=("update.schedule.get",)),
    Route("PUT", "/api/v1/update/schedule", put_update_schedule, "Set the update schedule",
          models.UpdateSchedule, router_methods=("update.schedule",)),
    Route("GET", "/api/v1/update/status", get_update_status,
          "Software version, last update, last and next check, pause",
          router_methods=("update.status",)),
    Route("POST", "/api/v1/update/pause", post_update_pause, "Pause automatic updates",
          models.Empty, router_methods=("update.pause",)),
    Route("POST", "/api/v1/update/resume", post_update_resume, "Resume automatic updates",
          models.Empty, router_methods=("update.resume",)),
    Route("GET", "/api/v1/support-bundle", get_support_bundle,
          "Support bundle (tar.gz, secrets redacted)",
          router_methods=("logs.collect", "trace.status"),
          content="application/gzip"),
    Route("POST", "/api/v1/trace", post_trace, "Trace calls for a while", models.TraceCalls,
          router_methods=("trace.calls",), ok_status=202),
    Route("GET", "/api/v1/trace", get_trace, "Call trace: running state and kept captures",
          router_methods=("trace.status",)),
    Route("POST", "/api/v1/trace/stop", post_trace_stop, "Stop the running call trace",
          models.Empty, router_methods=("trace.stop",)),
    Route("GET", "/api/v1/trace/download", get_trace_download,
          "Download a finished call trace (pcap; may hold customer data)",
          query=(("file", {"type": "string", "maxLength": 80}),),
          router_methods=("trace.file",), content="application/vnd.tcpdump.pcap"),
    Route("POST", "/api/v1/system/reboot", post_reboot, "Reboot the gateway", models.Empty,
          router_methods=("system.reboot",), ok_status=202),
    Route("POST", "/api/v1/system/factory-reset", post_factory_reset,
          "Factory reset (type revert)", models.FactoryReset,
          router_methods=("system.factory_reset",), ok_status=202),
)
