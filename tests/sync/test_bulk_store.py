"""The bulk store helpers the sync engine relies on (Outbox.enqueue_many,
EventHistory.record_many) and the fingerprint's coverage of every synced field."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clgwd.config import parse_config
from clgwd.pbx.model import Device
from clgwd.store import Action, Event, EventFilter, Store
from clgwd.sync.diff import fingerprint
from tests.sync.helpers import user


@pytest.fixture
async def store(state_dir: Path) -> AsyncIterator[Store]:
    async with Store(parse_config(f"state: {{dir: {state_dir}}}\n")) as opened:
        yield opened


async def test_enqueue_many_takes_serialized_json_as_is(store: Store) -> None:
    """A str payload is stored verbatim (not encoded twice); a dict is serialized."""
    async with store.db.transaction() as tx:
        await store.outbox.enqueue_many(tx, "k", [("one", {"a": 1}), ("two", '{"b":2}')])
    assert [r.payload for r in await store.outbox.pending()] == [{"a": 1}, {"b": 2}]


async def test_record_many_queues_the_same_json_as_record(store: Store) -> None:
    """The hand-assembled upstream payload equals Event.as_json(), unicode included."""
    event = Event(actor="System", action=Action.CREATE, asset="PBX User Profile",
                  subject='Zoë "Z" Ångström', properties_changed=["email"],
                  core={"fullname": "Zoë", "n": 1}, extra={"source_id": "x"})
    async with store.db.transaction() as tx:
        await store.history.record_many(tx, [event, event])
    (record,) = await store.outbox.pending()
    assert record.kind == "event.batch"
    assert record.payload == {"events": [json.loads(json.dumps(event.as_json()))]}
    (stored,) = await store.history.query(EventFilter())
    assert stored.subject == event.subject and stored.core == event.core


def test_fingerprint_changes_with_every_synced_field() -> None:
    """Each field of PbxUser.as_json moves the fingerprint; raw does not."""
    base = user("u1")
    changes = {
        "source_key": "u2", "extension": "9", "first_name": "F", "last_name": "L",
        "display_name": "D", "email": "e@x.com", "client_username": "c", "dids": ("+1",),
        "caller_id": "+2", "devices": (Device(mac="00:00:00:00:00:09"),), "groups": ("g",),
        "department": "d", "location": "l", "language": "fr", "enabled": False,
    }
    assert set(changes) == set(base.as_json())
    prints = {fingerprint(dataclasses.replace(base, **{k: v})) for k, v in changes.items()}
    assert fingerprint(base) not in prints and len(prints) == len(changes)
    assert fingerprint(dataclasses.replace(base, raw={"x": 1})) == fingerprint(base)
