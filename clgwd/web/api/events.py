"""Onboarding page API, section: Event history (JSON and CSV)."""

from __future__ import annotations

import time
from typing import Final

from aiohttp import web

from clgwd.store import Action, EventFilter, events_to_csv
from clgwd.web import auth
from clgwd.web.api.common import (
    Route,
    reply,
    services,
)

_EVENT_QUERY: Final = (
    ("asset", {"type": "string", "maxLength": 100}),
    ("action", {"type": "string", "enum": [a.value for a in Action]}),
    ("since", {"type": "number"}), ("until", {"type": "number"}),
    ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
)


def _event_filter(request: web.Request) -> EventFilter:
    q = request.query
    try:
        action = Action(q["action"]) if q.get("action") else None
        since = float(q["since"]) if q.get("since") else None
        until = float(q["until"]) if q.get("until") else None
        limit = int(q.get("limit", "200"))
    except ValueError:
        raise auth.InvalidInput("action must be one of " + ", ".join(a.value for a in Action)
                                + "; since/until are Unix times; limit is 1-1000") from None
    if not 1 <= limit <= 1000:
        raise auth.InvalidInput("limit must be 1-1000")
    asset = q.get("asset") or None
    if asset is not None and len(asset) > 100:
        raise auth.InvalidInput("asset must be at most 100 characters")
    return EventFilter(asset=asset, action=action, since=since, until=until, limit=limit)


async def get_events(request: web.Request) -> web.Response:
    events = await services(request).store.history.query(_event_filter(request))
    return reply({"events": [e.as_json() for e in events]})


async def get_events_csv(request: web.Request) -> web.Response:
    events = await services(request).store.history.query(_event_filter(request))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return web.Response(text=events_to_csv(events), content_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="clgwd-events-{stamp}.csv"'})


ROUTES: Final = (
    Route("GET", "/api/v1/events", get_events, "Event history", query=_EVENT_QUERY),
    Route("GET", "/api/v1/events.csv", get_events_csv, "Event history as CSV",
          query=_EVENT_QUERY, content="text/csv"),
)
