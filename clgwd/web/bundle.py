"""The support bundle: a tar.gz a technician can attach to a ticket.

It holds what support asks for first (version, component states, the running config,
active alerts, recent events, the logs the logging part collects, and the call trace's
metadata) and never a secret: the config is dumped through pydantic, whose ``Secret``
type serialises as a redaction marker, and anything else is scrubbed by key name.

Call trace captures themselves stay out: a pcap holds the customer's signalling
(numbers, names), so it is downloaded on its own, deliberately, from the Advanced page.
The bundle says which captures exist (``trace.json``: times, interfaces, filter, sizes,
stop reason).
"""

from __future__ import annotations

import asyncio
import io
import json
import platform
import tarfile
import time
from collections.abc import Mapping
from typing import Any

from clgwd import __version__
from clgwd.component import ComponentStatus
from clgwd.config import ClgwdConfig
from clgwd.store import EventFilter, Store, events_to_csv

_SECRET_WORDS = ("password", "secret", "token", "key")


def redact(data: Any) -> Any:
    """Replace values under secret-sounding keys, recursively."""
    if isinstance(data, Mapping):
        return {k: "***" if any(w in str(k).lower() for w in _SECRET_WORDS) else redact(v)
                for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data


async def build_support_bundle(store: Store, statuses: Mapping[str, ComponentStatus],
                               config: ClgwdConfig, logs: Mapping[str, Any],
                               recent_log_lines: list[str], *,
                               trace: Mapping[str, Any] | None = None) -> bytes:
    """Gather on the loop, compress in a thread."""
    events = await store.history.query(EventFilter(limit=1000))
    alerts = await store.alerts.active()
    files = {
        "version.json": _dump({"version": __version__, "python": platform.python_version(),
                               "created_at": time.time()}),
        "status.json": _dump({n: s.as_json() for n, s in statuses.items()}),
        "config.json": _dump(redact(config.model_dump(mode="json"))),
        "alerts.json": _dump([{"code": a.code, "severity": a.severity.value,
                               "message": a.message, "since": a.since} for a in alerts]),
        "events.csv": events_to_csv(events).encode(),
        "logs.json": _dump(redact(dict(logs))),
        "recent.log": "".join(f"{line}\n" for line in recent_log_lines).encode(),
        "trace.json": _dump(redact(dict(trace or {"available": False}))),
    }
    return await asyncio.to_thread(_pack, files)


def _dump(data: Any) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True, default=str).encode()


def _pack(files: Mapping[str, bytes]) -> bytes:
    out = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"clgwd-support/{name}")
            info.size, info.mtime, info.mode = len(data), int(now), 0o600
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
