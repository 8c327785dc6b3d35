"""Event history: every applied change, in the vendor's Event History shape.

Each event is stored locally (filterable, exportable as CSV) and queued upstream in the
same transaction.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from json.encoder import encode_basestring_ascii
from typing import Any, Final

from clgwd.store.db import Database, Transaction
from clgwd.store.outbox import Outbox


class Action(StrEnum):
    CREATE = "Create"
    EDIT = "Edit"
    DELETE = "Delete"
    START = "Start"
    STOP = "Stop"
    OTHER = "Other"


@dataclass(frozen=True)
class Event:
    """One entry of the event history."""

    actor: str
    action: Action
    asset: str
    subject: str = ""
    properties_changed: Sequence[str] = ()
    core: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "at": self.at, "actor": self.actor, "action": self.action.value,
            "asset": self.asset, "subject": self.subject,
            "properties_changed": list(self.properties_changed),
            "core": self.core, "extra": self.extra,
        }


@dataclass(frozen=True)
class EventFilter:
    asset: str | None = None
    action: Action | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 1000


EVENTS_PER_BATCH: Final = 100
QUERY_CACHE_SIZE: Final = 32
EVENT_BATCH_BYTES: Final = 64 * 1024


class EventHistory:
    """Stores events and queues each one upstream."""

    def __init__(self, db: Database, outbox: Outbox) -> None:
        self._db = db
        self._outbox = outbox
        # Query results until the next committed write: the page asks for the same
        # newest-events view over and over, and each read is a trip to SQLite's thread.
        self._results: dict[EventFilter, list[Event]] = {}
        self._generation = 0

    def _changed_in(self, tx: Transaction) -> None:
        def forget() -> None:
            self._generation += 1
            self._results.clear()

        tx.after_commit(forget)

    async def record(self, tx: Transaction, event: Event) -> None:
        await tx.execute(
            "INSERT INTO events(id, at, actor, action, asset, subject, properties_changed,"
            " core, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event.id, event.at, event.actor, event.action.value, event.asset, event.subject,
             json.dumps(list(event.properties_changed)), json.dumps(event.core),
             json.dumps(event.extra)),
        )
        await self._outbox.enqueue(tx, "event", event.as_json(),
                                   idempotency_key=f"event:{event.id}")
        self._changed_in(tx)

    async def record_many(self, tx: Transaction, events: Sequence[Event]) -> None:
        """``record`` for many events in two statements (a first sync makes thousands).

        Serialization runs in a worker thread: 50,000 events are ~0.5 s of JSON work
        that must not stall the event loop.
        """
        await self.record_serialized(tx, await asyncio.to_thread(serialize_events, events))

    async def record_serialized(self, tx: Transaction, serialized: SerializedEvents) -> None:
        """Store events already turned into rows by ``serialize_events`` (which a
        producer may run on its own worker thread, overlapped with other writes)."""
        rows, upstream = serialized
        await tx.executemany(
            "INSERT INTO events(id, at, actor, action, asset, subject, properties_changed,"
            " core, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
            rows)
        await self._outbox.enqueue_many(tx, "event.batch", batch_events(upstream))
        self._changed_in(tx)

    async def query(self, flt: EventFilter) -> list[Event]:
        cached = self._results.get(flt)
        if cached is not None:
            return list(cached)
        generation = self._generation
        events = await self._query(flt)
        if generation == self._generation:  # no write committed while we read
            if len(self._results) >= QUERY_CACHE_SIZE:
                self._results.clear()
            self._results[flt] = events
        return list(events)

    async def _query(self, flt: EventFilter) -> list[Event]:
        clauses, params = ["1=1"], []  # type: tuple[list[str], list[Any]]
        if flt.asset is not None:
            clauses.append("asset = ?")
            params.append(flt.asset)
        if flt.action is not None:
            clauses.append("action = ?")
            params.append(flt.action.value)
        if flt.since is not None:
            clauses.append("at >= ?")
            params.append(flt.since)
        if flt.until is not None:
            clauses.append("at < ?")
            params.append(flt.until)
        rows = await self._db.fetchall(
            f"SELECT * FROM events WHERE {' AND '.join(clauses)}"  # noqa: S608 - fixed clauses
            " ORDER BY at DESC, id LIMIT ?",
            (*params, flt.limit),
        )
        return [
            Event(actor=r["actor"], action=Action(r["action"]), asset=r["asset"],
                  subject=r["subject"], properties_changed=json.loads(r["properties_changed"]),
                  core=json.loads(r["core"]), extra=json.loads(r["extra"]), at=r["at"],
                  id=r["id"])
            for r in rows
        ]


def batch_events(upstream: Sequence[tuple[str, dict[str, Any] | str]],
                 ) -> list[tuple[str, str]]:
    """Outbox records of kind ``event.batch`` (``{"events": [event, ...]}``) holding
    the serialized events in order, at most ``EVENTS_PER_BATCH`` events and about
    ``EVENT_BATCH_BYTES`` each. A first sync makes three events per user; one outbox
    row per event was most of its SQLite work (three B-tree inserts per row). The
    key names the first event, which only this batch can hold."""
    batches: list[tuple[str, str]] = []
    parts: list[str] = []
    first_key = ""
    size = 0
    seen: set[str] = set()
    for key, payload in upstream:
        if key in seen:  # the same event twice (as enqueue_many skips a repeated key)
            continue
        seen.add(key)
        text = payload if isinstance(payload, str) else json.dumps(
            payload, separators=(",", ":"), ensure_ascii=False)
        if parts and (len(parts) >= EVENTS_PER_BATCH or size + len(text) > EVENT_BATCH_BYTES):
            batches.append((f"event.batch:{first_key}", _batch_json(parts)))
            parts, size = [], 0
        if not parts:
            first_key = key.removeprefix("event:")
        parts.append(text)
        size += len(text) + 1
    if parts:
        batches.append((f"event.batch:{first_key}", _batch_json(parts)))
    return batches


def _batch_json(parts: list[str]) -> str:
    return '{"events":[' + ",".join(parts) + "]}"


SerializedEvents = tuple[list[tuple[Any, ...]], list[tuple[str, dict[str, Any] | str]]]
"""Table rows and outbox records of events (see ``serialize_events``)."""


def serialize_events(events: Sequence[Event]) -> SerializedEvents:
    """Table rows and outbox records of ``events``; each JSON part is made once and the
    outbox payload (the same keys as ``Event.as_json``) is assembled from them."""
    rows: list[tuple[Any, ...]] = []
    upstream: list[tuple[str, dict[str, Any] | str]] = []
    dumps = json.JSONEncoder().encode
    # Producers share one properties list / extra dict across many events: encode once.
    props_cache: dict[tuple[str, ...], str] = {}
    extra_cache: dict[int, tuple[dict[str, Any], str]] = {}
    for e in events:
        names = tuple(e.properties_changed)
        props = props_cache.get(names)
        if props is None:
            props = props_cache[names] = dumps(list(names))
        cached = extra_cache.get(id(e.extra))
        if cached is None or cached[0] is not e.extra:
            cached = extra_cache[id(e.extra)] = (e.extra, dumps(e.extra))
        row, record = serialized_event(
            e.id, at=e.at, actor=e.actor, action=e.action, asset=e.asset, subject=e.subject,
            props_json=props, core_json=dumps(e.core), extra_json=cached[1])
        rows.append(row)
        upstream.append(record)
    return rows, upstream


def serialized_event(event_id: str, *, at: float, actor: str, action: Action, asset: str,
                     subject: str, props_json: str, core_json: str, extra_json: str,
                     ) -> tuple[tuple[Any, ...], tuple[str, str]]:
    """One event's table row and outbox record from already encoded JSON parts; the
    payload has the keys of ``Event.as_json``. For producers that write thousands of
    events and build their parts without ``Event`` objects (the user sync)."""
    row = (event_id, at, actor, action.value, asset, subject, props_json, core_json,
           extra_json)
    quote = encode_basestring_ascii
    payload = (f'{{"id":{quote(event_id)},"at":{at!r},"actor":{quote(actor)},'
               f'"action":{quote(action.value)},"asset":{quote(asset)},'
               f'"subject":{quote(subject)},"properties_changed":{props_json},'
               f'"core":{core_json},"extra":{extra_json}}}')
    return row, (f"event:{event_id}", payload)



CSV_COLUMNS = ("Event ID", "Date", "Actor", "Action", "Asset", "Subject",
               "Properties changed", "Core details")


def events_to_csv(events: Iterable[Event]) -> str:
    """Render events as CSV with the vendor's column names; cells are formula-safe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for ev in events:
        writer.writerow([_cell(v) for v in (
            ev.id, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ev.at)), ev.actor,
            ev.action.value, ev.asset, ev.subject, "; ".join(ev.properties_changed),
            json.dumps(ev.core, sort_keys=True, ensure_ascii=False),
        )])
    return out.getvalue()


def _cell(value: str) -> str:
    """Prefix cells a spreadsheet would run as a formula (CSV injection)."""
    return "'" + value if value[:1] in {"=", "+", "-", "@", "\t", "\r"} else value
